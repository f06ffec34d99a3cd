/*
 * Tests of index/index.h and index/base/fsutil.h: an index folder made on first
 * open, segments reserved, written and committed, seen again after a reopen;
 * the newest segment winning for an id; snapshots that keep their view while
 * commits publish new ones (and outlive the index); a damaged MANIFEST or a
 * damaged listed segment refused with a message naming the file, without
 * touching the folder; leftover files; fs_write_atomic() replacing a file
 * without leaving its temporary behind.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index/base/buf.h"
#include "index/base/crc32c.h"
#include "index/format/doc.h"
#include "index/format/docstore.h"
#include "index/base/error.h"
#include "index/base/fsutil.h"
#include "index/index.h"
#include "index/write/memindex.h"
#include "index/write/merge.h"
#include "index/format/postings.h"
#include "index/format/segment.h"
#include "tests/testutil.h"

#define TEST_BLOCK_DOCS 2
#define SCRATCH_MAX_BYTES (64u << 20)
#define PATH_BYTES 4096
#define MANIFEST_TEST_BYTES 4096

/* ---- helpers ---- */

struct tdoc {
    const char *id, *title, *body;
};

static char *join(const char *dir, const char *name)
{
    char *path = NULL;

    assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
    return path;
}

static bool exists(const char *dir, const char *name)
{
    char *path = join(dir, name);
    struct stat st;
    bool found = stat(path, &st) == 0;

    free(path);
    return found;
}

static void write_text(const char *dir, const char *name, const void *data, size_t len)
{
    char *path = join(dir, name);
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    free(path);
}

static unsigned char *read_whole(const char *path, size_t *len)
{
    char *text = NULL;
    struct xerr err = { 0 };

    assert_ok(fs_read_all(path, SCRATCH_MAX_BYTES, &text, len, &err), &err);
    return (unsigned char *)text;
}

static struct index *open_ok(const char *dir)
{
    struct index *ix = NULL;
    struct xerr err = { 0 };

    assert_ok(index_open(dir, TOKENIZE_DEFAULT, &ix, &err), &err);
    assert_non_null(ix);
    return ix;
}

/* Reserves, writes and commits docs as one segment; returns its file name (caller frees). */
static char *commit_docs(struct index *ix, const struct tdoc *docs, size_t n)
{
    char path[PATH_BYTES];
    struct xerr err = { 0 };
    struct memindex *mi = memindex_new(TOKENIZE_DEFAULT);

    assert_non_null(mi);
    memindex_set_block_docs(mi, TEST_BLOCK_DOCS);
    for (size_t i = 0; i < n; i++) {
        struct doc_fields d = {
            .id = { docs[i].id, strlen(docs[i].id) },
            .title = { docs[i].title, docs[i].title ? strlen(docs[i].title) : 0 },
            .body = { docs[i].body, docs[i].body ? strlen(docs[i].body) : 0 },
            .date_s = DOC_DATE_NONE,
        };
        assert_ok(memindex_add(mi, &d, &err), &err);
    }
    assert_ok(index_reserve_segment(ix, path, sizeof path, &err), &err);
    assert_ok(memindex_write(mi, path, true, &err), &err);
    memindex_free(mi);
    assert_ok(index_commit_segment(ix, path, &err), &err);
    const char *slash = strrchr(path, '/');
    return strdup(slash ? slash + 1 : path);
}

/* The title stored for id in snap, or fails; returns which segment held it. */
static uint32_t assert_title(const struct snapshot *snap, const char *id, const char *title)
{
    uint32_t s = UINT32_MAX, docid = UINT32_MAX;
    struct buf scratch;
    struct doc_fields d;
    struct xerr err = { 0 };

    assert_true(snapshot_find(snap, id, strlen(id), &s, &docid, NULL) == XE_OK);
    assert_true(s < snap->n_segments);
    buf_init(&scratch, SCRATCH_MAX_BYTES);
    assert_ok(segment_load(snap->segments[s]->seg, docid, &scratch, &d, &err), &err);
    assert_int_equal(d.id.len, strlen(id));
    assert_memory_equal(d.id.p, id, d.id.len);
    assert_int_equal(d.title.len, strlen(title));
    assert_memory_equal(d.title.p, title, d.title.len);
    buf_fini(&scratch);
    return s;
}

static bool finds(const struct snapshot *snap, const char *id)
{
    uint32_t s, docid;
    return snapshot_find(snap, id, strlen(id), &s, &docid, NULL) == XE_OK;
}

/* Whether id's document in segment s (which must hold it) is deleted in snap. */
static bool is_deleted(const struct snapshot *snap, uint32_t s, const char *id)
{
    assert_true(s < snap->n_segments);
    uint32_t docid = test_find_id(snap->segments[s]->seg, id, strlen(id));
    assert_int_not_equal(docid, DOCID_END);
    return snapshot_is_deleted(snap, s, docid);
}

static const struct tdoc docs_a[] = {
    { "a1", "alpha one", "first segment body" },
    { "a2", "alpha two", "first segment again" },
    { "x", "old x", "the old version" },
};
static const struct tdoc docs_b[] = {
    { "b1", "beta one", "second segment body" },
    { "x", "new x", "the new version" },
};

/* ---- opening and committing ---- */

static void test_index_open_creates_a_missing_folder_with_an_empty_snapshot(void **state)
{
    char *dir = join(*state, "data");
    struct stat st;

    assert_false(exists(*state, "data"));
    struct index *ix = open_ok(dir);
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_string_equal(index_dir(ix), dir);
    struct snapshot *snap = index_snapshot(ix);
    assert_int_equal(snap->n_segments, 0);
    assert_int_equal(snap->n_docs, 0);
    assert_int_equal(snap->n_terms, 0);
    assert_int_equal(snap->bytes, 0);
    for (int f = 0; f < N_FIELDS; f++)
        assert_int_equal(snap->field_tokens[f], 0);
    assert_false(finds(snap, "a1"));
    snapshot_release(snap);
    index_close(ix);
    /* and opens again, still empty */
    ix = open_ok(dir);
    snap = index_snapshot(ix);
    assert_int_equal(snap->n_segments, 0);
    snapshot_release(snap);
    index_close(ix);
    free(dir);
}

static void test_index_open_refuses_a_folder_it_cannot_make(void **state)
{
    char *deep = join(*state, "no/such/parent");
    char *file = join(*state, "plain-file");
    struct index *ix = NULL;
    struct xerr err = { 0 };

    assert_int_equal(index_open(deep, TOKENIZE_DEFAULT, &ix, &err), XE_IO);
    assert_non_null(strstr(err.msg, "no/such/parent"));
    assert_null(ix);
    write_text(*state, "plain-file", "x", 1);
    xerr_clear(&err);
    assert_int_equal(index_open(file, TOKENIZE_DEFAULT, &ix, &err), XE_IO);
    assert_non_null(strstr(err.msg, "plain-file"));
    assert_null(ix);
    free(deep);
    free(file);
}

/*
 * One writer per folder, whatever happens to the files in it: removing LOCK
 * (or replacing it) while a holder runs must not let a second one in.
 */
static void test_index_open_refuses_a_second_opener_even_with_lock_file_removed(void **state)
{
    char *dir = join(*state, "data");
    char *lock = join(dir, "LOCK");
    char pid[32];
    struct index *second = NULL;
    struct xerr err = { 0 };

    struct index *first = open_ok(dir);
    assert_int_equal(index_open(dir, TOKENIZE_DEFAULT, &second, &err), XE_IO);
    assert_null(second);
    assert_non_null(strstr(err.msg, "in use by another xun process"));
    snprintf(pid, sizeof pid, "pid %ld", (long)getpid());
    assert_non_null(strstr(err.msg, pid));
    /* the note removed, then a file of another content put in its place */
    assert_int_equal(unlink(lock), 0);
    xerr_clear(&err);
    assert_int_equal(index_open(dir, TOKENIZE_DEFAULT, &second, &err), XE_IO);
    assert_non_null(strstr(err.msg, "in use by another xun process"));
    write_text(dir, "LOCK", "", 0);
    xerr_clear(&err);
    assert_int_equal(index_open(dir, TOKENIZE_DEFAULT, &second, &err), XE_IO);
    assert_null(second);
    /* the holder gone, the folder opens again */
    index_close(first);
    second = open_ok(dir);
    index_close(second);
    free(lock);
    free(dir);
}

static void test_index_commit_publishes_segments_that_reopen_sees(void **state)
{
    struct index *ix = open_ok(*state);
    static const struct tdoc one[] = { { "c1", "gamma", "one two three" } };
    static const struct tdoc two[] = { { "d1", "delta", "four" }, { "d2", "epsilon", "five" } };
    char *name1 = commit_docs(ix, one, 1);
    char *name2 = commit_docs(ix, two, 2);

    assert_string_not_equal(name1, name2);
    for (int round = 0; round < 2; round++) {
        struct snapshot *snap = index_snapshot(ix);
        uint64_t terms = 0, bytes = 0, tokens[N_FIELDS] = { 0 };
        assert_int_equal(snap->n_segments, 2);
        assert_string_equal(snap->segments[0]->name, name1); /* oldest first */
        assert_string_equal(snap->segments[1]->name, name2);
        assert_int_equal(segment_n_docs(snap->segments[0]->seg), 1);
        assert_int_equal(segment_n_docs(snap->segments[1]->seg), 2);
        assert_int_equal(snap->n_docs, 3);
        for (uint32_t s = 0; s < 2; s++) {
            const struct segment *seg = snap->segments[s]->seg;
            terms += segment_n_terms(seg);
            bytes += segment_file_bytes(seg);
            for (int f = 0; f < N_FIELDS; f++)
                tokens[f] += segment_field_tokens(seg, (enum doc_field)f);
        }
        assert_int_equal(snap->n_terms, terms);
        assert_int_equal(snap->bytes, bytes);
        assert_memory_equal(snap->field_tokens, tokens, sizeof tokens);
        assert_int_equal(tokens[FIELD_TITLE], 3);
        assert_int_equal(tokens[FIELD_BODY], 5);
        assert_int_equal(assert_title(snap, "c1", "gamma"), 0);
        assert_int_equal(assert_title(snap, "d2", "epsilon"), 1);
        assert_false(finds(snap, "e1"));
        snapshot_release(snap);
        /* the second round looks at what a fresh open reads from the folder */
        index_close(ix);
        ix = open_ok(*state);
    }
    index_close(ix);
    free(name1);
    free(name2);
}

static void test_index_newest_segment_wins_for_a_repeated_id(void **state)
{
    struct index *ix = open_ok(*state);

    free(commit_docs(ix, docs_a, 3));
    free(commit_docs(ix, docs_b, 2));
    for (int round = 0; round < 2; round++) {
        struct snapshot *snap = index_snapshot(ix);
        assert_int_equal(snap->n_segments, 2);
        assert_int_equal(assert_title(snap, "x", "new x"), 1);
        assert_int_equal(assert_title(snap, "a2", "alpha two"), 0);
        assert_int_equal(assert_title(snap, "b1", "beta one"), 1);
        /* the old "x" is tombstoned: four live documents of five stored */
        assert_int_equal(snap->n_docs, 4);
        assert_true(is_deleted(snap, 0, "x"));
        assert_false(is_deleted(snap, 1, "x"));
        assert_false(is_deleted(snap, 0, "a1"));
        assert_false(is_deleted(snap, 0, "a2"));
        assert_false(is_deleted(snap, 1, "b1"));
        snapshot_release(snap);
        index_close(ix);
        ix = open_ok(*state);
    }
    index_close(ix);
}

static void test_index_snapshot_keeps_its_view_across_a_commit(void **state)
{
    struct index *ix = open_ok(*state);

    free(commit_docs(ix, docs_a, 3));
    struct snapshot *before = index_snapshot(ix);
    free(commit_docs(ix, docs_b, 2));
    struct snapshot *after = index_snapshot(ix);

    assert_ptr_not_equal(before, after);
    assert_int_equal(before->n_segments, 1);
    assert_int_equal(before->n_docs, 3);
    assert_false(finds(before, "b1"));
    assert_int_equal(assert_title(before, "x", "old x"), 0);
    assert_int_equal(after->n_segments, 2);
    assert_true(finds(after, "b1"));
    assert_int_equal(assert_title(after, "x", "new x"), 1);
    /* the commit tombstoned the old "x" in the new snapshot only */
    assert_int_equal(after->n_docs, 4);
    assert_true(is_deleted(after, 0, "x"));
    assert_false(is_deleted(before, 0, "x"));
    assert_int_equal(before->n_docs, 3);
    /* both share the first segment */
    assert_ptr_equal(before->segments[0], after->segments[0]);
    snapshot_release(after);
    /* the old view still reads after a newer one is gone */
    assert_int_equal(assert_title(before, "a1", "alpha one"), 0);
    snapshot_release(before);
    index_close(ix);
}

static void test_index_snapshot_outlives_index_close(void **state)
{
    struct index *ix = open_ok(*state);

    free(commit_docs(ix, docs_a, 3));
    struct snapshot *snap = index_snapshot(ix);
    index_close(ix);
    assert_int_equal(snap->n_segments, 1);
    assert_int_equal(assert_title(snap, "x", "old x"), 0);
    snapshot_release(snap);
}

/* Records what a merge reports: each value in [0, 1], never going back. */
static void note_progress(void *ctx, double done)
{
    double *last = ctx;
    assert_true(done >= *last && done <= 1);
    *last = done;
}

/* Compacting merges every segment into one, drops replaced versions and survives a reopen. */
static void test_index_compact_merges_all_segments_into_one(void **state)
{
    struct index *ix = open_ok(*state);
    struct xerr err = { 0 };
    char *a = commit_docs(ix, docs_a, 3);
    char *b = commit_docs(ix, docs_b, 2);

    struct snapshot *before = index_snapshot(ix);
    assert_int_equal(before->n_segments, 2);
    assert_int_equal(before->n_docs, 4);
    assert_int_equal(before->n_docs_stored, 5);
    double done = 0;
    struct merge_progress progress = { note_progress, &done };
    assert_ok(index_compact(ix, &progress, &err), &err);
    assert_true(done == 1);
    /* a snapshot taken before keeps its segments */
    assert_int_equal(before->n_segments, 2);
    assert_title(before, "x", "new x");
    snapshot_release(before);

    struct snapshot *snap = index_snapshot(ix);
    assert_int_equal(snap->n_segments, 1);
    assert_int_equal(snap->n_docs, 4);
    assert_int_equal(snap->n_docs_stored, 4); /* the old x is gone for good */
    assert_null(snap->deleted[0]);
    assert_title(snap, "a1", "alpha one");
    assert_title(snap, "x", "new x");
    assert_title(snap, "b1", "beta one");
    snapshot_release(snap);
    assert_false(exists(*state, a));
    assert_false(exists(*state, b));
    /* one segment: nothing to do */
    assert_ok(index_compact(ix, NULL, &err), &err);
    index_close(ix);

    ix = open_ok(*state);
    snap = index_snapshot(ix);
    assert_int_equal(snap->n_segments, 1);
    assert_int_equal(snap->n_docs, 4);
    assert_title(snap, "x", "new x");
    assert_title(snap, "a2", "alpha two");
    snapshot_release(snap);
    index_close(ix);
    free(a);
    free(b);
}

static void test_index_reserve_gives_fresh_names_above_listed_ones(void **state)
{
    char path1[PATH_BYTES], path2[PATH_BYTES], small[8];
    struct xerr err = { 0 };
    struct index *ix = open_ok(*state);
    char *listed = commit_docs(ix, docs_a, 3);

    assert_ok(index_reserve_segment(ix, path1, sizeof path1, &err), &err);
    assert_ok(index_reserve_segment(ix, path2, sizeof path2, &err), &err);
    assert_string_not_equal(path1, path2);
    assert_int_equal(strncmp(path1, *state, strlen(*state)), 0); /* in the folder */
    assert_null(strstr(path1, listed));
    assert_int_equal(index_reserve_segment(ix, small, sizeof small, &err), XE_IO);
    index_close(ix);

    /* a reopened index does not hand out a name the manifest lists */
    ix = open_ok(*state);
    assert_ok(index_reserve_segment(ix, path1, sizeof path1, &err), &err);
    assert_null(strstr(path1, listed));
    const char *name = strrchr(path1, '/') + 1;
    assert_false(exists(*state, name));
    assert_true(strcmp(name, listed) > 0); /* same width: later names sort later */
    index_close(ix);
    free(listed);
}

/* ---- damage ---- */

/* Writes body + its crc32c line as the MANIFEST (crc_xor damages the checksum). */
static void write_manifest(const char *dir, const char *body, uint32_t crc_xor, bool crc_line)
{
    char text[MANIFEST_TEST_BYTES];
    size_t len = strlen(body);

    assert_true(len + 32 < sizeof text);
    memcpy(text, body, len);
    if (crc_line)
        len += (size_t)snprintf(text + len, sizeof text - len, "crc32c %08x\n",
                                crc32c(0, body, strlen(body)) ^ crc_xor);
    write_text(dir, INDEX_MANIFEST, text, len);
}

static void test_index_refuses_damaged_manifest(void **state)
{
    static const struct {
        const char *what, *body;
        uint32_t crc_xor;
        bool crc_line;
        int rc; /* expected; XE_NOTFOUND or XE_CORRUPT */
        const char *says; /* in the message */
    } cases[] = {
        { "bad checksum", "xun-manifest 1\nsegment seg-00000001.xseg\n", 1, true, XE_CORRUPT,
          "MANIFEST" },
        { "checksum of other bytes", "xun-manifest 1\nsegment seg-00000001.xseg\n",
          0x80000000, true, XE_CORRUPT, "MANIFEST" },
        { "no checksum line", "xun-manifest 1\nsegment seg-00000001.xseg\n", 0, false,
          XE_CORRUPT, "MANIFEST" },
        { "empty file", "", 0, false, XE_CORRUPT, "MANIFEST" },
        { "only a checksum line", "", 0, true, XE_CORRUPT, "MANIFEST" },
        { "unknown version", "xun-manifest 2\nsegment seg-00000001.xseg\n", 0, true,
          XE_CORRUPT, "xun-manifest 2" },
        { "unknown first line", "hello\n", 0, true, XE_CORRUPT, "MANIFEST" },
        /* (with the analyzer line: a wrong analyzer is refused before any
         * segment file is opened, since opening may upgrade one) */
        { "segment that does not exist",
          "xun-manifest 1\nanalyzer fold-variants\nsegment seg-00000042.xseg\n", 0, true,
          XE_NOTFOUND, "seg-00000042.xseg" },
        { "misspelt line", "xun-manifest 1\nsegmnt seg-00000001.xseg\n", 0, true,
          XE_CORRUPT, "MANIFEST" },
        { "segment name with a slash", "xun-manifest 1\nsegment ../seg-00000001.xseg\n", 0,
          true, XE_CORRUPT, "MANIFEST" },
        { "segment name not a segment", "xun-manifest 1\nsegment MANIFEST\n", 0, true,
          XE_CORRUPT, "MANIFEST" },
        { "segment name empty", "xun-manifest 1\nsegment \n", 0, true, XE_CORRUPT,
          "MANIFEST" },
        { "bad sequence number", "xun-manifest 1\nseq twelve\n", 0, true, XE_CORRUPT,
          "MANIFEST" },
        { "unknown analyzer", "xun-manifest 1\nanalyzer fold-variants stemming\n", 0, true,
          XE_CORRUPT, "unknown analyzer" },
        { "analyzer without folding, opened with it",
          "xun-manifest 1\nanalyzer\nsegment seg-00000001.xseg\n", 0, true, XE_INPUT,
          "without simplified/traditional folding" },
        { "no analyzer line (before folding), opened with it",
          "xun-manifest 1\nsegment seg-00000001.xseg\n", 0, true, XE_INPUT,
          "without simplified/traditional folding" },
        { "second segment missing",
          "xun-manifest 1\nanalyzer fold-variants\nsegment seg-00000001.xseg\n"
          "segment seg-00000009.xseg\n", 0, true, XE_NOTFOUND, "seg-00000009.xseg" },
    };
    struct index *ix = open_ok(*state);
    char *name = commit_docs(ix, docs_a, 3);
    struct xerr err = { 0 };

    index_close(ix);
    assert_string_equal(name, "seg-00000001.xseg");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ix = NULL;
        write_manifest(*state, cases[i].body, cases[i].crc_xor, cases[i].crc_line);
        xerr_clear(&err);
        int rc = index_open(*state, TOKENIZE_DEFAULT, &ix, &err);
        if (rc != cases[i].rc || !strstr(err.msg, cases[i].says))
            print_error("%s: got %d (%s)\n", cases[i].what, rc, err.msg);
        assert_int_equal(rc, cases[i].rc);
        assert_non_null(strstr(err.msg, cases[i].says));
        assert_null(ix);
        /* a refused open leaves the folder as it was */
        assert_true(exists(*state, name));
    }
    /* an index without folding opens when asked for none */
    write_manifest(*state, "xun-manifest 1\nanalyzer\nsegment seg-00000001.xseg\n", 0, true);
    assert_ok(index_open(*state, 0, &ix, &err), &err);
    assert_int_equal(index_tokenize_flags(ix), 0);
    index_close(ix);
    /* a good manifest naming the same segment opens again */
    write_manifest(*state, "xun-manifest 1\nanalyzer fold-variants\nsegment seg-00000001.xseg\n",
                   0, true);
    ix = open_ok(*state);
    assert_int_equal(index_tokenize_flags(ix), TOKENIZE_FOLD_VARIANTS);
    struct snapshot *snap = index_snapshot(ix);
    assert_int_equal(snap->n_segments, 1);
    assert_int_equal(snap->n_docs, 3);
    snapshot_release(snap);
    index_close(ix);
    free(name);
}

static void test_index_refuses_manifest_cut_short(void **state)
{
    struct index *ix = open_ok(*state);
    char *name = commit_docs(ix, docs_a, 3);
    char *manifest = join(*state, INDEX_MANIFEST);
    size_t len;
    unsigned char *text = read_whole(manifest, &len);
    struct xerr err = { 0 };

    index_close(ix);
    /* every cut that loses part of the checksum line (or more) is refused */
    for (size_t cut = 0; cut + 1 < len; cut++) {
        write_text(*state, INDEX_MANIFEST, text, cut);
        ix = NULL;
        xerr_clear(&err);
        assert_int_equal(index_open(*state, TOKENIZE_DEFAULT, &ix, &err), XE_CORRUPT);
        assert_non_null(strstr(err.msg, INDEX_MANIFEST));
        assert_null(ix);
    }
    write_text(*state, INDEX_MANIFEST, text, len);
    index_close(open_ok(*state));
    free(text);
    free(manifest);
    free(name);
}

static void flip_file_byte(const char *dir, const char *name, size_t at)
{
    char *path = join(dir, name);
    size_t len;
    unsigned char *data = read_whole(path, &len);

    assert_true(at < len);
    data[at] ^= 0x20;
    write_text(dir, name, data, len);
    free(data);
    free(path);
}

static void test_index_refuses_damaged_listed_segment(void **state)
{
    struct index *ix = open_ok(*state);
    char *first = commit_docs(ix, docs_a, 3);
    char *second = commit_docs(ix, docs_b, 2);
    char *path = join(*state, second);
    struct xerr err = { 0 };
    size_t len;

    index_close(ix);
    free(read_whole(path, &len));
    static const size_t offsets[] = { 0, 9, 20, 200 }; /* magic, version, counts, data */
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        flip_file_byte(*state, second, offsets[i]);
        ix = NULL;
        xerr_clear(&err);
        assert_int_equal(index_open(*state, TOKENIZE_DEFAULT, &ix, &err), XE_CORRUPT);
        if (!strstr(err.msg, second))
            print_error("no \"%s\" in: %s\n", second, err.msg);
        assert_non_null(strstr(err.msg, second));
        assert_null(ix);
        flip_file_byte(*state, second, offsets[i]); /* undo */
    }
    /* cut short */
    unsigned char *data = read_whole(path, &len);
    write_text(*state, second, data, len / 2);
    ix = NULL;
    xerr_clear(&err);
    assert_int_equal(index_open(*state, TOKENIZE_DEFAULT, &ix, &err), XE_CORRUPT);
    assert_non_null(strstr(err.msg, second));
    /* gone */
    assert_int_equal(remove(path), 0);
    xerr_clear(&err);
    assert_int_equal(index_open(*state, TOKENIZE_DEFAULT, &ix, &err), XE_NOTFOUND);
    assert_non_null(strstr(err.msg, second));
    assert_null(ix);
    assert_true(exists(*state, first)); /* nothing was cleaned up by a refused open */
    /* restored, the index opens with both */
    write_text(*state, second, data, len);
    ix = open_ok(*state);
    struct snapshot *snap = index_snapshot(ix);
    assert_int_equal(snap->n_segments, 2);
    snapshot_release(snap);
    index_close(ix);
    free(data);
    free(path);
    free(first);
    free(second);
}

static void test_index_open_skips_unlisted_leftover_files(void **state)
{
    static const char *const ours[] = { "seg-00000007.xseg", "seg-00000001.xseg.tmp",
                                        "MANIFEST.tmp", "del-00000003.xdel" };
    struct index *ix = open_ok(*state);
    char *listed = commit_docs(ix, docs_a, 3);

    index_close(ix);
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++)
        write_text(*state, ours[i], "garbage", 7);
    write_text(*state, "notes.txt", "mine", 4);
    ix = open_ok(*state);
    struct snapshot *snap = index_snapshot(ix);
    assert_int_equal(snap->n_segments, 1);
    assert_string_equal(snap->segments[0]->name, listed);
    assert_int_equal(snap->n_docs, 3);
    snapshot_release(snap);
    /* index.h: files of the index's kinds that the manifest does not name are removed */
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++)
        assert_false(exists(*state, ours[i]));
    assert_true(exists(*state, listed));
    assert_true(exists(*state, "notes.txt")); /* not one of the index's files */
    /* and a commit after them works */
    free(commit_docs(ix, docs_b, 2));
    index_close(ix);
    ix = open_ok(*state);
    snap = index_snapshot(ix);
    assert_int_equal(snap->n_segments, 2);
    snapshot_release(snap);
    index_close(ix);
    free(listed);
}

static void test_index_commit_refuses_bad_segment_and_keeps_state(void **state)
{
    char path[PATH_BYTES];
    struct xerr err = { 0 };
    struct index *ix = open_ok(*state);

    free(commit_docs(ix, docs_a, 3));
    struct snapshot *before = index_snapshot(ix);
    /* not written at all */
    assert_ok(index_reserve_segment(ix, path, sizeof path, &err), &err);
    assert_int_equal(index_commit_segment(ix, path, &err), XE_NOTFOUND);
    /* garbage */
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("not a segment", f);
    fclose(f);
    xerr_clear(&err);
    assert_int_equal(index_commit_segment(ix, path, &err), XE_CORRUPT);
    assert_non_null(strstr(err.msg, strrchr(path, '/') + 1));
    struct snapshot *now = index_snapshot(ix);
    assert_ptr_equal(now, before); /* nothing published */
    snapshot_release(now);
    snapshot_release(before);
    index_close(ix);
    ix = open_ok(*state); /* nor written to the manifest */
    now = index_snapshot(ix);
    assert_int_equal(now->n_segments, 1);
    snapshot_release(now);
    index_close(ix);
}

/* ---- fsutil ---- */

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;

    assert_non_null(d);
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void test_fs_write_atomic_replaces_file_without_leaving_tmp(void **state)
{
    static const char *const contents[] = { "first version\n", "a longer second version\n",
                                            "", "3" };
    char *path = join(*state, "file");
    struct xerr err = { 0 };

    for (size_t i = 0; i < sizeof contents / sizeof contents[0]; i++) {
        size_t len;
        assert_ok(fs_write_atomic(path, contents[i], strlen(contents[i]), &err), &err);
        unsigned char *got = read_whole(path, &len);
        assert_int_equal(len, strlen(contents[i]));
        assert_memory_equal(got, contents[i], len);
        free(got);
        assert_false(exists(*state, "file.tmp"));
        assert_int_equal(count_entries(*state), 1);
    }
    /* the fast variant (no fsyncs) replaces the same way */
    assert_ok(fs_write_fast(path, "fast", 4, &err), &err);
    size_t len;
    unsigned char *got = read_whole(path, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(got, "fast", 4);
    free(got);
    assert_false(exists(*state, "file.tmp"));
    assert_int_equal(count_entries(*state), 1);
    free(path);
}

static void test_fs_write_atomic_reports_a_missing_folder(void **state)
{
    char *path = join(*state, "missing/file");
    struct xerr err = { 0 };

    assert_int_equal(fs_write_atomic(path, "x", 1, &err), XE_IO);
    assert_non_null(strstr(err.msg, "missing/file"));
    assert_int_equal(count_entries(*state), 0);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, test_dir_setup, test_dir_teardown)
        T(test_index_open_creates_a_missing_folder_with_an_empty_snapshot),
        T(test_index_open_refuses_a_folder_it_cannot_make),
        T(test_index_open_refuses_a_second_opener_even_with_lock_file_removed),
        T(test_index_commit_publishes_segments_that_reopen_sees),
        T(test_index_newest_segment_wins_for_a_repeated_id),
        T(test_index_snapshot_keeps_its_view_across_a_commit),
        T(test_index_snapshot_outlives_index_close),
        T(test_index_reserve_gives_fresh_names_above_listed_ones),
        T(test_index_compact_merges_all_segments_into_one),
        T(test_index_refuses_damaged_manifest),
        T(test_index_refuses_manifest_cut_short),
        T(test_index_refuses_damaged_listed_segment),
        T(test_index_open_skips_unlisted_leftover_files),
        T(test_index_commit_refuses_bad_segment_and_keeps_state),
        T(test_fs_write_atomic_replaces_file_without_leaving_tmp),
        T(test_fs_write_atomic_reports_a_missing_folder),
#undef T
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);

    docstore_thread_cleanup();
    return failed;
}
