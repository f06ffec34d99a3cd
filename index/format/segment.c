/*
 * Segment files (format in segment.h): the writer buffers each section in
 * memory and writes the file in one pass, with a checksum per chunk; the
 * reader maps it and checks the header and the chunk table at open, then
 * parses nothing until a lookup asks. Every reader checks the chunks under
 * the bytes it reads first (a bit per chunk remembers those that matched),
 * so damage anywhere is an error for the request that meets it, never a
 * wrong answer, without a pass over the whole file at open. Dictionary
 * entries and doc table entries are still decoded with bounds checks: a
 * matching checksum only says the bytes are the ones written.
 */
#include "index/format/segment.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index/base/bytes.h"
#include "index/base/crc32c.h"
#include "index/base/error.h"
#include "index/base/fsutil.h"
#include "index/base/limits.h"
#include "index/format/postings.h"

_Static_assert(sizeof SEGMENT_MAGIC - 1 == 8, "magic is 8 bytes");
_Static_assert(N_FIELDS + 5 == SEGMENT_RANK_ENTRY_BYTES, "rank entry: length codes, i40 date");

enum { SECTION_TERMS, SECTION_POSTINGS, SECTION_DOCS, SECTION_STORE, N_SECTIONS };

_Static_assert((SEGMENT_CHUNK_BYTES & (SEGMENT_CHUNK_BYTES - 1)) == 0, "chunks: a power of two");

static atomic_uint_fast32_t chunk_bytes_setting;  /* 0: SEGMENT_CHUNK_BYTES */
static atomic_uint_fast64_t verify_at_open_setting; /* 0: SEGMENT_VERIFY_AT_OPEN_BYTES */
static atomic_uint_fast64_t checksum_failures;

void segment_set_chunk_bytes(uint32_t bytes)
{
    atomic_store(&chunk_bytes_setting, bytes);
}

uint32_t segment_chunk_bytes(void)
{
    uint32_t b = (uint32_t)atomic_load(&chunk_bytes_setting);
    return b ? b : SEGMENT_CHUNK_BYTES;
}

void segment_set_verify_at_open_bytes(uint64_t bytes)
{
    atomic_store(&verify_at_open_setting, bytes);
}

uint64_t segment_verify_at_open_bytes(void)
{
    uint64_t b = atomic_load(&verify_at_open_setting);
    return b ? b : SEGMENT_VERIFY_AT_OPEN_BYTES;
}

uint64_t segment_checksum_failures(void)
{
    return atomic_load_explicit(&checksum_failures, memory_order_relaxed);
}

static bool chunk_bytes_ok(uint64_t bytes)
{
    return bytes >= SEGMENT_CHUNK_MIN_BYTES && bytes <= SEGMENT_CHUNK_MAX_BYTES &&
           (bytes & (bytes - 1)) == 0;
}

/* ---- writing ---- */

struct segment_writer {
    struct buf terms;      /* dictionary entries */
    struct buf block_offs; /* per dictionary block: u32 entry offset, u64 postings offset */
    struct buf postings;
    struct buf docs;       /* fixed entries */
    struct buf ranks;      /* rank entries */
    struct buf ids;
    uint32_t n_docs, n_terms, n_blocks;
    uint64_t field_tokens[N_FIELDS];
    int64_t newest_date; /* DOC_DATE_NONE when no document has a date */
    uint32_t chunk_bytes;
    char prev_term[TOKEN_MAX_BYTES + 1];
    size_t prev_len;
};

struct segment_writer *segment_writer_new(void)
{
    struct segment_writer *w = calloc(1, sizeof *w);

    if (!w)
        return NULL;
    buf_init(&w->terms, SEGMENT_SECTION_MAX_BYTES);
    buf_init(&w->block_offs, SEGMENT_SECTION_MAX_BYTES);
    buf_init(&w->postings, SEGMENT_SECTION_MAX_BYTES);
    buf_init(&w->docs, SEGMENT_SECTION_MAX_BYTES);
    buf_init(&w->ranks, SEGMENT_SECTION_MAX_BYTES);
    buf_init(&w->ids, SEGMENT_SECTION_MAX_BYTES);
    w->newest_date = DOC_DATE_NONE;
    w->chunk_bytes = segment_chunk_bytes();
    if (!chunk_bytes_ok(w->chunk_bytes))
        w->chunk_bytes = SEGMENT_CHUNK_BYTES;
    return w;
}

int segment_writer_set_chunk_bytes(struct segment_writer *w, uint32_t bytes, struct xerr *err)
{
    if (!chunk_bytes_ok(bytes))
        return xerr_set(err, XE_INPUT, "segment writer: chunk of %u bytes (a power of two from "
                        "%u to %u)", bytes, SEGMENT_CHUNK_MIN_BYTES, SEGMENT_CHUNK_MAX_BYTES);
    w->chunk_bytes = bytes;
    return XE_OK;
}

void segment_writer_free(struct segment_writer *w)
{
    if (!w)
        return;
    buf_fini(&w->terms);
    buf_fini(&w->block_offs);
    buf_fini(&w->postings);
    buf_fini(&w->docs);
    buf_fini(&w->ranks);
    buf_fini(&w->ids);
    free(w);
}

uint8_t segment_length_code(uint32_t len)
{
    if (len < 128)
        return (uint8_t)len;
    int e = 31 - __builtin_clz(len) - 4; /* the top 5 bits stay: 1 and 4 of mantissa */
    uint32_t code = 128 + (uint32_t)(e - 3) * 16 + ((len >> e) - 16);
    return code > 255 ? 255 : (uint8_t)code;
}

uint32_t segment_length_of_code(uint8_t code)
{
    if (code < 128)
        return code;
    return (16u + (code - 128u) % 16) << ((code - 128u) / 16 + 3);
}

/* A rank entry's date: 40 bits, two's complement (doc_parse_date's years fit). */
#define RANK_DATE_NONE (-((int64_t)1 << 39))

static void put_rank_date(unsigned char *p, int64_t date_s)
{
    int64_t max = ((int64_t)1 << 39) - 1;
    int64_t v = date_s == DOC_DATE_NONE ? RANK_DATE_NONE
                : date_s <= RANK_DATE_NONE ? RANK_DATE_NONE + 1
                : date_s > max ? max : date_s;
    for (int i = 0; i < 5; i++)
        p[i] = (unsigned char)((uint64_t)v >> (8 * i));
}

static int64_t get_rank_date(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 5; i++)
        v |= (uint64_t)p[i] << (8 * i);
    int64_t d = (int64_t)(v ^ (uint64_t)1 << 39) - ((int64_t)1 << 39); /* sign-extend bit 39 */
    return d == RANK_DATE_NONE ? DOC_DATE_NONE : d;
}

int segment_writer_add_doc(struct segment_writer *w, const struct segment_doc *doc,
                           struct xerr *err)
{
    unsigned char r[SEGMENT_RANK_ENTRY_BYTES] = { 0 };
    unsigned char e[SEGMENT_DOC_ENTRY_BYTES];

    if (!doc->id_len || doc->id_len > DOC_ID_MAX_BYTES)
        return xerr_set(err, XE_INPUT, "segment writer: bad document entry");
    if (w->ids.len > UINT32_MAX - DOC_ID_MAX_BYTES)
        return xerr_set(err, XE_LIMIT, "segment writer: too many ids for one segment");
    for (int f = 0; f < N_FIELDS; f++) {
        put_u32le(e + 4 * f, doc->field_tokens[f]);
        w->field_tokens[f] += doc->field_tokens[f];
    }
    put_u32le(e + 12, doc->store.record);
    put_u64le(e + 16, (uint64_t)doc->date_s);
    put_u32le(e + 24, (uint32_t)w->ids.len);
    e[28] = (unsigned char)doc->id_len;
    e[29] = (unsigned char)(doc->id_len >> 8);
    e[30] = e[31] = 0;
    put_u32le(e + 32, doc->field_start[FIELD_BODY]);
    put_u32le(e + 36, doc->field_start[FIELD_META]);
    buf_append(&w->docs, e, sizeof e);
    for (int f = 0; f < N_FIELDS; f++)
        r[f] = segment_length_code(doc->field_tokens[f]);
    put_rank_date(r + 3, doc->date_s);
    buf_append(&w->ranks, r, sizeof r);
    buf_append(&w->ids, doc->id, doc->id_len);
    if (doc->date_s != DOC_DATE_NONE &&
        (w->newest_date == DOC_DATE_NONE || doc->date_s > w->newest_date))
        w->newest_date = doc->date_s;
    w->n_docs++;
    return w->docs.rc || w->ranks.rc || w->ids.rc
               ? xerr_set(err, XE_NOMEM, "segment writer: out of memory")
               : XE_OK;
}

int segment_writer_add_term(struct segment_writer *w, const char *term, size_t len, uint32_t df,
                            bool has_positions, const unsigned char *postings,
                            size_t postings_len, struct xerr *err)
{
    size_t shared = 0;

    if (!len || len > TOKEN_MAX_BYTES + 1)
        return xerr_set(err, XE_INPUT, "segment writer: term of %zu bytes", len);
    if (w->n_terms && bytes_cmp(w->prev_term, w->prev_len, term, len) >= 0)
        return xerr_set(err, XE_INPUT, "segment writer: terms out of order");
    if (w->n_terms % SEGMENT_TERMS_PER_BLOCK == 0) {
        buf_append_u32le(&w->block_offs, (uint32_t)w->terms.len);
        buf_append_u64le(&w->block_offs, w->postings.len);
        w->n_blocks++;
        if (w->terms.len > UINT32_MAX)
            return xerr_set(err, XE_LIMIT, "segment writer: dictionary over 4 GiB");
    } else {
        while (shared < len && shared < w->prev_len && term[shared] == w->prev_term[shared])
            shared++;
    }
    buf_append_varint(&w->terms, shared);
    buf_append_varint(&w->terms, len - shared);
    buf_append(&w->terms, term + shared, len - shared);
    buf_append_varint(&w->terms, (uint64_t)df << 1 | has_positions);
    buf_append_varint(&w->terms, postings_len);
    buf_append(&w->postings, postings, postings_len);
    memcpy(w->prev_term, term, len);
    w->prev_len = len;
    w->n_terms++;
    return w->terms.rc || w->postings.rc
               ? xerr_set(err, XE_NOMEM, "segment writer: out of memory")
               : XE_OK;
}

/* The checksum of each chunk of the pieces' bytes (the body), appended to table. */
static void chunk_table(const struct fs_piece *pieces, size_t n, uint32_t chunk_bytes,
                        struct buf *table)
{
    uint32_t crc = 0;
    size_t in_chunk = 0;

    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = pieces[i].data;
        size_t len = pieces[i].len;
        while (len) {
            size_t take = chunk_bytes - in_chunk < len ? chunk_bytes - in_chunk : len;
            crc = crc32c(crc, p, take);
            p += take;
            len -= take;
            in_chunk += take;
            if (in_chunk == chunk_bytes) {
                buf_append_u32le(table, crc);
                crc = 0;
                in_chunk = 0;
            }
        }
    }
    if (in_chunk)
        buf_append_u32le(table, crc);
}

/* Context for sorting docids by id. */
struct id_sort {
    const unsigned char *entries;
    const unsigned char *ids;
};

static _Thread_local struct id_sort id_sort_ctx;

static int id_order_cmp(const void *a, const void *b)
{
    const unsigned char *ea =
        id_sort_ctx.entries + (size_t)*(const uint32_t *)a * SEGMENT_DOC_ENTRY_BYTES;
    const unsigned char *eb =
        id_sort_ctx.entries + (size_t)*(const uint32_t *)b * SEGMENT_DOC_ENTRY_BYTES;
    size_t la = ea[28] | (size_t)ea[29] << 8, lb = eb[28] | (size_t)eb[29] << 8;
    return bytes_cmp((const char *)id_sort_ctx.ids + get_u32le(ea + 24), la,
                    (const char *)id_sort_ctx.ids + get_u32le(eb + 24), lb);
}

static int segment_open_memory(const char *path, const struct fs_piece *pieces, size_t n,
                               struct segment **out, struct xerr *err);

int segment_writer_finish(struct segment_writer *w, const struct buf *store, const char *path,
                          bool durable, struct xerr *err)
{
    return segment_writer_finish_kept(w, store, path, durable, NULL, err);
}

int segment_writer_finish_kept(struct segment_writer *w, const struct buf *store,
                               const char *path, bool durable, struct segment **kept,
                               struct xerr *err)
{
    /* the header and the small tables are built here; the big sections are
     * written from where they are, and the chunk checksums run over the pieces */
    struct buf head, id_order, crcs;
    int rc = XE_OK;

    if (kept)
        *kept = NULL;
    buf_init(&head, SEGMENT_SECTION_MAX_BYTES);
    buf_init(&id_order, SEGMENT_SECTION_MAX_BYTES);
    buf_init(&crcs, SEGMENT_SECTION_MAX_BYTES);
    if (buf_reserve(&head, SEGMENT_HEADER_BYTES)) {
        rc = xerr_set(err, XE_NOMEM, "segment %s: out of memory", path);
        goto out;
    }
    memset(head.data, 0, SEGMENT_HEADER_BYTES);
    head.len = SEGMENT_HEADER_BYTES;
    /* terms: the block table, then the entries */
    buf_append_u32le(&head, w->n_blocks);
    uint32_t table = 4 + SEGMENT_BLOCK_ENTRY_BYTES * w->n_blocks;
    for (uint32_t i = 0; i < w->n_blocks; i++) {
        const unsigned char *e = w->block_offs.data + SEGMENT_BLOCK_ENTRY_BYTES * (size_t)i;
        buf_append_u32le(&head, table + get_u32le(e));
        buf_append_u64le(&head, get_u64le(e + 4));
    }
    /* docs: entries, docids in id order, ids */
    uint32_t *order = malloc(sizeof *order * (w->n_docs ? w->n_docs : 1));
    if (!order) {
        rc = xerr_set(err, XE_NOMEM, "segment %s: out of memory", path);
        goto out;
    }
    for (uint32_t i = 0; i < w->n_docs; i++)
        order[i] = i;
    id_sort_ctx = (struct id_sort){ w->docs.data, w->ids.data };
    qsort(order, w->n_docs, sizeof *order, id_order_cmp);
    for (uint32_t i = 0; i < w->n_docs; i++)
        buf_append_u32le(&id_order, order[i]);
    free(order);
    if (head.rc || id_order.rc) {
        rc = xerr_set(err, XE_NOMEM, "segment %s: out of memory", path);
        goto out;
    }

    enum { HEAD, TERMS, POSTINGS, DOCS, RANKS, ID_ORDER, IDS, STORE, TABLE, N_PIECES };
    struct fs_piece pieces[N_PIECES] = {
        [HEAD] = { head.data, head.len }, /* header, then the terms' block table */
        [TERMS] = { w->terms.data, w->terms.len },
        [POSTINGS] = { w->postings.data, w->postings.len },
        [DOCS] = { w->docs.data, w->docs.len },
        [RANKS] = { w->ranks.data, w->ranks.len },
        [ID_ORDER] = { id_order.data, id_order.len },
        [IDS] = { w->ids.data, w->ids.len },
        [STORE] = { store->data, store->len },
    };
    /* the pieces each section spans (the terms section starts after the header) */
    static const int section_first_piece[N_SECTIONS] = { HEAD, POSTINGS, DOCS, STORE };
    static const int section_end_piece[N_SECTIONS] = { POSTINGS, DOCS, STORE, TABLE };
    /* the body: the pieces from the end of the header to the end of the store */
    pieces[HEAD].data = head.data + SEGMENT_HEADER_BYTES;
    pieces[HEAD].len = head.len - SEGMENT_HEADER_BYTES;
    chunk_table(pieces, TABLE, w->chunk_bytes, &crcs);
    if (crcs.rc) {
        rc = xerr_set(err, XE_NOMEM, "segment %s: out of memory", path);
        goto out;
    }
    pieces[HEAD] = (struct fs_piece){ head.data, head.len };
    pieces[TABLE] = (struct fs_piece){ crcs.data, crcs.len };
    uint64_t at[N_PIECES + 1] = { 0 };
    for (size_t i = 0; i < N_PIECES; i++)
        at[i + 1] = at[i] + pieces[i].len;

    unsigned char *h = head.data;
    memcpy(h, SEGMENT_MAGIC, 8);
    put_u32le(h + 8, SEGMENT_VERSION);
    put_u32le(h + 16, w->n_docs);
    put_u32le(h + 20, w->n_terms);
    for (int f = 0; f < N_FIELDS; f++)
        put_u64le(h + 24 + 8 * f, w->field_tokens[f]);
    put_u64le(h + 48, at[N_PIECES]);
    for (int s = 0; s < N_SECTIONS; s++) {
        uint64_t from = s == SECTION_TERMS ? SEGMENT_HEADER_BYTES : at[section_first_piece[s]];
        put_u64le(h + 56 + 16 * s, from);
        put_u64le(h + 64 + 16 * s, at[section_end_piece[s]] - from);
    }
    put_u32le(h + 120, w->chunk_bytes);
    put_u32le(h + 124, crc32c(0, crcs.data, crcs.len));
    put_u64le(h + 128, (uint64_t)w->newest_date);
    put_u32le(h + 12, crc32c(0, h + 16, SEGMENT_HEADER_BYTES - 16));
    rc = fs_write_pieces(path, pieces, N_PIECES, durable, err);
    if (rc == XE_IO && kept) {
        struct xerr mem_err = { 0 };
        if (segment_open_memory(path, pieces, N_PIECES, kept, &mem_err))
            *kept = NULL; /* out of memory too: the caller keeps what it had */
    }
out:
    buf_fini(&head);
    buf_fini(&id_order);
    buf_fini(&crcs);
    return rc;
}

/* ---- upgrading (format in segment.h) ---- */

#define V7_HEADER_BYTES 128

static const char *base_name(const char *path);

int segment_file_version(const char *path, uint32_t *version, struct xerr *err)
{
    unsigned char h[12];
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    *version = 0;
    if (fd < 0)
        return xerr_set(err, errno == ENOENT ? XE_NOTFOUND : XE_IO, "segment %s: %s", path,
                        strerror(errno));
    ssize_t got = pread(fd, h, sizeof h, 0);
    int saved = errno;
    close(fd);
    if (got < 0)
        return xerr_set_os(err, saved, "segment %s: %s", path, strerror(saved));
    if (got == (ssize_t)sizeof h && memcmp(h, SEGMENT_MAGIC, 8) == 0)
        *version = get_u32le(h + 8);
    return XE_OK;
}

/* Checks a whole version 7 file; *newest_date from its doc entries. */
static int v7_check(const unsigned char *m, size_t len, const char *name, int64_t *newest_date,
                    struct xerr *err)
{
    if (len < V7_HEADER_BYTES || memcmp(m, SEGMENT_MAGIC, 8) != 0 ||
        get_u32le(m + 8) != SEGMENT_UPGRADABLE_VERSION)
        return xerr_corrupt(err, "segment %s: not a version %u segment", name,
                            SEGMENT_UPGRADABLE_VERSION);
    if (get_u32le(m + 12) != crc32c(0, m + 16, V7_HEADER_BYTES - 16))
        return xerr_corrupt(err, "segment %s: header checksum mismatch", name);
    if (get_u64le(m + 48) != len)
        return xerr_corrupt(err, "segment %s: %zu bytes, header says %llu (truncated?)", name,
                            len, (unsigned long long)get_u64le(m + 48));
    uint64_t expect = V7_HEADER_BYTES;
    for (int s = 0; s < N_SECTIONS; s++) {
        uint64_t off = get_u64le(m + 56 + 16 * s), n = get_u64le(m + 64 + 16 * s);
        if (off != expect || n > len - off)
            return xerr_corrupt(err, "segment %s: section %d out of place", name, s);
        expect = off + n;
    }
    if (expect != len)
        return xerr_corrupt(err, "segment %s: the sections do not end the file", name);
    if (get_u32le(m + 120) != crc32c(0, m + V7_HEADER_BYTES, len - V7_HEADER_BYTES))
        return xerr_corrupt(err, "segment %s: body checksum mismatch", name);
    uint32_t n_docs = get_u32le(m + 16);
    const unsigned char *docs = m + get_u64le(m + 56 + 16 * SECTION_DOCS);
    if ((uint64_t)n_docs * SEGMENT_DOC_ENTRY_BYTES > get_u64le(m + 64 + 16 * SECTION_DOCS))
        return xerr_corrupt(err, "segment %s: doc table too short for %u documents", name,
                            n_docs);
    *newest_date = DOC_DATE_NONE;
    for (uint32_t d = 0; d < n_docs; d++) {
        int64_t date = (int64_t)get_u64le(docs + (size_t)d * SEGMENT_DOC_ENTRY_BYTES + 16);
        if (date != DOC_DATE_NONE && (*newest_date == DOC_DATE_NONE || date > *newest_date))
            *newest_date = date;
    }
    return XE_OK;
}

int segment_upgrade(const char *from, const char *to, struct xerr *err)
{
    const char *name = base_name(from);
    struct buf table;
    struct stat st;
    unsigned char *m = NULL;
    int64_t newest_date = DOC_DATE_NONE;
    int rc;

    int fd = open(from, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return xerr_set_os(err, errno, "segment %s: %s", from, strerror(errno));
    if (fstat(fd, &st) != 0) {
        rc = xerr_set_os(err, errno, "segment %s: %s", from, strerror(errno));
        goto out_close;
    }
    size_t len = (size_t)st.st_size;
    if (len < V7_HEADER_BYTES) {
        rc = xerr_corrupt(err, "segment %s: %zu bytes is shorter than a header", name, len);
        goto out_close;
    }
    m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        m = NULL;
        rc = xerr_set_os(err, errno, "segment %s: mmap: %s", from, strerror(errno));
        goto out_close;
    }
    if ((rc = v7_check(m, len, name, &newest_date, err)))
        goto out_unmap;

    /* the same body, 8 bytes further on, under a version 8 header, then the chunk table */
    uint32_t chunk_bytes = segment_chunk_bytes();
    unsigned char h[SEGMENT_HEADER_BYTES];
    struct fs_piece body = { m + V7_HEADER_BYTES, len - V7_HEADER_BYTES };
    buf_init(&table, SEGMENT_SECTION_MAX_BYTES);
    chunk_table(&body, 1, chunk_bytes, &table);
    if (table.rc) {
        rc = xerr_set(err, XE_NOMEM, "segment %s: out of memory", name);
        goto out_table;
    }
    const uint64_t shift = SEGMENT_HEADER_BYTES - V7_HEADER_BYTES;
    memset(h, 0, sizeof h);
    memcpy(h, m, 120); /* magic, counts, tokens; the rest is rewritten below */
    put_u32le(h + 8, SEGMENT_VERSION);
    put_u64le(h + 48, SEGMENT_HEADER_BYTES + body.len + table.len);
    for (int s = 0; s < N_SECTIONS; s++)
        put_u64le(h + 56 + 16 * s, get_u64le(m + 56 + 16 * s) + shift);
    put_u32le(h + 120, chunk_bytes);
    put_u32le(h + 124, crc32c(0, table.data, table.len));
    put_u64le(h + 128, (uint64_t)newest_date);
    put_u32le(h + 12, crc32c(0, h + 16, SEGMENT_HEADER_BYTES - 16));
    struct fs_piece pieces[] = { { h, sizeof h }, body, { table.data, table.len } };
    rc = fs_write_pieces(to, pieces, 3, true, err);
out_table:
    buf_fini(&table);
out_unmap:
    munmap(m, len);
out_close:
    close(fd);
    return rc;
}

/* ---- reading ---- */

struct segment {
    char *path;
    const char *name; /* the file's name, in path */
    unsigned char *map;
    size_t map_len;
    uint32_t n_docs, n_terms, n_blocks;
    uint64_t field_tokens[N_FIELDS];
    const unsigned char *terms, *postings, *docs, *store;
    size_t terms_len, postings_len, docs_len, store_len;
    const unsigned char *ranks, *id_order, *ids;
    size_t ids_len;
    struct docstore ds;
    int64_t newest_date; /* DOC_DATE_NONE when no document has a date */

    /* chunks: bytes SEGMENT_HEADER_BYTES..body_end, 1 << chunk_shift each */
    size_t body_end;
    unsigned chunk_shift;
    uint64_t n_chunks;
    const unsigned char *chunk_crcs; /* the table, in the mapping */
    /* a bit per chunk, any thread may set one: checked and matched; damaged */
    _Atomic uint64_t *verified, *damaged;
    _Atomic uint64_t *n_damaged; /* chunks with a bit in damaged (after the bitmaps) */
    bool in_memory;      /* map is anonymous memory, not a file (segment_writer_finish_kept) */
};

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static bool chunk_bit(_Atomic uint64_t *bits, uint64_t c)
{
    return atomic_load_explicit(&bits[c / 64], memory_order_relaxed) >> (c % 64) & 1;
}

/* The message of a damaged chunk; docstore says so when the docstore asked
 * (its caller adds the file's name). */
static int chunk_damaged(const struct segment *seg, uint64_t c, bool docstore,
                         struct xerr *err)
{
    size_t from = SEGMENT_HEADER_BYTES + ((size_t)c << seg->chunk_shift);
    size_t to = from + ((size_t)1 << seg->chunk_shift);

    if (to > seg->body_end)
        to = seg->body_end;
    if (docstore)
        return xerr_corrupt(err, "bytes %zu..%zu (chunk %llu): checksum mismatch (damaged data)",
                            from, to - 1, (unsigned long long)c);
    return xerr_corrupt(err, "segment %s: bytes %zu..%zu (chunk %llu): checksum mismatch "
                        "(damaged data)", seg->name, from, to - 1, (unsigned long long)c);
}

/* Checks chunk c against the table and remembers what it found. */
static int chunk_verify(const struct segment *seg, uint64_t c, bool docstore, struct xerr *err)
{
    size_t from = SEGMENT_HEADER_BYTES + ((size_t)c << seg->chunk_shift);
    size_t to = from + ((size_t)1 << seg->chunk_shift);
    uint64_t bit = (uint64_t)1 << (c % 64);

    if (to > seg->body_end)
        to = seg->body_end;
    if (crc32c(0, seg->map + from, to - from) == get_u32le(seg->chunk_crcs + 4 * c)) {
        atomic_fetch_or_explicit(&seg->verified[c / 64], bit, memory_order_relaxed);
        return XE_OK;
    }
    atomic_fetch_and(&seg->verified[c / 64], ~bit); /* matched once, not now: reads must fail */
    if (!(atomic_fetch_or(&seg->damaged[c / 64], bit) & bit)) {
        atomic_fetch_add(seg->n_damaged, 1);
        atomic_fetch_add(&checksum_failures, 1);
    }
    return chunk_damaged(seg, c, docstore, err);
}

/*
 * Checks the chunks under bytes p..p+len of the mapping (those not checked
 * yet): what every reader calls before it decodes bytes. The bytes must lie
 * in the body (the caller bounds-checked them).
 */
static int check_bytes(const struct segment *seg, const unsigned char *p, size_t len,
                       bool docstore, struct xerr *err)
{
    if (!len)
        return XE_OK;
    size_t off = (size_t)(p - seg->map) - SEGMENT_HEADER_BYTES;
    uint64_t first = off >> seg->chunk_shift, last = (off + len - 1) >> seg->chunk_shift;
    for (uint64_t c = first; c <= last; c++) {
        if (chunk_bit(seg->verified, c))
            continue;
        if (chunk_bit(seg->damaged, c))
            return chunk_damaged(seg, c, docstore, err);
        int rc = chunk_verify(seg, c, docstore, err);
        if (rc)
            return rc;
    }
    return XE_OK;
}

#define CHECK(seg, p, len, err) check_bytes((seg), (p), (len), false, (err))

static int docstore_verify(const void *ctx, const unsigned char *p, size_t len,
                           struct xerr *err)
{
    return check_bytes(ctx, p, len, true, err);
}

int segment_verify(const struct segment *seg, struct xerr *err)
{
    int rc = XE_OK;

    /* every chunk, again if read since: a merge copies what it reads; and
     * on past the first damaged one, so that the count of them is whole */
    for (uint64_t c = 0; c < seg->n_chunks; c++) {
        int chunk_rc = chunk_verify(seg, c, false, err);
        if (!rc)
            rc = chunk_rc;
    }
    return rc;
}

uint64_t segment_damaged_chunks(const struct segment *seg)
{
    return atomic_load_explicit(seg->n_damaged, memory_order_relaxed);
}

/* The header and the chunk table: what open reads before anything else. */
static int check_header(struct segment *seg, const unsigned char **sec, size_t *sec_len,
                        struct xerr *err)
{
    const unsigned char *h = seg->map;
    const char *name = seg->name;

    if (seg->map_len < 12)
        return xerr_corrupt(err, "segment %s: %zu bytes is shorter than a header", name,
                            seg->map_len);
    if (memcmp(h, SEGMENT_MAGIC, 8) != 0)
        return xerr_corrupt(err, "segment %s: not a xun segment (bad magic)", name);
    if (get_u32le(h + 8) != SEGMENT_VERSION)
        return xerr_corrupt(err, "segment %s: format version %u, this xun reads version %u%s",
                            name, get_u32le(h + 8), SEGMENT_VERSION,
                            get_u32le(h + 8) < SEGMENT_VERSION
                                ? ": rebuild the index from its documents (xun index)"
                                : "");
    if (seg->map_len < SEGMENT_HEADER_BYTES)
        return xerr_corrupt(err, "segment %s: %zu bytes is shorter than a header", name,
                            seg->map_len);
    if (get_u32le(h + 12) != crc32c(0, h + 16, SEGMENT_HEADER_BYTES - 16))
        return xerr_corrupt(err, "segment %s: header checksum mismatch", name);
    if (get_u64le(h + 48) != seg->map_len)
        return xerr_corrupt(err, "segment %s: %zu bytes, header says %llu (truncated?)", name,
                            seg->map_len, (unsigned long long)get_u64le(h + 48));
    uint64_t expect = SEGMENT_HEADER_BYTES;
    for (int s = 0; s < N_SECTIONS; s++) {
        uint64_t off = get_u64le(h + 56 + 16 * s), len = get_u64le(h + 64 + 16 * s);
        if (off != expect || len > seg->map_len - off)
            return xerr_corrupt(err, "segment %s: section %d out of place", name, s);
        sec[s] = seg->map + off;
        sec_len[s] = (size_t)len;
        expect = off + len;
    }
    uint32_t chunk_bytes = get_u32le(h + 120);
    if (!chunk_bytes_ok(chunk_bytes))
        return xerr_corrupt(err, "segment %s: chunks of %u bytes", name, chunk_bytes);
    seg->chunk_shift = (unsigned)__builtin_ctz(chunk_bytes);
    seg->body_end = (size_t)expect;
    seg->n_chunks = (expect - SEGMENT_HEADER_BYTES + chunk_bytes - 1) >> seg->chunk_shift;
    if (seg->map_len - expect != 4 * seg->n_chunks)
        return xerr_corrupt(err, "segment %s: the chunk table does not end the file", name);
    seg->chunk_crcs = seg->map + expect;
    if (get_u32le(h + 124) != crc32c(0, seg->chunk_crcs, 4 * seg->n_chunks))
        return xerr_corrupt(err, "segment %s: chunk table checksum mismatch", name);
    size_t words = (size_t)(seg->n_chunks / 64 + 1);
    seg->verified = calloc(2 * words + 1, sizeof *seg->verified);
    if (!seg->verified)
        return xerr_set(err, XE_NOMEM, "segment %s: out of memory", name);
    seg->damaged = seg->verified + words;
    seg->n_damaged = seg->damaged + words;
    return XE_OK;
}

static int segment_check(struct segment *seg, struct xerr *err)
{
    const unsigned char *h = seg->map;
    const char *name = seg->name;
    const unsigned char *sec[N_SECTIONS];
    size_t sec_len[N_SECTIONS];
    int rc;

    if ((rc = check_header(seg, sec, sec_len, err)))
        return rc;
    if (seg->map_len <= segment_verify_at_open_bytes() && (rc = segment_verify(seg, err)))
        return rc;

    seg->n_docs = get_u32le(h + 16);
    seg->n_terms = get_u32le(h + 20);
    for (int f = 0; f < N_FIELDS; f++)
        seg->field_tokens[f] = get_u64le(h + 24 + 8 * f);
    seg->newest_date = (int64_t)get_u64le(h + 128);
    seg->terms = sec[SECTION_TERMS];
    seg->terms_len = sec_len[SECTION_TERMS];
    seg->postings = sec[SECTION_POSTINGS];
    seg->postings_len = sec_len[SECTION_POSTINGS];
    seg->docs = sec[SECTION_DOCS];
    seg->docs_len = sec_len[SECTION_DOCS];

    /* dictionary block table */
    if (seg->terms_len < 4)
        return xerr_corrupt(err, "segment %s: no dictionary", name);
    if ((rc = CHECK(seg, seg->terms, 4, err)))
        return rc;
    seg->n_blocks = get_u32le(seg->terms);
    if (seg->n_blocks != (seg->n_terms + SEGMENT_TERMS_PER_BLOCK - 1) / SEGMENT_TERMS_PER_BLOCK ||
        (seg->terms_len - 4) / SEGMENT_BLOCK_ENTRY_BYTES < seg->n_blocks)
        return xerr_corrupt(err, "segment %s: dictionary block count %u for %u terms", name,
                            seg->n_blocks, seg->n_terms);
    if ((rc = CHECK(seg, seg->terms + 4, SEGMENT_BLOCK_ENTRY_BYTES * (size_t)seg->n_blocks,
                    err)))
        return rc;
    for (uint32_t b = 0; b < seg->n_blocks; b++) {
        const unsigned char *e = seg->terms + 4 + SEGMENT_BLOCK_ENTRY_BYTES * (size_t)b;
        uint32_t off = get_u32le(e);
        if (off < 4 + SEGMENT_BLOCK_ENTRY_BYTES * (size_t)seg->n_blocks ||
            off >= seg->terms_len || get_u64le(e + 4) > seg->postings_len ||
            (b && off <= get_u32le(e - SEGMENT_BLOCK_ENTRY_BYTES)))
            return xerr_corrupt(err, "segment %s: dictionary block %u out of place", name, b);
    }
    /* doc table: its entries are checked when read */
    size_t fixed = (size_t)seg->n_docs * (SEGMENT_DOC_ENTRY_BYTES + SEGMENT_RANK_ENTRY_BYTES + 4);
    if (seg->docs_len < fixed)
        return xerr_corrupt(err, "segment %s: doc table too short for %u documents", name,
                            seg->n_docs);
    seg->ranks = seg->docs + (size_t)seg->n_docs * SEGMENT_DOC_ENTRY_BYTES;
    seg->id_order = seg->ranks + (size_t)seg->n_docs * SEGMENT_RANK_ENTRY_BYTES;
    seg->ids = seg->docs + fixed;
    seg->ids_len = seg->docs_len - fixed;
    struct xerr store_err = { 0 };
    struct docstore_verifier v = { docstore_verify, seg };
    if ((rc = docstore_open_verified(&seg->ds, sec[SECTION_STORE], sec_len[SECTION_STORE], &v,
                                     &store_err)))
        return xerr_set(err, rc, "segment %s: %s", name, store_err.msg);
    return XE_OK;
}

int segment_open(const char *path, struct segment **out, struct xerr *err)
{
    struct segment *seg = calloc(1, sizeof *seg);
    struct stat st;
    int rc, fd;

    if (!seg || !(seg->path = strdup(path))) {
        free(seg);
        return xerr_set(err, XE_NOMEM, "segment %s: out of memory", path);
    }
    seg->name = base_name(seg->path);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = xerr_set(err, errno == ENOENT ? XE_NOTFOUND : XE_IO, "segment %s: %s", path,
                      strerror(errno));
        goto out_free;
    }
    if (fstat(fd, &st) != 0) {
        rc = xerr_set(err, XE_IO, "segment %s: %s", path, strerror(errno));
        goto out_close;
    }
    seg->map_len = (size_t)st.st_size;
    if (seg->map_len) {
        seg->map = mmap(NULL, seg->map_len, PROT_READ, MAP_SHARED, fd, 0);
        if (seg->map == MAP_FAILED) {
            seg->map = NULL;
            rc = xerr_set(err, XE_IO, "segment %s: mmap: %s", path, strerror(errno));
            goto out_close;
        }
    }
    rc = segment_check(seg, err);
    if (rc)
        goto out_unmap;
    close(fd);
    *out = seg;
    return XE_OK;
out_unmap:
    docstore_close(&seg->ds);
    free(seg->verified);
    if (seg->map)
        munmap(seg->map, seg->map_len);
out_close:
    close(fd);
out_free:
    free(seg->path);
    free(seg);
    return rc;
}

/* The file's bytes, in anonymous memory mapped like a file (page aligned, read-only). */
static int segment_open_memory(const char *path, const struct fs_piece *pieces, size_t n,
                               struct segment **out, struct xerr *err)
{
    struct segment *seg = calloc(1, sizeof *seg);
    int rc;

    if (!seg || !(seg->path = strdup(path))) {
        free(seg);
        return xerr_set(err, XE_NOMEM, "segment %s: out of memory", path);
    }
    seg->name = base_name(seg->path);
    for (size_t i = 0; i < n; i++)
        seg->map_len += pieces[i].len;
    seg->map = mmap(NULL, seg->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                    -1, 0);
    if (seg->map == MAP_FAILED) {
        free(seg->path);
        free(seg);
        return xerr_set(err, XE_NOMEM, "segment %s: out of memory", path);
    }
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (pieces[i].len)
            memcpy(seg->map + at, pieces[i].data, pieces[i].len);
        at += pieces[i].len;
    }
    mprotect(seg->map, seg->map_len, PROT_READ);
    rc = segment_check(seg, err);
    if (rc) {
        segment_close(seg);
        return rc;
    }
    seg->in_memory = true;
    *out = seg;
    return XE_OK;
}

bool segment_in_memory(const struct segment *seg)
{
    return seg->in_memory;
}

int segment_save(const struct segment *seg, const char *path, struct xerr *err)
{
    struct fs_piece whole = { seg->map, seg->map_len };
    return fs_write_pieces(path, &whole, 1, false, err);
}

void segment_close(struct segment *seg)
{
    if (!seg)
        return;
    docstore_close(&seg->ds);
    free(seg->verified);
    if (seg->map)
        munmap(seg->map, seg->map_len);
    free(seg->path);
    free(seg);
}

uint32_t segment_n_docs(const struct segment *seg) { return seg->n_docs; }
uint32_t segment_n_terms(const struct segment *seg) { return seg->n_terms; }
uint64_t segment_file_bytes(const struct segment *seg) { return seg->map_len; }
const char *segment_path(const struct segment *seg) { return seg->path; }

uint64_t segment_field_tokens(const struct segment *seg, enum doc_field f)
{
    return seg->field_tokens[f];
}

/* Dictionary block b's entries: from its offset to the next block's (checked at open). */
static int block_bytes(const struct segment *seg, uint32_t b, const unsigned char **p,
                       const unsigned char **end, struct xerr *err)
{
    const unsigned char *e = seg->terms + 4 + SEGMENT_BLOCK_ENTRY_BYTES * (size_t)b;

    *p = seg->terms + get_u32le(e);
    *end = b + 1 < seg->n_blocks ? seg->terms + get_u32le(e + SEGMENT_BLOCK_ENTRY_BYTES)
                                 : seg->terms + seg->terms_len;
    return CHECK(seg, *p, (size_t)(*end - *p), err);
}

/* Stops the iterator: the bytes p..p+len failed their check, or (p NULL)
 * block b holds a bad entry. */
static void iter_damaged(struct segment_term_iter *it, uint32_t b, const unsigned char *p,
                         size_t len)
{
    it->p = it->end = NULL;
    it->rc = XE_CORRUPT;
    it->bad_p = p;
    it->bad_len = len;
    it->bad_block = b;
}

int segment_terms_error(const struct segment_term_iter *it, struct xerr *err)
{
    if (!it->rc)
        return XE_OK;
    /* a damaged chunk is remembered: checking again gives its message */
    if (it->bad_p && check_bytes(it->seg, it->bad_p, it->bad_len, false, err))
        return it->rc;
    return xerr_corrupt(err, "segment %s: dictionary block %u: bad entry", it->seg->name,
                        it->bad_block);
}

/* Positions the iterator at the start of dictionary block b. */
static void iter_block(struct segment_term_iter *it, uint32_t b)
{
    const struct segment *seg = it->seg;

    it->block = b;
    it->in_block = 0;
    it->term_len = 0;
    if (b >= seg->n_blocks) {
        it->p = it->end = NULL;
        return;
    }
    if (block_bytes(seg, b, &it->p, &it->end, NULL)) {
        iter_damaged(it, b, it->p, (size_t)(it->end - it->p));
        return;
    }
    it->postings_at = get_u64le(seg->terms + 4 + SEGMENT_BLOCK_ENTRY_BYTES * (size_t)b + 4);
}

bool segment_terms_next(struct segment_term_iter *it, struct segment_term *out)
{
    const struct segment *seg = it->seg;
    uint64_t shared, suffix, df, len;

    if (it->rc)
        return false;
    if (it->p && it->in_block == SEGMENT_TERMS_PER_BLOCK)
        iter_block(it, it->block + 1);
    if (!it->p || (uint64_t)it->block * SEGMENT_TERMS_PER_BLOCK + it->in_block >= seg->n_terms)
        return false;
    if (!varint_get(&it->p, it->end, &shared) || !varint_get(&it->p, it->end, &suffix) ||
        shared > it->term_len || shared + suffix > TOKEN_MAX_BYTES + 1 ||
        suffix > (uint64_t)(it->end - it->p))
        goto damaged;
    memcpy(it->term + shared, it->p, suffix);
    it->p += suffix;
    it->term_len = (size_t)(shared + suffix);
    if (!varint_get(&it->p, it->end, &df) || !varint_get(&it->p, it->end, &len) ||
        it->postings_at > seg->postings_len || len > seg->postings_len - it->postings_at ||
        (df >> 1) > seg->n_docs)
        goto damaged;
    out->has_positions = df & 1;
    out->df = (uint32_t)(df >> 1);
    out->postings = seg->postings + it->postings_at;
    out->postings_len = (size_t)len;
    if (CHECK(seg, out->postings, out->postings_len, NULL)) {
        iter_damaged(it, it->block, out->postings, out->postings_len);
        return false;
    }
    it->postings_at += len;
    it->in_block++;
    return true;
damaged:
    iter_damaged(it, it->block, NULL, 0);
    return false;
}

/* The first term of block b, decoded in place (a block's first term shares nothing). */
static int block_head(const struct segment *seg, uint32_t b, const unsigned char **term,
                      size_t *len, struct xerr *err)
{
    const unsigned char *p, *end;
    uint64_t shared, suffix;
    int rc = block_bytes(seg, b, &p, &end, err);

    if (rc)
        return rc;
    if (!varint_get(&p, end, &shared) || !varint_get(&p, end, &suffix) || shared ||
        suffix > (uint64_t)(end - p))
        return xerr_corrupt(err, "segment %s: dictionary block %u: bad first entry", seg->name,
                            b);
    *term = p;
    *len = (size_t)suffix;
    return XE_OK;
}

void segment_terms_from(const struct segment *seg, const char *prefix, size_t len,
                        struct segment_term_iter *it)
{
    uint32_t lo = 0, hi = seg->n_blocks;

    it->seg = seg;
    it->rc = XE_OK;
    it->bad_p = NULL;
    /* the last block whose head is <= prefix */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        const unsigned char *head = NULL;
        size_t head_len = 0;
        if (block_head(seg, mid, &head, &head_len, NULL)) {
            const unsigned char *p, *end;
            bool sum_ok = block_bytes(seg, mid, &p, &end, NULL) == XE_OK;
            iter_damaged(it, mid, sum_ok ? NULL : p, sum_ok ? 0 : (size_t)(end - p));
            it->block = mid;
            return;
        }
        if (bytes_cmp((const char *)head, head_len, prefix, len) <= 0)
            lo = mid;
        else
            hi = mid;
    }
    iter_block(it, lo);
    /* scan to the first term >= prefix; the iterator is left just before it */
    for (;;) {
        struct segment_term_iter save = *it;
        struct segment_term t;
        if (!segment_terms_next(it, &t))
            return;
        if (bytes_cmp(it->term, it->term_len, prefix, len) >= 0) {
            *it = save;
            return;
        }
    }
}

int segment_lookup(const struct segment *seg, const char *term, size_t len,
                   struct segment_term *out, struct xerr *err)
{
    struct segment_term_iter it;

    if (!seg->n_terms || len > TOKEN_MAX_BYTES + 1)
        return XE_NOTFOUND;
    segment_terms_from(seg, term, len, &it);
    if (segment_terms_next(&it, out) && it.term_len == len && !memcmp(it.term, term, len))
        return XE_OK;
    if (it.rc)
        return segment_terms_error(&it, err);
    return XE_NOTFOUND;
}

int segment_doc(const struct segment *seg, uint32_t docid, struct segment_doc *out,
                struct xerr *err)
{
    int rc;

    if (docid >= seg->n_docs)
        return xerr_set(err, XE_NOTFOUND, "segment %s: no document %u", seg->name, docid);
    const unsigned char *e = seg->docs + (size_t)docid * SEGMENT_DOC_ENTRY_BYTES;
    if ((rc = CHECK(seg, e, SEGMENT_DOC_ENTRY_BYTES, err)))
        return rc;
    for (int f = 0; f < N_FIELDS; f++)
        out->field_tokens[f] = get_u32le(e + 4 * f);
    out->store.record = get_u32le(e + 12);
    out->date_s = (int64_t)get_u64le(e + 16);
    uint64_t id_off = get_u32le(e + 24);
    out->id_len = e[28] | (size_t)e[29] << 8;
    out->id = (const char *)seg->ids + id_off;
    out->field_start[FIELD_TITLE] = 0;
    out->field_start[FIELD_BODY] = get_u32le(e + 32);
    out->field_start[FIELD_META] = get_u32le(e + 36);
    if (!out->id_len || out->id_len > DOC_ID_MAX_BYTES || id_off + out->id_len > seg->ids_len ||
        out->store.record >= seg->ds.n_records)
        return xerr_corrupt(err, "segment %s: document %u: bad entry", seg->name, docid);
    return CHECK(seg, seg->ids + id_off, out->id_len, err);
}

int segment_doc_rank(const struct segment *seg, uint32_t docid, struct segment_doc_rank *out,
                     struct xerr *err)
{
    int rc;

    if (docid >= seg->n_docs)
        return xerr_set(err, XE_NOTFOUND, "segment %s: no document %u", seg->name, docid);
    /* scoring reads one per match: a bit test or two once checked */
    const unsigned char *r = seg->ranks + (size_t)docid * SEGMENT_RANK_ENTRY_BYTES;
    size_t off = (size_t)(r - seg->map) - SEGMENT_HEADER_BYTES;
    if ((!chunk_bit(seg->verified, off >> seg->chunk_shift) ||
         !chunk_bit(seg->verified, (off + SEGMENT_RANK_ENTRY_BYTES - 1) >> seg->chunk_shift)) &&
        (rc = CHECK(seg, r, SEGMENT_RANK_ENTRY_BYTES, err)))
        return rc;
    for (int f = 0; f < N_FIELDS; f++)
        out->len_code[f] = r[f];
    out->date_s = get_rank_date(r + 3);
    return XE_OK;
}

int64_t segment_newest_date(const struct segment *seg)
{
    return seg->newest_date;
}

int segment_find_id(const struct segment *seg, const char *id, size_t len, uint32_t *docid,
                    struct xerr *err)
{
    uint32_t lo = 0, hi = seg->n_docs;
    int rc;

    *docid = DOCID_END;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const unsigned char *at = seg->id_order + 4 * (size_t)mid;
        if ((rc = CHECK(seg, at, 4, err)))
            return rc;
        uint32_t d = get_u32le(at);
        struct segment_doc entry;
        if (d >= seg->n_docs)
            return xerr_corrupt(err, "segment %s: id order %u: no document %u", seg->name, mid,
                                d);
        if ((rc = segment_doc(seg, d, &entry, err)))
            return rc;
        int c = bytes_cmp(entry.id, entry.id_len, id, len);
        if (c == 0) {
            *docid = d;
            return XE_OK;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return XE_NOTFOUND;
}

int segment_record(const struct segment *seg, uint32_t docid, struct buf *scratch,
                   const unsigned char **rec, size_t *len, struct xerr *err)
{
    struct segment_doc entry;
    int rc = segment_doc(seg, docid, &entry, err);

    if (rc)
        return rc;
    struct xerr store_err = { 0 };
    rc = docstore_read(&seg->ds, entry.store, scratch, rec, len, &store_err);
    return rc ? xerr_set(err, rc, "segment %s: %s", seg->name, store_err.msg) : XE_OK;
}

int segment_load(const struct segment *seg, uint32_t docid, struct buf *scratch,
                 struct doc_fields *d, struct xerr *err)
{
    const unsigned char *rec;
    size_t len;
    struct xerr rec_err = { 0 };
    int rc = segment_record(seg, docid, scratch, &rec, &len, err);

    if (!rc && (rc = doc_record_decode(rec, len, d, &rec_err)))
        xerr_set(err, rc, "segment %s: document %u: %s", seg->name, docid, rec_err.msg);
    return rc;
}
