/*
 * Tests of index/wal.h: a new log gets a valid header; committed records
 * replay in order with their type, sequence number and payload, those at or
 * below after_seq skipped; a torn tail (the last record cut at any length,
 * or its bytes damaged) is dropped and the file truncated to the good
 * prefix, after which appends replay fine; a bad record followed by a good
 * one, a bad header, an unknown type or a repeated sequence number is
 * refused with XE_CORRUPT naming the file; fsyncs are counted per commit;
 * an error from the replay callback stops replay and is returned.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index/bytes.h"
#include "index/crc32c.h"
#include "index/error.h"
#include "index/limits.h"
#include "index/wal.h"
#include "tests/testutil.h"

#define PATH_BYTES 4096
#define LOG_NAME "wal-00000001.xlog"
#define MAX_SEEN 64          /* records one replay in these tests may deliver */
#define PAYLOAD_MAX_SEEN 256 /* payload bytes kept per delivered record */

#define assert_ok(call, err)                                                                  \
    do {                                                                                      \
        int rc_ = (call);                                                                     \
        if (rc_)                                                                              \
            print_error("%s: %s\n", #call, (err)->msg);                                       \
        assert_int_equal(rc_, XE_OK);                                                         \
    } while (0)

/* ---- helpers ---- */

/* What a replay delivered, copied out of the callback. */
struct seen {
    size_t n;
    struct {
        enum wal_type type;
        uint64_t seq;
        size_t len;
        char payload[PAYLOAD_MAX_SEEN];
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
    assert_true(rec->len <= PAYLOAD_MAX_SEEN);
    s->rec[s->n].type = rec->type;
    s->rec[s->n].seq = rec->seq;
    s->rec[s->n].len = rec->len;
    if (rec->len)
        memcpy(s->rec[s->n].payload, rec->payload, rec->len);
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

static int dir_setup(void **state)
{
    *state = test_mkdtemp();
    return *state ? 0 : -1;
}

static int dir_teardown(void **state)
{
    test_rmtree(*state);
    free(*state);
    return 0;
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

/* Opens a new log at path, writes recs[0..n) as one commit each, closes it. */
static void write_log(const char *path, const struct trec *recs, size_t n)
{
    struct xerr err = { 0 };
    struct wal *w = NULL;
    struct seen s = { 0 };
    uint64_t last = 99;

    assert_ok(wal_open(path, 0, record_cb, &s, &w, &last, &err), &err);
    for (size_t i = 0; i < n; i++) {
        add(w, &recs[i]);
        assert_ok(wal_commit(w, &err), &err);
    }
    wal_close(w);
}

static void assert_seen(const struct seen *s, const struct trec *want, size_t n)
{
    assert_int_equal(s->n, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(s->rec[i].type, want[i].type);
        assert_int_equal(s->rec[i].seq, want[i].seq);
        assert_int_equal(s->rec[i].len, strlen(want[i].payload));
        assert_memory_equal(s->rec[i].payload, want[i].payload, s->rec[i].len);
    }
}

/* Replays path from after_seq; checks it delivers want[0..n) and leaves last_seq. */
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
    wal_close(w);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY);

    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    unsigned char *data = malloc((size_t)st.st_size + 1);
    assert_non_null(data);
    assert_int_equal(read(fd, data, (size_t)st.st_size), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return data;
}

static void spit(const char *path, const unsigned char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static off_t file_size(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* wal_open must refuse path with XE_CORRUPT naming the log, and leave it as it was. */
static void assert_refused(const char *path)
{
    struct xerr err = { 0 };
    struct wal *w = NULL;
    struct seen s = { 0 };
    uint64_t last;
    size_t before_len, after_len;
    unsigned char *before = slurp(path, &before_len);

    assert_int_equal(wal_open(path, 0, record_cb, &s, &w, &last, &err), XE_CORRUPT);
    assert_int_equal(err.code, XE_CORRUPT);
    assert_null(w);
    assert_non_null(strstr(err.msg, LOG_NAME));
    unsigned char *after = slurp(path, &after_len);
    assert_int_equal(after_len, before_len);
    assert_memory_equal(after, before, before_len);
    free(before);
    free(after);
}

/* ---- tests ---- */

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
    wal_close(w);

    unsigned char *data = slurp(path, &len);
    assert_int_equal(len, WAL_HEADER_BYTES);
    assert_memory_equal(data, WAL_MAGIC, 8);
    assert_int_equal(get_u32le(data + 8), WAL_VERSION);
    assert_int_equal(get_u32le(data + 12), crc32c(0, data, 12));
    free(data);

    /* and it opens again as an empty log */
    assert_replays(path, 0, NULL, 0, 0);
    assert_int_equal(file_size(path), WAL_HEADER_BYTES);
}

static void test_wal_replays_every_record_in_order(void **state)
{
    char path[PATH_BYTES];
    struct xerr err = { 0 };
    struct wal *w = NULL;
    struct seen s = { 0 };
    uint64_t last = 0;
    size_t total = WAL_HEADER_BYTES;

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
    for (size_t i = 0; i < 5; i++)
        total += rec_bytes(&FIVE[i]);
    assert_int_equal(wal_bytes(w), total);
    wal_close(w);
    assert_int_equal(file_size(path), (off_t)total);

    assert_replays(path, 0, FIVE, 5, 5);
    /* records at or below after_seq are skipped; last_seq is the highest seen */
    assert_replays(path, 3, FIVE + 3, 2, 5);
    assert_replays(path, 4, FIVE + 4, 1, 5);
    assert_replays(path, 5, NULL, 0, 5);
    assert_replays(path, 9, NULL, 0, 9);
    /* replay does not change a good log */
    assert_int_equal(file_size(path), (off_t)total);
}

static void test_wal_appends_after_reopen_continue_the_log(void **state)
{
    char path[PATH_BYTES];
    struct xerr err = { 0 };
    struct wal *w = NULL;
    struct seen s = { 0 };
    uint64_t last = 0;

    log_path(state, path);
    write_log(path, FIVE, 3);
    assert_ok(wal_open(path, 0, record_cb, &s, &w, &last, &err), &err);
    assert_int_equal(last, 3);
    assert_int_equal(s.n, 3);
    add(w, &FIVE[3]);
    add(w, &FIVE[4]);
    assert_ok(wal_commit(w, &err), &err);
    wal_close(w);
    assert_replays(path, 0, FIVE, 5, 5);
}

static void test_wal_fsyncs_counts_commits(void **state)
{
    char path[PATH_BYTES];
    struct xerr err = { 0 };
    struct wal *w = NULL;
    struct seen s = { 0 };
    uint64_t last = 0;

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
    wal_close(w);
    assert_replays(path, 0, FIVE, 5, 5);
}

static void test_wal_add_refuses_payload_over_limit(void **state)
{
    char path[PATH_BYTES];
    struct xerr err = { 0 };
    struct wal *w = NULL;
    struct seen s = { 0 };
    uint64_t last = 0;
    size_t big = (size_t)DOC_MAX_BYTES + 1;
    char *payload = calloc(1, big);

    assert_non_null(payload);
    log_path(state, path);
    assert_ok(wal_open(path, 0, record_cb, &s, &w, &last, &err), &err);
    assert_int_equal(wal_add(w, WAL_PUT, 1, payload, big), XE_LIMIT);
    /* the refused record is not in the batch: the next one commits alone */
    add(w, &FIVE[0]);
    assert_ok(wal_commit(w, &err), &err);
    wal_close(w);
    free(payload);
    assert_replays(path, 0, FIVE, 1, 1);
}

/* Every cut inside the last record: dropped, file truncated, new appends replay. */
static void test_wal_drops_torn_tail_at_every_length(void **state)
{
    char path[PATH_BYTES];
    size_t full_len;
    const size_t good = WAL_HEADER_BYTES + rec_bytes(&FIVE[0]) + rec_bytes(&FIVE[1]);
    const struct trec again = { WAL_PUT, 3, "{\"id\":\"n9\",\"title\":\"重写\"}" };
    const struct trec want[] = { FIVE[0], FIVE[1], again };

    /* the last record has a payload, so cuts fall in its head and in its payload */
    const struct trec three[] = { FIVE[0], FIVE[1], FIVE[3] };

    log_path(state, path);
    write_log(path, three, 3);
    unsigned char *full = slurp(path, &full_len);
    assert_int_equal(full_len, good + rec_bytes(&FIVE[3]));

    for (size_t cut = good; cut < full_len; cut++) {
        struct xerr err = { 0 };
        struct wal *w = NULL;
        struct seen s = { 0 };
        uint64_t last = 0;

        spit(path, full, cut);
        assert_ok(wal_open(path, 0, record_cb, &s, &w, &last, &err), &err);
        assert_seen(&s, FIVE, 2);
        assert_int_equal(last, 2);
        assert_int_equal(wal_bytes(w), good);
        assert_int_equal(file_size(path), (off_t)good);
        add(w, &again);
        assert_ok(wal_commit(w, &err), &err);
        wal_close(w);
        assert_replays(path, 0, want, 3, 3);
    }
    free(full);
}

/*
 * Damage to the last record's checksum, type, sequence number or payload:
 * its checksum fails at the very end of the file, so it is a torn tail.
 * (Its length field is not covered by the checksum: a length made larger
 * reads as cut short, also dropped; see the next test.)
 */
static void test_wal_drops_damaged_last_record(void **state)
{
    char path[PATH_BYTES];
    size_t full_len;
    const struct trec three[] = { FIVE[0], FIVE[1], FIVE[3] };
    const size_t good = WAL_HEADER_BYTES + rec_bytes(&FIVE[0]) + rec_bytes(&FIVE[1]);
    const struct trec again = { WAL_DELETE, 3, "n7" };
    const struct trec want[] = { FIVE[0], FIVE[1], again };

    log_path(state, path);
    write_log(path, three, 3);
    unsigned char *full = slurp(path, &full_len);

    for (size_t at = good + 4; at < full_len; at++) {
        static const unsigned char masks[] = { 0x01, 0x80 };
        for (size_t m = 0; m < sizeof masks; m++) {
            unsigned char mask = masks[m];
            struct xerr err = { 0 };
            struct wal *w = NULL;
            struct seen s = { 0 };
            uint64_t last = 0;

            full[at] ^= mask;
            spit(path, full, full_len);
            full[at] ^= mask;
            assert_ok(wal_open(path, 0, record_cb, &s, &w, &last, &err), &err);
            assert_seen(&s, FIVE, 2);
            assert_int_equal(last, 2);
            assert_int_equal(file_size(path), (off_t)good);
            add(w, &again);
            assert_ok(wal_commit(w, &err), &err);
            wal_close(w);
            assert_replays(path, 0, want, 3, 3);
        }
    }
    free(full);
}

static void test_wal_drops_last_record_whose_length_overruns_the_file(void **state)
{
    char path[PATH_BYTES];
    size_t full_len;
    const struct trec three[] = { FIVE[0], FIVE[1], FIVE[3] };
    const size_t good = WAL_HEADER_BYTES + rec_bytes(&FIVE[0]) + rec_bytes(&FIVE[1]);
    static const uint32_t lengths[] = { 1000, 1u << 20, (uint32_t)DOC_MAX_BYTES + 1,
                                        UINT32_MAX };

    log_path(state, path);
    write_log(path, three, 3);
    unsigned char *full = slurp(path, &full_len);
    for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++) {
        put_u32le(full + good, lengths[i]);
        spit(path, full, full_len);
        assert_replays(path, 0, FIVE, 2, 2);
        assert_int_equal(file_size(path), (off_t)good);
    }
    free(full);
}

static void test_wal_refuses_bad_record_followed_by_good_one(void **state)
{
    char path[PATH_BYTES];
    size_t full_len;
    const size_t second = WAL_HEADER_BYTES + rec_bytes(&FIVE[0]);

    log_path(state, path);
    write_log(path, FIVE, 5);
    unsigned char *full = slurp(path, &full_len);
    /* checksum, type, sequence number and payload bytes of the second record */
    for (size_t at = second + 4; at < second + rec_bytes(&FIVE[1]); at++) {
        full[at] ^= 0x10;
        spit(path, full, full_len);
        full[at] ^= 0x10;
        assert_refused(path);
    }
    /* its length one shorter or one longer: the checksum fails with data after it */
    uint32_t n = get_u32le(full + second);
    put_u32le(full + second, n - 1);
    spit(path, full, full_len);
    assert_refused(path);
    put_u32le(full + second, n + 1);
    spit(path, full, full_len);
    assert_refused(path);
    /*
     * KNOWN WEAKNESS (index/wal.c, replay()): a length damaged to run past the
     * end of the file (put_u32le(full + second, 1000)) reads as a torn tail: the
     * first record is replayed, the three good records after it are dropped and
     * the file is truncated, with no error. The length is not under the record's
     * checksum, so the format cannot tell this from a crash; not asserted here.
     */
    put_u32le(full + second, n);
    /* the first record damaged, too */
    full[WAL_HEADER_BYTES + WAL_RECORD_HEAD_BYTES] ^= 0x01;
    spit(path, full, full_len);
    assert_refused(path);
    free(full);
}

static void test_wal_refuses_bad_header(void **state)
{
    char path[PATH_BYTES];
    size_t full_len;

    log_path(state, path);
    write_log(path, FIVE, 2);
    unsigned char *full = slurp(path, &full_len);

    /* each header byte flipped: magic, version or the header checksum fails */
    for (size_t at = 0; at < WAL_HEADER_BYTES; at++) {
        full[at] ^= 0x04;
        spit(path, full, full_len);
        full[at] ^= 0x04;
        assert_refused(path);
    }
    /* another magic with a good checksum */
    unsigned char h[WAL_HEADER_BYTES];
    memcpy(h, full, sizeof h);
    memcpy(full, "XUNSEG\r\n", 8);
    put_u32le(full + 12, crc32c(0, full, 12));
    spit(path, full, full_len);
    assert_refused(path);
    /* version 2 with a good checksum: refused, saying which version it found */
    memcpy(full, h, sizeof h);
    put_u32le(full + 8, WAL_VERSION + 1);
    put_u32le(full + 12, crc32c(0, full, 12));
    spit(path, full, full_len);
    assert_refused(path);
    {
        struct xerr err = { 0 };
        struct wal *w = NULL;
        uint64_t last;
        assert_int_equal(wal_open(path, 0, record_cb, &(struct seen){ 0 }, &w, &last, &err),
                         XE_CORRUPT);
        assert_non_null(strstr(err.msg, "version 2"));
    }
    free(full);
}

/* A file shorter than a header was torn while it was made: it starts afresh. */
static void test_wal_restarts_log_torn_inside_header(void **state)
{
    char path[PATH_BYTES];
    size_t len;

    log_path(state, path);
    write_log(path, FIVE, 0);
    unsigned char *hdr = slurp(path, &len);
    assert_int_equal(len, WAL_HEADER_BYTES);
    for (size_t cut = 0; cut < WAL_HEADER_BYTES; cut++) {
        spit(path, hdr, cut);
        assert_replays(path, 0, NULL, 0, 0);
        size_t got_len;
        unsigned char *got = slurp(path, &got_len);
        assert_int_equal(got_len, WAL_HEADER_BYTES);
        assert_memory_equal(got, hdr, WAL_HEADER_BYTES);
        free(got);
    }
    free(hdr);
}

static void test_wal_refuses_unknown_type(void **state)
{
    char path[PATH_BYTES];
    struct xerr err = { 0 };
    struct wal *w = NULL;
    struct seen s = { 0 };
    uint64_t last;

    log_path(state, path);
    assert_ok(wal_open(path, 0, record_cb, &s, &w, &last, &err), &err);
    add(w, &FIVE[0]);
    assert_int_equal(wal_add(w, (enum wal_type)7, 2, "x", 1), XE_OK);
    add(w, &FIVE[2]);
    assert_ok(wal_commit(w, &err), &err);
    wal_close(w);
    assert_refused(path);
}

static void test_wal_refuses_repeated_sequence_number(void **state)
{
    char path[PATH_BYTES];
    const struct trec recs[] = { FIVE[0], FIVE[1], { WAL_PUT, 2, "again" } };

    log_path(state, path);
    write_log(path, recs, 3);
    assert_refused(path);
    /* records at or below after_seq are skipped unchecked */
    assert_replays(path, 2, NULL, 0, 2);
}

static void test_wal_replay_callback_error_stops_replay(void **state)
{
    char path[PATH_BYTES];
    struct xerr err = { 0 };
    struct wal *w = NULL;
    struct seen s = { .fail_at = 3 };
    uint64_t last;
    size_t before_len, after_len;

    log_path(state, path);
    write_log(path, FIVE, 5);
    unsigned char *before = slurp(path, &before_len);
    assert_int_equal(wal_open(path, 0, record_cb, &s, &w, &last, &err), XE_INPUT);
    assert_null(w);
    assert_string_equal(err.msg, "callback refused seq 3");
    assert_seen(&s, FIVE, 2); /* nothing after the failing record was delivered */
    unsigned char *after = slurp(path, &after_len);
    assert_int_equal(after_len, before_len); /* and the log is left alone */
    assert_memory_equal(after, before, before_len);
    free(before);
    free(after);
    /* with the callback happy, everything is still there */
    assert_replays(path, 0, FIVE, 5, 5);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, dir_setup, dir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_wal_open_new_file_writes_valid_header),
        T(test_wal_replays_every_record_in_order),
        T(test_wal_appends_after_reopen_continue_the_log),
        T(test_wal_fsyncs_counts_commits),
        T(test_wal_add_refuses_payload_over_limit),
        T(test_wal_drops_torn_tail_at_every_length),
        T(test_wal_drops_damaged_last_record),
        T(test_wal_drops_last_record_whose_length_overruns_the_file),
        T(test_wal_refuses_bad_record_followed_by_good_one),
        T(test_wal_refuses_bad_header),
        T(test_wal_restarts_log_torn_inside_header),
        T(test_wal_refuses_unknown_type),
        T(test_wal_refuses_repeated_sequence_number),
        T(test_wal_replay_callback_error_stops_replay),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
