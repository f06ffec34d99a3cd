/*
 * xun: the command line. Thin by design: it parses arguments and calls the
 * modules (API.md, "Command line").
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "index/format/docstore.h"
#include "index/base/error.h"
#include "index/index.h"
#include "index/base/limits.h"
#include "index/text/tokenizer.h"
#include "index/format/wal.h"
#include "index/writer.h"
#include "server/bulkload.h"
#include "server/http.h"
#include "server/respond.h"
#include "server/routes.h"

static const char usage[] =
    "usage: xun COMMAND [options]\n"
    "\n"
    "  serve   --data DIR [--listen HOST:PORT] [--threads N] [--api-key KEY]\n"
    "          [--cors-origin ORIGIN] [--max-connections N] [--max-connections-per-client N]\n"
    "          [--max-body-bytes N] [--idle-timeout S] [--request-timeout S] [--query-timeout S]\n"
    "          [--recency-half-life DAYS] [--cache-mb N] [--no-fold-variants] [--quiet]\n"
    "          serve the index in DIR (created if absent) over HTTP\n"
    "  index   --data DIR [--threads N] [--memory-mb N] [--no-fold-variants] FILE.jsonl...\n"
    "          bulk-load JSON lines into DIR ('-' reads standard input)\n"
    "  search  --data DIR [--limit N] [--offset N] [--no-highlight] [--recency-half-life DAYS]\n"
    "          [--query-timeout S] [--no-fold-variants] QUERY\n"
    "          print the same JSON as GET /search\n"
    "  analyze [--no-fold-variants] TEXT\n"
    "          print the terms TEXT is indexed by, as GET /analyze\n"
    "  repair  --data DIR\n"
    "          set aside the damaged part of DIR's write-ahead log, so that it serves again\n"
    "\n"
    "xun COMMAND --help says more about each.\n";

static const char serve_help[] =
    "usage: xun serve --data DIR [--listen HOST:PORT] [--threads N] [--api-key KEY]\n"
    "                 [--cors-origin ORIGIN] [--max-connections N]\n"
    "                 [--max-connections-per-client N] [--max-body-bytes N]\n"
    "                 [--idle-timeout S] [--request-timeout S] [--query-timeout S]\n"
    "                 [--recency-half-life DAYS] [--cache-mb N] [--no-fold-variants] [--quiet]\n"
    "\n"
    "  --data DIR          the index folder (created if absent)\n"
    "  --listen HOST:PORT  where to listen (default 127.0.0.1:8080; port 0 picks one)\n"
    "  --threads N         worker threads (default: one per core)\n"
    "  --api-key KEY       require 'Authorization: Bearer KEY' on writes\n"
    "                      (default: $XUN_API_KEY)\n"
    "  --cors-origin ORIGIN  let pages from ORIGIN (or *) call the API from a browser\n"
    "  --max-connections N  connections at once (default 4096); at the limit the\n"
    "                      longest-idle keep-alive connection is closed for a new one,\n"
    "                      and only when none is idle is the new one answered 503\n"
    "  --max-connections-per-client N  connections at once from one IP address; more\n"
    "                      are answered 429 (default 512; 0: no limit). Behind a\n"
    "                      proxy every client shares the proxy's address\n"
    "  --max-body-bytes N   largest request body, POST /documents (default 64 MiB)\n"
    "  --idle-timeout S     close a connection silent this long (default 30)\n"
    "  --request-timeout S  a request must arrive whole, headers and body, within S\n"
    "                      seconds of its first byte, or it is answered 408 and its\n"
    "                      connection closed (default 10)\n"
    "  --query-timeout S   a search still running S seconds (0.25 is a quarter) after\n"
    "                      its request arrived stops and answers what it found, marked\n"
    "                      \"timed_out\": true (default 1; 0: no limit)\n"
    "  --recency-half-life DAYS  relevance ranking favours fresh documents: a match\n"
    "                      DAYS old gets half the boost of one dated today (default 30;\n"
    "                      0 ranks by text alone)\n"
    "  --cache-mb N        memory for repeated searches' answers, dropped whenever\n"
    "                      the index changes and after 10 s (default 64; 0: none)\n"
    "  --no-fold-variants  keep traditional and simplified characters apart (the\n"
    "                      index must have been built so too)\n"
    "  --quiet             no access log on standard error\n"
    "\n"
    "SIGTERM or SIGINT stops it gracefully.\n";

static const char index_help[] =
    "usage: xun index --data DIR [--threads N] [--memory-mb N] [--no-fold-variants]\n"
    "                 FILE.jsonl...\n"
    "\n"
    "Loads documents, one JSON object a line, into the index in DIR, with a progress\n"
    "bar on a terminal. '-' reads standard input. Bad lines are reported and skipped.\n"
    "  --threads N         parallel workers (default: one per core)\n"
    "  --memory-mb N       memory for documents not yet written, all workers together\n"
    "                      (default 1024; the process takes about 1.3 times as much)\n"
    "  --no-fold-variants  a new index keeps traditional and simplified characters apart\n";

static const char search_help[] =
    "usage: xun search --data DIR [--limit N] [--offset N] [--no-highlight]\n"
    "                  [--recency-half-life DAYS] [--query-timeout S] [--no-fold-variants]\n"
    "                  QUERY\n"
    "\n"
    "Prints the JSON that GET /search answers (see API.md for the query syntax);\n"
    "the options mean what they mean for xun serve.\n";

static const char analyze_help[] =
    "usage: xun analyze [--no-fold-variants] TEXT\n"
    "\n"
    "Prints the terms TEXT is indexed and searched by, as GET /analyze answers.\n";

static const char repair_help[] =
    "usage: xun repair --data DIR\n"
    "\n"
    "When xun serve refuses to start because the write-ahead log of DIR is damaged\n"
    "(it names the byte and the records there), this moves everything from the\n"
    "first damaged batch on into a file beside the log, LOG.damaged-OFFSET, and\n"
    "says how many records it held; those writes are then no longer in the index.\n"
    "A sound log is left as it is. The folder must not be in use by a server;\n"
    "one that holds no index (no MANIFEST) is refused and left untouched.\n";

static int fail(const char *what, const struct xerr *err)
{
    fprintf(stderr, "xun: %s%s%s\n", what, *what ? ": " : "", err->msg);
    return 1;
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return true;
    return false;
}

static bool parse_int(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_half_life(const char *s, double *days)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0 && v <= 36500)) {
        fprintf(stderr, "xun: --recency-half-life wants days from 0 to 36500, got \"%s\"\n", s);
        return false;
    }
    *days = v;
    return true;
}

/* --query-timeout: seconds, fractions allowed, to the millisecond; 0 is no limit. */
static bool parse_query_timeout(const char *cmd, const char *s, uint32_t *ms)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0 && v <= 3600)) {
        fprintf(stderr, "xun %s: --query-timeout wants seconds from 0 to 3600, got \"%s\"\n",
                cmd, s);
        return false;
    }
    *ms = (uint32_t)(v * 1000 + 0.5);
    if (v > 0 && !*ms)
        *ms = 1;
    return true;
}

/* "HOST:PORT", "[v6]:PORT" or ":PORT"; keeps a copy (argv stays as given, for ps). */
static bool parse_listen(const char *arg, struct server_config *cfg)
{
    static char copy[256];
    if (strlen(arg) >= sizeof copy)
        return false;
    memcpy(copy, arg, strlen(arg) + 1);
    char *s = copy;
    char *colon = strrchr(s, ':');
    long port;

    if (!colon || !parse_int(colon + 1, 0, 65535, &port))
        return false;
    *colon = '\0';
    if (s[0] == '[' && colon > s + 1 && colon[-1] == ']') {
        colon[-1] = '\0';
        s++;
    }
    cfg->host = *s ? s : "0.0.0.0";
    cfg->port = (uint16_t)port;
    return true;
}

static int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        { "data", required_argument, NULL, 'd' },   { "listen", required_argument, NULL, 'l' },
        { "threads", required_argument, NULL, 't' }, { "api-key", required_argument, NULL, 'k' },
        { "quiet", no_argument, NULL, 'q' },         { "cors-origin", required_argument, NULL, 'o' },
        { "max-connections", required_argument, NULL, 'c' },
        { "max-connections-per-client", required_argument, NULL, 'P' },
        { "max-body-bytes", required_argument, NULL, 'b' },
        { "idle-timeout", required_argument, NULL, 'i' },
        { "request-timeout", required_argument, NULL, 'R' },
        { "cache-mb", required_argument, NULL, 'C' },
        { "recency-half-life", required_argument, NULL, 'r' },
        { "query-timeout", required_argument, NULL, 'T' },
        { "no-fold-variants", no_argument, NULL, 'F' },
        { NULL, 0, NULL, 0 },
    };
    struct server_config cfg;
    const char *data = NULL;
    unsigned tokenize_flags = TOKENIZE_DEFAULT;
    long threads;
    int c;

    if (wants_help(argc, argv)) {
        fputs(serve_help, stdout);
        return 0;
    }
    server_config_defaults(&cfg);
    cfg.api_key = getenv("XUN_API_KEY");
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 'l':
            if (!parse_listen(optarg, &cfg)) {
                fprintf(stderr, "xun serve: --listen wants HOST:PORT, got \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 't':
            if (!parse_int(optarg, 1, 1024, &threads)) {
                fprintf(stderr, "xun serve: --threads wants 1 to 1024, got \"%s\"\n", optarg);
                return 2;
            }
            cfg.threads = (int)threads;
            break;
        case 'k': cfg.api_key = optarg; break;
        case 'q': cfg.quiet = true; break;
        case 'o': cfg.cors_origin = optarg; break;
        case 'F': tokenize_flags &= ~(unsigned)TOKENIZE_FOLD_VARIANTS; break;
        case 'r':
            if (!parse_half_life(optarg, &cfg.recency_half_life_days))
                return 2;
            break;
        case 'T':
            if (!parse_query_timeout("serve", optarg, &cfg.query_timeout_ms))
                return 2;
            break;
        case 'c':
        case 'P':
        case 'b':
        case 'i':
        case 'R':
        case 'C': {
            static const struct {
                int code;
                const char *name;
                long lo, hi;
            } ranges[] = {
                { 'c', "max-connections", 1, 1000000 }, { 'b', "max-body-bytes", 1, 1L << 30 },
                { 'i', "idle-timeout", 1, 3600 },       { 'R', "request-timeout", 1, 3600 },
                { 'C', "cache-mb", 0, 1L << 16 },
                { 'P', "max-connections-per-client", 0, 1000000 },
            };
            size_t k = 0;
            long v;
            while (ranges[k].code != c)
                k++;
            if (!parse_int(optarg, ranges[k].lo, ranges[k].hi, &v)) {
                fprintf(stderr, "xun serve: --%s wants %ld to %ld, got \"%s\"\n",
                        ranges[k].name, ranges[k].lo, ranges[k].hi, optarg);
                return 2;
            }
            switch (c) {
            case 'c': cfg.max_connections = (uint32_t)v; break;
            case 'P': cfg.max_connections_per_client = (uint32_t)v; break;
            case 'b': cfg.max_body_bytes = (size_t)v; break;
            case 'i': cfg.idle_timeout_s = (int)v; break;
            case 'R': cfg.request_timeout_s = (int)v; break;
            default: cfg.cache_bytes = (size_t)v << 20; break;
            }
            break;
        }
        default: fputs(serve_help, stderr); return 2;
        }
    }
    if (!data || optind != argc) {
        fputs(serve_help, stderr);
        return 2;
    }
    if (cfg.api_key && !*cfg.api_key)
        cfg.api_key = NULL;

    /* Signals are taken by sigwait() below; workers inherit the mask. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct xerr err = { 0 };
    struct index *ix;
    struct server *srv;
    if (index_open(data, tokenize_flags, &ix, &err))
        return fail(data, &err);
    if (server_start(ix, &cfg, &srv, &err)) {
        index_close(ix);
        return fail("serve", &err);
    }
    struct snapshot *snap = index_snapshot(ix);
    fprintf(stderr, "xun: serving %llu documents from %s on http://%s:%u/\n",
            (unsigned long long)snap->n_docs, data, cfg.host, server_port(srv));
    snapshot_release(snap);
    int sig;
    sigwait(&stop_signals, &sig);
    fprintf(stderr, "xun: %s, stopping\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    server_stop(srv);
    index_close(ix);
    return 0;
}

static int cmd_index(int argc, char **argv)
{
    static const struct option opts[] = {
        { "data", required_argument, NULL, 'd' },
        { "threads", required_argument, NULL, 't' },
        { "memory-mb", required_argument, NULL, 'm' },
        { "no-fold-variants", no_argument, NULL, 'F' },
        { NULL, 0, NULL, 0 },
    };
    const char *data = NULL;
    unsigned tokenize_flags = TOKENIZE_DEFAULT;
    long threads = 0, memory_mb = BULKLOAD_MEMORY_DEFAULT >> 20;
    int c;

    if (wants_help(argc, argv)) {
        fputs(index_help, stdout);
        return 0;
    }
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'd') {
            data = optarg;
        } else if (c == 'F') {
            tokenize_flags &= ~(unsigned)TOKENIZE_FOLD_VARIANTS;
        } else if (c == 't' && parse_int(optarg, 1, 64, &threads)) {
            continue;
        } else if (c == 'm' && parse_int(optarg, 16, 1 << 20, &memory_mb)) {
            continue;
        } else {
            if (c == 't')
                fprintf(stderr, "xun index: --threads wants 1 to 64, got \"%s\"\n", optarg);
            if (c == 'm')
                fprintf(stderr, "xun index: --memory-mb wants 16 to 1048576, got \"%s\"\n",
                        optarg);
            fputs(index_help, stderr);
            return 2;
        }
    }
    if (!data || optind == argc) {
        fputs(index_help, stderr);
        return 2;
    }
    struct xerr err = { 0 };
    struct index *ix;
    struct bulkload_stats stats;
    if (index_open(data, tokenize_flags, &ix, &err))
        return fail(data, &err);
    /* writes a server left in the log (killed before its checkpoint) are older
     * than the file's lines: they go into segments first, so that a line
     * replaces them as a later PUT would, instead of being undone by them */
    struct writer *w;
    if (writer_start(ix, &w, &err)) {
        index_close(ix);
        return fail(data, &err);
    }
    writer_stop(w);
    uint64_t start = now_ns();
    struct bulkload_options opt = { .threads = (int)threads,
                                    .memory_bytes = (size_t)memory_mb << 20,
                                    .progress = isatty(STDERR_FILENO), .errors = stderr };
    int rc = bulkload_files(ix, argv + optind, argc - optind, &opt, &stats, &err);
    double secs = (double)(now_ns() - start) / 1e9;
    index_close(ix);
    if (rc)
        return fail("index", &err);
    fprintf(stderr, "xun: indexed %llu documents (%llu bad lines) in %.2f s, %u segment(s)\n",
            (unsigned long long)stats.docs, (unsigned long long)stats.bad_lines, secs,
            stats.segments);
    return stats.bad_lines && !stats.docs ? 1 : 0;
}

static int cmd_search(int argc, char **argv)
{
    static const struct option opts[] = {
        { "data", required_argument, NULL, 'd' },
        { "limit", required_argument, NULL, 'l' },
        { "offset", required_argument, NULL, 'o' },
        { "no-highlight", no_argument, NULL, 'n' },
        { "recency-half-life", required_argument, NULL, 'r' },
        { "query-timeout", required_argument, NULL, 'T' },
        { "no-fold-variants", no_argument, NULL, 'F' },
        { NULL, 0, NULL, 0 },
    };
    uint32_t timeout_ms = SEARCH_TIMEOUT_DEFAULT_MS;
    struct search_params sp = { .limit = 10, .highlight = true, .start_ns = now_ns() };
    const char *data = NULL;
    unsigned tokenize_flags = TOKENIZE_DEFAULT;
    double half_life = SEARCH_RECENCY_HALF_LIFE_DAYS;
    long v;
    int c;

    if (wants_help(argc, argv)) {
        fputs(search_help, stdout);
        return 0;
    }
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 'l':
        case 'o':
            if (!parse_int(optarg, 0, c == 'l' ? SEARCH_MAX_LIMIT : SEARCH_MAX_OFFSET, &v)) {
                fprintf(stderr, "xun search: --%s must be an integer from 0 to %d\n",
                        c == 'l' ? "limit" : "offset",
                        c == 'l' ? SEARCH_MAX_LIMIT : SEARCH_MAX_OFFSET);
                return 2;
            }
            *(c == 'l' ? &sp.limit : &sp.offset) = (uint32_t)v;
            break;
        case 'n': sp.highlight = false; break;
        case 'F': tokenize_flags &= ~(unsigned)TOKENIZE_FOLD_VARIANTS; break;
        case 'r':
            if (!parse_half_life(optarg, &half_life))
                return 2;
            break;
        case 'T':
            if (!parse_query_timeout("search", optarg, &timeout_ms))
                return 2;
            break;
        default: fputs(search_help, stderr); return 2;
        }
    }
    if (!data || optind + 1 != argc) {
        fputs(search_help, stderr);
        return 2;
    }
    sp.q = argv[optind];
    sp.q_len = strlen(sp.q);
    struct xerr err = { 0 };
    struct index *ix;
    json_t *body;
    if (index_open(data, tokenize_flags, &ix, &err))
        return fail(data, &err);
    sp.opts.recency_half_life_days = half_life;
    sp.opts.now_s = (int64_t)time(NULL);
    /* the budget counts from here: opening the index is not the query's doing */
    sp.opts.deadline_ns = timeout_ms ? now_ns() + (uint64_t)timeout_ms * 1000000u : 0;
    int rc = search_json(ix, &sp, &body, &err);
    index_close(ix);
    if (rc)
        return fail("search", &err);
    json_dumpf(body, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
    fputc('\n', stdout);
    json_decref(body);
    return 0;
}

/* The index in data whatever analyzer it was built with (repair reads no text). */
static int open_any_analyzer(const char *data, struct index **ix, struct xerr *err)
{
    int rc = index_open(data, TOKENIZE_DEFAULT, ix, err);

    if (rc == XE_INPUT) {
        xerr_clear(err);
        rc = index_open(data, TOKENIZE_DEFAULT ^ TOKENIZE_FOLD_VARIANTS, ix, err);
    }
    return rc;
}

static int cmd_repair(int argc, char **argv)
{
    static const struct option options[] = {
        { "data", required_argument, NULL, 'd' },
        { NULL, 0, NULL, 0 },
    };
    const char *data = NULL;
    struct xerr err = { 0 };
    struct index *ix;
    int c;

    if (wants_help(argc, argv)) {
        fputs(repair_help, stdout);
        return 0;
    }
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (c != 'd') {
            fputs(repair_help, stderr);
            return 2;
        }
        data = optarg;
    }
    if (!data || optind != argc) {
        fputs(repair_help, stderr);
        return 2;
    }
    /* opening would make a new index: in a mistyped path, or the wrong folder */
    char manifest[4096];
    snprintf(manifest, sizeof manifest, "%s/%s", data, INDEX_MANIFEST);
    if (access(manifest, F_OK) != 0) {
        fprintf(stderr, "xun: %s: no index there (no %s: %s); nothing repaired\n", data,
                INDEX_MANIFEST, strerror(errno));
        return 1;
    }
    if (open_any_analyzer(data, &ix, &err))
        return fail(data, &err);
    if (!*index_wal_name(ix)) {
        printf("xun: %s has no write-ahead log; nothing to repair\n", data);
        index_close(ix);
        return 0;
    }
    char path[4096];
    struct wal_set_aside aside;
    index_path(ix, index_wal_name(ix), path, sizeof path);
    int rc = wal_repair(path, &aside, &err);
    index_close(ix); /* the lock is held until the log is repaired */
    if (rc)
        return fail("repair", &err);
    if (!aside.bytes && !aside.why[0]) {
        printf("xun: the log %s is sound; nothing changed\n", path);
        return 0;
    }
    if (!aside.bytes) {
        printf("xun: the log %s: %s (it ended at byte %" PRIu64 "); every batch in it is kept "
               "and the file grown back to a whole step\n",
               path, aside.why, aside.offset);
        return 0;
    }
    printf("xun: the log %s: %s at byte %" PRIu64 "; set aside %" PRIu64 " bytes holding %" PRIu64
           " records",
           path, aside.why, aside.offset, aside.bytes, aside.records);
    if (aside.records)
        printf(" (sequence %" PRIu64 " to %" PRIu64 ")", aside.first_seq, aside.last_seq);
    printf(" in %s\n", aside.kept_path);
    return 0;
}

static int cmd_analyze(int argc, char **argv)
{
    unsigned tokenize_flags = TOKENIZE_DEFAULT;
    size_t bad;

    if (wants_help(argc, argv)) {
        fputs(analyze_help, stdout);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "--no-fold-variants")) {
        tokenize_flags &= ~(unsigned)TOKENIZE_FOLD_VARIANTS;
        argc--;
        argv++;
    }
    if (argc != 2) {
        fputs(analyze_help, stderr);
        return 2;
    }
    const char *text = argv[1];
    if (!utf8_check(text, strlen(text), &bad)) {
        fprintf(stderr, "xun analyze: text is not valid UTF-8 (byte %zu)\n", bad);
        return 1;
    }
    json_t *body = analyze_json(text, strlen(text), tokenize_flags);
    json_dumpf(body, stdout, JSON_COMPACT);
    fputc('\n', stdout);
    json_decref(body);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } commands[] = {
        { "serve", cmd_serve },
        { "index", cmd_index },
        { "search", cmd_search },
        { "analyze", cmd_analyze },
        { "repair", cmd_repair },
    };

    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            int rc = commands[i].run(argc - 1, argv + 1);
            docstore_thread_cleanup();
            return rc;
        }
    fprintf(stderr, "xun: unknown command \"%s\"\n\n%s", argv[1], usage);
    return 2;
}
