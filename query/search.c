/*
 * Query execution, document at a time, one segment after another.
 *
 * Each query node becomes an iterator over a segment's docids: a term walks
 * its posting list; a phrase intersects its terms' lists and keeps the
 * documents where their positions line up; AND leapfrogs its children from
 * the rarest, and drops documents a negated child matches; OR merges. Scores
 * use statistics of the whole snapshot (document count, average field
 * lengths, document frequencies summed over segments), so a document scores
 * the same whichever segment holds it.
 *
 * Proximity: when the query is an AND of several words or phrases, each pair
 * of neighbours in the query adds a bonus when they stand close together in
 * the document (see SEARCH_PROXIMITY_* in search.h). The bonus needs
 * positions, so it is computed only for documents that could reach the top k
 * with it: the ranking stays exact. So is the preference for the written
 * forms a query typed (馬 over 马 when the query says 馬).
 *
 * Pruning: past SEARCH_EXACT_TOTAL counted matches, with a full top k, a
 * query skips regions whose blocks bound every score below the top k's
 * threshold (next_competitive); an OR at the root, or ANDed only with
 * filters and negations, runs MaxScore instead (ms_next: the bounds of many
 * children add up in every block, so that regions would never be skipped).
 * Both read the same bounds, bonuses included.
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

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "index/base/arena.h"
#include "index/base/bytes.h"
#include "index/format/deletions.h"
#include "index/base/error.h"
#include "index/index.h"
#include "index/format/postings.h"
#include "index/format/segment.h"
#include "query/qparse.h"

#define SEARCH_ARENA_BYTES (64u << 20)

static const double field_weight[N_FIELDS] = { BM25_WEIGHT_TITLE, BM25_WEIGHT_BODY,
                                               BM25_WEIGHT_META };

/* Length normalization of the current document, per field. */
struct doc_norms {
    double inv_norm[N_FIELDS]; /* 1 / (1 - b + b * len / avg_len) */
};

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

/* A word or phrase of the query, for proximity. */
struct prox_leaf {
    struct iter *it;
    bool is_phrase;
    uint32_t span; /* positions it covers */
    double idf;
    uint32_t *pos; /* where it starts in the current document */
    uint32_t n_pos, cap;
};

/* An iterator before its first document. */
static struct iter iter_base(const struct iter_ops *ops, uint64_t cost, bool negated)
{
    return (struct iter){ .ops = ops, .docid = DOCID_END, .cost = cost, .negated = negated };
}

/* The state one search shares across its iterators. */
struct exec {
    struct arena arena;
    const struct snapshot *snap;
    const struct segment *seg; /* the segment being searched */
    uint32_t seg_index;
    double avg_len[N_FIELDS];
    struct term_lookup *lookups; /* [segment][term]: each term looked up once */
    uint32_t n_terms;
    uint32_t *pos_buf[QUERY_MAX_TERMS]; /* positions of a phrase's terms */
    uint32_t pos_cap[QUERY_MAX_TERMS];
    bool corrupt, nomem;
    struct xerr damage; /* what a segment reader said was damaged, when one did */

    /* written forms the query typed (qparse.h), in this segment; NULL where absent */
    struct postings_cursor *forms[QUERY_MAX_FORMS];
    uint32_t n_forms;

    /* proximity: the query's top-level words and phrases, in query order */
    const struct qnode *prox_parent; /* the AND whose children they are */
    struct prox_leaf prox[QUERY_MAX_TERMS];
    uint32_t n_prox;
    double prox_max; /* the largest bonus a document can get */

    /* pruning: docids up to here lie in a region found competitive; it is
     * scanned as is (a higher threshold since would only prune more) */
    int64_t competitive_upto;

    /* the time budget (search.h): the clock is read when until_clock runs out */
    uint64_t deadline_ns; /* 0: none */
    uint64_t (*clock_ns)(void);
    uint32_t clock_every, until_clock;
    bool timed_out; /* sticky */
};

/* A segment reader's answer: false when it found damage (the search then fails with it). */
static bool ex_read_ok(struct exec *ex, int rc)
{
    if (rc == XE_CORRUPT)
        ex->corrupt = true;
    return rc == XE_OK;
}

/*
 * Spends one unit of work; true once the deadline has passed (then for good),
 * and the caller stops as if its documents had run out.
 */
static bool ex_spend(struct exec *ex)
{
    if (!ex->deadline_ns || ex->timed_out)
        return ex->timed_out;
    if (--ex->until_clock)
        return false;
    ex->until_clock = ex->clock_every;
    ex->timed_out = ex->clock_ns() >= ex->deadline_ns;
    return ex->timed_out;
}

/* BM25 of one leaf given its frequency per field. */
static double bm25f(double idf, const uint32_t tf[N_FIELDS], const struct doc_norms *norms)
{
    double tfn = 0;

    for (int f = 0; f < N_FIELDS; f++)
        if (tf[f])
            tfn += field_weight[f] * tf[f] * norms->inv_norm[f];
    return idf * tfn * (BM25_K1 + 1) / (tfn + BM25_K1);
}

/* The highest bm25f of a leaf with at most max_tf per field in fields at least min_len long. */
static double bm25f_bound(const double avg_len[N_FIELDS], double idf,
                          const uint32_t max_tf[N_FIELDS], const uint32_t min_len[N_FIELDS],
                          bool title_only)
{
    double tfn = 0;

    for (int f = 0; f < N_FIELDS; f++) {
        if (!max_tf[f] || (title_only && f != FIELD_TITLE))
            continue;
        if (max_tf[f] == UINT32_MAX)
            return idf * (BM25_K1 + 1); /* unknown: the limit of saturation */
        /* the length a document of at least min_len is scored with (segment.h) */
        uint32_t len = segment_length_of_code(segment_length_code(min_len[f]));
        tfn += field_weight[f] * max_tf[f] / (1 - BM25_B + BM25_B * len / avg_len[f]);
    }
    return idf * tfn * (BM25_K1 + 1) / (tfn + BM25_K1);
}

/*
 * Document frequencies count deleted documents until a merge drops them, so
 * n_docs must count them too (as Lucene's docCount does): else a term whose
 * df exceeds the live count would get a negative idf.
 */
static double idf_of(uint64_t df, uint64_t n_docs)
{
    return log(1.0 + ((double)n_docs - (double)df + 0.5) / ((double)df + 0.5));
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
    return bm25f(t->idf, tf, norms);
}

static double term_bound(struct iter *it, uint32_t from, uint32_t *upto)
{
    struct term_iter *t = (struct term_iter *)it;
    struct postings_bound b;

    if (!postings_block_bound(&t->cursor, from, &b))
        return -1;
    *upto = b.last_docid;
    return bm25f_bound(t->ex->avg_len, t->idf, b.max_tf, b.min_len, t->title_only);
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
static bool prox_keep(struct exec *ex, struct prox_leaf *l, uint32_t start)
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
        if (ph->prox && !prox_keep(ex, ph->prox, start))
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
    return bm25f(ph->idf, ph->freq, norms);
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
    return bm25f_bound(ph->ex->avg_len, ph->idf, tf, len, ph->title_only);
}

static const struct iter_ops phrase_ops = { phrase_next, phrase_advance, phrase_score,
                                            phrase_bound };

/* ---- and ---- */

struct and_iter {
    struct iter base;
    struct iter **pos; /* positive children, rarest first */
    uint32_t n_pos;
    struct iter **neg;
    uint32_t n_neg;
    struct exec *ex;
};

static bool and_excluded(struct and_iter *a, uint32_t docid)
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
        if (!and_excluded(a, target)) {
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

static const struct iter_ops and_ops = { and_next, and_advance, and_score, and_bound };

/* ---- or ---- */

struct or_iter {
    struct iter base;
    struct iter **children;
    uint32_t n;
    bool started;
};

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

static const struct iter_ops or_ops = { or_next, or_advance, or_score, or_bound };

/* ---- planning ---- */

/* A term of the query in one segment. */
struct term_lookup {
    bool found;
    struct segment_term st;
};

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

static void *ex_alloc(struct exec *ex, size_t bytes)
{
    void *p = arena_alloc(&ex->arena, bytes);
    if (!p)
        ex->nomem = true;
    return p;
}

static bool is_cjk_bigram(const struct qterm *t)
{
    size_t chars = 0;
    for (size_t i = 0; i < t->len; i++)
        chars += ((unsigned char)t->text[i] & 0xC0) != 0x80;
    return chars == 2 && (unsigned char)t->text[0] >= 0xE3; /* from U+3040, kana and up */
}

/* Registers a child of the top-level AND for proximity: a word or phrase with positions. */
static void prox_add(struct exec *ex, const struct qnode *n, struct iter *c)
{
    if (n->negated || n->title_only || (n->type != QNODE_TERM && n->type != QNODE_PHRASE))
        return;
    struct prox_leaf *l = &ex->prox[ex->n_prox];
    *l = (struct prox_leaf){ .it = c, .is_phrase = n->type == QNODE_PHRASE,
                             .span = n->terms[n->n_terms - 1].offset + 1 };
    /* Bigrams overlap: a run of n + 1 characters holds n of them, and the
     * next word's first bigram comes one position after the run's last
     * (that position is the bigram across the two). Counting the run in
     * characters makes touching words touch. */
    if (is_cjk_bigram(&n->terms[0]))
        l->span++;
    if (l->is_phrase) {
        struct phrase_iter *ph = (struct phrase_iter *)c;
        ph->prox = l;
        l->idf = ph->idf;
    } else {
        struct term_iter *t = (struct term_iter *)c;
        if (!t->cursor.has_positions)
            return;
        l->idf = t->idf;
    }
    ex->n_prox++;
}

/*
 * The iterator of node n over the current segment, or NULL when it cannot
 * match there (a term the segment lacks) or memory ran out (ex->nomem).
 */
static struct iter *build(struct exec *ex, const struct qnode *n, const double *idfs,
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
            struct term_iter *t = ex_alloc(ex, sizeof *t);
            if (!t)
                return NULL;
            *t = (struct term_iter){ .base = iter_base(&term_ops, st[0].df, n->negated),
                                     .idf = idf, .title_only = n->title_only, .ex = ex };
            postings_cursor_init(&t->cursor, st[0].postings, st[0].postings_len,
                                 st[0].has_positions, max_docid);
            return &t->base;
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
        struct iter *c = build(ex, n->children[i], idfs, term_index);
        if (ex->nomem)
            return NULL;
        if (c && n == ex->prox_parent)
            prox_add(ex, n->children[i], c);
        if (c)
            kids[n_kids++] = c;
        else if (n->type == QNODE_AND && !n->children[i]->negated)
            return NULL; /* a required part cannot match in this segment */
    }
    if (n->type == QNODE_OR) {
        if (!n_kids)
            return NULL;
        struct or_iter *o = ex_alloc(ex, sizeof *o);
        if (!o)
            return NULL;
        uint64_t cost = 0;
        for (uint32_t i = 0; i < n_kids; i++)
            cost += kids[i]->cost;
        *o = (struct or_iter){ .base = iter_base(&or_ops, cost, n->negated),
                               .children = kids, .n = n_kids };
        return &o->base;
    }
    struct and_iter *a = ex_alloc(ex, sizeof *a);
    struct iter **neg = ex_alloc(ex, (n_kids ? n_kids : 1) * sizeof *neg);
    if (!a || !neg)
        return NULL;
    *a = (struct and_iter){ .base = iter_base(&and_ops, UINT64_MAX, n->negated),
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

/* ---- proximity ---- */

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
        struct term_iter *t = (struct term_iter *)l->it;
        uint32_t tf = postings_tf_total(&t->cursor);
        l->n_pos = 0;
        while (l->cap < tf)
            if (!prox_keep(ex, l, 0))
                return 0;
        int got = postings_positions(&t->cursor, l->pos, l->cap);
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
static void prox_plan(struct exec *ex)
{
    ex->prox_max = 0;
    if (ex->n_prox < 2)
        ex->n_prox = 0;
    for (uint32_t i = 0; i + 1 < ex->n_prox; i++)
        ex->prox_max += SEARCH_PROXIMITY_WEIGHT * fmin(ex->prox[i].idf, ex->prox[i + 1].idf);
}

/* ---- written forms ---- */

/* Cursors over the query's written forms in the current segment. */
static void forms_plan(struct exec *ex, const struct query *q)
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

/* ---- pruning ---- */

/* The largest freshness factor a document of seg can get. */
static double recency_max(const struct search_options *o, double scale, const struct segment *seg)
{
    int64_t newest = segment_newest_date(seg);

    if (scale <= 0 || newest == DOC_DATE_NONE)
        return 1;
    double age = newest < o->now_s ? (double)(o->now_s - newest) : 0;
    return 1 + SEARCH_RECENCY_WEIGHT * exp2(-age * scale);
}

struct topk;
static double topk_threshold(const struct topk *t);

/*
 * Whether a document scoring at most base (plus the largest proximity bonus),
 * times at most gain, could still reach threshold. A hair of slack: a bound
 * and the score it bounds add the same terms in other orders.
 */
static bool may_reach(const struct exec *ex, double base, double gain, double threshold)
{
    return (base + ex->prox_max) * gain * (1 + 1e-9) >= threshold;
}

/*
 * next() for a full top k: passes over regions whose blocks bound every score
 * below the worst hit kept (times gain_max, the largest factor freshness and
 * written forms can add, plus the largest proximity bonus). Sets *skipped when
 * it passes over any, since matches there then go uncounted.
 */
static bool next_competitive(struct exec *ex, struct iter *root, const struct topk *top,
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
        if (may_reach(ex, bound, gain_max, threshold)) {
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

/* ---- top k ---- */

struct topk {
    struct search_hit *heap; /* a min-heap: the worst kept hit on top */
    uint32_t n, k;
    const struct snapshot *snap;
    struct exec *ex; /* where damage to the ids is reported */
};

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

/* The score a hit must reach to enter a full top k. */
static double topk_threshold(const struct topk *t)
{
    return t->heap[0].score;
}

static void topk_push(struct topk *t, const struct search_hit *h)
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

/*
 * MaxScore over an OR (Turtle and Flood; per window of docids, as Lucene's
 * MaxScoreBulkScorer does). Past the same point as the block skipping above,
 * the OR's children are bounded over a window of SEARCH_PRUNE_WINDOW docids
 * (the highest score of their blocks there) and sorted by that bound; the
 * longest run of the lowest whose bounds add up to less than the threshold
 * (with every bonus) is non-essential: a document holding only those cannot
 * enter the top k, so candidates come from the essential children alone.
 * A candidate is dropped unread when the bounds of the children on it plus
 * those of all non-essential ones cannot reach the threshold; else it is
 * scored by its essential children, then the non-essential ones are advanced
 * to it one by one, highest bound first, until its partial score plus the
 * bounds left cannot reach the threshold (dropped) or all have been added.
 * Its score is then summed in child order, as or_score() does, so that it
 * is exactly the score of an exhaustive search.
 */
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

/*
 * MaxScore for root: an OR, or an AND whose only scored part is an OR (the
 * others filters or negations: `a OR b -c`); NULL for any other root.
 */
static struct maxscore *ms_new(struct exec *ex, struct iter *root)
{
    struct and_iter *a = NULL;

    if (root->negated)
        return NULL;
    if (root->ops == &and_ops) {
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
    if (root->ops != &or_ops)
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
           !may_reach(ex, ms->ne_sum + ms->wb[ms->order[ms->n_ne]], gain_max, threshold))
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
    return !and_excluded(a, d);
}

/*
 * next() of the OR for a full top k past SEARCH_EXACT_TOTAL: the next
 * candidate that may reach it, or false at the end (or the deadline). Sets
 * *skipped when matches may go uncounted.
 */
static bool ms_next(struct exec *ex, struct maxscore *ms, const struct topk *top,
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
        if (!may_reach(ex, bound, gain_max, threshold)) {
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
static bool ms_score(struct exec *ex, struct maxscore *ms, const struct doc_norms *norms,
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
        if (!may_reach(ex, partial + left, gain, threshold))
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

/* ---- the search ---- */

static void assign_idfs(struct exec *ex, const struct qnode *n, double *idfs, uint32_t *i)
{
    if (n->type == QNODE_TERM || n->type == QNODE_PHRASE) {
        for (uint32_t t = 0; t < n->n_terms; t++, (*i)++)
            idfs[*i] = idf_of(lookup_term(ex, &n->terms[t], *i), ex->snap->n_docs_stored);
        return;
    }
    for (uint32_t c = 0; c < n->n_children; c++)
        assign_idfs(ex, n->children[c], idfs, i);
}

/* ---- filters and facets ---- */

/*
 * An OR over the exact-value terms (doc.h) of one filter, unscored; NULL when
 * none of the values occurs in the segment (then nothing there can match).
 */
static struct iter *build_filter(struct exec *ex, char prefix, const struct text *values,
                                 size_t n)
{
    struct iter **kids = ex_alloc(ex, (n ? n : 1) * sizeof *kids);
    uint32_t n_kids = 0;
    char term[TOKEN_MAX_BYTES + 2];

    for (size_t i = 0; kids && i < n; i++) {
        struct segment_term st;
        size_t len = doc_exact_len(values[i].p, values[i].len); /* as indexed */
        term[0] = prefix;
        memcpy(term + 1, values[i].p, len);
        if (!ex_read_ok(ex, segment_lookup(ex->seg, term, len + 1, &st, &ex->damage)))
            continue;
        struct term_iter *t = ex_alloc(ex, sizeof *t);
        if (!t)
            return NULL;
        *t = (struct term_iter){ .base = iter_base(&term_ops, st.df, false), .ex = ex };
        postings_cursor_init(&t->cursor, st.postings, st.postings_len, st.has_positions,
                             segment_n_docs(ex->seg));
        kids[n_kids++] = &t->base;
    }
    if (!n_kids)
        return NULL;
    struct or_iter *o = ex_alloc(ex, sizeof *o);
    if (!o)
        return NULL;
    *o = (struct or_iter){ .base = iter_base(&or_ops, n_kids, false),
                           .children = kids, .n = n_kids };
    return &o->base;
}

/* root AND the filters, scored by root alone; NULL when a filter rules the segment out. */
static struct iter *with_filters(struct exec *ex, struct iter *root,
                                 const struct search_options *o)
{
    struct iter *f[2] = { NULL, NULL };
    uint32_t n = 0;

    if (o->n_sources && !(f[n++] = build_filter(ex, TERM_SOURCE_PREFIX, o->sources,
                                                o->n_sources)))
        return NULL;
    if (o->n_tags && !(f[n++] = build_filter(ex, TERM_TAG_PREFIX, o->tags, o->n_tags)))
        return NULL;
    if (!n || !root)
        return root;
    struct and_iter *a = ex_alloc(ex, sizeof *a);
    struct iter **kids = ex_alloc(ex, (n + 1) * sizeof *kids);
    if (!a || !kids)
        return NULL;
    kids[0] = root;
    for (uint32_t i = 0; i < n; i++) {
        f[i]->unscored = true;
        kids[i + 1] = f[i];
    }
    /* the rarest leads the leapfrog, filter or not */
    for (uint32_t i = 1; i <= n; i++)
        for (uint32_t j = i; j > 0 && kids[j - 1]->cost > kids[j]->cost; j--) {
            struct iter *t = kids[j];
            kids[j] = kids[j - 1];
            kids[j - 1] = t;
        }
    *a = (struct and_iter){ .base = iter_base(&and_ops, root->cost, false),
                            .pos = kids, .n_pos = n + 1, .ex = ex };
    return &a->base;
}

/* One value's count, gathered over segments. */
struct facet_count {
    char *value; /* owned */
    size_t len;
    uint64_t count;
};

struct facet_acc {
    struct facet_count *items;
    size_t n, cap;
    bool nomem;
};

/* Counts, for each exact-value term of prefix in the segment, its matching documents. */
static void facet_segment(struct exec *ex, char prefix, const uint64_t *matched,
                          struct facet_acc *acc)
{
    struct segment_term_iter it;
    struct segment_term st;
    uint32_t n_docs = segment_n_docs(ex->seg);

    segment_terms_from(ex->seg, &prefix, 1, &it);
    while (!ex->timed_out && segment_terms_next(&it, &st) && it.term_len &&
           it.term[0] == prefix && !ex->corrupt) {
        struct postings_cursor c;
        uint64_t count = 0;
        postings_cursor_init(&c, st.postings, st.postings_len, st.has_positions, n_docs);
        while (!ex_spend(ex) && postings_next(&c))
            count += (matched[c.docid / 64] >> (c.docid % 64)) & 1;
        if (c.corrupt)
            ex->corrupt = true;
        if (!count || ex->timed_out)
            continue; /* a value counted in part is left out */
        if (acc->n == acc->cap) {
            size_t cap = acc->cap ? acc->cap * 2 : 64;
            struct facet_count *grown = realloc(acc->items, cap * sizeof *grown);
            if (!grown) {
                acc->nomem = true;
                return;
            }
            acc->items = grown;
            acc->cap = cap;
        }
        char *value = malloc(it.term_len);
        if (!value) {
            acc->nomem = true;
            return;
        }
        memcpy(value, it.term + 1, it.term_len - 1);
        acc->items[acc->n++] = (struct facet_count){ value, it.term_len - 1, count };
    }
    if (it.rc) {
        ex->corrupt = true;
        segment_terms_error(&it, &ex->damage);
    }
}

static int facet_by_value(const void *a, const void *b)
{
    const struct facet_count *x = a, *y = b;
    return bytes_cmp(x->value, x->len, y->value, y->len);
}

static int facet_by_count(const void *a, const void *b)
{
    const struct facet_count *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return facet_by_value(a, b);
}

/* Merges a value's counts over segments, keeps the SEARCH_FACET_VALUES most frequent. */
static bool facet_finish(struct facet_acc *acc, struct facet_value **out, size_t *n_out)
{
    size_t n = 0;

    if (acc->n)
        qsort(acc->items, acc->n, sizeof *acc->items, facet_by_value);
    for (size_t i = 0; i < acc->n; i++) {
        if (n && !facet_by_value(&acc->items[n - 1], &acc->items[i])) {
            acc->items[n - 1].count += acc->items[i].count;
            free(acc->items[i].value);
            continue;
        }
        acc->items[n++] = acc->items[i];
    }
    if (n)
        qsort(acc->items, n, sizeof *acc->items, facet_by_count);
    size_t keep = n < SEARCH_FACET_VALUES ? n : SEARCH_FACET_VALUES;
    *out = calloc(keep ? keep : 1, sizeof **out);
    for (size_t i = 0; i < n; i++) {
        if (i < keep && *out) {
            (*out)[i] = (struct facet_value){ acc->items[i].value, acc->items[i].len,
                                              acc->items[i].count };
            continue;
        }
        free(acc->items[i].value);
    }
    free(acc->items);
    *n_out = *out ? keep : 0;
    return *out != NULL && !acc->nomem;
}

/* ---- the search ---- */

int search_run(const struct snapshot *snap, const struct query *q, uint32_t k,
               struct search_result *out, struct xerr *err)
{
    struct search_options opts = { .k = k };
    return search_run_opts(snap, q, &opts, out, err);
}

static bool date_passes(const struct search_options *o, int64_t date_s)
{
    if (!o->has_from && !o->has_to)
        return true;
    if (date_s == DOC_DATE_NONE)
        return false;
    return (!o->has_from || date_s >= o->from_s) && (!o->has_to || date_s <= o->to_s);
}

int search_run_opts(const struct snapshot *snap, const struct query *q,
                    const struct search_options *opts, struct search_result *out,
                    struct xerr *err)
{
    struct exec ex = { .snap = snap,
                       .deadline_ns = opts->deadline_ns,
                       .clock_ns = opts->clock_ns ? opts->clock_ns : search_clock_ns,
                       .clock_every = opts->clock_every ? opts->clock_every : SEARCH_CLOCK_EVERY,
                       .until_clock = 1 /* a search that starts late stops at once */ };
    struct topk top = { .k = opts->k, .snap = snap, .ex = &ex };
    struct facet_acc acc[2] = { { 0 }, { 0 } };
    bool want_facet[2] = { opts->facet_source, opts->facet_tag };
    const char facet_prefix[2] = { TERM_SOURCE_PREFIX, TERM_TAG_PREFIX };
    double idfs[QUERY_MAX_TERMS];
    bool stopped = false; /* max_matches reached */
    int rc = XE_OK;

    *out = (struct search_result){ 0 };
    if (!q->root || !snap->n_docs)
        return XE_OK;
    arena_init(&ex.arena, SEARCH_ARENA_BYTES);
    top.heap = malloc(sizeof *top.heap * (opts->k ? opts->k : 1));
    ex.n_terms = q->n_terms;
    ex.lookups = ex_alloc(&ex, sizeof *ex.lookups * snap->n_segments *
                                   (q->n_terms ? q->n_terms : 1));
    if (!top.heap || !ex.lookups) {
        arena_fini(&ex.arena);
        free(top.heap);
        return xerr_set(err, XE_NOMEM, "out of memory");
    }
    for (int f = 0; f < N_FIELDS; f++) {
        ex.avg_len[f] = (double)snap->field_tokens[f] / (double)snap->n_docs_stored;
        if (ex.avg_len[f] <= 0)
            ex.avg_len[f] = 1;
    }
    uint32_t n_idfs = 0;
    assign_idfs(&ex, q->root, idfs, &n_idfs);
    /* halvings per second of age; 0 when freshness does not count */
    double recency_scale = opts->recency_half_life_days > 0 && !opts->sort_by_date
                               ? 1 / (opts->recency_half_life_days * 86400)
                               : 0;

    for (uint32_t s = 0; s < snap->n_segments && !rc; s++) {
        uint32_t term_index = 0, n_docs = segment_n_docs(snap->segments[s]->seg);
        ex.seg = snap->segments[s]->seg;
        ex.seg_index = s;
        memset(ex.pos_cap, 0, sizeof ex.pos_cap);
        ex.n_prox = 0;
        ex.competitive_upto = -1;
        ex.prox_parent = q->root->type == QNODE_AND && !opts->sort_by_date ? q->root : NULL;
        struct iter *root = with_filters(&ex, build(&ex, q->root, idfs, &term_index), opts);
        prox_plan(&ex);
        forms_plan(&ex, q);
        double extra_max = ex.n_forms && !opts->sort_by_date ? 1 + SEARCH_FORM_WEIGHT : 1;
        const struct deletions *deleted = snap->deleted[s];
        uint64_t *matched = NULL;
        if (root && (want_facet[0] || want_facet[1]))
            matched = ex_alloc(&ex, ((size_t)n_docs / 64 + 1) * sizeof *matched);
        /* past SEARCH_EXACT_TOTAL matches, skip blocks that cannot reach the top k */
        bool prunable = !opts->exact_total && !opts->sort_by_date && !matched && top.k;
        double gain_max = recency_max(opts, recency_scale, ex.seg) * extra_max;
        struct maxscore *ms = prunable && root ? ms_new(&ex, root) : NULL;
        while (root && !ex.nomem && !ex.corrupt) {
            bool pruning = prunable && top.n == top.k && out->total >= SEARCH_EXACT_TOTAL;
            bool more = !pruning ? root->ops->next(root)
                        : ms     ? ms_next(&ex, ms, &top, gain_max, &out->total_is_bound)
                                 : next_competitive(&ex, root, &top, gain_max,
                                                    &out->total_is_bound);
            if (!more || ex_spend(&ex))
                break; /* at the deadline, the document in hand may lack a part's score */
            if (deletions_has(deleted, root->docid))
                continue; /* a tombstone: replaced or deleted since the segment was written */
            struct segment_doc_rank d;
            struct doc_norms norms;
            if (!ex_read_ok(&ex, segment_doc_rank(ex.seg, root->docid, &d, &ex.damage)))
                break;
            if (!date_passes(opts, d.date_s))
                continue;
            for (int f = 0; f < N_FIELDS; f++)
                norms.inv_norm[f] =
                    1.0 / (1 - BM25_B + BM25_B * segment_length_of_code(d.len_code[f]) /
                                            ex.avg_len[f]);
            struct search_hit h = { s, root->docid, 0, 0 };
            double boost = 1;
            if (recency_scale > 0 && d.date_s != DOC_DATE_NONE) {
                double age = d.date_s < opts->now_s ? (double)(opts->now_s - d.date_s) : 0;
                boost += SEARCH_RECENCY_WEIGHT * exp2(-age * recency_scale);
            }
            if (pruning && ms) {
                bool kept = ms_score(&ex, ms, &norms, boost * extra_max, topk_threshold(&top),
                                     &h.score);
                if (ex.timed_out)
                    break; /* a child advanced to it may have stopped short of it */
                if (!kept) {
                    out->total++; /* a match that cannot enter the top k */
                    if (opts->max_matches && out->total >= opts->max_matches) {
                        out->total_is_bound = stopped = true;
                        break;
                    }
                    continue;
                }
            } else {
                h.score = root->ops->score(root, &norms);
            }
            /* bonuses only where they could lift the document into the top k */
            if ((ex.n_prox || extra_max > 1) && top.k &&
                (top.n < top.k ||
                 may_reach(&ex, h.score, boost * extra_max, topk_threshold(&top)))) {
                if (ex.n_prox)
                    h.score += prox_bonus(&ex);
                if (extra_max > 1)
                    boost *= forms_factor(&ex, root->docid);
            }
            h.score *= boost;
            /* by date: newest first, undated after every dated one */
            h.sort_key = !opts->sort_by_date ? h.score
                         : d.date_s == DOC_DATE_NONE ? -1e300 : (double)d.date_s;
            out->total++;
            topk_push(&top, &h);
            if (matched)
                matched[root->docid / 64] |= 1ull << (root->docid % 64);
            if (opts->max_matches && out->total >= opts->max_matches) {
                out->total_is_bound = stopped = true;
                break;
            }
        }
        for (int f = 0; f < 2 && matched && !ex.nomem && !ex.timed_out; f++)
            if (want_facet[f])
                facet_segment(&ex, facet_prefix[f], matched, &acc[f]);
        if (ex.nomem || acc[0].nomem || acc[1].nomem)
            rc = xerr_set(err, XE_NOMEM, "query needs more than %u MiB of memory",
                          SEARCH_ARENA_BYTES >> 20);
        else if (ex.corrupt)
            rc = ex.damage.code ? xerr_set(err, XE_CORRUPT, "%s", ex.damage.msg)
                                : xerr_corrupt(err, "segment %s: damaged posting list",
                                               segment_path(ex.seg));
        if (stopped || ex.timed_out)
            break;
        /* iterators of this segment are dead; their memory goes with the arena */
    }
    arena_fini(&ex.arena);
    if (!rc)
        qsort_r(top.heap, top.n, sizeof *top.heap, hit_order, &top);
    if (!rc && ex.corrupt) /* the ids of hits, compared by the heap or the sort */
        rc = xerr_set(err, XE_CORRUPT, "%s", ex.damage.msg);
    for (int f = 0; f < 2; f++)
        if (want_facet[f] && !facet_finish(&acc[f], &out->facets[f], &out->n_facets[f]) &&
            !rc)
            rc = xerr_set(err, XE_NOMEM, "out of memory");
    if (rc) {
        free(top.heap);
        search_result_fini(out);
        *out = (struct search_result){ 0 };
        return rc;
    }
    if (ex.timed_out)
        out->timed_out = out->total_is_bound = true;
    out->hits = top.heap;
    out->n_hits = top.n;
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
