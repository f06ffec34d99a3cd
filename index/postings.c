/*
 * Posting list encoding and cursors (format in postings.h).
 *
 * Blocks and a skip table of last docids let postings_advance() pass whole
 * blocks without decoding them, which is what an AND of a rare and a common
 * term needs. Positions sit apart from docids so that a query that does not
 * check phrases never decodes them; within a block they are skipped lazily,
 * counted in pos_skip and stepped over only when someone asks for positions.
 */
#include "index/postings.h"

#include "index/bytes.h"
#include "index/error.h"

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

void postings_writer_begin(struct postings_writer *w, bool has_positions)
{
    w->has_positions = has_positions;
    w->n_docs = w->n_blocks = w->in_block = 0;
    w->last_docid = -1;
    w->block_start_prev = 0;
    buf_reset(&w->skip);
    buf_reset(&w->data);
    buf_reset(&w->block_docs_buf);
    buf_reset(&w->block_pos_buf);
}

static void writer_end_block(struct postings_writer *w)
{
    if (!w->in_block)
        return;
    buf_append_varint(&w->skip, (uint64_t)(w->last_docid - w->block_start_prev));
    buf_append_varint(&w->skip, w->block_docs_buf.len);
    buf_append_varint(&w->skip, w->block_pos_buf.len);
    buf_append(&w->data, w->block_docs_buf.data, w->block_docs_buf.len);
    buf_append(&w->data, w->block_pos_buf.data, w->block_pos_buf.len);
    buf_reset(&w->block_docs_buf);
    buf_reset(&w->block_pos_buf);
    w->block_start_prev = w->last_docid;
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
    c->blocks_left = 0;
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
    if (!(head & 1)) {
        /* one block: its docs_bytes stands in for the skip table */
        uint64_t docs_bytes;
        const unsigned char *q = p;
        if (!n_docs || !varint_get(&q, end, &docs_bytes) || !docs_bytes ||
            docs_bytes > (uint64_t)(end - q)) {
            cursor_fail(c);
            return;
        }
        c->one_block = true;
        c->n_docs = n_docs;
        c->blocks_left = 1;
        c->skip_p = p;
        c->skip_end = q;
        c->block_p = q;
        c->end = end;
        return;
    }
    c->n_docs = n_docs;
    c->blocks_left = n_blocks;
    c->skip_p = p;
    c->end = end;
    /* The data starts after the skip table: walk it once to find where. */
    for (uint32_t i = 0; i < n_blocks; i++) {
        uint64_t v;
        for (int k = 0; k < 3; k++)
            if (!varint_get(&p, end, &v)) {
                cursor_fail(c);
                return;
            }
    }
    c->skip_end = p;
    c->block_p = p;
}

uint32_t postings_cursor_n_docs(const struct postings_cursor *c)
{
    return c->n_docs;
}

/* Reads the next skip entry; the block is not decoded, only located. */
static bool cursor_load_block(struct postings_cursor *c, int64_t *last_docid,
                              const unsigned char **docs, size_t *docs_bytes, size_t *pos_bytes)
{
    uint64_t delta, d_bytes, p_bytes;

    if (c->one_block) {
        if (!varint_get(&c->skip_p, c->skip_end, &d_bytes))
            return cursor_fail(c);
        *docs = c->block_p;
        *docs_bytes = (size_t)d_bytes;
        *pos_bytes = (size_t)(c->end - c->block_p) - (size_t)d_bytes;
        *last_docid = (int64_t)c->max_docid - 1; /* unknown until the end */
        return true;
    }
    if (!varint_get(&c->skip_p, c->skip_end, &delta) ||
        !varint_get(&c->skip_p, c->skip_end, &d_bytes) ||
        !varint_get(&c->skip_p, c->skip_end, &p_bytes))
        return cursor_fail(c);
    if (d_bytes > (uint64_t)(c->end - c->block_p) ||
        p_bytes > (uint64_t)(c->end - c->block_p) - d_bytes || d_bytes == 0)
        return cursor_fail(c);
    if (delta >= c->max_docid || (c->started && delta == 0))
        return cursor_fail(c);
    *last_docid = (c->started ? c->block_last_docid : 0) + (int64_t)delta;
    if (*last_docid >= c->max_docid)
        return cursor_fail(c);
    *docs = c->block_p;
    *docs_bytes = (size_t)d_bytes;
    *pos_bytes = (size_t)p_bytes;
    return true;
}

static bool cursor_enter_block(struct postings_cursor *c)
{
    int64_t last;
    const unsigned char *docs;
    size_t d_bytes, p_bytes;

    if (!c->blocks_left || !cursor_load_block(c, &last, &docs, &d_bytes, &p_bytes))
        return false;
    c->blocks_left--;
    c->docs_p = docs;
    c->docs_end = docs + d_bytes;
    c->pos_p = c->docs_end;
    c->pos_end = c->pos_p + p_bytes;
    c->block_p = c->pos_end;
    c->block_last_docid = last;
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
        if (!cursor_enter_block(c)) {
            c->docid = DOCID_END;
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
    /* Skip whole blocks whose last docid is below target. */
    if (!c->started || c->docs_p == c->docs_end || c->block_last_docid < target) {
        if (c->started)
            c->prev_docid = c->block_last_docid; /* the rest of this block is passed over */
        for (;;) {
            int64_t last;
            const unsigned char *docs;
            size_t d_bytes, p_bytes;
            const unsigned char *save = c->skip_p;

            if (!c->blocks_left) {
                c->docid = DOCID_END;
                c->docs_p = c->docs_end;
                return false;
            }
            if (!cursor_load_block(c, &last, &docs, &d_bytes, &p_bytes))
                return false;
            if (last >= target) {
                c->skip_p = save; /* enter it properly */
                break;
            }
            c->blocks_left--;
            c->block_p = docs + d_bytes + p_bytes;
            c->block_last_docid = last;
            c->prev_docid = last;
            c->started = true;
        }
        if (!cursor_enter_block(c))
            return false;
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
