/*
 * An index is a folder: segment files, their deletion files, a write-ahead
 * log and a MANIFEST naming which of them are live.
 *
 * MANIFEST, version 1, text, replaced atomically (index/base/fsutil.h):
 *   line 1: "xun-manifest 1"
 *   "seq N": the last log sequence number whose writes the segments hold
 *   "wal NAME": the log to replay from after N (absent: none yet)
 *   "analyzer [fold-variants]": how text was tokenized (text/tokenizer.h); an
 *       index without this line predates folding and has none
 *   one line per segment, oldest first: "segment NAME" or
 *       "segment NAME DELETIONS" where NAME is "seg-NNNNNNNN.xseg" and
 *       DELETIONS its tombstones file "del-NNNNNNNN.xdel" (format/deletions.h)
 *   last line: "crc32c XXXXXXXX", hex, of all bytes before this line
 * Files in the folder that the manifest does not name are left over from a
 * crash or a replaced state, and are removed at open.
 *
 * Readers take a snapshot: an immutable, refcounted list of open segments
 * with their deletions. A change publishes a new snapshot; a reader keeps
 * the one it took until it releases it, so it never sees half a change.
 */
#ifndef XUN_INDEX_INDEX_H
#define XUN_INDEX_INDEX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/format/doc.h"
#include "index/text/tokenizer.h"

struct deletions;
struct segment;
struct index;
struct xerr;

#define INDEX_MANIFEST "MANIFEST"
#define INDEX_MAX_SEGMENTS 4096
#define INDEX_NAME_BYTES 40

/* One open segment, shared by the snapshots that list it. */
struct index_segment {
    struct segment *seg;
    atomic_int refs;
    char name[INDEX_NAME_BYTES];
    /* Touched only by the thread that changes the index (writer or bulk load): */
    bool in_memory;                     /* no file yet: its name is where it will go */
    bool durable;                       /* the file is fsynced */
    struct deletions *del_saved;        /* the deletions last written (a reference) */
    char del_name[INDEX_NAME_BYTES];    /* and their file; "" when none */
};

/* Immutable after publication; any thread may read it while it holds it. */
struct snapshot {
    atomic_int refs;
    uint32_t n_segments;
    struct index_segment **segments; /* oldest first */
    struct deletions **deleted;      /* per segment; NULL: none deleted */
    uint64_t n_docs;                 /* live documents */
    uint64_t n_docs_stored;          /* documents in the segments, deleted ones too */
    uint64_t n_terms;                /* summed over segments: an upper bound */
    uint64_t field_tokens[N_FIELDS];
    uint64_t bytes;
    unsigned tokenize_flags; /* the index's analyzer, for queries and snippets */
    uint64_t generation;     /* grows with each snapshot the index publishes */
};

/*
 * Opens (creating when absent) the index in dir; XE_CORRUPT names the
 * damaged file. tokenize_flags (TOKENIZE_*) is the analyzer a new index gets;
 * an existing index built with another one is refused with XE_INPUT, since
 * its terms would not match the queries.
 */
int index_open(const char *dir, unsigned tokenize_flags, struct index **out, struct xerr *err);
unsigned index_tokenize_flags(const struct index *ix);
void index_close(struct index *ix);
const char *index_dir(const struct index *ix);

/* The current snapshot, with a reference the caller releases. Thread-safe. */
struct snapshot *index_snapshot(struct index *ix);
void snapshot_release(struct snapshot *snap);

/* True when document docid of segment s is deleted in snap. */
bool snapshot_is_deleted(const struct snapshot *snap, uint32_t s, uint32_t docid);

/* Finds the live document with this id: XE_NOTFOUND when none, XE_CORRUPT
 * when a segment's id table or entries are damaged. */
int snapshot_find(const struct snapshot *snap, const char *id, size_t len, uint32_t *segment,
                  uint32_t *docid, struct xerr *err);

/*
 * Segments of snap found damaged (a chunk whose checksum did not match;
 * format/segment.h): returns how many, and puts the first cap of their indexes in
 * which. Thread-safe (for /health and /metrics).
 */
uint32_t snapshot_damaged_segments(const struct snapshot *snap, uint32_t *which, uint32_t cap);

/*
 * A new snapshot of n segments and their deletions (NULL entries: none),
 * taking a reference on each. NULL when out of memory.
 */
struct snapshot *snapshot_make(struct index_segment *const *segs,
                               struct deletions *const *deleted, uint32_t n);

/* Makes snap the current snapshot (the index takes the reference). In memory only. */
void index_publish(struct index *ix, struct snapshot *snap);

/* A fresh file name "PREFIX-NNNNNNNN.SUFFIX" in the index folder (name only). */
void index_new_name(struct index *ix, const char *prefix, const char *suffix,
                    char name[INDEX_NAME_BYTES]);
/* dir + "/" + name. */
void index_path(const struct index *ix, const char *name, char *path, size_t cap);

/* References on a segment, for holders other than snapshots (the writer). */
void index_segment_ref(struct index_segment *s);
void index_segment_unref(struct index_segment *s);

/* Opens the segment file name (in the folder) for a snapshot. */
int index_segment_open(struct index *ix, const char *name, struct index_segment **out,
                       struct xerr *err);

/*
 * An index_segment for seg (taking ownership; refs 0, like index_segment_open)
 * that segment_writer_finish_kept() built in memory when its file name could
 * not be written: readers use it like any other; index_checkpoint() refuses
 * it until the writer has saved it and opened the file instead.
 */
int index_segment_adopt_memory(const char *name, struct segment *seg,
                               struct index_segment **out, struct xerr *err);

/* What the manifest said at open: the log to replay and from which sequence. */
uint64_t index_applied_seq(const struct index *ix);
const char *index_wal_name(const struct index *ix); /* "" when none */

/*
 * Makes snap durable: fsyncs its segments not yet durable, writes deletion
 * files that changed, then the manifest with seq and wal_name. XE_IO when a
 * segment is still in memory only (the caller saves those first).
 */
int index_checkpoint(struct index *ix, const struct snapshot *snap, uint64_t seq,
                     const char *wal_name, struct xerr *err);
/*
 * Removes the index's files that snap does not name (an old log, merged
 * segments, replaced deletions): for the writer, whose snapshot is the
 * whole state, after a checkpoint.
 */
void index_remove_unnamed(struct index *ix, const struct snapshot *snap);

/* Bulk loads: reserves a segment path, then adds the written file durably. */
int index_reserve_segment(struct index *ix, char *path, size_t cap, struct xerr *err);
int index_commit_segment(struct index *ix, const char *path, struct xerr *err);

/*
 * Merges all segments into one, dropping deleted documents, and makes that
 * the durable state: what a bulk load ends with, since a query pays for
 * every segment it visits. Only for the process's sole writer (no writer
 * thread running). progress (may be NULL) follows the merge.
 */
struct merge_progress;
int index_compact(struct index *ix, const struct merge_progress *progress, struct xerr *err);

#endif
