/*
 * Query execution, document at a time, one segment after another: for each
 * candidate the root iterator gives, next → filter (tombstones, dates) →
 * score → push into the top k, counting every match.
 *
 * The parts, each a file with a header for the others:
 *   iter.c   the iterator tree (term, phrase, AND, OR, NOT) and its bounds
 *   rank.c   BM25F (rank.h), proximity, written forms, freshness: each
 *            boost with its largest gain, and the gate for bonuses
 *   prune.c  Block-Max and MaxScore past SEARCH_EXACT_TOTAL matches
 *   topk.c   the heap of the k best hits
 *   facet.c  source, tag and date filters; facet counts
 *   exec.h   the state they share (arena, segment, budget)
 *
 * Design: this file decides the order of things and nothing about a score;
 * what a document scores is rank.h's and iter.c's, what may be skipped is
 * prune.c's. Bonuses that need positions are added only for documents that
 * could reach the top k with them (rank_with_bonuses), so the ranking stays
 * exact.
 *
 * Time: each loop that may visit many documents (the match loop, the
 * alignment of an AND or a phrase, a title-only term, skipping blocks,
 * counting facets) spends a unit of the budget per step (ex_spend); past the
 * deadline, iterators end as if they had run out of documents and the match
 * loop drops the document in hand, so what is answered was scored whole.
 *
 * Per-request memory comes from one arena, freed once.
 */
#include "query/search.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "index/base/arena.h"
#include "index/format/deletions.h"
#include "index/base/error.h"
#include "index/index.h"
#include "index/format/segment.h"
#include "query/exec.h"
#include "query/facet.h"
#include "query/iter.h"
#include "query/prune.h"
#include "query/qparse.h"
#include "query/rank.h"
#include "query/topk.h"

#define SEARCH_ARENA_BYTES (64u << 20)

/* What one search carries from segment to segment. */
struct run {
    struct exec ex;
    struct topk top;
    const struct query *q;
    const struct search_options *opts;
    struct search_result *out;
    double idfs[QUERY_MAX_TERMS];
    double recency_scale; /* rank_recency_scale() */
    bool want_facet[2];   /* source, tag */
    struct facet_acc acc[2];
    bool stopped; /* max_matches reached */
};

int search_run(const struct snapshot *snap, const struct query *q, uint32_t k,
               struct search_result *out, struct xerr *err)
{
    struct search_options opts = { .k = k };
    return search_run_opts(snap, q, &opts, out, err);
}

/* Counts a match; true when max_matches is reached (the search stops). */
static bool count_match(struct run *r)
{
    r->out->total++;
    if (r->opts->max_matches && r->out->total >= r->opts->max_matches) {
        r->out->total_is_bound = r->stopped = true;
        return true;
    }
    return false;
}

/* The iterators of segment s, ready to run; NULL when nothing there can match. */
static struct iter *plan_segment(struct run *r, uint32_t s)
{
    struct exec *ex = &r->ex;
    uint32_t term_index = 0;

    ex->seg = ex->snap->segments[s]->seg;
    ex->seg_index = s;
    memset(ex->pos_cap, 0, sizeof ex->pos_cap);
    ex->n_prox = 0;
    ex->competitive_upto = -1;
    ex->prox_parent =
        r->q->root->type == QNODE_AND && !r->opts->sort_by_date ? r->q->root : NULL;
    struct iter *root = facet_filter(ex, iter_build(ex, r->q->root, r->idfs, &term_index),
                                     r->opts);
    rank_prox_plan(ex);
    rank_forms_plan(ex, r->q);
    return root;
}

/* Runs root over segment s: every match counted, the best kept, facets counted. */
static void search_segment(struct run *r, uint32_t s, struct iter *root)
{
    struct exec *ex = &r->ex;
    struct topk *top = &r->top;
    const struct search_options *opts = r->opts;
    struct search_result *out = r->out;
    uint32_t n_docs = segment_n_docs(ex->seg);
    double forms_max = rank_forms_max(ex, opts);
    const struct deletions *deleted = ex->snap->deleted[s];
    uint64_t *matched = NULL;

    if (root && (r->want_facet[0] || r->want_facet[1]))
        matched = ex_alloc(ex, ((size_t)n_docs / 64 + 1) * sizeof *matched);
    /* past SEARCH_EXACT_TOTAL matches, skip blocks that cannot reach the top k */
    bool prunable = !opts->exact_total && !opts->sort_by_date && !matched && top->k;
    double gain_max = rank_recency_max(opts, r->recency_scale, ex->seg) * forms_max;
    struct maxscore *ms = prunable && root ? prune_ms_new(ex, root) : NULL;
    while (root && !ex->nomem && !ex->corrupt) {
        bool pruning = prunable && top->n == top->k && out->total >= SEARCH_EXACT_TOTAL;
        bool more = !pruning ? root->ops->next(root)
                    : ms ? prune_ms_next(ex, ms, top, gain_max, &out->total_is_bound)
                         : prune_next_competitive(ex, root, top, gain_max,
                                                  &out->total_is_bound);
        if (!more || ex_spend(ex))
            break; /* at the deadline, the document in hand may lack a part's score */
        if (deletions_has(deleted, root->docid))
            continue; /* a tombstone: replaced or deleted since the segment was written */
        struct segment_doc_rank d;
        struct doc_norms norms;
        if (!ex_read_ok(ex, segment_doc_rank(ex->seg, root->docid, &d, &ex->damage)))
            break;
        if (!facet_date_passes(opts, d.date_s))
            continue;
        rank_norms(ex->avg_len, &d, &norms);
        struct search_hit h = { s, root->docid, 0, 0 };
        double boost = rank_recency(opts, r->recency_scale, d.date_s);
        if (pruning && ms) {
            bool kept = prune_ms_score(ex, ms, &norms, boost * forms_max, topk_threshold(top),
                                       &h.score);
            if (ex->timed_out)
                break; /* a child advanced to it may have stopped short of it */
            if (!kept) {
                if (count_match(r)) /* a match that cannot enter the top k */
                    break;
                continue;
            }
        } else {
            h.score = root->ops->score(root, &norms);
        }
        h.score = rank_with_bonuses(ex, top, root->docid, h.score, boost, forms_max);
        /* by date: newest first, undated after every dated one */
        h.sort_key = !opts->sort_by_date ? h.score
                     : d.date_s == DOC_DATE_NONE ? -1e300 : (double)d.date_s;
        topk_push(top, &h);
        if (matched)
            matched[root->docid / 64] |= 1ull << (root->docid % 64);
        if (count_match(r))
            break;
    }
    static const char facet_prefix[2] = { TERM_SOURCE_PREFIX, TERM_TAG_PREFIX };
    for (int f = 0; f < 2 && matched && !ex->nomem && !ex->timed_out; f++)
        if (r->want_facet[f])
            facet_segment(ex, facet_prefix[f], matched, &r->acc[f]);
}

int search_run_opts(const struct snapshot *snap, const struct query *q,
                    const struct search_options *opts, struct search_result *out,
                    struct xerr *err)
{
    struct run r = { .ex = { .snap = snap,
                             .deadline_ns = opts->deadline_ns,
                             .clock_ns = opts->clock_ns ? opts->clock_ns : search_clock_ns,
                             .clock_every =
                                 opts->clock_every ? opts->clock_every : SEARCH_CLOCK_EVERY,
                             .until_clock = 1 /* a search that starts late stops at once */ },
                     .top = { .k = opts->k, .snap = snap },
                     .q = q,
                     .opts = opts,
                     .out = out,
                     .recency_scale = rank_recency_scale(opts),
                     .want_facet = { opts->facet_source, opts->facet_tag } };
    struct exec *ex = &r.ex;
    int rc = XE_OK;

    r.top.ex = ex;
    *out = (struct search_result){ 0 };
    if (!q->root || !snap->n_docs)
        return XE_OK;
    arena_init(&ex->arena, SEARCH_ARENA_BYTES);
    r.top.heap = malloc(sizeof *r.top.heap * (opts->k ? opts->k : 1));
    ex->n_terms = q->n_terms;
    ex->lookups = ex_alloc(ex, sizeof *ex->lookups * snap->n_segments *
                                   (q->n_terms ? q->n_terms : 1));
    if (!r.top.heap || !ex->lookups) {
        arena_fini(&ex->arena);
        free(r.top.heap);
        return xerr_set(err, XE_NOMEM, "out of memory");
    }
    for (int f = 0; f < N_FIELDS; f++) {
        ex->avg_len[f] = (double)snap->field_tokens[f] / (double)snap->n_docs_stored;
        if (ex->avg_len[f] <= 0)
            ex->avg_len[f] = 1;
    }
    iter_lookup_terms(ex, q->root, r.idfs);

    for (uint32_t s = 0; s < snap->n_segments && !rc; s++) {
        search_segment(&r, s, plan_segment(&r, s));
        if (ex->nomem || r.acc[0].nomem || r.acc[1].nomem)
            rc = xerr_set(err, XE_NOMEM, "query needs more than %u MiB of memory",
                          SEARCH_ARENA_BYTES >> 20);
        else if (ex->corrupt)
            rc = ex->damage.code ? xerr_set(err, XE_CORRUPT, "%s", ex->damage.msg)
                                 : xerr_corrupt(err, "segment %s: damaged posting list",
                                                segment_path(ex->seg));
        if (r.stopped || ex->timed_out)
            break;
        /* iterators of this segment are dead; their memory goes with the arena */
    }
    arena_fini(&ex->arena);
    if (!rc)
        topk_sort(&r.top);
    if (!rc && ex->corrupt) /* the ids of hits, compared by the heap or the sort */
        rc = xerr_set(err, XE_CORRUPT, "%s", ex->damage.msg);
    for (int f = 0; f < 2; f++)
        if (r.want_facet[f] &&
            !facet_finish(&r.acc[f], &out->facets[f], &out->n_facets[f]) && !rc)
            rc = xerr_set(err, XE_NOMEM, "out of memory");
    if (rc) {
        free(r.top.heap);
        search_result_fini(out);
        *out = (struct search_result){ 0 };
        return rc;
    }
    if (ex->timed_out)
        out->timed_out = out->total_is_bound = true;
    out->hits = r.top.heap;
    out->n_hits = r.top.n;
    return XE_OK;
}
void search_result_fini(struct search_result *r)
{
    free(r->hits);
    r->hits = NULL;
    r->n_hits = 0;
    for (int f = 0; f < 2; f++) {
        for (size_t i = 0; i < r->n_facets[f]; i++)
            free(r->facets[f][i].value);
        free(r->facets[f]);
        r->facets[f] = NULL;
        r->n_facets[f] = 0;
    }
}

uint64_t search_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool search_deadline_passed(const struct search_options *opts)
{
    if (!opts->deadline_ns)
        return false;
    return (opts->clock_ns ? opts->clock_ns() : search_clock_ns()) >= opts->deadline_ns;
}
