/* VMDK sparse extents (reference/ova.md section 3): the streamOptimized
 * writer, a forward-only stream reader and a random-access file reader.
 *
 * All on-disk fields are little-endian; offsets inside the image are in
 * 512-byte sectors. */
#include "disk/vmdk.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libdeflate.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "disk/driver.h"

#define VMDK_SECTOR 512u
#define VMDK_MAGIC 0x564d444bu            /* "KDMV" read as a little-endian u32 */
#define VMDK_VERSION_WRITE 3u             /* ESXi refuses streamOptimized version 1 */
#define VMDK_VERSION_MAX 3u               /* what qemu accepts too */
#define VMDK_GRAIN_SECTORS 128u           /* SP_VMDK_GRAIN / 512 */
#define VMDK_GTES 512u                    /* grain table entries per table: every writer */
#define VMDK_GTES_MAX 512u                /* qemu refuses more */
#define VMDK_DESC_SECTORS 20u             /* qemu and open-vmdk: room for VirtualBox to add keys */
#define VMDK_OVERHEAD (1u + VMDK_DESC_SECTORS)
#define VMDK_GD_AT_END UINT64_MAX
#define VMDK_COMPRESS_DEFLATE 1u
/* Largest grain we read: 128 KiB (256 sectors); every producer uses 64 KiB. */
#define VMDK_GRAIN_SECTORS_MAX 256u
/* A compressed grain may exceed its grain a little (65562 bytes seen for
 * 64 KiB); twice the grain is far above any deflate bound. */
#define VMDK_COMPRESSED_MAX(grain_bytes) (2u * (grain_bytes) + VMDK_SECTOR)
/* GT entries are u32 sectors: the stream cannot be longer than this. */
#define VMDK_MAX_SECTOR UINT32_MAX
#define VMDK_THREADS_MAX 64
#define VMDK_SLOTS_PER_THREAD 4
#define VMDK_PROGRESS_STEP (4u << 20)
/* next_extent stops its run here: each call reads at most this many grain
 * tables' worth (1 GiB = 32 tables of 64 KiB grains). */
#define VMDK_EXTENT_MAX (1ull << 30)

#define VMDK_FLAG_NEWLINE 0x1u
#define VMDK_FLAG_RGD 0x2u
#define VMDK_FLAG_ZERO_GTE 0x4u
#define VMDK_FLAG_COMPRESSED 0x10000u
#define VMDK_FLAG_MARKERS 0x20000u

#define VMDK_MARKER_EOS 0u
#define VMDK_MARKER_GT 1u
#define VMDK_MARKER_GD 2u
#define VMDK_MARKER_FOOTER 3u

#define VMDK_GRAIN_MARKER_LEN 12u         /* lba u64 + size u32 */

/* Header field offsets. */
#define H_MAGIC 0
#define H_VERSION 4
#define H_FLAGS 8
#define H_CAPACITY 12
#define H_GRAIN 20
#define H_DESC_OFF 28
#define H_DESC_SIZE 36
#define H_GTES 44
#define H_RGD 48
#define H_GD 56
#define H_OVERHEAD 64
#define H_UNCLEAN 72
#define H_NLCHECK 73
#define H_COMPRESS 77

static inline uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }
static inline void put_le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void put_le64(uint8_t *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t round_sector(uint64_t v) { return sp_div_round_up(v, VMDK_SECTOR) * VMDK_SECTOR; }

bool sp_vmdk_probe(const void *head, size_t len)
{
    return len >= 4 && le32(head) == VMDK_MAGIC;
}

/* ------------------------------------------------------------------ */
/* Header parsing, shared by both readers. */

struct vmdk_header {
    uint32_t version, flags, gtes;
    uint64_t capacity, grain, desc_off, desc_size, rgd, gd, overhead;
    uint16_t compress;
};

static int parse_header(const uint8_t *h, struct vmdk_header *hd, struct sp_error *err)
{
    if (le32(h + H_MAGIC) != VMDK_MAGIC)
        return sp_error_set(err, SP_EFORMAT, "not a sparse vmdk (bad magic)");
    hd->version = le32(h + H_VERSION);
    hd->flags = le32(h + H_FLAGS);
    hd->capacity = le64(h + H_CAPACITY);
    hd->grain = le64(h + H_GRAIN);
    hd->desc_off = le64(h + H_DESC_OFF);
    hd->desc_size = le64(h + H_DESC_SIZE);
    hd->gtes = le32(h + H_GTES);
    hd->rgd = le64(h + H_RGD);
    hd->gd = le64(h + H_GD);
    hd->overhead = le64(h + H_OVERHEAD);
    hd->compress = le16(h + H_COMPRESS);
    if (hd->version < 1 || hd->version > VMDK_VERSION_MAX)
        return sp_error_set(err, SP_EUNSUPPORTED, "sparse vmdk version %" PRIu32 " not supported", hd->version);
    if (!sp_is_pow2(hd->grain) || hd->grain > VMDK_GRAIN_SECTORS_MAX)
        return sp_error_set(err, SP_EFORMAT, "bad grain size %" PRIu64 " sectors", hd->grain);
    if (hd->gtes == 0 || hd->gtes > VMDK_GTES_MAX)
        return sp_error_set(err, SP_EFORMAT, "bad grain table size %" PRIu32, hd->gtes);
    /* Byte offsets of the disk must fit a u64. */
    if (hd->capacity > UINT64_MAX / VMDK_SECTOR - hd->grain)
        return sp_error_set(err, SP_EFORMAT, "bad capacity %" PRIu64 " sectors", hd->capacity);
    if ((hd->flags & VMDK_FLAG_COMPRESSED) && hd->compress != VMDK_COMPRESS_DEFLATE)
        return sp_error_set(err, SP_EUNSUPPORTED, "compression algorithm %u not supported", hd->compress);
    return SP_OK;
}

/* ------------------------------------------------------------------ */
/* Writer */

static void build_header(uint8_t *h, uint64_t capacity, uint64_t gd)
{
    memset(h, 0, VMDK_SECTOR);
    put_le32(h + H_MAGIC, VMDK_MAGIC);
    put_le32(h + H_VERSION, VMDK_VERSION_WRITE);
    put_le32(h + H_FLAGS, VMDK_FLAG_NEWLINE | VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS);
    put_le64(h + H_CAPACITY, capacity);
    put_le64(h + H_GRAIN, VMDK_GRAIN_SECTORS);
    put_le64(h + H_DESC_OFF, 1);
    put_le64(h + H_DESC_SIZE, VMDK_DESC_SECTORS);
    put_le32(h + H_GTES, VMDK_GTES);
    put_le64(h + H_RGD, 0);
    put_le64(h + H_GD, gd);
    put_le64(h + H_OVERHEAD, VMDK_OVERHEAD);
    h[H_UNCLEAN] = 0;
    memcpy(h + H_NLCHECK, "\n \r\n", 4);
    put_le16(h + H_COMPRESS, VMDK_COMPRESS_DEFLATE);
}

static void build_marker(uint8_t *m, uint64_t sectors, uint32_t type)
{
    memset(m, 0, VMDK_SECTOR);
    put_le64(m, sectors);
    put_le32(m + 8, 0);
    put_le32(m + 12, type);
}

static bool plain_token(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (const char *p = s; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

/* The embedded descriptor, NUL-padded to VMDK_DESC_SECTORS. The CID is derived
 * from the capacity so that the same disk gives the same bytes. */
static int build_descriptor(uint8_t *d, uint64_t capacity, const char *adapter, const char *name,
                            struct sp_error *err)
{
    uint32_t cid = 2166136261u; /* FNV-1a over the capacity */
    for (int i = 0; i < 8; i++) {
        cid ^= (uint8_t)(capacity >> (8 * i));
        cid *= 16777619u;
    }
    if (cid >= 0xfffffffeu) /* ffffffff and fffffffe mean "no parent" / "invalid" */
        cid = 0x12345678u;
    bool ide = strcmp(adapter, "ide") == 0;
    uint64_t heads = ide ? 16 : 255, secs = 63, cyl_max = ide ? 16383 : 65535;
    uint64_t cyl = sp_min_u64(cyl_max, sp_div_round_up(capacity, heads * secs));
    size_t size = VMDK_DESC_SECTORS * VMDK_SECTOR;
    memset(d, 0, size);
    int n = snprintf((char *)d, size,
                     "# Disk DescriptorFile\n"
                     "version=1\n"
                     "encoding=\"UTF-8\"\n"
                     "CID=%08" PRIx32 "\n"
                     "parentCID=ffffffff\n"
                     "createType=\"streamOptimized\"\n"
                     "\n"
                     "# Extent description\n"
                     "RW %" PRIu64 " SPARSE \"%s\"\n"
                     "\n"
                     "# The Disk Data Base\n"
                     "#DDB\n"
                     "\n"
                     "ddb.virtualHWVersion = \"4\"\n"
                     "ddb.geometry.cylinders = \"%" PRIu64 "\"\n"
                     "ddb.geometry.heads = \"%" PRIu64 "\"\n"
                     "ddb.geometry.sectors = \"%" PRIu64 "\"\n"
                     "ddb.adapterType = \"%s\"\n"
                     "ddb.toolsVersion = \"2147483647\"\n",
                     cid, capacity, name, cyl, heads, secs, adapter);
    if (n < 0 || (size_t)n >= size)
        return sp_error_set(err, SP_EINVAL, "vmdk descriptor too long");
    return SP_OK;
}

enum slot_state { SLOT_FREE, SLOT_PENDING, SLOT_BUSY, SLOT_DONE };

struct wslot {
    uint8_t *in;        /* one grain, zero-padded */
    uint8_t *out;       /* grain marker + zlib data + sector padding */
    size_t out_len;     /* 0: compression failed */
    uint64_t grain;
    enum slot_state state;
};

struct writer {
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    struct wslot *slots;
    unsigned nslots;
    uint64_t head, tail, next_job; /* sequence numbers: oldest, next to fill, next to compress */
    bool stop;
    size_t out_cap;
    struct libdeflate_compressor **comp;
    int nthreads;

    sp_vmdk_out out;
    void *ctx;
    uint64_t pos;                  /* bytes written so far */
    uint32_t *gd;
    uint64_t ngt;
    uint32_t gt[VMDK_GTES];
    uint64_t cur_gt;               /* UINT64_MAX: none */
};

struct worker_arg {
    struct writer *w;
    struct libdeflate_compressor *c;
};

static void *worker_main(void *p)
{
    struct worker_arg *a = p;
    struct writer *w = a->w;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stop && w->next_job == w->tail)
            pthread_cond_wait(&w->cv_work, &w->mu);
        if (w->next_job == w->tail) /* stop and nothing left */
            break;
        struct wslot *s = &w->slots[w->next_job % w->nslots];
        w->next_job++;
        s->state = SLOT_BUSY;
        pthread_mutex_unlock(&w->mu);

        size_t c = libdeflate_zlib_compress(a->c, s->in, SP_VMDK_GRAIN, s->out + VMDK_GRAIN_MARKER_LEN,
                                            w->out_cap - VMDK_GRAIN_MARKER_LEN);
        size_t len = 0;
        if (c != 0) {
            put_le64(s->out, s->grain * VMDK_GRAIN_SECTORS);
            put_le32(s->out + 8, (uint32_t)c);
            len = (size_t)round_sector(VMDK_GRAIN_MARKER_LEN + c);
            memset(s->out + VMDK_GRAIN_MARKER_LEN + c, 0, len - VMDK_GRAIN_MARKER_LEN - c);
        }

        pthread_mutex_lock(&w->mu);
        s->out_len = len;
        s->state = SLOT_DONE;
        pthread_cond_broadcast(&w->cv_done);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static int w_emit(struct writer *w, const void *buf, size_t len, struct sp_error *err)
{
    int rc = w->out(w->ctx, buf, len, err);
    if (rc != SP_OK)
        return rc;
    w->pos += len;
    return SP_OK;
}

static int w_sector_now(struct writer *w, uint32_t *sector, struct sp_error *err)
{
    uint64_t s = w->pos / VMDK_SECTOR;
    if (s > VMDK_MAX_SECTOR)
        return sp_error_set(err, SP_ELIMIT, "vmdk stream longer than 2 TiB: grain table offsets overflow");
    *sector = (uint32_t)s;
    return SP_OK;
}

static int w_flush_gt(struct writer *w, struct sp_error *err)
{
    if (w->cur_gt == UINT64_MAX)
        return SP_OK;
    uint8_t m[VMDK_SECTOR];
    uint8_t t[VMDK_GTES * 4];
    uint32_t sector = 0;
    build_marker(m, sizeof t / VMDK_SECTOR, VMDK_MARKER_GT);
    int rc = w_emit(w, m, sizeof m, err);
    if (rc == SP_OK)
        rc = w_sector_now(w, &sector, err);
    if (rc != SP_OK)
        return rc;
    for (unsigned i = 0; i < VMDK_GTES; i++)
        put_le32(t + 4 * i, w->gt[i]);
    rc = w_emit(w, t, sizeof t, err);
    if (rc != SP_OK)
        return rc;
    w->gd[w->cur_gt] = sector;
    w->cur_gt = UINT64_MAX;
    return SP_OK;
}

/* Writes the oldest slot (waiting for its compression) and frees it. */
static int w_emit_head(struct writer *w, struct sp_error *err)
{
    struct wslot *s = &w->slots[w->head % w->nslots];
    pthread_mutex_lock(&w->mu);
    while (s->state != SLOT_DONE)
        pthread_cond_wait(&w->cv_done, &w->mu);
    pthread_mutex_unlock(&w->mu);
    if (s->out_len == 0)
        return sp_error_set(err, SP_EINVAL, "grain %" PRIu64 ": compression failed", s->grain);
    uint64_t gti = s->grain / VMDK_GTES;
    int rc = SP_OK;
    if (w->cur_gt != gti) {
        rc = w_flush_gt(w, err);
        if (rc != SP_OK)
            return rc;
        memset(w->gt, 0, sizeof w->gt);
        w->cur_gt = gti;
    }
    uint32_t sector = 0;
    rc = w_sector_now(w, &sector, err);
    if (rc != SP_OK)
        return rc;
    w->gt[s->grain % VMDK_GTES] = sector;
    rc = w_emit(w, s->out, s->out_len, err);
    if (rc != SP_OK)
        return rc;
    pthread_mutex_lock(&w->mu);
    s->state = SLOT_FREE;
    w->head++;
    pthread_mutex_unlock(&w->mu);
    return SP_OK;
}

/* Fills buf with grain g of src (zeros past the end and in ZERO extents).
 * *skip_to is set past a ZERO extent that covers the whole grain. */
static int read_grain(struct sp_disk *src, uint64_t g, uint8_t *buf, uint64_t *data_bytes, uint64_t *skip_to,
                      struct sp_error *err)
{
    uint64_t off = g * SP_VMDK_GRAIN, end = sp_min_u64(off + SP_VMDK_GRAIN, src->size);
    *skip_to = 0;
    *data_bytes = 0;
    if (end - off < SP_VMDK_GRAIN)
        memset(buf + (end - off), 0, SP_VMDK_GRAIN - (end - off));
    uint64_t p = off;
    while (p < end) {
        struct sp_extent e;
        int rc = sp_disk_next_extent(src, p, &e, err);
        if (rc != SP_OK)
            return rc;
        if (e.len == 0)
            return sp_error_set(err, SP_EINVAL, "%s: empty extent at %" PRIu64, src->path ? src->path : "disk", p);
        uint64_t n = sp_min_u64(e.len, end - p);
        if (e.kind == SP_EXTENT_ZERO) {
            if (p == off && e.len >= end - off) {
                *skip_to = p + e.len;
                return SP_OK;
            }
            memset(buf + (p - off), 0, n);
        } else {
            rc = sp_disk_read(src, p, buf + (p - off), n, err);
            if (rc != SP_OK)
                return rc;
            *data_bytes += n;
        }
        p += n;
    }
    return SP_OK;
}

static int write_stream(struct writer *w, struct sp_disk *src, uint64_t capacity, const char *adapter,
                        const char *name, const uint64_t *known_data, const struct sp_progress *prog,
                        struct sp_error *err)
{
    uint8_t sec[VMDK_SECTOR];
    uint8_t *desc = sp_alloc(VMDK_DESC_SECTORS * VMDK_SECTOR, err);
    if (!desc)
        return SP_ENOMEM;
    build_header(sec, capacity, VMDK_GD_AT_END);
    int rc = build_descriptor(desc, capacity, adapter, name, err);
    if (rc == SP_OK)
        rc = w_emit(w, sec, sizeof sec, err);
    if (rc == SP_OK)
        rc = w_emit(w, desc, VMDK_DESC_SECTORS * VMDK_SECTOR, err);
    free(desc);
    if (rc != SP_OK)
        return rc;

    uint64_t total_data = 0, done = 0, reported = 0;
    if (prog && prog->update) {
        if (known_data)
            total_data = *known_data;
        else if ((rc = sp_disk_data_bytes(src, &total_data, err)) != SP_OK)
            return rc;
        prog->update(prog->ctx, 0, total_data);
    }
    uint64_t ngrains = sp_div_round_up(src->size, SP_VMDK_GRAIN);
    for (uint64_t g = 0; g < ngrains;) {
        if (w->tail - w->head == w->nslots) {
            rc = w_emit_head(w, err);
            if (rc != SP_OK)
                return rc;
        }
        struct wslot *s = &w->slots[w->tail % w->nslots];
        uint64_t got, skip_to;
        rc = read_grain(src, g, s->in, &got, &skip_to, err);
        if (rc != SP_OK)
            return rc;
        done += got;
        if (prog && prog->update && done - reported >= VMDK_PROGRESS_STEP) {
            prog->update(prog->ctx, done, total_data);
            reported = done;
        }
        if (skip_to) {
            /* the grain holding the end of the ZERO run; a run to the end
             * of a disk that ends inside a grain ends the disk */
            g = skip_to >= src->size ? ngrains : skip_to / SP_VMDK_GRAIN;
            continue;
        }
        if (!sp_is_zero(s->in, SP_VMDK_GRAIN)) {
            pthread_mutex_lock(&w->mu);
            s->grain = g;
            s->state = SLOT_PENDING;
            w->tail++;
            pthread_cond_signal(&w->cv_work);
            pthread_mutex_unlock(&w->mu);
        }
        g++;
    }
    while (w->head != w->tail) {
        rc = w_emit_head(w, err);
        if (rc != SP_OK)
            return rc;
    }
    rc = w_flush_gt(w, err);
    if (rc != SP_OK)
        return rc;

    /* Grain directory, footer, end of stream. */
    uint64_t gd_bytes = round_sector(w->ngt * 4);
    build_marker(sec, gd_bytes / VMDK_SECTOR, VMDK_MARKER_GD);
    rc = w_emit(w, sec, sizeof sec, err);
    uint32_t gd_sector = 0;
    if (rc == SP_OK)
        rc = w_sector_now(w, &gd_sector, err);
    if (rc != SP_OK)
        return rc;
    uint8_t *gd = sp_zalloc(gd_bytes, err);
    if (!gd)
        return SP_ENOMEM;
    for (uint64_t i = 0; i < w->ngt; i++)
        put_le32(gd + 4 * i, w->gd[i]);
    rc = w_emit(w, gd, gd_bytes, err);
    free(gd);
    if (rc != SP_OK)
        return rc;
    build_marker(sec, 1, VMDK_MARKER_FOOTER);
    rc = w_emit(w, sec, sizeof sec, err);
    if (rc != SP_OK)
        return rc;
    build_header(sec, capacity, gd_sector);
    rc = w_emit(w, sec, sizeof sec, err);
    if (rc != SP_OK)
        return rc;
    build_marker(sec, 0, VMDK_MARKER_EOS);
    rc = w_emit(w, sec, sizeof sec, err);
    if (rc == SP_OK && prog && prog->update)
        prog->update(prog->ctx, done, total_data);
    return rc;
}

int sp_vmdk_write_stream(struct sp_disk *src, const struct sp_vmdk_write_opts *o, sp_vmdk_out out, void *ctx,
                         const struct sp_progress *prog, uint64_t *total, struct sp_error *err)
{
    int threads = o && o->threads > 0 ? o->threads : 0;
    int level = o && o->level > 0 ? o->level : 6;
    const char *adapter = o && o->adapter ? o->adapter : "lsilogic";
    const char *name = o && o->name ? o->name : "disk.vmdk";
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    if (threads > VMDK_THREADS_MAX)
        threads = VMDK_THREADS_MAX;
    if (level < 1 || level > 12)
        return sp_error_set(err, SP_EINVAL, "vmdk: deflate level %d out of range 1..12", level);
    if (!plain_token(adapter, 32))
        return sp_error_set(err, SP_EINVAL, "vmdk: bad adapter type");
    if (!plain_token(name, 255) || strchr(name, '/'))
        return sp_error_set(err, SP_EINVAL, "vmdk: bad extent file name");
    if (src->size % VMDK_SECTOR)
        return sp_error_set(err, SP_EINVAL, "vmdk: disk size %" PRIu64 " is not a multiple of 512", src->size);
    uint64_t capacity = src->size / VMDK_SECTOR;
    uint64_t ngrains = sp_div_round_up(src->size, SP_VMDK_GRAIN);

    struct writer *w = sp_zalloc(sizeof *w, err);
    if (!w)
        return SP_ENOMEM;
    int rc = SP_OK;
    pthread_t *tids = NULL;
    struct worker_arg *args = NULL;
    int started = 0;
    bool sync_init = false;
    w->out = out;
    w->ctx = ctx;
    w->cur_gt = UINT64_MAX;
    w->ngt = sp_div_round_up(ngrains, VMDK_GTES);
    w->nthreads = threads;
    w->nslots = (unsigned)threads * VMDK_SLOTS_PER_THREAD;
    w->gd = sp_zalloc((size_t)(w->ngt ? w->ngt : 1) * sizeof *w->gd, err);
    w->slots = sp_zalloc(w->nslots * sizeof *w->slots, err);
    w->comp = sp_zalloc((size_t)threads * sizeof *w->comp, err);
    tids = sp_zalloc((size_t)threads * sizeof *tids, err);
    args = sp_zalloc((size_t)threads * sizeof *args, err);
    if (!w->gd || !w->slots || !w->comp || !tids || !args) {
        rc = SP_ENOMEM;
        goto out;
    }
    for (int i = 0; i < threads; i++) {
        w->comp[i] = libdeflate_alloc_compressor(level);
        if (!w->comp[i]) {
            rc = sp_error_set(err, SP_ENOMEM, "vmdk: cannot allocate a deflate compressor");
            goto out;
        }
    }
    w->out_cap = (size_t)round_sector(VMDK_GRAIN_MARKER_LEN + libdeflate_zlib_compress_bound(w->comp[0], SP_VMDK_GRAIN));
    for (unsigned i = 0; i < w->nslots; i++) {
        w->slots[i].in = sp_alloc(SP_VMDK_GRAIN, err);
        w->slots[i].out = sp_alloc(w->out_cap, err);
        if (!w->slots[i].in || !w->slots[i].out) {
            rc = SP_ENOMEM;
            goto out;
        }
    }
    if (pthread_mutex_init(&w->mu, NULL) != 0) {
        rc = sp_error_set(err, SP_ENOMEM, "vmdk: cannot create a mutex");
        goto out;
    }
    if (pthread_cond_init(&w->cv_work, NULL) != 0) {
        pthread_mutex_destroy(&w->mu);
        rc = sp_error_set(err, SP_ENOMEM, "vmdk: cannot create a condition variable");
        goto out;
    }
    if (pthread_cond_init(&w->cv_done, NULL) != 0) {
        pthread_cond_destroy(&w->cv_work);
        pthread_mutex_destroy(&w->mu);
        rc = sp_error_set(err, SP_ENOMEM, "vmdk: cannot create a condition variable");
        goto out;
    }
    sync_init = true;
    for (int i = 0; i < threads; i++) {
        args[i].w = w;
        args[i].c = w->comp[i];
        int e = pthread_create(&tids[i], NULL, worker_main, &args[i]);
        if (e != 0) {
            rc = sp_error_errno(err, e, "vmdk: cannot start a compression thread");
            goto out;
        }
        started++;
    }

    rc = write_stream(w, src, capacity, adapter, name, o ? o->data_bytes : NULL, prog, err);

out:
    if (sync_init) {
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        /* On an error, drop the jobs nobody has taken yet. */
        if (rc != SP_OK)
            w->tail = w->next_job;
        pthread_cond_broadcast(&w->cv_work);
        pthread_mutex_unlock(&w->mu);
        for (int i = 0; i < started; i++)
            pthread_join(tids[i], NULL);
        pthread_cond_destroy(&w->cv_done);
        pthread_cond_destroy(&w->cv_work);
        pthread_mutex_destroy(&w->mu);
    }
    if (w->comp)
        for (int i = 0; i < threads; i++)
            libdeflate_free_compressor(w->comp[i]);
    if (w->slots)
        for (unsigned i = 0; i < w->nslots; i++) {
            free(w->slots[i].in);
            free(w->slots[i].out);
        }
    if (rc == SP_OK && total)
        *total = w->pos;
    free(w->slots);
    free(w->comp);
    free(w->gd);
    free(tids);
    free(args);
    free(w);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Forward-only stream reader */

struct stream {
    sp_vmdk_in in;
    void *ctx;
    uint64_t pos;
};

/* Reads exactly len bytes; *eof set (and SP_OK) when the input ends before
 * the first byte; ending in the middle is "truncated". */
static int s_read(struct stream *s, void *buf, size_t len, bool *eof, struct sp_error *err)
{
    size_t done = 0;
    if (eof)
        *eof = false;
    while (done < len) {
        size_t got = 0;
        int rc = s->in(s->ctx, (uint8_t *)buf + done, len - done, &got, err);
        if (rc != SP_OK)
            return rc;
        if (got == 0) {
            if (done == 0 && eof) {
                *eof = true;
                return SP_OK;
            }
            return sp_error_set(err, SP_EFORMAT, "vmdk stream truncated at byte %" PRIu64, s->pos + done);
        }
        done += got;
    }
    s->pos += len;
    return SP_OK;
}

static int s_skip_sectors(struct stream *s, uint64_t n, uint8_t *scratch, struct sp_error *err)
{
    for (uint64_t i = 0; i < n; i++) {
        int rc = s_read(s, scratch, VMDK_SECTOR, NULL, err);
        if (rc != SP_OK)
            return rc;
    }
    return SP_OK;
}

/* Metadata of the spec layout (gdOffset GD_AT_END, what our writer and
 * VirtualBox write): { grains of one table, GT marker + table } ..., GD
 * marker + directory, footer marker + footer, EOS. File readers (qemu,
 * VMware, XO) find grains through the directory and the tables, this reader
 * through the grain markers; the checks below make both see the same disk.
 * Memory stays bounded: the marker sectors of one table's grains, and one
 * u32 per table of the disk for the directory (none past VMDK_GD_CHECK_MAX).
 * Layouts with the tables at the front (qemu-img, vmdk-convert) and Xen
 * Orchestra's (all grains, then all tables behind a marker without length)
 * are not checked, apart from the grain order. */

/* Past this many grain tables the directory is not checked: 4 Mi tables of
 * 512 64 KiB grains is 128 TiB of disk and 16 MiB of table sectors. */
#define VMDK_GD_CHECK_MAX (4u << 20)
#define VMDK_NONE UINT64_MAX

enum scheck_phase { PH_TABLES, PH_AFTER_GD, PH_AFTER_FOOTER };

struct scheck {
    const struct vmdk_header *hd;
    bool on;                         /* spec layout: check the metadata */
    bool any_grain;
    uint64_t prev_lba;
    uint64_t run_gt;                 /* table of the grains since the last GT; VMDK_NONE: no grains */
    bool run_mixed;                  /* grains of several tables since the last GT */
    uint64_t closed_gt;              /* last table whose GT was checked; VMDK_NONE: none */
    uint64_t marker[VMDK_GTES_MAX];  /* stream sector of each grain marker of run_gt; 0: none */
    uint64_t ngt, tables;            /* tables of the disk, GT markers seen */
    uint32_t *gt_at;                 /* per table: sector of its GT, 0: none; NULL: directory not checked */
    uint32_t *empty_at;              /* sectors of the GTs without grains, ascending */
    size_t nempty, empty_cap;
    uint64_t gd_at;                  /* sector of the directory */
    enum scheck_phase phase;
};

static int sc_init(struct scheck *c, const struct vmdk_header *hd, struct sp_error *err)
{
    memset(c, 0, sizeof *c);
    c->hd = hd;
    c->on = hd->gd == VMDK_GD_AT_END;
    c->run_gt = VMDK_NONE;
    c->closed_gt = VMDK_NONE;
    c->ngt = sp_div_round_up(sp_div_round_up(hd->capacity, hd->grain), hd->gtes);
    if (c->on && c->ngt <= VMDK_GD_CHECK_MAX) {
        c->gt_at = sp_zalloc((size_t)(c->ngt ? c->ngt : 1) * sizeof *c->gt_at, err);
        if (!c->gt_at)
            return SP_ENOMEM;
    }
    return SP_OK;
}

static void sc_free(struct scheck *c)
{
    free(c->gt_at);
    free(c->empty_at);
}

/* The grains since the last GT must be covered by a GT before metadata
 * other than a GT (or Xen Orchestra's marker without length) follows. */
static int sc_run_closed(const struct scheck *c, struct sp_error *err)
{
    if (c->run_mixed)
        return sp_error_set(err, SP_EFORMAT, "vmdk: grains of grain table %" PRIu64
                            " and later tables not followed by their grain tables", c->run_gt);
    if (c->run_gt != VMDK_NONE)
        return sp_error_set(err, SP_EFORMAT, "vmdk: grains of grain table %" PRIu64
                            " not followed by their grain table", c->run_gt);
    return SP_OK;
}

/* A grain marker at byte at: grains ascend (VirtualBox requires it, and a
 * second grain for one lba would be seen by one reader and not the other). */
static int sc_grain(struct scheck *c, uint64_t at, uint64_t lba, struct sp_error *err)
{
    if (c->any_grain && lba <= c->prev_lba)
        return sp_error_set(err, SP_EFORMAT, "vmdk: grain at byte %" PRIu64 ": lba %" PRIu64 " after lba %" PRIu64
                            ": grains out of order", at, lba, c->prev_lba);
    c->any_grain = true;
    c->prev_lba = lba;
    if (!c->on)
        return SP_OK;
    if (c->phase != PH_TABLES)
        return sp_error_set(err, SP_EFORMAT, "vmdk: grain at byte %" PRIu64 " after the grain directory", at);
    uint64_t g = lba / c->hd->grain, t = g / c->hd->gtes;
    if (c->closed_gt != VMDK_NONE && t <= c->closed_gt)
        return sp_error_set(err, SP_EFORMAT, "vmdk: grain at lba %" PRIu64 " after grain table %" PRIu64
                            " that covers it", lba, c->closed_gt);
    if (c->run_gt == VMDK_NONE)
        c->run_gt = t;
    else if (c->run_gt != t)
        c->run_mixed = true; /* Xen Orchestra: fine if its marker without length follows */
    c->marker[g % c->hd->gtes] = at / VMDK_SECTOR;
    return SP_OK;
}

/* A GT marker at byte at with a length: the table that follows covers the
 * grains just seen (writers omit tables without grains; one that follows no
 * grains must be empty). Entries can only point backwards. */
static int sc_gt(struct scheck *c, struct stream *s, uint64_t at, uint64_t len, struct sp_error *err)
{
    uint8_t t[VMDK_GTES_MAX * 4];
    size_t bytes = (size_t)c->hd->gtes * 4;
    uint64_t sectors = sp_div_round_up(bytes, VMDK_SECTOR);
    uint64_t msec = at / VMDK_SECTOR, tsec = msec + 1;
    if (c->phase != PH_TABLES)
        return sp_error_set(err, SP_EFORMAT, "vmdk: grain table at byte %" PRIu64 " after the grain directory", at);
    if (len != sectors)
        return sp_error_set(err, SP_EFORMAT, "vmdk: grain table marker at byte %" PRIu64 ": %" PRIu64
                            " sectors, a table has %" PRIu64, at, len, sectors);
    if (c->run_mixed)
        return sc_run_closed(c, err);
    if (++c->tables > c->ngt)
        return sp_error_set(err, SP_EFORMAT, "vmdk: more grain tables than the disk has (%" PRIu64 ")", c->ngt);
    int rc = s_read(s, t, (size_t)sectors * VMDK_SECTOR, NULL, err);
    if (rc != SP_OK)
        return rc;
    char name[64];
    if (c->run_gt != VMDK_NONE)
        snprintf(name, sizeof name, "grain table %" PRIu64, c->run_gt);
    else
        snprintf(name, sizeof name, "grain table at sector %" PRIu64 " (no grains before it)", tsec);
    for (uint32_t i = 0; i < c->hd->gtes; i++) {
        uint32_t e = le32(t + 4 * i);
        uint64_t want = c->run_gt != VMDK_NONE ? c->marker[i] : 0;
        if (e == want)
            continue;
        if (e >= msec)
            return sp_error_set(err, SP_EFORMAT, "vmdk: %s entry %" PRIu32 " points past the end", name, i);
        if (e == 0)
            return sp_error_set(err, SP_EFORMAT, "vmdk: %s entry %" PRIu32 " is empty, grain marker is at %" PRIu64,
                                name, i, want);
        if (want == 0)
            return sp_error_set(err, SP_EFORMAT, "vmdk: %s entry %" PRIu32 " points at sector %" PRIu32
                                ", the stream has no such grain", name, i, e);
        return sp_error_set(err, SP_EFORMAT, "vmdk: %s entry %" PRIu32 " points at sector %" PRIu32
                            ", grain marker is at %" PRIu64, name, i, e, want);
    }
    if (tsec > UINT32_MAX)
        return sp_error_set(err, SP_EFORMAT, "vmdk: grain table at sector %" PRIu64
                            " beyond what a grain directory can address", tsec);
    if (c->run_gt != VMDK_NONE) {
        if (c->gt_at)
            c->gt_at[c->run_gt] = (uint32_t)tsec;
        c->closed_gt = c->run_gt;
        c->run_gt = VMDK_NONE;
        memset(c->marker, 0, sizeof c->marker);
    } else if (c->gt_at) {
        if (c->nempty == c->empty_cap) { /* at most ngt: tables are counted above */
            size_t cap = c->empty_cap ? 2 * c->empty_cap : 16;
            uint32_t *p = realloc(c->empty_at, cap * sizeof *p);
            if (!p)
                return sp_error_set(err, SP_ENOMEM, "out of memory");
            c->empty_at = p;
            c->empty_cap = cap;
        }
        c->empty_at[c->nempty++] = (uint32_t)tsec;
    }
    return SP_OK;
}

static bool sc_is_empty_gt(const struct scheck *c, uint32_t sector)
{
    size_t lo = 0, hi = c->nempty;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->empty_at[mid] == sector)
            return true;
        if (c->empty_at[mid] < sector)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* A GD marker at byte at with a length: entry i is the GT seen for table i,
 * or 0 or a GT without grains for a table that had none. */
static int sc_gd(struct scheck *c, struct stream *s, uint64_t at, uint64_t len, uint8_t *sec,
                 struct sp_error *err)
{
    if (c->phase != PH_TABLES)
        return sp_error_set(err, SP_EFORMAT, "vmdk: second grain directory at byte %" PRIu64, at);
    int rc = sc_run_closed(c, err);
    if (rc != SP_OK)
        return rc;
    uint64_t need = sp_div_round_up(c->ngt * 4, VMDK_SECTOR);
    if (len < need)
        return sp_error_set(err, SP_EFORMAT, "vmdk: grain directory at byte %" PRIu64 ": %" PRIu64
                            " sectors for %" PRIu64 " tables", at, len, c->ngt);
    uint64_t msec = at / VMDK_SECTOR;
    c->gd_at = msec + 1;
    c->phase = PH_AFTER_GD;
    if (!c->gt_at)
        return s_skip_sectors(s, len, sec, err);
    for (uint64_t j = 0; j < len; j++) {
        rc = s_read(s, sec, VMDK_SECTOR, NULL, err);
        if (rc != SP_OK)
            return rc;
        for (uint64_t k = 0; k < VMDK_SECTOR / 4; k++) {
            uint64_t i = j * (VMDK_SECTOR / 4) + k;
            if (i >= c->ngt)
                break;
            uint32_t e = le32(sec + 4 * k), want = c->gt_at[i];
            if (e == want)
                continue;
            if (want && e == 0)
                return sp_error_set(err, SP_EFORMAT, "vmdk: grain directory entry %" PRIu64
                                    " is empty, grain table %" PRIu64 " is at sector %" PRIu32, i, i, want);
            if (want)
                return sp_error_set(err, SP_EFORMAT, "vmdk: grain directory entry %" PRIu64 " points at sector %"
                                    PRIu32 ", grain table %" PRIu64 " is at sector %" PRIu32, i, e, i, want);
            if (e >= msec)
                return sp_error_set(err, SP_EFORMAT, "vmdk: grain directory entry %" PRIu64 " points past the end", i);
            if (!sc_is_empty_gt(c, e)) /* table i had no grains: 0 or an empty table */
                return sp_error_set(err, SP_EFORMAT, "vmdk: grain directory entry %" PRIu64 " points at sector %"
                                    PRIu32 ", not at an empty grain table", i, e);
        }
    }
    return SP_OK;
}

/* A footer marker at byte at: the footer repeats the header with the
 * directory's sector; file readers take it instead of the header. */
static int sc_footer(struct scheck *c, struct stream *s, uint64_t at, uint64_t len, uint8_t *sec,
                     struct sp_error *err)
{
    if (c->phase == PH_TABLES)
        return sp_error_set(err, SP_EFORMAT, "vmdk: footer at byte %" PRIu64 " before the grain directory", at);
    if (c->phase != PH_AFTER_GD)
        return sp_error_set(err, SP_EFORMAT, "vmdk: second footer at byte %" PRIu64, at);
    if (len != 1)
        return sp_error_set(err, SP_EFORMAT, "vmdk: footer marker at byte %" PRIu64 ": %" PRIu64
                            " sectors, expected 1", at, len);
    int rc = s_read(s, sec, VMDK_SECTOR, NULL, err);
    if (rc != SP_OK)
        return rc;
    struct vmdk_header f;
    rc = parse_header(sec, &f, err);
    if (rc != SP_OK)
        return sp_error_prefix(err, "vmdk footer");
    const struct vmdk_header *h = c->hd;
    if (f.version != h->version || f.flags != h->flags || f.capacity != h->capacity || f.grain != h->grain ||
        f.gtes != h->gtes || f.compress != h->compress)
        return sp_error_set(err, SP_EFORMAT, "vmdk: footer does not match the header");
    if (f.gd != c->gd_at)
        return sp_error_set(err, SP_EFORMAT, "vmdk: footer gdOffset %" PRIu64 ", grain directory is at sector %"
                            PRIu64, f.gd, c->gd_at);
    c->phase = PH_AFTER_FOOTER;
    return SP_OK;
}

static int sc_eos(const struct scheck *c, struct sp_error *err)
{
    if (!c->on || c->phase == PH_AFTER_FOOTER)
        return SP_OK;
    int rc = sc_run_closed(c, err);
    if (rc != SP_OK)
        return rc;
    return sp_error_set(err, SP_EFORMAT, "vmdk stream ends without %s",
                        c->phase == PH_TABLES ? "grain directory and footer" : "footer");
}

/* Grains inflate on worker threads, a batch at a time, while this thread
 * reads the next batch and hands the one before to the sink in stream
 * order (two batches in flight: memory stays bounded). */
#define DEC_BATCH 32
#define DEC_THREADS_MAX 8

struct dec_slot {
    uint8_t *c;                        /* marker + compressed grain */
    uint32_t csize;
    uint64_t lba;
    uint8_t *g;                        /* the grain, inflated */
    size_t n;
    enum libdeflate_result r;
};

struct dec_batch {
    struct dec_slot s[DEC_BATCH];
    int n;
};

struct dec_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    struct dec_batch *cur;             /* being inflated; NULL: none */
    int next, done;
    bool stop;
    int nthreads;
    pthread_t tids[DEC_THREADS_MAX];
    struct libdeflate_decompressor *dec[DEC_THREADS_MAX];
    size_t grain_bytes;
    struct dec_batch b[2];
};

struct dec_worker {
    struct dec_pool *p;
    int index;
};

static void *dec_main(void *arg)
{
    struct dec_pool *p = ((struct dec_worker *)arg)->p;
    int me = ((struct dec_worker *)arg)->index;
    free(arg);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && (!p->cur || p->next >= p->cur->n))
            pthread_cond_wait(&p->cv_work, &p->mu);
        if (p->stop)
            break;
        struct dec_slot *sl = &p->cur->s[p->next++];
        struct dec_batch *b = p->cur;
        pthread_mutex_unlock(&p->mu);
        sl->n = 0;
        sl->r = libdeflate_zlib_decompress(p->dec[me], sl->c + VMDK_GRAIN_MARKER_LEN, sl->csize, sl->g,
                                           p->grain_bytes, &sl->n);
        pthread_mutex_lock(&p->mu);
        if (++p->done == b->n)
            pthread_cond_signal(&p->cv_done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void dec_pool_free(struct dec_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->tids[i], NULL);
    for (int i = 0; i < DEC_THREADS_MAX; i++)
        if (p->dec[i])
            libdeflate_free_decompressor(p->dec[i]);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < DEC_BATCH; i++) {
            free(p->b[k].s[i].c);
            free(p->b[k].s[i].g);
        }
    pthread_cond_destroy(&p->cv_done);
    pthread_cond_destroy(&p->cv_work);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static int dec_pool_new(size_t grain_bytes, size_t cbytes, struct dec_pool **out, struct sp_error *err)
{
    struct dec_pool *p = sp_zalloc(sizeof *p, err);
    if (!p)
        return SP_ENOMEM;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    p->grain_bytes = grain_bytes;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int want = cores < 1 ? 1 : cores > DEC_THREADS_MAX ? DEC_THREADS_MAX : (int)cores;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < DEC_BATCH; i++) {
            p->b[k].s[i].c = malloc(cbytes);
            p->b[k].s[i].g = malloc(grain_bytes);
            if (!p->b[k].s[i].c || !p->b[k].s[i].g) {
                dec_pool_free(p);
                return sp_error_set(err, SP_ENOMEM, "out of memory (vmdk decoder)");
            }
        }
    for (int i = 0; i < want; i++) {
        struct dec_worker *wk = malloc(sizeof *wk);
        p->dec[i] = libdeflate_alloc_decompressor();
        if (!wk || !p->dec[i]) {
            free(wk);
            dec_pool_free(p);
            return sp_error_set(err, SP_ENOMEM, "vmdk: cannot allocate a decompressor");
        }
        wk->p = p;
        wk->index = i;
        if (pthread_create(&p->tids[i], NULL, dec_main, wk) != 0) {
            free(wk);
            dec_pool_free(p);
            return sp_error_set(err, SP_ENOMEM, "vmdk: cannot start a decoder thread");
        }
        p->nthreads = i + 1;
    }
    *out = p;
    return SP_OK;
}

static void dec_submit(struct dec_pool *p, struct dec_batch *b)
{
    pthread_mutex_lock(&p->mu);
    p->cur = b;
    p->next = p->done = 0;
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
}

static void dec_wait(struct dec_pool *p)
{
    pthread_mutex_lock(&p->mu);
    while (p->cur && p->done < p->cur->n)
        pthread_cond_wait(&p->cv_done, &p->mu);
    p->cur = NULL;
    pthread_mutex_unlock(&p->mu);
}

/* The inflated grains of b to the sink, in order; the first bad grain is
 * the error. */
static int dec_sink(struct dec_batch *b, uint64_t disk_bytes,
                    int (*sink)(void *ctx, uint64_t off, const void *data, size_t len), void *sink_ctx,
                    struct sp_error *err)
{
    for (int i = 0; i < b->n; i++) {
        struct dec_slot *sl = &b->s[i];
        if (sl->r != LIBDEFLATE_SUCCESS)
            return sp_error_set(err, SP_EFORMAT, "vmdk: grain at lba %" PRIu64 ": %s", sl->lba,
                                sl->r == LIBDEFLATE_INSUFFICIENT_SPACE ? "inflates past the grain size"
                                                                       : "corrupt compressed data");
        uint64_t off = sl->lba * VMDK_SECTOR;
        size_t len = (size_t)sp_min_u64(sl->n, disk_bytes - off);
        if (len) {
            int rc = sink(sink_ctx, off, sl->g, len);
            if (rc != SP_OK)
                return sp_error_set(err, rc < 0 ? rc : SP_EIO, "vmdk: grain at lba %" PRIu64 ": sink failed",
                                    sl->lba);
        }
    }
    b->n = 0;
    return SP_OK;
}

/* The reader's side of the two batches: fill[fi] gathers grains while the
 * other may be inflating. */
struct dec_run {
    struct dec_pool *p;
    int fi;                            /* the batch being filled */
    bool busy;                         /* the other one is with the workers */
    uint64_t disk_bytes;
    int (*sink)(void *ctx, uint64_t off, const void *data, size_t len);
    void *sink_ctx;
};

/* Waits for the batch with the workers and sinks it. */
static int dec_retire(struct dec_run *d, struct sp_error *err)
{
    if (!d->busy)
        return SP_OK;
    dec_wait(d->p);
    d->busy = false;
    return dec_sink(&d->p->b[1 - d->fi], d->disk_bytes, d->sink, d->sink_ctx, err);
}

/* Hands the filled batch to the workers (retiring the one before). */
static int dec_rotate(struct dec_run *d, struct sp_error *err)
{
    int rc = dec_retire(d, err);
    if (rc != SP_OK || d->p->b[d->fi].n == 0)
        return rc;
    dec_submit(d->p, &d->p->b[d->fi]);
    d->busy = true;
    d->fi = 1 - d->fi;
    return SP_OK;
}

/* Everything read so far inflated and sunk: before metadata, at the end,
 * and before an error found later in the stream is reported. */
static int dec_drain(struct dec_run *d, struct sp_error *err)
{
    int rc = dec_rotate(d, err);
    return rc != SP_OK ? rc : dec_retire(d, err);
}

int sp_vmdk_read_stream(sp_vmdk_in in, void *in_ctx,
                        int (*sink)(void *ctx, uint64_t off, const void *data, size_t len), void *sink_ctx,
                        uint64_t *capacity, struct sp_error *err)
{
    struct stream s = {in, in_ctx, 0};
    uint8_t sec[VMDK_SECTOR];
    struct vmdk_header hd;
    struct dec_run run = {NULL, 0, false, 0, sink, sink_ctx};
    bool sink_failed = false;
    struct scheck chk = {0};
    int rc = s_read(&s, sec, sizeof sec, NULL, err);
    if (rc != SP_OK)
        return sp_error_prefix(err, "vmdk header");
    rc = parse_header(sec, &hd, err);
    if (rc != SP_OK)
        return rc;
    if (!(hd.flags & VMDK_FLAG_COMPRESSED) || !(hd.flags & VMDK_FLAG_MARKERS))
        return sp_error_set(err, SP_EUNSUPPORTED,
                            "vmdk stream without compressed grains and markers: open it as a file");
    if (hd.overhead < 1)
        return sp_error_set(err, SP_EFORMAT, "vmdk: bad overhead %" PRIu64, hd.overhead);
    if (capacity)
        *capacity = hd.capacity;
    size_t grain_bytes = (size_t)hd.grain * VMDK_SECTOR;
    size_t cmax = VMDK_COMPRESSED_MAX(grain_bytes);
    bool need_eos = hd.gd == VMDK_GD_AT_END; /* the footer and EOS must follow */
    uint64_t disk_bytes = hd.capacity * VMDK_SECTOR;
    rc = sc_init(&chk, &hd, err);
    if (rc != SP_OK)
        goto out;
    run.disk_bytes = disk_bytes;
    rc = dec_pool_new(grain_bytes, (size_t)round_sector(VMDK_GRAIN_MARKER_LEN + cmax), &run.p, err);
    if (rc != SP_OK)
        goto out;
    /* Descriptor, and in qemu's and vmdk-convert's layouts the GD and GTs. */
    rc = s_skip_sectors(&s, hd.overhead - 1, sec, err);
    if (rc != SP_OK)
        goto out;
    for (;;) {
        bool eof;
        uint64_t at = s.pos;
        rc = s_read(&s, sec, sizeof sec, &eof, err);
        if (rc != SP_OK)
            goto out;
        if (eof) {
            if (need_eos)
                rc = sp_error_set(err, SP_EFORMAT, "vmdk stream truncated: no end-of-stream marker");
            goto out;
        }
        uint64_t val = le64(sec);
        uint32_t size = le32(sec + 8);
        uint32_t type = le32(sec + 12);
        if (chk.phase == PH_AFTER_FOOTER && !(size == 0 && val == 0 && type == VMDK_MARKER_EOS)) {
            /* qemu finds the footer at the end: only EOS may follow it */
            rc = sp_error_set(err, SP_EFORMAT, "vmdk: data after the footer at byte %" PRIu64, at);
            goto out;
        }
        if (size != 0) { /* a grain */
            if (size > cmax) {
                rc = sp_error_set(err, SP_EFORMAT, "vmdk: grain at byte %" PRIu64 ": compressed size %" PRIu32
                                  " too large", at, size);
                goto out;
            }
            if (val % hd.grain || val >= hd.capacity) {
                rc = sp_error_set(err, SP_EFORMAT, "vmdk: grain at byte %" PRIu64 ": bad lba %" PRIu64, at, val);
                goto out;
            }
            rc = sc_grain(&chk, at, val, err);
            if (rc != SP_OK)
                goto out;
            size_t total = (size_t)round_sector(VMDK_GRAIN_MARKER_LEN + size);
            struct dec_batch *b = &run.p->b[run.fi];
            struct dec_slot *sl = &b->s[b->n];
            memcpy(sl->c, sec, VMDK_SECTOR);
            if (total > VMDK_SECTOR) {
                rc = s_read(&s, sl->c + VMDK_SECTOR, total - VMDK_SECTOR, NULL, err);
                if (rc != SP_OK)
                    goto out;
            }
            sl->csize = size;
            sl->lba = val;
            if (++b->n == DEC_BATCH && (rc = dec_rotate(&run, err)) != SP_OK) {
                sink_failed = true;
                goto out;
            }
            continue;
        }
        if (type == VMDK_MARKER_EOS) {
            rc = sc_eos(&chk, err);
            goto out;
        }
        if (val == 0 && (type == VMDK_MARKER_GT || type == VMDK_MARKER_GD)) {
            /* Xen Orchestra writes all grains first, then metadata whose
             * markers carry no length: nothing after it is a grain. */
            goto out;
        }
        if (val > hd.capacity + UINT32_MAX) { /* more metadata than any disk has */
            rc = sp_error_set(err, SP_EFORMAT, "vmdk: marker at byte %" PRIu64 ": bad length", at);
            goto out;
        }
        if (chk.on && type == VMDK_MARKER_GT)
            rc = sc_gt(&chk, &s, at, val, err);
        else if (chk.on && type == VMDK_MARKER_GD)
            rc = sc_gd(&chk, &s, at, val, sec, err);
        else if (chk.on && type == VMDK_MARKER_FOOTER)
            rc = sc_footer(&chk, &s, at, val, sec, err);
        else /* front layouts' metadata, and unknown types such as 4 ("progress") */
            rc = s_skip_sectors(&s, val, sec, err);
        if (rc != SP_OK)
            goto out;
    }
out:
    /* The grains still in hand come before whatever ended the loop: their
     * error, if any, is the one to report. */
    if (run.p && !sink_failed) {
        struct sp_error derr;
        int drc = dec_drain(&run, &derr);
        if (drc != SP_OK) {
            *err = derr;
            rc = drc;
        }
    }
    dec_pool_free(run.p);
    sc_free(&chk);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Random-access file reader */

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

int sp_vmdk_open(const char *path, struct sp_disk **out, struct sp_error *err)
{
    struct vmdk_disk *v = sp_zalloc(sizeof *v, err);
    if (!v)
        return SP_ENOMEM;
    v->fd = -1;
    v->gt_index = UINT64_MAX;
    v->grain_index = UINT64_MAX;
    int rc = SP_OK;
    uint8_t h[VMDK_SECTOR];
    v->path = strdup(path);
    if (!v->path) {
        rc = sp_error_set(err, SP_ENOMEM, "out of memory");
        goto fail;
    }
    v->disk.ops = &VMDK_OPS;
    v->disk.path = v->path;
    v->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (v->fd < 0) {
        int e = errno;
        rc = sp_error_errno(err, e, "%s", path);
        if (e == ENOENT)
            rc = err->code = SP_ENOTFOUND;
        goto fail;
    }
    struct stat st;
    if (fstat(v->fd, &st) != 0) {
        rc = sp_error_errno(err, errno, "%s", path);
        goto fail;
    }
    v->file_size = (uint64_t)st.st_size;
    if (v->file_size < VMDK_SECTOR) {
        rc = sp_error_set(err, SP_EFORMAT, "%s: too short for a sparse vmdk", path);
        goto fail;
    }
    rc = sp_pread_full(v->fd, h, sizeof h, 0, "header", err);
    if (rc == SP_OK)
        rc = parse_header(h, &v->hd, err);
    if (rc != SP_OK)
        goto prefix;
    uint64_t gd = v->hd.gd;
    if (gd == VMDK_GD_AT_END) {
        /* streamOptimized: footer marker, footer, EOS are the last 3 sectors. */
        if (v->file_size < 4 * VMDK_SECTOR) {
            rc = sp_error_set(err, SP_EFORMAT, "grain directory at the end, but no footer");
            goto prefix;
        }
        uint8_t f[VMDK_SECTOR];
        struct vmdk_header fh;
        rc = sp_pread_full(v->fd, f, sizeof f, v->file_size - 2 * VMDK_SECTOR, "footer", err);
        if (rc == SP_OK)
            rc = parse_header(f, &fh, err);
        if (rc != SP_OK) {
            sp_error_prefix(err, "footer");
            goto prefix;
        }
        if (fh.capacity != v->hd.capacity || fh.grain != v->hd.grain || fh.gtes != v->hd.gtes) {
            rc = sp_error_set(err, SP_EFORMAT, "footer does not match the header");
            goto prefix;
        }
        gd = fh.gd;
        v->hd.flags = fh.flags;
    }
    v->disk.size = v->hd.capacity * VMDK_SECTOR;
    v->grain_bytes = (size_t)v->hd.grain * VMDK_SECTOR;
    v->ngrains = sp_div_round_up(v->hd.capacity, v->hd.grain);
    v->ngt = sp_div_round_up(v->ngrains, v->hd.gtes);
    /* The directory must lie in the file: that bounds its allocation. */
    if (gd == 0 || gd == VMDK_GD_AT_END || gd > v->file_size / VMDK_SECTOR ||
        v->ngt * 4 > v->file_size - gd * VMDK_SECTOR) {
        rc = sp_error_set(err, SP_EFORMAT, "grain directory (sector %" PRIu64 ", %" PRIu64
                          " entries) outside the file", gd, v->ngt);
        goto prefix;
    }
    v->gd = sp_alloc((size_t)(v->ngt ? v->ngt : 1) * 4, err);
    v->gt = sp_alloc((size_t)v->hd.gtes * 4, err);
    v->grain = sp_alloc(v->grain_bytes, err);
    v->cmax = VMDK_COMPRESSED_MAX(v->grain_bytes);
    v->cbuf = sp_alloc(VMDK_GRAIN_MARKER_LEN + v->cmax, err);
    v->dec = libdeflate_alloc_decompressor();
    if (!v->gd || !v->gt || !v->grain || !v->cbuf) {
        rc = SP_ENOMEM;
        goto fail;
    }
    if (!v->dec) {
        rc = sp_error_set(err, SP_ENOMEM, "cannot allocate a decompressor");
        goto fail;
    }
    if (v->ngt) {
        rc = sp_pread_full(v->fd, v->gd, (size_t)v->ngt * 4, gd * VMDK_SECTOR, "grain directory", err);
        if (rc != SP_OK)
            goto prefix;
        const uint8_t *raw = (const uint8_t *)v->gd;
        for (uint64_t i = 0; i < v->ngt; i++)
            v->gd[i] = le32(raw + 4 * i); /* in place: entry i reads bytes 4i.. before writing them */
    }
    *out = &v->disk;
    return SP_OK;
prefix:
    sp_error_prefix(err, "%s", path);
fail:
    vmdk_close(&v->disk);
    return rc;
}

/* ------------------------------------------------------------------ */
/* The driver */

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
