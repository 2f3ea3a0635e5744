/* The VM <-> archive maps (vm/xva_map.c, vm/ovf_map.c): a VM record goes
 * to the archive's model (and through its XML) and comes back equal in
 * what each archive carries. */
#include "archive/ovf.h"
#include "archive/xva_xml.h"
#include "vm/ovf_map.h"
#include "vm/xva_map.h"
#include "tests/unit/testlib.h"

#define NDISKS 3
#define NVIFS 2
#define GIB (1ull << 30)

static const char *const VDIS[NDISKS] = {"11111111-2222-3333-4444-555555555501",
                                         "11111111-2222-3333-4444-555555555502", ""};
static const char *const MEMORY_VDI = "11111111-2222-3333-4444-5555555555ff";

static void set_disk(struct sp_vm_disk *d, const char *vdev, bool rw, bool cd)
{
    d->target = strdup("");
    snprintf(d->vdev, sizeof d->vdev, "%s", vdev);
    d->readwrite = rw;
    d->cdrom = cd;
    snprintf(d->format, sizeof d->format, "%s", cd ? "empty" : "vhd");
}

/* An HVM VM: two disks (one read-only), an empty CD drive, two VIFs,
 * statements xl.cfg has beyond ours, suspended (xva) or not (ovf). */
static void make_vm(struct sp_vm *vm, bool suspended)
{
    memset(vm, 0, sizeof *vm);
    struct sp_vm_config *c = &vm->cfg;
    snprintf(vm->uuid, sizeof vm->uuid, "aaaaaaaa-2222-3333-4444-555555555555");
    snprintf(c->name, sizeof c->name, "web01");
    c->type = SP_VM_HVM;
    c->memory_mb = 2048;
    c->maxmem_mb = 4096;
    c->vcpus = 2;
    c->maxvcpus = 4;
    snprintf(c->boot, sizeof c->boot, "dc");
    c->extra = strdup("viridian = 1\nvga = \"stdvga\"\n");
    c->disks = calloc(NDISKS, sizeof *c->disks);
    vm->vbd_vdi = calloc(NDISKS, sizeof *vm->vbd_vdi);
    c->ndisks = NDISKS;
    set_disk(&c->disks[0], "xvda", true, false);
    set_disk(&c->disks[1], "xvdb", false, false);
    set_disk(&c->disks[2], "hdc", false, true);
    for (int i = 0; i < NDISKS; i++)
        snprintf(vm->vbd_vdi[i], SP_UUID_STR, "%s", VDIS[i]);
    c->vifs = calloc(NVIFS, sizeof *c->vifs);
    c->nvifs = NVIFS;
    snprintf(c->vifs[0].mac, sizeof c->vifs[0].mac, "00:16:3e:01:02:03");
    snprintf(c->vifs[0].bridge, sizeof c->vifs[0].bridge, "xenbr0");
    snprintf(c->vifs[0].model, sizeof c->vifs[0].model, "e1000");
    snprintf(c->vifs[1].mac, sizeof c->vifs[1].mac, "00:16:3e:0a:0b:0c");
    vm->suspended = suspended;
    if (suspended)
        snprintf(vm->suspend_vdi, sizeof vm->suspend_vdi, "%s", MEMORY_VDI);
    vm->created = 1700000000;
}

/* What both archives carry. */
static void check_common(const struct sp_vm *a, const struct sp_vm *b)
{
    CHECK(strcmp(a->cfg.name, b->cfg.name) == 0);
    CHECK(a->cfg.type == b->cfg.type);
    CHECK_EQ_U64(a->cfg.memory_mb, b->cfg.memory_mb);
    CHECK_EQ_U64(a->cfg.vcpus, b->cfg.vcpus);
    CHECK(strcmp(a->cfg.boot, b->cfg.boot) == 0);
    CHECK(strcmp(a->cfg.extra, b->cfg.extra) == 0);
    CHECK_EQ_U64(a->cfg.ndisks, b->cfg.ndisks);
    for (int i = 0; i < a->cfg.ndisks && i < b->cfg.ndisks; i++) {
        CHECK(strcmp(a->cfg.disks[i].vdev, b->cfg.disks[i].vdev) == 0);
        CHECK(a->cfg.disks[i].cdrom == b->cfg.disks[i].cdrom);
        CHECK(strcmp(a->vbd_vdi[i], b->vbd_vdi[i]) == 0);
    }
    CHECK_EQ_U64(a->cfg.nvifs, b->cfg.nvifs);
    for (int i = 0; i < a->cfg.nvifs && i < b->cfg.nvifs; i++) {
        CHECK(strcmp(a->cfg.vifs[i].mac, b->cfg.vifs[i].mac) == 0);
        CHECK(strcmp(a->cfg.vifs[i].bridge, b->cfg.vifs[i].bridge) == 0);
    }
}

/* ---- XVA ------------------------------------------------------------------- */

static void xva_from_meta(const struct sp_xva_meta *m, struct sp_vm *back)
{
    struct sp_error err;
    char (*uuids)[SP_UUID_STR] = calloc((size_t)m->nvdis + 1, sizeof *uuids);
    for (int k = 0; k < m->nvdis; k++)
        snprintf(uuids[k], SP_UUID_STR, "%s", m->vdis[k].uuid);
    CHECK_OK(sp_vm_from_xva_meta(m, NULL, (const char(*)[SP_UUID_STR])uuids, back, NULL, &err));
    free(uuids);
}

static void check_xva(const struct sp_vm *vm, const struct sp_vm *back)
{
    check_common(vm, back);
    CHECK_EQ_U64(vm->cfg.maxmem_mb, back->cfg.maxmem_mb);
    CHECK_EQ_U64(vm->cfg.maxvcpus, back->cfg.maxvcpus);
    for (int i = 0; i < vm->cfg.ndisks && i < back->cfg.ndisks; i++)
        CHECK(vm->cfg.disks[i].readwrite == back->cfg.disks[i].readwrite);
    CHECK(back->suspended);
    CHECK(strcmp(vm->suspend_vdi, back->suspend_vdi) == 0);
}

static void xva_round_trip(void)
{
    struct sp_vm vm, back;
    struct sp_xva_meta m;
    struct sp_error err;
    memset(&m, 0, sizeof m);
    make_vm(&vm, true);
    CHECK_OK(sp_vm_to_xva_meta(&vm, vm.cfg.name, &m, &err));
    CHECK_EQ_U64(m.nvdis, 3); /* two disks and the memory image */
    CHECK(strcmp(m.vdis[2].type, "suspend") == 0);
    xva_from_meta(&m, &back);
    check_xva(&vm, &back);
    sp_vm_free(&back);
    sp_xva_meta_free(&m);
    sp_vm_free(&vm);
}

static void xva_xml_round_trip(void)
{
    struct sp_vm vm, back;
    struct sp_xva_meta m, parsed;
    struct sp_error err;
    char *xml = NULL;
    size_t len = 0;
    memset(&m, 0, sizeof m);
    make_vm(&vm, true);
    CHECK_OK(sp_vm_to_xva_meta(&vm, vm.cfg.name, &m, &err));
    for (int k = 0; k < m.nvdis; k++)
        m.vdis[k].virtual_size = (uint64_t)(k + 1) * GIB;
    CHECK_OK(sp_xva_xml_write(&m, &xml, &len, &err));
    CHECK_OK(sp_xva_xml_parse(xml, len, &parsed, &err));
    xva_from_meta(&parsed, &back);
    check_xva(&vm, &back);
    free(xml);
    sp_vm_free(&back);
    sp_xva_meta_free(&parsed);
    sp_xva_meta_free(&m);
    sp_vm_free(&vm);
}

/* ---- OVF ------------------------------------------------------------------- */

static void ovf_to(const struct sp_vm *vm, struct sp_ovf_system *sys)
{
    struct sp_error err;
    struct sp_ovf_map_file files[2] = {{"web01-disk1.vmdk", 1000, GIB, 4096}, {"web01-disk2.vmdk", 2000, 2 * GIB, 0}};
    CHECK(sp_vm_ovf_carries(vm, 0) && sp_vm_ovf_carries(vm, 1) && !sp_vm_ovf_carries(vm, 2));
    CHECK_OK(sp_vm_to_ovf(vm, vm->cfg.name, SP_OVF_1, files, 2, sys, &err));
    CHECK_EQ_U64(sys->ndisks, 2);
    CHECK(sys->cdrom);
    CHECK_EQ_U64(sys->disks[1].capacity, 2 * GIB);
}

static void ovf_from(const struct sp_ovf_system *sys, struct sp_vm *back)
{
    struct sp_error err;
    char uuids[NDISKS][SP_UUID_STR];
    memset(uuids, 0, sizeof uuids);
    for (int i = 0; i < NDISKS; i++)
        snprintf(uuids[i], SP_UUID_STR, "%s", VDIS[i]);
    CHECK_OK(sp_vm_from_ovf(sys, NULL, (const char(*)[SP_UUID_STR])uuids, back, NULL, &err));
}

static void check_ovf(const struct sp_vm *vm, const struct sp_vm *back)
{
    check_common(vm, back);
    CHECK(strcmp(back->cfg.vifs[0].model, "e1000") == 0);
    CHECK(!back->suspended); /* an OVF does not carry a memory image */
}

static void ovf_round_trip(void)
{
    struct sp_vm vm, back;
    struct sp_ovf_system sys;
    make_vm(&vm, false);
    ovf_to(&vm, &sys);
    ovf_from(&sys, &back);
    check_ovf(&vm, &back);
    sp_vm_free(&back);
    sp_ovf_free(&sys);
    sp_vm_free(&vm);
}

static void ovf_xml_round_trip(void)
{
    struct sp_vm vm, back;
    struct sp_ovf_system sys, parsed;
    struct sp_error err;
    char *text = NULL;
    size_t len = 0;
    make_vm(&vm, false);
    ovf_to(&vm, &sys);
    CHECK_OK(sp_ovf_write(&sys, &text, &len, &err));
    CHECK_OK(sp_ovf_parse(text, len, &parsed, &err));
    ovf_from(&parsed, &back);
    check_ovf(&vm, &back);
    free(text);
    sp_vm_free(&back);
    sp_ovf_free(&parsed);
    sp_ovf_free(&sys);
    sp_vm_free(&vm);
}

/* Every hd[a-d] disk with the CD within IDE's four units: IDE; else SCSI. */
static void ovf_controllers(void)
{
    struct sp_vm vm;
    make_vm(&vm, false);
    CHECK(!sp_vm_ovf_ide(&vm));
    snprintf(vm.cfg.disks[0].vdev, sizeof vm.cfg.disks[0].vdev, "hda");
    snprintf(vm.cfg.disks[1].vdev, sizeof vm.cfg.disks[1].vdev, "hdb");
    CHECK(sp_vm_ovf_ide(&vm));
    sp_vm_free(&vm);
}

TEST_MAIN({"xva_round_trip", xva_round_trip}, {"xva_xml_round_trip", xva_xml_round_trip},
          {"ovf_round_trip", ovf_round_trip}, {"ovf_xml_round_trip", ovf_xml_round_trip},
          {"ovf_controllers", ovf_controllers})
