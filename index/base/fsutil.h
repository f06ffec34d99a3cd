/* File system steps that durability depends on, each done one right way. */
#ifndef XUN_INDEX_FSUTIL_H
#define XUN_INDEX_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct xerr;

/*
 * Errors that come from the operating system are XE_IO with the errno kept
 * (xerr_set_os), so callers can tell a full disk (xerr_is_no_space).
 *
 * Replaces path with data atomically: writes path + ".tmp", fsyncs it,
 * renames it over path, fsyncs the folder. A crash leaves the old file or
 * the new one, never a mix.
 */
int fs_write_atomic(const char *path, const void *data, size_t len, struct xerr *err);

/* A file written from pieces that lie apart in memory (no copy into one buffer). */
struct fs_piece {
    const void *data;
    size_t len;
};

/* As fs_write_atomic (durable) or fs_write_fast, the file being the pieces back to back. */
int fs_write_pieces(const char *path, const struct fs_piece *pieces, size_t n, bool durable,
                    struct xerr *err);

/*
 * As fs_write_atomic but without the fsyncs: for files the write-ahead log
 * can rebuild after a crash. fs_sync_file() makes such a file durable later.
 */
int fs_write_fast(const char *path, const void *data, size_t len, struct xerr *err);
int fs_sync_file(const char *path, struct xerr *err);

/* Writes all of p to fd, retrying short writes and EINTR; -1 with errno on failure. */
int fs_write_all(int fd, const void *p, size_t len);

/* Writes all of p at offset, retrying short writes and EINTR; -1 with errno on failure. */
int fs_pwrite_all(int fd, const void *p, size_t len, uint64_t offset);
/* The same past the fault hook below: for undoing a failed write in space the
 * file already holds, which a full disk cannot refuse either. */
int fs_pwrite_unhooked(int fd, const void *p, size_t len, uint64_t offset);
/*
 * Grows the file from `from` to `to` bytes with space allocated (so that a
 * full disk fails here, not in a later write), or by ftruncate where the
 * file system cannot preallocate; -1 with errno on failure.
 */
int fs_grow(int fd, uint64_t from, uint64_t to);

/* fsync(2) and fdatasync(2), through the fault hook below; -1 with errno on failure. */
int fs_fsync(int fd);
int fs_fdatasync(int fd);

/*
 * Fault injection, for tests of a full disk: after `after` more calls of
 * fs_write_all, fs_pwrite_all, fs_grow, fs_fsync and fs_fdatasync succeed, every further call fails
 * with errno errnum (ENOSPC: the disk is full; nothing is written) until
 * fs_fault_clear(). Every file the index writes (segments, deletions,
 * MANIFEST, the log) goes through them. Always compiled in: unset, it costs
 * one relaxed atomic load per call. Process-wide; any thread may call these.
 */
void fs_fault_set(long after, int errnum);
void fs_fault_clear(void);
/* Calls failed by the fault so far (tests check that the fault was hit). */
unsigned long fs_fault_hits(void);

/* fsyncs the folder that holds path, so a rename or create in it is durable. */
int fs_sync_parent(const char *path, struct xerr *err);

/* Creates dir (one level) unless it exists. */
int fs_mkdir(const char *dir, struct xerr *err);

/* Reads a whole (small) file into a NUL-terminated heap buffer. */
int fs_read_all(const char *path, size_t max_bytes, char **out, size_t *len, struct xerr *err);

#endif
