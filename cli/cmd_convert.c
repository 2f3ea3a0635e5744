/* snapport convert IN OUT: an XVA as an OVA or the other way round, or a
 * disk image wrapped in a VM of one disk, no store involved. IN and OUT
 * are each a file, - (stdin, stdout) or s3://BUCKET/KEY (cli/cli_s3.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_s3.h"
#include "convert/convert.h"
#include "base/outfile.h"

#define MIB (1ull << 20)
/* More vCPUs than this is no VM Xen runs (HVM guests' limit). */
#define MAX_VCPUS 128

/* --name, --memory, --vcpus: the VM a disk image is wrapped in. */
static int wrap_opts(const char *name, const char *mem, const char *vcpus, struct sp_convert_opts *o)
{
    o->name = name;
    if (mem) {
        uint64_t bytes = 0;
        int rc = cli_parse_size("--memory", mem, &bytes);
        if (rc != EXIT_OK_)
            return rc;
        if (bytes < MIB || bytes % MIB)
            return cli_usage_error("--memory: '%s' is not a whole number of MiB", mem);
        o->memory_mb = bytes / MIB;
    }
    if (vcpus) {
        char *end;
        long v = strtol(vcpus, &end, 10);
        if (*end || v < 1 || v > MAX_VCPUS)
            return cli_usage_error("--vcpus: '%s' is not a count 1..%d", vcpus, MAX_VCPUS);
        o->vcpus = (uint64_t)v;
    }
    return EXIT_OK_;
}

/* Where the archive goes: OUT a file (written whole or not at all), "-"
 * (stdout) or s3://BUCKET/KEY (an upload that is aborted on failure). */
struct conv_out {
    const char *name;
    bool to_stdout, to_s3;
    struct sp_outfile file;
    struct sp_s3_uploader *up;
    int fd;
};

static int out_open(const struct cli_args *a, struct conv_out *o, const struct sp_s3_upload_opts *s3o, bool force,
                    struct sp_error *err)
{
    o->file.fd = -1;
    o->fd = STDOUT_FILENO;
    if (o->to_stdout)
        return SP_OK;
    if (o->to_s3)
        return cli_s3_export_open(a, o->name, s3o, &o->fd, &o->up, err);
    int rc = sp_outfile_open(&o->file, o->name, force, err);
    o->fd = o->file.fd;
    return rc;
}

/* Completes the output (rc: the conversion's status) or drops it. */
static int out_close(struct cli *c, struct conv_out *o, int rc, struct sp_error *err)
{
    if (o->up)
        return cli_s3_export_close(c, o->name, o->up, o->fd, rc, err);
    if (o->to_stdout || o->to_s3)
        return rc;
    if (rc == SP_OK)
        return sp_outfile_commit(&o->file, err);
    sp_outfile_abort(&o->file);
    return rc;
}

/* IN into the open output, a progress bar meanwhile. */
static int convert_into(struct cli *c, const char *in, const struct sp_convert_opts *o, int fd,
                        struct sp_convert_result *res, struct sp_error *err)
{
    struct cli_progress *bar = cli_progress_start(c, "convert");
    struct sp_convert_opts with_bar = *o;
    with_bar.prog = cli_progress_hook(bar);
    int rc = sp_convert(in, &with_bar, fd, res, err);
    cli_progress_finish(bar);
    return rc;
}

/* An s3:// IN is downloaded into a pipe the reader takes as a file; its
 * download's failure is the cause of the reader's (cli_s3_input_close).
 * When the output could not be opened, that is the error. */
static int convert_from(struct cli *c, const struct cli_args *a, const struct sp_convert_opts *o,
                        const struct sp_s3_upload_opts *s3o, struct conv_out *out, struct sp_convert_result *res,
                        struct sp_error *err)
{
    const char *in_name = a->pos[0];
    bool from_s3 = sp_s3_is_url(in_name);
    struct cli_s3_input in = {.path = ""};
    int rc = from_s3 ? cli_s3_input_open(a, in_name, &in, err) : SP_OK;
    if (rc != SP_OK)
        return rc; /* before the output exists: nothing to drop */
    rc = out_open(a, out, s3o, cli_flag(a, "--force"), err);
    bool opened = rc == SP_OK;
    if (opened)
        rc = convert_into(c, from_s3 ? in.path : in_name, o, out->fd, res, err);
    if (from_s3) {
        struct sp_error in_err = *err;
        int in_rc = cli_s3_input_close(&in, rc, &in_err);
        if (opened) {
            rc = in_rc;
            *err = in_err;
        }
    }
    return out_close(c, out, rc, err);
}

/* The options; usage errors print themselves. */
static int parse(struct cli *c, const struct cli_args *a, struct sp_convert_opts *o, struct sp_s3_upload_opts *s3o,
                 struct conv_out *out)
{
    const char *const *pos = a->pos;
    int rc;
    if (a->npos != 2)
        return cli_usage_error("convert: needs IN and OUT (an .xva and an .ova, either way, or a disk image; - for "
                               "stdin/stdout, s3://BUCKET/KEY for S3)");
    memset(o, 0, sizeof *o);
    if ((rc = cli_archive_format("convert", pos[1], cli_opt(a, "--format"), &o->to)) != EXIT_OK_ ||
        (rc = wrap_opts(cli_opt(a, "--name"), cli_opt(a, "--memory"), cli_opt(a, "--vcpus"), o)) != EXIT_OK_ ||
        (rc = cli_s3_convert_opts(a, pos[0], pos[1], s3o)) != EXIT_OK_)
        return rc;
    s3o->replace = cli_flag(a, "--force");
    *out = (struct conv_out){.name = pos[1], .to_stdout = strcmp(pos[1], "-") == 0, .to_s3 = sp_s3_is_url(pos[1])};
    if (out->to_stdout && c->json)
        return cli_usage_error("convert: OUT - and --json both want stdout");
    return EXIT_OK_;
}

int cmd_convert(struct cli *c, const struct cli_args *a)
{
    const char *const *pos = a->pos;
    struct sp_convert_opts o;
    struct sp_s3_upload_opts s3o;
    struct conv_out out;
    int rc = parse(c, a, &o, &s3o, &out);
    if (rc != EXIT_OK_)
        return rc;
    struct sp_error err;
    if (out.to_stdout && isatty(STDOUT_FILENO)) {
        sp_error_set(&err, SP_EINVAL, "convert: refusing to write an archive to a terminal (redirect stdout)");
        return cli_fail(&err);
    }
    /* to OVA, the compressed disks wait beside a file output, as export's
     * do; for stdout and S3 in $TMPDIR */
    char spool[4096];
    if (!out.to_stdout && !out.to_s3)
        o.spool_dir = cli_dir_of(pos[1], spool, sizeof spool);
    struct sp_convert_result res;
    memset(&res, 0, sizeof res);
    rc = convert_from(c, a, &o, &s3o, &out, &res, &err);
    /* a failed write (a full disk) names the output, as export does; a
     * message that names IN is the input's */
    const char *in_label = strcmp(pos[0], "-") == 0 ? "stdin" : pos[0];
    const char *out_label = out.to_stdout ? "stdout" : pos[1];
    if (rc == SP_EIO && !strstr(err.msg, out_label) && !strstr(err.msg, in_label))
        sp_error_prefix(&err, "%s", out_label);
    if (rc != SP_OK) {
        sp_notes_free(&res.notes);
        return cli_fail(&err);
    }
    cli_print_notes(c, in_label, &res.notes);
    if (c->json) {
        json_key_string("input", pos[0]);
        json_key_string("output", pos[1]);
        json_key_string("format", o.to == SP_ARCHIVE_OVA ? "ova" : "xva");
    }
    if (!out.to_stdout)
        cli_say(c, "%s: converted to %s\n", in_label, pos[1]);
    return EXIT_OK_;
}
