/*
 * A bump allocator for memory that lives exactly as long as one request:
 * everything is freed at once by arena_fini(), nothing one by one. Allocations
 * fail (NULL) past the cap given at init, so one request cannot take the
 * server's memory.
 */
#ifndef XUN_INDEX_ARENA_H
#define XUN_INDEX_ARENA_H

#include <stddef.h>

struct arena_chunk;

struct arena {
    struct arena_chunk *chunks;
    size_t used_bytes, max_bytes;
};

void arena_init(struct arena *a, size_t max_bytes);
void arena_fini(struct arena *a);
/* Zeroed, aligned for any type; NULL when out of memory or past the cap. */
void *arena_alloc(struct arena *a, size_t bytes);

#endif
