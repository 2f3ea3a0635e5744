#include "archive/manifest.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "base/util.h"

#define KIND_COUNT 3
#define KINDS_ALL ((1u << KIND_COUNT) - 1)

/* The largest RSA modulus OpenSSL accepts is 16384 bits
 * (OPENSSL_RSA_MAX_MODULUS_BITS); EC and DSA signatures are shorter. */
#define CERT_SIG_MAX 2048

/* An algorithm token longer than any spelling we know is not one. */
#define ALG_TOKEN_MAX 16

/* Key and certificate files are small; a larger one is not what we want. */
#define PEM_FILE_MAX (1u << 20)

static const struct {
    const char *name; /* as we write it */
    size_t len;       /* digest bytes */
} kinds[KIND_COUNT] = {
    [SP_DIGEST_SHA1] = {"SHA1", 20},
    [SP_DIGEST_SHA256] = {"SHA256", 32},
    [SP_DIGEST_SHA512] = {"SHA512", 64},
};

/* What producers write: ours (VMware, VirtualBox), "SHA-256", and OpenSSL
 * 3's `openssl dgst` output "SHA2-256". */
static const struct {
    const char *s;
    enum sp_digest_kind k;
} spellings[] = {
    {"SHA1", SP_DIGEST_SHA1},       {"SHA-1", SP_DIGEST_SHA1},
    {"SHA256", SP_DIGEST_SHA256},   {"SHA-256", SP_DIGEST_SHA256}, {"SHA2-256", SP_DIGEST_SHA256},
    {"SHA512", SP_DIGEST_SHA512},   {"SHA-512", SP_DIGEST_SHA512}, {"SHA2-512", SP_DIGEST_SHA512},
};

static bool kind_valid(enum sp_digest_kind k) { return (unsigned)k < KIND_COUNT; }

static const EVP_MD *kind_md(enum sp_digest_kind k)
{
    switch (k) {
    case SP_DIGEST_SHA1: return EVP_sha1();
    case SP_DIGEST_SHA256: return EVP_sha256();
    case SP_DIGEST_SHA512: return EVP_sha512();
    }
    return NULL;
}

const char *sp_digest_name(enum sp_digest_kind k)
{
    return kind_valid(k) ? kinds[k].name : "unknown";
}

/* Looks up len bytes of s (not NUL-terminated) among the spellings. */
static bool lookup_alg(const char *s, size_t len, enum sp_digest_kind *k)
{
    for (size_t i = 0; i < sizeof spellings / sizeof spellings[0]; i++) {
        if (strlen(spellings[i].s) == len && strncasecmp(spellings[i].s, s, len) == 0) {
            *k = spellings[i].k;
            return true;
        }
    }
    return false;
}

int sp_digest_parse_name(const char *s, enum sp_digest_kind *k)
{
    if (!s || !k || !lookup_alg(s, strlen(s), k))
        return SP_EINVAL;
    return SP_OK;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool all_hex(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (hex_value(s[i]) < 0)
            return false;
    return true;
}

/* Puts ": <OpenSSL's reason>" after the message and empties OpenSSL's error
 * queue, so that no stale error is left for the next caller to see. */
static int ossl_error(struct sp_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int ossl_error(struct sp_error *err, int code, const char *fmt, ...)
{
    char msg[SP_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *why = ERR_reason_error_string(ERR_peek_last_error());
    ERR_clear_error();
    if (why)
        return sp_error_set(err, code, "%s: %s", msg, why);
    return sp_error_set(err, code, "%s", msg);
}

/* ---- digests ---- */

struct sp_digest {
    unsigned mask;
    bool finished;
    EVP_MD_CTX *ctx[KIND_COUNT];
    char hex[KIND_COUNT][SP_DIGEST_HEX_MAX]; /* "" until finished, or if that failed */
};

int sp_digest_new(unsigned kinds_mask, struct sp_digest **out, struct sp_error *err)
{
    *out = NULL;
    if (!kinds_mask || (kinds_mask & ~KINDS_ALL))
        return sp_error_set(err, SP_EINVAL, "digest: no or unknown kinds in mask 0x%x", kinds_mask);
    struct sp_digest *d = calloc(1, sizeof *d);
    if (!d)
        return sp_error_set(err, SP_ENOMEM, "digest: out of memory");
    d->mask = kinds_mask;
    for (int k = 0; k < KIND_COUNT; k++) {
        if (!(kinds_mask & (1u << k)))
            continue;
        d->ctx[k] = EVP_MD_CTX_new();
        if (!d->ctx[k] || !EVP_DigestInit_ex(d->ctx[k], kind_md((enum sp_digest_kind)k), NULL)) {
            sp_digest_free(d);
            return ossl_error(err, SP_ENOMEM, "digest: cannot start %s", kinds[k].name);
        }
    }
    *out = d;
    return SP_OK;
}

int sp_digest_update(struct sp_digest *d, const void *buf, size_t len, struct sp_error *err)
{
    if (d->finished)
        return sp_error_set(err, SP_EINVAL, "digest: update after final");
    if (len == 0)
        return SP_OK;
    if (!buf)
        return sp_error_set(err, SP_EINVAL, "digest: no bytes to add");
    for (int k = 0; k < KIND_COUNT; k++) {
        if (d->ctx[k] && !EVP_DigestUpdate(d->ctx[k], buf, len))
            return ossl_error(err, SP_EINVAL, "digest: %s update failed", kinds[k].name);
    }
    return SP_OK;
}

/* Ends the stream for every kind at once, so each final is a lookup. */
static int finish_all(struct sp_digest *d, struct sp_error *err)
{
    d->finished = true;
    for (int k = 0; k < KIND_COUNT; k++) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned n = 0;
        if (!d->ctx[k])
            continue;
        if (!EVP_DigestFinal_ex(d->ctx[k], md, &n) || n != kinds[k].len)
            return ossl_error(err, SP_EINVAL, "digest: %s final failed", kinds[k].name);
        sp_hex_encode(md, n, d->hex[k]);
    }
    return SP_OK;
}

int sp_digest_final(struct sp_digest *d, enum sp_digest_kind k, char hex[SP_DIGEST_HEX_MAX], struct sp_error *err)
{
    hex[0] = '\0';
    if (!kind_valid(k) || !(d->mask & (1u << k)))
        return sp_error_set(err, SP_EINVAL, "digest: %s was not asked for", sp_digest_name(k));
    if (!d->finished) {
        int rc = finish_all(d, err);
        if (rc)
            return rc;
    }
    if (!d->hex[k][0])
        return sp_error_set(err, SP_EINVAL, "digest: %s failed", kinds[k].name);
    memcpy(hex, d->hex[k], SP_DIGEST_HEX_MAX);
    return SP_OK;
}

void sp_digest_free(struct sp_digest *d)
{
    if (!d)
        return;
    for (int k = 0; k < KIND_COUNT; k++)
        EVP_MD_CTX_free(d->ctx[k]);
    free(d);
}

/* ---- manifest lines ---- */

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

static bool is_alg_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* One "ALG(name)= value" line, as ranges into the text. */
struct mf_line {
    const char *alg, *name, *value;
    size_t alg_len, name_len, value_len;
};

static void trim(const char **s, size_t *len)
{
    while (*len && is_blank(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len && is_blank((*s)[*len - 1]))
        (*len)--;
}

/* Splits a line with blanks allowed around every token. The value (hex)
 * has no '=', so the last '=' ends the name part, and the name runs from
 * the first '(' to the ')' before that '=': a name may hold '(' or ')'. */
static bool split_line(const char *s, size_t len, struct mf_line *l)
{
    trim(&s, &len);
    const char *eq = len ? memrchr(s, '=', len) : NULL;
    if (!eq)
        return false;
    l->value = eq + 1;
    l->value_len = len - (size_t)(eq + 1 - s);
    trim(&l->value, &l->value_len);

    size_t left = (size_t)(eq - s);
    trim(&s, &left);
    if (left == 0 || s[left - 1] != ')')
        return false;
    left--; /* the ')' */
    size_t a = 0;
    while (a < left && is_alg_char(s[a]))
        a++;
    l->alg = s;
    l->alg_len = a;
    while (a < left && is_blank(s[a]))
        a++;
    if (l->alg_len == 0 || a == left || s[a] != '(' || l->value_len == 0)
        return false;
    l->name = s + a + 1;
    l->name_len = left - a - 1;
    return true;
}

/* Why name cannot be a package member, or NULL when it can. Slashes and
 * ".." would step out of the package folder; VirtualBox reads '\\' as a
 * slash. */
static const char *name_problem(const char *name, size_t len)
{
    if (len == 0)
        return "empty name";
    if (len >= SP_MANIFEST_NAME_MAX)
        return "name too long";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f)
            return "control character in name";
        if (c == '/' || c == '\\')
            return "path separator in name";
        if (c == '.' && i + 1 < len && name[i + 1] == '.')
            return "\"..\" in name";
    }
    if (len == 1 && name[0] == '.')
        return "name is \".\"";
    return NULL;
}

/* Checks one split line and fills e; lineno names the line in errors. */
static int parse_entry(const struct mf_line *l, int lineno, struct sp_manifest_entry *e, struct sp_error *err)
{
    if (!lookup_alg(l->alg, l->alg_len, &e->kind)) {
        int n = l->alg_len > ALG_TOKEN_MAX ? ALG_TOKEN_MAX : (int)l->alg_len;
        return sp_error_set(err, SP_EUNSUPPORTED, "line %d: digest %.*s is not supported (SHA1, SHA256, SHA512 are)",
                            lineno, n, l->alg);
    }
    const char *why = name_problem(l->name, l->name_len);
    if (why)
        return sp_error_set(err, SP_EFORMAT, "line %d: %s", lineno, why);
    size_t want = 2 * kinds[e->kind].len;
    if (l->value_len != want)
        return sp_error_set(err, SP_EFORMAT, "line %d: %s digest of %.*s has %zu hex digits, not %zu", lineno,
                            kinds[e->kind].name, (int)l->name_len, l->name, l->value_len, want);
    if (!all_hex(l->value, l->value_len))
        return sp_error_set(err, SP_EFORMAT, "line %d: digest of %.*s is not hex", lineno, (int)l->name_len, l->name);
    memcpy(e->name, l->name, l->name_len);
    e->name[l->name_len] = '\0';
    for (size_t i = 0; i < want; i++)
        e->hex[i] = "0123456789abcdef"[hex_value(l->value[i])];
    e->hex[want] = '\0';
    return SP_OK;
}

/* Appends e, growing the array; *cap is its allocated count. */
static int append_entry(struct sp_manifest *m, int *cap, const struct sp_manifest_entry *e, struct sp_error *err)
{
    if (m->n == *cap) {
        int ncap = *cap ? *cap * 2 : 16;
        if (ncap > SP_MANIFEST_MAX_ENTRIES)
            ncap = SP_MANIFEST_MAX_ENTRIES;
        struct sp_manifest_entry *ne = realloc(m->e, (size_t)ncap * sizeof *ne);
        if (!ne)
            return sp_error_set(err, SP_ENOMEM, "manifest: out of memory");
        m->e = ne;
        *cap = ncap;
    }
    m->e[m->n++] = *e;
    return SP_OK;
}

static int parse_line(struct sp_manifest *m, int *cap, const char *s, size_t len, int lineno, struct sp_error *err)
{
    struct mf_line l;
    struct sp_manifest_entry e;
    trim(&s, &len);
    if (len == 0)
        return SP_OK;
    if (!split_line(s, len, &l))
        return sp_error_set(err, SP_EFORMAT, "line %d: not a digest line (ALG(name)= hex)", lineno);
    int rc = parse_entry(&l, lineno, &e, err);
    if (rc)
        return rc;
    /* Quadratic, but n is capped at SP_MANIFEST_MAX_ENTRIES and is a
     * handful in practice. */
    if (sp_manifest_find(m, e.name))
        return sp_error_set(err, SP_EFORMAT, "line %d: %s is listed twice", lineno, e.name);
    if (m->n >= SP_MANIFEST_MAX_ENTRIES)
        return sp_error_set(err, SP_ELIMIT, "line %d: more than %d entries", lineno, SP_MANIFEST_MAX_ENTRIES);
    return append_entry(m, cap, &e, err);
}

int sp_manifest_parse(const char *text, size_t len, struct sp_manifest *m, struct sp_error *err)
{
    m->e = NULL;
    m->n = 0;
    if (len > SP_MANIFEST_MAX_TEXT)
        return sp_error_set(err, SP_ELIMIT, "manifest is %zu bytes, more than %u", len, SP_MANIFEST_MAX_TEXT);
    int cap = 0, lineno = 0;
    size_t off = 0;
    while (off < len) {
        const char *p = text + off;
        const char *nl = memchr(p, '\n', len - off);
        size_t n = nl ? (size_t)(nl - p) : len - off;
        int rc = parse_line(m, &cap, p, n, ++lineno, err);
        if (rc) {
            sp_manifest_free(m);
            return rc;
        }
        off += n + 1;
    }
    return SP_OK;
}

const struct sp_manifest_entry *sp_manifest_find(const struct sp_manifest *m, const char *name)
{
    if (!m || !name)
        return NULL;
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->e[i].name, name) == 0)
            return &m->e[i];
    return NULL;
}

void sp_manifest_free(struct sp_manifest *m)
{
    if (!m)
        return;
    free(m->e);
    m->e = NULL;
    m->n = 0;
}

/* ---- manifest writer ---- */

/* Checks that entry i (0-based) would parse back the same; *line_len gets
 * the length of its line. */
static int check_entry(const struct sp_manifest_entry *e, int i, size_t *line_len, struct sp_error *err)
{
    if (!kind_valid(e->kind))
        return sp_error_set(err, SP_EINVAL, "manifest entry %d: unknown digest kind %d", i + 1, (int)e->kind);
    size_t nlen = strnlen(e->name, sizeof e->name);
    const char *why = nlen == sizeof e->name ? "name not terminated" : name_problem(e->name, nlen);
    /* Readers other than ours end the name at the first ')' or split on '='. */
    if (!why && strpbrk(e->name, "()="))
        why = "'(', ')' or '=' in name";
    if (why)
        return sp_error_set(err, SP_EINVAL, "manifest entry %d: %s", i + 1, why);
    size_t hlen = strnlen(e->hex, sizeof e->hex);
    size_t want = 2 * kinds[e->kind].len;
    bool lower = hlen == want && strspn(e->hex, "0123456789abcdef") == want;
    if (!lower)
        return sp_error_set(err, SP_EINVAL, "manifest entry %d (%s): %s digest is not %zu lowercase hex digits",
                            i + 1, e->name, kinds[e->kind].name, want);
    /* ALG ( name ) = ' ' hex '\n' */
    *line_len = strlen(kinds[e->kind].name) + 1 + nlen + 3 + hlen + 1;
    return SP_OK;
}

int sp_manifest_format(const struct sp_manifest *m, char **out, size_t *len, struct sp_error *err)
{
    *out = NULL;
    *len = 0;
    if (m->n < 0 || m->n > SP_MANIFEST_MAX_ENTRIES || (m->n && !m->e))
        return sp_error_set(err, SP_EINVAL, "manifest: %d entries, at most %d", m->n, SP_MANIFEST_MAX_ENTRIES);
    size_t total = 0;
    for (int i = 0; i < m->n; i++) {
        size_t line_len = 0;
        int rc = check_entry(&m->e[i], i, &line_len, err);
        if (rc)
            return rc;
        total += line_len; /* at most 4096 lines of < 400 bytes: no overflow */
    }
    char *buf = malloc(total + 1);
    if (!buf)
        return sp_error_set(err, SP_ENOMEM, "manifest: out of memory");
    size_t off = 0;
    for (int i = 0; i < m->n; i++) {
        const struct sp_manifest_entry *e = &m->e[i];
        int n = snprintf(buf + off, total + 1 - off, "%s(%s)= %s\n", kinds[e->kind].name, e->name, e->hex);
        off += (size_t)n;
    }
    buf[total] = '\0';
    *out = buf;
    *len = total;
    return SP_OK;
}

/* ---- certificate: reading keys and certificates ---- */

/* Reads a whole small file into a NUL-terminated buffer the caller frees
 * (with OPENSSL_clear_free when it may hold a key). */
static int read_small_file(const char *path, char **out, size_t *out_len, struct sp_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return sp_error_errno(err, errno, "%s", path);
    int rc = SP_OK;
    char *buf = NULL;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        rc = sp_error_errno(err, errno, "%s", path);
        goto out;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > PEM_FILE_MAX) {
        rc = sp_error_set(err, SP_EFORMAT, "%s: not a regular file of at most %u bytes", path, PEM_FILE_MAX);
        goto out;
    }
    size_t size = (size_t)st.st_size;
    buf = malloc(size + 1);
    if (!buf) {
        rc = sp_error_set(err, SP_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    if (fread(buf, 1, size, f) != size) {
        rc = ferror(f) ? sp_error_errno(err, errno, "%s", path) : sp_error_set(err, SP_EIO, "%s: file shrank", path);
        goto out;
    }
    buf[size] = '\0';
    *out = buf;
    *out_len = size;
    buf = NULL;
out:
    free(buf);
    fclose(f);
    return rc;
}

/* A library never prompts: an encrypted key fails to load. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

static int load_key(const char *path, EVP_PKEY **out, struct sp_error *err)
{
    char *text;
    size_t len;
    int rc = read_small_file(path, &text, &len, err);
    if (rc)
        return rc;
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    *out = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
    BIO_free(bio);
    OPENSSL_clear_free(text, len + 1);
    if (!*out)
        return ossl_error(err, SP_EFORMAT, "%s: not an unencrypted PEM private key", path);
    return SP_OK;
}

/* Reads every PEM certificate in bio, in order; false when one is damaged
 * or there is none. Text around the blocks is skipped. */
static bool read_certs(BIO *bio, STACK_OF(X509) **out)
{
    STACK_OF(X509) *certs = sk_X509_new_null();
    X509 *c;
    if (!certs)
        return false;
    while ((c = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
        if (!sk_X509_push(certs, c)) {
            X509_free(c);
            goto fail;
        }
    }
    /* The loop ends at the end of the text ("no start line") or at a
     * damaged block. */
    unsigned long e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) != ERR_LIB_PEM || ERR_GET_REASON(e) != PEM_R_NO_START_LINE || sk_X509_num(certs) == 0)
        goto fail;
    ERR_clear_error();
    *out = certs;
    return true;
fail:
    sk_X509_pop_free(certs, X509_free);
    return false;
}

static int load_certs(const char *path, STACK_OF(X509) **out, struct sp_error *err)
{
    char *text;
    size_t len;
    int rc = read_small_file(path, &text, &len, err);
    if (rc)
        return rc;
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    bool ok = bio && read_certs(bio, out);
    BIO_free(bio);
    /* The file may hold the private key too. */
    OPENSSL_clear_free(text, len + 1);
    if (!ok)
        return ossl_error(err, SP_EFORMAT, "%s: no valid PEM certificate", path);
    return SP_OK;
}

/* ---- certificate: signing ---- */

static int sign_bytes(EVP_PKEY *key, enum sp_digest_kind kind, const void *mf, size_t mf_len, unsigned char **sig,
                      size_t *sig_len, struct sp_error *err)
{
    *sig = NULL;
    int rc = SP_OK;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestSignInit(ctx, NULL, kind_md(kind), NULL, key) != 1 ||
        EVP_DigestSign(ctx, NULL, sig_len, mf, mf_len) != 1) {
        rc = ossl_error(err, SP_EUNSUPPORTED, "cannot sign with a %s key and %s", EVP_PKEY_get0_type_name(key),
                        kinds[kind].name);
        goto out;
    }
    *sig = malloc(*sig_len);
    if (!*sig) {
        rc = sp_error_set(err, SP_ENOMEM, "signature: out of memory");
        goto out;
    }
    if (EVP_DigestSign(ctx, *sig, sig_len, mf, mf_len) != 1 || *sig_len > CERT_SIG_MAX) {
        rc = ossl_error(err, SP_EINVAL, "signing the manifest failed");
        free(*sig);
        *sig = NULL;
    }
out:
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* "ALG(mf_name)= hex\n" and the certificates, into a malloc'd string. */
static int write_cert_text(enum sp_digest_kind kind, const char *mf_name, const unsigned char *sig, size_t sig_len,
                           STACK_OF(X509) *certs, char **out, size_t *out_len, struct sp_error *err)
{
    char hex[2 * CERT_SIG_MAX + 1];
    sp_hex_encode(sig, sig_len, hex);
    int rc = SP_OK;
    BIO *bio = BIO_new(BIO_s_mem());
    bool ok = bio && BIO_printf(bio, "%s(%s)= %s\n", kinds[kind].name, mf_name, hex) > 0;
    for (int i = 0; ok && i < sk_X509_num(certs); i++)
        ok = PEM_write_bio_X509(bio, sk_X509_value(certs, i)) == 1;
    char *data = NULL;
    long n = ok ? BIO_get_mem_data(bio, &data) : 0;
    if (!ok || n <= 0 || !(*out = malloc((size_t)n + 1))) {
        rc = ossl_error(err, SP_ENOMEM, "certificate text: out of memory");
        goto out;
    }
    memcpy(*out, data, (size_t)n);
    (*out)[n] = '\0';
    *out_len = (size_t)n;
out:
    BIO_free(bio);
    return rc;
}

int sp_cert_sign(const char *key_pem_path, const char *cert_pem_path, enum sp_digest_kind kind,
                 const char *mf_name, const void *mf, size_t mf_len, char **out, size_t *out_len,
                 struct sp_error *err)
{
    *out = NULL;
    *out_len = 0;
    if (!kind_valid(kind))
        return sp_error_set(err, SP_EINVAL, "certificate: unknown digest kind %d", (int)kind);
    const char *why = mf_name ? name_problem(mf_name, strlen(mf_name)) : "no name";
    if (!why && strpbrk(mf_name, "()="))
        why = "'(', ')' or '=' in name";
    if (why)
        return sp_error_set(err, SP_EINVAL, "certificate: manifest name: %s", why);
    if (!mf && mf_len)
        return sp_error_set(err, SP_EINVAL, "certificate: no manifest bytes");

    EVP_PKEY *key = NULL;
    STACK_OF(X509) *certs = NULL;
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    int rc = load_key(key_pem_path, &key, err);
    if (!rc)
        rc = load_certs(cert_pem_path, &certs, err);
    if (!rc && X509_check_private_key(sk_X509_value(certs, 0), key) != 1)
        rc = ossl_error(err, SP_EINVAL, "%s does not match the certificate in %s", key_pem_path, cert_pem_path);
    if (!rc)
        rc = sign_bytes(key, kind, mf, mf_len, &sig, &sig_len, err);
    if (!rc)
        rc = write_cert_text(kind, mf_name, sig, sig_len, certs, out, out_len, err);
    free(sig);
    sk_X509_pop_free(certs, X509_free);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return rc;
}

/* ---- certificate: verifying ---- */

/* Checks the first line of a .cert: the algorithm, the signed file's name
 * and the signature, decoded into sig. */
static int parse_sig_line(const char *s, size_t len, const char *mf_name, enum sp_digest_kind *kind,
                          unsigned char *sig, size_t *sig_len, struct sp_error *err)
{
    struct mf_line l;
    if (!split_line(s, len, &l))
        return sp_error_set(err, SP_EFORMAT, "certificate line 1: not a signature line (ALG(name)= hex)");
    if (!lookup_alg(l.alg, l.alg_len, kind)) {
        int n = l.alg_len > ALG_TOKEN_MAX ? ALG_TOKEN_MAX : (int)l.alg_len;
        return sp_error_set(err, SP_EUNSUPPORTED, "certificate line 1: digest %.*s is not supported", n, l.alg);
    }
    const char *why = name_problem(l.name, l.name_len);
    if (why)
        return sp_error_set(err, SP_EFORMAT, "certificate line 1: %s", why);
    if (l.name_len != strlen(mf_name) || memcmp(l.name, mf_name, l.name_len) != 0)
        return sp_error_set(err, SP_EFORMAT, "certificate signs %.*s, not %s", (int)l.name_len, l.name, mf_name);
    if (l.value_len % 2 || l.value_len > 2 * CERT_SIG_MAX || !all_hex(l.value, l.value_len))
        return sp_error_set(err, SP_EFORMAT, "certificate line 1: signature is not hex of at most %d bytes",
                            CERT_SIG_MAX);
    *sig_len = l.value_len / 2;
    for (size_t i = 0; i < *sig_len; i++)
        sig[i] = (unsigned char)(hex_value(l.value[2 * i]) << 4 | hex_value(l.value[2 * i + 1]));
    return SP_OK;
}

static int verify_sig(X509 *signer, enum sp_digest_kind kind, const unsigned char *sig, size_t sig_len,
                      const void *mf, size_t mf_len, struct sp_error *err)
{
    EVP_PKEY *pub = X509_get0_pubkey(signer);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = pub && ctx && EVP_DigestVerifyInit(ctx, NULL, kind_md(kind), NULL, pub) == 1 &&
             EVP_DigestVerify(ctx, sig, sig_len, mf, mf_len) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    if (!ok)
        return sp_error_set(err, SP_EFORMAT, "bad signature: the manifest does not match its certificate");
    return SP_OK;
}

/* Fills the trust fields of info: the signer against the system's CAs,
 * the other certificates of the .cert as untrusted intermediates. */
static int check_trust(STACK_OF(X509) *certs, struct sp_cert_info *info, struct sp_error *err)
{
    int rc = SP_OK;
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    if (!store || !ctx) {
        rc = sp_error_set(err, SP_ENOMEM, "certificate: out of memory");
        goto out;
    }
    /* No CA bundle on this system only means nothing is trusted. */
    X509_STORE_set_default_paths(store);
    if (X509_STORE_CTX_init(ctx, store, sk_X509_value(certs, 0), certs) != 1) {
        rc = ossl_error(err, SP_ENOMEM, "certificate: cannot check the chain");
        goto out;
    }
    info->trusted = X509_verify_cert(ctx) == 1;
    if (!info->trusted)
        snprintf(info->trust_problem, sizeof info->trust_problem, "%s",
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
out:
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    ERR_clear_error();
    return rc;
}

static void describe_signer(X509 *signer, enum sp_digest_kind kind, struct sp_cert_info *info)
{
    X509_NAME_oneline(X509_get_subject_name(signer), info->subject, sizeof info->subject);
    X509_NAME_oneline(X509_get_issuer_name(signer), info->issuer, sizeof info->issuer);
    info->kind = kind;
}

int sp_cert_verify(const char *text, size_t len, const char *mf_name, const void *mf, size_t mf_len,
                   struct sp_cert_info *info, struct sp_error *err)
{
    struct sp_cert_info scratch;
    if (!info)
        info = &scratch;
    memset(info, 0, sizeof *info);
    if (len > SP_CERT_MAX_TEXT)
        return sp_error_set(err, SP_ELIMIT, "certificate is %zu bytes, more than %u", len, SP_CERT_MAX_TEXT);
    if (!mf_name || (!mf && mf_len) || (!text && len))
        return sp_error_set(err, SP_EINVAL, "certificate: no manifest name or bytes");
    const char *nl = len ? memchr(text, '\n', len) : NULL;
    if (!nl)
        return sp_error_set(err, SP_EFORMAT, "certificate: no certificate after the signature line");

    enum sp_digest_kind kind;
    unsigned char sig[CERT_SIG_MAX];
    size_t sig_len = 0;
    int rc = parse_sig_line(text, (size_t)(nl - text), mf_name, &kind, sig, &sig_len, err);
    if (rc)
        return rc;
    STACK_OF(X509) *certs = NULL;
    size_t rest = len - (size_t)(nl + 1 - text); /* <= SP_CERT_MAX_TEXT, fits an int */
    BIO *bio = BIO_new_mem_buf(nl + 1, (int)rest);
    bool ok = bio && read_certs(bio, &certs);
    BIO_free(bio);
    if (!ok)
        return ossl_error(err, SP_EFORMAT, "certificate: no valid PEM certificate after the signature line");
    X509 *signer = sk_X509_value(certs, 0);
    rc = verify_sig(signer, kind, sig, sig_len, mf, mf_len, err);
    if (!rc) {
        describe_signer(signer, kind, info);
        rc = check_trust(certs, info, err);
    }
    sk_X509_pop_free(certs, X509_free);
    return rc;
}
