/* The disk registry: which driver wins for which bytes (magics written here
 * from the formats' specifications, not taken from the drivers), names and
 * extensions, declared formats, and the unsupported/damaged split. */
#include <fcntl.h>
#include <unistd.h>

#include "disk/registry.h"
#include "tests/unit/testlib.h"

static uint8_t head[SP_PROBE_HEAD], tail[SP_PROBE_TAIL];

static const char *winner(size_t head_len, size_t tail_len)
{
    struct sp_probe p = {head, head_len, tail, tail_len, 1u << 20};
    return sp_disk_probe(&p)->name;
}

static void reset(void)
{
    memset(head, 0, sizeof head);
    memset(tail, 0, sizeof tail);
}

/* A tar header block per POSIX: name, mode, size ... and the checksum (the
 * sum of all 512 bytes with its own 8 bytes as blanks, 6 octal digits, NUL,
 * blank). */
static void tar_header(bool ustar)
{
    memset(head, 0, 512);
    memcpy(head, "ova.xml", 7);
    memcpy(head + 100, "0000644", 7);
    memcpy(head + 124, "00000000012", 11);
    if (ustar)
        memcpy(head + 257, "ustar", 6);
    memset(head + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += head[i];
    snprintf((char *)head + 148, 8, "%06o", sum);
    head[155] = ' ';
}

static void probe_scores(void)
{
    reset();
    CHECK(strcmp(winner(sizeof head, sizeof tail), "raw") == 0);
    CHECK(strcmp(winner(0, 0), "raw") == 0);
    memcpy(tail, "conectix", 8); /* VHD footer at the end (fixed and dynamic) */
    CHECK(strcmp(winner(sizeof head, sizeof tail), "vhd") == 0);
    CHECK(strcmp(winner(sizeof head, 0), "raw") == 0); /* a stream: the end unknown */
    reset();
    memcpy(head, "conectix", 8); /* the footer copy at 0 */
    CHECK(strcmp(winner(sizeof head, sizeof tail), "vhd") == 0);
    reset();
    memcpy(head + 512, "cxsparse", 8); /* both footers gone, dynamic header left */
    CHECK(strcmp(winner(sizeof head, sizeof tail), "vhd") == 0);
    reset();
    memcpy(head, "KDMV", 4); /* VMDK sparse extent magic, little-endian 0x564d444b */
    CHECK(strcmp(winner(sizeof head, 0), "vmdk") == 0);
    CHECK(strcmp(winner(3, 0), "raw") == 0); /* too short to hold it */
    reset();
    memcpy(head, "vhdxfile", 8);
    CHECK(strcmp(winner(sizeof head, sizeof tail), "vhdx") == 0);
    reset();
    tar_header(false); /* V7, as XAPI writes ova.xml */
    CHECK(strcmp(winner(sizeof head, sizeof tail), "tar") == 0);
    tar_header(true);
    CHECK(strcmp(winner(sizeof head, sizeof tail), "tar") == 0);
    head[0] ^= 1; /* the checksum no longer agrees: just bytes */
    CHECK(strcmp(winner(sizeof head, sizeof tail), "raw") == 0);
    reset();
    head[0] = 0x1f, head[1] = 0x8b, head[2] = 8;
    CHECK(strcmp(winner(sizeof head, sizeof tail), "compressed") == 0);
    reset();
    head[0] = 0x28, head[1] = 0xb5, head[2] = 0x2f, head[3] = 0xfd;
    CHECK(strcmp(winner(sizeof head, sizeof tail), "compressed") == 0);
}

static void names(void)
{
    CHECK(sp_disk_driver_find("VHD") == sp_disk_driver_find("vhd"));
    CHECK(sp_disk_driver_find("nope") == NULL);
    CHECK(sp_disk_driver_for_name("a/b.VMDK") == sp_disk_driver_find("vmdk"));
    CHECK(sp_disk_driver_for_name("x.vhd") == sp_disk_driver_find("vhd"));
    CHECK(sp_disk_driver_for_name("x.img") == sp_disk_driver_find("raw"));
    CHECK(sp_disk_driver_for_name("dir.vhd/x") == NULL); /* a dot in a folder name is no extension */
    CHECK(sp_disk_driver_for_name("x") == NULL);
    /* every driver that opens has a name, every one that does not says why */
    for (int i = 0; sp_disk_drivers[i]; i++) {
        CHECK(sp_disk_drivers[i]->name && sp_disk_drivers[i]->probe);
        CHECK(sp_disk_drivers[i]->open || sp_disk_drivers[i]->refuse);
    }
}

static void write_bytes(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, buf, len) == (ssize_t)len);
    close(fd);
}

static void problem(void *ctx, const char *msg)
{
    (void)msg;
    ++*(int *)ctx;
}

static void open_and_check(void)
{
    test_tmp_setup("registry");
    struct sp_error err;
    struct sp_disk *d = NULL;
    reset();
    head[100] = 7;
    const char *raw = test_tmp_path("a.raw");
    write_bytes(raw, head, sizeof head);
    CHECK_OK(sp_disk_open(raw, false, &d, &err));
    CHECK(strcmp(d->driver->name, "raw") == 0);
    CHECK_EQ_U64(d->size, sizeof head);
    sp_disk_close(d);
    /* declared vhd, but raw bytes */
    struct sp_disk_open_opts o = {.writable = false};
    CHECK(sp_disk_open_as(raw, "vhd", &o, &d, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "declared vhd") != NULL);
    /* an unreadable format: unsupported, not damaged */
    reset();
    memcpy(head, "vhdxfile", 8);
    const char *vhdx = test_tmp_path("b.vhdx");
    write_bytes(vhdx, head, sizeof head);
    CHECK(sp_disk_open(vhdx, false, &d, &err) == SP_EUNSUPPORTED);
    int seen = 0, count = 0;
    CHECK(sp_disk_check(vhdx, problem, &seen, &count, &err) == SP_EUNSUPPORTED);
    CHECK_EQ_U64(seen, 0);
    /* a damaged VHD: a finding, not a failure to check */
    reset();
    memcpy(tail, "conectix", 8);
    const char *bad = test_tmp_path("c.vhd");
    write_bytes(bad, tail, sizeof tail);
    CHECK_OK(sp_disk_check(bad, problem, &seen, &count, &err));
    CHECK(count > 0 && seen == count);
    CHECK(sp_disk_check(test_tmp_path("missing"), problem, &seen, &count, &err) == SP_ENOTFOUND);
    test_tmp_teardown();
}

TEST_MAIN({"probe_scores", probe_scores}, {"names", names}, {"open_and_check", open_and_check})
