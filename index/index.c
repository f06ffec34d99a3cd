/*
 * The index folder and its snapshots (see index.h). One mutex guards the
 * manifest and the current snapshot pointer; readers hold it only long
 * enough to take a reference, so searches never wait on a commit's I/O.
 */
#include "index/index.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/buf.h"
#include "index/crc32c.h"
#include "index/error.h"
#include "index/fsutil.h"
#include "index/postings.h"
#include "index/segment.h"

#define MANIFEST_MAX_BYTES (INDEX_MAX_SEGMENTS * 64 + 64)

struct index {
    char *dir;
    pthread_mutex_t lock;
    struct snapshot *current; /* guarded by lock */
    uint64_t next_seq;        /* guarded by lock */
};

static void segment_unref(struct index_segment *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
        segment_close(s->seg);
        free(s);
    }
}

void snapshot_release(struct snapshot *snap)
{
    if (!snap || atomic_fetch_sub(&snap->refs, 1) != 1)
        return;
    for (uint32_t i = 0; i < snap->n_segments; i++)
        segment_unref(snap->segments[i]);
    free(snap->segments);
    free(snap);
}

/* A snapshot of segs (taking a reference on each), with its totals. */
static struct snapshot *snapshot_make(struct index_segment **segs, uint32_t n)
{
    struct snapshot *snap = calloc(1, sizeof *snap);

    if (!snap || !(snap->segments = calloc(n ? n : 1, sizeof *snap->segments))) {
        free(snap);
        return NULL;
    }
    atomic_init(&snap->refs, 1);
    snap->n_segments = n;
    for (uint32_t i = 0; i < n; i++) {
        snap->segments[i] = segs[i];
        atomic_fetch_add(&segs[i]->refs, 1);
        snap->n_docs += segment_n_docs(segs[i]->seg);
        snap->n_terms += segment_n_terms(segs[i]->seg);
        snap->bytes += segment_file_bytes(segs[i]->seg);
        for (int f = 0; f < N_FIELDS; f++)
            snap->field_tokens[f] += segment_field_tokens(segs[i]->seg, f);
    }
    return snap;
}

static int segment_load_named(struct index *ix, const char *name, struct index_segment **out,
                              struct xerr *err)
{
    char path[4096];
    struct index_segment *s = calloc(1, sizeof *s);

    if (!s)
        return xerr_set(err, XE_NOMEM, "out of memory");
    if (strlen(name) >= sizeof s->name ||
        (size_t)snprintf(path, sizeof path, "%s/%s", ix->dir, name) >= sizeof path) {
        free(s);
        return xerr_corrupt(err, "%s: bad segment name \"%.40s\"", INDEX_MANIFEST, name);
    }
    int rc = segment_open(path, &s->seg, err);
    if (rc) {
        free(s);
        return rc;
    }
    memcpy(s->name, name, strlen(name) + 1);
    atomic_init(&s->refs, 0);
    *out = s;
    return XE_OK;
}

static bool parse_seq(const char *name, uint64_t *seq)
{
    char *end;
    if (strncmp(name, "seg-", 4) != 0)
        return false;
    errno = 0;
    *seq = strtoull(name + 4, &end, 10);
    return !errno && end != name + 4 && !strcmp(end, ".xseg");
}

/* Reads MANIFEST and opens its segments into a first snapshot. */
static int manifest_load(struct index *ix, struct xerr *err)
{
    char path[4096], *text;
    size_t len;
    struct index_segment **segs = NULL;
    uint32_t n = 0;
    int rc;

    snprintf(path, sizeof path, "%s/%s", ix->dir, INDEX_MANIFEST);
    rc = fs_read_all(path, MANIFEST_MAX_BYTES, &text, &len, err);
    if (rc == XE_NOTFOUND) {
        xerr_clear(err);
        ix->current = snapshot_make(NULL, 0);
        return ix->current ? XE_OK : xerr_set(err, XE_NOMEM, "out of memory");
    }
    if (rc)
        return rc;
    char *crc_line = len ? strstr(text, "crc32c ") : NULL;
    unsigned long crc;
    if (!crc_line || (crc_line != text && crc_line[-1] != '\n') ||
        sscanf(crc_line, "crc32c %8lx", &crc) != 1 ||
        crc != crc32c(0, text, (size_t)(crc_line - text))) {
        rc = xerr_corrupt(err, "%s: checksum mismatch or missing", path);
        goto out_text;
    }
    *crc_line = '\0';
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    if (!line || strcmp(line, "xun-manifest 1") != 0) {
        rc = xerr_corrupt(err, "%s: unknown format \"%.40s\"", path, line ? line : "");
        goto out_text;
    }
    segs = calloc(INDEX_MAX_SEGMENTS, sizeof *segs);
    if (!segs) {
        rc = xerr_set(err, XE_NOMEM, "out of memory");
        goto out_text;
    }
    while ((line = strtok_r(NULL, "\n", &save))) {
        uint64_t seq;
        if (strncmp(line, "segment ", 8) != 0 || !parse_seq(line + 8, &seq) ||
            n == INDEX_MAX_SEGMENTS) {
            rc = xerr_corrupt(err, "%s: bad line \"%.40s\"", path, line);
            goto out_segs;
        }
        rc = segment_load_named(ix, line + 8, &segs[n], err);
        if (rc)
            goto out_segs;
        n++;
        if (seq >= ix->next_seq)
            ix->next_seq = seq + 1;
    }
    ix->current = snapshot_make(segs, n);
    if (!ix->current)
        rc = xerr_set(err, XE_NOMEM, "out of memory");
out_segs:
    if (rc)
        for (uint32_t i = 0; i < n; i++) {
            segment_close(segs[i]->seg);
            free(segs[i]);
        }
    free(segs);
out_text:
    free(text);
    return rc;
}

int index_open(const char *dir, struct index **out, struct xerr *err)
{
    struct index *ix = calloc(1, sizeof *ix);
    int rc;

    if (!ix || !(ix->dir = strdup(dir))) {
        free(ix);
        return xerr_set(err, XE_NOMEM, "out of memory");
    }
    pthread_mutex_init(&ix->lock, NULL);
    ix->next_seq = 1;
    rc = fs_mkdir(dir, err);
    if (!rc)
        rc = manifest_load(ix, err);
    if (rc) {
        pthread_mutex_destroy(&ix->lock);
        free(ix->dir);
        free(ix);
        return rc;
    }
    *out = ix;
    return XE_OK;
}

void index_close(struct index *ix)
{
    if (!ix)
        return;
    snapshot_release(ix->current);
    pthread_mutex_destroy(&ix->lock);
    free(ix->dir);
    free(ix);
}

const char *index_dir(const struct index *ix)
{
    return ix->dir;
}

struct snapshot *index_snapshot(struct index *ix)
{
    pthread_mutex_lock(&ix->lock);
    struct snapshot *snap = ix->current;
    atomic_fetch_add(&snap->refs, 1);
    pthread_mutex_unlock(&ix->lock);
    return snap;
}

int index_reserve_segment(struct index *ix, char *path, size_t cap, struct xerr *err)
{
    pthread_mutex_lock(&ix->lock);
    uint64_t seq = ix->next_seq++;
    pthread_mutex_unlock(&ix->lock);
    if ((size_t)snprintf(path, cap, "%s/seg-%08" PRIu64 ".xseg", ix->dir, seq) >= cap)
        return xerr_set(err, XE_IO, "%s: path too long", ix->dir);
    return XE_OK;
}

static int manifest_write(struct index *ix, const struct snapshot *snap, struct xerr *err)
{
    char path[4096];
    struct buf text;
    int rc;

    buf_init(&text, MANIFEST_MAX_BYTES);
    buf_append_str(&text, "xun-manifest 1\n");
    for (uint32_t i = 0; i < snap->n_segments; i++) {
        buf_append_str(&text, "segment ");
        buf_append_str(&text, snap->segments[i]->name);
        buf_append_byte(&text, '\n');
    }
    char crc_line[32];
    snprintf(crc_line, sizeof crc_line, "crc32c %08x\n", crc32c(0, text.data, text.len));
    buf_append_str(&text, crc_line);
    snprintf(path, sizeof path, "%s/%s", ix->dir, INDEX_MANIFEST);
    rc = text.rc ? xerr_set(err, text.rc, "%s: too many segments", path)
                 : fs_write_atomic(path, text.data, text.len, err);
    buf_fini(&text);
    return rc;
}

int index_commit_segment(struct index *ix, const char *path, struct xerr *err)
{
    const char *name = strrchr(path, '/');
    struct index_segment *added;
    int rc;

    name = name ? name + 1 : path;
    rc = segment_load_named(ix, name, &added, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&ix->lock);
    struct snapshot *old = ix->current;
    struct index_segment **segs = malloc(sizeof *segs * (old->n_segments + 1));
    struct snapshot *snap = NULL;
    if (segs && old->n_segments < INDEX_MAX_SEGMENTS) {
        memcpy(segs, old->segments, sizeof *segs * old->n_segments);
        segs[old->n_segments] = added;
        snap = snapshot_make(segs, old->n_segments + 1);
    }
    free(segs);
    if (!snap) {
        pthread_mutex_unlock(&ix->lock);
        segment_close(added->seg);
        free(added);
        return xerr_set(err, XE_NOMEM, "out of memory (or %d segments)", INDEX_MAX_SEGMENTS);
    }
    rc = manifest_write(ix, snap, err);
    if (rc) {
        pthread_mutex_unlock(&ix->lock);
        snapshot_release(snap);
        return rc;
    }
    ix->current = snap;
    pthread_mutex_unlock(&ix->lock);
    snapshot_release(old);
    return XE_OK;
}

bool snapshot_find(const struct snapshot *snap, const char *id, size_t len, uint32_t *segment,
                   uint32_t *docid)
{
    for (uint32_t s = snap->n_segments; s-- > 0;) {
        uint32_t d = segment_find_id(snap->segments[s]->seg, id, len);
        if (d != DOCID_END) {
            *segment = s;
            *docid = d;
            return true;
        }
    }
    return false;
}
