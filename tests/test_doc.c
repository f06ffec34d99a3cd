/*
 * Tests of index/doc.h: stored document records (encode, decode, damage) and
 * date parsing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/buf.h"
#include "index/doc.h"
#include "index/error.h"
#include "index/limits.h"

#define REC_MAX_BYTES (1u << 20)

static struct text txt(const char *s)
{
    return (struct text){ .p = s, .len = strlen(s) };
}

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
    /* The JSON is always stored: absent in the input reads back as empty. */
    assert_non_null(got->json.p);
    assert_int_equal(got->json.len, want->json.len);
    if (want->json.len)
        assert_memory_equal(got->json.p, want->json.p, want->json.len);
}

/* Encodes d, checks it decodes to the same fields, returns the record (caller frees). */
static unsigned char *round_trip(const struct doc_fields *d, size_t *len_bytes)
{
    struct buf b;
    struct doc_fields got;
    struct xerr err = { 0 };

    buf_init(&b, REC_MAX_BYTES);
    assert_int_equal(doc_record_encode(d, &b), XE_OK);
    memset(&got, 0xa5, sizeof got); /* decode must set every member */
    assert_int_equal(doc_record_decode(b.data, b.len, &got, &err), XE_OK);
    assert_int_equal(err.code, XE_OK);
    assert_fields_equal(&got, d);
    return buf_steal(&b, len_bytes);
}

static void test_doc_record_round_trips_all_fields(void **state)
{
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
        .json = txt("{\"id\":\"news-0001\"}"),
    };
    struct xerr err = { 0 };
    struct doc_fields got;
    size_t len;

    (void)state;
    unsigned char *rec = round_trip(&d, &len);
    assert_int_equal(doc_record_decode(rec, len, &got, &err), XE_OK);
    assert_int_equal(got.date_s, 1682726400); /* the date field is parsed on decode */
    /* Decoded views point into the record, not into the source strings. */
    const unsigned char *id_p = (const unsigned char *)got.id.p;
    assert_true(id_p >= rec && id_p < rec + len);
    free(rec);
}

static void test_doc_record_round_trips_absent_fields(void **state)
{
    struct doc_fields d = { .id = txt("only-id"), .date_s = DOC_DATE_NONE,
                            .json = txt("{}") };
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

    /* Nothing at all, not even the JSON. */
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
}

static void test_doc_record_round_trips_max_tags(void **state)
{
    char names[DOC_MAX_TAGS][8];
    struct doc_fields d = { .id = txt("t"), .date_s = DOC_DATE_NONE, .json = txt("{}") };
    size_t len;

    (void)state;
    for (size_t i = 0; i < DOC_MAX_TAGS; i++) {
        snprintf(names[i], sizeof names[i], "tag%zu", i);
        d.tags[i] = txt(names[i]);
    }
    d.n_tags = DOC_MAX_TAGS;
    free(round_trip(&d, &len));
}

static void test_doc_record_round_trips_binary_and_long_fields(void **state)
{
    size_t body_len = 100000;
    char *body = malloc(body_len);
    static const char with_nul[] = { 'a', '\0', 'b', '\xff' };
    struct doc_fields d = { .id = txt("long"), .date_s = DOC_DATE_NONE, .json = txt("{}") };
    size_t len;

    (void)state;
    assert_non_null(body);
    for (size_t i = 0; i < body_len; i++)
        body[i] = (char)('a' + i % 26);
    d.body = (struct text){ body, body_len };
    d.title = (struct text){ with_nul, sizeof with_nul };
    free(round_trip(&d, &len));
    free(body);
}

static void test_doc_record_unparsable_date_decodes_as_none(void **state)
{
    struct doc_fields d = { .id = txt("d"), .date = txt("yesterday"),
                            .date_s = DOC_DATE_NONE, .json = txt("{}") };
    struct xerr err = { 0 };
    struct doc_fields got;
    size_t len;

    (void)state;
    unsigned char *rec = round_trip(&d, &len);
    assert_int_equal(doc_record_decode(rec, len, &got, &err), XE_OK);
    assert_true(got.date_s == DOC_DATE_NONE);
    free(rec);
}

static void test_doc_record_truncated_is_corrupt(void **state)
{
    struct doc_fields d = {
        .id = txt("news-0002"), .title = txt("标题"), .body = txt("正文"),
        .source = txt("src"), .date = txt("2023-04-29"), .url = txt("u"),
        .tags = { txt("a"), txt("bb") }, .n_tags = 2,
        .date_s = DOC_DATE_NONE, .json = txt("{\"x\":1}"),
    };
    size_t len;

    (void)state;
    unsigned char *rec = round_trip(&d, &len);
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
        { "JSON length past the end", { 0x00, 0x03, '{', '}' }, 4 },
        { "no JSON length", { 0x00 }, 1 },
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

static void test_doc_record_decodes_hand_made_bytes(void **state)
{
    /* mask id|tags, id "ab", 1 tag "t", JSON "{}" */
    static const unsigned char rec[] = { 0x41, 0x02, 'a', 'b', 0x01, 0x01, 't', 0x02, '{', '}' };
    struct xerr err = { 0 };
    struct doc_fields got;

    (void)state;
    assert_int_equal(doc_record_decode(rec, sizeof rec, &got, &err), XE_OK);
    assert_text_equal(got.id, txt("ab"));
    assert_null(got.title.p);
    assert_int_equal(got.n_tags, 1);
    assert_text_equal(got.tags[0], txt("t"));
    assert_text_equal(got.json, txt("{}"));
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
        cmocka_unit_test(test_doc_record_truncated_is_corrupt),
        cmocka_unit_test(test_doc_record_trailing_bytes_are_corrupt),
        cmocka_unit_test(test_doc_record_bad_headers_are_corrupt),
        cmocka_unit_test(test_doc_record_decodes_hand_made_bytes),
        cmocka_unit_test(test_doc_parse_date_accepts_rfc3339),
        cmocka_unit_test(test_doc_parse_date_rejects_bad_dates),
        cmocka_unit_test(test_doc_parse_date_reads_only_len_bytes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
