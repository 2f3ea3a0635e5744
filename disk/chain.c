#include "disk/chain.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

#define LAYER_NONE 0xFFu

struct sp_chain {
    struct sp_disk disk;
    struct sp_vhd *layer[SP_CHAIN_MAX_DEPTH];
    int depth;
    uint32_t block_size;
    uint32_t spb;              /* sectors per block */
    uint32_t nblocks;
    uint8_t *top;              /* per block: the topmost layer that has it, or LAYER_NONE */
    uint8_t *bm;               /* scratch bitmap */
    /* Read-ahead. Units are resolved (which layer owns each sector) up to
     * `window` units ahead of the reader, into a ring (slot = unit % window),
     * and their data reads are announced with POSIX_FADV_WILLNEED; the
     * bitmaps of the window after that are announced too. A cold chain is
     * then read with many requests in flight, not one at a time. */
    uint32_t window;
    uint8_t *ring;             /* window x spb owners: a layer, or LAYER_NONE (zeros) */
    uint32_t *ring_unit;       /* the unit in each slot, or UINT32_MAX */
    uint32_t next_resolve;     /* first unit not resolved yet */
    uint32_t next_bitmap;      /* first unit whose bitmaps are not announced yet */
};

static const struct sp_disk_ops CHAIN_OPS;
static const struct sp_disk_ops CHAIN_RO_OPS;

struct sp_disk *sp_chain_disk(struct sp_chain *c) { return &c->disk; }

struct sp_chain *sp_chain_from_disk(struct sp_disk *d)
{
    return d && (d->ops == &CHAIN_OPS || d->ops == &CHAIN_RO_OPS) ? (struct sp_chain *)d : NULL;
}

int sp_chain_depth(const struct sp_chain *c) { return c->depth; }
struct sp_vhd *sp_chain_layer(struct sp_chain *c, int i) { return c->layer[i]; }
uint32_t sp_chain_block_size(const struct sp_chain *c) { return c->block_size; }

uint64_t sp_chain_allocated_bytes(const struct sp_chain *c)
{
    uint64_t n = 0;
    for (uint32_t b = 0; b < c->nblocks; b++)
        if (c->top[b] != LAYER_NONE)
            n += sp_min_u64(c->block_size, c->disk.size - (uint64_t)b * c->block_size);
    return n;
}

static void chain_free(struct sp_chain *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->depth; i++)
        sp_vhd_close(c->layer[i]);
    free(c->top);
    free(c->ring);
    free(c->ring_unit);
    free(c->bm);
    free(c);
}

static void chain_close(struct sp_disk *d) { chain_free((struct sp_chain *)d); }

static bool same_file(struct sp_vhd *a, struct sp_vhd *b)
{
    struct stat x, y;
    return fstat(a->fd, &x) == 0 && fstat(b->fd, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

/* A loop: the parent is a file the chain already holds. */
static int check_no_loop(struct sp_chain *c, struct sp_vhd *child, struct sp_vhd *parent, struct sp_error *err)
{
    for (int i = 0; i < c->depth; i++)
        if (same_file(c->layer[i], parent))
            return sp_error_set(err, SP_EFORMAT, "%s: the chain loops: its parent %s is already in the chain",
                                child->path, parent->path);
    return SP_OK;
}

static int check_uuid(struct sp_vhd *child, struct sp_vhd *parent, struct sp_error *err)
{
    if (memcmp(child->header.parent_uuid, parent->footer.uuid, SP_UUID_LEN) == 0)
        return SP_OK;
    char want[SP_UUID_STR], got[SP_UUID_STR];
    sp_uuid_format(child->header.parent_uuid, want);
    sp_uuid_format(parent->footer.uuid, got);
    return sp_error_set(err, SP_EFORMAT, "%s: parent %s has UUID %s, the child expects %s", child->path,
                        parent->path, got, want);
}

/* Tries one candidate path: it must open as a VHD, not be in the chain
 * already, and carry the UUID the child names. */
static int try_parent(struct sp_chain *c, struct sp_vhd *child, const char *path, struct sp_vhd **out,
                      struct sp_error *err)
{
    struct sp_vhd *p = NULL;
    int rc = sp_vhd_open(path, false, &p, err);
    if (rc == SP_OK)
        rc = check_no_loop(c, child, p, err);
    if (rc == SP_OK)
        rc = check_uuid(child, p, err);
    if (rc != SP_OK) {
        sp_vhd_close(p);
        return rc;
    }
    *out = p;
    return SP_OK;
}

/* Finds the parent of child among its candidate paths (locators first, then
 * the header's name): the first that exists and fits. When none fits, the
 * error is the first candidate's. */
static int open_parent(struct sp_chain *c, struct sp_vhd *child, struct sp_vhd **out, struct sp_error *err)
{
    char (*cands)[4096] = sp_alloc(sizeof(char[SP_VHD_MAX_CANDIDATES][4096]), err);
    if (!cands)
        return SP_ENOMEM;
    int n = 0;
    int rc = sp_vhd_parent_candidates(child, cands, SP_VHD_MAX_CANDIDATES, &n, err);
    int first_rc = SP_OK;
    struct sp_error e;
    for (int i = 0; rc == SP_OK && i < n; i++) {
        if (access(cands[i], F_OK) != 0)
            continue;
        int trc = try_parent(c, child, cands[i], out, first_rc == SP_OK ? err : &e);
        if (trc == SP_OK) {
            free(cands);
            return SP_OK;
        }
        if (first_rc == SP_OK)
            first_rc = trc;
    }
    if (rc == SP_OK && first_rc != SP_OK)
        rc = first_rc;
    if (rc == SP_OK) {
        char tried[1024] = "";
        for (int i = 0; i < n; i++) {
            size_t l = strlen(tried);
            snprintf(tried + l, sizeof tried - l, "%s%s", i ? ", " : "", cands[i]);
        }
        rc = sp_error_set(err, SP_ENOTFOUND, "%s: parent not found (looked for %s)", child->path,
                          n ? tried : "nothing: no locator and no parent name");
    }
    free(cands);
    return rc;
}

static int open_layers(struct sp_chain *c, const char *path, bool writable, struct sp_error *err)
{
    int rc = sp_vhd_open(path, writable, &c->layer[0], err);
    if (rc != SP_OK)
        return rc;
    c->depth = 1;
    while (c->layer[c->depth - 1]->footer.disk_type == SP_VHD_DIFF) {
        struct sp_vhd *child = c->layer[c->depth - 1], *parent = NULL;
        if (c->depth == SP_CHAIN_MAX_DEPTH)
            return sp_error_set(err, SP_ELIMIT, "%s: chain deeper than %d files", path, SP_CHAIN_MAX_DEPTH);
        rc = open_parent(c, child, &parent, err);
        if (rc != SP_OK)
            return rc;
        c->layer[c->depth++] = parent;
    }
    return SP_OK;
}

/* The chain's map unit: the smallest block size of its layers (all powers
 * of two, so every layer's block is a whole number of units). Virtual PC,
 * for one, gave differencing disks smaller blocks than their parents. */
static int pick_unit(struct sp_chain *c, struct sp_error *err)
{
    c->block_size = 0;
    for (int i = 0; i < c->depth; i++)
        if (c->layer[i]->footer.disk_type != SP_VHD_FIXED
            && (!c->block_size || c->layer[i]->block_size < c->block_size))
            c->block_size = c->layer[i]->block_size;
    if (!c->block_size)
        c->block_size = SP_VHD_DEFAULT_BLOCK_SIZE;
    for (int i = 0; i < c->depth; i++) {
        if (c->layer[i]->footer.disk_type != SP_VHD_FIXED)
            continue;
        int rc = sp_vhd_set_fixed_block_size(c->layer[i], c->block_size, err);
        if (rc != SP_OK)
            return rc;
    }
    return SP_OK;
}

/* Unit u of the chain inside layer v: its block and the byte offset in it. */
static uint32_t unit_block(const struct sp_chain *c, const struct sp_vhd *v, uint32_t u, uint32_t *in)
{
    uint64_t off = (uint64_t)u * c->block_size;
    *in = (uint32_t)(off % v->block_size);
    return (uint32_t)(off / v->block_size);
}

static bool unit_allocated(const struct sp_chain *c, const struct sp_vhd *v, uint32_t u)
{
    uint32_t in;
    return sp_vhd_block_allocated(v, unit_block(c, v, u, &in));
}

#define CHAIN_WINDOW_MAX 128u

static void forget_resolved(struct sp_chain *c)
{
    for (uint32_t i = 0; i < c->window; i++)
        c->ring_unit[i] = UINT32_MAX;
    c->next_resolve = c->next_bitmap = 0;
}

/* A fixed disk has data everywhere, but its file may be sparse: units that
 * lie in holes of the file (and in no layer above) stay ZERO, so a flatten
 * does not read them. Without SEEK_DATA every unit counts as data. */
static void mark_fixed_data(struct sp_chain *c, int l)
{
    struct sp_vhd *v = c->layer[l];
    uint64_t end = sp_min_u64(v->footer.current_size, c->disk.size), pos = 0;
    while (pos < end) {
        off_t data = lseek(v->fd, (off_t)pos, SEEK_DATA);
        off_t hole = data < 0 ? -1 : lseek(v->fd, data, SEEK_HOLE);
        if (data < 0 && errno == ENXIO)
            return;
        if (data < 0 || hole < 0) { /* no SEEK_DATA here: all of it is data */
            data = (off_t)pos;
            hole = (off_t)end;
        }
        if ((uint64_t)data >= end)
            return;
        uint64_t stop = sp_min_u64((uint64_t)hole, end);
        for (uint64_t u = (uint64_t)data / c->block_size; u * c->block_size < stop; u++)
            if (c->top[u] == LAYER_NONE || c->top[u] > l)
                c->top[u] = (uint8_t)l;
        pos = stop;
    }
}

/* The one pass over all block maps: afterwards a unit costs one lookup. */
static int merge_maps(struct sp_chain *c, struct sp_error *err)
{
    uint32_t max_bitmap = 0;
    for (int l = 0; l < c->depth; l++)
        if (c->layer[l]->bitmap_size > max_bitmap)
            max_bitmap = c->layer[l]->bitmap_size;
    c->spb = c->block_size / SP_VHD_SECTOR;
    uint64_t units = sp_div_round_up(c->disk.size, c->block_size);
    if (units > SP_VHD_MAX_BLOCKS)
        return sp_error_set(err, SP_ELIMIT, "%s: %llu blocks of %u bytes are more than the %u supported",
                            c->disk.path, (unsigned long long)units, c->block_size, SP_VHD_MAX_BLOCKS);
    c->nblocks = (uint32_t)units;
    c->top = sp_alloc(c->nblocks ? c->nblocks : 1, err);
    /* one owner byte per sector: at most 128 units and 16 MiB (2 MiB blocks: 512 KiB) */
    c->window = (uint32_t)sp_min_u64(CHAIN_WINDOW_MAX, (16u << 20) / c->spb);
    if (c->window < 2)
        c->window = 2;
    c->ring = sp_alloc((size_t)c->window * c->spb, err);
    c->ring_unit = sp_alloc(sizeof *c->ring_unit * c->window, err);
    c->bm = sp_alloc(max_bitmap, err);
    if (!c->top || !c->ring || !c->ring_unit || !c->bm)
        return SP_ENOMEM;
    forget_resolved(c);
    memset(c->top, LAYER_NONE, c->nblocks);
    for (uint32_t b = 0; b < c->nblocks; b++)
        for (int l = 0; l < c->depth; l++)
            if (c->top[b] == LAYER_NONE && c->layer[l]->footer.disk_type != SP_VHD_FIXED
                && unit_allocated(c, c->layer[l], b))
                c->top[b] = (uint8_t)l;
    for (int l = 0; l < c->depth; l++)
        if (c->layer[l]->footer.disk_type == SP_VHD_FIXED)
            mark_fixed_data(c, l);
    return SP_OK;
}

int sp_chain_open(const char *path, bool writable, struct sp_chain **out, struct sp_error *err)
{
    *out = NULL;
    struct sp_chain *c = sp_zalloc(sizeof *c, err);
    if (!c)
        return SP_ENOMEM;
    int rc = open_layers(c, path, writable, err);
    if (rc == SP_OK)
        rc = pick_unit(c, err);
    if (rc == SP_OK) {
        c->disk.ops = writable ? &CHAIN_OPS : &CHAIN_RO_OPS;
        c->disk.size = c->layer[0]->footer.current_size;
        c->disk.path = c->layer[0]->path;
        rc = merge_maps(c, err);
    }
    if (rc != SP_OK) {
        chain_free(c);
        return rc;
    }
    *out = c;
    return SP_OK;
}

/* Which layer holds each sector of unit b: walk down from the top layer,
 * each taking the sectors its bitmap marks that no layer above took. */
static int resolve_into(struct sp_chain *c, uint32_t b, uint8_t *owner, struct sp_error *err)
{
    memset(owner, LAYER_NONE, c->spb);
    uint32_t left = c->spb;
    for (int l = c->top[b]; l < c->depth && left > 0; l++) {
        struct sp_vhd *v = c->layer[l];
        uint32_t in, blk = unit_block(c, v, b, &in);
        if (!sp_vhd_block_allocated(v, blk))
            continue;
        int rc = sp_vhd_read_bitmap(v, blk, c->bm, err);
        if (rc != SP_OK)
            return rc;
        uint32_t first = in / SP_VHD_SECTOR;
        for (uint32_t s = 0; s < c->spb; s++) {
            uint32_t bit = first + s;
            if (owner[s] == LAYER_NONE && (c->bm[bit / 8] & (0x80u >> (bit % 8)))) {
                owner[s] = (uint8_t)l;
                left--;
            }
        }
    }
    return SP_OK;
}

/* Calls fn for each run of sectors [s, e) of one owner (a layer or LAYER_NONE)
 * within bytes [from, to) of the unit. */
static int for_each_run(struct sp_chain *c, uint32_t b, const uint8_t *owner, uint32_t from, uint32_t to,
                        int (*fn)(struct sp_chain *c, uint32_t b, uint8_t who, uint32_t pos, uint32_t end, void *ctx),
                        void *ctx)
{
    uint32_t pos = from;
    while (pos < to) {
        uint32_t s = pos / SP_VHD_SECTOR;
        uint8_t who = owner[s];
        uint32_t e = s + 1;
        while (e < c->spb && owner[e] == who && e * SP_VHD_SECTOR < to)
            e++;
        uint32_t end = e * SP_VHD_SECTOR < to ? e * SP_VHD_SECTOR : to;
        int rc = fn(c, b, who, pos, end, ctx);
        if (rc != SP_OK)
            return rc;
        pos = end;
    }
    return SP_OK;
}

/* Where bytes [pos, ...) of unit b lie in layer v's file. */
static uint64_t layer_offset(struct sp_chain *c, struct sp_vhd *v, uint32_t b, uint32_t pos)
{
    uint32_t in, blk = unit_block(c, v, b, &in);
    return sp_vhd_block_data_offset(v, blk) + in + pos;
}

static int advise_run(struct sp_chain *c, uint32_t b, uint8_t who, uint32_t pos, uint32_t end, void *ctx)
{
    (void)ctx;
    if (who != LAYER_NONE) {
        struct sp_vhd *v = c->layer[who];
        (void)posix_fadvise(v->fd, (off_t)layer_offset(c, v, b, pos), end - pos, POSIX_FADV_WILLNEED);
    }
    return SP_OK;
}

static void advise_bitmaps(struct sp_chain *c, uint32_t b)
{
    for (int l = c->top[b]; l < c->depth; l++) {
        struct sp_vhd *v = c->layer[l];
        uint32_t in, blk = unit_block(c, v, b, &in);
        if (v->footer.disk_type != SP_VHD_FIXED && sp_vhd_block_allocated(v, blk))
            (void)posix_fadvise(v->fd, (off_t)v->bat[blk] * SP_VHD_SECTOR, v->bitmap_size, POSIX_FADV_WILLNEED);
    }
}

/* Makes unit b resolved, and keeps the read-ahead window in front of it. */
static int resolve_ahead(struct sp_chain *c, uint32_t b, uint8_t **owner, struct sp_error *err)
{
    uint32_t slot = b % c->window;
    if (c->ring_unit[slot] != b || b >= c->next_resolve) {
        c->ring_unit[slot] = UINT32_MAX;
        c->next_resolve = b;
        if (c->next_bitmap < b)
            c->next_bitmap = b;
    }
    uint32_t bitmap_end = (uint32_t)sp_min_u64(c->nblocks, (uint64_t)b + 2 * c->window);
    for (; c->next_bitmap < bitmap_end; c->next_bitmap++)
        if (c->top[c->next_bitmap] != LAYER_NONE)
            advise_bitmaps(c, c->next_bitmap);
    uint32_t resolve_end = (uint32_t)sp_min_u64(c->nblocks, (uint64_t)b + c->window);
    for (; c->next_resolve < resolve_end; c->next_resolve++) {
        uint32_t u = c->next_resolve;
        if (c->top[u] == LAYER_NONE)
            continue;
        uint8_t *o = c->ring + (size_t)(u % c->window) * c->spb;
        c->ring_unit[u % c->window] = UINT32_MAX;
        int rc = resolve_into(c, u, o, err);
        if (rc != SP_OK)
            return rc;
        c->ring_unit[u % c->window] = u;
        for_each_run(c, u, o, 0, c->block_size, advise_run, NULL);
    }
    *owner = c->ring + (size_t)slot * c->spb;
    return SP_OK;
}

struct read_ctx {
    uint8_t *buf;             /* receives bytes [from, ...) of the unit */
    uint32_t from;
    struct sp_error *err;
};

static int read_run(struct sp_chain *c, uint32_t b, uint8_t who, uint32_t pos, uint32_t end, void *ctx)
{
    struct read_ctx *r = ctx;
    if (who == LAYER_NONE) {
        memset(r->buf + (pos - r->from), 0, end - pos);
        return SP_OK;
    }
    struct sp_vhd *v = c->layer[who];
    int rc = sp_pread_full(v->fd, r->buf + (pos - r->from), end - pos, layer_offset(c, v, b, pos), "block data",
                           r->err);
    return rc == SP_OK ? SP_OK : sp_error_prefix(r->err, "%s: unit %u", v->path, b);
}

/* Bytes [from, to) of unit b into buf, run by run of sectors of one owner. */
static int read_in_block(struct sp_chain *c, uint32_t b, uint32_t from, uint32_t to, uint8_t *buf,
                         struct sp_error *err)
{
    uint8_t *owner;
    int rc = resolve_ahead(c, b, &owner, err);
    if (rc != SP_OK)
        return rc;
    struct read_ctx r = {buf, from, err};
    return for_each_run(c, b, owner, from, to, read_run, &r);
}

static int chain_read(struct sp_disk *d, uint64_t off, void *buf, size_t len, struct sp_error *err)
{
    struct sp_chain *c = (struct sp_chain *)d;
    uint8_t *p = buf;
    while (len > 0) {
        uint32_t b = (uint32_t)(off / c->block_size);
        uint32_t in = (uint32_t)(off % c->block_size);
        uint32_t n = (uint32_t)sp_min_u64(len, c->block_size - in);
        int rc = SP_OK;
        if (c->top[b] == LAYER_NONE)
            memset(p, 0, n);
        else
            rc = read_in_block(c, b, in, in + n, p, err);
        if (rc != SP_OK)
            return rc;
        off += n;
        p += n;
        len -= n;
    }
    return SP_OK;
}

static int chain_next_extent(struct sp_disk *d, uint64_t off, struct sp_extent *ext, struct sp_error *err)
{
    struct sp_chain *c = (struct sp_chain *)d;
    (void)err;
    uint32_t b = (uint32_t)(off / c->block_size);
    bool data = c->top[b] != LAYER_NONE;
    uint32_t e = b + 1;
    while (e < c->nblocks && (c->top[e] != LAYER_NONE) == data)
        e++;
    ext->start = off;
    ext->len = sp_min_u64((uint64_t)e * c->block_size, d->size) - off;
    ext->kind = data ? SP_EXTENT_DATA : SP_EXTENT_ZERO;
    return SP_OK;
}

/* Whole sectors go straight to the leaf; a sector written only in part is
 * first read through the chain, so its other bytes keep the parent's data. */
static int write_partial_sector(struct sp_chain *c, uint64_t sector, uint32_t in, const uint8_t *src, uint32_t n,
                                struct sp_error *err)
{
    uint8_t tmp[SP_VHD_SECTOR];
    int rc = chain_read(&c->disk, sector * SP_VHD_SECTOR, tmp, sizeof tmp, err);
    if (rc != SP_OK)
        return rc;
    memcpy(tmp + in, src, n);
    return sp_vhd_write_sectors(c->layer[0], sector, 1, tmp, err);
}

static void mark_written(struct sp_chain *c, uint64_t off, uint64_t len)
{
    for (uint64_t b = off / c->block_size; b * c->block_size < off + len; b++)
        c->top[b] = 0;
    forget_resolved(c);
}

static int chain_write(struct sp_disk *d, uint64_t off, const void *buf, size_t len, struct sp_error *err)
{
    struct sp_chain *c = (struct sp_chain *)d;
    const uint8_t *p = buf;
    int rc = SP_OK;
    if (off % SP_VHD_SECTOR) {
        uint32_t in = (uint32_t)(off % SP_VHD_SECTOR);
        uint32_t n = (uint32_t)sp_min_u64(len, SP_VHD_SECTOR - in);
        rc = write_partial_sector(c, off / SP_VHD_SECTOR, in, p, n, err);
        mark_written(c, off, n);
        off += n;
        p += n;
        len -= n;
    }
    uint64_t whole = len / SP_VHD_SECTOR;
    if (rc == SP_OK && whole) {
        rc = sp_vhd_write_sectors(c->layer[0], off / SP_VHD_SECTOR, whole, p, err);
        mark_written(c, off, whole * SP_VHD_SECTOR);
        off += whole * SP_VHD_SECTOR;
        p += whole * SP_VHD_SECTOR;
        len -= whole * SP_VHD_SECTOR;
    }
    if (rc == SP_OK && len) {
        rc = write_partial_sector(c, off / SP_VHD_SECTOR, 0, p, (uint32_t)len, err);
        mark_written(c, off, len);
    }
    return rc;
}

static int chain_flush(struct sp_disk *d, struct sp_error *err)
{
    struct sp_chain *c = (struct sp_chain *)d;
    return sp_vhd_flush(c->layer[0], err);
}

static const struct sp_disk_ops CHAIN_OPS = {
    .next_extent = chain_next_extent,
    .read = chain_read,
    .write = chain_write,
    .flush = chain_flush,
    .close = chain_close,
};

static const struct sp_disk_ops CHAIN_RO_OPS = {
    .next_extent = chain_next_extent,
    .read = chain_read,
    .close = chain_close,
};
