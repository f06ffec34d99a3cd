/*
 * Runs a parsed query over a snapshot: match, score (BM25F over title, body
 * and meta, title weighted highest), keep the top k by a heap, count every
 * match. Hits are ordered by score, ties by document id.
 */
#ifndef XUN_QUERY_SEARCH_H
#define XUN_QUERY_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/format/doc.h"

struct query;
struct snapshot;
struct xerr;

/* BM25 parameters (DESIGN.md) and field weights. */
#define BM25_K1 1.2
#define BM25_B 0.75
#define BM25_WEIGHT_TITLE 2.5
#define BM25_WEIGHT_BODY 1.0
#define BM25_WEIGHT_META 1.0

/*
 * Freshness in relevance ranking: a dated document's score is multiplied by
 * 1 + SEARCH_RECENCY_WEIGHT * 2^(-age / half-life), age in days from now
 * (never negative). Today's story scores up to twice a timeless one with the
 * same words; after one half-life the boost is half that. Undated documents
 * get no boost; a half-life of 0 turns it off.
 */
#define SEARCH_RECENCY_HALF_LIFE_DAYS 30
#define SEARCH_RECENCY_WEIGHT 1.0

/*
 * Proximity: for each pair of neighbouring words or phrases of an AND query
 * ("Bedrock 普惠化": Bedrock, then 普惠化), a document gets
 * SEARCH_PROXIMITY_WEIGHT * min(idf of the two) / (1 + gap)^2 added to its
 * score, where gap is the number of positions between their nearest
 * occurrences (0 when they touch) and at most SEARCH_PROXIMITY_WINDOW.
 */
#define SEARCH_PROXIMITY_WEIGHT 0.5
#define SEARCH_PROXIMITY_WINDOW 8

/*
 * Written forms: when a query types characters that folding changes (馬),
 * a document's score is multiplied by 1 + SEARCH_FORM_WEIGHT * the share of
 * those characters it has as typed, so that among equal matches the ones in
 * the reader's script come first.
 */
#define SEARCH_FORM_WEIGHT 0.05

/*
 * Totals are exact up to this many matches; past it, blocks of postings whose
 * highest possible score cannot reach the top k are skipped (Block-Max), an
 * OR takes its candidates only from the terms that could lift a document into
 * the top k (MaxScore, prune.c) and drops a candidate as soon as its score
 * so far and the bounds of the terms left cannot reach it, and the total
 * becomes a lower bound, unless exact_total asks for every match. The hits
 * and their scores are those of a search that scores every match.
 */
#define SEARCH_EXACT_TOTAL 10000

/*
 * A time budget (Elasticsearch's "timeout"): a search that runs past
 * opts->deadline_ns stops where it is and answers what it found, with
 * timed_out set and the total a lower bound. The clock is read once every
 * SEARCH_CLOCK_EVERY units of work, a unit being a document looked at
 * (a candidate of the match loop, a step of an AND's or a phrase's
 * alignment, a posting counted for facets): units cost 0.1 to 2 us and a
 * read of CLOCK_MONOTONIC_COARSE about 20 ns, so the budget costs nothing
 * measurable and is overrun by at most a few milliseconds (that clock
 * moves in ticks of 1 to 4 ms). SEARCH_TIMEOUT_DEFAULT_MS is the budget
 * of xun serve and xun search unless told otherwise.
 */
#define SEARCH_CLOCK_EVERY 1024
#define SEARCH_TIMEOUT_DEFAULT_MS 1000

#define SEARCH_MAX_FILTER_VALUES 16
#define SEARCH_FACET_VALUES 20

struct search_hit {
    uint32_t segment; /* index into the snapshot's segments */
    uint32_t docid;
    double score;
    double sort_key; /* the score, or the date when sorting by date */
};

/* Filters, order and facets of a search; zero-initialized means none. */
struct search_options {
    uint32_t k;                                         /* hits to keep */
    struct text sources[SEARCH_MAX_FILTER_VALUES];      /* any of (exact) */
    size_t n_sources;
    struct text tags[SEARCH_MAX_FILTER_VALUES];         /* any of (exact) */
    size_t n_tags;
    bool has_from, has_to;
    int64_t from_s, to_s;                               /* dates within [from, to] */
    bool sort_by_date;                                  /* newest first, undated last */
    bool facet_source, facet_tag;
    uint64_t max_matches; /* stop after this many matches (0: all): total becomes a bound */
    bool exact_total;     /* count every match; else past SEARCH_EXACT_TOTAL, skip ahead */
    double recency_half_life_days; /* > 0: freshness boost by relevance (see above) */
    int64_t now_s;                 /* the age of a document is measured from here */
    /* the time budget (see SEARCH_CLOCK_EVERY): 0, none; else a time on clock_ns */
    uint64_t deadline_ns;
    uint64_t (*clock_ns)(void); /* NULL: search_clock_ns(); tests inject their own */
    uint32_t clock_every;       /* units of work between reads; 0: SEARCH_CLOCK_EVERY */
};

struct facet_value {
    char *value; /* owned */
    size_t len;
    uint64_t count;
};

struct search_result {
    uint64_t total;         /* documents that match */
    bool total_is_bound;    /* stopped at max_matches or timed out: total is a lower bound */
    bool timed_out;         /* stopped at the deadline: hits and facets are of what it saw */
    struct search_hit *hits; /* best first; owned, search_result_fini() */
    uint32_t n_hits;        /* min(k, total) */
    struct facet_value *facets[2]; /* source, tag: most frequent first */
    size_t n_facets[2];
};

/*
 * Finds the k best hits of q in snap. XE_CORRUPT when a posting list turns
 * out damaged; XE_NOMEM when the request's memory cap is reached.
 */
int search_run(const struct snapshot *snap, const struct query *q, uint32_t k,
               struct search_result *out, struct xerr *err);
/* The same with filters, order and facets. */
int search_run_opts(const struct snapshot *snap, const struct query *q,
                    const struct search_options *opts, struct search_result *out,
                    struct xerr *err);
void search_result_fini(struct search_result *r);

/* Now on CLOCK_MONOTONIC_COARSE, in ns: CLOCK_MONOTONIC's timeline, cheaper and coarser. */
uint64_t search_clock_ns(void);
/* Whether opts has a deadline and its clock (one read) says it has passed. */
bool search_deadline_passed(const struct search_options *opts);

#endif
