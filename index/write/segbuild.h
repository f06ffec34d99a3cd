/*
 * Building one segment file from documents and terms already in order: the
 * one pipeline behind memindex_write (terms from the in-memory index) and
 * merge_segments (terms from several segments), so that both write the same
 * bytes for the same content.
 *
 *   segbuild_init        the file's path, how many documents at most
 *   segbuild_add_doc     every document, in new docid order (0, 1, ...)
 *   segbuild_store       the document store that holds their records: its
 *                        compression starts now, on a second thread when
 *                        asked (it shares nothing with the postings)
 *   per term, in byte order:
 *     segbuild_term_begin, segbuild_term_add per document (docids
 *     increasing), segbuild_term_end; a term that got no document is skipped
 *   segbuild_finish      waits for the store, writes the file (format/segment.h)
 *   segbuild_fini        always; waits for a store thread still running
 *
 * Posting lists get the field lengths of the documents added (for the
 * blocks' score bounds, format/postings.h).
 */
#ifndef XUN_INDEX_SEGBUILD_H
#define XUN_INDEX_SEGBUILD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/base/buf.h"
#include "index/format/doc.h"
#include "index/base/error.h"
#include "index/format/postings.h"

struct docstore_writer;
struct segment;
struct segment_doc;
struct segment_writer;

struct segbuild {
    const char *path;
    struct segment_writer *sw;
    struct postings_writer pw;
    struct buf list;     /* the term's finished list */
    uint32_t *lengths;   /* N_FIELDS per document added */
    uint32_t n_docs, max_docs;
    bool has_positions;  /* the term's */
    uint32_t df;         /* the term's documents so far */
    uint32_t *positions; /* segbuild_positions' scratch */
    size_t positions_cap;

    struct docstore_writer *store;
    struct buf store_out;
    int store_rc;
    struct xerr store_err;
    pthread_t store_thread;
    bool store_threaded;
};

/* block_docs: documents per posting block (0: POSTINGS_BLOCK_DOCS). XE_OK or
 * XE_NOMEM with err set; segbuild_fini either way. */
int segbuild_init(struct segbuild *b, const char *path, uint32_t max_docs, uint32_t block_docs,
                  struct xerr *err);
void segbuild_fini(struct segbuild *b);

/* The next document (its docid is the number added before it). */
int segbuild_add_doc(struct segbuild *b, const struct segment_doc *doc, struct xerr *err);

/* The store of the documents' records (doc->store refers into it); finished
 * here on a second thread when parallel (falling back to segbuild_finish). */
void segbuild_store(struct segbuild *b, struct docstore_writer *store, bool parallel);

void segbuild_term_begin(struct segbuild *b, bool has_positions);
/* Scratch for at least n positions, in *out; XE_NOMEM. Valid until the next call. */
int segbuild_positions(struct segbuild *b, size_t n, uint32_t **out, struct xerr *err);
/* One document of the term: its new docid, tf per field and, for a term with
 * positions, the sum of tf positions. */
int segbuild_term_add(struct segbuild *b, uint32_t docid, const uint32_t tf[N_FIELDS],
                      const uint32_t *positions, uint32_t n_positions, struct xerr *err);
/* Writes the term unless it got no document (all of them deleted or replaced). */
int segbuild_term_end(struct segbuild *b, const char *term, size_t len, struct xerr *err);

/* Waits for the store and writes the file, fsynced when durable; kept as in
 * segment_writer_finish_kept (NULL: not wanted). */
int segbuild_finish(struct segbuild *b, bool durable, struct segment **kept, struct xerr *err);

#endif
