/* The VMDK sparse extent header and metadata markers (reference/ova.md
 * section 3): decoded from and built into 512-byte buffers, apart from any
 * file, so the writer, the stream reader and the file reader share them. */
#include <inttypes.h>
#include <string.h>

#include "disk/vmdk.h"
#include "disk/vmdk_internal.h"

bool sp_vmdk_probe(const void *head, size_t len)
{
    return len >= VMDK_MAGIC_LEN && le32(head) == VMDK_MAGIC;
}

int sp_vmdk_header_parse(const uint8_t *h, struct vmdk_header *hd, struct sp_error *err)
{
    if (le32(h + H_MAGIC) != VMDK_MAGIC)
        return sp_error_set(err, SP_EFORMAT, "not a sparse vmdk (bad magic)");
    hd->version = le32(h + H_VERSION);
    hd->flags = le32(h + H_FLAGS);
    hd->capacity = le64(h + H_CAPACITY);
    hd->grain = le64(h + H_GRAIN);
    hd->desc_off = le64(h + H_DESC_OFF);
    hd->desc_size = le64(h + H_DESC_SIZE);
    hd->gtes = le32(h + H_GTES);
    hd->rgd = le64(h + H_RGD);
    hd->gd = le64(h + H_GD);
    hd->overhead = le64(h + H_OVERHEAD);
    hd->compress = le16(h + H_COMPRESS);
    if (hd->version < 1 || hd->version > VMDK_VERSION_MAX)
        return sp_error_set(err, SP_EUNSUPPORTED, "sparse vmdk version %" PRIu32 " not supported", hd->version);
    if (!sp_is_pow2(hd->grain) || hd->grain > VMDK_GRAIN_SECTORS_MAX)
        return sp_error_set(err, SP_EFORMAT, "bad grain size %" PRIu64 " sectors", hd->grain);
    if (hd->gtes == 0 || hd->gtes > VMDK_GTES_MAX)
        return sp_error_set(err, SP_EFORMAT, "bad grain table size %" PRIu32, hd->gtes);
    /* Byte offsets of the disk must fit a u64. */
    if (hd->capacity > UINT64_MAX / VMDK_SECTOR - hd->grain)
        return sp_error_set(err, SP_EFORMAT, "bad capacity %" PRIu64 " sectors", hd->capacity);
    if ((hd->flags & VMDK_FLAG_COMPRESSED) && hd->compress != VMDK_COMPRESS_DEFLATE)
        return sp_error_set(err, SP_EUNSUPPORTED, "compression algorithm %u not supported", hd->compress);
    return SP_OK;
}

void sp_vmdk_header_build(uint8_t *h, uint64_t capacity, uint64_t gd)
{
    memset(h, 0, VMDK_SECTOR);
    put_le32(h + H_MAGIC, VMDK_MAGIC);
    put_le32(h + H_VERSION, VMDK_VERSION_WRITE);
    put_le32(h + H_FLAGS, VMDK_FLAG_NEWLINE | VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS);
    put_le64(h + H_CAPACITY, capacity);
    put_le64(h + H_GRAIN, VMDK_GRAIN_SECTORS);
    put_le64(h + H_DESC_OFF, 1);
    put_le64(h + H_DESC_SIZE, VMDK_DESC_SECTORS);
    put_le32(h + H_GTES, VMDK_GTES);
    put_le64(h + H_RGD, 0);
    put_le64(h + H_GD, gd);
    put_le64(h + H_OVERHEAD, VMDK_OVERHEAD);
    h[H_UNCLEAN] = 0;
    memcpy(h + H_NLCHECK, "\n \r\n", 4);
    put_le16(h + H_COMPRESS, VMDK_COMPRESS_DEFLATE);
}

void sp_vmdk_marker_build(uint8_t *m, uint64_t sectors, uint32_t type)
{
    memset(m, 0, VMDK_SECTOR);
    put_le64(m, sectors);
    put_le32(m + 8, 0);
    put_le32(m + 12, type);
}
