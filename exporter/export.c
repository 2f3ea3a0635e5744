/* The export of a VM or snapshot: the store's hold (a temporary snapshot,
 * pins) around the format's writer, which runs without the store's lock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "disk/copy.h"
#include "exporter/export.h"

/* ---- the store's VDIs into the writer -------------------------------------- */

struct export_job {
    struct sp_store *s;
    const struct sp_vm *snap;
    const struct sp_archive_write_format *fmt;
    struct sp_archive_disk *disks;   /* the disks' VDIs in the VM's order, the memory image last */
    struct sp_disk **open;           /* per disk */
    int n;
};

static int add_vdi(struct export_job *j, const char *vdi, bool memory, struct sp_error *err)
{
    if (!vdi[0] || sp_archive_disk_find(j->disks, j->n, vdi) >= 0)
        return SP_OK;
    struct sp_archive_disk *d = &j->disks[j->n];
    snprintf(d->uuid, sizeof d->uuid, "%s", vdi);
    snprintf(d->id, sizeof d->id, "%s", vdi);
    d->memory = memory;
    int rc = sp_store_open_vdi(j->s, vdi, memory, &j->open[j->n], err);
    if (rc != SP_OK)
        return rc;
    d->size = j->open[j->n]->size;
    j->n++;
    return SP_OK;
}

static int open_vdis(struct export_job *j, struct sp_error *err)
{
    const struct sp_vm *snap = j->snap;
    int max = snap->cfg.ndisks + 1;
    j->disks = sp_zalloc(sizeof *j->disks * (size_t)(max + 1), err);
    j->open = sp_zalloc(sizeof *j->open * (size_t)(max + 1), err);
    if (!j->disks || !j->open)
        return SP_ENOMEM;
    int rc = SP_OK;
    for (int i = 0; rc == SP_OK && i < snap->cfg.ndisks; i++)
        rc = add_vdi(j, snap->vbd_vdi[i], false, err);
    if (rc == SP_OK)
        rc = add_vdi(j, snap->suspend_vdi, true, err);
    return rc;
}

static void write_opts(const struct sp_export_opts *o, int64_t mtime, struct sp_archive_write_opts *w)
{
    memset(w, 0, sizeof *w);
    w->digest = o->digest;
    w->compress = o->compress;
    w->mf_digest = o->mf_digest;
    w->sign_key = o->sign_key;
    w->sign_cert = o->sign_cert;
    w->ovf_version = o->ovf_version;
    w->level = o->level;
    w->spool_dir = o->spool_dir;
    w->mtime = mtime;
    w->prog = o->prog;
    w->notes = o->notes;
}

static void close_vdis(struct export_job *j)
{
    for (int k = 0; k < j->n; k++)
        sp_disk_close(j->open[k]);
    free(j->open);
    free(j->disks);
    j->open = NULL;
    j->disks = NULL;
}

/* From the open files alone: the store is not locked any more. */
static int write_archive(struct export_job *j, const char *vm_name, const struct sp_export_opts *o, int fd,
                         struct sp_error *err)
{
    struct sp_archive_writer *w = NULL;
    struct sp_archive_write_opts wo;
    write_opts(o, j->snap->snapshot_time, &wo);
    int rc = SP_OK;
    for (int k = 0; rc == SP_OK && j->fmt->data_bytes_first && k < j->n; k++)
        rc = sp_disk_data_bytes(j->open[k], &j->disks[k].data_bytes, err);
    if (rc == SP_OK)
        rc = sp_archive_writer_begin(j->fmt, j->snap, vm_name, j->disks, j->n, &wo, fd, &w, err);
    for (int k = 0; rc == SP_OK && k < j->n; k++)
        if (sp_archive_carries(w, k))
            rc = sp_archive_add_disk(w, k, j->open[k], err);
    if (rc == SP_OK)
        rc = sp_archive_writer_finish(w, err);
    sp_archive_writer_free(w);
    return rc;
}

/* Under the write lock: the hold taken, the snapshot's files opened; then
 * the lock is let go for the length of the stream (the pins keep gc off
 * these files, the open descriptors keep them readable whatever is deleted
 * meanwhile), and taken again at the end to release the hold. It returns
 * with the store unlocked: what the caller does next (an fsync, the last
 * parts of an upload) must not keep other exports from their holds. */
int sp_export(struct sp_store *s, const struct sp_export_opts *o, int fd, struct sp_error *err)
{
    char vm_uuid[SP_UUID_STR];
    struct sp_vm vm, snap;
    struct sp_hold hold = {0};
    memset(&vm, 0, sizeof vm);
    memset(&snap, 0, sizeof snap);
    struct export_job j = {s, &snap, sp_archive_writer_find(sp_archive_format_name(o->format)), NULL, NULL, 0};
    int rc = j.fmt ? sp_store_find(s, o->vm, false, NULL, vm_uuid, err)
                   : sp_error_set(err, SP_EINVAL, "export: no such archive format");
    if (rc == SP_OK)
        rc = sp_store_load_vm(s, vm_uuid, &vm, err);
    if (rc == SP_OK)
        rc = sp_hold_begin(s, vm_uuid, o->snapshot, vm.suspended, &hold, err);
    if (rc == SP_OK)
        rc = sp_store_load_vm(s, hold.snap, &snap, err);
    if (rc == SP_OK)
        rc = open_vdis(&j, err);
    if (rc == SP_OK)
        rc = sp_store_unlock(s);
    if (rc == SP_OK)
        rc = write_archive(&j, vm.cfg.name, o, fd, err);
    close_vdis(&j);
    struct sp_error herr;
    int hrc = sp_hold_end(s, &hold, &herr);
    if (hrc != SP_OK && rc == SP_OK) {
        *err = herr;
        rc = hrc;
    }
    sp_store_unlock(s);
    sp_vm_free(&snap);
    sp_vm_free(&vm);
    return rc;
}
