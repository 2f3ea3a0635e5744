/* Snapshots as XenServer's file SRs make them, revert, delete, and clones. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/util.h"
#include "store/internal.h"
#include "store/xen.h"

/* A deep copy of a VM record under a new identity, VDIs not yet chosen. */
static int copy_record(const struct sp_vm *src, struct sp_vm *dst, struct sp_error *err)
{
    memset(dst, 0, sizeof *dst);
    int rc = sp_vmconfig_copy(&dst->cfg, &src->cfg, err);
    if (rc != SP_OK)
        return rc;
    dst->vbd_vdi = sp_zalloc(sizeof *dst->vbd_vdi * (size_t)(src->cfg.ndisks + 1), err);
    if (!dst->vbd_vdi)
        return SP_ENOMEM;
    dst->created = (int64_t)time(NULL);
    return SP_OK;
}

/* The VDIs a new record gets: each disk of from_vdis a new uuid (children or
 * copies made later), listed as files about to be created. */
static int plan_new_vdis(const struct sp_vm *rec, char (*from_vdis)[SP_UUID_STR], char (*out)[SP_UUID_STR],
                         char **new_files, struct sp_error *err)
{
    for (int i = 0; i < rec->cfg.ndisks; i++) {
        out[i][0] = '\0';
        if (!from_vdis[i][0])
            continue;
        char rel[128];
        int rc = sp_uuid_generate_str(out[i], err);
        vdi_rel_path(out[i], rel, sizeof rel);
        if (rc == SP_OK)
            rc = filelist_add(new_files, rel, err);
        if (rc != SP_OK)
            return rc;
    }
    return SP_OK;
}

static int make_children(struct sp_store *s, int n, char (*parents)[SP_UUID_STR], char (*children)[SP_UUID_STR],
                         struct sp_error *err)
{
    for (int i = 0; i < n; i++) {
        if (!children[i][0])
            continue;
        int rc = store_create_child(s, parents[i], children[i], err);
        if (rc != SP_OK)
            return rc;
        sp_crashpoint("child-created");
    }
    return SP_OK;
}

static int insert_children_rows(struct sp_store *s, int n, char (*parents)[SP_UUID_STR], char (*children)[SP_UUID_STR],
                                struct sp_error *err)
{
    for (int i = 0; i < n; i++) {
        if (!children[i][0])
            continue;
        struct sp_vdi p, c;
        int rc = vdi_load(s, parents[i], &p, err);
        if (rc != SP_OK)
            return rc;
        memset(&c, 0, sizeof c);
        snprintf(c.uuid, sizeof c.uuid, "%s", children[i]);
        snprintf(c.parent, sizeof c.parent, "%s", parents[i]);
        vdi_rel_path(c.uuid, c.file, sizeof c.file);
        c.virtual_size = p.virtual_size;
        snprintf(c.kind, sizeof c.kind, "disk");
        rc = vdi_insert(s, &c, err);
        if (rc != SP_OK)
            return rc;
    }
    return SP_OK;
}

/* A memory image shared under a new VDI (store_share_memory). */
static int plan_memory(const char *from, char mem[SP_UUID_STR], char **new_files, struct sp_error *err)
{
    mem[0] = '\0';
    if (!from[0])
        return SP_OK;
    char rel[128];
    int rc = sp_uuid_generate_str(mem, err);
    mem_rel_path(mem, rel, sizeof rel);
    return rc == SP_OK ? filelist_add(new_files, rel, err) : rc;
}

static int insert_memory_row(struct sp_store *s, const char *from, const char *mem, struct sp_error *err)
{
    if (!mem[0])
        return SP_OK;
    struct sp_vdi f, m;
    int rc = vdi_load(s, from, &f, err);
    if (rc != SP_OK)
        return rc;
    memset(&m, 0, sizeof m);
    snprintf(m.uuid, sizeof m.uuid, "%s", mem);
    mem_rel_path(mem, m.file, sizeof m.file);
    m.virtual_size = f.virtual_size;
    snprintf(m.kind, sizeof m.kind, "memory");
    return vdi_insert(s, &m, err);
}

static int check_depths(struct sp_store *s, const struct sp_vm *vm, struct sp_error *err)
{
    for (int i = 0; i < vm->cfg.ndisks; i++) {
        if (!vm->vbd_vdi[i][0])
            continue;
        int depth = 0;
        int rc = sp_store_chain_depth(s, vm->vbd_vdi[i], &depth, err);
        if (rc != SP_OK)
            return rc;
        if (depth + 1 > SP_MAX_CHAIN)
            return sp_error_set(err, SP_ELIMIT,
                                "VM %s: disk %s: its chain would be %d files, more than the %d allowed; "
                                "delete snapshots and run 'snapport gc' to coalesce them",
                                vm->cfg.name, vm->cfg.disks[i].vdev, depth + 1, SP_MAX_CHAIN);
    }
    return SP_OK;
}

/* Everything a snapshot, revert or clone creates, in the order that makes
 * each step recoverable: job (files to be), files, one transaction. */
struct plan {
    char (*vm_children)[SP_UUID_STR];   /* new leaves of the source VM (snapshot, clone of a VM) */
    char (*rec_vdis)[SP_UUID_STR];      /* the new record's disks */
    char mem[SP_UUID_STR];              /* the new record's memory image, or "" */
    char *new_files;
    int64_t job;
};

static void plan_free(struct plan *p)
{
    free(p->vm_children);
    free(p->rec_vdis);
    free(p->new_files);
}

static int plan_alloc(struct plan *p, int n, struct sp_error *err)
{
    memset(p, 0, sizeof *p);
    p->vm_children = sp_zalloc(sizeof *p->vm_children * (size_t)(n + 1), err);
    p->rec_vdis = sp_zalloc(sizeof *p->rec_vdis * (size_t)(n + 1), err);
    return p->vm_children && p->rec_vdis ? SP_OK : SP_ENOMEM;
}

/* ---- a domain running on this host ------------------------------------- */

/* On a Xen host a VM of the store may run as a domain (same UUID): it is
 * paused while its disks switch so that the snapshot is consistent. Off a
 * Xen host nothing runs: the store's VMs are halted or suspended. */
struct live {
    struct sp_xen *xen;
    uint32_t domid;
    bool paused;
};

static int live_pause(const struct sp_vm *vm, bool memory, struct live *l, struct sp_error *err)
{
    struct sp_error none;
    bool found = false;
    memset(l, 0, sizeof *l);
    if (sp_xen_open(&l->xen, &none) != SP_OK)
        return SP_OK;
    int rc = sp_xen_find(l->xen, vm->cfg.uuid, &l->domid, &found, err);
    if (rc == SP_OK && found && memory)
        rc = sp_error_set(err, SP_EUNSUPPORTED,
                          "VM %s: runs as domain %u; saving a running domain's memory is not supported yet "
                          "(save it with 'xl save', then 'snapport vm suspend %s --image FILE')",
                          vm->cfg.name, l->domid, vm->cfg.name);
    if (rc == SP_OK && found) {
        rc = sp_xen_pause(l->xen, l->domid, err);
        l->paused = rc == SP_OK;
    }
    return rc;
}

static int live_unpause(struct live *l, struct sp_error *err)
{
    int rc = l->paused ? sp_xen_unpause(l->xen, l->domid, err) : SP_OK;
    sp_xen_close(l->xen);
    memset(l, 0, sizeof *l);
    return rc;
}

/* ---- snapshot create ---------------------------------------------------- */

static int snapshot_checks(struct sp_store *s, const struct sp_vm *vm, bool memory, struct sp_error *err)
{
    int n = 0;
    int rc = vm_count_snapshots(s, vm->uuid, &n, err);
    if (rc != SP_OK)
        return rc;
    if (n >= SP_MAX_SNAPSHOTS)
        return sp_error_set(err, SP_ELIMIT,
                            "VM %s: has %d snapshots, the most a VM may have (system snapshots count too); "
                            "delete one with 'snapport snapshot delete %s SNAP' and run 'snapport gc'",
                            vm->cfg.name, n, vm->cfg.name);
    if (memory && !vm->suspended)
        return sp_error_set(err, SP_EINVAL,
                            "VM %s: is halted: there is no memory to capture (--memory needs a suspended VM)",
                            vm->cfg.name);
    return check_depths(s, vm, err);
}

static int snapshot_switch(struct sp_store *s, struct sp_vm *vm, struct sp_vm *snap, struct plan *p,
                           struct sp_error *err)
{
    int rc = db_begin(s, err);
    if (rc == SP_OK)
        rc = insert_children_rows(s, vm->cfg.ndisks, vm->vbd_vdi, p->vm_children, err);
    if (rc == SP_OK)
        rc = insert_memory_row(s, vm->suspend_vdi, p->mem, err);
    if (rc == SP_OK)
        rc = vm_row_insert(s, snap, err);
    for (int i = 0; rc == SP_OK && i < vm->cfg.ndisks; i++)
        if (p->vm_children[i][0])
            rc = db_run(s, err, "UPDATE vbds SET vdi = ? WHERE vm = ? AND position = ?", "tti", p->vm_children[i],
                        vm->uuid, (int64_t)i);
    if (rc == SP_OK)
        rc = db_run(s, err, "UPDATE vms SET parent_snapshot = ? WHERE uuid = ?", "tt", snap->uuid, vm->uuid);
    if (rc == SP_OK)
        rc = job_switch(s, p->job, "", err);
    if (rc == SP_OK)
        rc = db_commit(s, err);
    else
        db_rollback(s);
    return rc;
}

static void default_snapshot_name(const struct sp_vm *vm, char *out, size_t len)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(out, len, "%s %s", vm->cfg.name, when);
}

/* preset: the new snapshot's uuid when the caller chose it (and recorded
 * it, so that a crash can be undone), else NULL. */
static int snapshot_create(struct sp_store *s, const char *name, const char *snap_name, bool memory, bool is_system,
                           const char *preset, char uuid[SP_UUID_STR], struct sp_error *err)
{
    char vmu[SP_UUID_STR];
    struct sp_vm vm, snap;
    struct plan p;
    memset(&snap, 0, sizeof snap);
    memset(&p, 0, sizeof p);
    int rc = sp_store_find(s, name, false, NULL, vmu, err);
    if (rc != SP_OK)
        return rc;
    rc = sp_store_load_vm(s, vmu, &vm, err);
    if (rc != SP_OK)
        return rc;
    rc = snapshot_checks(s, &vm, memory, err);
    if (rc == SP_OK)
        rc = plan_alloc(&p, vm.cfg.ndisks, err);
    if (rc == SP_OK)
        rc = plan_new_vdis(&vm, vm.vbd_vdi, p.vm_children, &p.new_files, err);
    if (rc == SP_OK && memory)
        rc = plan_memory(vm.suspend_vdi, p.mem, &p.new_files, err);
    if (rc == SP_OK)
        rc = copy_record(&vm, &snap, err);
    if (rc == SP_OK) {
        if (preset)
            snprintf(snap.uuid, sizeof snap.uuid, "%s", preset);
        else
            rc = sp_uuid_generate_str(snap.uuid, err);
        if (snap_name)
            snprintf(snap.cfg.name, sizeof snap.cfg.name, "%s", snap_name);
        else
            default_snapshot_name(&vm, snap.cfg.name, sizeof snap.cfg.name);
        memcpy(snap.vbd_vdi, vm.vbd_vdi, sizeof *vm.vbd_vdi * (size_t)vm.cfg.ndisks);
        snprintf(snap.snapshot_of, sizeof snap.snapshot_of, "%s", vm.uuid);
        snap.snapshot_time = (int64_t)time(NULL);
        snap.is_system = is_system;
        snap.suspended = memory;
        snprintf(snap.suspend_vdi, sizeof snap.suspend_vdi, "%s", p.mem);
        snprintf(snap.parent_snapshot, sizeof snap.parent_snapshot, "%s", vm.parent_snapshot);
    }
    struct live live = {0};
    if (rc == SP_OK)
        rc = live_pause(&vm, memory, &live, err);
    if (rc == SP_OK)
        rc = job_begin(s, "snapshot create", p.new_files, &p.job, err);
    if (rc == SP_OK)
        rc = make_children(s, vm.cfg.ndisks, vm.vbd_vdi, p.vm_children, err);
    if (rc == SP_OK && p.mem[0])
        rc = store_share_memory(s, vm.suspend_vdi, p.mem, err);
    if (rc == SP_OK)
        rc = snapshot_switch(s, &vm, &snap, &p, err);
    struct sp_error unpause_err;
    if (live_unpause(&live, &unpause_err) != SP_OK && rc == SP_OK) {
        *err = unpause_err; /* the snapshot is made; the domain stays paused */
        rc = unpause_err.code;
    }
    if (rc == SP_OK) {
        sp_crashpoint("snapshot.committed");
        rc = job_finish(s, p.job, err);
        snprintf(uuid, SP_UUID_STR, "%s", snap.uuid);
        store_write_cfg(s, vm.uuid);
    } else if (p.job) {
        job_abort(s, p.job);
    }
    plan_free(&p);
    sp_vm_free(&snap);
    sp_vm_free(&vm);
    return rc;
}

int sp_snapshot_create(struct sp_store *s, const char *name, const char *snap_name, bool memory, bool is_system,
                       char uuid[SP_UUID_STR], struct sp_error *err)
{
    return snapshot_create(s, name, snap_name, memory, is_system, NULL, uuid, err);
}

int snapshot_create_as(struct sp_store *s, const char *vm, const char *snap_name, bool memory, bool is_system,
                       const char *uuid, struct sp_error *err)
{
    char made[SP_UUID_STR];
    return snapshot_create(s, vm, snap_name, memory, is_system, uuid, made, err);
}

/* ---- revert ------------------------------------------------------------- */

static int revert_switch(struct sp_store *s, struct sp_vm *vm, struct sp_vm *snap, struct sp_vm *rec, struct plan *p,
                         struct sp_error *err)
{
    char *old = NULL;
    int rc = db_begin(s, err);
    if (rc == SP_OK)
        rc = insert_children_rows(s, snap->cfg.ndisks, snap->vbd_vdi, p->rec_vdis, err);
    if (rc == SP_OK)
        rc = insert_memory_row(s, snap->suspend_vdi, p->mem, err);
    if (rc == SP_OK)
        rc = vm_row_update(s, rec, err);
    for (int i = 0; rc == SP_OK && i < vm->cfg.ndisks; i++)
        if (vm->vbd_vdi[i][0])
            rc = prune_vdi(s, vm->vbd_vdi[i], &old, err);
    if (rc == SP_OK && vm->suspend_vdi[0])
        rc = prune_vdi(s, vm->suspend_vdi, &old, err);
    if (rc == SP_OK)
        rc = job_switch(s, p->job, old, err);
    if (rc == SP_OK)
        rc = db_commit(s, err);
    else
        db_rollback(s);
    free(old);
    return rc;
}

int sp_snapshot_revert(struct sp_store *s, const char *name, const char *snap_name, struct sp_error *err)
{
    char vmu[SP_UUID_STR], snu[SP_UUID_STR];
    struct sp_vm vm, snap, rec;
    struct plan p;
    memset(&vm, 0, sizeof vm);
    memset(&snap, 0, sizeof snap);
    memset(&rec, 0, sizeof rec);
    memset(&p, 0, sizeof p);
    int rc = sp_store_find(s, name, false, NULL, vmu, err);
    if (rc == SP_OK)
        rc = sp_store_find(s, snap_name, true, vmu, snu, err);
    if (rc == SP_OK)
        rc = sp_store_load_vm(s, vmu, &vm, err);
    if (rc == SP_OK)
        rc = sp_store_load_vm(s, snu, &snap, err);
    if (rc == SP_OK)
        rc = check_depths(s, &snap, err);
    if (rc == SP_OK)
        rc = plan_alloc(&p, snap.cfg.ndisks, err);
    if (rc == SP_OK)
        rc = plan_new_vdis(&snap, snap.vbd_vdi, p.rec_vdis, &p.new_files, err);
    if (rc == SP_OK)
        rc = plan_memory(snap.suspend_vdi, p.mem, &p.new_files, err);
    if (rc == SP_OK)
        rc = copy_record(&snap, &rec, err);
    if (rc == SP_OK) {
        snprintf(rec.uuid, sizeof rec.uuid, "%s", vm.uuid);
        snprintf(rec.cfg.name, sizeof rec.cfg.name, "%s", vm.cfg.name);
        memcpy(rec.vbd_vdi, p.rec_vdis, sizeof *p.rec_vdis * (size_t)snap.cfg.ndisks);
        rec.suspended = p.mem[0] != '\0';
        snprintf(rec.suspend_vdi, sizeof rec.suspend_vdi, "%s", p.mem);
        snprintf(rec.parent_snapshot, sizeof rec.parent_snapshot, "%s", snap.uuid);
        rc = job_begin(s, "snapshot revert", p.new_files, &p.job, err);
    }
    if (rc == SP_OK)
        rc = make_children(s, snap.cfg.ndisks, snap.vbd_vdi, p.rec_vdis, err);
    if (rc == SP_OK && p.mem[0])
        rc = store_share_memory(s, snap.suspend_vdi, p.mem, err);
    if (rc == SP_OK)
        rc = revert_switch(s, &vm, &snap, &rec, &p, err);
    if (rc == SP_OK) {
        sp_crashpoint("revert.committed");
        rc = job_finish(s, p.job, err);
        store_write_cfg(s, vm.uuid);
    } else if (p.job) {
        job_abort(s, p.job);
    }
    plan_free(&p);
    sp_vm_free(&rec);
    sp_vm_free(&snap);
    sp_vm_free(&vm);
    return rc;
}

/* ---- delete ------------------------------------------------------------- */

static int delete_fn(struct sp_store *s, void *ctx, char **old, struct sp_error *err)
{
    return drop_vm_record(s, ctx, old, err);
}

int sp_snapshot_delete(struct sp_store *s, const char *snap, struct sp_error *err)
{
    return run_switch_job(s, "snapshot delete", delete_fn, (void *)snap, err);
}

/* ---- clone -------------------------------------------------------------- */

static int full_copies(struct sp_store *s, const struct sp_vm *src, struct plan *p, const struct sp_progress *prog,
                       struct sp_error *err)
{
    for (int i = 0; i < src->cfg.ndisks; i++) {
        if (!p->rec_vdis[i][0])
            continue;
        struct sp_disk *d = NULL;
        int rc = sp_store_open_vdi(s, src->vbd_vdi[i], false, &d, err);
        if (rc == SP_OK)
            rc = store_import_disk(s, d, p->rec_vdis[i], prog, err);
        sp_disk_close(d);
        if (rc != SP_OK)
            return rc;
        sp_crashpoint("clone.disk-copied");
    }
    return SP_OK;
}

static int insert_base_rows(struct sp_store *s, const struct sp_vm *src, struct plan *p, struct sp_error *err)
{
    for (int i = 0; i < src->cfg.ndisks; i++) {
        if (!p->rec_vdis[i][0])
            continue;
        struct sp_vdi f, c;
        int rc = vdi_load(s, src->vbd_vdi[i], &f, err);
        if (rc != SP_OK)
            return rc;
        memset(&c, 0, sizeof c);
        snprintf(c.uuid, sizeof c.uuid, "%s", p->rec_vdis[i]);
        vdi_rel_path(c.uuid, c.file, sizeof c.file);
        c.virtual_size = f.virtual_size;
        snprintf(c.kind, sizeof c.kind, "disk");
        rc = vdi_insert(s, &c, err);
        if (rc != SP_OK)
            return rc;
    }
    return SP_OK;
}

static int clone_switch(struct sp_store *s, struct sp_vm *src, struct sp_vm *rec, struct plan *p, bool full,
                        bool src_is_vm, struct sp_error *err)
{
    int rc = db_begin(s, err);
    if (rc == SP_OK && full)
        rc = insert_base_rows(s, src, p, err);
    else if (rc == SP_OK)
        rc = insert_children_rows(s, src->cfg.ndisks, src->vbd_vdi, p->rec_vdis, err);
    if (rc == SP_OK && src_is_vm && !full)
        rc = insert_children_rows(s, src->cfg.ndisks, src->vbd_vdi, p->vm_children, err);
    for (int i = 0; rc == SP_OK && src_is_vm && !full && i < src->cfg.ndisks; i++)
        if (p->vm_children[i][0])
            rc = db_run(s, err, "UPDATE vbds SET vdi = ? WHERE vm = ? AND position = ?", "tti", p->vm_children[i],
                        src->uuid, (int64_t)i);
    if (rc == SP_OK)
        rc = insert_memory_row(s, src->suspend_vdi, p->mem, err);
    if (rc == SP_OK)
        rc = vm_row_insert(s, rec, err);
    if (rc == SP_OK)
        rc = job_switch(s, p->job, "", err);
    if (rc == SP_OK)
        rc = db_commit(s, err);
    else
        db_rollback(s);
    return rc;
}

static int find_source(struct sp_store *s, const char *name, char uuid[SP_UUID_STR], bool *is_vm, struct sp_error *err)
{
    struct sp_error vm_err;
    if (sp_store_find(s, name, false, NULL, uuid, &vm_err) == SP_OK) {
        *is_vm = true;
        return SP_OK;
    }
    *is_vm = false;
    if (sp_store_find(s, name, true, NULL, uuid, err) == SP_OK)
        return SP_OK;
    *err = vm_err.code == SP_ENOTFOUND ? *err : vm_err;
    return sp_error_set(err, err->code, "%s: no VM or snapshot of that name or UUID in store %s", name, s->dir);
}

static int new_identity(struct sp_vm *rec, const char *name, struct sp_error *err)
{
    int rc = sp_uuid_generate_str(rec->uuid, err);
    snprintf(rec->cfg.name, sizeof rec->cfg.name, "%s", name);
    rec->cfg.has_uuid = sp_uuid_parse(rec->uuid, rec->cfg.uuid) == SP_OK;
    for (int i = 0; rc == SP_OK && i < rec->cfg.nvifs; i++)
        rc = new_mac(rec->cfg.vifs[i].mac, err);
    return rc;
}

int sp_clone(struct sp_store *s, const char *src_name, const char *name, bool full, const struct sp_progress *prog,
             char uuid[SP_UUID_STR], struct sp_error *err)
{
    char su[SP_UUID_STR];
    bool is_vm = false;
    struct sp_vm src, rec;
    struct plan p;
    memset(&src, 0, sizeof src);
    memset(&rec, 0, sizeof rec);
    memset(&p, 0, sizeof p);
    int rc = find_source(s, src_name, su, &is_vm, err);
    if (rc == SP_OK)
        rc = check_name_free(s, name, err);
    if (rc == SP_OK)
        rc = sp_store_load_vm(s, su, &src, err);
    if (rc == SP_OK && !full)
        rc = check_depths(s, &src, err);
    if (rc == SP_OK)
        rc = plan_alloc(&p, src.cfg.ndisks, err);
    if (rc == SP_OK)
        rc = plan_new_vdis(&src, src.vbd_vdi, p.rec_vdis, &p.new_files, err);
    if (rc == SP_OK && is_vm && !full)
        rc = plan_new_vdis(&src, src.vbd_vdi, p.vm_children, &p.new_files, err);
    if (rc == SP_OK)
        rc = plan_memory(src.suspend_vdi, p.mem, &p.new_files, err);
    if (rc == SP_OK)
        rc = copy_record(&src, &rec, err);
    if (rc == SP_OK)
        rc = new_identity(&rec, name, err);
    if (rc == SP_OK) {
        memcpy(rec.vbd_vdi, p.rec_vdis, sizeof *p.rec_vdis * (size_t)src.cfg.ndisks);
        rec.suspended = p.mem[0] != '\0';
        snprintf(rec.suspend_vdi, sizeof rec.suspend_vdi, "%s", p.mem);
        rc = job_begin(s, full ? "clone --full" : "clone", p.new_files, &p.job, err);
    }
    if (rc == SP_OK && full)
        rc = full_copies(s, &src, &p, prog, err);
    if (rc == SP_OK && !full)
        rc = make_children(s, src.cfg.ndisks, src.vbd_vdi, p.rec_vdis, err);
    if (rc == SP_OK && is_vm && !full)
        rc = make_children(s, src.cfg.ndisks, src.vbd_vdi, p.vm_children, err);
    if (rc == SP_OK && p.mem[0])
        rc = store_share_memory(s, src.suspend_vdi, p.mem, err);
    if (rc == SP_OK)
        rc = clone_switch(s, &src, &rec, &p, full, is_vm, err);
    if (rc == SP_OK) {
        sp_crashpoint("clone.committed");
        rc = job_finish(s, p.job, err);
        snprintf(uuid, SP_UUID_STR, "%s", rec.uuid);
        store_write_cfg(s, rec.uuid);
        if (is_vm)
            store_write_cfg(s, src.uuid);
    } else if (p.job) {
        job_abort(s, p.job);
    }
    plan_free(&p);
    sp_vm_free(&rec);
    sp_vm_free(&src);
    return rc;
}
