/*
 * Fuzz target: the segment reader (index/format/segment.h) and, behind it, posting
 * lists (index/format/postings.h), the document store (index/format/docstore.h) and stored
 * records (index/format/doc.h), fed damaged files.
 *
 * A small valid segment is written once (memindex, posting blocks of two
 * documents, more than one dictionary block, a replaced id, tags, sources,
 * dates, chunks of SEGMENT_CHUNK_MIN_BYTES). Each input damages a copy of it:
 *
 *   byte 0     mode bits:
 *                0x01  recompute the checksums after the damage (each chunk's,
 *                      the chunk table's, the header's), so that the
 *                      structural checks and the lazy decoding behind them get
 *                      the damaged bytes (without it almost every input stops
 *                      at a checksum)
 *                0x02  make the header agree with the length: file_bytes is
 *                      set to it and the store section stretched or shrunk to
 *                      end there (before the crc32c, when 0x01 is set)
 *                0x04  raw: the file is the rest of the input, not the base
 *                      segment (no truncation or pokes)
 *                0x08  truncate or extend (with zeros): bytes 1..2, u16le,
 *                      give the new length modulo base length + 256
 *                0x10  open without checking every chunk (as a segment over
 *                      SEGMENT_VERIFY_AT_OPEN_BYTES is), so that damaged
 *                      chunks are met by the reads: each must fail
 *                      XE_CORRUPT, never give other data
 *   then       3-byte pokes: u16le offset (modulo the length), byte value
 *
 * The file is opened; a refusal must be XE_CORRUPT with a message naming the
 * file. An open segment is read everywhere (a read may fail XE_CORRUPT): every term from the first
 * (segment_terms_from), each one looked up again, each posting list walked
 * with its positions and skipped through with postings_advance(), lookups
 * of known and odd terms and prefixes, every document's entry, its id found
 * again with segment_find_id(), its stored record loaded, decoded and turned
 * back into JSON. Nothing may crash, leak or read outside the file; what is
 * read must be in range: docids below n_docs and increasing, positions
 * increasing, ids of 1..DOC_ID_MAX_BYTES. When the file is the base segment
 * itself, everything must also be found and load without error.
 *
 * FUZZ_SEGMENT_DUMP=path in the environment writes the base segment there
 * (seed inputs in raw mode are made from it).
 */
#include "tests/fuzz/fuzz.h"

#include <jansson.h>

#include "index/base/buf.h"
#include "index/base/bytes.h"
#include "index/base/crc32c.h"
#include "index/format/doc.h"
#include "index/format/docstore.h"
#include "index/base/error.h"
#include "index/write/memindex.h"
#include "index/format/postings.h"
#include "index/format/segment.h"
#include "server/docjson.h"

#define MODE_FIX_CRC 0x01
#define MODE_FIX_LENGTH 0x02
#define MODE_RAW 0x04
#define MODE_RESIZE 0x08
#define MODE_LAZY 0x10

#define BASE_BLOCK_DOCS 2 /* posting lists cross blocks every two documents */
#define EXTEND_MAX 256
#define MAX_POSITIONS 64
#define MAX_TERMS_WALKED 4096 /* a damaged count cannot make one input take seconds */
#define SCRATCH_MAX_BYTES (DOCSTORE_RAW_MAX + 1)
#define JSON_MAX_BYTES (4 * (size_t)DOC_MAX_BYTES)

/* The base segment's documents: CJK runs, words, a replaced id, tags, dates. */
static const char *const base_docs[] = {
    "{\"id\":\"cbj-musk-xai\",\"title\":\"马斯克矛盾的AI观：一边呼吁暂停训练 一边成立X.AI入局\","
    "\"body\":\"4月14日，据外媒援引美国内华达州的一份文件报道，马斯克已于3月9日注册了一家新的人工"
    "智能(AI)公司。GPT-4 和 ChatGPT 新闻 xun\",\"source\":\"中国经营报\",\"date\":\"2023-04-22\","
    "\"tags\":[\"AI\",\"马斯克\"],\"url\":\"https://example.com/a\"}",
    "{\"id\":\"xhs-puhui\",\"title\":\"普惠化 金融 xun\",\"body\":\"普惠化 普惠，惠化 数字经济 "
    "digital economy ＡＩ café 新闻 xun xun\",\"source\":\"新华社\","
    "\"date\":\"2023-04-29T08:00:00+08:00\"}",
    "{\"id\":\"dup\",\"title\":\"first version\",\"body\":\"oldword shared xun\"}",
    "{\"id\":\"en-1\",\"title\":\"Hello World\",\"body\":\"world news world hello again and "
    "again xun\",\"tags\":[\"news\",\"\",\"xun\"],\"source\":\"\"}",
    "{\"id\":\"dup\",\"title\":\"second version\",\"body\":\"newword shared \\\"quoted\\\" xun 新闻\"}",
    "{\"id\":\"猫\",\"title\":\"猫\",\"body\":\"一只猫 猫猫 cat xun 新闻\",\"date\":null,"
    "\"source\":\"新华社\"}",
};

static const char *const probe_terms[] = {
    "xun",    "新闻",   "猫",   "\x01猫", "普惠", "惠化", "world", "hello", "gpt", "4",
    "ai",     "shared", "oldword", "\x02新华社", "\x03AI", "\x03", "", "zzzz", "\xff\xff", "a",
};

static unsigned char *base;
static size_t base_len;
static const char *seg_path;

static void write_base(void)
{
    struct memindex *mi = memindex_new(TOKENIZE_DEFAULT);
    struct xerr err = { 0 };
    const char *path = fuzz_path("base.seg");

    FUZZ_CHECK(mi != NULL, "memindex_new");
    segment_set_chunk_bytes(SEGMENT_CHUNK_MIN_BYTES); /* the base spans many chunks */
    memindex_set_block_docs(mi, BASE_BLOCK_DOCS);
    for (size_t i = 0; i < sizeof base_docs / sizeof base_docs[0]; i++) {
        json_t *root;
        struct doc_fields d;
        int rc = docjson_parse(base_docs[i], strlen(base_docs[i]), &root, &d, &err);
        FUZZ_CHECK(rc == XE_OK, "base document %zu: %s", i, err.msg);
        rc = memindex_add(mi, &d, &err);
        FUZZ_CHECK(rc == XE_OK, "base document %zu: %s", i, err.msg);
        json_decref(root);
    }
    FUZZ_CHECK(memindex_write(mi, path, false, &err) == XE_OK, "memindex_write: %s", err.msg);
    segment_set_chunk_bytes(0);
    memindex_free(mi);

    FILE *f = fopen(path, "rb");
    FUZZ_CHECK(f != NULL, "cannot read %s", path);
    FUZZ_CHECK(fseek(f, 0, SEEK_END) == 0, "seek");
    long n = ftell(f);
    FUZZ_CHECK(n >= SEGMENT_HEADER_BYTES && n < 60000, "base segment of %ld bytes", n);
    rewind(f);
    base_len = (size_t)n;
    base = malloc(base_len);
    FUZZ_CHECK(base && fread(base, 1, base_len, f) == base_len, "cannot read %s", path);
    fclose(f);
    unlink(path);
}

static void free_base(void)
{
    free(base);
    base = NULL;
    docstore_thread_cleanup();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (base)
        return 0;
    write_base();
    seg_path = fuzz_path("damaged.seg");
    /* FUZZ_SEGMENT_DUMP=path writes the base segment there, to make seed inputs from */
    const char *dump = getenv("FUZZ_SEGMENT_DUMP");
    if (dump && *dump)
        fuzz_write_file(dump, base, base_len);
    atexit(free_base);
    return 0;
}

/*
 * Walks one posting list: every document, its positions, then skips with
 * advance(). pristine: the file is the base segment, so nothing may be damaged.
 */
static void walk_postings(const struct segment_term *t, uint32_t n_docs, uint32_t salt,
                          bool pristine)
{
    struct postings_cursor c;
    uint32_t positions[MAX_POSITIONS], again[MAX_POSITIONS];
    int64_t prev = -1;
    uint32_t seen = 0;

    postings_cursor_init(&c, t->postings, t->postings_len, t->has_positions, n_docs);
    FUZZ_CHECK(c.corrupt || postings_cursor_n_docs(&c) <= n_docs, "list of %u docs in %u",
               postings_cursor_n_docs(&c), n_docs);
    while (postings_next(&c)) {
        FUZZ_CHECK(c.docid < n_docs && (int64_t)c.docid > prev, "docid %u after %lld of %u",
                   c.docid, (long long)prev, n_docs);
        FUZZ_CHECK(postings_tf_total(&c) > 0, "document %u without a frequency", c.docid);
        prev = c.docid;
        seen++;
        /* positions of some documents only, so that the lazy skipping is used too */
        if (!t->has_positions || (c.docid + salt) % 3 == 0)
            continue;
        int n = postings_positions(&c, positions, MAX_POSITIONS);
        if (n < 0)
            break;
        FUZZ_CHECK((uint32_t)n == (postings_tf_total(&c) < MAX_POSITIONS
                                       ? postings_tf_total(&c) : MAX_POSITIONS),
                   "%d positions for tf %u", n, postings_tf_total(&c));
        for (int i = 1; i < n; i++)
            FUZZ_CHECK(positions[i] > positions[i - 1], "position %u after %u", positions[i],
                       positions[i - 1]);
        if (salt & 1) { /* asked twice: the same again */
            int m = postings_positions(&c, again, MAX_POSITIONS);
            FUZZ_CHECK(m == n && !memcmp(again, positions, (size_t)n * sizeof *positions),
                       "positions read twice differ");
        }
    }
    FUZZ_CHECK(c.docid == DOCID_END, "cursor ended on docid %u", c.docid);
    if (pristine)
        FUZZ_CHECK(!c.corrupt && seen == t->df && postings_cursor_n_docs(&c) == t->df,
                   "undamaged list: %u docs, df %u, corrupt %d", seen, t->df, c.corrupt);

    /* skipping: targets spread over the docids */
    postings_cursor_init(&c, t->postings, t->postings_len, t->has_positions, n_docs);
    uint32_t target = salt % 3;
    prev = -1;
    while (target < n_docs && postings_advance(&c, target)) {
        FUZZ_CHECK(c.docid >= target && c.docid < n_docs && (int64_t)c.docid > prev,
                   "advance(%u) gave %u after %lld", target, c.docid, (long long)prev);
        prev = c.docid;
        if (t->has_positions && (target & 1))
            postings_positions(&c, positions, MAX_POSITIONS);
        target = c.docid + 1 + (salt + c.docid) % 3;
    }
}

static void check_doc(const struct segment *seg, uint32_t docid, struct buf *scratch,
                      struct buf *json, bool pristine)
{
    struct segment_doc sd;
    struct doc_fields d;
    struct xerr err = { 0 };

    int rc = segment_doc(seg, docid, &sd, &err);
    if (pristine)
        FUZZ_CHECK(rc == XE_OK, "undamaged: doc %u: %s", docid, err.msg);
    if (rc) {
        FUZZ_CHECK(rc == XE_CORRUPT && err.msg[0], "doc %u: %d %s", docid, rc, err.msg);
        return;
    }
    FUZZ_CHECK(sd.id && sd.id_len >= 1 && sd.id_len <= DOC_ID_MAX_BYTES, "doc %u: id of %zu",
               docid, sd.id_len);
    struct segment_doc_rank rank;
    rc = segment_doc_rank(seg, docid, &rank, &err);
    FUZZ_CHECK(rc == XE_OK || (!pristine && rc == XE_CORRUPT && err.msg[0]), "rank of doc %u: %s",
               docid, err.msg);
    err = (struct xerr){ 0 };
    uint32_t found;
    rc = segment_find_id(seg, sd.id, sd.id_len, &found, &err);
    FUZZ_CHECK(rc == XE_OK || rc == XE_NOTFOUND || (rc == XE_CORRUPT && err.msg[0]),
               "find_id: %d %s", rc, err.msg);
    if (rc == XE_OK) {
        struct segment_doc fd;
        FUZZ_CHECK(found < segment_n_docs(seg), "find_id gave %u", found);
        if (segment_doc(seg, found, &fd, NULL) == XE_OK)
            FUZZ_CHECK(fd.id_len == sd.id_len && !memcmp(fd.id, sd.id, sd.id_len),
                       "find_id gave a document with another id");
    }
    if (pristine)
        FUZZ_CHECK(rc == XE_OK && found == docid, "undamaged: find_id of doc %u gave %u", docid,
                   found);
    err = (struct xerr){ 0 };
    rc = segment_load(seg, docid, scratch, &d, &err);
    if (pristine)
        FUZZ_CHECK(rc == XE_OK, "undamaged: load of doc %u: %s", docid, err.msg);
    if (rc) {
        FUZZ_CHECK(rc == XE_CORRUPT && err.msg[0], "load of doc %u: %d %s", docid, rc, err.msg);
        return;
    }
    buf_reset(json);
    err = (struct xerr){ 0 };
    rc = doc_json(&d, json, &err);
    FUZZ_CHECK(rc == XE_OK || (rc == XE_CORRUPT && err.msg[0]), "doc_json: %d %s", rc, err.msg);
    if (pristine) {
        /* the JSON of a document that was not replaced, as given */
        bool known = false;
        FUZZ_CHECK(rc == XE_OK, "undamaged: doc_json of doc %u: %s", docid, err.msg);
        for (size_t i = 0; i < sizeof base_docs / sizeof base_docs[0] && !known; i++)
            known = strlen(base_docs[i]) == json->len &&
                    !memcmp(base_docs[i], json->data, json->len) &&
                    strcmp(base_docs[i], base_docs[2]) != 0;
        FUZZ_CHECK(known, "undamaged: doc %u gave JSON %.*s", docid, (int)json->len,
                   (const char *)json->data);
    }
    buf_reset(json);
    FUZZ_CHECK(doc_record_encode(&d, json) == XE_OK, "re-encoding a loaded record");
}

static void read_everything(const struct segment *seg, uint32_t salt, bool pristine)
{
    uint32_t n_docs = segment_n_docs(seg);
    struct segment_term_iter it;
    struct segment_term t, t2;
    size_t walked = 0;
    char term[TOKEN_MAX_BYTES + 1];

    for (int f = 0; f < N_FIELDS; f++)
        (void)segment_field_tokens(seg, (enum doc_field)f);
    FUZZ_CHECK(segment_file_bytes(seg) >= SEGMENT_HEADER_BYTES, "file of %llu bytes",
               (unsigned long long)segment_file_bytes(seg));
    FUZZ_CHECK(!strcmp(segment_path(seg), seg_path), "path");

    segment_terms_from(seg, "", 0, &it);
    while (walked < MAX_TERMS_WALKED && segment_terms_next(&it, &t)) {
        size_t len = it.term_len;
        FUZZ_CHECK(len <= TOKEN_MAX_BYTES + 1, "term of %zu bytes", len);
        FUZZ_CHECK(t.df <= n_docs, "df %u of %u docs", t.df, n_docs);
        memcpy(term, it.term, len);
        walk_postings(&t, n_docs, salt + (uint32_t)walked, pristine);
        struct xerr err = { 0 };
        int rc = segment_lookup(seg, term, len, &t2, &err);
        FUZZ_CHECK(rc == XE_OK || rc == XE_NOTFOUND || (rc == XE_CORRUPT && err.msg[0]),
                   "lookup: %d %s", rc, err.msg);
        bool found = rc == XE_OK;
        if (found)
            FUZZ_CHECK(t2.postings_len <= segment_file_bytes(seg), "lookup: list of %zu",
                       t2.postings_len);
        if (pristine)
            FUZZ_CHECK(found && t2.postings == t.postings && t2.df == t.df,
                       "undamaged: term %zu not found again", walked);
        walked++;
    }
    struct xerr it_err = { 0 };
    segment_terms_error(&it, &it_err);
    FUZZ_CHECK(!it.rc || (it.rc == XE_CORRUPT && it_err.msg[0]), "terms: %d %s", it.rc,
               it_err.msg);
    if (pristine)
        FUZZ_CHECK(walked == segment_n_terms(seg) && !it.rc, "undamaged: %zu of %u terms: %s",
                   walked, segment_n_terms(seg), it_err.msg);
    for (size_t i = 0; i < sizeof probe_terms / sizeof probe_terms[0]; i++) {
        const char *p = probe_terms[i];
        if (segment_lookup(seg, p, strlen(p), &t, NULL) == XE_OK)
            walk_postings(&t, n_docs, salt + (uint32_t)i, pristine);
        segment_terms_from(seg, p, strlen(p), &it);
        for (int k = 0; k < 3 && segment_terms_next(&it, &t); k++)
            FUZZ_CHECK(it.term_len <= TOKEN_MAX_BYTES + 1, "term of %zu bytes", it.term_len);
    }
    char long_term[TOKEN_MAX_BYTES + 8];
    memset(long_term, 'x', sizeof long_term);
    FUZZ_CHECK(segment_lookup(seg, long_term, sizeof long_term, &t, NULL) == XE_NOTFOUND,
               "lookup of a long term");

    struct buf scratch, json;
    buf_init(&scratch, SCRATCH_MAX_BYTES);
    buf_init(&json, JSON_MAX_BYTES);
    for (uint32_t d = 0; d < n_docs; d++)
        check_doc(seg, d, &scratch, &json, pristine);
    uint32_t missing;
    int rc = segment_find_id(seg, "no such id", 10, &missing, NULL);
    FUZZ_CHECK(rc == XE_NOTFOUND || (!pristine && (rc == XE_CORRUPT || missing < n_docs)),
               "find_id: %d %u", rc, missing);
    struct xerr err = { 0 };
    const unsigned char *rec;
    size_t rec_len;
    FUZZ_CHECK(segment_record(seg, n_docs, &scratch, &rec, &rec_len, &err) == XE_NOTFOUND,
               "record past the end");
    buf_fini(&json);
    buf_fini(&scratch);
}

/* Where a chunk table of the header's chunk size ends a file of len bytes
 * (false when none fits). */
static bool table_at(const unsigned char *f, size_t len, size_t *table)
{
    uint64_t chunk = get_u32le(f + 120), body = len - SEGMENT_HEADER_BYTES;

    for (uint64_t n = body / (chunk + 4) + 1, tries = 0;
         chunk >= SEGMENT_CHUNK_MIN_BYTES && (chunk & (chunk - 1)) == 0 && tries < 3;
         n--, tries++) {
        if (4 * n <= body && (body - 4 * n + chunk - 1) / chunk == n) {
            *table = len - 4 * (size_t)n;
            return true;
        }
    }
    return false;
}

/* Sets file_bytes to len and makes the store section end where a chunk table
 * would start. */
static void fix_length(unsigned char *f, size_t len)
{
    size_t table;

    if (len < SEGMENT_HEADER_BYTES)
        return;
    put_u64le(f + 48, len);
    if (!table_at(f, len, &table))
        table = len;
    uint64_t store_off = get_u64le(f + 56 + 16 * 3);
    put_u64le(f + 64 + 16 * 3, store_off <= table ? table - store_off : 0);
}

/* The chunk table where the header's chunk size and the length place it
 * (when they do), then the header's checksum. */
static void fix_crcs(unsigned char *f, size_t len)
{
    size_t table;

    if (len < SEGMENT_HEADER_BYTES)
        return;
    size_t chunk = get_u32le(f + 120);
    if (table_at(f, len, &table)) {
        size_t n = (len - table) / 4;
        for (size_t c = 0; c < n; c++) {
            size_t from = SEGMENT_HEADER_BYTES + c * chunk;
            size_t to = from + chunk < table ? from + chunk : table;
            put_u32le(f + table + 4 * c, crc32c(0, f + from, to - from));
        }
        put_u32le(f + 124, crc32c(0, f + table, 4 * n));
    }
    put_u32le(f + 12, crc32c(0, f + 16, SEGMENT_HEADER_BYTES - 16));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!base)
        LLVMFuzzerInitialize(NULL, NULL);
    if (!size)
        return 0;

    unsigned mode = data[0];
    const uint8_t *p = data + 1, *end = data + size;
    unsigned char *f;
    size_t len;

    if (mode & MODE_RAW) {
        len = (size_t)(end - p);
        f = malloc(len + 1);
        FUZZ_CHECK(f != NULL, "out of memory");
        if (len)
            memcpy(f, p, len);
    } else {
        len = base_len;
        if ((mode & MODE_RESIZE) && end - p >= 2) {
            len = (size_t)(p[0] | p[1] << 8) % (base_len + EXTEND_MAX);
            p += 2;
        }
        f = calloc(1, len > base_len ? len : base_len);
        FUZZ_CHECK(f != NULL, "out of memory");
        memcpy(f, base, len < base_len ? len : base_len);
        for (; end - p >= 3 && len; p += 3)
            f[(size_t)(p[0] | p[1] << 8) % len] = p[2];
    }
    if (mode & MODE_FIX_LENGTH)
        fix_length(f, len);
    if (mode & MODE_FIX_CRC)
        fix_crcs(f, len);
    bool pristine = len == base_len && !memcmp(f, base, len);
    fuzz_write_file(seg_path, f, len);
    free(f);

    struct segment *seg = NULL;
    struct xerr err = { 0 };
    segment_set_verify_at_open_bytes(mode & MODE_LAZY ? 1 : 0);
    int rc = segment_open(seg_path, &seg, &err);
    segment_set_verify_at_open_bytes(0);
    if (rc) {
        FUZZ_CHECK(rc == XE_CORRUPT && err.code == XE_CORRUPT, "open: %d %s", rc, err.msg);
        FUZZ_CHECK(strstr(err.msg, "damaged.seg") != NULL, "message without the file: %s",
                   err.msg);
        FUZZ_CHECK(seg == NULL, "segment set on failure");
        FUZZ_CHECK(!pristine, "the undamaged segment is refused: %s", err.msg);
        return 0;
    }
    if (pristine)
        FUZZ_CHECK(segment_n_docs(seg) == 5, "undamaged: %u documents", segment_n_docs(seg));
    read_everything(seg, mode >> 4, pristine);
    segment_close(seg);
    return 0;
}
