#include "archive/xva_stream.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "disk/raw.h"
#include "tests/unit/testlib.h"

#define MIB (1u << 20)
#define XML "<?xml version=\"1.0\"?><value><struct/></value>"
#define MTIME 1700000000

static char tmpdir[64];

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sp_xva_XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
}

static void cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    CHECK(system(cmd) == 0);
}

/* A path in the case's folder; the result is overwritten by the 4th call
 * after: copy what must last. */
static const char *tpath(const char *name)
{
    static char buf[4][256];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", tmpdir, name);
    return buf[i];
}

static uint8_t pattern_byte(uint64_t off)
{
    return (uint8_t)(((off * 2654435761u) >> 13) | 1);
}

static void fill(uint8_t *p, uint64_t off, size_t len)
{
    for (size_t i = 0; i < len; i++)
        p[i] = pattern_byte(off + i);
}

/* The source disk of most cases: 5 MiB + 1000 bytes.
 * block 0: data; 1: hole; 2: written zeros (DATA that is zero); 3: data in
 * its second half only; 4: hole; 5 (1000 bytes, short): data.
 * Returns the expected content (caller frees). */
#define SRC_SIZE (5ull * MIB + 1000)
static uint8_t *make_source(const char *path, uint64_t *size)
{
    uint8_t *img = calloc(1, SRC_SIZE);
    CHECK(img != NULL);
    fill(img, 0, MIB);
    fill(img + 3 * MIB + MIB / 2, 3 * MIB + MIB / 2, MIB / 2);
    fill(img + 5 * MIB, 5 * MIB, 1000);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    struct sp_disk *d;
    struct sp_error err;
    CHECK_OK(sp_raw_create_fd(fd, path, SRC_SIZE, false, &d, &err));
    CHECK_OK(sp_disk_write(d, 0, img, MIB, &err));
    CHECK_OK(sp_disk_write(d, 2 * MIB, img + 2 * MIB, MIB, &err)); /* zeros, allocated */
    CHECK_OK(sp_disk_write(d, 3 * MIB + MIB / 2, img + 3 * MIB + MIB / 2, MIB / 2, &err));
    CHECK_OK(sp_disk_write(d, 5 * MIB, img + 5 * MIB, 1000, &err));
    CHECK_OK(sp_disk_flush(d, &err));
    sp_disk_close(d);
    close(fd);
    *size = SRC_SIZE;
    return img;
}

/* A raw of size bytes, all hole. */
static void make_empty(const char *path, uint64_t size)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, (off_t)size) == 0);
    close(fd);
}

struct progress_log {
    uint64_t done, total, calls;
};

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    struct progress_log *p = ctx;
    p->done = done;
    p->total = total;
    p->calls++;
}

/* Writes an XVA of the given raw files, ids Ref:1, Ref:2 ... */
static void write_xva(const char *out, enum sp_xva_compress c, enum sp_xva_digest dg, const char **raws, int n)
{
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    struct sp_xva_writer *w;
    struct sp_error err;
    CHECK_OK(sp_xva_writer_open(fd, c, 0, dg, MTIME, &w, &err));
    CHECK_OK(sp_xva_write_xml(w, XML, strlen(XML), &err));
    for (int i = 0; i < n; i++) {
        struct sp_disk *d;
        CHECK_OK(sp_raw_open(raws[i], false, &d, &err));
        char id[16];
        snprintf(id, sizeof id, "Ref:%d", i + 1);
        struct progress_log pl = {0, 0, 0};
        struct sp_progress prog = {on_progress, &pl};
        int rc = sp_xva_write_disk(w, id, d, &prog, &err);
        if (rc)
            fprintf(stderr, "write_disk: %s\n", err.msg);
        CHECK_OK(rc);
        CHECK(pl.calls > 0 && pl.done == pl.total);
        sp_disk_close(d);
    }
    int rc = sp_xva_writer_close(w, &err);
    if (rc)
        fprintf(stderr, "close: %s\n", err.msg);
    CHECK_OK(rc);
    sp_xva_writer_free(w);
    close(fd);
}

struct membuf {
    uint8_t *p;
    uint64_t size;
};

static int to_mem(void *ctx, uint64_t off, const void *data, size_t len)
{
    struct membuf *m = ctx;
    if (off > m->size || len > m->size - off)
        return -1;
    memcpy(m->p + off, data, len);
    return 0;
}

/* Reads the XVA at path holding n VDIs of the given sizes; returns 0 and the
 * concatenated images in *imgs (n buffers), or the error code with err. */
static int read_xva(const char *path, int n, const uint64_t *sizes, uint8_t **imgs, enum sp_xva_compress *comp,
                    unsigned *dg, struct sp_error *err)
{
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    struct sp_xva_reader *r;
    int rc = sp_xva_reader_open(fd, "t.xva", &r, err);
    if (rc) {
        printf("  (expected?) %s\n", err->msg);
        close(fd);
        return rc;
    }
    size_t xl;
    const char *xml = sp_xva_reader_xml(r, &xl);
    CHECK(xl == strlen(XML) && memcmp(xml, XML, xl) == 0);
    if (comp)
        *comp = sp_xva_reader_compress(r);
    for (int i = 0; i < n && rc == 0; i++) {
        char id[16];
        snprintf(id, sizeof id, "Ref:%d", i + 1);
        struct membuf m = {imgs ? calloc(1, sizes[i] ? sizes[i] : 1) : NULL, sizes[i]};
        uint64_t stored = 0;
        rc = sp_xva_read_disk(r, id, sizes[i], imgs ? to_mem : NULL, &m, &stored, NULL, err);
        if (imgs)
            imgs[i] = m.p;
    }
    if (rc == 0)
        rc = sp_xva_reader_finish(r, err);
    if (dg)
        *dg = sp_xva_reader_digests(r);
    sp_xva_reader_free(r);
    close(fd);
    if (rc)
        printf("  (expected?) %s\n", err->msg);
    return rc;
}

/* "name:size name:size ..." of a tar (any filter), and the content of the
 * member named want (if any) into got. */
static void list_tar(const char *path, char *out, size_t outlen, const char *want, char *got, size_t gotlen)
{
    struct archive *a = archive_read_new();
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    CHECK(archive_read_open_filename(a, path, 65536) == ARCHIVE_OK);
    struct archive_entry *e;
    out[0] = '\0';
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        size_t n = strlen(out);
        snprintf(out + n, outlen - n, "%s%s:%lld", n ? " " : "", archive_entry_pathname(e),
                 (long long)archive_entry_size(e));
        CHECK((archive_entry_mode(e) & 07777) == 0400);
        CHECK(archive_entry_mtime(e) == MTIME);
        if (want && strcmp(want, archive_entry_pathname(e)) == 0) {
            la_ssize_t k = archive_read_data(a, got, gotlen - 1);
            CHECK(k >= 0);
            got[k] = '\0';
        }
    }
    archive_read_free(a);
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    CHECK(stat(path, &st) == 0);
    return (uint64_t)st.st_size;
}

static bool file_equal(const char *a, const char *b)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    return system(cmd) == 0;
}

static void run(const char *fmt, const char *a, const char *b, const char *c)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, fmt, a, b, c);
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "failed (%d): %s\n", rc, cmd);
    CHECK(rc == 0);
}

/* ---- cases -------------------------------------------------------------- */

static void round_trip(void)
{
    setup();
    uint64_t size;
    uint8_t *img = make_source(tpath("src.raw"), &size);
    char src[256];
    snprintf(src, sizeof src, "%s", tpath("src.raw"));
    const char *raws[] = {src};
    write_xva(tpath("a.xva"), SP_XVA_PLAIN, SP_XVA_XXHASH, raws, 1);
    char list[2048];
    list_tar(tpath("a.xva"), list, sizeof list, NULL, NULL, 0);
    CHECK(strcmp(list, "ova.xml:45 Ref:1/00000000:1048576 Ref:1/00000000.xxhash:16 Ref:1/00000003:1048576 "
                       "Ref:1/00000003.xxhash:16 Ref:1/00000005:1000 Ref:1/00000005.xxhash:16") == 0);
    uint8_t *back;
    struct sp_error err;
    enum sp_xva_compress c;
    unsigned dg;
    CHECK_OK(read_xva(tpath("a.xva"), 1, &size, &back, &c, &dg, &err));
    CHECK(c == SP_XVA_PLAIN && dg == 1u << SP_XVA_XXHASH);
    CHECK(memcmp(img, back, size) == 0);
    free(img);
    free(back);
    cleanup();
}

/* Exactly the members, then two zero blocks: no 10240-byte record padding. */
static void end_of_archive(void)
{
    setup();
    uint64_t size;
    free(make_source(tpath("src.raw"), &size));
    char src[256];
    snprintf(src, sizeof src, "%s", tpath("src.raw"));
    const char *raws[] = {src};
    write_xva(tpath("a.xva"), SP_XVA_PLAIN, SP_XVA_SHA1, raws, 1);
    uint64_t expect = 512 + 512 /* ova.xml */ + 2 * (512 + MIB + 1024) + (512 + 1024 + 1024) + 1024;
    CHECK_EQ_U64(file_size(tpath("a.xva")), expect);
    uint8_t tail[1024], zero[1024] = {0};
    int fd = open(tpath("a.xva"), O_RDONLY);
    CHECK(pread(fd, tail, sizeof tail, (off_t)(expect - 1024)) == 1024);
    close(fd);
    CHECK(memcmp(tail, zero, sizeof tail) == 0);
    cleanup();
}

static void known_digests(void)
{
    setup();
    make_empty(tpath("z.raw"), MIB);
    char src[256];
    snprintf(src, sizeof src, "%s", tpath("z.raw"));
    const char *raws[] = {src};
    char list[512], got[64];
    write_xva(tpath("x.xva"), SP_XVA_PLAIN, SP_XVA_XXHASH, raws, 1);
    list_tar(tpath("x.xva"), list, sizeof list, "Ref:1/00000000.xxhash", got, sizeof got);
    CHECK(strcmp(got, "87D2A1B6E1163EF1") == 0);
    write_xva(tpath("s.xva"), SP_XVA_PLAIN, SP_XVA_SHA1, raws, 1);
    list_tar(tpath("s.xva"), list, sizeof list, "Ref:1/00000000.checksum", got, sizeof got);
    CHECK(strcmp(got, "3b71f43ff30f4b15b5cd85dd9e95ebc7e84eb5a3") == 0);
    cleanup();
}

/* A big empty disk costs its first and last block only, both written. */
static void empty_disk_first_last(void)
{
    setup();
    uint64_t size = 2ull << 40; /* 2 TiB */
    make_empty(tpath("e.raw"), size);
    char src[256];
    snprintf(src, sizeof src, "%s", tpath("e.raw"));
    const char *raws[] = {src};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    write_xva(tpath("e.xva"), SP_XVA_PLAIN, SP_XVA_XXHASH, raws, 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(t1.tv_sec - t0.tv_sec < 5);
    char list[512];
    list_tar(tpath("e.xva"), list, sizeof list, NULL, NULL, 0);
    CHECK(strcmp(list, "ova.xml:45 Ref:1/00000000:1048576 Ref:1/00000000.xxhash:16 Ref:1/02097151:1048576 "
                       "Ref:1/02097151.xxhash:16") == 0);
    struct sp_error err;
    CHECK_OK(read_xva(tpath("e.xva"), 1, &size, NULL, NULL, NULL, &err));
    cleanup();
}

static void deterministic(void)
{
    setup();
    uint64_t size;
    free(make_source(tpath("src.raw"), &size));
    char src[256];
    snprintf(src, sizeof src, "%s", tpath("src.raw"));
    const char *raws[] = {src};
    enum sp_xva_compress cs[] = {SP_XVA_PLAIN, SP_XVA_GZIP, SP_XVA_ZSTD};
    for (int i = 0; i < 3; i++) {
        write_xva(tpath("1.xva"), cs[i], SP_XVA_XXHASH, raws, 1);
        sleep(i == 1 ? 1 : 0); /* gzip headers carry seconds */
        write_xva(tpath("2.xva"), cs[i], SP_XVA_XXHASH, raws, 1);
        if (!file_equal(tpath("1.xva"), tpath("2.xva")))
            run("cmp '%s' '%s'%s", tpath("1.xva"), tpath("2.xva"), "");
    }
    cleanup();
}

static void compressed(enum sp_xva_compress c, const char *magic, size_t mlen)
{
    setup();
    uint64_t size;
    uint8_t *img = make_source(tpath("src.raw"), &size);
    char src[256];
    snprintf(src, sizeof src, "%s", tpath("src.raw"));
    const char *raws[] = {src, src};
    write_xva(tpath("c.xva"), c, SP_XVA_SHA1, raws, 2);
    uint8_t head[8];
    int fd = open(tpath("c.xva"), O_RDONLY);
    CHECK(read(fd, head, sizeof head) == (ssize_t)sizeof head);
    close(fd);
    CHECK(memcmp(head, magic, mlen) == 0);
    /* The system's decompressor and GNU tar agree. */
    run("%s -dc '%s' | tar -tvf - >/dev/null%s", c == SP_XVA_GZIP ? "gzip" : "zstd", tpath("c.xva"), "");
    uint64_t sizes[] = {size, size};
    uint8_t *back[2];
    struct sp_error err;
    enum sp_xva_compress got;
    unsigned dg;
    CHECK_OK(read_xva(tpath("c.xva"), 2, sizes, back, &got, &dg, &err));
    CHECK(got == c && dg == 1u << SP_XVA_SHA1);
    CHECK(memcmp(img, back[0], size) == 0 && memcmp(img, back[1], size) == 0);
    free(back[0]);
    free(back[1]);
    free(img);
    cleanup();
}

static void gzip_round_trip(void) { compressed(SP_XVA_GZIP, "\x1f\x8b", 2); }
static void zstd_round_trip(void) { compressed(SP_XVA_ZSTD, "\x28\xb5\x2f\xfd", 4); }

/* Two VDIs: the first stops at its size without eating the second's first
 * member; finish refuses what is left. */
static void lookahead(void)
{
    setup();
    uint64_t size;
    uint8_t *img = make_source(tpath("src.raw"), &size);
    char src[256];
    snprintf(src, sizeof src, "%s", tpath("src.raw"));
    const char *raws[] = {src, src};
    write_xva(tpath("two.xva"), SP_XVA_PLAIN, SP_XVA_XXHASH, raws, 2);
    uint64_t sizes[] = {size, size};
    struct sp_error err;
    CHECK_OK(read_xva(tpath("two.xva"), 2, sizes, NULL, NULL, NULL, &err));
    CHECK(read_xva(tpath("two.xva"), 1, sizes, NULL, NULL, NULL, &err) == SP_EFORMAT);
    CHECK(strcmp(err.msg, "t.xva: Ref:2/00000000: unexpected member after the last VDI") == 0);
    /* A VDI declared larger than its blocks runs into the next one. */
    uint64_t big[] = {size + MIB, size};
    CHECK(read_xva(tpath("two.xva"), 2, big, NULL, NULL, NULL, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "VDI Ref:1: the last block is missing") && strstr(err.msg, "Ref:2/00000000"));
    free(img);
    cleanup();
}

static void corrupt_block(void)
{
    setup();
    uint64_t size;
    free(make_source(tpath("src.raw"), &size));
    char src[256];
    snprintf(src, sizeof src, "%s", tpath("src.raw"));
    const char *raws[] = {src};
    write_xva(tpath("a.xva"), SP_XVA_PLAIN, SP_XVA_XXHASH, raws, 1);
    /* Ref:1/00000003's data: after ova.xml (512 + 512), block 0 (512 + 1 MiB
     * + 1024), its header (512). */
    off_t pos = 1024 + 512 + MIB + 1024 + 512 + 4242;
    int fd = open(tpath("a.xva"), O_RDWR);
    uint8_t b;
    CHECK(pread(fd, &b, 1, pos) == 1);
    b ^= 0x40;
    CHECK(pwrite(fd, &b, 1, pos) == 1);
    close(fd);
    struct sp_error err;
    CHECK(read_xva(tpath("a.xva"), 1, &size, NULL, NULL, NULL, &err) == SP_EFORMAT);
    CHECK(strncmp(err.msg, "t.xva: Ref:1/00000003: xxhash mismatch (stored ", 47) == 0);
    cleanup();
}

static void truncated(void)
{
    setup();
    uint64_t size;
    free(make_source(tpath("src.raw"), &size));
    char src[256];
    snprintf(src, sizeof src, "%s", tpath("src.raw"));
    const char *raws[] = {src};
    write_xva(tpath("a.xva"), SP_XVA_PLAIN, SP_XVA_XXHASH, raws, 1);
    CHECK(truncate(tpath("a.xva"), 1024 + 512 + MIB + 1024 + 512 + 1000) == 0);
    struct sp_error err;
    CHECK(read_xva(tpath("a.xva"), 1, &size, NULL, NULL, NULL, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "t.xva: Ref:1/00000003: ") == err.msg);
    CHECK(strstr(err.msg, "runcated"));
    /* Cut after a whole member: the last block is missing. */
    CHECK(truncate(tpath("a.xva"), 1024 + 512 + MIB + 1024) == 0);
    CHECK(read_xva(tpath("a.xva"), 1, &size, NULL, NULL, NULL, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "t.xva: VDI Ref:1: the last block is missing") == err.msg);
    /* gzip cut in the middle */
    write_xva(tpath("g.xva"), SP_XVA_GZIP, SP_XVA_XXHASH, raws, 1);
    CHECK(truncate(tpath("g.xva"), (off_t)file_size(tpath("g.xva")) / 2) == 0);
    CHECK(read_xva(tpath("g.xva"), 1, &size, NULL, NULL, NULL, &err) != 0);
    CHECK(strstr(err.msg, "t.xva: ") == err.msg);
    cleanup();
}

/* A writer freed without close leaves a cut stream (no end blocks). */
static void abandoned(void)
{
    setup();
    int fd = open(tpath("cut.xva"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    struct sp_xva_writer *w;
    struct sp_error err;
    CHECK_OK(sp_xva_writer_open(fd, SP_XVA_PLAIN, 0, SP_XVA_XXHASH, MTIME, &w, &err));
    CHECK(sp_xva_write_disk(w, "Ref:1", NULL, NULL, &err) == SP_EINVAL); /* before ova.xml */
    CHECK_OK(sp_xva_write_xml(w, XML, strlen(XML), &err));
    CHECK(sp_xva_write_xml(w, XML, strlen(XML), &err) == SP_EINVAL);
    sp_xva_writer_free(w);
    close(fd);
    /* ova.xml's header and bytes, not padded, no end blocks (whole: 2048). */
    CHECK_EQ_U64(file_size(tpath("cut.xva")), 512 + strlen(XML));
    sp_xva_writer_free(NULL);
    sp_xva_reader_free(NULL);
    cleanup();
}

/* Ids: safe folder names, in strcmp order (Ref:10 before Ref:9). */
static void id_order(void)
{
    setup();
    make_empty(tpath("z.raw"), 3 * MIB);
    struct sp_disk *d;
    struct sp_error err;
    CHECK_OK(sp_raw_open(tpath("z.raw"), false, &d, &err));
    int fd = open(tpath("o.xva"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    struct sp_xva_writer *w;
    CHECK_OK(sp_xva_writer_open(fd, SP_XVA_PLAIN, 0, SP_XVA_XXHASH, MTIME, &w, &err));
    CHECK_OK(sp_xva_write_xml(w, XML, strlen(XML), &err));
    CHECK(sp_xva_write_disk(w, "", d, NULL, &err) == SP_EINVAL);
    CHECK(sp_xva_write_disk(w, "Ref:1/x", d, NULL, &err) == SP_EINVAL);
    CHECK(sp_xva_write_disk(w, "..", d, NULL, &err) == SP_EINVAL);
    CHECK_OK(sp_xva_write_disk(w, "Ref:10", d, NULL, &err));
    CHECK(sp_xva_write_disk(w, "Ref:10", d, NULL, &err) == SP_EINVAL);
    CHECK(sp_xva_write_disk(w, "Ref:1", d, NULL, &err) == SP_EINVAL);
    CHECK_OK(sp_xva_write_disk(w, "Ref:9", d, NULL, &err));
    CHECK_OK(sp_xva_writer_close(w, &err));
    sp_xva_writer_free(w);
    close(fd);
    sp_disk_close(d);
    /* Read from a pipe: one forward pass. */
    char cmd[300];
    snprintf(cmd, sizeof cmd, "cat '%s'", tpath("o.xva"));
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    struct sp_xva_reader *r;
    CHECK_OK(sp_xva_reader_open(fileno(p), "o.xva", &r, &err));
    uint64_t stored;
    CHECK_OK(sp_xva_read_disk(r, "Ref:10", 3 * MIB, NULL, NULL, &stored, NULL, &err));
    CHECK_EQ_U64(stored, 2 * MIB);
    CHECK(sp_xva_read_disk(r, "Ref:8", 3 * MIB, NULL, NULL, &stored, NULL, &err) == SP_EFORMAT);
    printf("  (expected) %s\n", err.msg);
    CHECK(strcmp(err.msg, "o.xva: VDI Ref:8: the last block is missing (0 of 3145728 bytes, next member is "
                          "Ref:9/00000000)") == 0);
    sp_xva_reader_free(r);
    pclose(p);
    cleanup();
}

/* ---- hand-made archives ------------------------------------------------- */

struct m {
    const char *name;
    const void *data;
    size_t len;
    bool dir;
};

static void craft(const char *path, const struct m *ms, int n)
{
    struct archive *a = archive_write_new();
    archive_write_set_format_ustar(a);
    archive_write_set_bytes_per_block(a, 0);
    CHECK(archive_write_open_filename(a, path) == ARCHIVE_OK);
    struct archive_entry *e = archive_entry_new();
    for (int i = 0; i < n; i++) {
        archive_entry_clear(e);
        archive_entry_set_pathname(e, ms[i].name);
        archive_entry_set_filetype(e, ms[i].dir ? AE_IFDIR : AE_IFREG);
        archive_entry_set_perm(e, 0400);
        archive_entry_set_size(e, ms[i].dir ? 0 : (la_int64_t)ms[i].len);
        CHECK(archive_write_header(a, e) == ARCHIVE_OK);
        if (ms[i].len && !ms[i].dir)
            CHECK(archive_write_data(a, ms[i].data, ms[i].len) == (la_ssize_t)ms[i].len);
    }
    archive_entry_free(e);
    CHECK(archive_write_free(a) == ARCHIVE_OK);
}

static char sums[16][20];
static int nsum;

static const char *xxh(const void *p, size_t len, bool lower)
{
    char *s = sums[nsum++ % 16];
    snprintf(s, 20, lower ? "%016llx" : "%016llX", (unsigned long long)XXH64(p, len, 0));
    return s;
}

#define BLK(nm, p, l, sum) {nm, p, l, false}, {nm ".xxhash", sum, 16, false}

static void handmade(void)
{
    setup();
    uint8_t *d = malloc(MIB);
    CHECK(d != NULL);
    fill(d, 0, MIB);
    const char *s = xxh(d, MIB, false), *lo = xxh(d, MIB, true), *e = xxh(d, 0, false);
    CHECK(strcmp(e, "EF46DB3751D8E999") == 0);
    struct sp_error err;
    uint64_t sz3 = 3 * MIB, sz4 = 4 * MIB;
    uint8_t *img;

    /* A missing middle block is zeros; a lowercase xxhash is fine; a
     * zero-length dummy block advances the counter, not the offset. */
    struct m ok[] = {{"ova.xml", XML, strlen(XML), false}, BLK("Ref:1/00000000", d, MIB, s),
                     BLK("Ref:1/00000001", d, 0, e), BLK("Ref:1/00000003", d, MIB, lo)};
    craft(tpath("ok.xva"), ok, 7);
    CHECK_OK(read_xva(tpath("ok.xva"), 1, &sz3, &img, NULL, NULL, &err));
    CHECK(memcmp(img, d, MIB) == 0 && memcmp(img + 2 * MIB, d, MIB) == 0);
    for (size_t i = MIB; i < 2 * MIB; i++)
        CHECK(img[i] == 0);
    free(img);
    /* ... but the same archive for a 4 MiB VDI lacks its last block. */
    CHECK(read_xva(tpath("ok.xva"), 1, &sz4, NULL, NULL, NULL, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "t.xva: VDI Ref:1: the last block is missing") == err.msg);

    /* A block past the virtual size. */
    uint64_t sz2 = 2 * MIB;
    CHECK(read_xva(tpath("ok.xva"), 1, &sz2, NULL, NULL, NULL, &err) == SP_EFORMAT);
    CHECK(strcmp(err.msg, "t.xva: Ref:1/00000003: block runs past the virtual size of Ref:1 (2097152 bytes)") == 0);

    struct m outside[] = {{"ova.xml", XML, strlen(XML), false}, BLK("Ref:1/00000000", d, MIB, s),
                          BLK("../x", d, MIB, s)};
    craft(tpath("out.xva"), outside, 5);
    CHECK(read_xva(tpath("out.xva"), 1, &sz3, NULL, NULL, NULL, &err) == SP_EFORMAT);
    CHECK(strcmp(err.msg, "t.xva: ../x: unexpected member (in VDI Ref:1)") == 0);

    struct m absolute[] = {{"ova.xml", XML, strlen(XML), false}, BLK("/Ref:1/00000000", d, MIB, s)};
    craft(tpath("abs.xva"), absolute, 3);
    CHECK(read_xva(tpath("abs.xva"), 1, &sz3, NULL, NULL, NULL, &err) == SP_EFORMAT);
    CHECK(strcmp(err.msg, "t.xva: /Ref:1/00000000: unexpected member (in VDI Ref:1)") == 0);

    struct m dir[] = {{"ova.xml", XML, strlen(XML), false}, {"Ref:1/", NULL, 0, true}};
    craft(tpath("dir.xva"), dir, 2);
    CHECK(read_xva(tpath("dir.xva"), 1, &sz3, NULL, NULL, NULL, &err) == SP_EFORMAT);
    CHECK(strcmp(err.msg, "t.xva: Ref:1/: unexpected member (in VDI Ref:1)") == 0);

    struct m first[] = {BLK("Ref:1/00000000", d, MIB, s), {"ova.xml", XML, strlen(XML), false}};
    craft(tpath("first.xva"), first, 3);
    CHECK(read_xva(tpath("first.xva"), 1, &sz3, NULL, NULL, NULL, &err) == SP_EFORMAT);
    CHECK(strcmp(err.msg, "t.xva: first member is Ref:1/00000000, not ova.xml") == 0);

    struct m order[] = {{"ova.xml", XML, strlen(XML), false}, BLK("Ref:1/00000001", d, MIB, s),
                        BLK("Ref:1/00000001", d, MIB, s)};
    craft(tpath("order.xva"), order, 5);
    CHECK(read_xva(tpath("order.xva"), 1, &sz3, NULL, NULL, NULL, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "t.xva: Ref:1/00000001: block counter does not increase") == err.msg);

    struct m nosum[] = {{"ova.xml", XML, strlen(XML), false}, {"Ref:1/00000000", d, MIB, false},
                        {"Ref:1/00000001", d, MIB, false}};
    craft(tpath("nosum.xva"), nosum, 3);
    CHECK(read_xva(tpath("nosum.xva"), 1, &sz3, NULL, NULL, NULL, &err) == SP_EFORMAT);
    CHECK(strcmp(err.msg, "t.xva: Ref:1/00000000: expected its checksum member, found Ref:1/00000001") == 0);

    struct m big[] = {{"ova.xml", XML, strlen(XML), false}, BLK("Ref:1/00000000", d, MIB / 2, xxh(d, MIB / 2, 0)),
                      BLK("Ref:1/00000001", d, MIB, s)};
    craft(tpath("big.xva"), big, 5);
    CHECK(read_xva(tpath("big.xva"), 1, &sz3, NULL, NULL, NULL, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "t.xva: Ref:1/00000001: block of 1048576 bytes is larger than the block size 524288") ==
          err.msg);
    free(d);
    cleanup();
}

/* Which ids are folder names the reader and writer take. */
static void ids_valid(void)
{
    const char *good[] = {"Ref:1", "Ref:000", "Ref:VDI-1-root", "OpaqueRef:5b1c-0d", "disk_0.img", "a", "x.y"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        CHECK(sp_xva_id_valid(good[i]));
    char longest[SP_XVA_ID_MAX], too_long[SP_XVA_ID_MAX + 1];
    memset(longest, 'a', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    memset(too_long, 'a', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    CHECK(sp_xva_id_valid(longest));
    CHECK(!sp_xva_id_valid(too_long));
    const char *bad[] = {"", ".", "..", "Ref:..", "../x", "Ref:1/..", "a/b", "/a", "a\\b", "Ref 1", "Ref:\t1",
                         "Ref:\x01", "Ref:\x7f", "Ref:\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(!sp_xva_id_valid(bad[i]));
}

/* Counters wider than 8 digits (some tools write 20): a number that must
 * increase; more than 20 digits, or a value past 64 bits, is no counter. */
static void wide_counters(void)
{
    setup();
    uint8_t *d = malloc(MIB);
    CHECK(d != NULL);
    fill(d, 7, MIB);
    const char *s = xxh(d, MIB, false);
    struct sp_error err;
    uint64_t sz3 = 3 * MIB;
    uint8_t *img;
    struct m ok[] = {{"ova.xml", XML, strlen(XML), false}, BLK("Ref:1/00000000000000000000", d, MIB, s),
                     BLK("Ref:1/000000002", d, MIB, s)};
    craft(tpath("ok.xva"), ok, 5);
    CHECK_OK(read_xva(tpath("ok.xva"), 1, &sz3, &img, NULL, NULL, &err));
    CHECK(memcmp(img, d, MIB) == 0 && memcmp(img + 2 * MIB, d, MIB) == 0);
    for (size_t i = MIB; i < 2 * MIB; i++)
        CHECK(img[i] == 0);
    free(img);

    struct m wide[] = {{"ova.xml", XML, strlen(XML), false}, BLK("Ref:1/000000000000000000000", d, MIB, s)};
    craft(tpath("wide.xva"), wide, 3);
    CHECK(read_xva(tpath("wide.xva"), 1, &sz3, NULL, NULL, NULL, &err) == SP_EFORMAT);
    CHECK(strcmp(err.msg, "t.xva: Ref:1/000000000000000000000: unexpected member (in VDI Ref:1)") == 0);

    struct m over[] = {{"ova.xml", XML, strlen(XML), false}, BLK("Ref:1/18446744073709551616", d, MIB, s)};
    craft(tpath("over.xva"), over, 3);
    CHECK(read_xva(tpath("over.xva"), 1, &sz3, NULL, NULL, NULL, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "unexpected member") != NULL);

    /* the largest 64-bit counter: a number, but far past the disk */
    struct m far[] = {{"ova.xml", XML, strlen(XML), false}, BLK("Ref:1/18446744073709551615", d, MIB, s)};
    craft(tpath("far.xva"), far, 3);
    CHECK(read_xva(tpath("far.xva"), 1, &sz3, NULL, NULL, NULL, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "block runs past the virtual size") != NULL);

    struct m same[] = {{"ova.xml", XML, strlen(XML), false}, BLK("Ref:1/0000000000", d, MIB, s),
                       BLK("Ref:1/00000000", d, MIB, s)};
    craft(tpath("same.xva"), same, 5);
    CHECK(read_xva(tpath("same.xva"), 1, &sz3, NULL, NULL, NULL, &err) == SP_EFORMAT);
    CHECK(strcmp(err.msg, "t.xva: Ref:1/00000000: block counter does not increase (after 00000000)") == 0);
    free(d);
    cleanup();
}

/* ---- peers: xva-img 1.4.2 (SHA-1 .checksum only, extracted folders) ----- */


static void xva_img_export(void)
{
    CHECK(system("command -v xva-img >/dev/null && command -v tar >/dev/null") == 0);
    setup();
    uint64_t size;
    free(make_source(tpath("src.raw"), &size));
    char src[256];
    snprintf(src, sizeof src, "%s", tpath("src.raw"));
    const char *raws[] = {src};
    write_xva(tpath("a.xva"), SP_XVA_PLAIN, SP_XVA_SHA1, raws, 1);
    run("mkdir '%s' && tar -xf '%s' -C '%s'", tpath("x"), tpath("a.xva"), tpath("x"));
    run("xva-img disk-export '%s/Ref:1' '%s' >/dev/null%s", tpath("x"), tpath("out.raw"), "");
    /* The short last block is present, so xva-img's output has the exact size. */
    CHECK_EQ_U64(file_size(tpath("out.raw")), size);
    CHECK(file_equal(tpath("src.raw"), tpath("out.raw")));
    cleanup();
}

static void xva_img_import(void)
{
    CHECK(system("command -v xva-img >/dev/null && command -v tar >/dev/null") == 0);
    setup();
    uint64_t size;
    uint8_t *img = make_source(tpath("src.raw"), &size);
    /* xva-img 1.4.2 drops a partial tail (xva.md section 3): give it whole MiB. */
    size = 5 * MIB;
    CHECK(truncate(tpath("src.raw"), (off_t)size) == 0);
    run("mkdir -p '%s/Ref:1' && printf '%%s' '" XML "' > '%s/ova.xml'%s", tpath("d"), tpath("d"), "");
    run("xva-img disk-import '%s/Ref:1' '%s' >/dev/null%s", tpath("d"), tpath("src.raw"), "");
    /* Our own member order with GNU tar (no directory entries). */
    run("cd '%s' && tar --format=v7 -cf '%s' ova.xml $(cd Ref:1 && ls | sort | sed 's,^,Ref:1/,')%s", tpath("d"),
        tpath("g.xva"), "");
    uint8_t *back;
    struct sp_error err;
    unsigned dg;
    int rc = read_xva(tpath("g.xva"), 1, &size, &back, NULL, &dg, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    CHECK_OK(rc);
    CHECK(dg == 1u << SP_XVA_SHA1);
    CHECK(memcmp(img, back, size) == 0);
    free(back);
    /* xva-img's own packager (wants absolute dir/ova.xml dir/Ref:1/). */
    run("xva-img package '%s' '%s/ova.xml' '%s/Ref:1/' >/dev/null", tpath("p.xva"), tpath("d"), tpath("d"));
    rc = read_xva(tpath("p.xva"), 1, &size, &back, NULL, NULL, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    CHECK_OK(rc);
    CHECK(memcmp(img, back, size) == 0);
    free(back);
    free(img);
    cleanup();
}

TEST_MAIN({"round_trip", round_trip}, {"end_of_archive", end_of_archive}, {"known_digests", known_digests},
          {"empty_disk_first_last", empty_disk_first_last}, {"deterministic", deterministic},
          {"gzip_round_trip", gzip_round_trip}, {"zstd_round_trip", zstd_round_trip}, {"lookahead", lookahead},
          {"corrupt_block", corrupt_block}, {"truncated", truncated}, {"handmade", handmade},
          {"abandoned", abandoned}, {"id_order", id_order}, {"ids_valid", ids_valid}, {"wide_counters", wide_counters},
          {"xva_img_export", xva_img_export}, {"xva_img_import", xva_img_import})
