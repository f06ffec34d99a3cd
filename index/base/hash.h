/*
 * The one hash function for byte strings, used by the index (terms, ids:
 * index/write/docprep.h term_hash) and by the server's response cache alike.
 * FNV-1a, then murmur3's 64-bit finalizer: FNV's low bits are weak for
 * short keys, and the tables here take the low bits (the cache's shard and
 * bucket, the in-memory index's slots). Static inline: the index hashes
 * every token with it.
 */
#ifndef XUN_INDEX_HASH_H
#define XUN_INDEX_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t hash_bytes(const void *p, size_t len)
{
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < len; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

#endif
