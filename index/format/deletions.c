/* Deletion bitmaps and their files (format in deletions.h). */
#include "index/format/deletions.h"

#include <stdlib.h>
#include <string.h>

#include "index/base/bytes.h"
#include "index/base/crc32c.h"
#include "index/base/error.h"
#include "index/base/fsutil.h"

static size_t words_for(uint32_t n_docs)
{
    return ((size_t)n_docs + 63) / 64;
}

static struct deletions *deletions_new(uint32_t n_docs)
{
    struct deletions *d = calloc(1, sizeof *d + words_for(n_docs) * sizeof(uint64_t));
    if (!d)
        return NULL;
    atomic_init(&d->refs, 1);
    d->n_docs = n_docs;
    return d;
}

struct deletions *deletions_copy(const struct deletions *d, uint32_t n_docs)
{
    struct deletions *c = deletions_new(n_docs);
    if (c && d) {
        memcpy(c->bits, d->bits, words_for(n_docs) * sizeof(uint64_t));
        c->count = d->count;
    }
    return c;
}

bool deletions_add(struct deletions *d, uint32_t docid)
{
    uint64_t bit = 1ull << (docid % 64);

    if (docid >= d->n_docs || (d->bits[docid / 64] & bit))
        return false;
    d->bits[docid / 64] |= bit;
    d->count++;
    return true;
}

void deletions_ref(struct deletions *d)
{
    if (d)
        atomic_fetch_add(&d->refs, 1);
}

void deletions_unref(struct deletions *d)
{
    if (d && atomic_fetch_sub(&d->refs, 1) == 1)
        free(d);
}

int deletions_write(const struct deletions *d, const char *path, struct xerr *err)
{
    size_t words = words_for(d->n_docs);
    size_t len = DELETIONS_HEADER_BYTES + words * 8;
    unsigned char *p = malloc(len);

    if (!p)
        return xerr_set(err, XE_NOMEM, "out of memory");
    memcpy(p, DELETIONS_MAGIC, 8);
    put_u32le(p + 8, DELETIONS_VERSION);
    put_u32le(p + 12, d->n_docs);
    put_u32le(p + 16, d->count);
    for (size_t i = 0; i < words; i++)
        put_u64le(p + DELETIONS_HEADER_BYTES + 8 * i, d->bits[i]);
    put_u32le(p + 20, crc32c(0, p + DELETIONS_HEADER_BYTES, len - DELETIONS_HEADER_BYTES));
    int rc = fs_write_atomic(path, p, len, err);
    free(p);
    return rc;
}

int deletions_read(const char *path, uint32_t n_docs, struct deletions **out, struct xerr *err)
{
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    size_t words = words_for(n_docs), len;
    char *data;
    int rc = fs_read_all(path, DELETIONS_HEADER_BYTES + words * 8, &data, &len, err);

    if (rc)
        return rc;
    const unsigned char *p = (const unsigned char *)data;
    if (len != DELETIONS_HEADER_BYTES + words * 8 || memcmp(p, DELETIONS_MAGIC, 8) != 0)
        rc = xerr_corrupt(err, "deletions %s: bad size or magic", name);
    else if (get_u32le(p + 8) != DELETIONS_VERSION)
        rc = xerr_corrupt(err, "deletions %s: format version %u, this xun reads version %u", name,
                          get_u32le(p + 8), DELETIONS_VERSION);
    else if (get_u32le(p + 12) != n_docs)
        rc = xerr_corrupt(err, "deletions %s: for %u documents, the segment has %u", name,
                          get_u32le(p + 12), n_docs);
    else if (get_u32le(p + 20) != crc32c(0, p + DELETIONS_HEADER_BYTES, len - DELETIONS_HEADER_BYTES))
        rc = xerr_corrupt(err, "deletions %s: checksum mismatch", name);
    if (rc) {
        free(data);
        return rc;
    }
    struct deletions *d = deletions_new(n_docs);
    if (!d) {
        free(data);
        return xerr_set(err, XE_NOMEM, "out of memory");
    }
    uint32_t count = 0, want = get_u32le(p + 16);
    for (size_t i = 0; i < words; i++) {
        d->bits[i] = get_u64le(p + DELETIONS_HEADER_BYTES + 8 * i);
        count += (uint32_t)__builtin_popcountll(d->bits[i]);
    }
    free(data);
    if (count != want ||
        (n_docs % 64 && words && d->bits[words - 1] >> (n_docs % 64))) {
        free(d);
        return xerr_corrupt(err, "deletions %s: count does not match the bitmap", name);
    }
    d->count = count;
    *out = d;
    return XE_OK;
}
