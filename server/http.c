/*
 * Server lifecycle (see http.h). libevent's locking is switched on once
 * (evthread_use_pthreads) only so that the main thread can wake a worker
 * with event_active() to stop it; workers never share an event_base.
 */
#include "server/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "index/docstore.h"
#include "index/error.h"
#include "query/search.h"
#include "server/respond.h"
#include "server/routes.h"

/* libevent's own limits sit above ours, so that ours answer first, in JSON. */
#define HTTP_LIBEVENT_HEADERS_MAX (64u << 10)
/* Bodies up to twice our limit (plus a MiB) are read and refused by us in
 * JSON; only absurd ones meet libevent's own HTML 413. */
#define HTTP_LIBEVENT_BODY_SLACK (1u << 20)
#define HTTP_DRAIN_MS 500

/*
 * The connections a worker has seen a request on, so that each is counted
 * once and uncounted when libevent closes it. Open addressing on the
 * connection's address; only the worker's thread touches it.
 */
struct conn_set {
    struct evhttp_connection **slots;
    uint32_t cap, n;
};

struct worker {
    struct server *srv;
    struct conn_set conns;
    pthread_t thread;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    struct event *stop_event;
    bool started;
};

struct server {
    struct server_config cfg;
    struct route_ctx routes;
    int listen_fd;
    uint16_t port;
    int n_workers;
    struct worker *workers;
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
        .max_connections = 4096,
        .recency_half_life_days = SEARCH_RECENCY_HALF_LIFE_DAYS,
    };
}

static uint32_t conn_hash(const struct evhttp_connection *c, uint32_t cap)
{
    uint64_t h = (uint64_t)(uintptr_t)c * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32) & (cap - 1);
}

static bool conn_set_has(const struct conn_set *s, const struct evhttp_connection *c)
{
    if (!s->cap)
        return false;
    for (uint32_t i = conn_hash(c, s->cap);; i = (i + 1) & (s->cap - 1)) {
        if (!s->slots[i])
            return false;
        if (s->slots[i] == c)
            return true;
    }
}

static bool conn_set_add(struct conn_set *s, struct evhttp_connection *c)
{
    if ((s->n + 1) * 2 > s->cap) {
        struct conn_set bigger = { .cap = s->cap ? s->cap * 2 : 256 };
        bigger.slots = calloc(bigger.cap, sizeof *bigger.slots);
        if (!bigger.slots)
            return false;
        for (uint32_t i = 0; i < s->cap; i++)
            if (s->slots[i])
                conn_set_add(&bigger, s->slots[i]);
        free(s->slots);
        *s = bigger;
    }
    uint32_t i = conn_hash(c, s->cap);
    while (s->slots[i])
        i = (i + 1) & (s->cap - 1);
    s->slots[i] = c;
    s->n++;
    return true;
}

/* Removes c, moving later entries of its probe run back (no tombstones). */
static void conn_set_remove(struct conn_set *s, const struct evhttp_connection *c)
{
    uint32_t mask = s->cap - 1, i;

    if (!s->cap)
        return;
    for (i = conn_hash(c, s->cap); s->slots[i] != c; i = (i + 1) & mask)
        if (!s->slots[i])
            return;
    s->slots[i] = NULL;
    s->n--;
    for (uint32_t j = (i + 1) & mask; s->slots[j]; j = (j + 1) & mask) {
        struct evhttp_connection *moved = s->slots[j];
        s->slots[j] = NULL;
        s->n--;
        conn_set_add(s, moved);
    }
}

static void on_connection_close(struct evhttp_connection *evcon, void *arg)
{
    struct worker *w = arg;

    conn_set_remove(&w->conns, evcon);
    atomic_fetch_sub(&w->srv->routes.metrics.connections_open, 1);
}

/*
 * Counts the connection on its first request; past max_connections, answers
 * 503 at once and closes it, so that a flood costs a reply, not a worker.
 */
static bool admit(struct worker *w, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct metrics *m = &w->srv->routes.metrics;

    if (!evcon || conn_set_has(&w->conns, evcon))
        return true;
    if (atomic_load(&m->connections_open) >= (int_fast64_t)w->srv->cfg.max_connections ||
        !conn_set_add(&w->conns, evcon)) {
        struct exchange ex = { .req = req, .method = "-", .path = "(refused)",
                               .start_ns = now_ns(), .quiet = w->srv->cfg.quiet,
                               .cors_origin = w->srv->cfg.cors_origin, .metrics = m,
                               .route = ROUTE_OTHER };
        struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
        evhttp_add_header(headers, "Retry-After", "1");
        evhttp_add_header(headers, "Connection", "close");
        atomic_fetch_add(&m->connections_refused, 1);
        respond_error(&ex, 503, "the server is at its limit of %u connections; retry shortly",
                      w->srv->cfg.max_connections);
        return false;
    }
    atomic_fetch_add(&m->connections_open, 1);
    evhttp_connection_set_closecb(evcon, on_connection_close, w);
    return true;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct worker *w = arg;

    if (admit(w, req))
        routes_handle(&w->srv->routes, req);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct timeval drain = { 0, HTTP_DRAIN_MS * 1000 };

    (void)fd;
    (void)what;
    if (w->bound) {
        evhttp_del_accept_socket(w->http, w->bound);
        w->bound = NULL;
    }
    event_base_loopexit(w->base, &drain);
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
    w->base = event_base_new();
    if (!w->base || !(w->http = evhttp_new(w->base)))
        return xerr_set(err, XE_NOMEM, "cannot create an event loop");
    int fd = dup(srv->listen_fd);
    if (fd < 0)
        return xerr_set(err, XE_IO, "dup: %s", strerror(errno));
    w->bound = evhttp_accept_socket_with_handle(w->http, fd);
    if (!w->bound) {
        close(fd);
        return xerr_set(err, XE_IO, "cannot accept on the listening socket");
    }
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                            EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_max_headers_size(w->http, HTTP_LIBEVENT_HEADERS_MAX);
    evhttp_set_max_body_size(w->http,
                             (ev_ssize_t)(2 * srv->cfg.max_body_bytes + HTTP_LIBEVENT_BODY_SLACK));
    evhttp_set_timeout(w->http, srv->cfg.idle_timeout_s);
    evhttp_set_gencb(w->http, on_request, w);
    w->stop_event = event_new(w->base, -1, 0, on_stop, w);
    if (!w->stop_event)
        return xerr_set(err, XE_NOMEM, "cannot create an event");
    return XE_OK;
}

static void worker_fini(struct worker *w)
{
    if (w->stop_event)
        event_free(w->stop_event);
    if (w->http)
        evhttp_free(w->http); /* closes connections: their close callbacks use the set */
    if (w->base)
        event_base_free(w->base);
    free(w->conns.slots);
}

int server_start(struct index *ix, const struct server_config *cfg, struct server **out,
                 struct xerr *err)
{
    static pthread_once_t threads_once = PTHREAD_ONCE_INIT;
    struct server *srv;
    int rc;

    pthread_once(&threads_once, (void (*)(void))evthread_use_pthreads);
    srv = calloc(1, sizeof *srv);
    if (!srv)
        return xerr_set(err, XE_NOMEM, "out of memory");
    srv->cfg = *cfg;
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
    free(srv);
}
