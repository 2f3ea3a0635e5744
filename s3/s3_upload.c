/* A pipe into an S3 multipart upload (s3_stream.h). One reader thread cuts
 * the pipe into parts; `jobs` workers upload them, each with its own
 * connection. */
#include "s3/s3_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cancel.h"

struct part {
    unsigned number;
    uint8_t *buf;
    size_t len, cap;             /* bytes in buf, and its size */
    struct part *next;
};

struct sp_s3_uploader {
    struct sp_s3_config c;
    struct sp_s3_url u;
    struct sp_s3_upload_opts o;
    struct sp_s3 *main;          /* create, complete, abort */
    char id[SP_S3_UPLOAD_ID_MAX];
    char (*etags)[SP_S3_ETAG_MAX];
    char (*have)[SP_S3_ETAG_MAX]; /* a resumed upload's parts on the server (hex MD5) */
    uint64_t *have_sizes;
    unsigned reused;
    int rfd;                     /* the pipe's read end */
    pthread_t reader, workers[SP_S3_JOBS_MAX];
    unsigned nworkers;
    bool reader_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct part *head, *tail;    /* parts waiting for a worker */
    struct part *spare;          /* uploaded parts whose buffers the reader reuses: a buffer
                                    of 32 MiB or more would come fresh from the kernel, zeroed
                                    page by page, every time; never more than jobs + 1 in all */
    unsigned inflight;           /* parts read and not yet uploaded */
    unsigned nparts;             /* parts read so far */
    bool eof, failed, stop;
    struct sp_error err;         /* the first failure */
};

uint64_t sp_s3_part_size(const struct sp_s3_upload_opts *o, unsigned n)
{
    if (o->part_size)
        return o->part_size;
    uint64_t size = SP_S3_PART_FIRST;
    for (unsigned step = (n - 1) / SP_S3_PART_STEP; step > 0 && size < SP_S3_PART_TOP; step--)
        size *= 2;
    return size;
}

static void fail(struct sp_s3_uploader *up, const struct sp_error *e)
{
    pthread_mutex_lock(&up->mu);
    if (!up->failed)
        up->err = *e;
    up->failed = true;
    pthread_cond_broadcast(&up->cv);
    pthread_mutex_unlock(&up->mu);
}

/* ------------------------------------------------------------ workers */

static struct part *take_part(struct sp_s3_uploader *up)
{
    pthread_mutex_lock(&up->mu);
    while (!up->head && !up->eof)
        pthread_cond_wait(&up->cv, &up->mu);
    struct part *p = up->head;
    if (p) {
        up->head = p->next;
        if (!up->head)
            up->tail = NULL;
    }
    pthread_mutex_unlock(&up->mu);
    return p;
}

static void part_done(struct sp_s3_uploader *up, struct part *p)
{
    pthread_mutex_lock(&up->mu);
    p->next = up->spare;
    up->spare = p;
    up->inflight--;
    pthread_cond_broadcast(&up->cv);
    pthread_mutex_unlock(&up->mu);
}

/* A resumed upload: whether the server has part p already, same size and
 * bytes; if so its ETag is noted. */
static bool on_server(struct sp_s3_uploader *up, const struct part *p)
{
    unsigned i = p->number - 1;
    if (!up->have || !up->have[i][0] || up->have_sizes[i] != p->len)
        return false;
    char md5[33];
    sp_s3_md5_hex(p->buf, p->len, md5);
    if (strcmp(md5, up->have[i]) != 0)
        return false;
    snprintf(up->etags[i], SP_S3_ETAG_MAX, "\"%s\"", md5);
    pthread_mutex_lock(&up->mu);
    up->reused++;
    pthread_mutex_unlock(&up->mu);
    return true;
}

static void *worker(void *arg)
{
    struct sp_s3_uploader *up = arg;
    struct sp_s3 *s = NULL;
    struct sp_error e = {0};
    int rc = sp_s3_new(&up->c, &up->u, &s, &e);
    if (rc < 0)
        fail(up, &e);
    for (struct part *p; (p = take_part(up)) != NULL; part_done(up, p)) {
        pthread_mutex_lock(&up->mu);
        bool skip = up->failed;
        pthread_mutex_unlock(&up->mu);
        if (skip || !s || on_server(up, p))
            continue;
        if (sp_s3_upload_part(s, up->id, p->number, p->buf, p->len, up->etags[p->number - 1], SP_S3_ETAG_MAX,
                              &e) < 0)
            fail(up, &e);
    }
    sp_s3_free(s);
    return NULL;
}

/* ------------------------------------------------------------ reader */

/* Fills buf from the pipe; *got < len only at its end. */
static int read_part(int fd, uint8_t *buf, size_t len, size_t *got, struct sp_error *e)
{
    *got = 0;
    while (*got < len) {
        ssize_t n = read(fd, buf + *got, len - *got);
        if (n == 0)
            break;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return sp_error_errno(e, errno, "reading the archive stream");
        *got += (size_t)n;
    }
    return 0;
}

/* Waits for room for one more part; false when the upload failed or stops. */
static bool wait_room(struct sp_s3_uploader *up)
{
    pthread_mutex_lock(&up->mu);
    /* jobs parts going up and one filling */
    while (up->inflight > up->o.jobs && !up->failed && !up->stop)
        pthread_cond_wait(&up->cv, &up->mu);
    bool go = !up->failed && !up->stop;
    if (go)
        up->inflight++;
    pthread_mutex_unlock(&up->mu);
    return go;
}

static void queue_part(struct sp_s3_uploader *up, struct part *p)
{
    pthread_mutex_lock(&up->mu);
    if (up->tail)
        up->tail->next = p;
    else
        up->head = p;
    up->tail = p;
    up->nparts = p->number;
    pthread_cond_broadcast(&up->cv);
    pthread_mutex_unlock(&up->mu);
}

static void part_free(struct part *p)
{
    if (p)
        free(p->buf);
    free(p);
}

/* A part of size bytes: a spare one if it is large enough (the sizes only
 * grow), else a new one; NULL: no memory. */
static struct part *part_get(struct sp_s3_uploader *up, size_t size)
{
    pthread_mutex_lock(&up->mu);
    struct part *p = up->spare;
    if (p)
        up->spare = p->next;
    pthread_mutex_unlock(&up->mu);
    if (p && p->cap < size) {
        part_free(p);
        p = NULL;
    }
    if (!p && (p = calloc(1, sizeof *p)) != NULL) {
        p->cap = size;
        if ((p->buf = malloc(size)) == NULL) {
            free(p);
            p = NULL;
        }
    }
    if (!p)
        return NULL;
    p->next = NULL;
    return p;
}

/* Reads part n; 1 queued (more may follow), 0 the stream ended, <0 failed. */
static int next_part(struct sp_s3_uploader *up, unsigned n)
{
    struct sp_error e = {0};
    if (n > SP_S3_PARTS_MAX) {
        sp_error_set(&e, SP_ELIMIT, "s3://%s/%s: the archive needs more than %u parts: give a larger --part-size",
                     up->u.bucket, up->u.key, SP_S3_PARTS_MAX);
        fail(up, &e);
        return -1;
    }
    size_t size = (size_t)sp_s3_part_size(&up->o, n), got = 0;
    struct part *p = part_get(up, size);
    int rc = p ? read_part(up->rfd, p->buf, size, &got, &e)
               : sp_error_set(&e, SP_ENOMEM, "s3://%s/%s: no memory for a part of %zu bytes", up->u.bucket,
                              up->u.key, size);
    if (rc < 0 || (got == 0 && n > 1)) {
        part_free(p);
        if (rc < 0)
            fail(up, &e);
        pthread_mutex_lock(&up->mu);
        up->inflight--;
        pthread_mutex_unlock(&up->mu);
        return rc < 0 ? -1 : 0;
    }
    p->number = n;
    p->len = got;
    queue_part(up, p);
    return got < size ? 0 : 1;
}

static void *reader(void *arg)
{
    struct sp_s3_uploader *up = arg;
    for (unsigned n = 1; wait_room(up) && next_part(up, n) > 0; n++)
        ;
    /* a failed upload reads no more: the writer gets EPIPE and stops */
    close(up->rfd);
    up->rfd = -1;
    pthread_mutex_lock(&up->mu);
    up->eof = true;
    pthread_cond_broadcast(&up->cv);
    pthread_mutex_unlock(&up->mu);
    return NULL;
}

/* ------------------------------------------------------------ start, finish */

static void uploader_free(struct sp_s3_uploader *up)
{
    if (!up)
        return;
    if (up->rfd >= 0)
        close(up->rfd);
    sp_s3_free(up->main);
    for (struct part *p = up->spare, *next; p; p = next) {
        next = p->next;
        part_free(p);
    }
    free(up->etags);
    free(up->have);
    free(up->have_sizes);
    pthread_mutex_destroy(&up->mu);
    pthread_cond_destroy(&up->cv);
    memset(&up->c, 0, sizeof up->c);
    free(up);
}

static int check_absent(struct sp_s3_uploader *up, struct sp_error *err)
{
    uint64_t size;
    int rc = sp_s3_head(up->main, &size, err);
    if (rc == 0 && !up->o.replace)
        return sp_error_set(err, SP_EEXIST, "s3://%s/%s: exists (--force replaces it)", up->u.bucket, up->u.key);
    if (rc == SP_ENOTFOUND || rc == 0) {
        sp_error_clear(err);
        return 0;
    }
    return rc;
}

static int start_threads(struct sp_s3_uploader *up, int wfd, struct sp_error *err)
{
    for (unsigned i = 0; i < up->o.jobs; i++, up->nworkers++)
        if (sp_thread_start(&up->workers[i], worker, up) != 0)
            break;
    if (up->nworkers == up->o.jobs && sp_thread_start(&up->reader, reader, up) == 0) {
        up->reader_started = true;
        return 0;
    }
    close(wfd);
    pthread_mutex_lock(&up->mu);
    up->eof = true;
    pthread_cond_broadcast(&up->cv);
    pthread_mutex_unlock(&up->mu);
    for (unsigned i = 0; i < up->nworkers; i++)
        pthread_join(up->workers[i], NULL);
    return sp_error_set(err, SP_ENOMEM, "s3://%s/%s: cannot start the upload threads", up->u.bucket, up->u.key);
}

/* With a resume file that names an upload the server still has: its id
 * and parts. 1 resumed, 0 a new upload is needed. */
static int resume(struct sp_s3_uploader *up, struct sp_error *err)
{
    uint64_t part_size;
    if (!up->o.resume_file)
        return 0;
    int rc = sp_s3_resume_read(up->o.resume_file, &up->u, &part_size, up->id, sizeof up->id, err);
    if (rc <= 0)
        return rc;
    if (up->o.part_size && part_size != up->o.part_size)
        return sp_error_set(err, SP_EINVAL, "%s: made with another --part-size (%llu)", up->o.resume_file,
                            (unsigned long long)part_size);
    up->o.part_size = part_size;
    up->have = calloc(SP_S3_PARTS_MAX, SP_S3_ETAG_MAX);
    up->have_sizes = calloc(SP_S3_PARTS_MAX, sizeof *up->have_sizes);
    if (!up->have || !up->have_sizes)
        return sp_error_set(err, SP_ENOMEM, "s3: out of memory");
    rc = sp_s3_upload_parts(up->main, up->id, up->have, up->have_sizes, err);
    if (rc == SP_ENOTFOUND) { /* aborted or completed meanwhile: start again */
        sp_error_clear(err);
        free(up->have);
        up->have = NULL;
        return 0;
    }
    return rc < 0 ? rc : 1;
}

/* A new multipart upload, named in the resume file if there is one. */
static int create(struct sp_s3_uploader *up, struct sp_error *err)
{
    int rc = sp_s3_upload_create(up->main, up->id, sizeof up->id, err);
    if (rc == 0 && up->o.resume_file && (rc = sp_s3_resume_write(up->o.resume_file, &up->u, up->o.part_size,
                                                                 up->id, err)) < 0)
        sp_s3_upload_abort(up->main, up->id, NULL);
    return rc;
}

int sp_s3_uploader_start(const struct sp_s3_config *c, const struct sp_s3_url *u, const struct sp_s3_upload_opts *o,
                         int *fd, struct sp_s3_uploader **out, struct sp_error *err)
{
    *out = NULL;
    struct sp_s3_uploader *up = calloc(1, sizeof *up);
    if (!up)
        return sp_error_set(err, SP_ENOMEM, "s3: out of memory");
    up->c = *c;
    up->u = *u;
    up->o = *o;
    if (!up->o.jobs)
        up->o.jobs = SP_S3_JOBS_DEFAULT;
    up->rfd = -1;
    pthread_mutex_init(&up->mu, NULL);
    pthread_cond_init(&up->cv, NULL);
    int pfd[2] = {-1, -1};
    int rc = sp_s3_new(c, u, &up->main, err);
    if (rc == 0 && !(up->etags = calloc(SP_S3_PARTS_MAX, SP_S3_ETAG_MAX)))
        rc = sp_error_set(err, SP_ENOMEM, "s3: out of memory");
    if (rc == 0)
        rc = check_absent(up, err);
    int resumed = rc == 0 ? resume(up, err) : 0;
    if (resumed < 0)
        rc = resumed;
    if (rc == 0 && pipe2(pfd, O_CLOEXEC) != 0)
        rc = sp_error_errno(err, errno, "s3://%s/%s: pipe", u->bucket, u->key);
    if (rc == 0 && (resumed || (rc = create(up, err)) == 0)) {
        up->rfd = pfd[0];
        if ((rc = start_threads(up, pfd[1], err)) < 0)
            sp_s3_upload_abort(up->main, up->id, NULL);
    } else if (pfd[0] >= 0) {
        close(pfd[0]);
        close(pfd[1]);
    }
    if (rc < 0) {
        uploader_free(up);
        return rc;
    }
    *fd = pfd[1];
    *out = up;
    return 0;
}

/* The abort failed too (the server stayed away past its retries): what is
 * left, so it can be aborted by hand or resumed. */
static void left_behind(const struct sp_s3_uploader *up, char *out, size_t sz)
{
    if (up->o.resume_file)
        snprintf(out, sz, "not aborted: upload %s stays for --resume-file %s", up->id, up->o.resume_file);
    else
        snprintf(out, sz, "not aborted: upload %s stays on the server", up->id);
}

int sp_s3_uploader_finish(struct sp_s3_uploader *up, bool ok, struct sp_s3_finish *out, struct sp_error *err)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&up->mu);
    up->stop = !ok;
    pthread_cond_broadcast(&up->cv);
    pthread_mutex_unlock(&up->mu);
    if (up->reader_started)
        pthread_join(up->reader, NULL);
    for (unsigned i = 0; i < up->nworkers; i++)
        pthread_join(up->workers[i], NULL);
    int rc = 0;
    bool failed = up->failed;
    if (failed)
        rc = sp_error_set(err, up->err.code, "%s", up->err.msg);
    else if (ok)
        rc = sp_s3_upload_complete(up->main, up->id, up->etags, up->nparts, err);
    bool gone = ok && rc == 0;
    if (!ok || rc < 0) {
        /* whatever stops us, the parts go: a stop waits for the abort */
        sp_cancel_defer();
        struct sp_error e = {0};
        gone = sp_s3_upload_abort(up->main, up->id, &e) == 0;
        sp_cancel_resume();
    }
    if (!gone)
        left_behind(up, out->left, sizeof out->left);
    /* the upload is complete or gone: nothing to resume */
    if (up->o.resume_file && gone)
        unlink(up->o.resume_file);
    out->reused = up->reused;
    uploader_free(up);
    /* the upload's own failure is the cause of the writer's (EPIPE) */
    return ok || failed ? rc : 0;
}
