/*
 * The HTTP connection layer (server/conn.c, server/http.c) over a real
 * socket: what it refuses and how (RFC 9112: request smuggling, malformed
 * heads, all answered in JSON with "Connection: close"), what it must accept
 * (chunk extensions, absolute-form targets), heads decided on before their
 * bodies are read, the connection limits (per client, and idle connections
 * closed oldest first for newcomers), and writes run off the worker's loop.
 *
 * Each test starts its own server over an empty index in a mkdtemp()
 * folder. Ordering, not time: a write is held on the write thread by
 * documents_before_write_hook until the test lets it go, and every wait is
 * bounded only to turn a hang into a failure.
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "index/base/error.h"
#include "index/index.h"
#include "server/documents.h"
#include "server/http.h"
#include "tests/httpc.h"
#include "tests/testserver.h"
#include "tests/testutil.h"

#define API_KEY "k3y"
#define POLL_SLEEP_MS 20
#define POLL_MAX_ROUNDS 500 /* 10 s: only a hang gets there */
#define HOLD_TIMEOUT_S 20

struct fixture {
    struct test_server ts; /* started by each test, with its own settings */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);

    if (!f)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    documents_before_write_hook = NULL;
    if (!f)
        return 0;
    test_server_fini(&f->ts);
    free(f);
    return 0;
}

/* Starts f's server over a fresh folder with the defaults and these changes
 * (max_connections and max_body_bytes 0 keep the default, per_client 0 is no limit). */
static void start(struct fixture *f, int threads, const char *api_key, uint32_t max_connections,
                  uint32_t per_client, size_t max_body_bytes)
{
    struct test_server_options o = {
        .threads = threads,
        .api_key = api_key,
        .max_connections = max_connections,
        .max_connections_per_client = per_client,
        .no_client_limit = !per_client,
        .max_body_bytes = max_body_bytes,
    };

    if (test_server_start(&f->ts, NULL, &o) != 0)
        fail_msg("starting the server failed");
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, ms % 1000 * 1000000L };
    nanosleep(&ts, NULL);
}

/* The server closed the connection: nothing more than EOF (or a reset) comes. */
static bool peer_closed(struct httpc_conn *c)
{
    char byte;

    if (c->len)
        return false; /* bytes of another reply */
    for (;;) {
        ssize_t n = recv(c->fd, &byte, 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
    }
}

/* Nothing has arrived on c yet. */
static bool nothing_yet(const struct httpc_conn *c)
{
    struct pollfd p = { .fd = c->fd, .events = POLLIN };
    return c->len == 0 && poll(&p, 1, 0) == 0;
}

static void assert_error_reply(const struct httpc_reply *r, int status, const char *code,
                               const char *what)
{
    char type[128];
    json_error_t jerr;

    if (r->status != status)
        fail_msg("%s: want %d, got %d: %.300s", what, status, r->status, r->body);
    if (!httpc_reply_header(r, "Content-Type", type, sizeof type) ||
        strncmp(type, "application/json", 16))
        fail_msg("%s: reply %d is not JSON: %.200s", what, r->status, r->head);
    json_t *v = json_loadb(r->body, r->body_len, 0, &jerr);
    if (!v)
        fail_msg("%s: body is not JSON: %.200s", what, r->body);
    json_t *error = json_object_get(v, "error");
    const char *got = json_string_value(json_object_get(error, "code"));
    const char *message = json_string_value(json_object_get(error, "message"));
    if (!got || strcmp(got, code) || !message || !*message)
        fail_msg("%s: want code %s, got %.200s", what, code, r->body);
    json_decref(v);
}

static void assert_closes(const struct httpc_reply *r, struct httpc_conn *c, const char *what)
{
    char value[32];

    if (!httpc_reply_header(r, "Connection", value, sizeof value) || strcmp(value, "close"))
        fail_msg("%s: reply %d without Connection: close", what, r->status);
    if (!peer_closed(c))
        fail_msg("%s: the connection stays open after reply %d", what, r->status);
}

/* Sends raw bytes on a fresh connection and reads one reply into r. */
static void raw_request(uint16_t port, const char *text, size_t len, struct httpc_conn *c,
                        struct httpc_reply *r, const char *what)
{
    if (!httpc_open(c, port, TEST_SERVER_IO_TIMEOUT_S))
        fail_msg("%s: cannot connect", what);
    if (!httpc_send(c, text, len))
        fail_msg("%s: send failed", what);
    if (!httpc_read_reply(c, r))
        fail_msg("%s: no reply", what);
}

/* ---- what is refused ---- */

#define S(text) text, sizeof text - 1
static const struct {
    const char *what;
    const char *text;
    size_t len;
    int status;
    const char *code;
} refusals[] = {
    /* request smuggling (RFC 9112 6.3): each would let "GET /smuggled" through as a second
     * request, or read a body another parser does not see */
    { "two Content-Length",
      S("POST /documents HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 30\r\n\r\n"
        "{}GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"),
      400, "bad_request" },
    { "Transfer-Encoding with a space before the colon",
      S("POST /documents HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n"
        "Content-Length: 5\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"),
      400, "bad_request" },
    { "Transfer-Encoding with a space before the colon, alone",
      S("POST /documents HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n"
        "0\r\n\r\n"),
      400, "bad_request" },
    { "Content-Length: +2",
      S("POST /documents HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\n{}"), 400,
      "bad_request" },
    { "Content-Length and Transfer-Encoding",
      S("POST /documents HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n"),
      400, "bad_request" },
    { "a bare CR ending a header line",
      S("GET /health HTTP/1.1\r\nX: a\rTransfer-Encoding: chunked\r\nHost: x\r\n\r\n"), 400,
      "bad_request" },
    { "obs-fold", S("GET /health HTTP/1.1\r\nX: a\r\n b\r\nHost: x\r\n\r\n"), 400,
      "bad_request" },
    { "a bare CR in a chunk-size line",
      S("POST /documents HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "2\r{}\r\n0\r\n\r\n"),
      400, "bad_request" },
    { "a NUL starting a header value", S("GET /health HTTP/1.1\r\nHost:\0x\r\n\r\n"), 400,
      "bad_request" },
    { "a TAB in the target", S("GET /hea\tlth HTTP/1.1\r\nHost: x\r\n\r\n"), 400,
      "bad_request" },
    /* malformed: evhttp answered these with HTML */
    { "a header line without a colon", S("GET /health HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n"),
      400, "bad_request" },
    { "HTTP/0.9", S("GET /\r\n\r\n"), 400, "bad_request" },
    { "a NUL in the request line", S("GET /hea\0lth HTTP/1.1\r\nHost: x\r\n\r\n"), 400,
      "bad_request" },
    { "a lowercase method", S("get /health HTTP/1.1\r\nHost: x\r\n\r\n"), 501,
      "not_implemented" },
    { "an unknown method", S("FROB /health HTTP/1.1\r\nHost: x\r\n\r\n"), 501,
      "not_implemented" },
    { "a bad chunk size",
      S("POST /documents HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "zz\r\n{}\r\n0\r\n\r\n"),
      400, "bad_request" },
    { "Transfer-Encoding: gzip, chunked (xun decodes only chunked)",
      S("POST /documents HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        "0\r\n\r\n"),
      501, "not_implemented" },
    { "two Transfer-Encoding headers",
      S("POST /documents HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
      400, "bad_request" },
    { "Transfer-Encoding: chunked, chunked",
      S("POST /documents HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"
        "0\r\n\r\n"),
      400, "bad_request" },
    { "Transfer-Encoding in HTTP/1.0",
      S("POST /documents HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"),
      400, "bad_request" },
    { "two Host headers", S("GET /health HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"), 400,
      "bad_request" },
    { "CONNECT", S("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"), 501,
      "not_implemented" },
    { "PATCH, known to the library, not to xun",
      S("PATCH /health HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"), 501,
      "not_implemented" },
    { "a chunk size over the library's limit",
      S("POST /documents HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "fffffffffffffffff\r\n{}\r\n0\r\n\r\n"),
      400, "bad_request" },
    { "HTTP/0.9 without the blank line", S("GET /health\r\n"), 400, "bad_request" },
    { "two Authorization headers",
      S("GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " API_KEY
        "\r\nAuthorization: Bearer other\r\n\r\n"),
      400, "bad_request" },
};

/* What some refusals' messages must say (by the row's what). */
static const struct {
    const char *what, *says;
} refusal_says[] = {
    { "Transfer-Encoding: gzip, chunked (xun decodes only chunked)", "only chunked" },
    { "a chunk size over the library's limit", "chunk size" },
    { "HTTP/0.9 without the blank line", "HTTP/0.9" },
    { "two Host headers", "Host" },
    { "Transfer-Encoding in HTTP/1.0", "HTTP/1.0" },
};

static void test_malformed_and_ambiguous_requests_are_json_and_close(void **state)
{
    struct fixture *f = *state;

    start(f, 2, NULL, 0, 0, 0);
    for (size_t i = 0; i < sizeof refusals / sizeof *refusals; i++) {
        struct httpc_conn c;
        struct httpc_reply r;
        raw_request(f->ts.port, refusals[i].text, refusals[i].len, &c, &r, refusals[i].what);
        assert_error_reply(&r, refusals[i].status, refusals[i].code, refusals[i].what);
        for (size_t k = 0; k < sizeof refusal_says / sizeof *refusal_says; k++)
            if (!strcmp(refusal_says[k].what, refusals[i].what) &&
                !strstr(r.body, refusal_says[k].says))
                fail_msg("%s: want \"%s\" in %.200s", refusals[i].what, refusal_says[k].says,
                         r.body);
        assert_closes(&r, &c, refusals[i].what); /* and no second, smuggled reply */
        httpc_reply_fini(&r);
        httpc_close(&c);
    }
}

/* ---- what must be accepted ---- */

static void test_chunk_extensions_and_absolute_targets_are_served(void **state)
{
    static const char chunked[] =
        "POST /documents HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "1e;name=value\r\n{\"id\":\"c1\",\"title\":\"chunked\"}\n\r\n"
        "5;a=b;c=\"d\"\r\n     \r\n0\r\nX-Trailer: ignored\r\n\r\n";
    static const char absolute[] = "GET http://example.com/health HTTP/1.1\r\nHost: x\r\n\r\n";
    static const char absolute_bare[] = "GET http://example.com HTTP/1.1\r\nHost: x\r\n\r\n";
    struct fixture *f = *state;
    struct httpc_conn c;
    struct httpc_reply r;

    start(f, 2, NULL, 0, 0, 0);
    raw_request(f->ts.port, chunked, sizeof chunked - 1, &c, &r, "chunk extensions");
    if (r.status != 200)
        fail_msg("chunk extensions: want 200, got %d: %.200s", r.status, r.body);
    json_t *v = test_parse_body(&r);
    assert_int_equal(json_integer_value(json_object_get(v, "indexed")), 1);
    json_decref(v);
    httpc_reply_fini(&r);
    /* the same connection goes on: absolute-form targets are routed by their path */
    assert_true(httpc_send(&c, absolute, sizeof absolute - 1));
    assert_true(httpc_read_reply(&c, &r));
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"ok\""));
    httpc_reply_fini(&r);
    assert_true(httpc_send(&c, absolute_bare, sizeof absolute_bare - 1));
    assert_true(httpc_read_reply(&c, &r));
    assert_int_equal(r.status, 200); /* "/": the search page */
    httpc_reply_fini(&r);
    httpc_close(&c);
}

/* ---- heads decided on before bodies ---- */

static void test_writes_are_refused_on_their_head_before_the_body(void **state)
{
    static const char no_key[] =
        "POST /documents HTTP/1.1\r\nHost: x\r\nContent-Length: 62914560\r\n\r\n";
    static const char too_big[] =
        "POST /documents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " API_KEY
        "\r\nContent-Length: 4097\r\n\r\n";
    static const char chunked_too_big_head[] =
        "POST /documents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " API_KEY
        "\r\nTransfer-Encoding: chunked\r\n\r\n";
    static const char expect[] =
        "POST /documents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " API_KEY
        "\r\nExpect: 100-continue\r\nContent-Length: 29\r\n\r\n";
    static const char doc[] = "{\"id\":\"e1\",\"title\":\"expect\"}\n"; /* 29 bytes */
    struct fixture *f = *state;
    struct httpc_conn c;
    struct httpc_reply r;
    char chunk[2100];

    start(f, 2, API_KEY, 0, 0, 4096);
    /* 60 MiB announced, not one byte sent: the replies come anyway */
    raw_request(f->ts.port, no_key, sizeof no_key - 1, &c, &r, "no key");
    assert_error_reply(&r, 401, "unauthorized", "no key");
    assert_closes(&r, &c, "no key");
    httpc_reply_fini(&r);
    httpc_close(&c);
    raw_request(f->ts.port, too_big, sizeof too_big - 1, &c, &r, "over --max-body");
    assert_error_reply(&r, 413, "payload_too_large", "over --max-body");
    assert_closes(&r, &c, "over --max-body");
    httpc_reply_fini(&r);
    httpc_close(&c);
    /* a chunked body is cut at the chunk that passes the limit */
    assert_true(httpc_open(&c, f->ts.port, TEST_SERVER_IO_TIMEOUT_S));
    assert_true(httpc_send(&c, chunked_too_big_head, sizeof chunked_too_big_head - 1));
    memset(chunk, ' ', sizeof chunk);
    memcpy(chunk, "800\r\n", 5);
    memcpy(chunk + 5 + 0x800, "\r\n", 2);
    assert_true(httpc_send(&c, chunk, 5 + 0x800 + 2));
    assert_true(httpc_send(&c, chunk, 5 + 0x800 + 2));
    assert_true(httpc_send(&c, chunk, 5 + 0x800 + 2));
    assert_true(httpc_read_reply(&c, &r));
    assert_error_reply(&r, 413, "payload_too_large", "chunked over --max-body");
    assert_closes(&r, &c, "chunked over --max-body");
    httpc_reply_fini(&r);
    httpc_close(&c);
    /* Expect: 100-continue gets its 100 once the head is accepted */
    raw_request(f->ts.port, expect, sizeof expect - 1, &c, &r, "100-continue");
    assert_int_equal(r.status, 100);
    httpc_reply_fini(&r);
    assert_true(httpc_send(&c, doc, sizeof doc - 1));
    assert_true(httpc_read_reply(&c, &r));
    assert_int_equal(r.status, 200);
    httpc_reply_fini(&r);
    httpc_close(&c);
}

/* ---- connection limits ---- */

/* A keep-alive connection that has had one request answered. */
static void open_served(uint16_t port, struct httpc_conn *c)
{
    struct httpc_reply r;

    assert_true(httpc_open(c, port, TEST_SERVER_IO_TIMEOUT_S));
    assert_true(httpc_request(c, "GET", "/health", NULL, NULL, 0, &r));
    if (r.status != 200)
        fail_msg("want 200, got %d: %.200s", r.status, r.body);
    httpc_reply_fini(&r);
}

static void test_one_client_past_its_limit_gets_429(void **state)
{
    struct fixture *f = *state;
    struct httpc_conn held[3], extra;
    struct httpc_reply r;
    char retry[16];

    start(f, 2, NULL, 0, 3, 0);
    for (size_t i = 0; i < 3; i++)
        open_served(f->ts.port, &held[i]);
    assert_true(httpc_open(&extra, f->ts.port, TEST_SERVER_IO_TIMEOUT_S));
    assert_true(httpc_request(&extra, "GET", "/health", NULL, NULL, 0, &r));
    assert_error_reply(&r, 429, "too_many_connections", "the fourth connection");
    assert_true(httpc_reply_header(&r, "Retry-After", retry, sizeof retry));
    assert_closes(&r, &extra, "the fourth connection");
    httpc_reply_fini(&r);
    httpc_close(&extra);
    /* one of the three goes: a new one is let in once the server has seen it go */
    httpc_close(&held[0]);
    int status = 0;
    for (int round = 0; round < POLL_MAX_ROUNDS && status != 200; round++) {
        if (round)
            sleep_ms(POLL_SLEEP_MS);
        assert_true(httpc_request_once(f->ts.port, TEST_SERVER_IO_TIMEOUT_S, "GET", "/health", NULL, NULL,
                                       0, &r));
        status = r.status;
        httpc_reply_fini(&r);
    }
    assert_int_equal(status, 200);
    httpc_close(&held[1]);
    httpc_close(&held[2]);
}

static void test_idle_keep_alive_connections_make_room_oldest_first(void **state)
{
    struct fixture *f = *state;
    struct httpc_conn held[3], late;
    struct httpc_reply r;

    /* two workers: the oldest may sit on either, so the close may be another's */
    start(f, 2, NULL, 3, 0, 0);
    for (size_t i = 0; i < 3; i++)
        open_served(f->ts.port, &held[i]);
    /* all three idle at the limit: the newcomer is served, not refused */
    open_served(f->ts.port, &late);
    /* the one idle longest was closed for it; the others still serve */
    assert_true(peer_closed(&held[0]));
    for (size_t i = 1; i < 3; i++) {
        assert_true(httpc_request(&held[i], "GET", "/health", NULL, NULL, 0, &r));
        assert_int_equal(r.status, 200);
        httpc_reply_fini(&r);
    }
    assert_true(httpc_request(&late, "GET", "/health", NULL, NULL, 0, &r));
    assert_int_equal(r.status, 200);
    httpc_reply_fini(&r);
    for (size_t i = 0; i < 3; i++)
        httpc_close(&held[i]);
    httpc_close(&late);
}

/* ---- writes off the worker's loop ---- */

/* The write hook: the write thread waits in it until the test lets go. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    unsigned entered;
    bool released;
} hold = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false };

static void hold_write(void)
{
    pthread_mutex_lock(&hold.lock);
    hold.entered++;
    pthread_cond_broadcast(&hold.changed);
    while (!hold.released)
        pthread_cond_wait(&hold.changed, &hold.lock);
    pthread_mutex_unlock(&hold.lock);
}

static void hold_arm(void)
{
    pthread_mutex_lock(&hold.lock);
    hold.entered = 0;
    hold.released = false;
    pthread_mutex_unlock(&hold.lock);
    documents_before_write_hook = hold_write;
}

static void hold_release(void);

/* Waits (bounded: a hang detector) until n writes are held at once. */
static void hold_wait_entered_n(unsigned n)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += HOLD_TIMEOUT_S;
    pthread_mutex_lock(&hold.lock);
    while (hold.entered < n)
        if (pthread_cond_timedwait(&hold.changed, &hold.lock, &until) == ETIMEDOUT)
            break;
    unsigned entered = hold.entered;
    pthread_mutex_unlock(&hold.lock);
    if (entered < n) {
        hold_release(); /* or the held write would hang the server's stop */
        fail_msg("%u write(s) reached the write threads, want %u at once", entered, n);
    }
}

static void hold_wait_entered(void)
{
    hold_wait_entered_n(1);
}

static void hold_release(void)
{
    pthread_mutex_lock(&hold.lock);
    hold.released = true;
    pthread_cond_broadcast(&hold.changed);
    pthread_mutex_unlock(&hold.lock);
}

/* 5,000 small documents as JSON lines; caller frees. */
static char *many_docs(size_t *len)
{
    size_t cap = 5000 * 64, n = 0;
    char *text = malloc(cap);

    assert_non_null(text);
    for (int i = 0; i < 5000; i++)
        n += (size_t)snprintf(text + n, cap - n, "{\"id\":\"m%d\",\"title\":\"many %d\"}\n", i, i);
    *len = n;
    return text;
}

static void send_post(struct httpc_conn *c, const char *body, size_t len)
{
    char head[160];

    snprintf(head, sizeof head,
             "POST /documents HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", len);
    assert_true(httpc_send(c, head, strlen(head)));
    assert_true(httpc_send(c, body, len));
}

static void test_reads_are_answered_while_a_write_runs(void **state)
{
    struct fixture *f = *state;
    struct httpc_conn reader, writer;
    struct httpc_reply r;
    size_t len;
    char *body = many_docs(&len);

    start(f, 1, NULL, 0, 0, 0); /* one worker: it serves both connections */
    open_served(f->ts.port, &reader);
    hold_arm();
    assert_true(httpc_open(&writer, f->ts.port, TEST_SERVER_IO_TIMEOUT_S));
    send_post(&writer, body, len);
    hold_wait_entered();
    /* the write is in flight; the worker still answers the other connection */
    assert_true(httpc_request(&reader, "GET", "/health", NULL, NULL, 0, &r));
    assert_int_equal(r.status, 200);
    httpc_reply_fini(&r);
    assert_true(nothing_yet(&writer));
    hold_release();
    assert_true(httpc_read_reply(&writer, &r));
    assert_int_equal(r.status, 200);
    json_t *v = test_parse_body(&r);
    assert_int_equal(json_integer_value(json_object_get(v, "indexed")), 5000);
    json_decref(v);
    httpc_reply_fini(&r);
    /* pipelined after a write: answered in order, after it */
    assert_true(httpc_send(&writer, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", 34));
    assert_true(httpc_read_reply(&writer, &r));
    assert_int_equal(r.status, 200);
    httpc_reply_fini(&r);
    httpc_close(&writer);
    httpc_close(&reader);
    free(body);
}

/*
 * Writes from different connections are processed side by side, so that
 * their fsyncs can be shared (group commit): three PUTs are all inside the
 * write path at once. With one write thread, the second waited for the
 * first's fsync, and 16 concurrent writers got no more than one.
 */
static void test_concurrent_writes_are_in_flight_together(void **state)
{
    struct fixture *f = *state;
    struct httpc_conn writers[3];
    struct httpc_reply r;

    start(f, 1, NULL, 0, 0, 0);
    hold_arm();
    for (int i = 0; i < 3; i++) {
        char req[160], doc[64];
        int n = snprintf(doc, sizeof doc, "{\"title\":\"together %d\"}", i);
        snprintf(req, sizeof req,
                 "PUT /documents/t%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", i,
                 n, doc);
        assert_true(httpc_open(&writers[i], f->ts.port, TEST_SERVER_IO_TIMEOUT_S));
        assert_true(httpc_send(&writers[i], req, strlen(req)));
    }
    hold_wait_entered_n(3);
    hold_release();
    for (int i = 0; i < 3; i++) {
        assert_true(httpc_read_reply(&writers[i], &r));
        assert_int_equal(r.status, 201);
        httpc_reply_fini(&r);
        httpc_close(&writers[i]);
    }
}

/* xun_connections_open from /metrics, or -1. */
static long connections_open(uint16_t port)
{
    struct httpc_reply r;
    long n = -1;

    if (!httpc_request_once(port, TEST_SERVER_IO_TIMEOUT_S, "GET", "/metrics", NULL, NULL, 0, &r))
        return -1;
    const char *at = strstr(r.body, "\nxun_connections_open ");
    if (at)
        n = strtol(at + 22, NULL, 10);
    httpc_reply_fini(&r);
    return n;
}

static void test_client_gone_during_a_write_is_freed_after_it(void **state)
{
    static const char doc[] = "{\"id\":\"gone\",\"title\":\"left early\"}\n";
    struct fixture *f = *state;
    struct httpc_conn writer;
    struct httpc_reply r;
    struct linger reset = { 1, 0 };

    start(f, 1, NULL, 0, 0, 0);
    hold_arm();
    assert_true(httpc_open(&writer, f->ts.port, TEST_SERVER_IO_TIMEOUT_S));
    send_post(&writer, doc, sizeof doc - 1);
    hold_wait_entered();
    /* the client resets its connection while its write is held */
    setsockopt(writer.fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    httpc_close(&writer);
    /* the server sees it go (only the /metrics request's own connection is left) */
    long open = -1;
    for (int round = 0; round < POLL_MAX_ROUNDS && open != 1; round++) {
        if (round)
            sleep_ms(POLL_SLEEP_MS);
        open = connections_open(f->ts.port);
    }
    assert_int_equal(open, 1);
    hold_release();
    /* the write still lands, and the server goes on */
    int status = 0;
    for (int round = 0; round < POLL_MAX_ROUNDS && status != 200; round++) {
        if (round)
            sleep_ms(POLL_SLEEP_MS);
        assert_true(httpc_request_once(f->ts.port, TEST_SERVER_IO_TIMEOUT_S, "GET", "/documents/gone",
                                       NULL, NULL, 0, &r));
        status = r.status;
        httpc_reply_fini(&r);
    }
    assert_int_equal(status, 200);
}

static void test_at_the_limit_with_none_idle_a_newcomer_gets_503(void **state)
{
    static const char doc[] = "{\"id\":\"busy\",\"title\":\"busy\"}\n";
    struct fixture *f = *state;
    struct httpc_conn busy, late;
    struct httpc_reply r;
    char retry[16];

    start(f, 1, NULL, 1, 0, 0);
    hold_arm();
    assert_true(httpc_open(&busy, f->ts.port, TEST_SERVER_IO_TIMEOUT_S));
    send_post(&busy, doc, sizeof doc - 1);
    hold_wait_entered(); /* the one connection is answering, not idle */
    assert_true(httpc_open(&late, f->ts.port, TEST_SERVER_IO_TIMEOUT_S));
    assert_true(httpc_request(&late, "GET", "/health", NULL, NULL, 0, &r));
    assert_error_reply(&r, 503, "unavailable", "past the limit");
    assert_true(httpc_reply_header(&r, "Retry-After", retry, sizeof retry));
    assert_closes(&r, &late, "past the limit");
    httpc_reply_fini(&r);
    httpc_close(&late);
    hold_release();
    assert_true(httpc_read_reply(&busy, &r));
    assert_int_equal(r.status, 200);
    httpc_reply_fini(&r);
    httpc_close(&busy);
}

static void *stop_main(void *arg)
{
    struct fixture *f = arg;

    server_stop(f->ts.srv);
    return NULL;
}

static void test_stop_finishes_the_write_in_flight(void **state)
{
    static const char doc[] = "{\"id\":\"last\",\"title\":\"last word\"}\n";
    struct fixture *f = *state;
    struct httpc_conn writer, probe;
    struct httpc_reply r;
    pthread_t stopper;

    start(f, 1, NULL, 0, 0, 0);
    hold_arm();
    assert_true(httpc_open(&writer, f->ts.port, TEST_SERVER_IO_TIMEOUT_S));
    send_post(&writer, doc, sizeof doc - 1);
    hold_wait_entered();
    assert_int_equal(pthread_create(&stopper, NULL, stop_main, f), 0);
    /* the stop has begun once nothing accepts any more */
    bool refused = false;
    for (int round = 0; round < POLL_MAX_ROUNDS && !refused; round++) {
        if (round)
            sleep_ms(POLL_SLEEP_MS);
        refused = !httpc_open(&probe, f->ts.port, TEST_SERVER_IO_TIMEOUT_S);
        httpc_close(&probe);
    }
    assert_true(refused);
    hold_release();
    assert_true(httpc_read_reply(&writer, &r));
    assert_int_equal(r.status, 200);
    json_t *v = test_parse_body(&r);
    assert_int_equal(json_integer_value(json_object_get(v, "indexed")), 1);
    json_decref(v);
    assert_closes(&r, &writer, "the reply during a stop");
    httpc_reply_fini(&r);
    httpc_close(&writer);
    pthread_join(stopper, NULL);
    f->ts.srv = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_malformed_and_ambiguous_requests_are_json_and_close,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunk_extensions_and_absolute_targets_are_served,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_writes_are_refused_on_their_head_before_the_body,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_client_past_its_limit_gets_429, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_idle_keep_alive_connections_make_room_oldest_first,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_at_the_limit_with_none_idle_a_newcomer_gets_503,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_are_answered_while_a_write_runs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writes_are_in_flight_together, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_client_gone_during_a_write_is_freed_after_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_finishes_the_write_in_flight, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
