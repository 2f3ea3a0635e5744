/* The export of a VM or snapshot: the temporary snapshot around the
 * format's writer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "disk/copy.h"
#include "exporter/export.h"

/* Deletes the temporary snapshot whatever happened to the export. The
 * VM's leaf is new and empty (a VM of the store does not run): merging it
 * back costs nothing and keeps the chain from growing with every export. A
 * failed merge leaves the node for gc. */
static int drop_temporary(struct sp_store *s, const char *snap_uuid, const struct sp_vm *snap, struct sp_error *err)
{
    int rc = sp_store_exclusive(s, "export", err);
    if (rc == SP_OK)
        rc = sp_snapshot_delete(s, snap_uuid, err);
    for (int i = 0; rc == SP_OK && i < snap->cfg.ndisks; i++) {
        struct sp_error cerr;
        if (snap->vbd_vdi[i][0])
            sp_gc_coalesce_node(s, snap->vbd_vdi[i], &cerr);
    }
    return rc;
}

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
    if (j->fmt->data_bytes_first)
        return sp_disk_data_bytes(j->open[j->n - 1], &d->data_bytes, err);
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
}

static int write_archive(struct sp_store *s, const struct sp_vm *snap, const char *vm_name,
                         const struct sp_export_opts *o, int fd, struct sp_error *err)
{
    struct export_job j = {s, snap, sp_archive_writer_find(sp_archive_format_name(o->format)), NULL, NULL, 0};
    struct sp_archive_writer *w = NULL;
    struct sp_archive_write_opts wo;
    write_opts(o, snap->snapshot_time, &wo);
    int rc = j.fmt ? open_vdis(&j, err) : sp_error_set(err, SP_EINVAL, "export: no such archive format");
    if (rc == SP_OK)
        rc = sp_archive_writer_begin(j.fmt, snap, vm_name, j.disks, j.n, &wo, fd, &w, err);
    for (int k = 0; rc == SP_OK && k < j.n; k++)
        if (sp_archive_carries(w, k))
            rc = sp_archive_add_disk(w, k, j.open[k], err);
    if (rc == SP_OK)
        rc = sp_archive_writer_finish(w, err);
    sp_archive_writer_free(w);
    for (int k = 0; k < j.n; k++)
        sp_disk_close(j.open[k]);
    free(j.open);
    free(j.disks);
    return rc;
}

int sp_export(struct sp_store *s, const struct sp_export_opts *o, int fd, struct sp_error *err)
{
    char vm_uuid[SP_UUID_STR], snap_uuid[SP_UUID_STR];
    struct sp_vm vm, snap;
    memset(&vm, 0, sizeof vm);
    memset(&snap, 0, sizeof snap);
    bool temporary = !o->snapshot;
    int rc = sp_store_find(s, o->vm, false, NULL, vm_uuid, err);
    if (rc == SP_OK)
        rc = sp_store_load_vm(s, vm_uuid, &vm, err);
    if (rc == SP_OK && temporary)
        rc = sp_snapshot_create(s, vm_uuid, "export", vm.suspended, true, snap_uuid, err);
    else if (rc == SP_OK)
        rc = sp_store_find(s, o->snapshot, true, vm_uuid, snap_uuid, err);
    bool made = rc == SP_OK && temporary;
    if (rc == SP_OK)
        rc = sp_store_load_vm(s, snap_uuid, &snap, err);
    /* streaming needs the files to stay, not the store to itself: shared */
    if (rc == SP_OK)
        rc = sp_store_share(s, err);
    if (rc == SP_OK)
        rc = write_archive(s, &snap, vm.cfg.name, o, fd, err);
    if (made) {
        struct sp_error derr;
        int drc = drop_temporary(s, snap_uuid, &snap, &derr);
        if (drc != SP_OK && rc == SP_OK) {
            *err = derr;
            rc = drc;
        }
    }
    sp_vm_free(&snap);
    sp_vm_free(&vm);
    return rc;
}
