/*
 * Bulk loader (see bulkload.h). The progress bar redraws at most ten times
 * a second from the bytes read against the files' total size; standard
 * input has no size, so it shows counts only.
 */
#include "server/bulkload.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "index/error.h"
#include "index/index.h"
#include "index/limits.h"
#include "index/memindex.h"
#include "server/docjson.h"
#include "server/respond.h"

#define PROGRESS_BAR_WIDTH 30
#define PROGRESS_INTERVAL_NS 100000000ull

struct loader {
    struct index *ix;
    struct memindex *mi;
    struct bulkload_stats *stats;
    uint64_t total_bytes; /* 0 when unknown */
    uint64_t start_ns, last_draw_ns;
    bool progress;
};

static void draw_progress(struct loader *ld, bool final)
{
    uint64_t now = now_ns();

    if (!ld->progress || (!final && now - ld->last_draw_ns < PROGRESS_INTERVAL_NS))
        return;
    ld->last_draw_ns = now;
    double secs = (double)(now - ld->start_ns) / 1e9;
    double mb_s = secs > 0 ? (double)ld->stats->bytes / 1e6 / secs : 0;
    if (ld->total_bytes) {
        double frac = (double)ld->stats->bytes / (double)ld->total_bytes;
        if (frac > 1)
            frac = 1;
        int filled = (int)(frac * PROGRESS_BAR_WIDTH);
        char bar[PROGRESS_BAR_WIDTH + 1];
        for (int i = 0; i < PROGRESS_BAR_WIDTH; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[PROGRESS_BAR_WIDTH] = '\0';
        fprintf(stderr, "\r[%s] %3d%%  %llu docs  %.1f MB/s ", bar, (int)(frac * 100),
                (unsigned long long)ld->stats->docs, mb_s);
    } else {
        fprintf(stderr, "\r%llu docs  %.1f MB/s ", (unsigned long long)ld->stats->docs, mb_s);
    }
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
}

static int flush_segment(struct loader *ld, struct xerr *err)
{
    char path[4096];
    int rc;

    if (!memindex_n_docs(ld->mi))
        return XE_OK;
    rc = index_reserve_segment(ld->ix, path, sizeof path, err);
    if (!rc)
        rc = memindex_write(ld->mi, path, true, err);
    if (!rc)
        rc = index_commit_segment(ld->ix, path, err);
    if (rc)
        return rc;
    ld->stats->segments++;
    memindex_free(ld->mi);
    ld->mi = memindex_new();
    return ld->mi ? XE_OK : xerr_set(err, XE_NOMEM, "out of memory");
}

static int load_stream(struct loader *ld, FILE *in, const char *name, FILE *errors,
                       struct xerr *err)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t line_no = 0;
    int rc = XE_OK;

    while (!rc && (n = getline(&line, &cap, in)) >= 0) {
        line_no++;
        ld->stats->bytes += (uint64_t)n;
        size_t len = (size_t)n;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' ||
                       line[len - 1] == '\t'))
            len--;
        if (!len)
            continue;
        struct xerr line_err = { 0 };
        struct doc_fields d;
        json_t *root;
        if (docjson_parse(line, len, &root, &d, &line_err) ||
            memindex_add(ld->mi, &d, &line_err)) {
            if (line_err.code == XE_NOMEM) {
                rc = xerr_set(err, XE_NOMEM, "%s:%llu: %s", name, (unsigned long long)line_no,
                              line_err.msg);
            } else {
                ld->stats->bad_lines++;
                if (errors)
                    fprintf(errors, "%s%s:%llu: %s\n", ld->progress ? "\r" : "", name,
                            (unsigned long long)line_no, line_err.msg);
            }
            json_decref(root);
            continue;
        }
        json_decref(root);
        ld->stats->docs++;
        if (memindex_bytes(ld->mi) >= MEMINDEX_FLUSH_BYTES)
            rc = flush_segment(ld, err);
        draw_progress(ld, false);
    }
    if (!rc && ferror(in))
        rc = xerr_set(err, XE_IO, "%s: read error", name);
    free(line);
    return rc;
}

int bulkload_files(struct index *ix, char *const *files, int n_files, bool progress,
                   FILE *errors, struct bulkload_stats *stats, struct xerr *err)
{
    struct loader ld = { .ix = ix, .stats = stats, .progress = progress,
                         .start_ns = now_ns() };
    int rc = XE_OK;

    memset(stats, 0, sizeof *stats);
    for (int i = 0; i < n_files; i++) {
        struct stat st;
        if (strcmp(files[i], "-") != 0 && stat(files[i], &st) == 0)
            ld.total_bytes += (uint64_t)st.st_size;
    }
    ld.mi = memindex_new();
    if (!ld.mi)
        return xerr_set(err, XE_NOMEM, "out of memory");
    for (int i = 0; i < n_files && !rc; i++) {
        bool is_stdin = !strcmp(files[i], "-");
        FILE *in = is_stdin ? stdin : fopen(files[i], "rb");
        if (!in) {
            rc = xerr_set(err, XE_IO, "%s: cannot open", files[i]);
            break;
        }
        rc = load_stream(&ld, in, is_stdin ? "<stdin>" : files[i], errors, err);
        if (!is_stdin)
            fclose(in);
    }
    if (!rc)
        rc = flush_segment(&ld, err);
    draw_progress(&ld, true);
    memindex_free(ld.mi);
    return rc;
}
