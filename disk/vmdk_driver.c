/* The VMDK driver: the registry's entry for every VMDK snapport reads
 * (sparse extents and descriptor files) and the streamOptimized writer a
 * flatten to .vmdk uses. */
#include <errno.h>
#include <string.h>

#include "base/util.h"
#include "disk/driver.h"
#include "disk/vmdk.h"
#include "disk/vmdk_internal.h"

static int vmdk_probe(const struct sp_probe *p)
{
    return sp_vmdk_probe(p->head, p->head_len) ? SP_PROBE_SURE : SP_PROBE_NO;
}

static int vmdk_driver_open(const char *path, const struct sp_disk_open_opts *o, struct sp_disk **out,
                            struct sp_error *err)
{
    if (o->writable)
        return sp_error_set(err, SP_EUNSUPPORTED, "%s: VMDK images are read-only here", path);
    return sp_vmdk_open(path, out, err);
}

/* streamOptimized: compressed grains with markers, readable front to back. */
static bool vmdk_streamable(const struct sp_probe *p)
{
    if (!sp_vmdk_probe(p->head, p->head_len) || p->head_len < H_FLAGS + 4)
        return false;
    uint32_t flags = le32(p->head + H_FLAGS);
    return (flags & (VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS)) == (VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS);
}

static int vmdk_driver_read_stream(sp_stream_in in, void *in_ctx, sp_stream_sink sink, void *sink_ctx,
                                   uint64_t *size, struct sp_error *err)
{
    uint64_t cap = 0;
    int rc = sp_vmdk_read_stream(in, in_ctx, sink, sink_ctx, &cap, err);
    *size = cap * VMDK_SECTOR;
    return rc;
}

struct vmdk_fd_out {
    int fd;
    uint64_t written;
    struct sp_writeback wb;
};

static int vmdk_fd_write(void *ctx, const void *buf, size_t len, struct sp_error *err)
{
    struct vmdk_fd_out *v = ctx;
    while (len > 0) {
        ssize_t n = sp_write_out(v->fd, buf, len, &v->wb, &v->written);
        if (n < 0)
            return sp_error_errno(err, errno, "write");
        buf = (const uint8_t *)buf + n;
        len -= (size_t)n;
    }
    return SP_OK;
}

/* A streamOptimized VMDK, as an OVA carries it. */
static int vmdk_create_copy(int fd, struct sp_disk *src, const struct sp_disk_create_opts *o,
                            const struct sp_progress *prog, struct sp_error *err)
{
    struct vmdk_fd_out v = {fd, 0, {0, 0, 0}};
    sp_writeback_init(&v.wb, o->durable ? fd : -1);
    const char *base = strrchr(o->path, '/');
    struct sp_vmdk_write_opts wo = {.level = o->level ? o->level : SP_VMDK_EXPORT_LEVEL,
                                    .name = base ? base + 1 : o->path};
    return sp_vmdk_write_stream(src, &wo, vmdk_fd_write, &v, prog, NULL, err);
}

static const char *const VMDK_EXTENSIONS[] = {"vmdk", NULL};

const struct sp_disk_driver sp_disk_driver_vmdk = {
    .name = "vmdk",
    .extensions = VMDK_EXTENSIONS,
    .probe = vmdk_probe,
    .open = vmdk_driver_open,
    .streamable = vmdk_streamable,
    .read_stream = vmdk_driver_read_stream,
    .create_copy = vmdk_create_copy,
};
