/*
 * Suggestions as you type (GET /suggest): titles that complete what was
 * typed, best first, and where titles give too few, frequent indexed words
 * and bigrams that continue it.
 *
 * The typed text is searched in titles only: everything before the last
 * word as a phrase, and the last word, when the text ends inside it, as a
 * prefix expanded to the most frequent indexed words that start with it
 * ("Bed" -> "bedrock"). A lone Chinese character finds the titles holding
 * it. Work is bounded (SUGGEST_MAX_MATCHES) so that a keystroke never costs
 * more than a fraction of a millisecond, whatever the index size.
 */
#ifndef XUN_QUERY_SUGGEST_H
#define XUN_QUERY_SUGGEST_H

#include <stddef.h>
#include <stdint.h>

struct snapshot;
struct xerr;

#define SUGGEST_MAX_LIMIT 20
#define SUGGEST_MAX_BYTES 256
#define SUGGEST_MAX_MATCHES 2000
#define SUGGEST_EXPANSIONS 3

struct suggestion {
    char *text; /* owned, UTF-8 */
    size_t len;
    char *id; /* owned; NULL for a phrase that is not a title */
    size_t id_len;
};

/* Fills *out (owned: suggestions_free) with up to limit suggestions for prefix. */
int suggest_run(const struct snapshot *snap, const char *prefix, size_t len, uint32_t limit,
                struct suggestion **out, size_t *n_out, struct xerr *err);
void suggestions_free(struct suggestion *s, size_t n);

#endif
