/* Opening a VDI of the store as a disk: a memory image is raw bytes, any
 * other VDI is a VHD whose chain the store keeps. The one place that knows
 * which driver a VDI's file takes. */
#include <stdio.h>
#include <stdlib.h>

#include "base/util.h"
#include "disk/registry.h"
#include "store/store.h"

static int open_vdi_file(const char *path, bool memory, bool writable, struct sp_disk **out, struct sp_error *err)
{
    const struct sp_disk_driver *drv = sp_disk_driver_find(memory ? "raw" : "vhd");
    if (!drv || !drv->open)
        return sp_error_set(err, SP_EINVAL, "%s: no %s driver", path, memory ? "raw" : "vhd");
    struct sp_disk_open_opts o = {.writable = writable};
    int rc = drv->open(path, &o, out, err);
    if (rc == SP_OK)
        (*out)->driver = drv;
    return rc;
}

int sp_store_open_vdi(struct sp_store *s, const char *vdi, bool memory, struct sp_disk **out, struct sp_error *err)
{
    char path[4096];
    int rc = sp_store_vdi_path(s, vdi, path, sizeof path, err);
    if (rc != SP_OK)
        return rc;
    return open_vdi_file(path, memory, false, out, err);
}

int sp_store_open_new_vdi(const struct sp_new_vdi *v, struct sp_disk **out, struct sp_error *err)
{
    return open_vdi_file(v->path, v->memory, true, out, err);
}

int sp_new_vdi_uuids(const struct sp_new_vdi *v, int n, char (**out)[SP_UUID_STR], struct sp_error *err)
{
    *out = sp_zalloc(sizeof **out * (size_t)(n + 1), err);
    if (!*out)
        return SP_ENOMEM;
    for (int i = 0; i < n; i++)
        snprintf((*out)[i], SP_UUID_STR, "%s", v[i].uuid);
    return SP_OK;
}
