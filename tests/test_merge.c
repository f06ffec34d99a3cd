/*
 * Tests of index/write/merge.h: three small segments (two documents per postings
 * block, so lists cross blocks), some of their documents deleted, merged into
 * one. The merge must hold exactly the live documents in order, findable by
 * id, with every term's postings, frequencies and positions equal to those of
 * a segment freshly built from the same live documents, and the stored records
 * byte for byte; terms only deleted documents had must be gone; the maps say
 * where each document went. Also: everything deleted, one segment alone.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/base/buf.h"
#include "index/format/deletions.h"
#include "index/format/doc.h"
#include "index/format/docstore.h"
#include "index/base/error.h"
#include "index/write/memindex.h"
#include "index/write/merge.h"
#include "index/format/postings.h"
#include "index/format/segment.h"
#include "tests/testutil.h"

#define TEST_BLOCK_DOCS 2
#define PATH_BYTES 4096
#define SCRATCH_MAX_BYTES (16u << 20)
#define POSITIONS_MAX 4096 /* positions of one term in one test document, at most */
#define N_SEGS 3
#define DROPPED UINT32_MAX

/* ---- documents ---- */

struct tdoc {
    const char *id, *title, *body, *source, *tag1, *tag2;
    int64_t date_s;
};

/*
 * Shared words (新闻, 经济, market, 增长) appear in all three segments, some
 * twice in a document and in several fields; "zzyzx" and "qqxy" only in
 * documents that get deleted; n02 is in segment 0 and again, newer, in 2.
 */
static const struct tdoc DOCS[] = {
    /* segment 0 */
    { "n00", "经济新闻", "经济增长 market market 新闻", "新华社", "经济", NULL, 1682726400 },
    { "n01", "zzyzx 消息", "zzyzx 只在被删文档", NULL, NULL, NULL, DOC_DATE_NONE },
    { "n02", "旧版本", "旧的正文 market", "人民网", NULL, NULL, 1600000000 },
    { "n03", "market 报道", "增长 放缓 经济 经济", NULL, "财经", "市场", 1682812800 },
    { "n04", "新闻", "新闻 新闻 新闻 联播", "央视", NULL, NULL, DOC_DATE_NONE },
    /* segment 1 */
    { "n05", "删掉的", "经济 market", NULL, NULL, NULL, 1 },
    { "n06", "普惠化", "普惠化 金融 增长", "新华社", "金融", NULL, 1682899200 },
    { "n07", "GPT-4 发布", "gpt 4 model market 新闻", NULL, "科技", "AI", 1682985600 },
    { "n08", NULL, "仅有正文 经济 新闻", NULL, NULL, NULL, DOC_DATE_NONE },
    { "n09", "qqxy", "qqxy 经济", NULL, NULL, NULL, 2 },
    /* segment 2 */
    { "n10", "增长", "经济 增长 增长 market", "路透", NULL, NULL, 1683072000 },
    { "n11", "新闻 联播", "联播 新闻", NULL, "新闻", NULL, 1683158400 },
    { "n12", "market", "market market market", "Bloomberg", NULL, NULL, DOC_DATE_NONE },
    { "n02", "新版本", "新的正文 经济 新闻", "人民网", "更新", NULL, 1683244800 },
};

/* Document index ranges of the three segments in DOCS. */
static const size_t SEG_FIRST[N_SEGS + 1] = { 0, 5, 10, 14 };
/* Deleted docids per segment, DROPPED-terminated. */
static const uint32_t SEG_DELETED[N_SEGS][3] = { { 1, 2, DROPPED }, { 0, 4, DROPPED },
                                                 { DROPPED } };
/* Where each document lands in the merge. */
static const uint32_t WANT_MAP[N_SEGS][5] = { { 0, DROPPED, DROPPED, 1, 2 },
                                              { DROPPED, 3, 4, 5, DROPPED },
                                              { 6, 7, 8, 9 } };
#define N_LIVE 10

static struct text txt(const char *s)
{
    return (struct text){ .p = s, .len = s ? strlen(s) : 0 };
}

static void fill(const struct tdoc *t, struct doc_fields *d, char *json, size_t json_cap)
{
    memset(d, 0, sizeof *d);
    d->id = txt(t->id);
    d->title = txt(t->title);
    d->body = txt(t->body);
    d->source = txt(t->source);
    if (t->tag1)
        d->tags[d->n_tags++] = txt(t->tag1);
    if (t->tag2)
        d->tags[d->n_tags++] = txt(t->tag2);
    d->date_s = t->date_s;
    snprintf(json, json_cap, "{\"id\":\"%s\",\"title\":\"%s\"}", t->id,
             t->title ? t->title : "");
    d->json = txt(json);
}

/* Writes docs[0..n) with memindex (small blocks) as a segment at path; opens it. */
static struct segment *build(const char *path, const struct tdoc *const *docs, size_t n)
{
    struct xerr err = { 0 };
    struct memindex *mi = memindex_new(TOKENIZE_DEFAULT);
    struct segment *seg = NULL;

    assert_non_null(mi);
    memindex_set_block_docs(mi, TEST_BLOCK_DOCS);
    for (size_t i = 0; i < n; i++) {
        struct doc_fields d;
        char json[256];
        fill(docs[i], &d, json, sizeof json);
        assert_ok(memindex_add(mi, &d, &err), &err);
    }
    assert_ok(memindex_write(mi, path, true, &err), &err);
    memindex_free(mi);
    assert_ok(segment_open(path, &seg, &err), &err);
    return seg;
}

static struct segment *build_range(const char *dir, const char *name, size_t from, size_t to)
{
    char path[PATH_BYTES];
    const struct tdoc *docs[16];

    assert_true(to - from <= sizeof docs / sizeof *docs);
    for (size_t i = from; i < to; i++)
        docs[i - from] = &DOCS[i];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return build(path, docs, to - from);
}

static struct segment *merge_open(const char *dir, const char *name, struct segment *const *segs,
                                  struct deletions *const *dels, uint32_t n, uint32_t **maps)
{
    char path[PATH_BYTES];
    struct xerr err = { 0 };
    struct segment *seg = NULL;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_ok(merge_segments(segs, dels, n, path, true, maps, NULL, &err), &err);
    assert_ok(segment_open(path, &seg, &err), &err);
    return seg;
}

/* ---- comparing segments ---- */

static void assert_lists_equal(const struct segment_term *a, const struct segment_term *b,
                               uint32_t n_docs)
{
    static uint32_t pa[POSITIONS_MAX], pb[POSITIONS_MAX];
    struct postings_cursor ca, cb;
    uint32_t docs = 0;

    postings_cursor_init(&ca, a->postings, a->postings_len, a->has_positions, n_docs);
    postings_cursor_init(&cb, b->postings, b->postings_len, b->has_positions, n_docs);
    assert_int_equal(postings_cursor_n_docs(&ca), postings_cursor_n_docs(&cb));
    for (uint32_t guard = 0; guard <= n_docs; guard++) {
        bool more_a = postings_next(&ca), more_b = postings_next(&cb);
        assert_int_equal(more_a, more_b);
        if (!more_a)
            break;
        docs++;
        assert_int_equal(ca.docid, cb.docid);
        assert_memory_equal(ca.tf, cb.tf, sizeof ca.tf);
        if (a->has_positions) {
            int na = postings_positions(&ca, pa, POSITIONS_MAX);
            int nb = postings_positions(&cb, pb, POSITIONS_MAX);
            assert_true(na > 0);
            assert_int_equal(na, nb);
            assert_int_equal(na, postings_tf_total(&ca));
            assert_memory_equal(pa, pb, (size_t)na * sizeof *pa);
        }
    }
    assert_false(ca.corrupt);
    assert_false(cb.corrupt);
    assert_int_equal(ca.docid, DOCID_END);
    assert_int_equal(docs, a->df);
}

/* got must index exactly what want (freshly built) does, term by term and doc by doc. */
static void assert_segments_equal(const struct segment *got, const struct segment *want)
{
    struct xerr err = { 0 };
    struct buf sa, sb;
    uint32_t n_docs = segment_n_docs(want);

    assert_int_equal(segment_n_docs(got), n_docs);
    assert_int_equal(segment_n_terms(got), segment_n_terms(want));
    for (int f = 0; f < N_FIELDS; f++)
        assert_int_equal(segment_field_tokens(got, f), segment_field_tokens(want, f));

    buf_init(&sa, SCRATCH_MAX_BYTES);
    buf_init(&sb, SCRATCH_MAX_BYTES);
    for (uint32_t d = 0; d < n_docs; d++) {
        struct segment_doc a, b;
        const unsigned char *ra, *rb;
        size_t la, lb;
        test_segment_doc(got, d, &a);
        test_segment_doc(want, d, &b);
        assert_int_equal(a.id_len, b.id_len);
        assert_memory_equal(a.id, b.id, a.id_len);
        assert_memory_equal(a.field_tokens, b.field_tokens, sizeof a.field_tokens);
        assert_int_equal(a.date_s, b.date_s);
        assert_int_equal(test_find_id(got, a.id, a.id_len), d);
        assert_ok(segment_record(got, d, &sa, &ra, &la, &err), &err);
        assert_ok(segment_record(want, d, &sb, &rb, &lb, &err), &err);
        assert_int_equal(la, lb);
        assert_memory_equal(ra, rb, la);
    }
    buf_fini(&sa);
    buf_fini(&sb);

    struct segment_term_iter ia, ib;
    uint32_t terms = 0;
    segment_terms_from(got, "", 0, &ia);
    segment_terms_from(want, "", 0, &ib);
    for (uint32_t guard = 0; guard <= segment_n_terms(want); guard++) {
        struct segment_term ta, tb;
        bool more_a = segment_terms_next(&ia, &ta), more_b = segment_terms_next(&ib, &tb);
        assert_int_equal(more_a, more_b);
        if (!more_a)
            break;
        terms++;
        assert_int_equal(ia.term_len, ib.term_len);
        assert_memory_equal(ia.term, ib.term, ia.term_len);
        assert_int_equal(ta.df, tb.df);
        assert_true(ta.df > 0);
        assert_int_equal(ta.has_positions, tb.has_positions);
        assert_lists_equal(&ta, &tb, n_docs);
    }
    assert_int_equal(terms, segment_n_terms(want));
}

/* ---- fixture ---- */

struct fixture {
    char *dir;
    struct segment *segs[N_SEGS];
    struct deletions *dels[N_SEGS];
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);

    if (!fx || !(fx->dir = test_mkdtemp())) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    for (int i = 0; i < N_SEGS; i++) {
        segment_close(fx->segs[i]);
        deletions_unref(fx->dels[i]);
    }
    test_rmtree(fx->dir);
    free(fx->dir);
    free(fx);
    return 0;
}

/* The three segments of DOCS, with the deletions of SEG_DELETED (none: NULL). */
static void make_inputs(struct fixture *fx)
{
    static const char *const names[N_SEGS] = { "seg-00000001.xseg", "seg-00000002.xseg",
                                               "seg-00000003.xseg" };
    for (int i = 0; i < N_SEGS; i++) {
        fx->segs[i] = build_range(fx->dir, names[i], SEG_FIRST[i], SEG_FIRST[i + 1]);
        assert_int_equal(segment_n_docs(fx->segs[i]), SEG_FIRST[i + 1] - SEG_FIRST[i]);
        if (SEG_DELETED[i][0] == DROPPED)
            continue;
        fx->dels[i] = deletions_copy(NULL, segment_n_docs(fx->segs[i]));
        assert_non_null(fx->dels[i]);
        for (int k = 0; SEG_DELETED[i][k] != DROPPED; k++)
            assert_true(deletions_add(fx->dels[i], SEG_DELETED[i][k]));
    }
}

/* A fresh segment of the live documents, in merge order. */
static struct segment *build_reference(struct fixture *fx)
{
    const struct tdoc *live[16];
    size_t n = 0;
    char path[PATH_BYTES];

    for (int i = 0; i < N_SEGS; i++)
        for (size_t d = SEG_FIRST[i]; d < SEG_FIRST[i + 1]; d++)
            if (!deletions_has(fx->dels[i], (uint32_t)(d - SEG_FIRST[i])))
                live[n++] = &DOCS[d];
    assert_int_equal(n, N_LIVE);
    snprintf(path, sizeof path, "%s/reference.xseg", fx->dir);
    return build(path, live, n);
}

/* ---- tests ---- */

static void test_merge_keeps_exactly_live_docs_in_order(void **state)
{
    struct fixture *fx = *state;
    static const char *const want_ids[N_LIVE] = { "n00", "n03", "n04", "n06", "n07",
                                                  "n08", "n10", "n11", "n12", "n02" };
    struct xerr err = { 0 };
    struct buf scratch;

    make_inputs(fx);
    struct segment *merged = merge_open(fx->dir, "merged.xseg", fx->segs, fx->dels, N_SEGS,
                                        NULL);
    assert_int_equal(segment_n_docs(merged), N_LIVE);
    buf_init(&scratch, SCRATCH_MAX_BYTES);
    for (uint32_t d = 0; d < N_LIVE; d++) {
        struct segment_doc e;
        struct doc_fields f;
        test_segment_doc(merged, d, &e);
        assert_int_equal(e.id_len, strlen(want_ids[d]));
        assert_memory_equal(e.id, want_ids[d], e.id_len);
        assert_int_equal(test_find_id(merged, want_ids[d], strlen(want_ids[d])), d);
        assert_ok(segment_load(merged, d, &scratch, &f, &err), &err);
        assert_int_equal(f.id.len, strlen(want_ids[d]));
        assert_memory_equal(f.id.p, want_ids[d], f.id.len);
    }
    /* n02 is the newer version, from segment 2 */
    struct doc_fields f;
    assert_ok(segment_load(merged, 9, &scratch, &f, &err), &err);
    assert_int_equal(f.title.len, strlen("新版本"));
    assert_memory_equal(f.title.p, "新版本", f.title.len);
    struct segment_doc e;
    test_segment_doc(merged, 9, &e);
    assert_int_equal(e.date_s, 1683244800);
    /* deleted ids are gone */
    assert_int_equal(test_find_id(merged, "n01", 3), DOCID_END);
    assert_int_equal(test_find_id(merged, "n05", 3), DOCID_END);
    assert_int_equal(test_find_id(merged, "n09", 3), DOCID_END);
    buf_fini(&scratch);
    segment_close(merged);
}

static void test_merge_postings_equal_fresh_build_of_live_docs(void **state)
{
    struct fixture *fx = *state;

    make_inputs(fx);
    struct segment *merged = merge_open(fx->dir, "merged.xseg", fx->segs, fx->dels, N_SEGS,
                                        NULL);
    struct segment *ref = build_reference(fx);
    assert_segments_equal(merged, ref);
    segment_close(ref);
    segment_close(merged);
}

static void test_merge_drops_terms_only_deleted_docs_had(void **state)
{
    struct fixture *fx = *state;
    struct segment_term t;

    make_inputs(fx);
    assert_int_equal(segment_lookup(fx->segs[0], "zzyzx", 5, &t, NULL), XE_OK);
    assert_int_equal(segment_lookup(fx->segs[1], "qqxy", 4, &t, NULL), XE_OK);
    struct segment *merged = merge_open(fx->dir, "merged.xseg", fx->segs, fx->dels, N_SEGS,
                                        NULL);
    assert_int_equal(segment_lookup(merged, "zzyzx", 5, &t, NULL), XE_NOTFOUND);
    assert_int_equal(segment_lookup(merged, "qqxy", 4, &t, NULL), XE_NOTFOUND);
    /* a shared term has every live document that holds it */
    assert_int_equal(segment_lookup(merged, "market", 6, &t, NULL), XE_OK);
    assert_int_equal(t.df, 5); /* n00 n03 n07 n10 n12; not n02 (old) nor n05 (deleted) */
    segment_close(merged);
}

static void test_merge_returns_maps_when_asked(void **state)
{
    struct fixture *fx = *state;
    uint32_t *maps[N_SEGS] = { NULL };

    make_inputs(fx);
    struct segment *merged = merge_open(fx->dir, "merged.xseg", fx->segs, fx->dels, N_SEGS,
                                        maps);
    for (int i = 0; i < N_SEGS; i++) {
        assert_non_null(maps[i]);
        for (uint32_t d = 0; d < segment_n_docs(fx->segs[i]); d++) {
            assert_int_equal(maps[i][d], WANT_MAP[i][d]);
            if (maps[i][d] == DROPPED)
                continue;
            /* the same document on both sides */
            struct segment_doc a, b;
            test_segment_doc(fx->segs[i], d, &a);
            test_segment_doc(merged, maps[i][d], &b);
            assert_int_equal(a.id_len, b.id_len);
            assert_memory_equal(a.id, b.id, a.id_len);
        }
        free(maps[i]);
    }
    segment_close(merged);
}

static void test_merge_without_deletions_of_one_segment_copies_it(void **state)
{
    struct fixture *fx = *state;
    struct deletions *none[1] = { NULL };
    uint32_t *maps[1] = { NULL };

    make_inputs(fx);
    struct segment *merged = merge_open(fx->dir, "merged.xseg", &fx->segs[2], none, 1, maps);
    assert_segments_equal(merged, fx->segs[2]);
    for (uint32_t d = 0; d < segment_n_docs(fx->segs[2]); d++)
        assert_int_equal(maps[0][d], d);
    free(maps[0]);
    segment_close(merged);
}

/* Deleting every document of the inputs (a tier of segments all replaced) leaves an empty one. */
static void test_merge_of_only_deleted_docs_is_empty_segment(void **state)
{
    struct fixture *fx = *state;
    struct deletions *all[2];
    uint32_t *maps[2] = { NULL };

    make_inputs(fx);
    for (int i = 0; i < 2; i++) {
        all[i] = deletions_copy(NULL, segment_n_docs(fx->segs[i]));
        assert_non_null(all[i]);
        for (uint32_t d = 0; d < segment_n_docs(fx->segs[i]); d++)
            assert_true(deletions_add(all[i], d));
    }
    struct segment *merged = merge_open(fx->dir, "merged.xseg", fx->segs, all, 2, maps);
    assert_int_equal(segment_n_docs(merged), 0);
    assert_int_equal(segment_n_terms(merged), 0);
    for (int f = 0; f < N_FIELDS; f++)
        assert_int_equal(segment_field_tokens(merged, f), 0);
    assert_int_equal(test_find_id(merged, "n00", 3), DOCID_END);
    struct segment_term t;
    assert_int_equal(segment_lookup(merged, "market", 6, &t, NULL), XE_NOTFOUND);
    for (int i = 0; i < 2; i++) {
        for (uint32_t d = 0; d < segment_n_docs(fx->segs[i]); d++)
            assert_int_equal(maps[i][d], DROPPED);
        free(maps[i]);
        deletions_unref(all[i]);
    }
    segment_close(merged);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_merge_keeps_exactly_live_docs_in_order),
        T(test_merge_postings_equal_fresh_build_of_live_docs),
        T(test_merge_drops_terms_only_deleted_docs_had),
        T(test_merge_returns_maps_when_asked),
        T(test_merge_without_deletions_of_one_segment_copies_it),
        T(test_merge_of_only_deleted_docs_is_empty_segment),
    };
#undef T
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    docstore_thread_cleanup(); /* this thread's reads */
    return failed;
}
