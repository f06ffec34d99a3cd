/*
 * Tests of server/cache.h, the /search response cache: a put then a get
 * gives back the same bytes and took_at, in a copy of its own;
 * another key (a prefix, one byte changed, bytes after a NUL) misses; a
 * get under another generation misses and drops the entry (its bytes are
 * given back to the shard); an entry is served for less than CACHE_TTL_S
 * seconds after its put and never after; within a shard the least
 * recently used entry (a get counts as a use) goes first, and the whole
 * cache never holds more than its budget allows; a body over a quarter of a
 * shard's budget is not kept and evicts nothing; a second put of a key
 * replaces the first and frees its bytes; tiny budgets (0, 1, 15, 16 bytes)
 * keep nothing and never crash; four threads putting and getting
 * overlapping keys only ever read back bytes put for the key asked for.
 *
 * The budget is split over CACHE_SHARDS shards by a hash of the key that
 * the header does not expose, so the LRU tests find keys that share a shard
 * by behaviour (shard_mates()) instead of copying the hash: entries of
 * MATE_BODY_BYTES are sized so that four fit in a shard of SHARD_BYTES and
 * a fifth evicts one, and a candidate shares a key's shard when putting it
 * after known mates evicts that key.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/cache.h"

#define CACHE_SHARDS 16  /* server/cache.c splits the budget over this many shards */
#define SHARD_BYTES 4096 /* a shard's budget in the LRU tests */
#define BUDGET_BYTES ((size_t)CACHE_SHARDS * SHARD_BYTES)
/*
 * With its key (up to KEY_BYTES) and the entry's bookkeeping (under 180
 * bytes on any ABI we build for; 80 on x86-64), an entry takes more than a
 * fifth of SHARD_BYTES and at most a quarter: four fit in a shard, five do not.
 */
#define MATE_BODY_BYTES 836
#define ENTRIES_PER_SHARD 4
#define KEY_BYTES 8
#define N_CANDIDATES 1000 /* keys tried when looking for shard mates (~62 per shard) */
#define N_MATES 6
#define NS_PER_S 1000000000ull
#define T0_NS (1000 * NS_PER_S) /* the clock at the first put; any value works */

/* ---- helpers ---- */

/* The candidate key number i: "q=i", NUL-terminated in out. */
static size_t key_of(unsigned i, char out[KEY_BYTES])
{
    int n = snprintf(out, KEY_BYTES, "q=%u", i);
    assert_true(n > 0 && n < KEY_BYTES);
    return (size_t)n;
}

/*
 * A body of len bytes that tells its key and version apart from any other:
 * "<seed>" repeated, seed being "key/version;". took_at is derived from
 * both too, so that a mix-up of entries shows in them.
 */
static bool body_make(const char *key, unsigned version, size_t len, struct cached_body *b)
{
    char seed[64];
    int seed_len = snprintf(seed, sizeof seed, "%s/%u;", key, version);

    *b = (struct cached_body){ .data = malloc(len ? len : 1), .len = len };
    if (!b->data || seed_len <= 0 || (size_t)seed_len >= sizeof seed) {
        free(b->data);
        b->data = NULL;
        return false;
    }
    for (size_t i = 0; i < len; i++)
        b->data[i] = seed[i % (size_t)seed_len];
    b->took_at = len ? (version * 7 + strlen(key)) % len : 0;
    return true;
}

/* body_make() or fail the test; on the test's thread only (cmocka is not thread-safe). */
static struct cached_body body_new(const char *key, unsigned version, size_t len)
{
    struct cached_body b;

    assert_true(body_make(key, version, len, &b));
    return b;
}

static bool body_equal(const struct cached_body *a, const struct cached_body *b)
{
    return a->len == b->len && a->took_at == b->took_at &&
           !memcmp(a->data, b->data, a->len);
}

static void put(struct result_cache *c, const char *key, uint64_t generation, uint64_t now_ns,
                const struct cached_body *b)
{
    result_cache_put(c, key, strlen(key), generation, now_ns, b);
}

/* True on a hit; the copy it got is checked against want (when not NULL) and freed. */
static bool get_check(struct result_cache *c, const char *key, uint64_t generation,
                      uint64_t now_ns, const struct cached_body *want)
{
    struct cached_body got = { 0 };

    if (!result_cache_get(c, key, strlen(key), generation, now_ns, &got))
        return false;
    if (want && !body_equal(&got, want))
        fail_msg("key \"%s\": got %zu bytes (took at %zu), want %zu (took at %zu)", key,
                 got.len, got.took_at, want->len, want->took_at);
    free(got.data);
    return true;
}

static bool hit(struct result_cache *c, const char *key)
{
    return get_check(c, key, 1, T0_NS, NULL);
}

/* A fresh cache of BUDGET_BYTES holding keys[0..n) in order, with MATE_BODY_BYTES bodies. */
static struct result_cache *cache_with(char (*keys)[KEY_BYTES], size_t n)
{
    struct result_cache *c = result_cache_new(BUDGET_BYTES);

    assert_non_null(c);
    for (size_t i = 0; i < n; i++) {
        struct cached_body b = body_new(keys[i], 0, MATE_BODY_BYTES);
        put(c, keys[i], 1, T0_NS, &b);
        free(b.data);
    }
    return c;
}

/* Whether putting keys[0..n) in order into a fresh cache leaves keys[0] out. */
static bool first_is_evicted(char (*keys)[KEY_BYTES], size_t n)
{
    struct result_cache *c = cache_with(keys, n);
    bool gone = !hit(c, keys[0]);

    result_cache_free(c);
    return gone;
}

/*
 * Fills mates[0..N_MATES) with keys in one shard, mates[0] being "q=0".
 * While fewer than ENTRIES_PER_SHARD are known, the known ones and then
 * candidates are put until mates[0] is evicted: the candidate that did it is
 * a mate (the mates before it are skipped). From then on a candidate put
 * after four known mates is a mate when it evicts mates[0].
 */
static void shard_mates(char mates[N_MATES][KEY_BYTES])
{
    char try[ENTRIES_PER_SHARD + N_CANDIDATES][KEY_BYTES];
    unsigned next = 1;
    size_t known = 1;

    key_of(0, mates[0]);
    while (known < N_MATES) {
        bool found = false;
        memcpy(try, mates, known * sizeof mates[0]);
        if (known < ENTRIES_PER_SHARD) {
            for (unsigned t = 0; !found && next + t < N_CANDIDATES; t++) {
                key_of(next + t, try[known + t]);
                if (first_is_evicted(try, known + t + 1)) {
                    memcpy(mates[known], try[known + t], KEY_BYTES);
                    known++;
                    next += t + 1;
                    found = true;
                }
            }
        } else {
            for (; !found && next < N_CANDIDATES; next++) {
                key_of(next, try[ENTRIES_PER_SHARD]);
                if (first_is_evicted(try, ENTRIES_PER_SHARD + 1)) {
                    memcpy(mates[known++], try[ENTRIES_PER_SHARD], KEY_BYTES);
                    found = true;
                }
            }
        }
        if (!found)
            fail_msg("%zu keys of the shard of \"q=0\" among %u candidates; want %d", known,
                     N_CANDIDATES, N_MATES);
    }
}

/* ---- hits and misses ---- */

static void test_put_then_get_returns_the_same_bytes_in_a_copy(void **state)
{
    struct result_cache *c = result_cache_new(BUDGET_BYTES);
    static const char key[] = "q=bedrock&limit=5";
    const char text[] = "{\"query\":\"bedrock\",\"total\":2,\"took_ms\":,\"hits\":[]}";
    char *data = malloc(sizeof text - 1);
    struct cached_body got = { 0 };

    (void)state;
    assert_non_null(c);
    assert_non_null(data);
    memcpy(data, text, sizeof text - 1);
    size_t took_at = (size_t)(strstr(text, ",\"hits") - text);
    struct cached_body b = { .data = data, .len = sizeof text - 1, .took_at = took_at };
    assert_false(result_cache_get(c, key, sizeof key - 1, 1, T0_NS, &got)); /* empty */
    result_cache_put(c, key, sizeof key - 1, 1, T0_NS, &b);
    memset(data, 'x', b.len); /* the cache keeps a copy, not the caller's bytes */
    free(data);
    assert_true(result_cache_get(c, key, sizeof key - 1, 1, T0_NS, &got));
    assert_int_equal(got.len, sizeof text - 1);
    assert_memory_equal(got.data, text, sizeof text - 1);
    assert_int_equal(got.took_at, took_at);
    memset(got.data, 'y', got.len); /* and the caller's copy is its own */
    free(got.data);
    got = (struct cached_body){ 0 };
    assert_true(result_cache_get(c, key, sizeof key - 1, 1, T0_NS, &got));
    assert_int_equal(got.len, sizeof text - 1);
    assert_memory_equal(got.data, text, sizeof text - 1);
    free(got.data);
    result_cache_free(c);
}

static void test_another_key_misses(void **state)
{
    /* each row: put key, get other (lengths given: keys may hold NUL bytes) */
    static const struct {
        const char *key, *other;
        size_t key_len, other_len;
    } cases[] = {
        { "q=news", "q=newt", 6, 6 },            /* last byte */
        { "q=news", "q=new", 6, 5 },             /* a prefix */
        { "q=new", "q=news", 5, 6 },             /* longer */
        { "q=news", "Q=news", 6, 6 },            /* case */
        { "q=news&limit=5", "limit=5&q=news", 14, 14 }, /* the same parameters, reordered */
        { "q=a\0b", "q=a\0c", 5, 5 },            /* after a NUL */
        { "q=a\0b", "q=a", 5, 3 },
        { "", "q=", 0, 2 },                      /* the empty key */
        { "q=", "", 2, 0 },
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct result_cache *c = result_cache_new(BUDGET_BYTES);
        struct cached_body b = body_new("row", (unsigned)i, 100), got = { 0 };
        assert_non_null(c);
        result_cache_put(c, cases[i].key, cases[i].key_len, 1, T0_NS, &b);
        if (result_cache_get(c, cases[i].other, cases[i].other_len, 1, T0_NS, &got))
            fail_msg("row %zu: a put of %zu bytes hit for another key of %zu", i,
                     cases[i].key_len, cases[i].other_len);
        /* and the key itself still hits */
        if (!result_cache_get(c, cases[i].key, cases[i].key_len, 1, T0_NS, &got))
            fail_msg("row %zu: the key put misses", i);
        assert_true(body_equal(&got, &b));
        free(got.data);
        free(b.data);
        result_cache_free(c);
    }
}

/* A newer snapshot drops the entry; a request still on an older one only misses. */
static void test_another_generation_misses_and_drops_the_entry(void **state)
{
    struct result_cache *c = result_cache_new(BUDGET_BYTES);
    struct cached_body b = body_new("q=news", 1, 200);

    (void)state;
    assert_non_null(c);
    put(c, "q=news", 7, T0_NS, &b);
    assert_true(get_check(c, "q=news", 7, T0_NS, &b));
    assert_false(get_check(c, "q=news", 8, T0_NS, NULL)); /* a newer snapshot */
    assert_false(get_check(c, "q=news", 7, T0_NS, NULL)); /* dropped, not kept aside */
    put(c, "q=news", 8, T0_NS, &b);
    assert_false(get_check(c, "q=news", 6, T0_NS, NULL)); /* an older one misses too... */
    assert_true(get_check(c, "q=news", 8, T0_NS, &b));    /* ...and leaves it in place */
    put(c, "q=news", 6, T0_NS, &b);                       /* nor does it replace it */
    assert_true(get_check(c, "q=news", 8, T0_NS, &b));
    assert_false(get_check(c, "q=news", 9, T0_NS, NULL));
    assert_false(get_check(c, "q=news", 8, T0_NS, NULL));
    put(c, "q=news", 0, T0_NS, &b); /* generation 0 is a generation like any other */
    assert_true(get_check(c, "q=news", 0, T0_NS, &b));
    free(b.data);
    result_cache_free(c);
}

static void test_a_dropped_stale_entry_gives_its_bytes_back(void **state)
{
    char mates[N_MATES][KEY_BYTES];

    (void)state;
    shard_mates(mates);
    /* four in one shard: full */
    struct result_cache *c = cache_with(mates, ENTRIES_PER_SHARD);
    assert_true(hit(c, mates[0]));                        /* the most recent: 1 2 3 0 */
    assert_false(get_check(c, mates[0], 2, T0_NS, NULL)); /* stale: dropped */
    struct cached_body b = body_new(mates[4], 0, MATE_BODY_BYTES);
    put(c, mates[4], 1, T0_NS, &b);
    free(b.data);
    /* the fifth took the dropped one's room: nothing was evicted for it */
    for (size_t i = 1; i <= ENTRIES_PER_SHARD; i++)
        if (!hit(c, mates[i]))
            fail_msg("mate %zu (%s) was evicted though the shard had room", i, mates[i]);
    result_cache_free(c);
}

static void test_an_entry_is_served_for_less_than_the_ttl(void **state)
{
    static const struct {
        uint64_t age_ns;
        bool hits;
    } cases[] = {
        { 0, true },
        { 1, true },
        { NS_PER_S, true },
        { CACHE_TTL_S * NS_PER_S - 1, true },
        { CACHE_TTL_S * NS_PER_S, false },
        { CACHE_TTL_S * NS_PER_S + 1, false },
        { 3600 * NS_PER_S, false },
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct result_cache *c = result_cache_new(BUDGET_BYTES);
        struct cached_body b = body_new("q=ttl", (unsigned)i, 300);
        assert_non_null(c);
        put(c, "q=ttl", 1, T0_NS, &b);
        bool got = get_check(c, "q=ttl", 1, T0_NS + cases[i].age_ns, &b);
        if (got != cases[i].hits)
            fail_msg("row %zu: %llu ns after the put: want a %s", i,
                     (unsigned long long)cases[i].age_ns, cases[i].hits ? "hit" : "miss");
        /* a hit does not make the entry younger; a miss dropped it */
        assert_false(get_check(c, "q=ttl", 1, T0_NS + CACHE_TTL_S * NS_PER_S, NULL));
        assert_false(get_check(c, "q=ttl", 1, T0_NS, NULL));
        free(b.data);
        result_cache_free(c);
    }
    /* a second put starts the clock again */
    struct result_cache *c = result_cache_new(BUDGET_BYTES);
    struct cached_body b = body_new("q=ttl", 99, 300);
    assert_non_null(c);
    put(c, "q=ttl", 1, T0_NS, &b);
    put(c, "q=ttl", 1, T0_NS + 5 * NS_PER_S, &b);
    assert_true(get_check(c, "q=ttl", 1, T0_NS + 14 * NS_PER_S, &b));
    assert_false(get_check(c, "q=ttl", 1, T0_NS + 15 * NS_PER_S, NULL));
    free(b.data);
    result_cache_free(c);
}

/* ---- the budget ---- */

static void test_lru_evicts_the_least_recently_used_of_a_shard(void **state)
{
    char mates[N_MATES][KEY_BYTES];

    (void)state;
    shard_mates(mates);
    /* four fit, in the order put */
    struct result_cache *c = cache_with(mates, ENTRIES_PER_SHARD);
    for (size_t i = 0; i < ENTRIES_PER_SHARD; i++) {
        struct cached_body b = body_new(mates[i], 0, MATE_BODY_BYTES);
        if (!get_check(c, mates[i], 1, T0_NS, &b))
            fail_msg("mate %zu (%s) of %d misses in a shard of %d bytes", i, mates[i],
                     ENTRIES_PER_SHARD, SHARD_BYTES);
        free(b.data);
    }
    /* the gets above kept the order 0 1 2 3; use 0 again, so 1 is the least recent */
    assert_true(hit(c, mates[0]));
    struct cached_body b = body_new(mates[4], 0, MATE_BODY_BYTES);
    put(c, mates[4], 1, T0_NS, &b);
    free(b.data);
    assert_false(hit(c, mates[1]));
    assert_true(hit(c, mates[0])); /* order now 2 3 4 0 */
    assert_true(hit(c, mates[3])); /* 2 4 0 3 */
    b = body_new(mates[5], 0, MATE_BODY_BYTES);
    put(c, mates[5], 1, T0_NS, &b);
    free(b.data);
    assert_false(hit(c, mates[2]));
    const size_t kept[] = { 4, 0, 3, 5 };
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        if (!hit(c, mates[kept[i]]))
            fail_msg("mate %zu (%s) was evicted before the least recently used", kept[i],
                     mates[kept[i]]);
    result_cache_free(c);
}

static void test_the_whole_cache_holds_four_entries_per_shard(void **state)
{
    struct result_cache *c = result_cache_new(BUDGET_BYTES);
    char key[KEY_BYTES];
    size_t hits = 0;

    (void)state;
    assert_non_null(c);
    for (unsigned i = 0; i < N_CANDIDATES; i++) {
        key_of(i, key);
        struct cached_body b = body_new(key, 0, MATE_BODY_BYTES);
        put(c, key, 1, T0_NS, &b);
        free(b.data);
    }
    /* the last four put are the newest of their shards: all kept */
    for (unsigned i = N_CANDIDATES - ENTRIES_PER_SHARD; i < N_CANDIDATES; i++) {
        key_of(i, key);
        struct cached_body b = body_new(key, 0, MATE_BODY_BYTES);
        assert_true(get_check(c, key, 1, T0_NS, &b));
        free(b.data);
    }
    for (unsigned i = 0; i < N_CANDIDATES; i++) {
        key_of(i, key);
        hits += hit(c, key);
    }
    /*
     * Never more than the budget; exactly that many when every shard got at
     * least four of the 1,000 keys (~62 each), as a hash that spreads keys does.
     */
    assert_int_equal(hits, (size_t)CACHE_SHARDS * ENTRIES_PER_SHARD);
    result_cache_free(c);
}

static void test_a_body_over_a_quarter_of_a_shard_is_not_kept(void **state)
{
    static const struct {
        size_t body_bytes;
        bool kept;
    } cases[] = {
        { SHARD_BYTES / 4 - 256, true }, /* with key and bookkeeping, under a quarter */
        { SHARD_BYTES / 4, false },      /* with anything added, over */
        { SHARD_BYTES / 4 + 1, false },
        { SHARD_BYTES, false },
        { BUDGET_BYTES, false },
        { 4 * BUDGET_BYTES, false },
    };
    char mates[N_MATES][KEY_BYTES];

    (void)state;
    shard_mates(mates);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* a full shard, and mates[4] put over it with the size of the row */
        struct result_cache *c = cache_with(mates, ENTRIES_PER_SHARD);
        struct cached_body b = body_new(mates[4], (unsigned)i, cases[i].body_bytes);
        put(c, mates[4], 1, T0_NS, &b);
        if (get_check(c, mates[4], 1, T0_NS, &b) != cases[i].kept)
            fail_msg("row %zu: a body of %zu bytes in a shard of %d: want it %s", i,
                     cases[i].body_bytes, SHARD_BYTES, cases[i].kept ? "kept" : "not kept");
        /* one not kept evicts nothing */
        for (size_t m = 0; !cases[i].kept && m < ENTRIES_PER_SHARD; m++)
            if (!hit(c, mates[m]))
                fail_msg("row %zu: a body of %zu bytes not kept evicted mate %zu", i,
                         cases[i].body_bytes, m);
        free(b.data);
        result_cache_free(c);
    }
}

static void test_a_second_put_of_a_key_keeps_the_newer(void **state)
{
    char mates[N_MATES][KEY_BYTES];

    (void)state;
    shard_mates(mates);
    struct result_cache *c = cache_with(mates, ENTRIES_PER_SHARD - 1);
    /* mates[3], put over and over with bodies of every size up to MATE_BODY_BYTES */
    struct cached_body last = { 0 };
    for (unsigned v = 1; v <= 100; v++) {
        free(last.data);
        last = body_new(mates[3], v, (v * 37) % MATE_BODY_BYTES + 1);
        put(c, mates[3], 1, T0_NS, &last);
    }
    free(last.data);
    last = body_new(mates[3], 101, MATE_BODY_BYTES);
    put(c, mates[3], 1, T0_NS, &last);
    assert_true(get_check(c, mates[3], 1, T0_NS, &last));
    free(last.data);
    /* the replaced bodies' bytes were given back: the shard holds four still */
    for (size_t i = 0; i < ENTRIES_PER_SHARD; i++)
        if (!hit(c, mates[i]))
            fail_msg("mate %zu (%s) was evicted by puts of one other key", i, mates[i]);
    /* a newer put under another generation replaces an older one's entry */
    struct cached_body newer = body_new(mates[0], 200, 50);
    put(c, mates[0], 2, T0_NS, &newer);
    assert_true(get_check(c, mates[0], 2, T0_NS, &newer));
    free(newer.data);
    result_cache_free(c);
}

static void test_tiny_budgets_keep_nothing_and_never_crash(void **state)
{
    static const size_t budgets[] = { 0, 1, 15, CACHE_SHARDS, CACHE_SHARDS * 4, 100, 1000 };

    (void)state;
    for (size_t i = 0; i < sizeof budgets / sizeof budgets[0]; i++) {
        struct result_cache *c = result_cache_new(budgets[i]);
        assert_non_null(c);
        for (unsigned k = 0; k < 50; k++) {
            char key[KEY_BYTES];
            key_of(k, key);
            struct cached_body b = body_new(key, k, k % 3 ? k : 0);
            put(c, key, 1, T0_NS, &b);
            result_cache_put(c, "", 0, 1, T0_NS, &b);
            if (get_check(c, key, 1, T0_NS, NULL) || get_check(c, "", 1, T0_NS, NULL))
                fail_msg("budget %zu: a hit; no entry fits in a shard of %zu bytes", budgets[i],
                         budgets[i] / CACHE_SHARDS);
            free(b.data);
        }
        result_cache_free(c);
    }
    result_cache_free(NULL);
}

/* ---- threads ---- */

#define HAMMER_THREADS 4
#define HAMMER_OPS 20000
#define HAMMER_KEYS 48 /* overlapping: every thread uses every key */
#define HAMMER_SHARD_BYTES 2048
#define HAMMER_BODY_MAX 400 /* with key and bookkeeping, under a quarter of a shard */

struct hammer {
    struct result_cache *cache;
    unsigned seed;
    size_t hits, bad; /* read by the main thread after the join */
    char first_bad[256];
};

static unsigned next_random(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (*seed >> 16) & 0x7fff;
}

/*
 * A body as body_new() makes it for key, recognized whatever its version
 * and length: the version is read back from the body's own bytes, then
 * every byte, the length bounds and took_at are checked.
 */
static bool hammer_body_ok(const char *key, const struct cached_body *b)
{
    size_t key_len = strlen(key);
    unsigned version = 0;
    size_t i = key_len + 1;

    if (b->len < key_len + 3 || memcmp(b->data, key, key_len) || b->data[key_len] != '/')
        return false;
    for (; i < b->len && b->data[i] >= '0' && b->data[i] <= '9'; i++)
        version = version * 10 + (unsigned)(b->data[i] - '0');
    if (i >= b->len || b->data[i] != ';' || b->len > HAMMER_BODY_MAX)
        return false;
    struct cached_body want;
    if (!body_make(key, version, b->len, &want))
        return false;
    bool ok = body_equal(b, &want);
    free(want.data);
    return ok;
}

static void *hammer_run(void *arg)
{
    struct hammer *h = arg;

    for (unsigned op = 0; op < HAMMER_OPS; op++) {
        char key[KEY_BYTES];
        snprintf(key, sizeof key, "q=%u", next_random(&h->seed) % HAMMER_KEYS);
        /* a snapshot published now and then: generations 1 and 2 mixed */
        uint64_t generation = next_random(&h->seed) % 50 ? 1 : 2;
        uint64_t now = T0_NS + op;
        if (next_random(&h->seed) % 3 == 0) {
            size_t len = 20 + next_random(&h->seed) % (HAMMER_BODY_MAX - 20 + 1);
            struct cached_body b;
            if (!body_make(key, op, len, &b)) {
                h->bad++;
                continue;
            }
            put(h->cache, key, generation, now, &b);
            free(b.data);
            continue;
        }
        struct cached_body got = { 0 };
        if (!result_cache_get(h->cache, key, strlen(key), generation, now, &got))
            continue;
        h->hits++;
        if (!hammer_body_ok(key, &got) && h->bad++ == 0)
            snprintf(h->first_bad, sizeof h->first_bad, "key %s: %zu bytes \"%.40s\"", key,
                     got.len, got.data);
        free(got.data);
    }
    return NULL;
}

static void test_threads_read_only_bytes_put_for_their_key(void **state)
{
    struct result_cache *c = result_cache_new((size_t)CACHE_SHARDS * HAMMER_SHARD_BYTES);
    struct hammer h[HAMMER_THREADS];
    pthread_t tid[HAMMER_THREADS];
    size_t hits = 0;

    (void)state;
    assert_non_null(c);
    for (int t = 0; t < HAMMER_THREADS; t++) {
        h[t] = (struct hammer){ .cache = c, .seed = 12345u + 7919u * (unsigned)t };
        assert_int_equal(pthread_create(&tid[t], NULL, hammer_run, &h[t]), 0);
    }
    for (int t = 0; t < HAMMER_THREADS; t++)
        assert_int_equal(pthread_join(tid[t], NULL), 0);
    for (int t = 0; t < HAMMER_THREADS; t++) {
        if (h[t].bad)
            fail_msg("thread %d: %zu of %zu hits had bytes not put for their key; first: %s", t,
                     h[t].bad, h[t].hits, h[t].first_bad);
        hits += h[t].hits;
    }
    /* not vacuous: 48 keys of up to 400 bytes fit in part, so gets do hit */
    if (hits < HAMMER_THREADS * HAMMER_OPS / 10)
        fail_msg("only %zu hits in %d gets and puts", hits, HAMMER_THREADS * HAMMER_OPS);
    result_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_then_get_returns_the_same_bytes_in_a_copy),
        cmocka_unit_test(test_another_key_misses),
        cmocka_unit_test(test_another_generation_misses_and_drops_the_entry),
        cmocka_unit_test(test_a_dropped_stale_entry_gives_its_bytes_back),
        cmocka_unit_test(test_an_entry_is_served_for_less_than_the_ttl),
        cmocka_unit_test(test_lru_evicts_the_least_recently_used_of_a_shard),
        cmocka_unit_test(test_the_whole_cache_holds_four_entries_per_shard),
        cmocka_unit_test(test_a_body_over_a_quarter_of_a_shard_is_not_kept),
        cmocka_unit_test(test_a_second_put_of_a_key_keeps_the_newer),
        cmocka_unit_test(test_tiny_budgets_keep_nothing_and_never_crash),
        cmocka_unit_test(test_threads_read_only_bytes_put_for_their_key),
    };

    return cmocka_run_group_tests_name("result_cache", tests, NULL, NULL);
}
