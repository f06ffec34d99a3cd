/*
 * Bulk loading JSON lines into an index (`xun index`). With one thread, it
 * parses and indexes each line in turn. With more, threads - 1 of them
 * parse and tokenize chunks of the file while the calling thread adds what
 * they prepared to one in-memory index, in input order. That index is written
 * out as a segment whenever it outgrows the memory budget, and once at the
 * end; if that made several, they are merged into one. So a later line with
 * the same id wins. A bad line is reported with its file and line number and
 * skipped. Standard input ("-") is read by one preparing thread.
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

/* What the in-memory indexes of a load may hold in all, unless told. One
 * gigabyte holds 100 MB of Chinese text (about a third of a million news
 * articles) as one segment, so a corpus that size needs no merge. */
#define BULKLOAD_MEMORY_DEFAULT ((size_t)1024 << 20)

struct bulkload_options {
    int threads;         /* 0: one per core */
    size_t memory_bytes; /* 0: BULKLOAD_MEMORY_DEFAULT; the process takes about 1.3 x */
    bool progress;       /* draw a bar on stderr (the caller decides: only on a terminal) */
    FILE *errors;        /* where bad lines are reported; NULL: not reported */
};

/* Loads each file, then merges what it wrote into one segment. */
int bulkload_files(struct index *ix, char *const *files, int n_files,
                   const struct bulkload_options *opt, struct bulkload_stats *stats,
                   struct xerr *err);

#endif
