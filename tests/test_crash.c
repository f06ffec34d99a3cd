/*
 * Crash tests of the real `xun serve` process (API.md: "a crash or kill -9
 * right after loses nothing acknowledged").
 *
 * The crash loop runs the binary named by $XUN_BIN (make test sets it to
 * build/san/xun) over one data folder, round after round: start it, check
 * what the rounds before left behind, let a writer thread send PUTs of new
 * documents (and, from the start, in the even rounds and the graceful
 * ones, DELETEs of older ones) while the main thread sleeps a random
 * 50..400 ms, then SIGKILL the server. Each request
 * ends in one of three ways, and the next start must show:
 *   acknowledged (a 2xx reply came back)   the write, fully: GET and /search agree
 *   in doubt (sent, no complete reply)     either all of the write or none of it
 *   not sent (the connection was refused)  nothing of it
 * Every fourth round sends SIGTERM instead and then, in turn, lets the
 * graceful stop finish (its checkpoint writes segments, deletions and the
 * MANIFEST), or SIGKILLs it while it drains, or about when it checkpoints.
 * Each start also checks that a word every document has counts exactly
 * the documents there (nothing twice), and the last one checks every
 * document ever written. The random choices come from a fixed seed, so a
 * failing run can be replayed (timing still varies).
 *
 * The second test damages a segment file of a stopped server (a byte in the
 * middle, a header byte, the file cut short) and expects `xun serve` to
 * refuse to start: exit status non-zero, a message on stderr naming the
 * file, no signal, no sanitizer report; with the file mended it serves
 * everything again.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/httpc.h"
#include "tests/testutil.h"

#define CRASH_ROUNDS 24
#define CRASH_SEED 0x78756e2d6b696c6cull   /* "xun-kill": fixed, so runs repeat */
#define KILL_DELAY_MIN_MS 50
#define KILL_DELAY_MAX_MS 400
/* after SIGTERM, server_stop() drains for 500 ms, then the writer checkpoints */
#define DRAIN_KILL_MIN_MS 50
#define DRAIN_KILL_MAX_MS 400
#define CHECKPOINT_KILL_MIN_MS 480
#define CHECKPOINT_KILL_MAX_MS 600
#define PAUSE_MIN_MS 3            /* between a writer's requests, most of the time */
#define PAUSE_MAX_MS 16
#define MAX_OPS_PER_ROUND 400     /* a bound only: the kill comes long before */
#define MAX_DOCS (CRASH_ROUNDS * MAX_OPS_PER_ROUND)
#define MAX_DELETES_PER_ROUND 3
/* start-up of the ASan binary with a log to replay, and a killed or refusing
 * server going: hang detectors only */
#define HEALTH_TIMEOUT_MS TEST_HANG_MS
#define EXIT_TIMEOUT_MS TEST_HANG_MS
#define HTTP_IO_TIMEOUT_S 10
#define LISTEN_ATTEMPTS 5         /* a free port can be taken between probe and bind */
#define LOG_TAIL_BYTES 3000
#define DAMAGE_DOCS 40

/* ---- time, randomness ---- */

/* splitmix64: small, and the same numbers on every machine */
static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A number in [lo, hi]. */
static unsigned rng_range(uint64_t *state, unsigned lo, unsigned hi)
{
    return lo + (unsigned)(rng_next(state) % (uint64_t)(hi - lo + 1));
}

/* ---- requests, through tests/httpc.h ---- */

/* One request (body NULL or a string) on a fresh connection, closed after the reply. */
static bool http_request(uint16_t port, const char *method, const char *target,
                         const char *body, struct httpc_reply *r)
{
    return httpc_request_once(port, HTTP_IO_TIMEOUT_S, method, target, NULL, body,
                              body ? strlen(body) : 0, r);
}

/* ---- the server process ---- */

struct server_proc {
    pid_t pid;      /* 0: not running */
    uint16_t port;
    int stderr_fd;  /* read end of its stderr when captured, else -1 */
};

static pid_t live_pid; /* the server this test started and has not reaped; for teardown */

static const char *xun_bin(void)
{
    const char *bin = getenv("XUN_BIN");

    if (!bin || !*bin) {
        print_message("XUN_BIN is not set; it names the xun binary to crash "
                      "(make test sets XUN_BIN=build/san/xun): skipping\n");
        skip();
    }
    if (access(bin, X_OK) != 0)
        fail_msg("XUN_BIN=%s: not an executable file (%s)", bin, strerror(errno));
    return bin;
}

/* A port nothing listens on now: bind port 0 on loopback and read it back. */
static uint16_t free_port(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/*
 * Starts `xun serve` on dir and a free loopback port. Its stdout and stderr
 * go to log_path (appended) or, when log_path is NULL, to a pipe whose read
 * end is p->stderr_fd.
 */
static void server_spawn(const char *bin, const char *dir, const char *log_path,
                         struct server_proc *p)
{
    char listen_arg[32];
    int pipe_fds[2] = { -1, -1 };

    p->port = free_port();
    p->stderr_fd = -1;
    snprintf(listen_arg, sizeof listen_arg, "127.0.0.1:%u", p->port);
    char *const argv[] = { (char *)bin, (char *)"serve", (char *)"--data", (char *)dir,
                           (char *)"--listen", listen_arg, (char *)"--quiet",
                           (char *)"--threads", (char *)"2", (char *)"--query-timeout",
                           (char *)"0", NULL };
    if (!log_path)
        assert_int_equal(pipe2(pipe_fds, O_CLOEXEC), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* only async-signal-safe calls until exec */
        int out = log_path ? open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644) : pipe_fds[1];
        int devnull = open("/dev/null", O_RDONLY);
        if (out < 0 || devnull < 0 || dup2(devnull, 0) < 0 || dup2(out, 1) < 0 ||
            dup2(out, 2) < 0)
            _exit(126);
        execv(bin, argv);
        _exit(127);
    }
    p->pid = pid;
    live_pid = pid;
    if (!log_path) {
        close(pipe_fds[1]);
        p->stderr_fd = pipe_fds[0];
    }
}

/* Reaps the server if it has ended; true then, with its wait status. */
static bool server_ended(struct server_proc *p, int *status)
{
    pid_t got;

    do
        got = waitpid(p->pid, status, WNOHANG);
    while (got < 0 && errno == EINTR);
    assert_true(got >= 0);
    if (got == 0)
        return false;
    p->pid = 0;
    live_pid = 0;
    return true;
}

/* Waits (bounded) for the server to end; its wait status. */
static int server_wait(struct server_proc *p)
{
    uint64_t start = test_now_ms();
    int status = 0;

    while (!server_ended(p, &status)) {
        if (test_now_ms() - start > EXIT_TIMEOUT_MS)
            fail_msg("server %d did not end within %d ms", (int)p->pid, EXIT_TIMEOUT_MS);
        test_sleep_ms(5);
    }
    return status;
}

static void print_log_tail(const char *log_path)
{
    char buf[LOG_TAIL_BYTES + 1];
    int fd = open(log_path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return;
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > LOG_TAIL_BYTES ? size - LOG_TAIL_BYTES : 0;
    ssize_t n = pread(fd, buf, LOG_TAIL_BYTES, from);
    close(fd);
    if (n > 0) {
        buf[n] = '\0';
        print_error("---- server log (%s), last %zd bytes ----\n%s\n----\n", log_path, n, buf);
    }
}

static bool log_contains(const char *log_path, const char *needle);

/* A sanitizer report: an AddressSanitizer error, a UBSan runtime error, or a leak. */
static bool text_has_sanitizer_error(const char *text)
{
    return strstr(text, "ERROR: AddressSanitizer") || strstr(text, "runtime error") ||
           strstr(text, "LeakSanitizer");
}

static bool log_has_sanitizer_error(const char *log_path)
{
    return log_contains(log_path, "ERROR: AddressSanitizer") ||
           log_contains(log_path, "runtime error") || log_contains(log_path, "LeakSanitizer");
}

/* The wait status of a graceful stop is a clean exit: status 0 (a leak report would make it 1). */
static bool clean_exit(int status)
{
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static bool log_contains(const char *log_path, const char *needle)
{
    FILE *f = fopen(log_path, "re");
    char line[1024];
    bool found = false;

    if (!f)
        return false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* Starts the server and waits (bounded) until /health answers 200. */
static void server_start_healthy(const char *bin, const char *dir, const char *log_path,
                                 struct server_proc *p)
{
    for (int attempt = 0; attempt < LISTEN_ATTEMPTS; attempt++) {
        server_spawn(bin, dir, log_path, p);
        uint64_t start = test_now_ms();
        int status;
        while (test_now_ms() - start < HEALTH_TIMEOUT_MS) {
            struct httpc_reply r;
            if (http_request(p->port, "GET", "/health", NULL, &r)) {
                int code = r.status;
                httpc_reply_fini(&r);
                if (code == 200)
                    return;
            }
            if (server_ended(p, &status)) {
                if (log_contains(log_path, "cannot listen"))
                    break; /* the port was taken meanwhile: another one */
                print_log_tail(log_path);
                fail_msg("xun serve --data %s ended before answering /health: status 0x%x",
                         dir, status);
            }
            test_sleep_ms(10);
        }
        if (p->pid) {
            print_log_tail(log_path);
            fail_msg("xun serve did not answer /health within %d ms", HEALTH_TIMEOUT_MS);
        }
    }
    fail_msg("xun serve could not listen in %d attempts", LISTEN_ATTEMPTS);
}

/* ---- the crash loop ---- */

struct doc {
    char id[24];
    char token[24];   /* a word no other document has */
    bool present;     /* what the last check found (or was certain of) */
};

enum op_kind { OP_PUT, OP_DELETE };
enum op_outcome { OUT_NOT_SENT, OUT_IN_DOUBT, OUT_ACKED };

struct op {
    enum op_kind kind;
    uint32_t doc;
    enum op_outcome outcome;
};

struct crash_state {
    struct doc docs[MAX_DOCS];
    uint32_t n_docs;
    /* totals over the run */
    unsigned puts_acked, puts_doubt, puts_doubt_present, puts_not_sent;
    unsigned deletes_acked, deletes_doubt, deletes_doubt_done;
    unsigned graceful_rounds, graceful_exits;
    unsigned lost;
};

struct writer_thread {
    pthread_t thread;
    struct crash_state *st;
    uint16_t port;
    unsigned round;
    uint64_t rng;
    atomic_bool stop;
    uint32_t delete_docs[MAX_DELETES_PER_ROUND]; /* present documents to delete */
    unsigned n_delete_docs;
    struct op ops[MAX_OPS_PER_ROUND];
    unsigned n_ops;
    char why[300]; /* set on an answer no valid request should get */
};

static void doc_body(const struct doc *d, unsigned round, char *out, size_t cap)
{
    snprintf(out, cap,
             "{\"id\":\"%s\",\"title\":\"崩溃测试 %s\",\"body\":\"crashall round%u\","
             "\"tags\":[\"crash\"],\"date\":\"2024-01-%02u\"}",
             d->id, d->token, round, 1 + round % 28);
}

/* One request of the writer; the outcome, or why the answer was wrong. */
static enum op_outcome writer_send(struct writer_thread *w, struct httpc_conn *c, bool *open,
                                   const struct op *op)
{
    struct doc *d = &w->st->docs[op->doc];
    const char *method = op->kind == OP_PUT ? "PUT" : "DELETE";
    char target[64], body[256] = "";
    struct httpc_reply r;

    snprintf(target, sizeof target, "/documents/%s", d->id);
    if (op->kind == OP_PUT)
        doc_body(d, w->round, body, sizeof body);
    if (!*open && !(*open = httpc_open(c, w->port, HTTP_IO_TIMEOUT_S)))
        return OUT_NOT_SENT; /* refused: the server is gone; nothing reached it */
    if (!httpc_request(c, method, target, NULL, body, strlen(body), &r)) {
        httpc_close(c);
        *open = false;
        return OUT_IN_DOUBT;
    }
    enum op_outcome outcome = OUT_IN_DOUBT;
    const char *want = op->kind == OP_PUT ? "\"result\":\"created\"" : "\"result\":\"deleted\"";
    int want_status = op->kind == OP_PUT ? 201 : 200;
    if (r.status == want_status && strstr(r.body, want))
        outcome = OUT_ACKED;
    else if (r.status != 503) /* 503: shutting down; anything else is wrong */
        snprintf(w->why, sizeof w->why, "%s %s: %d %.200s", method, target, r.status, r.body);
    httpc_reply_fini(&r);
    return outcome;
}

static void *writer_main(void *arg)
{
    struct writer_thread *w = arg;
    struct crash_state *st = w->st;
    struct httpc_conn c = { .fd = -1 };
    bool open = false;
    unsigned deletes_done = 0;

    while (w->n_ops < MAX_OPS_PER_ROUND && !atomic_load(&w->stop) && !w->why[0]) {
        struct op *op = &w->ops[w->n_ops];
        if (deletes_done < w->n_delete_docs && rng_range(&w->rng, 0, 3) == 0) {
            *op = (struct op){ .kind = OP_DELETE, .doc = w->delete_docs[deletes_done++] };
        } else {
            if (st->n_docs == MAX_DOCS)
                break;
            struct doc *d = &st->docs[st->n_docs];
            snprintf(d->id, sizeof d->id, "r%u-%u", w->round, w->n_ops);
            snprintf(d->token, sizeof d->token, "zq%ux%u", w->round, w->n_ops);
            d->present = false;
            *op = (struct op){ .kind = OP_PUT, .doc = st->n_docs++ };
        }
        op->outcome = writer_send(w, &c, &open, op);
        w->n_ops++;
        if (op->outcome == OUT_NOT_SENT)
            break;
        /* a few back to back, so that kills land mid-request too */
        if (rng_range(&w->rng, 0, 4))
            test_sleep_ms(rng_range(&w->rng, PAUSE_MIN_MS, PAUSE_MAX_MS));
    }
    if (open)
        httpc_close(&c);
    return NULL;
}

/* GET /documents/{id}: true for 200 (checking the body), false for 404. */
static bool doc_gettable(uint16_t port, const struct doc *d)
{
    char target[64];
    struct httpc_reply r;

    snprintf(target, sizeof target, "/documents/%s", d->id);
    if (!http_request(port, "GET", target, NULL, &r))
        fail_msg("GET %s: no reply", target);
    if (r.status != 200 && r.status != 404)
        fail_msg("GET %s: %d %.200s", target, r.status, r.body);
    bool found = r.status == 200;
    if (found) {
        json_error_t jerr;
        json_t *v = json_loadb(r.body, r.body_len, 0, &jerr);
        const char *id = json_string_value(json_object_get(v, "id"));
        const char *title = json_string_value(json_object_get(v, "title"));
        if (!v || !id || strcmp(id, d->id) != 0 || !title || !strstr(title, d->token))
            fail_msg("GET %s: a damaged document: %.300s", target, r.body);
        json_decref(v);
    }
    httpc_reply_fini(&r);
    return found;
}

/* The /search total for a one-word query; with want_id, checks the single hit is it. */
static long search_total(uint16_t port, const char *word, const char *want_id)
{
    char target[128];
    struct httpc_reply r;

    snprintf(target, sizeof target, "/search?q=%s&exact_total=1&highlight=0&limit=2", word);
    if (!http_request(port, "GET", target, NULL, &r))
        fail_msg("GET %s: no reply", target);
    if (r.status != 200)
        fail_msg("GET %s: %d %.200s", target, r.status, r.body);
    json_error_t jerr;
    json_t *v = json_loadb(r.body, r.body_len, 0, &jerr);
    json_t *total = json_object_get(v, "total");
    if (!json_is_integer(total))
        fail_msg("GET %s: no total: %.200s", target, r.body);
    long n = (long)json_integer_value(total);
    if (want_id && n == 1) {
        const char *id = json_string_value(
            json_object_get(json_array_get(json_object_get(v, "hits"), 0), "id"));
        if (!id || strcmp(id, want_id) != 0)
            fail_msg("GET %s: the hit is %s, want %s", target, id ? id : "(none)", want_id);
    }
    json_decref(v);
    httpc_reply_fini(&r);
    return n;
}

enum expect { EXPECT_PRESENT, EXPECT_ABSENT, EXPECT_EITHER };

static const char *expect_name(enum expect e)
{
    return e == EXPECT_PRESENT ? "present" : e == EXPECT_ABSENT ? "absent" : "either";
}

/*
 * Checks one document after a restart: GET and /search must agree (a
 * document GET finds is searchable, one GET does not find never is), and the
 * state must be the expected one. No waiting: a start publishes what the log
 * held before the server listens (writer_start), and nothing writes while the
 * checks run, so GET and /search see one snapshot. Returns whether it is there.
 */
static bool check_doc(uint16_t port, struct crash_state *st, const struct doc *d,
                      enum expect want)
{
    bool there = doc_gettable(port, d);
    long total = search_total(port, d->token, d->id);

    if (there && total != 1)
        fail_msg("%s: half there: GET finds it, /search for %s has %ld hits", d->id, d->token,
                 total);
    if (!there && total != 0)
        fail_msg("%s: half there: GET says 404, /search for %s has %ld hits", d->id, d->token,
                 total);
    if ((want == EXPECT_PRESENT && !there) || (want == EXPECT_ABSENT && there)) {
        if (want == EXPECT_PRESENT)
            st->lost++;
        fail_msg("%s: want %s after the crash, it is %s", d->id, expect_name(want),
                 there ? "there" : "gone");
    }
    return there;
}

/* Checks what the writes of one round left, and records the states found. */
static void check_round(uint16_t port, struct crash_state *st, const struct writer_thread *w)
{
    for (unsigned i = 0; i < w->n_ops; i++) {
        const struct op *op = &w->ops[i];
        struct doc *d = &st->docs[op->doc];
        enum expect want = EXPECT_EITHER;
        if (op->kind == OP_PUT)
            want = op->outcome == OUT_ACKED      ? EXPECT_PRESENT
                   : op->outcome == OUT_NOT_SENT ? EXPECT_ABSENT
                                                 : EXPECT_EITHER;
        else
            want = op->outcome == OUT_ACKED      ? EXPECT_ABSENT
                   : op->outcome == OUT_NOT_SENT ? EXPECT_PRESENT
                                                 : EXPECT_EITHER;
        d->present = check_doc(port, st, d, want);
        if (op->kind == OP_PUT) {
            st->puts_acked += op->outcome == OUT_ACKED;
            st->puts_not_sent += op->outcome == OUT_NOT_SENT;
            if (op->outcome == OUT_IN_DOUBT) {
                st->puts_doubt++;
                st->puts_doubt_present += d->present;
            }
        } else {
            st->deletes_acked += op->outcome == OUT_ACKED;
            if (op->outcome == OUT_IN_DOUBT) {
                st->deletes_doubt++;
                st->deletes_doubt_done += !d->present;
            }
        }
    }
}

/* Every document there is counted once by a word they all have; none is there twice. */
static void check_total(uint16_t port, const struct crash_state *st)
{
    long want = 0;

    for (uint32_t i = 0; i < st->n_docs; i++)
        want += st->docs[i].present;
    long total = search_total(port, "crashall", NULL);
    if (total != want)
        fail_msg("/search crashall: %ld documents, want %ld", total, want);
}

struct crash_fixture {
    char *dir;      /* the index folder */
    char *log_dir;  /* the server's log, outside the index folder */
    char log_path[4096];
    struct crash_state *st;
    struct writer_thread *writer;
    unsigned char *saved; /* a file's good bytes, while a damaged copy is tried */
};

static int crash_setup(void **state)
{
    struct crash_fixture *f = calloc(1, sizeof *f);

    if (!f)
        return -1;
    *state = f;
    unsetenv("XUN_API_KEY"); /* the server must take writes without a key */
    f->dir = test_mkdtemp();
    f->log_dir = test_mkdtemp();
    f->st = calloc(1, sizeof *f->st);
    f->writer = calloc(1, sizeof *f->writer);
    if (!f->dir || !f->log_dir || !f->st || !f->writer)
        return -1;
    snprintf(f->log_path, sizeof f->log_path, "%s/server.log", f->log_dir);
    return 0;
}

static int crash_teardown(void **state)
{
    struct crash_fixture *f = *state;
    int status;

    if (live_pid > 0) { /* a failed assertion left our server running */
        kill(live_pid, SIGKILL);
        while (waitpid(live_pid, &status, 0) < 0 && errno == EINTR)
            continue;
        live_pid = 0;
    }
    if (!f)
        return 0;
    test_rmtree(f->dir);
    test_rmtree(f->log_dir);
    free(f->dir);
    free(f->log_dir);
    free(f->st);
    free(f->writer);
    free(f->saved);
    free(f);
    return 0;
}

/* The writer of one round, its deletes chosen among the documents there now. */
static void writer_prepare(struct writer_thread *w, struct crash_state *st, uint16_t port,
                           unsigned round, uint64_t *rng)
{
    *w = (struct writer_thread){ .st = st, .port = port, .round = round,
                                 .rng = CRASH_SEED ^ (0x1000193ull * (round + 1)) };
    atomic_init(&w->stop, false);
    /* even rounds, and the graceful ones (round % 4 == 1), whose stop checkpoints */
    if (round % 2 != 0 && round % 4 != 1)
        return;
    unsigned want = rng_range(rng, 1, MAX_DELETES_PER_ROUND);
    for (unsigned tries = 0; tries < 50 && w->n_delete_docs < want && st->n_docs; tries++) {
        /* the older half: some sit in checkpointed segments, whose deletions are files */
        uint32_t k = (uint32_t)(rng_next(rng) % ((st->n_docs + 1) / 2));
        bool taken = false;
        for (unsigned j = 0; j < w->n_delete_docs; j++)
            taken |= w->delete_docs[j] == k;
        if (st->docs[k].present && !taken)
            w->delete_docs[w->n_delete_docs++] = k;
    }
}

static void test_kill_9_loses_no_acknowledged_write(void **state)
{
    struct crash_fixture *f = *state;
    struct crash_state *st = f->st;
    const char *bin = xun_bin();
    struct server_proc p;
    uint64_t rng = CRASH_SEED;
    struct writer_thread *w = f->writer;
    uint64_t start = test_now_ms();

    for (unsigned round = 0; round < CRASH_ROUNDS; round++) {
        server_start_healthy(bin, f->dir, f->log_path, &p);
        if (round > 0) {
            check_round(p.port, st, w);
            check_total(p.port, st);
        }

        writer_prepare(w, st, p.port, round, &rng);
        /*
         * Every fourth round stops gracefully, in turn: to the end (a checkpoint,
         * then exit 0), SIGKILLed while draining, SIGKILLed about when it checkpoints.
         */
        bool graceful = round % 4 == 1;
        unsigned stop_kind = (round / 4) % 3;
        unsigned delay = rng_range(&rng, KILL_DELAY_MIN_MS, KILL_DELAY_MAX_MS);
        unsigned stop_delay =
            stop_kind == 1 ? rng_range(&rng, DRAIN_KILL_MIN_MS, DRAIN_KILL_MAX_MS)
                           : rng_range(&rng, CHECKPOINT_KILL_MIN_MS, CHECKPOINT_KILL_MAX_MS);
        assert_int_equal(pthread_create(&w->thread, NULL, writer_main, w), 0);
        test_sleep_ms(delay);
        int status = 0;
        bool ended = server_ended(&p, &status);
        if (!ended && graceful) {
            assert_int_equal(kill(p.pid, SIGTERM), 0);
            if (stop_kind == 0) {
                status = server_wait(&p);
                ended = true;
            } else {
                test_sleep_ms(stop_delay);
                ended = server_ended(&p, &status);
            }
            st->graceful_rounds++;
            st->graceful_exits += ended;
        }
        if (!ended) {
            assert_int_equal(kill(p.pid, SIGKILL), 0);
            status = server_wait(&p);
        }
        atomic_store(&w->stop, true);
        assert_int_equal(pthread_join(w->thread, NULL), 0);
        bool killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
        if (!killed && !(graceful && clean_exit(status))) {
            print_log_tail(f->log_path);
            fail_msg("round %u: the server ended by itself, wait status 0x%x", round, status);
        }
        if (w->why[0])
            fail_msg("round %u: %s", round, w->why);
    }

    /* the last round's writes, then every document ever written */
    server_start_healthy(bin, f->dir, f->log_path, &p);
    check_round(p.port, st, w);
    check_total(p.port, st);
    for (uint32_t i = 0; i < st->n_docs; i++)
        check_doc(p.port, st, &st->docs[i],
                  st->docs[i].present ? EXPECT_PRESENT : EXPECT_ABSENT);
    assert_int_equal(kill(p.pid, SIGKILL), 0);
    server_wait(&p);

    /* sanitizer reports of the servers, which were killed before they could exit */
    if (log_has_sanitizer_error(f->log_path)) {
        print_log_tail(f->log_path);
        fail_msg("a server reported a sanitizer error (log above)");
    }
    print_message("crash loop: %u rounds, %u documents acknowledged, %u lost "
                  "(in doubt: %u PUTs, %u of them kept; %u not sent; "
                  "deletes: %u acknowledged, %u in doubt, %u of them done; "
                  "%u graceful stops, %u of them to the end; %.1f s)\n",
                  CRASH_ROUNDS, st->puts_acked, st->lost, st->puts_doubt,
                  st->puts_doubt_present, st->puts_not_sent, st->deletes_acked,
                  st->deletes_doubt, st->deletes_doubt_done, st->graceful_rounds,
                  st->graceful_exits, (double)(test_now_ms() - start) / 1000.0);
    assert_int_equal(st->lost, 0);
    assert_true(st->puts_acked > 0);
}

/* ---- a damaged segment ---- */

/* The largest seg-*.xseg in dir, by name into out. */
static void largest_segment(const char *dir, char *out, size_t cap)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    off_t best = -1;

    assert_non_null(d);
    out[0] = '\0';
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "seg-", 4) != 0 || len < 9 ||
            strcmp(e->d_name + len - 5, ".xseg") != 0)
            continue;
        char path[4096];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &sb) == 0 && sb.st_size > best) {
            best = sb.st_size;
            snprintf(out, cap, "%s", e->d_name);
        }
    }
    closedir(d);
    if (!out[0])
        fail_msg("no seg-*.xseg in %s", dir);
}

static void read_file(const char *path, unsigned char **data, size_t *len)
{
    struct stat sb;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &sb), 0);
    *len = (size_t)sb.st_size;
    *data = malloc(*len ? *len : 1);
    assert_non_null(*data);
    assert_int_equal(pread(fd, *data, *len, 0), (ssize_t)*len);
    close(fd);
}

static void write_file(const char *path, const unsigned char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);

    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, data, len, 0), (ssize_t)len);
    assert_int_equal(fsync(fd), 0);
    close(fd);
}

/* Runs `xun serve` on dir, which must refuse to start; its stderr into out. */
static int serve_refusing(const char *bin, const char *dir, char *out, size_t cap)
{
    struct server_proc p;
    size_t len = 0;
    uint64_t start = test_now_ms();
    int status = 0;
    bool ended = false;

    server_spawn(bin, dir, NULL, &p);
    assert_int_not_equal(fcntl(p.stderr_fd, F_SETFL, O_NONBLOCK), -1);
    out[0] = '\0';
    for (;;) {
        ssize_t n = len + 1 < cap ? read(p.stderr_fd, out + len, cap - len - 1) : 0;
        if (n > 0) {
            len += (size_t)n;
            out[len] = '\0';
            continue;
        }
        if (n == 0 && ended)
            break; /* all of it read */
        if (!ended)
            ended = server_ended(&p, &status);
        if (ended && (n == 0 || len + 1 >= cap))
            break;
        if (test_now_ms() - start > EXIT_TIMEOUT_MS) {
            if (!ended) {
                kill(p.pid, SIGKILL);
                server_wait(&p);
            }
            close(p.stderr_fd);
            fail_msg("xun serve on a damaged index still ran after %d ms; stderr: %s",
                     EXIT_TIMEOUT_MS, out);
        }
        test_sleep_ms(5);
    }
    close(p.stderr_fd);
    return status;
}

static void test_damaged_segment_stops_serve_with_the_file_named(void **state)
{
    static const struct {
        const char *what;
        int where; /* -1: the middle byte, -2: truncate to half, else an offset */
    } damages[] = {
        { "a byte in the middle flipped", -1 },
        { "a header byte flipped (n_docs)", 16 },
        { "cut to half its length", -2 },
    };
    struct crash_fixture *f = *state;
    const char *bin = xun_bin();
    struct server_proc p;
    char seg[256], path[4096], err_text[8192];
    unsigned char *good;
    size_t good_len;

    /* a stopped server's folder: documents written, then a graceful stop */
    server_start_healthy(bin, f->dir, f->log_path, &p);
    char body[DAMAGE_DOCS * 96], indexed[32];
    size_t body_len = 0;
    for (unsigned i = 0; i < DAMAGE_DOCS; i++) { /* one POST: one segment */
        int n = snprintf(body + body_len, sizeof body - body_len,
                         "{\"id\":\"dmg-%u\",\"title\":\"损坏测试 damageword w%u\"}\n", i, i);
        assert_true(n > 0 && (size_t)n < sizeof body - body_len);
        body_len += (size_t)n;
    }
    struct httpc_reply r;
    assert_true(http_request(p.port, "POST", "/documents", body, &r));
    snprintf(indexed, sizeof indexed, "\"indexed\":%d", DAMAGE_DOCS);
    if (r.status != 200 || !strstr(r.body, indexed))
        fail_msg("POST /documents: %d %.200s", r.status, r.body);
    httpc_reply_fini(&r);
    assert_int_equal(kill(p.pid, SIGTERM), 0);
    int status = server_wait(&p);
    if (!clean_exit(status)) {
        print_log_tail(f->log_path);
        fail_msg("the graceful stop ended with wait status 0x%x", status);
    }

    largest_segment(f->dir, seg, sizeof seg);
    snprintf(path, sizeof path, "%s/%s", f->dir, seg);
    read_file(path, &good, &good_len);
    f->saved = good;
    assert_true(good_len > 256);
    for (size_t i = 0; i < sizeof damages / sizeof *damages; i++) {
        write_file(path, good, good_len);
        if (damages[i].where == -2) {
            assert_int_equal(truncate(path, (off_t)(good_len / 2)), 0);
        } else {
            size_t at = damages[i].where == -1 ? good_len / 2 : (size_t)damages[i].where;
            unsigned char flipped = good[at] ^ 0x5a;
            int fd = open(path, O_WRONLY | O_CLOEXEC);
            assert_true(fd >= 0);
            assert_int_equal(pwrite(fd, &flipped, 1, (off_t)at), 1);
            close(fd);
        }

        status = serve_refusing(bin, f->dir, err_text, sizeof err_text);
        if (WIFSIGNALED(status))
            fail_msg("%s, %s: xun serve died of signal %d; stderr: %s", seg, damages[i].what,
                     WTERMSIG(status), err_text);
        if (!WIFEXITED(status) || WEXITSTATUS(status) == 0)
            fail_msg("%s, %s: xun serve exited with status 0; stderr: %s", seg,
                     damages[i].what, err_text);
        if (!strstr(err_text, seg))
            fail_msg("%s, %s: stderr does not name the file: %s", seg, damages[i].what,
                     err_text);
        if (text_has_sanitizer_error(err_text))
            fail_msg("%s, %s: a sanitizer report: %s", seg, damages[i].what, err_text);

        /* refusing left the folder alone: with the file mended, everything is back */
        write_file(path, good, good_len);
        server_start_healthy(bin, f->dir, f->log_path, &p);
        assert_int_equal(search_total(p.port, "damageword", NULL), DAMAGE_DOCS);
        assert_int_equal(kill(p.pid, SIGKILL), 0);
        server_wait(&p);
    }
}

/* ---- a damaged log: refused, named, and served again only after xun repair ---- */

/* The status of GET /documents/id (200 or 404; anything else fails). */
static int doc_status(uint16_t port, const char *id)
{
    char target[64];
    struct httpc_reply r;

    snprintf(target, sizeof target, "/documents/%s", id);
    if (!http_request(port, "GET", target, NULL, &r))
        fail_msg("GET %s: no reply", target);
    int status = r.status;
    httpc_reply_fini(&r);
    if (status != 200 && status != 404)
        fail_msg("GET %s: %d", target, status);
    return status;
}

/* Runs `xun ARGS…` (argv without the binary, NULL-ended) to its end; its output into out. */
static int run_xun(const char *bin, const char *const *args, char *out, size_t cap)
{
    int fds[2];
    size_t len = 0;
    int status;

    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[16] = { (char *)bin };
        for (size_t i = 0; args[i] && i + 2 < sizeof argv / sizeof *argv; i++)
            argv[i + 1] = (char *)args[i];
        if (dup2(fds[1], 1) < 0 || dup2(fds[1], 2) < 0)
            _exit(126);
        execv(bin, argv);
        _exit(127);
    }
    close(fds[1]);
    for (ssize_t n; len + 1 < cap && (n = read(fds[0], out + len, cap - len - 1)) != 0;)
        if (n > 0)
            len += (size_t)n;
        else if (errno != EINTR)
            break;
    out[len] = '\0';
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0)
        assert_int_equal(errno, EINTR);
    return status;
}

static int run_repair(const char *bin, const char *dir, char *out, size_t cap)
{
    const char *const args[] = { "repair", "--data", dir, NULL };
    return run_xun(bin, args, out, cap);
}

/* The log the folder's MANIFEST names. */
static void manifest_log(const char *dir, char *path, size_t cap)
{
    char manifest[4096], *text = NULL;
    unsigned char *data;
    size_t len;

    snprintf(manifest, sizeof manifest, "%s/MANIFEST", dir);
    read_file(manifest, &data, &len);
    text = (char *)data;
    text[len - 1] = '\0';
    char *line = strstr(text, "\nwal ");
    assert_non_null(line);
    line += 5;
    line[strcspn(line, "\n")] = '\0';
    snprintf(path, cap, "%s/%s", dir, line);
    free(data);
}

/*
 * The reproductions: the last record of an acknowledged DELETE with
 * a bit flipped, or the log cut inside its batches. Before, the server
 * started, cut the log and brought the deleted document back without a
 * word; now it refuses, naming the log and what is at stake, until
 * `xun repair` sets the damage aside (and says so).
 */
static void test_damaged_log_stops_serve_until_repair(void **state)
{
    struct crash_fixture *f = *state;
    const char *bin = xun_bin();
    struct server_proc p;
    char log_path[4096], text[8192];
    unsigned char *good;
    size_t good_len;

    server_start_healthy(bin, f->dir, f->log_path, &p);
    static const char *const puts_[] = { "log-1", "log-2", "log-3" };
    for (size_t i = 0; i < 3; i++) {
        char target[64], body[96];
        struct httpc_reply r;
        snprintf(target, sizeof target, "/documents/%s", puts_[i]);
        snprintf(body, sizeof body, "{\"title\":\"logword %s\"}", puts_[i]);
        assert_true(http_request(p.port, "PUT", target, body, &r));
        assert_int_equal(r.status, 201);
        httpc_reply_fini(&r);
    }
    struct httpc_reply r;
    assert_true(http_request(p.port, "DELETE", "/documents/log-2", NULL, &r));
    assert_int_equal(r.status, 200);
    httpc_reply_fini(&r);
    assert_int_equal(kill(p.pid, SIGKILL), 0); /* before any checkpoint: all in the log */
    server_wait(&p);

    manifest_log(f->dir, log_path, sizeof log_path);
    read_file(log_path, &good, &good_len);
    f->saved = good;
    size_t end = good_len;
    while (end && !good[end - 1])
        end--;
    assert_true(end > 100);
    const char *log_name = strrchr(log_path, '/') + 1;
    /* 0: a bit flipped; 1: cut inside the last batch; 2: cut exactly at its
     * end (`truncate -s`): the file is always whole steps, so batches are lost */
    for (int damage = 0; damage < 3; damage++) {
        write_file(log_path, good, good_len);
        if (damage == 0) {
            unsigned char flipped = good[end - 1] ^ 0x01; /* the DELETE's id */
            int fd = open(log_path, O_WRONLY | O_CLOEXEC);
            assert_true(fd >= 0);
            assert_int_equal(pwrite(fd, &flipped, 1, (off_t)(end - 1)), 1);
            close(fd);
        } else {
            assert_int_equal(truncate(log_path, (off_t)(damage == 1 ? end - 5 : end)), 0);
        }
        int status = serve_refusing(bin, f->dir, text, sizeof text);
        if (!WIFEXITED(status) || WEXITSTATUS(status) == 0)
            fail_msg("damage %d: xun serve started on a damaged log; stderr: %s", damage, text);
        if (!strstr(text, log_name) || !strstr(text, "xun repair") ||
            !strstr(text, "acknowledged records"))
            fail_msg("damage %d: the refusal does not say what and how: %s", damage, text);
        if (text_has_sanitizer_error(text))
            fail_msg("damage %d: a sanitizer report: %s", damage, text);
    }
    /* cut exactly after the last batch, then repair: every batch kept, said so */
    write_file(log_path, good, good_len);
    assert_int_equal(truncate(log_path, (off_t)end), 0);
    int cut_status = run_repair(bin, f->dir, text, sizeof text);
    if (!WIFEXITED(cut_status) || WEXITSTATUS(cut_status) != 0 ||
        !strstr(text, "cut short after a batch") || !strstr(text, "every batch in it is kept"))
        fail_msg("xun repair of a log cut after a batch: status 0x%x: %s", cut_status, text);
    struct stat cut_st;
    assert_int_equal(stat(log_path, &cut_st), 0);
    assert_int_equal(cut_st.st_size % (1 << 20), 0); /* grown back to a whole step */
    /* the flipped bit again, then repair: the DELETE's batch is set aside, said so */
    write_file(log_path, good, good_len);
    unsigned char flipped = good[end - 1] ^ 0x01;
    int fd = open(log_path, O_WRONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, &flipped, 1, (off_t)(end - 1)), 1);
    close(fd);
    int status = run_repair(bin, f->dir, text, sizeof text);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !strstr(text, "set aside") ||
        !strstr(text, ".damaged-"))
        fail_msg("xun repair: status 0x%x: %s", status, text);
    server_start_healthy(bin, f->dir, f->log_path, &p);
    assert_int_equal(doc_status(p.port, "log-1"), 200);
    assert_int_equal(doc_status(p.port, "log-3"), 200);
    assert_int_equal(doc_status(p.port, "log-2"), 200); /* its DELETE was set aside */
    assert_int_equal(kill(p.pid, SIGTERM), 0);
    server_wait(&p);
    /* a sound log: repair changes nothing */
    status = run_repair(bin, f->dir, text, sizeof text);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !strstr(text, "nothing"))
        fail_msg("xun repair on a sound log: status 0x%x: %s", status, text);

    /* a torn tail (the last batch's last byte never written) is set aside at
     * start, and /metrics counts it */
    server_start_healthy(bin, f->dir, f->log_path, &p);
    assert_true(http_request(p.port, "PUT", "/documents/log-4", "{\"title\":\"torn\"}", &r));
    assert_int_equal(r.status, 201);
    httpc_reply_fini(&r);
    assert_true(http_request(p.port, "GET", "/metrics", NULL, &r));
    if (!strstr(r.body, "\nxun_wal_torn_tails_total 0\n"))
        fail_msg("no torn tail yet: %.4000s", r.body);
    httpc_reply_fini(&r);
    assert_int_equal(kill(p.pid, SIGKILL), 0);
    server_wait(&p);
    unsigned char *torn;
    size_t torn_len;
    manifest_log(f->dir, log_path, sizeof log_path);
    read_file(log_path, &torn, &torn_len);
    size_t torn_end = torn_len;
    while (torn_end && !torn[torn_end - 1])
        torn_end--;
    assert_true(torn_end > 16 + 24 + 17); /* the header and a batch */
    torn[torn_end - 1] = 0;
    write_file(log_path, torn, torn_len);
    free(torn);
    server_start_healthy(bin, f->dir, f->log_path, &p);
    assert_true(http_request(p.port, "GET", "/metrics", NULL, &r));
    if (!strstr(r.body, "\nxun_wal_torn_tails_total 1\n"))
        fail_msg("the torn tail is not counted: %.4000s", r.body);
    httpc_reply_fini(&r);
    assert_int_equal(doc_status(p.port, "log-4"), 404); /* its batch, torn by hand, is dropped */
    assert_int_equal(kill(p.pid, SIGTERM), 0);
    server_wait(&p);
}

/*
 * `xun repair` on a folder that holds no index (a mistyped path, or the
 * wrong folder) says so and fails; before, it created the folder and a LOCK
 * in it and answered "nothing to repair" with status 0.
 */
static void test_repair_of_no_index_fails_and_creates_nothing(void **state)
{
    struct crash_fixture *f = *state;
    const char *bin = xun_bin();
    char absent[4200], other[4200], lock[4300], text[4096];
    struct stat st;

    snprintf(absent, sizeof absent, "%s/absent", f->dir);
    int status = run_repair(bin, absent, text, sizeof text);
    if (!WIFEXITED(status) || WEXITSTATUS(status) == 0 || !strstr(text, "no index"))
        fail_msg("xun repair on a missing folder: status 0x%x: %s", status, text);
    assert_int_equal(stat(absent, &st), -1);
    assert_int_equal(errno, ENOENT);

    snprintf(other, sizeof other, "%s/other", f->dir);
    assert_int_equal(mkdir(other, 0755), 0);
    status = run_repair(bin, other, text, sizeof text);
    if (!WIFEXITED(status) || WEXITSTATUS(status) == 0 || !strstr(text, "no index"))
        fail_msg("xun repair on a folder with no index: status 0x%x: %s", status, text);
    snprintf(lock, sizeof lock, "%s/LOCK", other);
    assert_int_equal(stat(lock, &st), -1);
    assert_int_equal(rmdir(other), 0);
}

/*
 * A bulk load into a folder whose log still holds writes (a server killed
 * before its checkpoint): the log's writes are older than the file's lines,
 * so the file's version of a document must win, as a later PUT would.
 * Before, the log was replayed after the loaded segment and undid it.
 */
static void test_index_after_a_crash_keeps_the_newer_bulk_version(void **state)
{
    struct crash_fixture *f = *state;
    const char *bin = xun_bin();
    struct server_proc p;
    struct httpc_reply r;
    char text[8192], jsonl[4096];

    server_start_healthy(bin, f->dir, f->log_path, &p);
    assert_true(http_request(p.port, "PUT", "/documents/bulk-1", "{\"title\":\"oldword\"}", &r));
    assert_int_equal(r.status, 201);
    httpc_reply_fini(&r);
    assert_int_equal(kill(p.pid, SIGKILL), 0); /* the PUT is only in the log */
    server_wait(&p);

    snprintf(jsonl, sizeof jsonl, "%s/newer.jsonl", f->log_dir);
    FILE *out = fopen(jsonl, "w");
    assert_non_null(out);
    fputs("{\"id\":\"bulk-1\",\"title\":\"newword\"}\n", out);
    fclose(out);
    const char *const args[] = { "index", "--data", f->dir, jsonl, NULL };
    int status = run_xun(bin, args, text, sizeof text);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("xun index: status 0x%x: %s", status, text);

    server_start_healthy(bin, f->dir, f->log_path, &p);
    assert_true(http_request(p.port, "GET", "/documents/bulk-1", NULL, &r));
    assert_int_equal(r.status, 200);
    if (!strstr(r.body, "newword"))
        fail_msg("GET /documents/bulk-1 after the bulk load: %s", r.body);
    httpc_reply_fini(&r);
    assert_int_equal(search_total(p.port, "oldword", NULL), 0);
    assert_int_equal(search_total(p.port, "newword", "bulk-1"), 1);
    assert_int_equal(kill(p.pid, SIGTERM), 0);
    server_wait(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill_9_loses_no_acknowledged_write, crash_setup,
                                        crash_teardown),
        cmocka_unit_test_setup_teardown(test_damaged_log_stops_serve_until_repair, crash_setup,
                                        crash_teardown),
        cmocka_unit_test_setup_teardown(test_index_after_a_crash_keeps_the_newer_bulk_version,
                                        crash_setup, crash_teardown),
        cmocka_unit_test_setup_teardown(test_damaged_segment_stops_serve_with_the_file_named,
                                        crash_setup, crash_teardown),
        cmocka_unit_test_setup_teardown(test_repair_of_no_index_fails_and_creates_nothing,
                                        crash_setup, crash_teardown),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
