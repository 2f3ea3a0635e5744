/* The random-access reader of a hosted sparse extent ("KDMV"): a
 * monolithicSparse file, a streamOptimized file read through its grain
 * directory, or one extent of a twoGbMaxExtentSparse disk. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/vmdk.h"
#include "disk/vmdk_internal.h"

/* next_extent stops its run here: each call reads at most this many grain
 * tables' worth (1 GiB = 32 tables of 64 KiB grains). */
#define VMDK_EXTENT_MAX (1ull << 30)


struct vmdk_disk {
    struct sp_disk disk;
    int fd;
    char *path;
    uint64_t file_size;
    struct vmdk_header hd;
    size_t grain_bytes;
    uint64_t ngrains;
    uint32_t *gd;          /* ngt entries */
    uint64_t ngt;
    uint32_t *gt;          /* the cached table */
    uint64_t gt_index;     /* UINT64_MAX: none */
    uint8_t *grain;        /* the cached grain */
    uint64_t grain_index;  /* UINT64_MAX: none */
    uint8_t *cbuf;
    size_t cmax;
    struct libdeflate_decompressor *dec;
};

/* The sector of grain g, 0 when absent (or a zeroed grain). */
static int grain_sector(struct vmdk_disk *v, uint64_t g, uint64_t *sector, struct sp_error *err)
{
    uint64_t t = g / v->hd.gtes;
    *sector = 0;
    if (v->gd[t] == 0)
        return SP_OK;
    if (v->gt_index != t) {
        uint64_t off = (uint64_t)v->gd[t] * VMDK_SECTOR;
        size_t len = (size_t)v->hd.gtes * 4;
        if (off > v->file_size || len > v->file_size - off)
            return sp_error_set(err, SP_EFORMAT, "%s: grain table %" PRIu64 " past the end of the file", v->path, t);
        uint8_t *raw = (uint8_t *)v->gt; /* decoded in place */
        int rc = sp_pread_full(v->fd, raw, len, off, "grain table", err);
        if (rc != SP_OK) {
            v->gt_index = UINT64_MAX;
            return sp_error_prefix(err, "%s", v->path);
        }
        for (size_t i = 0; i < v->hd.gtes; i++)
            v->gt[i] = le32(raw + 4 * i);
        v->gt_index = t;
    }
    uint32_t e = v->gt[g % v->hd.gtes];
    if (e == 1 && (v->hd.flags & VMDK_FLAG_ZERO_GTE))
        return SP_OK;
    *sector = e;
    return SP_OK;
}

static int load_grain(struct vmdk_disk *v, uint64_t g, uint64_t sector, struct sp_error *err)
{
    if (v->grain_index == g)
        return SP_OK;
    v->grain_index = UINT64_MAX;
    uint64_t off = sector * VMDK_SECTOR;
    if (off >= v->file_size)
        return sp_error_set(err, SP_EFORMAT, "%s: grain %" PRIu64 " past the end of the file", v->path, g);
    uint64_t avail = v->file_size - off;
    int rc;
    if (!(v->hd.flags & VMDK_FLAG_COMPRESSED)) {
        if (avail < v->grain_bytes)
            return sp_error_set(err, SP_EFORMAT, "%s: grain %" PRIu64 " past the end of the file", v->path, g);
        rc = sp_pread_full(v->fd, v->grain, v->grain_bytes, off, "grain", err);
        if (rc != SP_OK)
            return sp_error_prefix(err, "%s", v->path);
        v->grain_index = g;
        return SP_OK;
    }
    size_t first = (size_t)sp_min_u64(avail, VMDK_SECTOR);
    if (first < VMDK_GRAIN_MARKER_LEN)
        return sp_error_set(err, SP_EFORMAT, "%s: grain %" PRIu64 " past the end of the file", v->path, g);
    rc = sp_pread_full(v->fd, v->cbuf, first, off, "grain", err);
    if (rc != SP_OK)
        return sp_error_prefix(err, "%s", v->path);
    uint64_t lba = le64(v->cbuf);
    uint32_t size = le32(v->cbuf + 8);
    if (lba != g * v->hd.grain)
        return sp_error_set(err, SP_EFORMAT, "%s: grain %" PRIu64 ": marker says lba %" PRIu64, v->path, g, lba);
    if (size == 0 || size > v->cmax)
        return sp_error_set(err, SP_EFORMAT, "%s: grain %" PRIu64 ": bad compressed size %" PRIu32, v->path, g, size);
    size_t need = VMDK_GRAIN_MARKER_LEN + size;
    if (need > avail)
        return sp_error_set(err, SP_EFORMAT, "%s: grain %" PRIu64 " past the end of the file", v->path, g);
    if (need > first) {
        rc = sp_pread_full(v->fd, v->cbuf + first, need - first, off + first, "grain", err);
        if (rc != SP_OK)
            return sp_error_prefix(err, "%s", v->path);
    }
    size_t n = 0;
    enum libdeflate_result r =
        libdeflate_zlib_decompress(v->dec, v->cbuf + VMDK_GRAIN_MARKER_LEN, size, v->grain, v->grain_bytes, &n);
    if (r != LIBDEFLATE_SUCCESS)
        return sp_error_set(err, SP_EFORMAT, "%s: grain %" PRIu64 ": %s", v->path, g,
                            r == LIBDEFLATE_INSUFFICIENT_SPACE ? "inflates past the grain size"
                                                               : "corrupt compressed data");
    if (n < v->grain_bytes)
        memset(v->grain + n, 0, v->grain_bytes - n);
    v->grain_index = g;
    return SP_OK;
}

static int vmdk_next_extent(struct sp_disk *d, uint64_t off, struct sp_extent *ext, struct sp_error *err)
{
    struct vmdk_disk *v = (struct vmdk_disk *)d;
    uint64_t g = off / v->grain_bytes, sector;
    int rc = grain_sector(v, g, &sector, err);
    if (rc != SP_OK)
        return rc;
    enum sp_extent_kind kind = sector ? SP_EXTENT_DATA : SP_EXTENT_ZERO;
    uint64_t end = (g + 1) * v->grain_bytes;
    while (end < d->size && end - off < VMDK_EXTENT_MAX) {
        uint64_t ng = end / v->grain_bytes;
        if (kind == SP_EXTENT_ZERO && v->gd[ng / v->hd.gtes] == 0) { /* a whole absent table */
            end = (ng / v->hd.gtes + 1) * v->hd.gtes * v->grain_bytes;
            continue;
        }
        rc = grain_sector(v, ng, &sector, err);
        if (rc != SP_OK)
            return rc;
        if ((sector ? SP_EXTENT_DATA : SP_EXTENT_ZERO) != kind)
            break;
        end += v->grain_bytes;
    }
    ext->start = off;
    ext->len = sp_min_u64(end, d->size) - off;
    ext->kind = kind;
    return SP_OK;
}

static int vmdk_read(struct sp_disk *d, uint64_t off, void *buf, size_t len, struct sp_error *err)
{
    struct vmdk_disk *v = (struct vmdk_disk *)d;
    uint8_t *b = buf;
    while (len) {
        uint64_t g = off / v->grain_bytes, in = off % v->grain_bytes, sector;
        size_t n = (size_t)sp_min_u64(len, v->grain_bytes - in);
        int rc = grain_sector(v, g, &sector, err);
        if (rc != SP_OK)
            return rc;
        if (sector == 0) {
            memset(b, 0, n);
        } else {
            rc = load_grain(v, g, sector, err);
            if (rc != SP_OK)
                return rc;
            memcpy(b, v->grain + in, n);
        }
        b += n;
        off += n;
        len -= n;
    }
    return SP_OK;
}

static void vmdk_close(struct sp_disk *d)
{
    struct vmdk_disk *v = (struct vmdk_disk *)d;
    if (!v)
        return;
    if (v->fd >= 0)
        close(v->fd);
    libdeflate_free_decompressor(v->dec);
    free(v->gd);
    free(v->gt);
    free(v->grain);
    free(v->cbuf);
    free(v->path);
    free(v);
}

static const struct sp_disk_ops VMDK_OPS = {
    .next_extent = vmdk_next_extent,
    .read = vmdk_read,
    .close = vmdk_close,
};

/* streamOptimized with the directory at the end: footer marker, footer,
 * EOS are the last 3 sectors; the footer has the directory's sector. */
static int footer_gd(struct vmdk_disk *v, uint64_t *gd, struct sp_error *err)
{
    if (v->file_size < 4 * VMDK_SECTOR)
        return sp_error_set(err, SP_EFORMAT, "grain directory at the end, but no footer");
    uint8_t f[VMDK_SECTOR];
    struct vmdk_header fh;
    int rc = sp_pread_full(v->fd, f, sizeof f, v->file_size - 2 * VMDK_SECTOR, "footer", err);
    if (rc == SP_OK)
        rc = sp_vmdk_header_parse(f, &fh, err);
    if (rc != SP_OK)
        return sp_error_prefix(err, "footer");
    if (fh.capacity != v->hd.capacity || fh.grain != v->hd.grain || fh.gtes != v->hd.gtes)
        return sp_error_set(err, SP_EFORMAT, "footer does not match the header");
    *gd = fh.gd;
    v->hd.flags = fh.flags;
    return SP_OK;
}

/* The grain directory at sector gd, which must lie in the file: that
 * bounds its allocation. */
static int load_directory(struct vmdk_disk *v, uint64_t gd, struct sp_error *err)
{
    if (gd == 0 || gd == VMDK_GD_AT_END || gd > v->file_size / VMDK_SECTOR ||
        v->ngt * 4 > v->file_size - gd * VMDK_SECTOR)
        return sp_error_set(err, SP_EFORMAT, "grain directory (sector %" PRIu64 ", %" PRIu64
                            " entries) outside the file", gd, v->ngt);
    v->gd = sp_alloc((size_t)(v->ngt ? v->ngt : 1) * 4, err);
    if (!v->gd)
        return SP_ENOMEM;
    if (!v->ngt)
        return SP_OK;
    int rc = sp_pread_full(v->fd, v->gd, (size_t)v->ngt * 4, gd * VMDK_SECTOR, "grain directory", err);
    if (rc != SP_OK)
        return rc;
    const uint8_t *raw = (const uint8_t *)v->gd;
    for (uint64_t i = 0; i < v->ngt; i++)
        v->gd[i] = le32(raw + 4 * i); /* in place: entry i reads bytes 4i.. before writing them */
    return SP_OK;
}

/* The header (and footer), the directory; the caches and the inflater. */
static int sparse_load(struct vmdk_disk *v, struct sp_error *err)
{
    struct stat st;
    if (fstat(v->fd, &st) != 0)
        return sp_error_errno(err, errno, "stat");
    v->file_size = (uint64_t)st.st_size;
    if (v->file_size < VMDK_SECTOR)
        return sp_error_set(err, SP_EFORMAT, "too short for a sparse vmdk");
    uint8_t h[VMDK_SECTOR];
    int rc = sp_pread_full(v->fd, h, sizeof h, 0, "header", err);
    if (rc == SP_OK)
        rc = sp_vmdk_header_parse(h, &v->hd, err);
    uint64_t gd = v->hd.gd;
    if (rc == SP_OK && gd == VMDK_GD_AT_END)
        rc = footer_gd(v, &gd, err);
    if (rc != SP_OK)
        return rc;
    v->disk.size = v->hd.capacity * VMDK_SECTOR;
    v->grain_bytes = (size_t)v->hd.grain * VMDK_SECTOR;
    v->ngrains = sp_div_round_up(v->hd.capacity, v->hd.grain);
    v->ngt = sp_div_round_up(v->ngrains, v->hd.gtes);
    rc = load_directory(v, gd, err);
    if (rc != SP_OK)
        return rc;
    v->gt = sp_alloc((size_t)v->hd.gtes * 4, err);
    v->grain = sp_alloc(v->grain_bytes, err);
    v->cmax = VMDK_COMPRESSED_MAX(v->grain_bytes);
    v->cbuf = sp_alloc(VMDK_GRAIN_MARKER_LEN + v->cmax, err);
    if (!v->gt || !v->grain || !v->cbuf)
        return SP_ENOMEM;
    v->dec = libdeflate_alloc_decompressor();
    if (!v->dec)
        return sp_error_set(err, SP_ENOMEM, "cannot allocate a decompressor");
    return SP_OK;
}

int sp_vmdk_sparse_open_fd(int fd, const char *path, struct sp_disk **out, struct sp_error *err)
{
    struct vmdk_disk *v = sp_zalloc(sizeof *v, err);
    if (!v) {
        close(fd);
        return SP_ENOMEM;
    }
    v->fd = fd;
    v->gt_index = UINT64_MAX;
    v->grain_index = UINT64_MAX;
    v->disk.ops = &VMDK_OPS;
    int rc = SP_OK;
    v->path = strdup(path);
    if (!v->path)
        rc = sp_error_set(err, SP_ENOMEM, "out of memory");
    else if ((rc = sparse_load(v, err)) != SP_OK && rc != SP_ENOMEM)
        sp_error_prefix(err, "%s", path);
    if (rc != SP_OK) {
        vmdk_close(&v->disk);
        return rc;
    }
    v->disk.path = v->path;
    *out = &v->disk;
    return SP_OK;
}

int sp_vmdk_open(const char *path, struct sp_disk **out, struct sp_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        int rc = sp_error_errno(err, e, "%s", path);
        if (e == ENOENT)
            rc = err->code = SP_ENOTFOUND;
        return rc;
    }
    return sp_vmdk_sparse_open_fd(fd, path, out, err);
}

const struct vmdk_header *sp_vmdk_sparse_header(struct sp_disk *d)
{
    return d && d->ops == &VMDK_OPS ? &((struct vmdk_disk *)d)->hd : NULL;
}

int sp_vmdk_sparse_descriptor(struct sp_disk *d, char **text, struct sp_error *err)
{
    struct vmdk_disk *v = (struct vmdk_disk *)d;
    *text = NULL;
    if (v->hd.desc_off == 0 || v->hd.desc_size == 0)
        return SP_OK;
    if (v->hd.desc_size > VMDK_DESC_MAX / VMDK_SECTOR)
        return sp_error_set(err, SP_ELIMIT, "%s: embedded descriptor of %" PRIu64 " sectors, more than %u KiB",
                            v->path, v->hd.desc_size, VMDK_DESC_MAX >> 10);
    size_t len = (size_t)v->hd.desc_size * VMDK_SECTOR;
    if (v->hd.desc_off > v->file_size / VMDK_SECTOR || len > v->file_size - v->hd.desc_off * VMDK_SECTOR)
        return sp_error_set(err, SP_EFORMAT, "%s: embedded descriptor past the end of the file", v->path);
    char *t = sp_alloc(len + 1, err);
    if (!t)
        return SP_ENOMEM;
    int rc = sp_pread_full(v->fd, t, len, v->hd.desc_off * VMDK_SECTOR, "descriptor", err);
    if (rc != SP_OK) {
        free(t);
        return sp_error_prefix(err, "%s", v->path);
    }
    t[len] = '\0';
    *text = t;
    return SP_OK;
}
