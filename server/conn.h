/*
 * The connection layer's insides, shared by server/http.c (workers,
 * listening, connection limits, stopping) and server/conn.c (one
 * connection: parsing, the request object, replies, deadlines). Nothing
 * else includes this header.
 *
 * Threads: a worker and its connections are touched by the worker's thread
 * only, except where a field says otherwise (the atomics, the done list).
 */
#ifndef XUN_SERVER_CONN_H
#define XUN_SERVER_CONN_H

#include <event2/event.h>
#include <event2/util.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

struct conn;
struct evconnlistener;
struct http_request;
struct route_ctx;
struct server;
struct server_config;

struct worker {
    struct server *srv;
    const struct server_config *cfg;
    struct route_ctx *routes;
    pthread_t thread;
    struct event_base *base;
    struct evconnlistener *listener; /* NULL once stopping */
    struct event *stop_event;        /* activated by server_stop */
    struct event *done_event;        /* deferred replies are back (any thread activates) */
    struct event *evict_event;       /* another worker wants idle connections closed */
    struct event *drain_timer;       /* while stopping */
    struct timeval idle_timeout, request_timeout, close_grace; /* common timeouts */
    /* deferred requests handed back, oldest first; any thread appends */
    pthread_mutex_t done_lock;
    struct http_request *done_head, *done_tail;
    struct conn *conns;               /* every open connection */
    struct conn *idle_head, *idle_tail; /* admitted ones between requests, oldest first */
    atomic_uint_fast64_t oldest_idle_ns; /* idle_head's idle_since_ns; 0: none */
    atomic_uint evict_wanted;           /* idle connections other workers asked us to close */
    size_t n_conns, n_deferred;
    bool stopping, started, lock_made;
    time_t date_s; /* the second date[] shows */
    char date[40];
};

/* One client's address as the per-client limit counts it (IPv4 mapped into IPv6). */
struct client_key {
    unsigned char addr[16];
};

/* ---- conn.c, for http.c ---- */

/* Takes the accepted socket; false (socket closed) when out of memory. */
bool conn_accept(struct worker *w, evutil_socket_t fd, const struct sockaddr *addr,
                 int addr_len);
/* Closes c at once, without a reply (an idle keep-alive connection, or at stop). */
void conn_close(struct conn *c);
/* Whether c sits between requests (idle, or never sent a byte). */
bool conn_is_idle(const struct conn *c);
struct conn *conn_next(const struct conn *c);
/* Sends the replies of deferred requests handed back to w. */
void conn_resume_done(struct worker *w);
/* Frees what is left of w's connections after its loop ended. */
void conn_free_all(struct worker *w);

/* ---- http.c, for conn.c ---- */

/*
 * Admits c at its first request: 0, or the status it is refused with (429
 * past the per-client limit, 503 at the global one when no idle connection
 * could be closed for it). An admitted connection is counted until
 * worker_release().
 */
int worker_admit(struct worker *w, struct conn *c, const struct client_key *key);
void worker_release(struct worker *w, const struct client_key *key);
/* c is between requests (kept alive), or no longer: the eviction order. */
void worker_idle_push(struct worker *w, struct conn *c, uint64_t now_ns);
void worker_idle_remove(struct worker *w, struct conn *c);
/* While stopping: ends the loop once nothing is left to answer. */
void worker_maybe_exit(struct worker *w);
/* While stopping: gives the drain its whole time again from now (http.c). */
void worker_drain_rearm(struct worker *w);

/* The idle list's links, kept in the conn (conn.c defines the struct). */
struct conn_idle_link {
    struct conn *prev, *next;
    uint64_t since_ns;
    bool listed;
};
struct conn_idle_link *conn_idle_link(struct conn *c);

#endif
