/* XVA -> verify -> VHDs -> a new VM in the store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/instream.h"
#include "base/util.h"
#include "archive/xva_xml.h"
#include "vm/xva_map.h"
#include "importer/import.h"

static int open_reader(struct sp_instream *in, const char *label, struct sp_xva_reader **r,
                       struct sp_xva_meta *meta, struct sp_error *err)
{
    int rc = sp_xva_reader_open_in(in, label, r, err);
    size_t len = 0;
    const char *xml = rc == SP_OK ? sp_xva_reader_xml(*r, &len) : NULL;
    if (rc == SP_OK) {
        rc = sp_xva_xml_parse(xml, len, meta, err);
        if (rc != SP_OK)
            sp_error_prefix(err, "%s", label);
    }
    return rc;
}

/* ---- the blocks ---------------------------------------------------------- */

struct sink {
    struct sp_disk *disk;
    struct sp_error *err;
};

/* Blocks of zeros are not written: the new file reads zeros already. */
static int write_block(void *ctx, uint64_t off, const void *data, size_t len)
{
    struct sink *k = ctx;
    if (sp_is_zero(data, len))
        return SP_OK;
    return sp_disk_write(k->disk, off, data, len, k->err);
}

static int fill_vdis(struct sp_xva_reader *r, const struct sp_xva_meta *m, const struct sp_new_vdi *nv,
                     const struct sp_progress *prog, struct sp_error *err)
{
    for (int i = 0; i < m->nvdis; i++) {
        struct sp_disk *d = NULL;
        int rc = sp_store_open_new_vdi(&nv[i], &d, err);
        struct sink k = {d, err};
        uint64_t stored = 0;
        if (rc == SP_OK)
            rc = sp_xva_read_disk(r, m->vdis[i].id, m->vdis[i].virtual_size, write_block, &k, &stored, prog, err);
        if (rc == SP_OK)
            rc = sp_disk_flush(d, err);
        sp_disk_close(d);
        if (rc != SP_OK)
            return rc;
    }
    return sp_xva_reader_finish(r, err);
}

int sp_import_xva(struct sp_store *s, struct sp_instream *in, const char *label, const struct sp_import_opts *o,
                  char uuid[SP_UUID_STR], struct sp_error *err)
{
    struct sp_xva_reader *r = NULL;
    struct sp_xva_meta meta;
    struct sp_vm vm;
    memset(&meta, 0, sizeof meta);
    memset(&vm, 0, sizeof vm);
    struct sp_new_vdi *nv = NULL;
    char (*uuids)[SP_UUID_STR] = NULL;
    struct sp_staging st = {.lock_fd = -1};
    /* Nothing of the store is touched until ova.xml has arrived, nor while
     * the blocks stream into the staging folder: the lock is held only to
     * start (shared) and to finish (exclusive), so that an export into this
     * import through a pipe can take it whichever side started first. */
    sp_store_unlock(s);
    int rc = open_reader(in, label, &r, &meta, err);
    if (rc == SP_OK && !(nv = sp_zalloc(sizeof *nv * (size_t)(meta.nvdis + 1), err)))
        rc = SP_ENOMEM;
    for (int i = 0; rc == SP_OK && i < meta.nvdis; i++) {
        nv[i].size = meta.vdis[i].virtual_size;
        nv[i].memory = strcmp(meta.vdis[i].type, "suspend") == 0;
    }
    if (rc == SP_OK &&
        (rc = sp_store_import_begin(s, o->name ? o->name : meta.vm.name, nv, meta.nvdis, &st, err)) == SP_EEXIST)
        sp_error_prefix(err, "%s: import with --name NEW", label);
    if (rc == SP_OK)
        rc = fill_vdis(r, &meta, nv, o->prog, err);
    if (rc == SP_OK)
        rc = sp_new_vdi_uuids(nv, meta.nvdis, &uuids, err);
    if (rc == SP_OK)
        rc = sp_vm_from_xva_meta(&meta, o->name, (const char(*)[SP_UUID_STR])uuids, &vm, err);
    if (rc == SP_OK)
        rc = sp_store_import_commit(s, &st, nv, meta.nvdis, &vm, err);
    if (rc == SP_OK)
        snprintf(uuid, SP_UUID_STR, "%s", vm.uuid);
    sp_store_import_abort(s, &st);
    sp_vm_free(&vm);
    free(uuids);
    free(nv);
    sp_xva_meta_free(&meta);
    sp_xva_reader_free(r);
    return rc;
}

/* ---- verify and info ----------------------------------------------------- */

int sp_verify_xva(struct sp_instream *in, const char *label, struct sp_archive_info *info, const struct sp_progress *prog,
                  struct sp_error *err)
{
    struct sp_xva_reader *r = NULL;
    struct sp_xva_meta m;
    struct sp_archive_info scratch;
    memset(&m, 0, sizeof m);
    if (!info)
        info = &scratch;
    memset(info, 0, sizeof *info);
    snprintf(info->format, sizeof info->format, "xva");
    int rc = open_reader(in, label, &r, &m, err);
    if (rc == SP_OK) {
        snprintf(info->vm_name, sizeof info->vm_name, "%s", m.vm.name);
        info->hvm = m.vm.hvm;
        info->memory_bytes = m.vm.memory_dynamic_max;
        info->vcpus = m.vm.vcpus_at_startup;
        info->compress = sp_xva_reader_compress(r);
    }
    for (int i = 0; rc == SP_OK && i < m.nvdis && i < 64; i++) {
        snprintf(info->disks[i].id, sizeof info->disks[i].id, "%s", m.vdis[i].id);
        snprintf(info->disks[i].name, sizeof info->disks[i].name, "%s", m.vdis[i].name);
        snprintf(info->disks[i].type, sizeof info->disks[i].type, "%s", m.vdis[i].type);
        info->disks[i].virtual_size = m.vdis[i].virtual_size;
        info->ndisks = i + 1;
        rc = sp_xva_read_disk(r, m.vdis[i].id, m.vdis[i].virtual_size, NULL, NULL, &info->disks[i].stored, prog, err);
        info->digest = sp_xva_reader_digest(r);
    }
    if (rc == SP_OK && m.nvdis > 64)
        rc = sp_error_set(err, SP_ELIMIT, "%s: more than 64 disks", label);
    if (rc == SP_OK)
        rc = sp_xva_reader_finish(r, err);
    sp_xva_meta_free(&m);
    sp_xva_reader_free(r);
    return rc;
}
