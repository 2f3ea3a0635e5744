#include "disk/raw.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "disk/copy.h"
#include "disk/driver.h"

struct raw_disk {
    struct sp_disk disk;
    int fd;
    bool owns_fd;
    bool seek_data;   /* the file system answers SEEK_DATA/SEEK_HOLE */
    struct sp_writeback wb;
    char *path;
};

static int raw_next_extent(struct sp_disk *d, uint64_t off, struct sp_extent *ext, struct sp_error *err)
{
    struct raw_disk *r = (struct raw_disk *)d;
    ext->start = off;
    ext->len = d->size - off;
    ext->kind = SP_EXTENT_DATA;
    if (!r->seek_data)
        return SP_OK;
    off_t data = lseek(r->fd, (off_t)off, SEEK_DATA);
    if (data < 0) {
        if (errno == ENXIO) { /* only a hole up to the end, or the end has moved */
            /* The size was the file's at open: a file shrunk since (truncated
             * under the reader) must not read as zeros where its data was. */
            struct stat st;
            if (fstat(r->fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size < d->size)
                return sp_error_set(err, SP_EIO, "%s: truncated while read: %llu bytes, %llu when opened", r->path,
                                    (unsigned long long)st.st_size, (unsigned long long)d->size);
            ext->kind = SP_EXTENT_ZERO;
            return SP_OK;
        }
        if (errno == EINVAL || errno == EOPNOTSUPP) {
            r->seek_data = false;
            return SP_OK;
        }
        return sp_error_errno(err, errno, "%s: SEEK_DATA", r->path);
    }
    if ((uint64_t)data > off) {
        ext->kind = SP_EXTENT_ZERO;
        ext->len = sp_min_u64((uint64_t)data, d->size) - off;
        return SP_OK;
    }
    off_t hole = lseek(r->fd, (off_t)off, SEEK_HOLE);
    if (hole < 0)
        return sp_error_errno(err, errno, "%s: SEEK_HOLE", r->path);
    ext->len = sp_min_u64((uint64_t)hole, d->size) - off;
    if (ext->len == 0)
        ext->len = d->size - off;
    return SP_OK;
}

static int raw_read(struct sp_disk *d, uint64_t off, void *buf, size_t len, struct sp_error *err)
{
    struct raw_disk *r = (struct raw_disk *)d;
    int rc = sp_pread_full(r->fd, buf, len, off, "data", err);
    return rc == SP_OK ? SP_OK : sp_error_prefix(err, "%s", r->path);
}

static int raw_write(struct sp_disk *d, uint64_t off, const void *buf, size_t len, struct sp_error *err)
{
    struct raw_disk *r = (struct raw_disk *)d;
    int rc = sp_pwrite_full(r->fd, buf, len, off, "data", err);
    if (rc != SP_OK)
        return sp_error_prefix(err, "%s", r->path);
    sp_writeback_note(&r->wb, off, len);
    return SP_OK;
}

static void raw_close(struct sp_disk *d)
{
    struct raw_disk *r = (struct raw_disk *)d;
    if (r->owns_fd && r->fd >= 0)
        close(r->fd);
    free(r->path);
    free(r);
}

static const struct sp_disk_ops RAW_OPS = {
    .next_extent = raw_next_extent,
    .read = raw_read,
    .write = raw_write,
    .close = raw_close,
};

static const struct sp_disk_ops RAW_RO_OPS = {
    .next_extent = raw_next_extent,
    .read = raw_read,
    .close = raw_close,
};

static int raw_new(int fd, bool owns, bool writable, const char *path, uint64_t size, struct sp_disk **out,
                   struct sp_error *err)
{
    struct raw_disk *r = sp_zalloc(sizeof *r, err);
    if (!r)
        return SP_ENOMEM;
    r->path = strdup(path);
    if (!r->path) {
        free(r);
        return sp_error_set(err, SP_ENOMEM, "out of memory");
    }
    r->fd = fd;
    r->owns_fd = owns;
    r->seek_data = true;
    sp_writeback_init(&r->wb, fd);
    r->disk.ops = writable ? &RAW_OPS : &RAW_RO_OPS;
    r->disk.size = size;
    r->disk.path = r->path;
    *out = &r->disk;
    return SP_OK;
}

int sp_raw_open(const char *path, bool writable, struct sp_disk **out, struct sp_error *err)
{
    int fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int rc = sp_error_errno(err, errno, "%s", path);
        if (fd >= 0)
            close(fd);
        return rc;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (S_ISBLK(st.st_mode)) {
        off_t end = lseek(fd, 0, SEEK_END);
        size = end > 0 ? (uint64_t)end : 0;
    } else if (!S_ISREG(st.st_mode)) {
        close(fd);
        return sp_error_set(err, SP_EFORMAT, "%s: not a regular file or block device", path);
    }
    int rc = raw_new(fd, true, writable, path, size, out, err);
    if (rc != SP_OK)
        close(fd);
    return rc;
}

int sp_raw_open_fd(int fd, const char *path, struct sp_disk **out, struct sp_error *err)
{
    struct stat st;
    int rc = SP_OK;
    if (fstat(fd, &st) != 0)
        rc = sp_error_errno(err, errno, "%s", path);
    else if (!S_ISREG(st.st_mode))
        rc = sp_error_set(err, SP_EFORMAT, "%s: not a regular file", path);
    else
        rc = raw_new(fd, true, false, path, (uint64_t)st.st_size, out, err);
    if (rc != SP_OK)
        close(fd);
    return rc;
}

int sp_raw_create_fd(int fd, const char *path, uint64_t size, bool durable, struct sp_disk **out,
                     struct sp_error *err)
{
    if (ftruncate(fd, (off_t)size) != 0)
        return sp_error_errno(err, errno, "%s: setting the size", path);
    int rc = raw_new(fd, false, true, path, size, out, err);
    if (rc == SP_OK && !durable)
        sp_writeback_init(&((struct raw_disk *)*out)->wb, -1);
    return rc;
}

/* ------------------------------------------------------------------ */
/* The driver: raw is what every file is when no format bids for it. */

static int raw_probe(const struct sp_probe *p)
{
    (void)p;
    return SP_PROBE_FALLBACK;
}

static int raw_driver_open(const char *path, const struct sp_disk_open_opts *o, struct sp_disk **out,
                           struct sp_error *err)
{
    return sp_raw_open(path, o->writable, out, err);
}

static bool raw_streamable(const struct sp_probe *p)
{
    (void)p;
    return true;
}

/* Read size: what one read of a stream gives the sink at a time. */
#define RAW_STREAM_CHUNK (1u << 20)

static int raw_read_stream(sp_stream_in in, void *in_ctx, sp_stream_sink sink, void *sink_ctx, uint64_t *size,
                           struct sp_error *err)
{
    uint8_t *buf = sp_alloc(RAW_STREAM_CHUNK, err);
    if (!buf)
        return SP_ENOMEM;
    uint64_t off = 0;
    int rc = SP_OK;
    for (;;) {
        size_t got = 0, fill = 0;
        while (rc == SP_OK && fill < RAW_STREAM_CHUNK) {
            rc = in(in_ctx, buf + fill, RAW_STREAM_CHUNK - fill, &got, err);
            if (got == 0)
                break;
            fill += got;
        }
        if (rc != SP_OK || fill == 0)
            break;
        rc = sink(sink_ctx, off, buf, fill);
        off += fill;
        if (rc != SP_OK)
            break;
    }
    free(buf);
    *size = off;
    return rc;
}

static int raw_create_copy(int fd, struct sp_disk *src, const struct sp_disk_create_opts *o,
                           const struct sp_progress *prog, struct sp_error *err)
{
    struct sp_disk *dst;
    int rc = sp_raw_create_fd(fd, o->path, src->size, o->durable, &dst, err);
    if (rc != SP_OK)
        return rc;
    rc = sp_copy_disk(src, dst, prog, err);
    sp_disk_close(dst);
    return rc;
}

static const char *const RAW_EXTENSIONS[] = {"raw", "img", NULL};

const struct sp_disk_driver sp_disk_driver_raw = {
    .name = "raw",
    .extensions = RAW_EXTENSIONS,
    .probe = raw_probe,
    .open = raw_driver_open,
    .streamable = raw_streamable,
    .read_stream = raw_read_stream,
    .create_copy = raw_create_copy,
};
