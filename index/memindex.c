/*
 * In-memory index for bulk loads (see memindex.h).
 *
 * Terms live in one hash table (open addressing, term bytes in an arena);
 * each term has a growing byte list of its raw postings: varint docid delta,
 * three varint field frequencies, then position deltas. Writing a segment
 * sorts the terms and re-encodes each list into the block format, dropping
 * documents that a later one with the same id replaced.
 *
 * Adding a document is bound by cache misses, not arithmetic: a corpus has
 * millions of terms, so each token's hash slot, its term and the end of its
 * list are each a likely miss. The document's tokens are therefore gathered
 * first, their slots prefetched as they come; the lookups follow once the
 * whole document is tokenized, prefetching each term found, and the lists
 * are appended term by term, prefetching a few terms ahead. Misses then
 * overlap instead of queueing.
 */
#include "index/memindex.h"

#include <stdlib.h>
#include <string.h>

#include "index/bytes.h"
#include "index/docstore.h"
#include "index/error.h"
#include "index/postings.h"
#include "index/segment.h"
#include "index/tokenizer.h"

#define MEMINDEX_ARENA_MAX ((size_t)1 << 36)
/* Code points below this have their hidden term in a direct table (all CJK planes). */
#define MEMINDEX_CHAR_TERMS 0x40000

struct mlist {
    unsigned char *data;
    uint32_t len, cap;
};

struct mterm {
    uint64_t term_off; /* in the terms arena */
    uint16_t term_len;
    bool has_positions;
    uint32_t df;
    uint32_t last_doc; /* UINT32_MAX before the first */
    struct mlist list;
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

/* One token of the document being added; term_id is UINT32_MAX until looked up. */
struct dtok {
    uint64_t hash, key; /* of the term bytes: see term_slot */
    uint32_t term_id;
    uint32_t position;
    uint32_t bytes_at; /* the term's bytes, in tok_bytes */
    uint16_t len;
    uint8_t field;
    bool positions; /* a visible term (hidden ones take no position) */
    int32_t char_cp; /* a hidden one-character term's code point, else -1 */
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

    struct dtok *toks;
    size_t n_toks, toks_cap;
    struct buf tok_bytes;  /* the term bytes of toks */
    uint32_t *next_tok;    /* per token: the next of the same term, room for toks_cap */
    struct dterm *dterms;  /* the document's distinct terms, room for toks_cap */
    uint32_t *dterm_slots; /* term_id -> dterms index + 1, 2 * toks_cap slots */
    int rc; /* sticky allocation failure of the token callback */

    struct docstore_writer *store;
    struct buf record;
    size_t list_bytes;
    uint32_t block_docs;

    /* state of the document being tokenized */
    uint8_t cur_field;
    uint32_t field_count;
};

static uint64_t hash_bytes(const void *p, size_t len)
{
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < len; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    /* FNV's low bits are weak for short keys: mix them all in (murmur3's finalizer) */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

struct memindex *memindex_new(unsigned tokenize_flags)
{
    struct memindex *mi = calloc(1, sizeof *mi);

    if (!mi)
        return NULL;
    mi->tokenize_flags = tokenize_flags;
    buf_init(&mi->term_bytes, MEMINDEX_ARENA_MAX);
    buf_init(&mi->id_bytes, MEMINDEX_ARENA_MAX);
    buf_init(&mi->record, 4 * (size_t)DOC_MAX_BYTES);
    buf_init(&mi->tok_bytes, MEMINDEX_ARENA_MAX);
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
    for (uint32_t i = 0; i < mi->n_terms; i++)
        free(mi->terms[i].list.data);
    free(mi->terms);
    free(mi->term_slots);
    free(mi->char_terms);
    free(mi->docs);
    free(mi->id_slots);
    free(mi->toks);
    free(mi->next_tok);
    free(mi->dterms);
    free(mi->dterm_slots);
    buf_fini(&mi->tok_bytes);
    buf_fini(&mi->term_bytes);
    buf_fini(&mi->id_bytes);
    buf_fini(&mi->record);
    docstore_writer_free(mi->store);
    free(mi);
}

void memindex_set_block_docs(struct memindex *mi, uint32_t block_docs)
{
    mi->block_docs = block_docs;
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
    return hash_bytes(mi->id_bytes.data + mi->docs[docid].id_off, mi->docs[docid].id_len);
}

static uint64_t prefix_key(const unsigned char *p, size_t len)
{
    uint64_t k = 0;
    memcpy(&k, p, len < 8 ? len : 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    k = __builtin_bswap64(k); /* the first byte most significant: compares as bytes do */
#endif
    return k;
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
        uint32_t s = (uint32_t)hash_bytes(mi->term_bytes.data + t->term_off, t->term_len) &
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

/* The code point of a hidden one-character term ("\x01" + UTF-8), or -1. */
static int32_t char_term_cp(const struct token *tok)
{
    const unsigned char *p = (const unsigned char *)tok->term + 1;

    if (tok->term[0] != TERM_CHAR_PREFIX)
        return -1; /* an exact-value term */
    if (tok->term_len == 4 && (p[0] & 0xF0) == 0xE0)
        return (p[0] & 0x0F) << 12 | (p[1] & 0x3F) << 6 | (p[2] & 0x3F);
    if (tok->term_len == 5 && (p[0] & 0xF8) == 0xF0)
        return (p[0] & 0x07) << 18 | (p[1] & 0x3F) << 12 | (p[2] & 0x3F) << 6 | (p[3] & 0x3F);
    return -1;
}

/* Room for one more token of the document (and for grouping them). */
static bool toks_reserve(struct memindex *mi)
{
    if (mi->n_toks < mi->toks_cap)
        return true;
    size_t cap = mi->toks_cap ? mi->toks_cap * 2 : 1024;
    struct dtok *toks = realloc(mi->toks, cap * sizeof *toks);
    if (toks)
        mi->toks = toks;
    uint32_t *next = toks ? realloc(mi->next_tok, cap * sizeof *next) : NULL;
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

/* Gathers a token; its term is looked up later (resolve_tokens), its slot fetched meanwhile. */
static int on_token(void *ctx, const struct token *tok)
{
    struct memindex *mi = ctx;
    bool hidden = tok->kind == TOKEN_CJK_CHAR;

    if (!hidden && ++mi->field_count > FIELD_MAX_TOKENS)
        return 1; /* the rest of an absurdly long field is not indexed */
    if (!toks_reserve(mi)) {
        mi->rc = XE_NOMEM;
        return 1;
    }
    struct dtok *d = &mi->toks[mi->n_toks];
    *d = (struct dtok){ .term_id = UINT32_MAX, .position = tok->position,
                        .len = (uint16_t)tok->term_len, .field = mi->cur_field,
                        .positions = !hidden, .char_cp = hidden ? char_term_cp(tok) : -1 };
    if (d->char_cp >= 0 && d->char_cp < MEMINDEX_CHAR_TERMS && mi->char_terms[d->char_cp]) {
        d->term_id = mi->char_terms[d->char_cp] - 1; /* half of all CJK tokens */
    } else {
        d->hash = hash_bytes(tok->term, tok->term_len);
        d->key = prefix_key((const unsigned char *)tok->term, tok->term_len);
        d->bytes_at = (uint32_t)mi->tok_bytes.len;
        if (buf_append(&mi->tok_bytes, tok->term, tok->term_len)) {
            mi->rc = XE_NOMEM;
            return 1;
        }
        __builtin_prefetch(&mi->term_slots[d->hash & (mi->term_slots_cap - 1)]);
    }
    mi->n_toks++;
    return 0;
}

/* Looks up the gathered tokens' terms (adding new ones), prefetching each term for flush_tokens. */
static int resolve_tokens(struct memindex *mi)
{
    for (size_t i = 0; i < mi->n_toks; i++) {
        struct dtok *d = &mi->toks[i];
        if (d->term_id == UINT32_MAX) {
            int32_t cp = d->char_cp;
            if (cp >= 0 && cp < MEMINDEX_CHAR_TERMS && mi->char_terms[cp])
                d->term_id = mi->char_terms[cp] - 1; /* added by an earlier token */
            else
                d->term_id = term_intern(mi, (const char *)mi->tok_bytes.data + d->bytes_at,
                                         d->len, d->hash, d->key, d->positions);
            if (d->term_id == UINT32_MAX)
                return XE_NOMEM;
            if (cp >= 0 && cp < MEMINDEX_CHAR_TERMS)
                mi->char_terms[cp] = d->term_id + 1;
        }
        __builtin_prefetch(&mi->terms[d->term_id]);
    }
    buf_reset(&mi->tok_bytes);
    return XE_OK;
}

/* Tokenizes one text of a field; returns the next free position. */
static uint32_t add_text(struct memindex *mi, struct text t, uint32_t position,
                         uint32_t *field_tokens)
{
    size_t before = mi->n_toks;
    uint32_t next = position;

    if (!t.p || !t.len)
        return position;
    mi->field_count = *field_tokens;
    tokenize(t.p, t.len, position, mi->tokenize_flags, on_token, mi);
    for (size_t i = before; i < mi->n_toks; i++)
        if (mi->toks[i].position >= next && mi->toks[i].positions)
            next = mi->toks[i].position + 1;
    *field_tokens = mi->field_count > FIELD_MAX_TOKENS ? FIELD_MAX_TOKENS : mi->field_count;
    return next + FIELD_GAP;
}

/* An exact-value term (doc.h) for the filters and facets of source and tags. */
static void add_exact(struct memindex *mi, char prefix, struct text value)
{
    char term[TOKEN_MAX_BYTES + 1];

    if (!value.p || !value.len || mi->rc)
        return;
    size_t len = doc_exact_len(value.p, value.len);
    term[0] = prefix;
    memcpy(term + 1, value.p, len);
    /* no positions, like a hidden one-character term; counted in the meta field */
    struct token tok = { .term = term, .term_len = len + 1, .kind = TOKEN_CJK_CHAR };
    if (on_token(mi, &tok) && !mi->rc)
        mi->rc = XE_NOMEM;
}

static bool list_reserve(struct memindex *mi, struct mlist *l, size_t more)
{
    if ((uint64_t)l->len + more <= l->cap)
        return true;
    uint64_t cap = l->cap ? l->cap : 16;
    while (cap < (uint64_t)l->len + more)
        cap *= 2;
    if (cap > UINT32_MAX)
        return false;
    unsigned char *p = realloc(l->data, (size_t)cap);
    if (!p)
        return false;
    mi->list_bytes += (size_t)cap - l->cap;
    l->data = p;
    l->cap = (uint32_t)cap;
    return true;
}

static void list_put(struct mlist *l, uint64_t v)
{
    l->len += (uint32_t)varint_put(l->data + l->len, v);
}

/*
 * Groups the document's tokens by term, chaining each term's tokens in the
 * order they came, which is position order; fills mi->dterms and returns how
 * many distinct terms there are. A small open-addressing map from term id to
 * group keeps it linear, with no sort.
 */
static size_t group_tokens(struct memindex *mi)
{
    uint32_t cap = 16, shift = 28;
    size_t n = 0;

    if (!mi->n_toks)
        return 0;
    while (cap < 2 * mi->n_toks) {
        cap *= 2;
        shift--;
    }
    uint32_t mask = cap - 1;
    memset(mi->dterm_slots, 0, cap * sizeof *mi->dterm_slots);
    for (size_t i = 0; i < mi->n_toks; i++) {
        const struct dtok *d = &mi->toks[i];
        uint32_t s = (d->term_id * 0x9E3779B1u) >> shift; /* Fibonacci hashing */
        struct dterm *g;
        for (;; s = (s + 1) & mask) {
            uint32_t v = mi->dterm_slots[s];
            if (!v) {
                g = &mi->dterms[n];
                *g = (struct dterm){ .term_id = d->term_id, .first_tok = (uint32_t)i };
                mi->dterm_slots[s] = (uint32_t)++n;
                break;
            }
            g = &mi->dterms[v - 1];
            if (g->term_id == d->term_id) {
                mi->next_tok[g->last_tok] = (uint32_t)i;
                break;
            }
        }
        g->last_tok = (uint32_t)i;
        g->tf[d->field]++;
    }
    return n;
}

/* Appends the gathered tokens of document docid to their terms' lists. */
static int flush_tokens(struct memindex *mi, uint32_t docid)
{
    size_t n = group_tokens(mi);

    /* independent loads: the misses overlap */
    for (size_t g = 0; g < n; g++) {
        const struct mterm *t = &mi->terms[mi->dterms[g].term_id];
        __builtin_prefetch(t->list.data + t->list.len, 1);
    }
    for (size_t g = 0; g < n; g++) {
        const struct dterm *d = &mi->dterms[g];
        struct mterm *t = &mi->terms[d->term_id];
        uint32_t n_tf = d->tf[FIELD_TITLE] + d->tf[FIELD_BODY] + d->tf[FIELD_META];
        size_t need = VARINT_MAX_BYTES * (4 + (t->has_positions ? n_tf : 0));
        if (!list_reserve(mi, &t->list, need))
            return XE_NOMEM;
        list_put(&t->list, t->last_doc == UINT32_MAX ? docid : docid - t->last_doc);
        for (int f = 0; f < N_FIELDS; f++)
            list_put(&t->list, d->tf[f]);
        if (t->has_positions) {
            int64_t prev = -1;
            for (uint32_t k = d->first_tok, left = n_tf; left; left--) {
                uint32_t position = mi->toks[k].position;
                list_put(&t->list, (uint64_t)(position - prev - 1));
                prev = position;
                k = mi->next_tok[k];
            }
        }
        t->last_doc = docid;
        t->df++;
    }
    mi->n_toks = 0;
    return XE_OK;
}

/* The id table slot holding this id, or the empty slot where it would go. */
static uint32_t id_slot(const struct memindex *mi, const char *id, size_t len)
{
    uint32_t mask = mi->id_slots_cap - 1;

    for (uint32_t s = (uint32_t)hash_bytes(id, len) & mask;; s = (s + 1) & mask) {
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

int memindex_add(struct memindex *mi, const struct doc_fields *d, struct xerr *err)
{
    struct mdoc doc = { .date_s = d->date_s };
    uint32_t pos = 0;
    int rc;

    if (!d->id.p || !d->id.len || d->id.len > DOC_ID_MAX_BYTES)
        return xerr_set(err, XE_INPUT, "document id must be 1 to %d bytes", DOC_ID_MAX_BYTES);
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
    buf_reset(&mi->record);
    rc = doc_record_encode(d, &mi->record);
    if (rc)
        return xerr_set(err, rc, "document %.64s: too large to store", d->id.p);
    rc = docstore_writer_add(mi->store, mi->record.data, mi->record.len, &doc.store, err);
    if (rc)
        return rc;
    doc.id_off = mi->id_bytes.len;
    doc.id_len = (uint16_t)d->id.len;
    if (buf_append(&mi->id_bytes, d->id.p, d->id.len))
        return xerr_set(err, XE_NOMEM, "out of memory");

    mi->rc = XE_OK;
    mi->cur_field = FIELD_TITLE;
    pos = add_text(mi, d->title, pos, &doc.field_tokens[FIELD_TITLE]);
    mi->cur_field = FIELD_BODY;
    doc.field_start[FIELD_BODY] = pos;
    pos = add_text(mi, d->body, pos, &doc.field_tokens[FIELD_BODY]);
    mi->cur_field = FIELD_META;
    doc.field_start[FIELD_META] = pos;
    pos = add_text(mi, d->source, pos, &doc.field_tokens[FIELD_META]);
    for (size_t i = 0; i < d->n_tags; i++)
        pos = add_text(mi, d->tags[i], pos, &doc.field_tokens[FIELD_META]);
    add_exact(mi, TERM_SOURCE_PREFIX, d->source);
    for (size_t i = 0; i < d->n_tags; i++)
        add_exact(mi, TERM_TAG_PREFIX, d->tags[i]);
    if (mi->rc || resolve_tokens(mi) || flush_tokens(mi, mi->n_docs)) {
        mi->n_toks = 0;
        buf_reset(&mi->tok_bytes);
        return xerr_set(err, XE_NOMEM, "out of memory indexing %.64s", d->id.p);
    }
    mi->docs[mi->n_docs] = doc;
    rc = register_id(mi, mi->n_docs, err);
    if (rc)
        return rc;
    mi->n_docs++;
    return XE_OK;
}

/*
 * Terms sorted by their bytes. Each carries its first 8 bytes as a big-endian
 * key, so most comparisons are one integer compare with no memory access;
 * only terms sharing 8 bytes compare the rest.
 */
struct term_key {
    uint64_t prefix;
    uint32_t id;
};

static int term_key_cmp(const struct memindex *mi, const struct term_key *a,
                        const struct term_key *b)
{
    if (a->prefix != b->prefix)
        return a->prefix < b->prefix ? -1 : 1;
    const struct mterm *x = &mi->terms[a->id], *y = &mi->terms[b->id];
    return bytes_cmp(mi->term_bytes.data + x->term_off, x->term_len,
                     mi->term_bytes.data + y->term_off, y->term_len);
}

/* Sorts terms by their bytes: quicksort with the comparison inlined (qsort's
 * indirect calls cost more than the comparisons), insertion sort for short runs. */
static void sort_terms(const struct memindex *mi, struct term_key *keys, size_t n)
{
    while (n > 16) {
        struct term_key pivot = keys[n / 2];
        size_t i = 0, j = n - 1;
        for (;;) {
            while (term_key_cmp(mi, &keys[i], &pivot) < 0)
                i++;
            while (term_key_cmp(mi, &keys[j], &pivot) > 0)
                j--;
            if (i >= j)
                break;
            struct term_key t = keys[i];
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
        struct term_key k = keys[i];
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
    const unsigned char *p = t->list.data, *end = t->list.data + t->list.len;
    uint32_t docid = 0;
    bool first = true;

    postings_writer_begin(w, t->has_positions);
    *df = 0;
    while (p < end) {
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

int memindex_write(struct memindex *mi, const char *path, bool durable, struct xerr *err)
{
    struct segment_writer *sw = segment_writer_new();
    uint32_t *new_id = malloc(sizeof *new_id * ((size_t)mi->n_docs + 1));
    uint32_t *lengths = malloc(sizeof *lengths * N_FIELDS * ((size_t)mi->n_docs + 1));
    struct term_key *order = malloc(sizeof *order * ((size_t)mi->n_terms + 1));
    uint32_t *positions = NULL;
    size_t positions_cap = 0;
    struct postings_writer pw;
    struct buf list, store;
    int rc = XE_OK;

    postings_writer_init(&pw, mi->block_docs);
    buf_init(&list, (size_t)1 << 36);
    buf_init(&store, (size_t)1 << 40);
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
        order[i] = (struct term_key){
            prefix_key(mi->term_bytes.data + mi->terms[i].term_off, mi->terms[i].term_len), i };
    sort_terms(mi, order, mi->n_terms);
    for (uint32_t i = 0; i < mi->n_terms && !rc; i++) {
        /* the terms are visited out of the order they were made in: fetch ahead */
        if (i + 2 * TERM_PREFETCH_AHEAD < mi->n_terms)
            __builtin_prefetch(&mi->terms[order[i + 2 * TERM_PREFETCH_AHEAD].id]);
        if (i + TERM_PREFETCH_AHEAD < mi->n_terms) {
            const struct mterm *ahead = &mi->terms[order[i + TERM_PREFETCH_AHEAD].id];
            __builtin_prefetch(ahead->list.data);
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
    if (!rc)
        rc = docstore_writer_finish(mi->store, &store, err);
    if (!rc)
        rc = segment_writer_finish(sw, &store, path, durable, err);
out:
    postings_writer_fini(&pw);
    buf_fini(&list);
    buf_fini(&store);
    free(positions);
    free(order);
    free(lengths);
    free(new_id);
    segment_writer_free(sw);
    return rc;
}
