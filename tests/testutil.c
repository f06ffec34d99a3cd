/*
 * Helpers shared by the tests (see testutil.h). nftw() walks depth first, so
 * a directory is removed after its contents; FTW_PHYS removes a symlink
 * rather than what it points to.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tests/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "index/format/segment.h"

#define TEST_TMP_TEMPLATE "/tmp/xun-test-XXXXXX"
#define TEST_RMTREE_FDS 16 /* directories nftw may hold open at once */

char *test_mkdtemp(void)
{
    char *path = strdup(TEST_TMP_TEMPLATE);

    if (!path)
        return NULL;
    if (!mkdtemp(path)) {
        free(path);
        return NULL;
    }
    return path;
}

static int rmtree_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    if (remove(path) != 0)
        perror(path); /* keep going: remove as much as we can */
    return 0;
}

void test_rmtree(const char *dir)
{
    if (!dir)
        return;
    nftw(dir, rmtree_one, TEST_RMTREE_FDS, FTW_DEPTH | FTW_PHYS);
}

int test_dir_setup(void **state)
{
    *state = test_mkdtemp();
    return *state ? 0 : -1;
}

int test_dir_teardown(void **state)
{
    test_rmtree(*state);
    free(*state);
    return 0;
}

unsigned char *test_read_file(const char *path, size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY);

    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    unsigned char *data = malloc((size_t)st.st_size + 1);
    assert_non_null(data);
    assert_int_equal(read(fd, data, (size_t)st.st_size), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return data;
}

void test_write_file(const char *path, const unsigned char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

uint64_t test_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void test_sleep_ms(unsigned ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        continue;
}

uint32_t test_find_id(const struct segment *seg, const char *id, size_t len)
{
    struct xerr err = { 0 };
    uint32_t docid;
    int rc = segment_find_id(seg, id, len, &docid, &err);

    if (rc != XE_NOTFOUND)
        assert_ok(rc, &err);
    return docid;
}

void test_segment_doc(const struct segment *seg, uint32_t docid, struct segment_doc *out)
{
    struct xerr err = { 0 };

    assert_ok(segment_doc(seg, docid, out, &err), &err);
}
