/* VM or snapshot -> ova.xml + block stream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exporter/export.h"
#include "base/util.h"
#include "archive/xva_xml.h"
#include "vm/xva_map.h"

static int write_archive(struct sp_store *s, const struct sp_export_opts *o, struct sp_xva_meta *m, int64_t mtime,
                         int fd, struct sp_error *err)
{
    struct sp_disk **disks = sp_zalloc(sizeof *disks * (size_t)(m->nvdis + 1), err);
    if (!disks)
        return SP_ENOMEM;
    int rc = SP_OK;
    for (int i = 0; rc == SP_OK && i < m->nvdis; i++) {
        rc = sp_store_open_vdi(s, m->vdis[i].uuid, strcmp(m->vdis[i].type, "suspend") == 0, &disks[i], err);
        if (rc == SP_OK)
            m->vdis[i].virtual_size = disks[i]->size;
    }
    char *xml = NULL;
    size_t len = 0;
    struct sp_xva_writer *w = NULL;
    if (rc == SP_OK)
        rc = sp_xva_xml_write(m, &xml, &len, err);
    if (rc == SP_OK)
        rc = sp_xva_writer_open(fd, o->compress, o->digest, mtime, &w, err);
    if (rc == SP_OK)
        rc = sp_xva_write_xml(w, xml, len, err);
    for (int i = 0; rc == SP_OK && i < m->nvdis; i++)
        rc = sp_xva_write_disk(w, m->vdis[i].id, disks[i], o->prog, err);
    if (rc == SP_OK)
        rc = sp_xva_writer_close(w, err);
    sp_xva_writer_free(w);
    free(xml);
    for (int i = 0; i < m->nvdis; i++)
        sp_disk_close(disks[i]);
    free(disks);
    return rc;
}

int sp_export_xva_write(const struct sp_export_src *src, const struct sp_export_opts *o, int fd,
                        struct sp_error *err)
{
    struct sp_xva_meta meta;
    memset(&meta, 0, sizeof meta);
    int rc = sp_vm_to_xva_meta(src->snap, src->vm_name, &meta, err);
    if (rc == SP_OK)
        rc = write_archive(src->s, o, &meta, src->snap->snapshot_time, fd, err);
    sp_xva_meta_free(&meta);
    return rc;
}
