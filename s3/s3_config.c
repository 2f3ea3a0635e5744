/* S3 addresses and where keys, region and endpoint come from (s3.h). */
#include "s3/s3.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The AWS files are a few lines; a larger one is not one of them. */
#define INI_FILE_MAX (1u << 20)
#define DEFAULT_REGION "us-east-1"

bool sp_s3_is_url(const char *s)
{
    return s && strncmp(s, SP_S3_PREFIX, strlen(SP_S3_PREFIX)) == 0;
}

static bool bucket_char_ok(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '-';
}

int sp_s3_url_parse(const char *s, struct sp_s3_url *u, struct sp_error *err)
{
    if (!sp_s3_is_url(s))
        return sp_error_set(err, SP_EINVAL, "%s: not an s3://BUCKET/KEY address", s);
    const char *b = s + strlen(SP_S3_PREFIX);
    const char *slash = strchr(b, '/');
    size_t blen = slash ? (size_t)(slash - b) : strlen(b);
    if (blen < SP_S3_BUCKET_MIN || blen > SP_S3_BUCKET_MAX)
        return sp_error_set(err, SP_EINVAL, "%s: a bucket name has %d to %d characters", s, SP_S3_BUCKET_MIN,
                            SP_S3_BUCKET_MAX);
    for (size_t i = 0; i < blen; i++)
        if (!bucket_char_ok(b[i]))
            return sp_error_set(err, SP_EINVAL, "%s: a bucket name has only a-z, 0-9, '.' and '-'", s);
    if (!slash || slash[1] == '\0')
        return sp_error_set(err, SP_EINVAL, "%s: no object key (s3://BUCKET/KEY)", s);
    if (strlen(slash + 1) > SP_S3_KEY_MAX)
        return sp_error_set(err, SP_ELIMIT, "%s: an object key has at most %d bytes", s, SP_S3_KEY_MAX);
    memcpy(u->bucket, b, blen);
    u->bucket[blen] = '\0';
    snprintf(u->key, sizeof u->key, "%s", slash + 1);
    return 0;
}

/* ------------------------------------------------------------ ini */

static const char *trim(const char *p, const char *end, const char **tend)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        end--;
    *tend = end;
    return p;
}

static bool span_is(const char *p, const char *end, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(end - p) == n && memcmp(p, word, n) == 0;
}

/* One line [p, end): updates *in_section for a header; for a key = value in
 * the section that is key, copies the value. */
static int ini_line(const char *p, const char *end, const char *section, const char *key, bool *in_section,
                    char *out, size_t outsz)
{
    p = trim(p, end, &end);
    if (p == end || *p == '#' || *p == ';')
        return 0;
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        const char *ne;
        const char *name = close ? trim(p + 1, close, &ne) : NULL;
        *in_section = name && span_is(name, ne, section);
        return 0;
    }
    const char *eq = memchr(p, '=', (size_t)(end - p));
    if (!*in_section || !eq)
        return 0;
    const char *ke, *ve;
    const char *k = trim(p, eq, &ke);
    const char *v = trim(eq + 1, end, &ve);
    if (!span_is(k, ke, key))
        return 0;
    if ((size_t)(ve - v) >= outsz)
        return SP_ELIMIT;
    memcpy(out, v, (size_t)(ve - v));
    out[ve - v] = '\0';
    return 1;
}

int sp_s3_ini_get(const char *text, size_t len, const char *section, const char *key, char *out, size_t outsz)
{
    bool in_section = false;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        int rc = ini_line(p, le, section, key, &in_section, out, outsz);
        if (rc != 0)
            return rc;
        p = nl ? nl + 1 : end;
    }
    return 0;
}

/* ------------------------------------------------------------ files */

/* Reads a small file; *text NULL (and 0) if it does not exist. */
static int read_small(const char *path, char **text, size_t *len, struct sp_error *err)
{
    *text = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? 0 : sp_error_errno(err, errno, "%s", path);
    char *buf = malloc(INI_FILE_MAX);
    if (!buf) {
        fclose(f);
        return sp_error_set(err, SP_ENOMEM, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, INI_FILE_MAX, f);
    int bad = ferror(f) ? SP_EIO : n == INI_FILE_MAX ? SP_ELIMIT : 0;
    fclose(f);
    if (bad) {
        free(buf);
        return bad == SP_EIO ? sp_error_set(err, SP_EIO, "%s: cannot read", path)
                             : sp_error_set(err, SP_ELIMIT, "%s: larger than %u bytes", path, INI_FILE_MAX);
    }
    *text = buf;
    *len = n;
    return 0;
}

/* The file named by env, else ~/.aws/NAME, into path. */
static void aws_file(const char *env, const char *name, char *path, size_t sz)
{
    const char *p = getenv(env);
    const char *home = getenv("HOME");
    if (p && *p)
        snprintf(path, sz, "%s", p);
    else
        snprintf(path, sz, "%s/.aws/%s", home && *home ? home : ".", name);
}

/* Copies key of section in file path into out, if there; "" stays if not. */
static int file_get(const char *path, const char *section, const char *key, char *out, size_t outsz,
                    struct sp_error *err)
{
    char *text;
    size_t len;
    int rc = read_small(path, &text, &len, err);
    if (rc < 0 || !text)
        return rc;
    rc = sp_s3_ini_get(text, len, section, key, out, outsz);
    free(text);
    if (rc == SP_ELIMIT)
        return sp_error_set(err, SP_ELIMIT, "%s: [%s] %s: too long", path, section, key);
    return 0;
}

static void env_copy(const char *name, char *out, size_t outsz)
{
    const char *v = getenv(name);
    if (v && *v && strlen(v) < outsz)
        snprintf(out, outsz, "%s", v);
}

static int load_keys(struct sp_s3_config *c, const char *profile, struct sp_error *err)
{
    env_copy("AWS_ACCESS_KEY_ID", c->access_key, sizeof c->access_key);
    env_copy("AWS_SECRET_ACCESS_KEY", c->secret_key, sizeof c->secret_key);
    if (c->access_key[0] && c->secret_key[0]) {
        env_copy("AWS_SESSION_TOKEN", c->session_token, sizeof c->session_token);
        return 0;
    }
    c->access_key[0] = c->secret_key[0] = '\0';
    char path[SP_S3_PATH_MAX];
    aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials", path, sizeof path);
    int rc = file_get(path, profile, "aws_access_key_id", c->access_key, sizeof c->access_key, err);
    if (rc == 0)
        rc = file_get(path, profile, "aws_secret_access_key", c->secret_key, sizeof c->secret_key, err);
    if (rc == 0)
        rc = file_get(path, profile, "aws_session_token", c->session_token, sizeof c->session_token, err);
    if (rc < 0)
        return rc;
    if (!c->access_key[0] || !c->secret_key[0])
        return sp_error_set(err, SP_EINVAL,
                            "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or profile "
                            "[%s] in %s", profile, path);
    return 0;
}

static int load_region(struct sp_s3_config *c, const char *profile, struct sp_error *err)
{
    env_copy("AWS_REGION", c->region, sizeof c->region);
    if (!c->region[0])
        env_copy("AWS_DEFAULT_REGION", c->region, sizeof c->region);
    if (!c->region[0]) {
        char path[SP_S3_PATH_MAX], section[SP_S3_FIELD_MAX + 16];
        aws_file("AWS_CONFIG_FILE", "config", path, sizeof path);
        /* ~/.aws/config names its sections "profile NAME", except default */
        if (strcmp(profile, "default") == 0)
            snprintf(section, sizeof section, "default");
        else
            snprintf(section, sizeof section, "profile %s", profile);
        int rc = file_get(path, section, "region", c->region, sizeof c->region, err);
        if (rc < 0)
            return rc;
    }
    if (!c->region[0])
        snprintf(c->region, sizeof c->region, DEFAULT_REGION);
    for (const char *p = c->region; *p; p++)
        if (!bucket_char_ok(*p))
            return sp_error_set(err, SP_EINVAL, "S3 region %s: only a-z, 0-9 and '-'", c->region);
    return 0;
}

static int load_endpoint(struct sp_s3_config *c, const char *endpoint, const char *ca_bundle,
                         struct sp_error *err)
{
    if (endpoint && *endpoint)
        snprintf(c->endpoint, sizeof c->endpoint, "%s", endpoint);
    else
        env_copy("AWS_ENDPOINT_URL", c->endpoint, sizeof c->endpoint);
    size_t n = strlen(c->endpoint);
    while (n > 0 && c->endpoint[n - 1] == '/')
        c->endpoint[--n] = '\0';
    if (n && strncmp(c->endpoint, "http://", 7) != 0 && strncmp(c->endpoint, "https://", 8) != 0)
        return sp_error_set(err, SP_EINVAL, "S3 endpoint %s: not an http:// or https:// address", c->endpoint);
    if (ca_bundle && *ca_bundle)
        snprintf(c->ca_bundle, sizeof c->ca_bundle, "%s", ca_bundle);
    else
        env_copy("AWS_CA_BUNDLE", c->ca_bundle, sizeof c->ca_bundle);
    return 0;
}

/* A number of env name in [1, max], else def; something else is an error. */
static int env_number(const char *name, unsigned def, unsigned max, unsigned *out, struct sp_error *err)
{
    const char *v = getenv(name);
    *out = def;
    if (!v || !*v)
        return 0;
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    if (*end || v[0] < '0' || v[0] > '9' || n < 1 || n > max)
        return sp_error_set(err, SP_EINVAL, "%s=%s: not a whole number 1..%u", name, v, max);
    *out = (unsigned)n;
    return 0;
}

int sp_s3_config_load(struct sp_s3_config *c, const char *endpoint, const char *ca_bundle, struct sp_error *err)
{
    memset(c, 0, sizeof *c);
    char profile[SP_S3_FIELD_MAX] = "default";
    env_copy("AWS_PROFILE", profile, sizeof profile);
    int rc = load_keys(c, profile, err);
    if (rc == 0)
        rc = load_region(c, profile, err);
    if (rc == 0)
        rc = load_endpoint(c, endpoint, ca_bundle, err);
    if (rc == 0)
        rc = env_number("SNAPPORT_S3_TIMEOUT", SP_S3_TIMEOUT_S, SP_S3_TIMEOUT_MAX_S, &c->timeout_s, err);
    if (rc == 0)
        rc = env_number("SNAPPORT_S3_ATTEMPTS", SP_S3_ATTEMPTS, SP_S3_ATTEMPTS_MAX, &c->attempts, err);
    return rc;
}
