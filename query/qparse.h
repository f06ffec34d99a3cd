/*
 * Query text to a query tree (API.md, "Query syntax"):
 *
 *   a b         both (AND)
 *   "a b"       the words as a phrase
 *   a OR b      either; OR binds tighter than the implicit AND,
 *               so `a OR b c` is (a OR b) AND c
 *   -a          without a
 *   title:a     a in the title only (also title:"a b")
 *
 * Each whitespace-separated word goes through the tokenizer: one token makes
 * a term, several make a phrase of adjacent tokens, so a CJK run such as
 * 普惠化 becomes the phrase 普惠 惠化, and GPT-4 the phrase gpt 4. A word
 * that is one CJK character searches the hidden one-character term, which
 * finds the character anywhere.
 *
 * The tree is owned by one struct query and freed with query_free().
 */
#ifndef XUN_QUERY_QPARSE_H
#define XUN_QUERY_QPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct xerr;

#define QUERY_MAX_FORMS 16

enum qnode_type { QNODE_TERM, QNODE_PHRASE, QNODE_AND, QNODE_OR };

struct qterm {
    char *text; /* normalized term bytes */
    size_t len;
    uint32_t offset; /* position relative to the phrase's first term */
};

struct qnode {
    enum qnode_type type;
    bool negated;    /* a child of an AND that must not match */
    bool title_only; /* TERM and PHRASE: match in the title only */
    uint32_t n_terms; /* TERM: 1; PHRASE: 2 or more */
    struct qterm *terms;
    uint32_t n_children; /* AND, OR */
    struct qnode **children;
};

struct query {
    struct qnode *root;  /* NULL when the text had no searchable term */
    uint32_t n_leaves;   /* TERM and PHRASE nodes */
    uint32_t n_terms;    /* terms over all leaves */
    unsigned tokenize_flags; /* the analyzer it was parsed with; snippets use it too */
    /* Characters typed in a form that folding changed ("\x04" + the character,
     * tokenizer.h), from words that are not negated: documents that have
     * them as written rank a little higher. At most QUERY_MAX_FORMS. */
    struct qterm forms[QUERY_MAX_FORMS];
    uint32_t n_forms;
};

/*
 * Parses text (valid UTF-8, checked by the caller or here: XE_INPUT) with
 * the index's analyzer, tokenize_flags (TOKENIZE_*).
 * XE_INPUT with a message for the user on a query it cannot run: too long,
 * too many terms, only negations, a negation inside OR.
 */
int query_parse(const char *text, size_t len, unsigned tokenize_flags, struct query **out,
                struct xerr *err);
void query_free(struct query *q);

/* Calls fn for each leaf that is not negated (what snippets highlight). */
void query_positive_leaves(const struct query *q, void (*fn)(void *ctx, const struct qnode *leaf),
                           void *ctx);

#endif
