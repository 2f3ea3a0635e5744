#include "base/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cancel.h"

int sp_pread_full(int fd, void *buf, size_t len, uint64_t off, const char *what, struct sp_error *err)
{
    uint8_t *p = buf;
    while (len > 0) {
        if (sp_cancel_pending())
            return sp_cancel_check(err);
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return sp_error_errno(err, errno, "reading %s at offset %llu", what, (unsigned long long)off);
        }
        if (n == 0)
            return sp_error_set(err, SP_EFORMAT, "truncated: %s at offset %llu is past the end of the file",
                                what, (unsigned long long)off);
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return SP_OK;
}

int sp_pwrite_full(int fd, const void *buf, size_t len, uint64_t off, const char *what, struct sp_error *err)
{
    const uint8_t *p = buf;
    while (len > 0) {
        if (sp_cancel_pending())
            return sp_cancel_check(err);
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return sp_error_errno(err, errno, "writing %s at offset %llu", what, (unsigned long long)off);
        }
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return SP_OK;
}

bool sp_is_zero(const void *p, size_t len)
{
    const uint8_t *b = p;
    /* Check a 16-byte head by hand, then compare the buffer with itself shifted:
     * memcmp is vectorised, so this runs at memory speed. */
    size_t head = len < 16 ? len : 16;
    for (size_t i = 0; i < head; i++)
        if (b[i])
            return false;
    if (len <= 16)
        return true;
    return memcmp(b, b + 16, len - 16) == 0;
}

int sp_parse_size(const char *s, uint64_t *out)
{
    if (!s || !*s)
        return SP_EINVAL;
    errno = 0;
    char *end = NULL;
    if (!isdigit((unsigned char)s[0]))
        return SP_EINVAL;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s)
        return SP_EINVAL;
    unsigned shift = 0;
    switch (*end) {
    case '\0': break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    default: return SP_EINVAL;
    }
    if (shift && (*end == 'i' || *end == 'I'))
        end++;
    if (shift && (*end == 'b' || *end == 'B'))
        end++;
    if (*end)
        return SP_EINVAL;
    if (shift && v > (UINT64_MAX >> shift))
        return SP_EINVAL;
    *out = (uint64_t)v << shift;
    return SP_OK;
}

const char *sp_format_size(uint64_t v, char *buf, size_t len)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double d = (double)v;
    unsigned u = 0;
    while (d >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
        d /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%llu B", (unsigned long long)v);
    else
        snprintf(buf, len, "%.1f %s", d, units[u]);
    return buf;
}

void *sp_alloc(size_t len, struct sp_error *err)
{
    void *p = malloc(len ? len : 1);
    if (!p)
        sp_error_set(err, SP_ENOMEM, "out of memory (%zu bytes)", len);
    return p;
}

void *sp_zalloc(size_t len, struct sp_error *err)
{
    void *p = calloc(1, len ? len : 1);
    if (!p)
        sp_error_set(err, SP_ENOMEM, "out of memory (%zu bytes)", len);
    return p;
}

void sp_writeback_init(struct sp_writeback *wb, int fd)
{
    wb->fd = fd;
    wb->lo = UINT64_MAX;
    wb->hi = 0;
}

void sp_writeback_note(struct sp_writeback *wb, uint64_t off, uint64_t len)
{
    if (wb->fd < 0)
        return; /* off: the output need not be durable */
    if (off < wb->lo)
        wb->lo = off;
    if (off + len > wb->hi)
        wb->hi = off + len;
    if (wb->hi - wb->lo < SP_WRITEBACK_KICK)
        return;
    /* Advisory: a file system without it just leaves the work to fsync. */
    (void)sync_file_range(wb->fd, (off64_t)wb->lo, (off64_t)(wb->hi - wb->lo), SYNC_FILE_RANGE_WRITE);
    wb->lo = UINT64_MAX;
    wb->hi = 0;
}

ssize_t sp_write_out(int fd, const void *buf, size_t len, struct sp_writeback *wb, uint64_t *written)
{
    for (;;) {
        if (sp_cancel_pending()) {
            errno = ECANCELED; /* the caller's error path unwinds; the CLI names the signal */
            return -1;
        }
        ssize_t n = write(fd, buf, len);
        if (n >= 0) {
            /* a file the caller will fsync: let the disk start early (a pipe ignores it) */
            sp_writeback_note(wb, *written, (uint64_t)n);
            *written += (uint64_t)n;
            return n;
        }
        if (errno != EINTR)
            return -1;
    }
}

const char *sp_path_extension(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    return dot && dot != base && dot[1] ? dot + 1 : NULL;
}

void sp_hex_encode(const unsigned char *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}
