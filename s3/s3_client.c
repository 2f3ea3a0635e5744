/* S3 requests over libcurl (s3.h). curl signs (CURLOPT_AWS_SIGV4) but does
 * not send x-amz-content-sha256, which S3 servers require: it is added here,
 * the SHA-256 of the body, so the server checks every byte it gets. */
#include "s3/s3.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/cancel.h"
#include "base/util.h"
#include "s3/s3_xml.h"

/* An answer other than data (XML: an upload id, a list, an error) is small;
 * a larger one is not an S3 server's. */
#define RESP_MAX (1u << 20)
/* the endpoint, the key percent-encoded, a query of an upload id or two
 * markers percent-encoded */
#define URL_MAX (SP_S3_PATH_MAX + 3 * SP_S3_KEY_MAX + 6 * SP_S3_MARKER_MAX + 256)
/* ListMultipartUploads pages (1000 uploads each on AWS) before the listing
 * counts as endless */
#define UPLOADS_PAGES_MAX 100000u
#define CONNECT_TIMEOUT_S 15L
#define HEX_SHA256 (2 * 32 + 1)
#define B64_MD5 25
#define COMPLETE_PART_XML 200   /* <Part>...</Part> around a number and an ETag */

struct sp_s3 {
    struct sp_s3_config c;
    struct sp_s3_url u;
    CURL *curl;
    char errbuf[CURL_ERROR_SIZE];
    /* the current answer */
    long status;
    char *resp;          /* the body, NUL-terminated, RESP_MAX at most */
    size_t resp_len;
    bool resp_over;
    uint8_t *sink;       /* a ranged GET's body goes here */
    size_t sink_cap, sink_len;
    char etag[SP_S3_ETAG_MAX];
    char if_match[SP_S3_ETAG_MAX]; /* GETs read only this version of the object; "": any */
};

struct req {
    const char *op;       /* for messages: "upload part 3" */
    unsigned attempts;    /* 0: the configuration's */
    unsigned budget_s;    /* 0: none; else all attempts and waits end within it */
    const char *method;   /* GET HEAD PUT POST DELETE */
    const char *query;    /* "" or "uploadId=..." (names in byte order) */
    bool bucket_only;     /* the bucket's address, not the object's */
    const void *body;
    size_t body_len;
    const char *range;    /* "a-b" or NULL */
    void *sink;
    size_t sink_cap;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ------------------------------------------------------------ words */

struct code_words {
    const char *code;
    const char *words;
};

static const struct code_words CODE_WORDS[] = {
    {"AccessDenied", "access denied"},
    {"InvalidAccessKeyId", "unknown access key"},
    {"SignatureDoesNotMatch", "signature does not match (wrong secret key?)"},
    {"RequestTimeTooSkewed", "the clock differs too much from the server's"},
    {"ExpiredToken", "the session token has expired"},
    {"InvalidToken", "the session token is not valid"},
    {"NoSuchBucket", "no such bucket"},
    {"NoSuchKey", "no such object"},
    {"NoSuchUpload", "no such multipart upload (aborted or completed)"},
    {"BadDigest", "the server got other bytes than were sent (digest mismatch)"},
    {"InvalidDigest", "the server got other bytes than were sent (digest mismatch)"},
    {"XAmzContentSHA256Mismatch", "the server got other bytes than were sent (digest mismatch)"},
    {"EntityTooSmall", "a part is smaller than the server allows"},
    {"EntityTooLarge", "the object is larger than the server allows"},
    {"InvalidPart", "a part is missing or its ETag differs"},
    {"InvalidRange", "the range is past the object's end"},
    {"PreconditionFailed", "the object was replaced while it was being read"},
    {"QuotaExceeded", "quota exceeded"},
    {"SlowDown", "the server asks to slow down"},
    {"InternalError", "the server failed"},
    {"ServiceUnavailable", "the service is unavailable"},
};

static const char *status_words(long status)
{
    switch (status) {
    case 400: return "bad request";
    case 401: case 403: return "access denied";
    case 404: return "not found";
    case 409: return "conflict";
    case 411: return "length required";
    case 416: return "the range is past the object's end";
    case 429: return "the server asks to slow down";
    case 500: return "the server failed";
    case 503: return "the service is unavailable";
    default: return status >= 500 ? "the server failed" : "refused";
    }
}

void sp_s3_error_words(long status, const char *code, char *out, size_t outsz)
{
    const char *words = NULL;
    for (size_t i = 0; code && *code && i < sizeof CODE_WORDS / sizeof CODE_WORDS[0]; i++)
        if (strcmp(CODE_WORDS[i].code, code) == 0)
            words = CODE_WORDS[i].words;
    if (!words)
        words = status_words(status);
    if (code && *code)
        snprintf(out, outsz, "%s (%ld %s)", words, status, code);
    else
        snprintf(out, outsz, "%s (HTTP %ld)", words, status);
}

int sp_s3_status_code(long status)
{
    if (status == 404)
        return SP_ENOTFOUND;
    if (status == 416)
        return SP_ELIMIT;
    if (status == 400 || status == 401 || status == 403 || status == 409)
        return SP_EINVAL;
    return SP_EIO;
}

/* ------------------------------------------------------------ digests */

static int digests(const void *buf, size_t len, char sha_hex[HEX_SHA256], char md5_b64[B64_MD5])
{
    unsigned char sha[EVP_MAX_MD_SIZE], md5[EVP_MAX_MD_SIZE];
    unsigned int shan = 0, md5n = 0;
    if (!EVP_Digest(buf, len, sha, &shan, EVP_sha256(), NULL) ||
        !EVP_Digest(buf, len, md5, &md5n, EVP_md5(), NULL))
        return SP_EIO;
    sp_hex_encode(sha, shan, sha_hex);
    EVP_EncodeBlock((unsigned char *)md5_b64, md5, (int)md5n);
    return 0;
}

/* ------------------------------------------------------------ handle */

int sp_s3_new(const struct sp_s3_config *c, const struct sp_s3_url *u, struct sp_s3 **out, struct sp_error *err)
{
    *out = NULL;
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK)
        return sp_error_set(err, SP_EIO, "libcurl: %s", curl_easy_strerror(curl_init_rc));
    struct sp_s3 *s = calloc(1, sizeof *s);
    char *resp = malloc(RESP_MAX + 1);
    CURL *curl = curl_easy_init();
    if (!s || !resp || !curl) {
        free(s);
        free(resp);
        curl_easy_cleanup(curl);
        return sp_error_set(err, SP_ENOMEM, "s3: out of memory");
    }
    s->c = *c;
    s->u = *u;
    /* a configuration made by hand, not by sp_s3_config_load */
    if (!s->c.attempts)
        s->c.attempts = SP_S3_ATTEMPTS;
    if (!s->c.timeout_s)
        s->c.timeout_s = SP_S3_TIMEOUT_S;
    s->curl = curl;
    s->resp = resp;
    *out = s;
    return 0;
}

void sp_s3_free(struct sp_s3 *s)
{
    if (!s)
        return;
    curl_easy_cleanup(s->curl);
    /* the secret leaves no copy behind in freed memory */
    memset(&s->c, 0, sizeof s->c);
    free(s->resp);
    free(s);
}

/* ------------------------------------------------------------ URLs */

static bool unreserved(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
           ch == '.' || ch == '_' || ch == '~';
}

/* Appends s percent-encoded as SigV4 wants (keep_slash: a path). */
static void append_enc(char *out, size_t sz, const char *s, bool keep_slash)
{
    size_t n = strlen(out);
    for (const unsigned char *p = (const unsigned char *)s; *p && n + 4 < sz; p++) {
        if (unreserved(*p) || (keep_slash && *p == '/'))
            out[n++] = (char)*p;
        else
            n += (size_t)snprintf(out + n, sz - n, "%%%02X", *p);
    }
    out[n] = '\0';
}

static void build_url(const struct sp_s3 *s, const struct req *r, char *url, size_t sz)
{
    if (s->c.endpoint[0])
        snprintf(url, sz, "%s/%s/", s->c.endpoint, s->u.bucket);
    else
        snprintf(url, sz, "https://%s.s3.%s.amazonaws.com/", s->u.bucket, s->c.region);
    if (!r->bucket_only)
        append_enc(url, sz, s->u.key, true);
    if (r->query && *r->query) {
        size_t n = strlen(url);
        snprintf(url + n, sz - n, "?%s", r->query);
    }
}

/* ------------------------------------------------------------ curl */

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct sp_s3 *s = arg;
    size_t n = size * nmemb;
    if (s->sink && s->status / 100 == 2) {
        if (n > s->sink_cap - s->sink_len)
            return 0; /* more than asked for: fails the transfer */
        memcpy(s->sink + s->sink_len, data, n);
        s->sink_len += n;
        return n;
    }
    size_t room = RESP_MAX - s->resp_len;
    if (n > room)
        s->resp_over = true;
    memcpy(s->resp + s->resp_len, data, n < room ? n : room);
    s->resp_len += n < room ? n : room;
    s->resp[s->resp_len] = '\0';
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    struct sp_s3 *s = arg;
    size_t n = size * nmemb;
    if (n > 9 && strncmp(data, "HTTP/", 5) == 0) {
        /* a new answer (after a 100 Continue or a redirect) */
        s->status = strtol(data + 9, NULL, 10);
        s->resp_len = 0;
        s->resp[0] = '\0';
    } else if (n > 5 && strncasecmp(data, "etag:", 5) == 0) {
        const char *v = data + 5, *e = data + n;
        while (v < e && (*v == ' ' || *v == '\t'))
            v++;
        while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
            e--;
        if ((size_t)(e - v) < sizeof s->etag) {
            memcpy(s->etag, v, (size_t)(e - v));
            s->etag[e - v] = '\0';
        }
    }
    return n;
}

static int append_header(struct curl_slist **h, const char *name, const char *value)
{
    char line[SP_S3_TOKEN_MAX + 64];
    snprintf(line, sizeof line, "%s: %s", name, value);
    struct curl_slist *n = curl_slist_append(*h, line);
    if (!n)
        return SP_ENOMEM;
    *h = n;
    return 0;
}

static int make_headers(const struct sp_s3 *s, const struct req *r, struct curl_slist **h)
{
    char sha[HEX_SHA256], md5[B64_MD5];
    int rc = 0;
    if (digests(r->body ? r->body : "", r->body_len, sha, md5) != 0)
        return SP_EIO;
    rc |= append_header(h, "x-amz-content-sha256", sha);
    if (r->body_len)
        rc |= append_header(h, "Content-MD5", md5);
    if (s->c.session_token[0])
        rc |= append_header(h, "x-amz-security-token", s->c.session_token);
    if (r->range) {
        char range[64];
        snprintf(range, sizeof range, "bytes=%s", r->range);
        rc |= append_header(h, "Range", range);
    }
    if (s->if_match[0] && strcmp(r->method, "GET") == 0)
        rc |= append_header(h, "If-Match", s->if_match);
    /* not curl's form type on a POST */
    rc |= append_header(h, "Content-Type", "application/octet-stream");
    return rc ? SP_ENOMEM : 0;
}

static void set_method(CURL *c, const struct req *r)
{
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(r->method, "DELETE") == 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
    } else {
        /* PUT and POST: the body as POST fields, which curl also hashes
         * for the signature */
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body ? r->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
    }
}

static void set_options(struct sp_s3 *s, const struct req *r, const char *url, struct curl_slist *h, long left_ms)
{
    CURL *c = s->curl;
    char sigv4[SP_S3_FIELD_MAX + 32];
    snprintf(sigv4, sizeof sigv4, "aws:amz:%s:s3", s->c.region);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, sigv4);
    curl_easy_setopt(c, CURLOPT_USERNAME, s->c.access_key);
    curl_easy_setopt(c, CURLOPT_PASSWORD, s->c.secret_key);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, s->errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)s->c.timeout_s);
    if (left_ms > 0) /* a server that takes the request and never answers */
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, left_ms);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (s->c.ca_bundle[0])
        curl_easy_setopt(c, CURLOPT_CAINFO, s->c.ca_bundle);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, s);
    set_method(c, r);
}

static bool transient_curl(CURLcode rc)
{
    return rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_SEND_ERROR ||
           rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING || rc == CURLE_PARTIAL_FILE ||
           rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_HTTP2_STREAM || rc == CURLE_SSL_CONNECT_ERROR;
}

/* A body the server got other than it was sent (a byte changed on the
 * way: the SHA-256 or Content-MD5 sent with it does not match): our copy
 * is good, so sending it again is worth it, a few times. */
static bool digest_refused(const struct sp_s3 *s, const struct req *r)
{
    char code[64];
    if (s->status != 400 || !r->body_len)
        return false;
    sp_s3_xml_text(s->resp, "Code", code, sizeof code);
    return strcmp(code, "BadDigest") == 0 || strcmp(code, "XAmzContentSHA256Mismatch") == 0 ||
           strcmp(code, "InvalidDigest") == 0;
}

static bool transient_status(const struct sp_s3 *s, const struct req *r)
{
    return s->status >= 500 || s->status == 429 || s->status == 408 || digest_refused(s, r);
}

/* One attempt: curl's status, the answer in s. */
static CURLcode attempt(struct sp_s3 *s, const struct req *r, const char *url, struct curl_slist *h, long left_ms)
{
    set_options(s, r, url, h, left_ms);
    s->status = 0;
    s->resp_len = 0;
    s->resp[0] = '\0';
    s->resp_over = false;
    s->etag[0] = '\0';
    s->errbuf[0] = '\0';
    s->sink = r->sink;
    s->sink_cap = r->sink_cap;
    s->sink_len = 0;
    return curl_easy_perform(s->curl);
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* What is left of r's budget at the next attempt after a wait of wait_ms:
 * 0 for no budget, <0 for none left. */
static long budget_left_ms(const struct req *r, long start_ms, long wait_ms)
{
    if (!r->budget_s)
        return 0;
    long left = (long)r->budget_s * 1000L - (now_ms() - start_ms) - wait_ms;
    return left > 0 ? left : -1;
}

static int request_error(struct sp_s3 *s, const struct req *r, CURLcode rc, struct sp_error *err)
{
    const char *k = r->bucket_only ? "" : s->u.key;
    if (rc != CURLE_OK) {
        const char *why = s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc);
        return sp_error_set(err, SP_EIO, "s3://%s/%s: %s: %s", s->u.bucket, k, r->op, why);
    }
    char code[128], words[256];
    sp_s3_xml_text(s->resp, "Code", code, sizeof code);
    sp_s3_error_words(s->status, code, words, sizeof words);
    return sp_error_set(err, sp_s3_status_code(s->status), "s3://%s/%s: %s: %s", s->u.bucket, k, r->op, words);
}

/* Performs r with retries; 0 on a 2xx answer. */
static int perform(struct sp_s3 *s, const struct req *r, struct sp_error *err)
{
    char url[URL_MAX];
    struct curl_slist *h = NULL;
    build_url(s, r, url, sizeof url);
    if (make_headers(s, r, &h) != 0) {
        curl_slist_free_all(h);
        return sp_error_set(err, SP_ENOMEM, "s3://%s/%s: %s: out of memory", s->u.bucket, s->u.key, r->op);
    }
    CURLcode rc = CURLE_OK;
    long wait = SP_S3_RETRY_WAIT_MS;
    unsigned attempts = r->attempts ? r->attempts : s->c.attempts;
    long start = now_ms();
    for (unsigned i = 0; i < attempts; i++) {
        long left = budget_left_ms(r, start, i > 0 ? wait : 0);
        if (left < 0)
            break;
        if (i > 0) {
            nap_ms(wait);
            wait = wait * 2 > SP_S3_RETRY_WAIT_MAX_MS ? SP_S3_RETRY_WAIT_MAX_MS : wait * 2;
        }
        if (sp_cancel_check(err) != 0)
            break;
        rc = attempt(s, r, url, h, left);
        if (rc == CURLE_OK && !transient_status(s, r))
            break;
        if (rc != CURLE_OK && !transient_curl(rc))
            break;
    }
    curl_slist_free_all(h);
    if (err && err->code == SP_ECANCELED)
        return SP_ECANCELED;
    /* S3 may answer 200 to CompleteMultipartUpload and fail in the body */
    bool ok = rc == CURLE_OK && s->status / 100 == 2 && !s->resp_over && !strstr(s->resp, "<Error>");
    return ok ? 0 : request_error(s, r, rc, err);
}

/* ------------------------------------------------------------ operations */

/* A HEAD's error has no body, so no S3 code: a 1-byte GET asks again for
 * the words (NoSuchBucket or NoSuchKey, SignatureDoesNotMatch ...). */
static int head_why(struct sp_s3 *s, int rc, struct sp_error *err)
{
    if (s->status < 400 || s->status >= 500)
        return rc;
    uint8_t byte;
    struct sp_error e = {0};
    struct req r = {.op = "head", .method = "GET", .range = "0-0", .sink = &byte, .sink_cap = 1};
    int grc = perform(s, &r, &e);
    if (grc < 0 && strchr(e.msg, '(') && !strstr(e.msg, "(HTTP "))
        return sp_error_set(err, grc, "%s", e.msg);
    return rc;
}

int sp_s3_head(struct sp_s3 *s, uint64_t *size, struct sp_error *err)
{
    struct req r = {.op = "head", .method = "HEAD"};
    int rc = perform(s, &r, err);
    if (rc < 0)
        return head_why(s, rc, err);
    curl_off_t len = -1;
    if (curl_easy_getinfo(s->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len) != CURLE_OK || len < 0)
        return sp_error_set(err, SP_EFORMAT, "s3://%s/%s: head: no Content-Length", s->u.bucket, s->u.key);
    *size = (uint64_t)len;
    return 0;
}

const char *sp_s3_etag(const struct sp_s3 *s) { return s->etag; }

void sp_s3_pin_etag(struct sp_s3 *s, const char *etag)
{
    snprintf(s->if_match, sizeof s->if_match, "%s", etag ? etag : "");
}

int sp_s3_get_range(struct sp_s3 *s, uint64_t off, void *buf, size_t len, size_t *got, struct sp_error *err)
{
    char range[64], op[64];
    *got = 0;
    if (len == 0)
        return 0;
    snprintf(range, sizeof range, "%llu-%llu", (unsigned long long)off, (unsigned long long)(off + len - 1));
    snprintf(op, sizeof op, "read at %llu", (unsigned long long)off);
    struct req r = {.op = op, .method = "GET", .range = range, .sink = buf, .sink_cap = len};
    int rc = perform(s, &r, err);
    if (rc < 0)
        return rc;
    if (s->status != 206 && !(s->status == 200 && off == 0))
        return sp_error_set(err, SP_EFORMAT, "s3://%s/%s: %s: the server ignored the range (HTTP %ld)",
                            s->u.bucket, s->u.key, op, s->status);
    *got = s->sink_len;
    return 0;
}

int sp_s3_upload_create(struct sp_s3 *s, char *id, size_t idsz, struct sp_error *err)
{
    struct req r = {.op = "create multipart upload", .method = "POST", .query = "uploads="};
    int rc = perform(s, &r, err);
    if (rc < 0)
        return rc;
    sp_s3_xml_text(s->resp, "UploadId", id, idsz);
    if (!id[0])
        return sp_error_set(err, SP_EFORMAT, "s3://%s/%s: create multipart upload: no UploadId in the answer",
                            s->u.bucket, s->u.key);
    return 0;
}

static void upload_query(const char *prefix, const char *id, char *q, size_t sz)
{
    snprintf(q, sz, "%suploadId=", prefix);
    append_enc(q, sz, id, false);
}

int sp_s3_upload_part(struct sp_s3 *s, const char *id, unsigned number, const void *buf, size_t len,
                      char *etag, size_t etagsz, struct sp_error *err)
{
    char q[3 * SP_S3_UPLOAD_ID_MAX + 64], prefix[48], op[48];
    snprintf(prefix, sizeof prefix, "partNumber=%u&", number);
    upload_query(prefix, id, q, sizeof q);
    snprintf(op, sizeof op, "upload part %u", number);
    struct req r = {.op = op, .method = "PUT", .query = q, .body = buf, .body_len = len};
    int rc = perform(s, &r, err);
    if (rc < 0)
        return rc;
    if (!s->etag[0] || strlen(s->etag) >= etagsz)
        return sp_error_set(err, SP_EFORMAT, "s3://%s/%s: %s: no usable ETag in the answer", s->u.bucket,
                            s->u.key, op);
    snprintf(etag, etagsz, "%s", s->etag);
    return 0;
}

int sp_s3_upload_complete(struct sp_s3 *s, const char *id, char (*etags)[SP_S3_ETAG_MAX], unsigned nparts,
                          struct sp_error *err)
{
    size_t cap = 128 + (size_t)nparts * COMPLETE_PART_XML, n = 0;
    char *xml = malloc(cap);
    if (!xml)
        return sp_error_set(err, SP_ENOMEM, "s3://%s/%s: out of memory", s->u.bucket, s->u.key);
    n += (size_t)snprintf(xml + n, cap - n, "<CompleteMultipartUpload>");
    for (unsigned i = 0; i < nparts; i++)
        n += (size_t)snprintf(xml + n, cap - n, "<Part><PartNumber>%u</PartNumber><ETag>%s</ETag></Part>", i + 1,
                              etags[i]);
    n += (size_t)snprintf(xml + n, cap - n, "</CompleteMultipartUpload>");
    char q[3 * SP_S3_UPLOAD_ID_MAX + 16];
    upload_query("", id, q, sizeof q);
    struct req r = {.op = "complete multipart upload", .method = "POST", .query = q, .body = xml, .body_len = n};
    int rc = perform(s, &r, err);
    free(xml);
    return rc;
}

int sp_s3_upload_abort(struct sp_s3 *s, const char *id, struct sp_error *err)
{
    char q[3 * SP_S3_UPLOAD_ID_MAX + 16];
    upload_query("", id, q, sizeof q);
    /* the last chance to free the parts: it waits out a longer outage, but
     * not a server that takes requests and never answers (12 attempts of
     * the low-speed timeout were 12 minutes) */
    unsigned attempts = s->c.attempts > SP_S3_ABORT_ATTEMPTS ? s->c.attempts : SP_S3_ABORT_ATTEMPTS;
    unsigned budget = SP_S3_ABORT_BUDGET_TIMEOUTS * s->c.timeout_s;
    if (budget < SP_S3_ABORT_BUDGET_MIN_S)
        budget = SP_S3_ABORT_BUDGET_MIN_S;
    struct req r = {.op = "abort multipart upload", .method = "DELETE", .query = q, .attempts = attempts,
                    .budget_s = budget};
    int rc = perform(s, &r, err);
    /* an attempt that timed out here may have been carried out there: the
     * upload is gone either way */
    if (rc == SP_ENOTFOUND) {
        sp_error_clear(err);
        return 0;
    }
    return rc;
}

void sp_s3_md5_hex(const void *buf, size_t len, char out[33])
{
    unsigned char md5[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    out[0] = '\0';
    if (EVP_Digest(buf, len, md5, &n, EVP_md5(), NULL) && n == 16)
        sp_hex_encode(md5, n, out);
}

int sp_s3_upload_parts(struct sp_s3 *s, const char *id, char (*etags)[SP_S3_ETAG_MAX], uint64_t *sizes,
                       struct sp_error *err)
{
    memset(etags, 0, (size_t)SP_S3_PARTS_MAX * SP_S3_ETAG_MAX);
    memset(sizes, 0, SP_S3_PARTS_MAX * sizeof *sizes);
    char marker[16] = "0";
    for (unsigned page = 0; page <= SP_S3_PARTS_MAX; page++) {
        char q[3 * SP_S3_UPLOAD_ID_MAX + 64], prefix[48];
        snprintf(prefix, sizeof prefix, "part-number-marker=%s&", marker);
        upload_query(prefix, id, q, sizeof q);
        struct req r = {.op = "list parts", .method = "GET", .query = q};
        int rc = perform(s, &r, err);
        if (rc < 0)
            return rc;
        struct sp_s3_page pg;
        sp_s3_xml_parts(s->resp, etags, sizes, &pg);
        if (!pg.truncated)
            return 0;
        /* a truncated page must move on: a number past the last one */
        char *end;
        unsigned long next = strtoul(pg.next, &end, 10);
        if (!pg.next[0] || *end || next <= strtoul(marker, NULL, 10) || next >= SP_S3_PARTS_MAX)
            break;
        snprintf(marker, sizeof marker, "%lu", next);
    }
    return sp_error_set(err, SP_EFORMAT, "s3://%s/%s: list parts: the listing does not end", s->u.bucket, s->u.key);
}

/* The query of a ListMultipartUploads page after the markers (names in
 * byte order). */
static void uploads_query(const struct sp_s3_page *pg, char *q, size_t sz)
{
    q[0] = '\0';
    if (pg->next[0]) {
        snprintf(q, sz, "key-marker=");
        append_enc(q, sz, pg->next, false);
        size_t n = strlen(q);
        snprintf(q + n, sz - n, "&upload-id-marker=");
        append_enc(q, sz, pg->next_id, false);
        n = strlen(q);
        snprintf(q + n, sz - n, "&");
    }
    size_t n = strlen(q);
    snprintf(q + n, sz - n, "uploads=");
}

int sp_s3_upload_count(struct sp_s3 *s, unsigned *count, struct sp_error *err)
{
    struct sp_s3_page pg = {0};
    char q[3 * (2 * SP_S3_MARKER_MAX) + 64];
    *count = 0;
    /* a page holds at least one upload: more pages than that is a loop */
    for (unsigned page = 0; page <= UPLOADS_PAGES_MAX; page++) {
        char key[SP_S3_MARKER_MAX], id[SP_S3_MARKER_MAX];
        snprintf(key, sizeof key, "%s", pg.next);
        snprintf(id, sizeof id, "%s", pg.next_id);
        uploads_query(&pg, q, sizeof q);
        struct req r = {.op = "list multipart uploads", .method = "GET", .query = q, .bucket_only = true};
        int rc = perform(s, &r, err);
        if (rc < 0)
            return rc;
        sp_s3_xml_uploads(s->resp, count, &pg);
        if (!pg.truncated)
            return 0;
        if (!pg.next[0] || (strcmp(pg.next, key) == 0 && strcmp(pg.next_id, id) == 0))
            break;
    }
    return sp_error_set(err, SP_EFORMAT, "s3://%s/: list multipart uploads: the listing does not end", s->u.bucket);
}
