/*
 * Tests of server/bulkload.h, the JSON-lines loader behind `xun index`.
 *
 * One corpus, generated here from a fixed seed: about 9.5 MiB of documents
 * of a few kilobytes of mixed Chinese and Latin text, so more than two of
 * the loader's 4 MiB chunks. Among them, as a real file has them: bad lines
 * of nine kinds spread across the file, blank and CRLF-ended lines, and ids
 * that come again later (right after, a few lines after, megabytes after in
 * another chunk, three times). The first chunk boundary falls exactly
 * between two bad lines, the second in the middle of a padded document,
 * followed by a blank and a bad line; the last line is bad and has no
 * newline. Versions that a later good line replaces carry the markers
 * zqoldver/鳄鱼, versions that replaced one carry zqnewver/麒麟, and a
 * document whose later line is bad carries zqsurvive (it must stay).
 *
 * The corpus is loaded into four fresh indexes: one thread with the
 * default memory, two threads (one preparer, one indexer), three threads
 * with 1 MiB of memory, so that a segment is written after each batch of
 * 512 documents and all are merged at the end, and one thread with 6 MiB
 * (a segment every five hundred documents or so, merged). Each load must
 * count every good line and every bad one, read every byte, end with one
 * segment holding exactly the distinct ids with their latest good version,
 * report each bad line as "<path>:<line>: <why>" with the right number and
 * reason, and answer a set of queries exactly as the others do (ids,
 * totals, scores in rank order).
 *
 * Small files check the rest: a missing file is an error, an empty or
 * blank file loads nothing, a later file replaces an earlier one, a pipe
 * named by a path loads like a file.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/base/buf.h"
#include "index/format/doc.h"
#include "index/format/docstore.h"
#include "index/base/error.h"
#include "index/index.h"
#include "index/format/segment.h"
#include "index/text/tokenizer.h"
#include "query/qparse.h"
#include "query/search.h"
#include "server/bulkload.h"
#include "tests/testutil.h"

#define TEST_CHUNK_BYTES (4u << 20) /* BULKLOAD_CHUNK_BYTES in server/bulkload.c */
/* Two whole chunks and a half-full third. */
#define CORPUS_BYTES (2 * (uint64_t)TEST_CHUNK_BYTES + (3u << 19))
/* The generator lands a chosen line on a chunk boundary once it is this close:
 * more than twice what one step of the generator writes (STEP_MAX_BYTES). */
#define BOUNDARY_MARGIN_BYTES (128u << 10)
#define STEP_MAX_BYTES (48u << 10)
#define LINE_CAP_BYTES (160u << 10) /* a padded line is at most the margin */
#define BODY_MIN_BYTES 1500
#define BODY_SPREAD_BYTES 3000
#define BODY_CAP_BYTES 8192
#define TITLE_CAP_BYTES 256
/* Memory that forces a segment after each batch of 512 documents (threads > 1). */
#define SMALL_MEMORY_BYTES ((size_t)1 << 20)
/* One thread flushes after a document: a budget below the memindex's first
 * slab of postings (LIST_SLAB_BYTES, 4 MiB) would write one segment per
 * document, so this one is a little above it. */
#define DIRECT_MEMORY_BYTES ((size_t)6 << 20)
#define MAX_IDS 8192
#define MAX_BAD_LINES 512
#define MAX_PENDING 4096
#define PATH_BYTES 4096
#define SCORE_EPSILON 1e-9
#define CORPUS_SEED 0x78756e2d62756c6bull /* "xun-bulk" */

/* Where the id patterns fall among the base documents (i = 0, 1, 2, ...). */
#define PATTERN_EVERY 23
#define NEAR_AT 5       /* replaced two base documents later */
#define FAR_AT 11       /* replaced FAR_DELAY base documents later (another chunk) */
#define SURVIVOR_AT 17  /* a later line with the id is bad: this version stays */
#define AT_ONCE_AT 20   /* replaced by the very next line */
#define FAR_DELAY 1700  /* about 5 MB: past a chunk boundary, or to the end */
#define TRIPLE_EVERY 500
#define TRIPLE_AT 46 /* three versions: megabytes apart, the last one wins */
#define BLANK_EVERY 97
#define BAD_EVERY 131
#define CRLF_EVERY 13

/* ---- generating the corpus ---- */

/* Words of every document, the first ones most often. */
static const char *const COMMON_CJK[] = { "经济", "发展", "市场", "政策", "企业",
                                          "国际", "合作", "城市", "数据", "消费" };
static const char *const COMMON_LATIN[] = { "market", "growth", "policy", "global", "city",
                                            "data", "report", "trade", "price", "people" };
/* Each document is mostly about one topic and a little about another. */
#define TOPIC_WORDS 6
static const struct {
    const char *cjk[TOPIC_WORDS], *latin[TOPIC_WORDS];
} TOPICS[] = {
    { { "芯片", "人工", "智能", "网络", "算法", "电池" },
      { "chip", "robot", "cloud", "server", "python", "kernel" } },
    { { "债券", "银行", "投资", "利率", "股票", "基金" },
      { "bank", "bond", "invest", "stock", "fund", "yield" } },
    { { "气候", "森林", "河流", "海洋", "污染", "排放" },
      { "climate", "forest", "river", "ocean", "carbon", "solar" } },
    { { "医疗", "健康", "医院", "疫苗", "药品", "护理" },
      { "health", "doctor", "vaccine", "clinic", "nurse", "drug" } },
    { { "体育", "足球", "比赛", "冠军", "球队", "联赛" },
      { "sport", "football", "match", "league", "coach", "goal" } },
    { { "教育", "学校", "大学", "学生", "考试", "课程" },
      { "school", "student", "exam", "campus", "teacher", "course" } },
    { { "交通", "汽车", "铁路", "航空", "港口", "物流" },
      { "vehicle", "railway", "airline", "port", "truck", "transit" } },
    { { "农业", "粮食", "种植", "农民", "乡村", "水稻" },
      { "grain", "farm", "harvest", "rural", "rice", "wheat" } },
};
/* Each in a few dozen documents: queries that discriminate. */
static const char *const RARE_WORDS[] = { "琵琶", "篆刻", "蹴鞠", "榫卯",
                                          "zeppelin", "quokka", "narwhal", "xylophone" };
static const char *const SOURCES[] = { "新华社", "人民网", "Reuters", "财新", "BBC 中文" };
static const char *const TAGS[] = { "经济", "科技", "sports", "AI", "环境", "world" };
static const char *const BLANKS[] = { "\n", "   \n", "\t \r\n" };

#define N_OF(a) (sizeof(a) / sizeof *(a))

enum marker { MARK_NONE, MARK_OLD, MARK_NEW, MARK_SURVIVOR };

static const char *const MARKER_TEXT[] = {
    [MARK_NONE] = "", [MARK_OLD] = " zqoldver 鳄鱼 ", [MARK_NEW] = " zqnewver 麒麟 ",
    [MARK_SURVIVOR] = " zqsurvive ",
};

/* A bad line: before + an id + after; what its report must say. */
enum bad_kind {
    BAD_UNTERMINATED, BAD_NO_ID, BAD_NUMBER_ID, BAD_UTF8, BAD_DATE, BAD_TAG,
    BAD_NOT_OBJECT, BAD_EMPTY_ID, BAD_DUPLICATE_KEY, N_BAD_KINDS
};
static const struct {
    const char *before, *after, *says;
} BAD[N_BAD_KINDS] = {
    [BAD_UNTERMINATED] = { "{\"id\":\"", "\",\"title\":\"unterminated", "invalid JSON" },
    [BAD_NO_ID] = { "{\"title\":\"no id ", "\",\"body\":\"经济 market\"}", "\"id\" is required" },
    [BAD_NUMBER_ID] = { "{\"id\":12345,\"title\":\"", "\"}", "\"id\" must be a string" },
    [BAD_UTF8] = { "{\"id\":\"", "\",\"body\":\"bad \xff\xfe bytes 经济\"}", "invalid JSON" },
    [BAD_DATE] = { "{\"id\":\"", "\",\"title\":\"经济\",\"date\":\"yesterday\"}", "\"date\"" },
    [BAD_TAG] = { "{\"id\":\"", "\",\"body\":\"market\",\"tags\":[\"ok\",7]}", "\"tags\"" },
    [BAD_NOT_OBJECT] = { "[\"id\",\"", "\"]", "must be a JSON object" },
    [BAD_EMPTY_ID] = { "{\"id\":\"\",\"title\":\"", "\"}", "\"id\" must be a string of" },
    [BAD_DUPLICATE_KEY] = { "{\"id\":\"", "\",\"id\":\"again\",\"body\":\"market\"}",
                            "invalid JSON" },
};
/* Kinds whose line still names an id: a survivor's later line is one of these. */
static const enum bad_kind SURVIVOR_BAD[] = { BAD_DATE, BAD_TAG, BAD_DUPLICATE_KEY, BAD_UTF8 };

/* What the corpus holds, worked out while writing it. */
struct corpus {
    char path[PATH_BYTES];
    uint64_t bytes, good_lines, n_lines;
    uint32_t n_ids;                    /* ids d00000 .. : each has a good line */
    uint32_t final_version[MAX_IDS];   /* of the last good line with the id */
    enum marker final_marker[MAX_IDS]; /* what that version carries */
    uint32_t n_bad;
    uint64_t bad_line_no[MAX_BAD_LINES];
    enum bad_kind bad_kind[MAX_BAD_LINES];
    uint32_t n_bad_ids; /* bad lines named b0000 ..: never a document */
    uint32_t n_replacements; /* good lines with an id seen before */
};

struct pending {
    uint32_t due, id, version;
    enum marker marker;
    bool bad; /* a bad line naming the id, instead of a new version */
};

struct gen {
    FILE *f;
    struct corpus *c;
    uint64_t offset, line_no; /* line_no: the number of the next line */
    uint32_t next_bad_kind;
    struct pending pending[MAX_PENDING];
    size_t n_pending;
    char line[LINE_CAP_BYTES];
};

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t rng_below(uint64_t *s, uint32_t n)
{
    return (uint32_t)(rng_next(s) % n);
}

/* Skewed towards the first words: some are in most documents, some in few. */
static size_t rng_skewed(uint64_t *s, size_t n)
{
    double u = (double)(rng_next(s) >> 11) / 9007199254740992.0;
    return (size_t)((double)n * u * u * u);
}

/* A string being built in a fixed array; overflowing it fails the test. */
struct sbuf {
    char *p;
    size_t len, cap;
};

__attribute__((format(printf, 2, 3))) static void sb_addf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < b->cap - b->len);
    b->len += (size_t)n;
}

static void sb_add(struct sbuf *b, const char *s)
{
    sb_addf(b, "%s", s);
}

static void sb_repeat(struct sbuf *b, char ch, size_t n)
{
    assert_true(n < b->cap - b->len);
    memset(b->p + b->len, ch, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void make_id(uint32_t id, char *out, size_t cap)
{
    snprintf(out, cap, "d%05u", (unsigned)id);
}

/* The title of a version: its own words, then its id and version, so that a
 * loaded document says which line it came from. */
static void title_of(uint32_t id, uint32_t version, char *out, size_t cap)
{
    uint64_t rng = CORPUS_SEED ^ ((uint64_t)id << 20 | version) ^ 0x7469746c65ull;
    struct sbuf b = { out, 0, cap };

    out[0] = '\0';
    uint32_t topic = rng_below(&rng, N_OF(TOPICS));
    for (uint32_t w = 0, n = 2 + rng_below(&rng, 3); w < n; w++)
        sb_add(&b, rng_below(&rng, 2) ? TOPICS[topic].cjk[rng_skewed(&rng, TOPIC_WORDS)]
                                      : COMMON_CJK[rng_skewed(&rng, N_OF(COMMON_CJK))]);
    char idtext[16];
    make_id(id, idtext, sizeof idtext);
    sb_addf(&b, " %s v%u", idtext, (unsigned)version);
}

/*
 * A body of BODY_MIN_BYTES or more: runs of Chinese words, Latin words and
 * punctuation; half of the words common ones, most of the rest from one
 * topic, a few from a second, and now and then a rare word.
 */
static void body_of(uint64_t *rng, enum marker marker, char *out, size_t cap)
{
    struct sbuf b = { out, 0, cap };
    size_t target = BODY_MIN_BYTES + rng_below(rng, BODY_SPREAD_BYTES);
    uint32_t topics[2] = { rng_below(rng, N_OF(TOPICS)), rng_below(rng, N_OF(TOPICS)) };
    int rare = rng_below(rng, 12) == 0 ? (int)rng_below(rng, N_OF(RARE_WORDS)) : -1;
    bool after_latin = false;

    out[0] = '\0';
    for (uint32_t w = 0; b.len < target; w++) {
        if (w == 20 && marker != MARK_NONE)
            sb_add(&b, MARKER_TEXT[marker]);
        if (w == 40 && rare >= 0)
            sb_addf(&b, " %s ", RARE_WORDS[rare]);
        uint32_t from = rng_below(rng, 20); /* 0..9 common, 10..17 topic, 18..19 second */
        uint32_t t = topics[from >= 18];
        if (rng_below(rng, 20) < 11) {
            if (after_latin)
                sb_add(&b, " ");
            sb_add(&b, from < 10 ? COMMON_CJK[rng_skewed(rng, N_OF(COMMON_CJK))]
                                 : TOPICS[t].cjk[rng_skewed(rng, TOPIC_WORDS)]);
            if (rng_below(rng, 6) == 0)
                sb_add(&b, rng_below(rng, 2) ? "，" : "。");
            after_latin = false;
        } else {
            sb_addf(&b, " %s", from < 10 ? COMMON_LATIN[rng_skewed(rng, N_OF(COMMON_LATIN))]
                                         : TOPICS[t].latin[rng_skewed(rng, TOPIC_WORDS)]);
            after_latin = true;
        }
    }
}

/* Writes bytes; counts its lines. */
static void emit(struct gen *g, const char *p, size_t len)
{
    assert_int_equal(fwrite(p, 1, len, g->f), len);
    g->offset += len;
    for (const char *q = p; (q = memchr(q, '\n', (size_t)(p + len - q))); q++)
        g->line_no++;
}

/* A good line: version of id, padded with spaces inside the object to pad_to bytes. */
static void emit_doc(struct gen *g, uint32_t id, uint32_t version, enum marker marker,
                     const char *eol, size_t pad_to)
{
    uint64_t rng = CORPUS_SEED ^ ((uint64_t)id << 20 | version);
    char title[TITLE_CAP_BYTES], body[BODY_CAP_BYTES], idtext[16];
    struct sbuf b = { g->line, 0, sizeof g->line };

    title_of(id, version, title, sizeof title);
    body_of(&rng, marker, body, sizeof body);
    make_id(id, idtext, sizeof idtext);
    sb_addf(&b, "{\"id\":\"%s\",\"title\":\"%s\",\"body\":\"%s\"", idtext, title, body);
    if (rng_below(&rng, 5))
        sb_addf(&b, ",\"source\":\"%s\"", SOURCES[rng_below(&rng, N_OF(SOURCES))]);
    if (rng_below(&rng, 6))
        sb_addf(&b, ",\"date\":\"2023-%02u-%02u\"", 1 + rng_below(&rng, 12),
                1 + rng_below(&rng, 28));
    uint32_t n_tags = rng_below(&rng, 4);
    if (n_tags) {
        sb_add(&b, ",\"tags\":[");
        for (uint32_t t = 0; t < n_tags; t++)
            sb_addf(&b, "%s\"%s\"", t ? "," : "", TAGS[(id + t) % N_OF(TAGS)]);
        sb_add(&b, "]");
    }
    if (rng_below(&rng, 2))
        sb_addf(&b, ",\"url\":\"https://news.example/%s/v%u\"", idtext, (unsigned)version);
    size_t tail = 1 + strlen(eol);
    if (pad_to) {
        assert_true(b.len + tail <= pad_to);
        sb_repeat(&b, ' ', pad_to - tail - b.len);
    }
    sb_add(&b, "}");
    sb_add(&b, eol);
    emit(g, b.p, b.len);

    struct corpus *c = g->c;
    assert_true(id < MAX_IDS);
    if (id < c->n_ids) {
        assert_true(version > c->final_version[id]);
        c->n_replacements++;
    } else {
        assert_int_equal(id, c->n_ids); /* first versions come in order */
        c->n_ids = id + 1;
    }
    c->final_version[id] = version;
    c->final_marker[id] = marker;
    c->good_lines++;
}

/*
 * A bad line of kind naming survivor_id, or a fresh never-loaded id b0000..
 * when survivor_id is UINT32_MAX; padded with x to pad_to bytes (only for
 * an unterminated line, where the padding stays inside the bad JSON).
 */
static void emit_bad(struct gen *g, enum bad_kind kind, uint32_t survivor_id, size_t pad_to,
                     bool newline)
{
    struct corpus *c = g->c;
    struct sbuf b = { g->line, 0, sizeof g->line };
    char idtext[16];

    if (survivor_id != UINT32_MAX)
        make_id(survivor_id, idtext, sizeof idtext);
    else
        snprintf(idtext, sizeof idtext, "b%04u", (unsigned)c->n_bad_ids++);
    sb_add(&b, BAD[kind].before);
    sb_add(&b, idtext);
    sb_add(&b, BAD[kind].after);
    if (pad_to) {
        assert_int_equal(kind, BAD_UNTERMINATED);
        assert_true(b.len + 1 <= pad_to);
        sb_repeat(&b, 'x', pad_to - 1 - b.len);
    }
    if (newline)
        sb_add(&b, "\n");
    assert_true(c->n_bad < MAX_BAD_LINES);
    c->bad_line_no[c->n_bad] = g->line_no;
    c->bad_kind[c->n_bad++] = kind;
    emit(g, b.p, b.len);
}

static void schedule(struct gen *g, uint32_t due, uint32_t id, uint32_t version,
                     enum marker marker, bool bad)
{
    assert_true(g->n_pending < MAX_PENDING);
    g->pending[g->n_pending++] = (struct pending){ due, id, version, marker, bad };
}

/* Writes what is due by base document i (all of it when i is UINT32_MAX), in order. */
static void emit_due(struct gen *g, uint32_t i)
{
    size_t kept = 0;

    for (size_t k = 0; k < g->n_pending; k++) {
        const struct pending *p = &g->pending[k];
        if (p->due > i) {
            g->pending[kept++] = *p;
        } else if (p->bad) {
            emit_bad(g, SURVIVOR_BAD[p->id % N_OF(SURVIVOR_BAD)], p->id, 0, true);
        } else {
            emit_doc(g, p->id, p->version, p->marker, "\n", 0);
        }
    }
    g->n_pending = kept;
}

/* Lines around the chunk boundary at boundary_bytes (the first or the second). */
static void emit_boundary(struct gen *g, int which, uint64_t boundary_bytes)
{
    size_t gap = (size_t)(boundary_bytes - g->offset);

    assert_true(gap > BOUNDARY_MARGIN_BYTES - STEP_MAX_BYTES && gap <= BOUNDARY_MARGIN_BYTES);
    if (which == 1) {
        /* a bad line ends exactly where the chunk ends, another starts the next */
        emit_bad(g, BAD_UNTERMINATED, UINT32_MAX, gap, true);
        assert_int_equal(g->offset, boundary_bytes);
        emit_bad(g, BAD_UTF8, UINT32_MAX, 0, true);
    } else {
        /* the boundary falls inside a document; a blank and a bad line follow it */
        emit_doc(g, g->c->n_ids, 1, MARK_NONE, "\n", gap + 500);
        assert_int_equal(g->offset, boundary_bytes + 500);
        emit(g, "  \n", 3);
        emit_bad(g, BAD_NO_ID, UINT32_MAX, 0, true);
    }
}

/* Writes the corpus to c->path and fills in what it holds. */
static void corpus_write(struct corpus *c)
{
    struct gen *g = calloc(1, sizeof *g);
    bool boundary_done[3] = { false, false, false };

    assert_non_null(g);
    g->c = c;
    g->line_no = 1;
    g->f = fopen(c->path, "wb");
    assert_non_null(g->f);
    for (uint32_t i = 0; g->offset < CORPUS_BYTES; i++) {
        uint64_t step_start = g->offset;
        for (int k = 1; k <= 2; k++) {
            uint64_t boundary = (uint64_t)k * TEST_CHUNK_BYTES;
            if (!boundary_done[k] && g->offset + BOUNDARY_MARGIN_BYTES >= boundary) {
                emit_boundary(g, k, boundary);
                boundary_done[k] = true;
                step_start = g->offset;
            }
        }
        uint32_t id = c->n_ids;
        uint32_t pattern = i % PATTERN_EVERY;
        const char *eol = i % CRLF_EVERY == 3 ? "\r\n" : "\n";
        if (i % TRIPLE_EVERY == TRIPLE_AT) {
            emit_doc(g, id, 1, MARK_OLD, eol, 0);
            schedule(g, i + 600, id, 2, MARK_OLD, false);
            schedule(g, i + 1400, id, 3, MARK_NEW, false);
        } else if (pattern == NEAR_AT || pattern == FAR_AT || pattern == AT_ONCE_AT) {
            emit_doc(g, id, 1, MARK_OLD, eol, 0);
            uint32_t delay = pattern == NEAR_AT ? 2 : pattern == FAR_AT ? FAR_DELAY : 0;
            schedule(g, i + delay, id, 2, MARK_NEW, false);
        } else if (pattern == SURVIVOR_AT) {
            emit_doc(g, id, 1, MARK_SURVIVOR, eol, 0);
            schedule(g, i + (i % 2 ? 3 : 900), id, 0, MARK_NONE, true);
        } else {
            emit_doc(g, id, 1, MARK_NONE, eol, 0);
        }
        emit_due(g, i);
        if (i % BLANK_EVERY == 50)
            emit(g, BLANKS[i / BLANK_EVERY % N_OF(BLANKS)],
                 strlen(BLANKS[i / BLANK_EVERY % N_OF(BLANKS)]));
        if (i % BAD_EVERY == 7)
            emit_bad(g, (enum bad_kind)(g->next_bad_kind++ % N_BAD_KINDS), UINT32_MAX, 0,
                     true);
        assert_true(g->offset - step_start < STEP_MAX_BYTES);
    }
    assert_true(boundary_done[1] && boundary_done[2]);
    emit_due(g, UINT32_MAX); /* the far ones: the last megabytes replace the first */
    emit_bad(g, BAD_UNTERMINATED, UINT32_MAX, 0, false); /* the last line, no newline */
    c->n_lines = g->line_no;
    c->bytes = g->offset;
    assert_int_equal(fclose(g->f), 0);
    free(g);
}

/* ---- loading it four ways ---- */

struct load {
    const char *name;
    int threads;
    size_t memory_bytes;
    char dir[PATH_BYTES];
    struct index *ix;
    struct bulkload_stats stats;
    int rc;
    struct xerr err;
    char *errors; /* what it reported, NUL-terminated */
    size_t errors_len;
};

static struct fixture {
    char *dir;
    struct corpus corpus;
    struct load loads[4];
} *fx;

static const struct load LOAD_CONFIGS[4] = {
    { .name = "1 thread", .threads = 1 },
    { .name = "2 threads", .threads = 2 },
    { .name = "3 threads, 1 MiB", .threads = 3, .memory_bytes = SMALL_MEMORY_BYTES },
    { .name = "1 thread, 6 MiB", .threads = 1, .memory_bytes = DIRECT_MEMORY_BYTES },
};

/* Loads files into a fresh index in dir; returns what errors said (caller frees). */
static int load_into(const char *dir, char *const *files, int n_files, int threads,
                     size_t memory_bytes, struct index **ix, struct bulkload_stats *stats,
                     struct xerr *err, char **errors, size_t *errors_len)
{
    FILE *mem = open_memstream(errors, errors_len);

    assert_non_null(mem);
    assert_ok(index_open(dir, TOKENIZE_DEFAULT, ix, err), err);
    struct bulkload_options opt = { .threads = threads, .memory_bytes = memory_bytes,
                                    .errors = mem };
    int rc = bulkload_files(*ix, files, n_files, &opt, stats, err);
    assert_int_equal(fclose(mem), 0);
    return rc;
}

static int group_setup(void **state)
{
    (void)state;
    fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    fx->dir = test_mkdtemp();
    assert_non_null(fx->dir);
    snprintf(fx->corpus.path, sizeof fx->corpus.path, "%s/corpus.jsonl", fx->dir);
    uint64_t start_ms = test_now_ms();
    corpus_write(&fx->corpus);
    uint64_t written_ms = test_now_ms();
    char *files[] = { fx->corpus.path };
    for (size_t k = 0; k < N_OF(fx->loads); k++) {
        struct load *l = &fx->loads[k];
        *l = LOAD_CONFIGS[k];
        snprintf(l->dir, sizeof l->dir, "%s/index-%zu", fx->dir, k);
        uint64_t load_start_ms = test_now_ms();
        l->rc = load_into(l->dir, files, 1, l->threads, l->memory_bytes, &l->ix, &l->stats,
                          &l->err, &l->errors, &l->errors_len);
        print_message("[ corpus ] %s: %llu docs, %llu bad lines, rc %d, %llu ms\n", l->name,
                      (unsigned long long)l->stats.docs, (unsigned long long)l->stats.bad_lines,
                      l->rc, (unsigned long long)(test_now_ms() - load_start_ms));
    }
    print_message("[ corpus ] %llu bytes, %llu lines, %u ids, %llu good lines, %u bad; "
                  "written in %llu ms\n",
                  (unsigned long long)fx->corpus.bytes, (unsigned long long)fx->corpus.n_lines,
                  (unsigned)fx->corpus.n_ids, (unsigned long long)fx->corpus.good_lines,
                  (unsigned)fx->corpus.n_bad, (unsigned long long)(written_ms - start_ms));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (!fx)
        return 0;
    for (size_t k = 0; k < N_OF(fx->loads); k++) {
        if (fx->loads[k].ix)
            index_close(fx->loads[k].ix);
        free(fx->loads[k].errors);
    }
    test_rmtree(fx->dir);
    free(fx->dir);
    free(fx);
    fx = NULL;
    return 0;
}

/* ---- reading the indexes ---- */

static void id_of_hit(const struct snapshot *snap, const struct search_hit *h, char *out,
                      size_t cap)
{
    struct segment_doc sd;

    assert_true(h->segment < snap->n_segments);
    test_segment_doc(snap->segments[h->segment]->seg, h->docid, &sd);
    assert_true(sd.id_len < cap);
    memcpy(out, sd.id, sd.id_len);
    out[sd.id_len] = '\0';
}

/* A search's hits as (id, score), sorted by id; and its total. */
struct answer {
    uint64_t total;
    uint32_t n_hits;
    char (*ids)[16];
    double *scores;      /* by id, as ids */
    double *rank_scores; /* in rank order */
};

static int answer_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void ask(struct index *ix, const char *text, struct answer *a)
{
    struct snapshot *snap = index_snapshot(ix);
    struct query *q = NULL;
    struct search_result r;
    struct xerr err = { 0 };
    uint32_t k = (uint32_t)snap->n_docs + 1; /* every match */

    assert_ok(query_parse(text, strlen(text), snap->tokenize_flags, &q, &err), &err);
    assert_ok(search_run(snap, q, k, &r, &err), &err);
    assert_false(r.total_is_bound);
    assert_int_equal(r.n_hits, r.total); /* k is more than the documents */
    *a = (struct answer){ .total = r.total, .n_hits = r.n_hits };
    a->ids = calloc(r.n_hits + 1, sizeof *a->ids);
    a->scores = calloc(r.n_hits + 1, sizeof *a->scores);
    a->rank_scores = calloc(r.n_hits + 1, sizeof *a->rank_scores);
    assert_true(a->ids && a->scores && a->rank_scores);
    /* sort (id, score) pairs by id: a score rides along after the id's bytes */
    struct pair {
        char id[16];
        double score;
    } *pairs = calloc(r.n_hits + 1, sizeof *pairs);
    assert_non_null(pairs);
    for (uint32_t h = 0; h < r.n_hits; h++) {
        id_of_hit(snap, &r.hits[h], pairs[h].id, sizeof pairs[h].id);
        pairs[h].score = r.hits[h].score;
        a->rank_scores[h] = r.hits[h].score;
        if (h)
            assert_true(r.hits[h].score <= r.hits[h - 1].score); /* best first */
    }
    qsort(pairs, r.n_hits, sizeof *pairs, answer_cmp);
    for (uint32_t h = 0; h < r.n_hits; h++) {
        memcpy(a->ids[h], pairs[h].id, sizeof a->ids[h]);
        a->scores[h] = pairs[h].score;
        if (h)
            assert_true(strcmp(a->ids[h - 1], a->ids[h]) < 0); /* no id twice */
    }
    free(pairs);
    search_result_fini(&r);
    query_free(q);
    snapshot_release(snap);
}

static void answer_fini(struct answer *a)
{
    free(a->ids);
    free(a->scores);
    free(a->rank_scores);
}

static void assert_load_ok(const struct load *l)
{
    if (l->rc)
        fail_msg("load with %s: %s", l->name, l->err.msg);
}

/* ---- the tests ---- */

/* Fails naming the load when got is not want. */
static void expect_count(const struct load *l, const char *what, uint64_t got, uint64_t want)
{
    if (got != want)
        fail_msg("%s: %s is %llu, want %llu", l->name, what, (unsigned long long)got,
                 (unsigned long long)want);
}

static void test_bulkload_counts_every_good_and_bad_line(void **state)
{
    const struct corpus *c = &fx->corpus;

    (void)state;
    assert_true(c->bytes > 2 * (uint64_t)TEST_CHUNK_BYTES); /* three chunks */
    assert_true(c->n_replacements > 100 && c->n_bad > 50);
    for (size_t k = 0; k < N_OF(fx->loads); k++) {
        const struct load *l = &fx->loads[k];
        assert_load_ok(l);
        expect_count(l, "stats.docs", l->stats.docs, c->good_lines); /* replaced ones too */
        expect_count(l, "stats.bad_lines", l->stats.bad_lines, c->n_bad);
        expect_count(l, "stats.bytes", l->stats.bytes, c->bytes); /* every byte, once */
        expect_count(l, "stats.segments", l->stats.segments, 1);
        struct snapshot *snap = index_snapshot(l->ix);
        expect_count(l, "segments", snap->n_segments, 1);
        expect_count(l, "live documents", snap->n_docs, c->n_ids);
        /* the replaced versions are gone from the segment, not just deleted */
        expect_count(l, "stored documents", snap->n_docs_stored, c->n_ids);
        snapshot_release(snap);
    }
}

static void test_bulkload_keeps_the_latest_good_version_of_each_id(void **state)
{
    const struct corpus *c = &fx->corpus;
    struct buf scratch;
    struct xerr err = { 0 };

    (void)state;
    buf_init(&scratch, (size_t)64 << 20);
    for (size_t k = 0; k < N_OF(fx->loads); k++) {
        const struct load *l = &fx->loads[k];
        assert_load_ok(l);
        struct snapshot *snap = index_snapshot(l->ix);
        for (uint32_t id = 0; id < c->n_ids; id++) {
            char idtext[16], want[TITLE_CAP_BYTES];
            uint32_t seg, docid;
            make_id(id, idtext, sizeof idtext);
            if (snapshot_find(snap, idtext, strlen(idtext), &seg, &docid, NULL) != XE_OK)
                fail_msg("%s: %s is missing", l->name, idtext);
            struct doc_fields d;
            assert_ok(segment_load(snap->segments[seg]->seg, docid, &scratch, &d, &err), &err);
            title_of(id, c->final_version[id], want, sizeof want);
            if (d.title.len != strlen(want) || memcmp(d.title.p, want, d.title.len))
                fail_msg("%s: %s has title \"%.*s\", want \"%s\"", l->name, idtext,
                         (int)d.title.len, d.title.p, want);
        }
        for (uint32_t b = 0; b < c->n_bad_ids; b++) { /* ids of bad lines only */
            char idtext[16];
            uint32_t seg, docid;
            snprintf(idtext, sizeof idtext, "b%04u", (unsigned)b);
            if (snapshot_find(snap, idtext, strlen(idtext), &seg, &docid, NULL) == XE_OK)
                fail_msg("%s: %s, only on a bad line, was loaded", l->name, idtext);
        }
        snapshot_release(snap);
    }
    buf_fini(&scratch);
}

/* Asserts that text finds exactly the ids whose latest version carries marker. */
static void assert_marker_finds(const struct load *l, const char *text, enum marker marker)
{
    const struct corpus *c = &fx->corpus;
    struct answer a;
    uint32_t want = 0;

    ask(l->ix, text, &a);
    for (uint32_t id = 0; id < c->n_ids; id++) {
        if (c->final_marker[id] != marker)
            continue;
        char idtext[16];
        make_id(id, idtext, sizeof idtext);
        if (!bsearch(idtext, a.ids, a.n_hits, sizeof *a.ids, answer_cmp))
            fail_msg("%s: %s does not find %s", l->name, text, idtext);
        want++;
    }
    if (a.total != want)
        fail_msg("%s: %s finds %llu documents, want %u", l->name, text,
                 (unsigned long long)a.total, (unsigned)want);
    answer_fini(&a);
}

static void test_bulkload_markers_find_only_latest_versions(void **state)
{
    (void)state;
    for (size_t k = 0; k < N_OF(fx->loads); k++) {
        const struct load *l = &fx->loads[k];
        assert_load_ok(l);
        assert_marker_finds(l, "zqoldver", MARK_OLD); /* no latest version has it: 0 */
        assert_marker_finds(l, "鳄鱼", MARK_OLD);
        assert_marker_finds(l, "zqoldver OR 鳄鱼", MARK_OLD);
        assert_marker_finds(l, "zqnewver", MARK_NEW);
        assert_marker_finds(l, "麒麟", MARK_NEW);
        assert_marker_finds(l, "zqnewver 麒麟", MARK_NEW);
        assert_marker_finds(l, "鳄", MARK_OLD);  /* the hidden one-character terms too */
        assert_marker_finds(l, "麟", MARK_NEW);
        assert_marker_finds(l, "zqsurvive", MARK_SURVIVOR);
    }
}

/* Common, topical and rare words, one character, operators, fields, exact values. */
static const char *const QUERIES[] = {
    "经济", "消费", "芯片", "债券", "水稻", "疫苗", "联赛", "琵琶", "榫卯", "蹴鞠",
    "济", "稻", "鳄", "麟", "market", "people", "kernel", "wheat", "zeppelin", "quokka",
    "Narwhal", "KERNEL", "芯片 债券", "芯片 OR quokka", "疫苗 -market", "水稻 -稻",
    "债券 OR 基金 -利率", "\"人工智能\"", "\"chip robot\"", "title:芯片", "title:足球 goal",
    "新华社", "sports", "zqnewver", "麒麟 -债券", "d00017", "v3", "notaword", "猫",
};

static void test_bulkload_thread_counts_answer_alike(void **state)
{
    (void)state;
    for (size_t k = 0; k < N_OF(fx->loads); k++)
        assert_load_ok(&fx->loads[k]);
    uint64_t nonempty = 0;
    for (size_t q = 0; q < N_OF(QUERIES); q++) {
        struct answer first;
        ask(fx->loads[0].ix, QUERIES[q], &first);
        nonempty += first.total > 0;
        for (size_t k = 1; k < N_OF(fx->loads); k++) {
            struct answer other;
            ask(fx->loads[k].ix, QUERIES[q], &other);
            if (other.total != first.total)
                fail_msg("%s: %s finds %llu, %s finds %llu", QUERIES[q], fx->loads[0].name,
                         (unsigned long long)first.total, fx->loads[k].name,
                         (unsigned long long)other.total);
            for (uint32_t h = 0; h < first.n_hits; h++) {
                if (strcmp(first.ids[h], other.ids[h]))
                    fail_msg("%s: %s finds %s where %s finds %s", QUERIES[q],
                             fx->loads[0].name, first.ids[h], fx->loads[k].name,
                             other.ids[h]);
                if (fabs(first.scores[h] - other.scores[h]) > SCORE_EPSILON)
                    fail_msg("%s: %s scores %.12f in %s, %.12f in %s", QUERIES[q],
                             first.ids[h], first.scores[h], fx->loads[0].name, other.scores[h],
                             fx->loads[k].name);
                if (fabs(first.rank_scores[h] - other.rank_scores[h]) > SCORE_EPSILON)
                    fail_msg("%s: hit %u scores %.12f in %s, %.12f in %s", QUERIES[q],
                             (unsigned)h, first.rank_scores[h], fx->loads[0].name,
                             other.rank_scores[h], fx->loads[k].name);
            }
            answer_fini(&other);
        }
        answer_fini(&first);
    }
    assert_true(nonempty >= N_OF(QUERIES) - 6); /* the queries test something */
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/*
 * Asserts that errors (text as a load wrote it) has one line per bad line
 * of path: "<path>:<line>: <why>", for exactly the lines in want (sorted),
 * each saying what its kind says; in order when ordered.
 */
static void assert_reports(const char *name, const char *errors, const char *path,
                           const uint64_t *want, const enum bad_kind *kinds, uint32_t n_want,
                           bool ordered)
{
    uint64_t *got = calloc(n_want + 1, sizeof *got);
    uint32_t n_got = 0;
    size_t path_len = strlen(path);

    assert_non_null(got);
    for (const char *p = errors; *p;) {
        const char *end = strchr(p, '\n');
        assert_non_null(end);
        if (strncmp(p, path, path_len) || p[path_len] != ':')
            fail_msg("%s: a report does not start with \"%s:\": %.*s", name, path,
                     (int)(end - p), p);
        char *after;
        errno = 0;
        uint64_t line_no = strtoull(p + path_len + 1, &after, 10);
        if (errno || after == p + path_len + 1 || strncmp(after, ": ", 2) || after + 2 >= end)
            fail_msg("%s: not \"<path>:<line>: <why>\": %.*s", name, (int)(end - p), p);
        const uint64_t *at = bsearch(&line_no, want, n_want, sizeof *want, u64_cmp);
        if (!at)
            fail_msg("%s: line %llu reported, but it is not bad: %.*s", name,
                     (unsigned long long)line_no, (int)(end - p), p);
        const char *says = BAD[kinds[at - want]].says;
        if (!memmem(after, (size_t)(end - after), says, strlen(says)))
            fail_msg("%s: line %llu should say %s: %.*s", name, (unsigned long long)line_no,
                     says, (int)(end - p), p);
        if (ordered && n_got && line_no <= got[n_got - 1])
            fail_msg("%s: line %llu reported after line %llu", name,
                     (unsigned long long)line_no, (unsigned long long)got[n_got - 1]);
        assert_true(n_got < n_want + 1);
        got[n_got++] = line_no;
        p = end + 1;
    }
    if (n_got != n_want)
        fail_msg("%s: %u reports, want %u", name, (unsigned)n_got, (unsigned)n_want);
    qsort(got, n_got, sizeof *got, u64_cmp);
    for (uint32_t i = 0; i < n_got; i++)
        if (got[i] != want[i])
            fail_msg("%s: reports line %llu, want line %llu", name,
                     (unsigned long long)got[i], (unsigned long long)want[i]);
    free(got);
}

static void test_bulkload_reports_each_bad_line_with_its_number(void **state)
{
    const struct corpus *c = &fx->corpus;

    (void)state;
    for (uint32_t i = 1; i < c->n_bad; i++)
        assert_true(c->bad_line_no[i - 1] < c->bad_line_no[i]);
    assert_int_equal(c->bad_line_no[c->n_bad - 1], c->n_lines); /* the last line */
    for (size_t k = 0; k < N_OF(fx->loads); k++) {
        const struct load *l = &fx->loads[k];
        assert_load_ok(l);
        assert_non_null(l->errors);
        /* one preparer reads in order; with more, their reports interleave */
        assert_reports(l->name, l->errors, c->path, c->bad_line_no, c->bad_kind, c->n_bad,
                       l->threads <= 2);
    }
}

/* ---- small files ---- */

static void write_text(const char *dir, const char *name, const char *text, char *path,
                       size_t cap)
{
    snprintf(path, cap, "%s/%s", dir, name);
    test_write_file(path, (const unsigned char *)text, strlen(text));
}

static void test_bulkload_missing_file_is_an_error(void **state)
{
    const char *dir = *state;
    static const int threads[] = { 1, 2, 3 };

    for (size_t t = 0; t < N_OF(threads); t++) {
        char path[PATH_BYTES], ixdir[PATH_BYTES];
        char *files[] = { path };
        struct index *ix;
        struct bulkload_stats stats;
        struct xerr err = { 0 };
        char *errors = NULL;
        size_t errors_len = 0;
        snprintf(path, sizeof path, "%s/no-such-file.jsonl", dir);
        snprintf(ixdir, sizeof ixdir, "%s/index-%zu", dir, t);
        int rc = load_into(ixdir, files, 1, threads[t], 0, &ix, &stats, &err, &errors,
                           &errors_len);
        assert_int_equal(rc, XE_IO);
        assert_int_equal(err.code, XE_IO);
        assert_non_null(strstr(err.msg, "no-such-file.jsonl"));
        assert_int_equal(stats.docs, 0);
        assert_int_equal(stats.bad_lines, 0);
        assert_int_equal(stats.segments, 0);
        struct snapshot *snap = index_snapshot(ix);
        assert_int_equal(snap->n_docs, 0);
        snapshot_release(snap);
        index_close(ix);
        free(errors);
    }
}

static void test_bulkload_empty_and_blank_files_load_nothing(void **state)
{
    const char *dir = *state;
    static const struct {
        const char *text;
        uint64_t bad_lines;
        const char *report; /* after "<path>:" */
    } files[] = {
        { "", 0, NULL },
        { "\n\n  \n\t\r\n", 0, NULL },
        { "\n\n{\"title\":\"no id\"}\n\n", 1, "3: " },
        { "\r\n{\"id\":\"x\",\"title\":\"no end", 1, "2: " },
    };
    static const int threads[] = { 1, 2, 3 };

    for (size_t f = 0; f < N_OF(files); f++) {
        for (size_t t = 0; t < N_OF(threads); t++) {
            char name[64], path[PATH_BYTES], ixdir[PATH_BYTES];
            char *paths[] = { path };
            struct index *ix;
            struct bulkload_stats stats;
            struct xerr err = { 0 };
            char *errors = NULL;
            size_t errors_len = 0;
            snprintf(name, sizeof name, "file-%zu.jsonl", f);
            write_text(dir, name, files[f].text, path, sizeof path);
            snprintf(ixdir, sizeof ixdir, "%s/index-%zu-%zu", dir, f, t);
            assert_ok(load_into(ixdir, paths, 1, threads[t], 0, &ix, &stats, &err, &errors,
                                &errors_len),
                      &err);
            assert_int_equal(stats.docs, 0);
            assert_int_equal(stats.bad_lines, files[f].bad_lines);
            assert_int_equal(stats.bytes, strlen(files[f].text));
            assert_int_equal(stats.segments, 0);
            if (files[f].report) {
                size_t path_len = strlen(path);
                assert_true(errors_len > path_len + 1);
                assert_memory_equal(errors, path, path_len);
                assert_int_equal(errors[path_len], ':');
                assert_memory_equal(errors + path_len + 1, files[f].report,
                                    strlen(files[f].report));
                assert_non_null(strchr(errors, '\n'));
                assert_int_equal(strchr(errors, '\n') - errors + 1, (ptrdiff_t)errors_len);
            } else {
                assert_int_equal(errors_len, 0);
            }
            struct snapshot *snap = index_snapshot(ix);
            assert_int_equal(snap->n_docs, 0);
            assert_int_equal(snap->n_segments, 0);
            snapshot_release(snap);
            index_close(ix);
            free(errors);
        }
    }
}

/*
 * A pipe named by a path (a FIFO, or /dev/fd/N as the shell's <(zcat ...)
 * gives it) reads like a file; only "-" is known to be standard input.
 */
static void test_bulkload_reads_a_pipe_named_by_path(void **state)
{
    const char *dir = *state;
    static const char text[] = "{\"id\":\"p1\",\"title\":\"管道 pipe\"}\n"
                               "\n"
                               "{\"id\":\"p2\",\"body\":\"pipe\"}\n"
                               "{\"id\":\"p3\",\"tags\":\"pipe\"}\n";
    static const int threads[] = { 1, 2 };

    for (size_t t = 0; t < N_OF(threads); t++) {
        char path[64], ixdir[PATH_BYTES];
        char *files[] = { path };
        struct index *ix;
        struct bulkload_stats stats;
        struct xerr err = { 0 };
        char *errors = NULL;
        size_t errors_len = 0;
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        assert_int_equal(write(fds[1], text, sizeof text - 1), (ssize_t)(sizeof text - 1));
        close(fds[1]); /* all of it fits in the pipe's buffer */
        snprintf(path, sizeof path, "/dev/fd/%d", fds[0]);
        snprintf(ixdir, sizeof ixdir, "%s/index-%zu", dir, t);
        assert_ok(load_into(ixdir, files, 1, threads[t], 0, &ix, &stats, &err, &errors,
                            &errors_len),
                  &err);
        close(fds[0]);
        assert_int_equal(stats.docs, 2);
        assert_int_equal(stats.bad_lines, 1);
        assert_int_equal(stats.bytes, sizeof text - 1);
        assert_non_null(strstr(errors, ":4: "));
        struct answer a;
        ask(ix, "pipe", &a);
        assert_int_equal(a.total, 2);
        answer_fini(&a);
        index_close(ix);
        free(errors);
    }
}

static void test_bulkload_later_file_replaces_earlier(void **state)
{
    const char *dir = *state;
    static const int threads[] = { 1, 2, 3 };
    char first[PATH_BYTES], second[PATH_BYTES];
    char *files[] = { first, second };

    write_text(dir, "a.jsonl",
               "{\"id\":\"x1\",\"title\":\"甲 first\",\"body\":\"zqolder 经济\"}\n"
               "{\"id\":\"x2\",\"title\":\"乙\",\"body\":\"market\"}\n"
               "{\"id\":\"x3\",\"title\":\"丙\",\"body\":\"survives\"}",
               first, sizeof first);
    write_text(dir, "b.jsonl",
               "\n"
               "{\"id\":\"x3\",\"date\":\"never\"}\n"
               "{\"id\":\"x1\",\"title\":\"甲 second\",\"body\":\"zqnewer 经济\"}\r\n",
               second, sizeof second);
    for (size_t t = 0; t < N_OF(threads); t++) {
        char ixdir[PATH_BYTES], want_report[PATH_BYTES + 8];
        struct index *ix;
        struct bulkload_stats stats;
        struct xerr err = { 0 };
        struct buf scratch;
        char *errors = NULL;
        size_t errors_len = 0;
        uint32_t seg, docid;
        struct doc_fields d;
        snprintf(ixdir, sizeof ixdir, "%s/index-%zu", dir, t);
        assert_ok(load_into(ixdir, files, 2, threads[t], 0, &ix, &stats, &err, &errors,
                            &errors_len),
                  &err);
        assert_int_equal(stats.docs, 4);
        assert_int_equal(stats.bad_lines, 1);
        assert_int_equal(stats.segments, 1); /* one per file, merged */
        snprintf(want_report, sizeof want_report, "%s:2: ", second);
        assert_memory_equal(errors, want_report, strlen(want_report));
        struct snapshot *snap = index_snapshot(ix);
        assert_int_equal(snap->n_docs, 3);
        assert_int_equal(snap->n_docs_stored, 3);
        assert_true(snapshot_find(snap, "x1", 2, &seg, &docid, NULL) == XE_OK);
        buf_init(&scratch, (size_t)1 << 20);
        assert_ok(segment_load(snap->segments[seg]->seg, docid, &scratch, &d, &err), &err);
        assert_int_equal(d.title.len, strlen("甲 second"));
        assert_memory_equal(d.title.p, "甲 second", d.title.len);
        /* its later line was bad */
        assert_true(snapshot_find(snap, "x3", 2, &seg, &docid, NULL) == XE_OK);
        buf_fini(&scratch);
        snapshot_release(snap);
        struct answer a;
        ask(ix, "zqolder", &a);
        assert_int_equal(a.total, 0);
        answer_fini(&a);
        ask(ix, "zqnewer", &a);
        assert_int_equal(a.total, 1);
        assert_string_equal(a.ids[0], "x1");
        answer_fini(&a);
        index_close(ix);
        free(errors);
    }
}

int main(void)
{
    const struct CMUnitTest corpus_tests[] = {
        cmocka_unit_test(test_bulkload_counts_every_good_and_bad_line),
        cmocka_unit_test(test_bulkload_keeps_the_latest_good_version_of_each_id),
        cmocka_unit_test(test_bulkload_markers_find_only_latest_versions),
        cmocka_unit_test(test_bulkload_thread_counts_answer_alike),
        cmocka_unit_test(test_bulkload_reports_each_bad_line_with_its_number),
    };
#define T(f) cmocka_unit_test_setup_teardown(f, test_dir_setup, test_dir_teardown)
    const struct CMUnitTest small_tests[] = {
        T(test_bulkload_missing_file_is_an_error),
        T(test_bulkload_empty_and_blank_files_load_nothing),
        T(test_bulkload_later_file_replaces_earlier),
        T(test_bulkload_reads_a_pipe_named_by_path),
    };
#undef T
    int failed = cmocka_run_group_tests_name("small files", small_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("a 9.5 MiB corpus", corpus_tests, group_setup,
                                          group_teardown);
    docstore_thread_cleanup(); /* this thread's reads */
    return failed;
}
