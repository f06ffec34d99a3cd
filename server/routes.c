/*
 * Route handlers (API.md). A request finds its route in one table (routes[],
 * at the end), which answers 404 and 405 alike for every route. Each handler
 * validates its parameters first and answers 400 with what was wrong and
 * what is allowed; then it takes a snapshot of the index, so that it reads
 * one consistent state however long it runs, and releases it when the reply
 * is built.
 */
#include "server/routes.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/base/buf.h"
#include "index/base/error.h"
#include "index/index.h"
#include "index/base/limits.h"
#include "index/format/segment.h"
#include "index/text/tokenizer.h"
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

/* One request as a route sees it: views into the request, valid while it is handled. */
struct route_call {
    enum http_req_method method;
    const char *path; /* undecoded, path_len bytes */
    size_t path_len;
    const char *qs; /* the query string, without '?' and fragment, qs_len bytes */
    size_t qs_len;
    const struct url_query *uq; /* qs, decoded */
};

/* ---- parameters ---- */

/*
 * Each parser below reads one parameter of a query string and returns
 * XE_INPUT with the message to answer (400) when its value is wrong; an
 * absent parameter takes its default.
 */

/* XE_INPUT for a parameter not in names (NULL-terminated): the message lists names. */
static int params_known(const struct url_query *uq, const char *route,
                        const char *const *names, struct xerr *err)
{
    for (size_t i = 0; i < uq->n; i++) {
        bool known = false;
        for (size_t k = 0; names[k] && !known; k++)
            known = !strcmp(uq->params[i].name, names[k]);
        if (known)
            continue;
        char list[160];
        size_t at = 0;
        for (size_t k = 0; names[k] && at < sizeof list; k++) {
            int n = snprintf(list + at, sizeof list - at, "%s%s", k ? ", " : "", names[k]);
            at += n > 0 ? (size_t)n : 0;
        }
        if (!names[0])
            return xerr_set(err, XE_INPUT, "unknown parameter \"%.32s\"; %s takes none",
                            uq->params[i].name, route);
        return xerr_set(err, XE_INPUT, "unknown parameter \"%.32s\"; %s takes %s",
                        uq->params[i].name, route, list);
    }
    return XE_OK;
}

static int param_required(const struct url_query *uq, const char *name,
                          const struct url_param **out, struct xerr *err)
{
    *out = url_query_get(uq, name);
    return *out ? XE_OK : xerr_set(err, XE_INPUT, "parameter %s is required", name);
}

/* An optional unsigned integer within [0, max]. */
static int param_uint(const struct url_query *uq, const char *name, uint32_t dflt, uint32_t max,
                      uint32_t *out, struct xerr *err)
{
    const struct url_param *p = url_query_get(uq, name);
    uint64_t v = 0;

    *out = dflt;
    if (!p)
        return XE_OK;
    bool ok = p->value_len > 0 && p->value_len <= 10;
    for (size_t i = 0; ok && i < p->value_len; i++) {
        ok = p->value[i] >= '0' && p->value[i] <= '9';
        v = v * 10 + (uint64_t)(p->value[i] - '0');
    }
    if (!ok || v > max)
        return xerr_set(err, XE_INPUT, "%s must be an integer from 0 to %u, got \"%.32s\"", name,
                        max, p->value);
    *out = (uint32_t)v;
    return XE_OK;
}

static int param_flag(const struct url_query *uq, const char *name, bool dflt, bool *out,
                      struct xerr *err)
{
    const struct url_param *p = url_query_get(uq, name);

    *out = dflt;
    if (!p)
        return XE_OK;
    if (!strcmp(p->value, "1") || !strcmp(p->value, "true"))
        *out = true;
    else if (!strcmp(p->value, "0") || !strcmp(p->value, "false"))
        *out = false;
    else
        return xerr_set(err, XE_INPUT, "%s must be 0 or 1, got \"%.32s\"", name, p->value);
    return XE_OK;
}

/* Repeatable exact-value filters (source, tag): any of the values. */
static int param_values(const struct url_query *uq, const char *name, struct text *out,
                        size_t *n, struct xerr *err)
{
    *n = 0;
    for (size_t i = 0; i < uq->n; i++) {
        const struct url_param *p = &uq->params[i];
        if (strcmp(p->name, name) != 0)
            continue;
        if (*n == SEARCH_MAX_FILTER_VALUES)
            return xerr_set(err, XE_INPUT, "at most %d %s values are allowed",
                            SEARCH_MAX_FILTER_VALUES, name);
        if (!p->value_len || !utf8_check(p->value, p->value_len, NULL))
            return xerr_set(err, XE_INPUT, "%s must be non-empty UTF-8", name);
        out[(*n)++] = (struct text){ p->value, p->value_len };
    }
    return XE_OK;
}

/* from/to: a date or date-time (API.md); a bare `to` date means to the end of that day. */
static int param_date(const struct url_query *uq, const char *name, bool end_of_day, bool *has,
                      int64_t *out, struct xerr *err)
{
    const struct url_param *p = url_query_get(uq, name);

    *has = false;
    if (!p)
        return XE_OK;
    if (!doc_parse_date(p->value, p->value_len, out))
        return xerr_set(err, XE_INPUT,
                        "%s must be YYYY-MM-DD or an RFC 3339 date-time, got \"%.40s\"", name,
                        p->value);
    if (end_of_day && p->value_len == 10)
        *out += 86399;
    *has = true;
    return XE_OK;
}

static int param_sort(const struct url_query *uq, bool *by_date, struct xerr *err)
{
    const struct url_param *p = url_query_get(uq, "sort");

    *by_date = p && !strcmp(p->value, "date");
    if (p && !*by_date && strcmp(p->value, "relevance") != 0)
        return xerr_set(err, XE_INPUT, "sort must be \"relevance\" or \"date\", got \"%.32s\"",
                        p->value);
    return XE_OK;
}

/* The facets a search can count, by the index of search_result.facets. */
static const char *const facet_names[2] = { "source", "tag" };

static bool *facet_wanted(struct search_options *o, size_t f)
{
    return f == 0 ? &o->facet_source : &o->facet_tag;
}

/* facets: a comma-separated list of facet_names. */
static int param_facets(const struct url_query *uq, struct search_options *o, struct xerr *err)
{
    const struct url_param *p = url_query_get(uq, "facets");

    if (!p)
        return XE_OK;
    for (const char *item = p->value, *end = item + p->value_len; item <= end;) {
        const char *comma = memchr(item, ',', (size_t)(end - item));
        size_t len = comma ? (size_t)(comma - item) : (size_t)(end - item);
        size_t f = 0;
        while (f < 2 && !(strlen(facet_names[f]) == len && !memcmp(item, facet_names[f], len)))
            f++;
        if (f == 2)
            return xerr_set(err, XE_INPUT,
                            "facets must be source, tag or source,tag, got \"%.32s\"", p->value);
        *facet_wanted(o, f) = true;
        item += len + 1;
    }
    return XE_OK;
}

/* ---- /search ---- */

static const char *const search_param_names[] = {
    "q", "limit", "offset", "highlight", "exact_total", "sort", "source", "tag", "from", "to",
    "facets", NULL
};

/*
 * /search's query string as a search (API.md), for a request that began at
 * start_ns; sp->q borrows uq's memory. XE_INPUT with the message to answer
 * when a parameter is unknown, missing or wrong; the checks run in a fixed
 * order, so that a request always gets the same message.
 */
static int search_params_parse(const struct url_query *uq, const struct server_config *cfg,
                               uint64_t start_ns, struct search_params *sp, struct xerr *err)
{
    const struct url_param *q;
    struct search_options *o = &sp->opts;
    int rc;

    *sp = (struct search_params){ .start_ns = start_ns };
    if ((rc = params_known(uq, "/search", search_param_names, err)) ||
        (rc = param_required(uq, "q", &q, err)) ||
        (rc = param_uint(uq, "limit", 10, SEARCH_MAX_LIMIT, &sp->limit, err)) ||
        (rc = param_uint(uq, "offset", 0, SEARCH_MAX_OFFSET, &sp->offset, err)) ||
        (rc = param_flag(uq, "highlight", true, &sp->highlight, err)) ||
        (rc = param_flag(uq, "exact_total", false, &o->exact_total, err)) ||
        (rc = param_values(uq, "source", o->sources, &o->n_sources, err)) ||
        (rc = param_values(uq, "tag", o->tags, &o->n_tags, err)) ||
        (rc = param_date(uq, "from", false, &o->has_from, &o->from_s, err)) ||
        (rc = param_date(uq, "to", true, &o->has_to, &o->to_s, err)) ||
        (rc = param_sort(uq, &o->sort_by_date, err)) || (rc = param_facets(uq, o, err)))
        return rc;
    sp->q = q->value;
    sp->q_len = q->value_len;
    o->recency_half_life_days = cfg->recency_half_life_days;
    o->now_s = (int64_t)time(NULL);
    o->deadline_ns =
        cfg->query_timeout_ms ? start_ns + (uint64_t)cfg->query_timeout_ms * 1000000u : 0;
    o->clock_ns = cfg->query_clock_ns;
    return XE_OK;
}

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


static json_t *facets_json(const struct search_result *res, struct search_options *o)
{
    json_t *facets = json_object();

    for (size_t f = 0; f < 2; f++) {
        if (!*facet_wanted(o, f))
            continue;
        json_t *list = json_array();
        for (size_t i = 0; i < res->n_facets[f]; i++)
            json_array_append_new(list, json_pack("{s:s%,s:I}", "value", res->facets[f][i].value,
                                                  res->facets[f][i].len, "count",
                                                  (json_int_t)res->facets[f][i].count));
        json_object_set_new(facets, facet_names[f], list);
    }
    return facets;
}

/*
 * A /search body but its took_ms, in the order API.md shows the members:
 * those before took_ms, and those after it. took_ms is measured when the
 * body is sent (a cached body gets a fresh one), so it stays out until then.
 */
struct search_body {
    json_t *before; /* query, total, total_relation */
    json_t *after;  /* timed_out, offset, limit, hits, facets */
    bool timed_out;
};

static void search_body_fini(struct search_body *b)
{
    json_decref(b->before);
    json_decref(b->after);
}

/* Runs sp over snap (borrowed: the caller releases it after). */
static int search_body_build(struct index *ix, const struct snapshot *snap,
                             const struct search_params *sp, struct search_body *out,
                             struct xerr *err)
{
    struct query *q = NULL;
    int rc = query_parse(sp->q, sp->q_len, index_tokenize_flags(ix), &q, err);

    *out = (struct search_body){ 0 };
    if (rc)
        return rc;
    struct search_result res;
    struct search_options opts = sp->opts;
    opts.k = sp->offset + sp->limit;
    rc = search_run_opts(snap, q, &opts, &res, err);
    if (rc) {
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
    json_t *facets = opts.facet_source || opts.facet_tag ? facets_json(&res, &opts) : NULL;
    out->before = json_pack("{s:s%,s:I,s:s}", "query", sp->q, sp->q_len, "total",
                            (json_int_t)res.total, "total_relation",
                            res.total_is_bound ? "gte" : "eq");
    search_result_fini(&res);
    query_free(q);
    if (rc) {
        json_decref(hits);
        json_decref(facets);
        search_body_fini(out);
        return rc;
    }
    out->after = json_pack("{s:b,s:i,s:i,s:o}", "timed_out", timed_out, "offset",
                           (int)sp->offset, "limit", (int)sp->limit, "hits", hits);
    out->timed_out = timed_out;
    if (out->after && facets)
        json_object_set_new(out->after, "facets", facets);
    else
        json_decref(facets);
    if (!out->before || !out->after) {
        search_body_fini(out);
        return xerr_set(err, XE_NOMEM, "out of memory");
    }
    return XE_OK;
}

static double took_ms_since(uint64_t start_ns)
{
    return (double)(now_ns() - start_ns) / 1e6;
}

int search_json(struct index *ix, const struct search_params *sp, json_t **out,
                struct xerr *err)
{
    struct snapshot *snap = index_snapshot(ix);
    struct search_body b;
    int rc = search_body_build(ix, snap, sp, &b, err);

    snapshot_release(snap);
    if (rc)
        return rc;
    /* jansson keeps members in the order they were set */
    *out = json_object();
    if (!*out || json_object_update(*out, b.before) ||
        json_object_set_new(*out, "took_ms", json_real(took_ms_since(sp->start_ns))) ||
        json_object_update(*out, b.after)) {
        json_decref(*out);
        *out = NULL;
    }
    search_body_fini(&b);
    return *out ? XE_OK : xerr_set(err, XE_NOMEM, "out of memory");
}

#define SEARCH_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(6)) /* as respond_json writes */

/*
 * b as text cut where took_ms's value goes (cache.h): the members before it,
 * then `,"took_ms":` | `,` and the members after it. Both objects are
 * written whole and their braces joined, so no byte is searched for after.
 */
static int search_body_text(const struct search_body *b, struct cached_body *out)
{
    static const char took_key[] = ",\"took_ms\":";
    char *before = json_dumps(b->before, SEARCH_JSON_FLAGS);
    char *after = json_dumps(b->after, SEARCH_JSON_FLAGS);
    int rc = XE_NOMEM;

    *out = (struct cached_body){ 0 };
    if (before && after) {
        size_t before_len = strlen(before) - 1; /* without its '}' */
        size_t after_len = strlen(after) - 1;   /* without its '{' */
        assert(before_len > 1 && after_len > 1); /* neither object is empty */
        out->took_at = before_len + sizeof took_key - 1;
        out->len = out->took_at + 1 + after_len;
        if ((out->data = malloc(out->len))) {
            memcpy(out->data, before, before_len);
            memcpy(out->data + before_len, took_key, sizeof took_key - 1);
            out->data[out->took_at] = ',';
            memcpy(out->data + out->took_at + 1, after + 1, after_len);
            rc = XE_OK;
        }
    }
    free(before);
    free(after);
    return rc;
}

/* Sends body with a took_ms from ex's start to now, written as jansson writes a real. */
static void respond_search_body(struct exchange *ex, const struct cached_body *body)
{
    json_t *took = json_real(took_ms_since(ex->start_ns));
    char *took_text = took ? json_dumps(took, SEARCH_JSON_FLAGS | JSON_ENCODE_ANY) : NULL;
    size_t took_len = took_text ? strlen(took_text) : 0;
    char *text = took_text ? malloc(body->len + took_len) : NULL;

    json_decref(took);
    if (!text) {
        free(took_text);
        respond_error(ex, 500, "out of memory");
        return;
    }
    memcpy(text, body->data, body->took_at);
    memcpy(text + body->took_at, took_text, took_len);
    memcpy(text + body->took_at + took_len, body->data + body->took_at,
           body->len - body->took_at);
    respond_json_text(ex, 200, text, body->len + took_len);
    free(text);
    free(took_text);
}

static void route_search(struct route_ctx *ctx, struct exchange *ex,
                         const struct route_call *call)
{
    struct xerr err = { 0 };
    struct search_params sp;

    if (search_params_parse(call->uq, ctx->cfg, ex->start_ns, &sp, &err)) {
        respond_error(ex, 400, "%s", err.msg);
        return;
    }
    /* the same query string over the same snapshot: the same answer */
    struct snapshot *snap = index_snapshot(ctx->ix);
    uint64_t generation = snap->generation;
    struct cached_body text = { 0 };
    if (ctx->cache &&
        result_cache_get(ctx->cache, call->qs, call->qs_len, generation, ex->start_ns, &text)) {
        snapshot_release(snap);
        atomic_fetch_add(&ctx->queries, 1);
        atomic_fetch_add(&ctx->cache_hits, 1);
        respond_search_body(ex, &text);
        free(text.data);
        return;
    }
    struct search_body body;
    int rc = search_body_build(ctx->ix, snap, &sp, &body, &err);
    snapshot_release(snap);
    if (rc) {
        respond_error(ex, respond_status_of(rc), "%s", err.msg);
        return;
    }
    atomic_fetch_add(&ctx->queries, 1);
    if (ctx->cache)
        atomic_fetch_add(&ctx->cache_misses, 1);
    rc = search_body_text(&body, &text);
    search_body_fini(&body);
    if (rc) {
        respond_error(ex, 500, "out of memory");
        return;
    }
    /* a timed-out answer is partial: the next try, on a quieter server, may do better */
    if (ctx->cache && !body.timed_out)
        result_cache_put(ctx->cache, call->qs, call->qs_len, generation, ex->start_ns, &text);
    respond_search_body(ex, &text);
    free(text.data);
}

/* ---- /suggest ---- */

static void route_suggest(struct route_ctx *ctx, struct exchange *ex,
                          const struct route_call *call)
{
    static const char *const names[] = { "q", "limit", NULL };
    const struct url_param *qp;
    struct suggestion *s;
    size_t n;
    uint32_t limit;
    struct xerr err = { 0 };

    if (params_known(call->uq, "/suggest", names, &err) ||
        param_required(call->uq, "q", &qp, &err) ||
        param_uint(call->uq, "limit", 8, SUGGEST_MAX_LIMIT, &limit, &err)) {
        respond_error(ex, 400, "%s", err.msg);
        return;
    }
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

static void route_analyze(struct route_ctx *ctx, struct exchange *ex,
                          const struct route_call *call)
{
    static const char *const names[] = { "text", NULL };
    const struct url_param *p = url_query_get(call->uq, "text");
    struct xerr err = { 0 };
    size_t bad;

    if (params_known(call->uq, "/analyze", names, &err)) {
        respond_error(ex, 400, "%s", err.msg);
        return;
    }
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

/* Routes that take no parameters say so rather than ignore them (API.md). */
static bool no_params(struct exchange *ex, const struct route_call *call, const char *route)
{
    static const char *const none[] = { NULL };
    struct xerr err = { 0 };

    if (!call->uq->n)
        return true;
    if (params_known(call->uq, route, none, &err))
        respond_error(ex, 400, "%s", err.msg);
    return false;
}

static void route_stats(struct route_ctx *ctx, struct exchange *ex,
                        const struct route_call *call)
{
    if (!no_params(ex, call, "/stats"))
        return;
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
static void route_health(struct route_ctx *ctx, struct exchange *ex,
                         const struct route_call *call)
{
    (void)call;
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

static void route_metrics(struct route_ctx *ctx, struct exchange *ex,
                          const struct route_call *call)
{
    if (!no_params(ex, call, "/metrics"))
        return;
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
    mi.wal_torn_tails = ws.wal_torn_tails;
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

static void route_page(struct route_ctx *ctx, struct exchange *ex, const struct route_call *call)
{
    (void)ctx, (void)call;
    respond_bytes(ex, 200, "text/html; charset=utf-8", page_html, page_html_len);
}

static void route_no_id(struct route_ctx *ctx, struct exchange *ex, const struct route_call *call)
{
    (void)ctx, (void)call;
    respond_error(ex, 400, "the path needs a document id: /documents/{id}");
}

/* /documents/{id}: GET and HEAD read the document, PUT and DELETE write it. */
static void route_document_id(struct route_ctx *ctx, struct exchange *ex,
                              const struct route_call *call)
{
    static const size_t prefix_len = sizeof "/documents/" - 1;
    size_t encoded_len = call->path_len - prefix_len;
    char *id = malloc(encoded_len + 1);
    long id_len = id ? url_decode(call->path + prefix_len, encoded_len, id, false) : -1;

    if (id_len <= 0 || id_len > DOC_ID_MAX_BYTES || !utf8_check(id, (size_t)id_len, NULL))
        respond_error(ex, 400, "document id must be 1 to %d bytes of URL-encoded UTF-8",
                      DOC_ID_MAX_BYTES);
    else if (call->method == HTTP_REQ_PUT)
        documents_put(ctx, ex, id, (size_t)id_len);
    else if (call->method == HTTP_REQ_DELETE)
        documents_delete(ctx, ex, id, (size_t)id_len);
    else
        route_document(ctx, ex, id, (size_t)id_len);
    free(id);
}

static void route_documents(struct route_ctx *ctx, struct exchange *ex,
                            const struct route_call *call)
{
    (void)call;
    documents_post(ctx, ex);
}

#define METHOD(m) (1u << (m))
#define METHODS_READ (METHOD(HTTP_REQ_GET) | METHOD(HTTP_REQ_HEAD))
#define METHODS_ANY (~0u)
/* What OPTIONS answers for every path (a CORS preflight asks it). */
#define SERVER_METHODS "GET, HEAD, POST, PUT, DELETE, OPTIONS"

/*
 * The routes of API.md. A request goes to the first route whose path is
 * the request's path (with prefix, what the path starts with and goes on
 * past); a method not in methods is answered 405 with Allow, a path no
 * route has 404, OPTIONS (routes_handle) 204 for any path.
 */
static const struct route {
    const char *path;
    bool prefix;
    enum route_id id;       /* what /metrics counts the request under */
    unsigned methods;       /* those allowed: METHOD() of enum http_req_method */
    unsigned auth_methods;  /* writes: those that need the API key (routes_head) */
    unsigned doc_methods;   /* those whose body is one document, at most DOC_MAX_BYTES */
    void (*handle)(struct route_ctx *ctx, struct exchange *ex, const struct route_call *call);
} routes[] = {
    { "/", false, ROUTE_PAGE, METHODS_READ, 0, 0, route_page },
    { "/search", false, ROUTE_SEARCH, METHODS_READ, 0, 0, route_search },
    { "/suggest", false, ROUTE_SUGGEST, METHODS_READ, 0, 0, route_suggest },
    { "/analyze", false, ROUTE_ANALYZE, METHODS_READ, 0, 0, route_analyze },
    { "/health", false, ROUTE_HEALTH, METHODS_READ, 0, 0, route_health },
    { "/stats", false, ROUTE_STATS, METHODS_READ, 0, 0, route_stats },
    { "/metrics", false, ROUTE_METRICS, METHODS_READ, 0, 0, route_metrics },
    { "/documents/", false, ROUTE_OTHER, METHODS_ANY, 0, 0, route_no_id },
    { "/documents/", true, ROUTE_DOCUMENT,
      METHODS_READ | METHOD(HTTP_REQ_PUT) | METHOD(HTTP_REQ_DELETE),
      METHOD(HTTP_REQ_PUT) | METHOD(HTTP_REQ_DELETE), METHOD(HTTP_REQ_PUT), route_document_id },
    { "/documents", false, ROUTE_DOCUMENTS, METHOD(HTTP_REQ_POST), METHOD(HTTP_REQ_POST), 0,
      route_documents },
};

/* The route for path[0..len), NULL when none. */
static const struct route *route_find(const char *path, size_t len)
{
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        size_t n = strlen(routes[i].path);
        if ((routes[i].prefix ? len > n : len == n) && !memcmp(path, routes[i].path, n))
            return &routes[i];
    }
    return NULL;
}

static bool route_allows(const struct route *r, unsigned methods, enum http_req_method m)
{
    return r && (methods & METHOD(m));
}

/* The Allow header of r: its methods, in the order of enum http_req_method. */
static void allow_of(const struct route *r, char *out, size_t size)
{
    static const char *const names[] = { [HTTP_REQ_GET] = "GET",   [HTTP_REQ_HEAD] = "HEAD",
                                         [HTTP_REQ_POST] = "POST", [HTTP_REQ_PUT] = "PUT",
                                         [HTTP_REQ_DELETE] = "DELETE" };
    size_t at = 0;

    out[0] = '\0';
    for (size_t m = 0; m < sizeof names / sizeof *names && at < size; m++)
        if (r->methods & METHOD(m)) {
            int n = snprintf(out + at, size - at, "%s%s", at ? ", " : "", names[m]);
            at += n > 0 ? (size_t)n : 0;
        }
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
    enum http_req_method method = http_request_method(req);
    const char *uri = http_request_uri(req);
    const struct route *r = route_find(uri, strcspn(uri, "?#"));
    size_t n_auth = http_request_header_count(req, "Authorization");

    ex.route = r ? r->id : ROUTE_OTHER;
    *body_limit = route_allows(r, r ? r->doc_methods : 0, method) ? DOC_MAX_BYTES
                                                                  : ctx->cfg->max_body_bytes;
    if (n_auth > 1) {
        respond_error(&ex, 400, "the request has %zu Authorization headers; send one", n_auth);
        return false;
    }
    return !route_allows(r, r ? r->auth_methods : 0, method) || documents_authorized(ctx, &ex);
}

/* OPTIONS, for any path: a CORS preflight, or a client asking what the server takes. */
static void answer_options(struct route_ctx *ctx, struct exchange *ex)
{
    http_request_add_header(ex->req, "Allow", SERVER_METHODS);
    if (ctx->cfg->cors_origin) {
        http_request_add_header(ex->req, "Access-Control-Allow-Methods", SERVER_METHODS);
        http_request_add_header(ex->req, "Access-Control-Allow-Headers",
                                "Authorization, Content-Type");
        http_request_add_header(ex->req, "Access-Control-Max-Age", "86400");
    }
    respond_bytes(ex, 204, "text/plain", "", 0);
}

void routes_handle(struct route_ctx *ctx, struct http_request *req)
{
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
    struct route_call call = { .uq = &uq, .method = http_request_method(req), .path = uri,
                               .path_len = qmark ? (size_t)(qmark - uri) : uri_len,
                               .qs = qmark ? qmark + 1 : "" };
    call.qs_len = qmark ? uri_len - call.path_len - 1 : 0;
    const char *hash = memchr(call.qs, '#', call.qs_len);
    if (hash)
        call.qs_len = (size_t)(hash - call.qs);
    if (!url_query_parse(call.qs, call.qs_len, &uq, &why)) {
        url_query_fini(&uq);
        respond_error(&ex, 400, "%s", why);
        return;
    }
    const struct route *r = call.method == HTTP_REQ_OPTIONS ? NULL
                                                             : route_find(uri, call.path_len);
    if (call.method == HTTP_REQ_OPTIONS) {
        answer_options(ctx, &ex);
    } else if (!r) {
        respond_error(&ex, 404, "no route %.*s; see API.md for the routes",
                      (int)(call.path_len < 64 ? call.path_len : 64), uri);
    } else if (!route_allows(r, r->methods, call.method)) {
        char allow[64];
        allow_of(r, allow, sizeof allow);
        ex.route = r->id;
        http_request_add_header(req, "Allow", allow);
        respond_error(&ex, 405, "%s is not allowed here; allowed: %s", ex.method, allow);
    } else {
        ex.route = r->id;
        r->handle(ctx, &ex, &call);
    }
    url_query_fini(&uq);
}
