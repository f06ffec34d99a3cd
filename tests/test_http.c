/*
 * End-to-end tests of the HTTP API (API.md) over a real socket: the group
 * setup bulk-loads corpus/news.jsonl into a fresh mkdtemp() index, starts
 * the server on 127.0.0.1 port 0 with two workers and reads the port back;
 * the tests talk to it with the blocking HTTP/1.1 client of tests/httpc.h
 * and check the JSON with jansson.
 *
 * The client reads a reply up to the end of its Content-Length body and
 * keeps what follows for the next reply, so one connection can carry
 * several requests (keep-alive, and pipelining). It never asserts, so the
 * threads of the concurrency test can use it; the cmocka helpers here do.
 *
 * Expected totals come from reading corpus/news.jsonl: three documents,
 * cbj-musk-xai and video-musk-ai-safety about Musk (both with 马斯克 in the
 * title), cbj-aws-bedrock about Amazon's Bedrock; only the two cbj- ones
 * have a source.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "index/base/error.h"
#include "index/index.h"
#include "server/bulkload.h"
#include "server/http.h"
#include "tests/httpc.h"
#include "tests/testserver.h"
#include "tests/testutil.h"

#define CORPUS_PATH "corpus/news.jsonl"
#define CORPUS_DOCS 3
#define TARGET_MAX_BYTES 4096
#define STOP_WATCHDOG_S 20
#define LOAD_THREADS 8
#define LOAD_REQUESTS 50
#define HEAD_CAP_BYTES (64u << 10)      /* HTTP_HEAD_MAX_BYTES in server/http.c */
#define DEADLINE_S 1                    /* --request-timeout of the deadline server */
#define DEADLINE_THREADS 1              /* one worker: a slow client must not hold it */
#define SLOW_BYTE_MS 300                /* the slow client's pace */
/*
 * The deadline tests use the server's real --request-timeout timer (libevent
 * timers run on real time) but assert outcomes and order only: the 408 comes,
 * before the slow request was complete (at SLOW_BYTE_MS a byte, it would take
 * 9 s or more: that much slack only detects a hang), not before the deadline
 * (a lower bound: a busy machine only makes the wait longer), and another
 * client is answered meanwhile. No upper bound on how soon.
 * libevent arms timers from the time cached at the top of its loop, so one
 * may fire a few ms before a full second has passed on our clock.
 */
#define TIMER_SLACK_MS 50
#define SPLIT_PAUSE_MS 200              /* between the parts of a split request */
#define KEEP_ALIVE_REQUESTS 50

/* ---- requests, through tests/httpc.h and tests/testserver.h ---- */

/* One request on an open keep-alive connection. */
static bool conn_request(struct httpc_conn *c, const char *method, const char *target,
                         struct httpc_reply *r)
{
    return httpc_request(c, method, target, NULL, NULL, 0, r);
}

/* ---- the server under test ---- */

static struct test_server fx; /* the group's server; set by group_setup */

/*
 * A second server on ix, the group's index, already open: test_server_start
 * opens an index of its own, so this one is started by hand with the same
 * settings.
 */
static int start_server(struct index *ix, struct server **srv, uint16_t *port)
{
    struct server_config cfg;
    struct xerr err = { 0 };

    test_server_config(&cfg, NULL);
    if (server_start(ix, &cfg, srv, &err) != XE_OK) {
        fprintf(stderr, "server_start: %s\n", err.msg);
        return -1;
    }
    *port = server_port(*srv);
    return *port ? 0 : -1;
}

/* test_server_options.opened: loads the corpus, one segment. */
static int load_corpus(struct test_server *ts, void *arg)
{
    static char corpus[] = CORPUS_PATH;
    char *files[] = { corpus };
    struct bulkload_stats stats;
    struct xerr err = { 0 };

    (void)arg;
    if (bulkload_files(ts->ix, files, 1, &(struct bulkload_options){ .errors = stderr },
                       &stats, &err) != XE_OK) {
        fprintf(stderr, "building the index from %s: %s\n", CORPUS_PATH, err.msg);
        return -1;
    }
    if (stats.docs != CORPUS_DOCS || stats.bad_lines != 0 || stats.segments != 1) {
        fprintf(stderr, "%s: %llu documents, %llu bad lines, %u segments\n", CORPUS_PATH,
                (unsigned long long)stats.docs, (unsigned long long)stats.bad_lines,
                stats.segments);
        return -1;
    }
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    return test_server_start(&fx, NULL, &(struct test_server_options){ .opened = load_corpus });
}

static int group_teardown(void **state)
{
    (void)state;
    test_server_fini(&fx);
    return 0;
}

/* ---- cmocka helpers ---- */

/* Sends one request to port and returns its JSON body, checking status and Content-Type. */
static json_t *request_json_at(uint16_t port, const char *method, const char *target,
                               int want_status)
{
    return test_request_json(port, method, target, NULL, NULL, 0, want_status);
}

static json_t *request_json(const char *method, const char *target, int want_status)
{
    return request_json_at(fx.port, method, target, want_status);
}

static json_t *get_json(const char *target, int want_status)
{
    return request_json("GET", target, want_status);
}

static void expect_error(const char *method, const char *target, int status, const char *code)
{
    json_t *v = request_json(method, target, status);
    test_assert_error_body(v, code);
    json_decref(v);
}

/* GET /search?q=<q encoded><extra> from the server on port. */
static json_t *search_at(uint16_t port, const char *q, const char *extra, int want_status)
{
    char encoded[TARGET_MAX_BYTES / 2];
    char target[TARGET_MAX_BYTES];

    assert_true(httpc_url_encode(q, encoded, sizeof encoded));
    int n = snprintf(target, sizeof target, "/search?q=%s%s", encoded, extra ? extra : "");
    assert_true(n > 0 && (size_t)n < sizeof target);
    return request_json_at(port, "GET", target, want_status);
}

static json_t *search(const char *q, const char *extra, int want_status)
{
    return search_at(fx.port, q, extra, want_status);
}

static const char *hit_id(json_t *body, size_t i)
{
    json_t *hits = json_object_get(body, "hits");
    assert_true(json_is_array(hits));
    assert_true(i < json_array_size(hits));
    const char *id = json_string_value(json_object_get(json_array_get(hits, i), "id"));
    assert_non_null(id);
    return id;
}

/* The hit ids, sorted, space-separated. */
static void hit_id_set(json_t *body, char *out, size_t cap)
{
    json_t *hits = json_object_get(body, "hits");
    const char *ids[16];
    size_t n = json_array_size(hits), len = 0;

    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++)
        ids[i] = hit_id(body, i);
    for (size_t i = 1; i < n; i++) /* insertion sort: a handful of ids */
        for (size_t j = i; j > 0 && strcmp(ids[j - 1], ids[j]) > 0; j--) {
            const char *t = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = t;
        }
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(out + len, cap - len, "%s%s", i ? " " : "", ids[i]);
        assert_true(w > 0 && (size_t)w < cap - len);
        len += (size_t)w;
    }
}

/* The shape every 200 /search body has. */
static void assert_search_shape(json_t *body, const char *q)
{
    assert_true(json_is_object(body));
    assert_string_equal(json_string_value(json_object_get(body, "query")), q);
    assert_string_equal(json_string_value(json_object_get(body, "total_relation")), "eq");
    assert_true(json_is_number(json_object_get(body, "took_ms")));
    assert_true(json_number_value(json_object_get(body, "took_ms")) >= 0);
    assert_true(json_is_array(json_object_get(body, "hits")));
    test_json_int_field(body, "total");
    test_json_int_field(body, "offset");
    test_json_int_field(body, "limit");
}

/* ---- /search ---- */

static void test_search_bedrock_finds_aws_with_snippet(void **state)
{
    (void)state;
    /* highlighting on (the default): the title matches nothing of the query */
    json_t *body = search("Bedrock 普惠化", NULL, 200);
    assert_search_shape(body, "Bedrock 普惠化");
    assert_int_equal(test_json_int_field(body, "total"), 1);
    assert_int_equal(test_json_int_field(body, "offset"), 0);
    assert_int_equal(test_json_int_field(body, "limit"), 10);
    assert_int_equal(json_array_size(json_object_get(body, "hits")), 1);
    assert_string_equal(hit_id(body, 0), "cbj-aws-bedrock");
    json_t *hit = json_array_get(json_object_get(body, "hits"), 0);
    assert_string_equal(json_string_value(json_object_get(hit, "title")),
                        "亚马逊云科技切入生成式AI镜鉴：降低基础大模型使用门槛");
    assert_string_equal(json_string_value(json_object_get(hit, "source")), "中国经营报");
    assert_true(json_is_number(json_object_get(hit, "score")));
    assert_true(json_number_value(json_object_get(hit, "score")) > 0);
    /* the document has no date or url: absent from the hit */
    assert_null(json_object_get(hit, "date"));
    assert_null(json_object_get(hit, "url"));
    assert_string_equal(json_string_value(json_object_get(hit, "title_html")),
                        "亚马逊云科技切入生成式AI镜鉴：降低基础大模型使用门槛");
    const char *snippet = json_string_value(json_object_get(hit, "snippet"));
    assert_non_null(snippet);
    assert_non_null(strstr(snippet, "<em>普惠化</em>"));
    assert_non_null(strstr(snippet, "<em>Bedrock</em>"));
    json_decref(body);

    /* and with a word that the title has too */
    body = search("Bedrock 普惠化 亚马逊", NULL, 200);
    assert_search_shape(body, "Bedrock 普惠化 亚马逊");
    assert_int_equal(test_json_int_field(body, "total"), 1);
    assert_string_equal(hit_id(body, 0), "cbj-aws-bedrock");
    hit = json_array_get(json_object_get(body, "hits"), 0);
    assert_string_equal(json_string_value(json_object_get(hit, "title_html")),
                        "<em>亚马逊</em>云科技切入生成式AI镜鉴：降低基础大模型使用门槛");
    snippet = json_string_value(json_object_get(hit, "snippet"));
    assert_non_null(snippet);
    assert_non_null(strstr(snippet, "<em>普惠化</em>"));
    assert_non_null(strstr(snippet, "<em>Bedrock</em>"));
    assert_non_null(strstr(snippet, "<em>亚马逊</em>"));
    assert_non_null(strstr(snippet, "…"));
    json_decref(body);
}

static const struct {
    const char *q;
    json_int_t total;
    const char *first; /* NULL: no hits */
    const char *ids;   /* all hit ids, sorted */
} search_cases[] = {
    { "TruthGPT", 1, "cbj-musk-xai", "cbj-musk-xai" },
    { "truthgpt", 1, "cbj-musk-xai", "cbj-musk-xai" },
    { "DeepMind", 1, "video-musk-ai-safety", "video-musk-ai-safety" },
    { "ＤｅｅｐＭｉｎｄ", 1, "video-musk-ai-safety", "video-musk-ai-safety" },
    { "马斯克", 2, NULL, "cbj-musk-xai video-musk-ai-safety" },
    { "斯", 2, NULL, "cbj-musk-xai video-musk-ai-safety" }, /* 马斯克, 特斯拉 */
    { "猫", 0, NULL, "" },
    { "!!!", 0, NULL, "" },
    /* query syntax */
    { "Bedrock OR DeepMind", 2, NULL, "cbj-aws-bedrock video-musk-ai-safety" },
    { "谷歌 OR Google", 2, NULL, "cbj-aws-bedrock video-musk-ai-safety" },
    { "Bedrock OR DeepMind 马斯克", 1, "video-musk-ai-safety", "video-musk-ai-safety" },
    { "马斯克 -DeepMind", 1, "cbj-musk-xai", "cbj-musk-xai" },
    { "OpenAI -马斯克", 1, "cbj-aws-bedrock", "cbj-aws-bedrock" },
    { "\"Larry Page\"", 1, "video-musk-ai-safety", "video-musk-ai-safety" },
    { "\"Page Larry\"", 0, NULL, "" },
    { "GPT-4", 1, "cbj-musk-xai", "cbj-musk-xai" },
    { "title:马斯克", 2, NULL, "cbj-musk-xai video-musk-ai-safety" },
    { "title:亚马逊", 1, "cbj-aws-bedrock", "cbj-aws-bedrock" },
    { "title:Bedrock", 0, NULL, "" }, /* only in the body */
    { "安全", 3, NULL, "cbj-aws-bedrock cbj-musk-xai video-musk-ai-safety" },
    { "title:安全", 1, "video-musk-ai-safety", "video-musk-ai-safety" },
    { "中国经营报", 2, NULL, "cbj-aws-bedrock cbj-musk-xai" }, /* the source counts */
};

static void test_search_totals_and_first_hits_match_corpus(void **state)
{
    char ids[512];

    (void)state;
    for (size_t i = 0; i < sizeof search_cases / sizeof *search_cases; i++) {
        json_t *body = search(search_cases[i].q, "&highlight=0", 200);
        assert_search_shape(body, search_cases[i].q);
        json_int_t total = test_json_int_field(body, "total");
        if (total != search_cases[i].total)
            fail_msg("row %zu \"%s\": want total %lld, got %lld", i, search_cases[i].q,
                     (long long)search_cases[i].total, (long long)total);
        hit_id_set(body, ids, sizeof ids);
        if (strcmp(ids, search_cases[i].ids) != 0)
            fail_msg("row %zu \"%s\": want hits \"%s\", got \"%s\"", i, search_cases[i].q,
                     search_cases[i].ids, ids);
        if (search_cases[i].first)
            assert_string_equal(hit_id(body, 0), search_cases[i].first);
        json_decref(body);
    }
}

static void test_search_highlight_marks_title_and_body(void **state)
{
    (void)state;
    json_t *body = search("马斯克", NULL, 200);
    json_t *hits = json_object_get(body, "hits");
    assert_int_equal(json_array_size(hits), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *hit = json_array_get(hits, i);
        const char *title_html = json_string_value(json_object_get(hit, "title_html"));
        const char *snippet = json_string_value(json_object_get(hit, "snippet"));
        assert_non_null(title_html);
        assert_non_null(snippet);
        assert_non_null(strstr(title_html, "<em>马斯克</em>"));
        assert_non_null(strstr(snippet, "<em>马斯克</em>"));
    }
    json_decref(body);

    /* one character: marked inside the run */
    body = search("斯", NULL, 200);
    hits = json_object_get(body, "hits");
    assert_int_equal(json_array_size(hits), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *hit = json_array_get(hits, i);
        const char *title_html = json_string_value(json_object_get(hit, "title_html"));
        assert_non_null(title_html);
        assert_non_null(strstr(title_html, "马<em>斯</em>克"));
    }
    json_decref(body);
}

static void test_search_highlight_0_leaves_out_html(void **state)
{
    (void)state;
    json_t *body = search("马斯克", "&highlight=0", 200);
    json_t *hits = json_object_get(body, "hits");
    assert_int_equal(json_array_size(hits), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *hit = json_array_get(hits, i);
        assert_non_null(json_string_value(json_object_get(hit, "title")));
        assert_non_null(json_string_value(json_object_get(hit, "id")));
        assert_null(json_object_get(hit, "snippet"));
        assert_null(json_object_get(hit, "title_html"));
    }
    json_decref(body);
}

static void test_search_absent_fields_are_absent_from_hits(void **state)
{
    (void)state;
    json_t *body = search("DeepMind", "&highlight=0", 200);
    json_t *hit = json_array_get(json_object_get(body, "hits"), 0);
    assert_string_equal(json_string_value(json_object_get(hit, "id")), "video-musk-ai-safety");
    assert_null(json_object_get(hit, "source")); /* the video has no source */
    assert_null(json_object_get(hit, "date"));
    assert_null(json_object_get(hit, "url"));
    json_decref(body);
}

static void test_search_limit_offset_page_through_hits(void **state)
{
    (void)state;
    json_t *all = search("马斯克", "&highlight=0", 200);
    assert_int_equal(test_json_int_field(all, "total"), 2);
    const char *first = hit_id(all, 0), *second = hit_id(all, 1);
    assert_string_not_equal(first, second);

    json_t *page = search("马斯克", "&highlight=0&limit=1", 200);
    assert_int_equal(test_json_int_field(page, "total"), 2);
    assert_int_equal(test_json_int_field(page, "limit"), 1);
    assert_int_equal(json_array_size(json_object_get(page, "hits")), 1);
    assert_string_equal(hit_id(page, 0), first);
    json_decref(page);

    page = search("马斯克", "&highlight=0&limit=1&offset=1", 200);
    assert_int_equal(test_json_int_field(page, "total"), 2);
    assert_int_equal(test_json_int_field(page, "offset"), 1);
    assert_int_equal(json_array_size(json_object_get(page, "hits")), 1);
    assert_string_equal(hit_id(page, 0), second);
    json_decref(page);

    page = search("马斯克", "&highlight=0&offset=2", 200);
    assert_int_equal(test_json_int_field(page, "total"), 2);
    assert_int_equal(json_array_size(json_object_get(page, "hits")), 0);
    json_decref(page);

    page = search("马斯克", "&highlight=0&limit=0", 200);
    assert_int_equal(test_json_int_field(page, "total"), 2);
    assert_int_equal(json_array_size(json_object_get(page, "hits")), 0);
    json_decref(page);

    page = search("马斯克", "&highlight=0&limit=100&offset=10000", 200);
    assert_int_equal(test_json_int_field(page, "total"), 2);
    assert_int_equal(json_array_size(json_object_get(page, "hits")), 0);
    json_decref(page);
    json_decref(all);
}

static const struct {
    const char *target;
    int status;
    const char *code;
} bad_requests[] = {
    { "/search?q=AI&limit=101", 400, "bad_request" },
    { "/search?q=AI&limit=abc", 400, "bad_request" },
    { "/search?q=AI&limit=-1", 400, "bad_request" },
    { "/search?q=AI&limit=", 400, "bad_request" },
    { "/search?q=AI&limit=99999999999", 400, "bad_request" },
    { "/search?q=AI&offset=10001", 400, "bad_request" },
    { "/search?q=AI&offset=1.5", 400, "bad_request" },
    { "/search?q=AI&highlight=maybe", 400, "bad_request" },
    { "/search", 400, "bad_request" },
    { "/search?limit=1", 400, "bad_request" },
    { "/search?q=AI&colour=red", 400, "bad_request" },
    { "/search?q=%FF", 400, "bad_request" },
    { "/search?q=%E6%99", 400, "bad_request" }, /* truncated UTF-8 */
    { "/search?q=%G1", 400, "bad_request" },
    { "/search?q=%00", 400, "bad_request" },
    { "/search?q=AI%", 400, "bad_request" },
    { "/search?q=-%E9%A9%AC%E6%96%AF%E5%85%8B", 400, "bad_request" }, /* only a negation */
    { "/search?q=AI+OR+-OpenAI", 400, "bad_request" },              /* negated in OR */
    { "/analyze", 400, "bad_request" },
    { "/analyze?text=%FF", 400, "bad_request" },
    { "/documents/no-such-document", 404, "not_found" },
    { "/documents/%ZZ", 400, "bad_request" },
    { "/nope", 404, "not_found" },
    { "/search/extra", 404, "not_found" },
};

static void test_bad_requests_get_json_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_requests / sizeof *bad_requests; i++) {
        struct httpc_reply r;
        if (!test_http_request(fx.port, "GET", bad_requests[i].target, NULL, NULL, 0, &r))
            fail_msg("row %zu %s: no reply", i, bad_requests[i].target);
        if (r.status != bad_requests[i].status)
            fail_msg("row %zu %s: want %d, got %d: %.200s", i, bad_requests[i].target,
                     bad_requests[i].status, r.status, r.body);
        test_assert_json_content_type(&r);
        json_t *v = test_parse_body(&r);
        test_assert_error_body(v, bad_requests[i].code);
        json_decref(v);
        httpc_reply_fini(&r);
    }
}

static void test_search_error_message_says_what_is_allowed(void **state)
{
    (void)state;
    json_t *v = get_json("/search?q=AI&limit=abc", 400);
    const char *msg = json_string_value(json_object_get(json_object_get(v, "error"), "message"));
    assert_non_null(msg);
    assert_non_null(strstr(msg, "limit"));
    assert_non_null(strstr(msg, "100"));
    json_decref(v);
}

static void test_search_query_too_long_is_400(void **state)
{
    char *target = malloc(5000 + 16);

    (void)state;
    assert_non_null(target);
    int n = snprintf(target, 16, "/search?q=");
    memset(target + n, 'a', 5000); /* one word past QUERY_MAX_BYTES */
    target[n + 5000] = '\0';
    expect_error("GET", target, 400, "bad_request");
    free(target);
}

static void test_huge_uri_is_414_json(void **state)
{
    size_t len = 20000;
    char *target = malloc(len + 1);

    (void)state;
    assert_non_null(target);
    int n = snprintf(target, len, "/search?q=");
    memset(target + n, 'a', len - (size_t)n);
    target[len] = '\0';
    /* longer than a head httpc_request() formats: sent as it is */
    char *text = NULL;
    assert_true(asprintf(&text, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                         target) > 0);
    struct httpc_conn c;
    struct httpc_reply r;
    assert_true(httpc_open(&c, fx.port, TEST_SERVER_IO_TIMEOUT_S));
    assert_true(httpc_send(&c, text, strlen(text)));
    assert_true(httpc_read_reply(&c, &r));
    httpc_close(&c);
    assert_int_equal(r.status, 414);
    test_assert_json_content_type(&r);
    json_t *v = test_parse_body(&r);
    test_assert_error_body(v, "uri_too_long");
    json_decref(v);
    httpc_reply_fini(&r);
    free(text);
    free(target);
}

/* ---- /documents ---- */

/* The corpus line of document id, parsed. */
static json_t *corpus_document(const char *id)
{
    FILE *f = fopen(CORPUS_PATH, "r");
    char *line = NULL;
    size_t cap = 0;
    json_t *found = NULL;

    assert_non_null(f);
    while (!found && getline(&line, &cap, f) > 0) {
        json_t *v = json_loads(line, 0, NULL);
        if (v && !strcmp(json_string_value(json_object_get(v, "id")), id))
            found = v;
        else
            json_decref(v);
    }
    free(line);
    fclose(f);
    assert_non_null(found);
    return found;
}

static void test_documents_returns_original_json(void **state)
{
    static const char *const targets[] = {
        "/documents/cbj-aws-bedrock",
        "/documents/cbj%2Daws%2Dbedrock",  /* percent-encoded */
        "/documents/%63%62%6a-aws-bedrock",
    };

    (void)state;
    json_t *want = corpus_document("cbj-aws-bedrock");
    for (size_t i = 0; i < sizeof targets / sizeof *targets; i++) {
        json_t *got = get_json(targets[i], 200);
        assert_string_equal(json_string_value(json_object_get(got, "id")), "cbj-aws-bedrock");
        assert_string_equal(json_string_value(json_object_get(got, "title")),
                            json_string_value(json_object_get(want, "title")));
        if (!json_equal(got, want))
            fail_msg("%s: the document differs from its corpus line", targets[i]);
        json_decref(got);
    }
    json_decref(want);

    want = corpus_document("video-musk-ai-safety");
    json_t *got = get_json("/documents/video-musk-ai-safety", 200);
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);
}

/*
 * `xun index` run twice on the same corpus: the second load replaces every
 * document of the first, so the index answers as if loaded once, each
 * document once, with the same totals and positive scores; and a load ends
 * compacted, the replaced versions dropped, in one segment.
 */
static void test_index_twice_finds_each_document_once(void **state)
{
    static char corpus[] = CORPUS_PATH;
    char *files[] = { corpus };
    char *dir = test_mkdtemp();
    struct index *ix;
    struct test_server ts;
    struct bulkload_stats stats;
    struct xerr err = { 0 };
    uint16_t port;
    char ids[512];

    (void)state;
    assert_non_null(dir);
    for (int run = 0; run < 2; run++) { /* two runs of `xun index`: open, load, close */
        if (index_open(dir, TOKENIZE_DEFAULT, &ix, &err) != XE_OK ||
            bulkload_files(ix, files, 1, &(struct bulkload_options){ .errors = stderr }, &stats,
                           &err) != XE_OK)
            fail_msg("run %d: %s", run, err.msg);
        assert_int_equal(stats.docs, CORPUS_DOCS);
        index_close(ix);
    }
    assert_int_equal(test_server_start(&ts, dir, NULL), 0); /* reopens the folder */
    port = ts.port;

    json_t *v = request_json_at(port, "GET", "/stats", 200);
    assert_int_equal(test_json_int_field(v, "documents"), CORPUS_DOCS);
    assert_int_equal(test_json_int_field(v, "segments"), 1);
    json_decref(v);

    /* the example: one hit, highlighted */
    v = search_at(port, "Bedrock 普惠化", NULL, 200);
    assert_int_equal(test_json_int_field(v, "total"), 1);
    assert_int_equal(json_array_size(json_object_get(v, "hits")), 1);
    assert_string_equal(hit_id(v, 0), "cbj-aws-bedrock");
    const char *snippet =
        json_string_value(json_object_get(json_array_get(json_object_get(v, "hits"), 0), "snippet"));
    assert_non_null(snippet);
    assert_non_null(strstr(snippet, "<em>Bedrock</em>"));
    json_decref(v);

    /* every row of the corpus table, as for one load */
    for (size_t i = 0; i < sizeof search_cases / sizeof *search_cases; i++) {
        v = search_at(port, search_cases[i].q, "&highlight=0", 200);
        json_int_t total = test_json_int_field(v, "total");
        if (total != search_cases[i].total)
            fail_msg("row %zu \"%s\": want total %lld, got %lld", i, search_cases[i].q,
                     (long long)search_cases[i].total, (long long)total);
        hit_id_set(v, ids, sizeof ids);
        if (strcmp(ids, search_cases[i].ids) != 0)
            fail_msg("row %zu \"%s\": want hits \"%s\", got \"%s\"", i, search_cases[i].q,
                     search_cases[i].ids, ids);
        json_decref(v);
    }
    for (size_t i = 0; i < sizeof search_cases / sizeof *search_cases; i++) {
        v = search_at(port, search_cases[i].q, "&highlight=0", 200);
        json_t *hits = json_object_get(v, "hits");
        for (size_t h = 0; h < json_array_size(hits); h++) {
            double score = json_number_value(json_object_get(json_array_get(hits, h), "score"));
            if (!(score > 0))
                fail_msg("row %zu \"%s\": hit %s has score %g", i, search_cases[i].q,
                         hit_id(v, h), score);
        }
        json_decref(v);
    }

    json_t *want = corpus_document("cbj-musk-xai");
    v = request_json_at(port, "GET", "/documents/cbj-musk-xai", 200);
    assert_true(json_equal(v, want));
    json_decref(v);
    json_decref(want);

    test_server_fini(&ts);
    test_rmtree(dir);
    free(dir);
}

/* ---- /analyze, /health, /stats ---- */

static void assert_json_equals_text(json_t *got, const char *want_text)
{
    json_t *want = json_loads(want_text, 0, NULL);

    assert_non_null(want);
    if (!json_equal(got, want)) {
        char *text = json_dumps(got, JSON_COMPACT);
        fail_msg("want %s, got %s", want_text, text ? text : "?");
    }
    json_decref(want);
}

static void test_analyze_lists_terms_with_offsets(void **state)
{
    static const struct {
        const char *target, *tokens;
    } cases[] = {
        { "/analyze?text=%E6%99%AE%E6%83%A0%E5%8C%96", /* 普惠化 */
          "{\"tokens\": [{\"term\": \"普惠\", \"position\": 0, \"start\": 0, \"end\": 2},"
          " {\"term\": \"惠化\", \"position\": 1, \"start\": 1, \"end\": 3}]}" },
        { "/analyze?text=%E7%8C%AB", /* 猫: the hidden one-character term is not listed */
          "{\"tokens\": [{\"term\": \"猫\", \"position\": 0, \"start\": 0, \"end\": 1}]}" },
        { "/analyze?text=GPT-4",
          "{\"tokens\": [{\"term\": \"gpt\", \"position\": 0, \"start\": 0, \"end\": 3},"
          " {\"term\": \"4\", \"position\": 1, \"start\": 4, \"end\": 5}]}" },
        { "/analyze?text=", "{\"tokens\": []}" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *got = get_json(cases[i].target, 200);
        assert_json_equals_text(got, cases[i].tokens);
        json_decref(got);
    }
}

static void test_health_is_ok(void **state)
{
    (void)state;
    json_t *got = get_json("/health", 200);
    assert_json_equals_text(got, "{\"status\": \"ok\"}");
    json_decref(got);
}

static void test_stats_count_documents_segments_queries(void **state)
{
    (void)state;
    json_t *before = get_json("/stats", 200);
    assert_int_equal(test_json_int_field(before, "documents"), CORPUS_DOCS);
    assert_int_equal(test_json_int_field(before, "segments"), 1);
    assert_true(test_json_int_field(before, "terms") > 0);
    assert_true(test_json_int_field(before, "index_bytes") > 0);
    assert_true(test_json_int_field(before, "uptime_s") >= 0);
    json_int_t queries = test_json_int_field(before, "queries");
    assert_true(queries >= 0);
    json_decref(before);

    static const char *const qs[] = { "马斯克", "猫", "TruthGPT" };
    for (size_t i = 0; i < 3; i++)
        json_decref(search(qs[i], "&highlight=0", 200));
    json_decref(get_json("/health", 200)); /* not a search */

    json_t *after = get_json("/stats", 200);
    assert_int_equal(test_json_int_field(after, "queries"), queries + 3);
    assert_int_equal(test_json_int_field(after, "documents"), CORPUS_DOCS);
    json_decref(after);
}

/*
 * Not tested: an unknown method (BREW) or a malformed request line get
 * libevent's own HTML pages (400, 501) instead of JSON. A head past 64 KiB
 * is tested below (test_oversized_head_is_json_431_or_414).
 */

/* ---- HEAD ---- */


/* HEAD target on c: status want, Content-Length *length, no body. */
static void head_request(struct httpc_conn *c, const char *target, int want, size_t *length)
{
    char head[512], value[64];
    struct httpc_reply r;
    int n = snprintf(head, sizeof head, "HEAD %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", target);

    assert_true(n > 0 && (size_t)n < sizeof head);
    assert_true(httpc_send(c, head, (size_t)n));
    if (!httpc_read_head_reply(c, &r))
        fail_msg("HEAD %s: no reply", target);
    if (r.status != want)
        fail_msg("HEAD %s: want %d, got %d", target, want, r.status);
    test_assert_json_content_type(&r);
    if (!httpc_reply_header(&r, "Content-Length", value, sizeof value))
        fail_msg("HEAD %s: no Content-Length in %s", target, r.head);
    char *num_end;
    unsigned long long len = strtoull(value, &num_end, 10);
    assert_true(num_end != value && *num_end == '\0');
    *length = (size_t)len;
    httpc_reply_fini(&r);
}

static void test_head_sends_headers_only_on_keep_alive(void **state)
{
    static const struct {
        const char *target;
        int status;
    } cases[] = {
        { "/health", 200 },
        { "/documents/cbj-aws-bedrock", 200 },
        { "/analyze?text=GPT-4", 200 },
        { "/nope", 404 },
        { "/documents/no-such-document", 404 },
        { "/search?q=AI&limit=101", 400 },
    };
    struct httpc_conn c;
    struct httpc_reply r;
    size_t length;

    (void)state;
    assert_true(httpc_open(&c, fx.port, TEST_SERVER_IO_TIMEOUT_S));
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        /* GET, then HEAD, then GET again on the same connection */
        assert_true(conn_request(&c, "GET", cases[i].target, &r));
        assert_int_equal(r.status, cases[i].status);
        size_t get_length = r.body_len;
        char *get_body = strdup(r.body);
        assert_non_null(get_body);
        httpc_reply_fini(&r);

        head_request(&c, cases[i].target, cases[i].status, &length);
        if (length != get_length)
            fail_msg("HEAD %s: Content-Length %zu, GET sends %zu bytes", cases[i].target,
                     length, get_length);
        /* a body after the head would be read here as the start of the next reply */
        if (!conn_request(&c, "GET", cases[i].target, &r))
            fail_msg("GET %s after HEAD: no reply (bytes left: %.80s)", cases[i].target,
                     c.buf ? c.buf : "");
        assert_int_equal(r.status, cases[i].status);
        assert_string_equal(r.body, get_body);
        httpc_reply_fini(&r);
        free(get_body);
    }

    /* a search: the length varies with took_ms, the shape does not */
    head_request(&c, "/search?q=TruthGPT&highlight=0", 200, &length);
    assert_true(length > 0);
    assert_true(conn_request(&c, "GET", "/search?q=TruthGPT&highlight=0", &r));
    assert_int_equal(r.status, 200);
    json_t *v = test_parse_body(&r);
    assert_string_equal(hit_id(v, 0), "cbj-musk-xai");
    json_decref(v);
    httpc_reply_fini(&r);

    /* two HEADs in a row, then a GET */
    head_request(&c, "/health", 200, &length);
    head_request(&c, "/health", 200, &length);
    assert_true(conn_request(&c, "GET", "/health", &r));
    assert_int_equal(r.status, 200);
    v = test_parse_body(&r);
    assert_json_equals_text(v, "{\"status\": \"ok\"}");
    json_decref(v);
    httpc_reply_fini(&r);
    httpc_close(&c);
}

static void test_head_then_get_pipelined(void **state)
{
    static const char two[] = "HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /search?q=DeepMind&highlight=0 HTTP/1.1\r\nHost: x\r\n\r\n";
    struct httpc_conn c;
    struct httpc_reply r;

    (void)state;
    assert_true(httpc_open(&c, fx.port, TEST_SERVER_IO_TIMEOUT_S));
    assert_true(httpc_send(&c, two, sizeof two - 1));
    assert_true(httpc_read_head_reply(&c, &r));
    assert_int_equal(r.status, 200);
    httpc_reply_fini(&r);
    assert_true(httpc_read_reply(&c, &r));
    assert_int_equal(r.status, 200);
    json_t *v = test_parse_body(&r);
    assert_string_equal(hit_id(v, 0), "video-musk-ai-safety");
    json_decref(v);
    httpc_reply_fini(&r);
    httpc_close(&c);
}

/* ---- methods ---- */

static void test_wrong_method_is_405_with_allow(void **state)
{
    static const struct {
        const char *method, *target;
    } cases[] = {
        { "POST", "/search?q=AI" }, { "PUT", "/health" }, { "DELETE", "/stats" },
        { "POST", "/analyze?text=a" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct httpc_reply r;
        char allow[128];
        if (!test_http_request(fx.port, cases[i].method, cases[i].target, NULL, NULL, 0, &r))
            fail_msg("%s %s: no reply", cases[i].method, cases[i].target);
        if (r.status != 405)
            fail_msg("%s %s: want 405, got %d", cases[i].method, cases[i].target, r.status);
        test_assert_json_content_type(&r);
        if (!httpc_reply_header(&r, "Allow", allow, sizeof allow))
            fail_msg("%s %s: 405 without Allow", cases[i].method, cases[i].target);
        assert_non_null(strstr(allow, "GET"));
        json_t *v = test_parse_body(&r);
        test_assert_error_body(v, "method_not_allowed");
        json_decref(v);
        httpc_reply_fini(&r);
    }
}

/* ---- connections ---- */

static void test_keep_alive_serves_two_requests_on_one_connection(void **state)
{
    struct httpc_conn c;
    struct httpc_reply r;

    (void)state;
    assert_true(httpc_open(&c, fx.port, TEST_SERVER_IO_TIMEOUT_S));
    assert_true(conn_request(&c, "GET", "/health", &r));
    assert_int_equal(r.status, 200);
    httpc_reply_fini(&r);
    assert_true(conn_request(&c, "GET", "/search?q=TruthGPT&highlight=0", &r));
    assert_int_equal(r.status, 200);
    json_t *v = test_parse_body(&r);
    assert_string_equal(hit_id(v, 0), "cbj-musk-xai");
    json_decref(v);
    httpc_reply_fini(&r);
    /* an error reply keeps the connection too */
    assert_true(conn_request(&c, "GET", "/nope", &r));
    assert_int_equal(r.status, 404);
    httpc_reply_fini(&r);
    assert_true(conn_request(&c, "GET", "/search?q=DeepMind&highlight=0", &r));
    assert_int_equal(r.status, 200);
    v = test_parse_body(&r);
    assert_string_equal(hit_id(v, 0), "video-musk-ai-safety");
    json_decref(v);
    httpc_reply_fini(&r);
    httpc_close(&c);
}

static void test_pipelined_requests_answer_in_order(void **state)
{
    static const char two[] = "GET /search?q=TruthGPT&highlight=0 HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /search?q=DeepMind&highlight=0 HTTP/1.1\r\nHost: x\r\n\r\n";
    struct httpc_conn c;
    struct httpc_reply r;

    (void)state;
    assert_true(httpc_open(&c, fx.port, TEST_SERVER_IO_TIMEOUT_S));
    assert_true(httpc_send(&c, two, sizeof two - 1));
    assert_true(httpc_read_reply(&c, &r));
    assert_int_equal(r.status, 200);
    json_t *v = test_parse_body(&r);
    assert_string_equal(hit_id(v, 0), "cbj-musk-xai");
    json_decref(v);
    httpc_reply_fini(&r);
    assert_true(httpc_read_reply(&c, &r));
    assert_int_equal(r.status, 200);
    v = test_parse_body(&r);
    assert_string_equal(hit_id(v, 0), "video-musk-ai-safety");
    json_decref(v);
    httpc_reply_fini(&r);
    httpc_close(&c);
}

/* A reply that should never come: recv() ends with EOF or a reset, not a timeout. */
static bool peer_closed(int fd)
{
    char byte;

    for (;;) {
        ssize_t n = recv(fd, &byte, 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
    }
}

static void test_server_stop_returns_with_idle_keep_alive_open(void **state)
{
    struct server *srv;
    uint16_t port;
    struct httpc_conn idle, partial, late;
    struct httpc_reply r;

    (void)state;
    assert_int_equal(start_server(fx.ix, &srv, &port), 0);
    assert_int_not_equal(port, fx.port);
    assert_true(httpc_open(&idle, port, TEST_SERVER_IO_TIMEOUT_S));
    assert_true(conn_request(&idle, "GET", "/health", &r));
    assert_int_equal(r.status, 200);
    httpc_reply_fini(&r);
    assert_true(httpc_open(&partial, port, TEST_SERVER_IO_TIMEOUT_S));
    assert_true(httpc_send(&partial, "GET /hea", 8)); /* half a request */

    alarm(STOP_WATCHDOG_S); /* a stop that hangs kills the run instead of blocking it */
    server_stop(srv);
    alarm(0);

    assert_true(peer_closed(idle.fd));
    assert_true(peer_closed(partial.fd));
    httpc_close(&idle);
    httpc_close(&partial);
    /* nothing listens there any more */
    assert_false(httpc_open(&late, port, TEST_SERVER_IO_TIMEOUT_S));
    httpc_close(&late);

    /* the group's server is untouched */
    json_t *v = get_json("/health", 200);
    json_decref(v);
}

struct load_worker {
    pthread_t thread;
    uint16_t port;
    unsigned index;
    unsigned ok, failed;
    char why[160];
};

static const struct {
    const char *target;
    const char *must_contain;
} load_requests[] = {
    { "/search?q=Bedrock&highlight=0", "\"cbj-aws-bedrock\"" },
    { "/search?q=%E9%A9%AC%E6%96%AF%E5%85%8B&highlight=0", "\"total\":2" },
    { "/health", "\"ok\"" },
    { "/analyze?text=GPT-4", "\"gpt\"" },
    { "/documents/cbj-musk-xai", "TruthGPT" },
};

static void *load_main(void *arg)
{
    struct load_worker *w = arg;
    struct httpc_conn c;
    size_t n_targets = sizeof load_requests / sizeof *load_requests;

    if (!httpc_open(&c, w->port, TEST_SERVER_IO_TIMEOUT_S)) {
        snprintf(w->why, sizeof w->why, "worker %u: cannot connect", w->index);
        w->failed = LOAD_REQUESTS;
        return NULL;
    }
    for (unsigned i = 0; i < LOAD_REQUESTS; i++) {
        size_t k = (w->index + i) % n_targets;
        struct httpc_reply r;
        /* every tenth request on a new connection: connects race with requests */
        if (i % 10 == 9) {
            httpc_close(&c);
            if (!httpc_open(&c, w->port, TEST_SERVER_IO_TIMEOUT_S)) {
                w->failed++;
                continue;
            }
        }
        if (!conn_request(&c, "GET", load_requests[k].target, &r)) {
            snprintf(w->why, sizeof w->why, "worker %u request %u: no reply", w->index, i);
            w->failed++;
            httpc_close(&c);
            if (!httpc_open(&c, w->port, TEST_SERVER_IO_TIMEOUT_S))
                break;
            continue;
        }
        if (r.status == 200 && strstr(r.body, load_requests[k].must_contain)) {
            w->ok++;
        } else {
            snprintf(w->why, sizeof w->why, "worker %u %s: %d %.80s", w->index,
                     load_requests[k].target, r.status, r.body);
            w->failed++;
        }
        httpc_reply_fini(&r);
    }
    httpc_close(&c);
    return NULL;
}

static void test_concurrent_clients_all_get_200(void **state)
{
    struct load_worker workers[LOAD_THREADS];

    (void)state;
    for (unsigned i = 0; i < LOAD_THREADS; i++) {
        workers[i] = (struct load_worker){ .port = fx.port, .index = i };
        assert_int_equal(pthread_create(&workers[i].thread, NULL, load_main, &workers[i]), 0);
    }
    for (unsigned i = 0; i < LOAD_THREADS; i++)
        assert_int_equal(pthread_join(workers[i].thread, NULL), 0);
    for (unsigned i = 0; i < LOAD_THREADS; i++) {
        if (workers[i].failed || workers[i].ok != LOAD_REQUESTS)
            fail_msg("worker %u: %u ok, %u failed; last: %s", i, workers[i].ok,
                     workers[i].failed, workers[i].why);
    }
}

/* ---- request deadlines and the head cap ---- */

/* True when fd has something to read (a reply, EOF or a reset) within timeout_ms. */
static bool readable_within(int fd, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int n;

    while ((n = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
        ;
    return n > 0;
}

/* The reply that ends a refused connection: status, our JSON error with code,
 * "Connection: close"; then the server closes. */
static void expect_refusal(struct httpc_conn *c, int status, const char *code)
{
    struct httpc_reply r;
    char value[64];

    if (!httpc_read_reply(c, &r))
        fail_msg("no %d reply before the close (bytes: %.80s)", status, c->buf ? c->buf : "");
    if (r.status != status)
        fail_msg("want %d, got %d: %.200s", status, r.status, r.body);
    test_assert_json_content_type(&r);
    if (!httpc_reply_header(&r, "Connection", value, sizeof value) || strcasecmp(value, "close"))
        fail_msg("%d without Connection: close: %s", status, r.head);
    json_t *v = test_parse_body(&r);
    test_assert_error_body(v, code);
    json_decref(v);
    httpc_reply_fini(&r);
    assert_true(peer_closed(c->fd));
}

/* A server with --request-timeout DEADLINE_S and one worker, over a fresh
 * empty index of its own (the tests write to it). */
static int deadline_setup(void **state)
{
    struct test_server *ds = calloc(1, sizeof *ds);

    if (!ds)
        return -1;
    *state = ds;
    return test_server_start(ds, NULL,
                             &(struct test_server_options){ .threads = DEADLINE_THREADS,
                                                            .request_timeout_s = DEADLINE_S });
}

static int deadline_teardown(void **state)
{
    struct test_server *ds = *state;

    if (!ds)
        return 0;
    test_server_fini(ds);
    free(ds);
    return 0;
}

static void test_slow_request_is_408_and_closed_while_others_are_answered(void **state)
{
    static const char head[] = "GET /health HTTP/1.1\r\nHost: x\r\n"; /* 9 s at this pace */
    struct test_server *ds = *state;
    struct httpc_conn slow;
    size_t sent = 0;
    unsigned answered_meanwhile = 0;
    bool closed = false;

    /* before the connect: the server's deadline cannot start before start */
    uint64_t start = test_now_ms();
    assert_true(httpc_open(&slow, ds->port, TEST_SERVER_IO_TIMEOUT_S));
    while (!closed && sent < sizeof head - 1) {
        if (!httpc_send(&slow, head + sent, 1))
            fail_msg("byte %zu: the server reset the connection without a reply", sent);
        sent++;
        /* meanwhile another client, on the same (only) worker: a worker held by the
         * slow client would answer it only once the slow one is refused and closed */
        json_decref(request_json_at(ds->port, "GET", "/health", 200));
        closed = readable_within(slow.fd, 0);
        answered_meanwhile += !closed;
        if (!closed)
            closed = readable_within(slow.fd, SLOW_BYTE_MS);
    }
    uint64_t took = test_now_ms() - start;
    if (!closed)
        fail_msg("all %zu bytes sent over %llu ms and the connection is still open", sent,
                 (unsigned long long)took);
    if (answered_meanwhile == 0)
        fail_msg("no other client was answered while the slow one was connected");
    if (took + TIMER_SLACK_MS < DEADLINE_S * 1000u)
        fail_msg("closed after %llu ms (%zu bytes), before the %u s deadline",
                 (unsigned long long)took, sent, DEADLINE_S);
    expect_refusal(&slow, 408, "request_timeout");
    httpc_close(&slow);
}

static void test_slow_body_is_408_and_not_stored(void **state)
{
    static const char body[] = "{\"title\":\"sent one byte at a time\"}";
    struct test_server *ds = *state;
    struct httpc_conn slow;
    char head[256];
    size_t sent = 0;
    bool closed = false;

    int n = snprintf(head, sizeof head,
                     "PUT /documents/slow HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
                     sizeof body - 1);
    assert_true(n > 0 && (size_t)n < sizeof head);
    assert_true(httpc_open(&slow, ds->port, TEST_SERVER_IO_TIMEOUT_S));
    assert_true(httpc_send(&slow, head, (size_t)n));
    while (!closed && sent < sizeof body - 1) {
        closed = readable_within(slow.fd, SLOW_BYTE_MS);
        if (!closed && !httpc_send(&slow, body + sent++, 1))
            fail_msg("body byte %zu: the server reset the connection without a reply", sent);
    }
    /* the outcome, not how soon: refused before the body was complete (10 s at this
     * pace, against a 1 s deadline) */
    if (!closed)
        fail_msg("all %zu body bytes sent and the connection is still open", sent);
    expect_refusal(&slow, 408, "request_timeout");
    httpc_close(&slow);
    json_t *v = request_json_at(ds->port, "GET", "/documents/slow", 404);
    test_assert_error_body(v, "not_found");
    json_decref(v);
}

/* One request on c; checks its status and that the body holds must_contain. */
static void keep_alive_step(struct httpc_conn *c, unsigned i, const char *method,
                            const char *target, const char *body, int status,
                            const char *must_contain)
{
    struct httpc_reply r;

    if (!httpc_request(c, method, target, NULL, body, body ? strlen(body) : 0, &r))
        fail_msg("request %u, %s %s: no reply on the kept-alive connection", i, method, target);
    if (r.status != status || !strstr(r.body, must_contain))
        fail_msg("request %u, %s %s: want %d with %s, got %d: %.200s", i, method, target, status,
                 must_contain, r.status, r.body);
    httpc_reply_fini(&r);
}

static void test_keep_alive_serves_50_requests_with_bodies(void **state)
{
    struct test_server *ds = *state;
    struct httpc_conn c;
    char target[64], body[128];

    assert_true(httpc_open(&c, ds->port, TEST_SERVER_IO_TIMEOUT_S));
    for (unsigned i = 0; i < KEEP_ALIVE_REQUESTS; i++) {
        unsigned doc = i / 4;
        snprintf(target, sizeof target, "/documents/ka-%u", doc);
        switch (i % 4) {
        case 0: keep_alive_step(&c, i, "GET", "/health", NULL, 200, "\"ok\""); break;
        case 1:
            snprintf(body, sizeof body, "{\"title\":\"kept alive %u\",\"body\":\"text\"}", doc);
            keep_alive_step(&c, i, "PUT", target, body, 201, "\"created\"");
            break;
        case 2: /* (a GET could miss it: writes are visible within a second) */
            snprintf(body, sizeof body, "{\"title\":\"kept alive %u again\"}", doc);
            keep_alive_step(&c, i, "PUT", target, body, 200, "\"updated\"");
            break;
        default:
            snprintf(body, sizeof body, "{\"id\":\"ka-post-%u\",\"title\":\"posted\"}\n", doc);
            keep_alive_step(&c, i, "POST", "/documents", body, 200, "\"indexed\":1");
            break;
        }
    }

    /* a pipelined pair, the first with a body */
    static const char two[] = "PUT /documents/piped HTTP/1.1\r\nHost: x\r\n"
                              "Content-Length: 18\r\n\r\n{\"title\":\"piped\"}\n"
                              "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    struct httpc_reply r;
    assert_true(httpc_send(&c, two, sizeof two - 1));
    assert_true(httpc_read_reply(&c, &r));
    if (r.status != 201 || !strstr(r.body, "\"created\""))
        fail_msg("pipelined PUT: want 201, got %d: %.200s", r.status, r.body);
    httpc_reply_fini(&r);
    assert_true(httpc_read_reply(&c, &r));
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"ok\""));
    httpc_reply_fini(&r);
    keep_alive_step(&c, KEEP_ALIVE_REQUESTS, "GET", "/health", NULL, 200, "\"ok\"");
    httpc_close(&c);
}

static void test_idle_keep_alive_outlives_request_timeout(void **state)
{
    struct test_server *ds = *state;
    struct httpc_conn c;

    assert_true(httpc_open(&c, ds->port, TEST_SERVER_IO_TIMEOUT_S));
    keep_alive_step(&c, 0, "GET", "/health", NULL, 200, "\"ok\"");
    /* idle between requests is --idle-timeout's (30 s here), not the deadline's. Not
     * sleep-and-hope: the pause need only be longer than the deadline, which a busy
     * machine never makes it less; only a 30 s stall could trip the idle timeout */
    test_sleep_ms(DEADLINE_S * 1000u + 500);
    keep_alive_step(&c, 1, "GET", "/health", NULL, 200, "\"ok\"");
    httpc_close(&c);
}

static void test_pipelined_partial_request_is_408_after_the_first_reply(void **state)
{
    static const char one_and_a_half[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /hea";
    struct test_server *ds = *state;
    struct httpc_conn c;
    struct httpc_reply r;

    assert_true(httpc_open(&c, ds->port, TEST_SERVER_IO_TIMEOUT_S));
    assert_true(httpc_send(&c, one_and_a_half, sizeof one_and_a_half - 1));
    assert_true(httpc_read_reply(&c, &r));
    assert_int_equal(r.status, 200);
    httpc_reply_fini(&r);
    /* the 408 is the assertion; TEST_SERVER_IO_TIMEOUT_S (10 s) on the read only detects a hang */
    expect_refusal(&c, 408, "request_timeout");
    httpc_close(&c);
}

static const struct {
    const char *text;
    size_t split_at[2]; /* where to pause (0: no more pauses) */
    int status;
    const char *must_contain;
} split_cases[] = {
    { "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", { 8 }, 200, "\"ok\"" }, /* mid-word */
    { "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", { 22 }, 200, "\"ok\"" }, /* between lines */
    { "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", { 32 }, 200, "\"ok\"" }, /* inside the CRLF */
    { "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", { 4, 30 }, 200, "\"ok\"" },
    { "PUT /documents/split-1 HTTP/1.1\r\nHost: x\r\nContent-Length: 22\r\n\r\n"
      "{\"title\":\"split body\"}",
      { 64 }, 201, "\"created\"" }, /* head, then body */
    { "PUT /documents/split-2 HTTP/1.1\r\nHost: x\r\nContent-Length: 22\r\n\r\n"
      "{\"title\":\"split body\"}",
      { 40, 70 }, 201, "\"created\"" }, /* mid-head, mid-body */
};

static void test_request_split_across_writes_is_answered(void **state)
{
    struct test_server *ds = *state;

    for (size_t i = 0; i < sizeof split_cases / sizeof *split_cases; i++) {
        const char *text = split_cases[i].text;
        size_t len = strlen(text), at = 0;
        struct httpc_conn c;
        struct httpc_reply r;

        assert_true(httpc_open(&c, ds->port, TEST_SERVER_IO_TIMEOUT_S));
        for (size_t k = 0; k < 2 && split_cases[i].split_at[k]; k++) {
            size_t to = split_cases[i].split_at[k];
            assert_true(to > at && to < len);
            assert_true(httpc_send(&c, text + at, to - at));
            at = to;
            /* so that the server likely reads the part alone; a busy machine can
             * only make the test pass without a split, never fail it */
            test_sleep_ms(SPLIT_PAUSE_MS);
        }
        assert_true(httpc_send(&c, text + at, len - at));
        if (!httpc_read_reply(&c, &r))
            fail_msg("row %zu: no reply", i);
        if (r.status != split_cases[i].status || !strstr(r.body, split_cases[i].must_contain))
            fail_msg("row %zu: want %d with %s, got %d: %.200s", i, split_cases[i].status,
                     split_cases[i].must_contain, r.status, r.body);
        httpc_reply_fini(&r);
        httpc_close(&c);
    }
}

static const struct {
    const char *what;
    size_t uri_bytes;    /* past "/" */
    size_t header_bytes; /* of each X-Filler header's value */
    unsigned n_headers;
    bool after_a_request; /* on a connection that was answered once already */
    int status;
    const char *code; /* NULL: answered, not refused */
} head_cases[] = {
    { "one 80 KiB header", 0, 80u << 10, 1, false, 431, "headers_too_large" },
    { "1,000 headers of 80 bytes", 0, 80, 1000, false, 431, "headers_too_large" },
    { "a 70,000-byte request line", 70000, 0, 0, false, 414, "uri_too_long" },
    { "one 80 KiB header, kept alive", 0, 80u << 10, 1, true, 431, "headers_too_large" },
    { "one 60 KiB header", 0, 60u << 10, 1, false, 200, NULL },
    { "1,000 headers of 40 bytes", 0, 40, 1000, true, 200, NULL },
};
_Static_assert((80u << 10) > HEAD_CAP_BYTES && (60u << 10) < HEAD_CAP_BYTES,
               "the rows sit on both sides of the cap");

/* "GET /<uri> HTTP/1.1", Host, n X-Filler headers, Connection: close; caller frees. */
static char *big_request(size_t uri_bytes, size_t header_bytes, unsigned n_headers, size_t *len)
{
    size_t cap = uri_bytes + n_headers * (header_bytes + 32) + 256, n = 0;
    char *text = malloc(cap);

    assert_non_null(text);
    n += (size_t)snprintf(text, cap, "GET /%s", uri_bytes ? "" : "health");
    memset(text + n, 'u', uri_bytes);
    n += uri_bytes;
    n += (size_t)snprintf(text + n, cap - n, " HTTP/1.1\r\nHost: x\r\n");
    for (unsigned h = 0; h < n_headers; h++) {
        n += (size_t)snprintf(text + n, cap - n, "X-Filler-%u: ", h);
        memset(text + n, 'h', header_bytes);
        n += header_bytes;
        n += (size_t)snprintf(text + n, cap - n, "\r\n");
    }
    n += (size_t)snprintf(text + n, cap - n, "Connection: close\r\n\r\n");
    assert_true(n < cap);
    *len = n;
    return text;
}

static void test_oversized_head_is_json_431_or_414(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof head_cases / sizeof *head_cases; i++) {
        struct httpc_conn c;
        struct httpc_reply r;
        size_t len;
        char *text = big_request(head_cases[i].uri_bytes, head_cases[i].header_bytes,
                                 head_cases[i].n_headers, &len);

        assert_true(httpc_open(&c, fx.port, TEST_SERVER_IO_TIMEOUT_S));
        if (head_cases[i].after_a_request)
            keep_alive_step(&c, 0, "GET", "/health", NULL, 200, "\"ok\"");
        if (!httpc_send(&c, text, len))
            fail_msg("row %zu (%s): reset while sending %zu bytes", i, head_cases[i].what, len);
        if (head_cases[i].code) {
            expect_refusal(&c, head_cases[i].status, head_cases[i].code);
        } else {
            if (!httpc_read_reply(&c, &r))
                fail_msg("row %zu (%s): no reply", i, head_cases[i].what);
            if (r.status != head_cases[i].status)
                fail_msg("row %zu (%s): want %d, got %d: %.200s", i, head_cases[i].what,
                         head_cases[i].status, r.status, r.body);
            httpc_reply_fini(&r);
        }
        httpc_close(&c);
        free(text);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_search_bedrock_finds_aws_with_snippet),
        cmocka_unit_test(test_search_totals_and_first_hits_match_corpus),
        cmocka_unit_test(test_search_highlight_marks_title_and_body),
        cmocka_unit_test(test_search_highlight_0_leaves_out_html),
        cmocka_unit_test(test_search_absent_fields_are_absent_from_hits),
        cmocka_unit_test(test_search_limit_offset_page_through_hits),
        cmocka_unit_test(test_bad_requests_get_json_errors),
        cmocka_unit_test(test_search_error_message_says_what_is_allowed),
        cmocka_unit_test(test_search_query_too_long_is_400),
        cmocka_unit_test(test_huge_uri_is_414_json),
        cmocka_unit_test(test_documents_returns_original_json),
        cmocka_unit_test(test_index_twice_finds_each_document_once),
        cmocka_unit_test(test_analyze_lists_terms_with_offsets),
        cmocka_unit_test(test_health_is_ok),
        cmocka_unit_test(test_stats_count_documents_segments_queries),
        cmocka_unit_test(test_head_sends_headers_only_on_keep_alive),
        cmocka_unit_test(test_head_then_get_pipelined),
        cmocka_unit_test(test_wrong_method_is_405_with_allow),
        cmocka_unit_test(test_keep_alive_serves_two_requests_on_one_connection),
        cmocka_unit_test(test_pipelined_requests_answer_in_order),
        cmocka_unit_test(test_server_stop_returns_with_idle_keep_alive_open),
        cmocka_unit_test(test_concurrent_clients_all_get_200),
        cmocka_unit_test(test_oversized_head_is_json_431_or_414),
        cmocka_unit_test_setup_teardown(
            test_slow_request_is_408_and_closed_while_others_are_answered, deadline_setup,
            deadline_teardown),
        cmocka_unit_test_setup_teardown(test_slow_body_is_408_and_not_stored, deadline_setup,
                                        deadline_teardown),
        cmocka_unit_test_setup_teardown(test_keep_alive_serves_50_requests_with_bodies,
                                        deadline_setup, deadline_teardown),
        cmocka_unit_test_setup_teardown(test_idle_keep_alive_outlives_request_timeout,
                                        deadline_setup, deadline_teardown),
        cmocka_unit_test_setup_teardown(
            test_pipelined_partial_request_is_408_after_the_first_reply, deadline_setup,
            deadline_teardown),
        cmocka_unit_test_setup_teardown(test_request_split_across_writes_is_answered,
                                        deadline_setup, deadline_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
