/*
 * The in-memory inverted index a bulk load fills before it writes a segment.
 * A document's fields share one position space (FIELD_GAP in
 * index/format/segment.h); adding it appends its postings to per-term lists and its
 * stored record to a document store.
 * A document whose id was added before replaces the earlier one.
 *
 * Single-threaded: one writer owns a memindex.
 */
#ifndef XUN_INDEX_MEMINDEX_H
#define XUN_INDEX_MEMINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/format/doc.h"
#include "index/base/limits.h"
#include "index/text/tokenizer.h"

struct xerr;
struct memindex;

/* tokenize_flags: the index's analyzer (TOKENIZE_*). */
struct memindex *memindex_new(unsigned tokenize_flags);
void memindex_free(struct memindex *mi);

/* Indexes d (copying what it keeps). XE_INPUT when d has no id. */
int memindex_add(struct memindex *mi, const struct doc_fields *d, struct xerr *err);
/* Indexes the documents of a prepared batch, in order (see docprep.h); the
 * batch must have been prepared with this memindex's tokenize flags. */
struct docprep_batch;
int memindex_add_batch(struct memindex *mi, const struct docprep_batch *b, struct xerr *err);

/* Live documents (replaced ones not counted). */
uint32_t memindex_n_docs(const struct memindex *mi);
/* Memory held, roughly: the caller writes a segment when it is large enough. */
size_t memindex_bytes(const struct memindex *mi);

/* Writes everything as one segment file at path (see format/segment.h), fsynced when durable. */
int memindex_write(struct memindex *mi, const char *path, bool durable, struct xerr *err);

/*
 * memindex_write, not fsynced, for the live writer: when the file cannot be
 * written (XE_IO, e.g. a full disk), *kept receives the same segment built
 * in memory (segment_writer_finish_kept) or NULL when memory is short too,
 * and XE_IO is returned with err naming the file. mi is unchanged either way.
 */
struct segment;
int memindex_write_kept(struct memindex *mi, const char *path, struct segment **kept,
                        struct xerr *err);

/* True when a live document has this id. */
bool memindex_has_id(const struct memindex *mi, const char *id, size_t len);
/* Drops the live document with this id; false when there is none. */
bool memindex_delete(struct memindex *mi, const char *id, size_t len);

/* memindex_write compresses the stored documents on a second thread. */
void memindex_set_parallel_write(struct memindex *mi, bool parallel);

/* Block size of the posting lists it writes; tests make it small. */
void memindex_set_block_docs(struct memindex *mi, uint32_t block_docs);

#endif
