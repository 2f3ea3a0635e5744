/* Files that are not disks snapport reads, recognised so that they are
 * refused with a reason instead of being read as raw garbage. */
#include <string.h>

#include "base/sniff.h"
#include "disk/driver.h"

#define VHDX_SIGNATURE "vhdxfile"            /* MS-VHDX 2.2.1, file type identifier */
#define VHDX_SIGNATURE_LEN 8u

static int vhdx_probe(const struct sp_probe *p)
{
    return p->head_len >= VHDX_SIGNATURE_LEN && memcmp(p->head, VHDX_SIGNATURE, VHDX_SIGNATURE_LEN) == 0
               ? SP_PROBE_SURE
               : SP_PROBE_NO;
}

/* named so that an output called .vhdx is refused as a format, not taken as raw */
static const char *const VHDX_EXTENSIONS[] = {"vhdx", NULL};

const struct sp_disk_driver sp_disk_driver_vhdx = {
    .name = "vhdx",
    .extensions = VHDX_EXTENSIONS,
    .probe = vhdx_probe,
    .refuse = "VHDX images are not supported (qemu-img convert -O vpc makes a VHD)",
};

/* XVA and OVA are tar archives: a disk command given one points to info. */
static int tar_probe(const struct sp_probe *p)
{
    return sp_sniff_tar(p->head, p->head_len) ? SP_PROBE_WEAK : SP_PROBE_NO;
}

const struct sp_disk_driver sp_disk_driver_tar = {
    .name = "tar",
    .probe = tar_probe,
    .refuse = "a tar archive, not a disk image (an XVA or OVA? `snapport info` reads those)",
};

/* A compressed file: never a disk as it is. */
static int compressed_probe(const struct sp_probe *p)
{
    return sp_sniff_compressed(p->head, p->head_len) ? SP_PROBE_WEAK : SP_PROBE_NO;
}

const struct sp_disk_driver sp_disk_driver_compressed = {
    .name = "compressed",
    .probe = compressed_probe,
    .refuse = "a gzip or zstd compressed file, not a disk image (decompress it first; a compressed XVA: "
              "`snapport info` reads those)",
};
