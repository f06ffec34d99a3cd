/*
 * Percent-decoding of request paths and query strings. libevent's own
 * decoder turns %00 into a string terminator and accepts broken escapes;
 * these functions keep lengths, reject what a client should fix, and leave
 * UTF-8 validation to the caller, who knows which message to give.
 */
#ifndef XUN_SERVER_URLQUERY_H
#define XUN_SERVER_URLQUERY_H

#include <stdbool.h>
#include <stddef.h>

#define URLQUERY_MAX_PARAMS 64

struct url_param {
    char *name, *value; /* decoded, NUL-terminated (no NUL inside) */
    size_t name_len, value_len;
};

struct url_query {
    struct url_param params[URLQUERY_MAX_PARAMS];
    size_t n;
    char *storage;
};

/*
 * Decodes src[0..len) into dst (room for len + 1). plus_is_space for query
 * strings. Returns the decoded length, or -1 for a bad escape or %00.
 */
long url_decode(const char *src, size_t len, char *dst, bool plus_is_space);

/* Parses "a=1&b=2"; false (with a reason) on bad escapes or too many params. */
bool url_query_parse(const char *qs, size_t len, struct url_query *q, const char **why);
void url_query_fini(struct url_query *q);

/* The first value of name, or NULL. */
const struct url_param *url_query_get(const struct url_query *q, const char *name);

#endif
