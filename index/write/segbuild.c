/* One pipeline for writing a segment (see segbuild.h). */
#include "index/write/segbuild.h"

#include <stdlib.h>
#include <string.h>

#include "index/format/docstore.h"
#include "index/base/limits.h"
#include "index/format/segment.h"

int segbuild_init(struct segbuild *b, const char *path, uint32_t max_docs, uint32_t block_docs,
                  struct xerr *err)
{
    *b = (struct segbuild){ .path = path, .max_docs = max_docs };
    postings_writer_init(&b->pw, block_docs);
    buf_init(&b->list, WRITE_SCRATCH_MAX_BYTES);
    buf_init(&b->store_out, SEGMENT_SECTION_MAX_BYTES);
    b->sw = segment_writer_new();
    b->lengths = malloc(sizeof *b->lengths * N_FIELDS * ((size_t)max_docs + 1));
    if (!b->sw || !b->lengths)
        return xerr_set(err, XE_NOMEM, "segment %s: out of memory", path);
    postings_writer_set_lengths(&b->pw, b->lengths);
    return XE_OK;
}

static void *store_run(void *arg)
{
    struct segbuild *b = arg;
    b->store_rc = docstore_writer_finish(b->store, &b->store_out, &b->store_err);
    return NULL;
}

static void store_wait(struct segbuild *b)
{
    if (b->store_threaded)
        pthread_join(b->store_thread, NULL);
    b->store_threaded = false;
}

void segbuild_fini(struct segbuild *b)
{
    store_wait(b);
    postings_writer_fini(&b->pw);
    buf_fini(&b->list);
    buf_fini(&b->store_out);
    free(b->positions);
    free(b->lengths);
    segment_writer_free(b->sw);
}

int segbuild_add_doc(struct segbuild *b, const struct segment_doc *doc, struct xerr *err)
{
    if (b->n_docs == b->max_docs)
        return xerr_set(err, XE_LIMIT, "segment %s: more documents than announced", b->path);
    memcpy(b->lengths + (size_t)b->n_docs * N_FIELDS, doc->field_tokens,
           sizeof doc->field_tokens);
    b->n_docs++;
    return segment_writer_add_doc(b->sw, doc, err);
}

void segbuild_store(struct segbuild *b, struct docstore_writer *store, bool parallel)
{
    b->store = store;
    b->store_threaded = parallel && pthread_create(&b->store_thread, NULL, store_run, b) == 0;
}

void segbuild_term_begin(struct segbuild *b, bool has_positions)
{
    postings_writer_begin(&b->pw, has_positions);
    b->has_positions = has_positions;
    b->df = 0;
}

int segbuild_positions(struct segbuild *b, size_t n, uint32_t **out, struct xerr *err)
{
    if (n > b->positions_cap) {
        uint32_t *grown = realloc(b->positions, n * sizeof *grown);
        if (!grown)
            return xerr_set(err, XE_NOMEM, "segment %s: out of memory", b->path);
        b->positions = grown;
        b->positions_cap = n;
    }
    *out = b->positions;
    return XE_OK;
}

static int list_error(const struct segbuild *b, int rc, struct xerr *err)
{
    return xerr_set(err, rc,
                    rc == XE_NOMEM ? "segment %s: out of memory"
                                   : "segment %s: posting list too large",
                    b->path);
}

int segbuild_term_add(struct segbuild *b, uint32_t docid, const uint32_t tf[N_FIELDS],
                      const uint32_t *positions, uint32_t n_positions, struct xerr *err)
{
    int rc = postings_writer_add(&b->pw, docid, tf, positions, n_positions);
    if (rc)
        return list_error(b, rc, err);
    b->df++;
    return XE_OK;
}

int segbuild_term_end(struct segbuild *b, const char *term, size_t len, struct xerr *err)
{
    if (!b->df)
        return XE_OK;
    buf_reset(&b->list);
    int rc = postings_writer_finish(&b->pw, &b->list);
    if (rc)
        return list_error(b, rc, err);
    return segment_writer_add_term(b->sw, term, len, b->df, b->has_positions, b->list.data,
                                   b->list.len, err);
}

int segbuild_finish(struct segbuild *b, bool durable, struct segment **kept, struct xerr *err)
{
    if (b->store_threaded)
        store_wait(b);
    else
        store_run(b);
    if (b->store_rc)
        return xerr_set(err, b->store_rc, "%s", b->store_err.msg);
    return segment_writer_finish_kept(b->sw, &b->store_out, b->path, durable, kept, err);
}
