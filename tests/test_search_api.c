/*
 * Tests of the search features behind the filters, order, facets and
 * suggestions of API.md:
 *
 * - search_run_opts() (query/search.h) in process: source and tag filters
 *   (exact, any of) alone, together and with queries, negation, phrases and
 *   OR, over two segments, with replaced and deleted documents; date bounds
 *   inclusive at both ends; sort by date (newest first, undated last, ties
 *   by id); facets (counts merged over segments, most frequent first, ties
 *   by value, top SEARCH_FACET_VALUES); max_matches and total_is_bound; a
 *   deadline that passes while facets are counted, on a fake clock.
 * - search_json() (server/routes.h) with a deadline that passes between
 *   hits: "timed_out", and the later hits without highlights.
 * - suggest_run() (query/suggest.h) on a small hand-made index: exact lists
 *   for CJK prefixes, single characters, Latin prefix expansion with the
 *   typed case kept, the errors it refuses with, and deleted documents.
 * - HTTP end to end (tests/testserver.h on 127.0.0.1 port 0): the
 *   /search parameters source, tag, from, to, sort and facets with their 400
 *   errors, /suggest, OPTIONS preflight and CORS headers with and without
 *   server_config.cors_origin, and the search page at GET / and HEAD /.
 * - The /search response cache (server/cache.h) end to end: a repeated URL
 *   answers the same bytes but for took_ms and counts a miss then a hit in
 *   /metrics; a PUT, replace or DELETE shows in a cached search within a
 *   second; HEAD of a cached search has the GET's length (but for took_ms's
 *   digits) and no body; with cache_bytes 0 the answers are the same and no
 *   search is a hit; a timed-out answer (server_config.query_clock_ns past
 *   every deadline) is never cached.
 *
 * In-process indexes are built in a fresh mkdtemp() folder per test with
 * posting blocks of two documents, so that even a handful of documents
 * crosses block boundaries. Expected values are worked out by hand from
 * the documents next to each test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "index/format/deletions.h"
#include "index/format/doc.h"
#include "index/base/error.h"
#include "index/index.h"
#include "index/base/limits.h"
#include "index/write/memindex.h"
#include "index/format/segment.h"
#include "query/qparse.h"
#include "query/search.h"
#include "query/suggest.h"
#include "server/bulkload.h"
#include "server/http.h"
#include "server/routes.h"
#include "tests/httpc.h"
#include "tests/testserver.h"
#include "tests/testutil.h"

#define TEST_BLOCK_DOCS 2 /* posting blocks of two documents: lists cross blocks */
#define IDS_MAX_BYTES 2048
#define FACETS_MAX_BYTES 2048
#define MAX_TEST_HITS 64
#define SCORE_EPSILON 1e-12
#define TARGET_MAX_BYTES 4096
#define CORS_ORIGIN "https://news.example"

/* Dates of the documents below, seconds since the epoch (UTC). */
#define T_0229 1709164800     /* 2024-02-29T00:00:00Z */
#define T_0301 1709251200     /* 2024-03-01T00:00:00Z */
#define T_0302 1709337600     /* 2024-03-02T00:00:00Z */
#define T_0302_END 1709423999 /* 2024-03-02T23:59:59Z */
#define T_0303 1709424000     /* 2024-03-03T00:00:00Z */

/* ---- building indexes in process ---- */

#define TDOC_MAX_TAGS 4

/* A document as a test writes it; NULL fields are absent. */
struct tdoc {
    const char *id, *title, *body, *source, *date;
    const char *tags[TDOC_MAX_TAGS];
};

struct fixture {
    char *dir;
    struct index *ix;
};

static int fixture_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    struct xerr err = { 0 };

    if (!f || !(f->dir = test_mkdtemp()) || index_open(f->dir, TOKENIZE_DEFAULT, &f->ix, &err) != XE_OK) {
        fprintf(stderr, "fixture: %s\n", err.msg);
        if (f)
            test_rmtree(f->dir);
        free(f ? f->dir : NULL);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int fixture_teardown(void **state)
{
    struct fixture *f = *state;

    index_close(f->ix);
    test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static struct text text_of(const char *s)
{
    return (struct text){ s, s ? strlen(s) : 0 };
}

/* Writes docs as one new segment of ix (a later id replaces an earlier one, as a bulk load). */
static void add_segment(struct index *ix, const struct tdoc *docs, size_t n)
{
    struct memindex *mi = memindex_new(TOKENIZE_DEFAULT);
    struct xerr err = { 0 };
    char path[4096];

    assert_non_null(mi);
    memindex_set_block_docs(mi, TEST_BLOCK_DOCS);
    for (size_t i = 0; i < n; i++) {
        struct doc_fields d = {
            .id = text_of(docs[i].id),
            .title = text_of(docs[i].title),
            .body = text_of(docs[i].body),
            .source = text_of(docs[i].source),
            .date = text_of(docs[i].date),
            .date_s = DOC_DATE_NONE,
            .json = text_of("{}"),
        };
        if (docs[i].date && !doc_parse_date(docs[i].date, strlen(docs[i].date), &d.date_s))
            fail_msg("test document %s: bad date %s", docs[i].id, docs[i].date);
        for (size_t t = 0; t < TDOC_MAX_TAGS && docs[i].tags[t]; t++)
            d.tags[d.n_tags++] = text_of(docs[i].tags[t]);
        if (memindex_add(mi, &d, &err) != XE_OK)
            fail_msg("memindex_add %s: %s", docs[i].id, err.msg);
    }
    if (index_reserve_segment(ix, path, sizeof path, &err) ||
        memindex_write(mi, path, true, &err) || index_commit_segment(ix, path, &err))
        fail_msg("writing a segment: %s", err.msg);
    memindex_free(mi);
}

/*
 * Deletes the live document id by publishing a snapshot with one more
 * tombstone, as the writer does (in memory only: enough for searches).
 */
static void delete_id(struct index *ix, const char *id)
{
    struct snapshot *snap = index_snapshot(ix);
    uint32_t seg, docid;

    if (snapshot_find(snap, id, strlen(id), &seg, &docid, NULL) != XE_OK)
        fail_msg("delete_id: no live document %s", id);
    struct deletions **dels = calloc(snap->n_segments, sizeof *dels);
    assert_non_null(dels);
    for (uint32_t s = 0; s < snap->n_segments; s++)
        dels[s] = snap->deleted[s];
    struct deletions *copy =
        deletions_copy(snap->deleted[seg], segment_n_docs(snap->segments[seg]->seg));
    assert_non_null(copy);
    assert_true(deletions_add(copy, docid));
    dels[seg] = copy;
    struct snapshot *next = snapshot_make(snap->segments, dels, snap->n_segments);
    assert_non_null(next);
    deletions_unref(copy);
    free(dels);
    snapshot_release(snap);
    index_publish(ix, next);
}

/* ---- running searches in process ---- */

struct run {
    char ids[IDS_MAX_BYTES]; /* hit ids in rank order, space-separated */
    uint64_t total;
    bool bound, timed_out;
    uint32_t n_hits;
    double scores[MAX_TEST_HITS];
    char facets[2][FACETS_MAX_BYTES]; /* "value:count value:count", best first */
    size_t n_facets[2];
};

static void add_source(struct search_options *o, const char *s)
{
    assert_true(o->n_sources < SEARCH_MAX_FILTER_VALUES);
    o->sources[o->n_sources++] = text_of(s);
}

static void add_tag(struct search_options *o, const char *s)
{
    assert_true(o->n_tags < SEARCH_MAX_FILTER_VALUES);
    o->tags[o->n_tags++] = text_of(s);
}

static void append(char *out, size_t cap, const char *sep, const char *p, size_t len)
{
    size_t used = strlen(out);
    int w = snprintf(out + used, cap - used, "%s%.*s", used ? sep : "", (int)len, p);
    assert_true(w > 0 && (size_t)w < cap - used);
}

/* Runs text over ix with o; fills *r and checks what holds for every result. */
static void run_opts(struct index *ix, const char *text, const struct search_options *o,
                     struct run *r)
{
    struct query *q = NULL;
    struct xerr err = { 0 };
    struct search_result res;

    memset(r, 0, sizeof *r);
    if (query_parse(text, strlen(text), TOKENIZE_DEFAULT, &q, &err) != XE_OK)
        fail_msg("query_parse \"%s\": %s", text, err.msg);
    struct snapshot *snap = index_snapshot(ix);
    if (search_run_opts(snap, q, o, &res, &err) != XE_OK)
        fail_msg("search_run_opts \"%s\": %s", text, err.msg);
    assert_true(res.n_hits <= MAX_TEST_HITS);
    assert_int_equal(res.n_hits, res.total < o->k ? res.total : o->k);
    for (uint32_t i = 0; i < res.n_hits; i++) {
        struct segment_doc d;
        assert_true(res.hits[i].segment < snap->n_segments);
        assert_false(snapshot_is_deleted(snap, res.hits[i].segment, res.hits[i].docid));
        test_segment_doc(snap->segments[res.hits[i].segment]->seg, res.hits[i].docid, &d);
        append(r->ids, sizeof r->ids, " ", d.id, d.id_len);
        if (!isfinite(res.hits[i].score) || !(res.hits[i].score > 0))
            fail_msg("\"%s\": hit %.*s has score %g", text, (int)d.id_len, d.id,
                     res.hits[i].score);
        r->scores[i] = res.hits[i].score;
    }
    const bool want[2] = { o->facet_source, o->facet_tag };
    for (int f = 0; f < 2; f++) {
        if (!want[f]) {
            assert_int_equal(res.n_facets[f], 0);
            continue;
        }
        assert_true(res.n_facets[f] <= SEARCH_FACET_VALUES);
        r->n_facets[f] = res.n_facets[f];
        for (size_t i = 0; i < res.n_facets[f]; i++) {
            char item[TOKEN_MAX_BYTES + 32];
            const struct facet_value *v = &res.facets[f][i];
            int w = snprintf(item, sizeof item, "%.*s:%llu", (int)v->len, v->value,
                             (unsigned long long)v->count);
            assert_true(w > 0 && (size_t)w < sizeof item);
            append(r->facets[f], sizeof r->facets[f], " ", item, (size_t)w);
        }
    }
    r->total = res.total;
    r->bound = res.total_is_bound;
    r->timed_out = res.timed_out;
    r->n_hits = res.n_hits;
    search_result_fini(&res);
    snapshot_release(snap);
    query_free(q);
}

static int cstr_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The ids of r as a sorted set, space-separated (r->total must equal the hits). */
static void id_set(const struct run *r, char *out, size_t cap)
{
    char copy[IDS_MAX_BYTES];
    char *words[MAX_TEST_HITS];
    size_t n = 0;

    assert_int_equal(r->total, r->n_hits);
    memcpy(copy, r->ids, sizeof copy);
    for (char *w = copy; *w;) {
        char *space = strchr(w, ' ');
        assert_true(n < MAX_TEST_HITS);
        words[n++] = w;
        if (!space)
            break;
        *space = '\0';
        w = space + 1;
    }
    qsort(words, n, sizeof *words, cstr_cmp);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        append(out, cap, " ", words[i], strlen(words[i]));
}

/* ---- the news documents: two segments ---- */

/*
 * Every body has "news", so the query news matches all eight. "apple" is in
 * the title of n1 n3 n5 n7 and the body of n2 n4 (n1's "apples" is another
 * term). Sources are exact: n4's "reuters" is not "Reuters", n7 has none;
 * tags likewise ("Food" is not "food").
 */
static const struct tdoc news_a[] = {
    { "n1", "apple harvest", "apples and pears news", "新华社", "2024-03-01", { "farm", "food" } },
    { "n2", "pear prices", "apple market news", "Reuters", "2024-03-02T23:59:59Z", { "market" } },
    { "n3", "apple pie", "a recipe news", "新华社", NULL, { "food" } },
    { "n4", "banana", "tropical apple news", "reuters", "2024-03-03", { "Food" } },
};
static const struct tdoc news_b[] = {
    { "n5", "apple juice", "pressed news", "Reuters", "2024-03-02", { "food", "market" } },
    { "n6", "cherry", "red news", "新华社", "2024-02-29", { NULL } },
    { "n7", "apple cider", "cider news", NULL, "2024-03-02T00:00:00+00:00", { NULL } },
    { "n8", "plain", "nothing news", "Reuters", NULL, { "food" } },
};

static void add_news(struct index *ix)
{
    add_segment(ix, news_a, sizeof news_a / sizeof news_a[0]);
    add_segment(ix, news_b, sizeof news_b / sizeof news_b[0]);
}

/* One row: a query, filters (NULL-terminated), dates, and the matching set. */
struct filter_case {
    const char *q;
    const char *sources[4];
    const char *tags[4];
    bool has_from, has_to;
    int64_t from_s, to_s;
    const char *ids; /* sorted */
};

static void run_filter_cases(struct index *ix, const struct filter_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct search_options o = { .k = MAX_TEST_HITS };
        struct run r;
        char got[IDS_MAX_BYTES];
        for (size_t k = 0; k < 4 && cases[i].sources[k]; k++)
            add_source(&o, cases[i].sources[k]);
        for (size_t k = 0; k < 4 && cases[i].tags[k]; k++)
            add_tag(&o, cases[i].tags[k]);
        o.has_from = cases[i].has_from;
        o.from_s = cases[i].from_s;
        o.has_to = cases[i].has_to;
        o.to_s = cases[i].to_s;
        run_opts(ix, cases[i].q, &o, &r);
        id_set(&r, got, sizeof got);
        if (strcmp(got, cases[i].ids) != 0)
            fail_msg("row %zu \"%s\": want \"%s\", got \"%s\"", i, cases[i].q, cases[i].ids,
                     got);
        assert_false(r.bound);
    }
}

static const struct filter_case filter_cases[] = {
    /* no filter */
    { "news", { NULL }, { NULL }, false, false, 0, 0, "n1 n2 n3 n4 n5 n6 n7 n8" },
    /* one source, across both segments; exact bytes, case kept */
    { "news", { "新华社" }, { NULL }, false, false, 0, 0, "n1 n3 n6" },
    { "news", { "Reuters" }, { NULL }, false, false, 0, 0, "n2 n5 n8" },
    { "news", { "reuters" }, { NULL }, false, false, 0, 0, "n4" },
    { "news", { "REUTERS" }, { NULL }, false, false, 0, 0, "" },
    { "news", { "新华" }, { NULL }, false, false, 0, 0, "" },     /* not a prefix match */
    { "news", { "Reuters " }, { NULL }, false, false, 0, 0, "" }, /* nor trimmed */
    { "news", { "Nobody" }, { NULL }, false, false, 0, 0, "" },
    /* any of */
    { "news", { "Reuters", "reuters" }, { NULL }, false, false, 0, 0, "n2 n4 n5 n8" },
    { "news", { "Nobody", "新华社" }, { NULL }, false, false, 0, 0, "n1 n3 n6" },
    { "news", { "新华社", "新华社" }, { NULL }, false, false, 0, 0, "n1 n3 n6" },
    /* tags */
    { "news", { NULL }, { "food" }, false, false, 0, 0, "n1 n3 n5 n8" },
    { "news", { NULL }, { "Food" }, false, false, 0, 0, "n4" },
    { "news", { NULL }, { "market" }, false, false, 0, 0, "n2 n5" },
    { "news", { NULL }, { "food", "market" }, false, false, 0, 0, "n1 n2 n3 n5 n8" },
    { "news", { NULL }, { "新华社" }, false, false, 0, 0, "" }, /* a source is not a tag */
    { "news", { NULL }, { "Nobody", "farm" }, false, false, 0, 0, "n1" },
    /* source and tag: both must hold */
    { "news", { "Reuters" }, { "food" }, false, false, 0, 0, "n5 n8" },
    { "news", { "新华社" }, { "market" }, false, false, 0, 0, "" },
    { "news", { "Reuters", "新华社" }, { "market", "farm" }, false, false, 0, 0, "n1 n2 n5" },
    /* with queries: terms, negation, OR, phrases, title: */
    { "apple", { "新华社" }, { NULL }, false, false, 0, 0, "n1 n3" },
    { "apple -pie", { "新华社" }, { NULL }, false, false, 0, 0, "n1" },
    { "news -apple", { "新华社" }, { NULL }, false, false, 0, 0, "n6" },
    { "news -pie", { NULL }, { "food" }, false, false, 0, 0, "n1 n5 n8" },
    { "apple OR cherry", { "新华社" }, { NULL }, false, false, 0, 0, "n1 n3 n6" },
    { "\"apple pie\"", { NULL }, { "food" }, false, false, 0, 0, "n3" },
    { "\"apple pie\"", { NULL }, { "market" }, false, false, 0, 0, "" },
    { "title:apple", { "Reuters" }, { NULL }, false, false, 0, 0, "n5" },
    { "apple", { "Reuters" }, { "food" }, false, false, 0, 0, "n5" },
    { "banana", { "Reuters" }, { NULL }, false, false, 0, 0, "" },
    { "pear OR juice", { "Reuters" }, { "market" }, false, false, 0, 0, "n2 n5" },
    /* the query text "reuters" matches the source's words, any case */
    { "reuters", { NULL }, { NULL }, false, false, 0, 0, "n2 n4 n5 n8" },
    { "reuters", { "reuters" }, { NULL }, false, false, 0, 0, "n4" },
    /* dates: inclusive at both ends; an undated document never passes a bound */
    { "news", { NULL }, { NULL }, true, false, T_0302, 0, "n2 n4 n5 n7" },
    { "news", { NULL }, { NULL }, true, false, T_0302 + 1, 0, "n2 n4" },
    { "news", { NULL }, { NULL }, false, true, 0, T_0302_END, "n1 n2 n5 n6 n7" },
    { "news", { NULL }, { NULL }, false, true, 0, T_0302_END - 1, "n1 n5 n6 n7" },
    { "news", { NULL }, { NULL }, true, true, T_0302, T_0302, "n5 n7" },
    { "news", { NULL }, { NULL }, true, true, T_0302_END, T_0302_END, "n2" },
    { "news", { NULL }, { NULL }, true, true, T_0303, T_0303, "n4" },
    { "news", { NULL }, { NULL }, true, true, T_0229, T_0301, "n1 n6" },
    { "news", { NULL }, { NULL }, true, true, T_0303, T_0302, "" }, /* from after to */
    { "news", { NULL }, { NULL }, true, false, 0, 0, "n1 n2 n4 n5 n6 n7" },
    { "news", { NULL }, { NULL }, true, false, INT64_MIN + 1, 0, "n1 n2 n4 n5 n6 n7" },
    { "news", { NULL }, { NULL }, false, true, 0, INT64_MAX, "n1 n2 n4 n5 n6 n7" },
    { "news", { NULL }, { NULL }, true, false, T_0303 + 1, 0, "" },
    /* dates with filters and queries */
    { "news", { "Reuters" }, { NULL }, true, false, T_0302, 0, "n2 n5" },
    { "apple", { NULL }, { "food" }, false, true, 0, T_0302, "n1 n5" },
    { "apple", { NULL }, { NULL }, false, true, 0, T_0302 - 1, "n1" },
    { "apple -juice", { NULL }, { NULL }, true, true, T_0302, T_0302_END, "n2 n7" },
};

static void test_search_filters_alone_combined_and_with_queries(void **state)
{
    struct fixture *f = *state;

    add_news(f->ix);
    run_filter_cases(f->ix, filter_cases, sizeof filter_cases / sizeof filter_cases[0]);
}

/* A filter restricts the matches and adds nothing to a score. */
static void test_search_filters_leave_scores_unchanged(void **state)
{
    struct fixture *f = *state;
    struct search_options plain = { .k = MAX_TEST_HITS }, filtered = { .k = MAX_TEST_HITS };
    struct run all, some;

    add_news(f->ix);
    run_opts(f->ix, "apple", &plain, &all);
    add_source(&filtered, "新华社");
    add_tag(&filtered, "food");
    run_opts(f->ix, "apple", &filtered, &some);
    /* titles of two words each, no apple in the bodies: a tie, by id */
    assert_string_equal(some.ids, "n1 n3");
    /* every filtered hit scores what it scores unfiltered */
    for (uint32_t i = 0; i < some.n_hits; i++) {
        char id[8];
        snprintf(id, sizeof id, "%.2s", some.ids + 3 * i);
        const char *at = strstr(all.ids, id);
        assert_non_null(at);
        uint32_t j = (uint32_t)(at - all.ids) / 3;
        if (fabs(all.scores[j] - some.scores[i]) > SCORE_EPSILON)
            fail_msg("%s: %.15f unfiltered, %.15f filtered", id, all.scores[j],
                     some.scores[i]);
    }
    /* and search_run() is search_run_opts() with k alone */
    struct query *q = NULL;
    struct xerr err = { 0 };
    struct search_result res;
    assert_int_equal(query_parse("apple", 5, TOKENIZE_DEFAULT, &q, &err), XE_OK);
    struct snapshot *snap = index_snapshot(f->ix);
    assert_int_equal(search_run(snap, q, MAX_TEST_HITS, &res, &err), XE_OK);
    assert_int_equal(res.total, all.total);
    assert_int_equal(res.n_hits, all.n_hits);
    assert_false(res.total_is_bound);
    for (uint32_t i = 0; i < res.n_hits; i++)
        assert_true(fabs(res.hits[i].score - all.scores[i]) <= SCORE_EPSILON);
    assert_int_equal(res.n_facets[0], 0);
    assert_int_equal(res.n_facets[1], 0);
    search_result_fini(&res);
    snapshot_release(snap);
    query_free(q);
}

/*
 * n5 is loaded again in a third segment with another source, tags and date
 * (its seg B version is tombstoned), then n3 and n8 are deleted: filters,
 * dates, order and facets see only the live versions.
 */
static void test_search_filters_skip_replaced_and_deleted(void **state)
{
    static const struct tdoc newer[] = {
        { "n5", "apple juice", "pressed news", "新华社", "2024-03-05", { "farm" } },
    };
    static const struct filter_case cases[] = {
        { "news", { NULL }, { NULL }, false, false, 0, 0, "n1 n2 n4 n5 n6 n7" },
        { "news", { "Reuters" }, { NULL }, false, false, 0, 0, "n2" },
        { "news", { "新华社" }, { NULL }, false, false, 0, 0, "n1 n5 n6" },
        { "news", { NULL }, { "food" }, false, false, 0, 0, "n1" },
        { "news", { NULL }, { "farm" }, false, false, 0, 0, "n1 n5" },
        { "news", { NULL }, { "market" }, false, false, 0, 0, "n2" },
        { "apple", { "新华社" }, { NULL }, false, false, 0, 0, "n1 n5" },
        { "news", { NULL }, { NULL }, true, true, T_0302, T_0302, "n7" },
        { "news", { NULL }, { NULL }, true, false, T_0303, 0, "n4 n5" },
    };
    struct fixture *f = *state;
    struct search_options o = { .k = MAX_TEST_HITS, .sort_by_date = true,
                                .facet_source = true, .facet_tag = true };
    struct run r;

    add_news(f->ix);
    add_segment(f->ix, newer, 1);
    delete_id(f->ix, "n3");
    delete_id(f->ix, "n8");
    struct snapshot *snap = index_snapshot(f->ix);
    assert_int_equal(snap->n_segments, 3);
    assert_int_equal(snap->n_docs, 6);
    snapshot_release(snap);
    run_filter_cases(f->ix, cases, sizeof cases / sizeof cases[0]);
    run_opts(f->ix, "news", &o, &r);
    assert_int_equal(r.total, 6);
    assert_string_equal(r.ids, "n5 n4 n2 n7 n1 n6");
    assert_string_equal(r.facets[0], "新华社:3 Reuters:1 reuters:1");
    assert_string_equal(r.facets[1], "farm:2 Food:1 food:1 market:1");
}

static void test_search_sort_by_date_newest_first_undated_last_ties_by_id(void **state)
{
    static const struct {
        const char *q;
        uint32_t k;
        const char *source;
        const char *ids; /* in order */
        uint64_t total;
    } cases[] = {
        /* n7 and n5 share 2024-03-02T00:00:00Z: by id; n3 and n8 are undated: by id */
        { "news", 8, NULL, "n4 n2 n5 n7 n1 n6 n3 n8", 8 },
        { "news", 64, NULL, "n4 n2 n5 n7 n1 n6 n3 n8", 8 },
        { "news", 3, NULL, "n4 n2 n5", 8 },
        { "news", 4, NULL, "n4 n2 n5 n7", 8 },
        { "news", 7, NULL, "n4 n2 n5 n7 n1 n6 n3", 8 },
        { "news", 1, NULL, "n4", 8 },
        { "news", 0, NULL, "", 8 },
        { "apple", 8, NULL, "n4 n2 n5 n7 n1 n3", 6 },
        { "news", 8, "新华社", "n1 n6 n3", 3 },
        { "news", 8, "Reuters", "n2 n5 n8", 3 },
        { "plain OR pie", 8, NULL, "n3 n8", 2 }, /* only undated: by id */
        { "news -apple", 8, NULL, "n6 n8", 2 },
    };
    struct fixture *f = *state;

    add_news(f->ix);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct search_options o = { .k = cases[i].k, .sort_by_date = true };
        struct run r;
        if (cases[i].source)
            add_source(&o, cases[i].source);
        run_opts(f->ix, cases[i].q, &o, &r);
        if (strcmp(r.ids, cases[i].ids) != 0 || r.total != cases[i].total)
            fail_msg("row %zu \"%s\" k %u: want \"%s\" (%llu), got \"%s\" (%llu)", i,
                     cases[i].q, cases[i].k, cases[i].ids,
                     (unsigned long long)cases[i].total, r.ids, (unsigned long long)r.total);
    }
    /* the same query by relevance: the two-word titles with apple first (a tie: by id),
     * then the three-word bodies */
    struct search_options o = { .k = 8 };
    struct run r;
    run_opts(f->ix, "apple", &o, &r);
    assert_string_equal(r.ids, "n1 n3 n5 n7 n2 n4");
}

static void test_search_facets_count_merge_and_order(void **state)
{
    static const struct {
        const char *q;
        const char *source, *tag;
        bool has_from;
        int64_t from_s;
        const char *sources, *tags; /* NULL: not asked for */
        uint64_t total;
    } cases[] = {
        /* Reuters 3 (n2 in A, n5 n8 in B) ties 新华社 3 (n1 n3 in A, n6 in B): by bytes */
        { "news", NULL, NULL, false, 0, "Reuters:3 新华社:3 reuters:1",
          "food:4 market:2 Food:1 farm:1", 8 },
        { "news", NULL, NULL, false, 0, "Reuters:3 新华社:3 reuters:1", NULL, 8 },
        { "news", NULL, NULL, false, 0, NULL, "food:4 market:2 Food:1 farm:1", 8 },
        { "apple", NULL, NULL, false, 0, "Reuters:2 新华社:2 reuters:1",
          "food:3 market:2 Food:1 farm:1", 6 },
        /* counts of the documents that match, filters included */
        { "news", "Reuters", NULL, false, 0, "Reuters:3", "food:2 market:2", 3 },
        { "news", NULL, "food", false, 0, "Reuters:2 新华社:2", "food:4 farm:1 market:1", 4 },
        { "news", NULL, NULL, true, T_0302, "Reuters:2 reuters:1", "market:2 Food:1 food:1", 4 },
        { "cherry", NULL, NULL, false, 0, "新华社:1", "", 1 }, /* n6 has no tags */
        { "cider", NULL, NULL, false, 0, "", "", 1 },          /* n7 has neither */
        { "nosuchword", NULL, NULL, false, 0, "", "", 0 },
        { "news", "Nobody", NULL, false, 0, "", "", 0 },
    };
    struct fixture *f = *state;

    add_news(f->ix);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (uint32_t k = 0; k <= 8; k += 8) { /* facets do not depend on hits kept */
            struct search_options o = { .k = k, .facet_source = cases[i].sources != NULL,
                                        .facet_tag = cases[i].tags != NULL,
                                        .has_from = cases[i].has_from,
                                        .from_s = cases[i].from_s };
            struct run r;
            if (cases[i].source)
                add_source(&o, cases[i].source);
            if (cases[i].tag)
                add_tag(&o, cases[i].tag);
            run_opts(f->ix, cases[i].q, &o, &r);
            assert_int_equal(r.total, cases[i].total);
            if (cases[i].sources && strcmp(r.facets[0], cases[i].sources) != 0)
                fail_msg("row %zu k %u: source facets want \"%s\", got \"%s\"", i, k,
                         cases[i].sources, r.facets[0]);
            if (cases[i].tags && strcmp(r.facets[1], cases[i].tags) != 0)
                fail_msg("row %zu k %u: tag facets want \"%s\", got \"%s\"", i, k,
                         cases[i].tags, r.facets[1]);
        }
    }
}

/*
 * 30 documents over two segments, all tagged "c"; document j also has tag
 * tNN with NN = j % 25, so t00..t04 count 2 (j and j + 25, one in each
 * segment) and t05..t24 count 1. The top SEARCH_FACET_VALUES (20) are c, the
 * five with 2, then the first fourteen of the ones by value.
 */
#define MANY_FACET_DOCS 30
#define MANY_FACET_FIRST_SEGMENT 15

struct many_facets {
    char ids[MANY_FACET_DOCS][8], tags[MANY_FACET_DOCS][8], titles[MANY_FACET_DOCS][16];
    struct tdoc docs[MANY_FACET_DOCS];
};

static void add_many_facets(struct index *ix, struct many_facets *m)
{
    for (unsigned j = 0; j < MANY_FACET_DOCS; j++) {
        snprintf(m->ids[j], sizeof m->ids[j], "m%02u", j % 100);
        snprintf(m->tags[j], sizeof m->tags[j], "t%02u", j % 25);
        snprintf(m->titles[j], sizeof m->titles[j], "common w%02u", j % 100);
        m->docs[j] = (struct tdoc){ .id = m->ids[j], .title = m->titles[j], .body = "text",
                                    .source = j % 2 ? "odd" : "even",
                                    .tags = { "c", m->tags[j] } };
    }
    add_segment(ix, m->docs, MANY_FACET_FIRST_SEGMENT);
    add_segment(ix, m->docs + MANY_FACET_FIRST_SEGMENT,
                MANY_FACET_DOCS - MANY_FACET_FIRST_SEGMENT);
}

static void test_search_facets_keep_the_top_values(void **state)
{
    struct fixture *f = *state;
    struct many_facets m;
    struct search_options o = { .k = 5, .facet_source = true, .facet_tag = true };
    struct run r;
    char want[FACETS_MAX_BYTES] = "c:30";

    add_many_facets(f->ix, &m);
    for (int t = 0; t < 5; t++) {
        char item[16];
        snprintf(item, sizeof item, "t%02d:2", t);
        append(want, sizeof want, " ", item, strlen(item));
    }
    for (int t = 5; t < 5 + 14; t++) {
        char item[16];
        snprintf(item, sizeof item, "t%02d:1", t);
        append(want, sizeof want, " ", item, strlen(item));
    }
    run_opts(f->ix, "common", &o, &r);
    assert_int_equal(r.total, MANY_FACET_DOCS);
    assert_int_equal(r.n_facets[1], SEARCH_FACET_VALUES);
    assert_string_equal(r.facets[1], want);
    assert_string_equal(r.facets[0], "even:15 odd:15");
    /* restricted to odd sources and two tags */
    struct search_options odd = { .k = 5, .facet_tag = true };
    add_source(&odd, "odd");
    add_tag(&odd, "t01");
    add_tag(&odd, "t02");
    run_opts(f->ix, "common", &odd, &r);
    /* t01: m01 (odd), m26 (even); t02: m02 (even), m27 (odd) */
    assert_int_equal(r.total, 2);
    assert_string_equal(r.ids, "m01 m27");
    assert_string_equal(r.facets[1], "c:2 t01:1 t02:1");
}

static void test_search_max_matches_stops_and_marks_total_as_bound(void **state)
{
    static const struct {
        uint64_t max_matches;
        uint32_t k;
        uint64_t total;
        bool bound;
        uint32_t n_hits;
    } cases[] = {
        { 0, 10, 30, false, 10 },  { 31, 10, 30, false, 10 }, { 1000, 40, 30, false, 30 },
        { 10, 5, 10, true, 5 },    { 10, 40, 10, true, 10 },  { 1, 10, 1, true, 1 },
        { 20, 40, 20, true, 20 }, /* the first segment holds 15: it stops in the second */
        { 29, 0, 29, true, 0 },
    };
    struct fixture *f = *state;
    struct many_facets m;

    add_many_facets(f->ix, &m);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct search_options o = { .k = cases[i].k, .max_matches = cases[i].max_matches,
                                    .facet_tag = true };
        struct run r;
        run_opts(f->ix, "common", &o, &r);
        if (r.total != cases[i].total || r.bound != cases[i].bound ||
            r.n_hits != cases[i].n_hits)
            fail_msg("row %zu: want total %llu bound %d hits %u, got %llu %d %u", i,
                     (unsigned long long)cases[i].total, cases[i].bound, cases[i].n_hits,
                     (unsigned long long)r.total, r.bound, r.n_hits);
        /* the facets count the documents that were counted */
        char c[16];
        snprintf(c, sizeof c, "c:%llu", (unsigned long long)cases[i].total);
        assert_int_equal(strncmp(r.facets[1], c, strlen(c)), 0);
        assert_true(r.facets[1][strlen(c)] == ' ' || r.facets[1][strlen(c)] == '\0');
    }
    /* exactly max_matches matches: the total is right either way */
    struct search_options o = { .k = 10, .max_matches = MANY_FACET_DOCS };
    struct run r;
    run_opts(f->ix, "common", &o, &r);
    assert_int_equal(r.total, MANY_FACET_DOCS);
    /* deleted documents are not counted towards max_matches */
    for (int j = 0; j < 10; j++)
        delete_id(f->ix, m.ids[j]);
    o = (struct search_options){ .k = 40, .max_matches = 21 };
    run_opts(f->ix, "common", &o, &r);
    assert_int_equal(r.total, 20);
    assert_false(r.bound);
    o.max_matches = 5;
    run_opts(f->ix, "common", &o, &r);
    assert_int_equal(r.total, 5);
    assert_true(r.bound);
    assert_null(strstr(r.ids, "m0"));
}


/* ---- the time budget ---- */

/* A clock that never looks at the time: each read returns one more than the last. */
static uint64_t fake_clock_reads;

static uint64_t fake_clock_ns(void)
{
    return ++fake_clock_reads;
}

/* s0..s8, all "news"; sources A (s0..s2), B (s3..s5), C (s6..s8). */
static void add_three_sources(struct index *ix)
{
    static const struct tdoc docs[] = {
        { .id = "s0", .title = "news one", .body = "news", .source = "A" },
        { .id = "s1", .title = "news two", .body = "news", .source = "A" },
        { .id = "s2", .title = "news three", .body = "news", .source = "A" },
        { .id = "s3", .title = "news four", .body = "news", .source = "B" },
        { .id = "s4", .title = "news five", .body = "news", .source = "B" },
        { .id = "s5", .title = "news six", .body = "news", .source = "B" },
        { .id = "s6", .title = "news seven", .body = "news", .source = "C" },
        { .id = "s7", .title = "news eight", .body = "news", .source = "C" },
        { .id = "s8", .title = "news nine", .body = "news", .source = "C" },
    };
    add_segment(ix, docs, sizeof docs / sizeof *docs);
}

static void test_search_deadline_while_counting_facets(void **state)
{
    struct fixture *f = *state;
    struct run r;

    add_three_sources(f->ix);
    struct search_options o = { .k = 3, .facet_source = true, .clock_ns = fake_clock_ns,
                                .clock_every = 1, .deadline_ns = 1000 };
    fake_clock_reads = 0;
    run_opts(f->ix, "news", &o, &r);
    assert_false(r.timed_out);
    assert_string_equal(r.facets[0], "A:3 B:3 C:3");
    /* one read per match (9), then per posting of A (3 and its end), then B's: the
     * 15th read, B's second, is the deadline. The matches were all counted; A's
     * count is whole, B's partial count is left out, C is never looked at. */
    assert_int_equal(fake_clock_reads, 9 + 4 + 4 + 4);
    o.deadline_ns = 15;
    fake_clock_reads = 0;
    run_opts(f->ix, "news", &o, &r);
    assert_true(r.timed_out);
    assert_true(r.bound);
    assert_int_equal(r.total, 9);
    assert_int_equal(fake_clock_reads, 15);
    assert_string_equal(r.facets[0], "A:3");
}

/*
 * search_json as /search and xun search call it: a deadline that passes
 * after the search, while hits are written, leaves the rest unhighlighted.
 */
static void test_search_json_deadline_between_hits(void **state)
{
    struct fixture *f = *state;
    struct xerr err = { 0 };
    json_t *body;

    add_three_sources(f->ix);
    struct search_params sp = { .q = "news", .q_len = 4, .limit = 3, .highlight = true,
                                .opts = { .clock_ns = fake_clock_ns } };
    assert_ok(search_json(f->ix, &sp, &body, &err), &err);
    assert_true(json_is_false(json_object_get(body, "timed_out")));
    json_t *hits = json_object_get(body, "hits");
    assert_int_equal(json_array_size(hits), 3);
    for (size_t i = 0; i < 3; i++)
        assert_non_null(json_object_get(json_array_get(hits, i), "snippet"));
    json_decref(body);

    /* read 1: the search starts; 2: before the first hit; 3: before the second */
    sp.opts.deadline_ns = 3;
    fake_clock_reads = 0;
    assert_ok(search_json(f->ix, &sp, &body, &err), &err);
    assert_int_equal(fake_clock_reads, 3);
    assert_true(json_is_true(json_object_get(body, "timed_out")));
    assert_string_equal(json_string_value(json_object_get(body, "total_relation")), "eq");
    assert_int_equal(json_integer_value(json_object_get(body, "total")), 9);
    hits = json_object_get(body, "hits");
    assert_int_equal(json_array_size(hits), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *hit = json_array_get(hits, i);
        assert_non_null(json_object_get(hit, "id"));
        assert_non_null(json_object_get(hit, "title"));
        assert_true((json_object_get(hit, "snippet") != NULL) == (i == 0));
        assert_true((json_object_get(hit, "title_html") != NULL) == (i == 0));
    }
    json_decref(body);

    /* past the deadline before it starts: no hits, a total of 0 that is a bound */
    sp.opts.deadline_ns = 1;
    fake_clock_reads = 0;
    assert_ok(search_json(f->ix, &sp, &body, &err), &err);
    assert_true(json_is_true(json_object_get(body, "timed_out")));
    assert_string_equal(json_string_value(json_object_get(body, "total_relation")), "gte");
    assert_int_equal(json_integer_value(json_object_get(body, "total")), 0);
    assert_int_equal(json_array_size(json_object_get(body, "hits")), 0);
    json_decref(body);
}

/*
 * Exact values longer than TOKEN_MAX_BYTES are indexed cut at a character
 * boundary (doc.h); a filter with the same long value must find them.
 */
static void test_search_filter_on_a_long_value(void **state)
{
    struct fixture *f = *state;
    char long_source[1 + 100 * 3 + 1], long_tag[301];

    long_source[0] = 'x'; /* byte 255 falls inside a character */
    for (int i = 0; i < 100; i++)
        memcpy(long_source + 1 + 3 * i, "新", 3);
    long_source[301] = '\0';
    memset(long_tag, 'y', 300);
    long_tag[300] = '\0';
    const struct tdoc docs[] = {
        { "long", "long values", "text", long_source, NULL, { long_tag } },
        { "short", "short values", "text", "x", NULL, { "y" } },
    };
    add_segment(f->ix, docs, 2);

    struct search_options o = { .k = 8, .facet_source = true, .facet_tag = true };
    struct run r;
    add_tag(&o, long_tag);
    run_opts(f->ix, "text", &o, &r);
    assert_string_equal(r.ids, "long");
    /* the facet value is the indexed cut: 255 y */
    assert_int_equal(strlen(r.facets[1]), TOKEN_MAX_BYTES + 2);
    assert_int_equal(strncmp(r.facets[1], long_tag, TOKEN_MAX_BYTES), 0);
    assert_string_equal(r.facets[1] + TOKEN_MAX_BYTES, ":1");
    assert_int_equal(strlen(r.facets[0]), 1 + 84 * 3 + 2);
    assert_int_equal(strncmp(r.facets[0], long_source, 1 + 84 * 3), 0);
    /* the cut value, as a facet gives it, filters too */
    o = (struct search_options){ .k = 8 };
    char cut[1 + 84 * 3 + 1];
    memcpy(cut, long_source, 1 + 84 * 3);
    cut[1 + 84 * 3] = '\0';
    add_source(&o, cut);
    run_opts(f->ix, "text", &o, &r);
    assert_string_equal(r.ids, "long");
    /* the whole long value filters too: cut the same way as when indexed */
    o = (struct search_options){ .k = 8 };
    add_source(&o, long_source);
    run_opts(f->ix, "text", &o, &r);
    assert_string_equal(r.ids, "long");
}

/* ---- suggestions ---- */

/*
 * Titles for suggest_run(), in two segments. Latin: bedrock is in the
 * titles of g1 and g2 (three words each: a tie, by id) and the body of g6
 * (df 3); bedroom in the titles of g3 and g5, the same title (df 2);
 * bedtime only in the body of g4 (df 1). CJK: 普惠 in the titles of c3 (3
 * bigrams), c2 (4) and c1 (7), so BM25 ranks them c3 c2 c1; 惠金 df 2 (c1
 * c3), 惠化 df 1 (c2); 猫 in c4 (2 bigrams) and c5 (3), 猫咪 and 猫粮 df 1.
 */
static const struct tdoc suggest_a[] = {
    { "g1", "AWS Bedrock launch", "aws bedrock", NULL, NULL, { NULL } },
    { "g2", "Bedrock pricing explained", "bedrock", NULL, NULL, { NULL } },
    { "g3", "Bedroom design ideas", "bedroom", NULL, NULL, { NULL } },
    { "g4", "Stories", "bedtime stories", NULL, NULL, { NULL } },
    { "c1", "普惠金融发展报告", "text", NULL, NULL, { NULL } },
    { "c2", "数字普惠化", "text", NULL, NULL, { NULL } },
};
static const struct tdoc suggest_b[] = {
    { "c3", "普惠金融", "text", NULL, NULL, { NULL } },
    { "c4", "小猫咪", "text", NULL, NULL, { NULL } },
    { "c5", "猫粮价格", "text", NULL, NULL, { NULL } },
    { "g5", "Bedroom design ideas", "bedroom", NULL, NULL, { NULL } },
    { "g6", "Granite", "bedrock geology", NULL, NULL, { NULL } },
};

static void add_suggest_docs(struct index *ix)
{
    add_segment(ix, suggest_a, sizeof suggest_a / sizeof suggest_a[0]);
    add_segment(ix, suggest_b, sizeof suggest_b / sizeof suggest_b[0]);
}

/*
 * Suggestions for prefix as one string: "text/id" or "text" (no id), joined
 * by " | "; asserts XE_OK.
 */
static void suggest_text(struct index *ix, const char *prefix, size_t len, uint32_t limit,
                         char *out, size_t cap)
{
    struct suggestion *s = NULL;
    size_t n = 0;
    struct xerr err = { 0 };
    struct snapshot *snap = index_snapshot(ix);
    int rc = suggest_run(snap, prefix, len, limit, &s, &n, &err);

    snapshot_release(snap);
    if (rc != XE_OK)
        fail_msg("suggest \"%.*s\": %d %s", (int)len, prefix, rc, err.msg);
    assert_true(n <= limit);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        char item[1024];
        assert_int_equal(strlen(s[i].text), s[i].len);
        int w = s[i].id ? snprintf(item, sizeof item, "%s/%s", s[i].text, s[i].id)
                        : snprintf(item, sizeof item, "%s", s[i].text);
        assert_true(w > 0 && (size_t)w < sizeof item);
        if (s[i].id)
            assert_int_equal(strlen(s[i].id), s[i].id_len);
        append(out, cap, " | ", item, (size_t)w);
    }
    suggestions_free(s, n);
}

static const struct {
    const char *prefix;
    uint32_t limit;
    const char *want;
} suggest_cases[] = {
    /* Latin prefix: titles of the expansions by df, then the phrases, typed case kept */
    { "Bed", 8, "AWS Bedrock launch/g1 | Bedrock pricing explained/g2 | "
                "Bedroom design ideas/g3 | Bedrock | Bedroom | Bedtime" },
    { "Bed", 3, "AWS Bedrock launch/g1 | Bedrock pricing explained/g2 | "
                "Bedroom design ideas/g3" },
    { "Bed", 4, "AWS Bedrock launch/g1 | Bedrock pricing explained/g2 | "
                "Bedroom design ideas/g3 | Bedrock" },
    { "Bed", 1, "AWS Bedrock launch/g1" },
    { "bed", 8, "AWS Bedrock launch/g1 | Bedrock pricing explained/g2 | "
                "Bedroom design ideas/g3 | bedrock | bedroom | bedtime" },
    { "BED", 8, "AWS Bedrock launch/g1 | Bedrock pricing explained/g2 | "
                "Bedroom design ideas/g3 | BEDrock | BEDroom | BEDtime" },
    /* full-width letters fold to other bytes: the phrases are the indexed words */
    { "ｂｅｄ", 8, "AWS Bedrock launch/g1 | Bedrock pricing explained/g2 | "
                   "Bedroom design ideas/g3 | bedrock | bedroom | bedtime" },
    /* no title has bedtime: the phrase alone */
    { "Bedt", 8, "Bedtime" },
    { "Bedroo", 8, "Bedroom design ideas/g3 | Bedroom" },
    /* words before the last one are a phrase in the title */
    { "aws Bed", 8, "AWS Bedrock launch/g1 | aws Bedrock | aws Bedroom | aws Bedtime" },
    { "pricing Bedr", 8, "Bedrock pricing explained/g2 | pricing Bedrock | pricing Bedroom" },
    /* a whole word nothing longer starts with: the titles holding it */
    { "Bedrock", 8, "AWS Bedrock launch/g1 | Bedrock pricing explained/g2" },
    { "bedrock pricing", 8, "Bedrock pricing explained/g2" },
    /* the word ended (a space): titles with the word bed, none */
    { "Bed ", 8, "" },
    { "Gra", 8, "Granite/g6" }, /* the phrase is the title: listed once */
    /* CJK: titles holding the run, best first, then bigrams that continue it */
    { "普惠", 8, "普惠金融/c3 | 数字普惠化/c2 | 普惠金融发展报告/c1 | 普惠金 | 普惠化" },
    { "普惠", 2, "普惠金融/c3 | 数字普惠化/c2" },
    { "普惠", 4, "普惠金融/c3 | 数字普惠化/c2 | 普惠金融发展报告/c1 | 普惠金" },
    { "数字普", 8, "数字普惠化/c2 | 数字普惠" },
    { "金融发", 8, "普惠金融发展报告/c1 | 金融发展" },
    { "普惠金融", 8, "普惠金融/c3 | 普惠金融发展报告/c1 | 普惠金融发" },
    /* a single CJK character finds the titles holding it, then its bigrams */
    { "普", 8, "普惠金融/c3 | 数字普惠化/c2 | 普惠金融发展报告/c1 | 普惠" },
    { "猫", 8, "小猫咪/c4 | 猫粮价格/c5 | 猫咪 | 猫粮" },
    { "咪", 8, "小猫咪/c4" },
    { "狗", 8, "" },
    /* nothing to complete */
    { "", 8, "" },
    { "   ", 8, "" },
    { "!!!", 8, "" },
    { "zzz", 8, "" },
};

static void test_suggest_lists_match_table(void **state)
{
    struct fixture *f = *state;
    char got[4096];

    add_suggest_docs(f->ix);
    for (size_t i = 0; i < sizeof suggest_cases / sizeof suggest_cases[0]; i++) {
        suggest_text(f->ix, suggest_cases[i].prefix, strlen(suggest_cases[i].prefix),
                     suggest_cases[i].limit, got, sizeof got);
        if (strcmp(got, suggest_cases[i].want) != 0)
            fail_msg("row %zu \"%s\" limit %u:\n want \"%s\"\n got  \"%s\"", i,
                     suggest_cases[i].prefix, suggest_cases[i].limit, suggest_cases[i].want,
                     got);
    }
}

static void test_suggest_refuses_bad_input_and_honours_limit_0(void **state)
{
    static const struct {
        const char *text;
        size_t len;
        const char *says;
    } bad[] = {
        { "\xff", 1, "UTF-8" },
        { "Bed\xe6\x99", 5, "UTF-8" },  /* truncated */
        { "\xc0\xaf", 2, "UTF-8" },     /* over-long encoding of '/' */
        { "Be\0d", 4, "UTF-8" },        /* NUL inside */
        { "\xed\xa0\x80", 3, "UTF-8" }, /* a surrogate */
    };
    static struct suggestion dummy;
    struct fixture *f = *state;
    struct snapshot *snap;
    struct suggestion *s;
    size_t n;
    struct xerr err = { 0 };
    char text[SUGGEST_MAX_BYTES + 2];
    char got[4096];

    add_suggest_docs(f->ix);
    snap = index_snapshot(f->ix);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (uint32_t limit = 0; limit <= 8; limit += 8) {
            xerr_clear(&err);
            s = &dummy; /* must be reset */
            n = 99;
            assert_int_equal(suggest_run(snap, bad[i].text, bad[i].len, limit, &s, &n, &err),
                             XE_INPUT);
            assert_null(s);
            assert_int_equal(n, 0);
            if (!strstr(err.msg, bad[i].says))
                fail_msg("row %zu: want \"%s\" in \"%s\"", i, bad[i].says, err.msg);
        }
    }
    /* SUGGEST_MAX_BYTES is allowed, one more is not */
    memset(text, 'b', sizeof text);
    memcpy(text, "Bed ", 4);
    xerr_clear(&err);
    assert_int_equal(suggest_run(snap, text, SUGGEST_MAX_BYTES + 1, 8, &s, &n, &err), XE_INPUT);
    assert_null(s);
    assert_non_null(strstr(err.msg, "257"));
    xerr_clear(&err);
    assert_int_equal(suggest_run(snap, text, SUGGEST_MAX_BYTES, 8, &s, &n, &err), XE_OK);
    suggestions_free(s, n);
    /* limit 0: nothing, and nothing to free */
    assert_int_equal(suggest_run(snap, "Bed", 3, 0, &s, &n, &err), XE_OK);
    assert_int_equal(n, 0);
    assert_null(s);
    suggestions_free(s, n);
    suggestions_free(NULL, 0);
    snapshot_release(snap);
    /* SUGGEST_MAX_LIMIT at most: all there are */
    suggest_text(f->ix, "Bed", 3, SUGGEST_MAX_LIMIT, got, sizeof got);
    assert_string_equal(got, suggest_cases[0].want);
    /* the prefix need not end with a NUL */
    char unterminated[3] = { 'B', 'e', 'd' };
    suggest_text(f->ix, unterminated, 3, 8, got, sizeof got);
    assert_string_equal(got, suggest_cases[0].want);
    suggest_text(f->ix, "Bedtime stories", 4, 8, got, sizeof got);
    assert_string_equal(got, "Bedtime");
}

/*
 * A typed word that is whole and also the start of longer words: "Apple"
 * with apple (t1's title) and apples (t2's title) in the index.
 */
static void test_suggest_whole_word_that_longer_words_start_with(void **state)
{
    static const struct tdoc docs[] = {
        { "t1", "Apple pie", "apple", NULL, NULL, { NULL } },
        { "t2", "Apples harvest", "apples", NULL, NULL, { NULL } },
    };
    struct fixture *f = *state;
    char got[1024];

    add_segment(f->ix, docs, 2);
    suggest_text(f->ix, "Appl", 4, 8, got, sizeof got);
    assert_string_equal(got, "Apple pie/t1 | Apples harvest/t2 | Apple | Apples");
    suggest_text(f->ix, "Apple ", 6, 8, got, sizeof got);
    assert_string_equal(got, "Apple pie/t1");
    /* the whole word typed: titles holding it, and the longer words too */
    suggest_text(f->ix, "Apple", 5, 8, got, sizeof got);
    assert_non_null(strstr(got, "Apple pie/t1"));
    assert_non_null(strstr(got, "Apples harvest/t2"));
}

/*
 * More continuations than SUGGEST_MAX_LIMIT: 25 titles 普X, each one bigram.
 * "我普" matches no title, so all suggestions are 我普X phrases, the first
 * SUGGEST_MAX_LIMIT bigrams by bytes (all have df 1).
 */
static void test_suggest_many_continuations_stop_at_the_limit(void **state)
{
    static const char *const chars[] = { "一", "二", "三", "四", "五", "六", "七", "八", "九",
                                         "十", "百", "千", "万", "亿", "东", "西", "南", "北",
                                         "中", "上", "下", "左", "右", "前", "后" };
    enum { N = sizeof chars / sizeof chars[0] };
    struct fixture *f = *state;
    struct tdoc docs[N];
    char titles[N][16], ids[N][8], got[4096], want[4096] = "";
    const char *sorted[N];

    for (unsigned i = 0; i < N; i++) {
        snprintf(titles[i], sizeof titles[i], "普%s", chars[i]);
        snprintf(ids[i], sizeof ids[i], "x%02u", i % 100);
        docs[i] = (struct tdoc){ .id = ids[i], .title = titles[i], .body = "text" };
        sorted[i] = chars[i];
    }
    add_segment(f->ix, docs, N);
    qsort(sorted, N, sizeof *sorted, cstr_cmp);
    for (unsigned i = 0; i < SUGGEST_MAX_LIMIT; i++) {
        char item[16];
        snprintf(item, sizeof item, "我普%s", sorted[i]);
        append(want, sizeof want, " | ", item, strlen(item));
    }
    suggest_text(f->ix, "我普", strlen("我普"), SUGGEST_MAX_LIMIT, got, sizeof got);
    assert_string_equal(got, want);
    /* a lone 普: the titles, best first; all tie, so by id */
    suggest_text(f->ix, "普", 3, 3, got, sizeof got);
    assert_string_equal(got, "普一/x00 | 普二/x01 | 普三/x02");
    /* a limit above SUGGEST_MAX_LIMIT is capped */
    suggest_text(f->ix, "我普", strlen("我普"), SUGGEST_MAX_LIMIT + 1, got, sizeof got);
    assert_string_equal(got, want);
}

/*
 * c3 (普惠金融) is deleted and g1 loaded again with another title: neither
 * the deleted document nor the old title is suggested.
 */
static void test_suggest_never_offers_deleted_or_replaced_titles(void **state)
{
    static const struct tdoc newer[] = {
        { "g1", "AWS Granite launch", "granite", NULL, NULL, { NULL } },
    };
    struct fixture *f = *state;
    char got[4096];

    add_suggest_docs(f->ix);
    delete_id(f->ix, "c3");
    add_segment(f->ix, newer, 1);
    suggest_text(f->ix, "普惠", 2 * 3, 8, got, sizeof got);
    /* the continuations' order counts deleted documents (df): only the titles are exact */
    static const char titles[] = "数字普惠化/c2 | 普惠金融发展报告/c1 | ";
    if (strncmp(got, titles, sizeof titles - 1) != 0)
        fail_msg("want \"%s...\", got \"%s\"", titles, got);
    assert_null(strstr(got, "/c3"));
    assert_null(strstr(got, "普惠金融/"));
    suggest_text(f->ix, "普惠金融", strlen("普惠金融"), 8, got, sizeof got);
    assert_string_equal(got, "普惠金融发展报告/c1 | 普惠金融发");
    suggest_text(f->ix, "Bed", 3, 3, got, sizeof got);
    assert_string_equal(got, "Bedrock pricing explained/g2 | Bedroom design ideas/g3 | Bedrock");
    suggest_text(f->ix, "Bedrock", 7, 8, got, sizeof got);
    assert_string_equal(got, "Bedrock pricing explained/g2");
    suggest_text(f->ix, "aws", 3, 8, got, sizeof got);
    assert_string_equal(got, "AWS Granite launch/g1");
    suggest_text(f->ix, "普", 3, 3, got, sizeof got);
    assert_string_equal(got, "数字普惠化/c2 | 普惠金融发展报告/c1 | 普惠");
    /*
     * Every document deleted: no titles at all. (Phrases may remain: the
     * dictionary keeps a tombstoned document's words until a merge drops
     * it, so "Bedt" still gives the phrase "Bedtime"; not asserted.)
     */
    static const char *const all[] = { "g1", "g2", "g3", "g4", "g5", "g6",
                                       "c1", "c2", "c4", "c5" };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        delete_id(f->ix, all[i]);
    static const char *const prefixes[] = { "Bed", "Bedrock", "普惠", "普", "猫", "aws", "Gra" };
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        suggest_text(f->ix, prefixes[i], strlen(prefixes[i]), 8, got, sizeof got);
        if (strchr(got, '/'))
            fail_msg("\"%s\": a deleted title was suggested: %s", prefixes[i], got);
    }
}

/* An empty index suggests nothing, and neither does a search match anything. */
static void test_suggest_and_search_on_an_empty_index(void **state)
{
    struct fixture *f = *state;
    char got[256];
    struct search_options o = { .k = 8, .facet_source = true, .sort_by_date = true };
    struct run r;

    suggest_text(f->ix, "Bed", 3, 8, got, sizeof got);
    assert_string_equal(got, "");
    suggest_text(f->ix, "普", 3, 8, got, sizeof got);
    assert_string_equal(got, "");
    add_source(&o, "Reuters");
    run_opts(f->ix, "news", &o, &r);
    assert_int_equal(r.total, 0);
    assert_string_equal(r.facets[0], "");
}

/* ---- HTTP ---- */

/*
 * The HTTP documents, one JSON line each. All bodies have "news". Sources:
 * 新华社 h1 h3, Reuters h2 h4; tags: AI h1 h5, cloud h1 h2, finance h3.
 * Dates: h1 03-01, h2 03-02T10:00Z, h5 03-02, h3 03-03, h4 none.
 */
static const char http_corpus[] =
    "{\"id\":\"h1\",\"title\":\"Bedrock launch\",\"body\":\"aws bedrock news\","
    "\"source\":\"新华社\",\"tags\":[\"cloud\",\"AI\"],\"date\":\"2024-03-01\"}\n"
    "{\"id\":\"h2\",\"title\":\"Bedrock pricing\",\"body\":\"bedrock costs news\","
    "\"source\":\"Reuters\",\"tags\":[\"cloud\"],\"date\":\"2024-03-02T10:00:00Z\"}\n"
    "{\"id\":\"h3\",\"title\":\"普惠金融\",\"body\":\"普惠 news\",\"source\":\"新华社\","
    "\"tags\":[\"finance\"],\"date\":\"2024-03-03\"}\n"
    "{\"id\":\"h4\",\"title\":\"Undated note\",\"body\":\"news\",\"source\":\"Reuters\"}\n"
    "{\"id\":\"h5\",\"title\":\"猫粮价格\",\"body\":\"news 猫\",\"tags\":[\"AI\"],"
    "\"date\":\"2024-03-02\"}\n";
#define HTTP_CORPUS_DOCS 5

static struct test_server plain_srv; /* the group's server, without CORS */

#define CACHE_BYTES_DEFAULT SIZE_MAX /* http_server_start_with(): server_config_defaults()'s */

/* test_server_options.opened: loads http_corpus (written beside the folder, then removed). */
static int load_http_corpus(struct test_server *ts, void *arg)
{
    struct bulkload_stats stats;
    struct xerr err = { 0 };
    char path[4096];

    (void)arg;
    snprintf(path, sizeof path, "%s.corpus.jsonl", ts->dir);
    FILE *fp = fopen(path, "w");
    if (!fp || fwrite(http_corpus, 1, sizeof http_corpus - 1, fp) != sizeof http_corpus - 1 ||
        fclose(fp) != 0)
        return -1;
    char *files[] = { path };
    int rc = bulkload_files(ts->ix, files, 1,
                            &(struct bulkload_options){ .threads = 1, .errors = stderr }, &stats,
                            &err);
    remove(path);
    if (rc != XE_OK) {
        fprintf(stderr, "building the index: %s\n", err.msg);
        return -1;
    }
    if (stats.docs != HTTP_CORPUS_DOCS || stats.bad_lines) {
        fprintf(stderr, "corpus: %llu documents, %llu bad lines\n",
                (unsigned long long)stats.docs, (unsigned long long)stats.bad_lines);
        return -1;
    }
    return 0;
}

/*
 * Loads http_corpus into a fresh index and serves it; cors_origin may be
 * NULL; cache_bytes is 0 (no cache) or CACHE_BYTES_DEFAULT; query_clock is
 * server_config.query_clock_ns (NULL: the real clock).
 */
static int http_server_start_with(struct test_server *hs, const char *cors_origin,
                                  size_t cache_bytes, uint64_t (*query_clock)(void))
{
    assert_true(cache_bytes == 0 || cache_bytes == CACHE_BYTES_DEFAULT);
    return test_server_start(hs, NULL,
                             &(struct test_server_options){ .cors_origin = cors_origin,
                                                            .no_cache = cache_bytes == 0,
                                                            .query_clock_ns = query_clock,
                                                            .opened = load_http_corpus });
}

static int http_server_start(struct test_server *hs, const char *cors_origin)
{
    return http_server_start_with(hs, cors_origin, CACHE_BYTES_DEFAULT, NULL);
}

static int http_group_setup(void **state)
{
    (void)state;
    return http_server_start(&plain_srv, NULL);
}

static int http_group_teardown(void **state)
{
    (void)state;
    test_server_fini(&plain_srv);
    return 0;
}

/* One request on a fresh connection, closed after the reply. */
static void http_do(uint16_t port, const char *method, const char *target,
                    const char *headers, struct httpc_reply *r)
{
    if (!test_http_request(port, method, target, headers, NULL, 0, r))
        fail_msg("%s %.200s: no reply", method, target);
}

/* http_do() with a request body (NULL for none). */
static void http_do_body(uint16_t port, const char *method, const char *target, const char *body,
                         struct httpc_reply *r)
{
    if (!test_http_request(port, method, target, NULL, body, body ? strlen(body) : 0, r))
        fail_msg("%s %.200s: no reply", method, target);
}

/* GET target from the group's server: status want, JSON body (a new reference). */
static json_t *get_json(const char *target, int want)
{
    return test_request_json(plain_srv.port, "GET", target, NULL, NULL, 0, want);
}

/* A 400 whose message contains says. */
static void expect_400(const char *target, const char *says)
{
    json_t *v = get_json(target, 400);
    json_t *error = json_object_get(v, "error");
    assert_string_equal(json_string_value(json_object_get(error, "code")), "bad_request");
    const char *message = json_string_value(json_object_get(error, "message"));
    assert_non_null(message);
    if (!strstr(message, says))
        fail_msg("GET %.200s: want \"%s\" in the message, got \"%s\"", target, says, message);
    json_decref(v);
}

/* The ids of a /search body, in order, space-separated. */
static void body_ids(json_t *body, char *out, size_t cap)
{
    json_t *hits = json_object_get(body, "hits");

    assert_true(json_is_array(hits));
    out[0] = '\0';
    for (size_t i = 0; i < json_array_size(hits); i++) {
        const char *id = json_string_value(json_object_get(json_array_get(hits, i), "id"));
        assert_non_null(id);
        append(out, cap, " ", id, strlen(id));
    }
}

/* The facets of a /search body as "name=value:count,...;name=..." in key order source, tag. */
static void body_facets(json_t *body, char *out, size_t cap)
{
    static const char *const names[] = { "source", "tag" };
    json_t *facets = json_object_get(body, "facets");

    out[0] = '\0';
    if (!facets) {
        append(out, cap, "", "none", 4);
        return;
    }
    assert_true(json_is_object(facets));
    size_t known = 0;
    for (size_t f = 0; f < 2; f++) {
        json_t *list = json_object_get(facets, names[f]);
        if (!list)
            continue;
        known++;
        assert_true(json_is_array(list));
        char part[1024];
        int w = snprintf(part, sizeof part, "%s=", names[f]);
        for (size_t i = 0; i < json_array_size(list); i++) {
            json_t *item = json_array_get(list, i);
            assert_int_equal(json_object_size(item), 2);
            const char *value = json_string_value(json_object_get(item, "value"));
            json_t *count = json_object_get(item, "count");
            assert_non_null(value);
            assert_true(json_is_integer(count));
            w += snprintf(part + w, sizeof part - (size_t)w, "%s%s:%lld", i ? "," : "", value,
                          (long long)json_integer_value(count));
            assert_true(w > 0 && (size_t)w < sizeof part);
        }
        append(out, cap, ";", part, (size_t)w);
    }
    assert_int_equal(json_object_size(facets), known);
}

static const struct {
    const char *params; /* after /search?q=news */
    const char *ids;    /* in order */
    const char *facets; /* NULL: not checked */
} http_search_cases[] = {
    /* by date (orders that relevance would not give): newest first, undated h4 last */
    { "&sort=date", "h3 h2 h5 h1 h4", "none" },
    { "&sort=date&limit=2", "h3 h2", NULL },
    { "&sort=date&limit=2&offset=2", "h5 h1", NULL },
    { "&sort=date&source=%E6%96%B0%E5%8D%8E%E7%A4%BE", "h3 h1", NULL },
    { "&sort=date&source=Reuters", "h2 h4", NULL },
    { "&sort=date&source=reuters", "", NULL },
    { "&sort=date&source=Reuters&source=%E6%96%B0%E5%8D%8E%E7%A4%BE", "h3 h2 h1 h4", NULL },
    { "&sort=date&tag=AI", "h5 h1", NULL },
    { "&sort=date&tag=AI&tag=finance", "h3 h5 h1", NULL },
    { "&sort=date&tag=cloud&source=Reuters", "h2", NULL },
    { "&sort=date&tag=ai", "", NULL },
    /* from/to: inclusive; a bare `to` date includes that whole day */
    { "&sort=date&from=2024-03-02", "h3 h2 h5", NULL },
    { "&sort=date&to=2024-03-02", "h2 h5 h1", NULL },
    { "&sort=date&from=2024-03-02&to=2024-03-02", "h2 h5", NULL },
    { "&sort=date&to=2024-03-02T00:00:00Z", "h5 h1", NULL },
    { "&sort=date&to=2024-03-01T23:59:59Z", "h1", NULL },
    { "&sort=date&from=2024-03-02T10:00:00Z", "h3 h2", NULL },
    { "&sort=date&from=2024-03-02T10:00:01Z", "h3", NULL },
    { "&sort=date&from=2024-03-02T18:00:00%2B08:00&to=2024-03-02T18:00:00%2B08:00", "h2",
      NULL },
    { "&sort=date&from=2024-03-04", "", NULL },
    { "&sort=date&from=2024-03-03&to=2024-03-01", "", NULL },
    { "&sort=date&from=2024-03-02&tag=AI", "h5", NULL },
    /* facets: counts, most frequent first, ties by value bytes */
    { "&sort=date&facets=source", "h3 h2 h5 h1 h4",
      "source=Reuters:2,新华社:2" },
    { "&sort=date&facets=tag", "h3 h2 h5 h1 h4", "tag=AI:2,cloud:2,finance:1" },
    { "&sort=date&facets=source,tag", "h3 h2 h5 h1 h4",
      "source=Reuters:2,新华社:2;tag=AI:2,cloud:2,finance:1" },
    { "&sort=date&facets=tag,source", "h3 h2 h5 h1 h4",
      "source=Reuters:2,新华社:2;tag=AI:2,cloud:2,finance:1" },
    { "&sort=date&facets=source,tag&source=Reuters", "h2 h4", "source=Reuters:2;tag=cloud:1" },
    { "&sort=date&facets=source,tag&from=2024-03-02", "h3 h2 h5",
      "source=Reuters:1,新华社:1;tag=AI:1,cloud:1,finance:1" },
    { "&sort=date&facets=source,tag&limit=0", "",
      "source=Reuters:2,新华社:2;tag=AI:2,cloud:2,finance:1" },
    { "&sort=date&facets=source&tag=nothing", "", "source=" },
};

static void test_http_search_filters_sort_and_facets(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof http_search_cases / sizeof http_search_cases[0]; i++) {
        char target[TARGET_MAX_BYTES], ids[512], facets[1024];
        snprintf(target, sizeof target, "/search?q=news&highlight=0%s",
                 http_search_cases[i].params);
        json_t *body = get_json(target, 200);
        body_ids(body, ids, sizeof ids);
        if (strcmp(ids, http_search_cases[i].ids) != 0)
            fail_msg("row %zu %s: want \"%s\", got \"%s\"", i, target,
                     http_search_cases[i].ids, ids);
        assert_string_equal(json_string_value(json_object_get(body, "total_relation")), "eq");
        if (http_search_cases[i].facets) {
            body_facets(body, facets, sizeof facets);
            if (strcmp(facets, http_search_cases[i].facets) != 0)
                fail_msg("row %zu %s: want facets \"%s\", got \"%s\"", i, target,
                         http_search_cases[i].facets, facets);
        }
        json_decref(body);
    }
    /* the total counts every match, not only the page */
    json_t *body = get_json("/search?q=news&sort=date&limit=1&source=Reuters", 200);
    assert_int_equal(json_integer_value(json_object_get(body, "total")), 2);
    assert_int_equal(json_array_size(json_object_get(body, "hits")), 1);
    /* hits show the fields they are filtered and sorted by */
    json_t *hit = json_array_get(json_object_get(body, "hits"), 0);
    assert_string_equal(json_string_value(json_object_get(hit, "source")), "Reuters");
    assert_string_equal(json_string_value(json_object_get(hit, "date")), "2024-03-02T10:00:00Z");
    json_t *tags = json_object_get(hit, "tags");
    assert_int_equal(json_array_size(tags), 1);
    assert_string_equal(json_string_value(json_array_get(tags, 0)), "cloud");
    json_decref(body);
    /* sort=relevance is the default order; of equal matches the newer comes first */
    json_t *a = get_json("/search?q=bedrock&highlight=0&sort=relevance", 200);
    json_t *b = get_json("/search?q=bedrock&highlight=0", 200);
    char ids_a[256], ids_b[256];
    body_ids(a, ids_a, sizeof ids_a);
    body_ids(b, ids_b, sizeof ids_b);
    assert_string_equal(ids_a, ids_b);
    assert_string_equal(ids_a, "h2 h1");
    assert_null(json_object_get(a, "facets"));
    json_decref(a);
    json_decref(b);
    /* a query with filters: terms and negation */
    body = get_json("/search?q=bedrock%20-pricing&highlight=0&tag=cloud", 200);
    body_ids(body, ids_a, sizeof ids_a);
    assert_string_equal(ids_a, "h1");
    json_decref(body);
    /* 16 filter values are allowed */
    char target[TARGET_MAX_BYTES] = "/search?q=news&sort=date";
    for (int i = 0; i < SEARCH_MAX_FILTER_VALUES - 1; i++)
        append(target, sizeof target, "", "&tag=x", 6);
    append(target, sizeof target, "", "&tag=finance", 12);
    body = get_json(target, 200);
    body_ids(body, ids_a, sizeof ids_a);
    assert_string_equal(ids_a, "h3");
    json_decref(body);
}

static void test_http_search_bad_parameters_are_400(void **state)
{
    static const struct {
        const char *params; /* after /search?q=news */
        const char *says;
    } cases[] = {
        { "&from=2024-13-01", "from must be YYYY-MM-DD" },
        { "&from=yesterday", "from must be" },
        { "&to=2024-02-30", "to must be" },
        { "&to=2023-02-29", "to must be" }, /* not a leap year */
        { "&from=2024-03-01T10:00:00", "from must be" }, /* no offset */
        { "&from=", "from must be" },
        { "&to=2024-3-1", "to must be" },
        { "&sort=newest", "sort must be \"relevance\" or \"date\"" },
        { "&sort=Date", "sort must be" },
        { "&sort=", "sort must be" },
        { "&facets=date", "facets must be source, tag or source,tag" },
        { "&facets=Source", "facets must be" },
        { "&facets=source,date", "facets must be" },
        { "&facets=source;tag", "facets must be" },
        { "&facets=,source", "facets must be" },
        { "&facets=source,,tag", "facets must be" },
        { "&source=", "source must be non-empty UTF-8" },
        { "&tag=", "tag must be non-empty UTF-8" },
        { "&source=Reuters&source=", "source must be" },
        { "&source=%FF", "source must be non-empty UTF-8" },
        { "&tag=%C0%AF", "tag must be non-empty UTF-8" },
        { "&source", "source must be" },
        { "&color=red", "unknown parameter \"color\"" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char target[TARGET_MAX_BYTES];
        snprintf(target, sizeof target, "/search?q=news%s", cases[i].params);
        expect_400(target, cases[i].says);
    }
    /* more than SEARCH_MAX_FILTER_VALUES values of one filter */
    for (int f = 0; f < 2; f++) {
        char target[TARGET_MAX_BYTES] = "/search?q=news";
        for (int i = 0; i <= SEARCH_MAX_FILTER_VALUES; i++)
            append(target, sizeof target, "", f ? "&tag=a" : "&source=a", f ? 6 : 9);
        expect_400(target, f ? "at most 16 tag values" : "at most 16 source values");
    }
    /* q stays required with filters */
    expect_400("/search?source=Reuters", "parameter q is required");
    /* other routes refuse what they do not take, too */
    expect_400("/stats?x=1", "unknown parameter \"x\"; /stats takes none");
    expect_400("/metrics?format=json", "unknown parameter \"format\"; /metrics takes none");
    expect_400("/analyze?text=a&lang=zh", "unknown parameter \"lang\"; /analyze takes text");
}

static const struct {
    const char *params;
    const char *want; /* "text/id | text" as suggest_text() prints */
} http_suggest_cases[] = {
    { "q=Bed", "Bedrock launch/h1 | Bedrock pricing/h2 | Bedrock" },
    { "q=Bed&limit=1", "Bedrock launch/h1" },
    { "q=Bed&limit=20", "Bedrock launch/h1 | Bedrock pricing/h2 | Bedrock" },
    { "q=Bed&limit=0", "" },
    { "q=%E6%99%AE%E6%83%A0", "普惠金融/h3 | 普惠金" }, /* 普惠 */
    { "q=%E7%8C%AB", "猫粮价格/h5 | 猫粮" },             /* 猫 */
    { "q=", "" },
    { "q=zzz", "" },
};

static void suggest_reply_text(json_t *body, const char *q, char *out, size_t cap)
{
    json_t *list = json_object_get(body, "suggestions");

    assert_string_equal(json_string_value(json_object_get(body, "query")), q);
    assert_int_equal(json_object_size(body), 2);
    assert_true(json_is_array(list));
    out[0] = '\0';
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *item = json_array_get(list, i);
        const char *text = json_string_value(json_object_get(item, "text"));
        json_t *id = json_object_get(item, "id");
        char part[1024];
        assert_non_null(text);
        assert_int_equal(json_object_size(item), id ? 2 : 1);
        int w = id ? snprintf(part, sizeof part, "%s/%s", text, json_string_value(id))
                   : snprintf(part, sizeof part, "%s", text);
        assert_true(w > 0 && (size_t)w < sizeof part);
        append(out, cap, " | ", part, (size_t)w);
    }
}

static void test_http_suggest_replies_and_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof http_suggest_cases / sizeof http_suggest_cases[0]; i++) {
        char target[TARGET_MAX_BYTES], got[2048], q[256];
        snprintf(target, sizeof target, "/suggest?%s", http_suggest_cases[i].params);
        json_t *body = get_json(target, 200);
        /* the query as typed, decoded */
        const char *qv = http_suggest_cases[i].params + 2;
        size_t qlen = strcspn(qv, "&");
        char enc[256];
        snprintf(enc, sizeof enc, "%.*s", (int)qlen, qv);
        size_t o = 0;
        for (size_t k = 0; enc[k]; k++) {
            unsigned hex;
            if (enc[k] == '%' && sscanf(enc + k + 1, "%2x", &hex) == 1) {
                q[o++] = (char)hex;
                k += 2;
            } else {
                q[o++] = enc[k];
            }
        }
        q[o] = '\0';
        suggest_reply_text(body, q, got, sizeof got);
        if (strcmp(got, http_suggest_cases[i].want) != 0)
            fail_msg("row %zu %s: want \"%s\", got \"%s\"", i, target,
                     http_suggest_cases[i].want, got);
        json_decref(body);
    }
    /* errors */
    expect_400("/suggest", "parameter q is required");
    expect_400("/suggest?limit=3", "parameter q is required");
    expect_400("/suggest?q=Bed&limit=21", "limit must be an integer from 0 to 20");
    expect_400("/suggest?q=Bed&limit=-1", "limit must be an integer from 0 to 20");
    expect_400("/suggest?q=Bed&limit=abc", "limit must be");
    expect_400("/suggest?q=Bed&limit=", "limit must be");
    expect_400("/suggest?q=%FF", "UTF-8");
    expect_400("/suggest?q=Bed%E6%99", "UTF-8");
    char target[TARGET_MAX_BYTES] = "/suggest?q=";
    for (int i = 0; i <= SUGGEST_MAX_BYTES; i++)
        append(target, sizeof target, "", "a", 1);
    expect_400(target, "257 bytes");
    target[strlen(target) - 1] = '\0'; /* 256 bytes: fine */
    json_t *body = get_json(target, 200);
    assert_true(json_is_array(json_object_get(body, "suggestions")));
    json_decref(body);
}

/* ---- CORS, OPTIONS and the search page ---- */

static bool has_header(const struct httpc_reply *r, const char *name, char *value, size_t cap)
{
    char scratch[256];
    return httpc_reply_header(r, name, value ? value : scratch, value ? cap : sizeof scratch);
}

static void assert_header(const struct httpc_reply *r, const char *name, const char *want)
{
    char value[256];

    if (!has_header(r, name, value, sizeof value))
        fail_msg("reply %d: no %s header in\n%s", r->status, name, r->head);
    if (strcmp(value, want) != 0)
        fail_msg("reply %d: %s is \"%s\", want \"%s\"", r->status, name, value, want);
}

static void assert_no_header(const struct httpc_reply *r, const char *name)
{
    if (has_header(r, name, NULL, 0))
        fail_msg("reply %d: unexpected %s header in\n%s", r->status, name, r->head);
}

/* Requests that every reply of a server answers, with their statuses. */
static const struct {
    const char *method, *target;
    int status;
} cors_requests[] = {
    { "GET", "/health", 200 },
    { "GET", "/search?q=news&facets=source", 200 },
    { "GET", "/suggest?q=Bed", 200 },
    { "GET", "/documents/h1", 200 },
    { "GET", "/search?q=news&sort=newest", 400 },
    { "GET", "/suggest?q=Bed&limit=99", 400 },
    { "GET", "/documents/nope", 404 },
    { "GET", "/nope", 404 },
    { "POST", "/search?q=news", 405 },
    { "DELETE", "/health", 405 },
};

static const char *const preflight_targets[] = { "/search?q=news", "/suggest", "/documents/h1",
                                                 "/documents", "/", "/nope" };

static void test_http_options_and_no_cors_headers_by_default(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof preflight_targets / sizeof preflight_targets[0]; i++) {
        struct httpc_reply r;
        http_do(plain_srv.port, "OPTIONS", preflight_targets[i],
                "Origin: https://elsewhere.example\r\n"
                "Access-Control-Request-Method: PUT\r\n", &r);
        if (r.status != 204)
            fail_msg("OPTIONS %s: want 204, got %d", preflight_targets[i], r.status);
        assert_header(&r, "Allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS");
        assert_int_equal(r.body_len, 0);
        assert_no_header(&r, "Access-Control-Allow-Origin");
        assert_no_header(&r, "Access-Control-Allow-Methods");
        assert_no_header(&r, "Access-Control-Allow-Headers");
        assert_no_header(&r, "Access-Control-Max-Age");
        assert_no_header(&r, "Vary");
        httpc_reply_fini(&r);
    }
    for (size_t i = 0; i < sizeof cors_requests / sizeof cors_requests[0]; i++) {
        struct httpc_reply r;
        http_do(plain_srv.port, cors_requests[i].method, cors_requests[i].target,
                "Origin: https://elsewhere.example\r\n", &r);
        if (r.status != cors_requests[i].status)
            fail_msg("%s %s: want %d, got %d", cors_requests[i].method, cors_requests[i].target,
                     cors_requests[i].status, r.status);
        assert_no_header(&r, "Access-Control-Allow-Origin");
        assert_no_header(&r, "Vary");
        httpc_reply_fini(&r);
    }
}

static void test_http_cors_origin_on_every_reply_and_preflight(void **state)
{
    struct test_server cors;

    (void)state;
    assert_int_equal(http_server_start(&cors, CORS_ORIGIN), 0);
    for (size_t i = 0; i < sizeof preflight_targets / sizeof preflight_targets[0]; i++) {
        struct httpc_reply r;
        http_do(cors.port, "OPTIONS", preflight_targets[i],
                "Origin: " CORS_ORIGIN "\r\nAccess-Control-Request-Method: PUT\r\n"
                "Access-Control-Request-Headers: authorization, content-type\r\n", &r);
        if (r.status != 204)
            fail_msg("OPTIONS %s: want 204, got %d", preflight_targets[i], r.status);
        assert_int_equal(r.body_len, 0);
        assert_header(&r, "Allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS");
        assert_header(&r, "Access-Control-Allow-Origin", CORS_ORIGIN);
        assert_header(&r, "Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, DELETE, OPTIONS");
        assert_header(&r, "Access-Control-Allow-Headers", "Authorization, Content-Type");
        assert_header(&r, "Access-Control-Max-Age", "86400");
        assert_header(&r, "Vary", "Origin");
        httpc_reply_fini(&r);
    }
    /* with or without an Origin header in the request: the configured origin */
    for (int with_origin = 0; with_origin < 2; with_origin++) {
        for (size_t i = 0; i < sizeof cors_requests / sizeof cors_requests[0]; i++) {
            struct httpc_reply r;
            http_do(cors.port, cors_requests[i].method, cors_requests[i].target,
                    with_origin ? "Origin: " CORS_ORIGIN "\r\n" : NULL, &r);
            if (r.status != cors_requests[i].status)
                fail_msg("%s %s: want %d, got %d", cors_requests[i].method,
                         cors_requests[i].target, cors_requests[i].status, r.status);
            assert_header(&r, "Access-Control-Allow-Origin", CORS_ORIGIN);
            assert_header(&r, "Vary", "Origin");
            /* a preflight's headers only on preflights */
            assert_no_header(&r, "Access-Control-Allow-Methods");
            assert_no_header(&r, "Access-Control-Max-Age");
            httpc_reply_fini(&r);
        }
    }
    /* and on the page */
    struct httpc_reply r;
    http_do(cors.port, "GET", "/", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_header(&r, "Access-Control-Allow-Origin", CORS_ORIGIN);
    httpc_reply_fini(&r);
    test_server_fini(&cors);
}


static void test_http_search_page_get_and_head(void **state)
{
    struct httpc_conn c;
    struct httpc_reply r;
    char value[128];

    (void)state;
    assert_true(httpc_open(&c, plain_srv.port, TEST_SERVER_IO_TIMEOUT_S));
    assert_true(httpc_request(&c, "GET", "/", NULL, NULL, 0, &r));
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Content-Type", value, sizeof value));
    assert_int_equal(strncmp(value, "text/html", 9), 0);
    assert_non_null(strstr(r.body, "<html"));
    assert_true(r.body_len > 100);
    assert_int_equal(strlen(r.body), r.body_len); /* no NUL inside */
    size_t get_len = r.body_len;
    httpc_reply_fini(&r);
    /* HEAD: the same length, no body; the connection carries on */
    const char head[] = "HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    assert_true(httpc_send(&c, head, sizeof head - 1));
    assert_true(httpc_read_head_reply(&c, &r));
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Content-Type", value, sizeof value));
    assert_int_equal(strncmp(value, "text/html", 9), 0);
    assert_true(has_header(&r, "Content-Length", value, sizeof value));
    assert_int_equal(strtoull(value, NULL, 10), get_len);
    httpc_reply_fini(&r);
    /* a body after the head would be read here as the start of the next reply */
    assert_true(httpc_request(&c, "GET", "/health", NULL, NULL, 0, &r));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ok\"}");
    httpc_reply_fini(&r);
    httpc_close(&c);
    /* the page is at / only, and only for GET and HEAD */
    http_do(plain_srv.port, "GET", "/index.html", NULL, &r);
    assert_int_equal(r.status, 404);
    httpc_reply_fini(&r);
    http_do(plain_srv.port, "POST", "/", NULL, &r);
    assert_int_equal(r.status, 405);
    assert_header(&r, "Allow", "GET, HEAD");
    httpc_reply_fini(&r);
    /* a query string does not change the page */
    http_do(plain_srv.port, "GET", "/?q=Bedrock", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, get_len);
    httpc_reply_fini(&r);
}

/* ---- the /search response cache (server/cache.h) ---- */

#define TOOK_TEXT_MAX_BYTES 12  /* "%.6g" of a non-negative number: at most "1.23457e+06" */

/* The value of the unlabelled counter name in a /metrics reply of the server at port. */
static uint64_t metric_value(uint16_t port, const char *name)
{
    struct httpc_reply r;
    char line[128];

    http_do(port, "GET", "/metrics", NULL, &r);
    assert_int_equal(r.status, 200);
    int n = snprintf(line, sizeof line, "\n%s ", name);
    assert_true(n > 0 && (size_t)n < sizeof line);
    const char *at = strstr(r.body, line);
    if (!at)
        fail_msg("/metrics has no %s line:\n%.2000s", name, r.body);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(at + n, &end, 10);
    if (errno || end == at + n || *end != '\n')
        fail_msg("/metrics: %s is not a count: \"%.40s\"", name, at + n);
    httpc_reply_fini(&r);
    return v;
}

struct cache_counts {
    uint64_t hits, misses;
};

static struct cache_counts cache_counts(uint16_t port)
{
    return (struct cache_counts){ metric_value(port, "xun_search_cache_hits_total"),
                                  metric_value(port, "xun_search_cache_misses_total") };
}

/* Where the took_ms value stands in a /search body: [*at, *at + *len). */
static void took_span(const struct httpc_reply *r, size_t *at, size_t *len)
{
    static const char key[] = "\"took_ms\":";
    const char *p = strstr(r->body, key);

    if (!p)
        fail_msg("no took_ms in %.300s", r->body);
    *at = (size_t)(p - r->body) + sizeof key - 1;
    *len = strspn(r->body + *at, "0123456789.eE+-");
    if (*len == 0 || *len > TOOK_TEXT_MAX_BYTES)
        fail_msg("took_ms is \"%.20s\"", r->body + *at);
    char *end;
    double took = strtod(r->body + *at, &end);
    if (end != r->body + *at + *len || !(took >= 0) || !isfinite(took))
        fail_msg("took_ms is \"%.*s\"", (int)*len, r->body + *at);
}

/* The two /search replies are the same bytes but for their took_ms values. */
static void assert_same_but_took(const struct httpc_reply *a, const struct httpc_reply *b)
{
    size_t at_a, len_a, at_b, len_b;

    took_span(a, &at_a, &len_a);
    took_span(b, &at_b, &len_b);
    if (at_a != at_b || a->body_len - len_a != b->body_len - len_b ||
        memcmp(a->body, b->body, at_a) != 0 ||
        memcmp(a->body + at_a + len_a, b->body + at_b + len_b, a->body_len - at_a - len_a) != 0)
        fail_msg("replies differ beyond took_ms:\n%.600s\n%.600s", a->body, b->body);
}

/* GET target from the server at port: 200, JSON; the reply is the caller's to free. */
static void search_reply(uint16_t port, const char *target, struct httpc_reply *r)
{
    char type[128];

    http_do(port, "GET", target, NULL, r);
    if (r->status != 200)
        fail_msg("GET %.200s: %d: %.300s", target, r->status, r->body);
    if (!httpc_reply_header(r, "Content-Type", type, sizeof type) ||
        strcmp(type, "application/json; charset=utf-8") != 0)
        fail_msg("GET %.200s: Content-Type \"%s\"", target, type);
}

/* The hit ids of a /search reply, in order, and its total. */
static void reply_ids(const struct httpc_reply *r, char *ids, size_t cap, json_int_t *total)
{
    json_t *body = test_parse_body(r);

    body_ids(body, ids, cap);
    assert_true(json_is_integer(json_object_get(body, "total")));
    *total = json_integer_value(json_object_get(body, "total"));
    json_decref(body);
}

static const char cache_target[] = "/search?q=bedrock&facets=source,tag&limit=7";

static void test_http_cache_repeats_the_reply_with_a_fresh_took_ms(void **state)
{
    struct httpc_reply first, second, again;
    char ids[256];
    json_int_t total;

    (void)state;
    struct cache_counts c0 = cache_counts(plain_srv.port);
    search_reply(plain_srv.port, cache_target, &first);
    struct cache_counts c1 = cache_counts(plain_srv.port);
    search_reply(plain_srv.port, cache_target, &second);
    struct cache_counts c2 = cache_counts(plain_srv.port);
    /* the first was searched (a miss), the second served from the cache (a hit) */
    assert_int_equal(c1.misses - c0.misses, 1);
    assert_int_equal(c1.hits - c0.hits, 0);
    assert_int_equal(c2.misses - c1.misses, 0);
    assert_int_equal(c2.hits - c1.hits, 1);
    assert_same_but_took(&first, &second);
    reply_ids(&second, ids, sizeof ids, &total);
    assert_string_equal(ids, "h2 h1");
    assert_int_equal(total, 2);
    json_t *body = test_parse_body(&second);
    assert_true(json_is_number(json_object_get(body, "took_ms")));
    assert_string_equal(json_string_value(json_object_get(body, "query")), "bedrock");
    assert_int_equal(json_integer_value(json_object_get(body, "limit")), 7);
    assert_non_null(json_object_get(body, "facets"));
    json_decref(body);
    /* the same parameters in another order: another key, searched again, same answer */
    search_reply(plain_srv.port, "/search?limit=7&q=bedrock&facets=source,tag", &again);
    struct cache_counts c3 = cache_counts(plain_srv.port);
    assert_int_equal(c3.misses - c2.misses, 1);
    assert_int_equal(c3.hits - c2.hits, 0);
    assert_same_but_took(&first, &again);
    httpc_reply_fini(&again);
    /* errors are not cached: the second bad request is checked again, not a hit */
    expect_400("/search?q=bedrock&sort=newest", "sort must be");
    expect_400("/search?q=bedrock&sort=newest", "sort must be");
    assert_int_equal(cache_counts(plain_srv.port).hits, c3.hits);
    httpc_reply_fini(&first);
    httpc_reply_fini(&second);
}

/*
 * Polls GET /documents/{id} until the published snapshot holds the write:
 * its body has want, or (want NULL) it answers 404. GET reads the snapshot
 * and is never cached, so once it shows a write every search asked after it
 * must show the write too. TEST_HANG_MS only detects a hang (how soon a write
 * is published is bench_writes' figure, not this test's business).
 */
static void wait_published(uint16_t port, const char *id, const char *want)
{
    char target[64];
    struct httpc_reply r;
    int n = snprintf(target, sizeof target, "/documents/%s", id);

    assert_true(n > 0 && (size_t)n < sizeof target);
    test_wait_get(port, target, want ? 200 : 404, want, true, &r);
    httpc_reply_fini(&r);
}

/* The hit ids of target at port have (or lack) id, now: no waiting. */
static void assert_search_has(uint16_t port, const char *target, const char *id, bool has)
{
    char ids[256], word[64], padded[260];
    json_int_t total;
    struct httpc_reply r;
    int n = snprintf(word, sizeof word, " %s ", id);

    assert_true(n > 0 && (size_t)n < sizeof word);
    search_reply(port, target, &r);
    reply_ids(&r, ids, sizeof ids, &total);
    httpc_reply_fini(&r);
    snprintf(padded, sizeof padded, " %s ", ids);
    if ((strstr(padded, word) != NULL) != has)
        fail_msg("GET %s: %s %s though GET /documents/%s shows it published: \"%s\"", target,
                 id, has ? "missing" : "still there", id, ids);
}

/*
 * With the search cached (and then asked for without a pause, so that a
 * cache that outlived a snapshot would answer from it until its TTL), a new
 * matching document shows in the first search asked once GET /documents
 * shows it published, a replaced one's new text likewise, and a deleted one
 * goes; from then on every reply agrees. No clock: the order decides.
 */
static void check_writes_show_through(uint16_t port)
{
    static const char target[] = "/search?q=bedrock&highlight=0";
    static const char doc[] =
        "{\"id\":\"h9\",\"title\":\"Bedrock outage\",\"body\":\"bedrock news\"}";
    static const char other[] = "{\"id\":\"h9\",\"title\":\"Outage over\",\"body\":\"news\"}";
    struct httpc_reply r;
    char ids[256];
    json_int_t total;

    for (int i = 0; i < 3; i++) {
        search_reply(port, target, &r);
        reply_ids(&r, ids, sizeof ids, &total);
        httpc_reply_fini(&r);
        assert_string_equal(ids, "h2 h1");
    }
    /* a new document */
    http_do_body(port, "PUT", "/documents/h9", doc, &r);
    assert_int_equal(r.status, 201);
    httpc_reply_fini(&r);
    wait_published(port, "h9", "Bedrock outage");
    assert_search_has(port, target, "h9", true);
    for (int i = 0; i < 5; i++) {
        search_reply(port, target, &r);
        reply_ids(&r, ids, sizeof ids, &total);
        httpc_reply_fini(&r);
        assert_int_equal(total, 3);
        assert_non_null(strstr(ids, "h9"));
    }
    /* replaced by a text without the word */
    http_do_body(port, "PUT", "/documents/h9", other, &r);
    assert_int_equal(r.status, 200);
    httpc_reply_fini(&r);
    wait_published(port, "h9", "Outage over");
    assert_search_has(port, target, "h9", false);
    /* back, then deleted */
    http_do_body(port, "PUT", "/documents/h9", doc, &r);
    assert_int_equal(r.status, 200);
    httpc_reply_fini(&r);
    wait_published(port, "h9", "Bedrock outage");
    assert_search_has(port, target, "h9", true);
    http_do_body(port, "DELETE", "/documents/h9", NULL, &r);
    assert_int_equal(r.status, 200);
    httpc_reply_fini(&r);
    wait_published(port, "h9", NULL);
    assert_search_has(port, target, "h9", false);
    for (int i = 0; i < 5; i++) {
        search_reply(port, target, &r);
        reply_ids(&r, ids, sizeof ids, &total);
        httpc_reply_fini(&r);
        assert_string_equal(ids, "h2 h1");
        assert_int_equal(total, 2);
    }
}

static void test_http_cache_never_serves_a_search_older_than_a_write(void **state)
{
    struct test_server hs;

    (void)state;
    assert_int_equal(http_server_start(&hs, NULL), 0); /* its own: the writes change results */
    struct cache_counts c0 = cache_counts(hs.port);
    check_writes_show_through(hs.port);
    /* not vacuous: the cache was in use all along */
    struct cache_counts c1 = cache_counts(hs.port);
    assert_true(c1.hits - c0.hits >= 5);
    assert_true(c1.misses - c0.misses >= 5); /* one per snapshot at least */
    test_server_fini(&hs);
}

static void test_http_cache_head_has_the_length_of_the_get(void **state)
{
    static const char target[] = "/search?q=news&facets=tag&limit=3";
    static const char head[] = "HEAD /search?q=news&facets=tag&limit=3 HTTP/1.1\r\n"
                               "Host: 127.0.0.1\r\n\r\n";
    struct httpc_conn c;
    struct httpc_reply r, get;
    char value[64];
    size_t head_len[2], took_at, took_len;

    (void)state;
    struct cache_counts c0 = cache_counts(plain_srv.port);
    assert_true(httpc_open(&c, plain_srv.port, TEST_SERVER_IO_TIMEOUT_S));
    /* HEAD first (a miss that fills the cache), GET (a hit), HEAD again (a hit) */
    for (int round = 0; round < 3; round++) {
        if (round == 1) {
            assert_true(httpc_request(&c, "GET", target, NULL, NULL, 0, &get));
            assert_int_equal(get.status, 200);
            continue;
        }
        assert_true(httpc_send(&c, head, sizeof head - 1));
        assert_true(httpc_read_head_reply(&c, &r));
        assert_int_equal(r.status, 200);
        assert_true(httpc_reply_header(&r, "Content-Type", value, sizeof value));
        assert_string_equal(value, "application/json; charset=utf-8");
        assert_true(httpc_reply_header(&r, "Content-Length", value, sizeof value));
        head_len[round / 2] = strtoull(value, NULL, 10);
        httpc_reply_fini(&r);
    }
    /* no body came after the heads: the connection still reads replies in step */
    assert_true(httpc_request(&c, "GET", "/health", NULL, NULL, 0, &r));
    assert_string_equal(r.body, "{\"status\":\"ok\"}");
    httpc_reply_fini(&r);
    httpc_close(&c);
    struct cache_counts c1 = cache_counts(plain_srv.port);
    assert_int_equal(c1.misses - c0.misses, 1);
    assert_int_equal(c1.hits - c0.hits, 2);
    /*
     * Each reply carries its own took_ms, whose digits vary ("0.5" or
     * "0.123456"), so the lengths agree but for those: the GET's length
     * without its took_ms, plus 1 to TOOK_TEXT_MAX_BYTES.
     */
    took_span(&get, &took_at, &took_len);
    size_t rest = get.body_len - took_len;
    for (int i = 0; i < 2; i++)
        if (head_len[i] <= rest || head_len[i] > rest + TOOK_TEXT_MAX_BYTES)
            fail_msg("HEAD %d: Content-Length %zu; the GET's is %zu, %zu of it took_ms", i,
                     head_len[i], get.body_len, took_len);
    httpc_reply_fini(&get);
}

static void test_http_cache_off_answers_the_same_and_counts_no_hits(void **state)
{
    struct test_server off;
    struct httpc_reply a, b, cached;
    char ids_a[256], ids_cached[256];
    json_int_t total_a, total_cached;

    (void)state;
    assert_int_equal(http_server_start_with(&off, NULL, 0, NULL), 0);
    search_reply(off.port, cache_target, &a);
    search_reply(off.port, cache_target, &b);
    assert_same_but_took(&a, &b);
    /* what a server with the cache answers (the body may differ in the last digits of
     * scores, which move with the clock) */
    search_reply(plain_srv.port, cache_target, &cached);
    reply_ids(&a, ids_a, sizeof ids_a, &total_a);
    reply_ids(&cached, ids_cached, sizeof ids_cached, &total_cached);
    assert_string_equal(ids_a, "h2 h1");
    assert_string_equal(ids_a, ids_cached);
    assert_int_equal(total_a, total_cached);
    httpc_reply_fini(&a);
    httpc_reply_fini(&b);
    httpc_reply_fini(&cached);
    assert_int_equal(metric_value(off.port, "xun_search_cache_hits_total"), 0);
    /* writes show as they do with the cache, and still nothing is a hit */
    check_writes_show_through(off.port);
    assert_int_equal(metric_value(off.port, "xun_search_cache_hits_total"), 0);
    test_server_fini(&off);
}


/* A clock past every deadline: each search times out at its first read. */
static uint64_t clock_past_every_deadline(void)
{
    return UINT64_MAX;
}

static void test_http_timed_out_search_says_so_and_is_not_cached(void **state)
{
    struct test_server late;
    struct httpc_reply r;

    (void)state;
    /* a search in time says so */
    json_t *body = get_json("/search?q=news&limit=2", 200);
    assert_true(json_is_false(json_object_get(body, "timed_out")));
    json_decref(body);

    assert_int_equal(http_server_start_with(&late, NULL, CACHE_BYTES_DEFAULT,
                                            clock_past_every_deadline), 0);
    struct cache_counts c0 = cache_counts(late.port);
    for (int i = 0; i < 2; i++) {
        search_reply(late.port, "/search?q=news&limit=2", &r);
        body = test_parse_body(&r);
        assert_true(json_is_true(json_object_get(body, "timed_out")));
        assert_string_equal(json_string_value(json_object_get(body, "total_relation")), "gte");
        assert_int_equal(json_integer_value(json_object_get(body, "total")), 0);
        assert_int_equal(json_array_size(json_object_get(body, "hits")), 0);
        json_decref(body);
        httpc_reply_fini(&r);
    }
    /* both were searched: the first answer was not kept for the second */
    struct cache_counts c1 = cache_counts(late.port);
    assert_int_equal(c1.misses - c0.misses, 2);
    assert_int_equal(c1.hits - c0.hits, 0);
    test_server_fini(&late);
}

int main(void)
{
    const struct CMUnitTest engine[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, fixture_setup, fixture_teardown)
        T(test_search_filters_alone_combined_and_with_queries),
        T(test_search_filters_leave_scores_unchanged),
        T(test_search_filters_skip_replaced_and_deleted),
        T(test_search_sort_by_date_newest_first_undated_last_ties_by_id),
        T(test_search_facets_count_merge_and_order),
        T(test_search_facets_keep_the_top_values),
        T(test_search_max_matches_stops_and_marks_total_as_bound),
        T(test_search_filter_on_a_long_value),
        T(test_search_deadline_while_counting_facets),
        T(test_search_json_deadline_between_hits),
        T(test_suggest_lists_match_table),
        T(test_suggest_refuses_bad_input_and_honours_limit_0),
        T(test_suggest_whole_word_that_longer_words_start_with),
        T(test_suggest_many_continuations_stop_at_the_limit),
        T(test_suggest_never_offers_deleted_or_replaced_titles),
        T(test_suggest_and_search_on_an_empty_index),
#undef T
    };
    const struct CMUnitTest http[] = {
        cmocka_unit_test(test_http_search_filters_sort_and_facets),
        cmocka_unit_test(test_http_search_bad_parameters_are_400),
        cmocka_unit_test(test_http_suggest_replies_and_errors),
        cmocka_unit_test(test_http_options_and_no_cors_headers_by_default),
        cmocka_unit_test(test_http_cors_origin_on_every_reply_and_preflight),
        cmocka_unit_test(test_http_search_page_get_and_head),
        cmocka_unit_test(test_http_cache_repeats_the_reply_with_a_fresh_took_ms),
        cmocka_unit_test(test_http_cache_never_serves_a_search_older_than_a_write),
        cmocka_unit_test(test_http_cache_head_has_the_length_of_the_get),
        cmocka_unit_test(test_http_cache_off_answers_the_same_and_counts_no_hits),
        cmocka_unit_test(test_http_timed_out_search_says_so_and_is_not_cached),
    };
    int failed = cmocka_run_group_tests_name("search_run_opts and suggest_run", engine, NULL,
                                             NULL);

    failed += cmocka_run_group_tests_name("HTTP", http, http_group_setup, http_group_teardown);
    return failed;
}
