/* A producer thread and a ring of chunks. */
#include "base/readahead.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/cancel.h"
#include "base/util.h"

#define RA_CHUNK (1u << 20)
#define RA_CHUNKS 8

struct sp_readahead {
    sp_read_fn src;
    void *src_ctx;
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint8_t *buf[RA_CHUNKS];
    size_t len[RA_CHUNKS];
    int head, count;                   /* filled chunks, oldest at head */
    size_t pos;                        /* consumed bytes of buf[head] */
    bool eof, stop;
    int rc;
    struct sp_error err;               /* the source's, when rc != SP_OK */
};

/* One chunk from the source, as full as it gets, into slot (its buffer
 * made on first use: a member of a few KiB needs one chunk, not the
 * ring's 8 MiB). */
static int fill(struct sp_readahead *ra, int slot, size_t *len, struct sp_error *err)
{
    *len = 0;
    if (!ra->buf[slot] && !(ra->buf[slot] = malloc(RA_CHUNK)))
        return sp_error_set(err, SP_ENOMEM, "out of memory (read-ahead)");
    uint8_t *b = ra->buf[slot];
    while (*len < RA_CHUNK) {
        size_t got = 0;
        int rc = ra->src(ra->src_ctx, b + *len, RA_CHUNK - *len, &got, err);
        if (rc != SP_OK || got == 0)
            return rc;
        *len += got;
    }
    return SP_OK;
}

static void *producer(void *arg)
{
    struct sp_readahead *ra = arg;
    pthread_mutex_lock(&ra->mu);
    for (;;) {
        while (!ra->stop && ra->count == RA_CHUNKS)
            pthread_cond_wait(&ra->cv, &ra->mu);
        if (ra->stop)
            break;
        int slot = (ra->head + ra->count) % RA_CHUNKS;
        pthread_mutex_unlock(&ra->mu);
        /* the slot is ours until count covers it */
        size_t len = 0;
        struct sp_error err;
        int rc = fill(ra, slot, &len, &err);
        pthread_mutex_lock(&ra->mu);
        if (len) {
            ra->len[slot] = len;
            ra->count++;
        }
        if (rc != SP_OK) {
            ra->rc = rc;
            ra->err = err;
        }
        if (rc != SP_OK || len < RA_CHUNK)
            ra->eof = true;
        pthread_cond_broadcast(&ra->cv);
        if (ra->eof)
            break;
    }
    pthread_mutex_unlock(&ra->mu);
    return NULL;
}

int sp_readahead_start(sp_read_fn src, void *src_ctx, struct sp_readahead **out, struct sp_error *err)
{
    struct sp_readahead *ra = sp_zalloc(sizeof *ra, err);
    if (!ra)
        return SP_ENOMEM;
    ra->src = src;
    ra->src_ctx = src_ctx;
    pthread_mutex_init(&ra->mu, NULL);
    pthread_cond_init(&ra->cv, NULL);
    if (sp_thread_start(&ra->tid, producer, ra) != 0) {
        pthread_cond_destroy(&ra->cv);
        pthread_mutex_destroy(&ra->mu);
        free(ra);
        return sp_error_set(err, SP_ENOMEM, "cannot start the read-ahead thread");
    }
    *out = ra;
    return SP_OK;
}

int sp_readahead_read(void *ctx, void *buf, size_t len, size_t *got, struct sp_error *err)
{
    struct sp_readahead *ra = ctx;
    *got = 0;
    pthread_mutex_lock(&ra->mu);
    while (ra->count == 0 && !ra->eof)
        pthread_cond_wait(&ra->cv, &ra->mu);
    if (ra->count == 0) {
        int rc = ra->rc;
        if (rc != SP_OK)
            *err = ra->err;
        pthread_mutex_unlock(&ra->mu);
        return rc;
    }
    int h = ra->head;
    pthread_mutex_unlock(&ra->mu);
    /* buf[h] is the consumer's while count covers it */
    size_t n = (size_t)sp_min_u64(len, ra->len[h] - ra->pos);
    memcpy(buf, ra->buf[h] + ra->pos, n);
    ra->pos += n;
    *got = n;
    if (ra->pos == ra->len[h]) {
        pthread_mutex_lock(&ra->mu);
        ra->pos = 0;
        ra->head = (h + 1) % RA_CHUNKS;
        ra->count--;
        pthread_cond_broadcast(&ra->cv);
        pthread_mutex_unlock(&ra->mu);
    }
    return SP_OK;
}

void sp_readahead_free(struct sp_readahead *ra)
{
    if (!ra)
        return;
    pthread_mutex_lock(&ra->mu);
    ra->stop = true;
    pthread_cond_broadcast(&ra->cv);
    pthread_mutex_unlock(&ra->mu);
    pthread_join(ra->tid, NULL);
    pthread_cond_destroy(&ra->cv);
    pthread_mutex_destroy(&ra->mu);
    for (int i = 0; i < RA_CHUNKS; i++)
        free(ra->buf[i]);
    free(ra);
}
