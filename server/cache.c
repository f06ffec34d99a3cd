/*
 * The response cache (see cache.h): CACHE_SHARDS independent LRU caches,
 * picked by the key's hash. Each is a chained hash table over a doubly
 * linked recency list; an entry holds its key and body in one allocation.
 */
#include "server/cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "index/base/hash.h"

#define CACHE_SHARDS 16
#define CACHE_BUCKETS 1024 /* per shard; chains stay short at the default budget */

struct entry {
    struct entry *chain;      /* next in the bucket */
    struct entry *newer, *older;
    uint64_t hash, generation, born_ns;
    size_t key_len, body_len, took_at;
    char bytes[]; /* the key, then the body */
};

struct shard {
    pthread_mutex_t lock;
    struct entry *buckets[CACHE_BUCKETS];
    struct entry *newest, *oldest;
    size_t bytes, max_bytes;
};

struct result_cache {
    struct shard shards[CACHE_SHARDS];
};

/* The shard takes the hash's low bits; the bucket within it, the next ones. */
static size_t bucket_of(uint64_t hash)
{
    return (size_t)(hash / CACHE_SHARDS % CACHE_BUCKETS);
}

static size_t entry_bytes(const struct entry *e)
{
    return sizeof *e + e->key_len + e->body_len;
}

struct result_cache *result_cache_new(size_t max_bytes)
{
    struct result_cache *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    for (int i = 0; i < CACHE_SHARDS; i++) {
        pthread_mutex_init(&c->shards[i].lock, NULL);
        c->shards[i].max_bytes = max_bytes / CACHE_SHARDS;
    }
    return c;
}

void result_cache_free(struct result_cache *c)
{
    if (!c)
        return;
    for (int i = 0; i < CACHE_SHARDS; i++) {
        struct entry *e = c->shards[i].newest;
        while (e) {
            struct entry *older = e->older;
            free(e);
            e = older;
        }
        pthread_mutex_destroy(&c->shards[i].lock);
    }
    free(c);
}

static void list_unlink(struct shard *s, struct entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        s->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        s->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void list_push_newest(struct shard *s, struct entry *e)
{
    e->older = s->newest;
    e->newer = NULL;
    if (s->newest)
        s->newest->newer = e;
    s->newest = e;
    if (!s->oldest)
        s->oldest = e;
}

/* Takes e out of the shard and frees it. */
static void evict(struct shard *s, struct entry *e)
{
    struct entry **link = &s->buckets[bucket_of(e->hash)];
    while (*link != e)
        link = &(*link)->chain;
    *link = e->chain;
    list_unlink(s, e);
    s->bytes -= entry_bytes(e);
    free(e);
}

static struct entry *find(struct shard *s, uint64_t hash, const char *key, size_t key_len)
{
    for (struct entry *e = s->buckets[bucket_of(hash)]; e; e = e->chain)
        if (e->hash == hash && e->key_len == key_len && !memcmp(e->bytes, key, key_len))
            return e;
    return NULL;
}

/* An entry is stale when a newer snapshot exists or its time is up. A request
 * that began before the entry was made (or holds an older snapshot) only misses. */
static bool stale(const struct entry *e, uint64_t generation, uint64_t now_ns)
{
    return e->generation < generation ||
           (now_ns > e->born_ns && now_ns - e->born_ns >= (uint64_t)CACHE_TTL_S * 1000000000u);
}

static bool usable(const struct entry *e, uint64_t generation, uint64_t now_ns)
{
    return e->generation == generation && !stale(e, generation, now_ns);
}

bool result_cache_get(struct result_cache *c, const char *key, size_t key_len,
                      uint64_t generation, uint64_t now_ns, struct cached_body *out)
{
    uint64_t hash = hash_bytes(key, key_len);
    struct shard *s = &c->shards[hash % CACHE_SHARDS];
    bool hit = false;

    pthread_mutex_lock(&s->lock);
    struct entry *e = find(s, hash, key, key_len);
    if (e && stale(e, generation, now_ns)) {
        evict(s, e);
        e = NULL;
    }
    if (e && usable(e, generation, now_ns) && (out->data = malloc(e->body_len))) {
        memcpy(out->data, e->bytes + e->key_len, e->body_len);
        out->len = e->body_len;
        out->took_at = e->took_at;
        list_unlink(s, e);
        list_push_newest(s, e);
        hit = true;
    }
    pthread_mutex_unlock(&s->lock);
    return hit;
}

void result_cache_put(struct result_cache *c, const char *key, size_t key_len,
                      uint64_t generation, uint64_t now_ns, const struct cached_body *body)
{
    uint64_t hash = hash_bytes(key, key_len);
    struct shard *s = &c->shards[hash % CACHE_SHARDS];
    size_t need = sizeof(struct entry) + key_len + body->len;

    if (need > s->max_bytes / 4)
        return; /* one huge answer must not push out everything else */
    struct entry *e = malloc(need);
    if (!e)
        return;
    *e = (struct entry){ .hash = hash, .generation = generation, .born_ns = now_ns,
                         .key_len = key_len, .body_len = body->len, .took_at = body->took_at };
    memcpy(e->bytes, key, key_len);
    memcpy(e->bytes + key_len, body->data, body->len);

    pthread_mutex_lock(&s->lock);
    struct entry *old = find(s, hash, key, key_len);
    if (old && old->generation > generation) { /* a newer answer is there already */
        pthread_mutex_unlock(&s->lock);
        free(e);
        return;
    }
    if (old)
        evict(s, old);
    while (s->oldest && s->bytes + need > s->max_bytes)
        evict(s, s->oldest);
    e->chain = s->buckets[bucket_of(hash)];
    s->buckets[bucket_of(hash)] = e;
    list_push_newest(s, e);
    s->bytes += need;
    pthread_mutex_unlock(&s->lock);
}
