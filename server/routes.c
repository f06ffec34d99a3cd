/*
 * Route handlers (API.md). Each handler validates its parameters first and
 * answers 400 with what was wrong and what is allowed; then it takes a
 * snapshot of the index, so that it reads one consistent state however
 * long it runs, and releases it when the reply is built.
 */
#include "server/routes.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/buf.h"
#include "index/error.h"
#include "index/index.h"
#include "index/limits.h"
#include "index/segment.h"
#include "index/tokenizer.h"
#include "index/writer.h"
#include "query/qparse.h"
#include "query/search.h"
#include "query/snippet.h"
#include "query/suggest.h"
#include "server/documents.h"
#include "server/page.h"
#include "server/http.h"
#include "server/cache.h"
#include "server/respond.h"
#include "server/urlquery.h"

#define ANALYZE_MAX_BYTES (64u << 10)
/* Damaged segments /health names (a count past it still says degraded). */
#define HEALTH_MAX_NAMED 16

int routes_init(struct route_ctx *ctx, struct index *ix, const struct server_config *cfg,
                struct xerr *err)
{
    ctx->ix = ix;
    ctx->cfg = cfg;
    ctx->started = time(NULL);
    atomic_init(&ctx->queries, 0);
    atomic_init(&ctx->cache_hits, 0);
    atomic_init(&ctx->cache_misses, 0);
    metrics_init(&ctx->metrics);
    ctx->cache = NULL;
    if (cfg->cache_bytes && !(ctx->cache = result_cache_new(cfg->cache_bytes)))
        return xerr_set(err, XE_NOMEM, "out of memory");
    int rc = writer_start(ix, &ctx->writer, err);
    if (!rc && (rc = documents_start(ctx, err)) != XE_OK) {
        writer_stop(ctx->writer);
        ctx->writer = NULL;
    }
    if (rc) {
        result_cache_free(ctx->cache);
        ctx->cache = NULL;
    }
    return rc;
}

void routes_fini(struct route_ctx *ctx)
{
    documents_stop(ctx);
    writer_stop(ctx->writer);
    ctx->writer = NULL;
    result_cache_free(ctx->cache);
    ctx->cache = NULL;
}

/* ---- parameters ---- */

/* Parses an optional unsigned integer parameter within [0, max]. */
static bool param_uint(struct exchange *ex, const struct url_query *q, const char *name,
                       uint32_t dflt, uint32_t max, uint32_t *out)
{
    const struct url_param *p = url_query_get(q, name);
    uint64_t v = 0;

    *out = dflt;
    if (!p)
        return true;
    bool ok = p->value_len > 0 && p->value_len <= 10;
    for (size_t i = 0; ok && i < p->value_len; i++) {
        ok = p->value[i] >= '0' && p->value[i] <= '9';
        v = v * 10 + (uint64_t)(p->value[i] - '0');
    }
    if (!ok || v > max) {
        respond_error(ex, 400, "%s must be an integer from 0 to %u, got \"%.32s\"", name, max,
                      p->value);
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

static bool param_flag(struct exchange *ex, const struct url_query *q, const char *name,
                       bool dflt, bool *out)
{
    const struct url_param *p = url_query_get(q, name);

    *out = dflt;
    if (!p)
        return true;
    if (!strcmp(p->value, "1") || !strcmp(p->value, "true")) {
        *out = true;
        return true;
    }
    if (!strcmp(p->value, "0") || !strcmp(p->value, "false")) {
        *out = false;
        return true;
    }
    respond_error(ex, 400, "%s must be 0 or 1, got \"%.32s\"", name, p->value);
    return false;
}

/* ---- /search ---- */

static json_t *text_or_null(struct text t)
{
    return t.p ? json_stringn(t.p, t.len) : NULL;
}

static void set_text(json_t *obj, const char *key, struct text t)
{
    json_t *v = text_or_null(t);
    if (v)
        json_object_set_new(obj, key, v);
}

static json_t *hit_json(const struct snapshot *snap, const struct search_hit *h,
                        const struct query *q, bool highlight, struct buf *scratch,
                        struct buf *html, struct xerr *err)
{
    struct doc_fields d;
    json_t *hit;

    if (segment_load(snap->segments[h->segment]->seg, h->docid, scratch, &d, err))
        return NULL;
    hit = json_object();
    if (!hit)
        return NULL;
    set_text(hit, "id", d.id);
    json_object_set_new(hit, "score", json_real(h->score));
    set_text(hit, "title", d.title);
    if (highlight && d.title.p) {
        buf_reset(html);
        if (!highlight_text(q, d.title.p, d.title.len, true, html))
            json_object_set_new(hit, "title_html", json_stringn((const char *)html->data,
                                                                html->len));
    }
    if (highlight && d.body.p) {
        buf_reset(html);
        if (!snippet_make(q, d.body.p, d.body.len, SNIPPET_CHARS, html))
            json_object_set_new(hit, "snippet", json_stringn((const char *)html->data,
                                                             html->len));
    }
    set_text(hit, "source", d.source);
    if (d.n_tags) {
        json_t *tags = json_array();
        for (size_t i = 0; i < d.n_tags; i++)
            json_array_append_new(tags, json_stringn(d.tags[i].p, d.tags[i].len));
        json_object_set_new(hit, "tags", tags);
    }
    set_text(hit, "date", d.date);
    set_text(hit, "url", d.url);
    return hit;
}

static const char *const search_params[] = { "q", "limit", "offset", "highlight", "exact_total",
                                             "sort", "source", "tag", "from", "to", "facets",
                                             NULL };

/* Repeatable exact-value filters (source, tag): any of the values. */
static bool param_values(struct exchange *ex, const struct url_query *uq, const char *name,
                         struct text *out, size_t *n)
{
    *n = 0;
    for (size_t i = 0; i < uq->n; i++) {
        const struct url_param *p = &uq->params[i];
        if (strcmp(p->name, name) != 0)
            continue;
        if (*n == SEARCH_MAX_FILTER_VALUES) {
            respond_error(ex, 400, "at most %d %s values are allowed", SEARCH_MAX_FILTER_VALUES,
                          name);
            return false;
        }
        if (!p->value_len || !utf8_check(p->value, p->value_len, NULL)) {
            respond_error(ex, 400, "%s must be non-empty UTF-8", name);
            return false;
        }
        out[(*n)++] = (struct text){ p->value, p->value_len };
    }
    return true;
}

/* from/to: a date or date-time (API.md); a bare `to` date means to the end of that day. */
static bool param_date(struct exchange *ex, const struct url_query *uq, const char *name,
                       bool end_of_day, bool *has, int64_t *out)
{
    const struct url_param *p = url_query_get(uq, name);

    *has = false;
    if (!p)
        return true;
    if (!doc_parse_date(p->value, p->value_len, out)) {
        respond_error(ex, 400,
                      "%s must be YYYY-MM-DD or an RFC 3339 date-time, got \"%.40s\"", name,
                      p->value);
        return false;
    }
    if (end_of_day && p->value_len == 10)
        *out += 86399;
    *has = true;
    return true;
}

/* Where the value of took_ms stands in a /search body (keys and strings in it are escaped). */
static bool find_took(const char *text, size_t len, struct cached_body *b)
{
    static const char key[] = "\"took_ms\":";
    const char *at = memmem(text, len, key, sizeof key - 1);
    if (!at)
        return false;
    b->took_at = (size_t)(at - text) + sizeof key - 1;
    b->took_len = strspn(text + b->took_at, "0123456789.eE+-");
    return true;
}

/* A cached body with this request's took_ms. */
static void respond_cached(struct exchange *ex, const struct cached_body *b)
{
    char took[32];
    int took_len = snprintf(took, sizeof took, "%.6g", (double)(now_ns() - ex->start_ns) / 1e6);
    if (took_len > 0 && !strpbrk(took, ".e") && took_len + 2 < (int)sizeof took) {
        memcpy(took + took_len, ".0", 3); /* a real, as jansson writes it */
        took_len += 2;
    }
    size_t len = b->len - b->took_len + (size_t)took_len;
    char *text = malloc(len);

    if (!text) {
        respond_error(ex, 500, "out of memory");
        return;
    }
    memcpy(text, b->data, b->took_at);
    memcpy(text + b->took_at, took, (size_t)took_len);
    memcpy(text + b->took_at + took_len, b->data + b->took_at + b->took_len,
           b->len - b->took_at - b->took_len);
    respond_json_text(ex, 200, text, len);
    free(text);
}

static void route_search(struct route_ctx *ctx, struct exchange *ex, const struct url_query *uq,
                         const char *qs, size_t qs_len)
{
    uint32_t limit, offset;
    bool highlight, exact_total;
    struct xerr err = { 0 };
    struct search_params sp = { .start_ns = ex->start_ns };
    struct search_options *o = &sp.opts;

    for (size_t i = 0; i < uq->n; i++) {
        bool known = false;
        for (size_t k = 0; search_params[k] && !known; k++)
            known = !strcmp(uq->params[i].name, search_params[k]);
        if (!known) {
            respond_error(ex, 400, "unknown parameter \"%.32s\"; /search takes q, limit, "
                                   "offset, highlight, exact_total, sort, source, tag, from, "
                                   "to, facets",
                          uq->params[i].name);
            return;
        }
    }
    const struct url_param *qp = url_query_get(uq, "q");
    if (!qp) {
        respond_error(ex, 400, "parameter q is required");
        return;
    }
    if (!param_uint(ex, uq, "limit", 10, SEARCH_MAX_LIMIT, &limit) ||
        !param_uint(ex, uq, "offset", 0, SEARCH_MAX_OFFSET, &offset) ||
        !param_flag(ex, uq, "highlight", true, &highlight) ||
        !param_flag(ex, uq, "exact_total", false, &exact_total) ||
        !param_values(ex, uq, "source", o->sources, &o->n_sources) ||
        !param_values(ex, uq, "tag", o->tags, &o->n_tags) ||
        !param_date(ex, uq, "from", false, &o->has_from, &o->from_s) ||
        !param_date(ex, uq, "to", true, &o->has_to, &o->to_s))
        return;
    const struct url_param *sort = url_query_get(uq, "sort");
    if (sort && strcmp(sort->value, "relevance") != 0 && strcmp(sort->value, "date") != 0) {
        respond_error(ex, 400, "sort must be \"relevance\" or \"date\", got \"%.32s\"",
                      sort->value);
        return;
    }
    o->sort_by_date = sort && !strcmp(sort->value, "date");
    o->recency_half_life_days = ctx->cfg->recency_half_life_days;
    o->now_s = (int64_t)time(NULL);
    const struct url_param *facets = url_query_get(uq, "facets");
    if (facets) {
        /* a comma-separated list of source and tag */
        const char *p = facets->value, *end = p + facets->value_len;
        do {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            size_t len = comma ? (size_t)(comma - p) : (size_t)(end - p);
            if (len == 6 && !memcmp(p, "source", 6)) {
                o->facet_source = true;
            } else if (len == 3 && !memcmp(p, "tag", 3)) {
                o->facet_tag = true;
            } else {
                respond_error(ex, 400, "facets must be source, tag or source,tag, got \"%.32s\"",
                              facets->value);
                return;
            }
            p += len + 1;
        } while (p <= end);
    }
    o->exact_total = exact_total;
    o->deadline_ns = ctx->cfg->query_timeout_ms
                         ? ex->start_ns + (uint64_t)ctx->cfg->query_timeout_ms * 1000000u
                         : 0;
    o->clock_ns = ctx->cfg->query_clock_ns;
    sp.q = qp->value;
    sp.q_len = qp->value_len;
    sp.limit = limit;
    sp.offset = offset;
    sp.highlight = highlight;
    /* the same query string over the same snapshot: the same answer */
    struct snapshot *snap = index_snapshot(ctx->ix);
    uint64_t generation = snap->generation;
    snapshot_release(snap);
    struct cached_body cached = { 0 };
    if (ctx->cache &&
        result_cache_get(ctx->cache, qs, qs_len, generation, ex->start_ns, &cached)) {
        atomic_fetch_add(&ctx->queries, 1);
        atomic_fetch_add(&ctx->cache_hits, 1);
        respond_cached(ex, &cached);
        free(cached.data);
        return;
    }
    json_t *body;
    int rc = search_json(ctx->ix, &sp, &body, &err);
    if (rc) {
        respond_error(ex, respond_status_of(rc), "%s", err.msg);
        return;
    }
    atomic_fetch_add(&ctx->queries, 1);
    if (!ctx->cache) {
        respond_json(ex, 200, body);
        return;
    }
    atomic_fetch_add(&ctx->cache_misses, 1);
    /* a timed-out answer is partial: the next try, on a quieter server, may do better */
    bool partial = json_is_true(json_object_get(body, "timed_out"));
    cached.data = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(body);
    if (!cached.data) {
        respond_error(ex, 500, "out of memory");
        return;
    }
    cached.len = strlen(cached.data);
    if (!partial && find_took(cached.data, cached.len, &cached))
        result_cache_put(ctx->cache, qs, qs_len, generation, ex->start_ns, &cached);
    respond_json_text(ex, 200, cached.data, cached.len);
    free(cached.data);
}

static json_t *facets_json(const struct search_result *res, const struct search_options *o)
{
    static const char *const names[2] = { "source", "tag" };
    bool want[2] = { o->facet_source, o->facet_tag };
    json_t *facets = json_object();

    for (int f = 0; f < 2; f++) {
        if (!want[f])
            continue;
        json_t *list = json_array();
        for (size_t i = 0; i < res->n_facets[f]; i++)
            json_array_append_new(list, json_pack("{s:s%,s:I}", "value", res->facets[f][i].value,
                                                  res->facets[f][i].len, "count",
                                                  (json_int_t)res->facets[f][i].count));
        json_object_set_new(facets, names[f], list);
    }
    return facets;
}

int search_json(struct index *ix, const struct search_params *sp, json_t **out,
                struct xerr *err)
{
    struct query *q = NULL;
    int rc = query_parse(sp->q, sp->q_len, index_tokenize_flags(ix), &q, err);

    if (rc)
        return rc;
    struct snapshot *snap = index_snapshot(ix);
    struct search_result res;
    struct search_options opts = sp->opts;
    opts.k = sp->offset + sp->limit;
    rc = search_run_opts(snap, q, &opts, &res, err);
    if (rc) {
        snapshot_release(snap);
        query_free(q);
        return rc;
    }
    struct buf scratch, html;
    buf_init(&scratch, (size_t)4 * DOC_MAX_BYTES);
    buf_init(&html, (size_t)4 * DOC_MAX_BYTES);
    json_t *hits = json_array();
    bool timed_out = res.timed_out;
    for (uint32_t i = sp->offset; i < res.n_hits && !rc; i++) {
        /* past the deadline, the remaining hits come without highlights */
        if (sp->highlight && !timed_out && search_deadline_passed(&opts))
            timed_out = true;
        json_t *hit = hit_json(snap, &res.hits[i], q, sp->highlight && !timed_out, &scratch,
                               &html, err);
        if (!hit)
            rc = err->code ? (int)err->code : xerr_set(err, XE_NOMEM, "out of memory");
        else
            json_array_append_new(hits, hit);
    }
    buf_fini(&scratch);
    buf_fini(&html);
    uint64_t total = res.total;
    bool bound = res.total_is_bound;
    json_t *facets = opts.facet_source || opts.facet_tag ? facets_json(&res, &opts) : NULL;
    search_result_fini(&res);
    snapshot_release(snap);
    query_free(q);
    if (rc) {
        json_decref(hits);
        json_decref(facets);
        return rc;
    }
    double took_ms = (double)(now_ns() - sp->start_ns) / 1e6;
    *out = json_pack("{s:s%,s:I,s:s,s:f,s:b,s:i,s:i,s:o}", "query", sp->q, sp->q_len, "total",
                     (json_int_t)total, "total_relation", bound ? "gte" : "eq", "took_ms",
                     took_ms, "timed_out", timed_out, "offset", (int)sp->offset, "limit",
                     (int)sp->limit, "hits", hits);
    if (*out && facets)
        json_object_set_new(*out, "facets", facets);
    else
        json_decref(facets);
    return *out ? XE_OK : xerr_set(err, XE_NOMEM, "out of memory");
}

/* ---- /suggest ---- */

static void route_suggest(struct route_ctx *ctx, struct exchange *ex, const struct url_query *uq)
{
    const struct url_param *qp = url_query_get(uq, "q");
    struct suggestion *s;
    size_t n;
    uint32_t limit;
    struct xerr err = { 0 };

    for (size_t i = 0; i < uq->n; i++)
        if (strcmp(uq->params[i].name, "q") && strcmp(uq->params[i].name, "limit")) {
            respond_error(ex, 400, "unknown parameter \"%.32s\"; /suggest takes q, limit",
                          uq->params[i].name);
            return;
        }
    if (!qp) {
        respond_error(ex, 400, "parameter q is required");
        return;
    }
    if (!param_uint(ex, uq, "limit", 8, SUGGEST_MAX_LIMIT, &limit))
        return;
    struct snapshot *snap = index_snapshot(ctx->ix);
    int rc = suggest_run(snap, qp->value, qp->value_len, limit, &s, &n, &err);
    snapshot_release(snap);
    if (rc) {
        respond_error(ex, respond_status_of(rc), "%s", err.msg);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_pack("{s:s%}", "text", s[i].text, s[i].len);
        if (s[i].id)
            json_object_set_new(item, "id", json_stringn(s[i].id, s[i].id_len));
        json_array_append_new(list, item);
    }
    suggestions_free(s, n);
    respond_json(ex, 200, json_pack("{s:s%,s:o}", "query", qp->value, qp->value_len,
                                    "suggestions", list));
}

/* ---- /documents/{id} ---- */

static void route_document(struct route_ctx *ctx, struct exchange *ex, char *id, size_t len)
{
    struct xerr err = { 0 };
    struct snapshot *snap = index_snapshot(ctx->ix);
    uint32_t seg, docid;
    int rc = snapshot_find(snap, id, len, &seg, &docid, &err);
    if (rc) {
        snapshot_release(snap);
        if (rc == XE_NOTFOUND)
            respond_error(ex, 404, "no document with id \"%.64s\"", id);
        else
            respond_error(ex, respond_status_of(rc), "%s", err.msg);
        return;
    }
    struct buf scratch, json;
    struct doc_fields d;
    buf_init(&scratch, (size_t)4 * DOC_MAX_BYTES);
    buf_init(&json, (size_t)4 * DOC_MAX_BYTES);
    if (segment_load(snap->segments[seg]->seg, docid, &scratch, &d, &err) ||
        doc_json(&d, &json, &err))
        respond_error(ex, respond_status_of(err.code), "%s", err.msg);
    else
        respond_bytes(ex, 200, "application/json; charset=utf-8", json.data, json.len);
    buf_fini(&scratch);
    buf_fini(&json);
    snapshot_release(snap);
}

/* ---- /analyze ---- */

struct analyze_ctx {
    json_t *tokens;
    const char *text;
};

static int analyze_token(void *arg, const struct token *tok)
{
    struct analyze_ctx *a = arg;

    if (tok->kind == TOKEN_CJK_CHAR)
        return 0; /* kept only for one-character queries: not listed (API.md) */
    json_array_append_new(a->tokens,
                          json_pack("{s:s%,s:i,s:i,s:i}", "term", tok->term, tok->term_len,
                                    "position", (int)tok->position, "start",
                                    (int)tok->start_char, "end", (int)tok->end_char));
    return 0;
}

json_t *analyze_json(const char *text, size_t len, unsigned tokenize_flags)
{
    struct analyze_ctx a = { json_array(), text };

    tokenize(text, len, 0, tokenize_flags, analyze_token, &a);
    return json_pack("{s:o}", "tokens", a.tokens);
}

static void route_analyze(struct route_ctx *ctx, struct exchange *ex, const struct url_query *uq)
{
    const struct url_param *p = url_query_get(uq, "text");
    size_t bad;

    if (!p) {
        respond_error(ex, 400, "parameter text is required");
        return;
    }
    if (p->value_len > ANALYZE_MAX_BYTES) {
        respond_error(ex, 413, "text is %zu bytes; at most %u are allowed", p->value_len,
                      ANALYZE_MAX_BYTES);
        return;
    }
    if (!utf8_check(p->value, p->value_len, &bad)) {
        respond_error(ex, 400, "text is not valid UTF-8 (byte %zu)", bad);
        return;
    }
    respond_json(ex, 200, analyze_json(p->value, p->value_len, index_tokenize_flags(ctx->ix)));
}

/* ---- /stats, /health ---- */

static void route_stats(struct route_ctx *ctx, struct exchange *ex)
{
    struct snapshot *snap = index_snapshot(ctx->ix);
    json_t *body = json_pack("{s:I,s:I,s:i,s:I,s:I,s:I}", "documents", (json_int_t)snap->n_docs,
                             "terms", (json_int_t)snap->n_terms, "segments",
                             (int)snap->n_segments, "index_bytes", (json_int_t)snap->bytes,
                             "uptime_s", (json_int_t)(time(NULL) - ctx->started), "queries",
                             (json_int_t)atomic_load(&ctx->queries));
    snapshot_release(snap);
    respond_json(ex, 200, body);
}

/*
 * "ok", or "degraded" with what is wrong. A damaged segment (a chunk whose
 * checksum did not match) makes it 503, so that a load balancer stops
 * sending queries here; it names the segments to rebuild or restore. Index
 * files that cannot be written (a full disk) keep it 200: every read is still
 * answered, and the body says that writes are refused and why.
 */
static void route_health(struct route_ctx *ctx, struct exchange *ex)
{
    struct snapshot *snap = index_snapshot(ctx->ix);
    uint32_t which[HEALTH_MAX_NAMED];
    uint32_t n = snapshot_damaged_segments(snap, which, HEALTH_MAX_NAMED);
    struct writer_health wh;

    writer_get_health(ctx->writer, &wh);
    if (!n && !wh.read_only) {
        snapshot_release(snap);
        respond_json(ex, 200, json_pack("{s:s}", "status", "ok"));
        return;
    }
    json_t *body = json_pack("{s:s}", "status", "degraded");
    if (n) {
        json_t *names = json_array();
        for (uint32_t i = 0; i < n && i < HEALTH_MAX_NAMED; i++)
            json_array_append_new(names, json_string(snap->segments[which[i]]->name));
        json_object_set_new(body, "damaged_segments", names);
        json_object_set_new(body, "checksum_failures",
                            json_integer((json_int_t)segment_checksum_failures()));
    }
    if (wh.read_only) {
        json_object_set_new(body, "writes", json_string("refused"));
        json_object_set_new(body, "message", json_string(wh.message));
        json_object_set_new(body, "segments_in_memory",
                            json_integer((json_int_t)wh.segments_in_memory));
    }
    snapshot_release(snap);
    respond_json(ex, n ? 503 : 200, body);
}

/* ---- /metrics ---- */

static void route_metrics(struct route_ctx *ctx, struct exchange *ex)
{
    struct metrics_index mi = { .queries = atomic_load(&ctx->queries),
                                .cache_hits = atomic_load(&ctx->cache_hits),
                                .cache_misses = atomic_load(&ctx->cache_misses),
                                .uptime_s = (uint64_t)(time(NULL) - ctx->started) };
    struct snapshot *snap = index_snapshot(ctx->ix);
    struct writer_stats ws;
    struct buf out;

    mi.documents = snap->n_docs;
    mi.segments = snap->n_segments;
    mi.index_bytes = snap->bytes;
    mi.terms = snap->n_terms;
    mi.damaged_segments = snapshot_damaged_segments(snap, NULL, 0);
    mi.checksum_failures = segment_checksum_failures();
    snapshot_release(snap);
    writer_get_stats(ctx->writer, &ws);
    mi.wal_fsyncs = ws.fsyncs;
    mi.merges = ws.merges;
    mi.refreshes = ws.refreshes;
    mi.checkpoints = ws.checkpoints;
    mi.write_failures = ws.write_failures;
    struct writer_health wh;
    writer_get_health(ctx->writer, &wh);
    mi.writer_read_only = wh.read_only;
    mi.segments_in_memory = wh.segments_in_memory;
    buf_init(&out, 1u << 20);
    metrics_render(&ctx->metrics, &mi, &out);
    respond_bytes(ex, out.rc ? 500 : 200, "text/plain; version=0.0.4; charset=utf-8", out.data,
                  out.len);
    buf_fini(&out);
}

/* ---- dispatch ---- */

static bool path_is(const char *path, size_t len, const char *want)
{
    return strlen(want) == len && !memcmp(path, want, len);
}

static enum route_id route_of(const char *path, size_t len)
{
    static const struct {
        const char *path;
        enum route_id id;
    } routes[] = { { "/", ROUTE_PAGE },           { "/search", ROUTE_SEARCH },
                   { "/suggest", ROUTE_SUGGEST }, { "/documents", ROUTE_DOCUMENTS },
                   { "/analyze", ROUTE_ANALYZE }, { "/health", ROUTE_HEALTH },
                   { "/stats", ROUTE_STATS },     { "/metrics", ROUTE_METRICS } };

    if (len > 11 && !memcmp(path, "/documents/", 11))
        return ROUTE_DOCUMENT;
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
        if (path_is(path, len, routes[i].path))
            return routes[i].id;
    return ROUTE_OTHER;
}

static struct exchange exchange_of(struct route_ctx *ctx, struct http_request *req)
{
    return (struct exchange){ .req = req, .method = http_request_method_name(req),
                              .path = http_request_target(req), .start_ns = now_ns(),
                              .quiet = ctx->cfg->quiet, .cors_origin = ctx->cfg->cors_origin,
                              .metrics = &ctx->metrics, .route = ROUTE_OTHER };
}

bool routes_head(struct route_ctx *ctx, struct http_request *req, size_t *body_limit)
{
    struct exchange ex = exchange_of(ctx, req);
    enum http_req_method cmd = http_request_method(req);
    const char *uri = http_request_uri(req);
    size_t path_len = strcspn(uri, "?#");
    bool put = cmd == HTTP_REQ_PUT && path_len > 11 && !memcmp(uri, "/documents/", 11);
    bool write = put || (cmd == HTTP_REQ_DELETE && path_len > 11 &&
                         !memcmp(uri, "/documents/", 11)) ||
                 (cmd == HTTP_REQ_POST && path_is(uri, path_len, "/documents"));
    size_t n_auth = http_request_header_count(req, "Authorization");

    ex.route = route_of(uri, path_len);
    *body_limit = put ? DOC_MAX_BYTES : ctx->cfg->max_body_bytes;
    if (n_auth > 1) {
        respond_error(&ex, 400, "the request has %zu Authorization headers; send one", n_auth);
        return false;
    }
    return !write || documents_authorized(ctx, &ex);
}

void routes_handle(struct route_ctx *ctx, struct http_request *req)
{
    enum http_req_method cmd = http_request_method(req);
    const char *uri = http_request_uri(req);
    struct exchange ex = exchange_of(ctx, req);
    struct url_query uq;
    const char *why = NULL;

    if (!uri || !*uri) {
        respond_error(&ex, 400, "empty request target");
        return;
    }
    size_t uri_len = strlen(uri);
    if (uri_len > ctx->cfg->max_uri_bytes) {
        respond_error(&ex, 414, "request URI is %zu bytes; at most %zu are allowed", uri_len,
                      ctx->cfg->max_uri_bytes);
        return;
    }
    const char *qmark = strchr(uri, '?');
    size_t path_len = qmark ? (size_t)(qmark - uri) : uri_len;
    const char *qs = qmark ? qmark + 1 : "";
    size_t qs_len = qmark ? uri_len - path_len - 1 : 0;
    const char *hash = memchr(qs, '#', qs_len);
    if (hash)
        qs_len = (size_t)(hash - qs);
    if (!url_query_parse(qs, qs_len, &uq, &why)) {
        url_query_fini(&uq);
        respond_error(&ex, 400, "%s", why);
        return;
    }
    bool get = cmd == HTTP_REQ_GET || cmd == HTTP_REQ_HEAD;
    const char *allow = "GET, HEAD";

    if (cmd == HTTP_REQ_OPTIONS) {
        /* a CORS preflight, or a client asking what the server takes */
        http_request_add_header(req, "Allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS");
        if (ctx->cfg->cors_origin) {
            http_request_add_header(req, "Access-Control-Allow-Methods",
                                    "GET, HEAD, POST, PUT, DELETE, OPTIONS");
            http_request_add_header(req, "Access-Control-Allow-Headers",
                                    "Authorization, Content-Type");
            http_request_add_header(req, "Access-Control-Max-Age", "86400");
        }
        respond_bytes(&ex, 204, "text/plain", "", 0);
        url_query_fini(&uq);
        return;
    }

    ex.route = route_of(uri, path_len);
    if (path_is(uri, path_len, "/")) {
        if (get)
            respond_bytes(&ex, 200, "text/html; charset=utf-8", page_html, page_html_len);
    } else if (path_is(uri, path_len, "/search")) {
        if (get)
            route_search(ctx, &ex, &uq, qs, qs_len);
    } else if (path_is(uri, path_len, "/suggest")) {
        if (get)
            route_suggest(ctx, &ex, &uq);
    } else if (path_is(uri, path_len, "/analyze")) {
        if (get)
            route_analyze(ctx, &ex, &uq);
    } else if (path_is(uri, path_len, "/health")) {
        if (get)
            route_health(ctx, &ex);
    } else if (path_is(uri, path_len, "/stats")) {
        if (get)
            route_stats(ctx, &ex);
    } else if (path_is(uri, path_len, "/metrics")) {
        if (get)
            route_metrics(ctx, &ex);
    } else if (path_is(uri, path_len, "/documents/")) {
        get = true;
        respond_error(&ex, 400, "the path needs a document id: /documents/{id}");
    } else if (path_len > 11 && !memcmp(uri, "/documents/", 11)) {
        allow = "GET, HEAD, PUT, DELETE";
        char *id = malloc(path_len - 11 + 1);
        long id_len = id ? url_decode(uri + 11, path_len - 11, id, false) : -1;
        bool ok = id_len > 0 && id_len <= DOC_ID_MAX_BYTES && utf8_check(id, (size_t)id_len, NULL);
        if (!get && cmd != HTTP_REQ_PUT && cmd != HTTP_REQ_DELETE) {
            /* answered below */
        } else if (!ok) {
            get = true;
            respond_error(&ex, 400, "document id must be 1 to %d bytes of URL-encoded UTF-8",
                          DOC_ID_MAX_BYTES);
        } else if (get) {
            route_document(ctx, &ex, id, (size_t)id_len);
        } else {
            get = true;
            if (cmd == HTTP_REQ_PUT)
                documents_put(ctx, &ex, id, (size_t)id_len);
            else
                documents_delete(ctx, &ex, id, (size_t)id_len);
        }
        free(id);
    } else if (path_is(uri, path_len, "/documents")) {
        allow = "POST";
        if (cmd == HTTP_REQ_POST) {
            get = true;
            documents_post(ctx, &ex);
        } else {
            get = false;
        }
    } else {
        get = true; /* not a method problem */
        respond_error(&ex, 404, "no route %.*s; see API.md for the routes",
                      (int)(path_len < 64 ? path_len : 64), uri);
    }
    if (!get) {
        http_request_add_header(req, "Allow", allow);
        respond_error(&ex, 405, "%s is not allowed here; allowed: %s", ex.method, allow);
    }
    url_query_fini(&uq);
}
