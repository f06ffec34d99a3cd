/*
 * Small helpers shared by the cmocka tests: assert_ok, a fresh scratch
 * directory per test group and its removal, whole files, a clock. Every
 * test binary links testutil.c.
 */
#ifndef XUN_TESTS_TESTUTIL_H
#define XUN_TESTS_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "index/base/error.h"

/* Asserts that call returns XE_OK, printing err's message when it does not
 * (for files that include cmocka.h). */
#define assert_ok(call, err)                                                                  \
    do {                                                                                      \
        int rc_ = (call);                                                                     \
        if (rc_)                                                                              \
            print_error("%s: %s\n", #call, (err)->msg);                                       \
        assert_int_equal(rc_, XE_OK);                                                         \
    } while (0)

/*
 * Makes a new empty directory /tmp/xun-test-XXXXXX (mkdtemp) and returns its
 * path, which the caller frees; NULL on failure.
 */
char *test_mkdtemp(void);

/* Removes dir and everything under it, not following symlinks. NULL does nothing. */
void test_rmtree(const char *dir);

/* cmocka setup and teardown: *state is a fresh scratch directory, removed after. */
int test_dir_setup(void **state);
int test_dir_teardown(void **state);

/* The whole file (cmocka-asserted; the caller frees), and a file made of data. */
unsigned char *test_read_file(const char *path, size_t *len);
void test_write_file(const char *path, const unsigned char *data, size_t len);

/* The docid of id in seg, DOCID_END when absent; fails the test on damage. */
struct segment;
uint32_t test_find_id(const struct segment *seg, const char *id, size_t len);
/* seg's document entry; fails the test on damage. */
struct segment_doc;
void test_segment_doc(const struct segment *seg, uint32_t docid, struct segment_doc *out);

/*
 * How long a test waits for something that must happen (a write becoming
 * searchable, a reply, a child exiting) before it calls it a hang. Only a
 * hang detector, generous so that a loaded machine never trips it: no test
 * decides pass or fail by how fast something was (speed is `make bench`'s
 * business, e.g. bench_writes' write-to-visible figure against one second).
 */
#define TEST_HANG_MS 30000

/* Milliseconds on the monotonic clock (for hang detectors, never for a
 * pass/fail on speed), and a sleep that EINTR does not cut short. */
uint64_t test_now_ms(void);
void test_sleep_ms(unsigned ms);

#endif
