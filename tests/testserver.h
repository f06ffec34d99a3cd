/*
 * The in-process server the HTTP tests run: a folder, the index opened on
 * it, server_start on 127.0.0.1 port 0, and the teardown; plus the
 * one-request helpers those tests share (cmocka-asserting, so only for
 * files that include cmocka.h; tests/httpc.h is the client underneath).
 */
#ifndef XUN_TESTS_TESTSERVER_H
#define XUN_TESTS_TESTSERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "tests/httpc.h"

#define TEST_SERVER_THREADS 2
#define TEST_SERVER_IO_TIMEOUT_S 10 /* a hung server fails the test, not the run */
#define TEST_SERVER_POLL_MS 20      /* between the GETs of test_wait_get */

struct index;
struct server;
struct server_config;

struct test_server {
    char *dir;          /* the folder (a copy) */
    bool scratch;       /* dir was made by test_server_start: test_server_fini removes it */
    struct index *ix;   /* NULL while stopped */
    struct server *srv; /* NULL while stopped */
    uint16_t port;
};

/*
 * The settings a test changes from server_config_defaults(). Zero keeps the
 * default, except: the server always listens on port 0, is quiet, and, with
 * no query_clock_ns, has query_timeout_ms = 0 (a loaded machine must not cut
 * a test's search short).
 */
struct test_server_options {
    int threads;                         /* 0: TEST_SERVER_THREADS */
    const char *api_key;                 /* NULL: none */
    const char *cors_origin;             /* NULL: none */
    bool no_cache;                       /* cache_bytes = 0 */
    uint64_t (*query_clock_ns)(void);    /* NULL: the real clock, and no query timeout */
    uint32_t max_connections;            /* 0: the default */
    uint32_t max_connections_per_client; /* 0: the default, unless no_client_limit */
    bool no_client_limit;                /* max_connections_per_client = 0 (none) */
    size_t max_body_bytes;               /* 0: the default */
    int request_timeout_s;               /* 0: the default */
    /* Runs on the freshly opened index before the server starts (to load
     * documents, say); nonzero fails the start. NULL: nothing. */
    int (*opened)(struct test_server *ts, void *arg);
    void *opened_arg;
};

/* cfg: server_config_defaults() with the options' changes (o may be NULL). */
void test_server_config(struct server_config *cfg, const struct test_server_options *o);

/*
 * Opens the index on dir (NULL: a fresh scratch folder) and serves it with
 * the options (NULL: all defaults). 0 on success; -1 after printing why, with
 * what was started left for test_server_stop / test_server_fini.
 */
int test_server_start(struct test_server *ts, const char *dir,
                      const struct test_server_options *o);
/* Stops the server and closes the index, keeping the folder (a later
 * test_server_restart serves it again). Safe on a part-started server. */
void test_server_stop(struct test_server *ts);
/* test_server_stop, then opens and serves ts->dir again; as test_server_start. */
int test_server_restart(struct test_server *ts, const struct test_server_options *o);
/* test_server_stop, removes a scratch folder, and zeroes ts. */
void test_server_fini(struct test_server *ts);

/* One request on a fresh connection ("Connection: close" then headers, CRLF-ended
 * or NULL; body NULL for none), timeouts of TEST_SERVER_IO_TIMEOUT_S. */
bool test_http_request(uint16_t port, const char *method, const char *target,
                       const char *headers, const char *body, size_t body_len,
                       struct httpc_reply *r);
/* The reply's body as JSON (a new reference); fails the test when it is not. */
json_t *test_parse_body(const struct httpc_reply *r);
/* Fails the test unless the reply's Content-Type is application/json. */
void test_assert_json_content_type(const struct httpc_reply *r);
/* test_http_request, asserting a reply with want_status and a JSON body, which it returns. */
json_t *test_request_json(uint16_t port, const char *method, const char *target,
                          const char *headers, const char *body, size_t body_len,
                          int want_status);
/* An error body: {"error": {"code": code, "message": "<not empty>"}}. */
void test_assert_error_body(json_t *v, const char *code);
/*
 * Polls GET target on port every TEST_SERVER_POLL_MS until the reply has
 * want_status and, when needle is not NULL, needle in its body; that reply
 * goes to r (the caller finishes it). When strict, a status other than 200
 * and 404 fails at once. TEST_HANG_MS only detects a hang, it is no speed limit.
 */
void test_wait_get(uint16_t port, const char *target, int want_status, const char *needle,
                   bool strict, struct httpc_reply *r);

/* obj's integer field key; fails the test when it is not an integer. */
json_int_t test_json_int_field(json_t *obj, const char *key);

#endif
