#include "base/error.h"
#include "base/util.h"
#include "tests/unit/testlib.h"

static void parse_size(void)
{
    uint64_t v;
    CHECK_OK(sp_parse_size("123", &v));
    CHECK_EQ_U64(v, 123);
    CHECK_OK(sp_parse_size("4K", &v));
    CHECK_EQ_U64(v, 4096);
    CHECK_OK(sp_parse_size("2M", &v));
    CHECK_EQ_U64(v, 2u << 20);
    CHECK_OK(sp_parse_size("1GiB", &v));
    CHECK_EQ_U64(v, 1u << 30);
    CHECK_OK(sp_parse_size("2T", &v));
    CHECK_EQ_U64(v, 2ull << 40);
    CHECK_OK(sp_parse_size("0x10", &v));
    CHECK_EQ_U64(v, 16);
    CHECK(sp_parse_size("", &v) != SP_OK);
    CHECK(sp_parse_size("-1", &v) != SP_OK);
    CHECK(sp_parse_size("12Q", &v) != SP_OK);
    CHECK(sp_parse_size("99999999999999999999", &v) != SP_OK);
    CHECK(sp_parse_size("17179869184T", &v) != SP_OK); /* 2^34 TiB overflows */
}

static void is_zero(void)
{
    static uint8_t buf[70000];
    CHECK(sp_is_zero(buf, sizeof buf));
    CHECK(sp_is_zero(buf, 0));
    CHECK(sp_is_zero(buf, 5));
    for (size_t pos = 0; pos < sizeof buf; pos += 6997) {
        buf[pos] = 1;
        CHECK(!sp_is_zero(buf, sizeof buf));
        buf[pos] = 0;
    }
    buf[sizeof buf - 1] = 1;
    CHECK(!sp_is_zero(buf, sizeof buf));
    CHECK(sp_is_zero(buf, sizeof buf - 1));
}

static void be_fields(void)
{
    uint8_t b[8];
    sp_put_be64(b, 0x0102030405060708ull);
    CHECK(b[0] == 1 && b[7] == 8);
    CHECK_EQ_U64(sp_be64(b), 0x0102030405060708ull);
    CHECK_EQ_U64(sp_be32(b + 4), 0x05060708u);
    CHECK_EQ_U64(sp_be16(b + 6), 0x0708u);
}

/* msg after sp_error_prefix(err, "%s", ctx) on a message set to inner */
static void prefixed(const char *inner, const char *ctx, const char *want)
{
    struct sp_error e;
    sp_error_set(&e, SP_EFORMAT, "%s", inner);
    CHECK(sp_error_prefix(&e, "%s", ctx) == SP_EFORMAT);
    if (strcmp(e.msg, want) != 0) {
        fprintf(stderr, "prefix '%s' on '%s': got '%s', want '%s'\n", ctx, inner, e.msg, want);
        exit(1);
    }
}

static void ext_is(const char *path, const char *want)
{
    const char *got = sp_path_extension(path);
    if (want ? !got || strcmp(got, want) != 0 : got != NULL) {
        fprintf(stderr, "extension of '%s': got %s, want %s\n", path, got ? got : "none", want ? want : "none");
        exit(1);
    }
}

static void path_extension(void)
{
    ext_is("x.xva", "xva");
    ext_is("dir/x.XVA", "XVA");
    ext_is("a.b.vmdk", "vmdk");
    ext_is("dir.ova/x", NULL);  /* a dot in a folder's name */
    ext_is(".hidden", NULL);
    ext_is("dir/.ova", NULL);
    ext_is("x.", NULL);
    ext_is("-", NULL);
    ext_is("x", NULL);
}

static void error_prefix(void)
{
    prefixed("short read", "a.vhd", "a.vhd: short read");
    prefixed("a.vhd: short read", "a.vhd", "a.vhd: short read");
    prefixed("x.vmdk: cut", "t.ova: x.vmdk", "t.ova: x.vmdk: cut");
    prefixed("t.ova: x.vmdk: cut", "t.ova: x.vmdk", "t.ova: x.vmdk: cut");
    prefixed("t.ova: cut", "t.ova: x.vmdk", "t.ova: x.vmdk: t.ova: cut"); /* only a tail counts */
    prefixed("a.vhdx: cut", "a.vhd", "a.vhd: a.vhdx: cut");               /* whole parts only */
    prefixed("Ref:1/00000000: cut", "x.xva: Ref:1/00000000", "x.xva: Ref:1/00000000: cut");
    prefixed("x.vmdk", "x.vmdk", "x.vmdk: x.vmdk");                       /* no message after it */
}

TEST_MAIN({"parse_size", parse_size}, {"is_zero", is_zero}, {"be_fields", be_fields},
          {"error_prefix", error_prefix}, {"path_extension", path_extension})
