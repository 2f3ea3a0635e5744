/* What the VMDK files share (private to disk/vmdk_*.c): the sparse extent
 * header and marker layout (reference/ova.md section 3), little-endian
 * field access, the descriptor text, and the sparse file reader that the
 * descriptor-based images stand on.
 *
 * All on-disk fields are little-endian; offsets inside the image are in
 * 512-byte sectors. */
#ifndef SP_VMDK_INTERNAL_H
#define SP_VMDK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/util.h"
#include "disk/disk.h"

struct sp_disk_layer;

#define VMDK_SECTOR 512u
#define VMDK_MAGIC 0x564d444bu            /* "KDMV" read as a little-endian u32 */
#define VMDK_MAGIC_LEN 4u
#define VMDK_VERSION_WRITE 3u             /* ESXi refuses streamOptimized version 1 */
#define VMDK_VERSION_MAX 3u               /* what qemu accepts too */
#define VMDK_GRAIN_SECTORS 128u           /* SP_VMDK_GRAIN / 512 */
#define VMDK_GTES 512u                    /* grain table entries per table: every writer */
#define VMDK_GTES_MAX 512u                /* qemu refuses more */
#define VMDK_DESC_SECTORS 20u             /* qemu and open-vmdk: room for VirtualBox to add keys */
#define VMDK_OVERHEAD (1u + VMDK_DESC_SECTORS)
#define VMDK_GD_AT_END UINT64_MAX
#define VMDK_COMPRESS_DEFLATE 1u
/* Largest grain we read: 128 KiB (256 sectors); every producer uses 64 KiB. */
#define VMDK_GRAIN_SECTORS_MAX 256u
/* A compressed grain may exceed its grain a little (65562 bytes seen for
 * 64 KiB); twice the grain is far above any deflate bound. */
#define VMDK_COMPRESSED_MAX(grain_bytes) (2u * (grain_bytes) + VMDK_SECTOR)
/* The largest descriptor we read (a file, or embedded in a sparse extent).
 * A line is 40 to 80 bytes; the longest real descriptors are those of
 * twoGbMaxExtent disks, one line per 2 GiB: VMware's largest hosted disk
 * (8 TiB) is 4096 extent lines, under 400 KiB. qemu stops at 1 MiB. */
#define VMDK_DESC_MAX (512u << 10)
/* GT entries are u32 sectors: the stream cannot be longer than this. */
#define VMDK_MAX_SECTOR UINT32_MAX

#define VMDK_FLAG_NEWLINE 0x1u
#define VMDK_FLAG_RGD 0x2u
#define VMDK_FLAG_ZERO_GTE 0x4u
#define VMDK_FLAG_COMPRESSED 0x10000u
#define VMDK_FLAG_MARKERS 0x20000u

#define VMDK_MARKER_EOS 0u
#define VMDK_MARKER_GT 1u
#define VMDK_MARKER_GD 2u
#define VMDK_MARKER_FOOTER 3u

#define VMDK_GRAIN_MARKER_LEN 12u         /* lba u64 + size u32 */

/* Header field offsets. */
#define H_MAGIC 0
#define H_VERSION 4
#define H_FLAGS 8
#define H_CAPACITY 12
#define H_GRAIN 20
#define H_DESC_OFF 28
#define H_DESC_SIZE 36
#define H_GTES 44
#define H_RGD 48
#define H_GD 56
#define H_OVERHEAD 64
#define H_UNCLEAN 72
#define H_NLCHECK 73
#define H_COMPRESS 77

static inline uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }
static inline void put_le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void put_le64(uint8_t *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t round_sector(uint64_t v) { return sp_div_round_up(v, VMDK_SECTOR) * VMDK_SECTOR; }

/* ------------------------------------------------------------------ */
/* The sparse extent header (vmdk_header.c). */

struct vmdk_header {
    uint32_t version, flags, gtes;
    uint64_t capacity, grain, desc_off, desc_size, rgd, gd, overhead;
    uint16_t compress;
};

/* Decodes and checks the 512 bytes at h (a header or a footer). */
int sp_vmdk_header_parse(const uint8_t *h, struct vmdk_header *hd, struct sp_error *err);
/* The header our writer puts at sector 0 (gd VMDK_GD_AT_END) and in the footer. */
void sp_vmdk_header_build(uint8_t *h, uint64_t capacity, uint64_t gd);
/* A metadata marker sector: sectors of metadata that follow, its type. */
void sp_vmdk_marker_build(uint8_t *m, uint64_t sectors, uint32_t type);

/* ------------------------------------------------------------------ */
/* The text descriptor (vmdk_descriptor.c). */

/* True when s is 1..max bytes with no quote, backslash or control byte:
 * safe inside a descriptor's quoted value. */
bool sp_vmdk_plain_token(const char *s, size_t max);
/* The descriptor our writer embeds, NUL-padded to VMDK_DESC_SECTORS
 * sectors at d; adapter and name are plain tokens. */
int sp_vmdk_descriptor_build(uint8_t *d, uint64_t capacity, const char *adapter, const char *name,
                             struct sp_error *err);

/* Extents of one disk: VMware's largest hosted disk (8 TiB) in the 2 GiB
 * pieces of a twoGbMaxExtent disk. Each is an open file. */
#define VMDK_EXTENTS_MAX 4096u
/* Lines a descriptor may have: the extent lines, and room for the header
 * and disk database keys (about 20 in real files). */
#define VMDK_DESC_LINES_MAX (2 * VMDK_EXTENTS_MAX)
/* createType values are short words ("twoGbMaxExtentSparse" is the longest
 * we read); longer ones are named in messages cut to this. */
#define VMDK_CREATE_TYPE_MAX 48u
/* A file name on an extent line: one name of a directory (NAME_MAX). */
#define VMDK_EXTENT_NAME_MAX 255u

enum vmdk_extent_type { VMDK_EXT_SPARSE, VMDK_EXT_FLAT, VMDK_EXT_ZERO, VMDK_EXT_VMFS };

/* One extent line: `ACCESS SECTORS TYPE ["FILE" [OFFSET]]`. */
struct vmdk_extent_line {
    enum vmdk_extent_type type;
    bool noaccess;              /* NOACCESS: the data is not to be read */
    uint64_t sectors;
    uint64_t offset;            /* FLAT, VMFS: first sector in the file */
    char *file;                 /* as written; NULL for ZERO */
    int line;                   /* 1-based, for messages */
};

struct vmdk_descriptor {
    char create_type[VMDK_CREATE_TYPE_MAX]; /* "" when absent */
    char parent[VMDK_EXTENT_NAME_MAX + 1];  /* why it is a delta disk; "" when it is not */
    struct vmdk_extent_line *ext;
    size_t n;
    uint64_t sectors;           /* sum of the extents */
};

/* Parses text (len bytes; a NUL ends it early). strict: a descriptor file,
 * where every line must be a comment, a key or an extent line; otherwise an
 * embedded descriptor, read only for its keys and its well-formed extent
 * lines (the header says how to read the file). */
int sp_vmdk_descriptor_parse(const char *text, size_t len, bool strict, struct vmdk_descriptor **out,
                             struct sp_error *err);
/* Accepts NULL. */
void sp_vmdk_descriptor_free(struct vmdk_descriptor *d);

/* ------------------------------------------------------------------ */
/* The sparse file reader (vmdk_sparse.c). */

/* Opens the sparse extent ("KDMV") in fd, which it then owns (closed on
 * failure too); path names it in messages. */
int sp_vmdk_sparse_open_fd(int fd, const char *path, struct sp_disk **out, struct sp_error *err);
/* The header of a disk sp_vmdk_sparse_open_fd made (with the footer's flags
 * for a directory at the end), or NULL when d is another kind of disk. */
const struct vmdk_header *sp_vmdk_sparse_header(struct sp_disk *d);
/* disk check of a sparse extent: every grain table read and checked, and
 * grains named by two entries reported through problem(). */
int sp_vmdk_sparse_check(struct sp_disk *d, void (*problem)(void *ctx, const char *msg), void *ctx,
                         struct sp_error *err);
/* The embedded descriptor of a sparse disk as text (NUL-terminated, cut at
 * its first NUL; *text NULL when the file has none); caller frees. */
int sp_vmdk_sparse_descriptor(struct sp_disk *d, char **text, struct sp_error *err);

/* ------------------------------------------------------------------ */
/* A disk made of a descriptor file's extents (vmdk_extents.c). */

/* Opens the extent files d lists (in path's directory: names that lead
 * elsewhere, absolute or with "..", are SP_EUNSUPPORTED; symbolic links are
 * not followed; a missing file is SP_ENOTFOUND) as one disk. Each SPARSE
 * extent's capacity must be its line's size; each FLAT file must hold its
 * line's sectors from its offset. */
int sp_vmdk_extents_open(const char *path, const struct vmdk_descriptor *d, struct sp_disk **out,
                         struct sp_error *err);
/* One layer per extent line (ZERO extents too), at most max. */
int sp_vmdk_extents_layers(struct sp_disk *d, struct sp_disk_layer *l, int max, int *n, struct sp_error *err);

#endif
