/*
 * One HTTP/1.1 connection: bytes in, requests out to server/routes.c, replies
 * back, one request at a time (pipelined requests wait in the input buffer
 * and are answered in order).
 *
 * Design. evhttp is gone: it took the first of two Content-Length headers,
 * ignored "Transfer-Encoding : chunked", took "+2" for a length, read every
 * body before anyone could refuse it, answered malformed requests with HTML
 * and timed requests out per byte. Bytes now go through server/reqparse.h
 * (http_parser plus the checks RFC 9112 adds), and every refusal here is our
 * JSON with "Connection: close". A request's head is decided on before its
 * body is read: admission (connection limits, server/http.c), then
 * routes_head() (API key, body limit), so a refused 60 MiB upload costs a
 * reply, not 60 MiB.
 *
 * A connection is in one phase:
 *   IDLE        between requests (or before the first): the idle timeout runs;
 *   HEAD, BODY  a request is arriving: the request deadline runs from its
 *               first byte (--request-timeout), however the bytes trickle;
 *   HANDLING    its reply is being made, possibly on a write thread
 *               (http_request_defer); input waits in the buffer;
 *   CLOSING     a last reply is queued: once it is written our side is shut,
 *               and what the client still sends is read and dropped for a
 *               short grace (a lingering close, so that it reads the reply
 *               rather than a reset), then the socket is closed.
 * One timer serves all phases. If the client goes away while a deferred write
 * runs, the socket is closed at once and the conn (with its request) is kept
 * until a write thread hands the request back.
 *
 * The request object is the conn's own, reused for each request: the head
 * in the parser's buffer, the body in an evbuffer, the reply in two more.
 * Not a bufferevent filter: replies are queued on the socket's bufferevent
 * itself, so "written" means written.
 */
#include "server/conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "server/http.h"
#include "server/reqparse.h"
#include "server/respond.h"
#include "server/routes.h"

/* A closing connection's last moments: its reply is written, then what the
 * client still sends is dropped for up to the grace (HTTP_CLOSE_GRACE_MS,
 * server/http.c; Apache's lingering close waits 2 s) or this many bytes,
 * before the socket is closed. */
#define HTTP_CLOSE_DISCARD_MAX_BYTES (1u << 20)
/* Pipelined requests are not parsed while this much reply waits unsent, and
 * the socket is not read while this much input waits unparsed: a client
 * that does not read cannot make us buffer without bound. */
#define HTTP_OUTPUT_HIGH_BYTES (1u << 20)
#define HTTP_INPUT_HIGH_BYTES (256u << 10)

enum conn_phase { CONN_IDLE, CONN_HEAD, CONN_BODY, CONN_HANDLING, CONN_CLOSING };

struct http_request {
    struct conn *conn;
    struct http_request *next_done; /* the worker's done list */
    struct reqparse rp;             /* the head */
    enum http_req_method method;
    const char *method_name;
    struct evbuffer *body;
    bool keep_alive, http10, deferred;
    /* the reply */
    int status;
    const char *reason;
    struct evbuffer *reply_headers; /* "Name: value\r\n" lines */
    struct evbuffer *reply_body;
    bool replied;
};

struct conn {
    struct worker *w;
    struct conn *prev, *next; /* the worker's list */
    struct conn_idle_link idle;
    struct bufferevent *bev; /* NULL once the socket is closed */
    struct event *timer;
    struct http_request req;
    struct client_key key;
    enum conn_phase phase;
    size_t body_limit, body_len;
    size_t discarded_bytes;
    uint64_t start_ns; /* the request's first byte, for refusals' log lines */
    bool admitted;     /* counted by worker_admit */
    bool close_after;  /* the reply in the making is the last */
    bool peer_eof;     /* the client shut its side */
    bool read_paused;  /* too much reply unsent */
};

/* ---- the request object, for routes ---- */

enum http_req_method http_request_method(const struct http_request *req)
{
    return req->method;
}

const char *http_request_method_name(const struct http_request *req)
{
    return req->method_name;
}

const char *http_request_target(const struct http_request *req)
{
    return reqparse_target(&req->rp);
}

const char *http_request_uri(const struct http_request *req)
{
    return reqparse_uri(&req->rp);
}

const char *http_request_header(const struct http_request *req, const char *name)
{
    return reqparse_header(&req->rp, name);
}

size_t http_request_header_count(const struct http_request *req, const char *name)
{
    return reqparse_header_count(&req->rp, name);
}

const char *http_request_body(struct http_request *req, size_t *len)
{
    *len = evbuffer_get_length(req->body);
    const char *p = *len ? (const char *)evbuffer_pullup(req->body, -1) : NULL;
    if (!p)
        *len = 0;
    return p ? p : "";
}

bool http_request_add_header(struct http_request *req, const char *name, const char *value)
{
    return evbuffer_add_printf(req->reply_headers, "%s: %s\r\n", name, value) >= 0;
}

void http_request_set_reply(struct http_request *req, int status, const char *reason,
                            const void *body, size_t len)
{
    req->status = status;
    req->reason = reason;
    evbuffer_drain(req->reply_body, evbuffer_get_length(req->reply_body));
    if (len && evbuffer_add(req->reply_body, body, len) < 0) {
        static const char oom[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        req->status = 500;
        req->reason = "Internal Server Error";
        evbuffer_drain(req->reply_body, evbuffer_get_length(req->reply_body));
        evbuffer_add_reference(req->reply_body, oom, sizeof oom - 1, NULL, NULL);
    }
    req->replied = true;
}

void http_request_defer(struct http_request *req)
{
    req->deferred = true;
}

void http_request_resume(struct http_request *req)
{
    struct worker *w = req->conn->w;

    pthread_mutex_lock(&w->done_lock);
    req->next_done = NULL;
    if (w->done_tail)
        w->done_tail->next_done = req;
    else
        w->done_head = req;
    w->done_tail = req;
    /* under the lock: once the worker can take req, it may finish and free
     * its event base (a stop), so nothing of w may be touched after */
    event_active(w->done_event, EV_READ, 0);
    pthread_mutex_unlock(&w->done_lock);
}

static enum http_req_method method_of(unsigned m)
{
    switch (m) {
    case HTTP_GET: return HTTP_REQ_GET;
    case HTTP_HEAD: return HTTP_REQ_HEAD;
    case HTTP_POST: return HTTP_REQ_POST;
    case HTTP_PUT: return HTTP_REQ_PUT;
    case HTTP_DELETE: return HTTP_REQ_DELETE;
    case HTTP_OPTIONS: return HTTP_REQ_OPTIONS;
    default: return HTTP_REQ_OTHER;
    }
}

/* ---- replies ---- */

static void conn_refuse(struct conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A reply of ours before routes saw the request (a refusal): JSON, and the
 * connection closes after it. */
static void conn_refuse(struct conn *c, int status, const char *fmt, ...)
{
    struct worker *w = c->w;
    char message[300];
    va_list ap;
    struct exchange ex = { .req = &c->req,
                           .method = c->req.method_name ? c->req.method_name : "-",
                           .path = c->req.rp.target_len ? c->req.rp.head : "(malformed)",
                           .start_ns = c->start_ns, .quiet = w->cfg->quiet,
                           .cors_origin = w->cfg->cors_origin, .metrics = &w->routes->metrics,
                           .route = ROUTE_OTHER };

    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    c->close_after = true;
    if (c->req.replied)
        return;
    evbuffer_drain(c->req.reply_headers, evbuffer_get_length(c->req.reply_headers));
    if (status == 503 || status == 429)
        http_request_add_header(&c->req, "Retry-After", "1");
    respond_error(&ex, status, "%s", message);
}

static const char *date_now(struct worker *w)
{
    struct timeval tv;
    struct tm tm;

    event_base_gettimeofday_cached(w->base, &tv);
    if (tv.tv_sec != w->date_s) {
        w->date_s = tv.tv_sec;
        if (!gmtime_r(&tv.tv_sec, &tm) ||
            !strftime(w->date, sizeof w->date, "%a, %d %b %Y %H:%M:%S GMT", &tm))
            w->date[0] = '\0';
    }
    return w->date;
}

static void conn_linger(struct conn *c);
static void conn_feed(struct conn *c);
static void conn_free(struct conn *c);

/* Queues the reply and moves on: to the next request, or to closing. */
static void conn_send(struct conn *c)
{
    struct http_request *req = &c->req;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    bool close = c->close_after || !req->keep_alive || c->peer_eof || c->w->stopping;
    const char *date = date_now(c->w);

    if (!req->replied) /* a route that answered nothing: a bug, but not the client's */
        http_request_set_reply(req, 500, "Internal Server Error", NULL, 0);
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", req->status, req->reason);
    evbuffer_add_buffer(out, req->reply_headers);
    if (req->status != 204 && req->status >= 200)
        evbuffer_add_printf(out, "Content-Length: %zu\r\n", evbuffer_get_length(req->reply_body));
    if (*date)
        evbuffer_add_printf(out, "Date: %s\r\n", date);
    if (close)
        evbuffer_add(out, "Connection: close\r\n", 19);
    else if (req->http10)
        evbuffer_add(out, "Connection: keep-alive\r\n", 24);
    evbuffer_add(out, "\r\n", 2);
    if (req->method != HTTP_REQ_HEAD)
        evbuffer_add_buffer(out, req->reply_body);
    evbuffer_drain(req->reply_body, evbuffer_get_length(req->reply_body));
    if (close) {
        conn_linger(c);
        return;
    }
    c->phase = CONN_IDLE;
    event_add(c->timer, &c->w->idle_timeout);
    if (c->admitted)
        worker_idle_push(c->w, c, now_ns());
}

/* ---- requests ---- */

static void request_reset(struct conn *c)
{
    struct http_request *req = &c->req;

    reqparse_next(&req->rp);
    req->method_name = NULL;
    req->method = HTTP_REQ_OTHER;
    req->keep_alive = req->http10 = req->deferred = req->replied = false;
    req->status = 0;
    evbuffer_drain(req->body, evbuffer_get_length(req->body));
    evbuffer_drain(req->reply_headers, evbuffer_get_length(req->reply_headers));
    evbuffer_drain(req->reply_body, evbuffer_get_length(req->reply_body));
    c->body_len = 0;
    c->body_limit = c->w->cfg->max_body_bytes;
}

static void request_begin(struct conn *c)
{
    if (c->idle.listed)
        worker_idle_remove(c->w, c);
    request_reset(c);
    c->phase = CONN_HEAD;
    c->start_ns = now_ns();
    event_add(c->timer, &c->w->request_timeout);
}

/* The head is whole: decides on it before any body byte is parsed. False
 * when refused (the reply is set). */
static bool head_decide(struct conn *c)
{
    http_parser *p = &c->req.rp.parser;
    struct http_request *req = &c->req;
    int status;

    req->method = method_of(p->method);
    req->method_name = http_method_str((enum http_method)p->method);
    req->keep_alive = http_should_keep_alive(p);
    req->http10 = p->http_major == 1 && p->http_minor == 0;
    if (p->http_major != 1) {
        conn_refuse(c, 400, "HTTP/%u.%u is not supported; send HTTP/1.1", p->http_major,
                    p->http_minor);
        return false;
    }
    if (!c->admitted) {
        status = worker_admit(c->w, c, &c->key);
        if (status == 429) {
            conn_refuse(c, 429, "this client has its limit of %u connections open; retry "
                        "shortly", c->w->cfg->max_connections_per_client);
            return false;
        }
        if (status) {
            conn_refuse(c, 503, "the server is at its limit of %u connections; retry shortly",
                        c->w->cfg->max_connections);
            return false;
        }
        c->admitted = true;
    }
    if (!routes_head(c->w->routes, req, &c->body_limit)) {
        c->close_after = true; /* answered: the body, if any, is never read */
        return false;
    }
    long long length = reqparse_content_length(&req->rp);
    if (length > 0 && (unsigned long long)length > c->body_limit) {
        conn_refuse(c, 413, "request body is %lld bytes; at most %zu are allowed", length,
                    c->body_limit);
        return false;
    }
    const char *expect = http_request_header(req, "Expect");
    if (expect && !strcasecmp(expect, "100-continue") && !req->http10)
        bufferevent_write(c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return true;
}

/* Body bytes from the parser, up to the route's limit. */
static int take_body(void *arg, const char *p, size_t len)
{
    struct conn *c = arg;

    if (len > c->body_limit - c->body_len) {
        conn_refuse(c, 413, "request body is over %zu bytes; at most %zu are allowed",
                    c->body_limit, c->body_limit);
        return -1;
    }
    c->body_len += len;
    return evbuffer_add(c->req.body, p, len) < 0 ? -1 : 0;
}

static void conn_handle(struct conn *c)
{
    struct worker *w = c->w;

    event_del(c->timer);
    routes_handle(w->routes, &c->req);
    if (c->req.deferred) {
        w->n_deferred++;
        return;
    }
    conn_send(c);
}

/* Parses what the input holds, one request at a time. */
static void conn_feed(struct conn *c)
{
    while (c->bev && c->phase <= CONN_BODY) {
        struct evbuffer *in = bufferevent_get_input(c->bev);
        struct evbuffer *out = bufferevent_get_output(c->bev);
        struct evbuffer_iovec vec;
        char why[300];
        size_t used;

        if (!evbuffer_get_length(in))
            return;
        if (evbuffer_get_length(out) > HTTP_OUTPUT_HIGH_BYTES) {
            bufferevent_disable(c->bev, EV_READ); /* the client reads first */
            c->read_paused = true;
            return;
        }
        if (c->phase == CONN_IDLE)
            request_begin(c);
        if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1)
            return;
        enum reqparse_event ev = reqparse_feed(&c->req.rp, vec.iov_base, vec.iov_len, &used);
        evbuffer_drain(in, used);
        switch (ev) {
        case REQPARSE_MORE:
            if (used < vec.iov_len)
                return; /* not expected without an error; wait for more */
            continue;
        case REQPARSE_HEAD:
            c->phase = CONN_BODY;
            if (head_decide(c))
                continue;
            break;
        case REQPARSE_MESSAGE:
            c->phase = CONN_HANDLING;
            if (c->req.rp.parser.upgrade)
                c->close_after = true; /* what follows is another protocol: we end here */
            conn_handle(c);
            continue;
        case REQPARSE_ERROR: {
            int status = reqparse_error(&c->req.rp, why, sizeof why);
            if (status)
                conn_refuse(c, status, "%s", why);
            c->close_after = true; /* status 0: take_body() answered */
            break;
        }
        }
        c->phase = CONN_HANDLING;
        event_del(c->timer);
        conn_send(c);
        return;
    }
}

/* ---- closing ---- */

/* The last reply is queued: shut our side once it is written, read and
 * drop what the client sends for the grace, then close. */
static void conn_linger(struct conn *c)
{
    c->phase = CONN_CLOSING;
    if (c->idle.listed)
        worker_idle_remove(c->w, c);
    event_del(c->timer);
    event_add(c->timer, &c->w->close_grace);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->read_paused = false;
    if (!evbuffer_get_length(bufferevent_get_output(c->bev))) {
        shutdown(bufferevent_getfd(c->bev), SHUT_WR);
        if (c->peer_eof)
            conn_free(c);
    }
}

/* Closes the socket; the conn itself goes too unless a deferred request holds it. */
static void conn_drop(struct conn *c)
{
    if (c->phase == CONN_HANDLING && c->req.deferred) {
        if (c->bev) {
            bufferevent_free(c->bev); /* BEV_OPT_CLOSE_ON_FREE */
            c->bev = NULL;
        }
        if (c->admitted) /* no longer a connection: the limits forget it now */
            worker_release(c->w, &c->key);
        c->admitted = false;
        event_del(c->timer);
        return;
    }
    conn_free(c);
}

static void conn_free(struct conn *c)
{
    struct worker *w = c->w;

    if (c->idle.listed)
        worker_idle_remove(w, c);
    if (c->admitted)
        worker_release(w, &c->key);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->n_conns--;
    if (c->bev)
        bufferevent_free(c->bev);
    event_free(c->timer);
    evbuffer_free(c->req.body);
    evbuffer_free(c->req.reply_headers);
    evbuffer_free(c->req.reply_body);
    reqparse_fini(&c->req.rp);
    free(c);
    worker_maybe_exit(w);
}

void conn_close(struct conn *c)
{
    conn_drop(c);
}

/* ---- events ---- */

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    (void)fd;
    (void)what;
    switch (c->phase) {
    case CONN_IDLE:
    case CONN_CLOSING:
        conn_free(c); /* silent too long, or the grace is over */
        break;
    case CONN_HEAD:
    case CONN_BODY:
        c->phase = CONN_HANDLING;
        conn_refuse(c, 408, "the request did not arrive whole within %d s of its first byte",
                    c->w->cfg->request_timeout_s);
        conn_send(c);
        break;
    case CONN_HANDLING:
        break;
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    if (c->phase == CONN_CLOSING) {
        struct evbuffer *in = bufferevent_get_input(bev);
        size_t len = evbuffer_get_length(in);
        evbuffer_drain(in, len);
        c->discarded_bytes += len;
        if (c->discarded_bytes > HTTP_CLOSE_DISCARD_MAX_BYTES)
            conn_free(c);
        return;
    }
    conn_feed(c);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    if (c->phase == CONN_CLOSING) {
        shutdown(bufferevent_getfd(bev), SHUT_WR);
        if (c->peer_eof)
            conn_free(c);
        return;
    }
    if (c->read_paused) {
        c->read_paused = false;
        bufferevent_enable(bev, EV_READ);
        conn_feed(c);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;

    (void)bev;
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
        c->peer_eof = true;
        if (c->phase == CONN_HANDLING)
            return; /* a deferred reply goes out, then the connection closes */
        if (c->phase != CONN_CLOSING && evbuffer_get_length(bufferevent_get_output(c->bev))) {
            conn_linger(c);
            return;
        }
    }
    conn_drop(c); /* error, write timeout, or EOF with nothing left to say */
}

bool conn_accept(struct worker *w, evutil_socket_t fd, const struct sockaddr *addr,
                 int addr_len)
{
    struct conn *c = calloc(1, sizeof *c);

    if (!c)
        goto out_close;
    c->w = w;
    c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->timer = event_new(w->base, -1, 0, on_timer, c);
    c->req.body = evbuffer_new();
    c->req.reply_headers = evbuffer_new();
    c->req.reply_body = evbuffer_new();
    c->req.conn = c;
    if (!c->bev || !c->timer || !c->req.body || !c->req.reply_headers || !c->req.reply_body)
        goto out_free;
    if (addr->sa_family == AF_INET && addr_len >= (int)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)addr;
        c->key.addr[10] = c->key.addr[11] = 0xff;
        memcpy(c->key.addr + 12, &in4->sin_addr, 4);
    } else if (addr->sa_family == AF_INET6 && addr_len >= (int)sizeof(struct sockaddr_in6)) {
        memcpy(c->key.addr, &((const struct sockaddr_in6 *)addr)->sin6_addr, 16);
    }
    reqparse_init(&c->req.rp, take_body, c);
    c->phase = CONN_IDLE;
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, HTTP_INPUT_HIGH_BYTES);
    /* a client that stops reading our reply is dropped like an idle one */
    bufferevent_set_timeouts(c->bev, NULL, &w->idle_timeout);
    if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) < 0)
        goto out_free;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->n_conns++;
    event_add(c->timer, &w->idle_timeout);
    return true;
out_free:
    if (c->bev)
        bufferevent_free(c->bev);
    else
        close(fd);
    if (c->timer)
        event_free(c->timer);
    if (c->req.body)
        evbuffer_free(c->req.body);
    if (c->req.reply_headers)
        evbuffer_free(c->req.reply_headers);
    if (c->req.reply_body)
        evbuffer_free(c->req.reply_body);
    free(c);
    return false;
out_close:
    close(fd);
    return false;
}

bool conn_is_idle(const struct conn *c)
{
    return c->phase == CONN_IDLE;
}

struct conn *conn_next(const struct conn *c)
{
    return c->next;
}

struct conn_idle_link *conn_idle_link(struct conn *c)
{
    return &c->idle;
}

void conn_resume_done(struct worker *w)
{
    pthread_mutex_lock(&w->done_lock);
    struct http_request *req = w->done_head;
    w->done_head = w->done_tail = NULL;
    pthread_mutex_unlock(&w->done_lock);
    while (req) {
        struct http_request *next = req->next_done;
        struct conn *c = req->conn;
        w->n_deferred--;
        req->deferred = false;
        if (!c->bev) {
            conn_free(c); /* the client left meanwhile */
        } else {
            conn_send(c);
            conn_feed(c);
        }
        req = next;
    }
    if (w->stopping)
        worker_drain_rearm(w); /* the replies just queued get their time to go out */
    worker_maybe_exit(w);
}

void conn_free_all(struct worker *w)
{
    while (w->conns) {
        w->conns->req.deferred = false;
        conn_free(w->conns);
    }
}
