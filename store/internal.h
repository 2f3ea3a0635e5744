/* What the store's modules share: SQL helpers, VDI rows, jobs, files. */
#ifndef SP_STORE_INTERNAL_H
#define SP_STORE_INTERNAL_H

#include <sqlite3.h>
#include <stdarg.h>

#include "store/crash.h"
#include "store/store.h"

/* ---- SQL ---------------------------------------------------------------- */

/* Binds the arguments by the letters of types: 't' text (const char *, NULL
 * binds NULL), 'i' int64_t. */
int db_run(struct sp_store *s, struct sp_error *err, const char *sql, const char *types, ...);
/* First column of the first row; *found false (and out untouched) when none. */
int db_int(struct sp_store *s, struct sp_error *err, int64_t *out, bool *found, const char *sql,
           const char *types, ...);
int db_text(struct sp_store *s, struct sp_error *err, char *out, size_t len, bool *found, const char *sql,
            const char *types, ...);
/* Prepares sql with bound arguments for the caller to step and finalize. */
int db_query(struct sp_store *s, struct sp_error *err, sqlite3_stmt **st, const char *sql, const char *types, ...);
int db_begin(struct sp_store *s, struct sp_error *err);
int db_commit(struct sp_store *s, struct sp_error *err);
void db_rollback(struct sp_store *s);
int db_error(struct sp_store *s, struct sp_error *err, const char *what);

/* ---- VDIs --------------------------------------------------------------- */

struct sp_vdi {
    char uuid[SP_UUID_STR];
    char parent[SP_UUID_STR];   /* "" for a base */
    char file[128];             /* relative to the store: vdis/<uuid>.vhd */
    uint64_t virtual_size;
    char kind[8];               /* "disk" or "memory" */
};

int vdi_load(struct sp_store *s, const char *uuid, struct sp_vdi *v, struct sp_error *err);
int vdi_insert(struct sp_store *s, const struct sp_vdi *v, struct sp_error *err);
/* Children in the catalog; first child's uuid in child (may be NULL). */
int vdi_children(struct sp_store *s, const char *uuid, int *n, char *child, struct sp_error *err);
/* VBDs (of VMs and snapshots) and suspend references pointing at it. */
int vdi_owners(struct sp_store *s, const char *uuid, int *n, struct sp_error *err);

/* ---- VM rows ------------------------------------------------------------ */

int vm_row_insert(struct sp_store *s, const struct sp_vm *vm, struct sp_error *err);
int vm_row_delete(struct sp_store *s, const char *uuid, struct sp_error *err);
int vm_count_snapshots(struct sp_store *s, const char *vm, int *n, struct sp_error *err);

/* ---- jobs and files ----------------------------------------------------- */

/* Records the files an operation is about to create (newline-separated
 * store-relative paths), in its own transaction. */
int job_begin(struct sp_store *s, const char *kind, const char *new_files, int64_t *id, struct sp_error *err);
/* Inside the caller's switching transaction: the files to remove once it
 * has committed. */
int job_switch(struct sp_store *s, int64_t id, const char *old_files, struct sp_error *err);
/* After the commit: removes the old files nothing references, then the job. */
int job_finish(struct sp_store *s, int64_t id, struct sp_error *err);
/* A failed operation before its switch: removes its new files and the job. */
void job_abort(struct sp_store *s, int64_t id);
/* Finishes or undoes every job left by a crash (store open does this). */
int jobs_recover(struct sp_store *s, struct sp_error *err);
int jobs_pending(struct sp_store *s, int *n, struct sp_error *err);

/* sp_snapshot_create with the snapshot's uuid chosen by the caller. */
int snapshot_create_as(struct sp_store *s, const char *vm, const char *snap_name, bool memory, bool is_system,
                       const char *uuid, struct sp_error *err);
/* An export's job left by a dead process (hold.c): its temporary snapshot
 * deleted and merged back, its pins dropped. */
int hold_recover(struct sp_store *s, int64_t id, const char *state, const char *node, struct sp_error *err);
/* Whether a job's owner (a process that runs it without the lock) lives. */
bool job_owner_alive(int64_t pid, int64_t start);

/* Coalesce's own steps (gc.c), called by recovery for its jobs. */
int coalesce_recover(struct sp_store *s, int64_t id, const char *state, const char *node, const char *child,
                     struct sp_error *err);

/* Appends "path\n" to a growable list (malloc'd, *list may be NULL). */
int filelist_add(char **list, const char *path, struct sp_error *err);
/* The next entry of such a list into out (cut to len); false at its end. */
bool filelist_next(const char **p, char *out, size_t len);

/* Staging folders of imports that died (their lock is free): each given to
 * found (may be NULL) with its size, and removed when remove (under the
 * write lock; counted in s->swept_*). */
void staging_sweep(struct sp_store *s, bool remove, void (*found)(void *ctx, const char *rel, uint64_t bytes),
                   void *ctx);

/* Removes a folder and the files in it. */
void remove_tree(const char *dir);
/* Absolute path of a store-relative one. */
void store_path(const struct sp_store *s, const char *rel, char *out, size_t len);
/* vdis/<uuid>.vhd */
void vdi_rel_path(const char *uuid, char *out, size_t len);
/* vdis/<uuid>.mem: a memory image, kept as the raw bytes it was given. */
void mem_rel_path(const char *uuid, char *out, size_t len);
/* fsync of the store's vdis/ directory (after a rename or unlink). */
int store_sync_dir(struct sp_store *s, struct sp_error *err);

/* Creates vdis/<uuid>.vhd: an empty differencing child of parent_vdi. */
int store_create_child(struct sp_store *s, const char *parent_vdi, const char *uuid, struct sp_error *err);
/* Creates vdis/<uuid>.vhd as a dynamic VHD holding src's content. */
int store_import_disk(struct sp_store *s, struct sp_disk *src, const char *uuid, const struct sp_progress *prog,
                      struct sp_error *err);
/* Creates vdis/<uuid>.mem holding src's bytes (a memory image). */
int store_import_memory(struct sp_store *s, struct sp_disk *src, const char *uuid, struct sp_error *err);
/* A second name (hard link) for a memory image: it is never written again,
 * so sharing it costs no copy on any file system. */
int store_share_memory(struct sp_store *s, const char *from_vdi, const char *uuid, struct sp_error *err);

/* A fresh MAC in Xen's OUI 00:16:3e, locally random. */
int new_mac(char out[18], struct sp_error *err);

/* Regenerates vms/<uuid>.cfg of a VM (not snapshots); best effort. */
void store_write_cfg(struct sp_store *s, const char *vm);


/* Replaces a VM row's fields, VBDs and VIFs with vm's (same uuid). */
int vm_row_update(struct sp_store *s, const struct sp_vm *vm, struct sp_error *err);
/* Removes the rows of vdi and of each ancestor in turn that nothing owns and
 * no child reads, adding their files to *old_files. */
int prune_vdi(struct sp_store *s, const char *vdi, char **old_files, struct sp_error *err);
/* Refuses a VM name that another VM has already. */
int check_name_free(struct sp_store *s, const char *name, struct sp_error *err);
/* Deletes a VM or snapshot record, and what of its VDIs nothing else needs. */
int drop_vm_record(struct sp_store *s, const char *uuid, char **old_files, struct sp_error *err);
/* A job that creates no file: fn changes the catalog inside one
 * transaction and lists the files to remove after it commits. */
int run_switch_job(struct sp_store *s, const char *kind,
                   int (*fn)(struct sp_store *s, void *ctx, char **old_files, struct sp_error *err), void *ctx,
                   struct sp_error *err);

#endif
