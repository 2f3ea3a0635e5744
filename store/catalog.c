/* The catalog: SQLite, one transaction per change. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "store/internal.h"

int db_error(struct sp_store *s, struct sp_error *err, const char *what)
{
    /* SQLite says "disk I/O error"; the errno behind it says which (ENOSPC) */
    int sys = sqlite3_system_errno(s->db);
    if (sys)
        return sp_error_set(err, SP_EIO, "store %s: catalog: %s: %s (%s)", s->dir, what, sqlite3_errmsg(s->db),
                            strerror(sys));
    return sp_error_set(err, SP_EIO, "store %s: catalog: %s: %s", s->dir, what, sqlite3_errmsg(s->db));
}

static int bind_args(struct sp_store *s, sqlite3_stmt *st, const char *types, va_list ap, struct sp_error *err)
{
    for (int i = 0; types && types[i]; i++) {
        int rc;
        if (types[i] == 't') {
            const char *v = va_arg(ap, const char *);
            rc = v ? sqlite3_bind_text(st, i + 1, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i + 1);
        } else {
            rc = sqlite3_bind_int64(st, i + 1, (sqlite3_int64)va_arg(ap, int64_t));
        }
        if (rc != SQLITE_OK)
            return db_error(s, err, "bind");
    }
    return SP_OK;
}

static int prepare(struct sp_store *s, struct sp_error *err, sqlite3_stmt **st, const char *sql, const char *types,
                   va_list ap)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK)
        return db_error(s, err, "prepare");
    int rc = bind_args(s, *st, types, ap, err);
    if (rc != SP_OK) {
        sqlite3_finalize(*st);
        *st = NULL;
    }
    return rc;
}

int db_query(struct sp_store *s, struct sp_error *err, sqlite3_stmt **st, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    int rc = prepare(s, err, st, sql, types, ap);
    va_end(ap);
    return rc;
}

int db_run(struct sp_store *s, struct sp_error *err, const char *sql, const char *types, ...)
{
    sqlite3_stmt *st;
    va_list ap;
    va_start(ap, types);
    int rc = prepare(s, err, &st, sql, types, ap);
    va_end(ap);
    if (rc != SP_OK)
        return rc;
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    if (step != SQLITE_DONE && step != SQLITE_ROW)
        return db_error(s, err, "write");
    return SP_OK;
}

int db_int(struct sp_store *s, struct sp_error *err, int64_t *out, bool *found, const char *sql, const char *types,
           ...)
{
    sqlite3_stmt *st;
    va_list ap;
    va_start(ap, types);
    int rc = prepare(s, err, &st, sql, types, ap);
    va_end(ap);
    if (rc != SP_OK)
        return rc;
    int step = sqlite3_step(st);
    if (found)
        *found = step == SQLITE_ROW;
    if (step == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return db_error(s, err, "read");
    return SP_OK;
}

int db_text(struct sp_store *s, struct sp_error *err, char *out, size_t len, bool *found, const char *sql,
            const char *types, ...)
{
    sqlite3_stmt *st;
    va_list ap;
    va_start(ap, types);
    int rc = prepare(s, err, &st, sql, types, ap);
    va_end(ap);
    if (rc != SP_OK)
        return rc;
    int step = sqlite3_step(st);
    if (found)
        *found = step == SQLITE_ROW;
    if (step == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(out, len, "%s", t ? (const char *)t : "");
    }
    sqlite3_finalize(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return db_error(s, err, "read");
    return SP_OK;
}

int db_begin(struct sp_store *s, struct sp_error *err)
{
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return db_error(s, err, "begin");
    return SP_OK;
}

int db_commit(struct sp_store *s, struct sp_error *err)
{
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        int rc = db_error(s, err, "commit");
        db_rollback(s);
        return rc;
    }
    return SP_OK;
}

void db_rollback(struct sp_store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- VDIs --------------------------------------------------------------- */

static void copy_col(sqlite3_stmt *st, int col, char *out, size_t len)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(out, len, "%s", t ? (const char *)t : "");
}

int vdi_load(struct sp_store *s, const char *uuid, struct sp_vdi *v, struct sp_error *err)
{
    sqlite3_stmt *st;
    int rc = db_query(s, err, &st, "SELECT uuid, parent, file, virtual_size, kind FROM vdis WHERE uuid = ?", "t",
                      uuid);
    if (rc != SP_OK)
        return rc;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        copy_col(st, 0, v->uuid, sizeof v->uuid);
        copy_col(st, 1, v->parent, sizeof v->parent);
        copy_col(st, 2, v->file, sizeof v->file);
        v->virtual_size = (uint64_t)sqlite3_column_int64(st, 3);
        copy_col(st, 4, v->kind, sizeof v->kind);
    }
    sqlite3_finalize(st);
    if (step == SQLITE_DONE)
        return sp_error_set(err, SP_ENOTFOUND, "store %s: VDI %s is not in the catalog", s->dir, uuid);
    return step == SQLITE_ROW ? SP_OK : db_error(s, err, "read VDI");
}

int vdi_insert(struct sp_store *s, const struct sp_vdi *v, struct sp_error *err)
{
    return db_run(s, err,
                  "INSERT INTO vdis (uuid, parent, file, virtual_size, kind, created) "
                  "VALUES (?, ?, ?, ?, ?, strftime('%s','now'))",
                  "tttit", v->uuid, v->parent[0] ? v->parent : NULL, v->file, (int64_t)v->virtual_size, v->kind);
}

int vdi_children(struct sp_store *s, const char *uuid, int *n, char *child, struct sp_error *err)
{
    int64_t count = 0;
    int rc = db_int(s, err, &count, NULL, "SELECT count(*) FROM vdis WHERE parent = ?", "t", uuid);
    if (rc == SP_OK && child && count > 0)
        rc = db_text(s, err, child, SP_UUID_STR, NULL, "SELECT uuid FROM vdis WHERE parent = ? LIMIT 1", "t", uuid);
    *n = (int)count;
    return rc;
}

int vdi_owners(struct sp_store *s, const char *uuid, int *n, struct sp_error *err)
{
    int64_t count = 0;
    int rc = db_int(s, err, &count, NULL,
                    "SELECT (SELECT count(*) FROM vbds WHERE vdi = ?1) + (SELECT count(*) FROM vms WHERE suspend_vdi = ?1)",
                    "t", uuid);
    *n = (int)count;
    return rc;
}

/* ---- VM rows ------------------------------------------------------------ */

static const char *empty_null(const char *s) { return s && *s ? s : NULL; }

static int insert_vbds(struct sp_store *s, const struct sp_vm *vm, struct sp_error *err)
{
    for (int i = 0; i < vm->cfg.ndisks; i++) {
        const struct sp_vm_disk *d = &vm->cfg.disks[i];
        const char *vdi = vm->vbd_vdi ? empty_null(vm->vbd_vdi[i]) : NULL;
        int rc = db_run(s, err,
                        "INSERT INTO vbds (vm, position, vdi, vdev, readwrite, cdrom, format, target) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        "tittiitt", vm->uuid, (int64_t)i, vdi, d->vdev, (int64_t)d->readwrite, (int64_t)d->cdrom,
                        d->format, vdi ? NULL : (d->target ? d->target : ""));
        if (rc != SP_OK)
            return rc;
    }
    return SP_OK;
}

static int insert_vifs(struct sp_store *s, const struct sp_vm *vm, struct sp_error *err)
{
    for (int i = 0; i < vm->cfg.nvifs; i++) {
        const struct sp_vm_vif *v = &vm->cfg.vifs[i];
        int rc = db_run(s, err,
                        "INSERT INTO vifs (vm, position, mac, bridge, model, ip, extra, network) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        "titttttt", vm->uuid, (int64_t)i, v->mac, v->bridge, v->model, v->ip, v->extra, v->network);
        if (rc != SP_OK)
            return rc;
    }
    return SP_OK;
}

int vm_row_insert(struct sp_store *s, const struct sp_vm *vm, struct sp_error *err)
{
    const struct sp_vm_config *c = &vm->cfg;
    int rc = db_run(s, err,
                    "INSERT INTO vms (uuid, name, type, memory_mb, maxmem_mb, vcpus, maxvcpus, boot, extra, "
                    "power_state, suspend_vdi, snapshot_of, snapshot_time, is_system, parent_snapshot, created, bios) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    "tttiiiitttttiitit", vm->uuid, c->name, sp_vm_type_name(c->type), (int64_t)c->memory_mb,
                    (int64_t)c->maxmem_mb, (int64_t)c->vcpus, (int64_t)c->maxvcpus, c->boot,
                    c->extra ? c->extra : "", vm->suspended ? "suspended" : "halted", empty_null(vm->suspend_vdi),
                    empty_null(vm->snapshot_of), vm->snapshot_time, (int64_t)vm->is_system,
                    empty_null(vm->parent_snapshot), vm->created, c->bios);
    if (rc == SP_OK)
        rc = insert_vbds(s, vm, err);
    if (rc == SP_OK)
        rc = insert_vifs(s, vm, err);
    return rc;
}

int vm_row_delete(struct sp_store *s, const char *uuid, struct sp_error *err)
{
    int rc = db_run(s, err, "DELETE FROM vbds WHERE vm = ?", "t", uuid);
    if (rc == SP_OK)
        rc = db_run(s, err, "DELETE FROM vifs WHERE vm = ?", "t", uuid);
    if (rc == SP_OK)
        rc = db_run(s, err, "UPDATE vms SET parent_snapshot = NULL WHERE parent_snapshot = ?", "t", uuid);
    if (rc == SP_OK)
        rc = db_run(s, err, "DELETE FROM vms WHERE uuid = ?", "t", uuid);
    return rc;
}

int vm_count_snapshots(struct sp_store *s, const char *vm, int *n, struct sp_error *err)
{
    int64_t count = 0;
    int rc = db_int(s, err, &count, NULL, "SELECT count(*) FROM vms WHERE snapshot_of = ?", "t", vm);
    *n = (int)count;
    return rc;
}

static enum sp_vm_type type_from_name(const char *t)
{
    return strcmp(t, "hvm") == 0 ? SP_VM_HVM : strcmp(t, "pvh") == 0 ? SP_VM_PVH : SP_VM_PV;
}

static int load_vbds(struct sp_store *s, struct sp_vm *vm, struct sp_error *err)
{
    sqlite3_stmt *st;
    int64_t n = 0;
    int rc = db_int(s, err, &n, NULL, "SELECT count(*) FROM vbds WHERE vm = ?", "t", vm->uuid);
    if (rc != SP_OK)
        return rc;
    vm->cfg.disks = sp_zalloc((size_t)(n ? n : 1) * sizeof *vm->cfg.disks, err);
    vm->vbd_vdi = sp_zalloc((size_t)(n ? n : 1) * sizeof *vm->vbd_vdi, err);
    if (!vm->cfg.disks || !vm->vbd_vdi)
        return SP_ENOMEM;
    rc = db_query(s, err, &st,
                  "SELECT b.vdi, b.vdev, b.readwrite, b.cdrom, b.format, b.target, d.file FROM vbds b "
                  "LEFT JOIN vdis d ON d.uuid = b.vdi WHERE b.vm = ? ORDER BY b.position", "t", vm->uuid);
    if (rc != SP_OK)
        return rc;
    int i = 0;
    while (i < n && sqlite3_step(st) == SQLITE_ROW) {
        struct sp_vm_disk *d = &vm->cfg.disks[i];
        copy_col(st, 0, vm->vbd_vdi[i], sizeof vm->vbd_vdi[i]);
        copy_col(st, 1, d->vdev, sizeof d->vdev);
        d->readwrite = sqlite3_column_int(st, 2) != 0;
        d->cdrom = sqlite3_column_int(st, 3) != 0;
        copy_col(st, 4, d->format, sizeof d->format);
        char path[4096];
        if (vm->vbd_vdi[i][0]) {
            char rel[256];
            copy_col(st, 6, rel, sizeof rel);
            store_path(s, rel, path, sizeof path);
        } else {
            copy_col(st, 5, path, sizeof path);
        }
        d->target = strdup(path);
        if (!d->target) {
            sqlite3_finalize(st);
            return sp_error_set(err, SP_ENOMEM, "out of memory");
        }
        vm->cfg.ndisks = ++i;
    }
    sqlite3_finalize(st);
    return SP_OK;
}

static int load_vifs(struct sp_store *s, struct sp_vm *vm, struct sp_error *err)
{
    sqlite3_stmt *st;
    int64_t n = 0;
    int rc = db_int(s, err, &n, NULL, "SELECT count(*) FROM vifs WHERE vm = ?", "t", vm->uuid);
    if (rc != SP_OK)
        return rc;
    vm->cfg.vifs = sp_zalloc((size_t)(n ? n : 1) * sizeof *vm->cfg.vifs, err);
    if (!vm->cfg.vifs)
        return SP_ENOMEM;
    rc = db_query(s, err, &st, "SELECT mac, bridge, model, ip, extra, network FROM vifs WHERE vm = ? ORDER BY position", "t",
                  vm->uuid);
    if (rc != SP_OK)
        return rc;
    int i = 0;
    while (i < n && sqlite3_step(st) == SQLITE_ROW) {
        struct sp_vm_vif *v = &vm->cfg.vifs[i];
        copy_col(st, 0, v->mac, sizeof v->mac);
        copy_col(st, 1, v->bridge, sizeof v->bridge);
        copy_col(st, 2, v->model, sizeof v->model);
        copy_col(st, 3, v->ip, sizeof v->ip);
        copy_col(st, 5, v->network, sizeof v->network);
        if (sqlite3_column_type(st, 4) != SQLITE_NULL)
            v->extra = strdup((const char *)sqlite3_column_text(st, 4));
        vm->cfg.nvifs = ++i;
    }
    sqlite3_finalize(st);
    return SP_OK;
}

int sp_store_load_vm(struct sp_store *s, const char *uuid, struct sp_vm *vm, struct sp_error *err)
{
    memset(vm, 0, sizeof *vm);
    sqlite3_stmt *st;
    int rc = db_query(s, err, &st,
                      "SELECT uuid, name, type, memory_mb, maxmem_mb, vcpus, maxvcpus, boot, extra, power_state, "
                      "suspend_vdi, snapshot_of, snapshot_time, is_system, parent_snapshot, created, bios "
                      "FROM vms WHERE uuid = ?", "t", uuid);
    if (rc != SP_OK)
        return rc;
    int step = sqlite3_step(st);
    if (step != SQLITE_ROW) {
        sqlite3_finalize(st);
        return step == SQLITE_DONE ? sp_error_set(err, SP_ENOTFOUND, "VM %s: not in the store", uuid)
                                   : db_error(s, err, "read VM");
    }
    struct sp_vm_config *c = &vm->cfg;
    copy_col(st, 0, vm->uuid, sizeof vm->uuid);
    copy_col(st, 1, c->name, sizeof c->name);
    char type[8];
    copy_col(st, 2, type, sizeof type);
    c->type = type_from_name(type);
    c->memory_mb = sqlite3_column_int64(st, 3);
    c->maxmem_mb = sqlite3_column_int64(st, 4);
    c->vcpus = sqlite3_column_int64(st, 5);
    c->maxvcpus = sqlite3_column_int64(st, 6);
    copy_col(st, 7, c->boot, sizeof c->boot);
    copy_col(st, 16, c->bios, sizeof c->bios);
    c->extra = strdup(sqlite3_column_text(st, 8) ? (const char *)sqlite3_column_text(st, 8) : "");
    vm->suspended = strcmp((const char *)sqlite3_column_text(st, 9), "suspended") == 0;
    copy_col(st, 10, vm->suspend_vdi, sizeof vm->suspend_vdi);
    copy_col(st, 11, vm->snapshot_of, sizeof vm->snapshot_of);
    vm->snapshot_time = sqlite3_column_int64(st, 12);
    vm->is_system = sqlite3_column_int(st, 13) != 0;
    copy_col(st, 14, vm->parent_snapshot, sizeof vm->parent_snapshot);
    vm->created = sqlite3_column_int64(st, 15);
    sqlite3_finalize(st);
    c->has_uuid = sp_uuid_parse(vm->uuid, c->uuid) == SP_OK;
    rc = c->extra ? SP_OK : sp_error_set(err, SP_ENOMEM, "out of memory");
    if (rc == SP_OK)
        rc = load_vbds(s, vm, err);
    if (rc == SP_OK)
        rc = load_vifs(s, vm, err);
    if (rc != SP_OK)
        sp_vm_free(vm);
    return rc;
}

int sp_store_find(struct sp_store *s, const char *name_or_uuid, bool snapshots, const char *vm_uuid,
                  char uuid[SP_UUID_STR], struct sp_error *err)
{
    const char *what = snapshots ? "snapshot" : "VM";
    const char *cond = snapshots ? (vm_uuid ? "snapshot_of = ?2" : "snapshot_of IS NOT NULL")
                                 : "snapshot_of IS NULL";
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT uuid FROM vms WHERE (uuid = ?1 OR name = ?1) AND %s ORDER BY uuid = ?1 DESC",
             cond);
    sqlite3_stmt *st;
    int rc = vm_uuid && snapshots ? db_query(s, err, &st, sql, "tt", name_or_uuid, vm_uuid)
                                  : db_query(s, err, &st, sql, "t", name_or_uuid);
    if (rc != SP_OK)
        return rc;
    int found = 0;
    bool exact = false;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (found == 0) {
            copy_col(st, 0, uuid, SP_UUID_STR);
            exact = strcmp(uuid, name_or_uuid) == 0;
        }
        found++;
    }
    sqlite3_finalize(st);
    if (found == 0)
        return sp_error_set(err, SP_ENOTFOUND, "%s %s: not found in store %s", what, name_or_uuid, s->dir);
    if (found > 1 && !exact)
        return sp_error_set(err, SP_EINVAL, "%s %s: %d %ss have that name; use the UUID", what, name_or_uuid, found,
                            what);
    return SP_OK;
}

static int list_uuids(struct sp_store *s, sqlite3_stmt *st, char (**out)[SP_UUID_STR], int *n, struct sp_error *err)
{
    int cap = 16, count = 0;
    char (*u)[SP_UUID_STR] = sp_alloc((size_t)cap * SP_UUID_STR, err);
    int rc = u ? SP_OK : SP_ENOMEM;
    while (rc == SP_OK && sqlite3_step(st) == SQLITE_ROW) {
        if (count == cap) {
            void *bigger = realloc(u, (size_t)(cap *= 2) * SP_UUID_STR);
            if (!bigger) {
                rc = sp_error_set(err, SP_ENOMEM, "out of memory");
                break;
            }
            u = bigger;
        }
        copy_col(st, 0, u[count++], SP_UUID_STR);
    }
    sqlite3_finalize(st);
    (void)s;
    if (rc != SP_OK) {
        free(u);
        return rc;
    }
    *out = u;
    *n = count;
    return SP_OK;
}

int sp_store_list_vms(struct sp_store *s, char (**uuids)[SP_UUID_STR], int *n, struct sp_error *err)
{
    sqlite3_stmt *st;
    int rc = db_query(s, err, &st, "SELECT uuid FROM vms WHERE snapshot_of IS NULL ORDER BY name, uuid", NULL);
    return rc == SP_OK ? list_uuids(s, st, uuids, n, err) : rc;
}

int sp_store_list_snapshots(struct sp_store *s, const char *vm, char (**uuids)[SP_UUID_STR], int *n,
                            struct sp_error *err)
{
    sqlite3_stmt *st;
    int rc = db_query(s, err, &st, "SELECT uuid FROM vms WHERE snapshot_of = ? ORDER BY snapshot_time, rowid", "t", vm);
    return rc == SP_OK ? list_uuids(s, st, uuids, n, err) : rc;
}

int vm_row_update(struct sp_store *s, const struct sp_vm *vm, struct sp_error *err)
{
    const struct sp_vm_config *c = &vm->cfg;
    int rc = db_run(s, err,
                    "UPDATE vms SET name = ?2, type = ?3, memory_mb = ?4, maxmem_mb = ?5, vcpus = ?6, maxvcpus = ?7, "
                    "boot = ?8, extra = ?9, power_state = ?10, suspend_vdi = ?11, parent_snapshot = ?12, bios = ?13 "
                    "WHERE uuid = ?1",
                    "tttiiiitttttt", vm->uuid, c->name, sp_vm_type_name(c->type), (int64_t)c->memory_mb,
                    (int64_t)c->maxmem_mb, (int64_t)c->vcpus, (int64_t)c->maxvcpus, c->boot,
                    c->extra ? c->extra : "", vm->suspended ? "suspended" : "halted", empty_null(vm->suspend_vdi),
                    empty_null(vm->parent_snapshot), c->bios);
    if (rc == SP_OK)
        rc = db_run(s, err, "DELETE FROM vbds WHERE vm = ?", "t", vm->uuid);
    if (rc == SP_OK)
        rc = db_run(s, err, "DELETE FROM vifs WHERE vm = ?", "t", vm->uuid);
    if (rc == SP_OK)
        rc = insert_vbds(s, vm, err);
    if (rc == SP_OK)
        rc = insert_vifs(s, vm, err);
    return rc;
}

int prune_vdi(struct sp_store *s, const char *vdi, char **old_files, struct sp_error *err)
{
    char cur[SP_UUID_STR];
    snprintf(cur, sizeof cur, "%s", vdi);
    while (cur[0]) {
        int owners = 0, children = 0;
        struct sp_vdi v;
        int rc = vdi_owners(s, cur, &owners, err);
        if (rc == SP_OK)
            rc = vdi_children(s, cur, &children, NULL, err);
        if (rc != SP_OK)
            return rc;
        if (owners || children)
            return SP_OK;
        rc = vdi_load(s, cur, &v, err);
        if (rc == SP_OK)
            rc = filelist_add(old_files, v.file, err);
        if (rc == SP_OK)
            rc = db_run(s, err, "DELETE FROM vdis WHERE uuid = ?", "t", cur);
        if (rc != SP_OK)
            return rc;
        snprintf(cur, sizeof cur, "%s", v.parent);
    }
    return SP_OK;
}

int check_name_free(struct sp_store *s, const char *name, struct sp_error *err)
{
    char uuid[SP_UUID_STR];
    bool found = false;
    int rc = db_text(s, err, uuid, sizeof uuid, &found, "SELECT uuid FROM vms WHERE name = ? AND snapshot_of IS NULL",
                     "t", name);
    if (rc == SP_OK && found)
        return sp_error_set(err, SP_EEXIST, "VM %s: a VM of that name exists already (%s)", name, uuid);
    return rc;
}
