/*
 * Pruning: past SEARCH_EXACT_TOTAL counted matches, with a full top k, a
 * query skips what cannot reach the top k's threshold. Two ways:
 *
 * Block-Max (prune_next_competitive): skip regions whose blocks bound every
 * score of the root below the threshold. Good for AND and phrases, where
 * one rare child's low bound rules a region out.
 *
 * MaxScore (Turtle and Flood; per window of docids, as Lucene's
 * MaxScoreBulkScorer does), for an OR at the root, or ANDed only with
 * filters and negations: the bounds of many children add up in every
 * block, so that Block-Max would never skip a region. The OR's children
 * are bounded over a window of SEARCH_PRUNE_WINDOW docids (the highest
 * score of their blocks there) and sorted by that bound; the longest run of
 * the lowest whose bounds add up to less than the threshold (with every
 * bonus) is non-essential: a document holding only those cannot enter the
 * top k, so candidates come from the essential children alone. A candidate
 * is dropped unread when the bounds of the children on it plus those of all
 * non-essential ones cannot reach the threshold; else it is scored by its
 * essential children, then the non-essential ones are advanced to it one by
 * one, highest bound first, until its partial score plus the bounds left
 * cannot reach the threshold (dropped) or all have been added. Its score is
 * then summed in child order, as the OR's score() does, so that it is
 * exactly the score of an exhaustive search.
 *
 * Design: a file of its own, apart from the iterators and the ranking,
 * because it changes neither what matches nor how it scores: it reads the
 * iterators' bound() (iter.c) and the boosts' largest gains (rank.h) and
 * decides what to skip. Someone changing a score reads rank.c; someone
 * changing what gets skipped reads this file, both strategies side by side,
 * and test_query's exhaustive-vs-pruned tests hold the two together.
 */
#include "query/prune.h"

#include <math.h>

#include "index/index.h"
#include "index/format/postings.h"
#include "query/exec.h"
#include "query/iter.h"
#include "query/rank.h"
#include "query/topk.h"

/* ---- Block-Max ---- */

bool prune_next_competitive(struct exec *ex, struct iter *root, const struct topk *top,
                             double gain_max, bool *skipped)
{
    uint32_t from = root->docid == DOCID_END ? 0 : root->docid + 1;
    double threshold = topk_threshold(top);

    if ((int64_t)from <= ex->competitive_upto)
        return root->ops->next(root);
    for (;;) {
        uint32_t upto;
        if (ex_spend(ex))
            return false;
        double bound = root->ops->bound(root, from, &upto);
        if (bound < 0)
            return false; /* nothing matches from here on */
        if (upto < from)
            break; /* no region to judge (damaged bounds): just move on */
        if (rank_may_reach(ex->prox_max, bound, gain_max, threshold)) {
            ex->competitive_upto = upto;
            break;
        }
        *skipped = true;
        if (upto >= DOCID_END - 1)
            return false;
        from = upto + 1;
    }
    return root->ops->advance(root, from);
}

/* ---- MaxScore ---- */

#define SEARCH_PRUNE_WINDOW 4096

struct maxscore {
    struct or_iter *o;
    struct and_iter *a; /* the root when it is the OR AND filters or negations; or NULL */
    uint32_t win_end;
    bool planned;
    double *wb;      /* per child: its highest score in the window; < 0, none */
    double *part;    /* per child: its score of the candidate */
    uint32_t *order; /* live children, by wb ascending */
    uint32_t n_live, n_ne; /* the first n_ne of order are non-essential */
    double ne_sum;         /* their bounds added */
    /* the essential children side by side (a scan per candidate reads them all) */
    uint32_t n_ess;
    uint32_t *ess_doc; /* where each one stands */
    struct iter **ess_it;
    uint32_t *ess_child; /* its index among the OR's children */
    double *ess_wb;      /* its bound in the window */
    uint32_t *at;        /* those on the candidate (indices into ess_*); the others
                          * stand past it */
    uint32_t n_at;
};

struct maxscore *prune_ms_new(struct exec *ex, struct iter *root)
{
    struct and_iter *a = NULL;

    if (root->negated)
        return NULL;
    if (root->ops == &iter_and_ops) {
        a = (struct and_iter *)root;
        root = NULL;
        for (uint32_t i = 0; i < a->n_pos; i++) {
            if (a->pos[i]->unscored)
                continue;
            if (root)
                return NULL; /* two scored parts */
            root = a->pos[i];
        }
        if (!root || root->negated)
            return NULL;
    }
    if (root->ops != &iter_or_ops)
        return NULL;
    struct or_iter *o = (struct or_iter *)root;
    struct maxscore *ms = ex_alloc(ex, sizeof *ms);
    double *wb = ex_alloc(ex, o->n * sizeof *wb);
    double *part = ex_alloc(ex, o->n * sizeof *part);
    uint32_t *order = ex_alloc(ex, o->n * sizeof *order);
    uint32_t *ess_doc = ex_alloc(ex, o->n * sizeof *ess_doc);
    struct iter **ess_it = ex_alloc(ex, o->n * sizeof *ess_it);
    uint32_t *ess_child = ex_alloc(ex, o->n * sizeof *ess_child);
    double *ess_wb = ex_alloc(ex, o->n * sizeof *ess_wb);
    uint32_t *at = ex_alloc(ex, o->n * sizeof *at);
    if (!ms || !wb || !part || !order || !ess_doc || !ess_it || !ess_child || !ess_wb || !at)
        return NULL;
    *ms = (struct maxscore){ .o = o, .a = a, .wb = wb, .part = part, .order = order,
                             .ess_doc = ess_doc, .ess_it = ess_it, .ess_child = ess_child,
                             .ess_wb = ess_wb, .at = at };
    return ms;
}

/* The highest score of c's blocks that hold documents in [from, end]; < 0: none from `from`. */
static double window_bound(struct exec *ex, struct iter *c, uint32_t from, uint32_t end)
{
    double best = -1;

    for (;;) {
        uint32_t upto;
        if (ex_spend(ex))
            return -1;
        double b = c->ops->bound(c, from, &upto);
        if (b < 0)
            return best;
        if (upto < from)
            return HUGE_VAL; /* damaged bounds: unknown, so essential */
        if (b > best)
            best = b;
        if (upto >= end)
            return best;
        from = upto + 1;
    }
}

/* Bounds the live children over the window from `from` and splits them. */
static void ms_plan(struct exec *ex, struct maxscore *ms, uint32_t from, double threshold,
                    double gain_max)
{
    struct or_iter *o = ms->o;

    ms->win_end = from > DOCID_END - 1 - SEARCH_PRUNE_WINDOW ? DOCID_END - 1
                                                            : from + SEARCH_PRUNE_WINDOW - 1;
    ms->planned = true;
    ms->n_live = 0;
    for (uint32_t i = 0; i < o->n && !ex->timed_out; i++) {
        struct iter *c = o->children[i];
        if (c->docid == DOCID_END)
            continue; /* it has ended (the OR has started) */
        double b = window_bound(ex, c, from, ms->win_end);
        if (b < 0)
            continue;
        ms->wb[i] = b;
        uint32_t j = ms->n_live++;
        while (j > 0 && ms->wb[ms->order[j - 1]] > b) {
            ms->order[j] = ms->order[j - 1];
            j--;
        }
        ms->order[j] = i;
    }
    ms->n_ne = 0;
    ms->ne_sum = 0;
    while (ms->n_ne < ms->n_live &&
           !rank_may_reach(ex->prox_max, ms->ne_sum + ms->wb[ms->order[ms->n_ne]], gain_max,
                           threshold))
        ms->ne_sum += ms->wb[ms->order[ms->n_ne++]];
    /* the essential children, each at its first document from `from` */
    ms->n_ess = ms->n_at = 0;
    for (uint32_t j = ms->n_ne; j < ms->n_live; j++) {
        uint32_t i = ms->order[j];
        struct iter *c = o->children[i];
        if (c->docid < from)
            c->ops->advance(c, from);
        ms->ess_child[ms->n_ess] = i;
        ms->ess_it[ms->n_ess] = c;
        ms->ess_wb[ms->n_ess] = ms->wb[i];
        ms->ess_doc[ms->n_ess++] = c->docid;
    }
}

/* Whether the filters of ms's AND hold d and no negation does. */
static bool ms_and_holds(struct maxscore *ms, uint32_t d)
{
    struct and_iter *a = ms->a;

    for (uint32_t i = 0; i < a->n_pos; i++) {
        struct iter *p = a->pos[i];
        if (p == &ms->o->base)
            continue;
        if (p->docid < d)
            p->ops->advance(p, d);
        if (p->docid != d)
            return false;
    }
    return !iter_and_excluded(a, d);
}

/*
 * next() of the OR for a full top k past SEARCH_EXACT_TOTAL: the next
 * candidate that may reach it, or false at the end (or the deadline). Sets
 * *skipped when matches may go uncounted.
 */
bool prune_ms_next(struct exec *ex, struct maxscore *ms, const struct topk *top,
                    double gain_max, bool *skipped)
{
    struct or_iter *o = ms->o;
    uint32_t from = 0;

    if (!o->started) { /* a new segment: every child to its first document */
        for (uint32_t i = 0; i < o->n; i++)
            o->children[i]->ops->advance(o->children[i], 0);
        o->started = true;
        for (uint32_t i = 0; ms->a && i < ms->a->n_pos; i++)
            if (ms->a->pos[i] != &o->base)
                ms->a->pos[i]->ops->advance(ms->a->pos[i], 0);
    } else if (o->base.docid == DOCID_END) {
        return false;
    } else {
        from = o->base.docid + 1;
    }
    for (;;) {
        double threshold = topk_threshold(top);
        if (ex_spend(ex) || ex->corrupt || ex->nomem || from == DOCID_END)
            break;
        if (!ms->planned || from > ms->win_end) {
            ms_plan(ex, ms, from, threshold, gain_max);
            if (ex->timed_out || !ms->n_live)
                break;
            if (ms->n_ne)
                *skipped = true; /* documents with only those go uncounted */
            if (ms->n_ne == ms->n_live) {
                from = ms->win_end + 1; /* nothing here can reach the top k */
                continue;
            }
        }
        /* only those on the last candidate stand before from */
        for (uint32_t k = 0; k < ms->n_at; k++) {
            uint32_t j = ms->at[k];
            if (ms->ess_doc[j] < from) {
                ms->ess_it[j]->ops->advance(ms->ess_it[j], from);
                ms->ess_doc[j] = ms->ess_it[j]->docid;
            }
        }
        ms->n_at = 0;
        uint32_t d = DOCID_END;
        for (uint32_t j = 0; j < ms->n_ess; j++)
            d = ms->ess_doc[j] < d ? ms->ess_doc[j] : d;
        if (d > ms->win_end) {
            from = ms->win_end == DOCID_END - 1 ? DOCID_END : ms->win_end + 1;
            continue;
        }
        double bound = ms->ne_sum; /* plus the bounds of the essential children on d */
        for (uint32_t j = 0; j < ms->n_ess; j++) {
            bool on = ms->ess_doc[j] == d;
            ms->at[ms->n_at] = j;
            ms->n_at += on;
            bound += on ? ms->ess_wb[j] : 0;
        }
        if (!rank_may_reach(ex->prox_max, bound, gain_max, threshold)) {
            *skipped = true;
            from = d + 1;
            continue;
        }
        if (ms->a && !ms_and_holds(ms, d)) {
            from = d + 1;
            continue;
        }
        o->base.docid = d;
        if (ms->a)
            ms->a->base.docid = d;
        return true;
    }
    o->base.docid = DOCID_END;
    if (ms->a)
        ms->a->base.docid = DOCID_END;
    return false;
}

/*
 * The score of ms_next()'s candidate, or false when it is dropped: it cannot
 * reach threshold, its score times at most gain (plus proximity).
 */
bool prune_ms_score(struct exec *ex, struct maxscore *ms, const struct doc_norms *norms,
                     double gain, double threshold, double *score)
{
    struct or_iter *o = ms->o;
    uint32_t d = o->base.docid;
    double partial = 0, left = ms->ne_sum;

    for (uint32_t k = 0; k < ms->n_at; k++) {
        uint32_t j = ms->at[k];
        partial += ms->part[ms->ess_child[j]] = ms->ess_it[j]->ops->score(ms->ess_it[j], norms);
    }
    for (uint32_t j = ms->n_ne; j-- > 0;) {
        if (!rank_may_reach(ex->prox_max, partial + left, gain, threshold))
            return false;
        uint32_t i = ms->order[j];
        struct iter *c = o->children[i];
        if (c->docid < d)
            c->ops->advance(c, d);
        if (c->docid == d)
            partial += ms->part[i] = c->ops->score(c, norms);
        left -= ms->wb[i];
    }
    *score = 0;
    for (uint32_t i = 0; i < o->n; i++)
        if (o->children[i]->docid == d)
            *score += ms->part[i];
    return true;
}
