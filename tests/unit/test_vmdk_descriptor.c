/* The VMDK text descriptor parser (disk/vmdk_descriptor.c) and the checks
 * the driver makes before opening any extent file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disk/driver.h"
#include "disk/registry.h"
#include "disk/vmdk_internal.h"
#include "tests/unit/testlib.h"

/* What qemu-img 7.2 writes for -o subformat=twoGbMaxExtentFlat (2 GiB + 5 MiB). */
static const char QEMU_TWO_GB[] = "# Disk DescriptorFile\n"
                                  "version=1\n"
                                  "CID=cc88aeb0\n"
                                  "parentCID=ffffffff\n"
                                  "createType=\"twoGbMaxExtentFlat\"\n"
                                  "\n"
                                  "# Extent description\n"
                                  "RW 4194304 FLAT \"d-f001.vmdk\" 0\n"
                                  "RW 10240 FLAT \"d-f002.vmdk\" 0\n"
                                  "\n"
                                  "# The Disk Data Base\n"
                                  "#DDB\n"
                                  "\n"
                                  "ddb.virtualHWVersion = \"4\"\n"
                                  "ddb.geometry.cylinders = \"4172\"\n"
                                  "ddb.adapterType = \"ide\"\n";

static int parse(const char *text, bool strict, struct vmdk_descriptor **d, struct sp_error *err)
{
    *d = NULL;
    return sp_vmdk_descriptor_parse(text, strlen(text), strict, d, err);
}

static void parse_qemu(void)
{
    struct sp_error err;
    struct vmdk_descriptor *d;
    CHECK_OK(parse(QEMU_TWO_GB, true, &d, &err));
    CHECK(strcmp(d->create_type, "twoGbMaxExtentFlat") == 0);
    CHECK(d->parent[0] == '\0');
    CHECK_EQ_U64(d->n, 2);
    CHECK_EQ_U64(d->sectors, 4194304 + 10240);
    CHECK(d->ext[0].type == VMDK_EXT_FLAT && strcmp(d->ext[0].file, "d-f001.vmdk") == 0);
    CHECK_EQ_U64(d->ext[1].sectors, 10240);
    CHECK_EQ_U64(d->ext[1].line, 9);
    sp_vmdk_descriptor_free(d);
}

/* CRLF, indentation, ZERO and VMFS extents, an offset, NUL padding. */
static void parse_forms(void)
{
    static const char text[] = "  # Disk DescriptorFile\r\n\tcreateType = \"vmfs\"\r\n"
                               "RDONLY 8 VMFS \"a b.vmdk\"\r\nRW 16 ZERO\r\nNOACCESS 4 FLAT \"c\" 7\r\n\0junk";
    struct sp_error err;
    struct vmdk_descriptor *d;
    CHECK_OK(sp_vmdk_descriptor_parse(text, sizeof text, true, &d, &err));
    CHECK(strcmp(d->create_type, "vmfs") == 0);
    CHECK_EQ_U64(d->n, 3);
    CHECK(d->ext[0].type == VMDK_EXT_VMFS && strcmp(d->ext[0].file, "a b.vmdk") == 0);
    CHECK(d->ext[1].type == VMDK_EXT_ZERO && d->ext[1].file == NULL);
    CHECK(d->ext[2].noaccess && d->ext[2].offset == 7);
    sp_vmdk_descriptor_free(d);
}

static void parse_delta(void)
{
    struct sp_error err;
    struct vmdk_descriptor *d;
    CHECK_OK(parse("createType=\"monolithicSparse\"\nparentCID=1a2b3c4d\n", true, &d, &err));
    CHECK(strstr(d->parent, "parentCID 1a2b3c4d") != NULL);
    sp_vmdk_descriptor_free(d);
    CHECK_OK(parse("parentCID=FFFFFFFF\nparentFileNameHint=\"\"\n", true, &d, &err));
    CHECK(d->parent[0] == '\0');
    sp_vmdk_descriptor_free(d);
}

static void rejects(void)
{
    static const struct {
        const char *text;
        int code;
    } BAD[] = {
        {"RW 0 FLAT \"x\" 0\n", SP_EFORMAT},
        {"RW -5 FLAT \"x\" 0\n", SP_EFORMAT},
        {"RW 99999999999999999999 FLAT \"x\"\n", SP_EFORMAT},
        {"RW 8 SPARSE \"x\" 5\n", SP_EFORMAT},
        {"RW 8 ZERO \"x\"\n", SP_EFORMAT},
        {"RW 8 FLAT\n", SP_EFORMAT},
        {"RW 8 FLAT \"x\n", SP_EFORMAT},
        {"RW 8 FLAT \"x\" 0 more\n", SP_EFORMAT},
        {"RW 8 VMFSSPARSE \"x\"\n", SP_EUNSUPPORTED},
        {"hello world\n", SP_EFORMAT},
        {"createType=\"a\"\ncreateType=\"b\"\n", SP_EFORMAT},
        {"key\x01=1\n", SP_EFORMAT},
        {"RW 9223372036854775807 ZERO\nRW 9223372036854775807 ZERO\n", SP_EFORMAT},
    };
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        struct sp_error err;
        struct vmdk_descriptor *d;
        int rc = parse(BAD[i].text, true, &d, &err);
        if (rc != BAD[i].code)
            fprintf(stderr, "case %zu: rc %d\n", i, rc);
        CHECK(rc == BAD[i].code && d == NULL);
        /* embedded descriptors skip what they cannot read */
        CHECK(parse(BAD[i].text, false, &d, &err) == (i == 12 ? SP_EFORMAT : SP_OK));
        sp_vmdk_descriptor_free(d);
    }
}

static void caps(void)
{
    struct sp_error err;
    struct vmdk_descriptor *d;
    size_t n = (VMDK_EXTENTS_MAX + 1) * 10 + 1;
    char *t = calloc(1, n);
    CHECK(t != NULL);
    for (size_t i = 0; i <= VMDK_EXTENTS_MAX; i++)
        strcat(t + i * 10, "RW 1 ZERO\n");
    CHECK(parse(t, true, &d, &err) == SP_ELIMIT);
    memset(t, 0, n);
    memset(t, '\n', n - 1); /* more lines than VMDK_DESC_LINES_MAX */
    CHECK(n - 1 > VMDK_DESC_LINES_MAX && parse(t, true, &d, &err) == SP_ELIMIT);
    free(t);
}

/* An archive member (standalone) that names other files is refused before
 * any is opened: the missing extent is not what the error says. */
static void standalone_refused(void)
{
    test_tmp_setup("vmdk_descriptor");
    const char *p = test_tmp_path("d.vmdk");
    FILE *f = fopen(p, "w");
    CHECK(f != NULL);
    fputs(QEMU_TWO_GB, f);
    fclose(f);
    struct sp_disk_open_opts o = {.standalone = true};
    struct sp_disk *d = NULL;
    struct sp_error err;
    CHECK(sp_disk_open_any(p, &o, &d, &err) == SP_EUNSUPPORTED);
    CHECK(strstr(err.msg, "names other files") != NULL);
    o.standalone = false;
    CHECK(sp_disk_open_any(p, &o, &d, &err) == SP_ENOTFOUND);
    CHECK(strstr(err.msg, "d-f001.vmdk") != NULL);
    test_tmp_teardown();
}

static void probe(void)
{
    struct sp_probe pr = {.head = (const uint8_t *)QEMU_TWO_GB, .head_len = sizeof QEMU_TWO_GB - 1};
    CHECK(strcmp(sp_disk_probe(&pr)->name, "vmdk") == 0);
    static const char later[] = "# made by hand\n\n   createType  = \"monolithicFlat\"\n";
    pr.head = (const uint8_t *)later;
    pr.head_len = sizeof later - 1;
    CHECK(strcmp(sp_disk_probe(&pr)->name, "vmdk") == 0);
    static const char other[] = "# notes\nmycreateType=1\n";
    pr.head = (const uint8_t *)other;
    pr.head_len = sizeof other - 1;
    CHECK(strcmp(sp_disk_probe(&pr)->name, "raw") == 0);
}

TEST_MAIN({"parse_qemu", parse_qemu}, {"parse_forms", parse_forms}, {"parse_delta", parse_delta},
          {"rejects", rejects}, {"caps", caps}, {"standalone_refused", standalone_refused}, {"probe", probe})
