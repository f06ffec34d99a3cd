/*
 * The HTTP server: N worker threads, each with its own event_base and evhttp
 * accepting from one shared listening socket (a dup per worker), so no lock
 * or hand-off sits between accept and answer. Requests are handled to the
 * end on the worker that read them (server/routes.h).
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
    int idle_timeout_s;   /* a connection silent this long is closed (evhttp's timeout) */
    /* A request must arrive whole, head and body, within this many seconds of
     * its first byte, or it is answered 408 and its connection closed; a head
     * over 64 KiB is answered 431 (414 if the request line alone is). */
    int request_timeout_s;
    const char *cors_origin; /* NULL: no CORS headers; else Access-Control-Allow-Origin */
    /* Connections with a request in hand, past which new ones get 503 and are
     * closed: a bound on memory and file descriptors under a flood. */
    uint32_t max_connections;
    double recency_half_life_days; /* relevance ranking's freshness boost; 0: none */
    size_t cache_bytes;            /* the /search response cache; 0: none */
    /* A search past this many ms since its request began stops and answers what it
     * found, "timed_out": true (query/search.h); 0: no limit. query_clock_ns: the
     * clock it is read on, NULL for the real one (tests make a search time out). */
    uint32_t query_timeout_ms;
    uint64_t (*query_clock_ns)(void);
};

void server_config_defaults(struct server_config *cfg);

struct server;

/* Binds, listens and starts the workers; the index must outlive the server. */
int server_start(struct index *ix, const struct server_config *cfg, struct server **out,
                 struct xerr *err);
uint16_t server_port(const struct server *srv);
/*
 * Graceful stop: closes the listening socket, lets the workers finish what
 * they are answering (up to a second for unsent replies), joins them and
 * frees the server.
 */
void server_stop(struct server *srv);

#endif
