/*
 * A cache of /search responses, as news sites ask the same few queries over
 * and over when a story breaks. An entry is the response body for one exact
 * query string, kept while the index shows the same snapshot (any write that
 * becomes visible makes every entry stale) and for at most CACHE_TTL_S
 * seconds (freshness in ranking moves with the clock). Least recently used
 * entries go first when the byte budget is full.
 *
 * Thread-safe: shards with a mutex each, so that workers rarely wait on one
 * another.
 */
#ifndef XUN_SERVER_CACHE_H
#define XUN_SERVER_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CACHE_TTL_S 10
#define CACHE_DEFAULT_MB 64

struct result_cache;

/* A cache of at most max_bytes (keys, bodies and bookkeeping); NULL when out of memory. */
struct result_cache *result_cache_new(size_t max_bytes);
void result_cache_free(struct result_cache *c);

/*
 * One cached response, cut where its took_ms value goes: the body is
 * data[0, took_at), then a fresh took_ms, then data[took_at, len). The
 * cache keeps the bytes as given and never looks inside them.
 */
struct cached_body {
    char *data; /* malloc'd copy, the caller frees */
    size_t len;
    size_t took_at; /* <= len */
};

/* True on a hit for key under snapshot generation (and within the TTL at now_ns). */
bool result_cache_get(struct result_cache *c, const char *key, size_t key_len,
                      uint64_t generation, uint64_t now_ns, struct cached_body *out);
/* Keeps a copy of body (too large a body is not kept). */
void result_cache_put(struct result_cache *c, const char *key, size_t key_len,
                      uint64_t generation, uint64_t now_ns, const struct cached_body *body);

#endif
