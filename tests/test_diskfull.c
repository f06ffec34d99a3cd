/*
 * A full disk never hides an acknowledged write and never takes reads down
 * (index/writer.h). The disk "fills" through the fault hook of
 * index/base/fsutil.h: after N more writes or fsyncs, every one fails with
 * ENOSPC until cleared. No clock decides anything: writer_refresh_now() and
 * writer_checkpoint_now() stand in for the writer's timers.
 *
 * - updates acknowledged just before a refresh cannot write its segment are
 *   found by id and by search while the disk is full, after space returns
 *   (the writer recovers with no restart) and after a restart; writes in
 *   between are refused with XE_IO and a message naming the cause;
 * - a failed log append acknowledges nothing and recovers the same way;
 * - a restart while the disk is full serves what the log holds and refuses
 *   writes, then writes and checkpoints once space returns;
 * - an index without a log yet (a bulk load's) starts read-only on a full
 *   disk instead of failing;
 * - the fault swept over every write of a run of updates, refreshes and
 *   checkpoints: whichever file fails (log, segment, deletions, MANIFEST,
 *   folder fsync), every acknowledged version stays the one found;
 * - over HTTP (a server in this process): an update answered 200 just
 *   before the disk fills is what GET and /search return, later writes get
 *   503 naming the cause, and writes succeed again once space returns.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/base/buf.h"
#include "index/format/doc.h"
#include "index/base/error.h"
#include "index/base/fsutil.h"
#include "index/index.h"
#include "index/write/memindex.h"
#include "index/format/postings.h"
#include "index/format/segment.h"
#include "index/writer.h"
#include "query/qparse.h"
#include "query/search.h"
#include "server/http.h"
#include "tests/httpc.h"
#include "tests/testserver.h"
#include "tests/testutil.h"

#define N_IDS 24
#define RECORD_MAX_BYTES (1u << 16)
#define SCRATCH_MAX_BYTES (1u << 20)
#define WORD_BYTES 16
/* A log commit is one write and one fdatasync through the hook. */
#define CALLS_PER_COMMIT 2
/* The sweep: the fault after 0, 1, ... calls, up to past the run's last write (below this). */
#define SWEEP_MAX_CALLS 2000
#define SWEEP_ROUNDS 6
/* The HTTP test: polls only detect a hang (the writer retries every WRITER_RETRY_MS). */
#define HTTP_POLL_MS 20
#define HTTP_POLL_MAX 1000 /* x 20 ms: 20 s */

/* ---- documents: each version has a word of its own ---- */

/* The word of version v of document i: letters only, so it is one token. */
static void version_word(int i, int v, char word[WORD_BYTES])
{
    snprintf(word, WORD_BYTES, "w%c%c%c%c", 'a' + i / 26 % 26, 'a' + i % 26, 'a' + v / 26 % 26,
             'a' + v % 26);
}

static void doc_id(int i, char id[WORD_BYTES])
{
    snprintf(id, WORD_BYTES, "doc-%03d", i);
}

/* A batch of writes, with the document and version each one makes live (0: deleted). */
struct ops {
    size_t n;
    struct write_op op[N_IDS];
    int doc[N_IDS], version[N_IDS];
    struct buf rec[N_IDS];
    char ids[N_IDS][WORD_BYTES];
};

static void ops_init(struct ops *o)
{
    o->n = 0;
    for (size_t i = 0; i < N_IDS; i++)
        buf_init(&o->rec[i], RECORD_MAX_BYTES);
}

static void ops_fini(struct ops *o)
{
    for (size_t i = 0; i < N_IDS; i++)
        buf_fini(&o->rec[i]);
}

static struct text txt(const char *s)
{
    return (struct text){ .p = s, .len = strlen(s) };
}

static void ops_put(struct ops *o, int i, int v)
{
    char id[WORD_BYTES], word[WORD_BYTES], json[256], body[128];
    struct doc_fields d = { .date_s = DOC_DATE_NONE };
    struct buf *r = &o->rec[o->n];

    assert_true(o->n < N_IDS);
    doc_id(i, id);
    version_word(i, v, word);
    snprintf(body, sizeof body, "正文 common %s", word);
    snprintf(json, sizeof json, "{\"id\":\"%s\",\"title\":\"%s\",\"body\":\"%s\"}", id, word,
             body);
    d.id = txt(id);
    d.title = txt(word);
    d.body = txt(body);
    d.json = txt(json);
    buf_reset(r);
    assert_int_equal(doc_record_encode(&d, r), XE_OK);
    o->doc[o->n] = i;
    o->version[o->n] = v;
    o->op[o->n++] = (struct write_op){ .type = WAL_PUT, .record = r->data, .record_len = r->len,
                                       .result = WRITE_FAILED };
}

static void ops_delete(struct ops *o, int i)
{
    assert_true(o->n < N_IDS);
    doc_id(i, o->ids[o->n]);
    o->doc[o->n] = i;
    o->version[o->n] = 0;
    o->op[o->n] = (struct write_op){ .type = WAL_DELETE, .id = o->ids[o->n],
                                     .id_len = strlen(o->ids[o->n]), .result = WRITE_FAILED };
    o->n++;
}

/* ---- what must be found: version[i] of each document, 0 for none ---- */

struct model {
    int version[N_IDS];
};

/* Applies o; when acknowledged, the model takes its versions. */
static int apply(struct writer *w, struct ops *o, struct model *m, struct xerr *err)
{
    int rc = writer_apply(w, o->op, o->n, err);

    for (size_t k = 0; k < o->n && !rc; k++)
        m->version[o->doc[k]] = o->version[k];
    o->n = 0;
    return rc;
}

/* Hits of word in the current snapshot; *id_out gets the first hit's id. */
static uint64_t search_word(struct index *ix, const char *word, char *id_out, size_t cap)
{
    struct query *q = NULL;
    struct search_result res;
    struct xerr err = { 0 };

    assert_ok(query_parse(word, strlen(word), index_tokenize_flags(ix), &q, &err), &err);
    struct snapshot *snap = index_snapshot(ix);
    assert_ok(search_run(snap, q, 4, &res, &err), &err);
    uint64_t total = res.total;
    id_out[0] = '\0';
    if (res.n_hits) {
        struct segment_doc d;
        assert_ok(segment_doc(snap->segments[res.hits[0].segment]->seg, res.hits[0].docid, &d,
                              &err),
                  &err);
        snprintf(id_out, cap, "%.*s", (int)d.id_len, d.id);
    }
    search_result_fini(&res);
    snapshot_release(snap);
    query_free(q);
    return total;
}

/* Every document of m is found by id (with its version's title) and by its word, once. */
static void assert_model(struct index *ix, const struct model *m, const char *when)
{
    struct buf scratch;
    struct snapshot *snap = index_snapshot(ix);
    uint64_t live = 0;

    buf_init(&scratch, SCRATCH_MAX_BYTES);
    for (int i = 0; i < N_IDS; i++) {
        char id[WORD_BYTES], word[WORD_BYTES], hit[WORD_BYTES];
        uint32_t s, d;
        doc_id(i, id);
        struct xerr find_err = { 0 };
        int find_rc = snapshot_find(snap, id, strlen(id), &s, &d, &find_err);
        if (find_rc && find_rc != XE_NOTFOUND)
            fail_msg("%s: %s: %s", when, id, find_err.msg);
        bool found = find_rc == XE_OK;
        if (!m->version[i]) {
            if (found)
                fail_msg("%s: %s found, but it was deleted", when, id);
            continue;
        }
        live++;
        version_word(i, m->version[i], word);
        if (!found)
            fail_msg("%s: GET %s: not found (version %d acknowledged)", when, id,
                     m->version[i]);
        struct doc_fields f;
        struct xerr err = { 0 };
        assert_ok(segment_load(snap->segments[s]->seg, d, &scratch, &f, &err), &err);
        if (f.title.len != strlen(word) || memcmp(f.title.p, word, f.title.len))
            fail_msg("%s: GET %s: title \"%.*s\", want \"%s\"", when, id, (int)f.title.len,
                     f.title.p, word);
        uint64_t hits = search_word(ix, word, hit, sizeof hit);
        if (hits != 1 || strcmp(hit, id))
            fail_msg("%s: search %s: %llu hits (first \"%s\"), want %s", when, word,
                     (unsigned long long)hits, hit, id);
    }
    if (snap->n_docs != live)
        fail_msg("%s: %llu live documents, want %llu", when, (unsigned long long)snap->n_docs,
                 (unsigned long long)live);
    buf_fini(&scratch);
    snapshot_release(snap);
}

/* ---- index and writer ---- */

static struct index *open_ok(const char *dir)
{
    struct index *ix = NULL;
    struct xerr err = { 0 };

    assert_ok(index_open(dir, TOKENIZE_DEFAULT, &ix, &err), &err);
    return ix;
}

static struct writer *start_ok(struct index *ix)
{
    struct writer *w = NULL;
    struct xerr err = { 0 };

    assert_ok(writer_start(ix, &w, &err), &err);
    return w;
}

static void restart(const char *dir, struct index **ix, struct writer **w)
{
    writer_stop(*w);
    index_close(*ix);
    *ix = open_ok(dir);
    *w = start_ok(*ix);
}

static void assert_health(struct writer *w, bool read_only)
{
    struct writer_health h;

    writer_get_health(w, &h);
    if (h.read_only != read_only)
        fail_msg("read_only %d, want %d (\"%s\")", h.read_only, read_only, h.message);
    if (read_only) {
        assert_true(h.no_space);
        assert_non_null(strstr(h.message, "no space left on device while writing "));
        assert_non_null(strstr(h.message, "writes resume when space returns"));
    } else {
        assert_string_equal(h.message, "");
        assert_int_equal(h.segments_in_memory, 0);
    }
}

/* Puts version v of every document, acknowledged, and checkpoints: the old versions on disk. */
static void load_all(struct writer *w, struct ops *o, struct model *m, int v)
{
    struct xerr err = { 0 };

    for (int i = 0; i < N_IDS; i++)
        ops_put(o, i, v);
    assert_ok(apply(w, o, m, &err), &err);
    assert_ok(writer_checkpoint_now(w, &err), &err);
}

/* A write refused because the disk is full: XE_IO with the cause, nothing applied. */
static void assert_write_refused(struct writer *w, struct ops *o, struct model *m)
{
    struct xerr err = { 0 };

    ops_put(o, 0, 99);
    assert_int_equal(apply(w, o, m, &err), XE_IO);
    assert_non_null(strstr(err.msg, "no space left on device"));
}

/* ---- tests ---- */

static void test_diskfull_updates_stay_found_while_full_and_after(void **state)
{
    const char *dir = *state;
    struct index *ix = open_ok(dir);
    struct writer *w = start_ok(ix);
    struct model m = { { 0 } };
    struct ops o;
    struct xerr err = { 0 };

    ops_init(&o);
    load_all(w, &o, &m, 1);
    assert_model(ix, &m, "before");

    /* the disk fills right after the log took these: the refresh cannot write its segment */
    for (int i = 0; i < N_IDS; i += 2)
        ops_put(&o, i, 2);
    ops_put(&o, 1, 3);
    ops_delete(&o, 3);
    fs_fault_set(CALLS_PER_COMMIT, ENOSPC);
    assert_ok(apply(w, &o, &m, &err), &err);
    assert_ok(writer_refresh_now(w, &err), &err);
    assert_true(fs_fault_hits() > 0);
    assert_model(ix, &m, "disk full");
    assert_health(w, true);
    struct writer_health h;
    writer_get_health(w, &h);
    assert_int_equal(h.segments_in_memory, 1);
    assert_non_null(strstr(h.message, "seg-"));

    /* writes are refused while full, and retrying does not help */
    assert_write_refused(w, &o, &m);
    assert_int_equal(writer_refresh_now(w, &err), XE_OK);
    assert_int_not_equal(writer_checkpoint_now(w, &err), XE_OK);
    xerr_clear(&err);
    assert_health(w, true);
    assert_model(ix, &m, "still full");

    /* space returns: the next refresh writes, with no restart */
    fs_fault_clear();
    assert_ok(writer_refresh_now(w, &err), &err);
    assert_health(w, false);
    assert_model(ix, &m, "space back");
    ops_put(&o, 5, 4);
    assert_ok(apply(w, &o, &m, &err), &err);
    assert_ok(writer_refresh_now(w, &err), &err);
    assert_model(ix, &m, "written after");

    restart(dir, &ix, &w);
    assert_model(ix, &m, "restarted");
    struct writer_stats st;
    writer_get_stats(w, &st);
    assert_int_equal(st.write_failures, 0); /* a fresh writer */
    writer_stop(w);
    index_close(ix);
    ops_fini(&o);
}

static void test_diskfull_failed_log_append_acknowledges_nothing(void **state)
{
    const char *dir = *state;
    struct index *ix = open_ok(dir);
    struct writer *w = start_ok(ix);
    struct model m = { { 0 } };
    struct ops o;
    struct xerr err = { 0 };

    ops_init(&o);
    load_all(w, &o, &m, 1);
    fs_fault_set(0, ENOSPC);
    assert_write_refused(w, &o, &m);
    assert_health(w, true);
    struct writer_stats st;
    writer_get_stats(w, &st);
    assert_true(st.write_failures >= 1);
    assert_model(ix, &m, "log full");
    fs_fault_clear();
    assert_ok(writer_refresh_now(w, &err), &err);
    assert_health(w, false);
    load_all(w, &o, &m, 2);
    restart(dir, &ix, &w);
    assert_model(ix, &m, "restarted");
    writer_stop(w);
    index_close(ix);
    ops_fini(&o);
}

static void test_diskfull_restart_while_full_serves_the_log(void **state)
{
    const char *dir = *state;
    struct index *ix = open_ok(dir);
    struct writer *w = start_ok(ix);
    struct model m = { { 0 } };
    struct ops o;
    struct xerr err = { 0 };

    ops_init(&o);
    load_all(w, &o, &m, 1);
    for (int i = 0; i < N_IDS; i += 3)
        ops_put(&o, i, 5);
    ops_delete(&o, 4);
    fs_fault_set(CALLS_PER_COMMIT, ENOSPC);
    assert_ok(apply(w, &o, &m, &err), &err);

    /* stopped and started again on the full disk: the log is replayed into memory */
    restart(dir, &ix, &w);
    assert_model(ix, &m, "restarted while full");
    assert_health(w, true);
    assert_write_refused(w, &o, &m);
    assert_model(ix, &m, "refused while full");

    fs_fault_clear();
    assert_ok(writer_checkpoint_now(w, &err), &err);
    assert_health(w, false);
    ops_put(&o, 7, 6);
    assert_ok(apply(w, &o, &m, &err), &err);
    restart(dir, &ix, &w);
    assert_model(ix, &m, "restarted with space");
    writer_stop(w);
    index_close(ix);
    ops_fini(&o);
}

static void test_diskfull_index_without_log_starts_read_only(void **state)
{
    const char *dir = *state;
    struct index *ix = open_ok(dir);
    struct memindex *mi = memindex_new(index_tokenize_flags(ix));
    struct model m = { { 0 } };
    struct ops o;
    char path[4096];
    struct xerr err = { 0 };

    /* a bulk load's index: segments, a MANIFEST naming no log */
    ops_init(&o);
    assert_non_null(mi);
    for (int i = 0; i < N_IDS; i++) {
        struct doc_fields d;
        ops_put(&o, i, 1);
        assert_ok(doc_record_decode(o.op[0].record, o.op[0].record_len, &d, &err), &err);
        assert_ok(memindex_add(mi, &d, &err), &err);
        o.n = 0;
        m.version[i] = 1;
    }
    assert_ok(index_reserve_segment(ix, path, sizeof path, &err), &err);
    assert_ok(memindex_write(mi, path, true, &err), &err);
    assert_ok(index_commit_segment(ix, path, &err), &err);
    memindex_free(mi);
    assert_string_equal(index_wal_name(ix), "");

    fs_fault_set(0, ENOSPC);
    struct writer *w = start_ok(ix);
    assert_health(w, true);
    assert_model(ix, &m, "started full");
    assert_write_refused(w, &o, &m);

    fs_fault_clear();
    assert_ok(writer_refresh_now(w, &err), &err);
    assert_health(w, false);
    ops_put(&o, 2, 2);
    assert_ok(apply(w, &o, &m, &err), &err);
    restart(dir, &ix, &w);
    assert_model(ix, &m, "restarted");
    writer_stop(w);
    index_close(ix);
    ops_fini(&o);
}

/*
 * Rounds of updates with a refresh after each and a checkpoint after every
 * other, the disk filling after `after` calls: whatever failed, every
 * acknowledged version is found while full (and, for odd `after`, after a
 * restart while full), after space returns and after a restart, and writes
 * were refused only with XE_IO.
 */
static void sweep_once(const char *dir, long after)
{
    struct index *ix = open_ok(dir);
    struct writer *w = start_ok(ix);
    struct model m = { { 0 } };
    struct ops o;
    struct xerr err = { 0 };
    char when[64];

    ops_init(&o);
    load_all(w, &o, &m, 1);
    fs_fault_set(after, ENOSPC);
    for (int round = 0; round < SWEEP_ROUNDS; round++) {
        for (int i = round % 2; i < N_IDS; i += 2 + round % 3)
            ops_put(&o, i, 2 + round);
        if (round % 3 == 2)
            ops_delete(&o, round);
        int rc = apply(w, &o, &m, &err);
        if (rc != XE_OK && rc != XE_IO)
            fail_msg("after %ld: round %d: %s", after, round, err.msg);
        xerr_clear(&err);
        assert_ok(writer_refresh_now(w, &err), &err);
        if (round % 2)
            writer_checkpoint_now(w, &err);
        xerr_clear(&err);
        snprintf(when, sizeof when, "fault after %ld, round %d", after, round);
        assert_model(ix, &m, when);
    }
    if (after % 2) { /* stopped and started on the full disk first */
        restart(dir, &ix, &w);
        snprintf(when, sizeof when, "fault after %ld, restarted while full", after);
        assert_model(ix, &m, when);
    }
    fs_fault_clear();
    assert_ok(writer_refresh_now(w, &err), &err);
    assert_health(w, false);
    snprintf(when, sizeof when, "fault after %ld, space back", after);
    assert_model(ix, &m, when);
    restart(dir, &ix, &w);
    snprintf(when, sizeof when, "fault after %ld, restarted", after);
    assert_model(ix, &m, when);
    writer_stop(w);
    index_close(ix);
    ops_fini(&o);
}

static void test_diskfull_fault_swept_over_every_write(void **state)
{
    const char *parent = *state;

    /* until the fault comes after the last write of a run: every write has failed once */
    for (long after = 0;; after++) {
        char dir[4096];
        unsigned long hits = fs_fault_hits();
        assert_true(after < SWEEP_MAX_CALLS);
        snprintf(dir, sizeof dir, "%s/sweep-%ld", parent, after);
        sweep_once(dir, after);
        if (fs_fault_hits() == hits)
            break;
    }
}

/* ---- over HTTP ---- */

/* A server over dir, the test's folder, with the tests' settings (tests/testserver.h). */
static void http_start(struct test_server *h, const char *dir)
{
    assert_int_equal(test_server_start(h, dir, NULL), 0);
}

/* The status of one request; *body (the caller frees) gets the reply's body when not NULL. */
static int http(const struct test_server *h, const char *method, const char *target,
                const char *body, char **reply_body)
{
    struct httpc_reply r;

    if (!test_http_request(h->port, method, target, NULL, body, body ? strlen(body) : 0, &r))
        fail_msg("%s %s: no reply", method, target);
    int status = r.status;
    if (reply_body)
        *reply_body = strdup(r.body);
    httpc_reply_fini(&r);
    return status;
}

/* Polls GET target until the reply is `status` with `needle` in its body; fails on a hang. */
static void http_wait_for(const struct test_server *h, const char *target, int status,
                          const char *needle)
{
    char *body = NULL;
    int got = 0;

    for (int i = 0; i < HTTP_POLL_MAX; i++) {
        free(body);
        got = http(h, "GET", target, NULL, &body);
        if (got == status && strstr(body, needle)) {
            free(body);
            return;
        }
        test_sleep_ms(HTTP_POLL_MS);
    }
    fail_msg("GET %s: %d %.200s, want %d with %s", target, got, body, status, needle);
}

static void test_diskfull_http_update_found_then_503_then_writes_again(void **state)
{
    const char *dir = *state;
    struct test_server h;
    char *body = NULL;

    http_start(&h, dir);
    assert_int_equal(http(&h, "PUT", "/documents/d1", "{\"title\": \"alpha\"}", NULL), 201);
    /* searchable: its segment is written; the next file write is the update's log */
    http_wait_for(&h, "/search?q=alpha", 200, "\"d1\"");
    fs_fault_set(CALLS_PER_COMMIT, ENOSPC);
    assert_int_equal(http(&h, "PUT", "/documents/d1", "{\"title\": \"bravo\"}", NULL), 200);

    /* the refresh cannot write the segment: the update is still what readers get */
    http_wait_for(&h, "/search?q=bravo", 200, "\"d1\"");
    http_wait_for(&h, "/documents/d1", 200, "bravo");
    assert_int_equal(http(&h, "GET", "/search?q=alpha", NULL, &body), 200);
    assert_null(strstr(body, "\"d1\""));
    free(body);

    assert_int_equal(http(&h, "PUT", "/documents/d2", "{\"title\": \"charlie\"}", &body),
                     503);
    json_t *v = json_loads(body, 0, NULL);
    free(body);
    assert_non_null(v);
    json_t *error = json_object_get(v, "error");
    assert_string_equal(json_string_value(json_object_get(error, "code")), "unavailable");
    const char *message = json_string_value(json_object_get(error, "message"));
    assert_non_null(message);
    assert_non_null(strstr(message, "no space left on device while writing seg-"));
    json_decref(v);
    /* /health keeps the node in a balancer's pool (reads work) and says why writes fail;
     * /metrics has the gauge */
    http_wait_for(&h, "/health", 200, "\"status\":\"degraded\"");
    http_wait_for(&h, "/health", 200, "no space left on device");
    http_wait_for(&h, "/metrics", 200, "\nxun_writer_read_only 1\n");

    /* space returns: within a retry or two the writes go through, with no restart */
    fs_fault_clear();
    int status = 503;
    for (int i = 0; i < HTTP_POLL_MAX && status == 503; i++) {
        status = http(&h, "PUT", "/documents/d2", "{\"title\": \"charlie\"}", NULL);
        if (status == 503)
            test_sleep_ms(HTTP_POLL_MS);
    }
    assert_int_equal(status, 201);
    http_wait_for(&h, "/health", 200, "\"status\":\"ok\"");
    http_wait_for(&h, "/metrics", 200, "\nxun_writer_read_only 0\n");
    test_server_fini(&h);

    http_start(&h, dir);
    http_wait_for(&h, "/documents/d1", 200, "bravo");
    http_wait_for(&h, "/documents/d2", 200, "charlie");
    test_server_fini(&h);
}

static int fault_teardown(void **state)
{
    fs_fault_clear();
    return test_dir_teardown(state);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, test_dir_setup, fault_teardown)
    const struct CMUnitTest tests[] = {
        T(test_diskfull_updates_stay_found_while_full_and_after),
        T(test_diskfull_failed_log_append_acknowledges_nothing),
        T(test_diskfull_restart_while_full_serves_the_log),
        T(test_diskfull_index_without_log_starts_read_only),
        T(test_diskfull_fault_swept_over_every_write),
        T(test_diskfull_http_update_found_then_503_then_writes_again),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
