/* A tar written through libarchive to a descriptor (a file or a pipe): the
 * one writer under the XVA stream (V7 headers, as XAPI writes them) and the
 * OVA package (GNU headers: base-256 sizes past 8 GiB, never PAX). Members
 * carry uid/gid 0 and the caller's time, so that the same input gives the
 * same bytes. */
#ifndef SP_TAR_OUT_H
#define SP_TAR_OUT_H

#include <stdint.h>
#include <stddef.h>

#include "base/error.h"

enum sp_tar_format {
    SP_TAR_V7,      /* ustar where this libarchive has no v7tar */
    SP_TAR_GNU,
};

enum sp_tar_filter {
    SP_TAR_PLAIN,
    SP_TAR_GZIP,    /* gzip members of 1 MiB blocks, no time in their headers */
    SP_TAR_ZSTD,
};

struct sp_tar_out;

/* what names the archive in setup errors ("xva writer"). gzip and zstd
 * compress on every core (archive/par_compress.h) at level (0: the
 * default; 1..12 for gzip, 1..19 for zstd). */
int sp_tar_out_open(int fd, enum sp_tar_format format, enum sp_tar_filter filter, int level, const char *what,
                    struct sp_tar_out **out, struct sp_error *err);
/* A member's header; then exactly size bytes through sp_tar_out_data. */
int sp_tar_out_begin(struct sp_tar_out *t, const char *name, uint64_t size, int64_t mtime, int perm,
                     struct sp_error *err);
/* Errors name the member, except a failed write of fd ("write: No space
 * left on device"): the caller names its output. */
int sp_tar_out_data(struct sp_tar_out *t, const void *buf, size_t len, struct sp_error *err);
/* The two zero blocks of the end; flushes. */
int sp_tar_out_close(struct sp_tar_out *t, struct sp_error *err);
/* Accepts NULL. Without a successful close the end blocks never reach the
 * output: a cut stream must look cut. */
void sp_tar_out_free(struct sp_tar_out *t);

#endif
