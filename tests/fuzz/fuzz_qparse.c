/*
 * Fuzz target: query/qparse.h, then query/snippet.h with the parsed query.
 *
 * The input is the query text. A refused query must say why (XE_INPUT and a
 * message). A parsed one is walked: n_leaves and n_terms as counted, at most
 * QUERY_MAX_TERMS terms; TERM nodes have one term and PHRASE nodes two or
 * more, with offsets from 0 strictly increasing; AND and OR have two or more
 * children (a group of one is collapsed), OR only un-negated leaves, the
 * root is not negated; terms are non-empty valid UTF-8 with the hidden
 * prefix only on a lone term.
 *
 * Then the query highlights its own text, which is valid UTF-8 when the
 * parse succeeded: highlight_text() must give back exactly the text once its
 * <em> tags are dropped and its HTML escapes undone, with tags balanced and
 * not nested; snippet_make() must give balanced tags and valid UTF-8.
 */
#include "tests/fuzz/fuzz.h"

#include "index/base/buf.h"
#include "index/base/error.h"
#include "index/base/limits.h"
#include "index/text/tokenizer.h"
#include "query/qparse.h"
#include "query/snippet.h"

#define OUT_MAX_BYTES ((size_t)64 << 20)

struct counts {
    uint32_t leaves, terms, depth;
};

static void check_node(const struct qnode *n, const struct qnode *parent, struct counts *c,
                       uint32_t depth)
{
    FUZZ_CHECK(depth <= 3, "tree of depth %u", depth);
    switch (n->type) {
    case QNODE_TERM:
    case QNODE_PHRASE:
        FUZZ_CHECK(n->n_children == 0 && n->children == NULL, "leaf with children");
        FUZZ_CHECK(n->type == QNODE_TERM ? n->n_terms == 1 : n->n_terms >= 2,
                   "node type %d with %u terms", (int)n->type, n->n_terms);
        FUZZ_CHECK(n->terms != NULL, "leaf without terms");
        for (uint32_t i = 0; i < n->n_terms; i++) {
            const struct qterm *t = &n->terms[i];
            FUZZ_CHECK(t->text != NULL && t->len > 0, "empty term %u", i);
            bool hidden = t->text[0] == TERM_CHAR_PREFIX;
            FUZZ_CHECK(!hidden || (n->type == QNODE_TERM && t->len >= 2 && t->len <= 5),
                       "hidden prefix on term %u of a %u-term leaf", i, n->n_terms);
            FUZZ_CHECK(t->len <= TOKEN_MAX_BYTES + (size_t)hidden, "term of %zu bytes", t->len);
            FUZZ_CHECK(utf8_check(t->text + hidden, t->len - hidden, NULL),
                       "term %u is not valid UTF-8", i);
            if (i == 0)
                FUZZ_CHECK(t->offset == 0, "first term at offset %u", t->offset);
            else
                FUZZ_CHECK(t->offset > n->terms[i - 1].offset, "offset %u after %u", t->offset,
                           n->terms[i - 1].offset);
        }
        c->leaves++;
        c->terms += n->n_terms;
        break;
    case QNODE_AND:
    case QNODE_OR:
        FUZZ_CHECK(n->n_terms == 0, "group with terms");
        FUZZ_CHECK(n->n_children >= 2, "group of %u children", n->n_children);
        FUZZ_CHECK(!parent || (parent->type == QNODE_AND && n->type == QNODE_OR),
                   "group type %d under type %d", (int)n->type, (int)parent->type);
        for (uint32_t i = 0; i < n->n_children; i++) {
            FUZZ_CHECK(n->children[i] != NULL, "NULL child");
            if (n->type == QNODE_OR)
                FUZZ_CHECK(!n->children[i]->negated, "negated child of OR");
            check_node(n->children[i], n, c, depth + 1);
        }
        break;
    default:
        FUZZ_CHECK(0, "node type %d", (int)n->type);
    }
}

/* HTML-unescapes out without its <em> tags and compares with text. */
static void check_highlight(const char *text, size_t len, const struct buf *out)
{
    const char *p = out->len ? (const char *)out->data : "", *end = p + out->len;
    static const struct { const char *esc; char c; } escapes[] = {
        { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' }, { "&#39;", '\'' },
    };
    size_t at = 0;
    bool open = false;

    while (p < end) {
        size_t left = (size_t)(end - p);
        if (left >= 4 && !memcmp(p, "<em>", 4)) {
            FUZZ_CHECK(!open, "nested <em> at byte %zu of the text", at);
            open = true;
            p += 4;
            continue;
        }
        if (left >= 5 && !memcmp(p, "</em>", 5)) {
            FUZZ_CHECK(open, "</em> without <em> at byte %zu of the text", at);
            open = false;
            p += 5;
            continue;
        }
        char c = *p;
        FUZZ_CHECK(c != '<' && c != '>' && c != '"' && c != '\'', "unescaped %c in output", c);
        if (c == '&') {
            size_t k;
            for (k = 0; k < sizeof escapes / sizeof escapes[0]; k++) {
                size_t n = strlen(escapes[k].esc);
                if (left >= n && !memcmp(p, escapes[k].esc, n)) {
                    c = escapes[k].c;
                    p += n;
                    break;
                }
            }
            FUZZ_CHECK(k < sizeof escapes / sizeof escapes[0], "bare & in output");
        } else {
            p++;
        }
        FUZZ_CHECK(at < len && text[at] == c, "output differs from the text at byte %zu", at);
        at++;
    }
    FUZZ_CHECK(!open, "unclosed <em>");
    FUZZ_CHECK(at == len, "output has %zu of %zu text bytes", at, len);
}

/* Tags balanced and not nested, the rest valid UTF-8 without raw < or >. */
static void check_snippet(const struct buf *out)
{
    const char *p = out->len ? (const char *)out->data : "", *end = p + out->len;
    bool open = false;

    FUZZ_CHECK(utf8_check(p, out->len, NULL), "snippet is not valid UTF-8");
    while (p < end) {
        size_t left = (size_t)(end - p);
        if (left >= 4 && !memcmp(p, "<em>", 4)) {
            FUZZ_CHECK(!open, "nested <em> in snippet");
            open = true;
            p += 4;
        } else if (left >= 5 && !memcmp(p, "</em>", 5)) {
            FUZZ_CHECK(open, "</em> without <em> in snippet");
            open = false;
            p += 5;
        } else {
            FUZZ_CHECK(*p != '<' && *p != '>', "unescaped %c in snippet", *p);
            p++;
        }
    }
    FUZZ_CHECK(!open, "unclosed <em> in snippet");
}

static void count_positive(void *ctx, const struct qnode *leaf)
{
    uint32_t *n = ctx;

    FUZZ_CHECK(!leaf->negated, "negated leaf given as positive");
    FUZZ_CHECK(leaf->type == QNODE_TERM || leaf->type == QNODE_PHRASE, "not a leaf");
    (*n)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct query *q = NULL;
    struct xerr err = { 0 };
    int rc = query_parse(text, size, TOKENIZE_DEFAULT, &q, &err);

    if (rc) {
        FUZZ_CHECK(rc == XE_INPUT && err.code == XE_INPUT && err.msg[0],
                   "refused with %d (%s)", rc, err.msg);
        FUZZ_CHECK(q == NULL, "out set on failure");
        return 0;
    }
    FUZZ_CHECK(q != NULL, "no query");
    FUZZ_CHECK(size <= QUERY_MAX_BYTES && utf8_check(text, size, NULL),
               "accepted a query that is too long or not UTF-8");

    struct counts c = { 0 };
    if (q->root) {
        FUZZ_CHECK(!q->root->negated, "negated root");
        check_node(q->root, NULL, &c, 0);
    }
    FUZZ_CHECK(c.leaves == q->n_leaves && c.terms == q->n_terms,
               "counted %u leaves %u terms, query says %u %u", c.leaves, c.terms, q->n_leaves,
               q->n_terms);
    FUZZ_CHECK(q->n_terms <= QUERY_MAX_TERMS, "%u terms", q->n_terms);
    FUZZ_CHECK(!q->root || q->n_leaves > 0, "root without leaves");
    uint32_t positive = 0;
    query_positive_leaves(q, count_positive, &positive);
    FUZZ_CHECK(positive <= q->n_leaves && (!q->root || positive > 0), "%u positive of %u",
               positive, q->n_leaves);

    struct buf out;
    buf_init(&out, OUT_MAX_BYTES);
    for (int in_title = 0; in_title <= 1; in_title++) {
        buf_reset(&out);
        FUZZ_CHECK(highlight_text(q, text, size, in_title, &out) == XE_OK, "highlight_text");
        check_highlight(text, size, &out);
    }
    static const size_t max_chars[] = { SNIPPET_CHARS, 1, 7 };
    for (size_t i = 0; i < sizeof max_chars / sizeof max_chars[0]; i++) {
        buf_reset(&out);
        FUZZ_CHECK(snippet_make(q, text, size, max_chars[i], &out) == XE_OK, "snippet_make");
        check_snippet(&out);
    }
    buf_fini(&out);
    query_free(q);
    return 0;
}
