/*
 * Filters and facets. A source or tag filter is an OR over the exact-value
 * terms of its values (doc.h), ANDed with the query as an unscored child:
 * the rarest child leads the AND, filter or not, so a narrow filter makes a
 * broad query cheap. The date range is checked per match from the document's
 * rank record. Facets count, for every value term of a field in a segment,
 * its postings that the segment's matches (a bitmap) hold.
 *
 * Design: facets walk the value terms' postings after the match loop rather
 * than reading each match's values from the doc store: a segment has few
 * sources and tags, and their postings are short next to a query's matches.
 * A value counted in part (at the deadline) is left out rather than undercounted.
 */
#include "query/facet.h"

#include <stdlib.h>
#include <string.h>

#include "index/base/bytes.h"
#include "index/format/doc.h"
#include "index/format/postings.h"
#include "index/format/segment.h"
#include "index/base/limits.h"
#include "query/exec.h"
#include "query/iter.h"
#include "query/search.h"

/*
 * An OR over the exact-value terms (doc.h) of one filter, unscored; NULL when
 * none of the values occurs in the segment (then nothing there can match).
 */
static struct iter *build_filter(struct exec *ex, char prefix, const struct text *values,
                                 size_t n)
{
    struct iter **kids = ex_alloc(ex, (n ? n : 1) * sizeof *kids);
    uint32_t n_kids = 0;
    char term[TOKEN_MAX_BYTES + 2];

    for (size_t i = 0; kids && i < n; i++) {
        struct segment_term st;
        size_t len = doc_exact_len(values[i].p, values[i].len); /* as indexed */
        term[0] = prefix;
        memcpy(term + 1, values[i].p, len);
        if (!ex_read_ok(ex, segment_lookup(ex->seg, term, len + 1, &st, &ex->damage)))
            continue;
        struct iter *t = iter_term_new(ex, &st, 0, false, false);
        if (!t)
            return NULL;
        kids[n_kids++] = t;
    }
    if (!n_kids)
        return NULL;
    return iter_or_new(ex, kids, n_kids, n_kids, false);
}

struct iter *facet_filter(struct exec *ex, struct iter *root, const struct search_options *o)
{
    struct iter *f[2] = { NULL, NULL };
    uint32_t n = 0;

    if (o->n_sources && !(f[n++] = build_filter(ex, TERM_SOURCE_PREFIX, o->sources,
                                                o->n_sources)))
        return NULL;
    if (o->n_tags && !(f[n++] = build_filter(ex, TERM_TAG_PREFIX, o->tags, o->n_tags)))
        return NULL;
    if (!n || !root)
        return root;
    struct iter **kids = ex_alloc(ex, (n + 1) * sizeof *kids);
    if (!kids)
        return NULL;
    kids[0] = root;
    for (uint32_t i = 0; i < n; i++) {
        f[i]->unscored = true;
        kids[i + 1] = f[i];
    }
    /* the rarest leads the leapfrog, filter or not */
    for (uint32_t i = 1; i <= n; i++)
        for (uint32_t j = i; j > 0 && kids[j - 1]->cost > kids[j]->cost; j--) {
            struct iter *t = kids[j];
            kids[j] = kids[j - 1];
            kids[j - 1] = t;
        }
    return iter_and_new(ex, kids, n + 1, NULL, 0, root->cost, false);
}

void facet_segment(struct exec *ex, char prefix, const uint64_t *matched,
                          struct facet_acc *acc)
{
    struct segment_term_iter it;
    struct segment_term st;
    uint32_t n_docs = segment_n_docs(ex->seg);

    segment_terms_from(ex->seg, &prefix, 1, &it);
    while (!ex->timed_out && segment_terms_next(&it, &st) && it.term_len &&
           it.term[0] == prefix && !ex->corrupt) {
        struct postings_cursor c;
        uint64_t count = 0;
        postings_cursor_init(&c, st.postings, st.postings_len, st.has_positions, n_docs);
        while (!ex_spend(ex) && postings_next(&c))
            count += (matched[c.docid / 64] >> (c.docid % 64)) & 1;
        if (c.corrupt)
            ex->corrupt = true;
        if (!count || ex->timed_out)
            continue; /* a value counted in part is left out */
        if (acc->n == acc->cap) {
            size_t cap = acc->cap ? acc->cap * 2 : 64;
            struct facet_count *grown = realloc(acc->items, cap * sizeof *grown);
            if (!grown) {
                acc->nomem = true;
                return;
            }
            acc->items = grown;
            acc->cap = cap;
        }
        char *value = malloc(it.term_len);
        if (!value) {
            acc->nomem = true;
            return;
        }
        memcpy(value, it.term + 1, it.term_len - 1);
        acc->items[acc->n++] = (struct facet_count){ value, it.term_len - 1, count };
    }
    if (it.rc) {
        ex->corrupt = true;
        segment_terms_error(&it, &ex->damage);
    }
}

static int facet_by_value(const void *a, const void *b)
{
    const struct facet_count *x = a, *y = b;
    return bytes_cmp(x->value, x->len, y->value, y->len);
}

static int facet_by_count(const void *a, const void *b)
{
    const struct facet_count *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return facet_by_value(a, b);
}

bool facet_finish(struct facet_acc *acc, struct facet_value **out, size_t *n_out)
{
    size_t n = 0;

    if (acc->n)
        qsort(acc->items, acc->n, sizeof *acc->items, facet_by_value);
    for (size_t i = 0; i < acc->n; i++) {
        if (n && !facet_by_value(&acc->items[n - 1], &acc->items[i])) {
            acc->items[n - 1].count += acc->items[i].count;
            free(acc->items[i].value);
            continue;
        }
        acc->items[n++] = acc->items[i];
    }
    if (n)
        qsort(acc->items, n, sizeof *acc->items, facet_by_count);
    size_t keep = n < SEARCH_FACET_VALUES ? n : SEARCH_FACET_VALUES;
    *out = calloc(keep ? keep : 1, sizeof **out);
    for (size_t i = 0; i < n; i++) {
        if (i < keep && *out) {
            (*out)[i] = (struct facet_value){ acc->items[i].value, acc->items[i].len,
                                              acc->items[i].count };
            continue;
        }
        free(acc->items[i].value);
    }
    free(acc->items);
    *n_out = *out ? keep : 0;
    return *out != NULL && !acc->nomem;
}
