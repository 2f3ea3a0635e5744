/* Read-ahead of an input's first bytes, handed back to whichever reader
 * takes the input. */
#include "base/instream.h"

#include <archive.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cancel.h"

#define INSTREAM_BUF (1u << 20)

static ssize_t read_retry(int fd, void *buf, size_t len)
{
    for (;;) {
        if (sp_cancel_pending()) {
            errno = ECANCELED;
            return -1;
        }
        ssize_t n = read(fd, buf, len);
        if (n >= 0 || errno != EINTR)
            return n;
    }
}

int sp_instream_peek(struct sp_instream *in, size_t want, const char *name, struct sp_error *err)
{
    if (in->head_pos > 0)
        return sp_error_set(err, SP_EINVAL, "%s: read ahead after a reader took bytes", name);
    if (want > SP_INSTREAM_PEEK_MAX)
        want = SP_INSTREAM_PEEK_MAX;
    while (in->head_len < want && !in->head_eof) {
        ssize_t n = read_retry(in->fd, in->head + in->head_len, want - in->head_len);
        if (n < 0)
            return sp_error_errno(err, errno, "%s", name);
        in->head_eof = n == 0;
        in->head_len += (size_t)n;
    }
    return SP_OK;
}

int sp_instream_init(struct sp_instream *in, int fd, const char *name, struct sp_error *err)
{
    memset(in, 0, sizeof *in);
    in->fd = fd;
    return sp_instream_peek(in, SP_INSTREAM_HEAD, name, err);
}

int sp_instream_read(struct sp_instream *in, void *buf, size_t len, size_t *got, struct sp_error *err)
{
    *got = 0;
    if (in->head_pos < in->head_len) {
        size_t n = in->head_len - in->head_pos < len ? in->head_len - in->head_pos : len;
        memcpy(buf, in->head + in->head_pos, n);
        in->head_pos += n;
        *got = n;
        return SP_OK;
    }
    ssize_t n = read_retry(in->fd, buf, len);
    if (n < 0)
        return sp_error_errno(err, errno, "read");
    *got = (size_t)n;
    return SP_OK;
}

static la_ssize_t archive_read_cb(struct archive *a, void *ctx, const void **out)
{
    struct sp_instream *in = ctx;
    if (in->head_pos < in->head_len) {
        *out = in->head + in->head_pos;
        la_ssize_t n = (la_ssize_t)(in->head_len - in->head_pos);
        in->head_pos = in->head_len;
        return n;
    }
    ssize_t n = read_retry(in->fd, in->buf, INSTREAM_BUF);
    if (n < 0) {
        archive_set_error(a, errno, "read: %s", strerror(errno));
        return -1;
    }
    *out = in->buf;
    return n;
}

int sp_instream_archive_open(struct archive *a, struct sp_instream *in)
{
    if (!in->buf && !(in->buf = malloc(INSTREAM_BUF))) {
        archive_set_error(a, ENOMEM, "out of memory");
        return ARCHIVE_FATAL;
    }
    return archive_read_open(a, in, NULL, archive_read_cb, NULL);
}

void sp_instream_free(struct sp_instream *in)
{
    free(in->buf);
    in->buf = NULL;
}
