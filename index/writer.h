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
 */
#ifndef XUN_INDEX_WRITER_H
#define XUN_INDEX_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "index/wal.h"

struct index;
struct xerr;
struct writer;

#define WRITER_REFRESH_MS 200
#define WRITER_CHECKPOINT_MS 10000
#define WRITER_WAL_MAX_BYTES (64u << 20)
#define WRITER_MERGE_FACTOR 8

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
};

/*
 * Replays the log the manifest names (a torn tail is dropped), publishes
 * what it held, and starts the writer thread.
 */
int writer_start(struct index *ix, struct writer **out, struct xerr *err);
/* Applies ops in order, durably; returns when they are acknowledged (or failed). */
int writer_apply(struct writer *w, struct write_op *ops, size_t n, struct xerr *err);
/* Publishes and checkpoints what is pending, stops the thread, frees. */
void writer_stop(struct writer *w);
void writer_get_stats(struct writer *w, struct writer_stats *out);

#endif
