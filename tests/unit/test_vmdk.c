#include "formats/vmdk.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "formats/copy.h"
#include "formats/raw.h"
#include "formats/util.h"
#include "tests/unit/testlib.h"

#define MIB (1024ull * 1024ull)
/* 100 MiB + 3 sectors: two grain tables with data, one all-zero table range
 * (a hole), a partial last grain. */
#define DISK_SIZE (100 * MIB + 1536)

static char tmpdir[256];

static void setup(void)
{
    if (tmpdir[0])
        return;
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/sp-vmdk-XXXXXX", base ? base : "/tmp");
    CHECK(mkdtemp(tmpdir) != NULL);
}

static void teardown(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    CHECK(system(cmd) == 0);
    tmpdir[0] = '\0';
}

static const char *tpath(const char *name)
{
    static char buf[32][512];
    static int i;
    i = (i + 1) % 32;
    snprintf(buf[i], sizeof buf[i], "%s/%s", tmpdir, name);
    return buf[i];
}

static uint64_t xs(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Writes one grain-sized piece of pattern kind g % 6 at off. */
static void fill_grain(uint8_t *b, uint64_t g)
{
    uint64_t s = g * 0x9E3779B97F4A7C15ull + 1;
    static const char text[] = "snapport vmdk test: the quick brown fox jumps over the lazy dog. ";
    switch (g % 6) {
    case 0: /* incompressible */
        for (size_t i = 0; i < SP_VMDK_GRAIN; i += 8) {
            uint64_t v = xs(&s);
            memcpy(b + i, &v, 8);
        }
        break;
    case 1: /* explicit zeros: must not be written */
        memset(b, 0, SP_VMDK_GRAIN);
        break;
    case 2:
        for (size_t i = 0; i < SP_VMDK_GRAIN; i++)
            b[i] = (uint8_t)text[(i + g) % (sizeof text - 1)];
        break;
    case 3: /* half random, half zero */
        memset(b, 0, SP_VMDK_GRAIN);
        for (size_t i = 0; i < SP_VMDK_GRAIN / 2; i += 8) {
            uint64_t v = xs(&s);
            memcpy(b + i, &v, 8);
        }
        break;
    case 4: /* low-entropy random */
        for (size_t i = 0; i < SP_VMDK_GRAIN; i++)
            b[i] = (uint8_t)(xs(&s) & 3);
        break;
    default: /* one byte near the end */
        memset(b, 0, SP_VMDK_GRAIN);
        b[SP_VMDK_GRAIN - 1] = (uint8_t)g | 1;
        break;
    }
}

/* A sparse raw file: data in [0, 10 MiB), a hole to 80 MiB, data to the end. */
static void make_raw(const char *path, uint64_t size, uint64_t hole_lo, uint64_t hole_hi)
{
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, (off_t)size) == 0);
    uint8_t *b = malloc(SP_VMDK_GRAIN);
    CHECK(b);
    for (uint64_t off = 0; off < size; off += SP_VMDK_GRAIN) {
        if (off >= hole_lo && off < hole_hi)
            continue;
        fill_grain(b, off / SP_VMDK_GRAIN);
        size_t n = (size_t)sp_min_u64(SP_VMDK_GRAIN, size - off);
        CHECK(pwrite(fd, b, n, (off_t)off) == (ssize_t)n);
    }
    free(b);
    CHECK(close(fd) == 0);
}

static int out_fd(void *ctx, const void *buf, size_t len, struct sp_error *err)
{
    int fd = *(int *)ctx;
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n <= 0)
            return sp_error_set(err, SP_EIO, "write failed");
        p += n;
        len -= (size_t)n;
    }
    return SP_OK;
}

static int write_vmdk(const char *raw, const char *vmdk, int threads, int level, uint64_t *total,
                      struct sp_error *err)
{
    struct sp_disk *src;
    CHECK_OK(sp_raw_open(raw, false, &src, err));
    int fd = open(vmdk, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    CHECK(fd >= 0);
    struct sp_vmdk_write_opts o = {.threads = threads, .level = level, .adapter = NULL, .name = "out.vmdk"};
    int rc = sp_vmdk_write_stream(src, &o, out_fd, &fd, NULL, total, err);
    CHECK(close(fd) == 0);
    sp_disk_close(src);
    return rc;
}

static const char *the_raw(void)
{
    setup();
    const char *p = tpath("src.raw");
    if (access(p, F_OK) != 0)
        make_raw(p, DISK_SIZE, 10 * MIB, 80 * MIB);
    return p;
}

static const char *the_vmdk(void)
{
    const char *raw = the_raw();
    const char *p = tpath("out.vmdk");
    if (access(p, F_OK) != 0) {
        struct sp_error err;
        uint64_t total = 0;
        CHECK_OK(write_vmdk(raw, p, 2, 0, &total, &err));
        struct stat st;
        CHECK(stat(p, &st) == 0);
        CHECK_EQ_U64(total, (uint64_t)st.st_size);
    }
    return p;
}

/* sp_vmdk_open(vmdk) reads like raw; returns the code of the comparison. */
static int open_compare(const char *raw, const char *vmdk, struct sp_error *err)
{
    struct sp_disk *a, *b;
    CHECK_OK(sp_raw_open(raw, false, &a, err));
    int rc = sp_vmdk_open(vmdk, &b, err);
    if (rc != SP_OK) {
        sp_disk_close(a);
        return rc;
    }
    bool same = false;
    uint64_t diff = 0;
    rc = sp_compare_disks(a, b, &same, &diff, NULL, err);
    if (rc == SP_OK && !same) {
        fprintf(stderr, "differs at byte %llu\n", (unsigned long long)diff);
        rc = SP_EFORMAT;
    }
    sp_disk_close(a);
    sp_disk_close(b);
    return rc;
}

static int in_fd(void *ctx, void *buf, size_t len, size_t *got, struct sp_error *err)
{
    ssize_t n = read(*(int *)ctx, buf, len);
    if (n < 0)
        return sp_error_set(err, SP_EIO, "read failed");
    *got = (size_t)n;
    return SP_OK;
}

static int sink_fd(void *ctx, uint64_t off, const void *data, size_t len)
{
    return pwrite(*(int *)ctx, data, len, (off_t)off) == (ssize_t)len ? 0 : SP_EIO;
}

/* sp_vmdk_read_stream(vmdk) into a file, compared with raw. */
static int stream_compare(const char *raw, const char *vmdk, struct sp_error *err)
{
    const char *outp = tpath("stream.raw");
    int in = open(vmdk, O_RDONLY);
    int out = open(outp, O_CREAT | O_TRUNC | O_RDWR, 0644);
    CHECK(in >= 0 && out >= 0);
    uint64_t cap = 0;
    int rc = sp_vmdk_read_stream(in_fd, &in, sink_fd, &out, &cap, err);
    close(in);
    if (rc == SP_OK)
        CHECK(ftruncate(out, (off_t)(cap * 512)) == 0);
    close(out);
    if (rc != SP_OK)
        return rc;
    struct stat st;
    CHECK(stat(raw, &st) == 0);
    CHECK_EQ_U64(cap * 512, (uint64_t)st.st_size);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", raw, outp);
    return system(cmd) == 0 ? SP_OK : SP_EFORMAT;
}

static int run(const char *fmt, const char *a, const char *b)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void open_reads_back(void)
{
    struct sp_error err;
    const char *v = the_vmdk();
    CHECK_OK(open_compare(the_raw(), v, &err));
    /* The extents: the hole and the zero grains read as ZERO. */
    struct sp_disk *d;
    CHECK_OK(sp_vmdk_open(v, &d, &err));
    CHECK_EQ_U64(d->size, DISK_SIZE);
    struct sp_extent e;
    CHECK_OK(sp_disk_next_extent(d, 20 * MIB, &e, &err));
    CHECK(e.kind == SP_EXTENT_ZERO);
    CHECK_EQ_U64(e.start + e.len, 80 * MIB);
    CHECK_OK(sp_disk_next_extent(d, 1 * SP_VMDK_GRAIN, &e, &err));
    CHECK(e.kind == SP_EXTENT_ZERO && e.len == SP_VMDK_GRAIN);
    sp_disk_close(d);
    teardown();
}

static void stream_reads_back(void)
{
    struct sp_error err;
    CHECK_OK(stream_compare(the_raw(), the_vmdk(), &err));
    teardown();
}

static void qemu_reads(void)
{
    const char *v = the_vmdk();
    CHECK(run("qemu-img compare -q '%s' '%s'", the_raw(), v) == 0);
    CHECK(run("qemu-img check -q '%s' %s", v, "") == 0);
    CHECK(run("qemu-img info '%s' %s | grep -q 'file format: vmdk'", v, "") == 0);
    CHECK(run("qemu-img info '%s' %s | grep -q 'create type: streamOptimized'", v, "") == 0);
    teardown();
}

static void vmdkinfo_reads(void)
{
    CHECK(run("vmdkinfo '%s' %s >/dev/null", the_vmdk(), "") == 0);
    teardown();
}

static void qemu_stream_read(void)
{
    struct sp_error err;
    const char *raw = the_raw();
    const char *q = tpath("qemu-stream.vmdk");
    CHECK(run("qemu-img convert -O vmdk -o subformat=streamOptimized '%s' '%s'", raw, q) == 0);
    CHECK_OK(open_compare(raw, q, &err));
    CHECK_OK(stream_compare(raw, q, &err));
    teardown();
}

static void qemu_sparse_read(void)
{
    struct sp_error err;
    const char *raw = the_raw();
    const char *q = tpath("qemu-sparse.vmdk");
    CHECK(run("qemu-img convert -O vmdk -o subformat=monolithicSparse '%s' '%s'", raw, q) == 0);
    CHECK_OK(open_compare(raw, q, &err));
    /* Not a stream: the stream reader says so cleanly. */
    int in = open(q, O_RDONLY);
    CHECK(in >= 0);
    int rc = sp_vmdk_read_stream(in_fd, &in, sink_fd, &in, NULL, &err);
    close(in);
    CHECK(rc == SP_EUNSUPPORTED);
    teardown();
}

static void deterministic(void)
{
    struct sp_error err;
    const char *raw = the_raw();
    const char *a = tpath("a.vmdk"), *b = tpath("b.vmdk");
    CHECK_OK(write_vmdk(raw, a, 1, 0, NULL, &err));
    CHECK_OK(write_vmdk(raw, b, 3, 0, NULL, &err));
    CHECK(run("cmp -s '%s' '%s'", a, b) == 0);
    teardown();
}

static void copy_file(const char *from, const char *to)
{
    CHECK(run("cp '%s' '%s'", from, to) == 0);
}

static void patch(const char *path, uint64_t off, const void *bytes, size_t len)
{
    int fd = open(path, O_WRONLY);
    CHECK(fd >= 0);
    CHECK(pwrite(fd, bytes, len, (off_t)off) == (ssize_t)len);
    close(fd);
}

static void damaged_grain(void)
{
    struct sp_error err;
    const char *raw = the_raw();
    const char *d = tpath("damaged.vmdk");
    copy_file(the_vmdk(), d);
    /* The first grain's marker is at sector 21; flip a byte of its data. */
    int fd = open(d, O_RDWR);
    uint8_t b;
    CHECK(pread(fd, &b, 1, 21 * 512 + 12 + 1000) == 1);
    b ^= 0x40;
    CHECK(pwrite(fd, &b, 1, 21 * 512 + 12 + 1000) == 1);
    close(fd);
    CHECK(open_compare(raw, d, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "corrupt") != NULL);
    CHECK(stream_compare(raw, d, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "corrupt") != NULL);
    /* A grain size beyond any deflate bound. */
    copy_file(the_vmdk(), d);
    uint8_t big[4] = {0xff, 0xff, 0xff, 0x7f};
    patch(d, 21 * 512 + 8, big, 4);
    CHECK(open_compare(raw, d, &err) == SP_EFORMAT);
    CHECK(stream_compare(raw, d, &err) == SP_EFORMAT);
    /* An lba that is not grain-aligned. */
    copy_file(the_vmdk(), d);
    uint8_t lba[8] = {5};
    patch(d, 21 * 512, lba, 8);
    CHECK(open_compare(raw, d, &err) == SP_EFORMAT);
    CHECK(stream_compare(raw, d, &err) == SP_EFORMAT);
    teardown();
}

static void truncated(void)
{
    struct sp_error err;
    const char *raw = the_raw();
    const char *v = the_vmdk();
    const char *d = tpath("trunc.vmdk");
    struct stat st;
    CHECK(stat(v, &st) == 0);
    uint64_t cuts[] = {100, 512 * 21 + 300, (uint64_t)st.st_size / 2, (uint64_t)st.st_size / 2 / 512 * 512,
                       (uint64_t)st.st_size - 512, (uint64_t)st.st_size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        copy_file(v, d);
        CHECK(truncate(d, (off_t)cuts[i]) == 0);
        CHECK(open_compare(raw, d, &err) != SP_OK);
        CHECK(stream_compare(raw, d, &err) != SP_OK);
    }
    teardown();
}

static void gt_past_eof(void)
{
    struct sp_error err;
    const char *raw = the_raw();
    const char *v = the_vmdk();
    const char *d = tpath("gt.vmdk");
    struct stat st;
    CHECK(stat(v, &st) == 0);
    /* gdOffset from the footer, then the first table. */
    int fd = open(v, O_RDONLY);
    uint8_t f[512];
    CHECK(pread(fd, f, 512, st.st_size - 1024) == 512);
    uint64_t gd = 0;
    for (int i = 7; i >= 0; i--)
        gd = gd << 8 | f[56 + i];
    uint8_t e[4];
    CHECK(pread(fd, e, 4, (off_t)(gd * 512)) == 4);
    uint64_t gt = (uint64_t)e[0] | (uint64_t)e[1] << 8 | (uint64_t)e[2] << 16 | (uint64_t)e[3] << 24;
    close(fd);
    CHECK(gt != 0);
    /* A grain entry past the end. */
    copy_file(v, d);
    uint8_t far[4] = {0x00, 0xff, 0xff, 0xff};
    patch(d, gt * 512, far, 4);
    CHECK(open_compare(raw, d, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "past the end") != NULL);
    /* A table entry past the end. */
    copy_file(v, d);
    patch(d, gd * 512, far, 4);
    CHECK(open_compare(raw, d, &err) == SP_EFORMAT);
    /* A directory past the end. */
    copy_file(v, d);
    uint8_t gdo[8] = {0, 0, 0, 0x40};
    patch(d, (uint64_t)st.st_size - 1024 + 56, gdo, 8);
    CHECK(sp_vmdk_open(d, &(struct sp_disk *){NULL}, &err) == SP_EFORMAT);
    /* Absurd capacity and grain size. */
    copy_file(v, d);
    uint8_t cap[8] = {0, 0, 0, 0, 0, 0, 0, 0x7f};
    patch(d, 12, cap, 8);
    CHECK(sp_vmdk_open(d, &(struct sp_disk *){NULL}, &err) == SP_EFORMAT);
    copy_file(v, d);
    uint8_t gs[8] = {3};
    patch(d, 20, gs, 8);
    CHECK(sp_vmdk_open(d, &(struct sp_disk *){NULL}, &err) == SP_EFORMAT);
    teardown();
}

/* An unknown marker type (4, "progress") between grains is skipped. */
static void unknown_marker(void)
{
    struct sp_error err;
    const char *raw = the_raw();
    const char *v = the_vmdk();
    const char *d = tpath("marker4.vmdk");
    int in = open(v, O_RDONLY), out = open(d, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    CHECK(in >= 0 && out >= 0);
    uint8_t *b = malloc(1 << 20);
    CHECK(b);
    CHECK(read(in, b, 21 * 512) == 21 * 512);
    CHECK(write(out, b, 21 * 512) == 21 * 512);
    memset(b, 0, 1024);
    b[0] = 1;  /* numSectors */
    b[12] = 4; /* type */
    memset(b + 512, 0xA5, 512);
    CHECK(write(out, b, 1024) == 1024);
    ssize_t n;
    while ((n = read(in, b, 1 << 20)) > 0)
        CHECK(write(out, b, (size_t)n) == n);
    free(b);
    close(in);
    close(out);
    CHECK_OK(stream_compare(raw, d, &err));
    teardown();
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Not a CTest case: `SP_VMDK_BENCH=1 test_vmdk bench` writes a 1 GiB mixed disk with 2
 * threads and compares with qemu-img. */
static void bench(void)
{
    if (!getenv("SP_VMDK_BENCH")) {
        printf("bench skipped: set SP_VMDK_BENCH=1\n");
        return;
    }
    setup();
    struct sp_error err;
    const char *raw = tpath("bench.raw");
    const char *ours = tpath("bench.vmdk"), *q = tpath("bench-qemu.vmdk");
    make_raw(raw, 1024 * MIB, 512 * MIB, 640 * MIB);
    uint64_t total = 0;
    double t0 = now();
    CHECK_OK(write_vmdk(raw, ours, 2, 0, &total, &err));
    double t1 = now();
    CHECK(run("qemu-img convert -O vmdk -o subformat=streamOptimized '%s' '%s'", raw, q) == 0);
    double t2 = now();
    struct stat st;
    CHECK(stat(q, &st) == 0);
    printf("snapport 2 threads level 6: %.2f s, %llu bytes\n", t1 - t0, (unsigned long long)total);
    printf("qemu-img convert:           %.2f s, %llu bytes\n", t2 - t1, (unsigned long long)st.st_size);
    t0 = now();
    CHECK_OK(write_vmdk(raw, ours, 2, 1, &total, &err));
    t1 = now();
    printf("snapport 2 threads level 1: %.2f s, %llu bytes\n", t1 - t0, (unsigned long long)total);
    CHECK(run("qemu-img compare -q '%s' '%s'", raw, ours) == 0);
    teardown();
}

TEST_MAIN({"open_reads_back", open_reads_back}, {"stream_reads_back", stream_reads_back},
          {"qemu_reads", qemu_reads}, {"vmdkinfo_reads", vmdkinfo_reads}, {"qemu_stream_read", qemu_stream_read},
          {"qemu_sparse_read", qemu_sparse_read}, {"deterministic", deterministic},
          {"damaged_grain", damaged_grain}, {"truncated", truncated}, {"gt_past_eof", gt_past_eof},
          {"unknown_marker", unknown_marker},
          {"bench", bench})
