/*
 * The document store: each stored record (index/doc.h) compressed alone as
 * one zstd frame, with a dictionary trained on the segment's own records.
 * One lookup decompresses one record, a few hundred bytes to a few
 * kilobytes, instead of a block of neighbours; the dictionary gives back
 * most of the ratio that compressing neighbours together would.
 *
 * Section layout, version 2 (integers little-endian):
 *   u32 n_records
 *   u32 dict_bytes (0: records are compressed without a dictionary)
 *   dict_bytes of zstd dictionary
 *   (n_records + 1) x u64 offsets of the frames from the section start;
 *       the last is the end of the last frame
 *   frames: one zstd frame per record (content size in its header)
 */
#ifndef XUN_INDEX_DOCSTORE_H
#define XUN_INDEX_DOCSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "index/buf.h"
#include "index/limits.h"

struct xerr;

#define DOCSTORE_ZSTD_LEVEL 3
/* Dictionary size, and how many bytes of sample records train it
 * (zstd's guidance: samples about 100 times the dictionary). */
#define DOCSTORE_DICT_BYTES (64u << 10)
#define DOCSTORE_DICT_SAMPLE_BYTES (4u << 20)
/* Below this much raw text a dictionary does not pay for itself. */
#define DOCSTORE_DICT_MIN_INPUT (256u << 10)
/* A record is a document's text fields beside its JSON: at most about
 * twice DOC_MAX_BYTES. */
#define DOCSTORE_RAW_MAX (3 * (size_t)DOC_MAX_BYTES)

/* Where a record lives: its number in the store. */
struct docstore_ref {
    uint32_t record;
};

struct docstore_writer;

struct docstore_writer *docstore_writer_new(void);
void docstore_writer_free(struct docstore_writer *w);
/* Copies the record; tells where it will be. */
int docstore_writer_add(struct docstore_writer *w, const void *record, size_t len,
                        struct docstore_ref *ref, struct xerr *err);
/* Trains the dictionary, compresses every record, appends the section to out. */
int docstore_writer_finish(struct docstore_writer *w, struct buf *out, struct xerr *err);
/* Raw bytes held (records are kept raw until finish). */
size_t docstore_writer_bytes(const struct docstore_writer *w);

/* A reader: a view into section bytes that must outlive it. */
struct docstore {
    const unsigned char *data;
    size_t len;
    uint32_t n_records;
    const unsigned char *offsets;
    size_t frames_start;
    void *ddict; /* ZSTD_DDict, or NULL */
};

/* Checks the offsets table and loads the dictionary; XE_CORRUPT saying what is wrong. */
int docstore_open(struct docstore *ds, const unsigned char *data, size_t len, struct xerr *err);
void docstore_close(struct docstore *ds);

/*
 * Decompresses the record into scratch (reused across calls) and points
 * *record at it, valid until scratch changes.
 */
int docstore_read(const struct docstore *ds, struct docstore_ref ref, struct buf *scratch,
                  const unsigned char **record, size_t *len, struct xerr *err);

/* Frees this thread's decompression context; call before a reading thread ends. */
void docstore_thread_cleanup(void);

#endif
