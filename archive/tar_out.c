/* The tar writer over libarchive. */
#include "archive/tar_out.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "archive/par_compress.h"
#include "base/util.h"

struct sp_tar_out {
    struct archive *a;
    struct archive_entry *e;
    int fd;
    bool discard;          /* freeing without close: the end goes nowhere */
    bool closed, failed;
    int out_errno;         /* the output's write failed so: no member is to blame */
    char member[256];      /* the current member, for messages */
    struct sp_pcomp *pc;   /* gzip or zstd on every core; NULL: plain */
    struct sp_error pc_err; /* the compressor's last error, for libarchive's message */
    uint64_t written;      /* bytes out so far: the file offset when fd is a file */
    struct sp_writeback wb;
};

/* The compressor's output: all of it to the descriptor. */
static int write_all(void *ctx, const void *buf, size_t len, struct sp_error *err)
{
    struct sp_tar_out *t = ctx;
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = sp_write_out(t->fd, p, len, &t->wb, &t->written);
        if (n < 0) {
            t->out_errno = errno;
            return sp_error_set(err, SP_EIO, "write: %s", strerror(errno));
        }
        p += n;
        len -= (size_t)n;
    }
    return SP_OK;
}

/* Our own output callback rather than archive_write_open_fd, so that a
 * writer freed without close can drop what libarchive still writes (the
 * end blocks). archive_write_fail would do that too, but in libarchive
 * 3.6.2 it skips the close of the output layer and leaks its state. The
 * tar stream comes here uncompressed: compression is ours (par_compress.h),
 * on every core, rather than libarchive's filters, which use one. */
static la_ssize_t write_cb(struct archive *a, void *ctx, const void *buf, size_t len)
{
    struct sp_tar_out *t = ctx;
    if (t->discard)
        return (la_ssize_t)len;
    if (t->pc) {
        if (sp_pcomp_write(t->pc, buf, len, &t->pc_err) == SP_OK)
            return (la_ssize_t)len;
        archive_set_error(a, t->out_errno ? t->out_errno : EIO, "%s", t->pc_err.msg);
        return -1;
    }
    ssize_t n = sp_write_out(t->fd, buf, len, &t->wb, &t->written);
    if (n < 0) {
        t->out_errno = errno;
        archive_set_error(a, errno, "write: %s", strerror(errno));
    }
    return n;
}

/* A failed write of the output is the output's: "write: <why>", no member
 * named (the caller names the output, which only it knows: a file,
 * stdout). Anything else libarchive refused is the member's. */
static int terr(struct sp_tar_out *t, const char *what, struct sp_error *err)
{
    const char *m = archive_error_string(t->a);
    t->failed = true;
    if (t->out_errno) {
        sp_error_errno(err, t->out_errno, "write");
        err->code = SP_EIO;
        return SP_EIO;
    }
    return sp_error_set(err, SP_EIO, "%s: %s", what, m ? m : "write error");
}

static bool set_format(struct archive *a, enum sp_tar_format format)
{
    if (format == SP_TAR_GNU)
        return archive_write_set_format_gnutar(a) == ARCHIVE_OK;
    return archive_write_set_format_v7tar(a) == ARCHIVE_OK || archive_write_set_format_ustar(a) == ARCHIVE_OK;
}

static int open_compressor(struct sp_tar_out *t, enum sp_tar_filter filter, int level, const char *what,
                           struct sp_error *err)
{
    if (filter == SP_TAR_PLAIN)
        return SP_OK;
    struct sp_pcomp_opts o = {.kind = filter == SP_TAR_ZSTD ? SP_PCOMP_ZSTD : SP_PCOMP_GZIP, .level = level};
    int rc = sp_pcomp_open(&o, write_all, t, &t->pc, err);
    return rc == SP_OK ? SP_OK : sp_error_prefix(err, "%s", what);
}

int sp_tar_out_open(int fd, enum sp_tar_format format, enum sp_tar_filter filter, int level, const char *what,
                    struct sp_tar_out **out, struct sp_error *err)
{
    *out = NULL;
    struct sp_tar_out *t = sp_zalloc(sizeof *t, err);
    if (!t)
        return SP_ENOMEM;
    t->fd = fd;
    struct stat st;
    sp_writeback_init(&t->wb, fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? fd : -1);
    int rc = open_compressor(t, filter, level, what, err);
    if (rc != SP_OK) {
        sp_tar_out_free(t);
        return rc;
    }
    t->a = archive_write_new();
    t->e = archive_entry_new();
    if (!t->a || !t->e) {
        sp_tar_out_free(t);
        return sp_error_set(err, SP_ENOMEM, "out of memory (libarchive)");
    }
    /* No blocking to 10 KiB records: the stream ends with its two zero
     * blocks, as XAPI's and ovftool's do. */
    if (!set_format(t->a, format) || archive_write_set_bytes_per_block(t->a, 0) != ARCHIVE_OK ||
        archive_write_open2(t->a, t, NULL, write_cb, NULL, NULL) != ARCHIVE_OK) {
        rc = terr(t, what, err);
        sp_tar_out_free(t);
        return rc;
    }
    *out = t;
    return SP_OK;
}

int sp_tar_out_begin(struct sp_tar_out *t, const char *name, uint64_t size, int64_t mtime, int perm,
                     struct sp_error *err)
{
    if (t->failed || t->closed)
        return sp_error_set(err, SP_EINVAL, "%s: the archive writer has stopped", name);
    if (size > (uint64_t)INT64_MAX)
        return sp_error_set(err, SP_EINVAL, "%s: no tar size", name);
    archive_entry_clear(t->e);
    archive_entry_set_pathname(t->e, name);
    archive_entry_set_filetype(t->e, AE_IFREG);
    archive_entry_set_perm(t->e, (mode_t)perm);
    archive_entry_set_uid(t->e, 0);
    archive_entry_set_gid(t->e, 0);
    archive_entry_set_mtime(t->e, (time_t)mtime, 0);
    archive_entry_set_size(t->e, (la_int64_t)size);
    snprintf(t->member, sizeof t->member, "%s", name);
    if (archive_write_header(t->a, t->e) != ARCHIVE_OK)
        return terr(t, name, err);
    return SP_OK;
}

int sp_tar_out_data(struct sp_tar_out *t, const void *buf, size_t len, struct sp_error *err)
{
    if (t->failed)
        return sp_error_set(err, SP_EINVAL, "%s: the archive writer has stopped", t->member);
    const uint8_t *p = buf;
    while (len > 0) {
        la_ssize_t n = archive_write_data(t->a, p, len);
        if (n <= 0)
            return terr(t, t->member, err);
        p += n;
        len -= (size_t)n;
    }
    return SP_OK;
}

int sp_tar_out_close(struct sp_tar_out *t, struct sp_error *err)
{
    if (t->failed || t->closed)
        return sp_error_set(err, SP_EINVAL, "tar writer: already closed or failed");
    t->closed = true;
    if (archive_write_close(t->a) != ARCHIVE_OK)
        return terr(t, "end of archive", err);
    if (t->pc && sp_pcomp_finish(t->pc, err) != SP_OK) {
        t->failed = true;
        return sp_error_prefix(err, "end of archive");
    }
    return SP_OK;
}

void sp_tar_out_free(struct sp_tar_out *t)
{
    if (!t)
        return;
    if (t->a) {
        /* after a write error libarchive is in its fatal state and skips
         * the close itself */
        if (!t->closed || t->failed)
            t->discard = true;
        archive_write_free(t->a);
    }
    if (t->e)
        archive_entry_free(t->e);
    sp_pcomp_free(t->pc); /* unfinished: the rest is dropped */
    free(t);
}
