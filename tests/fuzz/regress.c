/*
 * Runs a fuzz target over saved inputs, without libFuzzer: for `make test`
 * (tests/fuzz/regress.sh), built with gcc under ASan and UBSan.
 *
 *   regress_<target> DIR_OR_FILE...
 *
 * Calls LLVMFuzzerInitialize() when the target has one, then
 * LLVMFuzzerTestOneInput() on every regular file of each directory (sorted
 * by name, so runs repeat) and on each file named. Prints
 * "fuzz regress: N inputs"; exits non-zero when an argument cannot be read.
 * A failing input aborts or dies in a sanitizer, which exits non-zero too;
 * a death callback and a SIGABRT handler first name the input.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf, scandir */
#endif
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The target's entry points; weak: a target without LLVMFuzzerInitialize links too. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* From the sanitizers' runtime (sanitizer/common_interface_defs.h); weak, so that
 * regress.c also links without sanitizers (for a coverage build). */
void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

#define REGRESS_MAX_INPUT ((size_t)64 << 20)

static const char *current_input;

static void name_input(void)
{
    if (!current_input)
        return;
    /* async-signal-safe: no stdio */
    static const char head[] = "fuzz regress: FAILED on input ";
    ssize_t r = write(2, head, sizeof head - 1);
    r = write(2, current_input, strlen(current_input));
    r = write(2, "\n", 1);
    (void)r;
}

static void on_abort(int sig)
{
    name_input();
    signal(sig, SIG_DFL);
    raise(sig);
}

static int run_file(const char *path, size_t *n_inputs)
{
    FILE *f = fopen(path, "rb");
    struct stat st;

    if (!f || fstat(fileno(f), &st) != 0) {
        fprintf(stderr, "fuzz regress: %s: %s\n", path, strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    if ((size_t)st.st_size > REGRESS_MAX_INPUT) {
        fprintf(stderr, "fuzz regress: %s: %lld bytes is too large\n", path,
                (long long)st.st_size);
        fclose(f);
        return -1;
    }
    size_t len = (size_t)st.st_size;
    /* exactly len bytes (at least one, never NULL), so ASan sees any read past the input */
    uint8_t *data = malloc(len ? len : 1);
    if (!data || fread(data, 1, len, f) != len) {
        fprintf(stderr, "fuzz regress: %s: cannot read\n", path);
        free(data);
        fclose(f);
        return -1;
    }
    fclose(f);
    current_input = path;
    LLVMFuzzerTestOneInput(data, len);
    current_input = NULL;
    free(data);
    (*n_inputs)++;
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int only_files(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

static int run_dir(const char *dir, size_t *n_inputs)
{
    struct dirent **names;
    int n = scandir(dir, &names, only_files, by_name);
    int rc = 0;

    if (n < 0) {
        fprintf(stderr, "fuzz regress: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char *path = NULL;
        struct stat st;
        if (asprintf(&path, "%s/%s", dir, names[i]->d_name) < 0) {
            rc = -1;
        } else if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && run_file(path, n_inputs)) {
            rc = -1;
        }
        free(path);
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    size_t n_inputs = 0;
    int rc = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    if (__sanitizer_set_death_callback)
        __sanitizer_set_death_callback(name_input);
    signal(SIGABRT, on_abort);
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "fuzz regress: %s: %s\n", argv[i], strerror(errno));
            rc = 1;
        } else if (S_ISDIR(st.st_mode) ? run_dir(argv[i], &n_inputs)
                                       : run_file(argv[i], &n_inputs)) {
            rc = 1;
        }
    }
    printf("fuzz regress: %zu inputs\n", n_inputs);
    return rc;
}
