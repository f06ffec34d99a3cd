/* Preparing documents for the in-memory index (see docprep.h). */
#include "index/write/docprep.h"

#include <stdlib.h>
#include <string.h>

#include "index/format/docstore.h"
#include "index/base/error.h"
#include "index/base/hash.h"
#include "index/text/tokenizer.h"

/* Each batch array starts this large and doubles. */
#define DOCPREP_FIRST_TOKENS 4096
#define DOCPREP_FIRST_DOCS 64
#define DOCPREP_BYTES_MAX ((size_t)UINT32_MAX)

uint64_t term_hash(const void *p, size_t len)
{
    return hash_bytes(p, len);
}

uint64_t term_key(const void *p, size_t len)
{
    uint64_t k = 0;
    memcpy(&k, p, len < 8 ? len : 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    k = __builtin_bswap64(k); /* the first byte most significant: compares as bytes do */
#endif
    return k;
}

void docprep_init(struct docprep_batch *b, unsigned tokenize_flags)
{
    memset(b, 0, sizeof *b);
    b->tokenize_flags = tokenize_flags;
    buf_init(&b->bytes, DOCPREP_BYTES_MAX);
}

void docprep_fini(struct docprep_batch *b)
{
    free(b->docs);
    free(b->tokens);
    buf_fini(&b->bytes);
    memset(b, 0, sizeof *b);
}

void docprep_reset(struct docprep_batch *b)
{
    b->n_docs = 0;
    b->n_tokens = 0;
    buf_reset(&b->bytes);
}

size_t docprep_bytes(const struct docprep_batch *b)
{
    return b->bytes.len + b->n_tokens * sizeof *b->tokens + b->n_docs * sizeof *b->docs;
}

/* The code point of a hidden one-character term ("\x01" + UTF-8), or -1. */
static int32_t char_term_cp(const struct token *tok)
{
    const unsigned char *p = (const unsigned char *)tok->term + 1;

    if (tok->term[0] != TERM_CHAR_PREFIX)
        return -1; /* an exact-value or written-form term */
    if (tok->term_len == 4 && (p[0] & 0xF0) == 0xE0)
        return (p[0] & 0x0F) << 12 | (p[1] & 0x3F) << 6 | (p[2] & 0x3F);
    if (tok->term_len == 5 && (p[0] & 0xF8) == 0xF0)
        return (p[0] & 0x07) << 18 | (p[1] & 0x3F) << 12 | (p[2] & 0x3F) << 6 | (p[3] & 0x3F);
    return -1;
}

static int on_token(void *ctx, const struct token *tok)
{
    struct docprep_batch *b = ctx;
    bool hidden = tok->kind == TOKEN_CJK_CHAR;

    if (!hidden && ++b->field_count > FIELD_MAX_TOKENS)
        return 1; /* the rest of an absurdly long field is not indexed */
    if (b->n_tokens == b->tokens_cap) {
        size_t cap = b->tokens_cap ? b->tokens_cap * 2 : DOCPREP_FIRST_TOKENS;
        struct prep_token *grown = realloc(b->tokens, cap * sizeof *grown);
        if (!grown) {
            b->rc = XE_NOMEM;
            return 1;
        }
        b->tokens = grown;
        b->tokens_cap = cap;
    }
    size_t at = b->bytes.len;
    int rc = buf_append(&b->bytes, tok->term, tok->term_len);
    if (rc) { /* XE_NOMEM, or XE_LIMIT past DOCPREP_BYTES_MAX */
        b->rc = rc;
        return 1;
    }
    struct prep_token *t = &b->tokens[b->n_tokens++];
    *t = (struct prep_token){ .bytes_at = (uint32_t)at, .position = tok->position,
                              .len = (uint16_t)tok->term_len, .field = b->cur_field,
                              .positions = !hidden, .char_cp = hidden ? char_term_cp(tok) : -1 };
    if (t->char_cp < 0) { /* a character's term is rarely looked up by hash: see prep_token */
        t->hash = term_hash(tok->term, tok->term_len);
        t->key = term_key(tok->term, tok->term_len);
    }
    return 0;
}

/* Tokenizes one text of a field; returns the next free position. */
static uint32_t add_text(struct docprep_batch *b, struct text t, uint32_t position,
                         uint32_t *field_tokens)
{
    size_t before = b->n_tokens;
    uint32_t next = position;

    if (!t.p || !t.len)
        return position;
    b->field_count = *field_tokens;
    tokenize(t.p, t.len, position, b->tokenize_flags, on_token, b);
    for (size_t i = before; i < b->n_tokens; i++)
        if (b->tokens[i].position >= next && b->tokens[i].positions)
            next = b->tokens[i].position + 1;
    *field_tokens = b->field_count > FIELD_MAX_TOKENS ? FIELD_MAX_TOKENS : b->field_count;
    return next + FIELD_GAP;
}

/* An exact-value term (format/doc.h) for the filters and facets of source and tags. */
static void add_exact(struct docprep_batch *b, char prefix, struct text value)
{
    char term[TOKEN_MAX_BYTES + 1];

    if (!value.p || !value.len || b->rc)
        return;
    size_t len = doc_exact_len(value.p, value.len);
    term[0] = prefix;
    memcpy(term + 1, value.p, len);
    /* no positions, like a hidden one-character term; counted in the meta field */
    struct token tok = { .term = term, .term_len = len + 1, .kind = TOKEN_CJK_CHAR };
    if (on_token(b, &tok) && !b->rc)
        b->rc = XE_NOMEM;
}

int docprep_add(struct docprep_batch *b, const struct doc_fields *d, struct xerr *err)
{
    size_t bytes_before = b->bytes.len, tokens_before = b->n_tokens;
    uint32_t pos = 0;

    if (!d->id.p || !d->id.len || d->id.len > DOC_ID_MAX_BYTES)
        return xerr_set(err, XE_INPUT, "document id must be 1 to %d bytes", DOC_ID_MAX_BYTES);
    if (b->n_docs == b->docs_cap) {
        size_t cap = b->docs_cap ? b->docs_cap * 2 : DOCPREP_FIRST_DOCS;
        struct prep_doc *grown = realloc(b->docs, cap * sizeof *grown);
        if (!grown)
            return xerr_set(err, XE_NOMEM, "out of memory");
        b->docs = grown;
        b->docs_cap = cap;
    }
    int shown = d->id.len < 64 ? (int)d->id.len : 64; /* of the id, in messages */
    struct prep_doc doc = { .date_s = d->date_s, .id_len = (uint16_t)d->id.len,
                            .first_token = b->n_tokens };
    doc.id_at = b->bytes.len;
    if (buf_append(&b->bytes, d->id.p, d->id.len)) {
        b->bytes.len = bytes_before;
        b->bytes.rc = 0;
        return xerr_set(err, XE_NOMEM, "out of memory");
    }
    doc.record_at = b->bytes.len;
    int rc = doc_record_encode(d, &b->bytes);
    if (rc) {
        b->bytes.len = bytes_before;
        b->bytes.rc = 0;
        return rc == XE_NOMEM
                   ? xerr_set(err, rc, "out of memory")
                   : xerr_set(err, rc, "document %.*s: too large to store", shown, d->id.p);
    }
    doc.record_len = b->bytes.len - doc.record_at;
    if (doc.record_len > DOCSTORE_RAW_MAX) {
        b->bytes.len = bytes_before;
        return xerr_set(err, XE_LIMIT, "document %.*s: too large to store", shown,
                        d->id.p);
    }

    b->rc = XE_OK;
    b->cur_field = FIELD_TITLE;
    pos = add_text(b, d->title, pos, &doc.field_tokens[FIELD_TITLE]);
    b->cur_field = FIELD_BODY;
    doc.field_start[FIELD_BODY] = pos;
    pos = add_text(b, d->body, pos, &doc.field_tokens[FIELD_BODY]);
    b->cur_field = FIELD_META;
    doc.field_start[FIELD_META] = pos;
    pos = add_text(b, d->source, pos, &doc.field_tokens[FIELD_META]);
    for (size_t i = 0; i < d->n_tags; i++)
        pos = add_text(b, d->tags[i], pos, &doc.field_tokens[FIELD_META]);
    add_exact(b, TERM_SOURCE_PREFIX, d->source);
    for (size_t i = 0; i < d->n_tags; i++)
        add_exact(b, TERM_TAG_PREFIX, d->tags[i]);
    if (b->rc) {
        b->bytes.len = bytes_before;
        b->bytes.rc = 0;
        b->n_tokens = tokens_before;
        return xerr_set(err, b->rc, "%s preparing %.*s",
                        b->rc == XE_NOMEM ? "out of memory" : "too much text", shown, d->id.p);
    }
    doc.n_tokens = b->n_tokens - doc.first_token;
    b->docs[b->n_docs++] = doc;
    return XE_OK;
}
