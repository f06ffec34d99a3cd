/*
 * The document store: stored records (index/doc.h) compressed with zstd in
 * blocks of about DOCSTORE_BLOCK_BYTES, so that neighbouring documents share
 * a compression window while one lookup decompresses one small block.
 *
 * Section layout, version 1 (integers little-endian):
 *   u32 n_blocks
 *   (n_blocks + 1) x u64 offsets of the blocks from the section start; the
 *       last is the end of the last block
 *   blocks: each one zstd frame (with its content checksum) that
 *       decompresses to: varint n_records, n_records x varint record_len,
 *       then the records back to back
 */
#ifndef XUN_INDEX_DOCSTORE_H
#define XUN_INDEX_DOCSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "index/buf.h"
#include "index/limits.h"

struct xerr;

#define DOCSTORE_BLOCK_BYTES (16u << 10)
#define DOCSTORE_BLOCK_MAX_RECORDS 256
#define DOCSTORE_ZSTD_LEVEL 3
/* A block holds up to DOCSTORE_BLOCK_BYTES plus one record, which repeats
 * a document's text fields beside its JSON: at most about twice DOC_MAX_BYTES. */
#define DOCSTORE_RAW_MAX (3 * (size_t)DOC_MAX_BYTES)

/* Where a record lives. */
struct docstore_ref {
    uint32_t block;
    uint32_t index; /* within the block */
};

struct docstore_writer;

struct docstore_writer *docstore_writer_new(void);
void docstore_writer_free(struct docstore_writer *w);
/* Copies the record; tells where it will be. */
int docstore_writer_add(struct docstore_writer *w, const void *record, size_t len,
                        struct docstore_ref *ref, struct xerr *err);
/* Compresses what is pending and appends the whole section to out. */
int docstore_writer_finish(struct docstore_writer *w, struct buf *out, struct xerr *err);
size_t docstore_writer_bytes(const struct docstore_writer *w);

/* A reader is a view into section bytes that must outlive it. */
struct docstore {
    const unsigned char *data;
    size_t len;
    uint32_t n_blocks;
};

/* Checks the block table; XE_CORRUPT naming what is wrong. */
int docstore_open(struct docstore *ds, const unsigned char *data, size_t len, struct xerr *err);

/*
 * Decompresses ref's block into scratch (reused across calls) and points
 * *record at the record inside it, valid until scratch changes.
 */
int docstore_read(const struct docstore *ds, struct docstore_ref ref, struct buf *scratch,
                  const unsigned char **record, size_t *len, struct xerr *err);

/* Frees this thread's decompression context; call before a reading thread ends. */
void docstore_thread_cleanup(void);

#endif
