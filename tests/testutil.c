/*
 * Helpers shared by the tests (see testutil.h). nftw() walks depth first, so
 * a directory is removed after its contents; FTW_PHYS removes a symlink
 * rather than what it points to.
 */
#include "tests/testutil.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
