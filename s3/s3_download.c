/* An S3 object into a pipe (s3_stream.h). Worker w fetches chunks w,
 * w + jobs, w + 2 jobs ... into its own buffer and writes each when its
 * turn comes, so the pipe gets the object in order with `jobs` GETs in
 * flight and jobs x SP_S3_GET_CHUNK bytes of memory. */
#include "s3/s3_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cancel.h"

struct sp_s3_downloader {
    struct sp_s3_config c;
    struct sp_s3_url u;
    uint64_t size;
    char etag[SP_S3_ETAG_MAX]; /* HEAD's: every ranged GET reads this version (If-Match) */
    uint64_t nchunks;
    int wfd;                 /* the pipe's write end */
    unsigned jobs, nworkers;
    unsigned running;        /* the last worker out closes wfd: the reader's EOF */
    pthread_t workers[SP_S3_JOBS_MAX];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t turn;           /* the chunk the pipe takes next */
    bool failed;
    struct sp_error err;
};

struct job {
    struct sp_s3_downloader *d;
    unsigned index;
};

static void fail(struct sp_s3_downloader *d, const struct sp_error *e)
{
    pthread_mutex_lock(&d->mu);
    if (!d->failed)
        d->err = *e;
    d->failed = true;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

/* Waits for chunk k's turn; false when the download failed. */
static bool wait_turn(struct sp_s3_downloader *d, uint64_t k)
{
    pthread_mutex_lock(&d->mu);
    while (d->turn != k && !d->failed)
        pthread_cond_wait(&d->cv, &d->mu);
    bool go = !d->failed;
    pthread_mutex_unlock(&d->mu);
    return go;
}

static void next_turn(struct sp_s3_downloader *d)
{
    pthread_mutex_lock(&d->mu);
    d->turn++;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static int write_all(int fd, const uint8_t *buf, size_t len, struct sp_error *e)
{
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return sp_error_errno(e, errno, "the archive stream");
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Fetches chunk k into buf and writes it to the pipe in its turn. */
static int one_chunk(struct sp_s3_downloader *d, struct sp_s3 *s, uint64_t k, uint8_t *buf, struct sp_error *e)
{
    uint64_t off = k * SP_S3_GET_CHUNK;
    size_t want = (size_t)(d->size - off < SP_S3_GET_CHUNK ? d->size - off : SP_S3_GET_CHUNK), got;
    int rc = sp_s3_get_range(s, off, buf, want, &got, e);
    if (rc < 0)
        return rc;
    if (got != want)
        return sp_error_set(e, SP_EFORMAT, "s3://%s/%s: truncated: %llu bytes at %llu, %zu expected", d->u.bucket,
                            d->u.key, (unsigned long long)got, (unsigned long long)off, want);
    if (!wait_turn(d, k))
        return SP_ECANCELED;
    rc = write_all(d->wfd, buf, got, e);
    next_turn(d);
    return rc;
}

static void *worker(void *arg)
{
    struct job *j = arg;
    struct sp_s3_downloader *d = j->d;
    struct sp_s3 *s = NULL;
    struct sp_error e = {0};
    uint8_t *buf = malloc(SP_S3_GET_CHUNK);
    int rc = buf ? sp_s3_new(&d->c, &d->u, &s, &e) : sp_error_set(&e, SP_ENOMEM, "s3: out of memory");
    if (rc == 0)
        sp_s3_pin_etag(s, d->etag);
    for (uint64_t k = j->index; rc == 0 && k < d->nchunks; k += d->jobs)
        rc = one_chunk(d, s, k, buf, &e);
    /* a reader that stopped early (EPIPE) or another worker's failure is not ours to report */
    if (rc < 0 && rc != SP_ECANCELED && !(rc == SP_EIO && e.msg[0] && strstr(e.msg, "archive stream")))
        fail(d, &e);
    else if (rc < 0)
        fail(d, &(struct sp_error){.code = SP_ECANCELED});
    sp_s3_free(s);
    free(buf);
    free(j);
    pthread_mutex_lock(&d->mu);
    if (--d->running == 0) {
        close(d->wfd);
        d->wfd = -1;
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static void downloader_free(struct sp_s3_downloader *d)
{
    if (d->wfd >= 0)
        close(d->wfd);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    memset(&d->c, 0, sizeof d->c);
    free(d);
}

static int start_workers(struct sp_s3_downloader *d, struct sp_error *err)
{
    d->running = d->jobs;
    for (unsigned i = 0; i < d->jobs; i++, d->nworkers++) {
        struct job *j = malloc(sizeof *j);
        if (!j)
            break;
        *j = (struct job){.d = d, .index = i};
        if (sp_thread_start(&d->workers[i], worker, j) != 0) {
            free(j);
            break;
        }
    }
    if (d->nworkers == d->jobs)
        return 0;
    pthread_mutex_lock(&d->mu);
    d->running -= d->jobs - d->nworkers;
    pthread_mutex_unlock(&d->mu);
    fail(d, &(struct sp_error){.code = SP_ENOMEM});
    for (unsigned i = 0; i < d->nworkers; i++)
        pthread_join(d->workers[i], NULL);
    return sp_error_set(err, SP_ENOMEM, "s3://%s/%s: cannot start the download threads", d->u.bucket, d->u.key);
}

int sp_s3_downloader_start(const struct sp_s3_config *c, const struct sp_s3_url *u, unsigned jobs, int *fd,
                           struct sp_s3_downloader **out, struct sp_error *err)
{
    *out = NULL;
    struct sp_s3_downloader *d = calloc(1, sizeof *d);
    if (!d)
        return sp_error_set(err, SP_ENOMEM, "s3: out of memory");
    d->c = *c;
    d->u = *u;
    d->jobs = jobs ? jobs : SP_S3_JOBS_DEFAULT;
    d->wfd = -1;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    struct sp_s3 *s = NULL;
    int pfd[2];
    int rc = sp_s3_new(c, u, &s, err);
    if (rc == 0)
        rc = sp_s3_head(s, &d->size, err);
    if (rc == 0)
        snprintf(d->etag, sizeof d->etag, "%s", sp_s3_etag(s));
    sp_s3_free(s);
    if (rc == 0 && pipe2(pfd, O_CLOEXEC) != 0)
        rc = sp_error_errno(err, errno, "s3://%s/%s: pipe", u->bucket, u->key);
    if (rc == 0) {
        d->wfd = pfd[1];
        d->nchunks = (d->size + SP_S3_GET_CHUNK - 1) / SP_S3_GET_CHUNK;
        if ((rc = start_workers(d, err)) < 0)
            close(pfd[0]);
    }
    if (rc < 0) {
        downloader_free(d);
        return rc;
    }
    *fd = pfd[0];
    *out = d;
    return 0;
}

int sp_s3_downloader_finish(struct sp_s3_downloader *d, struct sp_error *err)
{
    for (unsigned i = 0; i < d->nworkers; i++)
        pthread_join(d->workers[i], NULL);
    int rc = d->failed && d->err.code != SP_ECANCELED ? sp_error_set(err, d->err.code, "%s", d->err.msg) : 0;
    downloader_free(d);
    return rc;
}
