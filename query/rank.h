/*
 * Ranking, for the search modules (internal): BM25F, its bound over a block,
 * and each boost with the largest factor or bonus it can give, so that
 * pruning (prune.c) and the driver's gating read the same numbers as the
 * scores they bound. The formulas and weights are documented in search.h.
 *
 * The per-document pieces (bm25f, the length norms, freshness, may_reach,
 * the gate of the bonuses) are static inline: they run once per leaf or per
 * match, and the iterators and the driver that call them live in other files.
 */
#ifndef XUN_QUERY_RANK_H
#define XUN_QUERY_RANK_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "index/format/doc.h"
#include "index/format/segment.h"
#include "query/exec.h"
#include "query/search.h"
#include "query/topk.h"

struct qnode;
struct query;

static const double rank_field_weight[N_FIELDS] = { BM25_WEIGHT_TITLE, BM25_WEIGHT_BODY,
                                                    BM25_WEIGHT_META };

/* Length normalization of the current document, per field. */
struct doc_norms {
    double inv_norm[N_FIELDS]; /* 1 / (1 - b + b * len / avg_len) */
};

/*
 * Document frequencies count deleted documents until a merge drops them, so
 * n_docs must count them too (as Lucene's docCount does): else a term whose
 * df exceeds the live count would get a negative idf.
 */
static inline double rank_idf(uint64_t df, uint64_t n_docs)
{
    return log(1.0 + ((double)n_docs - (double)df + 0.5) / ((double)df + 0.5));
}

/* BM25 of one leaf given its frequency per field. */
static inline double rank_bm25f(double idf, const uint32_t tf[N_FIELDS],
                                const struct doc_norms *norms)
{
    double tfn = 0;

    for (int f = 0; f < N_FIELDS; f++)
        if (tf[f])
            tfn += rank_field_weight[f] * tf[f] * norms->inv_norm[f];
    return idf * tfn * (BM25_K1 + 1) / (tfn + BM25_K1);
}

/* The highest bm25f of a leaf with at most max_tf per field in fields at least min_len long. */
static inline double rank_bm25f_bound(const double avg_len[N_FIELDS], double idf,
                                      const uint32_t max_tf[N_FIELDS],
                                      const uint32_t min_len[N_FIELDS], bool title_only)
{
    double tfn = 0;

    for (int f = 0; f < N_FIELDS; f++) {
        if (!max_tf[f] || (title_only && f != FIELD_TITLE))
            continue;
        if (max_tf[f] == UINT32_MAX)
            return idf * (BM25_K1 + 1); /* unknown: the limit of saturation */
        /* the length a document of at least min_len is scored with (segment.h) */
        uint32_t len = segment_length_of_code(segment_length_code(min_len[f]));
        tfn += rank_field_weight[f] * max_tf[f] / (1 - BM25_B + BM25_B * len / avg_len[f]);
    }
    return idf * tfn * (BM25_K1 + 1) / (tfn + BM25_K1);
}

/* The length norms of a document from its length codes (segment.h). */
static inline void rank_norms(const double avg_len[N_FIELDS], const struct segment_doc_rank *d,
                              struct doc_norms *norms)
{
    for (int f = 0; f < N_FIELDS; f++)
        norms->inv_norm[f] =
            1.0 / (1 - BM25_B + BM25_B * segment_length_of_code(d->len_code[f]) / avg_len[f]);
}

/* Halvings per second of age; 0 when freshness does not count (off, or sorting by date). */
static inline double rank_recency_scale(const struct search_options *o)
{
    return o->recency_half_life_days > 0 && !o->sort_by_date
               ? 1 / (o->recency_half_life_days * 86400)
               : 0;
}

/* The freshness factor of a document dated date_s (1 when undated or off). */
static inline double rank_recency(const struct search_options *o, double scale, int64_t date_s)
{
    double boost = 1;

    if (scale > 0 && date_s != DOC_DATE_NONE) {
        double age = date_s < o->now_s ? (double)(o->now_s - date_s) : 0;
        boost += SEARCH_RECENCY_WEIGHT * exp2(-age * scale);
    }
    return boost;
}

/* The largest freshness factor a document of seg can get. */
double rank_recency_max(const struct search_options *o, double scale, const struct segment *seg);

/*
 * Whether a document scoring at most base (plus prox_max, the largest
 * proximity bonus), times at most gain, could still reach threshold. A hair
 * of slack: a bound and the score it bounds add the same terms in other orders.
 */
static inline bool rank_may_reach(double prox_max, double base, double gain, double threshold)
{
    return (base + prox_max) * gain * (1 + 1e-9) >= threshold;
}

/*
 * Registers word or phrase n, a child of the AND proximity looks at, with
 * its iterator's idf and the postings of a word (NULL for a phrase); returns
 * its leaf, or NULL when it does not take part (negated, title-only, a word
 * without positions).
 */
struct prox_leaf *rank_prox_add(struct exec *ex, const struct qnode *n, double idf,
                                struct postings_cursor *cursor);
/* Keeps a start position of the current document in a leaf; false when out of memory. */
bool rank_prox_keep(struct exec *ex, struct prox_leaf *l, uint32_t start);
/* After building a segment's iterators: the largest bonus; none with fewer than two leaves. */
void rank_prox_plan(struct exec *ex);

/* Cursors over the query's written forms in the current segment. */
void rank_forms_plan(struct exec *ex, const struct query *q);
/* The largest written-form factor (1 when the query has none or hits sort by date). */
double rank_forms_max(const struct exec *ex, const struct search_options *o);

/* Adds the proximity bonus to score and multiplies the written-form factor into *boost. */
double rank_bonuses(struct exec *ex, uint32_t docid, double score, double *boost,
                    double forms_max);

/*
 * The final score of a document with BM25F score `score` and freshness
 * factor boost: the proximity bonus added and the written-form factor
 * multiplied in, but only where they could lift it into top (reading
 * positions costs; the ranking stays exact), then times the boosts. Run
 * per match: the gate is inline, the bonuses are not.
 */
static inline double rank_with_bonuses(struct exec *ex, const struct topk *top, uint32_t docid,
                                       double score, double boost, double forms_max)
{
    if ((ex->n_prox || forms_max > 1) && top->k &&
        (top->n < top->k ||
         rank_may_reach(ex->prox_max, score, boost * forms_max, topk_threshold(top))))
        score = rank_bonuses(ex, docid, score, &boost, forms_max);
    return score * boost;
}

#endif
