/*
 * Highlighting: which parts of a text a query matched, as HTML.
 *
 * The text is tokenized again (the index keeps no offsets) and each leaf of
 * the query that is not negated is matched against its tokens: a term where
 * its token stands, a phrase only where all its terms stand in order, so
 * what is marked is exactly what matched. Overlapping matches are merged
 * (普惠 and 惠化 mark 普惠化 once). Output is the text HTML-escaped with
 * <em>...</em> around matches; a cut never splits a UTF-8 character.
 */
#ifndef XUN_QUERY_SNIPPET_H
#define XUN_QUERY_SNIPPET_H

#include <stdbool.h>
#include <stddef.h>

#include "index/buf.h"

struct query;

/* The whole text, highlighted (for titles). in_title: title-only leaves count. */
int highlight_text(const struct query *q, const char *text, size_t len, bool in_title,
                   struct buf *out);

/*
 * About max_chars code points of text around its densest window of matches,
 * with "…" where it was cut; the text's start when nothing matched.
 */
int snippet_make(const struct query *q, const char *text, size_t len, size_t max_chars,
                 struct buf *out);

/* Appends text with & < > " ' escaped. */
int html_escape(struct buf *out, const char *text, size_t len);

#endif
