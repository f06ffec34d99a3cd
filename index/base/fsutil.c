/* Durable file replacement and small-file helpers (see fsutil.h). */
#include "index/base/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index/base/error.h"

/*
 * The fault hook: fault_armed is read first, relaxed, so that the unset case
 * is one load; fault_left counts down the calls still allowed.
 */
static atomic_bool fault_armed;
static atomic_long fault_left;
static atomic_int fault_errno;
static atomic_ulong fault_hit_count;

void fs_fault_set(long after, int errnum)
{
    atomic_store(&fault_left, after);
    atomic_store(&fault_errno, errnum);
    atomic_store(&fault_armed, true);
}

void fs_fault_clear(void)
{
    atomic_store(&fault_armed, false);
}

unsigned long fs_fault_hits(void)
{
    return atomic_load(&fault_hit_count);
}

/* True (errno set) when the fault hook fails this call. */
static bool fault_fires(void)
{
    if (!atomic_load_explicit(&fault_armed, memory_order_relaxed))
        return false;
    if (atomic_fetch_sub(&fault_left, 1) > 0)
        return false;
    atomic_store(&fault_left, 0); /* stays at the edge, however many calls fail */
    atomic_fetch_add(&fault_hit_count, 1);
    errno = atomic_load(&fault_errno);
    return true;
}

int fs_fsync(int fd)
{
    return fault_fires() ? -1 : fsync(fd);
}

int fs_fdatasync(int fd)
{
    return fault_fires() ? -1 : fdatasync(fd);
}

int fs_pwrite_unhooked(int fd, const void *data, size_t len, uint64_t offset)
{
    const unsigned char *p = data;

    while (len) {
        ssize_t n = pwrite(fd, p, len, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        offset += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

int fs_pwrite_all(int fd, const void *data, size_t len, uint64_t offset)
{
    return fault_fires() ? -1 : fs_pwrite_unhooked(fd, data, len, offset);
}

int fs_grow(int fd, uint64_t from, uint64_t to)
{
    if (to <= from)
        return 0;
    if (fault_fires())
        return -1;
    int rc = posix_fallocate(fd, (off_t)from, (off_t)(to - from));
    if (rc == EOPNOTSUPP || rc == EINVAL)
        return ftruncate(fd, (off_t)to);
    errno = rc;
    return rc ? -1 : 0;
}

int fs_write_all(int fd, const void *data, size_t len)
{
    const unsigned char *p = data;

    if (fault_fires())
        return -1;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int fs_sync_parent(const char *path, struct xerr *err)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t len = slash ? (size_t)(slash - path) : 0;

    if (len >= sizeof dir)
        return xerr_set(err, XE_IO, "%s: path too long", path);
    if (len)
        memcpy(dir, path, len);
    else
        dir[len++] = '.';
    dir[len] = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return xerr_set_os(err, errno, "%s: %s", dir, strerror(errno));
    int rc = fs_fsync(fd);
    int errnum = errno;
    close(fd);
    return rc ? xerr_set_os(err, errnum, "fsync %s: %s", dir, strerror(errnum)) : XE_OK;
}

int fs_write_pieces(const char *path, const struct fs_piece *pieces, size_t n, bool durable,
                    struct xerr *err)
{
    char tmp[4096];
    int fd;

    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return xerr_set(err, XE_IO, "%s: path too long", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return xerr_set_os(err, errno, "%s: %s", tmp, strerror(errno));
    int bad = 0;
    for (size_t i = 0; i < n && !bad; i++)
        bad = fs_write_all(fd, pieces[i].data, pieces[i].len);
    if (bad || (durable && fs_fsync(fd) != 0)) {
        int rc = xerr_set_os(err, errno, "%s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return rc;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int rc = xerr_set_os(err, errno, "rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return rc;
    }
    return durable ? fs_sync_parent(path, err) : XE_OK;
}

int fs_write_atomic(const char *path, const void *data, size_t len, struct xerr *err)
{
    struct fs_piece whole = { data, len };
    return fs_write_pieces(path, &whole, 1, true, err);
}

int fs_write_fast(const char *path, const void *data, size_t len, struct xerr *err)
{
    struct fs_piece whole = { data, len };
    return fs_write_pieces(path, &whole, 1, false, err);
}

int fs_sync_file(const char *path, struct xerr *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return xerr_set_os(err, errno, "%s: %s", path, strerror(errno));
    int rc = fs_fsync(fd);
    int errnum = errno;
    close(fd);
    if (rc)
        return xerr_set_os(err, errnum, "fsync %s: %s", path, strerror(errnum));
    return fs_sync_parent(path, err);
}

int fs_mkdir(const char *dir, struct xerr *err)
{
    if (mkdir(dir, 0755) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
            return XE_OK;
        return xerr_set(err, XE_IO, "%s: not a folder", dir);
    }
    return xerr_set(err, XE_IO, "%s: %s", dir, strerror(errno));
}

int fs_read_all(const char *path, size_t max_bytes, char **out, size_t *len, struct xerr *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return xerr_set(err, errno == ENOENT ? XE_NOTFOUND : XE_IO, "%s: %s", path,
                        strerror(errno));
    char *data = malloc(max_bytes + 1);
    if (!data) {
        fclose(f);
        return xerr_set(err, XE_NOMEM, "%s: out of memory", path);
    }
    size_t n = fread(data, 1, max_bytes + 1, f);
    int failed = ferror(f);
    fclose(f);
    if (failed || n > max_bytes) {
        free(data);
        return xerr_set(err, failed ? XE_IO : XE_CORRUPT, "%s: %s", path,
                        failed ? "read error" : "file too large");
    }
    data[n] = '\0';
    *out = data;
    *len = n;
    return XE_OK;
}
