/* The in-process test server and its request helpers: see tests/testserver.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tests/testserver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/base/error.h"
#include "index/index.h"
#include "server/http.h"
#include "tests/testutil.h"

void test_server_config(struct server_config *cfg, const struct test_server_options *o)
{
    static const struct test_server_options none = { 0 };

    if (!o)
        o = &none;
    server_config_defaults(cfg);
    cfg->port = 0;
    cfg->threads = o->threads ? o->threads : TEST_SERVER_THREADS;
    cfg->quiet = true;
    cfg->api_key = o->api_key;
    cfg->cors_origin = o->cors_origin;
    if (o->no_cache)
        cfg->cache_bytes = 0;
    cfg->query_clock_ns = o->query_clock_ns;
    if (!o->query_clock_ns)
        cfg->query_timeout_ms = 0;
    if (o->max_connections)
        cfg->max_connections = o->max_connections;
    if (o->no_client_limit)
        cfg->max_connections_per_client = 0;
    else if (o->max_connections_per_client)
        cfg->max_connections_per_client = o->max_connections_per_client;
    if (o->max_body_bytes)
        cfg->max_body_bytes = o->max_body_bytes;
    if (o->request_timeout_s)
        cfg->request_timeout_s = o->request_timeout_s;
}

/* Opens ts->dir and serves it. */
static int serve(struct test_server *ts, const struct test_server_options *o)
{
    struct server_config cfg;
    struct xerr err = { 0 };

    if (index_open(ts->dir, TOKENIZE_DEFAULT, &ts->ix, &err) != XE_OK) {
        fprintf(stderr, "index_open %s: %s\n", ts->dir, err.msg);
        ts->ix = NULL;
        return -1;
    }
    if (o && o->opened && o->opened(ts, o->opened_arg) != 0)
        return -1;
    test_server_config(&cfg, o);
    if (server_start(ts->ix, &cfg, &ts->srv, &err) != XE_OK) {
        fprintf(stderr, "server_start: %s\n", err.msg);
        ts->srv = NULL;
        return -1;
    }
    ts->port = server_port(ts->srv);
    return ts->port ? 0 : -1;
}

int test_server_start(struct test_server *ts, const char *dir,
                      const struct test_server_options *o)
{
    memset(ts, 0, sizeof *ts);
    ts->scratch = !dir;
    ts->dir = dir ? strdup(dir) : test_mkdtemp();
    if (!ts->dir) {
        fprintf(stderr, "test_server_start: no folder\n");
        return -1;
    }
    return serve(ts, o);
}

void test_server_stop(struct test_server *ts)
{
    if (ts->srv)
        server_stop(ts->srv);
    ts->srv = NULL;
    if (ts->ix)
        index_close(ts->ix);
    ts->ix = NULL;
    ts->port = 0;
}

int test_server_restart(struct test_server *ts, const struct test_server_options *o)
{
    test_server_stop(ts);
    return serve(ts, o);
}

void test_server_fini(struct test_server *ts)
{
    test_server_stop(ts);
    if (ts->scratch)
        test_rmtree(ts->dir);
    free(ts->dir);
    memset(ts, 0, sizeof *ts);
}

bool test_http_request(uint16_t port, const char *method, const char *target,
                       const char *headers, const char *body, size_t body_len,
                       struct httpc_reply *r)
{
    return httpc_request_once(port, TEST_SERVER_IO_TIMEOUT_S, method, target, headers, body,
                              body_len, r);
}

json_t *test_parse_body(const struct httpc_reply *r)
{
    json_error_t jerr;
    json_t *v = json_loadb(r->body, r->body_len, 0, &jerr);

    if (!v)
        fail_msg("reply %d: body is not JSON (%s): %.200s", r->status, jerr.text, r->body);
    return v;
}

void test_assert_json_content_type(const struct httpc_reply *r)
{
    char type[128];

    if (!httpc_reply_header(r, "Content-Type", type, sizeof type))
        fail_msg("reply %d has no Content-Type", r->status);
    if (strncmp(type, "application/json", 16) != 0)
        fail_msg("reply %d has Content-Type %s", r->status, type);
}

json_t *test_request_json(uint16_t port, const char *method, const char *target,
                          const char *headers, const char *body, size_t body_len,
                          int want_status)
{
    struct httpc_reply r;

    if (!test_http_request(port, method, target, headers, body, body_len, &r))
        fail_msg("%s %.100s: no reply", method, target);
    if (r.status != want_status)
        fail_msg("%s %.100s%s%.80s%s: want %d, got %d: %.300s", method, target,
                 body ? " (body " : "", body ? body : "", body ? ")" : "", want_status, r.status,
                 r.body);
    test_assert_json_content_type(&r);
    json_t *v = test_parse_body(&r);
    httpc_reply_fini(&r);
    return v;
}

void test_assert_error_body(json_t *v, const char *code)
{
    json_t *error = json_object_get(v, "error");
    assert_true(json_is_object(error));
    assert_string_equal(json_string_value(json_object_get(error, "code")), code);
    const char *message = json_string_value(json_object_get(error, "message"));
    assert_non_null(message);
    assert_true(strlen(message) > 0);
}

void test_wait_get(uint16_t port, const char *target, int want_status, const char *needle,
                   bool strict, struct httpc_reply *r)
{
    uint64_t start = test_now_ms();
    int status = 0;

    for (;;) {
        if (!test_http_request(port, "GET", target, NULL, NULL, 0, r))
            fail_msg("GET %s: no reply", target);
        status = r->status;
        if (status == want_status && (!needle || strstr(r->body, needle)))
            return;
        httpc_reply_fini(r);
        if (strict && status != 200 && status != 404)
            fail_msg("GET %s: %d", target, status);
        if (test_now_ms() - start > TEST_HANG_MS)
            break;
        test_sleep_ms(TEST_SERVER_POLL_MS);
    }
    fail_msg("GET %s: still %d after %d ms (hung?), want %d%s%s", target, status, TEST_HANG_MS,
             want_status, needle ? " with " : "", needle ? needle : "");
}

json_int_t test_json_int_field(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        fail_msg("field \"%s\" is not an integer", key);
    return json_integer_value(v);
}
