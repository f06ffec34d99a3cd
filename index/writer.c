/*
 * The writer thread (see writer.h).
 *
 * State that only this thread touches: the log, the in-memory index, and the
 * working list of segments with their deletions. Deletions are copied on
 * the first change after they were published (published ones are shared
 * with readers and never change). Merges run on this thread too, between
 * batches: they block writes for their duration, never searches.
 */
#include "index/writer.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "index/deletions.h"
#include "index/docstore.h"
#include "index/doc.h"
#include "index/error.h"
#include "index/index.h"
#include "index/memindex.h"
#include "index/merge.h"
#include "index/postings.h"
#include "index/segment.h"

/* One caller's batch, waiting in the queue. */
struct submission {
    struct write_op *ops;
    size_t n;
    int rc;
    struct xerr err;
    bool done;
    struct submission *next;
};

struct writer {
    struct index *ix;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* for the writer thread: work queued or stop */
    pthread_cond_t done; /* for callers: a batch finished */
    struct submission *head, *tail; /* guarded by lock */
    bool stopping;                  /* guarded by lock */
    struct writer_stats stats;      /* guarded by lock */

    /* writer thread only */
    struct wal *wal;
    char wal_name[INDEX_NAME_BYTES];
    uint64_t seq;
    struct memindex *mi;
    uint32_t n_segs, cap_segs;
    struct index_segment **segs;
    struct deletions **dels;
    bool *dels_private; /* not yet published: may be changed in place */
    bool dirty;         /* changes not yet published */
    uint64_t dirty_since_ns;
    bool unsaved;       /* changes not yet checkpointed */
    uint64_t checkpoint_ns;
};

static uint64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- applying operations ---- */

/* Marks the live version of id in the working segments deleted; false when none. */
static bool tombstone(struct writer *w, const char *id, size_t len, bool *nomem)
{
    for (uint32_t s = w->n_segs; s-- > 0;) {
        uint32_t d = segment_find_id(w->segs[s]->seg, id, len);
        if (d == DOCID_END || deletions_has(w->dels[s], d))
            continue;
        if (!w->dels_private[s] || !w->dels[s]) {
            struct deletions *copy = deletions_copy(w->dels[s], segment_n_docs(w->segs[s]->seg));
            if (!copy) {
                *nomem = true;
                return false;
            }
            deletions_unref(w->dels[s]);
            w->dels[s] = copy;
            w->dels_private[s] = true;
        }
        deletions_add(w->dels[s], d);
        return true;
    }
    return false;
}

static void mark_dirty(struct writer *w)
{
    if (!w->dirty)
        w->dirty_since_ns = clock_ns();
    w->dirty = true;
    w->unsaved = true;
}

static int apply_put(struct writer *w, const unsigned char *record, size_t len,
                     enum write_result *result, struct xerr *err)
{
    struct doc_fields d;
    bool nomem = false;
    int rc = doc_record_decode(record, len, &d, err);

    if (rc)
        return rc;
    bool existed = memindex_has_id(w->mi, d.id.p, d.id.len) ||
                   tombstone(w, d.id.p, d.id.len, &nomem);
    if (nomem)
        return xerr_set(err, XE_NOMEM, "out of memory");
    rc = memindex_add(w->mi, &d, err);
    if (rc)
        return rc;
    *result = existed ? WRITE_UPDATED : WRITE_CREATED;
    mark_dirty(w);
    return XE_OK;
}

static int apply_delete(struct writer *w, const char *id, size_t len, enum write_result *result,
                        struct xerr *err)
{
    bool nomem = false;
    bool found = memindex_delete(w->mi, id, len) || tombstone(w, id, len, &nomem);

    if (nomem)
        return xerr_set(err, XE_NOMEM, "out of memory");
    *result = found ? WRITE_DELETED : WRITE_NOT_FOUND;
    if (found)
        mark_dirty(w);
    return XE_OK;
}

static int replay_record(void *ctx, const struct wal_record *rec, struct xerr *err)
{
    struct writer *w = ctx;
    enum write_result result;

    w->seq = rec->seq;
    if (rec->type == WAL_PUT)
        return apply_put(w, (const unsigned char *)rec->payload, rec->len, &result, err);
    return apply_delete(w, rec->payload, rec->len, &result, err);
}

/* ---- publishing, merging, checkpoints ---- */

static void publish(struct writer *w)
{
    struct snapshot *snap = snapshot_make(w->segs, w->dels, w->n_segs);

    if (!snap)
        return; /* out of memory: readers keep the old view; we try again next time */
    index_publish(w->ix, snap);
    for (uint32_t i = 0; i < w->n_segs; i++)
        w->dels_private[i] = false;
    w->dirty = false;
    pthread_mutex_lock(&w->lock);
    w->stats.refreshes++;
    pthread_mutex_unlock(&w->lock);
}

static bool grow_segs(struct writer *w, uint32_t need)
{
    if (need <= w->cap_segs)
        return true;
    uint32_t cap = need * 2;
    struct index_segment **segs = realloc(w->segs, cap * sizeof *segs);
    if (segs)
        w->segs = segs;
    struct deletions **dels = realloc(w->dels, cap * sizeof *dels);
    if (dels)
        w->dels = dels;
    bool *priv = realloc(w->dels_private, cap * sizeof *priv);
    if (priv)
        w->dels_private = priv;
    if (!segs || !dels || !priv)
        return false;
    w->cap_segs = cap;
    return true;
}

/* Writes the in-memory index out as a segment (not yet fsynced) in the working list. */
static int flush_memindex(struct writer *w, struct xerr *err)
{
    char name[INDEX_NAME_BYTES], path[4096];
    struct index_segment *s;
    int rc;

    if (!memindex_n_docs(w->mi)) {
        memindex_free(w->mi); /* only replaced or deleted documents: nothing to keep */
        w->mi = memindex_new(index_tokenize_flags(w->ix));
        return w->mi ? XE_OK : xerr_set(err, XE_NOMEM, "out of memory");
    }
    if (!grow_segs(w, w->n_segs + 1))
        return xerr_set(err, XE_NOMEM, "out of memory");
    index_new_name(w->ix, "seg", "xseg", name);
    index_path(w->ix, name, path, sizeof path);
    rc = memindex_write(w->mi, path, false, err);
    if (!rc)
        rc = index_segment_open(w->ix, name, &s, err);
    if (rc)
        return rc;
    index_segment_ref(s);
    w->segs[w->n_segs] = s;
    w->dels[w->n_segs] = NULL;
    w->dels_private[w->n_segs] = false;
    w->n_segs++;
    memindex_free(w->mi);
    w->mi = memindex_new(index_tokenize_flags(w->ix));
    return w->mi ? XE_OK : xerr_set(err, XE_NOMEM, "out of memory");
}

/* Size tier of a segment: 0 below 1 MiB, then one per factor of WRITER_MERGE_FACTOR. */
static int size_tier(uint64_t bytes)
{
    int tier = 0;
    for (uint64_t limit = 1u << 20; bytes >= limit && tier < 20; limit *= WRITER_MERGE_FACTOR)
        tier++;
    return tier;
}

/* Merges the segments of the first tier that holds WRITER_MERGE_FACTOR of them. */
static int maybe_merge(struct writer *w, struct xerr *err)
{
    int counts[21] = { 0 };

    for (uint32_t i = 0; i < w->n_segs; i++)
        counts[size_tier(segment_file_bytes(w->segs[i]->seg))]++;
    int tier = -1;
    for (int t = 0; t <= 20 && tier < 0; t++)
        if (counts[t] >= WRITER_MERGE_FACTOR)
            tier = t;
    if (tier < 0)
        return XE_OK;

    struct segment *in[INDEX_MAX_SEGMENTS];
    struct deletions *in_dels[INDEX_MAX_SEGMENTS];
    uint32_t picked[INDEX_MAX_SEGMENTS], n = 0;
    for (uint32_t i = 0; i < w->n_segs; i++)
        if (size_tier(segment_file_bytes(w->segs[i]->seg)) == tier) {
            picked[n] = i;
            in[n] = w->segs[i]->seg;
            in_dels[n++] = w->dels[i];
        }
    char name[INDEX_NAME_BYTES], path[4096];
    struct index_segment *merged;
    index_new_name(w->ix, "seg", "xseg", name);
    index_path(w->ix, name, path, sizeof path);
    int rc = merge_segments(in, in_dels, n, path, false, NULL, NULL, err);
    if (!rc)
        rc = index_segment_open(w->ix, name, &merged, err);
    if (rc)
        return rc;
    index_segment_ref(merged);
    /* the merged segment takes the place of the first input; the others go */
    uint32_t out = 0, k = 0;
    for (uint32_t i = 0; i < w->n_segs; i++) {
        if (k < n && picked[k] == i) {
            index_segment_unref(w->segs[i]);
            deletions_unref(w->dels[i]);
            if (k++ == 0) {
                w->segs[out] = merged;
                w->dels[out] = NULL;
                w->dels_private[out++] = false;
            }
            continue;
        }
        w->segs[out] = w->segs[i];
        w->dels[out] = w->dels[i];
        w->dels_private[out++] = w->dels_private[i];
    }
    w->n_segs = out;
    pthread_mutex_lock(&w->lock);
    w->stats.merges++;
    pthread_mutex_unlock(&w->lock);
    return XE_OK;
}

static int refresh(struct writer *w, struct xerr *err)
{
    int rc = flush_memindex(w, err);

    if (!rc)
        rc = maybe_merge(w, err);
    publish(w);
    return rc;
}

static int open_new_wal(struct writer *w, struct wal **out, char name[INDEX_NAME_BYTES],
                        struct xerr *err);

/* Makes the working state durable and starts a fresh log. */
static int checkpoint(struct writer *w, struct xerr *err)
{
    char name[INDEX_NAME_BYTES];
    struct wal *fresh;
    int rc = refresh(w, err);

    if (rc)
        return rc;
    rc = open_new_wal(w, &fresh, name, err);
    if (rc)
        return rc;
    struct snapshot *snap = index_snapshot(w->ix);
    rc = index_checkpoint(w->ix, snap, w->seq, name, err);
    if (!rc)
        index_remove_unnamed(w->ix, snap);
    snapshot_release(snap);
    if (rc) {
        wal_close(fresh); /* the old log stays the one to replay */
        return rc;
    }
    pthread_mutex_lock(&w->lock);
    w->stats.checkpoints++;
    pthread_mutex_unlock(&w->lock);
    wal_close(w->wal);
    w->wal = fresh;
    memcpy(w->wal_name, name, sizeof w->wal_name);
    w->unsaved = false;
    w->checkpoint_ns = clock_ns();
    return XE_OK;
}

static int no_records(void *ctx, const struct wal_record *rec, struct xerr *err)
{
    (void)ctx;
    (void)rec;
    return xerr_corrupt(err, "a new log has records");
}

static int open_new_wal(struct writer *w, struct wal **out, char name[INDEX_NAME_BYTES],
                        struct xerr *err)
{
    char path[4096];
    uint64_t last;

    index_new_name(w->ix, "wal", "xlog", name);
    index_path(w->ix, name, path, sizeof path);
    return wal_open(path, w->seq, no_records, NULL, out, &last, err);
}

/* ---- the thread ---- */

static void process(struct writer *w, struct submission *batch)
{
    struct xerr err = { 0 };
    uint64_t first_seq = w->seq;
    int rc = XE_OK;

    /* a batch with a record the log cannot take fails alone, before anything is logged */
    for (struct submission *s = batch; s; s = s->next)
        for (size_t i = 0; i < s->n && !s->rc; i++) {
            size_t len = s->ops[i].type == WAL_PUT ? s->ops[i].record_len : s->ops[i].id_len;
            if (len > WAL_PAYLOAD_MAX)
                s->rc = xerr_set(&s->err, XE_LIMIT, "a document is too large for the log");
        }
    for (struct submission *s = batch; s; s = s->next)
        for (size_t i = 0; i < s->n && !rc && !s->rc; i++) {
            const struct write_op *op = &s->ops[i];
            rc = op->type == WAL_PUT ? wal_add(w->wal, WAL_PUT, ++w->seq, op->record,
                                               op->record_len)
                                     : wal_add(w->wal, WAL_DELETE, ++w->seq, op->id, op->id_len);
        }
    if (rc) {
        wal_discard(w->wal);
        xerr_set(&err, rc, "out of memory gathering a write batch");
    } else if (w->seq == first_seq) {
        return; /* every submission was refused: nothing to log */
    } else if (!(rc = wal_commit(w->wal, &err))) {
        pthread_mutex_lock(&w->lock);
        w->stats.fsyncs++;
        pthread_mutex_unlock(&w->lock);
    }
    if (rc) {
        w->seq = first_seq;
        for (struct submission *s = batch; s; s = s->next) {
            if (!s->rc) {
                s->rc = rc;
                s->err = err;
            }
        }
        return;
    }
    for (struct submission *s = batch; s; s = s->next)
        for (size_t i = 0; i < s->n && !s->rc; i++) {
            struct write_op *op = &s->ops[i];
            struct xerr op_err = { 0 };
            int op_rc = op->type == WAL_PUT
                            ? apply_put(w, op->record, op->record_len, &op->result, &op_err)
                            : apply_delete(w, op->id, op->id_len, &op->result, &op_err);
            if (op_rc) {
                op->result = WRITE_FAILED;
                if (!s->rc) {
                    s->rc = op_rc;
                    s->err = op_err;
                }
            }
        }
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;

    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->head && !w->stopping) {
            uint64_t now = clock_ns(), due = 0;
            if (w->dirty)
                due = w->dirty_since_ns + WRITER_REFRESH_MS * 1000000ull;
            else if (w->unsaved)
                due = w->checkpoint_ns + WRITER_CHECKPOINT_MS * 1000000ull;
            if (due && now >= due)
                break;
            if (!due) {
                pthread_cond_wait(&w->wake, &w->lock);
                continue;
            }
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t until = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec +
                             (due - now);
            ts.tv_sec = (time_t)(until / 1000000000u);
            ts.tv_nsec = (long)(until % 1000000000u);
            pthread_cond_timedwait(&w->wake, &w->lock, &ts);
        }
        struct submission *batch = w->head;
        bool stopping = w->stopping;
        w->head = w->tail = NULL;
        pthread_mutex_unlock(&w->lock);

        if (batch)
            process(w, batch);
        pthread_mutex_lock(&w->lock);
        for (struct submission *s = batch; s; s = s->next)
            s->done = true;
        if (batch)
            pthread_cond_broadcast(&w->done);
        pthread_mutex_unlock(&w->lock);

        struct xerr err = { 0 };
        uint64_t now = clock_ns();
        int rc = XE_OK;
        if (w->dirty && (stopping || now - w->dirty_since_ns >= WRITER_REFRESH_MS * 1000000ull))
            rc = refresh(w, &err);
        if (!rc && w->unsaved &&
            (stopping || now - w->checkpoint_ns >= WRITER_CHECKPOINT_MS * 1000000ull ||
             wal_bytes(w->wal) >= WRITER_WAL_MAX_BYTES))
            rc = checkpoint(w, &err);
        if (rc) {
            /* the log still holds every acknowledged write; say why and retry later */
            fprintf(stderr, "xun: writer: %s\n", err.msg);
            w->dirty_since_ns = clock_ns();
            w->checkpoint_ns = clock_ns();
        }
        pthread_mutex_lock(&w->lock);
        if (w->stopping && !w->head && (rc || (!w->dirty && !w->unsaved)))
            break;
    }
    pthread_mutex_unlock(&w->lock);
    docstore_thread_cleanup(); /* merges read stored records on this thread */
    return NULL;
}

/* ---- the API ---- */

static void writer_free(struct writer *w)
{
    wal_close(w->wal);
    memindex_free(w->mi);
    for (uint32_t i = 0; i < w->n_segs; i++) {
        index_segment_unref(w->segs[i]);
        deletions_unref(w->dels[i]);
    }
    free(w->segs);
    free(w->dels);
    free(w->dels_private);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    pthread_cond_destroy(&w->done);
    free(w);
}

/* A crash's torn tail is normal, but never dropped without a word. */
static void report_torn_tail(const char *wal_name, const struct wal_set_aside *torn)
{
    if (!torn->bytes)
        return;
    fprintf(stderr,
            "xun: log %s: the last batch (at byte %" PRIu64 ", %" PRIu64 " bytes, %" PRIu64
            " records) was cut short by a crash before it was acknowledged (%s); dropped, "
            "and kept in %s\n",
            wal_name, torn->offset, torn->bytes, torn->records, torn->why, torn->kept_path);
}

int writer_start(struct index *ix, struct writer **out, struct xerr *err)
{
    struct writer *w = calloc(1, sizeof *w);
    int rc;

    if (!w)
        return xerr_set(err, XE_NOMEM, "out of memory");
    w->ix = ix;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    pthread_cond_init(&w->done, NULL);
    w->checkpoint_ns = clock_ns();
    w->mi = memindex_new(index_tokenize_flags(w->ix));
    struct snapshot *snap = index_snapshot(ix);
    if (!w->mi || !grow_segs(w, snap->n_segments + 1)) {
        snapshot_release(snap);
        writer_free(w);
        return xerr_set(err, XE_NOMEM, "out of memory");
    }
    for (uint32_t i = 0; i < snap->n_segments; i++) {
        w->segs[i] = snap->segments[i];
        index_segment_ref(w->segs[i]);
        w->dels[i] = snap->deleted[i];
        deletions_ref(w->dels[i]);
        w->dels_private[i] = false;
    }
    w->n_segs = snap->n_segments;
    snapshot_release(snap);

    w->seq = index_applied_seq(ix);
    if (*index_wal_name(ix)) {
        char path[4096];
        uint64_t last;
        memcpy(w->wal_name, index_wal_name(ix), sizeof w->wal_name);
        index_path(ix, w->wal_name, path, sizeof path);
        rc = wal_open(path, w->seq, replay_record, w, &w->wal, &last, err);
        if (!rc)
            report_torn_tail(w->wal_name, wal_torn_tail(w->wal));
        if (!rc && w->dirty)
            rc = refresh(w, err); /* what the log held is searchable from the start */
    } else {
        /* no log yet: name one in the manifest before any write is acknowledged */
        rc = open_new_wal(w, &w->wal, w->wal_name, err);
        if (!rc) {
            struct snapshot *cur = index_snapshot(ix);
            rc = index_checkpoint(ix, cur, w->seq, w->wal_name, err);
            snapshot_release(cur);
        }
    }
    if (!rc && pthread_create(&w->thread, NULL, writer_main, w))
        rc = xerr_set(err, XE_IO, "cannot start the writer thread");
    if (rc) {
        writer_free(w);
        return rc;
    }
    *out = w;
    return XE_OK;
}

int writer_apply(struct writer *w, struct write_op *ops, size_t n, struct xerr *err)
{
    struct submission s = { .ops = ops, .n = n };

    pthread_mutex_lock(&w->lock);
    if (w->stopping) {
        pthread_mutex_unlock(&w->lock);
        return xerr_set(err, XE_IO, "the index is shutting down");
    }
    if (w->tail)
        w->tail->next = &s;
    else
        w->head = &s;
    w->tail = &s;
    pthread_cond_signal(&w->wake);
    while (!s.done)
        pthread_cond_wait(&w->done, &w->lock);
    pthread_mutex_unlock(&w->lock);
    if (s.rc)
        xerr_set(err, s.rc, "%s", s.err.msg);
    return s.rc;
}

void writer_stop(struct writer *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    writer_free(w);
}

void writer_get_stats(struct writer *w, struct writer_stats *out)
{
    pthread_mutex_lock(&w->lock);
    *out = w->stats;
    pthread_mutex_unlock(&w->lock);
}
