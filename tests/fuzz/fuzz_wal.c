/*
 * Fuzz target: write-ahead log replay and repair (index/format/wal.h, version 2;
 * a version 1 log, read for replay only, takes no append)
 * fed damaged and torn logs, and the stored records (index/format/doc.h) that PUT
 * records carry.
 *
 *   byte 0     mode bits:
 *                0x01  raw: the rest of the input is the whole file
 *                0x06  after_seq = (mode >> 1) & 3
 *                0x08  the replay callback refuses a PUT whose record does
 *                      not decode, as the writer does (else it goes on)
 *                0x10  framed: the rest is a script of batches, framed here
 *                      with good checksums (below); else it follows a valid
 *                      16-byte header as it is
 *                0x20  the file is padded with zeros to a whole step
 *                      (WAL_EXTENT_BYTES), as a preallocated log is
 *                0x40  framed: a first batch of one filler record ends 64
 *                      bytes before the first step, and the file is cut to
 *                      one step when longer (a growth that was lost)
 *   framed     byte 1: what happens to the last batch (0: nothing; 1: a
 *              bit flipped; 2: a sector zeroed; 3: the file cut inside it;
 *              4: zeros from a byte on; 5: the sectors of it that bytes 2-3
 *              name (bit i: sector i) never written; 6: a prefix of it
 *              written (a killed process), bytes 2-3 say how long)
 *              bytes 2-3: where (little-endian)
 *              then batches: a byte c (1 + (c & 3) records; 0x40: its first
 *              sequence number repeats the last one; 0x80: a gap of one),
 *              then per record a byte t (0x80: DELETE, else PUT; t & 0x7f
 *              payload bytes, as many as are left) and the payload
 *
 * Checks: replay hands over only PUT and DELETE records with sequence
 * numbers above after_seq, increasing, payloads inside the file; for a
 * framed log, exactly a prefix of the records framed (all of them when
 * nothing happened to it). A PUT payload that decodes is turned back into
 * JSON and re-encoded, and must decode to the same fields. A log whose last
 * batch was torn as a crash tears it (5, 6) must open; left as framed and
 * not padded, the file ends at its last batch and is not a whole step: cut
 * short after a batch, refused, and repaired keeping every batch. A refused log is
 * XE_CORRUPT (or the callback's code) with a message, left as it was;
 * wal_repair() then keeps the bytes it sets aside in the file it names, and
 * the log opens. A log that opens has lost nothing silently: bytes that are
 * not zero past wal_bytes() are in the torn tail's kept file. One more
 * record appended and committed, the log must open again and replay
 * exactly the same records plus that one.
 *
 * Counts (wal.h, struct wal_set_aside): a refusal names the same records
 * and sequence numbers as the repair that follows it sets aside; no records
 * means sequence numbers 0, else first <= last; and when what is set aside
 * starts at a framed last batch whose head is as framed, it counts exactly
 * that batch's records and sequence numbers, whatever became of its body.
 */
#include "tests/fuzz/fuzz.h"

#include "index/base/buf.h"
#include "index/base/bytes.h"
#include "index/base/crc32c.h"
#include "index/format/doc.h"
#include "index/base/error.h"
#include "index/format/wal.h"

#define MODE_RAW 0x01
#define MODE_STRICT 0x08
#define MODE_FRAMED 0x10
#define MODE_PAD 0x20
#define MODE_STEP_CUT 0x40
#define JSON_MAX_BYTES (4 * (size_t)DOC_MAX_BYTES)
#define APPENDED "appended-id"
#define STEP ((size_t)WAL_EXTENT_BYTES)
#define FILLER_END (STEP - 64)

enum last_batch_op {
    OP_NONE,
    OP_FLIP,
    OP_ZERO_SECTOR,
    OP_CUT,
    OP_ZERO_FROM,
    OP_CRASH_SECTORS,
    OP_KILLED,
    N_OPS
};

/* A record framed by this target: what replay may hand over, in order. */
struct framed_rec {
    enum wal_type type;
    uint64_t seq;
    const unsigned char *payload;
    size_t len;
};

struct replayed {
    uint64_t after_seq;
    bool strict;
    bool refused; /* the callback refused a record */
    const unsigned char *file; /* the bytes replay reads, for the range check */
    size_t file_len;
    const struct framed_rec *expect; /* framed: the records in order; else NULL */
    size_t n_expect, next_expect;
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

/* The next framed record replay may hand over (those at or below after_seq skipped). */
static const struct framed_rec *next_expected(struct replayed *r)
{
    while (r->next_expect < r->n_expect && r->expect[r->next_expect].seq <= r->after_seq)
        r->next_expect++;
    return r->next_expect < r->n_expect ? &r->expect[r->next_expect] : NULL;
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
    if (r->expect) {
        const struct framed_rec *want = next_expected(r);
        FUZZ_CHECK(want != NULL, "record %llu was never framed", (unsigned long long)rec->seq);
        FUZZ_CHECK(want->type == rec->type && want->seq == rec->seq && want->len == rec->len &&
                       (!rec->len || !memcmp(want->payload, pay, rec->len)),
                   "record %llu is not the one framed", (unsigned long long)rec->seq);
        r->next_expect++;
    }
    r->last_seq = rec->seq;
    r->n++;
    r->digest = mix(mix(mix(mix(r->digest, rec->type), rec->seq), rec->len),
                    crc32c(0, pay, rec->len));
    if (rec->type == WAL_PUT) {
        int rc = check_put(rec, r->strict, err);
        r->refused = rc != XE_OK;
        return rc;
    }
    return XE_OK;
}

static void header(unsigned char h[WAL_HEADER_BYTES])
{
    memcpy(h, WAL_MAGIC, 8);
    put_u32le(h + 8, WAL_VERSION);
    put_u32le(h + 12, crc32c(0, h, 12));
}

/* A log built from a framed script: its bytes, and what it holds. */
struct framed_log {
    unsigned char *file;
    size_t len, cap;
    struct framed_rec *recs;
    size_t n_recs;
    size_t last_at;    /* where the last batch starts (the header's end when none) */
    uint32_t last_n;   /* records in the last batch; 0 when none */
    uint64_t last_first_seq;
    unsigned char last_head[WAL_BATCH_HEAD_BYTES]; /* as framed */
    bool damaged_seqs; /* a batch repeats a sequence number: refusal is right */
};

static void put_record(struct framed_log *f, size_t *at, enum wal_type type, uint64_t seq,
                       const unsigned char *payload, size_t len)
{
    unsigned char *p = f->file + *at;

    put_u32le(p, (uint32_t)len);
    p[8] = (unsigned char)type;
    put_u64le(p + 9, seq);
    if (len)
        memcpy(p + WAL_RECORD_HEAD_BYTES, payload, len);
    uint32_t crc = crc32c(0, p, 4);
    put_u32le(p + 4, crc32c(crc, p + 8, 9 + len));
    f->recs[f->n_recs++] = (struct framed_rec){ type, seq, p + WAL_RECORD_HEAD_BYTES, len };
    *at += WAL_RECORD_HEAD_BYTES + len;
}

static void put_batch_head(unsigned char *h, size_t body, uint32_t n, uint64_t first_seq)
{
    put_u64le(h, body);
    put_u32le(h + 8, n);
    put_u64le(h + 12, first_seq);
    put_u32le(h + 20, crc32c(0, h, 20));
}

/* Frames script[0..len) into f (see the top); the payloads point into f->file. */
static void build_framed(struct framed_log *f, const uint8_t *script, size_t len, bool filler)
{
    /* at most one record per script byte, each at most a head and a batch head more */
    f->cap = WAL_HEADER_BYTES + (filler ? FILLER_END : 0) +
             len * (WAL_BATCH_HEAD_BYTES + WAL_RECORD_HEAD_BYTES) + len + STEP;
    f->file = calloc(1, f->cap);
    f->recs = calloc(len + 2, sizeof *f->recs);
    FUZZ_CHECK(f->file && f->recs, "out of memory");
    header(f->file);
    size_t at = WAL_HEADER_BYTES;
    uint64_t seq = 1;
    f->last_at = at;
    if (filler) {
        size_t n = FILLER_END - at - WAL_BATCH_HEAD_BYTES - WAL_RECORD_HEAD_BYTES;
        unsigned char *pay = malloc(n);
        FUZZ_CHECK(pay != NULL, "out of memory");
        memset(pay, 'f', n);
        size_t head = at;
        at += WAL_BATCH_HEAD_BYTES;
        put_record(f, &at, WAL_DELETE, seq, pay, n);
        free(pay);
        put_batch_head(f->file + head, at - head - WAL_BATCH_HEAD_BYTES, 1, seq);
        f->last_at = head;
        f->last_n = 1;
        f->last_first_seq = seq;
        memcpy(f->last_head, f->file + head, WAL_BATCH_HEAD_BYTES);
        seq++;
    }
    size_t i = 0;
    while (i < len) {
        uint8_t c = script[i++];
        uint32_t n = 1 + (c & 3);
        if ((c & 0x40) && seq > 1) {
            seq--;
            f->damaged_seqs = true;
        } else if (c & 0x80) {
            seq++;
        }
        size_t head = at;
        uint64_t first = seq;
        at += WAL_BATCH_HEAD_BYTES;
        uint32_t made = 0;
        for (; made < n && i < len; made++) {
            uint8_t t = script[i++];
            size_t m = t & 0x7f;
            if (m > len - i)
                m = len - i;
            put_record(f, &at, (t & 0x80) ? WAL_DELETE : WAL_PUT, seq++, script + i, m);
            i += m;
        }
        if (!made) {
            at = head; /* a batch with no record is no batch */
            break;
        }
        put_batch_head(f->file + head, at - head - WAL_BATCH_HEAD_BYTES, made, first);
        f->last_at = head;
        f->last_n = made;
        f->last_first_seq = first;
        memcpy(f->last_head, f->file + head, WAL_BATCH_HEAD_BYTES);
    }
    f->len = at;
}

/* What byte 1 of a framed input does to the last batch, [last_at, len). */
static void apply_op(struct framed_log *f, unsigned op, unsigned where)
{
    size_t from = f->last_at, n = f->len - from;

    if (f->len == WAL_HEADER_BYTES || !n)
        return;
    switch (op) {
    case OP_FLIP:
        f->file[from + (where / 8) % n] ^= (unsigned char)(1u << (where % 8));
        break;
    case OP_ZERO_SECTOR: {
        size_t s = (from + where % n) / WAL_SECTOR_BYTES * WAL_SECTOR_BYTES;
        size_t e = s + WAL_SECTOR_BYTES < f->len ? s + WAL_SECTOR_BYTES : f->len;
        memset(f->file + s, 0, e - s);
        break;
    }
    case OP_CUT:
        f->len = from + where % n;
        break;
    case OP_ZERO_FROM:
        memset(f->file + from + where % n, 0, f->len - from - where % n);
        break;
    case OP_CRASH_SECTORS:
        /* sector i of the file from the one the batch starts in: its share of the batch */
        for (size_t i = 0; i < 16; i++) {
            size_t s = (from / WAL_SECTOR_BYTES + i) * WAL_SECTOR_BYTES;
            if (!(where & (1u << i)) || s >= f->len)
                continue;
            size_t a = s > from ? s : from;
            size_t e = s + WAL_SECTOR_BYTES < f->len ? s + WAL_SECTOR_BYTES : f->len;
            memset(f->file + a, 0, e - a);
        }
        break;
    case OP_KILLED:
        memset(f->file + from + where % n, 0, n - where % n);
        break;
    default:
        break;
    }
}

static size_t nonzero_end(const unsigned char *p, size_t len)
{
    static const unsigned char zeros[4096];

    while (len >= sizeof zeros && !memcmp(p + len - sizeof zeros, zeros, sizeof zeros))
        len -= sizeof zeros;
    while (len && !p[len - 1])
        len--;
    return len;
}

/* The file at path holds exactly data[0..len). */
static void check_kept(const char *path, const unsigned char *data, size_t len)
{
    FILE *f = fopen(path, "rb");

    FUZZ_CHECK(f != NULL, "no kept file %s", path);
    unsigned char *got = malloc(len + 1);
    FUZZ_CHECK(got != NULL, "out of memory");
    size_t n = fread(got, 1, len + 1, f);
    fclose(f);
    FUZZ_CHECK(n == len && (!len || !memcmp(got, data, len)), "%s holds %zu other bytes", path,
               n);
    free(got);
}

/*
 * What sa counts (see the top); head_intact: the framed last batch's head
 * is in the file as framed.
 */
static void check_count(const struct wal_set_aside *sa, const struct framed_log *f,
                        bool head_intact)
{
    if (!sa->records)
        FUZZ_CHECK(!sa->first_seq && !sa->last_seq, "no records, sequence %llu to %llu",
                   (unsigned long long)sa->first_seq, (unsigned long long)sa->last_seq);
    else
        FUZZ_CHECK(sa->first_seq <= sa->last_seq, "sequence %llu to %llu",
                   (unsigned long long)sa->first_seq, (unsigned long long)sa->last_seq);
    if (head_intact && sa->bytes && sa->offset == f->last_at)
        FUZZ_CHECK(sa->records == f->last_n && sa->first_seq == f->last_first_seq &&
                       sa->last_seq == f->last_first_seq + f->last_n - 1,
                   "the last batch holds %u records from %llu; counted %llu, %llu to %llu",
                   f->last_n, (unsigned long long)f->last_first_seq,
                   (unsigned long long)sa->records, (unsigned long long)sa->first_seq,
                   (unsigned long long)sa->last_seq);
}

/*
 * A refusal of damage names the offset and the records repair sets aside:
 * "batch at byte OFF ...; N acknowledged records[ (sequence A to B)] are".
 * A bad header names neither; a file cut short after a batch names where
 * its last batch ends, and repair sets nothing aside.
 */
static void check_refusal_count(const char *msg, const struct wal_set_aside *out)
{
    const char *at = strstr(msg, "batch at byte ");
    const char *count = strstr(msg, " acknowledged records");

    if (strstr(msg, "cut short after a batch: its last batch ends at byte ")) {
        unsigned long long end = strtoull(strstr(msg, "ends at byte ") + 13, NULL, 10);
        FUZZ_CHECK(!at && !out->bytes && !out->records && end == out->offset,
                   "refused saying \"%s\"; repair set aside %llu bytes at %llu", msg,
                   (unsigned long long)out->bytes, (unsigned long long)out->offset);
        return;
    }

    if (!at) {
        FUZZ_CHECK(!count, "a count without an offset: %s", msg);
        return;
    }
    FUZZ_CHECK(count != NULL, "no count: %s", msg);
    unsigned long long off = strtoull(at + strlen("batch at byte "), NULL, 10);
    const char *digits = count;
    while (digits > msg && digits[-1] >= '0' && digits[-1] <= '9')
        digits--;
    FUZZ_CHECK(digits < count && digits - msg >= 2 && digits[-2] == ';', "count: %s", msg);
    unsigned long long n = strtoull(digits, NULL, 10), first = 0, last = 0;
    const char *seqs = count + strlen(" acknowledged records");
    if (n)
        FUZZ_CHECK(sscanf(seqs, " (sequence %llu to %llu)", &first, &last) == 2,
                   "no sequence numbers: %s", msg);
    else
        FUZZ_CHECK(!strncmp(seqs, " are in", 7), "sequence numbers of no records: %s", msg);
    FUZZ_CHECK(off == out->offset && n == out->records && first == out->first_seq &&
                   last == out->last_seq,
               "refused saying \"%s\"; repair set aside %llu records (%llu to %llu) at %llu",
               msg, (unsigned long long)out->records, (unsigned long long)out->first_seq,
               (unsigned long long)out->last_seq, (unsigned long long)out->offset);
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");

    FUZZ_CHECK(f != NULL, "cannot open %s", path);
    FUZZ_CHECK(fseek(f, 0, SEEK_END) == 0, "seek");
    long n = ftell(f);
    FUZZ_CHECK(n >= 0 && fseek(f, 0, SEEK_SET) == 0, "seek");
    unsigned char *p = malloc((size_t)n + 1);
    FUZZ_CHECK(p != NULL, "out of memory");
    FUZZ_CHECK(fread(p, 1, (size_t)n, f) == (size_t)n, "read");
    fclose(f);
    *len = (size_t)n;
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!log_path)
        LLVMFuzzerInitialize(NULL, NULL);
    if (!size)
        return 0;

    unsigned mode = data[0];
    struct framed_log fl = { 0 };
    unsigned op = OP_NONE;
    if ((mode & MODE_FRAMED) && !(mode & MODE_RAW)) {
        if (size < 4)
            return 0;
        op = data[1] % N_OPS;
        build_framed(&fl, data + 4, size - 4, (mode & MODE_STEP_CUT) != 0);
        apply_op(&fl, op, (unsigned)data[2] | (unsigned)data[3] << 8);
        if ((mode & MODE_STEP_CUT) && fl.len > STEP)
            fl.len = STEP;
    } else {
        size_t body = size - 1;
        fl.len = (mode & MODE_RAW) ? body : WAL_HEADER_BYTES + body;
        fl.cap = fl.len + STEP;
        fl.file = calloc(1, fl.cap);
        FUZZ_CHECK(fl.file != NULL, "out of memory");
        if (mode & MODE_RAW) {
            memcpy(fl.file, data + 1, body);
        } else {
            header(fl.file);
            memcpy(fl.file + WAL_HEADER_BYTES, data + 1, body);
        }
    }
    size_t len = fl.len;
    bool head_intact = fl.recs && fl.last_n && !(mode & MODE_STEP_CUT) &&
                       fl.last_at + WAL_BATCH_HEAD_BYTES <= fl.len &&
                       !memcmp(fl.file + fl.last_at, fl.last_head, WAL_BATCH_HEAD_BYTES);
    if (mode & MODE_PAD) {
        size_t whole = (len + STEP - 1) / STEP * STEP;
        FUZZ_CHECK(whole <= fl.cap, "no room to pad");
        memset(fl.file + len, 0, whole - len);
        len = whole;
    }
    unsigned char *file = fl.file;
    fuzz_write_file(log_path, file, len);

    struct replayed first = { .after_seq = (mode >> 1) & 3, .strict = (mode & MODE_STRICT) != 0,
                              .file = file, .file_len = len, .expect = fl.recs,
                              .n_expect = fl.n_recs };
    struct wal *w = NULL;
    struct xerr err = { 0 };
    uint64_t last = 0;
    char kept[sizeof ((struct wal_set_aside *)0)->kept_path] = "";
    int rc = wal_open(log_path, first.after_seq, on_record, &first, &w, &last, &err);
    /* a framed log left as framed, unpadded, ends exactly at its last batch
     * in a file that is not a whole step: cut short after a batch (damage) */
    bool cut_after_batch = fl.recs && op == OP_NONE && len % STEP != 0;
    /* what a crash can leave: the last batch torn, or a growth lost (then the
     * batch the cut falls in is the last in the file) */
    bool crash_only = fl.recs && !fl.damaged_seqs && !cut_after_batch &&
                      ((op == OP_NONE && (mode & MODE_STEP_CUT)) ||
                       (!(mode & MODE_STEP_CUT) &&
                        (op == OP_NONE || op == OP_CRASH_SECTORS || op == OP_KILLED)));
    if (rc) {
        FUZZ_CHECK(w == NULL, "log set on failure");
        FUZZ_CHECK(err.msg[0], "no message");
        if (first.refused) {
            FUZZ_CHECK((int)err.code == rc, "open: %d %s", rc, err.msg);
            goto out;
        }
        FUZZ_CHECK(rc == XE_CORRUPT && (int)err.code == rc, "open: %d %s", rc, err.msg);
        FUZZ_CHECK(!crash_only, "a log torn as a crash tears it is refused: %s", err.msg);
        size_t now_len;
        unsigned char *now = read_all(log_path, &now_len);
        FUZZ_CHECK(now_len == len && !memcmp(now, file, len), "a refused log was changed");
        free(now);

        /* repair sets the bad bytes aside where it says, and the log opens */
        struct wal_set_aside out;
        char refusal[sizeof err.msg];
        snprintf(refusal, sizeof refusal, "%s", err.msg);
        rc = wal_repair(log_path, &out, &err);
        FUZZ_CHECK(rc == XE_OK, "repair: %s", err.msg);
        check_refusal_count(refusal, &out);
        check_count(&out, &fl, head_intact);
        /* a file cut short after a batch: every batch kept, nothing set aside */
        bool kept_all = !out.bytes && out.why[0] && out.offset == len && len % STEP;
        FUZZ_CHECK(out.bytes > 0 || kept_all, "repair found nothing in a refused log: %s",
                   out.why);
        FUZZ_CHECK(out.offset + out.bytes <= len, "set aside past the end");
        FUZZ_CHECK(nonzero_end(file, len) <= out.offset + out.bytes, "bytes left behind");
        if (!kept_all) {
            check_kept(out.kept_path, file + out.offset, (size_t)out.bytes);
            unlink(out.kept_path);
        } else {
            FUZZ_CHECK(!out.kept_path[0], "a kept file for nothing: %s", out.kept_path);
        }
        first = (struct replayed){ .after_seq = first.after_seq, .strict = first.strict,
                                   .expect = fl.recs, .n_expect = fl.n_recs };
        rc = wal_open(log_path, first.after_seq, on_record, &first, &w, &last, &err);
        if (rc) {
            FUZZ_CHECK(first.refused, "the log does not open after repair: %s", err.msg);
            goto out;
        }
        FUZZ_CHECK(wal_torn_tail(w)->bytes == 0, "a torn tail after repair");
    } else {
        FUZZ_CHECK(w != NULL, "no log");
        const struct wal_set_aside *t = wal_torn_tail(w);
        size_t end = nonzero_end(file, len);
        if (len >= WAL_HEADER_BYTES && wal_bytes(w) < end) {
            FUZZ_CHECK(t->bytes > 0 && t->offset == wal_bytes(w) && t->offset + t->bytes >= end,
                       "bytes to %zu dropped silently (kept from %llu)", end,
                       (unsigned long long)wal_bytes(w));
        }
        if (t->bytes) {
            FUZZ_CHECK(t->offset + t->bytes <= len, "torn tail past the end");
            check_kept(t->kept_path, file + t->offset, (size_t)t->bytes);
            check_count(t, &fl, head_intact);
            snprintf(kept, sizeof kept, "%s", t->kept_path);
        }
        if (crash_only && !(mode & MODE_STEP_CUT)) /* a crash tears the last batch only */
            FUZZ_CHECK(wal_bytes(w) >= fl.last_at, "%llu bytes kept, the last batch at %zu",
                       (unsigned long long)wal_bytes(w), fl.last_at);
        if (fl.recs && op == OP_NONE && !fl.damaged_seqs && !(mode & MODE_STEP_CUT))
            FUZZ_CHECK(next_expected(&first) == NULL && !t->bytes, "a sound log lost records");
    }
    FUZZ_CHECK(last == (first.n ? first.last_seq : first.after_seq), "last_seq %llu",
               (unsigned long long)last);
    FUZZ_CHECK(wal_bytes(w) >= WAL_HEADER_BYTES &&
                   wal_bytes(w) <= (len > WAL_HEADER_BYTES ? len : WAL_HEADER_BYTES),
               "%llu bytes kept of %zu", (unsigned long long)wal_bytes(w), len);
    if (last == UINT64_MAX) { /* no next sequence number */
        wal_close(w);
        goto out;
    }

    if (wal_version(w) == 1) { /* a version 1 log is replayed, never appended to */
        FUZZ_CHECK(wal_add(w, WAL_DELETE, last + 1, APPENDED, strlen(APPENDED)) == XE_OK,
                   "wal_add");
        FUZZ_CHECK(wal_commit(w, &err) == XE_IO, "a version 1 log took a batch");
        wal_close(w);
        goto out;
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
    FUZZ_CHECK(wal_torn_tail(w)->bytes == 0, "a torn tail after an append");
    FUZZ_CHECK(last2 == last + 1, "last_seq %llu after appending %llu",
               (unsigned long long)last2, (unsigned long long)(last + 1));
    FUZZ_CHECK(second.n == first.n + 1, "%zu records replayed, then %zu", first.n, second.n);
    uint64_t h = mix(mix(mix(mix(first.digest, WAL_DELETE), last + 1), strlen(APPENDED)),
                     crc32c(0, APPENDED, strlen(APPENDED)));
    FUZZ_CHECK(second.digest == h, "the records replayed differ after an append");
    wal_close(w);
out:
    if (kept[0])
        unlink(kept);
    free(fl.file);
    free(fl.recs);
    return 0;
}
