/*
 * Tests of index/format/segment.h, with segments built the way a bulk load builds
 * them (index/write/memindex.h) and posting blocks of two documents so that even a
 * few documents cross block boundaries: counts, dictionary lookups, hidden
 * one-character terms, the exact-value terms of sources and tags (doc.h: no
 * positions, df in documents), postings contents and positions (fields FIELD_GAP
 * apart), ids and the fields' first positions, stored records (the JSON
 * rebuilt from its template by doc_json()), term iteration from a prefix,
 * replaced ids, a segment of 2,000 generated documents with many
 * dictionary and store blocks, and damage: truncation at
 * every length, every header byte flipped, every file byte flipped, a wrong
 * format version, and structural damage behind valid checksums. Every damaged
 * file must give XE_CORRUPT with a message naming the file, never a crash.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/base/bytes.h"
#include "index/base/crc32c.h"
#include "index/format/doc.h"
#include "index/write/docprep.h"
#include "index/format/docstore.h"
#include "index/base/error.h"
#include "index/write/memindex.h"
#include "index/write/merge.h"
#include "index/format/postings.h"
#include "index/format/segment.h"
#include "tests/testutil.h"

#define TEST_BLOCK_DOCS 2 /* posting lists cross block boundaries every two documents */
#define SCRATCH_MAX_BYTES (64u << 20)
#define MAX_POSITIONS 64

/* ---- helpers ---- */

/* A document as a test writes it; NULL fields are absent. */
struct tdoc {
    const char *id, *title, *body, *source, *date, *url, *json;
    const char *tags[3];
    int64_t date_s; /* what date means, only read when date is set */
};

static struct text opt_text(const char *s)
{
    return s ? (struct text){ .p = s, .len = strlen(s) } : (struct text){ .p = NULL };
}

static struct doc_fields fields_of(const struct tdoc *t)
{
    struct doc_fields d = {
        .id = opt_text(t->id), .title = opt_text(t->title), .body = opt_text(t->body),
        .source = opt_text(t->source), .date = opt_text(t->date), .url = opt_text(t->url),
        .json = opt_text(t->json), .date_s = t->date ? t->date_s : DOC_DATE_NONE,
    };

    for (size_t i = 0; i < sizeof t->tags / sizeof t->tags[0] && t->tags[i]; i++)
        d.tags[d.n_tags++] = opt_text(t->tags[i]);
    return d;
}

static char *join(const char *dir, const char *name)
{
    char *path = NULL;

    assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
    return path;
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static unsigned char *read_bytes(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    long size;
    unsigned char *data;

    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    size = ftell(f);
    assert_true(size >= 0);
    rewind(f);
    data = malloc((size_t)size + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    *len = (size_t)size;
    return data;
}

/* Writes docs as one segment file dir/name with small posting blocks; returns its path. */
static char *build_segment(const char *dir, const char *name, const struct tdoc *docs, size_t n)
{
    struct memindex *mi = memindex_new(TOKENIZE_DEFAULT);
    struct xerr err = { 0 };
    char *path = join(dir, name);

    assert_non_null(mi);
    memindex_set_block_docs(mi, TEST_BLOCK_DOCS);
    for (size_t i = 0; i < n; i++) {
        struct doc_fields d = fields_of(&docs[i]);
        assert_ok(memindex_add(mi, &d, &err), &err);
    }
    assert_ok(memindex_write(mi, path, true, &err), &err);
    memindex_free(mi);
    return path;
}

static struct segment *open_ok(const char *path)
{
    struct segment *seg = NULL;
    struct xerr err = { 0 };

    assert_ok(segment_open(path, &seg, &err), &err);
    assert_non_null(seg);
    return seg;
}

static bool lookup(const struct segment *seg, const char *term, struct segment_term *t)
{
    return segment_lookup(seg, term, strlen(term), t, NULL) == XE_OK;
}

/* The docids of term's list (which must exist and be undamaged), checked against df. */
static size_t term_docids(const struct segment *seg, const char *term, uint32_t *out,
                          size_t cap)
{
    struct segment_term t;
    struct postings_cursor c;
    size_t n = 0;

    assert_true(lookup(seg, term, &t));
    postings_cursor_init(&c, t.postings, t.postings_len, t.has_positions, segment_n_docs(seg));
    while (postings_next(&c)) {
        assert_true(n < cap);
        out[n++] = c.docid;
    }
    assert_false(c.corrupt);
    assert_int_equal(n, t.df);
    assert_int_equal(postings_cursor_n_docs(&c), t.df);
    return n;
}

/* Moves a cursor over term's list to docid (which must hold the term). */
static void cursor_at(const struct segment *seg, const char *term, uint32_t docid,
                      struct postings_cursor *c)
{
    struct segment_term t;

    assert_true(lookup(seg, term, &t));
    postings_cursor_init(c, t.postings, t.postings_len, t.has_positions, segment_n_docs(seg));
    assert_true(postings_advance(c, docid));
    assert_int_equal(c->docid, docid);
}

static void assert_text_is(struct text got, const char *want)
{
    if (!want) {
        assert_null(got.p);
        return;
    }
    assert_non_null(got.p);
    assert_int_equal(got.len, strlen(want));
    if (got.len)
        assert_memory_equal(got.p, want, got.len);
}

/* Stored records keep the JSON as a template: doc_json() gives it back byte for byte. */
static void assert_json_is(const struct doc_fields *d, const char *want)
{
    struct buf json;
    struct xerr err = { 0 };

    assert_null(d->json.p); /* decoding leaves json empty */
    assert_int_equal(d->json.len, 0);
    assert_non_null(d->json_template.p);
    buf_init(&json, SCRATCH_MAX_BYTES);
    assert_ok(doc_json(d, &json, &err), &err);
    if (json.len != strlen(want) || memcmp(json.data, want, json.len))
        fail_msg("JSON got \"%.*s\" want \"%s\"", (int)json.len, (const char *)json.data,
                 want);
    buf_fini(&json);
}

static void assert_loads_as(const struct segment *seg, uint32_t docid, const struct tdoc *want)
{
    struct buf scratch;
    struct doc_fields d;
    struct xerr err = { 0 };
    size_t n_tags = 0;

    buf_init(&scratch, SCRATCH_MAX_BYTES);
    assert_ok(segment_load(seg, docid, &scratch, &d, &err), &err);
    assert_text_is(d.id, want->id);
    assert_text_is(d.title, want->title);
    assert_text_is(d.body, want->body);
    assert_text_is(d.source, want->source);
    assert_text_is(d.date, want->date);
    assert_text_is(d.url, want->url);
    assert_json_is(&d, want->json ? want->json : "");
    while (n_tags < sizeof want->tags / sizeof want->tags[0] && want->tags[n_tags])
        n_tags++;
    assert_int_equal(d.n_tags, n_tags);
    for (size_t i = 0; i < n_tags; i++)
        assert_text_is(d.tags[i], want->tags[i]);
    if (want->date)
        assert_true(d.date_s == want->date_s);
    else
        assert_true(d.date_s == DOC_DATE_NONE);
    buf_fini(&scratch);
}

static int cstr_ptr_cmp(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    return bytes_cmp(x, strlen(x), y, strlen(y));
}

/*
 * Checks that iterating from prefix yields exactly sorted[i..n), where
 * sorted[i] is the first term >= prefix, and that each entry agrees with
 * segment_lookup().
 */
static void assert_terms_from(const struct segment *seg, const char *prefix, size_t prefix_len,
                              const char *const *sorted, size_t n)
{
    struct segment_term_iter it;
    struct segment_term t, looked;
    size_t i = 0;

    while (i < n && bytes_cmp(sorted[i], strlen(sorted[i]), prefix, prefix_len) < 0)
        i++;
    segment_terms_from(seg, prefix, prefix_len, &it);
    for (; i < n; i++) {
        assert_true(segment_terms_next(&it, &t));
        assert_int_equal(it.term_len, strlen(sorted[i]));
        assert_memory_equal(it.term, sorted[i], it.term_len);
        assert_true(lookup(seg, sorted[i], &looked));
        assert_int_equal(t.df, looked.df);
        assert_int_equal(t.has_positions, looked.has_positions);
        assert_ptr_equal(t.postings, looked.postings);
        assert_int_equal(t.postings_len, looked.postings_len);
    }
    assert_false(segment_terms_next(&it, &t));
    assert_false(segment_terms_next(&it, &t)); /* stays at the end */
}

/* ---- a small segment, every value known ---- */

/* 2024-03-01T00:00:00Z and 2024-03-02T00:00:00Z */
#define DATE_0301 1709251200
#define DATE_0302 1709337600

static const struct tdoc small_docs[] = {
    { .id = "a-1", .title = "Hello World", .body = "hello again 普惠化", .source = "新华社",
      .tags = { "tech", "AI" }, .date = "2024-03-01", .date_s = DATE_0301,
      .url = "https://example.com/a-1", .json = "{\"id\":\"a-1\",\"title\":\"Hello World\"}" },
    { .id = "b-2", .title = "second", .body = "world news world", .json = "{\"id\":\"b-2\"}" },
    { .id = "c-3", .title = "", .body = "hello hello hello 猫", .source = "Reuters",
      .date = "2024-03-02T08:00:00+08:00", .date_s = DATE_0302, .url = "", .json = "{}" },
};
#define N_SMALL (sizeof small_docs / sizeof small_docs[0])

/*
 * Every term of small_docs: visible ones, hidden "\x01" + character ones, and
 * the exact-value terms of sources ("\x02" + the source as given) and tags
 * ("\x03" + the tag as given, case kept). Written as two literals so that a
 * hex digit after the prefix ("\x03" "AI") is not read into the escape.
 */
static const char *const small_terms[] = {
    "hello", "world", "again", "普惠", "惠化", "\x01普", "\x01惠", "\x01化", "新华", "华社",
    "\x01新", "\x01华", "\x01社", "tech", "ai", "second", "news", "猫", "\x01猫", "reuters",
    "\x02" "新华社", "\x03" "tech", "\x03" "AI", "\x02" "Reuters",
};
#define N_SMALL_TERMS (sizeof small_terms / sizeof small_terms[0])

static const struct {
    const char *term;
    bool has_positions;
    uint32_t df;
    uint32_t docids[3];
} small_lookups[] = {
    { "hello", true, 2, { 0, 2 } },    { "world", true, 2, { 0, 1 } },
    { "again", true, 1, { 0 } },       { "普惠", true, 1, { 0 } },
    { "惠化", true, 1, { 0 } },        { "\x01普", false, 1, { 0 } },
    { "\x01化", false, 1, { 0 } },     { "新华", true, 1, { 0 } },
    { "\x01社", false, 1, { 0 } },     { "ai", true, 1, { 0 } },
    { "tech", true, 1, { 0 } },        { "second", true, 1, { 1 } },
    { "news", true, 1, { 1 } },        { "猫", true, 1, { 2 } },
    { "\x01猫", false, 1, { 2 } },     { "reuters", true, 1, { 2 } },
    /* exact-value terms: no positions, one document each */
    { "\x02" "新华社", false, 1, { 0 } }, { "\x03" "tech", false, 1, { 0 } },
    { "\x03" "AI", false, 1, { 0 } },     { "\x02" "Reuters", false, 1, { 2 } },
};

/* None of these is a term of small_docs. */
static const char *const small_absent[] = {
    "", "xyz", "hell", "helloo", "Hello", "AI", "普", "普惠化", "\x01", "\x01普惠", "猫猫",
    "a", "zzzz", "\xff", "新华社", "again ", "reuter",
    /* exact values are whole and case-sensitive, and never prefixed the other way */
    "\x02", "\x03", "\x02" "新华", "\x02" "新华社社", "\x02" "reuters", "\x02" "REUTERS",
    "\x03" "ai", "\x03" "tech ", "\x03" "tec", "\x02" "tech", "\x03" "新华社",
    "\x02" "Reuters\x03" "AI", "\x02" "\x01新",
};

static void test_segment_counts_docs_terms_and_field_tokens(void **state)
{
    char *path = build_segment(*state, "small.xseg", small_docs, N_SMALL);
    struct segment *seg = open_ok(path);

    assert_int_equal(segment_n_docs(seg), 3);
    assert_int_equal(segment_n_terms(seg), N_SMALL_TERMS);
    /* title: hello world | second | (empty) */
    assert_int_equal(segment_field_tokens(seg, FIELD_TITLE), 2 + 1 + 0);
    /* body: hello again 普惠 惠化 | world news world | hello hello hello 猫 */
    assert_int_equal(segment_field_tokens(seg, FIELD_BODY), 4 + 3 + 4);
    /* meta: 新华 华社 tech ai | - | reuters */
    assert_int_equal(segment_field_tokens(seg, FIELD_META), 4 + 0 + 1);
    size_t file_len;
    free(read_bytes(path, &file_len));
    assert_int_equal(segment_file_bytes(seg), file_len);
    assert_string_equal(segment_path(seg), path);
    segment_close(seg);
    free(path);
}

static void test_segment_lookup_finds_terms_with_their_lists(void **state)
{
    char *path = build_segment(*state, "small.xseg", small_docs, N_SMALL);
    struct segment *seg = open_ok(path);
    uint32_t docids[8];

    for (size_t i = 0; i < sizeof small_lookups / sizeof small_lookups[0]; i++) {
        struct segment_term t;
        const char *term = small_lookups[i].term;
        assert_true(lookup(seg, term, &t));
        assert_int_equal(t.df, small_lookups[i].df);
        assert_int_equal(t.has_positions, small_lookups[i].has_positions);
        size_t n = term_docids(seg, term, docids, 8);
        assert_int_equal(n, small_lookups[i].df);
        assert_memory_equal(docids, small_lookups[i].docids, n * sizeof docids[0]);
    }
    for (size_t i = 0; i < N_SMALL_TERMS; i++) {
        struct segment_term t;
        assert_true(lookup(seg, small_terms[i], &t));
        bool hidden = small_terms[i][0] == '\x01' || small_terms[i][0] == TERM_SOURCE_PREFIX ||
                      small_terms[i][0] == TERM_TAG_PREFIX;
        assert_int_equal(t.has_positions, !hidden);
    }
    for (size_t i = 0; i < sizeof small_absent / sizeof small_absent[0]; i++) {
        struct segment_term t;
        assert_false(lookup(seg, small_absent[i], &t));
    }
    segment_close(seg);
    free(path);
}

static void test_segment_postings_hold_field_tfs_and_positions(void **state)
{
    enum { G = FIELD_GAP };
    static const struct {
        const char *term;
        uint32_t docid;
        uint32_t tf[N_FIELDS];
        int n_positions; /* -1: a list without positions */
        uint32_t positions[4];
    } cases[] = {
        /* Each field (and each tag) starts FIELD_GAP positions after the
         * position that follows the last one before it; G = FIELD_GAP.
         * a-1: title hello@0 world@1, gap, body hello@2+G again@3+G 普惠@4+G
         * 惠化@5+G, gap, source 新华@6+2G 华社@7+2G, gap, tag tech@8+3G, gap,
         * tag ai@9+4G */
        { "hello", 0, { 1, 1, 0 }, 2, { 0, 2 + G } },
        { "world", 0, { 1, 0, 0 }, 1, { 1 } },
        { "惠化", 0, { 0, 1, 0 }, 1, { 5 + G } },
        { "华社", 0, { 0, 0, 1 }, 1, { 7 + 2 * G } },
        { "tech", 0, { 0, 0, 1 }, 1, { 8 + 3 * G } },
        { "ai", 0, { 0, 0, 1 }, 1, { 9 + 4 * G } },
        { "\x01惠", 0, { 0, 1, 0 }, -1, { 0 } },
        /* b-2: title second@0, gap, body world@1+G news@2+G world@3+G */
        { "second", 1, { 1, 0, 0 }, 1, { 0 } },
        { "world", 1, { 0, 2, 0 }, 2, { 1 + G, 3 + G } },
        /* c-3: empty title takes no room: body hello@0..2 猫@3, gap, source reuters@4+G */
        { "hello", 2, { 0, 3, 0 }, 3, { 0, 1, 2 } },
        { "猫", 2, { 0, 1, 0 }, 1, { 3 } },
        { "\x01猫", 2, { 0, 1, 0 }, -1, { 0 } },
        { "reuters", 2, { 0, 0, 1 }, 1, { 4 + G } },
    };
    char *path = build_segment(*state, "small.xseg", small_docs, N_SMALL);
    struct segment *seg = open_ok(path);

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct postings_cursor c;
        uint32_t pos[MAX_POSITIONS];
        cursor_at(seg, cases[i].term, cases[i].docid, &c);
        assert_memory_equal(c.tf, cases[i].tf, sizeof c.tf);
        int n = postings_positions(&c, pos, MAX_POSITIONS);
        assert_int_equal(n, cases[i].n_positions);
        if (n > 0)
            assert_memory_equal(pos, cases[i].positions, (size_t)n * sizeof pos[0]);
    }
    segment_close(seg);
    free(path);
}

static void test_segment_finds_ids_and_doc_entries(void **state)
{
    enum { G = FIELD_GAP };
    static const struct {
        uint32_t field_tokens[N_FIELDS];
        uint32_t field_start[N_FIELDS]; /* see the positions in the test above */
        int64_t date_s;
    } want[N_SMALL] = {
        { { 2, 4, 4 }, { 0, 2 + G, 6 + 2 * G }, DATE_0301 },
        { { 1, 3, 0 }, { 0, 1 + G, 4 + 2 * G }, DOC_DATE_NONE },
        { { 0, 4, 1 }, { 0, 0, 4 + G }, DATE_0302 },
    };
    char *path = build_segment(*state, "small.xseg", small_docs, N_SMALL);
    struct segment *seg = open_ok(path);

    for (uint32_t i = 0; i < N_SMALL; i++) {
        struct segment_doc d;
        const char *id = small_docs[i].id;
        assert_int_equal(test_find_id(seg, id, strlen(id)), i);
        test_segment_doc(seg, i, &d);
        assert_int_equal(d.id_len, strlen(id));
        assert_memory_equal(d.id, id, d.id_len);
        assert_memory_equal(d.field_tokens, want[i].field_tokens, sizeof d.field_tokens);
        assert_memory_equal(d.field_start, want[i].field_start, sizeof d.field_start);
        assert_true(d.date_s == want[i].date_s);
    }
    static const char *const absent[] = { "a", "a-", "a-10", "b-1", "c-3 ", "d-4", "A-1" };
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
        assert_int_equal(test_find_id(seg, absent[i], strlen(absent[i])), DOCID_END);
    assert_int_equal(test_find_id(seg, "", 0), DOCID_END);
    segment_close(seg);
    free(path);
}

static void test_segment_load_round_trips_every_field(void **state)
{
    char *path = build_segment(*state, "small.xseg", small_docs, N_SMALL);
    struct segment *seg = open_ok(path);
    struct buf scratch;
    struct doc_fields d;
    struct xerr err = { 0 };

    for (uint32_t i = 0; i < N_SMALL; i++)
        assert_loads_as(seg, i, &small_docs[i]);
    /* in reverse, reusing one scratch buffer */
    buf_init(&scratch, SCRATCH_MAX_BYTES);
    for (uint32_t i = N_SMALL; i-- > 0;) {
        assert_ok(segment_load(seg, i, &scratch, &d, &err), &err);
        assert_text_is(d.id, small_docs[i].id);
    }
    assert_int_equal(segment_load(seg, N_SMALL, &scratch, &d, &err), XE_NOTFOUND);
    assert_non_null(strstr(err.msg, "small.xseg"));
    xerr_clear(&err);
    assert_int_equal(segment_load(seg, UINT32_MAX, &scratch, &d, &err), XE_NOTFOUND);
    buf_fini(&scratch);
    segment_close(seg);
    free(path);
}

static void test_segment_terms_iterate_in_byte_order_from_prefix(void **state)
{
    static const char *const prefixes[] = {
        "", "\x01", "\x01\xe6", "\x01\xff", "\x02", "\x02" "R", "\x02" "Reuters",
        "\x02\xe6", "\x02\xff", "\x03", "\x03" "A", "\x03" "AI", "\x03" "AIx", "\x03" "t",
        "\x03\xff", "\x04", "a", "ag", "again", "againx", "h", "hello",
        "hellp", "n", "r", "z", "\xe5", "新", "新华", "猫", "猫猫", "\xff", "\xff\xff",
    };
    const char *sorted[N_SMALL_TERMS];
    char *path = build_segment(*state, "small.xseg", small_docs, N_SMALL);
    struct segment *seg = open_ok(path);

    memcpy(sorted, small_terms, sizeof sorted);
    qsort(sorted, N_SMALL_TERMS, sizeof sorted[0], cstr_ptr_cmp);
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        assert_terms_from(seg, prefixes[i], strlen(prefixes[i]), sorted, N_SMALL_TERMS);
    for (size_t i = 0; i < N_SMALL_TERMS; i++)
        assert_terms_from(seg, sorted[i], strlen(sorted[i]), sorted, N_SMALL_TERMS);
    /* hidden terms sort first: "\x01" is below every visible byte */
    struct segment_term_iter it;
    struct segment_term t;
    segment_terms_from(seg, "", 0, &it);
    assert_true(segment_terms_next(&it, &t));
    assert_int_equal(it.term[0], '\x01');
    assert_false(t.has_positions);
    /* then the exact values of sources ("\x02"), then of tags ("\x03"), then the text */
    static const char *const exact_order[] = { "\x02" "Reuters", "\x02" "新华社", "\x03" "AI",
                                               "\x03" "tech", "again" };
    segment_terms_from(seg, "\x02", 1, &it);
    for (size_t i = 0; i < sizeof exact_order / sizeof exact_order[0]; i++) {
        assert_true(segment_terms_next(&it, &t));
        assert_int_equal(it.term_len, strlen(exact_order[i]));
        assert_memory_equal(it.term, exact_order[i], it.term_len);
        assert_int_equal(t.has_positions, i == 4);
    }
    segment_close(seg);
    free(path);
}

/*
 * Exact-value terms (doc.h): one per distinct source and tag of a document,
 * the bytes as given (case, spaces and punctuation kept), without positions,
 * with tf 1 in the meta field (2 for a tag given twice), and df counting
 * documents; they take no position and no meta token, and a value past
 * TOKEN_MAX_BYTES is cut at a character boundary. An empty source or tag
 * makes none.
 */
static void test_segment_exact_value_terms_have_no_positions_and_right_df(void **state)
{
    char long_source[1 + 100 * 3 + 1], long_tag[301];
    char cut_source[1 + 1 + 84 * 3 + 1], cut_tag[1 + TOKEN_MAX_BYTES + 1];

    /* "x" + 100 x 新: byte 255 falls inside the 85th 新, so 1 + 84 x 3 bytes stay */
    long_source[0] = 'x';
    for (int i = 0; i < 100; i++)
        memcpy(long_source + 1 + 3 * i, "新", 3);
    long_source[301] = '\0';
    cut_source[0] = TERM_SOURCE_PREFIX;
    memcpy(cut_source + 1, long_source, 1 + 84 * 3);
    cut_source[1 + 1 + 84 * 3] = '\0';
    memset(long_tag, 'y', 300);
    long_tag[300] = '\0';
    cut_tag[0] = TERM_TAG_PREFIX;
    memset(cut_tag + 1, 'y', TOKEN_MAX_BYTES);
    cut_tag[1 + TOKEN_MAX_BYTES] = '\0';
    const struct tdoc docs[] = {
        { .id = "d0", .body = "text", .source = "Reuters Asia", .tags = { "AI", "ai", "AI" },
          .json = "{}" },
        { .id = "d1", .body = "text", .source = "新华社", .tags = { "新华社", "Tech News" },
          .json = "{}" },
        { .id = "d2", .body = "text", .source = "Reuters Asia", .tags = { "Tech News" },
          .json = "{}" },
        { .id = "d3", .body = "text", .source = "", .tags = { "" }, .json = "{}" },
        { .id = "d4", .body = "text", .source = long_source, .tags = { long_tag }, .json = "{}" },
        { .id = "d5", .body = "text", .source = "新华社", .json = "{}" },
    };
    const struct {
        const char *term;
        uint32_t df;
        uint32_t docids[3];
        uint32_t tf_meta[3]; /* per listed document */
    } want[] = {
        { "\x02" "Reuters Asia", 2, { 0, 2 }, { 1, 1 } },
        { "\x02" "新华社", 2, { 1, 5 }, { 1, 1 } },
        { cut_source, 1, { 4 }, { 1 } },
        { "\x03" "AI", 1, { 0 }, { 2 } }, /* given twice in d0 */
        { "\x03" "ai", 1, { 0 }, { 1 } },
        { "\x03" "新华社", 1, { 1 }, { 1 } },
        { "\x03" "Tech News", 2, { 1, 2 }, { 1, 1 } },
        { cut_tag, 1, { 4 }, { 1 } },
    };
    static const char *const absent[] = {
        "\x02", "\x03", "\x02" "Reuters", "\x02" "reuters asia", "\x03" "Tech",
        "\x03" "tech news", "\x02" "Tech News", "\x02" "AI",
    };
    char *path = build_segment(*state, "exact.xseg", docs, sizeof docs / sizeof docs[0]);
    struct segment *seg = open_ok(path);
    uint32_t docids[8];
    size_t n_exact = 0;

    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        struct segment_term t;
        if (!lookup(seg, want[i].term, &t))
            fail_msg("exact-value term %zu (\"%s\") is missing", i, want[i].term + 1);
        assert_false(t.has_positions);
        assert_int_equal(t.df, want[i].df);
        assert_int_equal(term_docids(seg, want[i].term, docids, 8), want[i].df);
        assert_memory_equal(docids, want[i].docids, want[i].df * sizeof docids[0]);
        for (uint32_t k = 0; k < want[i].df; k++) {
            struct postings_cursor c;
            uint32_t pos[MAX_POSITIONS];
            cursor_at(seg, want[i].term, want[i].docids[k], &c);
            assert_int_equal(c.tf[FIELD_TITLE], 0);
            assert_int_equal(c.tf[FIELD_BODY], 0);
            assert_int_equal(c.tf[FIELD_META], want[i].tf_meta[k]);
            assert_int_equal(postings_positions(&c, pos, MAX_POSITIONS), -1);
        }
    }
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++) {
        struct segment_term t;
        if (lookup(seg, absent[i], &t))
            fail_msg("absent %zu (\"%s\") was found", i, absent[i] + 1);
    }
    /* the whole long values are not terms; neither is a cut one byte longer */
    struct segment_term t;
    char whole[1 + 301 + 1];
    whole[0] = TERM_SOURCE_PREFIX;
    memcpy(whole + 1, long_source, 302);
    assert_false(lookup(seg, whole, &t));
    whole[1 + 1 + 84 * 3 + 1] = '\0';
    assert_false(lookup(seg, whole, &t));
    /* every term from "\x02" up to the first visible one is one of want[] */
    struct segment_term_iter it;
    segment_terms_from(seg, "\x02", 1, &it);
    while (segment_terms_next(&it, &t) &&
           (it.term[0] == TERM_SOURCE_PREFIX || it.term[0] == TERM_TAG_PREFIX)) {
        assert_false(t.has_positions);
        n_exact++;
    }
    assert_int_equal(n_exact, sizeof want / sizeof want[0]);
    /* they take no meta tokens: d0 has reuters asia ai ai ai = 5, d3 none */
    struct segment_doc d;
    test_segment_doc(seg, 0, &d);
    assert_int_equal(d.field_tokens[FIELD_META], 5);
    test_segment_doc(seg, 3, &d);
    assert_int_equal(d.field_tokens[FIELD_META], 0);
    segment_close(seg);
    free(path);
}

/* Length codes: exact below 128, never above the length, never smaller for a longer one. */
static void test_segment_length_codes_round_down_monotonically(void **state)
{
    (void)state;
    for (uint32_t len = 0; len < 128; len++)
        assert_int_equal(segment_length_of_code(segment_length_code(len)), len);
    uint8_t prev = 0;
    for (uint32_t len = 0; len < (1u << 20); len++) {
        uint8_t code = segment_length_code(len);
        uint32_t back = segment_length_of_code(code);
        assert_true(code >= prev);
        assert_true(back <= len);
        if (len <= 31744)
            assert_true(len - back <= len / 16); /* 16 steps per doubling */
        prev = code;
    }
    assert_int_equal(segment_length_code(UINT32_MAX), 255);
    assert_int_equal(segment_length_of_code(255), 31744);
    for (unsigned code = 1; code < 256; code++) /* every code decodes above the one before */
        assert_true(segment_length_of_code((uint8_t)code) >
                    segment_length_of_code((uint8_t)(code - 1)));
}

/* Rank entries give back each document's field length codes and its date to the second. */
static void test_segment_rank_entries_round_trip(void **state)
{
    static const struct tdoc docs[] = {
        { .id = "undated", .title = "a b", .body = "c", .json = "{}" },
        { .id = "epoch", .body = "x", .date = "1970-01-01", .date_s = 0, .json = "{}" },
        { .id = "before", .body = "x", .date = "1969-12-31T23:59:59Z", .date_s = -1,
          .json = "{}" },
        { .id = "year0", .body = "x", .date = "0000-01-01", .date_s = -62167219200,
          .json = "{}" },
        { .id = "year9999", .body = "x", .date = "9999-12-31T23:59:59Z",
          .date_s = 253402300799, .json = "{}" },
        { .id = "odd-second", .body = "x", .date = "2023-04-29T08:00:07+08:00",
          .date_s = 1682726407, .json = "{}" },
    };
    size_t n = sizeof docs / sizeof docs[0];
    char *path = build_segment(*state, "ranks.xseg", docs, n);
    struct segment *seg = open_ok(path);

    for (uint32_t i = 0; i < n; i++) {
        struct segment_doc d;
        struct segment_doc_rank r;
        test_segment_doc(seg, i, &d);
        assert_int_equal(segment_doc_rank(seg, i, &r, NULL), XE_OK);
        assert_int_equal(r.date_s, d.date_s);
        assert_int_equal(r.date_s, docs[i].date ? docs[i].date_s : DOC_DATE_NONE);
        for (int f = 0; f < N_FIELDS; f++)
            assert_int_equal(r.len_code[f], segment_length_code(d.field_tokens[f]));
    }
    struct segment_doc_rank r;
    assert_int_equal(segment_doc_rank(seg, 0, &r, NULL), XE_OK);
    assert_int_equal(r.len_code[FIELD_TITLE], 2);
    assert_int_equal(r.len_code[FIELD_BODY], 1);
    segment_close(seg);
    free(path);
}

static void test_segment_keeps_only_the_newer_of_a_replaced_id(void **state)
{
    static const struct tdoc docs[] = {
        { .id = "dup", .title = "first version", .body = "oldword shared", .json = "{\"v\":1}" },
        { .id = "keep", .body = "shared other", .json = "{}" },
        { .id = "dup", .title = "second version", .body = "newword shared",
          .json = "{\"v\":2}" },
        { .id = "twice", .body = "gone", .json = "{}" },
        { .id = "twice", .body = "stays", .json = "{}" },
    };
    char *path = build_segment(*state, "dup.xseg", docs, sizeof docs / sizeof docs[0]);
    struct segment *seg = open_ok(path);
    struct segment_term t;
    uint32_t ids[8];

    /* live, in the order they were added: keep, dup (second), twice (second) */
    assert_int_equal(segment_n_docs(seg), 3);
    assert_int_equal(test_find_id(seg, "keep", 4), 0);
    assert_int_equal(test_find_id(seg, "dup", 3), 1);
    assert_int_equal(test_find_id(seg, "twice", 5), 2);
    assert_loads_as(seg, 1, &docs[2]);
    assert_loads_as(seg, 2, &docs[4]);
    /* the replaced documents' own terms are gone */
    assert_false(lookup(seg, "oldword", &t));
    assert_false(lookup(seg, "first", &t));
    assert_false(lookup(seg, "gone", &t));
    assert_int_equal(term_docids(seg, "shared", ids, 8), 2);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[1], 1);
    assert_int_equal(term_docids(seg, "version", ids, 8), 1);
    assert_int_equal(ids[0], 1);
    assert_int_equal(term_docids(seg, "stays", ids, 8), 1);
    assert_int_equal(ids[0], 2);
    /* shared other second version newword stays */
    assert_int_equal(segment_n_terms(seg), 6);
    assert_int_equal(segment_field_tokens(seg, FIELD_TITLE), 2);
    assert_int_equal(segment_field_tokens(seg, FIELD_BODY), 2 + 2 + 1);
    segment_close(seg);
    free(path);
}

static void test_segment_of_an_empty_memindex_is_empty(void **state)
{
    char *path = build_segment(*state, "empty.xseg", NULL, 0);
    struct segment *seg = open_ok(path);
    struct segment_term_iter it;
    struct segment_term t;
    struct buf scratch;
    struct doc_fields d;
    struct xerr err = { 0 };

    assert_int_equal(segment_n_docs(seg), 0);
    assert_int_equal(segment_n_terms(seg), 0);
    for (int f = 0; f < N_FIELDS; f++)
        assert_int_equal(segment_field_tokens(seg, (enum doc_field)f), 0);
    assert_false(lookup(seg, "a", &t));
    assert_false(lookup(seg, "", &t));
    assert_int_equal(test_find_id(seg, "a", 1), DOCID_END);
    segment_terms_from(seg, "", 0, &it);
    assert_false(segment_terms_next(&it, &t));
    segment_terms_from(seg, "m", 1, &it);
    assert_false(segment_terms_next(&it, &t));
    buf_init(&scratch, SCRATCH_MAX_BYTES);
    assert_int_equal(segment_load(seg, 0, &scratch, &d, &err), XE_NOTFOUND);
    buf_fini(&scratch);
    segment_close(seg);
    free(path);
}

static void test_segment_keeps_terms_of_the_longest_length(void **state)
{
    char x300[301], e200[401], body[720];
    char x45[46], x255[256], e73[147], e127[255], longer[1001];

    memset(x300, 'x', 300);
    x300[300] = '\0';
    for (int i = 0; i < 200; i++)
        memcpy(e200 + 2 * i, "\xc3\xa9", 2); /* é */
    e200[400] = '\0';
    snprintf(body, sizeof body, "%s %s", x300, e200);
    /* a term is cut at TOKEN_MAX_BYTES, on a character boundary */
    memcpy(x45, x300, 45);
    x45[45] = '\0';
    memcpy(x255, x300, 255);
    x255[255] = '\0';
    memcpy(e73, e200, 146);
    e73[146] = '\0';
    memcpy(e127, e200, 254);
    e127[254] = '\0';
    const struct tdoc docs[] = { { .id = "long", .body = body, .json = "{}" } };
    const char *const sorted[] = { x45, x255, e73, e127 };
    char *path = build_segment(*state, "long.xseg", docs, 1);
    struct segment *seg = open_ok(path);
    struct segment_term t;

    assert_int_equal(segment_n_terms(seg), 4);
    assert_terms_from(seg, "", 0, sorted, 4);
    assert_terms_from(seg, x255, 255, sorted, 4);
    assert_false(lookup(seg, x300, &t));
    memset(longer, 'x', 1000);
    longer[1000] = '\0';
    assert_false(lookup(seg, longer, &t));
    assert_terms_from(seg, longer, 1000, sorted, 4);
    segment_close(seg);
    free(path);
}

/* ---- many documents ---- */

#define MANY_DOCS 2000
#define MANY_VOCAB 1500
#define MANY_ID_STEP 7919 /* prime, so k * step % MANY_DOCS visits every id once */
#define GDOC_TEXT_BYTES 512

static const char *const many_stems[] = { "alpha", "beta", "gamma", "delta", "eps", "zeta" };
#define N_STEMS (sizeof many_stems / sizeof many_stems[0])
static const char *const many_cjk[] = { "中", "国", "经", "济", "闻", "科", "技", "猫" };
#define N_CJK (sizeof many_cjk / sizeof many_cjk[0])

struct gdoc {
    char id[16], title[64], body[GDOC_TEXT_BYTES], source[32], tags[2][32];
    char json[GDOC_TEXT_BYTES + 64];
    struct tdoc t;
};

struct many {
    struct gdoc *docs;
    char (*vocab)[16];
    unsigned char *has; /* bit word * MANY_DOCS + doc */
    uint32_t *source_df, *tag_df; /* per word: documents with it as source / as a tag */
    char (*exact)[2][24];         /* per word: its "\x02" and "\x03" exact-value terms */
    uint32_t cjk_df[N_CJK];
    uint64_t field_tokens[N_FIELDS];
};

static uint32_t rng_next(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

static void set_has(struct many *m, uint32_t word, uint32_t doc)
{
    size_t bit = (size_t)word * MANY_DOCS + doc;
    m->has[bit / 8] |= (unsigned char)(1u << (bit % 8));
}

static bool get_has(const struct many *m, uint32_t word, uint32_t doc)
{
    size_t bit = (size_t)word * MANY_DOCS + doc;
    return m->has[bit / 8] >> (bit % 8) & 1;
}

/* Appends vocabulary word w to text (space separated) and marks it in doc. */
static void put_word(struct many *m, char *text, size_t cap, uint32_t w, uint32_t doc)
{
    size_t len = strlen(text);
    int n = snprintf(text + len, cap - len, "%s%s", len ? " " : "", m->vocab[w]);

    assert_true(n > 0 && (size_t)n < cap - len);
    set_has(m, w, doc);
}

/* Makes MANY_DOCS documents from vocabulary words, with every expected count. */
static void many_make(struct many *m)
{
    uint32_t r = 12345;

    memset(m, 0, sizeof *m);
    m->docs = calloc(MANY_DOCS, sizeof *m->docs);
    m->vocab = calloc(MANY_VOCAB, sizeof *m->vocab);
    m->has = calloc((size_t)MANY_VOCAB * MANY_DOCS / 8 + 1, 1);
    m->source_df = calloc(MANY_VOCAB, sizeof *m->source_df);
    m->tag_df = calloc(MANY_VOCAB, sizeof *m->tag_df);
    m->exact = calloc(MANY_VOCAB, sizeof *m->exact);
    assert_non_null(m->docs);
    assert_non_null(m->vocab);
    assert_non_null(m->has);
    assert_non_null(m->source_df);
    assert_non_null(m->tag_df);
    assert_non_null(m->exact);
    for (uint32_t w = 0; w < MANY_VOCAB; w++) {
        snprintf(m->vocab[w], sizeof m->vocab[w], "%s%u", many_stems[w % N_STEMS], w);
        snprintf(m->exact[w][0], sizeof m->exact[w][0], "%c%s", TERM_SOURCE_PREFIX, m->vocab[w]);
        snprintf(m->exact[w][1], sizeof m->exact[w][1], "%c%s", TERM_TAG_PREFIX, m->vocab[w]);
    }
    for (uint32_t k = 0; k < MANY_DOCS; k++) {
        struct gdoc *g = &m->docs[k];
        uint32_t n_body = 8 + rng_next(&r) % 40, n_tags = rng_next(&r) % 3;
        snprintf(g->id, sizeof g->id, "doc-%05u", (unsigned)((uint64_t)k * MANY_ID_STEP %
                                                             MANY_DOCS));
        for (int i = 0; i < 2; i++)
            put_word(m, g->title, sizeof g->title, rng_next(&r) % MANY_VOCAB, k);
        for (uint32_t i = 0; i < n_body; i++)
            put_word(m, g->body, sizeof g->body, rng_next(&r) % MANY_VOCAB, k);
        uint32_t c = rng_next(&r) % N_CJK;
        size_t len = strlen(g->body);
        snprintf(g->body + len, sizeof g->body - len, " %s", many_cjk[c]);
        m->cjk_df[c]++;
        uint32_t source = rng_next(&r) % MANY_VOCAB, tags[2] = { 0, 0 };
        put_word(m, g->source, sizeof g->source, source, k);
        m->source_df[source]++;
        for (uint32_t i = 0; i < n_tags; i++) {
            tags[i] = rng_next(&r) % MANY_VOCAB;
            put_word(m, g->tags[i], sizeof g->tags[i], tags[i], k);
            if (i == 0 || tags[i] != tags[0]) /* a tag given twice is one document */
                m->tag_df[tags[i]]++;
        }
        snprintf(g->json, sizeof g->json, "{\"id\":\"%s\",\"body\":\"%s\"}", g->id, g->body);
        g->t = (struct tdoc){ .id = g->id, .title = g->title, .body = g->body,
                              .source = g->source, .json = g->json };
        for (uint32_t i = 0; i < n_tags; i++)
            g->t.tags[i] = g->tags[i];
        m->field_tokens[FIELD_TITLE] += 2;
        m->field_tokens[FIELD_BODY] += n_body + 1; /* the lone CJK character is a term */
        m->field_tokens[FIELD_META] += 1 + n_tags;
    }
}

static void many_free(struct many *m)
{
    free(m->docs);
    free(m->vocab);
    free(m->has);
    free(m->source_df);
    free(m->tag_df);
    free(m->exact);
}

static char *many_build(struct many *m, const char *dir)
{
    struct tdoc *docs = calloc(MANY_DOCS, sizeof *docs);

    assert_non_null(docs);
    for (uint32_t k = 0; k < MANY_DOCS; k++)
        docs[k] = m->docs[k].t;
    char *path = build_segment(dir, "many.xseg", docs, MANY_DOCS);
    free(docs);
    return path;
}

static void test_segment_many_docs_lookups_match_expected(void **state)
{
    struct many m;
    uint32_t *docids = malloc(MANY_DOCS * sizeof *docids);
    uint32_t n_terms = 0;

    assert_non_null(docids);
    many_make(&m);
    char *path = many_build(&m, *state);
    struct segment *seg = open_ok(path);

    assert_int_equal(segment_n_docs(seg), MANY_DOCS);
    for (int f = 0; f < N_FIELDS; f++)
        assert_int_equal(segment_field_tokens(seg, (enum doc_field)f), m.field_tokens[f]);
    for (uint32_t w = 0; w < MANY_VOCAB; w++) {
        struct segment_term t;
        uint32_t df = 0;
        for (uint32_t k = 0; k < MANY_DOCS; k++)
            df += get_has(&m, w, k);
        if (!df) {
            assert_false(lookup(seg, m.vocab[w], &t));
            continue;
        }
        n_terms++;
        assert_true(lookup(seg, m.vocab[w], &t));
        assert_int_equal(t.df, df);
        assert_true(t.has_positions);
        size_t n = term_docids(seg, m.vocab[w], docids, MANY_DOCS);
        for (size_t i = 0; i < n; i++) {
            assert_true(get_has(&m, w, docids[i]));
            if (i)
                assert_true(docids[i] > docids[i - 1]);
        }
        /* near misses: a longer word, a shorter one */
        char near[24];
        snprintf(near, sizeof near, "%sx", m.vocab[w]);
        assert_false(lookup(seg, near, &t));
    }
    for (size_t s = 0; s < N_STEMS; s++) {
        struct segment_term t;
        assert_false(lookup(seg, many_stems[s], &t));
    }
    /* the exact-value terms of sources and tags: no positions, df in documents */
    for (uint32_t w = 0; w < MANY_VOCAB; w++) {
        const uint32_t want_df[2] = { m.source_df[w], m.tag_df[w] };
        for (int kind = 0; kind < 2; kind++) {
            struct segment_term t;
            const char *term = m.exact[w][kind];
            if (!want_df[kind]) {
                assert_false(lookup(seg, term, &t));
                continue;
            }
            n_terms++;
            assert_true(lookup(seg, term, &t));
            assert_false(t.has_positions);
            assert_int_equal(t.df, want_df[kind]);
            size_t n = term_docids(seg, term, docids, MANY_DOCS);
            for (size_t i = 0; i < n; i++) {
                const struct gdoc *g = &m.docs[docids[i]];
                if (kind == 0)
                    assert_string_equal(g->source, m.vocab[w]);
                else
                    assert_true(!strcmp(g->tags[0], m.vocab[w]) ||
                                !strcmp(g->tags[1], m.vocab[w]));
            }
        }
    }
    for (size_t c = 0; c < N_CJK; c++) {
        struct segment_term t;
        char hidden[8];
        snprintf(hidden, sizeof hidden, "\x01%s", many_cjk[c]);
        if (!m.cjk_df[c]) {
            assert_false(lookup(seg, many_cjk[c], &t));
            continue;
        }
        n_terms += 2;
        assert_true(lookup(seg, many_cjk[c], &t));
        assert_int_equal(t.df, m.cjk_df[c]);
        assert_true(t.has_positions);
        assert_true(lookup(seg, hidden, &t));
        assert_int_equal(t.df, m.cjk_df[c]);
        assert_false(t.has_positions);
        assert_int_equal(term_docids(seg, hidden, docids, MANY_DOCS), m.cjk_df[c]);
    }
    assert_int_equal(segment_n_terms(seg), n_terms);
    assert_true(n_terms > 20 * SEGMENT_TERMS_PER_BLOCK); /* many dictionary blocks */
    segment_close(seg);
    free(path);
    free(docids);
    many_free(&m);
}

static void test_segment_many_docs_ids_and_records_round_trip(void **state)
{
    struct many m;

    many_make(&m);
    char *path = many_build(&m, *state);
    struct segment *seg = open_ok(path);

    for (uint32_t k = 0; k < MANY_DOCS; k++) {
        struct segment_doc d;
        const struct gdoc *g = &m.docs[k];
        assert_int_equal(test_find_id(seg, g->id, strlen(g->id)), k);
        test_segment_doc(seg, k, &d);
        assert_int_equal(d.id_len, strlen(g->id));
        assert_memory_equal(d.id, g->id, d.id_len);
        assert_true(d.date_s == DOC_DATE_NONE);
        assert_int_equal(d.store.record, k); /* one stored record per document, in order */
        assert_loads_as(seg, k, &g->t);
    }
    static const char *const absent[] = { "doc-02000", "doc-99999", "doc-", "doc-0", "d",
                                          "doc-000000", "zzz" };
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
        assert_int_equal(test_find_id(seg, absent[i], strlen(absent[i])), DOCID_END);
    segment_close(seg);
    free(path);
    many_free(&m);
}

static void test_segment_many_docs_terms_iterate_across_blocks(void **state)
{
    struct many m;
    const char **sorted = calloc(3 * MANY_VOCAB + 2 * N_CJK, sizeof *sorted);
    char hidden[N_CJK][8];
    size_t n = 0;

    assert_non_null(sorted);
    many_make(&m);
    char *path = many_build(&m, *state);
    struct segment *seg = open_ok(path);

    for (uint32_t w = 0; w < MANY_VOCAB; w++) {
        bool used = false;
        for (uint32_t k = 0; k < MANY_DOCS && !used; k++)
            used = get_has(&m, w, k);
        if (used)
            sorted[n++] = m.vocab[w];
        if (m.source_df[w])
            sorted[n++] = m.exact[w][0];
        if (m.tag_df[w])
            sorted[n++] = m.exact[w][1];
    }
    for (size_t c = 0; c < N_CJK; c++) {
        if (!m.cjk_df[c])
            continue;
        snprintf(hidden[c], sizeof hidden[c], "\x01%s", many_cjk[c]);
        sorted[n++] = many_cjk[c];
        sorted[n++] = hidden[c];
    }
    qsort(sorted, n, sizeof *sorted, cstr_ptr_cmp);
    assert_int_equal(n, segment_n_terms(seg));
    assert_terms_from(seg, "", 0, sorted, n);
    /* from every 16th term, just before it, and just after it */
    for (size_t i = 0; i < n; i += 16) {
        char p[32];
        size_t len = strlen(sorted[i]);
        assert_true(len + 2 < sizeof p);
        memcpy(p, sorted[i], len);
        struct segment_term_iter it;
        struct segment_term t;
        segment_terms_from(seg, p, len, &it);
        assert_true(segment_terms_next(&it, &t));
        assert_int_equal(it.term_len, len);
        assert_memory_equal(it.term, p, len);
        if (i % 64 == 0) {
            assert_terms_from(seg, p, len, sorted, n);
            assert_terms_from(seg, p, len - 1, sorted, n);
            p[len] = '\x01';
            assert_terms_from(seg, p, len + 1, sorted, n);
        }
    }
    for (size_t s = 0; s < N_STEMS; s++)
        assert_terms_from(seg, many_stems[s], strlen(many_stems[s]), sorted, n);
    segment_close(seg);
    free(path);
    free(sorted);
    many_free(&m);
}

/* ---- damage ---- */

/* Opens data written as dir/damaged.xseg; returns what segment_open() did. */
static int open_bytes(const char *dir, const unsigned char *data, size_t len, struct xerr *err)
{
    char *path = join(dir, "damaged.xseg");
    struct segment *seg = NULL;

    write_bytes(path, data, len);
    xerr_clear(err);
    int rc = segment_open(path, &seg, err);
    if (rc == XE_OK)
        segment_close(seg);
    else
        assert_int_equal(err->code, rc);
    free(path);
    return rc;
}

static void assert_names_file(const struct xerr *err)
{
    if (!strstr(err->msg, "damaged.xseg"))
        print_error("message does not name the file: %s\n", err->msg);
    assert_non_null(strstr(err->msg, "damaged.xseg"));
}

/* As open_bytes(), and a failure must name the file. */
static int open_damaged(const char *dir, const unsigned char *data, size_t len,
                        struct xerr *err)
{
    int rc = open_bytes(dir, data, len, err);

    if (rc)
        assert_names_file(err);
    return rc;
}

static unsigned char *small_file(const char *dir, size_t *len)
{
    char *path = build_segment(dir, "small.xseg", small_docs, N_SMALL);
    unsigned char *data = read_bytes(path, len);

    free(path);
    assert_true(*len > SEGMENT_HEADER_BYTES);
    return data;
}

/*
 * Recomputes the checksums (the chunk table's, when the header's chunk size
 * and the file's length place it; then the header's), so that only the
 * structure is wrong. The table is found from the length, not from the
 * sections, which a test may have moved.
 */
static void fix_checksums(unsigned char *file, size_t len)
{
    uint64_t chunk = get_u32le(file + 120), body = len - SEGMENT_HEADER_BYTES;

    for (uint64_t n = body / (chunk + 4) + 1, tries = 0;
         chunk >= SEGMENT_CHUNK_MIN_BYTES && (chunk & (chunk - 1)) == 0 && tries < 3;
         n--, tries++) {
        if (4 * n > body || (body - 4 * n + chunk - 1) / chunk != n)
            continue;
        size_t end = len - 4 * (size_t)n;
        for (uint64_t c = 0; c < n; c++) {
            size_t from = SEGMENT_HEADER_BYTES + (size_t)(c * chunk);
            size_t to = from + chunk < end ? from + (size_t)chunk : end;
            put_u32le(file + end + 4 * c, crc32c(0, file + from, to - from));
        }
        put_u32le(file + 124, crc32c(0, file + end, 4 * (size_t)n));
        break;
    }
    put_u32le(file + 12, crc32c(0, file + 16, SEGMENT_HEADER_BYTES - 16));
}

static size_t section_offset(const unsigned char *file, int section)
{
    return (size_t)get_u64le(file + 56 + 16 * section);
}

static void test_segment_open_accepts_its_own_bytes(void **state)
{
    size_t len;
    unsigned char *data = small_file(*state, &len);
    struct xerr err = { 0 };

    /* the baseline for the damage tests: the undamaged copy opens */
    assert_int_equal(open_damaged(*state, data, len, &err), XE_OK);
    fix_checksums(data, len); /* recomputing them changes nothing */
    assert_int_equal(open_damaged(*state, data, len, &err), XE_OK);
    free(data);
}

static void test_segment_refuses_every_truncation(void **state)
{
    size_t len;
    unsigned char *data = small_file(*state, &len);
    struct xerr err = { 0 };

    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(open_damaged(*state, data, cut, &err), XE_CORRUPT);
    /* and a byte too many */
    unsigned char *longer = calloc(len + 1, 1);
    assert_non_null(longer);
    memcpy(longer, data, len);
    assert_int_equal(open_damaged(*state, longer, len + 1, &err), XE_CORRUPT);
    free(longer);
    free(data);
}

static void test_segment_refuses_flipped_header_byte(void **state)
{
    static const unsigned char flips[] = { 0x01, 0x80, 0xff };
    size_t len;
    unsigned char *data = small_file(*state, &len);
    struct xerr err = { 0 };

    for (size_t at = 0; at < SEGMENT_HEADER_BYTES; at++) {
        for (size_t f = 0; f < sizeof flips; f++) {
            data[at] ^= flips[f];
            assert_int_equal(open_damaged(*state, data, len, &err), XE_CORRUPT);
            data[at] ^= flips[f];
        }
    }
    free(data);
}

static void test_segment_refuses_flipped_byte_anywhere(void **state)
{
    size_t len;
    unsigned char *data = small_file(*state, &len);
    struct xerr err = { 0 };

    for (size_t at = 0; at < len; at++) {
        unsigned char flip = (unsigned char)(at % 3 == 0 ? 0xff : 1u << (at % 8));
        data[at] ^= flip;
        assert_int_equal(open_damaged(*state, data, len, &err), XE_CORRUPT);
        data[at] ^= flip;
    }
    free(data);
}

/*
 * Large segments are opened without their body's checksum (segment.h), so
 * segment_verify() and merges must find damage on their own: the file of an
 * open segment is damaged under it (the mapping is shared), then checked.
 */
static void test_segment_verify_and_merge_refuse_damage_after_open(void **state)
{
    char *path = build_segment(*state, "victim.xseg", small_docs, N_SMALL);
    char *out = join(*state, "merged.xseg");
    struct segment *seg;
    struct xerr err = { 0 };

    assert_ok(segment_open(path, &seg, &err), &err);
    assert_ok(segment_verify(seg, &err), &err);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, SEGMENT_HEADER_BYTES + 3, SEEK_SET), 0);
    int c = fgetc(f);
    assert_int_equal(fseek(f, SEGMENT_HEADER_BYTES + 3, SEEK_SET), 0);
    fputc(c ^ 0x40, f);
    fclose(f);
    assert_int_equal(segment_verify(seg, &err), XE_CORRUPT);
    assert_non_null(strstr(err.msg, "victim.xseg"));
    xerr_clear(&err);
    assert_int_equal(merge_segments(&seg, NULL, 1, out, false, NULL, NULL, &err), XE_CORRUPT);
    assert_non_null(strstr(err.msg, "checksum"));
    segment_close(seg);
    free(out);
    free(path);
}

static void test_segment_refuses_other_format_versions(void **state)
{
    static const struct {
        uint32_t version;
        const char *says;
    } cases[] = {
        { 0, "version 0" },
        { 1, "version 1" }, /* the block store before the per-record store */
        { 2, "version 2" }, /* dictionary entries with postings offsets and flags */
        { 3, "version 3" }, /* doc entries without the fields' first positions */
        { 7, "version 7" }, /* one checksum for the whole body, checked at open */
        { 0x01000000, "version 16777216" }, /* 1 read big-endian */
        { UINT32_MAX, "version 4294967295" },
    };
    size_t len;
    unsigned char *data = small_file(*state, &len);
    struct xerr err = { 0 };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        put_u32le(data + 8, cases[i].version);
        fix_checksums(data, len); /* only the version differs */
        assert_int_equal(open_damaged(*state, data, len, &err), XE_CORRUPT);
        if (!strstr(err.msg, cases[i].says))
            print_error("want \"%s\" in: %s\n", cases[i].says, err.msg);
        assert_non_null(strstr(err.msg, cases[i].says));
        if (cases[i].version < SEGMENT_VERSION) /* what to do about it */
            assert_non_null(strstr(err.msg, "rebuild the index"));
    }
    /* the next version, which this reader cannot know */
    char says[32];
    snprintf(says, sizeof says, "version %u", (unsigned)SEGMENT_VERSION + 1);
    put_u32le(data + 8, SEGMENT_VERSION + 1);
    fix_checksums(data, len);
    assert_int_equal(open_damaged(*state, data, len, &err), XE_CORRUPT);
    assert_non_null(strstr(err.msg, says));
    /* and the current one opens again */
    put_u32le(data + 8, SEGMENT_VERSION);
    fix_checksums(data, len);
    assert_int_equal(open_damaged(*state, data, len, &err), XE_OK);
    free(data);
}

enum forge_op { SET16, SET32, ADD32, SET64, ADD64 };

/*
 * Damage behind valid checksums: each must still be refused, with a message
 * naming the file (for the store section (3), segment_check() puts the file
 * name before docstore_open()'s message): at open, or, for what open does not
 * read (document entries, the id order), by the reads that meet it.
 */
static const struct {
    const char *what;
    int section; /* -1: offset from the start of the file */
    size_t at;
    enum forge_op op;
    uint64_t value;
} forged[] = {
    { "n_docs past the doc table", -1, 16, ADD32, 1 },
    { "n_docs huge", -1, 16, SET32, UINT32_MAX },
    { "n_terms needing another dictionary block", -1, 20, ADD32, SEGMENT_TERMS_PER_BLOCK },
    { "n_terms zero with a dictionary block", -1, 20, SET32, 0 },
    { "n_terms huge", -1, 20, SET32, UINT32_MAX },
    { "file_bytes one more", -1, 48, ADD64, 1 },
    { "file_bytes huge", -1, 48, SET64, UINT64_MAX },
    { "terms offset moved", -1, 56, ADD64, 1 },
    { "terms bytes one more", -1, 64, ADD64, 1 },
    { "terms bytes huge", -1, 64, SET64, UINT64_MAX },
    { "postings bytes one less", -1, 80, ADD64, UINT64_MAX },
    { "docs offset huge", -1, 88, SET64, UINT64_MAX - 7 },
    { "store bytes past the end", -1, 112, ADD64, 8 },
    { "store offset huge", -1, 104, SET64, UINT64_MAX },
    { "dictionary block count", 0, 0, ADD32, 1 },
    { "dictionary block count huge", 0, 0, SET32, UINT32_MAX },
    { "dictionary block inside its table", 0, 4, SET32, 0 },
    { "dictionary block at the end of its table", 0, 4, SET32, 3 + SEGMENT_BLOCK_ENTRY_BYTES },
    { "dictionary block past the section", 0, 4, SET32, 0xffffff },
    { "dictionary block postings past the section", 0, 8, SET64, 0xffffff },
    { "dictionary block postings huge", 0, 8, SET64, UINT64_MAX },
    { "id length zero", 2, 28, SET16, 0 },
    { "id length over the cap", 2, 28, SET16, DOC_ID_MAX_BYTES + 1 },
    { "id offset past the ids", 2, 24, SET32, 1000 },
    { "id offset huge", 2, 24, SET32, UINT32_MAX },
    { "id order names no document", 2,
      N_SMALL * (SEGMENT_DOC_ENTRY_BYTES + SEGMENT_RANK_ENTRY_BYTES), SET32, N_SMALL },
    { "stored record missing", 2, 12, SET32, N_SMALL },
    { "stored record huge", 2, SEGMENT_DOC_ENTRY_BYTES + 12, SET32, UINT32_MAX },
    { "store record count", 3, 0, ADD32, 1 },
    { "store record count huge", 3, 0, SET32, UINT32_MAX },
    { "store block count zero", 3, 4, SET32, 0 },
    { "store symbol count one more", 3, 8, ADD32, 1 },
    { "store symbol count huge", 3, 8, SET32, UINT32_MAX },
    { "store dictionary past the section", 3, 12, SET32, 0xffffff },
    { "store section one byte short: its tables misplaced", -1, 112, ADD64, UINT64_MAX },
    { "chunk size not a power of two", -1, 120, ADD32, 1 },
    { "chunk size below the least", -1, 120, SET32, SEGMENT_CHUNK_MIN_BYTES / 2 },
    { "chunk size zero", -1, 120, SET32, 0 },
    { "chunk size smaller: the table no longer fits", -1, 120, SET32, SEGMENT_CHUNK_MIN_BYTES },
    { "chunk table checksum", -1, 124, ADD32, 1 },
};

/* Reads every document and term of a small_docs segment: the first error
 * other than XE_NOTFOUND, or XE_OK. */
static int read_everything(const struct segment *seg, struct xerr *err)
{
    struct segment_term_iter it;
    struct segment_term t;
    struct buf scratch;
    struct doc_fields d;
    int rc = XE_OK;

    buf_init(&scratch, SCRATCH_MAX_BYTES);
    for (uint32_t i = 0; i < segment_n_docs(seg) && !rc; i++) {
        struct segment_doc e;
        struct segment_doc_rank r;
        uint32_t docid;
        if (!(rc = segment_doc(seg, i, &e, err)) && !(rc = segment_doc_rank(seg, i, &r, err)))
            rc = segment_load(seg, i, &scratch, &d, err);
        if (!rc && i < N_SMALL)
            rc = segment_find_id(seg, small_docs[i].id, strlen(small_docs[i].id), &docid, err);
    }
    buf_fini(&scratch);
    segment_terms_from(seg, "", 0, &it);
    while (!rc && segment_terms_next(&it, &t))
        ;
    if (!rc && it.rc)
        rc = segment_terms_error(&it, err);
    return rc == XE_NOTFOUND ? XE_OK : rc;
}

static void forge(unsigned char *file, int section, size_t at, enum forge_op op, uint64_t v)
{
    unsigned char *p = file + (section < 0 ? 0 : section_offset(file, section)) + at;

    switch (op) {
    case SET16:
        p[0] = (unsigned char)v;
        p[1] = (unsigned char)(v >> 8);
        break;
    case SET32:
        put_u32le(p, (uint32_t)v);
        break;
    case ADD32:
        put_u32le(p, get_u32le(p) + (uint32_t)v);
        break;
    case SET64:
        put_u64le(p, v);
        break;
    case ADD64:
        put_u64le(p, get_u64le(p) + v);
        break;
    }
}

static void test_segment_refuses_bad_structure_behind_valid_checksums(void **state)
{
    size_t len;
    unsigned char *data = small_file(*state, &len);
    unsigned char *copy = malloc(len);
    struct xerr err = { 0 };

    assert_non_null(copy);
    assert_int_equal(get_u32le(data + 16), N_SMALL);
    assert_int_equal(get_u32le(data + section_offset(data, 3)), N_SMALL); /* stored records */
    assert_int_equal(get_u32le(data + section_offset(data, 3) + 12), 0);  /* no dictionary */
    for (size_t i = 0; i < sizeof forged / sizeof forged[0]; i++) {
        memcpy(copy, data, len);
        forge(copy, forged[i].section, forged[i].at, forged[i].op, forged[i].value);
        if (forged[i].at != 124 || forged[i].section != -1)
            fix_checksums(copy, len);
        else
            put_u32le(copy + 12, crc32c(0, copy + 16, SEGMENT_HEADER_BYTES - 16));
        char *path = join(*state, "damaged.xseg");
        struct segment *seg = NULL;
        write_bytes(path, copy, len);
        xerr_clear(&err);
        int rc = segment_open(path, &seg, &err);
        if (!rc) {
            rc = read_everything(seg, &err);
            segment_close(seg);
        }
        free(path);
        if (rc != XE_CORRUPT)
            print_error("%s: got %d (%s)\n", forged[i].what, rc, err.msg);
        assert_int_equal(rc, XE_CORRUPT);
        assert_names_file(&err);
    }
    free(copy);
    free(data);
}

static void test_segment_damaged_stored_record_fails_its_load_not_open(void **state)
{
    size_t len;
    unsigned char *data = small_file(*state, &len);
    char *path = join(*state, "damaged.xseg");
    struct xerr err = { 0 };
    struct buf scratch;
    struct doc_fields d;

    /* the reserved bit in the header of the store's one frame, which follows
     * the four counts and the symbols (the small store has one block and no
     * dictionary; index/format/docstore.h) */
    size_t store = section_offset(data, 3);
    assert_int_equal(get_u32le(data + store + 4), 1);
    assert_int_equal(get_u32le(data + store + 12), 0);
    data[store + 16 + 4 * (size_t)get_u32le(data + store + 8)] ^= 0x08;
    fix_checksums(data, len);
    write_bytes(path, data, len);
    struct segment *seg = open_ok(path);
    buf_init(&scratch, SCRATCH_MAX_BYTES);
    for (uint32_t i = 0; i < N_SMALL; i++) { /* one block: every record fails */
        char says[32];
        xerr_clear(&err);
        assert_int_equal(segment_load(seg, i, &scratch, &d, &err), XE_CORRUPT);
        assert_names_file(&err);
        snprintf(says, sizeof says, "record %u: block 0", (unsigned)i);
        assert_non_null(strstr(err.msg, says));
    }
    /* what is not in the store still reads */
    assert_int_equal(test_find_id(seg, "b-2", 3), 1);
    buf_fini(&scratch);
    segment_close(seg);
    free(path);
    free(data);
}

static void test_segment_damaged_dictionary_entries_are_corrupt(void **state)
{
    size_t len;
    unsigned char *data = small_file(*state, &len);
    char *path = join(*state, "damaged.xseg");
    struct segment_term_iter it;
    struct segment_term t;

    /* every entry byte after the block table (u32 n_blocks, then per block a
     * u32 entry offset and a u64 postings offset) becomes a varint that
     * never ends */
    size_t terms = section_offset(data, 0), terms_len = (size_t)get_u64le(data + 64);
    uint32_t n_blocks = get_u32le(data + terms);
    size_t entries = 4 + SEGMENT_BLOCK_ENTRY_BYTES * (size_t)n_blocks;
    assert_int_equal(n_blocks, (N_SMALL_TERMS + SEGMENT_TERMS_PER_BLOCK - 1) /
                                   SEGMENT_TERMS_PER_BLOCK);
    assert_int_equal(get_u32le(data + terms + 4), entries); /* the first block follows */
    assert_int_equal(get_u64le(data + terms + 8), 0);       /* with the first list */
    assert_true(terms_len > entries);
    memset(data + terms + entries, 0xff, terms_len - entries);
    fix_checksums(data, len);
    write_bytes(path, data, len);
    struct segment *seg = open_ok(path);
    for (size_t i = 0; i < N_SMALL_TERMS; i++) {
        struct xerr err = { 0 };
        assert_int_equal(segment_lookup(seg, small_terms[i], strlen(small_terms[i]), &t, &err),
                         XE_CORRUPT);
        assert_names_file(&err);
    }
    segment_terms_from(seg, "", 0, &it);
    assert_false(segment_terms_next(&it, &t));
    assert_int_equal(it.rc, XE_CORRUPT);
    struct xerr it_err = { 0 };
    assert_int_equal(segment_terms_error(&it, &it_err), XE_CORRUPT);
    assert_names_file(&it_err);
    segment_terms_from(seg, "world", 5, &it);
    assert_false(segment_terms_next(&it, &t));
    assert_int_equal(it.rc, XE_CORRUPT);
    assert_int_equal(test_find_id(seg, "a-1", 3), 0); /* the docs section is intact */
    segment_close(seg);
    free(path);
    free(data);
}

/* ---- damage found by the chunk checksums, as reads meet it ---- */

#define TEST_CHUNK_BYTES 256 /* the many segment spans thousands of chunks */

enum read_kind { READ_TERMS, READ_DOCS, READ_RANKS, READ_IDS, READ_LOADS, N_READ_KINDS };
static const char *const read_kind_names[N_READ_KINDS] = { "terms", "doc entries",
                                                           "rank entries", "ids", "loads" };

struct read_outcome {
    uint32_t ok[N_READ_KINDS], corrupt[N_READ_KINDS];
};

/* A read of the damaged copy: XE_OK (then the caller compares) or XE_CORRUPT
 * naming the file and the checksum; anything else fails the test. */
static bool read_ok(struct read_outcome *o, enum read_kind kind, int rc, const struct xerr *err)
{
    if (rc == XE_OK) {
        o->ok[kind]++;
        return true;
    }
    if (rc != XE_CORRUPT)
        print_error("%s: got %d (%s)\n", read_kind_names[kind], rc, err->msg);
    assert_int_equal(rc, XE_CORRUPT);
    assert_names_file(err);
    if (!strstr(err->msg, "checksum"))
        print_error("%s: %s\n", read_kind_names[kind], err->msg);
    assert_non_null(strstr(err->msg, "checksum"));
    o->corrupt[kind]++;
    return false;
}

/* Reads every term and document of seg (a damaged copy of ref): each read
 * gives what ref gives, or XE_CORRUPT; never other data. */
static struct read_outcome compare_reads(const struct segment *ref, const struct segment *seg)
{
    struct read_outcome o = { { 0 }, { 0 } };
    struct segment_term_iter it, mine;
    struct segment_term t, got;
    struct buf scratch_ref, scratch;
    bool iterating = true;

    segment_terms_from(ref, "", 0, &it);
    segment_terms_from(seg, "", 0, &mine);
    while (segment_terms_next(&it, &t)) {
        struct xerr err = { 0 };
        if (read_ok(&o, READ_TERMS, segment_lookup(seg, it.term, it.term_len, &got, &err),
                    &err)) {
            assert_int_equal(got.df, t.df);
            assert_int_equal(got.has_positions, t.has_positions);
            assert_int_equal(got.postings_len, t.postings_len);
            assert_memory_equal(got.postings, t.postings, t.postings_len);
        }
        if (iterating && !segment_terms_next(&mine, &got)) {
            struct xerr mine_err = { 0 };
            int rc = mine.rc ? segment_terms_error(&mine, &mine_err) : XE_NOTFOUND;
            read_ok(&o, READ_TERMS, rc, &mine_err);
            iterating = false;
        } else if (iterating) {
            assert_int_equal(mine.term_len, it.term_len);
            assert_memory_equal(mine.term, it.term, it.term_len);
            assert_int_equal(got.postings_len, t.postings_len);
            assert_memory_equal(got.postings, t.postings, t.postings_len);
        }
    }
    assert_int_equal(it.rc, XE_OK);
    buf_init(&scratch_ref, SCRATCH_MAX_BYTES);
    buf_init(&scratch, SCRATCH_MAX_BYTES);
    for (uint32_t d = 0; d < segment_n_docs(ref); d++) {
        struct segment_doc want, have;
        struct segment_doc_rank want_rank, have_rank;
        const unsigned char *rec_want, *rec;
        size_t len_want, len;
        uint32_t docid;
        struct xerr err = { 0 };

        test_segment_doc(ref, d, &want);
        if (read_ok(&o, READ_DOCS, segment_doc(seg, d, &have, &err), &err)) {
            assert_int_equal(have.id_len, want.id_len);
            assert_memory_equal(have.id, want.id, want.id_len);
            assert_int_equal(have.store.record, want.store.record);
            assert_true(have.date_s == want.date_s);
            assert_memory_equal(have.field_tokens, want.field_tokens, sizeof want.field_tokens);
            assert_memory_equal(have.field_start, want.field_start, sizeof want.field_start);
        }
        assert_ok(segment_doc_rank(ref, d, &want_rank, &err), &err);
        xerr_clear(&err);
        if (read_ok(&o, READ_RANKS, segment_doc_rank(seg, d, &have_rank, &err), &err)) {
            assert_memory_equal(have_rank.len_code, want_rank.len_code, N_FIELDS);
            assert_true(have_rank.date_s == want_rank.date_s);
        }
        xerr_clear(&err);
        if (read_ok(&o, READ_IDS, segment_find_id(seg, want.id, want.id_len, &docid, &err),
                    &err))
            assert_int_equal(docid, d);
        xerr_clear(&err);
        assert_ok(segment_record(ref, d, &scratch_ref, &rec_want, &len_want, &err), &err);
        if (read_ok(&o, READ_LOADS, segment_record(seg, d, &scratch, &rec, &len, &err), &err)) {
            assert_int_equal(len, len_want);
            assert_memory_equal(rec, rec_want, len);
        }
    }
    buf_fini(&scratch_ref);
    buf_fini(&scratch);
    return o;
}

/* Where the sections of a segment file lie, from its header. */
struct layout {
    size_t terms, terms_entries, terms_end, postings, postings_end;
    size_t docs, ranks, id_order, ids, ids_end;
    size_t store, store_symbols, store_frames, store_tables, store_end;
};

static struct layout layout_of(const unsigned char *file)
{
    struct layout l;
    uint32_t n = get_u32le(file + 16);

    l.terms = section_offset(file, 0);
    l.terms_entries = l.terms + 4 + SEGMENT_BLOCK_ENTRY_BYTES * (size_t)get_u32le(file + l.terms);
    l.terms_end = l.terms + (size_t)get_u64le(file + 64);
    l.postings = section_offset(file, 1);
    l.postings_end = l.postings + (size_t)get_u64le(file + 80);
    l.docs = section_offset(file, 2);
    l.ranks = l.docs + SEGMENT_DOC_ENTRY_BYTES * (size_t)n;
    l.id_order = l.ranks + SEGMENT_RANK_ENTRY_BYTES * (size_t)n;
    l.ids = l.id_order + 4 * (size_t)n;
    l.ids_end = l.docs + (size_t)get_u64le(file + 96);
    l.store = section_offset(file, 3);
    l.store_end = l.store + (size_t)get_u64le(file + 112);
    const unsigned char *st = file + l.store;
    uint32_t records = get_u32le(st), blocks = get_u32le(st + 4);
    l.store_symbols = l.store + 16;
    l.store_frames = l.store_symbols + 4 * (size_t)get_u32le(st + 8) + get_u32le(st + 12);
    l.store_tables = l.store_end - (8 * ((size_t)blocks + 1) + 4 * (size_t)blocks +
                                    2 * (size_t)records);
    return l;
}

/* The many segment written with small chunks; *file holds its bytes. */
static char *many_chunked(struct many *m, const char *dir, unsigned char **file, size_t *len)
{
    many_make(m);
    segment_set_chunk_bytes(TEST_CHUNK_BYTES);
    char *path = many_build(m, dir);
    segment_set_chunk_bytes(0);
    *file = read_bytes(path, len);
    assert_int_equal(get_u32le(*file + 120), TEST_CHUNK_BYTES);
    return path;
}

/*
 * The defect behind version 8: a bit flipped in a segment too large to be
 * checked whole at open (here: the limit set below every file) gave another
 * document's data. Now, for one bit in each section: opening succeeds (it
 * reads none of those bytes), every read that meets the damaged chunk is
 * XE_CORRUPT naming the file, every other read gives what the undamaged
 * file gives, and the segment and the process count the damage once.
 */
static void test_segment_damage_in_each_section_fails_only_its_reads(void **state)
{
    struct many m;
    unsigned char *good;
    size_t len;
    char *path = many_chunked(&m, *state, &good, &len);
    char *damaged = join(*state, "damaged.xseg");
    struct segment *ref = open_ok(path);
    struct layout l = layout_of(good);
    const uint32_t n = MANY_DOCS;
    /* a document that searches by id seldom pass (the second in id order), so
     * that they can still find the others */
    const uint32_t quiet_doc = get_u32le(good + l.id_order + 4);
    const struct {
        const char *what;
        size_t at;
        unsigned char bit;
        enum read_kind fails;
    } cases[] = {
        { "a dictionary entry", l.terms_entries + (l.terms_end - l.terms_entries) / 2, 0x04,
          READ_TERMS },
        { "a posting list", l.postings + (l.postings_end - l.postings) / 2, 0x10, READ_TERMS },
        /* the stored record number: the document after it, as in the defect */
        { "a document entry", l.docs + SEGMENT_DOC_ENTRY_BYTES * (size_t)quiet_doc + 12, 0x01,
          READ_DOCS },
        { "a rank entry", l.ranks + SEGMENT_RANK_ENTRY_BYTES * (size_t)(n / 3), 0x02,
          READ_RANKS },
        { "the id order", l.id_order + 4 * (size_t)(n / 3), 0x01, READ_IDS },
        { "an id", l.ids + get_u32le(good + l.docs + SEGMENT_DOC_ENTRY_BYTES * (size_t)quiet_doc +
                                     24) + 1, 0x01, READ_DOCS },
        { "a block of the store", l.store_frames + (l.store_tables - l.store_frames) / 2, 0x20,
          READ_LOADS },
    };

    assert_true(len > 64 * TEST_CHUNK_BYTES);
    segment_set_verify_at_open_bytes(1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct segment *seg;
        struct xerr err = { 0 };
        uint64_t failures = segment_checksum_failures();

        good[cases[i].at] ^= cases[i].bit;
        write_bytes(damaged, good, len);
        good[cases[i].at] ^= cases[i].bit;
        assert_ok(segment_open(damaged, &seg, &err), &err);
        assert_int_equal(segment_damaged_chunks(seg), 0);
        struct read_outcome o = compare_reads(ref, seg);
        for (int k = 0; k < N_READ_KINDS; k++) {
            if (o.ok[k] == 0 || (k == (int)cases[i].fails && o.corrupt[k] == 0))
                print_error("%s: %s read %u ok, %u corrupt\n", cases[i].what,
                            read_kind_names[k], o.ok[k], o.corrupt[k]);
            assert_true(o.ok[k] > 0); /* the untouched chunks read as ever */
        }
        assert_true(o.corrupt[cases[i].fails] > 0);
        assert_int_equal(segment_damaged_chunks(seg), 1);
        assert_int_equal(segment_checksum_failures(), failures + 1);
        /* and a whole check finds it too, without counting it twice */
        assert_int_equal(segment_verify(seg, &err), XE_CORRUPT);
        assert_int_equal(segment_damaged_chunks(seg), 1);
        segment_close(seg);
        /* checked whole at open (the default for a file this size), it is refused */
        segment_set_verify_at_open_bytes(0);
        xerr_clear(&err);
        assert_int_equal(segment_open(damaged, &seg, &err), XE_CORRUPT);
        assert_names_file(&err);
        segment_set_verify_at_open_bytes(1);
    }
    segment_set_verify_at_open_bytes(0);
    segment_close(ref);
    free(damaged);
    free(path);
    free(good);
    many_free(&m);
}

/* What opening reads (the dictionary's block table, the store's head,
 * symbols and tables) is checked at open even when the rest is not. */
static void test_segment_damage_in_what_open_reads_is_refused_at_open(void **state)
{
    struct many m;
    unsigned char *good;
    size_t len;
    char *path = many_chunked(&m, *state, &good, &len);
    char *damaged = join(*state, "damaged.xseg");
    struct layout l = layout_of(good);
    const size_t at[] = {
        l.terms + 4 + (l.terms_entries - l.terms - 4) / 2, /* the dictionary's block table */
        l.store + 2,                                         /* the store's record count */
        l.store_symbols + 5,                                 /* a symbol */
        l.store_tables + (l.store_end - l.store_tables) / 2, /* the store's tables */
        len - 3,                                             /* the chunk table */
    };

    segment_set_verify_at_open_bytes(1);
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        struct segment *seg = NULL;
        struct xerr err = { 0 };
        good[at[i]] ^= 0x08;
        write_bytes(damaged, good, len);
        good[at[i]] ^= 0x08;
        assert_int_equal(segment_open(damaged, &seg, &err), XE_CORRUPT);
        assert_names_file(&err);
        assert_non_null(strstr(err.msg, "checksum"));
        assert_null(seg);
    }
    segment_set_verify_at_open_bytes(0);
    free(damaged);
    free(path);
    free(good);
    many_free(&m);
}

static void test_segment_open_reports_missing_and_unreadable_files(void **state)
{
    char *missing = join(*state, "missing.xseg");
    struct segment *seg = NULL;
    struct xerr err = { 0 };

    assert_int_equal(segment_open(missing, &seg, &err), XE_NOTFOUND);
    assert_non_null(strstr(err.msg, "missing.xseg"));
    assert_null(seg);
    /* a folder is not a segment */
    xerr_clear(&err);
    int rc = segment_open(*state, &seg, &err);
    assert_true(rc == XE_IO || rc == XE_CORRUPT);
    assert_non_null(strstr(err.msg, strrchr(*state, '/') + 1));
    assert_null(seg);
    free(missing);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, test_dir_setup, test_dir_teardown)
        T(test_segment_counts_docs_terms_and_field_tokens),
        T(test_segment_lookup_finds_terms_with_their_lists),
        T(test_segment_postings_hold_field_tfs_and_positions),
        T(test_segment_finds_ids_and_doc_entries),
        T(test_segment_load_round_trips_every_field),
        T(test_segment_terms_iterate_in_byte_order_from_prefix),
        T(test_segment_exact_value_terms_have_no_positions_and_right_df),
        T(test_segment_length_codes_round_down_monotonically),
    T(test_segment_rank_entries_round_trip),
    T(test_segment_keeps_only_the_newer_of_a_replaced_id),
        T(test_segment_of_an_empty_memindex_is_empty),
        T(test_segment_keeps_terms_of_the_longest_length),
        T(test_segment_many_docs_lookups_match_expected),
        T(test_segment_many_docs_ids_and_records_round_trip),
        T(test_segment_many_docs_terms_iterate_across_blocks),
        T(test_segment_open_accepts_its_own_bytes),
        T(test_segment_refuses_every_truncation),
        T(test_segment_refuses_flipped_header_byte),
        T(test_segment_refuses_flipped_byte_anywhere),
        T(test_segment_refuses_other_format_versions),
        T(test_segment_verify_and_merge_refuse_damage_after_open),
        T(test_segment_refuses_bad_structure_behind_valid_checksums),
        T(test_segment_damaged_stored_record_fails_its_load_not_open),
        T(test_segment_damaged_dictionary_entries_are_corrupt),
        T(test_segment_damage_in_each_section_fails_only_its_reads),
        T(test_segment_damage_in_what_open_reads_is_refused_at_open),
        T(test_segment_open_reports_missing_and_unreadable_files),
#undef T
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);

    docstore_thread_cleanup();
    return failed;
}
