/* archive reader -> verify -> VHDs -> a new VM in the store, and verify:
 * loops over the archive table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "disk/vhd_footer.h"
#include "importer/import.h"

/* Every disk must fit a store VDI (a VHD: 2040 GiB) before anything is
 * made for it: an ova.xml or .ovf claiming petabytes is refused here, in
 * the archive's words, not by the VHD writer in the staging folder (whose
 * message would name a temporary file). A memory image is a raw file. */
static int check_sizes(const struct sp_archive_reader *r, struct sp_error *err)
{
    for (int k = 0; k < r->ndisks; k++)
        if (!r->disks[k].memory && r->disks[k].size > SP_VHD_MAX_SIZE)
            return sp_error_set(err, SP_ELIMIT, "%s: disk %s: %llu bytes, more than a store disk holds (2040 GiB)",
                                r->label, r->disks[k].id, (unsigned long long)r->disks[k].size);
    return SP_OK;
}

/* Each disk the archive gives into its new VDI. */
static int fill_vdis(struct sp_archive_reader *r, const struct sp_new_vdi *nv, struct sp_error *err)
{
    for (;;) {
        int k = -1;
        int rc = sp_archive_next_disk(r, &k, err);
        if (rc != SP_OK || k < 0)
            return rc;
        struct sp_disk *d = NULL;
        rc = sp_store_open_new_vdi(&nv[k], &d, err);
        if (rc == SP_OK)
            rc = sp_archive_read_disk(r, d, err);
        if (rc == SP_OK)
            rc = sp_disk_flush(d, err);
        sp_disk_close(d);
        if (rc != SP_OK)
            return rc;
    }
}

/* The reader's VM on the new VDIs, under the name given. */
static void retarget_vm(struct sp_archive_reader *r, const struct sp_new_vdi *nv, const char *name)
{
    struct sp_vm *vm = &r->vm;
    if (name)
        snprintf(vm->cfg.name, sizeof vm->cfg.name, "%s", name);
    for (int i = 0; i < vm->cfg.ndisks; i++) {
        int k = sp_archive_disk_find(r->disks, r->ndisks, vm->vbd_vdi[i]);
        snprintf(vm->vbd_vdi[i], SP_UUID_STR, "%s", k >= 0 ? nv[k].uuid : "");
    }
    int k = sp_archive_disk_find(r->disks, r->ndisks, vm->suspend_vdi);
    snprintf(vm->suspend_vdi, sizeof vm->suspend_vdi, "%s", k >= 0 ? nv[k].uuid : "");
    vm->suspended = k >= 0;
}

int sp_import_archive(struct sp_store *s, const char *path, const char *format, const struct sp_import_opts *o,
                      char uuid[SP_UUID_STR], struct sp_error *err)
{
    struct sp_archive_reader *r = NULL;
    struct sp_new_vdi *nv = NULL;
    struct sp_staging st = {.lock_fd = -1};
    /* Nothing of the store is touched until the archive's VM has arrived,
     * nor while the disks stream into the staging folder: the lock is held
     * only to start (shared) and to finish (exclusive), so that an export
     * into this import through a pipe can take it whichever side started
     * first. */
    sp_store_unlock(s);
    int rc = sp_archive_reader_open(path, format, &r, err);
    if (rc == SP_OK)
        rc = check_sizes(r, err);
    if (rc == SP_OK && !(nv = sp_zalloc(sizeof *nv * (size_t)(r->ndisks + 1), err)))
        rc = SP_ENOMEM;
    for (int k = 0; rc == SP_OK && k < r->ndisks; k++) {
        nv[k].size = r->disks[k].size;
        nv[k].memory = r->disks[k].memory;
    }
    if (rc == SP_OK &&
        (rc = sp_store_import_begin(s, o->name ? o->name : r->vm.cfg.name, nv, r->ndisks, &st, err)) == SP_EEXIST)
        sp_error_prefix(err, "%s: import with --name NEW", r->label);
    if (rc == SP_OK) {
        r->spool_dir = st.dir;
        r->prog = o->prog;
        rc = fill_vdis(r, nv, err);
    }
    if (rc == SP_OK)
        rc = sp_archive_finish(r, err);
    if (rc == SP_OK) {
        retarget_vm(r, nv, o->name);
        rc = sp_store_import_commit(s, &st, nv, r->ndisks, &r->vm, err);
    }
    if (rc == SP_OK) {
        snprintf(uuid, SP_UUID_STR, "%s", r->vm.uuid);
        if (o->notes) {
            *o->notes = r->notes;
            memset(&r->notes, 0, sizeof r->notes);
        }
    }
    /* A failure of the store's side (a full disk while a VDI fills) names
     * a file in the staging folder, which is gone by now: name the archive
     * too. */
    if (rc != SP_OK && r && !strstr(err->msg, r->label))
        sp_error_prefix(err, "%s", r->label);
    sp_store_import_abort(s, &st);
    free(nv);
    sp_archive_reader_free(r);
    return rc;
}

static int verify_disks(struct sp_archive_reader *r, struct sp_error *err)
{
    for (;;) {
        int k = -1;
        int rc = sp_archive_next_disk(r, &k, err);
        if (rc != SP_OK || k < 0)
            return rc;
        rc = sp_archive_read_disk(r, NULL, err);
        if (rc != SP_OK)
            return rc;
    }
}

int sp_verify_archive(const char *path, const char *format, struct sp_archive_info *info,
                      const struct sp_progress *prog, struct sp_error *err)
{
    struct sp_archive_reader *r = NULL;
    int rc = sp_archive_reader_open(path, format, &r, err);
    if (rc == SP_OK) {
        r->prog = prog;
        rc = verify_disks(r, err);
    }
    if (rc == SP_OK)
        rc = sp_archive_finish(r, err);
    if (r && info)
        sp_archive_info(r, info);
    sp_archive_reader_free(r);
    return rc;
}
