/*
 * Snippets and highlights (see snippet.h).
 *
 * The densest window is found over match ranges sorted by start: for each
 * range as a window start, the ranges that end within max_chars of it are
 * counted, preferring windows that show more distinct query leaves, then
 * more matches. The window is then widened to max_chars with a little
 * context before the first match. Whitespace runs print as one space so a
 * snippet reads as one line.
 *
 * The bound on work (SNIPPET_SCAN_BYTES) is kept by the token callback,
 * which stops the tokenizer at the first token that starts past it; the
 * tokenizer streams, so nothing after that point is read. A token that
 * starts before it and ends after (a word, a bigram being made) is whole.
 * Windows and fragments are still cut from the whole text, so a match near
 * the bound keeps its context after it.
 */
#include "query/snippet.h"

#include <stdlib.h>
#include <string.h>

#include "index/base/error.h"
#include "index/text/tokenizer.h"
#include "query/qparse.h"

#define SNIPPET_MAX_TOKENS (1u << 20)
#define SNIPPET_MAX_RANGES 4096

struct tok_ref {
    const char *term; /* copied into the token arena */
    size_t len;
    uint32_t position;
    uint32_t start_byte, end_byte, start_char, end_char;
    bool hidden;
};

struct range {
    uint32_t start_byte, end_byte, start_char, end_char;
    uint32_t leaf; /* which leaf matched, for counting distinct ones */
};

struct marker {
    struct tok_ref *toks;
    size_t n_toks, cap_toks;
    struct buf terms;
    bool nomem;

    struct range *ranges;
    size_t n_ranges, cap_ranges;
    uint32_t leaf_no;
    bool in_title;
    size_t scan_end; /* the end of the last token looked at */
};

static _Thread_local size_t last_scan_bytes;

size_t snippet_last_scan_bytes(void)
{
    return last_scan_bytes;
}

static int keep_token(void *ctx, const struct token *tok)
{
    struct marker *m = ctx;

    if (tok->end_byte > m->scan_end)
        m->scan_end = tok->end_byte;
    if (tok->start_byte >= SNIPPET_SCAN_BYTES || m->n_toks == SNIPPET_MAX_TOKENS)
        return 1;
    if (m->n_toks == m->cap_toks) {
        size_t cap = m->cap_toks ? m->cap_toks * 2 : 256;
        struct tok_ref *grown = realloc(m->toks, cap * sizeof *grown);
        if (!grown) {
            m->nomem = true;
            return 1;
        }
        m->toks = grown;
        m->cap_toks = cap;
    }
    size_t off = m->terms.len;
    if (buf_append(&m->terms, tok->term, tok->term_len)) {
        m->nomem = true;
        return 1;
    }
    m->toks[m->n_toks++] = (struct tok_ref){
        .term = (const char *)(uintptr_t)off, /* an offset until terms stop growing */
        .len = tok->term_len,
        .position = tok->position,
        .start_byte = tok->start_byte,
        .end_byte = tok->end_byte,
        .start_char = tok->start_char,
        .end_char = tok->end_char,
        .hidden = tok->kind == TOKEN_CJK_CHAR,
    };
    return 0;
}

static void add_range(struct marker *m, const struct tok_ref *first, const struct tok_ref *last)
{
    if (m->n_ranges == SNIPPET_MAX_RANGES)
        return;
    if (m->n_ranges == m->cap_ranges) {
        size_t cap = m->cap_ranges ? m->cap_ranges * 2 : 32;
        struct range *grown = realloc(m->ranges, cap * sizeof *grown);
        if (!grown) {
            m->nomem = true;
            return;
        }
        m->ranges = grown;
        m->cap_ranges = cap;
    }
    m->ranges[m->n_ranges++] = (struct range){
        .start_byte = first->start_byte,
        .end_byte = last->end_byte > first->end_byte ? last->end_byte : first->end_byte,
        .start_char = first->start_char,
        .end_char = last->end_char > first->end_char ? last->end_char : first->end_char,
        .leaf = m->leaf_no,
    };
}

static bool tok_is(const struct tok_ref *t, const struct qterm *q)
{
    return t->len == q->len && !memcmp(t->term, q->text, q->len);
}

/* Finds visible token at position pos at or after index from (tokens are in order). */
static const struct tok_ref *visible_at(const struct marker *m, size_t from, uint32_t pos)
{
    for (size_t i = from; i < m->n_toks && m->toks[i].position <= pos; i++)
        if (!m->toks[i].hidden && m->toks[i].position == pos)
            return &m->toks[i];
    return NULL;
}

static void mark_leaf(void *ctx, const struct qnode *leaf)
{
    struct marker *m = ctx;

    m->leaf_no++;
    if (leaf->title_only && !m->in_title)
        return;
    const struct qterm *first = &leaf->terms[0];
    bool hidden = first->len && first->text[0] == TERM_CHAR_PREFIX;
    for (size_t i = 0; i < m->n_toks; i++) {
        const struct tok_ref *t = &m->toks[i];
        if (t->hidden != hidden || !tok_is(t, first))
            continue;
        const struct tok_ref *last = t;
        bool ok = true;
        for (uint32_t k = 1; k < leaf->n_terms && ok; k++) {
            const struct tok_ref *u = visible_at(m, i, t->position + leaf->terms[k].offset);
            ok = u && tok_is(u, &leaf->terms[k]);
            last = u;
        }
        if (ok)
            add_range(m, t, last);
    }
}

static int range_cmp(const void *a, const void *b)
{
    const struct range *x = a, *y = b;
    if (x->start_byte != y->start_byte)
        return x->start_byte < y->start_byte ? -1 : 1;
    return (x->end_byte < y->end_byte) - (x->end_byte > y->end_byte);
}

/* Tokenizes text, marks every match, sorts the ranges. */
static int marker_run(struct marker *m, const struct query *q, const char *text, size_t len,
                      bool in_title)
{
    memset(m, 0, sizeof *m);
    buf_init(&m->terms, (size_t)SNIPPET_MAX_TOKENS * (TOKEN_MAX_BYTES + 1));
    m->in_title = in_title;
    tokenize(text, len, 0, q->tokenize_flags, keep_token, m);
    last_scan_bytes = m->scan_end;
    for (size_t i = 0; i < m->n_toks; i++)
        m->toks[i].term = (const char *)m->terms.data + (uintptr_t)m->toks[i].term;
    if (!m->nomem)
        query_positive_leaves(q, mark_leaf, m);
    if (m->n_ranges)
        qsort(m->ranges, m->n_ranges, sizeof *m->ranges, range_cmp);
    return m->nomem ? XE_NOMEM : XE_OK;
}

static void marker_fini(struct marker *m)
{
    free(m->toks);
    free(m->ranges);
    buf_fini(&m->terms);
}

int html_escape(struct buf *out, const char *text, size_t len)
{
    size_t plain = 0;

    for (size_t i = 0; i < len; i++) {
        const char *rep = NULL;
        switch (text[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: continue;
        }
        buf_append(out, text + plain, i - plain);
        buf_append_str(out, rep);
        plain = i + 1;
    }
    buf_append(out, text + plain, len - plain);
    return out->rc;
}

/* Escapes text[from, to) into out, folding whitespace runs to one space if asked. */
static void emit_plain(struct buf *out, const char *text, size_t from, size_t to, bool fold)
{
    if (!fold) {
        html_escape(out, text + from, to - from);
        return;
    }
    size_t start = from;
    for (size_t i = from; i < to; i++) {
        if (text[i] != '\n' && text[i] != '\r' && text[i] != '\t' && text[i] != ' ')
            continue;
        html_escape(out, text + start, i - start);
        if (!out->len || out->data[out->len - 1] != ' ')
            buf_append_byte(out, ' ');
        start = i + 1;
    }
    html_escape(out, text + start, to - start);
}

/* Writes text[from, to) with <em> around the parts of the (sorted) ranges in it. */
static void emit_marked(struct buf *out, const char *text, size_t from, size_t to,
                        const struct range *r, size_t n, bool fold)
{
    size_t at = from;

    for (size_t i = 0; i < n; i++) {
        size_t s = r[i].start_byte, e = r[i].end_byte;
        /* merge the ranges that overlap this one */
        while (i + 1 < n && r[i + 1].start_byte < e) {
            if (r[i + 1].end_byte > e)
                e = r[i + 1].end_byte;
            i++;
        }
        if (e <= at || s >= to)
            continue;
        if (s < at)
            s = at;
        if (e > to)
            e = to;
        emit_plain(out, text, at, s, fold);
        buf_append_str(out, "<em>");
        emit_plain(out, text, s, e, fold);
        buf_append_str(out, "</em>");
        at = e;
    }
    emit_plain(out, text, at, to, fold);
}

int highlight_text(const struct query *q, const char *text, size_t len, bool in_title,
                   struct buf *out)
{
    struct marker m;
    int rc = marker_run(&m, q, text, len, in_title);

    if (!rc) {
        emit_marked(out, text, 0, len, m.ranges, m.n_ranges, false);
        rc = out->rc;
    }
    marker_fini(&m);
    return rc;
}

/* Byte offset of code point index `chars` from byte `from` (clamped to len). */
static size_t advance_chars(const char *text, size_t len, size_t from, size_t chars)
{
    size_t i = from;
    while (i < len && chars) {
        i++;
        while (i < len && ((unsigned char)text[i] & 0xC0) == 0x80)
            i++;
        chars--;
    }
    return i;
}

/* Byte offset `chars` code points before byte `from` (clamped to 0). */
static size_t back_chars(const char *text, size_t from, size_t chars)
{
    size_t i = from;
    while (i > 0 && chars) {
        i--;
        while (i > 0 && ((unsigned char)text[i] & 0xC0) == 0x80)
            i--;
        chars--;
    }
    return i;
}

/* Where each fragment of a snippet starts and ends, in bytes. */
struct fragment {
    size_t start, end;
};

#define SNIPPET_MAX_FRAGMENTS 3

/* The window starting at range i: how many distinct leaves and matches fit in max_chars. */
static void window_at(const struct marker *m, size_t i, size_t max_chars, uint64_t *seen,
                      size_t *distinct, size_t *count, size_t *span_chars)
{
    *seen = 0;
    *distinct = *count = *span_chars = 0;
    for (size_t j = i; j < m->n_ranges; j++) {
        if (m->ranges[j].end_char > m->ranges[i].start_char + max_chars)
            break;
        uint64_t bit = 1ull << (m->ranges[j].leaf % 64);
        *distinct += !(*seen & bit);
        *seen |= bit;
        (*count)++;
        if (m->ranges[j].end_char - m->ranges[i].start_char > *span_chars)
            *span_chars = m->ranges[j].end_char - m->ranges[i].start_char;
    }
}

/*
 * Picks fragments: the densest window; when it misses leaves that match
 * elsewhere, up to two more fragments around their first matches, the
 * characters shared out between them.
 */
static size_t choose_fragments(const struct marker *m, const char *text, size_t len,
                               size_t max_chars, struct fragment *out)
{
    size_t best = 0, best_distinct = 0, best_count = 0, best_span = 0;
    uint64_t best_seen = 0;

    if (!m->n_ranges) {
        out[0] = (struct fragment){ 0, advance_chars(text, len, 0, max_chars) };
        return 1;
    }
    for (size_t i = 0; i < m->n_ranges; i++) {
        uint64_t seen;
        size_t distinct, count, span;
        window_at(m, i, max_chars, &seen, &distinct, &count, &span);
        if (distinct > best_distinct || (distinct == best_distinct && count > best_count)) {
            best = i;
            best_distinct = distinct;
            best_count = count;
            best_seen = seen;
            best_span = span;
        }
    }
    size_t anchors[SNIPPET_MAX_FRAGMENTS] = { best };
    size_t n = 1;
    uint64_t covered = best_seen;
    for (size_t i = 0; i < m->n_ranges && n < SNIPPET_MAX_FRAGMENTS; i++) {
        uint64_t bit = 1ull << (m->ranges[i].leaf % 64);
        if (covered & bit)
            continue;
        covered |= bit;
        anchors[n++] = i;
    }
    /* in text order */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && anchors[j - 1] > anchors[j]; j--) {
            size_t t = anchors[j];
            anchors[j] = anchors[j - 1];
            anchors[j - 1] = t;
        }
    size_t share = max_chars / n, made = 0;
    for (size_t i = 0; i < n; i++) {
        size_t first = m->ranges[anchors[i]].start_byte;
        /* a little context before the match, but not so much that the densest
         * window's own matches fall off its end */
        size_t context = n == 1 ? share / 5 : share / 8;
        if (anchors[i] == best && share > best_span && share - best_span < context)
            context = share - best_span;
        size_t start = back_chars(text, first, context);
        if (made && start < out[made - 1].end)
            start = out[made - 1].end;
        size_t end = advance_chars(text, len, start, share);
        if (end <= start)
            continue;
        if (made && start == out[made - 1].end)
            out[made - 1].end = end; /* contiguous: one fragment */
        else
            out[made++] = (struct fragment){ start, end };
    }
    /* a lone window that hit the end of the text: use the room before it */
    if (made == 1 && out[0].end == len && out[0].start > 0) {
        size_t shown = utf8_count_chars(text + out[0].start, len - out[0].start);
        if (shown < max_chars)
            out[0].start = back_chars(text, out[0].start, max_chars - shown);
    }
    return made;
}

int snippet_make(const struct query *q, const char *text, size_t len, size_t max_chars,
                 struct buf *out)
{
    struct marker m;
    struct fragment frags[SNIPPET_MAX_FRAGMENTS];
    int rc = marker_run(&m, q, text, len, false);

    if (rc) {
        marker_fini(&m);
        return rc;
    }
    size_t n = choose_fragments(&m, text, len, max_chars, frags);
    for (size_t i = 0; i < n; i++) {
        if (frags[i].start > 0)
            buf_append_str(out, "…");
        emit_marked(out, text, frags[i].start, frags[i].end, m.ranges, m.n_ranges, true);
    }
    if (n && frags[n - 1].end < len)
        buf_append_str(out, "…");
    rc = out->rc;
    marker_fini(&m);
    return rc;
}
