/*
 * The ceiling of this machine for the HTTP benchmark: a minimal libevent
 * server, one thread, that answers every request with the same 2 KB JSON
 * body. xun's figures are printed beside it.
 *
 * usage: baseline_server PORT
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char body[2048];

static void answer(struct evhttp_request *req, void *arg)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req);

    (void)arg;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json");
    evbuffer_add_reference(out, body, sizeof body - 1, NULL, NULL);
    evhttp_send_reply(req, 200, "OK", NULL);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: baseline_server PORT\n");
        return 2;
    }
    /* a JSON object of exactly sizeof body - 1 bytes */
    memset(body, 'x', sizeof body - 1);
    memcpy(body, "{\"pad\":\"", 8);
    memcpy(body + sizeof body - 3, "\"}", 2);
    struct event_base *base = event_base_new();
    struct evhttp *http = evhttp_new(base);
    if (!base || !http || evhttp_bind_socket(http, "127.0.0.1", (uint16_t)strtol(argv[1], NULL, 10)) != 0) {
        fprintf(stderr, "baseline_server: cannot listen on port %s\n", argv[1]);
        return 1;
    }
    evhttp_set_gencb(http, answer, NULL);
    event_base_dispatch(base);
    return 0;
}
