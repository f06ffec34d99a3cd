/*
 * Bulk loading JSON lines into an index (`xun index`). A file is cut at line
 * boundaries into one part per thread; each thread parses and indexes its
 * part into its own in-memory index, written out as a segment whenever it
 * grows past MEMINDEX_FLUSH_BYTES / threads and once at the end. Segments
 * are committed in input order, so when an id occurs twice the later line
 * wins. A bad line is reported with its file and line number and skipped.
 * Standard input ("-") is read by one thread.
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
    uint32_t segments; /* in the index once loaded (and merged) */
};

/*
 * Loads each file with up to `threads` threads (0: one per core). progress:
 * draw a bar on stderr (the caller decides: only on a terminal). Bad lines
 * are reported on errors (NULL: not reported).
 */
int bulkload_files(struct index *ix, char *const *files, int n_files, int threads,
                   bool progress, FILE *errors, struct bulkload_stats *stats, struct xerr *err);

#endif
