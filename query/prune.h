/*
 * Pruning past SEARCH_EXACT_TOTAL counted matches with a full top k
 * (internal): Block-Max skipping for any root, MaxScore for an OR root (or
 * an OR ANDed only with filters and negations). Both return the candidates
 * the root would, minus documents that provably cannot enter the top k.
 */
#ifndef XUN_QUERY_PRUNE_H
#define XUN_QUERY_PRUNE_H

#include <stdbool.h>

struct doc_norms;
struct exec;
struct iter;
struct maxscore;
struct topk;

/*
 * next() for a full top k: passes over regions whose blocks bound every score
 * below the worst hit kept (times gain_max, the largest factor freshness and
 * written forms can add, plus the largest proximity bonus). Sets *skipped when
 * it passes over any, since matches there then go uncounted.
 */
bool prune_next_competitive(struct exec *ex, struct iter *root, const struct topk *top,
                            double gain_max, bool *skipped);

/*
 * MaxScore for root: an OR, or an AND whose only scored part is an OR (the
 * others filters or negations: `a OR b -c`); NULL for any other root (or
 * when out of memory: ex->nomem).
 */
struct maxscore *prune_ms_new(struct exec *ex, struct iter *root);
/*
 * next() of the root for a full top k: the next candidate that may reach
 * it, or false at the end (or the deadline). Sets *skipped when matches may
 * go uncounted.
 */
bool prune_ms_next(struct exec *ex, struct maxscore *ms, const struct topk *top,
                   double gain_max, bool *skipped);
/*
 * The score of prune_ms_next()'s candidate, or false when it is dropped: it
 * cannot reach threshold, its score times at most gain (plus proximity).
 */
bool prune_ms_score(struct exec *ex, struct maxscore *ms, const struct doc_norms *norms,
                    double gain, double threshold, double *score);

#endif
