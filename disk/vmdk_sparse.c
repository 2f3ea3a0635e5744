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


/* A stretch of the file's metadata (header, descriptor, grain directory,
 * grain tables), in sectors: no grain may lie in one, and no two overlap.
 * Without this a table entry pointing back into the metadata, or a
 * directory entry pointing at the directory itself (a loop), is read as
 * data: the disk would show its own tables. */
struct meta_range {
    uint64_t start, end;   /* [start, end) */
    int64_t table;         /* the grain table's index; -1: what names */
    const char *what;
};

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
    struct meta_range *meta; /* sorted by start */
    size_t nmeta;
};

static const char *meta_name(const struct meta_range *m, char *buf, size_t len)
{
    if (m->table < 0)
        return m->what;
    snprintf(buf, len, "grain table %" PRId64, m->table);
    return buf;
}

/* The metadata range overlapping [start, end), or NULL. The ranges do not
 * overlap each other (load_directory), so their ends ascend too. */
static const struct meta_range *meta_hit(const struct vmdk_disk *v, uint64_t start, uint64_t end)
{
    size_t lo = 0, hi = v->nmeta;
    while (lo < hi) { /* the first range ending after start */
        size_t mid = lo + (hi - lo) / 2;
        if (v->meta[mid].end <= start)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < v->nmeta && v->meta[lo].start < end ? &v->meta[lo] : NULL;
}

/* Sectors a grain at sector e occupies at least: a whole grain, or for a
 * compressed one its marker sector. */
static uint64_t grain_span(const struct vmdk_disk *v)
{
    return (v->hd.flags & VMDK_FLAG_COMPRESSED) ? 1 : v->hd.grain;
}

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
        v->gt_index = UINT64_MAX; /* v->gt changes below: no table cached until it is whole and checked */
        uint8_t *raw = (uint8_t *)v->gt; /* decoded in place */
        int rc = sp_pread_full(v->fd, raw, len, off, "grain table", err);
        if (rc != SP_OK) {
            v->gt_index = UINT64_MAX;
            return sp_error_prefix(err, "%s", v->path);
        }
        for (size_t i = 0; i < v->hd.gtes; i++)
            v->gt[i] = le32(raw + 4 * i);
        for (size_t i = 0; i < v->hd.gtes; i++) {
            uint32_t e = v->gt[i];
            if (e == 0 || (e == 1 && (v->hd.flags & VMDK_FLAG_ZERO_GTE)))
                continue;
            const struct meta_range *m = meta_hit(v, e, e + grain_span(v));
            char name[48];
            if (m)
                return sp_error_set(err, SP_EFORMAT, "%s: grain table %" PRIu64 " entry %zu points at sector %" PRIu32
                                    ", inside the %s", v->path, t, i, e, meta_name(m, name, sizeof name));
        }
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
    free(v->meta);
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

static int meta_cmp(const void *a, const void *b)
{
    const struct meta_range *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* The metadata ranges: header, descriptor, directory (and the redundant
 * one), every grain table the directory names; two that overlap (a table
 * in the directory's place, two entries naming one table) are refused. */
static int load_meta(struct vmdk_disk *v, uint64_t gd, struct sp_error *err)
{
    uint64_t gd_sectors = sp_div_round_up(v->ngt * 4, VMDK_SECTOR);
    uint64_t gt_sectors = sp_div_round_up((uint64_t)v->hd.gtes * 4, VMDK_SECTOR);
    v->meta = sp_alloc(sizeof *v->meta * (size_t)(v->ngt + 4), err);
    if (!v->meta)
        return SP_ENOMEM;
    size_t n = 0;
    v->meta[n++] = (struct meta_range){0, 1, -1, "header"};
    if (v->hd.desc_off && v->hd.desc_size)
        v->meta[n++] = (struct meta_range){v->hd.desc_off, v->hd.desc_off + v->hd.desc_size, -1, "descriptor"};
    v->meta[n++] = (struct meta_range){gd, gd + gd_sectors, -1, "grain directory"};
    if ((v->hd.flags & VMDK_FLAG_RGD) && v->hd.rgd && v->hd.rgd != gd)
        v->meta[n++] = (struct meta_range){v->hd.rgd, v->hd.rgd + gd_sectors, -1, "redundant grain directory"};
    for (uint64_t t = 0; t < v->ngt; t++)
        if (v->gd[t])
            v->meta[n++] = (struct meta_range){v->gd[t], v->gd[t] + gt_sectors, (int64_t)t, NULL};
    qsort(v->meta, n, sizeof *v->meta, meta_cmp);
    for (size_t i = 1; i < n; i++) {
        const struct meta_range *a = &v->meta[i - 1], *b = &v->meta[i];
        if (b->start < a->end) {
            char na[48], nb[48];
            const struct meta_range *t = b->table >= 0 ? b : a, *o = t == b ? a : b;
            return sp_error_set(err, SP_EFORMAT, "%s at sector %" PRIu64 " overlaps the %s at sector %" PRIu64,
                                meta_name(t, na, sizeof na), t->start, meta_name(o, nb, sizeof nb), o->start);
        }
    }
    v->nmeta = n;
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
    return load_meta(v, gd, err);
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

static int u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int sp_vmdk_sparse_check(struct sp_disk *d, void (*problem)(void *ctx, const char *msg), void *ctx,
                         struct sp_error *err)
{
    struct vmdk_disk *v = (struct vmdk_disk *)d;
    /* Every table read (grain_sector checks its entries against the
     * metadata), every grain's sector kept: two entries naming one grain
     * make two places of the disk one (readers agree on the bytes, a
     * writer into either would change both). The tables lie in the file
     * without overlapping, so the entries are at most file size / 4. */
    size_t cap = 0, n = 0;
    uint32_t *all = NULL;
    int rc = SP_OK;
    for (uint64_t t = 0; rc == SP_OK && t < v->ngt; t++) {
        if (!v->gd[t])
            continue;
        uint64_t s;
        rc = grain_sector(v, t * v->hd.gtes, &s, err);
        for (uint32_t i = 0; rc == SP_OK && i < v->hd.gtes; i++) {
            uint32_t e = v->gt[i];
            if (e == 0 || (e == 1 && (v->hd.flags & VMDK_FLAG_ZERO_GTE)))
                continue;
            if (n == cap) {
                size_t nc = cap ? 2 * cap : 4096;
                uint32_t *p = realloc(all, nc * sizeof *p);
                if (!p) {
                    rc = sp_error_set(err, SP_ENOMEM, "out of memory");
                    break;
                }
                all = p;
                cap = nc;
            }
            all[n++] = e;
        }
    }
    if (rc == SP_OK && n > 1) {
        qsort(all, n, sizeof *all, u32_cmp);
        uint64_t shared = 0, first = 0;
        for (size_t i = 1; i < n; i++)
            if ((uint64_t)all[i] < (uint64_t)all[i - 1] + grain_span(v) && shared++ == 0)
                first = all[i];
        if (shared) {
            char msg[SP_ERROR_MAX];
            snprintf(msg, sizeof msg, "%s: %" PRIu64 " grain table entries point at a grain another entry uses"
                     " (first at sector %" PRIu64 ")", v->path, shared, first);
            problem(ctx, msg);
        }
    }
    free(all);
    return rc;
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
