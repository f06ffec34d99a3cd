/*
 * Sending replies: JSON bodies, JSON errors, and the access log line that
 * every reply writes (method, path, status, bytes, microseconds).
 */
#ifndef XUN_SERVER_RESPOND_H
#define XUN_SERVER_RESPOND_H

#include <jansson.h>

#include "server/metrics.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_request;

/* One request being answered. */
struct exchange {
    struct http_request *req; /* the reply goes there (server/http.h) */
    const char *method;
    const char *path; /* the target, raw, as received (logged up to 64 bytes) */
    uint64_t start_ns;
    bool quiet;
    const char *cors_origin; /* added to every reply when set */
    struct metrics *metrics;  /* counts the reply when set */
    enum route_id route;
};

uint64_t now_ns(void);

/* Sends value as the body (steals the reference). */
void respond_json(struct exchange *ex, int status, json_t *value);
/* Sends JSON text already serialized. */
void respond_json_text(struct exchange *ex, int status, const char *text, size_t len);
/* Sends raw bytes with a content type (a HEAD request gets the headers only). */
void respond_bytes(struct exchange *ex, int status, const char *content_type, const void *data,
                   size_t len);
/* {"error": {"code": ..., "message": ...}} with the status's code name. */
void respond_error(struct exchange *ex, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The status API.md gives an index error code (XE_INPUT 400, XE_NOTFOUND 404, ...). */
int respond_status_of(int xe_code);

#endif
