/*
 * Engine benchmark: the query mix run in process, single-threaded, through
 * the same code as GET /search minus HTTP (search_json), top 10, with and
 * without snippets. Prints queries/s and latency percentiles.
 *
 * The baseline, measured in the same run, is the cost of the work every
 * query does whatever the engine: parsing the query and building the JSON
 * reply for no hits (q that matches nothing). Ratios to it hold on a noisy
 * machine where absolute times do not.
 *
 * usage: bench_engine DATA_DIR MIX_FILE [ROUNDS]
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "index/base/error.h"
#include "index/index.h"
#include "query/suggest.h"
#include "server/routes.h"

#define MAX_QUERIES 20000

static uint64_t now_ns_(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

struct run {
    double qps, p50_us, p90_us, p99_us;
    uint64_t total_hits;
};

static struct run run_mix(struct index *ix, char **queries, size_t n, int rounds, bool highlight,
                          const char *fixed)
{
    uint64_t *lat = malloc(sizeof *lat * n * (size_t)rounds);
    struct run r = { 0 };
    size_t k = 0;
    uint64_t start = now_ns_();

    for (int round = 0; round < rounds; round++)
        for (size_t i = 0; i < n; i++) {
            const char *q = fixed ? fixed : queries[i];
            struct search_params sp = { .q = q, .q_len = strlen(q), .limit = 10,
                                        .highlight = highlight, .start_ns = now_ns_() };
            struct xerr err = { 0 };
            json_t *body;
            if (search_json(ix, &sp, &body, &err)) {
                fprintf(stderr, "query \"%s\": %s\n", q, err.msg);
                exit(1);
            }
            r.total_hits += json_array_size(json_object_get(body, "hits"));
            json_decref(body);
            lat[k++] = now_ns_() - sp.start_ns;
        }
    double secs = (double)(now_ns_() - start) / 1e9;
    qsort(lat, k, sizeof *lat, cmp_u64);
    r.qps = (double)k / secs;
    r.p50_us = (double)lat[k / 2] / 1e3;
    r.p90_us = (double)lat[k * 9 / 10] / 1e3;
    r.p99_us = (double)lat[k * 99 / 100] / 1e3;
    free(lat);
    return r;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_engine DATA_DIR MIX_FILE [ROUNDS]\n");
        return 2;
    }
    int rounds = argc > 3 ? (int)strtol(argv[3], NULL, 10) : 3;
    struct xerr err = { 0 };
    struct index *ix;
    if (index_open(argv[1], TOKENIZE_DEFAULT, &ix, &err)) {
        fprintf(stderr, "%s: %s\n", argv[1], err.msg);
        return 1;
    }
    FILE *f = fopen(argv[2], "r");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    char **queries = malloc(sizeof *queries * MAX_QUERIES), line[4096];
    size_t n = 0;
    while (n < MAX_QUERIES && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (*line)
            queries[n++] = strdup(line);
    }
    fclose(f);

    run_mix(ix, queries, n, 1, true, NULL); /* warm the page cache */
    struct run base = run_mix(ix, queries, n, rounds, true, "zzzzqqqqxxxx");
    struct run plain = run_mix(ix, queries, n, rounds, false, NULL);
    struct run snip = run_mix(ix, queries, n, rounds, true, NULL);
    printf("engine: %zu queries x %d rounds, single thread, top 10\n", n, rounds);
    printf("  %-28s %10s %9s %9s %9s %8s\n", "", "queries/s", "p50 us", "p90 us", "p99 us",
           "x base");
    struct { const char *name; struct run r; } rows[] = {
        { "baseline (parse + empty reply)", base },
        { "without snippets", plain },
        { "with snippets", snip },
    };
    for (size_t i = 0; i < 3; i++)
        printf("  %-28s %10.0f %9.1f %9.1f %9.1f %8.2f\n", rows[i].name, rows[i].r.qps,
               rows[i].r.p50_us, rows[i].r.p90_us, rows[i].r.p99_us,
               base.qps / rows[i].r.qps);

    /* suggestions as typed: the first one and two characters of each query */
    uint64_t *lat = malloc(sizeof *lat * 2 * n);
    size_t k = 0;
    struct snapshot *snap = index_snapshot(ix);
    for (size_t i = 0; i < n; i++)
        for (int chars = 1; chars <= 2; chars++) {
            size_t len = 0;
            for (int c = 0; c < chars && queries[i][len]; c++) {
                len++;
                while (((unsigned char)queries[i][len] & 0xC0) == 0x80)
                    len++;
            }
            struct suggestion *s;
            size_t got;
            uint64_t t0 = now_ns_();
            if (suggest_run(snap, queries[i], len, 8, &s, &got, &err) == 0)
                suggestions_free(s, got);
            lat[k++] = now_ns_() - t0;
        }
    snapshot_release(snap);
    qsort(lat, k, sizeof *lat, cmp_u64);
    printf("  suggest (1 and 2 characters typed, %zu prefixes): p50 %.1f us, p99 %.1f us, "
           "max %.1f us\n", k, lat[k / 2] / 1e3, lat[k * 99 / 100] / 1e3, lat[k - 1] / 1e3);
    free(lat);
    for (size_t i = 0; i < n; i++)
        free(queries[i]);
    free(queries);
    index_close(ix);
    return 0;
}
