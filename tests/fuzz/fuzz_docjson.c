/*
 * Fuzz target: JSON document ingestion, server/docjson.h and the stored
 * record of index/format/doc.h.
 *
 * The input is a document's JSON. When docjson_parse() accepts it, the
 * fields are checked against what was parsed (ids of 1..DOC_ID_MAX_BYTES,
 * no NUL in any field, at most DOC_MAX_TAGS tags), the stored record is
 * made (doc_record_encode), read back (doc_record_decode) with the same
 * fields, and doc_json() must give back the input byte for byte; encoding
 * the decoded document again must give the same record. A refusal must be
 * XE_INPUT or XE_LIMIT with a message.
 */
#include "tests/fuzz/fuzz.h"

#include <jansson.h>

#include "index/base/buf.h"
#include "index/format/doc.h"
#include "index/base/error.h"
#include "index/base/limits.h"
#include "server/docjson.h"

#define RECORD_MAX_BYTES (4 * (size_t)DOC_MAX_BYTES)

static bool text_equal(struct text a, struct text b)
{
    if (!a.p || !b.p)
        return !a.p && !b.p;
    return a.len == b.len && (a.len == 0 || !memcmp(a.p, b.p, a.len));
}

static void check_fields_equal(const struct doc_fields *a, const struct doc_fields *b)
{
    FUZZ_CHECK(text_equal(a->id, b->id), "id differs");
    FUZZ_CHECK(text_equal(a->title, b->title), "title differs");
    FUZZ_CHECK(text_equal(a->body, b->body), "body differs");
    FUZZ_CHECK(text_equal(a->source, b->source), "source differs");
    FUZZ_CHECK(text_equal(a->date, b->date), "date differs");
    FUZZ_CHECK(text_equal(a->url, b->url), "url differs");
    FUZZ_CHECK(a->n_tags == b->n_tags, "%zu tags, then %zu", a->n_tags, b->n_tags);
    for (size_t i = 0; i < a->n_tags; i++)
        FUZZ_CHECK(text_equal(a->tags[i], b->tags[i]), "tag %zu differs", i);
    FUZZ_CHECK(a->date_s == b->date_s, "date %lld, then %lld", (long long)a->date_s,
               (long long)b->date_s);
}

/* A field as the JSON has it: absent or null is NULL, else the string. */
static void check_field(json_t *root, const char *name, struct text t)
{
    json_t *v = json_object_get(root, name);

    if (!v || json_is_null(v)) {
        FUZZ_CHECK(t.p == NULL, "field %s set, JSON has none", name);
        return;
    }
    FUZZ_CHECK(json_is_string(v) && t.p == json_string_value(v) &&
                   t.len == json_string_length(v),
               "field %s is not a view of the parsed string", name);
    FUZZ_CHECK(!memchr(t.p, '\0', t.len), "NUL in field %s", name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    json_t *root = NULL;
    struct doc_fields d, back;
    struct xerr err = { 0 };
    int rc = docjson_parse(text, size, &root, &d, &err);

    if (rc) {
        FUZZ_CHECK((rc == XE_INPUT || rc == XE_LIMIT) && (int)err.code == rc && err.msg[0],
                   "refused with %d (%s)", rc, err.msg);
        FUZZ_CHECK(root == NULL, "root set on failure");
        return 0;
    }
    FUZZ_CHECK(root != NULL && json_is_object(root), "no object");
    FUZZ_CHECK(d.json.p == text && d.json.len == size, "json is not the input");
    FUZZ_CHECK(d.id.p && d.id.len >= 1 && d.id.len <= DOC_ID_MAX_BYTES, "id of %zu bytes",
               d.id.len);
    check_field(root, "id", d.id);
    check_field(root, "title", d.title);
    check_field(root, "body", d.body);
    check_field(root, "source", d.source);
    check_field(root, "date", d.date);
    check_field(root, "url", d.url);
    FUZZ_CHECK(d.n_tags <= DOC_MAX_TAGS, "%zu tags", d.n_tags);
    for (size_t i = 0; i < d.n_tags; i++)
        FUZZ_CHECK(d.tags[i].p && !memchr(d.tags[i].p, '\0', d.tags[i].len), "tag %zu", i);
    FUZZ_CHECK(d.date.p ? d.date_s != DOC_DATE_NONE : d.date_s == DOC_DATE_NONE,
               "date_s %lld", (long long)d.date_s);

    struct buf rec, json, again;
    buf_init(&rec, RECORD_MAX_BYTES);
    buf_init(&json, RECORD_MAX_BYTES);
    buf_init(&again, RECORD_MAX_BYTES);
    FUZZ_CHECK(doc_record_encode(&d, &rec) == XE_OK, "doc_record_encode failed");
    rc = doc_record_decode(rec.data, rec.len, &back, &err);
    FUZZ_CHECK(rc == XE_OK, "doc_record_decode of a fresh record: %s", err.msg);
    check_fields_equal(&d, &back);
    FUZZ_CHECK(back.json.p == NULL && back.json_template.p != NULL, "decoded json views");
    rc = doc_json(&back, &json, &err);
    FUZZ_CHECK(rc == XE_OK, "doc_json: %s", err.msg);
    FUZZ_CHECK(json.len == size && (size == 0 || !memcmp(json.data, data, size)),
               "doc_json gave %zu bytes, not the %zu of the input", json.len, size);
    FUZZ_CHECK(doc_record_encode(&back, &again) == XE_OK, "encoding a decoded record failed");
    FUZZ_CHECK(again.len == rec.len && !memcmp(again.data, rec.data, rec.len),
               "encoding a decoded record changed it");

    buf_fini(&again);
    buf_fini(&json);
    buf_fini(&rec);
    json_decref(root);
    return 0;
}
