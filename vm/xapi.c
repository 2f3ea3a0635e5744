/* xl.cfg keys <-> XAPI's VM.platform and HVM_boot_params. */
#include "vm/xapi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* xl.cfg keys that XAPI keeps in VM.platform. The flags take 0/1 in xl and
 * "true"/"false" in XAPI. */
static const struct {
    const char *xl, *xapi;
    bool flag;
} PLATFORM_KEYS[] = {
    {"acpi", "acpi", true},          {"apic", "apic", true},         {"pae", "pae", true},
    {"nx", "nx", true},              {"viridian", "viridian", true}, {"hpet", "hpet", true},
    {"usb", "usb", true},            {"vga", "vga", false},          {"videoram", "videoram", false},
    {"rtc_timeoffset", "timeoffset", false},
};
#define NKEYS (sizeof PLATFORM_KEYS / sizeof PLATFORM_KEYS[0])

static int xl_key(const char *k, size_t n)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strlen(PLATFORM_KEYS[i].xl) == n && strncmp(PLATFORM_KEYS[i].xl, k, n) == 0)
            return (int)i;
    return -1;
}

static int xapi_key(const char *k)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(PLATFORM_KEYS[i].xapi, k) == 0)
            return (int)i;
    return -1;
}

/* One "key = value" line of extra: the key's length and the value without
 * blanks and quotes. */
static size_t line_key(const char *line, size_t len)
{
    size_t k = 0;
    while (k < len && (line[k] == '_' || (line[k] >= 'a' && line[k] <= 'z') || (line[k] >= '0' && line[k] <= '9')))
        k++;
    return k;
}

static void line_value(const char *v, size_t vl, char *out, size_t cap)
{
    while (vl && (*v == ' ' || *v == '\t' || *v == '\'' || *v == '"'))
        v++, vl--;
    while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t' || v[vl - 1] == '\'' || v[vl - 1] == '"'))
        vl--;
    snprintf(out, cap, "%.*s", (int)vl, v);
}

int sp_xapi_platform_from_xl(const char *extra, int (*add)(void *ctx, const char *key, const char *value,
                                                           struct sp_error *err),
                             void *ctx, struct sp_error *err)
{
    const char *line = extra;
    while (line && *line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        size_t k = line_key(line, len);
        const char *eq = memchr(line, '=', len);
        int i = k && eq ? xl_key(line, k) : -1;
        if (i >= 0) {
            char val[128];
            const char *key = PLATFORM_KEYS[i].xapi;
            line_value(eq + 1, len - (size_t)(eq + 1 - line), val, sizeof val);
            /* XAPI spells xl's vga="stdvga" as "std" */
            const char *out = strcmp(val, "1") == 0 ? "true" : strcmp(val, "0") == 0 ? "false"
                            : strcmp(val, "stdvga") == 0 ? "std" : val;
            if (val[0] && !strchr(val, '[')) {
                int rc = add(ctx, key, out, err);
                if (rc != SP_OK)
                    return rc;
            }
        }
        line = end ? end + 1 : NULL;
    }
    return SP_OK;
}

/* XAPI writes flags as true/false, older exports and XenCenter also 1/0. */
static int flag_value(const char *v)
{
    if (!strcasecmp(v, "true") || !strcmp(v, "1"))
        return 1;
    if (!strcasecmp(v, "false") || !strcmp(v, "0"))
        return 0;
    return -1;
}

static bool all_digits(const char *v)
{
    if (!*v || strlen(v) > 9)
        return false;
    for (const char *p = v; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

static void platform_entry_to_xl(const char *key, const char *value, FILE *out, struct sp_notes *notes)
{
    if (!strcmp(key, "secureboot") && flag_value(value) == 1) {
        sp_note(notes, "platform secureboot=true: xl has no secure boot; the guest boots UEFI without it");
        return;
    }
    int i = xapi_key(key);
    if (i < 0)
        return;
    const char *xl = PLATFORM_KEYS[i].xl;
    if (PLATFORM_KEYS[i].flag) {
        int f = flag_value(value);
        if (f >= 0)
            fprintf(out, "%s = %d\n", xl, f);
    } else if (!strcmp(key, "vga")) {
        if (!strcmp(value, "std") || !strcmp(value, "stdvga"))
            fputs("vga = 'stdvga'\n", out);
        else if (!strcmp(value, "cirrus"))
            fputs("vga = 'cirrus'\n", out);
    } else if (all_digits(value) || (value[0] == '-' && all_digits(value + 1))) {
        fprintf(out, "%s = %s\n", xl, value);
    }
}

int sp_xapi_platform_to_xl(sp_xapi_platform_next next, void *ctx, bool hvm, char **extra, struct sp_notes *notes,
                           struct sp_error *err)
{
    size_t len = 0;
    *extra = NULL;
    FILE *f = open_memstream(extra, &len);
    if (!f)
        return sp_error_set(err, SP_ENOMEM, "out of memory");
    char key[64], value[128];
    while (next(ctx, key, sizeof key, value, sizeof value))
        if (hvm || !strcmp(key, "secureboot"))
            platform_entry_to_xl(key, value, f, notes);
    if (fclose(f) != 0) {
        free(*extra);
        *extra = NULL;
        return sp_error_set(err, SP_ENOMEM, "out of memory");
    }
    return SP_OK;
}

const char *sp_xapi_firmware(const struct sp_vm_config *c) { return sp_vm_uefi(c) ? "uefi" : ""; }

const char *sp_xapi_bios(const char *firmware) { return !strcasecmp(firmware, "uefi") ? "ovmf" : ""; }
