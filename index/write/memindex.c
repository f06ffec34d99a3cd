/*
 * In-memory index for bulk loads (see memindex.h).
 *
 * Terms live in a term table (index/write/termtable.h); each term's list there
 * holds its raw postings: per document, varint docid delta, three varint
 * field frequencies, then position deltas. Writing a segment sorts the terms
 * and re-encodes each list into the block format through the segment builder
 * (index/write/segbuild.h), dropping documents that a later one with the same id
 * replaced.
 *
 * Documents come prepared (index/write/docprep.h: tokens with their term hashes).
 * Adding one is bound by cache misses, not arithmetic: a corpus has millions
 * of terms, so each token's hash slot, its term and the end of its list are
 * each a likely miss. So each step fetches for the whole document before it
 * reads: every slot, then every term, then every list's end, and the misses
 * overlap instead of queueing.
 */
#include "index/write/memindex.h"

#include <stdlib.h>
#include <string.h>

#include "index/base/bytes.h"
#include "index/write/docprep.h"
#include "index/format/docstore.h"
#include "index/base/error.h"
#include "index/base/limits.h"
#include "index/format/postings.h"
#include "index/write/segbuild.h"
#include "index/format/segment.h"
#include "index/write/termtable.h"
#include "index/text/tokenizer.h"

struct mdoc {
    uint32_t field_tokens[N_FIELDS];
    uint32_t field_start[N_FIELDS];
    int64_t date_s;
    uint64_t id_off; /* in the ids arena */
    uint16_t id_len;
    bool replaced;
    struct docstore_ref store;
};

/* A term of the document being added, with its tokens chained in position order. */
struct dterm {
    uint32_t term_id, first_tok, last_tok;
    uint32_t tf[N_FIELDS];
};

struct memindex {
    unsigned tokenize_flags;
    struct termtable tt;

    struct buf id_bytes;
    struct mdoc *docs;
    uint32_t n_docs, docs_cap, n_live;
    uint32_t *id_slots; /* hash table of docid + 1 */
    uint32_t id_slots_cap;

    /* the document being added, toks_cap tokens at most */
    size_t toks_cap;
    uint32_t *tok_term;    /* per token: its term id */
    uint32_t *next_tok;    /* per token: the next of the same term */
    struct dterm *dterms;  /* the distinct terms */
    uint32_t *dterm_slots; /* term id -> dterms index + 1, 2 * toks_cap slots */
    struct docprep_batch own; /* memindex_add's */

    struct docstore_writer *store;
    bool broken; /* a failed add left part of a document in the lists */
    struct buf entry; /* one document's entry of a list, being encoded */
    uint32_t block_docs;
    bool parallel_write;
};

struct memindex *memindex_new(unsigned tokenize_flags)
{
    struct memindex *mi = calloc(1, sizeof *mi);

    if (!mi)
        return NULL;
    mi->tokenize_flags = tokenize_flags;
    int tt_rc = termtable_init(&mi->tt);
    buf_init(&mi->id_bytes, WRITE_SCRATCH_MAX_BYTES);
    docprep_init(&mi->own, tokenize_flags);
    buf_init(&mi->entry, SIZE_MAX);
    mi->id_slots_cap = 1u << 12;
    mi->id_slots = calloc(mi->id_slots_cap, sizeof *mi->id_slots);
    mi->store = docstore_writer_new();
    mi->block_docs = POSTINGS_BLOCK_DOCS;
    if (tt_rc || !mi->id_slots || !mi->store) {
        memindex_free(mi);
        return NULL;
    }
    return mi;
}

void memindex_free(struct memindex *mi)
{
    if (!mi)
        return;
    buf_fini(&mi->entry);
    termtable_fini(&mi->tt);
    free(mi->docs);
    free(mi->id_slots);
    free(mi->tok_term);
    free(mi->next_tok);
    free(mi->dterms);
    free(mi->dterm_slots);
    docprep_fini(&mi->own);
    buf_fini(&mi->id_bytes);
    docstore_writer_free(mi->store);
    free(mi);
}

void memindex_set_block_docs(struct memindex *mi, uint32_t block_docs)
{
    mi->block_docs = block_docs;
}

void memindex_set_parallel_write(struct memindex *mi, bool parallel)
{
    mi->parallel_write = parallel;
}

uint32_t memindex_n_docs(const struct memindex *mi)
{
    return mi->n_live;
}

size_t memindex_bytes(const struct memindex *mi)
{
    return termtable_bytes(&mi->tt) + docstore_writer_bytes(mi->store) + (size_t)mi->n_docs * sizeof(struct mdoc);
}

/* Doubles an open-addressing table of id + 1 entries; key_of gives each entry's hash. */
static bool rehash(uint32_t **slots, uint32_t *cap, uint32_t count,
                   uint64_t (*key_of)(const struct memindex *, uint32_t),
                   const struct memindex *mi)
{
    if ((uint64_t)(count + 1) * 4 < (uint64_t)*cap * 3)
        return true;
    uint32_t new_cap = *cap * 2;
    uint32_t *fresh = calloc(new_cap, sizeof *fresh);
    if (!fresh)
        return false;
    for (uint32_t i = 0; i < *cap; i++) {
        uint32_t v = (*slots)[i];
        if (!v)
            continue;
        uint32_t s = (uint32_t)key_of(mi, v - 1) & (new_cap - 1);
        while (fresh[s])
            s = (s + 1) & (new_cap - 1);
        fresh[s] = v;
    }
    free(*slots);
    *slots = fresh;
    *cap = new_cap;
    return true;
}

static uint64_t id_hash_of(const struct memindex *mi, uint32_t docid)
{
    return term_hash(mi->id_bytes.data + mi->docs[docid].id_off, mi->docs[docid].id_len);
}

/* Room for the tokens of a document of n. */
static bool doc_tokens_reserve(struct memindex *mi, size_t n)
{
    if (n <= mi->toks_cap)
        return true;
    size_t cap = mi->toks_cap ? mi->toks_cap : 1024;
    while (cap < n)
        cap *= 2;
    uint32_t *terms = realloc(mi->tok_term, cap * sizeof *terms);
    if (terms)
        mi->tok_term = terms;
    uint32_t *next = terms ? realloc(mi->next_tok, cap * sizeof *next) : NULL;
    if (next)
        mi->next_tok = next;
    struct dterm *dterms = next ? realloc(mi->dterms, cap * sizeof *dterms) : NULL;
    if (dterms)
        mi->dterms = dterms;
    uint32_t *slots = dterms ? realloc(mi->dterm_slots, 2 * cap * sizeof *slots) : NULL;
    if (!slots)
        return false;
    mi->dterm_slots = slots;
    mi->toks_cap = cap;
    return true;
}

/*
 * Looks up the terms of a document's tokens into mi->tok_term, adding new
 * ones: first every hash slot is fetched, then each is read, and each term
 * found is fetched for flush_tokens.
 */
static int resolve_tokens(struct memindex *mi, const struct docprep_batch *b,
                          const struct prep_token *toks, size_t n)
{
    uint32_t mask = mi->tt.slots_cap - 1;

    for (size_t i = 0; i < n; i++) {
        mi->tok_term[i] = termtable_char(&mi->tt, toks[i].char_cp); /* half of all CJK tokens */
        if (mi->tok_term[i] == UINT32_MAX && toks[i].char_cp < 0)
            __builtin_prefetch(&mi->tt.slots[toks[i].hash & mask]);
    }
    for (size_t i = 0; i < n; i++) {
        const struct prep_token *t = &toks[i];
        uint32_t id = mi->tok_term[i];
        if (id == UINT32_MAX && (id = termtable_char(&mi->tt, t->char_cp)) == UINT32_MAX) {
            const char *term = prep_token_term(b, t);
            bool hashed = t->char_cp < 0; /* else a character met for the first time */
            id = termtable_intern(&mi->tt, term, t->len, hashed ? t->hash : term_hash(term, t->len),
                             hashed ? t->key : term_key(term, t->len), t->positions);
            if (id == UINT32_MAX)
                return XE_NOMEM;
            if (t->char_cp >= 0)
                termtable_set_char(&mi->tt, t->char_cp, id);
        }
        mi->tok_term[i] = id;
        __builtin_prefetch(&mi->tt.terms[id]);
    }
    return XE_OK;
}

static void entry_put(struct buf *e, uint64_t v)
{
    e->len += varint_put(e->data + e->len, v);
}

/*
 * Groups a document's tokens by term, chaining each term's tokens in the
 * order they came, which is position order; fills mi->dterms and returns how
 * many distinct terms there are. A small open-addressing map from term id to
 * group keeps it linear, with no sort.
 */
static size_t group_tokens(struct memindex *mi, const struct prep_token *toks, size_t n_toks)
{
    uint32_t cap = 16, shift = 28;
    size_t n = 0;

    if (!n_toks)
        return 0;
    while (cap < 2 * n_toks) {
        cap *= 2;
        shift--;
    }
    uint32_t mask = cap - 1;
    memset(mi->dterm_slots, 0, cap * sizeof *mi->dterm_slots);
    for (size_t i = 0; i < n_toks; i++) {
        uint32_t term_id = mi->tok_term[i];
        uint32_t s = (term_id * 0x9E3779B1u) >> shift; /* Fibonacci hashing */
        struct dterm *g;
        for (;; s = (s + 1) & mask) {
            uint32_t v = mi->dterm_slots[s];
            if (!v) {
                g = &mi->dterms[n];
                *g = (struct dterm){ .term_id = term_id, .first_tok = (uint32_t)i };
                mi->dterm_slots[s] = (uint32_t)++n;
                break;
            }
            g = &mi->dterms[v - 1];
            if (g->term_id == term_id) {
                mi->next_tok[g->last_tok] = (uint32_t)i;
                break;
            }
        }
        g->last_tok = (uint32_t)i;
        g->tf[toks[i].field]++;
    }
    return n;
}

/* Appends a document's tokens, looked up, to their terms' lists. */
static int flush_tokens(struct memindex *mi, const struct prep_token *toks, size_t n_toks,
                        uint32_t docid)
{
    size_t n = group_tokens(mi, toks, n_toks);

    /* independent loads: the misses overlap */
    for (size_t g = 0; g < n; g++) {
        const struct tt_term *t = &mi->tt.terms[mi->dterms[g].term_id];
        if (t->tail) {
            __builtin_prefetch(t->tail, 1);
            __builtin_prefetch(t->tail->data + t->tail_len, 1);
        }
    }
    for (size_t g = 0; g < n; g++) {
        const struct dterm *d = &mi->dterms[g];
        struct tt_term *t = &mi->tt.terms[d->term_id];
        uint32_t n_tf = d->tf[FIELD_TITLE] + d->tf[FIELD_BODY] + d->tf[FIELD_META];
        struct buf *e = &mi->entry;
        buf_reset(e);
        if (buf_reserve(e, VARINT_MAX_BYTES * (4 + (size_t)(t->has_positions ? n_tf : 0))))
            return XE_NOMEM;
        entry_put(e, t->last_doc == UINT32_MAX ? docid : docid - t->last_doc);
        for (int f = 0; f < N_FIELDS; f++)
            entry_put(e, d->tf[f]);
        if (t->has_positions) {
            int64_t prev = -1;
            for (uint32_t k = d->first_tok, left = n_tf; left; left--) {
                uint32_t position = toks[k].position;
                entry_put(e, (uint64_t)(position - prev - 1));
                prev = position;
                k = mi->next_tok[k];
            }
        }
        int rc = termtable_append(&mi->tt, t, e->data, e->len);
        if (rc)
            return rc;
        t->last_doc = docid;
        t->df++;
    }
    return XE_OK;
}

/* The id table slot holding this id, or the empty slot where it would go. */
static uint32_t id_slot(const struct memindex *mi, const char *id, size_t len)
{
    uint32_t mask = mi->id_slots_cap - 1;

    for (uint32_t s = (uint32_t)term_hash(id, len) & mask;; s = (s + 1) & mask) {
        uint32_t v = mi->id_slots[s];
        if (!v)
            return s;
        const struct mdoc *d = &mi->docs[v - 1];
        if (d->id_len == len && !memcmp(mi->id_bytes.data + d->id_off, id, len))
            return s;
    }
}

static int register_id(struct memindex *mi, uint32_t docid, struct xerr *err)
{
    const struct mdoc *d = &mi->docs[docid];
    const char *id = (const char *)mi->id_bytes.data + d->id_off;

    if (!rehash(&mi->id_slots, &mi->id_slots_cap, mi->n_docs, id_hash_of, mi))
        return xerr_set(err, XE_NOMEM, "out of memory");
    uint32_t s = id_slot(mi, id, d->id_len);
    uint32_t v = mi->id_slots[s];
    if (v && !mi->docs[v - 1].replaced)
        mi->docs[v - 1].replaced = true; /* the newer document takes the slot */
    else
        mi->n_live++;
    mi->id_slots[s] = docid + 1;
    return XE_OK;
}

bool memindex_has_id(const struct memindex *mi, const char *id, size_t len)
{
    uint32_t v = mi->id_slots[id_slot(mi, id, len)];
    return v && !mi->docs[v - 1].replaced;
}

bool memindex_delete(struct memindex *mi, const char *id, size_t len)
{
    uint32_t v = mi->id_slots[id_slot(mi, id, len)];

    if (!v || mi->docs[v - 1].replaced)
        return false;
    mi->docs[v - 1].replaced = true;
    mi->n_live--;
    return true;
}

/* How much of an id (not NUL-terminated) messages show. */
static int id_shown(size_t len)
{
    return len < 64 ? (int)len : 64;
}

/* Adds one prepared document of b. */
static int add_prepared(struct memindex *mi, const struct docprep_batch *b,
                        const struct prep_doc *pd, struct xerr *err)
{
    const char *id = (const char *)b->bytes.data + pd->id_at;
    struct mdoc doc = { .date_s = pd->date_s, .id_len = pd->id_len };
    int rc;

    if (mi->n_docs == UINT32_MAX - 1)
        return xerr_set(err, XE_LIMIT, "too many documents for one segment");
    if (mi->n_docs == mi->docs_cap) {
        uint32_t cap = mi->docs_cap ? mi->docs_cap * 2 : 1024;
        struct mdoc *grown = realloc(mi->docs, cap * sizeof *grown);
        if (!grown)
            return xerr_set(err, XE_NOMEM, "out of memory");
        mi->docs = grown;
        mi->docs_cap = cap;
    }
    memcpy(doc.field_tokens, pd->field_tokens, sizeof doc.field_tokens);
    memcpy(doc.field_start, pd->field_start, sizeof doc.field_start);
    rc = docstore_writer_add(mi->store, b->bytes.data + pd->record_at, pd->record_len,
                             &doc.store, err);
    if (rc)
        return rc;
    doc.id_off = mi->id_bytes.len;
    if (buf_append(&mi->id_bytes, id, pd->id_len))
        return xerr_set(err, XE_NOMEM, "out of memory");
    const struct prep_token *toks = b->tokens + pd->first_token;
    if (!doc_tokens_reserve(mi, pd->n_tokens) || resolve_tokens(mi, b, toks, pd->n_tokens))
        return xerr_set(err, XE_NOMEM, "out of memory indexing %.*s", id_shown(pd->id_len), id);
    /* from here a failure leaves lists holding part of the document: refuse what follows */
    if (flush_tokens(mi, toks, pd->n_tokens, mi->n_docs)) {
        mi->broken = true;
        return xerr_set(err, XE_NOMEM, "out of memory indexing %.*s", id_shown(pd->id_len), id);
    }
    mi->docs[mi->n_docs] = doc;
    rc = register_id(mi, mi->n_docs, err);
    mi->broken = rc != XE_OK;
    if (rc)
        return rc;
    mi->n_docs++;
    return XE_OK;
}

int memindex_add_batch(struct memindex *mi, const struct docprep_batch *b, struct xerr *err)
{
    if (mi->broken)
        return xerr_set(err, XE_NOMEM, "in-memory index left incomplete by an earlier failure");
    for (size_t i = 0; i < b->n_docs; i++) {
        int rc = add_prepared(mi, b, &b->docs[i], err);
        if (rc)
            return rc;
    }
    return XE_OK;
}

int memindex_add(struct memindex *mi, const struct doc_fields *d, struct xerr *err)
{
    docprep_reset(&mi->own);
    int rc = docprep_add(&mi->own, d, err);
    return rc ? rc : memindex_add_batch(mi, &mi->own, err);
}

/* How many terms ahead memindex_write fetches a term's list and bytes. */
#define TERM_PREFETCH_AHEAD 8

/* Re-encodes term t's raw list into b, renumbering docids by new_id. */
static int encode_term(const struct tt_term *t, const uint32_t *new_id, struct segbuild *b,
                       struct xerr *err)
{
    struct tt_list_iter it;
    const unsigned char *p = NULL, *end = NULL;
    uint32_t docid = 0, *positions = NULL;
    bool first = true;

    segbuild_term_begin(b, t->has_positions);
    tt_list_iter_init(&it, t);
    for (;;) {
        if (p == end) {
            if (!tt_list_iter_next(&it, &p, &end))
                break;
            continue;
        }
        uint64_t delta = 0, n = 0;
        uint32_t tf[N_FIELDS];
        varint_get(&p, end, &delta);
        docid = first ? (uint32_t)delta : docid + (uint32_t)delta;
        first = false;
        for (int f = 0; f < N_FIELDS; f++) {
            uint32_t v = 0;
            varint_get32(&p, end, &v);
            tf[f] = v;
            n += v;
        }
        if (t->has_positions) {
            int rc = segbuild_positions(b, n, &positions, err);
            if (rc)
                return rc;
            int64_t prev = -1;
            for (uint64_t i = 0; i < n; i++) {
                uint64_t d = 0;
                varint_get(&p, end, &d);
                prev += (int64_t)d + 1;
                positions[i] = (uint32_t)prev;
            }
        }
        if (new_id[docid] == UINT32_MAX)
            continue;
        int rc = segbuild_term_add(b, new_id[docid], tf, positions, (uint32_t)n, err);
        if (rc)
            return rc;
    }
    return XE_OK;
}

static int write_to(struct memindex *mi, const char *path, bool durable, struct segment **kept,
                    struct xerr *err);

int memindex_write(struct memindex *mi, const char *path, bool durable, struct xerr *err)
{
    return write_to(mi, path, durable, NULL, err);
}

int memindex_write_kept(struct memindex *mi, const char *path, struct segment **kept,
                        struct xerr *err)
{
    return write_to(mi, path, false, kept, err);
}

static int write_to(struct memindex *mi, const char *path, bool durable, struct segment **kept,
                    struct xerr *err)
{
    if (kept)
        *kept = NULL;
    if (mi->broken)
        return xerr_set(err, XE_NOMEM, "segment %s: in-memory index left incomplete", path);
    const struct termtable *tt = &mi->tt;
    uint32_t *new_id = malloc(sizeof *new_id * ((size_t)mi->n_docs + 1));
    struct tt_order *order = malloc(sizeof *order * ((size_t)tt->n_terms + 1));
    struct segbuild b;
    int rc = segbuild_init(&b, path, mi->n_docs, mi->block_docs, err);

    if (!rc && (!new_id || !order))
        rc = xerr_set(err, XE_NOMEM, "segment %s: out of memory", path);
    if (rc)
        goto out;
    uint32_t next = 0;
    for (uint32_t i = 0; i < mi->n_docs && !rc; i++) {
        const struct mdoc *d = &mi->docs[i];
        if (d->replaced) {
            new_id[i] = UINT32_MAX;
            continue;
        }
        new_id[i] = next++;
        struct segment_doc sd = {
            .date_s = d->date_s,
            .id = (const char *)mi->id_bytes.data + d->id_off,
            .id_len = d->id_len,
            .store = d->store,
        };
        memcpy(sd.field_tokens, d->field_tokens, sizeof sd.field_tokens);
        memcpy(sd.field_start, d->field_start, sizeof sd.field_start);
        rc = segbuild_add_doc(&b, &sd, err);
    }
    if (rc)
        goto out;
    /* the store shares nothing with the postings: compress it meanwhile */
    segbuild_store(&b, mi->store, mi->parallel_write);
    termtable_sort(tt, order);
    for (uint32_t i = 0; i < tt->n_terms && !rc; i++) {
        /* the terms are visited out of the order they were made in: fetch ahead */
        if (i + 2 * TERM_PREFETCH_AHEAD < tt->n_terms)
            __builtin_prefetch(&tt->terms[order[i + 2 * TERM_PREFETCH_AHEAD].id]);
        if (i + TERM_PREFETCH_AHEAD < tt->n_terms) {
            const struct tt_term *ahead = &tt->terms[order[i + TERM_PREFETCH_AHEAD].id];
            __builtin_prefetch(ahead->head);
            __builtin_prefetch(termtable_term(tt, ahead));
        }
        const struct tt_term *t = &tt->terms[order[i].id];
        rc = encode_term(t, new_id, &b, err);
        if (!rc)
            rc = segbuild_term_end(&b, termtable_term(tt, t), t->term_len, err);
    }
    if (!rc)
        rc = segbuild_finish(&b, durable, kept, err);
out:
    segbuild_fini(&b);
    free(order);
    free(new_id);
    return rc;
}
