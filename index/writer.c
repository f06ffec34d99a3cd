/*
 * The writer thread (see writer.h).
 *
 * State that only this thread touches: the log, the in-memory index, and the
 * working list of segments with their deletions. Deletions are copied on
 * the first change after they were published (published ones are shared
 * with readers and never change). Merges run on this thread too, between
 * batches: they block writes for their duration, never searches.
 *
 * Publication rule: a snapshot is published only when the working list
 * holds every applied write, so a tombstone never goes out without the
 * version that replaced it. When a refresh cannot write its segment file,
 * the segment is kept in memory (segment_writer_finish_kept), published,
 * and the writer turns read-only until a checkpoint has written it out:
 * refusing writes bounds the memory a full disk can cost.
 */
#include "index/writer.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "index/format/deletions.h"
#include "index/format/docstore.h"
#include "index/format/doc.h"
#include "index/base/error.h"
#include "index/index.h"
#include "index/write/memindex.h"
#include "index/write/merge.h"
#include "index/format/postings.h"
#include "index/format/segment.h"

/* What a caller queues: a batch of writes, or a request to refresh or checkpoint now. */
enum submission_kind { SUBMIT_WRITES, SUBMIT_REFRESH, SUBMIT_CHECKPOINT };

/* One caller's submission, waiting in the queue. */
struct submission {
    enum submission_kind kind;
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
    struct writer_health health;    /* guarded by lock; changed by the writer thread only */

    /* writer thread only */
    struct wal *wal; /* NULL while no log could be started (a full disk on a new index) */
    char wal_name[INDEX_NAME_BYTES];
    struct wal *spare_wal; /* a fresh log a failed checkpoint made; the next one uses it */
    char spare_wal_name[INDEX_NAME_BYTES];
    bool read_only;      /* a file could not be written: writes refused until a checkpoint */
    uint64_t retry_ns;   /* while read_only: when to try writing again */
    bool merges_paused;  /* a merge failed: none until the next checkpoint */
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

/* ---- read-only while files cannot be written ---- */

static uint32_t count_in_memory(const struct writer *w)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < w->n_segs; i++)
        n += w->segs[i]->in_memory;
    return n;
}

/* Writing file (a name in the folder, or what was written) failed with err: refuse writes. */
static void enter_read_only(struct writer *w, const char *file, const struct xerr *err)
{
    char msg[sizeof w->health.message];
    bool no_space = xerr_is_no_space(err);

    if (no_space)
        snprintf(msg, sizeof msg,
                 "no space left on device while writing %.60s; writes resume when space returns",
                 file);
    else /* the message names the file too, with its path */
        snprintf(msg, sizeof msg, "%.160s; writes resume when the index can be written again",
                 err->msg);
    if (!w->read_only)
        fprintf(stderr, "xun: writer: read-only: %s\n", err->msg);
    w->read_only = true;
    w->retry_ns = clock_ns() + WRITER_RETRY_MS * 1000000ull;
    pthread_mutex_lock(&w->lock);
    w->stats.write_failures++;
    w->health.read_only = true;
    w->health.no_space = no_space;
    w->health.segments_in_memory = count_in_memory(w);
    memcpy(w->health.message, msg, sizeof msg);
    pthread_mutex_unlock(&w->lock);
}

static void leave_read_only(struct writer *w)
{
    if (w->read_only)
        fprintf(stderr, "xun: writer: writes resume: the index could be written again\n");
    w->read_only = false;
    pthread_mutex_lock(&w->lock);
    memset(&w->health, 0, sizeof w->health);
    pthread_mutex_unlock(&w->lock);
}

/* ---- applying operations ---- */

/* Marks the live version of id in the working segments deleted; *found false when none.
 * XE_CORRUPT when a segment's id table is damaged. */
static int tombstone(struct writer *w, const char *id, size_t len, bool *found,
                     struct xerr *err)
{
    *found = false;
    for (uint32_t s = w->n_segs; s-- > 0;) {
        uint32_t d;
        int rc = segment_find_id(w->segs[s]->seg, id, len, &d, err);
        if (rc == XE_NOTFOUND)
            continue;
        if (rc)
            return rc;
        if (deletions_has(w->dels[s], d))
            continue;
        if (!w->dels_private[s] || !w->dels[s]) {
            struct deletions *copy = deletions_copy(w->dels[s], segment_n_docs(w->segs[s]->seg));
            if (!copy)
                return xerr_set(err, XE_NOMEM, "out of memory");
            deletions_unref(w->dels[s]);
            w->dels[s] = copy;
            w->dels_private[s] = true;
        }
        deletions_add(w->dels[s], d);
        *found = true;
        return XE_OK;
    }
    return XE_OK;
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
    bool existed = false;
    int rc = doc_record_decode(record, len, &d, err);

    if (rc)
        return rc;
    existed = memindex_has_id(w->mi, d.id.p, d.id.len);
    if (!existed && (rc = tombstone(w, d.id.p, d.id.len, &existed, err)))
        return rc;
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
    bool found = memindex_delete(w->mi, id, len);
    int rc;

    if (!found && (rc = tombstone(w, id, len, &found, err)))
        return rc;
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

/* Publishes the working list; false when out of memory (readers keep the old view). */
static bool publish(struct writer *w)
{
    struct snapshot *snap = snapshot_make(w->segs, w->dels, w->n_segs);

    if (!snap)
        return false;
    index_publish(w->ix, snap);
    for (uint32_t i = 0; i < w->n_segs; i++)
        w->dels_private[i] = false;
    w->dirty = false;
    pthread_mutex_lock(&w->lock);
    w->stats.refreshes++;
    w->health.segments_in_memory = count_in_memory(w);
    pthread_mutex_unlock(&w->lock);
    return true;
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

/*
 * Writes the in-memory index out as a segment (not yet fsynced) in the
 * working list; when the file cannot be written, the segment goes into the
 * list from memory and the writer turns read-only. XE_OK means the working
 * list holds every applied write; on an error it is unchanged (and the
 * in-memory index kept), so nothing may be published.
 */
static int flush_memindex(struct writer *w, struct xerr *err)
{
    char name[INDEX_NAME_BYTES], path[4096];
    struct index_segment *s;
    struct segment *kept;
    struct xerr write_err = { 0 };
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
    rc = memindex_write_kept(w->mi, path, &kept, &write_err);
    if (!rc) {
        rc = index_segment_open(w->ix, name, &s, err);
    } else if (kept) {
        rc = index_segment_adopt_memory(name, kept, &s, err);
        if (rc)
            segment_close(kept);
    } else {
        *err = write_err;
    }
    if (rc)
        return rc;
    if (s->in_memory)
        enter_read_only(w, name, &write_err);
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

/*
 * Flushes and publishes; merges when a tier is full. XE_OK when the current
 * snapshot holds every applied write (read-only or not); else nothing was
 * published (a tombstone never goes out without its replacement).
 */
static int refresh(struct writer *w, struct xerr *err)
{
    uint32_t n_before = w->n_segs;
    int rc = flush_memindex(w, err);

    if (rc)
        return rc;
    if (!w->read_only && !w->merges_paused) {
        struct xerr merge_err = { 0 };
        if (maybe_merge(w, &merge_err)) {
            /* the inputs stay as they were; a merge is an optimization, not a duty */
            fprintf(stderr, "xun: writer: merge: %s (retried after the next checkpoint)\n",
                    merge_err.msg);
            w->merges_paused = true;
        }
    }
    if (!w->dirty && w->n_segs == n_before)
        return XE_OK; /* the current snapshot is the working list: no new generation */
    if (!publish(w))
        return xerr_set(err, XE_NOMEM, "out of memory publishing a snapshot");
    return XE_OK;
}

/* Writes the segments kept in memory to their files and puts those in their place. */
static int save_in_memory(struct writer *w, struct xerr *err)
{
    bool swapped = false;

    for (uint32_t i = 0; i < w->n_segs; i++) {
        struct index_segment *mem = w->segs[i], *file;
        char path[4096];
        if (!mem->in_memory)
            continue;
        index_path(w->ix, mem->name, path, sizeof path);
        int rc = segment_save(mem->seg, path, err);
        if (rc) {
            enter_read_only(w, mem->name, err);
            return rc;
        }
        rc = index_segment_open(w->ix, mem->name, &file, err);
        if (rc)
            return rc;
        index_segment_ref(file);
        w->segs[i] = file; /* the same bytes: docids and deletions still apply */
        index_segment_unref(mem);
        swapped = true;
    }
    if (swapped && !publish(w)) /* checkpoints write the published snapshot */
        return xerr_set(err, XE_NOMEM, "out of memory publishing a snapshot");
    return XE_OK;
}

static int open_new_wal(struct writer *w, struct wal **out, char name[INDEX_NAME_BYTES],
                        struct xerr *err);

/*
 * Makes the working state durable and starts a fresh log; the way out of
 * read-only. A failure leaves the old log the one to replay.
 */
static int checkpoint(struct writer *w, struct xerr *err)
{
    char name[INDEX_NAME_BYTES];
    struct wal *fresh;
    int rc = refresh(w, err);

    if (!rc)
        rc = save_in_memory(w, err);
    if (rc)
        return rc;
    if (w->spare_wal) { /* empty: made by a checkpoint that failed later */
        fresh = w->spare_wal;
        memcpy(name, w->spare_wal_name, sizeof name);
        w->spare_wal = NULL;
    } else if ((rc = open_new_wal(w, &fresh, name, err))) {
        if (rc == XE_IO)
            enter_read_only(w, name, err);
        return rc;
    }
    struct snapshot *snap = index_snapshot(w->ix);
    rc = index_checkpoint(w->ix, snap, w->seq, name, err);
    if (!rc)
        index_remove_unnamed(w->ix, snap);
    snapshot_release(snap);
    if (rc) {
        /* kept for the next try, not removed: the MANIFEST may name it already
         * (renamed, but the folder's fsync failed), and it must exist then */
        w->spare_wal = fresh;
        memcpy(w->spare_wal_name, name, sizeof name);
        if (rc == XE_IO)
            enter_read_only(w, "a checkpoint (deletions, MANIFEST)", err);
        return rc;
    }
    pthread_mutex_lock(&w->lock);
    w->stats.checkpoints++;
    pthread_mutex_unlock(&w->lock);
    wal_close(w->wal);
    w->wal = fresh;
    memcpy(w->wal_name, name, sizeof w->wal_name);
    w->unsaved = false;
    w->merges_paused = false;
    w->checkpoint_ns = clock_ns();
    leave_read_only(w);
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
    int rc = wal_open(path, w->seq, no_records, NULL, out, &last, err);
    if (rc)
        unlink(path); /* never named by the MANIFEST: its header may be half written */
    return rc;
}

/* ---- the thread ---- */

/* Fails every write submission of batch not failed yet with rc and err. */
static void fail_writes(struct submission *batch, int rc, const struct xerr *err)
{
    for (struct submission *s = batch; s; s = s->next)
        if (s->kind == SUBMIT_WRITES && !s->rc) {
            s->rc = rc;
            s->err = *err;
        }
}

static void process(struct writer *w, struct submission *batch)
{
    struct xerr err = { 0 };
    uint64_t first_seq = w->seq;
    int rc = XE_OK;

    if (w->read_only || !w->wal) {
        /* nothing is logged that could not be flushed: memory stays bounded */
        pthread_mutex_lock(&w->lock);
        xerr_set(&err, XE_IO, "%s", w->health.message);
        pthread_mutex_unlock(&w->lock);
        fail_writes(batch, XE_IO, &err);
        return;
    }
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
        if (rc == XE_IO) { /* nothing of the batch is acknowledged; say why as health does */
            enter_read_only(w, w->wal_name, &err);
            xerr_clear(&err);
            pthread_mutex_lock(&w->lock);
            xerr_set(&err, XE_IO, "%s", w->health.message);
            pthread_mutex_unlock(&w->lock);
        }
        fail_writes(batch, rc, &err);
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

/* The time the writer thread must next wake up for by itself; 0: none. */
static uint64_t next_due_ns(const struct writer *w)
{
    uint64_t due = 0;

    if (w->dirty)
        due = w->dirty_since_ns + WRITER_REFRESH_MS * 1000000ull;
    else if (w->unsaved)
        due = w->checkpoint_ns + WRITER_CHECKPOINT_MS * 1000000ull;
    if ((w->read_only || !w->wal) && (!due || w->retry_ns < due))
        due = w->retry_ns;
    return due;
}

/* Refreshes and checkpoints what is due (or asked for); the first error, if any. */
static int maintain(struct writer *w, bool stopping, bool refresh_asked, bool checkpoint_asked,
                    struct xerr *err)
{
    uint64_t now = clock_ns();
    int rc = XE_OK;

    if (w->dirty && (stopping || refresh_asked || checkpoint_asked ||
                     now - w->dirty_since_ns >= WRITER_REFRESH_MS * 1000000ull))
        rc = refresh(w, err);
    if (rc)
        return rc;
    bool stuck = w->read_only || !w->wal;
    bool due = stopping || checkpoint_asked ||
               (stuck ? refresh_asked || now >= w->retry_ns
                      : now - w->checkpoint_ns >= WRITER_CHECKPOINT_MS * 1000000ull ||
                            wal_bytes(w->wal) >= WRITER_WAL_MAX_BYTES);
    if ((w->unsaved || stuck) && due) {
        rc = checkpoint(w, err);
        if (rc && w->read_only)
            w->retry_ns = clock_ns() + WRITER_RETRY_MS * 1000000ull;
    }
    return rc;
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;

    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->head && !w->stopping) {
            uint64_t now = clock_ns(), due = next_due_ns(w);
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
        bool stopping = w->stopping, refresh_asked = false, checkpoint_asked = false;
        w->head = w->tail = NULL;
        pthread_mutex_unlock(&w->lock);

        /* requests apart from writes: a write's caller may be gone once it is done */
        struct submission *writes = NULL, **writes_end = &writes, *requests = NULL;
        while (batch) {
            struct submission *s = batch;
            batch = s->next;
            s->next = NULL;
            if (s->kind == SUBMIT_WRITES) {
                *writes_end = s;
                writes_end = &s->next;
            } else {
                refresh_asked |= s->kind == SUBMIT_REFRESH;
                checkpoint_asked |= s->kind == SUBMIT_CHECKPOINT;
                s->next = requests;
                requests = s;
            }
        }
        if (writes)
            process(w, writes);
        pthread_mutex_lock(&w->lock); /* writers go before the refresh */
        for (struct submission *s = writes, *next; s; s = next) {
            next = s->next;
            s->done = true;
        }
        if (writes)
            pthread_cond_broadcast(&w->done);
        pthread_mutex_unlock(&w->lock);

        struct xerr err = { 0 };
        int rc = maintain(w, stopping, refresh_asked, checkpoint_asked, &err);
        if (rc) {
            /* the log still holds every acknowledged write; say why and retry later
             * (read-only said why once already) */
            if (!w->read_only)
                fprintf(stderr, "xun: writer: %s\n", err.msg);
            w->dirty_since_ns = clock_ns();
            w->checkpoint_ns = clock_ns();
        }
        pthread_mutex_lock(&w->lock);
        for (struct submission *s = requests, *next; s; s = next) {
            next = s->next;
            /* a refresh is done when everything is published, whatever the checkpoint did */
            if (s->kind == SUBMIT_CHECKPOINT ? rc : w->dirty) {
                s->rc = rc ? rc : XE_NOMEM;
                s->err = err;
                if (!rc)
                    xerr_set(&s->err, XE_NOMEM, "out of memory publishing a snapshot");
            }
            s->done = true;
        }
        if (requests)
            pthread_cond_broadcast(&w->done);
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
    wal_close(w->spare_wal);
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
        if (!rc && wal_torn_tail(w->wal)->bytes) {
            report_torn_tail(w->wal_name, wal_torn_tail(w->wal));
            w->stats.wal_torn_tails++; /* no other thread yet */
        }
        /* what the log held is searchable from the start: from memory when the
         * disk cannot take its segment (then read-only) */
        if (!rc && w->dirty)
            rc = refresh(w, err);
        /* a version 1 log (from before an upgrade) is replayed, never appended
         * to: a checkpoint makes what it held durable and names a new log;
         * when the disk cannot take it, the writer is read-only until one can */
        if (!rc && wal_version(w->wal) == 1) {
            struct xerr cp_err = { 0 };
            rc = checkpoint(w, &cp_err);
            if (rc == XE_IO)
                rc = XE_OK; /* read-only, as checkpoint() set it; reads still work */
            else if (rc)
                xerr_set(err, rc, "%s", cp_err.msg);
        }
    } else {
        /* no log yet: name one in the manifest before any write is acknowledged;
         * when the disk cannot take it, serve what there is, read-only */
        struct xerr io_err = { 0 };
        const char *failed = w->wal_name;
        rc = open_new_wal(w, &w->wal, w->wal_name, &io_err);
        if (!rc) {
            failed = INDEX_MANIFEST;
            struct snapshot *cur = index_snapshot(ix);
            rc = index_checkpoint(ix, cur, w->seq, w->wal_name, &io_err);
            snapshot_release(cur);
            if (rc) {
                w->spare_wal = w->wal; /* as checkpoint() keeps a fresh log */
                memcpy(w->spare_wal_name, w->wal_name, sizeof w->wal_name);
                w->wal = NULL;
            }
        }
        if (rc == XE_IO) {
            enter_read_only(w, failed, &io_err);
            w->wal_name[0] = '\0';
            rc = XE_OK;
        } else if (rc) {
            xerr_set(err, rc, "%s", io_err.msg);
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

/* Queues s and waits until the writer thread has done it. */
static int submit(struct writer *w, struct submission *s, struct xerr *err);

int writer_apply(struct writer *w, struct write_op *ops, size_t n, struct xerr *err)
{
    struct submission s = { .kind = SUBMIT_WRITES, .ops = ops, .n = n };
    return submit(w, &s, err);
}

int writer_refresh_now(struct writer *w, struct xerr *err)
{
    struct submission s = { .kind = SUBMIT_REFRESH };
    return submit(w, &s, err);
}

int writer_checkpoint_now(struct writer *w, struct xerr *err)
{
    struct submission s = { .kind = SUBMIT_CHECKPOINT };
    return submit(w, &s, err);
}

static int submit(struct writer *w, struct submission *s, struct xerr *err)
{
    pthread_mutex_lock(&w->lock);
    if (w->stopping) {
        pthread_mutex_unlock(&w->lock);
        return xerr_set(err, XE_IO, "the index is shutting down");
    }
    if (w->tail)
        w->tail->next = s;
    else
        w->head = s;
    w->tail = s;
    pthread_cond_signal(&w->wake);
    while (!s->done)
        pthread_cond_wait(&w->done, &w->lock);
    pthread_mutex_unlock(&w->lock);
    if (s->rc && err && err->code == XE_OK)
        *err = s->err; /* with its errno (a full disk) */
    return s->rc;
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

void writer_get_health(struct writer *w, struct writer_health *out)
{
    pthread_mutex_lock(&w->lock);
    *out = w->health;
    pthread_mutex_unlock(&w->lock);
}
