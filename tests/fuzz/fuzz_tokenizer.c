/*
 * Fuzz target: index/text/tokenizer.h on arbitrary bytes.
 *
 * The input is the text. Checked for every token: offsets inside the text
 * (start < end), code-point offsets inside the text and, for valid UTF-8,
 * equal to the code points before the byte offsets; visible positions
 * non-decreasing from first_position and visible start offsets
 * non-decreasing; terms non-empty, at most TOKEN_MAX_BYTES (+1 for the
 * hidden prefix), valid UTF-8 without control characters, so that no term
 * can collide with the hidden, source and tag prefixes of index/format/doc.h.
 * Then the text is tokenized again with a callback that stops at the k-th
 * token: tokenize() must return the callback's value, call nothing after
 * it, and have given the same tokens up to there. utf8_check() and
 * utf8_count_chars() are checked against a plain decoder.
 */
#include "tests/fuzz/fuzz.h"

#include "index/text/tokenizer.h"

#define FIRST_POSITION 7 /* not 0, so that an ignored first_position shows */
#define STOP_VALUE 42

struct seen {
    const char *text;
    size_t len;
    bool valid; /* the text is valid UTF-8 */
    size_t n_chars;
    size_t n_tokens, n_visible;
    uint32_t last_position, last_start_byte;
    uint64_t digest; /* of every token so far, to compare the stopped run */
    uint64_t *digests; /* the full run: digest after each token */
    size_t cap_digests;
    size_t stop_at; /* stop after this many tokens (SIZE_MAX: never) */
};

/* Code points of a valid UTF-8 prefix, counted the simple way. */
static size_t chars_before(const char *text, size_t bytes)
{
    size_t n = 0;

    for (size_t i = 0; i < bytes; i++)
        n += ((unsigned char)text[i] & 0xC0) != 0x80;
    return n;
}

/* Plain UTF-8 validation: shortest form, no surrogates, at most U+10FFFF, no NUL. */
static bool plain_utf8_valid(const unsigned char *p, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned char c = p[i];
        uint32_t cp;
        size_t n;
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            n = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i < n)
            return false;
        for (size_t k = 1; k < n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n;
    }
    return true;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    return (h ^ v) * 0x100000001b3ull;
}

static int check_token(void *ctx, const struct token *tok)
{
    struct seen *s = ctx;
    bool hidden = tok->kind == TOKEN_CJK_CHAR;
    const unsigned char *term = (const unsigned char *)tok->term;

    FUZZ_CHECK(tok->kind <= TOKEN_CJK_CHAR, "kind %d", (int)tok->kind);
    FUZZ_CHECK(tok->term != NULL && tok->term_len > 0, "empty term");
    FUZZ_CHECK(tok->term_len <= TOKEN_MAX_BYTES + (hidden ? 1u : 0u), "term of %zu bytes",
               tok->term_len);
    FUZZ_CHECK(tok->start_byte < tok->end_byte && tok->end_byte <= s->len,
               "bytes %u..%u of %zu", tok->start_byte, tok->end_byte, s->len);
    FUZZ_CHECK(tok->start_char < tok->end_char && tok->end_char <= s->len, "chars %u..%u",
               tok->start_char, tok->end_char);
    FUZZ_CHECK(tok->position >= FIRST_POSITION, "position %u below first_position",
               tok->position);
    /* a hidden prefix (one character, or its written form) only on hidden
     * terms; no control character anywhere else */
    bool prefixed = term[0] == (unsigned char)TERM_CHAR_PREFIX ||
                    term[0] == (unsigned char)TERM_VARIANT_PREFIX;
    FUZZ_CHECK(prefixed == hidden, "prefix byte on a term of kind %d", (int)tok->kind);
    for (size_t i = hidden ? 1 : 0; i < tok->term_len; i++)
        FUZZ_CHECK(term[i] >= 0x20 && term[i] != 0x7F, "control byte 0x%02x at %zu of a term",
                   term[i], i);
    FUZZ_CHECK(plain_utf8_valid(term + hidden, tok->term_len - hidden),
               "term of kind %d is not valid UTF-8", (int)tok->kind);
    FUZZ_CHECK(utf8_check(tok->term + hidden, tok->term_len - hidden, NULL),
               "utf8_check refuses a term");
    if (hidden)
        FUZZ_CHECK(tok->term_len <= 5, "hidden term of %zu bytes", tok->term_len);
    if (tok->kind == TOKEN_CJK_SINGLE)
        FUZZ_CHECK(tok->term_len <= 4, "single CJK term of %zu bytes", tok->term_len);
    if (tok->kind == TOKEN_CJK_BIGRAM)
        FUZZ_CHECK(tok->term_len <= 8, "bigram of %zu bytes", tok->term_len);
    if (s->valid) {
        FUZZ_CHECK(tok->end_char <= s->n_chars, "end_char %u of %zu chars", tok->end_char,
                   s->n_chars);
        FUZZ_CHECK(chars_before(s->text, tok->start_byte) == tok->start_char &&
                       chars_before(s->text, tok->end_byte) == tok->end_char,
                   "code point offsets %u..%u do not match bytes %u..%u", tok->start_char,
                   tok->end_char, tok->start_byte, tok->end_byte);
    }
    if (!hidden) {
        if (s->n_visible) {
            FUZZ_CHECK(tok->position >= s->last_position, "position %u after %u",
                       tok->position, s->last_position);
            FUZZ_CHECK(tok->start_byte >= s->last_start_byte, "start %u after %u",
                       tok->start_byte, s->last_start_byte);
        }
        s->last_position = tok->position;
        s->last_start_byte = tok->start_byte;
        s->n_visible++;
    }
    uint64_t h = mix(s->digest, tok->kind);
    h = mix(h, tok->position);
    h = mix(h, tok->start_byte);
    h = mix(h, tok->end_byte);
    h = mix(h, tok->start_char);
    h = mix(h, tok->end_char);
    for (size_t i = 0; i < tok->term_len; i++)
        h = mix(h, term[i]);
    s->digest = h;
    if (s->stop_at == SIZE_MAX) {
        if (s->n_tokens == s->cap_digests) {
            s->cap_digests = s->cap_digests ? 2 * s->cap_digests : 64;
            s->digests = realloc(s->digests, s->cap_digests * sizeof *s->digests);
            FUZZ_CHECK(s->digests != NULL, "out of memory");
        }
        s->digests[s->n_tokens] = h;
    }
    s->n_tokens++;
    FUZZ_CHECK(s->n_tokens <= s->stop_at, "a token after the callback stopped");
    return s->n_tokens == s->stop_at ? STOP_VALUE : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    size_t bad = SIZE_MAX;
    bool valid = utf8_check(text, size, &bad);

    FUZZ_CHECK(valid == plain_utf8_valid(data, size), "utf8_check says %d", valid);
    if (!valid)
        FUZZ_CHECK(bad < size, "bad offset %zu of %zu", bad, size);
    if (valid)
        FUZZ_CHECK(utf8_count_chars(text, size) == chars_before(text, size), "char count");

    struct seen all = { .text = text, .len = size, .valid = valid, .stop_at = SIZE_MAX };
    if (valid)
        all.n_chars = chars_before(text, size);
    int rc = tokenize(text, size, FIRST_POSITION, TOKENIZE_DEFAULT, check_token, &all);
    FUZZ_CHECK(rc == 0, "tokenize returned %d with a callback that never stops", rc);

    if (!all.n_tokens) {
        free(all.digests);
        return 0;
    }
    /* stop somewhere: the first byte picks where */
    struct seen part = { .text = text, .len = size, .valid = valid, .n_chars = all.n_chars };
    part.stop_at = 1 + (size ? data[0] : 0) % all.n_tokens;
    rc = tokenize(text, size, FIRST_POSITION, TOKENIZE_DEFAULT, check_token, &part);
    FUZZ_CHECK(rc == STOP_VALUE, "tokenize returned %d, the callback stopped with %d", rc,
               STOP_VALUE);
    FUZZ_CHECK(part.n_tokens == part.stop_at, "%zu tokens, stopped at %zu", part.n_tokens,
               part.stop_at);
    FUZZ_CHECK(part.digest == all.digests[part.stop_at - 1],
               "the stopped run gave other tokens than the full one");
    free(all.digests);
    return 0;
}
