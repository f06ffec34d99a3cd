/* Error recording: first error wins (see error.h). */
#include "index/base/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

static int xerr_vset(struct xerr *err, enum xe code, const char *fmt, va_list ap)
{
    if (!err || err->code != XE_OK)
        return code;
    err->code = code;
    err->os_errno = 0;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    return code;
}

int xerr_set(struct xerr *err, enum xe code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    xerr_vset(err, code, fmt, ap);
    va_end(ap);
    return code;
}

int xerr_set_os(struct xerr *err, int errnum, const char *fmt, ...)
{
    va_list ap;
    bool first = err && err->code == XE_OK;

    va_start(ap, fmt);
    xerr_vset(err, XE_IO, fmt, ap);
    va_end(ap);
    if (first)
        err->os_errno = errnum;
    return XE_IO;
}

bool xerr_is_no_space(const struct xerr *err)
{
    return err->code == XE_IO && (err->os_errno == ENOSPC || err->os_errno == EDQUOT);
}

int xerr_corrupt(struct xerr *err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    xerr_vset(err, XE_CORRUPT, fmt, ap);
    va_end(ap);
    return XE_CORRUPT;
}

void xerr_clear(struct xerr *err)
{
    err->code = XE_OK;
    err->msg[0] = '\0';
    err->os_errno = 0;
}

const char *xe_name(enum xe code)
{
    switch (code) {
    case XE_OK: return "ok";
    case XE_NOMEM: return "out of memory";
    case XE_INPUT: return "invalid input";
    case XE_NOTFOUND: return "not found";
    case XE_CORRUPT: return "corrupt";
    case XE_IO: return "i/o error";
    case XE_LIMIT: return "limit exceeded";
    }
    return "unknown";
}
