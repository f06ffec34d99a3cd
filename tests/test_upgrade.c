/*
 * Tests of the in-place upgrade of an index the previous release wrote
 * (tests/fixtures/upgrade-v7, see its README): a version 7 segment is
 * rewritten as version 8 under a new name when the index is opened, and a
 * version 1 log holding records is replayed, then a checkpoint starts a
 * version 2 log. Every document is found by id and by search afterwards, the
 * MANIFEST names version 8 segments and a version 2 log, a second open
 * upgrades nothing, and a write failing at any point of the upgrade (the
 * fault hook, index/base/fsutil.h) leaves an index that opens and upgrades on the
 * next try. A version 6 segment and a damaged version 7 one are refused,
 * the files left as they were. The version 1 reader keeps version 1's rules:
 * a cut last record is a torn tail (kept beside, replay stops there), a bad
 * record with data after it is damage; a version 1 log is never appended to.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/base/bytes.h"
#include "index/base/error.h"
#include "index/base/fsutil.h"
#include "index/index.h"
#include "index/format/segment.h"
#include "index/format/wal.h"
#include "index/writer.h"
#include "query/qparse.h"
#include "query/search.h"
#include "tests/testutil.h"

#define FIXTURE "tests/fixtures/upgrade-v7"
#define OLD_SEGMENT "seg-00000001.xseg"
#define OLD_LOG "wal-00000002.xlog"

static const char *const fixture_files[] = { "MANIFEST", OLD_SEGMENT, OLD_LOG };

static void copy_fixture(const char *dir)
{
    char from[4096], to[4096];

    for (size_t i = 0; i < sizeof fixture_files / sizeof *fixture_files; i++) {
        size_t len;
        snprintf(from, sizeof from, "%s/%s", FIXTURE, fixture_files[i]);
        snprintf(to, sizeof to, "%s/%s", dir, fixture_files[i]);
        unsigned char *data = test_read_file(from, &len);
        test_write_file(to, data, len);
        free(data);
    }
}

static unsigned char *read_in(const char *dir, const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return test_read_file(path, len);
}

static bool exists_in(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/* The segment and log names the MANIFEST lists; returns how many segments. */
static unsigned manifest_names(const char *dir, char segs[][INDEX_NAME_BYTES], unsigned cap,
                               char *wal, size_t wal_cap)
{
    size_t len;
    char *text = (char *)read_in(dir, INDEX_MANIFEST, &len);
    unsigned n = 0;

    text[len] = '\0';
    *wal = '\0';
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "segment ", 8) && n < cap)
            sscanf(line + 8, "%39[a-z0-9.-]", segs[n++]);
        else if (!strncmp(line, "wal ", 4))
            snprintf(wal, wal_cap, "%s", line + 4);
    }
    free(text);
    return n;
}

static uint32_t file_version_in(const char *dir, const char *name)
{
    size_t len;
    unsigned char *data = read_in(dir, name, &len);
    assert_true(len >= 12);
    uint32_t v = get_u32le(data + 8);
    free(data);
    return v;
}

/* ids whose documents the fixture holds after its log: up-4 was deleted */
static const char *const live_ids[] = { "up-1", "up-2", "up-3", "up-5", "up-6" };

static void expect_search(const struct snapshot *snap, const char *text, const char *id)
{
    struct query *q;
    struct search_result r = { 0 };
    struct xerr err = { 0 };

    assert_int_equal(query_parse(text, strlen(text), snap->tokenize_flags, &q, &err), XE_OK);
    assert_int_equal(search_run(snap, q, 10, &r, &err), XE_OK);
    assert_int_equal(r.n_hits, 1);
    struct segment_doc d;
    test_segment_doc(snap->segments[r.hits[0].segment]->seg, r.hits[0].docid, &d);
    assert_int_equal(d.id_len, strlen(id));
    assert_memory_equal(d.id, id, d.id_len);
    search_result_fini(&r);
    query_free(q);
}

/* What the fixture holds, all of it, in the index open now. */
static void expect_everything(struct index *ix)
{
    struct snapshot *snap = index_snapshot(ix);
    uint32_t s, d;
    struct xerr err = { 0 };

    for (size_t i = 0; i < sizeof live_ids / sizeof *live_ids; i++)
        assert_int_equal(snapshot_find(snap, live_ids[i], strlen(live_ids[i]), &s, &d, &err),
                         XE_OK);
    assert_int_equal(snapshot_find(snap, "up-4", 4, &s, &d, &err), XE_NOTFOUND);
    expect_search(snap, "长江", "up-1");    /* from the version 7 segment */
    expect_search(snap, "郁金香", "up-2");
    expect_search(snap, "熊猫", "up-6");    /* from the version 1 log */
    expect_search(snap, "故宫", "up-5");
    assert_int_equal(snap->n_docs, 5);
    snapshot_release(snap);
}

/* Every file the MANIFEST names is of the current version, the old ones gone. */
static void expect_current_files(const char *dir)
{
    char segs[8][INDEX_NAME_BYTES], wal[INDEX_NAME_BYTES];
    unsigned n = manifest_names(dir, segs, 8, wal, sizeof wal);

    assert_true(n >= 1);
    for (unsigned i = 0; i < n; i++) {
        assert_string_not_equal(segs[i], OLD_SEGMENT);
        assert_int_equal(file_version_in(dir, segs[i]), SEGMENT_VERSION);
    }
    assert_string_not_equal(wal, OLD_LOG);
    assert_int_equal(file_version_in(dir, wal), WAL_VERSION);
    assert_false(exists_in(dir, OLD_SEGMENT));
    assert_false(exists_in(dir, OLD_LOG));
}

static void open_and_start(const char *dir, struct index **ix, struct writer **w)
{
    struct xerr err = { 0 };
    assert_int_equal(index_open(dir, TOKENIZE_DEFAULT, ix, &err), XE_OK);
    assert_int_equal(writer_start(*ix, w, &err), XE_OK);
}

static void test_upgrade_opens_a_version_7_index_with_a_version_1_log(void **state)
{
    const char *dir = *state;
    struct index *ix;
    struct writer *w;
    struct xerr err = { 0 };

    copy_fixture(dir);
    assert_int_equal(index_open(dir, TOKENIZE_DEFAULT, &ix, &err), XE_OK);
    /* the segment is upgraded by the open itself, the MANIFEST naming it */
    char segs[8][INDEX_NAME_BYTES], wal[INDEX_NAME_BYTES];
    assert_int_equal(manifest_names(dir, segs, 8, wal, sizeof wal), 1);
    assert_string_not_equal(segs[0], OLD_SEGMENT);
    assert_int_equal(file_version_in(dir, segs[0]), SEGMENT_VERSION);
    assert_false(exists_in(dir, OLD_SEGMENT));
    struct snapshot *snap = index_snapshot(ix);
    assert_int_equal(snap->n_segments, 1);
    const struct segment *seg = snap->segments[0]->seg;
    assert_int_equal(segment_n_docs(seg), 4);
    assert_int_equal(segment_newest_date(seg), 1705276800); /* up-3: 2024-01-15 */
    assert_int_equal(segment_verify(seg, &err), XE_OK);
    snapshot_release(snap);

    /* the log's records are replayed, then a version 2 log started */
    assert_int_equal(writer_start(ix, &w, &err), XE_OK);
    expect_everything(ix);
    expect_current_files(dir);
    writer_stop(w);
    index_close(ix);

    /* a second open upgrades nothing: the same MANIFEST, the same files */
    size_t len1, len2;
    unsigned char *before = read_in(dir, INDEX_MANIFEST, &len1);
    open_and_start(dir, &ix, &w);
    expect_everything(ix);
    writer_stop(w);
    index_close(ix);
    unsigned char *after = read_in(dir, INDEX_MANIFEST, &len2);
    assert_int_equal(len1, len2);
    assert_memory_equal(before, after, len1);
    free(before);
    free(after);
    expect_current_files(dir);
}

/*
 * Fails the n-th write or fsync of the upgrade (segment, MANIFEST, the new
 * log, the checkpoint), for every n until one runs through: each time the
 * index opens after, upgrades what is left and holds every document.
 */
static void test_upgrade_interrupted_anywhere_opens_and_upgrades_next_time(void **state)
{
    const char *dir = *state;
    bool ran_through = false;
    unsigned open_failed = 0, start_failed = 0;

    for (long after = 0; !ran_through; after++) {
        char sub[4096];
        struct index *ix;
        struct writer *w;
        struct xerr err = { 0 };

        assert_true(after < 200);
        snprintf(sub, sizeof sub, "%s/try-%ld", dir, after);
        assert_int_equal(fs_mkdir(sub, &err), XE_OK);
        copy_fixture(sub);
        unsigned long hits = fs_fault_hits();
        fs_fault_set(after, ENOSPC);
        int rc = index_open(sub, TOKENIZE_DEFAULT, &ix, &err);
        if (rc == XE_OK) {
            if (writer_start(ix, &w, &err) == XE_OK)
                writer_stop(w);
            index_close(ix);
        } else {
            assert_int_equal(rc, XE_IO);
        }
        fs_fault_clear();
        ran_through = fs_fault_hits() == hits;
        if (rc)
            open_failed++; /* the segment or the MANIFEST not written */
        else if (!ran_through)
            start_failed++; /* the replay's segment, the new log, the checkpoint */

        open_and_start(sub, &ix, &w);
        expect_everything(ix);
        writer_stop(w);
        index_close(ix);
        expect_current_files(sub);
        test_rmtree(sub);
    }
    assert_true(open_failed >= 2);
    assert_true(start_failed >= 2);
}

static void test_upgrade_refuses_version_6_and_changes_nothing(void **state)
{
    const char *dir = *state;
    char path[4096];
    struct index *ix;
    struct xerr err = { 0 };
    size_t len, len2;

    copy_fixture(dir);
    /* the version is outside the header's checksum (bytes 16..127) */
    unsigned char *seg = read_in(dir, OLD_SEGMENT, &len);
    put_u32le(seg + 8, 6);
    snprintf(path, sizeof path, "%s/%s", dir, OLD_SEGMENT);
    test_write_file(path, seg, len);
    unsigned char *manifest = read_in(dir, INDEX_MANIFEST, &len2);

    assert_int_equal(index_open(dir, TOKENIZE_DEFAULT, &ix, &err), XE_CORRUPT);
    assert_non_null(strstr(err.msg, "format version 6, this xun reads version 8"));
    assert_non_null(strstr(err.msg, "rebuild the index from its documents"));
    size_t l;
    unsigned char *now = read_in(dir, OLD_SEGMENT, &l);
    assert_int_equal(l, len);
    assert_memory_equal(now, seg, len);
    free(now);
    now = read_in(dir, INDEX_MANIFEST, &l);
    assert_int_equal(l, len2);
    assert_memory_equal(now, manifest, len2);
    free(now);
    free(seg);
    free(manifest);
}

static void test_upgrade_refuses_a_damaged_version_7_segment(void **state)
{
    const char *dir = *state;
    char path[4096];
    struct index *ix;
    struct xerr err = { 0 };
    size_t len;

    copy_fixture(dir);
    unsigned char *seg = read_in(dir, OLD_SEGMENT, &len);
    seg[len - 100] ^= 0x10; /* in the store section */
    snprintf(path, sizeof path, "%s/%s", dir, OLD_SEGMENT);
    test_write_file(path, seg, len);
    free(seg);

    assert_int_equal(index_open(dir, TOKENIZE_DEFAULT, &ix, &err), XE_CORRUPT);
    assert_non_null(strstr(err.msg, OLD_SEGMENT));
    assert_non_null(strstr(err.msg, "body checksum mismatch"));
    /* nothing new is named or left behind */
    char segs[8][INDEX_NAME_BYTES], wal[INDEX_NAME_BYTES];
    assert_int_equal(manifest_names(dir, segs, 8, wal, sizeof wal), 1);
    assert_string_equal(segs[0], OLD_SEGMENT);
    assert_false(exists_in(dir, "seg-00000003.xseg"));
}

/* ---- the version 1 log reader ---- */

struct seen {
    uint64_t seqs[8];
    unsigned n;
};

static int note_record(void *ctx, const struct wal_record *rec, struct xerr *err)
{
    struct seen *s = ctx;
    (void)err;
    if (s->n < 8)
        s->seqs[s->n++] = rec->seq;
    return XE_OK;
}

/* The fixture's log in dir as "v1.xlog", cut or changed by the caller. */
static unsigned char *fixture_log(size_t *len)
{
    return test_read_file(FIXTURE "/" OLD_LOG, len);
}

static void write_log(const char *dir, const unsigned char *data, size_t len, char *path,
                      size_t cap)
{
    snprintf(path, cap, "%s/v1.xlog", dir);
    test_write_file(path, data, len);
}

static void test_wal_v1_replays_its_records_and_takes_no_batch(void **state)
{
    char path[4096];
    size_t len, len2;
    unsigned char *data = fixture_log(&len);
    struct seen seen = { 0 };
    struct wal *w;
    uint64_t last;
    struct xerr err = { 0 };

    write_log(*state, data, len, path, sizeof path);
    assert_int_equal(wal_open(path, 1, note_record, &seen, &w, &last, &err), XE_OK);
    assert_int_equal(wal_version(w), 1);
    assert_int_equal(seen.n, 2); /* 1 is below after_seq */
    assert_int_equal(seen.seqs[0], 2);
    assert_int_equal(seen.seqs[1], 3);
    assert_int_equal(last, 3);
    assert_int_equal(wal_torn_tail(w)->bytes, 0);
    /* never a version 2 batch in a version 1 file */
    assert_int_equal(wal_add(w, WAL_DELETE, 4, "up-1", 4), XE_OK);
    assert_int_equal(wal_commit(w, &err), XE_IO);
    wal_close(w);
    unsigned char *now = test_read_file(path, &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(now, data, len);
    free(now);
    free(data);
}

static void test_wal_v1_cut_last_record_is_a_torn_tail_kept_beside(void **state)
{
    char path[4096];
    size_t len;
    unsigned char *data = fixture_log(&len);
    struct seen seen = { 0 };
    struct wal *w;
    uint64_t last;
    struct xerr err = { 0 };

    /* the last record loses 2 of its payload bytes */
    write_log(*state, data, len - 2, path, sizeof path);
    assert_int_equal(wal_open(path, 0, note_record, &seen, &w, &last, &err), XE_OK);
    assert_int_equal(seen.n, 2);
    assert_int_equal(last, 2);
    const struct wal_set_aside *torn = wal_torn_tail(w);
    assert_true(torn->bytes > 0);
    assert_int_equal(torn->offset + torn->bytes, len - 2);
    assert_int_equal(access(torn->kept_path, F_OK), 0);
    wal_close(w);
    free(data);
}

static void test_wal_v1_bad_record_before_others_is_refused(void **state)
{
    char path[4096];
    size_t len;
    unsigned char *data = fixture_log(&len);
    struct wal *w;
    uint64_t last;
    struct xerr err = { 0 };

    data[WAL_HEADER_BYTES + WAL_RECORD_HEAD_BYTES + 3] ^= 1; /* the first record's payload */
    write_log(*state, data, len, path, sizeof path);
    assert_int_equal(wal_open(path, 0, NULL, NULL, &w, &last, &err), XE_CORRUPT);
    assert_non_null(strstr(err.msg, "checksum mismatch"));
    free(data);
}

static void test_wal_v1_repair_sets_damage_aside_and_keeps_the_records_before(void **state)
{
    char path[4096];
    size_t len;
    unsigned char *data = fixture_log(&len);
    struct seen seen = { 0 };
    struct wal_set_aside sa;
    struct wal *w;
    uint64_t last;
    struct xerr err = { 0 };

    size_t second = WAL_HEADER_BYTES + WAL_RECORD_HEAD_BYTES + get_u32le(data + WAL_HEADER_BYTES);
    data[second + WAL_RECORD_HEAD_BYTES] ^= 1; /* the second record's payload */
    write_log(*state, data, len, path, sizeof path);
    assert_int_equal(wal_open(path, 0, NULL, NULL, &w, &last, &err), XE_CORRUPT);
    assert_int_equal(wal_repair(path, &sa, &err), XE_OK);
    assert_int_equal(sa.offset, second);
    assert_int_equal(sa.bytes, len - second);
    assert_int_equal(sa.records, 1); /* the third; the second's checksum fails */
    assert_int_equal(wal_open(path, 0, note_record, &seen, &w, &last, &err), XE_OK);
    assert_int_equal(wal_version(w), 1);
    assert_int_equal(seen.n, 1);
    assert_int_equal(seen.seqs[0], 1);
    wal_close(w);
    free(data);
}

#define T(f) cmocka_unit_test_setup_teardown(f, test_dir_setup, test_dir_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_upgrade_opens_a_version_7_index_with_a_version_1_log),
        T(test_upgrade_interrupted_anywhere_opens_and_upgrades_next_time),
        T(test_upgrade_refuses_version_6_and_changes_nothing),
        T(test_upgrade_refuses_a_damaged_version_7_segment),
        T(test_wal_v1_replays_its_records_and_takes_no_batch),
        T(test_wal_v1_cut_last_record_is_a_torn_tail_kept_beside),
        T(test_wal_v1_bad_record_before_others_is_refused),
        T(test_wal_v1_repair_sets_damage_aside_and_keeps_the_records_before),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
