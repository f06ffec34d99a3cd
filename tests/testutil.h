/*
 * Small helpers shared by the cmocka tests: a fresh scratch directory per
 * test group and its removal. Every test binary links testutil.c.
 */
#ifndef XUN_TESTS_TESTUTIL_H
#define XUN_TESTS_TESTUTIL_H

/*
 * Makes a new empty directory /tmp/xun-test-XXXXXX (mkdtemp) and returns its
 * path, which the caller frees; NULL on failure.
 */
char *test_mkdtemp(void);

/* Removes dir and everything under it, not following symlinks. NULL does nothing. */
void test_rmtree(const char *dir);

#endif
