/*
 * Write-ahead log (format in wal.h). Appends are batched by the caller
 * (group commit): many records, one write(), one fsync().
 */
#include "index/wal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index/bytes.h"
#include "index/crc32c.h"
#include "index/error.h"
#include "index/fsutil.h"
#include "index/limits.h"

#define WAL_BATCH_MAX ((size_t)1 << 34)

struct wal {
    char *path;
    int fd;
    uint64_t bytes, fsyncs;
    struct buf batch;
};


static uint32_t record_crc(const unsigned char *head, const void *payload, size_t len)
{
    uint32_t crc = crc32c(0, head, 4);
    crc = crc32c(crc, head + 8, 9);
    return crc32c(crc, payload, len);
}

static bool all_zero(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i])
            return false;
    return true;
}

/*
 * True when a whole, checksummed record starts anywhere in data[from, len):
 * then a bad record before it is damage in the middle, not a torn tail.
 */
static bool good_record_after(const unsigned char *data, size_t from, size_t len)
{
    for (size_t p = from; p + WAL_RECORD_HEAD_BYTES <= len; p++) {
        uint32_t n = get_u32le(data + p);
        if (n > len - p - WAL_RECORD_HEAD_BYTES)
            continue;
        if (record_crc(data + p, data + p + WAL_RECORD_HEAD_BYTES, n) == get_u32le(data + p + 4))
            return true;
    }
    return false;
}

static void header_bytes(unsigned char h[WAL_HEADER_BYTES])
{
    memcpy(h, WAL_MAGIC, 8);
    put_u32le(h + 8, WAL_VERSION);
    put_u32le(h + 12, crc32c(0, h, 12));
}

/* Reads the whole log; replays records; returns the length of its good prefix. */
static int replay(struct wal *w, const unsigned char *data, size_t len, uint64_t after_seq,
                  wal_replay_fn fn, void *ctx, uint64_t *last_seq, size_t *good,
                  struct xerr *err)
{
    const char *name = strrchr(w->path, '/') ? strrchr(w->path, '/') + 1 : w->path;
    size_t at = WAL_HEADER_BYTES;

    if (memcmp(data, WAL_MAGIC, 8) != 0)
        return xerr_corrupt(err, "log %s: not a xun log (bad magic)", name);
    if (get_u32le(data + 12) != crc32c(0, data, 12))
        return xerr_corrupt(err, "log %s: header checksum mismatch", name);
    if (get_u32le(data + 8) != WAL_VERSION)
        return xerr_corrupt(err, "log %s: format version %u, this xun reads version %u", name,
                            get_u32le(data + 8), WAL_VERSION);
    *last_seq = after_seq;
    while (at < len) {
        size_t left = len - at;
        if (left < WAL_RECORD_HEAD_BYTES)
            break; /* torn tail */
        uint32_t n = get_u32le(data + at);
        if (n > WAL_PAYLOAD_MAX || n > left - WAL_RECORD_HEAD_BYTES) {
            if (all_zero(data + at, left) ||
                (n > left - WAL_RECORD_HEAD_BYTES && !good_record_after(data, at + 1, len)))
                break; /* cut short by a crash */
            return xerr_corrupt(err, "log %s: record at byte %zu: length %u too large", name,
                                at, n);
        }
        uint32_t crc = record_crc(data + at, data + at + WAL_RECORD_HEAD_BYTES, n);
        size_t end = at + WAL_RECORD_HEAD_BYTES + n;
        if (crc != get_u32le(data + at + 4)) {
            /* the last record half written, or written partly and the rest of
             * the file space that was allocated but never written */
            if (end == len || all_zero(data + end, len - end))
                break;
            return xerr_corrupt(err, "log %s: record at byte %zu: checksum mismatch", name, at);
        }
        struct wal_record rec = {
            .type = data[at + 8],
            .seq = get_u64le(data + at + 9),
            .payload = (const char *)data + at + WAL_RECORD_HEAD_BYTES,
            .len = n,
        };
        if (rec.type != WAL_PUT && rec.type != WAL_DELETE)
            return xerr_corrupt(err, "log %s: record at byte %zu: unknown type %u", name, at,
                                rec.type);
        if (rec.seq > after_seq) {
            if (rec.seq <= *last_seq)
                return xerr_corrupt(err, "log %s: record at byte %zu: sequence %llu repeats",
                                    name, at, (unsigned long long)rec.seq);
            int rc = fn(ctx, &rec, err);
            if (rc)
                return rc;
            *last_seq = rec.seq;
        }
        at = end;
    }
    *good = at;
    return XE_OK;
}

int wal_open(const char *path, uint64_t after_seq, wal_replay_fn fn, void *ctx,
             struct wal **out, uint64_t *last_seq, struct xerr *err)
{
    struct wal *w = calloc(1, sizeof *w);
    struct stat st;
    int rc = XE_OK;

    if (!w || !(w->path = strdup(path))) {
        free(w);
        return xerr_set(err, XE_NOMEM, "out of memory");
    }
    buf_init(&w->batch, WAL_BATCH_MAX);
    w->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        rc = xerr_set(err, XE_IO, "log %s: %s", path, strerror(errno));
        goto out_free;
    }
    if (fstat(w->fd, &st) != 0) {
        rc = xerr_set(err, XE_IO, "log %s: %s", path, strerror(errno));
        goto out_close;
    }
    *last_seq = after_seq;
    if ((size_t)st.st_size < WAL_HEADER_BYTES) {
        /* new, or torn while its header was written: start it afresh */
        unsigned char h[WAL_HEADER_BYTES];
        header_bytes(h);
        if (ftruncate(w->fd, 0) != 0 || lseek(w->fd, 0, SEEK_SET) != 0 ||
            fs_write_all(w->fd, h, sizeof h) != 0 || fs_fsync(w->fd) != 0) {
            rc = xerr_set_os(err, errno, "log %s: %s", path, strerror(errno));
            goto out_close;
        }
        rc = fs_sync_parent(path, err);
        if (rc)
            goto out_close;
        w->bytes = WAL_HEADER_BYTES;
    } else {
        size_t len = (size_t)st.st_size, good = 0;
        unsigned char *data = malloc(len);
        if (!data) {
            rc = xerr_set(err, XE_NOMEM, "log %s: out of memory", path);
            goto out_close;
        }
        if (pread(w->fd, data, len, 0) != (ssize_t)len) {
            free(data);
            rc = xerr_set(err, XE_IO, "log %s: %s", path, strerror(errno));
            goto out_close;
        }
        rc = replay(w, data, len, after_seq, fn, ctx, last_seq, &good, err);
        free(data);
        if (rc)
            goto out_close;
        if (good < len && (ftruncate(w->fd, (off_t)good) != 0 || fsync(w->fd) != 0)) {
            rc = xerr_set(err, XE_IO, "log %s: cannot drop the torn tail: %s", path,
                          strerror(errno));
            goto out_close;
        }
        w->bytes = good;
    }
    if (lseek(w->fd, 0, SEEK_END) < 0) {
        rc = xerr_set(err, XE_IO, "log %s: %s", path, strerror(errno));
        goto out_close;
    }
    *out = w;
    return XE_OK;
out_close:
    close(w->fd);
out_free:
    buf_fini(&w->batch);
    free(w->path);
    free(w);
    return rc;
}

void wal_close(struct wal *w)
{
    if (!w)
        return;
    close(w->fd);
    buf_fini(&w->batch);
    free(w->path);
    free(w);
}

int wal_add(struct wal *w, enum wal_type type, uint64_t seq, const void *payload, size_t len)
{
    unsigned char head[WAL_RECORD_HEAD_BYTES];

    if (len > WAL_PAYLOAD_MAX)
        return XE_LIMIT;
    put_u32le(head, (uint32_t)len);
    head[8] = (unsigned char)type;
    put_u64le(head + 9, seq);
    put_u32le(head + 4, record_crc(head, payload, len));
    buf_append(&w->batch, head, sizeof head);
    buf_append(&w->batch, payload, len);
    return w->batch.rc;
}

int wal_commit(struct wal *w, struct xerr *err)
{
    if (w->batch.rc) {
        int rc = w->batch.rc;
        buf_reset(&w->batch);
        return xerr_set(err, rc, "log %s: batch too large", w->path);
    }
    if (!w->batch.len)
        return XE_OK;
    if (fs_write_all(w->fd, w->batch.data, w->batch.len) != 0 || fs_fdatasync(w->fd) != 0) {
        int rc = xerr_set_os(err, errno, "log %s: %s", w->path, strerror(errno));
        /* drop what may be half written, so the next batch starts clean */
        if (ftruncate(w->fd, (off_t)w->bytes) == 0)
            lseek(w->fd, 0, SEEK_END);
        buf_reset(&w->batch);
        return rc;
    }
    w->bytes += w->batch.len;
    w->fsyncs++;
    buf_reset(&w->batch);
    return XE_OK;
}

void wal_discard(struct wal *w)
{
    buf_reset(&w->batch);
}

uint64_t wal_bytes(const struct wal *w)
{
    return w->bytes;
}

uint64_t wal_fsyncs(const struct wal *w)
{
    return w->fsyncs;
}
