/* The in-memory term table (see termtable.h). */
#include "index/write/termtable.h"

#include <stdlib.h>
#include <string.h>

#include "index/base/bytes.h"
#include "index/base/error.h"
#include "index/write/docprep.h"
#include "index/base/limits.h"

#define TT_FIRST_SLOTS (1u << 16)
#define TT_FIRST_CHUNK 24
#define TERMTABLE_CHUNK_MAX (64u << 10)
#define TT_SLAB_BYTES (4u << 20)

struct tt_slab {
    struct tt_slab *next;
    size_t used, cap;
    unsigned char bytes[];
};

int termtable_init(struct termtable *tt)
{
    *tt = (struct termtable){ .slots_cap = TT_FIRST_SLOTS };
    buf_init(&tt->bytes, WRITE_SCRATCH_MAX_BYTES);
    tt->slots = calloc(tt->slots_cap, sizeof *tt->slots);
    tt->char_terms = calloc(TERMTABLE_CHAR_TERMS, sizeof *tt->char_terms);
    return tt->slots && tt->char_terms ? XE_OK : XE_NOMEM;
}

void termtable_fini(struct termtable *tt)
{
    while (tt->slabs) {
        struct tt_slab *next = tt->slabs->next;
        free(tt->slabs);
        tt->slabs = next;
    }
    free(tt->terms);
    free(tt->slots);
    free(tt->char_terms);
    buf_fini(&tt->bytes);
}

size_t termtable_bytes(const struct termtable *tt)
{
    return tt->list_bytes + tt->bytes.len + (size_t)tt->n_terms * sizeof(struct tt_term);
}

/* Doubles the table at three quarters full; slots move by their term's hash. */
static bool grow(struct termtable *tt)
{
    if ((uint64_t)(tt->n_terms + 1) * 4 < (uint64_t)tt->slots_cap * 3)
        return true;
    uint32_t cap = tt->slots_cap * 2;
    struct tt_slot *fresh = calloc(cap, sizeof *fresh);
    if (!fresh)
        return false;
    for (uint32_t i = 0; i < tt->slots_cap; i++) {
        const struct tt_slot *v = &tt->slots[i];
        if (!v->id_plus1)
            continue;
        const struct tt_term *t = &tt->terms[v->id_plus1 - 1];
        uint32_t s = (uint32_t)term_hash(tt->bytes.data + t->term_off, t->term_len) & (cap - 1);
        while (fresh[s].id_plus1)
            s = (s + 1) & (cap - 1);
        fresh[s] = *v;
    }
    free(tt->slots);
    tt->slots = fresh;
    tt->slots_cap = cap;
    return true;
}

uint32_t termtable_intern(struct termtable *tt, const char *term, size_t len, uint64_t hash,
                          uint64_t key, bool positions)
{
    if (!grow(tt))
        return UINT32_MAX;
    uint32_t mask = tt->slots_cap - 1;
    uint16_t hash_hi = (uint16_t)(hash >> 48);
    uint32_t s = (uint32_t)hash & mask;
    for (;; s = (s + 1) & mask) {
        const struct tt_slot *v = &tt->slots[s];
        if (!v->id_plus1)
            break;
        if (v->hash_hi != hash_hi || v->len != len || v->key != key)
            continue;
        if (len <= 8)
            return v->id_plus1 - 1; /* the key is the whole term */
        const struct tt_term *t = &tt->terms[v->id_plus1 - 1];
        if (!memcmp(tt->bytes.data + t->term_off, term, len))
            return v->id_plus1 - 1;
    }
    if (tt->n_terms == tt->terms_cap) {
        uint32_t cap = tt->terms_cap ? tt->terms_cap * 2 : 4096;
        struct tt_term *grown = realloc(tt->terms, cap * sizeof *grown);
        if (!grown)
            return UINT32_MAX;
        tt->terms = grown;
        tt->terms_cap = cap;
    }
    uint64_t off = tt->bytes.len;
    if (buf_append(&tt->bytes, term, len))
        return UINT32_MAX;
    tt->terms[tt->n_terms] = (struct tt_term){ .term_off = off, .term_len = (uint16_t)len,
                                               .has_positions = positions,
                                               .last_doc = UINT32_MAX };
    tt->slots[s] = (struct tt_slot){ key, ++tt->n_terms, (uint16_t)len, hash_hi };
    return tt->n_terms - 1;
}

/* A chunk of cap bytes of data, from the newest slab or a new one. */
static struct tt_chunk *chunk_new(struct termtable *tt, size_t cap)
{
    size_t bytes = (sizeof(struct tt_chunk) + cap + 7) & ~(size_t)7;
    struct tt_slab *sl = tt->slabs;

    if (!sl || sl->cap - sl->used < bytes) {
        size_t slab_cap = bytes > TT_SLAB_BYTES ? bytes : TT_SLAB_BYTES;
        if (!(sl = malloc(sizeof *sl + slab_cap)))
            return NULL;
        *sl = (struct tt_slab){ .next = tt->slabs, .cap = slab_cap };
        tt->slabs = sl;
    }
    struct tt_chunk *c = (struct tt_chunk *)(void *)(sl->bytes + sl->used);
    sl->used += bytes;
    tt->list_bytes += bytes; /* what is used, not the slab: a small budget is honoured */
    *c = (struct tt_chunk){ .cap = (uint32_t)cap };
    return c;
}

int termtable_append(struct termtable *tt, struct tt_term *t, const void *entry, size_t len)
{
    struct tt_chunk *c = t->tail;

    if (len > UINT32_MAX)
        return XE_LIMIT;
    if (!c || c->cap - t->tail_len < len) {
        size_t cap = !c ? TT_FIRST_CHUNK : c->cap >= TERMTABLE_CHUNK_MAX / 2 ? TERMTABLE_CHUNK_MAX
                                                                             : 2 * c->cap;
        struct tt_chunk *fresh = chunk_new(tt, cap > len ? cap : len);
        if (!fresh)
            return XE_NOMEM;
        if (c) {
            c->len = t->tail_len;
            c->next = fresh;
        } else {
            t->head = fresh;
        }
        t->tail = c = fresh;
        t->tail_len = 0;
    }
    memcpy(c->data + t->tail_len, entry, len);
    t->tail_len += (uint32_t)len;
    return XE_OK;
}

static int order_cmp(const struct termtable *tt, const struct tt_order *a,
                     const struct tt_order *b)
{
    if (a->prefix != b->prefix)
        return a->prefix < b->prefix ? -1 : 1;
    const struct tt_term *x = &tt->terms[a->id], *y = &tt->terms[b->id];
    return bytes_cmp(tt->bytes.data + x->term_off, x->term_len, tt->bytes.data + y->term_off,
                     y->term_len);
}

/* Quicksort with the comparison inlined (qsort's indirect calls cost more
 * than the comparisons), insertion sort for short runs. */
static void sort_terms(const struct termtable *tt, struct tt_order *keys, size_t n)
{
    while (n > 16) {
        struct tt_order pivot = keys[n / 2];
        size_t i = 0, j = n - 1;
        for (;;) {
            while (order_cmp(tt, &keys[i], &pivot) < 0)
                i++;
            while (order_cmp(tt, &keys[j], &pivot) > 0)
                j--;
            if (i >= j)
                break;
            struct tt_order t = keys[i];
            keys[i++] = keys[j];
            keys[j--] = t;
        }
        /* recurse into the smaller side, loop on the larger */
        if (j + 1 < n - j - 1) {
            sort_terms(tt, keys, j + 1);
            keys += j + 1;
            n -= j + 1;
        } else {
            sort_terms(tt, keys + j + 1, n - j - 1);
            n = j + 1;
        }
    }
    for (size_t i = 1; i < n; i++) {
        struct tt_order k = keys[i];
        size_t j = i;
        for (; j > 0 && order_cmp(tt, &keys[j - 1], &k) > 0; j--)
            keys[j] = keys[j - 1];
        keys[j] = k;
    }
}

void termtable_sort(const struct termtable *tt, struct tt_order *order)
{
    for (uint32_t i = 0; i < tt->n_terms; i++)
        order[i] = (struct tt_order){
            term_key(tt->bytes.data + tt->terms[i].term_off, tt->terms[i].term_len), i };
    sort_terms(tt, order, tt->n_terms);
}
