/*
 * One HTTP/1.1 connection: bytes in, requests out to server/routes.c, replies
 * back, one request at a time (pipelined requests wait in the input buffer
 * and are answered in order).
 *
 * Design. The bytes go through http_parser (Debian's libhttp-parser, strict
 * mode), not evhttp: evhttp took the first of two Content-Length headers,
 * ignored "Transfer-Encoding : chunked", took "+2" for a length, read every
 * body before anyone could refuse it, and answered malformed requests with
 * HTML. http_parser refuses each of those (RFC 9112), and every refusal here
 * is our JSON with "Connection: close". The request's head is decided on
 * before its body is read: admission (connection limits, server/http.c),
 * then routes_head() (API key, body limit), so a refused 60 MiB upload costs
 * a reply, not 60 MiB.
 *
 * A connection is in one phase:
 *   IDLE        between requests (or before the first): the idle timeout runs;
 *   HEAD, BODY  a request is arriving: the request deadline runs from its
 *               first byte (--request-timeout; every byte reset evhttp's);
 *   HANDLING    its reply is being made, possibly on a write thread
 *               (http_request_defer); input waits in the buffer;
 *   CLOSING     a last reply is queued: once it is written our side is shut,
 *               and what the client still sends is read and dropped for a
 *               short grace (a lingering close, so that it reads the reply
 *               rather than a reset), then the socket is closed.
 * One timer serves all phases. If the client goes away while a deferred write
 * runs, the socket is closed at once and the conn (with its request) is kept
 * until the write thread hands the request back.
 *
 * The request object is the conn's own, reused for each request: the head is
 * copied into one buffer (target, then header names and values, each
 * NUL-terminated), the body into an evbuffer, the reply goes to two more.
 */
#include "server/conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <http_parser.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "server/http.h"
#include "server/respond.h"
#include "server/routes.h"

/* The request line and headers together; past this, 431 (or 414 while still
 * in the request line). 64 KiB was libevent's limit before it was ours;
 * browsers send under 8 KiB and nginx refuses past 4 x 8 KiB
 * (large_client_header_buffers), so nothing sane is refused. */
#define HTTP_HEAD_MAX_BYTES (64u << 10)
/* A refused connection's last moments: its reply is written, then what the
 * client still sends is dropped for up to this long or this many bytes
 * (Apache's lingering close waits 2 s) before the socket is closed. */
#define HTTP_CLOSE_DISCARD_MAX_BYTES (1u << 20)
/* Pipelined requests are not parsed while this much reply waits unsent, and
 * the socket is not read while this much input waits unparsed: a client
 * that does not read cannot make us buffer without bound. */
#define HTTP_OUTPUT_HIGH_BYTES (1u << 20)
#define HTTP_INPUT_HIGH_BYTES (256u << 10)

enum conn_phase { CONN_IDLE, CONN_HEAD, CONN_BODY, CONN_HANDLING, CONN_CLOSING };

struct header {
    uint32_t name_off, name_len, value_off, value_len; /* in the head buffer */
};

enum head_piece { PIECE_NONE, PIECE_URL, PIECE_FIELD, PIECE_VALUE };

struct http_request {
    struct conn *conn;
    struct http_request *next_done; /* the worker's done list */
    enum http_req_method method;
    const char *method_name;
    char *head; /* target, then header names and values, each NUL-terminated */
    size_t head_len, head_cap;
    uint32_t target_len;
    char *uri; /* origin form: into head, or origin_buf */
    char *origin_buf;
    struct header *headers;
    size_t n_headers, headers_cap;
    enum head_piece piece;
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
    http_parser parser;
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
    bool head_pending; /* the parser paused at the end of a head: head_decide() next */
    unsigned char prev_byte; /* the head byte before the next one head_scan() sees */
    const char *bad_head;    /* why the head was refused, by us rather than the parser */
};

static http_parser_settings settings;

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
    return req->head;
}

const char *http_request_uri(const struct http_request *req)
{
    return req->uri;
}

static bool header_is(const struct http_request *req, const struct header *h, const char *name)
{
    return strlen(name) == h->name_len && !strncasecmp(req->head + h->name_off, name, h->name_len);
}

const char *http_request_header(const struct http_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (header_is(req, &req->headers[i], name))
            return req->head + req->headers[i].value_off;
    return NULL;
}

size_t http_request_header_count(const struct http_request *req, const char *name)
{
    size_t n = 0;

    for (size_t i = 0; i < req->n_headers; i++)
        n += header_is(req, &req->headers[i], name);
    return n;
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
    pthread_mutex_unlock(&w->done_lock);
    event_active(w->done_event, EV_READ, 0);
}

/* ---- the head, from the parser's callbacks ---- */

static bool head_append(struct http_request *req, const char *p, size_t len)
{
    if (req->head_len + len + 1 > req->head_cap) {
        size_t cap = req->head_cap ? req->head_cap : 1024;
        while (cap < req->head_len + len + 1)
            cap *= 2;
        char *grown = realloc(req->head, cap);
        if (!grown)
            return false;
        req->head = grown;
        req->head_cap = cap;
    }
    memcpy(req->head + req->head_len, p, len);
    req->head_len += len;
    return true;
}

/* Ends the piece in progress with a NUL. */
static bool piece_end(struct http_request *req)
{
    if (req->piece == PIECE_NONE)
        return true;
    if (!head_append(req, "", 1))
        return false;
    if (req->piece == PIECE_URL) {
        req->target_len = (uint32_t)req->head_len - 1;
    } else if (req->piece == PIECE_FIELD) {
        struct header *h = &req->headers[req->n_headers - 1];
        h->name_len = (uint32_t)req->head_len - 1 - h->name_off;
        h->value_off = (uint32_t)req->head_len; /* an empty value, unless one follows */
        if (!head_append(req, "", 1))
            return false;
        req->head_len--; /* the value's bytes go over this NUL */
    } else {
        struct header *h = &req->headers[req->n_headers - 1];
        h->value_len = (uint32_t)req->head_len - 1 - h->value_off;
        while (h->value_len && (req->head[h->value_off + h->value_len - 1] == ' ' ||
                                req->head[h->value_off + h->value_len - 1] == '\t'))
            req->head[h->value_off + --h->value_len] = '\0'; /* RFC 9110 5.5: trim */
    }
    req->piece = PIECE_NONE;
    return true;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;

    c->req.piece = PIECE_URL;
    return head_append(&c->req, at, len) ? 0 : -1;
}

/* RFC 9110 5.6.2: a header name is a token. */
static bool is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    struct http_request *req = &c->req;

    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)at[i])) {
            c->bad_head = "a header name has a character other than a token's (RFC 9110 "
                          "5.6.2), such as a space before the colon";
            return -1;
        }

    if (req->piece != PIECE_FIELD) {
        if (!piece_end(req))
            return -1;
        if (req->n_headers == req->headers_cap) {
            size_t cap = req->headers_cap ? 2 * req->headers_cap : 16;
            struct header *grown = realloc(req->headers, cap * sizeof *grown);
            if (!grown)
                return -1;
            req->headers = grown;
            req->headers_cap = cap;
        }
        req->headers[req->n_headers++] = (struct header){ .name_off = (uint32_t)req->head_len };
        req->piece = PIECE_FIELD;
    }
    return head_append(req, at, len) ? 0 : -1;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    struct http_request *req = &c->req;

    if (req->piece == PIECE_FIELD) {
        if (!piece_end(req))
            return -1;
        req->piece = PIECE_VALUE;
    }
    return head_append(req, at, len) ? 0 : -1;
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

/* The origin form of an absolute-form target (RFC 9112 3.2.2): "scheme://authority"
 * dropped, "/" added when the path is empty. Other targets are kept. */
static bool origin_form(struct http_request *req)
{
    char *t = req->head;
    size_t i = 0;

    req->uri = t;
    if (t[0] == '/' || t[0] == '*')
        return true;
    while ((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') ||
           (i && ((t[i] >= '0' && t[i] <= '9') || t[i] == '+' || t[i] == '-' || t[i] == '.')))
        i++;
    if (!i || strncmp(t + i, "://", 3))
        return true;
    char *rest = t + i + 3 + strcspn(t + i + 3, "/?#");
    if (*rest == '/') {
        req->uri = rest;
        return true;
    }
    size_t n = strlen(rest);
    req->origin_buf = malloc(n + 2);
    if (!req->origin_buf)
        return false;
    req->origin_buf[0] = '/';
    memcpy(req->origin_buf + 1, rest, n + 1);
    req->uri = req->origin_buf;
    return true;
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
                           .path = c->req.head && c->req.target_len ? c->req.head : "(malformed)",
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

    req->head_len = 0;
    req->target_len = 0;
    req->n_headers = 0;
    req->piece = PIECE_NONE;
    req->uri = NULL;
    free(req->origin_buf);
    req->origin_buf = NULL;
    req->method_name = NULL;
    req->method = HTTP_REQ_OTHER;
    req->keep_alive = req->http10 = req->deferred = req->replied = false;
    req->status = 0;
    evbuffer_drain(req->body, evbuffer_get_length(req->body));
    evbuffer_drain(req->reply_headers, evbuffer_get_length(req->reply_headers));
    evbuffer_drain(req->reply_body, evbuffer_get_length(req->reply_body));
    c->body_len = 0;
    c->body_limit = c->w->cfg->max_body_bytes;
    c->bad_head = NULL;
    c->head_pending = false;
    c->prev_byte = '\n';
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

/* The head has passed the parser and head_scan(): decides on it before any
 * body byte is read. False when refused (the reply is set). */
static bool head_decide(struct conn *c)
{
    http_parser *p = &c->parser;
    struct http_request *req = &c->req;
    int status;

    req->method = method_of(p->method);
    req->method_name = http_method_str((enum http_method)p->method);
    req->keep_alive = http_should_keep_alive(p);
    req->http10 = p->http_major == 1 && p->http_minor == 0;
    if (!origin_form(req)) {
        conn_refuse(c, 500, "out of memory");
        return false;
    }
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
    if (!(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX &&
        p->content_length > c->body_limit) {
        conn_refuse(c, 413, "request body is %llu bytes; at most %zu are allowed",
                    (unsigned long long)p->content_length, c->body_limit);
        return false;
    }
    const char *expect = http_request_header(req, "Expect");
    if (expect && !strcasecmp(expect, "100-continue") && !req->http10)
        bufferevent_write(c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return true;
}

/* The parser stops here (paused) so that head_scan() sees the whole head and
 * head_decide() runs before the body is parsed. */
static int on_headers_complete(http_parser *p)
{
    struct conn *c = p->data;

    if (!piece_end(&c->req) || !c->req.head_len)
        return -1;
    c->phase = CONN_BODY;
    c->head_pending = true;
    http_parser_pause(p, 1);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;

    if (len > c->body_limit - c->body_len) {
        conn_refuse(c, 413, "request body is over %zu bytes; at most %zu are allowed",
                    c->body_limit, c->body_limit);
        return -1;
    }
    c->body_len += len;
    return evbuffer_add(c->req.body, at, len) < 0 ? -1 : 0;
}

static int on_message_complete(http_parser *p)
{
    struct conn *c = p->data;

    c->phase = CONN_HANDLING;
    if (p->upgrade)
        c->close_after = true; /* what follows is another protocol: we end here */
    http_parser_pause(p, 1);
    return 0;
}

void conn_settings_init(void)
{
    http_parser_settings_init(&settings);
    settings.on_url = on_url;
    settings.on_header_field = on_header_field;
    settings.on_header_value = on_header_value;
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;
    /* the parser counts the request line and headers together, as we want */
    http_parser_set_max_header_size(HTTP_HEAD_MAX_BYTES);
}

/* The parser refused the bytes: the status and message for err. */
static void parse_error(struct conn *c, enum http_errno err)
{
    if (c->req.replied || c->close_after) { /* one of ours, answered in a callback */
        c->close_after = true;
        return;
    }
    if (c->bad_head) {
        conn_refuse(c, 400, "malformed request: %s", c->bad_head);
        return;
    }
    switch (err) {
    case HPE_HEADER_OVERFLOW:
        if (c->req.n_headers || c->req.target_len)
            conn_refuse(c, 431, "request line and headers are over %u bytes",
                        HTTP_HEAD_MAX_BYTES);
        else
            conn_refuse(c, 414, "request line is over %u bytes", HTTP_HEAD_MAX_BYTES);
        break;
    case HPE_INVALID_METHOD:
        conn_refuse(c, 501, "unknown method (methods are case-sensitive); xun serves GET, "
                    "HEAD, POST, PUT, DELETE, OPTIONS");
        break;
    case HPE_CB_url:
    case HPE_CB_header_field:
    case HPE_CB_header_value:
    case HPE_CB_headers_complete:
    case HPE_CB_body:
        conn_refuse(c, 500, "out of memory");
        break;
    default:
        conn_refuse(c, 400, "malformed request: %s", http_errno_description(err));
        break;
    }
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

/*
 * What the library lets through that RFC 9112 does not (Debian builds it
 * with HTTP_PARSER_STRICT=0): a bare CR, which it takes for a line end and
 * a proxy may not (11.1, request smuggling), and obs-fold, a line that
 * continues a header (5.2, "MUST reject"). Sees every head byte, in order.
 */
static bool head_scan(struct conn *c, const unsigned char *p, size_t len)
{
    unsigned char prev = c->prev_byte;

    for (size_t i = 0; i < len; prev = p[i++]) {
        if (prev == '\r' && p[i] != '\n') {
            c->bad_head = "a CR not followed by LF";
            return false;
        }
        if (prev == '\n' && (p[i] == ' ' || p[i] == '\t') && c->req.head_len) {
            c->bad_head = "a header line folded onto the next (obs-fold)";
            return false;
        }
    }
    c->prev_byte = prev;
    return true;
}

/* Parses what the input holds, one request at a time. */
static void conn_feed(struct conn *c)
{
    while (c->bev && c->phase <= CONN_BODY) {
        struct evbuffer *in = bufferevent_get_input(c->bev);
        struct evbuffer *out = bufferevent_get_output(c->bev);
        struct evbuffer_iovec vec;
        size_t len = evbuffer_get_length(in);

        if (!len)
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
        bool in_head = c->phase == CONN_HEAD; /* then what is parsed now is head */
        size_t n = http_parser_execute(&c->parser, &settings, vec.iov_base, vec.iov_len);
        enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
        bool scanned = !in_head || head_scan(c, vec.iov_base, n);
        evbuffer_drain(in, n);
        if (scanned && err == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            if (!c->head_pending) {
                conn_handle(c);
                continue;
            }
            c->head_pending = false;
            if (head_decide(c))
                continue;
        } else if (scanned && err == HPE_OK) {
            if (n < vec.iov_len)
                return; /* not expected of http_parser without an error; wait for more */
            continue;
        } else if (scanned) {
            parse_error(c, err);
        } else {
            conn_refuse(c, 400, "malformed request: %s", c->bad_head);
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
    free(c->req.head);
    free(c->req.headers);
    free(c->req.origin_buf);
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
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
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
    worker_maybe_exit(w);
}

void conn_free_all(struct worker *w)
{
    while (w->conns) {
        w->conns->req.deferred = false;
        conn_free(w->conns);
    }
}
