/*
 * Write-ahead log (format in wal.h). Appends are batched by the caller
 * (group commit): many records, one batch, one write(), one fdatasync().
 * The batch frame is what lets replay tell a crash from damage: a batch is
 * whole or it is the one that was in flight.
 */
#include "index/format/wal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index/base/bytes.h"
#include "index/base/crc32c.h"
#include "index/base/error.h"
#include "index/base/fsutil.h"
#include "index/base/limits.h"

/* The largest batch body replay believes: far above what the writer gathers,
 * and no more than half an address space (on 32-bit systems, 2 GiB). */
#define WAL_BATCH_MAX                                                                         \
    ((uint64_t)(SIZE_MAX / 2) < ((uint64_t)1 << 34) ? (uint64_t)(SIZE_MAX / 2)                \
                                                    : ((uint64_t)1 << 34))
/* Names tried for the file that keeps set-aside bytes before giving up. */
#define WAL_KEPT_NAMES 100

struct wal {
    char *path;
    int fd;
    uint64_t bytes;      /* end of the last whole batch */
    uint64_t file_bytes; /* the file's size, a multiple of WAL_EXTENT_BYTES */
    uint64_t fsyncs;
    uint64_t last_seq;   /* of the last whole batch; 0 when none */
    bool broken;         /* a failed write could not be undone: commits refused */
    bool version1;       /* a version 1 log, open for its replay only: commits refused */
    struct buf batch;    /* room for the batch head, then the records */
    uint32_t batch_records;
    uint64_t batch_first_seq;
    struct wal_set_aside torn;
};

/* How a batch at some offset reads. */
enum batch_state {
    BATCH_WHOLE,
    BATCH_BAD_HEAD, /* head checksum or fields wrong: its length is unknown */
    BATCH_SHORT,    /* head fine, body runs past the end of the file */
    BATCH_BAD_BODY, /* head fine, a record in the body wrong */
};

struct batch_view {
    uint64_t body_bytes, first_seq;
    uint32_t n_records;
    size_t end; /* offset after the body (the end of the file when SHORT) */
};

/* Where replay stopped, and why. */
enum tail_kind { TAIL_CLEAN, TAIL_TORN, TAIL_DAMAGED };

struct scan {
    size_t good;    /* end of the last whole batch replayed */
    size_t bad_end; /* the bytes from good to here are the bad tail */
    enum tail_kind kind;
    bool cut_after_batch; /* DAMAGED with nothing bad: the file ends at a batch's end */
    uint64_t top_seq; /* the last sequence number of the whole batches; 0 when none */
    char why[128];
};

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static uint32_t record_crc(const unsigned char *head, const void *payload, size_t len)
{
    uint32_t crc = crc32c(0, head, 4);
    crc = crc32c(crc, head + 8, 9);
    return crc32c(crc, payload, len);
}

/* (Each byte equal to the one after it, the first zero: libc's memcmp runs
 * over a step of zeros far faster than a loop of bytes.) */
static bool all_zero(const unsigned char *p, size_t len)
{
    return !len || (!p[0] && !memcmp(p, p + 1, len - 1));
}

static uint64_t round_up_extent(uint64_t n)
{
    return (n + WAL_EXTENT_BYTES - 1) / WAL_EXTENT_BYTES * WAL_EXTENT_BYTES;
}

static void header_bytes(unsigned char h[WAL_HEADER_BYTES])
{
    memcpy(h, WAL_MAGIC, 8);
    put_u32le(h + 8, WAL_VERSION);
    put_u32le(h + 12, crc32c(0, h, 12));
}

/*
 * True when a batch head that replay would take is at data[at..]: its
 * checksum holds and its fields make sense (at least one record, a body
 * that could hold them, sequence numbers that do not wrap). Fills b, all
 * but its end.
 */
static bool read_head(const unsigned char *data, size_t len, size_t at, struct batch_view *b)
{
    const unsigned char *h = data + at;

    if (len - at < WAL_BATCH_HEAD_BYTES || get_u32le(h + 20) != crc32c(0, h, 20))
        return false;
    b->body_bytes = get_u64le(h);
    b->n_records = get_u32le(h + 8);
    b->first_seq = get_u64le(h + 12);
    return b->n_records && b->body_bytes <= WAL_BATCH_MAX &&
           b->body_bytes >= (uint64_t)b->n_records * WAL_RECORD_HEAD_BYTES &&
           b->first_seq <= UINT64_MAX - (b->n_records - 1); /* else they would wrap */
}

static enum batch_state read_batch(const unsigned char *data, size_t len, size_t at,
                                   struct batch_view *b)
{
    if (!read_head(data, len, at, b))
        return BATCH_BAD_HEAD;
    /* compared before adding: at + body could wrap a 32-bit size_t */
    if (b->body_bytes > (uint64_t)(len - at - WAL_BATCH_HEAD_BYTES)) {
        b->end = len;
        return BATCH_SHORT;
    }
    b->end = at + WAL_BATCH_HEAD_BYTES + (size_t)b->body_bytes;
    size_t p = at + WAL_BATCH_HEAD_BYTES;
    for (uint32_t i = 0; i < b->n_records; i++) {
        if (b->end - p < WAL_RECORD_HEAD_BYTES)
            return BATCH_BAD_BODY;
        uint32_t n = get_u32le(data + p);
        if (n > WAL_PAYLOAD_MAX || n > b->end - p - WAL_RECORD_HEAD_BYTES ||
            record_crc(data + p, data + p + WAL_RECORD_HEAD_BYTES, n) != get_u32le(data + p + 4) ||
            (data[p + 8] != WAL_PUT && data[p + 8] != WAL_DELETE) ||
            get_u64le(data + p + 9) != b->first_seq + i)
            return BATCH_BAD_BODY;
        p += WAL_RECORD_HEAD_BYTES + n;
    }
    return p == b->end ? BATCH_WHOLE : BATCH_BAD_BODY;
}

/* True when some sector's share of data[from, to) is all zeros: a write
 * covering it did not reach the disk. */
static bool has_unwritten_sector(const unsigned char *data, size_t from, size_t to)
{
    for (size_t p = from; p < to;) {
        size_t next = (p / WAL_SECTOR_BYTES + 1) * WAL_SECTOR_BYTES;
        if (next > to)
            next = to;
        if (all_zero(data + p, next - p))
            return true;
        p = next;
    }
    return false;
}

/* The end of the bytes that are not zero, from from on. */
static size_t nonzero_end(const unsigned char *data, size_t from, size_t len)
{
    while (len - from > 4096 && all_zero(data + len - 4096, 4096))
        len -= 4096;
    while (len > from && !data[len - 1])
        len--;
    return len;
}

static bool whole_batch_after(const unsigned char *data, size_t from, size_t len)
{
    struct batch_view b;
    size_t heads_end = nonzero_end(data, from, len); /* a head is not all zeros */

    for (size_t p = from; p < heads_end && p + WAL_BATCH_HEAD_BYTES <= len; p++)
        if (get_u32le(data + p + 20) == crc32c(0, data + p, 20) &&
            read_batch(data, len, p, &b) == BATCH_WHOLE)
            return true;
    return false;
}

/*
 * Classifies a bad batch at at (see wal.h): torn when it is the last thing
 * in the file and shows a write that did not finish. The bytes set aside
 * run to the last byte that is not zero, and at least to the end of the
 * batch when its head can be read (its last bytes may be zeros).
 */
static void classify_bad(const unsigned char *data, size_t len, size_t at, enum batch_state st,
                         const struct batch_view *b, bool file_whole, struct scan *sc)
{
    sc->good = at;
    sc->bad_end = nonzero_end(data, at, len);
    sc->kind = TAIL_DAMAGED;
    if (st == BATCH_SHORT || (st == BATCH_BAD_HEAD && len - at < WAL_BATCH_HEAD_BYTES)) {
        /* it runs past the end: the file's size decides */
        sc->bad_end = len;
        if (file_whole)
            sc->kind = TAIL_TORN;
        snprintf(sc->why, sizeof sc->why, "%s",
                 file_whole ? "it runs past the end of the file"
                            : "the file was cut short (its size is not a whole number of steps)");
        return;
    }
    if (st == BATCH_BAD_BODY) {
        if (sc->bad_end < b->end)
            sc->bad_end = b->end;
        /*
         * Torn: a sector of it never reached the disk, or a killed process
         * wrote only a prefix of it (the kernel may stop a write at any
         * byte): its last byte, a record's payload, is then still zero.
         */
        if (all_zero(data + b->end, len - b->end) &&
            (has_unwritten_sector(data, at, b->end) || !data[b->end - 1]))
            sc->kind = TAIL_TORN;
        snprintf(sc->why, sizeof sc->why, "%s",
                 sc->kind == TAIL_TORN ? "part of it never reached the disk"
                                       : "a record checksum mismatch");
        return;
    }
    /* a prefix that ends inside the head leaves its checksum's last byte zero */
    if ((has_unwritten_sector(data, at, at + WAL_BATCH_HEAD_BYTES) &&
         !whole_batch_after(data, at + 1, len)) ||
        (!data[at + WAL_BATCH_HEAD_BYTES - 1] &&
         all_zero(data + at + WAL_BATCH_HEAD_BYTES, len - at - WAL_BATCH_HEAD_BYTES)))
        sc->kind = TAIL_TORN;
    snprintf(sc->why, sizeof sc->why, "%s",
             sc->kind == TAIL_TORN ? "its head never reached the disk" : "its head is damaged");
}

static int check_header(const unsigned char *data, const char *name, struct xerr *err)
{
    if (memcmp(data, WAL_MAGIC, 8) != 0)
        return xerr_corrupt(err, "log %s: not a xun log (bad magic)", name);
    if (get_u32le(data + 12) != crc32c(0, data, 12))
        return xerr_corrupt(err, "log %s: header checksum mismatch", name);
    if (get_u32le(data + 8) != WAL_VERSION)
        return xerr_corrupt(err, "log %s: format version %u, this xun reads version %u", name,
                            get_u32le(data + 8), WAL_VERSION);
    return XE_OK;
}

/*
 * Replays the whole batches through fn (NULL: none), in order, and finds
 * where they end and what follows them. Errors are fn's, or a sequence
 * number that goes back (damage that checksums cannot show).
 */
static int scan_log(const unsigned char *data, size_t len, bool file_whole, uint64_t after_seq,
                    wal_replay_fn fn, void *ctx, uint64_t *last_seq, struct scan *sc,
                    struct xerr *err)
{
    size_t at = WAL_HEADER_BYTES;
    uint64_t prev_seq = 0;

    sc->top_seq = 0;
    sc->cut_after_batch = false;
    *last_seq = after_seq;
    while (at < len && !all_zero(data + at, len - at)) {
        struct batch_view b;
        enum batch_state st = read_batch(data, len, at, &b);
        if (st != BATCH_WHOLE) {
            classify_bad(data, len, at, st, &b, file_whole, sc);
            return XE_OK;
        }
        if (b.first_seq <= prev_seq) {
            sc->good = at;
            sc->bad_end = nonzero_end(data, at, len);
            if (sc->bad_end < b.end)
                sc->bad_end = b.end;
            sc->kind = TAIL_DAMAGED;
            snprintf(sc->why, sizeof sc->why, "sequence %" PRIu64 " repeats", b.first_seq);
            return XE_OK;
        }
        prev_seq = sc->top_seq = b.first_seq + b.n_records - 1;
        size_t p = at + WAL_BATCH_HEAD_BYTES;
        for (uint32_t i = 0; i < b.n_records; i++) {
            struct wal_record rec = {
                .type = data[p + 8],
                .seq = b.first_seq + i,
                .payload = (const char *)data + p + WAL_RECORD_HEAD_BYTES,
                .len = get_u32le(data + p),
            };
            p += WAL_RECORD_HEAD_BYTES + rec.len;
            if (rec.seq <= after_seq)
                continue;
            int rc = fn ? fn(ctx, &rec, err) : XE_OK;
            if (rc)
                return rc;
            *last_seq = rec.seq;
        }
        at = b.end;
    }
    sc->good = sc->bad_end = at < len ? at : len;
    sc->kind = TAIL_CLEAN;
    /*
     * The last batch ends exactly at the end of a file whose size is not a
     * whole number of steps: the file was cut (a batch's space is always
     * grown, and the growth made durable, before the batch is written, so a
     * crash leaves zeros after it), and batches after this one may be gone.
     */
    if (at == len && !file_whole && at > WAL_HEADER_BYTES) {
        sc->kind = TAIL_DAMAGED;
        sc->cut_after_batch = true;
        snprintf(sc->why, sizeof sc->why, "the file was cut short after a batch");
    }
    return XE_OK;
}

/* Adds the records first..last (first <= last) to what sa counts. */
static void count_seqs(struct wal_set_aside *sa, uint64_t first, uint64_t last, uint64_t n)
{
    if (!sa->records || first < sa->first_seq)
        sa->first_seq = first;
    if (!sa->records || last > sa->last_seq)
        sa->last_seq = last;
    sa->records += n;
}

/*
 * The records among data[from, to): what setting the bytes aside takes out
 * of the log. Where a batch head replay would take is found (read_head()),
 * every record it says its batch holds, whatever became of its body, and
 * the count goes on after the batch (or at to, when it runs past); elsewhere
 * the records whose own checksum holds, byte by byte. Cannot wrap: each
 * head counts at most a record per WAL_RECORD_HEAD_BYTES of the body it
 * skips, and only the last one skipped can claim more (at most UINT32_MAX).
 */
static void count_records(const unsigned char *data, size_t from, size_t to,
                          struct wal_set_aside *sa)
{
    for (size_t p = from; p < to;) {
        struct batch_view b;
        if (read_head(data, to, p, &b)) {
            count_seqs(sa, b.first_seq, b.first_seq + (b.n_records - 1), b.n_records);
            /* compared before adding, as in read_batch() */
            if (b.body_bytes >= (uint64_t)(to - p - WAL_BATCH_HEAD_BYTES))
                break;
            p += WAL_BATCH_HEAD_BYTES + (size_t)b.body_bytes;
            continue;
        }
        if (to - p < WAL_RECORD_HEAD_BYTES)
            break;
        uint32_t n = get_u32le(data + p);
        if (n <= WAL_PAYLOAD_MAX && n <= to - p - WAL_RECORD_HEAD_BYTES &&
            (data[p + 8] == WAL_PUT || data[p + 8] == WAL_DELETE) &&
            record_crc(data + p, data + p + WAL_RECORD_HEAD_BYTES, n) == get_u32le(data + p + 4)) {
            uint64_t seq = get_u64le(data + p + 9);
            count_seqs(sa, seq, seq, 1);
            p += WAL_RECORD_HEAD_BYTES + n;
        } else {
            p++;
        }
    }
}

/* What set-aside bytes and a failed batch are overwritten with. */
static const unsigned char zeros[64 << 10];

static int read_whole(int fd, const char *path, unsigned char **out, size_t *len,
                      struct xerr *err)
{
    struct stat st;

    if (fstat(fd, &st) != 0)
        return xerr_set(err, XE_IO, "log %s: %s", path, strerror(errno));
    if (st.st_size < 0 || (uintmax_t)st.st_size != (uintmax_t)(size_t)st.st_size)
        return xerr_set(err, XE_LIMIT, "log %s: %jd bytes do not fit in memory", path,
                        (intmax_t)st.st_size);
    *len = (size_t)st.st_size;
    *out = malloc(*len ? *len : 1);
    if (!*out)
        return xerr_set(err, XE_NOMEM, "log %s: out of memory", path);
    size_t got = 0;
    while (got < *len) {
        ssize_t n = pread(fd, *out + got, *len - got, (off_t)got);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            free(*out);
            return xerr_set(err, XE_IO, "log %s: %s", path, n ? strerror(errno) : "cut short");
        }
        got += (size_t)n;
    }
    return XE_OK;
}

/*
 * Picks the file that keeps set-aside bytes: "PATH.SUFFIX-FROM", or with
 * "-2", "-3"... when that name holds other bytes (the same offset torn by
 * two crashes). A file that holds the same bytes is taken again: a crash
 * after it was written and before the log was cut sets the same bytes aside.
 */
static int kept_name(const char *path, const char *suffix, size_t from,
                     const unsigned char *bytes, size_t len, char *name, size_t name_size,
                     struct xerr *err)
{
    for (unsigned i = 1; i <= WAL_KEPT_NAMES; i++) {
        if (i == 1)
            snprintf(name, name_size, "%s.%s-%zu", path, suffix, from);
        else
            snprintf(name, name_size, "%s.%s-%zu-%u", path, suffix, from, i);
        int fd = open(name, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ENOENT)
                return XE_OK;
            return xerr_set(err, XE_IO, "%s: %s", name, strerror(errno));
        }
        unsigned char *old = NULL;
        size_t old_len = 0;
        struct xerr read_err = { 0 };
        bool same = false;
        if (read_whole(fd, name, &old, &old_len, &read_err) == XE_OK) {
            same = old_len == len && (!len || !memcmp(old, bytes, len));
            free(old);
        }
        close(fd);
        if (same)
            return XE_OK;
    }
    return xerr_set(err, XE_IO, "log %s: %d files already keep bytes set aside at byte %zu",
                    path, WAL_KEPT_NAMES, from);
}

/*
 * Zeros data[from, to) of the log in place and grows a file of len bytes
 * that is not a whole number of steps to one, durably. The size never goes
 * down: cutting the file and growing it again would leave, between the two,
 * a size that is not a whole step ending exactly at a batch, which reads as
 * damage (the file cut short after a batch). A crash part way leaves some of
 * the bytes zeroed: what is left reads as the same kind of tail again.
 */
static int zero_tail(int fd, uint64_t from, uint64_t to, uint64_t len)
{
    for (uint64_t at = from; at < to;) {
        size_t n = to - at < sizeof zeros ? (size_t)(to - at) : sizeof zeros;
        if (fs_pwrite_all(fd, zeros, n, at) != 0)
            return -1;
        at += n;
    }
    if (len % WAL_EXTENT_BYTES && fs_grow(fd, len, round_up_extent(len)) != 0)
        return -1;
    return fs_fsync(fd);
}

/*
 * Keeps data[from, to) in a file beside the log (kept_name(), durably),
 * then zeros them in the log (zero_tail(); the log, len bytes, ends a whole
 * step): only then are the bytes gone from the log. Fills sa.
 */
static int set_aside(int fd, const char *path, const unsigned char *data, size_t len,
                     size_t from, size_t to, const char *suffix, struct wal_set_aside *sa,
                     struct xerr *err)
{
    sa->offset = from;
    sa->bytes = to - from;
    count_records(data, from, to, sa);
    int rc = kept_name(path, suffix, from, data + from, to - from, sa->kept_path,
                       sizeof sa->kept_path, err);
    if (!rc)
        rc = fs_write_atomic(sa->kept_path, data + from, to - from, err);
    if (rc)
        return rc;
    if (zero_tail(fd, from, to, len) != 0)
        return xerr_set_os(err, errno, "log %s: cannot set its tail aside: %s", path,
                        strerror(errno));
    return XE_OK;
}

static int make_fresh(int fd, const char *path, struct xerr *err)
{
    unsigned char h[WAL_HEADER_BYTES];

    header_bytes(h);
    if (ftruncate(fd, 0) != 0 || fs_pwrite_all(fd, h, sizeof h, 0) != 0 ||
        fs_grow(fd, 0, WAL_EXTENT_BYTES) != 0 || fs_fsync(fd) != 0)
        return xerr_set_os(err, errno, "log %s: %s", path, strerror(errno));
    return fs_sync_parent(path, err);
}

/*
 * A log never written past its header's making: new, or torn while made.
 * Or a version 1 log that holds no record (what a clean stop leaves before
 * an upgrade): nothing in it to lose, so it is made afresh in this version.
 */
static bool never_written(const unsigned char *data, size_t len)
{
    if (len < WAL_HEADER_BYTES || all_zero(data, len))
        return true;
    return !memcmp(data, WAL_MAGIC, 8) && get_u32le(data + 12) == crc32c(0, data, 12) &&
           get_u32le(data + 8) == 1 && all_zero(data + WAL_HEADER_BYTES, len - WAL_HEADER_BYTES);
}

/* ---- version 1, read for replay only (format in wal.h) ---- */

static bool is_version1(const unsigned char *data, size_t len)
{
    return len >= WAL_HEADER_BYTES && !memcmp(data, WAL_MAGIC, 8) &&
           get_u32le(data + 12) == crc32c(0, data, 12) && get_u32le(data + 8) == 1;
}

/* True when a whole, checksummed version 1 record starts anywhere in data[from, len). */
static bool v1_record_after(const unsigned char *data, size_t from, size_t len)
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

/*
 * Replays a version 1 log's records (seq <= after_seq skipped) and finds the
 * end of its good prefix, *good, by version 1's rules: a record cut short
 * (its length runs past the end and no whole record follows it), or a bad
 * record followed only by zeros or by nothing, is a torn tail; a bad record
 * with data after it, an unknown type or a sequence number that goes back
 * is damage, refused (XE_CORRUPT, *good where the damage starts). *top_seq
 * is the highest sequence number read.
 */
static int scan_v1(const unsigned char *data, size_t len, const char *name, uint64_t after_seq,
                   wal_replay_fn fn, void *ctx, uint64_t *last_seq, uint64_t *top_seq,
                   size_t *good, struct xerr *err)
{
    size_t at = WAL_HEADER_BYTES;

    *last_seq = after_seq;
    *top_seq = 0;
    while (at < len) {
        size_t left = len - at;
        *good = at; /* on damage: where it starts */
        if (left < WAL_RECORD_HEAD_BYTES)
            break; /* torn tail */
        uint32_t n = get_u32le(data + at);
        if (n > WAL_PAYLOAD_MAX || n > left - WAL_RECORD_HEAD_BYTES) {
            if (all_zero(data + at, left) ||
                (n > left - WAL_RECORD_HEAD_BYTES && !v1_record_after(data, at + 1, len)))
                break; /* cut short by a crash */
            return xerr_corrupt(err, "log %s (version 1): record at byte %zu: length %u too "
                                     "large", name, at, n);
        }
        size_t end = at + WAL_RECORD_HEAD_BYTES + n;
        if (record_crc(data + at, data + at + WAL_RECORD_HEAD_BYTES, n) !=
            get_u32le(data + at + 4)) {
            if (end == len || all_zero(data + end, len - end))
                break; /* the last record half written */
            return xerr_corrupt(err, "log %s (version 1): record at byte %zu: checksum mismatch",
                                name, at);
        }
        struct wal_record rec = {
            .type = data[at + 8],
            .seq = get_u64le(data + at + 9),
            .payload = (const char *)data + at + WAL_RECORD_HEAD_BYTES,
            .len = n,
        };
        if (rec.type != WAL_PUT && rec.type != WAL_DELETE)
            return xerr_corrupt(err, "log %s (version 1): record at byte %zu: unknown type %u",
                                name, at, rec.type);
        if (rec.seq > after_seq && rec.seq <= *last_seq)
            return xerr_corrupt(err, "log %s (version 1): record at byte %zu: sequence %" PRIu64
                                     " repeats", name, at, rec.seq);
        if (rec.seq > *top_seq)
            *top_seq = rec.seq;
        if (rec.seq > after_seq) {
            int rc = fn ? fn(ctx, &rec, err) : XE_OK;
            if (rc)
                return rc;
            *last_seq = rec.seq;
        }
        at = end;
    }
    *good = at;
    return XE_OK;
}

/*
 * Opens a version 1 log for its replay: the log is not changed (the caller
 * checkpoints and starts a log of this version; commits here are refused).
 * A torn tail is kept beside it, as for this version, and reported.
 */
static int open_version1(struct wal *w, const unsigned char *data, size_t len,
                         uint64_t after_seq, wal_replay_fn fn, void *ctx, uint64_t *last_seq,
                         struct xerr *err)
{
    size_t good = 0;
    uint64_t top_seq;
    int rc = scan_v1(data, len, base_name(w->path), after_seq, fn, ctx, last_seq, &top_seq,
                     &good, err);

    if (rc)
        return rc;
    size_t end = nonzero_end(data, good, len);
    if (end > good) {
        struct wal_set_aside *sa = &w->torn;
        sa->offset = good;
        sa->bytes = end - good;
        snprintf(sa->why, sizeof sa->why, "a version 1 record cut short");
        rc = kept_name(w->path, "torn", good, data + good, end - good, sa->kept_path,
                       sizeof sa->kept_path, err);
        if (!rc)
            rc = fs_write_atomic(sa->kept_path, data + good, end - good, err);
        if (rc)
            return rc;
    }
    w->version1 = true;
    w->bytes = good;
    w->file_bytes = len;
    w->last_seq = top_seq;
    return XE_OK;
}

int wal_open(const char *path, uint64_t after_seq, wal_replay_fn fn, void *ctx,
             struct wal **out, uint64_t *last_seq, struct xerr *err)
{
    struct wal *w = calloc(1, sizeof *w);
    unsigned char *data = NULL;
    size_t len = 0;
    int rc;

    if (!w || !(w->path = strdup(path))) {
        free(w);
        return xerr_set(err, XE_NOMEM, "out of memory");
    }
    buf_init(&w->batch, (size_t)WAL_BATCH_MAX);
    w->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        rc = xerr_set(err, XE_IO, "log %s: %s", path, strerror(errno));
        goto out_free;
    }
    rc = read_whole(w->fd, path, &data, &len, err);
    if (rc)
        goto out_close;
    *last_seq = after_seq;
    if (never_written(data, len)) {
        rc = make_fresh(w->fd, path, err);
        w->bytes = WAL_HEADER_BYTES;
        w->file_bytes = WAL_EXTENT_BYTES;
        goto out_data;
    }
    if (is_version1(data, len)) {
        rc = open_version1(w, data, len, after_seq, fn, ctx, last_seq, err);
        goto out_data;
    }
    const char *name = base_name(path);
    rc = check_header(data, name, err);
    if (rc)
        goto out_data;
    struct scan sc;
    rc = scan_log(data, len, len % WAL_EXTENT_BYTES == 0, after_seq, fn, ctx, last_seq, &sc,
                  err);
    if (rc)
        goto out_data;
    if (sc.kind == TAIL_DAMAGED && sc.cut_after_batch) {
        rc = xerr_corrupt(err,
                          "log %s: %s: its last batch ends at byte %zu, the end of the file, "
                          "not at a whole step; acknowledged records after it are lost; `xun "
                          "repair --data DIR` keeps every batch and starts from there",
                          name, sc.why, sc.good);
        goto out_data;
    }
    if (sc.kind == TAIL_DAMAGED) {
        struct wal_set_aside lost = { 0 };
        count_records(data, sc.good, sc.bad_end, &lost);
        char seqs[64] = "";
        if (lost.records)
            snprintf(seqs, sizeof seqs, " (sequence %" PRIu64 " to %" PRIu64 ")", lost.first_seq,
                     lost.last_seq);
        rc = xerr_corrupt(err,
                          "log %s: batch at byte %zu is damaged (%s); %" PRIu64
                          " acknowledged records%s are in the %zu bytes from there; `xun "
                          "repair --data DIR` sets them aside and starts without them",
                          name, sc.good, sc.why, lost.records, seqs, sc.bad_end - sc.good);
        goto out_data;
    }
    if (sc.kind == TAIL_TORN) {
        snprintf(w->torn.why, sizeof w->torn.why, "%s", sc.why);
        rc = set_aside(w->fd, path, data, len, sc.good, sc.bad_end, "torn", &w->torn, err);
        if (rc)
            goto out_data;
        len = (size_t)round_up_extent(len);
    } else if (len % WAL_EXTENT_BYTES) {
        /* cut inside its zeros: nothing lost, but whole steps again */
        if (fs_grow(w->fd, len, round_up_extent(len)) != 0 || fs_fsync(w->fd) != 0) {
            rc = xerr_set_os(err, errno, "log %s: %s", path, strerror(errno));
            goto out_data;
        }
        len = (size_t)round_up_extent(len);
    }
    w->bytes = sc.good;
    w->file_bytes = len;
    w->last_seq = sc.top_seq;
out_data:
    free(data);
    if (rc)
        goto out_close;
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

int wal_repair(const char *path, struct wal_set_aside *out, struct xerr *err)
{
    unsigned char *data = NULL;
    size_t len = 0;
    uint64_t last_seq;
    struct scan sc;
    int rc;

    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return xerr_set(err, XE_IO, "log %s: %s", path, strerror(errno));
    rc = read_whole(fd, path, &data, &len, err);
    if (rc)
        goto out_close;
    if (never_written(data, len))
        goto out_data;
    if (is_version1(data, len)) {
        /* damage set aside as for this version (zeros after the log's end read
         * as nothing in version 1 too); a torn tail is wal_open()'s */
        struct xerr v1_err = { 0 };
        uint64_t top_seq;
        size_t good = 0;
        if (scan_v1(data, len, base_name(path), 0, NULL, NULL, &last_seq, &top_seq, &good,
                    &v1_err) == XE_CORRUPT) {
            snprintf(out->why, sizeof out->why, "%s", v1_err.msg);
            rc = set_aside(fd, path, data, len, good, nonzero_end(data, good, len), "damaged",
                           out, err);
        }
        goto out_data;
    }
    struct xerr header_err = { 0 };
    if (check_header(data, base_name(path), &header_err)) {
        /* nothing in it can be trusted to be read as this version: all of it aside */
        snprintf(out->why, sizeof out->why, "%s", header_err.msg);
        rc = set_aside(fd, path, data, len, 0, nonzero_end(data, 0, len), "damaged", out,
                       err);
        if (!rc)
            rc = make_fresh(fd, path, err);
        goto out_data;
    }
    rc = scan_log(data, len, len % WAL_EXTENT_BYTES == 0, 0, NULL, NULL, &last_seq, &sc, err);
    if (rc || sc.kind == TAIL_CLEAN)
        goto out_data;
    snprintf(out->why, sizeof out->why, "%s", sc.why);
    if (sc.cut_after_batch) {
        /* nothing bad in the file to keep: every batch stays, the file grows back */
        out->offset = sc.good;
        if (zero_tail(fd, len, len, len) != 0)
            rc = xerr_set_os(err, errno, "log %s: cannot grow it back to a whole step: %s",
                             path, strerror(errno));
        goto out_data;
    }
    rc = set_aside(fd, path, data, len, sc.good, sc.bad_end,
                   sc.kind == TAIL_TORN ? "torn" : "damaged", out, err);
out_data:
    free(data);
out_close:
    close(fd);
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

const struct wal_set_aside *wal_torn_tail(const struct wal *w)
{
    return &w->torn;
}

int wal_add(struct wal *w, enum wal_type type, uint64_t seq, const void *payload, size_t len)
{
    unsigned char head[WAL_RECORD_HEAD_BYTES];

    if (len > WAL_PAYLOAD_MAX)
        return XE_LIMIT;
    /* what replay would refuse is never written: sequence numbers go up by one
     * in a batch and past every one in the log */
    if ((type != WAL_PUT && type != WAL_DELETE) || seq == 0 ||
        (w->batch_records ? seq != w->batch_first_seq + w->batch_records
                                      : seq <= w->last_seq))
        return XE_INPUT;
    if (!w->batch_records) {
        unsigned char room[WAL_BATCH_HEAD_BYTES] = { 0 };
        buf_append(&w->batch, room, sizeof room); /* filled at commit */
        w->batch_first_seq = seq;
    }
    w->batch_records++;
    put_u32le(head, (uint32_t)len);
    head[8] = (unsigned char)type;
    put_u64le(head + 9, seq);
    put_u32le(head + 4, record_crc(head, payload, len));
    buf_append(&w->batch, head, sizeof head);
    buf_append(&w->batch, payload, len);
    return w->batch.rc;
}

void wal_discard(struct wal *w)
{
    buf_reset(&w->batch);
    w->batch_records = 0;
}

/*
 * After a failed write or fdatasync the batch's bytes may be partly on disk:
 * they are zeroed (and that made durable) so that the next batch, written at
 * the same offset, is not followed by leftovers that would read as damage.
 * When even that fails, the log takes no more commits. The zeros go into
 * space the batch already holds, so a full disk cannot refuse them: they
 * bypass the fault hook, as the disk would let them through.
 */
static void undo_partial_batch(struct wal *w, size_t len)
{
    for (size_t done = 0; done < len;) {
        size_t n = len - done < sizeof zeros ? len - done : sizeof zeros;
        if (fs_pwrite_unhooked(w->fd, zeros, n, w->bytes + done) != 0) {
            w->broken = true;
            return;
        }
        done += n;
    }
    if (fdatasync(w->fd) != 0)
        w->broken = true;
}

int wal_commit(struct wal *w, struct xerr *err)
{
    int rc = XE_OK;

    if (w->batch.rc) {
        rc = xerr_set(err, w->batch.rc, "log %s: batch too large", w->path);
        goto out;
    }
    if (!w->batch_records)
        goto out;
    if (w->version1) { /* never a batch of this version in a version 1 file */
        rc = xerr_set(err, XE_IO, "log %s: a version 1 log is read, not written; a checkpoint "
                                  "starts a new one", w->path);
        goto out;
    }
    if (w->broken) {
        rc = xerr_set(err, XE_IO,
                      "log %s: an earlier write failed and could not be undone; restart xun",
                      w->path);
        goto out;
    }
    unsigned char *h = w->batch.data;
    put_u64le(h, w->batch.len - WAL_BATCH_HEAD_BYTES);
    put_u32le(h + 8, w->batch_records);
    put_u64le(h + 12, w->batch_first_seq);
    put_u32le(h + 20, crc32c(0, h, 20));
    uint64_t end = w->bytes + w->batch.len;
    if (end > w->file_bytes) {
        uint64_t grown = round_up_extent(end);
        if (fs_grow(w->fd, w->file_bytes, grown) != 0) {
            /* nothing written: the log stays as it was */
            rc = xerr_set_os(err, errno, "log %s: cannot grow the log: %s", w->path,
                             strerror(errno));
            goto out;
        }
        /*
         * The new size made durable before a batch goes into the new space:
         * a crash can then never leave a batch running past the end of a
         * file whose size is not a whole number of steps (which reads as
         * damage). posix_fallocate() emulated by writing a byte per block
         * (file systems without fallocate) moves the size in pieces.
         */
        if (fs_fdatasync(w->fd) != 0) {
            rc = xerr_set_os(err, errno, "log %s: cannot grow the log: %s", w->path,
                             strerror(errno));
            goto out;
        }
        w->fsyncs++;
        w->file_bytes = grown;
    }
    if (fs_pwrite_all(w->fd, w->batch.data, w->batch.len, w->bytes) != 0 ||
        fs_fdatasync(w->fd) != 0) {
        rc = xerr_set_os(err, errno, "log %s: %s", w->path, strerror(errno));
        undo_partial_batch(w, w->batch.len);
        goto out;
    }
    w->bytes = end;
    w->last_seq = w->batch_first_seq + w->batch_records - 1;
    w->fsyncs++;
out:
    wal_discard(w);
    return rc;
}

uint32_t wal_version(const struct wal *w)
{
    return w->version1 ? 1 : WAL_VERSION;
}

uint64_t wal_bytes(const struct wal *w)
{
    return w->bytes;
}

uint64_t wal_fsyncs(const struct wal *w)
{
    return w->fsyncs;
}
