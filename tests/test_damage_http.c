/*
 * End to end: a segment damaged on disk, served. The index is bulk-loaded
 * with small chunks (index/format/segment.h), one bit is flipped in the file, and
 * the server opens it without checking it whole (as it would a segment over
 * SEGMENT_VERIFY_AT_OPEN_BYTES). A bit of a document entry: that document
 * must then be an error, by id and as a search hit, never another
 * document's data; the others still answer; /health turns 503 "degraded"
 * naming the segment, and /metrics counts the failure. A bit of a posting
 * list: each search answers its one right hit or an error, never a wrong
 * or missing hit.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/base/bytes.h"
#include "index/base/error.h"
#include "index/index.h"
#include "index/format/segment.h"
#include "server/bulkload.h"
#include "server/http.h"
#include "tests/httpc.h"
#include "tests/testserver.h"
#include "tests/testutil.h"

#define N_DOCS 400
#define CHUNK_BYTES 256 /* the doc entries span dozens of chunks */
#define NAME_BYTES 64

enum damage { DAMAGE_DOC_ENTRY, DAMAGE_POSTINGS };

struct fixture {
    enum damage damage;
    struct test_server ts;
    char segment[NAME_BYTES]; /* the one segment's file name */
    char damaged_id[16];      /* the document whose entry is damaged */
    char damaged_word[16];    /* a word only it has */
};

/* A word of letters only, one per document ("qa", "qb", ... then "qba"...). */
static void word_of(unsigned i, char *out, size_t cap)
{
    char rev[12];
    size_t n = 0;

    do {
        rev[n++] = (char)('a' + i % 26);
        i /= 26;
    } while (i && n < sizeof rev);
    assert_true(n + 2 <= cap);
    out[0] = 'q';
    for (size_t k = 0; k < n; k++)
        out[1 + k] = rev[n - 1 - k];
    out[1 + n] = '\0';
}

static void write_corpus(const char *path)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    for (unsigned i = 0; i < N_DOCS; i++) {
        char word[16];
        word_of(i, word, sizeof word);
        fprintf(f, "{\"id\":\"d%04u\",\"title\":\"entry %s\","
                   "\"body\":\"damagecommon text of %s\"}\n", i, word, word);
    }
    assert_int_equal(fclose(f), 0);
}

static void find_segment(struct fixture *fx)
{
    DIR *d = opendir(fx->ts.dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".xseg") && strlen(e->d_name) < NAME_BYTES) {
            memcpy(fx->segment, e->d_name, strlen(e->d_name) + 1);
            n++;
        }
    closedir(d);
    assert_int_equal(n, 1);
}

/* Flips the low bit of the stored record number in the entry of the second
 * document (so that, unchecked, it would give the first one's record), and
 * notes which document that is. Searches by id pass it only on their way to
 * the first few ids. */
static void damage_a_document_entry(struct fixture *fx)
{
    char path[4096];
    size_t len;

    snprintf(path, sizeof path, "%s/%s", fx->ts.dir, fx->segment);
    unsigned char *file = test_read_file(path, &len);
    assert_non_null(file);
    uint32_t n_docs = get_u32le(file + 16);
    assert_int_equal(n_docs, N_DOCS);
    assert_int_equal(get_u32le(file + 120), CHUNK_BYTES);
    size_t docs = (size_t)get_u64le(file + 56 + 16 * 2);
    size_t ids = docs + (size_t)n_docs * (SEGMENT_DOC_ENTRY_BYTES + SEGMENT_RANK_ENTRY_BYTES + 4);
    unsigned char *entry = file + docs + SEGMENT_DOC_ENTRY_BYTES * 1;
    size_t id_len = entry[28];
    assert_true(id_len == 5);
    memcpy(fx->damaged_id, file + ids + get_u32le(entry + 24), id_len);
    fx->damaged_id[id_len] = '\0';
    word_of((unsigned)strtoul(fx->damaged_id + 1, NULL, 10), fx->damaged_word,
            sizeof fx->damaged_word);
    entry[12] ^= 0x01;
    test_write_file(path, file, len);
    free(file);
}

/* Flips one bit in the middle of the posting lists. */
static void damage_postings(struct fixture *fx)
{
    char path[4096];
    size_t len;

    snprintf(path, sizeof path, "%s/%s", fx->ts.dir, fx->segment);
    unsigned char *file = test_read_file(path, &len);
    assert_non_null(file);
    size_t postings = (size_t)get_u64le(file + 56 + 16 * 1);
    size_t postings_len = (size_t)get_u64le(file + 64 + 16 * 1);
    file[postings + postings_len / 2] ^= 0x10;
    test_write_file(path, file, len);
    free(file);
}

/* test_server_options.opened: the damaged index is open; later opens verify as before. */
static int verified_at_open(struct test_server *ts, void *arg)
{
    (void)ts;
    (void)arg;
    segment_set_verify_at_open_bytes(0);
    return 0;
}

static int setup(void **state, enum damage damage)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    struct bulkload_stats stats;
    struct index *ix;
    struct xerr err = { 0 };
    char corpus[4096];
    char *dir;

    if (!fx || !(dir = test_mkdtemp()))
        return -1;
    *state = fx;
    fx->damage = damage;
    snprintf(corpus, sizeof corpus, "%s.jsonl", dir);
    write_corpus(corpus);
    char *files[] = { corpus };
    segment_set_chunk_bytes(CHUNK_BYTES);
    int rc = index_open(dir, TOKENIZE_DEFAULT, &ix, &err);
    if (!rc)
        rc = bulkload_files(ix, files, 1, &(struct bulkload_options){ .threads = 1 }, &stats,
                            &err);
    segment_set_chunk_bytes(0);
    remove(corpus);
    if (rc) {
        fprintf(stderr, "building the index: %s\n", err.msg);
        test_rmtree(dir);
        free(dir);
        return -1;
    }
    index_close(ix);

    /* the folder is the test server's, removed by the teardown (test_server_start copies it) */
    fx->ts.dir = dir;
    fx->ts.scratch = true;
    find_segment(fx);
    if (damage == DAMAGE_DOC_ENTRY)
        damage_a_document_entry(fx);
    else
        damage_postings(fx);

    /* opened as a large segment is: only what opening reads is checked */
    segment_set_verify_at_open_bytes(1);
    rc = test_server_start(&fx->ts, dir, &(struct test_server_options){
                                             .opened = verified_at_open });
    segment_set_verify_at_open_bytes(0);
    fx->ts.scratch = true;
    free(dir);
    return rc;
}

static int setup_doc_entry(void **state)
{
    return setup(state, DAMAGE_DOC_ENTRY);
}

static int setup_postings(void **state)
{
    return setup(state, DAMAGE_POSTINGS);
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    if (!fx)
        return 0;
    test_server_fini(&fx->ts);
    free(fx);
    return 0;
}

/* GET target: its status and body (JSON unless text is wanted). */
static int get(const struct fixture *fx, const char *target, json_t **json, char **text)
{
    struct httpc_reply r;
    json_error_t jerr;

    if (!test_http_request(fx->ts.port, "GET", target, NULL, NULL, 0, &r))
        fail_msg("GET %s: no reply", target);
    int status = r.status;
    if (json) {
        *json = json_loadb(r.body, r.body_len, 0, &jerr);
        if (!*json)
            fail_msg("GET %s: %d, not JSON: %.200s", target, status, r.body);
    }
    if (text)
        *text = strdup(r.body);
    httpc_reply_fini(&r);
    return status;
}

static const char *error_code(json_t *v)
{
    return json_string_value(json_object_get(json_object_get(v, "error"), "code"));
}

static const char *error_message(json_t *v)
{
    const char *m = json_string_value(json_object_get(json_object_get(v, "error"), "message"));
    return m ? m : "";
}

/* The value of a metric line "name value" in the exposition. */
static long long metric(const char *text, const char *name)
{
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *at = strstr(text, key);
    if (!at)
        fail_msg("no metric %s", name);
    return strtoll(at + strlen(key), NULL, 10);
}

static void test_damaged_document_entry_is_an_error_and_health_degrades(void **state)
{
    struct fixture *fx = *state;
    char target[256];
    json_t *v;
    char *text;

    /* opening read nothing of the doc entries: healthy so far */
    assert_int_equal(get(fx, "/health", &v, NULL), 200);
    assert_string_equal(json_string_value(json_object_get(v, "status")), "ok");
    json_decref(v);
    assert_int_equal(get(fx, "/metrics", NULL, &text), 200);
    assert_int_equal(metric(text, "xun_damaged_segments"), 0);
    long long failures_before = metric(text, "xun_checksum_failures_total");
    free(text);

    /* the damaged document: an error naming the file, not its neighbour's JSON */
    snprintf(target, sizeof target, "/documents/%s", fx->damaged_id);
    assert_int_equal(get(fx, target, &v, NULL), 500);
    assert_string_equal(error_code(v), "internal");
    assert_non_null(strstr(error_message(v), fx->segment));
    assert_non_null(strstr(error_message(v), "checksum"));
    json_decref(v);
    /* as a search hit too: an error, not a partial or wrong list */
    snprintf(target, sizeof target, "/search?q=%s", fx->damaged_word);
    assert_int_equal(get(fx, target, &v, NULL), 500);
    assert_non_null(strstr(error_message(v), "checksum"));
    json_decref(v);

    /* documents elsewhere in the file still answer */
    char far_id[16], far_word[16];
    snprintf(far_id, sizeof far_id, "d%04u", N_DOCS - 1);
    word_of(N_DOCS - 1, far_word, sizeof far_word);
    snprintf(target, sizeof target, "/documents/%s", far_id);
    assert_int_equal(get(fx, target, &v, NULL), 200);
    assert_string_equal(json_string_value(json_object_get(v, "id")), far_id);
    json_decref(v);
    snprintf(target, sizeof target, "/search?q=%s", far_word);
    assert_int_equal(get(fx, target, &v, NULL), 200);
    assert_int_equal(json_integer_value(json_object_get(v, "total")), 1);
    json_decref(v);

    /* and the node says it is damaged */
    assert_int_equal(get(fx, "/health", &v, NULL), 503);
    assert_string_equal(json_string_value(json_object_get(v, "status")), "degraded");
    json_t *names = json_object_get(v, "damaged_segments");
    assert_int_equal(json_array_size(names), 1);
    assert_string_equal(json_string_value(json_array_get(names, 0)), fx->segment);
    json_decref(v);
    assert_int_equal(get(fx, "/metrics", NULL, &text), 200);
    assert_int_equal(metric(text, "xun_damaged_segments"), 1);
    assert_int_equal(metric(text, "xun_checksum_failures_total"), failures_before + 1);
    free(text);
}

static void test_damaged_posting_list_fails_searches_never_misleads(void **state)
{
    struct fixture *fx = *state;
    unsigned failed = 0, answered = 0;

    for (unsigned i = 0; i < N_DOCS; i++) {
        char word[16], target[64], want_id[16];
        json_t *v;
        word_of(i, word, sizeof word);
        snprintf(target, sizeof target, "/search?q=%s", word);
        snprintf(want_id, sizeof want_id, "d%04u", i);
        int status = get(fx, target, &v, NULL);
        if (status == 500) {
            assert_non_null(strstr(error_message(v), "checksum"));
            failed++;
        } else {
            /* the one document with the word, no other */
            assert_int_equal(status, 200);
            assert_int_equal(json_integer_value(json_object_get(v, "total")), 1);
            json_t *hit = json_array_get(json_object_get(v, "hits"), 0);
            assert_string_equal(json_string_value(json_object_get(hit, "id")), want_id);
            answered++;
        }
        json_decref(v);
    }
    assert_true(failed > 0);
    assert_true(answered > 0);
    json_t *v;
    assert_int_equal(get(fx, "/health", &v, NULL), 503);
    assert_string_equal(json_string_value(json_object_get(v, "status")), "degraded");
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_damaged_document_entry_is_an_error_and_health_degrades, setup_doc_entry,
            teardown),
        cmocka_unit_test_setup_teardown(test_damaged_posting_list_fails_searches_never_misleads,
                                        setup_postings, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
