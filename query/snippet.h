/*
 * Highlighting: which parts of a text a query matched, as HTML.
 *
 * The text is tokenized again (the index keeps no offsets) and each leaf of
 * the query that is not negated is matched against its tokens: a term where
 * its token stands, a phrase only where all its terms stand in order, so
 * what is marked is exactly what matched. Overlapping matches are merged
 * (普惠 and 惠化 mark 普惠化 once). Output is the text HTML-escaped with
 * <em>...</em> around matches; a cut never splits a UTF-8 character.
 *
 * Work per text is bounded whatever its size: only tokens that start in its
 * first SNIPPET_SCAN_BYTES are looked at (tokenizing stops there), so a
 * match past that is not marked; a snippet then shows the text's start, and
 * a highlighted title the rest of the text escaped, unmarked. News articles
 * are a few KiB and their longest tens of KiB; 64 KiB (about 21,000 Chinese
 * characters) holds them whole and is marked in about 1.3 ms, where a 7.5 MB
 * text took 65 ms (a highlighted title that large still costs its escaping,
 * about 10 ms).
 */
#ifndef XUN_QUERY_SNIPPET_H
#define XUN_QUERY_SNIPPET_H

#include <stdbool.h>
#include <stddef.h>

#include "index/base/buf.h"
#include "index/base/limits.h"

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

/*
 * For tests of the bound: the bytes of text the calling thread's last
 * highlight_text or snippet_make tokenized (the end of the last token it
 * looked at).
 */
size_t snippet_last_scan_bytes(void);

/* Appends text with & < > " ' escaped. */
int html_escape(struct buf *out, const char *text, size_t len);

#endif
