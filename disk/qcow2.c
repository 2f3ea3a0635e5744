/* The qcow2 driver (read-only): versions 2 and 3, standard, zero and
 * compressed (zlib, zstd) clusters, backing files of any format snapport
 * reads. Guest clusters map through the active L1 table and L2 tables
 * (qemu's docs/interop/qcow2.txt "Cluster mapping"); internal snapshots are
 * ignored. The header is parsed in qcow2_header.c.
 *
 * Cost follows the data: next_extent answers from the L1/L2 tables alone
 * (unallocated L1 entries skip a whole table's span at once), reads of
 * host-contiguous clusters become one pread, L2 tables live in a small
 * cache, and the last decompressed cluster is kept for the reads that cut
 * it in pieces. */
#include <errno.h>
#include <fcntl.h>
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "base/util.h"
#include "disk/copy.h"
#include "disk/driver.h"
#include "disk/qcow2_header.h"
#include "disk/registry.h"

#define QCOW_ENTRY_LEN 8u
#define QCOW_SECTOR 512u                       /* compressed sizes count 512-byte sectors */
#define QCOW_OFFSET_MASK 0x00fffffffffffe00ull /* spec: bits 9-55 of L1 and standard L2 entries */
#define QCOW_L2_COMPRESSED (1ull << 62)
#define QCOW_L2_ZERO 1ull                      /* v3: bit 0 of a standard descriptor */
#define QCOW_DESCRIPTOR_BITS 62u               /* bits 0-61 hold a cluster descriptor */
#define QCOW_CSIZE_UNIT_BITS 8u                /* spec: x = 62 - (cluster_bits - 8) */
/* L2 tables cached: what fits in 4 MiB, at least two (next_extent runs
 * ahead of read by one table), at most 16 (a sequential reader needs few). */
#define QCOW_L2_CACHE_BYTES (4u << 20)
#define QCOW_L2_SLOTS_MIN 2u
#define QCOW_L2_SLOTS_MAX 16u
/* next_extent loads at most this many L2 tables for one answer, so that a
 * call costs a bounded amount of metadata whatever the image. */
#define QCOW_RUN_TABLES QCOW_L2_SLOTS_MIN
/* check reports this many findings, then stops. */
#define QCOW_CHECK_FINDINGS_MAX 100

enum cl_kind { CL_UNALLOC, CL_ZERO, CL_DATA, CL_COMPRESSED };

struct cluster_map {
    enum cl_kind kind;
    uint64_t host;      /* data: cluster-aligned; compressed: any byte */
    uint64_t csize;     /* compressed: bytes to read from host (clipped at EOF) */
};

struct l2_slot {
    uint64_t table;     /* host offset of the table held; 0: empty */
    uint64_t used;      /* last use, for eviction */
    uint8_t *buf;       /* one cluster, entries as stored (big-endian) */
};

struct qcow2 {
    struct sp_disk disk;
    int fd;
    char *path;
    uint64_t file_size;
    struct sp_qcow2_header h;
    uint64_t cluster;          /* bytes */
    unsigned l2_bits;          /* log2 of entries per L2 table */
    uint64_t clusters;         /* guest clusters the virtual size covers */
    uint64_t *l1;              /* h.l1_needed L2 table offsets (0: none) */
    struct l2_slot slot[QCOW_L2_SLOTS_MAX];
    unsigned nslots;
    uint64_t tick;
    struct sp_disk *backing;   /* NULL: unallocated clusters read as zeros */
    uint8_t *zin, *zout;       /* compressed cluster in, decoded out */
    uint64_t zout_cluster;     /* guest cluster held in zout; UINT64_MAX none */
    struct libdeflate_decompressor *inflater;
    ZSTD_DCtx *zstd;
};

static struct qcow2 *from_disk(struct sp_disk *d) { return (struct qcow2 *)d; }

/* ------------------------------------------------------------------ */
/* Mapping a guest cluster */

static int l2_table(struct qcow2 *q, uint64_t table, const uint8_t **out, struct sp_error *err)
{
    struct l2_slot *victim = &q->slot[0];
    for (unsigned i = 0; i < q->nslots; i++) {
        struct l2_slot *s = &q->slot[i];
        if (s->table == table) {
            s->used = ++q->tick;
            *out = s->buf;
            return SP_OK;
        }
        if (s->used < victim->used)
            victim = s;
    }
    if (!victim->buf && !(victim->buf = sp_alloc(q->cluster, err)))
        return SP_ENOMEM;
    victim->table = 0;
    int rc = sp_pread_full(q->fd, victim->buf, q->cluster, table, "L2 table", err);
    if (rc != SP_OK)
        return sp_error_prefix(err, "%s", q->path);
    victim->table = table;
    victim->used = ++q->tick;
    *out = victim->buf;
    return SP_OK;
}

static int bad_entry(struct qcow2 *q, uint64_t ci, const char *what, uint64_t host, struct sp_error *err)
{
    return sp_error_set(err, SP_EFORMAT, "%s: L2 entry of guest offset %llu: %s at %llu (file size %llu)", q->path,
                        (unsigned long long)(ci << q->h.cluster_bits), what, (unsigned long long)host,
                        (unsigned long long)q->file_size);
}

/* Compressed descriptor (spec, x = 62 - (cluster_bits - 8)): host offset
 * in bits 0..x-1, additional 512-byte sectors in bits x..61. */
static int decode_compressed(struct qcow2 *q, uint64_t e, uint64_t ci, struct cluster_map *m, struct sp_error *err)
{
    unsigned x = QCOW_DESCRIPTOR_BITS - (q->h.cluster_bits - QCOW_CSIZE_UNIT_BITS);
    uint64_t host = e & ((1ull << x) - 1);
    uint64_t sectors = ((e & ((1ull << QCOW_DESCRIPTOR_BITS) - 1)) >> x) + 1;
    uint64_t csize = sectors * QCOW_SECTOR - host % QCOW_SECTOR;
    if (host < q->cluster)
        return bad_entry(q, ci, "compressed data overlapping the header", host, err);
    if (host >= q->file_size)
        return bad_entry(q, ci, "compressed data past the end of the file", host, err);
    m->kind = CL_COMPRESSED;
    m->host = host;
    /* the last sector may be cut short by the end of the file */
    m->csize = sp_min_u64(csize, q->file_size - host);
    return SP_OK;
}

static int decode_entry(struct qcow2 *q, uint64_t e, uint64_t ci, struct cluster_map *m, struct sp_error *err)
{
    if (e & QCOW_L2_COMPRESSED)
        return decode_compressed(q, e, ci, m, err);
    m->host = e & QCOW_OFFSET_MASK;
    m->csize = 0;
    if (q->h.version >= 3 && (e & QCOW_L2_ZERO)) {
        m->kind = CL_ZERO;
        return SP_OK;
    }
    if (m->host == 0) {
        m->kind = CL_UNALLOC;
        return SP_OK;
    }
    if (m->host % q->cluster)
        return bad_entry(q, ci, "data cluster not on a cluster boundary", m->host, err);
    if (m->host >= q->file_size)
        return bad_entry(q, ci, "data cluster past the end of the file", m->host, err);
    m->kind = CL_DATA;
    return SP_OK;
}

static int map_cluster(struct qcow2 *q, uint64_t ci, struct cluster_map *m, struct sp_error *err)
{
    uint64_t table = q->l1[ci >> q->l2_bits];
    if (table == 0) {
        m->kind = CL_UNALLOC;
        m->host = m->csize = 0;
        return SP_OK;
    }
    const uint8_t *t;
    int rc = l2_table(q, table, &t, err);
    if (rc != SP_OK)
        return rc;
    uint64_t idx = ci & ((1ull << q->l2_bits) - 1);
    return decode_entry(q, sp_be64(t + idx * QCOW_ENTRY_LEN), ci, m, err);
}

/* What next_extent tells apart: compressed clusters are data too. */
static enum cl_kind run_kind(enum cl_kind k) { return k == CL_COMPRESSED ? CL_DATA : k; }

/* Clusters of one table from c on (at most n) of kind *kind (set from the
 * first when *count is 0); *count grows, *more false at a change. */
static int run_in_table(struct qcow2 *q, uint64_t c, uint64_t n, enum cl_kind *kind, uint64_t *count, bool *more,
                        struct sp_error *err)
{
    const uint8_t *t;
    int rc = l2_table(q, q->l1[c >> q->l2_bits], &t, err);
    uint64_t idx = c & ((1ull << q->l2_bits) - 1);
    for (uint64_t i = 0; rc == SP_OK && i < n; i++) {
        struct cluster_map m;
        rc = decode_entry(q, sp_be64(t + (idx + i) * QCOW_ENTRY_LEN), c + i, &m, err);
        if (rc != SP_OK)
            break;
        if (*count == 0)
            *kind = run_kind(m.kind);
        else if (run_kind(m.kind) != *kind) {
            *more = false;
            break;
        }
        (*count)++;
    }
    return rc;
}

/* The run of clusters from ci that share a kind (data, zero, unallocated),
 * loading at most QCOW_RUN_TABLES L2 tables. */
static int cluster_run(struct qcow2 *q, uint64_t ci, enum cl_kind *kind, uint64_t *count, struct sp_error *err)
{
    bool more = true;
    unsigned loads = 0;
    *count = 0;
    while (more && ci + *count < q->clusters) {
        uint64_t c = ci + *count;
        uint64_t in_table = sp_min_u64((1ull << q->l2_bits) - (c & ((1ull << q->l2_bits) - 1)), q->clusters - c);
        if (q->l1[c >> q->l2_bits] == 0) {
            if (*count && *kind != CL_UNALLOC)
                break;
            *kind = CL_UNALLOC;
            *count += in_table;
            continue;
        }
        if (loads++ == QCOW_RUN_TABLES)
            break;
        int rc = run_in_table(q, c, in_table, kind, count, &more, err);
        if (rc != SP_OK)
            return rc;
    }
    return SP_OK;
}

/* ------------------------------------------------------------------ */
/* The extent stream */

/* Unallocated clusters [off, end): the backing file's extents, zeros past
 * its end or without one. */
static int backing_extent(struct qcow2 *q, uint64_t off, uint64_t end, struct sp_extent *ext, struct sp_error *err)
{
    ext->kind = SP_EXTENT_ZERO;
    ext->len = end - off;
    if (!q->backing || off >= q->backing->size)
        return SP_OK;
    struct sp_extent be;
    int rc = sp_disk_next_extent(q->backing, off, &be, err);
    if (rc != SP_OK)
        return rc;
    ext->kind = be.kind;
    ext->len = sp_min_u64(end, off + be.len) - off;
    return SP_OK;
}

static int qcow2_next_extent(struct sp_disk *d, uint64_t off, struct sp_extent *ext, struct sp_error *err)
{
    struct qcow2 *q = from_disk(d);
    uint64_t ci = off >> q->h.cluster_bits, n;
    enum cl_kind kind = CL_UNALLOC;
    int rc = cluster_run(q, ci, &kind, &n, err);
    if (rc != SP_OK)
        return rc;
    uint64_t end = sp_min_u64((ci + n) << q->h.cluster_bits, d->size);
    ext->start = off;
    ext->len = end - off;
    ext->kind = kind == CL_DATA ? SP_EXTENT_DATA : SP_EXTENT_ZERO;
    return kind == CL_UNALLOC ? backing_extent(q, off, end, ext, err) : SP_OK;
}

/* len bytes of the file at host; bytes past its end read as zeros (qemu
 * does the same for a last cluster the file does not hold whole). */
static int read_host(struct qcow2 *q, uint64_t host, uint8_t *buf, size_t len, struct sp_error *err)
{
    size_t have = host < q->file_size ? (size_t)sp_min_u64(len, q->file_size - host) : 0;
    int rc = sp_pread_full(q->fd, buf, have, host, "data", err);
    if (rc != SP_OK)
        return sp_error_prefix(err, "%s", q->path);
    memset(buf + have, 0, len - have);
    return SP_OK;
}

static int read_backing(struct qcow2 *q, uint64_t off, uint8_t *buf, size_t len, struct sp_error *err)
{
    size_t have = 0;
    if (q->backing && off < q->backing->size) {
        have = (size_t)sp_min_u64(len, q->backing->size - off);
        int rc = sp_disk_read(q->backing, off, buf, have, err);
        if (rc != SP_OK)
            return rc;
    }
    memset(buf + have, 0, len - have);
    return SP_OK;
}

static int inflate_cluster(struct qcow2 *q, size_t in_len)
{
    if (!q->inflater && !(q->inflater = libdeflate_alloc_decompressor()))
        return SP_ENOMEM;
    /* raw deflate as qemu writes it (windowBits -12); the stream must give
     * exactly one cluster, bytes after its end belong to the next one */
    size_t used = 0;
    enum libdeflate_result r =
        libdeflate_deflate_decompress_ex(q->inflater, q->zin, in_len, q->zout, q->cluster, &used, NULL);
    return r == LIBDEFLATE_SUCCESS ? SP_OK : SP_EFORMAT;
}

static int unzstd_cluster(struct qcow2 *q, size_t in_len)
{
    if (!q->zstd && !(q->zstd = ZSTD_createDCtx()))
        return SP_ENOMEM;
    /* one frame (qemu ends the stream per cluster); the rest of the last
     * sector belongs to the next cluster */
    size_t frame = ZSTD_findFrameCompressedSize(q->zin, in_len);
    if (ZSTD_isError(frame))
        return SP_EFORMAT;
    size_t got = ZSTD_decompressDCtx(q->zstd, q->zout, q->cluster, q->zin, frame);
    return !ZSTD_isError(got) && got == q->cluster ? SP_OK : SP_EFORMAT;
}

static int alloc_zbufs(struct qcow2 *q, struct sp_error *err)
{
    /* a descriptor counts at most 2^(cluster_bits-8) sectors: two clusters */
    if (!q->zin && !(q->zin = sp_alloc(2 * q->cluster, err)))
        return SP_ENOMEM;
    if (!q->zout && !(q->zout = sp_alloc(q->cluster, err)))
        return SP_ENOMEM;
    return SP_OK;
}

static int decompress(struct qcow2 *q, uint64_t ci, const struct cluster_map *m, struct sp_error *err)
{
    if (q->zout_cluster == ci)
        return SP_OK;
    int rc = alloc_zbufs(q, err);
    if (rc == SP_OK)
        rc = sp_pread_full(q->fd, q->zin, (size_t)m->csize, m->host, "compressed cluster", err);
    if (rc != SP_OK)
        return rc == SP_ENOMEM ? rc : sp_error_prefix(err, "%s", q->path);
    q->zout_cluster = UINT64_MAX;
    rc = q->h.compression == SP_QCOW2_ZSTD ? unzstd_cluster(q, (size_t)m->csize) : inflate_cluster(q, (size_t)m->csize);
    if (rc == SP_ENOMEM)
        return sp_error_set(err, rc, "out of memory");
    if (rc != SP_OK)
        return sp_error_set(err, rc, "%s: compressed cluster at guest offset %llu (host %llu): corrupt %s data",
                            q->path, (unsigned long long)(ci << q->h.cluster_bits), (unsigned long long)m->host,
                            q->h.compression == SP_QCOW2_ZSTD ? "zstd" : "deflate");
    q->zout_cluster = ci;
    return SP_OK;
}

/* How far from ci (whose map is first) the same treatment goes within
 * len bytes: data while host-contiguous, zero and unallocated while the
 * kind holds. Returns the bytes, at least the first cluster's part. */
static int same_run(struct qcow2 *q, uint64_t off, size_t len, const struct cluster_map *first, size_t *n,
                    struct sp_error *err)
{
    uint64_t ci = off >> q->h.cluster_bits;
    *n = (size_t)sp_min_u64(len, q->cluster - (off & (q->cluster - 1)));
    if (first->kind == CL_COMPRESSED)
        return SP_OK;
    for (uint64_t k = 1; *n < len; k++) {
        struct cluster_map m;
        int rc = map_cluster(q, ci + k, &m, err);
        if (rc != SP_OK)
            return rc;
        if (m.kind != first->kind || (m.kind == CL_DATA && m.host != first->host + k * q->cluster))
            break;
        *n += (size_t)sp_min_u64(len - *n, q->cluster);
    }
    return SP_OK;
}

static int read_run(struct qcow2 *q, uint64_t off, uint8_t *buf, size_t len, size_t *done, struct sp_error *err)
{
    struct cluster_map m;
    uint64_t ci = off >> q->h.cluster_bits, in = off & (q->cluster - 1);
    int rc = map_cluster(q, ci, &m, err);
    if (rc == SP_OK)
        rc = same_run(q, off, len, &m, done, err);
    if (rc != SP_OK)
        return rc;
    switch (m.kind) {
    case CL_DATA:
        return read_host(q, m.host + in, buf, *done, err);
    case CL_ZERO:
        memset(buf, 0, *done);
        return SP_OK;
    case CL_UNALLOC:
        return read_backing(q, off, buf, *done, err);
    case CL_COMPRESSED:
        rc = decompress(q, ci, &m, err);
        if (rc == SP_OK)
            memcpy(buf, q->zout + in, *done);
        return rc;
    }
    return SP_OK;
}

static int qcow2_read(struct sp_disk *d, uint64_t off, void *buf, size_t len, struct sp_error *err)
{
    struct qcow2 *q = from_disk(d);
    uint8_t *p = buf;
    while (len > 0) {
        size_t n = 0;
        int rc = read_run(q, off, p, len, &n, err);
        if (rc != SP_OK)
            return rc;
        off += n;
        p += n;
        len -= n;
    }
    return SP_OK;
}

static void qcow2_close(struct sp_disk *d)
{
    struct qcow2 *q = from_disk(d);
    if (!q)
        return;
    sp_disk_close(q->backing);
    for (unsigned i = 0; i < QCOW_L2_SLOTS_MAX; i++)
        free(q->slot[i].buf);
    free(q->l1);
    free(q->zin);
    free(q->zout);
    if (q->inflater)
        libdeflate_free_decompressor(q->inflater);
    ZSTD_freeDCtx(q->zstd);
    if (q->fd >= 0)
        close(q->fd);
    free(q->path);
    free(q);
}

static const struct sp_disk_ops QCOW2_OPS = {
    .next_extent = qcow2_next_extent,
    .read = qcow2_read,
    .close = qcow2_close,
};

/* ------------------------------------------------------------------ */
/* Opening */

static int read_header(struct qcow2 *q, struct sp_error *err)
{
    uint8_t fixed[SP_QCOW2_FIXED_LEN];
    size_t n = (size_t)sp_min_u64(sizeof fixed, q->file_size);
    int rc = sp_pread_full(q->fd, fixed, n, 0, "header", err);
    if (rc == SP_OK)
        rc = sp_qcow2_header_fixed(fixed, n, &q->h, err);
    if (rc != SP_OK)
        return rc;
    /* the whole first cluster: extensions and the backing file name (at
     * most 2 MiB, the cluster size limit) */
    size_t first = (size_t)sp_min_u64(1ull << q->h.cluster_bits, q->file_size);
    uint8_t *buf = sp_alloc(first, err);
    if (!buf)
        return SP_ENOMEM;
    rc = sp_pread_full(q->fd, buf, first, 0, "header cluster", err);
    if (rc == SP_OK)
        rc = sp_qcow2_header_rest(buf, first, q->file_size, &q->h, err);
    free(buf);
    return rc;
}

/* The active L1 table, each entry checked: a cluster-aligned L2 table
 * wholly inside the file, past the header. Decoded in place: the one
 * buffer is at most 32 MiB (qemu's L1 limit, checked by the parser). */
static int load_l1(struct qcow2 *q, struct sp_error *err)
{
    uint64_t n = q->h.l1_needed;
    if (n == 0)
        return SP_OK;
    q->l1 = sp_alloc((size_t)(n * sizeof *q->l1), err);
    if (!q->l1)
        return SP_ENOMEM;
    int rc = sp_pread_full(q->fd, q->l1, (size_t)(n * QCOW_ENTRY_LEN), q->h.l1_offset, "L1 table", err);
    for (uint64_t i = 0; rc == SP_OK && i < n; i++) {
        uint64_t t = sp_be64((const uint8_t *)&q->l1[i]) & QCOW_OFFSET_MASK;
        q->l1[i] = t;
        if (t && (t % q->cluster || t > q->file_size || q->cluster > q->file_size - t))
            rc = sp_error_set(err, SP_EFORMAT, "L1 entry %llu: L2 table at %llu is not a whole cluster inside the "
                                               "file (%llu bytes)",
                              (unsigned long long)i, (unsigned long long)t, (unsigned long long)q->file_size);
    }
    return rc;
}

/* name relative to the directory of the image that names it. */
static char *backing_path(const char *image, const char *name, struct sp_error *err)
{
    const char *slash = strrchr(image, '/');
    size_t dir = name[0] == '/' || !slash ? 0 : (size_t)(slash - image) + 1;
    char *p = sp_alloc(dir + strlen(name) + 1, err);
    if (p) {
        memcpy(p, image, dir);
        strcpy(p + dir, name);
    }
    return p;
}

/* The backing file: with the format the header names (never probed: a
 * raw backing file holds guest bytes that may look like anything), else
 * probed through the registry. */
static int open_backing(struct qcow2 *q, const struct sp_disk_open_opts *o, struct sp_error *err)
{
    char *bpath = backing_path(q->path, q->h.backing, err);
    if (!bpath)
        return SP_ENOMEM;
    struct sp_disk_open_opts bo = {.depth = o->depth + 1};
    int rc;
    if (q->h.backing_format[0]) {
        const struct sp_disk_driver *drv = sp_disk_driver_find(q->h.backing_format);
        rc = drv ? sp_disk_open_with(drv, bpath, &bo, &q->backing, err)
                 : sp_error_set(err, SP_EUNSUPPORTED, "backing format '%s' is not supported", q->h.backing_format);
    } else {
        rc = sp_disk_open_any(bpath, &bo, &q->backing, err);
    }
    /* a loop: one line from the top, not a prefix per turn, and not the
     * file at the limit either (in a loop, the top one again) */
    if (rc == SP_ELIMIT && o->depth == 0)
        sp_error_set(err, SP_ELIMIT, "backing file: more than %d files stacked (a loop?)", SP_DISK_MAX_DEPTH);
    else if (rc != SP_OK && rc != SP_ELIMIT)
        sp_error_prefix(err, "backing file");
    free(bpath);
    return rc;
}

static int open_file(struct qcow2 *q, const char *path, struct sp_error *err)
{
    struct stat st;
    q->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (q->fd < 0 || fstat(q->fd, &st) != 0)
        return sp_error_errno(err, errno, "open");
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        return sp_error_set(err, SP_EFORMAT, "not a regular file or block device");
    off_t end = lseek(q->fd, 0, SEEK_END);
    if (end < 0)
        return sp_error_errno(err, errno, "seek");
    q->file_size = (uint64_t)end;
    return SP_OK;
}

static void setup_geometry(struct qcow2 *q)
{
    q->cluster = 1ull << q->h.cluster_bits;
    q->l2_bits = q->h.cluster_bits - 3; /* 8-byte entries per cluster-sized table */
    q->clusters = sp_div_round_up(q->h.size, q->cluster);
    q->nslots = (unsigned)sp_min_u64(QCOW_L2_CACHE_BYTES / q->cluster, QCOW_L2_SLOTS_MAX);
    if (q->nslots < QCOW_L2_SLOTS_MIN)
        q->nslots = QCOW_L2_SLOTS_MIN;
    q->disk.size = q->h.size;
}

static int open_layers(struct qcow2 *q, const char *path, const struct sp_disk_open_opts *o, struct sp_error *err)
{
    int rc = open_file(q, path, err);
    if (rc == SP_OK)
        rc = read_header(q, err);
    if (rc != SP_OK)
        return sp_error_prefix(err, "%s", path);
    if (q->h.backing[0] && o->standalone)
        return sp_error_set(err, SP_EUNSUPPORTED, "%s: a qcow2 image with a backing file (%s) cannot be read alone",
                            path, q->h.backing);
    setup_geometry(q);
    rc = load_l1(q, err);
    if (rc == SP_OK && q->h.backing[0])
        rc = open_backing(q, o, err);
    if (rc == SP_OK || rc == SP_ENOMEM || (rc == SP_ELIMIT && o->depth > 0))
        return rc;
    return sp_error_prefix(err, "%s", path);
}

static int qcow2_open(const char *path, const struct sp_disk_open_opts *o, struct sp_disk **out, struct sp_error *err)
{
    if (o->writable)
        return sp_error_set(err, SP_EUNSUPPORTED, "%s: snapport reads qcow2 images but does not write them", path);
    struct qcow2 *q = sp_zalloc(sizeof *q, err);
    if (!q)
        return SP_ENOMEM;
    q->fd = -1;
    q->zout_cluster = UINT64_MAX;
    q->disk.ops = &QCOW2_OPS;
    q->path = strdup(path);
    q->disk.path = q->path;
    int rc = q->path ? open_layers(q, path, o, err) : sp_error_set(err, SP_ENOMEM, "out of memory");
    if (rc != SP_OK) {
        qcow2_close(&q->disk);
        return rc;
    }
    *out = &q->disk;
    return SP_OK;
}

/* ------------------------------------------------------------------ */
/* The driver */

static int qcow2_probe(const struct sp_probe *p)
{
    uint32_t version;
    if (!sp_qcow2_magic(p->head, p->head_len, &version))
        return SP_PROBE_NO;
    /* another version still bids, so that open says why it refuses */
    return version == 2 || version == 3 ? SP_PROBE_SURE : SP_PROBE_WEAK;
}

/* Guest bytes of allocated (standard and compressed) clusters. */
static int allocated_bytes(struct qcow2 *q, uint64_t *out, struct sp_error *err)
{
    *out = 0;
    for (uint64_t ci = 0; ci < q->clusters;) {
        enum cl_kind kind = CL_UNALLOC;
        uint64_t n;
        int rc = cluster_run(q, ci, &kind, &n, err);
        if (rc != SP_OK)
            return rc;
        if (kind == CL_DATA)
            *out += sp_min_u64((ci + n) << q->h.cluster_bits, q->h.size) - (ci << q->h.cluster_bits);
        ci += n;
    }
    return SP_OK;
}

static int qcow2_layers(struct sp_disk *d, struct sp_disk_layer *l, int max, int *n, struct sp_error *err)
{
    struct qcow2 *q = from_disk(d);
    *n = 0;
    if (max < 1)
        return SP_OK;
    memset(l, 0, sizeof *l);
    l->path = q->path;
    snprintf(l->variant, sizeof l->variant, "qcow2 v%u%s", q->h.version,
             q->h.compression == SP_QCOW2_ZSTD ? " zstd" : "");
    l->virtual_size = d->size;
    l->block_size = (uint32_t)q->cluster;
    int rc = allocated_bytes(q, &l->allocated, err);
    if (rc != SP_OK)
        return rc;
    int below = 0;
    if (q->backing)
        rc = sp_disk_layers(q->backing, l + 1, max - 1, &below, err);
    *n = 1 + below;
    return rc;
}

struct findings {
    void (*problem)(void *ctx, const char *msg);
    void *ctx;
    int count;
};

static void finding(struct findings *f, const struct sp_error *e)
{
    if (f->count++ < QCOW_CHECK_FINDINGS_MAX)
        f->problem(f->ctx, e->msg);
}

/* A data cluster or compressed range inside the active L1 table. */
static bool hits_l1(const struct qcow2 *q, uint64_t host, uint64_t len)
{
    uint64_t l1_end = q->h.l1_offset + q->h.l1_needed * QCOW_ENTRY_LEN;
    return q->h.l1_needed && host < l1_end && host + len > q->h.l1_offset;
}

static void check_cluster(struct qcow2 *q, uint64_t ci, struct findings *f)
{
    struct sp_error e;
    struct cluster_map m;
    sp_error_clear(&e);
    int rc = map_cluster(q, ci, &m, &e);
    if (rc == SP_OK && m.kind == CL_COMPRESSED)
        rc = decompress(q, ci, &m, &e);
    if (rc == SP_OK && (m.kind == CL_DATA || m.kind == CL_COMPRESSED) &&
        hits_l1(q, m.host, m.kind == CL_DATA ? q->cluster : m.csize))
        rc = bad_entry(q, ci, "data overlapping the L1 table", m.host, &e);
    if (rc != SP_OK)
        finding(f, &e);
}

/* Every allocated L2 entry (and compressed cluster: decoded), then the
 * backing file's own check. */
static int qcow2_check(struct sp_disk *d, void (*problem)(void *ctx, const char *msg), void *ctx,
                       struct sp_error *err)
{
    struct qcow2 *q = from_disk(d);
    struct findings f = {problem, ctx, 0};
    for (uint64_t ci = 0; ci < q->clusters; ci++) {
        if (q->l1[ci >> q->l2_bits] == 0) {
            ci |= (1ull << q->l2_bits) - 1; /* the whole table is unallocated */
            continue;
        }
        check_cluster(q, ci, &f);
    }
    if (f.count > QCOW_CHECK_FINDINGS_MAX) {
        char line[128];
        snprintf(line, sizeof line, "%s: %d more findings not listed", q->path, f.count - QCOW_CHECK_FINDINGS_MAX);
        problem(ctx, line);
    }
    struct sp_disk *b = q->backing;
    if (!b)
        return SP_OK;
    if (b->driver && b->driver->check)
        return b->driver->check(b, problem, ctx, err);
    uint64_t bytes;
    return sp_disk_data_bytes(b, &bytes, err);
}

static const char *const QCOW2_EXTENSIONS[] = {"qcow2", "qcow", NULL};

const struct sp_disk_driver sp_disk_driver_qcow2 = {
    .name = "qcow2",
    .extensions = QCOW2_EXTENSIONS,
    .probe = qcow2_probe,
    .open = qcow2_open,
    .layers = qcow2_layers,
    .check = qcow2_check,
};
