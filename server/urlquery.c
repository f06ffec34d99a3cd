/* Percent-decoding with lengths kept (see urlquery.h). */
#include "server/urlquery.h"

#include <stdlib.h>
#include <string.h>

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long url_decode(const char *src, size_t len, char *dst, bool plus_is_space)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            int hi, lo;
            if (len - i < 3)
                return -1;
            hi = hex_value(src[i + 1]);
            lo = hex_value(src[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            dst[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            dst[o++] = ' ';
        } else if (c == '\0') {
            return -1;
        } else {
            dst[o++] = c;
        }
    }
    dst[o] = '\0';
    return (long)o;
}

bool url_query_parse(const char *qs, size_t len, struct url_query *q, const char **why)
{
    memset(q, 0, sizeof *q);
    if (!len)
        return true;
    q->storage = malloc(2 * len + 2);
    if (!q->storage) {
        *why = "out of memory";
        return false;
    }
    char *out = q->storage;
    size_t i = 0;
    while (i <= len) {
        size_t end = i;
        while (end < len && qs[end] != '&')
            end++;
        if (end > i) {
            const char *eq = memchr(qs + i, '=', end - i);
            size_t name_len = eq ? (size_t)(eq - (qs + i)) : end - i;
            const char *val = eq ? eq + 1 : qs + end;
            size_t val_len = eq ? (size_t)(qs + end - val) : 0;
            if (q->n == URLQUERY_MAX_PARAMS) {
                *why = "too many query parameters";
                return false;
            }
            struct url_param *p = &q->params[q->n];
            long n1 = url_decode(qs + i, name_len, out, true);
            if (n1 < 0) {
                *why = "bad percent-escape in the query string";
                return false;
            }
            p->name = out;
            p->name_len = (size_t)n1;
            out += n1 + 1;
            long n2 = url_decode(val, val_len, out, true);
            if (n2 < 0) {
                *why = "bad percent-escape in the query string";
                return false;
            }
            p->value = out;
            p->value_len = (size_t)n2;
            out += n2 + 1;
            q->n++;
        }
        i = end + 1;
    }
    return true;
}

void url_query_fini(struct url_query *q)
{
    free(q->storage);
    q->storage = NULL;
    q->n = 0;
}

const struct url_param *url_query_get(const struct url_query *q, const char *name)
{
    for (size_t i = 0; i < q->n; i++)
        if (!strcmp(q->params[i].name, name))
            return &q->params[i];
    return NULL;
}
