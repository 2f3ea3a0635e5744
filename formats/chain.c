#include "formats/chain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/util.h"

#define LAYER_NONE 0xFFu

struct sp_chain {
    struct sp_disk disk;
    struct sp_vhd *layer[SP_CHAIN_MAX_DEPTH];
    int depth;
    uint32_t block_size;
    uint32_t spb;              /* sectors per block */
    uint32_t nblocks;
    uint8_t *top;              /* per block: the topmost layer that has it, or LAYER_NONE */
    /* The last block resolved sector by sector (reads are mostly sequential). */
    uint32_t res_block;
    uint8_t *owner;            /* per sector of res_block: its layer, or LAYER_NONE (zeros) */
    uint8_t *bm;               /* scratch bitmap */
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
    free(c->owner);
    free(c->bm);
    free(c);
}

static void chain_close(struct sp_disk *d) { chain_free((struct sp_chain *)d); }

/* Finds the parent of child among its candidate paths: the first that exists. */
static int open_parent(struct sp_chain *c, struct sp_vhd *child, struct sp_vhd **out, struct sp_error *err)
{
    char (*cands)[4096] = sp_alloc(sizeof(char[SP_VHD_MAX_CANDIDATES][4096]), err);
    if (!cands)
        return SP_ENOMEM;
    int n = 0;
    int rc = sp_vhd_parent_candidates(child, cands, SP_VHD_MAX_CANDIDATES, &n, err);
    int found = -1;
    for (int i = 0; rc == SP_OK && i < n && found < 0; i++)
        if (access(cands[i], F_OK) == 0)
            found = i;
    if (rc == SP_OK && found < 0) {
        char tried[1024] = "";
        for (int i = 0; i < n; i++) {
            size_t l = strlen(tried);
            snprintf(tried + l, sizeof tried - l, "%s%s", i ? ", " : "", cands[i]);
        }
        rc = sp_error_set(err, SP_ENOTFOUND, "%s: parent not found (looked for %s)", child->path,
                          n ? tried : "nothing: no locator and no parent name");
    }
    if (rc == SP_OK)
        rc = sp_vhd_open(cands[found], false, out, err);
    free(cands);
    (void)c;
    return rc;
}

static int check_link(struct sp_chain *c, struct sp_vhd *child, struct sp_vhd *parent, struct sp_error *err)
{
    if (memcmp(child->header.parent_uuid, parent->footer.uuid, SP_UUID_LEN) != 0) {
        char want[SP_UUID_STR], got[SP_UUID_STR];
        sp_uuid_format(child->header.parent_uuid, want);
        sp_uuid_format(parent->footer.uuid, got);
        return sp_error_set(err, SP_EFORMAT, "%s: parent %s has UUID %s, the child expects %s", child->path,
                            parent->path, got, want);
    }
    struct stat ps;
    if (fstat(parent->fd, &ps) != 0)
        return sp_error_set(err, SP_EIO, "%s: cannot stat", parent->path);
    for (int i = 0; i < c->depth; i++) {
        struct stat s;
        if (fstat(c->layer[i]->fd, &s) == 0 && s.st_dev == ps.st_dev && s.st_ino == ps.st_ino)
            return sp_error_set(err, SP_EFORMAT, "%s: the chain loops: its parent %s is already in the chain",
                                child->path, parent->path);
    }
    if (parent->footer.disk_type != SP_VHD_FIXED && parent->block_size != c->block_size)
        return sp_error_set(err, SP_EUNSUPPORTED, "%s: block size %u differs from the child's %u", parent->path,
                            parent->block_size, c->block_size);
    return SP_OK;
}

static int open_layers(struct sp_chain *c, const char *path, bool writable, struct sp_error *err)
{
    int rc = sp_vhd_open(path, writable, &c->layer[0], err);
    if (rc != SP_OK)
        return rc;
    c->depth = 1;
    c->block_size = c->layer[0]->block_size;
    while (c->layer[c->depth - 1]->footer.disk_type == SP_VHD_DIFF) {
        struct sp_vhd *child = c->layer[c->depth - 1], *parent = NULL;
        if (c->depth == SP_CHAIN_MAX_DEPTH)
            return sp_error_set(err, SP_ELIMIT, "%s: chain deeper than %d files", path, SP_CHAIN_MAX_DEPTH);
        rc = open_parent(c, child, &parent, err);
        if (rc == SP_OK)
            rc = check_link(c, child, parent, err);
        if (rc == SP_OK && parent->footer.disk_type == SP_VHD_FIXED)
            rc = sp_vhd_set_fixed_block_size(parent, c->block_size, err);
        if (rc != SP_OK) {
            sp_vhd_close(parent);
            return rc;
        }
        c->layer[c->depth++] = parent;
    }
    return SP_OK;
}

/* The one pass over all block maps: afterwards a block costs one lookup. */
static int merge_maps(struct sp_chain *c, struct sp_error *err)
{
    c->spb = c->block_size / SP_VHD_SECTOR;
    c->nblocks = (uint32_t)sp_div_round_up(c->disk.size, c->block_size);
    c->top = sp_alloc(c->nblocks ? c->nblocks : 1, err);
    c->owner = sp_alloc(c->spb, err);
    c->bm = sp_alloc(c->layer[0]->bitmap_size, err);
    if (!c->top || !c->owner || !c->bm)
        return SP_ENOMEM;
    memset(c->top, LAYER_NONE, c->nblocks);
    for (uint32_t b = 0; b < c->nblocks; b++)
        for (int l = 0; l < c->depth; l++)
            if (sp_vhd_block_allocated(c->layer[l], b)) {
                c->top[b] = (uint8_t)l;
                break;
            }
    c->res_block = UINT32_MAX;
    return SP_OK;
}

int sp_chain_open(const char *path, bool writable, struct sp_chain **out, struct sp_error *err)
{
    *out = NULL;
    struct sp_chain *c = sp_zalloc(sizeof *c, err);
    if (!c)
        return SP_ENOMEM;
    int rc = open_layers(c, path, writable, err);
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

/* Which layer holds each sector of block b: walk down from the top layer,
 * each taking the sectors its bitmap marks that no layer above took. */
static int resolve_block(struct sp_chain *c, uint32_t b, struct sp_error *err)
{
    if (c->res_block == b)
        return SP_OK;
    c->res_block = UINT32_MAX;
    memset(c->owner, LAYER_NONE, c->spb);
    uint32_t left = c->spb;
    for (int l = c->top[b]; l < c->depth && left > 0; l++) {
        if (!sp_vhd_block_allocated(c->layer[l], b))
            continue;
        int rc = sp_vhd_read_bitmap(c->layer[l], b, c->bm, err);
        if (rc != SP_OK)
            return rc;
        for (uint32_t s = 0; s < c->spb; s++) {
            if (c->owner[s] == LAYER_NONE && (c->bm[s / 8] & (0x80u >> (s % 8)))) {
                c->owner[s] = (uint8_t)l;
                left--;
            }
        }
    }
    c->res_block = b;
    return SP_OK;
}

/* Bytes [from, to) of block b into buf, run by run of sectors of one owner. */
static int read_in_block(struct sp_chain *c, uint32_t b, uint32_t from, uint32_t to, uint8_t *buf,
                         struct sp_error *err)
{
    int rc = resolve_block(c, b, err);
    if (rc != SP_OK)
        return rc;
    uint32_t pos = from;
    while (pos < to) {
        uint32_t s = pos / SP_VHD_SECTOR;
        uint8_t who = c->owner[s];
        uint32_t e = s + 1;
        while (e < c->spb && c->owner[e] == who && e * SP_VHD_SECTOR < to)
            e++;
        uint32_t end = e * SP_VHD_SECTOR < to ? e * SP_VHD_SECTOR : to;
        if (who == LAYER_NONE) {
            memset(buf + (pos - from), 0, end - pos);
        } else {
            struct sp_vhd *v = c->layer[who];
            rc = sp_pread_full(v->fd, buf + (pos - from), end - pos, sp_vhd_block_data_offset(v, b) + pos,
                               "block data", err);
            if (rc != SP_OK)
                return sp_error_prefix(err, "%s: block %u", v->path, b);
        }
        pos = end;
    }
    return SP_OK;
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
    c->res_block = UINT32_MAX;
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
