/* s3://BUCKET/KEY as an archive's output or input (cli/cli_s3.h): export
 * and convert write into an uploader's pipe, import, verify, info and
 * convert read from a downloader's (s3/s3_stream.h). */
#include "cli/cli_s3.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cancel.h"
#include "base/util.h"

static int load(const struct cli_args *a, const char *url, struct sp_s3_config *c, struct sp_s3_url *u,
                struct sp_error *err)
{
    int rc = sp_s3_url_parse(url, u, err);
    if (rc == 0)
        rc = sp_s3_config_load(c, cli_opt(a, "--endpoint"), cli_opt(a, "--ca-bundle"), err);
    return rc;
}

static int parse_jobs(const struct cli_args *a, unsigned *jobs)
{
    const char *s = cli_opt(a, "--jobs");
    *jobs = SP_S3_JOBS_DEFAULT;
    if (!s)
        return EXIT_OK_;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 1 || v > SP_S3_JOBS_MAX)
        return cli_usage_error("--jobs: '%s' is not a number 1..%d", s, SP_S3_JOBS_MAX);
    *jobs = (unsigned)v;
    return EXIT_OK_;
}

int cli_s3_export_opts(const struct cli_args *a, const char *out, struct sp_s3_upload_opts *o)
{
    const char *ps = cli_opt(a, "--part-size");
    bool s3 = sp_s3_is_url(out);
    memset(o, 0, sizeof *o);
    o->resume_file = cli_opt(a, "--resume-file");
    if (!s3 && (ps || o->resume_file || cli_opt(a, "--jobs") || cli_opt(a, "--endpoint") ||
                cli_opt(a, "--ca-bundle")))
        return cli_usage_error("--part-size, --resume-file, --jobs, --endpoint and --ca-bundle are for -o "
                               "s3://BUCKET/KEY");
    if (ps) {
        int rc = cli_parse_size("--part-size", ps, &o->part_size);
        if (rc != EXIT_OK_)
            return rc;
        if (o->part_size < SP_S3_PART_MIN || o->part_size > SP_S3_PART_MAX)
            return cli_usage_error("--part-size: '%s' is not 5M..5G (S3's part sizes)", ps);
    }
    return parse_jobs(a, &o->jobs);
}

int cli_s3_export_open(const struct cli_args *a, const char *url, const struct sp_s3_upload_opts *o, int *fd,
                       struct sp_s3_uploader **up, struct sp_error *err)
{
    struct sp_s3_config c;
    struct sp_s3_url u;
    int rc = load(a, url, &c, &u, err);
    if (rc == 0)
        rc = sp_s3_uploader_start(&c, &u, o, fd, up, err);
    memset(&c, 0, sizeof c);
    return rc;
}

int cli_s3_export_close(struct cli *c, const char *url, struct sp_s3_uploader *up, int fd, int rc,
                        struct sp_error *err)
{
    close(fd);
    struct sp_error e = {0};
    struct sp_s3_finish f;
    int urc = sp_s3_uploader_finish(up, rc == SP_OK, &f, &e);
    if (urc == 0 && rc == SP_OK && c->json)
        json_key_uint("resumed_parts", f.reused);
    if (f.reused && urc == 0 && rc == SP_OK)
        cli_say(c, "%s: resumed: %u parts were on the server already\n", url, f.reused);
    if (urc < 0) /* the upload's failure, or it caused the writer's */
        *err = e;
    if (f.left[0] && sp_cancel_signal()) /* a stop's line says what it left */
        sp_error_set(err, SP_ECANCELED, "interrupted by %s; %s", sp_cancel_name(sp_cancel_signal()), f.left);
    else if (f.left[0]) { /* the failure, and what it left there */
        char msg[SP_ERROR_MAX];
        snprintf(msg, sizeof msg, "%s", err->msg);
        sp_error_set(err, err->code, "%s; %s", msg, f.left);
    }
    return urc < 0 ? urc : rc;
}

int cli_s3_input_opts(const struct cli_args *a, const char *path)
{
    unsigned jobs;
    if (!sp_s3_is_url(path) && (cli_opt(a, "--jobs") || cli_opt(a, "--endpoint") || cli_opt(a, "--ca-bundle")))
        return cli_usage_error("--jobs, --endpoint and --ca-bundle are for s3://BUCKET/KEY");
    return parse_jobs(a, &jobs);
}

int cli_s3_convert_opts(const struct cli_args *a, const char *in, const char *out, struct sp_s3_upload_opts *o)
{
    if (sp_s3_is_url(out)) /* its --jobs, --endpoint and --ca-bundle serve an s3:// IN too */
        return cli_s3_export_opts(a, out, o);
    memset(o, 0, sizeof *o);
    if (cli_opt(a, "--part-size") || cli_opt(a, "--resume-file"))
        return cli_usage_error("--part-size and --resume-file are for an s3://BUCKET/KEY OUT");
    return cli_s3_input_opts(a, in);
}

int cli_s3_input_open(const struct cli_args *a, const char *url, struct cli_s3_input *in, struct sp_error *err)
{
    struct sp_s3_config c;
    struct sp_s3_url u;
    unsigned jobs = SP_S3_JOBS_DEFAULT;
    memset(in, 0, sizeof *in);
    in->fd = -1;
    in->url = url;
    int rc = load(a, url, &c, &u, err);
    parse_jobs(a, &jobs); /* checked by cli_s3_input_opts */
    if (rc == 0)
        rc = sp_s3_downloader_start(&c, &u, jobs, &in->fd, &in->d, err);
    memset(&c, 0, sizeof c);
    if (rc == 0)
        snprintf(in->path, sizeof in->path, "/dev/fd/%d", in->fd);
    return rc;
}

/* The reader names its input by in->path; the user knows it by its URL. */
static void name_url(const struct cli_s3_input *in, struct sp_error *err)
{
    char out[SP_ERROR_MAX];
    size_t n = 0, plen = strlen(in->path);
    const char *p = err->msg;
    /* n stays inside out: a long URL cuts the message, never overruns it */
    for (const char *hit; n < sizeof out - 1 && (hit = strstr(p, in->path)) != NULL; p = hit + plen) {
        int w = snprintf(out + n, sizeof out - n, "%.*s%s", (int)(hit - p), p, in->url);
        n = w < 0 ? sizeof out - 1 : sp_min_u64(n + (size_t)w, sizeof out - 1);
    }
    if (n < sizeof out - 1)
        snprintf(out + n, sizeof out - n, "%s", p);
    memcpy(err->msg, out, sizeof out);
}

int cli_s3_input_close(struct cli_s3_input *in, int rc, struct sp_error *err)
{
    close(in->fd);
    struct sp_error e = {0};
    int drc = sp_s3_downloader_finish(in->d, &e);
    if (drc < 0) { /* the download's failure is the cause of the reader's */
        *err = e;
        return drc;
    }
    if (rc != SP_OK)
        name_url(in, err);
    return rc;
}
