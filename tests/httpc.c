/* Blocking HTTP/1.1 client for tests and benchmarks (see httpc.h). */
#include "tests/httpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

bool httpc_open(struct httpc_conn *c, uint16_t port, int timeout_s)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    struct timeval tv = { timeout_s, 0 };

    *c = (struct httpc_conn){ .fd = -1 };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return false;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    /* a request goes out as head then body: without this, Nagle holds the body
     * back until the server's delayed ACK, 40 ms later */
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(c->fd);
        c->fd = -1;
        return false;
    }
    return true;
}

void httpc_close(struct httpc_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    *c = (struct httpc_conn){ .fd = -1 };
}

bool httpc_send(struct httpc_conn *c, const char *data, size_t len)
{
    while (len) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        data += n;
        len -= (size_t)n;
    }
    return true;
}

/* Receives more bytes into c->buf; false at EOF, error or timeout. */
static bool fill(struct httpc_conn *c)
{
    if (c->len + 4096 + 1 > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16384;
        if (cap > HTTPC_MAX_REPLY_BYTES)
            return false;
        char *grown = realloc(c->buf, cap);
        if (!grown)
            return false;
        c->buf = grown;
        c->cap = cap;
    }
    for (;;) {
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
        return true;
    }
}

void httpc_reply_fini(struct httpc_reply *r)
{
    free(r->head);
    free(r->body);
    *r = (struct httpc_reply){ 0 };
}

bool httpc_reply_header(const struct httpc_reply *r, const char *name, char *out, size_t cap)
{
    size_t name_len = strlen(name);
    const char *line = strstr(r->head, "\r\n");

    while (line && line[2]) {
        line += 2;
        const char *end = strstr(line, "\r\n");
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > name_len && line[name_len] == ':' && !strncasecmp(line, name, name_len)) {
            const char *v = line + name_len + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t v_len = len - (size_t)(v - line);
            if (v_len >= cap)
                v_len = cap - 1;
            memcpy(out, v, v_len);
            out[v_len] = '\0';
            return true;
        }
        line = end;
    }
    return false;
}

bool httpc_read_reply(struct httpc_conn *c, struct httpc_reply *r)
{
    char *end = NULL, value[64], *after;

    *r = (struct httpc_reply){ 0 };
    while (!c->buf || !(end = strstr(c->buf, "\r\n\r\n")))
        if (!fill(c))
            return false;
    size_t head_len = (size_t)(end - c->buf) + 2; /* keeps the last header's CRLF */
    r->head = strndup(c->buf, head_len);
    if (!r->head || strncmp(r->head, "HTTP/1.1 ", 9) != 0)
        goto fail;
    long status = strtol(r->head + 9, &after, 10);
    if (after == r->head + 9 || status < 100 || status > 599)
        goto fail;
    r->status = (int)status;
    unsigned long long body_len = 0;
    if (httpc_reply_header(r, "Content-Length", value, sizeof value)) {
        char *num_end;
        errno = 0;
        body_len = strtoull(value, &num_end, 10);
        if (errno || num_end == value || *num_end || body_len > HTTPC_MAX_REPLY_BYTES)
            goto fail;
    }
    size_t start = head_len + 2;
    while (c->len - start < body_len)
        if (!fill(c))
            goto fail;
    r->body = malloc((size_t)body_len + 1);
    if (!r->body)
        goto fail;
    memcpy(r->body, c->buf + start, (size_t)body_len);
    r->body[body_len] = '\0';
    r->body_len = (size_t)body_len;
    size_t used = start + (size_t)body_len;
    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
    c->buf[c->len] = '\0';
    return true;
fail:
    httpc_reply_fini(r);
    return false;
}

bool httpc_read_head_reply(struct httpc_conn *c, struct httpc_reply *r)
{
    char *end = NULL, *after;

    *r = (struct httpc_reply){ 0 };
    while (!c->buf || !(end = strstr(c->buf, "\r\n\r\n")))
        if (!fill(c))
            return false;
    size_t head_len = (size_t)(end - c->buf) + 2;
    r->head = strndup(c->buf, head_len);
    r->body = strdup("");
    if (!r->head || !r->body || strncmp(r->head, "HTTP/1.1 ", 9) != 0)
        goto fail;
    long status = strtol(r->head + 9, &after, 10);
    if (after == r->head + 9 || status < 100 || status > 599)
        goto fail;
    r->status = (int)status;
    memmove(c->buf, c->buf + head_len + 2, c->len - head_len - 2);
    c->len -= head_len + 2;
    c->buf[c->len] = '\0';
    return true;
fail:
    httpc_reply_fini(r);
    return false;
}

bool httpc_request(struct httpc_conn *c, const char *method, const char *target,
                   const char *extra_headers, const char *body, size_t body_len,
                   struct httpc_reply *r)
{
    char head[8192];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %zu\r\n%s\r\n", method,
                     target, body_len, extra_headers ? extra_headers : "");
    if (n < 0 || (size_t)n >= sizeof head)
        return false;
    return httpc_send(c, head, (size_t)n) && (!body_len || httpc_send(c, body, body_len)) &&
           httpc_read_reply(c, r);
}

bool httpc_request_once(uint16_t port, int timeout_s, const char *method, const char *target,
                        const char *extra_headers, const char *body, size_t body_len,
                        struct httpc_reply *r)
{
    char headers[4096];
    struct httpc_conn c;
    int n = snprintf(headers, sizeof headers, "Connection: close\r\n%s",
                     extra_headers ? extra_headers : "");

    if (n < 0 || (size_t)n >= sizeof headers)
        return false;
    bool ok = httpc_open(&c, port, timeout_s) &&
              httpc_request(&c, method, target, headers, body, body_len, r);
    httpc_close(&c);
    return ok;
}

bool httpc_url_encode(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
                     *p == '~';
        if (o + 4 >= cap)
            return false;
        if (plain) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
    return true;
}
