/*
 * The iterator tree: each query node becomes an iterator over a segment's
 * docids, document at a time. A term walks its posting list; a phrase
 * intersects its terms' lists and keeps the documents where their positions
 * line up; AND leapfrogs its children from the rarest, and drops documents
 * a negated child matches; OR merges. Scores use statistics of the whole
 * snapshot (document count, average field lengths, document frequencies
 * summed over segments), so a document scores the same whichever segment
 * holds it.
 *
 * Design: an iterator knows what matches and how its matches score
 * (rank.h's BM25F), and bound() bounds that score over a block from the
 * postings' skip tables, beside score() so that the two cannot drift apart.
 * What to do with a bound (skip a region, MaxScore) is prune.c's business.
 *
 * Time: the alignment of an AND or a phrase and a title-only term spend a
 * unit of the budget per step (ex_spend); past the deadline, iterators end
 * as if they had run out of documents.
 */
#include "query/iter.h"

#include <stdlib.h>
#include <string.h>

#include "index/index.h"
#include "index/format/postings.h"
#include "index/format/segment.h"
#include "query/exec.h"
#include "query/qparse.h"
#include "query/rank.h"

/* An iterator before its first document. */
static struct iter iter_base(const struct iter_ops *ops, uint64_t cost, bool negated)
{
    return (struct iter){ .ops = ops, .docid = DOCID_END, .cost = cost, .negated = negated };
}

/* ---- term ---- */

struct term_iter {
    struct iter base;
    struct postings_cursor cursor;
    double idf;
    bool title_only;
    struct exec *ex;
};

static bool term_settle(struct term_iter *t, bool ok)
{
    while (ok && t->title_only && !t->cursor.tf[FIELD_TITLE])
        ok = !ex_spend(t->ex) && postings_next(&t->cursor);
    if (t->cursor.corrupt)
        t->ex->corrupt = true;
    t->base.docid = ok ? t->cursor.docid : DOCID_END;
    return ok;
}

static bool term_next(struct iter *it)
{
    struct term_iter *t = (struct term_iter *)it;
    return term_settle(t, postings_next(&t->cursor));
}

static bool term_advance(struct iter *it, uint32_t target)
{
    struct term_iter *t = (struct term_iter *)it;
    return term_settle(t, postings_advance(&t->cursor, target));
}

static double term_score(struct iter *it, const struct doc_norms *norms)
{
    struct term_iter *t = (struct term_iter *)it;
    uint32_t tf[N_FIELDS];

    memcpy(tf, t->cursor.tf, sizeof tf);
    if (t->title_only)
        tf[FIELD_BODY] = tf[FIELD_META] = 0;
    return rank_bm25f(t->idf, tf, norms);
}

static double term_bound(struct iter *it, uint32_t from, uint32_t *upto)
{
    struct term_iter *t = (struct term_iter *)it;
    struct postings_bound b;

    if (!postings_block_bound(&t->cursor, from, &b))
        return -1;
    *upto = b.last_docid;
    return rank_bm25f_bound(t->ex->avg_len, t->idf, b.max_tf, b.min_len, t->title_only);
}

static const struct iter_ops term_ops = { term_next, term_advance, term_score, term_bound };

/* ---- phrase ---- */

struct phrase_iter {
    struct iter base;
    struct postings_cursor *cursors; /* one per term, in phrase order */
    const struct qterm *terms;
    uint32_t n;
    uint32_t lead; /* the cursor with the fewest documents: it drives the others */
    double idf;
    bool title_only;
    uint32_t freq[N_FIELDS]; /* of the current document */
    struct prox_leaf *prox;  /* where to keep its starts, for proximity; or NULL */
    struct exec *ex;
};

/*
 * Which field the k-th position of a term in the current document falls in:
 * fields take increasing positions (index/format/segment.h, FIELD_GAP), so its first
 * tf[title] positions are in the title, the next tf[body] in the body.
 */
static enum doc_field field_of_nth(const struct postings_cursor *c, uint32_t k)
{
    if (k < c->tf[FIELD_TITLE])
        return FIELD_TITLE;
    return k < c->tf[FIELD_TITLE] + c->tf[FIELD_BODY] ? FIELD_BODY : FIELD_META;
}

static bool grow_positions(struct exec *ex, uint32_t i, uint32_t need)
{
    if (need <= ex->pos_cap[i])
        return true;
    uint32_t cap = need < 64 ? 64 : need;
    uint32_t *p = arena_alloc(&ex->arena, cap * sizeof *p);
    if (!p) {
        ex->nomem = true;
        return false;
    }
    ex->pos_buf[i] = p;
    ex->pos_cap[i] = cap;
    return true;
}

/* Appends a start position to a proximity leaf (reset per document by the caller). */

/* Counts where the terms stand at their offsets; false when nowhere. */
static bool phrase_check(struct phrase_iter *ph)
{
    struct exec *ex = ph->ex;
    uint32_t count[QUERY_MAX_TERMS], at[QUERY_MAX_TERMS];

    for (uint32_t i = 0; i < ph->n; i++) {
        uint32_t tf = postings_tf_total(&ph->cursors[i]);
        if (!grow_positions(ex, i, tf))
            return false;
        int got = postings_positions(&ph->cursors[i], ex->pos_buf[i], ex->pos_cap[i]);
        if (got < 0) {
            ex->corrupt = true;
            return false;
        }
        count[i] = (uint32_t)got;
        at[i] = 0;
    }
    memset(ph->freq, 0, sizeof ph->freq);
    if (ph->prox)
        ph->prox->n_pos = 0;
    bool any = false;
    for (uint32_t k = 0; k < count[0]; k++) {
        uint32_t start = ex->pos_buf[0][k];
        bool ok = true;
        for (uint32_t i = 1; i < ph->n && ok; i++) {
            uint64_t want = (uint64_t)start + ph->terms[i].offset;
            while (at[i] < count[i] && ex->pos_buf[i][at[i]] < want)
                at[i]++;
            ok = at[i] < count[i] && ex->pos_buf[i][at[i]] == want;
        }
        if (!ok)
            continue;
        enum doc_field f = field_of_nth(&ph->cursors[0], k);
        if (ph->title_only && f != FIELD_TITLE)
            continue;
        ph->freq[f]++;
        any = true;
        if (ph->prox && !rank_prox_keep(ex, ph->prox, start))
            return false;
    }
    return any;
}

/* From the lead cursor at some docid, aligns all cursors on a document with the phrase. */
static bool phrase_align(struct phrase_iter *ph, bool ok)
{
    struct postings_cursor *lead = &ph->cursors[ph->lead];

    while (ok && !ex_spend(ph->ex)) {
        uint32_t target = lead->docid, i;
        for (i = 0; i < ph->n; i++) {
            if (i == ph->lead)
                continue;
            if (!postings_advance(&ph->cursors[i], target)) {
                ok = false;
                break;
            }
            if (ph->cursors[i].docid != target)
                break;
        }
        if (!ok)
            break;
        if (i < ph->n) {
            ok = postings_advance(lead, ph->cursors[i].docid);
            continue;
        }
        ph->base.docid = target;
        if (phrase_check(ph))
            return true;
        if (ph->ex->corrupt || ph->ex->nomem)
            break;
        ok = postings_next(lead);
    }
    for (uint32_t i = 0; i < ph->n; i++)
        if (ph->cursors[i].corrupt)
            ph->ex->corrupt = true;
    ph->base.docid = DOCID_END;
    return false;
}

static bool phrase_next(struct iter *it)
{
    struct phrase_iter *ph = (struct phrase_iter *)it;
    return phrase_align(ph, postings_next(&ph->cursors[ph->lead]));
}

static bool phrase_advance(struct iter *it, uint32_t target)
{
    struct phrase_iter *ph = (struct phrase_iter *)it;
    if (ph->base.docid != DOCID_END && ph->base.docid >= target)
        return true;
    return phrase_align(ph, postings_advance(&ph->cursors[ph->lead], target));
}

static double phrase_score(struct iter *it, const struct doc_norms *norms)
{
    struct phrase_iter *ph = (struct phrase_iter *)it;
    return rank_bm25f(ph->idf, ph->freq, norms);
}

/* A phrase occurs in a field at most as often as each of its terms, in documents
 * at least as long as any term's block says. */
static double phrase_bound(struct iter *it, uint32_t from, uint32_t *upto)
{
    struct phrase_iter *ph = (struct phrase_iter *)it;
    uint32_t tf[N_FIELDS], len[N_FIELDS] = { 0 };

    *upto = DOCID_END - 1;
    for (int f = 0; f < N_FIELDS; f++)
        tf[f] = UINT32_MAX;
    for (uint32_t i = 0; i < ph->n; i++) {
        struct postings_bound b;
        if (!postings_block_bound(&ph->cursors[i], from, &b))
            return -1;
        if (b.last_docid < *upto)
            *upto = b.last_docid;
        for (int f = 0; f < N_FIELDS; f++) {
            if (b.max_tf[f] < tf[f])
                tf[f] = b.max_tf[f];
            if (b.min_len[f] > len[f])
                len[f] = b.min_len[f];
        }
    }
    return rank_bm25f_bound(ph->ex->avg_len, ph->idf, tf, len, ph->title_only);
}

static const struct iter_ops phrase_ops = { phrase_next, phrase_advance, phrase_score,
                                            phrase_bound };

/* ---- and ---- */

bool iter_and_excluded(struct and_iter *a, uint32_t docid)
{
    for (uint32_t i = 0; i < a->n_neg; i++) {
        struct iter *n = a->neg[i];
        if (n->docid == DOCID_END || n->docid < docid)
            n->ops->advance(n, docid); /* cheap on an iterator that has ended */
        if (n->docid == docid)
            return true;
    }
    return false;
}

static bool and_align(struct and_iter *a, bool ok)
{
    while (ok && !ex_spend(a->ex)) {
        uint32_t target = a->pos[0]->docid;
        uint32_t i;
        for (i = 1; i < a->n_pos; i++) {
            if (!a->pos[i]->ops->advance(a->pos[i], target)) {
                ok = false;
                break;
            }
            if (a->pos[i]->docid != target)
                break;
        }
        if (!ok)
            break;
        if (i < a->n_pos) {
            ok = a->pos[0]->ops->advance(a->pos[0], a->pos[i]->docid);
            continue;
        }
        if (!iter_and_excluded(a, target)) {
            a->base.docid = target;
            return true;
        }
        ok = a->pos[0]->ops->next(a->pos[0]);
    }
    a->base.docid = DOCID_END;
    return false;
}

static bool and_next(struct iter *it)
{
    struct and_iter *a = (struct and_iter *)it;
    return and_align(a, a->pos[0]->ops->next(a->pos[0]));
}

static bool and_advance(struct iter *it, uint32_t target)
{
    struct and_iter *a = (struct and_iter *)it;
    if (a->base.docid != DOCID_END && a->base.docid >= target)
        return true;
    return and_align(a, a->pos[0]->ops->advance(a->pos[0], target));
}

static double and_score(struct iter *it, const struct doc_norms *norms)
{
    struct and_iter *a = (struct and_iter *)it;
    double s = 0;

    for (uint32_t i = 0; i < a->n_pos; i++)
        if (!a->pos[i]->unscored)
            s += a->pos[i]->ops->score(a->pos[i], norms);
    return s;
}

static double and_bound(struct iter *it, uint32_t from, uint32_t *upto)
{
    struct and_iter *a = (struct and_iter *)it;
    double sum = 0;

    *upto = DOCID_END - 1;
    for (uint32_t i = 0; i < a->n_pos; i++) {
        uint32_t u;
        double b = a->pos[i]->ops->bound(a->pos[i], from, &u);
        if (b < 0)
            return -1; /* a required part has ended */
        if (a->pos[i]->unscored)
            continue; /* a filter: no score, and its blocks say nothing of others' */
        sum += b;
        if (u < *upto)
            *upto = u;
    }
    return sum;
}

const struct iter_ops iter_and_ops = { and_next, and_advance, and_score, and_bound };

/* ---- or ---- */

static bool or_settle(struct or_iter *o)
{
    uint32_t min = DOCID_END;

    for (uint32_t i = 0; i < o->n; i++)
        if (o->children[i]->docid < min)
            min = o->children[i]->docid;
    o->base.docid = min;
    return min != DOCID_END;
}

static bool or_next(struct iter *it)
{
    struct or_iter *o = (struct or_iter *)it;
    uint32_t cur = o->base.docid;

    for (uint32_t i = 0; i < o->n; i++) {
        struct iter *c = o->children[i];
        if (!o->started || c->docid == cur)
            c->ops->next(c);
    }
    o->started = true;
    return or_settle(o);
}

static bool or_advance(struct iter *it, uint32_t target)
{
    struct or_iter *o = (struct or_iter *)it;

    if (o->started && (o->base.docid == DOCID_END || o->base.docid >= target))
        return o->base.docid != DOCID_END;
    /* once started, a child at DOCID_END has ended */
    for (uint32_t i = 0; i < o->n; i++) {
        struct iter *c = o->children[i];
        if (!o->started || (c->docid != DOCID_END && c->docid < target))
            c->ops->advance(c, target);
    }
    o->started = true;
    return or_settle(o);
}

static double or_score(struct iter *it, const struct doc_norms *norms)
{
    struct or_iter *o = (struct or_iter *)it;
    double s = 0;

    for (uint32_t i = 0; i < o->n; i++)
        if (o->children[i]->docid == o->base.docid)
            s += o->children[i]->ops->score(o->children[i], norms);
    return s;
}

static double or_bound(struct iter *it, uint32_t from, uint32_t *upto)
{
    struct or_iter *o = (struct or_iter *)it;
    double sum = -1;

    *upto = DOCID_END - 1;
    for (uint32_t i = 0; i < o->n; i++) {
        uint32_t u;
        double b = o->children[i]->ops->bound(o->children[i], from, &u);
        if (b < 0)
            continue;
        sum = (sum < 0 ? 0 : sum) + b;
        if (u < *upto)
            *upto = u;
    }
    return sum;
}

const struct iter_ops iter_or_ops = { or_next, or_advance, or_score, or_bound };

/* ---- planning ---- */


/*
 * Looks term number i up in every segment (kept for building iterators) and
 * returns its document frequency over the snapshot.
 */
static uint64_t lookup_term(struct exec *ex, const struct qterm *t, uint32_t i)
{
    uint64_t df = 0;

    for (uint32_t s = 0; s < ex->snap->n_segments; s++) {
        struct term_lookup *l = &ex->lookups[(size_t)s * ex->n_terms + i];
        l->found = ex_read_ok(ex, segment_lookup(ex->snap->segments[s]->seg, t->text, t->len,
                                                 &l->st, &ex->damage));
        if (l->found)
            df += l->st.df;
    }
    return df;
}

static void assign_idfs(struct exec *ex, const struct qnode *n, double *idfs, uint32_t *i)
{
    if (n->type == QNODE_TERM || n->type == QNODE_PHRASE) {
        for (uint32_t t = 0; t < n->n_terms; t++, (*i)++)
            idfs[*i] = rank_idf(lookup_term(ex, &n->terms[t], *i), ex->snap->n_docs_stored);
        return;
    }
    for (uint32_t c = 0; c < n->n_children; c++)
        assign_idfs(ex, n->children[c], idfs, i);
}

/* Registers word or phrase n (iterator c), a child of ex->prox_parent, for proximity. */
static void prox_register(struct exec *ex, const struct qnode *n, struct iter *c)
{
    if (c->ops == &phrase_ops) {
        struct phrase_iter *ph = (struct phrase_iter *)c;
        ph->prox = rank_prox_add(ex, n, ph->idf, NULL); /* phrase_check keeps its starts */
    } else if (c->ops == &term_ops) {
        struct term_iter *t = (struct term_iter *)c;
        rank_prox_add(ex, n, t->idf, &t->cursor);
    }
}

struct iter *iter_build(struct exec *ex, const struct qnode *n, const double *idfs,
                        uint32_t *term_index)
{
    uint32_t first_term = *term_index;

    if (n->type == QNODE_TERM || n->type == QNODE_PHRASE) {
        *term_index += n->n_terms;
        struct segment_term st[QUERY_MAX_TERMS];
        uint64_t min_df = UINT64_MAX;
        double idf = 0;
        for (uint32_t i = 0; i < n->n_terms; i++) {
            const struct term_lookup *l =
                &ex->lookups[(size_t)ex->seg_index * ex->n_terms + first_term + i];
            if (!l->found)
                return NULL;
            st[i] = l->st;
            if (n->type == QNODE_PHRASE && !st[i].has_positions)
                return NULL;
            if (st[i].df < min_df)
                min_df = st[i].df;
            idf += idfs[first_term + i];
        }
        uint32_t max_docid = segment_n_docs(ex->seg);
        if (n->type == QNODE_TERM) {
            return iter_term_new(ex, &st[0], idf, n->title_only, n->negated);
        }
        struct phrase_iter *ph = ex_alloc(ex, sizeof *ph);
        struct postings_cursor *cursors = ex_alloc(ex, n->n_terms * sizeof *cursors);
        if (!ph || !cursors)
            return NULL;
        *ph = (struct phrase_iter){ .base = iter_base(&phrase_ops, min_df, n->negated),
                                    .cursors = cursors, .terms = n->terms, .n = n->n_terms,
                                    .idf = idf, .title_only = n->title_only, .ex = ex };
        for (uint32_t i = 0; i < n->n_terms; i++) {
            postings_cursor_init(&cursors[i], st[i].postings, st[i].postings_len, true,
                                 max_docid);
            if (st[i].df < st[ph->lead].df)
                ph->lead = i;
        }
        return &ph->base;
    }

    struct iter **kids = ex_alloc(ex, n->n_children * sizeof *kids);
    uint32_t n_kids = 0;
    if (!kids)
        return NULL;
    for (uint32_t i = 0; i < n->n_children; i++) {
        struct iter *c = iter_build(ex, n->children[i], idfs, term_index);
        if (ex->nomem)
            return NULL;
        if (c && n == ex->prox_parent)
            prox_register(ex, n->children[i], c);
        if (c)
            kids[n_kids++] = c;
        else if (n->type == QNODE_AND && !n->children[i]->negated)
            return NULL; /* a required part cannot match in this segment */
    }
    if (n->type == QNODE_OR) {
        if (!n_kids)
            return NULL;
        uint64_t cost = 0;
        for (uint32_t i = 0; i < n_kids; i++)
            cost += kids[i]->cost;
        return iter_or_new(ex, kids, n_kids, cost, n->negated);
    }
    struct and_iter *a = ex_alloc(ex, sizeof *a);
    struct iter **neg = ex_alloc(ex, (n_kids ? n_kids : 1) * sizeof *neg);
    if (!a || !neg)
        return NULL;
    *a = (struct and_iter){ .base = iter_base(&iter_and_ops, UINT64_MAX, n->negated),
                            .pos = kids, .neg = neg, .ex = ex };
    uint32_t n_pos = 0;
    for (uint32_t i = 0; i < n_kids; i++) {
        if (kids[i]->negated) {
            a->neg[a->n_neg++] = kids[i];
            continue;
        }
        /* insertion by cost: the rarest child leads */
        uint32_t j = n_pos++;
        struct iter *c = kids[i];
        while (j > 0 && kids[j - 1]->cost > c->cost) {
            kids[j] = kids[j - 1];
            j--;
        }
        kids[j] = c;
    }
    a->n_pos = n_pos;
    if (!n_pos)
        return NULL;
    a->base.cost = kids[0]->cost;
    return &a->base;
}

struct iter *iter_term_new(struct exec *ex, const struct segment_term *st, double idf,
                           bool title_only, bool negated)
{
    struct term_iter *t = ex_alloc(ex, sizeof *t);

    if (!t)
        return NULL;
    *t = (struct term_iter){ .base = iter_base(&term_ops, st->df, negated), .idf = idf,
                             .title_only = title_only, .ex = ex };
    postings_cursor_init(&t->cursor, st->postings, st->postings_len, st->has_positions,
                         segment_n_docs(ex->seg));
    return &t->base;
}

struct iter *iter_or_new(struct exec *ex, struct iter **children, uint32_t n, uint64_t cost,
                         bool negated)
{
    struct or_iter *o = ex_alloc(ex, sizeof *o);

    if (!o)
        return NULL;
    *o = (struct or_iter){ .base = iter_base(&iter_or_ops, cost, negated), .children = children,
                           .n = n };
    return &o->base;
}

struct iter *iter_and_new(struct exec *ex, struct iter **pos, uint32_t n_pos,
                          struct iter **neg, uint32_t n_neg, uint64_t cost, bool negated)
{
    struct and_iter *a = ex_alloc(ex, sizeof *a);

    if (!a)
        return NULL;
    *a = (struct and_iter){ .base = iter_base(&iter_and_ops, cost, negated), .pos = pos,
                            .n_pos = n_pos, .neg = neg, .n_neg = n_neg, .ex = ex };
    return &a->base;
}

void iter_lookup_terms(struct exec *ex, const struct qnode *root, double *idfs)
{
    uint32_t n = 0;

    assign_idfs(ex, root, idfs, &n);
}
