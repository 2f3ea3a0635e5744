/* New VDIs filled from outside the store (an archive being imported). The
 * files grow in a staging folder under a lock of their own while the store
 * lock is only shared (an export of the same store can stream into this
 * import through a pipe); then, under the exclusive lock, they move into
 * vdis/ and the VM appears in one transaction. A crash leaves a staging
 * folder that the next writer removes, or moved files without rows that
 * the import's job lists, removed by the next opener: never a half-made
 * VM. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/outfile.h"
#include "base/util.h"
#include "disk/vhd.h"
#include "store/internal.h"

static void new_vdi_rel(const struct sp_new_vdi *v, char *rel, size_t len)
{
    if (v->memory)
        mem_rel_path(v->uuid, rel, len);
    else
        vdi_rel_path(v->uuid, rel, len);
}

static int create_empty(struct sp_staging *st, struct sp_new_vdi *v, struct sp_error *err)
{
    char rel[128];
    new_vdi_rel(v, rel, sizeof rel);
    snprintf(v->path, sizeof v->path, "%s/%s", st->dir, rel + strlen("vdis/"));
    uint8_t u[SP_UUID_LEN];
    if (sp_uuid_parse(v->uuid, u) != SP_OK)
        return sp_error_set(err, SP_EINVAL, "bad uuid %s", v->uuid);
    int fd = open(v->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return sp_error_errno(err, errno, "%s", v->path);
    int rc = SP_OK;
    if (v->memory) {
        if (ftruncate(fd, (off_t)v->size) != 0)
            rc = sp_error_errno(err, errno, "%s", v->path);
    } else {
        struct sp_vhd_create_opts o = {.size = sp_round_up_u64(v->size, SP_VHD_SECTOR), .type = SP_VHD_DYNAMIC, .uuid = u};
        rc = sp_vhd_create_fd(fd, v->path, &o, err);
    }
    close(fd);
    return rc;
}

static int make_staging(struct sp_store *s, struct sp_staging *st, struct sp_error *err)
{
    char id[SP_UUID_STR], rel[128], lock[4096 + 16];
    int rc = sp_uuid_generate_str(id, err);
    if (rc != SP_OK)
        return rc;
    snprintf(rel, sizeof rel, "staging/%s", id);
    store_path(s, rel, st->dir, sizeof st->dir);
    if (mkdir(st->dir, 0700) != 0)
        return sp_error_errno(err, errno, "store %s", st->dir);
    snprintf(lock, sizeof lock, "%s/lock", st->dir);
    st->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (st->lock_fd < 0 || flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0)
        return sp_error_errno(err, errno, "store %s: staging lock", st->dir);
    return SP_OK;
}

int sp_store_import_begin(struct sp_store *s, const char *name, struct sp_new_vdi *v, int n,
                          struct sp_staging *st, struct sp_error *err)
{
    memset(st, 0, sizeof *st);
    st->lock_fd = -1;
    int rc = sp_store_share(s, err);
    if (rc == SP_OK)
        rc = check_name_free(s, name, err); /* before a long import, not only at its end */
    if (rc == SP_OK)
        rc = make_staging(s, st, err);
    for (int i = 0; rc == SP_OK && i < n; i++) {
        rc = sp_uuid_generate_str(v[i].uuid, err);
        if (rc == SP_OK)
            rc = create_empty(st, &v[i], err);
    }
    if (rc != SP_OK)
        sp_store_import_abort(s, st);
    sp_store_unlock(s);
    return rc;
}

/* The files into vdis/ (same file system: renames), then the rows. */
static int move_in(struct sp_store *s, struct sp_new_vdi *v, int n, int *moved, struct sp_error *err)
{
    for (*moved = 0; *moved < n; (*moved)++) {
        char rel[128], dst[4096];
        new_vdi_rel(&v[*moved], rel, sizeof rel);
        store_path(s, rel, dst, sizeof dst);
        if (rename(v[*moved].path, dst) != 0)
            return sp_error_errno(err, errno, "store %s: moving %s in", s->dir, v[*moved].path);
        snprintf(v[*moved].path, sizeof v[*moved].path, "%s", dst);
        sp_crashpoint("import.file-moved");
    }
    return store_sync_dir(s, err);
}

static int register_rows(struct sp_store *s, const struct sp_new_vdi *v, int n, struct sp_vm *vm,
                         struct sp_error *err)
{
    int rc = db_begin(s, err);
    for (int i = 0; rc == SP_OK && i < n; i++) {
        struct sp_vdi row;
        memset(&row, 0, sizeof row);
        snprintf(row.uuid, sizeof row.uuid, "%s", v[i].uuid);
        new_vdi_rel(&v[i], row.file, sizeof row.file);
        row.virtual_size = v[i].memory ? v[i].size : sp_round_up_u64(v[i].size, SP_VHD_SECTOR);
        snprintf(row.kind, sizeof row.kind, "%s", v[i].memory ? "memory" : "disk");
        rc = vdi_insert(s, &row, err);
    }
    if (rc == SP_OK) {
        vm->created = (int64_t)time(NULL);
        rc = vm_row_insert(s, vm, err);
    }
    if (rc == SP_OK)
        return db_commit(s, err);
    db_rollback(s);
    return rc;
}

/* The files' final names, for the job that undoes a half-done move. */
static int list_final(const struct sp_new_vdi *v, int n, char **list, struct sp_error *err)
{
    for (int i = 0; i < n; i++) {
        char rel[128];
        new_vdi_rel(&v[i], rel, sizeof rel);
        int rc = filelist_add(list, rel, err);
        if (rc != SP_OK)
            return rc;
    }
    return SP_OK;
}

int sp_store_import_commit(struct sp_store *s, struct sp_staging *st, struct sp_new_vdi *v, int n,
                           struct sp_vm *vm, struct sp_error *err)
{
    int moved = 0;
    int rc = SP_OK;
    for (int i = 0; rc == SP_OK && i < n; i++) {
        int fd = open(v[i].path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) != 0)
            rc = sp_error_errno(err, errno, "%s", v[i].path);
        if (fd >= 0)
            close(fd);
    }
    if (rc == SP_OK)
        rc = sp_store_exclusive(s, "import", err);
    if (rc == SP_OK && !vm->uuid[0])
        rc = sp_uuid_generate_str(vm->uuid, err);
    vm->cfg.has_uuid = rc == SP_OK && sp_uuid_parse(vm->uuid, vm->cfg.uuid) == SP_OK;
    if (rc == SP_OK)
        rc = check_name_free(s, vm->cfg.name, err);
    /* a kill between the moves and the rows: the job lists the moved files */
    char *files = NULL;
    int64_t job = 0;
    if (rc == SP_OK)
        rc = list_final(v, n, &files, err);
    if (rc == SP_OK)
        rc = job_begin(s, "import", files, &job, err);
    free(files);
    if (rc == SP_OK)
        rc = move_in(s, v, n, &moved, err);
    if (rc == SP_OK)
        rc = register_rows(s, v, n, vm, err);
    if (rc != SP_OK) {
        if (job)
            job_abort(s, job); /* the moved files have no rows: removed */
        return rc;
    }
    sp_crashpoint("import.committed");
    rc = job_finish(s, job, err);
    sp_store_import_abort(s, st);
    store_write_cfg(s, vm->uuid);
    return rc;
}

void sp_store_import_abort(struct sp_store *s, struct sp_staging *st)
{
    (void)s;
    if (st->dir[0])
        remove_tree(st->dir);
    if (st->lock_fd >= 0)
        close(st->lock_fd);
    st->dir[0] = '\0';
    st->lock_fd = -1;
}


/* ---- what dead imports left --------------------------------------------- */

static uint64_t folder_bytes(const char *dir)
{
    uint64_t total = 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char p[4096 + 256];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (e->d_name[0] != '.' && lstat(p, &st) == 0 && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_blocks * 512;
    }
    closedir(d);
    return total;
}

/* A staging folder whose lock nobody holds: its import is gone. (Folders
 * are made under the store's lock and swept under the write lock, so one
 * being set up is never taken for dead.) */
static bool staging_dead(const char *sub)
{
    char lock[4096 + 300];
    snprintf(lock, sizeof lock, "%s/lock", sub);
    int fd = open(lock, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return true;
    bool dead = flock(fd, LOCK_EX | LOCK_NB) == 0;
    close(fd);
    return dead;
}

void staging_sweep(struct sp_store *s, bool remove, void (*found)(void *ctx, const char *rel, uint64_t bytes),
                   void *ctx)
{
    char dir[4096];
    store_path(s, "staging", dir, sizeof dir);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char sub[4096 + 256], rel[300];
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        snprintf(rel, sizeof rel, "staging/%s", e->d_name);
        if (!staging_dead(sub))
            continue;
        uint64_t bytes = folder_bytes(sub);
        if (found)
            found(ctx, rel, bytes);
        if (remove) {
            remove_tree(sub);
            s->swept_staging++;
            s->swept_bytes += bytes;
        }
    }
    closedir(d);
}
