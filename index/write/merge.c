/*
 * Segment merge (see merge.h). Documents are copied first (their stored
 * records move as bytes, recompressed into new blocks), which fixes the new
 * numbering; then the dictionaries are walked together in byte order and
 * each term's lists are concatenated through the renumbering. Nothing is
 * re-tokenized. The file is written by the segment builder (segbuild.h),
 * as memindex_write writes its own.
 */
#include "index/write/merge.h"

#include <stdlib.h>
#include <string.h>

#include "index/base/buf.h"
#include "index/base/bytes.h"
#include "index/format/deletions.h"
#include "index/format/docstore.h"
#include "index/base/error.h"
#include "index/base/limits.h"
#include "index/format/postings.h"
#include "index/write/segbuild.h"
#include "index/format/segment.h"

/* Documents are about a third of a merge's work, terms the rest. */
#define MERGE_DOCS_SHARE 0.3
#define MERGE_REPORT_EVERY 4096

static void report(const struct merge_progress *p, double done)
{
    if (p && p->fn)
        p->fn(p->ctx, done);
}

/* Copies the live documents; fills the maps. */
static int merge_docs(struct segment *const *segs, struct deletions *const *dels, uint32_t n,
                      uint32_t **map, struct segbuild *b, struct docstore_writer *store,
                      const struct merge_progress *progress, struct xerr *err)
{
    struct buf scratch;
    uint32_t next = 0;
    uint64_t total = 0, seen = 0;
    int rc = XE_OK;

    for (uint32_t i = 0; i < n; i++)
        total += segment_n_docs(segs[i]);
    buf_init(&scratch, WRITE_SCRATCH_MAX_BYTES);
    for (uint32_t i = 0; i < n && !rc; i++) {
        uint32_t n_docs = segment_n_docs(segs[i]);
        for (uint32_t d = 0; d < n_docs && !rc; d++) {
            if (++seen % MERGE_REPORT_EVERY == 0)
                report(progress, MERGE_DOCS_SHARE * (double)seen / (double)total);
            if (deletions_has(dels[i], d)) {
                map[i][d] = UINT32_MAX;
                continue;
            }
            const unsigned char *rec;
            size_t len;
            struct segment_doc entry;
            rc = segment_doc(segs[i], d, &entry, err);
            if (!rc)
                rc = segment_record(segs[i], d, &scratch, &rec, &len, err);
            if (!rc)
                rc = docstore_writer_add(store, rec, len, &entry.store, err);
            if (!rc)
                rc = segbuild_add_doc(b, &entry, err);
            map[i][d] = next++;
        }
    }
    buf_fini(&scratch);
    return rc;
}

/* Appends segment i's list of one term through its map. */
static int merge_list(const struct segment_term *t, uint32_t max_docid, const uint32_t *map,
                      struct segbuild *b, const char *seg_path, struct xerr *err)
{
    struct postings_cursor c;
    uint32_t *positions = NULL;

    postings_cursor_init(&c, t->postings, t->postings_len, t->has_positions, max_docid);
    while (postings_next(&c)) {
        if (map[c.docid] == UINT32_MAX)
            continue;
        uint32_t n = 0;
        if (t->has_positions) {
            uint32_t tf = postings_tf_total(&c);
            int rc = segbuild_positions(b, tf, &positions, err);
            if (rc)
                return rc;
            int got = postings_positions(&c, positions, (uint32_t)b->positions_cap);
            if (got < 0)
                break;
            n = (uint32_t)got;
        }
        int rc = segbuild_term_add(b, map[c.docid], c.tf, positions, n, err);
        if (rc)
            return rc;
    }
    if (c.corrupt)
        return xerr_corrupt(err, "segment %s: damaged posting list", seg_path);
    return XE_OK;
}

static int merge_terms(struct segment *const *segs, uint32_t n, uint32_t *const *map,
                       struct segbuild *b, const struct merge_progress *progress,
                       struct xerr *err)
{
    uint64_t total = 0, seen = 0;
    struct segment_term_iter *its = calloc(n, sizeof *its);
    struct segment_term *cur = calloc(n, sizeof *cur);
    bool *live = calloc(n, sizeof *live);
    int rc = XE_OK;

    if (!its || !cur || !live) {
        rc = xerr_set(err, XE_NOMEM, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        segment_terms_from(segs[i], "", 0, &its[i]);
        live[i] = segment_terms_next(&its[i], &cur[i]);
        total += segment_n_terms(segs[i]);
        if (its[i].rc && !rc)
            rc = segment_terms_error(&its[i], err);
    }
    while (!rc) {
        int lead = -1;
        for (uint32_t i = 0; i < n; i++)
            if (live[i] && (lead < 0 || bytes_cmp(its[i].term, its[i].term_len, its[lead].term,
                                                 its[lead].term_len) < 0))
                lead = (int)i;
        if (lead < 0)
            break;
        char term[TOKEN_MAX_BYTES + 1];
        size_t term_len = its[lead].term_len;
        bool has_positions = cur[lead].has_positions;
        memcpy(term, its[lead].term, term_len);
        segbuild_term_begin(b, has_positions);
        for (uint32_t i = 0; i < n && !rc; i++) {
            if (!live[i] || bytes_cmp(its[i].term, its[i].term_len, term, term_len) != 0)
                continue;
            if (cur[i].has_positions != has_positions)
                rc = xerr_corrupt(err, "segment %s: term kinds disagree",
                                  segment_path(segs[i]));
            else
                rc = merge_list(&cur[i], segment_n_docs(segs[i]), map[i], b,
                                segment_path(segs[i]), err);
            live[i] = segment_terms_next(&its[i], &cur[i]);
            if (its[i].rc && !rc) /* a damaged dictionary must not drop terms */
                rc = segment_terms_error(&its[i], err);
            if (++seen % MERGE_REPORT_EVERY == 0)
                report(progress, MERGE_DOCS_SHARE +
                                     (1 - MERGE_DOCS_SHARE) * (double)seen / (double)total);
        }
        if (!rc)
            rc = segbuild_term_end(b, term, term_len, err);
    }
out:
    free(live);
    free(cur);
    free(its);
    return rc;
}

int merge_segments(struct segment *const *segs, struct deletions *const *dels, uint32_t n,
                   const char *path, bool durable, uint32_t **maps,
                   const struct merge_progress *progress, struct xerr *err)
{
    struct docstore_writer *store = docstore_writer_new();
    uint32_t **map = calloc(n ? n : 1, sizeof *map);
    uint64_t total = 0;
    struct segbuild b;
    int rc;

    for (uint32_t i = 0; i < n; i++)
        total += segment_n_docs(segs[i]);
    rc = segbuild_init(&b, path, total > UINT32_MAX ? UINT32_MAX : (uint32_t)total,
                       POSTINGS_BLOCK_DOCS, err);
    /* a large input was opened without its body checked: never merge damage */
    for (uint32_t i = 0; i < n && !rc; i++)
        rc = segment_verify(segs[i], err);
    if (!rc && (!store || !map)) {
        rc = xerr_set(err, XE_NOMEM, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < n && !rc; i++) {
        map[i] = malloc(sizeof **map * ((size_t)segment_n_docs(segs[i]) + 1));
        if (!map[i])
            rc = xerr_set(err, XE_NOMEM, "out of memory");
    }
    if (!rc)
        rc = merge_docs(segs, dels, n, map, &b, store, progress, err);
    if (!rc) {
        segbuild_store(&b, store, false);
        rc = merge_terms(segs, n, map, &b, progress, err);
    }
    if (!rc)
        rc = segbuild_finish(&b, durable, NULL, err);
    if (!rc)
        report(progress, 1);
out:
    for (uint32_t i = 0; map && i < n; i++) {
        if (maps && !rc)
            maps[i] = map[i];
        else
            free(map[i]);
    }
    free(map);
    segbuild_fini(&b);
    docstore_writer_free(store);
    return rc;
}
