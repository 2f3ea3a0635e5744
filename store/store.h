/* The local storage repository (DESIGN.md "The store"): a directory with a
 * SQLite catalog, one VHD per node of every chain, and the VMs' xl.cfg.
 *
 *   <store>/catalog.db      VMs and snapshots (one table, as XAPI does),
 *                           their VBDs and VIFs, VDIs (file, parent), jobs
 *   <store>/vdis/<uuid>.vhd one file per VHD node
 *   <store>/vms/<uuid>.cfg  each VM's xl.cfg, regenerated from the catalog
 *   <store>/lock            flock: writers exclusive, readers shared
 *
 * Every change of the catalog is one transaction. An operation that also
 * creates or removes files records a job first (the files it will create),
 * makes the files, switches the catalog and only then removes old files;
 * opening the store finishes or undoes any job a crash left. */
#ifndef SP_STORE_H
#define SP_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "disk/copy.h"
#include "base/error.h"
#include "base/uuid.h"
#include "vm/vmconfig.h"

/* Catalog format this build writes; it reads this one only. */
#define SP_STORE_SCHEMA 3
/* At most 30 snapshots per VM, system snapshots included (XenServer's
 * limit), and a chain no deeper than what 30 snapshots make: each adds one
 * layer, so 30 read-only layers and the VM's own leaf, 31 files. (sm's
 * MAX_CHAIN_SIZE counts 30 files; it relies on its GC running meanwhile.) */
#define SP_MAX_SNAPSHOTS 30
#define SP_MAX_CHAIN (SP_MAX_SNAPSHOTS + 1)

struct sqlite3;

struct sp_store {
    char *dir;
    struct sqlite3 *db;
    int lock_fd;
    bool writer;          /* the lock is held exclusively */
    bool unlocked;        /* the lock is not held at all (sp_store_unlock) */
    int swept_staging;    /* staging folders of dead imports removed since open */
    uint64_t swept_bytes; /* and their size */
};

/* How to open: shared or exclusive lock, and whether a store may be made
 * where there is none (only the commands that put VMs in: vm create,
 * import). Any other command on a folder without a store fails with
 * SP_ENOTFOUND, "no store at DIR", and leaves the folder as it was. */
enum sp_store_mode {
    SP_STORE_READ = 0,
    SP_STORE_WRITE = 1,
    SP_STORE_CREATE = 2,   /* or'ed with READ or WRITE */
};

/* Opens the store at dir (mode: enum sp_store_mode bits). command names the
 * holder in the lock file for whoever waits. */
int sp_store_open(const char *dir, unsigned mode, const char *command, struct sp_store **out,
                  struct sp_error *err);
void sp_store_close(struct sp_store *s);

/* A long read (an export streaming, an import receiving) holds the lock
 * shared, so that another reader, and a second export or import, can go on
 * at the same time; writers wait. share: exclusive -> shared. exclusive:
 * shared -> exclusive (waiting like open does), then what a crash left is
 * finished as at open. */
int sp_store_share(struct sp_store *s, struct sp_error *err);
int sp_store_exclusive(struct sp_store *s, const char *command, struct sp_error *err);
/* Lets the lock go while the caller touches nothing of the store (an import
 * waiting for its archive to arrive: the exporter at the other end of the
 * pipe may need the lock first). share or exclusive take it again. */
int sp_store_unlock(struct sp_store *s);

/* Finds a VM (snapshots false) or a snapshot of vm_uuid (or of any VM when
 * vm_uuid is NULL) by name or UUID; an ambiguous name is an error. */
int sp_store_find(struct sp_store *s, const char *name_or_uuid, bool snapshots, const char *vm_uuid,
                  char uuid[SP_UUID_STR], struct sp_error *err);
int sp_store_load_vm(struct sp_store *s, const char *uuid, struct sp_vm *vm, struct sp_error *err);

/* Uuids of the VMs (not snapshots), by name; of the snapshots of vm, oldest first. */
int sp_store_list_vms(struct sp_store *s, char (**uuids)[SP_UUID_STR], int *n, struct sp_error *err);
int sp_store_list_snapshots(struct sp_store *s, const char *vm, char (**uuids)[SP_UUID_STR], int *n,
                            struct sp_error *err);

/* The absolute path of a VDI's file. */
int sp_store_vdi_path(struct sp_store *s, const char *vdi, char *out, size_t len, struct sp_error *err);
/* Opens a VDI read-only as a disk (store/vdi.c): its VHD chain, or, for
 * a memory image (memory true), its raw bytes. Close with sp_disk_close. */
struct sp_disk;
int sp_store_open_vdi(struct sp_store *s, const char *vdi, bool memory, struct sp_disk **out, struct sp_error *err);
/* Files in the chain of a VDI (1 for a base). */
int sp_store_chain_depth(struct sp_store *s, const char *vdi, int *depth, struct sp_error *err);

/* ---- operations (each holds the store's write lock through s) ---------- */

/* Copies the disks an xl.cfg names into the store and registers the VM. */
int sp_vm_create(struct sp_store *s, const char *cfg_path, const struct sp_progress *prog,
                 char uuid[SP_UUID_STR], struct sp_error *err);
int sp_vm_destroy(struct sp_store *s, const char *vm, struct sp_error *err);
/* The xl.cfg of a VM (malloc'd), disks pointing at the store's files. */
int sp_vm_config_text(struct sp_store *s, const char *vm, char **out, struct sp_error *err);
/* A halted VM becomes suspended with the memory image read from image_path. */
int sp_vm_suspend_with_image(struct sp_store *s, const char *vm, const char *image_path, struct sp_error *err);
/* A suspended VM drops its memory image and is halted. */
int sp_vm_halt(struct sp_store *s, const char *vm, struct sp_error *err);

int sp_snapshot_create(struct sp_store *s, const char *vm, const char *name, bool memory, bool is_system,
                       char uuid[SP_UUID_STR], struct sp_error *err);
int sp_snapshot_revert(struct sp_store *s, const char *vm, const char *snap, struct sp_error *err);
int sp_snapshot_delete(struct sp_store *s, const char *snap, struct sp_error *err);
/* A new VM from a VM or a snapshot: fast (children of its disks) or full (flattened copies). */
int sp_clone(struct sp_store *s, const char *src, const char *name, bool full, const struct sp_progress *prog,
             char uuid[SP_UUID_STR], struct sp_error *err);

struct sp_gc_report {
    void (*action)(void *ctx, const char *what, uint64_t frees, uint64_t needs);
    void *ctx;
};
/* Coalesces every node that has one child and no owner, removes what nothing
 * references. dry_run: only reports. *freed and *needed sum the actions. */
int sp_gc(struct sp_store *s, bool dry_run, const struct sp_gc_report *rep, uint64_t *freed, uint64_t *needed,
          struct sp_error *err);

/* ---- filling new VDIs from outside (archive import) ------------------- */

struct sp_new_vdi {
    char uuid[SP_UUID_STR];
    char path[4096];         /* absolute; the file exists, empty, after begin */
    uint64_t size;
    bool memory;             /* a memory image (raw file) rather than a disk (dynamic VHD) */
};

/* Where an import's files grow before they join the store: a folder of
 * <store>/staging/ whose lock file the importer holds. A staging folder
 * whose lock nobody holds is a dead import's, removed by the next writer. */
struct sp_staging {
    char dir[4096];
    int lock_fd;
};

/* Starts an import whose data is still to come (the lock is not held on
 * entry, nor on return): under the lock shared, refuses a VM name the store
 * has already (SP_EEXIST) and creates the files of n new VDIs (empty
 * dynamic VHDs, empty raw memory images) in a new staging folder. */
int sp_store_import_begin(struct sp_store *s, const char *name, struct sp_new_vdi *v, int n,
                          struct sp_staging *st, struct sp_error *err);
/* Opens a new VDI of an import (in its staging folder) writable, as
 * sp_store_open_vdi does a VDI of the store. */
int sp_store_open_new_vdi(const struct sp_new_vdi *v, struct sp_disk **out, struct sp_error *err);
/* The uuids of v[0..n) as one array (malloc'd), what the VM maps take. */
int sp_new_vdi_uuids(const struct sp_new_vdi *v, int n, char (**out)[SP_UUID_STR], struct sp_error *err);
/* Takes the lock exclusively, moves the files into the store and registers
 * vm (its vbd_vdi and suspend_vdi name the new VDIs; a new uuid is given
 * when empty) with the VDIs in one transaction. */
int sp_store_import_commit(struct sp_store *s, struct sp_staging *st, struct sp_new_vdi *v, int n,
                           struct sp_vm *vm, struct sp_error *err);
/* Removes the staging folder. Safe after commit. */
void sp_store_import_abort(struct sp_store *s, struct sp_staging *st);

/* Coalesces one node into its only child now, if it is such a node (no
 * owner, one child): what export does for its temporary snapshot, so that
 * exports do not make chains grow. */
int sp_gc_coalesce_node(struct sp_store *s, const char *node, struct sp_error *err);

/* ---- an export's hold on what it reads (hold.c) ----------------------- */

/* An export reads frozen nodes without the store's lock, so that writers go
 * on meanwhile. Its job row (owner: this process) is written before its
 * temporary snapshot is taken, so that a kill leaves nothing that the next
 * opener cannot undo; pins on every file of the chains it reads keep gc
 * from rewriting them. */
struct sp_hold {
    int64_t job;
    char snap[SP_UUID_STR];  /* the snapshot read */
    bool temporary;          /* taken for this export, deleted at its end */
};
/* Under the write lock. snapshot: a snapshot of vm_uuid to read, or NULL
 * for a temporary one (memory: with the VM's memory image). */
int sp_hold_begin(struct sp_store *s, const char *vm_uuid, const char *snapshot, bool memory, struct sp_hold *h,
                  struct sp_error *err);
/* Takes the write lock again (an interrupt cannot stop this), deletes the
 * temporary snapshot and merges its layer back, drops the pins and the job. */
int sp_hold_end(struct sp_store *s, struct sp_hold *h, struct sp_error *err);

/* Catalog and files agree; problem() gets one line per finding. */
int sp_store_check(struct sp_store *s, void (*problem)(void *ctx, const char *msg), void *ctx, int *count,
                   struct sp_error *err);

#endif
