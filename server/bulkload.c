/*
 * Bulk loader (see bulkload.h). Workers share nothing but atomic counters
 * for the progress bar, which the main thread redraws at most ten times a
 * second from the bytes read against the files' total size (standard input
 * has no size: counts only).
 */
#include "server/bulkload.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "index/error.h"
#include "index/index.h"
#include "index/limits.h"
#include "index/memindex.h"
#include "index/merge.h"
#include "server/docjson.h"
#include "server/respond.h"

#define PROGRESS_BAR_WIDTH 30
#define PROGRESS_INTERVAL_NS 100000000ull
#define BULKLOAD_MAX_THREADS 64
/* Below this a file is not worth cutting into parts. */
#define BULKLOAD_MIN_PART_BYTES (1u << 20)

/* Shared by all workers: what the progress bar shows. */
struct progress {
    atomic_uint_fast64_t bytes, docs;
    uint64_t total_bytes; /* 0 when unknown */
    uint64_t start_ns, last_draw_ns;
    bool enabled;
};

/* One worker's share of the input, and what it made. */
struct part {
    struct index *ix;
    struct progress *progress;
    FILE *errors;
    const char *name; /* for messages */
    FILE *in;         /* stdin, or the file positioned at start */
    uint64_t start, end; /* byte range; end 0: to the end of the stream */
    uint64_t first_line; /* number of the part's first line */
    size_t flush_bytes;
    char **segments; /* written, not yet committed, in order */
    uint32_t n_segments;
    uint64_t docs, bad_lines;
    int rc;
    struct xerr err;
    atomic_bool finished;
};

static void draw_progress(struct progress *p, bool final)
{
    uint64_t now = now_ns();

    if (!p->enabled || (!final && now - p->last_draw_ns < PROGRESS_INTERVAL_NS))
        return;
    p->last_draw_ns = now;
    uint64_t bytes = atomic_load(&p->bytes), docs = atomic_load(&p->docs);
    double secs = (double)(now - p->start_ns) / 1e9;
    double mb_s = secs > 0 ? (double)bytes / 1e6 / secs : 0;
    if (p->total_bytes) {
        double frac = (double)bytes / (double)p->total_bytes;
        if (frac > 1)
            frac = 1;
        int filled = (int)(frac * PROGRESS_BAR_WIDTH);
        char bar[PROGRESS_BAR_WIDTH + 1];
        for (int i = 0; i < PROGRESS_BAR_WIDTH; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[PROGRESS_BAR_WIDTH] = '\0';
        fprintf(stderr, "\r[%s] %3d%%  %llu docs  %.1f MB/s ", bar, (int)(frac * 100),
                (unsigned long long)docs, mb_s);
    } else {
        fprintf(stderr, "\r%llu docs  %.1f MB/s ", (unsigned long long)docs, mb_s);
    }
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
}

/* The bar of the merge that ends a load (on a terminal only). */
struct merge_bar {
    uint32_t n_segments;
    uint64_t last_draw_ns;
};

static void draw_merge(void *ctx, double done)
{
    struct merge_bar *m = ctx;
    uint64_t now = now_ns();

    if (done < 1 && now - m->last_draw_ns < PROGRESS_INTERVAL_NS)
        return;
    m->last_draw_ns = now;
    char bar[PROGRESS_BAR_WIDTH + 1];
    int filled = (int)(done * PROGRESS_BAR_WIDTH);
    for (int i = 0; i < PROGRESS_BAR_WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[PROGRESS_BAR_WIDTH] = '\0';
    fprintf(stderr, "\r[%s] %3d%%  merging %u segments into one ", bar, (int)(done * 100),
            m->n_segments);
    fflush(stderr);
}

/* Writes the part's in-memory index as a segment file, to commit later. */
static int part_flush(struct part *pt, struct memindex **mi)
{
    char path[4096];
    int rc;

    if (!memindex_n_docs(*mi))
        return XE_OK;
    char **grown = realloc(pt->segments, (pt->n_segments + 1) * sizeof *grown);
    if (!grown)
        return xerr_set(&pt->err, XE_NOMEM, "out of memory");
    pt->segments = grown;
    rc = index_reserve_segment(pt->ix, path, sizeof path, &pt->err);
    if (!rc)
        rc = memindex_write(*mi, path, true, &pt->err);
    if (rc)
        return rc;
    if (!(pt->segments[pt->n_segments] = strdup(path)))
        return xerr_set(&pt->err, XE_NOMEM, "out of memory");
    pt->n_segments++;
    memindex_free(*mi);
    *mi = memindex_new(index_tokenize_flags(pt->ix));
    return *mi ? XE_OK : xerr_set(&pt->err, XE_NOMEM, "out of memory");
}

static void *part_main(void *arg)
{
    struct part *pt = arg;
    struct memindex *mi = memindex_new(index_tokenize_flags(pt->ix));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t at = pt->start, line_no = pt->first_line - 1;

    if (!mi) {
        pt->rc = xerr_set(&pt->err, XE_NOMEM, "out of memory");
        atomic_store(&pt->finished, true);
        return NULL;
    }
    while (!pt->rc && (!pt->end || at < pt->end) && (n = getline(&line, &cap, pt->in)) >= 0) {
        line_no++;
        at += (uint64_t)n;
        atomic_fetch_add(&pt->progress->bytes, (uint64_t)n);
        size_t len = (size_t)n;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' ||
                       line[len - 1] == '\t'))
            len--;
        if (!len)
            continue;
        struct xerr line_err = { 0 };
        struct doc_fields d;
        json_t *root;
        if (docjson_parse(line, len, &root, &d, &line_err) || memindex_add(mi, &d, &line_err)) {
            if (line_err.code == XE_NOMEM) {
                pt->rc = xerr_set(&pt->err, XE_NOMEM, "%s:%llu: %s", pt->name,
                                  (unsigned long long)line_no, line_err.msg);
            } else {
                pt->bad_lines++;
                if (pt->errors)
                    fprintf(pt->errors, "%s%s:%llu: %s\n", pt->progress->enabled ? "\r" : "",
                            pt->name, (unsigned long long)line_no, line_err.msg);
            }
            json_decref(root);
            continue;
        }
        json_decref(root);
        pt->docs++;
        atomic_fetch_add(&pt->progress->docs, 1);
        if (memindex_bytes(mi) >= pt->flush_bytes)
            pt->rc = part_flush(pt, &mi);
    }
    if (!pt->rc && ferror(pt->in))
        pt->rc = xerr_set(&pt->err, XE_IO, "%s: read error", pt->name);
    if (!pt->rc)
        pt->rc = part_flush(pt, &mi);
    memindex_free(mi);
    free(line);
    atomic_store(&pt->finished, true);
    return NULL;
}

/*
 * Cuts a file into up to n parts at line starts; fills starts[] (n + 1
 * entries, the last the size) and the line number each part begins with.
 */
static int cut_file(FILE *f, uint64_t size, int n, uint64_t *starts, uint64_t *first_lines)
{
    char buf[1 << 16];
    uint64_t at = 0, lines = 1;
    int made = 1;

    starts[0] = 0;
    first_lines[0] = 1;
    rewind(f);
    /* one pass counting lines; a part starts at the first line start past each cut */
    while (made < n) {
        size_t got = fread(buf, 1, sizeof buf, f);
        if (!got)
            break;
        for (size_t i = 0; i < got && made < n; i++) {
            if (buf[i] != '\n')
                continue;
            lines++;
            if (at + i + 1 >= size * (uint64_t)made / (uint64_t)n && at + i + 1 < size) {
                starts[made] = at + i + 1;
                first_lines[made++] = lines;
            }
        }
        at += got;
    }
    starts[made] = size;
    return ferror(f) ? -1 : made;
}

/* Loads one file (or stdin) with up to n_threads workers; commits its segments in order. */
static int load_file(struct index *ix, const char *path, int n_threads, size_t memory_bytes,
                     struct progress *prog, FILE *errors, struct bulkload_stats *stats,
                     struct xerr *err)
{
    bool is_stdin = !strcmp(path, "-");
    struct stat st;
    uint64_t starts[BULKLOAD_MAX_THREADS + 1] = { 0 }, first_lines[BULKLOAD_MAX_THREADS + 1] = { 1 };
    struct part parts[BULKLOAD_MAX_THREADS];
    pthread_t threads[BULKLOAD_MAX_THREADS];
    bool started[BULKLOAD_MAX_THREADS] = { false };
    int n = 1, rc = XE_OK;

    FILE *first = is_stdin ? stdin : fopen(path, "rb");
    if (!first)
        return xerr_set(err, XE_IO, "%s: cannot open", path);
    if (!is_stdin && fstat(fileno(first), &st) == 0 && st.st_size > 0) {
        uint64_t size = (uint64_t)st.st_size, most = size / BULKLOAD_MIN_PART_BYTES + 1;
        n = cut_file(first, size, most < (uint64_t)n_threads ? (int)most : n_threads, starts,
                     first_lines);
        if (n < 0) {
            fclose(first);
            return xerr_set(err, XE_IO, "%s: read error", path);
        }
    }
    for (int i = 0; i < n; i++) {
        parts[i] = (struct part){ .ix = ix, .progress = prog, .errors = errors,
                                  .name = is_stdin ? "<stdin>" : path, .start = starts[i],
                                  .end = is_stdin ? 0 : starts[i + 1],
                                  .first_line = first_lines[i],
                                  .flush_bytes = memory_bytes / (size_t)n };
        parts[i].in = i == 0 ? first : fopen(path, "rb");
        if (!parts[i].in || (!is_stdin && fseeko(parts[i].in, (off_t)starts[i], SEEK_SET)))
            parts[i].rc = xerr_set(&parts[i].err, XE_IO, "%s: cannot open", path);
        else if (pthread_create(&threads[i], NULL, part_main, &parts[i]) != 0)
            parts[i].rc = xerr_set(&parts[i].err, XE_IO, "cannot start a thread");
        else
            started[i] = true;
    }
    /* the main thread draws the bar while the workers run */
    for (int i = 0; i < n; i++) {
        while (started[i] && !atomic_load(&parts[i].finished)) {
            draw_progress(prog, false);
            usleep(20000);
        }
        if (started[i])
            pthread_join(threads[i], NULL);
    }
    /* in input order, so a later line with the same id replaces an earlier one */
    for (int i = 0; i < n; i++) {
        struct part *pt = &parts[i];
        if (!rc && pt->rc)
            rc = xerr_set(err, pt->rc, "%s", pt->err.msg);
        for (uint32_t k = 0; k < pt->n_segments; k++) {
            if (!rc)
                rc = index_commit_segment(ix, pt->segments[k], err);
            if (rc)
                unlink(pt->segments[k]); /* never committed */
            free(pt->segments[k]);
        }
        free(pt->segments);
        stats->docs += pt->docs;
        stats->bad_lines += pt->bad_lines;
        if (pt->in && pt->in != stdin)
            fclose(pt->in);
    }
    return rc;
}

int bulkload_files(struct index *ix, char *const *files, int n_files,
                   const struct bulkload_options *opt, struct bulkload_stats *stats,
                   struct xerr *err)
{
    bool progress = opt->progress;
    struct progress prog = { .enabled = progress, .start_ns = now_ns() };
    int threads = opt->threads, rc = XE_OK;
    size_t memory_bytes = opt->memory_bytes ? opt->memory_bytes : BULKLOAD_MEMORY_DEFAULT;

    memset(stats, 0, sizeof *stats);
    if (threads <= 0)
        threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1)
        threads = 1;
    if (threads > BULKLOAD_MAX_THREADS)
        threads = BULKLOAD_MAX_THREADS;
    atomic_init(&prog.bytes, 0);
    atomic_init(&prog.docs, 0);
    for (int i = 0; i < n_files; i++) {
        struct stat st;
        if (strcmp(files[i], "-") != 0 && stat(files[i], &st) == 0)
            prog.total_bytes += (uint64_t)st.st_size;
    }
    for (int i = 0; i < n_files && !rc; i++)
        rc = load_file(ix, files[i], threads, memory_bytes, &prog, opt->errors, stats, err);
    stats->bytes = atomic_load(&prog.bytes);
    draw_progress(&prog, true);
    /* the parts were built in parallel; queries want them as one segment */
    struct snapshot *snap = index_snapshot(ix);
    uint32_t n_segments = snap->n_segments;
    snapshot_release(snap);
    if (!rc && n_segments > 1) {
        struct merge_bar bar = { .n_segments = n_segments };
        struct merge_progress mp = { draw_merge, &bar };
        rc = index_compact(ix, progress ? &mp : NULL, err);
        if (progress)
            fputc('\n', stderr);
    }
    snap = index_snapshot(ix);
    stats->segments = snap->n_segments;
    snapshot_release(snap);
    return rc;
}
