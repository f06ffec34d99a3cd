/*
 * Document store (format in docstore.h). The writer keeps records raw until
 * finish, because the dictionary must be trained on them before any is
 * compressed. Readers keep one decompression context per thread and one
 * digested dictionary per segment.
 */
#include "index/docstore.h"

#include <stdlib.h>
#include <string.h>
#define ZDICT_STATIC_LINKING_ONLY
#include <zdict.h>
#include <zstd.h>

#include "index/bytes.h"
#include "index/error.h"

#define DOCSTORE_MAX_SECTION ((size_t)1 << 40)
#define DOCSTORE_HEAD_BYTES 8

struct docstore_writer {
    struct buf raw;     /* the records back to back */
    struct buf lengths; /* size_t per record */
    uint32_t n;
};

struct docstore_writer *docstore_writer_new(void)
{
    struct docstore_writer *w = calloc(1, sizeof *w);

    if (!w)
        return NULL;
    buf_init(&w->raw, DOCSTORE_MAX_SECTION);
    buf_init(&w->lengths, DOCSTORE_MAX_SECTION);
    return w;
}

void docstore_writer_free(struct docstore_writer *w)
{
    if (!w)
        return;
    buf_fini(&w->raw);
    buf_fini(&w->lengths);
    free(w);
}

int docstore_writer_add(struct docstore_writer *w, const void *record, size_t len,
                        struct docstore_ref *ref, struct xerr *err)
{
    if (len > DOCSTORE_RAW_MAX || w->n == UINT32_MAX - 1)
        return xerr_set(err, XE_LIMIT, "document store: record of %zu bytes", len);
    if (buf_append(&w->raw, record, len) || buf_append(&w->lengths, &len, sizeof len))
        return xerr_set(err, XE_NOMEM, "document store: out of memory");
    ref->record = w->n++;
    return XE_OK;
}

size_t docstore_writer_bytes(const struct docstore_writer *w)
{
    return w->raw.len;
}

static size_t record_len(const struct docstore_writer *w, uint32_t i)
{
    size_t len;
    memcpy(&len, w->lengths.data + (size_t)i * sizeof len, sizeof len);
    return len;
}

/* Trains a dictionary on an even sample of the records; 0 bytes when it would not help. */
static size_t train_dict(const struct docstore_writer *w, void *dict, size_t cap)
{
    if (w->raw.len < DOCSTORE_DICT_MIN_INPUT || w->n < 64)
        return 0;
    size_t step = w->raw.len / DOCSTORE_DICT_SAMPLE_BYTES + 1;
    size_t n_samples = 0, total = 0, at = 0;
    size_t *sizes = malloc(sizeof *sizes * (w->n / step + 1));
    unsigned char *samples = malloc(DOCSTORE_DICT_SAMPLE_BYTES + DOCSTORE_RAW_MAX / 64);
    if (!sizes || !samples) {
        free(sizes);
        free(samples);
        return 0;
    }
    for (uint32_t i = 0; i < w->n; i++) {
        size_t len = record_len(w, i);
        if (i % step == 0 && total + len <= DOCSTORE_DICT_SAMPLE_BYTES) {
            memcpy(samples + total, w->raw.data + at, len);
            sizes[n_samples++] = len;
            total += len;
        }
        at += len;
    }
    ZDICT_fastCover_params_t params = { .k = 50, .d = 8, .steps = 0, .nbThreads = 1,
                                        .zParams = { .compressionLevel = DOCSTORE_ZSTD_LEVEL } };
    size_t got = ZDICT_trainFromBuffer_fastCover(dict, cap, samples, sizes, (unsigned)n_samples,
                                                 params);
    free(sizes);
    free(samples);
    return ZDICT_isError(got) ? 0 : got;
}

int docstore_writer_finish(struct docstore_writer *w, struct buf *out, struct xerr *err)
{
    unsigned char *dict = malloc(DOCSTORE_DICT_BYTES);
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    ZSTD_CDict *cdict = NULL;
    int rc = XE_OK;

    if (!dict || !cctx) {
        rc = xerr_set(err, XE_NOMEM, "document store: out of memory");
        goto out;
    }
    size_t dict_len = train_dict(w, dict, DOCSTORE_DICT_BYTES);
    if (dict_len && !(cdict = ZSTD_createCDict(dict, dict_len, DOCSTORE_ZSTD_LEVEL))) {
        rc = xerr_set(err, XE_NOMEM, "document store: out of memory");
        goto out;
    }
    size_t start = out->len;
    size_t table = DOCSTORE_HEAD_BYTES + dict_len;
    size_t frames = table + 8 * ((size_t)w->n + 1);
    buf_append_u32le(out, w->n);
    buf_append_u32le(out, (uint32_t)dict_len);
    buf_append(out, dict, dict_len);
    if (buf_reserve(out, frames - table)) {
        rc = xerr_set(err, XE_NOMEM, "document store: out of memory");
        goto out;
    }
    out->len = start + frames; /* the offsets are filled in as frames are written */
    size_t at = 0;
    for (uint32_t i = 0; i < w->n && !rc; i++) {
        size_t len = record_len(w, i), bound = ZSTD_compressBound(len);
        put_u64le(out->data + start + table + 8 * (size_t)i, out->len - start);
        if (buf_reserve(out, bound)) {
            rc = xerr_set(err, XE_NOMEM, "document store: out of memory");
            break;
        }
        size_t n = cdict ? ZSTD_compress_usingCDict(cctx, out->data + out->len, bound,
                                                    w->raw.data + at, len, cdict)
                         : ZSTD_compressCCtx(cctx, out->data + out->len, bound, w->raw.data + at,
                                             len, DOCSTORE_ZSTD_LEVEL);
        if (ZSTD_isError(n))
            rc = xerr_set(err, XE_IO, "document store: zstd: %s", ZSTD_getErrorName(n));
        else
            out->len += n;
        at += len;
    }
    if (!rc)
        put_u64le(out->data + start + table + 8 * (size_t)w->n, out->len - start);
out:
    ZSTD_freeCDict(cdict);
    ZSTD_freeCCtx(cctx);
    free(dict);
    return rc;
}

int docstore_open(struct docstore *ds, const unsigned char *data, size_t len, struct xerr *err)
{
    memset(ds, 0, sizeof *ds);
    if (len < DOCSTORE_HEAD_BYTES)
        return xerr_corrupt(err, "document store: section of %zu bytes is too short", len);
    uint32_t n = get_u32le(data), dict_len = get_u32le(data + 4);
    size_t table = DOCSTORE_HEAD_BYTES + (size_t)dict_len;
    if (dict_len > len - DOCSTORE_HEAD_BYTES || (len - table) / 8 < (size_t)n + 1)
        return xerr_corrupt(err, "document store: %u records do not fit in %zu bytes", n, len);
    size_t frames = table + 8 * ((size_t)n + 1);
    uint64_t prev = frames;
    for (uint32_t i = 0; i <= n; i++) {
        uint64_t off = get_u64le(data + table + 8 * (size_t)i);
        if (off < prev || off > len || (i == n && off != len))
            return xerr_corrupt(err, "document store: record %u: offset %llu out of order", i,
                                (unsigned long long)off);
        prev = off;
    }
    if (dict_len) {
        ds->ddict = ZSTD_createDDict(data + DOCSTORE_HEAD_BYTES, dict_len);
        if (!ds->ddict)
            return xerr_corrupt(err, "document store: bad dictionary");
    }
    ds->data = data;
    ds->len = len;
    ds->n_records = n;
    ds->offsets = data + table;
    ds->frames_start = frames;
    return XE_OK;
}

void docstore_close(struct docstore *ds)
{
    ZSTD_freeDDict(ds->ddict);
    ds->ddict = NULL;
}

static _Thread_local ZSTD_DCtx *docstore_dctx;

int docstore_read(const struct docstore *ds, struct docstore_ref ref, struct buf *scratch,
                  const unsigned char **record, size_t *len, struct xerr *err)
{
    if (ref.record >= ds->n_records)
        return xerr_corrupt(err, "document store: no record %u", ref.record);
    uint64_t start = get_u64le(ds->offsets + 8 * (size_t)ref.record);
    uint64_t end = get_u64le(ds->offsets + 8 * ((size_t)ref.record + 1));
    const unsigned char *frame = ds->data + start;
    size_t frame_len = (size_t)(end - start);

    unsigned long long raw = ZSTD_getFrameContentSize(frame, frame_len);
    if (raw == ZSTD_CONTENTSIZE_ERROR || raw == ZSTD_CONTENTSIZE_UNKNOWN ||
        raw > DOCSTORE_RAW_MAX)
        return xerr_corrupt(err, "document store: record %u: bad frame header", ref.record);
    buf_reset(scratch);
    if (buf_reserve(scratch, (size_t)raw ? (size_t)raw : 1))
        return xerr_set(err, XE_NOMEM, "document store: out of memory");
    if (!docstore_dctx && !(docstore_dctx = ZSTD_createDCtx()))
        return xerr_set(err, XE_NOMEM, "document store: out of memory");
    size_t n = ds->ddict ? ZSTD_decompress_usingDDict(docstore_dctx, scratch->data, (size_t)raw,
                                                      frame, frame_len, ds->ddict)
                         : ZSTD_decompressDCtx(docstore_dctx, scratch->data, (size_t)raw, frame,
                                               frame_len);
    if (ZSTD_isError(n) || n != raw)
        return xerr_corrupt(err, "document store: record %u: %s", ref.record,
                            ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short");
    scratch->len = n;
    *record = scratch->data;
    *len = n;
    return XE_OK;
}

void docstore_thread_cleanup(void)
{
    ZSTD_freeDCtx(docstore_dctx);
    docstore_dctx = NULL;
}
