/*
 * Tests of index/format/deletions.h: tombstone bitmaps made by deletions_copy(),
 * marked with deletions_add() and queried with deletions_has(); copies that
 * do not share bits with their source; reference counts; the file written by
 * deletions_write() read back bit for bit, for sizes around word boundaries;
 * damaged files (truncated, grown, any byte flipped, another version, the
 * wrong n_docs, a count or bits that disagree) refused with XE_CORRUPT
 * naming the file.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index/base/bytes.h"
#include "index/base/crc32c.h"
#include "index/format/deletions.h"
#include "index/base/error.h"
#include "tests/testutil.h"

#define PATH_BYTES 4096
#define DEL_NAME "del-00000003.xdel"

/* ---- helpers ---- */

static void del_path(void **state, char *path)
{
    snprintf(path, PATH_BYTES, "%s/%s", (const char *)*state, DEL_NAME);
}

/* Every docid below n: has() agrees with the predicate "is in marked[0..k)". */
static void assert_exactly(const struct deletions *d, uint32_t n, const uint32_t *marked,
                           size_t k)
{
    assert_int_equal(d->n_docs, n);
    assert_int_equal(d->count, k);
    for (uint32_t docid = 0; docid < n + 70; docid++) {
        bool want = false;
        for (size_t i = 0; i < k; i++)
            want = want || marked[i] == docid;
        assert_int_equal(deletions_has(d, docid), want);
    }
}

/* deletions_read must refuse path with XE_CORRUPT naming the file. */
static void assert_refused(const char *path, uint32_t n_docs)
{
    struct xerr err = { 0 };
    struct deletions *d = NULL;

    assert_int_equal(deletions_read(path, n_docs, &d, &err), XE_CORRUPT);
    assert_int_equal(err.code, XE_CORRUPT);
    assert_null(d);
    assert_non_null(strstr(err.msg, DEL_NAME));
}

/* A bitmap of 130 documents (three words) with docs 0, 63, 64, 129 marked, written. */
static const uint32_t MARKED[] = { 0, 63, 64, 129 };
#define N_DOCS 130

static unsigned char *write_sample(const char *path, size_t *len)
{
    struct xerr err = { 0 };
    struct deletions *d = deletions_copy(NULL, N_DOCS);

    assert_non_null(d);
    for (size_t i = 0; i < sizeof MARKED / sizeof *MARKED; i++)
        assert_true(deletions_add(d, MARKED[i]));
    assert_ok(deletions_write(d, path, &err), &err);
    deletions_unref(d);
    return test_read_file(path, len);
}

/* ---- tests ---- */

static void test_deletions_copy_of_null_is_empty_set(void **state)
{
    (void)state;
    struct deletions *d = deletions_copy(NULL, 100);

    assert_non_null(d);
    assert_int_equal(atomic_load(&d->refs), 1);
    assert_exactly(d, 100, NULL, 0);
    deletions_unref(d);
    /* no deletions at all reads as "nothing deleted" */
    assert_false(deletions_has(NULL, 0));
    assert_false(deletions_has(NULL, 5));
}

static void test_deletions_add_marks_once_within_range(void **state)
{
    (void)state;
    struct deletions *d = deletions_copy(NULL, N_DOCS);

    assert_non_null(d);
    for (size_t i = 0; i < sizeof MARKED / sizeof *MARKED; i++) {
        assert_true(deletions_add(d, MARKED[i]));
        assert_int_equal(d->count, i + 1);
    }
    for (size_t i = 0; i < sizeof MARKED / sizeof *MARKED; i++)
        assert_false(deletions_add(d, MARKED[i])); /* already marked: count unchanged */
    assert_false(deletions_add(d, N_DOCS));     /* past the segment */
    assert_false(deletions_add(d, UINT32_MAX));
    assert_exactly(d, N_DOCS, MARKED, 4);
    deletions_unref(d);
}

static void test_deletions_copy_is_independent_of_source(void **state)
{
    (void)state;
    struct deletions *a = deletions_copy(NULL, N_DOCS);

    assert_non_null(a);
    assert_true(deletions_add(a, 5));
    assert_true(deletions_add(a, 70));
    struct deletions *b = deletions_copy(a, N_DOCS);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    assert_int_equal(atomic_load(&b->refs), 1);
    const uint32_t both[] = { 5, 70 };
    assert_exactly(b, N_DOCS, both, 2);
    assert_true(deletions_add(b, 100));
    assert_false(deletions_add(b, 5));
    const uint32_t more[] = { 5, 70, 100 };
    assert_exactly(b, N_DOCS, more, 3);
    assert_exactly(a, N_DOCS, both, 2); /* the source did not change */
    deletions_unref(a);
    deletions_unref(b);
}

static void test_deletions_refcount_frees_on_last_unref(void **state)
{
    (void)state;
    struct deletions *d = deletions_copy(NULL, 10);

    assert_non_null(d);
    deletions_ref(d);
    deletions_ref(d);
    assert_int_equal(atomic_load(&d->refs), 3);
    deletions_unref(d);
    assert_int_equal(atomic_load(&d->refs), 2);
    assert_true(deletions_add(d, 3)); /* still alive and usable */
    deletions_unref(d);
    assert_int_equal(atomic_load(&d->refs), 1);
    deletions_unref(d); /* freed here: ASan reports a leak or a use otherwise */
    deletions_ref(NULL);
    deletions_unref(NULL);
}

static void test_deletions_write_read_round_trip(void **state)
{
    static const struct {
        uint32_t n_docs;
        uint32_t marked[4];
        size_t k;
    } cases[] = {
        { 0, { 0 }, 0 },           { 1, { 0 }, 1 },        { 1, { 0 }, 0 },
        { 63, { 0, 62 }, 2 },      { 64, { 63 }, 1 },      { 65, { 0, 64 }, 2 },
        { 130, { 0, 63, 64, 129 }, 4 }, { 1000, { 1, 500, 999 }, 3 },
    };
    char path[PATH_BYTES];

    del_path(state, path);
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        struct xerr err = { 0 };
        struct deletions *d = deletions_copy(NULL, cases[c].n_docs), *got = NULL;
        size_t len;

        assert_non_null(d);
        for (size_t i = 0; i < cases[c].k; i++)
            assert_true(deletions_add(d, cases[c].marked[i]));
        assert_ok(deletions_write(d, path, &err), &err);
        deletions_unref(d);

        unsigned char *bytes = test_read_file(path, &len);
        assert_int_equal(len, DELETIONS_HEADER_BYTES + (cases[c].n_docs + 63) / 64 * 8);
        assert_memory_equal(bytes, DELETIONS_MAGIC, 8);
        assert_int_equal(get_u32le(bytes + 8), DELETIONS_VERSION);
        assert_int_equal(get_u32le(bytes + 12), cases[c].n_docs);
        assert_int_equal(get_u32le(bytes + 16), cases[c].k);
        free(bytes);

        assert_ok(deletions_read(path, cases[c].n_docs, &got, &err), &err);
        assert_non_null(got);
        assert_int_equal(atomic_load(&got->refs), 1);
        assert_exactly(got, cases[c].n_docs, cases[c].marked, cases[c].k);
        deletions_unref(got);
    }
}

static void test_deletions_read_missing_file_is_not_found(void **state)
{
    char path[PATH_BYTES];
    struct xerr err = { 0 };
    struct deletions *d = NULL;

    del_path(state, path);
    assert_int_equal(deletions_read(path, 10, &d, &err), XE_NOTFOUND);
    assert_null(d);
}

static void test_deletions_refuses_truncated_or_grown_file(void **state)
{
    char path[PATH_BYTES];
    size_t len;

    del_path(state, path);
    unsigned char *good = write_sample(path, &len);
    for (size_t cut = 0; cut < len; cut++) {
        test_write_file(path, good, cut);
        assert_refused(path, N_DOCS);
    }
    unsigned char *grown = calloc(1, len + 8);
    assert_non_null(grown);
    memcpy(grown, good, len);
    for (size_t extra = 1; extra <= 8; extra++) {
        test_write_file(path, grown, len + extra);
        assert_refused(path, N_DOCS);
    }
    free(grown);
    free(good);
}

static void test_deletions_refuses_any_flipped_byte(void **state)
{
    char path[PATH_BYTES];
    size_t len;

    del_path(state, path);
    unsigned char *good = write_sample(path, &len);
    for (size_t at = 0; at < len; at++) {
        good[at] ^= 0x01;
        test_write_file(path, good, len);
        good[at] ^= 0x01;
        assert_refused(path, N_DOCS);
        good[at] ^= 0x80;
        test_write_file(path, good, len);
        good[at] ^= 0x80;
        assert_refused(path, N_DOCS);
    }
    /* and the undamaged bytes still read */
    struct xerr err = { 0 };
    struct deletions *d = NULL;
    test_write_file(path, good, len);
    assert_ok(deletions_read(path, N_DOCS, &d, &err), &err);
    assert_exactly(d, N_DOCS, MARKED, 4);
    deletions_unref(d);
    free(good);
}

static void test_deletions_refuses_wrong_n_docs(void **state)
{
    char path[PATH_BYTES];
    size_t len;

    del_path(state, path);
    unsigned char *good = write_sample(path, &len);
    free(good);
    /* same word count (129..192 documents) and another: both refused */
    assert_refused(path, N_DOCS - 1);
    assert_refused(path, N_DOCS + 1);
    assert_refused(path, 64);
    assert_refused(path, 0);
    struct xerr err = { 0 };
    struct deletions *d = NULL;
    assert_int_equal(deletions_read(path, N_DOCS + 1, &d, &err), XE_CORRUPT);
    assert_non_null(strstr(err.msg, "130"));
}

static void test_deletions_refuses_other_version(void **state)
{
    char path[PATH_BYTES];
    size_t len;
    struct xerr err = { 0 };
    struct deletions *d = NULL;

    del_path(state, path);
    unsigned char *bytes = write_sample(path, &len);
    put_u32le(bytes + 8, DELETIONS_VERSION + 1); /* the checksum does not cover the header */
    test_write_file(path, bytes, len);
    assert_refused(path, N_DOCS);
    assert_int_equal(deletions_read(path, N_DOCS, &d, &err), XE_CORRUPT);
    assert_non_null(strstr(err.msg, "version 2"));
    free(bytes);
}

/* Checksummed but inconsistent: the count, or a bit past the last document. */
static void test_deletions_refuses_count_or_bits_that_disagree(void **state)
{
    char path[PATH_BYTES];
    size_t len;

    del_path(state, path);
    unsigned char *bytes = write_sample(path, &len);
    put_u32le(bytes + 16, 5); /* four bits are set */
    test_write_file(path, bytes, len);
    assert_refused(path, N_DOCS);
    put_u32le(bytes + 16, 3);
    test_write_file(path, bytes, len);
    assert_refused(path, N_DOCS);

    /* bit 130 (past the 130 documents) set, count and checksum made to match */
    put_u32le(bytes + 16, 5);
    size_t last_word = DELETIONS_HEADER_BYTES + 2 * 8;
    put_u64le(bytes + last_word, get_u64le(bytes + last_word) | (1ull << (130 % 64)));
    put_u32le(bytes + 20, crc32c(0, bytes + DELETIONS_HEADER_BYTES,
                                 len - DELETIONS_HEADER_BYTES));
    test_write_file(path, bytes, len);
    assert_refused(path, N_DOCS);
    free(bytes);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, test_dir_setup, test_dir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_deletions_copy_of_null_is_empty_set),
        T(test_deletions_add_marks_once_within_range),
        T(test_deletions_copy_is_independent_of_source),
        T(test_deletions_refcount_frees_on_last_unref),
        T(test_deletions_write_read_round_trip),
        T(test_deletions_read_missing_file_is_not_found),
        T(test_deletions_refuses_truncated_or_grown_file),
        T(test_deletions_refuses_any_flipped_byte),
        T(test_deletions_refuses_wrong_n_docs),
        T(test_deletions_refuses_other_version),
        T(test_deletions_refuses_count_or_bits_that_disagree),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
