/* The VHD footer: 512 bytes at the end of every VHD (and a copy at offset 0
 * of dynamic and differencing ones). Parsing is separate from file I/O so the
 * same code serves files, tests and fuzzers. Layout: reference/vhd.md 1.1. */
#ifndef SP_VHD_FOOTER_H
#define SP_VHD_FOOTER_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "base/uuid.h"

#define SP_VHD_FOOTER_SIZE 512
#define SP_VHD_SECTOR 512u

/* 2040 GiB: XenServer sm MAX_VHD_SIZE and qemu VHD_MAX_SECTORS. Past it the
 * u32 sector offsets of the BAT cannot address the blocks and their bitmaps. */
#define SP_VHD_MAX_SIZE (2040ull << 30)

enum sp_vhd_type {
    SP_VHD_FIXED = 2,
    SP_VHD_DYNAMIC = 3,
    SP_VHD_DIFF = 4,
};

struct sp_vhd_footer {
    uint32_t features;
    uint32_t version;
    uint64_t data_offset;
    uint32_t timestamp;        /* seconds since 2000-01-01 UTC */
    char creator_app[5];       /* NUL-terminated copy of the 4 bytes */
    uint32_t creator_version;
    uint32_t creator_os;
    uint64_t original_size;
    uint64_t current_size;
    uint16_t cylinders;
    uint8_t heads;
    uint8_t sectors_per_track;
    uint32_t disk_type;
    uint32_t checksum;         /* as stored */
    uint8_t uuid[SP_UUID_LEN];
    uint8_t saved_state;
    uint8_t hidden;            /* blktap's extension in the reserved bytes */
};

/* One's complement of the byte sum, with the 4 bytes at skip_off counted as zero. */
uint32_t sp_vhd_checksum(const uint8_t *buf, size_t len, size_t skip_off);

/* Cookie and checksum checked; fields decoded. Does not judge sizes. */
int sp_vhd_footer_parse(const uint8_t buf[SP_VHD_FOOTER_SIZE], struct sp_vhd_footer *f, struct sp_error *err);

/* Encodes f (checksum computed, f->checksum updated) into buf. */
void sp_vhd_footer_build(struct sp_vhd_footer *f, uint8_t buf[SP_VHD_FOOTER_SIZE]);

/* A footer as XenServer's tapdisk writes it: creator "tap", exact size,
 * CHS from the spec's algorithm, timestamp now, a new UUID. */
int sp_vhd_footer_init(struct sp_vhd_footer *f, enum sp_vhd_type type, uint64_t size, struct sp_error *err);

/* CHS geometry of the spec's appendix for a size in bytes. */
void sp_vhd_geometry(uint64_t size, uint16_t *cyl, uint8_t *heads, uint8_t *spt);

/* Seconds since 2000-01-01 UTC for a Unix time (clamped to 0). */
uint32_t sp_vhd_time(int64_t unix_time);

const char *sp_vhd_type_name(uint32_t type);

#endif
