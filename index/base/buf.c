/* Growable byte buffer with a cap and a sticky error (see buf.h). */
#include "index/base/buf.h"

#include <stdlib.h>
#include <string.h>

#include "index/base/bytes.h"
#include "index/base/error.h"

void buf_init(struct buf *b, size_t max_bytes)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max_bytes = max_bytes;
    b->rc = XE_OK;
}

void buf_fini(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    b->rc = XE_OK;
}

int buf_reserve(struct buf *b, size_t more_bytes)
{
    if (b->rc)
        return b->rc;
    if (more_bytes > b->max_bytes - b->len)
        return b->rc = XE_LIMIT;
    if (b->len + more_bytes <= b->cap)
        return XE_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + more_bytes)
        cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
    if (cap > b->max_bytes)
        cap = b->max_bytes;
    unsigned char *p = realloc(b->data, cap);
    if (!p)
        return b->rc = XE_NOMEM;
    b->data = p;
    b->cap = cap;
    return XE_OK;
}

int buf_append(struct buf *b, const void *p, size_t len_bytes)
{
    if (buf_reserve(b, len_bytes))
        return b->rc;
    if (len_bytes)
        memcpy(b->data + b->len, p, len_bytes);
    b->len += len_bytes;
    return XE_OK;
}

int buf_append_byte(struct buf *b, unsigned char c)
{
    if (b->len < b->cap && !b->rc) {
        b->data[b->len++] = c;
        return XE_OK;
    }
    return buf_append(b, &c, 1);
}

int buf_append_varint(struct buf *b, uint64_t v)
{
    unsigned char tmp[VARINT_MAX_BYTES];

    if (b->cap - b->len >= VARINT_MAX_BYTES && !b->rc) { /* the common case: room to spare */
        b->len += varint_put(b->data + b->len, v);
        return XE_OK;
    }
    return buf_append(b, tmp, varint_put(tmp, v));
}

int buf_append_u32le(struct buf *b, uint32_t v)
{
    if (buf_reserve(b, 4))
        return b->rc;
    put_u32le(b->data + b->len, v);
    b->len += 4;
    return XE_OK;
}

int buf_append_u64le(struct buf *b, uint64_t v)
{
    if (buf_reserve(b, 8))
        return b->rc;
    put_u64le(b->data + b->len, v);
    b->len += 8;
    return XE_OK;
}

int buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

unsigned char *buf_steal(struct buf *b, size_t *len_bytes)
{
    unsigned char *p = b->data;

    *len_bytes = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
