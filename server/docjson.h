/*
 * JSON documents (API.md, "Documents") to the index's doc_fields, with every
 * rule checked and a message that says which field was wrong.
 */
#ifndef XUN_SERVER_DOCJSON_H
#define XUN_SERVER_DOCJSON_H

#include <jansson.h>
#include <stddef.h>

#include "index/format/doc.h"

struct xerr;

/*
 * Fills d from obj (a JSON object). d's views point into obj, which must
 * outlive d; d->json is set to json_text (the document as given).
 */
int docjson_fields(json_t *obj, const char *json_text, size_t json_len, struct doc_fields *d,
                   struct xerr *err);

/*
 * json_loadb() for documents, with duplicate keys refused. Valid JSON numbers
 * that jansson cannot hold (1e999, 30-digit integers) are read as 0: xun
 * stores the text as given and indexes only string fields, so such numbers
 * are kept as written. The error, if any, has jansson's line and column.
 */
json_t *docjson_load(const char *text, size_t len, json_error_t *jerr);

/*
 * The text of the elements of the JSON array in text (valid JSON, as
 * docjson_load() took it), as views into text, in order, up to max; returns
 * how many there are (more than max: only max filled).
 */
size_t docjson_array_elements(const char *text, size_t len, struct text *elements, size_t max);

/*
 * The JSON object text with "id": id added as its first member, the rest
 * byte for byte (malloc'd, NUL-terminated, *out_len its length); NULL when
 * out of memory or text is not an object.
 */
char *docjson_with_id(const char *text, size_t len, const char *id, size_t id_len,
                      size_t *out_len);

/*
 * Parses one document from text: XE_INPUT for bad JSON (with line and
 * column), XE_LIMIT when larger than DOC_MAX_BYTES. On success *root holds
 * the parsed value (json_decref it when d is no longer needed).
 */
int docjson_parse(const char *text, size_t len, json_t **root, struct doc_fields *d,
                  struct xerr *err);

#endif
