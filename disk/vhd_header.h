/* The VHD dynamic disk header (1024 bytes at footer.data_offset) and its
 * parent locators. Layout: reference/vhd.md 1.2. */
#ifndef SP_VHD_HEADER_H
#define SP_VHD_HEADER_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/uuid.h"

#define SP_VHD_HEADER_SIZE 1024
#define SP_VHD_LOCATORS 8
#define SP_VHD_PARENT_NAME_BYTES 512

/* Platform codes of parent locators. */
#define SP_VHD_PLAT_NONE 0x00000000u
#define SP_VHD_PLAT_WI2R 0x57693272u /* deprecated */
#define SP_VHD_PLAT_WI2K 0x5769326Bu /* deprecated */
#define SP_VHD_PLAT_W2RU 0x57327275u /* relative Windows path, UTF-16LE */
#define SP_VHD_PLAT_W2KU 0x57326B75u /* absolute Windows path, UTF-16LE */
#define SP_VHD_PLAT_MAC  0x4D616320u /* Mac OS alias blob: not resolvable here */
#define SP_VHD_PLAT_MACX 0x4D616358u /* file URL, UTF-8 */

struct sp_vhd_locator {
    uint32_t code;
    uint32_t data_space;   /* as stored: sectors (spec) or bytes (Hyper-V, blktap) */
    uint32_t data_length;  /* bytes */
    uint64_t data_offset;  /* bytes from the start of the file */
};

struct sp_vhd_header {
    uint64_t data_offset;
    uint64_t table_offset;
    uint32_t version;
    uint32_t max_table_entries;
    uint32_t block_size;
    uint32_t checksum;
    uint8_t parent_uuid[SP_UUID_LEN];
    uint32_t parent_timestamp;
    char parent_name[4 * SP_VHD_PARENT_NAME_BYTES / 2 + 1]; /* UTF-8 */
    struct sp_vhd_locator loc[SP_VHD_LOCATORS];
};

/* Cookie, checksum and version checked; fields decoded. */
int sp_vhd_header_parse(const uint8_t buf[SP_VHD_HEADER_SIZE], struct sp_vhd_header *h, struct sp_error *err);

/* Encodes h (checksum computed) into buf. parent_name is encoded UTF-16BE. */
int sp_vhd_header_build(struct sp_vhd_header *h, uint8_t buf[SP_VHD_HEADER_SIZE], struct sp_error *err);

/* Bytes a locator's data occupies in the file: data space read as sectors
 * when below 512, as bytes when a multiple of 512 (blktap's rule). */
uint64_t sp_vhd_locator_space(const struct sp_vhd_locator *l);

/* Decodes a locator's payload into a POSIX path (UTF-8) in out.
 * W2ku/W2ru: UTF-16LE, backslashes; MacX: file URL, percent-encoded. */
int sp_vhd_locator_decode(uint32_t code, const uint8_t *data, size_t len, char *out, size_t outlen,
                          struct sp_error *err);

/* Encodes a relative POSIX path for a locator of the given code. Returns the
 * payload length in *len. */
int sp_vhd_locator_encode(uint32_t code, const char *path, uint8_t *out, size_t outcap, size_t *len,
                          struct sp_error *err);

/* UTF-16 (big- or little-endian) <-> UTF-8; invalid sequences are errors. */
int sp_utf16_to_utf8(const uint8_t *in, size_t inlen, int big_endian, char *out, size_t outlen);
int sp_utf8_to_utf16(const char *in, int big_endian, uint8_t *out, size_t outcap, size_t *outlen);

#endif
