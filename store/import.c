/* New VDIs filled from outside the store (an archive being imported). The
 * files grow in a staging folder under a lock of their own while the store
 * lock is only shared (an export of the same store can stream into this
 * import through a pipe); then, under the exclusive lock, they move into
 * vdis/ and the VM appears in one transaction. A crash leaves a staging
 * folder that the next writer removes, or moved files without rows that
 * gc removes: never a half-made VM. */
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
    if (rc == SP_OK)
        rc = move_in(s, v, n, &moved, err);
    if (rc == SP_OK)
        rc = register_rows(s, v, n, vm, err);
    if (rc != SP_OK) {
        for (int i = 0; i < moved; i++)
            unlink(v[i].path); /* in vdis/ without a row: ours alone */
        return rc;
    }
    sp_crashpoint("import.committed");
    sp_store_import_abort(s, st);
    store_write_cfg(s, vm->uuid);
    return SP_OK;
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

