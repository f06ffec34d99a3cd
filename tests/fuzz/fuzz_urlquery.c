/*
 * Fuzz target: percent-decoding, server/urlquery.h.
 *
 * The input is a path or query string. url_decode() is compared, in both
 * modes, with a plain decoder written from urlquery.h's contract (%XX with
 * two hex digits, not %00; no raw NUL; + as space for query strings): same
 * result or same refusal, decoded length never above the input's, a NUL
 * after the value and none inside. url_query_parse() must split the input
 * at & and the first = of each part exactly as decoding the parts one by
 * one does, keep at most URLQUERY_MAX_PARAMS, and say why when it refuses;
 * url_query_get() must find the first parameter of each name.
 */
#include "tests/fuzz/fuzz.h"

#include "server/urlquery.h"

static int plain_hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The contract of url_decode(), written the simple way. */
static long plain_decode(const unsigned char *s, size_t len, unsigned char *out, bool plus)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        if (s[i] == 0)
            return -1;
        if (s[i] == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = plain_hex(s[i + 1]), lo = plain_hex(s[i + 2]);
            if (hi < 0 || lo < 0 || hi * 16 + lo == 0)
                return -1;
            out[o++] = (unsigned char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = plus && s[i] == '+' ? ' ' : s[i];
        }
    }
    return (long)o;
}

static void check_decoded(const char *got, long n, size_t in_len)
{
    FUZZ_CHECK(n >= 0 && (size_t)n <= in_len, "decoded %ld bytes from %zu", n, in_len);
    FUZZ_CHECK(got[n] == '\0', "no NUL after the value");
    FUZZ_CHECK(!memchr(got, '\0', (size_t)n), "NUL inside a decoded value");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    /* exactly the room url_decode() asks for: ASan sees a byte too many */
    char *dst = malloc(size + 1);
    unsigned char *ref = malloc(size + 1);

    FUZZ_CHECK(dst && ref, "out of memory");
    for (int plus = 0; plus <= 1; plus++) {
        long n = url_decode(s, size, dst, plus);
        long want = plain_decode(data, size, ref, plus);
        FUZZ_CHECK(n == want, "url_decode gave %ld, expected %ld (plus %d)", n, want, plus);
        if (n >= 0) {
            check_decoded(dst, n, size);
            FUZZ_CHECK(!memcmp(dst, ref, (size_t)n), "url_decode gave other bytes (plus %d)",
                       plus);
        }
    }

    struct url_query q;
    const char *why = NULL;
    bool ok = url_query_parse(s, size, &q, &why);

    /* the same split, done the plain way */
    size_t n_parts = 0;
    bool want_ok = true;
    for (size_t i = 0; i <= size && want_ok && size;) {
        size_t end = i;
        while (end < size && data[end] != '&')
            end++;
        if (end > i) {
            const unsigned char *eq = memchr(data + i, '=', end - i);
            size_t name_len = eq ? (size_t)(eq - (data + i)) : end - i;
            size_t val_off = eq ? (size_t)(eq + 1 - data) : end;
            if (n_parts == URLQUERY_MAX_PARAMS) {
                want_ok = false;
                break;
            }
            long n1 = plain_decode(data + i, name_len, ref, true);
            if (n1 < 0) {
                want_ok = false;
                break;
            }
            if (ok) {
                const struct url_param *p = &q.params[n_parts];
                check_decoded(p->name, (long)p->name_len, name_len);
                FUZZ_CHECK((long)p->name_len == n1 && !memcmp(p->name, ref, (size_t)n1),
                           "parameter %zu: name differs", n_parts);
            }
            long n2 = plain_decode(data + val_off, end - val_off, ref, true);
            if (n2 < 0) {
                want_ok = false;
                break;
            }
            if (ok) {
                const struct url_param *p = &q.params[n_parts];
                check_decoded(p->value, (long)p->value_len, end - val_off);
                FUZZ_CHECK((long)p->value_len == n2 && !memcmp(p->value, ref, (size_t)n2),
                           "parameter %zu: value differs", n_parts);
            }
            n_parts++;
        }
        i = end + 1;
    }
    FUZZ_CHECK(ok == want_ok, "url_query_parse says %d, expected %d", ok, want_ok);
    if (ok) {
        FUZZ_CHECK(q.n == n_parts && q.n <= URLQUERY_MAX_PARAMS, "%zu parameters, expected %zu",
                   q.n, n_parts);
        for (size_t i = 0; i < q.n; i++) {
            const struct url_param *got = url_query_get(&q, q.params[i].name);
            size_t first = 0;
            while (strcmp(q.params[first].name, q.params[i].name))
                first++;
            FUZZ_CHECK(got == &q.params[first], "url_query_get of parameter %zu", i);
        }
    } else {
        FUZZ_CHECK(why != NULL && why[0], "refused without a reason");
    }
    url_query_fini(&q);
    FUZZ_CHECK(q.storage == NULL && q.n == 0, "url_query_fini left state");
    free(ref);
    free(dst);
    return 0;
}
