/* The VM record <-> ova.xml (archive/xva_xml.h), both directions, with no
 * store: VDIs are named by uuid. The block stream is not here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/util.h"
#include "vm/xapi.h"
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

/* The network of a VIF: one per distinct (name, bridge), in first-use
 * order; named by the VIF's network name, else its bridge. */
static const char *network_for(struct sp_xva_meta *m, const struct sp_vm_vif *vif)
{
    const char *name = vif->network[0] ? vif->network : vif->bridge[0] ? vif->bridge : "snapport network";
    for (int i = 0; i < m->nnetworks; i++)
        if (strcmp(m->networks[i].bridge, vif->bridge) == 0 && strcmp(m->networks[i].name, name) == 0)
            return m->networks[i].id;
    struct sp_xva_network *n = &m->networks[m->nnetworks];
    snprintf(n->id, sizeof n->id, "Ref:N%02d", m->nnetworks);
    snprintf(n->name, sizeof n->name, "%s", name);
    snprintf(n->bridge, sizeof n->bridge, "%s", vif->bridge);
    m->nnetworks++;
    return n->id;
}

static int platform_add(void *ctx, const char *key, const char *value, struct sp_error *err)
{
    return map_add(ctx, key, value, err);
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
    snprintf(v->firmware, sizeof v->firmware, "%s", v->hvm ? sp_xapi_firmware(c) : "");
    int rc = map_add(&v->platform, "device-model", "qemu-upstream-compat", err);
    if (rc == SP_OK && v->firmware[0]) /* XAPI's UEFI guests say whether secure boot is on */
        rc = map_add(&v->platform, "secureboot", "false", err);
    if (rc == SP_OK && c->extra && c->extra[0])
        rc = sp_xapi_platform_from_xl(c->extra, platform_add, &v->platform, err);
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
        if (d->cdrom) { /* a CD's image: read-only, and marked so that our reader takes it */
            m->vdis[k].read_only = true;
            rc = map_add(&m->vdis[k].other_config, SP_XVA_CD_IMAGE_KEY, "true", err);
        }
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
        snprintf(f->model, sizeof f->model, "%s", c->vifs[i].model);
        f->mtu = 1500;
        snprintf(f->network_id, sizeof f->network_id, "%s", network_for(m, &c->vifs[i]));
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

/* Whether vdev is taken by one of the first n disks. */
static bool vdev_used(const struct sp_vm_config *c, int n, const char *vdev)
{
    for (int i = 0; i < n; i++)
        if (strcmp(c->disks[i].vdev, vdev) == 0)
            return true;
    return false;
}

/* A name for a VBD without a device: XAPI's convention, the userdevice's
 * letter (userdevice 3, a CD, is hdd or xvdd); hd* for the four IDE units
 * of an HVM guest, xvd* else; the next free letter if taken. */
static void vbd_vdev(const struct sp_vm_config *c, int n, const struct sp_xva_vbd *b, bool hvm, char *out,
                     size_t len)
{
    char *end = NULL;
    long u = strtol(b->userdevice, &end, 10);
    if (end == b->userdevice || *end || u < 0 || u > 25)
        u = n;
    for (int k = 0; k < 26; k++) {
        int letter = (int)((u + k) % 26);
        snprintf(out, len, "%s%c", hvm && letter < 4 ? "hd" : "xvd", 'a' + letter);
        if (!vdev_used(c, n, out))
            return;
    }
}

/* The disks: the VBDs in userdevice order, the new VDIs in place of the
 * archive's ids. Named devices first keep their names. */
static int map_disks(const struct sp_xva_meta *m, const char (*vdis)[SP_UUID_STR], struct sp_vm *vm,
                     struct sp_error *err)
{
    struct sp_vm_config *c = &vm->cfg;
    struct sp_xva_vbd *vbds = sp_zalloc(sizeof *vbds * (size_t)(m->nvbds + 1), err);
    if (!vbds)
        return SP_ENOMEM;
    if (m->nvbds > 0) /* an ova.xml without VBDs has no array: memcpy from NULL is UB even for 0 bytes */
        memcpy(vbds, m->vbds, sizeof *vbds * (size_t)m->nvbds);
    if (m->nvbds > 1)
        qsort(vbds, (size_t)m->nvbds, sizeof *vbds, vbd_order);
    for (int i = 0; i < m->nvbds; i++) {
        struct sp_vm_disk *d = &c->disks[c->ndisks];
        const struct sp_xva_vbd *b = &vbds[i];
        snprintf(d->vdev, sizeof d->vdev, "%s", b->device);
        d->readwrite = !b->read_only;
        d->cdrom = b->cd;
        snprintf(d->format, sizeof d->format, "%s", b->cd ? "empty" : "vhd");
        d->target = strdup("");
        if (!d->target) {
            free(vbds);
            return sp_error_set(err, SP_ENOMEM, "out of memory");
        }
        for (int k = 0; k < m->nvdis; k++)
            if (strcmp(m->vdis[k].id, b->vdi_id) == 0)
                snprintf(vm->vbd_vdi[c->ndisks], SP_UUID_STR, "%s", vdis[k]);
        if (vm->vbd_vdi[c->ndisks][0])
            snprintf(d->format, sizeof d->format, "vhd");
        c->ndisks++;
    }
    for (int i = 0; i < c->ndisks; i++)
        if (!c->disks[i].vdev[0]) {
            char name[sizeof c->disks[i].vdev];
            vbd_vdev(c, c->ndisks, &vbds[i], m->vm.hvm, name, sizeof name);
            memcpy(c->disks[i].vdev, name, sizeof name);
        }
    free(vbds);
    return SP_OK;
}

/* The VIFs: MAC (a new one where the archive has none), bridge, and the
 * network's name when it is more than the bridge's or our placeholder. */
static int map_vifs(const struct sp_xva_meta *m, struct sp_vm_config *c, struct sp_error *err)
{
    for (int i = 0; i < m->nvifs; i++) {
        struct sp_vm_vif *f = &c->vifs[c->nvifs++];
        snprintf(f->mac, sizeof f->mac, "%s", m->vifs[i].mac);
        snprintf(f->model, sizeof f->model, "%s", m->vifs[i].model);
        if (sp_vm_mac_unset(f->mac)) {
            int rc = sp_vm_mac_new(f->mac, err);
            if (rc)
                return rc;
        }
        const struct sp_xva_network *n = sp_xva_find_network(m, m->vifs[i].network_id);
        if (!n)
            continue;
        snprintf(f->bridge, sizeof f->bridge, "%s", n->bridge);
        if (strcmp(n->name, n->bridge) != 0 && strcmp(n->name, "snapport network") != 0)
            snprintf(f->network, sizeof f->network, "%s", n->name);
    }
    return SP_OK;
}

/* The entries of ova.xml's VM.platform, one by one. */
struct platform_walk {
    const struct sp_xva_map *map;
    int i;
};

static bool platform_next(void *ctx, char *key, size_t kcap, char *value, size_t vcap)
{
    struct platform_walk *w = ctx;
    if (w->i >= w->map->n)
        return false;
    snprintf(key, kcap, "%s", w->map->items[w->i].key);
    snprintf(value, vcap, "%s", w->map->items[w->i].value);
    w->i++;
    return true;
}

/* The xl.cfg statements: ours verbatim (they hold the platform keys); for
 * another writer's HVM guest, its platform entries in xl's words. */
static int map_extra(const struct sp_xva_meta *m, struct sp_vm_config *c, struct sp_notes *notes,
                     struct sp_error *err)
{
    const char *ours = map_get(&m->vm.other_config, SP_XVA_XL_EXTRA_KEY);
    if (ours) {
        c->extra = strdup(ours);
        return c->extra ? SP_OK : sp_error_set(err, SP_ENOMEM, "out of memory");
    }
    struct platform_walk w = {&m->vm.platform, 0};
    return sp_xapi_platform_to_xl(platform_next, &w, m->vm.hvm, &c->extra, notes, err);
}

int sp_vm_from_xva_meta(const struct sp_xva_meta *m, const char *name, const char (*vdis)[SP_UUID_STR],
                        struct sp_vm *vm, struct sp_notes *notes, struct sp_error *err)
{
    memset(vm, 0, sizeof *vm);
    struct sp_vm_config *c = &vm->cfg;
    snprintf(c->name, sizeof c->name, "%s", name ? name : m->vm.name);
    c->type = m->vm.hvm ? SP_VM_HVM : SP_VM_PV;
    c->memory_mb = (long)(m->vm.memory_dynamic_max >> 20);
    c->maxmem_mb = (long)(m->vm.memory_static_max >> 20);
    c->vcpus = (long)m->vm.vcpus_at_startup;
    c->maxvcpus = (long)m->vm.vcpus_max;
    if (m->vm.hvm) {
        snprintf(c->boot, sizeof c->boot, "%s", m->vm.boot_order);
        snprintf(c->bios, sizeof c->bios, "%s", sp_xapi_bios(m->vm.firmware));
    }
    if (m->vm.is_a_template)
        sp_note(notes, "the VM is a template; imported as a halted VM");
    c->disks = sp_zalloc(sizeof *c->disks * (size_t)(m->nvbds + 1), err);
    vm->vbd_vdi = sp_zalloc(sizeof *vm->vbd_vdi * (size_t)(m->nvbds + 1), err);
    c->vifs = sp_zalloc(sizeof *c->vifs * (size_t)(m->nvifs + 1), err);
    if (!c->disks || !vm->vbd_vdi || !c->vifs)
        return SP_ENOMEM;
    int rc = map_extra(m, c, notes, err);
    if (!rc)
        rc = map_disks(m, vdis, vm, err);
    if (!rc)
        rc = map_vifs(m, c, err);
    for (int k = 0; !rc && k < m->nvdis; k++)
        if (m->vm.suspended && strcmp(m->vdis[k].id, m->vm.suspend_vdi_id) == 0) {
            vm->suspended = true;
            snprintf(vm->suspend_vdi, sizeof vm->suspend_vdi, "%s", vdis[k]);
        }
    return rc;
}
