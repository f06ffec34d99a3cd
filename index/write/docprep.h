/*
 * A document prepared for the in-memory index: tokenized into one position
 * space (title, then body, then source and tags; see FIELD_GAP below), each
 * token with the hash and key its term is looked up by, and its stored
 * record encoded. This is the part of indexing that needs no
 * shared state, so a bulk load prepares documents on some threads while
 * another adds them to its memindex (memindex_add_batch).
 *
 * A batch holds several prepared documents in a few growing arrays that are
 * reused from batch to batch, so preparing allocates nothing in the steady
 * state.
 */
#ifndef XUN_INDEX_DOCPREP_H
#define XUN_INDEX_DOCPREP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/base/buf.h"
#include "index/format/doc.h"
#include "index/base/limits.h"
#include "index/format/segment.h"

struct xerr;

/*
 * The position space of a document: the title from 0, then the body, then
 * source and tags, each FIELD_GAP positions after the last position before
 * it (FIELD_GAP is part of the segment format: see "Positions" in
 * format/segment.h); where each field starts is kept in the doc table.
 */

/*
 * One token: its term's bytes are in the batch's bytes. A hidden
 * one-character term has no hash or key (0): the memindex finds those terms
 * by code point, and hashes one only the first time it meets it.
 */
struct prep_token {
    uint64_t hash; /* term_hash() of the term */
    uint64_t key;  /* term_key() of the term */
    uint32_t bytes_at;
    uint32_t position;
    uint16_t len;
    uint8_t field;   /* enum doc_field */
    bool positions;  /* a visible term; hidden ones take no position */
    int32_t char_cp; /* a hidden one-character term's code point, else -1 */
};

/* One document: views into the batch by offset (the arrays may move as it grows). */
struct prep_doc {
    int64_t date_s;
    uint32_t field_tokens[N_FIELDS];
    uint32_t field_start[N_FIELDS]; /* first position of each field; title: 0 */
    size_t id_at, record_at, record_len;
    uint16_t id_len;
    size_t first_token, n_tokens;
};

struct docprep_batch {
    unsigned tokenize_flags;
    struct prep_doc *docs;
    size_t n_docs, docs_cap;
    struct prep_token *tokens;
    size_t n_tokens, tokens_cap;
    struct buf bytes; /* term bytes, ids and records */

    /* private: the document being prepared */
    int rc;
    uint8_t cur_field;
    uint32_t field_count;
};

void docprep_init(struct docprep_batch *b, unsigned tokenize_flags);
void docprep_fini(struct docprep_batch *b);
/* Empties the batch, keeping its memory. */
void docprep_reset(struct docprep_batch *b);
/*
 * Prepares d (copying what it keeps) at the end of the batch. XE_INPUT when
 * d has no usable id, XE_LIMIT when it is too large to store, XE_NOMEM; the
 * batch is as before on failure.
 */
int docprep_add(struct docprep_batch *b, const struct doc_fields *d, struct xerr *err);
/* Bytes of prepared documents it holds (its arrays may have grown larger). */
size_t docprep_bytes(const struct docprep_batch *b);

static inline const char *prep_token_term(const struct docprep_batch *b,
                                          const struct prep_token *t)
{
    return (const char *)b->bytes.data + t->bytes_at;
}

/* The hash of a term or id (FNV-1a with a full-avalanche finish). */
uint64_t term_hash(const void *p, size_t len);
/* A term's first 8 bytes as a big-endian integer, zero-padded: keys compare as the bytes do. */
uint64_t term_key(const void *p, size_t len);

#endif
