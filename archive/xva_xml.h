/* ova.xml, the first member of an XVA: XAPI's XML-RPC-style dump of the VM
 * record and the objects it refers to (reference/xva.md section 2). This
 * module is the model and its XML (libxml2, network and entities off); the
 * block stream is xva_stream.c, the mapping to and from the store is
 * exporter/ and importer/. */
#ifndef SP_XVA_XML_H
#define SP_XVA_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "archive/xva_stream.h"
#include "base/error.h"

/* The VM other_config key that carries the xl.cfg statements snapport does
 * not interpret, so that an XVA made by snapport imports back whole. */
#define SP_XVA_XL_EXTRA_KEY "snapport:xl-extra"

/* The VDI other_config key that marks a CD's image snapport streams (XAPI
 * leaves ISOs out of its exports; a CD VBD's VDI is streamed only when its
 * record carries this key). */
#define SP_XVA_CD_IMAGE_KEY "snapport:cd-image"

/* The VIF other_config key that carries xl's NIC model (XAPI has none). */
#define SP_XVA_VIF_MODEL_KEY "snapport:model"

/* ova.xml larger than this is not a VM description. */
#define SP_XVA_XML_MAX (16u << 20)

/* Object ids ("Ref:<n>", or any name sp_xva_id_valid takes) are shorter
 * than SP_XVA_ID_MAX (archive/xva_stream.h): a VDI's id is the tar folder of
 * its blocks. */
/* A VDI larger than this (64 TiB, below the 8-digit block counter's 95 TiB)
 * is not a disk we take. */
#define SP_XVA_VDI_MAX (64ull << 40)
/* More VBDs or VIFs than this on one VM is not a VM description. */
#define SP_XVA_DEVICES_MAX 256
/* Entries of one string map (platform, other_config ...). */
#define SP_XVA_MAP_MAX 4096

struct sp_xva_kv {           /* one entry of a string map (platform, other_config ...) */
    char *key;
    char *value;
};

struct sp_xva_map {
    struct sp_xva_kv *items;
    int n;
};

struct sp_xva_vdi {
    char id[SP_XVA_ID_MAX];             /* "Ref:<n>" or another safe name: the tar folder of its blocks */
    char uuid[37];
    char name[256];
    char description[256];
    uint64_t virtual_size;   /* exact bytes the block stream carries */
    uint64_t physical_utilisation;
    char type[16];           /* "user", "system", "suspend" */
    bool read_only;
    struct sp_xva_map other_config;
};

struct sp_xva_vbd {
    char id[SP_XVA_ID_MAX];
    char vdi_id[SP_XVA_ID_MAX];         /* "" (parsed OpaqueRef:NULL) for an empty CD; a CD's
                                           ISO VDI is not streamed, so not in meta->vdis */
    char userdevice[8];      /* "0", "1", ... (disk order) */
    char device[16];         /* xvda, hda ... (may be "") */
    bool bootable;
    bool read_only;          /* mode RO */
    bool cd;                 /* type CD */
    bool empty;
};

struct sp_xva_vif {
    char id[SP_XVA_ID_MAX];
    char network_id[SP_XVA_ID_MAX];
    char device[8];          /* "0", "1" ... */
    char mac[18];
    uint64_t mtu;
    char model[32];          /* xl's NIC model, in other_config under SP_XVA_VIF_MODEL_KEY; "" none */
};

struct sp_xva_network {
    char id[SP_XVA_ID_MAX];
    char name[256];
    char bridge[64];
};

struct sp_xva_vm {
    char id[SP_XVA_ID_MAX];
    char uuid[37];
    char name[256];
    char description[1024];
    bool hvm;                /* HVM_boot_policy "BIOS order" vs "" (PV) */
    char boot_order[16];     /* HVM_boot_params.order, e.g. "cd" (written "cd" if "" and HVM) */
    char firmware[16];       /* HVM_boot_params.firmware: "uefi", "bios" or "" (XAPI: BIOS) */
    char pv_bootloader[64];  /* written "pygrub" if "" and PV */
    char pv_args[1024];
    uint64_t memory_static_max, memory_dynamic_max, memory_dynamic_min, memory_static_min; /* bytes */
    uint64_t vcpus_max, vcpus_at_startup;
    bool suspended;          /* power_state Suspended, with suspend_vdi_id */
    char suspend_vdi_id[SP_XVA_ID_MAX];
    bool is_a_snapshot;
    bool is_a_template;      /* parse only; written false */
    char snapshot_time[32];  /* dateTime.iso8601, e.g. 20261129T02:22:58Z; "" if none */
    struct sp_xva_map platform;
    struct sp_xva_map other_config;
};

struct sp_xva_meta {
    struct sp_xva_vm vm;
    struct sp_xva_vbd *vbds;
    int nvbds;
    struct sp_xva_vdi *vdis;     /* the streamed ones (disk VBDs', suspend VDI), in stream
                                    order: ids sorted by strcmp */
    int nvdis;
    struct sp_xva_vif *vifs;
    int nvifs;
    struct sp_xva_network *networks;
    int nnetworks;
    char export_date[32];        /* version.date: from the snapshot, not the clock */
};

/* The ova.xml text (malloc'd, NUL-terminated; len excludes the NUL) for meta.
 * Deterministic: same meta, same bytes (uuids of VBD/VIF/SR/network are
 * derived from the VM uuid and the id). Refuses (SP_EINVAL) a meta that does
 * not hold together: bad or duplicate ids, a VBD/VIF/suspend_VDI pointing at
 * a VDI/network not in meta, vCPUs/memory 0. Control characters and invalid
 * UTF-8 in strings are dropped/replaced, as XML cannot carry them. */
int sp_xva_xml_write(const struct sp_xva_meta *meta, char **out, size_t *len, struct sp_error *err);

/* Parses ova.xml as XAPI, Xen Orchestra and xva-img users write it. Checks
 * what an import relies on: one VM, its VBDs pointing at VDIs that exist,
 * sizes present. Errors start with "ova.xml: ". The VM is the first that is
 * not a template/control domain/snapshot (else the first non-template, else
 * the first VM); VBDs/VIFs are those whose VM field names it. A DOCTYPE is
 * refused. meta is filled on success, zeroed (nothing to free) on error;
 * release it with sp_xva_meta_free. */
int sp_xva_xml_parse(const char *text, size_t len, struct sp_xva_meta *meta, struct sp_error *err);

void sp_xva_meta_free(struct sp_xva_meta *meta);

/* Finds a VDI by its id, or NULL. */
const struct sp_xva_vdi *sp_xva_find_vdi(const struct sp_xva_meta *meta, const char *id);
/* Finds a network by its id, or NULL. */
const struct sp_xva_network *sp_xva_find_network(const struct sp_xva_meta *meta, const char *id);

#endif
