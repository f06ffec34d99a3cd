/*
 * Tests of index/format/docstore.h, format version 3 (records recoded by symbol
 * rank, grouped into blocks of about DOCSTORE_BLOCK_BYTES, one zstd frame per
 * block, with a dictionary when there is enough input): writer -> reader
 * round trips with records of 0, 1, 100 and 20,000 bytes and of exactly
 * DOCSTORE_RAW_MAX bytes, thousands of records without a dictionary, 3,000
 * similar records with one, Chinese poems with one, read in random order,
 * records of many scripts, emoji, stray bytes that are not UTF-8, empty
 * records, records larger than a block, more than 96 + 7,936 symbols (so
 * that every code length is used; the codes are checked inside the
 * decompressed blocks, the ranks against the counts), refs numbered 0..n-1,
 * readers on several threads, and damage: every truncation (a dense sample
 * for the dictionary section), head counts and tables that do not fit or
 * are out of order, flipped bytes in the symbol table, the block table, the
 * record starts, the dictionary and the frames, and forged frames and codes.
 * Damage gives XE_CORRUPT or the exact original bytes, never a crash; where
 * the format cannot tell (no checksums), wrong bytes are counted, not
 * asserted. Every section handed to docstore_open() is an exact-size heap
 * copy so ASan sees any read past it, and LeakSanitizer sees a dictionary
 * docstore_close() leaves.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_f_zstd1_magicless */
#include <zstd.h>

#include "index/base/buf.h"
#include "index/base/bytes.h"
#include "index/format/docstore.h"
#include "index/base/error.h"
#include "tests/testutil.h"

#define SECTION_MAX_BYTES ((size_t)1 << 30)
#define SCRATCH_MAX_BYTES (4 * (size_t)DOCSTORE_RAW_MAX)
#define BIG_RECORD_BYTES 20000
#define HEAD_BYTES 16  /* u32 n_records, n_blocks, n_symbols, dict_bytes */
#define SYMBOL_BYTES 4 /* a symbol table entry */
#define N_SIMILAR 3000 /* records of the dictionary section */
#define SIMILAR_MAX_BYTES 1024
#define N_POEMS 1500 /* records of the poem section: enough for a dictionary */
#define POEM_MAX_BYTES 1024
#define N_HAN 3000 /* the poems' characters: U+4E00 and up */
#define N_READER_THREADS 4
/* The codes (docstore.h): ranks below RANK_2 take 1 byte, below RANK_4 2, else 4. */
#define RANK_2 96u
#define RANK_4 (96u + 7936u)

/* ---- helpers ---- */

static uint32_t rng_next(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

/* Record i of len bytes: words from a small alphabet, so zstd has something to find. */
static unsigned char *make_record(uint32_t i, size_t len)
{
    unsigned char *rec = malloc(len ? len : 1);
    uint32_t r = i * 2654435761u + 1;

    assert_non_null(rec);
    for (size_t j = 0; j < len; j++)
        rec[j] = (unsigned char)(j % 7 == 6 ? ' ' : 'a' + rng_next(&r) % 20);
    if (len)
        rec[0] = (unsigned char)i; /* records of one byte differ too */
    return rec;
}

static const char *const similar_words[] = {
    "market",   "government", "report",  "city",     "river",   "science", "energy",
    "minister", "election",   "weather", "football", "company", "price",   "school",
    "hospital", "research",   "police",  "festival", "railway", "harbour", "budget",
    "village",  "museum",     "court",   "farmers",  "export",  "storm",   "bridge",
};
#define N_SIMILAR_WORDS (sizeof similar_words / sizeof similar_words[0])

static void append_words(struct buf *b, uint32_t *r, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (k)
            buf_append_byte(b, ' ');
        buf_append_str(b, similar_words[rng_next(r) % N_SIMILAR_WORDS]);
    }
}

/*
 * Record i of the kind a dictionary is for: a stored document's JSON, the
 * same keys and vocabulary in every record, 200 to 600 bytes.
 */
static unsigned char *make_similar_record(uint32_t i, uint32_t seed, size_t *len)
{
    uint32_t r = (i + 1) * 2246822519u ^ seed;
    char num[64];
    struct buf b;

    buf_init(&b, SIMILAR_MAX_BYTES);
    snprintf(num, sizeof num, "{\"id\":\"doc-%05u\",\"title\":\"", (unsigned)i);
    buf_append_str(&b, num);
    append_words(&b, &r, 3 + rng_next(&r) % 4);
    buf_append_str(&b, "\",\"body\":\"");
    append_words(&b, &r, 20 + rng_next(&r) % 40);
    snprintf(num, sizeof num, "\",\"date\":\"2024-%02u-%02u\",\"source\":\"",
             1 + (unsigned)(rng_next(&r) % 12), 1 + (unsigned)(rng_next(&r) % 28));
    buf_append_str(&b, num);
    buf_append_str(&b, similar_words[i % 5]);
    buf_append_str(&b, "\",\"tags\":[\"news\",\"");
    append_words(&b, &r, 1);
    buf_append_str(&b, "\"]}");
    assert_int_equal(b.rc, XE_OK);
    return buf_steal(&b, len);
}

static void append_utf8(struct buf *b, uint32_t cp)
{
    unsigned char u[4];
    size_t n;

    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (unsigned char)(0xC0 | cp >> 6);
        u[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (unsigned char)(0xE0 | cp >> 12);
        u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        u[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (unsigned char)(0xF0 | cp >> 18);
        u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
        u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        u[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    buf_append(b, u, n);
}

/* n characters of the poems' pool, small indexes far more often (roughly Zipf). */
static void append_han(struct buf *b, uint32_t *r, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        uint32_t x = rng_next(r) % N_HAN, y = rng_next(r) % N_HAN;
        append_utf8(b, 0x4E00 + x * y / N_HAN);
    }
}

/*
 * Poem i as the store holds a document: its JSON (a title, an author, four
 * or eight lines of five or seven characters with full-width punctuation),
 * then a varint of i (bytes >= 0x80 that are not UTF-8) and the author again.
 */
static unsigned char *make_poem_record(uint32_t i, uint32_t seed, size_t *len)
{
    uint32_t r = (i + 1) * 2654435761u ^ seed;
    unsigned char varint[VARINT_MAX_BYTES];
    size_t line_chars = rng_next(&r) % 2 ? 7 : 5, n_lines = rng_next(&r) % 2 ? 8 : 4;
    struct buf b, author;

    buf_init(&b, POEM_MAX_BYTES);
    buf_init(&author, POEM_MAX_BYTES);
    append_han(&author, &r, 2 + rng_next(&r) % 2);
    buf_append_str(&b, "{\"title\":\"");
    append_han(&b, &r, 2 + rng_next(&r) % 5);
    buf_append_str(&b, "\",\"author\":\"");
    buf_append(&b, author.data, author.len);
    buf_append_str(&b, "\",\"body\":\"");
    for (size_t k = 0; k < n_lines; k++) {
        append_han(&b, &r, line_chars);
        buf_append_str(&b, k % 2 ? "。" : "，");
    }
    buf_append_str(&b, "\"}");
    buf_append(&b, varint, varint_put(varint, 100000 + (uint64_t)i * 37));
    buf_append(&b, author.data, author.len);
    assert_int_equal(b.rc, XE_OK);
    buf_fini(&author);
    return buf_steal(&b, len);
}

/* A finished section: an exact-size heap copy, and where each record went. */
struct section {
    unsigned char *data;
    size_t len;
    struct docstore_ref *refs;
    unsigned char **records;
    size_t *lens;
    size_t n;
    size_t raw_bytes; /* the records' lengths added up */
};

/* Writes records[0..n) (taking ownership of records and lens) into s. */
static void section_write(struct section *s, unsigned char **records, size_t *lens, size_t n)
{
    struct docstore_writer *w = docstore_writer_new();
    struct xerr err = { 0 };
    struct buf out;

    assert_non_null(w);
    s->n = n;
    s->records = records;
    s->lens = lens;
    s->raw_bytes = 0;
    s->refs = calloc(n ? n : 1, sizeof *s->refs);
    assert_non_null(s->refs);
    for (size_t i = 0; i < n; i++) {
        s->refs[i].record = UINT32_MAX - 7; /* must be overwritten */
        assert_ok(docstore_writer_add(w, records[i], lens[i], &s->refs[i], &err), &err);
        s->raw_bytes += lens[i];
        assert_int_equal(docstore_writer_bytes(w), s->raw_bytes);
    }
    buf_init(&out, SECTION_MAX_BYTES);
    assert_ok(docstore_writer_finish(w, &out, &err), &err);
    s->len = out.len;
    s->data = malloc(out.len);
    assert_non_null(s->data);
    memcpy(s->data, out.data, out.len);
    buf_fini(&out);
    docstore_writer_free(w);
}

/* Room for n records and their lengths, zeroed (for section_write()). */
static void records_alloc(size_t n, unsigned char ***records, size_t **lens)
{
    *records = calloc(n ? n : 1, sizeof **records);
    *lens = calloc(n ? n : 1, sizeof **lens);
    assert_non_null(*records);
    assert_non_null(*lens);
}

/* n records of the given lengths (make_record()). */
static void records_made(const size_t *lens, size_t n, unsigned char ***records, size_t **copy)
{
    records_alloc(n, records, copy);
    for (size_t i = 0; i < n; i++) {
        (*copy)[i] = lens[i];
        (*records)[i] = make_record((uint32_t)i, lens[i]);
    }
}

/* A section of n records of the given lengths (make_record()). */
static void section_build(struct section *s, const size_t *lens, size_t n)
{
    unsigned char **records;
    size_t *copy;

    records_made(lens, n, &records, &copy);
    section_write(s, records, copy, n);
}

/* A section of the given records (copied), each texts[i] of lens[i] bytes. */
static void section_build_from(struct section *s, const char *const *texts,
                               const size_t *lens, size_t n)
{
    unsigned char **records;
    size_t *copy;

    records_alloc(n, &records, &copy);
    for (size_t i = 0; i < n; i++) {
        copy[i] = lens[i];
        records[i] = malloc(lens[i] ? lens[i] : 1);
        assert_non_null(records[i]);
        memcpy(records[i], texts[i], lens[i]);
    }
    section_write(s, records, copy, n);
}

typedef unsigned char *(*make_fn)(uint32_t i, uint32_t seed, size_t *len);

/* A section of n records made by make (as many as fit in max_raw_bytes). */
static void section_build_made(struct section *s, make_fn make, size_t n, uint32_t seed,
                               size_t max_raw_bytes)
{
    unsigned char **records;
    size_t *lens, total = 0, kept = 0;

    records_alloc(n, &records, &lens);
    for (; kept < n; kept++) {
        records[kept] = make((uint32_t)kept, seed, &lens[kept]);
        if (total + lens[kept] > max_raw_bytes) {
            free(records[kept]);
            break;
        }
        total += lens[kept];
    }
    section_write(s, records, lens, kept);
}

/* A section of similar records (make_similar_record()), as many as fit in max_raw_bytes. */
static void section_build_similar(struct section *s, size_t n, uint32_t seed,
                                  size_t max_raw_bytes)
{
    section_build_made(s, make_similar_record, n, seed, max_raw_bytes);
}

static void section_free(struct section *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->records[i]);
    free(s->records);
    free(s->lens);
    free(s->refs);
    free(s->data);
}

/* ---- where things are in a section (docstore.h, version 3) ---- */

static uint32_t n_records_of(const unsigned char *data)
{
    return get_u32le(data);
}

static uint32_t n_blocks_of(const unsigned char *data)
{
    return get_u32le(data + 4);
}

static uint32_t n_symbols_of(const unsigned char *data)
{
    return get_u32le(data + 8);
}

static uint32_t dict_bytes_of(const unsigned char *data)
{
    return get_u32le(data + 12);
}

static size_t dict_at(const unsigned char *data)
{
    return HEAD_BYTES + SYMBOL_BYTES * (size_t)n_symbols_of(data);
}

static size_t frames_at(const unsigned char *data)
{
    return dict_at(data) + dict_bytes_of(data);
}

/* Where the tables start: they end the section. */
static size_t offsets_at(const struct section *s)
{
    const unsigned char *d = s->data;

    return s->len - (8 * ((size_t)n_blocks_of(d) + 1) + 4 * (size_t)n_blocks_of(d) +
                     2 * (size_t)n_records_of(d));
}

static size_t firsts_at(const struct section *s)
{
    return offsets_at(s) + 8 * ((size_t)n_blocks_of(s->data) + 1);
}

static size_t starts_at(const struct section *s)
{
    return firsts_at(s) + 4 * (size_t)n_blocks_of(s->data);
}

/* Frame offset b; b == n_blocks is the end of the frames. */
static uint64_t offset_of(const struct section *s, size_t b)
{
    return get_u64le(s->data + offsets_at(s) + 8 * b);
}

static uint32_t first_of(const struct section *s, size_t b)
{
    return get_u32le(s->data + firsts_at(s) + 4 * b);
}

/* One past block b's last record. */
static uint32_t block_end_of(const struct section *s, size_t b)
{
    return b + 1 < n_blocks_of(s->data) ? first_of(s, b + 1) : n_records_of(s->data);
}

static uint16_t start_of(const struct section *s, size_t i)
{
    return get_u16le(s->data + starts_at(s) + 2 * i);
}

/* The block holding record i. */
static size_t block_of_record(const struct section *s, size_t i)
{
    size_t b = 0;

    while (b + 1 < n_blocks_of(s->data) && first_of(s, b + 1) <= i)
        b++;
    return b;
}

static unsigned char *copy_of(const unsigned char *data, size_t len)
{
    unsigned char *copy = malloc(len ? len : 1);

    assert_non_null(copy);
    memcpy(copy, data, len);
    return copy;
}

/* Block b's recoded content, decompressed here with zstd directly (the caller frees). */
static unsigned char *block_content(const struct section *s, size_t b, size_t *len)
{
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    ZSTD_DDict *ddict = NULL;
    const unsigned char *data = s->data;
    const unsigned char *frame = data + offset_of(s, b);
    size_t frame_len = (size_t)(offset_of(s, b + 1) - offset_of(s, b));
    ZSTD_frameHeader head;

    assert_non_null(dctx);
    assert_false(ZSTD_isError(ZSTD_DCtx_setParameter(dctx, ZSTD_d_format,
                                                     ZSTD_f_zstd1_magicless)));
    if (dict_bytes_of(data)) {
        ddict = ZSTD_createDDict(data + dict_at(data), dict_bytes_of(data));
        assert_non_null(ddict);
    }
    assert_int_equal(ZSTD_getFrameHeader_advanced(&head, frame, frame_len,
                                                  ZSTD_f_zstd1_magicless),
                     0);
    assert_true(head.frameContentSize != ZSTD_CONTENTSIZE_UNKNOWN);
    assert_int_equal(head.dictID, 0); /* no dictionary id in the frames */
    *len = (size_t)head.frameContentSize;
    unsigned char *content = malloc(*len ? *len : 1);
    assert_non_null(content);
    size_t got = ZSTD_decompress_usingDDict(dctx, content, *len, frame, frame_len, ddict);
    assert_false(ZSTD_isError(got));
    assert_int_equal(got, *len);
    ZSTD_freeDDict(ddict);
    ZSTD_freeDCtx(dctx);
    return content;
}

/* The sections built once (training takes a while). */
static struct section shared_dict_section, shared_poem_section;

/* 3,000 similar records of ASCII JSON, with a dictionary. */
static const struct section *dict_section(void)
{
    if (!shared_dict_section.data)
        section_build_similar(&shared_dict_section, N_SIMILAR, 0, SIZE_MAX);
    return &shared_dict_section;
}

/* 1,500 Chinese poems with varints, with a dictionary. */
static const struct section *poem_section(void)
{
    if (!shared_poem_section.data)
        section_build_made(&shared_poem_section, make_poem_record, N_POEMS, 0, SIZE_MAX);
    return &shared_poem_section;
}

static void assert_reads(const struct docstore *ds, const struct section *s, size_t i,
                         struct buf *scratch)
{
    const unsigned char *rec = NULL;
    size_t len = SIZE_MAX;
    struct xerr err = { 0 };

    assert_ok(docstore_read(ds, s->refs[i], scratch, &rec, &len, &err), &err);
    assert_int_equal(len, s->lens[i]);
    if (len)
        assert_memory_equal(rec, s->records[i], len);
}

/* Opens s, reads every record in order, back to front, and in a random order. */
static void assert_reads_all(const struct section *s, uint32_t seed)
{
    struct docstore ds;
    struct buf scratch;
    struct xerr err = { 0 };
    size_t *order = malloc(sizeof *order * (s->n ? s->n : 1));

    assert_non_null(order);
    assert_ok(docstore_open(&ds, s->data, s->len, &err), &err);
    assert_int_equal(ds.n_records, s->n);
    buf_init(&scratch, SCRATCH_MAX_BYTES);
    for (size_t i = 0; i < s->n; i++)
        assert_reads(&ds, s, i, &scratch);
    for (size_t i = s->n; i-- > 0;)
        assert_reads(&ds, s, i, &scratch);
    for (size_t i = 0; i < s->n; i++)
        order[i] = i;
    for (size_t i = s->n; i > 1; i--) { /* Fisher-Yates */
        size_t j = rng_next(&seed) % i, t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    for (size_t k = 0; k < s->n; k++)
        assert_reads(&ds, s, order[k], &scratch);
    buf_fini(&scratch);
    docstore_close(&ds);
    free(order);
}

/* Checks that the writer numbered the records 0..n-1 in the order they came. */
static void assert_refs_numbered(const struct section *s)
{
    for (size_t i = 0; i < s->n; i++)
        assert_int_equal(s->refs[i].record, i);
    assert_int_equal(n_records_of(s->data), s->n);
}

/* The recoded length of record i in block b, whose content is block_len bytes. */
static size_t recoded_len_of(const struct section *s, size_t b, size_t i, size_t block_len)
{
    size_t end = i + 1 < block_end_of(s, b) ? start_of(s, i + 1) : block_len;

    return end - start_of(s, i);
}

/* Checks the blocks against the writer's rule: a block closes once it holds
 * DOCSTORE_BLOCK_BYTES, and a record that large is a block alone. */
static void assert_blocks_cut_by_size(const struct section *s)
{
    const unsigned char *d = s->data;
    size_t prev_len = 0;

    for (size_t b = 0; b < n_blocks_of(d); b++) {
        size_t len, first = first_of(s, b), n_in_block = block_end_of(s, b) - first;
        free(block_content(s, b, &len));
        assert_true(n_in_block >= 1);
        if (n_in_block > 1) {
            assert_true(len < 2 * DOCSTORE_BLOCK_BYTES);
            for (size_t i = first; i < first + n_in_block; i++)
                assert_true(recoded_len_of(s, b, i, len) < DOCSTORE_BLOCK_BYTES);
        }
        /* the previous block was full, or this one starts with a large record */
        if (b > 0 && prev_len < DOCSTORE_BLOCK_BYTES)
            assert_true(recoded_len_of(s, b, first, len) >= DOCSTORE_BLOCK_BYTES);
        prev_len = len;
    }
}

/* What reading a damaged section gave. */
struct outcome {
    int open_rc;
    size_t n_refused; /* outcome_add() totals: opens refused */
    size_t n_exact;   /* reads that gave the original bytes */
    size_t n_corrupt; /* reads refused with XE_CORRUPT */
    size_t n_wrong;   /* reads that passed with other bytes: damage not caught */
};

/*
 * Reads records first, first + step, ... < end from an open store whose
 * bytes may be damaged. Each read must give XE_OK or XE_CORRUPT, with the
 * code in err and a message naming the document store; what came back is
 * compared with the original and counted in *o.
 */
static void read_records(const struct docstore *ds, const struct section *s, size_t first,
                         size_t end, size_t step, struct outcome *o)
{
    struct buf scratch;

    buf_init(&scratch, SCRATCH_MAX_BYTES);
    for (size_t i = first; i < end && i < s->n; i += step) {
        const unsigned char *rec = NULL;
        size_t len = 0;
        struct xerr err = { 0 };
        int rc = docstore_read(ds, s->refs[i], &scratch, &rec, &len, &err);
        if (rc) {
            assert_int_equal(rc, XE_CORRUPT);
            assert_int_equal(err.code, XE_CORRUPT);
            assert_non_null(strstr(err.msg, "document store"));
            o->n_corrupt++;
        } else if (len == s->lens[i] && (!len || !memcmp(rec, s->records[i], len))) {
            o->n_exact++;
        } else {
            o->n_wrong++;
        }
    }
    buf_fini(&scratch);
}

/* Opens an exact-size copy of data[0..len) and reads every step-th record of s from it. */
static struct outcome read_all_from(const struct section *s, const unsigned char *data,
                                    size_t len, size_t step)
{
    unsigned char *copy = copy_of(data, len);
    struct outcome o = { 0 };
    struct docstore ds;
    struct xerr err = { 0 };

    o.open_rc = docstore_open(&ds, copy, len, &err);
    if (o.open_rc) {
        assert_int_equal(o.open_rc, XE_CORRUPT);
        assert_int_equal(err.code, XE_CORRUPT);
        assert_non_null(strstr(err.msg, "document store"));
        assert_null(ds.ddict); /* nothing for docstore_close() to free */
    } else {
        read_records(&ds, s, 0, s->n, step, &o);
    }
    docstore_close(&ds);
    free(copy);
    return o;
}

static void outcome_add(struct outcome *all, const struct outcome *o)
{
    all->n_refused += o->open_rc != 0;
    all->n_exact += o->n_exact;
    all->n_corrupt += o->n_corrupt;
    all->n_wrong += o->n_wrong;
}

/* ---- the codes inside the blocks ---- */

/* The symbol an entry of the table stands for: code point, or 0x110000 + a stray byte. */
static uint32_t entry_symbol(const unsigned char *e)
{
    if (!e[1])
        return 0x110000u + e[0];
    if (e[0] < 0xE0)
        return (uint32_t)(e[0] & 0x1F) << 6 | (e[1] & 0x3F);
    if (e[0] < 0xF0)
        return (uint32_t)(e[0] & 0x0F) << 12 | (uint32_t)(e[1] & 0x3F) << 6 | (e[2] & 0x3F);
    return (uint32_t)(e[0] & 0x07) << 18 | (uint32_t)(e[1] & 0x3F) << 12 |
           (uint32_t)(e[2] & 0x3F) << 6 | (e[3] & 0x3F);
}

/* How many codes of each length (index 1, 2, 4) the blocks hold, and ASCII bytes (index 0). */
struct code_counts {
    size_t n[5];
};

/*
 * Walks the codes of every block of s: each is canonical (the shortest for its
 * rank) and names a symbol of the table; then the table is in rank order:
 * counts falling, ties by symbol, every symbol used.
 */
static struct code_counts assert_ranks_by_frequency(const struct section *s)
{
    const unsigned char *d = s->data;
    uint32_t n_symbols = n_symbols_of(d);
    size_t *uses = calloc(n_symbols + 1, sizeof *uses);
    struct code_counts codes = { { 0 } };

    assert_non_null(uses);
    for (size_t b = 0; b < n_blocks_of(d); b++) {
        size_t len;
        unsigned char *content = block_content(s, b, &len);
        for (size_t at = 0; at < len;) {
            unsigned char c = content[at];
            size_t code = c < 0x80 ? 0 : c < 0xE0 ? 1 : c < 0xFF ? 2 : 4;
            uint32_t rank = 0;
            assert_true(at + (code ? code : 1) <= len);
            if (code == 1)
                rank = c - 0x80u;
            else if (code == 2)
                rank = RANK_2 + (c - 0xE0u) * 256 + content[at + 1];
            else if (code == 4)
                rank = content[at + 1] | (uint32_t)content[at + 2] << 8 |
                       (uint32_t)content[at + 3] << 16;
            if (code) {
                assert_true(rank < n_symbols);
                assert_int_equal(code, rank < RANK_2 ? 1 : rank < RANK_4 ? 2 : 4);
                uses[rank]++;
            }
            codes.n[code]++;
            at += code ? code : 1;
        }
        free(content);
    }
    for (uint32_t r = 0; r < n_symbols; r++) {
        assert_true(uses[r] > 0);
        if (r + 1 < n_symbols) {
            assert_true(uses[r] >= uses[r + 1]);
            if (uses[r] == uses[r + 1])
                assert_true(entry_symbol(d + HEAD_BYTES + SYMBOL_BYTES * r) <
                            entry_symbol(d + HEAD_BYTES + SYMBOL_BYTES * (r + 1)));
        }
    }
    free(uses);
    return codes;
}

/* ---- round trips ---- */

static void test_docstore_round_trips_records_of_0_1_100_20000_bytes(void **state)
{
    static const size_t lens[] = { 0, 1, 100, BIG_RECORD_BYTES, 1, 0, 100, BIG_RECORD_BYTES,
                                   BIG_RECORD_BYTES, 0 };
    /* a 20,000-byte record is a block alone, the small ones share blocks */
    static const uint32_t firsts[] = { 0, 3, 4, 7, 8, 9 };
    const size_t n = sizeof lens / sizeof lens[0], n_blocks = sizeof firsts / sizeof firsts[0];
    struct section s;
    struct docstore ds;
    struct buf scratch;
    struct xerr err = { 0 };

    (void)state;
    section_build(&s, lens, n);
    assert_refs_numbered(&s);
    assert_int_equal(s.raw_bytes, 3 * BIG_RECORD_BYTES + 2 * 100 + 2);
    assert_int_equal(dict_bytes_of(s.data), 0); /* far below DOCSTORE_DICT_MIN_INPUT */
    assert_int_equal(n_symbols_of(s.data), 0);  /* ASCII only: nothing to recode */
    assert_int_equal(n_blocks_of(s.data), n_blocks);
    for (size_t b = 0; b < n_blocks; b++)
        assert_int_equal(first_of(&s, b), firsts[b]);
    assert_blocks_cut_by_size(&s);
    assert_ok(docstore_open(&ds, s.data, s.len, &err), &err);
    assert_int_equal(ds.n_records, n);
    assert_int_equal(ds.n_blocks, n_blocks);
    assert_null(ds.ddict);
    assert_int_equal(ds.frames_start, HEAD_BYTES);
    assert_int_equal(offset_of(&s, 0), ds.frames_start);
    /* the tables end the section */
    assert_int_equal(ds.frames_end, s.len - (8 * (n_blocks + 1) + 4 * n_blocks + 2 * n));
    assert_int_equal(offset_of(&s, n_blocks), ds.frames_end);
    buf_init(&scratch, SCRATCH_MAX_BYTES);
    for (size_t i = 0; i < n; i++)
        assert_reads(&ds, &s, i, &scratch);
    for (size_t i = n; i-- > 0;) /* back to front, one scratch buffer */
        assert_reads(&ds, &s, i, &scratch);
    buf_fini(&scratch);
    docstore_close(&ds);
    section_free(&s);
}

static void test_docstore_round_trips_many_records_without_a_dictionary(void **state)
{
    enum { N = 4000 };
    size_t *lens = malloc(N * sizeof *lens);
    uint32_t r = 99;
    struct section s;
    struct docstore ds;
    struct buf scratch;
    struct xerr err = { 0 };

    (void)state;
    assert_non_null(lens);
    for (size_t i = 0; i < N; i++)
        lens[i] = i % 1999 == 0 ? BIG_RECORD_BYTES : rng_next(&r) % (i % 3 ? 40 : 120);
    section_build(&s, lens, N);
    free(lens);
    assert_refs_numbered(&s);
    assert_true(s.raw_bytes < DOCSTORE_DICT_MIN_INPUT);
    assert_int_equal(dict_bytes_of(s.data), 0);
    assert_true(n_blocks_of(s.data) > 10);
    assert_blocks_cut_by_size(&s);
    assert_ok(docstore_open(&ds, s.data, s.len, &err), &err);
    assert_int_equal(ds.n_records, N);
    assert_null(ds.ddict);
    buf_init(&scratch, SCRATCH_MAX_BYTES);
    for (size_t i = 0; i < N; i++)
        assert_reads(&ds, &s, i, &scratch);
    for (size_t k = 0; k < N; k++) /* a fixed permutation: 1009 is prime to 4000 */
        assert_reads(&ds, &s, k * 1009 % N, &scratch);
    buf_fini(&scratch);
    docstore_close(&ds);
    section_free(&s);
}

/* The bytes of s's records compressed one by one (version 2 without its dictionary). */
static size_t bytes_compressed_alone(const struct section *s)
{
    size_t total = 0;

    for (size_t i = 0; i < s->n; i++) {
        unsigned char frame[ZSTD_COMPRESSBOUND(POEM_MAX_BYTES + SIMILAR_MAX_BYTES)];
        assert_true(s->lens[i] <= POEM_MAX_BYTES + SIMILAR_MAX_BYTES);
        size_t got = ZSTD_compress(frame, sizeof frame, s->records[i], s->lens[i],
                                   DOCSTORE_ZSTD_LEVEL);
        assert_false(ZSTD_isError(got));
        total += got;
    }
    return total;
}

static void test_docstore_trains_a_dictionary_on_enough_similar_records(void **state)
{
    const struct section *s = dict_section();
    struct docstore ds;
    struct buf scratch;
    struct xerr err = { 0 };

    (void)state;
    assert_int_equal(s->n, N_SIMILAR);
    assert_refs_numbered(s);
    assert_true(s->raw_bytes > DOCSTORE_DICT_MIN_INPUT);
    uint32_t dict_len = dict_bytes_of(s->data), n_blocks = n_blocks_of(s->data);
    assert_true(dict_len > 0);
    assert_true(dict_len <= DOCSTORE_DICT_BYTES);
    assert_int_equal(n_symbols_of(s->data), 0);
    assert_int_equal(get_u32le(s->data + dict_at(s->data)), ZSTD_MAGIC_DICTIONARY);
    assert_true(s->len < s->raw_bytes);
    /* the records compressed alone take more */
    assert_true(s->len < bytes_compressed_alone(s));
    assert_true(n_blocks > s->raw_bytes / (2 * DOCSTORE_BLOCK_BYTES));
    assert_true(n_blocks <= s->raw_bytes / DOCSTORE_BLOCK_BYTES + 1);
    assert_blocks_cut_by_size(s);
    assert_ok(docstore_open(&ds, s->data, s->len, &err), &err);
    assert_int_equal(ds.n_records, N_SIMILAR);
    assert_non_null(ds.ddict);
    assert_int_equal(ds.frames_start, HEAD_BYTES + dict_len);
    assert_int_equal(offset_of(s, 0), ds.frames_start);
    assert_int_equal(offset_of(s, n_blocks), ds.frames_end);
    assert_int_equal(ds.frames_end, s->len - 8 * ((size_t)n_blocks + 1) - 4 * (size_t)n_blocks -
                                        2 * (size_t)N_SIMILAR);
    buf_init(&scratch, SCRATCH_MAX_BYTES);
    for (size_t i = 0; i < s->n; i++)
        assert_reads(&ds, s, i, &scratch);
    for (size_t k = 0; k < s->n; k++) /* 1009 is prime to 3000 */
        assert_reads(&ds, s, k * 1009 % s->n, &scratch);
    buf_fini(&scratch);
    /* frees the digested dictionary (LeakSanitizer checks at exit); twice is harmless */
    docstore_close(&ds);
    assert_null(ds.ddict);
    docstore_close(&ds);
}

static void test_docstore_recodes_chinese_poems_by_rank_behind_a_dictionary(void **state)
{
    const struct section *s = poem_section();
    size_t alone = bytes_compressed_alone(s);

    (void)state;
    assert_int_equal(s->n, N_POEMS);
    assert_refs_numbered(s);
    assert_true(s->raw_bytes > DOCSTORE_DICT_MIN_INPUT);
    assert_true(dict_bytes_of(s->data) > 0);
    /* characters, full-width punctuation and the varints' bytes */
    assert_true(n_symbols_of(s->data) > RANK_2);
    assert_true(n_symbols_of(s->data) < RANK_4);
    struct code_counts codes = assert_ranks_by_frequency(s);
    assert_true(codes.n[0] > 0 && codes.n[1] > 0 && codes.n[2] > 0);
    assert_int_equal(codes.n[4], 0);
    assert_blocks_cut_by_size(s);
    /* far smaller than the records compressed one by one */
    assert_true(s->len < alone * 3 / 4);
    print_message("poems: %zu raw bytes, %zu compressed alone, %zu in the store\n",
                  s->raw_bytes, alone, s->len);
    assert_reads_all(s, 7);
}

static void test_docstore_skips_the_dictionary_below_min_input(void **state)
{
    struct section s;
    struct docstore ds;
    struct buf scratch;
    struct xerr err = { 0 };

    (void)state;
    /* the same kind of records as the dictionary section, one byte short of the minimum */
    section_build_similar(&s, N_SIMILAR, 0, DOCSTORE_DICT_MIN_INPUT - 1);
    assert_true(s.n >= 500); /* plenty of records: only the byte count is short */
    assert_true(s.raw_bytes < DOCSTORE_DICT_MIN_INPUT);
    assert_refs_numbered(&s);
    assert_int_equal(dict_bytes_of(s.data), 0);
    assert_ok(docstore_open(&ds, s.data, s.len, &err), &err);
    assert_null(ds.ddict);
    buf_init(&scratch, SCRATCH_MAX_BYTES);
    for (size_t i = 0; i < s.n; i++)
        assert_reads(&ds, &s, i, &scratch);
    buf_fini(&scratch);
    docstore_close(&ds);
    section_free(&s);
}

/* Pieces of text in many scripts, each character once or a few times. */
static const char *const script_pieces[] = {
    "Ελληνικά γράμματα",
    "Русский текст",
    "العربية",
    "हिन्दी भाषा",
    "বাংলা লিপি",
    "ქართული ენა",
    "Հայերեն",
    "日本語のかなとカナ",
    "한국어 문장",
    "ภาษาไทย",
    "עברית",
    "café naïve façade",
    "€ ½ ẞ ™ — ∑ ∞ ≠ Ⅻ",
    "emoji 😀🎉👍🏽🇨🇳",
    "𠀀𠀁𪚥𫝀 (CJK Ext B..E)",
    "新华社北京电",
    "\xc2\x80 U+0080, \xdf\xbf U+07FF, \xe0\xa0\x80 U+0800",
    "\xed\x9f\xbf U+D7FF, \xee\x80\x80 U+E000, \xef\xbf\xbf U+FFFF",
    "\xf0\x90\x80\x80 U+10000, \xf4\x8f\xbf\xbf U+10FFFF",
    "\xef\xbf\xbd U+FFFD, \xc2\xa0nbsp",
    "ASCII only, no symbols",
};
#define N_SCRIPT_PIECES (sizeof script_pieces / sizeof script_pieces[0])

/* The distinct non-ASCII characters of texts, which must be valid UTF-8. */
static uint32_t count_distinct_characters(const char *const *texts, const size_t *lens,
                                          size_t n)
{
    unsigned char *seen = calloc(0x110000 / 8, 1);
    uint32_t n_distinct = 0;

    assert_non_null(seen);
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = (const unsigned char *)texts[i];
        for (size_t at = 0; at < lens[i];) {
            size_t len = p[at] < 0x80 ? 1 : p[at] < 0xE0 ? 2 : p[at] < 0xF0 ? 3 : 4;
            unsigned char e[SYMBOL_BYTES] = { 0 };
            assert_true(at + len <= lens[i]);
            memcpy(e, p + at, len);
            uint32_t cp = entry_symbol(e);
            if (len > 1 && !(seen[cp / 8] & 1u << cp % 8)) {
                seen[cp / 8] |= (unsigned char)(1u << cp % 8);
                n_distinct++;
            }
            at += len;
        }
    }
    free(seen);
    return n_distinct;
}

static void test_docstore_round_trips_many_scripts_and_emoji(void **state)
{
    enum { N = 300 };
    const char *texts[N];
    size_t lens[N];
    char *owned[N];
    uint32_t r = 5;
    struct section s;

    (void)state;
    for (size_t i = 0; i < N; i++) {
        struct buf b;
        buf_init(&b, 4096);
        for (size_t k = 0, n = 1 + rng_next(&r) % 6; k < n; k++) {
            buf_append_str(&b, script_pieces[rng_next(&r) % N_SCRIPT_PIECES]);
            buf_append_byte(&b, ' ');
        }
        if (i == 17)
            buf_append_str(&b, script_pieces[N_SCRIPT_PIECES - 1]); /* ASCII only */
        assert_int_equal(b.rc, XE_OK);
        owned[i] = (char *)buf_steal(&b, &lens[i]);
        texts[i] = owned[i];
    }
    section_build_from(&s, texts, lens, N);
    /* one symbol per distinct character: valid UTF-8, so no stray bytes */
    assert_int_equal(n_symbols_of(s.data), count_distinct_characters(texts, lens, N));
    assert_true(n_symbols_of(s.data) > RANK_2); /* two-byte codes too */
    for (size_t i = 0; i < N; i++)
        free(owned[i]);
    assert_refs_numbered(&s);
    for (uint32_t k = 0; k < n_symbols_of(s.data); k++)
        assert_int_not_equal(s.data[HEAD_BYTES + SYMBOL_BYTES * k + 1], 0);
    struct code_counts codes = assert_ranks_by_frequency(&s);
    assert_true(codes.n[2] > 0);
    assert_blocks_cut_by_size(&s);
    assert_reads_all(&s, 11);
    section_free(&s);
}

static void test_docstore_keeps_stray_bytes_apart_from_characters(void **state)
{
    static const struct {
        const char *what, *text;
        uint32_t n_symbols, n_stray; /* distinct symbols, of them stray bytes */
    } rows[] = {
        { "lone continuation byte", "a\x80z", 1, 1 },
        { "continuation bytes", "\xbf\xbf\xbf", 1, 1 },
        { "overlong slash", "\xc0\xaf", 2, 2 },
        { "overlong two-byte", "\xc1\xbf", 2, 2 },
        { "overlong three-byte", "\xe0\x80\xaf", 3, 3 },
        { "surrogate", "\xed\xa0\x80", 3, 3 },
        { "past U+10FFFF", "\xf4\x90\x80\x80", 3, 3 },
        { "lead byte 0xf5", "\xf5\x80\x80\x80", 2, 2 },
        { "bytes 0xff 0xfe", "\xff\xfe\xff", 2, 2 },
        { "cut at the end", "\xe6\x99", 2, 2 },
        { "cut before ASCII", "\xe6\x99" "a", 2, 2 },
        { "cut emoji", "\xf0\x9f\x98", 3, 3 },
        { "cut, then the character", "\xe6\x99\xe6\x99\xae", 3, 2 },
        { "lone lead at the end", "\xc2", 1, 1 },
        { "varint 300 between text", "n\xac\x02m", 1, 1 },
        { "U+00C3 beside a stray 0xc3", "\xc3\x83\xc3", 2, 1 },
        { "U+0080 beside a stray 0x80", "\xc2\x80\x80", 2, 1 },
        { "an emoji, valid", "\xf0\x9f\x98\x80", 1, 0 },
        { "普 beside its own bytes cut", "\xe6\x99\xae\xe6\x99\xae\xe6\x99", 3, 2 },
    };
    const size_t n_rows = sizeof rows / sizeof rows[0];
    const char *texts[sizeof rows / sizeof rows[0]];
    size_t lens[sizeof rows / sizeof rows[0]];

    (void)state;
    for (size_t k = 0; k < n_rows; k++) {
        struct section s;
        size_t len = strlen(rows[k].text);
        uint32_t n_stray = 0;
        section_build_from(&s, &rows[k].text, &len, 1);
        if (n_symbols_of(s.data) != rows[k].n_symbols)
            print_error("%s: %u symbols\n", rows[k].what, n_symbols_of(s.data));
        assert_int_equal(n_symbols_of(s.data), rows[k].n_symbols);
        for (uint32_t r = 0; r < n_symbols_of(s.data); r++) {
            const unsigned char *e = s.data + HEAD_BYTES + SYMBOL_BYTES * r;
            assert_true(e[0] >= 0x80);
            n_stray += e[1] == 0;
        }
        assert_int_equal(n_stray, rows[k].n_stray);
        assert_ranks_by_frequency(&s);
        assert_reads_all(&s, (uint32_t)k);
        section_free(&s);
        texts[k] = rows[k].text;
        lens[k] = len;
    }
    /* all of them in one section */
    struct section all;
    section_build_from(&all, texts, lens, n_rows);
    assert_ranks_by_frequency(&all);
    assert_reads_all(&all, 3);
    section_free(&all);
}

static void test_docstore_round_trips_empty_records(void **state)
{
    enum { N = 5000 };
    static const size_t mixed[] = { 0, BIG_RECORD_BYTES, 0, 0, BIG_RECORD_BYTES, 0, 5, 0 };
    static const uint32_t mixed_firsts[] = { 0, 1, 2, 4, 5 };
    size_t *lens = calloc(N, sizeof *lens);
    struct section s;
    struct docstore ds;
    struct xerr err = { 0 };

    (void)state;
    assert_non_null(lens);
    /* only empty records: one block of nothing */
    section_build(&s, lens, N);
    free(lens);
    assert_int_equal(n_blocks_of(s.data), 1);
    assert_int_equal(n_symbols_of(s.data), 0);
    size_t content_len;
    free(block_content(&s, 0, &content_len));
    assert_int_equal(content_len, 0);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(start_of(&s, i), 0);
    assert_ok(docstore_open(&ds, s.data, s.len, &err), &err);
    docstore_close(&ds);
    assert_reads_all(&s, 1);
    section_free(&s);
    /* empty records around records larger than a block */
    section_build(&s, mixed, sizeof mixed / sizeof mixed[0]);
    assert_int_equal(n_blocks_of(s.data), sizeof mixed_firsts / sizeof mixed_firsts[0]);
    for (size_t b = 0; b < n_blocks_of(s.data); b++)
        assert_int_equal(first_of(&s, b), mixed_firsts[b]);
    assert_reads_all(&s, 2);
    section_free(&s);
}

static void test_docstore_puts_a_record_larger_than_a_block_alone(void **state)
{
    enum { B = DOCSTORE_BLOCK_BYTES };
    static const size_t lens[] = { B - 1, B, B + 1, 1, B / 2 - 6, B / 2 + 6, 3 * B / 4 };
    /* B - 1 leaves its block open; B and B + 1 are alone; 1 + (B/2 - 6) + (B/2 + 6) reach B */
    static const uint32_t firsts[] = { 0, 1, 2, 3, 6 };
    struct section s;

    (void)state;
    section_build(&s, lens, sizeof lens / sizeof lens[0]);
    assert_int_equal(n_symbols_of(s.data), 0); /* so recoded lengths are the raw ones */
    assert_int_equal(n_blocks_of(s.data), sizeof firsts / sizeof firsts[0]);
    for (size_t b = 0; b < n_blocks_of(s.data); b++)
        assert_int_equal(first_of(&s, b), firsts[b]);
    assert_int_equal(start_of(&s, 4), 1);
    assert_int_equal(start_of(&s, 5), 1 + B / 2 - 6);
    assert_blocks_cut_by_size(&s);
    assert_reads_all(&s, 3);
    section_free(&s);

    /* Chinese: a long poem (3,000 characters, a block alone) between short ones */
    enum { N_LONG = 3 };
    const char *texts[N_LONG];
    size_t text_lens[N_LONG];
    struct buf b[N_LONG];
    uint32_t r = 77;
    for (size_t i = 0; i < N_LONG; i++) {
        buf_init(&b[i], 1 << 16);
        append_han(&b[i], &r, i == 1 ? 3000 : 20);
        texts[i] = (const char *)b[i].data;
        text_lens[i] = b[i].len;
    }
    section_build_from(&s, texts, text_lens, N_LONG);
    for (size_t i = 0; i < N_LONG; i++)
        buf_fini(&b[i]);
    assert_int_equal(n_blocks_of(s.data), 3);
    assert_blocks_cut_by_size(&s);
    assert_ranks_by_frequency(&s);
    assert_reads_all(&s, 4);
    section_free(&s);
}

/*
 * Records of more distinct characters than 1- and 2-byte codes reach:
 * 12,000 of CJK Extension A and B (4 bytes of UTF-8), each once or twice,
 * beside common characters that take the short codes.
 */
static void test_docstore_codes_ranks_past_8032_in_four_bytes(void **state)
{
    enum { N = 60, RARE_PER_RECORD = 200 };
    const char *texts[N];
    size_t lens[N];
    struct buf b[N];
    uint32_t r = 3;

    (void)state;
    for (size_t i = 0; i < N; i++) {
        buf_init(&b[i], 1 << 16);
        for (size_t k = 0; k < RARE_PER_RECORD; k++) {
            uint32_t n = (uint32_t)(i * RARE_PER_RECORD + k);
            append_utf8(&b[i], n < 6000 ? 0x3400 + n : 0x20000 + n); /* Ext A, then Ext B */
            if (k % 50 == 0)
                append_utf8(&b[i], 0x3400 + n % 100); /* some twice */
            append_han(&b[i], &r, 2);
        }
        texts[i] = (const char *)b[i].data;
        lens[i] = b[i].len;
    }
    struct section s;
    section_build_from(&s, texts, lens, N);
    for (size_t i = 0; i < N; i++)
        buf_fini(&b[i]);
    assert_true(n_symbols_of(s.data) > RANK_4 + 4000);
    struct code_counts codes = assert_ranks_by_frequency(&s);
    assert_true(codes.n[1] > 0);
    assert_true(codes.n[2] > 0);
    assert_true(codes.n[4] > 3000);
    assert_blocks_cut_by_size(&s);
    assert_reads_all(&s, 9);
    section_free(&s);
}

static void test_docstore_accepts_an_empty_record_without_bytes(void **state)
{
    struct docstore_writer *w = docstore_writer_new();
    struct docstore_ref ref = { 7 };
    struct xerr err = { 0 };
    struct docstore ds;
    struct buf out, scratch;
    const unsigned char *rec = NULL;
    size_t len = 1;

    (void)state;
    assert_non_null(w);
    assert_ok(docstore_writer_add(w, NULL, 0, &ref, &err), &err);
    assert_int_equal(ref.record, 0);
    assert_int_equal(docstore_writer_bytes(w), 0);
    buf_init(&out, SECTION_MAX_BYTES);
    assert_ok(docstore_writer_finish(w, &out, &err), &err);
    assert_ok(docstore_open(&ds, out.data, out.len, &err), &err);
    assert_int_equal(ds.n_records, 1);
    assert_int_equal(ds.n_blocks, 1);
    buf_init(&scratch, SCRATCH_MAX_BYTES);
    assert_ok(docstore_read(&ds, ref, &scratch, &rec, &len, &err), &err);
    assert_int_equal(len, 0);
    assert_non_null(rec);
    buf_fini(&scratch);
    docstore_close(&ds);
    buf_fini(&out);
    docstore_writer_free(w);
}

static void test_docstore_empty_section_has_no_records(void **state)
{
    struct section s;
    struct docstore ds;
    struct buf scratch;
    struct xerr err = { 0 };
    const unsigned char *rec;
    size_t len;

    (void)state;
    section_build(&s, NULL, 0);
    assert_int_equal(s.len, HEAD_BYTES + 8); /* the four counts, the one end offset */
    assert_int_equal(n_records_of(s.data), 0);
    assert_int_equal(n_blocks_of(s.data), 0);
    assert_int_equal(n_symbols_of(s.data), 0);
    assert_int_equal(dict_bytes_of(s.data), 0);
    assert_int_equal(offset_of(&s, 0), HEAD_BYTES); /* no frames: where the table starts */
    assert_ok(docstore_open(&ds, s.data, s.len, &err), &err);
    assert_int_equal(ds.n_records, 0);
    buf_init(&scratch, SCRATCH_MAX_BYTES);
    assert_int_equal(docstore_read(&ds, (struct docstore_ref){ 0 }, &scratch, &rec, &len, &err),
                     XE_CORRUPT);
    assert_non_null(strstr(err.msg, "no record 0"));
    buf_fini(&scratch);
    docstore_close(&ds);
    section_free(&s);
}

static void test_docstore_refuses_refs_to_missing_records(void **state)
{
    static const size_t lens[] = { 10, 20, 30 };
    static const struct {
        uint32_t record;
        const char *says;
    } bad[] = { { 3, "no record 3" }, { 4, "no record 4" },
                { UINT32_MAX, "no record 4294967295" } };
    struct section s;
    struct docstore ds;
    struct buf scratch;
    struct xerr err = { 0 };

    (void)state;
    section_build(&s, lens, 3);
    assert_ok(docstore_open(&ds, s.data, s.len, &err), &err);
    buf_init(&scratch, SCRATCH_MAX_BYTES);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const unsigned char *rec = NULL;
        size_t len = 0;
        xerr_clear(&err);
        assert_int_equal(docstore_read(&ds, (struct docstore_ref){ bad[i].record }, &scratch,
                                       &rec, &len, &err),
                         XE_CORRUPT);
        assert_int_equal(err.code, XE_CORRUPT);
        assert_non_null(strstr(err.msg, bad[i].says));
    }
    assert_reads(&ds, &s, 2, &scratch); /* the last one is still there */
    buf_fini(&scratch);
    docstore_close(&ds);
    section_free(&s);
}

static void test_docstore_takes_records_up_to_raw_max_and_no_more(void **state)
{
    unsigned char *big = calloc(DOCSTORE_RAW_MAX + 1, 1);
    struct docstore_writer *w = docstore_writer_new();
    struct docstore_ref ref = { 7 }, small = { 7 };
    struct xerr err = { 0 };
    struct docstore ds;
    struct buf out, scratch;
    const unsigned char *rec = NULL;
    size_t len = 0;

    (void)state;
    assert_non_null(big);
    assert_non_null(w);
    big[0] = 'x';
    big[DOCSTORE_RAW_MAX - 1] = 'y';
    assert_int_equal(docstore_writer_add(w, big, DOCSTORE_RAW_MAX + 1, &ref, &err), XE_LIMIT);
    assert_int_equal(err.code, XE_LIMIT);
    assert_int_equal(docstore_writer_bytes(w), 0);
    xerr_clear(&err);
    assert_ok(docstore_writer_add(w, big, DOCSTORE_RAW_MAX, &ref, &err), &err);
    assert_int_equal(ref.record, 0); /* the refused record took no number */
    assert_ok(docstore_writer_add(w, "z", 1, &small, &err), &err);
    assert_int_equal(small.record, 1);
    assert_int_equal(docstore_writer_bytes(w), DOCSTORE_RAW_MAX + 1);
    buf_init(&out, SECTION_MAX_BYTES);
    assert_ok(docstore_writer_finish(w, &out, &err), &err);
    docstore_writer_free(w);
    assert_ok(docstore_open(&ds, out.data, out.len, &err), &err);
    buf_init(&scratch, SCRATCH_MAX_BYTES);
    assert_ok(docstore_read(&ds, ref, &scratch, &rec, &len, &err), &err);
    assert_int_equal(len, DOCSTORE_RAW_MAX);
    assert_memory_equal(rec, big, DOCSTORE_RAW_MAX);
    assert_ok(docstore_read(&ds, small, &scratch, &rec, &len, &err), &err);
    assert_int_equal(len, 1);
    assert_int_equal(rec[0], 'z');
    buf_fini(&scratch);
    docstore_close(&ds);
    buf_fini(&out);
    free(big);
}

/* A record of DOCSTORE_RAW_MAX bytes after a small one, with characters and
 * stray bytes in it: the open block's bytes and the record's recoding fit. */
static void test_docstore_takes_a_raw_max_record_after_small_ones(void **state)
{
    char *big = malloc(DOCSTORE_RAW_MAX);
    const char *texts[3] = { "small, 小", NULL, "after" };
    size_t lens[3] = { strlen(texts[0]), DOCSTORE_RAW_MAX, 5 };
    struct section s;

    (void)state;
    assert_non_null(big);
    memset(big, 'q', DOCSTORE_RAW_MAX);
    for (size_t at = 0; at + 4 <= DOCSTORE_RAW_MAX; at += 4099) {
        memcpy(big + at, "中", 3);
        big[at + 3] = (char)0x85;
    }
    texts[1] = big;
    section_build_from(&s, texts, lens, 3);
    free(big);
    assert_int_equal(n_blocks_of(s.data), 3);
    assert_reads_all(&s, 5);
    section_free(&s);
}

struct reader_job {
    const struct docstore *ds;
    const struct section *s;
    size_t first;
    size_t n_exact;
};

static void *reader_thread(void *arg)
{
    struct reader_job *job = arg;
    struct buf scratch;

    buf_init(&scratch, SCRATCH_MAX_BYTES);
    for (size_t k = 0; k < job->s->n; k++) {
        size_t i = (job->first + k * 7) % job->s->n; /* 7 is prime to 3000 and 1500 */
        const unsigned char *rec;
        size_t len;
        struct xerr err = { 0 };
        if (!docstore_read(job->ds, job->s->refs[i], &scratch, &rec, &len, &err) &&
            len == job->s->lens[i] && !memcmp(rec, job->s->records[i], len))
            job->n_exact++;
    }
    buf_fini(&scratch);
    docstore_thread_cleanup(); /* else LeakSanitizer reports the thread's context */
    return NULL;
}

/* Readers on several threads, each with its own context and block buffer. */
static void test_docstore_reads_one_dictionary_from_several_threads(void **state)
{
    const struct section *sections[] = { dict_section(), poem_section() };
    struct reader_job jobs[N_READER_THREADS];
    pthread_t threads[N_READER_THREADS];

    (void)state;
    for (size_t k = 0; k < sizeof sections / sizeof sections[0]; k++) {
        const struct section *s = sections[k];
        struct docstore ds;
        struct xerr err = { 0 };
        assert_ok(docstore_open(&ds, s->data, s->len, &err), &err);
        assert_non_null(ds.ddict);
        for (size_t t = 0; t < N_READER_THREADS; t++) {
            jobs[t] = (struct reader_job){ .ds = &ds, .s = s, .first = t * s->n / 4 };
            assert_int_equal(pthread_create(&threads[t], NULL, reader_thread, &jobs[t]), 0);
        }
        for (size_t t = 0; t < N_READER_THREADS; t++) {
            assert_int_equal(pthread_join(threads[t], NULL), 0);
            assert_int_equal(jobs[t].n_exact, s->n);
        }
        docstore_close(&ds);
    }
}

/* ---- damage ---- */

/*
 * Nine records of 0 to 20,000 bytes, two of them with characters and a
 * stray byte: three blocks (records 0-3, 4 alone, 5-8), three symbols, no
 * dictionary.
 */
static void damage_section(struct section *s)
{
    /* three blocks: four short records, a big one alone, four short ones */
    enum { B = DOCSTORE_BLOCK_BYTES };
    static const size_t lens[] = { 0, 1, B / 8, B / 4, BIG_RECORD_BYTES, 5, 60, 0, B / 2 + 100 };
    static const uint32_t firsts[] = { 0, 4, 5 };
    const size_t n = sizeof lens / sizeof lens[0];
    unsigned char **records;
    size_t *copy;

    records_made(lens, n, &records, &copy);
    for (size_t i = 0; i < n; i++) {
        if (lens[i] >= B / 4) {
            memcpy(records[i] + 10, "中文", 6);
            records[i][20] = 0x85;
        }
    }
    section_write(s, records, copy, n);
    assert_int_equal(n_records_of(s->data), 9);
    assert_int_equal(n_blocks_of(s->data), 3);
    for (size_t b = 0; b < 3; b++)
        assert_int_equal(first_of(s, b), firsts[b]);
    assert_int_equal(n_symbols_of(s->data), 3);
    assert_int_equal(dict_bytes_of(s->data), 0);
}

/* docstore_open() on an exact-size copy of data[0..cut) must say XE_CORRUPT. */
static void assert_cut_refused(const unsigned char *data, size_t cut)
{
    unsigned char *copy = copy_of(data, cut);
    struct docstore ds;
    struct xerr err = { 0 };

    /* the table's last offset is the section's end, so open sees any cut */
    int rc = docstore_open(&ds, copy, cut, &err);
    if (rc != XE_CORRUPT)
        print_error("cut at %zu: got %d\n", cut, rc);
    assert_int_equal(rc, XE_CORRUPT);
    assert_int_equal(err.code, XE_CORRUPT);
    assert_non_null(strstr(err.msg, "document store"));
    assert_null(ds.ddict);
    docstore_close(&ds);
    free(copy);
}

static void test_docstore_refuses_every_truncation(void **state)
{
    struct section s;
    struct outcome o;

    (void)state;
    damage_section(&s);
    o = read_all_from(&s, s.data, s.len, 1);
    assert_int_equal(o.open_rc, XE_OK);
    assert_int_equal(o.n_exact, s.n);
    for (size_t cut = 0; cut < s.len; cut++)
        assert_cut_refused(s.data, cut);
    section_free(&s);
}

/* Whether at is within 256 bytes of edge. */
static bool near(size_t at, size_t edge)
{
    return at + 256 > edge && at < edge + 256;
}

static void test_docstore_refuses_truncations_of_a_dictionary_section(void **state)
{
    const struct section *sections[] = { dict_section(), poem_section() };
    size_t n_cuts = 0;

    (void)state;
    /* every cut through the head, the symbols, the dictionary's first bytes,
     * the first frames, the edges of the tables and the end; every 101st byte
     * elsewhere */
    for (size_t k = 0; k < sizeof sections / sizeof sections[0]; k++) {
        const struct section *s = sections[k];
        const unsigned char *d = s->data;
        for (size_t cut = 0; cut < s->len; cut++) {
            if (cut < 512 || near(cut, dict_at(d)) || near(cut, frames_at(d)) ||
                near(cut, offsets_at(s)) || near(cut, firsts_at(s)) || near(cut, starts_at(s)) ||
                cut + 512 > s->len || cut % 101 == 0) {
                assert_cut_refused(d, cut);
                n_cuts++;
            }
        }
    }
    assert_true(n_cuts > 6000);
}

/* Where a damage row writes: a count of the head, or entry i of a table. */
enum field { N_RECORDS, N_BLOCKS, N_SYMBOLS, DICT_BYTES, OFFSET, FIRST, START };
enum op { SET, ADD, SWAP_NEXT, BELOW_PREVIOUS, EQUAL_PREVIOUS };
#define LAST_OFFSET SIZE_MAX /* offset n_blocks: the end of the last frame */

struct damage {
    const char *what;
    enum field field;
    size_t i; /* OFFSET, FIRST, START only; LAST_OFFSET for the end */
    enum op op;
    uint64_t value;   /* ADD wraps: UINT64_MAX is minus one */
    const char *says; /* in docstore_open()'s message */
};

static uint64_t get_width(const unsigned char *p, size_t width)
{
    return width == 8 ? get_u64le(p) : width == 4 ? get_u32le(p) : get_u16le(p);
}

static void put_width(unsigned char *p, size_t width, uint64_t v)
{
    if (width == 8)
        put_u64le(p, v);
    else if (width == 4)
        put_u32le(p, (uint32_t)v);
    else
        put_u16le(p, (uint16_t)v);
}

/* Applies d to data, a copy of s's bytes (the tables are found in s). */
static void apply_damage(const struct section *s, unsigned char *data, const struct damage *d)
{
    size_t width = 4;
    unsigned char *p;

    switch (d->field) {
    case N_RECORDS:
    case N_BLOCKS:
    case N_SYMBOLS:
    case DICT_BYTES:
        p = data + 4 * (size_t)d->field;
        break;
    case OFFSET:
        width = 8;
        p = data + offsets_at(s) + 8 * (d->i == LAST_OFFSET ? n_blocks_of(data) : d->i);
        break;
    case FIRST:
        p = data + firsts_at(s) + 4 * d->i;
        break;
    default:
        width = 2;
        p = data + starts_at(s) + 2 * d->i;
        break;
    }
    uint64_t v = get_width(p, width);
    if (d->op == SET) {
        put_width(p, width, d->value);
    } else if (d->op == ADD) {
        put_width(p, width, v + d->value);
    } else if (d->op == BELOW_PREVIOUS) {
        put_width(p, width, get_width(p - width, width) - 1);
    } else if (d->op == EQUAL_PREVIOUS) {
        put_width(p, width, get_width(p - width, width));
    } else {
        put_width(p, width, get_width(p + width, width));
        put_width(p + width, width, v);
    }
}

/* Each row, alone, applied to a copy of s: docstore_open() must say XE_CORRUPT. */
static void assert_open_refuses(const struct section *s, const struct damage *rows,
                                size_t n_rows)
{
    for (size_t k = 0; k < n_rows; k++) {
        unsigned char *copy = copy_of(s->data, s->len);
        struct docstore ds;
        struct xerr err = { 0 };

        apply_damage(s, copy, &rows[k]);
        int rc = docstore_open(&ds, copy, s->len, &err);
        if (rc != XE_CORRUPT)
            print_error("%s: got %d (%s)\n", rows[k].what, rc, err.msg);
        assert_int_equal(rc, XE_CORRUPT);
        assert_int_equal(err.code, XE_CORRUPT);
        assert_non_null(strstr(err.msg, "document store: "));
        if (!strstr(err.msg, rows[k].says))
            print_error("%s: want \"%s\" in: %s\n", rows[k].what, rows[k].says, err.msg);
        assert_non_null(strstr(err.msg, rows[k].says));
        assert_null(ds.ddict);
        docstore_close(&ds);
        free(copy);
    }
}

#define NOT_FIT "do not fit"
#define ORDER "out of order"
#define BLOCKS_FOR "blocks for"
/* Damage refused the same way with or without a dictionary (at least 3 blocks, 9 records). */
static const struct damage bad_tables[] = {
    { "record count one more", N_RECORDS, 0, ADD, 1, ORDER },
    { "record count one less", N_RECORDS, 0, ADD, UINT32_MAX, ORDER },
    { "record count zero", N_RECORDS, 0, SET, 0, BLOCKS_FOR },
    { "record count huge, table cannot fit", N_RECORDS, 0, SET, UINT32_MAX, NOT_FIT },
    { "record count larger than the section", N_RECORDS, 0, SET, 1u << 24, NOT_FIT },
    { "block count one more", N_BLOCKS, 0, ADD, 1, ORDER },
    { "block count one less", N_BLOCKS, 0, ADD, UINT32_MAX, ORDER },
    { "block count zero", N_BLOCKS, 0, SET, 0, BLOCKS_FOR },
    { "more blocks than records", N_BLOCKS, 0, SET, 1u << 20, BLOCKS_FOR },
    { "block count huge", N_BLOCKS, 0, SET, UINT32_MAX, BLOCKS_FOR },
    { "symbol count one more: the next bytes read as a symbol", N_SYMBOLS, 0, ADD, 1,
      "symbol " },
    { "symbol count past what 3-byte ranks reach", N_SYMBOLS, 0, SET, (1u << 24) + 1,
      "16777217 symbols" },
    { "symbol count huge", N_SYMBOLS, 0, SET, UINT32_MAX, "symbols" },
    { "symbols larger than the section", N_SYMBOLS, 0, SET, 1u << 24, NOT_FIT },
    { "first frame inside the tables", OFFSET, 0, ADD, UINT64_MAX, ORDER },
    { "first frame at zero", OFFSET, 0, SET, 0, ORDER },
    { "first frame past the section", OFFSET, 0, SET, UINT64_MAX, ORDER },
    { "offsets swapped", OFFSET, 1, SWAP_NEXT, 0, ORDER },
    { "offset before the previous", OFFSET, 2, BELOW_PREVIOUS, 0, "block 2: offset" },
    { "offset equal to the previous: an empty frame", OFFSET, 2, EQUAL_PREVIOUS, 0,
      "block 2: offset" },
    { "middle offset past the section", OFFSET, 1, SET, 1u << 30, "block 1: offset 1073741824" },
    { "middle offset huge", OFFSET, 1, SET, UINT64_MAX, ORDER },
    { "end one short of the section", OFFSET, LAST_OFFSET, ADD, UINT64_MAX, ORDER },
    { "end one past the section", OFFSET, LAST_OFFSET, ADD, 1, ORDER },
    { "end zero", OFFSET, LAST_OFFSET, SET, 0, ORDER },
    { "end huge", OFFSET, LAST_OFFSET, SET, UINT64_MAX, ORDER },
    { "first block not at record 0", FIRST, 0, SET, 1, "block 0: first record 1 " },
    { "a block starting where the one before starts", FIRST, 2, EQUAL_PREVIOUS, 0,
      "block 2: first record" },
    { "firsts swapped", FIRST, 1, SWAP_NEXT, 0, "block 2: first record" },
    { "first record before the previous block's", FIRST, 2, SET, 0, "block 2: first record 0" },
    { "first record past the records", FIRST, 2, SET, 1u << 20, "block 2: first record" },
    { "first record huge", FIRST, 2, SET, UINT32_MAX, "block 2: first record 4294967295" },
    { "a block one record earlier: its first does not start at 0", FIRST, 1, ADD, UINT32_MAX,
      "start" },
};

static void test_docstore_refuses_bad_tables(void **state)
{
    struct section s;

    (void)state;
    damage_section(&s);
    assert_open_refuses(&s, bad_tables, sizeof bad_tables / sizeof bad_tables[0]);
    /* the same rows behind a dictionary, and with thousands of symbols */
    assert_open_refuses(dict_section(), bad_tables, sizeof bad_tables / sizeof bad_tables[0]);
    assert_open_refuses(poem_section(), bad_tables, sizeof bad_tables / sizeof bad_tables[0]);
    /* rows that need this section's shape: blocks 0-3, 4, 5-8, records 2 and 3 not empty */
    const struct damage shaped[] = {
        { "symbol count zero: the table read from a symbol", N_SYMBOLS, 0, SET, 0, ORDER },
        { "symbol count one less", N_SYMBOLS, 0, ADD, UINT32_MAX, ORDER },
        { "a block's first record not at 0", START, 5, SET, 1, "record 5: start 1 in block 2" },
        { "a record start below the previous", START, 3, SET, 0, "record 3: start 0" },
        { "record starts swapped", START, 6, SWAP_NEXT, 0, "record 7: start" },
        { "a block one record later: its first does not start at 0", FIRST, 1, ADD, 1,
          "block 2: first record 5" },
    };
    assert_open_refuses(&s, shaped, sizeof shaped / sizeof shaped[0]);
    section_free(&s);
}

static void test_docstore_refuses_bad_dict_bytes(void **state)
{
    const struct section *d = dict_section();
    struct section s;

    (void)state;
    damage_section(&s);
    /* a misaligned table reads dictionary or frame bytes as offsets */
    const struct damage with_dict[] = {
        { "no dictionary: the table starts inside it", DICT_BYTES, 0, SET, 0, ORDER },
        { "eight bytes short", DICT_BYTES, 0, ADD, UINT32_MAX - 7, ORDER },
        { "one byte short", DICT_BYTES, 0, ADD, UINT32_MAX, ORDER },
        { "one byte more", DICT_BYTES, 0, ADD, 1, ORDER },
        { "eight bytes more: the first offset read as dictionary", DICT_BYTES, 0, ADD, 8,
          ORDER },
        { "all but the head", DICT_BYTES, 0, SET, d->len - HEAD_BYTES, NOT_FIT },
        { "past the section", DICT_BYTES, 0, SET, d->len, NOT_FIT },
        { "huge", DICT_BYTES, 0, SET, UINT32_MAX, NOT_FIT },
    };
    const struct damage without_dict[] = {
        { "the first offset read as dictionary", DICT_BYTES, 0, SET, 8, ORDER },
        { "one byte", DICT_BYTES, 0, SET, 1, ORDER },
        { "all but the head", DICT_BYTES, 0, SET, s.len - HEAD_BYTES, NOT_FIT },
        { "past the section", DICT_BYTES, 0, SET, s.len, NOT_FIT },
        { "huge", DICT_BYTES, 0, SET, UINT32_MAX, NOT_FIT },
    };
    assert_open_refuses(d, with_dict, sizeof with_dict / sizeof with_dict[0]);
    assert_open_refuses(&s, without_dict, sizeof without_dict / sizeof without_dict[0]);
    section_free(&s);
}

static void test_docstore_refuses_a_dictionary_zstd_cannot_load(void **state)
{
    const struct section *s = dict_section();
    unsigned char *copy = copy_of(s->data, s->len);
    struct docstore ds;
    struct xerr err = { 0 };

    (void)state;
    /* the entropy tables after the magic and dictionary id: all ones is no valid table */
    memset(copy + dict_at(s->data) + 8, 0xff, 64);
    assert_int_equal(docstore_open(&ds, copy, s->len, &err), XE_CORRUPT);
    assert_non_null(strstr(err.msg, "document store: bad dictionary"));
    assert_null(ds.ddict);
    docstore_close(&ds);
    free(copy);
}

/* Opens data (an exact-size copy of s, damaged) and reads records [first, end) of s. */
static struct outcome read_range_from(const struct section *s, const unsigned char *data,
                                      size_t first, size_t end)
{
    unsigned char *copy = copy_of(data, s->len);
    struct outcome o = { 0 };
    struct docstore ds;
    struct xerr err = { 0 };

    o.open_rc = docstore_open(&ds, copy, s->len, &err);
    if (o.open_rc) {
        assert_int_equal(o.open_rc, XE_CORRUPT);
        assert_non_null(strstr(err.msg, "document store"));
        assert_null(ds.ddict);
    } else {
        read_records(&ds, s, first, end, 1, &o);
    }
    docstore_close(&ds);
    free(copy);
    return o;
}

static void test_docstore_refuses_a_start_past_its_block_on_read(void **state)
{
    struct section s;
    struct docstore ds;
    struct buf scratch;
    struct xerr err = { 0 };
    const unsigned char *rec;
    size_t len;

    (void)state;
    damage_section(&s);
    /* record 3, the last of block 0, starts past the block's end: in order, so open
     * cannot tell; reading 2 (which now ends there) or 3 must */
    put_u16le(s.data + starts_at(&s) + 2 * 3, UINT16_MAX);
    assert_ok(docstore_open(&ds, s.data, s.len, &err), &err);
    buf_init(&scratch, SCRATCH_MAX_BYTES);
    for (uint32_t i = 2; i <= 3; i++) {
        xerr_clear(&err);
        assert_int_equal(docstore_read(&ds, (struct docstore_ref){ i }, &scratch, &rec, &len,
                                       &err),
                         XE_CORRUPT);
        assert_non_null(strstr(err.msg, "past its block"));
    }
    assert_reads(&ds, &s, 1, &scratch); /* the rest of the block is untouched */
    assert_reads(&ds, &s, 4, &scratch);
    buf_fini(&scratch);
    docstore_close(&ds);
    section_free(&s);
}

static void test_docstore_flipped_frame_bytes_never_crash(void **state)
{
    struct section s;
    struct outcome all = { 0 };
    size_t frames;
    unsigned char *copy;

    (void)state;
    damage_section(&s);
    frames = frames_at(s.data);
    copy = copy_of(s.data, s.len);
    for (size_t at = frames, b = 0; at < offsets_at(&s); at++) {
        unsigned char flip = (unsigned char)(at % 2 ? 0xff : 1u << (at % 8));
        while (offset_of(&s, b + 1) <= at)
            b++;
        copy[at] ^= flip;
        struct outcome o = read_all_from(&s, copy, s.len, 1);
        assert_int_equal(o.open_rc, XE_OK); /* the tables are untouched */
        assert_int_equal(o.n_exact + o.n_corrupt + o.n_wrong, s.n);
        /* the other blocks' frames are intact */
        assert_true(o.n_exact >= s.n - (block_end_of(&s, b) - first_of(&s, b)));
        all.n_corrupt += o.n_corrupt;
        all.n_wrong += o.n_wrong;
        copy[at] ^= flip;
    }
    /* every frame's reserved header bit: every record of its block, and no other, refused */
    for (size_t b = 0; b < n_blocks_of(s.data); b++) {
        size_t n_in_block = block_end_of(&s, b) - first_of(&s, b);
        copy[offset_of(&s, b)] ^= 0x08;
        struct outcome o = read_all_from(&s, copy, s.len, 1);
        assert_int_equal(o.n_corrupt, n_in_block);
        assert_int_equal(o.n_exact, s.n - n_in_block);
        copy[offset_of(&s, b)] ^= 0x08;
    }
    assert_true(all.n_corrupt > 0);
    /*
     * Not asserted: all.n_wrong == 0. The frames carry no content checksum
     * (ZSTD_c_checksumFlag is off, as in version 2), so a flip in a frame's
     * literals can decode to other bytes of the right length and
     * docstore_read() returns XE_OK; the segment's crc32c over its sections
     * (index/format/segment.h) is what catches such damage.
     */
    if (all.n_wrong)
        print_message("frame flips read back as wrong bytes: %zu of %zu\n", all.n_wrong,
                      offsets_at(&s) - frames);
    free(copy);
    section_free(&s);
}

/* Flips every step-th byte of s's frames in an open store; reads the flipped block and
 * one record of each neighbour. */
static void flip_frames_behind_a_dictionary(const struct section *s, size_t step)
{
    const unsigned char *d = s->data;
    unsigned char *copy = copy_of(d, s->len);
    size_t b = 0, n_flips = 0;
    struct outcome all = { 0 };
    struct docstore ds;
    struct xerr err = { 0 };

    /* the store is a view: flips in the frames show through without reopening */
    assert_ok(docstore_open(&ds, copy, s->len, &err), &err);
    for (size_t at = frames_at(d); at < offsets_at(s); at += step) {
        unsigned char flip = (unsigned char)(n_flips % 2 ? 0xff : 1u << (n_flips % 8));
        while (offset_of(s, b + 1) <= at)
            b++;
        copy[at] ^= flip;
        struct outcome o = { 0 };
        /* the records of the block holding the flip */
        read_records(&ds, s, first_of(s, b), block_end_of(s, b), 1, &o);
        all.n_corrupt += o.n_corrupt;
        all.n_wrong += o.n_wrong;
        /* and its neighbours, whose frames are intact */
        memset(&o, 0, sizeof o);
        if (b)
            read_records(&ds, s, first_of(s, b) - 1, first_of(s, b), 1, &o);
        if (b + 1 < n_blocks_of(d))
            read_records(&ds, s, first_of(s, b + 1), first_of(s, b + 1) + 1, 1, &o);
        assert_int_equal(o.n_exact, (b > 0) + (b + 1 < n_blocks_of(d)));
        copy[at] ^= flip;
        n_flips++;
    }
    assert_true(n_flips > 1000);
    assert_true(all.n_corrupt > 0);
    /* Not asserted: all.n_wrong == 0; see the frame flips above (no content checksum). */
    if (all.n_wrong)
        print_message("frame flips behind a dictionary read back wrong: %zu reads (%zu flips)\n",
                      all.n_wrong, n_flips);
    docstore_close(&ds);
    free(copy);
}

static void test_docstore_flipped_frame_bytes_behind_a_dictionary_never_crash(
    void **state)
{
    (void)state;
    flip_frames_behind_a_dictionary(dict_section(), 53);
    flip_frames_behind_a_dictionary(poem_section(), 41);
}

static void test_docstore_flipped_dictionary_bytes_never_crash(void **state)
{
    const struct section *s = dict_section();
    uint32_t dict_len = dict_bytes_of(s->data);
    unsigned char *copy = copy_of(s->data, s->len);
    struct outcome all = { 0 };
    size_t n_flips = 0, n_refused_open = 0;

    (void)state;
    /* every byte of the magic, the dictionary id and the start of the entropy
     * tables, then every 97th byte; each time every 30th record */
    for (size_t k = 0; k < dict_len; k = k < 256 ? k + 1 : k + 97) {
        size_t at = dict_at(s->data) + k;
        unsigned char flip = (unsigned char)(k % 2 ? 0xff : 1u << (k % 8));
        copy[at] ^= flip;
        struct outcome o = read_all_from(s, copy, s->len, 30);
        if (o.open_rc) {
            n_refused_open++;
        } else if (k >= 4 && k < 8) {
            /* the dictionary id: the frames name none, so nothing checks it */
            assert_int_equal(o.n_exact, (s->n + 29) / 30);
        }
        all.n_corrupt += o.n_corrupt;
        all.n_exact += o.n_exact;
        all.n_wrong += o.n_wrong;
        copy[at] ^= flip;
        n_flips++;
    }
    assert_true(n_flips > 700);
    assert_true(n_refused_open + all.n_corrupt > 0);
    /*
     * Not asserted: all.n_wrong == 0. A flip in the dictionary's content
     * still loads (ZSTD_createDDict() checks the tables, not the content) and
     * frames copying from it decode to other bytes; without a content
     * checksum in the frames docstore_read() cannot tell.
     */
    if (all.n_wrong)
        print_message("dictionary flips read back wrong: %zu reads (%zu flips)\n",
                      all.n_wrong, n_flips);
    free(copy);
}

/* Whether byte at of data lies in the symbol entry of a stray byte, as its byte. */
static bool is_stray_byte(const unsigned char *data, size_t at)
{
    size_t entry = HEAD_BYTES + (at - HEAD_BYTES) / SYMBOL_BYTES * SYMBOL_BYTES;

    return at == entry && data[entry + 1] == 0;
}

/*
 * Flips in the symbol table: 0x40 turns every byte of a UTF-8 sequence, and
 * the padding, into something no valid entry has, so open refuses, except a
 * stray byte's own byte (any byte >= 0x80 is a valid stray one). Other flips
 * may leave a valid symbol, read back as another character: counted.
 */
static void flip_symbols(const struct section *s, size_t step, size_t read_step)
{
    const unsigned char *d = s->data;
    unsigned char *copy = copy_of(d, s->len);
    struct outcome all = { 0 };
    size_t n_flips = 0;

    for (size_t at = HEAD_BYTES; at < dict_at(d); at++) {
        copy[at] ^= 0x40;
        struct outcome o = read_all_from(s, copy, s->len, is_stray_byte(d, at) ? 1 : s->n);
        if (is_stray_byte(d, at))
            assert_int_equal(o.open_rc, XE_OK);
        else
            assert_int_equal(o.open_rc, XE_CORRUPT);
        copy[at] ^= 0x40;
    }
    for (size_t at = HEAD_BYTES; at < dict_at(d); at += step) {
        unsigned char flip = (unsigned char)(1u << (n_flips % 8));
        copy[at] ^= flip;
        struct outcome o = read_all_from(s, copy, s->len, read_step);
        outcome_add(&all, &o);
        copy[at] ^= flip;
        n_flips++;
    }
    assert_true(all.n_refused > 0);
    /* Not asserted: all.n_wrong == 0. An entry that stays well formed is another symbol. */
    print_message("symbol flips: %zu refused at open, %zu reads corrupt, %zu wrong "
                  "(%zu flips)\n",
                  all.n_refused, all.n_corrupt, all.n_wrong, n_flips);
    free(copy);
}

static void test_docstore_flipped_symbol_bytes_are_refused_or_other_symbols(void **state)
{
    static const char *const texts[] = { "a\x80z \xc3\xa9", "\xff\xfe 中文 \xf0\x9f\x98\x80",
                                         "\xe6\x99 \xc0\xaf ÿ" };
    size_t lens[3];
    struct section s;

    (void)state;
    for (size_t i = 0; i < 3; i++)
        lens[i] = strlen(texts[i]);
    section_build_from(&s, texts, lens, 3);
    assert_true(n_symbols_of(s.data) >= 10);
    assert_reads_all(&s, 1);
    flip_symbols(&s, 1, 1);
    section_free(&s);
    flip_symbols(poem_section(), 5, 37);
}

/* Flips in the block table: open refuses them, or reads of the two blocks
 * around a moved offset fail; the other blocks read back exactly. */
static void test_docstore_flipped_block_table_bytes_are_refused_or_corrupt(void **state)
{
    static const unsigned char flips[] = { 0x01, 0x80, 0xff };
    const struct section *s = poem_section();
    const unsigned char *d = s->data;
    unsigned char *copy = copy_of(d, s->len);
    struct outcome all = { 0 };
    size_t n_opened = 0;

    (void)state;
    for (size_t at = offsets_at(s); at < starts_at(s); at++) {
        for (size_t f = 0; f < sizeof flips; f++) {
            copy[at] ^= flips[f];
            /* the blocks on either side of the damaged entry */
            size_t b = at < firsts_at(s) ? (at - offsets_at(s)) / 8 : (at - firsts_at(s)) / 4;
            size_t first = b ? first_of(s, b - 1) : 0;
            size_t end = b < n_blocks_of(d) ? block_end_of(s, b) : s->n;
            struct outcome o = read_range_from(s, copy, first, end);
            if (at >= firsts_at(s)) /* no record is empty: a moved first breaks the starts */
                assert_int_equal(o.open_rc, XE_CORRUPT);
            if (!o.open_rc) {
                struct outcome far = read_range_from(s, copy, end < s->n ? end : 0,
                                                     end < s->n ? end + 1 : 1);
                assert_int_equal(far.n_exact, 1);
                n_opened++;
            }
            outcome_add(&all, &o);
            copy[at] ^= flips[f];
        }
    }
    assert_true(all.n_refused > 0);
    assert_true(n_opened > 0);
    assert_true(all.n_corrupt > 0);
    /* Not asserted: all.n_wrong == 0 (a frame cut elsewhere might still decode). */
    print_message("block table flips: %zu refused at open, %zu opened, %zu reads corrupt, "
                  "%zu wrong\n",
                  all.n_refused, n_opened, all.n_corrupt, all.n_wrong);
    free(copy);
}

/* Flips in the record starts: a block's first start refused at open; a start
 * moved within order shifts the boundary of two records, which decode to
 * XE_CORRUPT or other bytes; the records around them read back exactly. */
static void test_docstore_flipped_record_starts_are_refused_or_corrupt(void **state)
{
    static const unsigned char flips[] = { 0x01, 0x80 };
    const struct section *s = poem_section();
    const unsigned char *d = s->data;
    unsigned char *copy = copy_of(d, s->len);
    struct outcome all = { 0 };
    size_t n_opened = 0;

    (void)state;
    for (size_t i = 0; i < s->n; i++) {
        bool block_first = first_of(s, block_of_record(s, i)) == i;
        for (size_t k = 0; k < 2; k++) {
            for (size_t f = 0; f < sizeof flips; f++) {
                copy[starts_at(s) + 2 * i + k] ^= flips[f];
                size_t first = i > 1 ? i - 2 : 0, end = i + 2 < s->n ? i + 2 : s->n;
                struct outcome o = read_range_from(s, copy, first, end);
                if (block_first)
                    assert_int_equal(o.open_rc, XE_CORRUPT);
                if (!o.open_rc) {
                    assert_true(o.n_exact >= end - first - 2); /* records i - 1 and i */
                    n_opened++;
                }
                outcome_add(&all, &o);
                copy[starts_at(s) + 2 * i + k] ^= flips[f];
            }
        }
    }
    assert_true(all.n_refused > 0);
    assert_true(all.n_corrupt > 0);
    /* Not asserted: all.n_wrong == 0. The starts carry nothing to check them by:
     * a boundary moved between two codes gives two valid, wrong records. */
    print_message("record start flips: %zu refused at open, %zu opened, %zu reads corrupt, "
                  "%zu wrong\n",
                  all.n_refused, n_opened, all.n_corrupt, all.n_wrong);
    free(copy);
}

/* ---- forged sections ---- */

/* What forge_section() builds: by default one record alone in one block. */
struct forged {
    const unsigned char *symbols; /* n_symbols x SYMBOL_BYTES */
    uint32_t n_symbols;
    const unsigned char *dict;
    size_t dict_len;
    uint32_t n_records;     /* 0: 1 */
    const uint16_t *starts; /* NULL: all 0 */
    const unsigned char *frame; /* the one block's frame */
    size_t frame_len;
};

/* An exact-size section of one block holding f's records. */
static unsigned char *forge_section(const struct forged *f, size_t *len)
{
    uint32_t n = f->n_records ? f->n_records : 1;
    size_t frames = HEAD_BYTES + SYMBOL_BYTES * (size_t)f->n_symbols + f->dict_len;
    size_t tables = frames + f->frame_len;

    *len = tables + 8 * 2 + 4 + 2 * (size_t)n;
    unsigned char *s = calloc(1, *len);
    assert_non_null(s);
    put_u32le(s, n);
    put_u32le(s + 4, 1);
    put_u32le(s + 8, f->n_symbols);
    put_u32le(s + 12, (uint32_t)f->dict_len);
    if (f->n_symbols)
        memcpy(s + HEAD_BYTES, f->symbols, SYMBOL_BYTES * (size_t)f->n_symbols);
    if (f->dict_len)
        memcpy(s + frames - f->dict_len, f->dict, f->dict_len);
    memcpy(s + frames, f->frame, f->frame_len);
    put_u64le(s + tables, frames);
    put_u64le(s + tables + 8, tables);
    put_u32le(s + tables + 16, 0);
    for (uint32_t i = 0; i < n; i++)
        put_u16le(s + tables + 20 + 2 * (size_t)i, f->starts ? f->starts[i] : 0);
    return s;
}

/* How make_frame() makes a frame. */
struct frame_opts {
    bool no_content_size;
    bool checksum;
    bool with_magic; /* the standard format, not the store's magicless one */
    const void *dict;
    size_t dict_len;
    uint64_t zeros;  /* when not 0: the content is this many zero bytes */
};

/* A zstd frame of content into frame[0..cap); returns its length. */
static size_t make_frame(const void *content, size_t len, struct frame_opts o,
                         unsigned char *frame, size_t cap)
{
    static const unsigned char zeros[1 << 16];
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    ZSTD_outBuffer out = { frame, cap, 0 };

    assert_non_null(cctx);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, DOCSTORE_ZSTD_LEVEL);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, o.no_content_size ? 0 : 1);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, o.checksum ? 1 : 0);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_dictIDFlag, 0);
    if (!o.with_magic)
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_format, ZSTD_f_zstd1_magicless);
    if (o.dict)
        assert_false(ZSTD_isError(ZSTD_CCtx_loadDictionary(cctx, o.dict, o.dict_len)));
    if (o.zeros) {
        assert_false(ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(cctx, o.zeros)));
        for (uint64_t left = o.zeros; left;) {
            size_t n = left < sizeof zeros ? (size_t)left : sizeof zeros;
            ZSTD_inBuffer in = { zeros, n, 0 };
            left -= n;
            size_t rc;
            do {
                rc = ZSTD_compressStream2(cctx, &out, &in, left ? ZSTD_e_continue : ZSTD_e_end);
                assert_false(ZSTD_isError(rc));
            } while (in.pos < in.size || (!left && rc));
        }
    } else {
        ZSTD_inBuffer in = { content, len, 0 };
        size_t left = ZSTD_compressStream2(cctx, &out, &in, ZSTD_e_end);
        assert_false(ZSTD_isError(left));
        assert_int_equal(left, 0);
    }
    ZSTD_freeCCtx(cctx);
    return out.pos;
}

/*
 * Opens the forged section and reads record `record`; returns the code,
 * saying so when it is not the one expected, and checks the message of
 * XE_CORRUPT. The record read is copied to got (when not NULL, up to cap).
 */
static int read_forged(const unsigned char *data, size_t len, uint32_t record,
                       const char *what, int expect, unsigned char *got, size_t cap,
                       size_t *rec_len)
{
    struct docstore ds;
    struct buf scratch;
    struct xerr err = { 0 };
    const unsigned char *rec = NULL;
    char says[64];

    assert_ok(docstore_open(&ds, data, len, &err), &err);
    buf_init(&scratch, SCRATCH_MAX_BYTES);
    *rec_len = SIZE_MAX;
    int rc = docstore_read(&ds, (struct docstore_ref){ record }, &scratch, &rec, rec_len, &err);
    if (rc != expect)
        print_error("%s: got %d (%s), record of %zu bytes\n", what, rc, err.msg, *rec_len);
    snprintf(says, sizeof says, "document store: record %u", (unsigned)record);
    if (rc == XE_CORRUPT)
        assert_non_null(strstr(err.msg, says));
    if (!rc && got) {
        assert_true(*rec_len <= cap);
        memcpy(got, rec, *rec_len);
    }
    buf_fini(&scratch);
    docstore_close(&ds);
    return rc;
}

/* Block b of s (a section without symbols): its frame, and the records it holds,
 * back to back (the caller frees). */
static unsigned char *block_records(const struct section *s, size_t b, const unsigned char **frame,
                                    size_t *frame_len, size_t *len)
{
    struct buf out;

    assert_int_equal(n_symbols_of(s->data), 0); /* so the block holds the raw bytes */
    *frame = s->data + offset_of(s, b);
    *frame_len = (size_t)(offset_of(s, b + 1) - offset_of(s, b));
    buf_init(&out, 2 * DOCSTORE_BLOCK_BYTES);
    for (size_t i = first_of(s, b); i < block_end_of(s, b); i++)
        buf_append(&out, s->records[i], s->lens[i]);
    assert_int_equal(out.rc, XE_OK);
    return buf_steal(&out, len);
}

static void test_docstore_refuses_forged_frames(void **state)
{
    static const char text[] = "a record forged by hand, a record forged by hand";
    enum { PLAIN, NO_SIZE, CHECKSUMMED, WITH_MAGIC, N_FRAMES };
    const struct section *d = dict_section(), *p = poem_section();
    const unsigned char *dict = d->data + dict_at(d->data), *block5;
    size_t dict_len = dict_bytes_of(d->data), block5_len, records5_len;
    unsigned char f[N_FRAMES][256];
    size_t n[N_FRAMES], rec_len;

    (void)state;
    n[PLAIN] = make_frame(text, sizeof text - 1, (struct frame_opts){ 0 }, f[PLAIN], 256);
    n[NO_SIZE] = make_frame(text, sizeof text - 1, (struct frame_opts){ .no_content_size = 1 },
                            f[NO_SIZE], 256);
    n[CHECKSUMMED] = make_frame(text, sizeof text - 1, (struct frame_opts){ .checksum = 1 },
                                f[CHECKSUMMED], 256);
    n[WITH_MAGIC] = make_frame(text, sizeof text - 1, (struct frame_opts){ .with_magic = 1 },
                               f[WITH_MAGIC], 256);
    /* block 5 of the dictionary section, whose frame copies from the dictionary */
    unsigned char *records5 = block_records(d, 5, &block5, &block5_len, &records5_len);
    /* a skippable frame: the magicless format has none */
    static const unsigned char skippable[] = { 0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4 };

    const struct {
        const char *what;
        const unsigned char *frames[2]; /* back to back in the block's slot */
        size_t lens[2];
        bool flip_last; /* the slot's last byte changed */
    } cases[] = {
        { "not zstd", { (const unsigned char *)text }, { sizeof text - 1 }, false },
        { "no content size", { f[NO_SIZE] }, { n[NO_SIZE] }, false },
        { "frame cut short", { f[PLAIN] }, { n[PLAIN] - 1 }, false },
        { "frame header alone", { f[PLAIN] }, { 2 }, false },
        { "content checksum wrong", { f[CHECKSUMMED] }, { n[CHECKSUMMED] }, true },
        { "two frames, the second not empty", { f[PLAIN], f[PLAIN] }, { n[PLAIN], n[PLAIN] },
          false },
        { "the standard format, with the magic number", { f[WITH_MAGIC] }, { n[WITH_MAGIC] },
          false },
        { "a skippable frame", { skippable }, { sizeof skippable }, false },
        { "made with a dictionary the section lacks", { block5 }, { block5_len }, false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char slot[2 * DOCSTORE_BLOCK_BYTES];
        size_t slot_len = 0, len;
        for (size_t k = 0; k < 2 && cases[i].frames[k]; k++) {
            assert_true(slot_len + cases[i].lens[k] <= sizeof slot);
            memcpy(slot + slot_len, cases[i].frames[k], cases[i].lens[k]);
            slot_len += cases[i].lens[k];
        }
        if (cases[i].flip_last)
            slot[slot_len - 1] ^= 1;
        struct forged forged = { .frame = slot, .frame_len = slot_len };
        unsigned char *data = forge_section(&forged, &len);
        assert_int_equal(read_forged(data, len, 0, cases[i].what, XE_CORRUPT, NULL, 0, &rec_len),
                         XE_CORRUPT);
        free(data);
    }
    /* the baselines: a frame of another writer, with a checksum, reads back; so does
     * block 5, given its dictionary (as one record: its records back to back) */
    const struct {
        const char *what;
        const unsigned char *frame;
        size_t frame_len;
        const unsigned char *dict;
        size_t dict_len;
        const void *content;
        size_t content_len;
    } fine[] = {
        { "checksummed frame", f[CHECKSUMMED], n[CHECKSUMMED], NULL, 0, text, sizeof text - 1 },
        { "block 5 with its dictionary", block5, block5_len, dict, dict_len, records5,
          records5_len },
    };
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
        unsigned char got[2 * DOCSTORE_BLOCK_BYTES];
        size_t len;
        struct forged forged = { .dict = fine[i].dict, .dict_len = fine[i].dict_len,
                                 .frame = fine[i].frame, .frame_len = fine[i].frame_len };
        unsigned char *data = forge_section(&forged, &len);
        assert_int_equal(read_forged(data, len, 0, fine[i].what, XE_OK, got, sizeof got,
                                     &rec_len),
                         XE_OK);
        assert_int_equal(rec_len, fine[i].content_len);
        assert_memory_equal(got, fine[i].content, rec_len);
        free(data);
    }
    /*
     * Not asserted: block 5 read with another dictionary (the poems'). The
     * frames name no dictionary (ZSTD_c_dictIDFlag 0 saves their 4 bytes),
     * so zstd cannot tell one dictionary from another, and what such a frame
     * decodes to depends on the two; XE_CORRUPT or bytes, never a crash.
     */
    size_t len;
    struct forged other = { .dict = p->data + dict_at(p->data),
                            .dict_len = dict_bytes_of(p->data),
                            .frame = block5,
                            .frame_len = block5_len };
    unsigned char *data = forge_section(&other, &len);
    struct docstore ds;
    struct buf scratch;
    struct xerr err = { 0 };
    const unsigned char *rec;
    assert_ok(docstore_open(&ds, data, len, &err), &err);
    buf_init(&scratch, SCRATCH_MAX_BYTES);
    int rc = docstore_read(&ds, (struct docstore_ref){ 0 }, &scratch, &rec, &rec_len, &err);
    assert_true(rc == XE_CORRUPT || rc == XE_OK);
    print_message("a block read with another dictionary: %s\n",
                  rc ? err.msg
                     : rec_len == records5_len && !memcmp(rec, records5, rec_len)
                           ? "the right bytes"
                           : "other bytes");
    buf_fini(&scratch);
    docstore_close(&ds);
    free(data);
    free(records5);
}

static void test_docstore_refuses_blocks_larger_than_they_may_be(void **state)
{
    /* the headers alone are read: a frame of zeros claims the size */
    const struct {
        const char *what;
        uint64_t content_bytes;
        uint32_t n_records;
    } cases[] = {
        { "a record's block past DOCSTORE_RECODED_MAX", DOCSTORE_RECODED_MAX + 1, 1 },
        { "a block of two records past u16 starts", UINT16_MAX + 1, 2 },
    };
    size_t cap = 1 << 20, len, rec_len;
    unsigned char *frame = malloc(cap);

    (void)state;
    assert_non_null(frame);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t frame_len = make_frame(NULL, 0,
                                      (struct frame_opts){ .zeros = cases[i].content_bytes },
                                      frame, cap);
        static const uint16_t starts[] = { 0, 0 };
        struct forged forged = { .n_records = cases[i].n_records, .starts = starts,
                                 .frame = frame, .frame_len = frame_len };
        unsigned char *data = forge_section(&forged, &len);
        assert_int_equal(read_forged(data, len, 0, cases[i].what, XE_CORRUPT, NULL, 0,
                                     &rec_len),
                         XE_CORRUPT);
        free(data);
    }
    /* the largest a block of two records may be reads back */
    size_t frame_len = make_frame(NULL, 0, (struct frame_opts){ .zeros = UINT16_MAX }, frame,
                                  cap);
    static const uint16_t starts[] = { 0, 100 };
    struct forged forged = { .n_records = 2, .starts = starts, .frame = frame,
                             .frame_len = frame_len };
    unsigned char *data = forge_section(&forged, &len);
    assert_int_equal(read_forged(data, len, 1, "u16 block", XE_OK, NULL, 0, &rec_len), XE_OK);
    assert_int_equal(rec_len, UINT16_MAX - 100);
    free(data);
    free(frame);
}

static void test_docstore_refuses_a_record_decoding_past_raw_max(void **state)
{
    static const unsigned char emoji[SYMBOL_BYTES] = { 0xf0, 0x9f, 0x98, 0x80 };
    const struct {
        const char *what;
        unsigned char fill; /* the block's bytes */
        size_t content_bytes;
        int expect;
    } cases[] = {
        { "ASCII, one past DOCSTORE_RAW_MAX", 'a', DOCSTORE_RAW_MAX + 1, XE_CORRUPT },
        { "codes of a 4-byte symbol, one past", 0x80, DOCSTORE_RAW_MAX / 4 + 1, XE_CORRUPT },
        { "codes of a 4-byte symbol, exactly DOCSTORE_RAW_MAX", 0x80, DOCSTORE_RAW_MAX / 4,
          XE_OK },
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = cases[i].content_bytes, cap = ZSTD_compressBound(n), len, rec_len;
        unsigned char *content = malloc(n), *frame = malloc(cap);
        assert_non_null(content);
        assert_non_null(frame);
        memset(content, cases[i].fill, n);
        size_t frame_len = make_frame(content, n, (struct frame_opts){ 0 }, frame, cap);
        free(content);
        struct forged forged = { .symbols = emoji, .n_symbols = 1, .frame = frame,
                                 .frame_len = frame_len };
        unsigned char *data = forge_section(&forged, &len);
        free(frame);
        assert_int_equal(read_forged(data, len, 0, cases[i].what, cases[i].expect, NULL, 0,
                                     &rec_len),
                         cases[i].expect);
        if (cases[i].expect == XE_OK)
            assert_int_equal(rec_len, DOCSTORE_RAW_MAX);
        free(data);
    }
}

/* A symbol table of n entries: entry r is U+4E00 + r. */
static unsigned char *han_symbols(uint32_t n)
{
    unsigned char *table = calloc(n ? n : 1, SYMBOL_BYTES);
    struct buf b;

    assert_non_null(table);
    buf_init(&b, 8);
    for (uint32_t r = 0; r < n; r++) {
        buf_reset(&b);
        append_utf8(&b, 0x4E00 + r);
        memcpy(table + SYMBOL_BYTES * (size_t)r, b.data, 3);
    }
    buf_fini(&b);
    return table;
}

static void test_docstore_decodes_every_code_length_and_refuses_bad_codes(void **state)
{
    static const struct {
        const char *what;
        uint32_t n_symbols;
        const char *code; /* between "a" and "z", or last when at_end */
        size_t code_len;
        bool at_end;
        int64_t rank; /* decodes to U+4E00 + rank; -1: XE_CORRUPT */
    } rows[] = {
        { "rank 0, one byte", 8100, "\x80", 1, false, 0 },
        { "rank 95, one byte", 8100, "\xdf", 1, false, 95 },
        { "rank 96, two bytes", 8100, "\xe0\x00", 2, false, 96 },
        { "rank 8031, two bytes", 8100, "\xfe\xff", 2, false, 8031 },
        { "rank 8032, four bytes", 8100, "\xff\x60\x1f\x00", 4, false, 8032 },
        { "rank 8099, four bytes", 8100, "\xff\xa3\x1f\x00", 4, false, 8099 },
        { "rank 8100: past the table", 8100, "\xff\xa4\x1f\x00", 4, false, -1 },
        { "rank 2^24 - 1: past the table", 8100, "\xff\xff\xff\xff", 4, false, -1 },
        { "rank 5 in four bytes: not the shortest code", 8100, "\xff\x05\x00\x00", 4, false,
          -1 },
        { "rank 8000 in four bytes: not the shortest code", 8100, "\xff\x40\x1f\x00", 4, false,
          -1 },
        { "two-byte code cut", 8100, "\xe0", 1, true, -1 },
        { "four-byte code cut", 8100, "\xff\x60\x1f", 3, true, -1 },
        { "four-byte code of its lead alone", 8100, "\xff", 1, true, -1 },
        { "rank 100, two bytes, past a table of 100", 100, "\xe0\x04", 2, false, -1 },
        { "rank 99 of 100", 100, "\xe0\x03", 2, false, 99 },
        { "rank 0 of no symbols", 0, "\x80", 1, false, -1 },
    };

    (void)state;
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        unsigned char content[8], frame[64], got[16];
        size_t n = 0, len, rec_len;
        content[n++] = 'a';
        memcpy(content + n, rows[k].code, rows[k].code_len);
        n += rows[k].code_len;
        if (!rows[k].at_end)
            content[n++] = 'z';
        unsigned char *symbols = han_symbols(rows[k].n_symbols);
        struct forged forged = { .symbols = symbols, .n_symbols = rows[k].n_symbols,
                                 .frame = frame };
        forged.frame_len = make_frame(content, n, (struct frame_opts){ 0 }, frame, sizeof frame);
        unsigned char *data = forge_section(&forged, &len);
        int expect = rows[k].rank < 0 ? XE_CORRUPT : XE_OK;
        assert_int_equal(read_forged(data, len, 0, rows[k].what, expect, got, sizeof got,
                                     &rec_len),
                         expect);
        if (expect == XE_OK) {
            struct buf want;
            buf_init(&want, 16);
            buf_append_byte(&want, 'a');
            append_utf8(&want, 0x4E00 + (uint32_t)rows[k].rank);
            buf_append_byte(&want, 'z');
            assert_int_equal(rec_len, want.len);
            assert_memory_equal(got, want.data, want.len);
            buf_fini(&want);
        }
        free(data);
        free(symbols);
    }
}

static void test_docstore_checks_the_symbol_table_at_open(void **state)
{
    static const struct {
        const char *what;
        unsigned char entry[SYMBOL_BYTES];
        bool ok;
    } rows[] = {
        { "a stray byte 0xff", { 0xff, 0, 0, 0 }, true },
        { "a stray lead byte", { 0xe4, 0, 0, 0 }, true },
        { "a stray continuation byte", { 0x80, 0, 0, 0 }, true },
        { "U+00E9", { 0xc3, 0xa9, 0, 0 }, true },
        { "U+4E2D", { 0xe4, 0xb8, 0xad, 0 }, true },
        { "an emoji", { 0xf0, 0x9f, 0x98, 0x80 }, true },
        { "U+10FFFF", { 0xf4, 0x8f, 0xbf, 0xbf }, true },
        { "ASCII", { 'a', 0, 0, 0 }, false },
        { "zero", { 0, 0, 0, 0 }, false },
        { "a sequence with garbage after it", { 0xc3, 0xa9, 1, 0 }, false },
        { "a stray byte with garbage after it", { 0xff, 0, 0, 1 }, false },
        { "a sequence cut", { 0xe4, 0xb8, 0, 0 }, false },
        { "overlong", { 0xc0, 0xaf, 0, 0 }, false },
        { "overlong three bytes", { 0xe0, 0x80, 0xaf, 0 }, false },
        { "a surrogate", { 0xed, 0xa0, 0x80, 0 }, false },
        { "past U+10FFFF", { 0xf4, 0x90, 0x80, 0x80 }, false },
        { "lead 0xf8", { 0xf8, 0x88, 0x80, 0x80 }, false },
        { "a continuation byte leading a sequence", { 0x80, 0x80, 0, 0 }, false },
    };
    unsigned char frame[64], table[2 * SYMBOL_BYTES];

    (void)state;
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        /* the row's entry after a good one, so that the index shows in the message */
        memcpy(table, "\xe4\xb8\xad", 4);
        memcpy(table + SYMBOL_BYTES, rows[k].entry, SYMBOL_BYTES);
        struct forged forged = { .symbols = table, .n_symbols = 2, .frame = frame };
        forged.frame_len = make_frame("\x80\x81", 2, (struct frame_opts){ 0 }, frame,
                                      sizeof frame);
        size_t len;
        unsigned char *data = forge_section(&forged, &len);
        struct docstore ds;
        struct xerr err = { 0 };
        int rc = docstore_open(&ds, data, len, &err);
        if (rc != (rows[k].ok ? XE_OK : XE_CORRUPT))
            print_error("%s: got %d (%s)\n", rows[k].what, rc, err.msg);
        if (rows[k].ok) {
            assert_int_equal(rc, XE_OK);
            docstore_close(&ds);
        } else {
            assert_int_equal(rc, XE_CORRUPT);
            assert_non_null(strstr(err.msg, "document store: symbol 1: bad bytes"));
        }
        free(data);
    }
    /* the same symbol twice is allowed (the writer never does it; reads stay right) */
    memcpy(table, "\xe4\xb8\xad", 4);
    memcpy(table + SYMBOL_BYTES, "\xe4\xb8\xad", 4);
    struct forged twice = { .symbols = table, .n_symbols = 2, .frame = frame };
    twice.frame_len = make_frame("\x80\x81", 2, (struct frame_opts){ 0 }, frame, sizeof frame);
    size_t len, rec_len;
    unsigned char got[8], *data = forge_section(&twice, &len);
    assert_int_equal(read_forged(data, len, 0, "a symbol twice", XE_OK, got, sizeof got,
                                 &rec_len),
                     XE_OK);
    assert_int_equal(rec_len, 6);
    assert_memory_equal(got, "中中", 6);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_docstore_round_trips_records_of_0_1_100_20000_bytes),
        cmocka_unit_test(test_docstore_round_trips_many_records_without_a_dictionary),
        cmocka_unit_test(test_docstore_trains_a_dictionary_on_enough_similar_records),
        cmocka_unit_test(test_docstore_recodes_chinese_poems_by_rank_behind_a_dictionary),
        cmocka_unit_test(test_docstore_skips_the_dictionary_below_min_input),
        cmocka_unit_test(test_docstore_round_trips_many_scripts_and_emoji),
        cmocka_unit_test(test_docstore_keeps_stray_bytes_apart_from_characters),
        cmocka_unit_test(test_docstore_round_trips_empty_records),
        cmocka_unit_test(test_docstore_puts_a_record_larger_than_a_block_alone),
        cmocka_unit_test(test_docstore_codes_ranks_past_8032_in_four_bytes),
        cmocka_unit_test(test_docstore_accepts_an_empty_record_without_bytes),
        cmocka_unit_test(test_docstore_empty_section_has_no_records),
        cmocka_unit_test(test_docstore_refuses_refs_to_missing_records),
        cmocka_unit_test(test_docstore_takes_records_up_to_raw_max_and_no_more),
        cmocka_unit_test(test_docstore_takes_a_raw_max_record_after_small_ones),
        cmocka_unit_test(test_docstore_reads_one_dictionary_from_several_threads),
        cmocka_unit_test(test_docstore_refuses_every_truncation),
        cmocka_unit_test(test_docstore_refuses_truncations_of_a_dictionary_section),
        cmocka_unit_test(test_docstore_refuses_bad_tables),
        cmocka_unit_test(test_docstore_refuses_bad_dict_bytes),
        cmocka_unit_test(test_docstore_refuses_a_dictionary_zstd_cannot_load),
        cmocka_unit_test(test_docstore_refuses_a_start_past_its_block_on_read),
        cmocka_unit_test(test_docstore_flipped_frame_bytes_never_crash),
        cmocka_unit_test(
            test_docstore_flipped_frame_bytes_behind_a_dictionary_never_crash),
        cmocka_unit_test(test_docstore_flipped_dictionary_bytes_never_crash),
        cmocka_unit_test(test_docstore_flipped_symbol_bytes_are_refused_or_other_symbols),
        cmocka_unit_test(test_docstore_flipped_block_table_bytes_are_refused_or_corrupt),
        cmocka_unit_test(test_docstore_flipped_record_starts_are_refused_or_corrupt),
        cmocka_unit_test(test_docstore_refuses_forged_frames),
        cmocka_unit_test(test_docstore_refuses_blocks_larger_than_they_may_be),
        cmocka_unit_test(test_docstore_refuses_a_record_decoding_past_raw_max),
        cmocka_unit_test(test_docstore_decodes_every_code_length_and_refuses_bad_codes),
        cmocka_unit_test(test_docstore_checks_the_symbol_table_at_open),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);

    section_free(&shared_dict_section);
    section_free(&shared_poem_section);
    docstore_thread_cleanup();
    return failed;
}
