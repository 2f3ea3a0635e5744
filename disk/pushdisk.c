/* A disk fed by pushes through a bounded queue (see pushdisk.h). One mutex,
 * two conditions: "data" wakes the consumer (a push, a finish), "space"
 * wakes the producer (chunks dropped, an abort). */
#include "disk/pushdisk.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

struct chunk {
    struct chunk *next;
    uint64_t off;
    size_t len;
    uint8_t data[];
};

enum first_stop { STOP_NONE, STOP_CONSUMER, STOP_PRODUCER };

struct sp_pushdisk {
    struct sp_disk out;            /* the consumer's view */
    struct sp_disk in;             /* the producer's view */
    char *label;
    pthread_mutex_t mu;
    pthread_cond_t data, space;
    struct chunk *head, *tail;
    size_t queued;                 /* bytes of the chunks held */
    uint64_t pushed_end;           /* producer: end of the previous push */
    uint64_t data_bytes;
    uint64_t pos;                  /* consumer: nothing before this is asked for again */
    bool finished, failed, aborted;
    enum first_stop first;
};

static struct sp_pushdisk *of_out(struct sp_disk *d)
{
    return (struct sp_pushdisk *)(void *)((char *)d - offsetof(struct sp_pushdisk, out));
}

static struct sp_pushdisk *of_in(struct sp_disk *d)
{
    return (struct sp_pushdisk *)(void *)((char *)d - offsetof(struct sp_pushdisk, in));
}

/* Frees the chunks that end at or before off. Lock held. */
static void drop_before(struct sp_pushdisk *p, uint64_t off)
{
    bool freed = false;
    while (p->head && p->head->off + p->head->len <= off) {
        struct chunk *c = p->head;
        p->head = c->next;
        if (!p->head)
            p->tail = NULL;
        p->queued -= c->len;
        free(c);
        freed = true;
    }
    if (freed)
        pthread_cond_signal(&p->space);
}

static int behind(struct sp_pushdisk *p, uint64_t off, struct sp_error *err)
{
    return sp_error_set(err, SP_EINVAL, "%s: asked for byte %llu after byte %llu (the disk reads forward only)",
                        p->label, (unsigned long long)off, (unsigned long long)p->pos);
}

static int input_stopped(struct sp_pushdisk *p, struct sp_error *err)
{
    return sp_error_set(err, SP_EIO, "%s: the input stopped", p->label);
}

/* ---- the consumer ---------------------------------------------------------- */

static int out_next_extent(struct sp_disk *d, uint64_t off, struct sp_extent *ext, struct sp_error *err)
{
    struct sp_pushdisk *p = of_out(d);
    int rc = SP_OK;
    pthread_mutex_lock(&p->mu);
    if (off < p->pos) {
        rc = behind(p, off, err);
        goto out;
    }
    p->pos = off;
    for (;;) {
        drop_before(p, off);
        if (p->head) {
            bool in_chunk = p->head->off <= off;
            ext->start = off;
            ext->kind = in_chunk ? SP_EXTENT_DATA : SP_EXTENT_ZERO;
            ext->len = (in_chunk ? p->head->off + p->head->len : p->head->off) - off;
            break;
        }
        if (p->failed || p->aborted) {
            rc = input_stopped(p, err);
            break;
        }
        if (p->finished) {
            *ext = (struct sp_extent){off, d->size - off, SP_EXTENT_ZERO};
            break;
        }
        pthread_cond_wait(&p->data, &p->mu);
    }
out:
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static int out_read(struct sp_disk *d, uint64_t off, void *buf, size_t len, struct sp_error *err)
{
    struct sp_pushdisk *p = of_out(d);
    uint8_t *b = buf;
    uint64_t end = off + len;
    int rc = SP_OK;
    pthread_mutex_lock(&p->mu);
    if (off < p->pos) {
        rc = behind(p, off, err);
        goto out;
    }
    p->pos = off;
    while (p->pos < end) {
        drop_before(p, p->pos);
        struct chunk *c = p->head;
        uint64_t n;
        if (c && c->off <= p->pos) {
            n = sp_min_u64(c->off + c->len, end) - p->pos;
            memcpy(b + (p->pos - off), c->data + (p->pos - c->off), (size_t)n);
        } else if (c || (p->finished && !p->failed)) {
            n = (c ? sp_min_u64(c->off, end) : end) - p->pos;
            memset(b + (p->pos - off), 0, (size_t)n);
        } else if (p->failed || p->aborted) {
            rc = input_stopped(p, err);
            break;
        } else {
            pthread_cond_wait(&p->data, &p->mu);
            continue;
        }
        p->pos += n;
    }
    drop_before(p, p->pos);
out:
    pthread_mutex_unlock(&p->mu);
    return rc;
}

void sp_pushdisk_abort(struct sp_pushdisk *p)
{
    pthread_mutex_lock(&p->mu);
    p->aborted = true;
    if (p->first == STOP_NONE)
        p->first = STOP_CONSUMER;
    pthread_cond_broadcast(&p->space);
    pthread_cond_broadcast(&p->data);
    pthread_mutex_unlock(&p->mu);
}

bool sp_pushdisk_consumer_failed_first(struct sp_pushdisk *p)
{
    pthread_mutex_lock(&p->mu);
    bool r = p->first == STOP_CONSUMER;
    pthread_mutex_unlock(&p->mu);
    return r;
}

/* ---- the producer ---------------------------------------------------------- */

int sp_pushdisk_push(struct sp_pushdisk *p, uint64_t off, const void *data, size_t len, struct sp_error *err)
{
    if (off < p->pushed_end)
        return sp_error_set(err, SP_EINVAL, "%s: data at byte %llu comes after byte %llu (pushes must ascend)",
                            p->label, (unsigned long long)off, (unsigned long long)p->pushed_end);
    if (off > p->out.size || len > p->out.size - off)
        return sp_error_set(err, SP_EINVAL, "%s: %zu bytes at %llu run past the size (%llu)", p->label, len,
                            (unsigned long long)off, (unsigned long long)p->out.size);
    if (len == 0)
        return SP_OK;
    p->pushed_end = off + len;
    struct chunk *c = NULL;
    if (!sp_is_zero(data, len)) {
        c = sp_alloc(sizeof *c + len, err);
        if (!c)
            return SP_ENOMEM;
        c->next = NULL;
        c->off = off;
        c->len = len;
        memcpy(c->data, data, len);
    }
    pthread_mutex_lock(&p->mu);
    while (c && !p->aborted && p->queued > 0 && p->queued + len > SP_PUSHDISK_QUEUE)
        pthread_cond_wait(&p->space, &p->mu);
    bool aborted = p->aborted;
    if (c && !aborted) {
        if (p->tail)
            p->tail->next = c;
        else
            p->head = c;
        p->tail = c;
        p->queued += len;
        p->data_bytes += len;
        pthread_cond_signal(&p->data);
    }
    pthread_mutex_unlock(&p->mu);
    if (aborted) {
        free(c);
        return sp_error_set(err, SP_EIO, "%s: the output stopped", p->label);
    }
    return SP_OK;
}

void sp_pushdisk_finish(struct sp_pushdisk *p, bool ok)
{
    pthread_mutex_lock(&p->mu);
    p->finished = true;
    if (!ok) {
        p->failed = true;
        if (p->first == STOP_NONE)
            p->first = STOP_PRODUCER;
    }
    pthread_cond_broadcast(&p->data);
    pthread_mutex_unlock(&p->mu);
}

uint64_t sp_pushdisk_data_bytes(struct sp_pushdisk *p)
{
    pthread_mutex_lock(&p->mu);
    uint64_t n = p->data_bytes;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static int in_write(struct sp_disk *d, uint64_t off, const void *buf, size_t len, struct sp_error *err)
{
    return sp_pushdisk_push(of_in(d), off, buf, len, err);
}

/* The producer's view is written, never read. */
static int in_next_extent(struct sp_disk *d, uint64_t off, struct sp_extent *ext, struct sp_error *err)
{
    (void)off;
    (void)ext;
    return sp_error_set(err, SP_EUNSUPPORTED, "%s: the input side of a pushed disk is not read", d->path);
}

static int in_read(struct sp_disk *d, uint64_t off, void *buf, size_t len, struct sp_error *err)
{
    (void)off;
    (void)buf;
    (void)len;
    return sp_error_set(err, SP_EUNSUPPORTED, "%s: the input side of a pushed disk is not read", d->path);
}

static void view_close(struct sp_disk *d) { (void)d; }

static const struct sp_disk_ops OUT_OPS = {
    .next_extent = out_next_extent,
    .read = out_read,
    .close = view_close,
};

static const struct sp_disk_ops IN_OPS = {
    .next_extent = in_next_extent,
    .read = in_read,
    .write = in_write,
    .close = view_close,
};

struct sp_disk *sp_pushdisk_input(struct sp_pushdisk *p) { return &p->in; }
struct sp_disk *sp_pushdisk_disk(struct sp_pushdisk *p) { return &p->out; }

/* ---- life ------------------------------------------------------------------ */

int sp_pushdisk_new(uint64_t size, const char *label, struct sp_pushdisk **out, struct sp_error *err)
{
    *out = NULL;
    struct sp_pushdisk *p = sp_zalloc(sizeof *p, err);
    if (!p)
        return SP_ENOMEM;
    p->label = strdup(label ? label : "disk");
    if (!p->label) {
        free(p);
        return sp_error_set(err, SP_ENOMEM, "out of memory");
    }
    bool mu = pthread_mutex_init(&p->mu, NULL) == 0;
    bool data = mu && pthread_cond_init(&p->data, NULL) == 0;
    bool space = data && pthread_cond_init(&p->space, NULL) == 0;
    if (!space) {
        if (data)
            pthread_cond_destroy(&p->data);
        if (mu)
            pthread_mutex_destroy(&p->mu);
        free(p->label);
        free(p);
        return sp_error_set(err, SP_ENOMEM, "pushed disk: cannot create its lock");
    }
    p->out = (struct sp_disk){.ops = &OUT_OPS, .size = size, .path = p->label};
    p->in = (struct sp_disk){.ops = &IN_OPS, .size = size, .path = p->label};
    *out = p;
    return SP_OK;
}

void sp_pushdisk_free(struct sp_pushdisk *p)
{
    if (!p)
        return;
    while (p->head) {
        struct chunk *c = p->head;
        p->head = c->next;
        free(c);
    }
    pthread_cond_destroy(&p->space);
    pthread_cond_destroy(&p->data);
    pthread_mutex_destroy(&p->mu);
    free(p->label);
    free(p);
}
