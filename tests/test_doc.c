/*
 * Tests of index/format/doc.h: stored document records (encode, decode, damage),
 * the JSON template that doc_json() rebuilds the original JSON from byte for
 * byte, and date parsing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/base/buf.h"
#include "index/format/doc.h"
#include "index/base/error.h"
#include "index/base/limits.h"

#define REC_MAX_BYTES (1u << 20)

static struct text txt(const char *s)
{
    return (struct text){ .p = s, .len = strlen(s) };
}

/* A text from a string literal, usable in static initializers; keeps embedded NULs. */
#define T(s) { .p = (s), .len = sizeof(s) - 1 }

static void assert_text_equal(struct text got, struct text want)
{
    if (!want.p) {
        assert_null(got.p);
        return;
    }
    assert_non_null(got.p);
    assert_int_equal(got.len, want.len);
    if (want.len)
        assert_memory_equal(got.p, want.p, want.len);
}

static void assert_fields_equal(const struct doc_fields *got, const struct doc_fields *want)
{
    assert_text_equal(got->id, want->id);
    assert_text_equal(got->title, want->title);
    assert_text_equal(got->body, want->body);
    assert_text_equal(got->source, want->source);
    assert_text_equal(got->date, want->date);
    assert_text_equal(got->url, want->url);
    assert_int_equal(got->n_tags, want->n_tags);
    for (size_t i = 0; i < want->n_tags; i++)
        assert_text_equal(got->tags[i], want->tags[i]);
    /* The JSON itself is not kept: doc_json() rebuilds it from the template. */
    assert_int_equal(got->json.len, 0);
    assert_non_null(got->json_template.p);
}

/* doc_json(got) gives back want's JSON byte for byte (absent JSON: nothing). */
static void assert_json_rebuilt(const struct doc_fields *got, const struct doc_fields *want,
                                const char *what)
{
    struct buf b;
    struct xerr err = { 0 };
    struct text json = want->json.p ? want->json : (struct text){ "", 0 };

    buf_init(&b, REC_MAX_BYTES);
    int rc = doc_json(got, &b, &err);
    if (rc != XE_OK || err.code != XE_OK)
        fail_msg("%s: doc_json rc %d, err %d (%s)", what, rc, err.code, err.msg);
    if (b.len != json.len || (json.len && memcmp(b.data, json.p, json.len) != 0))
        fail_msg("%s: doc_json gave %zu bytes \"%.*s\", want %zu bytes \"%.*s\"", what, b.len,
                 (int)b.len, b.data ? (const char *)b.data : "", json.len, (int)json.len,
                 json.p);
    buf_fini(&b);
}

/*
 * Encodes d, checks it decodes to the same fields, that doc_json() gives back
 * d's JSON byte for byte, and that encoding the decoded document again gives
 * the very same record. Returns the record (caller frees).
 */
static unsigned char *round_trip_what(const struct doc_fields *d, size_t *len_bytes,
                                      const char *what)
{
    struct buf b, again;
    struct doc_fields got;
    struct xerr err = { 0 };

    buf_init(&b, REC_MAX_BYTES);
    assert_int_equal(doc_record_encode(d, &b), XE_OK);
    memset(&got, 0xa5, sizeof got); /* decode must set every member */
    assert_int_equal(doc_record_decode(b.data, b.len, &got, &err), XE_OK);
    assert_int_equal(err.code, XE_OK);
    assert_fields_equal(&got, d);
    /* The template is a view into the record too. */
    const unsigned char *tp = (const unsigned char *)got.json_template.p;
    assert_true(tp >= b.data && tp + got.json_template.len <= b.data + b.len);
    assert_json_rebuilt(&got, d, what);

    /* A decoded document, written again, is the same record. */
    buf_init(&again, REC_MAX_BYTES);
    assert_int_equal(doc_record_encode(&got, &again), XE_OK);
    if (again.len != b.len || memcmp(again.data, b.data, b.len) != 0)
        fail_msg("%s: re-encoding the decoded record gave %zu bytes, want the same %zu", what,
                 again.len, b.len);
    buf_fini(&again);
    return buf_steal(&b, len_bytes);
}

static unsigned char *round_trip(const struct doc_fields *d, size_t *len_bytes)
{
    return round_trip_what(d, len_bytes, "round trip");
}

/* The field codes d's record's template refers to, in text order; returns how many. */
static size_t template_codes(const struct doc_fields *d, unsigned char *codes, size_t cap)
{
    struct buf b;
    struct doc_fields got;
    struct xerr err = { 0 };
    size_t n = 0;

    buf_init(&b, REC_MAX_BYTES);
    assert_int_equal(doc_record_encode(d, &b), XE_OK);
    assert_int_equal(doc_record_decode(b.data, b.len, &got, &err), XE_OK);
    for (size_t i = 0; i < got.json_template.len; i++) {
        if (got.json_template.p[i] != '\0')
            continue;
        assert_true(i + 1 < got.json_template.len);
        assert_true(n < cap);
        codes[n++] = (unsigned char)got.json_template.p[++i];
    }
    buf_fini(&b);
    return n;
}

static void test_doc_record_round_trips_all_fields(void **state)
{
    static const char json[] =
        "{\"id\":\"news-0001\",\"title\":\"普惠化的 Bedrock\","
        "\"body\":\"正文 body text，含标点。\",\"source\":\"新华社\","
        "\"date\":\"2023-04-29T08:00:00+08:00\",\"url\":\"https://example.com/a?b=c\","
        "\"tags\":[\"科技\",\"AI\",\"cloud\"]}";
    struct doc_fields d = {
        .id = txt("news-0001"),
        .title = txt("普惠化的 Bedrock"),
        .body = txt("正文 body text，含标点。"),
        .source = txt("新华社"),
        .date = txt("2023-04-29T08:00:00+08:00"),
        .url = txt("https://example.com/a?b=c"),
        .tags = { txt("科技"), txt("AI"), txt("cloud") },
        .n_tags = 3,
        .date_s = DOC_DATE_NONE,
        .json = T(json),
    };
    struct xerr err = { 0 };
    struct doc_fields got;
    size_t len, fields_len = 0;

    (void)state;
    unsigned char *rec = round_trip(&d, &len);
    assert_int_equal(doc_record_decode(rec, len, &got, &err), XE_OK);
    assert_int_equal(got.date_s, 1682726400); /* the date field is parsed on decode */
    /* Decoded views point into the record, not into the source strings. */
    const unsigned char *id_p = (const unsigned char *)got.id.p;
    assert_true(id_p >= rec && id_p < rec + len);
    /* Each value is stored once: the template holds only the JSON around them. */
    const struct text *all[] = { &d.id, &d.title, &d.body, &d.source, &d.date, &d.url,
                                 &d.tags[0], &d.tags[1], &d.tags[2] };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        fields_len += all[i]->len;
    assert_int_equal(got.json_template.len, d.json.len - fields_len);
    assert_true(len < fields_len + got.json_template.len + 20);
    free(rec);
}

static void test_doc_record_round_trips_absent_fields(void **state)
{
    struct doc_fields d = { .id = txt("only-id"), .date_s = DOC_DATE_NONE,
                            .json = txt("{\"id\":\"only-id\"}") };
    struct xerr err = { 0 };
    struct doc_fields got;
    size_t len;

    (void)state;
    unsigned char *rec = round_trip(&d, &len);
    assert_int_equal(doc_record_decode(rec, len, &got, &err), XE_OK);
    assert_null(got.title.p);
    assert_null(got.body.p);
    assert_null(got.source.p);
    assert_null(got.date.p);
    assert_null(got.url.p);
    assert_int_equal(got.n_tags, 0);
    assert_true(got.date_s == DOC_DATE_NONE);
    free(rec);

    /* Nothing at all, not even the JSON: doc_json() gives nothing back. */
    struct doc_fields none = { .date_s = DOC_DATE_NONE };
    free(round_trip(&none, &len));
}

static void test_doc_record_keeps_empty_strings_apart_from_absent(void **state)
{
    struct doc_fields d = {
        .id = txt("e"), .title = txt(""), .body = txt(""), .url = txt(""),
        .tags = { txt(""), txt("x"), txt("") }, .n_tags = 3,
        .date_s = DOC_DATE_NONE, .json = txt(""),
    };
    struct xerr err = { 0 };
    struct doc_fields got;
    size_t len;

    (void)state;
    unsigned char *rec = round_trip(&d, &len);
    assert_int_equal(doc_record_decode(rec, len, &got, &err), XE_OK);
    assert_non_null(got.title.p);
    assert_int_equal(got.title.len, 0);
    assert_null(got.source.p); /* absent stays absent */
    assert_null(got.date.p);
    free(rec);

    /* The same, with empty strings in the JSON too. */
    d.json = txt("{\"id\":\"e\",\"title\":\"\",\"body\":\"\",\"url\":\"\",\"tags\":[\"\",\"x\",\"\"]}");
    free(round_trip(&d, &len));
}

static void test_doc_record_round_trips_max_tags(void **state)
{
    char names[DOC_MAX_TAGS][8];
    char json[DOC_MAX_TAGS * 12 + 32];
    struct doc_fields d = { .id = txt("t"), .date_s = DOC_DATE_NONE, .json = txt("{}") };
    unsigned char codes[DOC_MAX_TAGS + 8];
    size_t len, at;

    (void)state;
    for (size_t i = 0; i < DOC_MAX_TAGS; i++) {
        snprintf(names[i], sizeof names[i], "tag%zu", i);
        d.tags[i] = txt(names[i]);
    }
    d.n_tags = DOC_MAX_TAGS;
    free(round_trip(&d, &len));

    /* Every tag referenced from the JSON, up to the last code (6 + DOC_MAX_TAGS). */
    at = (size_t)snprintf(json, sizeof json, "{\"id\":\"t\",\"tags\":[");
    for (size_t i = 0; i < DOC_MAX_TAGS; i++)
        at += (size_t)snprintf(json + at, sizeof json - at, "%s\"%s\"", i ? "," : "", names[i]);
    snprintf(json + at, sizeof json - at, "]}");
    d.json = txt(json);
    free(round_trip(&d, &len));
    assert_int_equal(template_codes(&d, codes, sizeof codes), DOC_MAX_TAGS + 1);
    assert_int_equal(codes[0], 1);
    for (size_t i = 0; i < DOC_MAX_TAGS; i++)
        assert_int_equal(codes[i + 1], 7 + i);
}

static void test_doc_record_round_trips_binary_and_long_fields(void **state)
{
    size_t body_len = 100000;
    char *body = malloc(body_len);
    char *json = malloc(body_len + 64);
    static const char with_nul[] = { 'a', '\0', 'b', '\xff' };
    struct doc_fields d = { .id = txt("long"), .date_s = DOC_DATE_NONE, .json = txt("{}") };
    size_t len;

    (void)state;
    assert_non_null(body);
    assert_non_null(json);
    for (size_t i = 0; i < body_len; i++)
        body[i] = (char)('a' + i % 26);
    d.body = (struct text){ body, body_len };
    d.title = (struct text){ with_nul, sizeof with_nul };
    free(round_trip(&d, &len));

    /* The long body in the JSON too: it is stored once, not twice. */
    int head = snprintf(json, body_len + 64, "{\"id\":\"long\",\"body\":\"");
    memcpy(json + head, body, body_len);
    memcpy(json + head + body_len, "\"}", 2);
    d.json = (struct text){ json, (size_t)head + body_len + 2 };
    free(round_trip(&d, &len));
    assert_true(len < body_len + 64);
    free(json);
    free(body);
}

static void test_doc_record_unparsable_date_decodes_as_none(void **state)
{
    struct doc_fields d = { .id = txt("d"), .date = txt("yesterday"),
                            .date_s = DOC_DATE_NONE, .json = txt("{\"date\":\"yesterday\"}") };
    struct xerr err = { 0 };
    struct doc_fields got;
    size_t len;

    (void)state;
    unsigned char *rec = round_trip(&d, &len);
    assert_int_equal(doc_record_decode(rec, len, &got, &err), XE_OK);
    assert_true(got.date_s == DOC_DATE_NONE);
    free(rec);
}

/* ---- the JSON template ---- */

/*
 * Documents whose JSON must come back byte for byte. codes: the field codes
 * the template must refer to (any order; 1 + index of id..url, 7 + tag), or
 * NULL where which occurrence gets referenced is not the point.
 */
static const struct {
    const char *what;
    struct doc_fields d;
    const char *codes;
} json_cases[] = {
    { "compact, all fields",
      { .id = T("a1"), .title = T("Hello"), .body = T("World"), .source = T("src"),
        .date = T("2023-04-29"), .url = T("http://x/y"), .tags = { T("t1"), T("t2") },
        .n_tags = 2,
        .json = T("{\"id\":\"a1\",\"title\":\"Hello\",\"body\":\"World\",\"source\":\"src\","
                  "\"date\":\"2023-04-29\",\"url\":\"http://x/y\",\"tags\":[\"t1\",\"t2\"]}") },
      "\1\2\3\4\5\6\7\10" },
    { "pretty, spaces, tabs, CRLF, no source/date/url",
      { .id = T("a1"), .title = T("Hello"), .body = T("World"), .tags = { T("t1"), T("t2") },
        .n_tags = 2,
        .json = T("{\n  \"id\" : \"a1\",\n\t\"title\":\t\"Hello\" ,\r\n  \"tags\" : [ \"t1\" ,"
                  " \"t2\" ],\n  \"body\"  :  \"World\"\n}\n") },
      "\1\2\3\7\10" },
    { "reverse key order, nested extra keys",
      { .id = T("a1"), .title = T("Hello"), .body = T("World"), .source = T("src"),
        .date = T("2023-04-29T08:00:00Z"), .url = T("http://x/y"), .tags = { T("t1") },
        .n_tags = 1,
        .json = T("{\"url\":\"http://x/y\",\"tags\":[\"t1\"],\"extra\":{\"n\":1.5e3,"
                  "\"list\":[null,true,false],\"s\":\"x\"},\"date\":\"2023-04-29T08:00:00Z\","
                  "\"source\":\"src\",\"body\":\"World\",\"title\":\"Hello\",\"id\":\"a1\"}") },
      "\1\2\3\4\5\6\7" },
    { "space before the colon only",
      { .id = T("a1"), .title = T("Hello"),
        .json = T("{\"id\" :\"a1\" ,\"title\" :\"Hello\"}") },
      "\1\2" },
    { "title equal to body, a tag equal to the source",
      { .id = T("d1"), .title = T("same"), .body = T("same"), .source = T("xinhua"),
        .tags = { T("xinhua"), T("same") }, .n_tags = 2,
        .json = T("{\"id\":\"d1\",\"title\":\"same\",\"body\":\"same\",\"source\":\"xinhua\","
                  "\"tags\":[\"xinhua\",\"same\"]}") },
      "\1\2\3\4\7\10" },
    { "body before title, both equal",
      { .title = T("same"), .body = T("same"),
        .json = T("{\"body\": \"same\", \"title\": \"same\"}") },
      "\2\3" },
    { "two equal tags",
      { .id = T("d2"), .tags = { T("a"), T("a"), T("b") }, .n_tags = 3,
        .json = T("{\"id\":\"d2\",\"tags\":[\"a\",\"a\",\"b\"]}") },
      "\1\7\10\11" },
    { "id equal to title, and once more in another key",
      { .id = T("x"), .title = T("x"), .json = T("{\"id\":\"x\",\"title\":\"x\",\"alias\":\"x\"}") },
      "\1\2" },
    { "a value quoted inside another value",
      { .title = T("a"), .body = T("quote \"a\" here"),
        .json = T("{\"title\":\"a\",\"body\":\"quote \\\"a\\\" here\"}") },
      "\2\3" },
    { "values that are also keys",
      { .id = T("x"), .title = T("title"), .body = T("id"), .source = T("body"),
        .tags = { T("tags"), T("source") }, .n_tags = 2,
        .json = T("{\"id\":\"x\",\"title\":\"title\",\"body\":\"id\",\"source\":\"body\","
                  "\"tags\":[\"tags\",\"source\"]}") },
      "\1\2\3\4\7\10" },
    { "values that are keys written later",
      { .title = T("body"), .body = T("title"),
        .json = T("{\"title\" : \"body\", \"body\" : \"title\"}") },
      "\2\3" },
    { "a value that is a nested key",
      { .title = T("title"), .json = T("{\"meta\":{\"title\":\"t\"},\"title\":\"title\"}") },
      "\2" },
    { "the usual escapes",
      { .title = T("say \"hi\""), .body = T("line1\nline2\ttab\r\b\f end\\"),
        .source = T("ctl\x01\x1f\x7f"), .url = T("a/b"), .id = T("\\\""),
        .tags = { T("中文"), T("café"), T("emoji 😀") }, .n_tags = 3,
        .json = T("{\"id\":\"\\\\\\\"\",\"title\":\"say \\\"hi\\\"\","
                  "\"body\":\"line1\\nline2\\ttab\\r\\b\\f end\\\\\","
                  "\"source\":\"ctl\\u0001\\u001f\x7f\",\"url\":\"a/b\","
                  "\"tags\":[\"中文\",\"café\",\"emoji 😀\"]}") },
      "\1\2\3\4\6\7\10\11" },
    { "a NUL written as \\u0000",
      { .title = T("a\0b"), .json = T("{\"title\":\"a\\u0000b\"}") },
      "\2" },
    { "\\u001F in capitals is not the usual way: kept verbatim",
      { .title = T("\x1f"), .source = T("\x01"),
        .json = T("{\"title\":\"\\u001F\",\"source\":\"\\u0001\"}") },
      "\4" },
    { "other escapes are kept verbatim",
      { .id = T("x"), .title = T("中"), .url = T("http://a/b"), .body = T("é"),
        .source = T("\""), .tags = { T("A"), T("😀") }, .n_tags = 2,
        .json = T("{\"id\":\"x\",\"title\":\"\\u4e2d\",\"url\":\"http:\\/\\/a\\/b\","
                  "\"body\":\"\\u00e9\",\"source\":\"\\u0022\","
                  "\"tags\":[\"\\u0041\",\"\\ud83d\\ude00\"]}") },
      "\1" },
    { "a value written escaped and raw",
      { .title = T("中"), .json = T("{\"title\":\"\\u4e2d\",\"alt\":\"中\"}") },
      NULL },
    { "only the id",
      { .id = T("only"), .json = T("{\"id\":\"only\"}") },
      "\1" },
    { "null title, no tags",
      { .id = T("n"), .json = T("{\"id\":\"n\",\"title\":null,\"tags\":[]}") },
      "\1" },
    { "a field not in the JSON",
      { .id = T("r"), .title = T("T"), .json = T("{\"id\":\"r\"}") },
      "\1" },
    { "empty strings",
      { .id = T("e"), .title = T(""), .body = T(""), .tags = { T("") }, .n_tags = 1,
        .json = T("{\"id\":\"e\",\"title\":\"\",\"body\":\"\",\"tags\":[\"\"]}") },
      "\1\2\3\7" },
    { "a value that looks like a value between two strings",
      { .id = T(","), .title = T("ab:"), .json = T("{\"title\":\"ab:\",\"id\":\",\"}") },
      NULL },
    { "colons and commas as values",
      { .title = T(":"), .body = T(","), .tags = { T(":"), T(",") }, .n_tags = 2,
        .json = T("{\"a\":\":\",\"b\":[\",\",\":\"],\"title\":\":\",\"body\":\",\","
                  "\"tags\":[\":\",\",\"]}") },
      NULL },
    { "a value holding JSON",
      { .title = T("x\",\"title\":\"y"), .body = T("title"),
        .json = T("{\"title\":\"x\\\",\\\"title\\\":\\\"y\",\"body\":\"title\"}") },
      "\2\3" },
    { "not an object",
      { .title = T("a"), .json = T("[\"a\", \"a\"]") },
      NULL },
    { "a truncated JSON",
      { .title = T("a"), .json = T("{\"title\":\"a") },
      NULL },
};

static int cmp_codes(const void *a, const void *b)
{
    return *(const unsigned char *)a - *(const unsigned char *)b;
}

static void test_doc_json_round_trips_byte_for_byte(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof json_cases / sizeof json_cases[0]; i++) {
        struct doc_fields d = json_cases[i].d;
        unsigned char codes[6 + DOC_MAX_TAGS];
        size_t len;

        d.date_s = DOC_DATE_NONE;
        free(round_trip_what(&d, &len, json_cases[i].what));
        size_t n = template_codes(&d, codes, sizeof codes);
        /* a field is referenced at most once, and only when present */
        qsort(codes, n, 1, cmp_codes);
        for (size_t k = 0; k < n; k++) {
            if (k && codes[k] == codes[k - 1])
                fail_msg("%s: code %u twice", json_cases[i].what, codes[k]);
            assert_true(codes[k] >= 1 && codes[k] <= 6 + d.n_tags);
        }
        if (!json_cases[i].codes)
            continue;
        const char *want = json_cases[i].codes;
        if (n != strlen(want) || memcmp(codes, want, n) != 0) {
            char got_s[3 * sizeof codes + 1] = "", want_s[3 * sizeof codes + 1] = "";
            for (size_t k = 0; k < n; k++)
                snprintf(got_s + strlen(got_s), sizeof got_s - strlen(got_s), " %u", codes[k]);
            for (size_t k = 0; want[k]; k++)
                snprintf(want_s + strlen(want_s), sizeof want_s - strlen(want_s), " %u",
                         (unsigned char)want[k]);
            fail_msg("%s: template refers to codes{%s }, want{%s }", json_cases[i].what, got_s,
                     want_s);
        }
    }
}

/* The exact template: keys stay, values become references. */
static void test_doc_json_template_keeps_keys_replaces_values(void **state)
{
    static const char json[] = "{\"id\":\"x\", \"title\" : \"title\",\"body\":\"id\","
                               "\"tags\":[\"tags\", \"body\"],\"n\":1}";
    static const char want[] = "{\"id\":\0\1, \"title\" : \0\2,\"body\":\0\3,"
                               "\"tags\":[\0\7, \0\10],\"n\":1}";
    struct doc_fields d = { .id = T("x"), .title = T("title"), .body = T("id"),
                            .tags = { T("tags"), T("body") }, .n_tags = 2,
                            .date_s = DOC_DATE_NONE, .json = T(json) };
    struct doc_fields got;
    struct xerr err = { 0 };
    size_t len;

    (void)state;
    unsigned char *rec = round_trip(&d, &len);
    assert_int_equal(doc_record_decode(rec, len, &got, &err), XE_OK);
    assert_int_equal(got.json_template.len, sizeof want - 1);
    assert_memory_equal(got.json_template.p, want, sizeof want - 1);
    free(rec);
}

static void test_doc_record_known_encoding(void **state)
{
    static const unsigned char want[] = {
        0x43,                   /* mask: id | title | tags */
        0x02, 'a', 'b',         /* id */
        0x01, 'T',              /* title */
        0x01, 0x01, 't',        /* 1 tag */
        0x20,                   /* template, 32 bytes */
        '{', '"', 'i', 'd', '"', ':', 0x00, 0x01,
        ',', '"', 't', 'i', 't', 'l', 'e', '"', ':', 0x00, 0x02,
        ',', '"', 't', 'a', 'g', 's', '"', ':', '[', 0x00, 0x07, ']', '}',
    };
    struct doc_fields d = { .id = T("ab"), .title = T("T"), .tags = { T("t") }, .n_tags = 1,
                            .date_s = DOC_DATE_NONE,
                            .json = T("{\"id\":\"ab\",\"title\":\"T\",\"tags\":[\"t\"]}") };
    size_t len;

    (void)state;
    unsigned char *rec = round_trip(&d, &len);
    assert_int_equal(len, sizeof want);
    assert_memory_equal(rec, want, sizeof want);
    free(rec);
}

static void test_doc_json_appends(void **state)
{
    struct doc_fields d = { .id = T("a"), .date_s = DOC_DATE_NONE,
                            .json = T("{\"id\":\"a\"}") };
    struct doc_fields got;
    struct xerr err = { 0 };
    struct buf b;
    size_t len;

    (void)state;
    unsigned char *rec = round_trip(&d, &len);
    assert_int_equal(doc_record_decode(rec, len, &got, &err), XE_OK);
    buf_init(&b, REC_MAX_BYTES);
    assert_int_equal(buf_append_str(&b, "pre:"), XE_OK);
    assert_int_equal(doc_json(&got, &b, &err), XE_OK);
    assert_int_equal(doc_json(&got, &b, &err), XE_OK);
    assert_int_equal(b.len, 4 + 2 * d.json.len);
    assert_memory_equal(b.data, "pre:{\"id\":\"a\"}{\"id\":\"a\"}", b.len);
    buf_fini(&b);

    /* Past the buffer's cap: XE_LIMIT, not a crash. */
    for (size_t cap = 0; cap < d.json.len; cap++) {
        struct xerr e = { 0 };
        buf_init(&b, cap);
        int rc = doc_json(&got, &b, &e);
        if (rc == XE_OK || (int)e.code != rc)
            fail_msg("cap %zu: rc %d, err %d, want an error", cap, rc, e.code);
        assert_int_equal(rc, XE_LIMIT);
        buf_fini(&b);
    }
    free(rec);
}

static void test_doc_record_decodes_hand_made_bytes(void **state)
{
    /* mask id|tags, id "ab", 1 tag "t", template {"id":<id>,"t":[<tag 0>],"x":"t"} */
    static const unsigned char rec[] = { 0x41, 0x02, 'a', 'b', 0x01, 0x01, 't', 0x1a,
                                         '{', '"', 'i', 'd', '"', ':', 0x00, 0x01,
                                         ',', '"', 't', '"', ':', '[', 0x00, 0x07, ']',
                                         ',', '"', 'x', '"', ':', '"', 't', '"', '}' };
    static const char want[] = "{\"id\":\"ab\",\"t\":[\"t\"],\"x\":\"t\"}";
    struct xerr err = { 0 };
    struct doc_fields got;
    struct buf b;

    (void)state;
    assert_int_equal(doc_record_decode(rec, sizeof rec, &got, &err), XE_OK);
    assert_text_equal(got.id, txt("ab"));
    assert_null(got.title.p);
    assert_int_equal(got.n_tags, 1);
    assert_text_equal(got.tags[0], txt("t"));
    assert_int_equal(got.json.len, 0);
    assert_int_equal(got.json_template.len, 0x1a);
    assert_ptr_equal(got.json_template.p, (const char *)rec + 8);
    buf_init(&b, REC_MAX_BYTES);
    assert_int_equal(doc_json(&got, &b, &err), XE_OK);
    assert_int_equal(b.len, sizeof want - 1);
    assert_memory_equal(b.data, want, sizeof want - 1);
    buf_fini(&b);
}

/* A record of id "ab", one tag "t" and the given template, made by hand. */
static size_t hand_made_record(unsigned char *out, size_t cap, const char *tmpl, size_t tmpl_len)
{
    static const unsigned char head[] = { 0x41, 0x02, 'a', 'b', 0x01, 0x01, 't' };

    assert_true(tmpl_len < 128 && sizeof head + 1 + tmpl_len <= cap);
    memcpy(out, head, sizeof head);
    out[sizeof head] = (unsigned char)tmpl_len;
    memcpy(out + sizeof head + 1, tmpl, tmpl_len);
    return sizeof head + 1 + tmpl_len;
}

/* decode, then doc_json: one of them must say XE_CORRUPT. */
static void expect_template_corrupt(const unsigned char *rec, size_t len, const char *what)
{
    struct xerr err = { 0 };
    struct doc_fields got;
    struct buf b;

    int rc = doc_record_decode(rec, len, &got, &err);
    if (rc == XE_OK) {
        buf_init(&b, REC_MAX_BYTES);
        rc = doc_json(&got, &b, &err);
        buf_fini(&b);
    }
    if (rc != XE_CORRUPT || err.code != XE_CORRUPT)
        fail_msg("%s: rc %d, err %d, want XE_CORRUPT", what, rc, err.code);
    assert_true(strlen(err.msg) > 0);
}

static void test_doc_json_bad_field_code_is_corrupt(void **state)
{
    static const struct {
        const char *what;
        const char *tmpl;
        size_t len;
    } cases[] = {
        { "code 0", "{\0\0}", 4 },
        { "NUL as the last byte", "{}\0", 3 },
        { "NUL alone", "\0", 1 },
        { "absent field (title)", "[\0\2]", 4 },
        { "absent field (url)", "[\0\6]", 4 },
        { "tag past n_tags", "[\0\7,\0\10]", 7 },
        { "tag past DOC_MAX_TAGS", "[\0\x47]", 4 },
        { "code 255", "[\0\xff]", 4 },
        { "good, then bad", "[\0\1,\0\0]", 7 },
    };
    unsigned char rec[160];

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = hand_made_record(rec, sizeof rec, cases[i].tmpl, cases[i].len);
        /* an exact-size copy, so ASan sees a read past the end */
        unsigned char *copy = malloc(len);
        assert_non_null(copy);
        memcpy(copy, rec, len);
        expect_template_corrupt(copy, len, cases[i].what);
        free(copy);
    }

    /* The same through the encoder, which writes a decoded template as it is. */
    struct doc_fields d = { .id = T("ab"), .tags = { T("t") }, .n_tags = 1,
                            .date_s = DOC_DATE_NONE, .json_template = T("{\"a\":\0\3}") };
    struct buf b;
    buf_init(&b, REC_MAX_BYTES);
    assert_int_equal(doc_record_encode(&d, &b), XE_OK);
    expect_template_corrupt(b.data, b.len, "encoded template with body absent");
    buf_fini(&b);

    /* The highest code is fine with DOC_MAX_TAGS tags, one more is not. */
    char names[DOC_MAX_TAGS][8];
    static const char top_ok[] = "[\0\x46]", top_bad[] = "[\0\x47]";
    struct doc_fields m = { .date_s = DOC_DATE_NONE, .n_tags = DOC_MAX_TAGS };
    struct doc_fields got;
    struct xerr err = { 0 };
    for (size_t i = 0; i < DOC_MAX_TAGS; i++) {
        snprintf(names[i], sizeof names[i], "t%zu", i);
        m.tags[i] = txt(names[i]);
    }
    m.json_template = (struct text)T(top_ok);
    buf_init(&b, REC_MAX_BYTES);
    assert_int_equal(doc_record_encode(&m, &b), XE_OK);
    assert_int_equal(doc_record_decode(b.data, b.len, &got, &err), XE_OK);
    struct buf j;
    buf_init(&j, REC_MAX_BYTES);
    assert_int_equal(doc_json(&got, &j, &err), XE_OK);
    assert_int_equal(j.len, 7);
    assert_memory_equal(j.data, "[\"t63\"]", 7);
    buf_fini(&j);
    buf_reset(&b);
    m.json_template = (struct text)T(top_bad);
    assert_int_equal(doc_record_encode(&m, &b), XE_OK);
    expect_template_corrupt(b.data, b.len, "code 71 with 64 tags");
    buf_fini(&b);
}

/* ---- damage ---- */

static const struct doc_fields damage_doc = {
    .id = T("news-0002"), .title = T("标题"), .body = T("正文 \"q\""),
    .source = T("src"), .date = T("2023-04-29"), .url = T("u"),
    .tags = { T("a"), T("src") }, .n_tags = 2,
    .date_s = DOC_DATE_NONE,
    .json = T("{\"id\":\"news-0002\",\"title\":\"标题\",\"body\":\"正文 \\\"q\\\"\","
              "\"source\":\"src\",\"date\":\"2023-04-29\",\"url\":\"u\",\"tags\":[\"a\",\"src\"],"
              "\"x\":1}"),
};

static void test_doc_record_truncated_is_corrupt(void **state)
{
    size_t len;

    (void)state;
    unsigned char *rec = round_trip(&damage_doc, &len);
    for (size_t cut = 0; cut < len; cut++) {
        /* A copy of exactly cut bytes, so ASan sees any read past it. */
        unsigned char *part = malloc(cut ? cut : 1);
        struct xerr err = { 0 };
        struct doc_fields got;
        assert_non_null(part);
        memcpy(part, rec, cut);
        assert_int_equal(doc_record_decode(part, cut, &got, &err), XE_CORRUPT);
        assert_int_equal(err.code, XE_CORRUPT);
        assert_true(strlen(err.msg) > 0);
        free(part);
    }
    free(rec);
}

static void test_doc_record_flipped_bytes_never_crash(void **state)
{
    static const unsigned char masks[] = { 0x01, 0x02, 0x40, 0x80, 0xff };
    size_t len;

    (void)state;
    unsigned char *rec = round_trip(&damage_doc, &len);
    unsigned char *copy = malloc(len);
    assert_non_null(copy);
    for (size_t at = 0; at < len; at++) {
        for (size_t m = 0; m <= sizeof masks; m++) {
            struct xerr err = { 0 };
            struct doc_fields got;
            struct buf b;
            memcpy(copy, rec, len);
            if (m == sizeof masks)
                copy[at] = 0;
            else
                copy[at] ^= masks[m];
            int rc = doc_record_decode(copy, len, &got, &err);
            if (rc != XE_OK) {
                assert_int_equal(rc, XE_CORRUPT);
                continue;
            }
            buf_init(&b, REC_MAX_BYTES);
            rc = doc_json(&got, &b, &err);
            if (rc != XE_OK && rc != XE_CORRUPT)
                fail_msg("byte %zu mask %zu: doc_json rc %d", at, m, rc);
            buf_reset(&b);
            /* whatever decoded writes back to the same fields and template */
            struct doc_fields again;
            assert_int_equal(doc_record_encode(&got, &b), XE_OK);
            assert_int_equal(doc_record_decode(b.data, b.len, &again, &err), XE_OK);
            got.json = (struct text){ 0 };
            assert_fields_equal(&again, &got);
            assert_text_equal(again.json_template, got.json_template);
            buf_fini(&b);
        }
    }
    free(copy);
    free(rec);
}

static void test_doc_record_trailing_bytes_are_corrupt(void **state)
{
    struct doc_fields d = { .id = txt("x"), .date_s = DOC_DATE_NONE, .json = txt("{}") };
    struct xerr err = { 0 };
    struct doc_fields got;
    struct buf b;

    (void)state;
    buf_init(&b, REC_MAX_BYTES);
    assert_int_equal(doc_record_encode(&d, &b), XE_OK);
    assert_int_equal(buf_append_byte(&b, 0), XE_OK);
    assert_int_equal(doc_record_decode(b.data, b.len, &got, &err), XE_CORRUPT);
    buf_fini(&b);
}

static void test_doc_record_bad_headers_are_corrupt(void **state)
{
    static const struct {
        const char *what;
        unsigned char bytes[8];
        size_t len;
    } cases[] = {
        { "unknown mask bit", { 0x80, 0x01, 0x00 }, 3 },            /* mask 128 */
        { "mask varint runs off", { 0xff }, 1 },
        { "id longer than the record", { 0x01, 0x05, 'a', 'b', 0x00 }, 5 },
        { "too many tags", { 0x40, DOC_MAX_TAGS + 1, 0x00 }, 3 },
        { "tag count but no tags", { 0x40, 0x02, 0x01, 'a' }, 4 },
        { "template length past the end", { 0x00, 0x03, '{', '}' }, 4 },
        { "no template length", { 0x00 }, 1 },
        { "template length runs off", { 0x00, 0x80 }, 2 },
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct xerr err = { 0 };
        struct doc_fields got;
        int rc = doc_record_decode(cases[i].bytes, cases[i].len, &got, &err);
        if (rc != XE_CORRUPT || err.code != XE_CORRUPT)
            fail_msg("%s: got rc %d, err %d, want XE_CORRUPT", cases[i].what, rc, err.code);
    }
}

/* ---- dates ---- */

static const struct {
    const char *text;
    int64_t epoch_s;
} good_dates[] = {
    { "2023-04-29", 1682726400 },
    { "2023-04-29T08:00:00Z", 1682755200 },
    { "2023-04-29T08:00:00+08:00", 1682726400 },
    { "2023-04-29T08:00:00.123-05:30", 1682775000 },
    { "2023-04-29t08:00:00z", 1682755200 },
    { "2023-04-29 08:00:00Z", 1682755200 },
    { "2023-04-29T08:00:00+00:00", 1682755200 },
    { "2023-04-29T08:00:00-00:00", 1682755200 },
    { "2023-04-29T08:00:00.5Z", 1682755200 },
    { "1970-01-01", 0 },
    { "1970-01-01T00:00:00Z", 0 },
    { "1969-12-31", -86400 },
    { "1970-01-01T00:00:00+01:00", -3600 },
    { "2024-02-29", 1709164800 },
    { "2000-02-29", 951782400 },
    { "1900-03-01", -2203891200 },
    { "2016-12-31T23:59:59Z", 1483228799 },
    { "2016-12-31T23:59:60Z", 1483228800 }, /* a leap second, as RFC 3339 allows */
};

static const char *const bad_dates[] = {
    "2023-02-30",
    "2023-13-01",
    "2023-00-10",
    "2023-04-00",
    "2023-04-31",
    "2023-02-29",          /* not a leap year */
    "1900-02-29",          /* nor is 1900 */
    "2023-04-29T25:00:00Z",
    "2023-04-29T24:00:00Z",
    "2023-04-29T08:60:00Z",
    "2023-04-29T08:00:61Z",
    "2023-04-29T08:00:00", /* RFC 3339 needs an offset */
    "2023-04-29T08:00:00.Z",
    "2023-04-29T08:00:00.123",
    "2023-04-29T08:00:00+0800",
    "2023-04-29T08:00:00+08",
    "2023-04-29T08:00:00+24:00",
    "2023-04-29T08:00:00+08:60",
    "2023-04-29T08:00:00Z ",
    "2023-04-29T08:00:00ZZ",
    "2023-04-29T08:00Z",
    "2023-04-29T8:00:00Z",
    "2023-04-29X08:00:00Z",
    "2023-04-29 ",
    "2023-04-29x",
    "2023-4-29",
    "23-04-29",
    "2023/04/29",
    "+2023-04-29",
    "abc",
    "",
};

static void test_doc_parse_date_accepts_rfc3339(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof good_dates / sizeof good_dates[0]; i++) {
        const char *s = good_dates[i].text;
        int64_t got = 42;
        if (!doc_parse_date(s, strlen(s), &got))
            fail_msg("\"%s\" rejected", s);
        if (got != good_dates[i].epoch_s)
            fail_msg("\"%s\": got %lld, want %lld", s, (long long)got,
                     (long long)good_dates[i].epoch_s);
    }
}

static void test_doc_parse_date_rejects_bad_dates(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_dates / sizeof bad_dates[0]; i++) {
        int64_t got = 42;
        if (doc_parse_date(bad_dates[i], strlen(bad_dates[i]), &got))
            fail_msg("\"%s\" accepted as %lld", bad_dates[i], (long long)got);
        assert_int_equal(got, 42); /* untouched on failure */
    }
}

static void test_doc_parse_date_reads_only_len_bytes(void **state)
{
    static const char s[] = "2023-04-29T08:00:00Zjunk";
    int64_t got = 0;

    (void)state;
    assert_true(doc_parse_date(s, 20, &got));
    assert_int_equal(got, 1682755200);
    assert_false(doc_parse_date(s, sizeof s - 1, &got));
    assert_true(doc_parse_date(s, 10, &got)); /* the date alone */
    assert_int_equal(got, 1682726400);
    assert_false(doc_parse_date(s, 9, &got));

    /* An exact-size heap copy without a NUL, so ASan catches a read past it. */
    for (size_t i = 0; i < sizeof good_dates / sizeof good_dates[0]; i++) {
        size_t n = strlen(good_dates[i].text);
        char *copy = malloc(n);
        assert_non_null(copy);
        memcpy(copy, good_dates[i].text, n);
        assert_true(doc_parse_date(copy, n, &got));
        assert_int_equal(got, good_dates[i].epoch_s);
        for (size_t cut = 0; cut < n; cut++)
            (void)doc_parse_date(copy, cut, &got); /* any answer, no overread */
        free(copy);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doc_record_round_trips_all_fields),
        cmocka_unit_test(test_doc_record_round_trips_absent_fields),
        cmocka_unit_test(test_doc_record_keeps_empty_strings_apart_from_absent),
        cmocka_unit_test(test_doc_record_round_trips_max_tags),
        cmocka_unit_test(test_doc_record_round_trips_binary_and_long_fields),
        cmocka_unit_test(test_doc_record_unparsable_date_decodes_as_none),
        cmocka_unit_test(test_doc_json_round_trips_byte_for_byte),
        cmocka_unit_test(test_doc_json_template_keeps_keys_replaces_values),
        cmocka_unit_test(test_doc_record_known_encoding),
        cmocka_unit_test(test_doc_json_appends),
        cmocka_unit_test(test_doc_record_decodes_hand_made_bytes),
        cmocka_unit_test(test_doc_json_bad_field_code_is_corrupt),
        cmocka_unit_test(test_doc_record_truncated_is_corrupt),
        cmocka_unit_test(test_doc_record_flipped_bytes_never_crash),
        cmocka_unit_test(test_doc_record_trailing_bytes_are_corrupt),
        cmocka_unit_test(test_doc_record_bad_headers_are_corrupt),
        cmocka_unit_test(test_doc_parse_date_accepts_rfc3339),
        cmocka_unit_test(test_doc_parse_date_rejects_bad_dates),
        cmocka_unit_test(test_doc_parse_date_reads_only_len_bytes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
