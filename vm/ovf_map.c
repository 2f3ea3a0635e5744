/* The VM record <-> an OVF virtual system, both directions, with no store:
 * VDIs are named by uuid, disk files by their member names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/util.h"
#include "vm/ovf_map.h"
#include "vm/xapi.h"

#define SCSI_UNITS 15         /* units 0-15 but 7, the HBA's own (VMware) */
#define SCSI_HBA_UNIT 7
#define IDE_UNITS 4
#define IDE_UNITS_PER_CHANNEL 2
/* The guest is unknown; what every importer takes (ova.md): a PV guest is
 * Linux, an HVM one "other 64-bit" (CIM OperatingSystem ids). */
#define CIM_OS_LINUX_64 101
#define CIM_OS_OTHER_64 102

/* NIC models: xl's (qemu device names) and OVF's ResourceSubType, the
 * names VMware and VirtualBox write. */
static const struct {
    const char *xl, *ovf;
} NIC_MODELS[] = {
    {"e1000", "E1000"}, {"e1000e", "E1000e"}, {"vmxnet3", "VmxNet3"}, {"pcnet", "PCNet32"}, {"rtl8139", "rtl8139"},
};
#define NNIC_MODELS (sizeof NIC_MODELS / sizeof NIC_MODELS[0])

/* OVF subtypes with no qemu device of the same kind: what the guest gets
 * instead (a driver every OS has). VMware's Flexible and Vlance are the
 * PCnet the pcnet device is; VirtualBox's PCNetFast (Am79C973) too. */
static const struct {
    const char *ovf, *xl;
} NIC_STANDINS[] = {
    {"Flexible", "pcnet"}, {"Vlance", "pcnet"}, {"PCNetFast", "pcnet"},
    {"VmxNet", "e1000"},   {"VmxNet2", "e1000"}, {"virtio", "e1000"}, {"virtio-net", "e1000"},
};
#define NNIC_STANDINS (sizeof NIC_STANDINS / sizeof NIC_STANDINS[0])

/* ==== VM -> OVF ============================================================= */

static bool is_ide_vdev(const char *v) { return strncmp(v, "hd", 2) == 0 && v[2] >= 'a' && v[2] <= 'd' && !v[3]; }

bool sp_vm_ovf_carries(const struct sp_vm *vm, int i)
{
    return !vm->cfg.disks[i].cdrom && vm->vbd_vdi && vm->vbd_vdi[i][0];
}

bool sp_vm_ovf_cd_image(const struct sp_vm *vm, int i)
{
    return vm->cfg.disks[i].cdrom && vm->vbd_vdi && vm->vbd_vdi[i][0];
}

bool sp_vm_ovf_ide(const struct sp_vm *vm)
{
    int carried = 0;
    for (int i = 0; i < vm->cfg.ndisks; i++) {
        if (!sp_vm_ovf_carries(vm, i))
            continue;
        if (!is_ide_vdev(vm->cfg.disks[i].vdev))
            return false;
        carried++;
    }
    return carried + (vm->cfg.ndisks > carried ? 1 : 0) <= IDE_UNITS;
}

/* Appends a name to the blank-separated list of our section's disk names. */
static int add_vdev(struct sp_ovf_system *sys, size_t *vl, const char *prefix, const char *vdev, struct sp_error *err)
{
    *vl += (size_t)snprintf(sys->xen_vdevs + *vl, sizeof sys->xen_vdevs - *vl, "%s%s%s", *vl ? " " : "", prefix, vdev);
    if (*vl >= sizeof sys->xen_vdevs)
        return sp_error_set(err, SP_ELIMIT, "ovf: too many disk names");
    return SP_OK;
}

static void place_disk(struct sp_ovf_disk *d, bool ide, const char *vdev, int k)
{
    d->controller = ide ? SP_OVF_IDE : SP_OVF_SCSI;
    if (ide) {
        int unit = vdev[2] - 'a';
        d->controller_index = unit / IDE_UNITS_PER_CHANNEL;
        d->address = unit % IDE_UNITS_PER_CHANNEL;
    } else {
        d->controller_index = k / SCSI_UNITS;
        d->address = k % SCSI_UNITS >= SCSI_HBA_UNIT ? k % SCSI_UNITS + 1 : k % SCSI_UNITS;
    }
}

/* The next file (files[k], k the disks so far) and its Disk. */
static struct sp_ovf_disk *add_file_disk(const struct sp_ovf_map_file *files, struct sp_ovf_system *sys)
{
    int k = sys->ndisks;
    struct sp_ovf_file *f = &sys->files[sys->nfiles++];
    snprintf(f->id, sizeof f->id, "file%d", k + 1);
    snprintf(f->href, sizeof f->href, "%s", files[k].member);
    f->size = files[k].file_size;
    struct sp_ovf_disk *d = &sys->disks[sys->ndisks++];
    snprintf(d->disk_id, sizeof d->disk_id, "vmdisk%d", k + 1);
    snprintf(d->file_id, sizeof d->file_id, "%s", f->id);
    d->capacity = files[k].capacity;
    d->populated_size = files[k].populated;
    return d;
}

/* The CD drive's image, the next file: an ISO Disk (as VirtualBox packs
 * one) that the CD item names. */
static int ovf_cd_image(const struct sp_ovf_map_file *files, int nfiles, struct sp_ovf_system *sys,
                        struct sp_error *err)
{
    if (sys->ndisks >= nfiles)
        return sp_error_set(err, SP_EINVAL, "ovf: the CD image has no file");
    struct sp_ovf_disk *d = add_file_disk(files, sys);
    snprintf(d->format, sizeof d->format, "%s", SP_OVF_ISO_URI);
    d->cd = true;
    return SP_OK;
}

/* The files and disks, our section's names of them, the CD drive. */
static int ovf_disks(const struct sp_vm *vm, const struct sp_ovf_map_file *files, int nfiles, struct sp_ovf_system *sys,
                     struct sp_error *err)
{
    const struct sp_vm_config *c = &vm->cfg;
    bool ide = sp_vm_ovf_ide(vm);
    size_t vl = 0;
    int rc = SP_OK;
    for (int i = 0; rc == SP_OK && i < c->ndisks; i++) {
        if (!sp_vm_ovf_carries(vm, i))
            continue;
        int k = sys->ndisks;
        if (k >= nfiles)
            return sp_error_set(err, SP_EINVAL, "ovf: disk %s has no file", c->disks[i].vdev);
        struct sp_ovf_disk *d = add_file_disk(files, sys);
        place_disk(d, ide, c->disks[i].vdev, k);
        rc = add_vdev(sys, &vl, "", c->disks[i].vdev, err);
    }
    /* OVF has one CD drive without a name; ours carries its Xen name */
    for (int i = 0; rc == SP_OK && i < c->ndisks && !sys->cdrom; i++)
        if (c->disks[i].cdrom) {
            sys->cdrom = true;
            rc = add_vdev(sys, &vl, "cdrom:", c->disks[i].vdev, err);
            if (rc == SP_OK && sp_vm_ovf_cd_image(vm, i))
                rc = ovf_cd_image(files, nfiles, sys, err);
        }
    return rc;
}

/* The ResourceSubType readers are shown: the OVF name of the xl model; an
 * HVM guest without one has xl's default, rtl8139; a PV guest has no
 * emulated NIC, so the one every hypervisor and guest knows, E1000. */
static const char *ovf_nic_name(const char *xl)
{
    for (size_t k = 0; k < NNIC_MODELS; k++)
        if (strcmp(NIC_MODELS[k].xl, xl) == 0)
            return NIC_MODELS[k].ovf;
    return NULL;
}

static const char *ovf_nic_model(const struct sp_vm_config *c, const char *xl)
{
    if (!xl[0])
        return c->type == SP_VM_HVM ? "rtl8139" : "E1000";
    const char *ovf = ovf_nic_name(xl);
    return ovf ? ovf : xl;
}

void sp_vm_ovf_notes(const struct sp_vm *vm, struct sp_notes *notes)
{
    const struct sp_vm_config *c = &vm->cfg;
    for (int i = 0; i < c->nvifs; i++) {
        const char *model = c->vifs[i].model;
        if (model[0] && !ovf_nic_name(model))
            sp_note(notes, "NIC %d: the xl model %s has no OVF name; only snapport's own section in the OVF keeps it "
                    "(other readers give the guest another NIC)", i + 1, model);
    }
}

static void ovf_nics(const struct sp_vm_config *c, struct sp_ovf_system *sys)
{
    for (int i = 0; i < c->nvifs; i++) {
        const struct sp_vm_vif *v = &c->vifs[i];
        struct sp_ovf_nic *n = &sys->nics[sys->nnics++];
        snprintf(n->network, sizeof n->network, "%s",
                 v->network[0] ? v->network : v->bridge[0] ? v->bridge : "default");
        snprintf(n->mac, sizeof n->mac, "%s", v->mac);
        snprintf(n->model, sizeof n->model, "%s", ovf_nic_model(c, v->model));
        n->xen_given = true;
        snprintf(n->xen_bridge, sizeof n->xen_bridge, "%s", v->bridge);
        snprintf(n->xen_model, sizeof n->xen_model, "%s", v->model);
    }
}

/* XenCenter's xenovf entries: the XAPI fields of the VM record. */
static void add_xen_config(struct sp_ovf_system *sys, const char *name, const char *value)
{
    if (sys->nxen_config >= SP_OVF_XEN_CONFIG_MAX)
        return;
    struct sp_ovf_xen_config *x = &sys->xen_config[sys->nxen_config++];
    snprintf(x->name, sizeof x->name, "%s", name);
    snprintf(x->value, sizeof x->value, "%s", value);
}

static int platform_append(void *ctx, const char *key, const char *value, struct sp_error *err)
{
    struct sp_ovf_xen_config *x = ctx;
    size_t n = strlen(x->value);
    int w = snprintf(x->value + n, sizeof x->value - n, "%s=%s;", key, value);
    if (w < 0 || (size_t)w >= sizeof x->value - n)
        x->value[n] = '\0'; /* too much: the rest is left out, as hints */
    (void)err;
    return SP_OK;
}

static int ovf_xen_config(const struct sp_vm_config *c, struct sp_ovf_system *sys, struct sp_error *err)
{
    char b[128];
    bool hvm = c->type == SP_VM_HVM;
    add_xen_config(sys, "HVM_boot_policy", hvm ? "BIOS order" : "");
    if (hvm) {
        snprintf(b, sizeof b, "order=%s;%s%s", c->boot[0] ? c->boot : "cd", sp_vm_uefi(c) ? "firmware=" : "",
                 sp_xapi_firmware(c));
        add_xen_config(sys, "HVM_boot_params", b);
    } else {
        add_xen_config(sys, "PV_bootloader", "pygrub");
    }
    add_xen_config(sys, "platform", sp_vm_uefi(c) ? "device-model=qemu-upstream-compat;secureboot=false;"
                                                  : "device-model=qemu-upstream-compat;");
    return c->extra && *c->extra
               ? sp_xapi_platform_from_xl(c->extra, platform_append, &sys->xen_config[sys->nxen_config - 1], err)
               : SP_OK;
}

int sp_vm_to_ovf(const struct sp_vm *vm, const char *vm_name, enum sp_ovf_version version,
                 const struct sp_ovf_map_file *files, int nfiles, struct sp_ovf_system *sys, struct sp_error *err)
{
    const struct sp_vm_config *c = &vm->cfg;
    memset(sys, 0, sizeof *sys);
    sys->version = version;
    snprintf(sys->id, sizeof sys->id, "%s", vm_name);
    snprintf(sys->name, sizeof sys->name, "%s", vm_name);
    if (vm->snapshot_of[0] && !vm->is_system)
        snprintf(sys->description, sizeof sys->description, "snapshot '%s' of %s, exported by snapport", c->name,
                 vm_name);
    bool pv = c->type != SP_VM_HVM;
    sys->os_id = pv ? CIM_OS_LINUX_64 : CIM_OS_OTHER_64;
    snprintf(sys->os_type, sizeof sys->os_type, "%s", pv ? "otherLinux64Guest" : "otherGuest64");
    snprintf(sys->os_description, sizeof sys->os_description, "%s", pv ? "Linux 64-bit" : "Other 64-bit");
    snprintf(sys->firmware, sizeof sys->firmware, "%s", sp_vm_uefi(c) ? "efi" : "bios");
    sys->memory_mb = (uint64_t)c->memory_mb;
    sys->vcpus = (uint64_t)(c->vcpus > 0 ? c->vcpus : 1);
    sys->files = sp_zalloc(sizeof *sys->files * (size_t)(nfiles + 1), err);
    sys->disks = sp_zalloc(sizeof *sys->disks * (size_t)(nfiles + 1), err);
    sys->nics = sp_zalloc(sizeof *sys->nics * (size_t)(c->nvifs + 1), err);
    if (!sys->files || !sys->disks || !sys->nics)
        return SP_ENOMEM;
    int rc = ovf_disks(vm, files, nfiles, sys, err);
    if (rc != SP_OK)
        return rc;
    ovf_nics(c, sys);
    if ((rc = ovf_xen_config(c, sys, err)) != SP_OK)
        return rc;
    snprintf(sys->xen_type, sizeof sys->xen_type, "%s", sp_vm_type_name(c->type));
    snprintf(sys->xen_boot, sizeof sys->xen_boot, "%s", c->boot);
    snprintf(sys->xen_bios, sizeof sys->xen_bios, "%s", c->bios);
    if (c->extra && *c->extra && !(sys->xen_extra = strdup(c->extra)))
        return sp_error_set(err, SP_ENOMEM, "out of memory");
    return SP_OK;
}

/* ==== OVF -> VM ============================================================= */

/* Token i of our own section's disk names ("xvda xvdb cdrom:hdc"); the CD
 * drive's is the one with the "cdrom:" prefix (i < 0). */
static bool our_vdev(const struct sp_ovf_system *sys, int i, char *out, size_t len)
{
    const char *p = sys->xen_vdevs;
    for (int k = 0; *p;) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        bool cd = strncmp(p, "cdrom:", 6) == 0;
        if (n && ((cd && i < 0) || (!cd && k == i))) {
            size_t skip = cd ? 6 : 0;
            if (n - skip == 0 || n - skip >= len)
                return false;
            snprintf(out, len, "%.*s", (int)(n - skip), p + skip);
            return true;
        }
        k += !cd && n;
        p += n;
    }
    return false;
}

/* The disk that is the CD drive's image, -1 when none. */
static int cd_disk(const struct sp_ovf_system *sys)
{
    for (int i = 0; i < sys->ndisks; i++)
        if (sys->disks[i].cd)
            return i;
    return -1;
}

/* Our own export names the disks; else hd* while IDE can hold them all
 * (the CD drive after the hard disks, whether it holds an image or not). */
static void vdev_name(const struct sp_ovf_system *sys, int i, bool hvm, int total, char *out, size_t len)
{
    if (!our_vdev(sys, i, out, len))
        snprintf(out, len, "%s%c", hvm && total <= 4 ? "hd" : "xvd",
                 'a' + (i < 0 ? sys->ndisks - (cd_disk(sys) >= 0) : i) % 26);
}

/* The name given, else the system's Name, else its id. */
const char *sp_ovf_vm_name(const struct sp_ovf_system *sys, const char *given)
{
    return given ? given : sys->name[0] ? sys->name : sys->id[0] ? sys->id : "imported";
}

/* The xl model for an OVF NIC of another writer: the same device where
 * qemu has it, else a stand-in (said in notes); none given: xl's default. */
static void xl_nic_model(const struct sp_ovf_nic *n, int i, char *out, size_t len, struct sp_notes *notes)
{
    out[0] = '\0';
    if (!n->model[0])
        return;
    for (size_t k = 0; k < NNIC_MODELS; k++)
        if (strcasecmp(NIC_MODELS[k].ovf, n->model) == 0) {
            snprintf(out, len, "%s", NIC_MODELS[k].xl);
            return;
        }
    const char *standin = "e1000";
    for (size_t k = 0; k < NNIC_STANDINS; k++)
        if (strcasecmp(NIC_STANDINS[k].ovf, n->model) == 0)
            standin = NIC_STANDINS[k].xl;
    snprintf(out, len, "%s", standin);
    sp_note(notes, "NIC %d: model %s has no Xen device of that name; the guest gets %s", i + 1, n->model, standin);
}

static int map_nics(const struct sp_ovf_system *sys, bool ours, struct sp_vm_config *c, struct sp_notes *notes,
                    struct sp_error *err)
{
    for (int i = 0; i < sys->nnics; i++) {
        const struct sp_ovf_nic *n = &sys->nics[i];
        struct sp_vm_vif *f = &c->vifs[c->nvifs++];
        snprintf(f->mac, sizeof f->mac, "%s", n->mac);
        if (sp_vm_mac_unset(f->mac)) {
            int rc = sp_vm_mac_new(f->mac, err);
            if (rc)
                return rc;
        }
        if (n->xen_given) {
            snprintf(f->bridge, sizeof f->bridge, "%s", n->xen_bridge);
            snprintf(f->model, sizeof f->model, "%s", n->xen_model);
        } else {
            /* a foreign network name is no bridge here: xl's default one */
            if (ours && strcmp(n->network, "default") != 0)
                snprintf(f->bridge, sizeof f->bridge, "%s", n->network);
            xl_nic_model(n, i, f->model, sizeof f->model, notes);
        }
        if (strcmp(n->network, "default") != 0 && strcmp(n->network, f->bridge) != 0)
            snprintf(f->network, sizeof f->network, "%s", n->network);
    }
    return SP_OK;
}

/* A value of XenCenter's "key=value;key=value" form, or "". */
static void xen_map_get(const char *map, const char *key, char *out, size_t len)
{
    out[0] = '\0';
    size_t kl = strlen(key);
    for (const char *p = map; p && *p; p = strchr(p, ';') ? strchr(p, ';') + 1 : NULL) {
        while (*p == ' ')
            p++;
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            snprintf(out, len, "%.*s", (int)strcspn(p + kl + 1, ";"), p + kl + 1);
            return;
        }
    }
}

/* The entries of XenCenter's "key=value;key=value" platform field, one by
 * one (*ctx: where the next one starts, NULL at the end); entries without
 * '=' are skipped. */
static bool platform_next(void *ctx, char *key, size_t kcap, char *value, size_t vcap)
{
    const char **at = ctx;
    for (const char *p = *at; p && *p;) {
        size_t n = strcspn(p, ";");
        const char *eq = memchr(p, '=', n);
        *at = p[n] ? p + n + 1 : NULL;
        if (eq) {
            snprintf(key, kcap, "%.*s", (int)(eq - p), p);
            snprintf(value, vcap, "%.*s", (int)(n - (size_t)(eq + 1 - p)), eq + 1);
            return true;
        }
        p = *at;
    }
    return false;
}

/* Another writer's settings: XenCenter's XAPI fields (PV or HVM, boot
 * order, firmware, platform), else VMware's or VirtualBox's firmware. */
static int map_foreign(const struct sp_ovf_system *sys, struct sp_vm_config *c, struct sp_notes *notes,
                       struct sp_error *err)
{
    const char *policy = sp_ovf_xen_config(sys, "HVM_boot_policy");
    const char *params = sp_ovf_xen_config(sys, "HVM_boot_params");
    const char *platform = sp_ovf_xen_config(sys, "platform");
    char v[64];
    if (policy && !policy[0]) { /* XAPI's PV guest: no HVM boot policy */
        c->type = SP_VM_PV;
        c->boot[0] = '\0';
    }
    if (c->type == SP_VM_HVM && params) {
        xen_map_get(params, "order", v, sizeof v);
        if (v[0] && strlen(v) < sizeof c->boot)
            snprintf(c->boot, sizeof c->boot, "%s", v);
        xen_map_get(params, "firmware", v, sizeof v);
        snprintf(c->bios, sizeof c->bios, "%s", sp_xapi_bios(v));
    }
    if (c->type == SP_VM_HVM && strcmp(sys->firmware, "efi") == 0)
        snprintf(c->bios, sizeof c->bios, "ovmf");
    return sp_xapi_platform_to_xl(platform_next, &platform, c->type == SP_VM_HVM, &c->extra, notes, err);
}

int sp_vm_from_ovf(const struct sp_ovf_system *sys, const char *name, const char (*vdis)[SP_UUID_STR],
                   struct sp_vm *vm, struct sp_notes *notes, struct sp_error *err)
{
    memset(vm, 0, sizeof *vm);
    struct sp_vm_config *c = &vm->cfg;
    bool ours = sys->xen_type[0] != '\0';
    snprintf(c->name, sizeof c->name, "%s", sp_ovf_vm_name(sys, name));
    c->type = strcmp(sys->xen_type, "pv") == 0 ? SP_VM_PV : strcmp(sys->xen_type, "pvh") == 0 ? SP_VM_PVH : SP_VM_HVM;
    c->memory_mb = sys->memory_mb ? (long)sys->memory_mb : 1024; /* VirtualBox's default when absent */
    c->vcpus = sys->vcpus ? (long)sys->vcpus : 1;
    snprintf(c->boot, sizeof c->boot, "%s", ours ? sys->xen_boot : c->type == SP_VM_HVM ? "cd" : "");
    int rc = SP_OK;
    if (ours) {
        snprintf(c->bios, sizeof c->bios, "%s", sys->xen_bios);
        if (!sys->xen_bios[0] && c->type == SP_VM_HVM && strcmp(sys->firmware, "efi") == 0)
            snprintf(c->bios, sizeof c->bios, "ovmf"); /* snapport before sp:Bios */
        c->extra = strdup(sys->xen_extra ? sys->xen_extra : "");
    } else {
        rc = map_foreign(sys, c, notes, err);
    }
    if (rc)
        return rc;
    int cd = cd_disk(sys);
    int n = sys->ndisks - (cd >= 0) + (sys->cdrom ? 1 : 0);
    c->disks = sp_zalloc(sizeof *c->disks * (size_t)(n + 1), err);
    vm->vbd_vdi = sp_zalloc(sizeof *vm->vbd_vdi * (size_t)(n + 1), err);
    c->vifs = sp_zalloc(sizeof *c->vifs * (size_t)(sys->nnics + 1), err);
    if (!c->extra || !c->disks || !vm->vbd_vdi || !c->vifs)
        return sp_error_set(err, SP_ENOMEM, "out of memory");
    for (int i = 0; i < sys->ndisks; i++) {
        if (i == cd)
            continue;
        struct sp_vm_disk *d = &c->disks[c->ndisks];
        vdev_name(sys, c->ndisks, c->type == SP_VM_HVM, n, d->vdev, sizeof d->vdev);
        d->readwrite = true;
        snprintf(d->format, sizeof d->format, "vhd");
        d->target = strdup("");
        snprintf(vm->vbd_vdi[c->ndisks], SP_UUID_STR, "%s", vdis[i]);
        if (!d->target)
            return sp_error_set(err, SP_ENOMEM, "out of memory");
        c->ndisks++;
    }
    if (sys->cdrom) {
        struct sp_vm_disk *d = &c->disks[c->ndisks++];
        vdev_name(sys, -1, c->type == SP_VM_HVM, n, d->vdev, sizeof d->vdev);
        d->cdrom = true;
        /* an image comes as a VDI of the store, read-only as xl's CDs are */
        snprintf(d->format, sizeof d->format, "%s", cd >= 0 ? "vhd" : "empty");
        if (cd >= 0)
            snprintf(vm->vbd_vdi[c->ndisks - 1], SP_UUID_STR, "%s", vdis[cd]);
        if (!(d->target = strdup("")))
            return sp_error_set(err, SP_ENOMEM, "out of memory");
    }
    return map_nics(sys, ours, c, notes, err);
}
