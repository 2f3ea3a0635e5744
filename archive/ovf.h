/* The OVF descriptor (reference/ova.md section 2): the model of one virtual
 * system and its XML, OVF 1.0 (default) or 2.0, written and parsed with
 * libxml2 (no entities, no network). Packaging (tar, manifest, cert) and
 * the disks are other modules. */
#ifndef SP_OVF_H
#define SP_OVF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

/* A descriptor larger than this is not a VM description. */
#define SP_OVF_MAX (16u << 20)
#define SP_OVF_MAX_ITEMS 256

enum sp_ovf_version {
    SP_OVF_1,    /* OVF 1.0 / 1.x (also reads 0.9) */
    SP_OVF_2,
};

enum sp_ovf_controller {
    SP_OVF_IDE,
    SP_OVF_SCSI,
    SP_OVF_SATA,
    SP_OVF_NVME,
};

struct sp_ovf_file {          /* References/File */
    char id[64];
    char href[256];           /* member name: no '/', no '..' */
    uint64_t size;            /* ovf:size, 0 when absent */
    char compression[16];     /* "" or "gzip" */
};

struct sp_ovf_disk {          /* DiskSection/Disk + its hardware item */
    char disk_id[64];
    char file_id[64];         /* "" for an empty disk */
    uint64_t capacity;        /* bytes (capacity x capacityAllocationUnits) */
    uint64_t populated_size;  /* 0 when absent */
    char format[160];         /* format URI */
    enum sp_ovf_controller controller;
    int controller_index;     /* which controller of that kind; parse: -1 for a
                               * DiskSection disk no hardware item attaches */
    int address;              /* AddressOnParent; parse: -1 when absent */
};

struct sp_ovf_nic {
    char network[128];
    char mac[18];             /* "" when absent */
    char model[32];           /* ResourceSubType: E1000, VmxNet3, PCNet32 ... */
    /* snapport's section: the xl bridge and model (either may be ""),
     * when xen_given */
    bool xen_given;
    char xen_bridge[64];
    char xen_model[32];
};

/* XenCenter's xenovf:VirtualSystemOtherConfigurationData: one of XAPI's VM
 * fields (HVM_boot_policy, HVM_boot_params, platform, PV_bootloader ...),
 * maps written "key=value;key=value". */
#define SP_OVF_XEN_CONFIG_MAX 16
struct sp_ovf_xen_config {
    char name[64];
    char value[1024];
};

struct sp_ovf_system {
    enum sp_ovf_version version;
    char id[128];             /* VirtualSystem ovf:id */
    char name[256];
    char description[1024];
    char os_type[64];         /* OperatingSystemSection vmw:osType or "" */
    int os_id;                /* OperatingSystemSection ovf:id (CIM), 0 unknown */
    char os_description[128]; /* OperatingSystemSection Description or "" */
    char firmware[8];         /* "efi", "bios" or "" (not said): VMware's vmw:Config
                               * firmware, VirtualBox's Firmware type */
    uint64_t memory_mb;
    uint64_t vcpus;
    bool cdrom;               /* a CD drive is present */
    struct sp_ovf_file *files;
    int nfiles;
    struct sp_ovf_disk *disks;    /* in the order the VM sees them */
    int ndisks;
    struct sp_ovf_nic *nics;
    int nnics;
    struct sp_ovf_xen_config xen_config[SP_OVF_XEN_CONFIG_MAX];
    int nxen_config;
    /* snapport's own section (namespace http://snapport.example/ovf/1):
     * what a Xen VM record has beyond OVF's, so that our OVA imports back
     * whole; "" when absent (other producers). */
    char xen_type[8];         /* hvm, pv, pvh */
    char xen_boot[16];
    char xen_vdevs[512];      /* the disks' Xen names in disk order, blank-separated */
    char xen_bios[16];        /* xl's bios= */
    char *xen_extra;          /* the xl.cfg statements snapport does not interpret */
};

/* The descriptor text (malloc'd); deterministic for the same model. */
int sp_ovf_write(const struct sp_ovf_system *sys, char **out, size_t *len, struct sp_error *err);

/* Parses a descriptor as VMware (ovftool, vCenter), VirtualBox, XenServer,
 * oVirt and Xen Orchestra write them; an unknown section with
 * ovf:required="true" is an error, unknown optional ones are ignored.
 * Errors start with "ovf: ". */
int sp_ovf_parse(const char *text, size_t len, struct sp_ovf_system *sys, struct sp_error *err);

void sp_ovf_free(struct sp_ovf_system *sys);

const struct sp_ovf_file *sp_ovf_find_file(const struct sp_ovf_system *sys, const char *id);

/* XenCenter's value for name, or NULL. */
const char *sp_ovf_xen_config(const struct sp_ovf_system *sys, const char *name);

#endif
