/*
 * Bulk loader (see bulkload.h). With one thread, that thread parses and
 * indexes. With more, the input is cut into chunks at line starts, dealt
 * round-robin to preparing threads (JSON parsing, tokenizing, hashing: the
 * work that shares nothing), and one indexing thread adds their batches to
 * one memindex in input order. One memindex means one segment and no merge
 * when the load fits in memory; the indexer's own work (looking terms up and
 * appending to lists) is about as long as a preparer's, so two threads come
 * close to halving the load.
 *
 * Workers share nothing else but atomic counters for the progress bar, which
 * is redrawn at most ten times a second from the bytes read against the
 * files' total size (standard input has no size: counts only).
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

#include "index/write/docprep.h"
#include "index/base/error.h"
#include "index/index.h"
#include "index/base/limits.h"
#include "index/write/memindex.h"
#include "index/write/merge.h"
#include "server/docjson.h"
#include "server/respond.h"

#define PROGRESS_BAR_WIDTH 30
#define PROGRESS_INTERVAL_NS 100000000ull
#define BULKLOAD_MAX_THREADS 64
/* The input is dealt to preparing threads in chunks of this size. */
#define BULKLOAD_CHUNK_BYTES (4u << 20)
/* A preparer hands over a batch at this many documents or bytes prepared
 * (a token takes 32 bytes: a Chinese article about 25 times its size)... */
#define BULKLOAD_BATCH_DOCS 512
#define BULKLOAD_BATCH_BYTES ((size_t)2 << 20)
/* ...and can be this many batches ahead of the indexer. */
#define BULKLOAD_QUEUE_BATCHES 4

/* Shared by all workers: what the progress bar shows. */
struct progress {
    atomic_uint_fast64_t bytes, docs;
    uint64_t total_bytes; /* 0 when unknown */
    uint64_t start_ns, last_draw_ns;
    bool enabled;
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

/* What a load of one file makes: its memindex, written out as segments. */
struct output {
    struct index *ix;
    struct memindex *mi;
    size_t flush_bytes;
    bool parallel_write; /* more than one thread was asked for */
    char **segments; /* written, not yet committed, in order */
    uint32_t n_segments;
    uint64_t docs;
};

/* A new memindex to fill. */
static int output_start(struct output *out, struct xerr *err)
{
    if (!(out->mi = memindex_new(index_tokenize_flags(out->ix))))
        return xerr_set(err, XE_NOMEM, "out of memory");
    memindex_set_parallel_write(out->mi, out->parallel_write);
    return XE_OK;
}

/* Writes the memindex as a segment file, to commit later, and starts a new one. */
static int output_flush(struct output *out, struct xerr *err)
{
    char path[4096];
    int rc;

    if (!memindex_n_docs(out->mi))
        return XE_OK;
    char **grown = realloc(out->segments, (out->n_segments + 1) * sizeof *grown);
    if (!grown)
        return xerr_set(err, XE_NOMEM, "out of memory");
    out->segments = grown;
    rc = index_reserve_segment(out->ix, path, sizeof path, err);
    if (!rc)
        rc = memindex_write(out->mi, path, true, err);
    if (rc)
        return rc;
    if (!(out->segments[out->n_segments] = strdup(path)))
        return xerr_set(err, XE_NOMEM, "out of memory");
    out->n_segments++;
    memindex_free(out->mi);
    return output_start(out, err);
}

/* Writes a segment once the memindex holds the memory budget. */
static int output_maybe_flush(struct output *out, struct xerr *err)
{
    return memindex_bytes(out->mi) >= out->flush_bytes ? output_flush(out, err) : XE_OK;
}

/* A byte range of the input: lines that start in [start, end). */
struct chunk {
    uint64_t start, end; /* end 0: to the end of the stream */
    uint64_t first_line; /* the number of its first line */
};

/* Where lines come from and where bad ones are reported. */
struct line_source {
    FILE *in;
    const char *name;
    FILE *errors;
    struct progress *progress;
    char *line;
    size_t cap;
};

/* What to do with each document read: 0, a bad line (err says why), or -1 to stop. */
typedef int (*doc_fn)(void *ctx, const struct doc_fields *d, struct xerr *err);

/* Parses each line of the chunk and hands it to fn; bad lines are counted and reported. */
static int read_chunk(struct line_source *src, const struct chunk *ch, doc_fn fn, void *ctx,
                      uint64_t *bad_lines, struct xerr *err)
{
    uint64_t at = ch->start, line_no = ch->first_line - 1;
    ssize_t n;

    /* only a file that was cut is sought in (a pipe named by path cannot be) */
    if (ch->end && fseeko(src->in, (off_t)ch->start, SEEK_SET))
        return xerr_set(err, XE_IO, "%s: cannot seek", src->name);
    while ((!ch->end || at < ch->end) && (n = getline(&src->line, &src->cap, src->in)) >= 0) {
        line_no++;
        at += (uint64_t)n;
        atomic_fetch_add(&src->progress->bytes, (uint64_t)n);
        size_t len = (size_t)n;
        char *line = src->line;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' ||
                       line[len - 1] == '\t'))
            len--;
        if (!len)
            continue;
        struct xerr line_err = { 0 };
        struct doc_fields d;
        json_t *root;
        int rc = docjson_parse(line, len, &root, &d, &line_err);
        if (!rc)
            rc = fn(ctx, &d, &line_err);
        json_decref(root);
        if (rc < 0) /* fn stopped the load and said why in its own error */
            return err->code ? (int)err->code : xerr_set(err, XE_IO, "%s: stopped", src->name);
        if (rc && line_err.code == XE_NOMEM)
            return xerr_set(err, XE_NOMEM, "%s:%llu: %s", src->name,
                            (unsigned long long)line_no, line_err.msg);
        if (rc) {
            (*bad_lines)++;
            if (src->errors)
                fprintf(src->errors, "%s%s:%llu: %s\n", src->progress->enabled ? "\r" : "",
                        src->name, (unsigned long long)line_no, line_err.msg);
            continue;
        }
        atomic_fetch_add(&src->progress->docs, 1);
    }
    return ferror(src->in) ? xerr_set(err, XE_IO, "%s: read error", src->name) : XE_OK;
}

/* ---- one thread: parse and index ---- */

struct direct {
    struct output *out;
    struct progress *progress;
    struct xerr *err; /* for a failed flush */
};

static int index_doc(void *ctx, const struct doc_fields *d, struct xerr *line_err)
{
    struct direct *dr = ctx;

    if (memindex_add(dr->out->mi, d, line_err))
        return 1;
    dr->out->docs++;
    draw_progress(dr->progress, false);
    return output_maybe_flush(dr->out, dr->err) ? -1 : 0;
}

/* ---- more threads: preparers and one indexer ---- */

/* Prepared documents of one chunk, in order; a chunk may take several. */
struct batch {
    struct docprep_batch prep;
    bool chunk_end; /* the chunk's last */
};

/* A preparing thread, its chunks (every n_preparers-th), and its queue of batches. */
struct preparer {
    pthread_t thread;
    bool started;
    struct line_source src;
    const struct chunk *chunks;
    size_t n_chunks, first, stride;
    atomic_bool *stop; /* set by the indexer when it needs no more batches */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct batch batches[BULKLOAD_QUEUE_BATCHES];
    struct batch *ready[BULKLOAD_QUEUE_BATCHES]; /* filled, oldest first */
    struct batch *spare[BULKLOAD_QUEUE_BATCHES];
    size_t n_ready, n_spare;
    bool done; /* no more batches will come */

    struct batch *filling;
    uint64_t bad_lines;
    int rc;
    struct xerr err;
};

/* Hands a filled batch to the indexer and waits for an empty one; NULL to stop. */
static struct batch *hand_over(struct preparer *pp, struct batch *b)
{
    struct batch *next = NULL;

    pthread_mutex_lock(&pp->mu);
    if (b) {
        pp->ready[pp->n_ready++] = b;
        pthread_cond_broadcast(&pp->cv);
    }
    while (!pp->n_spare && !atomic_load(pp->stop))
        pthread_cond_wait(&pp->cv, &pp->mu);
    if (!atomic_load(pp->stop))
        next = pp->spare[--pp->n_spare];
    pthread_mutex_unlock(&pp->mu);
    if (next) {
        docprep_reset(&next->prep);
        next->chunk_end = false;
    }
    return next;
}

static int prepare_doc(void *ctx, const struct doc_fields *d, struct xerr *line_err)
{
    struct preparer *pp = ctx;

    if (docprep_add(&pp->filling->prep, d, line_err))
        return 1;
    const struct docprep_batch *b = &pp->filling->prep;
    if ((b->n_docs >= BULKLOAD_BATCH_DOCS || docprep_bytes(b) >= BULKLOAD_BATCH_BYTES) &&
        !(pp->filling = hand_over(pp, pp->filling)))
        return -1;
    return 0;
}

static void *preparer_main(void *arg)
{
    struct preparer *pp = arg;

    pp->filling = hand_over(pp, NULL);
    for (size_t c = pp->first; c < pp->n_chunks && pp->filling && !pp->rc; c += pp->stride) {
        pp->rc = read_chunk(&pp->src, &pp->chunks[c], prepare_doc, pp, &pp->bad_lines, &pp->err);
        if (pp->rc || !pp->filling)
            break;
        pp->filling->chunk_end = true;
        pp->filling = hand_over(pp, pp->filling);
    }
    pthread_mutex_lock(&pp->mu);
    pp->done = true;
    pthread_cond_broadcast(&pp->cv);
    pthread_mutex_unlock(&pp->mu);
    return NULL;
}

/* The preparer's next batch, in order; NULL when it ended early (failed or stopped). */
static struct batch *take_batch(struct preparer *pp)
{
    struct batch *b = NULL;

    pthread_mutex_lock(&pp->mu);
    while (!pp->n_ready && !pp->done)
        pthread_cond_wait(&pp->cv, &pp->mu);
    if (pp->n_ready) {
        b = pp->ready[0];
        memmove(pp->ready, pp->ready + 1, --pp->n_ready * sizeof *pp->ready);
    }
    pthread_mutex_unlock(&pp->mu);
    return b;
}

static void give_back(struct preparer *pp, struct batch *b)
{
    pthread_mutex_lock(&pp->mu);
    pp->spare[pp->n_spare++] = b;
    pthread_cond_broadcast(&pp->cv);
    pthread_mutex_unlock(&pp->mu);
}

/* Adds every chunk's batches in input order, flushing segments as memory fills. */
static int index_batches(struct preparer *pps, size_t n_preparers, size_t n_chunks,
                         struct output *out, struct progress *prog, struct xerr *err)
{
    for (size_t c = 0; c < n_chunks; c++) {
        struct preparer *pp = &pps[c % n_preparers];
        for (bool end = false; !end;) {
            struct batch *b = take_batch(pp);
            if (!b)
                return pp->rc ? xerr_set(err, pp->rc, "%s", pp->err.msg)
                              : xerr_set(err, XE_IO, "a preparing thread stopped early");
            int rc = memindex_add_batch(out->mi, &b->prep, err);
            out->docs += b->prep.n_docs;
            end = b->chunk_end;
            give_back(pp, b);
            if (!rc)
                rc = output_maybe_flush(out, err);
            if (rc)
                return rc;
            draw_progress(prog, false);
        }
    }
    return XE_OK;
}

/*
 * Cuts a file into chunks of about BULKLOAD_CHUNK_BYTES at line starts, and
 * numbers their first lines (one pass). Returns how many, or -1 on a read
 * error or no memory.
 */
static ssize_t cut_file(FILE *f, uint64_t size, struct chunk **out)
{
    size_t cap = (size_t)(size / BULKLOAD_CHUNK_BYTES) + 2, n = 1;
    struct chunk *chunks = calloc(cap, sizeof *chunks);
    char buf[1 << 16];
    uint64_t at = 0, lines = 1;

    if (!chunks)
        return -1;
    chunks[0] = (struct chunk){ .start = 0, .first_line = 1 };
    rewind(f);
    for (size_t got; (got = fread(buf, 1, sizeof buf, f)) > 0; at += got) {
        for (const char *p = buf, *end = buf + got; (p = memchr(p, '\n', (size_t)(end - p)));) {
            p++;
            lines++;
            uint64_t next = at + (uint64_t)(p - buf);
            if (next < size && next >= n * (uint64_t)BULKLOAD_CHUNK_BYTES && n + 1 < cap) {
                chunks[n - 1].end = next;
                chunks[n++] = (struct chunk){ .start = next, .first_line = lines };
            }
        }
    }
    chunks[n - 1].end = size;
    if (ferror(f)) {
        free(chunks);
        return -1;
    }
    *out = chunks;
    return (ssize_t)n;
}

/* Prepares on n_preparers threads and indexes on this one. */
static int load_pipelined(FILE *first, const char *path, const struct chunk *chunks,
                          size_t n_chunks, int n_preparers, struct output *out,
                          struct progress *prog, FILE *errors, uint64_t *bad_lines,
                          struct xerr *err)
{
    struct preparer pps[BULKLOAD_MAX_THREADS];
    atomic_bool stop;
    unsigned flags = index_tokenize_flags(out->ix);
    int rc = XE_OK, n = 0;

    atomic_init(&stop, false);
    for (; n < n_preparers && !rc; n++) {
        struct preparer *pp = &pps[n];
        *pp = (struct preparer){ .chunks = chunks, .n_chunks = n_chunks, .first = (size_t)n,
                                 .stride = (size_t)n_preparers, .stop = &stop,
                                 .src = { .in = n == 0 ? first : fopen(path, "rb"),
                                          .name = path, .errors = errors, .progress = prog } };
        pthread_mutex_init(&pp->mu, NULL);
        pthread_cond_init(&pp->cv, NULL);
        for (int i = 0; i < BULKLOAD_QUEUE_BATCHES; i++) {
            docprep_init(&pp->batches[i].prep, flags);
            pp->spare[pp->n_spare++] = &pp->batches[i];
        }
        if (!pp->src.in)
            rc = xerr_set(err, XE_IO, "%s: cannot open", path);
        else if (pthread_create(&pp->thread, NULL, preparer_main, pp) != 0)
            rc = xerr_set(err, XE_IO, "cannot start a thread");
        else
            pp->started = true;
    }
    /* the batches the preparers may hold come out of the memory budget */
    size_t queued = (size_t)n_preparers * BULKLOAD_QUEUE_BATCHES * BULKLOAD_BATCH_BYTES;
    out->flush_bytes = queued < out->flush_bytes / 2 ? out->flush_bytes - queued
                                                     : out->flush_bytes / 2;
    if (!rc)
        rc = index_batches(pps, (size_t)n_preparers, n_chunks, out, prog, err);
    atomic_store(&stop, true);
    for (int i = 0; i < n; i++) {
        struct preparer *pp = &pps[i];
        pthread_mutex_lock(&pp->mu);
        pthread_cond_broadcast(&pp->cv);
        pthread_mutex_unlock(&pp->mu);
        if (pp->started)
            pthread_join(pp->thread, NULL);
        if (!rc && pp->rc)
            rc = xerr_set(err, pp->rc, "%s", pp->err.msg);
        *bad_lines += pp->bad_lines;
        for (int k = 0; k < BULKLOAD_QUEUE_BATCHES; k++)
            docprep_fini(&pp->batches[k].prep);
        free(pp->src.line);
        if (pp->src.in && pp->src.in != first)
            fclose(pp->src.in);
        pthread_cond_destroy(&pp->cv);
        pthread_mutex_destroy(&pp->mu);
    }
    return rc;
}

/* Loads one file (or stdin) with n_threads threads; commits its segments in order. */
static int load_file(struct index *ix, const char *path, int n_threads, size_t memory_bytes,
                     struct progress *prog, FILE *errors, struct bulkload_stats *stats,
                     struct xerr *err)
{
    bool is_stdin = !strcmp(path, "-");
    struct output out = { .ix = ix, .flush_bytes = memory_bytes,
                          .parallel_write = n_threads > 1 };
    struct chunk whole = { .first_line = 1 }, *chunks = &whole;
    ssize_t n_chunks = 1;
    struct stat st;
    int rc = XE_OK;

    FILE *in = is_stdin ? stdin : fopen(path, "rb");
    if (!in)
        return xerr_set(err, XE_IO, "%s: cannot open", path);
    rc = output_start(&out, err);
    /* only a regular file can be cut (and sought in) */
    if (!rc && n_threads > 1 && !is_stdin && fstat(fileno(in), &st) == 0 &&
        S_ISREG(st.st_mode) && st.st_size > 0 &&
        (n_chunks = cut_file(in, (uint64_t)st.st_size, &chunks)) < 0)
        rc = xerr_set(err, XE_IO, "%s: read error or out of memory", path);
    if (!rc && n_threads > 1) {
        /* more preparers than chunks would idle */
        int n_preparers = n_threads - 1 < n_chunks ? n_threads - 1 : (int)n_chunks;
        rc = load_pipelined(in, is_stdin ? "<stdin>" : path, chunks, (size_t)n_chunks,
                            n_preparers, &out, prog, errors, &stats->bad_lines, err);
    } else if (!rc) {
        struct line_source src = { .in = in, .name = is_stdin ? "<stdin>" : path,
                                   .errors = errors, .progress = prog };
        struct direct dr = { &out, prog, err };
        rc = read_chunk(&src, &whole, index_doc, &dr, &stats->bad_lines, err);
        free(src.line);
    }
    if (!rc)
        rc = output_flush(&out, err);
    /* in input order, so a later line with the same id replaces an earlier one */
    for (uint32_t k = 0; k < out.n_segments; k++) {
        if (!rc)
            rc = index_commit_segment(ix, out.segments[k], err);
        if (rc)
            unlink(out.segments[k]); /* never committed */
        free(out.segments[k]);
    }
    free(out.segments);
    memindex_free(out.mi);
    if (chunks != &whole)
        free(chunks);
    stats->docs += out.docs;
    if (in != stdin)
        fclose(in);
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
