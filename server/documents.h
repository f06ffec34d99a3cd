/*
 * The write routes of API.md: PUT /documents/{id}, POST /documents (JSON
 * lines or a JSON array), DELETE /documents/{id}. Each checks the API key,
 * validates every document before anything is written, hands the good ones
 * to the index writer in one batch (one fsync), and answers once they are
 * durable.
 */
#ifndef XUN_SERVER_DOCUMENTS_H
#define XUN_SERVER_DOCUMENTS_H

#include <stddef.h>

struct exchange;
struct route_ctx;

/* id: decoded, valid UTF-8, 1..DOC_ID_MAX_BYTES bytes. */
void documents_put(struct route_ctx *ctx, struct exchange *ex, const char *id, size_t id_len);
void documents_delete(struct route_ctx *ctx, struct exchange *ex, const char *id,
                      size_t id_len);
void documents_post(struct route_ctx *ctx, struct exchange *ex);

#endif
