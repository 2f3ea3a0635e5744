/* The S3 side of export, import, verify, info and convert: an
 * s3://BUCKET/KEY given where a file would be. Options: --endpoint,
 * --ca-bundle, --jobs, and for an output --part-size and --resume-file
 * (cli/commands.c). */
#ifndef SP_CLI_S3_H
#define SP_CLI_S3_H

#include "cli/cli.h"
#include "s3/s3_stream.h"

/* export's --part-size, --resume-file and --jobs (usage errors print
 * themselves). */
int cli_s3_export_opts(const struct cli_args *a, const char *out, struct sp_s3_upload_opts *o);
/* Starts the upload to url; *fd is where the archive goes. */
int cli_s3_export_open(const struct cli_args *a, const char *url, const struct sp_s3_upload_opts *o, int *fd,
                       struct sp_s3_uploader **up, struct sp_error *err);
/* Closes fd and completes the upload (rc: the export's status) or aborts
 * it; returns the final status, err the cause. A completed upload says
 * how many parts a resumed one found on the server: a line unless none,
 * and with --json "resumed_parts" (0 too) in the object being written. */
int cli_s3_export_close(struct cli *c, const char *url, struct sp_s3_uploader *up, int fd, int rc,
                        struct sp_error *err);

/* convert's: --part-size and --resume-file need an s3:// OUT; --jobs,
 * --endpoint and --ca-bundle an s3:// IN or OUT, and serve both (usage
 * errors print themselves). */
int cli_s3_convert_opts(const struct cli_args *a, const char *in, const char *out, struct sp_s3_upload_opts *o);

struct cli_s3_input {
    const char *url;
    char path[32];                 /* /dev/fd/N: what the archive reader opens */
    int fd;
    struct sp_s3_downloader *d;
};

/* import's, verify's and info's --jobs, --endpoint, --ca-bundle (usage
 * errors print themselves). */
int cli_s3_input_opts(const struct cli_args *a, const char *path);
int cli_s3_input_open(const struct cli_args *a, const char *url, struct cli_s3_input *in, struct sp_error *err);
/* After the reader (status rc): the download's error if it had one, else
 * rc with the reader's message naming the URL. */
int cli_s3_input_close(struct cli_s3_input *in, int rc, struct sp_error *err);

#endif
