/*
 * The write-ahead log: every accepted write is appended here and fsynced
 * before it is acknowledged, so that a crash loses nothing acknowledged.
 * Segments written later make old records redundant: the manifest records
 * the last sequence number that segments hold, replay skips up to it, and
 * the log is then started afresh.
 *
 * Log file, version 1. Integers little-endian.
 *   off  size  field
 *   0    8     magic "XUNWAL\r\n"
 *   8    4     format version
 *   12   4     crc32c of bytes 0..11
 *   16   ...   records, back to back:
 *     0   4    payload bytes (n)
 *     4   4    crc32c of bytes 0..3 and 8 .. 17 + n of the record
 *     8   1    type: WAL_PUT (payload: a document's JSON) or WAL_DELETE
 *              (payload: the id)
 *     9   8    sequence number, increasing by one from record to record
 *     17  n    payload
 * A record cut short by a crash (its length runs past the end of the file
 * and no whole record follows it), a bad record that ends the file or is
 * followed only by zeros
 * (space the file system allocated but never wrote) is a torn tail:
 * replay drops it and truncates the file there. A bad record followed by
 * more data is damage, and refused.
 */
#ifndef XUN_INDEX_WAL_H
#define XUN_INDEX_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/buf.h"
#include "index/limits.h"

struct xerr;

#define WAL_MAGIC "XUNWAL\r\n"
#define WAL_VERSION 1
#define WAL_HEADER_BYTES 16
#define WAL_RECORD_HEAD_BYTES 17
/* A record holds a stored document (index/doc.h) or an id. */
#define WAL_PAYLOAD_MAX (3 * (size_t)DOC_MAX_BYTES)

enum wal_type { WAL_PUT = 1, WAL_DELETE = 2 };

struct wal;

/* One record seen by replay; payload is valid during the callback only. */
struct wal_record {
    enum wal_type type;
    uint64_t seq;
    const char *payload;
    size_t len;
};
typedef int (*wal_replay_fn)(void *ctx, const struct wal_record *rec, struct xerr *err);

/*
 * Opens (creating) the log at path and replays it through fn, records with
 * seq <= after_seq skipped. A torn tail is truncated. *last_seq receives
 * the highest sequence number seen (or after_seq).
 */
int wal_open(const char *path, uint64_t after_seq, wal_replay_fn fn, void *ctx,
             struct wal **out, uint64_t *last_seq, struct xerr *err);
void wal_close(struct wal *w);

/* Appends one record to the pending batch (not yet written); XE_LIMIT past WAL_PAYLOAD_MAX. */
int wal_add(struct wal *w, enum wal_type type, uint64_t seq, const void *payload, size_t len);
/* Drops the pending batch (when a batch is refused before its commit). */
void wal_discard(struct wal *w);
/* Writes the pending batch and fsyncs: one fsync for everything added. */
int wal_commit(struct wal *w, struct xerr *err);
/* Bytes in the file. */
uint64_t wal_bytes(const struct wal *w);
/* fsyncs done so far (for /metrics). */
uint64_t wal_fsyncs(const struct wal *w);

#endif
