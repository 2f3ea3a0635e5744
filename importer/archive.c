/* Which archive an input is: a folder or an .ovf is an unpacked OVF; a tar
 * whose first member is an .ovf is an OVA; anything else goes to the XVA
 * reader (which also takes gzip and zstd streams). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/instream.h"
#include "archive/ova.h"
#include "importer/import.h"

enum kind { KIND_XVA, KIND_OVA, KIND_OVF_DIR };

static bool is_ovf_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return true;
    return sp_ova_has_ext(path, ".ovf");
}

/* A tar header (ustar or GNU magic, or a V7 header: a NUL-terminated name
 * and an octal size) naming an .ovf first. */
static bool head_is_ova(const struct sp_instream *in)
{
    if (in->head_len < 512)
        return false;
    char name[101];
    memcpy(name, in->head, 100);
    name[100] = '\0';
    return sp_ova_has_ext(name, ".ovf");
}

static int open_input(const char *path, const char *format, struct sp_instream *in, enum kind *kind,
                      const char **label, struct sp_error *err)
{
    bool dash = strcmp(path, "-") == 0;
    *label = dash ? "stdin" : path;
    if (format && strcmp(format, "xva") != 0 && strcmp(format, "ova") != 0)
        return sp_error_set(err, SP_EINVAL, "%s: unknown archive format '%s' (xva or ova)", *label, format);
    if (!dash && is_ovf_path(path)) {
        if (format && strcmp(format, "xva") == 0)
            return sp_error_set(err, SP_EINVAL, "%s: a folder or .ovf is not an XVA", path);
        *kind = KIND_OVF_DIR;
        return SP_OK;
    }
    int fd = dash ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sp_error_errno(err, errno, "%s", path);
    int rc = sp_instream_init(in, fd, *label, err);
    if (rc != SP_OK) {
        if (!dash)
            close(fd);
        return rc;
    }
    if (format)
        *kind = strcmp(format, "ova") == 0 ? KIND_OVA : KIND_XVA;
    else
        *kind = head_is_ova(in) ? KIND_OVA : KIND_XVA;
    return SP_OK;
}

static void close_input(struct sp_instream *in, const char *path, enum kind kind)
{
    if (kind != KIND_OVF_DIR && strcmp(path, "-") != 0 && in->fd >= 0)
        close(in->fd);
    sp_instream_free(in);
}

int sp_archive_input_open(const char *path, const char *format, struct sp_instream *in, bool *ova, bool *dir,
                          const char **label, struct sp_error *err)
{
    enum kind kind = KIND_XVA;
    int rc = open_input(path, format, in, &kind, label, err);
    *ova = kind != KIND_XVA;
    *dir = kind == KIND_OVF_DIR;
    return rc;
}

void sp_archive_input_close(struct sp_instream *in, const char *path, bool dir)
{
    close_input(in, path, dir ? KIND_OVF_DIR : KIND_XVA);
}

int sp_import_archive(struct sp_store *s, const char *path, const char *format, const struct sp_import_opts *o,
                      char uuid[SP_UUID_STR], struct sp_error *err)
{
    struct sp_instream in;
    memset(&in, 0, sizeof in);
    in.fd = -1;
    enum kind kind = KIND_XVA;
    const char *label;
    /* Looking at the input may wait for a writer (`export | import` on one
     * store): not while holding the store's lock. */
    sp_store_unlock(s);
    int rc = open_input(path, format, &in, &kind, &label, err);
    if (rc != SP_OK)
        return rc;
    if (kind == KIND_XVA)
        rc = sp_import_xva(s, &in, label, o, uuid, err);
    else
        rc = sp_import_ova(s, kind == KIND_OVA ? &in : NULL, path, label, o, uuid, err);
    close_input(&in, path, kind);
    return rc;
}

int sp_verify_archive(const char *path, const char *format, struct sp_archive_info *info,
                      const struct sp_progress *prog, struct sp_error *err)
{
    struct sp_instream in;
    memset(&in, 0, sizeof in);
    in.fd = -1;
    enum kind kind = KIND_XVA;
    const char *label;
    int rc = open_input(path, format, &in, &kind, &label, err);
    if (rc != SP_OK)
        return rc;
    if (kind == KIND_XVA)
        rc = sp_verify_xva(&in, label, info, prog, err);
    else
        rc = sp_verify_ova(kind == KIND_OVA ? &in : NULL, path, label, info, prog, err);
    close_input(&in, path, kind);
    return rc;
}
