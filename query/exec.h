/*
 * The state one search shares across its modules (internal): the arena,
 * the snapshot and the segment being searched, each term looked up once,
 * proximity and written-form state, the pruning region and the time budget.
 *
 * A header alone, no exec.c: the state is filled by the driver (search.c)
 * and read by every module, and its helpers are a few lines each, run per
 * posting or per document (ex_spend), so they are static inline.
 */
#ifndef XUN_QUERY_EXEC_H
#define XUN_QUERY_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/base/arena.h"
#include "index/base/error.h"
#include "index/format/segment.h"
#include "query/qparse.h"

struct postings_cursor;
struct snapshot;

/* A word or phrase of the query, for proximity (rank.c). */
struct prox_leaf {
    struct postings_cursor *cursor; /* a word's postings (positions read per document);
                                     * NULL for a phrase, whose iterator keeps its starts */
    bool is_phrase;
    uint32_t span; /* positions it covers */
    double idf;
    uint32_t *pos; /* where it starts in the current document */
    uint32_t n_pos, cap;
};

/* A term of the query in one segment. */
struct term_lookup {
    bool found;
    struct segment_term st;
};

struct exec {
    struct arena arena;
    const struct snapshot *snap;
    const struct segment *seg; /* the segment being searched */
    uint32_t seg_index;
    double avg_len[N_FIELDS];
    struct term_lookup *lookups; /* [segment][term]: each term looked up once */
    uint32_t n_terms;
    uint32_t *pos_buf[QUERY_MAX_TERMS]; /* positions of a phrase's terms */
    uint32_t pos_cap[QUERY_MAX_TERMS];
    bool corrupt, nomem;
    struct xerr damage; /* what a segment reader said was damaged, when one did */

    /* written forms the query typed (qparse.h), in this segment; NULL where absent */
    struct postings_cursor *forms[QUERY_MAX_FORMS];
    uint32_t n_forms;

    /* proximity: the query's top-level words and phrases, in query order */
    const struct qnode *prox_parent; /* the AND whose children they are */
    struct prox_leaf prox[QUERY_MAX_TERMS];
    uint32_t n_prox;
    double prox_max; /* the largest bonus a document can get */

    /* pruning: docids up to here lie in a region found competitive; it is
     * scanned as is (a higher threshold since would only prune more) */
    int64_t competitive_upto;

    /* the time budget (search.h): the clock is read when until_clock runs out */
    uint64_t deadline_ns; /* 0: none */
    uint64_t (*clock_ns)(void);
    uint32_t clock_every, until_clock;
    bool timed_out; /* sticky */
};

/* A segment reader's answer: false when it found damage (the search then fails with it). */
static inline bool ex_read_ok(struct exec *ex, int rc)
{
    if (rc == XE_CORRUPT)
        ex->corrupt = true;
    return rc == XE_OK;
}

/*
 * Spends one unit of work; true once the deadline has passed (then for good),
 * and the caller stops as if its documents had run out.
 */
static inline bool ex_spend(struct exec *ex)
{
    if (!ex->deadline_ns || ex->timed_out)
        return ex->timed_out;
    if (--ex->until_clock)
        return false;
    ex->until_clock = ex->clock_every;
    ex->timed_out = ex->clock_ns() >= ex->deadline_ns;
    return ex->timed_out;
}

/* Memory for this search, freed with it; NULL (and ex->nomem) past the cap. */
static inline void *ex_alloc(struct exec *ex, size_t bytes)
{
    void *p = arena_alloc(&ex->arena, bytes);
    if (!p)
        ex->nomem = true;
    return p;
}

#endif
