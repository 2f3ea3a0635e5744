/* Archive to archive, XVA <-> OVA, without a store and without a raw copy
 * of a disk anywhere: a loop over the archive table. Each disk streams from
 * the input's reader (which writes blocks or grains at ascending offsets)
 * into the output's writer (which pulls extents) through a bounded queue
 * (disk/pushdisk.h), the writer in a thread of its own.
 *
 * The reader gives the disks in its stream's order; the writer takes them
 * in that order (XVA: its VDI ids follow it; OVA: each disk waits in its
 * spool). Disks the output does not carry (a suspended VM's memory image,
 * a CD's VDI) are still read and checked. The reader's checks of the end
 * (manifest, signature, trailing members) come before the writer's end: a
 * failure there fails the conversion, and the caller drops the output. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/cancel.h"
#include "base/util.h"
#include "convert/convert.h"
#include "disk/copy.h"
#include "disk/pushdisk.h"
#include "disk/registry.h"

/* Raw images are whole sectors: a file that is not is no disk. */
#define SECTOR 512u

/* The time the output's members carry: the input file's, else now. */
static int64_t input_mtime(const struct sp_archive_reader *r)
{
    struct stat st;
    if (r->in && r->in->fd >= 0 && fstat(r->in->fd, &st) == 0 && S_ISREG(st.st_mode))
        return (int64_t)st.st_mtime;
    return (int64_t)time(NULL);
}

/* The output's options: the defaults of export (XVA: xxhash, plain; OVA:
 * SHA-256 manifest, OVF 1.0). */
static void write_opts(const struct sp_convert_opts *o, int64_t mtime, bool forward_only,
                       struct sp_archive_write_opts *wo)
{
    memset(wo, 0, sizeof *wo);
    wo->digest = SP_XVA_XXHASH;
    wo->compress = SP_XVA_PLAIN;
    wo->mf_digest = SP_DIGEST_SHA256;
    wo->ovf_version = SP_OVF_1;
    wo->spool_dir = o->spool_dir;
    wo->mtime = mtime;
    wo->forward_only = forward_only;
}

/* ---- one disk between two threads ------------------------------------------ */

struct stream {
    struct sp_archive_writer *w;
    int k;
    struct sp_pushdisk *pd;
    int wrc;                          /* the writer's status and error */
    struct sp_error werr;
};

static void *writer_main(void *p)
{
    struct stream *x = p;
    x->wrc = sp_archive_add_disk(x->w, x->k, sp_pushdisk_disk(x->pd), &x->werr);
    if (x->wrc != SP_OK)
        sp_pushdisk_abort(x->pd);
    return NULL;
}

/* The status of one disk streamed between two threads: the side that gave
 * up first tells why (the other side's error only follows from it). */
static int pair_status(struct stream *x, int rrc, struct sp_error *err)
{
    if (x->wrc != SP_OK && (rrc == SP_OK || sp_pushdisk_consumer_failed_first(x->pd))) {
        *err = x->werr;
        return x->wrc;
    }
    return rrc;
}

static int stream_disk(struct sp_archive_reader *r, struct sp_archive_writer *w, int k, struct sp_error *err)
{
    struct stream x = {w, k, NULL, SP_OK, {0}};
    int rc = sp_pushdisk_new(r->disks[k].size, r->disks[k].id, &x.pd, err);
    if (rc != SP_OK)
        return rc;
    pthread_t tid;
    int e = sp_thread_start(&tid, writer_main, &x);
    if (e != 0) {
        sp_pushdisk_free(x.pd);
        return sp_error_errno(err, e, "cannot start a writer thread");
    }
    rc = sp_archive_read_disk(r, sp_pushdisk_input(x.pd), err);
    sp_pushdisk_finish(x.pd, rc == SP_OK);
    pthread_join(tid, NULL);
    rc = pair_status(&x, rc, err);
    sp_pushdisk_free(x.pd);
    return rc;
}

/* ---- the loop ------------------------------------------------------------------ */

static int stream_disks(struct sp_archive_reader *r, struct sp_archive_writer *w, struct sp_error *err)
{
    for (;;) {
        int k = -1;
        int rc = sp_archive_next_disk(r, &k, err);
        if (rc != SP_OK || k < 0)
            return rc;
        rc = sp_archive_carries(w, k) ? stream_disk(r, w, k, err) : sp_archive_read_disk(r, NULL, err);
        if (rc != SP_OK)
            return rc;
    }
}

static int convert_to(struct sp_archive_reader *r, const struct sp_archive_write_format *f,
                      const struct sp_convert_opts *o, int fd, struct sp_error *err)
{
    struct sp_archive_write_opts wo;
    write_opts(o, input_mtime(r), true, &wo);
    wo.notes = &r->notes; /* what the output leaves out, after what the reader changed */
    struct sp_archive_writer *w = NULL;
    r->prog = o->prog;
    int rc = sp_archive_writer_begin(f, &r->vm, r->vm.cfg.name, r->disks, r->ndisks, &wo, fd, &w, err);
    if (rc == SP_OK)
        rc = stream_disks(r, w, err);
    if (rc == SP_OK)
        rc = sp_archive_finish(r, err);
    if (rc == SP_OK)
        rc = sp_archive_writer_finish(w, err);
    sp_archive_writer_free(w);
    return rc;
}

/* ---- a disk image wrapped in a VM ------------------------------------------------ */

/* The VM's name: the file's, without its folder and extension. */
static void name_of_file(const char *path, char *out, size_t len)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t n = dot && dot > base ? (size_t)(dot - base) : strlen(base);
    snprintf(out, len, "%.*s", (int)n, base);
}

/* An HVM VM of one disk (hda, on disk_uuid), no NIC. */
static int wrap_vm(const char *path, const struct sp_convert_opts *o, const char *disk_uuid, struct sp_vm *vm,
                   struct sp_error *err)
{
    memset(vm, 0, sizeof *vm);
    struct sp_vm_config *c = &vm->cfg;
    if (o->name)
        snprintf(c->name, sizeof c->name, "%s", o->name);
    else
        name_of_file(path, c->name, sizeof c->name);
    c->type = SP_VM_HVM;
    c->memory_mb = (long)(o->memory_mb ? o->memory_mb : SP_CONVERT_MEMORY_MB);
    c->vcpus = (long)(o->vcpus ? o->vcpus : 1);
    c->disks = sp_zalloc(sizeof *c->disks, err);
    vm->vbd_vdi = sp_zalloc(sizeof *vm->vbd_vdi, err);
    if (!c->disks || !vm->vbd_vdi)
        return SP_ENOMEM;
    c->ndisks = 1;
    if (!(c->disks[0].target = strdup("")))
        return sp_error_set(err, SP_ENOMEM, "out of memory");
    snprintf(c->disks[0].vdev, sizeof c->disks[0].vdev, "hda");
    c->disks[0].readwrite = true;
    snprintf(c->disks[0].format, sizeof c->disks[0].format, "vhd");
    snprintf(vm->vbd_vdi[0], SP_UUID_STR, "%s", disk_uuid);
    vm->created = (int64_t)time(NULL);
    return SP_OK;
}

static int64_t file_mtime(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) ? (int64_t)st.st_mtime : (int64_t)time(NULL);
}

static int convert_disk(const char *path, const struct sp_archive_write_format *f, const struct sp_convert_opts *o,
                        int fd, struct sp_error *err)
{
    struct sp_disk *d = NULL;
    struct sp_archive_disk *disk = NULL;
    struct sp_archive_writer *w = NULL;
    struct sp_vm vm;
    memset(&vm, 0, sizeof vm);
    int rc = sp_disk_open(path, false, &d, err);
    if (rc == SP_OK)
        rc = sp_archive_disks_new(1, &disk, err);
    if (rc == SP_OK) {
        name_of_file(path, disk->id, sizeof disk->id);
        disk->size = d->size;
        rc = wrap_vm(path, o, disk->uuid, &vm, err);
    }
    if (rc == SP_OK && f->data_bytes_first)
        rc = sp_disk_data_bytes(d, &disk->data_bytes, err);
    struct sp_archive_write_opts wo;
    write_opts(o, file_mtime(path), false, &wo);
    wo.prog = o->prog;
    if (rc == SP_OK)
        rc = sp_archive_writer_begin(f, &vm, vm.cfg.name, disk, 1, &wo, fd, &w, err);
    if (rc == SP_OK)
        rc = sp_archive_add_disk(w, 0, d, err);
    if (rc == SP_OK)
        rc = sp_archive_writer_finish(w, err);
    sp_archive_writer_free(w);
    sp_vm_free(&vm);
    free(disk);
    sp_disk_close(d);
    return rc;
}

/* ---- archive or disk ----------------------------------------------------------------- */

/* An archive's bid wins over the disk registry's raw fallback; a disk
 * format's own magic wins over the XVA reader's "anything else". */
static int is_disk_image(const char *path, bool *disk, struct sp_error *err)
{
    *disk = false;
    struct stat st;
    memset(&st, 0, sizeof st);
    bool regular = stat(path, &st) == 0 && S_ISREG(st.st_mode);
    if (strcmp(path, "-") == 0 || sp_archive_path_unpacked(path))
        return SP_OK;
    if (!regular && st.st_mode)
        return SP_OK; /* a pipe or a device: read as an archive */
    const struct sp_disk_driver *drv = NULL;
    int rc = sp_disk_probe_file(path, &drv, err);
    int bid = SP_ARCHIVE_BID_NO;
    if (rc == SP_OK)
        rc = sp_archive_bid_file(path, &bid, err);
    if (rc != SP_OK || bid > SP_ARCHIVE_BID_FALLBACK)
        return rc;
    bool raw = strcmp(drv->name, "raw") == 0;
    if (!raw) {
        *disk = true;
        return SP_OK;
    }
    if (st.st_size == 0 || st.st_size % SECTOR != 0)
        return sp_error_set(err, SP_EFORMAT, "%s: neither an archive nor a disk image (a raw image is whole "
                            "%u-byte sectors)", path, SECTOR);
    *disk = true;
    return SP_OK;
}

int sp_convert(const char *path, const struct sp_convert_opts *o, int fd, struct sp_convert_result *res,
               struct sp_error *err)
{
    struct sp_convert_result scratch;
    if (!res)
        res = &scratch;
    memset(res, 0, sizeof *res);
    const char *to = sp_archive_format_name(o->to);
    const struct sp_archive_write_format *f = sp_archive_writer_find(to);
    if (!f)
        return sp_error_set(err, SP_EINVAL, "convert: no writer for %s", to);
    bool disk = false;
    int rc = is_disk_image(path, &disk, err);
    if (rc != SP_OK || disk)
        return rc != SP_OK ? rc : convert_disk(path, f, o, fd, err);
    struct sp_archive_reader *r = NULL;
    rc = sp_archive_reader_open(path, NULL, &r, err);
    if (rc == SP_OK && strcmp(r->format->name, to) == 0)
        rc = sp_error_set(err, SP_EINVAL, "%s: already an %s: nothing to convert",
                          r->label, o->to == SP_ARCHIVE_OVA ? "OVA" : "XVA");
    if (rc == SP_OK)
        rc = convert_to(r, f, o, fd, err);
    if (rc == SP_OK && res != &scratch) {
        res->notes = r->notes;
        memset(&r->notes, 0, sizeof r->notes);
    }
    sp_archive_reader_free(r);
    return rc;
}
