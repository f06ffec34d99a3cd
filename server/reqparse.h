/*
 * HTTP/1.1 requests from bytes (RFC 9112), for server/conn.c: Debian's
 * http_parser, plus what it lets through in the non-strict build Debian
 * ships (HTTP_PARSER_STRICT=0) and RFC 9112 refuses: header names that are
 * not tokens ("Transfer-Encoding : chunked"), a bare CR taken for a line end,
 * obs-fold; also what it takes and xun must not: two Host or two
 * Transfer-Encoding headers, Transfer-Encoding in HTTP/1.0 (400), a coding
 * other than chunked ("gzip, chunked": 501, xun decodes only chunked), a
 * method xun does not serve (PATCH, CONNECT...: 501, as the library's
 * unknown methods), and a request line without a version (HTTP/0.9: 400 as
 * soon as its line ends, not after a blank line that never comes). Two
 * Content-Length headers, "+2" for a length, a length together with
 * Transfer-Encoding, unknown methods and bad chunk sizes the library refuses
 * itself. No libevent here: tests/fuzz/fuzz_reqparse.c drives it.
 *
 * Feeding stops at two points of each request: when its head is whole
 * (REQPARSE_HEAD: the caller decides on it before any body byte is parsed)
 * and when the whole request is (REQPARSE_MESSAGE); the bytes after it are
 * the next request's (pipelining) and wait until reqparse_next().
 *
 * Memory: the head (target, header names and values) is copied into one
 * buffer owned by the parser, reused from request to request and bounded
 * by REQPARSE_HEAD_MAX_BYTES; body bytes go to the on_body callback.
 */
#ifndef XUN_SERVER_REQPARSE_H
#define XUN_SERVER_REQPARSE_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The request line and headers together; past this, 431 (or 414 while still
 * in the request line). 64 KiB was libevent's limit before it was ours;
 * browsers send under 8 KiB and nginx refuses past 4 x 8 KiB
 * (large_client_header_buffers), so nothing sane is refused. */
#define REQPARSE_HEAD_MAX_BYTES (64u << 10)

enum reqparse_event {
    REQPARSE_MORE,    /* every byte taken; the request goes on in the next ones */
    REQPARSE_HEAD,    /* the head is whole: decide on it, then feed on */
    REQPARSE_MESSAGE, /* the request is whole: answer it, then reqparse_next() */
    REQPARSE_ERROR,   /* refused: reqparse_error() says why; the connection must close */
};

struct reqparse_header {
    uint32_t name_off, name_len, value_off, value_len; /* in head */
};

/* Takes body bytes; nonzero stops the parse (REQPARSE_ERROR, status 0). */
typedef int (*reqparse_body_fn)(void *arg, const char *p, size_t len);

struct reqparse {
    http_parser parser;
    reqparse_body_fn on_body;
    void *arg;
    char *head; /* target, then header names and values, each NUL-terminated */
    size_t head_len, head_cap;
    uint32_t target_len;
    struct reqparse_header *headers;
    size_t n_headers, headers_cap;
    int piece;         /* what the head bytes arriving belong to */
    char *origin_buf;  /* the origin form of an absolute-form target, when made */
    const char *uri;   /* origin form: into head, or origin_buf */
    unsigned char prev_byte; /* the byte before the next one frame_scan() sees */
    const char *scan_at;     /* in the bytes being parsed: the next to scan */
    bool in_head, head_whole, message_whole, out_of_memory;
    const char *bad_head; /* why we refused a head the library took */
    int bad_status;       /* the status for it: 400 (or 0), 501 */
};

/* Once per process, before any parse (the library's head limit is global). */
void reqparse_setup(void);
/* on_body: where body bytes go (NULL: dropped); arg is passed to it. */
void reqparse_init(struct reqparse *rp, reqparse_body_fn on_body, void *arg);
void reqparse_fini(struct reqparse *rp);
/* Readies rp for the next request, after REQPARSE_MESSAGE (or before the first). */
void reqparse_next(struct reqparse *rp);
/* Parses from p, taking *used bytes, up to the next event. */
enum reqparse_event reqparse_feed(struct reqparse *rp, const char *p, size_t len, size_t *used);
/*
 * After REQPARSE_ERROR: the status to answer (400, 414, 431, 500 out of
 * memory, 501 a method or transfer coding xun does not serve; 0 when
 * on_body stopped it) and why, in msg.
 */
int reqparse_error(const struct reqparse *rp, char *msg, size_t cap);

/* After REQPARSE_HEAD, until reqparse_next(): */
const char *reqparse_target(const struct reqparse *rp); /* as received, NUL-terminated */
/* The target in origin form: "http://host/a?b" gives "/a?b", "http://host" gives "/". */
const char *reqparse_uri(const struct reqparse *rp);
const char *reqparse_header(const struct reqparse *rp, const char *name);
size_t reqparse_header_count(const struct reqparse *rp, const char *name);
/* At REQPARSE_HEAD: the Content-Length, or -1 when none (or the body is chunked). */
long long reqparse_content_length(const struct reqparse *rp);

#endif
