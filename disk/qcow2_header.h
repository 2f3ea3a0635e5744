/* The qcow2 header (versions 2 and 3), its extensions and the backing file
 * name: everything snapport needs from a qcow2 image's first cluster, parsed
 * from bytes (qemu's docs/interop/qcow2.txt), apart from reading the file.
 * Parsing is in two steps because the first cluster's size is in the
 * header: sp_qcow2_header_fixed() over the first bytes, then
 * sp_qcow2_header_rest() over the whole first cluster. */
#ifndef SP_QCOW2_HEADER_H
#define SP_QCOW2_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

/* What sp_qcow2_header_fixed() needs at most: the v3 header up to and
 * including compression_type, which every cluster (512 bytes at least) holds. */
#define SP_QCOW2_FIXED_LEN 112u
#define SP_QCOW2_BACKING_NAME_MAX 1023u  /* spec: backing_file_size limit */
#define SP_QCOW2_FORMAT_NAME_MAX 15u     /* qemu keeps a backing format name in 16 bytes */

enum sp_qcow2_compression {
    SP_QCOW2_ZLIB = 0,
    SP_QCOW2_ZSTD = 1,
};

struct sp_qcow2_header {
    uint32_t version;              /* 2 or 3 */
    uint32_t cluster_bits;         /* 9..21 */
    uint64_t size;                 /* virtual size, bytes */
    uint32_t crypt_method;
    uint32_t l1_size;              /* entries, as stored */
    uint64_t l1_offset;
    uint64_t incompatible;
    uint64_t compatible;
    uint64_t autoclear;
    uint32_t header_length;        /* 72 for v2 */
    enum sp_qcow2_compression compression;
    uint64_t l1_needed;            /* entries the virtual size needs (<= l1_size) */
    char backing[SP_QCOW2_BACKING_NAME_MAX + 1];         /* "" when none */
    char backing_format[SP_QCOW2_FORMAT_NAME_MAX + 1];   /* "" when not given */
};

/* True when buf starts with the qcow magic; *version is the next field. */
bool sp_qcow2_magic(const uint8_t *buf, size_t len, uint32_t *version);

/* Magic, version, cluster size, header length, encryption: the fields the
 * rest depends on. buf is the file's first len bytes (SP_QCOW2_FIXED_LEN,
 * or fewer when the file is shorter). SP_EUNSUPPORTED for a version or
 * encryption snapport does not read, SP_EFORMAT for damage. */
int sp_qcow2_header_fixed(const uint8_t *buf, size_t len, struct sp_qcow2_header *h, struct sp_error *err);

/* After sp_qcow2_header_fixed(): buf is the whole first cluster (or the
 * whole file when shorter): extensions, feature bits, L1 table placement,
 * backing file name and format. */
int sp_qcow2_header_rest(const uint8_t *buf, size_t len, uint64_t file_size, struct sp_qcow2_header *h,
                         struct sp_error *err);

#endif
