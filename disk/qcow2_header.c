#include "disk/qcow2_header.h"

#include <stdio.h>
#include <string.h>

#include "base/util.h"

#define QCOW_MAGIC "QFI\xfb"
#define QCOW_MAGIC_LEN 4u
#define QCOW_V2_HEADER_LEN 72u        /* spec: a v2 header is exactly 72 bytes */
#define QCOW_V3_HEADER_MIN 104u       /* spec: v3 fields run up to header_length */
#define QCOW_HEADER_ALIGN 8u          /* spec: header_length is a multiple of 8 */
#define QCOW_COMPRESSION_AT 104u      /* spec: the first additional field, one byte */
#define QCOW_MIN_CLUSTER_BITS 9u      /* spec: 512-byte clusters at least */
#define QCOW_MAX_CLUSTER_BITS 21u     /* qemu opens nothing above 2 MiB clusters: no image has them */
/* qemu refuses an active L1 table above 32 MiB; with 2 MiB clusters that
 * table maps 2^61 bytes, the largest virtual size any qcow2 can have. */
#define QCOW_MAX_L1_BYTES (32ull << 20)
#define QCOW_MAX_SIZE (1ull << 61)
#define QCOW_ENTRY_LEN 8u             /* L1 and L2 entries are 64-bit */

/* Incompatible feature bits (spec, header bytes 72-79). */
#define QCOW_INCOMPAT_DIRTY (1ull << 0)
#define QCOW_INCOMPAT_CORRUPT (1ull << 1)
#define QCOW_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW_INCOMPAT_EXTENDED_L2 (1ull << 4)
#define QCOW_INCOMPAT_KNOWN 0x1full

/* Header extensions (spec "Header extensions"). */
#define QCOW_EXT_END 0x00000000u
#define QCOW_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW_EXT_FEATURE_NAMES 0x6803f857u
#define QCOW_EXT_HEAD 8u                  /* type and length */
#define QCOW_FEATURE_ENTRY 48u            /* type, bit number, 46 bytes of name */
#define QCOW_FEATURE_NAME 46u
#define QCOW_FEATURE_INCOMPAT 0u

bool sp_qcow2_magic(const uint8_t *buf, size_t len, uint32_t *version)
{
    if (len < QCOW_MAGIC_LEN + 4 || memcmp(buf, QCOW_MAGIC, QCOW_MAGIC_LEN) != 0)
        return false;
    *version = sp_be32(buf + QCOW_MAGIC_LEN);
    return true;
}

static int check_version(const uint8_t *buf, size_t len, uint32_t *version, struct sp_error *err)
{
    if (!sp_qcow2_magic(buf, len, version))
        return sp_error_set(err, SP_EFORMAT, "not a qcow2 image (no QFI\\xfb magic)");
    if (*version == 1)
        return sp_error_set(err, SP_EUNSUPPORTED, "qcow version 1 is not supported (qemu-img convert -O qcow2 "
                                                  "makes a qcow2 of it)");
    if (*version != 2 && *version != 3)
        return sp_error_set(err, SP_EUNSUPPORTED, "qcow2 version %u is not supported (2 and 3 are)", *version);
    return SP_OK;
}

static void decode_fixed(const uint8_t *b, struct sp_qcow2_header *h)
{
    h->cluster_bits = sp_be32(b + 20);
    h->size = sp_be64(b + 24);
    h->crypt_method = sp_be32(b + 32);
    h->l1_size = sp_be32(b + 36);
    h->l1_offset = sp_be64(b + 40);
    h->header_length = QCOW_V2_HEADER_LEN;
    if (h->version >= 3) {
        h->incompatible = sp_be64(b + 72);
        h->compatible = sp_be64(b + 80);
        h->autoclear = sp_be64(b + 88);
        h->header_length = sp_be32(b + 100);
    }
}

int sp_qcow2_header_fixed(const uint8_t *buf, size_t len, struct sp_qcow2_header *h, struct sp_error *err)
{
    memset(h, 0, sizeof *h);
    int rc = check_version(buf, len, &h->version, err);
    if (rc != SP_OK)
        return rc;
    size_t need = h->version == 2 ? QCOW_V2_HEADER_LEN : QCOW_V3_HEADER_MIN;
    if (len < need)
        return sp_error_set(err, SP_EFORMAT, "header truncated: %zu bytes, a v%u header has %zu", len,
                            h->version, need);
    decode_fixed(buf, h);
    if (h->cluster_bits < QCOW_MIN_CLUSTER_BITS || h->cluster_bits > QCOW_MAX_CLUSTER_BITS)
        return sp_error_set(err, SP_EFORMAT, "cluster_bits %u is outside %u..%u", h->cluster_bits,
                            QCOW_MIN_CLUSTER_BITS, QCOW_MAX_CLUSTER_BITS);
    uint64_t cluster = 1ull << h->cluster_bits;
    if (h->header_length < need || h->header_length % QCOW_HEADER_ALIGN || h->header_length > cluster)
        return sp_error_set(err, SP_EFORMAT, "header_length %u is not a multiple of %u in %zu..%llu",
                            h->header_length, QCOW_HEADER_ALIGN, need, (unsigned long long)cluster);
    if (h->crypt_method != 0)
        return sp_error_set(err, SP_EUNSUPPORTED, "encrypted qcow2 images are not supported");
    /* compression_type is present when the header reaches past it */
    if (h->header_length > QCOW_COMPRESSION_AT && len > QCOW_COMPRESSION_AT)
        h->compression = buf[QCOW_COMPRESSION_AT];
    return SP_OK;
}

/* A feature name from the feature name table at [at, at+len), or "". */
static void feature_name(const uint8_t *buf, size_t at, size_t len, unsigned bit, char *out, size_t outlen)
{
    out[0] = '\0';
    for (size_t e = 0; e + QCOW_FEATURE_ENTRY <= len; e += QCOW_FEATURE_ENTRY) {
        const uint8_t *f = buf + at + e;
        if (f[0] != QCOW_FEATURE_INCOMPAT || f[1] != bit)
            continue;
        size_t n = 0;
        while (n < QCOW_FEATURE_NAME && f[2 + n] >= 0x20 && f[2 + n] < 0x7f)
            n++;
        snprintf(out, outlen, " (%.*s)", (int)n, (const char *)f + 2);
        return;
    }
}

struct extensions {
    size_t names_at, names_len; /* the feature name table, len 0 when absent */
};

static int backing_format_ext(const uint8_t *data, uint32_t len, struct sp_qcow2_header *h, struct sp_error *err)
{
    if (len == 0 || len > SP_QCOW2_FORMAT_NAME_MAX || memchr(data, '\0', len))
        return sp_error_set(err, SP_EFORMAT, "backing format extension of %u bytes is not a format name", len);
    memcpy(h->backing_format, data, len);
    h->backing_format[len] = '\0';
    return SP_OK;
}

/* The extensions between header_length and the end of the first cluster. */
static int parse_extensions(const uint8_t *buf, size_t len, struct sp_qcow2_header *h, struct extensions *x,
                            struct sp_error *err)
{
    size_t at = h->version == 2 ? QCOW_V2_HEADER_LEN : h->header_length;
    while (at + QCOW_EXT_HEAD <= len) {
        uint32_t type = sp_be32(buf + at), n = sp_be32(buf + at + 4);
        if (type == QCOW_EXT_END)
            return SP_OK;
        at += QCOW_EXT_HEAD;
        if (n > len - at)
            return sp_error_set(err, SP_EFORMAT, "header extension 0x%08x of %u bytes runs past the first cluster",
                                type, n);
        if (type == QCOW_EXT_BACKING_FORMAT) {
            int rc = backing_format_ext(buf + at, n, h, err);
            if (rc != SP_OK)
                return rc;
        } else if (type == QCOW_EXT_FEATURE_NAMES) {
            x->names_at = at;
            x->names_len = n;
        }
        at += (size_t)sp_round_up_u64(n, QCOW_HEADER_ALIGN);
    }
    /* the area may end without an end marker right at the cluster's end */
    return SP_OK;
}

static int unknown_features(const uint8_t *buf, const struct extensions *x, uint64_t bits, struct sp_error *err)
{
    char names[SP_ERROR_MAX / 2] = "";
    size_t used = 0;
    for (unsigned b = 0; b < 64; b++) {
        if (!(bits & (1ull << b)))
            continue;
        char name[QCOW_FEATURE_NAME + 8];
        feature_name(buf, x->names_at, x->names_len, b, name, sizeof name);
        int w = snprintf(names + used, sizeof names - used, "%s bit %u%s", used ? "," : "", b, name);
        if (w < 0 || (size_t)w >= sizeof names - used)
            break;
        used += (size_t)w;
    }
    return sp_error_set(err, SP_EUNSUPPORTED, "unknown incompatible features:%s (written by a newer qemu?)",
                        names);
}

static int check_features(const uint8_t *buf, const struct extensions *x, const struct sp_qcow2_header *h,
                          struct sp_error *err)
{
    if (h->incompatible & ~QCOW_INCOMPAT_KNOWN)
        return unknown_features(buf, x, h->incompatible & ~QCOW_INCOMPAT_KNOWN, err);
    /* the dirty bit only says refcounts may be stale: reading is safe */
    if (h->incompatible & QCOW_INCOMPAT_CORRUPT)
        return sp_error_set(err, SP_EFORMAT, "marked corrupt, run qemu-img check -r all");
    if (h->incompatible & QCOW_INCOMPAT_DATA_FILE)
        return sp_error_set(err, SP_EUNSUPPORTED, "qcow2 images with an external data file are not supported");
    if (h->incompatible & QCOW_INCOMPAT_EXTENDED_L2)
        return sp_error_set(err, SP_EUNSUPPORTED,
                            "qcow2 images with extended L2 entries (subclusters) are not supported");
    bool typed = (h->incompatible & QCOW_INCOMPAT_COMPRESSION) != 0;
    if (typed && h->compression == SP_QCOW2_ZLIB)
        return sp_error_set(err, SP_EFORMAT, "compression type bit set but compression_type is 0");
    if (!typed && h->compression != SP_QCOW2_ZLIB)
        return sp_error_set(err, SP_EFORMAT, "compression_type %u without the compression type bit",
                            (unsigned)h->compression);
    if (h->compression != SP_QCOW2_ZLIB && h->compression != SP_QCOW2_ZSTD)
        return sp_error_set(err, SP_EUNSUPPORTED, "compression_type %u is not supported (zlib and zstd are)",
                            (unsigned)h->compression);
    return SP_OK;
}

/* The active L1 table: large enough for the virtual size, capped, inside
 * the file, cluster-aligned. Entries past the ones the size needs (VM
 * state of internal snapshots) are never read. */
static int check_l1(struct sp_qcow2_header *h, uint64_t file_size, struct sp_error *err)
{
    uint64_t cluster = 1ull << h->cluster_bits;
    uint64_t span = cluster * (cluster / QCOW_ENTRY_LEN); /* guest bytes one L2 table maps */
    if (h->size > QCOW_MAX_SIZE)
        return sp_error_set(err, SP_EFORMAT, "virtual size %llu is above the qcow2 limit of %llu",
                            (unsigned long long)h->size, QCOW_MAX_SIZE);
    h->l1_needed = sp_div_round_up(h->size, span);
    if (h->l1_needed > QCOW_MAX_L1_BYTES / QCOW_ENTRY_LEN)
        return sp_error_set(err, SP_EFORMAT, "virtual size %llu needs an L1 table above qemu's %llu MiB limit",
                            (unsigned long long)h->size, QCOW_MAX_L1_BYTES >> 20);
    if (h->l1_size < h->l1_needed)
        return sp_error_set(err, SP_EFORMAT, "l1_size %u is too small for a virtual size of %llu (%llu needed)",
                            h->l1_size, (unsigned long long)h->size, (unsigned long long)h->l1_needed);
    if (h->l1_needed == 0)
        return SP_OK;
    uint64_t bytes = h->l1_needed * QCOW_ENTRY_LEN;
    if (h->l1_offset == 0 || h->l1_offset % cluster)
        return sp_error_set(err, SP_EFORMAT, "L1 table offset %llu is not a cluster boundary past the header",
                            (unsigned long long)h->l1_offset);
    if (h->l1_offset > file_size || bytes > file_size - h->l1_offset)
        return sp_error_set(err, SP_EFORMAT, "L1 table at %llu (%llu bytes) is past the end of the file (%llu bytes)",
                            (unsigned long long)h->l1_offset, (unsigned long long)bytes,
                            (unsigned long long)file_size);
    return SP_OK;
}

/* The backing file name: in the first cluster, at most 1023 bytes, no NUL. */
static int parse_backing(const uint8_t *buf, size_t len, struct sp_qcow2_header *h, struct sp_error *err)
{
    uint64_t off = sp_be64(buf + 8);
    uint32_t n = sp_be32(buf + 16);
    if (off == 0 || n == 0)
        return SP_OK;
    if (n > SP_QCOW2_BACKING_NAME_MAX)
        return sp_error_set(err, SP_EFORMAT, "backing file name of %u bytes (at most %u)", n,
                            SP_QCOW2_BACKING_NAME_MAX);
    if (off > len || n > len - off)
        return sp_error_set(err, SP_EFORMAT, "backing file name at %llu (%u bytes) is outside the first cluster",
                            (unsigned long long)off, n);
    if (memchr(buf + off, '\0', n))
        return sp_error_set(err, SP_EFORMAT, "backing file name holds a NUL byte");
    memcpy(h->backing, buf + off, n);
    h->backing[n] = '\0';
    return SP_OK;
}

int sp_qcow2_header_rest(const uint8_t *buf, size_t len, uint64_t file_size, struct sp_qcow2_header *h,
                         struct sp_error *err)
{
    uint64_t cluster = 1ull << h->cluster_bits;
    if (len < sp_min_u64(cluster, file_size))
        return sp_error_set(err, SP_EINVAL, "qcow2 header: %zu bytes given, the first cluster has %llu", len,
                            (unsigned long long)sp_min_u64(cluster, file_size));
    if (len < h->header_length)
        return sp_error_set(err, SP_EFORMAT, "header truncated: the file has %zu bytes, the header %u", len,
                            h->header_length);
    struct extensions x = {0, 0};
    int rc = parse_extensions(buf, len, h, &x, err);
    if (rc == SP_OK)
        rc = check_features(buf, &x, h, err);
    if (rc == SP_OK)
        rc = check_l1(h, file_size, err);
    if (rc == SP_OK)
        rc = parse_backing(buf, len, h, err);
    return rc;
}
