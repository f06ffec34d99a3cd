/*
 * Query parser (syntax in qparse.h). Two passes: the text is cut into
 * chunks (words, quoted phrases, OR, with - and title: prefixes), then the
 * chunks are grouped, OR first, and each chunk's text is tokenized with the
 * same tokenizer as documents, so queries and documents always agree on
 * what a term is.
 */
#include "query/qparse.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "index/base/error.h"
#include "index/base/limits.h"
#include "index/text/tokenizer.h"

struct chunk {
    const char *text;
    size_t len;
    bool quoted, negated, title_only, is_or;
};

#define QUERY_MAX_CHUNKS (QUERY_MAX_BYTES / 2)

static void node_free(struct qnode *n)
{
    if (!n)
        return;
    for (uint32_t i = 0; i < n->n_terms; i++)
        free(n->terms[i].text);
    free(n->terms);
    for (uint32_t i = 0; i < n->n_children; i++)
        node_free(n->children[i]);
    free(n->children);
    free(n);
}

void query_free(struct query *q)
{
    if (!q)
        return;
    for (uint32_t i = 0; i < q->n_forms; i++)
        free(q->forms[i].text);
    node_free(q->root);
    free(q);
}

/* Unicode white space, so that a full-width space (U+3000) separates too. */
static size_t space_len(const char *s, size_t len)
{
    int32_t cp;
    if ((unsigned char)*s < 0x80)
        return (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\f' || *s == '\v');
    utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &cp);
    if (n > 0 && utf8proc_category(cp) == UTF8PROC_CATEGORY_ZS)
        return (size_t)n;
    return 0;
}

/* Cuts text into chunks; returns how many, or -1 when there are too many. */
static int split_chunks(const char *s, size_t len, struct chunk *out, int cap)
{
    size_t i = 0;
    int n = 0;

    while (i < len) {
        size_t sp = space_len(s + i, len - i);
        if (sp) {
            i += sp;
            continue;
        }
        if (n == cap)
            return -1;
        struct chunk c = { 0 };
        if (s[i] == '-' && i + 1 < len && !space_len(s + i + 1, len - i - 1)) {
            c.negated = true;
            i++;
        }
        if (len - i > 6 && !strncasecmp(s + i, "title:", 6) && !space_len(s + i + 6, len - i - 6)) {
            c.title_only = true;
            i += 6;
        }
        if (s[i] == '"') {
            size_t start = ++i;
            while (i < len && s[i] != '"')
                i++;
            c.text = s + start;
            c.len = i - start;
            c.quoted = true;
            if (i < len)
                i++; /* the closing quote; an unclosed one runs to the end */
        } else {
            size_t start = i;
            while (i < len && !space_len(s + i, len - i) && s[i] != '"')
                i++;
            c.text = s + start;
            c.len = i - start;
            c.is_or = !c.negated && !c.title_only && c.len == 2 && !memcmp(c.text, "OR", 2);
        }
        out[n++] = c;
    }
    return n;
}

struct collect {
    struct qterm terms[QUERY_MAX_TERMS + 1];
    uint32_t n;
    struct query *q; /* its forms, when the chunk is not negated; else NULL */
    uint32_t first_position;
    bool overflow, nomem;
    bool single_cjk;
};

/* Keeps a written form for ranking, once; a full list or no memory only loses the preference. */
static void add_form(struct collect *c, const struct token *tok)
{
    struct query *q = c->q;
    for (uint32_t i = 0; i < q->n_forms; i++)
        if (q->forms[i].len == tok->term_len && !memcmp(q->forms[i].text, tok->term, tok->term_len))
            return;
    char *text = q->n_forms < QUERY_MAX_FORMS ? malloc(tok->term_len) : NULL;
    if (!text)
        return;
    memcpy(text, tok->term, tok->term_len);
    q->forms[q->n_forms++] = (struct qterm){ text, tok->term_len, 0 };
}

static int collect_token(void *ctx, const struct token *tok)
{
    struct collect *c = ctx;

    if (tok->kind == TOKEN_CJK_CHAR) {
        if (tok->term[0] == TERM_VARIANT_PREFIX && c->q)
            add_form(c, tok);
        return 0;
    }
    if (c->n == QUERY_MAX_TERMS) {
        c->overflow = true;
        return 1;
    }
    char *text = malloc(tok->term_len + 1);
    if (!text) {
        c->nomem = true;
        return 1;
    }
    memcpy(text, tok->term, tok->term_len);
    if (!c->n)
        c->first_position = tok->position;
    c->terms[c->n++] = (struct qterm){ text, tok->term_len, tok->position - c->first_position };
    c->single_cjk = tok->kind == TOKEN_CJK_SINGLE;
    return 0;
}

/* A leaf for one chunk, or NULL with *rc set (XE_OK and NULL: nothing searchable). */
static struct qnode *chunk_leaf(const struct chunk *ch, struct query *q, uint32_t *budget,
                                int *rc, struct xerr *err)
{
    struct collect c = { .q = ch->negated ? NULL : q };
    struct qnode *n;

    *rc = XE_OK;
    tokenize(ch->text, ch->len, 0, q->tokenize_flags, collect_token, &c);
    if (c.nomem || c.overflow || c.n > *budget) {
        for (uint32_t i = 0; i < c.n; i++)
            free(c.terms[i].text);
        *rc = c.nomem ? xerr_set(err, XE_NOMEM, "out of memory")
                      : xerr_set(err, XE_INPUT, "query has too many terms; at most %d are allowed",
                                 QUERY_MAX_TERMS);
        return NULL;
    }
    if (!c.n)
        return NULL;
    *budget -= c.n;
    if (!(n = calloc(1, sizeof *n)) || !(n->terms = calloc(c.n, sizeof *n->terms))) {
        free(n);
        for (uint32_t i = 0; i < c.n; i++)
            free(c.terms[i].text);
        *rc = xerr_set(err, XE_NOMEM, "out of memory");
        return NULL;
    }
    n->type = c.n == 1 ? QNODE_TERM : QNODE_PHRASE;
    n->negated = ch->negated;
    n->title_only = ch->title_only;
    n->n_terms = c.n;
    memcpy(n->terms, c.terms, c.n * sizeof *c.terms);
    if (c.n == 1 && c.single_cjk) {
        /* one CJK character: search it wherever it stands */
        char *hidden = malloc(n->terms[0].len + 1);
        if (!hidden) {
            node_free(n);
            *rc = xerr_set(err, XE_NOMEM, "out of memory");
            return NULL;
        }
        hidden[0] = TERM_CHAR_PREFIX;
        memcpy(hidden + 1, n->terms[0].text, n->terms[0].len);
        free(n->terms[0].text);
        n->terms[0].text = hidden;
        n->terms[0].len++;
    }
    return n;
}

static int node_add_child(struct qnode *parent, struct qnode *child)
{
    struct qnode **grown = realloc(parent->children,
                                   (parent->n_children + 1) * sizeof *parent->children);
    if (!grown)
        return XE_NOMEM;
    parent->children = grown;
    parent->children[parent->n_children++] = child;
    return XE_OK;
}

static void count_leaves(const struct qnode *n, struct query *q)
{
    if (n->type == QNODE_TERM || n->type == QNODE_PHRASE) {
        q->n_leaves++;
        q->n_terms += n->n_terms;
        return;
    }
    for (uint32_t i = 0; i < n->n_children; i++)
        count_leaves(n->children[i], q);
}

/* Replaces a group of one child by the child itself. */
static struct qnode *collapse(struct qnode *n)
{
    if (n->n_children != 1)
        return n;
    struct qnode *only = n->children[0];
    only->negated = only->negated || n->negated;
    free(n->children);
    free(n);
    return only;
}

int query_parse(const char *text, size_t len, unsigned tokenize_flags, struct query **out,
                struct xerr *err)
{
    struct chunk *chunks;
    struct query *q;
    struct qnode *and_node = NULL, *or_node = NULL;
    uint32_t budget = QUERY_MAX_TERMS;
    size_t bad;
    int rc = XE_OK, n;

    if (len > QUERY_MAX_BYTES)
        return xerr_set(err, XE_INPUT, "query is %zu bytes; at most %d are allowed", len,
                        QUERY_MAX_BYTES);
    if (!utf8_check(text, len, &bad))
        return xerr_set(err, XE_INPUT, "query is not valid UTF-8 (byte %zu)", bad);
    chunks = malloc(sizeof *chunks * QUERY_MAX_CHUNKS);
    q = calloc(1, sizeof *q);
    and_node = calloc(1, sizeof *and_node);
    if (!chunks || !q || !and_node) {
        rc = xerr_set(err, XE_NOMEM, "out of memory");
        goto fail;
    }
    q->tokenize_flags = tokenize_flags;
    and_node->type = QNODE_AND;
    n = split_chunks(text, len, chunks, QUERY_MAX_CHUNKS);
    if (n < 0) {
        rc = xerr_set(err, XE_INPUT, "query has too many words");
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        /* OR between two operands joins them; elsewhere it is the word "or" */
        bool joins_next = i + 2 < n && chunks[i + 1].is_or;
        if (chunks[i].is_or && i > 0 && i + 1 < n)
            continue;
        struct qnode *leaf = chunk_leaf(&chunks[i], q, &budget, &rc, err);
        if (rc)
            goto fail;
        if (leaf && (joins_next || or_node) && leaf->negated) {
            node_free(leaf);
            rc = xerr_set(err, XE_INPUT, "a negated term cannot be part of OR");
            goto fail;
        }
        if (joins_next && !or_node) {
            if (!(or_node = calloc(1, sizeof *or_node))) {
                node_free(leaf);
                rc = xerr_set(err, XE_NOMEM, "out of memory");
                goto fail;
            }
            or_node->type = QNODE_OR;
        }
        struct qnode *target = or_node ? or_node : and_node;
        if (leaf && node_add_child(target, leaf)) {
            node_free(leaf);
            rc = xerr_set(err, XE_NOMEM, "out of memory");
            goto fail;
        }
        if (or_node && !joins_next) { /* the OR group ends here */
            struct qnode *group = or_node;
            or_node = NULL;
            if (!group->n_children) {
                node_free(group);
            } else if (node_add_child(and_node, collapse(group))) {
                node_free(group);
                rc = xerr_set(err, XE_NOMEM, "out of memory");
                goto fail;
            }
        }
    }
    free(chunks);
    chunks = NULL;
    if (!and_node->n_children) {
        node_free(and_node);
        *out = q;
        return XE_OK;
    }
    bool any_positive = false;
    for (uint32_t i = 0; i < and_node->n_children; i++)
        any_positive |= !and_node->children[i]->negated;
    if (!any_positive) {
        rc = xerr_set(err, XE_INPUT, "query needs a term that is not negated");
        goto fail;
    }
    q->root = collapse(and_node);
    count_leaves(q->root, q);
    *out = q;
    return XE_OK;
fail:
    node_free(or_node);
    node_free(and_node);
    free(chunks);
    query_free(q); /* its written forms; its root is not set yet */
    return rc;
}

static void walk_positive(const struct qnode *n, void (*fn)(void *, const struct qnode *),
                          void *ctx)
{
    if (n->negated)
        return;
    if (n->type == QNODE_TERM || n->type == QNODE_PHRASE) {
        fn(ctx, n);
        return;
    }
    for (uint32_t i = 0; i < n->n_children; i++)
        walk_positive(n->children[i], fn, ctx);
}

void query_positive_leaves(const struct query *q, void (*fn)(void *ctx, const struct qnode *leaf),
                           void *ctx)
{
    if (q->root)
        walk_positive(q->root, fn, ctx);
}
