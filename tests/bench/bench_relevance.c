/*
 * Relevance benchmark: known-item search over ../shared/bench/knownitem.tsv
 * (each line: a query, a tab, the id of the document it was taken from).
 * Prints MRR@10 and success@1, and the precision of CJK matching: the share
 * of returned hits whose text really holds each query run contiguously,
 * after simplified/traditional folding (a hit with 為 holds the run 为).
 *
 * The baseline, from the same run, is what a ranking by document order
 * alone would score on the same matches (the first 10 matches by docid):
 * it shows what BM25 adds over merely matching.
 *
 * usage: bench_relevance DATA_DIR KNOWNITEM_TSV
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/base/buf.h"
#include "index/base/error.h"
#include "index/index.h"
#include "index/format/segment.h"
#include "index/text/tokenizer.h"
#include "index/text/variants.h"
#include "query/qparse.h"

#include <utf8proc.h>
#include "query/search.h"

#define TOP 10

/* The query's whitespace-separated runs, as typed. */
static size_t split_runs(char *q, char **runs, size_t cap)
{
    size_t n = 0;
    for (char *p = strtok_r(q, " ", &q); p && n < cap; p = strtok_r(NULL, " ", &q))
        runs[n++] = p;
    return n;
}

/* text with every character folded (index/text/variants.h), into out; returns its length. */
static size_t fold_copy(const char *text, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        int32_t cp;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)text + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0 || n + 4 > cap)
            break;
        n += (size_t)utf8proc_encode_char(variant_fold(cp), (utf8proc_uint8_t *)out + n);
        i += (size_t)k;
    }
    return n;
}

static bool holds(struct text field, const char *run, size_t run_len)
{
    static char folded[1 << 20];
    size_t n = field.p ? fold_copy(field.p, field.len, folded, sizeof folded) : 0;
    return n && memmem(folded, n, run, run_len);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench_relevance DATA_DIR KNOWNITEM_TSV\n");
        return 2;
    }
    struct xerr err = { 0 };
    struct index *ix;
    if (index_open(argv[1], TOKENIZE_DEFAULT, &ix, &err)) {
        fprintf(stderr, "%s: %s\n", argv[1], err.msg);
        return 1;
    }
    FILE *f = fopen(argv[2], "r");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    struct snapshot *snap = index_snapshot(ix);
    struct buf scratch;
    buf_init(&scratch, 1u << 26);
    char line[4096];
    double rr = 0, rr_base = 0;
    size_t n = 0, at1 = 0, at1_base = 0, hits_checked = 0, hits_exact = 0;

    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *tab = strchr(line, '\t');
        if (!tab)
            continue;
        *tab = '\0';
        const char *want = tab + 1;
        struct query *q;
        if (query_parse(line, strlen(line), TOKENIZE_DEFAULT, &q, &err)) {
            xerr_clear(&err);
            n++;
            continue;
        }
        struct search_result res;
        if (search_run(snap, q, TOP, &res, &err)) {
            fprintf(stderr, "%s: %s\n", line, err.msg);
            return 1;
        }
        /* the baseline: the same matches in document order */
        struct search_result base;
        if (search_run(snap, q, 1000000, &base, &err)) {
            fprintf(stderr, "%s: %s\n", line, err.msg);
            return 1;
        }
        char copy[4096], *runs[64];
        memcpy(copy, line, strlen(line) + 1);
        size_t n_runs = split_runs(copy, runs, 64);
        for (uint32_t i = 0; i < res.n_hits; i++) {
            struct doc_fields d;
            const struct search_hit *h = &res.hits[i];
            if (segment_load(snap->segments[h->segment]->seg, h->docid, &scratch, &d, &err))
                return 1;
            if (d.id.len == strlen(want) && !memcmp(d.id.p, want, d.id.len)) {
                rr += 1.0 / (i + 1);
                at1 += i == 0;
            }
            /* precision: every run stands contiguously in the title or body */
            bool all = true;
            for (size_t r = 0; r < n_runs && all; r++) {
                char run[1024];
                size_t run_len = fold_copy(runs[r], strlen(runs[r]), run, sizeof run);
                all = holds(d.title, run, run_len) || holds(d.body, run, run_len);
            }
            hits_checked++;
            hits_exact += all;
        }
        /* document order: sort the base hits by (segment, docid) and take the first ten */
        size_t m = base.n_hits;
        for (size_t i = 1; i < m; i++)
            for (size_t j = i; j > 0 && (base.hits[j - 1].segment > base.hits[j].segment ||
                                         (base.hits[j - 1].segment == base.hits[j].segment &&
                                          base.hits[j - 1].docid > base.hits[j].docid));
                 j--) {
                struct search_hit t = base.hits[j];
                base.hits[j] = base.hits[j - 1];
                base.hits[j - 1] = t;
            }
        for (size_t i = 0; i < m && i < TOP; i++) {
            struct doc_fields d;
            const struct search_hit *h = &base.hits[i];
            if (segment_load(snap->segments[h->segment]->seg, h->docid, &scratch, &d, &err))
                return 1;
            if (d.id.len == strlen(want) && !memcmp(d.id.p, want, d.id.len)) {
                rr_base += 1.0 / (double)(i + 1);
                at1_base += i == 0;
            }
        }
        search_result_fini(&base);
        search_result_fini(&res);
        query_free(q);
        n++;
    }
    fclose(f);
    printf("relevance: %zu known-item queries, top %d\n", n, TOP);
    printf("  %-36s %8s %10s\n", "", "MRR@10", "success@1");
    printf("  %-36s %8.4f %10.4f\n", "baseline: matches in document order", rr_base / (double)n,
           (double)at1_base / (double)n);
    printf("  %-36s %8.4f %10.4f\n", "xun", rr / (double)n, (double)at1 / (double)n);
    printf("  CJK precision: %zu of %zu hits hold every query run contiguously (%.4f)\n",
           hits_exact, hits_checked, hits_checked ? (double)hits_exact / (double)hits_checked : 0);
    buf_fini(&scratch);
    snapshot_release(snap);
    index_close(ix);
    return 0;
}
