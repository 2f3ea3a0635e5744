/* The VM record (vm/vmconfig.h) and ova.xml's objects (archive/xva_xml.h),
 * mapped both ways. What survives a round trip: name, HVM/PV, memory and
 * maximum, vCPUs and maximum, boot order, disks in order (device names,
 * read-only, CD drives), the MACs and bridges of the VIFs, the suspend
 * image, and the xl.cfg statements snapport does not interpret (in the VM's
 * other_config under SP_XVA_XL_EXTRA_KEY). */
#ifndef SP_XVA_MAP_H
#define SP_XVA_MAP_H

#include "archive/xva_xml.h"
#include "base/notes.h"
#include "vm/vmconfig.h"

/* ova.xml's objects for vm: its disks' VDIs (vm->vbd_vdi, "" for none) and
 * its memory image (vm->suspend_vdi), ids "Ref:00", "Ref:01" ... in disk
 * order (the memory image last), each VDI's uuid the VM's, its virtual
 * size 0 (the caller sets them); vm_name: the VM's name (a snapshot's
 * record carries the snapshot's). m is zeroed by the caller; release it
 * with sp_xva_meta_free. */
int sp_vm_to_xva_meta(const struct sp_vm *vm, const char *vm_name, struct sp_xva_meta *m, struct sp_error *err);

/* The VM for an ova.xml: the VBDs in userdevice order (a VBD without a
 * device named by its userdevice, XAPI's way), vdis[k] the uuid of
 * m->vdis[k] (as many as m->nvdis); name NULL: the archive's. Another
 * writer's platform entries become xl keys, HVM_boot_params firmware=uefi
 * bios=ovmf, a missing or all-zero MAC a new one; what does not carry over
 * (a template's status, secure boot) goes to notes (may be NULL). Release
 * vm with sp_vm_free. */
int sp_vm_from_xva_meta(const struct sp_xva_meta *m, const char *name, const char (*vdis)[SP_UUID_STR],
                        struct sp_vm *vm, struct sp_notes *notes, struct sp_error *err);

#endif
