/* The VMDK driver: the registry's entry for every VMDK snapport reads
 * (sparse extents and descriptor files) and the streamOptimized writer a
 * flatten to .vmdk uses. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "disk/copy.h"
#include "disk/driver.h"
#include "disk/vmdk.h"
#include "disk/vmdk_internal.h"

/* A descriptor file starts with this comment (qemu-img, VMware). */
#define VMDK_DESC_SIGNATURE "# Disk DescriptorFile"
/* Without the comment, a createType line this early still makes a
 * descriptor: it is the fourth or fifth line of every one we know. */
#define VMDK_PROBE_TEXT 1024u

_Static_assert(VMDK_EXTENTS_MAX <= SP_DISK_MAX_LAYERS, "disk info lists every extent");

/* Is there a line `createType=` (blanks allowed) in the text before the
 * first NUL of head? */
static bool has_create_type_line(const uint8_t *head, size_t len)
{
    static const char KEY[] = "createType";
    const char *p = (const char *)head, *end = p + sp_min_u64(len, VMDK_PROBE_TEXT);
    const char *nul = memchr(p, '\0', (size_t)(end - p));
    end = nul ? nul : end;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if ((size_t)(end - p) > sizeof KEY - 1 && memcmp(p, KEY, sizeof KEY - 1) == 0) {
            const char *q = p + sizeof KEY - 1;
            while (q < end && (*q == ' ' || *q == '\t'))
                q++;
            if (q < end && *q == '=')
                return true;
        }
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    return false;
}

static int vmdk_probe(const struct sp_probe *p)
{
    if (sp_vmdk_probe(p->head, p->head_len))
        return SP_PROBE_SURE;
    size_t sig = sizeof VMDK_DESC_SIGNATURE - 1;
    if (p->head_len >= sig && memcmp(p->head, VMDK_DESC_SIGNATURE, sig) == 0)
        return SP_PROBE_SURE;
    return has_create_type_line(p->head, p->head_len) ? SP_PROBE_SURE : SP_PROBE_NO;
}

/* The createType values whose data we read: sparse extents, flat files,
 * ZERO extents. Delta disks (vmfsSparse, seSparse) and raw devices are not
 * among them. */
static bool known_create_type(const char *t)
{
    static const char *const TYPES[] = {"monolithicSparse", "streamOptimized", "monolithicFlat",
                                        "twoGbMaxExtentSparse", "twoGbMaxExtentFlat", "vmfs"};
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
        if (strcmp(t, TYPES[i]) == 0)
            return true;
    return false;
}

static int refuse_delta(const char *path, const struct vmdk_descriptor *d, struct sp_error *err)
{
    if (!d->parent[0])
        return SP_OK;
    return sp_error_set(err, SP_EUNSUPPORTED, "%s: a delta disk (%s): snapport does not read VMDK parents; "
                        "flatten it with its parent first (qemu-img convert)", path, d->parent);
}

/* A sparse file's embedded descriptor: no parent, and its extent lines (if
 * any parse) add up to the header's capacity. */
static int check_embedded(struct sp_disk *sparse, struct sp_error *err)
{
    char *text = NULL;
    struct vmdk_descriptor *d = NULL;
    int rc = sp_vmdk_sparse_descriptor(sparse, &text, err);
    if (rc == SP_OK && text)
        rc = sp_vmdk_descriptor_parse(text, strlen(text), false, &d, err);
    if (rc != SP_OK || !d)
        goto out;
    uint64_t cap = sp_vmdk_sparse_header(sparse)->capacity;
    rc = refuse_delta(sparse->path, d, err);
    if (rc == SP_OK && d->n && d->sectors != cap)
        rc = sp_error_set(err, SP_EFORMAT, "%s: embedded descriptor's extents hold %" PRIu64
                          " sectors, the header's capacity is %" PRIu64, sparse->path, d->sectors, cap);
out:
    sp_vmdk_descriptor_free(d);
    free(text);
    return rc;
}

static int open_sparse(int fd, const char *path, struct sp_disk **out, struct sp_error *err)
{
    struct sp_disk *d = NULL;
    int rc = sp_vmdk_sparse_open_fd(fd, path, &d, err);
    if (rc == SP_OK)
        rc = check_embedded(d, err);
    if (rc != SP_OK) {
        sp_disk_close(d);
        return rc;
    }
    *out = d;
    return SP_OK;
}

/* The whole descriptor file, NUL-terminated (at most VMDK_DESC_MAX). */
static int read_descriptor(int fd, const char *path, char **text, size_t *len, struct sp_error *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return sp_error_errno(err, errno, "%s", path);
    if (!S_ISREG(st.st_mode))
        return sp_error_set(err, SP_EFORMAT, "%s: not a regular file", path);
    if ((uint64_t)st.st_size > VMDK_DESC_MAX)
        return sp_error_set(err, SP_ELIMIT, "%s: a descriptor of %llu bytes, more than the %u KiB snapport reads",
                            path, (unsigned long long)st.st_size, VMDK_DESC_MAX >> 10);
    *len = (size_t)st.st_size;
    *text = sp_alloc(*len + 1, err);
    if (!*text)
        return SP_ENOMEM;
    int rc = sp_pread_full(fd, *text, *len, 0, "descriptor", err);
    if (rc != SP_OK) {
        free(*text);
        *text = NULL;
        return sp_error_prefix(err, "%s", path);
    }
    (*text)[*len] = '\0';
    return SP_OK;
}

/* What the descriptor may be: a createType we read, no parent, and, for an
 * archive member (standalone), no other file named. */
static int check_descriptor(const char *path, const struct vmdk_descriptor *d, bool standalone,
                            struct sp_error *err)
{
    if (!d->create_type[0])
        return sp_error_set(err, SP_EFORMAT, "%s: descriptor without a createType", path);
    if (!known_create_type(d->create_type))
        return sp_error_set(err, SP_EUNSUPPORTED, "%s: createType \"%s\" not supported (snapport reads "
                            "monolithicSparse, streamOptimized, monolithicFlat, twoGbMaxExtentSparse, "
                            "twoGbMaxExtentFlat and vmfs)", path, d->create_type);
    int rc = refuse_delta(path, d, err);
    for (size_t i = 0; rc == SP_OK && standalone && i < d->n; i++)
        if (d->ext[i].file)
            rc = sp_error_set(err, SP_EUNSUPPORTED, "%s: a descriptor that names other files (\"%s\"), "
                              "which an archive member cannot have", path, d->ext[i].file);
    return rc;
}

static int open_descriptor(int fd, const char *path, bool standalone, struct sp_disk **out, struct sp_error *err)
{
    char *text = NULL;
    size_t len = 0;
    struct vmdk_descriptor *d = NULL;
    int rc = read_descriptor(fd, path, &text, &len, err);
    close(fd);
    if (rc == SP_OK && (rc = sp_vmdk_descriptor_parse(text, len, true, &d, err)) != SP_OK)
        sp_error_prefix(err, "%s", path);
    if (rc == SP_OK)
        rc = check_descriptor(path, d, standalone, err);
    if (rc == SP_OK)
        rc = sp_vmdk_extents_open(path, d, out, err);
    sp_vmdk_descriptor_free(d);
    free(text);
    return rc;
}

/* A sparse extent ("KDMV": monolithicSparse, streamOptimized) or a
 * descriptor file and the extent files it names. */
static int vmdk_driver_open(const char *path, const struct sp_disk_open_opts *o, struct sp_disk **out,
                            struct sp_error *err)
{
    if (o->writable)
        return sp_error_set(err, SP_EUNSUPPORTED, "%s: VMDK images are read-only here", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        int rc = sp_error_errno(err, e, "%s", path);
        return e == ENOENT ? (err->code = SP_ENOTFOUND) : rc;
    }
    uint8_t magic[VMDK_MAGIC_LEN];
    ssize_t n = pread(fd, magic, sizeof magic, 0);
    if (n == (ssize_t)sizeof magic && sp_vmdk_probe(magic, sizeof magic))
        return open_sparse(fd, path, out, err);
    return open_descriptor(fd, path, o->standalone, out, err);
}

/* One layer per file: the sparse file itself, or each extent. */
static int vmdk_layers(struct sp_disk *d, struct sp_disk_layer *l, int max, int *n, struct sp_error *err)
{
    const struct vmdk_header *h = sp_vmdk_sparse_header(d);
    if (!h)
        return sp_vmdk_extents_layers(d, l, max, n, err);
    *n = 0;
    if (max < 1)
        return SP_OK;
    uint32_t stream = VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS;
    memset(l, 0, sizeof *l);
    l->path = d->path;
    snprintf(l->variant, sizeof l->variant, "%s", (h->flags & stream) == stream ? "streamOptimized"
                                                                              : "monolithicSparse");
    l->virtual_size = d->size;
    l->block_size = (uint32_t)(h->grain * VMDK_SECTOR);
    *n = 1;
    return sp_disk_data_bytes(d, &l->allocated, err);
}

/* A sparse extent: its own check (every table, grains named twice); a
 * descriptor with extents: every extent's metadata, read by walking the
 * disk (what disk check does for a driver without a check). */
static int vmdk_check(struct sp_disk *d, void (*problem)(void *ctx, const char *msg), void *ctx,
                      struct sp_error *err)
{
    if (sp_vmdk_sparse_header(d))
        return sp_vmdk_sparse_check(d, problem, ctx, err);
    uint64_t n = 0;
    return sp_disk_data_bytes(d, &n, err);
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
    const char *path;      /* for messages */
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
            return sp_error_errno(err, errno, "%s: write", v->path);
        buf = (const uint8_t *)buf + n;
        len -= (size_t)n;
    }
    return SP_OK;
}

/* A streamOptimized VMDK, as an OVA carries it. */
static int vmdk_create_copy(int fd, struct sp_disk *src, const struct sp_disk_create_opts *o,
                            const struct sp_progress *prog, struct sp_error *err)
{
    struct vmdk_fd_out v = {o->path, fd, 0, {0, 0, 0}};
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
    .layers_are_extents = true,
    .layers = vmdk_layers,
    .check = vmdk_check,
    .streamable = vmdk_streamable,
    .read_stream = vmdk_driver_read_stream,
    .create_copy = vmdk_create_copy,
};
