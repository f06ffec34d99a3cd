/*
 * Segments: immutable index files, written once, then memory-mapped.
 *
 * Segment file, version 8 (posting lists of version 3, index/format/postings.h).
 * Integers little-endian; varint is LEB128.
 *   off  size  field
 *   0    8     magic "XUNSEG\r\n" (the \r\n catches text-mode mangling)
 *   8    4     format version; readers refuse others and say which they found
 *   12   4     crc32c of bytes 16..135
 *   16   4     n_docs
 *   20   4     n_terms
 *   24   24    3 x u64 tokens indexed per field over all documents
 *              (title, body, meta), for BM25's average field lengths
 *   48   8     file_bytes: the length of the whole file
 *   56   64    4 x (u64 offset, u64 bytes) of the sections: terms, postings,
 *              docs, store; in that order, back to back, from byte 136
 *   120  4     chunk_bytes: a power of two from 2^6 to 2^30
 *   124  4     crc32c of the chunk table
 *   128  8     i64 the newest date of the documents (seconds since the
 *              epoch), INT64_MIN when none has one (for ranking's bound)
 *   136  ...   the sections
 *   then the chunk table, which ends the file: one u32 crc32c per chunk of
 *   the body, the bytes from 136 to the end of the store section cut into
 *   chunk_bytes pieces from byte 136 (the last may be shorter); chunk c
 *   covers bytes 136 + c * chunk_bytes up to 136 + (c + 1) * chunk_bytes.
 *
 * Checking: opening reads the header and the chunk table (4 bytes per
 * chunk: 16 KiB per GiB of segment at 64 KiB chunks) and checks both, so it
 * costs milliseconds whatever the size. A segment of at most
 * segment_verify_at_open_bytes() (SEGMENT_VERIFY_AT_OPEN_BYTES unless set)
 * has every chunk checked at open; a larger one has only the chunks that
 * opening reads (the dictionary's block table; the document store's head,
 * symbols, dictionary and tables), and every other chunk is checked the
 * first time a read touches it: each reader below checks the chunks its
 * bytes lie in before it decodes them, and a bit per chunk, set once its
 * checksum matched, makes later reads a bit test. A chunk whose checksum
 * does not match is XE_CORRUPT for every read that touches it, naming the
 * file and the bytes; the segment counts its damaged chunks
 * (segment_damaged_chunks()) and the process its checksum failures
 * (segment_checksum_failures()). segment_verify() checks every chunk again
 * (a merge does so before it reads a segment, so that it never copies damage
 * into a new one).
 *
 * Chunk size: 64 KiB (SEGMENT_CHUNK_BYTES). crc32c runs at about 3 GB/s
 * here (SSE 4.2; the 212 MiB poetry segment checked whole in 70 ms), so a
 * chunk costs about 20 us the first time a read touches it, and a bit test
 * after. A point read (a document entry, an id, a store block) pays for
 * the whole chunk around it once: smaller chunks would waste less there
 * but grow the table and the bitmaps (4 bytes and 2 bits per chunk: at
 * 64 KiB, 14 KB for poetry's 3,397 chunks) and make long posting lists
 * loop over more of them; larger ones make the first queries of a large
 * segment pay for many bytes they never read. On poetry (bench_engine, 3
 * rounds of the query mix, queries/s without and with snippets): version 7,
 * 16.7k and 9.3k; version 8 with 64 KiB chunks, 16.7k and 9.4k; with 16 KiB,
 * 16.4k and 9.2k (runs differ by 2%). A first round alone, which pays for
 * every first touch, runs 3% slower than version 7's.
 *
 * Terms section: the term dictionary, sorted by bytes, in blocks of
 * SEGMENT_TERMS_PER_BLOCK terms so that a lookup is a binary search over
 * block heads and a short scan, with nothing to rebuild at open:
 *   u32 n_blocks, then per block: u32 offset of the block (from the section
 *   start) and u64 offset of its first term's postings (in the postings
 *   section; the lists of a block follow one another)
 *   per term: varint shared prefix with the previous term in the block (0 for
 *   a block's first), varint suffix length, suffix bytes, varint
 *   (df << 1 | has positions), varint postings bytes
 *
 * Postings section: the lists, back to back, each as in index/format/postings.h.
 *
 * Docs section: n_docs x 40-byte entries, then n_docs x 8-byte rank entries,
 * then n_docs x u32 docids sorted by id bytes (lookup by id), then the ids
 * back to back. A rank entry holds what ranking reads of every document it
 * scores, apart from the rest so that those scattered reads touch 8 bytes
 * (a query may score thousands): 0 three u8 length codes of title, body and
 * meta (segment_length_code), 3 i40 date (5 bytes: seconds since the
 * epoch, -2^39 when absent; years 0 to 9999 fit). Entry:
 *   0 u32 title tokens, 4 u32 body tokens, 8 u32 meta tokens,
 *   12 u32 stored record number, 16 i64 date (seconds since the epoch,
 *   INT64_MIN when absent), 24 u32 id offset in the ids area, 28 u16 id
 *   bytes, 30 u16 zero, 32 u32 first position of the body, 36 u32 first
 *   position of the meta field (the title starts at 0; see Positions below)
 *
 * Positions: a document's fields share one position space. The title starts
 * at 0; the body, then the meta field's source and each of its tags start
 * FIELD_GAP (130) positions after the position that follows the last one
 * before them, and the doc entry records where the body and meta start.
 * FIELD_GAP is a constant of the format, fixed with version 8: changing it
 * changes the bytes of every posting list, so it takes a new version. It is
 * what keeps a phrase query from matching across two fields or two tags, so
 * the query side may never let a phrase span more positions than it (see the
 * _Static_assert below it).
 *
 * Store section: the document store, as in index/format/docstore.h.
 */
#ifndef XUN_INDEX_SEGMENT_H
#define XUN_INDEX_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/base/buf.h"
#include "index/format/doc.h"
#include "index/format/docstore.h"
#include "index/base/limits.h"

struct xerr;
struct segment;

#define SEGMENT_MAGIC "XUNSEG\r\n"
#define SEGMENT_VERSION 8
#define SEGMENT_HEADER_BYTES 136
#define SEGMENT_DOC_ENTRY_BYTES 40
#define SEGMENT_RANK_ENTRY_BYTES 8
#define SEGMENT_TERMS_PER_BLOCK 32
#define SEGMENT_BLOCK_ENTRY_BYTES 12

/* The gap between fields in the position space (see "Positions" above). */
#define FIELD_GAP 130
/* A phrase of QUERY_MAX_TERMS terms, each at most one position apart plus
 * one for a separator, must span fewer positions than the gap. */
_Static_assert(2 * QUERY_MAX_TERMS + 2 <= FIELD_GAP,
               "a phrase query could match across two fields: raise FIELD_GAP (a new format version)");
/* Checksummed chunks of the body (see "Chunk size" above). */
#define SEGMENT_CHUNK_BYTES (64u << 10)
#define SEGMENT_CHUNK_MIN_BYTES (1u << 6)
#define SEGMENT_CHUNK_MAX_BYTES (1u << 30)

/* One document's entry in the docs section. */
struct segment_doc {
    uint32_t field_tokens[N_FIELDS];
    uint32_t field_start[N_FIELDS]; /* first position of each field; title: 0 */
    int64_t date_s;
    const char *id; /* a view into the mapping (reader) or the caller's memory (writer) */
    size_t id_len;
    struct docstore_ref store;
};

/* What ranking reads of a document (see the rank entries above). */
struct segment_doc_rank {
    uint8_t len_code[N_FIELDS]; /* segment_length_of_code() gives the length */
    int64_t date_s;             /* DOC_DATE_NONE when absent */
};

/*
 * Field lengths as ranking sees them, in one byte: exact below 128 tokens,
 * then 16 steps per doubling, rounded down (at most 6.25% short), up to
 * 31,744 tokens, which longer fields count as. A code never decodes above
 * the length it came from, and longer lengths never get smaller codes, so
 * block bounds built from exact lengths stay bounds.
 */
uint8_t segment_length_code(uint32_t len);
uint32_t segment_length_of_code(uint8_t code);

/* A term's entry in the dictionary. */
struct segment_term {
    uint32_t df;
    bool has_positions;
    const unsigned char *postings; /* a view into the mapping */
    size_t postings_len;
};

/* ---- writing ---- */

struct segment_writer;

/* A writer of chunks of segment_chunk_bytes() (SEGMENT_CHUNK_BYTES unless set). */
struct segment_writer *segment_writer_new(void);
void segment_writer_free(struct segment_writer *w);
/* A power of two from SEGMENT_CHUNK_MIN_BYTES to SEGMENT_CHUNK_MAX_BYTES
 * (tests make it small so that a few documents cross chunks). */
int segment_writer_set_chunk_bytes(struct segment_writer *w, uint32_t bytes, struct xerr *err);
/* Documents get docids 0, 1, 2, ... in the order they are added. */
int segment_writer_add_doc(struct segment_writer *w, const struct segment_doc *doc,
                           struct xerr *err);
/* Terms in strictly increasing byte order; copies the postings. */
int segment_writer_add_term(struct segment_writer *w, const char *term, size_t len, uint32_t df,
                            bool has_positions, const unsigned char *postings,
                            size_t postings_len, struct xerr *err);
/*
 * Writes the file: to path + ".tmp", then renamed over path; when durable,
 * with fsyncs of the file and the folder (else fs_sync_file() later). The
 * store is the finished docstore section the docs point into.
 */
int segment_writer_finish(struct segment_writer *w, const struct buf *store, const char *path,
                          bool durable, struct xerr *err);

/*
 * The same, for a writer that must not lose the segment when the file
 * cannot be written (a full disk): when writing fails with XE_IO and kept
 * is not NULL, the segment is built in memory instead and opened into
 * *kept (NULL when memory is short too), exactly as segment_open() would
 * have opened the file; the XE_IO is still returned, err naming the file.
 * segment_save() writes it out later. *kept is NULL on every other path.
 */
int segment_writer_finish_kept(struct segment_writer *w, const struct buf *store,
                               const char *path, bool durable, struct segment **kept,
                               struct xerr *err);

/*
 * Upgrading in place (index_open() does it for the segments its MANIFEST
 * lists). Version 7 had a 128-byte header: bytes 0..119 as in version 8,
 * then 120 u32 crc32c of bytes 128..file_bytes (all sections), 124 u32
 * zero; its sections start at byte 128 and end the file, and are
 * byte-identical to version 8's (every offset inside a section is relative
 * to that section: the dictionary's block table to the terms section and
 * the postings section, a doc entry's id to the ids area, the store's
 * tables to the store section). So an upgrade checks the whole version 7
 * file (header and body checksums, the sections in place), then writes the
 * same sections 8 bytes further on under a version 8 header (the newest
 * document date read from the doc entries), with the chunk table after
 * them: to path + ".tmp", fsynced, renamed over `to`, the folder fsynced.
 * `from` is left as it is. Older versions have no upgrade.
 */
#define SEGMENT_UPGRADABLE_VERSION 7

/* The format version a segment file says it has: *version 0 when the file
 * is too short or not a segment (segment_open() says what is wrong). */
int segment_file_version(const char *path, uint32_t *version, struct xerr *err);
/* Writes the version 8 segment at `to` holding what the version 7 one at
 * `from` holds; XE_CORRUPT, naming `from`, when it is damaged. */
int segment_upgrade(const char *from, const char *to, struct xerr *err);

/* ---- reading ---- */

/* Immutable once open: any thread may read it. */
struct segment;

/* Segments up to this size have every chunk checked at open (64 MiB: about
 * 20 ms of crc32c), so that their reads never pay for a first touch. */
#define SEGMENT_VERIFY_AT_OPEN_BYTES (64u << 20)

/*
 * Process-wide settings, for tests: the chunk size of writers made from now
 * on, and the size up to which segments opened from now on are checked whole
 * at open. Thread-safe; 0 restores the default.
 */
void segment_set_chunk_bytes(uint32_t bytes);
uint32_t segment_chunk_bytes(void);
void segment_set_verify_at_open_bytes(uint64_t bytes);
uint64_t segment_verify_at_open_bytes(void);

/* Maps and checks the file; XE_CORRUPT with the file and what is wrong. */
int segment_open(const char *path, struct segment **out, struct xerr *err);
/* Checks every chunk, again if checked before (what open skips for large segments). */
int segment_verify(const struct segment *seg, struct xerr *err);
void segment_close(struct segment *seg);

/* Chunks of this segment found damaged so far (0: none). Thread-safe. */
uint64_t segment_damaged_chunks(const struct segment *seg);
/* Checksum mismatches found in this process, each damaged chunk once per
 * open segment. Thread-safe. */
uint64_t segment_checksum_failures(void);
/* True for a segment segment_writer_finish_kept() built in memory (it has no file). */
bool segment_in_memory(const struct segment *seg);
/* Writes seg's bytes to path (not fsynced: fs_sync_file() later); seg stays as it is. */
int segment_save(const struct segment *seg, const char *path, struct xerr *err);

uint32_t segment_n_docs(const struct segment *seg);
uint32_t segment_n_terms(const struct segment *seg);
uint64_t segment_field_tokens(const struct segment *seg, enum doc_field f);
uint64_t segment_file_bytes(const struct segment *seg);
/* The newest date of its documents, or DOC_DATE_NONE (for ranking's freshness bound). */
int64_t segment_newest_date(const struct segment *seg);
const char *segment_path(const struct segment *seg);

/*
 * Readers: XE_CORRUPT (naming the file and the bytes) when what they read
 * is damaged, and then out is not to be used.
 */

/* XE_NOTFOUND when the term is absent; the term's postings are checked. */
int segment_lookup(const struct segment *seg, const char *term, size_t len,
                   struct segment_term *out, struct xerr *err);
/* docid < segment_n_docs(). */
int segment_doc(const struct segment *seg, uint32_t docid, struct segment_doc *out,
                struct xerr *err);
/* Only what ranking reads: cheaper than segment_doc() (one small entry). */
int segment_doc_rank(const struct segment *seg, uint32_t docid, struct segment_doc_rank *out,
                     struct xerr *err);
/* XE_NOTFOUND (*docid DOCID_END) when no document has this id. */
int segment_find_id(const struct segment *seg, const char *id, size_t len, uint32_t *docid,
                    struct xerr *err);
/* The stored record's bytes (index/format/doc.h), in scratch, valid until it changes. */
int segment_record(const struct segment *seg, uint32_t docid, struct buf *scratch,
                   const unsigned char **rec, size_t *len, struct xerr *err);
/* Loads the stored record; d views scratch, valid until scratch changes. */
int segment_load(const struct segment *seg, uint32_t docid, struct buf *scratch,
                 struct doc_fields *d, struct xerr *err);

/*
 * Term iteration in byte order from the first term >= prefix (for suggest).
 * segment_terms_next() returns false at the end, or when what it would read
 * is damaged: then rc is XE_CORRUPT and segment_terms_error() says where.
 * Each term's postings are checked.
 */
struct segment_term_iter {
    const struct segment *seg;
    uint32_t block;
    const unsigned char *p, *end;
    uint64_t postings_at; /* where the next term's postings start */
    char term[TOKEN_MAX_BYTES + 1];
    size_t term_len;
    uint32_t in_block;
    int rc;
    /* where: bytes whose chunk did not match, or (bad_p NULL) a bad entry of
     * dictionary block bad_block (kept small: the iterator is copied as it scans) */
    const unsigned char *bad_p;
    size_t bad_len;
    uint32_t bad_block;
};
void segment_terms_from(const struct segment *seg, const char *prefix, size_t len,
                        struct segment_term_iter *it);
bool segment_terms_next(struct segment_term_iter *it, struct segment_term *out);
/* Sets err from what stopped the iterator (rc XE_CORRUPT); returns rc. */
int segment_terms_error(const struct segment_term_iter *it, struct xerr *err);

#endif
