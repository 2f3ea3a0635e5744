/* The VM record <-> ova.xml (archive/xva_xml.h), both directions, with no
 * store: VDIs are named by uuid. The block stream is not here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/util.h"
#include "vm/xva_map.h"

/* ==== VM -> ova.xml ========================================================= */

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

int sp_vm_to_xva_meta(const struct sp_vm *snap, const char *vm_name, struct sp_xva_meta *m, struct sp_error *err)
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

/* ==== ova.xml -> VM ========================================================= */

static const char *map_get(const struct sp_xva_map *m, const char *k)
{
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->items[i].key, k) == 0)
            return m->items[i].value;
    return NULL;
}

static int vbd_order(const void *a, const void *b)
{
    const struct sp_xva_vbd *x = a, *y = b;
    return atoi(x->userdevice) - atoi(y->userdevice);
}

/* The store's VM for the archive's: the VBDs in userdevice order, the new
 * VDIs in place of the archive's ids. */
int sp_vm_from_xva_meta(const struct sp_xva_meta *m, const char *name, const char (*vdis)[SP_UUID_STR],
                        struct sp_vm *vm, struct sp_error *err)
{
    memset(vm, 0, sizeof *vm);
    struct sp_vm_config *c = &vm->cfg;
    snprintf(c->name, sizeof c->name, "%s", name ? name : m->vm.name);
    c->type = m->vm.hvm ? SP_VM_HVM : SP_VM_PV;
    c->memory_mb = (long)(m->vm.memory_dynamic_max >> 20);
    c->maxmem_mb = (long)(m->vm.memory_static_max >> 20);
    c->vcpus = (long)m->vm.vcpus_at_startup;
    c->maxvcpus = (long)m->vm.vcpus_max;
    if (m->vm.hvm)
        snprintf(c->boot, sizeof c->boot, "%s", m->vm.boot_order);
    const char *extra = map_get(&m->vm.other_config, SP_XVA_XL_EXTRA_KEY);
    c->extra = strdup(extra ? extra : "");
    struct sp_xva_vbd *vbds = sp_zalloc(sizeof *vbds * (size_t)(m->nvbds + 1), err);
    c->disks = sp_zalloc(sizeof *c->disks * (size_t)(m->nvbds + 1), err);
    vm->vbd_vdi = sp_zalloc(sizeof *vm->vbd_vdi * (size_t)(m->nvbds + 1), err);
    c->vifs = sp_zalloc(sizeof *c->vifs * (size_t)(m->nvifs + 1), err);
    if (!c->extra || !vbds || !c->disks || !vm->vbd_vdi || !c->vifs) {
        free(vbds);
        return sp_error_set(err, SP_ENOMEM, "out of memory");
    }
    if (m->nvbds > 0) /* an ova.xml without VBDs has no array: memcpy from NULL is UB even for 0 bytes */
        memcpy(vbds, m->vbds, sizeof *vbds * (size_t)m->nvbds);
    if (m->nvbds > 1)
        qsort(vbds, (size_t)m->nvbds, sizeof *vbds, vbd_order);
    for (int i = 0; i < m->nvbds; i++) {
        struct sp_vm_disk *d = &c->disks[c->ndisks];
        const struct sp_xva_vbd *b = &vbds[i];
        if (b->device[0])
            snprintf(d->vdev, sizeof d->vdev, "%s", b->device);
        else
            snprintf(d->vdev, sizeof d->vdev, "%s%c", m->vm.hvm ? "hd" : "xvd", 'a' + (i % 26));
        d->readwrite = !b->read_only;
        d->cdrom = b->cd;
        snprintf(d->format, sizeof d->format, "%s", b->cd ? "empty" : "vhd");
        d->target = strdup("");
        for (int k = 0; k < m->nvdis; k++)
            if (strcmp(m->vdis[k].id, b->vdi_id) == 0)
                snprintf(vm->vbd_vdi[c->ndisks], SP_UUID_STR, "%s", vdis[k]);
        if (vm->vbd_vdi[c->ndisks][0])
            snprintf(d->format, sizeof d->format, "vhd");
        c->ndisks++;
    }
    free(vbds);
    for (int i = 0; i < m->nvifs; i++) {
        struct sp_vm_vif *f = &c->vifs[c->nvifs++];
        snprintf(f->mac, sizeof f->mac, "%s", m->vifs[i].mac);
        for (int k = 0; k < m->nnetworks; k++)
            if (strcmp(m->networks[k].id, m->vifs[i].network_id) == 0)
                snprintf(f->bridge, sizeof f->bridge, "%s", m->networks[k].bridge);
    }
    for (int k = 0; k < m->nvdis; k++)
        if (m->vm.suspended && strcmp(m->vdis[k].id, m->vm.suspend_vdi_id) == 0) {
            vm->suspended = true;
            snprintf(vm->suspend_vdi, sizeof vm->suspend_vdi, "%s", vdis[k]);
        }
    return SP_OK;
}
