/*
 * Requests from bytes (see reqparse.h). http_parser calls back with pieces
 * of the target, header names and values, split wherever the reads split
 * them; they are appended to one buffer, each ended with a NUL once the next
 * piece starts, so that a header is four offsets and a lookup is a scan
 * (requests carry a dozen headers). The parser is paused at the end of the
 * head and of the message so that the caller acts between them.
 */
#include "server/reqparse.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum piece { PIECE_NONE, PIECE_URL, PIECE_FIELD, PIECE_VALUE };

static bool head_append(struct reqparse *rp, const char *p, size_t len)
{
    if (rp->head_len + len + 1 > rp->head_cap) {
        size_t cap = rp->head_cap ? rp->head_cap : 1024;
        while (cap < rp->head_len + len + 1)
            cap *= 2;
        char *grown = realloc(rp->head, cap);
        if (!grown) {
            rp->out_of_memory = true;
            return false;
        }
        rp->head = grown;
        rp->head_cap = cap;
    }
    memcpy(rp->head + rp->head_len, p, len);
    rp->head_len += len;
    return true;
}

/* Ends the piece in progress with a NUL. */
static bool piece_end(struct reqparse *rp)
{
    struct reqparse_header *h = rp->n_headers ? &rp->headers[rp->n_headers - 1] : NULL;

    if (rp->piece == PIECE_NONE)
        return true;
    if (!head_append(rp, "", 1))
        return false;
    if (rp->piece == PIECE_URL) {
        rp->target_len = (uint32_t)rp->head_len - 1;
    } else if (rp->piece == PIECE_FIELD) {
        h->name_len = (uint32_t)rp->head_len - 1 - h->name_off;
        h->value_off = (uint32_t)rp->head_len; /* an empty value, unless bytes follow */
        if (!head_append(rp, "", 1))
            return false;
        rp->head_len--; /* a value's bytes go over this NUL */
    } else {
        h->value_len = (uint32_t)rp->head_len - 1 - h->value_off;
        while (h->value_len && (rp->head[h->value_off + h->value_len - 1] == ' ' ||
                                rp->head[h->value_off + h->value_len - 1] == '\t'))
            rp->head[h->value_off + --h->value_len] = '\0'; /* RFC 9110 5.5: trimmed */
    }
    rp->piece = PIECE_NONE;
    return true;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct reqparse *rp = p->data;

    rp->piece = PIECE_URL;
    /*
     * The library marks a request line that ends after its target (no
     * version) as HTTP/0.9 as it calls here with the target's last piece;
     * it would then wait for a blank line that an HTTP/0.9 client never
     * sends. (Before the version the numbers are 0.0, or the previous
     * request's 1.x.)
     */
    if (p->http_major == 0 && p->http_minor == 9) {
        rp->bad_head = "a request line without an HTTP version is HTTP/0.9, which xun does "
                       "not speak; send HTTP/1.1";
        return -1;
    }
    return head_append(rp, at, len) ? 0 : -1;
}

/* RFC 9110 5.6.2: a header name is a token. */
static bool is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct reqparse *rp = p->data;

    if (!rp->in_head)
        return 0; /* a trailer (after a chunked body): ignored */
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)at[i])) {
            rp->bad_head = "a header name has a character other than a token's (RFC 9110 "
                           "5.6.2), such as a space before the colon";
            return -1;
        }
    if (rp->piece != PIECE_FIELD) {
        if (!piece_end(rp))
            return -1;
        if (rp->n_headers == rp->headers_cap) {
            size_t cap = rp->headers_cap ? 2 * rp->headers_cap : 16;
            struct reqparse_header *grown = realloc(rp->headers, cap * sizeof *grown);
            if (!grown) {
                rp->out_of_memory = true;
                return -1;
            }
            rp->headers = grown;
            rp->headers_cap = cap;
        }
        rp->headers[rp->n_headers++] = (struct reqparse_header){
            .name_off = (uint32_t)rp->head_len
        };
        rp->piece = PIECE_FIELD;
    }
    return head_append(rp, at, len) ? 0 : -1;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct reqparse *rp = p->data;

    if (!rp->in_head)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)at[i];
        if ((ch < ' ' && ch != '\t') || ch == 0x7f) {
            /* RFC 9110 5.5; the library skips the check on a value's first byte */
            rp->bad_head = "a control character in a header value";
            return -1;
        }
    }
    if (rp->piece == PIECE_FIELD) {
        if (!piece_end(rp))
            return -1;
        rp->piece = PIECE_VALUE;
    }
    return head_append(rp, at, len) ? 0 : -1;
}

/* The origin form of an absolute-form target (RFC 9112 3.2.2): "scheme://authority"
 * dropped, "/" put before an empty path. Other targets are kept as they are. */
static bool origin_form(struct reqparse *rp)
{
    const char *t = rp->head;
    size_t i = 0;

    rp->uri = t;
    if (t[0] == '/' || t[0] == '*')
        return true;
    while ((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') ||
           (i && ((t[i] >= '0' && t[i] <= '9') || t[i] == '+' || t[i] == '-' || t[i] == '.')))
        i++;
    if (!i || strncmp(t + i, "://", 3))
        return true;
    const char *rest = t + i + 3 + strcspn(t + i + 3, "/?#");
    if (*rest == '/') {
        rp->uri = rest;
        return true;
    }
    size_t n = strlen(rest);
    rp->origin_buf = malloc(n + 2);
    if (!rp->origin_buf) {
        rp->out_of_memory = true;
        return false;
    }
    rp->origin_buf[0] = '/';
    memcpy(rp->origin_buf + 1, rest, n + 1);
    rp->uri = rp->origin_buf;
    return true;
}

/* Refuses the head with status and why; -1 for the library's callback. */
static int refuse(struct reqparse *rp, int status, const char *why)
{
    rp->bad_head = why;
    rp->bad_status = status;
    return -1;
}

/*
 * Transfer-Encoding (RFC 9112 6.1, 6.3), beyond what the library checks:
 * one header, in HTTP/1.1 only, "chunked" last and once; xun decodes no
 * other coding ("gzip, chunked": 501, RFC 9112 6.1). Empty list elements
 * are skipped (RFC 9110 5.6.1); a coding's parameters are not looked at.
 */
static int check_transfer_encoding(struct reqparse *rp, const http_parser *p)
{
    size_t n = reqparse_header_count(rp, "Transfer-Encoding");
    bool chunked_last = false, other = false;
    unsigned n_chunked = 0;

    if (!n)
        return 0;
    if (n > 1)
        return refuse(rp, 400, "two Transfer-Encoding headers; send one");
    if (p->http_major == 1 && p->http_minor == 0)
        return refuse(rp, 400, "Transfer-Encoding in an HTTP/1.0 request, which cannot "
                               "carry it (RFC 9112 6.1); send HTTP/1.1 or Content-Length");
    for (const char *v = reqparse_header(rp, "Transfer-Encoding"); *v;) {
        size_t len = strcspn(v, ",");
        const char *e = v;
        while (*e == ' ' || *e == '\t')
            e++;
        size_t coding = strcspn(e, ",; \t");
        if (coding) {
            chunked_last = coding == 7 && !strncasecmp(e, "chunked", 7);
            n_chunked += chunked_last;
            other |= !chunked_last;
        }
        v += len + (v[len] == ',');
    }
    if (!chunked_last)
        return refuse(rp, 400, "a Transfer-Encoding whose last coding is not chunked: the "
                               "body's length cannot be known (RFC 9112 6.3)");
    if (n_chunked > 1)
        return refuse(rp, 400, "Transfer-Encoding names chunked twice (RFC 9112 6.1)");
    if (other)
        return refuse(rp, 501, "a Transfer-Encoding other than chunked alone: xun decodes "
                               "only chunked");
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct reqparse *rp = p->data;

    if (!piece_end(rp) || !rp->target_len)
        return -1;
    switch (p->method) {
    case HTTP_GET: case HTTP_HEAD: case HTTP_POST: case HTTP_PUT: case HTTP_DELETE:
    case HTTP_OPTIONS:
        break;
    default: /* known to the library (PATCH, CONNECT, ...), not to xun: as unknown ones */
        return refuse(rp, 501, "a method xun does not serve; xun serves GET, HEAD, POST, "
                               "PUT, DELETE, OPTIONS");
    }
    if (reqparse_header_count(rp, "Host") > 1)
        return refuse(rp, 400, "two Host headers; send one (RFC 9112 3.2)");
    if (check_transfer_encoding(rp, p))
        return -1;
    for (uint32_t i = 0; i < rp->target_len; i++)
        if ((unsigned char)rp->head[i] <= ' ' || rp->head[i] == 0x7f) {
            /* the library's lax build lets TAB and FF through */
            rp->bad_head = "a control character in the request target";
            return -1;
        }
    if (!origin_form(rp))
        return -1;
    rp->in_head = false;
    rp->head_whole = true;
    http_parser_pause(p, 1);
    return 0;
}

static bool frame_scan(struct reqparse *rp, const unsigned char *p, size_t len);

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct reqparse *rp = p->data;

    /* the framing before these bytes is scanned; they are data, not scanned */
    if (!frame_scan(rp, (const unsigned char *)rp->scan_at, (size_t)(at - rp->scan_at)))
        return -1;
    rp->scan_at = at + len;
    rp->prev_byte = 0;
    return rp->on_body ? rp->on_body(rp->arg, at, len) : 0;
}

static int on_message_complete(http_parser *p)
{
    struct reqparse *rp = p->data;

    rp->message_whole = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void reqparse_init(struct reqparse *rp, reqparse_body_fn body_fn, void *arg)
{
    *rp = (struct reqparse){ .on_body = body_fn, .arg = arg };
    http_parser_init(&rp->parser, HTTP_REQUEST);
    rp->parser.data = rp;
    reqparse_next(rp);
}

void reqparse_setup(void)
{
    /* the library's limit counts the request line and headers together, as
     * ours does; it is one for the process, and this is its only user */
    http_parser_set_max_header_size(REQPARSE_HEAD_MAX_BYTES);
}

void reqparse_fini(struct reqparse *rp)
{
    free(rp->head);
    free(rp->headers);
    free(rp->origin_buf);
    *rp = (struct reqparse){ 0 };
}

void reqparse_next(struct reqparse *rp)
{
    rp->head_len = 0;
    rp->target_len = 0;
    rp->n_headers = 0;
    rp->piece = PIECE_NONE;
    free(rp->origin_buf);
    rp->origin_buf = NULL;
    rp->uri = NULL;
    rp->prev_byte = '\n';
    rp->in_head = true;
    rp->head_whole = rp->message_whole = rp->out_of_memory = false;
    rp->bad_head = NULL;
    rp->bad_status = 0;
}

/*
 * What the library takes in its non-strict build and RFC 9112 does not: a
 * CR not followed by LF, which it takes for a line end and a proxy may not
 * (11.1, request smuggling), and obs-fold, a line that continues a header
 * (5.2, "MUST reject"). Sees every byte but body data, in order: the head,
 * chunk-size lines and trailers.
 */
static bool frame_scan(struct reqparse *rp, const unsigned char *p, size_t len)
{
    unsigned char prev = rp->prev_byte;

    for (size_t i = 0; i < len; prev = p[i++]) {
        if (prev == '\r' && p[i] != '\n') {
            rp->bad_head = "a CR not followed by LF";
            return false;
        }
        if (prev == '\n' && (p[i] == ' ' || p[i] == '\t') && rp->head_len) {
            rp->bad_head = "a header line folded onto the next (obs-fold)";
            return false;
        }
    }
    rp->prev_byte = prev;
    return true;
}

enum reqparse_event reqparse_feed(struct reqparse *rp, const char *p, size_t len, size_t *used)
{
    *used = 0;
    if (!len)
        return REQPARSE_MORE;
    if (rp->bad_head || HTTP_PARSER_ERRNO(&rp->parser) != HPE_OK)
        return REQPARSE_ERROR; /* no parsing past a refusal */
    rp->scan_at = p;
    size_t n = http_parser_execute(&rp->parser, &settings, p, len);
    enum http_errno err = HTTP_PARSER_ERRNO(&rp->parser);
    *used = n;
    if (!rp->bad_head && rp->scan_at < p + n &&
        !frame_scan(rp, (const unsigned char *)rp->scan_at, (size_t)(p + n - rp->scan_at)))
        return REQPARSE_ERROR;
    if (rp->bad_head)
        return REQPARSE_ERROR;
    if (err == HPE_PAUSED) {
        http_parser_pause(&rp->parser, 0);
        if (rp->message_whole)
            return REQPARSE_MESSAGE;
        if (rp->head_whole) {
            rp->head_whole = false;
            return REQPARSE_HEAD;
        }
    }
    return err == HPE_OK ? REQPARSE_MORE : REQPARSE_ERROR;
}

int reqparse_error(const struct reqparse *rp, char *msg, size_t cap)
{
    enum http_errno err = HTTP_PARSER_ERRNO(&rp->parser);

    if (rp->bad_head) {
        if (rp->bad_status && rp->bad_status != 400) {
            snprintf(msg, cap, "%s", rp->bad_head);
            return rp->bad_status;
        }
        snprintf(msg, cap, "malformed request: %s", rp->bad_head);
        return 400;
    }
    if (rp->out_of_memory) {
        snprintf(msg, cap, "out of memory");
        return 500;
    }
    switch (err) {
    case HPE_CB_body:
        snprintf(msg, cap, "the body was refused");
        return 0;
    case HPE_HEADER_OVERFLOW:
        if (rp->n_headers || rp->target_len) {
            snprintf(msg, cap, "request line and headers are over %u bytes",
                     REQPARSE_HEAD_MAX_BYTES);
            return 431;
        }
        snprintf(msg, cap, "request line is over %u bytes", REQPARSE_HEAD_MAX_BYTES);
        return 414;
    case HPE_INVALID_CONTENT_LENGTH:
        if (!rp->in_head && (rp->parser.flags & F_CHUNKED)) {
            /* the library's name for a chunk size past its limit (about 2^60) */
            snprintf(msg, cap, "malformed request: a chunk size too large to be one");
            return 400;
        }
        snprintf(msg, cap, "malformed request: %s", http_errno_description(err));
        return 400;
    case HPE_INVALID_METHOD:
        snprintf(msg, cap, "unknown method (methods are case-sensitive); xun serves GET, HEAD, "
                           "POST, PUT, DELETE, OPTIONS");
        return 501;
    default:
        snprintf(msg, cap, "malformed request: %s", http_errno_description(err));
        return 400;
    }
}

const char *reqparse_target(const struct reqparse *rp)
{
    return rp->target_len ? rp->head : "";
}

const char *reqparse_uri(const struct reqparse *rp)
{
    return rp->uri ? rp->uri : "";
}

static bool header_is(const struct reqparse *rp, const struct reqparse_header *h,
                      const char *name)
{
    return strlen(name) == h->name_len && !strncasecmp(rp->head + h->name_off, name, h->name_len);
}

const char *reqparse_header(const struct reqparse *rp, const char *name)
{
    for (size_t i = 0; i < rp->n_headers; i++)
        if (header_is(rp, &rp->headers[i], name))
            return rp->head + rp->headers[i].value_off;
    return NULL;
}

size_t reqparse_header_count(const struct reqparse *rp, const char *name)
{
    size_t n = 0;

    for (size_t i = 0; i < rp->n_headers; i++)
        n += header_is(rp, &rp->headers[i], name);
    return n;
}

long long reqparse_content_length(const struct reqparse *rp)
{
    if ((rp->parser.flags & F_CHUNKED) || rp->parser.content_length == ULLONG_MAX ||
        rp->parser.content_length > LLONG_MAX)
        return -1;
    return (long long)rp->parser.content_length;
}
