/* The export of a VM or snapshot: the temporary snapshot around the
 * format's writer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    struct sp_export_src src = {s, &snap, vm.cfg.name};
    if (rc == SP_OK)
        rc = o->format == SP_ARCHIVE_OVA ? sp_export_ova_write(&src, o, fd, err) : sp_export_xva_write(&src, o, fd, err);
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
