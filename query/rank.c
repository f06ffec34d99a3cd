/*
 * Ranking beyond the iterators' BM25F (rank.h has BM25F itself and the
 * per-document factors): proximity, the preference for the written forms a
 * query typed, and freshness's largest factor (the gate that decides which
 * documents get the bonuses is inline in rank.h).
 *
 * Design: each boost comes with the largest factor or bonus it can give
 * (prox_max, rank_forms_max, rank_recency_max), next to the code that gives
 * it, and pruning reads only those. A boost changed here changes its bound
 * here, and the exhaustive-vs-pruned tests of test_query catch a mismatch.
 * Bonuses that need positions (proximity) or another posting list (written
 * forms) are computed only for documents that could reach the top k with
 * them: the ranking stays exact and most documents skip the work.
 */
#include "query/rank.h"

#include <math.h>
#include <string.h>

#include "index/format/postings.h"
#include "index/format/segment.h"
#include "query/exec.h"
#include "query/qparse.h"

/* ---- proximity ---- */

static bool is_cjk_bigram(const struct qterm *t)
{
    size_t chars = 0;
    for (size_t i = 0; i < t->len; i++)
        chars += ((unsigned char)t->text[i] & 0xC0) != 0x80;
    return chars == 2 && (unsigned char)t->text[0] >= 0xE3; /* from U+3040, kana and up */
}

struct prox_leaf *rank_prox_add(struct exec *ex, const struct qnode *n, double idf,
                                struct postings_cursor *cursor)
{
    if (n->negated || n->title_only || (n->type != QNODE_TERM && n->type != QNODE_PHRASE))
        return NULL;
    bool is_phrase = n->type == QNODE_PHRASE;
    if (!is_phrase && !cursor->has_positions)
        return NULL;
    struct prox_leaf *l = &ex->prox[ex->n_prox++];
    *l = (struct prox_leaf){ .cursor = is_phrase ? NULL : cursor, .is_phrase = is_phrase,
                             .span = n->terms[n->n_terms - 1].offset + 1, .idf = idf };
    /* Bigrams overlap: a run of n + 1 characters holds n of them, and the
     * next word's first bigram comes one position after the run's last
     * (that position is the bigram across the two). Counting the run in
     * characters makes touching words touch. */
    if (is_cjk_bigram(&n->terms[0]))
        l->span++;
    return l;
}

bool rank_prox_keep(struct exec *ex, struct prox_leaf *l, uint32_t start)
{
    if (l->n_pos == l->cap) {
        uint32_t cap = l->cap ? l->cap * 2 : 64;
        uint32_t *p = arena_alloc(&ex->arena, cap * sizeof *p);
        if (!p) {
            ex->nomem = true;
            return false;
        }
        if (l->n_pos)
            memcpy(p, l->pos, l->n_pos * sizeof *p);
        l->pos = p;
        l->cap = cap;
    }
    l->pos[l->n_pos++] = start;
    return true;
}

/* Positions between the nearest occurrences of a and b; 0 when they touch or overlap. */
static uint32_t prox_gap(const struct prox_leaf *a, const struct prox_leaf *b)
{
    uint32_t best = UINT32_MAX, i = 0, j = 0;

    while (i < a->n_pos && j < b->n_pos && best) {
        uint32_t pa = a->pos[i], pb = b->pos[j], gap;
        if (pa <= pb) {
            gap = pb >= pa + a->span ? pb - (pa + a->span) : 0;
            i++;
        } else {
            gap = pa >= pb + b->span ? pa - (pb + b->span) : 0;
            j++;
        }
        if (gap < best)
            best = gap;
    }
    return best;
}

/* The proximity bonus of the current document (all leaves on it). */
static double prox_bonus(struct exec *ex)
{
    for (uint32_t i = 0; i < ex->n_prox; i++) {
        struct prox_leaf *l = &ex->prox[i];
        if (l->is_phrase)
            continue; /* phrase_check kept its starts */
        uint32_t tf = postings_tf_total(l->cursor);
        l->n_pos = 0;
        while (l->cap < tf)
            if (!rank_prox_keep(ex, l, 0))
                return 0;
        int got = postings_positions(l->cursor, l->pos, l->cap);
        if (got < 0) {
            ex->corrupt = true;
            return 0;
        }
        l->n_pos = (uint32_t)got;
    }
    double bonus = 0;
    for (uint32_t i = 0; i + 1 < ex->n_prox; i++) {
        uint32_t gap = prox_gap(&ex->prox[i], &ex->prox[i + 1]);
        if (gap <= SEARCH_PROXIMITY_WINDOW)
            bonus += SEARCH_PROXIMITY_WEIGHT * fmin(ex->prox[i].idf, ex->prox[i + 1].idf) /
                     ((1.0 + gap) * (1.0 + gap));
    }
    return bonus;
}

/* The largest bonus of the segment's leaves; none with fewer than two. */
void rank_prox_plan(struct exec *ex)
{
    ex->prox_max = 0;
    if (ex->n_prox < 2)
        ex->n_prox = 0;
    for (uint32_t i = 0; i + 1 < ex->n_prox; i++)
        ex->prox_max += SEARCH_PROXIMITY_WEIGHT * fmin(ex->prox[i].idf, ex->prox[i + 1].idf);
}

/* ---- written forms ---- */

/* Cursors over the query's written forms in the current segment. */
void rank_forms_plan(struct exec *ex, const struct query *q)
{
    ex->n_forms = q->n_forms;
    for (uint32_t i = 0; i < q->n_forms; i++) {
        struct segment_term st;
        ex->forms[i] = NULL;
        if (!ex_read_ok(ex, segment_lookup(ex->seg, q->forms[i].text, q->forms[i].len, &st,
                                           &ex->damage)))
            continue;
        struct postings_cursor *c = ex_alloc(ex, sizeof *c);
        if (!c)
            return;
        postings_cursor_init(c, st.postings, st.postings_len, st.has_positions,
                             segment_n_docs(ex->seg));
        ex->forms[i] = c;
    }
}

/* The factor for the share of the query's written forms the current document has. */
static double forms_factor(struct exec *ex, uint32_t docid)
{
    uint32_t have = 0;

    for (uint32_t i = 0; i < ex->n_forms; i++) {
        struct postings_cursor *c = ex->forms[i];
        if (!c)
            continue;
        if (!postings_advance(c, docid)) { /* at its end (or damaged) */
            ex->corrupt |= c->corrupt;
            ex->forms[i] = NULL;
        } else {
            have += c->docid == docid;
        }
    }
    return 1 + SEARCH_FORM_WEIGHT * have / ex->n_forms;
}

double rank_forms_max(const struct exec *ex, const struct search_options *o)
{
    return ex->n_forms && !o->sort_by_date ? 1 + SEARCH_FORM_WEIGHT : 1;
}

/* ---- freshness ---- */

double rank_recency_max(const struct search_options *o, double scale, const struct segment *seg)
{
    int64_t newest = segment_newest_date(seg);

    if (scale <= 0 || newest == DOC_DATE_NONE)
        return 1;
    double age = newest < o->now_s ? (double)(o->now_s - newest) : 0;
    return 1 + SEARCH_RECENCY_WEIGHT * exp2(-age * scale);
}

/* ---- the gate ---- */

double rank_bonuses(struct exec *ex, uint32_t docid, double score, double *boost,
                    double forms_max)
{
    if (ex->n_prox)
        score += prox_bonus(ex);
    if (forms_max > 1)
        *boost *= forms_factor(ex, docid);
    return score;
}
