#include "formats/image.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/chain.h"
#include "formats/raw.h"
#include "formats/vhd.h"

struct magic {
    const char *bytes;
    size_t len;
    const char *name;
};

/* Formats that would otherwise be read as raw garbage. */
static const struct magic UNSUPPORTED[] = {
    {"QFI\xfb", 4, "qcow2"},
    {"KDMV", 4, "VMDK (sparse)"},
    {"# Disk DescriptorFile", 21, "VMDK (descriptor)"},
    {"vhdxfile", 8, "VHDX"},
};

int sp_image_detect(const char *path, enum sp_image_format *fmt, struct sp_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int rc = sp_error_errno(err, errno, "%s", path);
        if (fd >= 0)
            close(fd);
        return rc;
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return sp_error_set(err, SP_EFORMAT, "%s: is a directory", path);
    }
    bool vhd = S_ISREG(st.st_mode) && sp_vhd_probe(fd, (uint64_t)st.st_size);
    char head[32] = {0};
    ssize_t n = pread(fd, head, sizeof head, 0);
    close(fd);
    if (vhd) {
        *fmt = SP_IMAGE_VHD;
        return SP_OK;
    }
    for (size_t i = 0; i < sizeof UNSUPPORTED / sizeof UNSUPPORTED[0]; i++)
        if (n >= (ssize_t)UNSUPPORTED[i].len && memcmp(head, UNSUPPORTED[i].bytes, UNSUPPORTED[i].len) == 0)
            return sp_error_set(err, SP_EUNSUPPORTED, "%s: %s images are not supported yet", path,
                                UNSUPPORTED[i].name);
    *fmt = SP_IMAGE_RAW;
    return SP_OK;
}

int sp_image_open(const char *path, bool writable, struct sp_disk **out, struct sp_error *err)
{
    enum sp_image_format fmt;
    int rc = sp_image_detect(path, &fmt, err);
    if (rc != SP_OK)
        return rc;
    if (fmt == SP_IMAGE_RAW)
        return sp_raw_open(path, writable, out, err);
    struct sp_chain *c;
    rc = sp_chain_open(path, writable, &c, err);
    if (rc != SP_OK)
        return rc;
    *out = sp_chain_disk(c);
    return SP_OK;
}

struct check_ctx {
    void (*problem)(void *ctx, const char *msg);
    void *ctx;
    const char *file;
    int count;
};

static void layer_problem(void *p, const char *msg)
{
    struct check_ctx *cc = p;
    char line[SP_ERROR_MAX + 256];
    snprintf(line, sizeof line, "%s: %s", cc->file, msg);
    cc->problem(cc->ctx, line);
    cc->count++;
}

static void whole_problem(struct check_ctx *cc, const char *msg)
{
    cc->problem(cc->ctx, msg);
    cc->count++;
}

int sp_image_check(const char *path, void (*problem)(void *ctx, const char *msg), void *ctx, int *count,
                   struct sp_error *err)
{
    struct check_ctx cc = {problem, ctx, path, 0};
    *count = 0;
    enum sp_image_format fmt;
    struct sp_error e;
    sp_error_clear(&e);
    int rc = sp_image_detect(path, &fmt, &e);
    if (rc == SP_ENOTFOUND || rc == SP_EIO)
        return sp_error_set(err, rc, "%s", e.msg);
    if (rc != SP_OK) {
        whole_problem(&cc, e.msg);
        *count = cc.count;
        return SP_OK;
    }
    if (fmt == SP_IMAGE_RAW)
        return SP_OK; /* a raw file has no structure to damage */
    struct sp_chain *c;
    rc = sp_chain_open(path, false, &c, &e);
    if (rc != SP_OK) {
        whole_problem(&cc, e.msg);
        *count = cc.count;
        return SP_OK;
    }
    for (int i = 0; i < sp_chain_depth(c); i++) {
        struct sp_vhd *v = sp_chain_layer(c, i);
        cc.file = v->path;
        sp_error_clear(&e);
        if (sp_vhd_check(v, layer_problem, &cc, &e) != SP_OK)
            whole_problem(&cc, e.msg);
    }
    sp_disk_close(sp_chain_disk(c));
    *count = cc.count;
    return SP_OK;
}
