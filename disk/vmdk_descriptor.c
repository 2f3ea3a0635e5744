/* The VMDK text descriptor: the one our streamOptimized writer embeds, and
 * (for reading) the descriptor files qemu-img and VMware write next to
 * their extent files. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "disk/vmdk_internal.h"

bool sp_vmdk_plain_token(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (const char *p = s; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

/* The embedded descriptor, NUL-padded to VMDK_DESC_SECTORS. The CID is derived
 * from the capacity so that the same disk gives the same bytes. */
int sp_vmdk_descriptor_build(uint8_t *d, uint64_t capacity, const char *adapter, const char *name,
                             struct sp_error *err)
{
    uint32_t cid = 2166136261u; /* FNV-1a over the capacity */
    for (int i = 0; i < 8; i++) {
        cid ^= (uint8_t)(capacity >> (8 * i));
        cid *= 16777619u;
    }
    if (cid >= 0xfffffffeu) /* ffffffff and fffffffe mean "no parent" / "invalid" */
        cid = 0x12345678u;
    bool ide = strcmp(adapter, "ide") == 0;
    uint64_t heads = ide ? 16 : 255, secs = 63, cyl_max = ide ? 16383 : 65535;
    uint64_t cyl = sp_min_u64(cyl_max, sp_div_round_up(capacity, heads * secs));
    size_t size = VMDK_DESC_SECTORS * VMDK_SECTOR;
    memset(d, 0, size);
    int n = snprintf((char *)d, size,
                     "# Disk DescriptorFile\n"
                     "version=1\n"
                     "encoding=\"UTF-8\"\n"
                     "CID=%08" PRIx32 "\n"
                     "parentCID=ffffffff\n"
                     "createType=\"streamOptimized\"\n"
                     "\n"
                     "# Extent description\n"
                     "RW %" PRIu64 " SPARSE \"%s\"\n"
                     "\n"
                     "# The Disk Data Base\n"
                     "#DDB\n"
                     "\n"
                     "ddb.virtualHWVersion = \"4\"\n"
                     "ddb.geometry.cylinders = \"%" PRIu64 "\"\n"
                     "ddb.geometry.heads = \"%" PRIu64 "\"\n"
                     "ddb.geometry.sectors = \"%" PRIu64 "\"\n"
                     "ddb.adapterType = \"%s\"\n"
                     "ddb.toolsVersion = \"2147483647\"\n",
                     cid, capacity, name, cyl, heads, secs, adapter);
    if (n < 0 || (size_t)n >= size)
        return sp_error_set(err, SP_EINVAL, "vmdk descriptor too long");
    return SP_OK;
}
