/*
 * Fuzz target: HTTP/1.1 requests from bytes, server/reqparse.h.
 *
 * The input is what a client sends on one connection (requests one after
 * another, pipelined). It is parsed twice, in one piece and one byte at a
 * time, the way reads may split it, and both parses must tell the same
 * story: the same events, heads, bodies and refusal status (the head is assembled
 * from pieces the library hands over wherever reads split them, which is
 * what this checks most). Each head must hold up: the target NUL-terminated
 * and as long as recorded, the origin form starting with "/" (or the target
 * kept), header names tokens, values without CR, LF or NUL and trimmed, a
 * lookup finding the first of a name. A refusal has a status API.md lists.
 */
#include "tests/fuzz/fuzz.h"

#include "server/reqparse.h"

/* Body bytes kept per request; past this the body is refused, as a route's limit does. */
#define FUZZ_BODY_MAX (1u << 16)

/* The story of a parse, as bytes. */
struct story {
    char *p;
    size_t len, cap;
    size_t body_len; /* of the request in progress */
};

static void tell(struct story *s, const void *p, size_t len)
{
    if (s->len + len > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + len)
            cap *= 2;
        s->p = realloc(s->p, cap);
        FUZZ_CHECK(s->p != NULL, "out of memory");
        s->cap = cap;
    }
    memcpy(s->p + s->len, p, len);
    s->len += len;
}

static void tells(struct story *s, const char *text)
{
    tell(s, text, strlen(text) + 1);
}

/* Keeps body bytes up to the limit, then refuses: however the bytes come in
 * pieces, the same ones are kept. */
static int take_body(void *arg, const char *p, size_t len)
{
    struct story *s = arg;
    size_t room = FUZZ_BODY_MAX - s->body_len, kept = len < room ? len : room;

    s->body_len += kept;
    tell(s, p, kept);
    return kept < len ? -1 : 0;
}

static bool is_token_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static void check_head(const struct reqparse *rp, struct story *s)
{
    const char *target = reqparse_target(rp), *uri = reqparse_uri(rp);

    FUZZ_CHECK(rp->target_len > 0 && strlen(target) == rp->target_len, "target of %zu bytes, "
               "recorded %u", strlen(target), rp->target_len);
    FUZZ_CHECK(uri[0] == '/' || uri == target, "origin form \"%.40s\" of \"%.40s\"", uri,
               target);
    tells(s, "head");
    tells(s, target);
    tells(s, uri);
    for (size_t i = 0; i < rp->n_headers; i++) {
        const struct reqparse_header *h = &rp->headers[i];
        const char *name = rp->head + h->name_off, *value = rp->head + h->value_off;
        FUZZ_CHECK(h->name_len > 0 && strlen(name) == h->name_len, "header %zu's name", i);
        for (size_t k = 0; k < h->name_len; k++)
            FUZZ_CHECK(is_token_char((unsigned char)name[k]), "header name \"%.40s\"", name);
        FUZZ_CHECK(strlen(value) == h->value_len, "header %zu's value has a NUL", i);
        FUZZ_CHECK(!strpbrk(value, "\r\n"), "header %zu's value has CR or LF", i);
        FUZZ_CHECK(!h->value_len || (value[h->value_len - 1] != ' ' &&
                                     value[h->value_len - 1] != '\t'),
                   "header %zu's value is not trimmed", i);
        size_t first = 0;
        while (reqparse_header(rp, name) != rp->head + rp->headers[first].value_off)
            first++;
        FUZZ_CHECK(first <= i && reqparse_header_count(rp, name) >= 1, "lookup of %.40s", name);
        tells(s, name);
        tells(s, value);
    }
}

/* Parses data in pieces of step bytes (0: whole), telling s what happens. */
static void parse(const uint8_t *data, size_t size, size_t step, struct story *s)
{
    struct reqparse rp;
    size_t at = 0;
    char why[300];
    bool stop = false;

    reqparse_init(&rp, take_body, s);
    while (at < size && !stop) {
        size_t len = step && step < size - at ? step : size - at, used;
        enum reqparse_event ev = reqparse_feed(&rp, (const char *)data + at, len, &used);
        FUZZ_CHECK(used <= len, "used %zu of %zu", used, len);
        at += used;
        switch (ev) {
        case REQPARSE_MORE:
            stop = used == 0; /* cannot go on (an upgrade's bytes) */
            break;
        case REQPARSE_HEAD:
            check_head(&rp, s);
            break;
        case REQPARSE_MESSAGE:
            tells(s, "message");
            tell(s, &s->body_len, sizeof s->body_len);
            s->body_len = 0;
            stop = rp.parser.upgrade; /* what follows is another protocol */
            reqparse_next(&rp);
            break;
        case REQPARSE_ERROR: {
            int status = reqparse_error(&rp, why, sizeof why);
            FUZZ_CHECK(status == 0 || status == 400 || status == 414 || status == 431 ||
                           status == 500 || status == 501,
                       "status %d", status);
            FUZZ_CHECK(status != 500, "out of memory on %zu bytes", size);
            FUZZ_CHECK(why[0] != '\0', "no reason for %d", status);
            /* the status, not the message: which check fires first, the library's or
             * ours, may depend on where the reads split a header name */
            tells(s, "error");
            tell(s, &status, sizeof status);
            stop = true;
            break;
        }
        }
    }
    tells(s, "end");
    reqparse_fini(&rp);
}

/* A story on stderr, for the failure message. */
static void print_story(const char *name, const struct story *s)
{
    fprintf(stderr, "%s: ", name);
    for (size_t i = 0; i < s->len; i++) {
        unsigned char ch = (unsigned char)s->p[i];
        if (ch == 0)
            fputs(" | ", stderr);
        else if (ch < 0x20 || ch >= 0x7f)
            fprintf(stderr, "\\x%02x", ch);
        else
            fputc(ch, stderr);
    }
    fputc('\n', stderr);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    reqparse_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct story whole = { 0 }, bytewise = { 0 };

    parse(data, size, 0, &whole);
    parse(data, size, 1, &bytewise);
    if (whole.len != bytewise.len || memcmp(whole.p, bytewise.p, whole.len)) {
        print_story("whole", &whole);
        print_story("byte by byte", &bytewise);
    }
    FUZZ_CHECK(whole.len == bytewise.len && !memcmp(whole.p, bytewise.p, whole.len),
               "parsed whole and byte by byte, %zu bytes tell different stories (%zu and %zu "
               "bytes)", size, whole.len, bytewise.len);
    free(whole.p);
    free(bytewise.p);
    return 0;
}
