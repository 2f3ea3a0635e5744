#include "disk/copy.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* Zero detection granularity: a file system page, the smallest hole. */
#define PAGE 4096u

int sp_disk_data_bytes(struct sp_disk *d, uint64_t *out, struct sp_error *err)
{
    uint64_t off = 0, n = 0;
    while (off < d->size) {
        struct sp_extent e;
        int rc = sp_disk_next_extent(d, off, &e, err);
        if (rc != SP_OK)
            return rc;
        if (e.kind == SP_EXTENT_DATA)
            n += e.len;
        off += e.len;
    }
    *out = n;
    return SP_OK;
}

static void report(const struct sp_progress *prog, uint64_t done, uint64_t total)
{
    if (prog && prog->update)
        prog->update(prog->ctx, done, total);
}

/* Writes the non-zero pages of buf (disk offset off) as few runs. */
static int write_nonzero(struct sp_disk *dst, uint64_t off, const uint8_t *buf, size_t len, struct sp_error *err)
{
    size_t pos = 0;
    while (pos < len) {
        size_t n = len - pos < PAGE ? len - pos : PAGE;
        if (sp_is_zero(buf + pos, n)) {
            pos += n;
            continue;
        }
        size_t end = pos + n;
        while (end < len) {
            size_t m = len - end < PAGE ? len - end : PAGE;
            if (sp_is_zero(buf + end, m))
                break;
            end += m;
        }
        int rc = sp_disk_write(dst, off + pos, buf + pos, end - pos, err);
        if (rc != SP_OK)
            return rc;
        pos = end;
    }
    return SP_OK;
}

int sp_copy_disk(struct sp_disk *src, struct sp_disk *dst, const struct sp_progress *prog, struct sp_error *err)
{
    if (dst->size < src->size)
        return sp_error_set(err, SP_EINVAL, "%s: smaller than %s", dst->path, src->path);
    uint64_t total = 0, done = 0;
    int rc = sp_disk_data_bytes(src, &total, err);
    if (rc != SP_OK)
        return rc;
    uint8_t *buf = sp_alloc(SP_COPY_CHUNK, err);
    if (!buf)
        return SP_ENOMEM;
    uint64_t off = 0;
    report(prog, 0, total);
    while (rc == SP_OK && off < src->size) {
        struct sp_extent e;
        rc = sp_disk_next_extent(src, off, &e, err);
        if (rc != SP_OK)
            break;
        if (e.kind == SP_EXTENT_ZERO) {
            off += e.len;
            continue;
        }
        uint64_t end = e.start + e.len;
        while (rc == SP_OK && off < end) {
            /* chunks end on chunk boundaries so reads stay block-aligned */
            size_t n = (size_t)sp_min_u64(end - off, SP_COPY_CHUNK - off % SP_COPY_CHUNK);
            rc = sp_disk_read(src, off, buf, n, err);
            if (rc == SP_OK)
                rc = write_nonzero(dst, off, buf, n, err);
            off += n;
            done += n;
            report(prog, done, total);
        }
    }
    free(buf);
    if (rc == SP_OK)
        rc = sp_disk_flush(dst, err);
    return rc;
}

static size_t first_mismatch(const uint8_t *a, const uint8_t *b, size_t n)
{
    size_t i = 0;
    /* memcmp finds whether; narrow down by halves, then bytewise */
    while (n - i > 64) {
        size_t half = (n - i) / 2;
        if (memcmp(a + i, b + i, half) != 0)
            n = i + half;
        else
            i += half;
    }
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

/* Reads len bytes of d at off: zeros for a ZERO extent (no I/O). */
static int read_or_zero(struct sp_disk *d, const struct sp_extent *e, uint64_t off, uint8_t *buf, size_t len,
                        struct sp_error *err)
{
    if (e->kind == SP_EXTENT_ZERO) {
        memset(buf, 0, len);
        return SP_OK;
    }
    return sp_disk_read(d, off, buf, len, err);
}

/* Compares a and b over [0, len): *identical false and *first_diff at
 * the first differing byte. ba and bb hold SP_COPY_CHUNK bytes. */
static int compare_common(struct sp_disk *a, struct sp_disk *b, uint64_t len, uint8_t *ba, uint8_t *bb,
                          bool *identical, uint64_t *first_diff, const struct sp_progress *prog, uint64_t total,
                          struct sp_error *err)
{
    int rc = SP_OK;
    uint64_t off = 0;
    while (rc == SP_OK && off < len && *identical) {
        struct sp_extent ea, eb;
        rc = sp_disk_next_extent(a, off, &ea, err);
        if (rc == SP_OK)
            rc = sp_disk_next_extent(b, off, &eb, err);
        if (rc != SP_OK)
            break;
        uint64_t run = sp_min_u64(sp_min_u64(ea.len, eb.len), len - off);
        if (ea.kind == SP_EXTENT_ZERO && eb.kind == SP_EXTENT_ZERO) {
            off += run;
            continue;
        }
        size_t n = (size_t)sp_min_u64(run, SP_COPY_CHUNK - off % SP_COPY_CHUNK);
        rc = read_or_zero(a, &ea, off, ba, n, err);
        if (rc == SP_OK)
            rc = read_or_zero(b, &eb, off, bb, n, err);
        if (rc == SP_OK && memcmp(ba, bb, n) != 0) {
            *identical = false;
            *first_diff = off + first_mismatch(ba, bb, n);
        }
        off += n;
        report(prog, off, total);
    }
    return rc;
}

/* Whether d reads as zeros from off to its end: only its DATA extents are
 * read, so the cost is the data's, not the virtual size's. *first_data is
 * the first non-zero byte when it does not. buf and zeros hold
 * SP_COPY_CHUNK bytes; zeros is cleared here. */
static int zero_from(struct sp_disk *d, uint64_t off, uint8_t *buf, uint8_t *zeros, bool *zero, uint64_t *first_data,
                     const struct sp_progress *prog, struct sp_error *err)
{
    *zero = true;
    memset(zeros, 0, SP_COPY_CHUNK);
    int rc = SP_OK;
    while (rc == SP_OK && off < d->size && *zero) {
        struct sp_extent e;
        rc = sp_disk_next_extent(d, off, &e, err);
        if (rc != SP_OK)
            break;
        if (e.kind == SP_EXTENT_ZERO) {
            off += e.len;
            continue;
        }
        size_t n = (size_t)sp_min_u64(e.len, SP_COPY_CHUNK - off % SP_COPY_CHUNK);
        rc = sp_disk_read(d, off, buf, n, err);
        if (rc == SP_OK && !sp_is_zero(buf, n)) {
            *zero = false;
            *first_data = off + first_mismatch(buf, zeros, n);
        }
        off += n;
        report(prog, off, d->size);
    }
    return rc;
}

static int compare_disks(struct sp_disk *a, struct sp_disk *b, bool lenient, bool *identical, uint64_t *first_diff,
                         const struct sp_progress *prog, struct sp_error *err)
{
    *identical = true;
    *first_diff = 0;
    uint64_t common = sp_min_u64(a->size, b->size);
    if (a->size != b->size && !lenient) {
        *identical = false;
        *first_diff = common;
        return SP_OK;
    }
    uint8_t *ba = sp_alloc(SP_COPY_CHUNK, err);
    uint8_t *bb = ba ? sp_alloc(SP_COPY_CHUNK, err) : NULL;
    int rc = bb ? SP_OK : SP_ENOMEM;
    uint64_t total = a->size > b->size ? a->size : b->size;
    if (rc == SP_OK)
        rc = compare_common(a, b, common, ba, bb, identical, first_diff, prog, total, err);
    if (rc == SP_OK && *identical && a->size != b->size)
        rc = zero_from(a->size > b->size ? a : b, common, ba, bb, identical, first_diff, prog, err);
    free(ba);
    free(bb);
    return rc;
}

int sp_compare_disks(struct sp_disk *a, struct sp_disk *b, bool *identical, uint64_t *first_diff,
                     const struct sp_progress *prog, struct sp_error *err)
{
    return compare_disks(a, b, false, identical, first_diff, prog, err);
}

int sp_compare_disks_lenient(struct sp_disk *a, struct sp_disk *b, bool *identical, uint64_t *first_diff,
                             const struct sp_progress *prog, struct sp_error *err)
{
    return compare_disks(a, b, true, identical, first_diff, prog, err);
}
