/* JSON documents to doc_fields (see docjson.h). */
#include "server/docjson.h"

#include <string.h>

#include "index/error.h"
#include "index/limits.h"

static int get_string(json_t *obj, const char *name, struct text *out, struct xerr *err)
{
    json_t *v = json_object_get(obj, name);

    out->p = NULL;
    out->len = 0;
    if (!v || json_is_null(v))
        return XE_OK;
    if (!json_is_string(v))
        return xerr_set(err, XE_INPUT, "field \"%s\" must be a string", name);
    out->p = json_string_value(v);
    out->len = json_string_length(v);
    if (memchr(out->p, '\0', out->len))
        return xerr_set(err, XE_INPUT, "field \"%s\" contains a NUL character", name);
    return XE_OK;
}

int docjson_fields(json_t *obj, const char *json_text, size_t json_len, struct doc_fields *d,
                   struct xerr *err)
{
    int rc;

    memset(d, 0, sizeof *d);
    d->date_s = DOC_DATE_NONE;
    /* jansson stops at a NUL byte between tokens; the stored form uses NUL as
     * its field marker (index/doc.h), so such text is refused outright */
    if (memchr(json_text, '\0', json_len))
        return xerr_set(err, XE_INPUT, "invalid JSON: a NUL byte");
    if (!json_is_object(obj))
        return xerr_set(err, XE_INPUT, "a document must be a JSON object");
    json_t *id = json_object_get(obj, "id");
    if (!id)
        return xerr_set(err, XE_INPUT, "field \"id\" is required");
    if ((rc = get_string(obj, "id", &d->id, err)))
        return rc;
    if (!d->id.p || !d->id.len || d->id.len > DOC_ID_MAX_BYTES)
        return xerr_set(err, XE_INPUT, "field \"id\" must be a string of 1 to %d bytes",
                        DOC_ID_MAX_BYTES);
    if ((rc = get_string(obj, "title", &d->title, err)) ||
        (rc = get_string(obj, "body", &d->body, err)) ||
        (rc = get_string(obj, "source", &d->source, err)) ||
        (rc = get_string(obj, "url", &d->url, err)) ||
        (rc = get_string(obj, "date", &d->date, err)))
        return rc;
    if (d->date.p && !doc_parse_date(d->date.p, d->date.len, &d->date_s))
        return xerr_set(err, XE_INPUT,
                        "field \"date\" must be YYYY-MM-DD or an RFC 3339 date-time, got \"%.40s\"",
                        d->date.p);
    json_t *tags = json_object_get(obj, "tags");
    if (tags && !json_is_null(tags)) {
        if (!json_is_array(tags))
            return xerr_set(err, XE_INPUT, "field \"tags\" must be an array of strings");
        if (json_array_size(tags) > DOC_MAX_TAGS)
            return xerr_set(err, XE_INPUT, "field \"tags\" has %zu tags; at most %d are allowed",
                            json_array_size(tags), DOC_MAX_TAGS);
        size_t i;
        json_t *tag;
        json_array_foreach(tags, i, tag) {
            if (!json_is_string(tag))
                return xerr_set(err, XE_INPUT, "field \"tags\" must be an array of strings");
            d->tags[d->n_tags].p = json_string_value(tag);
            d->tags[d->n_tags].len = json_string_length(tag);
            if (memchr(d->tags[d->n_tags].p, '\0', d->tags[d->n_tags].len))
                return xerr_set(err, XE_INPUT, "a tag contains a NUL character");
            d->n_tags++;
        }
    }
    d->json.p = json_text;
    d->json.len = json_len;
    return XE_OK;
}

int docjson_parse(const char *text, size_t len, json_t **root, struct doc_fields *d,
                  struct xerr *err)
{
    json_error_t jerr;

    *root = NULL;
    if (len > DOC_MAX_BYTES)
        return xerr_set(err, XE_LIMIT, "document is %zu bytes; at most %u are allowed", len,
                        DOC_MAX_BYTES);
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v)
        return xerr_set(err, XE_INPUT, "invalid JSON at line %d, column %d: %s", jerr.line,
                        jerr.column, jerr.text);
    int rc = docjson_fields(v, text, len, d, err);
    if (rc) {
        json_decref(v);
        return rc;
    }
    *root = v;
    return XE_OK;
}
