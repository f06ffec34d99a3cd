/*
 * Tests of index/text/tokenizer.h: terms, positions and offsets of tokenize(), the
 * hidden one-character CJK terms, the position gap between CJK runs, word
 * splitting at TOKEN_MAX_BYTES, early stop, and the UTF-8 helpers
 * utf8_check() and utf8_count_chars().
 *
 * Cases are a table: the visible terms, their positions and their byte and
 * code point ranges are each written as one string, so a failing row prints
 * what it got next to what it wanted.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/base/limits.h"
#include <utf8proc.h>

#include "index/text/tokenizer.h"
#include "index/text/variants.h"

#define LIST_MAX_BYTES 8192

/* ---- collecting tokens ---- */

struct got_token {
    char term[TOKEN_MAX_BYTES + 8];
    size_t term_len;
    uint32_t position, start_byte, end_byte, start_char, end_char;
    enum token_kind kind;
};

struct collect {
    struct got_token *toks;
    size_t n, cap;
    size_t stop_after; /* 0: never stop; else return stop_rc on call number stop_after */
    int stop_rc;
};

static int collect_token(void *ctx, const struct token *tok)
{
    struct collect *c = ctx;

    assert_non_null(tok->term);
    assert_true(tok->term_len > 0);
    assert_true(tok->term_len <= TOKEN_MAX_BYTES + 4);
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->toks = realloc(c->toks, c->cap * sizeof *c->toks);
        assert_non_null(c->toks);
    }
    struct got_token *g = &c->toks[c->n++];
    memcpy(g->term, tok->term, tok->term_len);
    g->term[tok->term_len] = '\0';
    g->term_len = tok->term_len;
    g->position = tok->position;
    g->start_byte = tok->start_byte;
    g->end_byte = tok->end_byte;
    g->start_char = tok->start_char;
    g->end_char = tok->end_char;
    g->kind = tok->kind;
    if (c->stop_after && c->n == c->stop_after)
        return c->stop_rc;
    return 0;
}

static void collect_fini(struct collect *c)
{
    free(c->toks);
    c->toks = NULL;
    c->n = c->cap = 0;
}

/* Appends printf output to a NUL-terminated list of at most LIST_MAX_BYTES. */
__attribute__((format(printf, 2, 3))) static void list_add(char *list, const char *fmt, ...)
{
    size_t used = strlen(list);
    va_list ap;

    if (used)
        list[used++] = ' ';
    va_start(ap, fmt);
    int n = vsnprintf(list + used, LIST_MAX_BYTES - used, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < LIST_MAX_BYTES - used);
}

struct lists {
    char terms[LIST_MAX_BYTES], positions[LIST_MAX_BYTES];
    char bytes[LIST_MAX_BYTES], chars[LIST_MAX_BYTES];
    char hidden[LIST_MAX_BYTES]; /* the hidden terms' characters, prefix removed, run together */
    char forms[LIST_MAX_BYTES];  /* the same for the written forms ("\x04" terms) */
};

static void lists_of(const struct collect *c, struct lists *l)
{
    memset(l, 0, sizeof *l);
    for (size_t i = 0; i < c->n; i++) {
        const struct got_token *g = &c->toks[i];
        if (g->kind == TOKEN_CJK_CHAR) {
            char *list = g->term[0] == TERM_VARIANT_PREFIX ? l->forms : l->hidden;
            size_t used = strlen(list);
            assert_true(used + g->term_len < LIST_MAX_BYTES);
            memcpy(list + used, g->term + 1, g->term_len - 1);
            continue;
        }
        list_add(l->terms, "%s", g->term);
        list_add(l->positions, "%u", g->position);
        list_add(l->bytes, "%u-%u", g->start_byte, g->end_byte);
        list_add(l->chars, "%u-%u", g->start_char, g->end_char);
    }
}

static bool is_cjk_visible(const struct got_token *g)
{
    return g->kind == TOKEN_CJK_BIGRAM || g->kind == TOKEN_CJK_SINGLE;
}

/*
 * Checks what holds for every token of valid UTF-8 text: ranges inside the
 * text and in step with each other; visible positions first_position, +1,
 * +2, ..., except that a CJK run that follows another CJK run with only
 * separators between starts one position further (a visible CJK token that
 * does not overlap the CJK token before it); every hidden term is "\x01" +
 * one character, covering one code point, at the position of the first
 * visible token over that character; a hidden "\x04" term (the form as
 * written) follows the "\x01" term of its character, which it folds to.
 */
static void check_invariants(const char *text, size_t len, uint32_t first_position,
                             const struct collect *c)
{
    uint32_t next_visible = first_position;
    const struct got_token *prev_visible = NULL;

    for (size_t i = 0; i < c->n; i++) {
        const struct got_token *g = &c->toks[i];
        assert_true(g->start_byte < g->end_byte);
        assert_true(g->end_byte <= len);
        assert_true(g->start_char < g->end_char);
        assert_int_equal(utf8_count_chars(text, g->start_byte), g->start_char);
        assert_int_equal(utf8_count_chars(text, g->end_byte), g->end_char);
        if (g->kind != TOKEN_CJK_CHAR) {
            assert_true(utf8_check(g->term, g->term_len, NULL));
            assert_null(memchr(g->term, TERM_CHAR_PREFIX, g->term_len));
            bool new_cjk_run = prev_visible && is_cjk_visible(prev_visible) &&
                               is_cjk_visible(g) && g->start_byte >= prev_visible->end_byte;
            assert_int_equal(g->position, next_visible + (new_cjk_run ? 1 : 0));
            next_visible = g->position + 1;
            prev_visible = g;
            continue;
        }
        if (g->term[0] == TERM_VARIANT_PREFIX) {
            const struct got_token *folded = i ? &c->toks[i - 1] : NULL;
            assert_non_null(folded);
            assert_int_equal(folded->term[0], TERM_CHAR_PREFIX);
            assert_int_equal(folded->position, g->position);
            assert_int_equal(folded->start_byte, g->start_byte);
            int32_t written, simple;
            utf8proc_iterate((const utf8proc_uint8_t *)g->term + 1, -1, &written);
            utf8proc_iterate((const utf8proc_uint8_t *)folded->term + 1, -1, &simple);
            assert_int_not_equal(written, simple);
            assert_int_equal(variant_fold(written), simple);
            continue;
        }
        assert_int_equal(g->term[0], TERM_CHAR_PREFIX);
        assert_true(g->term_len >= 2);
        assert_int_equal(utf8_count_chars(g->term + 1, g->term_len - 1), 1);
        assert_int_equal(g->end_char, g->start_char + 1);
        bool covered = false;
        for (size_t k = 0; k < c->n && !covered; k++) {
            const struct got_token *v = &c->toks[k];
            if (v->kind == TOKEN_CJK_BIGRAM || v->kind == TOKEN_CJK_SINGLE) {
                if (v->start_char <= g->start_char && g->end_char <= v->end_char) {
                    assert_int_equal(g->position, v->position);
                    covered = true;
                }
            }
        }
        assert_true(covered);
    }
}

/* ---- the table ---- */

static const struct {
    const char *text;
    const char *terms, *positions, *bytes, *chars;
    const char *cjk; /* the characters that must have hidden terms, normalized */
} cases[] = {
    { "普惠化", "普惠 惠化", "0 1", "0-6 3-9", "0-2 1-3", "普惠化" },
    { "猫", "猫", "0", "0-3", "0-1", "猫" },
    { "GPT-4", "gpt 4", "0 1", "0-3 4-5", "0-3 4-5", "" },
    { "ＡＩ", "ai", "0", "0-6", "0-2", "" },
    { "Bedrock普惠化", "bedrock 普惠 惠化", "0 1 2", "0-7 7-13 10-16", "0-7 7-9 8-10",
      "普惠化" },
    { "普惠化Bedrock", "普惠 惠化 bedrock", "0 1 2", "0-6 3-9 9-16", "0-2 1-3 3-10",
      "普惠化" },
    { "中a文", "中 a 文", "0 1 2", "0-3 3-4 4-7", "0-1 1-2 2-3", "中文" },
    /* A CJK run after another with only separators between starts one
     * position further: no phrase of bigrams spans the two runs. */
    { "中国，人民", "中国 人民", "0 2", "0-6 9-15", "0-2 3-5", "中国人民" },
    { "普惠，惠化", "普惠 惠化", "0 2", "0-6 9-15", "0-2 3-5", "普惠惠化" },
    { "马斯克：“诉讼", "马斯 斯克 诉讼", "0 1 3", "0-6 3-9 15-21", "0-2 1-3 5-7",
      "马斯克诉讼" },
    { "２０２３年", "2023 年", "0 1", "0-12 12-15", "0-4 4-5", "年" },
    /* Japanese: kana are CJK, so kanji and kana runs make one bigram run. */
    { "ひらがな", "ひら らが がな", "0 1 2", "0-6 3-9 6-12", "0-2 1-3 2-4", "ひらがな" },
    { "東京タワー", "東京 京タ タワ ワー", "0 1 2 3", "0-6 3-9 6-12 9-15",
      "0-2 1-3 2-4 3-5", "東京タワー" },
    { "ｶﾀｶﾅ", "カタ タカ カナ", "0 1 2", "0-6 3-9 6-12", "0-2 1-3 2-4", "カタカナ" },
    /* Hangul syllables: normalized one by one, they come back whole. */
    { "한국어", "한국 국어", "0 1", "0-6 3-9", "0-2 1-3", "한국어" },
    { "서울 시", "서울 시", "0 2", "0-6 7-10", "0-2 3-4", "서울시" },
    { "한국어 검색", "한국 국어 검색", "0 1 3", "0-6 3-9 10-16", "0-2 1-3 4-6", "한국어검색" },
    /* Combining marks join their letter; the word is recomposed. */
    { "cafe\xcc\x81", "caf\xc3\xa9", "0", "0-6", "0-5", "" },
    { "caf\xc3\xa9", "caf\xc3\xa9", "0", "0-5", "0-4", "" },
    { "CAFE\xcc\x81 Caf\xc3\x89", "caf\xc3\xa9 caf\xc3\xa9", "0 1", "0-6 7-12", "0-5 6-10",
      "" },
    { "\xcc\x81x", "x", "0", "2-3", "1-2", "" }, /* a mark with no letter is dropped */
    { "नमस्ते", "नमस्ते", "0", "0-18", "0-6", "" },
    /* Compatibility characters and ligatures (NFKC), case folding. */
    { "\xef\xac\x81le", "file", "0", "0-5", "0-3", "" },
    { "㎏ Ⅻ ①", "kg xii 1", "0 1 2", "0-3 4-7 8-11", "0-1 2-3 4-5", "" },
    { "Straße", "strasse", "0", "0-7", "0-6", "" },
    { "\xc7\x85", "d\xc5\xbe", "0", "0-2", "0-1", "" }, /* titlecase digraph */
    { "Ωμέγα Привет", "ωμέγα привет", "0 1", "0-10 11-23", "0-5 6-12", "" },
    { "ab\xc2\xad" "cd", "abcd", "0", "0-6", "0-5", "" }, /* soft hyphen is ignorable */
    /* Punctuation and spaces separate; runs of them are nothing. */
    { "a...b!!", "a b", "0 1", "0-1 4-5", "0-1 4-5", "" },
    { "...!!!---", "", "", "", "", "" },
    { "Hello,World", "hello world", "0 1", "0-5 6-11", "0-5 6-11", "" },
    { "e-mail's x1y2 3.14", "e mail s x1y2 3 14", "0 1 2 3 4 5",
      "0-1 2-6 7-8 9-13 14-15 16-18", "0-1 2-6 7-8 9-13 14-15 16-18", "" },
    { "\tTab\nNew\r\n", "tab new", "0 1", "1-4 5-8", "1-4 5-8", "" },
    { "「引号」《书名》", "引号 书名", "0 2", "3-9 15-21", "1-3 5-7", "引号书名" },
    /* Emoji are dropped, with their modifiers and joiners. */
    { "\xf0\x9f\x98\x80", "", "", "", "", "" },
    { "a\xf0\x9f\x98\x80" "b", "a b", "0 1", "0-1 5-6", "0-1 2-3", "" },
    { "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9"
      "\xf0\x9f\x87\xa8\xf0\x9f\x87\xb3 \xe2\x9d\xa4\xef\xb8\x8f", "", "", "", "", "" },
    { "猫\xf0\x9f\x90\xb1狗", "猫 狗", "0 2", "0-3 7-10", "0-1 2-3", "猫狗" },
    { "", "", "", "", "", "" },
    /* Supplementary-plane ideographs (CJK Extension B). */
    { "\xf0\xa0\x80\x80\xf0\xa0\x80\x81", "\xf0\xa0\x80\x80\xf0\xa0\x80\x81", "0", "0-8", "0-2",
      "\xf0\xa0\x80\x80\xf0\xa0\x80\x81" },
};

#define N_CASES (sizeof cases / sizeof cases[0])

static void run_case(size_t i, const char *text, size_t len)
{
    struct collect c = { 0 };
    struct lists *l = malloc(sizeof *l);

    assert_non_null(l);
    assert_int_equal(tokenize(text, len, 0, 0, collect_token, &c), 0);
    check_invariants(text, len, 0, &c);
    lists_of(&c, l);
    if (strcmp(l->terms, cases[i].terms) || strcmp(l->positions, cases[i].positions) ||
        strcmp(l->bytes, cases[i].bytes) || strcmp(l->chars, cases[i].chars) ||
        strcmp(l->hidden, cases[i].cjk))
        fail_msg("case %zu \"%s\":\n  terms     got \"%s\" want \"%s\"\n"
                 "  positions got \"%s\" want \"%s\"\n  bytes     got \"%s\" want \"%s\"\n"
                 "  chars     got \"%s\" want \"%s\"\n  hidden    got \"%s\" want \"%s\"",
                 i, cases[i].text, l->terms, cases[i].terms, l->positions, cases[i].positions,
                 l->bytes, cases[i].bytes, l->chars, cases[i].chars, l->hidden, cases[i].cjk);
    free(l);
    collect_fini(&c);
}

static void test_tokenize_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CASES; i++)
        run_case(i, cases[i].text, strlen(cases[i].text));
}

static void test_tokenize_reads_only_len_bytes(void **state)
{
    (void)state;
    /* Exact-size heap copies without a NUL: ASan reports any read past them. */
    for (size_t i = 0; i < N_CASES; i++) {
        size_t len = strlen(cases[i].text);
        char *copy = malloc(len ? len : 1);
        assert_non_null(copy);
        memcpy(copy, cases[i].text, len);
        run_case(i, copy, len);
        free(copy);
    }

    /* A length shorter than the string ends the text there. */
    struct collect c = { 0 };
    struct lists l;
    assert_int_equal(tokenize("GPT-4", 3, 0, 0, collect_token, &c), 0);
    lists_of(&c, &l);
    assert_string_equal(l.terms, "gpt");
    collect_fini(&c);
    assert_int_equal(tokenize("GPT-4", 0, 0, 0, collect_token, &c), 0);
    assert_int_equal(c.n, 0);
    collect_fini(&c);
}

static void test_tokenize_cjk_kinds_and_hidden_positions(void **state)
{
    struct collect c = { 0 };
    static const struct {
        const char *term;
        uint32_t position;
        enum token_kind kind;
    } want[] = {
        { "\x01普", 0, TOKEN_CJK_CHAR },  { "\x01惠", 0, TOKEN_CJK_CHAR },
        { "普惠", 0, TOKEN_CJK_BIGRAM },  { "\x01化", 1, TOKEN_CJK_CHAR },
        { "惠化", 1, TOKEN_CJK_BIGRAM },  { "x", 2, TOKEN_WORD },
        { "\x01猫", 3, TOKEN_CJK_CHAR },  { "猫", 3, TOKEN_CJK_SINGLE },
    };

    (void)state;
    assert_int_equal(tokenize("普惠化 x 猫", strlen("普惠化 x 猫"), 0, 0, collect_token, &c), 0);
    assert_int_equal(c.n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < c.n; i++) {
        assert_string_equal(c.toks[i].term, want[i].term);
        assert_int_equal(c.toks[i].position, want[i].position);
        assert_int_equal(c.toks[i].kind, want[i].kind);
    }
    /* The hidden 化 covers exactly its own character. */
    assert_int_equal(c.toks[3].start_byte, 6);
    assert_int_equal(c.toks[3].end_byte, 9);
    assert_int_equal(c.toks[3].start_char, 2);
    assert_int_equal(c.toks[3].end_char, 3);
    collect_fini(&c);
}

static void test_tokenize_every_cjk_char_gets_a_hidden_term(void **state)
{
    static const char text[] = "在北京，AI普惠化！日本語のテキスト한국어";
    static const char *const chars[] = { "在", "北", "京", "普", "惠", "化", "日", "本", "語",
                                         "の", "テ", "キ", "ス", "ト", "한", "국", "어" };
    struct collect c = { 0 };
    size_t hidden = 0;

    (void)state;
    assert_int_equal(tokenize(text, strlen(text), 0, 0, collect_token, &c), 0);
    check_invariants(text, strlen(text), 0, &c);
    for (size_t i = 0; i < c.n; i++) {
        if (c.toks[i].kind != TOKEN_CJK_CHAR)
            continue;
        assert_true(hidden < sizeof chars / sizeof chars[0]);
        assert_int_equal(c.toks[i].term[0], '\x01');
        assert_string_equal(c.toks[i].term + 1, chars[hidden]);
        /* Its range in the text is that very character. */
        assert_int_equal(c.toks[i].end_byte - c.toks[i].start_byte, strlen(chars[hidden]));
        assert_memory_equal(text + c.toks[i].start_byte, chars[hidden], strlen(chars[hidden]));
        hidden++;
    }
    assert_int_equal(hidden, sizeof chars / sizeof chars[0]);
    collect_fini(&c);
}

static void test_tokenize_combining_accent_equals_precomposed(void **state)
{
    static const char *const spellings[] = {
        "cafe\xcc\x81", "caf\xc3\xa9", "CAFE\xcc\x81", "CAF\xc3\x89", "Caf\xc3\xa9",
    };

    (void)state;
    for (size_t i = 0; i < sizeof spellings / sizeof spellings[0]; i++) {
        struct collect c = { 0 };
        assert_int_equal(tokenize(spellings[i], strlen(spellings[i]), 0, 0, collect_token, &c), 0);
        assert_int_equal(c.n, 1);
        assert_int_equal(c.toks[0].term_len, 5);
        assert_memory_equal(c.toks[0].term, "caf\xc3\xa9", 5);
        assert_int_equal(c.toks[0].end_byte, strlen(spellings[i]));
        collect_fini(&c);
    }
}

static void test_tokenize_adds_first_position(void **state)
{
    struct collect c = { 0 };
    struct lists l;

    (void)state;
    assert_int_equal(tokenize("Bedrock普惠化 猫", strlen("Bedrock普惠化 猫"), 100, 0, collect_token,
                              &c),
                     0);
    check_invariants("Bedrock普惠化 猫", strlen("Bedrock普惠化 猫"), 100, &c);
    lists_of(&c, &l);
    assert_string_equal(l.terms, "bedrock 普惠 惠化 猫");
    assert_string_equal(l.positions, "100 101 102 104"); /* 猫 after a gap */
    collect_fini(&c);
}

/*
 * A CJK run that follows another CJK run with only separators between starts
 * one position further than the next free one, so that the bigrams of the
 * two runs are never adjacent and a phrase cannot span them ("普惠化" must not
 * match "普惠，惠化"). No gap between a CJK run and a word (either way round),
 * nor inside a run.
 */
static void test_tokenize_gap_between_cjk_runs_only(void **state)
{
    static const struct {
        const char *text;
        uint32_t first_position;
        const char *terms, *positions;
    } want[] = {
        /* the gap: exactly one position, after separators of any kind */
        { "普惠，惠化", 0, "普惠 惠化", "0 2" },
        { "普惠 惠化", 0, "普惠 惠化", "0 2" },
        { "한국어 검색", 0, "한국 국어 검색", "0 1 3" },
        { "马斯克：“诉讼", 0, "马斯 斯克 诉讼", "0 1 3" },
        { "猫，狗", 0, "猫 狗", "0 2" },             /* single characters too */
        { "猫\xf0\x9f\x90\xb1狗", 0, "猫 狗", "0 2" }, /* an emoji separates */
        { "甲乙。丙丁。戊己", 0, "甲乙 丙丁 戊己", "0 2 4" }, /* one gap per boundary */
        { "普惠，惠化", 10, "普惠 惠化", "10 12" },
        /* no gap: CJK then a word, a word then CJK, a word between two runs */
        { "普惠 AI", 0, "普惠 ai", "0 1" },
        { "普惠，AI", 0, "普惠 ai", "0 1" },
        { "普惠AI", 0, "普惠 ai", "0 1" },
        { "AI 普惠", 0, "ai 普惠", "0 1" },
        { "AI，普惠", 0, "ai 普惠", "0 1" },
        { "普惠 x 惠化", 0, "普惠 x 惠化", "0 1 2" },
        { "猫 2023 狗", 0, "猫 2023 狗", "0 1 2" },
        /* no gap inside a run, however long, nor across an ignorable character */
        { "普惠化", 0, "普惠 惠化", "0 1" },
        { "日本語のテキスト", 0, "日本 本語 語の のテ テキ キス スト", "0 1 2 3 4 5 6" },
        { "普\xc2\xad惠化", 0, "普惠 惠化", "0 1" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *text = want[i].text;
        struct collect c = { 0 };
        struct lists *l = malloc(sizeof *l);
        assert_non_null(l);
        assert_int_equal(tokenize(text, strlen(text), want[i].first_position, 0, collect_token, &c),
                         0);
        check_invariants(text, strlen(text), want[i].first_position, &c);
        lists_of(&c, l);
        if (strcmp(l->terms, want[i].terms) || strcmp(l->positions, want[i].positions))
            fail_msg("\"%s\" from %u: terms got \"%s\" want \"%s\", positions got \"%s\" "
                     "want \"%s\"",
                     text, want[i].first_position, l->terms, want[i].terms, l->positions,
                     want[i].positions);
        /* Hidden terms of a run share the positions of that run's bigrams. */
        for (size_t k = 0; k < c.n; k++) {
            if (c.toks[k].kind != TOKEN_CJK_CHAR)
                continue;
            bool in_visible = false;
            for (size_t v = 0; v < c.n && !in_visible; v++)
                in_visible = c.toks[v].kind != TOKEN_CJK_CHAR &&
                             c.toks[v].kind != TOKEN_WORD &&
                             c.toks[v].position == c.toks[k].position &&
                             c.toks[v].start_byte <= c.toks[k].start_byte &&
                             c.toks[k].end_byte <= c.toks[v].end_byte;
            assert_true(in_visible);
        }
        free(l);
        collect_fini(&c);
    }

    /* The gap itself: 普惠 and 惠化 of "普惠，惠化" are two positions apart,
     * while in "普惠化" they are adjacent. */
    struct collect c = { 0 };
    assert_int_equal(tokenize("普惠，惠化", strlen("普惠，惠化"), 0, 0, collect_token, &c), 0);
    uint32_t first = UINT32_MAX, second = UINT32_MAX;
    for (size_t k = 0; k < c.n; k++) {
        if (c.toks[k].kind == TOKEN_CJK_BIGRAM && !strcmp(c.toks[k].term, "普惠"))
            first = c.toks[k].position;
        if (c.toks[k].kind == TOKEN_CJK_BIGRAM && !strcmp(c.toks[k].term, "惠化"))
            second = c.toks[k].position;
    }
    assert_int_equal(first, 0);
    assert_int_equal(second, first + 2);
    collect_fini(&c);
    assert_int_equal(tokenize("普惠化", strlen("普惠化"), 0, 0, collect_token, &c), 0);
    first = second = UINT32_MAX;
    for (size_t k = 0; k < c.n; k++) {
        if (c.toks[k].kind == TOKEN_CJK_BIGRAM && !strcmp(c.toks[k].term, "普惠"))
            first = c.toks[k].position;
        if (c.toks[k].kind == TOKEN_CJK_BIGRAM && !strcmp(c.toks[k].term, "惠化"))
            second = c.toks[k].position;
    }
    assert_int_equal(first, 0);
    assert_int_equal(second, first + 1);
    collect_fini(&c);
}

/* ---- over-long words ---- */

static char *repeat(const char *unit, size_t times, size_t *len)
{
    size_t unit_len = strlen(unit);
    char *s = malloc(unit_len * times + 1);

    assert_non_null(s);
    for (size_t i = 0; i < times; i++)
        memcpy(s + i * unit_len, unit, unit_len);
    s[unit_len * times] = '\0';
    *len = unit_len * times;
    return s;
}

static void test_tokenize_splits_over_long_words(void **state)
{
    static const struct {
        const char *unit;
        size_t times;
        const char *bytes, *chars;
    } long_cases[] = {
        { "a", TOKEN_MAX_BYTES, "0-255", "0-255" },
        { "a", TOKEN_MAX_BYTES + 1, "0-255 255-256", "0-255 255-256" },
        { "a", 300, "0-255 255-300", "0-255 255-300" },
        { "x", 1000, "0-255 255-510 510-765 765-1000", "0-255 255-510 510-765 765-1000" },
        /* two-byte letters: a split never cuts a character */
        { "\xc3\xa9", 200, "0-254 254-400", "0-127 127-200" },
        /* three-byte letters */
        { "\xd0\xb6\xe0\xa4\x95", 60, "0-255 255-300", "0-102 102-120" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof long_cases / sizeof long_cases[0]; i++) {
        size_t len;
        char *text = repeat(long_cases[i].unit, long_cases[i].times, &len);
        struct collect c = { 0 };
        struct lists *l = malloc(sizeof *l);
        assert_non_null(l);
        assert_int_equal(tokenize(text, len, 0, 0, collect_token, &c), 0);
        check_invariants(text, len, 0, &c);
        lists_of(&c, l);
        if (strcmp(l->bytes, long_cases[i].bytes) || strcmp(l->chars, long_cases[i].chars))
            fail_msg("%zu x \"%s\": bytes got \"%s\" want \"%s\", chars got \"%s\" want \"%s\"",
                     long_cases[i].times, long_cases[i].unit, l->bytes, long_cases[i].bytes,
                     l->chars, long_cases[i].chars);
        /* Each piece is at most TOKEN_MAX_BYTES, and together they are the text. */
        size_t at = 0;
        for (size_t k = 0; k < c.n; k++) {
            assert_int_equal(c.toks[k].kind, TOKEN_WORD);
            assert_true(c.toks[k].term_len <= TOKEN_MAX_BYTES);
            assert_int_equal(c.toks[k].position, k);
            assert_true(at + c.toks[k].term_len <= len);
            assert_memory_equal(text + at, c.toks[k].term, c.toks[k].term_len);
            at += c.toks[k].term_len;
        }
        assert_int_equal(at, len);
        free(l);
        collect_fini(&c);
        free(text);
    }
}

static void test_tokenize_long_word_keeps_words_around_it(void **state)
{
    size_t len;
    char *a = repeat("a", 256, &len);
    char text[300];
    struct collect c = { 0 };
    struct lists l;

    (void)state;
    int n = snprintf(text, sizeof text, "x %s 猫", a);
    assert_true(n > 0 && (size_t)n < sizeof text);
    assert_int_equal(tokenize(text, (size_t)n, 0, 0, collect_token, &c), 0);
    lists_of(&c, &l);
    assert_string_equal(l.positions, "0 1 2 3");
    assert_string_equal(l.bytes, "0-1 2-257 257-258 259-262");
    collect_fini(&c);
    free(a);
}

/*
 * Regression: each code point is normalized alone, so NFKC compositions across code
 * points that the tokenizer does not treat as "a word and its marks" are
 * lost: the voicing mark after kana (half-width U+FF9E, or U+3099) is a mark
 * with no word before it and is dropped, and conjoining Hangul jamo stay
 * separate CJK characters. NFKC("ｶﾞｿﾞｳ") is "ガゾウ", NFKC("か" U+3099) is
 * "が", NFKC(U+1100 U+1161 U+11A8) is "각".
 */
static void test_tokenize_composes_kana_voicing_and_jamo(void **state)
{
    static const struct {
        const char *text, *terms;
    } want[] = {
        { "ｶﾞｿﾞｳ", "ガゾ ゾウ" },
        { "\xe3\x81\x8b\xe3\x82\x99", "が" },
        { "\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8", "각" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        struct collect c = { 0 };
        struct lists l;
        assert_int_equal(tokenize(want[i].text, strlen(want[i].text), 0, 0, collect_token, &c), 0);
        lists_of(&c, &l);
        assert_string_equal(l.terms, want[i].terms);
        collect_fini(&c);
    }
}

/*
 * Regression: a word split at TOKEN_MAX_BYTES can cut between a letter and its
 * combining marks, so the next piece starts with bare marks: 254 x "a",
 * then "e" U+0301 U+0301 "x" gives a second term U+0301 U+0301 "x".
 */
static void test_tokenize_split_keeps_marks_with_their_letter(void **state)
{
    size_t len;
    char *a = repeat("a", TOKEN_MAX_BYTES - 1, &len);
    char text[TOKEN_MAX_BYTES + 16];
    struct collect c = { 0 };

    (void)state;
    int n = snprintf(text, sizeof text, "%se\xcc\x81\xcc\x81x", a);
    assert_true(n > 0 && (size_t)n < sizeof text);
    assert_int_equal(tokenize(text, (size_t)n, 0, 0, collect_token, &c), 0);
    for (size_t i = 0; i < c.n; i++)
        assert_false(c.toks[i].term_len >= 2 && (unsigned char)c.toks[i].term[0] == 0xcc);
    collect_fini(&c);
    free(a);
}

/* ---- early stop ---- */

static void test_tokenize_stops_when_callback_returns_non_zero(void **state)
{
    static const char text[] = "one two 普惠化 three";
    struct collect all = { 0 };

    (void)state;
    assert_int_equal(tokenize(text, strlen(text), 0, 0, collect_token, &all), 0);
    assert_int_equal(all.n, 8); /* one two, 3 hidden + 2 bigrams, three */
    for (size_t stop = 1; stop <= all.n; stop++) {
        struct collect c = { .stop_after = stop, .stop_rc = 40 + (int)stop };
        assert_int_equal(tokenize(text, strlen(text), 0, 0, collect_token, &c), 40 + (int)stop);
        assert_int_equal(c.n, stop); /* not called again after it said stop */
        for (size_t k = 0; k < c.n; k++) {
            assert_string_equal(c.toks[k].term, all.toks[k].term);
            assert_int_equal(c.toks[k].position, all.toks[k].position);
        }
        collect_fini(&c);
    }
    /* A negative value is passed through as well. */
    struct collect neg = { .stop_after = 1, .stop_rc = -3 };
    assert_int_equal(tokenize(text, strlen(text), 0, 0, collect_token, &neg), -3);
    assert_int_equal(neg.n, 1);
    collect_fini(&neg);
    collect_fini(&all);
}

/* ---- invalid UTF-8 given to tokenize() anyway ---- */

static void test_tokenize_treats_invalid_bytes_as_separators(void **state)
{
    static const struct {
        const char *text;
        size_t len; /* 0: strlen */
        const char *terms, *bytes;
    } bad[] = {
        { "ab\xff" "cd", 0, "ab cd", "0-2 3-5" },
        { "ab\xc0\x80" "cd", 0, "ab cd", "0-2 4-6" },
        { "\xe6\x99", 0, "", "" },
        { "猫\xe6\x99", 0, "猫", "0-3" },
        { "x\xed\xa0\x80y", 0, "x y", "0-1 4-5" },
        { "a\0b", 3, "a b", "0-1 2-3" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = bad[i].len ? bad[i].len : strlen(bad[i].text);
        char *copy = malloc(len);
        assert_non_null(copy);
        memcpy(copy, bad[i].text, len);
        struct collect c = { 0 };
        struct lists l;
        assert_int_equal(tokenize(copy, len, 0, 0, collect_token, &c), 0);
        lists_of(&c, &l);
        if (strcmp(l.terms, bad[i].terms) || strcmp(l.bytes, bad[i].bytes))
            fail_msg("bad case %zu: terms got \"%s\" want \"%s\", bytes got \"%s\" want \"%s\"",
                     i, l.terms, bad[i].terms, l.bytes, bad[i].bytes);
        collect_fini(&c);
        free(copy);
    }
}

/* ---- utf8_check ---- */

static const struct {
    const char *what;
    const char *bytes;
    size_t len;
    bool valid;
    size_t bad_offset;
} utf8_cases[] = {
    { "empty", "", 0, true, 0 },
    { "ascii", "hello", 5, true, 0 },
    { "two three four bytes", "\xc3\xa9\xe6\x99\xae\xf0\x9f\x98\x80", 9, true, 0 },
    { "highest scalar U+10FFFF", "\xf4\x8f\xbf\xbf", 4, true, 0 },
    { "U+FFFF noncharacter is still UTF-8", "\xef\xbf\xbf", 3, true, 0 },
    { "NUL first", "\0a", 2, false, 0 },
    { "NUL inside", "ab\0c", 4, false, 2 },
    { "NUL last", "abc\0", 4, false, 3 },
    { "lone continuation", "\x80", 1, false, 0 },
    { "continuation after ascii", "ab\xbf", 3, false, 2 },
    { "truncated 2-byte at end", "ab\xc3", 3, false, 2 },
    { "truncated 3-byte, 1 of 3", "普\xe6", 4, false, 3 },
    { "truncated 3-byte, 2 of 3", "普\xe6\x99", 5, false, 3 },
    { "truncated 4-byte, 3 of 4", "x\xf0\x9f\x98", 4, false, 1 },
    { "3-byte cut by ascii", "\xe6\x99" "a", 3, false, 0 },
    { "4-byte cut by a new lead", "\xf0\x9f\xe6\x99\xae", 5, false, 0 },
    { "overlong NUL C0 80", "a\xc0\x80", 3, false, 1 },
    { "overlong C1 BF", "\xc1\xbf", 2, false, 0 },
    { "overlong 3-byte '/'", "\xe0\x80\xaf", 3, false, 0 },
    { "overlong 3-byte U+07FF", "ok\xe0\x9f\xbf", 5, false, 2 },
    { "overlong 4-byte", "\xf0\x80\x80\xaf", 4, false, 0 },
    { "overlong 4-byte U+FFFF", "\xf0\x8f\xbf\xbf", 4, false, 0 },
    { "surrogate D800", "a\xed\xa0\x80", 4, false, 1 },
    { "surrogate DFFF", "\xed\xbf\xbf", 3, false, 0 },
    { "surrogate pair as CESU-8", "\xed\xa0\xbd\xed\xb8\x80", 6, false, 0 },
    { "past U+10FFFF", "\xf4\x90\x80\x80", 4, false, 0 },
    { "F5 lead", "\xf5\x80\x80\x80", 4, false, 0 },
    { "FE and FF", "\xfe\xff", 2, false, 0 },
    { "5-byte form", "\xf8\x88\x80\x80\x80", 5, false, 0 },
    { "bad after valid CJK", "普惠\xff化", 10, false, 6 },
};

/* ---- simplified/traditional folding ---- */

/* The visible terms of text under flags, with lists_of(). */
static void terms_of(const char *text, unsigned flags, struct lists *l)
{
    struct collect c = { 0 };

    assert_int_equal(tokenize(text, strlen(text), 0, flags, collect_token, &c), 0);
    check_invariants(text, strlen(text), 0, &c);
    lists_of(&c, l);
    collect_fini(&c);
}

static void test_tokenize_folds_traditional_to_simplified(void **state)
{
    static const struct {
        const char *traditional, *simplified, *terms, *forms;
    } pairs[] = {
        { "馬斯克", "马斯克", "马斯 斯克", "馬" },
        { "香港貿發局", "香港贸发局", "香港 港贸 贸发 发局", "貿發" },
        /* one-to-many: 發 (emit) and 髮 (hair) both fold to 发, 後 to 后 */
        { "頭髮", "头发", "头发", "頭髮" },
        { "發展", "发展", "发展", "發" },
        { "後來", "后来", "后来", "後來" },
        /* TW and HK variant forms fold too */
        { "裡面", "里面", "里面", "裡" },
        { "為了", "为了", "为了", "為" },
        /* a lone character and a hidden one-character term */
        { "龍", "龙", "龙", "龍" },
    };
    struct lists *a = malloc(sizeof *a), *b = malloc(sizeof *b);

    (void)state;
    assert_non_null(a);
    assert_non_null(b);
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        terms_of(pairs[i].traditional, TOKENIZE_FOLD_VARIANTS, a);
        terms_of(pairs[i].simplified, TOKENIZE_FOLD_VARIANTS, b);
        if (strcmp(a->terms, pairs[i].terms) || strcmp(b->terms, pairs[i].terms) ||
            strcmp(a->hidden, b->hidden))
            fail_msg("%s / %s: got \"%s\" / \"%s\" (hidden %s / %s), want \"%s\"",
                     pairs[i].traditional, pairs[i].simplified, a->terms, b->terms, a->hidden,
                     b->hidden, pairs[i].terms);
        /* offsets still point at the original characters */
        assert_string_equal(a->chars, b->chars);
        /* the characters folding changed are kept as written, for ranking */
        assert_string_equal(a->forms, pairs[i].forms);
        assert_string_equal(b->forms, "");
        /* without folding the forms stay apart */
        terms_of(pairs[i].traditional, 0, a);
        terms_of(pairs[i].simplified, 0, b);
        assert_string_not_equal(a->terms, b->terms);
    }
    /* simplified text, Latin text and kana are left as they are */
    terms_of("中华人民共和国 AI テキスト", TOKENIZE_FOLD_VARIANTS, a);
    terms_of("中华人民共和国 AI テキスト", 0, b);
    assert_string_equal(a->terms, b->terms);
    free(a);
    free(b);
}

/* Folding twice is folding once, so documents and queries meet whatever form they used. */
static void test_fold_is_idempotent_and_simplified_is_stable(void **state)
{
    (void)state;
    for (uint32_t i = 0; i < variant_fold_count; i++) {
        int32_t to = variant_fold(variant_fold_from[i]);
        assert_int_not_equal(to, variant_fold_from[i]);
        assert_int_equal(variant_fold(to), to);
        if (i)
            assert_true(variant_fold_from[i - 1] < variant_fold_from[i]);
    }
    assert_true(variant_fold_count > 3000);
    for (int32_t cp = 0; cp < 0x80; cp++)
        assert_int_equal(variant_fold(cp), cp);
    assert_int_equal(variant_fold(0x9A6C /* 马 */), 0x9A6C);
    assert_int_equal(variant_fold(0x99AC /* 馬 */), 0x9A6C);
}

static void test_utf8_check_finds_first_bad_byte(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof utf8_cases / sizeof utf8_cases[0]; i++) {
        size_t len = utf8_cases[i].len;
        char *copy = malloc(len ? len : 1); /* exact size: ASan sees overreads */
        size_t bad = 9999;
        assert_non_null(copy);
        memcpy(copy, utf8_cases[i].bytes, len);
        bool valid = utf8_check(copy, len, &bad);
        if (valid != utf8_cases[i].valid)
            fail_msg("%s: valid got %d want %d", utf8_cases[i].what, valid, utf8_cases[i].valid);
        if (!valid && bad != utf8_cases[i].bad_offset)
            fail_msg("%s: bad_offset got %zu want %zu", utf8_cases[i].what, bad,
                     utf8_cases[i].bad_offset);
        if (valid && bad != 9999)
            fail_msg("%s: bad_offset written for valid text", utf8_cases[i].what);
        (void)utf8_check(copy, len, NULL); /* NULL bad_offset is allowed */
        free(copy);
    }
}

static void test_utf8_check_every_prefix_of_multibyte_text(void **state)
{
    static const char text[] = "a普\xf0\x9f\x98\x80é";
    /* The byte offset where each prefix length stops being valid, or valid. */
    static const struct {
        size_t len;
        bool valid;
        size_t bad_offset;
    } prefixes[] = {
        { 0, true, 0 }, { 1, true, 0 }, { 2, false, 1 }, { 3, false, 1 }, { 4, true, 0 },
        { 5, false, 4 }, { 6, false, 4 }, { 7, false, 4 }, { 8, true, 0 }, { 9, false, 8 },
        { 10, true, 0 },
    };

    (void)state;
    assert_int_equal(strlen(text), 10);
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        size_t bad = 9999;
        assert_int_equal(utf8_check(text, prefixes[i].len, &bad), prefixes[i].valid);
        if (!prefixes[i].valid)
            assert_int_equal(bad, prefixes[i].bad_offset);
    }
}

static void test_utf8_count_chars_counts_code_points(void **state)
{
    static const struct {
        const char *text;
        size_t chars;
    } counts[] = {
        { "", 0 },          { "abc", 3 },          { "é", 1 },
        { "普惠化", 3 },    { "a普b", 3 },         { "\xf0\x9f\x98\x80", 1 },
        { "cafe\xcc\x81", 5 }, { "ＡＩ GPT-4", 8 },
    };

    (void)state;
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        assert_int_equal(utf8_count_chars(counts[i].text, strlen(counts[i].text)),
                         counts[i].chars);
    assert_int_equal(utf8_count_chars("普惠化", 6), 2); /* a prefix */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokenize_table),
        cmocka_unit_test(test_tokenize_reads_only_len_bytes),
        cmocka_unit_test(test_tokenize_cjk_kinds_and_hidden_positions),
        cmocka_unit_test(test_tokenize_every_cjk_char_gets_a_hidden_term),
        cmocka_unit_test(test_tokenize_combining_accent_equals_precomposed),
        cmocka_unit_test(test_tokenize_adds_first_position),
        cmocka_unit_test(test_tokenize_gap_between_cjk_runs_only),
        cmocka_unit_test(test_tokenize_splits_over_long_words),
        cmocka_unit_test(test_tokenize_long_word_keeps_words_around_it),
        cmocka_unit_test(test_tokenize_stops_when_callback_returns_non_zero),
        cmocka_unit_test(test_tokenize_treats_invalid_bytes_as_separators),
        cmocka_unit_test(test_tokenize_folds_traditional_to_simplified),
        cmocka_unit_test(test_fold_is_idempotent_and_simplified_is_stable),
        cmocka_unit_test(test_utf8_check_finds_first_bad_byte),
        cmocka_unit_test(test_utf8_check_every_prefix_of_multibyte_text),
        cmocka_unit_test(test_utf8_count_chars_counts_code_points),
        cmocka_unit_test(test_tokenize_composes_kana_voicing_and_jamo),
        cmocka_unit_test(test_tokenize_split_keeps_marks_with_their_letter),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
