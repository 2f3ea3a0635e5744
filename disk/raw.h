/* Raw disk images (regular files), sparse-aware: SEEK_DATA/SEEK_HOLE find the
 * extents, so holes are never read. */
#ifndef SP_RAW_H
#define SP_RAW_H

#include <stdbool.h>

#include "disk/disk.h"

/* Opens path as a raw disk whose size is the file's size. */
int sp_raw_open(const char *path, bool writable, struct sp_disk **out, struct sp_error *err);

/* A read-only raw disk over fd, a regular file, which it then owns (closed
 * on failure too); path names it in messages. */
int sp_raw_open_fd(int fd, const char *path, struct sp_disk **out, struct sp_error *err);

/* A raw disk over fd (an empty file opened for writing) of the given size:
 * the file becomes one hole of that size. The disk does not own fd.
 * durable: the output will be fsynced, so writeback is started as it grows. */
int sp_raw_create_fd(int fd, const char *path, uint64_t size, bool durable, struct sp_disk **out,
                     struct sp_error *err);

#endif
