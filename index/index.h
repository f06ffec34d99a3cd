/*
 * An index is a folder: segment files and a MANIFEST naming the live ones.
 *
 * MANIFEST, version 1, text, replaced atomically (index/fsutil.h):
 *   line 1: "xun-manifest 1"
 *   then one line per segment, oldest first: "segment NAME" where NAME is
 *       "seg-NNNNNNNN.xseg" with NNNNNNNN the decimal sequence number
 *   last line: "crc32c XXXXXXXX", hex, of all bytes before this line
 * A file in the folder that the manifest does not name is left over from a
 * crash and is ignored.
 *
 * Readers take a snapshot: an immutable, refcounted list of open segments.
 * Committing segments publishes a new snapshot; a reader keeps the one it
 * took until it releases it, so it never sees half a change.
 */
#ifndef XUN_INDEX_INDEX_H
#define XUN_INDEX_INDEX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/doc.h"

struct xerr;
struct segment;
struct index;

#define INDEX_MANIFEST "MANIFEST"
#define INDEX_MAX_SEGMENTS 4096

/* One open segment, shared by the snapshots that list it. */
struct index_segment {
    struct segment *seg;
    atomic_int refs;
    char name[32];
};

/* Immutable after publication; any thread may read it while it holds it. */
struct snapshot {
    atomic_int refs;
    uint32_t n_segments;
    struct index_segment **segments; /* oldest first */
    uint64_t n_docs;
    uint64_t n_terms; /* summed over segments: an upper bound */
    uint64_t field_tokens[N_FIELDS];
    uint64_t bytes;
};

/* Opens (creating when absent) the index in dir; XE_CORRUPT names the damaged file. */
int index_open(const char *dir, struct index **out, struct xerr *err);
void index_close(struct index *ix);
const char *index_dir(const struct index *ix);

/* The current snapshot, with a reference the caller releases. Thread-safe. */
struct snapshot *index_snapshot(struct index *ix);
void snapshot_release(struct snapshot *snap);

/* Finds the document with this id, newest segment first. */
bool snapshot_find(const struct snapshot *snap, const char *id, size_t len, uint32_t *segment,
                   uint32_t *docid);

/* Reserves a fresh segment file path (not yet in the manifest). */
int index_reserve_segment(struct index *ix, char *path, size_t cap, struct xerr *err);
/* Adds written segment files to the manifest and publishes a new snapshot. */
int index_commit_segment(struct index *ix, const char *path, struct xerr *err);

#endif
