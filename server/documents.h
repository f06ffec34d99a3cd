/*
 * The write routes of API.md: PUT /documents/{id}, POST /documents (JSON
 * lines or a JSON array), DELETE /documents/{id}. Each checks the API key,
 * validates every document before anything is written, hands the good ones
 * to the index writer in one batch (one fsync), and answers once they are
 * durable. They run on the write thread, not on the worker that read them:
 * documents_put/delete/post defer the request (http_request_defer) and
 * return at once.
 */
#ifndef XUN_SERVER_DOCUMENTS_H
#define XUN_SERVER_DOCUMENTS_H

#include <stdbool.h>
#include <stddef.h>

struct exchange;
struct route_ctx;
struct xerr;

/* Starts the write thread (ctx->writes); documents_stop finishes the writes
 * queued, then joins it. */
int documents_start(struct route_ctx *ctx, struct xerr *err);
void documents_stop(struct route_ctx *ctx);
/* Whether ex may write (the API key, when there is one); answers 401 when not. */
bool documents_authorized(struct route_ctx *ctx, struct exchange *ex);
/* Tests only: called on the write thread before each write (NULL: none). */
extern void (*documents_before_write_hook)(void);

/* id: decoded, valid UTF-8, 1..DOC_ID_MAX_BYTES bytes. */
void documents_put(struct route_ctx *ctx, struct exchange *ex, const char *id, size_t id_len);
void documents_delete(struct route_ctx *ctx, struct exchange *ex, const char *id,
                      size_t id_len);
void documents_post(struct route_ctx *ctx, struct exchange *ex);

#endif
