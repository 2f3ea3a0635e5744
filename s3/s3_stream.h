/* An S3 object as a pipe: an archive writer writes into an uploader's
 * pipe, an archive reader reads from a downloader's, and neither knows it
 * talks to S3 (s3.h does the requests).
 *
 * Upload: the stream is cut into parts in order; up to `jobs` parts are in
 * flight, each in its own buffer, so memory is bounded by part size x
 * (jobs + 1). The object appears only at CompleteMultipartUpload; any
 * failure, or a stop, aborts the upload (no parts left on the server).
 *
 * Download: the object is read with ranged GETs, `jobs` ranges in flight,
 * and written to the pipe in order; an object shorter than its HEAD said
 * is an error. */
#ifndef SP_S3_STREAM_H
#define SP_S3_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "s3/s3.h"

#define SP_S3_JOBS_DEFAULT 4
#define SP_S3_JOBS_MAX 64
/* Without a fixed part size, parts start at SP_S3_PART_FIRST and double
 * every SP_S3_PART_STEP parts up to SP_S3_PART_TOP: small archives use
 * little memory, and 10,000 parts still hold 7.9 TiB (5 TiB, S3's object
 * limit, within about 8,500). */
#define SP_S3_PART_FIRST (16ull << 20)
#define SP_S3_PART_STEP 1000u
#define SP_S3_PART_TOP (2ull << 30)
#define SP_S3_GET_CHUNK (8ull << 20)  /* one ranged GET */

struct sp_s3_upload_opts {
    uint64_t part_size;  /* 0: growing, as above; else SP_S3_PART_MIN..SP_S3_PART_MAX */
    unsigned jobs;       /* parts in flight; 0: SP_S3_JOBS_DEFAULT */
    bool replace;        /* an existing object may be replaced (else refused) */
    /* NULL, or a file naming the multipart upload while it runs: a run
     * killed before it could abort (SIGKILL, a crash) leaves the upload and
     * the file; the next run with the file lists the parts the server has
     * and uploads only those whose size and MD5 differ from the new
     * stream's (an export of a snapshot is the same bytes again). Removed
     * when the upload completes or is aborted. */
    const char *resume_file;
};

/* The size of part number n (1-based) under o. */
uint64_t sp_s3_part_size(const struct sp_s3_upload_opts *o, unsigned n);

struct sp_s3_uploader;

/* Checks the object (absent unless replace), starts the multipart upload
 * (so wrong keys or a missing bucket fail here, before any work) and the
 * threads; *fd is the pipe's write end, the caller's to write and close. */
int sp_s3_uploader_start(const struct sp_s3_config *c, const struct sp_s3_url *u, const struct sp_s3_upload_opts *o,
                         int *fd, struct sp_s3_uploader **out, struct sp_error *err);
/* What an upload came to, besides its error. */
struct sp_s3_finish {
    unsigned reused;         /* parts a resumed upload did not send again */
    char left[SP_ERROR_MAX]; /* "" or what stays on the server (the abort failed too) */
};

/* After the writer closed *fd: ok (the writer succeeded) completes the
 * upload if every part went up; otherwise, or on any upload error, the
 * upload is aborted. Frees up. <0 with err: the upload's own error, the
 * cause of the writer's if it failed. */
int sp_s3_uploader_finish(struct sp_s3_uploader *up, bool ok, struct sp_s3_finish *out, struct sp_error *err);

/* The resume file: 1 read (id, *part_size), 0 there is none, <0 an error
 * (another URL's file, not a resume file). */
int sp_s3_resume_read(const char *path, const struct sp_s3_url *u, uint64_t *part_size, char *id, size_t idsz,
                      struct sp_error *err);
int sp_s3_resume_parse(const char *text, const struct sp_s3_url *u, uint64_t *part_size, char *id, size_t idsz,
                       struct sp_error *err);
/* Writes it atomically (a temporary, fsync, rename). */
int sp_s3_resume_write(const char *path, const struct sp_s3_url *u, uint64_t part_size, const char *id,
                       struct sp_error *err);

struct sp_s3_downloader;

/* HEADs the object (missing, refused: an error here) and starts the
 * threads; *fd is the pipe's read end, the caller's to read and close. */
int sp_s3_downloader_start(const struct sp_s3_config *c, const struct sp_s3_url *u, unsigned jobs, int *fd,
                           struct sp_s3_downloader **out, struct sp_error *err);
/* After the reader closed *fd: waits for the threads. Returns the
 * download's error (a failed GET, a short object), 0 if it had none. */
int sp_s3_downloader_finish(struct sp_s3_downloader *d, struct sp_error *err);

#endif
