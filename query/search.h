/*
 * Runs a parsed query over a snapshot: match, score (BM25F over title, body
 * and meta, title weighted highest), keep the top k by a heap, count every
 * match. Hits are ordered by score, ties by document id.
 */
#ifndef XUN_QUERY_SEARCH_H
#define XUN_QUERY_SEARCH_H

#include <stddef.h>
#include <stdint.h>

struct query;
struct snapshot;
struct xerr;

/* BM25 parameters (DESIGN.md) and field weights. */
#define BM25_K1 1.2
#define BM25_B 0.75
#define BM25_WEIGHT_TITLE 2.5
#define BM25_WEIGHT_BODY 1.0
#define BM25_WEIGHT_META 1.0

struct search_hit {
    uint32_t segment; /* index into the snapshot's segments */
    uint32_t docid;
    double score;
};

struct search_result {
    uint64_t total;         /* documents that match */
    struct search_hit *hits; /* best first; owned, search_result_fini() */
    uint32_t n_hits;        /* min(k, total) */
};

/*
 * Finds the k best hits of q in snap. XE_CORRUPT when a posting list turns
 * out damaged; XE_NOMEM when the request's memory cap is reached.
 */
int search_run(const struct snapshot *snap, const struct query *q, uint32_t k,
               struct search_result *out, struct xerr *err);
void search_result_fini(struct search_result *r);

#endif
