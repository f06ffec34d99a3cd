/*
 * Counters for GET /metrics (Prometheus text format): requests by route and
 * status, a latency histogram per route, and the index's own gauges. Every
 * counter is a relaxed atomic: workers bump them without locks, readers may
 * see a request counted in one family before another, as Prometheus allows.
 */
#ifndef XUN_SERVER_METRICS_H
#define XUN_SERVER_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "index/base/buf.h"

enum route_id {
    ROUTE_PAGE,
    ROUTE_SEARCH,
    ROUTE_SUGGEST,
    ROUTE_DOCUMENT,  /* GET, PUT, DELETE /documents/{id} */
    ROUTE_DOCUMENTS, /* POST /documents */
    ROUTE_ANALYZE,
    ROUTE_HEALTH,
    ROUTE_STATS,
    ROUTE_METRICS,
    ROUTE_OTHER, /* unknown routes, preflights, malformed requests */
    N_ROUTES
};

/* Status codes xun answers with; anything else is counted as "other". */
#define METRICS_STATUSES 15
/* Latency buckets, seconds: upper bounds (the last, +Inf, is implied). */
#define METRICS_BUCKETS 12

struct metrics {
    atomic_uint_fast64_t requests[N_ROUTES][METRICS_STATUSES + 1];
    atomic_uint_fast64_t latency[N_ROUTES][METRICS_BUCKETS + 1];
    atomic_uint_fast64_t latency_sum_us[N_ROUTES];
    atomic_uint_fast64_t connections_refused;
    atomic_int_fast64_t connections_open;
};

void metrics_init(struct metrics *m);
void metrics_observe(struct metrics *m, enum route_id route, int status, uint64_t us);

/* Gauges and counters the index and writer keep. */
struct metrics_index {
    uint64_t documents, segments, index_bytes, terms, queries, uptime_s;
    uint64_t wal_fsyncs, merges, refreshes, checkpoints;
    uint64_t cache_hits, cache_misses;
    uint64_t damaged_segments, checksum_failures; /* index/format/segment.h's chunk checks */
    uint64_t writer_read_only, segments_in_memory, write_failures, wal_torn_tails;
};

/* Appends the Prometheus text exposition of everything to out. */
void metrics_render(struct metrics *m, const struct metrics_index *ix, struct buf *out);

#endif
