#include "base/util.h"
#include "disk/registry.h"
#include "tests/unit/testlib.h"

/* A qcow2 v3 laid out by hand: 4 KiB clusters, header in cluster 0, the
 * L1 table (one entry) in cluster 1, the L2 table in cluster 2, data from
 * cluster 3; a 16 KiB virtual disk over a raw backing file of 10000 bytes:
 *   guest cluster 0: unallocated -> the backing file's bytes
 *   guest cluster 1: data (0x11)
 *   guest cluster 2: zero flag   -> zeros, though the backing file has data
 *   guest cluster 3: unallocated -> zeros past the backing file's end */
#define CB 12u
#define CL (1u << CB)
#define VSIZE (4u * CL)
#define BACKING_LEN 10000u
#define BACKING_BYTE 0x42
#define DATA_BYTE 0x11

static const char *tpath(const char *name) { return test_tmp_path(name); }

static void write_all(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(b, 1, n, f) == n);
    CHECK(fclose(f) == 0);
}

static void make_image(const char *path, const char *backing)
{
    static uint8_t b[4 * CL];
    memset(b, 0, sizeof b);
    memcpy(b, "QFI\xfb", 4);
    sp_put_be32(b + 4, 3);
    sp_put_be32(b + 20, CB);
    sp_put_be64(b + 24, VSIZE);
    sp_put_be32(b + 36, 1);
    sp_put_be64(b + 40, CL);
    sp_put_be32(b + 96, 4);
    sp_put_be32(b + 100, 104);
    size_t n = strlen(backing);
    sp_put_be64(b + 8, 512);
    sp_put_be32(b + 16, (uint32_t)n);
    memcpy(b + 512, backing, n);
    sp_put_be64(b + CL, (1ull << 63) | 2 * CL);          /* L1[0] -> L2 */
    sp_put_be64(b + 2 * CL + 8, (1ull << 63) | 3 * CL);  /* L2[1] -> data */
    sp_put_be64(b + 2 * CL + 16, 1);                     /* L2[2]: zero flag */
    memset(b + 3 * CL, DATA_BYTE, CL);
    write_all(path, b, sizeof b);
}

static void make_backing(const char *path)
{
    static uint8_t b[BACKING_LEN];
    memset(b, BACKING_BYTE, sizeof b);
    write_all(path, b, sizeof b);
}

static void standalone_refuses(void)
{
    test_tmp_setup("qcow2");
    make_backing(tpath("base.raw"));
    make_image(tpath("top.qcow2"), "base.raw");
    struct sp_disk_open_opts o = {.standalone = true};
    struct sp_disk *d = NULL;
    struct sp_error err;
    CHECK(sp_disk_open_any(tpath("top.qcow2"), &o, &d, &err) == SP_EUNSUPPORTED);
    CHECK(d == NULL && strstr(err.msg, "backing file") != NULL);
    o.writable = true;
    o.standalone = false;
    CHECK(sp_disk_open_any(tpath("top.qcow2"), &o, &d, &err) == SP_EUNSUPPORTED);
    test_tmp_teardown();
}

static void expect_extent(struct sp_disk *d, uint64_t off, uint64_t len, enum sp_extent_kind kind)
{
    struct sp_extent e;
    struct sp_error err;
    CHECK_OK(sp_disk_next_extent(d, off, &e, &err));
    CHECK_EQ_U64(e.start, off);
    CHECK_EQ_U64(e.len, len);
    CHECK_EQ_U64(e.kind, kind);
}

static void backing_shorter(void)
{
    test_tmp_setup("qcow2");
    make_backing(tpath("base.raw"));
    make_image(tpath("top.qcow2"), "base.raw"); /* relative: beside top.qcow2 */
    struct sp_disk *d = NULL;
    struct sp_error err;
    CHECK_OK(sp_disk_open(tpath("top.qcow2"), false, &d, &err));
    CHECK_EQ_U64(d->size, VSIZE);
    CHECK(strcmp(d->driver->name, "qcow2") == 0);
    static uint8_t got[VSIZE], want[VSIZE];
    memset(want, 0, sizeof want);
    memset(want, BACKING_BYTE, CL);
    memset(want + CL, DATA_BYTE, CL);
    CHECK_OK(sp_disk_read(d, 0, got, VSIZE, &err));
    CHECK(memcmp(got, want, VSIZE) == 0);
    /* a read across kinds, starting mid-cluster */
    CHECK_OK(sp_disk_read(d, CL - 100, got, 200, &err));
    CHECK(memcmp(got, want + CL - 100, 200) == 0);
    expect_extent(d, 0, CL, SP_EXTENT_DATA);       /* the backing file's data */
    expect_extent(d, CL, CL, SP_EXTENT_DATA);
    expect_extent(d, 2 * CL, CL, SP_EXTENT_ZERO);
    expect_extent(d, 3 * CL, CL, SP_EXTENT_ZERO);  /* past the backing file */
    struct sp_disk_layer l[4];
    int n = 0;
    CHECK_OK(sp_disk_layers(d, l, 4, &n, &err));
    CHECK_EQ_U64(n, 2);
    CHECK(strcmp(l[0].variant, "qcow2 v3") == 0);
    CHECK_EQ_U64(l[0].allocated, CL);
    CHECK_EQ_U64(l[0].block_size, CL);
    sp_disk_close(d);
    test_tmp_teardown();
}

TEST_MAIN({"standalone_refuses", standalone_refuses}, {"backing_shorter", backing_shorter})
