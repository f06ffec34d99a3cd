/*
 * In-memory index for bulk loads (see memindex.h).
 *
 * Terms live in one hash table (open addressing, term bytes in an arena);
 * each term has a growing byte list of its raw postings: varint docid delta,
 * three varint field frequencies, then position deltas. Writing a segment
 * sorts the terms and re-encodes each list into the block format, dropping
 * documents that a later one with the same id replaced.
 *
 * Documents come prepared (index/docprep.h: tokens with their term hashes).
 * Adding one is bound by cache misses, not arithmetic: a corpus has millions
 * of terms, so each token's hash slot, its term and the end of its list are
 * each a likely miss. So each step fetches for the whole document before it
 * reads: every slot, then every term, then every list's end, and the misses
 * overlap instead of queueing.
 */
#include "index/memindex.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "index/bytes.h"
#include "index/docprep.h"
#include "index/docstore.h"
#include "index/error.h"
#include "index/limits.h"
#include "index/postings.h"
#include "index/segment.h"
#include "index/tokenizer.h"

/* Code points below this have their hidden term in a direct table (all CJK planes). */
#define MEMINDEX_CHAR_TERMS 0x40000

/*
 * A term's raw postings are a chain of chunks cut from large slabs, each
 * chunk twice the one before up to LIST_CHUNK_MAX: a list grows without
 * realloc's copies, and the millions of short lists (most terms occur in a
 * document or two) cost no malloc each. A document's entry is never split
 * across chunks, so each chunk decodes alone.
 */
struct lchunk {
    struct lchunk *next;
    uint32_t len; /* bytes used: set when the next chunk starts (the last's is its term's) */
    uint32_t cap;
    unsigned char data[];
};

#define LIST_FIRST_CHUNK 24
#define LIST_CHUNK_MAX (64u << 10)
#define LIST_SLAB_BYTES (4u << 20)

struct slab {
    struct slab *next;
    size_t used, cap;
    unsigned char bytes[];
};

struct mterm {
    uint64_t term_off; /* in the terms arena */
    uint16_t term_len;
    bool has_positions;
    uint32_t df;
    uint32_t last_doc; /* UINT32_MAX before the first */
    uint32_t tail_len; /* bytes used in the last chunk */
    struct lchunk *head, *tail;
};

/*
 * A slot of the term table. It holds a term's first 8 bytes, its length and
 * part of its hash, so that a lookup of a term of 8 bytes or fewer (every
 * CJK bigram, most words) is decided in the slot without touching the term
 * bytes, which would be a second cache miss.
 */
struct term_slot {
    uint64_t key;     /* the first 8 bytes, big-endian, zero-padded */
    uint32_t id_plus1; /* 0: empty */
    uint16_t len;
    uint16_t hash_hi; /* the hash's high bits (the low ones chose the slot) */
};

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
    struct buf term_bytes;
    struct mterm *terms;
    uint32_t n_terms, terms_cap;
    struct term_slot *term_slots; /* open addressing, linear probing */
    uint32_t term_slots_cap;
    uint32_t *char_terms; /* hidden one-character terms by code point: term_id + 1 */

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
    struct slab *slabs; /* the newest first: chunks come from it */
    size_t list_bytes;
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
    buf_init(&mi->term_bytes, WRITE_SCRATCH_MAX_BYTES);
    buf_init(&mi->id_bytes, WRITE_SCRATCH_MAX_BYTES);
    docprep_init(&mi->own, tokenize_flags);
    buf_init(&mi->entry, SIZE_MAX);
    mi->term_slots_cap = 1u << 16;
    mi->id_slots_cap = 1u << 12;
    mi->term_slots = calloc(mi->term_slots_cap, sizeof *mi->term_slots);
    mi->char_terms = calloc(MEMINDEX_CHAR_TERMS, sizeof *mi->char_terms);
    mi->id_slots = calloc(mi->id_slots_cap, sizeof *mi->id_slots);
    mi->store = docstore_writer_new();
    mi->block_docs = POSTINGS_BLOCK_DOCS;
    if (!mi->term_slots || !mi->char_terms || !mi->id_slots || !mi->store) {
        memindex_free(mi);
        return NULL;
    }
    return mi;
}

void memindex_free(struct memindex *mi)
{
    if (!mi)
        return;
    while (mi->slabs) {
        struct slab *next = mi->slabs->next;
        free(mi->slabs);
        mi->slabs = next;
    }
    buf_fini(&mi->entry);
    free(mi->terms);
    free(mi->term_slots);
    free(mi->char_terms);
    free(mi->docs);
    free(mi->id_slots);
    free(mi->tok_term);
    free(mi->next_tok);
    free(mi->dterms);
    free(mi->dterm_slots);
    docprep_fini(&mi->own);
    buf_fini(&mi->term_bytes);
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
    return mi->list_bytes + mi->term_bytes.len + (size_t)mi->n_terms * sizeof(struct mterm) +
           docstore_writer_bytes(mi->store) + (size_t)mi->n_docs * sizeof(struct mdoc);
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

/* Doubles the term table at three quarters full; slots move by their stored hash. */
static bool term_table_grow(struct memindex *mi)
{
    if ((uint64_t)(mi->n_terms + 1) * 4 < (uint64_t)mi->term_slots_cap * 3)
        return true;
    uint32_t cap = mi->term_slots_cap * 2;
    struct term_slot *fresh = calloc(cap, sizeof *fresh);
    if (!fresh)
        return false;
    for (uint32_t i = 0; i < mi->term_slots_cap; i++) {
        const struct term_slot *v = &mi->term_slots[i];
        if (!v->id_plus1)
            continue;
        const struct mterm *t = &mi->terms[v->id_plus1 - 1];
        uint32_t s = (uint32_t)term_hash(mi->term_bytes.data + t->term_off, t->term_len) &
                     (cap - 1);
        while (fresh[s].id_plus1)
            s = (s + 1) & (cap - 1);
        fresh[s] = *v;
    }
    free(mi->term_slots);
    mi->term_slots = fresh;
    mi->term_slots_cap = cap;
    return true;
}

/* Finds or adds a term, given its hash and key; UINT32_MAX when out of memory. */
static uint32_t term_intern(struct memindex *mi, const char *term, size_t len, uint64_t hash,
                            uint64_t key, bool positions)
{
    if (!term_table_grow(mi))
        return UINT32_MAX;
    uint32_t mask = mi->term_slots_cap - 1;
    uint16_t hash_hi = (uint16_t)(hash >> 48);
    uint32_t s = (uint32_t)hash & mask;
    for (;; s = (s + 1) & mask) {
        const struct term_slot *v = &mi->term_slots[s];
        if (!v->id_plus1)
            break;
        if (v->hash_hi != hash_hi || v->len != len || v->key != key)
            continue;
        if (len <= 8)
            return v->id_plus1 - 1; /* the key is the whole term */
        const struct mterm *t = &mi->terms[v->id_plus1 - 1];
        if (!memcmp(mi->term_bytes.data + t->term_off, term, len))
            return v->id_plus1 - 1;
    }
    if (mi->n_terms == mi->terms_cap) {
        uint32_t cap = mi->terms_cap ? mi->terms_cap * 2 : 4096;
        struct mterm *grown = realloc(mi->terms, cap * sizeof *grown);
        if (!grown)
            return UINT32_MAX;
        mi->terms = grown;
        mi->terms_cap = cap;
    }
    uint64_t off = mi->term_bytes.len;
    if (buf_append(&mi->term_bytes, term, len))
        return UINT32_MAX;
    mi->terms[mi->n_terms] = (struct mterm){ .term_off = off, .term_len = (uint16_t)len,
                                             .has_positions = positions,
                                             .last_doc = UINT32_MAX };
    mi->term_slots[s] = (struct term_slot){ key, ++mi->n_terms, (uint16_t)len, hash_hi };
    return mi->n_terms - 1;
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

/* A hidden one-character term found in the direct table, or UINT32_MAX. */
static uint32_t char_term(const struct memindex *mi, int32_t cp)
{
    return cp >= 0 && cp < MEMINDEX_CHAR_TERMS && mi->char_terms[cp] ? mi->char_terms[cp] - 1
                                                                      : UINT32_MAX;
}

/*
 * Looks up the terms of a document's tokens into mi->tok_term, adding new
 * ones: first every hash slot is fetched, then each is read, and each term
 * found is fetched for flush_tokens.
 */
static int resolve_tokens(struct memindex *mi, const struct docprep_batch *b,
                          const struct prep_token *toks, size_t n)
{
    uint32_t mask = mi->term_slots_cap - 1;

    for (size_t i = 0; i < n; i++) {
        mi->tok_term[i] = char_term(mi, toks[i].char_cp); /* half of all CJK tokens */
        if (mi->tok_term[i] == UINT32_MAX && toks[i].char_cp < 0)
            __builtin_prefetch(&mi->term_slots[toks[i].hash & mask]);
    }
    for (size_t i = 0; i < n; i++) {
        const struct prep_token *t = &toks[i];
        uint32_t id = mi->tok_term[i];
        if (id == UINT32_MAX && (id = char_term(mi, t->char_cp)) == UINT32_MAX) {
            const char *term = prep_token_term(b, t);
            bool hashed = t->char_cp < 0; /* else a character met for the first time */
            id = term_intern(mi, term, t->len, hashed ? t->hash : term_hash(term, t->len),
                             hashed ? t->key : term_key(term, t->len), t->positions);
            if (id == UINT32_MAX)
                return XE_NOMEM;
            if (t->char_cp >= 0 && t->char_cp < MEMINDEX_CHAR_TERMS)
                mi->char_terms[t->char_cp] = id + 1;
        }
        mi->tok_term[i] = id;
        __builtin_prefetch(&mi->terms[id]);
    }
    return XE_OK;
}

/* A chunk of cap bytes of data, from the newest slab or a new one. */
static struct lchunk *chunk_new(struct memindex *mi, size_t cap)
{
    size_t bytes = (sizeof(struct lchunk) + cap + 7) & ~(size_t)7;
    struct slab *sl = mi->slabs;

    if (!sl || sl->cap - sl->used < bytes) {
        size_t slab_cap = bytes > LIST_SLAB_BYTES ? bytes : LIST_SLAB_BYTES;
        if (!(sl = malloc(sizeof *sl + slab_cap)))
            return NULL;
        *sl = (struct slab){ .next = mi->slabs, .cap = slab_cap };
        mi->slabs = sl;
    }
    struct lchunk *c = (struct lchunk *)(void *)(sl->bytes + sl->used);
    sl->used += bytes;
    mi->list_bytes += bytes; /* what is used, not the slab: a small budget is honoured */
    *c = (struct lchunk){ .cap = (uint32_t)cap };
    return c;
}

/* Appends one document's entry (mi->entry) to t's list. */
static int list_append(struct memindex *mi, struct mterm *t)
{
    const struct buf *e = &mi->entry;
    struct lchunk *c = t->tail;

    if (e->len > UINT32_MAX)
        return XE_LIMIT;
    if (!c || c->cap - t->tail_len < e->len) {
        size_t cap = !c ? LIST_FIRST_CHUNK : c->cap >= LIST_CHUNK_MAX / 2 ? LIST_CHUNK_MAX
                                                                            : 2 * c->cap;
        struct lchunk *fresh = chunk_new(mi, cap > e->len ? cap : e->len);
        if (!fresh)
            return XE_NOMEM;
        if (c) {
            c->len = t->tail_len;
            c->next = fresh;
        } else {
            t->head = fresh;
        }
        t->tail = c = fresh;
        t->tail_len = 0;
    }
    memcpy(c->data + t->tail_len, e->data, e->len);
    t->tail_len += (uint32_t)e->len;
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
        const struct mterm *t = &mi->terms[mi->dterms[g].term_id];
        if (t->tail) {
            __builtin_prefetch(t->tail, 1);
            __builtin_prefetch(t->tail->data + t->tail_len, 1);
        }
    }
    for (size_t g = 0; g < n; g++) {
        const struct dterm *d = &mi->dterms[g];
        struct mterm *t = &mi->terms[d->term_id];
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
        int rc = list_append(mi, t);
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

/*
 * Terms sorted by their bytes. Each carries its first 8 bytes as a big-endian
 * key, so most comparisons are one integer compare with no memory access;
 * only terms sharing 8 bytes compare the rest.
 */
struct term_order {
    uint64_t prefix;
    uint32_t id;
};

static int term_key_cmp(const struct memindex *mi, const struct term_order *a,
                        const struct term_order *b)
{
    if (a->prefix != b->prefix)
        return a->prefix < b->prefix ? -1 : 1;
    const struct mterm *x = &mi->terms[a->id], *y = &mi->terms[b->id];
    return bytes_cmp(mi->term_bytes.data + x->term_off, x->term_len,
                     mi->term_bytes.data + y->term_off, y->term_len);
}

/* Sorts terms by their bytes: quicksort with the comparison inlined (qsort's
 * indirect calls cost more than the comparisons), insertion sort for short runs. */
static void sort_terms(const struct memindex *mi, struct term_order *keys, size_t n)
{
    while (n > 16) {
        struct term_order pivot = keys[n / 2];
        size_t i = 0, j = n - 1;
        for (;;) {
            while (term_key_cmp(mi, &keys[i], &pivot) < 0)
                i++;
            while (term_key_cmp(mi, &keys[j], &pivot) > 0)
                j--;
            if (i >= j)
                break;
            struct term_order t = keys[i];
            keys[i++] = keys[j];
            keys[j--] = t;
        }
        /* recurse into the smaller side, loop on the larger */
        if (j + 1 < n - j - 1) {
            sort_terms(mi, keys, j + 1);
            keys += j + 1;
            n -= j + 1;
        } else {
            sort_terms(mi, keys + j + 1, n - j - 1);
            n = j + 1;
        }
    }
    for (size_t i = 1; i < n; i++) {
        struct term_order k = keys[i];
        size_t j = i;
        for (; j > 0 && term_key_cmp(mi, &keys[j - 1], &k) > 0; j--)
            keys[j] = keys[j - 1];
        keys[j] = k;
    }
}

/* How many terms ahead memindex_write fetches a term's list and bytes. */
#define TERM_PREFETCH_AHEAD 8

/* Re-encodes term t's raw list into w, renumbering docids by new_id. */
static int encode_term(const struct mterm *t, const uint32_t *new_id, struct postings_writer *w,
                       uint32_t **positions, size_t *positions_cap, uint32_t *df)
{
    const struct lchunk *c = t->head;
    const unsigned char *p = NULL, *end = NULL;
    uint32_t docid = 0;
    bool first = true;

    postings_writer_begin(w, t->has_positions);
    *df = 0;
    for (;;) {
        if (p == end) {
            if (!c)
                break;
            p = c->data;
            end = c->data + (c == t->tail ? t->tail_len : c->len);
            c = c->next;
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
            if (n > *positions_cap) {
                uint32_t *grown = realloc(*positions, n * sizeof *grown);
                if (!grown)
                    return XE_NOMEM;
                *positions = grown;
                *positions_cap = n;
            }
            int64_t prev = -1;
            for (uint64_t i = 0; i < n; i++) {
                uint64_t d = 0;
                varint_get(&p, end, &d);
                prev += (int64_t)d + 1;
                (*positions)[i] = (uint32_t)prev;
            }
        }
        if (new_id[docid] == UINT32_MAX)
            continue;
        int rc = postings_writer_add(w, new_id[docid], tf, *positions, (uint32_t)n);
        if (rc)
            return rc;
        (*df)++;
    }
    return XE_OK;
}

/* Compressing the stored documents: a job for a second thread (memindex_set_parallel_write). */
struct store_job {
    struct docstore_writer *store;
    struct buf out;
    int rc;
    struct xerr err;
};

static void *store_job_run(void *arg)
{
    struct store_job *job = arg;
    job->rc = docstore_writer_finish(job->store, &job->out, &job->err);
    return NULL;
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
    struct segment_writer *sw = segment_writer_new();
    uint32_t *new_id = malloc(sizeof *new_id * ((size_t)mi->n_docs + 1));
    uint32_t *lengths = malloc(sizeof *lengths * N_FIELDS * ((size_t)mi->n_docs + 1));
    struct term_order *order = malloc(sizeof *order * ((size_t)mi->n_terms + 1));
    uint32_t *positions = NULL;
    size_t positions_cap = 0;
    struct postings_writer pw;
    struct buf list;
    struct store_job store = { .store = mi->store };
    pthread_t store_thread;
    bool store_threaded = false;
    int rc = XE_OK;

    postings_writer_init(&pw, mi->block_docs);
    buf_init(&list, WRITE_SCRATCH_MAX_BYTES);
    buf_init(&store.out, SEGMENT_SECTION_MAX_BYTES);
    if (!sw || !new_id || !order || !lengths) {
        rc = xerr_set(err, XE_NOMEM, "segment %s: out of memory", path);
        goto out;
    }
    postings_writer_set_lengths(&pw, lengths);
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
        memcpy(lengths + (size_t)new_id[i] * N_FIELDS, d->field_tokens, sizeof d->field_tokens);
        rc = segment_writer_add_doc(sw, &sd, err);
    }
    for (uint32_t i = 0; i < mi->n_terms; i++)
        order[i] = (struct term_order){
            term_key(mi->term_bytes.data + mi->terms[i].term_off, mi->terms[i].term_len), i };
    /* the store shares nothing with the postings: compress it meanwhile */
    store_threaded = !rc && mi->parallel_write &&
                     pthread_create(&store_thread, NULL, store_job_run, &store) == 0;
    sort_terms(mi, order, mi->n_terms);
    for (uint32_t i = 0; i < mi->n_terms && !rc; i++) {
        /* the terms are visited out of the order they were made in: fetch ahead */
        if (i + 2 * TERM_PREFETCH_AHEAD < mi->n_terms)
            __builtin_prefetch(&mi->terms[order[i + 2 * TERM_PREFETCH_AHEAD].id]);
        if (i + TERM_PREFETCH_AHEAD < mi->n_terms) {
            const struct mterm *ahead = &mi->terms[order[i + TERM_PREFETCH_AHEAD].id];
            __builtin_prefetch(ahead->head);
            __builtin_prefetch(mi->term_bytes.data + ahead->term_off);
        }
        const struct mterm *t = &mi->terms[order[i].id];
        uint32_t df;
        rc = encode_term(t, new_id, &pw, &positions, &positions_cap, &df);
        if (rc) {
            xerr_set(err, rc, "segment %s: out of memory", path);
            break;
        }
        if (!df)
            continue; /* only replaced documents had it */
        buf_reset(&list);
        rc = postings_writer_finish(&pw, &list);
        if (rc) {
            xerr_set(err, rc, "segment %s: posting list too large", path);
            break;
        }
        rc = segment_writer_add_term(sw, (const char *)mi->term_bytes.data + t->term_off,
                                     t->term_len, df, t->has_positions, list.data, list.len, err);
    }
    if (store_threaded)
        pthread_join(store_thread, NULL);
    else if (!rc)
        store_job_run(&store);
    if (!rc && store.rc)
        rc = xerr_set(err, store.rc, "%s", store.err.msg);
    if (!rc)
        rc = segment_writer_finish_kept(sw, &store.out, path, durable, kept, err);
out:
    postings_writer_fini(&pw);
    buf_fini(&list);
    buf_fini(&store.out);
    free(positions);
    free(order);
    free(lengths);
    free(new_id);
    segment_writer_free(sw);
    return rc;
}
