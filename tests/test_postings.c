/*
 * Tests of index/format/postings.h: writer -> cursor round trips with small blocks so
 * that a few documents cross block boundaries, every list checked against the
 * version 3 format by a parser of its own (one-block and several-block forms,
 * the four document shapes), postings_advance() to every kind of target,
 * lazily skipped positions, lists without positions, and damage: every
 * truncation and every byte flip must end the list, set `corrupt`, or give
 * increasing docids below max_docid, never a crash or a read out of bounds
 * (each list is an exact-size heap copy, so ASan sees it).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "index/base/buf.h"
#include "index/base/bytes.h"
#include "index/base/error.h"
#include "index/format/doc.h"
#include "index/base/limits.h"
#include "index/format/postings.h"

#define PDOC_MAX_POSITIONS 16
#define LIST_MAX_BYTES (1u << 24)
#define POS_CAP 64 /* room passed to postings_positions() */

/*
 * Hand-made lists. Integers as the skip table stores them, little-endian; one
 * skip entry: the block's last docid, where its docs bytes end and where its
 * positions bytes end (offsets into the data after the table), then per field
 * (title, body, meta) the largest tf in the block and the smallest field
 * length, u16 each; hand-made entries claim nothing there (tf 65535:
 * unknown, length 0). The cursor's walk does not read those bounds.
 */
#define U16LE(v) (unsigned char)((v) & 0xff), (unsigned char)((v) >> 8 & 0xff)
#define U32LE(v) U16LE((v) & 0xffff), U16LE((v) >> 16 & 0xffff)
#define NO_BOUND U16LE(65535), U16LE(0), U16LE(65535), U16LE(0), U16LE(65535), U16LE(0)
#define SKIP_ENTRY(last_docid, docs_end, pos_end) \
    U32LE(last_docid), U32LE(docs_end), U32LE(pos_end), NO_BOUND
#define TEST_SKIP_ENTRY_BYTES 24
_Static_assert(sizeof((unsigned char[]){ SKIP_ENTRY(0, 0, 0) }) == TEST_SKIP_ENTRY_BYTES,
               "a skip entry is 3 u32 and 3 pairs of u16");
#define BOUND_SATURATED 65535u /* a tf at or above it is stored as 65535, "unknown" */
/* A table row's bytes and how many they are, whatever the width of an entry. */
#define LIST(...) { __VA_ARGS__ }, sizeof((unsigned char[]){ __VA_ARGS__ })

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
 * Makes n documents from seed: gaps of 1 to 3 with some long jumps, a quarter
 * each of the four shapes (body 1; body n; title 1; mixed fields), positions
 * with some large values so varints take several bytes.
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
        unsigned kind = rng_next(&r) % 4;
        if (kind == 0) {
            d->tf[FIELD_BODY] = 1;
        } else if (kind == 1) {
            d->tf[FIELD_BODY] = 2 + rng_next(&r) % (PDOC_MAX_POSITIONS - 1);
        } else if (kind == 2) {
            d->tf[FIELD_TITLE] = 1;
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

/* The shape postings.h says a document with these frequencies is written with. */
static unsigned want_shape(const uint32_t tf[N_FIELDS])
{
    if (!tf[FIELD_TITLE] && !tf[FIELD_META])
        return tf[FIELD_BODY] == 1 ? 0 : 1;
    return tf[FIELD_TITLE] == 1 && !tf[FIELD_BODY] && !tf[FIELD_META] ? 2 : 3;
}

static uint64_t must_varint(const unsigned char **p, const unsigned char *end)
{
    uint64_t v = 0;

    assert_true(varint_get(p, end, &v));
    return v;
}

/*
 * Reads the encoding of l by the format in postings.h, without the cursor,
 * and checks that it holds exactly l's documents, blocks of l->block_docs,
 * each document in its shape, and nothing after. Returns true for the
 * one-block form (no skip table).
 */
static bool check_format(const struct plist *l)
{
    const unsigned char *p = l->bytes, *end = l->bytes + l->len;
    size_t bd = l->block_docs, want_blocks = (l->n + bd - 1) / bd;
    uint64_t head = must_varint(&p, end);
    bool one_block = !(head & 1);
    uint64_t(*skip)[3] = calloc(want_blocks ? want_blocks : 1, sizeof *skip);
    const unsigned char *table = NULL;

    assert_non_null(skip);
    assert_int_equal(head >> 1, l->n);
    if (want_blocks > 1)
        assert_false(one_block); /* more than one block */
    if (l->n == 0)
        assert_false(one_block); /* the one-block form has at least one document */
    if (l->n && l->n <= bd)
        assert_true(one_block); /* one block, full or not */
    if (one_block) {
        skip[0][1] = must_varint(&p, end);
        assert_true(skip[0][1] > 0 && skip[0][1] <= (uint64_t)(end - p));
        skip[0][2] = (uint64_t)(end - p) - skip[0][1];
    } else {
        /* entries of three u32: last docid, end of docs bytes, end of positions bytes;
         * then the bounds, checked per block below */
        assert_int_equal(must_varint(&p, end), want_blocks);
        assert_true(want_blocks * TEST_SKIP_ENTRY_BYTES <= (size_t)(end - p));
        uint64_t start = 0;
        table = p;
        for (size_t b = 0; b < want_blocks; b++, p += TEST_SKIP_ENTRY_BYTES) {
            uint64_t docs_end = get_u32le(p + 4), pos_end = get_u32le(p + 8);
            assert_true(start < docs_end && docs_end <= pos_end);
            skip[b][0] = get_u32le(p);
            skip[b][1] = docs_end - start;
            skip[b][2] = pos_end - docs_end;
            start = pos_end;
        }
    }
    int64_t prev = -1;
    for (size_t b = 0; b < want_blocks; b++) {
        size_t first = b * bd, last = first + bd < l->n ? first + bd : l->n;
        const unsigned char *q = p, *docs_end = p + skip[b][1];
        assert_true(skip[b][1] <= (uint64_t)(end - p));
        assert_true(skip[b][2] <= (uint64_t)(end - docs_end));
        if (!one_block) {
            const unsigned char *bound = table + b * TEST_SKIP_ENTRY_BYTES + 12; /* after 3 u32 */
            assert_int_equal(skip[b][0], l->docs[last - 1].docid);
            for (int f = 0; f < N_FIELDS; f++) {
                /* the largest tf, saturated; no field lengths were given: 0 */
                uint32_t max_tf = 0;
                for (size_t i = first; i < last; i++)
                    if (l->docs[i].tf[f] > max_tf)
                        max_tf = l->docs[i].tf[f];
                assert_int_equal(get_u16le(bound + 4 * f),
                                 max_tf < BOUND_SATURATED ? max_tf : BOUND_SATURATED);
                assert_int_equal(get_u16le(bound + 4 * f + 2), 0);
            }
        }
        for (size_t i = first; i < last; i++) {
            const struct pdoc *d = &l->docs[i];
            uint64_t h = must_varint(&q, docs_end);
            uint32_t tf[N_FIELDS] = { 0 };
            assert_int_equal(h >> 2, (uint64_t)((int64_t)d->docid - prev - 1));
            assert_int_equal(h & 3, want_shape(d->tf));
            switch (h & 3) {
            case 0: tf[FIELD_BODY] = 1; break;
            case 1: tf[FIELD_BODY] = (uint32_t)must_varint(&q, docs_end); break;
            case 2: tf[FIELD_TITLE] = 1; break;
            default:
                for (int f = 0; f < N_FIELDS; f++)
                    tf[f] = (uint32_t)must_varint(&q, docs_end);
            }
            assert_memory_equal(tf, d->tf, sizeof tf);
            prev = d->docid;
        }
        assert_ptr_equal(q, docs_end);
        const unsigned char *pos_end = docs_end + skip[b][2];
        if (!l->has_positions)
            assert_int_equal(skip[b][2], 0);
        for (size_t i = first; i < last && l->has_positions; i++) {
            int64_t prev_pos = -1;
            for (uint32_t k = 0; k < l->docs[i].n_positions; k++) {
                uint64_t delta = must_varint(&q, pos_end);
                assert_int_equal(delta, (uint64_t)(l->docs[i].positions[k] - prev_pos - 1));
                prev_pos = l->docs[i].positions[k];
            }
        }
        assert_ptr_equal(q, pos_end);
        p = pos_end;
    }
    assert_ptr_equal(p, end);
    free(skip);
    return one_block;
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
    check_format(l);
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
static const size_t list_sizes[] = { 1, 2, 3, 4, 5, 6, 7, 10, 31, 127, 128, 129, 300 };

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
            size_t n = list_sizes[s];
            for (int with_pos = 0; with_pos <= 1; with_pos++) {
                struct plist l = plist_make(n, 0, 3, block_sizes[b], with_pos);
                const unsigned char *p = l.bytes;
                uint64_t head = 0, v = 0;
                size_t n_blocks = (l.n + block_sizes[b] - 1) / block_sizes[b];
                assert_true(varint_get(&p, l.bytes + l.len, &head));
                assert_int_equal(head >> 1, l.n);
                assert_true(varint_get(&p, l.bytes + l.len, &v));
                if (head & 1) {
                    assert_int_equal(v, n_blocks); /* n_blocks */
                } else {
                    /* one block: docs_bytes, then the docs and positions bytes */
                    assert_int_equal(n_blocks, 1);
                    assert_true(v > 0 && v <= (uint64_t)(l.bytes + l.len - p));
                    if (!with_pos)
                        assert_int_equal(v, (uint64_t)(l.bytes + l.len - p));
                }
                if (n_blocks > 1 || n == block_sizes[b] + 1)
                    assert_true(head & 1);
                if (n <= block_sizes[b])
                    assert_false(head & 1);
                plist_free(&l);
            }
        }
    }
}

/* docs 0, 5, 6, 9, 300: one of each shape, and a gap that takes two bytes */
static const struct pdoc known_docs[] = {
    { 0, { 0, 1, 0 }, 1, { 3 } },          /* once in the body: shape 0 */
    { 5, { 1, 2, 0 }, 3, { 0, 1, 10 } },   /* title 1, body 2: shape 3 */
    { 6, { 0, 3, 0 }, 3, { 2, 4, 5 } },    /* body 3: shape 1 */
    { 9, { 1, 0, 0 }, 1, { 200 } },        /* once in the title: shape 2 */
    { 300, { 0, 0, 1 }, 1, { 7 } },        /* meta only: shape 3 */
};

static void expect_encoding(const struct pdoc *docs, size_t n, uint32_t block_docs,
                            bool has_positions, const unsigned char *want, size_t want_len)
{
    struct plist l = { .docs = malloc(n * sizeof *docs), .n = n };
    struct postings_cursor c;

    assert_non_null(l.docs);
    memcpy(l.docs, docs, n * sizeof *docs);
    plist_encode(&l, block_docs, has_positions);
    if (l.len != want_len || memcmp(l.bytes, want, want_len) != 0) {
        for (size_t i = 0; i < l.len; i++)
            print_message("%02x%s", l.bytes[i], i + 1 < l.len ? " " : "\n");
        fail_msg("block %u, positions %d: %zu bytes, want %zu", block_docs, has_positions, l.len,
                 want_len);
    }
    /* and the hand-made bytes read back */
    cursor_open(&c, &l);
    for (size_t i = 0; i < n; i++) {
        assert_true(postings_next(&c));
        expect_doc(&c, &l.docs[i]);
        if (has_positions)
            expect_positions(&c, &l.docs[i]);
    }
    expect_end(&c);
    plist_free(&l);
}

/* Each block's bound: its last docid, largest tf and shortest field per field. */
static void test_postings_block_bounds(void **state)
{
    /* 5 documents, blocks of 2: {1, 4} {6, 9} {12}; lengths by docid */
    static const uint32_t docids[] = { 1, 4, 6, 9, 12 };
    static const uint32_t tfs[][N_FIELDS] = { { 1, 2, 0 }, { 0, 7, 0 }, { 0, 1, 0 },
                                              { 3, 70000, 1 }, { 0, 4, 0 } };
    uint32_t lengths[13 * N_FIELDS] = { 0 };
    struct postings_writer w;
    struct buf out;
    struct postings_cursor c;
    struct postings_bound b;

    (void)state;
    for (uint32_t d = 0; d < 13; d++)
        for (int f = 0; f < N_FIELDS; f++)
            lengths[d * N_FIELDS + f] = 10 * d + (uint32_t)f + 1;
    lengths[9 * N_FIELDS + FIELD_BODY] = 100000; /* saturates at 65535: still a lower bound */
    postings_writer_init(&w, 2);
    postings_writer_set_lengths(&w, lengths);
    buf_init(&out, 1u << 20);
    postings_writer_begin(&w, false);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(postings_writer_add(&w, docids[i], tfs[i], NULL, 0), XE_OK);
    assert_int_equal(postings_writer_finish(&w, &out), XE_OK);
    postings_cursor_init(&c, out.data, out.len, false, 13);

    assert_true(postings_block_bound(&c, 0, &b));
    assert_int_equal(b.last_docid, 4);
    assert_int_equal(b.max_tf[FIELD_TITLE], 1);
    assert_int_equal(b.max_tf[FIELD_BODY], 7);
    assert_int_equal(b.max_tf[FIELD_META], 0);
    assert_int_equal(b.min_len[FIELD_TITLE], 11); /* docid 1 */
    assert_int_equal(b.min_len[FIELD_BODY], 12);
    assert_true(postings_block_bound(&c, 5, &b)); /* between blocks: the next one */
    assert_int_equal(b.last_docid, 9);
    assert_int_equal(b.max_tf[FIELD_BODY], UINT32_MAX); /* 70000: unknown */
    assert_int_equal(b.max_tf[FIELD_TITLE], 3);
    assert_int_equal(b.min_len[FIELD_BODY], 62); /* docid 6; docid 9's is larger */
    assert_true(postings_block_bound(&c, 12, &b));
    assert_int_equal(b.last_docid, 12);
    assert_int_equal(b.max_tf[FIELD_BODY], 4);
    assert_false(postings_block_bound(&c, 13, &b));
    /* the cursor did not move; reading on, bounds never look behind it */
    assert_true(postings_advance(&c, 6));
    assert_int_equal(c.docid, 6);
    assert_true(postings_block_bound(&c, 0, &b));
    assert_int_equal(b.last_docid, 9);

    /* one block: no table, so nothing known but that it may hold more */
    buf_reset(&out);
    postings_writer_begin(&w, false);
    assert_int_equal(postings_writer_add(&w, 3, tfs[0], NULL, 0), XE_OK);
    assert_int_equal(postings_writer_finish(&w, &out), XE_OK);
    postings_cursor_init(&c, out.data, out.len, false, 13);
    assert_true(postings_block_bound(&c, 0, &b));
    assert_int_equal(b.max_tf[FIELD_BODY], UINT32_MAX);
    assert_true(postings_next(&c));
    assert_false(postings_next(&c));
    assert_false(postings_block_bound(&c, 0, &b));
    buf_fini(&out);
    postings_writer_fini(&w);
}

static void test_postings_known_encoding(void **state)
{
    static const unsigned char one_block[] = {
        0x0a,                     /* n_docs 5 << 1, one block */
        0x0d,                     /* docs bytes 13 */
        0x00,                     /* doc 0: gap 0, shape 0 */
        0x13, 0x01, 0x02, 0x00,   /* doc 5: gap 4, shape 3; tf 1 2 0 */
        0x01, 0x03,               /* doc 6: gap 0, shape 1; body 3 */
        0x0a,                     /* doc 9: gap 2, shape 2 */
        0x8b, 0x09, 0x00, 0x00, 0x01, /* doc 300: gap 290, shape 3; tf 0 0 1 */
        0x03,                     /* doc 0 positions: 3 */
        0x00, 0x00, 0x08,         /* doc 5: 0 1 10 */
        0x02, 0x01, 0x00,         /* doc 6: 2 4 5 */
        0xc8, 0x01,               /* doc 9: 200 */
        0x07,                     /* doc 300: 7 */
    };
    static const unsigned char one_block_no_pos[] = {
        0x0a, 0x0d, 0x00, 0x13, 0x01, 0x02, 0x00, 0x01, 0x03, 0x0a, 0x8b, 0x09, 0x00, 0x00, 0x01,
    };
    static const unsigned char blocks_of_two[] = {
        0x0b,                     /* n_docs 5 << 1 | more than one block */
        0x03,                     /* n_blocks */
        /* skip table, u32 each: last docid, docs bytes end, positions bytes end;
         * then u16 each, per field: largest tf, smallest length (none given: 0) */
        0x05, 0, 0, 0, 0x05, 0, 0, 0, 0x09, 0, 0, 0,    /* docs 0..5, positions 5..9 */
        0x01, 0, 0, 0, 0x02, 0, 0, 0, 0x00, 0, 0, 0,    /* tf up to 1 2 0 */
        0x09, 0, 0, 0, 0x0c, 0, 0, 0, 0x11, 0, 0, 0,    /* docs 9..12, positions 12..17 */
        0x01, 0, 0, 0, 0x03, 0, 0, 0, 0x00, 0, 0, 0,    /* tf up to 1 3 0 */
        0x2c, 0x01, 0, 0, 0x16, 0, 0, 0, 0x17, 0, 0, 0, /* last docid 300; 17..22, 22..23 */
        0x00, 0, 0, 0, 0x00, 0, 0, 0, 0x01, 0, 0, 0,    /* tf up to 0 0 1 */
        0x00, 0x13, 0x01, 0x02, 0x00,   /* block 1 docs: 0, 5 */
        0x03, 0x00, 0x00, 0x08,         /* block 1 positions */
        0x01, 0x03, 0x0a,               /* block 2 docs: 6 (after 5), 9 */
        0x02, 0x01, 0x00, 0xc8, 0x01,   /* block 2 positions */
        0x8b, 0x09, 0x00, 0x00, 0x01,   /* block 3 docs: 300 (after 9) */
        0x07,                           /* block 3 positions */
    };
    /* a rare term: one document, docid 7, once in the body at position 0 */
    static const struct pdoc single[] = { { 7, { 0, 1, 0 }, 1, { 0 } } };
    static const unsigned char single_want[] = { 0x02, 0x01, 0x1c, 0x00 };
    static const unsigned char single_no_pos[] = { 0x02, 0x01, 0x1c };

    (void)state;
    expect_encoding(known_docs, 5, POSTINGS_BLOCK_DOCS, true, one_block, sizeof one_block);
    expect_encoding(known_docs, 5, 6, true, one_block, sizeof one_block);
    expect_encoding(known_docs, 5, POSTINGS_BLOCK_DOCS, false, one_block_no_pos,
                    sizeof one_block_no_pos);
    expect_encoding(known_docs, 5, 2, true, blocks_of_two, sizeof blocks_of_two);
    expect_encoding(single, 1, POSTINGS_BLOCK_DOCS, true, single_want, sizeof single_want);
    expect_encoding(single, 1, 2, false, single_no_pos, sizeof single_no_pos);
}

/*
 * Each shape, with frequencies up to FIELD_MAX_TOKENS (without positions:
 * with them, only up to POS_TF_MAX), in one and several blocks.
 */
#define POS_TF_MAX 1000

static void test_postings_each_shape(void **state)
{
    static const uint32_t tfs[][N_FIELDS] = {
        { 0, 1, 0 },                    /* 0 */
        { 0, 2, 0 },                    /* 1 */
        { 0, 127, 0 },                  /* 1, one-byte tf */
        { 0, 128, 0 },                  /* 1, two-byte tf */
        { 0, FIELD_MAX_TOKENS, 0 },     /* 1 */
        { 1, 0, 0 },                    /* 2 */
        { 2, 0, 0 },                    /* 3 */
        { 1, 1, 0 },                    /* 3 */
        { 0, 0, 1 },                    /* 3 */
        { 1, 0, 1 },                    /* 3 */
        { 0, 1, 1 },                    /* 3 */
        { FIELD_MAX_TOKENS, FIELD_MAX_TOKENS, FIELD_MAX_TOKENS }, /* 3 */
        { 300, 0, 0 },                  /* 3 */
    };
    static const unsigned shapes[] = { 0, 1, 1, 1, 1, 2, 3, 3, 3, 3, 3, 3, 3 };
    const size_t n = sizeof tfs / sizeof tfs[0];
    static const uint32_t blocks[] = { 1, 2, 3, 13, 14, POSTINGS_BLOCK_DOCS };

    (void)state;
    for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
        for (int with_pos = 0; with_pos <= 1; with_pos++) {
            struct postings_writer w;
            struct buf out;
            uint32_t *pos = malloc(POS_TF_MAX * sizeof *pos);
            assert_non_null(pos);
            /* each tf alone (the shape shows in the first byte after the header), then all */
            for (size_t only = 0; only <= n; only++) {
                if (only < n && with_pos &&
                    tfs[only][0] + tfs[only][1] + tfs[only][2] > POS_TF_MAX)
                    continue;
                postings_writer_init(&w, blocks[b]);
                postings_writer_begin(&w, with_pos);
                for (size_t i = 0; i < n; i++) {
                    uint32_t total = tfs[i][0] + tfs[i][1] + tfs[i][2];
                    if ((only < n && i != only) || (with_pos && total > POS_TF_MAX))
                        continue;
                    for (uint32_t k = 0; with_pos && k < total; k++)
                        pos[k] = 2 * k + (uint32_t)i;
                    assert_int_equal(postings_writer_add(&w, (uint32_t)(3 * i + 1), tfs[i],
                                                         with_pos ? pos : NULL,
                                                         with_pos ? total : 0),
                                     0);
                }
                buf_init(&out, LIST_MAX_BYTES);
                assert_int_equal(postings_writer_finish(&w, &out), 0);
                postings_writer_fini(&w);
                unsigned char *bytes = malloc(out.len);
                assert_non_null(bytes);
                memcpy(bytes, out.data, out.len);
                if (only < n && blocks[b] > 1) {
                    /* one document, one block: n_docs << 1, docs_bytes, then its head */
                    const unsigned char *p = bytes, *end = bytes + out.len;
                    uint64_t head = 0, docs_bytes = 0, doc_head = 0;
                    assert_true(varint_get(&p, end, &head));
                    assert_true(varint_get(&p, end, &docs_bytes));
                    assert_true(varint_get(&p, end, &doc_head));
                    assert_int_equal(head, 0x02);
                    assert_int_equal(doc_head & 3, shapes[only]);
                    assert_int_equal(doc_head >> 2, 3 * only + 1); /* docid 3 * only + 1 */
                    if (!with_pos)
                        assert_int_equal(docs_bytes, (uint64_t)(end - bytes) - 2);
                }
                struct postings_cursor c;
                postings_cursor_init(&c, bytes, out.len, with_pos, 3 * (uint32_t)n + 1);
                for (size_t i = 0; i < n; i++) {
                    uint32_t total = tfs[i][0] + tfs[i][1] + tfs[i][2];
                    if ((only < n && i != only) || (with_pos && total > POS_TF_MAX))
                        continue;
                    assert_true(postings_next(&c));
                    assert_int_equal(c.docid, 3 * i + 1);
                    assert_int_equal(c.tf[FIELD_TITLE], tfs[i][FIELD_TITLE]);
                    assert_int_equal(c.tf[FIELD_BODY], tfs[i][FIELD_BODY]);
                    assert_int_equal(c.tf[FIELD_META], tfs[i][FIELD_META]);
                    if (with_pos && i % 2) {
                        uint32_t got[4];
                        int want = total < 4 ? (int)total : 4;
                        assert_int_equal(postings_positions(&c, got, 4), want);
                        for (int k = 0; k < want; k++)
                            assert_int_equal(got[k], 2 * (uint32_t)k + i);
                    }
                }
                assert_false(postings_next(&c));
                assert_false(c.corrupt);
                free(bytes);
                buf_fini(&out);
            }
            free(pos);
        }
    }
}

static void test_postings_empty_list_ends_at_once(void **state)
{
    struct plist l = plist_make(0, 0, 1, 2, true);
    struct postings_cursor c;

    (void)state;
    assert_int_equal(l.len, 2); /* n_docs 0 << 1 | 1, n_blocks 0 */
    assert_int_equal(l.bytes[0], 0x01);
    assert_int_equal(l.bytes[1], 0x00);
    cursor_open(&c, &l);
    assert_int_equal(postings_cursor_n_docs(&c), 0);
    expect_end(&c);
    plist_free(&l);
}

static void test_postings_writer_reuses_buffers_between_lists(void **state)
{
    /* n, first docid, seed, positions: several blocks and one block, in turns */
    static const struct {
        size_t n;
        uint32_t first;
        uint32_t seed;
        bool has_positions;
    } rounds[] = {
        { 20, 0, 11, true }, { 2, 7, 13, false }, { 9, 50, 12, false }, { 1, 3, 14, true },
        { 3, 0, 15, true },  { 4, 9, 16, true },  { 2, 1, 17, true },
    };
    struct postings_writer w;
    struct buf out;

    (void)state;
    postings_writer_init(&w, 3);
    buf_init(&out, LIST_MAX_BYTES);
    for (size_t r = 0; r < sizeof rounds / sizeof rounds[0]; r++) {
        struct plist want = plist_make(rounds[r].n, rounds[r].first, rounds[r].seed, 3,
                                       rounds[r].has_positions);
        postings_writer_begin(&w, rounds[r].has_positions);
        for (size_t i = 0; i < want.n; i++)
            assert_int_equal(postings_writer_add(&w, want.docs[i].docid, want.docs[i].tf,
                                                 want.docs[i].positions,
                                                 want.docs[i].n_positions),
                             0);
        buf_reset(&out);
        assert_int_equal(postings_writer_finish(&w, &out), 0);
        assert_int_equal(out.len, want.len);
        assert_memory_equal(out.data, want.bytes, want.len);
        /* one block up to 3 docs (a full block included), several above */
        assert_int_equal(out.data[0] & 1, rounds[r].n > 3);
        plist_free(&want);
    }
    buf_fini(&out);
    postings_writer_fini(&w);
}

static void advance_everywhere(const struct plist *l);

/*
 * Lists around the size where one block becomes several: every size up to
 * 2 blocks + 2 for small blocks, with next(), positions and advance() from
 * everywhere; and 127..129 at POSTINGS_BLOCK_DOCS.
 */
static void test_postings_one_block_to_several(void **state)
{
    static const uint32_t small[] = { 1, 2, 3, 5 };

    (void)state;
    for (size_t b = 0; b < sizeof small / sizeof small[0]; b++) {
        for (size_t n = 1; n <= 2 * small[b] + 2; n++) {
            for (int with_pos = 0; with_pos <= 1; with_pos++) {
                struct plist l = plist_make(n, (uint32_t)n, 200 + (uint32_t)n, small[b],
                                            with_pos);
                bool one_block = check_format(&l);
                if (n < small[b])
                    assert_true(one_block);
                if (n > small[b])
                    assert_false(one_block);
                advance_everywhere(&l);
                plist_free(&l);
            }
        }
    }
    for (size_t n = POSTINGS_BLOCK_DOCS - 1; n <= POSTINGS_BLOCK_DOCS + 1; n++) {
        for (int with_pos = 0; with_pos <= 1; with_pos++) {
            struct plist l = plist_make(n, 0, 300 + (uint32_t)n, POSTINGS_BLOCK_DOCS, with_pos);
            struct postings_cursor c;
            bool one_block = check_format(&l);
            if (n < POSTINGS_BLOCK_DOCS)
                assert_true(one_block);
            if (n > POSTINGS_BLOCK_DOCS)
                assert_false(one_block);
            cursor_open(&c, &l);
            assert_int_equal(postings_cursor_n_docs(&c), n);
            for (size_t i = 0; i < n; i++) {
                assert_true(postings_next(&c));
                expect_doc(&c, &l.docs[i]);
                if (with_pos && i % 3)
                    expect_positions(&c, &l.docs[i]);
            }
            expect_end(&c);
            /* advance() to each docid, the gap before it, and the last one */
            for (size_t i = 0; i < n; i += 7) {
                for (uint32_t back = 0; back <= 1; back++) {
                    uint32_t target = l.docs[i].docid - (l.docs[i].docid ? back : 0);
                    size_t want = first_at_or_after(&l, target);
                    cursor_open(&c, &l);
                    if (i > 9) { /* from the middle of the list, too */
                        for (size_t k = 0; k < 5; k++)
                            assert_true(postings_next(&c));
                    }
                    assert_true(postings_advance(&c, target));
                    expect_doc(&c, &l.docs[want]);
                    if (with_pos)
                        expect_positions(&c, &l.docs[want]);
                    assert_true(postings_advance(&c, l.docs[n - 1].docid));
                    expect_doc(&c, &l.docs[n - 1]);
                    expect_end(&c);
                }
            }
            plist_free(&l);
        }
    }
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
    for (uint32_t block = 1; block <= 5; block++) { /* 5: one block */
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
    static const uint32_t blocks[] = { 1, 2, 3, 4, 5, 40, 64 };

    for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
        struct plist l = plist_make(40, 3, 21, blocks[b], true);
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
    static const uint32_t blocks[] = { 1, 2, 3, 4, POSTINGS_BLOCK_DOCS };

    for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
        uint32_t block = blocks[b];
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
    static const int starts[] = { 0, 1, 4, 9 };
    static const uint32_t blocks[] = { 2, 9, 10, POSTINGS_BLOCK_DOCS }; /* several, one */

    (void)state;
    for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
        struct plist l = plist_make(9, 0, 61, blocks[b], true);
        uint32_t last = l.docs[l.n - 1].docid;
        struct postings_cursor c;
        for (size_t s = 0; s < sizeof starts / sizeof starts[0]; s++) {
            uint32_t targets[] = { last + 1, last + 1000, DOCID_END - 1, DOCID_END };
            for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
                for (int loose = 0; loose <= 1; loose++) {
                    /* max_docid just past the list, and far past it */
                    postings_cursor_init(&c, l.bytes, l.len, true,
                                         loose ? DOCID_END : plist_max_docid(&l));
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
        }
        /* The last document itself is still found. */
        cursor_open(&c, &l);
        assert_true(postings_advance(&c, last));
        expect_doc(&c, &l.docs[l.n - 1]);
        expect_positions(&c, &l.docs[l.n - 1]);
        expect_end(&c);
        plist_free(&l);
    }
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
 * skip-table delta near 2^62 or 2^63 was cast to int64_t and added to a docid
 * (postings.c cursor_decode_doc: prev_docid + 1 + (int64_t)(head >> 2); in
 * version 2, cursor_load_block: base + (int64_t)delta). gcc's UBSan happens not
 * to report these; clang's does ("signed integer overflow"), so `make fuzz` will.
 * Version 3 stores each block's last docid whole, as a u32: no delta to add up,
 * so the skip case is now the largest last docid a u32 holds.
 */
static void test_postings_huge_gaps_are_corrupt_not_overflow(void **state)
{
    /* one block of 2 docs, 11 docs bytes: doc 0, then a gap of 2^62 - 1 (head 2^64 - 4) */
    static const unsigned char gap[] = { 0x04, 0x0b, 0x00, 0xfc, 0xff, 0xff, 0xff, 0xff,
                                         0xff, 0xff, 0xff, 0xff, 0x01 };
    /* the same in the several-block form: one block, last docid 5, docs and positions
     * end 11, then the same 11 docs bytes */
    static const unsigned char gap_blocks[] = { 0x05, 0x01, SKIP_ENTRY(5, 11, 11), 0x00, 0xfc,
                                                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                                0x01 };
    /* 2 docs, 2 blocks: doc 1 (gap 1: 04), then a block whose last docid is 2^32 - 1, at
     * or past any max_docid, holding doc 2 (00) */
    static const unsigned char skip[] = { 0x05, 0x02, SKIP_ENTRY(1, 1, 1),
                                          SKIP_ENTRY(UINT32_MAX, 2, 2), 0x04, 0x00 };
    /* one block: 2^63 - 1 documents */
    static const unsigned char n_docs[] = { 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                            0xff, 0x01, 0x01, 0x00 };
    static const struct {
        const unsigned char *bytes;
        size_t len;
        uint32_t docid; /* the one good document, or DOCID_END */
    } cases[] = {
        { gap, sizeof gap, 0 },
        { gap_blocks, sizeof gap_blocks, 0 },
        { skip, sizeof skip, 1 },
        { n_docs, sizeof n_docs, DOCID_END },
    };
    struct postings_cursor c;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (uint32_t max_docid = 100; max_docid; max_docid = max_docid == 100 ? UINT32_MAX : 0) {
            postings_cursor_init(&c, cases[i].bytes, cases[i].len, false, max_docid);
            if (cases[i].docid != DOCID_END) {
                assert_true(postings_next(&c));
                assert_int_equal(c.docid, cases[i].docid);
            }
            assert_false(postings_next(&c));
            assert_true(c.corrupt);
            /* and through advance() */
            postings_cursor_init(&c, cases[i].bytes, cases[i].len, false, max_docid);
            if (cases[i].docid != DOCID_END) {
                assert_true(postings_advance(&c, cases[i].docid));
                assert_int_equal(c.docid, cases[i].docid);
            }
            assert_false(postings_advance(&c, cases[i].docid + 1));
            assert_true(c.corrupt);
        }
    }
}

/*
 * Regression: a second postings_positions() on the same document decodes the next
 * document's positions as if they were this one's (or sets `corrupt` at the
 * end of a block). Either the same positions again or a refusal (-1, cursor
 * intact) would do; wrong positions would not.
 */
static void test_postings_positions_twice_gives_the_same(void **state)
{
    (void)state;
    for (uint32_t block = 3; block <= 7; block += 4) { /* several blocks; one */
        struct plist l = plist_make(6, 0, 91, block, true);
        struct postings_cursor c;
        uint32_t got[POS_CAP];

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
}

/* Leapfrog AND of two lists, as a query runs it, against the plain answer. */
static void test_postings_leapfrog_intersection(void **state)
{
    (void)state;
    static const uint32_t blocks[] = { 1, 2, 3, 4, POSTINGS_BLOCK_DOCS };

    for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; bi++) {
        uint32_t block = blocks[bi];
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

/* Block sizes for 12-document lists: several blocks; one full block; one block. */
static const uint32_t damage_blocks[] = { 1, 2, 3, 12, 16, POSTINGS_BLOCK_DOCS };
#define N_DAMAGE_BLOCKS (sizeof damage_blocks / sizeof damage_blocks[0])

/* Where the docs bytes of a one-block list end (its positions bytes run to the end). */
static size_t one_block_docs_end(const struct plist *l)
{
    const unsigned char *p = l->bytes, *end = l->bytes + l->len;
    uint64_t head = must_varint(&p, end), docs_bytes = must_varint(&p, end);

    assert_false(head & 1);
    return (size_t)(p - l->bytes) + (size_t)docs_bytes;
}

static void test_postings_truncated_lists_never_overread(void **state)
{
    (void)state;
    for (size_t bi = 0; bi < N_DAMAGE_BLOCKS; bi++) {
        uint32_t block = damage_blocks[bi];
        for (int with_pos = 0; with_pos <= 1; with_pos++) {
            struct plist l = plist_make(12, 0, 111 + block, block, with_pos);
            uint32_t max_docid = plist_max_docid(&l);
            uint32_t seen[64];
            bool one_block = check_format(&l);
            size_t docs_end = one_block ? one_block_docs_end(&l) : l.len;
            for (size_t cut = 0; cut < l.len; cut++) {
                unsigned char *part = malloc(cut ? cut : 1);
                assert_non_null(part);
                memcpy(part, l.bytes, cut);
                for (int mode = 0; mode < 4; mode++) {
                    bool corrupt;
                    size_t n = walk_damaged(part, cut, with_pos, max_docid, mode, seen, 64,
                                            &corrupt);
                    /* What came out was the list's own documents... */
                    for (size_t i = 0; i < n && mode < 2; i++)
                        assert_int_equal(seen[i], l.docs[i].docid);
                    /*
                     * ...and the cut was seen. A one-block list does not store
                     * where its positions end (the end of the list does), so a
                     * cut among them shows only to a walk that reads them all.
                     */
                    if (cut >= docs_end && mode != 1)
                        continue;
                    if (!corrupt)
                        fail_msg("block %u, positions %d, cut %zu of %zu, mode %d: no damage "
                                 "seen after %zu docs", block, with_pos, cut, l.len, mode, n);
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
    for (size_t bi = 0; bi < N_DAMAGE_BLOCKS; bi++) {
        uint32_t block = damage_blocks[bi];
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
        unsigned char bytes[2 + 3 * TEST_SKIP_ENTRY_BYTES + 8]; /* room for 3 skip entries */
        size_t len;
        uint32_t max_docid;
        bool has_positions;
        size_t docs_before_damage;
    } cases[] = {
        { "empty input", { 0 }, 0, 10, true, 0 },
        { "header varint runs off", { 0x82 }, 1, 10, false, 0 },
        /* the one-block form */
        { "one block: no docs bytes", { 0x02 }, 1, 10, true, 0 },
        { "one block of no documents", { 0x00, 0x01, 0x00 }, 3, 10, false, 0 },
        { "one block: docs bytes 0", { 0x02, 0x00, 0x00 }, 3, 10, false, 0 },
        { "one block: docs bytes past the end", { 0x02, 0x05, 0x00, 0x00 }, 4, 10, false, 0 },
        { "one block: docs bytes varint runs off", { 0x02, 0x81 }, 2, 10, false, 0 },
        { "one block: more docs than max_docid", { 0x0a, 0x01, 0x00 }, 3, 4, false, 0 },
        { "one block: docid at max_docid", { 0x04, 0x02, 0x00, 0x24 }, 4, 10, false, 1 },
        { "one block: doc head runs off", { 0x02, 0x01, 0x80, 0x00 }, 4, 10, false, 0 },
        { "one block: shape 1 with tf 0", { 0x02, 0x02, 0x01, 0x00 }, 4, 10, false, 0 },
        { "one block: shape 1 tf outside the docs bytes", { 0x02, 0x01, 0x01, 0x05 }, 4, 10,
          true, 0 },
        { "one block: shape 1 tf past FIELD_MAX_TOKENS", { 0x02, 0x05, 0x01, 0x80, 0x80, 0x80,
                                                           0x04 }, 7, 10, false, 0 },
        { "one block: all tf zero", { 0x02, 0x04, 0x03, 0x00, 0x00, 0x00 }, 6, 10, false, 0 },
        { "one block: tf varint runs off", { 0x04, 0x04, 0x00, 0x07, 0x01, 0x01, 0x01 }, 7, 10,
          false, 1 },
        /*
         * The several-block form: n_docs << 1 | 1, n_blocks, n_blocks skip entries
         * (SKIP_ENTRY: last docid, docs end, positions end), then the data. The
         * last entry's positions end must be the data's length, checked at init,
         * so each list below is exactly as long as its table says unless the
         * damage is there. Version 2 found a cut list only on reaching the cut.
         */
        { "n_blocks missing", { 0x03 }, 1, 10, true, 0 },
        /* 1 doc in 2 blocks: docs 0 and 1 */
        { "more blocks than docs",
          LIST(0x03, 0x02, SKIP_ENTRY(0, 1, 1), SKIP_ENTRY(1, 2, 2), 0x00, 0x00), 10, false, 0 },
        /* 5 docs 0..4, blocks of 3 and 2, max_docid 4 */
        { "more docs than max_docid",
          LIST(0x0b, 0x02, SKIP_ENTRY(2, 3, 3), SKIP_ENTRY(4, 5, 5), 0x00, 0x00, 0x00, 0x00,
               0x00), 4, false, 0 },
        /* 2 blocks, the table cut after entry 1's docs end, before its positions end
         * (which init would compare with the length of the data) */
        { "skip table runs off", { 0x05, 0x02, SKIP_ENTRY(0, 1, 1), SKIP_ENTRY(1, 2, 2) },
          2 + TEST_SKIP_ENTRY_BYTES + 8, 10, false, 0 },
        /* block 0's docs (and positions) end at 40 in 2 bytes of data */
        { "docs bytes past the end",
          LIST(0x05, 0x02, SKIP_ENTRY(0, 40, 40), SKIP_ENTRY(1, 2, 2), 0x00, 0x00), 10, false,
          0 },
        /* docs 0 1 | 2; block 0's docs end 2 after its positions end 1 (and block
         * 1 then starts at 1, inside block 0's docs) */
        { "docs end after positions end",
          LIST(0x07, 0x02, SKIP_ENTRY(1, 2, 1), SKIP_ENTRY(2, 3, 3), 0x00, 0x00, 0x00), 10,
          false, 0 },
        /* docs 0 | 1 with a position each (00 00 | 00 00); block 0's positions end at 9
         * of 4 bytes, instead of 2 */
        { "pos bytes past the end",
          LIST(0x05, 0x02, SKIP_ENTRY(0, 1, 9), SKIP_ENTRY(1, 3, 4), 0x00, 0x00, 0x00, 0x00),
          10, true, 0 },
        /* the same list intact but its last byte cut: found at init, before doc 0 (version
         * 2 gave doc 0 first: it found a cut only on reaching it) */
        { "last entry's positions end past the list",
          LIST(0x05, 0x02, SKIP_ENTRY(0, 1, 2), SKIP_ENTRY(1, 3, 4), 0x00, 0x00, 0x00), 10,
          true, 0 },
        /* the same list with a byte after it: the table does not account for it */
        { "last entry's positions end before the list's",
          LIST(0x05, 0x02, SKIP_ENTRY(0, 1, 2), SKIP_ENTRY(1, 3, 4), 0x00, 0x00, 0x00, 0x00,
               0x00), 10, true, 0 },
        /* docs 0 | 1, block 0 of zero docs bytes (and none of positions): next() finds
         * no doc head there anyway, but advance(0) would step over it into block 1 */
        { "first block of zero docs bytes",
          LIST(0x05, 0x02, SKIP_ENTRY(0, 0, 0), SKIP_ENTRY(1, 1, 1), 0x00), 10, false, 0 },
        /* docs 0 | 1, block 1 of zero docs bytes: its docs end where block 0 ends */
        { "second block of zero docs bytes",
          LIST(0x05, 0x02, SKIP_ENTRY(0, 1, 1), SKIP_ENTRY(1, 1, 1), 0x00), 10, false, 1 },
        /*
         * docs 0 | 1 | 2 with a position each (data 00 00 | 00 00 | 00 00; block 1
         * intact is SKIP_ENTRY(1, 3, 4)): block 1's offsets go backwards.
         */
        { "middle entry's docs end before its start",
          LIST(0x07, 0x03, SKIP_ENTRY(0, 1, 2), SKIP_ENTRY(1, 1, 4), SKIP_ENTRY(2, 5, 6), 0x00,
               0x00, 0x00, 0x00, 0x00, 0x00), 10, true, 1 },
        { "middle entry's positions end before its docs end",
          LIST(0x07, 0x03, SKIP_ENTRY(0, 1, 2), SKIP_ENTRY(1, 3, 1), SKIP_ENTRY(2, 5, 6), 0x00,
               0x00, 0x00, 0x00, 0x00, 0x00), 10, true, 1 },
        { "middle entry's positions end past the list",
          LIST(0x07, 0x03, SKIP_ENTRY(0, 1, 2), SKIP_ENTRY(1, 3, 9), SKIP_ENTRY(2, 5, 6), 0x00,
               0x00, 0x00, 0x00, 0x00, 0x00), 10, true, 1 },
        /* one block of docs 0 and 10 (gap 9: 0x24), max_docid 10 */
        { "block last docid at max_docid", LIST(0x05, 0x01, SKIP_ENTRY(10, 2, 2), 0x00, 0x24),
          10, false, 0 },
        /* docs 5 | 12 (gap 6: 0x18), max_docid 10: the gap alone is below it */
        { "second block's last docid past max_docid",
          LIST(0x05, 0x02, SKIP_ENTRY(5, 1, 1), SKIP_ENTRY(12, 2, 2), 0x14, 0x18), 10, false,
          1 },
        /* last docid 2, the doc is 3 */
        { "doc past its block's last docid", LIST(0x03, 0x01, SKIP_ENTRY(2, 1, 1), 0x0c), 10,
          false, 0 },
        /* last docid 5, the docs bytes hold only doc 0 */
        { "block ends before its last docid", LIST(0x05, 0x01, SKIP_ENTRY(5, 1, 1), 0x00), 10,
          false, 0 },
        /* doc 0, shape 3, tf 0 0 0 */
        { "all tf zero", LIST(0x03, 0x01, SKIP_ENTRY(0, 4, 4), 0x03, 0x00, 0x00, 0x00), 10,
          false, 0 },
        /* doc 0, shape 3, tf 0 0 2^22 */
        { "tf past FIELD_MAX_TOKENS",
          LIST(0x03, 0x01, SKIP_ENTRY(0, 7, 7), 0x03, 0x00, 0x00, 0x80, 0x80, 0x80, 0x04), 10,
          false, 0 },
        { "shape 1 tf 0", LIST(0x03, 0x01, SKIP_ENTRY(0, 2, 2), 0x01, 0x00), 10, false, 0 },
        /* doc 0, shape 3, one tf of three in the docs bytes; the two position
         * bytes after them would read as tf 1 0 0 */
        { "tf varint runs off the block",
          LIST(0x03, 0x01, SKIP_ENTRY(0, 2, 4), 0x03, 0x01, 0x00, 0x00), 10, true, 0 },
        /* docs 1 | 2 (data 04 00), block 1's last docid damaged to 1 (block 0's), then 0 */
        { "second block does not move forward",
          LIST(0x05, 0x02, SKIP_ENTRY(1, 1, 1), SKIP_ENTRY(1, 2, 2), 0x04, 0x00), 10, false, 1 },
        { "second block goes backward",
          LIST(0x05, 0x02, SKIP_ENTRY(1, 1, 1), SKIP_ENTRY(0, 2, 2), 0x04, 0x00), 10, false, 1 },
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
        if (!c.corrupt || n != cases[i].docs_before_damage)
            fail_msg("%s, advance: corrupt %d after %zu docs, want corrupt after %zu",
                     cases[i].what, c.corrupt, n, cases[i].docs_before_damage);
        free(copy);
    }

    /*
     * A middle entry that goes backwards where advance() jumps over it. Intact:
     * docs 0 1 2 | 3 | 9. Damaged: block 1's last docid is 1, behind block 0's
     * 2, and block 2's gap counts from it, so block 2 alone reads as doc 9.
     * After block 0, advance(5) binary-searches straight to block 2 and never
     * enters block 1: only the check that block 2 does not start behind the
     * docids already read sees the damage (next() sees it on entering block 1).
     */
    static const unsigned char jump[2][2 + 3 * TEST_SKIP_ENTRY_BYTES + 5] = {
        {
            0x0b, 0x03,          /* 5 docs, 3 blocks */
            SKIP_ENTRY(2, 3, 3), /* docs 0 1 2 */
            SKIP_ENTRY(3, 4, 4), /* doc 3 */
            SKIP_ENTRY(9, 5, 5), /* doc 9 */
            0x00, 0x00, 0x00,    /* gaps 0 0 0 from -1: docs 0 1 2, shape 0 */
            0x00,                /* doc 3 */
            0x14,                /* doc 9: gap 5 from 3 */
        },
        {
            0x0b, 0x03,
            SKIP_ENTRY(2, 3, 3),
            SKIP_ENTRY(1, 4, 4), /* last docid 1 */
            SKIP_ENTRY(9, 5, 5),
            0x00, 0x00, 0x00,
            0x00,
            0x1c,                /* doc 9: gap 7 from 1 */
        },
    };
    unsigned char *copy = malloc(sizeof jump[0]);
    assert_non_null(copy);
    for (int damaged = 0; damaged <= 1; damaged++) {
        struct postings_cursor c;
        memcpy(copy, jump[damaged], sizeof jump[0]);
        postings_cursor_init(&c, copy, sizeof jump[0], false, 10);
        for (uint32_t docid = 0; docid <= 2; docid++) {
            assert_true(postings_next(&c));
            assert_int_equal(c.docid, docid);
        }
        if (damaged) {
            assert_false(postings_advance(&c, 5));
            assert_true(c.corrupt);
            assert_int_equal(c.docid, DOCID_END);
        } else {
            assert_true(postings_advance(&c, 5));
            assert_int_equal(c.docid, 9);
            assert_false(postings_next(&c));
            assert_false(c.corrupt);
        }
    }
    free(copy);
}

static void test_postings_damaged_positions_are_corrupt(void **state)
{
    static const struct {
        const char *what;
        unsigned char bytes[2 + 2 * TEST_SKIP_ENTRY_BYTES + 16]; /* room for 2 skip entries */
        size_t len;
        uint32_t tf_total;
    } cases[] = {
        /*
         * The "blocks" cases put a second block after the damaged one (doc 1,
         * shape 0, position 0: 00 | 00), so that a read past the first block's
         * positions end finds bytes that would decode, not the end of the list.
         */
        /* one doc, shape 1 with tf 2, but only one position byte */
        { "one block, short", { 0x02, 0x02, 0x01, 0x02, 0x05 }, 5, 2 },
        { "blocks, short",
          LIST(0x05, 0x02, SKIP_ENTRY(0, 2, 3), SKIP_ENTRY(1, 4, 5), 0x01, 0x02, 0x05, 0x00, 0x00),
          2 },
        /* one doc, shape 0, but its position varint runs off the list / block (into 00) */
        { "one block, open varint", { 0x02, 0x01, 0x00, 0x85 }, 4, 1 },
        { "blocks, open varint",
          LIST(0x05, 0x02, SKIP_ENTRY(0, 1, 2), SKIP_ENTRY(1, 3, 4), 0x00, 0x85, 0x00, 0x00), 1 },
        /* one doc, shape 0, no positions at all: block 0's positions end where its docs do */
        { "one block, none", { 0x02, 0x01, 0x00 }, 3, 1 },
        { "blocks, none",
          LIST(0x05, 0x02, SKIP_ENTRY(0, 1, 1), SKIP_ENTRY(1, 2, 3), 0x00, 0x00, 0x00), 1 },
        /* one doc, shape 2, a position past UINT32_MAX */
        { "one block, too large", { 0x02, 0x01, 0x02, 0x80, 0x80, 0x80, 0x80, 0x10 }, 8, 1 },
        { "blocks, too large",
          LIST(0x05, 0x02, SKIP_ENTRY(0, 1, 6), SKIP_ENTRY(1, 7, 8), 0x02, 0x80, 0x80, 0x80, 0x80,
               0x10, 0x00, 0x00), 1 },
    };
    uint32_t out[4];

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct postings_cursor c;
        unsigned char *copy = malloc(cases[i].len);
        assert_non_null(copy);
        memcpy(copy, cases[i].bytes, cases[i].len);
        postings_cursor_init(&c, copy, cases[i].len, true, 10);
        if (!postings_next(&c))
            fail_msg("%s: no first document (corrupt %d)", cases[i].what, c.corrupt);
        assert_int_equal(c.docid, 0);
        assert_int_equal(postings_tf_total(&c), cases[i].tf_total);
        if (postings_positions(&c, out, 4) != -1 || !c.corrupt)
            fail_msg("%s: positions read, corrupt %d", cases[i].what, c.corrupt);
        assert_int_equal(c.docid, DOCID_END);
        assert_false(postings_next(&c));
        assert_false(postings_advance(&c, 0));
        free(copy);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_postings_next_round_trips_across_blocks),
        cmocka_unit_test(test_postings_header_counts_docs_and_blocks),
        cmocka_unit_test(test_postings_known_encoding),
        cmocka_unit_test(test_postings_block_bounds),
        cmocka_unit_test(test_postings_each_shape),
        cmocka_unit_test(test_postings_empty_list_ends_at_once),
        cmocka_unit_test(test_postings_writer_reuses_buffers_between_lists),
        cmocka_unit_test(test_postings_one_block_to_several),
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
