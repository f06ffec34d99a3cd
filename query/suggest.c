/*
 * Suggestions (see suggest.h). Titles come from ordinary title-only searches
 * built as query text, so they rank by the same BM25 as /search; the
 * dictionary, sorted by bytes, gives the prefix expansions and the frequent
 * continuations directly, by document frequency.
 */
#include "query/suggest.h"

#include <stdlib.h>
#include <string.h>

#include "index/base/buf.h"
#include "index/base/error.h"
#include "index/index.h"
#include "index/format/segment.h"
#include "index/text/tokenizer.h"
#include "query/qparse.h"
#include "query/search.h"

/* Dictionary terms scanned per segment for one prefix. */
#define SUGGEST_SCAN_TERMS 4096

struct candidate {
    char term[TOKEN_MAX_BYTES + 1];
    size_t len;
    uint64_t df;
};

/* The `want` most frequent terms that start with prefix, the prefix itself
 * included (df summed over segments). */
static int frequent_terms(const struct snapshot *snap, const char *prefix, size_t len,
                          struct candidate *best, size_t want, size_t *n_out, struct xerr *err)
{
    size_t n = 0;

    *n_out = 0;
    for (uint32_t s = 0; s < snap->n_segments; s++) {
        struct segment_term_iter it;
        struct segment_term st;
        segment_terms_from(snap->segments[s]->seg, prefix, len, &it);
        for (int scanned = 0; scanned < SUGGEST_SCAN_TERMS && segment_terms_next(&it, &st);
             scanned++) {
            if (it.term_len < len || memcmp(it.term, prefix, len) != 0)
                break;
            size_t k;
            for (k = 0; k < n && (best[k].len != it.term_len ||
                                  memcmp(best[k].term, it.term, it.term_len)); k++)
                ;
            if (k < n) {
                best[k].df += st.df;
            } else if (n < want) {
                memcpy(best[n].term, it.term, it.term_len);
                best[n].len = it.term_len;
                best[n++].df = st.df;
                k = n - 1;
            } else {
                size_t worst = 0;
                for (size_t i = 1; i < n; i++)
                    if (best[i].df < best[worst].df)
                        worst = i;
                if (best[worst].df >= st.df)
                    continue;
                memcpy(best[worst].term, it.term, it.term_len);
                best[worst].len = it.term_len;
                best[worst].df = st.df;
                k = worst;
            }
            /* keep the list ordered by df, most frequent first */
            while (k > 0 && best[k - 1].df < best[k].df) {
                struct candidate t = best[k];
                best[k] = best[k - 1];
                best[k - 1] = t;
                k--;
            }
        }
        if (it.rc) /* a damaged dictionary: no guesses from it */
            return segment_terms_error(&it, err);
    }
    *n_out = n;
    return XE_OK;
}

struct collector {
    struct suggestion *items;
    size_t n, limit;
    bool nomem;
};

static bool has_text(const struct collector *c, const char *text, size_t len)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->items[i].len == len && !memcmp(c->items[i].text, text, len))
            return true;
    return false;
}

static void add(struct collector *c, const char *text, size_t len, const char *id,
                size_t id_len)
{
    if (c->n == c->limit || !len || has_text(c, text, len))
        return;
    struct suggestion *s = &c->items[c->n];
    s->text = strndup(text, len);
    s->len = len;
    s->id = id ? strndup(id, id_len) : NULL;
    s->id_len = id_len;
    if (!s->text || (id && !s->id)) {
        free(s->text);
        free(s->id);
        c->nomem = true;
        return;
    }
    c->n++;
}

/* Appends text to q with double quotes replaced, so it stays inside one quoted phrase. */
static void append_unquoted(struct buf *q, const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        buf_append_byte(q, text[i] == '"' ? ' ' : (unsigned char)text[i]);
}

/* Titles matching the query text q, best first, into c. */
static int title_hits(const struct snapshot *snap, const char *q, size_t len,
                      struct collector *c, struct xerr *err)
{
    struct query *query;
    struct search_result res;
    struct search_options opts = { .k = (uint32_t)c->limit, .max_matches = SUGGEST_MAX_MATCHES };
    struct buf scratch;
    struct xerr quiet = { 0 };

    if (query_parse(q, len, snap->tokenize_flags, &query, &quiet))
        return XE_OK; /* what was typed is not a query yet: no titles */
    int rc = search_run_opts(snap, query, &opts, &res, err);
    query_free(query);
    if (rc)
        return rc;
    buf_init(&scratch, (size_t)4 * DOC_MAX_BYTES);
    for (uint32_t i = 0; i < res.n_hits && !rc; i++) {
        struct doc_fields d;
        rc = segment_load(snap->segments[res.hits[i].segment]->seg, res.hits[i].docid, &scratch,
                          &d, err);
        if (!rc && d.title.p)
            add(c, d.title.p, d.title.len, d.id.p, d.id.len);
    }
    buf_fini(&scratch);
    search_result_fini(&res);
    return rc;
}

struct last_token {
    struct token tok;
    char term[TOKEN_MAX_BYTES + 1];
    bool any;
};

static int keep_last(void *ctx, const struct token *tok)
{
    struct last_token *l = ctx;
    if (tok->kind == TOKEN_CJK_CHAR)
        return 0;
    l->tok = *tok;
    memcpy(l->term, tok->term, tok->term_len);
    l->tok.term = l->term;
    l->any = true;
    return 0;
}

int suggest_run(const struct snapshot *snap, const char *prefix, size_t len, uint32_t limit,
                struct suggestion **out, size_t *n_out, struct xerr *err)
{
    struct collector c = { .limit = limit };
    struct last_token last = { .any = false };
    struct candidate cands[SUGGEST_MAX_LIMIT];
    struct buf q;
    size_t bad;
    int rc = XE_OK;

    *out = NULL;
    *n_out = 0;
    if (len > SUGGEST_MAX_BYTES)
        return xerr_set(err, XE_INPUT, "q is %zu bytes; at most %d are allowed", len,
                        SUGGEST_MAX_BYTES);
    if (!utf8_check(prefix, len, &bad))
        return xerr_set(err, XE_INPUT, "q is not valid UTF-8 (byte %zu)", bad);
    if (!limit)
        return XE_OK;
    if (limit > SUGGEST_MAX_LIMIT)
        limit = SUGGEST_MAX_LIMIT;
    c.items = calloc(limit, sizeof *c.items);
    if (!c.items)
        return xerr_set(err, XE_NOMEM, "out of memory");
    tokenize(prefix, len, 0, snap->tokenize_flags, keep_last, &last);
    if (!last.any)
        goto done;
    buf_init(&q, 4 * SUGGEST_MAX_BYTES + 64);

    /* ends inside a word: complete it from the dictionary */
    bool completing = last.tok.kind == TOKEN_WORD && last.tok.end_byte == len;
    size_t base_len = completing ? last.tok.start_byte : len;
    size_t n_cands = 0;
    if (completing)
        rc = frequent_terms(snap, last.tok.term, last.tok.term_len, cands, SUGGEST_EXPANSIONS,
                            &n_cands, err);
    if (!rc && (!completing || n_cands == 0)) {
        buf_append_str(&q, "title:\"");
        append_unquoted(&q, prefix, len);
        buf_append_byte(&q, '"');
        rc = title_hits(snap, (const char *)q.data, q.len, &c, err);
    }
    for (size_t i = 0; i < n_cands && !rc; i++) {
        buf_reset(&q);
        if (base_len) {
            buf_append_str(&q, "title:\"");
            append_unquoted(&q, prefix, base_len);
            buf_append_str(&q, "\" ");
        }
        buf_append_str(&q, "title:");
        buf_append(&q, cands[i].term, cands[i].len);
        rc = title_hits(snap, (const char *)q.data, q.len, &c, err);
    }
    /* too few titles: frequent words or bigrams that continue the text */
    if (!rc && c.n < limit) {
        if (!completing && (last.tok.kind == TOKEN_CJK_BIGRAM ||
                            last.tok.kind == TOKEN_CJK_SINGLE)) {
            /* the last character typed, normalized, as the first of a bigram */
            const char *lastc = prefix + last.tok.end_byte;
            do
                lastc--;
            while (lastc > prefix && ((unsigned char)*lastc & 0xC0) == 0x80);
            char first[8];
            size_t first_len = 0;
            struct last_token one = { .any = false };
            tokenize(lastc, (size_t)(prefix + last.tok.end_byte - lastc), 0, snap->tokenize_flags,
                     keep_last, &one);
            if (one.any && one.tok.kind == TOKEN_CJK_SINGLE && one.tok.term_len < sizeof first) {
                memcpy(first, one.term, one.tok.term_len);
                first_len = one.tok.term_len;
            }
            size_t n = 0;
            if (first_len)
                rc = frequent_terms(snap, first, first_len, cands, limit, &n, err);
            for (size_t i = 0; i < n && c.n < limit; i++) {
                if (cands[i].len == first_len)
                    continue; /* the character itself continues nothing */
                buf_reset(&q);
                buf_append(&q, prefix, last.tok.end_byte);
                buf_append(&q, cands[i].term + first_len, cands[i].len - first_len);
                add(&c, (const char *)q.data, q.len, NULL, 0);
            }
        } else if (completing) {
            /* keep what was typed as typed ("Bed" -> "Bedrock") when folding kept its length */
            bool same = len - base_len == last.tok.term_len;
            for (size_t i = 0; i < n_cands && c.n < limit; i++) {
                if (cands[i].len == last.tok.term_len)
                    continue; /* the word as typed: nothing to complete */
                buf_reset(&q);
                buf_append(&q, prefix, same ? len : base_len);
                buf_append(&q, cands[i].term + (same ? last.tok.term_len : 0),
                           cands[i].len - (same ? last.tok.term_len : 0));
                add(&c, (const char *)q.data, q.len, NULL, 0);
            }
        }
    }
    buf_fini(&q);
done:
    if (!rc && c.nomem)
        rc = xerr_set(err, XE_NOMEM, "out of memory");
    if (rc) {
        suggestions_free(c.items, c.n);
        return rc;
    }
    *out = c.items;
    *n_out = c.n;
    return XE_OK;
}

void suggestions_free(struct suggestion *s, size_t n)
{
    for (size_t i = 0; s && i < n; i++) {
        free(s[i].text);
        free(s[i].id);
    }
    free(s);
}
