/*
 * JSON documents (API.md, "Documents") to the index's doc_fields, with every
 * rule checked and a message that says which field was wrong.
 */
#ifndef XUN_SERVER_DOCJSON_H
#define XUN_SERVER_DOCJSON_H

#include <jansson.h>
#include <stddef.h>

#include "index/doc.h"

struct xerr;

/*
 * Fills d from obj (a JSON object). d's views point into obj, which must
 * outlive d; d->json is set to json_text (the document as given).
 */
int docjson_fields(json_t *obj, const char *json_text, size_t json_len, struct doc_fields *d,
                   struct xerr *err);

/*
 * Parses one document from text: XE_INPUT for bad JSON (with line and
 * column), XE_LIMIT when larger than DOC_MAX_BYTES. On success *root holds
 * the parsed value (json_decref it when d is no longer needed).
 */
int docjson_parse(const char *text, size_t len, json_t **root, struct doc_fields *d,
                  struct xerr *err);

#endif
