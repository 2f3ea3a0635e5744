/* OVA members from a tar or from a folder. */
#include "archive/ova_package.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

#define PKG_MAX_FILES (SP_OVF_MAX_ITEMS + 3 + SP_OVF_MAX_CHUNKS)

struct ova_package {
    struct sp_ova_reader *tar;    /* a tar, or: */
    int dirfd;
    char label[4096];
    char ovf[SP_OVA_NAME_MAX + 1];
    char (*order)[SP_OVA_NAME_MAX + 1];
    int norder, next;
    int fd;                       /* the folder's current file */
    uint64_t left;
};

int ova_package_tar(struct sp_instream *in, const char *label, struct ova_package **out, struct sp_error *err)
{
    struct ova_package *p = sp_zalloc(sizeof *p, err);
    if (!p)
        return SP_ENOMEM;
    p->dirfd = p->fd = -1;
    snprintf(p->label, sizeof p->label, "%s", label);
    int rc = sp_ova_reader_open(in, label, &p->tar, err);
    if (rc != SP_OK) {
        free(p);
        return rc;
    }
    *out = p;
    return SP_OK;
}

/* The one .ovf of the folder. */
static int find_ovf(struct ova_package *p, struct sp_error *err)
{
    int fd = dup(p->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return sp_error_errno(err, errno, "%s", p->label);
    }
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (sp_ova_has_ext(e->d_name, ".ovf") && sp_ova_name_ok(e->d_name) && found++ == 0)
            snprintf(p->ovf, sizeof p->ovf, "%s", e->d_name);
    closedir(d);
    if (found != 1)
        return sp_error_set(err, SP_EFORMAT, "%s: %s", p->label,
                            found ? "more than one .ovf: name the one to import" : "no .ovf in this folder");
    return SP_OK;
}

int ova_package_dir(const char *path, struct ova_package **out, struct sp_error *err)
{
    struct ova_package *p = sp_zalloc(sizeof *p, err);
    if (!p)
        return SP_ENOMEM;
    p->fd = p->dirfd = -1;
    snprintf(p->label, sizeof p->label, "%s", path);
    struct stat st;
    int rc = SP_OK;
    if (stat(path, &st) != 0) {
        rc = sp_error_errno(err, errno, "%s", path);
    } else if (S_ISDIR(st.st_mode)) {
        p->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        rc = p->dirfd < 0 ? sp_error_errno(err, errno, "%s", path) : find_ovf(p, err);
    } else {
        /* the .ovf itself: its folder holds the rest */
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        const char *base = slash ? slash + 1 : path;
        if (slash)
            *(slash == dir ? slash + 1 : slash) = '\0';
        else
            snprintf(dir, sizeof dir, ".");
        snprintf(p->ovf, sizeof p->ovf, "%s", base);
        p->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (p->dirfd < 0)
            rc = sp_error_errno(err, errno, "%s", dir);
        else if (!sp_ova_name_ok(p->ovf))
            rc = sp_error_set(err, SP_EINVAL, "%s: not a file name", path);
    }
    p->order = rc == SP_OK ? sp_zalloc(sizeof *p->order * PKG_MAX_FILES, err) : NULL;
    if (rc == SP_OK && !p->order)
        rc = SP_ENOMEM;
    if (rc != SP_OK) {
        ova_package_free(p);
        return rc;
    }
    snprintf(p->order[p->norder++], SP_OVA_NAME_MAX + 1, "%s", p->ovf);
    *out = p;
    return SP_OK;
}

static bool exists_at(int dirfd, const char *name)
{
    struct stat st;
    return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void add_order(struct ova_package *p, const char *name)
{
    for (int i = 0; i < p->norder; i++)
        if (strcmp(p->order[i], name) == 0)
            return;
    if (p->norder < PKG_MAX_FILES)
        snprintf(p->order[p->norder++], SP_OVA_NAME_MAX + 1, "%s", name);
}

/* A file, or its chunk members in order up to the first one missing (the
 * importer reports it). */
static void plan_file(struct ova_package *p, const struct sp_ovf_file *f)
{
    char name[SP_OVA_NAME_MAX + 1];
    sp_ovf_chunk_name(f, 0, name, sizeof name);
    if (!f->nchunks || !exists_at(p->dirfd, name)) {
        if (exists_at(p->dirfd, f->href))
            add_order(p, f->href);
        return;
    }
    for (int k = 0; k < f->nchunks; k++) {
        sp_ovf_chunk_name(f, k, name, sizeof name);
        if (!exists_at(p->dirfd, name))
            return;
        add_order(p, name);
    }
}

int ova_package_plan(struct ova_package *p, const char *ovf_name, const struct sp_ovf_system *sys,
                     struct sp_error *err)
{
    (void)err;
    if (p->tar)
        return SP_OK;
    char stem[SP_OVA_NAME_MAX + 1], name[SP_OVA_NAME_MAX + 8];
    snprintf(stem, sizeof stem, "%.*s", (int)(strlen(ovf_name) - 4), ovf_name);
    snprintf(name, sizeof name, "%s.mf", stem);
    if (exists_at(p->dirfd, name))
        add_order(p, name);
    snprintf(name, sizeof name, "%s.cert", stem);
    if (exists_at(p->dirfd, name))
        add_order(p, name);
    for (int i = 0; i < sys->nfiles; i++)
        plan_file(p, &sys->files[i]);
    return SP_OK;
}

int ova_package_next(struct ova_package *p, char name[SP_OVA_NAME_MAX + 1], uint64_t *size, bool *eof,
                     struct sp_error *err)
{
    if (p->tar)
        return sp_ova_next(p->tar, name, size, eof, err);
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    *eof = p->next >= p->norder;
    if (*eof)
        return SP_OK;
    const char *n = p->order[p->next++];
    p->fd = openat(p->dirfd, n, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (p->fd < 0)
        return sp_error_errno(err, errno, "%s: %s", p->label, n);
    if (fstat(p->fd, &st) != 0 || !S_ISREG(st.st_mode))
        return sp_error_set(err, SP_EFORMAT, "%s: %s: not a regular file", p->label, n);
    snprintf(name, SP_OVA_NAME_MAX + 1, "%s", n);
    *size = p->left = (uint64_t)st.st_size;
    return SP_OK;
}

int ova_package_read(struct ova_package *p, void *buf, size_t len, size_t *got, struct sp_error *err)
{
    if (p->tar)
        return sp_ova_read(p->tar, buf, len, got, err);
    *got = 0;
    if (p->fd < 0 || p->left == 0)
        return SP_OK;
    for (;;) {
        ssize_t n = read(p->fd, buf, (size_t)sp_min_u64(len, p->left));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return sp_error_errno(err, errno, "%s: %s", p->label, p->order[p->next - 1]);
        if (n == 0)
            return sp_error_set(err, SP_EFORMAT, "%s: %s: shrank while read", p->label, p->order[p->next - 1]);
        p->left -= (uint64_t)n;
        *got = (size_t)n;
        return SP_OK;
    }
}

const char *ova_package_label(const struct ova_package *p) { return p->label; }

void ova_package_free(struct ova_package *p)
{
    if (!p)
        return;
    sp_ova_reader_free(p->tar);
    if (p->fd >= 0)
        close(p->fd);
    if (p->dirfd >= 0)
        close(p->dirfd);
    free(p->order);
    free(p);
}
