#include "base/sniff.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <string.h>

#define TAR_BLOCK 512u
#define TAR_CHKSUM 148u                 /* the checksum field: 8 bytes of octal */
#define TAR_CHKSUM_LEN 8u

static const uint8_t GZIP_MAGIC[] = {0x1f, 0x8b};             /* ID1 ID2 */
static const uint8_t ZSTD_MAGIC[] = {0x28, 0xb5, 0x2f, 0xfd}; /* 0xFD2FB528, little-endian */

/* The checksum is the sum of the block's bytes with its own field taken as
 * blanks, written in octal (leading blanks allowed, NUL or blank after). */
bool sp_sniff_tar(const uint8_t *h, size_t len)
{
    if (len < TAR_BLOCK || h[0] == '\0')
        return false;
    unsigned long want = 0, sum = 0;
    size_t i = TAR_CHKSUM;
    while (i < TAR_CHKSUM + TAR_CHKSUM_LEN && h[i] == ' ')
        i++;
    size_t digits = 0;
    for (; i < TAR_CHKSUM + TAR_CHKSUM_LEN && h[i] >= '0' && h[i] <= '7'; i++, digits++)
        want = want * 8 + (unsigned long)(h[i] - '0');
    if (digits == 0)
        return false;
    for (i = 0; i < TAR_BLOCK; i++)
        sum += i >= TAR_CHKSUM && i < TAR_CHKSUM + TAR_CHKSUM_LEN ? ' ' : h[i];
    return sum == want;
}

bool sp_sniff_tar_first_name(const uint8_t *head, size_t len, char *name, size_t cap)
{
    name[0] = '\0';
    if (!sp_sniff_tar(head, len))
        return false;
    struct archive *a = archive_read_new();
    if (!a)
        return false;
    struct archive_entry *e = NULL;
    const char *path = NULL;
    /* tar only, no filters: these bytes are not decompressed or handed
     * to any program */
    if (archive_read_support_format_tar(a) == ARCHIVE_OK && archive_read_open_memory(a, head, len) == ARCHIVE_OK &&
        archive_read_next_header(a, &e) >= ARCHIVE_WARN)
        path = archive_entry_pathname(e);
    if (path)
        snprintf(name, cap, "%s", path);
    archive_read_free(a);
    return path != NULL;
}

bool sp_sniff_compressed(const uint8_t *h, size_t len)
{
    return (len >= sizeof GZIP_MAGIC && memcmp(h, GZIP_MAGIC, sizeof GZIP_MAGIC) == 0) ||
           (len >= sizeof ZSTD_MAGIC && memcmp(h, ZSTD_MAGIC, sizeof ZSTD_MAGIC) == 0);
}
