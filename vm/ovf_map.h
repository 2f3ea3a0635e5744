/* The VM record (vm/vmconfig.h) and an OVF virtual system (archive/ovf.h),
 * mapped both ways. What survives a round trip through snapport's own OVF
 * section: name, HVM/PV/PVH, memory, vCPUs, boot order, firmware, the disks
 * in order (their Xen names), the CD drive, MACs, bridges, NIC models and
 * network names, and the xl.cfg statements snapport does not interpret. A foreign OVF gives
 * what it has (names hdX or xvdX, xl's default bridge). */
#ifndef SP_OVF_MAP_H
#define SP_OVF_MAP_H

#include <stdbool.h>
#include <stdint.h>

#include "archive/ovf.h"
#include "base/notes.h"
#include "vm/vmconfig.h"

/* One disk file the OVF carries, in the VM's disk order. */
struct sp_ovf_map_file {
    const char *member;       /* its name in the package */
    uint64_t file_size;       /* bytes of the file, 0 when unknown */
    uint64_t capacity;        /* the disk's virtual size */
    uint64_t populated;       /* the disk's bytes of data */
};

/* Whether disk i of vm is carried as a file: not a CD drive (a hardware
 * item), not a disk without a VDI. */
bool sp_vm_ovf_carries(const struct sp_vm *vm, int i);
/* Whether disk i of vm is a CD drive with an image (a VDI): carried as an
 * ISO file after the disks, the CD item naming it (as VirtualBox does). */
bool sp_vm_ovf_cd_image(const struct sp_vm *vm, int i);
/* Whether the carried disks go on IDE (every one hd[a-d], four at most
 * with the CD drive) rather than SCSI. */
bool sp_vm_ovf_ide(const struct sp_vm *vm);

/* The OVF system of vm: files[k] for its k-th carried disk, then one for
 * the CD drive's image if it has one (nfiles in all); vm_name the VM's name (a snapshot's record carries its own).
 * sys is overwritten; release it with sp_ovf_free. */
int sp_vm_to_ovf(const struct sp_vm *vm, const char *vm_name, enum sp_ovf_version version,
                 const struct sp_ovf_map_file *files, int nfiles, struct sp_ovf_system *sys, struct sp_error *err);

/* What the OVF of vm cannot carry, as notes: a NIC model with no OVF
 * name (written as it is, which other readers do not know). */
void sp_vm_ovf_notes(const struct sp_vm *vm, struct sp_notes *notes);

/* The name an import gives: given, else the system's Name, else its id. */
const char *sp_ovf_vm_name(const struct sp_ovf_system *sys, const char *given);

/* The VM for an OVF system: its disks in OVF order, disk i on the VDI
 * vdis[i] (sys->ndisks of them), the CD drive, the NICs; name NULL: the
 * system's. Another writer's firmware (VMware's, VirtualBox's, XenCenter's
 * fields), NIC models (a stand-in where qemu has no such device, said in
 * notes, which may be NULL), network names; a missing MAC is made once.
 * Release vm with sp_vm_free. */
int sp_vm_from_ovf(const struct sp_ovf_system *sys, const char *name, const char (*vdis)[SP_UUID_STR],
                   struct sp_vm *vm, struct sp_notes *notes, struct sp_error *err);

#endif
