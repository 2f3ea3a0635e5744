/* VMs: create from an xl.cfg, destroy, their xl.cfg, suspend and halt. */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "disk/registry.h"
#include "disk/raw.h"
#include "disk/vhd_footer.h"
#include "base/util.h"
#include "store/internal.h"

/* A disk path of an xl.cfg, relative ones taken from the file's folder. */
static void resolve_target(const char *cfg_path, const char *target, char *out, size_t len)
{
    if (target[0] == '/') {
        snprintf(out, len, "%s", target);
        return;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", cfg_path);
    snprintf(out, len, "%s/%s", dirname(dir), target);
}

/* A disk as xl would see it. A declared format other than raw must be
 * what the file holds. raw (xl's default, so also "not said") is probed,
 * so that a qcow2 or VMDK file can be named too, but only as a file that
 * stands alone: an image whose header names another file (a backing file,
 * a parent, extents) is only followed when the config says its format.
 * Otherwise a guest that wrote such a header into its raw disk could have
 * host files read into its image. */
static int open_source(const char *path, const char *format, struct sp_disk **out, struct sp_error *err)
{
    if (format[0] && strcmp(format, "raw") != 0) {
        struct sp_disk_open_opts o = {.writable = false};
        return sp_disk_open_as(path, format, &o, out, err);
    }
    struct sp_disk_open_opts o = {.standalone = true};
    struct sp_error e;
    sp_error_clear(&e);
    int rc = sp_disk_open_any(path, &o, out, &e);
    const struct sp_disk_driver *drv = NULL;
    if (rc == SP_EUNSUPPORTED && sp_disk_probe_file(path, &drv, err) == SP_OK && drv->open) {
        sp_error_set(err, rc, "%s (the config says format=raw or none: give format=%s to follow it)", e.msg,
                     drv->name);
        return sp_error_prefix(err, "%s", path); /* the reader's message may name it already */
    }
    if (rc != SP_OK)
        *err = e;
    return rc;
}

/* Opens every disk the config names before anything is written, so that a
 * missing or unreadable one fails the command with nothing changed. */
static int open_sources(const char *cfg_path, struct sp_vm_config *cfg, struct sp_disk **src, struct sp_error *err)
{
    for (int i = 0; i < cfg->ndisks; i++) {
        struct sp_vm_disk *d = &cfg->disks[i];
        if (d->cdrom)
            continue;
        if (!d->target || !d->target[0])
            return sp_error_set(err, SP_EINVAL, "%s: disk %d (%s) has no target", cfg_path, i + 1, d->vdev);
        char path[4096];
        resolve_target(cfg_path, d->target, path, sizeof path);
        int rc = open_source(path, d->format, &src[i], err);
        if (rc != SP_OK)
            return sp_error_prefix(err, "%s: disk %d (%s)", cfg_path, i + 1, d->vdev);
    }
    return SP_OK;
}

static void close_sources(struct sp_disk **src, int n)
{
    for (int i = 0; i < n; i++)
        sp_disk_close(src[i]);
}

static int plan_vdis(struct sp_vm *vm, struct sp_disk **src, char **new_files, struct sp_error *err)
{
    for (int i = 0; i < vm->cfg.ndisks; i++) {
        if (!src[i])
            continue;
        char rel[128];
        int rc = sp_uuid_generate_str(vm->vbd_vdi[i], err);
        vdi_rel_path(vm->vbd_vdi[i], rel, sizeof rel);
        if (rc == SP_OK)
            rc = filelist_add(new_files, rel, err);
        if (rc != SP_OK)
            return rc;
    }
    return SP_OK;
}

static int register_vm(struct sp_store *s, struct sp_vm *vm, struct sp_disk **src, int64_t job, struct sp_error *err)
{
    int rc = db_begin(s, err);
    for (int i = 0; rc == SP_OK && i < vm->cfg.ndisks; i++) {
        if (!src[i])
            continue;
        struct sp_vdi v = {.virtual_size = sp_round_up_u64(src[i]->size, SP_VHD_SECTOR)};
        snprintf(v.uuid, sizeof v.uuid, "%s", vm->vbd_vdi[i]);
        vdi_rel_path(v.uuid, v.file, sizeof v.file);
        snprintf(v.kind, sizeof v.kind, "disk");
        rc = vdi_insert(s, &v, err);
        snprintf(vm->cfg.disks[i].format, sizeof vm->cfg.disks[i].format, "vhd");
    }
    if (rc == SP_OK)
        rc = vm_row_insert(s, vm, err);
    if (rc == SP_OK)
        rc = job_switch(s, job, "", err);
    if (rc == SP_OK)
        rc = db_commit(s, err);
    else
        db_rollback(s);
    return rc;
}

int sp_vm_create(struct sp_store *s, const char *cfg_path, const struct sp_progress *prog, char uuid[SP_UUID_STR],
                 struct sp_error *err)
{
    struct sp_vm vm;
    memset(&vm, 0, sizeof vm);
    int rc = sp_vmconfig_parse_file(cfg_path, &vm.cfg, err);
    if (rc != SP_OK)
        return rc;
    struct sp_disk **src = sp_zalloc(sizeof *src * (size_t)(vm.cfg.ndisks + 1), err);
    vm.vbd_vdi = sp_zalloc(sizeof *vm.vbd_vdi * (size_t)(vm.cfg.ndisks + 1), err);
    char *new_files = NULL;
    int64_t job = 0;
    if (!src || !vm.vbd_vdi)
        rc = SP_ENOMEM;
    if (rc == SP_OK)
        rc = check_name_free(s, vm.cfg.name, err);
    if (rc == SP_OK && vm.cfg.has_uuid) {
        sp_uuid_format(vm.cfg.uuid, vm.uuid);
        bool taken = false;
        int64_t one;
        rc = db_int(s, err, &one, &taken, "SELECT 1 FROM vms WHERE uuid = ?", "t", vm.uuid);
        if (rc == SP_OK && taken)
            rc = sp_error_set(err, SP_EEXIST, "%s: a VM with uuid %s exists already", cfg_path, vm.uuid);
    } else if (rc == SP_OK) {
        rc = sp_uuid_generate_str(vm.uuid, err);
    }
    if (rc == SP_OK)
        rc = open_sources(cfg_path, &vm.cfg, src, err);
    if (rc == SP_OK)
        rc = plan_vdis(&vm, src, &new_files, err);
    if (rc == SP_OK)
        rc = job_begin(s, "vm create", new_files, &job, err);
    for (int i = 0; rc == SP_OK && i < vm.cfg.ndisks; i++) {
        if (!src[i])
            continue;
        rc = store_import_disk(s, src[i], vm.vbd_vdi[i], prog, err);
        sp_crashpoint("vm-create.disk-copied");
    }
    vm.created = (int64_t)time(NULL);
    if (rc == SP_OK)
        rc = register_vm(s, &vm, src, job, err);
    if (rc == SP_OK) {
        sp_crashpoint("vm-create.registered");
        rc = job_finish(s, job, err);
        snprintf(uuid, SP_UUID_STR, "%s", vm.uuid);
        store_write_cfg(s, vm.uuid);
    } else if (job) {
        job_abort(s, job);
    }
    if (src)
        close_sources(src, vm.cfg.ndisks);
    free(src);
    free(new_files);
    sp_vm_free(&vm);
    return rc;
}

/* Every VDI a VM record owns: its disks and its memory image. */
static int prune_owned(struct sp_store *s, const struct sp_vm *vm, char **old, struct sp_error *err)
{
    int rc = SP_OK;
    for (int i = 0; rc == SP_OK && i < vm->cfg.ndisks; i++)
        if (vm->vbd_vdi[i][0])
            rc = prune_vdi(s, vm->vbd_vdi[i], old, err);
    if (rc == SP_OK && vm->suspend_vdi[0])
        rc = prune_vdi(s, vm->suspend_vdi, old, err);
    return rc;
}

/* Deletes a VM or snapshot record and whatever of its VDIs nothing else needs. */
int drop_vm_record(struct sp_store *s, const char *uuid, char **old, struct sp_error *err)
{
    struct sp_vm vm;
    int rc = sp_store_load_vm(s, uuid, &vm, err);
    if (rc != SP_OK)
        return rc;
    /* keep the snapshot tree connected across the removed one */
    rc = db_run(s, err, "UPDATE vms SET parent_snapshot = ? WHERE parent_snapshot = ?", "tt",
                vm.parent_snapshot[0] ? vm.parent_snapshot : NULL, uuid);
    if (rc == SP_OK)
        rc = vm_row_delete(s, uuid, err);
    if (rc == SP_OK)
        rc = prune_owned(s, &vm, old, err);
    sp_vm_free(&vm);
    return rc;
}

/* Runs fn inside one switching transaction of a job that creates nothing. */
int run_switch_job(struct sp_store *s, const char *kind, int (*fn)(struct sp_store *, void *, char **, struct sp_error *),
                   void *ctx, struct sp_error *err)
{
    int64_t job;
    char *old = NULL;
    int rc = job_begin(s, kind, "", &job, err);
    if (rc != SP_OK)
        return rc;
    rc = db_begin(s, err);
    if (rc == SP_OK)
        rc = fn(s, ctx, &old, err);
    if (rc == SP_OK)
        rc = job_switch(s, job, old, err);
    if (rc == SP_OK)
        rc = db_commit(s, err);
    if (rc == SP_OK) {
        sp_crashpoint("switch.committed");
        rc = job_finish(s, job, err);
    } else {
        job_abort(s, job);
    }
    free(old);
    return rc;
}

static int destroy_fn(struct sp_store *s, void *ctx, char **old, struct sp_error *err)
{
    const char *vm = ctx;
    char (*snaps)[SP_UUID_STR] = NULL;
    int n = 0;
    int rc = sp_store_list_snapshots(s, vm, &snaps, &n, err);
    for (int i = n - 1; rc == SP_OK && i >= 0; i--)
        rc = drop_vm_record(s, snaps[i], old, err);
    free(snaps);
    if (rc == SP_OK)
        rc = drop_vm_record(s, vm, old, err);
    return rc;
}

int sp_vm_destroy(struct sp_store *s, const char *name, struct sp_error *err)
{
    char vm[SP_UUID_STR];
    int rc = sp_store_find(s, name, false, NULL, vm, err);
    if (rc == SP_OK)
        rc = run_switch_job(s, "vm destroy", destroy_fn, vm, err);
    if (rc == SP_OK) {
        char rel[128], path[4096];
        snprintf(rel, sizeof rel, "vms/%s.cfg", vm);
        store_path(s, rel, path, sizeof path);
        remove(path);
    }
    return rc;
}

int sp_vm_config_text(struct sp_store *s, const char *name, char **out, struct sp_error *err)
{
    char uuid[SP_UUID_STR];
    struct sp_vm vm;
    int rc = sp_store_find(s, name, false, NULL, uuid, err);
    if (rc != SP_OK)
        return rc;
    rc = sp_store_load_vm(s, uuid, &vm, err);
    if (rc != SP_OK)
        return rc;
    rc = sp_vmconfig_format(&vm.cfg, out, err);
    sp_vm_free(&vm);
    return rc;
}

int sp_vm_suspend_with_image(struct sp_store *s, const char *name, const char *image_path, struct sp_error *err)
{
    char vm[SP_UUID_STR], mem[SP_UUID_STR], rel[128];
    char *new_files = NULL;
    struct sp_disk *img = NULL;
    int64_t job = 0;
    int64_t state_suspended = 0;
    int rc = sp_store_find(s, name, false, NULL, vm, err);
    if (rc == SP_OK)
        rc = db_int(s, err, &state_suspended, NULL, "SELECT power_state = 'suspended' FROM vms WHERE uuid = ?", "t", vm);
    if (rc == SP_OK && state_suspended)
        rc = sp_error_set(err, SP_EINVAL, "VM %s: suspended already (snapport vm halt drops its memory image)", name);
    if (rc == SP_OK)
        rc = sp_raw_open(image_path, false, &img, err);
    if (rc == SP_OK && img->size == 0)
        rc = sp_error_set(err, SP_EFORMAT, "%s: empty memory image", image_path);
    if (rc == SP_OK)
        rc = sp_uuid_generate_str(mem, err);
    mem_rel_path(mem, rel, sizeof rel);
    if (rc == SP_OK)
        rc = filelist_add(&new_files, rel, err);
    if (rc == SP_OK)
        rc = job_begin(s, "vm suspend", new_files, &job, err);
    if (rc == SP_OK)
        rc = store_import_memory(s, img, mem, err);
    if (rc == SP_OK)
        rc = db_begin(s, err);
    if (rc == SP_OK) {
        struct sp_vdi v = {.virtual_size = img->size};
        snprintf(v.uuid, sizeof v.uuid, "%s", mem);
        snprintf(v.file, sizeof v.file, "%s", rel);
        snprintf(v.kind, sizeof v.kind, "memory");
        rc = vdi_insert(s, &v, err);
    }
    if (rc == SP_OK)
        rc = db_run(s, err, "UPDATE vms SET power_state = 'suspended', suspend_vdi = ? WHERE uuid = ?", "tt", mem, vm);
    if (rc == SP_OK)
        rc = job_switch(s, job, "", err);
    if (rc == SP_OK)
        rc = db_commit(s, err);
    if (rc == SP_OK)
        rc = job_finish(s, job, err);
    else if (job)
        job_abort(s, job);
    sp_disk_close(img);
    free(new_files);
    return rc;
}

static int halt_fn(struct sp_store *s, void *ctx, char **old, struct sp_error *err)
{
    const char *vm = ctx;
    char mem[SP_UUID_STR] = "";
    int rc = db_text(s, err, mem, sizeof mem, NULL, "SELECT suspend_vdi FROM vms WHERE uuid = ?", "t", vm);
    if (rc == SP_OK)
        rc = db_run(s, err, "UPDATE vms SET power_state = 'halted', suspend_vdi = NULL WHERE uuid = ?", "t", vm);
    if (rc == SP_OK && mem[0])
        rc = prune_vdi(s, mem, old, err);
    return rc;
}

int sp_vm_halt(struct sp_store *s, const char *name, struct sp_error *err)
{
    char vm[SP_UUID_STR];
    int rc = sp_store_find(s, name, false, NULL, vm, err);
    if (rc == SP_OK)
        rc = run_switch_job(s, "vm halt", halt_fn, vm, err);
    return rc;
}
