/* A VMDK disk made of a descriptor file's extents (monolithicFlat,
 * twoGbMaxExtentSparse, twoGbMaxExtentFlat, vmfs): the concatenation of its
 * extents, each its own extent stream (a sparse extent's grains, a flat
 * file's SEEK_DATA/SEEK_HOLE runs through the raw reader, zeros for ZERO).
 *
 * Extent files are opened directly, never through the registry: a FLAT
 * extent is raw bytes whatever they look like (a guest disk that starts
 * with a VHD footer is still data), a SPARSE one must be "KDMV". */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/driver.h"
#include "disk/raw.h"
#include "disk/vmdk_internal.h"

struct vmdk_extent {
    enum vmdk_extent_type type;
    uint64_t start, len;         /* bytes of the virtual disk */
    uint64_t file_off;           /* FLAT, VMFS: bytes into the file */
    struct sp_disk *sub;         /* the file's reader; NULL for ZERO */
    char *path;                  /* the descriptor's directory + the name; NULL for ZERO */
};

struct vmdk_extents {
    struct sp_disk disk;
    char *path;
    char create_type[VMDK_CREATE_TYPE_MAX];
    struct vmdk_extent *ext;
    size_t n;
};

static const struct sp_disk_ops EXTENTS_OPS;

/* The extent that holds off (off < size): the last one starting at or
 * before it. */
static struct vmdk_extent *extent_at(struct vmdk_extents *x, uint64_t off)
{
    size_t lo = 0, hi = x->n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (x->ext[mid].start <= off)
            lo = mid;
        else
            hi = mid;
    }
    return &x->ext[lo];
}

static int extents_next_extent(struct sp_disk *d, uint64_t off, struct sp_extent *ext, struct sp_error *err)
{
    struct vmdk_extent *e = extent_at((struct vmdk_extents *)d, off);
    uint64_t left = e->start + e->len - off;
    ext->start = off;
    ext->len = left;
    ext->kind = SP_EXTENT_ZERO;
    if (!e->sub)
        return SP_OK;
    int rc = sp_disk_next_extent(e->sub, e->file_off + (off - e->start), ext, err);
    if (rc != SP_OK)
        return rc;
    ext->start = off;
    ext->len = sp_min_u64(ext->len, left);
    return SP_OK;
}

static int extents_read(struct sp_disk *d, uint64_t off, void *buf, size_t len, struct sp_error *err)
{
    struct vmdk_extents *x = (struct vmdk_extents *)d;
    uint8_t *b = buf;
    while (len) {
        struct vmdk_extent *e = extent_at(x, off);
        size_t n = (size_t)sp_min_u64(len, e->start + e->len - off);
        if (!e->sub) {
            memset(b, 0, n);
        } else {
            int rc = sp_disk_read(e->sub, e->file_off + (off - e->start), b, n, err);
            if (rc != SP_OK)
                return rc;
        }
        b += n;
        off += n;
        len -= n;
    }
    return SP_OK;
}

static void extents_close(struct sp_disk *d)
{
    struct vmdk_extents *x = (struct vmdk_extents *)d;
    if (!x)
        return;
    for (size_t i = 0; i < x->n; i++) {
        sp_disk_close(x->ext[i].sub);
        free(x->ext[i].path);
    }
    free(x->ext);
    free(x->path);
    free(x);
}

static const struct sp_disk_ops EXTENTS_OPS = {
    .next_extent = extents_next_extent,
    .read = extents_read,
    .close = extents_close,
};

/* Extent files are read from the descriptor's directory only (what qemu-img
 * and VMware write): a name is one file name, so that a descriptor from
 * elsewhere (an unpacked archive) cannot make us read /etc/shadow or a
 * block device into an image. */
static int check_name(const char *name, int line, struct sp_error *err)
{
    const char *why = NULL;
    if (name[0] == '/')
        why = "an absolute path";
    else if (strcmp(name, "..") == 0 || strncmp(name, "../", 3) == 0 || strstr(name, "/../") ||
             (strlen(name) >= 3 && strcmp(name + strlen(name) - 3, "/..") == 0))
        why = "a path out of the descriptor's directory";
    else if (strchr(name, '/'))
        why = "a file in another directory";
    if (!why)
        return SP_OK;
    return sp_error_set(err, SP_EUNSUPPORTED, "line %d: extent file \"%s\" is %s (extent files are read "
                        "from the descriptor's directory only)", line, name, why);
}

/* fd (an extent file just opened) is a regular file; closed if not. */
static int regular_file(int fd, int line, const char *path, struct sp_error *err)
{
    struct stat st;
    int rc = SP_OK;
    if (fstat(fd, &st) != 0)
        rc = sp_error_errno(err, errno, "line %d: extent file %s", line, path);
    else if (!S_ISREG(st.st_mode))
        rc = sp_error_set(err, SP_EFORMAT, "line %d: extent file %s is not a regular file", line, path);
    if (rc != SP_OK)
        close(fd);
    return rc;
}

/* Opens the extent file: O_NOFOLLOW, because a symbolic link would lead
 * out of the directory as surely as "../" (check_name); O_NONBLOCK, so that
 * a FIFO of that name cannot hang the open (a regular file reads as usual);
 * then only a regular file is taken. */
static int open_extent_file(const char *dir, size_t dir_len, const struct vmdk_extent_line *l, char **path,
                            int *fd, struct sp_error *err)
{
    int rc = check_name(l->file, l->line, err);
    if (rc != SP_OK)
        return rc;
    size_t n = dir_len + strlen(l->file) + 1;
    *path = sp_alloc(n, err);
    if (!*path)
        return SP_ENOMEM;
    snprintf(*path, n, "%.*s%s", (int)dir_len, dir, l->file);
    *fd = open(*path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (*fd >= 0)
        return regular_file(*fd, l->line, *path, err);
    int e = errno;
    if (e == ELOOP)
        return sp_error_set(err, SP_EUNSUPPORTED, "line %d: extent file %s is a symbolic link (not followed)",
                            l->line, *path);
    rc = sp_error_errno(err, e, "line %d: extent file %s", l->line, *path);
    if (e == ENOENT)
        rc = err->code = SP_ENOTFOUND;
    return rc;
}

/* A SPARSE extent: a hosted sparse file whose capacity is its line's size. */
static int open_sparse(struct vmdk_extent *e, int fd, const struct vmdk_extent_line *l, struct sp_error *err)
{
    int rc = sp_vmdk_sparse_open_fd(fd, e->path, &e->sub, err);
    if (rc != SP_OK)
        return sp_error_prefix(err, "line %d", l->line);
    if (e->sub->size != e->len)
        return sp_error_set(err, SP_EFORMAT, "line %d: extent file %s holds %" PRIu64 " sectors, its line says %"
                            PRIu64, l->line, e->path, e->sub->size / VMDK_SECTOR, l->sectors);
    return SP_OK;
}

/* A FLAT or VMFS extent: the line's sectors from its offset, which the
 * file must hold. */
static int open_flat(struct vmdk_extent *e, int fd, const struct vmdk_extent_line *l, struct sp_error *err)
{
    if (l->offset > UINT64_MAX / VMDK_SECTOR - l->sectors) {
        close(fd);
        return sp_error_set(err, SP_EFORMAT, "line %d: extent offset %" PRIu64 " too large", l->line, l->offset);
    }
    e->file_off = l->offset * VMDK_SECTOR;
    int rc = sp_raw_open_fd(fd, e->path, &e->sub, err);
    if (rc != SP_OK)
        return sp_error_prefix(err, "line %d", l->line);
    if (e->sub->size < e->file_off + e->len)
        return sp_error_set(err, SP_EFORMAT, "line %d: extent file %s has %" PRIu64 " bytes, its line needs %"
                            PRIu64, l->line, e->path, e->sub->size, e->file_off + e->len);
    return SP_OK;
}

static int open_extent(struct vmdk_extent *e, const char *dir, size_t dir_len, const struct vmdk_extent_line *l,
                       struct sp_error *err)
{
    e->type = l->type;
    e->len = l->sectors * VMDK_SECTOR;
    if (l->noaccess)
        return sp_error_set(err, SP_EUNSUPPORTED, "line %d: a NOACCESS extent", l->line);
    if (l->type == VMDK_EXT_ZERO)
        return SP_OK;
    int fd = -1;
    int rc = open_extent_file(dir, dir_len, l, &e->path, &fd, err);
    if (rc != SP_OK)
        return rc;
    return l->type == VMDK_EXT_SPARSE ? open_sparse(e, fd, l, err) : open_flat(e, fd, l, err);
}

int sp_vmdk_extents_open(const char *path, const struct vmdk_descriptor *d, struct sp_disk **out,
                         struct sp_error *err)
{
    if (d->n == 0)
        return sp_error_set(err, SP_EFORMAT, "%s: no extent lines", path);
    struct vmdk_extents *x = sp_zalloc(sizeof *x, err);
    if (!x)
        return SP_ENOMEM;
    int rc = SP_OK;
    x->disk.ops = &EXTENTS_OPS;
    snprintf(x->create_type, sizeof x->create_type, "%s", d->create_type);
    x->path = strdup(path);
    x->ext = sp_zalloc(d->n * sizeof *x->ext, err); /* n <= VMDK_EXTENTS_MAX */
    if (!x->path || !x->ext) {
        rc = sp_error_set(err, SP_ENOMEM, "out of memory");
        goto out;
    }
    x->n = d->n; /* entries not opened yet are zero: closing them is a no-op */
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    for (size_t i = 0; i < d->n; i++) {
        x->ext[i].start = x->disk.size;
        rc = open_extent(&x->ext[i], path, dir_len, &d->ext[i], err);
        if (rc != SP_OK)
            goto out;
        x->disk.size += x->ext[i].len; /* the parser checked that the sum fits */
    }
    x->disk.path = x->path;
    *out = &x->disk;
out:
    if (rc != SP_OK) {
        extents_close(&x->disk);
        sp_error_prefix(err, "%s", path);
    }
    return rc;
}

/* DATA bytes of extent e (a flat file's window, a sparse file's grains). */
static int extent_allocated(struct vmdk_extents *x, const struct vmdk_extent *e, uint64_t *n, struct sp_error *err)
{
    *n = 0;
    struct sp_extent r;
    for (uint64_t off = e->start; e->sub && off < e->start + e->len; off += r.len) {
        int rc = extents_next_extent(&x->disk, off, &r, err);
        if (rc != SP_OK)
            return rc;
        if (r.kind == SP_EXTENT_DATA)
            *n += r.len;
    }
    return SP_OK;
}

int sp_vmdk_extents_layers(struct sp_disk *d, struct sp_disk_layer *l, int max, int *n, struct sp_error *err)
{
    *n = 0;
    if (d->ops != &EXTENTS_OPS)
        return sp_error_set(err, SP_EINVAL, "%s: not a vmdk made of extent files", d->path);
    struct vmdk_extents *x = (struct vmdk_extents *)d;
    for (size_t i = 0; i < x->n && *n < max; i++) {
        const struct vmdk_extent *e = &x->ext[i];
        struct sp_disk_layer *y = &l[(*n)++];
        memset(y, 0, sizeof *y);
        y->path = e->path ? e->path : "(zero extent)";
        snprintf(y->variant, sizeof y->variant, "%s", x->create_type);
        y->virtual_size = e->len;
        const struct vmdk_header *h = sp_vmdk_sparse_header(e->sub);
        y->block_size = h ? (uint32_t)(h->grain * VMDK_SECTOR) : 0;
        int rc = extent_allocated(x, e, &y->allocated, err);
        if (rc != SP_OK)
            return rc;
    }
    return SP_OK;
}
