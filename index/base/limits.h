/*
 * Every cap in xun, in one place, with where its number comes from.
 */
#ifndef XUN_INDEX_LIMITS_H
#define XUN_INDEX_LIMITS_H

/* API.md: a document id is a string of 1..512 bytes. */
#define DOC_ID_MAX_BYTES 512

/* A term longer than this is split, as Lucene's StandardTokenizer does at its
 * default maxTokenLength of 255. */
#define TOKEN_MAX_BYTES 255

/* One stored document (its JSON); larger bodies are refused with 413. News
 * articles are tens of kilobytes; 8 MiB leaves room for anything sane. */
#define DOC_MAX_BYTES (8u << 20)

/* Tokens indexed per field: positions are 32-bit and a field past this is
 * cut, not wrapped. 4 Mi tokens is a thousand times the longest article. */
#define FIELD_MAX_TOKENS (4u << 20)

/* The number of tags kept per document. */
#define DOC_MAX_TAGS 64

/* API.md: limit 0..100, offset 0..10000. */
#define SEARCH_MAX_LIMIT 100
#define SEARCH_MAX_OFFSET 10000

/* Query text and its parse: a query of more bytes or leaf terms is refused,
 * so that one request cannot cost seconds of work. */
#define QUERY_MAX_BYTES 4096
#define QUERY_MAX_TERMS 64

/* Snippet: about 120 characters around the densest window of matches
 * (DESIGN.md). */
#define SNIPPET_CHARS 120

/* Highlighting looks for matches in the first 64 KiB of a field only
 * (query/snippet.h): the longest news articles are tens of KiB, and it bounds
 * the work of a hit whatever the document's size (DOC_MAX_BYTES). */
#define SNIPPET_SCAN_BYTES (64u << 10)

/*
 * Internal caps of the index writer. They are not limits anyone should meet:
 * they turn a runaway length (a damaged input, a bug) into XE_LIMIT instead
 * of the process eating all memory, while staying far above real data.
 */

/* One growing work buffer of the writer: a memindex's term or id bytes, one
 * posting list being re-encoded, one stored record read back by a merge.
 * 64 GiB: the poetry corpus's whole term arena is under 100 MiB. */
#define WRITE_SCRATCH_MAX_BYTES ((size_t)1 << 36)

/* One section of a segment file (terms, postings, docs, store) or of its
 * document store, as built in memory before it is written: 1 TiB. Offsets in
 * the file are u64, so nothing in the format stops there; a segment that
 * large would be far past what one machine's merge should build. */
#define SEGMENT_SECTION_MAX_BYTES ((size_t)1 << 40)

#endif
