/* Files that are not disks snapport reads, recognised so that they are
 * refused with a reason instead of being read as raw garbage. */
#include <string.h>

#include "disk/driver.h"

#define VHDX_SIGNATURE "vhdxfile"            /* MS-VHDX 2.2.1, file type identifier */
#define VHDX_SIGNATURE_LEN 8u
#define TAR_MAGIC "ustar"                    /* POSIX and GNU tar headers, at byte 257 */
#define TAR_MAGIC_AT 257u
#define TAR_MAGIC_LEN 5u

static int vhdx_probe(const struct sp_probe *p)
{
    return p->head_len >= VHDX_SIGNATURE_LEN && memcmp(p->head, VHDX_SIGNATURE, VHDX_SIGNATURE_LEN) == 0
               ? SP_PROBE_SURE
               : SP_PROBE_NO;
}

const struct sp_disk_driver sp_disk_driver_vhdx = {
    .name = "vhdx",
    .probe = vhdx_probe,
    .refuse = "VHDX images are not supported (qemu-img convert -O vpc makes a VHD)",
};

/* XVA and OVA are tar archives: a disk command given one points to info. */
static int tar_probe(const struct sp_probe *p)
{
    return p->head_len >= TAR_MAGIC_AT + TAR_MAGIC_LEN &&
                   memcmp(p->head + TAR_MAGIC_AT, TAR_MAGIC, TAR_MAGIC_LEN) == 0
               ? SP_PROBE_WEAK
               : SP_PROBE_NO;
}

const struct sp_disk_driver sp_disk_driver_tar = {
    .name = "tar",
    .probe = tar_probe,
    .refuse = "a tar archive, not a disk image (an XVA or OVA? `snapport info` reads those)",
};

/* A compressed file (RFC 1952 gzip member header: ID1 ID2 CM=deflate; the
 * zstd frame magic, little-endian 0xFD2FB528): never a disk as it is. */
static const uint8_t GZIP_MAGIC[] = {0x1f, 0x8b, 0x08};
static const uint8_t ZSTD_MAGIC[] = {0x28, 0xb5, 0x2f, 0xfd};

static int compressed_probe(const struct sp_probe *p)
{
    bool gz = p->head_len >= sizeof GZIP_MAGIC && memcmp(p->head, GZIP_MAGIC, sizeof GZIP_MAGIC) == 0;
    bool zst = p->head_len >= sizeof ZSTD_MAGIC && memcmp(p->head, ZSTD_MAGIC, sizeof ZSTD_MAGIC) == 0;
    return gz || zst ? SP_PROBE_WEAK : SP_PROBE_NO;
}

const struct sp_disk_driver sp_disk_driver_compressed = {
    .name = "compressed",
    .probe = compressed_probe,
    .refuse = "a gzip or zstd compressed file, not a disk image (decompress it first; a compressed XVA: "
              "`snapport info` reads those)",
};
