/* The manifest (.mf) and certificate (.cert) of an OVF package: digests of
 * a byte stream, the .mf text (write and parse), and the .cert signature
 * over the .mf (sign with a PEM key and certificate, verify and say whether
 * the signer is trusted). reference/ova.md, "Manifest (.mf) and
 * certificate (.cert)". */
#ifndef SP_MANIFEST_H
#define SP_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

enum sp_digest_kind { SP_DIGEST_SHA1, SP_DIGEST_SHA256, SP_DIGEST_SHA512 };

/* Lowercase hex of the longest digest (SHA-512, 64 bytes) plus the NUL. */
#define SP_DIGEST_HEX_MAX 129

/* A manifest names each package member once; a package has a handful. */
#define SP_MANIFEST_MAX_ENTRIES 4096
/* A line is at most ~400 bytes, so 4096 of them fit with room to spare. */
#define SP_MANIFEST_MAX_TEXT (1u << 20)
/* A member name, NUL included (the tar header limit of OVA members is less). */
#define SP_MANIFEST_NAME_MAX 256
/* A .cert is one line plus a few PEM certificates of ~2 KiB each. */
#define SP_CERT_MAX_TEXT (1u << 20)

/* "SHA1", "SHA256", "SHA512" ("unknown" for anything else). */
const char *sp_digest_name(enum sp_digest_kind k);

/* "sha1", "sha256", "sha512" in any case, also "SHA-256" and OpenSSL 3's
 * "SHA2-256" (likewise for 1 and 512); SP_EINVAL otherwise. */
int sp_digest_parse_name(const char *s, enum sp_digest_kind *k);

/* Incremental digests of one byte stream, any subset of kinds at once (a
 * reader that has not yet seen the manifest computes all three). */
struct sp_digest;

/* kinds_mask: bit (1u << kind) for each kind wanted, at least one. The
 * caller frees *out with sp_digest_free. */
int sp_digest_new(unsigned kinds_mask, struct sp_digest **out, struct sp_error *err);
int sp_digest_update(struct sp_digest *d, const void *buf, size_t len, struct sp_error *err);
/* Lowercase hex of kind k (which must be in the mask) into hex. The first
 * call ends the stream for every kind: later calls return the other kinds,
 * sp_digest_update is refused (SP_EINVAL). */
int sp_digest_final(struct sp_digest *d, enum sp_digest_kind k, char hex[SP_DIGEST_HEX_MAX], struct sp_error *err);
void sp_digest_free(struct sp_digest *d); /* accepts NULL */

struct sp_manifest_entry {
    enum sp_digest_kind kind;
    char name[SP_MANIFEST_NAME_MAX];
    char hex[SP_DIGEST_HEX_MAX]; /* lowercase */
};

/* e is owned by the manifest (sp_manifest_free). */
struct sp_manifest {
    struct sp_manifest_entry *e;
    int n;
};

/* Writes lines exactly "SHA256(name)= hex\n" in the given order into *out
 * (malloc'd, NUL-terminated, *len without the NUL; the caller frees it).
 * SP_EINVAL for an entry that would not parse back the same: a bad name
 * (see sp_manifest_parse, and no '(', ')', '=' which other readers split
 * on) or hex that is not lowercase of the kind's length. */
int sp_manifest_format(const struct sp_manifest *m, char **out, size_t *len, struct sp_error *err);

/* Parses a .mf as real producers write it: "SHA256(name)= hex", VirtualBox's
 * "SHA256 (name) = hex", blanks around any token, CRLF, empty lines; SHA1,
 * SHA256, SHA512 (also spelled "SHA-256", "SHA2-256"); hex in either case
 * (stored lowercase). The name is what lies between the '(' and the last
 * ')' before the '=', taken as is. Errors name the line number: another
 * algorithm (MD5 ...) is SP_EUNSUPPORTED; SP_EFORMAT for a malformed line,
 * hex of the wrong length, a name that is empty, too long, contains a
 * control character, '/', '\\' or "..", or is ".", or a name given twice.
 * More than SP_MANIFEST_MAX_ENTRIES lines or SP_MANIFEST_MAX_TEXT bytes is
 * SP_ELIMIT. On success m owns its entries (sp_manifest_free); on failure
 * m is empty. */
int sp_manifest_parse(const char *text, size_t len, struct sp_manifest *m, struct sp_error *err);

/* The entry named name, or NULL. */
const struct sp_manifest_entry *sp_manifest_find(const struct sp_manifest *m, const char *name);
void sp_manifest_free(struct sp_manifest *m); /* accepts NULL, leaves m empty */

/* The .cert (VMware/open-vmdk form): first line "SHA256(<mf_name>)= <hex of
 * the signature over the raw .mf bytes>" (what `openssl dgst -sha256 -sign`
 * makes: RSA, EC or DSA keys), then the PEM certificate(s) of
 * cert_pem_path, written anew from the parsed certificates so that nothing
 * else in that file (a private key) is copied. The key must be an
 * unencrypted PEM key matching the first certificate (SP_EINVAL if not).
 * Files that cannot be read or parsed: an error naming the file. *out is
 * malloc'd and NUL-terminated, *out_len without the NUL. */
int sp_cert_sign(const char *key_pem_path, const char *cert_pem_path, enum sp_digest_kind kind,
                 const char *mf_name, const void *mf, size_t mf_len, char **out, size_t *out_len,
                 struct sp_error *err);

struct sp_cert_info {
    char subject[512];       /* one-line subject of the signer ("/CN=...") */
    char issuer[512];
    bool trusted;            /* the chain verifies against the system's CA paths, plus intermediates in the .cert */
    char trust_problem[256]; /* why not, when !trusted */
    enum sp_digest_kind kind;
};

/* Verifies a .cert against the .mf bytes: its first line must name mf_name
 * (SP_EFORMAT otherwise) and its signature must verify with the first
 * certificate's public key over mf (SP_EFORMAT "bad signature" otherwise).
 * An untrusted, self-signed or expired signer is not an error: SP_OK with
 * info->trusted false and the reason in info->trust_problem. info may be
 * NULL when only the signature matters. */
int sp_cert_verify(const char *text, size_t len, const char *mf_name, const void *mf, size_t mf_len,
                   struct sp_cert_info *info, struct sp_error *err);

#endif
