#include "disk/registry.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "disk/copy.h"

extern const struct sp_disk_driver sp_disk_driver_raw;
extern const struct sp_disk_driver sp_disk_driver_vhd;
extern const struct sp_disk_driver sp_disk_driver_vmdk;
extern const struct sp_disk_driver sp_disk_driver_qcow2;
extern const struct sp_disk_driver sp_disk_driver_vhdx;
extern const struct sp_disk_driver sp_disk_driver_tar;
extern const struct sp_disk_driver sp_disk_driver_compressed;

/* One line per format. raw bids last resort on everything. */
const struct sp_disk_driver *const sp_disk_drivers[] = {
    &sp_disk_driver_vhd,
    &sp_disk_driver_vmdk,
    &sp_disk_driver_vhdx,
    &sp_disk_driver_tar,
    &sp_disk_driver_qcow2,
    &sp_disk_driver_compressed,
    &sp_disk_driver_raw,
    NULL,
};

const struct sp_disk_driver *sp_disk_driver_find(const char *name)
{
    for (int i = 0; sp_disk_drivers[i]; i++)
        if (strcasecmp(sp_disk_drivers[i]->name, name) == 0)
            return sp_disk_drivers[i];
    return NULL;
}

const struct sp_disk_driver *sp_disk_driver_for_name(const char *path)
{
    const char *ext = sp_path_extension(path);
    for (int i = 0; ext && sp_disk_drivers[i]; i++)
        for (const char *const *e = sp_disk_drivers[i]->extensions; e && *e; e++)
            if (strcasecmp(ext, *e) == 0)
                return sp_disk_drivers[i];
    return NULL;
}

const struct sp_disk_driver *sp_disk_probe(const struct sp_probe *p)
{
    const struct sp_disk_driver *best = NULL;
    int best_score = -1;
    for (int i = 0; sp_disk_drivers[i]; i++) {
        int score = sp_disk_drivers[i]->probe(p);
        if (score > best_score) {
            best = sp_disk_drivers[i];
            best_score = score;
        }
    }
    return best;
}

static int open_error(const char *path, struct sp_error *err)
{
    int e = errno;
    int rc = sp_error_errno(err, e, "%s", path);
    if (e == ENOENT)
        err->code = rc = SP_ENOTFOUND;
    return rc;
}

int sp_disk_probe_file(const char *path, const struct sp_disk_driver **drv, struct sp_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return open_error(path, err);
    if (fstat(fd, &st) != 0) {
        int rc = sp_error_errno(err, errno, "%s", path);
        close(fd);
        return rc;
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return sp_error_set(err, SP_EFORMAT, "%s: is a directory", path);
    }
    uint8_t head[SP_PROBE_HEAD], tail[SP_PROBE_TAIL];
    struct sp_probe p = {.head = head, .tail = tail};
    uint64_t size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    ssize_t n = pread(fd, head, sizeof head, 0);
    p.head_len = n > 0 ? (size_t)n : 0;
    if (size >= SP_PROBE_TAIL) {
        n = pread(fd, tail, sizeof tail, (off_t)(size - SP_PROBE_TAIL));
        p.tail_len = n == (ssize_t)sizeof tail ? sizeof tail : 0;
    }
    p.file_size = size;
    close(fd);
    *drv = sp_disk_probe(&p);
    return SP_OK;
}

int sp_disk_open_with(const struct sp_disk_driver *drv, const char *path, const struct sp_disk_open_opts *o,
                      struct sp_disk **out, struct sp_error *err)
{
    if (o->depth >= SP_DISK_MAX_DEPTH)
        return sp_error_set(err, SP_ELIMIT, "%s: more than %d files stacked (a loop?)", path, SP_DISK_MAX_DEPTH);
    if (!drv->open)
        return sp_error_set(err, SP_EUNSUPPORTED, "%s: unsupported format: %s", path, drv->refuse);
    int rc = drv->open(path, o, out, err);
    if (rc == SP_OK)
        (*out)->driver = drv;
    return rc;
}

int sp_disk_open_any(const char *path, const struct sp_disk_open_opts *o, struct sp_disk **out,
                     struct sp_error *err)
{
    const struct sp_disk_driver *drv;
    int rc = sp_disk_probe_file(path, &drv, err);
    return rc == SP_OK ? sp_disk_open_with(drv, path, o, out, err) : rc;
}

int sp_disk_open_as(const char *path, const char *name, const struct sp_disk_open_opts *o, struct sp_disk **out,
                    struct sp_error *err)
{
    const struct sp_disk_driver *want = sp_disk_driver_find(name), *drv;
    if (!want || !want->open)
        return sp_error_set(err, SP_EUNSUPPORTED, "%s: unsupported format: %s", path, name);
    int rc = sp_disk_probe_file(path, &drv, err);
    if (rc != SP_OK)
        return rc;
    if (drv != want)
        return sp_error_set(err, SP_EFORMAT, "%s: declared %s, but the file is %s", path, want->name,
                            drv->open ? drv->name : drv->refuse);
    return sp_disk_open_with(want, path, o, out, err);
}

int sp_disk_open(const char *path, bool writable, struct sp_disk **out, struct sp_error *err)
{
    struct sp_disk_open_opts o = {.writable = writable};
    return sp_disk_open_any(path, &o, out, err);
}

int sp_disk_layers(struct sp_disk *d, struct sp_disk_layer *l, int max, int *n, struct sp_error *err)
{
    if (d->driver && d->driver->layers)
        return d->driver->layers(d, l, max, n, err);
    *n = 0;
    if (max < 1)
        return SP_OK;
    memset(l, 0, sizeof *l);
    l->path = d->path;
    snprintf(l->variant, sizeof l->variant, "%s", d->driver ? d->driver->name : "raw");
    l->virtual_size = d->size;
    *n = 1;
    return sp_disk_data_bytes(d, &l->allocated, err);
}

int sp_disk_reads_file(struct sp_disk *d, const char *path, bool *reads, struct sp_error *err)
{
    *reads = false;
    struct stat target;
    if (stat(path, &target) != 0)
        return SP_OK;
    struct sp_disk_layer *l = sp_alloc(sizeof *l * SP_DISK_MAX_LAYERS, err);
    if (!l)
        return SP_ENOMEM;
    int n = 0;
    int rc = sp_disk_layers(d, l, SP_DISK_MAX_LAYERS, &n, err);
    for (int i = 0; rc == SP_OK && i < n && !*reads; i++) {
        struct stat st;
        *reads = l[i].path && stat(l[i].path, &st) == 0 && st.st_dev == target.st_dev && st.st_ino == target.st_ino;
    }
    free(l);
    return rc;
}

struct check_ctx {
    void (*problem)(void *ctx, const char *msg);
    void *ctx;
    int count;
};

static void count_problem(void *p, const char *msg)
{
    struct check_ctx *cc = p;
    cc->problem(cc->ctx, msg);
    cc->count++;
}

/* The default check: every extent's metadata read (block tables, grain
 * tables, L2 tables), no data. */
static int walk_extents(struct sp_disk *d, struct sp_error *err)
{
    struct sp_extent ext;
    for (uint64_t off = 0; off < d->size; off += ext.len) {
        int rc = sp_disk_next_extent(d, off, &ext, err);
        if (rc != SP_OK)
            return rc;
    }
    return SP_OK;
}

int sp_disk_check(const char *path, void (*problem)(void *ctx, const char *msg), void *ctx, int *count,
                  struct sp_error *err)
{
    struct check_ctx cc = {problem, ctx, 0};
    *count = 0;
    /* path itself missing or unreadable: no check ran. A file below it
     * (a parent) missing is a finding. */
    const struct sp_disk_driver *drv;
    int rc = sp_disk_probe_file(path, &drv, err);
    if (rc != SP_OK)
        return rc;
    struct sp_disk *d = NULL;
    struct sp_error e;
    sp_error_clear(&e);
    struct sp_disk_open_opts o = {.writable = false};
    rc = sp_disk_open_with(drv, path, &o, &d, &e); /* the file is probed once */
    if (rc == SP_EUNSUPPORTED || rc == SP_ENOMEM) {
        *err = e;
        return rc;
    }
    if (rc != SP_OK) {
        count_problem(&cc, e.msg);
        *count = cc.count;
        return SP_OK;
    }
    sp_error_clear(&e);
    rc = d->driver->check ? d->driver->check(d, count_problem, &cc, &e) : walk_extents(d, &e);
    if (rc != SP_OK)
        count_problem(&cc, e.msg);
    sp_disk_close(d);
    *count = cc.count;
    return SP_OK;
}
