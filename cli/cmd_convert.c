/* snapport convert IN OUT: an XVA as an OVA or the other way round, or a
 * disk image wrapped in a VM of one disk, no store involved. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
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

int cmd_convert(struct cli *c, const struct cli_args *a)
{
    const char *fmt = cli_opt(a, "--format"), *name = cli_opt(a, "--name"), *mem = cli_opt(a, "--memory");
    const char *vcpus = cli_opt(a, "--vcpus");
    bool force = cli_flag(a, "--force");
    const char *const *pos = a->pos;
    int rc;
    if (a->npos != 2)
        return cli_usage_error("convert: needs IN and OUT (an .xva and an .ova, either way, or a disk image; - for "
                               "stdin/stdout)");
    struct sp_convert_opts o = {0};
    if ((rc = cli_archive_format("convert", pos[1], fmt, &o.to)) != EXIT_OK_ ||
        (rc = wrap_opts(name, mem, vcpus, &o)) != EXIT_OK_)
        return rc;
    struct sp_error err;
    bool to_stdout = strcmp(pos[1], "-") == 0;
    if (to_stdout && c->json)
        return cli_usage_error("convert: OUT - and --json both want stdout");
    if (to_stdout && isatty(STDOUT_FILENO)) {
        sp_error_set(&err, SP_EINVAL, "convert: refusing to write an archive to a terminal (redirect stdout)");
        return cli_fail(&err);
    }
    struct sp_outfile out = {.fd = -1};
    int fd = STDOUT_FILENO;
    rc = to_stdout ? SP_OK : sp_outfile_open(&out, pos[1], force, &err);
    if (!to_stdout)
        fd = out.fd;
    /* to OVA, the compressed disks wait beside the output, as export's do */
    char spool[4096];
    if (!to_stdout)
        o.spool_dir = cli_dir_of(pos[1], spool, sizeof spool);
    struct cli_progress *bar = rc == SP_OK ? cli_progress_start(c, "convert") : NULL;
    o.prog = cli_progress_hook(bar);
    struct sp_convert_result res;
    memset(&res, 0, sizeof res);
    if (rc == SP_OK)
        rc = sp_convert(pos[0], &o, fd, &res, &err);
    cli_progress_finish(bar);
    if (!to_stdout && rc == SP_OK)
        rc = sp_outfile_commit(&out, &err);
    else if (!to_stdout)
        sp_outfile_abort(&out);
    /* a failed write (a full disk) names the output, as export does */
    const char *out_label = to_stdout ? "stdout" : pos[1];
    if (rc == SP_EIO && !strstr(err.msg, out_label))
        sp_error_prefix(&err, "%s", out_label);
    if (rc != SP_OK) {
        sp_notes_free(&res.notes);
        return cli_fail(&err);
    }
    const char *in_label = strcmp(pos[0], "-") == 0 ? "stdin" : pos[0];
    cli_print_notes(c, in_label, &res.notes);
    if (c->json) {
        json_key_string("input", pos[0]);
        json_key_string("output", pos[1]);
        json_key_string("format", o.to == SP_ARCHIVE_OVA ? "ova" : "xva");
    }
    if (!to_stdout)
        cli_say(c, "%s: converted to %s\n", in_label, pos[1]);
    return EXIT_OK_;
}
