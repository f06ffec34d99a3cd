/*
 * Fuzz target: write-ahead log replay (index/wal.h) fed damaged logs, and
 * the stored records (index/doc.h) that PUT records carry.
 *
 *   byte 0     mode bits:
 *                0x01  raw: the rest of the input is the whole file;
 *                      otherwise it follows a valid 16-byte header
 *                0x06  after_seq = (mode >> 1) & 3
 *                0x08  the replay callback refuses a PUT whose record does
 *                      not decode, as the writer does (else it goes on)
 *   then       the file's bytes
 *
 * Replay must hand over only PUT and DELETE records with sequence numbers
 * above after_seq, increasing, payloads inside the file; a PUT payload that
 * decodes is turned back into JSON and re-encoded, and must decode to the
 * same fields. A refused log must be XE_CORRUPT (or the callback's code)
 * with a message. A log that opens has had its torn tail cut: one more
 * record appended and committed, the log must open again and replay
 * exactly the same records plus that one.
 */
#include "tests/fuzz/fuzz.h"

#include "index/buf.h"
#include "index/bytes.h"
#include "index/crc32c.h"
#include "index/doc.h"
#include "index/error.h"
#include "index/wal.h"

#define MODE_RAW 0x01
#define MODE_STRICT 0x08
#define JSON_MAX_BYTES (4 * (size_t)DOC_MAX_BYTES)
#define APPENDED "appended-id"

struct replayed {
    uint64_t after_seq;
    bool strict;
    const unsigned char *file; /* the bytes replay reads, for the range check */
    size_t file_len;
    size_t n;
    uint64_t last_seq;
    uint64_t digest; /* over type, seq, payload of every record */
};

static const char *log_path;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (!log_path)
        log_path = fuzz_path("fuzz.log");
    return 0;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    return (h ^ v) * 0x100000001b3ull;
}

static bool text_equal(struct text a, struct text b)
{
    if (!a.p || !b.p)
        return !a.p && !b.p;
    return a.len == b.len && (a.len == 0 || !memcmp(a.p, b.p, a.len));
}

static void check_same_fields(const struct doc_fields *a, const struct doc_fields *b)
{
    FUZZ_CHECK(text_equal(a->id, b->id) && text_equal(a->title, b->title) &&
                   text_equal(a->body, b->body) && text_equal(a->source, b->source) &&
                   text_equal(a->date, b->date) && text_equal(a->url, b->url) &&
                   text_equal(a->json_template, b->json_template),
               "a record re-encoded decodes to other fields");
    FUZZ_CHECK(a->n_tags == b->n_tags && a->date_s == b->date_s, "tags or date differ");
    for (size_t i = 0; i < a->n_tags; i++)
        FUZZ_CHECK(text_equal(a->tags[i], b->tags[i]), "tag %zu differs", i);
}

/* A PUT payload as the writer reads it (index/writer.c apply_put). */
static int check_put(const struct wal_record *rec, bool strict, struct xerr *err)
{
    struct doc_fields d, again;
    struct xerr rec_err = { 0 };
    int rc = doc_record_decode((const unsigned char *)rec->payload, rec->len, &d, &rec_err);

    if (rc) {
        FUZZ_CHECK(rc == XE_CORRUPT && rec_err.msg[0], "decode: %d %s", rc, rec_err.msg);
        return strict ? xerr_set(err, rc, "%s", rec_err.msg) : XE_OK;
    }
    FUZZ_CHECK(d.n_tags <= DOC_MAX_TAGS, "%zu tags", d.n_tags);
    struct buf json, rec2;
    buf_init(&json, JSON_MAX_BYTES);
    buf_init(&rec2, JSON_MAX_BYTES);
    rc = doc_json(&d, &json, &rec_err);
    FUZZ_CHECK(rc == XE_OK || (rc == XE_CORRUPT && rec_err.msg[0]), "doc_json: %d", rc);
    FUZZ_CHECK(doc_record_encode(&d, &rec2) == XE_OK, "re-encode");
    rc = doc_record_decode(rec2.data, rec2.len, &again, &rec_err);
    FUZZ_CHECK(rc == XE_OK, "a re-encoded record does not decode: %s", rec_err.msg);
    check_same_fields(&d, &again);
    buf_fini(&rec2);
    buf_fini(&json);
    return XE_OK;
}

static int on_record(void *ctx, const struct wal_record *rec, struct xerr *err)
{
    struct replayed *r = ctx;
    const unsigned char *pay = (const unsigned char *)rec->payload;

    FUZZ_CHECK(rec->type == WAL_PUT || rec->type == WAL_DELETE, "type %d", (int)rec->type);
    FUZZ_CHECK(rec->seq > r->after_seq, "seq %llu not above %llu",
               (unsigned long long)rec->seq, (unsigned long long)r->after_seq);
    FUZZ_CHECK(r->n == 0 || rec->seq > r->last_seq, "seq %llu after %llu",
               (unsigned long long)rec->seq, (unsigned long long)r->last_seq);
    FUZZ_CHECK(rec->len <= WAL_PAYLOAD_MAX, "payload of %zu", rec->len);
    if (r->file)
        FUZZ_CHECK(rec->len <= r->file_len && pay != NULL, "payload of %zu in %zu", rec->len,
                   r->file_len);
    r->last_seq = rec->seq;
    r->n++;
    uint64_t h = mix(mix(r->digest, rec->type), rec->seq);
    for (size_t i = 0; i < rec->len; i++)
        h = mix(h, pay[i]);
    r->digest = h;
    if (rec->type == WAL_PUT)
        return check_put(rec, r->strict, err);
    return XE_OK;
}

static void header(unsigned char h[WAL_HEADER_BYTES])
{
    memcpy(h, WAL_MAGIC, 8);
    put_u32le(h + 8, WAL_VERSION);
    put_u32le(h + 12, crc32c(0, h, 12));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!log_path)
        LLVMFuzzerInitialize(NULL, NULL);
    if (!size)
        return 0;

    unsigned mode = data[0];
    size_t body = size - 1, len = (mode & MODE_RAW) ? body : WAL_HEADER_BYTES + body;
    unsigned char *file = malloc(len + 1);
    FUZZ_CHECK(file != NULL, "out of memory");
    if (mode & MODE_RAW) {
        memcpy(file, data + 1, body);
    } else {
        header(file);
        memcpy(file + WAL_HEADER_BYTES, data + 1, body);
    }
    fuzz_write_file(log_path, file, len);

    struct replayed first = { .after_seq = (mode >> 1) & 3, .strict = (mode & MODE_STRICT) != 0,
                              .file = file, .file_len = len };
    struct wal *w = NULL;
    struct xerr err = { 0 };
    uint64_t last = 0;
    int rc = wal_open(log_path, first.after_seq, on_record, &first, &w, &last, &err);
    free(file);
    if (rc) {
        FUZZ_CHECK(rc == XE_CORRUPT && (int)err.code == rc && err.msg[0], "open: %d %s", rc,
                   err.msg);
        FUZZ_CHECK(w == NULL, "log set on failure");
        return 0;
    }
    FUZZ_CHECK(w != NULL, "no log");
    FUZZ_CHECK(last == (first.n ? first.last_seq : first.after_seq), "last_seq %llu",
               (unsigned long long)last);
    FUZZ_CHECK(wal_bytes(w) >= WAL_HEADER_BYTES && wal_bytes(w) <= (len > WAL_HEADER_BYTES
                                                                        ? len : WAL_HEADER_BYTES),
               "%llu bytes kept of %zu", (unsigned long long)wal_bytes(w), len);
    if (last == UINT64_MAX) { /* no next sequence number */
        wal_close(w);
        return 0;
    }

    /* one more record after the good prefix; the log must replay it too */
    FUZZ_CHECK(wal_add(w, WAL_DELETE, last + 1, APPENDED, strlen(APPENDED)) == XE_OK,
               "wal_add");
    FUZZ_CHECK(wal_commit(w, &err) == XE_OK, "wal_commit: %s", err.msg);
    wal_close(w);

    struct replayed second = { .after_seq = first.after_seq, .strict = first.strict };
    uint64_t last2 = 0;
    w = NULL;
    rc = wal_open(log_path, second.after_seq, on_record, &second, &w, &last2, &err);
    FUZZ_CHECK(rc == XE_OK, "the log does not open after an append: %s", err.msg);
    FUZZ_CHECK(last2 == last + 1, "last_seq %llu after appending %llu",
               (unsigned long long)last2, (unsigned long long)(last + 1));
    FUZZ_CHECK(second.n == first.n + 1, "%zu records replayed, then %zu", first.n, second.n);
    uint64_t h = mix(mix(first.digest, WAL_DELETE), last + 1);
    for (const char *c = APPENDED; *c; c++)
        h = mix(h, (unsigned char)*c);
    FUZZ_CHECK(second.digest == h, "the records replayed differ after an append");
    wal_close(w);
    return 0;
}
