/* The OVF descriptor (reference/ova.md section 2). Writing goes through
 * xmlTextWriter in the element order dsp8023 demands; reading through
 * libxml2's tree parser with the network off, entities not substituted, no
 * external DTD, and any DOCTYPE refused outright (billion laughs, XXE), as
 * archive/xva_xml.c does. Elements and attributes are matched by local
 * name, so 0.9, 1.x, 2.x, prefixed or default namespaces all read. */
#include "archive/ovf.h"

#include <ctype.h>
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

#define NS_OVF1 "http://schemas.dmtf.org/ovf/envelope/1"
#define NS_OVF2 "http://schemas.dmtf.org/ovf/envelope/2"
#define NS_RASD "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
#define NS_VSSD "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
#define NS_VMW "http://www.vmware.com/schema/ovf"
#define NS_XSI "http://www.w3.org/2001/XMLSchema-instance"
#define NS_SP "http://snapport.example/ovf/1"
#define NS_XENOVF "http://schemas.citrix.com/ovf/envelope/1"

/* CIM ResourceType values (ova.md section 2) */
#define RT_CPU 3
#define RT_MEMORY 4
#define RT_IDE 5
#define RT_SCSI 6
#define RT_ETHERNET 10
#define RT_CD 15
#define RT_DVD 16
#define RT_DISK 17
#define RT_XEN_DISK 19 /* XenCenter's "Storage Extent" */
#define RT_OTHER_STORAGE 20

#define MIB (1ull << 20)
#define HREF_MAX 255
#define NIC_FIRST_ADDRESS 7 /* VMware numbers NICs from 7 (the SCSI HBA's unit) */
#define IDE_SLOTS 2          /* units per IDE controller */
#define IDE_CONTROLLERS 2

static const char *const ctl_name[] = {"IDE", "SCSI", "SATA", "NVMe"};

/* ------------------------------------------------------------------------ */
/* shared helpers                                                            */

void sp_ovf_free(struct sp_ovf_system *sys)
{
    if (!sys)
        return;
    free(sys->files);
    free(sys->disks);
    free(sys->nics);
    free(sys->xen_extra);
    memset(sys, 0, sizeof *sys);
}

const struct sp_ovf_file *sp_ovf_find_file(const struct sp_ovf_system *sys, const char *id)
{
    for (int i = 0; id && i < sys->nfiles; i++)
        if (strcmp(sys->files[i].id, id) == 0)
            return &sys->files[i];
    return NULL;
}

/* A member name inside the OVA: no folder, no "..", not absolute, short. */
static bool valid_href(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > HREF_MAX || strchr(s, '/') || strchr(s, '\\') || strstr(s, ".."))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20)
            return false;
    return true;
}

/* ------------------------------------------------------------------------ */
/* writer                                                                    */

#define W SP_XML_W

static void el_start(struct sp_xml_wr *c, const char *name) { W(c, xmlTextWriterStartElement(c->w, BAD_CAST name)); }
static void el_end(struct sp_xml_wr *c) { W(c, xmlTextWriterFullEndElement(c->w)); }

static void at(struct sp_xml_wr *c, const char *name, const char *v)
{
    W(c, xmlTextWriterWriteAttribute(c->w, BAD_CAST name, BAD_CAST sp_xml_clean(c, v)));
}

static void at_u64(struct sp_xml_wr *c, const char *name, uint64_t v)
{
    char b[32];
    snprintf(b, sizeof b, "%" PRIu64, v);
    at(c, name, b);
}

static void el_text(struct sp_xml_wr *c, const char *name, const char *text)
{
    el_start(c, name);
    if (*text)
        W(c, xmlTextWriterWriteString(c->w, BAD_CAST sp_xml_clean(c, text)));
    el_end(c);
}

static void el_u64(struct sp_xml_wr *c, const char *name, uint64_t v)
{
    char b[32];
    snprintf(b, sizeof b, "%" PRIu64, v);
    el_text(c, name, b);
}

static void info(struct sp_xml_wr *c, const char *text) { el_text(c, "Info", text); }

/* Number of controllers of each kind the disks (and the CD) need. */
struct layout {
    int nctl[4];
    int first_iid[4];    /* InstanceID of controller 0 of each kind */
    int cd_ctl, cd_addr; /* IDE controller index and unit of the CD */
};

static int plan(const struct sp_ovf_system *sys, struct layout *l, struct sp_error *err)
{
    memset(l, 0, sizeof *l);
    for (int i = 0; i < sys->ndisks; i++) {
        const struct sp_ovf_disk *d = &sys->disks[i];
        if ((int)d->controller < 0 || d->controller > SP_OVF_NVME || d->controller_index < 0 ||
            d->controller_index >= SP_OVF_MAX_ITEMS || d->address < 0)
            return sp_error_set(err, SP_EINVAL, "ovf: disk %s has no valid controller position", d->disk_id);
        if (d->controller_index + 1 > l->nctl[d->controller])
            l->nctl[d->controller] = d->controller_index + 1;
    }
    l->cd_ctl = -1;
    if (sys->cdrom) {
        /* the first free IDE unit */
        for (int k = 0; k < IDE_CONTROLLERS * IDE_SLOTS && l->cd_ctl < 0; k++) {
            bool used = false;
            for (int i = 0; i < sys->ndisks; i++)
                used |= sys->disks[i].controller == SP_OVF_IDE &&
                        sys->disks[i].controller_index == k / IDE_SLOTS && sys->disks[i].address == k % IDE_SLOTS;
            if (!used) {
                l->cd_ctl = k / IDE_SLOTS;
                l->cd_addr = k % IDE_SLOTS;
            }
        }
        if (l->cd_ctl < 0)
            return sp_error_set(err, SP_EINVAL, "ovf: no free IDE unit for the CD drive");
        if (l->cd_ctl + 1 > l->nctl[SP_OVF_IDE])
            l->nctl[SP_OVF_IDE] = l->cd_ctl + 1;
    }
    return SP_OK;
}

static int check_model(const struct sp_ovf_system *sys, struct sp_error *err)
{
    if (sys->nfiles < 0 || sys->ndisks < 0 || sys->nnics < 0 ||
        sys->nfiles + sys->ndisks + sys->nnics > SP_OVF_MAX_ITEMS)
        return sp_error_set(err, SP_ELIMIT, "ovf: too many files, disks or NICs");
    for (int i = 0; i < sys->nfiles; i++) {
        if (!valid_href(sys->files[i].href))
            return sp_error_set(err, SP_EINVAL, "ovf: file href \"%s\" is not a plain member name",
                                sys->files[i].href);
        if (!sys->files[i].id[0])
            return sp_error_set(err, SP_EINVAL, "ovf: file %s has no id", sys->files[i].href);
    }
    for (int i = 0; i < sys->ndisks; i++) {
        const struct sp_ovf_disk *d = &sys->disks[i];
        if (!d->disk_id[0])
            return sp_error_set(err, SP_EINVAL, "ovf: disk %d has no id", i);
        if (d->file_id[0] && !sp_ovf_find_file(sys, d->file_id))
            return sp_error_set(err, SP_EINVAL, "ovf: disk %s refers to missing file %s", d->disk_id, d->file_id);
    }
    return SP_OK;
}

static void item_begin(struct sp_xml_wr *c) { el_start(c, "Item"); }

static void rasd_i(struct sp_xml_wr *c, const char *name, uint64_t v)
{
    char b[64];
    snprintf(b, sizeof b, "rasd:%s", name);
    el_u64(c, b, v);
}

static void rasd_s(struct sp_xml_wr *c, const char *name, const char *v)
{
    char b[64];
    snprintf(b, sizeof b, "rasd:%s", name);
    el_text(c, b, v);
}

static void write_hardware(struct sp_xml_wr *c, const struct sp_ovf_system *sys, struct layout *l)
{
    char b[300];
    int iid = 1;
    const char *family = "vmx-07"; /* ESX 4+, XenCenter knows it (ova.md) */
    if (l->nctl[SP_OVF_NVME])
        family = "vmx-13";
    else if (l->nctl[SP_OVF_SATA])
        family = "vmx-10";

    el_start(c, "VirtualHardwareSection");
    info(c, "Virtual hardware requirements");
    el_start(c, "System");
    el_text(c, "vssd:ElementName", "Virtual Hardware Family");
    el_text(c, "vssd:InstanceID", "0");
    el_text(c, "vssd:VirtualSystemIdentifier", sys->name);
    el_text(c, "vssd:VirtualSystemType", family);
    el_end(c);

    item_begin(c);
    rasd_s(c, "AllocationUnits", "hertz * 10^6");
    rasd_s(c, "Description", "Number of Virtual CPUs");
    snprintf(b, sizeof b, "%" PRIu64 " virtual CPU(s)", sys->vcpus);
    rasd_s(c, "ElementName", b);
    rasd_i(c, "InstanceID", (uint64_t)iid++);
    rasd_i(c, "ResourceType", RT_CPU);
    rasd_i(c, "VirtualQuantity", sys->vcpus);
    el_end(c);

    item_begin(c);
    rasd_s(c, "AllocationUnits", "byte * 2^20");
    rasd_s(c, "Description", "Memory Size");
    snprintf(b, sizeof b, "%" PRIu64 "MB of memory", sys->memory_mb);
    rasd_s(c, "ElementName", b);
    rasd_i(c, "InstanceID", (uint64_t)iid++);
    rasd_i(c, "ResourceType", RT_MEMORY);
    rasd_i(c, "VirtualQuantity", sys->memory_mb);
    el_end(c);

    for (int k = SP_OVF_IDE; k <= SP_OVF_NVME; k++) {
        l->first_iid[k] = iid;
        for (int j = 0; j < l->nctl[k]; j++) {
            item_begin(c);
            rasd_i(c, "Address", (uint64_t)j);
            snprintf(b, sizeof b, "%s Controller", ctl_name[k]);
            rasd_s(c, "Description", b);
            snprintf(b, sizeof b, "%s Controller %d", ctl_name[k], j);
            rasd_s(c, "ElementName", b);
            rasd_i(c, "InstanceID", (uint64_t)iid++);
            if (k == SP_OVF_SCSI)
                rasd_s(c, "ResourceSubType", "lsilogic");
            else if (k == SP_OVF_SATA)
                rasd_s(c, "ResourceSubType", "vmware.sata.ahci");
            else if (k == SP_OVF_NVME)
                rasd_s(c, "ResourceSubType", "vmware.nvme.controller");
            rasd_i(c, "ResourceType", k == SP_OVF_IDE ? RT_IDE : k == SP_OVF_SCSI ? RT_SCSI : RT_OTHER_STORAGE);
            el_end(c);
        }
    }

    for (int i = 0; i < sys->ndisks; i++) {
        const struct sp_ovf_disk *d = &sys->disks[i];
        item_begin(c);
        rasd_i(c, "AddressOnParent", (uint64_t)d->address);
        rasd_s(c, "Description", "Hard disk");
        snprintf(b, sizeof b, "Hard Disk %d", i + 1);
        rasd_s(c, "ElementName", b);
        snprintf(b, sizeof b, "ovf:/disk/%s", d->disk_id);
        rasd_s(c, "HostResource", b);
        rasd_i(c, "InstanceID", (uint64_t)iid++);
        rasd_i(c, "Parent", (uint64_t)(l->first_iid[d->controller] + d->controller_index));
        rasd_i(c, "ResourceType", RT_DISK);
        el_end(c);
    }

    if (sys->cdrom) {
        item_begin(c);
        rasd_i(c, "AddressOnParent", (uint64_t)l->cd_addr);
        rasd_s(c, "AutomaticAllocation", "false");
        rasd_s(c, "Description", "CD-ROM drive");
        rasd_s(c, "ElementName", "CD-ROM 1");
        rasd_i(c, "InstanceID", (uint64_t)iid++);
        rasd_i(c, "Parent", (uint64_t)(l->first_iid[SP_OVF_IDE] + l->cd_ctl));
        rasd_i(c, "ResourceType", RT_CD);
        el_end(c);
    }

    for (int i = 0; i < sys->nnics; i++) {
        const struct sp_ovf_nic *n = &sys->nics[i];
        item_begin(c);
        if (n->mac[0])
            rasd_s(c, "Address", n->mac);
        rasd_i(c, "AddressOnParent", (uint64_t)(NIC_FIRST_ADDRESS + i));
        rasd_s(c, "AutomaticAllocation", "true");
        rasd_s(c, "Connection", n->network);
        snprintf(b, sizeof b, "%s ethernet adapter on \"%s\"", n->model[0] ? n->model : "Default", n->network);
        rasd_s(c, "Description", b);
        snprintf(b, sizeof b, "Network adapter %d", i + 1);
        rasd_s(c, "ElementName", b);
        rasd_i(c, "InstanceID", (uint64_t)iid++);
        if (n->model[0])
            rasd_s(c, "ResourceSubType", n->model);
        rasd_i(c, "ResourceType", RT_ETHERNET);
        el_end(c);
    }
    if (sys->firmware[0]) { /* VMware's form, which VirtualBox and virt-v2v read too */
        el_start(c, "vmw:Config");
        at(c, "ovf:required", "false");
        at(c, "vmw:key", "firmware");
        at(c, "vmw:value", sys->firmware);
        el_end(c);
    }
    for (int i = 0; i < sys->nxen_config; i++) { /* XenCenter's form of XAPI's VM fields */
        el_start(c, "xenovf:VirtualSystemOtherConfigurationData");
        at(c, "ovf:required", "false");
        at(c, "Name", sys->xen_config[i].name);
        el_text(c, "xenovf:Value", sys->xen_config[i].value);
        el_end(c);
    }
    el_end(c); /* VirtualHardwareSection */
}

/* snapport's own section: what a Xen VM record has beyond OVF's. */
static void write_ours(struct sp_xml_wr *c, const struct sp_ovf_system *sys)
{
    bool nics = false;
    for (int i = 0; i < sys->nnics; i++)
        nics = nics || sys->nics[i].xen_given;
    if (!sys->xen_type[0] && !sys->xen_boot[0] && !sys->xen_vdevs[0] && !sys->xen_bios[0] && !nics &&
        !(sys->xen_extra && *sys->xen_extra))
        return;
    el_start(c, "sp:XenSection");
    at(c, "ovf:required", "false");
    info(c, "Xen settings that OVF has no words for (snapport)");
    if (sys->xen_type[0])
        el_text(c, "sp:Type", sys->xen_type);
    if (sys->xen_boot[0])
        el_text(c, "sp:Boot", sys->xen_boot);
    if (sys->xen_bios[0])
        el_text(c, "sp:Bios", sys->xen_bios);
    if (sys->xen_vdevs[0])
        el_text(c, "sp:Vdevs", sys->xen_vdevs);
    for (int i = 0; nics && i < sys->nnics; i++) {
        el_start(c, "sp:Nic");
        at(c, "sp:bridge", sys->nics[i].xen_bridge);
        at(c, "sp:model", sys->nics[i].xen_model);
        el_end(c);
    }
    if (sys->xen_extra && *sys->xen_extra)
        el_text(c, "sp:Extra", sys->xen_extra);
    el_end(c);
}

static bool seen_network(const struct sp_ovf_system *sys, int upto, const char *name)
{
    for (int i = 0; i < upto; i++)
        if (strcmp(sys->nics[i].network, name) == 0)
            return true;
    return false;
}

static void write_envelope(struct sp_xml_wr *c, const struct sp_ovf_system *sys, struct layout *l)
{
    bool v2 = sys->version == SP_OVF_2;
    el_start(c, "Envelope");
    at(c, "ovf:version", v2 ? "2.0" : "1.0");
    at(c, "xmlns", v2 ? NS_OVF2 : NS_OVF1);
    at(c, "xmlns:ovf", v2 ? NS_OVF2 : NS_OVF1);
    at(c, "xmlns:rasd", NS_RASD);
    at(c, "xmlns:vssd", NS_VSSD);
    at(c, "xmlns:vmw", NS_VMW);
    at(c, "xmlns:xsi", NS_XSI);
    at(c, "xmlns:sp", NS_SP);
    if (sys->nxen_config)
        at(c, "xmlns:xenovf", NS_XENOVF);

    el_start(c, "References");
    for (int i = 0; i < sys->nfiles; i++) {
        const struct sp_ovf_file *f = &sys->files[i];
        el_start(c, "File");
        if (f->compression[0])
            at(c, "ovf:compression", f->compression);
        at(c, "ovf:href", f->href);
        at(c, "ovf:id", f->id);
        if (f->size)
            at_u64(c, "ovf:size", f->size);
        el_end(c);
    }
    el_end(c);

    el_start(c, "DiskSection");
    info(c, "Virtual disk information");
    for (int i = 0; i < sys->ndisks; i++) {
        const struct sp_ovf_disk *d = &sys->disks[i];
        el_start(c, "Disk");
        at_u64(c, "ovf:capacity", d->capacity);
        at(c, "ovf:capacityAllocationUnits", "byte");
        at(c, "ovf:diskId", d->disk_id);
        if (d->file_id[0])
            at(c, "ovf:fileRef", d->file_id);
        at(c, "ovf:format",
           d->format[0] ? d->format : "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized");
        if (d->populated_size)
            at_u64(c, "ovf:populatedSize", d->populated_size);
        el_end(c);
    }
    el_end(c);

    if (sys->nnics) {
        el_start(c, "NetworkSection");
        info(c, "The list of logical networks");
        for (int i = 0; i < sys->nnics; i++) {
            if (seen_network(sys, i, sys->nics[i].network))
                continue;
            el_start(c, "Network");
            at(c, "ovf:name", sys->nics[i].network);
            char b[200];
            snprintf(b, sizeof b, "The %s network", sys->nics[i].network);
            el_text(c, "Description", b);
            el_end(c);
        }
        el_end(c);
    }

    el_start(c, "VirtualSystem");
    at(c, "ovf:id", sys->id[0] ? sys->id : sys->name);
    info(c, "A virtual machine");
    el_text(c, "Name", sys->name);
    if (sys->description[0]) {
        el_start(c, "AnnotationSection");
        at(c, "ovf:required", "false");
        info(c, "A human-readable annotation");
        el_text(c, "Annotation", sys->description);
        el_end(c);
    }
    el_start(c, "OperatingSystemSection");
    at_u64(c, "ovf:id", (uint64_t)(sys->os_id < 0 ? 0 : sys->os_id));
    if (sys->os_type[0])
        at(c, "vmw:osType", sys->os_type);
    info(c, "The kind of installed guest operating system");
    if (sys->os_description[0])
        el_text(c, "Description", sys->os_description);
    el_end(c);
    write_hardware(c, sys, l);
    write_ours(c, sys);
    el_end(c); /* VirtualSystem */
    el_end(c); /* Envelope */
}

int sp_ovf_write(const struct sp_ovf_system *sys, char **out, size_t *len, struct sp_error *err)
{
    int rc;
    struct sp_xml_wr c;
    struct layout l;

    *out = NULL;
    *len = 0;
    if ((rc = check_model(sys, err)) || (rc = plan(sys, &l, err)))
        return rc;
    if ((rc = sp_xml_wr_open(&c, "ovf", err)) != SP_OK)
        return rc;
    W(&c, xmlTextWriterSetIndent(c.w, 1));
    W(&c, xmlTextWriterSetIndentString(c.w, BAD_CAST "  "));
    W(&c, xmlTextWriterStartDocument(c.w, "1.0", "UTF-8", NULL));
    write_envelope(&c, sys, &l);
    return sp_xml_wr_finish(&c, "ovf", out, len, err);
}

/* ------------------------------------------------------------------------ */
/* parser                                                                    */

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
        p->rc = sp_error_set(p->err, code, "ovf: %s", msg);
    return p->rc;
}

static bool is_elem(const xmlNode *n) { return n && n->type == XML_ELEMENT_NODE; }

static xmlNode *first_el(xmlNode *n)
{
    for (xmlNode *k = n ? n->children : NULL; k; k = k->next)
        if (is_elem(k))
            return k;
    return NULL;
}

static xmlNode *next_el(xmlNode *n)
{
    for (xmlNode *k = n ? n->next : NULL; k; k = k->next)
        if (is_elem(k))
            return k;
    return NULL;
}

/* Copies s trimmed of blanks into dst. Returns false when it does not fit. */
static bool put_trim(char *dst, size_t cap, const char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n >= cap) {
        dst[0] = '\0';
        return false;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
    return true;
}

/* Cuts s to fit cap at a UTF-8 boundary (names, descriptions). */
static void put_cut(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n >= cap) {
        n = cap - 1;
        while (n && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* An attribute by local name, whatever its namespace; NULL when absent. */
static const xmlChar *attr_raw(xmlNode *n, const char *local)
{
    for (xmlAttr *a = n->properties; a; a = a->next)
        if (xmlStrcmp(a->name, BAD_CAST local) == 0) {
            if (a->children && a->children->type == XML_TEXT_NODE && !a->children->next)
                return a->children->content ? a->children->content : BAD_CAST "";
            return BAD_CAST "";
        }
    return NULL;
}

/* 1 present, 0 absent, error when too long. */
static int attr(struct pctx *p, xmlNode *n, const char *local, char *dst, size_t cap)
{
    const xmlChar *v = attr_raw(n, local);
    dst[0] = '\0';
    if (!v)
        return 0;
    if (!put_trim(dst, cap, (const char *)v))
        return perr(p, SP_EFORMAT, "%s/@%s is too long", (const char *)n->name, local), -1;
    return 1;
}

static bool name_is(const xmlNode *n, const char *local) { return xmlStrcmp(n->name, BAD_CAST local) == 0; }

/* What a section is: its local name, or for oVirt/0.9's <Section
 * xsi:type="ovf:DiskSection_Type"> / <Content xsi:type=...> the type
 * without prefix and "_Type". */
static void section_kind(xmlNode *n, char *out, size_t cap)
{
    const xmlChar *t = (name_is(n, "Section") || name_is(n, "Content")) ? attr_raw(n, "type") : NULL;
    if (!t) {
        snprintf(out, cap, "%s", (const char *)n->name);
        return;
    }
    const char *s = strchr((const char *)t, ':');
    put_trim(out, cap, s ? s + 1 : (const char *)t);
    size_t len = strlen(out);
    if (len > 5 && strcmp(out + len - 5, "_Type") == 0)
        out[len - 5] = '\0';
}

static bool required(xmlNode *n)
{
    const xmlChar *r = attr_raw(n, "required");
    return r && (xmlStrcmp(r, BAD_CAST "true") == 0 || xmlStrcmp(r, BAD_CAST "1") == 0);
}

static int unknown_section(struct pctx *p, xmlNode *n, const char *kind)
{
    /* A descriptor that requires what we cannot honour does not describe a
     * VM we can make: for verify it is as unusable as a damaged one. */
    if (required(n))
        return perr(p, SP_EFORMAT, "required section %s is not understood", kind);
    return SP_OK;
}

/* A child's text by local name into dst; 1 present, 0 absent. */
static int child_text(struct pctx *p, xmlNode *n, const char *local, char *dst, size_t cap)
{
    dst[0] = '\0';
    for (xmlNode *k = first_el(n); k; k = next_el(k)) {
        if (!name_is(k, local))
            continue;
        xmlChar *s = xmlNodeGetContent(k);
        bool ok = put_trim(dst, cap, s ? (const char *)s : "");
        xmlFree(s);
        if (!ok)
            return perr(p, SP_EFORMAT, "%s/%s is too long", (const char *)n->name, local), -1;
        return 1;
    }
    return 0;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!*s || !isdigit((unsigned char)*s))
        return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s))
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Allocation units as a byte multiplier: "byte", "byte * 2^N", "bytes",
 * "KiloBytes"/"KB", "MegaBytes"/"MB", "GigaBytes"/"GB", "TeraBytes"/"TB"
 * (powers of 1024, as the producers mean them). dflt when empty. */
static bool units_mult(const char *u, uint64_t dflt, uint64_t *mult)
{
    char s[64];
    size_t o = 0;
    for (const char *q = u; *q && o + 1 < sizeof s; q++)
        if (!isspace((unsigned char)*q))
            s[o++] = (char)tolower((unsigned char)*q);
    s[o] = '\0';
    if (!*s) {
        *mult = dflt;
        return true;
    }
    static const struct {
        const char *name;
        int shift;
    } named[] = {{"byte", 0},       {"bytes", 0},     {"kilobytes", 10}, {"kb", 10}, {"megabytes", 20},
                 {"mb", 20},        {"gigabytes", 30}, {"gb", 30},       {"terabytes", 40}, {"tb", 40}};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        if (strcmp(s, named[i].name) == 0) {
            *mult = 1ull << named[i].shift;
            return true;
        }
    const char *r = NULL;
    if (strncmp(s, "byte*2^", 7) == 0)
        r = s + 7;
    else if (strncmp(s, "bytes*2^", 8) == 0)
        r = s + 8;
    uint64_t e;
    if (!r || !parse_u64(r, &e) || e > 62)
        return false;
    *mult = 1ull << e;
    return true;
}

static bool mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    if (a && b > UINT64_MAX / a)
        return false;
    *out = a * b;
    return true;
}

/* "00:50:56:AB:CD:EF", "00-50-56-ab-cd-ef" or "005056abcdef" -> lowercase with colons. */
static bool norm_mac(const char *s, char out[18])
{
    int nd = 0;
    char hex[12];
    for (; *s; s++) {
        if (*s == ':' || *s == '-')
            continue;
        if (!isxdigit((unsigned char)*s) || nd >= 12)
            return false;
        hex[nd++] = (char)tolower((unsigned char)*s);
    }
    if (nd != 12)
        return false;
    for (int i = 0; i < 6; i++) {
        out[i * 3] = hex[i * 2];
        out[i * 3 + 1] = hex[i * 2 + 1];
        out[i * 3 + 2] = i < 5 ? ':' : '\0';
    }
    return true;
}

/* One hardware item, its fields as text. */
struct item {
    char iid[64];
    char type[16];
    char subtype[64];
    char parent[64];
    char host[320];
    char conn[160];
    char addr[64];
    char aop[32];
    char vq[32];
    char units[64];
    int rtype;
    int order;
};

struct xen_nic {              /* one sp:Nic of our section */
    char bridge[64];
    char model[32];
};

struct parse {
    struct pctx *p;
    struct sp_ovf_system *sys;
    struct item *items;
    int nitems;
    struct xen_nic *xen_nics;
    int nxen_nics;
};

static int grow(struct pctx *p, void **arr, int n, size_t size, const char *what)
{
    if (n >= SP_OVF_MAX_ITEMS)
        return perr(p, SP_ELIMIT, "more than %d %s", SP_OVF_MAX_ITEMS, what);
    void *a = realloc(*arr, (size_t)(n + 1) * size);
    if (!a)
        return perr(p, SP_ENOMEM, "out of memory");
    memset((char *)a + (size_t)n * size, 0, size);
    *arr = a;
    return SP_OK;
}

static int parse_references(struct parse *ps, xmlNode *sec)
{
    struct pctx *p = ps->p;
    struct sp_ovf_system *sys = ps->sys;
    for (xmlNode *k = first_el(sec); k; k = next_el(k)) {
        if (!name_is(k, "File"))
            continue;
        if (grow(p, (void **)&sys->files, sys->nfiles, sizeof *sys->files, "files"))
            return p->rc;
        struct sp_ovf_file *f = &sys->files[sys->nfiles++];
        char b[32];
        if (attr(p, k, "id", f->id, sizeof f->id) <= 0)
            return perr(p, SP_EFORMAT, "a File has no ovf:id");
        const xmlChar *href = attr_raw(k, "href");
        if (!href)
            return perr(p, SP_EFORMAT, "file %s has no ovf:href", f->id);
        if (!valid_href((const char *)href))
            return perr(p, SP_EFORMAT, "file %s: href \"%.300s\" is not a plain member name (no '/', '..', "
                                       "absolute path, at most %d bytes)",
                        f->id, (const char *)href, HREF_MAX);
        snprintf(f->href, sizeof f->href, "%s", (const char *)href);
        int r = attr(p, k, "size", b, sizeof b);
        if (r < 0)
            return p->rc;
        if (r && !parse_u64(b, &f->size))
            return perr(p, SP_EFORMAT, "file %s: bad ovf:size \"%s\"", f->id, b);
        if (attr(p, k, "compression", f->compression, sizeof f->compression) < 0)
            return p->rc;
        if (sp_ovf_find_file(sys, f->id) != f)
            return perr(p, SP_EFORMAT, "file id %s appears twice", f->id);
    }
    return SP_OK;
}

static int find_disk(const struct sp_ovf_system *sys, const char *id)
{
    for (int i = 0; i < sys->ndisks; i++)
        if (strcmp(sys->disks[i].disk_id, id) == 0)
            return i;
    return -1;
}

static int parse_disks(struct parse *ps, xmlNode *sec)
{
    struct pctx *p = ps->p;
    struct sp_ovf_system *sys = ps->sys;
    for (xmlNode *k = first_el(sec); k; k = next_el(k)) {
        if (!name_is(k, "Disk"))
            continue;
        if (grow(p, (void **)&sys->disks, sys->ndisks, sizeof *sys->disks, "disks"))
            return p->rc;
        struct sp_ovf_disk *d = &sys->disks[sys->ndisks++];
        d->controller_index = -1;
        d->address = -1;
        char cap[32], units[64], pop[32];
        if (attr(p, k, "diskId", d->disk_id, sizeof d->disk_id) <= 0)
            return p->rc ? p->rc : perr(p, SP_EFORMAT, "a Disk has no ovf:diskId");
        if (find_disk(sys, d->disk_id) != sys->ndisks - 1)
            return perr(p, SP_EFORMAT, "disk id %s appears twice", d->disk_id);
        if (attr(p, k, "fileRef", d->file_id, sizeof d->file_id) < 0 ||
            attr(p, k, "format", d->format, sizeof d->format) < 0 || attr(p, k, "capacity", cap, sizeof cap) < 0 ||
            attr(p, k, "capacityAllocationUnits", units, sizeof units) < 0 ||
            attr(p, k, "populatedSize", pop, sizeof pop) < 0)
            return p->rc;
        if (d->file_id[0] && !sp_ovf_find_file(sys, d->file_id))
            return perr(p, SP_EFORMAT, "disk %s refers to missing file %s", d->disk_id, d->file_id);
        uint64_t c, m;
        if (!parse_u64(cap, &c))
            return perr(p, SP_EFORMAT, "disk %s: bad ovf:capacity \"%s\"", d->disk_id, cap);
        if (!units_mult(units, 1, &m))
            return perr(p, SP_EFORMAT, "disk %s: unknown capacityAllocationUnits \"%s\"", d->disk_id, units);
        if (!mul_ok(c, m, &d->capacity))
            return perr(p, SP_EFORMAT, "disk %s: capacity overflows", d->disk_id);
        if (pop[0] && !parse_u64(pop, &d->populated_size))
            return perr(p, SP_EFORMAT, "disk %s: bad ovf:populatedSize \"%s\"", d->disk_id, pop);
    }
    return SP_OK;
}

static int parse_item(struct parse *ps, xmlNode *n)
{
    struct pctx *p = ps->p;
    if (ps->nitems >= SP_OVF_MAX_ITEMS)
        return perr(p, SP_ELIMIT, "more than %d hardware items", SP_OVF_MAX_ITEMS);
    struct item *it = &ps->items[ps->nitems];
    memset(it, 0, sizeof *it);
    it->order = ps->nitems;
    if (child_text(p, n, "InstanceID", it->iid, sizeof it->iid) < 0 ||
        (!it->iid[0] && child_text(p, n, "InstanceId", it->iid, sizeof it->iid) < 0) ||
        child_text(p, n, "ResourceType", it->type, sizeof it->type) < 0 ||
        child_text(p, n, "ResourceSubType", it->subtype, sizeof it->subtype) < 0 ||
        child_text(p, n, "Parent", it->parent, sizeof it->parent) < 0 ||
        child_text(p, n, "HostResource", it->host, sizeof it->host) < 0 ||
        child_text(p, n, "Connection", it->conn, sizeof it->conn) < 0 ||
        child_text(p, n, "Address", it->addr, sizeof it->addr) < 0 ||
        child_text(p, n, "AddressOnParent", it->aop, sizeof it->aop) < 0 ||
        child_text(p, n, "VirtualQuantity", it->vq, sizeof it->vq) < 0 ||
        child_text(p, n, "AllocationUnits", it->units, sizeof it->units) < 0)
        return p->rc;
    uint64_t t;
    if (!parse_u64(it->type, &t) || t > 0xffff)
        return perr(p, SP_EFORMAT, "hardware item %s: bad ResourceType \"%s\"", it->iid, it->type);
    it->rtype = (int)t;
    if (it->iid[0])
        for (int i = 0; i < ps->nitems; i++)
            if (strcmp(ps->items[i].iid, it->iid) == 0)
                return perr(p, SP_EFORMAT, "InstanceID %s appears twice", it->iid);
    ps->nitems++;
    return SP_OK;
}

static int parse_xen_nic(struct parse *ps, xmlNode *k)
{
    struct pctx *p = ps->p;
    if (grow(p, (void **)&ps->xen_nics, ps->nxen_nics, sizeof *ps->xen_nics, "NICs"))
        return p->rc;
    struct xen_nic *n = &ps->xen_nics[ps->nxen_nics++];
    if (attr(p, k, "bridge", n->bridge, sizeof n->bridge) < 0 || attr(p, k, "model", n->model, sizeof n->model) < 0)
        return p->rc;
    return SP_OK;
}

static int parse_xen(struct parse *ps, xmlNode *sec)
{
    struct pctx *p = ps->p;
    struct sp_ovf_system *sys = ps->sys;
    if (child_text(p, sec, "Type", sys->xen_type, sizeof sys->xen_type) < 0 ||
        child_text(p, sec, "Boot", sys->xen_boot, sizeof sys->xen_boot) < 0 ||
        child_text(p, sec, "Bios", sys->xen_bios, sizeof sys->xen_bios) < 0 ||
        child_text(p, sec, "Vdevs", sys->xen_vdevs, sizeof sys->xen_vdevs) < 0)
        return p->rc;
    for (xmlNode *k = first_el(sec); k; k = next_el(k))
        if (name_is(k, "Nic") && parse_xen_nic(ps, k))
            return p->rc;
    for (xmlNode *k = first_el(sec); k; k = next_el(k))
        if (name_is(k, "Extra")) {
            xmlChar *s = xmlNodeGetContent(k);
            free(sys->xen_extra);
            sys->xen_extra = strdup(s ? (const char *)s : "");
            xmlFree(s);
            if (!sys->xen_extra)
                return perr(p, SP_ENOMEM, "out of memory");
        }
    return SP_OK;
}

/* VMware's <vmw:Config vmw:key="firmware" vmw:value="efi"/>; other keys
 * (there are many) are VMware's own business. */
static void parse_vmw_config(struct parse *ps, xmlNode *h)
{
    const xmlChar *key = attr_raw(h, "key"), *value = attr_raw(h, "value");
    if (!key || !value || xmlStrcmp(key, BAD_CAST "firmware") != 0)
        return;
    if (!xmlStrcasecmp(value, BAD_CAST "efi"))
        snprintf(ps->sys->firmware, sizeof ps->sys->firmware, "efi");
    else if (!xmlStrcasecmp(value, BAD_CAST "bios"))
        snprintf(ps->sys->firmware, sizeof ps->sys->firmware, "bios");
}

/* VirtualBox's <vbox:Machine>...<Hardware><Firmware type="EFI"/>: EFI,
 * EFI32, EFI64 and EFIDUAL are UEFI, BIOS is BIOS. Looked for a few levels
 * down, not through the whole machine. */
static void vbox_firmware(struct sp_ovf_system *sys, xmlNode *n, int depth)
{
    for (xmlNode *k = first_el(n); k && depth < 3; k = next_el(k)) {
        if (name_is(k, "Firmware")) {
            const xmlChar *t = attr_raw(k, "type");
            if (t && !xmlStrncasecmp(t, BAD_CAST "EFI", 3))
                snprintf(sys->firmware, sizeof sys->firmware, "efi");
            else if (t && !xmlStrcasecmp(t, BAD_CAST "BIOS"))
                snprintf(sys->firmware, sizeof sys->firmware, "bios");
            return;
        }
        vbox_firmware(sys, k, depth + 1);
    }
}

/* XenCenter's <xenovf:VirtualSystemOtherConfigurationData Name="platform">
 * <xenovf:Value>nx=true;acpi=1</xenovf:Value>; values longer than we keep
 * are cut (they are hints, not the VM). */
static int parse_xen_config(struct parse *ps, xmlNode *h)
{
    struct sp_ovf_system *sys = ps->sys;
    const xmlChar *name = attr_raw(h, "Name");
    if (!name || sys->nxen_config >= SP_OVF_XEN_CONFIG_MAX)
        return SP_OK;
    struct sp_ovf_xen_config *x = &sys->xen_config[sys->nxen_config++];
    put_cut(x->name, sizeof x->name, (const char *)name);
    x->value[0] = '\0';
    for (xmlNode *k = first_el(h); k; k = next_el(k))
        if (name_is(k, "Value")) {
            xmlChar *s = xmlNodeGetContent(k);
            put_cut(x->value, sizeof x->value, s ? (const char *)s : "");
            xmlFree(s);
        }
    return SP_OK;
}

const char *sp_ovf_xen_config(const struct sp_ovf_system *sys, const char *name)
{
    for (int i = 0; i < sys->nxen_config; i++)
        if (strcmp(sys->xen_config[i].name, name) == 0)
            return sys->xen_config[i].value;
    return NULL;
}

static bool is_our_ns(xmlNode *n) { return n->ns && n->ns->href && xmlStrcmp(n->ns->href, BAD_CAST NS_SP) == 0; }

static int parse_vs(struct parse *ps, xmlNode *vs)
{
    struct pctx *p = ps->p;
    struct sp_ovf_system *sys = ps->sys;
    char kind[128], b[32];
    const xmlChar *id = attr_raw(vs, "id");
    if (id)
        put_cut(sys->id, sizeof sys->id, (const char *)id);
    for (xmlNode *k = first_el(vs); k; k = next_el(k)) {
        section_kind(k, kind, sizeof kind);
        if (strcmp(kind, "Info") == 0) {
            continue;
        } else if (strcmp(kind, "Name") == 0) {
            xmlChar *s = xmlNodeGetContent(k);
            put_cut(sys->name, sizeof sys->name, s ? (const char *)s : "");
            xmlFree(s);
        } else if (strcmp(kind, "AnnotationSection") == 0) {
            for (xmlNode *a = first_el(k); a; a = next_el(a))
                if (name_is(a, "Annotation")) {
                    xmlChar *s = xmlNodeGetContent(a);
                    put_cut(sys->description, sizeof sys->description, s ? (const char *)s : "");
                    xmlFree(s);
                }
        } else if (strcmp(kind, "OperatingSystemSection") == 0) {
            uint64_t v;
            int r = attr(p, k, "id", b, sizeof b);
            if (r < 0)
                return p->rc;
            if (r && (!parse_u64(b, &v) || v > 0xffff))
                return perr(p, SP_EFORMAT, "OperatingSystemSection: bad ovf:id \"%s\"", b);
            sys->os_id = r ? (int)v : 0;
            const xmlChar *t = attr_raw(k, "osType");
            if (t)
                put_cut(sys->os_type, sizeof sys->os_type, (const char *)t);
            for (xmlNode *d = first_el(k); d; d = next_el(d))
                if (name_is(d, "Description")) {
                    xmlChar *s = xmlNodeGetContent(d);
                    put_cut(sys->os_description, sizeof sys->os_description, s ? (const char *)s : "");
                    xmlFree(s);
                }
        } else if (strcmp(kind, "VirtualHardwareSection") == 0) {
            for (xmlNode *h = first_el(k); h; h = next_el(h)) {
                if (name_is(h, "Item") || name_is(h, "StorageItem") || name_is(h, "EthernetPortItem")) {
                    if (parse_item(ps, h))
                        return p->rc;
                } else if (name_is(h, "Config")) {
                    parse_vmw_config(ps, h);
                } else if (name_is(h, "VirtualSystemOtherConfigurationData")) {
                    if (parse_xen_config(ps, h))
                        return p->rc;
                } else if (name_is(h, "System")) {
                    char vsi[256];
                    if (child_text(p, h, "VirtualSystemIdentifier", vsi, sizeof vsi) < 0)
                        return p->rc;
                    if (!sys->name[0])
                        snprintf(sys->name, sizeof sys->name, "%s", vsi);
                }
            }
        } else if (is_our_ns(k) && strcmp(kind, "XenSection") == 0) {
            if (parse_xen(ps, k))
                return p->rc;
        } else if (strcmp(kind, "Machine") == 0 && !required(k)) {
            vbox_firmware(sys, k, 0); /* VirtualBox's own settings, optional */
        } else if (strcmp(kind, "ProductSection") == 0 || strcmp(kind, "EulaSection") == 0 ||
                   strcmp(kind, "StartupSection") == 0 || strcmp(kind, "InstallSection") == 0) {
            continue; /* understood well enough: nothing we import */
        } else if (unknown_section(p, k, kind)) {
            return p->rc;
        }
    }
    return SP_OK;
}

static const struct item *find_item(const struct parse *ps, const char *iid)
{
    for (int i = 0; iid[0] && i < ps->nitems; i++)
        if (strcmp(ps->items[i].iid, iid) == 0)
            return &ps->items[i];
    return NULL;
}

static bool has_nvme(const char *s)
{
    for (; *s; s++)
        if (strncasecmp(s, "nvme", 4) == 0)
            return true;
    return false;
}

static int ctl_kind(const struct item *c)
{
    switch (c->rtype) {
    case RT_IDE:
        return SP_OVF_IDE;
    case RT_SCSI:
        return SP_OVF_SCSI;
    case RT_OTHER_STORAGE:
        return has_nvme(c->subtype) ? SP_OVF_NVME : SP_OVF_SATA;
    default:
        return -1;
    }
}

/* A controller's index among those of its kind: its Address when numeric
 * (IDE 0/1, SCSI bus), else its rank in document order. */
static int ctl_index(const struct parse *ps, const struct item *c)
{
    uint64_t v;
    if (parse_u64(c->addr, &v) && v < SP_OVF_MAX_ITEMS)
        return (int)v;
    int k = ctl_kind(c), n = 0;
    for (int i = 0; i < ps->nitems && &ps->items[i] != c; i++)
        n += ctl_kind(&ps->items[i]) == k;
    return n;
}

/* "ovf:/disk/x", "ovf://disk/x", "/disk/x"; oVirt's "group/image" ends in the disk id. */
static const char *host_disk(const char *h)
{
    static const char *const pre[] = {"ovf:/disk/", "ovf://disk/", "/disk/"};
    for (size_t i = 0; i < sizeof pre / sizeof pre[0]; i++)
        if (strncmp(h, pre[i], strlen(pre[i])) == 0)
            return h + strlen(pre[i]);
    const char *s = strrchr(h, '/');
    return s ? s + 1 : h;
}

struct placed {
    int disk; /* index in sys->disks */
    int kind, index, address, order;
};

static int cmp_placed(const void *a, const void *b)
{
    const struct placed *x = a, *y = b;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    if (x->index != y->index)
        return x->index < y->index ? -1 : 1;
    if (x->address != y->address)
        return x->address < y->address ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int resolve(struct parse *ps)
{
    struct pctx *p = ps->p;
    struct sp_ovf_system *sys = ps->sys;
    struct placed *pl = NULL;
    int npl = 0;
    bool *used = NULL;

    if (sys->ndisks) {
        pl = calloc((size_t)sys->ndisks, sizeof *pl);
        used = calloc((size_t)sys->ndisks, sizeof *used);
        if (!pl || !used) {
            perr(p, SP_ENOMEM, "out of memory");
            goto out;
        }
    }
    for (int i = 0; i < ps->nitems; i++) {
        const struct item *it = &ps->items[i];
        uint64_t v, m;
        switch (it->rtype) {
        case RT_CPU:
            if (!parse_u64(it->vq, &sys->vcpus) || sys->vcpus == 0 || sys->vcpus > 0xffff) {
                perr(p, SP_EFORMAT, "CPU item %s: bad VirtualQuantity \"%s\"", it->iid, it->vq);
                goto out;
            }
            break;
        case RT_MEMORY:
            if (!parse_u64(it->vq, &v)) {
                perr(p, SP_EFORMAT, "memory item %s: bad VirtualQuantity \"%s\"", it->iid, it->vq);
                goto out;
            }
            if (!units_mult(it->units, MIB, &m)) {
                perr(p, SP_EFORMAT, "memory item %s: unknown AllocationUnits \"%s\"", it->iid, it->units);
                goto out;
            }
            if (!mul_ok(v, m, &v)) {
                perr(p, SP_EFORMAT, "memory item %s: size overflows", it->iid);
                goto out;
            }
            sys->memory_mb = v / MIB;
            break;
        case RT_CD:
        case RT_DVD:
            sys->cdrom = true;
            break;
        case RT_ETHERNET: {
            if (grow(p, (void **)&sys->nics, sys->nnics, sizeof *sys->nics, "NICs"))
                goto out;
            struct sp_ovf_nic *n = &sys->nics[sys->nnics++];
            if (!put_trim(n->network, sizeof n->network, it->conn) ||
                !put_trim(n->model, sizeof n->model, it->subtype)) {
                perr(p, SP_EFORMAT, "NIC item %s: Connection or ResourceSubType too long", it->iid);
                goto out;
            }
            if (it->addr[0] && !norm_mac(it->addr, n->mac)) {
                perr(p, SP_EFORMAT, "NIC item %s: bad MAC address \"%s\"", it->iid, it->addr);
                goto out;
            }
            break;
        }
        case RT_DISK:
        case RT_XEN_DISK: {
            const char *id = it->host[0] ? host_disk(it->host) : it->rtype == RT_XEN_DISK ? it->iid : "";
            int d = find_disk(sys, id);
            if (d < 0) {
                if (it->rtype == RT_XEN_DISK && !it->host[0])
                    break; /* a XenCenter extent that is not a disk of ours */
                perr(p, SP_EFORMAT, "disk item %s: HostResource \"%s\" names no Disk", it->iid, it->host);
                goto out;
            }
            if (used[d]) {
                perr(p, SP_EFORMAT, "disk %s is attached twice", sys->disks[d].disk_id);
                goto out;
            }
            used[d] = true;
            struct placed *q = &pl[npl++];
            q->disk = d;
            q->order = i;
            q->kind = SP_OVF_IDE;
            q->index = 0;
            if (it->parent[0]) {
                const struct item *c = find_item(ps, it->parent);
                if (!c || ctl_kind(c) < 0) {
                    perr(p, SP_EFORMAT, "disk item %s: Parent %s is not a disk controller", it->iid, it->parent);
                    goto out;
                }
                q->kind = ctl_kind(c);
                q->index = ctl_index(ps, c);
            }
            if (it->aop[0]) {
                if (!parse_u64(it->aop, &v) || v > 0xffff) {
                    perr(p, SP_EFORMAT, "disk item %s: bad AddressOnParent \"%s\"", it->iid, it->aop);
                    goto out;
                }
                q->address = (int)v;
            } else {
                q->address = 0xffff; /* after the placed ones, in document order */
            }
            break;
        }
        default:
            break;
        }
    }
    /* the attached disks in the order the VM sees them, then the others */
    if (npl > 1) /* qsort wants a valid pointer even for no elements */
        qsort(pl, (size_t)npl, sizeof *pl, cmp_placed);
    if (sys->ndisks) {
        struct sp_ovf_disk *nd = calloc((size_t)sys->ndisks, sizeof *nd);
        if (!nd) {
            perr(p, SP_ENOMEM, "out of memory");
            goto out;
        }
        int o = 0;
        for (int i = 0; i < npl; i++) {
            nd[o] = sys->disks[pl[i].disk];
            nd[o].controller = (enum sp_ovf_controller)pl[i].kind;
            nd[o].controller_index = pl[i].index;
            nd[o].address = pl[i].address == 0xffff ? -1 : pl[i].address;
            o++;
        }
        for (int i = 0; i < sys->ndisks; i++)
            if (!used[i])
                nd[o++] = sys->disks[i];
        free(sys->disks);
        sys->disks = nd;
    }
out:
    free(pl);
    free(used);
    return p->rc;
}

static int parse_tree(struct pctx *p, xmlDoc *doc, struct sp_ovf_system *sys)
{
    struct parse ps = {p, sys, NULL, 0, NULL, 0};
    char kind[128];
    xmlNode *root = xmlDocGetRootElement(doc);
    xmlNode *vs = NULL;

    if (!root || !name_is(root, "Envelope"))
        return perr(p, SP_EFORMAT, "the root element is not an OVF Envelope");
    sys->version = root->ns && root->ns->href && xmlStrstr(root->ns->href, BAD_CAST "ovf/envelope/2") ? SP_OVF_2
                                                                                                   : SP_OVF_1;
    ps.items = calloc(SP_OVF_MAX_ITEMS, sizeof *ps.items);
    if (!ps.items)
        return perr(p, SP_ENOMEM, "out of memory");
    /* References first: disks refer to files, whatever the document order */
    for (xmlNode *k = first_el(root); k; k = next_el(k))
        if (name_is(k, "References") && parse_references(&ps, k))
            goto out;
    for (xmlNode *k = first_el(root); k; k = next_el(k)) {
        section_kind(k, kind, sizeof kind);
        if (strcmp(kind, "References") == 0 || strcmp(kind, "NetworkSection") == 0 || strcmp(kind, "Info") == 0 ||
            strcmp(kind, "Strings") == 0 || strcmp(kind, "AnnotationSection") == 0)
            continue;
        if (strcmp(kind, "DiskSection") == 0) {
            if (parse_disks(&ps, k))
                goto out;
        } else if (strcmp(kind, "VirtualSystem") == 0) {
            if (!vs)
                vs = k;
        } else if (strcmp(kind, "VirtualSystemCollection") == 0) {
            for (xmlNode *c = first_el(k); c && !vs; c = next_el(c)) {
                section_kind(c, kind, sizeof kind);
                if (strcmp(kind, "VirtualSystem") == 0)
                    vs = c;
            }
        } else if (unknown_section(p, k, kind)) {
            goto out;
        }
    }
    if (!vs) {
        perr(p, SP_EFORMAT, "no VirtualSystem");
        goto out;
    }
    if (parse_vs(&ps, vs) || resolve(&ps))
        goto out;
    for (int i = 0; i < ps.nxen_nics && i < sys->nnics; i++) {
        sys->nics[i].xen_given = true;
        memcpy(sys->nics[i].xen_bridge, ps.xen_nics[i].bridge, sizeof sys->nics[i].xen_bridge);
        memcpy(sys->nics[i].xen_model, ps.xen_nics[i].model, sizeof sys->nics[i].xen_model);
    }
out:
    free(ps.items);
    free(ps.xen_nics);
    return p->rc;
}

int sp_ovf_parse(const char *text, size_t len, struct sp_ovf_system *sys, struct sp_error *err)
{
    struct pctx p = {err, SP_OK};
    xmlDoc *doc = NULL;

    memset(sys, 0, sizeof *sys);
    if (sp_xml_parse_safe(text, len, SP_OVF_MAX, "ovf", &doc, err) != SP_OK)
        return err->code;
    parse_tree(&p, doc, sys);
    xmlFreeDoc(doc);
    if (p.rc)
        sp_ovf_free(sys);
    return p.rc;
}
