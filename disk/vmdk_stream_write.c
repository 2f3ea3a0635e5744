/* The streamOptimized VMDK writer (reference/ova.md section 3, "writer
 * plan"): grains compress in parallel on worker threads in a bounded ring
 * of slots while this thread reads the source and writes the results in
 * order, each grain table after its grains, then the directory, footer and
 * end-of-stream marker. */
#include <errno.h>
#include <inttypes.h>
#include <libdeflate.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cancel.h"
#include "disk/copy.h"
#include "disk/vmdk.h"
#include "disk/vmdk_internal.h"

#define VMDK_THREADS_MAX 64
#define VMDK_SLOTS_PER_THREAD 4
#define VMDK_PROGRESS_STEP (4u << 20)

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
    sp_vmdk_marker_build(m, sizeof t / VMDK_SECTOR, VMDK_MARKER_GT);
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
    sp_vmdk_header_build(sec, capacity, VMDK_GD_AT_END);
    int rc = sp_vmdk_descriptor_build(desc, capacity, adapter, name, err);
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
            /* the grain holding the end of the ZERO run; a run to the end of a
             * disk whose size is not whole grains ends inside the last one */
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
    sp_vmdk_marker_build(sec, gd_bytes / VMDK_SECTOR, VMDK_MARKER_GD);
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
    sp_vmdk_marker_build(sec, 1, VMDK_MARKER_FOOTER);
    rc = w_emit(w, sec, sizeof sec, err);
    if (rc != SP_OK)
        return rc;
    sp_vmdk_header_build(sec, capacity, gd_sector);
    rc = w_emit(w, sec, sizeof sec, err);
    if (rc != SP_OK)
        return rc;
    sp_vmdk_marker_build(sec, 0, VMDK_MARKER_EOS);
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
    if (!sp_vmdk_plain_token(adapter, 32))
        return sp_error_set(err, SP_EINVAL, "vmdk: bad adapter type");
    if (!sp_vmdk_plain_token(name, 255) || strchr(name, '/'))
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
        int e = sp_thread_start(&tids[i], worker_main, &args[i]);
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

