/*
 * Little-endian fixed-width integers and LEB128 varints, for on-disk formats.
 * Readers take the end of the data and never read past it: bytes from disk
 * are untrusted.
 */
#ifndef XUN_INDEX_BYTES_H
#define XUN_INDEX_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline void put_u16le(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static inline uint16_t get_u16le(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline void put_u32le(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static inline uint32_t get_u32le(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void put_u64le(unsigned char *p, uint64_t v)
{
    put_u32le(p, (uint32_t)v);
    put_u32le(p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t get_u64le(const unsigned char *p)
{
    return (uint64_t)get_u32le(p) | (uint64_t)get_u32le(p + 4) << 32;
}

/* Orders byte strings as memcmp does, a prefix before its extensions. */
static inline int bytes_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

#define VARINT_MAX_BYTES 10

/* Writes v at p (room for VARINT_MAX_BYTES); returns the bytes written. */
static inline size_t varint_put(unsigned char *p, uint64_t v)
{
    size_t n = 0;

    while (v >= 0x80) {
        p[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (unsigned char)v;
    return n;
}

/*
 * Reads a varint from [*pp, end); advances *pp. Returns false on a truncated
 * or over-long varint, leaving *pp unchanged.
 */
static inline bool varint_get(const unsigned char **pp, const unsigned char *end, uint64_t *out)
{
    const unsigned char *p = *pp;
    uint64_t v = 0;
    unsigned shift = 0;

    while (p < end && shift < 64) {
        unsigned char b = *p++;
        if (shift == 63 && (b & 0x7e))
            return false; /* the tenth byte may only hold bit 63 */
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *pp = p;
            *out = v;
            return true;
        }
        shift += 7;
    }
    return false;
}

/* As varint_get, for values that must fit 32 bits. */
static inline bool varint_get32(const unsigned char **pp, const unsigned char *end, uint32_t *out)
{
    uint64_t v;
    const unsigned char *p = *pp;

    if (!varint_get(&p, end, &v) || v > UINT32_MAX)
        return false;
    *pp = p;
    *out = (uint32_t)v;
    return true;
}

#endif
