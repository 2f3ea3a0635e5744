/* A batch export's output names (cli/export_batch.c): one archive per VM,
 * named by a template inside the target folder or S3 prefix. */
#ifndef SP_CLI_EXPORT_NAME_H
#define SP_CLI_EXPORT_NAME_H

#include <stddef.h>

/* NAME_MAX of Linux file systems: an output name must fit one directory
 * entry (an S3 key allows 1024 bytes; the file is the tighter limit). */
#define CLI_EXPORT_NAME_MAX 255
#define CLI_EXPORT_TEMPLATE_DEFAULT "{name}-{uuid}.{ext}"

struct cli_export_fields {
    const char *name; /* the VM's name as the store has it */
    const char *uuid;
    const char *date; /* UTC YYYYMMDD, one value for the whole run */
    const char *ext;  /* "xva" or "ova" */
};

/* A VM's name as part of a file name or key: '/', control characters and
 * a leading '.' become '_' (an empty name is "_"), so that it can never
 * climb out of the target or hide there. Cut to fit len. */
void cli_export_safe_name(const char *name, char *buf, size_t len);

/* Whether tmpl is usable: only the fields {name}, {uuid}, {date}, {ext},
 * no '/'. 0, or -1 with the problem in why. */
int cli_export_template_check(const char *tmpl, char *why, size_t whylen);

/* tmpl (checked) with f's values, {name} made safe, into buf. 0, or -1
 * with the problem in why: longer than CLI_EXPORT_NAME_MAX, or "." or "..". */
int cli_export_name(const char *tmpl, const struct cli_export_fields *f, char *buf, size_t len, char *why,
                    size_t whylen);

#endif
