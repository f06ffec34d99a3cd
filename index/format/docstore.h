/*
 * The document store: stored records (index/format/doc.h) recoded, then grouped
 * into blocks of about DOCSTORE_BLOCK_BYTES, each compressed as one zstd
 * frame with a dictionary trained on the segment's recoded records.
 *
 * Why: a record is mostly Chinese, 3 bytes of UTF-8 per character with few
 * repeats inside a record, which zstd alone barely shrinks (version 2, one
 * frame per record: the 102 MiB of the poetry corpus stored in 83.8 MiB).
 * Coding each character by its frequency rank over the segment (1 byte for
 * the 96 commonest, 2 for the next 7,936) gives zstd a third less to code,
 * and compressing a few records together lets it find repeats across them.
 *
 * Why small blocks: every hit of a search reads its record, so a read must
 * stay cheap. On poetry (bench_engine, queries/s without and with snippets):
 * version 2, 83.8 MiB, 27.4k and 14.8k; recoded, one record per frame,
 * 67.3 MiB, 24.3k and 13.4k; blocks of 512 bytes, 46.1 MiB, 22.3k and 13.5k;
 * blocks of 4 KiB, 36.5 MiB, 19.1k and 11.9k. 512 bytes keeps most of the
 * ratio for a small part of the cost.
 *
 * Recoding: a symbol is a valid multi-byte UTF-8 sequence (a non-ASCII
 * character) or a byte >= 0x80 that starts none (a "stray" byte, such as the
 * varints in a record). ASCII bytes stand for themselves. Symbols are ranked
 * by their count over the segment's records, most frequent first (ties by
 * code point, a stray byte b counting as 0x110000 + b), and rank r is coded
 * as
 *   r < 96:         1 byte 0x80 + r                   (0x80..0xDF)
 *   r < 96 + 7936:  2 bytes 0xE0 + (r - 96) / 256, (r - 96) % 256
 *                                                    (lead 0xE0..0xFE)
 *   otherwise:      4 bytes 0xFF, then r as u24
 * A recoded record is at most 4 times its raw bytes (a stray byte of rank
 * 8032 or more); decoding it gives the raw bytes back exactly.
 *
 * Section layout, version 3 (integers little-endian):
 *   u32 n_records
 *   u32 n_blocks (0 when there are no records, else 1..n_records)
 *   u32 n_symbols (at most 2^24)
 *   u32 dict_bytes (0: blocks are compressed without a dictionary)
 *   n_symbols x 4 bytes, the symbols by rank: a UTF-8 sequence of 2 to 4
 *       bytes, zero padded; or a stray byte b as b 0 0 0
 *   dict_bytes of zstd dictionary
 *   frames: one zstd frame per block, the block's recoded records back to
 *       back; format ZSTD_f_zstd1_magicless, no dictionary id, content size
 *       in its header. A block of more than one record holds at most
 *       65535 bytes (the writer makes them under 2 x DOCSTORE_BLOCK_BYTES);
 *       a record of DOCSTORE_BLOCK_BYTES or more recoded is a block alone.
 *   then the tables, which end the section (so found from its end; the
 *   writer cuts blocks as it writes them):
 *   (n_blocks + 1) x u64 offsets of the frames from the section start,
 *       increasing; the first is the end of the dictionary, the last the
 *       end of the last frame, where this table starts
 *   n_blocks x u32 first record of each block: 0, then increasing, each
 *       below n_records (a block holds its first record up to the next
 *       block's first)
 *   n_records x u16 start of each recoded record in its decompressed block:
 *       0 for a block's first record, then nondecreasing; a record ends
 *       where the next in its block starts, the last at the block's end
 */
#ifndef XUN_INDEX_DOCSTORE_H
#define XUN_INDEX_DOCSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "index/base/buf.h"
#include "index/base/limits.h"

struct xerr;

#define DOCSTORE_ZSTD_LEVEL 3
/* A block is closed once its recoded records reach this (see "Why small
 * blocks" above). */
#define DOCSTORE_BLOCK_BYTES 512
/* Dictionary size, and how many bytes of sample records train it
 * (zstd's guidance: samples about 100 times the dictionary). */
#define DOCSTORE_DICT_BYTES (64u << 10)
#define DOCSTORE_DICT_SAMPLE_BYTES (4u << 20)
/* Below this much raw text (or below 64 records) a dictionary does not pay
 * for itself. */
#define DOCSTORE_DICT_MIN_INPUT (256u << 10)
/* A record is a document's text fields beside its JSON: at most about
 * twice DOC_MAX_BYTES. */
#define DOCSTORE_RAW_MAX (3 * (size_t)DOC_MAX_BYTES)
/* A recoded record: every byte may become 4 (see the coding above). */
#define DOCSTORE_RECODED_MAX (4 * DOCSTORE_RAW_MAX)

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
/* Ranks the symbols, recodes the records into blocks, trains the dictionary,
 * compresses every block; appends the section to out. */
int docstore_writer_finish(struct docstore_writer *w, struct buf *out, struct xerr *err);
/* Raw bytes held (records are kept raw until finish). */
size_t docstore_writer_bytes(const struct docstore_writer *w);

/*
 * Checks bytes of the section before a reader reads them (the segment's
 * chunk checksums): XE_CORRUPT, with err saying where, when they are damaged.
 */
struct docstore_verifier {
    int (*verify)(const void *ctx, const unsigned char *p, size_t len, struct xerr *err);
    const void *ctx; /* borrowed; must outlive the reader */
};

/* A reader: a view into section bytes that must outlive it. */
struct docstore {
    const unsigned char *data;
    size_t len;
    uint32_t n_records;
    uint32_t n_blocks;
    uint32_t n_symbols;
    const unsigned char *symbols;       /* n_symbols x 4 bytes */
    size_t frames_start;                /* from data */
    size_t frames_end;                  /* where the tables start */
    const unsigned char *block_offsets; /* (n_blocks + 1) x u64 */
    const unsigned char *block_firsts;  /* n_blocks x u32 */
    const unsigned char *record_starts; /* n_records x u16 */
    void *ddict; /* ZSTD_DDict, or NULL */
    struct docstore_verifier verifier; /* verify NULL: bytes are read unchecked */
};

/*
 * Checks the symbols and every table (so that a read needs only checks of
 * its own block) and loads the dictionary; XE_CORRUPT saying what is wrong.
 * Decompresses nothing.
 */
int docstore_open(struct docstore *ds, const unsigned char *data, size_t len, struct xerr *err);
/* The same, passing every byte range through v before reading it: the head,
 * symbols, dictionary and tables here, a block's frame in docstore_read(). */
int docstore_open_verified(struct docstore *ds, const unsigned char *data, size_t len,
                           const struct docstore_verifier *v, struct xerr *err);
void docstore_close(struct docstore *ds);

/*
 * Decompresses the record's block (into a buffer of this thread) and decodes
 * the record into scratch (reused across calls), pointing *record at it,
 * valid until scratch changes.
 */
int docstore_read(const struct docstore *ds, struct docstore_ref ref, struct buf *scratch,
                  const unsigned char **record, size_t *len, struct xerr *err);

/* Frees this thread's decompression context and block buffer; call before a
 * reading thread ends. */
void docstore_thread_cleanup(void);

#endif
