/* XAPI's words for xl.cfg settings: VM.platform entries and
 * HVM_boot_params.firmware. Shared by the XVA map (ova.xml holds XAPI's VM
 * record) and the OVF map (XenCenter's OVFs carry the same fields in
 * xenovf elements). */
#ifndef SP_XAPI_H
#define SP_XAPI_H

#include <stdbool.h>
#include <stdio.h>

#include "base/error.h"
#include "base/notes.h"
#include "vm/vmconfig.h"

/* Calls add(ctx, key, value) for each platform entry XAPI keeps for the
 * xl.cfg statements in extra (viridian = 1 -> viridian=true, vga='stdvga'
 * -> vga=std ...), in the order of extra. */
int sp_xapi_platform_from_xl(const char *extra, int (*add)(void *ctx, const char *key, const char *value,
                                                           struct sp_error *err),
                             void *ctx, struct sp_error *err);

/* The xl.cfg statement for one platform entry of an HVM guest, written to
 * out ("acpi = 1\n"); entries xl has no key for, or values it cannot take,
 * are skipped (secureboot=true adds a note: xl has no secure boot). */
void sp_xapi_platform_to_xl(const char *key, const char *value, FILE *out, struct sp_notes *notes);

/* HVM_boot_params.firmware for c: "uefi" for bios=ovmf, else "" (XAPI's
 * default, BIOS). */
const char *sp_xapi_firmware(const struct sp_vm_config *c);
/* xl's bios for HVM_boot_params.firmware ("uefi" -> "ovmf", else ""). */
const char *sp_xapi_bios(const char *firmware);

#endif
