/*
 * Posting lists: for one term, the documents holding it, with term
 * frequencies per field and (optionally) positions, in blocks with a skip
 * table so that a cursor can jump over blocks it does not need.
 *
 * Encoding of one list, version 3 (integers are LEB128 varints unless said):
 *   (n_docs << 1 | more than one block)
 *   one block (most lists: rare terms): docs_bytes, then the docs bytes and
 *       the positions bytes
 *   more blocks: n_blocks, then a skip table of n_blocks entries of 24
 *       bytes: three little-endian u32, the block's last docid, where its
 *       docs bytes end and where its positions bytes end (offsets into the
 *       data, which follows the table; a block starts where the one before
 *       it ends, the first at 0); then per field (title, body, meta) two u16,
 *       the largest tf in the block and the smallest field length of its
 *       documents, both saturating at 65535 (so that they stay bounds: a tf
 *       of 65535 means "unknown"); then per block: its docs bytes, then its
 *       positions bytes. Fixed-width entries let a cursor binary-search the
 *       table; the tf and length bounds give each block's highest possible
 *       score, which lets a query skip blocks that cannot reach its top k.
 * Docs bytes, per document: (gap << 2 | shape) where gap = docid - previous
 *   docid - 1 (previous = -1 at the start of the list) and shape says the
 *   frequencies: 0 once in the body; 1 varint n times in the body; 2 once in
 *   the title; 3 three varints follow: tf of title, body, meta.
 * Positions bytes, per document: tf_title + tf_body + tf_meta varints, each
 *   position - previous position - 1 (previous = -1 for the document's first).
 * Lists without positions (hidden one-character terms) have no positions bytes.
 */
#ifndef XUN_INDEX_POSTINGS_H
#define XUN_INDEX_POSTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/base/buf.h"
#include "index/format/doc.h"

#define DOCID_END UINT32_MAX
#define POSTINGS_BLOCK_DOCS 64

/* Builds one list. Owns its staging buffers: postings_writer_fini(). */
struct postings_writer {
    uint32_t block_docs; /* documents per block, POSTINGS_BLOCK_DOCS outside tests */
    bool has_positions;
    uint32_t n_docs, n_blocks, in_block;
    int64_t last_docid;
    const uint32_t *doc_lengths; /* per docid N_FIELDS field lengths, or NULL: unknown (0) */
    uint32_t block_max_tf[N_FIELDS], block_min_len[N_FIELDS];
    struct buf skip, data, block_docs_buf, block_pos_buf;
};

void postings_writer_init(struct postings_writer *w, uint32_t block_docs);
void postings_writer_fini(struct postings_writer *w);
/* Starts a new list (reusing the buffers). */
void postings_writer_begin(struct postings_writer *w, bool has_positions);
/* docids strictly increasing; positions strictly increasing, n = sum of tf. */
int postings_writer_add(struct postings_writer *w, uint32_t docid, const uint32_t tf[N_FIELDS],
                        const uint32_t *positions, uint32_t n_positions);
/* Appends the finished list to out. */
int postings_writer_finish(struct postings_writer *w, struct buf *out);
/* The field lengths of the documents the lists will hold, docid * N_FIELDS + field,
 * for the blocks' score bounds; the caller keeps them alive while it writes. */
void postings_writer_set_lengths(struct postings_writer *w, const uint32_t *doc_lengths);

/*
 * Reads one list: a view into bytes that must outlive it. Every read is
 * bounds-checked; damaged bytes end the iteration with `corrupt` set, never
 * a crash. docid is DOCID_END before the first next() and after the end.
 */
struct postings_cursor {
    uint32_t docid;
    uint32_t tf[N_FIELDS];
    bool corrupt;

    /* private */
    const unsigned char *skip, *data, *end; /* skip: the table; data: block 0 */
    const unsigned char *docs_p, *docs_end, *pos_p, *pos_end;
    const unsigned char *pos_doc; /* where the current document's positions start, once read */
    uint32_t n_docs, n_blocks, next_block, max_docid;
    int64_t prev_docid, block_last_docid;
    uint32_t pos_skip;   /* position varints of earlier documents not yet skipped */
    bool has_positions, started, pos_read;
    bool one_block; /* its last docid is not stored: known only at its end */
};

/* What a block can hold at most: see the skip table above. */
struct postings_bound {
    uint32_t last_docid;            /* the block's */
    uint32_t max_tf[N_FIELDS];      /* UINT32_MAX: unknown */
    uint32_t min_len[N_FIELDS];
};

/*
 * The bound of the block holding the first document >= target, without
 * moving the cursor; false when no block reaches target. A list of one block
 * has no bounds: its tf comes as unknown.
 */
bool postings_block_bound(const struct postings_cursor *c, uint32_t target,
                          struct postings_bound *out);

/* max_docid: docids at or above it are damage. */
void postings_cursor_init(struct postings_cursor *c, const unsigned char *data, size_t len,
                          bool has_positions, uint32_t max_docid);
uint32_t postings_cursor_n_docs(const struct postings_cursor *c);
/* Moves to the next document; false at the end (docid = DOCID_END). */
bool postings_next(struct postings_cursor *c);
/* Moves to the first document >= target (never backwards). */
bool postings_advance(struct postings_cursor *c, uint32_t target);
/*
 * Decodes the current document's positions into out (room for cap);
 * returns how many (sum of tf), or -1 on damage or without positions.
 */
int postings_positions(struct postings_cursor *c, uint32_t *out, uint32_t cap);

static inline uint32_t postings_tf_total(const struct postings_cursor *c)
{
    return c->tf[FIELD_TITLE] + c->tf[FIELD_BODY] + c->tf[FIELD_META];
}

#endif
