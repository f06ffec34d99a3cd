/*
 * End-to-end tests of the write routes (API.md, "Documents API"): PUT, POST
 * and DELETE /documents over a real socket, against a server started in
 * this process on 127.0.0.1 port 0 over a fresh mkdtemp() index per test.
 *
 * What is checked besides status codes and JSON bodies: that a write
 * becomes visible to searches (polled every 20 ms, with a bound that only
 * detects a hang: the one-second promise of API.md is a figure of `make
 * bench`, bench_writes, not a pass/fail here), that a replaced document is
 * never seen twice or not at all,
 * that writes survive server_stop() and a reopen of the folder, the API
 * key on writes only, and many clients writing at once.
 *
 * Requests go through the blocking HTTP/1.1 client of tests/httpc.h; it
 * never asserts, so the threads of the concurrency test can use it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "index/base/error.h"
#include "index/index.h"
#include "index/base/limits.h"
#include "server/http.h"
#include "tests/httpc.h"
#include "tests/testserver.h"
#include "tests/testutil.h"

#define TEST_SERVER_IO_TIMEOUT_S 10             /* a hung server fails the test, not the run */
#define TARGET_MAX_BYTES 4096
#define POLL_SLEEP_MS 20
#define API_KEY "s3cret"
#define WRITER_THREADS 16
#define WRITES_PER_THREAD 20
#define UPDATES_PER_THREAD 5             /* the last PUTs of a thread replace its first docs */

/* ---- the server under test: one per test, over its own folder (tests/testserver.h) ---- */

struct fixture {
    struct test_server ts;
    const char *api_key; /* the server's, NULL for none */
    const char *auth;    /* the Authorization header writes send, "" for none */
};

/* Stops f's server and serves its folder again, as a restart of xun does. */
static int fixture_restart(struct fixture *f)
{
    return test_server_restart(&f->ts, &(struct test_server_options){ .api_key = f->api_key });
}

static int setup_with_key(void **state, const char *api_key)
{
    struct fixture *f = calloc(1, sizeof *f);

    if (!f)
        return -1;
    f->api_key = api_key;
    f->auth = "";
    *state = f;
    return test_server_start(&f->ts, NULL, &(struct test_server_options){ .api_key = api_key });
}

static int setup(void **state)
{
    return setup_with_key(state, NULL);
}

static int setup_api_key(void **state)
{
    return setup_with_key(state, API_KEY);
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    if (!f)
        return 0;
    test_server_fini(&f->ts);
    free(f);
    return 0;
}

/* ---- cmocka helpers ---- */

/* One request with the fixture's Authorization; checks status, returns the JSON body. */
static json_t *request_json(const struct fixture *f, const char *method, const char *target,
                            const char *body, size_t body_len, int want_status)
{
    return test_request_json(f->ts.port, method, target, f->auth, body, body_len, want_status);
}

static void expect_error(const struct fixture *f, const char *method, const char *target,
                         const char *body, size_t body_len, int status, const char *code)
{
    json_t *v = request_json(f, method, target, body, body_len, status);
    test_assert_error_body(v, code);
    json_decref(v);
}

static void document_target(const char *id, char *target, size_t cap)
{
    char encoded[TARGET_MAX_BYTES / 2];

    assert_true(httpc_url_encode(id, encoded, sizeof encoded));
    int n = snprintf(target, cap, "/documents/%s", encoded);
    assert_true(n > 0 && (size_t)n < cap);
}

/* PUT /documents/{id} with body; checks the status and {"id", "result"}. */
static void put_doc(const struct fixture *f, const char *id, const char *body, int want_status)
{
    char target[TARGET_MAX_BYTES];

    document_target(id, target, sizeof target);
    json_t *v = request_json(f, "PUT", target, body, strlen(body), want_status);
    assert_string_equal(json_string_value(json_object_get(v, "id")), id);
    assert_string_equal(json_string_value(json_object_get(v, "result")),
                        want_status == 201 ? "created" : "updated");
    json_decref(v);
}

static void delete_doc(const struct fixture *f, const char *id)
{
    char target[TARGET_MAX_BYTES];

    document_target(id, target, sizeof target);
    json_t *v = request_json(f, "DELETE", target, NULL, 0, 200);
    assert_string_equal(json_string_value(json_object_get(v, "id")), id);
    assert_string_equal(json_string_value(json_object_get(v, "result")), "deleted");
    json_decref(v);
}

/* GET /documents/{id}: the stored JSON when want_status is 200, else the error checked. */
static json_t *get_doc(const struct fixture *f, const char *id, int want_status)
{
    char target[TARGET_MAX_BYTES];

    document_target(id, target, sizeof target);
    json_t *v = request_json(f, "GET", target, NULL, 0, want_status);
    if (want_status == 404) {
        test_assert_error_body(v, "not_found");
        json_decref(v);
        return NULL;
    }
    return v;
}

/*
 * Polls GET /documents/{id} every TEST_SERVER_POLL_MS until it answers want_status
 * (TEST_HANG_MS only detects a hang); the stored JSON when that is 200. GET
 * reads the published snapshot, like a search: a write shows there at the
 * next refresh, not at once (see the report in test_put_creates...).
 */
static json_t *wait_doc(const struct fixture *f, const char *id, int want_status)
{
    char target[TARGET_MAX_BYTES];
    struct httpc_reply r;

    document_target(id, target, sizeof target);
    test_wait_get(f->ts.port, target, want_status, NULL, true, &r);
    test_assert_json_content_type(&r);
    json_t *v = test_parse_body(&r);
    httpc_reply_fini(&r);
    if (want_status == 404) {
        test_assert_error_body(v, "not_found");
        json_decref(v);
        return NULL;
    }
    return v;
}

/* GET /search for q with an exact total; the JSON body. */
static json_t *search(const struct fixture *f, const char *q)
{
    char encoded[TARGET_MAX_BYTES / 2];
    char target[TARGET_MAX_BYTES];

    assert_true(httpc_url_encode(q, encoded, sizeof encoded));
    int n = snprintf(target, sizeof target, "/search?q=%s&exact_total=1&highlight=0&limit=100",
                     encoded);
    assert_true(n > 0 && (size_t)n < sizeof target);
    return request_json(f, "GET", target, NULL, 0, 200);
}

static json_int_t search_total(const struct fixture *f, const char *q)
{
    json_t *v = search(f, q);
    json_int_t total = test_json_int_field(v, "total");
    json_decref(v);
    return total;
}

/*
 * Polls /search every POLL_SLEEP_MS until q has want_total matches
 * (TEST_HANG_MS only detects a hang, it is no speed limit). When also_q is
 * set, every answer on the way must give it also_total matches: a change is
 * published at once, never half.
 */
static void wait_total_also(const struct fixture *f, const char *q, json_int_t want_total,
                            const char *also_q, json_int_t also_total)
{
    uint64_t start = test_now_ms();
    json_int_t total = -1;

    for (;;) {
        total = search_total(f, q);
        if (also_q) {
            json_int_t also = search_total(f, also_q);
            if (also != also_total)
                fail_msg("while waiting for \"%s\": \"%s\" has %lld matches, want %lld", q,
                         also_q, (long long)also, (long long)also_total);
        }
        if (total == want_total)
            return;
        if (test_now_ms() - start > TEST_HANG_MS)
            break;
        test_sleep_ms(POLL_SLEEP_MS);
    }
    fail_msg("\"%s\": %lld matches after %d ms (hung?), want %lld", q, (long long)total,
             TEST_HANG_MS, (long long)want_total);
}

static void wait_total(const struct fixture *f, const char *q, json_int_t want_total)
{
    wait_total_also(f, q, want_total, NULL, 0);
}

/* Asserts that the only hit for q is id. */
static void assert_only_hit(const struct fixture *f, const char *q, const char *id)
{
    json_t *v = search(f, q);
    json_t *hits = json_object_get(v, "hits");
    assert_int_equal(test_json_int_field(v, "total"), 1);
    assert_int_equal(json_array_size(hits), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(hits, 0), "id")), id);
    json_decref(v);
}

static json_t *post_docs(const struct fixture *f, const char *body, size_t len)
{
    json_t *v = request_json(f, "POST", "/documents", body, len, 200);
    assert_true(json_is_object(v));
    assert_true(json_is_array(json_object_get(v, "errors")));
    return v;
}

/* The "line" of each entry of "errors", joined with spaces; checks each has a message. */
static void error_lines(json_t *v, char *out, size_t cap)
{
    json_t *errors = json_object_get(v, "errors");
    size_t i, len = 0;
    json_t *e;

    out[0] = '\0';
    json_array_foreach(errors, i, e) {
        const char *message = json_string_value(json_object_get(e, "message"));
        assert_non_null(message);
        assert_true(strlen(message) > 0);
        int n = snprintf(out + len, cap - len, "%s%lld", i ? " " : "",
                         (long long)test_json_int_field(e, "line"));
        assert_true(n > 0 && (size_t)n < cap - len);
        len += (size_t)n;
    }
}

/* ---- PUT ---- */

static void test_put_creates_with_201_then_updates_with_200(void **state)
{
    struct fixture *f = *state;

    put_doc(f, "news-1", "{\"id\":\"news-1\",\"title\":\"first putword\"}", 201);
    put_doc(f, "news-1", "{\"id\":\"news-1\",\"title\":\"second putword\"}", 200);
    put_doc(f, "news-1", "{\"title\":\"third putword\"}", 200);
    /* another id is created again */
    put_doc(f, "news-2", "{\"id\":\"news-2\",\"title\":\"other\"}", 201);
    put_doc(f, "news-2", "{\"id\":\"news-2\",\"title\":\"other\"}", 200);
    wait_total(f, "third", 1);
    assert_int_equal(search_total(f, "putword"), 1);
    json_t *v = get_doc(f, "news-1", 200);
    assert_string_equal(json_string_value(json_object_get(v, "title")), "third putword");
    json_decref(v);
}

static void test_put_body_id_must_equal_path_id(void **state)
{
    static const struct {
        const char *path_id, *body;
    } cases[] = {
        { "a1", "{\"id\":\"a2\",\"title\":\"x\"}" },
        { "a1", "{\"id\":\"a1 \",\"title\":\"x\"}" },
        { "a1", "{\"id\":\"A1\",\"title\":\"x\"}" },
        { "a1", "{\"id\":5,\"title\":\"x\"}" },
        { "a1", "{\"id\":null,\"title\":\"x\"}" },
        { "a1", "{\"id\":\"\",\"title\":\"x\"}" },
        { "新闻", "{\"id\":\"新\",\"title\":\"x\"}" },
    };
    struct fixture *f = *state;
    char target[TARGET_MAX_BYTES];

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        document_target(cases[i].path_id, target, sizeof target);
        expect_error(f, "PUT", target, cases[i].body, strlen(cases[i].body), 400,
                     "bad_request");
        assert_null(get_doc(f, cases[i].path_id, 404));
    }
    json_t *v = request_json(f, "PUT", "/documents/a1", "{\"id\":\"a2\"}", 11, 400);
    const char *message =
        json_string_value(json_object_get(json_object_get(v, "error"), "message"));
    assert_non_null(strstr(message, "id"));
    json_decref(v);
    assert_null(get_doc(f, "a2", 404));
}

static void test_put_without_body_id_stores_the_path_id(void **state)
{
    static const char *const ids[] = { "plain-1", "新闻/2023 第1期", "a+b&c=d?e" };
    struct fixture *f = *state;

    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
        put_doc(f, ids[i], "{\"title\":\"pathidword\",\"extra\":{\"n\":1}}", 201);
        json_t *v = wait_doc(f, ids[i], 200);
        assert_string_equal(json_string_value(json_object_get(v, "id")), ids[i]);
        assert_string_equal(json_string_value(json_object_get(v, "title")), "pathidword");
        /* fields the index does not know are kept as given */
        assert_int_equal(test_json_int_field(json_object_get(v, "extra"), "n"), 1);
        json_decref(v);
    }
    wait_total(f, "pathidword", 3);
    /* the id in the hits is the path's */
    put_doc(f, "only-one", "{\"title\":\"solitaryword\"}", 201);
    wait_total(f, "solitaryword", 1);
    assert_only_hit(f, "solitaryword", "only-one");
}

/* GET /documents/{id} until it answers 200 (TEST_HANG_MS detects a hang); the raw body. */
static char *wait_doc_text(const struct fixture *f, const char *id)
{
    char target[TARGET_MAX_BYTES];
    struct httpc_reply r;

    document_target(id, target, sizeof target);
    test_wait_get(f->ts.port, target, 200, NULL, false, &r);
    char *body = strdup(r.body);
    httpc_reply_fini(&r);
    return body;
}

/*
 * API.md promises any JSON in other fields, stored as given: numbers past
 * what a double or an int64 holds too, by PUT with and without the id in the
 * body, and by POST as lines and as an array.
 */
static void test_numbers_of_any_size_are_stored_as_written(void **state)
{
    static const char with_id[] =
        "{\"id\":\"num-1\",\"title\":\"numbers\",\"n\":1e999,"
        "\"big\":123456789012345678901234567890,\"neg\":-1E+400,\"small\":1e-999}";
    static const char without_id[] = "{\"title\":\"numbers\", \"n\": -99999999999999999999999}";
    static const char array[] =
        "[ {\"id\":\"num-3\",\"n\":2e400,\"s\":\"a\\\"]b\"} ,"
        "{\"id\":\"num-4\",\"a\":[1,[2e999],{\"x\":3}]}]";
    static const char line[] = "{\"id\":\"num-5\",\"n\":18446744073709551616}\n";
    struct fixture *f = *state;

    put_doc(f, "num-1", with_id, 201);
    put_doc(f, "num-2", without_id, 201);
    json_decref(post_docs(f, array, strlen(array)));
    json_decref(post_docs(f, line, strlen(line)));
    static const struct {
        const char *id, *want;
    } stored[] = {
        { "num-1", with_id },
        { "num-2", "{\"id\":\"num-2\",\"title\":\"numbers\", \"n\": -99999999999999999999999}" },
        { "num-3", "{\"id\":\"num-3\",\"n\":2e400,\"s\":\"a\\\"]b\"}" },
        { "num-4", "{\"id\":\"num-4\",\"a\":[1,[2e999],{\"x\":3}]}" },
        { "num-5", "{\"id\":\"num-5\",\"n\":18446744073709551616}" },
    };
    for (size_t i = 0; i < sizeof stored / sizeof *stored; i++) {
        char *text = wait_doc_text(f, stored[i].id);
        assert_string_equal(text, stored[i].want);
        free(text);
    }
    /* a number that is not JSON is still refused, with its place */
    expect_error(f, "PUT", "/documents/num-6", "{\"n\": 1e}", 9, 400, "bad_request");
}

static void test_put_bad_bodies_are_400_json_and_store_nothing(void **state)
{
    static const struct {
        const char *body;
        size_t len; /* 0: strlen */
    } cases[] = {
        { "", 0 },
        { "{", 0 },
        { "{\"title\":\"x\",}", 0 },
        { "{\"title\":\"x\"} trailing", 0 },
        { "[]", 0 },
        { "[{\"title\":\"x\"}]", 0 },
        { "\"text\"", 0 },
        { "42", 0 },
        { "null", 0 },
        { "{\"title\":\"x\",\"date\":\"yesterday\"}", 0 },
        { "{\"title\":\"x\",\"date\":\"2023-13-01\"}", 0 },
        { "{\"title\":\"x\",\"date\":\"2023-02-30\"}", 0 },
        { "{\"title\":\"x\",\"date\":\"2023-04-29T10:00:00\"}", 0 }, /* no offset */
        { "{\"title\":\"x\",\"date\":20230429}", 0 },
        { "{\"title\":\"x\",\"tags\":[\"a\",1]}", 0 },
        { "{\"title\":\"x\",\"tags\":[[\"a\"]]}", 0 },
        { "{\"title\":\"x\",\"tags\":\"a\"}", 0 },
        { "{\"title\":5}", 0 },
        { "{\"body\":[\"x\"]}", 0 },
        { "{\"source\":{}}", 0 },
        { "{\"title\":\"a\\u0000b\"}", 0 },
        { "{\"title\":\"x\",\"title\":\"y\"}", 0 },
        { "{\"title\":\"\xff\xfe\"}", 0 },             /* invalid UTF-8 */
        { "{\"title\":\"\xe6\x99\"}", 0 },             /* truncated UTF-8 */
        { "{\"title\":\"\xed\xa0\x80\"}", 0 },         /* a UTF-16 surrogate */
        { "{\"title\":\"\xc0\xaf\"}", 0 },             /* overlong */
        { "{\"title\":\"x\"}\0", 14 },                 /* a NUL after the object */
    };
    struct fixture *f = *state;

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].body);
        expect_error(f, "PUT", "/documents/bad", cases[i].body, len, 400, "bad_request");
    }
    assert_null(get_doc(f, "bad", 404));
    /* the server is fine and writes still work */
    put_doc(f, "bad", "{\"title\":\"x\",\"date\":\"2023-04-29T10:00:00+08:00\",\"tags\":[]}",
            201);
}

static void test_put_body_over_8_mib_is_413(void **state)
{
    struct fixture *f = *state;
    size_t len = DOC_MAX_BYTES;
    char *body = malloc(len);
    char head[256], value[32];
    struct httpc_conn c;
    struct httpc_reply r;

    assert_non_null(body);
    /* refused on its head alone, before any body byte is sent, and the connection closed */
    snprintf(head, sizeof head,
             "PUT /documents/huge HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
             (size_t)DOC_MAX_BYTES + 1);
    assert_true(httpc_open(&c, f->ts.port, TEST_SERVER_IO_TIMEOUT_S));
    assert_true(httpc_send(&c, head, strlen(head)));
    assert_true(httpc_read_reply(&c, &r));
    assert_int_equal(r.status, 413);
    assert_true(httpc_reply_header(&r, "Connection", value, sizeof value));
    assert_string_equal(value, "close");
    json_t *error = test_parse_body(&r);
    test_assert_error_body(error, "payload_too_large");
    json_decref(error);
    httpc_reply_fini(&r);
    httpc_close(&c);
    assert_null(get_doc(f, "huge", 404));

    /* exactly the limit is accepted: a small document padded with white space */
    len = DOC_MAX_BYTES;
    memset(body, ' ', len);
    memcpy(body, "{\"title\":\"limitword\"}", 21);
    json_t *v = request_json(f, "PUT", "/documents/at-limit", body, len, 201);
    assert_string_equal(json_string_value(json_object_get(v, "result")), "created");
    json_decref(v);
    free(body);
    wait_total(f, "limitword", 1);
}

/* ---- visibility ---- */

/* A PUT becomes searchable and readable; how fast (API.md: within one second)
 * is measured by `make bench` (bench_writes), not asserted here. */
static void test_put_becomes_searchable(void **state)
{
    struct fixture *f = *state;

    put_doc(f, "vis-1", "{\"title\":\"可见性测试\",\"body\":\"visibleword appears\"}", 201);
    wait_total(f, "visibleword", 1);
    assert_only_hit(f, "visibleword", "vis-1");
    assert_only_hit(f, "可见性", "vis-1");
    /* GET sees it too */
    json_t *v = get_doc(f, "vis-1", 200);
    assert_string_equal(json_string_value(json_object_get(v, "body")), "visibleword appears");
    json_decref(v);
}

static void test_replacing_leaves_exactly_one_version_searchable(void **state)
{
    struct fixture *f = *state;

    /* replaced after the first version was published (it lives in a segment) */
    put_doc(f, "rep-1", "{\"title\":\"replacecommon oldversionword\"}", 201);
    wait_total(f, "oldversionword", 1);
    put_doc(f, "rep-1", "{\"title\":\"replacecommon newversionword\"}", 200);
    /* at every moment: one document with the common word */
    wait_total_also(f, "newversionword", 1, "replacecommon", 1);
    assert_int_equal(search_total(f, "oldversionword"), 0);
    assert_only_hit(f, "replacecommon", "rep-1");

    /* replaced twice before any of it was published */
    put_doc(f, "rep-2", "{\"title\":\"quickcommon quickfirst\"}", 201);
    put_doc(f, "rep-2", "{\"title\":\"quickcommon quicksecond\"}", 200);
    put_doc(f, "rep-2", "{\"title\":\"quickcommon quickthird\"}", 200);
    wait_total(f, "quickthird", 1);
    assert_int_equal(search_total(f, "quickfirst"), 0);
    assert_int_equal(search_total(f, "quicksecond"), 0);
    assert_only_hit(f, "quickcommon", "rep-2");

    /* the replacement can drop fields: a body-less version no longer matches body words */
    put_doc(f, "rep-3", "{\"title\":\"droptitle\",\"body\":\"dropbodyword\"}", 201);
    wait_total(f, "dropbodyword", 1);
    put_doc(f, "rep-3", "{\"title\":\"droptitle\"}", 200);
    wait_total_also(f, "dropbodyword", 0, "droptitle", 1);
    json_t *v = get_doc(f, "rep-3", 200);
    assert_null(json_object_get(v, "body"));
    json_decref(v);
}

/* ---- POST ---- */

static void test_post_json_lines_indexes_good_lines_and_reports_bad_ones(void **state)
{
    static const char body[] =
        "{\"id\":\"p1\",\"title\":\"bulkcommon postone\"}\n"   /* 1 */
        "{\"id\":\"p2\",\"title\":\n"                          /* 2 bad JSON */
        "\n"                                                   /* 3 blank */
        "{\"title\":\"no id here\"}\n"                         /* 4 no id */
        "{\"id\":\"p3\",\"body\":\"x\",\"tags\":[\"a\",1]}\n"  /* 5 bad tag */
        "  {\"id\":\"p4\",\"body\":\"bulkcommon postfour\"}\r\n" /* 6 CRLF, spaces */
        "[1,2]\n"                                              /* 7 not an object */
        "{\"id\":\"p5\",\"date\":\"2023-02-29\"}\n"            /* 8 bad date */
        "{\"id\":\"p1\",\"title\":\"bulkcommon postonev2\"}";  /* 9 p1 again, no final LF */
    struct fixture *f = *state;
    char lines[256];

    json_t *v = post_docs(f, body, sizeof body - 1);
    assert_int_equal(test_json_int_field(v, "indexed"), 3);
    error_lines(v, lines, sizeof lines);
    assert_string_equal(lines, "2 4 5 7 8");
    json_decref(v);

    /* p1's later line wins; p2, p3, p5 are nowhere */
    wait_total(f, "postonev2", 1);
    assert_int_equal(search_total(f, "bulkcommon"), 2);
    assert_int_equal(search_total(f, "postone"), 0);
    assert_only_hit(f, "postfour", "p4");
    json_t *doc = get_doc(f, "p1", 200);
    assert_string_equal(json_string_value(json_object_get(doc, "title")),
                        "bulkcommon postonev2");
    json_decref(doc);
    assert_null(get_doc(f, "p2", 404));
    assert_null(get_doc(f, "p3", 404));
    assert_null(get_doc(f, "p5", 404));
}

static void test_post_json_array_indexes_good_elements(void **state)
{
    static const char body[] =
        "  [{\"id\":\"a1\",\"title\":\"arrayone\"},\n"
        "   7,\n"
        "   {\"title\":\"no id\"},\n"
        "   {\"id\":\"a2\",\"title\":\"arraytwo\",\"date\":\"2023-13-45\"},\n"
        "   {\"id\":\"a3\",\"title\":\"arraythree\",\"date\":\"2023-04-29\",\"tags\":[\"t\"]}]\n";
    struct fixture *f = *state;
    char lines[256];

    json_t *v = post_docs(f, body, sizeof body - 1);
    assert_int_equal(test_json_int_field(v, "indexed"), 2);
    /* for an array, "line" is the element's position, from 1 */
    error_lines(v, lines, sizeof lines);
    assert_string_equal(lines, "2 3 4");
    json_decref(v);
    wait_total(f, "arraythree", 1);
    assert_only_hit(f, "arrayone", "a1");
    assert_int_equal(search_total(f, "arraytwo"), 0);
    assert_null(get_doc(f, "a2", 404));

    /* a broken array is one bad request: nothing of it is indexed */
    static const char broken[] = "[{\"id\":\"b1\",\"title\":\"brokenarray\"},";
    expect_error(f, "POST", "/documents", broken, sizeof broken - 1, 400, "bad_request");
    assert_null(get_doc(f, "b1", 404));

    /* an empty array */
    v = post_docs(f, "[]", 2);
    assert_int_equal(test_json_int_field(v, "indexed"), 0);
    assert_int_equal(json_array_size(json_object_get(v, "errors")), 0);
    json_decref(v);
}

static void test_post_empty_body_indexes_nothing(void **state)
{
    static const char *const bodies[] = { "", "\n", "  \r\n\n\t\n" };
    struct fixture *f = *state;

    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        json_t *v = post_docs(f, bodies[i], strlen(bodies[i]));
        assert_int_equal(test_json_int_field(v, "indexed"), 0);
        assert_int_equal(json_array_size(json_object_get(v, "errors")), 0);
        json_decref(v);
    }
    json_t *v = request_json(f, "GET", "/stats", NULL, 0, 200);
    assert_int_equal(test_json_int_field(v, "documents"), 0);
    json_decref(v);
}

/* ---- DELETE ---- */

static void test_delete_is_200_then_404_and_the_document_is_gone(void **state)
{
    struct fixture *f = *state;

    /* one published (in a segment), one still in memory */
    put_doc(f, "del-old", "{\"title\":\"deletecommon deleteold\"}", 201);
    wait_total(f, "deleteold", 1);
    put_doc(f, "del-new", "{\"title\":\"deletecommon deletenew\"}", 201);
    put_doc(f, "keep", "{\"title\":\"deletecommon keepword\"}", 201);
    delete_doc(f, "del-new");
    delete_doc(f, "del-old");
    expect_error(f, "DELETE", "/documents/del-old", NULL, 0, 404, "not_found");
    expect_error(f, "DELETE", "/documents/del-new", NULL, 0, 404, "not_found");
    expect_error(f, "DELETE", "/documents/never-was", NULL, 0, 404, "not_found");
    assert_null(wait_doc(f, "del-old", 404));
    assert_null(wait_doc(f, "del-new", 404));

    wait_total(f, "keepword", 1);
    wait_total(f, "deleteold", 0);
    assert_int_equal(search_total(f, "deletenew"), 0);
    assert_only_hit(f, "deletecommon", "keep");

    /* a deleted id can be created again */
    put_doc(f, "del-old", "{\"title\":\"deletecommon reborn\"}", 201);
    wait_total(f, "reborn", 1);
    assert_int_equal(search_total(f, "deletecommon"), 2);
    assert_int_equal(search_total(f, "deleteold"), 0);
}

/* ---- the API key ---- */

static void expect_unauthorized(uint16_t port, const char *method, const char *target,
                                const char *auth, const char *body)
{
    struct httpc_reply r;
    char value[128];

    if (!test_http_request(port, method, target, auth, body, body ? strlen(body) : 0, &r))
        fail_msg("%s %s: no reply", method, target);
    if (r.status != 401)
        fail_msg("%s %s with \"%s\": want 401, got %d: %.200s", method, target, auth, r.status,
                 r.body);
    test_assert_json_content_type(&r);
    if (!httpc_reply_header(&r, "WWW-Authenticate", value, sizeof value))
        fail_msg("%s %s: 401 without WWW-Authenticate", method, target);
    assert_int_equal(strncmp(value, "Bearer", 6), 0);
    json_t *v = test_parse_body(&r);
    test_assert_error_body(v, "unauthorized");
    json_decref(v);
    httpc_reply_fini(&r);
}

static void test_api_key_guards_writes_only(void **state)
{
    static const char *const wrong[] = {
        "",
        "Authorization: Bearer wrong\r\n",
        "Authorization: Bearer s3cre\r\n",
        "Authorization: Bearer s3cretX\r\n",
        "Authorization: Bearer \r\n",
        "Authorization: Basic s3cret\r\n",
        "Authorization: s3cret\r\n",
        "X-Api-Key: s3cret\r\n",
    };
    struct fixture *f = *state;

    /* a document to delete, written with the key */
    f->auth = "Authorization: Bearer " API_KEY "\r\n";
    put_doc(f, "guarded", "{\"title\":\"guardedword\"}", 201);
    f->auth = "";

    for (size_t i = 0; i < sizeof wrong / sizeof *wrong; i++) {
        expect_unauthorized(f->ts.port, "PUT", "/documents/intruder", wrong[i],
                            "{\"title\":\"intruderword\"}");
        expect_unauthorized(f->ts.port, "POST", "/documents", wrong[i],
                            "{\"id\":\"intruder2\",\"title\":\"intruderword\"}\n");
        expect_unauthorized(f->ts.port, "DELETE", "/documents/guarded", wrong[i], NULL);
    }
    /* reads need no key */
    wait_total(f, "guardedword", 1);
    json_t *v = get_doc(f, "guarded", 200);
    json_decref(v);
    assert_null(get_doc(f, "intruder", 404));
    assert_null(get_doc(f, "intruder2", 404));
    assert_int_equal(search_total(f, "intruderword"), 0);
    v = request_json(f, "GET", "/health", NULL, 0, 200);
    json_decref(v);

    /* with the key, every write goes through */
    f->auth = "Authorization: Bearer " API_KEY "\r\n";
    put_doc(f, "guarded", "{\"title\":\"guardedword again\"}", 200);
    static const char posted[] = "{\"id\":\"posted\",\"title\":\"postedword\"}\n";
    v = post_docs(f, posted, sizeof posted - 1);
    assert_int_equal(test_json_int_field(v, "indexed"), 1);
    json_decref(v);
    delete_doc(f, "guarded");
    f->auth = "";
    wait_total(f, "postedword", 1);
    wait_total(f, "guardedword", 0);
}

/* ---- durability across a restart ---- */

static void test_restart_keeps_everything_written(void **state)
{
    struct fixture *f = *state;

    put_doc(f, "keep-1", "{\"title\":\"restartcommon keepone\"}", 201);
    put_doc(f, "gone-1", "{\"title\":\"restartcommon goneone\"}", 201);
    /*
     * Once published, the replace and the delete below mark documents of a
     * segment deleted, which the stop saves in a deletions file that the
     * reopen reads (deletions_read() once read it after freeing it).
     */
    wait_total(f, "restartcommon", 2);
    put_doc(f, "keep-1", "{\"title\":\"restartcommon keeponev2\"}", 200);
    static const char bulk[] = "{\"id\":\"bulk-1\",\"title\":\"restartcommon bulkone\"}\n"
                               "{\"id\":\"bulk-2\",\"title\":\"restartcommon bulktwo\"}\n";
    json_t *v = post_docs(f, bulk, sizeof bulk - 1);
    assert_int_equal(test_json_int_field(v, "indexed"), 2);
    json_decref(v);
    delete_doc(f, "gone-1");
    /* stopped right away: some of it was never published before the stop */
    assert_int_equal(fixture_restart(f), 0);

    for (int restart = 0; restart < 2; restart++) {
        wait_total(f, "restartcommon", 3);
        assert_only_hit(f, "keeponev2", "keep-1");
        assert_int_equal(search_total(f, "keepone"), 0);
        assert_int_equal(search_total(f, "goneone"), 0);
        assert_only_hit(f, "bulkone", "bulk-1");
        assert_only_hit(f, "bulktwo", "bulk-2");
        assert_null(get_doc(f, "gone-1", 404));
        v = get_doc(f, "keep-1", 200);
        assert_string_equal(json_string_value(json_object_get(v, "title")),
                            "restartcommon keeponev2");
        json_decref(v);
        v = request_json(f, "GET", "/stats", NULL, 0, 200);
        assert_int_equal(test_json_int_field(v, "documents"), 3);
        json_decref(v);
        /* and again, with nothing written in between */
        assert_int_equal(fixture_restart(f), 0);
    }
    /* writes go on after restarts */
    put_doc(f, "new-1", "{\"title\":\"restartcommon newone\"}", 201);
    /* a replace and a delete of documents of the reopened segments */
    put_doc(f, "bulk-1", "{\"title\":\"restartcommon bulkonev2\"}", 200);
    delete_doc(f, "bulk-2");
    assert_int_equal(fixture_restart(f), 0);
    wait_total(f, "restartcommon", 3);
    assert_only_hit(f, "newone", "new-1");
    assert_only_hit(f, "bulkonev2", "bulk-1");
    assert_int_equal(search_total(f, "bulkone"), 0);
    assert_null(get_doc(f, "bulk-2", 404));
}

/* ---- many writers ---- */

struct put_worker {
    pthread_t thread;
    uint16_t port;
    unsigned index;
    unsigned created, updated, failed;
    char why[200];
};

static void *put_worker_main(void *arg)
{
    struct put_worker *w = arg;
    struct httpc_conn c;
    char target[64], body[160];
    bool open = false;

    for (unsigned j = 0; j < WRITES_PER_THREAD; j++) {
        bool update = j >= WRITES_PER_THREAD - UPDATES_PER_THREAD;
        unsigned doc = update ? j - (WRITES_PER_THREAD - UPDATES_PER_THREAD) : j;
        struct httpc_reply r;
        snprintf(target, sizeof target, "/documents/c%u-%u", w->index, doc);
        snprintf(body, sizeof body, "{\"title\":\"concurrentword cw%ux%u%s\"}", w->index, doc,
                 update ? " updatedword" : "");
        /* keep-alive, with a new connection every seventh request */
        if (open && j % 7 == 6) {
            httpc_close(&c);
            open = false;
        }
        if (!open && !(open = httpc_open(&c, w->port, TEST_SERVER_IO_TIMEOUT_S))) {
            snprintf(w->why, sizeof w->why, "worker %u: cannot connect", w->index);
            w->failed++;
            continue;
        }
        if (!httpc_request(&c, "PUT", target, NULL, body, strlen(body), &r)) {
            snprintf(w->why, sizeof w->why, "worker %u %s: no reply", w->index, target);
            w->failed++;
            httpc_close(&c);
            open = false;
            continue;
        }
        int want = update ? 200 : 201;
        const char *result = update ? "\"result\":\"updated\"" : "\"result\":\"created\"";
        if (r.status == want && strstr(r.body, result)) {
            *(update ? &w->updated : &w->created) += 1;
        } else {
            snprintf(w->why, sizeof w->why, "worker %u %s: %d %.100s", w->index, target,
                     r.status, r.body);
            w->failed++;
        }
        httpc_reply_fini(&r);
    }
    if (open)
        httpc_close(&c);
    return NULL;
}

static void test_concurrent_puts_all_succeed_and_are_searchable(void **state)
{
    struct fixture *f = *state;
    struct put_worker workers[WRITER_THREADS];
    const unsigned docs_per_thread = WRITES_PER_THREAD - UPDATES_PER_THREAD;

    for (unsigned i = 0; i < WRITER_THREADS; i++) {
        workers[i] = (struct put_worker){ .port = f->ts.port, .index = i };
        assert_int_equal(pthread_create(&workers[i].thread, NULL, put_worker_main,
                                        &workers[i]), 0);
    }
    for (unsigned i = 0; i < WRITER_THREADS; i++)
        assert_int_equal(pthread_join(workers[i].thread, NULL), 0);
    for (unsigned i = 0; i < WRITER_THREADS; i++)
        if (workers[i].failed || workers[i].created != docs_per_thread ||
            workers[i].updated != UPDATES_PER_THREAD)
            fail_msg("worker %u: %u created, %u updated, %u failed; last: %s", i,
                     workers[i].created, workers[i].updated, workers[i].failed, workers[i].why);

    /* the replacements came last; once all are seen, nothing is there twice */
    wait_total(f, "updatedword", WRITER_THREADS * UPDATES_PER_THREAD);
    assert_int_equal(search_total(f, "concurrentword"), WRITER_THREADS * docs_per_thread);
    for (unsigned i = 0; i < WRITER_THREADS; i++)
        for (unsigned j = 0; j < docs_per_thread; j++) {
            char id[32], token[32];
            snprintf(id, sizeof id, "c%u-%u", i, j);
            snprintf(token, sizeof token, "cw%ux%u", i, j);
            assert_only_hit(f, token, id);
        }
    json_t *v = request_json(f, "GET", "/stats", NULL, 0, 200);
    assert_int_equal(test_json_int_field(v, "documents"), WRITER_THREADS * docs_per_thread);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_creates_with_201_then_updates_with_200, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_put_body_id_must_equal_path_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_without_body_id_stores_the_path_id, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_put_bad_bodies_are_400_json_and_store_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_numbers_of_any_size_are_stored_as_written, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_put_body_over_8_mib_is_413, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_becomes_searchable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replacing_leaves_exactly_one_version_searchable,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_post_json_lines_indexes_good_lines_and_reports_bad_ones, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_json_array_indexes_good_elements, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_post_empty_body_indexes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_is_200_then_404_and_the_document_is_gone,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_key_guards_writes_only, setup_api_key,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_restart_keeps_everything_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_puts_all_succeed_and_are_searchable,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
