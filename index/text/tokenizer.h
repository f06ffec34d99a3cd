/*
 * Text to terms: Unicode NFKC with case folding (utf8proc), then CJK runs as
 * overlapping bigrams and other scripts as words of letters and digits.
 *
 *   "普惠化"   -> 普惠 惠化            (bigrams, positions 0 1)
 *   "猫"       -> 猫                   (a lone CJK character stays a unigram)
 *   "GPT-4"    -> gpt 4
 *   "ＡＩ"     -> ai
 *
 * Besides these visible terms, every CJK character is also emitted as a
 * hidden TOKEN_CJK_CHAR term ("\x01" + the character), so that a one
 * character query finds the character inside longer runs too. Hidden terms
 * take no position of their own.
 *
 * With TOKENIZE_FOLD_VARIANTS, traditional characters become their
 * simplified forms (index/text/variants.h): 馬斯克 -> 马斯 斯克. A character that
 * folding changed also gets a hidden TOKEN_CJK_CHAR term "\x04" + the
 * character as written, so that ranking can prefer the form a query typed.
 *
 * Offsets point back into the original text, in bytes and in code points, so
 * snippets and /analyze can mark exactly what was matched.
 */
#ifndef XUN_INDEX_TOKENIZER_H
#define XUN_INDEX_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/base/limits.h"

/* First byte of hidden one-character terms; never part of a visible term
 * because control characters are separators. */
#define TERM_CHAR_PREFIX '\x01'
/* First byte of hidden exact-form terms: a character as written, before folding. */
#define TERM_VARIANT_PREFIX '\x04'

enum token_kind {
    TOKEN_WORD,       /* letters, digits and marks of a non-CJK script */
    TOKEN_CJK_BIGRAM, /* two adjacent CJK characters */
    TOKEN_CJK_SINGLE, /* a CJK run of one character */
    TOKEN_CJK_CHAR,   /* hidden: every CJK character, for one-character queries */
};

struct token {
    const char *term; /* normalized UTF-8, valid only during the callback */
    size_t term_len;
    uint32_t position; /* visible tokens count 0, 1, 2, ...; hidden ones share */
    uint32_t start_byte, end_byte; /* into the text; end exclusive */
    uint32_t start_char, end_char; /* code points into the text; end exclusive */
    enum token_kind kind;
};

/* How an index analyzes text; recorded with the index, since documents and
 * queries must be analyzed alike. */
enum tokenize_flags {
    TOKENIZE_FOLD_VARIANTS = 1u << 0, /* simplified = traditional */
};
#define TOKENIZE_DEFAULT TOKENIZE_FOLD_VARIANTS

/* Return non-zero to stop; tokenize() then returns that value. */
typedef int (*token_fn)(void *ctx, const struct token *tok);

/*
 * Calls fn for each token of text, in order of position. text must be valid
 * UTF-8 (utf8_check); bytes that are not are treated as separators.
 * first_position is added to every position (fields of one document share a
 * position space). flags are TOKENIZE_*. Returns 0 or what fn returned.
 */
int tokenize(const char *text, size_t len_bytes, uint32_t first_position, unsigned flags,
             token_fn fn, void *ctx);

/*
 * Returns true when text is valid UTF-8 without NUL bytes. Otherwise stores
 * the byte offset of the first bad byte in *bad_offset.
 */
bool utf8_check(const char *text, size_t len_bytes, size_t *bad_offset);

/* Length in code points of valid UTF-8. */
size_t utf8_count_chars(const char *text, size_t len_bytes);

#endif
