/*
 * Normalization and segmentation (see tokenizer.h).
 *
 * Normalization works cluster by cluster: each code point is decomposed
 * (NFKD with case folding); a code point whose decomposition starts with a
 * non-starter (a combining mark, a Hangul vowel or final jamo) joins the
 * cluster before it; a cluster is then recomposed as a whole. Composition
 * never crosses a cluster, so this is NFKC, and every normalized code point
 * maps back to the span of original code points its cluster came from, which
 * offsets need: "e" + U+0301, "é" and half-width "ｶﾞ" all become one
 * character whose offsets cover what the text had.
 *
 * The scan is a small state machine over normalized code points: a word run
 * is emitted when it ends; a CJK run emits a bigram for each new character
 * after its first and, if it ends after one character, that character alone.
 * Hot paths (ASCII, the main Han block) skip utf8proc entirely.
 */
#include "index/text/tokenizer.h"

#include "index/text/variants.h"

#include <string.h>
#include <utf8proc.h>

enum char_class { CLASS_SEP, CLASS_WORD, CLASS_MARK, CLASS_CJK };

/* One normalized code point and the original code point it came from. */
struct norm_char {
    int32_t cp;
    int32_t written; /* cp before simplified/traditional folding */
    uint32_t start_byte, end_byte, start_char, end_char;
};

struct scan {
    token_fn fn;
    void *ctx;
    unsigned flags; /* TOKENIZE_* */
    uint32_t next_position;
    int stopped;

    /* the word being collected */
    int32_t word[TOKEN_MAX_BYTES];
    size_t word_len;
    size_t word_bytes;
    uint32_t word_start_byte, word_end_byte, word_start_char, word_end_char;

    /* the CJK run: its length so far and its last character */
    uint32_t run_len;
    bool after_cjk; /* the last visible token came from a CJK run */
    struct norm_char prev;
};

static bool is_cjk_block(int32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x3040 && cp <= 0x30FF) || (cp >= 0x31F0 && cp <= 0x31FF) ||
           (cp >= 0xAC00 && cp <= 0xD7FF) || (cp >= 0x1100 && cp <= 0x11FF) ||
           (cp >= 0x3130 && cp <= 0x318F) || (cp >= 0xA960 && cp <= 0xA97F) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x20000 && cp <= 0x3FFFF) ||
           (cp >= 0x3005 && cp <= 0x3007);
}

static enum char_class classify(int32_t cp)
{
    if (cp < 0x80) {
        if ((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9') || (cp >= 'A' && cp <= 'Z'))
            return CLASS_WORD;
        return CLASS_SEP;
    }
    if (cp >= 0x4E00 && cp <= 0x9FFF)
        return CLASS_CJK;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return is_cjk_block(cp) ? CLASS_CJK : CLASS_WORD;
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
        return CLASS_MARK;
    /* enclosing marks (the keycap of "1️⃣") decorate, they do not spell */
    default:
        return CLASS_SEP;
    }
}

/* Decomposes one code point into out[]; returns how many (0 = ignorable). */
static int decompose_char(int32_t cp, int32_t out[static 18])
{
    if (cp < 0x80) {
        out[0] = (cp >= 'A' && cp <= 'Z') ? cp + ('a' - 'A') : cp;
        return 1;
    }
    if (cp >= 0x4E00 && cp <= 0x9FFF) { /* unified ideographs are NFKC-stable */
        out[0] = cp;
        return 1;
    }
    utf8proc_ssize_t n = utf8proc_decompose_char(
        cp, out, 18, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD | UTF8PROC_IGNORE,
        NULL);
    if (n < 0 || n > 18) { /* no such mapping is that long; keep the character */
        out[0] = cp;
        return 1;
    }
    return (int)n;
}

/* True when cp composes with what precedes it: a combining mark or a Hangul V/T jamo. */
static bool joins_previous(int32_t cp)
{
    if (cp < 0x300)
        return false;
    if ((cp >= 0x1161 && cp <= 0x1175) || (cp >= 0x11A8 && cp <= 0x11C2))
        return true;
    return utf8proc_get_property(cp)->combining_class != 0;
}

static size_t utf8_put(int32_t cp, char *dst)
{
    return (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)dst);
}

static void emit(struct scan *s, const struct token *tok)
{
    if (!s->stopped)
        s->stopped = s->fn(s->ctx, tok);
}

static void word_flush(struct scan *s)
{
    char term[TOKEN_MAX_BYTES + 4];
    size_t len = 0;

    if (!s->word_len)
        return;
    for (size_t i = 0; i < s->word_len; i++)
        len += utf8_put(s->word[i], term + len);
    s->after_cjk = false;
    struct token tok = {
        .term = term,
        .term_len = len,
        .position = s->next_position++,
        .start_byte = s->word_start_byte,
        .end_byte = s->word_end_byte,
        .start_char = s->word_start_char,
        .end_char = s->word_end_char,
        .kind = TOKEN_WORD,
    };
    emit(s, &tok);
    s->word_len = 0;
    s->word_bytes = 0;
}

static void word_add(struct scan *s, const struct norm_char *c, uint32_t end_char, bool is_mark)
{
    size_t bytes = c->cp < 0x80 ? 1 : c->cp < 0x800 ? 2 : c->cp < 0x10000 ? 3 : 4;

    if (s->word_bytes + bytes > TOKEN_MAX_BYTES) {
        if (is_mark)
            return; /* a mark never starts a piece of a split word */
        word_flush(s); /* an over-long word is split, as Lucene does */
    }
    if (!s->word_len) {
        s->word_start_byte = c->start_byte;
        s->word_start_char = c->start_char;
    }
    s->word[s->word_len++] = c->cp;
    s->word_bytes += bytes;
    s->word_end_byte = c->end_byte;
    s->word_end_char = end_char;
}

static void cjk_flush(struct scan *s)
{
    if (s->run_len == 1) {
        char term[8];
        struct token tok = {
            .term = term,
            .term_len = utf8_put(s->prev.cp, term),
            .position = s->next_position++,
            .start_byte = s->prev.start_byte,
            .end_byte = s->prev.end_byte,
            .start_char = s->prev.start_char,
            .end_char = s->prev.end_char,
            .kind = TOKEN_CJK_SINGLE,
        };
        emit(s, &tok);
    } else if (s->run_len > 1) {
        s->next_position += s->run_len - 1; /* one position per bigram */
    }
    s->run_len = 0;
}

static void cjk_add(struct scan *s, const struct norm_char *c, uint32_t end_char)
{
    char term[12];
    uint32_t start_char_of_c = c->start_char;

    /* A new run right after another one (only a separator between) starts
     * one position further, so that no phrase of bigrams spans the two:
     * 普惠化 must not match "普惠，惠化". */
    if (!s->run_len && s->after_cjk)
        s->next_position++;
    s->after_cjk = true;
    /* the hidden one-character term */
    term[0] = TERM_CHAR_PREFIX;
    struct token hidden = {
        .term = term,
        .term_len = 1 + utf8_put(c->cp, term + 1),
        .position = s->next_position + (s->run_len ? s->run_len - 1 : 0),
        .start_byte = c->start_byte,
        .end_byte = c->end_byte,
        .start_char = start_char_of_c,
        .end_char = end_char,
        .kind = TOKEN_CJK_CHAR,
    };
    emit(s, &hidden);
    if (c->written != c->cp) { /* the form as written, for ranking */
        term[0] = TERM_VARIANT_PREFIX;
        hidden.term_len = 1 + utf8_put(c->written, term + 1);
        emit(s, &hidden);
    }

    if (s->run_len) {
        size_t len = utf8_put(s->prev.cp, term);
        len += utf8_put(c->cp, term + len);
        struct token tok = {
            .term = term,
            .term_len = len,
            .position = s->next_position + s->run_len - 1,
            .start_byte = s->prev.start_byte,
            .end_byte = c->end_byte,
            .start_char = s->prev.start_char,
            .end_char = end_char,
            .kind = TOKEN_CJK_BIGRAM,
        };
        emit(s, &tok);
    }
    s->prev = *c;
    s->run_len++;
}

/* One normalized code point; end_char is the end of its original code point. */
static void scan_char(struct scan *s, const struct norm_char *c, uint32_t end_char)
{
    switch (classify(c->cp)) {
    case CLASS_WORD:
        cjk_flush(s);
        word_add(s, c, end_char, false);
        break;
    case CLASS_MARK:
        if (s->word_len) /* a mark belongs to the word before it; alone it is dropped */
            word_add(s, c, end_char, true);
        break;
    case CLASS_CJK:
        word_flush(s);
        cjk_add(s, c, end_char);
        break;
    case CLASS_SEP:
        word_flush(s);
        cjk_flush(s);
        break;
    }
}

/* Code points of one cluster before composition (a base and its marks). */
#define CLUSTER_MAX 64

struct cluster {
    int32_t cps[CLUSTER_MAX];
    int n;
    uint32_t start_byte, end_byte, start_char, end_char;
};

/* Composes the cluster and scans its code points, all mapped to its span. */
static void cluster_flush(struct scan *s, struct cluster *cl)
{
    int n = cl->n;

    if (!n)
        return;
    if (n > 1) {
        utf8proc_ssize_t c = utf8proc_normalize_utf32(cl->cps, n, UTF8PROC_COMPOSE);
        n = c > 0 ? (int)c : n;
    }
    for (int k = 0; k < n && !s->stopped; k++) {
        int32_t cp = cl->cps[k];
        struct norm_char c = {
            .cp = (s->flags & TOKENIZE_FOLD_VARIANTS) && cp >= 0x3400 ? variant_fold(cp) : cp,
            .written = cp,
            .start_byte = cl->start_byte,
            .end_byte = cl->end_byte,
            .start_char = cl->start_char,
            .end_char = cl->end_char,
        };
        scan_char(s, &c, cl->end_char);
    }
    cl->n = 0;
}

int tokenize(const char *text, size_t len_bytes, uint32_t first_position, unsigned flags,
             token_fn fn, void *ctx)
{
    struct scan s = { .fn = fn, .ctx = ctx, .flags = flags, .next_position = first_position };
    struct cluster cl = { .n = 0 };
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0;
    uint32_t char_index = 0;

    while (i < len_bytes && !s.stopped) {
        int32_t cp;
        utf8proc_ssize_t n;

        if (p[i] < 0x80) {
            cp = p[i];
            n = 1;
        } else {
            n = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len_bytes - i), &cp);
            if (n <= 0) { /* not UTF-8: a separator, one byte at a time */
                cp = ' ';
                n = 1;
            }
        }
        int32_t decomposed[18];
        int count = decompose_char(cp, decomposed);
        if (count) {
            bool joins = cl.n && joins_previous(decomposed[0]) && cl.n + count <= CLUSTER_MAX;
            if (!joins) {
                cluster_flush(&s, &cl);
                cl.start_byte = (uint32_t)i;
                cl.start_char = char_index;
            }
            memcpy(cl.cps + cl.n, decomposed, (size_t)count * sizeof *decomposed);
            cl.n += count;
            cl.end_byte = (uint32_t)(i + (size_t)n);
            cl.end_char = char_index + 1;
        }
        i += (size_t)n;
        char_index++;
    }
    cluster_flush(&s, &cl);
    word_flush(&s);
    cjk_flush(&s);
    return s.stopped;
}

bool utf8_check(const char *text, size_t len_bytes, size_t *bad_offset)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0;

    while (i < len_bytes) {
        if (p[i] && p[i] < 0x80) {
            i++;
            continue;
        }
        int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len_bytes - i), &cp);
        if (n <= 0 || cp == 0) {
            if (bad_offset)
                *bad_offset = i;
            return false;
        }
        i += (size_t)n;
    }
    return true;
}

size_t utf8_count_chars(const char *text, size_t len_bytes)
{
    size_t n = 0;

    for (size_t i = 0; i < len_bytes; i++)
        n += ((unsigned char)text[i] & 0xC0) != 0x80;
    return n;
}
