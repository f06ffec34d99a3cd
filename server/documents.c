/*
 * Write routes (see documents.h). The worker that read a write request hands
 * it to the write threads here and goes back to its loop; a write thread
 * parses the body, builds the ops, applies them (writer_apply waits for the
 * fsync) and sets the reply, which the worker sends (http_request_resume).
 * Several write threads, so that concurrent writes are parsed side by side
 * and their writer_apply() calls share one fsync (group commit); one thread
 * would fsync each write alone. The writes of one connection stay in the
 * order it sent them: it is answered one request at a time.
 */
#include "server/documents.h"

#include <jansson.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "index/base/buf.h"
#include "index/format/doc.h"
#include "index/base/error.h"
#include "index/base/limits.h"
#include "index/writer.h"
#include "server/docjson.h"
#include "server/http.h"
#include "server/respond.h"
#include "server/routes.h"

/* Writes in flight at once: enough for group commit to gather a batch. */
#define DOCUMENTS_WRITE_THREADS 8
/* Bulk POSTs parsed at once: each may hold a body of --max-body-bytes and
 * its parsed tree, so the memory they take stays about what two need. */
#define DOCUMENTS_POSTS_AT_ONCE 2
/* A bulk request carries at most this many documents. */
#define DOCUMENTS_MAX_BATCH 100000
/* Per-line errors reported back; past this many only the count grows. */
#define DOCUMENTS_MAX_ERRORS 100

/* Compares in time independent of where the strings differ. */
static bool same_secret(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char diff = (unsigned char)(alen != blen);
    size_t n = alen > blen ? alen : blen;

    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)((i < alen ? a[i] : 0) ^ (i < blen ? b[i] : 0));
    return diff == 0;
}

bool documents_authorized(struct route_ctx *ctx, struct exchange *ex)
{
    const char *key = ctx->cfg->api_key;

    if (!key)
        return true;
    const char *auth = http_request_header(ex->req, "Authorization");
    if (auth && !strncasecmp(auth, "Bearer ", 7) && /* the scheme is case-insensitive */
        same_secret(auth + 7, strlen(auth + 7), key, strlen(key)))
        return true;
    http_request_add_header(ex->req, "WWW-Authenticate", "Bearer");
    respond_error(ex, 401, "writes need the header \"Authorization: Bearer <api key>\"");
    return false;
}

/* The request body, contiguous; NULL (answered) when over the limit. */
static const char *body_of(struct route_ctx *ctx, struct exchange *ex, size_t limit,
                           size_t *len)
{
    const char *p = http_request_body(ex->req, len);

    if (*len > limit) {
        respond_error(ex, 413, "request body is %zu bytes; at most %zu are allowed", *len,
                      limit);
        return NULL;
    }
    (void)ctx;
    return p;
}

static const char *result_name(enum write_result r)
{
    switch (r) {
    case WRITE_CREATED: return "created";
    case WRITE_UPDATED: return "updated";
    case WRITE_DELETED: return "deleted";
    case WRITE_NOT_FOUND: return "not_found";
    case WRITE_FAILED: break;
    }
    return "failed";
}

/*
 * Validates one document and appends its stored record to records; the
 * offset of the record goes in *offset. path_id: the id it must have (PUT).
 */
static int prepare_doc(json_t *obj, const char *text, size_t len, const char *path_id,
                       size_t path_id_len, struct buf *records, size_t *offset,
                       struct xerr *err)
{
    struct doc_fields d;
    char *dumped = NULL;
    int rc;

    if (path_id && json_is_object(obj)) {
        json_t *id = json_object_get(obj, "id");
        if (!id) {
            /* the path names it: store the document with its id */
            json_object_set_new(obj, "id", json_stringn(path_id, path_id_len));
            dumped = docjson_with_id(text, len, path_id, path_id_len, &len);
            if (!dumped)
                return xerr_set(err, XE_NOMEM, "out of memory");
            text = dumped;
        } else if (!json_is_string(id) || json_string_length(id) != path_id_len ||
                   memcmp(json_string_value(id), path_id, path_id_len) != 0) {
            return xerr_set(err, XE_INPUT, "the body's id must equal the path's, \"%.64s\"",
                            path_id);
        }
    }
    rc = docjson_fields(obj, text, len, &d, err);
    if (!rc) {
        *offset = records->len;
        rc = doc_record_encode(&d, records);
        if (rc)
            rc = xerr_set(err, rc, "document too large");
    }
    free(dumped);
    return rc;
}

static void respond_write_error(struct exchange *ex, int rc, const struct xerr *err)
{
    respond_error(ex, rc == XE_IO ? 503 : respond_status_of(rc), "%s", err->msg);
}

static void put_now(struct route_ctx *ctx, struct exchange *ex, const char *id, size_t id_len)
{
    struct xerr err = { 0 };
    struct buf records;
    size_t len, offset = 0;
    json_error_t jerr;

    if (!documents_authorized(ctx, ex))
        return;
    const char *body = body_of(ctx, ex, DOC_MAX_BYTES, &len);
    if (!body)
        return;
    json_t *obj = docjson_load(body, len, &jerr);
    if (!obj) {
        respond_error(ex, 400, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column,
                      jerr.text);
        return;
    }
    buf_init(&records, 4 * (size_t)DOC_MAX_BYTES);
    int rc = prepare_doc(obj, body, len, id, id_len, &records, &offset, &err);
    if (rc) {
        respond_error(ex, respond_status_of(rc), "%s", err.msg);
    } else {
        struct write_op op = { .type = WAL_PUT, .record = records.data,
                               .record_len = records.len };
        rc = writer_apply(ctx->writer, &op, 1, &err);
        if (rc)
            respond_write_error(ex, rc, &err);
        else
            respond_json(ex, op.result == WRITE_CREATED ? 201 : 200,
                         json_pack("{s:s%,s:s}", "id", id, id_len, "result",
                                   result_name(op.result)));
    }
    buf_fini(&records);
    json_decref(obj);
}

static void delete_now(struct route_ctx *ctx, struct exchange *ex, const char *id, size_t id_len)
{
    struct xerr err = { 0 };

    if (!documents_authorized(ctx, ex))
        return;
    struct write_op op = { .type = WAL_DELETE, .id = id, .id_len = id_len };
    int rc = writer_apply(ctx->writer, &op, 1, &err);
    if (rc)
        respond_write_error(ex, rc, &err);
    else if (op.result == WRITE_NOT_FOUND)
        respond_error(ex, 404, "no document with id \"%.64s\"", id);
    else
        respond_json(ex, 200, json_pack("{s:s%,s:s}", "id", id, id_len, "result", "deleted"));
}

/* Gathers the good documents of a bulk body; bad ones become errors. */
struct bulk {
    struct buf records;
    size_t *offsets;
    size_t n, cap;
    json_t *errors;
    size_t n_errors;
};

static void bulk_error(struct bulk *b, size_t line, const char *message)
{
    if (++b->n_errors <= DOCUMENTS_MAX_ERRORS)
        json_array_append_new(b->errors,
                              json_pack("{s:I,s:s}", "line", (json_int_t)line, "message",
                                        message));
}

static int bulk_add(struct bulk *b, json_t *obj, const char *text, size_t len, size_t line)
{
    struct xerr err = { 0 };
    size_t offset;

    if (b->n == DOCUMENTS_MAX_BATCH) {
        bulk_error(b, line, "too many documents in one request");
        return XE_OK;
    }
    int rc = prepare_doc(obj, text, len, NULL, 0, &b->records, &offset, &err);
    if (rc == XE_NOMEM)
        return rc;
    if (rc) {
        bulk_error(b, line, err.msg);
        return XE_OK;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        size_t *grown = realloc(b->offsets, cap * sizeof *grown);
        if (!grown)
            return XE_NOMEM;
        b->offsets = grown;
        b->cap = cap;
    }
    b->offsets[b->n++] = offset;
    return XE_OK;
}

static int bulk_lines(struct bulk *b, const char *body, size_t len)
{
    size_t line = 0;

    for (size_t at = 0; at < len;) {
        const char *nl = memchr(body + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - body) : len, stop = end;
        line++;
        while (stop > at && (body[stop - 1] == '\r' || body[stop - 1] == ' ' ||
                             body[stop - 1] == '\t'))
            stop--;
        size_t start = at;
        at = end + 1;
        while (start < stop && (body[start] == ' ' || body[start] == '\t'))
            start++;
        if (start == stop)
            continue;
        json_error_t jerr;
        json_t *obj = docjson_load(body + start, stop - start, &jerr);
        if (!obj) {
            char msg[256];
            snprintf(msg, sizeof msg, "invalid JSON at column %d: %s", jerr.column, jerr.text);
            bulk_error(b, line, msg);
            continue;
        }
        int rc = bulk_add(b, obj, body + start, stop - start, line);
        json_decref(obj);
        if (rc)
            return rc;
    }
    return XE_OK;
}

/* Each element is stored as its own text in the body, as given. */
static int bulk_array(struct bulk *b, json_t *array, const char *body, size_t len)
{
    size_t n = json_array_size(array);
    struct text *elements = malloc((n ? n : 1) * sizeof *elements);

    if (!elements)
        return XE_NOMEM;
    if (docjson_array_elements(body, len, elements, n) != n) {
        free(elements);
        return XE_NOMEM; /* cannot be: the body parsed as an array of n */
    }
    for (size_t i = 0; i < n; i++) {
        int rc = bulk_add(b, json_array_get(array, i), elements[i].p, elements[i].len, i + 1);
        if (rc) {
            free(elements);
            return rc;
        }
    }
    free(elements);
    return XE_OK;
}

static void post_now(struct route_ctx *ctx, struct exchange *ex)
{
    struct xerr err = { 0 };
    struct bulk b = { .errors = json_array() };
    size_t len;
    int rc = XE_OK;

    if (!documents_authorized(ctx, ex))
        goto out;
    const char *body = body_of(ctx, ex, ctx->cfg->max_body_bytes, &len);
    if (!body)
        goto out;
    buf_init(&b.records, 4 * ctx->cfg->max_body_bytes + 4096);
    size_t first = 0;
    while (first < len && (body[first] == ' ' || body[first] == '\n' || body[first] == '\r' ||
                           body[first] == '\t'))
        first++;
    if (first < len && body[first] == '[') {
        json_error_t jerr;
        json_t *array = docjson_load(body, len, &jerr);
        if (!array) {
            respond_error(ex, 400, "invalid JSON at line %d, column %d: %s", jerr.line,
                          jerr.column, jerr.text);
            goto out_records;
        }
        rc = bulk_array(&b, array, body, len);
        json_decref(array);
    } else {
        rc = bulk_lines(&b, body, len);
    }
    if (rc) {
        respond_error(ex, 500, "out of memory");
        goto out_records;
    }
    struct write_op *ops = calloc(b.n ? b.n : 1, sizeof *ops);
    if (!ops) {
        respond_error(ex, 500, "out of memory");
        goto out_records;
    }
    for (size_t i = 0; i < b.n; i++) {
        size_t end = i + 1 < b.n ? b.offsets[i + 1] : b.records.len;
        ops[i] = (struct write_op){ .type = WAL_PUT, .record = b.records.data + b.offsets[i],
                                    .record_len = end - b.offsets[i] };
    }
    rc = b.n ? writer_apply(ctx->writer, ops, b.n, &err) : XE_OK;
    free(ops);
    if (rc) {
        respond_write_error(ex, rc, &err);
    } else {
        json_t *reply = json_pack("{s:I,s:O}", "indexed", (json_int_t)b.n, "errors", b.errors);
        respond_json(ex, 200, reply);
    }
out_records:
    buf_fini(&b.records);
out:
    free(b.offsets);
    json_decref(b.errors);
}

/* ---- the write threads ---- */

void (*documents_before_write_hook)(void);

enum write_kind { WRITE_PUT, WRITE_DELETE, WRITE_POST };

struct write_job {
    struct write_job *next;
    struct exchange ex; /* its request is deferred: ours until resumed */
    enum write_kind kind;
    size_t id_len;
    char id[]; /* NUL-terminated */
};

struct write_queue {
    struct route_ctx *ctx;
    pthread_t threads[DOCUMENTS_WRITE_THREADS];
    int n_threads;
    sem_t post_slots; /* DOCUMENTS_POSTS_AT_ONCE */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct write_job *head, *tail;
    bool stopping;
};

static void *write_main(void *arg)
{
    struct write_queue *q = arg;

    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (!q->head && !q->stopping)
            pthread_cond_wait(&q->wake, &q->lock);
        struct write_job *job = q->head;
        if (!job)
            break; /* stopping, and nothing left */
        q->head = job->next;
        if (!q->head)
            q->tail = NULL;
        pthread_mutex_unlock(&q->lock);
        if (documents_before_write_hook)
            documents_before_write_hook();
        switch (job->kind) {
        case WRITE_PUT: put_now(q->ctx, &job->ex, job->id, job->id_len); break;
        case WRITE_DELETE: delete_now(q->ctx, &job->ex, job->id, job->id_len); break;
        case WRITE_POST:
            while (sem_wait(&q->post_slots) != 0)
                ; /* EINTR */
            post_now(q->ctx, &job->ex);
            sem_post(&q->post_slots);
            break;
        }
        http_request_resume(job->ex.req);
        free(job);
        pthread_mutex_lock(&q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

int documents_start(struct route_ctx *ctx, struct xerr *err)
{
    struct write_queue *q = calloc(1, sizeof *q);

    if (!q)
        return xerr_set(err, XE_NOMEM, "out of memory");
    q->ctx = ctx;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->wake, NULL);
    sem_init(&q->post_slots, 0, DOCUMENTS_POSTS_AT_ONCE);
    ctx->writes = q;
    for (; q->n_threads < DOCUMENTS_WRITE_THREADS; q->n_threads++)
        if (pthread_create(&q->threads[q->n_threads], NULL, write_main, q)) {
            documents_stop(ctx);
            return xerr_set(err, XE_IO, "cannot start the write threads");
        }
    return XE_OK;
}

void documents_stop(struct route_ctx *ctx)
{
    struct write_queue *q = ctx->writes;

    if (!q)
        return;
    pthread_mutex_lock(&q->lock);
    q->stopping = true;
    pthread_cond_broadcast(&q->wake);
    pthread_mutex_unlock(&q->lock);
    for (int i = 0; i < q->n_threads; i++)
        pthread_join(q->threads[i], NULL);
    pthread_cond_destroy(&q->wake);
    pthread_mutex_destroy(&q->lock);
    sem_destroy(&q->post_slots);
    free(q);
    ctx->writes = NULL;
}

/* Defers ex's request to the write threads; answers 500 itself when out of memory. */
static void submit(struct route_ctx *ctx, struct exchange *ex, enum write_kind kind,
                   const char *id, size_t id_len)
{
    struct write_queue *q = ctx->writes;
    struct write_job *job = malloc(sizeof *job + id_len + 1);

    if (!job) {
        respond_error(ex, 500, "out of memory");
        return;
    }
    *job = (struct write_job){ .ex = *ex, .kind = kind, .id_len = id_len };
    memcpy(job->id, id, id_len);
    job->id[id_len] = '\0';
    http_request_defer(ex->req);
    pthread_mutex_lock(&q->lock);
    if (q->tail)
        q->tail->next = job;
    else
        q->head = job;
    q->tail = job;
    pthread_cond_signal(&q->wake);
    pthread_mutex_unlock(&q->lock);
}

void documents_put(struct route_ctx *ctx, struct exchange *ex, const char *id, size_t id_len)
{
    submit(ctx, ex, WRITE_PUT, id, id_len);
}

void documents_delete(struct route_ctx *ctx, struct exchange *ex, const char *id, size_t id_len)
{
    submit(ctx, ex, WRITE_DELETE, id, id_len);
}

void documents_post(struct route_ctx *ctx, struct exchange *ex)
{
    submit(ctx, ex, WRITE_POST, "", 0);
}
