/* The forward-only streamOptimized VMDK reader (a tar member, a pipe): grain
 * markers give the data, grains inflate on worker threads, and in the spec
 * layout the grain tables, directory and footer are checked against the
 * grains seen so that file readers and this one see the same disk. */
#include <inttypes.h>
#include <libdeflate.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cancel.h"
#include "disk/vmdk.h"
#include "disk/vmdk_internal.h"


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
    rc = sp_vmdk_header_parse(sec, &f, err);
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
    size_t grain_bytes, cbytes;
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
    p->cbytes = cbytes;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int want = cores < 1 ? 1 : cores > DEC_THREADS_MAX ? DEC_THREADS_MAX : (int)cores;
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
        if (sp_thread_start(&p->tids[i], dec_main, wk) != 0) {
            free(wk);
            dec_pool_free(p);
            return sp_error_set(err, SP_ENOMEM, "vmdk: cannot start a decoder thread");
        }
        p->nthreads = i + 1;
    }
    *out = p;
    return SP_OK;
}

/* A slot's buffers are made when a grain first lands in it: a stream of a
 * few grains needs a few, not both batches' (up to 24 MiB for 128 KiB
 * grains). Once made, a slot keeps them for the batches after. */
static int dec_slot_ready(struct dec_pool *p, struct dec_slot *sl, struct sp_error *err)
{
    if (!sl->c)
        sl->c = malloc(p->cbytes);
    if (!sl->g)
        sl->g = malloc(p->grain_bytes);
    if (!sl->c || !sl->g)
        return sp_error_set(err, SP_ENOMEM, "out of memory (vmdk decoder)");
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
    rc = sp_vmdk_header_parse(sec, &hd, err);
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
            rc = dec_slot_ready(run.p, sl, err);
            if (rc != SP_OK)
                goto out;
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

