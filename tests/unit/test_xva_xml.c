#include "archive/xva_xml.h"
#include "tests/unit/testlib.h"

#include <unistd.h>

/* ---- helpers ------------------------------------------------------------ */

static void map_add(struct sp_xva_map *m, const char *k, const char *v)
{
    m->items = realloc(m->items, (size_t)(m->n + 1) * sizeof *m->items);
    CHECK(m->items);
    m->items[m->n].key = strdup(k);
    m->items[m->n].value = strdup(v);
    m->n++;
}

/* An HVM VM, suspended: 2 disks, an empty CD, 2 VIFs on 2 networks. */
static void make_meta(struct sp_xva_meta *m)
{
    memset(m, 0, sizeof *m);
    snprintf(m->export_date, sizeof m->export_date, "20261129T02:22:58Z");
    struct sp_xva_vm *vm = &m->vm;
    snprintf(vm->id, sizeof vm->id, "Ref:000");
    snprintf(vm->uuid, sizeof vm->uuid, "5c1e2b9a-31f4-4a5e-9d21-0e6c1d2f3a4b");
    snprintf(vm->name, sizeof vm->name, "web01 <prod> & \"db\" \xc3\xa9t\xc3\xa9");
    snprintf(vm->description, sizeof vm->description, "line1\nline2\ttab 'q'");
    vm->hvm = true;
    snprintf(vm->boot_order, sizeof vm->boot_order, "dc");
    vm->memory_static_max = 4ull << 30;
    vm->memory_dynamic_max = 4ull << 30;
    vm->memory_dynamic_min = 2ull << 30;
    vm->memory_static_min = 1ull << 30;
    vm->vcpus_max = 4;
    vm->vcpus_at_startup = 2;
    vm->suspended = true;
    snprintf(vm->suspend_vdi_id, sizeof vm->suspend_vdi_id, "Ref:003");
    vm->is_a_snapshot = false;
    snprintf(vm->snapshot_time, sizeof vm->snapshot_time, "20261129T02:22:58Z");
    map_add(&vm->platform, "acpi", "1");
    map_add(&vm->platform, "device-model", "qemu-upstream-compat");
    map_add(&vm->platform, "viridian", "true");
    map_add(&vm->other_config, "snapport.snapshot", "web01@2026-11-29");
    map_add(&vm->other_config, "a&b", "<x>");

    m->nvdis = 3;
    m->vdis = calloc(3, sizeof *m->vdis);
    const char *vdi_ids[] = {"Ref:001", "Ref:002", "Ref:003"};
    for (int i = 0; i < 3; i++) {
        struct sp_xva_vdi *d = &m->vdis[i];
        snprintf(d->id, sizeof d->id, "%s", vdi_ids[i]);
        snprintf(d->uuid, sizeof d->uuid, "00000000-0000-4000-8000-00000000000%d", i);
        snprintf(d->name, sizeof d->name, "disk %d", i);
        snprintf(d->description, sizeof d->description, "desc %d", i);
        d->virtual_size = (uint64_t)(i + 1) << 30;
        d->physical_utilisation = (uint64_t)(i + 1) << 20;
        snprintf(d->type, sizeof d->type, i == 2 ? "suspend" : "user");
        d->read_only = i == 1;
        if (i == 0)
            map_add(&d->other_config, "content_id", "abc");
    }

    m->nvbds = 3;
    m->vbds = calloc(3, sizeof *m->vbds);
    for (int i = 0; i < 3; i++) {
        struct sp_xva_vbd *b = &m->vbds[i];
        snprintf(b->id, sizeof b->id, "Ref:01%d", i);
        snprintf(b->userdevice, sizeof b->userdevice, "%d", i);
        if (i < 2) {
            snprintf(b->vdi_id, sizeof b->vdi_id, "%s", vdi_ids[i]);
            snprintf(b->device, sizeof b->device, "xvd%c", 'a' + i);
            b->bootable = i == 0;
            b->read_only = i == 1;
        } else {
            b->cd = true;
            b->empty = true;
            b->read_only = true;
            snprintf(b->device, sizeof b->device, "hdd");
        }
    }

    m->nnetworks = 2;
    m->networks = calloc(2, sizeof *m->networks);
    m->nvifs = 2;
    m->vifs = calloc(2, sizeof *m->vifs);
    for (int i = 0; i < 2; i++) {
        struct sp_xva_network *n = &m->networks[i];
        snprintf(n->id, sizeof n->id, "Ref:02%d", i);
        snprintf(n->name, sizeof n->name, "Pool-wide network %d", i);
        snprintf(n->bridge, sizeof n->bridge, "xenbr%d", i);
        struct sp_xva_vif *v = &m->vifs[i];
        snprintf(v->id, sizeof v->id, "Ref:03%d", i);
        snprintf(v->network_id, sizeof v->network_id, "Ref:02%d", i);
        snprintf(v->device, sizeof v->device, "%d", i);
        snprintf(v->mac, sizeof v->mac, "00:16:3e:00:00:0%d", i);
        v->mtu = i ? 9000 : 1500;
    }
}

static void check_map_eq(const struct sp_xva_map *a, const struct sp_xva_map *b)
{
    CHECK_EQ_U64(a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        CHECK(strcmp(a->items[i].key, b->items[i].key) == 0);
        CHECK(strcmp(a->items[i].value, b->items[i].value) == 0);
    }
}

static void check_meta_eq(const struct sp_xva_meta *a, const struct sp_xva_meta *b)
{
    const struct sp_xva_vm *x = &a->vm, *y = &b->vm;
    CHECK(strcmp(a->export_date, b->export_date) == 0);
    CHECK(strcmp(x->id, y->id) == 0);
    CHECK(strcmp(x->uuid, y->uuid) == 0);
    CHECK(strcmp(x->name, y->name) == 0);
    CHECK(strcmp(x->description, y->description) == 0);
    CHECK(x->hvm == y->hvm);
    CHECK(strcmp(x->boot_order, y->boot_order) == 0);
    CHECK(strcmp(x->pv_bootloader, y->pv_bootloader) == 0);
    CHECK(strcmp(x->pv_args, y->pv_args) == 0);
    CHECK_EQ_U64(x->memory_static_max, y->memory_static_max);
    CHECK_EQ_U64(x->memory_dynamic_max, y->memory_dynamic_max);
    CHECK_EQ_U64(x->memory_dynamic_min, y->memory_dynamic_min);
    CHECK_EQ_U64(x->memory_static_min, y->memory_static_min);
    CHECK_EQ_U64(x->vcpus_max, y->vcpus_max);
    CHECK_EQ_U64(x->vcpus_at_startup, y->vcpus_at_startup);
    CHECK(x->suspended == y->suspended);
    CHECK(strcmp(x->suspend_vdi_id, y->suspend_vdi_id) == 0);
    CHECK(x->is_a_snapshot == y->is_a_snapshot);
    CHECK(strcmp(x->snapshot_time, y->snapshot_time) == 0);
    check_map_eq(&x->platform, &y->platform);
    check_map_eq(&x->other_config, &y->other_config);
    CHECK_EQ_U64(a->nvdis, b->nvdis);
    for (int i = 0; i < a->nvdis; i++) {
        const struct sp_xva_vdi *d = &a->vdis[i], *e = &b->vdis[i];
        CHECK(strcmp(d->id, e->id) == 0);
        CHECK(strcmp(d->uuid, e->uuid) == 0);
        CHECK(strcmp(d->name, e->name) == 0);
        CHECK(strcmp(d->description, e->description) == 0);
        CHECK_EQ_U64(d->virtual_size, e->virtual_size);
        CHECK_EQ_U64(d->physical_utilisation, e->physical_utilisation);
        CHECK(strcmp(d->type, e->type) == 0);
        CHECK(d->read_only == e->read_only);
        check_map_eq(&d->other_config, &e->other_config);
    }
    CHECK_EQ_U64(a->nvbds, b->nvbds);
    for (int i = 0; i < a->nvbds; i++) {
        const struct sp_xva_vbd *d = &a->vbds[i], *e = &b->vbds[i];
        CHECK(strcmp(d->id, e->id) == 0);
        CHECK(strcmp(d->vdi_id, e->vdi_id) == 0);
        CHECK(strcmp(d->userdevice, e->userdevice) == 0);
        CHECK(strcmp(d->device, e->device) == 0);
        CHECK(d->bootable == e->bootable);
        CHECK(d->read_only == e->read_only);
        CHECK(d->cd == e->cd);
        CHECK(d->empty == e->empty);
    }
    CHECK_EQ_U64(a->nvifs, b->nvifs);
    for (int i = 0; i < a->nvifs; i++) {
        const struct sp_xva_vif *d = &a->vifs[i], *e = &b->vifs[i];
        CHECK(strcmp(d->id, e->id) == 0);
        CHECK(strcmp(d->network_id, e->network_id) == 0);
        CHECK(strcmp(d->device, e->device) == 0);
        CHECK(strcmp(d->mac, e->mac) == 0);
        CHECK_EQ_U64(d->mtu, e->mtu);
    }
    CHECK_EQ_U64(a->nnetworks, b->nnetworks);
    for (int i = 0; i < a->nnetworks; i++) {
        CHECK(strcmp(a->networks[i].id, b->networks[i].id) == 0);
        CHECK(strcmp(a->networks[i].name, b->networks[i].name) == 0);
        CHECK(strcmp(a->networks[i].bridge, b->networks[i].bridge) == 0);
    }
}

/* Parses text expecting failure with a message containing want. */
static void expect_error(const char *text, int code, const char *want)
{
    struct sp_xva_meta m;
    struct sp_error err;
    sp_error_clear(&err);
    int rc = sp_xva_xml_parse(text, strlen(text), &m, &err);
    if (rc != code || !strstr(err.msg, want) || strncmp(err.msg, "ova.xml: ", 9) != 0) {
        fprintf(stderr, "rc %d (want %d), message: %s (want ...%s...)\n", rc, code, err.msg, want);
        exit(1);
    }
    CHECK(m.vbds == NULL && m.vdis == NULL && m.nvbds == 0); /* freed on error */
}

/* ---- cases -------------------------------------------------------------- */

static void round_trip(void)
{
    struct sp_xva_meta m, back;
    struct sp_error err;
    char *xml;
    size_t len;
    make_meta(&m);
    CHECK_OK(sp_xva_xml_write(&m, &xml, &len, &err));
    CHECK(len == strlen(xml));
    CHECK(strstr(xml, "<member><name>xapi_major</name><value>1</value></member>"));
    CHECK(strstr(xml, "<member><name>export_vsn</name><value>2</value></member>"));
    CHECK(strstr(xml, "<member><name>memory_static_max</name><value>4294967296</value></member>"));
    CHECK(strstr(xml, "<member><name>is_a_template</name><value><boolean>0</boolean></value></member>"));
    CHECK(strstr(xml, "<member><name>parent</name><value>OpaqueRef:NULL</value></member>"));
    CHECK(strstr(xml, "<member><name>power_state</name><value>Suspended</value></member>"));
    CHECK(strstr(xml, "<member><name>domid</name><value>-1</value></member>"));
    CHECK(strstr(xml, "<dateTime.iso8601>20261129T02:22:58Z</dateTime.iso8601>"));
    CHECK(strstr(xml, "web01 &lt;prod&gt; &amp; &quot;db&quot;"));
    CHECK_OK(sp_xva_xml_parse(xml, len, &back, &err));
    check_meta_eq(&m, &back);
    CHECK(sp_xva_find_vdi(&back, "Ref:002") == &back.vdis[1]);
    CHECK(sp_xva_find_vdi(&back, "Ref:999") == NULL);
    CHECK(sp_xva_find_network(&back, "Ref:021") == &back.networks[1]);

    /* PV, halted, no CD: the other branch of the writer */
    sp_xva_meta_free(&back);
    free(xml);
    m.vm.hvm = false;
    m.vm.boot_order[0] = '\0';
    snprintf(m.vm.pv_bootloader, sizeof m.vm.pv_bootloader, "pygrub");
    snprintf(m.vm.pv_args, sizeof m.vm.pv_args, "console=hvc0 root=/dev/xvda1");
    m.vm.suspended = false;
    m.vm.suspend_vdi_id[0] = '\0';
    m.vm.snapshot_time[0] = '\0';
    m.vm.is_a_snapshot = true;
    m.nvbds = 2;
    CHECK_OK(sp_xva_xml_write(&m, &xml, &len, &err));
    CHECK(strstr(xml, "<member><name>HVM_boot_policy</name><value></value></member>"));
    CHECK(strstr(xml, "<member><name>power_state</name><value>Halted</value></member>"));
    CHECK_OK(sp_xva_xml_parse(xml, len, &back, &err));
    m.nvdis = 2; /* the suspend VDI is no longer referenced */
    check_meta_eq(&m, &back);
    m.nvdis = 3;
    m.nvbds = 3;
    sp_xva_meta_free(&back);
    free(xml);
    sp_xva_meta_free(&m);
}

static void deterministic(void)
{
    struct sp_xva_meta m;
    struct sp_error err;
    char *a, *b;
    size_t la, lb;
    make_meta(&m);
    CHECK_OK(sp_xva_xml_write(&m, &a, &la, &err));
    CHECK_OK(sp_xva_xml_write(&m, &b, &lb, &err));
    CHECK(la == lb && memcmp(a, b, la) == 0);
    free(b);
    /* a different VM uuid changes the derived VBD/VIF uuids, nothing random */
    m.vm.uuid[0] = 'd';
    CHECK_OK(sp_xva_xml_write(&m, &b, &lb, &err));
    CHECK(la != lb || memcmp(a, b, la) != 0);
    free(a);
    free(b);
    sp_xva_meta_free(&m);
}

static void writer_refuses(void)
{
    struct sp_xva_meta m;
    struct sp_error err;
    char *xml = NULL;
    size_t len;
    make_meta(&m);
    snprintf(m.vbds[1].vdi_id, sizeof m.vbds[1].vdi_id, "Ref:777");
    CHECK(sp_xva_xml_write(&m, &xml, &len, &err) == SP_EINVAL && xml == NULL);
    CHECK(strstr(err.msg, "Ref:777"));
    snprintf(m.vbds[1].vdi_id, sizeof m.vbds[1].vdi_id, "Ref:002");
    snprintf(m.vdis[0].id, sizeof m.vdis[0].id, "Ref:1/../x");
    CHECK(sp_xva_xml_write(&m, &xml, &len, &err) == SP_EINVAL);
    snprintf(m.vdis[0].id, sizeof m.vdis[0].id, "Ref:002");
    CHECK(sp_xva_xml_write(&m, &xml, &len, &err) == SP_EINVAL);
    CHECK(strstr(err.msg, "twice"));
    sp_xva_meta_free(&m);
}

/* xmllint (libxml2-utils) agrees the output is well-formed. */
static void writer_xmllint(void)
{
    struct sp_xva_meta m;
    struct sp_error err;
    char *xml;
    size_t len;
    make_meta(&m);
    /* control characters and broken UTF-8 must not break the XML */
    snprintf(m.vm.description, sizeof m.vm.description, "bell\a esc\x1b bad\xff\xfe end");
    CHECK_OK(sp_xva_xml_write(&m, &xml, &len, &err));
    struct sp_xva_meta back;
    CHECK_OK(sp_xva_xml_parse(xml, len, &back, &err));
    CHECK(strcmp(back.vm.description, "bell esc bad?? end") == 0);
    sp_xva_meta_free(&back);
    /* scripts/setup.sh installs libxml2-utils: a missing xmllint is a failure, not a skip */
    CHECK(system("command -v xmllint >/dev/null 2>&1") == 0);
    {
        char path[] = "/tmp/test_xva_xml_XXXXXX";
        int fd = mkstemp(path);
        CHECK(fd >= 0);
        CHECK(write(fd, xml, len) == (ssize_t)len);
        close(fd);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "xmllint --noout --nonet '%s'", path);
        int rc = system(cmd);
        unlink(path);
        CHECK(rc == 0);
    }
    free(xml);
    sp_xva_meta_free(&m);
}

/* As XAPI 8.x writes it (indented here for reading): host, metrics, guest
 * metrics, an unknown class, a snapshot VM first, an ISO on an iso SR, an
 * empty CD, 2 disks whose ids sort "Ref:20" < "Ref:9", a suspend VDI. */
#define M(name, value) "<member><name>" name "</name><value>" value "</value></member>\n"
#define MB(name, b) "<member><name>" name "</name><value><boolean>" b "</boolean></value></member>\n"
#define OBJ(cls, id, body) \
    "<value><struct>" M("class", cls) M("id", id) "<member><name>snapshot</name><value><struct>\n" body \
    "</struct></value></member></struct></value>\n"
#define EMPTY_ARRAY "<array><data/></array>"
#define EMPTY_MAP "<struct/>"

static const char xapi_xml[] =
    "<?xml version=\"1.0\"?>\n"
    "<value><struct>\n"
    "<member><name>version</name><value><struct>"
    M("hostname", "xcp-host1") M("date", "20240611T09:12:44Z") M("product_version", "8.2.1")
    M("product_brand", "XCP-ng") M("build_number", "release/yangtze/master/58")
    M("xapi_major", "1") M("xapi_minor", "20") M("export_vsn", "2")
    "</struct></value></member>\n"
    "<member><name>objects</name><value><array><data>\n"
    OBJ("host", "Ref:1", M("uuid", "a1b2c3d4-0000-4000-8000-000000000001") M("name_label", "xcp-host1")
        M("hostname", "xcp-host1"))
    OBJ("VM", "Ref:2",
        M("uuid", "11111111-2222-4333-8444-555555555555") M("name_label", "web01 before upgrade")
        MB("is_a_template", "0") MB("is_a_snapshot", "1") M("snapshot_of", "Ref:3")
        M("memory_static_max", "1073741824") M("VCPUs_max", "1") M("VCPUs_at_startup", "1")
        M("VBDs", "<array><data><value>Ref:40</value></data></array>") M("power_state", "Halted"))
    OBJ("VM", "Ref:3",
        M("uuid", "0f5e3a2c-7d41-4b8e-9c6a-2b1d0e9f8a7c") M("allowed_operations", EMPTY_ARRAY)
        M("current_operations", EMPTY_MAP) M("name_label", "web01") M("name_description", "front &amp; back")
        M("power_state", "Suspended") M("user_version", "1") MB("is_a_template", "0") MB("is_default_template", "0")
        M("suspend_VDI", "Ref:21") M("resident_on", "Ref:1") M("affinity", "OpaqueRef:NULL")
        M("memory_overhead", "33554432") M("memory_target", "2147483648")
        M("memory_static_max", "4294967296") M("memory_dynamic_max", "4294967296")
        M("memory_dynamic_min", "2147483648") M("memory_static_min", "1073741824")
        M("VCPUs_params", EMPTY_MAP) M("VCPUs_max", "4") M("VCPUs_at_startup", "2")
        M("actions_after_shutdown", "destroy") M("actions_after_reboot", "restart")
        M("actions_after_crash", "restart") M("consoles", EMPTY_ARRAY)
        M("VIFs", "<array><data><value>Ref:31</value><value>Ref:30</value></data></array>")
        M("VBDs", "<array><data><value>Ref:10</value><value>Ref:11</value><value>Ref:12</value>"
                  "<value>Ref:13</value></data></array>")
        M("crash_dumps", EMPTY_ARRAY) M("VTPMs", EMPTY_ARRAY) M("PV_bootloader", "") M("PV_kernel", "")
        M("PV_ramdisk", "") M("PV_args", "") M("PV_bootloader_args", "") M("PV_legacy_args", "")
        M("HVM_boot_policy", "BIOS order")
        M("HVM_boot_params", "<struct>" M("order", "cdn") M("firmware", "bios") "</struct>")
        M("HVM_shadow_multiplier", "<double>1.</double>")
        M("platform", "<struct>" M("timeoffset", "0") M("device-model", "qemu-upstream-compat")
                      M("videoram", "8") M("hpet", "true") "</struct>")
        M("PCI_bus", "") M("other_config", "<struct>" M("base_template_name", "Debian Bookworm 12")
                                          M("mac_seed", "3b0c0d3c-0fd7-7d9b-0a4b-6a3f1f0e8e4d") "</struct>")
        M("domid", "-1") M("domarch", "") M("last_boot_CPU_flags", EMPTY_MAP) MB("is_control_domain", "0")
        M("metrics", "Ref:5") M("guest_metrics", "Ref:6") M("last_booted_record", "")
        M("recommendations", "&lt;restrictions&gt;&lt;restriction field=\"memory-static-max\" max=\"1649267441664\"/&gt;&lt;/restrictions&gt;")
        M("xenstore_data", EMPTY_MAP) MB("ha_always_run", "0") M("ha_restart_priority", "")
        MB("is_a_snapshot", "0") M("snapshot_of", "OpaqueRef:NULL") M("snapshots", "<array><data><value>Ref:2</value></data></array>")
        M("snapshot_time", "<dateTime.iso8601>19700101T00:00:00Z</dateTime.iso8601>")
        M("transportable_snapshot_id", "") M("blobs", EMPTY_MAP) M("tags", "<array><data><value>prod</value></data></array>")
        M("blocked_operations", EMPTY_MAP) M("parent", "OpaqueRef:NULL") M("children", EMPTY_ARRAY)
        M("bios_strings", "<struct>" M("bios-vendor", "Xen") "</struct>") M("domain_type", "hvm")
        M("NVRAM", EMPTY_MAP))
    OBJ("VM_metrics", "Ref:5", M("uuid", "6e0b5c2a-0000-4000-8000-000000000005") M("memory_actual", "4294967296")
        M("VCPUs_number", "2") M("start_time", "<dateTime.iso8601>20240610T08:00:00Z</dateTime.iso8601>"))
    OBJ("VM_guest_metrics", "Ref:6", M("uuid", "6e0b5c2a-0000-4000-8000-000000000006")
        M("os_version", "<struct>" M("name", "Debian GNU/Linux 12") "</struct>"))
    OBJ("PVS_site", "Ref:7", M("uuid", "whatever") M("nested", "<struct><member><name>x</name><value><array><data/></array></value></member></struct>"))
    OBJ("VBD", "Ref:10", M("uuid", "b0000000-0000-4000-8000-000000000010") M("VM", "Ref:3") M("VDI", "Ref:9")
        M("device", "xvda") M("userdevice", "0") MB("bootable", "1") M("mode", "RW") M("type", "Disk")
        MB("unpluggable", "0") MB("storage_lock", "0") MB("empty", "0") M("other_config", "<struct>" M("owner", "") "</struct>")
        MB("currently_attached", "0") M("status_code", "0") M("status_detail", "")
        M("runtime_properties", EMPTY_MAP) M("qos_algorithm_type", "") M("qos_algorithm_params", EMPTY_MAP)
        M("qos_supported_algorithms", EMPTY_ARRAY) M("metrics", "OpaqueRef:NULL"))
    OBJ("VBD", "Ref:11", M("uuid", "b0000000-0000-4000-8000-000000000011") M("VM", "Ref:3") M("VDI", "Ref:20")
        M("device", "xvdb") M("userdevice", "1") MB("bootable", "0") M("mode", "RO") M("type", "Disk")
        MB("storage_lock", "0") MB("empty", "0") M("other_config", EMPTY_MAP))
    OBJ("VBD", "Ref:12", M("uuid", "b0000000-0000-4000-8000-000000000012") M("VM", "Ref:3") M("VDI", "OpaqueRef:NULL")
        M("device", "") M("userdevice", "3") MB("bootable", "0") M("mode", "RO") M("type", "CD")
        MB("storage_lock", "0") MB("empty", "1") M("other_config", EMPTY_MAP))
    OBJ("VBD", "Ref:13", M("uuid", "b0000000-0000-4000-8000-000000000013") M("VM", "Ref:3") M("VDI", "Ref:22")
        M("device", "hdd") M("userdevice", "4") MB("bootable", "0") M("mode", "RO") M("type", "CD")
        MB("storage_lock", "0") MB("empty", "0") M("other_config", EMPTY_MAP))
    OBJ("VBD", "Ref:40", M("uuid", "b0000000-0000-4000-8000-000000000040") M("VM", "Ref:2") M("VDI", "Ref:41")
        M("userdevice", "0") MB("bootable", "1") M("mode", "RW") M("type", "Disk") MB("empty", "0"))
    OBJ("VIF", "Ref:30", M("uuid", "c0000000-0000-4000-8000-000000000030") M("device", "0") M("network", "Ref:50")
        M("VM", "Ref:3") M("MAC", "ba:1e:5f:00:00:01") M("MTU", "1500") M("other_config", EMPTY_MAP)
        M("locking_mode", "network_default") MB("MAC_autogenerated", "1"))
    OBJ("VIF", "Ref:31", M("uuid", "c0000000-0000-4000-8000-000000000031") M("device", "1") M("network", "Ref:51")
        M("VM", "Ref:3") M("MAC", "ba:1e:5f:00:00:02") M("MTU", "9000") M("other_config", EMPTY_MAP))
    OBJ("network", "Ref:50", M("uuid", "d0000000-0000-4000-8000-000000000050") M("name_label", "Pool-wide network associated with eth0")
        M("bridge", "xenbr0") M("other_config", EMPTY_MAP) M("MTU", "1500"))
    OBJ("network", "Ref:51", M("uuid", "d0000000-0000-4000-8000-000000000051") M("name_label", "storage")
        M("bridge", "xapi1") M("other_config", EMPTY_MAP))
    OBJ("VDI", "Ref:9", M("uuid", "e0000000-0000-4000-8000-000000000009") M("name_label", "web01 root")
        M("name_description", "") M("SR", "Ref:60") M("virtual_size", "21474836480")
        M("physical_utilisation", "5368709120") M("type", "user") MB("sharable", "0") MB("read_only", "0")
        M("other_config", "<struct>" M("content_id", "42") "</struct>") MB("storage_lock", "0") MB("managed", "1")
        MB("missing", "0") M("parent", "OpaqueRef:NULL") M("sm_config", "<struct>" M("vhd-parent", "x") "</struct>"))
    OBJ("VDI", "Ref:20", M("uuid", "e0000000-0000-4000-8000-000000000020") M("name_label", "web01 data")
        M("SR", "Ref:60") M("virtual_size", "1048577") M("physical_utilisation", "0") M("type", "user")
        MB("sharable", "0") MB("read_only", "1") M("other_config", EMPTY_MAP))
    OBJ("VDI", "Ref:21", M("uuid", "e0000000-0000-4000-8000-000000000021") M("name_label", "Suspend image")
        M("SR", "Ref:60") M("virtual_size", "4303355904") M("physical_utilisation", "4303355904")
        M("type", "suspend") MB("read_only", "0") M("other_config", EMPTY_MAP))
    OBJ("VDI", "Ref:22", M("uuid", "e0000000-0000-4000-8000-000000000022") M("name_label", "debian-12.iso")
        M("SR", "Ref:61") M("virtual_size", "658505728") M("type", "user"))
    OBJ("VDI", "Ref:41", M("uuid", "e0000000-0000-4000-8000-000000000041") M("name_label", "snapshot disk")
        M("SR", "Ref:60") M("virtual_size", "21474836480") M("type", "user"))
    OBJ("SR", "Ref:60", M("uuid", "f0000000-0000-4000-8000-000000000060") M("name_label", "Local storage")
        M("type", "ext") M("content_type", "user") MB("shared", "0") M("virtual_allocation", "0")
        M("physical_utilisation", "0") M("physical_size", "0") M("other_config", EMPTY_MAP))
    OBJ("SR", "Ref:61", M("uuid", "f0000000-0000-4000-8000-000000000061") M("name_label", "ISO library")
        M("type", "iso") M("content_type", "iso"))
    "</data></array></value></member>\n"
    "</struct></value>\n";

static void parse_xapi(void)
{
    struct sp_xva_meta m;
    struct sp_error err;
    CHECK_OK(sp_xva_xml_parse(xapi_xml, strlen(xapi_xml), &m, &err));
    CHECK(strcmp(m.export_date, "20240611T09:12:44Z") == 0);
    CHECK(strcmp(m.vm.id, "Ref:3") == 0); /* not the snapshot Ref:2 */
    CHECK(strcmp(m.vm.name, "web01") == 0);
    CHECK(strcmp(m.vm.description, "front & back") == 0);
    CHECK(strcmp(m.vm.uuid, "0f5e3a2c-7d41-4b8e-9c6a-2b1d0e9f8a7c") == 0);
    CHECK(m.vm.hvm);
    CHECK(strcmp(m.vm.boot_order, "cdn") == 0);
    CHECK_EQ_U64(m.vm.memory_static_max, 4294967296ull);
    CHECK_EQ_U64(m.vm.memory_dynamic_min, 2147483648ull);
    CHECK_EQ_U64(m.vm.memory_static_min, 1073741824ull);
    CHECK_EQ_U64(m.vm.vcpus_max, 4);
    CHECK_EQ_U64(m.vm.vcpus_at_startup, 2);
    CHECK(m.vm.suspended && strcmp(m.vm.suspend_vdi_id, "Ref:21") == 0);
    CHECK(!m.vm.is_a_snapshot);
    CHECK(m.vm.snapshot_time[0] == '\0');
    CHECK_EQ_U64(m.vm.platform.n, 4);
    CHECK(strcmp(m.vm.platform.items[1].key, "device-model") == 0);
    CHECK(strcmp(m.vm.platform.items[1].value, "qemu-upstream-compat") == 0);
    CHECK_EQ_U64(m.vm.other_config.n, 2);

    CHECK_EQ_U64(m.nvbds, 4); /* not the snapshot's Ref:40 */
    CHECK(strcmp(m.vbds[0].id, "Ref:10") == 0 && strcmp(m.vbds[0].vdi_id, "Ref:9") == 0);
    CHECK(m.vbds[0].bootable && !m.vbds[0].read_only && !m.vbds[0].cd && !m.vbds[0].empty);
    CHECK(strcmp(m.vbds[0].device, "xvda") == 0 && strcmp(m.vbds[0].userdevice, "0") == 0);
    CHECK(m.vbds[1].read_only && !m.vbds[1].bootable);
    CHECK(m.vbds[2].cd && m.vbds[2].empty && m.vbds[2].vdi_id[0] == '\0');
    CHECK(m.vbds[3].cd && !m.vbds[3].empty && strcmp(m.vbds[3].vdi_id, "Ref:22") == 0);

    /* streamed VDIs only (not the ISO, not the snapshot's), strcmp order */
    CHECK_EQ_U64(m.nvdis, 3);
    CHECK(strcmp(m.vdis[0].id, "Ref:20") == 0);
    CHECK(strcmp(m.vdis[1].id, "Ref:21") == 0);
    CHECK(strcmp(m.vdis[2].id, "Ref:9") == 0);
    CHECK_EQ_U64(m.vdis[0].virtual_size, 1048577);
    CHECK(m.vdis[0].read_only);
    CHECK(strcmp(m.vdis[1].type, "suspend") == 0);
    CHECK_EQ_U64(m.vdis[2].virtual_size, 21474836480ull);
    CHECK_EQ_U64(m.vdis[2].physical_utilisation, 5368709120ull);
    CHECK(strcmp(m.vdis[2].name, "web01 root") == 0);
    CHECK(strcmp(m.vdis[2].uuid, "e0000000-0000-4000-8000-000000000009") == 0);
    CHECK(m.vdis[2].other_config.n == 1 && strcmp(m.vdis[2].other_config.items[0].value, "42") == 0);
    CHECK(sp_xva_find_vdi(&m, "Ref:22") == NULL);

    CHECK_EQ_U64(m.nvifs, 2);
    CHECK(strcmp(m.vifs[0].id, "Ref:30") == 0 && strcmp(m.vifs[0].network_id, "Ref:50") == 0);
    CHECK(strcmp(m.vifs[0].mac, "ba:1e:5f:00:00:01") == 0 && m.vifs[0].mtu == 1500);
    CHECK(strcmp(m.vifs[1].device, "1") == 0 && m.vifs[1].mtu == 9000);
    CHECK_EQ_U64(m.nnetworks, 2);
    CHECK(strcmp(m.networks[0].name, "Pool-wide network associated with eth0") == 0);
    CHECK(strcmp(m.networks[1].bridge, "xapi1") == 0);

    /* and what we parsed, we can write again */
    char *xml;
    size_t len;
    m.nvbds = 3; /* drop the ISO CD: its VDI is not carried */
    CHECK_OK(sp_xva_xml_write(&m, &xml, &len, &err));
    free(xml);
    m.nvbds = 4;
    sp_xva_meta_free(&m);
}

/* As Xen Orchestra's @xen-orchestra/xva writes it: Ref:000 ids, one line,
 * lowercase enums, ints bare or wrapped, <string> and <value/>, a dangling
 * Ref:53 for host references. */
static const char xo_xml[] =
    "<value><struct><member><name>version</name><value><struct>"
    "<member><name>hostname</name><value>localhost</value></member>"
    "<member><name>date</name><value>2022-01-01</value></member>"
    "<member><name>xapi_major</name><value>1</value></member>"
    "<member><name>xapi_minor</name><value>20</value></member>"
    "<member><name>export_vsn</name><value>2</value></member>"
    "</struct></value></member>"
    "<member><name>objects</name><value><array><data>"
    "<value><struct><member><name>class</name><value>VM</value></member>"
    "<member><name>id</name><value>Ref:000</value></member>"
    "<member><name>snapshot</name><value><struct>"
    "<member><name>actions_after_crash</name><value>restart</value></member>"
    "<member><name>affinity</name><value>Ref:53</value></member>"
    "<member><name>domid</name><value>-1</value></member>"
    "<member><name>HVM_boot_params</name><value><struct><member><name>firmware</name><value>uefi</value></member>"
    "<member><name>order</name><value>dcn</value></member></struct></value></member>"
    "<member><name>HVM_boot_policy</name><value><string>BIOS order</string></value></member>"
    "<member><name>is_a_template</name><value><boolean>0</boolean></value></member>"
    "<member><name>memory_dynamic_max</name><value><i8>2147483648</i8></value></member>"
    "<member><name>memory_dynamic_min</name><value><string>2147483648</string></value></member>"
    "<member><name>memory_static_max</name><value>2147483648</value></member>"
    "<member><name>memory_static_min</name><value><int>2147483648</int></value></member>"
    "<member><name>name_label</name><value>from esxi</value></member>"
    "<member><name>name_description</name><value/></member>"
    "<member><name>other_config</name><value><struct><member><name>mac_seed</name>"
    "<value>4a2a1a1c-1111-4222-8333-444455556666</value></member></struct></value></member>"
    "<member><name>platform</name><value><struct><member><name>timeoffset</name><value>1</value></member>"
    "<member><name>acpi</name><value><i4>1</i4></value></member>"
    "<member><name>secureboot</name><value>false</value></member></struct></value></member>"
    "<member><name>power_state</name><value>halted</value></member>"
    "<member><name>PV_bootloader</name><value></value></member>"
    "<member><name>snapshot_time</name><value><dateTime.iso8601>19700101T00:00:00Z</dateTime.iso8601></value></member>"
    "<member><name>uuid</name><value>9d3e2c1b-aaaa-4bbb-8ccc-dddddddddddd</value></member>"
    "<member><name>VBDs</name><value><array><data><value>Ref:003</value></data></array></value></member>"
    "<member><name>VCPUs_at_startup</name><value><i4>2</i4></value></member>"
    "<member><name>VCPUs_max</name><value>2</value></member>"
    "<member><name>is_a_snapshot</name><value>false</value></member>"
    "</struct></value></member></struct></value>"
    "<value><struct><member><name>class</name><value>SR</value></member>"
    "<member><name>id</name><value>Ref:001</value></member>"
    "<member><name>snapshot</name><value><struct><member><name>VDIs</name><value><array><data>"
    "<value>Ref:002</value></data></array></value></member></struct></value></member></struct></value>"
    "<value><struct><member><name>class</name><value>VDI</value></member>"
    "<member><name>id</name><value><string>Ref:002</string></value></member>"
    "<member><name>snapshot</name><value><struct>"
    "<member><name>managed</name><value><boolean>1</boolean></value></member>"
    "<member><name>name_label</name><value>esxi disk &lt;0&gt;</value></member>"
    "<member><name>physical_utilisation</name><value>1048576</value></member>"
    "<member><name>read_only</name><value><boolean>0</boolean></value></member>"
    "<member><name>SR</name><value>Ref:001</value></member>"
    "<member><name>type</name><value>User</value></member>"
    "<member><name>uuid</name><value></value></member>"
    "<member><name>virtual_size</name><value><string> 10737418240 </string></value></member>"
    "</struct></value></member></struct></value>"
    "<value><struct><member><name>class</name><value>VBD</value></member>"
    "<member><name>id</name><value>Ref:003</value></member>"
    "<member><name>snapshot</name><value><struct>"
    "<member><name>bootable</name><value><boolean>true</boolean></value></member>"
    "<member><name>device</name><value>xvda</value></member>"
    "<member><name>empty</name><value><boolean>0</boolean></value></member>"
    "<member><name>mode</name><value>rw</value></member>"
    "<member><name>type</name><value>disk</value></member>"
    "<member><name>userdevice</name><value>1</value></member>"
    "<member><name>VDI</name><value>Ref:002</value></member>"
    "<member><name>VM</name><value><string>Ref:000</string></value></member>"
    "</struct></value></member></struct></value>"
    "<value><struct><member><name>class</name><value>network</value></member>"
    "<member><name>id</name><value>Ref:004</value></member>"
    "<member><name>snapshot</name><value><struct><member><name>name_label</name><value>LAN</value></member>"
    "<member><name>bridge</name><value>xenbr0</value></member></struct></value></member></struct></value>"
    "<value><struct><member><name>class</name><value>VIF</value></member>"
    "<member><name>id</name><value>Ref:005</value></member>"
    "<member><name>snapshot</name><value><struct>"
    "<member><name>device</name><value>1</value></member>"
    "<member><name>MAC</name><value>00:50:56:aa:bb:cc</value></member>"
    "<member><name>network</name><value>Ref:004</value></member>"
    "<member><name>VM</name><value>Ref:000</value></member>"
    "</struct></value></member></struct></value>"
    "</data></array></value></member></struct></value>";

static void parse_xo(void)
{
    struct sp_xva_meta m;
    struct sp_error err;
    CHECK_OK(sp_xva_xml_parse(xo_xml, strlen(xo_xml), &m, &err));
    CHECK(strcmp(m.export_date, "2022-01-01") == 0);
    CHECK(strcmp(m.vm.id, "Ref:000") == 0);
    CHECK(strcmp(m.vm.name, "from esxi") == 0 && m.vm.description[0] == '\0');
    CHECK(m.vm.hvm && strcmp(m.vm.boot_order, "dcn") == 0);
    CHECK(!m.vm.suspended && !m.vm.is_a_snapshot);
    CHECK_EQ_U64(m.vm.memory_static_max, 2147483648ull);
    CHECK_EQ_U64(m.vm.memory_dynamic_max, 2147483648ull);
    CHECK_EQ_U64(m.vm.memory_dynamic_min, 2147483648ull);
    CHECK_EQ_U64(m.vm.memory_static_min, 2147483648ull);
    CHECK_EQ_U64(m.vm.vcpus_at_startup, 2);
    CHECK_EQ_U64(m.vm.platform.n, 3);
    CHECK(strcmp(m.vm.platform.items[1].value, "1") == 0);
    CHECK_EQ_U64(m.nvbds, 1);
    CHECK(m.vbds[0].bootable && !m.vbds[0].read_only && !m.vbds[0].cd);
    CHECK(strcmp(m.vbds[0].userdevice, "1") == 0);
    CHECK_EQ_U64(m.nvdis, 1);
    CHECK(strcmp(m.vdis[0].id, "Ref:002") == 0);
    CHECK_EQ_U64(m.vdis[0].virtual_size, 10737418240ull);
    CHECK(strcmp(m.vdis[0].name, "esxi disk <0>") == 0);
    CHECK(strcmp(m.vdis[0].type, "user") == 0);
    CHECK_EQ_U64(m.nvifs, 1);
    CHECK(strcmp(m.vifs[0].mac, "00:50:56:aa:bb:cc") == 0 && m.vifs[0].mtu == 1500);
    CHECK_EQ_U64(m.nnetworks, 1);
    CHECK(strcmp(m.networks[0].name, "LAN") == 0);
    sp_xva_meta_free(&m);
}

/* xva-img users hand-write the bare minimum. */
static void parse_minimal(void)
{
    static const char xml[] =
        "<value><struct><member><name>objects</name><value><array><data>"
        OBJ("VM", "Ref:1", M("memory_static_max", "536870912") M("VCPUs_max", "1") M("name_label", "tiny"))
        OBJ("VBD", "Ref:2", M("VM", "Ref:1") M("VDI", "Ref:3") M("type", "Disk") M("userdevice", "0"))
        OBJ("VDI", "Ref:3", M("virtual_size", "4194304"))
        "</data></array></value></member></struct></value>";
    struct sp_xva_meta m;
    struct sp_error err;
    CHECK_OK(sp_xva_xml_parse(xml, strlen(xml), &m, &err));
    CHECK(!m.vm.hvm);
    CHECK_EQ_U64(m.vm.vcpus_at_startup, 1);
    CHECK_EQ_U64(m.vm.memory_static_min, 536870912);
    CHECK(m.nvdis == 1 && m.vdis[0].virtual_size == 4194304 && strcmp(m.vdis[0].type, "user") == 0);
    sp_xva_meta_free(&m);
}

static void rejects_not_well_formed(void)
{
    expect_error("<value><struct><member><name>objects</name></value>", SP_EFORMAT, "not well-formed");
    expect_error("", SP_EFORMAT, "not well-formed");
    expect_error("<value><struct></struct></value>", SP_EFORMAT, "objects");
    expect_error("<methodCall/>", SP_EFORMAT, "XML-RPC");
    /* an undeclared entity is a well-formedness error, not a substitution */
    expect_error("<value>&xxe;</value>", SP_EFORMAT, "not well-formed");
}

static void rejects_doctype(void)
{
    static const char laughs[] =
        "<?xml version=\"1.0\"?>\n"
        "<!DOCTYPE lolz [\n"
        " <!ENTITY lol \"lol\">\n"
        " <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
        " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
        " <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
        "]>\n"
        "<value><struct><member><name>objects</name><value>&lol4;</value></member></struct></value>\n";
    expect_error(laughs, SP_EFORMAT, "DOCTYPE");
    static const char xxe[] =
        "<?xml version=\"1.0\"?><!DOCTYPE v SYSTEM \"http://example.invalid/x.dtd\">"
        "<value><struct/></value>";
    expect_error(xxe, SP_EFORMAT, "DOCTYPE");
    /* the same in UTF-16LE: no byte scan would see "<!DOCTYPE" */
    static const char ascii[] = "\xff\xfe<?xml version=\"1.0\" encoding=\"UTF-16\"?>"
                                "<!DOCTYPE v [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><value>&e;</value>";
    char u16[2 * sizeof ascii];
    size_t n = 0;
    u16[n++] = ascii[0];
    u16[n++] = ascii[1];
    for (size_t i = 2; i < sizeof ascii - 1; i++) {
        u16[n++] = ascii[i];
        u16[n++] = 0;
    }
    struct sp_xva_meta m;
    struct sp_error err;
    CHECK(sp_xva_xml_parse(u16, n, &m, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "DOCTYPE"));
    /* a DOCTYPE-looking string inside text is just text */
    CHECK(sp_xva_xml_parse("<value>&lt;!DOCTYPE</value>", 27, &m, &err) == SP_EFORMAT);
    CHECK(!strstr(err.msg, "DOCTYPE"));
}

static void rejects_missing_vdi(void)
{
    static const char xml[] =
        "<value><struct><member><name>objects</name><value><array><data>"
        OBJ("VM", "Ref:1", M("memory_static_max", "536870912") M("VCPUs_max", "1"))
        OBJ("VBD", "Ref:2", M("VM", "Ref:1") M("VDI", "Ref:4") M("type", "Disk"))
        OBJ("VDI", "Ref:3", M("virtual_size", "4194304"))
        "</data></array></value></member></struct></value>";
    expect_error(xml, SP_EFORMAT, "Ref:4");
    static const char susp[] =
        "<value><struct><member><name>objects</name><value><array><data>"
        OBJ("VM", "Ref:1", M("memory_static_max", "536870912") M("VCPUs_max", "1") M("power_state", "Suspended")
            M("suspend_VDI", "Ref:9"))
        "</data></array></value></member></struct></value>";
    expect_error(susp, SP_EFORMAT, "Ref:9");
}

static void rejects_bad_sizes(void)
{
    static const char nosize[] =
        "<value><struct><member><name>objects</name><value><array><data>"
        OBJ("VM", "Ref:1", M("memory_static_max", "536870912") M("VCPUs_max", "1"))
        OBJ("VBD", "Ref:2", M("VM", "Ref:1") M("VDI", "Ref:3") M("type", "Disk"))
        OBJ("VDI", "Ref:3", M("physical_utilisation", "4194304"))
        "</data></array></value></member></struct></value>";
    expect_error(nosize, SP_EFORMAT, "virtual_size missing");
    static const char huge[] =
        "<value><struct><member><name>objects</name><value><array><data>"
        OBJ("VM", "Ref:1", M("memory_static_max", "536870912") M("VCPUs_max", "1"))
        OBJ("VBD", "Ref:2", M("VM", "Ref:1") M("VDI", "Ref:3") M("type", "Disk"))
        OBJ("VDI", "Ref:3", M("virtual_size", "70368744177665"))
        "</data></array></value></member></struct></value>";
    expect_error(huge, SP_EFORMAT, "64 TiB");
    static const char neg[] =
        "<value><struct><member><name>objects</name><value><array><data>"
        OBJ("VM", "Ref:1", M("memory_static_max", "536870912") M("VCPUs_max", "1"))
        OBJ("VBD", "Ref:2", M("VM", "Ref:1") M("VDI", "Ref:3") M("type", "Disk"))
        OBJ("VDI", "Ref:3", M("virtual_size", "-1"))
        "</data></array></value></member></struct></value>";
    expect_error(neg, SP_EFORMAT, "integer");
    static const char nomem[] =
        "<value><struct><member><name>objects</name><value><array><data>"
        OBJ("VM", "Ref:1", M("VCPUs_max", "1"))
        "</data></array></value></member></struct></value>";
    expect_error(nomem, SP_EFORMAT, "memory_static_max missing");
    static const char nocpu[] =
        "<value><struct><member><name>objects</name><value><array><data>"
        OBJ("VM", "Ref:1", M("memory_static_max", "536870912"))
        "</data></array></value></member></struct></value>";
    expect_error(nocpu, SP_EFORMAT, "VCPUs_max missing");
    static const char novm[] =
        "<value><struct><member><name>objects</name><value><array><data>"
        OBJ("VDI", "Ref:3", M("virtual_size", "1"))
        "</data></array></value></member></struct></value>";
    expect_error(novm, SP_EFORMAT, "no VM");
    char *big = malloc(SP_XVA_XML_MAX + 2);
    CHECK(big);
    memset(big, ' ', SP_XVA_XML_MAX + 1);
    struct sp_xva_meta m;
    struct sp_error err;
    CHECK(sp_xva_xml_parse(big, SP_XVA_XML_MAX + 1, &m, &err) == SP_ELIMIT);
    free(big);
}

/* 60 characters: with "Ref:", one more than an id may have (SP_XVA_ID_MAX). */
#define LONG_ID "012345678901234567890123456789012345678901234567890123456789"

static void rejects_bad_id(void)
{
    static const char xml[] =
        "<value><struct><member><name>objects</name><value><array><data>"
        OBJ("VM", "Ref:1", M("memory_static_max", "536870912") M("VCPUs_max", "1"))
        OBJ("VBD", "Ref:2", M("VM", "Ref:1") M("VDI", "Ref:1/../x") M("type", "Disk"))
        OBJ("VDI", "Ref:1/../x", M("virtual_size", "4194304"))
        "</data></array></value></member></struct></value>";
    expect_error(xml, SP_EFORMAT, "Ref:1/../x");
    static const char blank[] =
        "<value><struct><member><name>objects</name><value><array><data>"
        OBJ("VM", "Ref 5", M("memory_static_max", "536870912") M("VCPUs_max", "1"))
        "</data></array></value></member></struct></value>";
    expect_error(blank, SP_EFORMAT, "not usable as a tar folder name");
    static const char longid[] =
        "<value><struct><member><name>objects</name><value><array><data>"
        OBJ("VM", "Ref:1", M("memory_static_max", "536870912") M("VCPUs_max", "1"))
        OBJ("VBD", "Ref:2", M("VM", "Ref:1") M("VDI", "Ref:" LONG_ID) M("type", "Disk"))
        OBJ("VDI", "Ref:" LONG_ID, M("virtual_size", "4194304"))
        "</data></array></value></member></struct></value>";
    expect_error(longid, SP_EFORMAT, "VBD Ref:2");
}

static void rejects_too_many_vbds(void)
{
    size_t cap = 256 * 1024;
    char *xml = malloc(cap);
    CHECK(xml);
    size_t n = (size_t)snprintf(xml, cap, "%s",
                                "<value><struct><member><name>objects</name><value><array><data>"
                                OBJ("VM", "Ref:1", M("memory_static_max", "536870912") M("VCPUs_max", "1")));
    for (int i = 0; i <= SP_XVA_DEVICES_MAX; i++)
        n += (size_t)snprintf(xml + n, cap - n,
                              OBJ("VBD", "Ref:v%d", M("VM", "Ref:1") M("VDI", "OpaqueRef:NULL") M("type", "CD")
                                  MB("empty", "1")), i);
    CHECK(n < cap - 100);
    snprintf(xml + n, cap - n, "</data></array></value></member></struct></value>");
    expect_error(xml, SP_ELIMIT, "more than 256 VBDs");
    free(xml);
}

TEST_MAIN({"round_trip", round_trip}, {"deterministic", deterministic}, {"writer_refuses", writer_refuses},
          {"writer_xmllint", writer_xmllint}, {"parse_xapi", parse_xapi}, {"parse_xo", parse_xo},
          {"parse_minimal", parse_minimal}, {"rejects_not_well_formed", rejects_not_well_formed},
          {"rejects_doctype", rejects_doctype}, {"rejects_missing_vdi", rejects_missing_vdi},
          {"rejects_bad_sizes", rejects_bad_sizes}, {"rejects_bad_id", rejects_bad_id},
          {"rejects_too_many_vbds", rejects_too_many_vbds})
