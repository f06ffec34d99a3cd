/*
 * The index folder and its snapshots (see index.h). One mutex guards the
 * current snapshot pointer and the file name counter; readers hold it only
 * long enough to take a reference, so searches never wait on a writer's I/O.
 * Everything else here is called by the one thread that changes the index.
 */
#include "index/index.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "index/base/buf.h"
#include "index/base/crc32c.h"
#include "index/format/deletions.h"
#include "index/base/error.h"
#include "index/base/fsutil.h"
#include "index/write/merge.h"
#include "index/format/postings.h"
#include "index/format/segment.h"

#define MANIFEST_MAX_BYTES (INDEX_MAX_SEGMENTS * 128 + 256)

struct index {
    char *dir;
    int lock_fd; /* the folder itself, flock()ed: one process per index folder */
    pthread_mutex_t lock;
    struct snapshot *current; /* guarded by lock */
    uint64_t next_file;       /* guarded by lock */
    uint64_t applied_seq;
    char wal_name[INDEX_NAME_BYTES];
    unsigned tokenize_flags;
    uint64_t generation; /* of the current snapshot; guarded by lock */
};

/* The words of the MANIFEST "analyzer" line, one per TOKENIZE_* flag. */
static const struct {
    unsigned flag;
    const char *word;
} analyzer_words[] = {
    { TOKENIZE_FOLD_VARIANTS, "fold-variants" },
};

static void analyzer_line(unsigned flags, char *line, size_t cap)
{
    size_t len = (size_t)snprintf(line, cap, "analyzer");
    for (size_t i = 0; i < sizeof analyzer_words / sizeof *analyzer_words; i++)
        if ((flags & analyzer_words[i].flag) && len < cap)
            len += (size_t)snprintf(line + len, cap - len, " %s", analyzer_words[i].word);
    if (len < cap)
        snprintf(line + len, cap - len, "\n");
}

/* Parses the words after "analyzer"; false on a word this version does not know. */
static bool analyzer_parse(char *words, unsigned *flags)
{
    char *save = NULL;
    *flags = 0;
    for (char *w = strtok_r(words, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        size_t i = 0, n = sizeof analyzer_words / sizeof *analyzer_words;
        while (i < n && strcmp(w, analyzer_words[i].word) != 0)
            i++;
        if (i == n)
            return false;
        *flags |= analyzer_words[i].flag;
    }
    return true;
}

void index_segment_ref(struct index_segment *s)
{
    atomic_fetch_add(&s->refs, 1);
}

void index_segment_unref(struct index_segment *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
        segment_close(s->seg);
        deletions_unref(s->del_saved);
        free(s);
    }
}

void snapshot_release(struct snapshot *snap)
{
    if (!snap || atomic_fetch_sub(&snap->refs, 1) != 1)
        return;
    for (uint32_t i = 0; i < snap->n_segments; i++) {
        index_segment_unref(snap->segments[i]);
        deletions_unref(snap->deleted[i]);
    }
    free(snap->segments);
    free(snap->deleted);
    free(snap);
}

struct snapshot *snapshot_make(struct index_segment *const *segs,
                               struct deletions *const *deleted, uint32_t n)
{
    struct snapshot *snap = calloc(1, sizeof *snap);

    if (!snap || !(snap->segments = calloc(n ? n : 1, sizeof *snap->segments)) ||
        !(snap->deleted = calloc(n ? n : 1, sizeof *snap->deleted))) {
        if (snap)
            free(snap->segments);
        free(snap);
        return NULL;
    }
    atomic_init(&snap->refs, 1);
    snap->n_segments = n;
    for (uint32_t i = 0; i < n; i++) {
        const struct segment *seg = segs[i]->seg;
        snap->segments[i] = segs[i];
        atomic_fetch_add(&segs[i]->refs, 1);
        snap->deleted[i] = deleted ? deleted[i] : NULL;
        deletions_ref(snap->deleted[i]);
        snap->n_docs += segment_n_docs(seg) - (snap->deleted[i] ? snap->deleted[i]->count : 0);
        snap->n_docs_stored += segment_n_docs(seg);
        snap->n_terms += segment_n_terms(seg);
        snap->bytes += segment_file_bytes(seg);
        for (int f = 0; f < N_FIELDS; f++)
            snap->field_tokens[f] += segment_field_tokens(seg, f);
    }
    return snap;
}

bool snapshot_is_deleted(const struct snapshot *snap, uint32_t s, uint32_t docid)
{
    return deletions_has(snap->deleted[s], docid);
}

int snapshot_find(const struct snapshot *snap, const char *id, size_t len, uint32_t *segment,
                  uint32_t *docid, struct xerr *err)
{
    for (uint32_t s = snap->n_segments; s-- > 0;) {
        uint32_t d;
        int rc = segment_find_id(snap->segments[s]->seg, id, len, &d, err);
        if (rc == XE_NOTFOUND || (!rc && deletions_has(snap->deleted[s], d)))
            continue;
        if (rc)
            return rc;
        *segment = s;
        *docid = d;
        return XE_OK;
    }
    return XE_NOTFOUND;
}

uint32_t snapshot_damaged_segments(const struct snapshot *snap, uint32_t *which, uint32_t cap)
{
    uint32_t n = 0;

    for (uint32_t s = 0; s < snap->n_segments; s++)
        if (segment_damaged_chunks(snap->segments[s]->seg)) {
            if (n < cap)
                which[n] = s;
            n++;
        }
    return n;
}

void index_path(const struct index *ix, const char *name, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", ix->dir, name);
}

void index_new_name(struct index *ix, const char *prefix, const char *suffix,
                    char name[INDEX_NAME_BYTES])
{
    pthread_mutex_lock(&ix->lock);
    uint64_t n = ix->next_file++;
    pthread_mutex_unlock(&ix->lock);
    snprintf(name, INDEX_NAME_BYTES, "%s-%08" PRIu64 ".%s", prefix, n, suffix);
}

int index_segment_open(struct index *ix, const char *name, struct index_segment **out,
                       struct xerr *err)
{
    char path[4096];
    struct index_segment *s = calloc(1, sizeof *s);

    if (!s)
        return xerr_set(err, XE_NOMEM, "out of memory");
    if (strlen(name) >= sizeof s->name) {
        free(s);
        return xerr_corrupt(err, "%s: bad segment name \"%.40s\"", INDEX_MANIFEST, name);
    }
    index_path(ix, name, path, sizeof path);
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

int index_segment_adopt_memory(const char *name, struct segment *seg,
                               struct index_segment **out, struct xerr *err)
{
    struct index_segment *s;

    if (strlen(name) >= sizeof s->name)
        return xerr_set(err, XE_INPUT, "bad segment name \"%.40s\"", name);
    if (!(s = calloc(1, sizeof *s)))
        return xerr_set(err, XE_NOMEM, "out of memory");
    s->seg = seg;
    memcpy(s->name, name, strlen(name) + 1);
    s->in_memory = true;
    atomic_init(&s->refs, 0);
    *out = s;
    return XE_OK;
}

/* The number in "prefix-NNNNNNNN.suffix", to keep new names above old ones. */
static void note_name(struct index *ix, const char *name)
{
    const char *dash = strchr(name, '-');
    if (!dash)
        return;
    uint64_t n = strtoull(dash + 1, NULL, 10);
    if (n >= ix->next_file)
        ix->next_file = n + 1;
}

static bool valid_name(const char *name, const char *suffix)
{
    size_t len = strlen(name), slen = strlen(suffix);
    if (len >= INDEX_NAME_BYTES || len <= slen || strcmp(name + len - slen, suffix) != 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
              name[i] == '-' || name[i] == '.'))
            return false;
    return true;
}

struct manifest {
    struct index_segment **segs;
    struct deletions **dels;
    uint32_t n;
    /* the segment lines, read before any segment is opened */
    char (*names)[INDEX_NAME_BYTES];
    char (*del_names)[INDEX_NAME_BYTES];
    uint32_t n_listed;
};

static void manifest_free(struct manifest *m, bool close_segments)
{
    for (uint32_t i = 0; i < m->n; i++) {
        deletions_unref(m->dels[i]);
        if (close_segments && m->segs[i]) {
            segment_close(m->segs[i]->seg);
            deletions_unref(m->segs[i]->del_saved);
            free(m->segs[i]);
        }
    }
    free(m->segs);
    free(m->dels);
    free(m->names);
    free(m->del_names);
}

/* One "segment NAME [DELETIONS]" line: noted, opened later by manifest_open_segment(). */
static int manifest_segment(struct index *ix, struct manifest *m, char *args, const char *path,
                            struct xerr *err)
{
    char *del = strchr(args, ' ');

    if (del)
        *del++ = '\0';
    if (!valid_name(args, ".xseg") || (del && !valid_name(del, ".xdel")) ||
        m->n_listed == INDEX_MAX_SEGMENTS)
        return xerr_corrupt(err, "%s: bad segment line \"%.60s\"", path, args);
    memcpy(m->names[m->n_listed], args, strlen(args) + 1);
    m->del_names[m->n_listed][0] = '\0';
    if (del)
        memcpy(m->del_names[m->n_listed], del, strlen(del) + 1);
    m->n_listed++;
    note_name(ix, args);
    if (del)
        note_name(ix, del);
    return XE_OK;
}

/*
 * Opens listed segment i, upgrading it first when it is of the version
 * before this one (see segment.h): the new file gets a new name, and
 * *upgraded is set; the MANIFEST naming it is the caller's to write.
 */
static int manifest_open_segment(struct index *ix, struct manifest *m, uint32_t i,
                                 bool *upgraded, struct xerr *err)
{
    const char *name = m->names[i], *del = m->del_names[i];
    char seg_path[4096], new_name[INDEX_NAME_BYTES];
    uint32_t version;
    int rc;

    index_path(ix, name, seg_path, sizeof seg_path);
    rc = segment_file_version(seg_path, &version, err);
    if (!rc && version == SEGMENT_UPGRADABLE_VERSION) {
        char new_path[4096];
        index_new_name(ix, "seg", "xseg", new_name);
        index_path(ix, new_name, new_path, sizeof new_path);
        rc = segment_upgrade(seg_path, new_path, err);
        if (rc)
            return rc;
        fprintf(stderr, "xun: upgraded %s from format %u to %u (now %s)\n", name,
                SEGMENT_UPGRADABLE_VERSION, SEGMENT_VERSION, new_name);
        name = new_name;
        *upgraded = true;
    }
    xerr_clear(err); /* a version not read above: segment_open() says what is wrong */
    rc = index_segment_open(ix, name, &m->segs[m->n], err);
    if (rc)
        return rc;
    struct index_segment *s = m->segs[m->n];
    m->dels[m->n] = NULL;
    m->n++;
    s->durable = true;
    if (*del) {
        char del_path[4096];
        index_path(ix, del, del_path, sizeof del_path);
        rc = deletions_read(del_path, segment_n_docs(s->seg), &m->dels[m->n - 1], err);
        if (rc)
            return rc;
        memcpy(s->del_name, del, strlen(del) + 1);
        s->del_saved = m->dels[m->n - 1];
        deletions_ref(s->del_saved);
    }
    return XE_OK;
}

static int manifest_write(struct index *ix, const struct snapshot *snap, uint64_t seq,
                          const char *wal_name, struct xerr *err);

/* Reads MANIFEST and opens its segments into a first snapshot. */
static int manifest_load(struct index *ix, struct xerr *err)
{
    char path[4096], *text;
    size_t len;
    struct manifest m = { 0 };
    int rc;

    index_path(ix, INDEX_MANIFEST, path, sizeof path);
    rc = fs_read_all(path, MANIFEST_MAX_BYTES, &text, &len, err);
    if (rc == XE_NOTFOUND) { /* a new index: it gets the analyzer asked for */
        xerr_clear(err);
        ix->current = snapshot_make(NULL, NULL, 0);
        if (ix->current)
            ix->current->tokenize_flags = ix->tokenize_flags;
        return ix->current ? XE_OK : xerr_set(err, XE_NOMEM, "out of memory");
    }
    unsigned wanted_flags = ix->tokenize_flags;
    ix->tokenize_flags = 0; /* an index from before the analyzer line */
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
    m.segs = calloc(INDEX_MAX_SEGMENTS, sizeof *m.segs);
    m.dels = calloc(INDEX_MAX_SEGMENTS, sizeof *m.dels);
    m.names = calloc(INDEX_MAX_SEGMENTS, sizeof *m.names);
    m.del_names = calloc(INDEX_MAX_SEGMENTS, sizeof *m.del_names);
    if (!m.segs || !m.dels || !m.names || !m.del_names) {
        rc = xerr_set(err, XE_NOMEM, "out of memory");
        goto out_manifest;
    }
    while (!rc && (line = strtok_r(NULL, "\n", &save))) {
        char *end;
        if (!strncmp(line, "segment ", 8)) {
            rc = manifest_segment(ix, &m, line + 8, path, err);
        } else if (!strncmp(line, "seq ", 4)) {
            errno = 0;
            ix->applied_seq = strtoull(line + 4, &end, 10);
            if (errno || *end || end == line + 4)
                rc = xerr_corrupt(err, "%s: bad line \"%.40s\"", path, line);
        } else if (!strncmp(line, "wal ", 4) && valid_name(line + 4, ".xlog")) {
            memcpy(ix->wal_name, line + 4, strlen(line + 4) + 1);
            note_name(ix, line + 4);
        } else if (!strncmp(line, "analyzer", 8) && (!line[8] || line[8] == ' ')) {
            if (!analyzer_parse(line + 8, &ix->tokenize_flags))
                rc = xerr_corrupt(err, "%s: unknown analyzer in \"%.60s\"", path, line);
        } else {
            rc = xerr_corrupt(err, "%s: bad line \"%.40s\"", path, line);
        }
    }
    if (!rc && ix->tokenize_flags != wanted_flags) {
        bool folded = ix->tokenize_flags & TOKENIZE_FOLD_VARIANTS;
        rc = xerr_set(err, XE_INPUT,
                      "this index was built %s simplified/traditional folding; %s, or "
                      "index into a new folder",
                      folded ? "with" : "without",
                      folded ? "leave out --no-fold-variants" : "add --no-fold-variants");
    }
    /* every name is noted by now, so upgraded files get names above them all */
    bool upgraded = false;
    for (uint32_t i = 0; !rc && i < m.n_listed; i++)
        rc = manifest_open_segment(ix, &m, i, &upgraded, err);
    if (!rc) {
        ix->current = snapshot_make(m.segs, m.dels, m.n);
        if (!ix->current)
            rc = xerr_set(err, XE_NOMEM, "out of memory");
        else
            ix->current->tokenize_flags = ix->tokenize_flags;
    }
    /* the new files are durable; naming them is the one atomic step (a crash
     * before it leaves the old MANIFEST, whose files are still there, and the
     * unnamed new ones are removed by the next open) */
    if (!rc && upgraded &&
        (rc = manifest_write(ix, ix->current, ix->applied_seq, ix->wal_name, err))) {
        manifest_free(&m, false);
        snapshot_release(ix->current); /* it holds the segments: closed with it */
        ix->current = NULL;
        goto out_text;
    }
out_manifest:
    manifest_free(&m, rc != XE_OK);
out_text:
    free(text);
    return rc;
}

/* Unlinks the index's files snap does not name; also "*.tmp" files when tmp_too. */
static void remove_unnamed(struct index *ix, const struct snapshot *snap, bool tmp_too)
{
    char path[4096];
    DIR *d = opendir(ix->dir);
    struct dirent *e;

    while (d && (e = readdir(d))) {
        const char *name = e->d_name;
        bool ours = valid_name(name, ".xseg") || valid_name(name, ".xdel") ||
                    valid_name(name, ".xlog") || (tmp_too && strstr(name, ".tmp"));
        if (!ours || !strcmp(name, ix->wal_name))
            continue;
        bool named = false;
        for (uint32_t i = 0; i < snap->n_segments && !named; i++)
            named = !strcmp(name, snap->segments[i]->name) ||
                    !strcmp(name, snap->segments[i]->del_name);
        if (!named) {
            index_path(ix, name, path, sizeof path);
            unlink(path);
        }
    }
    if (d)
        closedir(d);
}

/*
 * One process per index folder. The lock is taken on the folder itself, not
 * on a file in it: a file can be unlinked (or re-created by the next opener)
 * while its holder runs, and then two writers would each hold a lock on a
 * different inode. The LOCK file only names the holder's pid, for the
 * message a second opener gets; nothing trusts it.
 */
static int lock_folder(struct index *ix, struct xerr *err)
{
    char path[4096], holder[32] = "";
    int fd;

    ix->lock_fd = open(ix->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ix->lock_fd < 0)
        return xerr_set(err, XE_IO, "%s: %s", ix->dir, strerror(errno));
    index_path(ix, "LOCK", path, sizeof path);
    if (flock(ix->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int saved = errno;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, holder, sizeof holder - 1) : -1;
        if (fd >= 0)
            close(fd);
        holder[n > 0 ? n : 0] = '\0';
        holder[strcspn(holder, "\n")] = '\0';
        if (saved != EWOULDBLOCK)
            return xerr_set(err, XE_IO, "%s: cannot lock the folder: %s", ix->dir,
                            strerror(saved));
        if (holder[0])
            return xerr_set(err, XE_IO, "the index %s is in use by another xun process (pid %s)",
                            ix->dir, holder);
        return xerr_set(err, XE_IO, "the index %s is in use by another xun process", ix->dir);
    }
    /* best effort: the note, not the lock */
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        int n = snprintf(holder, sizeof holder, "%ld\n", (long)getpid());
        if (write(fd, holder, (size_t)n) != n)
            holder[0] = '\0';
        close(fd);
    }
    return XE_OK;
}

int index_open(const char *dir, unsigned tokenize_flags, struct index **out, struct xerr *err)
{
    struct index *ix = calloc(1, sizeof *ix);
    int rc;

    if (!ix || !(ix->dir = strdup(dir))) {
        free(ix);
        return xerr_set(err, XE_NOMEM, "out of memory");
    }
    pthread_mutex_init(&ix->lock, NULL);
    ix->next_file = 1;
    ix->lock_fd = -1;
    ix->tokenize_flags = tokenize_flags;
    rc = fs_mkdir(dir, err);
    if (!rc)
        rc = lock_folder(ix, err);
    if (!rc)
        rc = manifest_load(ix, err);
    if (rc) {
        if (ix->lock_fd >= 0)
            close(ix->lock_fd);
        pthread_mutex_destroy(&ix->lock);
        free(ix->dir);
        free(ix);
        return rc;
    }
    remove_unnamed(ix, ix->current, true); /* what a crash or a replaced state left */
    *out = ix;
    return XE_OK;
}

void index_close(struct index *ix)
{
    if (!ix)
        return;
    snapshot_release(ix->current);
    pthread_mutex_destroy(&ix->lock);
    close(ix->lock_fd);
    free(ix->dir);
    free(ix);
}

unsigned index_tokenize_flags(const struct index *ix)
{
    return ix->tokenize_flags;
}

const char *index_dir(const struct index *ix)
{
    return ix->dir;
}

uint64_t index_applied_seq(const struct index *ix)
{
    return ix->applied_seq;
}

const char *index_wal_name(const struct index *ix)
{
    return ix->wal_name;
}

struct snapshot *index_snapshot(struct index *ix)
{
    pthread_mutex_lock(&ix->lock);
    struct snapshot *snap = ix->current;
    atomic_fetch_add(&snap->refs, 1);
    pthread_mutex_unlock(&ix->lock);
    return snap;
}

void index_publish(struct index *ix, struct snapshot *snap)
{
    pthread_mutex_lock(&ix->lock);
    struct snapshot *old = ix->current;
    snap->tokenize_flags = ix->tokenize_flags; /* before any reader can see it */
    snap->generation = ++ix->generation;
    ix->current = snap;
    pthread_mutex_unlock(&ix->lock);
    snapshot_release(old);
}

static int manifest_write(struct index *ix, const struct snapshot *snap, uint64_t seq,
                          const char *wal_name, struct xerr *err)
{
    char path[4096], line[160];
    struct buf text;
    int rc;

    buf_init(&text, MANIFEST_MAX_BYTES);
    buf_append_str(&text, "xun-manifest 1\n");
    snprintf(line, sizeof line, "seq %" PRIu64 "\n", seq);
    buf_append_str(&text, line);
    if (*wal_name) {
        snprintf(line, sizeof line, "wal %s\n", wal_name);
        buf_append_str(&text, line);
    }
    analyzer_line(ix->tokenize_flags, line, sizeof line);
    buf_append_str(&text, line);
    for (uint32_t i = 0; i < snap->n_segments; i++) {
        const struct index_segment *s = snap->segments[i];
        snprintf(line, sizeof line, "segment %s%s%s\n", s->name, *s->del_name ? " " : "",
                 s->del_name);
        buf_append_str(&text, line);
    }
    snprintf(line, sizeof line, "crc32c %08x\n", crc32c(0, text.data, text.len));
    buf_append_str(&text, line);
    index_path(ix, INDEX_MANIFEST, path, sizeof path);
    rc = text.rc ? xerr_set(err, text.rc, "%s: too many segments", path)
                 : fs_write_atomic(path, text.data, text.len, err);
    buf_fini(&text);
    return rc;
}

int index_checkpoint(struct index *ix, const struct snapshot *snap, uint64_t seq,
                     const char *wal_name, struct xerr *err)
{
    char path[4096];
    int rc;

    for (uint32_t i = 0; i < snap->n_segments; i++)
        if (snap->segments[i]->in_memory)
            return xerr_set(err, XE_IO, "segment %s is not written yet", snap->segments[i]->name);
    for (uint32_t i = 0; i < snap->n_segments; i++) {
        struct index_segment *s = snap->segments[i];
        if (!s->durable) {
            index_path(ix, s->name, path, sizeof path);
            if ((rc = fs_sync_file(path, err)))
                return rc;
            s->durable = true;
        }
        if (snap->deleted[i] != s->del_saved && snap->deleted[i]) {
            char name[INDEX_NAME_BYTES];
            index_new_name(ix, "del", "xdel", name);
            index_path(ix, name, path, sizeof path);
            if ((rc = deletions_write(snap->deleted[i], path, err)))
                return rc;
            deletions_unref(s->del_saved);
            s->del_saved = snap->deleted[i];
            deletions_ref(s->del_saved);
            memcpy(s->del_name, name, sizeof name);
        }
    }
    rc = manifest_write(ix, snap, seq, wal_name, err);
    if (rc)
        return rc;
    ix->applied_seq = seq;
    if (wal_name != ix->wal_name) /* compaction passes the current name itself */
        snprintf(ix->wal_name, sizeof ix->wal_name, "%s", wal_name);
    return XE_OK;
}

void index_remove_unnamed(struct index *ix, const struct snapshot *snap)
{
    remove_unnamed(ix, snap, false);
}

int index_reserve_segment(struct index *ix, char *path, size_t cap, struct xerr *err)
{
    char name[INDEX_NAME_BYTES];

    index_new_name(ix, "seg", "xseg", name);
    if ((size_t)snprintf(path, cap, "%s/%s", ix->dir, name) >= cap)
        return xerr_set(err, XE_IO, "%s: path too long", ix->dir);
    return XE_OK;
}

int index_commit_segment(struct index *ix, const char *path, struct xerr *err)
{
    const char *name = strrchr(path, '/');
    struct index_segment *added;
    int rc;

    name = name ? name + 1 : path;
    rc = index_segment_open(ix, name, &added, err);
    if (rc)
        return rc;
    added->durable = true;
    struct snapshot *old = index_snapshot(ix);
    uint32_t n = old->n_segments;
    struct index_segment **segs = malloc(sizeof *segs * (n + 1));
    struct deletions **dels = calloc(n + 1, sizeof *dels);
    struct snapshot *snap = NULL;
    bool nomem = !segs || !dels || n >= INDEX_MAX_SEGMENTS;
    for (uint32_t s = 0; s < n && !nomem; s++) {
        segs[s] = old->segments[s];
        dels[s] = old->deleted[s];
        deletions_ref(dels[s]);
    }
    /* the new segment's documents replace older versions with the same ids */
    uint32_t n_new = segment_n_docs(added->seg);
    for (uint32_t d = 0; d < n_new && !nomem && !rc; d++) {
        struct segment_doc doc;
        rc = segment_doc(added->seg, d, &doc, err);
        for (uint32_t s = 0; s < n && !nomem && !rc; s++) {
            uint32_t old_id;
            rc = segment_find_id(segs[s]->seg, doc.id, doc.id_len, &old_id, err);
            if (rc == XE_NOTFOUND) {
                rc = XE_OK;
                continue;
            }
            if (rc || deletions_has(dels[s], old_id))
                continue;
            if (dels[s] == old->deleted[s]) { /* shared: change a copy */
                struct deletions *copy = deletions_copy(dels[s], segment_n_docs(segs[s]->seg));
                deletions_unref(dels[s]);
                dels[s] = copy;
                nomem = !copy;
            }
            if (!nomem)
                deletions_add(dels[s], old_id);
        }
    }
    if (!nomem && !rc) {
        segs[n] = added;
        snap = snapshot_make(segs, dels, n + 1);
    }
    for (uint32_t s = 0; dels && s < n; s++)
        deletions_unref(dels[s]);
    free(segs);
    free(dels);
    snapshot_release(old);
    if (!snap) {
        segment_close(added->seg);
        free(added);
        return rc ? rc
                  : xerr_set(err, XE_NOMEM, "out of memory (or %d segments)", INDEX_MAX_SEGMENTS);
    }
    rc = index_checkpoint(ix, snap, ix->applied_seq, ix->wal_name, err);
    if (rc) {
        snapshot_release(snap);
        return rc;
    }
    index_publish(ix, snap);
    return XE_OK;
}

int index_compact(struct index *ix, const struct merge_progress *progress, struct xerr *err)
{
    struct snapshot *old = index_snapshot(ix);
    uint32_t n = old->n_segments;
    struct segment **in = n > 1 ? malloc(n * sizeof *in) : NULL;
    struct index_segment *merged = NULL;
    struct snapshot *snap = NULL;
    char name[INDEX_NAME_BYTES], path[4096];
    int rc = XE_OK;

    if (n < 2) {
        snapshot_release(old);
        return XE_OK;
    }
    if (!in) {
        snapshot_release(old);
        return xerr_set(err, XE_NOMEM, "out of memory");
    }
    for (uint32_t i = 0; i < n; i++)
        in[i] = old->segments[i]->seg;
    index_new_name(ix, "seg", "xseg", name);
    index_path(ix, name, path, sizeof path);
    rc = merge_segments(in, old->deleted, n, path, true, NULL, progress, err);
    free(in);
    snapshot_release(old);
    if (!rc)
        rc = index_segment_open(ix, name, &merged, err);
    if (!rc) {
        merged->durable = true;
        snap = snapshot_make(&merged, NULL, 1);
        if (!snap) {
            segment_close(merged->seg);
            free(merged);
            rc = xerr_set(err, XE_NOMEM, "out of memory");
        }
    }
    if (!rc)
        rc = index_checkpoint(ix, snap, ix->applied_seq, ix->wal_name, err);
    if (rc) {
        if (snap)
            snapshot_release(snap);
        unlink(path); /* never named by MANIFEST */
        return rc;
    }
    index_publish(ix, snap);
    remove_unnamed(ix, snap, false); /* the merged inputs */
    return XE_OK;
}
