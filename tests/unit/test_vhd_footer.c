#include "disk/vhd_footer.h"
#include "tests/unit/testlib.h"

/* A footer laid out by hand, field by field, from the spec's table. */
static void handmade(uint8_t b[512])
{
    memset(b, 0, 512);
    memcpy(b, "conectix", 8);
    b[11] = 2;                 /* features */
    b[13] = 1;                 /* version 1.0 */
    memset(b + 16, 0xFF, 8);   /* data offset: fixed */
    memcpy(b + 28, "tap", 3);
    b[45] = 0x40;              /* original size 0x400000 = 4 MiB at bytes 40..47 */
    b[53] = 0x40;              /* current size 4 MiB at bytes 48..55 */
    b[63] = 2;                 /* fixed */
    b[68] = 0xAA;              /* uuid first byte */
    b[85] = 1;                 /* hidden */
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += b[i];
    unsigned ck = ~sum;
    b[64] = (uint8_t)(ck >> 24);
    b[65] = (uint8_t)(ck >> 16);
    b[66] = (uint8_t)(ck >> 8);
    b[67] = (uint8_t)ck;
}

static void parse_handmade(void)
{
    uint8_t b[512];
    struct sp_vhd_footer f;
    struct sp_error err;
    handmade(b);
    CHECK_OK(sp_vhd_footer_parse(b, &f, &err));
    CHECK_EQ_U64(f.current_size, 4u << 20);
    CHECK_EQ_U64(f.disk_type, SP_VHD_FIXED);
    CHECK_EQ_U64(f.uuid[0], 0xAA);
    CHECK_EQ_U64(f.hidden, 1);
    CHECK(strcmp(f.creator_app, "tap") == 0);
}

static void rejects_bad_cookie(void)
{
    uint8_t b[512];
    struct sp_vhd_footer f;
    struct sp_error err;
    handmade(b);
    b[0] = 'C';
    CHECK(sp_vhd_footer_parse(b, &f, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "cookie") != NULL);
}

static void rejects_bad_checksum(void)
{
    uint8_t b[512];
    struct sp_vhd_footer f;
    struct sp_error err;
    handmade(b);
    b[100] ^= 1;
    CHECK(sp_vhd_footer_parse(b, &f, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "checksum") != NULL);
}

static void build_round_trip(void)
{
    uint8_t a[512], b[512];
    struct sp_vhd_footer f, g;
    struct sp_error err;
    handmade(a);
    CHECK_OK(sp_vhd_footer_parse(a, &f, &err));
    sp_vhd_footer_build(&f, b);
    CHECK(memcmp(a, b, 512) == 0);
    CHECK_OK(sp_vhd_footer_parse(b, &g, &err));
}

/* Values qemu-img and the spec's algorithm agree on (reference/vhd.md 1.1:
 * a 64 MiB image has CHS 963/8/17). */
static void geometry(void)
{
    uint16_t c;
    uint8_t h, s;
    sp_vhd_geometry(64ull << 20, &c, &h, &s);
    CHECK_EQ_U64(c, 963);
    CHECK_EQ_U64(h, 8);
    CHECK_EQ_U64(s, 17);
    sp_vhd_geometry(2040ull << 30, &c, &h, &s);
    CHECK_EQ_U64(c, 65535);
    CHECK_EQ_U64(h, 16);
    CHECK_EQ_U64(s, 255);
}

static void init_is_tap(void)
{
    struct sp_vhd_footer f;
    struct sp_error err;
    CHECK_OK(sp_vhd_footer_init(&f, SP_VHD_DYNAMIC, 10u << 20, &err));
    CHECK(memcmp(f.creator_app, "tap", 4) == 0);
    CHECK_EQ_U64(f.current_size, 10u << 20);
    CHECK_EQ_U64(f.data_offset, 512);
    CHECK_EQ_U64(f.features, 2);
    CHECK(!sp_uuid_is_null(f.uuid));
}

TEST_MAIN({"parse_handmade", parse_handmade}, {"rejects_bad_cookie", rejects_bad_cookie},
          {"rejects_bad_checksum", rejects_bad_checksum}, {"build_round_trip", build_round_trip},
          {"geometry", geometry}, {"init_is_tap", init_is_tap})
