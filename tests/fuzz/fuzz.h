/*
 * What every fuzz target shares: the libFuzzer entry points, a check that
 * aborts with a message (libFuzzer and tests/fuzz/regress.c both treat an
 * abort as a failed input and keep the input), and a scratch directory made
 * once per process and removed at exit.
 *
 * Header only, so that a target is one .c file linked with the library:
 * with libFuzzer (tests/fuzz/run.sh) or with regress.c (tests/fuzz/regress.sh).
 */
#ifndef XUN_TESTS_FUZZ_FUZZ_H
#define XUN_TESTS_FUZZ_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An invariant of the code under test: on failure, say which and where, then abort. */
#define FUZZ_CHECK(cond, ...)                                                                 \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);          \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fputc('\n', stderr);                                                              \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

/* Files a target makes in its scratch directory (removed at exit). */
#define FUZZ_MAX_FILES 8

#define FUZZ_UNUSED __attribute__((unused))

static FUZZ_UNUSED char fuzz_dir[256];
static FUZZ_UNUSED char fuzz_files[FUZZ_MAX_FILES][320];
static FUZZ_UNUSED size_t fuzz_n_files;

static FUZZ_UNUSED void fuzz_cleanup(void)
{
    char side[340];

    for (size_t i = 0; i < fuzz_n_files; i++) {
        unlink(fuzz_files[i]);
        snprintf(side, sizeof side, "%s.tmp", fuzz_files[i]); /* fsutil.h writes these */
        unlink(side);
    }
    if (fuzz_dir[0])
        rmdir(fuzz_dir);
}

/*
 * The per-process scratch directory: under $TMPDIR, else /dev/shm (no disk
 * writes for files rewritten on every input), else /tmp. A crash ends the
 * process with _Exit and leaves it behind: it is named xun-fuzz-*.
 */
static FUZZ_UNUSED const char *fuzz_tmpdir(void)
{
    if (fuzz_dir[0])
        return fuzz_dir;
    const char *base = getenv("TMPDIR");
    if (!base || !*base || access(base, W_OK) != 0)
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s/xun-fuzz-XXXXXX", base);
    if (!mkdtemp(fuzz_dir)) {
        perror(fuzz_dir);
        abort();
    }
    atexit(fuzz_cleanup);
    return fuzz_dir;
}

/* A path in the scratch directory, removed at exit; the string lives as long as the process. */
static FUZZ_UNUSED const char *fuzz_path(const char *name)
{
    FUZZ_CHECK(fuzz_n_files < FUZZ_MAX_FILES, "too many scratch files");
    char *p = fuzz_files[fuzz_n_files++];
    snprintf(p, sizeof fuzz_files[0], "%s/%s", fuzz_tmpdir(), name);
    return p;
}

/* Replaces the file at path with data. */
static FUZZ_UNUSED void fuzz_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    FUZZ_CHECK(f != NULL, "cannot create %s", path);
    FUZZ_CHECK(len == 0 || fwrite(data, 1, len, f) == len, "cannot write %s", path);
    FUZZ_CHECK(fclose(f) == 0, "cannot close %s", path);
}

#endif
