/*
 * A small blocking HTTP/1.1 client for tests and benchmarks: keep-alive,
 * Content-Length bodies, loopback only. It never asserts, so any thread may
 * use it; callers check what it returns.
 */
#ifndef XUN_TESTS_HTTPC_H
#define XUN_TESTS_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTPC_MAX_REPLY_BYTES (16u << 20)

struct httpc_conn {
    int fd;
    char *buf; /* bytes received and not yet consumed */
    size_t len, cap;
};

struct httpc_reply {
    int status;
    char *head; /* status line and headers, NUL-terminated */
    char *body; /* NUL-terminated (the NUL is not counted) */
    size_t body_len;
};

/* Connects to 127.0.0.1:port with send and receive timeouts of timeout_s. */
bool httpc_open(struct httpc_conn *c, uint16_t port, int timeout_s);
void httpc_close(struct httpc_conn *c);
bool httpc_send(struct httpc_conn *c, const char *data, size_t len);
/* Reads one reply: the head, then exactly Content-Length body bytes. */
bool httpc_read_reply(struct httpc_conn *c, struct httpc_reply *r);
void httpc_reply_fini(struct httpc_reply *r);
/* Reads the reply to a HEAD request: status line and headers only (body ""). */
bool httpc_read_head_reply(struct httpc_conn *c, struct httpc_reply *r);
/* The value of header name (case-insensitive) into out; false when absent. */
bool httpc_reply_header(const struct httpc_reply *r, const char *name, char *out, size_t cap);

/*
 * Sends one request (body may be NULL; extra_headers lines end in CRLF or
 * are NULL) and reads its reply on the connection.
 */
bool httpc_request(struct httpc_conn *c, const char *method, const char *target,
                   const char *extra_headers, const char *body, size_t body_len,
                   struct httpc_reply *r);

/*
 * One request on a fresh connection to 127.0.0.1:port (timeouts of
 * timeout_s), sent with "Connection: close" before extra_headers; the
 * connection is closed after the reply.
 */
bool httpc_request_once(uint16_t port, int timeout_s, const char *method, const char *target,
                        const char *extra_headers, const char *body, size_t body_len,
                        struct httpc_reply *r);

/* Percent-encodes every byte but RFC 3986's unreserved ones; false if out is too small. */
bool httpc_url_encode(const char *s, char *out, size_t cap);

#endif
