/* VM or snapshot -> ova.xml + block stream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exporter/export.h"
#include "base/util.h"
#include "archive/xva_xml.h"

static int map_add(struct sp_xva_map *m, const char *k, const char *v, struct sp_error *err)
{
    struct sp_xva_kv *items = realloc(m->items, sizeof *items * (size_t)(m->n + 1));
    if (!items)
        return sp_error_set(err, SP_ENOMEM, "out of memory");
    m->items = items;
    items[m->n].key = strdup(k);
    items[m->n].value = strdup(v);
    if (!items[m->n].key || !items[m->n].value)
        return sp_error_set(err, SP_ENOMEM, "out of memory");
    m->n++;
    return SP_OK;
}

static void iso_time(int64_t t, char *out, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, len, "%Y%m%dT%H:%M:%SZ", &tm);
}

/* The network of a bridge: one per distinct bridge, in first-use order. */
static const char *network_for(struct sp_xva_meta *m, const char *bridge)
{
    for (int i = 0; i < m->nnetworks; i++)
        if (strcmp(m->networks[i].bridge, bridge) == 0)
            return m->networks[i].id;
    struct sp_xva_network *n = &m->networks[m->nnetworks];
    snprintf(n->id, sizeof n->id, "Ref:N%02d", m->nnetworks);
    snprintf(n->name, sizeof n->name, "%s", bridge[0] ? bridge : "snapport network");
    snprintf(n->bridge, sizeof n->bridge, "%s", bridge);
    m->nnetworks++;
    return n->id;
}

/* xl.cfg keys that XAPI keeps in VM.platform, under the same names. */
static const char *const PLATFORM_KEYS[] = {"acpi", "apic", "pae", "nx", "viridian", "hpet", "vga", "videoram",
                                            "timeoffset", "usb"};

static bool is_platform_key(const char *k, size_t n)
{
    for (size_t i = 0; i < sizeof PLATFORM_KEYS / sizeof PLATFORM_KEYS[0]; i++)
        if (strlen(PLATFORM_KEYS[i]) == n && strncmp(PLATFORM_KEYS[i], k, n) == 0)
            return true;
    return false;
}

/* "viridian = 1" / "vga = 'stdvga'" lines of the xl.cfg text become
 * platform entries; 0/1 are written as XAPI does, "false"/"true". */
static int platform_from_extra(const char *extra, struct sp_xva_map *platform, struct sp_error *err)
{
    const char *line = extra;
    while (line && *line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        size_t k = 0;
        while (k < len && (line[k] == '_' || (line[k] >= 'a' && line[k] <= 'z') || (line[k] >= '0' && line[k] <= '9')))
            k++;
        const char *eq = memchr(line, '=', len);
        if (k && eq && is_platform_key(line, k)) {
            char key[32], val[128];
            snprintf(key, sizeof key, "%.*s", (int)k, line);
            const char *v = eq + 1;
            size_t vl = len - (size_t)(v - line);
            while (vl && (*v == ' ' || *v == '\t' || *v == '\'' || *v == '"'))
                v++, vl--;
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t' || v[vl - 1] == '\'' || v[vl - 1] == '"'))
                vl--;
            snprintf(val, sizeof val, "%.*s", (int)vl, v);
            /* XAPI spells xl's vga="stdvga" as "std" */
            const char *out = strcmp(val, "1") == 0 ? "true" : strcmp(val, "0") == 0 ? "false"
                            : strcmp(val, "stdvga") == 0 ? "std" : val;
            if (val[0] && !strchr(val, '[')) {
                int rc = map_add(platform, key, out, err);
                if (rc != SP_OK)
                    return rc;
            }
        }
        line = end ? end + 1 : NULL;
    }
    return SP_OK;
}

static int vm_record(const struct sp_vm *snap, const char *vm_name, struct sp_xva_meta *m, struct sp_error *err)
{
    struct sp_xva_vm *v = &m->vm;
    const struct sp_vm_config *c = &snap->cfg;
    snprintf(v->id, sizeof v->id, "Ref:VM");
    snprintf(v->uuid, sizeof v->uuid, "%s", snap->snapshot_of[0] ? snap->snapshot_of : snap->uuid);
    snprintf(v->name, sizeof v->name, "%s", vm_name);
    if (snap->snapshot_of[0])
        snprintf(v->description, sizeof v->description, "snapshot '%s' of %s, exported by snapport", c->name,
                 vm_name);
    v->hvm = c->type == SP_VM_HVM;
    snprintf(v->boot_order, sizeof v->boot_order, "%s", c->boot[0] ? c->boot : "cd");
    if (!v->hvm)
        snprintf(v->pv_bootloader, sizeof v->pv_bootloader, "pygrub");
    uint64_t mem = (uint64_t)c->memory_mb << 20, maxmem = (uint64_t)(c->maxmem_mb ? c->maxmem_mb : c->memory_mb) << 20;
    v->memory_static_max = maxmem;
    v->memory_dynamic_max = mem;
    v->memory_dynamic_min = mem;
    v->memory_static_min = mem < maxmem ? mem : maxmem;
    v->vcpus_at_startup = (uint64_t)c->vcpus;
    v->vcpus_max = (uint64_t)(c->maxvcpus > c->vcpus ? c->maxvcpus : c->vcpus);
    iso_time(snap->snapshot_time ? snap->snapshot_time : snap->created, v->snapshot_time, sizeof v->snapshot_time);
    int rc = map_add(&v->platform, "device-model", "qemu-upstream-compat", err);
    if (rc == SP_OK && c->extra && c->extra[0])
        rc = platform_from_extra(c->extra, &v->platform, err);
    if (rc == SP_OK && c->extra && c->extra[0])
        rc = map_add(&v->other_config, SP_XVA_XL_EXTRA_KEY, c->extra, err);
    return rc;
}

static int add_vdi(struct sp_xva_meta *m, const char *store_vdi, uint64_t size, const char *name, const char *type)
{
    struct sp_xva_vdi *d = &m->vdis[m->nvdis];
    snprintf(d->id, sizeof d->id, "Ref:%02d", m->nvdis); /* fixed width: strcmp order is disk order */
    snprintf(d->uuid, sizeof d->uuid, "%s", store_vdi);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->virtual_size = size;
    snprintf(d->type, sizeof d->type, "%s", type);
    m->nvdis++;
    return m->nvdis - 1;
}

int sp_export_xva_meta(const struct sp_vm *snap, const char *vm_name, struct sp_xva_meta *m, struct sp_error *err)
{
    const struct sp_vm_config *c = &snap->cfg;
    int n = c->ndisks + 1;
    m->vbds = sp_zalloc(sizeof *m->vbds * (size_t)n, err);
    m->vdis = sp_zalloc(sizeof *m->vdis * (size_t)n, err);
    m->vifs = sp_zalloc(sizeof *m->vifs * (size_t)(c->nvifs + 1), err);
    m->networks = sp_zalloc(sizeof *m->networks * (size_t)(c->nvifs + 1), err);
    if (!m->vbds || !m->vdis || !m->vifs || !m->networks)
        return SP_ENOMEM;
    int rc = vm_record(snap, vm_name, m, err);
    iso_time(snap->snapshot_time ? snap->snapshot_time : snap->created, m->export_date, sizeof m->export_date);
    for (int i = 0; rc == SP_OK && i < c->ndisks; i++) {
        const struct sp_vm_disk *d = &c->disks[i];
        struct sp_xva_vbd *b = &m->vbds[m->nvbds++];
        snprintf(b->id, sizeof b->id, "Ref:B%02d", i);
        snprintf(b->userdevice, sizeof b->userdevice, "%d", i);
        snprintf(b->device, sizeof b->device, "%s", d->vdev);
        b->bootable = i == 0;
        b->read_only = !d->readwrite;
        b->cd = d->cdrom;
        b->empty = !snap->vbd_vdi[i][0];
        if (!snap->vbd_vdi[i][0]) {
            snprintf(b->vdi_id, sizeof b->vdi_id, "OpaqueRef:NULL");
            continue;
        }
        char name[300];
        snprintf(name, sizeof name, "%s %s", vm_name, d->vdev);
        int k = add_vdi(m, snap->vbd_vdi[i], 0, name, "user");
        snprintf(b->vdi_id, sizeof b->vdi_id, "%s", m->vdis[k].id);
    }
    if (rc == SP_OK && snap->suspend_vdi[0]) {
        char name[300];
        snprintf(name, sizeof name, "%s memory", vm_name);
        int k = add_vdi(m, snap->suspend_vdi, 0, name, "suspend");
        m->vm.suspended = true;
        snprintf(m->vm.suspend_vdi_id, sizeof m->vm.suspend_vdi_id, "%s", m->vdis[k].id);
    }
    for (int i = 0; rc == SP_OK && i < c->nvifs; i++) {
        struct sp_xva_vif *f = &m->vifs[m->nvifs++];
        snprintf(f->id, sizeof f->id, "Ref:F%02d", i);
        snprintf(f->device, sizeof f->device, "%d", i);
        snprintf(f->mac, sizeof f->mac, "%s", c->vifs[i].mac);
        f->mtu = 1500;
        snprintf(f->network_id, sizeof f->network_id, "%s", network_for(m, c->vifs[i].bridge));
    }
    return rc;
}

/* The VDIs are the store's: their sizes are taken from their files. */
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
    int rc = sp_export_xva_meta(src->snap, src->vm_name, &meta, err);
    if (rc == SP_OK)
        rc = write_archive(src->s, o, &meta, src->snap->snapshot_time, fd, err);
    sp_xva_meta_free(&meta);
    return rc;
}
