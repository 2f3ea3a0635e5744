#include "archive/manifest.h"

#include <stdarg.h>

#include "tests/unit/testlib.h"

/* FIPS 180-2 / NIST CSHS example vectors: independent of any code here. */
#define SHA1_ABC "a9993e364706816aba3e25717850c26c9cd0d89d"
#define SHA1_EMPTY "da39a3ee5e6b4b0d3255bfef95601890afd80709"
#define SHA1_448 "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
#define SHA1_MILLION_A "34aa973cd4c4daa4f61eeb2bdbad27316534016f"
#define SHA256_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA256_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA256_448 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
#define SHA256_MILLION_A "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
#define SHA512_ABC                                                                                                     \
    "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e" \
    "2a9ac94fa54ca49f"
#define SHA512_EMPTY                                                                                                   \
    "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81" \
    "a538327af927da3e"
#define SHA512_MILLION_A                                                                                               \
    "e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973ebde0ff244877ea60a4cb0432ce577c31beb009c5c2c49aa2e" \
    "4eadb217ad8cc09b"
#define MSG_448 "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"

#define ALL_KINDS (1u << SP_DIGEST_SHA1 | 1u << SP_DIGEST_SHA256 | 1u << SP_DIGEST_SHA512)

static void setup(void) { test_tmp_setup("manifest"); }
static void teardown(void) { test_tmp_teardown(); }
static const char *tpath(const char *name) { return test_tmp_path(name); }

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

static void write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(buf, 1, len, f) == len);
    CHECK(fclose(f) == 0);
}

/* The whole file, NUL-terminated; the caller frees it. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    CHECK(fseek(f, 0, SEEK_END) == 0);
    long n = ftell(f);
    CHECK(n >= 0);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    CHECK(buf != NULL);
    CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

static void oneshot(enum sp_digest_kind k, const void *buf, size_t len, char hex[SP_DIGEST_HEX_MAX])
{
    struct sp_error err;
    struct sp_digest *d;
    CHECK_OK(sp_digest_new(1u << k, &d, &err));
    CHECK_OK(sp_digest_update(d, buf, len, &err));
    CHECK_OK(sp_digest_final(d, k, hex, &err));
    sp_digest_free(d);
}

static void check_digest(enum sp_digest_kind k, const char *msg, const char *want)
{
    char hex[SP_DIGEST_HEX_MAX];
    oneshot(k, msg, strlen(msg), hex);
    if (strcmp(hex, want) != 0) {
        fprintf(stderr, "%s(\"%s\") = %s, want %s\n", sp_digest_name(k), msg, hex, want);
        exit(1);
    }
}

static void digest_vectors(void)
{
    check_digest(SP_DIGEST_SHA1, "abc", SHA1_ABC);
    check_digest(SP_DIGEST_SHA1, "", SHA1_EMPTY);
    check_digest(SP_DIGEST_SHA1, MSG_448, SHA1_448);
    check_digest(SP_DIGEST_SHA256, "abc", SHA256_ABC);
    check_digest(SP_DIGEST_SHA256, "", SHA256_EMPTY);
    check_digest(SP_DIGEST_SHA256, MSG_448, SHA256_448);
    check_digest(SP_DIGEST_SHA512, "abc", SHA512_ABC);
    check_digest(SP_DIGEST_SHA512, "", SHA512_EMPTY);
}

/* One million 'a' in uneven pieces, all kinds at once: the FIPS "million
 * a" vectors, and the same as a one-shot digest of each kind. */
static void digest_incremental(void)
{
    enum { MILLION = 1000000 };
    static const size_t pieces[] = {1, 7, 63, 64, 65, 127, 128, 129, 4096, 65537};
    char *a = malloc(MILLION);
    CHECK(a != NULL);
    memset(a, 'a', MILLION);
    struct sp_error err;
    struct sp_digest *d;
    CHECK_OK(sp_digest_new(ALL_KINDS, &d, &err));
    size_t off = 0;
    for (size_t i = 0; off < MILLION; i++) {
        size_t n = pieces[i % (sizeof pieces / sizeof pieces[0])];
        if (n > MILLION - off)
            n = MILLION - off;
        CHECK_OK(sp_digest_update(d, a + off, n, &err));
        CHECK_OK(sp_digest_update(d, a + off, 0, &err)); /* empty pieces are fine */
        off += n;
    }
    static const char *const want[] = {SHA1_MILLION_A, SHA256_MILLION_A, SHA512_MILLION_A};
    /* Final in an order other than the mask's. */
    static const enum sp_digest_kind order[] = {SP_DIGEST_SHA512, SP_DIGEST_SHA1, SP_DIGEST_SHA256};
    for (int i = 0; i < 3; i++) {
        enum sp_digest_kind k = order[i];
        char hex[SP_DIGEST_HEX_MAX], one[SP_DIGEST_HEX_MAX];
        CHECK_OK(sp_digest_final(d, k, hex, &err));
        CHECK(strcmp(hex, want[k]) == 0);
        oneshot(k, a, MILLION, one);
        CHECK(strcmp(hex, one) == 0);
    }
    sp_digest_free(d);
    free(a);
}

static void digest_misuse(void)
{
    struct sp_error err;
    struct sp_digest *d;
    char hex[SP_DIGEST_HEX_MAX];
    CHECK(sp_digest_new(0, &d, &err) == SP_EINVAL && d == NULL);
    CHECK(sp_digest_new(1u << 3, &d, &err) == SP_EINVAL);
    CHECK_OK(sp_digest_new(1u << SP_DIGEST_SHA256, &d, &err));
    CHECK_OK(sp_digest_update(d, "abc", 3, &err));
    CHECK(sp_digest_final(d, SP_DIGEST_SHA1, hex, &err) == SP_EINVAL);
    CHECK(strstr(err.msg, "SHA1") != NULL);
    CHECK_OK(sp_digest_final(d, SP_DIGEST_SHA256, hex, &err));
    CHECK(strcmp(hex, SHA256_ABC) == 0);
    CHECK(sp_digest_update(d, "x", 1, &err) == SP_EINVAL);
    CHECK_OK(sp_digest_final(d, SP_DIGEST_SHA256, hex, &err)); /* again: the same answer */
    CHECK(strcmp(hex, SHA256_ABC) == 0);
    sp_digest_free(d);
    sp_digest_free(NULL);
}

static void digest_names(void)
{
    CHECK(strcmp(sp_digest_name(SP_DIGEST_SHA1), "SHA1") == 0);
    CHECK(strcmp(sp_digest_name(SP_DIGEST_SHA256), "SHA256") == 0);
    CHECK(strcmp(sp_digest_name(SP_DIGEST_SHA512), "SHA512") == 0);
    static const struct {
        const char *s;
        enum sp_digest_kind k;
    } good[] = {{"sha1", SP_DIGEST_SHA1},       {"SHA1", SP_DIGEST_SHA1},         {"sha256", SP_DIGEST_SHA256},
                {"Sha256", SP_DIGEST_SHA256},   {"SHA-256", SP_DIGEST_SHA256},    {"SHA2-256", SP_DIGEST_SHA256},
                {"sha512", SP_DIGEST_SHA512},   {"SHA-512", SP_DIGEST_SHA512},    {"sha-1", SP_DIGEST_SHA1}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        enum sp_digest_kind k = SP_DIGEST_SHA1;
        CHECK_OK(sp_digest_parse_name(good[i].s, &k));
        CHECK(k == good[i].k);
    }
    static const char *const bad[] = {"md5", "sha", "", "SHA256 ", "sha384", "sha3-256", "SHA2-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum sp_digest_kind k;
        CHECK(sp_digest_parse_name(bad[i], &k) == SP_EINVAL);
    }
}

static void set_entry(struct sp_manifest_entry *e, enum sp_digest_kind k, const char *name, const char *hex)
{
    e->kind = k;
    snprintf(e->name, sizeof e->name, "%s", name);
    snprintf(e->hex, sizeof e->hex, "%s", hex);
}

static void format_exact(void)
{
    struct sp_manifest_entry e[3];
    set_entry(&e[0], SP_DIGEST_SHA256, "web01.ovf", SHA256_ABC);
    set_entry(&e[1], SP_DIGEST_SHA1, "web01-disk1.vmdk", SHA1_EMPTY);
    set_entry(&e[2], SP_DIGEST_SHA512, "web01 disk2.vmdk", SHA512_ABC);
    struct sp_manifest m = {e, 3};
    struct sp_error err;
    char *text;
    size_t len;
    CHECK_OK(sp_manifest_format(&m, &text, &len, &err));
    const char *want = "SHA256(web01.ovf)= " SHA256_ABC "\n"
                       "SHA1(web01-disk1.vmdk)= " SHA1_EMPTY "\n"
                       "SHA512(web01 disk2.vmdk)= " SHA512_ABC "\n";
    CHECK_EQ_U64(len, strlen(want));
    CHECK(memcmp(text, want, len) == 0 && text[len] == '\0');

    struct sp_manifest back;
    CHECK_OK(sp_manifest_parse(text, len, &back, &err));
    CHECK(back.n == 3);
    for (int i = 0; i < 3; i++) {
        CHECK(back.e[i].kind == e[i].kind);
        CHECK(strcmp(back.e[i].name, e[i].name) == 0);
        CHECK(strcmp(back.e[i].hex, e[i].hex) == 0);
    }
    sp_manifest_free(&back);
    free(text);

    struct sp_manifest empty = {NULL, 0};
    CHECK_OK(sp_manifest_format(&empty, &text, &len, &err));
    CHECK(len == 0 && text[0] == '\0');
    free(text);
}

static void expect_format_fails(struct sp_manifest_entry *e, const char *what)
{
    struct sp_manifest m = {e, 1};
    struct sp_error err;
    char *text = (char *)"x";
    size_t len;
    CHECK(sp_manifest_format(&m, &text, &len, &err) == SP_EINVAL);
    CHECK(text == NULL);
    if (!strstr(err.msg, what)) {
        fprintf(stderr, "message \"%s\" does not mention \"%s\"\n", err.msg, what);
        exit(1);
    }
}

static void format_refuses(void)
{
    struct sp_manifest_entry e;
    set_entry(&e, SP_DIGEST_SHA256, "a/b.vmdk", SHA256_ABC);
    expect_format_fails(&e, "path separator");
    set_entry(&e, SP_DIGEST_SHA256, "", SHA256_ABC);
    expect_format_fails(&e, "empty");
    set_entry(&e, SP_DIGEST_SHA256, "a(1).vmdk", SHA256_ABC);
    expect_format_fails(&e, "'('");
    set_entry(&e, SP_DIGEST_SHA256, "x\ny", SHA256_ABC);
    expect_format_fails(&e, "control");
    set_entry(&e, SP_DIGEST_SHA1, "a.ovf", SHA256_ABC);
    expect_format_fails(&e, "40 lowercase hex");
    set_entry(&e, SP_DIGEST_SHA1, "a.ovf", "A9993E364706816ABA3E25717850C26C9CD0D89D");
    expect_format_fails(&e, "lowercase");
    set_entry(&e, SP_DIGEST_SHA1, "a.ovf", SHA1_ABC);
    e.kind = (enum sp_digest_kind)7;
    expect_format_fails(&e, "kind");
    memset(e.name, 'n', sizeof e.name); /* no NUL */
    e.kind = SP_DIGEST_SHA1;
    expect_format_fails(&e, "not terminated");
}

static void parse_ok(const char *text, struct sp_manifest *m)
{
    struct sp_error err;
    int rc = sp_manifest_parse(text, strlen(text), m, &err);
    if (rc) {
        fprintf(stderr, "parse failed (%d): %s\n", rc, err.msg);
        exit(1);
    }
}

static void check_entry(const struct sp_manifest *m, const char *name, enum sp_digest_kind k, const char *hex)
{
    const struct sp_manifest_entry *e = sp_manifest_find(m, name);
    if (!e) {
        fprintf(stderr, "no entry %s\n", name);
        exit(1);
    }
    CHECK(e->kind == k);
    CHECK(strcmp(e->hex, hex) == 0);
}

/* As open-vmdk's ova-compose.py (and VMware's ovftool) write it. */
static void parse_open_vmdk(void)
{
    struct sp_manifest m;
    parse_ok("SHA256(photon.ovf)= " SHA256_ABC "\n"
             "SHA256(photon-disk1.vmdk)= " SHA256_EMPTY "\n",
             &m);
    CHECK(m.n == 2);
    CHECK(strcmp(m.e[0].name, "photon.ovf") == 0 && strcmp(m.e[1].name, "photon-disk1.vmdk") == 0);
    check_entry(&m, "photon.ovf", SP_DIGEST_SHA256, SHA256_ABC);
    check_entry(&m, "photon-disk1.vmdk", SP_DIGEST_SHA256, SHA256_EMPTY);
    CHECK(sp_manifest_find(&m, "photon") == NULL);
    sp_manifest_free(&m);
    CHECK(m.n == 0 && m.e == NULL);

    parse_ok("", &m);
    CHECK(m.n == 0);
    sp_manifest_free(&m);
}

/* VirtualBox (IPRT RTManifestWriteStandard) writes "SHA256 (x) = hex";
 * its reader takes blanks anywhere, upper-case hex is accepted too. */
static void parse_vbox(void)
{
    struct sp_manifest m;
    parse_ok("SHA256 (a.ovf) = BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD\n"
             "SHA1 (a-disk001.vmdk) = " SHA1_ABC "\n"
             "  \tSHA512\t(a disk (2).iso)=" SHA512_EMPTY "   \n"
             "sha1(lower.img)  =  " SHA1_EMPTY "\n",
             &m);
    CHECK(m.n == 4);
    check_entry(&m, "a.ovf", SP_DIGEST_SHA256, SHA256_ABC);
    check_entry(&m, "a-disk001.vmdk", SP_DIGEST_SHA1, SHA1_ABC);
    check_entry(&m, "a disk (2).iso", SP_DIGEST_SHA512, SHA512_EMPTY);
    check_entry(&m, "lower.img", SP_DIGEST_SHA1, SHA1_EMPTY);
    sp_manifest_free(&m);
}

static void parse_crlf(void)
{
    struct sp_manifest m;
    parse_ok("\r\n"
             "SHA256(a.ovf)= " SHA256_ABC "\r\n"
             "\r\n"
             "   \n"
             "SHA256(a-disk1.vmdk)= " SHA256_EMPTY, /* no final newline */
             &m);
    CHECK(m.n == 2);
    check_entry(&m, "a.ovf", SP_DIGEST_SHA256, SHA256_ABC);
    check_entry(&m, "a-disk1.vmdk", SP_DIGEST_SHA256, SHA256_EMPTY);
    sp_manifest_free(&m);
}

/* What `openssl dgst` of OpenSSL 3 prints ("SHA2-256(x)= hex"), produced
 * by the real tool, with the digests computed here. */
static void parse_openssl3(void)
{
    struct sp_manifest m;
    parse_ok("SHA2-256(x.ovf)= " SHA256_ABC "\nSHA2-512(y.vmdk)= " SHA512_ABC "\nSHA-256(z.iso)= " SHA256_EMPTY "\n",
             &m);
    check_entry(&m, "x.ovf", SP_DIGEST_SHA256, SHA256_ABC);
    check_entry(&m, "y.vmdk", SP_DIGEST_SHA512, SHA512_ABC);
    check_entry(&m, "z.iso", SP_DIGEST_SHA256, SHA256_EMPTY);
    sp_manifest_free(&m);

    setup();
    static const char data[] = "snapport manifest test data\n";
    write_file(tpath("x.bin"), data, sizeof data - 1);
    CHECK(run("cd '%s' && cp x.bin y.bin && cp x.bin z.bin && openssl dgst -sha1 x.bin > mf &&"
              " openssl dgst -sha256 y.bin >> mf && openssl dgst -sha512 z.bin >> mf",
              test_tmpdir) == 0);
    size_t len;
    char *text = slurp(tpath("mf"), &len);
    struct sp_error err;
    CHECK_OK(sp_manifest_parse(text, len, &m, &err));
    CHECK(m.n == 3);
    char hex[SP_DIGEST_HEX_MAX];
    oneshot(SP_DIGEST_SHA1, data, sizeof data - 1, hex);
    check_entry(&m, "x.bin", SP_DIGEST_SHA1, hex);
    oneshot(SP_DIGEST_SHA256, data, sizeof data - 1, hex);
    check_entry(&m, "y.bin", SP_DIGEST_SHA256, hex);
    oneshot(SP_DIGEST_SHA512, data, sizeof data - 1, hex);
    check_entry(&m, "z.bin", SP_DIGEST_SHA512, hex);
    sp_manifest_free(&m);
    free(text);
    teardown();
}

/* Parses text expecting code, with a message that mentions what. */
static void parse_fails(const char *text, int code, const char *what)
{
    struct sp_manifest m = {(struct sp_manifest_entry *)1, 7};
    struct sp_error err;
    int rc = sp_manifest_parse(text, strlen(text), &m, &err);
    if (rc != code || !strstr(err.msg, what)) {
        fprintf(stderr, "parse of \"%s\": %d \"%s\", want %d mentioning \"%s\"\n", text, rc, rc ? err.msg : "",
                code, what);
        exit(1);
    }
    CHECK(m.n == 0 && m.e == NULL);
}

#define OK_LINE "SHA256(ok.ovf)= " SHA256_ABC "\n"

static void rejects_hex_length(void)
{
    parse_fails(OK_LINE "SHA256(a.vmdk)= " SHA1_ABC "\n", SP_EFORMAT, "line 2");
    parse_fails(OK_LINE "SHA256(a.vmdk)= " SHA256_ABC "0\n", SP_EFORMAT, "65 hex digits, not 64");
    parse_fails("SHA1(a.vmdk)= " SHA256_ABC "\n", SP_EFORMAT, "line 1");
    parse_fails("SHA512(a.vmdk)= " SHA256_ABC "\n", SP_EFORMAT, "not 128");
    parse_fails("SHA1(a.vmdk)= a9993e364706816aba3e25717850c26c9cd0d8zz\n", SP_EFORMAT, "not hex");
    parse_fails("SHA1(a.vmdk)= a9993e364706816aba3e2571 7850c26c9cd0d89d\n", SP_EFORMAT, "line 1");
}

static void rejects_bad_names(void)
{
    parse_fails(OK_LINE "SHA256(../etc/passwd)= " SHA256_ABC "\n", SP_EFORMAT, "line 2");
    parse_fails("SHA256(/etc/passwd)= " SHA256_ABC "\n", SP_EFORMAT, "path separator");
    parse_fails("SHA256(a/b.vmdk)= " SHA256_ABC "\n", SP_EFORMAT, "path separator");
    parse_fails("SHA256(a\\b.vmdk)= " SHA256_ABC "\n", SP_EFORMAT, "path separator");
    parse_fails("SHA256(..)= " SHA256_ABC "\n", SP_EFORMAT, "\"..\"");
    parse_fails("SHA256(.)= " SHA256_ABC "\n", SP_EFORMAT, "\".\"");
    parse_fails(OK_LINE "SHA1(b.vmdk)= " SHA1_ABC "\n" "SHA256()= " SHA256_ABC "\n", SP_EFORMAT, "line 3: empty name");
    char text[600];
    char longname[300];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    snprintf(text, sizeof text, "SHA256(%s)= %s\n", longname, SHA256_ABC);
    parse_fails(text, SP_EFORMAT, "too long");
    /* A NUL inside the name: the parser works on lengths, not C strings. */
    static const char nul[] = "SHA1(a\0b)= " SHA1_ABC "\n";
    struct sp_manifest m;
    struct sp_error err;
    CHECK(sp_manifest_parse(nul, sizeof nul - 1, &m, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "control character") != NULL);
}

static void rejects_duplicate(void)
{
    parse_fails(OK_LINE "SHA1(a.vmdk)= " SHA1_ABC "\n"
                        "SHA512(ok.ovf)= " SHA512_ABC "\n",
                SP_EFORMAT, "line 3: ok.ovf is listed twice");
}

static void rejects_garbage(void)
{
    parse_fails(OK_LINE "hello world\n", SP_EFORMAT, "line 2: not a digest line");
    parse_fails("SHA256(a.ovf) " SHA256_ABC "\n", SP_EFORMAT, "line 1");
    parse_fails("SHA256 a.ovf = " SHA256_ABC "\n", SP_EFORMAT, "line 1");
    parse_fails("(a.ovf)= " SHA256_ABC "\n", SP_EFORMAT, "line 1");
    parse_fails("SHA256(a.ovf)=\n", SP_EFORMAT, "line 1");
    parse_fails("SHA256(a.ovf= " SHA256_ABC "\n", SP_EFORMAT, "line 1");
    parse_fails("SHA 256(a.ovf)= " SHA256_ABC "\n", SP_EFORMAT, "line 1");
    parse_fails("<?xml version=\"1.0\"?>\n", SP_EFORMAT, "line 1");
}

static void rejects_unsupported(void)
{
    parse_fails(OK_LINE "MD5(a.vmdk)= 900150983cd24fb0d6963f7d28e17f72\n", SP_EUNSUPPORTED, "line 2: digest MD5");
    parse_fails("SHA384(a.vmdk)= 00\n", SP_EUNSUPPORTED, "SHA384");
    parse_fails("SHA3-256 (a.vmdk) = 00\n", SP_EUNSUPPORTED, "line 1");
}

static void rejects_limits(void)
{
    size_t cap = (SP_MANIFEST_MAX_ENTRIES + 1) * 100;
    char *text = malloc(cap);
    CHECK(text != NULL);
    size_t len = 0;
    for (int i = 0; i < SP_MANIFEST_MAX_ENTRIES; i++)
        len += (size_t)snprintf(text + len, cap - len, "SHA1(f%d)= %s\n", i, SHA1_ABC);
    struct sp_manifest m;
    struct sp_error err;
    CHECK_OK(sp_manifest_parse(text, len, &m, &err));
    CHECK(m.n == SP_MANIFEST_MAX_ENTRIES);
    CHECK(sp_manifest_find(&m, "f4095") != NULL);
    sp_manifest_free(&m);
    len += (size_t)snprintf(text + len, cap - len, "SHA1(one-more)= %s\n", SHA1_ABC);
    CHECK(sp_manifest_parse(text, len, &m, &err) == SP_ELIMIT);
    CHECK(strstr(err.msg, "line 4097") != NULL);
    free(text);

    /* Too big as a whole, even if it is all blank lines. */
    size_t big = SP_MANIFEST_MAX_TEXT + 1;
    text = malloc(big);
    CHECK(text != NULL);
    memset(text, '\n', big);
    CHECK(sp_manifest_parse(text, big, &m, &err) == SP_ELIMIT);
    CHECK_OK(sp_manifest_parse(text, big - 1, &m, &err));
    CHECK(m.n == 0);
    free(text);
}

/* ---- certificates ---- */

static const char mf_text[] = "SHA256(web01.ovf)= " SHA256_ABC "\nSHA256(web01-disk1.vmdk)= " SHA256_EMPTY "\n";

/* A fresh self-signed RSA key and certificate, as the brief of the .cert says. */
static void make_key(const char *key, const char *cert, const char *cn)
{
    CHECK(run("openssl req -x509 -newkey rsa:2048 -nodes -keyout '%s' -out '%s' -days 1 -subj /CN=%s "
              ">/dev/null 2>&1",
              tpath(key), tpath(cert), cn) == 0);
}

/* Signs mf_text with key K and certificate C of test_tmpdir. */
static char *sign_mf(enum sp_digest_kind k, const char *mf_name, size_t *len)
{
    struct sp_error err;
    char *cert = NULL;
    int rc = sp_cert_sign(tpath("K"), tpath("C"), k, mf_name, mf_text, sizeof mf_text - 1, &cert, len, &err);
    if (rc) {
        fprintf(stderr, "sign failed (%d): %s\n", rc, err.msg);
        exit(1);
    }
    return cert;
}

static void sign_verify_round_trip(void)
{
    setup();
    make_key("K", "C", "snapport-test");
    size_t len;
    char *cert = sign_mf(SP_DIGEST_SHA256, "web01.mf", &len);
    CHECK(strlen(cert) == len);
    CHECK(strncmp(cert, "SHA256(web01.mf)= ", 18) == 0);
    char *nl = strchr(cert, '\n');
    CHECK(nl != NULL);
    CHECK_EQ_U64(nl - cert, 18 + 2 * 256); /* 2048-bit RSA: 256 bytes */
    CHECK(strspn(cert + 18, "0123456789abcdef") == 2 * 256);
    /* The PEM block is the certificate of C, nothing else. */
    size_t clen;
    char *pem = slurp(tpath("C"), &clen);
    CHECK(strcmp(nl + 1, pem) == 0);
    free(pem);

    struct sp_cert_info info;
    struct sp_error err;
    CHECK_OK(sp_cert_verify(cert, len, "web01.mf", mf_text, sizeof mf_text - 1, &info, &err));
    CHECK(strstr(info.subject, "CN=snapport-test") != NULL);
    CHECK(strstr(info.issuer, "CN=snapport-test") != NULL);
    CHECK(info.kind == SP_DIGEST_SHA256);
    CHECK_OK(sp_cert_verify(cert, len, "web01.mf", mf_text, sizeof mf_text - 1, NULL, &err));
    free(cert);

    /* SHA1 and SHA512 the same way. */
    cert = sign_mf(SP_DIGEST_SHA512, "web01.mf", &len);
    CHECK(strncmp(cert, "SHA512(web01.mf)= ", 18) == 0);
    CHECK_OK(sp_cert_verify(cert, len, "web01.mf", mf_text, sizeof mf_text - 1, &info, &err));
    CHECK(info.kind == SP_DIGEST_SHA512);
    free(cert);
    cert = sign_mf(SP_DIGEST_SHA1, "web01.mf", &len);
    CHECK_OK(sp_cert_verify(cert, len, "web01.mf", mf_text, sizeof mf_text - 1, &info, &err));
    CHECK(info.kind == SP_DIGEST_SHA1);
    free(cert);
    teardown();
}

static void hex_to_file(const char *hex, size_t hex_len, const char *path)
{
    CHECK(hex_len % 2 == 0);
    unsigned char *b = malloc(hex_len / 2);
    CHECK(b != NULL);
    for (size_t i = 0; i < hex_len / 2; i++) {
        unsigned v;
        CHECK(sscanf(hex + 2 * i, "%2x", &v) == 1);
        b[i] = (unsigned char)v;
    }
    write_file(path, b, hex_len / 2);
    free(b);
}

/* The peer check: what we sign, `openssl dgst -verify` accepts. */
static void sign_cli_verifies(void)
{
    setup();
    make_key("K", "C", "snapport-test");
    write_file(tpath("web01.mf"), mf_text, sizeof mf_text - 1);
    CHECK(run("openssl x509 -pubkey -noout -in '%s' > '%s'", tpath("C"), tpath("pub.pem")) == 0);
    static const struct {
        enum sp_digest_kind k;
        const char *opt;
    } kinds[] = {{SP_DIGEST_SHA1, "-sha1"}, {SP_DIGEST_SHA256, "-sha256"}, {SP_DIGEST_SHA512, "-sha512"}};
    for (size_t i = 0; i < 3; i++) {
        size_t len;
        char *cert = sign_mf(kinds[i].k, "web01.mf", &len);
        const char *hex = strstr(cert, "= ") + 2;
        hex_to_file(hex, strcspn(hex, "\n"), tpath("sig.bin"));
        CHECK(run("openssl dgst %s -verify '%s' -signature '%s' '%s' >/dev/null", kinds[i].opt, tpath("pub.pem"),
                  tpath("sig.bin"), tpath("web01.mf")) == 0);
        /* And the CLI refuses it over other bytes: the check can fail. */
        write_file(tpath("other.mf"), mf_text, sizeof mf_text - 2);
        CHECK(run("openssl dgst %s -verify '%s' -signature '%s' '%s' >/dev/null 2>&1", kinds[i].opt,
                  tpath("pub.pem"), tpath("sig.bin"), tpath("other.mf")) != 0);
        free(cert);
    }
    teardown();
}

/* The other direction: a .cert made with the CLI as ova-compose.py does,
 * here with VirtualBox-style blanks in the first line. */
static void verify_cli_signed(void)
{
    setup();
    make_key("K", "C", "snapport-test");
    write_file(tpath("web01.mf"), mf_text, sizeof mf_text - 1);
    CHECK(run("openssl dgst -sha256 -sign '%s' -out '%s' '%s'", tpath("K"), tpath("sig.bin"), tpath("web01.mf")) == 0);
    CHECK(run("cd '%s' && { printf 'SHA256 (web01.mf) = %%s\\r\\n' \"$(od -An -v -tx1 sig.bin | tr -d ' \\n')\";"
              " cat C; } > web01.cert",
              test_tmpdir) == 0);
    size_t len;
    char *cert = slurp(tpath("web01.cert"), &len);
    struct sp_cert_info info;
    struct sp_error err;
    int rc = sp_cert_verify(cert, len, "web01.mf", mf_text, sizeof mf_text - 1, &info, &err);
    if (rc) {
        fprintf(stderr, "verify failed (%d): %s\n", rc, err.msg);
        exit(1);
    }
    CHECK(info.kind == SP_DIGEST_SHA256);
    free(cert);
    teardown();
}

static void verify_tampered(void)
{
    setup();
    make_key("K", "C", "snapport-test");
    size_t len;
    char *cert = sign_mf(SP_DIGEST_SHA256, "web01.mf", &len);
    char mf[sizeof mf_text];
    memcpy(mf, mf_text, sizeof mf);
    mf[10] ^= 1;
    struct sp_cert_info info;
    struct sp_error err;
    CHECK(sp_cert_verify(cert, len, "web01.mf", mf, sizeof mf - 1, &info, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "bad signature") != NULL);
    /* One byte short. */
    CHECK(sp_cert_verify(cert, len, "web01.mf", mf_text, sizeof mf_text - 2, &info, &err) == SP_EFORMAT);
    /* The signature altered instead. */
    char *p = cert + 18 + 40;
    *p = *p == '0' ? '1' : '0';
    CHECK(sp_cert_verify(cert, len, "web01.mf", mf_text, sizeof mf_text - 1, &info, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "bad signature") != NULL);
    free(cert);
    teardown();
}

static void verify_self_signed(void)
{
    setup();
    make_key("K", "C", "snapport-test");
    size_t len;
    char *cert = sign_mf(SP_DIGEST_SHA256, "web01.mf", &len);
    struct sp_cert_info info;
    struct sp_error err;
    memset(&info, 0x55, sizeof info);
    CHECK_OK(sp_cert_verify(cert, len, "web01.mf", mf_text, sizeof mf_text - 1, &info, &err));
    CHECK(!info.trusted);
    CHECK(info.trust_problem[0] != '\0');
    CHECK(strstr(info.trust_problem, "self") != NULL); /* "self-signed certificate" */
    free(cert);
    teardown();
}

static void sign_key_mismatch(void)
{
    setup();
    make_key("K", "C", "snapport-test");
    make_key("K2", "C2", "someone-else");
    struct sp_error err;
    char *cert = (char *)"x";
    size_t len;
    CHECK(sp_cert_sign(tpath("K2"), tpath("C"), SP_DIGEST_SHA256, "web01.mf", mf_text, sizeof mf_text - 1, &cert,
                       &len, &err) == SP_EINVAL);
    CHECK(cert == NULL);
    CHECK(strstr(err.msg, "does not match") != NULL && strstr(err.msg, tpath("K2")) != NULL);
    teardown();
}

static void verify_wrong_name(void)
{
    setup();
    make_key("K", "C", "snapport-test");
    size_t len;
    char *cert = sign_mf(SP_DIGEST_SHA256, "other.mf", &len);
    struct sp_cert_info info;
    struct sp_error err;
    CHECK(sp_cert_verify(cert, len, "web01.mf", mf_text, sizeof mf_text - 1, &info, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "other.mf") != NULL && strstr(err.msg, "web01.mf") != NULL);
    free(cert);
    teardown();
}

static void expect_sign_fails(const char *key, const char *cert_path, int code, const char *what)
{
    struct sp_error err;
    char *cert = NULL;
    size_t len;
    int rc = sp_cert_sign(key, cert_path, SP_DIGEST_SHA256, "web01.mf", mf_text, sizeof mf_text - 1, &cert, &len,
                          &err);
    if (rc != code || !strstr(err.msg, what)) {
        fprintf(stderr, "sign: %d \"%s\", want %d mentioning \"%s\"\n", rc, rc ? err.msg : "", code, what);
        exit(1);
    }
    CHECK(cert == NULL);
}

static void sign_bad_files(void)
{
    setup();
    make_key("K", "C", "snapport-test");
    write_file(tpath("junk"), "not pem\n", 8);
    expect_sign_fails(tpath("missing"), tpath("C"), SP_ENOTFOUND, tpath("missing"));
    expect_sign_fails(tpath("K"), tpath("missing"), SP_ENOTFOUND, tpath("missing"));
    expect_sign_fails(tpath("junk"), tpath("C"), SP_EFORMAT, tpath("junk"));
    expect_sign_fails(tpath("K"), tpath("junk"), SP_EFORMAT, tpath("junk"));
    /* A certificate file given as the key, the key as the certificate. */
    expect_sign_fails(tpath("C"), tpath("C"), SP_EFORMAT, tpath("C"));
    expect_sign_fails(tpath("K"), tpath("K"), SP_EFORMAT, tpath("K"));
    /* An encrypted key is refused, not prompted for. */
    CHECK(run("openssl pkey -in '%s' -aes256 -passout pass:secret -out '%s'", tpath("K"), tpath("Kenc")) == 0);
    expect_sign_fails(tpath("Kenc"), tpath("C"), SP_EFORMAT, "unencrypted");
    char *cert = NULL;
    size_t len;
    struct sp_error err;
    CHECK(sp_cert_sign(tpath("K"), tpath("C"), SP_DIGEST_SHA256, "../web01.mf", mf_text, sizeof mf_text - 1, &cert,
                       &len, &err) == SP_EINVAL);
    CHECK(cert == NULL && strstr(err.msg, "manifest name") != NULL);
    teardown();
}

/* A combined key+certificate file: only the certificate goes in the .cert. */
static void sign_combined_pem(void)
{
    setup();
    make_key("K", "C", "snapport-test");
    CHECK(run("cat '%s' '%s' > '%s'", tpath("K"), tpath("C"), tpath("KC")) == 0);
    struct sp_error err;
    char *cert;
    size_t len;
    CHECK_OK(sp_cert_sign(tpath("KC"), tpath("KC"), SP_DIGEST_SHA256, "web01.mf", mf_text, sizeof mf_text - 1, &cert,
                          &len, &err));
    CHECK(strstr(cert, "PRIVATE KEY") == NULL);
    CHECK(strstr(cert, "-----BEGIN CERTIFICATE-----") != NULL);
    CHECK_OK(sp_cert_verify(cert, len, "web01.mf", mf_text, sizeof mf_text - 1, NULL, &err));
    free(cert);
    teardown();
}

/* root -> intermediate -> signer: trusted once the root is a CA of the
 * system (SSL_CERT_FILE stands in for the system bundle), and only with
 * the intermediate carried in the .cert. */
static void verify_chain(void)
{
    setup();
    static const char ext[] = "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n";
    write_file(tpath("ext"), ext, sizeof ext - 1);
    CHECK(run("cd '%s' && { openssl req -x509 -newkey rsa:2048 -nodes -keyout rootK -out root.pem -days 1"
              " -subj /CN=sp-root -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign"
              " -config /dev/null"
              " && openssl req -newkey rsa:2048 -nodes -keyout midK -out mid.csr -subj /CN=sp-mid -config /dev/null"
              " && openssl x509 -req -in mid.csr -CA root.pem -CAkey rootK -set_serial 2 -out mid.pem -days 1"
              " -extfile ext -extensions ca"
              " && openssl req -newkey rsa:2048 -nodes -keyout K -out leaf.csr -subj /CN=sp-leaf -config /dev/null"
              " && openssl x509 -req -in leaf.csr -CA mid.pem -CAkey midK -set_serial 3 -out leaf.pem -days 1"
              " && cat leaf.pem mid.pem > C; } >/dev/null 2>&1",
              test_tmpdir) == 0);
    CHECK(setenv("SSL_CERT_FILE", tpath("root.pem"), 1) == 0);
    CHECK(setenv("SSL_CERT_DIR", test_tmpdir, 1) == 0);
    size_t len;
    char *cert = sign_mf(SP_DIGEST_SHA256, "web01.mf", &len);
    struct sp_cert_info info;
    struct sp_error err;
    CHECK_OK(sp_cert_verify(cert, len, "web01.mf", mf_text, sizeof mf_text - 1, &info, &err));
    if (!info.trusted) {
        fprintf(stderr, "chain not trusted: %s\n", info.trust_problem);
        exit(1);
    }
    CHECK(info.trust_problem[0] == '\0');
    CHECK(strstr(info.subject, "CN=sp-leaf") != NULL && strstr(info.issuer, "CN=sp-mid") != NULL);
    free(cert);

    /* Without the intermediate the signature still verifies, the chain does not. */
    CHECK(run("cp '%s' '%s'", tpath("leaf.pem"), tpath("C")) == 0);
    cert = sign_mf(SP_DIGEST_SHA256, "web01.mf", &len);
    CHECK_OK(sp_cert_verify(cert, len, "web01.mf", mf_text, sizeof mf_text - 1, &info, &err));
    CHECK(!info.trusted && strstr(info.trust_problem, "issuer") != NULL);
    free(cert);
    teardown();
}

static void verify_fails(const char *text, int code, const char *what)
{
    struct sp_error err;
    struct sp_cert_info info;
    int rc = sp_cert_verify(text, strlen(text), "web01.mf", mf_text, sizeof mf_text - 1, &info, &err);
    if (rc != code || !strstr(err.msg, what)) {
        fprintf(stderr, "verify: %d \"%s\", want %d mentioning \"%s\"\n", rc, rc ? err.msg : "", code, what);
        exit(1);
    }
}

static void verify_rejects_garbage(void)
{
    verify_fails("", SP_EFORMAT, "no certificate");
    verify_fails("SHA256(web01.mf)= 00ff", SP_EFORMAT, "no certificate");
    verify_fails("SHA256(web01.mf)= 00ff\n", SP_EFORMAT, "no valid PEM");
    verify_fails("SHA256(web01.mf)= 00ff\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", SP_EFORMAT,
                 "no valid PEM");
    verify_fails("SHA256(web01.mf)= 0ff\n", SP_EFORMAT, "not hex");
    verify_fails("SHA256(web01.mf)= zz\n", SP_EFORMAT, "not hex");
    verify_fails("MD5(web01.mf)= 00\n", SP_EUNSUPPORTED, "MD5");
    verify_fails("hello\n", SP_EFORMAT, "line 1");
    verify_fails("SHA256(../web01.mf)= 00\n", SP_EFORMAT, "line 1");
}

TEST_MAIN({"digest_vectors", digest_vectors}, {"digest_incremental", digest_incremental},
          {"digest_misuse", digest_misuse}, {"digest_names", digest_names}, {"format_exact", format_exact},
          {"format_refuses", format_refuses}, {"parse_open_vmdk", parse_open_vmdk}, {"parse_vbox", parse_vbox},
          {"parse_crlf", parse_crlf}, {"parse_openssl3", parse_openssl3}, {"rejects_hex_length", rejects_hex_length},
          {"rejects_bad_names", rejects_bad_names}, {"rejects_duplicate", rejects_duplicate},
          {"rejects_garbage", rejects_garbage}, {"rejects_unsupported", rejects_unsupported},
          {"rejects_limits", rejects_limits}, {"sign_verify_round_trip", sign_verify_round_trip},
          {"sign_cli_verifies", sign_cli_verifies}, {"verify_cli_signed", verify_cli_signed},
          {"verify_tampered", verify_tampered}, {"verify_self_signed", verify_self_signed},
          {"sign_key_mismatch", sign_key_mismatch}, {"verify_wrong_name", verify_wrong_name},
          {"sign_bad_files", sign_bad_files}, {"sign_combined_pem", sign_combined_pem},
          {"verify_rejects_garbage", verify_rejects_garbage}, {"verify_chain", verify_chain})
