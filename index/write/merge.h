/*
 * Merging segments: the live documents of several segments, renumbered in
 * order (all of the first segment's, then the second's, ...), written as
 * one new segment. Deleted documents are dropped for good.
 */
#ifndef XUN_INDEX_MERGE_H
#define XUN_INDEX_MERGE_H

#include <stdbool.h>
#include <stdint.h>

struct deletions;
struct segment;
struct xerr;

/* Told now and then how far a merge has come, from 0 to 1 (for progress bars). */
struct merge_progress {
    void (*fn)(void *ctx, double done);
    void *ctx;
};

/*
 * Writes the merge of segs (with their deletions, NULL entries meaning none)
 * to path, fsynced when durable. When maps is not NULL, maps[i] receives a
 * malloc'd array from segment i's docids to the new ones (UINT32_MAX for
 * dropped documents), for carrying over deletions that arrive meanwhile.
 * progress may be NULL.
 */
int merge_segments(struct segment *const *segs, struct deletions *const *dels, uint32_t n,
                   const char *path, bool durable, uint32_t **maps,
                   const struct merge_progress *progress, struct xerr *err);

#endif
