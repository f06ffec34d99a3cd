/*
 * Tests of query/: the parser (query/qparse.h: tree shapes, term text,
 * phrase offsets, the errors it refuses with), the search (query/search.h:
 * what matches, exact totals, BM25F ranking with ties by id, several
 * segments scored as one index) and highlighting (query/snippet.h: golden
 * strings for escaping, merging, phrases, cuts and fragments).
 *
 * Indexes are built in a fresh mkdtemp() folder per test with posting
 * blocks of two documents (memindex_set_block_docs), so that even a handful
 * of documents crosses block boundaries. Parser cases are a table: a tree is
 * printed as one string, "(and (or alpha beta) gamma)", so a failing row
 * shows what it got next to what it wanted.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/base/buf.h"
#include "index/format/doc.h"
#include "index/base/error.h"
#include "index/index.h"
#include "index/base/limits.h"
#include "index/write/memindex.h"
#include "index/format/segment.h"
#include "index/text/tokenizer.h"
#include "query/qparse.h"
#include "query/search.h"
#include "query/snippet.h"
#include "tests/testutil.h"

#define TREE_MAX_BYTES 2048
#define IDS_MAX_BYTES 1024
#define OUT_MAX_BYTES (1u << 20)
#define TEST_BLOCK_DOCS 2 /* posting blocks of two documents: lists cross blocks */
#define SCORE_EPSILON 1e-9

/* ---- printing a query tree ---- */

struct tree_text {
    char s[TREE_MAX_BYTES];
    size_t len;
};

static void tree_put(struct tree_text *t, const char *p, size_t n)
{
    assert_true(t->len + n < sizeof t->s);
    memcpy(t->s + t->len, p, n);
    t->len += n;
    t->s[t->len] = '\0';
}

static void tree_puts(struct tree_text *t, const char *p)
{
    tree_put(t, p, strlen(p));
}

/* A term's text, with the hidden one-character prefix shown as "#". */
static void tree_term(struct tree_text *t, const struct qterm *term)
{
    const char *p = term->text;
    size_t n = term->len;

    assert_non_null(p);
    if (n && p[0] == TERM_CHAR_PREFIX) {
        tree_puts(t, "#");
        p++;
        n--;
    }
    tree_put(t, p, n);
}

/*
 * (and A B), (or A B), a term as its text, a phrase as "t0 t1"; prefixes
 * "-" for negated and "title:" for title only.
 */
static void tree_node(struct tree_text *t, const struct qnode *n)
{
    if (n->negated)
        tree_puts(t, "-");
    if (n->title_only)
        tree_puts(t, "title:");
    switch (n->type) {
    case QNODE_TERM:
        assert_int_equal(n->n_terms, 1);
        tree_term(t, &n->terms[0]);
        return;
    case QNODE_PHRASE:
        assert_true(n->n_terms >= 2);
        tree_puts(t, "\"");
        for (uint32_t i = 0; i < n->n_terms; i++) {
            if (i)
                tree_puts(t, " ");
            tree_term(t, &n->terms[i]);
        }
        tree_puts(t, "\"");
        return;
    case QNODE_AND:
    case QNODE_OR:
        assert_true(n->n_children >= 2);
        tree_puts(t, n->type == QNODE_AND ? "(and" : "(or");
        for (uint32_t i = 0; i < n->n_children; i++) {
            tree_puts(t, " ");
            tree_node(t, n->children[i]);
        }
        tree_puts(t, ")");
        return;
    }
    fail_msg("unknown node type %d", (int)n->type);
}

/* Parses text; the printed tree, "" for a NULL root, or NULL (and *err set) on error. */
static const char *parse_to_text(const char *text, size_t len, struct tree_text *out,
                                 struct xerr *err)
{
    struct query *q = NULL;

    out->len = 0;
    out->s[0] = '\0';
    xerr_clear(err);
    if (query_parse(text, len, TOKENIZE_DEFAULT, &q, err) != XE_OK)
        return NULL;
    assert_non_null(q);
    if (q->root)
        tree_node(out, q->root);
    query_free(q);
    return out->s;
}

/* ---- parser ---- */

static const struct {
    const char *text;
    const char *tree; /* NULL: XE_INPUT */
} parse_cases[] = {
    /* AND by default; one word is the root itself */
    { "alpha", "alpha" },
    { "alpha beta", "(and alpha beta)" },
    { "alpha beta gamma", "(and alpha beta gamma)" },
    { "  alpha\t\nbeta  ", "(and alpha beta)" },
    { "alpha\xe3\x80\x80" "beta", "(and alpha beta)" }, /* U+3000 ideographic space */
    /* OR binds tighter than the implicit AND */
    { "alpha OR beta", "(or alpha beta)" },
    { "alpha OR beta gamma", "(and (or alpha beta) gamma)" },
    { "gamma alpha OR beta", "(and gamma (or alpha beta))" },
    { "alpha OR beta OR gamma", "(or alpha beta gamma)" },
    { "alpha OR beta gamma OR delta", "(and (or alpha beta) (or gamma delta))" },
    /* "or", or OR with nothing on one side, is an ordinary word */
    { "alpha or beta", "(and alpha or beta)" },
    { "OR alpha", "(and or alpha)" },
    { "alpha OR", "(and alpha or)" },
    /* negation */
    { "alpha -beta", "(and alpha -beta)" },
    { "-beta alpha", "(and -beta alpha)" },
    { "alpha - beta", "(and alpha beta)" }, /* a lone dash is punctuation */
    /* title: */
    { "title:alpha", "title:alpha" },
    { "TITLE:alpha beta", "(and title:alpha beta)" },
    { "alpha -title:beta", "(and alpha -title:beta)" },
    { "title:\"larry page\"", "title:\"larry page\"" },
    /* phrases: quoted words, CJK runs, words the tokenizer splits */
    { "\"larry page\"", "\"larry page\"" },
    { "\"larry page", "\"larry page\"" }, /* an unclosed quote runs to the end */
    { "\"larry\"", "larry" },
    { "普惠化", "\"普惠 惠化\"" },
    { "Bedrock 普惠化", "(and bedrock \"普惠 惠化\")" },
    { "GPT-4", "\"gpt 4\"" },
    { "X.AI", "\"x ai\"" },
    /* case and width folding */
    { "ＡＩ", "ai" },
    { "BeDrOcK", "bedrock" },
    /* one CJK character: the hidden one-character term */
    { "猫", "#猫" },
    { "猫 狗", "(and #猫 #狗)" },
    { "猫 OR 狗", "(or #猫 #狗)" },
    { "-猫 狗", "(and -#猫 #狗)" },
    /* nothing searchable: no root, not an error */
    { "", "" },
    { "   ", "" },
    { "!!! ... ，。", "" },
    { "\"\"", "" },
    /* errors */
    { "-alpha", NULL },
    { "-alpha -beta", NULL },
    { "alpha OR -beta", NULL },
    { "-alpha OR beta", NULL },
    { "alpha OR -beta gamma", NULL },
    { "\xff", NULL },
    { "alpha \xe6\x99", NULL }, /* truncated UTF-8 */
    { "\xc0\xaf", NULL },       /* over-long encoding of '/' */
};

static void test_qparse_trees_match_table(void **state)
{
    struct tree_text got;
    struct xerr err;

    (void)state;
    for (size_t i = 0; i < sizeof parse_cases / sizeof *parse_cases; i++) {
        const char *text = parse_cases[i].text;
        const char *tree = parse_to_text(text, strlen(text), &got, &err);
        if (!parse_cases[i].tree) {
            if (tree)
                fail_msg("row %zu \"%s\": want XE_INPUT, got tree %s", i, text, tree);
            assert_int_equal(err.code, XE_INPUT);
            assert_true(strlen(err.msg) > 0);
            continue;
        }
        if (!tree)
            fail_msg("row %zu \"%s\": want %s, got error %s", i, text, parse_cases[i].tree,
                     err.msg);
        if (strcmp(tree, parse_cases[i].tree) != 0)
            fail_msg("row %zu \"%s\": want %s, got %s", i, text, parse_cases[i].tree, tree);
    }
}

static void test_qparse_phrase_offsets_count_from_zero(void **state)
{
    struct query *q = NULL;
    struct xerr err = { 0 };

    (void)state;
    assert_int_equal(query_parse("普惠化", strlen("普惠化"), TOKENIZE_DEFAULT, &q, &err), XE_OK);
    assert_non_null(q->root);
    assert_int_equal(q->root->type, QNODE_PHRASE);
    assert_int_equal(q->root->n_terms, 2);
    assert_int_equal(q->root->terms[0].offset, 0);
    assert_int_equal(q->root->terms[1].offset, 1);
    assert_int_equal(q->root->terms[0].len, strlen("普惠"));
    assert_memory_equal(q->root->terms[0].text, "普惠", strlen("普惠"));
    assert_memory_equal(q->root->terms[1].text, "惠化", strlen("惠化"));
    assert_int_equal(q->n_leaves, 1);
    assert_int_equal(q->n_terms, 2);
    query_free(q);

    /* the second word of a query starts its own phrase at offset 0 */
    q = NULL;
    assert_int_equal(query_parse("alpha \"big red apple\"", 21, TOKENIZE_DEFAULT, &q, &err), XE_OK);
    assert_int_equal(q->root->type, QNODE_AND);
    const struct qnode *ph = q->root->children[1];
    assert_int_equal(ph->type, QNODE_PHRASE);
    assert_int_equal(ph->n_terms, 3);
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(ph->terms[i].offset, i);
    assert_int_equal(q->n_leaves, 2);
    assert_int_equal(q->n_terms, 4);
    query_free(q);
}

static void test_qparse_single_cjk_char_is_hidden_term(void **state)
{
    struct query *q = NULL;
    struct xerr err = { 0 };

    (void)state;
    assert_int_equal(query_parse("猫", strlen("猫"), TOKENIZE_DEFAULT, &q, &err), XE_OK);
    assert_non_null(q->root);
    assert_int_equal(q->root->type, QNODE_TERM);
    assert_int_equal(q->root->terms[0].len, 1 + strlen("猫"));
    assert_int_equal(q->root->terms[0].text[0], TERM_CHAR_PREFIX);
    assert_memory_equal(q->root->terms[0].text + 1, "猫", strlen("猫"));
    assert_int_equal(q->n_leaves, 1);
    query_free(q);
}

/* Builds "w1 w2 ... wn" into out. */
static void make_words(char *out, size_t cap, unsigned n)
{
    size_t len = 0;

    out[0] = '\0';
    for (unsigned i = 1; i <= n; i++) {
        int w = snprintf(out + len, cap - len, "%sw%u", i > 1 ? " " : "", i);
        assert_true(w > 0 && (size_t)w < cap - len);
        len += (size_t)w;
    }
}

static void test_qparse_caps_terms_at_query_max_terms(void **state)
{
    char text[1024];
    struct tree_text got;
    struct xerr err;

    (void)state;
    make_words(text, sizeof text, QUERY_MAX_TERMS);
    assert_non_null(parse_to_text(text, strlen(text), &got, &err));
    make_words(text, sizeof text, QUERY_MAX_TERMS + 1);
    assert_null(parse_to_text(text, strlen(text), &got, &err));
    assert_int_equal(err.code, XE_INPUT);

    /* a CJK run of n characters is n - 1 terms */
    struct buf run;
    buf_init(&run, 4096);
    for (unsigned i = 0; i < QUERY_MAX_TERMS + 1; i++)
        buf_append_str(&run, "字");
    assert_non_null(parse_to_text((const char *)run.data, run.len, &got, &err));
    buf_append_str(&run, "字");
    assert_null(parse_to_text((const char *)run.data, run.len, &got, &err));
    assert_int_equal(err.code, XE_INPUT);
    buf_fini(&run);
}

static void test_qparse_caps_bytes_at_query_max_bytes(void **state)
{
    char *text = malloc(QUERY_MAX_BYTES + 1);
    struct query *q = NULL;
    struct xerr err = { 0 };

    (void)state;
    assert_non_null(text);
    /* words of 63 letters and a space: well under QUERY_MAX_TERMS words */
    for (size_t i = 0; i <= QUERY_MAX_BYTES; i++)
        text[i] = i % 64 == 63 ? ' ' : 'a';
    assert_int_equal(query_parse(text, QUERY_MAX_BYTES, TOKENIZE_DEFAULT, &q, &err), XE_OK);
    assert_non_null(q->root);
    assert_int_equal(q->n_leaves, QUERY_MAX_BYTES / 64);
    query_free(q);
    q = NULL;
    assert_int_equal(query_parse(text, QUERY_MAX_BYTES + 1, TOKENIZE_DEFAULT, &q, &err), XE_INPUT);
    assert_null(q);
    assert_true(strlen(err.msg) > 0);
    free(text);
}

static void test_qparse_nul_byte_is_input_error(void **state)
{
    struct tree_text got;
    struct xerr err;

    (void)state;
    assert_null(parse_to_text("alpha\0beta", 10, &got, &err));
    assert_int_equal(err.code, XE_INPUT);
}

static void print_leaf(void *ctx, const struct qnode *leaf)
{
    struct tree_text *t = ctx;

    if (t->len)
        tree_puts(t, " ");
    tree_node(t, leaf);
}

static void test_qparse_positive_leaves_skip_negations(void **state)
{
    struct query *q = NULL;
    struct xerr err = { 0 };
    struct tree_text got = { .len = 0 };
    const char *text = "alpha -beta gamma OR title:delta -\"red apple\"";

    (void)state;
    assert_int_equal(query_parse(text, strlen(text), TOKENIZE_DEFAULT, &q, &err), XE_OK);
    query_positive_leaves(q, print_leaf, &got);
    assert_string_equal(got.s, "alpha gamma title:delta");
    assert_int_equal(q->n_leaves, 5);
    assert_int_equal(q->n_terms, 6);
    query_free(q);
}

/* ---- building small indexes ---- */

struct tdoc {
    const char *id, *title, *body, *source;
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

static void add_segment_dated(struct index *ix, const struct tdoc *docs, const int64_t *dates,
                              size_t n);

/* Writes docs as one new segment of ix. */
static void add_segment(struct index *ix, const struct tdoc *docs, size_t n)
{
    add_segment_dated(ix, docs, NULL, n);
}

/* Writes docs, with dates[i] (DOC_DATE_NONE: none) or all undated, as one new segment of ix. */
static void add_segment_dated(struct index *ix, const struct tdoc *docs, const int64_t *dates,
                              size_t n)
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
            .date_s = dates ? dates[i] : DOC_DATE_NONE,
            .json = text_of("{}"),
        };
        if (memindex_add(mi, &d, &err) != XE_OK)
            fail_msg("memindex_add %s: %s", docs[i].id, err.msg);
    }
    if (index_reserve_segment(ix, path, sizeof path, &err) ||
        memindex_write(mi, path, true, &err) || index_commit_segment(ix, path, &err))
        fail_msg("writing a segment: %s", err.msg);
    memindex_free(mi);
}

/* The id of hit h. */
static void hit_id(const struct snapshot *snap, const struct search_hit *h, const char **id,
                   size_t *len)
{
    struct segment_doc d;

    assert_true(h->segment < snap->n_segments);
    test_segment_doc(snap->segments[h->segment]->seg, h->docid, &d);
    *id = d.id;
    *len = d.id_len;
}

/*
 * Runs text over ix with opts (opts->k hits): their ids in rank order,
 * space-separated, into ids; the total into *total; scores (if wanted) into
 * scores.
 */
static void search_ids_opts(struct index *ix, const char *text, const struct search_options *opts,
                            char *ids, size_t cap, uint64_t *total, double *scores)
{
    struct query *q = NULL;
    struct xerr err = { 0 };
    struct search_result res;
    size_t len = 0;
    uint32_t k = opts->k;

    if (query_parse(text, strlen(text), TOKENIZE_DEFAULT, &q, &err) != XE_OK)
        fail_msg("query_parse \"%s\": %s", text, err.msg);
    struct snapshot *snap = index_snapshot(ix);
    if (search_run_opts(snap, q, opts, &res, &err) != XE_OK)
        fail_msg("search_run \"%s\": %s", text, err.msg);
    assert_true(res.n_hits <= k);
    assert_true(res.n_hits <= res.total);
    assert_int_equal(res.n_hits, res.total < k ? res.total : k);
    ids[0] = '\0';
    for (uint32_t i = 0; i < res.n_hits; i++) {
        const char *id;
        size_t id_len;
        hit_id(snap, &res.hits[i], &id, &id_len);
        int w = snprintf(ids + len, cap - len, "%s%.*s", i ? " " : "", (int)id_len, id);
        assert_true(w > 0 && (size_t)w < cap - len);
        len += (size_t)w;
        if (!isfinite(res.hits[i].score) || !(res.hits[i].score > 0))
            fail_msg("\"%s\": hit %.*s has score %g", text, (int)id_len, id,
                     res.hits[i].score);
        if (i)
            assert_true(res.hits[i - 1].score >= res.hits[i].score);
        if (scores)
            scores[i] = res.hits[i].score;
    }
    *total = res.total;
    search_result_fini(&res);
    snapshot_release(snap);
    query_free(q);
}

static void search_ids(struct index *ix, const char *text, uint32_t k, char *ids, size_t cap,
                       uint64_t *total, double *scores)
{
    struct search_options opts = { .k = k };
    search_ids_opts(ix, text, &opts, ids, cap, total, scores);
}

static int id_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The matching ids as a set: sorted, space-separated; asserts the total agrees. */
static void search_set(struct index *ix, const char *text, char *out, size_t cap)
{
    char ids[IDS_MAX_BYTES];
    char *words[64];
    size_t n = 0, len = 0;
    uint64_t total;

    search_ids(ix, text, 64, ids, sizeof ids, &total, NULL);
    for (char *w = ids; *w;) {
        char *space = strchr(w, ' ');
        assert_true(n < 64);
        words[n++] = w;
        if (!space)
            break;
        *space = '\0';
        w = space + 1;
    }
    assert_int_equal(total, n);
    qsort(words, n, sizeof *words, id_cmp);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(out + len, cap - len, "%s%s", i ? " " : "", words[i]);
        assert_true(w > 0 && (size_t)w < cap - len);
        len += (size_t)w;
    }
}

/* ---- search: what matches ---- */

static const struct tdoc fruit_docs[] = {
    { "d1", "red apple", "fresh fruit from the farm", NULL },
    { "d2", "green pear", "apple and pear salad", NULL },
    { "d3", "market news", "the red car is fast", "farm news daily" },
    { "d4", "apple red", "nothing here", NULL },
    { "d5", "fruit", "red apple pie", NULL },
    { "d6", "banana", "yellow fruit", NULL },
    { "d7", "big red", "apple tree", NULL },
};

static const struct {
    const char *query, *ids; /* ids sorted; "" when nothing matches */
} match_cases[] = {
    { "apple", "d1 d2 d4 d5 d7" },
    { "APPLE", "d1 d2 d4 d5 d7" },
    { "apple red", "d1 d4 d5 d7" },
    { "apple OR banana", "d1 d2 d4 d5 d6 d7" },
    { "banana OR apple", "d1 d2 d4 d5 d6 d7" },
    { "apple -red", "d2" },
    { "-red apple", "d2" },
    { "\"red apple\"", "d1 d5" },       /* d4 has them in the other order, d7 in two fields */
    { "\"apple red\"", "d4" },
    { "\"news the\"", "" },             /* title "market news", body "the red ...": a gap */
    { "\"news daily\"", "d3" },         /* the source is indexed too */
    { "farm", "d1 d3" },
    { "title:apple", "d1 d4" },
    { "title:\"red apple\"", "d1" },
    { "title:fruit", "d5" },
    { "red -title:apple", "d3 d5 d7" },
    { "fruit OR pear -red", "d2 d6" },
    { "fruit OR pear red", "d1 d5" },
    { "nothing OR missingword", "d4" },
    { "missingword", "" },
    { "apple missingword", "" },
    { "missingword OR banana", "d6" },
    { "apple -missingword", "d1 d2 d4 d5 d7" },
    { "!!!", "" },
};

static void test_search_matches_and_or_not_phrase_title(void **state)
{
    struct fixture *f = *state;
    char got[IDS_MAX_BYTES];

    add_segment(f->ix, fruit_docs, sizeof fruit_docs / sizeof *fruit_docs);
    for (size_t i = 0; i < sizeof match_cases / sizeof *match_cases; i++) {
        search_set(f->ix, match_cases[i].query, got, sizeof got);
        if (strcmp(got, match_cases[i].ids) != 0)
            fail_msg("row %zu \"%s\": want \"%s\", got \"%s\"", i, match_cases[i].query,
                     match_cases[i].ids, got);
    }
}

static void test_search_title_match_ranks_first(void **state)
{
    struct fixture *f = *state;
    static const struct tdoc docs[] = {
        { "a-body", "weather report", "the apple harvest was late", NULL },
        { "b-title", "apple prices", "markets moved today", NULL },
        { "c-none", "nothing", "nothing at all", NULL },
    };
    char ids[IDS_MAX_BYTES];
    uint64_t total;

    add_segment(f->ix, docs, 3);
    search_ids(f->ix, "apple", 10, ids, sizeof ids, &total, NULL);
    assert_string_equal(ids, "b-title a-body");
    assert_int_equal(total, 2);
}

/*
 * Runs text with and without pruning: the hits (ids and scores) must be the
 * same, the total the same unless the pruned one says it is a lower bound,
 * which it may only be past SEARCH_EXACT_TOTAL. Returns whether it pruned.
 */
static bool expect_same_top_k_from(struct index *ix, const char *text, uint32_t k,
                                   double half_life, const char *source)
{
    struct query *q;
    struct xerr err = { 0 };
    struct search_options exact = { .k = k, .exact_total = true,
                                    .recency_half_life_days = half_life, .now_s = 1790000000 };
    if (source) {
        exact.sources[0] = text_of(source);
        exact.n_sources = 1;
    }
    struct search_options fast = exact;
    struct search_result a, b;

    fast.exact_total = false;
    if (query_parse(text, strlen(text), TOKENIZE_DEFAULT, &q, &err) != XE_OK)
        fail_msg("%s: %s", text, err.msg);
    struct snapshot *snap = index_snapshot(ix);
    assert_int_equal(search_run_opts(snap, q, &exact, &a, &err), XE_OK);
    assert_int_equal(search_run_opts(snap, q, &fast, &b, &err), XE_OK);
    assert_false(a.total_is_bound);
    if (a.n_hits != b.n_hits)
        fail_msg("%s, k %u: %u hits, pruned %u", text, k, a.n_hits, b.n_hits);
    for (uint32_t i = 0; i < a.n_hits; i++)
        if (a.hits[i].segment != b.hits[i].segment || a.hits[i].docid != b.hits[i].docid ||
            a.hits[i].score != b.hits[i].score)
            fail_msg("%s, k %u, half-life %g: hit %u differs", text, k, half_life, i);
    if (b.total_is_bound)
        assert_true(b.total >= SEARCH_EXACT_TOTAL && b.total <= a.total);
    else
        assert_int_equal(b.total, a.total);
    if (a.total <= SEARCH_EXACT_TOTAL)
        assert_false(b.total_is_bound);
    bool pruned = b.total_is_bound;
    search_result_fini(&a);
    search_result_fini(&b);
    snapshot_release(snap);
    query_free(q);
    return pruned;
}

/* The same without a filter. */
static bool expect_same_top_k(struct index *ix, const char *text, uint32_t k, double half_life)
{
    return expect_same_top_k_from(ix, text, k, half_life, NULL);
}

/*
 * Past SEARCH_EXACT_TOTAL matches the engine skips blocks that cannot reach
 * the top k; the hits must be exactly those of a search that counts every
 * match, and the total a lower bound only then. 15,000 generated documents
 * in two segments, words drawn with a skewed frequency, some dated.
 */
static void test_search_pruning_finds_the_same_top_k(void **state)
{
    struct fixture *f = *state;
    enum { N_A = 12000, N_B = 3000, WORDS = 12 };
    static const char *const words[WORDS] = { "alpha", "beta", "gamma", "delta", "eps", "zeta",
                                              "eta", "theta", "iota", "kappa", "lamda", "mu" };
    static const char *const queries[] = { "alpha", "beta", "alpha beta", "alpha OR gamma",
                                           "\"alpha beta\"", "beta -gamma", "title:alpha",
                                           "alpha delta eps", "gamma OR zeta OR mu",
                                           "alpha beta OR kappa" };
    struct tdoc *docs = calloc(N_A + N_B, sizeof *docs);
    char (*ids)[16] = calloc(N_A + N_B, sizeof *ids);
    char (*bodies)[512] = calloc(N_A + N_B, sizeof *bodies);
    char (*titles)[64] = calloc(N_A + N_B, sizeof *titles);
    int64_t *dates = calloc(N_A + N_B, sizeof *dates);
    uint64_t rng = 42;

    assert_true(docs && ids && bodies && titles && dates);
    for (size_t i = 0; i < N_A + N_B; i++) {
        size_t len = 0, n = 3 + (size_t)((rng = rng * 6364136223846793005ull + 1) >> 59);
        for (size_t w = 0; w < n; w++) {
            rng = rng * 6364136223846793005ull + 1;
            /* word k with probability about 2^-k: alpha in half the words */
            unsigned k = (unsigned)__builtin_ctzll((rng >> 20) | 1ull << (WORDS - 1));
            len += (size_t)snprintf(bodies[i] + len, sizeof bodies[i] - len, "%s ", words[k]);
        }
        snprintf(ids[i], sizeof ids[i], "d%06zu", i);
        snprintf(titles[i], sizeof titles[i], "%s", i % 7 ? "" : words[i % 3]);
        docs[i] = (struct tdoc){ ids[i], titles[i][0] ? titles[i] : NULL, bodies[i], NULL };
        dates[i] = i % 5 ? DOC_DATE_NONE : 1790000000 - (int64_t)(i % 400) * 86400;
    }
    add_segment_dated(f->ix, docs, dates, N_A);
    add_segment_dated(f->ix, docs + N_A, dates + N_A, N_B);

    uint32_t ks[] = { 1, 10, 100 };
    size_t pruned = 0;
    for (size_t qi = 0; qi < sizeof queries / sizeof queries[0]; qi++)
        for (size_t ki = 0; ki < 3; ki++)
            for (int recency = 0; recency <= 1; recency++)
                pruned += expect_same_top_k(f->ix, queries[qi], ks[ki], recency ? 30 : 0);
    assert_true(pruned > 0); /* the test reaches the pruning */
    free(docs);
    free(ids);
    free(bodies);
    free(titles);
    free(dates);
}

/*
 * Lists of one block have no bounds: pruning must neither loop on them nor
 * drop their last document (a small second segment of older documents; a
 * rare word whose best match is the list's last). Test segments have blocks
 * of TEST_BLOCK_DOCS, so a list of that many documents or fewer is one block.
 */
static void test_search_pruning_with_one_block_lists(void **state)
{
    struct fixture *f = *state;
    enum { N = 12000, SMALL = TEST_BLOCK_DOCS };
    struct tdoc *docs = calloc(N, sizeof *docs);
    char (*ids)[16] = calloc(N, sizeof *ids);
    int64_t *dates = calloc(N, sizeof *dates);

    assert_true(docs && ids && dates);
    alarm(60); /* a loop would otherwise hang the test run */
    for (size_t i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "a%06zu", i);
        /* strong matches first, weak ones after (so that blocks get pruned); beta
         * in the first ten and, alone and often, near the end: the best match */
        const char *body = i == 0    ? "alpha alpha alpha alpha beta"
                           : i < 100 ? "alpha alpha alpha alpha"
                           : i == N - 10 ? "beta beta beta"
                                         : "alpha x y z w v u";
        docs[i] = (struct tdoc){ ids[i], NULL, body, NULL };
        dates[i] = 1790000000 - (int64_t)(i % 3) * 86400; /* all fresh */
    }
    add_segment_dated(f->ix, docs, dates, N);
    for (size_t i = 0; i < SMALL; i++) {
        snprintf(ids[i], sizeof ids[i], "b%06zu", i);
        docs[i] = (struct tdoc){ ids[i], NULL, "alpha q r", NULL };
    }
    add_segment(f->ix, docs, SMALL); /* undated: never fresh */
    expect_same_top_k(f->ix, "alpha", 10, 30);
    expect_same_top_k(f->ix, "alpha", 10, 0);
    expect_same_top_k(f->ix, "alpha OR beta", 10, 0);
    expect_same_top_k(f->ix, "alpha OR beta", 1, 30);
    expect_same_top_k(f->ix, "beta OR alpha", 3, 0);
    alarm(0);
    free(docs);
    free(ids);
    free(dates);
}

static uint64_t fake_clock_reads;
static uint64_t fake_clock_ns(void);

/*
 * Stops a search of text at many points (the fake clock, read at every unit
 * of work): whatever hits a timed-out search answers carry the scores an
 * exhaustive search gives those documents (none scored in part).
 */
static void expect_deadline_scores_whole(struct index *ix, const char *text, uint32_t n_docs)
{
    struct query *q;
    struct xerr err = { 0 };
    struct search_options all = { .k = n_docs, .exact_total = true };
    struct search_result a, b;

    assert_int_equal(query_parse(text, strlen(text), TOKENIZE_DEFAULT, &q, &err), XE_OK);
    struct snapshot *snap = index_snapshot(ix);
    assert_int_equal(search_run_opts(snap, q, &all, &a, &err), XE_OK);
    size_t timed_out = 0;
    for (uint64_t deadline = 12000; deadline < 400000; deadline += deadline / 16) {
        struct search_options o = { .k = 10, .clock_every = 1, .deadline_ns = deadline,
                                    .clock_ns = fake_clock_ns };
        fake_clock_reads = 0;
        assert_int_equal(search_run_opts(snap, q, &o, &b, &err), XE_OK);
        timed_out += b.timed_out;
        for (uint32_t i = 0; i < b.n_hits; i++) {
            uint32_t j = 0;
            while (j < a.n_hits && (a.hits[j].segment != b.hits[i].segment ||
                                    a.hits[j].docid != b.hits[i].docid))
                j++;
            if (j == a.n_hits || a.hits[j].score != b.hits[i].score)
                fail_msg("%s, deadline %" PRIu64 ": hit %u scored in part", text, deadline, i);
        }
        search_result_fini(&b);
    }
    assert_true(timed_out > 0);
    search_result_fini(&a);
    snapshot_release(snap);
    query_free(q);
}

/* The next of a 64-bit LCG, and a number below n from its high bits. */
static uint32_t rng_below(uint64_t *rng, uint32_t n)
{
    *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)((*rng >> 33) % n);
}

/* Word w of the OR test's vocabulary: a few CJK characters with variant forms, else w<n>. */
static const char *or_word(uint32_t w, char *buf, size_t cap)
{
    static const char *const cjk[] = { "馬", "马", "說", "说" };
    if (w < 4)
        return cjk[w];
    snprintf(buf, cap, "w%u", w);
    return buf;
}

/*
 * Past SEARCH_EXACT_TOTAL matches an OR is run by MaxScore: terms that
 * cannot lift a document into the top k are only advanced to score the
 * candidates of the others, and candidates are dropped once they cannot
 * reach it. Random ORs of 2 to 64 terms (common and rare words, phrases,
 * title:, written forms, a NOT; some with a source filter) over 20,000
 * generated documents whose words follow a skewed frequency, some dated
 * (freshness): the top 1, 10 and 100 and their scores are exactly those of a
 * search that scores every match.
 */
static void test_search_or_pruning_finds_the_same_top_k(void **state)
{
    struct fixture *f = *state;
    enum { N_A = 16000, N_B = 4000, VOCAB = 90, QUERIES = 24 };
    struct tdoc *docs = calloc(N_A + N_B, sizeof *docs);
    char (*ids)[16] = calloc(N_A + N_B, sizeof *ids);
    char (*bodies)[512] = calloc(N_A + N_B, sizeof *bodies);
    char (*titles)[48] = calloc(N_A + N_B, sizeof *titles);
    int64_t *dates = calloc(N_A + N_B, sizeof *dates);
    uint64_t rng = 7;
    char wb[16];

    assert_true(docs && ids && bodies && titles && dates);
    alarm(300); /* a pruning loop would otherwise hang the test run */
    for (size_t i = 0; i < N_A + N_B; i++) {
        /* one in 16 long and made of common words only: its score comes from
         * many terms of low bounds (the non-essential ones) */
        bool dense = rng_below(&rng, 16) == 0;
        size_t len = 0, n = dense ? 30 + rng_below(&rng, 30) : 2 + rng_below(&rng, 22);
        for (size_t w = 0; w < n; w++) {
            /* skewed: word u^3 of the vocabulary, the first few in most documents */
            double u = rng_below(&rng, 1u << 20) / (double)(1u << 20);
            uint32_t k = dense ? rng_below(&rng, 16) : (uint32_t)(VOCAB * u * u * u);
            len += (size_t)snprintf(bodies[i] + len, sizeof bodies[i] - len, "%s ",
                                    or_word(k, wb, sizeof wb));
        }
        if (rng_below(&rng, 4) == 0)
            snprintf(titles[i], sizeof titles[i], "%s",
                     or_word(rng_below(&rng, VOCAB), wb, sizeof wb));
        snprintf(ids[i], sizeof ids[i], "d%06zu", i);
        docs[i] = (struct tdoc){ ids[i], titles[i][0] ? titles[i] : NULL, bodies[i],
                                 i % 8 ? "wire" : "desk" };
        dates[i] = i % 3 ? DOC_DATE_NONE : 1790000000 - (int64_t)rng_below(&rng, 200) * 86400;
    }
    add_segment_dated(f->ix, docs, dates, N_A);
    add_segment_dated(f->ix, docs + N_A, dates + N_A, N_B);

    static const uint32_t ks[] = { 1, 10, 100 };
    size_t pruned = 0;
    for (uint32_t qi = 0; qi < QUERIES; qi++) {
        char query[2048];
        size_t len = 0;
        bool negation = qi % 5 == 4; /* an AND of the OR and a NOT, its 64th term */
        uint32_t terms = 0, want = qi % 4 == 0 ? 64 : 2 + rng_below(&rng, 63);
        if (negation && want == 64)
            want = 63;
        while (terms < want) {
            uint32_t kind = rng_below(&rng, 10), a = rng_below(&rng, VOCAB);
            char wa[16];
            const char *sep = terms ? " OR " : "";
            if (kind < 4) /* a common word */
                a = rng_below(&rng, 12);
            if (kind == 8 && terms + 2 <= want) { /* a phrase of two words */
                len += (size_t)snprintf(query + len, sizeof query - len, "%s\"%s %s\"", sep,
                                        or_word(4 + rng_below(&rng, 8), wa, sizeof wa),
                                        or_word(4 + rng_below(&rng, 8), wb, sizeof wb));
                terms += 2;
                continue;
            }
            len += (size_t)snprintf(query + len, sizeof query - len, "%s%s%s", sep,
                                    kind == 9 ? "title:" : "", or_word(a, wa, sizeof wa));
            terms++;
        }
        if (negation)
            snprintf(query + len, sizeof query - len, " -%s",
                     or_word(4 + rng_below(&rng, 30), wb, sizeof wb));
        for (size_t ki = 0; ki < 3; ki++)
            pruned += expect_same_top_k_from(f->ix, query, ks[ki], qi % 2 ? 30 : 0,
                                             qi % 3 == 2 ? "wire" : NULL);
    }
    assert_true(pruned > 0); /* the test reaches the pruning */
    /* title: terms and phrases spend time as they are advanced to a candidate */
    expect_deadline_scores_whole(f->ix,
                                 "w4 OR title:w5 OR \"w6 w7\" OR title:w8 OR w9 OR title:w10 "
                                 "OR w11 OR title:w12 OR w13 OR title:w14 OR w40 OR title:w4",
                                 N_A + N_B);
    alarm(0);
    free(docs);
    free(ids);
    free(bodies);
    free(titles);
    free(dates);
}

static void test_search_ties_break_by_id_ascending(void **state)
{
    struct fixture *f = *state;
    /* the same text: the same score; added out of id order */
    static const struct tdoc docs[] = {
        { "e", "same title", "same body", NULL }, { "c", "same title", "same body", NULL },
        { "a", "same title", "same body", NULL }, { "d", "same title", "same body", NULL },
        { "b", "same title", "same body", NULL },
    };
    char ids[IDS_MAX_BYTES];
    double scores[8];
    uint64_t total;

    add_segment(f->ix, docs, 5);
    search_ids(f->ix, "same", 10, ids, sizeof ids, &total, scores);
    assert_string_equal(ids, "a b c d e");
    assert_int_equal(total, 5);
    for (int i = 1; i < 5; i++)
        assert_true(scores[i] == scores[0]);
    /* the heap keeps the smallest ids among ties */
    search_ids(f->ix, "same", 2, ids, sizeof ids, &total, NULL);
    assert_string_equal(ids, "a b");
    assert_int_equal(total, 5);
    search_ids(f->ix, "same", 1, ids, sizeof ids, &total, NULL);
    assert_string_equal(ids, "a");
}

/* Words that stand together rank above the same words far apart, whatever k. */
static void test_search_proximity_ranks_nearby_words_first(void **state)
{
    struct fixture *f = *state;
    /* the same words, the same length: only their distance differs */
    static const struct tdoc docs[] = {
        { "far1", NULL, "alpha one two three four five six seven eight nine beta", NULL },
        { "far2", NULL, "beta one two three four five six seven eight nine alpha", NULL },
        { "near", NULL, "one two three four alpha beta five six seven eight nine", NULL },
        { "gap1", NULL, "one two three four alpha five beta six seven eight nine", NULL },
        { "cjk-far", NULL, "普惠化是目标，今天的新闻很多很多很多，亚马逊推出 Bedrock", NULL },
        { "cjk-near", NULL, "今天的新闻很多很多很多，亚马逊推出 Bedrock 普惠化是目标", NULL },
    };
    char ids[IDS_MAX_BYTES];
    double scores[8];
    uint64_t total;

    add_segment(f->ix, docs, 6);
    search_ids(f->ix, "alpha beta", 10, ids, sizeof ids, &total, scores);
    assert_string_equal(ids, "near gap1 far1 far2");
    assert_true(scores[0] > scores[1] && scores[1] > scores[2]);
    assert_true(scores[2] == scores[3]); /* beyond the window: no bonus, ties by id */
    search_ids(f->ix, "beta alpha", 10, ids, sizeof ids, &total, NULL);
    assert_string_equal(ids, "near gap1 far1 far2");
    /* the bonus is computed only where it can matter: top 1 and top 2 agree */
    search_ids(f->ix, "alpha beta", 1, ids, sizeof ids, &total, NULL);
    assert_string_equal(ids, "near");
    search_ids(f->ix, "alpha beta", 2, ids, sizeof ids, &total, NULL);
    assert_string_equal(ids, "near gap1");
    /* a phrase and a word */
    search_ids(f->ix, "Bedrock 普惠化", 10, ids, sizeof ids, &total, NULL);
    assert_string_equal(ids, "cjk-near cjk-far");
    /* one word alone: nothing to be near */
    search_ids(f->ix, "alpha", 10, ids, sizeof ids, &total, scores);
    assert_true(scores[0] == scores[3]);
}

/* Simplified and traditional match alike; among equals, the form the query typed comes first. */
static void test_search_folds_variants_and_prefers_the_typed_form(void **state)
{
    struct fixture *f = *state;
    static const struct tdoc docs[] = {
        { "a-simplified", NULL, "马斯克说人工智能", NULL },
        { "b-traditional", NULL, "馬斯克說人工智能", NULL },
        { "c-other", NULL, "特斯拉的新闻", NULL },
    };
    char ids[IDS_MAX_BYTES];
    double scores[8];
    uint64_t total;

    add_segment(f->ix, docs, 3);
    search_ids(f->ix, "马斯克", 10, ids, sizeof ids, &total, scores);
    assert_string_equal(ids, "a-simplified b-traditional");
    assert_true(scores[0] == scores[1]);
    search_ids(f->ix, "馬斯克", 10, ids, sizeof ids, &total, scores);
    assert_string_equal(ids, "b-traditional a-simplified");
    assert_true(fabs(scores[0] / scores[1] - (1 + SEARCH_FORM_WEIGHT)) < 1e-9);
    /* the top 1 is the same */
    search_ids(f->ix, "馬斯克", 1, ids, sizeof ids, &total, NULL);
    assert_string_equal(ids, "b-traditional");
    /* a negated word asks for no form */
    search_ids(f->ix, "人工智能 -說", 10, ids, sizeof ids, &total, NULL);
    assert_string_equal(ids, "");
    search_ids(f->ix, "人工智能 -特斯拉", 10, ids, sizeof ids, &total, scores);
    assert_string_equal(ids, "a-simplified b-traditional");
}

/* Fresher documents rank higher by relevance, by the documented half-life formula. */
static void test_search_recency_boosts_fresh_documents(void **state)
{
    struct fixture *f = *state;
    const int64_t now = 1790000000, day = 86400;
    static const struct tdoc docs[] = {
        { "a-undated", NULL, "same words here", NULL },
        { "b-old", NULL, "same words here", NULL },
        { "c-new", NULL, "same words here", NULL },
        { "d-future", NULL, "same words here", NULL },
    };
    const int64_t dates[] = { DOC_DATE_NONE, now - 365 * day, now - 30 * day, now + 2 * day };
    struct search_options opts = { .k = 10, .recency_half_life_days = 30, .now_s = now };
    char ids[IDS_MAX_BYTES];
    double scores[8], plain[8];
    uint64_t total;

    add_segment_dated(f->ix, docs, dates, 4);
    search_ids(f->ix, "words", 10, ids, sizeof ids, &total, plain);
    assert_string_equal(ids, "a-undated b-old c-new d-future");
    search_ids_opts(f->ix, "words", &opts, ids, sizeof ids, &total, scores);
    assert_string_equal(ids, "d-future c-new b-old a-undated");
    /* a date in the future counts as today: twice the score; one half-life: 1.5 times */
    assert_true(fabs(scores[0] / plain[0] - 2.0) < 1e-9);
    assert_true(fabs(scores[1] / plain[0] - 1.5) < 1e-9);
    assert_true(scores[2] > plain[0] && scores[2] < plain[0] * 1.001);
    assert_true(scores[3] == plain[0]);
    /* a half-life of 0 turns it off; sorting by date ignores it */
    opts.recency_half_life_days = 0;
    search_ids_opts(f->ix, "words", &opts, ids, sizeof ids, &total, NULL);
    assert_string_equal(ids, "a-undated b-old c-new d-future");
    opts.recency_half_life_days = 30;
    opts.sort_by_date = true;
    search_ids_opts(f->ix, "words", &opts, ids, sizeof ids, &total, NULL);
    assert_string_equal(ids, "d-future c-new b-old a-undated");
}

static void test_search_total_counts_past_k(void **state)
{
    struct fixture *f = *state;
    struct tdoc docs[9];
    char idbuf[9][16];
    char ids[IDS_MAX_BYTES];
    uint64_t total;

    for (unsigned i = 0; i < 9; i++) {
        snprintf(idbuf[i], sizeof idbuf[i], "t%u", i);
        /* t0..t6 have "kiwi"; the more kiwi, the higher the score */
        docs[i] = (struct tdoc){ idbuf[i], "fruit bowl",
                                 i == 0 ? "kiwi kiwi kiwi plum" : i < 7 ? "kiwi plum" : "plum",
                                 NULL };
    }
    add_segment(f->ix, docs, 9);
    search_ids(f->ix, "kiwi", 3, ids, sizeof ids, &total, NULL);
    assert_int_equal(total, 7);
    assert_string_equal(ids, "t0 t1 t2");
    search_ids(f->ix, "kiwi", 0, ids, sizeof ids, &total, NULL);
    assert_int_equal(total, 7);
    assert_string_equal(ids, "");
    search_ids(f->ix, "plum", 100, ids, sizeof ids, &total, NULL);
    assert_int_equal(total, 9);
    search_ids(f->ix, "plum -kiwi", 100, ids, sizeof ids, &total, NULL);
    assert_int_equal(total, 2);
    assert_string_equal(ids, "t7 t8");
}

static void test_search_single_cjk_char_finds_it_inside_runs(void **state)
{
    struct fixture *f = *state;
    static const struct tdoc docs[] = {
        { "c1", "普惠金融", "银行推出新产品", NULL },
        { "c2", NULL, "猫和狗", NULL },
        { "c3", NULL, "一只猫", NULL },
        { "c4", NULL, "小狗", NULL },
        { "c5", NULL, "猫", NULL },
        { "c6", "无关", "猫头鹰 is an owl", NULL },
    };
    static const struct {
        const char *query, *ids;
    } cases[] = {
        { "猫", "c2 c3 c5 c6" }, { "狗", "c2 c4" },   { "惠", "c1" },
        { "金融", "c1" },        { "普惠", "c1" },    { "惠金", "c1" },
        { "金普", "" },          { "普惠金融", "c1" }, { "猫和狗", "c2" },
        { "和", "c2" },          { "猫 狗", "c2" },   { "猫 -狗", "c3 c5 c6" },
        { "鹰 owl", "c6" },      { "title:惠", "c1" }, { "title:猫", "" },
    };
    char got[IDS_MAX_BYTES];

    add_segment(f->ix, docs, sizeof docs / sizeof *docs);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        search_set(f->ix, cases[i].query, got, sizeof got);
        if (strcmp(got, cases[i].ids) != 0)
            fail_msg("row %zu \"%s\": want \"%s\", got \"%s\"", i, cases[i].query,
                     cases[i].ids, got);
    }
}

/*
 * The characters of a CJK phrase must stand next to each other (API.md): a
 * run that stops at a separator and a new one after it do not chain, even
 * when the last bigram of one and the first of the other would spell it.
 */
static void test_search_cjk_phrase_stops_at_separators(void **state)
{
    struct fixture *f = *state;
    static const struct tdoc docs[] = {
        { "p1", NULL, "普惠，惠化", NULL },
        { "p2", NULL, "在中国，国人都知道", NULL },
        { "p3", NULL, "生成式AI的普惠化", NULL },
        { "p4", NULL, "普惠 惠化 中国 国人", NULL },
        { "p5", "普惠", "惠化", NULL }, /* title and body */
        { "p6", NULL, "中国人", NULL },
    };
    static const struct {
        const char *query, *ids;
    } cases[] = {
        { "普惠化", "p3" },
        { "中国人", "p6" },
        { "普惠", "p1 p3 p4 p5" },
        { "惠化", "p1 p3 p4 p5" },
        { "中国", "p2 p4 p6" },
        { "国人", "p2 p4 p6" },
        { "普惠 惠化", "p1 p3 p4 p5" }, /* two words: AND, not a phrase */
        { "惠", "p1 p3 p4 p5" },
        { "在中国", "p2" },
        { "国人都知道", "p2" },
        { "中国 国人", "p2 p4 p6" },
    };
    char got[IDS_MAX_BYTES];

    add_segment(f->ix, docs, sizeof docs / sizeof *docs);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        search_set(f->ix, cases[i].query, got, sizeof got);
        if (strcmp(got, cases[i].ids) != 0)
            fail_msg("row %zu \"%s\": want \"%s\", got \"%s\"", i, cases[i].query,
                     cases[i].ids, got);
    }
}

/*
 * A phrase does not span two fields: "red apple" does not match title
 * "big red" with body "apple tree", and a CJK phrase with a separator
 * inside ("普惠，惠化": two runs, one position apart) does not match title
 * "普惠" with body "惠化" either.
 */
static void test_search_phrase_with_separator_stays_in_one_field(void **state)
{
    struct fixture *f = *state;
    static const struct tdoc docs[] = {
        { "q1", NULL, "普惠，惠化", NULL },
        { "q2", NULL, "普惠 惠化", NULL },
        { "q3", "普惠", "惠化", NULL },
        { "q4", "big red", "apple tree", NULL },
        { "q5", NULL, "red apple", NULL },
        { "q6", "惠化", "普惠", NULL },
    };
    static const struct {
        const char *query, *ids;
    } cases[] = {
        { "\"red apple\"", "q5" },
        { "普惠，惠化", "q1 q2" },
        { "\"普惠 惠化\"", "q1 q2" },
        { "普惠 惠化", "q1 q2 q3 q6" },
    };
    char got[IDS_MAX_BYTES];

    add_segment(f->ix, docs, sizeof docs / sizeof *docs);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        search_set(f->ix, cases[i].query, got, sizeof got);
        if (strcmp(got, cases[i].ids) != 0)
            fail_msg("row %zu \"%s\": want \"%s\", got \"%s\"", i, cases[i].query,
                     cases[i].ids, got);
    }
}

static const struct tdoc seg_a[] = {
    { "s1", "apple pie", "a recipe for apple pie with cinnamon", NULL },
    { "s2", "pear tart", "pears and almonds", NULL },
    { "s3", "cinnamon rolls", "sweet rolls", NULL },
};
static const struct tdoc seg_b[] = {
    { "s4", "apple juice", "pressed apple juice", NULL },
    { "s5", "rare fruit", "durian and mangosteen", NULL },
    { "s6", "apple crumble", "an apple crumble with cinnamon and oats", "kitchen" },
};

static void test_search_spans_two_segments(void **state)
{
    struct fixture *f = *state;
    char got[IDS_MAX_BYTES];
    uint64_t total;

    add_segment(f->ix, seg_a, 3);
    add_segment(f->ix, seg_b, 3);
    struct snapshot *snap = index_snapshot(f->ix);
    assert_int_equal(snap->n_segments, 2);
    assert_int_equal(snap->n_docs, 6);
    snapshot_release(snap);

    search_set(f->ix, "apple", got, sizeof got);
    assert_string_equal(got, "s1 s4 s6");
    search_set(f->ix, "cinnamon", got, sizeof got);
    assert_string_equal(got, "s1 s3 s6");
    search_set(f->ix, "durian OR pears", got, sizeof got); /* one term in each segment */
    assert_string_equal(got, "s2 s5");
    search_set(f->ix, "apple -cinnamon", got, sizeof got);
    assert_string_equal(got, "s4");
    search_set(f->ix, "\"apple crumble\"", got, sizeof got);
    assert_string_equal(got, "s6");
    search_set(f->ix, "kitchen", got, sizeof got);
    assert_string_equal(got, "s6");
    search_ids(f->ix, "apple", 2, got, sizeof got, &total, NULL);
    assert_int_equal(total, 3);
}

/*
 * The same documents in two segments and in one score the same: document
 * counts, document frequencies and average lengths come from the whole
 * snapshot, not from the segment that holds the document.
 */
static void test_search_scores_use_whole_snapshot_stats(void **state)
{
    struct fixture *f = *state;
    struct tdoc all[6];
    static const char *const queries[] = { "apple", "cinnamon", "apple cinnamon",
                                           "\"apple pie\"", "rolls OR durian", "title:apple" };
    struct index *one;
    struct xerr err = { 0 };
    char *dir = test_mkdtemp();

    assert_non_null(dir);
    assert_int_equal(index_open(dir, TOKENIZE_DEFAULT, &one, &err), XE_OK);
    memcpy(all, seg_a, sizeof seg_a);
    memcpy(all + 3, seg_b, sizeof seg_b);
    add_segment(one, all, 6);
    add_segment(f->ix, seg_a, 3);
    add_segment(f->ix, seg_b, 3);

    for (size_t i = 0; i < sizeof queries / sizeof *queries; i++) {
        char ids_two[IDS_MAX_BYTES], ids_one[IDS_MAX_BYTES];
        double scores_two[8], scores_one[8];
        uint64_t total_two, total_one;
        search_ids(f->ix, queries[i], 8, ids_two, sizeof ids_two, &total_two, scores_two);
        search_ids(one, queries[i], 8, ids_one, sizeof ids_one, &total_one, scores_one);
        if (strcmp(ids_two, ids_one) != 0)
            fail_msg("\"%s\": two segments rank \"%s\", one segment \"%s\"", queries[i],
                     ids_two, ids_one);
        assert_int_equal(total_two, total_one);
        assert_true(total_one > 0);
        for (uint64_t h = 0; h < total_one; h++)
            if (fabs(scores_two[h] - scores_one[h]) > SCORE_EPSILON)
                fail_msg("\"%s\" hit %u: %.12f in two segments, %.12f in one", queries[i],
                         (unsigned)h, scores_two[h], scores_one[h]);
    }
    index_close(one);
    test_rmtree(dir);
    free(dir);
}

/*
 * A document id added again in a newer segment through index_commit_segment()
 * (the bulk-load path, `xun index` run twice) replaces the older version:
 * only the newest one is live, counted and found, and only once.
 */
static void test_search_repeated_id_finds_only_newest_version(void **state)
{
    struct fixture *f = *state;
    static const struct tdoc old_x[] = {
        { "x", "first title", "apple", NULL },
        { "y", "other", "apple cherry", NULL },
    };
    static const struct tdoc new_x[] = { { "x", "second title", "banana", NULL } };
    char got[IDS_MAX_BYTES];
    uint64_t total;

    add_segment(f->ix, old_x, 2);
    add_segment(f->ix, new_x, 1);
    struct snapshot *snap = index_snapshot(f->ix);
    assert_int_equal(snap->n_segments, 2);
    assert_int_equal(snap->n_docs, 2); /* x (new) and y */
    snapshot_release(snap);

    search_ids(f->ix, "apple", 10, got, sizeof got, &total, NULL);
    assert_int_equal(total, 1);
    assert_string_equal(got, "y"); /* the old x had apple; the live one does not */
    search_ids(f->ix, "banana", 10, got, sizeof got, &total, NULL);
    assert_int_equal(total, 1);
    assert_string_equal(got, "x");
    search_ids(f->ix, "apple OR banana", 10, got, sizeof got, &total, NULL);
    assert_int_equal(total, 2);
    search_set(f->ix, "apple OR banana", got, sizeof got);
    assert_string_equal(got, "x y"); /* x once */
    search_set(f->ix, "title:first", got, sizeof got);
    assert_string_equal(got, "");
    search_set(f->ix, "title:second", got, sizeof got);
    assert_string_equal(got, "x");
}

/*
 * The same documents bulk-loaded again and again: each id is live once, and
 * scores stay positive (document frequencies and the document count must
 * agree on which documents they count).
 */
static void test_search_repeated_load_counts_each_id_once(void **state)
{
    struct fixture *f = *state;
    static const struct tdoc docs[] = {
        { "x", "first title", "apple", NULL },
        { "y", "other", "apple cherry", NULL },
    };
    char got[IDS_MAX_BYTES];
    uint64_t total;

    for (int round = 1; round <= 3; round++) {
        add_segment(f->ix, docs, 2);
        struct snapshot *snap = index_snapshot(f->ix);
        assert_int_equal(snap->n_segments, round);
        assert_int_equal(snap->n_docs, 2);
        snapshot_release(snap);
        search_ids(f->ix, "apple", 10, got, sizeof got, &total, NULL); /* scores > 0 */
        assert_int_equal(total, 2);
        search_set(f->ix, "apple", got, sizeof got);
        assert_string_equal(got, "x y");
        search_ids(f->ix, "cherry", 10, got, sizeof got, &total, NULL);
        assert_int_equal(total, 1);
        assert_string_equal(got, "y");
    }
}

/* ---- search: the time budget ---- */

/*
 * A clock for deadlines that never looks at the time: each read returns one
 * more than the last, so "the deadline passes at the Nth read" is exact.
 */
static uint64_t fake_clock_ns(void)
{
    return ++fake_clock_reads;
}

/* What a search with a deadline answered. */
struct budget_run {
    char ids[IDS_MAX_BYTES];
    uint64_t total;
    bool timed_out, bound;
    uint32_t n_hits;
    uint64_t clock_reads;
};

/* Runs text over ix with opts (clock_ns: the fake clock, from 0 reads). */
static void budget_search(struct index *ix, const char *text, struct search_options *opts,
                          struct budget_run *r)
{
    struct query *q = NULL;
    struct xerr err = { 0 };
    struct search_result res;
    size_t len = 0;

    memset(r, 0, sizeof *r);
    fake_clock_reads = 0;
    opts->clock_ns = fake_clock_ns;
    if (query_parse(text, strlen(text), TOKENIZE_DEFAULT, &q, &err) != XE_OK)
        fail_msg("query_parse \"%s\": %s", text, err.msg);
    struct snapshot *snap = index_snapshot(ix);
    if (search_run_opts(snap, q, opts, &res, &err) != XE_OK)
        fail_msg("search_run \"%s\": %s", text, err.msg);
    for (uint32_t i = 0; i < res.n_hits; i++) {
        const char *id;
        size_t id_len;
        hit_id(snap, &res.hits[i], &id, &id_len);
        int w = snprintf(r->ids + len, sizeof r->ids - len, "%s%.*s", i ? " " : "",
                         (int)id_len, id);
        assert_true(w > 0 && (size_t)w < sizeof r->ids - len);
        len += (size_t)w;
    }
    r->total = res.total;
    r->timed_out = res.timed_out;
    r->bound = res.total_is_bound;
    r->n_hits = res.n_hits;
    r->clock_reads = fake_clock_reads;
    search_result_fini(&res);
    snapshot_release(snap);
    query_free(q);
}

#define BUDGET_DOCS 30

/* b00..b29, in that docid order; b03 and b25 say kiwi three times, the others once. */
static void add_budget_docs(struct index *ix)
{
    struct tdoc docs[BUDGET_DOCS];
    char ids[BUDGET_DOCS][8];

    for (unsigned i = 0; i < BUDGET_DOCS; i++) {
        snprintf(ids[i], sizeof ids[i], "b%02u", i);
        docs[i] = (struct tdoc){ ids[i], "fruit",
                                 i == 3 || i == 25 ? "kiwi kiwi kiwi apple red" : "kiwi apple red",
                                 NULL };
    }
    add_segment(ix, docs, BUDGET_DOCS);
}

static void test_search_deadline_stops_and_answers_what_it_found(void **state)
{
    struct fixture *f = *state;
    struct budget_run r;

    add_budget_docs(f->ix);
    /* no deadline: the clock is never read */
    struct search_options o = { .k = 2, .clock_every = 1 };
    budget_search(f->ix, "kiwi", &o, &r);
    assert_int_equal(r.total, BUDGET_DOCS);
    assert_string_equal(r.ids, "b03 b25");
    assert_false(r.timed_out);
    assert_false(r.bound);
    assert_int_equal(r.clock_reads, 0);

    /* read at every document; the 11th read is the deadline: 10 documents seen,
     * the best of them kept, the total a lower bound */
    o = (struct search_options){ .k = 2, .clock_every = 1, .deadline_ns = 11 };
    budget_search(f->ix, "kiwi", &o, &r);
    assert_true(r.timed_out);
    assert_true(r.bound);
    assert_int_equal(r.total, 10);
    assert_string_equal(r.ids, "b03 b00");
    assert_int_equal(r.clock_reads, 11);

    /* a deadline that has passed before the search starts: nothing looked at */
    o = (struct search_options){ .k = 2, .deadline_ns = 1 };
    budget_search(f->ix, "kiwi", &o, &r);
    assert_true(r.timed_out);
    assert_true(r.bound);
    assert_int_equal(r.total, 0);
    assert_int_equal(r.n_hits, 0);
    assert_int_equal(r.clock_reads, 1);

    /* the clock is read once, then every SEARCH_CLOCK_EVERY documents: with 30
     * documents only the first read happens, before the deadline */
    o = (struct search_options){ .k = 2, .deadline_ns = 2 };
    budget_search(f->ix, "kiwi", &o, &r);
    assert_false(r.timed_out);
    assert_false(r.bound);
    assert_int_equal(r.total, BUDGET_DOCS);
    assert_string_equal(r.ids, "b03 b25");
    assert_int_equal(r.clock_reads, 1);
}

/*
 * Queries that walk every document without a match, inside one next() of
 * their iterator: the budget is spent there too, not only per match.
 */
static void test_search_deadline_stops_scans_that_find_nothing(void **state)
{
    static const char *const queries[] = {
        "\"red apple\"",   /* a phrase: its terms everywhere, never in that order */
        "kiwi -red",      /* an AND whose negation rules every candidate out */
        "title:kiwi",     /* a title-only term found in bodies only */
        "fruit \"red apple\"",
    };
    struct fixture *f = *state;
    struct budget_run r;

    add_budget_docs(f->ix);
    for (size_t i = 0; i < sizeof queries / sizeof *queries; i++) {
        struct search_options o = { .k = 5 };
        budget_search(f->ix, queries[i], &o, &r);
        if (r.total || r.timed_out)
            fail_msg("\"%s\": want no match, got %llu (timed out %d)", queries[i],
                     (unsigned long long)r.total, r.timed_out);
        o = (struct search_options){ .k = 5, .clock_every = 1, .deadline_ns = 5 };
        budget_search(f->ix, queries[i], &o, &r);
        if (!r.timed_out || !r.bound || r.total || r.clock_reads != 5)
            fail_msg("\"%s\": want a time-out at the 5th read, got timed out %d, "
                     "%llu reads, total %llu", queries[i], r.timed_out,
                     (unsigned long long)r.clock_reads, (unsigned long long)r.total);
    }
}

/* ---- highlighting ---- */

/* Parses q and highlights text (NUL-terminated result, freed by the caller). */
static char *highlight(const char *q, const char *text, bool in_title)
{
    struct query *query = NULL;
    struct xerr err = { 0 };
    struct buf out;

    if (query_parse(q, strlen(q), TOKENIZE_DEFAULT, &query, &err) != XE_OK)
        fail_msg("query_parse \"%s\": %s", q, err.msg);
    buf_init(&out, OUT_MAX_BYTES);
    assert_int_equal(highlight_text(query, text, strlen(text), in_title, &out), XE_OK);
    buf_append_byte(&out, '\0');
    assert_int_equal(out.rc, XE_OK);
    query_free(query);
    size_t len;
    return (char *)buf_steal(&out, &len);
}

static char *snippet(const char *q, const char *text, size_t max_chars)
{
    struct query *query = NULL;
    struct xerr err = { 0 };
    struct buf out;
    size_t bad, len;

    if (query_parse(q, strlen(q), TOKENIZE_DEFAULT, &query, &err) != XE_OK)
        fail_msg("query_parse \"%s\": %s", q, err.msg);
    buf_init(&out, OUT_MAX_BYTES);
    assert_int_equal(snippet_make(query, text, strlen(text), max_chars, &out), XE_OK);
    if (!utf8_check((const char *)out.data, out.len, &bad))
        fail_msg("snippet of \"%s\" is not UTF-8 at byte %zu", q, bad);
    buf_append_byte(&out, '\0');
    assert_int_equal(out.rc, XE_OK);
    query_free(query);
    return (char *)buf_steal(&out, &len);
}

static const struct {
    const char *query, *text, *html;
    bool in_title;
} highlight_cases[] = {
    { "普惠化", "生成式AI的普惠化", "生成式AI的<em>普惠化</em>", false },
    /* two overlapping bigrams of separate leaves: one <em> */
    { "普惠 惠化", "实现普惠化目标", "实现<em>普惠化</em>目标", false },
    /* the phrase only where its bigrams stand in order, not its parts alone */
    { "普惠化", "惠化普惠 普惠化", "惠化普惠 <em>普惠化</em>", false },
    { "\"red apple\"", "apple red and red apple", "apple red and <em>red apple</em>", false },
    /* the document's own markup is escaped; matches inside it are still marked */
    { "script", "<script>alert(1)</script> & more",
      "&lt;<em>script</em>&gt;alert(1)&lt;/<em>script</em>&gt; &amp; more", false },
    { "bye", "say \"hi\" & 'bye' <b>", "say &quot;hi&quot; &amp; &#39;<em>bye</em>&#39; &lt;b&gt;",
      false },
    { "att", "<b>AT&T</b> att", "&lt;b&gt;AT&amp;T&lt;/b&gt; <em>att</em>", false },
    /* exact terms only; the original case stays */
    { "apple", "apples and apple pineapple", "apples and <em>apple</em> pineapple", false },
    { "apple", "Apple APPLE", "<em>Apple</em> <em>APPLE</em>", false },
    { "ai", "ＡＩ and AI", "<em>ＡＩ</em> and <em>AI</em>", false },
    /* negated leaves are not marked */
    { "apple -pear", "apple pear", "<em>apple</em> pear", false },
    /* title: leaves count in titles only */
    { "title:apple apple", "apple", "<em>apple</em>", false },
    { "title:apple", "apple", "<em>apple</em>", true },
    /* one CJK character, inside a run */
    { "斯", "马斯克", "马<em>斯</em>克", false },
    { "GPT-4", "GPT-4 and GPT 4 and GPT-5", "<em>GPT-4</em> and <em>GPT 4</em> and GPT-5", false },
    /* whole text, newlines kept */
    { "apple", "apple\n\nbanana", "<em>apple</em>\n\nbanana", false },
    /* nothing matches: the text, escaped */
    { "zzz", "say \"hi\" & 'bye' <b>", "say &quot;hi&quot; &amp; &#39;bye&#39; &lt;b&gt;", false },
    { "title:apple", "apple", "apple", false },
    { "zzz", "", "", false },
    { "普惠化", "惠化普惠", "惠化普惠", false },
    /* a CJK phrase does not match across a separator between two runs */
    { "普惠化", "普惠 惠化 普惠化", "普惠 惠化 <em>普惠化</em>", false },
    { "普惠化", "普惠，惠化", "普惠，惠化", false },
    { "中国人", "在中国，国人都知道", "在中国，国人都知道", false },
    { "中国人", "在中国人，国人", "在<em>中国人</em>，国人", false },
};

static void test_highlight_golden_strings(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof highlight_cases / sizeof *highlight_cases; i++) {
        char *got = highlight(highlight_cases[i].query, highlight_cases[i].text,
                              highlight_cases[i].in_title);
        if (strcmp(got, highlight_cases[i].html) != 0)
            fail_msg("row %zu \"%s\": want \"%s\", got \"%s\"", i, highlight_cases[i].query,
                     highlight_cases[i].html, got);
        free(got);
    }
}

static void test_snippet_short_text_is_whole_without_markers(void **state)
{
    char *got;

    (void)state;
    got = snippet("text", "short text", SNIPPET_CHARS);
    assert_string_equal(got, "short <em>text</em>");
    free(got);
    /* newlines and tabs print as one space */
    got = snippet("apple", "apple\n\n\tbanana", SNIPPET_CHARS);
    assert_string_equal(got, "<em>apple</em> banana");
    free(got);
    /* any run of whitespace, spaces included, prints as one space */
    got = snippet("apple", "apple \n banana", SNIPPET_CHARS);
    assert_string_equal(got, "<em>apple</em> banana");
    free(got);
    got = snippet("apple", "  apple  \t\r\n  banana   pie ", SNIPPET_CHARS);
    assert_string_equal(got, " <em>apple</em> banana pie ");
    free(got);
    /* nothing matches: the text as it is, escaped */
    got = snippet("zzz", "short text", SNIPPET_CHARS);
    assert_string_equal(got, "short text");
    free(got);
    got = snippet("zzz", "a <b> & c", SNIPPET_CHARS);
    assert_string_equal(got, "a &lt;b&gt; &amp; c");
    free(got);
    got = snippet("zzz", "", SNIPPET_CHARS);
    assert_string_equal(got, "");
    free(got);
}

static void test_snippet_without_match_is_the_start_of_the_text(void **state)
{
    struct buf text, want;
    char *got;

    (void)state;
    buf_init(&text, 4096);
    buf_init(&want, 4096);
    for (int i = 0; i < 200; i++)
        buf_append_str(&text, "字");
    buf_append_byte(&text, '\0');
    for (int i = 0; i < 10; i++)
        buf_append_str(&want, "字");
    buf_append_str(&want, "…");
    buf_append_byte(&want, '\0');
    got = snippet("zzz", (const char *)text.data, 10);
    assert_string_equal(got, (const char *)want.data);
    free(got);
    buf_fini(&want);

    /* a title that matches nothing, longer than max_chars: its first max_chars */
    static const char title[] = "亚马逊云科技切入生成式AI镜鉴：降低基础大模型使用门槛";
    got = snippet("Bedrock 普惠化", title, 8);
    assert_string_equal(got, "亚马逊云科技切入…");
    free(got);
    got = snippet("Bedrock 普惠化", title, SNIPPET_CHARS);
    assert_string_equal(got, title);
    free(got);

    /* any length: the first max_chars code points, then "…" when the text goes on */
    static const char mixed[] = "ab é 中文 😀 xy 𠀀 end";
    size_t n = utf8_count_chars(mixed, strlen(mixed));
    for (size_t max = 1; max <= n + 1; max++) {
        char expect[64];
        size_t cut = 0;
        for (size_t chars = 0; mixed[cut] && chars < max; chars++)
            do
                cut++;
            while (((unsigned char)mixed[cut] & 0xC0) == 0x80);
        snprintf(expect, sizeof expect, "%.*s%s", (int)cut, mixed, max < n ? "…" : "");
        got = snippet("zzz", mixed, max);
        if (strcmp(got, expect) != 0)
            fail_msg("max_chars %zu: want \"%s\", got \"%s\"", max, expect, got);
        free(got);
    }
    buf_fini(&text);
}

static void test_snippet_cuts_around_match_with_markers(void **state)
{
    struct buf text;
    char *got;

    (void)state;
    /* 50 x, " the 普惠化 of ", 50 y: the match at code points 55..58 */
    buf_init(&text, 4096);
    for (int i = 0; i < 50; i++)
        buf_append_byte(&text, 'x');
    buf_append_str(&text, " the 普惠化 of ");
    for (int i = 0; i < 50; i++)
        buf_append_byte(&text, 'y');
    buf_append_byte(&text, '\0');
    /* 20 code points from 4 before the match */
    got = snippet("普惠化", (const char *)text.data, 20);
    assert_string_equal(got, "…the <em>普惠化</em> of yyyyyyyyy…");
    free(got);
    buf_fini(&text);
}

static void test_snippet_match_at_end_uses_room_before(void **state)
{
    struct buf text;
    char *got;

    (void)state;
    buf_init(&text, 4096);
    for (int i = 0; i < 100; i++)
        buf_append_byte(&text, 'x');
    buf_append_str(&text, " the apple");
    buf_append_byte(&text, '\0');
    got = snippet("apple", (const char *)text.data, 20);
    assert_string_equal(got, "…xxxxxxxxxx the <em>apple</em>");
    free(got);
    buf_fini(&text);
}

static void test_snippet_far_apart_terms_make_two_fragments(void **state)
{
    struct buf text;
    char *got;

    (void)state;
    buf_init(&text, 4096);
    buf_append_str(&text, "apple ");
    for (int i = 0; i < 300; i++)
        buf_append_byte(&text, i % 50 == 25 ? ' ' : 'x');
    buf_append_str(&text, " banana and the end of the text is here");
    buf_append_byte(&text, '\0');
    got = snippet("apple banana", (const char *)text.data, 40);
    /* 20 code points each: from the text's start, and from 2 before "banana" */
    assert_string_equal(got, "<em>apple</em> xxxxxxxxxxxxxx…x <em>banana</em> and the end…");
    free(got);
    buf_fini(&text);
}

/* Drops <em>, </em> and "…" and counts what is left in code points. */
static size_t visible_chars(const char *html)
{
    size_t n = 0;

    for (const char *p = html; *p;) {
        if (!strncmp(p, "<em>", 4)) {
            p += 4;
        } else if (!strncmp(p, "</em>", 5)) {
            p += 5;
        } else if (!strncmp(p, "…", strlen("…"))) {
            p += strlen("…");
        } else {
            n += ((unsigned char)*p & 0xC0) != 0x80;
            p++;
        }
    }
    return n;
}

static void test_snippet_never_cuts_utf8_chars(void **state)
{
    /* mixed widths: 1, 2, 3 and 4 byte characters, and a match in the middle */
    static const char text[] =
        "ab é ñ 中文字符 😀😀 漢字 普惠化 more words ü 𠀀𠀁 字字字字 end é 𝄞 tail 尾巴";
    size_t text_chars = utf8_count_chars(text, strlen(text));

    (void)state;
    /* from 2: with max_chars 1, shorter than the match, the snippet is empty today
     * (both fragments get 1 / 2 = 0 characters); see the report */
    for (size_t max = 2; max <= text_chars + 2; max++) {
        char *got = snippet("普惠化", text, max);
        assert_true(visible_chars(got) <= max);
        if (max >= 3)
            assert_non_null(strstr(got, "<em>普惠化</em>"));
        if (max >= text_chars)
            assert_null(strstr(got, "…"));
        else
            assert_non_null(strstr(got, "…"));
        free(got);
    }
}


/* A text of `bytes` bytes of filler (3-byte CJK characters and ASCII punctuation). */
static void big_filler(struct buf *text, size_t bytes)
{
    static const char *const pieces[] = { "天", "地", "玄", "黃", "，", "宇", "宙", ". " };
    size_t start = text->len;

    for (size_t i = 0; text->len - start + 3 <= bytes; i++)
        buf_append_str(text, pieces[i % (sizeof pieces / sizeof *pieces)]);
    while (text->len - start < bytes)
        buf_append_byte(text, ' ');
}

static void test_snippet_work_is_bounded_in_a_huge_text(void **state)
{
    struct buf text;
    char *got;

    (void)state;
    /* 4 MiB with the phrase at both ends: only the first SNIPPET_SCAN_BYTES are read */
    buf_init(&text, 8u << 20);
    buf_append_str(&text, "普惠化 ");
    big_filler(&text, 4u << 20);
    buf_append_str(&text, " 普惠化");
    buf_append_byte(&text, '\0');
    assert_int_equal(text.rc, XE_OK);
    got = snippet("普惠化", (const char *)text.data, SNIPPET_CHARS);
    size_t scanned = snippet_last_scan_bytes();
    if (scanned < SNIPPET_SCAN_BYTES || scanned > SNIPPET_SCAN_BYTES + TOKEN_MAX_BYTES + 4)
        fail_msg("tokenized %zu bytes of %zu; the bound is %u", scanned, text.len - 1,
                 SNIPPET_SCAN_BYTES);
    assert_int_equal(strncmp(got, "<em>普惠化</em> 天地玄黃", strlen("<em>普惠化</em> 天地玄黃")),
                     0);
    assert_int_equal(visible_chars(got), SNIPPET_CHARS);
    assert_null(strstr(got + 1, "<em>"));
    assert_string_equal(got + strlen(got) - strlen("…"), "…");
    free(got);

    /* a title as long (but for OUT_MAX_BYTES): all of it comes back, escaped, and
     * the match past the bound unmarked */
    buf_reset(&text);
    buf_append_str(&text, "普惠化 ");
    big_filler(&text, OUT_MAX_BYTES / 2);
    buf_append_str(&text, " 普惠化 <b>");
    buf_append_byte(&text, '\0');
    char *html = highlight("普惠化", (const char *)text.data, true);
    scanned = snippet_last_scan_bytes();
    assert_true(scanned <= SNIPPET_SCAN_BYTES + TOKEN_MAX_BYTES + 4);
    assert_int_equal(strlen(html), text.len - 1 + strlen("<em></em>") + strlen("&lt;&gt;") -
                                       strlen("<>"));
    assert_int_equal(strncmp(html, "<em>普惠化</em> ", strlen("<em>普惠化</em> ")), 0);
    assert_string_equal(html + strlen(html) - strlen(" 普惠化 &lt;b&gt;"), " 普惠化 &lt;b&gt;");
    free(html);

    /* a short text is read whole */
    got = snippet("apple", "an apple a day", SNIPPET_CHARS);
    assert_int_equal(snippet_last_scan_bytes(), strlen("an apple a day"));
    free(got);
    buf_fini(&text);
}

static void test_snippet_match_near_or_past_the_bound(void **state)
{
    struct buf text;
    char *got;

    (void)state;
    /* a match only past the bound: the text's start, as when nothing matches */
    buf_init(&text, 1u << 20);
    big_filler(&text, SNIPPET_SCAN_BYTES + 1000);
    buf_append_str(&text, " apple tail");
    buf_append_byte(&text, '\0');
    got = snippet("apple", (const char *)text.data, 8);
    assert_string_equal(got, "天地玄黃，宇宙.…");
    free(got);

    /* a word that starts 2 bytes before the bound and crosses it is matched whole,
     * with its context after the bound */
    buf_reset(&text);
    big_filler(&text, SNIPPET_SCAN_BYTES - 3);
    buf_append_str(&text, " apple pie and more");
    buf_append_byte(&text, '\0');
    got = snippet("apple", (const char *)text.data, 40);
    assert_string_equal(got + strlen(got) - strlen("<em>apple</em> pie and more"),
                        "<em>apple</em> pie and more");
    free(got);

    /* a phrase of bigrams cut by the bound is not marked, and nothing breaks */
    buf_reset(&text);
    big_filler(&text, SNIPPET_SCAN_BYTES - 3);
    buf_append_str(&text, "普惠化");
    buf_append_byte(&text, '\0');
    got = snippet("普惠化", (const char *)text.data, 8);
    assert_string_equal(got, "天地玄黃，宇宙.…");
    free(got);
    buf_fini(&text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qparse_trees_match_table),
        cmocka_unit_test(test_qparse_phrase_offsets_count_from_zero),
        cmocka_unit_test(test_qparse_single_cjk_char_is_hidden_term),
        cmocka_unit_test(test_qparse_caps_terms_at_query_max_terms),
        cmocka_unit_test(test_qparse_caps_bytes_at_query_max_bytes),
        cmocka_unit_test(test_qparse_nul_byte_is_input_error),
        cmocka_unit_test(test_qparse_positive_leaves_skip_negations),
        cmocka_unit_test_setup_teardown(test_search_matches_and_or_not_phrase_title,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_search_title_match_ranks_first, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_search_proximity_ranks_nearby_words_first,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_search_recency_boosts_fresh_documents, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_search_folds_variants_and_prefers_the_typed_form,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_search_pruning_finds_the_same_top_k, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_search_pruning_with_one_block_lists, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_search_or_pruning_finds_the_same_top_k,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_search_ties_break_by_id_ascending, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_search_total_counts_past_k, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_search_single_cjk_char_finds_it_inside_runs,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_search_spans_two_segments, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_search_scores_use_whole_snapshot_stats,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_search_repeated_id_finds_only_newest_version,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_search_repeated_load_counts_each_id_once,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_search_cjk_phrase_stops_at_separators,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_search_deadline_stops_and_answers_what_it_found,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_search_deadline_stops_scans_that_find_nothing,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_search_phrase_with_separator_stays_in_one_field,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test(test_highlight_golden_strings),
        cmocka_unit_test(test_snippet_short_text_is_whole_without_markers),
        cmocka_unit_test(test_snippet_without_match_is_the_start_of_the_text),
        cmocka_unit_test(test_snippet_cuts_around_match_with_markers),
        cmocka_unit_test(test_snippet_match_at_end_uses_room_before),
        cmocka_unit_test(test_snippet_far_apart_terms_make_two_fragments),
        cmocka_unit_test(test_snippet_never_cuts_utf8_chars),
        cmocka_unit_test(test_snippet_work_is_bounded_in_a_huge_text),
        cmocka_unit_test(test_snippet_match_near_or_past_the_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
