/*
 * Tests of index/writer.h on a real index folder: PUT and DELETE results
 * (created, updated, deleted, not found); writes searchable once
 * writer_refresh_now() returns (no test waits on the refresh timer), with
 * exactly one live version per id, also for an id whose old
 * version sits in an older segment; everything still there after a stop, a
 * close and a reopen (the checkpoint), and after a "crash" (the folder copied
 * while the writer runs, then opened: the log is replayed); four threads
 * writing small batches at once (group commit); enough refreshes to merge a
 * tier of segments; a damaged segment refused at open; a batch the log
 * refuses leaving nothing of it in the log. Reopening an index reads the
 * tombstones its checkpoints wrote, and the writer thread frees its own
 * stored-record readers (LeakSanitizer checks both).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "index/base/buf.h"
#include "index/format/doc.h"
#include "index/format/docstore.h"
#include "index/base/error.h"
#include "index/index.h"
#include "index/base/limits.h"
#include "index/format/postings.h"
#include "index/format/segment.h"
#include "index/writer.h"
#include "tests/testutil.h"

#define PATH_BYTES 4096
#define RECORD_MAX_BYTES (1u << 20)
#define SCRATCH_MAX_BYTES (16u << 20)
#define BATCH_MAX_OPS 16
#define COPY_CHUNK 65536
#define NAME_BYTES 256 /* a directory entry name, NUL included (NAME_MAX + 1) */

/* The concurrency test: 4 threads x 25 batches, ops per batch below. */
#define N_THREADS 4
#define N_BATCHES 25
#define THREAD_MAX_OPS (2 + 4 * (N_BATCHES - 1))

/* The merge test: one batch per refresh (writer_refresh_now() after each). */
#define MERGE_MAX_BATCHES (3 * WRITER_MERGE_FACTOR)

/* ---- helpers: folders ---- */

static void copy_file(const char *from, const char *to)
{
    static char chunk[COPY_CHUNK];
    int in = open(from, O_RDONLY | O_CLOEXEC);
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    assert_true(in >= 0);
    assert_true(out >= 0);
    for (;;) {
        ssize_t n = read(in, chunk, sizeof chunk);
        assert_true(n >= 0);
        if (n == 0)
            break;
        assert_int_equal(write(out, chunk, (size_t)n), n);
    }
    close(in);
    assert_int_equal(close(out), 0);
}

/* Copies the regular files of folder from into the new folder to (like cp -a of a flat dir). */
static void copy_dir(const char *from, const char *to)
{
    DIR *d = opendir(from);
    struct dirent *e;

    assert_non_null(d);
    assert_int_equal(mkdir(to, 0755), 0);
    while ((e = readdir(d))) {
        char src[PATH_BYTES], dst[PATH_BYTES];
        struct stat st;
        snprintf(src, sizeof src, "%s/%s", from, e->d_name);
        snprintf(dst, sizeof dst, "%s/%s", to, e->d_name);
        if (lstat(src, &st) != 0 || !S_ISREG(st.st_mode))
            continue; /* ".", "..", or a file renamed away meanwhile */
        copy_file(src, dst);
    }
    closedir(d);
}

/* The first file in dir whose name ends in suffix; false when none. */
static bool find_file(const char *dir, const char *suffix, char *name, size_t cap)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    bool found = false;

    assert_non_null(d);
    while (!found && (e = readdir(d))) {
        size_t len = strlen(e->d_name), slen = strlen(suffix);
        if (len > slen && !strcmp(e->d_name + len - slen, suffix)) {
            snprintf(name, cap, "%s", e->d_name);
            found = true;
        }
    }
    closedir(d);
    return found;
}

/* True when dir has a tombstones file. */
static bool has_deletions_file(const char *dir)
{
    char name[NAME_BYTES];
    return find_file(dir, ".xdel", name, sizeof name);
}

/* ---- helpers: batches of operations ---- */

struct batch {
    size_t n;
    struct write_op ops[BATCH_MAX_OPS];
    struct buf rec[BATCH_MAX_OPS];
};

static void batch_init(struct batch *b)
{
    b->n = 0;
    for (size_t i = 0; i < BATCH_MAX_OPS; i++)
        buf_init(&b->rec[i], RECORD_MAX_BYTES);
}

static void batch_fini(struct batch *b)
{
    for (size_t i = 0; i < BATCH_MAX_OPS; i++)
        buf_fini(&b->rec[i]);
}

static void batch_reset(struct batch *b)
{
    b->n = 0;
}

static struct text txt(const char *s)
{
    return (struct text){ .p = s, .len = strlen(s) };
}

/* Encodes a document record into out; no cmocka asserts (threads use it). */
static int encode_doc(struct buf *out, const char *id, const char *title)
{
    char json[256], body[128];
    struct doc_fields d = { .date_s = DOC_DATE_NONE };

    snprintf(body, sizeof body, "正文 %s body of %s", title, id);
    snprintf(json, sizeof json, "{\"id\":\"%s\",\"title\":\"%s\",\"body\":\"%s\"}", id, title,
             body);
    d.id = txt(id);
    d.title = txt(title);
    d.body = txt(body);
    d.json = txt(json);
    buf_reset(out);
    return doc_record_encode(&d, out);
}

static int batch_put_rc(struct batch *b, const char *id, const char *title)
{
    if (b->n == BATCH_MAX_OPS)
        return XE_LIMIT;
    struct buf *r = &b->rec[b->n];
    int rc = encode_doc(r, id, title);
    if (rc)
        return rc;
    b->ops[b->n++] = (struct write_op){ .type = WAL_PUT, .record = r->data,
                                        .record_len = r->len, .result = WRITE_FAILED };
    return XE_OK;
}

static int batch_del_rc(struct batch *b, const char *id)
{
    if (b->n == BATCH_MAX_OPS)
        return XE_LIMIT;
    /* the id must outlive the call: keep it in the op's buffer */
    struct buf *r = &b->rec[b->n];
    buf_reset(r);
    if (buf_append_str(r, id))
        return r->rc;
    b->ops[b->n++] = (struct write_op){ .type = WAL_DELETE, .id = (const char *)r->data,
                                        .id_len = r->len, .result = WRITE_FAILED };
    return XE_OK;
}

static void batch_put(struct batch *b, const char *id, const char *title)
{
    assert_int_equal(batch_put_rc(b, id, title), XE_OK);
}

static void batch_del(struct batch *b, const char *id)
{
    assert_int_equal(batch_del_rc(b, id), XE_OK);
}

/* Applies b; checks every op's result against want[0..n). */
static void apply_expect(struct writer *w, struct batch *b, const enum write_result *want)
{
    struct xerr err = { 0 };

    assert_ok(writer_apply(w, b->ops, b->n, &err), &err);
    for (size_t i = 0; i < b->n; i++) {
        if (b->ops[i].result != want[i])
            print_error("op %zu: result %d, want %d\n", i, b->ops[i].result, want[i]);
        assert_int_equal(b->ops[i].result, want[i]);
    }
}

/* ---- helpers: what a snapshot holds ---- */

/* An id and the title its live version must have; NULL: no live version. */
struct want {
    const char *id;
    const char *title;
};

/* Live versions of id across the snapshot's segments. */
static uint32_t live_versions(const struct snapshot *snap, const char *id)
{
    uint32_t n = 0;

    for (uint32_t s = 0; s < snap->n_segments; s++) {
        uint32_t d = test_find_id(snap->segments[s]->seg, id, strlen(id));
        if (d != DOCID_END && !snapshot_is_deleted(snap, s, d))
            n++;
    }
    return n;
}

/* True when snap holds exactly want[0..n) (and n_docs of them live); no asserts. */
static bool snapshot_matches(const struct snapshot *snap, const struct want *want, size_t n,
                             uint64_t n_live, char *why, size_t why_cap)
{
    struct buf scratch;
    bool ok = true;

    buf_init(&scratch, SCRATCH_MAX_BYTES);
    if (snap->n_docs != n_live) {
        snprintf(why, why_cap, "n_docs %llu, want %llu", (unsigned long long)snap->n_docs,
                 (unsigned long long)n_live);
        ok = false;
    }
    for (size_t i = 0; ok && i < n; i++) {
        uint32_t versions = live_versions(snap, want[i].id), s, d;
        if (versions != (want[i].title ? 1u : 0u)) {
            snprintf(why, why_cap, "%s: %u live versions", want[i].id, versions);
            ok = false;
            break;
        }
        if (!want[i].title)
            continue;
        struct doc_fields f;
        struct xerr err = { 0 };
        if (snapshot_find(snap, want[i].id, strlen(want[i].id), &s, &d, NULL) != XE_OK ||
            segment_load(snap->segments[s]->seg, d, &scratch, &f, &err) != XE_OK ||
            f.title.len != strlen(want[i].title) ||
            memcmp(f.title.p, want[i].title, f.title.len) != 0) {
            snprintf(why, why_cap, "%s: not found or wrong title", want[i].id);
            ok = false;
        }
    }
    buf_fini(&scratch);
    return ok;
}

static size_t count_live(const struct want *want, size_t n)
{
    size_t live = 0;
    for (size_t i = 0; i < n; i++)
        live += want[i].title != NULL;
    return live;
}

/*
 * Asks w for a refresh and checks the snapshot holds want: writer_refresh_now()
 * returns once every acknowledged write is published, so no waiting on the
 * refresh timer (the one-second promise is a figure of `make bench`).
 */
static void refresh_and_check(struct writer *w, struct index *ix, const struct want *want,
                              size_t n)
{
    struct xerr err = { 0 };
    char why[256] = "";

    assert_ok(writer_refresh_now(w, &err), &err);
    struct snapshot *snap = index_snapshot(ix);
    bool ok = snapshot_matches(snap, want, n, count_live(want, n), why, sizeof why);
    snapshot_release(snap);
    if (!ok)
        print_error("snapshot after writer_refresh_now() does not match: %s\n", why);
    assert_true(ok);
}

/* The current snapshot holds want, now (after an open, no waiting). */
static void assert_holds(struct index *ix, const struct want *want, size_t n)
{
    char why[256] = "";
    struct snapshot *snap = index_snapshot(ix);
    bool ok = snapshot_matches(snap, want, n, count_live(want, n), why, sizeof why);

    snapshot_release(snap);
    if (!ok)
        print_error("snapshot does not match: %s\n", why);
    assert_true(ok);
}

static struct index *open_ok(const char *dir)
{
    struct index *ix = NULL;
    struct xerr err = { 0 };

    assert_ok(index_open(dir, TOKENIZE_DEFAULT, &ix, &err), &err);
    assert_non_null(ix);
    return ix;
}

static struct writer *start_ok(struct index *ix)
{
    struct writer *w = NULL;
    struct xerr err = { 0 };

    assert_ok(writer_start(ix, &w, &err), &err);
    assert_non_null(w);
    return w;
}

/* ---- tests ---- */

static void test_writer_put_delete_results_and_visibility(void **state)
{
    const char *dir = *state;
    struct index *ix = open_ok(dir);
    struct writer *w = start_ok(ix);
    struct batch b;

    batch_init(&b);
    batch_put(&b, "a", "标题 a1");
    batch_put(&b, "b", "标题 b1");
    batch_put(&b, "c", "标题 c1");
    apply_expect(w, &b, (enum write_result[]){ WRITE_CREATED, WRITE_CREATED, WRITE_CREATED });

    batch_reset(&b);
    batch_put(&b, "a", "标题 a2"); /* still in memory: replaced there */
    batch_del(&b, "b");
    batch_del(&b, "zz");
    batch_del(&b, "b");
    batch_put(&b, "d", "标题 d1");
    batch_del(&b, "d");
    batch_put(&b, "e", "标题 e1");
    batch_put(&b, "e", "标题 e2"); /* twice in one batch */
    apply_expect(w, &b,
                 (enum write_result[]){ WRITE_UPDATED, WRITE_DELETED, WRITE_NOT_FOUND,
                                        WRITE_NOT_FOUND, WRITE_CREATED, WRITE_DELETED,
                                        WRITE_CREATED, WRITE_UPDATED });
    const struct want first[] = { { "a", "标题 a2" }, { "b", NULL },         { "c", "标题 c1" },
                                  { "d", NULL },      { "e", "标题 e2" }, { "zz", NULL } };
    refresh_and_check(w, ix, first, sizeof first / sizeof *first);

    /* now a, c and e are in a published segment: replacing them tombstones it */
    batch_reset(&b);
    batch_put(&b, "c", "标题 c2");
    batch_del(&b, "a");
    batch_del(&b, "a");
    batch_put(&b, "b", "标题 b3"); /* deleted before: created again */
    batch_put(&b, "e", "标题 e3");
    apply_expect(w, &b,
                 (enum write_result[]){ WRITE_UPDATED, WRITE_DELETED, WRITE_NOT_FOUND,
                                        WRITE_CREATED, WRITE_UPDATED });
    const struct want second[] = { { "a", NULL },      { "b", "标题 b3" }, { "c", "标题 c2" },
                                   { "d", NULL },      { "e", "标题 e3" } };
    refresh_and_check(w, ix, second, sizeof second / sizeof *second);

    /* and once more over two segments */
    batch_reset(&b);
    batch_put(&b, "c", "标题 c4");
    batch_del(&b, "e");
    apply_expect(w, &b, (enum write_result[]){ WRITE_UPDATED, WRITE_DELETED });
    const struct want third[] = { { "a", NULL }, { "b", "标题 b3" }, { "c", "标题 c4" },
                                  { "e", NULL } };
    refresh_and_check(w, ix, third, sizeof third / sizeof *third);

    struct writer_stats st;
    writer_get_stats(w, &st);
    assert_int_equal(st.fsyncs, 4); /* one caller, one batch at a time: one fsync each */
    assert_true(st.refreshes >= 3);
    batch_fini(&b);
    writer_stop(w);
    index_close(ix);
}

/* Writes the 20 documents p00..p19 (p05 and p07 replaced in their own batch). */
static void write_twenty(struct writer *w)
{
    struct batch b;
    char id[16], title[32];

    batch_init(&b);
    for (int i = 0; i < 20; i++) {
        snprintf(id, sizeof id, "p%02d", i);
        snprintf(title, sizeof title, "文档 %d v1", i);
        batch_put(&b, id, title);
        if (b.n == 5 || i == 19) {
            enum write_result want[BATCH_MAX_OPS];
            for (size_t k = 0; k < b.n; k++)
                want[k] = WRITE_CREATED;
            apply_expect(w, &b, want);
            batch_reset(&b);
        }
    }
    /* replaced while still in memory: no tombstone in any segment */
    batch_put(&b, "p05", "文档 5 v2");
    batch_put(&b, "p07", "文档 7 v2");
    apply_expect(w, &b, (enum write_result[]){ WRITE_UPDATED, WRITE_UPDATED });
    batch_fini(&b);
}

static void twenty_wanted(struct want *want, char ids[20][16], char titles[20][32])
{
    for (int i = 0; i < 20; i++) {
        snprintf(ids[i], 16, "p%02d", i);
        snprintf(titles[i], 32, "文档 %d %s", i, i == 5 || i == 7 ? "v2" : "v1");
        want[i] = (struct want){ ids[i], titles[i] };
    }
}

static void test_writer_stop_and_reopen_keeps_everything(void **state)
{
    const char *dir = *state;
    struct want want[21];
    char ids[20][16], titles[20][32];

    twenty_wanted(want, ids, titles);
    struct index *ix = open_ok(dir);
    struct writer *w = start_ok(ix);
    write_twenty(w);
    writer_stop(w); /* publishes and checkpoints without waiting for a refresh */
    assert_holds(ix, want, 20);
    index_close(ix);

    /* the checkpoint holds it all: no log replay needed, before the writer starts */
    ix = open_ok(dir);
    assert_holds(ix, want, 20);
    w = start_ok(ix);
    assert_holds(ix, want, 20);
    struct writer_stats st;
    writer_get_stats(w, &st);
    assert_int_equal(st.fsyncs, 0);

    /* more writes over the reopened segments */
    struct batch b;
    batch_init(&b);
    batch_put(&b, "p00", "文档 0 v3");
    batch_del(&b, "p01");
    batch_put(&b, "p20", "文档 20 v1");
    apply_expect(w, &b, (enum write_result[]){ WRITE_UPDATED, WRITE_DELETED, WRITE_CREATED });
    batch_fini(&b);
    want[0].title = "文档 0 v3";
    want[1].title = NULL;
    want[20] = (struct want){ "p20", "文档 20 v1" };
    refresh_and_check(w, ix, want, 21);
    writer_stop(w);
    assert_holds(ix, want, 21);
    index_close(ix);

    /* p00 and p01 left tombstones in the reopened segment: reopening reads them */
    assert_true(has_deletions_file(dir));
    ix = open_ok(dir);
    assert_holds(ix, want, 21);
    w = start_ok(ix);
    assert_holds(ix, want, 21);
    writer_stop(w);
    index_close(ix);
}

/* The folder copied right after the writes are acknowledged: as if the machine died then. */
static void test_writer_crash_copy_replays_acknowledged_writes(void **state)
{
    const char *dir = *state;
    char orig[PATH_BYTES], copy[PATH_BYTES];
    struct want want[23];
    char ids[20][16], titles[20][32];

    snprintf(orig, sizeof orig, "%s/ix", dir);
    snprintf(copy, sizeof copy, "%s/copy", dir);
    twenty_wanted(want, ids, titles);

    /* a checkpointed segment to write over */
    struct index *ix = open_ok(orig);
    struct writer *w = start_ok(ix);
    write_twenty(w);
    writer_stop(w);
    index_close(ix);

    ix = open_ok(orig);
    w = start_ok(ix);
    struct batch b;
    batch_init(&b);
    batch_put(&b, "p03", "文档 3 v3"); /* over the checkpointed segment */
    batch_del(&b, "p04");
    batch_put(&b, "p30", "文档 30 v1");
    batch_put(&b, "p31", "文档 31 v1");
    apply_expect(w, &b,
                 (enum write_result[]){ WRITE_UPDATED, WRITE_DELETED, WRITE_CREATED,
                                        WRITE_CREATED });
    batch_reset(&b);
    batch_del(&b, "p31");
    batch_put(&b, "p05", "文档 5 v3");
    batch_put(&b, "p32", "文档 32 v1");
    apply_expect(w, &b, (enum write_result[]){ WRITE_DELETED, WRITE_UPDATED, WRITE_CREATED });
    batch_fini(&b);
    copy_dir(orig, copy); /* before any refresh or checkpoint could be relied on */
    writer_stop(w);
    index_close(ix);

    want[3].title = "文档 3 v3";
    want[4].title = NULL;
    want[5].title = "文档 5 v3";
    want[20] = (struct want){ "p30", "文档 30 v1" };
    want[21] = (struct want){ "p31", NULL };
    want[22] = (struct want){ "p32", "文档 32 v1" };
    ix = open_ok(copy);
    w = start_ok(ix); /* replays the log; what it held is published at once */
    assert_holds(ix, want, 23);
    /* and the replayed state takes new writes */
    batch_init(&b);
    batch_put(&b, "p30", "文档 30 v2");
    batch_del(&b, "p32");
    apply_expect(w, &b, (enum write_result[]){ WRITE_UPDATED, WRITE_DELETED });
    batch_fini(&b);
    want[20].title = "文档 30 v2";
    want[22].title = NULL;
    refresh_and_check(w, ix, want, 23);
    writer_stop(w);
    index_close(ix);
}

/*
 * A crash's torn tail, set aside when the writer starts, is counted in the
 * writer's stats (for /metrics), as well as said on stderr; a clean start
 * counts none.
 */
static void test_writer_counts_torn_tail_set_aside_at_start(void **state)
{
    const char *dir = *state;
    char orig[PATH_BYTES], copy[PATH_BYTES], log[PATH_BYTES];
    struct writer_stats st;

    snprintf(orig, sizeof orig, "%s/ix", dir);
    snprintf(copy, sizeof copy, "%s/copy", dir);
    struct index *ix = open_ok(orig);
    struct writer *w = start_ok(ix);
    writer_get_stats(w, &st);
    assert_int_equal(st.wal_torn_tails, 0);
    struct batch b;
    batch_init(&b);
    batch_put(&b, "t1", "文档 1");
    apply_expect(w, &b, (enum write_result[]){ WRITE_CREATED });
    batch_reset(&b);
    batch_put(&b, "t2", "文档 2");
    apply_expect(w, &b, (enum write_result[]){ WRITE_CREATED });
    batch_fini(&b);
    copy_dir(orig, copy); /* both batches in the log */
    writer_stop(w);
    index_close(ix);

    /* the last batch's last byte never written: a prefix of it, torn */
    ix = open_ok(copy);
    index_path(ix, index_wal_name(ix), log, sizeof log);
    size_t len;
    unsigned char *data = test_read_file(log, &len);
    size_t end = len;
    while (end && !data[end - 1])
        end--;
    assert_true(end > 0);
    data[end - 1] = 0;
    test_write_file(log, data, len);
    free(data);
    w = start_ok(ix);
    writer_get_stats(w, &st);
    assert_int_equal(st.wal_torn_tails, 1);
    const struct want want[] = { { "t1", "文档 1" }, { "t2", NULL } };
    assert_holds(ix, want, 2);
    writer_stop(w);
    index_close(ix);
}

/* ---- four threads ---- */

struct thread_job {
    struct writer *w;
    int t;
    int rc[N_BATCHES];
    size_t n_ops;
    enum write_result got[THREAD_MAX_OPS], want[THREAD_MAX_OPS];
    bool setup_failed;
};

static void thread_id(char *id, size_t cap, int t, int k)
{
    snprintf(id, cap, "t%d-%03d", t, k);
}

/*
 * Batch i: PUT ids 2i and 2i+1 (created); from the second batch on, PUT 2(i-1)
 * again (updated) and DELETE 2(i-1)+1 (deleted). No cmocka asserts here.
 */
static void *thread_main(void *arg)
{
    struct thread_job *job = arg;
    struct batch b;
    char id[32];

    batch_init(&b);
    for (int i = 0; i < N_BATCHES; i++) {
        struct xerr err = { 0 };
        size_t first = job->n_ops;
        int rc = XE_OK;
        batch_reset(&b);
        thread_id(id, sizeof id, job->t, 2 * i);
        rc |= batch_put_rc(&b, id, "v1");
        job->want[job->n_ops++] = WRITE_CREATED;
        thread_id(id, sizeof id, job->t, 2 * i + 1);
        rc |= batch_put_rc(&b, id, "v1");
        job->want[job->n_ops++] = WRITE_CREATED;
        if (i > 0) {
            thread_id(id, sizeof id, job->t, 2 * (i - 1));
            rc |= batch_put_rc(&b, id, "v2");
            job->want[job->n_ops++] = WRITE_UPDATED;
            thread_id(id, sizeof id, job->t, 2 * (i - 1) + 1);
            rc |= batch_del_rc(&b, id);
            job->want[job->n_ops++] = WRITE_DELETED;
        }
        if (rc) {
            job->setup_failed = true;
            break;
        }
        job->rc[i] = writer_apply(job->w, b.ops, b.n, &err);
        for (size_t k = 0; k < b.n; k++)
            job->got[first + k] = b.ops[k].result;
    }
    batch_fini(&b);
    return NULL;
}

static void test_writer_concurrent_batches_from_four_threads(void **state)
{
    const char *dir = *state;
    struct index *ix = open_ok(dir);
    struct writer *w = start_ok(ix);
    static struct thread_job jobs[N_THREADS];
    pthread_t threads[N_THREADS];

    for (int t = 0; t < N_THREADS; t++) {
        memset(&jobs[t], 0, sizeof jobs[t]);
        jobs[t].w = w;
        jobs[t].t = t;
        assert_int_equal(pthread_create(&threads[t], NULL, thread_main, &jobs[t]), 0);
    }
    for (int t = 0; t < N_THREADS; t++)
        assert_int_equal(pthread_join(threads[t], NULL), 0);

    for (int t = 0; t < N_THREADS; t++) {
        assert_false(jobs[t].setup_failed);
        assert_int_equal(jobs[t].n_ops, THREAD_MAX_OPS);
        for (int i = 0; i < N_BATCHES; i++)
            assert_int_equal(jobs[t].rc[i], XE_OK);
        for (size_t k = 0; k < jobs[t].n_ops; k++) {
            if (jobs[t].got[k] != jobs[t].want[k])
                print_error("thread %d op %zu: result %d, want %d\n", t, k, jobs[t].got[k],
                            jobs[t].want[k]);
            assert_int_equal(jobs[t].got[k], jobs[t].want[k]);
        }
    }
    struct writer_stats st;
    writer_get_stats(w, &st);
    assert_true(st.fsyncs >= 1 && st.fsyncs <= N_THREADS * N_BATCHES);

    /* final state: 2i updated, 2i+1 deleted, except the last batch's pair */
    static struct want want[N_THREADS * 2 * N_BATCHES];
    static char ids[N_THREADS * 2 * N_BATCHES][32];
    size_t n = 0;
    for (int t = 0; t < N_THREADS; t++)
        for (int k = 0; k < 2 * N_BATCHES; k++) {
            thread_id(ids[n], sizeof ids[n], t, k);
            bool last = k >= 2 * (N_BATCHES - 1);
            want[n].id = ids[n];
            want[n].title = last ? "v1" : k % 2 ? NULL : "v2";
            n++;
        }
    refresh_and_check(w, ix, want, n);
    writer_stop(w);
    index_close(ix);
}

static void test_writer_merges_a_full_tier(void **state)
{
    const char *dir = *state;
    struct index *ix = open_ok(dir);
    struct writer *w = start_ok(ix);
    struct writer_stats st = { 0 };
    struct batch b;
    static struct want want[2 * MERGE_MAX_BATCHES];
    static char ids[2 * MERGE_MAX_BATCHES][32], titles[2 * MERGE_MAX_BATCHES][48];
    size_t n = 0;
    int after_merge = -1;

    batch_init(&b);
    /* one small segment per batch, until a merge happened and one batch more */
    for (int i = 0; i < MERGE_MAX_BATCHES && after_merge < 1; i++) {
        batch_reset(&b);
        for (int k = 0; k < 2; k++) {
            snprintf(ids[n], sizeof ids[n], "m%02d-%d", i, k);
            snprintf(titles[n], sizeof titles[n], "合并 %d %d", i, k);
            batch_put(&b, ids[n], titles[n]);
            want[n] = (struct want){ ids[n], titles[n] };
            n++;
        }
        enum write_result res[4] = { WRITE_CREATED, WRITE_CREATED };
        if (i == 3) { /* replace and delete documents of the first segments */
            batch_put(&b, "m00-0", "合并 0 0 v2");
            batch_del(&b, "m01-1");
            res[2] = WRITE_UPDATED;
            res[3] = WRITE_DELETED;
            want[0].title = "合并 0 0 v2";
            want[3].title = NULL;
        }
        apply_expect(w, &b, res);
        struct xerr err = { 0 };
        assert_ok(writer_refresh_now(w, &err), &err); /* this batch is a segment now */
        writer_get_stats(w, &st);
        if (st.merges >= 1)
            after_merge++;
    }
    batch_fini(&b);
    assert_true(st.merges >= 1);
    assert_true(st.refreshes >= WRITER_MERGE_FACTOR);
    refresh_and_check(w, ix, want, n);
    struct snapshot *snap = index_snapshot(ix);
    /* WRITER_MERGE_FACTOR segments became one */
    assert_true(snap->n_segments <= st.refreshes - (WRITER_MERGE_FACTOR - 1));
    snapshot_release(snap);
    writer_stop(w);
    index_close(ix);

    /* tombstones that outlived the merge, if any, are read again at open */
    ix = open_ok(dir);
    assert_holds(ix, want, n);
    index_close(ix);
}

static void test_writer_damaged_segment_fails_index_open(void **state)
{
    const char *dir = *state;
    char name[NAME_BYTES], path[PATH_BYTES];
    struct want want[20];
    char ids[20][16], titles[20][32];
    struct stat st;

    twenty_wanted(want, ids, titles);
    struct index *ix = open_ok(dir);
    struct writer *w = start_ok(ix);
    write_twenty(w);
    writer_stop(w);
    index_close(ix);

    assert_true(find_file(dir, ".xseg", name, sizeof name));
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(stat(path, &st), 0);
    size_t len = (size_t)st.st_size;
    unsigned char *bytes = malloc(len);
    assert_non_null(bytes);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, bytes, len, 0), (ssize_t)len);

    /* a byte in the middle of the data, then one in the header, then a cut */
    const size_t spots[] = { len / 2, 20, len - 1 };
    for (size_t i = 0; i < sizeof spots / sizeof *spots; i++) {
        struct index *bad = NULL;
        struct xerr err = { 0 };
        unsigned char flipped = bytes[spots[i]] ^ 0x40;
        assert_int_equal(pwrite(fd, &flipped, 1, (off_t)spots[i]), 1);
        assert_int_equal(index_open(dir, TOKENIZE_DEFAULT, &bad, &err), XE_CORRUPT);
        assert_null(bad);
        assert_non_null(strstr(err.msg, name));
        assert_int_equal(pwrite(fd, &bytes[spots[i]], 1, (off_t)spots[i]), 1);
    }
    {
        struct index *bad = NULL;
        struct xerr err = { 0 };
        assert_int_equal(ftruncate(fd, (off_t)(len - 7)), 0);
        assert_int_equal(index_open(dir, TOKENIZE_DEFAULT, &bad, &err), XE_CORRUPT);
        assert_null(bad);
        assert_non_null(strstr(err.msg, name));
        assert_int_equal(pwrite(fd, bytes, len, 0), (ssize_t)len);
    }
    close(fd);
    free(bytes);
    /* repaired, it opens again with everything */
    ix = open_ok(dir);
    assert_holds(ix, want, 20);
    index_close(ix);
}

/*
 * A batch the log refuses (a record past its payload cap, WAL_PAYLOAD_MAX)
 * fails as a whole; the writer drops what it had added of it (wal_discard)
 * and reuses its sequence numbers, so nothing of it reaches the log: after
 * a crash the index reopens with the writes before and after it, and
 * without the refused one, and takes new writes.
 */
static void test_writer_failed_batch_leaves_log_replayable(void **state)
{
    const char *dir = *state;
    char orig[PATH_BYTES], copy[PATH_BYTES];
    struct xerr err = { 0 };
    struct batch b;
    size_t big_len = WAL_PAYLOAD_MAX + 1;
    unsigned char *big = calloc(1, big_len);

    assert_non_null(big);
    snprintf(orig, sizeof orig, "%s/ix", dir);
    snprintf(copy, sizeof copy, "%s/copy", dir);
    struct index *ix = open_ok(orig);
    struct writer *w = start_ok(ix);
    batch_init(&b);
    batch_put(&b, "ok1", "先写入");
    apply_expect(w, &b, (enum write_result[]){ WRITE_CREATED });

    /* two good ops added to the log's batch before the one it refuses */
    batch_reset(&b);
    batch_put(&b, "lost", "不应写入");
    batch_del(&b, "ok1");
    b.ops[b.n++] = (struct write_op){ .type = WAL_PUT, .record = big, .record_len = big_len,
                                      .result = WRITE_FAILED };
    assert_int_equal(writer_apply(w, b.ops, b.n, &err), XE_LIMIT);
    for (size_t i = 0; i < b.n; i++)
        assert_int_equal(b.ops[i].result, WRITE_FAILED); /* none of it applied */
    struct writer_stats st;
    writer_get_stats(w, &st);
    assert_int_equal(st.fsyncs, 1); /* nothing was committed for it */

    batch_reset(&b);
    batch_put(&b, "ok2", "后写入");
    apply_expect(w, &b, (enum write_result[]){ WRITE_CREATED });
    const struct want want[] = { { "ok1", "先写入" }, { "lost", NULL }, { "ok2", "后写入" } };
    refresh_and_check(w, ix, want, 3);
    copy_dir(orig, copy); /* the crash: ok1 and ok2 are in the log, not in a checkpoint */
    writer_stop(w);
    index_close(ix);

    /* the crash image replays: ok1 and ok2, not lost, and ok1 not deleted */
    ix = open_ok(copy);
    struct writer *w2 = NULL;
    xerr_clear(&err);
    assert_ok(writer_start(ix, &w2, &err), &err);
    assert_holds(ix, want, 3);
    /* and goes on: the next sequence numbers follow the replayed ones */
    batch_reset(&b);
    batch_put(&b, "ok3", "再写入");
    batch_del(&b, "ok2");
    apply_expect(w2, &b, (enum write_result[]){ WRITE_CREATED, WRITE_DELETED });
    const struct want after[] = { { "ok1", "先写入" }, { "lost", NULL }, { "ok2", NULL },
                                  { "ok3", "再写入" } };
    refresh_and_check(w2, ix, after, 4);
    writer_stop(w2);
    index_close(ix);
    ix = open_ok(copy);
    assert_holds(ix, after, 4);
    index_close(ix);

    /* the original, stopped gracefully, holds the same as before the crash */
    ix = open_ok(orig);
    assert_holds(ix, want, 3);
    w = start_ok(ix);
    assert_holds(ix, want, 3);
    writer_stop(w);
    index_close(ix);
    batch_fini(&b);
    free(big);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, test_dir_setup, test_dir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_writer_put_delete_results_and_visibility),
        T(test_writer_stop_and_reopen_keeps_everything),
        T(test_writer_crash_copy_replays_acknowledged_writes),
        T(test_writer_counts_torn_tail_set_aside_at_start),
        T(test_writer_concurrent_batches_from_four_threads),
        T(test_writer_merges_a_full_tier),
        T(test_writer_damaged_segment_fails_index_open),
        T(test_writer_failed_batch_leaves_log_replayable),
    };
#undef T
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    docstore_thread_cleanup(); /* this thread's reads */
    return failed;
}
