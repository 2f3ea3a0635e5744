#include "disk/vmdk.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "disk/copy.h"
#include "disk/raw.h"
#include "base/util.h"
#include "tests/unit/testlib.h"

#define MIB (1024ull * 1024ull)
/* 100 MiB + 3 sectors: two grain tables with data, one all-zero table range
 * (a hole), a partial last grain. */
#define DISK_SIZE (100 * MIB + 1536)

static void setup(void) { test_tmp_setup("vmdk"); }
static void teardown(void) { test_tmp_teardown(); }
static const char *tpath(const char *name) { return test_tmp_path(name); }

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

/* ------------------------------------------------------------------ */
/* An independent walk of a streamOptimized file (not the module's code):
 * where the grain markers, tables, directory and footer are. */

#define W_GRAINS 4096
#define W_TABLES 64

struct walk {
    uint64_t overhead;
    size_t ngrains;
    uint64_t lba[W_GRAINS], at[W_GRAINS], len[W_GRAINS]; /* per grain: lba, marker sector, sectors */
    size_t ngt;
    uint64_t gt[W_TABLES];          /* sector of each GT marker */
    uint64_t gd, gd_len;            /* GD marker sector (0: none), its length */
    uint64_t footer, eos;           /* marker sectors; 0: none */
    uint64_t sectors;               /* file length */
};

static uint64_t get_le(int fd, uint64_t off, int n)
{
    uint8_t b[8];
    CHECK(n <= 8 && pread(fd, b, (size_t)n, (off_t)off) == n);
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static void put_le(const char *path, uint64_t off, uint64_t v, int n)
{
    uint8_t b[8];
    for (int i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    patch(path, off, b, (size_t)n);
}

static struct walk *walk(const char *path)
{
    struct walk *w = calloc(1, sizeof *w);
    CHECK(w);
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    struct stat st;
    CHECK(fstat(fd, &st) == 0);
    w->sectors = (uint64_t)st.st_size / 512;
    w->overhead = get_le(fd, 64, 8);
    for (uint64_t s = w->overhead; s < w->sectors;) {
        uint64_t val = get_le(fd, s * 512, 8);
        uint64_t size = get_le(fd, s * 512 + 8, 4), type = get_le(fd, s * 512 + 12, 4);
        if (size) {
            CHECK(w->ngrains < W_GRAINS);
            w->lba[w->ngrains] = val;
            w->at[w->ngrains] = s;
            w->len[w->ngrains] = (12 + size + 511) / 512;
            s += w->len[w->ngrains++];
            continue;
        }
        if (type == 0) {
            w->eos = s;
            break;
        }
        if (type == 1) {
            CHECK(w->ngt < W_TABLES);
            w->gt[w->ngt++] = s;
        } else if (type == 2) {
            w->gd = s;
            w->gd_len = val;
        } else if (type == 3) {
            w->footer = s;
        }
        s += 1 + val;
    }
    close(fd);
    return w;
}

/* Copies from to to with n sectors of bytes inserted at sector at, then
 * moves every table entry, directory entry and footer gdOffset at or past
 * it: the same disk for file readers, the stream with an extra piece. */
static void insert_sectors(const char *from, const char *to, uint64_t at, const void *bytes, uint64_t n)
{
    struct walk *w = walk(from);
    int in = open(from, O_RDONLY), out = open(to, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    CHECK(in >= 0 && out >= 0);
    uint8_t *b = malloc(1 << 20);
    CHECK(b);
    uint64_t left = at * 512;
    while (left) {
        size_t k = (size_t)sp_min_u64(left, 1 << 20);
        CHECK(read(in, b, k) == (ssize_t)k);
        CHECK(write(out, b, k) == (ssize_t)k);
        left -= k;
    }
    CHECK(write(out, bytes, n * 512) == (ssize_t)(n * 512));
    ssize_t k;
    while ((k = read(in, b, 1 << 20)) > 0)
        CHECK(write(out, b, (size_t)k) == k);
    free(b);
    close(in);
    close(out);
    int fd = open(to, O_RDONLY);
    CHECK(fd >= 0);
#define MOVED(s) ((s) >= at ? (s) + n : (s))
    for (size_t t = 0; t < w->ngt; t++)
        for (uint64_t i = 0; i < 512; i++) {
            uint64_t off = (MOVED(w->gt[t]) + 1) * 512 + 4 * i, e = get_le(fd, off, 4);
            if (e >= at)
                put_le(to, off, e + n, 4);
        }
    for (uint64_t i = 0; i < w->gd_len * 128; i++) {
        uint64_t off = (MOVED(w->gd) + 1) * 512 + 4 * i, e = get_le(fd, off, 4);
        if (e >= at)
            put_le(to, off, e + n, 4);
    }
    uint64_t foff = (MOVED(w->footer) + 1) * 512 + 56;
    put_le(to, foff, MOVED(get_le(fd, foff, 8)), 8);
#undef MOVED
    close(fd);
    free(w);
}

/* Our writer's layout, read back by the walk: the hole's table is omitted. */
static struct walk *the_walk(void)
{
    struct walk *w = walk(the_vmdk());
    CHECK(w->ngt == 3 && w->gd && w->footer && w->eos == w->sectors - 1);
    CHECK(w->ngrains > 3 && w->lba[0] == 0 && w->lba[1] == 2 * 128 && w->lba[2] == 3 * 128);
    return w;
}

/* A table entry pointing at or past its own marker. */
static void stream_gt_past_end(void)
{
    struct sp_error err;
    const char *raw = the_raw(), *v = the_vmdk(), *d = tpath("gt-end.vmdk");
    struct walk *w = the_walk();
    uint64_t targets[] = {w->sectors + 10, w->gt[0], w->gt[0] + 1, w->gd + 1};
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        copy_file(v, d);
        put_le(d, (w->gt[0] + 1) * 512, targets[i], 4); /* grain 0 */
        CHECK(stream_compare(raw, d, &err) == SP_EFORMAT);
        CHECK(strstr(err.msg, "grain table 0 entry 0 points past the end") != NULL);
    }
    /* The entry of a grain that is not in the stream (grain 1 is zeros). */
    copy_file(v, d);
    put_le(d, (w->gt[0] + 1) * 512 + 4, w->sectors + 10, 4);
    CHECK(stream_compare(raw, d, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "entry 1 points past the end") != NULL);
    free(w);
    teardown();
}

/* A table entry pointing at another grain's marker, at nothing, or empty. */
static void stream_gt_mismatch(void)
{
    struct sp_error err;
    const char *raw = the_raw(), *v = the_vmdk(), *d = tpath("gt-mismatch.vmdk");
    struct walk *w = the_walk();
    uint64_t gt0 = (w->gt[0] + 1) * 512;
    /* Grain 0's entry at grain 2's marker: qemu would read grain 2 twice. */
    copy_file(v, d);
    put_le(d, gt0, w->at[1], 4);
    CHECK(open_compare(raw, d, &err) == SP_EFORMAT);
    CHECK(stream_compare(raw, d, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "grain table 0 entry 0 points at sector") != NULL);
    CHECK(strstr(err.msg, "grain marker is at 21") != NULL);
    /* Two entries swapped. */
    copy_file(v, d);
    put_le(d, gt0 + 4 * 2, w->at[2], 4);
    put_le(d, gt0 + 4 * 3, w->at[1], 4);
    CHECK(stream_compare(raw, d, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "entry 2 points at sector") != NULL);
    /* Grain 1 (zeros, not written) given grain 0's data. */
    copy_file(v, d);
    put_le(d, gt0 + 4, w->at[0], 4);
    CHECK(stream_compare(raw, d, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "entry 1 points at sector 21, the stream has no such grain") != NULL);
    /* Grain 0 dropped from its table: file readers would see zeros. */
    copy_file(v, d);
    put_le(d, gt0, 0, 4);
    CHECK(stream_compare(raw, d, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "entry 0 is empty") != NULL);
    /* A table marker with another length. */
    copy_file(v, d);
    put_le(d, w->gt[0] * 512, 5, 8);
    CHECK(stream_compare(raw, d, &err) == SP_EFORMAT);
    free(w);
    teardown();
}

/* Directory entries that are not the tables seen, and a footer that is
 * not the header. */
static void stream_gd_mismatch(void)
{
    struct sp_error err;
    const char *raw = the_raw(), *v = the_vmdk(), *d = tpath("gd-mismatch.vmdk");
    struct walk *w = the_walk();
    uint64_t gd = (w->gd + 1) * 512;
    int fd = open(v, O_RDONLY);
    CHECK(fd >= 0);
    CHECK_EQ_U64(get_le(fd, gd, 4), w->gt[0] + 1);
    CHECK_EQ_U64(get_le(fd, gd + 4, 4), 0); /* the hole */
    close(fd);
    struct {
        uint64_t entry, value;
        const char *msg;
    } cases[] = {
        {0, w->gt[2] + 1, "grain directory entry 0 points at sector"},   /* another table */
        {0, 0, "grain directory entry 0 is empty"},                      /* a table dropped */
        {0, w->gt[0], "grain directory entry 0 points at sector"},       /* the marker, not the table */
        {1, w->gt[0] + 1, "entry 1 points at sector"},                   /* the hole given table 0 */
        {1, w->gd + 1, "grain directory entry 1 points past the end"},
        {3, w->sectors + 100, "grain directory entry 3 points at sector"},  /* a table elsewhere */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        copy_file(v, d);
        put_le(d, gd + 4 * cases[i].entry, cases[i].value, 4);
        CHECK(stream_compare(raw, d, &err) == SP_EFORMAT);
        CHECK(strstr(err.msg, cases[i].msg) != NULL);
    }
    /* Footer gdOffset at the marker, capacity changed, flags changed. */
    uint64_t foot = (w->footer + 1) * 512;
    copy_file(v, d);
    put_le(d, foot + 56, w->gd, 8);
    CHECK(stream_compare(raw, d, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "footer gdOffset") != NULL);
    copy_file(v, d);
    put_le(d, foot + 12, DISK_SIZE / 512 - 128, 8);
    CHECK(stream_compare(raw, d, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "footer does not match") != NULL);
    copy_file(v, d);
    put_le(d, foot + 8, 0x20001, 4);
    CHECK(stream_compare(raw, d, &err) == SP_EFORMAT);
    /* No directory: its marker turned into an unknown type. */
    copy_file(v, d);
    put_le(d, w->gd * 512 + 12, 4, 4);
    CHECK(stream_compare(raw, d, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "before the grain directory") != NULL);
    /* A sector between the footer and EOS. */
    copy_file(v, d);
    put_le(d, w->eos * 512 + 12, 4, 4);
    CHECK(stream_compare(raw, d, &err) == SP_EFORMAT);
    free(w);
    teardown();
}

static void stream_grains_out_of_order(void)
{
    struct sp_error err;
    const char *raw = the_raw(), *v = the_vmdk(), *d = tpath("order.vmdk");
    struct walk *w = the_walk();
    /* The third grain says it is the first's lba again, then lower than the
     * second's, then the first says it is past the second. */
    uint64_t cases[][2] = {{2, w->lba[0]}, {2, w->lba[1] - 128}, {0, w->lba[1]}, {0, w->lba[1] + 128}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        copy_file(v, d);
        put_le(d, w->at[cases[i][0]] * 512, cases[i][1], 8);
        CHECK(stream_compare(raw, d, &err) == SP_EFORMAT);
        CHECK(strstr(err.msg, "grains out of order") != NULL);
    }
    /* qemu-img's layout (tables at the front, no metadata markers) too. */
    const char *q = tpath("qemu-order.vmdk");
    CHECK(run("qemu-img convert -O vmdk -o subformat=streamOptimized '%s' '%s'", raw, q) == 0);
    struct walk *qw = walk(q);
    CHECK(qw->ngrains > 3 && qw->ngt == 0 && qw->gd == 0);
    CHECK(stream_compare(raw, q, &err) == SP_OK);
    put_le(q, qw->at[3] * 512, qw->lba[1], 8);
    CHECK(stream_compare(raw, q, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "grains out of order") != NULL);
    free(qw);
    free(w);
    teardown();
}

/* A table without grains (as writers that emit every table do) is fine if
 * it is empty and the directory points at it or at nothing. */
static void stream_empty_gt(void)
{
    struct sp_error err;
    const char *raw = the_raw(), *v = the_vmdk(), *d = tpath("empty-gt.vmdk");
    struct walk *w = the_walk();
    uint8_t gt[5 * 512] = {0};
    gt[0] = 4;  /* numSectors */
    gt[12] = 1; /* type GT */
    /* Table 1 (the hole), between tables 0 and 2. */
    uint64_t at = w->gt[0] + 5;
    insert_sectors(v, d, at, gt, 5);
    CHECK(run("qemu-img compare -q '%s' '%s'", raw, d) == 0);
    CHECK_OK(stream_compare(raw, d, &err));
    put_le(d, (w->gd + 5 + 1) * 512 + 4, at + 1, 4); /* directory entry 1 at it */
    CHECK(run("qemu-img compare -q '%s' '%s'", raw, d) == 0);
    CHECK_OK(stream_compare(raw, d, &err));
    /* Not empty: an entry pointing at grain 0. */
    put_le(d, (at + 1) * 512 + 4 * 7, w->at[0], 4);
    CHECK(stream_compare(raw, d, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "no grains before it") != NULL);
    /* After the last table, before the directory. */
    insert_sectors(v, d, w->gd, gt, 5);
    CHECK_OK(stream_compare(raw, d, &err));
    free(w);
    teardown();
}

/* Xen Orchestra's layout: all grains, then a GT marker without length and
 * every table, a GD marker without length and the directory, footer, EOS.
 * Built here from our grains; qemu reads it through the footer. */
static void xo_stream_read(void)
{
    struct sp_error err;
    const char *raw = the_raw(), *v = the_vmdk(), *d = tpath("xo.vmdk");
    struct walk *w = the_walk();
    int in = open(v, O_RDONLY), out = open(d, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    CHECK(in >= 0 && out >= 0);
    uint8_t *b = malloc(256 * 1024);
    CHECK(b);
    CHECK(pread(in, b, w->overhead * 512, 0) == (ssize_t)(w->overhead * 512));
    CHECK(write(out, b, w->overhead * 512) == (ssize_t)(w->overhead * 512));
    uint64_t ngrains = (DISK_SIZE + SP_VMDK_GRAIN - 1) / SP_VMDK_GRAIN, ngt = (ngrains + 511) / 512;
    uint32_t *gts = calloc(ngt * 512, 4);
    CHECK(gts);
    uint64_t pos = w->overhead;
    for (size_t i = 0; i < w->ngrains; i++) {
        size_t n = w->len[i] * 512;
        CHECK(n <= 256 * 1024);
        CHECK(pread(in, b, n, (off_t)(w->at[i] * 512)) == (ssize_t)n);
        CHECK(write(out, b, n) == (ssize_t)n);
        gts[w->lba[i] / 128] = (uint32_t)pos;
        pos += w->len[i];
    }
    uint8_t sec[512];
    memset(sec, 0, sizeof sec);
    sec[12] = 1; /* GT marker, numSectors 0 */
    CHECK(write(out, sec, 512) == 512);
    uint64_t gt_at = ++pos;
    for (uint64_t i = 0; i < ngt * 512; i++) {
        uint8_t e[4] = {(uint8_t)gts[i], (uint8_t)(gts[i] >> 8), (uint8_t)(gts[i] >> 16), (uint8_t)(gts[i] >> 24)};
        CHECK(write(out, e, 4) == 4);
    }
    pos += ngt * 4;
    sec[12] = 2; /* GD marker, numSectors 0 */
    CHECK(write(out, sec, 512) == 512);
    uint64_t gd_at = ++pos;
    memset(sec, 0, sizeof sec);
    for (uint64_t i = 0; i < ngt; i++) {
        uint64_t t = gt_at + 4 * i;
        sec[4 * i] = (uint8_t)t;
        sec[4 * i + 1] = (uint8_t)(t >> 8);
        sec[4 * i + 2] = (uint8_t)(t >> 16);
    }
    CHECK(write(out, sec, 512) == 512);
    memset(sec, 0, sizeof sec);
    sec[0] = 1;
    sec[12] = 3; /* footer marker */
    CHECK(write(out, sec, 512) == 512);
    CHECK(pread(in, sec, 512, 0) == 512);
    for (int i = 0; i < 8; i++)
        sec[56 + i] = (uint8_t)(gd_at >> (8 * i));
    CHECK(write(out, sec, 512) == 512);
    memset(sec, 0, sizeof sec);
    CHECK(write(out, sec, 512) == 512); /* EOS */
    close(in);
    close(out);
    free(gts);
    free(b);
    CHECK(run("qemu-img compare -q '%s' '%s'", raw, d) == 0);
    CHECK_OK(open_compare(raw, d, &err));
    CHECK_OK(stream_compare(raw, d, &err));
    free(w);
    teardown();
}

/* An unknown marker type (4, "progress") is skipped: before the grains,
 * between grains, after a table, before the directory and the footer. */
static void unknown_marker(void)
{
    struct sp_error err;
    const char *raw = the_raw(), *v = the_vmdk(), *d = tpath("marker4.vmdk");
    struct walk *w = the_walk();
    uint8_t m[1024] = {0};
    m[0] = 1;  /* numSectors */
    m[12] = 4; /* type */
    memset(m + 512, 0xA5, 512);
    uint64_t where[] = {w->overhead, w->at[5], w->gt[0] + 5, w->gd, w->footer};
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        insert_sectors(v, d, where[i], m, 2);
        if (i == 1)
            CHECK(run("qemu-img compare -q '%s' '%s'", raw, d) == 0);
        CHECK_OK(stream_compare(raw, d, &err));
    }
    free(w);
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
          {"unknown_marker", unknown_marker}, {"stream_gt_past_end", stream_gt_past_end},
          {"stream_gt_mismatch", stream_gt_mismatch}, {"stream_gd_mismatch", stream_gd_mismatch},
          {"stream_grains_out_of_order", stream_grains_out_of_order}, {"stream_empty_gt", stream_empty_gt},
          {"xo_stream_read", xo_stream_read},
          {"bench", bench})
