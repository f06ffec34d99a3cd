/*
 * Document store (format in docstore.h). The writer keeps records raw until
 * finish, because the symbols must be counted over every record before any
 * is recoded, and the dictionary trained on recoded records before any block
 * is compressed. Finish passes over the records twice (count the symbols,
 * then recode them block by block, cutting and compressing blocks as they
 * fill) and recodes nothing else but the dictionary's sample, so no recoded
 * copy of the store is ever held; the tables follow the frames because the
 * blocks are cut as they are written.
 *
 * Readers keep one decompression context and one block buffer per thread and
 * one digested dictionary per segment; the symbols are read from the
 * section itself, so opening builds nothing but the dictionary.
 */
#include "index/format/docstore.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#define ZDICT_STATIC_LINKING_ONLY
#define ZSTD_STATIC_LINKING_ONLY
#include <zdict.h>
#include <zstd.h>

#include "index/base/bytes.h"
#include "index/base/error.h"
#include "index/base/limits.h"

#define DOCSTORE_HEAD_BYTES 16
/* A symbol in the table: its UTF-8 bytes (at most 4), zero padded. */
#define SYMBOL_BYTES 4
/* Symbols are numbered code point, or STRAY_BASE + byte for a stray byte. */
#define STRAY_BASE 0x110000u
#define SYMBOL_SPACE (STRAY_BASE + 0x100u)
/* The codes: 1 byte for ranks below RANK_2, 2 below RANK_4, else 0xFF + u24. */
#define CODE_1_FIRST 0x80u
#define CODE_2_FIRST 0xE0u
#define CODE_4_LEAD 0xFFu
#define RANK_2 (CODE_2_FIRST - CODE_1_FIRST)                  /* 96 */
#define RANK_4 (RANK_2 + (CODE_4_LEAD - CODE_2_FIRST) * 256u) /* 96 + 7936 */
#define SYMBOLS_MAX (1u << 24) /* what a u24 rank reaches */
/* A block of several records is addressed by u16 starts. */
#define MULTI_BLOCK_MAX UINT16_MAX
/* A thread keeps a block buffer up to this between reads; a larger one (a
 * huge record's block) is freed so that it does not stay pinned. */
#define BLOCK_KEEP_BYTES ((size_t)1 << 20)

_Static_assert(2 * DOCSTORE_BLOCK_BYTES - 1 <= MULTI_BLOCK_MAX,
               "blocks of several records must fit u16 starts");

/* ---- symbols and codes, shared by writer and reader ---- */

/*
 * The length of the valid multi-byte UTF-8 sequence (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF) at p[0..avail), with its code
 * point in *cp; 0 when p starts none.
 */
static size_t utf8_sequence(const unsigned char *p, size_t avail, uint32_t *cp)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xBF;
    size_t n;
    uint32_t v;

    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        v = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        v = c & 0x0Fu;
        lo = c == 0xE0 ? 0xA0 : lo;
        hi = c == 0xED ? 0x9F : hi;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        v = c & 0x07u;
        lo = c == 0xF0 ? 0x90 : lo;
        hi = c == 0xF4 ? 0x8F : hi;
    } else {
        return 0;
    }
    if (avail < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t k = 1; k < n; k++) {
        if ((p[k] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (p[k] & 0x3Fu);
    }
    *cp = v;
    return n;
}

/* The symbol at raw[*at] (a byte >= 0x80); advances *at past it. */
static uint32_t symbol_at(const unsigned char *raw, size_t len, size_t *at)
{
    const unsigned char *p = raw + *at;
    uint32_t cp;

    /* most of a Chinese record: 3 bytes under a lead whose second byte may be any
     * continuation byte (not 0xE0 or 0xED) */
    if (p[0] >= 0xE1 && p[0] != 0xED && p[0] <= 0xEF && len - *at >= 3 &&
        (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80) {
        *at += 3;
        return (uint32_t)(p[0] & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3Fu);
    }
    size_t n = utf8_sequence(p, len - *at, &cp);

    if (!n)
        return STRAY_BASE + raw[(*at)++];
    *at += n;
    return cp;
}

/* Bytes of a table entry's symbol; any 4 bytes give 1..4, so reads stay in the entry. */
static size_t symbol_len(const unsigned char *entry)
{
    if (!entry[1])
        return 1; /* a stray byte */
    return entry[0] >= 0xF0 ? 4 : entry[0] >= 0xE0 ? 3 : 2;
}

/* Whether a table entry is a stray byte or a valid UTF-8 sequence, zero padded. */
static bool symbol_entry_ok(const unsigned char *entry)
{
    uint32_t cp;
    size_t n = entry[1] ? utf8_sequence(entry, SYMBOL_BYTES, &cp) : 1;

    if (!n || entry[0] < 0x80)
        return false;
    for (size_t k = n; k < SYMBOL_BYTES; k++)
        if (entry[k])
            return false;
    return true;
}

static size_t code_len(uint32_t rank)
{
    return rank < RANK_2 ? 1 : rank < RANK_4 ? 2 : 4;
}

/* Writes rank's code at out; returns its length. */
static size_t code_put(unsigned char *out, uint32_t rank)
{
    if (rank < RANK_2) {
        out[0] = (unsigned char)(CODE_1_FIRST + rank);
        return 1;
    }
    if (rank < RANK_4) {
        out[0] = (unsigned char)(CODE_2_FIRST + (rank - RANK_2) / 256);
        out[1] = (unsigned char)((rank - RANK_2) % 256);
        return 2;
    }
    out[0] = CODE_4_LEAD;
    out[1] = (unsigned char)rank;
    out[2] = (unsigned char)(rank >> 8);
    out[3] = (unsigned char)(rank >> 16);
    return 4;
}

/* ---- writer ---- */

struct docstore_writer {
    struct buf raw;     /* the records back to back */
    struct buf lengths; /* size_t per record */
    uint32_t n;
};

struct symbol_count {
    uint64_t count;
    uint32_t symbol;
};

/* What finish builds beside the section's bytes. */
struct store_build {
    uint64_t *code_of; /* SYMBOL_SPACE entries: counts, then packed codes (code_pack()) */
    struct symbol_count *by_rank;
    uint32_t n_symbols;
    size_t recoded_bytes; /* all records recoded */
    ZSTD_CCtx *cctx;
    struct buf block;   /* the open block's recoded records */
    struct buf offsets; /* u64 per block: its frame, from the section start */
    struct buf firsts;  /* u32 per block: its first record */
    struct buf starts;  /* u16 per record: where it starts in its block */
    uint32_t n_blocks;
};

struct docstore_writer *docstore_writer_new(void)
{
    struct docstore_writer *w = calloc(1, sizeof *w);

    if (!w)
        return NULL;
    buf_init(&w->raw, SEGMENT_SECTION_MAX_BYTES);
    buf_init(&w->lengths, SEGMENT_SECTION_MAX_BYTES);
    return w;
}

void docstore_writer_free(struct docstore_writer *w)
{
    if (!w)
        return;
    buf_fini(&w->raw);
    buf_fini(&w->lengths);
    free(w);
}

int docstore_writer_add(struct docstore_writer *w, const void *record, size_t len,
                        struct docstore_ref *ref, struct xerr *err)
{
    if (len > DOCSTORE_RAW_MAX)
        return xerr_set(err, XE_LIMIT, "document store: record of %zu bytes", len);
    if (w->n == UINT32_MAX - 1)
        return xerr_set(err, XE_LIMIT, "document store: too many records");
    if (buf_append(&w->raw, record, len) || buf_append(&w->lengths, &len, sizeof len))
        return xerr_set(err, XE_NOMEM, "document store: out of memory");
    ref->record = w->n++;
    return XE_OK;
}

size_t docstore_writer_bytes(const struct docstore_writer *w)
{
    return w->raw.len;
}

static size_t record_len(const struct docstore_writer *w, uint32_t i)
{
    size_t len;
    memcpy(&len, w->lengths.data + (size_t)i * sizeof len, sizeof len);
    return len;
}

static void build_init(struct store_build *b)
{
    memset(b, 0, sizeof *b);
    /* a block short of full, then a record of the largest recoding */
    buf_init(&b->block, DOCSTORE_BLOCK_BYTES + DOCSTORE_RECODED_MAX);
    buf_init(&b->offsets, SEGMENT_SECTION_MAX_BYTES);
    buf_init(&b->firsts, SEGMENT_SECTION_MAX_BYTES);
    buf_init(&b->starts, SEGMENT_SECTION_MAX_BYTES);
}

static void build_fini(struct store_build *b)
{
    free(b->code_of);
    free(b->by_rank);
    ZSTD_freeCCtx(b->cctx);
    buf_fini(&b->block);
    buf_fini(&b->offsets);
    buf_fini(&b->firsts);
    buf_fini(&b->starts);
}

/* Most frequent first; ties by symbol number, so that the same records give the same ranks. */
static int by_count(const void *a, const void *b)
{
    const struct symbol_count *x = a, *y = b;

    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return (x->symbol > y->symbol) - (x->symbol < y->symbol);
}

/* A code for recode(): its bytes (first lowest) in 32 bits, its length above them. */
static uint64_t code_pack(uint32_t rank)
{
    unsigned char code[4] = { 0 };
    size_t len = code_put(code, rank);

    return get_u32le(code) | (uint64_t)len << 32;
}

static size_t symbol_raw_len(uint32_t symbol)
{
    return symbol >= STRAY_BASE ? 1 : symbol < 0x800 ? 2 : symbol < 0x10000 ? 3 : 4;
}

/* Counts every symbol over the records, ranks them, and gives each its code. */
static int rank_symbols(const struct docstore_writer *w, struct store_build *b)
{
    const unsigned char *raw = w->raw.data;
    uint64_t *counts = b->code_of = calloc(SYMBOL_SPACE, sizeof *b->code_of);

    if (!counts)
        return XE_NOMEM;
    for (size_t at = 0; at < w->raw.len;) {
        if (raw[at] < 0x80)
            at++;
        else
            counts[symbol_at(raw, w->raw.len, &at)]++;
    }
    for (uint32_t s = 0; s < SYMBOL_SPACE; s++)
        b->n_symbols += counts[s] != 0;
    b->by_rank = malloc(sizeof *b->by_rank * (b->n_symbols ? b->n_symbols : 1));
    if (!b->by_rank)
        return XE_NOMEM;
    uint32_t k = 0;
    for (uint32_t s = 0; s < SYMBOL_SPACE; s++)
        if (counts[s])
            b->by_rank[k++] = (struct symbol_count){ .count = counts[s], .symbol = s };
    qsort(b->by_rank, b->n_symbols, sizeof *b->by_rank, by_count);
    b->recoded_bytes = w->raw.len; /* then each symbol's bytes become its code's */
    for (uint32_t r = 0; r < b->n_symbols; r++) {
        const struct symbol_count *sc = &b->by_rank[r];
        b->recoded_bytes += sc->count * code_len(r);
        b->recoded_bytes -= sc->count * symbol_raw_len(sc->symbol);
        b->code_of[sc->symbol] = code_pack(r);
    }
    return XE_OK;
}

/* The recoded length of raw[0..len). */
static size_t recoded_len(const uint64_t *code_of, const unsigned char *raw, size_t len)
{
    size_t n = 0;

    for (size_t at = 0; at < len;) {
        if (raw[at] < 0x80) {
            at++;
            n++;
        } else {
            n += code_of[symbol_at(raw, len, &at)] >> 32;
        }
    }
    return n;
}

/*
 * Recodes raw[0..len) at out, which must have room for 4 bytes per raw byte
 * (each code is stored 4 bytes at a time); returns the bytes written.
 */
static size_t recode(const uint64_t *code_of, const unsigned char *raw, size_t len,
                     unsigned char *out)
{
    size_t n = 0;

    for (size_t at = 0; at < len;) {
        if (raw[at] < 0x80) {
            out[n++] = raw[at++];
        } else {
            uint64_t code = code_of[symbol_at(raw, len, &at)];
            put_u32le(out + n, (uint32_t)code);
            n += code >> 32;
        }
    }
    return n;
}

/* Trains a dictionary on an even sample of the recoded records; 0 bytes when it would not help. */
static size_t train_dict(const struct docstore_writer *w, const struct store_build *b,
                         void *dict, size_t cap)
{
    if (w->raw.len < DOCSTORE_DICT_MIN_INPUT || w->n < 64)
        return 0;
    size_t step = b->recoded_bytes / DOCSTORE_DICT_SAMPLE_BYTES + 1;
    size_t n_samples = 0, total = 0, at = 0;
    size_t *sizes = malloc(sizeof *sizes * (w->n / step + 1));
    unsigned char *samples = malloc(DOCSTORE_DICT_SAMPLE_BYTES + 3); /* recode() writes 4 */
    if (!sizes || !samples) {
        free(sizes);
        free(samples);
        return 0;
    }
    for (uint32_t i = 0; i < w->n; i++) {
        size_t raw_len = record_len(w, i);
        if (i % step == 0) {
            size_t len = recoded_len(b->code_of, w->raw.data + at, raw_len);
            if (total + len <= DOCSTORE_DICT_SAMPLE_BYTES) {
                recode(b->code_of, w->raw.data + at, raw_len, samples + total);
                sizes[n_samples++] = len;
                total += len;
            }
        }
        at += raw_len;
    }
    ZDICT_fastCover_params_t params = { .k = 50, .d = 8, .steps = 0, .nbThreads = 1,
                                        .zParams = { .compressionLevel = DOCSTORE_ZSTD_LEVEL } };
    size_t got = ZDICT_trainFromBuffer_fastCover(dict, cap, samples, sizes, (unsigned)n_samples,
                                                 params);
    free(sizes);
    free(samples);
    return ZDICT_isError(got) ? 0 : got;
}

/* The symbols by rank, SYMBOL_BYTES each, appended to out. */
static void write_symbols(const struct store_build *b, struct buf *out)
{
    for (uint32_t r = 0; r < b->n_symbols; r++) {
        uint32_t s = b->by_rank[r].symbol;
        unsigned char e[SYMBOL_BYTES] = { 0 };
        if (s >= STRAY_BASE) {
            e[0] = (unsigned char)(s - STRAY_BASE);
        } else if (s < 0x800) {
            e[0] = (unsigned char)(0xC0 | s >> 6);
            e[1] = (unsigned char)(0x80 | (s & 0x3F));
        } else if (s < 0x10000) {
            e[0] = (unsigned char)(0xE0 | s >> 12);
            e[1] = (unsigned char)(0x80 | (s >> 6 & 0x3F));
            e[2] = (unsigned char)(0x80 | (s & 0x3F));
        } else {
            e[0] = (unsigned char)(0xF0 | s >> 18);
            e[1] = (unsigned char)(0x80 | (s >> 12 & 0x3F));
            e[2] = (unsigned char)(0x80 | (s >> 6 & 0x3F));
            e[3] = (unsigned char)(0x80 | (s & 0x3F));
        }
        buf_append(out, e, sizeof e);
    }
}

/* A compression context for the section's frames: magicless, no dictionary id. */
static ZSTD_CCtx *frame_cctx_new(const ZSTD_CDict *cdict)
{
    ZSTD_CCtx *cctx = ZSTD_createCCtx();

    if (!cctx)
        return NULL;
    if (ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel,
                                            DOCSTORE_ZSTD_LEVEL)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_format, ZSTD_f_zstd1_magicless)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_dictIDFlag, 0)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1)) ||
        (cdict && ZSTD_isError(ZSTD_CCtx_refCDict(cctx, cdict)))) {
        ZSTD_freeCCtx(cctx);
        return NULL;
    }
    return cctx;
}

/* Compresses content[0..len), the records from first on, as the next block's frame. */
static int write_block(struct store_build *b, const unsigned char *content, size_t len,
                       uint32_t first, struct buf *out, size_t start, struct xerr *err)
{
    size_t bound = ZSTD_compressBound(len);

    buf_append_u64le(&b->offsets, out->len - start);
    buf_append_u32le(&b->firsts, first);
    if (b->offsets.rc || b->firsts.rc || buf_reserve(out, bound))
        return xerr_set(err, XE_NOMEM, "document store: out of memory");
    size_t n = ZSTD_compress2(b->cctx, out->data + out->len, bound, content, len);
    if (ZSTD_isError(n))
        return xerr_set(err, XE_IO, "document store: zstd: %s", ZSTD_getErrorName(n));
    out->len += n;
    b->n_blocks++;
    return XE_OK;
}

/*
 * Recodes the records into blocks and writes their frames: a block closes
 * once it holds DOCSTORE_BLOCK_BYTES, and a record that large is a block
 * alone, so a block of several records stays under twice DOCSTORE_BLOCK_BYTES.
 */
static int write_blocks(const struct docstore_writer *w, struct store_build *b,
                        struct buf *out, size_t start, struct xerr *err)
{
    struct buf *block = &b->block;
    uint32_t first = 0;
    bool open = false;
    size_t at = 0;
    int rc = XE_OK;

    if (buf_reserve(block, 2 * DOCSTORE_BLOCK_BYTES)) /* what most blocks take */
        return xerr_set(err, XE_NOMEM, "document store: out of memory");
    for (uint32_t i = 0; i < w->n && !rc; i++) {
        size_t raw_len = record_len(w, i);
        if (!open) {
            buf_reset(block);
            first = i;
            open = true;
        }
        if (buf_reserve(block, 4 * raw_len))
            return xerr_set(err, XE_NOMEM, "document store: out of memory");
        size_t record_start = block->len;
        block->len += recode(b->code_of, w->raw.data + at, raw_len, block->data + block->len);
        at += raw_len;
        if (block->len - record_start >= DOCSTORE_BLOCK_BYTES && i > first) {
            /* the block so far, then the large record alone */
            rc = write_block(b, block->data, record_start, first, out, start, err);
            if (!rc)
                rc = write_block(b, block->data + record_start, block->len - record_start, i,
                                 out, start, err);
            record_start = 0;
            open = false;
        } else if (block->len >= DOCSTORE_BLOCK_BYTES) {
            rc = write_block(b, block->data, block->len, first, out, start, err);
            open = false;
        }
        unsigned char start16[2];
        put_u16le(start16, (uint16_t)record_start);
        buf_append(&b->starts, start16, sizeof start16);
    }
    if (!rc && open)
        rc = write_block(b, block->data, block->len, first, out, start, err);
    return rc;
}

/* After the frames: the end of the last frame, then the tables (docstore.h). */
static int write_tables(struct store_build *b, struct buf *out, size_t start, struct xerr *err)
{
    buf_append_u64le(&b->offsets, out->len - start);
    buf_append(out, b->offsets.data, b->offsets.len);
    buf_append(out, b->firsts.data, b->firsts.len);
    buf_append(out, b->starts.data, b->starts.len);
    if (b->offsets.rc || b->firsts.rc || b->starts.rc || out->rc)
        return xerr_set(err, XE_NOMEM, "document store: out of memory");
    put_u32le(out->data + start + 4, b->n_blocks);
    return XE_OK;
}

int docstore_writer_finish(struct docstore_writer *w, struct buf *out, struct xerr *err)
{
    struct store_build b;
    unsigned char *dict = malloc(DOCSTORE_DICT_BYTES);
    ZSTD_CDict *cdict = NULL;
    int rc;

    build_init(&b);
    if (!dict || rank_symbols(w, &b)) {
        rc = xerr_set(err, XE_NOMEM, "document store: out of memory");
        goto out;
    }
    size_t dict_len = train_dict(w, &b, dict, DOCSTORE_DICT_BYTES);
    if ((dict_len && !(cdict = ZSTD_createCDict(dict, dict_len, DOCSTORE_ZSTD_LEVEL))) ||
        !(b.cctx = frame_cctx_new(cdict))) {
        rc = xerr_set(err, XE_NOMEM, "document store: out of memory");
        goto out;
    }
    size_t start = out->len;
    buf_append_u32le(out, w->n);
    buf_append_u32le(out, 0); /* n_blocks, once they are cut */
    buf_append_u32le(out, b.n_symbols);
    buf_append_u32le(out, (uint32_t)dict_len);
    write_symbols(&b, out);
    buf_append(out, dict, dict_len);
    if (out->rc) {
        rc = xerr_set(err, XE_NOMEM, "document store: out of memory");
        goto out;
    }
    rc = write_blocks(w, &b, out, start, err);
    if (!rc)
        rc = write_tables(&b, out, start, err);
out:
    ZSTD_freeCDict(cdict);
    build_fini(&b);
    free(dict);
    return rc;
}

/* ---- reader ---- */

/* Each symbol a stray byte or a valid UTF-8 sequence. */
static int check_symbols(const struct docstore *ds, struct xerr *err)
{
    for (uint32_t r = 0; r < ds->n_symbols; r++) {
        const unsigned char *e = ds->symbols + SYMBOL_BYTES * (size_t)r;
        if (!symbol_entry_ok(e))
            return xerr_corrupt(err, "document store: symbol %u: bad bytes %02x %02x %02x %02x",
                                r, e[0], e[1], e[2], e[3]);
    }
    return XE_OK;
}

/* Frame offsets increasing from the end of the dictionary to the tables. */
static int check_block_offsets(const struct docstore *ds, struct xerr *err)
{
    uint64_t prev = ds->frames_start;

    for (uint32_t b = 0; b <= ds->n_blocks; b++) {
        uint64_t off = get_u64le(ds->block_offsets + 8 * (size_t)b);
        bool ok = b == 0 ? off == prev : off > prev && off <= ds->frames_end;
        if (!ok || (b == ds->n_blocks && off != ds->frames_end))
            return xerr_corrupt(err, "document store: block %u: offset %llu out of order", b,
                                (unsigned long long)off);
        prev = off;
    }
    return XE_OK;
}

static uint32_t block_first(const struct docstore *ds, uint32_t b)
{
    return get_u32le(ds->block_firsts + 4 * (size_t)b);
}

/* One past block b's last record. */
static uint32_t block_end(const struct docstore *ds, uint32_t b)
{
    return b + 1 < ds->n_blocks ? block_first(ds, b + 1) : ds->n_records;
}

static uint32_t record_start(const struct docstore *ds, uint32_t i)
{
    return get_u16le(ds->record_starts + 2 * (size_t)i);
}

/* First records 0, then increasing below n_records (no block is empty). */
static int check_block_firsts(const struct docstore *ds, struct xerr *err)
{
    for (uint32_t b = 0; b < ds->n_blocks; b++) {
        uint32_t first = block_first(ds, b);
        if (b == 0 ? first != 0 : first <= block_first(ds, b - 1) || first >= ds->n_records)
            return xerr_corrupt(err, "document store: block %u: first record %u out of order",
                                b, first);
    }
    return XE_OK;
}

/* Each block's records start at 0, then in order. */
static int check_record_starts(const struct docstore *ds, struct xerr *err)
{
    for (uint32_t b = 0; b < ds->n_blocks; b++) {
        uint32_t first = block_first(ds, b), end = block_end(ds, b);
        for (uint32_t i = first; i < end; i++) {
            uint32_t start = record_start(ds, i);
            if (i == first ? start != 0 : start < record_start(ds, i - 1))
                return xerr_corrupt(err, "document store: record %u: start %u in block %u "
                                    "out of order", i, start, b);
        }
    }
    return XE_OK;
}

static int verify(const struct docstore *ds, const unsigned char *p, size_t len,
                  struct xerr *err)
{
    return ds->verifier.verify ? ds->verifier.verify(ds->verifier.ctx, p, len, err) : XE_OK;
}

/* The head's counts, and where each part starts, when they fit in len bytes
 * (the parts read at open checked by the verifier first). */
static int open_tables(struct docstore *ds, const unsigned char *data, size_t len,
                       uint32_t *dict_len, struct xerr *err)
{
    int rc;

    if (len < DOCSTORE_HEAD_BYTES)
        return xerr_corrupt(err, "document store: section of %zu bytes is too short", len);
    if ((rc = verify(ds, data, DOCSTORE_HEAD_BYTES, err)))
        return rc;
    uint32_t n = get_u32le(data), n_blocks = get_u32le(data + 4);
    uint32_t n_symbols = get_u32le(data + 8);
    *dict_len = get_u32le(data + 12);
    if ((n == 0) != (n_blocks == 0) || n_blocks > n)
        return xerr_corrupt(err, "document store: %u blocks for %u records", n_blocks, n);
    if (n_symbols > SYMBOLS_MAX)
        return xerr_corrupt(err, "document store: %u symbols", n_symbols);
    uint64_t frames = DOCSTORE_HEAD_BYTES + SYMBOL_BYTES * (uint64_t)n_symbols + *dict_len;
    uint64_t tables = 8 * ((uint64_t)n_blocks + 1) + 4 * (uint64_t)n_blocks + 2 * (uint64_t)n;
    if (frames + tables > len)
        return xerr_corrupt(err, "document store: %u records in %u blocks do not fit in %zu "
                            "bytes", n, n_blocks, len);
    size_t offsets = len - (size_t)tables;
    if ((rc = verify(ds, data + DOCSTORE_HEAD_BYTES, (size_t)frames - DOCSTORE_HEAD_BYTES,
                     err)) ||
        (rc = verify(ds, data + offsets, (size_t)tables, err)))
        return rc;
    ds->data = data;
    ds->len = len;
    ds->n_records = n;
    ds->n_blocks = n_blocks;
    ds->n_symbols = n_symbols;
    ds->symbols = data + DOCSTORE_HEAD_BYTES;
    ds->frames_start = (size_t)frames;
    ds->frames_end = offsets;
    ds->block_offsets = data + offsets;
    ds->block_firsts = ds->block_offsets + 8 * ((size_t)n_blocks + 1);
    ds->record_starts = ds->block_firsts + 4 * (size_t)n_blocks;
    return XE_OK;
}

int docstore_open(struct docstore *ds, const unsigned char *data, size_t len, struct xerr *err)
{
    return docstore_open_verified(ds, data, len, NULL, err);
}

int docstore_open_verified(struct docstore *ds, const unsigned char *data, size_t len,
                           const struct docstore_verifier *v, struct xerr *err)
{
    uint32_t dict_len = 0;
    int rc;

    memset(ds, 0, sizeof *ds);
    if (v)
        ds->verifier = *v;
    if ((rc = open_tables(ds, data, len, &dict_len, err)) || (rc = check_symbols(ds, err)) ||
        (rc = check_block_offsets(ds, err)) || (rc = check_block_firsts(ds, err)) ||
        (rc = check_record_starts(ds, err))) {
        memset(ds, 0, sizeof *ds);
        return rc;
    }
    if (dict_len) {
        ds->ddict = ZSTD_createDDict(data + ds->frames_start - dict_len, dict_len);
        if (!ds->ddict) {
            memset(ds, 0, sizeof *ds);
            return xerr_corrupt(err, "document store: bad dictionary");
        }
    }
    return XE_OK;
}

void docstore_close(struct docstore *ds)
{
    ZSTD_freeDDict(ds->ddict);
    ds->ddict = NULL;
}

static _Thread_local ZSTD_DCtx *docstore_dctx;
static _Thread_local struct buf docstore_block; /* max_bytes 0 until first used */

/*
 * The block holding record i: the last whose first record is at most i.
 * Blocks hold about as many records each, so a guess in proportion lands
 * on or near it; widening steps from there, then a binary search, touch a
 * few entries of the table instead of a cache miss per halving.
 */
static uint32_t block_of(const struct docstore *ds, uint32_t i)
{
    uint32_t guess = (uint32_t)((uint64_t)i * ds->n_blocks / ds->n_records);
    uint32_t lo, hi, step = 1; /* block_first(lo) <= i < block_first(hi) */

    if (block_first(ds, guess) <= i) {
        lo = guess;
        hi = guess + 1;
        while (hi < ds->n_blocks && block_first(ds, hi) <= i) {
            lo = hi;
            hi = hi + step < ds->n_blocks ? hi + step : ds->n_blocks;
            step *= 2;
        }
    } else {
        hi = guess;
        lo = guess - 1; /* guess > 0: block_first(0) is 0 */
        while (block_first(ds, lo) > i) {
            hi = lo;
            lo = lo > step ? lo - step : 0;
            step *= 2;
        }
    }
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (block_first(ds, mid) <= i)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static ZSTD_DCtx *thread_dctx(void)
{
    if (docstore_dctx)
        return docstore_dctx;
    docstore_dctx = ZSTD_createDCtx();
    if (docstore_dctx &&
        ZSTD_isError(ZSTD_DCtx_setParameter(docstore_dctx, ZSTD_d_format,
                                            ZSTD_f_zstd1_magicless))) {
        ZSTD_freeDCtx(docstore_dctx);
        docstore_dctx = NULL;
    }
    return docstore_dctx;
}

/*
 * Decompresses block b into this thread's block buffer; several_records caps
 * what its header may claim (u16 starts address it).
 */
static int read_block(const struct docstore *ds, uint32_t record, uint32_t b,
                      bool several_records, struct xerr *err)
{
    uint64_t start = get_u64le(ds->block_offsets + 8 * (size_t)b);
    uint64_t end = get_u64le(ds->block_offsets + 8 * ((size_t)b + 1));
    const unsigned char *frame = ds->data + start;
    size_t frame_len = (size_t)(end - start);
    ZSTD_frameHeader head;
    int rc = verify(ds, frame, frame_len, err);

    if (rc)
        return rc;

    size_t got = ZSTD_getFrameHeader_advanced(&head, frame, frame_len, ZSTD_f_zstd1_magicless);
    if (got || head.frameContentSize == ZSTD_CONTENTSIZE_UNKNOWN ||
        head.frameContentSize > (several_records ? MULTI_BLOCK_MAX : DOCSTORE_RECODED_MAX))
        return xerr_corrupt(err, "document store: record %u: block %u: bad frame header",
                            record, b);
    size_t content = (size_t)head.frameContentSize;
    if (!docstore_block.max_bytes)
        buf_init(&docstore_block, DOCSTORE_RECODED_MAX);
    buf_reset(&docstore_block);
    if (buf_reserve(&docstore_block, content ? content : 1) || !thread_dctx())
        return xerr_set(err, XE_NOMEM, "document store: out of memory");
    size_t n = ZSTD_decompress_usingDDict(docstore_dctx, docstore_block.data, content, frame,
                                          frame_len, ds->ddict);
    if (ZSTD_isError(n) || n != content)
        return xerr_corrupt(err, "document store: record %u: block %u: %s", record, b,
                            ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short");
    docstore_block.len = n;
    return XE_OK;
}

/*
 * Decodes in[0..len) (a recoded record) into out, which has room for cap
 * bytes (a bound on what valid codes give); every code, rank and write is
 * checked, as the frame may be damaged.
 */
static int decode_record(const struct docstore *ds, uint32_t record, const unsigned char *in,
                         size_t len, unsigned char *out, size_t cap, size_t *out_len,
                         struct xerr *err)
{
    size_t n = 0;

    for (size_t at = 0; at < len;) {
        unsigned char c = in[at];
        if (c < CODE_1_FIRST) {
            if (n == cap)
                goto too_long;
            out[n++] = c;
            at++;
            continue;
        }
        size_t code = c < CODE_2_FIRST ? 1 : c < CODE_4_LEAD ? 2 : 4;
        if (code > len - at)
            return xerr_corrupt(err, "document store: record %u: code 0x%02x cut at byte %zu",
                                record, c, at);
        uint32_t rank = code == 1   ? c - CODE_1_FIRST
                        : code == 2 ? RANK_2 + (c - CODE_2_FIRST) * 256u + in[at + 1]
                                    : in[at + 1] | (uint32_t)in[at + 2] << 8 |
                                          (uint32_t)in[at + 3] << 16;
        if (rank >= ds->n_symbols || code_len(rank) != code)
            return xerr_corrupt(err, "document store: record %u: bad code for rank %u (%u "
                                "symbols) at byte %zu", record, rank, ds->n_symbols, at);
        const unsigned char *entry = ds->symbols + SYMBOL_BYTES * (size_t)rank;
        size_t sym_len = symbol_len(entry);
        if (sym_len > cap - n)
            goto too_long;
        memcpy(out + n, entry, sym_len);
        n += sym_len;
        at += code;
    }
    *out_len = n;
    return XE_OK;
too_long:
    return xerr_corrupt(err, "document store: record %u: decodes to more than %zu bytes",
                        record, cap);
}

/* Decodes record i (the last of its block when last) from the block just read, into scratch. */
static int decode_from_block(const struct docstore *ds, uint32_t i, bool last,
                             struct buf *scratch, struct xerr *err)
{
    size_t start = record_start(ds, i);
    size_t end = last ? docstore_block.len : record_start(ds, i + 1);

    if (start > end || end > docstore_block.len)
        return xerr_corrupt(err, "document store: record %u: bytes %zu..%zu, past its block of "
                            "%zu bytes", i, start, end, docstore_block.len);
    /* every code byte decodes to at most 4 bytes */
    size_t cap = end - start < DOCSTORE_RAW_MAX / 4 ? 4 * (end - start) : DOCSTORE_RAW_MAX;
    buf_reset(scratch);
    if (buf_reserve(scratch, cap ? cap : 1))
        return xerr_set(err, XE_NOMEM, "document store: out of memory");
    return decode_record(ds, i, docstore_block.data + start, end - start, scratch->data, cap,
                         &scratch->len, err);
}

int docstore_read(const struct docstore *ds, struct docstore_ref ref, struct buf *scratch,
                  const unsigned char **record, size_t *len, struct xerr *err)
{
    uint32_t i = ref.record;

    if (i >= ds->n_records)
        return xerr_corrupt(err, "document store: no record %u", i);
    uint32_t b = block_of(ds, i), end_record = block_end(ds, b);
    int rc = read_block(ds, i, b, end_record - block_first(ds, b) > 1, err);
    if (!rc)
        rc = decode_from_block(ds, i, i + 1 == end_record, scratch, err);
    if (docstore_block.cap > BLOCK_KEEP_BYTES)
        buf_fini(&docstore_block);
    if (rc)
        return rc;
    *record = scratch->data;
    *len = scratch->len;
    return XE_OK;
}

void docstore_thread_cleanup(void)
{
    ZSTD_freeDCtx(docstore_dctx);
    docstore_dctx = NULL;
    buf_fini(&docstore_block);
}
