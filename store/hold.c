/* An export's hold (store.h "an export's hold"): a job that names its
 * process, the temporary snapshot, the pins. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cancel.h"
#include "base/proc.h"
#include "store/internal.h"

bool job_owner_alive(int64_t pid, int64_t start)
{
    struct sp_proc p = {pid, start};
    return pid > 0 && sp_proc_alive(&p);
}

/* The nodes a temporary snapshot will own are the VM's leaves of now (the
 * VM gets new ones): listed before the snapshot is taken, they can be
 * merged back whenever the job ends, by this process or by recovery. */
static int merge_list(struct sp_store *s, const char *vm_uuid, char **list, struct sp_error *err)
{
    struct sp_vm vm;
    int rc = sp_store_load_vm(s, vm_uuid, &vm, err);
    if (rc != SP_OK)
        return rc;
    for (int i = 0; rc == SP_OK && i < vm.cfg.ndisks; i++)
        if (vm.vbd_vdi[i][0])
            rc = filelist_add(list, vm.vbd_vdi[i], err);
    sp_vm_free(&vm);
    return rc;
}

static int insert_job(struct sp_store *s, const char *vm_uuid, struct sp_hold *h, struct sp_error *err)
{
    struct sp_proc me;
    sp_proc_self(&me);
    char *merge = NULL;
    int rc = h->temporary ? merge_list(s, vm_uuid, &merge, err) : SP_OK;
    if (rc == SP_OK)
        rc = db_begin(s, err);
    if (rc == SP_OK)
        rc = db_run(s, err, "INSERT INTO jobs (kind, state, node, merge, owner_pid, owner_start) "
                    "VALUES ('export', ?, ?, ?, ?, ?)", "tttii", h->temporary ? "temporary" : "pinned", h->snap,
                    merge ? merge : "", me.pid, me.start);
    free(merge);
    if (rc == SP_OK) {
        h->job = sqlite3_last_insert_rowid(s->db);
        return db_commit(s, err);
    }
    db_rollback(s);
    return rc;
}

/* Each VDI the snapshot reads and all their ancestors. */
static int pin_chains(struct sp_store *s, struct sp_hold *h, struct sp_error *err)
{
    struct sp_vm snap;
    int rc = sp_store_load_vm(s, h->snap, &snap, err);
    if (rc != SP_OK)
        return rc;
    rc = db_begin(s, err);
    for (int i = 0; rc == SP_OK && i <= snap.cfg.ndisks; i++) {
        const char *vdi = i < snap.cfg.ndisks ? snap.vbd_vdi[i] : snap.suspend_vdi;
        if (vdi[0])
            rc = db_run(s, err,
                        "WITH RECURSIVE chain(uuid) AS (SELECT ? UNION "
                        "  SELECT v.parent FROM vdis v JOIN chain c ON v.uuid = c.uuid WHERE v.parent IS NOT NULL) "
                        "INSERT OR IGNORE INTO pins (job, vdi) SELECT ?, uuid FROM chain",
                        "ti", vdi, h->job);
    }
    if (rc == SP_OK)
        rc = db_commit(s, err);
    else
        db_rollback(s);
    sp_vm_free(&snap);
    return rc;
}

static void delete_job(struct sp_store *s, int64_t id)
{
    struct sp_error ignored;
    db_run(s, &ignored, "DELETE FROM jobs WHERE id = ?", "i", id); /* its pins go with it */
}

int sp_hold_begin(struct sp_store *s, const char *vm_uuid, const char *snapshot, bool memory, struct sp_hold *h,
                  struct sp_error *err)
{
    memset(h, 0, sizeof *h);
    h->temporary = snapshot == NULL;
    int rc = h->temporary ? sp_uuid_generate_str(h->snap, err)
                          : sp_store_find(s, snapshot, true, vm_uuid, h->snap, err);
    if (rc == SP_OK)
        rc = insert_job(s, vm_uuid, h, err);
    if (rc == SP_OK && h->temporary)
        rc = snapshot_create_as(s, vm_uuid, "export", memory, true, h->snap, err);
    if (rc == SP_OK)
        rc = pin_chains(s, h, err);
    if (rc != SP_OK && h->job) {
        struct sp_error ignored;
        sp_hold_end(s, h, &ignored); /* not cancellable itself; clears h->job */
    }
    return rc;
}

/* Each node listed (newline-separated uuids) merged with the VM's leaf
 * above it: that leaf is new and empty (the VM does not run from the
 * store), so the merge costs nothing and chains do not grow with every
 * export. A node that is not (or no longer) such a node is left alone, and
 * a merge that cannot be done now is left to gc. */
static void merge_back(struct sp_store *s, const char *list)
{
    char vdi[SP_UUID_STR];
    for (const char *p = list; filelist_next(&p, vdi, sizeof vdi);) {
        struct sp_error ignored;
        sp_gc_coalesce_node(s, vdi, &ignored);
    }
}

/* The temporary snapshot deleted (unless something took it away meanwhile:
 * vm destroy, snapshot delete), then its nodes merged back. */
static int drop_temporary(struct sp_store *s, int64_t job, const char *snap_uuid, struct sp_error *err)
{
    char merge[SP_UUID_STR * 64 * 2] = "";
    struct sp_vm snap;
    int rc = db_text(s, err, merge, sizeof merge, NULL, "SELECT merge FROM jobs WHERE id = ?", "i", job);
    if (rc == SP_OK)
        rc = sp_store_load_vm(s, snap_uuid, &snap, err);
    if (rc == SP_OK) {
        rc = sp_snapshot_delete(s, snap_uuid, err);
        sp_vm_free(&snap);
    } else if (rc == SP_ENOTFOUND) {
        rc = SP_OK;
    }
    if (rc == SP_OK)
        merge_back(s, merge);
    return rc;
}

int sp_hold_end(struct sp_store *s, struct sp_hold *h, struct sp_error *err)
{
    if (!h->job)
        return SP_OK;
    sp_cancel_defer();
    int rc = sp_store_exclusive(s, "export", err);
    if (rc == SP_OK) {
        /* the pins go first: the merge below must not skip our own nodes */
        rc = db_run(s, err, "DELETE FROM pins WHERE job = ?", "i", h->job);
    }
    if (rc == SP_OK && h->temporary)
        rc = drop_temporary(s, h->job, h->snap, err);
    if (rc == SP_OK)
        delete_job(s, h->job);
    sp_cancel_resume();
    h->job = 0;
    return rc;
}

int hold_recover(struct sp_store *s, int64_t id, const char *state, const char *node, struct sp_error *err)
{
    int rc = db_run(s, err, "DELETE FROM pins WHERE job = ?", "i", id);
    if (rc == SP_OK && strcmp(state, "temporary") == 0 && node[0])
        rc = drop_temporary(s, id, node, err);
    return rc;
}
