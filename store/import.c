/* New VDIs filled from outside the store (an archive being imported): the
 * files exist from the start under a job, the VM appears in one transaction
 * only after the caller has verified everything. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "formats/outfile.h"
#include "formats/util.h"
#include "formats/vhd.h"
#include "store/internal.h"

static void new_vdi_rel(const struct sp_new_vdi *v, char *rel, size_t len)
{
    if (v->memory)
        mem_rel_path(v->uuid, rel, len);
    else
        vdi_rel_path(v->uuid, rel, len);
}

static int create_empty(struct sp_store *s, struct sp_new_vdi *v, struct sp_error *err)
{
    char rel[128];
    new_vdi_rel(v, rel, sizeof rel);
    store_path(s, rel, v->path, sizeof v->path);
    uint8_t u[SP_UUID_LEN];
    if (sp_uuid_parse(v->uuid, u) != SP_OK)
        return sp_error_set(err, SP_EINVAL, "bad uuid %s", v->uuid);
    struct sp_outfile out;
    int rc = sp_outfile_open(&out, v->path, false, err);
    if (rc != SP_OK)
        return rc;
    if (v->memory) {
        if (ftruncate(out.fd, (off_t)v->size) != 0)
            rc = sp_error_errno(err, errno, "%s", v->path);
    } else {
        struct sp_vhd_create_opts o = {.size = (v->size + 511) / 512 * 512, .type = SP_VHD_DYNAMIC, .uuid = u};
        rc = sp_vhd_create_fd(out.fd, v->path, &o, err);
    }
    if (rc == SP_OK)
        return sp_outfile_commit(&out, err);
    sp_outfile_abort(&out);
    return rc;
}

int sp_store_import_begin(struct sp_store *s, struct sp_new_vdi *v, int n, int64_t *job, struct sp_error *err)
{
    char *files = NULL;
    int rc = SP_OK;
    for (int i = 0; rc == SP_OK && i < n; i++) {
        char rel[128];
        rc = new_uuid(v[i].uuid, err);
        new_vdi_rel(&v[i], rel, sizeof rel);
        if (rc == SP_OK)
            rc = filelist_add(&files, rel, err);
    }
    *job = 0;
    if (rc == SP_OK)
        rc = job_begin(s, "import", files, job, err);
    for (int i = 0; rc == SP_OK && i < n; i++)
        rc = create_empty(s, &v[i], err);
    free(files);
    if (rc != SP_OK && *job) {
        job_abort(s, *job);
        *job = 0;
    }
    return rc;
}

int sp_store_import_commit(struct sp_store *s, int64_t job, const struct sp_new_vdi *v, int n, struct sp_vm *vm,
                           struct sp_error *err)
{
    int rc = SP_OK;
    if (!vm->uuid[0])
        rc = new_uuid(vm->uuid, err);
    vm->cfg.has_uuid = rc == SP_OK && sp_uuid_parse(vm->uuid, vm->cfg.uuid) == SP_OK;
    if (rc == SP_OK)
        rc = check_name_free(s, vm->cfg.name, err);
    if (rc == SP_OK)
        rc = db_begin(s, err);
    for (int i = 0; rc == SP_OK && i < n; i++) {
        struct sp_vdi row;
        memset(&row, 0, sizeof row);
        snprintf(row.uuid, sizeof row.uuid, "%s", v[i].uuid);
        new_vdi_rel(&v[i], row.file, sizeof row.file);
        row.virtual_size = v[i].memory ? v[i].size : (v[i].size + 511) / 512 * 512;
        snprintf(row.kind, sizeof row.kind, "%s", v[i].memory ? "memory" : "disk");
        rc = vdi_insert(s, &row, err);
    }
    if (rc == SP_OK) {
        vm->created = (int64_t)time(NULL);
        rc = vm_row_insert(s, vm, err);
    }
    if (rc == SP_OK)
        rc = job_switch(s, job, "", err);
    if (rc == SP_OK)
        rc = db_commit(s, err);
    else
        db_rollback(s);
    if (rc == SP_OK) {
        sp_crashpoint("import.committed");
        rc = job_finish(s, job, err);
        store_write_cfg(s, vm->uuid);
    }
    return rc;
}

void sp_store_import_abort(struct sp_store *s, int64_t job)
{
    if (job)
        job_abort(s, job);
}

int sp_store_name_free(struct sp_store *s, const char *name, struct sp_error *err)
{
    return check_name_free(s, name, err);
}
