/*
 * Server lifecycle (see http.h). libevent's locking is switched on once
 * (evthread_use_pthreads) only so that the main thread can wake a worker
 * with event_active() to stop it; workers never share an event_base.
 *
 * Request deadlines and the head cap. evhttp's timeout (--idle-timeout) is a
 * bufferevent read timeout that every byte resets, so a client sending a
 * byte a second would keep its connection forever; and past evhttp's header
 * limit it answers with an HTML page. So each connection's bufferevent is
 * made here (evhttp_set_bevcb): a plain socket bufferevent, as evhttp makes
 * it, with a callback on its input buffer that sees every read before evhttp
 * parses it, copying nothing. At a request's first byte it arms a deadline
 * (--request-timeout); on_request() disarms it; while the head is arriving it
 * counts bytes up to the blank line. A connection past its deadline or the
 * head cap is taken from evhttp (its bufferevent callbacks become ours): our
 * JSON 408, 431 or 414 goes out after any reply still queued, the write side
 * is shut, what the client still sends is read and dropped for a short grace
 * so that it reads the reply rather than a reset, and evhttp_connection_free()
 * ends it.
 *
 * Not a bufferevent_filter: in libevent 2.1.12 a filter runs its write
 * callback as soon as output moves to the socket bufferevent, so evhttp
 * would take a reply as sent while it is still queued and free a
 * "Connection: close" connection with the reply unsent; and the filter's
 * generic timeouts would stand in for the socket's.
 */
#include "server/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
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
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "index/docstore.h"
#include "index/error.h"
#include "query/search.h"
#include "server/cache.h"
#include "server/respond.h"
#include "server/routes.h"

/* The request line and headers together, counted through the blank line;
 * past this, 431 (or 414 while still in the request line). 64 KiB was
 * libevent's limit here before it was ours; browsers send under 8 KiB and
 * nginx refuses past 4 x 8 KiB (large_client_header_buffers), so nothing sane
 * is refused. */
#define HTTP_HEAD_MAX_BYTES (64u << 10)
/* libevent's own header limit, only a backstop: the input watcher sees every
 * byte before evhttp parses it, so ours answers first, in JSON. */
#define HTTP_LIBEVENT_HEADERS_MAX (2 * HTTP_HEAD_MAX_BYTES)
/* Bodies up to twice our limit (plus a MiB) are read and refused by us in
 * JSON; only absurd ones meet libevent's own HTML 413. */
#define HTTP_LIBEVENT_BODY_SLACK (1u << 20)
#define HTTP_DRAIN_MS 500
/* A refused connection's last moments: its reply is written, then what the
 * client still sends is dropped for up to this long or this many bytes
 * (Apache's lingering close waits 2 s) before the socket is closed. */
#define HTTP_CLOSE_GRACE_MS 2000
#define HTTP_CLOSE_DISCARD_MAX_BYTES (1u << 20)
#define HTTP_SCAN_VECS 8

/*
 * Where a connection is, as the input watcher sees it.
 */
enum conn_phase {
    CONN_IDLE,    /* between requests: evhttp's --idle-timeout governs */
    CONN_HEAD,    /* a request has begun: deadline armed, head bytes counted */
    CONN_BODY,    /* the head is whole: evhttp reads the body, deadline armed */
    CONN_CLOSING, /* taken from evhttp: our reply, a grace, then the close */
};

/*
 * A connection that has sent at least one byte. Made by the input watcher
 * at that byte; freed by on_connection_close(), which evhttp calls from
 * evhttp_connection_free() before it frees the bufferevent, so neither the
 * timer nor the watcher outlives the connection. Only the worker's thread
 * touches it (and the main thread in server_stop, once the worker is joined).
 */
struct conn {
    struct worker *w;
    struct evhttp_connection *evcon;
    struct bufferevent *bev;
    struct evbuffer_cb_entry *watch; /* on bev's input; NULL once closing */
    struct event *timer;             /* the deadline; when closing, the grace */
    struct timeval start;            /* the request's first byte (cached time) */
    enum conn_phase phase;
    int refuse_status;        /* a pipelined head over the cap, seen in on_request */
    size_t head_bytes;        /* of this request's head, through its blank line */
    size_t line_bytes;        /* of the head line in progress */
    size_t discarded_bytes;   /* read and dropped while closing */
    unsigned char prev_byte;  /* the byte before the next one scanned */
    bool line_seen;           /* a non-empty head line has ended */
    bool counted;             /* in connections_open (admit) */
};

/*
 * The connections a worker watches, by evhttp connection, so that
 * on_request() finds its state. Open addressing on the connection's address;
 * only the worker's thread touches it.
 */
struct conn_set {
    struct conn **slots;
    uint32_t cap, n;
};

struct worker {
    struct server *srv;
    struct conn_set conns;
    pthread_t thread;
    struct event_base *base;
    struct timeval request_timeout; /* common timeouts of base (O(1) to arm) */
    struct timeval close_grace;
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
        .request_timeout_s = 10,
        .max_connections = 4096,
        .recency_half_life_days = SEARCH_RECENCY_HALF_LIFE_DAYS,
        .cache_bytes = (size_t)CACHE_DEFAULT_MB << 20,
        .query_timeout_ms = SEARCH_TIMEOUT_DEFAULT_MS,
    };
}

/* The worker whose loop runs on this thread: the input watcher's first call
 * has a bufferevent and no other way to it. Set by worker_main. */
static _Thread_local struct worker *thread_worker;

static uint32_t conn_hash(const struct evhttp_connection *evcon, uint32_t cap)
{
    uint64_t h = (uint64_t)(uintptr_t)evcon * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32) & (cap - 1);
}

static struct conn *conn_set_find(const struct conn_set *s,
                                  const struct evhttp_connection *evcon)
{
    if (!s->cap)
        return NULL;
    for (uint32_t i = conn_hash(evcon, s->cap);; i = (i + 1) & (s->cap - 1)) {
        if (!s->slots[i] || s->slots[i]->evcon == evcon)
            return s->slots[i];
    }
}

static bool conn_set_add(struct conn_set *s, struct conn *c)
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
    uint32_t i = conn_hash(c->evcon, s->cap);
    while (s->slots[i])
        i = (i + 1) & (s->cap - 1);
    s->slots[i] = c;
    s->n++;
    return true;
}

/* Removes c, moving later entries of its probe run back (no tombstones). */
static void conn_set_remove(struct conn_set *s, const struct conn *c)
{
    uint32_t mask = s->cap - 1, i;

    if (!s->cap)
        return;
    for (i = conn_hash(c->evcon, s->cap); s->slots[i] != c; i = (i + 1) & mask)
        if (!s->slots[i])
            return;
    s->slots[i] = NULL;
    s->n--;
    for (uint32_t j = (i + 1) & mask; s->slots[j]; j = (j + 1) & mask) {
        struct conn *moved = s->slots[j];
        s->slots[j] = NULL;
        s->n--;
        conn_set_add(s, moved);
    }
}

static void on_connection_close(struct evhttp_connection *evcon, void *arg)
{
    struct conn *c = arg;

    (void)evcon;
    if (c->counted)
        atomic_fetch_sub(&c->w->srv->routes.metrics.connections_open, 1);
    conn_set_remove(&c->w->conns, c);
    if (c->watch)
        evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->watch);
    event_free(c->timer);
    free(c);
}

/* ---- the head: counted up to its blank line ---- */

/*
 * Counts the head bytes among p[0..len) into c, through the blank line that
 * ends the head (a line that is empty or a lone CR, as evbuffer_readln's
 * EVBUFFER_EOL_CRLF reads it; blank lines before the request line are
 * skipped). True when that line was among them.
 */
static bool head_scan(struct conn *c, const unsigned char *p, size_t len)
{
    const unsigned char *end = p + len;

    while (p < end) {
        const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            c->head_bytes += (size_t)(end - p);
            c->line_bytes += (size_t)(end - p);
            c->prev_byte = end[-1];
            return false;
        }
        size_t seg = (size_t)(nl - p);
        size_t line = c->line_bytes + seg; /* without the '\n' */
        unsigned char before = seg ? nl[-1] : c->prev_byte;
        c->head_bytes += seg + 1;
        c->line_bytes = 0;
        c->prev_byte = '\n';
        p = nl + 1;
        if (line > 1 || (line == 1 && before != '\r'))
            c->line_seen = true;
        else if (c->line_seen)
            return true;
    }
    return false;
}

/* Scans input from offset on, until the head ends or passes the cap. */
static void head_scan_input(struct conn *c, struct evbuffer *input, size_t offset)
{
    struct evbuffer_iovec vec[HTTP_SCAN_VECS];
    struct evbuffer_ptr pos;
    size_t len = evbuffer_get_length(input);

    if (offset >= len || evbuffer_ptr_set(input, &pos, offset, EVBUFFER_PTR_SET) < 0)
        return;
    for (;;) {
        int n = evbuffer_peek(input, (ev_ssize_t)(len - offset), &pos, vec, HTTP_SCAN_VECS);
        int used = n < HTTP_SCAN_VECS ? n : HTTP_SCAN_VECS;
        size_t scanned = 0;
        for (int i = 0; i < used; i++) {
            if (head_scan(c, vec[i].iov_base, vec[i].iov_len)) {
                c->phase = CONN_BODY;
                return;
            }
            if (c->head_bytes > HTTP_HEAD_MAX_BYTES)
                return;
            scanned += vec[i].iov_len;
        }
        offset += scanned;
        if (n <= HTTP_SCAN_VECS || offset >= len ||
            evbuffer_ptr_set(input, &pos, scanned, EVBUFFER_PTR_ADD) < 0)
            return;
    }
}

/* ---- refusing a connection: our reply, a grace, the close ---- */

static void log_refusal(const struct conn *c, const char *what, int status, size_t bytes)
{
    struct timeval now, took;

    event_base_gettimeofday_cached(c->w->base, &now);
    timersub(&now, &c->start, &took);
    uint64_t us = took.tv_sec < 0 ? 0 : (uint64_t)took.tv_sec * 1000000u + (uint64_t)took.tv_usec;
    metrics_observe(&c->w->srv->routes.metrics, ROUTE_OTHER, status, us);
    if (!c->w->srv->cfg.quiet)
        fprintf(stderr, "- (%s) %d %zu %lluus\n", what, status, bytes, (unsigned long long)us);
}

/* Appends our JSON error reply for status (408, 414, 431) to out, with
 * "Connection: close" and the headers respond.c puts on every reply. */
static void append_refusal(const struct conn *c, int status, struct evbuffer *out)
{
    const struct server_config *cfg = &c->w->srv->cfg;
    const char *reason = "Request Header Fields Too Large", *code = "headers_too_large",
               *what = "headers too large";
    char message[160], body[320], date[64];
    struct tm tm;
    time_t now = time(NULL);

    if (status == 408) {
        reason = "Request Timeout";
        code = "request_timeout";
        what = "request timeout";
        snprintf(message, sizeof message,
                 "the request did not arrive whole within %d s of its first byte "
                 "(--request-timeout)",
                 cfg->request_timeout_s);
    } else if (status == 414) {
        reason = "URI Too Long";
        code = "uri_too_long";
        what = "request line too long";
        snprintf(message, sizeof message, "the request line is over %u bytes",
                 HTTP_HEAD_MAX_BYTES);
    } else {
        status = 431;
        snprintf(message, sizeof message, "the request line and headers are over %u bytes",
                 HTTP_HEAD_MAX_BYTES);
    }
    int n = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code,
                     message);
    if (n < 0 || (size_t)n >= sizeof body)
        n = 0;
    if (!gmtime_r(&now, &tm) || !strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm))
        date[0] = '\0';
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=utf-8\r\n"
                        "Content-Length: %d\r\nConnection: close\r\n",
                        status, reason, n);
    if (date[0])
        evbuffer_add_printf(out, "Date: %s\r\n", date);
    if (cfg->cors_origin)
        evbuffer_add_printf(out, "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n",
                            cfg->cors_origin);
    evbuffer_add(out, "\r\n", 2);
    evbuffer_add(out, body, (size_t)n);
    log_refusal(c, what, status, (size_t)n);
}

/* Once taken from evhttp, the bufferevent's argument is the conn; evhttp's
 * deferred read callback passes its connection instead, so ask the bev. */
static struct conn *conn_of(struct bufferevent *bev)
{
    void *arg = NULL;

    bufferevent_getcb(bev, NULL, NULL, NULL, &arg);
    return arg;
}

static void on_closing_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = conn_of(bev);
    struct evbuffer *input = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(input);

    (void)arg;
    evbuffer_drain(input, len);
    c->discarded_bytes += len;
    if (c->discarded_bytes > HTTP_CLOSE_DISCARD_MAX_BYTES)
        evhttp_connection_free(c->evcon); /* frees c */
}

/* The reply is out: shut our side so that the client reads it to the end. */
static void on_closing_write(struct bufferevent *bev, void *arg)
{
    (void)arg;
    bufferevent_disable(bev, EV_WRITE);
    shutdown(bufferevent_getfd(bev), SHUT_WR);
}

static void on_closing_event(struct bufferevent *bev, short what, void *arg)
{
    (void)what;
    (void)arg;
    evhttp_connection_free(conn_of(bev)->evcon); /* EOF, error or timeout; frees c */
}

/*
 * Takes the connection from evhttp and answers status. evhttp never sees its
 * bufferevent again: its callbacks are ours, what it has not parsed is
 * dropped, and its half-read request is freed with the connection. A reply
 * of evhttp's still queued (pipelining) goes out first.
 */
static void conn_refuse(struct conn *c, int status)
{
    struct evbuffer *input = bufferevent_get_input(c->bev);

    if (c->phase == CONN_CLOSING)
        return;
    c->phase = CONN_CLOSING;
    event_del(c->timer);
    if (c->watch) {
        evbuffer_remove_cb_entry(input, c->watch);
        c->watch = NULL;
    }
    bufferevent_setcb(c->bev, on_closing_read, on_closing_write, on_closing_event, c);
    evbuffer_drain(input, evbuffer_get_length(input));
    append_refusal(c, status, bufferevent_get_output(c->bev));
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    event_add(c->timer, &c->w->close_grace);
}

/* ---- the deadline ---- */

static void request_begin(struct conn *c)
{
    c->phase = CONN_HEAD;
    c->head_bytes = c->line_bytes = 0;
    c->prev_byte = 0;
    c->line_seen = false;
    event_base_gettimeofday_cached(c->w->base, &c->start);
    event_add(c->timer, &c->w->request_timeout);
}

static void on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    (void)fd;
    (void)what;
    if (c->phase == CONN_CLOSING)
        evhttp_connection_free(c->evcon); /* the grace is over; frees c */
    else if (c->refuse_status)
        conn_refuse(c, c->refuse_status);
    else if (c->phase != CONN_IDLE)
        conn_refuse(c, 408);
}

/* The request is whole: disarm, and start on the next one if it has begun. */
static void request_end(struct conn *c)
{
    struct evbuffer *input = bufferevent_get_input(c->bev);

    event_del(c->timer);
    c->phase = CONN_IDLE;
    if (!evbuffer_get_length(input))
        return;
    request_begin(c);
    head_scan_input(c, input, 0);
    if (c->head_bytes > HTTP_HEAD_MAX_BYTES) {
        /* answered from the timer, outside evhttp's callback */
        c->refuse_status = c->line_seen ? 431 : 414;
        event_del(c->timer);
        event_active(c->timer, EV_TIMEOUT, 0);
    }
}

/* Every change to a watched connection's input, before evhttp parses it. */
static void on_input(struct evbuffer *input, const struct evbuffer_cb_info *info, void *arg)
{
    struct conn *c = arg;

    if (!info->n_added || c->phase == CONN_CLOSING)
        return; /* evhttp consuming what it parsed */
    size_t len = evbuffer_get_length(input);
    size_t from = info->n_added < len ? len - info->n_added : 0;
    if (c->phase == CONN_IDLE)
        request_begin(c);
    if (c->phase == CONN_HEAD) {
        head_scan_input(c, input, from);
        if (c->head_bytes > HTTP_HEAD_MAX_BYTES)
            conn_refuse(c, c->line_seen ? 431 : 414);
    }
}

/*
 * A connection's first bytes: makes its conn. evhttp passes its connection
 * as the argument of every callback it sets on the bufferevent (libevent
 * 2.1's http.c), which is the only way from the bufferevent to it; checked
 * both ways. A connection that cannot be watched (out of memory) keeps
 * evhttp's own limits, and on_request() refuses its request.
 */
static void on_first_input(struct evbuffer *input, const struct evbuffer_cb_info *info,
                           void *arg)
{
    struct bufferevent *bev = arg;
    struct worker *w = thread_worker;
    void *cbarg = NULL;

    if (!info->n_added)
        return;
    evbuffer_remove_cb(input, on_first_input, bev);
    bufferevent_getcb(bev, NULL, NULL, NULL, &cbarg);
    struct evhttp_connection *evcon = cbarg;
    if (!w || !evcon || evhttp_connection_get_bufferevent(evcon) != bev)
        return;
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    *c = (struct conn){ .w = w, .evcon = evcon, .bev = bev, .phase = CONN_IDLE };
    c->timer = event_new(w->base, -1, 0, on_conn_timer, c);
    if (!c->timer)
        goto out_free;
    c->watch = evbuffer_add_cb(input, on_input, c);
    if (!c->watch)
        goto out_timer;
    if (!conn_set_add(&w->conns, c))
        goto out_watch;
    evhttp_connection_set_closecb(evcon, on_connection_close, c);
    on_input(input, info, c);
    return;
out_watch:
    evbuffer_remove_cb_entry(input, c->watch);
out_timer:
    event_free(c->timer);
out_free:
    free(c);
}

/*
 * Each accepted connection's bufferevent, made as evhttp makes it without
 * this callback (no options: evhttp closes the socket itself), with the
 * watcher for its first bytes. NULL lets evhttp make its own.
 */
static struct bufferevent *on_new_bufferevent(struct event_base *base, void *arg)
{
    struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);

    (void)arg;
    if (bev)
        evbuffer_add_cb(bufferevent_get_input(bev), on_first_input, bev); /* NULL: unwatched */
    return bev;
}

/*
 * Counts the connection on its first request; past max_connections, answers
 * 503 at once and closes it, so that a flood costs a reply, not a worker.
 * So does a connection that could not be watched (out of memory).
 */
static bool admit(struct worker *w, struct conn *c, struct evhttp_request *req)
{
    struct metrics *m = &w->srv->routes.metrics;

    if (c && c->counted)
        return true;
    if (!c || atomic_load(&m->connections_open) >= (int_fast64_t)w->srv->cfg.max_connections) {
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
    c->counted = true;
    atomic_fetch_add(&m->connections_open, 1);
    return true;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct worker *w = arg;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct conn *c = evcon ? conn_set_find(&w->conns, evcon) : NULL;

    if (c)
        request_end(c);
    if (admit(w, c, req))
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

    thread_worker = w;
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
    evhttp_set_bevcb(w->http, on_new_bufferevent, w);
    evhttp_set_gencb(w->http, on_request, w);
    struct timeval request_timeout = { srv->cfg.request_timeout_s, 0 };
    struct timeval close_grace = { HTTP_CLOSE_GRACE_MS / 1000, HTTP_CLOSE_GRACE_MS % 1000 * 1000 };
    const struct timeval *common = event_base_init_common_timeout(w->base, &request_timeout);
    w->request_timeout = common ? *common : request_timeout;
    common = event_base_init_common_timeout(w->base, &close_grace);
    w->close_grace = common ? *common : close_grace;
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
