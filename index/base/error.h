/*
 * One error vocabulary for all of xun. A function that can fail for a reason
 * someone must read takes `struct xerr *err` last and returns the code; the
 * first error set wins, so a low-level message is not overwritten by a vaguer
 * one further up.
 */
#ifndef XUN_INDEX_ERROR_H
#define XUN_INDEX_ERROR_H

#include <stdbool.h>

enum xe {
    XE_OK = 0,
    XE_NOMEM,    /* allocation failed */
    XE_INPUT,    /* the caller's input is invalid (bad JSON, bad UTF-8, bad parameter) */
    XE_NOTFOUND, /* no such document or file */
    XE_CORRUPT,  /* bytes on disk fail a check */
    XE_IO,       /* the operating system refused */
    XE_LIMIT,    /* a named cap from index/base/limits.h was exceeded */
};

struct xerr {
    enum xe code;
    char msg[256];
    int os_errno; /* the errno behind an XE_IO when known (ENOSPC: disk full), else 0 */
};

/* Records the error unless one is already recorded; returns `code` either way. */
int xerr_set(struct xerr *err, enum xe code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* xerr_set(err, XE_IO, ...) that also records errnum (the first error still wins). */
int xerr_set_os(struct xerr *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* True when err says the disk (or the user's quota) is full. */
bool xerr_is_no_space(const struct xerr *err);

/* Every damaged-file path goes through here: one place to break on in a debugger. */
int xerr_corrupt(struct xerr *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void xerr_clear(struct xerr *err);

/* A short stable name for the code ("bad_request" style names live in server/). */
const char *xe_name(enum xe code);

#endif
