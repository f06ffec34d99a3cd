/*
 * The routes of API.md: parameters in, JSON out, errors as JSON with the
 * status API.md gives. One route_ctx serves all workers; what it holds is
 * either immutable or atomic.
 */
#ifndef XUN_SERVER_ROUTES_H
#define XUN_SERVER_ROUTES_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "query/search.h"
#include "server/metrics.h"

struct http_request;
struct write_queue;
struct result_cache;
struct index;
struct server_config;
struct xerr;

struct route_ctx {
    struct metrics metrics;
    struct result_cache *cache; /* NULL: responses are not cached */
    struct index *ix;
    struct writer *writer; /* started by routes_init, stopped by routes_fini */
    struct write_queue *writes; /* the write thread (server/documents.h), the same */
    const struct server_config *cfg;
    time_t started;
    atomic_uint_fast64_t queries;
    atomic_uint_fast64_t cache_hits, cache_misses; /* of /search responses */
};

int routes_init(struct route_ctx *ctx, struct index *ix, const struct server_config *cfg,
                struct xerr *err);
void routes_fini(struct route_ctx *ctx);
/*
 * Decides on a request's head, before its body is read: false when it has
 * answered (two Authorization headers, a write without the API key), and
 * then the body is never read. *body_limit: the most body bytes the route
 * takes (a longer body is answered 413).
 */
bool routes_head(struct route_ctx *ctx, struct http_request *req, size_t *body_limit);
/* Answers req, or defers it to the write thread (http_request_defer). */
void routes_handle(struct route_ctx *ctx, struct http_request *req);

/* A search as /search runs it, for the command line too. */
struct search_params {
    const char *q;
    size_t q_len;
    uint32_t limit, offset;
    bool highlight;
    uint64_t start_ns;           /* when the request began, for took_ms */
    struct search_options opts;  /* filters, order, facets (k is set from limit + offset) */
};

/* The /search response body for sp (a new reference in *out). */
int search_json(struct index *ix, const struct search_params *sp, json_t **out,
                struct xerr *err);

/* The /analyze response body for text (valid UTF-8), analyzed with tokenize_flags. */
json_t *analyze_json(const char *text, size_t len, unsigned tokenize_flags);

#endif
