/* A batch export's output names (cli/export_name.h). */
#include "cli/export_name.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char *const FIELDS[] = {"{name}", "{uuid}", "{date}", "{ext}"};
#define NFIELDS (sizeof FIELDS / sizeof FIELDS[0])

void cli_export_safe_name(const char *name, char *buf, size_t len)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p && n + 1 < len; p++, n++) {
        bool bad = *p == '/' || *p < 0x20 || *p == 0x7f || (n == 0 && *p == '.');
        buf[n] = bad ? '_' : (char)*p;
    }
    if (n == 0 && len > 1)
        buf[n++] = '_';
    buf[n] = '\0';
}

/* The field tmpl starts with (its index), -1 when none. */
static int field_at(const char *tmpl)
{
    for (size_t i = 0; i < NFIELDS; i++)
        if (strncmp(tmpl, FIELDS[i], strlen(FIELDS[i])) == 0)
            return (int)i;
    return -1;
}

int cli_export_template_check(const char *tmpl, char *why, size_t whylen)
{
    if (strchr(tmpl, '/')) {
        snprintf(why, whylen, "'%s' has a '/' (the archives go into one folder or prefix)", tmpl);
        return -1;
    }
    for (const char *p = tmpl; (p = strchr(p, '{')) != NULL; p++) {
        if (field_at(p) < 0) {
            snprintf(why, whylen, "'%s': unknown field at '%.16s' (there are {name}, {uuid}, {date}, {ext})", tmpl,
                     p);
            return -1;
        }
    }
    return 0;
}

int cli_export_name(const char *tmpl, const struct cli_export_fields *f, char *buf, size_t len, char *why,
                    size_t whylen)
{
    char safe[CLI_EXPORT_NAME_MAX + 1];
    cli_export_safe_name(f->name, safe, sizeof safe);
    const char *vals[NFIELDS] = {safe, f->uuid, f->date, f->ext};
    size_t n = 0;
    bool too_long = false;
    for (const char *p = tmpl; *p && !too_long;) {
        int k = field_at(p);
        const char *v = k >= 0 ? vals[k] : p;
        size_t vlen = k >= 0 ? strlen(v) : 1;
        too_long = n + vlen > CLI_EXPORT_NAME_MAX || n + vlen >= len;
        if (!too_long)
            memcpy(buf + n, v, vlen);
        n += vlen;
        p += k >= 0 ? strlen(FIELDS[k]) : 1;
    }
    buf[too_long ? 0 : n] = '\0';
    if (too_long)
        snprintf(why, whylen, "the name for VM '%s' is longer than %d bytes", safe, CLI_EXPORT_NAME_MAX);
    else if (strcmp(buf, ".") == 0 || strcmp(buf, "..") == 0 || !buf[0])
        snprintf(why, whylen, "the name for VM '%s' would be '%s'", safe, buf);
    else
        return 0;
    return -1;
}
