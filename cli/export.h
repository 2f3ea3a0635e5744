/* export's options and its one-VM run, shared by `export VM -o OUT` (cli/
 * cmd_archive.c) and a batch of VMs (cli/export_batch.c), so that each VM
 * of a batch is exported exactly as a single export would. */
#ifndef SP_CLI_EXPORT_H
#define SP_CLI_EXPORT_H

#include <stdint.h>

#include "cli/cli.h"
#include "exporter/export.h"
#include "s3/s3_stream.h"

struct cli_export {
    struct sp_export_opts o;       /* o.vm and o.snapshot are set per VM */
    struct sp_s3_upload_opts s3o;  /* when the output is s3:// */
    bool force;
};

/* --digest, --compress, --level, the OVA's options and the S3 ones, checked
 * against the format (x->o.format, set by the caller) and out (a file,
 * s3://..., or a batch's DIR/ or s3://BUCKET/PREFIX/). Usage errors print
 * themselves. */
int cli_export_parse(const struct cli_args *a, const char *out, struct cli_export *x);

/* Exports x->o.vm (and x->o.snapshot) to out: a file (which appears only
 * when complete), "-" (stdout) or s3://BUCKET/KEY; opens and closes the
 * store itself. bar: a progress bar or NULL. *bytes: the archive's size
 * (0 when not known: stdout, S3). Prints nothing; an SP_* status, err the
 * cause naming out. */
int cli_export_one(struct cli *c, const struct cli_args *a, struct cli_export *x, const char *out,
                   struct cli_progress *bar, uint64_t *bytes, struct sp_error *err);

/* `export VM... -o DIR/`, `export --all -o s3://BUCKET/PREFIX/`: whether the
 * line asks for a batch, and running one. */
bool cli_export_is_batch(const struct cli_args *a);
int cli_export_batch(struct cli *c, const struct cli_args *a);

#endif
