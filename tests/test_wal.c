/*
 * Tests of index/format/wal.h, log version 2.
 *
 * Format and replay: a new log is a valid header and one step of zeros;
 * batches (one per commit) replay in order with each record's type, sequence
 * number and payload, those at or below after_seq skipped; payloads up to
 * WAL_PAYLOAD_MAX are taken and larger ones refused; wal_add() refuses what
 * replay would refuse; wal_discard() drops a pending batch; appends after a
 * reopen continue the log; fsyncs are counted (one per commit, one more for
 * a growth); an error from the replay callback stops replay.
 *
 * Torn tails (the last batch, in flight when the machine stopped or the
 * process was killed): cut at every length with zeros after it, any one of
 * its sectors zeroed, its head torn, or running past the end of a file whose
 * size is a whole step. The log opens, replays everything before, sets the
 * bytes aside in LOG.torn-OFFSET (offset, bytes, records reported), and an
 * append after it replays fine.
 *
 * Damage (anything else): one bit flipped anywhere in the last batch or in a
 * middle batch, the last 4 KiB of the data replaced by garbage, the file cut
 * at an odd size inside a batch, bytes after a bad batch, an unknown type or
 * a sequence number that does not go up, a bad header. wal_open() refuses it
 * with XE_CORRUPT naming the log, the byte offset and the records it would
 * lose (all a batch holds when its head still checks: one DELETE's batch
 * with a bit flipped says 1, sequence 5 to 5), and leaves the file byte for
 * byte as it was; wal_repair() moves the
 * bytes into LOG.damaged-OFFSET, after which the log replays exactly the
 * batches before the damage and takes appends; a sound log it leaves alone.
 * A version 1 log with no record is made afresh. A failed commit (the file
 * cannot grow, or the write stops part way) leaves the log readable: the
 * bytes written are zeroed again for the next batch, or, when they cannot
 * be, the log takes no more commits.
 *
 * RLIMIT_FSIZE stands in for a full or failing disk. The tests that open
 * damaged logs hundreds of times run on /dev/shm when there is one.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index/base/bytes.h"
#include "index/base/crc32c.h"
#include "index/base/error.h"
#include "index/base/fsutil.h"
#include "index/base/limits.h"
#include "index/format/wal.h"
#include "tests/testutil.h"

#define PATH_BYTES 4200
#define KEPT_BYTES (PATH_BYTES + 64) /* a log's path and a suffix */
#define LOG_NAME "wal-00000001.xlog"
#define MAX_SEEN 64           /* records one replay in these tests may deliver */
#define PAYLOAD_MAX_SEEN 1024 /* payload bytes kept per delivered record */
#define MAX_BATCHES 16
#define STEP ((size_t)WAL_EXTENT_BYTES)

/*
 * A scratch directory on /dev/shm when there is one: the tests that open a
 * damaged log hundreds of times (each open of a torn log fsyncs what it sets
 * aside) would spend most of their time in fsync on a disk.
 */
static int shm_dir_setup(void **state)
{
    char *dir = strdup("/dev/shm/xun-test-wal-XXXXXX");

    if (dir && mkdtemp(dir)) {
        *state = dir;
        return 0;
    }
    free(dir);
    return test_dir_setup(state);
}

/* ---- replay ---- */

/* What a replay delivered, copied out of the callback. */
struct seen {
    size_t n;
    struct {
        enum wal_type type;
        uint64_t seq;
        size_t len;
        uint32_t crc;                   /* of the whole payload */
        char payload[PAYLOAD_MAX_SEEN]; /* its first bytes */
    } rec[MAX_SEEN];
    size_t fail_at; /* 1-based: the callback fails on this call; 0 never */
};

static int record_cb(void *ctx, const struct wal_record *rec, struct xerr *err)
{
    struct seen *s = ctx;

    if (s->fail_at && s->n + 1 == s->fail_at)
        return xerr_set(err, XE_INPUT, "callback refused seq %llu",
                        (unsigned long long)rec->seq);
    assert_true(s->n < MAX_SEEN);
    s->rec[s->n].type = rec->type;
    s->rec[s->n].seq = rec->seq;
    s->rec[s->n].len = rec->len;
    s->rec[s->n].crc = crc32c(0, rec->payload, rec->len);
    if (rec->len)
        memcpy(s->rec[s->n].payload, rec->payload,
               rec->len < PAYLOAD_MAX_SEEN ? rec->len : PAYLOAD_MAX_SEEN);
    s->n++;
    return XE_OK;
}

/* One record a test writes and expects back. */
struct trec {
    enum wal_type type;
    uint64_t seq;
    const char *payload;
};

static const struct trec FIVE[] = {
    { WAL_PUT, 1, "{\"id\":\"n1\",\"title\":\"普惠化\"}" },
    { WAL_DELETE, 2, "n0" },
    { WAL_PUT, 3, "" }, /* an empty payload is still a record */
    { WAL_PUT, 4, "{\"id\":\"n2\",\"body\":\"正文 body\"}" },
    { WAL_DELETE, 5, "n1" },
};

/* Payload text of len bytes for seq: "{aaa...}", never ending in a zero byte. */
static char *text(uint64_t seq, size_t len)
{
    char *p = malloc(len + 1);

    assert_non_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = (char)('a' + (seq * 7 + i) % 26);
    if (len >= 2) {
        p[0] = '{';
        p[len - 1] = '}';
    }
    p[len] = '\0';
    return p;
}

/* n PUT records from seq 1 with the payload lengths given; free with free_recs(). */
static struct trec *make_recs(const size_t *lens, size_t n)
{
    struct trec *r = calloc(n, sizeof *r);

    assert_non_null(r);
    for (size_t i = 0; i < n; i++)
        r[i] = (struct trec){ i % 3 == 2 ? WAL_DELETE : WAL_PUT, i + 1, text(i + 1, lens[i]) };
    return r;
}

static void free_recs(struct trec *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((char *)r[i].payload);
    free(r);
}

static void log_path(void **state, char *path)
{
    snprintf(path, PATH_BYTES, "%s/%s", (const char *)*state, LOG_NAME);
}

static size_t rec_bytes(const struct trec *r)
{
    return WAL_RECORD_HEAD_BYTES + strlen(r->payload);
}

static void add(struct wal *w, const struct trec *r)
{
    assert_int_equal(wal_add(w, r->type, r->seq, r->payload, strlen(r->payload)), XE_OK);
}

static void assert_seen(const struct seen *s, const struct trec *want, size_t n)
{
    assert_int_equal(s->n, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(s->rec[i].type, want[i].type);
        assert_int_equal(s->rec[i].seq, want[i].seq);
        size_t len = strlen(want[i].payload);
        assert_int_equal(s->rec[i].len, len);
        assert_int_equal(s->rec[i].crc, crc32c(0, want[i].payload, len));
        assert_memory_equal(s->rec[i].payload, want[i].payload,
                            len < PAYLOAD_MAX_SEEN ? len : PAYLOAD_MAX_SEEN);
    }
}

/* Replays path from after_seq: want[0..n) delivered, last_seq want_last, nothing torn. */
static void assert_replays(const char *path, uint64_t after_seq, const struct trec *want,
                           size_t n, uint64_t want_last)
{
    struct xerr err = { 0 };
    struct wal *w = NULL;
    struct seen s = { 0 };
    uint64_t last = 12345;

    assert_ok(wal_open(path, after_seq, record_cb, &s, &w, &last, &err), &err);
    assert_seen(&s, want, n);
    assert_int_equal(last, want_last);
    assert_int_equal(wal_torn_tail(w)->bytes, 0);
    assert_string_equal(wal_torn_tail(w)->kept_path, "");
    wal_close(w);
}

/* Opens path, appends one record after want[0..n), and checks that it all replays. */
static void assert_takes_append(const char *path, const struct trec *want, size_t n)
{
    struct xerr err = { 0 };
    struct wal *w = NULL;
    struct seen s = { 0 };
    uint64_t last = 0;
    struct trec *all = calloc(n + 1, sizeof *all);

    assert_non_null(all);
    if (n)
        memcpy(all, want, n * sizeof *want);
    all[n] = (struct trec){ WAL_DELETE, (n ? want[n - 1].seq : 0) + 1, "appended" };
    assert_ok(wal_open(path, 0, record_cb, &s, &w, &last, &err), &err);
    assert_seen(&s, want, n);
    add(w, &all[n]);
    assert_ok(wal_commit(w, &err), &err);
    wal_close(w);
    assert_replays(path, 0, all, n + 1, all[n].seq);
    free(all);
}

/* ---- layouts ---- */

/* Where a log's batches and records lie, from the format in wal.h. */
struct layout {
    size_t n_batches, n_recs;
    size_t batch_at[MAX_BATCHES + 1]; /* batch_at[n_batches]: the end of the data */
    size_t first_rec[MAX_BATCHES + 1];
    size_t rec_at[MAX_SEEN + 1];
};

/*
 * Makes a new log at path holding recs[0..) committed in batches of
 * counts[0..n_batches) records; returns its bytes (the whole file) and fills
 * lay, checking it against wal_bytes().
 */
static unsigned char *write_batches(const char *path, const struct trec *recs,
                                    const size_t *counts, size_t n_batches, struct layout *lay,
                                    size_t *len)
{
    struct xerr err = { 0 };
    struct wal *w = NULL;
    struct seen s = { 0 };
    uint64_t last = 99;
    size_t at = WAL_HEADER_BYTES, r = 0;

    unlink(path);
    memset(lay, 0, sizeof *lay);
    assert_ok(wal_open(path, 0, record_cb, &s, &w, &last, &err), &err);
    for (size_t b = 0; b < n_batches; b++) {
        lay->batch_at[b] = at;
        lay->first_rec[b] = r;
        at += WAL_BATCH_HEAD_BYTES;
        for (size_t i = 0; i < counts[b]; i++, r++) {
            lay->rec_at[r] = at;
            at += rec_bytes(&recs[r]);
            add(w, &recs[r]);
        }
        assert_ok(wal_commit(w, &err), &err);
        assert_int_equal(wal_bytes(w), at);
    }
    lay->n_batches = n_batches;
    lay->n_recs = r;
    lay->batch_at[n_batches] = at;
    lay->first_rec[n_batches] = r;
    lay->rec_at[r] = at;
    wal_close(w);
    unsigned char *data = test_read_file(path, len);
    assert_int_equal(*len % STEP, 0);
    return data;
}

static size_t data_end(const struct layout *lay)
{
    return lay->batch_at[lay->n_batches];
}

/* The batch that holds byte at. */
static size_t batch_of(const struct layout *lay, size_t at)
{
    size_t b = 0;

    while (b + 1 < lay->n_batches && lay->batch_at[b + 1] <= at)
        b++;
    return b;
}

/* True when [a, e) lies inside [from, to) and clear of [hole, hole_end). */
static bool intact(size_t a, size_t e, size_t from, size_t to, size_t hole, size_t hole_end)
{
    return a >= from && e <= to && (e <= hole || a >= hole_end);
}

/*
 * The records of recs (as laid out) that setting [from, to) aside loses,
 * with [hole, hole_end) damaged, counted as wal.h says: all of a batch's
 * records when its head is intact (whatever became of its body), else its
 * records that are intact themselves.
 */
static size_t records_in(const struct layout *lay, size_t from, size_t to, size_t hole,
                         size_t hole_end)
{
    size_t n = 0;

    for (size_t b = 0; b < lay->n_batches; b++) {
        size_t head = lay->batch_at[b], first = lay->first_rec[b], last = lay->first_rec[b + 1];
        if (intact(head, head + WAL_BATCH_HEAD_BYTES, from, to, hole, hole_end)) {
            n += last - first;
            continue;
        }
        for (size_t r = first; r < last; r++) {
            /* its end: the next record's start, or the next batch's head */
            size_t e = r + 1 < last ? lay->rec_at[r + 1] : lay->batch_at[b + 1];
            if (intact(lay->rec_at[r], e, from, to, hole, hole_end))
                n++;
        }
    }
    return n;
}

static size_t nonzero_end(const unsigned char *data, size_t from, size_t len)
{
    while (len > from && !data[len - 1])
        len--;
    return len;
}

static size_t round_step(size_t n)
{
    return (n + STEP - 1) / STEP * STEP;
}

/* ---- what a test expects of a damaged or torn log ---- */

/* Files in dir whose names contain part. */
static size_t files_named(const char *dir, const char *part)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;

    assert_non_null(d);
    while ((e = readdir(d)))
        if (strstr(e->d_name, part))
            n++;
    closedir(d);
    return n;
}

static void remove_named(const char *dir, const char *part)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[PATH_BYTES];

    assert_non_null(d);
    while ((e = readdir(d)))
        if (strstr(e->d_name, part)) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            assert_int_equal(unlink(p), 0);
        }
    closedir(d);
}

static void dir_of(const char *path, char *dir)
{
    snprintf(dir, PATH_BYTES, "%s", path);
    *strrchr(dir, '/') = '\0';
}

/*
 * wal_open must refuse path with XE_CORRUPT naming the log, the offset of
 * the first bad batch and the records it would lose (lose < 0: a bad header,
 * no offset), set nothing aside, and leave the file as it was.
 */
static void assert_refused_at(const char *path, long long offset, long long lose)
{
    struct xerr err = { 0 };
    struct wal *w = NULL;
    struct seen s = { 0 };
    uint64_t last;
    size_t before_len, after_len;
    char dir[PATH_BYTES], want[96];
    unsigned char *before = test_read_file(path, &before_len);

    dir_of(path, dir);
    assert_int_equal(wal_open(path, 0, record_cb, &s, &w, &last, &err), XE_CORRUPT);
    assert_int_equal(err.code, XE_CORRUPT);
    assert_null(w);
    assert_non_null(strstr(err.msg, LOG_NAME));
    if (offset >= 0) {
        snprintf(want, sizeof want, "at byte %lld ", offset);
        if (!strstr(err.msg, want))
            print_error("want \"%s\" in: %s\n", want, err.msg);
        assert_non_null(strstr(err.msg, want));
        snprintf(want, sizeof want, "; %lld acknowledged records", lose);
        if (!strstr(err.msg, want))
            print_error("want \"%s\" in: %s\n", want, err.msg);
        assert_non_null(strstr(err.msg, want));
    }
    unsigned char *after = test_read_file(path, &after_len);
    assert_int_equal(after_len, before_len);
    assert_memory_equal(after, before, before_len);
    assert_int_equal(files_named(dir, ".torn-"), 0);
    assert_int_equal(files_named(dir, ".damaged-"), 0);
    free(before);
    free(after);
}

/* The file at kept holds exactly data[0..len). */
static void assert_kept(const char *kept, const unsigned char *data, size_t len)
{
    size_t got_len;
    unsigned char *got = test_read_file(kept, &got_len);

    assert_int_equal(got_len, len);
    assert_memory_equal(got, data, len);
    free(got);
}

/* The log at path is image[0..good), then zeros to a whole step. */
static void assert_cut_to(const char *path, const unsigned char *image, size_t good,
                          size_t was_len)
{
    size_t len;
    unsigned char *now = test_read_file(path, &len);

    /* set-aside bytes are zeroed in place: the file only grows to a whole step */
    assert_int_equal(len, round_step(was_len > good ? was_len : good));
    assert_memory_equal(now, image, good);
    assert_int_equal(nonzero_end(now, good, len), good);
    free(now);
}

/*
 * path (image[0..len) on disk) has a torn tail at offset: wal_open replays
 * want[0..n) and sets aside bytes bytes holding records records; then an
 * append replays fine. The kept file is removed after.
 */
static void assert_torn(const char *path, const unsigned char *image, const struct trec *want,
                        size_t n, size_t offset, size_t bytes, size_t records)
{
    struct xerr err = { 0 };
    struct wal *w = NULL;
    struct seen s = { 0 };
    uint64_t last = 0;
    char dir[PATH_BYTES], kept[KEPT_BYTES];

    dir_of(path, dir);
    size_t was_len;
    free(test_read_file(path, &was_len));
    assert_ok(wal_open(path, 0, record_cb, &s, &w, &last, &err), &err);
    assert_seen(&s, want, n);
    assert_int_equal(last, n ? want[n - 1].seq : 0);
    assert_int_equal(wal_bytes(w), offset);
    const struct wal_set_aside *t = wal_torn_tail(w);
    assert_int_equal(t->offset, offset);
    assert_int_equal(t->bytes, bytes);
    assert_int_equal(t->records, records);
    assert_true(t->why[0]);
    snprintf(kept, sizeof kept, "%s.torn-%zu", path, offset);
    assert_string_equal(t->kept_path, kept);
    wal_close(w);
    assert_kept(kept, image + offset, bytes);
    assert_cut_to(path, image, offset, was_len);
    assert_takes_append(path, want, n);
    assert_int_equal(unlink(kept), 0);
    assert_int_equal(files_named(dir, ".torn-"), 0);
}

/*
 * path (image[0..len) on disk) is damaged at offset: wal_repair() sets
 * aside bytes bytes into LOG.damaged-OFFSET, the log then replays want[0..n)
 * and takes an append; a second repair changes nothing. The kept file is
 * removed after.
 */
static void assert_repairs(const char *path, const unsigned char *image, const struct trec *want,
                           size_t n, size_t offset, size_t bytes, size_t records)
{
    struct xerr err = { 0 };
    struct wal_set_aside out;
    char dir[PATH_BYTES], kept[KEPT_BYTES];

    dir_of(path, dir);
    size_t was_len;
    free(test_read_file(path, &was_len));
    assert_ok(wal_repair(path, &out, &err), &err);
    assert_int_equal(out.offset, offset);
    assert_int_equal(out.bytes, bytes);
    assert_int_equal(out.records, records);
    assert_true(out.why[0]);
    snprintf(kept, sizeof kept, "%s.damaged-%zu", path, offset);
    assert_string_equal(out.kept_path, kept);
    assert_kept(kept, image + offset, bytes);
    assert_cut_to(path, image, offset, was_len);
    assert_replays(path, 0, want, n, n ? want[n - 1].seq : 0);
    assert_ok(wal_repair(path, &out, &err), &err);
    assert_int_equal(out.bytes, 0);
    assert_string_equal(out.kept_path, "");
    assert_takes_append(path, want, n);
    assert_int_equal(unlink(kept), 0);
    assert_int_equal(files_named(dir, ".damaged-"), 0);
}

/* ---- format, replay, limits ---- */

static void test_wal_open_new_file_writes_valid_header(void **state)
{
    char path[PATH_BYTES];
    struct xerr err = { 0 };
    struct wal *w = NULL;
    struct seen s = { 0 };
    uint64_t last = 0;
    size_t len;

    log_path(state, path);
    assert_ok(wal_open(path, 7, record_cb, &s, &w, &last, &err), &err);
    assert_non_null(w);
    assert_int_equal(last, 7);
    assert_int_equal(s.n, 0);
    assert_int_equal(wal_bytes(w), WAL_HEADER_BYTES);
    assert_int_equal(wal_fsyncs(w), 0);
    assert_int_equal(wal_torn_tail(w)->bytes, 0);
    wal_close(w);

    /* a header, then zeros to one whole step */
    unsigned char *data = test_read_file(path, &len);
    assert_int_equal(len, STEP);
    assert_memory_equal(data, WAL_MAGIC, 8);
    assert_int_equal(get_u32le(data + 8), WAL_VERSION);
    assert_int_equal(WAL_VERSION, 2);
    assert_int_equal(get_u32le(data + 12), crc32c(0, data, 12));
    assert_int_equal(nonzero_end(data, WAL_HEADER_BYTES, len), WAL_HEADER_BYTES);
    free(data);

    /* and it opens again as an empty log, unchanged */
    assert_replays(path, 0, NULL, 0, 0);
    data = test_read_file(path, &len);
    assert_int_equal(len, STEP);
    free(data);
}

static void test_wal_replays_every_record_in_order(void **state)
{
    char path[PATH_BYTES];
    struct xerr err = { 0 };
    struct wal *w = NULL;
    struct seen s = { 0 };
    uint64_t last = 0;
    size_t at = WAL_HEADER_BYTES;

    log_path(state, path);
    assert_ok(wal_open(path, 0, record_cb, &s, &w, &last, &err), &err);
    /* two batches: three records in one commit, two in another */
    for (size_t i = 0; i < 3; i++)
        add(w, &FIVE[i]);
    assert_int_equal(wal_bytes(w), WAL_HEADER_BYTES); /* nothing written before commit */
    assert_ok(wal_commit(w, &err), &err);
    for (size_t i = 3; i < 5; i++)
        add(w, &FIVE[i]);
    assert_ok(wal_commit(w, &err), &err);
    wal_close(w);

    /* the bytes are as wal.h documents them */
    size_t len;
    unsigned char *data = test_read_file(path, &len);
    assert_int_equal(len, STEP);
    for (size_t b = 0, r = 0; b < 2; b++) {
        size_t n = b == 0 ? 3 : 2, body = 0;
        for (size_t i = 0; i < n; i++)
            body += rec_bytes(&FIVE[r + i]);
        assert_int_equal(get_u64le(data + at), body);
        assert_int_equal(get_u32le(data + at + 8), n);
        assert_int_equal(get_u64le(data + at + 12), FIVE[r].seq);
        assert_int_equal(get_u32le(data + at + 20), crc32c(0, data + at, 20));
        at += WAL_BATCH_HEAD_BYTES;
        for (size_t i = 0; i < n; i++, r++) {
            size_t m = strlen(FIVE[r].payload);
            assert_int_equal(get_u32le(data + at), m);
            uint32_t crc = crc32c(0, data + at, 4);
            crc = crc32c(crc, data + at + 8, 9 + m);
            assert_int_equal(get_u32le(data + at + 4), crc);
            assert_int_equal(data[at + 8], FIVE[r].type);
            assert_int_equal(get_u64le(data + at + 9), FIVE[r].seq);
            assert_memory_equal(data + at + 17, FIVE[r].payload, m);
            at += rec_bytes(&FIVE[r]);
        }
    }
    assert_int_equal(nonzero_end(data, at, len), at);
    free(data);

    assert_replays(path, 0, FIVE, 5, 5);
    /* records at or below after_seq are skipped; last_seq is the highest seen */
    assert_replays(path, 3, FIVE + 3, 2, 5);
    assert_replays(path, 4, FIVE + 4, 1, 5);
    assert_replays(path, 5, NULL, 0, 5);
    assert_replays(path, 9, NULL, 0, 9);
    /* replay does not change a sound log */
    unsigned char *again = test_read_file(path, &len);
    assert_int_equal(len, STEP);
    free(again);
}

static void test_wal_appends_after_reopen_continue_the_log(void **state)
{
    char path[PATH_BYTES];
    struct xerr err = { 0 };
    struct wal *w = NULL;
    struct seen s = { 0 };
    uint64_t last = 0;
    struct layout lay;
    size_t len;
    static const size_t counts[] = { 1, 1, 1 };

    log_path(state, path);
    free(write_batches(path, FIVE, counts, 3, &lay, &len));
    assert_ok(wal_open(path, 0, record_cb, &s, &w, &last, &err), &err);
    assert_int_equal(last, 3);
    assert_int_equal(s.n, 3);
    assert_int_equal(wal_bytes(w), data_end(&lay));
    add(w, &FIVE[3]);
    add(w, &FIVE[4]);
    assert_ok(wal_commit(w, &err), &err);
    wal_close(w);
    assert_replays(path, 0, FIVE, 5, 5);
}

static void test_wal_fsyncs_counts_commits_and_growths(void **state)
{
    char path[PATH_BYTES];
    struct xerr err = { 0 };
    struct wal *w = NULL;
    struct seen s = { 0 };
    uint64_t last = 0;
    size_t len;

    log_path(state, path);
    assert_ok(wal_open(path, 0, record_cb, &s, &w, &last, &err), &err);
    assert_int_equal(wal_fsyncs(w), 0);
    /* an empty batch writes nothing and needs no fsync */
    assert_ok(wal_commit(w, &err), &err);
    assert_int_equal(wal_fsyncs(w), 0);
    assert_int_equal(wal_bytes(w), WAL_HEADER_BYTES);
    for (size_t i = 0; i < 5; i++) {
        add(w, &FIVE[i]);
        if (i % 2 == 0)
            assert_ok(wal_commit(w, &err), &err); /* commits after records 0, 2, 4 */
    }
    assert_int_equal(wal_fsyncs(w), 3);

    /*
     * A batch that does not fit in the file grows it by whole steps, and the
     * growth is made durable before the batch is written: one fsync more.
     */
    char *big = text(6, STEP);
    assert_int_equal(wal_add(w, WAL_PUT, 6, big, STEP), XE_OK);
    assert_ok(wal_commit(w, &err), &err);
    assert_int_equal(wal_fsyncs(w), 5);
    size_t end = wal_bytes(w);
    wal_close(w);
    unsigned char *data = test_read_file(path, &len);
    assert_int_equal(len, 2 * STEP);
    assert_true(end > STEP);
    assert_int_equal(nonzero_end(data, 0, len), end);
    free(data);
    free(big);
    assert_replays(path, 6, NULL, 0, 6);
}

static void test_wal_add_refuses_payload_over_limit(void **state)
{
    char path[PATH_BYTES];
    struct xerr err = { 0 };
    struct wal *w = NULL;
    struct seen s = { 0 };
    uint64_t last = 0;
    size_t big = WAL_PAYLOAD_MAX + 1;
    char *payload = calloc(1, big);

    /* a record holds a stored document, which is larger than its JSON */
    assert_true(WAL_PAYLOAD_MAX > (size_t)DOC_MAX_BYTES);
    assert_non_null(payload);
    log_path(state, path);
    assert_ok(wal_open(path, 0, record_cb, &s, &w, &last, &err), &err);
    assert_int_equal(wal_add(w, WAL_PUT, 1, payload, big), XE_LIMIT);
    assert_int_equal(wal_add(w, WAL_DELETE, 1, payload, big), XE_LIMIT);
    assert_int_equal(wal_add(w, WAL_PUT, 1, payload, SIZE_MAX), XE_LIMIT);
    /* the refused records are not in the batch: the next one commits alone */
    add(w, &FIVE[0]);
    assert_ok(wal_commit(w, &err), &err);
    size_t one = WAL_HEADER_BYTES + WAL_BATCH_HEAD_BYTES + rec_bytes(&FIVE[0]);
    assert_int_equal(wal_bytes(w), one);
    /* exactly the cap is taken (and dropped again here, unwritten) */
    assert_int_equal(wal_add(w, WAL_PUT, 2, payload, WAL_PAYLOAD_MAX), XE_OK);
    assert_int_equal(wal_add(w, WAL_PUT, 3, payload, (size_t)DOC_MAX_BYTES + 1), XE_OK);
    wal_discard(w);
    assert_ok(wal_commit(w, &err), &err);
    assert_int_equal(wal_bytes(w), one);
    wal_close(w);
    free(payload);
    assert_replays(path, 0, FIVE, 1, 1);
}

/* What replay refuses as damage, wal_add() never puts into a batch. */
static void test_wal_add_refuses_what_replay_would_refuse(void **state)
{
    char path[PATH_BYTES];
    struct xerr err = { 0 };
    struct wal *w = NULL;
    struct seen s = { 0 };
    uint64_t last = 0;

    log_path(state, path);
    assert_ok(wal_open(path, 0, record_cb, &s, &w, &last, &err), &err);
    assert_int_equal(wal_add(w, (enum wal_type)7, 1, "x", 1), XE_INPUT);
    assert_int_equal(wal_add(w, (enum wal_type)0, 1, "x", 1), XE_INPUT);
    assert_int_equal(wal_add(w, WAL_PUT, 0, "x", 1), XE_INPUT);
    add(w, &FIVE[0]);
    assert_int_equal(wal_add(w, WAL_PUT, 3, "x", 1), XE_INPUT); /* 2 must come next */
    assert_int_equal(wal_add(w, WAL_PUT, 1, "x", 1), XE_INPUT);
    add(w, &FIVE[1]);
    assert_ok(wal_commit(w, &err), &err);
    /* a batch must start above every sequence number in the log */
    assert_int_equal(wal_add(w, WAL_PUT, 2, "x", 1), XE_INPUT);
    assert_int_equal(wal_add(w, WAL_PUT, 1, "x", 1), XE_INPUT);
    wal_close(w);
    /* after a reopen too, whatever after_seq is; a gap is fine */
    for (uint64_t after = 0; after <= 3; after += 3) {
        w = NULL;
        assert_ok(wal_open(path, after, record_cb, &(struct seen){ 0 }, &w, &last, &err), &err);
        assert_int_equal(wal_add(w, WAL_PUT, 2, "x", 1), XE_INPUT);
        wal_close(w);
    }
    w = NULL;
    assert_ok(wal_open(path, 0, record_cb, &(struct seen){ 0 }, &w, &last, &err), &err);
    const struct trec gap = { WAL_PUT, 9, "{\"id\":\"gap\"}" };
    add(w, &gap);
    assert_ok(wal_commit(w, &err), &err);
    wal_close(w);
    const struct trec want[] = { FIVE[0], FIVE[1], gap };
    assert_replays(path, 0, want, 3, 9);
}

/* What a replay of big records saw: their count, types, sequence numbers and lengths. */
struct big_seen {
    size_t n;
    enum wal_type type[4];
    uint64_t seq[4];
    size_t len[4];
    bool payload_ok[4]; /* every payload byte as written: (seq + i) & 0xff */
};

static int big_cb(void *ctx, const struct wal_record *rec, struct xerr *err)
{
    struct big_seen *s = ctx;

    if (s->n == 4)
        return xerr_set(err, XE_INPUT, "too many records");
    s->type[s->n] = rec->type;
    s->seq[s->n] = rec->seq;
    s->len[s->n] = rec->len;
    s->payload_ok[s->n] = true;
    for (size_t i = 0; i < rec->len; i++)
        if ((unsigned char)rec->payload[i] != (unsigned char)(rec->seq + i))
            s->payload_ok[s->n] = false;
    s->n++;
    return XE_OK;
}

/* A record of exactly WAL_PAYLOAD_MAX bytes is written and replayed whole. */
static void test_wal_replays_record_of_the_largest_payload(void **state)
{
    char path[PATH_BYTES];
    struct xerr err = { 0 };
    struct wal *w = NULL;
    struct big_seen s = { 0 };
    uint64_t last = 0;
    unsigned char *payload = malloc(WAL_PAYLOAD_MAX);

    assert_non_null(payload);
    for (size_t i = 0; i < WAL_PAYLOAD_MAX; i++)
        payload[i] = (unsigned char)(2 + i);
    log_path(state, path);
    assert_ok(wal_open(path, 0, big_cb, &s, &w, &last, &err), &err);
    assert_int_equal(wal_add(w, WAL_DELETE, 1, "id", 2), XE_OK);
    assert_int_equal(wal_add(w, WAL_PUT, 2, payload, WAL_PAYLOAD_MAX), XE_OK);
    assert_ok(wal_commit(w, &err), &err);
    size_t end = WAL_HEADER_BYTES + WAL_BATCH_HEAD_BYTES + 2 * WAL_RECORD_HEAD_BYTES + 2 +
                 WAL_PAYLOAD_MAX;
    assert_int_equal(wal_bytes(w), end);
    wal_close(w);
    free(payload);
    size_t len;
    unsigned char *data = test_read_file(path, &len);
    assert_int_equal(len, round_step(end));
    free(data);

    w = NULL;
    assert_ok(wal_open(path, 0, big_cb, &s, &w, &last, &err), &err);
    wal_close(w);
    assert_int_equal(s.n, 2);
    assert_int_equal(last, 2);
    assert_int_equal(s.type[0], WAL_DELETE);
    assert_int_equal(s.len[0], 2);
    assert_int_equal(s.type[1], WAL_PUT);
    assert_int_equal(s.seq[1], 2);
    assert_int_equal(s.len[1], WAL_PAYLOAD_MAX);
    assert_true(s.payload_ok[1]);
}

static void test_wal_discard_drops_the_pending_batch(void **state)
{
    char path[PATH_BYTES];
    struct xerr err = { 0 };
    struct wal *w = NULL;
    struct seen s = { 0 };
    uint64_t last = 0;
    const struct trec after[] = { FIVE[0], { WAL_PUT, 2, "kept" } };

    log_path(state, path);
    assert_ok(wal_open(path, 0, record_cb, &s, &w, &last, &err), &err);
    wal_discard(w); /* nothing pending: nothing happens */
    add(w, &FIVE[0]);
    assert_ok(wal_commit(w, &err), &err);
    size_t one = wal_bytes(w);
    /* a batch added, then dropped: nothing of it is written, nor fsynced */
    add(w, &FIVE[1]);
    add(w, &FIVE[2]);
    wal_discard(w);
    assert_ok(wal_commit(w, &err), &err);
    assert_int_equal(wal_fsyncs(w), 1);
    assert_int_equal(wal_bytes(w), one);
    /* the next batch reuses the dropped sequence numbers, and is all there is */
    add(w, &after[1]);
    assert_ok(wal_commit(w, &err), &err);
    assert_int_equal(wal_fsyncs(w), 2);
    wal_close(w);
    assert_replays(path, 0, after, 2, 2);
}

static void test_wal_replay_callback_error_stops_replay(void **state)
{
    char path[PATH_BYTES];
    struct xerr err = { 0 };
    struct wal *w = NULL;
    struct seen s = { .fail_at = 3 };
    uint64_t last;
    size_t before_len, after_len;
    struct layout lay;
    static const size_t counts[] = { 2, 3 };

    log_path(state, path);
    unsigned char *before = write_batches(path, FIVE, counts, 2, &lay, &before_len);
    assert_int_equal(wal_open(path, 0, record_cb, &s, &w, &last, &err), XE_INPUT);
    assert_null(w);
    assert_string_equal(err.msg, "callback refused seq 3");
    assert_seen(&s, FIVE, 2); /* nothing after the failing record was delivered */
    unsigned char *after = test_read_file(path, &after_len);
    assert_int_equal(after_len, before_len); /* and the log is left alone */
    assert_memory_equal(after, before, before_len);
    free(before);
    free(after);
    /* with the callback happy, everything is still there */
    assert_replays(path, 0, FIVE, 5, 5);
}

/*
 * Space after the data is zeros: a file cut inside them (a size that is not
 * a whole step, but nothing lost) opens, is grown back to a whole step, and
 * nothing is set aside. A log of zeros after its header is an empty log, and
 * so is the header alone (a crash while the log was made). A cut exactly at
 * the end of the last batch is not harmless: see
 * test_wal_refuses_log_cut_after_a_batch.
 */
static void test_wal_opens_log_cut_inside_its_zeros(void **state)
{
    char path[PATH_BYTES];
    size_t len;
    struct layout lay;
    static const size_t counts[] = { 3, 2 };
    static const size_t extra[] = { 1, 4, 23, 24, 512, 4096, 65536 + 3 };

    log_path(state, path);
    unsigned char *full = write_batches(path, FIVE, counts, 2, &lay, &len);
    for (size_t i = 0; i < sizeof extra / sizeof *extra; i++) {
        test_write_file(path, full, data_end(&lay) + extra[i]);
        assert_replays(path, 0, FIVE, 5, 5);
        assert_cut_to(path, full, data_end(&lay), 0);
        assert_takes_append(path, FIVE, 5);
        test_write_file(path, full, len);
    }
    memset(full + WAL_HEADER_BYTES, 0, len - WAL_HEADER_BYTES);
    test_write_file(path, full, len);
    assert_replays(path, 0, NULL, 0, 0);
    test_write_file(path, full, WAL_HEADER_BYTES);
    assert_replays(path, 0, NULL, 0, 0);
    assert_cut_to(path, full, WAL_HEADER_BYTES, 0);
    assert_takes_append(path, NULL, 0);
    free(full);
}

/*
 * path (a log cut exactly at the end of its batch at good, at least one) is
 * refused, saying so, and left as it was; wal_repair() keeps every batch,
 * sets nothing aside and grows the file back to a whole step; it then
 * replays want[0..n) and takes an append.
 */
static void assert_cut_after_batch(const char *path, const unsigned char *image,
                                   const struct trec *want, size_t n, size_t good)
{
    struct xerr err = { 0 };
    struct wal *w = NULL;
    struct wal_set_aside out;
    char dir[PATH_BYTES], ends[64];

    dir_of(path, dir);
    assert_refused_at(path, -1, -1);
    assert_int_equal(wal_open(path, 0, record_cb, &(struct seen){ 0 }, &w, &(uint64_t){ 0 },
                              &err),
                     XE_CORRUPT);
    assert_non_null(strstr(err.msg, "cut short after a batch"));
    snprintf(ends, sizeof ends, "ends at byte %zu,", good);
    assert_non_null(strstr(err.msg, ends));
    /* whole: not cut at the message's size */
    assert_non_null(strstr(err.msg, "keeps every batch and starts from there"));
    assert_ok(wal_repair(path, &out, &err), &err);
    assert_int_equal(out.offset, good);
    assert_int_equal(out.bytes, 0);
    assert_int_equal(out.records, 0);
    assert_string_equal(out.kept_path, "");
    assert_non_null(strstr(out.why, "cut short after a batch"));
    assert_int_equal(files_named(dir, LOG_NAME "."), 0);
    assert_cut_to(path, image, good, good);
    assert_replays(path, 0, want, n, want[n - 1].seq);
    assert_ok(wal_repair(path, &out, &err), &err);
    assert_int_equal(out.bytes, 0);
    assert_string_equal(out.why, "");
    assert_takes_append(path, want, n);
}

/*
 * The file cut exactly at the end of a batch (after a kill -9, `truncate -s`
 * to a batch's offset): the file always grows in whole steps before a batch
 * goes in, so batches after the cut were lost: damage, refused, repairable.
 * At a whole step it cannot be told from a full log (what the format cannot
 * tell).
 */
static void test_wal_refuses_log_cut_after_a_batch(void **state)
{
    char path[PATH_BYTES];
    size_t len;
    struct layout lay;
    static const size_t counts[] = { 3, 2 };

    log_path(state, path);
    unsigned char *full = write_batches(path, FIVE, counts, 2, &lay, &len);
    /* after the last batch, and after the first (the second lost) */
    test_write_file(path, full, data_end(&lay));
    assert_cut_after_batch(path, full, FIVE, 5, data_end(&lay));
    test_write_file(path, full, lay.batch_at[1]);
    assert_cut_after_batch(path, full, FIVE, 3, lay.batch_at[1]);
    free(full);

    /* a batch that ends exactly at a whole step: the log is full, and sound */
    static const size_t big_len[] = {
        STEP - WAL_HEADER_BYTES - WAL_BATCH_HEAD_BYTES - WAL_RECORD_HEAD_BYTES
    };
    struct trec *big = make_recs(big_len, 1);
    full = write_batches(path, big, (const size_t[]){ 1 }, 1, &lay, &len);
    assert_int_equal(data_end(&lay), STEP);
    assert_int_equal(len, STEP);
    assert_replays(path, 0, big, 1, big[0].seq);
    assert_takes_append(path, big, 1);
    free(full);
    free_recs(big, 1);
}

/*
 * Setting a torn tail aside zeros it in place: a log of two steps keeps its
 * size (it is not cut to the batches and grown back, which would leave,
 * between the two, a size that reads as a cut after a batch). When the disk
 * fails at any point of it, the log still opens after and loses nothing
 * acknowledged.
 */
static void test_wal_set_aside_zeros_in_place(void **state)
{
    char path[PATH_BYTES], dir[PATH_BYTES];
    size_t len;
    struct layout lay;
    static const size_t counts[] = { 3, 2 };

    log_path(state, path);
    dir_of(path, dir);
    unsigned char *full = write_batches(path, FIVE, counts, 2, &lay, &len);
    size_t at = lay.batch_at[1], end = data_end(&lay);
    unsigned char *image = calloc(1, 2 * STEP);
    assert_non_null(image);
    memcpy(image, full, end);
    image[end - 1] = 0; /* a prefix of the last batch: torn */
    test_write_file(path, image, 2 * STEP);
    assert_torn(path, image, FIVE, 3, at, end - at, 2);
    size_t now_len;
    free(test_read_file(path, &now_len));
    assert_int_equal(now_len, 2 * STEP); /* after the append too */

    for (long after = 0; after < 40; after++) {
        test_write_file(path, image, 2 * STEP);
        remove_named(dir, ".torn-");
        struct xerr err = { 0 };
        struct wal *w = NULL;
        uint64_t last;
        fs_fault_set(after, ENOSPC);
        int rc = wal_open(path, 0, record_cb, &(struct seen){ 0 }, &w, &last, &err);
        fs_fault_clear();
        if (!rc)
            wal_close(w);
        else
            assert_int_equal(rc, XE_IO);
        /* opens (setting the tail aside now when the fault stopped it), then clean */
        struct seen s = { 0 };
        assert_ok(wal_open(path, 0, record_cb, &s, &w, &last, &err), &err);
        assert_seen(&s, FIVE, 3);
        wal_close(w);
        assert_replays(path, 0, FIVE, 3, 3);
        free(test_read_file(path, &now_len));
        assert_int_equal(now_len, 2 * STEP);
    }
    remove_named(dir, ".torn-");
    free(image);
    free(full);
}

/* ---- torn tails ---- */

/*
 * The last batch cut at every length, zeros after it as a preallocated file
 * has (a crash, or a process killed inside write()): a torn tail. Its bytes
 * are set aside from its start to its end (its head says where), with the
 * records that were written whole; an empty cut is no batch at all.
 */
static void test_wal_sets_aside_last_batch_cut_at_every_length(void **state)
{
    char path[PATH_BYTES];
    size_t len;
    struct layout lay;
    /* the last batch is 3 records over two sectors; the first two batches are small */
    static const size_t lens[] = { 30, 5, 40, 200, 3, 380 };
    static const size_t counts[] = { 2, 1, 3 };

    log_path(state, path);
    struct trec *recs = make_recs(lens, 6);
    unsigned char *full = write_batches(path, recs, counts, 3, &lay, &len);
    unsigned char *image = malloc(len);
    assert_non_null(image);
    size_t at = lay.batch_at[2], end = data_end(&lay);
    assert_true(end / WAL_SECTOR_BYTES > at / WAL_SECTOR_BYTES);

    for (size_t cut = at; cut < end; cut++) {
        memcpy(image, full, len);
        memset(image + cut, 0, end - cut);
        test_write_file(path, image, len);
        size_t written = nonzero_end(image, at, cut);
        if (written == at) {
            assert_replays(path, 0, recs, 3, 3); /* nothing of it reached the disk */
            continue;
        }
        size_t bytes = cut >= at + WAL_BATCH_HEAD_BYTES ? end - at : written - at;
        assert_torn(path, image, recs, 3, at, bytes, records_in(&lay, at, cut, 0, 0));
    }
    /* whole, it all replays */
    test_write_file(path, full, len);
    assert_replays(path, 0, recs, 6, 6);
    free(image);
    free(full);
    free_recs(recs, 6);
}

/*
 * Any one sector of the last batch that never reached the disk (its share
 * of the batch reads as zeros; the share of the batch before it was already
 * there): a torn tail, all its records counted (its head says how many).
 * A sector that holds the head of the batch, torn, too (the records in the
 * other sectors counted).
 */
static void test_wal_sets_aside_last_batch_with_a_sector_zeroed(void **state)
{
    char path[PATH_BYTES];
    size_t len;
    struct layout lay;
    /* the last batch's head straddles byte 512; its body runs over 3 more sectors */
    static const size_t lens[] = { 448, 100, 300, 120, 500, 90 };
    static const size_t counts[] = { 1, 5 };

    log_path(state, path);
    struct trec *recs = make_recs(lens, 6);
    unsigned char *full = write_batches(path, recs, counts, 2, &lay, &len);
    unsigned char *image = malloc(len);
    assert_non_null(image);
    size_t at = lay.batch_at[1], end = data_end(&lay);
    assert_int_equal(at, 505);

    for (size_t sector = at / WAL_SECTOR_BYTES * WAL_SECTOR_BYTES; sector < end;
         sector += WAL_SECTOR_BYTES) {
        size_t from = sector > at ? sector : at;
        size_t to = sector + WAL_SECTOR_BYTES < end ? sector + WAL_SECTOR_BYTES : end;
        memcpy(image, full, len);
        memset(image + from, 0, to - from);
        test_write_file(path, image, len);
        bool head_hit = from < at + WAL_BATCH_HEAD_BYTES;
        size_t bad_end = head_hit ? nonzero_end(image, at, len) : end;
        assert_torn(path, image, recs, 1, at, bad_end - at,
                    records_in(&lay, at, bad_end, from, to));
    }
    free(image);
    free(full);
    free_recs(recs, 6);
}

/*
 * A batch whose head is whole but which runs past the end of a file whose
 * size is a whole step: the growth did not become durable before the crash.
 * A torn tail; the same cut at a size that is not a whole step is damage.
 */
static void test_wal_sets_aside_batch_running_past_a_whole_step(void **state)
{
    char path[PATH_BYTES];
    size_t len;
    struct layout lay;
    static const size_t lens[] = { STEP - 300, 150, 220 };
    static const size_t counts[] = { 1, 2 };

    log_path(state, path);
    struct trec *recs = make_recs(lens, 3);
    unsigned char *full = write_batches(path, recs, counts, 2, &lay, &len);
    size_t at = lay.batch_at[1];
    assert_int_equal(len, 2 * STEP);
    assert_true(at < STEP && data_end(&lay) > STEP);

    test_write_file(path, full, STEP);
    assert_torn(path, full, recs, 1, at, STEP - at, records_in(&lay, at, STEP, 0, 0));
    /* cut a byte shorter: the size is not a whole step, the file was cut */
    test_write_file(path, full, STEP - 1);
    assert_refused_at(path, (long long)at, (long long)records_in(&lay, at, STEP - 1, 0, 0));
    assert_repairs(path, full, recs, 1, at, STEP - 1 - at, records_in(&lay, at, STEP - 1, 0, 0));
    free(full);
    free_recs(recs, 3);
}

/*
 * Kept files are never overwritten: the same offset torn twice with other
 * bytes keeps both; the same bytes again (a crash after they were kept,
 * before the log was cut) reuse the file.
 */
static void test_wal_keeps_every_torn_tail_at_one_offset(void **state)
{
    char path[PATH_BYTES], dir[PATH_BYTES], kept[KEPT_BYTES];
    size_t len;
    struct layout lay;
    static const size_t counts[] = { 3, 2 };
    struct xerr err = { 0 };
    struct wal *w;
    uint64_t last;

    log_path(state, path);
    dir_of(path, dir);
    unsigned char *full = write_batches(path, FIVE, counts, 2, &lay, &len);
    size_t at = lay.batch_at[1], end = data_end(&lay);
    unsigned char *image = malloc(len);
    assert_non_null(image);
    memcpy(image, full, len);
    memset(image + end - 3, 0, 3); /* the last record's payload */
    /* the kept file already there with those very bytes */
    snprintf(kept, sizeof kept, "%s.torn-%zu", path, at);
    test_write_file(kept, image + at, end - at);
    test_write_file(path, image, len);
    w = NULL;
    assert_ok(wal_open(path, 0, record_cb, &(struct seen){ 0 }, &w, &last, &err), &err);
    assert_string_equal(wal_torn_tail(w)->kept_path, kept);
    wal_close(w);
    assert_int_equal(files_named(dir, ".torn-"), 1);
    /* torn again at the same offset, other bytes */
    memcpy(image, full, len);
    memset(image + end - 12, 0, 12); /* its sequence number too */
    test_write_file(path, image, len);
    w = NULL;
    assert_ok(wal_open(path, 0, record_cb, &(struct seen){ 0 }, &w, &last, &err), &err);
    char second[KEPT_BYTES];
    snprintf(second, sizeof second, "%s.torn-%zu-2", path, at);
    assert_string_equal(wal_torn_tail(w)->kept_path, second);
    wal_close(w);
    assert_int_equal(files_named(dir, ".torn-"), 2);
    assert_kept(second, image + at, end - at);
    memcpy(image + end - 12, full + end - 12, 9);
    assert_kept(kept, image + at, end - at);
    remove_named(dir, ".torn-");
    free(image);
    free(full);
}

/*
 * A version 1 log with nothing after its header (a clean stop before an
 * upgrade) is made afresh as version 2; with bytes after it, it is read by
 * version 1's rules (tests/test_upgrade.c): here a torn tail, kept beside,
 * the log left as it was.
 */
static void test_wal_makes_empty_version_1_log_afresh(void **state)
{
    char path[PATH_BYTES];
    unsigned char v1[WAL_HEADER_BYTES + 40] = { 0 };
    size_t len;

    log_path(state, path);
    memcpy(v1, WAL_MAGIC, 8);
    put_u32le(v1 + 8, 1);
    put_u32le(v1 + 12, crc32c(0, v1, 12));
    for (size_t extra = 0; extra <= 40; extra += 40) {
        test_write_file(path, v1, WAL_HEADER_BYTES + extra);
        assert_replays(path, 3, NULL, 0, 3);
        unsigned char *data = test_read_file(path, &len);
        assert_int_equal(len, STEP);
        assert_int_equal(get_u32le(data + 8), WAL_VERSION);
        assert_int_equal(get_u32le(data + 12), crc32c(0, data, 12));
        free(data);
        assert_takes_append(path, NULL, 0);
    }
    /* one byte after the header: a record head whose checksum fails, zeros
     * after it: version 1's torn tail */
    v1[WAL_HEADER_BYTES + 7] = 1;
    test_write_file(path, v1, sizeof v1);
    struct wal *w = NULL;
    uint64_t last;
    struct xerr err = { 0 };
    assert_int_equal(wal_open(path, 0, NULL, NULL, &w, &last, &err), XE_OK);
    assert_int_equal(wal_version(w), 1);
    assert_int_equal(wal_torn_tail(w)->offset, WAL_HEADER_BYTES);
    assert_int_equal(wal_torn_tail(w)->bytes, 8);
    wal_close(w);
    unsigned char *data = test_read_file(path, &len);
    assert_int_equal(len, sizeof v1);
    assert_memory_equal(data, v1, sizeof v1);
    free(data);
}

/* A file shorter than a header, or all zeros, was torn while it was made: it starts afresh. */
static void test_wal_restarts_log_torn_inside_header(void **state)
{
    char path[PATH_BYTES];
    size_t len;

    log_path(state, path);
    assert_replays(path, 0, NULL, 0, 0);
    unsigned char *made = test_read_file(path, &len);
    assert_int_equal(len, STEP);
    for (size_t cut = 0; cut < WAL_HEADER_BYTES; cut++) {
        test_write_file(path, made, cut);
        assert_replays(path, 0, NULL, 0, 0);
        size_t got_len;
        unsigned char *got = test_read_file(path, &got_len);
        assert_int_equal(got_len, len);
        assert_memory_equal(got, made, len);
        free(got);
    }
    /* the header alone: an empty log, grown to a whole step */
    test_write_file(path, made, WAL_HEADER_BYTES);
    assert_replays(path, 0, NULL, 0, 0);
    assert_cut_to(path, made, WAL_HEADER_BYTES, 0);
    free(made);
}

/* ---- damage ---- */

/*
 * Every bit of a small last batch flipped, its head included: every sector
 * is there and the batch ends in the byte it was written with, so this is
 * no crash. Refused at the batch with both its records when its head still
 * checks, else with those that still check out; repaired (a sample) to the
 * batch before.
 */
static void test_wal_refuses_any_bit_flipped_in_the_last_batch(void **state)
{
    char path[PATH_BYTES];
    size_t len;
    struct layout lay;
    static const size_t counts[] = { 3, 2 };

    log_path(state, path);
    unsigned char *full = write_batches(path, FIVE, counts, 2, &lay, &len);
    size_t at = lay.batch_at[1], end = data_end(&lay);
    assert_true(at / WAL_SECTOR_BYTES == (end - 1) / WAL_SECTOR_BYTES);

    for (size_t bit = 0; bit < (end - at) * 8; bit++) {
        size_t byte = at + bit / 8;
        full[byte] ^= (unsigned char)(1u << (bit % 8));
        test_write_file(path, full, len);
        size_t lose = records_in(&lay, at, end, byte, byte + 1);
        assert_refused_at(path, (long long)at, (long long)lose);
        if (bit % 97 == 0 || bit + 1 == (end - at) * 8)
            assert_repairs(path, full, FIVE, 3, at, end - at, lose);
        full[byte] ^= (unsigned char)(1u << (bit % 8));
    }
    test_write_file(path, full, len);
    assert_replays(path, 0, FIVE, 5, 5);
    free(full);
}

/*
 * A last batch of one DELETE with any bit of its record flipped (the
 * payload's last byte stays not zero: no crash): the head still checks, so
 * the refusal counts the one acknowledged write at stake, with its sequence
 * number, not the records that still check out (none); repair says the same.
 */
static void test_wal_refusal_counts_a_damaged_one_record_last_batch(void **state)
{
    char path[PATH_BYTES], want[160];
    size_t len;
    struct layout lay;
    static const size_t counts[] = { 4, 1 };

    log_path(state, path);
    unsigned char *full = write_batches(path, FIVE, counts, 2, &lay, &len);
    size_t at = lay.batch_at[1], end = data_end(&lay);
    assert_int_equal(FIVE[4].type, WAL_DELETE);
    assert_int_equal(end - at, 43);
    snprintf(want, sizeof want,
             "batch at byte %zu is damaged (a record checksum mismatch); 1 acknowledged records "
             "(sequence 5 to 5) are in the 43 bytes from there",
             at);

    for (size_t bit = 0; bit < (end - at - WAL_BATCH_HEAD_BYTES) * 8; bit++) {
        size_t byte = at + WAL_BATCH_HEAD_BYTES + bit / 8;
        full[byte] ^= (unsigned char)(1u << (bit % 8));
        assert_int_not_equal(full[end - 1], 0);
        test_write_file(path, full, len);
        assert_refused_at(path, (long long)at, 1);
        struct xerr err = { 0 };
        struct wal *w = NULL;
        uint64_t last;
        assert_int_equal(wal_open(path, 0, record_cb, &(struct seen){ 0 }, &w, &last, &err),
                         XE_CORRUPT);
        if (!strstr(err.msg, want))
            print_error("want \"%s\" in: %s\n", want, err.msg);
        assert_non_null(strstr(err.msg, want));
        if (bit % 29 == 0) {
            struct wal_set_aside out;
            char kept[KEPT_BYTES];
            assert_ok(wal_repair(path, &out, &err), &err);
            assert_int_equal(out.offset, at);
            assert_int_equal(out.bytes, 43);
            assert_int_equal(out.records, 1);
            assert_int_equal(out.first_seq, 5);
            assert_int_equal(out.last_seq, 5);
            snprintf(kept, sizeof kept, "%s.damaged-%zu", path, at);
            assert_string_equal(out.kept_path, kept);
            assert_int_equal(unlink(kept), 0);
            assert_replays(path, 0, FIVE, 4, 4);
        }
        full[byte] ^= (unsigned char)(1u << (bit % 8));
    }
    free(full);
}

/*
 * A bit flipped in a middle batch (each byte of its head, every third byte
 * of its body, one bit): refused there, the
 * records from it on counted; a sector of a middle batch zeroed likewise
 * (bytes after a bad batch: no crash tears anything but the last).
 */
static void test_wal_refuses_damaged_middle_batch(void **state)
{
    char path[PATH_BYTES];
    size_t len;
    struct layout lay;
    static const size_t lens[] = { 40, 6, 1200, 50, 8, 60 };
    static const size_t counts[] = { 2, 3, 1 };

    log_path(state, path);
    struct trec *recs = make_recs(lens, 6);
    unsigned char *full = write_batches(path, recs, counts, 3, &lay, &len);
    size_t at = lay.batch_at[1], next = lay.batch_at[2], end = data_end(&lay);

    for (size_t byte = at; byte < next; byte += byte < at + WAL_BATCH_HEAD_BYTES ? 1 : 3) {
        unsigned char mask = (unsigned char)(1u << (byte % 8));
        full[byte] ^= mask;
        test_write_file(path, full, len);
        size_t lose = records_in(&lay, at, end, byte, byte + 1);
        assert_refused_at(path, (long long)at, (long long)lose);
        if (byte % 101 == 0)
            assert_repairs(path, full, recs, 2, at, end - at, lose);
        full[byte] ^= mask;
    }
    /* a sector of the middle batch zeroed (the one after its head's) */
    unsigned char *image = malloc(len);
    assert_non_null(image);
    memcpy(image, full, len);
    size_t sector = (at / WAL_SECTOR_BYTES + 1) * WAL_SECTOR_BYTES;
    assert_true(sector + WAL_SECTOR_BYTES < next);
    memset(image + sector, 0, WAL_SECTOR_BYTES);
    test_write_file(path, image, len);
    size_t lose = records_in(&lay, at, end, sector, sector + WAL_SECTOR_BYTES);
    assert_int_equal(lose, 4); /* its three records (its head holds), and the last batch's */
    assert_refused_at(path, (long long)at, (long long)lose);
    assert_repairs(path, image, recs, 2, at, end - at, lose);
    /* its head zeroed, a whole batch after it */
    memcpy(image, full, len);
    memset(image + at, 0, WAL_BATCH_HEAD_BYTES);
    test_write_file(path, image, len);
    lose = records_in(&lay, at, end, at, at + WAL_BATCH_HEAD_BYTES);
    assert_int_equal(lose, 4); /* its three records, each checked, and the last batch's */
    assert_refused_at(path, (long long)at, (long long)lose);
    assert_repairs(path, image, recs, 2, at, end - at, lose);
    free(image);
    free(full);
    free_recs(recs, 6);
}

/*
 * The last batch torn-looking (a sector zeroed, or its last bytes) but
 * followed by bytes that are not zero, anywhere in the file: damage.
 */
static void test_wal_refuses_bytes_after_a_bad_batch(void **state)
{
    char path[PATH_BYTES];
    size_t len;
    struct layout lay;
    static const size_t lens[] = { 40, 6, 700, 50 };
    static const size_t counts[] = { 2, 2 };
    static const size_t stray[] = { 0, 1, 511, 512, 4096, STEP - 1 }; /* after the end */

    log_path(state, path);
    struct trec *recs = make_recs(lens, 4);
    unsigned char *full = write_batches(path, recs, counts, 2, &lay, &len);
    size_t at = lay.batch_at[1], end = data_end(&lay);
    unsigned char *image = malloc(len);
    assert_non_null(image);

    for (size_t i = 0; i < sizeof stray / sizeof *stray; i++) {
        size_t where = end + stray[i] < len ? end + stray[i] : len - 1;
        for (int how = 0; how < 2; how++) {
            memcpy(image, full, len);
            size_t hole = how ? end - 4 : (at / WAL_SECTOR_BYTES + 1) * WAL_SECTOR_BYTES;
            size_t hole_end = how || hole + WAL_SECTOR_BYTES > end ? end : hole + WAL_SECTOR_BYTES;
            memset(image + hole, 0, hole_end - hole);
            image[where] = 0x5a;
            test_write_file(path, image, len);
            size_t lose = records_in(&lay, at, end, hole, hole_end);
            assert_refused_at(path, (long long)at, (long long)lose);
            if (i % 2 == 0)
                assert_repairs(path, image, recs, 2, at, where + 1 - at, lose);
        }
    }
    free(image);
    free(full);
    free_recs(recs, 4);
}

/* Bytes 1..255 from a fixed seed: garbage with no zero byte, so no sector of it reads as unwritten. */
static void garbage(unsigned char *p, size_t len, uint32_t seed)
{
    for (size_t i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (unsigned char)(seed >> 16);
        if (!p[i])
            p[i] = 0xa5;
    }
}

/* The last 4 KiB of the data replaced by garbage: refused at the batch it starts in, with
 * all that batch's records when its head is spared and the records before the garbage. */
static void test_wal_refuses_last_4k_replaced_by_garbage(void **state)
{
    char path[PATH_BYTES];
    size_t len;
    struct layout lay;
    size_t lens[12], counts[6];

    for (size_t i = 0; i < 12; i++)
        lens[i] = 180 + 37 * i;
    for (size_t b = 0; b < 6; b++)
        counts[b] = 2;
    log_path(state, path);
    struct trec *recs = make_recs(lens, 12);
    unsigned char *full = write_batches(path, recs, counts, 6, &lay, &len);
    size_t end = data_end(&lay);
    assert_true(end > 4096 + WAL_HEADER_BYTES);
    for (uint32_t seed = 1; seed <= 3; seed++) {
        unsigned char *image = malloc(len);
        assert_non_null(image);
        memcpy(image, full, len);
        size_t from = end - 4096 - (seed - 1) * 100;
        garbage(image + from, end - from, seed);
        test_write_file(path, image, len);
        size_t b = batch_of(&lay, from), at = lay.batch_at[b];
        size_t lose = records_in(&lay, at, end, from, end);
        assert_refused_at(path, (long long)at, (long long)lose);
        assert_repairs(path, image, recs, lay.first_rec[b], at, end - at, lose);
        free(image);
    }
    free(full);
    free_recs(recs, 12);
}

/*
 * The file cut at every size inside the batches that is not a whole step:
 * damage, refused at the batch the cut falls in, with all its records
 * when its head is before the cut (none when the cut falls inside its head).
 * Cut between batches: damage too (the file was cut short after a batch),
 * repaired by keeping every batch. One layout has a head across a sector boundary,
 * where a cut leaves a sector's share of zeros.
 */
static void test_wal_refuses_file_cut_inside_a_batch(void **state)
{
    char path[PATH_BYTES];
    size_t len;
    struct layout lay;
    static const size_t lens_a[] = { 30, 5, 40, 6, 3, 21 };
    static const size_t counts_a[] = { 2, 1, 3 };
    static const size_t lens_b[] = { 448, 7, 60 };
    static const size_t counts_b[] = { 1, 2 };

    log_path(state, path);
    for (int layout = 0; layout < 2; layout++) {
        const size_t *lens = layout ? lens_b : lens_a, *counts = layout ? counts_b : counts_a;
        size_t n_recs = layout ? 3 : 6, n_batches = layout ? 2 : 3;
        struct trec *recs = make_recs(lens, n_recs);
        unsigned char *full = write_batches(path, recs, counts, n_batches, &lay, &len);
        if (layout)
            assert_int_equal(lay.batch_at[1], 505);
        for (size_t cut = WAL_HEADER_BYTES + 1; cut < data_end(&lay); cut++) {
            size_t b = batch_of(&lay, cut), at = lay.batch_at[b];
            test_write_file(path, full, cut);
            if (cut == at) { /* right after a batch: batches lost */
                if (cut % 3 == 0 || b == 1)
                    assert_cut_after_batch(path, full, recs, lay.first_rec[b], cut);
                else
                    assert_refused_at(path, -1, -1);
                continue;
            }
            size_t lose = records_in(&lay, at, cut, 0, 0);
            assert_refused_at(path, (long long)at, (long long)lose);
            if (cut % 13 == 0)
                assert_repairs(path, full, recs, lay.first_rec[b], at, cut - at, lose);
        }
        free(full);
        free_recs(recs, n_recs);
    }
}

/* A batch laid out by hand: records of the types and sequence numbers given. */
static size_t frame_batch(unsigned char *out, const uint8_t *types, const uint64_t *seqs,
                          size_t n, uint64_t first_seq)
{
    size_t at = WAL_BATCH_HEAD_BYTES;

    for (size_t i = 0; i < n; i++) {
        static const char pay[] = "{\"id\":\"hand\"}";
        size_t m = sizeof pay - 1;
        put_u32le(out + at, (uint32_t)m);
        out[at + 8] = types[i];
        put_u64le(out + at + 9, seqs[i]);
        memcpy(out + at + 17, pay, m);
        uint32_t crc = crc32c(0, out + at, 4);
        put_u32le(out + at + 4, crc32c(crc, out + at + 8, 9 + m));
        at += WAL_RECORD_HEAD_BYTES + m;
    }
    put_u64le(out, at - WAL_BATCH_HEAD_BYTES);
    put_u32le(out + 8, (uint32_t)n);
    put_u64le(out + 12, first_seq);
    put_u32le(out + 20, crc32c(0, out, 20));
    return at;
}

/*
 * Batches whose checksums hold but which replay must not take: an unknown
 * type, a sequence number that does not go up (within a batch or from the
 * batch before, whatever after_seq is), sequence numbers that would wrap,
 * a body too small for its records. A last batch whose head claims more
 * than the file holds runs past its end: torn when the size is a whole step.
 */
static void test_wal_refuses_batches_replay_must_not_take(void **state)
{
    char path[PATH_BYTES];
    size_t len;
    struct layout lay;
    static const size_t counts[] = { 3, 2 };
    static const struct {
        uint8_t types[3];
        uint64_t seqs[3];
        size_t n;
        uint64_t first;
    } cases[] = {
        { { WAL_PUT, 7, WAL_PUT }, { 6, 7, 8 }, 3, 6 },             /* unknown type */
        { { 0 }, { 6 }, 1, 6 },                                     /* type 0 */
        { { WAL_PUT }, { 5 }, 1, 5 },                               /* repeats 5 */
        { { WAL_PUT, WAL_PUT }, { 2, 3 }, 2, 2 },                   /* goes back */
        { { WAL_PUT, WAL_PUT }, { 6, 6 }, 2, 6 },                   /* repeats in the batch */
        { { WAL_PUT, WAL_PUT }, { 6, 8 }, 2, 6 },                   /* skips in the batch */
        { { WAL_PUT, WAL_PUT }, { UINT64_MAX, 0 }, 2, UINT64_MAX }, /* wraps */
    };

    log_path(state, path);
    unsigned char *full = write_batches(path, FIVE, counts, 2, &lay, &len);
    size_t end = data_end(&lay);
    unsigned char *image = malloc(len);
    assert_non_null(image);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        memcpy(image, full, len);
        size_t n = frame_batch(image + end, cases[i].types, cases[i].seqs, cases[i].n,
                               cases[i].first);
        test_write_file(path, image, len);
        /* its head checks: every record it holds is counted (the one that wraps:
         * its records, which check out one by one) */
        assert_refused_at(path, (long long)end, (long long)cases[i].n);
        for (uint64_t after = 5; after <= 9; after += 4)
            assert_int_equal(wal_open(path, after, record_cb, &(struct seen){ 0 },
                                      &(struct wal *){ NULL }, &(uint64_t){ 0 },
                                      &(struct xerr){ 0 }),
                             XE_CORRUPT);
        assert_repairs(path, image, FIVE, 5, end, n, cases[i].n);
    }
    /* a body too small for its records (its checksum made right) */
    memcpy(image, full, len);
    size_t n = frame_batch(image + end, (uint8_t[]){ WAL_PUT }, (uint64_t[]){ 6 }, 1, 6);
    put_u64le(image + end, WAL_RECORD_HEAD_BYTES - 1);
    put_u32le(image + end + 8, 1);
    put_u32le(image + end + 20, crc32c(0, image + end, 20));
    test_write_file(path, image, len);
    assert_refused_at(path, (long long)end, 1);
    assert_repairs(path, image, FIVE, 5, end, n, 1);
    /* a head that claims 2^33 bytes: runs past the end of a whole step (torn) */
    memcpy(image, full, len);
    n = frame_batch(image + end, (uint8_t[]){ WAL_PUT }, (uint64_t[]){ 6 }, 1, 6);
    put_u64le(image + end, (uint64_t)1 << 33);
    put_u32le(image + end + 20, crc32c(0, image + end, 20));
    test_write_file(path, image, len);
    assert_torn(path, image, FIVE, 5, end, len - end, 1);
    /* past the largest batch replay believes: a bad head, damage */
    put_u64le(image + end, ((uint64_t)1 << 34) + 1);
    put_u32le(image + end + 20, crc32c(0, image + end, 20));
    test_write_file(path, image, len);
    assert_refused_at(path, (long long)end, 1);
    free(image);
    free(full);
}

static void test_wal_refuses_bad_header(void **state)
{
    char path[PATH_BYTES];
    size_t full_len;
    struct layout lay;
    static const size_t counts[] = { 2 };

    log_path(state, path);
    unsigned char *full = write_batches(path, FIVE, counts, 1, &lay, &full_len);

    /* each header byte flipped: magic, version or the header checksum fails */
    for (size_t at = 0; at < WAL_HEADER_BYTES; at++) {
        full[at] ^= 0x04;
        test_write_file(path, full, full_len);
        full[at] ^= 0x04;
        assert_refused_at(path, -1, -1);
    }
    /* another magic with a good checksum */
    unsigned char h[WAL_HEADER_BYTES];
    memcpy(h, full, sizeof h);
    memcpy(full, "XUNSEG\r\n", 8);
    put_u32le(full + 12, crc32c(0, full, 12));
    test_write_file(path, full, full_len);
    assert_refused_at(path, -1, -1);
    /* version 1 (the old format, whose reader finds no record in batches) and 3
     * with a good checksum: refused, saying which */
    for (uint32_t v = 1; v <= 3; v += 2) {
        memcpy(full, h, sizeof h);
        put_u32le(full + 8, v);
        put_u32le(full + 12, crc32c(0, full, 12));
        test_write_file(path, full, full_len);
        assert_refused_at(path, -1, -1);
        struct xerr err = { 0 };
        struct wal *w = NULL;
        uint64_t last;
        assert_int_equal(wal_open(path, 0, record_cb, &(struct seen){ 0 }, &w, &last, &err),
                         XE_CORRUPT);
        char want[32];
        snprintf(want, sizeof want, v == 1 ? "(version 1)" : "version %u,", v);
        assert_non_null(strstr(err.msg, want));
    }
    /* repair sets the whole file aside and leaves an empty log */
    struct xerr err = { 0 };
    struct wal_set_aside out;
    char kept[KEPT_BYTES];
    size_t end = data_end(&lay);
    assert_ok(wal_repair(path, &out, &err), &err);
    assert_int_equal(out.offset, 0);
    assert_int_equal(out.bytes, end);
    assert_int_equal(out.records, 2);
    assert_non_null(strstr(out.why, "version 3"));
    snprintf(kept, sizeof kept, "%s.damaged-0", path);
    assert_string_equal(out.kept_path, kept);
    assert_kept(kept, full, end);
    assert_replays(path, 0, NULL, 0, 0);
    memcpy(full, h, sizeof h);
    assert_cut_to(path, full, WAL_HEADER_BYTES, 0);
    assert_takes_append(path, NULL, 0);
    free(full);
}

/* Repair of a sound log changes nothing; of a torn one, keeps it as torn. */
static void test_wal_repair_leaves_sound_log_alone(void **state)
{
    char path[PATH_BYTES], dir[PATH_BYTES];
    size_t len, after_len;
    struct layout lay;
    static const size_t counts[] = { 3, 2 };
    struct xerr err = { 0 };
    struct wal_set_aside out;

    log_path(state, path);
    dir_of(path, dir);
    unsigned char *full = write_batches(path, FIVE, counts, 2, &lay, &len);
    assert_ok(wal_repair(path, &out, &err), &err);
    assert_int_equal(out.bytes, 0);
    assert_int_equal(out.records, 0);
    assert_string_equal(out.kept_path, "");
    unsigned char *after = test_read_file(path, &after_len);
    assert_int_equal(after_len, len);
    assert_memory_equal(after, full, len);
    free(after);
    assert_int_equal(files_named(dir, LOG_NAME "."), 0);
    assert_replays(path, 0, FIVE, 5, 5);
    /* a log cut inside its zeros: nothing to set aside either */
    test_write_file(path, full, data_end(&lay) + 5);
    assert_ok(wal_repair(path, &out, &err), &err);
    assert_int_equal(out.bytes, 0);
    assert_replays(path, 0, FIVE, 5, 5);
    /* a torn tail: set aside under its name */
    size_t at = lay.batch_at[1], end = data_end(&lay);
    full[end - 1] = 0;
    test_write_file(path, full, len);
    assert_ok(wal_repair(path, &out, &err), &err);
    assert_int_equal(out.offset, at);
    assert_int_equal(out.bytes, end - at);
    assert_int_equal(out.records, 2); /* its head holds: both its records */
    assert_int_equal(out.first_seq, 4);
    assert_int_equal(out.last_seq, 5);
    char kept[KEPT_BYTES];
    snprintf(kept, sizeof kept, "%s.torn-%zu", path, at);
    assert_string_equal(out.kept_path, kept);
    assert_replays(path, 0, FIVE, 3, 3);
    remove_named(dir, ".torn-");
    /* a log that does not exist is an error, and is not made */
    char missing[KEPT_BYTES];
    snprintf(missing, sizeof missing, "%s/none.xlog", dir);
    assert_int_equal(wal_repair(missing, &out, &err), XE_IO);
    assert_int_equal(access(missing, F_OK), -1);
    free(full);
}

/*
 * A commit that fails (the file cannot grow: RLIMIT_FSIZE stands in for a
 * full disk) writes nothing: the log stays readable, the next commit that
 * fits goes in, and the failed batch is not replayed.
 */
static void test_wal_failed_commit_leaves_log_readable(void **state)
{
    char path[PATH_BYTES];
    struct xerr err = { 0 };
    struct wal *w = NULL;
    uint64_t last = 0;
    struct rlimit old, small;

    log_path(state, path);
    assert_ok(wal_open(path, 0, record_cb, &(struct seen){ 0 }, &w, &last, &err), &err);
    add(w, &FIVE[0]);
    assert_ok(wal_commit(w, &err), &err);
    size_t one = wal_bytes(w);

    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    small = old;
    small.rlim_cur = STEP;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    char *big = text(2, STEP);
    assert_int_equal(wal_add(w, WAL_PUT, 2, big, STEP), XE_OK);
    int rc = wal_commit(w, &err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);
    free(big);
    assert_int_equal(rc, XE_IO);
    assert_non_null(strstr(err.msg, LOG_NAME));
    assert_int_equal(wal_bytes(w), one);
    assert_replays(path, 0, FIVE, 1, 1);
    /* the same sequence numbers again, in a batch that fits */
    const struct trec again[] = { FIVE[0], { WAL_DELETE, 2, "n3" }, { WAL_PUT, 3, "{}" } };
    add(w, &again[1]);
    add(w, &again[2]);
    assert_ok(wal_commit(w, &err), &err);
    wal_close(w);
    assert_replays(path, 0, again, 3, 3);
}

/* RLIMIT_FSIZE as it was before a test lowered it; the SIGXFSZ handler puts it back. */
static struct rlimit saved_fsize;

static void restore_fsize(int sig)
{
    int saved_errno = errno;

    (void)sig;
    setrlimit(RLIMIT_FSIZE, &saved_fsize);
    errno = saved_errno;
}

/*
 * A write that fails part way (RLIMIT_FSIZE inside the preallocated file:
 * the first bytes of the batch go in, then EFBIG). The bytes written are
 * zeroed again (the limit is lifted by the SIGXFSZ handler, as space freed
 * on a disk would be), so the next batch, written at the same offset with
 * the same sequence numbers, is not followed by leftovers: the log replays
 * with nothing torn and nothing refused.
 */
static void test_wal_failed_write_is_undone_for_the_next_batch(void **state)
{
    char path[PATH_BYTES];
    struct xerr err = { 0 };
    struct wal *w = NULL;
    uint64_t last = 0;
    struct rlimit small;
    struct sigaction sa = { .sa_handler = restore_fsize }, old_sa;

    log_path(state, path);
    assert_ok(wal_open(path, 0, record_cb, &(struct seen){ 0 }, &w, &last, &err), &err);
    add(w, &FIVE[0]);
    assert_ok(wal_commit(w, &err), &err);
    size_t one = wal_bytes(w);

    /* a batch of 300 bytes, all in the first sector; the write stops after 100 */
    char *pay = text(2, 300 - WAL_BATCH_HEAD_BYTES - WAL_RECORD_HEAD_BYTES);
    assert_int_equal(wal_add(w, WAL_PUT, 2, pay, strlen(pay)), XE_OK);
    assert_true(one + 300 < WAL_SECTOR_BYTES);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved_fsize), 0);
    small = saved_fsize;
    small.rlim_cur = one + 100;
    assert_int_equal(sigaction(SIGXFSZ, &sa, &old_sa), 0);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    int rc = wal_commit(w, &err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved_fsize), 0);
    assert_int_equal(sigaction(SIGXFSZ, &old_sa, NULL), 0);
    free(pay);
    assert_int_equal(rc, XE_IO);
    assert_non_null(strstr(err.msg, LOG_NAME));
    assert_int_equal(wal_bytes(w), one);
    size_t len;
    unsigned char *data = test_read_file(path, &len);
    assert_int_equal(nonzero_end(data, one, len), one); /* the 100 bytes zeroed again */
    free(data);

    /* a shorter batch in its place, its sequence numbers again */
    const struct trec again[] = { FIVE[0], { WAL_DELETE, 2, "n3" } };
    add(w, &again[1]);
    assert_ok(wal_commit(w, &err), &err);
    wal_close(w);
    assert_replays(path, 0, again, 2, 2);
}

/*
 * A failed write whose undo fails too (the limit stays): the log takes no
 * more commits (restart xun), and what is on disk opens.
 */
static void test_wal_refuses_commits_after_a_write_it_cannot_undo(void **state)
{
    char path[PATH_BYTES];
    struct xerr err = { 0 };
    struct wal *w = NULL;
    uint64_t last = 0;
    struct rlimit small;

    log_path(state, path);
    assert_ok(wal_open(path, 0, record_cb, &(struct seen){ 0 }, &w, &last, &err), &err);
    add(w, &FIVE[0]);
    assert_ok(wal_commit(w, &err), &err);
    size_t one = wal_bytes(w);

    char *pay = text(2, 200);
    assert_int_equal(wal_add(w, WAL_PUT, 2, pay, strlen(pay)), XE_OK);
    free(pay);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved_fsize), 0);
    small = saved_fsize;
    small.rlim_cur = one + 50;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    int rc = wal_commit(w, &err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved_fsize), 0);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(rc, XE_IO);
    add(w, &FIVE[1]);
    xerr_clear(&err);
    assert_int_equal(wal_commit(w, &err), XE_IO);
    assert_non_null(strstr(err.msg, "restart"));
    assert_int_equal(wal_bytes(w), one);
    wal_close(w);
    assert_replays(path, 0, FIVE, 1, 1);
    assert_takes_append(path, FIVE, 1);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, test_dir_setup, test_dir_teardown)
#define TSHM(f) cmocka_unit_test_setup_teardown(f, shm_dir_setup, test_dir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_wal_open_new_file_writes_valid_header),
        T(test_wal_replays_every_record_in_order),
        T(test_wal_appends_after_reopen_continue_the_log),
        T(test_wal_fsyncs_counts_commits_and_growths),
        T(test_wal_add_refuses_payload_over_limit),
        T(test_wal_add_refuses_what_replay_would_refuse),
        T(test_wal_replays_record_of_the_largest_payload),
        T(test_wal_discard_drops_the_pending_batch),
        T(test_wal_replay_callback_error_stops_replay),
        T(test_wal_opens_log_cut_inside_its_zeros),
        T(test_wal_refuses_log_cut_after_a_batch),
        T(test_wal_set_aside_zeros_in_place),
        TSHM(test_wal_sets_aside_last_batch_cut_at_every_length),
        TSHM(test_wal_sets_aside_last_batch_with_a_sector_zeroed),
        T(test_wal_sets_aside_batch_running_past_a_whole_step),
        T(test_wal_keeps_every_torn_tail_at_one_offset),
        T(test_wal_restarts_log_torn_inside_header),
        T(test_wal_makes_empty_version_1_log_afresh),
        TSHM(test_wal_refuses_any_bit_flipped_in_the_last_batch),
        TSHM(test_wal_refusal_counts_a_damaged_one_record_last_batch),
        TSHM(test_wal_refuses_damaged_middle_batch),
        TSHM(test_wal_refuses_bytes_after_a_bad_batch),
        T(test_wal_refuses_last_4k_replaced_by_garbage),
        TSHM(test_wal_refuses_file_cut_inside_a_batch),
        TSHM(test_wal_refuses_batches_replay_must_not_take),
        T(test_wal_refuses_bad_header),
        T(test_wal_repair_leaves_sound_log_alone),
        T(test_wal_failed_commit_leaves_log_readable),
        T(test_wal_failed_write_is_undone_for_the_next_batch),
        T(test_wal_refuses_commits_after_a_write_it_cannot_undo),
    };
#undef T
#undef TSHM
    return cmocka_run_group_tests(tests, NULL, NULL);
}
