/*
 * The top k: a binary min-heap of the k best hits so far, the worst on top,
 * so that a new hit is compared with one hit and the threshold pruning needs
 * is heap[0]; at the end, qsort_r() orders the kept hits best first.
 *
 * Design: ties on the sort key break by the documents' ids, read from the
 * segments only on a tie, so that the order is total and the same whatever
 * the segments' layout (a document keeps its rank across merges). A damaged
 * id marks the search corrupt through ex, and the search fails.
 */
#include "query/topk.h"

#include <stdbool.h>
#include <stdlib.h>

#include "index/base/bytes.h"
#include "index/index.h"
#include "index/format/segment.h"
#include "query/exec.h"

static int id_cmp(const struct topk *t, const struct search_hit *a, const struct search_hit *b)
{
    struct segment_doc da, db;

    if (!ex_read_ok(t->ex, segment_doc(t->snap->segments[a->segment]->seg, a->docid, &da,
                                       &t->ex->damage)) ||
        !ex_read_ok(t->ex, segment_doc(t->snap->segments[b->segment]->seg, b->docid, &db,
                                       &t->ex->damage)))
        return 0; /* the search fails */
    return bytes_cmp(da.id, da.id_len, db.id, db.id_len);
}

/* True when a ranks below b: a lower sort key, or the same and a larger id. */
static bool worse(const struct topk *t, const struct search_hit *a, const struct search_hit *b)
{
    if (a->sort_key != b->sort_key)
        return a->sort_key < b->sort_key;
    return id_cmp(t, a, b) > 0;
}

static void heap_sift_down(struct topk *t, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < t->n && worse(t, &t->heap[l], &t->heap[m]))
            m = l;
        if (r < t->n && worse(t, &t->heap[r], &t->heap[m]))
            m = r;
        if (m == i)
            return;
        struct search_hit tmp = t->heap[i];
        t->heap[i] = t->heap[m];
        t->heap[m] = tmp;
        i = m;
    }
}

void topk_insert(struct topk *t, const struct search_hit *h)
{
    if (!t->k)
        return;
    if (t->n < t->k) {
        uint32_t i = t->n++;
        t->heap[i] = *h;
        while (i > 0) {
            uint32_t parent = (i - 1) / 2;
            if (!worse(t, &t->heap[i], &t->heap[parent]))
                break;
            struct search_hit tmp = t->heap[i];
            t->heap[i] = t->heap[parent];
            t->heap[parent] = tmp;
            i = parent;
        }
        return;
    }
    if (!worse(t, &t->heap[0], h))
        return;
    t->heap[0] = *h;
    heap_sift_down(t, 0);
}

/* For qsort_r(): best first. */
static int hit_order(const void *a, const void *b, void *top)
{
    const struct search_hit *x = a, *y = b;
    if (worse(top, x, y))
        return 1;
    if (worse(top, y, x))
        return -1;
    return 0;
}

void topk_sort(struct topk *t)
{
    qsort_r(t->heap, t->n, sizeof *t->heap, hit_order, t);
}
