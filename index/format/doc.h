/*
 * A document as the index sees it: the text fields it indexes, the keys it
 * filters and sorts by, and the original JSON it stores. Parsing JSON is the
 * server's job; index/ only sees these views.
 *
 * A stored record keeps the fields apart, so that snippets and hits need
 * no JSON parsing, and the original JSON as a template in which each field
 * value that is written the usual way (a string with the minimal escapes)
 * is replaced by a reference to the field: the text is stored once, and
 * doc_json() gives back the JSON byte for byte. Record layout:
 *   varint present-field mask (DOC_HAS_*)
 *   for id, title, body, source, date, url in that order, when present:
 *       varint len, bytes
 *   when DOC_HAS_TAGS: varint n_tags, then n_tags x (varint len, bytes)
 *   varint len, the JSON template: the JSON with some string values
 *       replaced by a NUL byte and a field code (1 + index of id, title,
 *       body, source, date, url; 7 + tag number); NUL never occurs in JSON
 */
#ifndef XUN_INDEX_DOC_H
#define XUN_INDEX_DOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/base/buf.h"
#include "index/base/limits.h"

struct xerr;

/* A string view; p == NULL means the field is absent. */
struct text {
    const char *p;
    size_t len;
};

enum doc_field { FIELD_TITLE, FIELD_BODY, FIELD_META, N_FIELDS }; /* META: source and tags */

#define DOC_DATE_NONE INT64_MIN

/*
 * Exact-value terms for filters and facets: the first byte, then the source
 * or a tag exactly as given (cut at TOKEN_MAX_BYTES). Control characters
 * never begin a term the tokenizer makes, so these cannot collide with text.
 */
#define TERM_SOURCE_PREFIX '\x02'
#define TERM_TAG_PREFIX '\x03'

/* How many bytes of an exact value its term keeps: at most TOKEN_MAX_BYTES,
 * never cutting a UTF-8 character. Indexing and filtering both use it. */
size_t doc_exact_len(const char *value, size_t len);

/* Views into memory the caller keeps alive. */
struct doc_fields {
    struct text id, title, body, source, date, url;
    struct text tags[DOC_MAX_TAGS];
    size_t n_tags;
    int64_t date_s; /* seconds since the epoch (UTC), DOC_DATE_NONE when absent */
    struct text json;          /* the document as given (to encode) */
    struct text json_template; /* after decoding: see doc_json() */
};

/* Appends the stored record of d to out. */
int doc_record_encode(const struct doc_fields *d, struct buf *out);

/* Fills d with views into rec (json stays empty: doc_json() rebuilds it);
 * XE_CORRUPT when the bytes do not parse. */
int doc_record_decode(const unsigned char *rec, size_t len, struct doc_fields *d,
                      struct xerr *err);

/* Appends the original JSON of a decoded document to out. */
int doc_json(const struct doc_fields *d, struct buf *out, struct xerr *err);

/*
 * Parses "YYYY-MM-DD" or an RFC 3339 date-time ("2023-04-29T08:00:00+08:00",
 * "...Z", fractional seconds allowed) into seconds since the epoch, UTC.
 */
bool doc_parse_date(const char *s, size_t len, int64_t *out_s);

#endif
