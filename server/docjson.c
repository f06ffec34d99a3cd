/* JSON documents to doc_fields (see docjson.h). */
#include "server/docjson.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "index/base/error.h"
#include "index/base/limits.h"

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
     * its field marker (index/format/doc.h), so such text is refused outright */
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

/* True when jansson refused a valid number because it cannot hold its value. */
static bool number_out_of_range(const json_error_t *jerr)
{
    return json_error_code(jerr) == json_error_numeric_overflow;
}

static bool is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* text[at] opens a string: the index after the quote that closes it (or len). */
static size_t string_end(const char *text, size_t at, size_t len)
{
    for (size_t i = at + 1; i < len; i++) {
        if (text[i] == '\\')
            i++;
        else if (text[i] == '"')
            return i + 1;
    }
    return len;
}

/*
 * A copy of text with every number outside strings written as 0 and padded
 * with spaces to its length, so that lines and columns stay where they were.
 */
static char *numbers_zeroed(const char *text, size_t len)
{
    char *copy = malloc(len ? len : 1);

    if (!copy)
        return NULL;
    memcpy(copy, text, len);
    for (size_t i = 0; i < len;) {
        char c = copy[i];
        if (c == '"') {
            i = string_end(copy, i, len);
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t end = i + 1;
            while (end < len && copy[end] && strchr("+-.0123456789eE", copy[end]))
                end++;
            copy[i] = '0';
            memset(copy + i + 1, ' ', end - i - 1);
            i = end;
        } else {
            i++;
        }
    }
    return copy;
}

json_t *docjson_load(const char *text, size_t len, json_error_t *jerr)
{
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, jerr);

    if (v || !number_out_of_range(jerr))
        return v;
    char *copy = numbers_zeroed(text, len);
    if (!copy)
        return NULL;
    v = json_loadb(copy, len, JSON_REJECT_DUPLICATES, jerr);
    free(copy);
    return v;
}

static size_t skip_space(const char *text, size_t at, size_t len)
{
    while (at < len && is_json_space(text[at]))
        at++;
    return at;
}

/* The end of the JSON value that starts at text[at] (valid JSON assumed). */
static size_t value_end(const char *text, size_t at, size_t len)
{
    int depth = 0;

    for (size_t i = at; i < len;) {
        char c = text[i];
        if (c == '"') {
            i = string_end(text, i, len);
            if (depth == 0)
                return i;
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth <= 0)
                return depth < 0 ? i : i + 1;
        } else if (depth == 0 && (c == ',' || is_json_space(c))) {
            return i;
        }
        i++;
    }
    return len;
}

size_t docjson_array_elements(const char *text, size_t len, struct text *elements, size_t max)
{
    size_t n = 0, at = skip_space(text, 0, len);

    if (at >= len || text[at] != '[')
        return 0;
    at = skip_space(text, at + 1, len);
    while (at < len && text[at] != ']') {
        size_t end = value_end(text, at, len);
        if (n < max)
            elements[n] = (struct text){ text + at, end - at };
        n++;
        at = skip_space(text, end, len);
        if (at < len && text[at] == ',')
            at = skip_space(text, at + 1, len);
    }
    return n;
}

char *docjson_with_id(const char *text, size_t len, const char *id, size_t id_len,
                      size_t *out_len)
{
    size_t open = skip_space(text, 0, len);

    if (open >= len || text[open] != '{')
        return NULL;
    json_t *value = json_stringn(id, id_len);
    char *quoted = value ? json_dumps(value, JSON_ENCODE_ANY) : NULL;
    json_decref(value);
    if (!quoted)
        return NULL;
    size_t first = skip_space(text, open + 1, len);
    bool empty = first >= len || text[first] == '}';
    size_t quoted_len = strlen(quoted);
    *out_len = len + 5 + quoted_len + !empty;
    char *out = malloc(*out_len + 1);
    if (out) {
        size_t at = open + 1;
        memcpy(out, text, at);
        memcpy(out + at, "\"id\":", 5);
        memcpy(out + at + 5, quoted, quoted_len);
        size_t rest = at + 5 + quoted_len;
        if (!empty)
            out[rest++] = ',';
        memcpy(out + rest, text + at, len - at);
        out[*out_len] = '\0';
    }
    free(quoted);
    return out;
}

int docjson_parse(const char *text, size_t len, json_t **root, struct doc_fields *d,
                  struct xerr *err)
{
    json_error_t jerr;

    *root = NULL;
    if (len > DOC_MAX_BYTES)
        return xerr_set(err, XE_LIMIT, "document is %zu bytes; at most %u are allowed", len,
                        DOC_MAX_BYTES);
    json_t *v = docjson_load(text, len, &jerr);
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
