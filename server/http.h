/*
 * The HTTP server: N worker threads, each with its own event_base and
 * listener accepting from one shared listening socket (a dup per worker), so
 * no lock or hand-off sits between accept and answer. Each connection is a
 * bufferevent read through a strict HTTP/1.1 parser (http_parser, see
 * server/conn.c); requests are handled on the worker that read them
 * (server/routes.h), except writes, which a route may defer to another
 * thread (http_request_defer) and whose reply the worker sends when the
 * write is durable.
 */
#ifndef XUN_SERVER_HTTP_H
#define XUN_SERVER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct index;
struct xerr;

struct server_config {
    const char *host;     /* listen address, default 127.0.0.1 */
    uint16_t port;        /* 0 picks a free port (tests) */
    int threads;          /* 0: one per core */
    const char *api_key;  /* NULL: writes are open */
    bool quiet;           /* no access log */
    size_t max_body_bytes;
    size_t max_uri_bytes;
    int idle_timeout_s;   /* a connection silent this long between requests is closed */
    /* A request must arrive whole, head and body, within this many seconds of
     * its first byte, or it is answered 408 and its connection closed; a head
     * over 64 KiB is answered 431 (414 if the request line alone is). */
    int request_timeout_s;
    const char *cors_origin; /* NULL: no CORS headers; else Access-Control-Allow-Origin */
    /* Connections that have sent a request, at once: a bound on memory and
     * file descriptors under a flood. At the limit the longest-idle keep-alive
     * connection is closed for a newcomer; with none idle, it gets 503. */
    uint32_t max_connections;
    /* The same, per peer IP address (0: no limit); past it, 429. Behind a
     * proxy every client shares its address. */
    uint32_t max_connections_per_client;
    double recency_half_life_days; /* relevance ranking's freshness boost; 0: none */
    size_t cache_bytes;            /* the /search response cache; 0: none */
    /* A search past this many ms since its request began stops and answers what it
     * found, "timed_out": true (query/search.h); 0: no limit. query_clock_ns: the
     * clock it is read on, NULL for the real one (tests make a search time out). */
    uint32_t query_timeout_ms;
    uint64_t (*query_clock_ns)(void);
};

void server_config_defaults(struct server_config *cfg);

/*
 * One request, as routes see it. Made by the connection layer when a
 * request's head is whole; its strings stay valid until its reply is sent.
 * A worker thread owns it, or, between http_request_defer() and
 * http_request_resume(), the thread that defers it.
 */
struct http_request;

enum http_req_method {
    HTTP_REQ_GET,
    HTTP_REQ_HEAD,
    HTTP_REQ_POST,
    HTTP_REQ_PUT,
    HTTP_REQ_DELETE,
    HTTP_REQ_OPTIONS,
    HTTP_REQ_OTHER, /* none: server/reqparse.c refuses other methods (501) */
};

enum http_req_method http_request_method(const struct http_request *req);
const char *http_request_method_name(const struct http_request *req);
/* The target as received (for the log), NUL-terminated. */
const char *http_request_target(const struct http_request *req);
/* The target in origin form, path and query: an absolute-form target
 * ("http://host/health?x") gives "/health?x". NUL-terminated. */
const char *http_request_uri(const struct http_request *req);
/* The first header named name (case-insensitive), value trimmed; NULL if absent. */
const char *http_request_header(const struct http_request *req, const char *name);
/* How many headers are named name (case-insensitive). */
size_t http_request_header_count(const struct http_request *req, const char *name);
/* The body, contiguous (a view; "" when none). */
const char *http_request_body(struct http_request *req, size_t *len);
/* Adds a reply header (copied). False when out of memory. */
bool http_request_add_header(struct http_request *req, const char *name, const char *value);
/*
 * Sets the reply: status, its reason phrase (static), the body (copied).
 * The connection layer adds Content-Length, Date and Connection, and sends
 * no body for HEAD.
 */
void http_request_set_reply(struct http_request *req, int status, const char *reason,
                            const void *body, size_t len);
/*
 * On the worker, inside routes_handle(): the reply will be set later, on
 * another thread, which then calls http_request_resume(). Meanwhile the
 * worker serves other connections; this one waits (its later pipelined
 * requests too). If the client goes away meanwhile, the request stays valid
 * until resumed.
 */
void http_request_defer(struct http_request *req);
/* From any thread, once the deferred reply is set: hands it back to its worker. */
void http_request_resume(struct http_request *req);

struct server;

/* Binds, listens and starts the workers; the index must outlive the server. */
int server_start(struct index *ix, const struct server_config *cfg, struct server **out,
                 struct xerr *err);
uint16_t server_port(const struct server *srv);
/*
 * Graceful stop: closes the listening socket, closes idle connections, lets
 * the workers finish what they are answering, deferred writes included (and
 * up to half a second more for unsent replies), joins them and frees the
 * server.
 */
void server_stop(struct server *srv);

#endif
