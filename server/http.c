/*
 * Server lifecycle, workers and connection limits (see http.h); one
 * connection's life is server/conn.c.
 *
 * Each worker has its own event_base and an evconnlistener on its own dup of
 * the listening socket: accept, parse, route and reply happen on one thread
 * with no lock between them. libevent's locking is on (evthread_use_pthreads)
 * so that other threads can wake a worker: the main thread to stop it, a
 * write threads to hand back a deferred request (http_request_resume), another
 * worker to have it close idle connections.
 *
 * Limits. A connection is admitted at its first request's head (conn.c):
 * one more of its peer address (--max-connections-per-client; 429 past it),
 * and one more in all (--max-connections). At the global limit the idle
 * keep-alive connection that has waited longest, on any worker, is closed
 * for the newcomer: each worker keeps its idle admitted connections in the
 * order they fell idle and publishes when its oldest did, and the admitting
 * worker closes its own or asks the worker holding the oldest (an event), so
 * a crowd of idle connections cannot lock newcomers out; only when none is
 * idle is the newcomer answered 503. A remote close is asynchronous, so the
 * count may pass the limit by the closes in flight, briefly.
 */
#include "server/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "index/format/docstore.h"
#include "index/base/error.h"
#include "query/search.h"
#include "server/cache.h"
#include "server/conn.h"
#include "server/reqparse.h"
#include "server/respond.h"
#include "server/routes.h"

/* After a stop, how long connections still sending a request, or reading
 * their reply, are given; deferred writes are always waited for. */
#define HTTP_DRAIN_MS 500
#define HTTP_CLOSE_GRACE_MS 2000
/* The per-client table's buckets (a power of two); entries chain. */
#define HTTP_CLIENT_BUCKETS 1024

struct client_entry {
    struct client_key key;
    uint32_t n_open;
    struct client_entry *next;
};

struct server {
    struct server_config cfg;
    struct route_ctx routes;
    int listen_fd;
    uint16_t port;
    int n_workers;
    struct worker *workers;
    /* connections admitted per peer address, when there is a per-client limit */
    pthread_mutex_t clients_lock;
    struct client_entry *clients[HTTP_CLIENT_BUCKETS];
};

void server_config_defaults(struct server_config *cfg)
{
    *cfg = (struct server_config){
        .host = "127.0.0.1",
        .port = 8080,
        .threads = 0,
        .max_body_bytes = 64u << 20,
        .max_uri_bytes = 8192,
        .idle_timeout_s = 30,
        .request_timeout_s = 10,
        .max_connections = 4096,
        .max_connections_per_client = 512,
        .recency_half_life_days = SEARCH_RECENCY_HALF_LIFE_DAYS,
        .cache_bytes = (size_t)CACHE_DEFAULT_MB << 20,
        .query_timeout_ms = SEARCH_TIMEOUT_DEFAULT_MS,
    };
}

/* ---- the per-client count ---- */

static struct client_entry **client_bucket(struct server *srv, const struct client_key *key)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (size_t i = 0; i < sizeof key->addr; i++)
        h = (h ^ key->addr[i]) * 1099511628211ull;
    return &srv->clients[h & (HTTP_CLIENT_BUCKETS - 1)];
}

/* One more connection of key's, unless it has its limit (or memory is out). */
static bool client_acquire(struct server *srv, const struct client_key *key)
{
    struct client_entry **head = client_bucket(srv, key), *e;
    bool ok = true;

    pthread_mutex_lock(&srv->clients_lock);
    for (e = *head; e && memcmp(&e->key, key, sizeof *key); e = e->next)
        ;
    if (!e && (e = calloc(1, sizeof *e))) {
        e->key = *key;
        e->next = *head;
        *head = e;
    }
    if (!e || e->n_open >= srv->cfg.max_connections_per_client)
        ok = false;
    else
        e->n_open++;
    pthread_mutex_unlock(&srv->clients_lock);
    return ok;
}

static void client_release(struct server *srv, const struct client_key *key)
{
    struct client_entry **at = client_bucket(srv, key);

    pthread_mutex_lock(&srv->clients_lock);
    while (*at && memcmp(&(*at)->key, key, sizeof *key))
        at = &(*at)->next;
    if (*at && --(*at)->n_open == 0) {
        struct client_entry *gone = *at;
        *at = gone->next;
        free(gone);
    }
    pthread_mutex_unlock(&srv->clients_lock);
}

/* ---- idle connections, oldest first ---- */

static void idle_publish(struct worker *w)
{
    atomic_store(&w->oldest_idle_ns, w->idle_head ? conn_idle_link(w->idle_head)->since_ns : 0);
}

void worker_idle_push(struct worker *w, struct conn *c, uint64_t now)
{
    struct conn_idle_link *l = conn_idle_link(c);

    l->since_ns = now ? now : 1;
    l->prev = w->idle_tail;
    l->next = NULL;
    l->listed = true;
    if (w->idle_tail)
        conn_idle_link(w->idle_tail)->next = c;
    else
        w->idle_head = c;
    w->idle_tail = c;
    idle_publish(w);
}

void worker_idle_remove(struct worker *w, struct conn *c)
{
    struct conn_idle_link *l = conn_idle_link(c);

    if (!l->listed)
        return;
    if (l->prev)
        conn_idle_link(l->prev)->next = l->next;
    else
        w->idle_head = l->next;
    if (l->next)
        conn_idle_link(l->next)->prev = l->prev;
    else
        w->idle_tail = l->prev;
    l->prev = l->next = NULL;
    l->listed = false;
    idle_publish(w);
}

/* Another worker asked for idle connections closed: the oldest go. */
static void on_evict(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    unsigned n = atomic_exchange(&w->evict_wanted, 0);

    (void)fd;
    (void)what;
    while (n-- && w->idle_head)
        conn_close(w->idle_head);
}

/* Closes the idle connection that has waited longest, on any worker; false if none. */
static bool evict_oldest(struct worker *w)
{
    struct server *srv = w->srv;
    struct worker *oldest = NULL;
    uint64_t oldest_ns = UINT64_MAX;

    for (int i = 0; i < srv->n_workers; i++) {
        uint64_t since = atomic_load(&srv->workers[i].oldest_idle_ns);
        if (since && since < oldest_ns) {
            oldest_ns = since;
            oldest = &srv->workers[i];
        }
    }
    if (!oldest)
        return false;
    if (oldest == w) {
        conn_close(w->idle_head);
    } else {
        atomic_fetch_add(&oldest->evict_wanted, 1);
        event_active(oldest->evict_event, EV_READ, 0);
    }
    return true;
}

int worker_admit(struct worker *w, struct conn *c, const struct client_key *key)
{
    struct server *srv = w->srv;
    struct metrics *m = &srv->routes.metrics;

    (void)c;
    if (srv->cfg.max_connections_per_client && !client_acquire(srv, key)) {
        atomic_fetch_add(&m->connections_refused, 1);
        return 429;
    }
    if (atomic_load(&m->connections_open) >= (int_fast64_t)srv->cfg.max_connections &&
        !evict_oldest(w)) {
        if (srv->cfg.max_connections_per_client)
            client_release(srv, key);
        atomic_fetch_add(&m->connections_refused, 1);
        return 503;
    }
    atomic_fetch_add(&m->connections_open, 1);
    return 0;
}

void worker_release(struct worker *w, const struct client_key *key)
{
    atomic_fetch_sub(&w->srv->routes.metrics.connections_open, 1);
    if (w->srv->cfg.max_connections_per_client)
        client_release(w->srv, key);
}

/* ---- workers ---- */

static void on_accept(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *addr,
                      int addr_len, void *arg)
{
    (void)listener;
    conn_accept(arg, fd, addr, addr_len);
}

static void on_accept_error(struct evconnlistener *listener, void *arg)
{
    (void)listener;
    (void)arg;
    /* EMFILE and the like: the listener keeps trying; connections closing frees fds */
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_resume_done(arg);
}

void worker_maybe_exit(struct worker *w)
{
    if (w->stopping && !w->n_conns)
        event_base_loopexit(w->base, NULL);
}

void worker_drain_rearm(struct worker *w)
{
    struct timeval drain = { 0, HTTP_DRAIN_MS * 1000 };

    event_add(w->drain_timer, &drain);
}

/* While stopping: the drain is over once no deferred write is pending. */
static void on_drain(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct timeval again = { 0, 50 * 1000 };

    (void)fd;
    (void)what;
    if (w->n_deferred)
        event_add(w->drain_timer, &again);
    else
        event_base_loopexit(w->base, NULL);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct timeval drain = { 0, HTTP_DRAIN_MS * 1000 };

    (void)fd;
    (void)what;
    if (w->listener) {
        evconnlistener_free(w->listener); /* closes our dup of the socket */
        w->listener = NULL;
    }
    w->stopping = true;
    for (struct conn *c = w->conns, *next; c; c = next) {
        next = conn_next(c);
        if (conn_is_idle(c))
            conn_close(c);
    }
    event_add(w->drain_timer, &drain);
    worker_maybe_exit(w);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    event_base_dispatch(w->base);
    docstore_thread_cleanup();
    return NULL;
}

static int listen_socket(const struct server_config *cfg, int *out_fd, uint16_t *out_port,
                         struct xerr *err)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *res;
    char port[8];
    int fd = -1, one = 1;

    snprintf(port, sizeof port, "%u", cfg->port);
    int gai = getaddrinfo(cfg->host, port, &hints, &res);
    if (gai)
        return xerr_set(err, XE_INPUT, "listen address %s: %s", cfg->host, gai_strerror(gai));
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return xerr_set(err, XE_IO, "cannot listen on %s:%u: %s", cfg->host, cfg->port,
                        strerror(errno));
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *out_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    *out_fd = fd;
    return XE_OK;
}

static int worker_init(struct worker *w, struct server *srv, struct xerr *err)
{
    w->srv = srv;
    w->cfg = &srv->cfg;
    w->routes = &srv->routes;
    atomic_init(&w->oldest_idle_ns, 0);
    atomic_init(&w->evict_wanted, 0);
    if (pthread_mutex_init(&w->done_lock, NULL))
        return xerr_set(err, XE_NOMEM, "cannot create a lock");
    w->lock_made = true;
    w->base = event_base_new();
    if (!w->base)
        return xerr_set(err, XE_NOMEM, "cannot create an event loop");
    int fd = dup(srv->listen_fd);
    if (fd < 0)
        return xerr_set(err, XE_IO, "dup: %s", strerror(errno));
    w->listener = evconnlistener_new(w->base, on_accept, w, LEV_OPT_CLOSE_ON_FREE, -1, fd);
    if (!w->listener) {
        close(fd);
        return xerr_set(err, XE_IO, "cannot accept on the listening socket");
    }
    evconnlistener_set_error_cb(w->listener, on_accept_error);
    struct timeval idle = { srv->cfg.idle_timeout_s, 0 };
    struct timeval request = { srv->cfg.request_timeout_s, 0 };
    struct timeval grace = { HTTP_CLOSE_GRACE_MS / 1000, HTTP_CLOSE_GRACE_MS % 1000 * 1000 };
    const struct timeval *common = event_base_init_common_timeout(w->base, &idle);
    w->idle_timeout = common ? *common : idle;
    common = event_base_init_common_timeout(w->base, &request);
    w->request_timeout = common ? *common : request;
    common = event_base_init_common_timeout(w->base, &grace);
    w->close_grace = common ? *common : grace;
    w->stop_event = event_new(w->base, -1, 0, on_stop, w);
    w->done_event = event_new(w->base, -1, 0, on_done, w);
    w->evict_event = event_new(w->base, -1, 0, on_evict, w);
    w->drain_timer = evtimer_new(w->base, on_drain, w);
    if (!w->stop_event || !w->done_event || !w->evict_event || !w->drain_timer)
        return xerr_set(err, XE_NOMEM, "cannot create an event");
    return XE_OK;
}

static void worker_fini(struct worker *w)
{
    if (w->listener)
        evconnlistener_free(w->listener);
    if (w->base)
        conn_free_all(w);
    if (w->stop_event)
        event_free(w->stop_event);
    if (w->done_event)
        event_free(w->done_event);
    if (w->evict_event)
        event_free(w->evict_event);
    if (w->drain_timer)
        event_free(w->drain_timer);
    if (w->base)
        event_base_free(w->base);
    if (w->lock_made)
        pthread_mutex_destroy(&w->done_lock);
}

static void http_once(void)
{
    evthread_use_pthreads();
    reqparse_setup();
}

int server_start(struct index *ix, const struct server_config *cfg, struct server **out,
                 struct xerr *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    struct server *srv;
    int rc;

    pthread_once(&once, http_once);
    srv = calloc(1, sizeof *srv);
    if (!srv)
        return xerr_set(err, XE_NOMEM, "out of memory");
    srv->cfg = *cfg;
    pthread_mutex_init(&srv->clients_lock, NULL);
    srv->n_workers = cfg->threads > 0 ? cfg->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (srv->n_workers < 1)
        srv->n_workers = 1;
    rc = routes_init(&srv->routes, ix, &srv->cfg, err);
    if (rc)
        goto out_free;
    rc = listen_socket(cfg, &srv->listen_fd, &srv->port, err);
    if (rc)
        goto out_routes;
    srv->workers = calloc((size_t)srv->n_workers, sizeof *srv->workers);
    if (!srv->workers) {
        rc = xerr_set(err, XE_NOMEM, "out of memory");
        goto out_listen;
    }
    for (int i = 0; i < srv->n_workers; i++) {
        rc = worker_init(&srv->workers[i], srv, err);
        if (rc)
            goto out_workers;
    }
    for (int i = 0; i < srv->n_workers; i++) {
        if (pthread_create(&srv->workers[i].thread, NULL, worker_main, &srv->workers[i])) {
            rc = xerr_set(err, XE_IO, "cannot start a worker thread");
            goto out_workers;
        }
        srv->workers[i].started = true;
    }
    *out = srv;
    return XE_OK;
out_workers:
    for (int i = 0; i < srv->n_workers; i++) {
        struct worker *w = &srv->workers[i];
        if (w->started) {
            event_active(w->stop_event, 0, 0);
            pthread_join(w->thread, NULL);
        }
        worker_fini(w);
    }
    free(srv->workers);
out_listen:
    close(srv->listen_fd);
out_routes:
    routes_fini(&srv->routes);
out_free:
    pthread_mutex_destroy(&srv->clients_lock);
    free(srv);
    return rc;
}

uint16_t server_port(const struct server *srv)
{
    return srv->port;
}

void server_stop(struct server *srv)
{
    if (!srv)
        return;
    /* first stop accepting: the socket closes when the workers drop their copies */
    close(srv->listen_fd);
    srv->listen_fd = -1;
    for (int i = 0; i < srv->n_workers; i++)
        event_active(srv->workers[i].stop_event, 0, 0);
    for (int i = 0; i < srv->n_workers; i++) {
        pthread_join(srv->workers[i].thread, NULL);
        worker_fini(&srv->workers[i]);
    }
    free(srv->workers);
    routes_fini(&srv->routes);
    for (size_t i = 0; i < HTTP_CLIENT_BUCKETS; i++)
        while (srv->clients[i]) {
            struct client_entry *next = srv->clients[i]->next;
            free(srv->clients[i]);
            srv->clients[i] = next;
        }
    pthread_mutex_destroy(&srv->clients_lock);
    free(srv);
}
