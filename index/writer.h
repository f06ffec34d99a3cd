/*
 * Live writes: the one thread that changes a served index.
 *
 * Callers hand it batches of operations and wait. It appends everything
 * queued to the write-ahead log with one fsync (group commit: concurrent
 * callers share it), applies the operations to an in-memory index and to
 * tombstones of older segments, and only then lets the callers go: an
 * acknowledged write survives any crash. Every WRITER_REFRESH_MS it writes
 * the in-memory index out as a small segment and publishes a new snapshot,
 * so a write is searchable well within a second; it merges segments of
 * similar size when a tier fills up, and every WRITER_CHECKPOINT_MS makes
 * the state durable (segments fsynced, MANIFEST rewritten) and starts a
 * fresh log.
 *
 * A full disk (or any failed write of an index file) never hides an
 * acknowledged write: when a refresh cannot write its segment file, the
 * segment is built in memory and published all the same, so a replaced
 * version is never tombstoned without its successor. The writer then turns
 * read-only: writes fail with XE_IO (the server's 503) and a message naming
 * the cause, searches and reads go on, and every WRITER_RETRY_MS it tries to
 * write the segments kept in memory and checkpoint; the first success makes
 * it writable again, with no restart. A start on a full disk replays the
 * log the same way (into memory) and starts read-only instead of failing.
 * writer_get_health() tells which state it is in.
 */
#ifndef XUN_INDEX_WRITER_H
#define XUN_INDEX_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/format/wal.h"

struct index;
struct xerr;
struct writer;

#define WRITER_REFRESH_MS 200
#define WRITER_CHECKPOINT_MS 10000
#define WRITER_WAL_MAX_BYTES (64u << 20)
#define WRITER_MERGE_FACTOR 8
/* While read-only, how often the writer tries to write again (a full disk is not a busy loop). */
#define WRITER_RETRY_MS 1000

enum write_result { WRITE_CREATED, WRITE_UPDATED, WRITE_DELETED, WRITE_NOT_FOUND, WRITE_FAILED };

struct write_op {
    enum wal_type type;
    const unsigned char *record; /* WAL_PUT: the stored record (doc_record_encode) */
    size_t record_len;
    const char *id; /* WAL_DELETE: the id */
    size_t id_len;
    enum write_result result; /* set by writer_apply() */
};

struct writer_stats {
    uint64_t fsyncs, merges, refreshes, checkpoints;
    uint64_t write_failures; /* refreshes, checkpoints and log writes that could not write a file */
    /* torn tails of the log set aside at start (a crash's last batch, never
     * acknowledged; index/wal.h): 0 or 1, kept in "LOG.torn-OFFSET" */
    uint64_t wal_torn_tails;
};

/* Whether the writer takes writes (for /health and /metrics). */
struct writer_health {
    bool read_only;       /* writes fail with XE_IO until the index can be written again */
    bool no_space;        /* ... because the disk (or the quota) is full */
    uint32_t segments_in_memory; /* searchable segments not written to disk yet */
    /* why, e.g. "no space left on device while writing seg-00000012.xseg; writes
     * resume when space returns"; "" when writable. Writes refused get it too. */
    char message[256];
};

/*
 * Replays the log the manifest names (a torn tail is dropped), publishes
 * what it held, and starts the writer thread. A disk that cannot take the
 * replayed segment (or a first log) is no failure: the writer starts
 * read-only, serving the log's documents from memory.
 */
int writer_start(struct index *ix, struct writer **out, struct xerr *err);
/*
 * Applies ops in order, durably; returns when they are acknowledged (or
 * failed). XE_IO while read-only (writer_health.message says why) or when
 * the log cannot be written: nothing of the batch was applied.
 */
int writer_apply(struct writer *w, struct write_op *ops, size_t n, struct xerr *err);
/* Publishes and checkpoints what is pending, stops the thread, frees. */
void writer_stop(struct writer *w);
void writer_get_stats(struct writer *w, struct writer_stats *out);
/* Thread-safe; cheap (a lock and a copy). */
void writer_get_health(struct writer *w, struct writer_health *out);

/*
 * Refreshes now instead of at the next WRITER_REFRESH_MS: returns once every
 * write acknowledged before the call is in the index's current snapshot
 * (XE_OK), or with the reason it is not (out of memory; nothing was
 * published then). While read-only it also tries to write again now, as the
 * WRITER_RETRY_MS timer would; writer_get_health() tells whether that worked.
 * For tests and for writes that wait until they are searchable.
 */
int writer_refresh_now(struct writer *w, struct xerr *err);
/* Refreshes and checkpoints now; the checkpoint's error (XE_IO on a full disk). */
int writer_checkpoint_now(struct writer *w, struct xerr *err);

#endif
