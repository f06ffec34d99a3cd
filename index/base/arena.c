/* Request arena (see arena.h): chunks of at least 16 KiB, each a fresh calloc. */
#include "index/base/arena.h"

#include <stdalign.h>
#include <stdlib.h>

#define ARENA_CHUNK_BYTES (16u << 10)

struct arena_chunk {
    struct arena_chunk *next;
    size_t size, used;
    alignas(max_align_t) unsigned char data[];
};

void arena_init(struct arena *a, size_t max_bytes)
{
    a->chunks = NULL;
    a->used_bytes = 0;
    a->max_bytes = max_bytes;
}

void arena_fini(struct arena *a)
{
    struct arena_chunk *c = a->chunks;

    while (c) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->chunks = NULL;
    a->used_bytes = 0;
}

void *arena_alloc(struct arena *a, size_t bytes)
{
    const size_t align = alignof(max_align_t);
    struct arena_chunk *c = a->chunks;

    bytes = (bytes + align - 1) & ~(align - 1);
    if (!bytes)
        bytes = align;
    if (!c || c->size - c->used < bytes) {
        size_t size = bytes > ARENA_CHUNK_BYTES ? bytes : ARENA_CHUNK_BYTES;
        if (size > a->max_bytes - a->used_bytes)
            return NULL;
        c = calloc(1, sizeof *c + size);
        if (!c)
            return NULL;
        c->size = size;
        c->next = a->chunks;
        a->chunks = c;
        a->used_bytes += size;
    }
    void *p = c->data + c->used;
    c->used += bytes;
    return p;
}
