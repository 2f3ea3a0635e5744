/* The resume file of an upload (s3_stream.h): which multipart upload an
 * interrupted export left, so the next run with the same file adds to it.
 *
 *     snapport-s3-resume 1
 *     url s3://BUCKET/KEY
 *     part-size N            (0: the growing sizes)
 *     upload-id ID
 */
#include "s3/s3_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RESUME_MAGIC "snapport-s3-resume 1"
#define RESUME_MAX 4096  /* the four lines; a larger file is not ours */

/* The value of "name VALUE" on its own line in text, into out. */
static int field(const char *text, const char *name, char *out, size_t sz)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, n) != 0 || p[n] != ' ')
            continue;
        const char *v = p + n + 1, *e = strchr(v, '\n');
        size_t len = e ? (size_t)(e - v) : strlen(v);
        if (len == 0 || len >= sz)
            return SP_EFORMAT;
        memcpy(out, v, len);
        out[len] = '\0';
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
                return SP_EFORMAT;
        return 0;
    }
    return SP_EFORMAT;
}

int sp_s3_resume_parse(const char *text, const struct sp_s3_url *u, uint64_t *part_size, char *id, size_t idsz,
                       struct sp_error *err)
{
    char url[sizeof u->bucket + sizeof u->key + 8], want[sizeof url], size[24];
    if (strncmp(text, RESUME_MAGIC "\n", strlen(RESUME_MAGIC) + 1) != 0 || field(text, "url", url, sizeof url) ||
        field(text, "part-size", size, sizeof size) || field(text, "upload-id", id, idsz))
        return sp_error_set(err, SP_EFORMAT, "not a snapport resume file");
    snprintf(want, sizeof want, SP_S3_PREFIX "%s/%s", u->bucket, u->key);
    if (strcmp(url, want) != 0)
        return sp_error_set(err, SP_EINVAL, "made for %s, not %s", url, want);
    char *end;
    unsigned long long v = strtoull(size, &end, 10);
    if (*end || (v && (v < SP_S3_PART_MIN || v > SP_S3_PART_MAX)))
        return sp_error_set(err, SP_EFORMAT, "part-size %s: not 0 or 5M..5G", size);
    *part_size = v;
    return 0;
}

int sp_s3_resume_read(const char *path, const struct sp_s3_url *u, uint64_t *part_size, char *id, size_t idsz,
                      struct sp_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : sp_error_errno(err, errno, "%s", path);
    char text[RESUME_MAX + 1];
    ssize_t n = read(fd, text, RESUME_MAX + 1);
    close(fd);
    if (n < 0)
        return sp_error_errno(err, errno, "%s", path);
    if (n > RESUME_MAX)
        return sp_error_set(err, SP_EFORMAT, "%s: not a snapport resume file (too large)", path);
    text[n] = '\0';
    int rc = sp_s3_resume_parse(text, u, part_size, id, idsz, err);
    return rc < 0 ? sp_error_prefix(err, "%s", path) : 1;
}

int sp_s3_resume_write(const char *path, const struct sp_s3_url *u, uint64_t part_size, const char *id,
                       struct sp_error *err)
{
    char tmp[SP_S3_PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wx");
    if (!f)
        return sp_error_errno(err, errno, "%s", tmp);
    fprintf(f, RESUME_MAGIC "\nurl " SP_S3_PREFIX "%s/%s\npart-size %llu\nupload-id %s\n", u->bucket, u->key,
            (unsigned long long)part_size, id);
    int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return sp_error_errno(err, e, "%s", path);
    }
    return 0;
}
