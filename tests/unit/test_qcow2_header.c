#include "base/util.h"
#include "disk/qcow2_header.h"
#include "tests/unit/testlib.h"

/* Headers laid out by hand from qemu's docs/interop/qcow2.txt: 4 KiB
 * clusters, the L1 table in cluster 3 of a 64 KiB file. */
#define CLUSTER_BITS 12u
#define CLUSTER (1u << CLUSTER_BITS)
#define FILE_SIZE (64u << 10)
#define SPAN ((uint64_t)CLUSTER * (CLUSTER / 8)) /* guest bytes per L2 table: 2 MiB */

static void handmade(uint8_t *b, uint32_t version)
{
    memset(b, 0, CLUSTER);
    memcpy(b, "QFI\xfb", 4);
    sp_put_be32(b + 4, version);
    sp_put_be32(b + 20, CLUSTER_BITS);
    sp_put_be64(b + 24, 5 * SPAN + 512);   /* needs 6 L1 entries */
    sp_put_be32(b + 36, 6);
    sp_put_be64(b + 40, 3 * CLUSTER);
    if (version == 3) {
        sp_put_be32(b + 96, 4);            /* refcount_order */
        sp_put_be32(b + 100, 104);
    }
}

/* An extension at *at (type, length, data padded to 8). */
static void put_ext(uint8_t *b, size_t *at, uint32_t type, const void *data, uint32_t len)
{
    sp_put_be32(b + *at, type);
    sp_put_be32(b + *at + 4, len);
    memcpy(b + *at + 8, data, len);
    *at += 8 + sp_round_up_u64(len, 8);
}

static int parse(const uint8_t *b, struct sp_qcow2_header *h, struct sp_error *err)
{
    int rc = sp_qcow2_header_fixed(b, SP_QCOW2_FIXED_LEN, h, err);
    return rc == SP_OK ? sp_qcow2_header_rest(b, CLUSTER, FILE_SIZE, h, err) : rc;
}

static void parse_v3_backing(void)
{
    uint8_t b[CLUSTER];
    handmade(b, 3);
    size_t at = 104;
    put_ext(b, &at, 0xe2792acau, "raw", 3);
    at += 8; /* end marker: zeros */
    memcpy(b + 512, "../base.img", 11);
    sp_put_be64(b + 8, 512);
    sp_put_be32(b + 16, 11);
    struct sp_qcow2_header h;
    struct sp_error err;
    CHECK_OK(parse(b, &h, &err));
    CHECK_EQ_U64(h.version, 3);
    CHECK_EQ_U64(h.size, 5 * SPAN + 512);
    CHECK_EQ_U64(h.l1_needed, 6);
    CHECK_EQ_U64(h.compression, SP_QCOW2_ZLIB);
    CHECK(strcmp(h.backing, "../base.img") == 0);
    CHECK(strcmp(h.backing_format, "raw") == 0);
}

static void parse_v2(void)
{
    uint8_t b[CLUSTER];
    handmade(b, 2);
    b[100] = 0xff; /* not a header_length in v2: ignored */
    struct sp_qcow2_header h;
    struct sp_error err;
    CHECK_OK(parse(b, &h, &err));
    CHECK_EQ_U64(h.header_length, 72);
    CHECK_EQ_U64(h.incompatible, 0);
    CHECK(h.backing[0] == '\0' && h.backing_format[0] == '\0');
}

static void zstd_type(void)
{
    uint8_t b[CLUSTER];
    handmade(b, 3);
    sp_put_be32(b + 100, 112);
    b[104] = SP_QCOW2_ZSTD;
    struct sp_qcow2_header h;
    struct sp_error err;
    CHECK(parse(b, &h, &err) == SP_EFORMAT);   /* the type without its bit */
    sp_put_be64(b + 72, 1u << 3);
    CHECK_OK(parse(b, &h, &err));
    CHECK_EQ_U64(h.compression, SP_QCOW2_ZSTD);
    b[104] = 7;
    CHECK(parse(b, &h, &err) == SP_EUNSUPPORTED);
}

static void unknown_feature_named(void)
{
    uint8_t b[CLUSTER];
    handmade(b, 3);
    sp_put_be64(b + 72, (1ull << 7) | 1u); /* dirty is fine, bit 7 is not */
    uint8_t table[2 * 48] = {0};
    table[1] = 0; /* incompatible bit 0: dirty */
    memcpy(table + 2, "dirty bit", 9);
    table[48 + 1] = 7;
    memcpy(table + 48 + 2, "frobnicate", 10);
    size_t at = 104;
    put_ext(b, &at, 0x6803f857u, table, sizeof table);
    struct sp_qcow2_header h;
    struct sp_error err;
    CHECK(parse(b, &h, &err) == SP_EUNSUPPORTED);
    CHECK(strstr(err.msg, "bit 7 (frobnicate)") != NULL);
    sp_put_be64(b + 72, 1u);
    CHECK_OK(parse(b, &h, &err));
}

/* One field patched per row; the parse must fail with the code given. */
struct bad {
    size_t at;
    unsigned width; /* 4 or 8 */
    uint64_t value;
    int code;
};

static const struct bad BAD[] = {
    {4, 4, 1, SP_EUNSUPPORTED},              /* qcow version 1 */
    {4, 4, 4, SP_EUNSUPPORTED},
    {20, 4, 8, SP_EFORMAT},                  /* cluster_bits below 9 */
    {20, 4, 22, SP_EFORMAT},                 /* above 2 MiB clusters */
    {32, 4, 2, SP_EUNSUPPORTED},             /* LUKS */
    {100, 4, 100, SP_EFORMAT},               /* header_length below 104 */
    {100, 4, 108, SP_EFORMAT},               /* not a multiple of 8 */
    {100, 4, CLUSTER + 8, SP_EFORMAT},       /* beyond the first cluster */
    {72, 8, 1u << 1, SP_EFORMAT},            /* corrupt */
    {72, 8, 1u << 2, SP_EUNSUPPORTED},       /* external data file */
    {72, 8, 1u << 4, SP_EUNSUPPORTED},       /* extended L2 entries */
    {72, 8, 1ull << 63, SP_EUNSUPPORTED},
    {36, 4, 5, SP_EFORMAT},                  /* L1 too small for the size */
    {40, 8, 3 * CLUSTER + 512, SP_EFORMAT},  /* L1 not cluster-aligned */
    {40, 8, 0, SP_EFORMAT},                  /* L1 over the header */
    {40, 8, FILE_SIZE, SP_EFORMAT},          /* L1 past the end */
    {24, 8, (1ull << 61) + 1, SP_EFORMAT},   /* size above 2^61 */
    {24, 8, UINT64_MAX, SP_EFORMAT},
    {24, 8, (1ull << 43) + 1, SP_EFORMAT},   /* needs an L1 above 32 MiB (4 Mi entries) */
    {16, 4, 1024, SP_EFORMAT},               /* backing name above 1023 bytes */
    {8, 8, CLUSTER - 4, SP_EFORMAT},         /* backing name past the first cluster */
    {8, 8, UINT64_MAX, SP_EFORMAT},
    {108, 4, CLUSTER, SP_EFORMAT},           /* extension longer than the cluster */
};

static void rejects_fields(void)
{
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        uint8_t b[CLUSTER];
        handmade(b, 3);
        sp_put_be32(b + 16, 8);              /* a backing name "base.img" at 512 */
        sp_put_be64(b + 8, 512);
        memcpy(b + 512, "base.img", 8);
        sp_put_be32(b + 104, 0x12345678u);   /* an unknown extension, 8 bytes */
        sp_put_be32(b + 108, 8);
        if (BAD[i].width == 4)
            sp_put_be32(b + BAD[i].at, (uint32_t)BAD[i].value);
        else
            sp_put_be64(b + BAD[i].at, BAD[i].value);
        struct sp_qcow2_header h;
        struct sp_error err;
        int rc = parse(b, &h, &err);
        if (rc != BAD[i].code) {
            fprintf(stderr, "row %zu: got %d, expected %d (%s)\n", i, rc, BAD[i].code, rc ? err.msg : "ok");
            exit(1);
        }
    }
}

static void short_input(void)
{
    uint8_t b[CLUSTER];
    struct sp_qcow2_header h;
    struct sp_error err;
    handmade(b, 3);
    for (size_t n = 0; n < 104; n++)
        CHECK(sp_qcow2_header_fixed(b, n, &h, &err) != SP_OK);
    CHECK_OK(sp_qcow2_header_fixed(b, 104, &h, &err));
    /* the first cluster cut by the end of the file: the L1 table is then
     * past the end */
    CHECK(sp_qcow2_header_rest(b, 2048, 2048, &h, &err) == SP_EFORMAT);
    /* fewer bytes given than the file's first cluster holds: a caller error */
    CHECK(sp_qcow2_header_rest(b, 2048, FILE_SIZE, &h, &err) == SP_EINVAL);
    uint32_t v;
    CHECK(!sp_qcow2_magic(b, 7, &v));
    CHECK(sp_qcow2_magic(b, 8, &v) && v == 3);
}

static void empty_disk(void)
{
    uint8_t b[CLUSTER];
    handmade(b, 3);
    sp_put_be64(b + 24, 0);
    sp_put_be32(b + 36, 0);
    sp_put_be64(b + 40, 0);
    struct sp_qcow2_header h;
    struct sp_error err;
    CHECK_OK(parse(b, &h, &err));
    CHECK_EQ_U64(h.l1_needed, 0);
}

TEST_MAIN({"parse_v3_backing", parse_v3_backing}, {"parse_v2", parse_v2}, {"zstd_type", zstd_type},
          {"unknown_feature_named", unknown_feature_named}, {"rejects_fields", rejects_fields},
          {"short_input", short_input}, {"empty_disk", empty_disk})
