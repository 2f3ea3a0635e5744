/* Whole-stream gzip and zstd on every core (archive/par_compress.h).
 *
 * gzip: a ring of slots, each one block in and its gzip member out. This
 * thread fills the slot at tail, hands it to the workers when it is full,
 * and writes the oldest slot (head) once its member is ready and the ring
 * is full, or at the end: the output is in input order, and at most nslots
 * blocks exist at any time. */
#include "archive/par_compress.h"

#include <libdeflate.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "base/cancel.h"
#include "base/util.h"

/* A block whose samples all fail to shrink at level 1 (already compressed
 * data: media, archives, encrypted files, a third of the bench disk) is
 * stored rather than searched for matches that are not there: libdeflate
 * spends as long on such a block as on text (about 55 MB/s at level 6
 * here, where storing runs at 300 MB/s and more), for the same size. The
 * choice depends on the block's bytes alone: the output stays
 * deterministic. A sample that shrinks by 3 % or more means the block is
 * compressed in full. */
#define PCOMP_SAMPLES 4
#define PCOMP_SAMPLE (8u << 10)
#define PCOMP_SAMPLE_GAIN_PCT 3

enum slot_state { SLOT_FILLING, SLOT_PENDING, SLOT_DONE };

struct slot {
    uint8_t *in;
    uint8_t *out;
    size_t in_len;
    size_t out_len;        /* 0 after compression: it failed */
    enum slot_state state;
};

struct worker {
    struct sp_pcomp *pc;
    struct libdeflate_compressor *c;
    struct libdeflate_compressor *probe;   /* level 1, for the samples */
    struct libdeflate_compressor *store;   /* level 0: stored blocks */
    uint8_t scratch[PCOMP_SAMPLE];
};

struct sp_pcomp {
    enum sp_pcomp_kind kind;
    sp_pcomp_out out;
    void *ctx;
    bool failed, finished;
    /* gzip */
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    bool sync_init;
    bool stop;
    struct slot *slots;
    unsigned nslots;
    uint64_t head, tail, next_job;  /* sequence numbers: oldest, being filled, next to compress */
    size_t block, out_cap;
    struct worker *workers;
    pthread_t *tids;
    int nthreads, started;
    /* zstd */
    ZSTD_CCtx *zc;
    uint8_t *zbuf;
    size_t zbuf_cap;
};

int sp_pcomp_level_max(enum sp_pcomp_kind kind)
{
    return kind == SP_PCOMP_ZSTD ? SP_PCOMP_ZSTD_LEVEL_MAX : SP_PCOMP_GZIP_LEVEL_MAX;
}

static int thread_count(int asked)
{
    long n = asked > 0 ? asked : sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return n > SP_PCOMP_THREADS_MAX ? SP_PCOMP_THREADS_MAX : (int)n;
}

/* ---- gzip ---------------------------------------------------------------- */

/* True when every sample of the block stays within 3 % of its size. */
static bool incompressible(struct worker *wk, const uint8_t *p, size_t len)
{
    if (len < PCOMP_SAMPLES * PCOMP_SAMPLE)
        return false;
    size_t step = (len - PCOMP_SAMPLE) / (PCOMP_SAMPLES - 1);
    size_t keep = PCOMP_SAMPLE - PCOMP_SAMPLE * PCOMP_SAMPLE_GAIN_PCT / 100;
    for (unsigned i = 0; i < PCOMP_SAMPLES; i++) {
        /* 0: it did not fit in its own size */
        size_t n = libdeflate_deflate_compress(wk->probe, p + step * i, PCOMP_SAMPLE, wk->scratch, keep);
        if (n != 0)
            return false;
    }
    return true;
}

static void *gz_worker(void *p)
{
    struct worker *wk = p;
    struct sp_pcomp *pc = wk->pc;
    pthread_mutex_lock(&pc->mu);
    for (;;) {
        while (!pc->stop && pc->next_job == pc->tail)
            pthread_cond_wait(&pc->cv_work, &pc->mu);
        if (pc->next_job == pc->tail) /* stopped, nothing left */
            break;
        struct slot *s = &pc->slots[pc->next_job % pc->nslots];
        pc->next_job++;
        pthread_mutex_unlock(&pc->mu);
        struct libdeflate_compressor *c = incompressible(wk, s->in, s->in_len) ? wk->store : wk->c;
        size_t n = libdeflate_gzip_compress(c, s->in, s->in_len, s->out, pc->out_cap);
        pthread_mutex_lock(&pc->mu);
        s->out_len = n;
        s->state = SLOT_DONE;
        pthread_cond_broadcast(&pc->cv_done);
    }
    pthread_mutex_unlock(&pc->mu);
    return NULL;
}

/* The slot being filled goes to the workers. */
static void gz_submit(struct sp_pcomp *pc)
{
    pthread_mutex_lock(&pc->mu);
    pc->slots[pc->tail % pc->nslots].state = SLOT_PENDING;
    pc->tail++;
    pthread_cond_signal(&pc->cv_work);
    pthread_mutex_unlock(&pc->mu);
}

/* Waits for the oldest member, writes it and frees its slot. */
static int gz_emit_head(struct sp_pcomp *pc, struct sp_error *err)
{
    struct slot *s = &pc->slots[pc->head % pc->nslots];
    pthread_mutex_lock(&pc->mu);
    while (s->state != SLOT_DONE)
        pthread_cond_wait(&pc->cv_done, &pc->mu);
    pthread_mutex_unlock(&pc->mu);
    if (s->out_len == 0) /* the bound is libdeflate's own: cannot happen */
        return sp_error_set(err, SP_EIO, "gzip: a block did not compress into its bound");
    int rc = pc->out(pc->ctx, s->out, s->out_len, err);
    if (rc != SP_OK)
        return rc;
    s->in_len = 0;
    s->state = SLOT_FILLING;
    pc->head++;
    return SP_OK;
}

static int gz_write(struct sp_pcomp *pc, const uint8_t *p, size_t len, struct sp_error *err)
{
    while (len > 0) {
        if (pc->tail - pc->head == pc->nslots) {
            int rc = gz_emit_head(pc, err);
            if (rc != SP_OK)
                return rc;
        }
        struct slot *s = &pc->slots[pc->tail % pc->nslots];
        size_t n = pc->block - s->in_len < len ? pc->block - s->in_len : len;
        memcpy(s->in + s->in_len, p, n);
        s->in_len += n;
        p += n;
        len -= n;
        if (s->in_len == pc->block)
            gz_submit(pc);
    }
    return SP_OK;
}

static int gz_finish(struct sp_pcomp *pc, struct sp_error *err)
{
    /* the last, short block; or one empty member for an empty stream
     * (a file of no bytes is not gzip for gzip -t) */
    if (pc->tail - pc->head < pc->nslots && (pc->slots[pc->tail % pc->nslots].in_len > 0 || pc->tail == 0))
        gz_submit(pc);
    while (pc->head < pc->tail) {
        int rc = gz_emit_head(pc, err);
        if (rc != SP_OK)
            return rc;
    }
    return SP_OK;
}

static int gz_sync_init(struct sp_pcomp *pc, struct sp_error *err)
{
    if (pthread_mutex_init(&pc->mu, NULL) != 0)
        return sp_error_set(err, SP_ENOMEM, "gzip: cannot create a mutex");
    if (pthread_cond_init(&pc->cv_work, NULL) != 0) {
        pthread_mutex_destroy(&pc->mu);
        return sp_error_set(err, SP_ENOMEM, "gzip: cannot create a condition variable");
    }
    if (pthread_cond_init(&pc->cv_done, NULL) != 0) {
        pthread_cond_destroy(&pc->cv_work);
        pthread_mutex_destroy(&pc->mu);
        return sp_error_set(err, SP_ENOMEM, "gzip: cannot create a condition variable");
    }
    pc->sync_init = true;
    return SP_OK;
}

static int gz_open(struct sp_pcomp *pc, const struct sp_pcomp_opts *o, int level, struct sp_error *err)
{
    pc->nthreads = thread_count(o->threads);
    pc->block = o->block ? o->block : SP_PCOMP_GZIP_BLOCK;
    pc->nslots = (unsigned)pc->nthreads * SP_PCOMP_SLOTS_PER_THREAD;
    pc->workers = sp_zalloc((size_t)pc->nthreads * sizeof *pc->workers, err);
    pc->tids = sp_zalloc((size_t)pc->nthreads * sizeof *pc->tids, err);
    pc->slots = sp_zalloc(pc->nslots * sizeof *pc->slots, err);
    if (!pc->workers || !pc->tids || !pc->slots)
        return SP_ENOMEM;
    for (int i = 0; i < pc->nthreads; i++) {
        pc->workers[i].pc = pc;
        struct worker *wk = &pc->workers[i];
        if (!(wk->c = libdeflate_alloc_compressor(level)) || !(wk->probe = libdeflate_alloc_compressor(1)) ||
            !(wk->store = libdeflate_alloc_compressor(0)))
            return sp_error_set(err, SP_ENOMEM, "gzip: cannot allocate a deflate compressor");
    }
    size_t bound = libdeflate_gzip_compress_bound(pc->workers[0].c, pc->block);
    size_t stored = libdeflate_gzip_compress_bound(pc->workers[0].store, pc->block);
    pc->out_cap = bound > stored ? bound : stored;
    for (unsigned i = 0; i < pc->nslots; i++)
        if (!(pc->slots[i].in = sp_alloc(pc->block, err)) || !(pc->slots[i].out = sp_alloc(pc->out_cap, err)))
            return SP_ENOMEM;
    int rc = gz_sync_init(pc, err);
    for (int i = 0; rc == SP_OK && i < pc->nthreads; i++) {
        int e = sp_thread_start(&pc->tids[i], gz_worker, &pc->workers[i]);
        if (e != 0)
            return sp_error_errno(err, e, "gzip: cannot start a compression thread");
        pc->started++;
    }
    return rc;
}

/* Stops the workers (the jobs nobody has taken are dropped) and joins them. */
static void gz_free(struct sp_pcomp *pc)
{
    if (pc->sync_init) {
        pthread_mutex_lock(&pc->mu);
        pc->stop = true;
        pc->tail = pc->next_job;
        pthread_cond_broadcast(&pc->cv_work);
        pthread_mutex_unlock(&pc->mu);
        for (int i = 0; i < pc->started; i++)
            pthread_join(pc->tids[i], NULL);
        pthread_cond_destroy(&pc->cv_done);
        pthread_cond_destroy(&pc->cv_work);
        pthread_mutex_destroy(&pc->mu);
    }
    for (int i = 0; pc->workers && i < pc->nthreads; i++) {
        libdeflate_free_compressor(pc->workers[i].c);
        libdeflate_free_compressor(pc->workers[i].probe);
        libdeflate_free_compressor(pc->workers[i].store);
    }
    for (unsigned i = 0; pc->slots && i < pc->nslots; i++) {
        free(pc->slots[i].in);
        free(pc->slots[i].out);
    }
    free(pc->slots);
    free(pc->tids);
    free(pc->workers);
}

/* ---- zstd ---------------------------------------------------------------- */

/* One call of the stream; what it produced goes out. *left: what libzstd
 * still has to flush (ZSTD_e_end), or 0. */
static int zs_step(struct sp_pcomp *pc, ZSTD_inBuffer *in, ZSTD_EndDirective op, size_t *left,
                   struct sp_error *err)
{
    ZSTD_outBuffer ob = {pc->zbuf, pc->zbuf_cap, 0};
    size_t r = ZSTD_compressStream2(pc->zc, &ob, in, op);
    if (ZSTD_isError(r))
        return sp_error_set(err, SP_EIO, "zstd: %s", ZSTD_getErrorName(r));
    *left = r;
    return ob.pos ? pc->out(pc->ctx, pc->zbuf, ob.pos, err) : SP_OK;
}

static int zs_write(struct sp_pcomp *pc, const void *buf, size_t len, struct sp_error *err)
{
    ZSTD_inBuffer in = {buf, len, 0};
    size_t left;
    while (in.pos < in.size) {
        int rc = zs_step(pc, &in, ZSTD_e_continue, &left, err);
        if (rc != SP_OK)
            return rc;
    }
    return SP_OK;
}

static int zs_finish(struct sp_pcomp *pc, struct sp_error *err)
{
    ZSTD_inBuffer in = {NULL, 0, 0};
    size_t left = 1;
    while (left > 0) {
        int rc = zs_step(pc, &in, ZSTD_e_end, &left, err);
        if (rc != SP_OK)
            return rc;
    }
    return SP_OK;
}

/* libzstd starts its workers at the first call of the stream: made with
 * the stop signals blocked, they leave those to the main thread. */
static int zs_start(void *p)
{
    struct sp_pcomp *pc = p;
    ZSTD_inBuffer in = {NULL, 0, 0};
    ZSTD_outBuffer ob = {pc->zbuf, pc->zbuf_cap, 0};
    return ZSTD_isError(ZSTD_compressStream2(pc->zc, &ob, &in, ZSTD_e_continue)) ? -1 : 0;
}

static int zs_open(struct sp_pcomp *pc, const struct sp_pcomp_opts *o, int level, struct sp_error *err)
{
    int workers = thread_count(o->threads);
    ZSTD_bounds b = ZSTD_cParam_getBounds(ZSTD_c_nbWorkers);
    if (ZSTD_isError(b.error) || b.upperBound < 1)
        return sp_error_set(err, SP_EUNSUPPORTED, "zstd: this libzstd has no worker threads");
    pc->zbuf_cap = ZSTD_CStreamOutSize();
    pc->zbuf = sp_alloc(pc->zbuf_cap, err);
    if (!pc->zbuf)
        return SP_ENOMEM;
    if (!(pc->zc = ZSTD_createCCtx()))
        return sp_error_set(err, SP_ENOMEM, "zstd: cannot allocate a compression context");
    if (ZSTD_isError(ZSTD_CCtx_setParameter(pc->zc, ZSTD_c_compressionLevel, level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(pc->zc, ZSTD_c_checksumFlag, 1)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(pc->zc, ZSTD_c_nbWorkers, workers)))
        return sp_error_set(err, SP_EINVAL, "zstd: level %d or %d workers refused", level, workers);
    if (sp_cancel_run_blocked(zs_start, pc) != 0)
        return sp_error_set(err, SP_ENOMEM, "zstd: cannot start the compression threads");
    return SP_OK;
}

/* ---- the interface ----------------------------------------------------------- */

int sp_pcomp_open(const struct sp_pcomp_opts *o, sp_pcomp_out out, void *ctx, struct sp_pcomp **pcp,
                  struct sp_error *err)
{
    *pcp = NULL;
    int level = o->level ? o->level : o->kind == SP_PCOMP_ZSTD ? SP_PCOMP_ZSTD_LEVEL : SP_PCOMP_GZIP_LEVEL;
    if (level < 1 || level > sp_pcomp_level_max(o->kind))
        return sp_error_set(err, SP_EINVAL, "%s: level %d is not 1..%d", o->kind == SP_PCOMP_ZSTD ? "zstd" : "gzip",
                            level, sp_pcomp_level_max(o->kind));
    struct sp_pcomp *pc = sp_zalloc(sizeof *pc, err);
    if (!pc)
        return SP_ENOMEM;
    pc->kind = o->kind;
    pc->out = out;
    pc->ctx = ctx;
    int rc = o->kind == SP_PCOMP_ZSTD ? zs_open(pc, o, level, err) : gz_open(pc, o, level, err);
    if (rc != SP_OK) {
        sp_pcomp_free(pc);
        return rc;
    }
    *pcp = pc;
    return SP_OK;
}

int sp_pcomp_write(struct sp_pcomp *pc, const void *buf, size_t len, struct sp_error *err)
{
    if (pc->failed || pc->finished)
        return sp_error_set(err, SP_EINVAL, "compressor: already finished or failed");
    int rc = pc->kind == SP_PCOMP_ZSTD ? zs_write(pc, buf, len, err) : gz_write(pc, buf, len, err);
    if (rc != SP_OK)
        pc->failed = true;
    return rc;
}

int sp_pcomp_finish(struct sp_pcomp *pc, struct sp_error *err)
{
    if (pc->failed || pc->finished)
        return sp_error_set(err, SP_EINVAL, "compressor: already finished or failed");
    pc->finished = true;
    int rc = pc->kind == SP_PCOMP_ZSTD ? zs_finish(pc, err) : gz_finish(pc, err);
    if (rc != SP_OK)
        pc->failed = true;
    return rc;
}

void sp_pcomp_free(struct sp_pcomp *pc)
{
    if (!pc)
        return;
    gz_free(pc);
    ZSTD_freeCCtx(pc->zc); /* joins libzstd's workers */
    free(pc->zbuf);
    free(pc);
}
