#include "disk/vhd.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cancel.h"
#include "base/util.h"

/* Offsets of what we write (blktap and qemu use the same): footer copy at 0,
 * dynamic header at 512, BAT at 1536. */
#define VHD_HEADER_OFFSET 512u
#define VHD_BAT_OFFSET 1536u
/* tapdisk places each block's data on a page boundary (reference/vhd.md 1.4). */
#define VHD_DATA_ALIGN 4096u
/* u32 sector offsets in the BAT address at most this many bytes. */
#define VHD_MAX_FILE_OFFSET ((uint64_t)UINT32_MAX * SP_VHD_SECTOR)

struct bat_span {
    uint64_t start;
    uint64_t end;
    uint32_t blk;
};

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

static uint32_t bitmap_bytes(uint32_t block_size)
{
    uint32_t bits = block_size / SP_VHD_SECTOR;
    return (uint32_t)align_up(sp_div_round_up(bits, 8), SP_VHD_SECTOR);
}

bool sp_vhd_probe(int fd, uint64_t file_size)
{
    uint8_t c[8];
    if (file_size < SP_VHD_FOOTER_SIZE)
        return false;
    if (pread(fd, c, 8, (off_t)(file_size - SP_VHD_FOOTER_SIZE)) == 8 && memcmp(c, "conectix", 8) == 0)
        return true;
    if (pread(fd, c, 8, 0) == 8 && memcmp(c, "conectix", 8) == 0)
        return true;
    /* Both footers damaged but a dynamic header where VHDs keep it: still a
     * VHD (a damaged one), not a raw disk to be read as garbage. */
    return pread(fd, c, 8, SP_VHD_FOOTER_SIZE) == 8 && memcmp(c, "cxsparse", 8) == 0;
}

/* Footer at EOF; for dynamic disks the copy at offset 0 stands in when the
 * end of the file is damaged (a crash during block allocation, truncation). */
static int read_footer(struct sp_vhd *v, struct sp_error *err)
{
    uint8_t buf[SP_VHD_FOOTER_SIZE];
    struct sp_error end_err;
    sp_error_clear(&end_err);
    int rc = sp_pread_full(v->fd, buf, sizeof buf, v->file_size - SP_VHD_FOOTER_SIZE, "footer", &end_err);
    if (rc == SP_OK)
        rc = sp_vhd_footer_parse(buf, &v->footer, &end_err);
    if (rc == SP_OK)
        return SP_OK;
    struct sp_error copy_err;
    sp_error_clear(&copy_err);
    struct sp_vhd_footer copy;
    int crc = sp_pread_full(v->fd, buf, sizeof buf, 0, "footer copy", &copy_err);
    if (crc == SP_OK)
        crc = sp_vhd_footer_parse(buf, &copy, &copy_err);
    if (crc == SP_OK && (copy.disk_type == SP_VHD_DYNAMIC || copy.disk_type == SP_VHD_DIFF)) {
        v->footer = copy;
        v->footer_from_copy = true;
        snprintf(v->footer_problem, sizeof v->footer_problem, "footer at end of file: %s", end_err.msg);
        return SP_OK;
    }
    return sp_error_set(err, SP_EFORMAT, "%s", end_err.msg);
}

static int check_footer(struct sp_vhd *v, struct sp_error *err)
{
    const struct sp_vhd_footer *f = &v->footer;
    if (f->disk_type != SP_VHD_FIXED && f->disk_type != SP_VHD_DYNAMIC && f->disk_type != SP_VHD_DIFF)
        return sp_error_set(err, SP_EFORMAT, "footer: disk type %u is not fixed (2), dynamic (3) or differencing (4)",
                            f->disk_type);
    if (f->current_size % SP_VHD_SECTOR)
        return sp_error_set(err, SP_EFORMAT, "footer: virtual size %llu is not a multiple of 512",
                            (unsigned long long)f->current_size);
    if (f->current_size > SP_VHD_MAX_SIZE)
        return sp_error_set(err, SP_EFORMAT, "footer: virtual size %llu exceeds the VHD limit of 2040 GiB",
                            (unsigned long long)f->current_size);
    if (f->disk_type == SP_VHD_FIXED) {
        if (v->file_size - SP_VHD_FOOTER_SIZE < f->current_size)
            return sp_error_set(err, SP_EFORMAT, "truncated: fixed disk of %llu bytes in a file of %llu bytes",
                                (unsigned long long)f->current_size, (unsigned long long)v->file_size);
        return SP_OK;
    }
    if (f->data_offset < SP_VHD_FOOTER_SIZE || f->data_offset > v->file_size
        || v->file_size - f->data_offset < SP_VHD_HEADER_SIZE)
        return sp_error_set(err, SP_EFORMAT, "footer: dynamic header offset %llu is outside the file",
                            (unsigned long long)f->data_offset);
    return SP_OK;
}

static int check_header(struct sp_vhd *v, struct sp_error *err)
{
    const struct sp_vhd_header *h = &v->header;
    if (!sp_is_pow2(h->block_size) || h->block_size < SP_VHD_MIN_BLOCK_SIZE || h->block_size > SP_VHD_MAX_BLOCK_SIZE)
        return sp_error_set(err, SP_EFORMAT,
                            "dynamic header: block size %u is not a power of two between 512 B and 256 MiB",
                            h->block_size);
    uint64_t need = sp_div_round_up(v->footer.current_size, h->block_size);
    if (need > SP_VHD_MAX_BLOCKS)
        return sp_error_set(err, SP_EFORMAT, "dynamic header: %llu blocks of %u bytes are more than the %u supported",
                            (unsigned long long)need, h->block_size, SP_VHD_MAX_BLOCKS);
    if (h->max_table_entries < need)
        return sp_error_set(err, SP_EFORMAT,
                            "dynamic header: BAT has %u entries but the virtual size needs %llu",
                            h->max_table_entries, (unsigned long long)need);
    uint64_t bat_bytes = (uint64_t)h->max_table_entries * 4;
    if (h->table_offset < VHD_HEADER_OFFSET || h->table_offset > v->file_size
        || bat_bytes > v->file_size - h->table_offset)
        return sp_error_set(err, SP_EFORMAT, "dynamic header: BAT (%u entries at offset %llu) is past the end of the file",
                            h->max_table_entries, (unsigned long long)h->table_offset);
    if (h->table_offset < v->footer.data_offset + SP_VHD_HEADER_SIZE
        && h->table_offset + bat_bytes > v->footer.data_offset)
        return sp_error_set(err, SP_EFORMAT, "dynamic header: BAT overlaps the dynamic header");
    v->block_size = h->block_size;
    v->bitmap_size = bitmap_bytes(h->block_size);
    v->sectors_per_block = h->block_size / SP_VHD_SECTOR;
    v->nblocks = (uint32_t)need;
    return SP_OK;
}

/* A locator that points outside the file is not fatal: it is skipped when
 * looking for the parent (another one may still find it) and reported by
 * check. The sound ones take part in the overlap check with the blocks. */
static void check_locators(struct sp_vhd *v)
{
    for (int i = 0; i < SP_VHD_LOCATORS; i++) {
        const struct sp_vhd_locator *l = &v->header.loc[i];
        if (l->code == SP_VHD_PLAT_NONE)
            continue;
        uint64_t space = sp_vhd_locator_space(l);
        const char *why = NULL;
        if (l->data_length > SP_VHD_MAX_LOCATOR_BYTES)
            why = "length is absurd";
        else if (l->data_offset > v->file_size || space > v->file_size - l->data_offset
                 || l->data_length > v->file_size - l->data_offset)
            why = "data is past the end of the file";
        else if (l->data_offset < VHD_HEADER_OFFSET + SP_VHD_HEADER_SIZE && l->data_length)
            why = "data overlaps the headers";
        if (why) {
            v->bad_locators |= (uint8_t)(1u << i);
            if (!v->locator_problem[0])
                snprintf(v->locator_problem, sizeof v->locator_problem,
                         "parent locator %d (offset %llu, %u bytes): %s", i,
                         (unsigned long long)l->data_offset, l->data_length, why);
        }
    }
}

static int cmp_span(const void *a, const void *b)
{
    const struct bat_span *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

static int span_name(const struct bat_span *s, char *buf, size_t len)
{
    if (s->blk >= SP_VHD_BAT_UNUSED - SP_VHD_LOCATORS)
        return snprintf(buf, len, "parent locator %u", SP_VHD_BAT_UNUSED - s->blk);
    return snprintf(buf, len, "BAT entry %u", s->blk);
}

/* Every allocated block lies after the metadata, inside the file, and on its
 * own (so do the locators' data): sorted by offset, the check costs n log n,
 * not the n^2 of vhd-util. */
static int check_bat(struct sp_vhd *v, uint64_t meta_end, struct sp_error *err)
{
    uint64_t limit = v->file_size - (v->footer_from_copy ? 0 : SP_VHD_FOOTER_SIZE);
    uint64_t blk_bytes = (uint64_t)v->bitmap_size + v->block_size;
    uint32_t n = SP_VHD_LOCATORS;
    for (uint32_t b = 0; b < v->nblocks; b++)
        if (v->bat[b] != SP_VHD_BAT_UNUSED)
            n++;
    struct bat_span *spans = sp_alloc((size_t)n * sizeof *spans, err);
    if (!spans)
        return err->code;
    uint32_t k = 0;
    for (uint32_t b = 0; b < v->nblocks; b++) {
        if (v->bat[b] == SP_VHD_BAT_UNUSED)
            continue;
        uint64_t start = (uint64_t)v->bat[b] * SP_VHD_SECTOR;
        if (start > limit || blk_bytes > limit - start) {
            free(spans);
            return sp_error_set(err, SP_EFORMAT, "BAT entry %u (offset %llu) points past the end of the file", b,
                                (unsigned long long)start);
        }
        if (start < meta_end) {
            free(spans);
            return sp_error_set(err, SP_EFORMAT, "BAT entry %u (offset %llu) overlaps the VHD headers or BAT", b,
                                (unsigned long long)start);
        }
        spans[k++] = (struct bat_span){start, start + blk_bytes, b};
    }
    for (uint32_t i = 0; v->footer.disk_type == SP_VHD_DIFF && i < SP_VHD_LOCATORS; i++) {
        const struct sp_vhd_locator *l = &v->header.loc[i];
        if (l->code == SP_VHD_PLAT_NONE || l->data_length == 0 || (v->bad_locators & (1u << i)))
            continue;
        spans[k++] = (struct bat_span){l->data_offset, l->data_offset + l->data_length, SP_VHD_BAT_UNUSED - i};
    }
    if (k > 1)
        qsort(spans, k, sizeof *spans, cmp_span);
    uint64_t end = meta_end;
    for (uint32_t i = 0; i < k; i++) {
        if (i > 0 && spans[i].start < spans[i - 1].end) {
            char x[48], y[48];
            span_name(&spans[i - 1], x, sizeof x);
            span_name(&spans[i], y, sizeof y);
            int rc = sp_error_set(err, SP_EFORMAT, "%s and %s overlap (offsets %llu and %llu)", x, y,
                                  (unsigned long long)spans[i - 1].start, (unsigned long long)spans[i].start);
            free(spans);
            return rc;
        }
        if (spans[i].end > end)
            end = spans[i].end;
    }
    free(spans);
    v->data_end = align_up(end, SP_VHD_SECTOR);
    return SP_OK;
}

static int load_header(struct sp_vhd *v, struct sp_error *err)
{
    uint8_t hbuf[SP_VHD_HEADER_SIZE];
    int rc = sp_pread_full(v->fd, hbuf, sizeof hbuf, v->footer.data_offset, "dynamic header", err);
    if (rc == SP_OK)
        rc = sp_vhd_header_parse(hbuf, &v->header, err);
    if (rc == SP_OK)
        rc = check_header(v, err);
    return rc;
}

static int load_dynamic(struct sp_vhd *v, struct sp_error *err)
{
    int rc = load_header(v, err);
    if (rc != SP_OK)
        return rc;
    size_t bat_len = (size_t)v->nblocks * 4;
    uint8_t *raw = sp_alloc(bat_len, err);
    v->bat = sp_alloc(bat_len, err);
    if (!raw || !v->bat) {
        free(raw);
        return SP_ENOMEM;
    }
    rc = sp_pread_full(v->fd, raw, bat_len, v->header.table_offset, "BAT", err);
    for (uint32_t b = 0; rc == SP_OK && b < v->nblocks; b++)
        v->bat[b] = sp_be32(raw + (size_t)b * 4);
    free(raw);
    if (rc != SP_OK)
        return rc;
    uint64_t meta_end = align_up(v->header.table_offset + (uint64_t)v->header.max_table_entries * 4, SP_VHD_SECTOR);
    uint64_t hdr_end = v->footer.data_offset + SP_VHD_HEADER_SIZE;
    if (hdr_end > meta_end)
        meta_end = hdr_end;
    if (v->footer.disk_type == SP_VHD_DIFF)
        check_locators(v);
    return check_bat(v, align_up(meta_end, SP_VHD_SECTOR), err);
}

int sp_vhd_set_fixed_block_size(struct sp_vhd *v, uint32_t block_size, struct sp_error *err)
{
    if (v->footer.disk_type != SP_VHD_FIXED)
        return v->block_size == block_size ? SP_OK
             : sp_error_set(err, SP_EFORMAT, "%s: block size %u differs from the chain's %u", v->path,
                            v->block_size, block_size);
    uint64_t n = sp_div_round_up(v->footer.current_size, block_size);
    if (n > SP_VHD_MAX_BLOCKS)
        return sp_error_set(err, SP_ELIMIT, "%s: too many blocks of %u bytes", v->path, block_size);
    v->block_size = block_size;
    v->bitmap_size = bitmap_bytes(block_size);
    v->sectors_per_block = block_size / SP_VHD_SECTOR;
    v->nblocks = (uint32_t)n;
    return SP_OK;
}

static int vhd_open(const char *path, bool writable, bool header_only, struct sp_vhd **out, struct sp_error *err);

int sp_vhd_open(const char *path, bool writable, struct sp_vhd **out, struct sp_error *err)
{
    return vhd_open(path, writable, false, out, err);
}

int sp_vhd_open_header(const char *path, struct sp_vhd **out, struct sp_error *err)
{
    return vhd_open(path, false, true, out, err);
}

static int vhd_open(const char *path, bool writable, bool header_only, struct sp_vhd **out, struct sp_error *err)
{
    *out = NULL;
    struct sp_vhd *v = sp_zalloc(sizeof *v, err);
    if (!v)
        return SP_ENOMEM;
    v->fd = -1;
    v->bm_block = UINT32_MAX;
    v->writable = writable;
    v->path = strdup(path);
    int rc = SP_OK;
    if (!v->path) {
        rc = sp_error_set(err, SP_ENOMEM, "out of memory");
        goto fail;
    }
    v->fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    struct stat st;
    if (v->fd < 0 || fstat(v->fd, &st) != 0) {
        rc = sp_error_errno(err, errno, "%s", path);
        sp_vhd_close(v);
        return rc;
    }
    sp_writeback_init(&v->wb, v->fd);
    if (!S_ISREG(st.st_mode)) {
        rc = sp_error_set(err, SP_EFORMAT, "not a regular file");
        goto fail;
    }
    v->file_size = (uint64_t)st.st_size;
    if (v->file_size < SP_VHD_FOOTER_SIZE) {
        rc = sp_error_set(err, SP_EFORMAT, "too small to be a VHD (%llu bytes)", (unsigned long long)v->file_size);
        goto fail;
    }
    rc = read_footer(v, err);
    if (rc == SP_OK)
        rc = check_footer(v, err);
    if (rc != SP_OK)
        goto fail;
    if (v->footer.disk_type == SP_VHD_FIXED) {
        rc = sp_vhd_set_fixed_block_size(v, SP_VHD_DEFAULT_BLOCK_SIZE, err);
        v->data_end = v->footer.current_size;
    } else {
        rc = header_only ? load_header(v, err) : load_dynamic(v, err);
    }
    if (rc == SP_OK && writable && v->footer_from_copy)
        rc = sp_error_set(err, SP_EFORMAT, "%s; refusing to write (disk check tells more)", v->footer_problem);
    if (rc == SP_OK && writable && v->footer.hidden)
        rc = sp_error_set(err, SP_EINVAL, "is hidden (a read-only base of other disks); refusing to write");
    if (rc != SP_OK)
        goto fail;
    *out = v;
    return SP_OK;
fail:
    sp_error_prefix(err, "%s", path);
    sp_vhd_close(v);
    return rc;
}

static int write_footer(struct sp_vhd *v, struct sp_error *err)
{
    uint8_t buf[SP_VHD_FOOTER_SIZE];
    sp_vhd_footer_build(&v->footer, buf);
    int rc = sp_pwrite_full(v->fd, buf, sizeof buf, v->data_end, "footer", err);
    if (rc != SP_OK)
        return rc;
    if (ftruncate(v->fd, (off_t)(v->data_end + SP_VHD_FOOTER_SIZE)) != 0)
        return sp_error_errno(err, errno, "truncating after the footer");
    v->file_size = v->data_end + SP_VHD_FOOTER_SIZE;
    return SP_OK;
}

static int flush_bitmap(struct sp_vhd *v, struct sp_error *err)
{
    if (!v->bm_dirty)
        return SP_OK;
    uint64_t off = (uint64_t)v->bat[v->bm_block] * SP_VHD_SECTOR;
    int rc = sp_pwrite_full(v->fd, v->bm_cache, v->bitmap_size, off, "sector bitmap", err);
    if (rc == SP_OK)
        v->bm_dirty = false;
    return rc;
}

int sp_vhd_flush(struct sp_vhd *v, struct sp_error *err)
{
    if (!v->writable)
        return SP_OK;
    int rc = flush_bitmap(v, err);
    if (rc != SP_OK)
        return sp_error_prefix(err, "%s", v->path);
    return SP_OK;
}

int sp_vhd_sync(struct sp_vhd *v, struct sp_error *err)
{
    int rc = sp_vhd_flush(v, err);
    if (rc == SP_OK && fsync(v->fd) != 0)
        rc = sp_error_errno(err, errno, "%s: fsync", v->path);
    return rc;
}

int sp_vhd_set_uuid(struct sp_vhd *v, const uint8_t uuid[SP_UUID_LEN], struct sp_error *err)
{
    if (!v->writable)
        return sp_error_set(err, SP_EINVAL, "%s: opened read-only", v->path);
    memcpy(v->footer.uuid, uuid, SP_UUID_LEN);
    uint8_t buf[SP_VHD_FOOTER_SIZE];
    sp_vhd_footer_build(&v->footer, buf);
    int rc = SP_OK;
    if (v->footer.disk_type != SP_VHD_FIXED)
        rc = sp_pwrite_full(v->fd, buf, sizeof buf, 0, "footer copy", err);
    if (rc == SP_OK)
        rc = v->footer.disk_type == SP_VHD_FIXED
           ? sp_pwrite_full(v->fd, buf, sizeof buf, v->footer.current_size, "footer", err)
           : write_footer(v, err);
    if (rc == SP_OK)
        rc = sp_vhd_sync(v, err);
    return rc == SP_OK ? SP_OK : sp_error_prefix(err, "%s", v->path);
}

void sp_vhd_close(struct sp_vhd *v)
{
    if (!v)
        return;
    if (v->fd >= 0) {
        if (v->writable) {
            /* the last bitmap, even on the way out of an interrupt */
            struct sp_error ignored;
            sp_cancel_defer();
            sp_vhd_flush(v, &ignored);
            sp_cancel_resume();
        }
        close(v->fd);
    }
    free(v->bat);
    free(v->bm_cache);
    free(v->path);
    free(v);
}

bool sp_vhd_block_allocated(const struct sp_vhd *v, uint32_t blk)
{
    if (blk >= v->nblocks)
        return false;
    if (v->footer.disk_type == SP_VHD_FIXED)
        return true;
    return v->bat && v->bat[blk] != SP_VHD_BAT_UNUSED;
}

uint64_t sp_vhd_block_data_offset(const struct sp_vhd *v, uint32_t blk)
{
    if (v->footer.disk_type == SP_VHD_FIXED)
        return (uint64_t)blk * v->block_size;
    return (uint64_t)v->bat[blk] * SP_VHD_SECTOR + v->bitmap_size;
}

/* Bits for sectors at or past the virtual size are never "present". */
static void clip_bitmap(const struct sp_vhd *v, uint32_t blk, uint8_t *bm)
{
    uint64_t first = (uint64_t)blk * v->sectors_per_block;
    uint64_t total = v->footer.current_size / SP_VHD_SECTOR;
    if (first + v->sectors_per_block <= total)
        return;
    uint64_t keep = total > first ? total - first : 0;
    for (uint64_t s = keep; s < v->sectors_per_block; s++)
        bm[s / 8] &= (uint8_t)~(0x80u >> (s % 8));
}

int sp_vhd_read_bitmap(struct sp_vhd *v, uint32_t blk, uint8_t *bm, struct sp_error *err)
{
    size_t used = sp_div_round_up(v->sectors_per_block, 8);
    if (!sp_vhd_block_allocated(v, blk)) {
        memset(bm, 0, used);
        return SP_OK;
    }
    if (v->footer.disk_type == SP_VHD_FIXED) {
        memset(bm, 0xFF, used);
    } else if (v->bm_cache && v->bm_block == blk) {
        memcpy(bm, v->bm_cache, used);
    } else {
        int rc = sp_pread_full(v->fd, bm, used, (uint64_t)v->bat[blk] * SP_VHD_SECTOR, "sector bitmap", err);
        if (rc != SP_OK)
            return sp_error_prefix(err, "%s: block %u", v->path, blk);
    }
    clip_bitmap(v, blk, bm);
    return SP_OK;
}

int sp_vhd_read_stored(struct sp_vhd *v, uint32_t blk, uint32_t first, uint32_t nsect, void *buf,
                       struct sp_error *err)
{
    uint64_t off = sp_vhd_block_data_offset(v, blk) + (uint64_t)first * SP_VHD_SECTOR;
    int rc = sp_pread_full(v->fd, buf, (size_t)nsect * SP_VHD_SECTOR, off, "block data", err);
    if (rc != SP_OK)
        return sp_error_prefix(err, "%s: block %u", v->path, blk);
    return SP_OK;
}

uint64_t sp_vhd_allocated_bytes(const struct sp_vhd *v)
{
    if (v->footer.disk_type == SP_VHD_FIXED)
        return v->footer.current_size;
    uint64_t n = 0;
    for (uint32_t b = 0; b < v->nblocks; b++)
        if (v->bat[b] != SP_VHD_BAT_UNUSED)
            n += sp_min_u64(v->block_size, v->footer.current_size - (uint64_t)b * v->block_size);
    return n;
}

/* Writes back the cached bitmap and frees the cache for another block. */
static int take_bitmap_cache(struct sp_vhd *v, struct sp_error *err)
{
    int rc = flush_bitmap(v, err);
    if (rc != SP_OK)
        return rc;
    v->bm_block = UINT32_MAX;
    if (!v->bm_cache) {
        v->bm_cache = sp_alloc(v->bitmap_size, err);
        if (!v->bm_cache)
            return SP_ENOMEM;
    }
    return SP_OK;
}

/* A new block goes where the footer is; its data starts on a 4 KiB boundary.
 * Order: the footer at the new end first (the file grows; the data area is a
 * hole, so clear sectors read zero), then the zeroed bitmap, then the BAT
 * entry. A failure (ENOSPC) before the footer is written changes nothing; a
 * crash before the BAT entry leaks space but never points at garbage. */
static int allocate_block(struct sp_vhd *v, uint32_t blk, struct sp_error *err)
{
    uint64_t old_end = v->data_end;
    uint64_t bitmap_off = align_up(old_end + v->bitmap_size, VHD_DATA_ALIGN) - v->bitmap_size;
    uint64_t new_end = bitmap_off + v->bitmap_size + v->block_size;
    if (bitmap_off / SP_VHD_SECTOR > UINT32_MAX - 1 || new_end > VHD_MAX_FILE_OFFSET)
        return sp_error_set(err, SP_ELIMIT, "the file would pass the 2 TiB a VHD can address");
    int rc = take_bitmap_cache(v, err);
    if (rc != SP_OK)
        return rc;
    v->data_end = new_end;
    rc = write_footer(v, err);
    if (rc != SP_OK) {
        v->data_end = old_end;
        if (ftruncate(v->fd, (off_t)(old_end + SP_VHD_FOOTER_SIZE)) == 0)
            v->file_size = old_end + SP_VHD_FOOTER_SIZE;
        return rc;
    }
    memset(v->bm_cache, 0, v->bitmap_size);
    rc = sp_pwrite_full(v->fd, v->bm_cache, v->bitmap_size, bitmap_off, "sector bitmap", err);
    if (rc != SP_OK)
        return rc;
    uint8_t entry[4];
    sp_put_be32(entry, (uint32_t)(bitmap_off / SP_VHD_SECTOR));
    rc = sp_pwrite_full(v->fd, entry, 4, v->header.table_offset + (uint64_t)blk * 4, "BAT entry", err);
    if (rc != SP_OK)
        return rc;
    v->bat[blk] = (uint32_t)(bitmap_off / SP_VHD_SECTOR);
    v->bm_block = blk;
    v->bm_dirty = false;
    return SP_OK;
}

static int load_bitmap_for_write(struct sp_vhd *v, uint32_t blk, struct sp_error *err)
{
    if (v->bm_cache && v->bm_block == blk)
        return SP_OK;
    int rc = take_bitmap_cache(v, err);
    if (rc != SP_OK)
        return rc;
    rc = sp_pread_full(v->fd, v->bm_cache, v->bitmap_size, (uint64_t)v->bat[blk] * SP_VHD_SECTOR,
                       "sector bitmap", err);
    if (rc != SP_OK)
        return rc;
    v->bm_block = blk;
    return SP_OK;
}

static void set_bits(uint8_t *bm, uint32_t first, uint32_t n)
{
    for (uint32_t s = first; s < first + n; s++)
        bm[s / 8] |= (uint8_t)(0x80u >> (s % 8));
}

static int write_in_block(struct sp_vhd *v, uint32_t blk, uint32_t first, uint32_t nsect, const uint8_t *buf,
                          struct sp_error *err)
{
    int rc;
    if (v->bat[blk] == SP_VHD_BAT_UNUSED)
        rc = allocate_block(v, blk, err);
    else
        rc = load_bitmap_for_write(v, blk, err);
    if (rc != SP_OK)
        return rc;
    uint64_t off = sp_vhd_block_data_offset(v, blk) + (uint64_t)first * SP_VHD_SECTOR;
    rc = sp_pwrite_full(v->fd, buf, (size_t)nsect * SP_VHD_SECTOR, off, "block data", err);
    if (rc != SP_OK)
        return rc;
    sp_writeback_note(&v->wb, off, (uint64_t)nsect * SP_VHD_SECTOR);
    set_bits(v->bm_cache, first, nsect);
    v->bm_dirty = true;
    return SP_OK;
}

int sp_vhd_write_sectors(struct sp_vhd *v, uint64_t sector, uint64_t nsect, const void *buf,
                         struct sp_error *err)
{
    const uint8_t *p = buf;
    if (!v->writable)
        return sp_error_set(err, SP_EINVAL, "%s: opened read-only", v->path);
    uint64_t total = v->footer.current_size / SP_VHD_SECTOR;
    if (sector > total || nsect > total - sector)
        return sp_error_set(err, SP_EINVAL, "%s: write past the virtual size", v->path);
    if (v->footer.disk_type == SP_VHD_FIXED) {
        int rc = sp_pwrite_full(v->fd, p, nsect * SP_VHD_SECTOR, sector * SP_VHD_SECTOR, "data", err);
        return rc == SP_OK ? SP_OK : sp_error_prefix(err, "%s", v->path);
    }
    while (nsect > 0) {
        uint32_t blk = (uint32_t)(sector / v->sectors_per_block);
        uint32_t first = (uint32_t)(sector % v->sectors_per_block);
        uint32_t n = (uint32_t)sp_min_u64(nsect, v->sectors_per_block - first);
        int rc = write_in_block(v, blk, first, n, p, err);
        if (rc != SP_OK)
            return sp_error_prefix(err, "%s", v->path);
        sector += n;
        nsect -= n;
        p += (size_t)n * SP_VHD_SECTOR;
    }
    return SP_OK;
}

/* ---- creating ---------------------------------------------------------- */

/* The path of `target` relative to the directory of `from` (both absolute). */
static int relative_path(const char *from_file, const char *target, char *out, size_t outlen)
{
    char fromdir[PATH_MAX];
    snprintf(fromdir, sizeof fromdir, "%s", from_file);
    char *slash = strrchr(fromdir, '/');
    if (!slash)
        return SP_EINVAL;
    slash[1] = '\0';
    size_t common = 0;
    for (size_t i = 0; fromdir[i] && fromdir[i] == target[i]; i++)
        if (fromdir[i] == '/')
            common = i + 1;
    size_t o = (size_t)snprintf(out, outlen, "./");
    for (const char *p = fromdir + common; *p; p++)
        if (*p == '/')
            o += (size_t)snprintf(out + o, o < outlen ? outlen - o : 0, "../");
    o += (size_t)snprintf(out + o, o < outlen ? outlen - o : 0, "%s", target + common);
    return o < outlen ? SP_OK : SP_ELIMIT;
}

/* The three locators blktap writes, all relative: MacX file URL, W2ku, W2ru. */
static const uint32_t LOCATOR_CODES[] = {SP_VHD_PLAT_MACX, SP_VHD_PLAT_W2KU, SP_VHD_PLAT_W2RU};
#define N_LOCATORS (sizeof LOCATOR_CODES / sizeof LOCATOR_CODES[0])

static int write_locators(int fd, struct sp_vhd_header *h, const char *child_path, const struct sp_vhd *parent,
                          uint64_t *pos, struct sp_error *err)
{
    char child_abs[PATH_MAX], parent_abs[PATH_MAX], rel[PATH_MAX];
    if (!realpath(parent->path, parent_abs))
        return sp_error_errno(err, errno, "%s", parent->path);
    /* The child does not exist yet under its name: resolve its directory. */
    char dirbuf[PATH_MAX], basebuf[PATH_MAX], dirabs[PATH_MAX];
    snprintf(dirbuf, sizeof dirbuf, "%s", child_path);
    snprintf(basebuf, sizeof basebuf, "%s", child_path);
    if (!realpath(dirname(dirbuf), dirabs))
        return sp_error_errno(err, errno, "%s", child_path);
    snprintf(child_abs, sizeof child_abs, "%s/%s", dirabs, basename(basebuf));
    if (relative_path(child_abs, parent_abs, rel, sizeof rel) != SP_OK)
        return sp_error_set(err, SP_ELIMIT, "parent path too long");
    const char *base = strrchr(parent_abs, '/') + 1;
    snprintf(h->parent_name, sizeof h->parent_name, "%s", base);
    for (size_t i = 0; i < N_LOCATORS; i++) {
        uint8_t payload[8192];
        size_t len;
        int rc = sp_vhd_locator_encode(LOCATOR_CODES[i], rel, payload, sizeof payload, &len, err);
        if (rc != SP_OK)
            return rc;
        uint64_t space = align_up(len, SP_VHD_SECTOR);
        uint8_t *sect = sp_zalloc(space, err);
        if (!sect)
            return SP_ENOMEM;
        memcpy(sect, payload, len);
        rc = sp_pwrite_full(fd, sect, space, *pos, "parent locator", err);
        free(sect);
        if (rc != SP_OK)
            return rc;
        /* data space in bytes, as blktap and Hyper-V write it */
        h->loc[i] = (struct sp_vhd_locator){LOCATOR_CODES[i], (uint32_t)space, (uint32_t)len, *pos};
        *pos += space;
    }
    return SP_OK;
}

int sp_vhd_create_fd(int fd, const char *path, const struct sp_vhd_create_opts *o, struct sp_error *err)
{
    struct sp_vhd_footer f;
    struct sp_vhd_header h;
    uint64_t size = o->size;
    uint32_t bs = o->block_size ? o->block_size : SP_VHD_DEFAULT_BLOCK_SIZE;
    if (o->type == SP_VHD_DIFF && !o->parent)
        return sp_error_set(err, SP_EINVAL, "%s: a differencing disk needs a parent", path);
    if (o->type == SP_VHD_DIFF && size == 0)
        size = o->parent->footer.current_size;
    if (size == 0 || size % SP_VHD_SECTOR)
        return sp_error_set(err, SP_EINVAL, "%s: size %llu is not a positive multiple of 512", path,
                            (unsigned long long)size);
    if (size > SP_VHD_MAX_SIZE)
        return sp_error_set(err, SP_ELIMIT, "%s: size %llu exceeds the VHD limit of 2040 GiB", path,
                            (unsigned long long)size);
    if (!sp_is_pow2(bs) || bs < SP_VHD_MIN_BLOCK_SIZE || bs > SP_VHD_MAX_BLOCK_SIZE)
        return sp_error_set(err, SP_EINVAL, "%s: block size %u is not a power of two between 512 B and 256 MiB",
                            path, bs);
    uint64_t nblocks = sp_div_round_up(size, bs);
    if (nblocks > SP_VHD_MAX_BLOCKS)
        return sp_error_set(err, SP_ELIMIT, "%s: %llu blocks are more than the %u supported", path,
                            (unsigned long long)nblocks, SP_VHD_MAX_BLOCKS);
    int rc = sp_vhd_footer_init(&f, o->type, size, err);
    if (rc != SP_OK)
        return rc;
    if (o->uuid)
        memcpy(f.uuid, o->uuid, SP_UUID_LEN);
    memset(&h, 0, sizeof h);
    h.data_offset = UINT64_MAX;
    h.table_offset = VHD_BAT_OFFSET;
    h.max_table_entries = (uint32_t)nblocks;
    h.block_size = bs;
    uint64_t bat_bytes = align_up(nblocks * 4, SP_VHD_SECTOR);
    uint64_t pos = VHD_BAT_OFFSET + bat_bytes;
    if (o->type == SP_VHD_DIFF) {
        struct stat st;
        memcpy(h.parent_uuid, o->parent->footer.uuid, SP_UUID_LEN);
        if (fstat(o->parent->fd, &st) == 0)
            h.parent_timestamp = sp_vhd_time((int64_t)st.st_mtime); /* blktap: the parent's mtime */
        rc = write_locators(fd, &h, path, o->parent, &pos, err);
        if (rc != SP_OK)
            return sp_error_prefix(err, "%s", path);
    }
    /* BAT: all unused (0xFF bytes), in chunks so a big disk needs no big buffer. */
    uint8_t chunk[65536];
    memset(chunk, 0xFF, sizeof chunk);
    for (uint64_t off = 0; off < bat_bytes; off += sizeof chunk) {
        rc = sp_pwrite_full(fd, chunk, sp_min_u64(sizeof chunk, bat_bytes - off), VHD_BAT_OFFSET + off, "BAT", err);
        if (rc != SP_OK)
            return sp_error_prefix(err, "%s", path);
    }
    uint8_t hbuf[SP_VHD_HEADER_SIZE], fbuf[SP_VHD_FOOTER_SIZE];
    rc = sp_vhd_header_build(&h, hbuf, err);
    if (rc != SP_OK)
        return sp_error_prefix(err, "%s", path);
    sp_vhd_footer_build(&f, fbuf);
    rc = sp_pwrite_full(fd, hbuf, sizeof hbuf, VHD_HEADER_OFFSET, "dynamic header", err);
    if (rc == SP_OK)
        rc = sp_pwrite_full(fd, fbuf, sizeof fbuf, 0, "footer copy", err);
    if (rc == SP_OK)
        rc = sp_pwrite_full(fd, fbuf, sizeof fbuf, pos, "footer", err);
    if (rc == SP_OK && ftruncate(fd, (off_t)(pos + SP_VHD_FOOTER_SIZE)) != 0)
        rc = sp_error_errno(err, errno, "truncating");
    if (rc != SP_OK)
        return sp_error_prefix(err, "%s", path);
    return SP_OK;
}

/* ---- parent lookup ----------------------------------------------------- */

static void add_candidate(char cands[][4096], int max, int *n, const char *childdir, const char *p)
{
    if (*n >= max || !*p)
        return;
    char tmp[4096];
    while (p[0] == '.' && p[1] == '/')
        p += 2;
    if (!*p)
        return;
    if (p[0] == '/')
        snprintf(tmp, sizeof tmp, "%s", p);
    else if (strlen(p) > 2 && p[1] == ':') /* "C:/x/y.vhd": try the name beside the child */
        snprintf(tmp, sizeof tmp, "%s/%s", childdir, strrchr(p, '/') ? strrchr(p, '/') + 1 : p + 2);
    else if (strcmp(childdir, ".") == 0)
        snprintf(tmp, sizeof tmp, "%s", p);
    else
        snprintf(tmp, sizeof tmp, "%s/%s", childdir, p);
    for (int i = 0; i < *n; i++)
        if (strcmp(cands[i], tmp) == 0)
            return;
    snprintf(cands[(*n)++], 4096, "%s", tmp);
}

int sp_vhd_parent_candidates(struct sp_vhd *v, char cands[][4096], int max, int *n, struct sp_error *err)
{
    static const uint32_t order[] = {SP_VHD_PLAT_MACX, SP_VHD_PLAT_W2RU, SP_VHD_PLAT_W2KU,
                                     SP_VHD_PLAT_WI2R, SP_VHD_PLAT_WI2K};
    char childdir[4096];
    snprintf(childdir, sizeof childdir, "%s", v->path);
    char *slash = strrchr(childdir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(childdir, sizeof childdir, ".");
    *n = 0;
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
        for (int i = 0; i < SP_VHD_LOCATORS; i++) {
            const struct sp_vhd_locator *l = &v->header.loc[i];
            if (l->code != order[k] || l->data_length == 0 || (v->bad_locators & (1u << i)))
                continue;
            uint8_t *data = sp_alloc(l->data_length, err);
            if (!data)
                return SP_ENOMEM;
            int rc = sp_pread_full(v->fd, data, l->data_length, l->data_offset, "parent locator", err);
            char path[4096];
            struct sp_error derr;
            if (rc == SP_OK && sp_vhd_locator_decode(l->code, data, l->data_length, path, sizeof path, &derr) == SP_OK)
                add_candidate(cands, max, n, childdir, path);
            free(data);
            if (rc != SP_OK)
                return sp_error_prefix(err, "%s", v->path);
        }
    }
    /* Xen Orchestra resolves the header's unicode name beside the child. */
    const char *name = v->header.parent_name;
    const char *last = strrchr(name, '\\');
    if (last)
        name = last + 1;
    if (strchr(name, '/'))
        name = strrchr(name, '/') + 1;
    add_candidate(cands, max, n, childdir, name);
    return SP_OK;
}

/* ---- check ------------------------------------------------------------- */

static int check_clear_sectors(struct sp_vhd *v, void (*problem)(void *, const char *), void *ctx,
                               struct sp_error *err)
{
    uint8_t *bm = sp_alloc(v->bitmap_size, err);
    uint8_t *data = sp_alloc(v->block_size, err);
    int rc = (!bm || !data) ? SP_ENOMEM : SP_OK;
    uint32_t reported = 0;
    for (uint32_t b = 0; rc == SP_OK && b < v->nblocks; b++) {
        if (v->bat[b] == SP_VHD_BAT_UNUSED)
            continue;
        rc = sp_vhd_read_bitmap(v, b, bm, err);
        if (rc == SP_OK)
            rc = sp_vhd_read_stored(v, b, 0, v->sectors_per_block, data, err);
        for (uint32_t s = 0; rc == SP_OK && s < v->sectors_per_block; s++) {
            if (bm[s / 8] & (0x80u >> (s % 8)))
                continue;
            if (!sp_is_zero(data + (size_t)s * SP_VHD_SECTOR, SP_VHD_SECTOR)) {
                char msg[256];
                snprintf(msg, sizeof msg, "block %u: sector %u holds data but its bitmap bit is clear", b, s);
                if (reported++ < 10)
                    problem(ctx, msg);
                break;
            }
        }
    }
    free(bm);
    free(data);
    return rc;
}

int sp_vhd_check(struct sp_vhd *v, void (*problem)(void *ctx, const char *msg), void *ctx, struct sp_error *err)
{
    if (v->footer_from_copy)
        problem(ctx, v->footer_problem);
    if (v->bad_locators)
        problem(ctx, v->locator_problem);
    if (v->file_size % SP_VHD_SECTOR)
        problem(ctx, "file size is not a multiple of 512");
    if (v->footer.disk_type == SP_VHD_FIXED)
        return SP_OK;
    uint8_t a[SP_VHD_FOOTER_SIZE], b[SP_VHD_FOOTER_SIZE];
    int rc = sp_pread_full(v->fd, a, sizeof a, 0, "footer copy", err);
    if (rc != SP_OK)
        return rc;
    if (!v->footer_from_copy) {
        rc = sp_pread_full(v->fd, b, sizeof b, v->file_size - SP_VHD_FOOTER_SIZE, "footer", err);
        if (rc != SP_OK)
            return rc;
        if (memcmp(a, b, sizeof a) != 0)
            problem(ctx, "the footer copy at offset 0 differs from the footer at the end");
    }
    if (v->data_end + SP_VHD_FOOTER_SIZE < v->file_size && !v->footer_from_copy) {
        /* space after the last block before the footer: harmless, but not ours */
    }
    return check_clear_sectors(v, problem, ctx, err);
}
