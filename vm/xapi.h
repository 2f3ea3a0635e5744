/* XAPI's words for xl.cfg settings: VM.platform entries and
 * HVM_boot_params.firmware. Shared by the XVA map (ova.xml holds XAPI's VM
 * record) and the OVF map (XenCenter's OVFs carry the same fields in
 * xenovf elements). */
#ifndef SP_XAPI_H
#define SP_XAPI_H

#include <stdbool.h>

#include "base/error.h"
#include "base/notes.h"
#include "vm/vmconfig.h"

/* Calls add(ctx, key, value) for each platform entry XAPI keeps for the
 * xl.cfg statements in extra (viridian = 1 -> viridian=true, vga='stdvga'
 * -> vga=std ...), in the order of extra. */
int sp_xapi_platform_from_xl(const char *extra, int (*add)(void *ctx, const char *key, const char *value,
                                                           struct sp_error *err),
                             void *ctx, struct sp_error *err);

/* One platform entry at a time: fills key and value and returns true, or
 * returns false when there are no more. */
typedef bool (*sp_xapi_platform_next)(void *ctx, char *key, size_t kcap, char *value, size_t vcap);

/* The xl.cfg statements ("acpi = 1\n" ...) for the platform entries next
 * gives, as *extra (malloc'd, "" when none). An HVM guest's entries that xl
 * has a key for and whose values it can take become statements; a PV
 * guest has none. secureboot=true adds a note: xl has no secure boot. */
int sp_xapi_platform_to_xl(sp_xapi_platform_next next, void *ctx, bool hvm, char **extra, struct sp_notes *notes,
                           struct sp_error *err);

/* HVM_boot_params.firmware for c: "uefi" for bios=ovmf, else "" (XAPI's
 * default, BIOS). */
const char *sp_xapi_firmware(const struct sp_vm_config *c);
/* xl's bios for HVM_boot_params.firmware ("uefi" -> "ovmf", else ""). */
const char *sp_xapi_bios(const char *firmware);

#endif
