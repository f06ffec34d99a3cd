/*
 * The iterator tree of a query over one segment (internal): term, phrase,
 * AND (with negations) and OR, each with next/advance/score/bound. The
 * driver runs the root; facet.c wraps it with filters; prune.c reads the
 * AND and OR nodes' children for MaxScore, so those two structs are here
 * and the leaves stay private to iter.c.
 */
#ifndef XUN_QUERY_ITER_H
#define XUN_QUERY_ITER_H

#include <stdbool.h>
#include <stdint.h>

struct doc_norms;
struct exec;
struct qnode;
struct segment_term;

struct iter;
struct iter_ops {
    bool (*next)(struct iter *it);
    bool (*advance)(struct iter *it, uint32_t target);
    double (*score)(struct iter *it, const struct doc_norms *norms);
    /* The highest score of a match in [from, *upto] (it sets upto >= from),
     * or < 0 when it has no match at or after from. Reads skip tables only. */
    double (*bound)(struct iter *it, uint32_t from, uint32_t *upto);
};

struct iter {
    const struct iter_ops *ops;
    uint32_t docid; /* DOCID_END before the start and after the end */
    uint64_t cost;  /* documents it may visit: the order of AND */
    bool negated;
    bool unscored; /* a filter: it restricts the matches, adds nothing to scores */
};

struct and_iter {
    struct iter base;
    struct iter **pos; /* positive children, rarest first */
    uint32_t n_pos;
    struct iter **neg;
    uint32_t n_neg;
    struct exec *ex;
};

struct or_iter {
    struct iter base;
    struct iter **children;
    uint32_t n;
    bool started;
};

extern const struct iter_ops iter_and_ops, iter_or_ops;

/*
 * Looks every term of the query up in every segment (kept in ex->lookups
 * for iter_build) and sets idfs[i], term i's idf over the whole snapshot.
 */
void iter_lookup_terms(struct exec *ex, const struct qnode *root, double *idfs);
/*
 * The iterator of node n over the current segment, or NULL when it cannot
 * match there (a term the segment lacks) or memory ran out (ex->nomem).
 * Start with *term_index 0. Registers the words and phrases under
 * ex->prox_parent for proximity.
 */
struct iter *iter_build(struct exec *ex, const struct qnode *n, const double *idfs,
                        uint32_t *term_index);
/* A term over st's postings in the current segment; NULL when out of memory. */
struct iter *iter_term_new(struct exec *ex, const struct segment_term *st, double idf,
                           bool title_only, bool negated);
/* An OR of n children (n > 0) that visits about cost documents. */
struct iter *iter_or_new(struct exec *ex, struct iter **children, uint32_t n, uint64_t cost,
                         bool negated);
/* An AND of n_pos children, rarest first (n_pos > 0), none of n_neg negations. */
struct iter *iter_and_new(struct exec *ex, struct iter **pos, uint32_t n_pos,
                          struct iter **neg, uint32_t n_neg, uint64_t cost, bool negated);
/* Whether one of a's negations holds docid. */
bool iter_and_excluded(struct and_iter *a, uint32_t docid);

#endif
