/* Replies and the access log (see respond.h). */
#include "server/respond.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "index/base/error.h"
#include "server/http.h"

#define LOG_INPUT_MAX_BYTES 64

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const struct {
    int status;
    const char *code;
    const char *reason;
} status_table[] = {
    { 200, NULL, "OK" },
    { 201, NULL, "Created" },
    { 204, NULL, "No Content" },
    { 400, "bad_request", "Bad Request" },
    { 401, "unauthorized", "Unauthorized" },
    { 404, "not_found", "Not Found" },
    { 405, "method_not_allowed", "Method Not Allowed" },
    { 408, "request_timeout", "Request Timeout" },
    { 413, "payload_too_large", "Payload Too Large" },
    { 414, "uri_too_long", "URI Too Long" },
    { 429, "too_many_connections", "Too Many Requests" },
    { 431, "headers_too_large", "Request Header Fields Too Large" },
    { 500, "internal", "Internal Server Error" },
    { 501, "not_implemented", "Not Implemented" },
    { 503, "unavailable", "Service Unavailable" },
};

static const char *reason_of(int status)
{
    for (size_t i = 0; i < sizeof status_table / sizeof *status_table; i++)
        if (status_table[i].status == status)
            return status_table[i].reason;
    return "Unknown";
}

static const char *code_of(int status)
{
    for (size_t i = 0; i < sizeof status_table / sizeof *status_table; i++)
        if (status_table[i].status == status && status_table[i].code)
            return status_table[i].code;
    return "internal";
}

int respond_status_of(int xe_code)
{
    switch (xe_code) {
    case XE_INPUT: return 400;
    case XE_NOTFOUND: return 404;
    case XE_LIMIT: return 413;
    default: return 500;
    }
}

static void log_line(const struct exchange *ex, int status, size_t bytes)
{
    uint64_t us = (now_ns() - ex->start_ns) / 1000;

    if (ex->metrics)
        metrics_observe(ex->metrics, ex->route, status, us);
    if (ex->quiet)
        return;
    size_t n = strlen(ex->path);
    /* the path is user input: bounded and stripped of control characters */
    char path[LOG_INPUT_MAX_BYTES + 1];
    size_t shown = n < LOG_INPUT_MAX_BYTES ? n : LOG_INPUT_MAX_BYTES;
    for (size_t i = 0; i < shown; i++)
        path[i] = (unsigned char)ex->path[i] < 0x20 || ex->path[i] == 0x7f ? '?' : ex->path[i];
    path[shown] = '\0';
    fprintf(stderr, "%s %s%s %d %zu %lluus\n", ex->method, path, n > shown ? "..." : "", status,
            bytes, (unsigned long long)us);
}

void respond_bytes(struct exchange *ex, int status, const char *content_type, const void *data,
                   size_t len)
{
    http_request_add_header(ex->req, "Content-Type", content_type);
    if (ex->cors_origin) {
        http_request_add_header(ex->req, "Access-Control-Allow-Origin", ex->cors_origin);
        http_request_add_header(ex->req, "Vary", "Origin");
    }
    http_request_set_reply(ex->req, status, reason_of(status), data, len);
    log_line(ex, status, len);
}

void respond_json(struct exchange *ex, int status, json_t *value)
{
    char *text = value ? json_dumps(value, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;

    json_decref(value);
    if (!text) {
        static const char oom[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        respond_bytes(ex, 500, "application/json", oom, sizeof oom - 1);
        return;
    }
    respond_json_text(ex, status, text, strlen(text));
    free(text);
}

void respond_json_text(struct exchange *ex, int status, const char *text, size_t len)
{
    respond_bytes(ex, status, "application/json; charset=utf-8", text, len);
}

void respond_error(struct exchange *ex, int status, const char *fmt, ...)
{
    char message[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    /* messages may quote user input cut at a byte limit: keep the JSON valid UTF-8 */
    json_t *msg = json_string(message);
    if (!msg)
        msg = json_string("the request could not be processed (and its message was not UTF-8)");
    respond_json(ex, status,
                 json_pack("{s:{s:s,s:o}}", "error", "code", code_of(status), "message", msg));
}
