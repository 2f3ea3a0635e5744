#include "disk/vhd_header.h"
#include "tests/unit/testlib.h"

static void utf16_round_trip(void)
{
    /* "a\xc3\xa9\xf0\x9f\x92\xbe" = a, e-acute, U+1F4BE (a surrogate pair) */
    const char *s = "a\xc3\xa9\xf0\x9f\x92\xbe.vhd";
    uint8_t u[64];
    size_t n;
    char back[64];
    CHECK_OK(sp_utf8_to_utf16(s, 1, u, sizeof u, &n));
    CHECK_EQ_U64(n, 2 * (1 + 1 + 2 + 4));
    CHECK(u[0] == 0 && u[1] == 'a');
    CHECK(u[4] == 0xD8 && u[5] == 0x3D && u[6] == 0xDC && u[7] == 0xBE);
    CHECK_OK(sp_utf16_to_utf8(u, n, 1, back, sizeof back));
    CHECK(strcmp(back, s) == 0);
}

static void utf16_rejects_lone_surrogate(void)
{
    uint8_t u[4] = {0x00, 0xDC, 0x41, 0x00}; /* little-endian DC00 then 'A' */
    char out[16];
    CHECK(sp_utf16_to_utf8(u, 4, 0, out, sizeof out) != SP_OK);
}

static void decode_w2ku(void)
{
    const char *win = ".\\dir\\p.vhd";
    uint8_t u[64];
    size_t n = 0;
    for (const char *p = win; *p; p++) { /* UTF-16LE by hand */
        u[n++] = (uint8_t)*p;
        u[n++] = 0;
    }
    char out[64];
    struct sp_error err;
    CHECK_OK(sp_vhd_locator_decode(SP_VHD_PLAT_W2KU, u, n, out, sizeof out, &err));
    CHECK(strcmp(out, "./dir/p.vhd") == 0);
}

static void decode_macx(void)
{
    const char *url = "file://./a%20b.vhd";
    char out[64];
    struct sp_error err;
    CHECK_OK(sp_vhd_locator_decode(SP_VHD_PLAT_MACX, (const uint8_t *)url, strlen(url), out, sizeof out, &err));
    CHECK(strcmp(out, "./a b.vhd") == 0);
    const char *abs = "file:///srv/x.vhd";
    CHECK_OK(sp_vhd_locator_decode(SP_VHD_PLAT_MACX, (const uint8_t *)abs, strlen(abs), out, sizeof out, &err));
    CHECK(strcmp(out, "/srv/x.vhd") == 0);
}

static void encode_decode_macx(void)
{
    uint8_t buf[128];
    size_t n;
    char out[128];
    struct sp_error err;
    CHECK_OK(sp_vhd_locator_encode(SP_VHD_PLAT_MACX, "./x y%.vhd", buf, sizeof buf, &n, &err));
    CHECK(memcmp(buf, "file://./x%20y%25.vhd", n) == 0);
    CHECK_OK(sp_vhd_locator_decode(SP_VHD_PLAT_MACX, buf, n, out, sizeof out, &err));
    CHECK(strcmp(out, "./x y%.vhd") == 0);
}

static void locator_space_units(void)
{
    struct sp_vhd_locator l = {SP_VHD_PLAT_W2RU, 1, 20, 0};
    CHECK_EQ_U64(sp_vhd_locator_space(&l), 512);   /* sectors, as the spec says */
    l.data_space = 512;
    CHECK_EQ_U64(sp_vhd_locator_space(&l), 512);   /* bytes, as blktap writes */
    l.data_space = 4096;
    CHECK_EQ_U64(sp_vhd_locator_space(&l), 4096);
}

static void header_round_trip(void)
{
    struct sp_vhd_header h, g;
    struct sp_error err;
    uint8_t b[SP_VHD_HEADER_SIZE];
    memset(&h, 0, sizeof h);
    h.data_offset = UINT64_MAX;
    h.table_offset = 1536;
    h.max_table_entries = 5;
    h.block_size = 2u << 20;
    h.parent_uuid[3] = 9;
    strcpy(h.parent_name, "base.vhd");
    h.loc[0] = (struct sp_vhd_locator){SP_VHD_PLAT_MACX, 512, 18, 2048};
    CHECK_OK(sp_vhd_header_build(&h, b, &err));
    CHECK(memcmp(b, "cxsparse", 8) == 0);
    CHECK(b[64] == 0 && b[65] == 'b'); /* UTF-16BE name */
    CHECK_OK(sp_vhd_header_parse(b, &g, &err));
    CHECK_EQ_U64(g.block_size, 2u << 20);
    CHECK_EQ_U64(g.loc[0].data_offset, 2048);
    CHECK(strcmp(g.parent_name, "base.vhd") == 0);
    b[40] ^= 1;
    CHECK(sp_vhd_header_parse(b, &g, &err) == SP_EFORMAT);
}

TEST_MAIN({"utf16_round_trip", utf16_round_trip}, {"utf16_rejects_lone_surrogate", utf16_rejects_lone_surrogate},
          {"decode_w2ku", decode_w2ku}, {"decode_macx", decode_macx}, {"encode_decode_macx", encode_decode_macx},
          {"locator_space_units", locator_space_units}, {"header_round_trip", header_round_trip})
