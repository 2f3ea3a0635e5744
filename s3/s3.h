/* S3 object storage: addresses, credentials and the few requests an
 * archive needs (multipart upload, HEAD, ranged GET), over libcurl with
 * its SigV4 signing. Transport only: what travels is the caller's.
 *
 * Where things come from, as S3 tools take them:
 *   keys     AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN),
 *            else the profile AWS_PROFILE (default "default") of
 *            AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials
 *   region   AWS_REGION, AWS_DEFAULT_REGION, the profile's region in
 *            AWS_CONFIG_FILE or ~/.aws/config, else us-east-1
 *   endpoint the caller's (--endpoint), AWS_ENDPOINT_URL, else AWS's
 *            https://s3.REGION.amazonaws.com; a custom endpoint is
 *            addressed path-style (ENDPOINT/BUCKET/KEY), AWS's
 *            virtual-hosted (BUCKET.s3.REGION.amazonaws.com/KEY)
 *   TLS      verified always; the caller's CA bundle (--ca-bundle) or
 *            AWS_CA_BUNDLE replaces the system's
 *
 * Messages name the object as s3://BUCKET/KEY and never carry a key's
 * secret. A handle (struct sp_s3) is one connection: one per thread. */
#ifndef SP_S3_H
#define SP_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define SP_S3_PREFIX "s3://"
/* S3's own limits (AWS's documented ones; other servers keep to them). */
#define SP_S3_BUCKET_MIN 3
#define SP_S3_BUCKET_MAX 63
#define SP_S3_KEY_MAX 1024            /* bytes of UTF-8 */
#define SP_S3_PART_MIN (5ull << 20)   /* every part but the last */
#define SP_S3_PART_MAX (5ull << 30)
#define SP_S3_PARTS_MAX 10000
#define SP_S3_OBJECT_MAX (5ull << 40)
#define SP_S3_UPLOAD_ID_MAX 1024      /* no documented limit; AWS's are ~150 */
#define SP_S3_ETAG_MAX 128            /* a quoted MD5 or md5-of-md5s-N */

struct sp_s3_url {
    char bucket[SP_S3_BUCKET_MAX + 1];
    char key[SP_S3_KEY_MAX + 1];
};

/* Whether s starts with s3:// (an S3 address rather than a file name). */
bool sp_s3_is_url(const char *s);
/* Parses s3://BUCKET/KEY (a bucket name as S3 allows: 3-63 of a-z 0-9 . -;
 * a non-empty key). */
int sp_s3_url_parse(const char *s, struct sp_s3_url *u, struct sp_error *err);

#define SP_S3_FIELD_MAX 256   /* a key id, a secret, a region, a profile */
#define SP_S3_TOKEN_MAX 4096  /* a session token (STS's are ~1 KiB) */
#define SP_S3_PATH_MAX 4096

struct sp_s3_config {
    char access_key[SP_S3_FIELD_MAX];
    char secret_key[SP_S3_FIELD_MAX];
    char session_token[SP_S3_TOKEN_MAX];  /* "" : none */
    char region[SP_S3_FIELD_MAX];
    char endpoint[SP_S3_PATH_MAX];        /* "" : AWS's for the region */
    char ca_bundle[SP_S3_PATH_MAX];       /* "" : the system's */
    unsigned timeout_s;                   /* SNAPPORT_S3_TIMEOUT, else SP_S3_TIMEOUT_S */
    unsigned attempts;                    /* SNAPPORT_S3_ATTEMPTS, else SP_S3_ATTEMPTS */
};

/* Fills c from the environment and the AWS files (see above). endpoint and
 * ca_bundle (NULL: not given) are the command line's and win. Missing keys
 * are an error that says where they were looked for. SNAPPORT_S3_TIMEOUT
 * (seconds, 1..SP_S3_TIMEOUT_MAX_S) and SNAPPORT_S3_ATTEMPTS
 * (1..SP_S3_ATTEMPTS_MAX) replace the stall timeout and the attempts per
 * request (tests make them short). */
int sp_s3_config_load(struct sp_s3_config *c, const char *endpoint, const char *ca_bundle, struct sp_error *err);

/* Looks up key in [section] of an AWS-style ini text (len bytes): '#' and
 * ';' start comments, whitespace around names and values is dropped, the
 * first match counts. 1 found, 0 not, SP_ELIMIT if the value does not fit
 * out (outsz bytes with its NUL). */
int sp_s3_ini_get(const char *text, size_t len, const char *section, const char *key, char *out, size_t outsz);

/* One line for an S3 error answer: status and the XML <Code> ("" if none)
 * in words, e.g. "access denied (403 AccessDenied)". */
void sp_s3_error_words(long status, const char *code, char *out, size_t outsz);
/* The sp_status for an HTTP status. */
int sp_s3_status_code(long status);

struct sp_s3;

/* A connection for the object u under the configuration c (both are
 * copied). */
int sp_s3_new(const struct sp_s3_config *c, const struct sp_s3_url *u, struct sp_s3 **out, struct sp_error *err);
void sp_s3_free(struct sp_s3 *s);

/* Attempts per request (transient failures: connection errors, timeouts,
 * 5xx, 429, and a body the server got other than it was sent: BadDigest,
 * XAmzContentSHA256Mismatch), waits doubling from SP_S3_RETRY_WAIT_MS up to
 * SP_S3_RETRY_WAIT_MAX_MS: about 12.6 s of waiting in all, enough for a
 * restarted server. An abort, the last chance to free an upload's parts,
 * waits out about 25 s of a server that is down, and gives up on one that
 * does not answer after SP_S3_ABORT_BUDGET_TIMEOUTS timeouts in all. */
#define SP_S3_ATTEMPTS 8
#define SP_S3_ABORT_ATTEMPTS 12
#define SP_S3_ABORT_BUDGET_TIMEOUTS 2
#define SP_S3_ABORT_BUDGET_MIN_S 30
#define SP_S3_RETRY_WAIT_MS 200
#define SP_S3_RETRY_WAIT_MAX_MS 3200
#define SP_S3_ATTEMPTS_MAX 100
/* A transfer that moves less than 1 byte/s for this long counts as a
 * timeout (and is retried). */
#define SP_S3_TIMEOUT_S 60
#define SP_S3_TIMEOUT_MAX_S 3600

/* The object's size. A missing object is SP_ENOTFOUND. */
int sp_s3_head(struct sp_s3 *s, uint64_t *size, struct sp_error *err);
/* The ETag of the last answer (after sp_s3_head: the object's); "" if it
 * had none. */
const char *sp_s3_etag(const struct sp_s3 *s);
/* Later GETs read only the object whose ETag this is (If-Match): an object
 * replaced meanwhile fails them (412, "replaced while it was being read"),
 * so a reader never gets a mix of two versions. NULL or "": any version. */
void sp_s3_pin_etag(struct sp_s3 *s, const char *etag);
/* Reads len bytes at off into buf; *got < len only at the object's end. */
int sp_s3_get_range(struct sp_s3 *s, uint64_t off, void *buf, size_t len, size_t *got, struct sp_error *err);

/* Multipart upload. The server checks every part against the SHA-256 and
 * MD5 sent with it. */
int sp_s3_upload_create(struct sp_s3 *s, char *id, size_t idsz, struct sp_error *err);
/* number 1..SP_S3_PARTS_MAX; etag receives the part's ETag (SP_S3_ETAG_MAX). */
int sp_s3_upload_part(struct sp_s3 *s, const char *id, unsigned number, const void *buf, size_t len,
                      char *etag, size_t etagsz, struct sp_error *err);
/* etags[i] is part i+1's. The object appears only now. */
int sp_s3_upload_complete(struct sp_s3 *s, const char *id, char (*etags)[SP_S3_ETAG_MAX], unsigned nparts,
                          struct sp_error *err);
int sp_s3_upload_abort(struct sp_s3 *s, const char *id, struct sp_error *err);
/* The parts the server holds for upload id (every page): for part n,
 * etags[n-1] its ETag's hex digits without quotes ("" for a part it does not
 * have) and sizes[n-1] its size; both SP_S3_PARTS_MAX long. A missing
 * upload (aborted, completed) is SP_ENOTFOUND. */
int sp_s3_upload_parts(struct sp_s3 *s, const char *id, char (*etags)[SP_S3_ETAG_MAX], uint64_t *sizes,
                       struct sp_error *err);
/* The hex MD5 of buf: a plain part's ETag without its quotes. */
void sp_s3_md5_hex(const void *buf, size_t len, char out[33]);
/* How many multipart uploads are open in the bucket (every page). */
int sp_s3_upload_count(struct sp_s3 *s, unsigned *count, struct sp_error *err);

#endif
