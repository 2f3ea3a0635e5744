/* The OVA tar: GNU headers with base-256 sizes past 8 GiB (never PAX),
 * flat member names both ways. Headers are checked byte by byte against
 * the GNU tar layout, not through the module. */
#include "archive/ova.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/archive.h"
#include "base/instream.h"
#include "tests/unit/testlib.h"

#define GIB (1024ull * 1024ull * 1024ull)
#define BIG (9 * GIB + 3)          /* past the 8 GiB of 11 octal digits */

static void setup(void) { test_tmp_setup("ova"); }

static void read_all(const char *path, uint8_t *buf, size_t len)
{
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    CHECK(read(fd, buf, len) == (ssize_t)len);
    close(fd);
}

/* The header checksum: the 512 bytes summed with the checksum field as
 * eight blanks (POSIX ustar, GNU the same). */
static unsigned header_sum(const uint8_t *h)
{
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += (i >= 148 && i < 156) ? ' ' : h[i];
    return sum;
}

static void check_header(const uint8_t *h, const char *name)
{
    CHECK(strcmp((const char *)h, name) == 0);
    CHECK(h[156] == '0');                              /* a regular file, not PAX 'x'/'g' */
    CHECK(memcmp(h + 257, "ustar  \0", 8) == 0);       /* GNU magic + version */
    CHECK(strtoul((const char *)h + 148, NULL, 8) == header_sum(h));
}

static void big_member_base256(void)
{
    setup();
    const char *path = test_tmp_path("big.ova");
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    struct sp_ova_writer *w;
    struct sp_error err;
    uint8_t data[4096];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7 + 1);
    CHECK_OK(sp_ova_writer_open(fd, 1700000000, &w, &err));
    CHECK_OK(sp_ova_begin(w, "big-disk1.vmdk", BIG, &err));
    CHECK_OK(sp_ova_write(w, data, sizeof data, &err));
    sp_ova_writer_free(w); /* abandoned: the header and the data written stay */
    uint8_t h[512];
    read_all(path, h, sizeof h);
    check_header(h, "big-disk1.vmdk");
    CHECK(h[124] == 0x80);                             /* base-256 marker */
    uint64_t v = 0;
    for (int i = 125; i < 136; i++)
        v = v << 8 | h[i];
    CHECK_EQ_U64(v, BIG);

    /* read back: libarchive takes the base-256 size; the data is short */
    lseek(fd, 0, SEEK_SET);
    struct sp_instream in;
    CHECK_OK(sp_instream_init(&in, fd, path, &err));
    struct sp_ova_reader *r;
    CHECK_OK(sp_ova_reader_open(&in, path, &r, &err));
    char name[SP_OVA_NAME_MAX + 1];
    uint64_t size = 0;
    bool eof = true;
    CHECK_OK(sp_ova_next(r, name, &size, &eof, &err));
    CHECK(!eof && strcmp(name, "big-disk1.vmdk") == 0);
    CHECK_EQ_U64(size, BIG);
    uint8_t got[4096];
    size_t n = 0, total = 0;
    while (total < sizeof got) {
        CHECK_OK(sp_ova_read(r, got + total, sizeof got - total, &n, &err));
        CHECK(n > 0);
        total += n;
    }
    CHECK(memcmp(got, data, sizeof data) == 0);
    int rc = SP_OK;
    for (int i = 0; i < 4 && rc == SP_OK; i++)
        rc = sp_ova_read(r, got, sizeof got, &n, &err);
    CHECK(rc == SP_EFORMAT);                           /* truncated, not a silent end */
    sp_ova_reader_free(r);
    sp_instream_free(&in);
    close(fd);
    test_tmp_teardown();
}

static void small_members_exact(void)
{
    setup();
    const char *path = test_tmp_path("small.ova");
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    struct sp_ova_writer *w;
    struct sp_error err;
    CHECK_OK(sp_ova_writer_open(fd, 1700000000, &w, &err));
    CHECK_OK(sp_ova_write_member(w, "a.ovf", "<x/>", 4, &err));
    CHECK_OK(sp_ova_write_member(w, "a.mf", "", 0, &err));
    CHECK_OK(sp_ova_writer_close(w, &err));
    sp_ova_writer_free(w);
    struct stat st;
    CHECK(fstat(fd, &st) == 0);
    /* header + one padded block, header alone, two zero blocks: no 10 KiB record padding */
    CHECK_EQ_U64(st.st_size, 512 + 512 + 512 + 1024);
    uint8_t b[2560];
    read_all(path, b, sizeof b);
    check_header(b, "a.ovf");
    CHECK(strtoul((const char *)b + 124, NULL, 8) == 4);
    CHECK(memcmp(b + 512, "<x/>", 4) == 0);
    check_header(b + 1024, "a.mf");
    for (int i = 1536; i < 2560; i++)
        CHECK(b[i] == 0);
    close(fd);
    test_tmp_teardown();
}

static void writer_refuses_paths(void)
{
    setup();
    int fd = open(test_tmp_path("x.ova"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    struct sp_ova_writer *w;
    struct sp_error err;
    CHECK_OK(sp_ova_writer_open(fd, 0, &w, &err));
    CHECK(sp_ova_begin(w, "../x", 1, &err) == SP_EINVAL);
    CHECK(sp_ova_begin(w, "a/b", 1, &err) == SP_EINVAL);
    CHECK(sp_ova_begin(w, "", 1, &err) == SP_EINVAL);
    CHECK_OK(sp_ova_begin(w, "ok.vmdk", 2, &err));
    CHECK_OK(sp_ova_write(w, "a", 1, &err));
    CHECK(sp_ova_writer_close(w, &err) != SP_OK);      /* one byte short */
    sp_ova_writer_free(w);
    close(fd);
    test_tmp_teardown();
}

/* A hand-made ustar header (what a hostile archive holds). */
static void make_header(uint8_t *h, const char *name, unsigned size)
{
    memset(h, 0, 512);
    snprintf((char *)h, 100, "%s", name);
    snprintf((char *)h + 100, 8, "%07o", 0644);
    snprintf((char *)h + 108, 8, "%07o", 0);
    snprintf((char *)h + 116, 8, "%07o", 0);
    snprintf((char *)h + 124, 12, "%011o", size);
    snprintf((char *)h + 136, 12, "%011o", 0);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    snprintf((char *)h + 148, 8, "%06o", header_sum(h));
    h[155] = ' ';
}

static int first_member(const char *member, char name[SP_OVA_NAME_MAX + 1], struct sp_error *err)
{
    const char *path = test_tmp_path("hostile.ova");
    uint8_t t[512 * 4];
    memset(t, 0, sizeof t);
    make_header(t, member, 1);
    t[512] = 'x';
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && write(fd, t, sizeof t) == (ssize_t)sizeof t);
    lseek(fd, 0, SEEK_SET);
    struct sp_instream in;
    CHECK_OK(sp_instream_init(&in, fd, path, err));
    struct sp_ova_reader *r;
    CHECK_OK(sp_ova_reader_open(&in, path, &r, err));
    uint64_t size;
    bool eof;
    int rc = sp_ova_next(r, name, &size, &eof, err);
    sp_ova_reader_free(r);
    sp_instream_free(&in);
    close(fd);
    return rc;
}

static void reader_refuses_paths(void)
{
    setup();
    char name[SP_OVA_NAME_MAX + 1];
    struct sp_error err;
    CHECK(first_member("../evil", name, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "../evil") != NULL);
    CHECK(first_member("/abs/evil", name, &err) == SP_EFORMAT);
    CHECK(first_member("dir/evil", name, &err) == SP_EFORMAT);
    CHECK(first_member("./ok.ovf", name, &err) == SP_OK);
    CHECK(strcmp(name, "ok.ovf") == 0);
    test_tmp_teardown();
}

/* Writers by name and by an output's extension, case aside. */
static void writer_names(void)
{
    const struct sp_archive_write_format *ova = sp_archive_writer_find("ova"), *xva = sp_archive_writer_find("xva");
    CHECK(ova && xva && ova != xva);
    CHECK(sp_archive_writer_find("OVA") == ova);
    CHECK(sp_archive_writer_find("tar") == NULL);
    CHECK(sp_archive_writer_for_name("a/web.ova") == ova);
    CHECK(sp_archive_writer_for_name("WEB.OVA") == ova);
    CHECK(sp_archive_writer_for_name("web.Xva") == xva);
    CHECK(sp_archive_writer_for_name("web.ovf") == NULL);
    CHECK(sp_archive_writer_for_name("x.ova/web") == NULL);
    CHECK(sp_archive_writer_for_name("-") == NULL);
}

TEST_MAIN({"big_member_base256", big_member_base256}, {"small_members_exact", small_members_exact},
          {"writer_refuses_paths", writer_refuses_paths}, {"reader_refuses_paths", reader_refuses_paths},
          {"writer_names", writer_names})
