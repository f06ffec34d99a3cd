/*
 * Document store (format in docstore.h). Records are gathered raw until a
 * block is full, then compressed as one zstd frame; a lookup pays for one
 * block. 16 KiB blocks keep that under ~20 microseconds while giving zstd
 * enough neighbouring text to find repeats.
 */
#include "index/docstore.h"

#include <stdlib.h>
#include <zstd.h>

#include "index/bytes.h"
#include "index/error.h"

#define DOCSTORE_MAX_SECTION ((size_t)1 << 40)

struct docstore_writer {
    struct buf raw;      /* records of the pending block */
    struct buf lens;     /* their lengths, varints */
    uint32_t n_pending;
    struct buf blocks;   /* compressed blocks so far */
    struct buf offsets;  /* u64 offset of each block within `blocks` */
    uint32_t n_blocks;
    ZSTD_CCtx *cctx;
    struct buf frame;    /* scratch for one block before compression */
};

struct docstore_writer *docstore_writer_new(void)
{
    struct docstore_writer *w = calloc(1, sizeof *w);

    if (!w)
        return NULL;
    buf_init(&w->raw, DOCSTORE_RAW_MAX - (1u << 20)); /* room for the lengths in a frame */
    buf_init(&w->lens, 1u << 20);
    buf_init(&w->blocks, DOCSTORE_MAX_SECTION);
    buf_init(&w->offsets, DOCSTORE_MAX_SECTION);
    buf_init(&w->frame, DOCSTORE_RAW_MAX);
    w->cctx = ZSTD_createCCtx();
    if (!w->cctx) {
        free(w);
        return NULL;
    }
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, DOCSTORE_ZSTD_LEVEL);
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
    return w;
}

void docstore_writer_free(struct docstore_writer *w)
{
    if (!w)
        return;
    buf_fini(&w->raw);
    buf_fini(&w->lens);
    buf_fini(&w->blocks);
    buf_fini(&w->offsets);
    buf_fini(&w->frame);
    ZSTD_freeCCtx(w->cctx);
    free(w);
}

static int writer_compress_block(struct docstore_writer *w, struct xerr *err)
{
    if (!w->n_pending)
        return XE_OK;
    buf_reset(&w->frame);
    buf_append_varint(&w->frame, w->n_pending);
    buf_append(&w->frame, w->lens.data, w->lens.len);
    buf_append(&w->frame, w->raw.data, w->raw.len);
    if (w->frame.rc)
        return xerr_set(err, w->frame.rc, "document store: block too large");
    size_t bound = ZSTD_compressBound(w->frame.len);
    if (buf_append_u64le(&w->offsets, w->blocks.len) || buf_reserve(&w->blocks, bound))
        return xerr_set(err, XE_NOMEM, "document store: out of memory");
    size_t n = ZSTD_compress2(w->cctx, w->blocks.data + w->blocks.len, bound, w->frame.data,
                              w->frame.len);
    if (ZSTD_isError(n))
        return xerr_set(err, XE_IO, "document store: zstd: %s", ZSTD_getErrorName(n));
    w->blocks.len += n;
    w->n_blocks++;
    w->n_pending = 0;
    buf_reset(&w->raw);
    buf_reset(&w->lens);
    return XE_OK;
}

int docstore_writer_add(struct docstore_writer *w, const void *record, size_t len,
                        struct docstore_ref *ref, struct xerr *err)
{
    int rc;

    if (w->n_pending && (w->raw.len + len > DOCSTORE_BLOCK_BYTES ||
                         w->n_pending == DOCSTORE_BLOCK_MAX_RECORDS)) {
        rc = writer_compress_block(w, err);
        if (rc)
            return rc;
    }
    if (buf_append(&w->raw, record, len) || buf_append_varint(&w->lens, len))
        return xerr_set(err, w->raw.rc ? w->raw.rc : w->lens.rc,
                        "document store: record of %zu bytes does not fit", len);
    ref->block = w->n_blocks;
    ref->index = w->n_pending++;
    return XE_OK;
}

int docstore_writer_finish(struct docstore_writer *w, struct buf *out, struct xerr *err)
{
    int rc = writer_compress_block(w, err);

    if (rc)
        return rc;
    size_t table_bytes = 4 + 8 * ((size_t)w->n_blocks + 1);
    buf_append_u32le(out, w->n_blocks);
    for (uint32_t i = 0; i < w->n_blocks; i++)
        buf_append_u64le(out, table_bytes + get_u64le(w->offsets.data + 8 * (size_t)i));
    buf_append_u64le(out, table_bytes + w->blocks.len);
    buf_append(out, w->blocks.data, w->blocks.len);
    if (out->rc)
        return xerr_set(err, out->rc, "document store: section too large");
    return XE_OK;
}

size_t docstore_writer_bytes(const struct docstore_writer *w)
{
    return w->blocks.len + w->raw.len;
}

int docstore_open(struct docstore *ds, const unsigned char *data, size_t len, struct xerr *err)
{
    ds->data = data;
    ds->len = len;
    ds->n_blocks = 0;
    if (len < 4)
        return xerr_corrupt(err, "document store: section of %zu bytes is too short", len);
    uint32_t n = get_u32le(data);
    if ((len - 4) / 8 < (size_t)n + 1)
        return xerr_corrupt(err, "document store: %u blocks do not fit in %zu bytes", n, len);
    uint64_t prev = 4 + 8 * ((uint64_t)n + 1);
    for (uint32_t i = 0; i <= n; i++) {
        uint64_t off = get_u64le(data + 4 + 8 * (size_t)i);
        if (off < prev || off > len)
            return xerr_corrupt(err, "document store: block %u: offset %llu out of order", i,
                                (unsigned long long)off);
        prev = off;
    }
    ds->n_blocks = n;
    return XE_OK;
}

static _Thread_local ZSTD_DCtx *docstore_dctx;

int docstore_read(const struct docstore *ds, struct docstore_ref ref, struct buf *scratch,
                  const unsigned char **record, size_t *len, struct xerr *err)
{
    if (ref.block >= ds->n_blocks)
        return xerr_corrupt(err, "document store: no block %u", ref.block);
    uint64_t start = get_u64le(ds->data + 4 + 8 * (size_t)ref.block);
    uint64_t end = get_u64le(ds->data + 4 + 8 * ((size_t)ref.block + 1));
    const unsigned char *frame = ds->data + start;
    size_t frame_len = (size_t)(end - start);

    unsigned long long raw = ZSTD_getFrameContentSize(frame, frame_len);
    if (raw == ZSTD_CONTENTSIZE_ERROR || raw == ZSTD_CONTENTSIZE_UNKNOWN ||
        raw > DOCSTORE_RAW_MAX)
        return xerr_corrupt(err, "document store: block %u: bad frame header", ref.block);
    buf_reset(scratch);
    if (buf_reserve(scratch, (size_t)raw))
        return xerr_set(err, XE_NOMEM, "document store: out of memory");
    if (!docstore_dctx && !(docstore_dctx = ZSTD_createDCtx()))
        return xerr_set(err, XE_NOMEM, "document store: out of memory");
    size_t n = ZSTD_decompressDCtx(docstore_dctx, scratch->data, (size_t)raw, frame, frame_len);
    if (ZSTD_isError(n) || n != raw)
        return xerr_corrupt(err, "document store: block %u: %s", ref.block,
                            ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short");
    scratch->len = n;

    const unsigned char *p = scratch->data, *stop = scratch->data + n;
    uint64_t n_records, offset = 0, rec_len = 0;
    if (!varint_get(&p, stop, &n_records) || ref.index >= n_records)
        return xerr_corrupt(err, "document store: block %u: no record %u", ref.block, ref.index);
    for (uint64_t i = 0; i < n_records; i++) {
        uint64_t l;
        if (!varint_get(&p, stop, &l))
            return xerr_corrupt(err, "document store: block %u: bad lengths", ref.block);
        if (i < ref.index)
            offset += l;
        else if (i == ref.index)
            rec_len = l;
    }
    if (offset > (uint64_t)(stop - p) || rec_len > (uint64_t)(stop - p) - offset)
        return xerr_corrupt(err, "document store: block %u: record %u runs past the block",
                            ref.block, ref.index);
    *record = p + offset;
    *len = (size_t)rec_len;
    return XE_OK;
}

void docstore_thread_cleanup(void)
{
    ZSTD_freeDCtx(docstore_dctx);
    docstore_dctx = NULL;
}
