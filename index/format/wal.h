/*
 * The write-ahead log: every accepted write is appended here and fsynced
 * before it is acknowledged, so that a crash loses nothing acknowledged.
 * Segments written later make old records redundant: the manifest records
 * the last sequence number that segments hold, replay skips up to it, and
 * the log is then started afresh.
 *
 * Log file, version 2. Integers little-endian.
 *   off  size  field
 *   0    8     magic "XUNWAL\r\n"
 *   8    4     format version
 *   12   4     crc32c of bytes 0..11
 *   16   ...   batches back to back, then zeros to the end of the file
 * A batch is one group commit: what one write() and one fdatasync() put
 * down, acknowledged only after both.
 *     0   8    body bytes (n)
 *     8   4    records in the body (at least 1)
 *     12  8    sequence number of its first record; the rest follow by one
 *     20  4    crc32c of bytes 0..19
 *     24  n    records, back to back:
 *       0   4    payload bytes (m)
 *       4   4    crc32c of bytes 0..3 and 8 .. 17 + m of the record
 *       8   1    type: WAL_PUT (payload: a document's JSON) or WAL_DELETE
 *                (payload: the id)
 *       9   8    sequence number
 *       17  m    payload
 *
 * The file is grown in steps of WAL_EXTENT_BYTES (preallocated) before a
 * batch is written into it, so a write never changes its size: space not yet
 * written reads as zeros, a full disk fails the growth before anything is
 * written, and a file cut short later has a size that is not a multiple of
 * the step. Nothing xun does makes the file smaller but starting it afresh
 * (wal_repair() of a bad header): bytes set aside are zeroed in place.
 *
 * The file is grown, and the growth made durable (fdatasync), before a batch
 * is written into the new space.
 *
 * Torn or damaged. Only the last batch can have been in flight when the
 * machine stopped, and a write that did not reach the disk leaves sectors of
 * zeros (whole sectors are written or not at all); a process killed in the
 * middle of write() leaves a prefix of the batch, zeros after it. So a bad
 * batch is a torn tail, never acknowledged, when it is the last thing in the
 * file (only zeros after it) and
 *   - some sector's share of it reads as zeros (for a batch whose head is
 *     bad: of its head, with no whole batch anywhere after it), or
 *   - its last byte is zero (a prefix: a record's payload, the last thing in
 *     a batch, ends in a byte that is not zero when written by xun; for a
 *     bad head, the head's last byte, with only zeros after the head), or
 *   - it runs past the end of a file whose size is a whole number of steps
 *     (a growth that did not become durable).
 * Anything else (a batch whose checksums fail with every sector present,
 * bytes after a bad batch, a file cut to an odd size inside a batch, a
 * sequence number that does not go up, a file whose size is not a whole
 * number of steps and whose last batch, one at least, ends exactly at its
 * end: "the file was cut short after a batch", batches after it lost) is
 * damage to acknowledged writes:
 * opening refuses it, naming the offset and what it would lose, and only
 * wal_repair() (`xun repair`) sets those bytes aside. Neither case is ever
 * cut silently: the bytes are kept in a file beside the log first, named
 * "LOG.torn-OFFSET" or "LOG.damaged-OFFSET" ("-2", "-3"... after it when
 * that name already keeps other bytes), then zeroed in the log.
 * Harmless, and no damage: a file cut inside the zeros after its last batch
 * (grown back to a whole step at open), a file of the header alone (a crash
 * while the log was made), and a growth by posix_fallocate() emulated a byte
 * per block (the size moves in pieces, but always past zeros after the last
 * batch, since the growth is durable before a batch goes into it).
 * What the format cannot tell: damage that looks like a crash (the last
 * batch's sectors zeroed, the file cut at a whole step) reads as a torn
 * tail or as a shorter log.
 *
 * Version 1 (before batches; read for replay only, never written): the
 * same 16-byte header, then records back to back as above (each with its
 * own sequence number), the file as long as they are. A record cut short
 * (its length runs past the end of the file and no whole record follows
 * it), or a bad record that ends the file or is followed only by zeros, is
 * a torn tail: replay stops there (the bytes are kept in "LOG.torn-OFFSET"
 * and reported, as above). A bad record followed by more data, an unknown
 * type or a sequence number that goes back is damage, refused. The writer
 * checkpoints right after such a replay and starts a version 2 log; the
 * version 1 file is then removed with the other unnamed files.
 */
#ifndef XUN_INDEX_WAL_H
#define XUN_INDEX_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/base/buf.h"
#include "index/base/limits.h"

struct xerr;

#define WAL_MAGIC "XUNWAL\r\n"
#define WAL_VERSION 2
#define WAL_HEADER_BYTES 16
#define WAL_BATCH_HEAD_BYTES 24
#define WAL_RECORD_HEAD_BYTES 17
/* The step the file grows by; small enough that a test index stays small. */
#define WAL_EXTENT_BYTES ((uint64_t)1 << 20)
/* The unit a disk writes whole or not at all (the smallest in use). */
#define WAL_SECTOR_BYTES 512
/* A record holds a stored document (index/format/doc.h) or an id. */
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
 * Bytes set aside from a log: a torn tail at open, or damage by wal_repair().
 * records counts the records among them: for a batch whose head still
 * checks, all those its head says it holds (its body may be damaged or cut);
 * elsewhere the whole records whose own checksum holds. first_seq..last_seq
 * span their sequence numbers (0 when none). wal_open() names the same count
 * when it refuses damage.
 */
struct wal_set_aside {
    uint64_t offset, bytes;
    uint64_t records, first_seq, last_seq;
    char kept_path[4200]; /* where they were kept; "" when nothing was set aside */
    char why[288];
};

/*
 * Opens (creating) the log at path and replays it through fn, records with
 * seq <= after_seq skipped. A log of version 1 with no record in it is made
 * afresh in this version; one with records is replayed and left as it is,
 * and then wal_version() is 1 and wal_commit() refuses (XE_IO): the caller
 * starts a new log (a checkpoint) before it logs anything. A torn tail is
 * set aside (see wal_torn_tail());
 * damage is XE_CORRUPT with the offset and what repair would discard.
 * *last_seq receives the highest sequence number seen (or after_seq).
 */
int wal_open(const char *path, uint64_t after_seq, wal_replay_fn fn, void *ctx,
             struct wal **out, uint64_t *last_seq, struct xerr *err);
void wal_close(struct wal *w);
/* What wal_open() set aside as a torn tail; bytes is 0 when nothing was. */
const struct wal_set_aside *wal_torn_tail(const struct wal *w);

/*
 * For a log that wal_open() refuses as damaged: moves everything from the
 * first bad batch on into "PATH.damaged-OFFSET" beside it (durably), and
 * leaves the log ending with its last whole batch. A log with a bad header
 * (another version included) is moved aside whole and a new empty one made;
 * a version 1 log has what follows its last good record moved aside when
 * that is damage (a torn tail is left to wal_open()).
 * A torn tail goes to "PATH.torn-OFFSET", as wal_open() would put it. *out
 * says what was set aside (bytes 0 and why "": the log was sound, nothing
 * changed). A file cut short after a batch holds nothing bad to set aside:
 * every batch is kept and the file grown back to a whole step (bytes 0,
 * kept_path "", offset the end of the batches, why says so).
 * The log must not be open (the index folder's lock is the caller's).
 */
int wal_repair(const char *path, struct wal_set_aside *out, struct xerr *err);

/*
 * Appends one record to the pending batch (not yet written); XE_LIMIT past
 * WAL_PAYLOAD_MAX. XE_INPUT, the record not taken, for what replay would
 * refuse: a type other than WAL_PUT and WAL_DELETE, sequence number 0, one
 * that is not the batch's previous plus one, or a batch's first that is not
 * above every one in the log.
 */
int wal_add(struct wal *w, enum wal_type type, uint64_t seq, const void *payload, size_t len);
/* Drops the pending batch (when a batch is refused before its commit). */
void wal_discard(struct wal *w);
/* Writes the pending batch and fsyncs: one fsync for everything added, and
 * one more when the file grows by a step first. */
int wal_commit(struct wal *w, struct xerr *err);
/* The version of the file open: WAL_VERSION, or 1 for a version 1 log opened for replay. */
uint32_t wal_version(const struct wal *w);
/* Bytes of the log in use (its batches; the file may be longer). */
uint64_t wal_bytes(const struct wal *w);
/* fsyncs done so far, those that made a growth durable included. */
uint64_t wal_fsyncs(const struct wal *w);

#endif
