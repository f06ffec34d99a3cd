/*
 * A growable byte buffer with a cap fixed when it is made: appends past the
 * cap fail with XE_LIMIT instead of eating memory. Owns its bytes; free with
 * buf_fini(). A zeroed struct buf is not usable: call buf_init().
 */
#ifndef XUN_INDEX_BUF_H
#define XUN_INDEX_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    unsigned char *data;
    size_t len;
    size_t cap;
    size_t max_bytes; /* appends that would pass this fail */
    int rc;           /* sticky: after a failed append, later appends are no-ops */
};

void buf_init(struct buf *b, size_t max_bytes);
void buf_fini(struct buf *b);
void buf_reset(struct buf *b); /* len = 0, keeps the memory, clears rc */

/* Each returns XE_OK, or the sticky XE_NOMEM / XE_LIMIT. */
int buf_reserve(struct buf *b, size_t more_bytes);
int buf_append(struct buf *b, const void *p, size_t len_bytes);
int buf_append_byte(struct buf *b, unsigned char c);
int buf_append_varint(struct buf *b, uint64_t v);
int buf_append_u32le(struct buf *b, uint32_t v);
int buf_append_u64le(struct buf *b, uint64_t v);
int buf_append_str(struct buf *b, const char *s); /* without the NUL */

/* Hands the bytes to the caller (free() them) and leaves b empty. */
unsigned char *buf_steal(struct buf *b, size_t *len_bytes);

#endif
