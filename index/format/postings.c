/*
 * Posting list encoding and cursors (format in postings.h).
 *
 * Blocks and a skip table of last docids let postings_advance() pass whole
 * blocks without decoding them, which is what an AND of a rare and a common
 * term needs. Positions sit apart from docids so that a query that does not
 * check phrases never decodes them; within a block they are skipped lazily,
 * counted in pos_skip and stepped over only when someone asks for positions.
 */
#include "index/format/postings.h"

#include "index/base/bytes.h"
#include "index/base/error.h"

#define POSTINGS_STAGE_MAX ((size_t)1 << 34)

void postings_writer_init(struct postings_writer *w, uint32_t block_docs)
{
    *w = (struct postings_writer){ .block_docs = block_docs ? block_docs : POSTINGS_BLOCK_DOCS };
    buf_init(&w->skip, POSTINGS_STAGE_MAX);
    buf_init(&w->data, POSTINGS_STAGE_MAX);
    buf_init(&w->block_docs_buf, POSTINGS_STAGE_MAX);
    buf_init(&w->block_pos_buf, POSTINGS_STAGE_MAX);
}

void postings_writer_fini(struct postings_writer *w)
{
    buf_fini(&w->skip);
    buf_fini(&w->data);
    buf_fini(&w->block_docs_buf);
    buf_fini(&w->block_pos_buf);
}

void postings_writer_set_lengths(struct postings_writer *w, const uint32_t *doc_lengths)
{
    w->doc_lengths = doc_lengths;
}

static void block_bound_reset(struct postings_writer *w)
{
    for (int f = 0; f < N_FIELDS; f++) {
        w->block_max_tf[f] = 0;
        w->block_min_len[f] = UINT32_MAX;
    }
}

void postings_writer_begin(struct postings_writer *w, bool has_positions)
{
    w->has_positions = has_positions;
    w->n_docs = w->n_blocks = w->in_block = 0;
    w->last_docid = -1;
    block_bound_reset(w);
    buf_reset(&w->skip);
    buf_reset(&w->data);
    buf_reset(&w->block_docs_buf);
    buf_reset(&w->block_pos_buf);
}

#define SKIP_ENTRY_BYTES 24
#define BOUND_SATURATED 65535u

static void writer_end_block(struct postings_writer *w)
{
    if (!w->in_block)
        return;
    uint64_t docs_end = w->data.len + w->block_docs_buf.len;
    uint64_t pos_end = docs_end + w->block_pos_buf.len;
    if (pos_end > UINT32_MAX) {
        w->skip.rc = XE_LIMIT; /* offsets are u32: no list holds 4 GiB */
        return;
    }
    buf_append_u32le(&w->skip, (uint32_t)w->last_docid);
    buf_append_u32le(&w->skip, (uint32_t)docs_end);
    buf_append_u32le(&w->skip, (uint32_t)pos_end);
    unsigned char bound[4 * N_FIELDS];
    for (int f = 0; f < N_FIELDS; f++) {
        uint32_t tf = w->block_max_tf[f], len = w->block_min_len[f];
        put_u16le(bound + 4 * f, (uint16_t)(tf < BOUND_SATURATED ? tf : BOUND_SATURATED));
        put_u16le(bound + 4 * f + 2, (uint16_t)(len < BOUND_SATURATED ? len : BOUND_SATURATED));
    }
    buf_append(&w->skip, bound, sizeof bound);
    block_bound_reset(w);
    buf_append(&w->data, w->block_docs_buf.data, w->block_docs_buf.len);
    buf_append(&w->data, w->block_pos_buf.data, w->block_pos_buf.len);
    buf_reset(&w->block_docs_buf);
    buf_reset(&w->block_pos_buf);
    w->in_block = 0;
    w->n_blocks++;
}

int postings_writer_add(struct postings_writer *w, uint32_t docid, const uint32_t tf[N_FIELDS],
                        const uint32_t *positions, uint32_t n_positions)
{
    /* a full block closes when the next document comes, so that a list of
     * exactly one block keeps the one-block form */
    if (w->in_block == w->block_docs)
        writer_end_block(w);
    uint64_t gap = (uint64_t)((int64_t)docid - w->last_docid - 1);
    bool body_only = tf[FIELD_TITLE] == 0 && tf[FIELD_META] == 0;
    unsigned shape = body_only ? (tf[FIELD_BODY] == 1 ? 0 : 1)
                               : (tf[FIELD_TITLE] == 1 && !tf[FIELD_BODY] && !tf[FIELD_META] ? 2 : 3);

    buf_append_varint(&w->block_docs_buf, gap << 2 | shape);
    if (shape == 1)
        buf_append_varint(&w->block_docs_buf, tf[FIELD_BODY]);
    if (shape == 3)
        for (int f = 0; f < N_FIELDS; f++)
            buf_append_varint(&w->block_docs_buf, tf[f]);
    if (w->has_positions) {
        int64_t prev = -1;
        for (uint32_t i = 0; i < n_positions; i++) {
            buf_append_varint(&w->block_pos_buf, (uint64_t)((int64_t)positions[i] - prev - 1));
            prev = positions[i];
        }
    }
    for (int f = 0; f < N_FIELDS; f++) {
        uint32_t len = w->doc_lengths ? w->doc_lengths[(size_t)docid * N_FIELDS + f] : 0;
        if (tf[f] > w->block_max_tf[f])
            w->block_max_tf[f] = tf[f];
        if (len < w->block_min_len[f])
            w->block_min_len[f] = len;
    }
    w->last_docid = docid;
    w->n_docs++;
    w->in_block++;
    return w->block_docs_buf.rc ? w->block_docs_buf.rc : w->block_pos_buf.rc;
}

int postings_writer_finish(struct postings_writer *w, struct buf *out)
{
    if (w->n_blocks == 0 && w->in_block) {
        /* one block: no skip table, only where its positions start */
        buf_append_varint(out, (uint64_t)w->n_docs << 1);
        buf_append_varint(out, w->block_docs_buf.len);
        buf_append(out, w->block_docs_buf.data, w->block_docs_buf.len);
        buf_append(out, w->block_pos_buf.data, w->block_pos_buf.len);
        if (w->block_docs_buf.rc || w->block_pos_buf.rc)
            return w->block_docs_buf.rc ? w->block_docs_buf.rc : w->block_pos_buf.rc;
        return out->rc;
    }
    writer_end_block(w);
    buf_append_varint(out, (uint64_t)w->n_docs << 1 | 1);
    buf_append_varint(out, w->n_blocks);
    buf_append(out, w->skip.data, w->skip.len);
    buf_append(out, w->data.data, w->data.len);
    if (w->skip.rc || w->data.rc)
        return w->skip.rc ? w->skip.rc : w->data.rc;
    return out->rc;
}

static bool cursor_fail(struct postings_cursor *c)
{
    c->corrupt = true;
    c->docid = DOCID_END;
    c->next_block = c->n_blocks;
    c->docs_p = c->docs_end;
    return false;
}

void postings_cursor_init(struct postings_cursor *c, const unsigned char *data, size_t len,
                          bool has_positions, uint32_t max_docid)
{
    const unsigned char *p = data, *end = data + len;
    uint64_t head;
    uint32_t n_docs, n_blocks = 1;

    *c = (struct postings_cursor){ .docid = DOCID_END, .has_positions = has_positions,
                                   .max_docid = max_docid, .prev_docid = -1 };
    if (!varint_get(&p, end, &head) || (head >> 1) > max_docid ||
        ((head & 1) && !varint_get32(&p, end, &n_blocks)) || n_blocks > (head >> 1)) {
        cursor_fail(c);
        return;
    }
    n_docs = (uint32_t)(head >> 1);
    c->n_docs = n_docs;
    c->n_blocks = n_blocks;
    c->end = end;
    if (!(head & 1)) {
        /* one block: its docs_bytes stands in for the skip table */
        uint64_t docs_bytes;
        if (!n_docs || !varint_get(&p, end, &docs_bytes) || !docs_bytes ||
            docs_bytes > (uint64_t)(end - p)) {
            cursor_fail(c);
            return;
        }
        c->one_block = true;
        c->data = p;
        c->docs_end = p + docs_bytes; /* kept here until the block is entered */
        return;
    }
    if ((uint64_t)n_blocks * SKIP_ENTRY_BYTES > (uint64_t)(end - p)) {
        cursor_fail(c);
        return;
    }
    c->skip = p;
    c->data = p + (size_t)n_blocks * SKIP_ENTRY_BYTES;
    /* the last block ends where the list does: a cut list is damage at once */
    if (n_blocks && get_u32le(c->data - SKIP_ENTRY_BYTES + 8) != (uint64_t)(end - c->data))
        cursor_fail(c);
}

uint32_t postings_cursor_n_docs(const struct postings_cursor *c)
{
    return c->n_docs;
}

static uint32_t block_last(const struct postings_cursor *c, uint32_t i)
{
    return get_u32le(c->skip + (size_t)i * SKIP_ENTRY_BYTES);
}

/* The first block from lo whose last docid reaches target (n_blocks: none). */
static uint32_t block_search(const struct postings_cursor *c, uint32_t lo, uint32_t target)
{
    uint32_t hi = c->n_blocks;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (block_last(c, mid) < target)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

bool postings_block_bound(const struct postings_cursor *c, uint32_t target,
                          struct postings_bound *out)
{
    if (c->corrupt || !c->n_blocks || target >= c->max_docid)
        return false;
    if (c->one_block) {
        /* ended, or on its last document and that one is short of target */
        if (c->started && c->docs_p == c->docs_end &&
            (c->docid == DOCID_END || c->docid < target))
            return false;
        out->last_docid = c->max_docid - 1;
        for (int f = 0; f < N_FIELDS; f++) {
            out->max_tf[f] = UINT32_MAX;
            out->min_len[f] = 0;
        }
        return true;
    }
    /* from the current block on: earlier ones are behind the cursor */
    uint32_t from = c->started && c->next_block ? c->next_block - 1 : 0;
    uint32_t i = block_search(c, from, target);
    if (i >= c->n_blocks)
        return false;
    const unsigned char *e = c->skip + (size_t)i * SKIP_ENTRY_BYTES;
    out->last_docid = get_u32le(e);
    for (int f = 0; f < N_FIELDS; f++) {
        uint32_t tf = get_u16le(e + 12 + 4 * f);
        out->max_tf[f] = tf == BOUND_SATURATED ? UINT32_MAX : tf;
        out->min_len[f] = get_u16le(e + 14 + 4 * f);
    }
    return true;
}

/* Enters block i: checks its entry against the one before, so that docids only grow. */
static bool cursor_enter_block(struct postings_cursor *c, uint32_t i)
{
    if (i >= c->n_blocks)
        return false;
    if (c->one_block) {
        c->docs_p = c->data;
        c->pos_p = c->docs_end;
        c->pos_end = c->end;
        c->block_last_docid = (int64_t)c->max_docid - 1; /* unknown until the end */
    } else {
        const unsigned char *e = c->skip + (size_t)i * SKIP_ENTRY_BYTES;
        uint64_t last = get_u32le(e), docs_end = get_u32le(e + 4), pos_end = get_u32le(e + 8);
        uint64_t start = i ? get_u32le(e - SKIP_ENTRY_BYTES + 8) : 0;
        int64_t prev_last = i ? (int64_t)get_u32le(e - SKIP_ENTRY_BYTES) : -1;
        if (start >= docs_end || docs_end > pos_end || pos_end > (uint64_t)(c->end - c->data) ||
            last >= c->max_docid || (int64_t)last <= prev_last || prev_last < c->prev_docid)
            return cursor_fail(c);
        c->prev_docid = prev_last; /* the first gap counts from the last docid before */
        c->docs_p = c->data + start;
        c->docs_end = c->data + docs_end;
        c->pos_p = c->docs_end;
        c->pos_end = c->data + pos_end;
        c->block_last_docid = (int64_t)last;
    }
    c->next_block = i + 1;
    c->pos_skip = 0;
    c->started = true;
    return true;
}

static bool cursor_decode_doc(struct postings_cursor *c)
{
    uint64_t head;

    if (!varint_get(&c->docs_p, c->docs_end, &head) || (head >> 2) >= c->max_docid)
        return cursor_fail(c);
    int64_t docid = c->prev_docid + 1 + (int64_t)(head >> 2);
    if (docid > c->block_last_docid)
        return cursor_fail(c);
    unsigned shape = head & 3;
    if (shape != 3) {
        c->tf[FIELD_TITLE] = shape == 2;
        c->tf[FIELD_BODY] = shape == 0;
        c->tf[FIELD_META] = 0;
        if (shape == 1 && (!varint_get32(&c->docs_p, c->docs_end, &c->tf[FIELD_BODY]) ||
                           !c->tf[FIELD_BODY] || c->tf[FIELD_BODY] > FIELD_MAX_TOKENS))
            return cursor_fail(c);
    } else {
        uint32_t total = 0;
        for (int f = 0; f < N_FIELDS; f++) {
            if (!varint_get32(&c->docs_p, c->docs_end, &c->tf[f]) || c->tf[f] > FIELD_MAX_TOKENS)
                return cursor_fail(c);
            total += c->tf[f];
        }
        if (!total)
            return cursor_fail(c);
    }
    c->prev_docid = docid;
    c->docid = (uint32_t)docid;
    c->pos_read = false;
    if (c->docs_p == c->docs_end && docid != c->block_last_docid && !c->one_block)
        return cursor_fail(c);
    return true;
}

bool postings_next(struct postings_cursor *c)
{
    if (c->corrupt)
        return false;
    if (c->docid != DOCID_END && !c->pos_read)
        c->pos_skip += postings_tf_total(c);
    if (c->docs_p == c->docs_end || !c->started) {
        if (!cursor_enter_block(c, c->next_block)) {
            c->docid = DOCID_END;
            c->docs_p = c->docs_end;
            return false;
        }
    }
    return cursor_decode_doc(c);
}

bool postings_advance(struct postings_cursor *c, uint32_t target)
{
    if (c->corrupt)
        return false;
    if (c->docid != DOCID_END && c->docid >= target && c->started)
        return true;
    /* Jump to the first block whose last docid reaches target: a binary
     * search of the table from the next block on. */
    if (!c->started || c->docs_p == c->docs_end || c->block_last_docid < target) {
        uint32_t lo = c->one_block ? c->next_block : block_search(c, c->next_block, target);
        if (!cursor_enter_block(c, lo)) { /* no block reaches target: the end */
            c->docid = DOCID_END;
            c->docs_p = c->docs_end;
            c->next_block = c->n_blocks;
            return false;
        }
        c->docid = DOCID_END;
    }
    while (postings_next(c))
        if (c->docid >= target)
            return true;
    return false;
}

static bool skip_varints(const unsigned char **p, const unsigned char *end, uint32_t n)
{
    const unsigned char *q = *p;

    while (n) {
        if (q >= end)
            return false;
        if (!(*q++ & 0x80))
            n--;
    }
    *p = q;
    return true;
}

int postings_positions(struct postings_cursor *c, uint32_t *out, uint32_t cap)
{
    uint32_t n = postings_tf_total(c);

    if (!c->has_positions || c->corrupt || c->docid == DOCID_END)
        return -1;
    if (c->pos_read) {
        c->pos_p = c->pos_doc; /* asked again: read them again */
    } else if (!skip_varints(&c->pos_p, c->pos_end, c->pos_skip)) {
        cursor_fail(c);
        return -1;
    }
    c->pos_skip = 0;
    c->pos_doc = c->pos_p;
    int64_t prev = -1;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t delta;
        if (!varint_get(&c->pos_p, c->pos_end, &delta) || delta > UINT32_MAX) {
            cursor_fail(c);
            return -1;
        }
        prev += (int64_t)delta + 1;
        if (prev > UINT32_MAX) {
            cursor_fail(c);
            return -1;
        }
        if (i < cap)
            out[i] = (uint32_t)prev;
    }
    c->pos_read = true; /* next() must not skip them again */
    return (int)(n < cap ? n : cap);
}
