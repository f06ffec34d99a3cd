/*
 * Filters and facets of a search (internal): source and tag filters as
 * unscored iterators ANDed with the query, the date filter, and the counts
 * of each source and tag value over the matches, gathered per segment.
 */
#ifndef XUN_QUERY_FACET_H
#define XUN_QUERY_FACET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/format/doc.h"
#include "query/search.h"

struct exec;
struct facet_value;
struct iter;

/* One value's count, gathered over segments. */
struct facet_count {
    char *value; /* owned */
    size_t len;
    uint64_t count;
};

struct facet_acc {
    struct facet_count *items;
    size_t n, cap;
    bool nomem;
};

/*
 * root AND o's source and tag filters, scored by root alone; root itself
 * without filters; NULL when root is or a filter rules the segment out.
 */
struct iter *facet_filter(struct exec *ex, struct iter *root, const struct search_options *o);
/* Whether a document dated date_s passes o's date range (run per match: inline). */
static inline bool facet_date_passes(const struct search_options *o, int64_t date_s)
{
    if (!o->has_from && !o->has_to)
        return true;
    if (date_s == DOC_DATE_NONE)
        return false;
    return (!o->has_from || date_s >= o->from_s) && (!o->has_to || date_s <= o->to_s);
}

/* Counts, for each exact-value term of prefix in the segment, its matching documents. */
void facet_segment(struct exec *ex, char prefix, const uint64_t *matched,
                   struct facet_acc *acc);
/*
 * Merges a value's counts over segments, keeps the SEARCH_FACET_VALUES most
 * frequent in *out (owned by the caller); frees acc. False when out of memory.
 */
bool facet_finish(struct facet_acc *acc, struct facet_value **out, size_t *n_out);

#endif
