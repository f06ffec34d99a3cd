/*
 * The term table of the in-memory index (index/write/memindex.h): every distinct
 * term once, found by its bytes, each with a growing list of raw bytes that
 * its owner appends to (the memindex appends one entry per document).
 *
 * Terms live in one hash table (open addressing, linear probing, term bytes
 * in an arena). A slot holds a term's first 8 bytes, its length and part of
 * its hash, so that a lookup of a term of 8 bytes or fewer (every CJK
 * bigram, most words) is decided in the slot without touching the term
 * bytes, which would be a second cache miss. Hidden one-character terms
 * below TERMTABLE_CHAR_TERMS are also kept in a direct table by code point.
 *
 * A term's list is a chain of chunks cut from large slabs, each chunk twice
 * the one before up to TERMTABLE_CHUNK_MAX: a list grows without realloc's
 * copies, and the millions of short lists (most terms occur in a document or
 * two) cost no malloc each. An appended entry is never split across chunks,
 * so each chunk decodes alone.
 *
 * The structs are open so that the memindex's hot loops can prefetch them;
 * only the functions below change them.
 */
#ifndef XUN_INDEX_TERMTABLE_H
#define XUN_INDEX_TERMTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/base/buf.h"

/* Code points below this have their hidden term in a direct table (all CJK planes). */
#define TERMTABLE_CHAR_TERMS 0x40000

struct tt_chunk {
    struct tt_chunk *next;
    uint32_t len; /* bytes used: set when the next chunk starts (the last's is its term's) */
    uint32_t cap;
    unsigned char data[];
};

struct tt_slab;

struct tt_term {
    uint64_t term_off; /* in the table's bytes */
    uint16_t term_len;
    bool has_positions;
    uint32_t df;       /* the owner's count */
    uint32_t last_doc; /* the owner's: UINT32_MAX before the first */
    uint32_t tail_len; /* bytes used in the last chunk */
    struct tt_chunk *head, *tail;
};

struct tt_slot {
    uint64_t key;      /* the first 8 bytes, big-endian, zero-padded (term_key) */
    uint32_t id_plus1; /* 0: empty */
    uint16_t len;
    uint16_t hash_hi; /* the hash's high bits (the low ones chose the slot) */
};

struct termtable {
    struct buf bytes; /* term bytes, back to back */
    struct tt_term *terms;
    uint32_t n_terms, terms_cap;
    struct tt_slot *slots;
    uint32_t slots_cap;
    uint32_t *char_terms; /* hidden one-character terms by code point: term id + 1 */
    struct tt_slab *slabs; /* the newest first: chunks come from it */
    size_t list_bytes;     /* chunk bytes handed out */
};

/* XE_OK or XE_NOMEM (then termtable_fini is still safe). */
int termtable_init(struct termtable *tt);
void termtable_fini(struct termtable *tt);

/* Memory held by terms and lists, roughly. */
size_t termtable_bytes(const struct termtable *tt);

/* Finds or adds a term, given its term_hash() and term_key(); UINT32_MAX when
 * out of memory. positions is kept for a new term. */
uint32_t termtable_intern(struct termtable *tt, const char *term, size_t len, uint64_t hash,
                          uint64_t key, bool positions);

/* A hidden one-character term found in the direct table, or UINT32_MAX. */
static inline uint32_t termtable_char(const struct termtable *tt, int32_t cp)
{
    return cp >= 0 && cp < TERMTABLE_CHAR_TERMS && tt->char_terms[cp] ? tt->char_terms[cp] - 1
                                                                        : UINT32_MAX;
}

/* Records term id as the hidden term of code point cp (ignored outside the direct table). */
static inline void termtable_set_char(struct termtable *tt, int32_t cp, uint32_t id)
{
    if (cp >= 0 && cp < TERMTABLE_CHAR_TERMS)
        tt->char_terms[cp] = id + 1;
}

static inline const char *termtable_term(const struct termtable *tt, const struct tt_term *t)
{
    return (const char *)tt->bytes.data + t->term_off;
}

/* Appends len bytes (one entry, kept in one chunk) to t's list: XE_LIMIT, XE_NOMEM. */
int termtable_append(struct termtable *tt, struct tt_term *t, const void *entry, size_t len);

/* A term's list, chunk by chunk. */
struct tt_list_iter {
    const struct tt_term *t;
    const struct tt_chunk *next;
};

static inline void tt_list_iter_init(struct tt_list_iter *it, const struct tt_term *t)
{
    it->t = t;
    it->next = t->head;
}

/* The next chunk's bytes in *p..*end; false after the last. */
static inline bool tt_list_iter_next(struct tt_list_iter *it, const unsigned char **p,
                                     const unsigned char **end)
{
    const struct tt_chunk *c = it->next;
    if (!c)
        return false;
    *p = c->data;
    *end = c->data + (c == it->t->tail ? it->t->tail_len : c->len);
    it->next = c->next;
    return true;
}

/*
 * A term in byte order: its first 8 bytes as a big-endian key (term_key), so
 * that most comparisons are one integer compare with no memory access; only
 * terms sharing 8 bytes compare the rest.
 */
struct tt_order {
    uint64_t prefix;
    uint32_t id;
};

/* Fills order (n_terms entries) with every term, sorted by their bytes. */
void termtable_sort(const struct termtable *tt, struct tt_order *order);

#endif
