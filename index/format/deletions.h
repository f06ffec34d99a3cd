/*
 * Tombstones: which documents of a segment are deleted (or replaced by a
 * newer version). A segment never changes, so its deletions live beside it,
 * as an immutable, refcounted bitmap; a new delete makes a new bitmap and a
 * new snapshot. Merges drop deleted documents for good.
 *
 * Deletions file, version 1 ("del-NNNNNNNN.xdel", named in MANIFEST).
 * Integers little-endian.
 *   off  size  field
 *   0    8     magic "XUNDEL\r\n"
 *   8    4     format version
 *   12   4     n_docs of the segment it belongs to
 *   16   4     number of deleted documents
 *   20   4     crc32c of bytes 24 .. end
 *   24   ...   bitmap, ceil(n_docs / 64) u64 words, bit d of word d/64 set
 *              when document d is deleted
 */
#ifndef XUN_INDEX_DELETIONS_H
#define XUN_INDEX_DELETIONS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct xerr;

#define DELETIONS_MAGIC "XUNDEL\r\n"
#define DELETIONS_VERSION 1
#define DELETIONS_HEADER_BYTES 24

/* Immutable once shared; refs counts the snapshots holding it. */
struct deletions {
    atomic_int refs;
    uint32_t n_docs, count;
    uint64_t bits[];
};

static inline bool deletions_has(const struct deletions *d, uint32_t docid)
{
    return d && docid < d->n_docs && (d->bits[docid / 64] >> (docid % 64)) & 1;
}

/* A copy of d (or an empty set when d is NULL) with refs 1, to modify before sharing. */
struct deletions *deletions_copy(const struct deletions *d, uint32_t n_docs);
/* Marks docid; returns false when it already was. */
bool deletions_add(struct deletions *d, uint32_t docid);
void deletions_ref(struct deletions *d);
void deletions_unref(struct deletions *d);

int deletions_write(const struct deletions *d, const char *path, struct xerr *err);
/* XE_CORRUPT naming the file when it fails a check or n_docs differs. */
int deletions_read(const char *path, uint32_t n_docs, struct deletions **out, struct xerr *err);

#endif
