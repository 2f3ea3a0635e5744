/* ova.xml: the XML-RPC-style dump XAPI puts first in an XVA (reference/xva.md
 * section 2). Writing goes through xmlTextWriter; reading through libxml2's
 * tree parser with the network off, entities not substituted, no external
 * DTD, and any DOCTYPE refused outright (billion laughs, XXE). */
#include "archive/xva_xml.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/chvalid.h>
#include <libxml/parser.h>
#include "archive/xml_safe.h"
#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include <libxml/xmlstring.h>
#include <libxml/xmlwriter.h>

#include "base/uuid.h"

/* What we announce in version: small xapi numbers so that every XAPI takes
 * the file (import refuses a (major, minor) newer than its own); export_vsn
 * 2 = inline block checksums, no trailing table (xva.md section 1). */
#define XVA_XAPI_MAJOR 1
#define XVA_XAPI_MINOR 20
#define XVA_EXPORT_VSN 2
#define XVA_NULL_REF "OpaqueRef:NULL"
#define XVA_EPOCH "19700101T00:00:00Z" /* XAPI's "no date" */
#define XVA_DEFAULT_MTU 1500

/* ------------------------------------------------------------------------ */
/* shared helpers                                                            */

static bool is_null_ref(const char *s)
{
    return !s || !*s || strcmp(s, XVA_NULL_REF) == 0;
}

/* An object id we accept: any name that is safe as a tar folder
 * (sp_xva_id_valid: XAPI's "Ref:<n>", XO's "Ref:000", an image builder's
 * "Ref:VDI-1-root" ...), since a VDI's id becomes the folder of its blocks:
 * nothing that could walk out of a folder or need quoting. */
static bool valid_id(const char *s)
{
    return sp_xva_id_valid(s);
}

static void map_free(struct sp_xva_map *m)
{
    for (int i = 0; i < m->n; i++) {
        free(m->items[i].key);
        free(m->items[i].value);
    }
    free(m->items);
    m->items = NULL;
    m->n = 0;
}

void sp_xva_meta_free(struct sp_xva_meta *meta)
{
    if (!meta)
        return;
    map_free(&meta->vm.platform);
    map_free(&meta->vm.other_config);
    for (int i = 0; i < meta->nvdis; i++)
        map_free(&meta->vdis[i].other_config);
    free(meta->vbds);
    free(meta->vdis);
    free(meta->vifs);
    free(meta->networks);
    memset(meta, 0, sizeof *meta);
}

const struct sp_xva_vdi *sp_xva_find_vdi(const struct sp_xva_meta *meta, const char *id)
{
    for (int i = 0; id && i < meta->nvdis; i++)
        if (strcmp(meta->vdis[i].id, id) == 0)
            return &meta->vdis[i];
    return NULL;
}

const struct sp_xva_network *sp_xva_find_network(const struct sp_xva_meta *meta, const char *id)
{
    for (int i = 0; id && i < meta->nnetworks; i++)
        if (strcmp(meta->networks[i].id, id) == 0)
            return &meta->networks[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* writer                                                                    */

#define W SP_XML_W

static void el_start(struct sp_xml_wr *c, const char *name) { W(c, xmlTextWriterStartElement(c->w, BAD_CAST name)); }
static void el_end(struct sp_xml_wr *c) { W(c, xmlTextWriterFullEndElement(c->w)); }

static void el_text(struct sp_xml_wr *c, const char *name, const char *text)
{
    el_start(c, name);
    if (*text)
        W(c, xmlTextWriterWriteString(c->w, BAD_CAST sp_xml_clean(c, text)));
    el_end(c);
}

static void m_begin(struct sp_xml_wr *c, const char *name)
{
    el_start(c, "member");
    el_text(c, "name", name);
}

static void m_end(struct sp_xml_wr *c) { el_end(c); }

/* <value>s</value>: strings, and ints as XAPI writes them (bare). */
static void v_plain(struct sp_xml_wr *c, const char *s) { el_text(c, "value", s); }

static void v_typed(struct sp_xml_wr *c, const char *type, const char *s)
{
    el_start(c, "value");
    el_text(c, type, s);
    el_end(c);
}

static void mem_str(struct sp_xml_wr *c, const char *name, const char *s)
{
    m_begin(c, name);
    v_plain(c, s);
    m_end(c);
}

static void mem_ref(struct sp_xml_wr *c, const char *name, const char *id)
{
    mem_str(c, name, is_null_ref(id) ? XVA_NULL_REF : id);
}

static void mem_i64(struct sp_xml_wr *c, const char *name, long long v)
{
    char b[32];
    snprintf(b, sizeof b, "%lld", v);
    mem_str(c, name, b);
}

static void mem_u64(struct sp_xml_wr *c, const char *name, uint64_t v)
{
    char b[32];
    snprintf(b, sizeof b, "%" PRIu64, v);
    mem_str(c, name, b);
}

static void mem_bool(struct sp_xml_wr *c, const char *name, bool v)
{
    m_begin(c, name);
    v_typed(c, "boolean", v ? "1" : "0");
    m_end(c);
}

static void mem_date(struct sp_xml_wr *c, const char *name, const char *s)
{
    m_begin(c, name);
    v_typed(c, "dateTime.iso8601", *s ? s : XVA_EPOCH);
    m_end(c);
}

static void mem_double(struct sp_xml_wr *c, const char *name, const char *s)
{
    m_begin(c, name);
    v_typed(c, "double", s);
    m_end(c);
}

static void struct_begin(struct sp_xml_wr *c)
{
    el_start(c, "value");
    el_start(c, "struct");
}

static void struct_end(struct sp_xml_wr *c)
{
    el_end(c);
    el_end(c);
}

static void array_begin(struct sp_xml_wr *c)
{
    el_start(c, "value");
    el_start(c, "array");
    el_start(c, "data");
}

static void array_end(struct sp_xml_wr *c)
{
    el_end(c);
    el_end(c);
    el_end(c);
}

static void mem_map(struct sp_xml_wr *c, const char *name, const struct sp_xva_map *m)
{
    m_begin(c, name);
    struct_begin(c);
    for (int i = 0; m && i < m->n; i++)
        mem_str(c, m->items[i].key, m->items[i].value ? m->items[i].value : "");
    struct_end(c);
    m_end(c);
}

static void mem_empty_map(struct sp_xml_wr *c, const char *name) { mem_map(c, name, NULL); }

static void mem_empty_array(struct sp_xml_wr *c, const char *name)
{
    m_begin(c, name);
    array_begin(c);
    array_end(c);
    m_end(c);
}

/* A uuid for the objects snapport has none for (VBD, VIF, SR, network):
 * derived from the VM's uuid, the class and the id, so that the same meta
 * gives the same bytes. Import gives them fresh uuids anyway. */
static void derived_uuid(const struct sp_xva_meta *meta, const char *cls, const char *id, char out[SP_UUID_STR])
{
    uint8_t u[SP_UUID_LEN];
    for (int half = 0; half < 2; half++) {
        uint64_t h = 14695981039346656037ull ^ (uint64_t)(half + 1); /* FNV-1a */
        const char *parts[] = {"snapport", meta->vm.uuid, cls, id};
        for (size_t p = 0; p < sizeof parts / sizeof parts[0]; p++) {
            for (const unsigned char *s = (const unsigned char *)parts[p]; *s; s++)
                h = (h ^ *s) * 1099511628211ull;
            h = (h ^ 0xff) * 1099511628211ull;
        }
        for (int i = 0; i < 8; i++)
            u[half * 8 + i] = (uint8_t)(h >> (56 - 8 * i));
    }
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x80); /* version 8: custom */
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    sp_uuid_format(u, out);
}

static int id_count(const struct sp_xva_meta *meta, const char *id)
{
    int n = strcmp(meta->vm.id, id) == 0;
    for (int i = 0; i < meta->nvbds; i++)
        n += strcmp(meta->vbds[i].id, id) == 0;
    for (int i = 0; i < meta->nvdis; i++)
        n += strcmp(meta->vdis[i].id, id) == 0;
    for (int i = 0; i < meta->nvifs; i++)
        n += strcmp(meta->vifs[i].id, id) == 0;
    for (int i = 0; i < meta->nnetworks; i++)
        n += strcmp(meta->networks[i].id, id) == 0;
    return n;
}

/* Refuses a meta whose ova.xml our own parser (or XAPI) would refuse. */
static int check_meta(const struct sp_xva_meta *meta, struct sp_error *err)
{
    const struct sp_xva_vm *vm = &meta->vm;
    if (meta->nvbds < 0 || meta->nvdis < 0 || meta->nvifs < 0 || meta->nnetworks < 0)
        return sp_error_set(err, SP_EINVAL, "ova.xml: negative object count");
    if (meta->nvbds > SP_XVA_DEVICES_MAX || meta->nvifs > SP_XVA_DEVICES_MAX)
        return sp_error_set(err, SP_ELIMIT, "ova.xml: more than %d VBDs or VIFs", SP_XVA_DEVICES_MAX);
    if (!valid_id(vm->id))
        return sp_error_set(err, SP_EINVAL, "ova.xml: VM id '%s' is not usable as a tar folder name", vm->id);
    if (vm->memory_static_max == 0 || vm->vcpus_max == 0 || vm->vcpus_at_startup == 0 ||
        vm->vcpus_at_startup > vm->vcpus_max)
        return sp_error_set(err, SP_EINVAL, "ova.xml: VM %s: memory or vCPUs missing or inconsistent", vm->id);
    if (vm->suspended && !sp_xva_find_vdi(meta, vm->suspend_vdi_id))
        return sp_error_set(err, SP_EINVAL, "ova.xml: VM %s: suspend VDI '%s' not among the VDIs", vm->id,
                            vm->suspend_vdi_id);
    /* every id valid and used once: an id is a link target and a tar folder */
    for (int k = 0; k < meta->nvbds + meta->nvdis + meta->nvifs + meta->nnetworks; k++) {
        int j = k;
        const char *id;
        if (j < meta->nvbds)
            id = meta->vbds[j].id;
        else if ((j -= meta->nvbds) < meta->nvdis)
            id = meta->vdis[j].id;
        else if ((j -= meta->nvdis) < meta->nvifs)
            id = meta->vifs[j].id;
        else
            id = meta->networks[j - meta->nvifs].id;
        if (!valid_id(id))
            return sp_error_set(err, SP_EINVAL, "ova.xml: id '%s' is not usable as a tar folder name", id);
        if (id_count(meta, id) != 1)
            return sp_error_set(err, SP_EINVAL, "ova.xml: id %s used twice", id);
    }
    for (int i = 0; i < meta->nvbds; i++) {
        const struct sp_xva_vbd *b = &meta->vbds[i];
        if (!is_null_ref(b->vdi_id) && !sp_xva_find_vdi(meta, b->vdi_id))
            return sp_error_set(err, SP_EINVAL, "ova.xml: VBD %s points at VDI '%s' not among the VDIs", b->id,
                                b->vdi_id);
        if (is_null_ref(b->vdi_id) && !b->cd)
            return sp_error_set(err, SP_EINVAL, "ova.xml: VBD %s: a disk without a VDI", b->id);
    }
    for (int i = 0; i < meta->nvdis; i++)
        if (meta->vdis[i].virtual_size > SP_XVA_VDI_MAX)
            return sp_error_set(err, SP_EINVAL, "ova.xml: VDI %s: virtual_size %" PRIu64 " is over 64 TiB",
                                meta->vdis[i].id, meta->vdis[i].virtual_size);
    for (int i = 0; i < meta->nvifs; i++)
        if (!sp_xva_find_network(meta, meta->vifs[i].network_id))
            return sp_error_set(err, SP_EINVAL, "ova.xml: VIF %s points at network '%s' not among the networks",
                                meta->vifs[i].id, meta->vifs[i].network_id);
    return SP_OK;
}

static void obj_begin(struct sp_xml_wr *c, const char *cls, const char *id)
{
    struct_begin(c);
    mem_str(c, "class", cls);
    mem_str(c, "id", id);
    m_begin(c, "snapshot");
    struct_begin(c);
}

static void obj_end(struct sp_xml_wr *c)
{
    struct_end(c);
    m_end(c);
    struct_end(c);
}

static void write_version(struct sp_xml_wr *c, const struct sp_xva_meta *meta)
{
    m_begin(c, "version");
    struct_begin(c);
    mem_str(c, "hostname", "snapport");
    mem_str(c, "date", meta->export_date);
    mem_str(c, "product_version", "0.1.0");
    mem_str(c, "product_brand", "snapport");
    mem_str(c, "build_number", "0");
    mem_i64(c, "xapi_major", XVA_XAPI_MAJOR);
    mem_i64(c, "xapi_minor", XVA_XAPI_MINOR);
    mem_i64(c, "export_vsn", XVA_EXPORT_VSN);
    struct_end(c);
    m_end(c);
}

static void write_vm(struct sp_xml_wr *c, const struct sp_xva_meta *meta)
{
    const struct sp_xva_vm *vm = &meta->vm;
    bool suspended = vm->suspended && !is_null_ref(vm->suspend_vdi_id);
    obj_begin(c, "VM", vm->id);
    mem_str(c, "uuid", vm->uuid);
    mem_str(c, "name_label", vm->name);
    mem_str(c, "name_description", vm->description);
    mem_i64(c, "user_version", 1);
    mem_bool(c, "is_a_template", false);
    mem_bool(c, "is_default_template", false);
    mem_bool(c, "is_a_snapshot", vm->is_a_snapshot);
    mem_ref(c, "snapshot_of", NULL);
    mem_date(c, "snapshot_time", vm->snapshot_time);
    mem_empty_array(c, "snapshots");
    mem_ref(c, "parent", NULL); /* present, or import resets memory to static_max */
    mem_empty_array(c, "children");
    mem_ref(c, "resident_on", NULL);
    mem_ref(c, "affinity", NULL);
    mem_ref(c, "scheduled_to_be_resident_on", NULL);
    mem_u64(c, "memory_static_max", vm->memory_static_max);
    mem_u64(c, "memory_dynamic_max", vm->memory_dynamic_max);
    mem_u64(c, "memory_dynamic_min", vm->memory_dynamic_min);
    mem_u64(c, "memory_static_min", vm->memory_static_min);
    mem_u64(c, "memory_target", 0);
    mem_empty_map(c, "VCPUs_params");
    mem_u64(c, "VCPUs_max", vm->vcpus_max);
    mem_u64(c, "VCPUs_at_startup", vm->vcpus_at_startup);
    mem_str(c, "actions_after_shutdown", "destroy");
    mem_str(c, "actions_after_reboot", "restart");
    mem_str(c, "actions_after_crash", "restart");
    mem_empty_array(c, "consoles");
    m_begin(c, "VIFs");
    array_begin(c);
    for (int i = 0; i < meta->nvifs; i++)
        v_plain(c, meta->vifs[i].id);
    array_end(c);
    m_end(c);
    m_begin(c, "VBDs");
    array_begin(c);
    for (int i = 0; i < meta->nvbds; i++)
        v_plain(c, meta->vbds[i].id);
    array_end(c);
    m_end(c);
    mem_empty_array(c, "VUSBs");
    mem_empty_array(c, "VGPUs");
    mem_empty_array(c, "VTPMs");
    mem_empty_array(c, "attached_PCIs");
    mem_empty_array(c, "crash_dumps");
    mem_str(c, "PV_bootloader", vm->pv_bootloader[0] || vm->hvm ? vm->pv_bootloader : "pygrub");
    mem_str(c, "PV_kernel", "");
    mem_str(c, "PV_ramdisk", "");
    mem_str(c, "PV_args", vm->pv_args);
    mem_str(c, "PV_bootloader_args", "");
    mem_str(c, "PV_legacy_args", "");
    mem_str(c, "HVM_boot_policy", vm->hvm ? "BIOS order" : "");
    m_begin(c, "HVM_boot_params");
    struct_begin(c);
    if (vm->hvm)
        mem_str(c, "order", vm->boot_order[0] ? vm->boot_order : "cd");
    if (vm->hvm && vm->firmware[0])
        mem_str(c, "firmware", vm->firmware);
    struct_end(c);
    m_end(c);
    mem_double(c, "HVM_shadow_multiplier", "1.0");
    mem_map(c, "platform", &vm->platform);
    mem_str(c, "PCI_bus", "");
    mem_map(c, "other_config", &vm->other_config);
    mem_i64(c, "domid", -1);
    mem_str(c, "domarch", "");
    mem_str(c, "domain_type", vm->hvm ? "hvm" : "pv");
    mem_empty_map(c, "last_boot_CPU_flags");
    mem_bool(c, "is_control_domain", false);
    mem_ref(c, "metrics", NULL);
    mem_ref(c, "guest_metrics", NULL);
    mem_str(c, "last_booted_record", "");
    mem_str(c, "recommendations", "");
    mem_empty_map(c, "xenstore_data");
    mem_bool(c, "ha_always_run", false);
    mem_str(c, "ha_restart_priority", "");
    mem_empty_array(c, "tags");
    mem_empty_map(c, "blocked_operations");
    mem_empty_array(c, "allowed_operations");
    mem_empty_map(c, "current_operations");
    mem_str(c, "power_state", suspended ? "Suspended" : "Halted");
    mem_ref(c, "suspend_VDI", suspended ? vm->suspend_vdi_id : NULL);
    mem_ref(c, "suspend_SR", NULL);
    mem_empty_map(c, "NVRAM");
    mem_empty_map(c, "bios_strings");
    mem_bool(c, "has_vendor_device", false);
    mem_str(c, "generation_id", "");
    mem_i64(c, "hardware_platform_version", 0);
    mem_i64(c, "version", 0);
    mem_i64(c, "order", 0);
    mem_i64(c, "start_delay", 0);
    mem_i64(c, "shutdown_delay", 0);
    mem_str(c, "reference_label", "");
    mem_bool(c, "requires_reboot", false);
    mem_str(c, "transportable_snapshot_id", "");
    mem_empty_map(c, "snapshot_info");
    mem_str(c, "snapshot_metadata", "");
    mem_empty_map(c, "blobs");
    mem_ref(c, "appliance", NULL);
    mem_ref(c, "protection_policy", NULL);
    mem_bool(c, "is_snapshot_from_vmpp", false);
    mem_ref(c, "snapshot_schedule", NULL);
    mem_bool(c, "is_vmss_snapshot", false);
    obj_end(c);
}

static void write_vbd(struct sp_xml_wr *c, const struct sp_xva_meta *meta, const struct sp_xva_vbd *b)
{
    char uuid[SP_UUID_STR];
    derived_uuid(meta, "VBD", b->id, uuid);
    obj_begin(c, "VBD", b->id);
    mem_str(c, "uuid", uuid);
    mem_ref(c, "VM", meta->vm.id);
    mem_ref(c, "VDI", b->vdi_id);
    mem_str(c, "userdevice", b->userdevice);
    mem_str(c, "device", b->device);
    mem_bool(c, "bootable", b->bootable);
    mem_str(c, "mode", b->read_only ? "RO" : "RW");
    mem_str(c, "type", b->cd ? "CD" : "Disk");
    mem_bool(c, "unpluggable", false);
    mem_bool(c, "storage_lock", false);
    mem_bool(c, "empty", b->empty || is_null_ref(b->vdi_id));
    mem_bool(c, "currently_attached", false);
    mem_i64(c, "status_code", 0);
    mem_str(c, "status_detail", "");
    mem_empty_map(c, "runtime_properties");
    mem_str(c, "qos_algorithm_type", "");
    mem_empty_map(c, "qos_algorithm_params");
    mem_empty_array(c, "qos_supported_algorithms");
    mem_ref(c, "metrics", NULL);
    mem_empty_map(c, "other_config");
    mem_empty_array(c, "allowed_operations");
    mem_empty_map(c, "current_operations");
    obj_end(c);
}

static void write_vdi(struct sp_xml_wr *c, const struct sp_xva_meta *meta, const struct sp_xva_vdi *d, const char *sr_id)
{
    obj_begin(c, "VDI", d->id);
    mem_str(c, "uuid", d->uuid);
    mem_str(c, "name_label", d->name);
    mem_str(c, "name_description", d->description);
    mem_ref(c, "SR", sr_id);
    m_begin(c, "VBDs");
    array_begin(c);
    for (int i = 0; i < meta->nvbds; i++)
        if (strcmp(meta->vbds[i].vdi_id, d->id) == 0)
            v_plain(c, meta->vbds[i].id);
    array_end(c);
    m_end(c);
    mem_empty_array(c, "crash_dumps");
    mem_u64(c, "virtual_size", d->virtual_size);
    mem_u64(c, "physical_utilisation", d->physical_utilisation);
    mem_str(c, "type", d->type[0] ? d->type : "user");
    mem_bool(c, "sharable", false);
    mem_bool(c, "read_only", d->read_only);
    mem_map(c, "other_config", &d->other_config);
    mem_bool(c, "storage_lock", false);
    mem_str(c, "location", "");
    mem_bool(c, "managed", true);
    mem_bool(c, "missing", false);
    mem_ref(c, "parent", NULL);
    mem_empty_map(c, "xenstore_data");
    mem_empty_map(c, "sm_config");
    mem_bool(c, "is_a_snapshot", false);
    mem_ref(c, "snapshot_of", NULL);
    mem_date(c, "snapshot_time", "");
    mem_empty_array(c, "snapshots");
    mem_empty_array(c, "tags");
    mem_bool(c, "allow_caching", false);
    mem_str(c, "on_boot", "persist");
    mem_ref(c, "metrics", NULL);
    mem_bool(c, "cbt_enabled", false);
    mem_bool(c, "is_tools_iso", false);
    mem_empty_array(c, "allowed_operations");
    mem_empty_map(c, "current_operations");
    obj_end(c);
}

static void write_sr(struct sp_xml_wr *c, const struct sp_xva_meta *meta, const char *sr_id)
{
    char uuid[SP_UUID_STR];
    derived_uuid(meta, "SR", sr_id, uuid);
    obj_begin(c, "SR", sr_id);
    mem_str(c, "uuid", uuid);
    mem_str(c, "name_label", "snapport");
    mem_str(c, "name_description", "");
    m_begin(c, "VDIs");
    array_begin(c);
    for (int i = 0; i < meta->nvdis; i++)
        v_plain(c, meta->vdis[i].id);
    array_end(c);
    m_end(c);
    mem_empty_array(c, "PBDs");
    mem_u64(c, "virtual_allocation", 0);
    mem_u64(c, "physical_utilisation", 0);
    mem_u64(c, "physical_size", 0);
    mem_str(c, "type", "ext");
    mem_str(c, "content_type", "");
    mem_bool(c, "shared", false);
    mem_empty_map(c, "other_config");
    mem_empty_map(c, "sm_config");
    mem_empty_array(c, "tags");
    mem_empty_map(c, "blobs");
    mem_bool(c, "local_cache_enabled", false);
    mem_ref(c, "introduced_by", NULL);
    mem_bool(c, "clustered", false);
    mem_bool(c, "is_tools_sr", false);
    mem_empty_array(c, "allowed_operations");
    mem_empty_map(c, "current_operations");
    obj_end(c);
}

static void write_vif(struct sp_xml_wr *c, const struct sp_xva_meta *meta, const struct sp_xva_vif *v)
{
    char uuid[SP_UUID_STR];
    derived_uuid(meta, "VIF", v->id, uuid);
    obj_begin(c, "VIF", v->id);
    mem_str(c, "uuid", uuid);
    mem_str(c, "device", v->device);
    mem_ref(c, "network", v->network_id);
    mem_ref(c, "VM", meta->vm.id);
    mem_str(c, "MAC", v->mac);
    mem_bool(c, "MAC_autogenerated", false);
    mem_u64(c, "MTU", v->mtu ? v->mtu : XVA_DEFAULT_MTU);
    struct sp_xva_kv model = {(char *)SP_XVA_VIF_MODEL_KEY, (char *)v->model};
    struct sp_xva_map other = {&model, v->model[0] ? 1 : 0};
    mem_map(c, "other_config", &other);
    mem_bool(c, "currently_attached", false);
    mem_i64(c, "status_code", 0);
    mem_str(c, "status_detail", "");
    mem_empty_map(c, "runtime_properties");
    mem_str(c, "qos_algorithm_type", "");
    mem_empty_map(c, "qos_algorithm_params");
    mem_empty_array(c, "qos_supported_algorithms");
    mem_ref(c, "metrics", NULL);
    mem_str(c, "locking_mode", "network_default");
    mem_empty_array(c, "ipv4_allowed");
    mem_empty_array(c, "ipv6_allowed");
    mem_str(c, "ipv4_configuration_mode", "None");
    mem_empty_array(c, "ipv4_addresses");
    mem_str(c, "ipv4_gateway", "");
    mem_str(c, "ipv6_configuration_mode", "None");
    mem_empty_array(c, "ipv6_addresses");
    mem_str(c, "ipv6_gateway", "");
    mem_empty_array(c, "allowed_operations");
    mem_empty_map(c, "current_operations");
    obj_end(c);
}

static void write_network(struct sp_xml_wr *c, const struct sp_xva_meta *meta, const struct sp_xva_network *n)
{
    char uuid[SP_UUID_STR];
    derived_uuid(meta, "network", n->id, uuid);
    obj_begin(c, "network", n->id);
    mem_str(c, "uuid", uuid);
    mem_str(c, "name_label", n->name);
    mem_str(c, "name_description", "");
    mem_str(c, "bridge", n->bridge);
    mem_u64(c, "MTU", XVA_DEFAULT_MTU);
    mem_empty_map(c, "other_config");
    m_begin(c, "VIFs");
    array_begin(c);
    for (int i = 0; i < meta->nvifs; i++)
        if (strcmp(meta->vifs[i].network_id, n->id) == 0)
            v_plain(c, meta->vifs[i].id);
    array_end(c);
    m_end(c);
    mem_empty_array(c, "PIFs");
    mem_empty_array(c, "tags");
    mem_empty_map(c, "blobs");
    mem_str(c, "default_locking_mode", "unlocked");
    mem_bool(c, "managed", true);
    mem_empty_array(c, "purpose");
    mem_empty_map(c, "assigned_ips");
    mem_empty_array(c, "allowed_operations");
    mem_empty_map(c, "current_operations");
    obj_end(c);
}

int sp_xva_xml_write(const struct sp_xva_meta *meta, char **out, size_t *len, struct sp_error *err)
{
    int rc;
    struct sp_xml_wr c;
    char sr_id[SP_XVA_ID_MAX];

    *out = NULL;
    *len = 0;
    rc = check_meta(meta, err);
    if (rc)
        return rc;
    /* one SR holds every VDI (import ignores it, but VDI.SR must resolve) */
    snprintf(sr_id, sizeof sr_id, "Ref:sr");
    for (int i = 1; id_count(meta, sr_id); i++)
        snprintf(sr_id, sizeof sr_id, "Ref:sr%d", i);

    if ((rc = sp_xml_wr_open(&c, "ova.xml", err)) != SP_OK)
        return rc;
    W(&c, xmlTextWriterStartDocument(c.w, "1.0", "UTF-8", NULL));
    struct_begin(&c);
    write_version(&c, meta);
    m_begin(&c, "objects");
    array_begin(&c);
    write_vm(&c, meta);
    for (int i = 0; i < meta->nvbds; i++)
        write_vbd(&c, meta, &meta->vbds[i]);
    for (int i = 0; i < meta->nvdis; i++)
        write_vdi(&c, meta, &meta->vdis[i], sr_id);
    write_sr(&c, meta, sr_id);
    for (int i = 0; i < meta->nvifs; i++)
        write_vif(&c, meta, &meta->vifs[i]);
    for (int i = 0; i < meta->nnetworks; i++)
        write_network(&c, meta, &meta->networks[i]);
    array_end(&c);
    m_end(&c);
    struct_end(&c);
    return sp_xml_wr_finish(&c, "ova.xml", out, len, err);
}

/* ------------------------------------------------------------------------ */
/* parser                                                                    */

static bool is_el(const xmlNode *n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, BAD_CAST name) == 0;
}

static xmlNode *first_el(xmlNode *n)
{
    for (xmlNode *k = n ? n->children : NULL; k; k = k->next)
        if (k->type == XML_ELEMENT_NODE)
            return k;
    return NULL;
}

static xmlNode *next_el(xmlNode *n)
{
    for (xmlNode *k = n->next; k; k = k->next)
        if (k->type == XML_ELEMENT_NODE)
            return k;
    return NULL;
}

static xmlNode *child_el(xmlNode *n, const char *name)
{
    for (xmlNode *k = first_el(n); k; k = next_el(k))
        if (is_el(k, name))
            return k;
    return NULL;
}

/* The <struct> of a <value>, or NULL. */
static xmlNode *v_struct(xmlNode *value) { return child_el(value, "struct"); }

/* The member value named name in a <struct>, or NULL. */
static xmlNode *member(xmlNode *st, const char *name)
{
    for (xmlNode *m = first_el(st); m; m = next_el(m)) {
        if (!is_el(m, "member"))
            continue;
        xmlNode *nm = child_el(m, "name");
        if (!nm)
            continue;
        xmlChar *t = xmlNodeGetContent(nm);
        bool hit = t && xmlStrcmp(t, BAD_CAST name) == 0;
        xmlFree(t);
        if (hit)
            return child_el(m, "value");
    }
    return NULL;
}

/* First <value> of an <array><data>, then the next ones with next_el. */
static xmlNode *array_first(xmlNode *value)
{
    xmlNode *data = child_el(child_el(value, "array"), "data");
    xmlNode *k = first_el(data);
    while (k && !is_el(k, "value"))
        k = next_el(k);
    return k;
}

static xmlNode *array_next(xmlNode *v)
{
    xmlNode *k = next_el(v);
    while (k && !is_el(k, "value"))
        k = next_el(k);
    return k;
}

/* The text of a scalar <value> (bare, <string>, <i4>, <boolean> ...), as
 * xmlFree-able string; NULL for a struct/array or when absent. */
static xmlChar *scalar(xmlNode *value)
{
    if (!value)
        return NULL;
    xmlNode *t = first_el(value);
    if (t && (is_el(t, "struct") || is_el(t, "array")))
        return NULL;
    xmlChar *s = xmlNodeGetContent(t ? t : value);
    return s ? s : xmlStrdup(BAD_CAST "");
}

struct pctx {
    struct sp_error *err;
    int rc;
};

static int perr(struct pctx *p, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr(struct pctx *p, int code, const char *fmt, ...)
{
    char msg[SP_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!p->rc)
        p->rc = sp_error_set(p->err, code, "ova.xml: %s", msg);
    return p->rc;
}

/* Copies a string field into a fixed buffer. strict: too long is an error
 * (ids, uuids, enums); otherwise cut at a UTF-8 boundary (names). Absent
 * leaves dst as it is; *present tells. */
static int get_str(struct pctx *p, xmlNode *st, const char *field, const char *what, char *dst, size_t cap,
                   bool strict, bool *present)
{
    xmlNode *v = member(st, field);
    xmlChar *s = scalar(v);
    if (present)
        *present = s != NULL;
    if (!s)
        return SP_OK;
    size_t n = strlen((const char *)s);
    if (n >= cap) {
        if (strict) {
            xmlFree(s);
            return perr(p, SP_EFORMAT, "%s: %s is too long (%zu bytes)", what, field, n);
        }
        n = cap - 1;
        while (n > 0 && (s[n] & 0xC0) == 0x80) /* do not cut a character */
            n--;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
    xmlFree(s);
    return SP_OK;
}

/* A reference field: "" when absent or OpaqueRef:NULL. *too_long: it cannot
 * be the id of an object (ids are shorter than SP_XVA_ID_MAX); dst is "". */
static int get_ref(struct pctx *p, xmlNode *st, const char *field, const char *what, char dst[SP_XVA_ID_MAX],
                   bool *too_long)
{
    char buf[256] = "";
    *too_long = false;
    dst[0] = '\0';
    if (get_str(p, st, field, what, buf, sizeof buf, false, NULL))
        return p->rc;
    if (is_null_ref(buf))
        return SP_OK;
    if (strlen(buf) >= SP_XVA_ID_MAX)
        *too_long = true;
    else
        memcpy(dst, buf, strlen(buf) + 1);
    return SP_OK;
}

static int get_u64(struct pctx *p, xmlNode *st, const char *field, const char *what, uint64_t *dst, bool *present)
{
    xmlChar *s = scalar(member(st, field));
    if (present)
        *present = s != NULL;
    if (!s)
        return SP_OK;
    const char *a = (const char *)s;
    while (isspace((unsigned char)*a))
        a++;
    char *end = NULL;
    unsigned long long v = 0;
    bool ok = isdigit((unsigned char)*a);
    if (ok) {
        errno = 0;
        v = strtoull(a, &end, 10);
        while (end && isspace((unsigned char)*end))
            end++;
        ok = errno == 0 && end && *end == '\0';
    }
    xmlFree(s);
    if (!ok)
        return perr(p, SP_EFORMAT, "%s: %s is not a non-negative integer", what, field);
    *dst = v;
    return SP_OK;
}

/* <boolean>0|1</boolean>, tolerantly also true/false in any wrapper.
 * Absent: dflt. */
static int get_bool(struct pctx *p, xmlNode *st, const char *field, const char *what, bool *dst, bool dflt)
{
    xmlChar *s = scalar(member(st, field));
    if (!s) {
        *dst = dflt;
        return SP_OK;
    }
    char b[8] = "";
    const char *a = (const char *)s;
    while (isspace((unsigned char)*a))
        a++;
    size_t n = 0;
    while (a[n] && !isspace((unsigned char)a[n]) && n < sizeof b - 1) {
        b[n] = a[n];
        n++;
    }
    b[n] = '\0';
    xmlFree(s);
    if (strcmp(b, "1") == 0 || strcasecmp(b, "true") == 0)
        *dst = true;
    else if (strcmp(b, "0") == 0 || strcasecmp(b, "false") == 0)
        *dst = false;
    else
        return perr(p, SP_EFORMAT, "%s: %s is not a boolean", what, field);
    return SP_OK;
}

static int get_map(struct pctx *p, xmlNode *st, const char *field, const char *what, struct sp_xva_map *dst)
{
    xmlNode *ms = v_struct(member(st, field));
    for (xmlNode *m = first_el(ms); m; m = next_el(m)) {
        if (!is_el(m, "member"))
            continue;
        xmlNode *nm = child_el(m, "name");
        xmlChar *val = scalar(child_el(m, "value"));
        if (!nm || !val) { /* nested structure: not a string map entry */
            xmlFree(val);
            continue;
        }
        if (dst->n >= SP_XVA_MAP_MAX) {
            xmlFree(val);
            return perr(p, SP_ELIMIT, "%s: %s has more than %d entries", what, field, SP_XVA_MAP_MAX);
        }
        xmlChar *key = xmlNodeGetContent(nm);
        struct sp_xva_kv *items = realloc(dst->items, (size_t)(dst->n + 1) * sizeof *items);
        char *k = key ? strdup((const char *)key) : NULL;
        char *v = strdup((const char *)val);
        xmlFree(key);
        xmlFree(val);
        if (!items || !k || !v) {
            if (items)
                dst->items = items;
            free(k);
            free(v);
            return perr(p, SP_ENOMEM, "out of memory");
        }
        dst->items = items;
        dst->items[dst->n].key = k;
        dst->items[dst->n].value = v;
        dst->n++;
    }
    return SP_OK;
}

/* An object of the objects array: its class, id and snapshot struct. */
struct obj {
    char cls[32];
    char id[SP_XVA_ID_MAX + 1];
    bool id_ok;            /* id fits and is valid */
    xmlNode *rec;          /* the snapshot <struct> */
};

struct objs {
    struct obj *v;
    int n;
};

static int collect(struct pctx *p, xmlNode *objects, struct objs *out)
{
    int cap = 0;
    for (xmlNode *o = array_first(objects); o; o = array_next(o)) {
        xmlNode *st = v_struct(o);
        if (!st)
            continue;
        struct obj ob;
        memset(&ob, 0, sizeof ob);
        char idbuf[256] = "";
        bool has_cls, has_id;
        if (get_str(p, st, "class", "object", ob.cls, sizeof ob.cls, false, &has_cls) ||
            get_str(p, st, "id", "object", idbuf, sizeof idbuf, false, &has_id))
            return p->rc;
        ob.rec = v_struct(member(st, "snapshot"));
        if (!has_cls || !ob.rec)
            continue; /* not an object we can use */
        ob.id_ok = has_id && valid_id(idbuf); /* valid ids fit ob.id; others are cut for messages */
        snprintf(ob.id, sizeof ob.id, "%s", idbuf);
        if (out->n == cap) {
            cap = cap ? 2 * cap : 64;
            struct obj *v = realloc(out->v, (size_t)cap * sizeof *v);
            if (!v)
                return perr(p, SP_ENOMEM, "out of memory");
            out->v = v;
        }
        out->v[out->n++] = ob;
    }
    return SP_OK;
}

static struct obj *find_obj(struct objs *all, const char *cls, const char *id)
{
    for (int i = 0; i < all->n; i++)
        if (strcasecmp(all->v[i].cls, cls) == 0 && strcmp(all->v[i].id, id) == 0)
            return &all->v[i];
    return NULL;
}

static int need_id(struct pctx *p, const struct obj *o)
{
    if (!o->id_ok)
        return perr(p, SP_EFORMAT, "%s id '%s' is not usable as a tar folder name", o->cls, o->id);
    return SP_OK;
}

/* Which VM: the first one that is neither a template nor a control domain nor
 * a snapshot; else the first non-template; else the first VM. */
static struct obj *pick_vm(struct pctx *p, struct objs *all)
{
    struct obj *best = NULL;
    int best_rank = 99;
    for (int i = 0; i < all->n; i++) {
        struct obj *o = &all->v[i];
        if (strcmp(o->cls, "VM") != 0)
            continue;
        bool tmpl = false, snap = false, dom0 = false;
        if (get_bool(p, o->rec, "is_a_template", "VM", &tmpl, false) ||
            get_bool(p, o->rec, "is_a_snapshot", "VM", &snap, false) ||
            get_bool(p, o->rec, "is_control_domain", "VM", &dom0, false))
            return NULL;
        int rank = tmpl || dom0 ? 2 : snap ? 1 : 0;
        if (rank < best_rank) {
            best = o;
            best_rank = rank;
        }
    }
    return best;
}

static int parse_vm(struct pctx *p, struct obj *o, struct sp_xva_vm *vm)
{
    char what[64];
    xmlNode *r = o->rec;
    bool have_smax, have_dmax, have_dmin, have_smin, have_vmax, have_vstart, have_policy;
    bool suspend_long;
    char policy[64] = "", domain_type[16] = "", power[32] = "";

    if (need_id(p, o))
        return p->rc;
    snprintf(vm->id, sizeof vm->id, "%s", o->id);
    snprintf(what, sizeof what, "VM %s", o->id);
    if (get_str(p, r, "uuid", what, vm->uuid, sizeof vm->uuid, true, NULL) ||
        get_str(p, r, "name_label", what, vm->name, sizeof vm->name, false, NULL) ||
        get_str(p, r, "name_description", what, vm->description, sizeof vm->description, false, NULL) ||
        get_str(p, r, "HVM_boot_policy", what, policy, sizeof policy, false, &have_policy) ||
        get_str(p, r, "domain_type", what, domain_type, sizeof domain_type, false, NULL) ||
        get_str(p, r, "PV_bootloader", what, vm->pv_bootloader, sizeof vm->pv_bootloader, false, NULL) ||
        get_str(p, r, "PV_args", what, vm->pv_args, sizeof vm->pv_args, false, NULL) ||
        get_str(p, r, "power_state", what, power, sizeof power, false, NULL) ||
        get_ref(p, r, "suspend_VDI", what, vm->suspend_vdi_id, &suspend_long) ||
        get_str(p, r, "snapshot_time", what, vm->snapshot_time, sizeof vm->snapshot_time, true, NULL) ||
        get_bool(p, r, "is_a_snapshot", what, &vm->is_a_snapshot, false) ||
        get_bool(p, r, "is_a_template", what, &vm->is_a_template, false) ||
        get_u64(p, r, "memory_static_max", what, &vm->memory_static_max, &have_smax) ||
        get_u64(p, r, "memory_dynamic_max", what, &vm->memory_dynamic_max, &have_dmax) ||
        get_u64(p, r, "memory_dynamic_min", what, &vm->memory_dynamic_min, &have_dmin) ||
        get_u64(p, r, "memory_static_min", what, &vm->memory_static_min, &have_smin) ||
        get_u64(p, r, "VCPUs_max", what, &vm->vcpus_max, &have_vmax) ||
        get_u64(p, r, "VCPUs_at_startup", what, &vm->vcpus_at_startup, &have_vstart) ||
        get_map(p, r, "platform", what, &vm->platform) ||
        get_map(p, r, "other_config", what, &vm->other_config))
        return p->rc;

    vm->hvm = have_policy ? policy[0] != '\0' : strcasecmp(domain_type, "hvm") == 0;
    xmlNode *bp = v_struct(member(r, "HVM_boot_params"));
    if (bp && (get_str(p, bp, "order", what, vm->boot_order, sizeof vm->boot_order, false, NULL) ||
               get_str(p, bp, "firmware", what, vm->firmware, sizeof vm->firmware, false, NULL)))
        return p->rc;
    if (strcmp(vm->snapshot_time, XVA_EPOCH) == 0)
        vm->snapshot_time[0] = '\0';
    vm->suspended = strcasecmp(power, "Suspended") == 0 && (vm->suspend_vdi_id[0] || suspend_long);
    if (vm->suspended && suspend_long)
        return perr(p, SP_EFORMAT, "%s: suspend_VDI is not the id of an object in the file", what);
    if (!vm->suspended)
        vm->suspend_vdi_id[0] = '\0';

    /* XAPI requires all four; minimal writers give one: fill down from max */
    if (!have_smax)
        return perr(p, SP_EFORMAT, "%s: memory_static_max missing", what);
    if (vm->memory_static_max == 0)
        return perr(p, SP_EFORMAT, "%s: memory_static_max is 0", what);
    if (!have_dmax)
        vm->memory_dynamic_max = vm->memory_static_max;
    if (!have_dmin)
        vm->memory_dynamic_min = vm->memory_dynamic_max;
    if (!have_smin)
        vm->memory_static_min = vm->memory_dynamic_min;
    if (!have_vmax && !have_vstart)
        return perr(p, SP_EFORMAT, "%s: VCPUs_max missing", what);
    if (!have_vmax)
        vm->vcpus_max = vm->vcpus_at_startup;
    if (!have_vstart)
        vm->vcpus_at_startup = vm->vcpus_max;
    if (vm->vcpus_at_startup == 0 || vm->vcpus_at_startup > vm->vcpus_max)
        return perr(p, SP_EFORMAT, "%s: VCPUs_at_startup %" PRIu64 " not in 1..VCPUs_max %" PRIu64, what,
                    vm->vcpus_at_startup, vm->vcpus_max);
    return SP_OK;
}

/* A VBD belongs to the VM if its VM field says so, or (field missing or
 * null) if the VM's VBDs list names it. */
static bool in_ref_list(xmlNode *rec, const char *field, const char *id)
{
    for (xmlNode *v = array_first(member(rec, field)); v; v = array_next(v)) {
        xmlChar *s = scalar(v);
        bool hit = s && strcmp((const char *)s, id) == 0;
        xmlFree(s);
        if (hit)
            return true;
    }
    return false;
}

/* A VBD or VIF belongs to the VM when its VM field names it, or, with that
 * field null, when the VM's list (VBDs/VIFs) names it. */
static int owned_by_vm(struct pctx *p, struct obj *o, struct obj *vmo, const char *vm_id, const char *list,
                       bool *mine)
{
    char vmref[SP_XVA_ID_MAX + 16] = "";
    if (get_str(p, o->rec, "VM", o->cls, vmref, sizeof vmref, false, NULL))
        return -1;
    *mine = strcmp(vmref, vm_id) == 0 || (is_null_ref(vmref) && o->id_ok && in_ref_list(vmo->rec, list, o->id));
    return 0;
}

/* One more zeroed element at the end of *arr (n in use), within the limit. */
static int grow_one(struct pctx *p, void **arr, int n, size_t size, const char *vm_id, const char *what)
{
    if (n >= SP_XVA_DEVICES_MAX) {
        perr(p, SP_ELIMIT, "VM %s has more than %d %s", vm_id, SP_XVA_DEVICES_MAX, what);
        return -1;
    }
    void *bigger = realloc(*arr, (size_t)(n + 1) * size);
    if (!bigger) {
        perr(p, SP_ENOMEM, "out of memory");
        return -1;
    }
    memset((char *)bigger + (size_t)n * size, 0, size);
    *arr = bigger;
    return 0;
}

static int parse_vbd(struct pctx *p, struct obj *o, struct sp_xva_vbd *b)
{
    char what[64], mode[16] = "RW", type[16] = "Disk";
    xmlNode *r = o->rec;
    snprintf(what, sizeof what, "VBD %s", o->id);
    if (need_id(p, o))
        return p->rc;
    snprintf(b->id, sizeof b->id, "%s", o->id);
    bool vdi_long;
    if (get_ref(p, r, "VDI", what, b->vdi_id, &vdi_long) ||
        get_str(p, r, "userdevice", what, b->userdevice, sizeof b->userdevice, true, NULL) ||
        get_str(p, r, "device", what, b->device, sizeof b->device, true, NULL) ||
        get_str(p, r, "mode", what, mode, sizeof mode, false, NULL) ||
        get_str(p, r, "type", what, type, sizeof type, false, NULL) ||
        get_bool(p, r, "bootable", what, &b->bootable, false) ||
        get_bool(p, r, "empty", what, &b->empty, false))
        return p->rc;
    b->read_only = strcasecmp(mode, "RO") == 0;
    b->cd = strcasecmp(type, "Disk") != 0; /* CD and Floppy: nothing streamed */
    if (vdi_long && !b->cd)
        return perr(p, SP_EFORMAT, "%s: VDI is not the id of an object in the file", what);
    return SP_OK;
}

static int parse_vdi(struct pctx *p, struct obj *o, struct sp_xva_vdi *d)
{
    char what[64];
    bool have_size;
    xmlNode *r = o->rec;
    snprintf(what, sizeof what, "VDI %s", o->id);
    if (need_id(p, o))
        return p->rc;
    snprintf(d->id, sizeof d->id, "%s", o->id);
    snprintf(d->type, sizeof d->type, "user");
    if (get_str(p, r, "uuid", what, d->uuid, sizeof d->uuid, true, NULL) ||
        get_str(p, r, "name_label", what, d->name, sizeof d->name, false, NULL) ||
        get_str(p, r, "name_description", what, d->description, sizeof d->description, false, NULL) ||
        get_str(p, r, "type", what, d->type, sizeof d->type, true, NULL) ||
        get_u64(p, r, "virtual_size", what, &d->virtual_size, &have_size) ||
        get_u64(p, r, "physical_utilisation", what, &d->physical_utilisation, NULL) ||
        get_bool(p, r, "read_only", what, &d->read_only, false) ||
        get_map(p, r, "other_config", what, &d->other_config))
        return p->rc;
    for (char *c = d->type; *c; c++) /* enums: XAPI "user", XO may differ in case */
        *c = (char)tolower((unsigned char)*c);
    if (!have_size)
        return perr(p, SP_EFORMAT, "%s: virtual_size missing", what);
    if (d->virtual_size > SP_XVA_VDI_MAX)
        return perr(p, SP_EFORMAT, "%s: virtual_size %" PRIu64 " is over 64 TiB", what, d->virtual_size);
    return SP_OK;
}

static int parse_vif(struct pctx *p, struct obj *o, struct sp_xva_vif *v)
{
    char what[64];
    bool have_mtu;
    xmlNode *r = o->rec;
    snprintf(what, sizeof what, "VIF %s", o->id);
    if (need_id(p, o))
        return p->rc;
    snprintf(v->id, sizeof v->id, "%s", o->id);
    bool net_long; /* an unexported network: the importer picks one */
    if (get_ref(p, r, "network", what, v->network_id, &net_long) ||
        get_str(p, r, "device", what, v->device, sizeof v->device, true, NULL) ||
        get_str(p, r, "MAC", what, v->mac, sizeof v->mac, true, NULL) ||
        get_u64(p, r, "MTU", what, &v->mtu, &have_mtu))
        return p->rc;
    if (!have_mtu)
        v->mtu = XVA_DEFAULT_MTU;
    struct sp_xva_map other = {0};
    if (get_map(p, r, "other_config", what, &other)) {
        map_free(&other);
        return p->rc;
    }
    for (int i = 0; i < other.n; i++)
        if (strcmp(other.items[i].key, SP_XVA_VIF_MODEL_KEY) == 0)
            snprintf(v->model, sizeof v->model, "%s", other.items[i].value);
    map_free(&other);
    return SP_OK;
}

static int parse_network(struct pctx *p, struct obj *o, struct sp_xva_network *n)
{
    char what[64];
    snprintf(what, sizeof what, "network %s", o->id);
    if (need_id(p, o))
        return p->rc;
    snprintf(n->id, sizeof n->id, "%s", o->id);
    if (get_str(p, o->rec, "name_label", what, n->name, sizeof n->name, false, NULL) ||
        get_str(p, o->rec, "bridge", what, n->bridge, sizeof n->bridge, false, NULL))
        return p->rc;
    return SP_OK;
}

static int cmp_vdi(const void *a, const void *b)
{
    return strcmp(((const struct sp_xva_vdi *)a)->id, ((const struct sp_xva_vdi *)b)->id);
}

/* Adds the VDI with this id (once) to meta->vdis. */
static int add_vdi(struct pctx *p, struct objs *all, const char *by, const char *id, struct sp_xva_meta *meta)
{
    if (sp_xva_find_vdi(meta, id))
        return SP_OK;
    struct obj *o = find_obj(all, "VDI", id);
    if (!o)
        return perr(p, SP_EFORMAT, "%s points at VDI '%s', which is not in the file", by, id);
    struct sp_xva_vdi *v = realloc(meta->vdis, (size_t)(meta->nvdis + 1) * sizeof *v);
    if (!v)
        return perr(p, SP_ENOMEM, "out of memory");
    meta->vdis = v;
    memset(&v[meta->nvdis], 0, sizeof *v);
    meta->nvdis++; /* counted before parsing so that free sees its map */
    return parse_vdi(p, o, &v[meta->nvdis - 1]);
}

/* A CD's VDI is streamed only when snapport wrote it so (its record marked
 * SP_XVA_CD_IMAGE_KEY); XAPI's exports leave ISOs out. */
static int cd_image_vdi(struct pctx *p, struct objs *all, const char *by, const char *id, struct sp_xva_meta *meta)
{
    if (!id[0] || sp_xva_find_vdi(meta, id) || !find_obj(all, "VDI", id))
        return SP_OK;
    if (add_vdi(p, all, by, id, meta))
        return p->rc;
    struct sp_xva_vdi *v = &meta->vdis[meta->nvdis - 1];
    for (int i = 0; i < v->other_config.n; i++)
        if (strcmp(v->other_config.items[i].key, SP_XVA_CD_IMAGE_KEY) == 0)
            return SP_OK;
    map_free(&v->other_config);
    meta->nvdis--;
    return SP_OK;
}

static int parse_tree(struct pctx *p, xmlDoc *doc, struct sp_xva_meta *meta)
{
    struct objs all = {0};
    xmlNode *root = xmlDocGetRootElement(doc);
    xmlNode *top = is_el(root, "value") ? v_struct(root) : NULL;
    if (!top) {
        perr(p, SP_EFORMAT, "the document is not an XML-RPC <value><struct>");
        goto out;
    }
    xmlNode *version = v_struct(member(top, "version"));
    if (version && get_str(p, version, "date", "version", meta->export_date, sizeof meta->export_date, false, NULL))
        goto out;
    xmlNode *objects = member(top, "objects");
    if (!objects || !child_el(objects, "array")) {
        perr(p, SP_EFORMAT, "no objects array");
        goto out;
    }
    if (collect(p, objects, &all))
        goto out;

    struct obj *vmo = pick_vm(p, &all);
    if (p->rc)
        goto out;
    if (!vmo) {
        perr(p, SP_EFORMAT, "no VM object");
        goto out;
    }
    if (parse_vm(p, vmo, &meta->vm))
        goto out;

    for (int i = 0; i < all.n; i++) {
        struct obj *o = &all.v[i];
        if (strcmp(o->cls, "VBD") != 0)
            continue;
        bool mine = false;
        if (owned_by_vm(p, o, vmo, meta->vm.id, "VBDs", &mine))
            goto out;
        if (!mine)
            continue;
        if (grow_one(p, (void **)&meta->vbds, meta->nvbds, sizeof *meta->vbds, meta->vm.id, "VBDs"))
            goto out;
        if (parse_vbd(p, o, &meta->vbds[meta->nvbds]))
            goto out;
        meta->nvbds++;
    }

    for (int i = 0; i < meta->nvbds; i++) {
        struct sp_xva_vbd *b = &meta->vbds[i];
        char by[64];
        snprintf(by, sizeof by, "VBD %s", b->id);
        if (b->cd) { /* an ISO is not streamed (vdi_id may name a VDI not in the file), but ours */
            if (cd_image_vdi(p, &all, by, b->vdi_id, meta))
                goto out;
            continue;
        }
        if (!b->vdi_id[0]) {
            if (b->empty)
                continue;
            perr(p, SP_EFORMAT, "%s: a disk without a VDI", by);
            goto out;
        }
        if (add_vdi(p, &all, by, b->vdi_id, meta))
            goto out;
    }
    if (meta->vm.suspended) {
        char by[64];
        snprintf(by, sizeof by, "VM %s suspend_VDI", meta->vm.id);
        if (add_vdi(p, &all, by, meta->vm.suspend_vdi_id, meta))
            goto out;
    }
    if (meta->nvdis > 1)
        qsort(meta->vdis, (size_t)meta->nvdis, sizeof *meta->vdis, cmp_vdi);

    for (int i = 0; i < all.n; i++) {
        struct obj *o = &all.v[i];
        if (strcmp(o->cls, "VIF") != 0)
            continue;
        bool mine = false;
        if (owned_by_vm(p, o, vmo, meta->vm.id, "VIFs", &mine))
            goto out;
        if (!mine)
            continue;
        if (grow_one(p, (void **)&meta->vifs, meta->nvifs, sizeof *meta->vifs, meta->vm.id, "VIFs"))
            goto out;
        struct sp_xva_vif *v = meta->vifs;
        if (parse_vif(p, o, &v[meta->nvifs]))
            goto out;
        meta->nvifs++;
        const char *nid = v[meta->nvifs - 1].network_id;
        struct obj *no = nid[0] ? find_obj(&all, "network", nid) : NULL;
        if (!no || sp_xva_find_network(meta, nid))
            continue; /* a VIF on an unexported network: the importer picks one */
        struct sp_xva_network *n = realloc(meta->networks, (size_t)(meta->nnetworks + 1) * sizeof *n);
        if (!n) {
            perr(p, SP_ENOMEM, "out of memory");
            goto out;
        }
        meta->networks = n;
        memset(&n[meta->nnetworks], 0, sizeof *n);
        if (parse_network(p, no, &n[meta->nnetworks]))
            goto out;
        meta->nnetworks++;
    }
out:
    free(all.v);
    return p->rc;
}

int sp_xva_xml_parse(const char *text, size_t len, struct sp_xva_meta *meta, struct sp_error *err)
{
    struct pctx p = {err, SP_OK};
    xmlDoc *doc = NULL;

    memset(meta, 0, sizeof *meta);
    if (sp_xml_parse_safe(text, len, SP_XVA_XML_MAX, "ova.xml", &doc, err) != SP_OK)
        return err->code;
    parse_tree(&p, doc, meta);
    xmlFreeDoc(doc);
    if (p.rc)
        sp_xva_meta_free(meta);
    return p.rc;
}
