/*
 * The k best hits of a search (internal): a min-heap on the sort key, ties
 * broken by the documents' ids (the smaller id ranks higher), then sorted
 * best first. Its threshold is what pruning must beat.
 */
#ifndef XUN_QUERY_TOPK_H
#define XUN_QUERY_TOPK_H

#include <stdint.h>

#include "query/search.h"

struct exec;
struct snapshot;

struct topk {
    struct search_hit *heap; /* a min-heap: the worst kept hit on top */
    uint32_t n, k;
    const struct snapshot *snap;
    struct exec *ex; /* where damage to the ids is reported */
};

/* The score a hit must reach to enter a full top k (n == k > 0). */
static inline double topk_threshold(const struct topk *t)
{
    return t->heap[0].score;
}

/* Keeps h when it ranks among the k best so far (topk_push()'s slow path). */
void topk_insert(struct topk *t, const struct search_hit *h);

/*
 * Keeps h when it ranks among the k best so far. Run per match: inline, and
 * a hit below the worst kept one of a full top k is turned away at once.
 */
static inline void topk_push(struct topk *t, const struct search_hit *h)
{
    if (t->k && t->n == t->k && h->sort_key < t->heap[0].sort_key)
        return;
    topk_insert(t, h);
}
/* Sorts the kept hits best first. */
void topk_sort(struct topk *t);

#endif
