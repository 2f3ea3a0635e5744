/* The VM model and its xl.cfg form. Parsing goes through libxlutil (the
 * parser `xl` itself uses); keys snapport does not interpret are kept
 * verbatim so that they survive a round trip. */
#ifndef SP_VMCONFIG_H
#define SP_VMCONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/uuid.h"

enum sp_vm_type {
    SP_VM_HVM,
    SP_VM_PV,
    SP_VM_PVH,
};

struct sp_vm_disk {
    char *target;        /* path as written (may be empty for an empty cdrom) */
    char vdev[32];       /* xvda, hda, sdb ... */
    bool readwrite;      /* access=rw (default) vs ro */
    bool cdrom;          /* devtype=cdrom */
    char format[16];     /* raw, vhd, qcow2, qcow, qed, empty; as libxl names them ("" = raw) */
    /* Other settings of the spec that libxlutil understood, in key=value or
     * flag form (backendtype=qdisk, script=block-iscsi, direct-io-safe ...),
     * comma-joined; NULL if none. Kept so that they survive a round trip. */
    char *extra;
};

struct sp_vm_vif {
    char mac[18];        /* "00:16:3e:xx:xx:xx" or "" (xl picks one) */
    char bridge[64];
    char model[32];
    char ip[64];
    /* The name of the network the VIF is on where the VM came from (XAPI's
     * network name_label, an OVF Network): xl has no such thing, so it is
     * kept under the top-level key snapport_networks, which xl ignores, and
     * written back on export. "" when none. */
    char network[128];
    char *extra;         /* other key=value items of the spec, verbatim, comma-joined; NULL if none */
};

struct sp_vm_config {
    char name[256];
    uint8_t uuid[SP_UUID_LEN];
    bool has_uuid;
    enum sp_vm_type type;
    long memory_mb;      /* memory= */
    long maxmem_mb;      /* maxmem=, 0 when absent */
    long vcpus;          /* vcpus=, default 1 */
    long maxvcpus;       /* maxvcpus=, 0 when absent */
    char boot[16];       /* boot= (hvm), "" when absent */
    char bios[16];       /* bios= (hvm): rombios, seabios, ovmf (UEFI); "" when absent */
    struct sp_vm_disk *disks;
    int ndisks;
    struct sp_vm_vif *vifs;
    int nvifs;
    /* Every top-level statement whose key is not interpreted above, verbatim
     * (comments dropped), each ending in a newline; "" when none. */
    char *extra;
};

/* Larger files are refused: a real xl.cfg is a few KiB, and the whole text
 * is held in memory while it is parsed. */
#define SP_VMCONFIG_MAX_SIZE (1u << 20)

/* Parses an xl.cfg file. Errors name the file and, where known, the line:
 * "web01.cfg:12: ..." (syntax), "web01.cfg: disk 2: ..." (bad spec),
 * "web01.cfg: memory is missing" (missing required key). */
int sp_vmconfig_parse_file(const char *path, struct sp_vm_config *out, struct sp_error *err);

/* Same from a buffer; name is used in messages. On failure *out is left
 * zeroed; on success the caller releases it with sp_vmconfig_free. */
int sp_vmconfig_parse_text(const char *name, const char *text, size_t len, struct sp_vm_config *out,
                           struct sp_error *err);

/* The xl.cfg text of c (malloc'd, NUL-terminated), parseable back by
 * sp_vmconfig_parse_text into an equal config, and accepted by `xl create`.
 * A value that xl.cfg cannot carry (a control byte, a comma inside a vif
 * value, a disk target ending in ',') is refused with SP_EUNSUPPORTED. */
int sp_vmconfig_format(const struct sp_vm_config *c, char **out, struct sp_error *err);

/* Deep copy and release. free accepts a zeroed struct. */
int sp_vmconfig_copy(struct sp_vm_config *dst, const struct sp_vm_config *src, struct sp_error *err);
void sp_vmconfig_free(struct sp_vm_config *c);

const char *sp_vm_type_name(enum sp_vm_type t);

/* Whether the guest boots with UEFI firmware (an HVM guest with bios=ovmf). */
bool sp_vm_uefi(const struct sp_vm_config *c);

/* Whether a MAC is no address at all: blank or 00:00:00:00:00:00 (XenServer
 * 5.5 exports and some writers give that; XAPI makes a new one at import). */
bool sp_vm_mac_unset(const char *mac);
/* A new random MAC in Xen's OUI 00:16:3e, as xl would make at each boot;
 * made once at import so that the guest keeps it. */
int sp_vm_mac_new(char out[18], struct sp_error *err);

/* ---- the VM record ------------------------------------------------------ */

/* A VM or a snapshot (a snapshot is a VM record with snapshot_of set): its
 * xl.cfg and what the store and the archives keep beside it. VDIs are named
 * by uuid only (plain strings: vm/ knows nothing of the store). */
struct sp_vm {
    char uuid[SP_UUID_STR];
    struct sp_vm_config cfg;          /* disks[i].target: the VDI's file (absolute) or the outside path */
    char (*vbd_vdi)[SP_UUID_STR];     /* per disk: the VDI uuid, "" for a disk outside the store */
    bool suspended;
    char suspend_vdi[SP_UUID_STR];    /* "" when halted */
    char snapshot_of[SP_UUID_STR];    /* "" for a VM */
    int64_t snapshot_time;
    bool is_system;
    char parent_snapshot[SP_UUID_STR];
    int64_t created;
};

void sp_vm_free(struct sp_vm *vm);


#endif
