/*
 * Tests of index/postings.h: writer -> cursor round trips with small blocks so
 * that a few documents cross block boundaries, postings_advance() to every
 * kind of target, lazily skipped positions, lists without positions, and
 * damage: every truncation and every byte flip must end the list, set
 * `corrupt`, or give increasing docids below max_docid, never a crash or a
 * read out of bounds (each list is an exact-size heap copy, so ASan sees it).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "index/buf.h"
#include "index/bytes.h"
#include "index/doc.h"
#include "index/limits.h"
#include "index/postings.h"

#define PDOC_MAX_POSITIONS 16
#define LIST_MAX_BYTES (1u << 24)
#define POS_CAP 64 /* room passed to postings_positions() */

/* One document of a list as the test means it. */
struct pdoc {
    uint32_t docid;
    uint32_t tf[N_FIELDS];
    uint32_t n_positions;
    uint32_t positions[PDOC_MAX_POSITIONS];
};

struct plist {
    struct pdoc *docs;
    size_t n;
    unsigned char *bytes; /* exact-size copy of the encoding */
    size_t len;
    uint32_t block_docs;
    bool has_positions;
};

static uint32_t rng_next(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

/*
 * Makes n documents from seed: gaps of 1 to 3 with some long jumps, half of
 * them the "simple" tf (body 1), the rest mixed fields, positions with some
 * large values so varints take several bytes.
 */
static struct pdoc *make_docs(size_t n, uint32_t first_docid, uint32_t seed)
{
    struct pdoc *docs = calloc(n ? n : 1, sizeof *docs);
    uint32_t r = seed;
    uint32_t docid = first_docid;

    assert_non_null(docs);
    for (size_t i = 0; i < n; i++) {
        struct pdoc *d = &docs[i];
        if (i)
            docid += 1 + (rng_next(&r) % 5 == 0 ? rng_next(&r) % 300 : rng_next(&r) % 3);
        d->docid = docid;
        if (rng_next(&r) % 2) {
            d->tf[FIELD_BODY] = 1;
        } else {
            do {
                d->tf[FIELD_TITLE] = rng_next(&r) % 3;
                d->tf[FIELD_BODY] = rng_next(&r) % 6;
                d->tf[FIELD_META] = rng_next(&r) % 3;
            } while (d->tf[FIELD_TITLE] + d->tf[FIELD_BODY] + d->tf[FIELD_META] == 0);
        }
        d->n_positions = d->tf[FIELD_TITLE] + d->tf[FIELD_BODY] + d->tf[FIELD_META];
        uint32_t pos = rng_next(&r) % 4;
        for (uint32_t k = 0; k < d->n_positions; k++) {
            d->positions[k] = pos;
            pos += 1 + (rng_next(&r) % 7 == 0 ? 100000 + rng_next(&r) % 100000 : rng_next(&r) % 9);
        }
    }
    return docs;
}

static void plist_encode(struct plist *l, uint32_t block_docs, bool has_positions)
{
    struct postings_writer w;
    struct buf out;

    postings_writer_init(&w, block_docs);
    postings_writer_begin(&w, has_positions);
    for (size_t i = 0; i < l->n; i++) {
        const struct pdoc *d = &l->docs[i];
        assert_int_equal(postings_writer_add(&w, d->docid, d->tf, d->positions, d->n_positions),
                         0);
    }
    buf_init(&out, LIST_MAX_BYTES);
    assert_int_equal(postings_writer_finish(&w, &out), 0);
    postings_writer_fini(&w);
    l->len = out.len;
    l->bytes = malloc(out.len ? out.len : 1);
    assert_non_null(l->bytes);
    memcpy(l->bytes, out.data, out.len);
    buf_fini(&out);
    l->block_docs = block_docs;
    l->has_positions = has_positions;
}

static struct plist plist_make(size_t n, uint32_t first_docid, uint32_t seed, uint32_t block_docs,
                               bool has_positions)
{
    struct plist l = { .docs = make_docs(n, first_docid, seed), .n = n };

    plist_encode(&l, block_docs, has_positions);
    return l;
}

static void plist_free(struct plist *l)
{
    free(l->docs);
    free(l->bytes);
}

static uint32_t plist_max_docid(const struct plist *l)
{
    return l->n ? l->docs[l->n - 1].docid + 1 : 1;
}

static void cursor_open(struct postings_cursor *c, const struct plist *l)
{
    postings_cursor_init(c, l->bytes, l->len, l->has_positions, plist_max_docid(l));
    assert_false(c->corrupt);
    assert_int_equal(c->docid, DOCID_END);
}

/* The cursor is on d: docid and tf per field. */
static void expect_doc(const struct postings_cursor *c, const struct pdoc *d)
{
    assert_false(c->corrupt);
    assert_int_equal(c->docid, d->docid);
    assert_int_equal(c->tf[FIELD_TITLE], d->tf[FIELD_TITLE]);
    assert_int_equal(c->tf[FIELD_BODY], d->tf[FIELD_BODY]);
    assert_int_equal(c->tf[FIELD_META], d->tf[FIELD_META]);
    assert_int_equal(postings_tf_total(c), d->n_positions);
}

static void expect_positions(struct postings_cursor *c, const struct pdoc *d)
{
    uint32_t got[POS_CAP];

    assert_int_equal(postings_positions(c, got, POS_CAP), (int)d->n_positions);
    assert_memory_equal(got, d->positions, d->n_positions * sizeof got[0]);
    assert_false(c->corrupt);
}

static void expect_end(struct postings_cursor *c)
{
    assert_false(postings_next(c));
    assert_int_equal(c->docid, DOCID_END);
    assert_false(c->corrupt);
    assert_false(postings_next(c)); /* stays at the end */
    assert_int_equal(c->docid, DOCID_END);
    assert_false(postings_advance(c, 0));
    assert_int_equal(c->docid, DOCID_END);
    assert_false(c->corrupt);
}

/* Index of the first document >= target, or l->n. */
static size_t first_at_or_after(const struct plist *l, uint32_t target)
{
    size_t i = 0;

    while (i < l->n && l->docs[i].docid < target)
        i++;
    return i;
}

static const uint32_t block_sizes[] = { 1, 2, 3, 5, POSTINGS_BLOCK_DOCS };
static const size_t list_sizes[] = { 1, 2, 3, 4, 5, 6, 7, 10, 31, 300 };

#define N_BLOCK_SIZES (sizeof block_sizes / sizeof block_sizes[0])
#define N_LIST_SIZES (sizeof list_sizes / sizeof list_sizes[0])

/* ---- round trips ---- */

static void test_postings_next_round_trips_across_blocks(void **state)
{
    (void)state;
    for (size_t b = 0; b < N_BLOCK_SIZES; b++) {
        for (size_t s = 0; s < N_LIST_SIZES; s++) {
            for (int with_pos = 0; with_pos <= 1; with_pos++) {
                struct plist l = plist_make(list_sizes[s], s * 1000, 7 + (uint32_t)s,
                                            block_sizes[b], with_pos);
                struct postings_cursor c;
                cursor_open(&c, &l);
                assert_int_equal(postings_cursor_n_docs(&c), l.n);
                for (size_t i = 0; i < l.n; i++) {
                    assert_true(postings_next(&c));
                    expect_doc(&c, &l.docs[i]);
                    if (with_pos)
                        expect_positions(&c, &l.docs[i]);
                    else
                        assert_int_equal(postings_positions(&c, NULL, 0), -1);
                }
                expect_end(&c);
                plist_free(&l);
            }
        }
    }
}

static void test_postings_header_counts_docs_and_blocks(void **state)
{
    (void)state;
    for (size_t b = 0; b < N_BLOCK_SIZES; b++) {
        for (size_t s = 0; s < N_LIST_SIZES; s++) {
            struct plist l = plist_make(list_sizes[s], 0, 3, block_sizes[b], true);
            const unsigned char *p = l.bytes;
            uint64_t n_docs, n_blocks;
            assert_true(varint_get(&p, l.bytes + l.len, &n_docs));
            assert_true(varint_get(&p, l.bytes + l.len, &n_blocks));
            assert_int_equal(n_docs, l.n);
            assert_int_equal(n_blocks, (l.n + block_sizes[b] - 1) / block_sizes[b]);
            plist_free(&l);
        }
    }
}

static void test_postings_known_encoding(void **state)
{
    /* docs 0 (simple) and 5 (title 1, body 2) at positions {3} and {0, 1, 10} */
    static const struct pdoc docs[] = {
        { 0, { 0, 1, 0 }, 1, { 3 } },
        { 5, { 1, 2, 0 }, 3, { 0, 1, 10 } },
    };
    static const unsigned char want[] = {
        0x02, 0x01,               /* n_docs, n_blocks */
        0x05, 0x05, 0x04,         /* skip: last docid 5, docs bytes 5, pos bytes 4 */
        0x01,                     /* doc 0: gap 0, simple */
        0x08, 0x01, 0x02, 0x00,   /* doc 5: gap 4, not simple; tf 1 2 0 */
        0x03,                     /* doc 0 positions: 3 */
        0x00, 0x00, 0x08,         /* doc 5 positions: 0 1 10 */
    };
    struct plist l = { .docs = malloc(sizeof docs), .n = 2 };

    (void)state;
    assert_non_null(l.docs);
    memcpy(l.docs, docs, sizeof docs);
    plist_encode(&l, POSTINGS_BLOCK_DOCS, true);
    assert_int_equal(l.len, sizeof want);
    assert_memory_equal(l.bytes, want, sizeof want);
    plist_free(&l);
}

static void test_postings_empty_list_ends_at_once(void **state)
{
    struct plist l = plist_make(0, 0, 1, 2, true);
    struct postings_cursor c;

    (void)state;
    assert_int_equal(l.len, 2); /* n_docs 0, n_blocks 0 */
    cursor_open(&c, &l);
    assert_int_equal(postings_cursor_n_docs(&c), 0);
    expect_end(&c);
    plist_free(&l);
}

static void test_postings_writer_reuses_buffers_between_lists(void **state)
{
    struct pdoc *a = make_docs(20, 0, 11), *b = make_docs(9, 50, 12);
    struct postings_writer w;
    struct buf out;

    (void)state;
    postings_writer_init(&w, 3);
    buf_init(&out, LIST_MAX_BYTES);
    for (int round = 0; round < 2; round++) {
        const struct pdoc *docs = round ? b : a;
        size_t n = round ? 9 : 20;
        struct plist want = plist_make(n, round ? 50 : 0, round ? 12 : 11, 3, round == 0);
        postings_writer_begin(&w, round == 0);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(postings_writer_add(&w, docs[i].docid, docs[i].tf,
                                                 docs[i].positions, docs[i].n_positions),
                             0);
        buf_reset(&out);
        assert_int_equal(postings_writer_finish(&w, &out), 0);
        assert_int_equal(out.len, want.len);
        assert_memory_equal(out.data, want.bytes, want.len);
        plist_free(&want);
    }
    buf_fini(&out);
    postings_writer_fini(&w);
    free(a);
    free(b);
}

static void test_postings_large_docids_and_positions(void **state)
{
    static const struct pdoc docs[] = {
        { 0, { 0, 1, 0 }, 1, { 0 } },
        { 1, { 0, 1, 0 }, 1, { FIELD_MAX_TOKENS * 3 - 1 } },
        { 1000000, { 2, 0, 1 }, 3, { 1, 2, 3 } },
        { UINT32_MAX - 2, { 0, 0, 1 }, 1, { 7 } },
    };
    struct plist l = { .docs = malloc(sizeof docs), .n = 4 };
    struct postings_cursor c;

    (void)state;
    assert_non_null(l.docs);
    memcpy(l.docs, docs, sizeof docs);
    for (uint32_t block = 1; block <= 4; block++) {
        plist_encode(&l, block, true);
        cursor_open(&c, &l);
        for (size_t i = 0; i < l.n; i++) {
            assert_true(postings_next(&c));
            expect_doc(&c, &l.docs[i]);
            expect_positions(&c, &l.docs[i]);
        }
        expect_end(&c);
        cursor_open(&c, &l);
        assert_true(postings_advance(&c, 2));
        expect_doc(&c, &l.docs[2]);
        assert_true(postings_advance(&c, 1000001));
        expect_doc(&c, &l.docs[3]);
        expect_positions(&c, &l.docs[3]);
        free(l.bytes);
    }
    free(l.docs);
}

/* ---- positions, read lazily ---- */

/* Reads positions only where want(i) says so; every read must be right. */
static void walk_reading_some_positions(const struct plist *l, unsigned every, unsigned offset)
{
    struct postings_cursor c;

    cursor_open(&c, l);
    for (size_t i = 0; i < l->n; i++) {
        assert_true(postings_next(&c));
        expect_doc(&c, &l->docs[i]);
        if (every && i % every == offset)
            expect_positions(&c, &l->docs[i]);
    }
    expect_end(&c);
}

static void test_postings_positions_read_for_some_docs_only(void **state)
{
    (void)state;
    for (uint32_t block = 1; block <= 5; block++) {
        struct plist l = plist_make(40, 3, 21, block, true);
        walk_reading_some_positions(&l, 0, 0); /* never */
        for (unsigned every = 1; every <= 7; every++)
            for (unsigned offset = 0; offset < every; offset++)
                walk_reading_some_positions(&l, every, offset);
        plist_free(&l);
    }
}

static void test_postings_positions_of_last_doc_after_skipping_all(void **state)
{
    struct plist l = plist_make(10, 0, 5, 3, true);
    struct postings_cursor c;

    (void)state;
    cursor_open(&c, &l);
    for (size_t i = 0; i < l.n; i++)
        assert_true(postings_next(&c));
    expect_doc(&c, &l.docs[l.n - 1]);
    expect_positions(&c, &l.docs[l.n - 1]);
    expect_end(&c);
    plist_free(&l);
}

static void test_postings_positions_cap_truncates_output(void **state)
{
    static const struct pdoc docs[] = {
        { 4, { 1, 3, 1 }, 5, { 2, 4, 8, 16, 32 } },
        { 9, { 0, 2, 0 }, 2, { 5, 6 } },
    };
    struct plist l = { .docs = malloc(sizeof docs), .n = 2 };
    struct postings_cursor c;
    uint32_t got[3] = { 0 };

    (void)state;
    assert_non_null(l.docs);
    memcpy(l.docs, docs, sizeof docs);
    plist_encode(&l, 1, true);
    cursor_open(&c, &l);
    assert_true(postings_next(&c));
    assert_int_equal(postings_positions(&c, got, 3), 3);
    assert_int_equal(got[0], 2);
    assert_int_equal(got[1], 4);
    assert_int_equal(got[2], 8);
    /* The ones that did not fit were still stepped over. */
    assert_true(postings_next(&c));
    expect_positions(&c, &l.docs[1]);
    plist_free(&l);
}

static void test_postings_without_positions(void **state)
{
    (void)state;
    for (uint32_t block = 1; block <= 4; block++) {
        struct plist l = plist_make(25, 1, 33, block, false);
        struct plist with = plist_make(25, 1, 33, block, true);
        struct postings_cursor c;
        uint32_t out[4];
        assert_true(l.len < with.len);
        cursor_open(&c, &l);
        assert_int_equal(postings_positions(&c, out, 4), -1); /* before the first doc */
        for (size_t i = 0; i < l.n; i++) {
            assert_true(postings_next(&c));
            expect_doc(&c, &l.docs[i]);
            assert_int_equal(postings_positions(&c, out, 4), -1);
            assert_false(c.corrupt);
        }
        expect_end(&c);
        cursor_open(&c, &l);
        assert_true(postings_advance(&c, l.docs[17].docid));
        expect_doc(&c, &l.docs[17]);
        plist_free(&l);
        plist_free(&with);
    }
}

/* ---- advance ---- */

static void test_postings_advance_within_first_block(void **state)
{
    struct plist l = plist_make(12, 10, 41, 5, true);
    struct postings_cursor c;

    (void)state;
    /* straight to a docid in the first block, then to the gap before another */
    cursor_open(&c, &l);
    assert_true(postings_advance(&c, l.docs[2].docid));
    expect_doc(&c, &l.docs[2]);
    expect_positions(&c, &l.docs[2]);
    assert_true(postings_advance(&c, l.docs[3].docid + 1));
    expect_doc(&c, &l.docs[4]);
    expect_positions(&c, &l.docs[4]); /* docs 3 were skipped without reading them */
    assert_true(postings_next(&c));
    expect_doc(&c, &l.docs[5]);
    expect_positions(&c, &l.docs[5]);

    /* target 0 on a fresh cursor is the first document */
    cursor_open(&c, &l);
    assert_true(postings_advance(&c, 0));
    expect_doc(&c, &l.docs[0]);
    plist_free(&l);
}

static void test_postings_advance_skips_blocks(void **state)
{
    (void)state;
    for (uint32_t block = 1; block <= 4; block++) {
        struct plist l = plist_make(30, 0, 51, block, true);
        struct postings_cursor c;
        /* From a fresh cursor straight into a later block, to an exact docid. */
        cursor_open(&c, &l);
        assert_true(postings_advance(&c, l.docs[17].docid));
        expect_doc(&c, &l.docs[17]);
        expect_positions(&c, &l.docs[17]);
        for (size_t i = 18; i < l.n; i++) {
            assert_true(postings_next(&c));
            expect_doc(&c, &l.docs[i]);
            expect_positions(&c, &l.docs[i]);
        }
        expect_end(&c);
        /* From the last doc of a block, over whole blocks, to a gap target. */
        size_t last_of_block = block - 1;
        size_t want = first_at_or_after(&l, l.docs[20].docid - 1);
        cursor_open(&c, &l);
        for (size_t i = 0; i <= last_of_block; i++)
            assert_true(postings_next(&c));
        assert_true(postings_advance(&c, l.docs[20].docid - 1));
        expect_doc(&c, &l.docs[want]);
        expect_positions(&c, &l.docs[want]);
        plist_free(&l);
    }
}

static void test_postings_advance_past_the_end(void **state)
{
    struct plist l = plist_make(9, 0, 61, 2, true);
    uint32_t last = l.docs[l.n - 1].docid;
    static const int starts[] = { 0, 1, 4, 9 };
    struct postings_cursor c;

    (void)state;
    for (size_t s = 0; s < sizeof starts / sizeof starts[0]; s++) {
        uint32_t targets[] = { last + 1, last + 1000, DOCID_END - 1, DOCID_END };
        for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
            cursor_open(&c, &l);
            for (int i = 0; i < starts[s]; i++)
                assert_true(postings_next(&c));
            assert_false(postings_advance(&c, targets[t]));
            assert_int_equal(c.docid, DOCID_END);
            assert_false(c.corrupt);
            assert_false(postings_next(&c));
            assert_int_equal(c.docid, DOCID_END);
            assert_false(c.corrupt);
        }
    }
    /* The last document itself is still found. */
    cursor_open(&c, &l);
    assert_true(postings_advance(&c, last));
    expect_doc(&c, &l.docs[l.n - 1]);
    expect_positions(&c, &l.docs[l.n - 1]);
    expect_end(&c);
    plist_free(&l);
}

static void test_postings_advance_never_moves_backward(void **state)
{
    struct plist l = plist_make(15, 100, 71, 3, true);
    struct postings_cursor c;

    (void)state;
    cursor_open(&c, &l);
    for (int i = 0; i <= 7; i++)
        assert_true(postings_next(&c));
    expect_doc(&c, &l.docs[7]);
    uint32_t targets[] = { 0, 100, l.docs[3].docid, l.docs[6].docid + 1, l.docs[7].docid };
    for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
        assert_true(postings_advance(&c, targets[t]));
        expect_doc(&c, &l.docs[7]);
    }
    /* and the positions and next document are unaffected */
    expect_positions(&c, &l.docs[7]);
    assert_true(postings_next(&c));
    expect_doc(&c, &l.docs[8]);
    expect_positions(&c, &l.docs[8]);
    plist_free(&l);
}

/* From every start (after `starts` next() calls) to every target around the docids. */
static void advance_everywhere(const struct plist *l)
{
    uint32_t last = l->docs[l->n - 1].docid;

    for (size_t starts = 0; starts <= l->n; starts++) {
        for (uint32_t target = 0; target <= last + 2; target++) {
            size_t at = starts ? starts - 1 : SIZE_MAX;
            size_t want = first_at_or_after(l, target);
            if (starts && at < l->n && l->docs[at].docid >= target)
                want = at; /* never backward */
            struct postings_cursor c;
            cursor_open(&c, l);
            for (size_t i = 0; i < starts; i++)
                assert_true(postings_next(&c));
            if (starts == l->n) {
                assert_false(postings_next(&c)); /* at the end already */
                want = l->n;
            }
            bool found = postings_advance(&c, target);
            if (want == l->n) {
                assert_false(found);
                assert_int_equal(c.docid, DOCID_END);
                assert_false(c.corrupt);
                continue;
            }
            if (!found || c.docid != l->docs[want].docid)
                fail_msg("block %u, after %zu next(), advance(%u): got %d docid %u corrupt %d, "
                         "want docid %u",
                         l->block_docs, starts, target, found, c.docid, c.corrupt,
                         l->docs[want].docid);
            expect_doc(&c, &l->docs[want]);
            if (l->has_positions && target % 2)
                expect_positions(&c, &l->docs[want]);
            for (size_t i = want + 1; i < l->n; i++) {
                assert_true(postings_next(&c));
                expect_doc(&c, &l->docs[i]);
                if (l->has_positions)
                    expect_positions(&c, &l->docs[i]);
            }
            expect_end(&c);
        }
    }
}

static void test_postings_advance_to_every_target(void **state)
{
    (void)state;
    for (size_t b = 0; b < N_BLOCK_SIZES; b++) {
        for (int with_pos = 0; with_pos <= 1; with_pos++) {
            struct plist l = plist_make(14, 2, 81, block_sizes[b], with_pos);
            advance_everywhere(&l);
            plist_free(&l);
        }
    }
}

/*
 * Regression: postings_advance() from a document in the middle of a block to a
 * target in the next block does not reset prev_docid to the block's last
 * docid, so the next block's first gap is added to the wrong base: the
 * docids come out wrong and the cursor ends with `corrupt` set. Lists
 * 0 5 10 | 11 13 15 (block_docs 3): next() -> 0, advance(12) gives false,
 * corrupt, instead of 13.
 */
static void test_postings_advance_from_mid_block_to_next_block(void **state)
{
    static const struct pdoc docs[] = {
        { 0, { 0, 1, 0 }, 1, { 0 } },  { 5, { 0, 1, 0 }, 1, { 1 } },
        { 10, { 0, 1, 0 }, 1, { 2 } }, { 11, { 0, 1, 0 }, 1, { 3 } },
        { 13, { 0, 1, 0 }, 1, { 4 } }, { 15, { 0, 1, 0 }, 1, { 5 } },
    };
    struct plist l = { .docs = malloc(sizeof docs), .n = 6 };
    struct postings_cursor c;

    (void)state;
    assert_non_null(l.docs);
    memcpy(l.docs, docs, sizeof docs);
    plist_encode(&l, 3, true);
    cursor_open(&c, &l);
    assert_true(postings_next(&c));
    assert_true(postings_advance(&c, 12));
    expect_doc(&c, &l.docs[4]);
    expect_positions(&c, &l.docs[4]);
    plist_free(&l);

    for (size_t b = 0; b < N_BLOCK_SIZES; b++) {
        struct plist m = plist_make(14, 2, 81, block_sizes[b], true);
        advance_everywhere(&m);
        plist_free(&m);
    }
}

/*
 * Regression: signed overflow (undefined behaviour) on damaged lists. A gap or a
 * skip-table delta near 2^63 is cast to int64_t and added to a docid
 * (postings.c cursor_decode_doc: prev_docid + 1 + (int64_t)(head >> 1);
 * cursor_load_block: base + (int64_t)delta). gcc's UBSan happens not to
 * report these; clang's does ("signed integer overflow: 1 +
 * 9223372036854775807"), so `make fuzz` will.
 */
static void test_postings_huge_gaps_are_corrupt_not_overflow(void **state)
{
    /* 2 docs, 1 block of 11 docs bytes: doc 0, then a gap of 2^63 - 1 */
    static const unsigned char gap[] = { 0x02, 0x01, 0x05, 0x0b, 0x00, 0x01, 0xfe, 0xff, 0xff,
                                         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
    /* 2 docs, 2 blocks: the second block's last docid delta is 2^63 - 1 */
    static const unsigned char skip[] = { 0x02, 0x02, 0x01, 0x01, 0x00, 0xff, 0xff, 0xff,
                                          0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x01, 0x00,
                                          0x03, 0x01 };
    struct postings_cursor c;

    (void)state;
    postings_cursor_init(&c, gap, sizeof gap, false, 100);
    assert_true(postings_next(&c));
    assert_int_equal(c.docid, 0);
    assert_false(postings_next(&c));
    assert_true(c.corrupt);

    postings_cursor_init(&c, skip, sizeof skip, false, 100);
    assert_true(postings_next(&c));
    assert_int_equal(c.docid, 1);
    assert_false(postings_next(&c));
    assert_true(c.corrupt);
}

/*
 * Regression: a second postings_positions() on the same document decodes the next
 * document's positions as if they were this one's (or sets `corrupt` at the
 * end of a block). Either the same positions again or a refusal (-1, cursor
 * intact) would do; wrong positions would not.
 */
static void test_postings_positions_twice_gives_the_same(void **state)
{
    struct plist l = plist_make(6, 0, 91, 3, true);
    struct postings_cursor c;
    uint32_t got[POS_CAP];

    (void)state;
    cursor_open(&c, &l);
    assert_true(postings_next(&c));
    expect_positions(&c, &l.docs[0]);
    int n = postings_positions(&c, got, POS_CAP);
    assert_false(c.corrupt);
    if (n != -1) {
        assert_int_equal(n, l.docs[0].n_positions);
        assert_memory_equal(got, l.docs[0].positions, (size_t)n * sizeof got[0]);
    }
    for (size_t i = 1; i < l.n; i++) {
        assert_true(postings_next(&c));
        expect_doc(&c, &l.docs[i]);
        expect_positions(&c, &l.docs[i]);
    }
    plist_free(&l);
}

/* Leapfrog AND of two lists, as a query runs it, against the plain answer. */
static void test_postings_leapfrog_intersection(void **state)
{
    (void)state;
    for (uint32_t block = 1; block <= 4; block++) {
        struct plist a = plist_make(60, 0, 101, block, true);
        /* b: every third document of a, and docid + 1 of every seventh where free */
        struct plist b = { .docs = calloc(a.n * 2, sizeof *b.docs) };
        uint32_t want[60], got[60];
        size_t n_want = 0, n_got = 0;
        assert_non_null(b.docs);
        for (size_t i = 0; i < a.n; i++) {
            if (i % 3 == 0) {
                b.docs[b.n++] = a.docs[i];
                want[n_want++] = a.docs[i].docid;
            }
            uint32_t next_a = i + 1 < a.n ? a.docs[i + 1].docid : a.docs[i].docid + 2;
            if (i % 7 == 3 && a.docs[i].docid + 1 < next_a) {
                b.docs[b.n] = a.docs[i];
                b.docs[b.n++].docid = a.docs[i].docid + 1;
            }
        }
        plist_encode(&b, block + 1, true);

        struct postings_cursor ca, cb;
        cursor_open(&ca, &a);
        cursor_open(&cb, &b);
        bool more = postings_next(&ca);
        while (more) {
            if (!postings_advance(&cb, ca.docid))
                break;
            if (cb.docid == ca.docid) {
                assert_true(n_got < 60);
                got[n_got++] = ca.docid;
                size_t k = first_at_or_after(&a, ca.docid);
                expect_positions(&ca, &a.docs[k]);
                more = postings_next(&ca);
            } else {
                more = postings_advance(&ca, cb.docid);
            }
        }
        assert_false(ca.corrupt);
        assert_false(cb.corrupt);
        assert_int_equal(n_got, n_want);
        assert_memory_equal(got, want, n_want * sizeof want[0]);
        plist_free(&a);
        plist_free(&b);
    }
}

/* ---- damage ---- */

/*
 * Walks a possibly damaged list in one of several ways and checks what must
 * hold whatever the bytes: the walk ends, docids strictly increase and stay
 * below max_docid, positions returned strictly increase. Returns the number
 * of documents seen and fills seen[] (room for cap).
 */
static size_t walk_damaged(const unsigned char *bytes, size_t len, bool has_positions,
                           uint32_t max_docid, int mode, uint32_t *seen, size_t cap,
                           bool *corrupt)
{
    struct postings_cursor c;
    size_t n = 0;
    int64_t prev = -1;
    size_t steps = 0;

    postings_cursor_init(&c, bytes, len, has_positions, max_docid);
    for (;;) {
        bool more;
        /* modes: 0 next; 1 next + positions; 2 advance by 3; 3 alternate */
        if (mode == 2 || (mode == 3 && steps % 2))
            more = postings_advance(&c, (uint32_t)(prev + 3));
        else
            more = postings_next(&c);
        assert_true(++steps <= 2 * len + 16); /* each step eats a byte or ends */
        if (!more) {
            assert_int_equal(c.docid, DOCID_END);
            break;
        }
        assert_false(c.corrupt);
        assert_true(c.docid < max_docid);
        assert_true((int64_t)c.docid > prev);
        assert_true(postings_tf_total(&c) > 0);
        prev = c.docid;
        if (n < cap)
            seen[n] = c.docid;
        n++;
        if (mode == 1 || (mode == 3 && steps % 3 == 0)) {
            uint32_t pos[POS_CAP];
            int got = postings_positions(&c, pos, POS_CAP);
            if (!has_positions) {
                assert_int_equal(got, -1);
            } else if (got < 0) {
                assert_true(c.corrupt);
                assert_int_equal(c.docid, DOCID_END);
                break;
            } else {
                assert_true(got <= POS_CAP);
                for (int k = 1; k < got; k++)
                    assert_true(pos[k] > pos[k - 1]);
            }
        }
    }
    /* Once ended, it stays ended. */
    assert_false(postings_next(&c));
    assert_false(postings_advance(&c, 0));
    *corrupt = c.corrupt;
    return n;
}

#define INTACT_WALK_MODES 4

static void test_postings_truncated_lists_never_overread(void **state)
{
    (void)state;
    for (uint32_t block = 1; block <= 3; block++) {
        for (int with_pos = 0; with_pos <= 1; with_pos++) {
            struct plist l = plist_make(12, 0, 111 + block, block, with_pos);
            uint32_t max_docid = plist_max_docid(&l);
            uint32_t seen[64];
            for (size_t cut = 0; cut < l.len; cut++) {
                unsigned char *part = malloc(cut ? cut : 1);
                assert_non_null(part);
                memcpy(part, l.bytes, cut);
                for (int mode = 0; mode < 4; mode++) {
                    bool corrupt;
                    size_t n = walk_damaged(part, cut, with_pos, max_docid, mode, seen, 64,
                                            &corrupt);
                    /* What came out was the list's own documents, and the cut was seen. */
                    if (!corrupt)
                        fail_msg("block %u, positions %d, cut %zu of %zu, mode %d: no damage "
                                 "seen after %zu docs", block, with_pos, cut, l.len, mode, n);
                    for (size_t i = 0; i < n && mode < 2; i++)
                        assert_int_equal(seen[i], l.docs[i].docid);
                }
                free(part);
            }
            /* The whole list, walked the same ways, is fine. */
            for (int mode = 0; mode < INTACT_WALK_MODES; mode++) {
                bool corrupt;
                size_t n = walk_damaged(l.bytes, l.len, with_pos, max_docid, mode, seen, 64,
                                        &corrupt);
                if (corrupt)
                    fail_msg("block %u, positions %d, mode %d: intact list corrupt after %zu",
                             block, with_pos, mode, n);
                if (mode < 2)
                    assert_int_equal(n, l.n);
            }
            plist_free(&l);
        }
    }
}

static void test_postings_flipped_bytes_never_crash(void **state)
{
    static const unsigned char masks[] = { 0x01, 0x02, 0x40, 0x80, 0xff };

    (void)state;
    for (uint32_t block = 1; block <= 3; block++) {
        for (int with_pos = 0; with_pos <= 1; with_pos++) {
            struct plist l = plist_make(12, 0, 121 + block, block, with_pos);
            unsigned char *copy = malloc(l.len);
            uint32_t seen[64];
            assert_non_null(copy);
            for (size_t at = 0; at < l.len; at++) {
                for (size_t m = 0; m <= sizeof masks; m++) {
                    memcpy(copy, l.bytes, l.len);
                    if (m == sizeof masks)
                        copy[at] = 0; /* and a zeroed byte */
                    else
                        copy[at] ^= masks[m];
                    for (int mode = 0; mode < 4; mode++) {
                        bool corrupt;
                        /* tight and loose bounds on docids */
                        walk_damaged(copy, l.len, with_pos, plist_max_docid(&l), mode, seen,
                                     64, &corrupt);
                        walk_damaged(copy, l.len, with_pos, 1u << 20, mode, seen, 64,
                                     &corrupt);
                    }
                }
            }
            free(copy);
            plist_free(&l);
        }
    }
}

static void test_postings_damaged_headers_are_corrupt(void **state)
{
    static const struct {
        const char *what;
        unsigned char bytes[16];
        size_t len;
        uint32_t max_docid;
        bool has_positions;
        size_t docs_before_damage;
    } cases[] = {
        { "empty input", { 0 }, 0, 10, true, 0 },
        { "n_docs only", { 0x01 }, 1, 10, true, 0 },
        { "more blocks than docs", { 0x01, 0x02, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x01 },
          10, 10, false, 0 },
        { "more docs than max_docid", { 0x05, 0x01, 0x04, 0x05, 0x00, 0x01, 0x01, 0x01, 0x01,
                                        0x01 }, 10, 4, false, 0 },
        { "skip table runs off", { 0x01, 0x01, 0x00, 0x01 }, 4, 10, false, 0 },
        { "docs bytes past the end", { 0x01, 0x01, 0x00, 0x05, 0x00, 0x01 }, 6, 10, false, 0 },
        { "pos bytes past the end", { 0x01, 0x01, 0x00, 0x01, 0x03, 0x01, 0x00 }, 7, 10, true,
          0 },
        { "block of zero docs bytes", { 0x01, 0x01, 0x00, 0x00, 0x00 }, 5, 10, false, 0 },
        { "block last docid at max_docid", { 0x01, 0x01, 0x0a, 0x01, 0x00, 0x15 }, 6, 10, false,
          0 },
        { "doc past its block's last docid", { 0x01, 0x01, 0x02, 0x01, 0x00, 0x07 }, 6, 10,
          false, 0 },
        { "block ends before its last docid", { 0x02, 0x01, 0x05, 0x01, 0x00, 0x01, 0x03 }, 7, 10,
          false, 0 },
        { "all tf zero", { 0x01, 0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00 }, 9, 10, false,
          0 },
        { "tf past FIELD_MAX_TOKENS", { 0x01, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x80,
                                        0x80, 0x80, 0x04 }, 12, 10, false, 0 },
        { "tf varint runs off the block", { 0x01, 0x01, 0x00, 0x02, 0x00, 0x00, 0x01 }, 7, 10,
          false, 0 },
        { "second block does not move forward", { 0x02, 0x02, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00,
                                                  0x03, 0x01 }, 10, 10, false, 1 },
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = cases[i].len;
        unsigned char *copy = malloc(len ? len : 1);
        struct postings_cursor c;
        size_t n = 0;
        assert_non_null(copy);
        memcpy(copy, cases[i].bytes, len);
        postings_cursor_init(&c, copy, len, cases[i].has_positions, cases[i].max_docid);
        while (postings_next(&c) && n < 100)
            n++;
        if (!c.corrupt || n != cases[i].docs_before_damage)
            fail_msg("%s: corrupt %d after %zu docs, want corrupt after %zu", cases[i].what,
                     c.corrupt, n, cases[i].docs_before_damage);
        assert_int_equal(c.docid, DOCID_END);
        /* advance() on a fresh cursor, then next(), finds the same damage */
        postings_cursor_init(&c, copy, len, cases[i].has_positions, cases[i].max_docid);
        n = postings_advance(&c, 0) ? 1 : 0;
        while (postings_next(&c) && n < 100)
            n++;
        assert_true(c.corrupt);
        assert_int_equal(n, cases[i].docs_before_damage);
        free(copy);
    }
}

static void test_postings_damaged_positions_are_corrupt(void **state)
{
    /* one doc, tf 2 in the body, but only one position byte */
    static const unsigned char short_pos[] = { 0x01, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x02,
                                               0x00, 0x05 };
    /* one doc, simple, but its position varint runs off the block */
    static const unsigned char open_pos[] = { 0x01, 0x01, 0x00, 0x01, 0x01, 0x01, 0x85 };
    struct postings_cursor c;
    uint32_t out[4];

    (void)state;
    postings_cursor_init(&c, short_pos, sizeof short_pos, true, 10);
    assert_true(postings_next(&c));
    assert_int_equal(c.docid, 0);
    assert_int_equal(postings_tf_total(&c), 2);
    assert_int_equal(postings_positions(&c, out, 4), -1);
    assert_true(c.corrupt);
    assert_int_equal(c.docid, DOCID_END);
    assert_false(postings_next(&c));

    postings_cursor_init(&c, open_pos, sizeof open_pos, true, 10);
    assert_true(postings_next(&c));
    assert_int_equal(postings_positions(&c, out, 4), -1);
    assert_true(c.corrupt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_postings_next_round_trips_across_blocks),
        cmocka_unit_test(test_postings_header_counts_docs_and_blocks),
        cmocka_unit_test(test_postings_known_encoding),
        cmocka_unit_test(test_postings_empty_list_ends_at_once),
        cmocka_unit_test(test_postings_writer_reuses_buffers_between_lists),
        cmocka_unit_test(test_postings_large_docids_and_positions),
        cmocka_unit_test(test_postings_positions_read_for_some_docs_only),
        cmocka_unit_test(test_postings_positions_of_last_doc_after_skipping_all),
        cmocka_unit_test(test_postings_positions_cap_truncates_output),
        cmocka_unit_test(test_postings_without_positions),
        cmocka_unit_test(test_postings_advance_within_first_block),
        cmocka_unit_test(test_postings_advance_skips_blocks),
        cmocka_unit_test(test_postings_advance_past_the_end),
        cmocka_unit_test(test_postings_advance_never_moves_backward),
        cmocka_unit_test(test_postings_advance_to_every_target),
        cmocka_unit_test(test_postings_leapfrog_intersection),
        cmocka_unit_test(test_postings_truncated_lists_never_overread),
        cmocka_unit_test(test_postings_flipped_bytes_never_crash),
        cmocka_unit_test(test_postings_damaged_headers_are_corrupt),
        cmocka_unit_test(test_postings_damaged_positions_are_corrupt),
        cmocka_unit_test(test_postings_advance_from_mid_block_to_next_block),
        cmocka_unit_test(test_postings_huge_gaps_are_corrupt_not_overflow),
        cmocka_unit_test(test_postings_positions_twice_gives_the_same),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
