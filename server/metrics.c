/* Prometheus counters and their text exposition (see metrics.h). */
#include "server/metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

static const char *const route_names[N_ROUTES] = {
    "page", "search", "suggest", "document", "documents", "analyze",
    "health", "stats", "metrics", "other",
};

static const int statuses[METRICS_STATUSES] = { 200, 201, 204, 400, 401, 404, 405, 408,
                                                413, 414, 429, 431, 500, 501, 503 };

/* Upper bounds in microseconds: 100 us to 2.5 s, roughly x2.5 apart. */
static const uint64_t bucket_us[METRICS_BUCKETS] = { 100,    250,    500,    1000,
                                                     2500,   5000,   10000,  25000,
                                                     100000, 250000, 1000000, 2500000 };

void metrics_init(struct metrics *m)
{
    for (int r = 0; r < N_ROUTES; r++) {
        for (int s = 0; s <= METRICS_STATUSES; s++)
            atomic_init(&m->requests[r][s], 0);
        for (int b = 0; b <= METRICS_BUCKETS; b++)
            atomic_init(&m->latency[r][b], 0);
        atomic_init(&m->latency_sum_us[r], 0);
    }
    atomic_init(&m->connections_refused, 0);
    atomic_init(&m->connections_open, 0);
}

void metrics_observe(struct metrics *m, enum route_id route, int status, uint64_t us)
{
    int s = 0, b = 0;

    while (s < METRICS_STATUSES && statuses[s] != status)
        s++;
    while (b < METRICS_BUCKETS && us > bucket_us[b])
        b++;
    atomic_fetch_add_explicit(&m->requests[route][s], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->latency[route][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->latency_sum_us[route], us, memory_order_relaxed);
}

__attribute__((format(printf, 2, 3))) static void line(struct buf *out, const char *fmt, ...)
{
    char text[256];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (n > 0)
        buf_append(out, text, (size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
}

static uint64_t load(atomic_uint_fast64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

void metrics_render(struct metrics *m, const struct metrics_index *ix, struct buf *out)
{
    line(out, "# HELP xun_http_requests_total HTTP requests answered, by route and status.\n");
    line(out, "# TYPE xun_http_requests_total counter\n");
    for (int r = 0; r < N_ROUTES; r++)
        for (int s = 0; s <= METRICS_STATUSES; s++) {
            uint64_t n = load(&m->requests[r][s]);
            if (!n)
                continue;
            if (s < METRICS_STATUSES)
                line(out, "xun_http_requests_total{route=\"%s\",status=\"%d\"} %" PRIu64 "\n",
                     route_names[r], statuses[s], n);
            else
                line(out, "xun_http_requests_total{route=\"%s\",status=\"other\"} %" PRIu64 "\n",
                     route_names[r], n);
        }
    line(out, "# HELP xun_http_request_duration_seconds Time from a request's arrival to its "
              "answer, by route.\n");
    line(out, "# TYPE xun_http_request_duration_seconds histogram\n");
    for (int r = 0; r < N_ROUTES; r++) {
        uint64_t cumulative = 0;
        for (int b = 0; b <= METRICS_BUCKETS; b++) {
            cumulative += load(&m->latency[r][b]);
            if (b < METRICS_BUCKETS)
                line(out,
                     "xun_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %" PRIu64
                     "\n",
                     route_names[r], (double)bucket_us[b] / 1e6, cumulative);
            else
                line(out,
                     "xun_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %" PRIu64
                     "\n",
                     route_names[r], cumulative);
        }
        line(out, "xun_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", route_names[r],
             (double)load(&m->latency_sum_us[r]) / 1e6);
        line(out, "xun_http_request_duration_seconds_count{route=\"%s\"} %" PRIu64 "\n",
             route_names[r], cumulative);
    }
    struct {
        const char *name, *type, *help;
        uint64_t value;
    } gauges[] = {
        { "xun_documents", "gauge", "Live documents in the index.", ix->documents },
        { "xun_segments", "gauge", "Segments in the index.", ix->segments },
        { "xun_index_bytes", "gauge", "Bytes of the index's segment files.", ix->index_bytes },
        { "xun_terms", "gauge", "Terms in the segments' dictionaries (summed).", ix->terms },
        { "xun_queries_total", "counter", "Searches run.", ix->queries },
        { "xun_search_cache_hits_total", "counter", "Searches answered from the response cache.",
          ix->cache_hits },
        { "xun_search_cache_misses_total", "counter", "Searches the response cache did not hold.",
          ix->cache_misses },
        { "xun_uptime_seconds", "gauge", "Seconds since the server started.", ix->uptime_s },
        { "xun_damaged_segments", "gauge",
          "Segments of the index with a chunk whose checksum did not match.",
          ix->damaged_segments },
        { "xun_checksum_failures_total", "counter",
          "Chunks of segments found damaged (checksum mismatch) since the server started.",
          ix->checksum_failures },
        { "xun_wal_fsyncs_total", "counter", "Write-ahead log commits (one fsync each).",
          ix->wal_fsyncs },
        { "xun_merges_total", "counter", "Segment merges.", ix->merges },
        { "xun_refreshes_total", "counter", "Snapshots published by the writer.",
          ix->refreshes },
        { "xun_checkpoints_total", "counter", "Checkpoints (manifest rewritten, log restarted).",
          ix->checkpoints },
        { "xun_writer_read_only", "gauge",
          "1 while writes are refused because index files cannot be written (a full disk).",
          ix->writer_read_only },
        { "xun_segments_in_memory", "gauge",
          "Searchable segments kept in memory because their files could not be written.",
          ix->segments_in_memory },
        { "xun_write_failures_total", "counter",
          "Refreshes, checkpoints and log writes that could not write a file.",
          ix->write_failures },
        { "xun_wal_torn_tails_total", "counter",
          "Torn tails of the write-ahead log (a crash's unacknowledged last batch) set aside "
          "when the server started; kept in LOG.torn-OFFSET.",
          ix->wal_torn_tails },
        { "xun_connections_refused_total", "counter",
          "Connections answered 503 because the server was full.",
          load(&m->connections_refused) },
        { "xun_connections_open", "gauge", "Connections that have sent a request and are open.",
          (uint64_t)atomic_load_explicit(&m->connections_open, memory_order_relaxed) },
    };
    for (size_t i = 0; i < sizeof gauges / sizeof *gauges; i++) {
        line(out, "# HELP %s %s\n", gauges[i].name, gauges[i].help);
        line(out, "# TYPE %s %s\n", gauges[i].name, gauges[i].type);
        line(out, "%s %" PRIu64 "\n", gauges[i].name, gauges[i].value);
    }
}
