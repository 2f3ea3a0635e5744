/* snapport export, import, verify, info: archives (XVA for now). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/par_compress.h"
#include "cli/cli.h"
#include "cli/cli_s3.h"
#include "cli/export.h"
#include "exporter/export.h"
#include "base/outfile.h"
#include "base/util.h"
#include "importer/import.h"

/* --digest: the XVA's block checksums, or the OVA manifest's algorithm. */
static int parse_digest(const char *s, struct sp_export_opts *o)
{
    o->digest = SP_XVA_XXHASH;
    o->mf_digest = SP_DIGEST_SHA256;
    if (o->format == SP_ARCHIVE_OVA) {
        if (s && (strcmp(s, "sha1") == 0 || strcmp(s, "sha256") == 0 || strcmp(s, "sha512") == 0))
            sp_digest_parse_name(s, &o->mf_digest);
        else if (s)
            return cli_usage_error("--digest: '%s' is not sha1, sha256 or sha512 (for OVA)", s);
        return EXIT_OK_;
    }
    if (s && strcmp(s, "sha1") == 0)
        o->digest = SP_XVA_SHA1;
    else if (s && strcmp(s, "xxhash") != 0)
        return cli_usage_error("--digest: '%s' is not xxhash or sha1 (for XVA)", s);
    return EXIT_OK_;
}

/* --level: the OVA's VMDK grains (deflate), or the XVA's --compress. */
static int parse_level(const char *level, struct sp_export_opts *o)
{
    if (!level)
        return EXIT_OK_;
    bool xva = o->format != SP_ARCHIVE_OVA;
    if (xva && o->compress == SP_XVA_PLAIN)
        return cli_usage_error("--level is for OVA exports and XVA exports with --compress gzip|zstd");
    bool zstd = xva && o->compress == SP_XVA_ZSTD;
    int max = zstd ? SP_PCOMP_ZSTD_LEVEL_MAX : SP_PCOMP_GZIP_LEVEL_MAX;
    char *end;
    long v = strtol(level, &end, 10);
    if (*end || end == level || v < 1 || v > max)
        return cli_usage_error("--level: '%s' is not a %s level 1..%d", level, zstd ? "zstd" : "deflate", max);
    o->level = (int)v;
    return EXIT_OK_;
}

static int parse_ova_opts(const char *ovfv, const char *key, const char *cert, struct sp_export_opts *o)
{
    if (o->format != SP_ARCHIVE_OVA && (ovfv || key || cert))
        return cli_usage_error("--ovf-version, --sign and --cert are for OVA exports");
    o->ovf_version = SP_OVF_1;
    if (ovfv && strcmp(ovfv, "2.0") == 0)
        o->ovf_version = SP_OVF_2;
    else if (ovfv && strcmp(ovfv, "1.0") != 0)
        return cli_usage_error("--ovf-version: '%s' is not 1.0 or 2.0", ovfv);
    if (!key != !cert)
        return cli_usage_error("--sign KEY.pem needs --cert CERT.pem, and the other way round");
    o->sign_key = key;
    o->sign_cert = cert;
    return EXIT_OK_;
}

static int parse_compress(const char *s, enum sp_xva_compress *c)
{
    if (!s || strcmp(s, "none") == 0)
        *c = SP_XVA_PLAIN;
    else if (strcmp(s, "gzip") == 0)
        *c = SP_XVA_GZIP;
    else if (strcmp(s, "zstd") == 0)
        *c = SP_XVA_ZSTD;
    else
        return cli_usage_error("--compress: '%s' is not none, gzip or zstd", s);
    return EXIT_OK_;
}

int cli_export_parse(const struct cli_args *a, const char *out, struct cli_export *x)
{
    const char *comp = cli_opt(a, "--compress");
    int rc;
    x->force = cli_flag(a, "--force");
    if ((rc = parse_digest(cli_opt(a, "--digest"), &x->o)) != EXIT_OK_ ||
        (rc = parse_compress(comp, &x->o.compress)) != EXIT_OK_ ||
        (rc = parse_ova_opts(cli_opt(a, "--ovf-version"), cli_opt(a, "--sign"), cli_opt(a, "--cert"), &x->o)) !=
            EXIT_OK_ ||
        (rc = parse_level(cli_opt(a, "--level"), &x->o)) != EXIT_OK_)
        return rc;
    if (x->o.format == SP_ARCHIVE_OVA && comp)
        return cli_usage_error("--compress is for XVA (an OVA's VMDK grains are deflated already)");
    if ((rc = cli_s3_export_opts(a, out, &x->s3o)) != EXIT_OK_)
        return rc;
    x->s3o.replace = x->force;
    return EXIT_OK_;
}

/* The archive into fd, then the output completed or removed. */
static int export_to(struct cli *c, const struct cli_args *a, struct cli_export *x, const char *out,
                     struct cli_progress *bar, uint64_t *bytes, struct sp_store *s, struct sp_error *err)
{
    struct sp_s3_uploader *up = NULL;
    bool to_s3 = sp_s3_is_url(out), to_stdout = strcmp(out, "-") == 0, to_file = !to_s3 && !to_stdout;
    struct sp_outfile of = {.fd = -1};
    int fd = STDOUT_FILENO;
    int rc = to_stdout ? SP_OK : to_s3 ? cli_s3_export_open(a, out, &x->s3o, &fd, &up, err)
                                       : sp_outfile_open(&of, out, x->force, err);
    if (to_file)
        fd = of.fd;
    /* an OVA's compressed disks wait beside the output (the same space);
     * for S3 in $TMPDIR */
    char spool[4096];
    x->o.spool_dir = to_file ? cli_dir_of(out, spool, sizeof spool) : NULL;
    x->o.prog = cli_progress_hook(bar);
    if (rc == SP_OK)
        rc = sp_export(s, &x->o, fd, err);
    struct stat st;
    if (rc == SP_OK && to_file && fstat(fd, &st) == 0)
        *bytes = (uint64_t)st.st_size;
    if (up)
        rc = cli_s3_export_close(c, out, up, fd, rc, err);
    else if (to_file && rc == SP_OK)
        rc = sp_outfile_commit(&of, err);
    else if (to_file)
        sp_outfile_abort(&of);
    return rc;
}

int cli_export_one(struct cli *c, const struct cli_args *a, struct cli_export *x, const char *out,
                   struct cli_progress *bar, uint64_t *bytes, struct sp_error *err)
{
    *bytes = 0;
    struct sp_store *s;
    /* the hold (temporary snapshot, pins) needs the write lock for a moment; the stream none */
    int rc = sp_store_open(c->store, SP_STORE_WRITE, "export", &s, err);
    if (rc != SP_OK)
        return rc;
    rc = export_to(c, a, x, out, bar, bytes, s, err);
    sp_store_close(s);
    /* A write that failed (a full disk, a closed pipe) is reported by the
     * archive writer as "write: <why>": only this command knows the file
     * it writes to. Name the output, as every failure names its file. */
    const char *label = strcmp(out, "-") == 0 ? "stdout" : out;
    if (rc == SP_EIO && !strstr(err->msg, label))
        sp_error_prefix(err, "%s", label);
    return rc;
}

int cmd_export(struct cli *c, const struct cli_args *a)
{
    if (cli_export_is_batch(a))
        return cli_export_batch(c, a);
    const char *snap = cli_opt(a, "--snapshot"), *out_s = cli_opt(a, "--output");
    const char *const *pos = a->pos;
    int rc;
    if (a->npos != 1 || !out_s)
        return cli_usage_error("export: needs VM and -o OUT (or -o - for stdout, -o DIR/ for a batch)");
    if (cli_opt(a, "--name-template") || cli_opt(a, "--parallel"))
        return cli_usage_error("export: --name-template and --parallel are for a batch (-o DIR/ or "
                               "s3://BUCKET/PREFIX/)");
    struct cli_export x = {.o = {.vm = pos[0], .snapshot = snap}};
    struct sp_error err;
    if ((rc = cli_archive_format("export", out_s, cli_opt(a, "--format"), &x.o.format)) != EXIT_OK_ ||
        (rc = cli_export_parse(a, out_s, &x)) != EXIT_OK_)
        return rc;
    bool to_stdout = strcmp(out_s, "-") == 0;
    if (to_stdout && c->json)
        return cli_usage_error("export: -o - and --json both want stdout");
    if (to_stdout && isatty(STDOUT_FILENO)) {
        sp_error_set(&err, SP_EINVAL, "export: refusing to write an archive to a terminal (redirect stdout)");
        return cli_fail(&err);
    }
    struct cli_progress *bar = cli_progress_start(c, "export");
    struct sp_notes notes = {0};
    x.o.notes = &notes;
    uint64_t bytes;
    rc = cli_export_one(c, a, &x, out_s, bar, &bytes, &err);
    cli_progress_finish(bar);
    if (rc != SP_OK) {
        sp_notes_free(&notes);
        return cli_fail(&err);
    }
    cli_print_notes(c, pos[0], &notes);
    if (c->json) {
        json_key_string("vm", pos[0]);
        json_key_string("snapshot", snap);
        json_key_string("output", out_s);
        json_key_string("format", x.o.format == SP_ARCHIVE_OVA ? "ova" : "xva");
    }
    if (!to_stdout)
        cli_say(c, "%s: exported to %s\n", pos[0], out_s);
    return EXIT_OK_;
}

int cmd_import(struct cli *c, const struct cli_args *a)
{
    const char *name = cli_opt(a, "--name"), *fmt = cli_opt(a, "--format");
    const char *const *pos = a->pos;
    int rc;
    if (a->npos != 1)
        return cli_usage_error("import: needs ARCHIVE (an .xva, an .ova, an .ovf or its folder, or - for stdin)");
    if ((rc = cli_s3_input_opts(a, pos[0])) != EXIT_OK_)
        return rc;
    struct sp_error err;
    struct sp_store *s;
    if ((rc = cli_store_open(c, SP_STORE_READ | SP_STORE_CREATE, "import", &s)) != EXIT_OK_)
        return rc;
    char uuid[SP_UUID_STR];
    struct cli_s3_input in = {.path = ""};
    bool s3 = sp_s3_is_url(pos[0]);
    if (s3 && (rc = cli_s3_input_open(a, pos[0], &in, &err)) != SP_OK) {
        sp_store_close(s);
        return cli_fail(&err);
    }
    struct cli_progress *bar = cli_progress_start(c, "import");
    struct sp_notes notes = {0};
    struct sp_import_opts o = {.name = name, .prog = cli_progress_hook(bar), .notes = &notes};
    const char *label = strcmp(pos[0], "-") == 0 ? "stdin" : pos[0];
    rc = sp_import_archive(s, s3 ? in.path : pos[0], fmt, &o, uuid, &err);
    if (s3)
        rc = cli_s3_input_close(&in, rc, &err);
    cli_progress_finish(bar);
    sp_store_close(s);
    if (rc != SP_OK)
        return cli_fail(&err);
    cli_print_notes(c, label, &notes);
    if (c->json) {
        json_key_string("archive", label);
        json_key_string("uuid", uuid);
    }
    cli_say(c, "%s: imported as VM %s\n", label, uuid);
    return EXIT_OK_;
}

/* The checksum kinds an XVA's members showed; NULL when none was seen (an
 * archive that failed before its first checksum member, or has no disk). */
static const char *digests_name(unsigned digests)
{
    bool xxh = digests & (1u << SP_XVA_XXHASH), sha1 = digests & (1u << SP_XVA_SHA1);
    return xxh && sha1 ? "xxhash+sha1" : xxh ? "xxhash" : sha1 ? "sha1" : NULL;
}

static const char *compress_name(enum sp_xva_compress k)
{
    return k == SP_XVA_GZIP ? "gzip" : k == SP_XVA_ZSTD ? "zstd" : "none";
}

/* Only what was read: an archive that failed before its VM gives nothing
 * but its name; one that failed later leaves out what comes at its end
 * (an OVA's manifest, a signature) unless it was seen. */
static void print_info_json(const char *label, const struct sp_archive_info *in, bool ok)
{
    bool ova = strcmp(in->format, "ova") == 0;
    json_key_string("archive", label);
    if (!in->have_vm)
        return;
    json_key_string("format", in->format);
    json_key_string("vm", in->vm_name);
    json_key_string("boot", in->hvm ? "hvm" : "pv");
    json_key_uint("memory", in->memory_bytes);
    json_key_uint("vcpus", in->vcpus);
    if (ova) {
        if (ok || in->manifest[0])
            json_key_string("manifest", in->manifest);
        json_key_uint("nics", (uint64_t)in->nnics);
        if (ok || in->is_signed)
            json_key_bool("signed", in->is_signed);
        if (in->is_signed) {
            json_key_string("signer", in->signer);
            json_key_bool("trusted", in->trusted);
        }
    } else {
        const char *dg = digests_name(in->digests);
        if (dg)
            json_key_string("checksum", dg);
        else
            json_key_null("checksum");
        json_key_string("compression", compress_name(in->compress));
    }
    json_begin_array("disks");
    for (int i = 0; i < in->ndisks; i++) {
        json_begin_object(NULL);
        json_key_string("id", in->disks[i].id);
        json_key_string("name", in->disks[i].name);
        json_key_string("type", in->disks[i].type);
        json_key_uint("virtual_size", in->disks[i].virtual_size);
        json_key_uint("stored", in->disks[i].stored);
        json_end_object();
    }
    json_end_array();
}

static void print_archive_line(const char *label, const struct sp_archive_info *in, bool ok)
{
    if (strcmp(in->format, "ova") == 0) {
        const char *mf = in->manifest[0] ? in->manifest : ok ? "none" : NULL;
        printf("archive:     %s (ova%s%s%s%s)\n", label, mf ? ", manifest " : "", mf ? mf : "",
               in->is_signed ? ", signed by " : "", in->is_signed ? cli_shown(in->signer) : "");
        if (in->is_signed && !in->trusted)
            printf("signer:      not trusted here: %s\n", cli_shown(in->trust_problem));
        return;
    }
    const char *dg = digests_name(in->digests);
    printf("archive:     %s (xva%s%s, compression %s)\n", label, dg ? ", checksums " : "", dg ? dg : "",
           compress_name(in->compress));
}

static void print_info(struct cli *c, const char *label, const struct sp_archive_info *in, bool ok)
{
    char a[32], b[32], m[32];
    if (c->json) {
        print_info_json(label, in, ok);
        return;
    }
    if (c->quiet || !in->have_vm)
        return;
    print_archive_line(label, in, ok);
    printf("vm:          %s (%s, %s memory, %llu vcpus)\n", cli_shown(in->vm_name), in->hvm ? "hvm" : "pv",
           sp_format_size(in->memory_bytes, m, sizeof m), (unsigned long long)in->vcpus);
    for (int i = 0; i < in->ndisks; i++)
        printf("disk %-7s %-11s virtual %-10s stored %-10s %s\n", cli_shown(in->disks[i].id),
               cli_shown(in->disks[i].type),
               sp_format_size(in->disks[i].virtual_size, a, sizeof a), sp_format_size(in->disks[i].stored, b, sizeof b),
               cli_shown(in->disks[i].name));
}

/* What verify could not vouch for, then ok. */
static void say_verified(struct cli *c, const char *label, const struct sp_archive_info *in)
{
    bool ova = strcmp(in->format, "ova") == 0;
    if (ova && in->is_signed && !in->trusted)
        cli_say(c, "%s: signed by %s, not trusted here (%s)\n", label, cli_shown(in->signer),
                cli_shown(in->trust_problem));
    if (ova && !in->manifest[0])
        cli_say(c, "%s: no manifest: the files were decoded but have no digests to match\n", label);
    cli_say(c, "%s: ok\n", label);
}

/* verify: exit 1 when the archive is damaged; info: its contents. */
static int read_archive(struct cli *c, const struct cli_args *a, bool verify)
{
    const char *cmd = a->cmd->name;
    const char *fmt = cli_opt(a, "--format");
    const char *const *pos = a->pos;
    int rc;
    if (a->npos != 1)
        return cli_usage_error("%s: needs ARCHIVE (or - for stdin)", cmd);
    if ((rc = cli_s3_input_opts(a, pos[0])) != EXIT_OK_)
        return rc;
    struct sp_error err;
    const char *label = strcmp(pos[0], "-") == 0 ? "stdin" : pos[0];
    struct sp_archive_info *info = calloc(1, sizeof *info);
    if (!info) {
        sp_error_set(&err, SP_ENOMEM, "out of memory");
        return cli_fail(&err);
    }
    struct cli_s3_input in = {.path = ""};
    bool s3 = sp_s3_is_url(pos[0]);
    if (s3 && (rc = cli_s3_input_open(a, pos[0], &in, &err)) != SP_OK) {
        free(info);
        return cli_fail(&err);
    }
    struct cli_progress *bar = cli_progress_start(c, cmd);
    rc = sp_verify_archive(s3 ? in.path : pos[0], fmt, info, cli_progress_hook(bar), &err);
    if (s3)
        rc = cli_s3_input_close(&in, rc, &err);
    cli_progress_finish(bar);
    if (!verify || c->json)
        print_info(c, label, info, rc == SP_OK);
    /* damage found: the check's exit status; a file that cannot be read: failure */
    bool damaged = rc == SP_EFORMAT || rc == SP_ELIMIT;
    if (verify && c->json && (rc == SP_OK || damaged)) {
        /* a stream stops at its first damage: that one is the list */
        json_begin_array("problems");
        if (rc != SP_OK)
            json_string_item(err.msg);
        json_end_array();
    }
    if (rc != SP_OK) {
        free(info);
        int st = cli_fail(&err);
        return st == EXIT_FAIL && verify && damaged ? EXIT_DIFF : st;
    }
    if (verify)
        say_verified(c, label, info);
    free(info);
    return EXIT_OK_;
}

int cmd_verify(struct cli *c, const struct cli_args *a) { return read_archive(c, a, true); }
int cmd_info(struct cli *c, const struct cli_args *a) { return read_archive(c, a, false); }
