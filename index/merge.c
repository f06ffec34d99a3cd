/*
 * Segment merge (see merge.h). Documents are copied first (their stored
 * records move as bytes, recompressed into new blocks), which fixes the new
 * numbering; then the dictionaries are walked together in byte order and
 * each term's lists are concatenated through the renumbering. Nothing is
 * re-tokenized.
 */
#include "index/merge.h"

#include <stdlib.h>
#include <string.h>

#include "index/buf.h"
#include "index/bytes.h"
#include "index/deletions.h"
#include "index/docstore.h"
#include "index/error.h"
#include "index/limits.h"
#include "index/postings.h"
#include "index/segment.h"

/* Copies the live documents; fills the maps. */
/* Documents are about a third of a merge's work, terms the rest. */
#define MERGE_DOCS_SHARE 0.3
#define MERGE_REPORT_EVERY 4096

static void report(const struct merge_progress *p, double done)
{
    if (p && p->fn)
        p->fn(p->ctx, done);
}

static int merge_docs(struct segment *const *segs, struct deletions *const *dels, uint32_t n,
                      uint32_t **map, struct segment_writer *sw, struct docstore_writer *store,
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
                rc = segment_writer_add_doc(sw, &entry, err);
            map[i][d] = next++;
        }
    }
    buf_fini(&scratch);
    return rc;
}

/* Appends segment i's list of one term through its map; counts documents kept. */
static int merge_list(const struct segment_term *t, uint32_t max_docid, const uint32_t *map,
                      struct postings_writer *pw, uint32_t **positions, uint32_t *positions_cap,
                      uint32_t *df, const char *seg_path, struct xerr *err)
{
    struct postings_cursor c;

    postings_cursor_init(&c, t->postings, t->postings_len, t->has_positions, max_docid);
    while (postings_next(&c)) {
        if (map[c.docid] == UINT32_MAX)
            continue;
        uint32_t n = 0;
        if (t->has_positions) {
            uint32_t tf = postings_tf_total(&c);
            if (tf > *positions_cap) {
                uint32_t *grown = realloc(*positions, tf * sizeof *grown);
                if (!grown)
                    return xerr_set(err, XE_NOMEM, "out of memory");
                *positions = grown;
                *positions_cap = tf;
            }
            int got = postings_positions(&c, *positions, *positions_cap);
            if (got < 0)
                break;
            n = (uint32_t)got;
        }
        int rc = postings_writer_add(pw, map[c.docid], c.tf, *positions, n);
        if (rc)
            return xerr_set(err, rc, "merge: posting list too large");
        (*df)++;
    }
    if (c.corrupt)
        return xerr_corrupt(err, "segment %s: damaged posting list", seg_path);
    return XE_OK;
}

static int merge_terms(struct segment *const *segs, uint32_t n, uint32_t *const *map,
                       const uint32_t *lengths, struct segment_writer *sw,
                       const struct merge_progress *progress, struct xerr *err)
{
    uint64_t total = 0, seen = 0;
    struct segment_term_iter *its = calloc(n, sizeof *its);
    struct segment_term *cur = calloc(n, sizeof *cur);
    bool *live = calloc(n, sizeof *live);
    uint32_t *positions = NULL, positions_cap = 0;
    struct postings_writer pw;
    struct buf list;
    int rc = XE_OK;

    postings_writer_init(&pw, POSTINGS_BLOCK_DOCS);
    postings_writer_set_lengths(&pw, lengths);
    buf_init(&list, WRITE_SCRATCH_MAX_BYTES);
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
        uint32_t df = 0;
        memcpy(term, its[lead].term, term_len);
        postings_writer_begin(&pw, has_positions);
        for (uint32_t i = 0; i < n && !rc; i++) {
            if (!live[i] || bytes_cmp(its[i].term, its[i].term_len, term, term_len) != 0)
                continue;
            if (cur[i].has_positions != has_positions)
                rc = xerr_corrupt(err, "segment %s: term kinds disagree",
                                  segment_path(segs[i]));
            else
                rc = merge_list(&cur[i], segment_n_docs(segs[i]), map[i], &pw, &positions,
                                &positions_cap, &df, segment_path(segs[i]), err);
            live[i] = segment_terms_next(&its[i], &cur[i]);
            if (its[i].rc && !rc) /* a damaged dictionary must not drop terms */
                rc = segment_terms_error(&its[i], err);
            if (++seen % MERGE_REPORT_EVERY == 0)
                report(progress, MERGE_DOCS_SHARE +
                                     (1 - MERGE_DOCS_SHARE) * (double)seen / (double)total);
        }
        if (rc)
            break;
        if (!df)
            continue; /* only deleted documents had it */
        buf_reset(&list);
        rc = postings_writer_finish(&pw, &list);
        if (rc) {
            xerr_set(err, rc, "merge: posting list too large");
            break;
        }
        rc = segment_writer_add_term(sw, term, term_len, df, has_positions, list.data, list.len,
                                     err);
        if (rc)
            break;
    }
out:
    postings_writer_fini(&pw);
    buf_fini(&list);
    free(positions);
    free(live);
    free(cur);
    free(its);
    return rc;
}

/* The field lengths of the merged documents, by new docid (for the blocks' score bounds). */
static uint32_t *merged_lengths(struct segment *const *segs, uint32_t n, uint32_t *const *map)
{
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++)
        total += segment_n_docs(segs[i]);
    uint32_t *lengths = malloc(sizeof *lengths * N_FIELDS * (total + 1));
    for (uint32_t i = 0; lengths && i < n; i++)
        for (uint32_t d = 0; d < segment_n_docs(segs[i]); d++) {
            struct segment_doc doc;
            if (map[i][d] == UINT32_MAX)
                continue;
            if (segment_doc(segs[i], d, &doc, NULL)) { /* read whole by merge_docs: never */
                free(lengths);
                return NULL;
            }
            memcpy(lengths + (size_t)map[i][d] * N_FIELDS, doc.field_tokens,
                   sizeof doc.field_tokens);
        }
    return lengths;
}

int merge_segments(struct segment *const *segs, struct deletions *const *dels, uint32_t n,
                   const char *path, bool durable, uint32_t **maps,
                   const struct merge_progress *progress, struct xerr *err)
{
    uint32_t *lengths = NULL;
    struct segment_writer *sw = segment_writer_new();
    struct docstore_writer *store = docstore_writer_new();
    uint32_t **map = calloc(n ? n : 1, sizeof *map);
    struct buf store_bytes;
    int rc = XE_OK;

    buf_init(&store_bytes, SEGMENT_SECTION_MAX_BYTES);
    /* a large input was opened without its body checked: never merge damage */
    for (uint32_t i = 0; i < n && !rc; i++)
        rc = segment_verify(segs[i], err);
    if (!rc && (!sw || !store || !map)) {
        rc = xerr_set(err, XE_NOMEM, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < n && !rc; i++) {
        map[i] = malloc(sizeof **map * ((size_t)segment_n_docs(segs[i]) + 1));
        if (!map[i])
            rc = xerr_set(err, XE_NOMEM, "out of memory");
    }
    if (!rc)
        rc = merge_docs(segs, dels, n, map, sw, store, progress, err);
    if (!rc && !(lengths = merged_lengths(segs, n, map)))
        rc = xerr_set(err, XE_NOMEM, "out of memory");
    if (!rc)
        rc = merge_terms(segs, n, map, lengths, sw, progress, err);
    if (!rc)
        rc = docstore_writer_finish(store, &store_bytes, err);
    if (!rc)
        rc = segment_writer_finish(sw, &store_bytes, path, durable, err);
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
    free(lengths);
    buf_fini(&store_bytes);
    docstore_writer_free(store);
    segment_writer_free(sw);
    return rc;
}
