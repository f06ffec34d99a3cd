/*
 * Bulk loading JSON lines into an index (`xun index`): documents go through
 * an in-memory index that is written as a segment whenever it grows past
 * MEMINDEX_FLUSH_BYTES, and once more at the end. A bad line is reported
 * with its file and line number and skipped; the good ones are indexed.
 */
#ifndef XUN_SERVER_BULKLOAD_H
#define XUN_SERVER_BULKLOAD_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct index;
struct xerr;

struct bulkload_stats {
    uint64_t docs, bad_lines, bytes;
    uint32_t segments;
};

/*
 * Loads each file ("-" is standard input). progress: draw a bar on stderr
 * (the caller decides: only on a terminal). Bad lines are reported on
 * errors (NULL: not reported).
 */
int bulkload_files(struct index *ix, char *const *files, int n_files, bool progress,
                   FILE *errors, struct bulkload_stats *stats, struct xerr *err);

#endif
