#include "disk/vhd_footer.h"

#include <string.h>
#include <time.h>

#include "base/util.h"

static const char VHD_COOKIE[8] = {'c', 'o', 'n', 'e', 'c', 't', 'i', 'x'};
#define VHD_FEATURES_RESERVED 0x00000002u /* "must be set" (spec) */
#define VHD_FILE_VERSION 0x00010000u
#define VHD_CREATOR_VERSION_TAP 0x00010003u /* blktap VHD_CURRENT_VERSION */
#define VHD_UNIX_EPOCH_2000 946684800

/* Byte offsets of the fields (reference/vhd.md 1.1). */
enum {
    F_COOKIE = 0, F_FEATURES = 8, F_VERSION = 12, F_DATA_OFFSET = 16, F_TIMESTAMP = 24,
    F_CREATOR_APP = 28, F_CREATOR_VERSION = 32, F_CREATOR_OS = 36, F_ORIGINAL_SIZE = 40,
    F_CURRENT_SIZE = 48, F_GEOMETRY = 56, F_DISK_TYPE = 60, F_CHECKSUM = 64, F_UUID = 68,
    F_SAVED_STATE = 84, F_HIDDEN = 85,
};

uint32_t sp_vhd_checksum(const uint8_t *buf, size_t len, size_t skip_off)
{
    uint32_t sum = 0;
    for (size_t i = 0; i < len; i++)
        if (i < skip_off || i >= skip_off + 4)
            sum += buf[i];
    return ~sum;
}

int sp_vhd_footer_parse(const uint8_t buf[SP_VHD_FOOTER_SIZE], struct sp_vhd_footer *f, struct sp_error *err)
{
    if (memcmp(buf + F_COOKIE, VHD_COOKIE, sizeof VHD_COOKIE) != 0)
        return sp_error_set(err, SP_EFORMAT, "not a VHD: no 'conectix' cookie in the footer");
    memset(f, 0, sizeof *f);
    f->checksum = sp_be32(buf + F_CHECKSUM);
    uint32_t computed = sp_vhd_checksum(buf, SP_VHD_FOOTER_SIZE, F_CHECKSUM);
    if (computed != f->checksum)
        return sp_error_set(err, SP_EFORMAT, "footer: checksum mismatch (stored 0x%08x, computed 0x%08x)",
                            f->checksum, computed);
    f->features = sp_be32(buf + F_FEATURES);
    f->version = sp_be32(buf + F_VERSION);
    f->data_offset = sp_be64(buf + F_DATA_OFFSET);
    f->timestamp = sp_be32(buf + F_TIMESTAMP);
    memcpy(f->creator_app, buf + F_CREATOR_APP, 4);
    f->creator_app[4] = '\0';
    f->creator_version = sp_be32(buf + F_CREATOR_VERSION);
    f->creator_os = sp_be32(buf + F_CREATOR_OS);
    f->original_size = sp_be64(buf + F_ORIGINAL_SIZE);
    f->current_size = sp_be64(buf + F_CURRENT_SIZE);
    f->cylinders = sp_be16(buf + F_GEOMETRY);
    f->heads = buf[F_GEOMETRY + 2];
    f->sectors_per_track = buf[F_GEOMETRY + 3];
    f->disk_type = sp_be32(buf + F_DISK_TYPE);
    memcpy(f->uuid, buf + F_UUID, SP_UUID_LEN);
    f->saved_state = buf[F_SAVED_STATE];
    f->hidden = buf[F_HIDDEN];
    return SP_OK;
}

void sp_vhd_footer_build(struct sp_vhd_footer *f, uint8_t buf[SP_VHD_FOOTER_SIZE])
{
    memset(buf, 0, SP_VHD_FOOTER_SIZE);
    memcpy(buf + F_COOKIE, VHD_COOKIE, sizeof VHD_COOKIE);
    sp_put_be32(buf + F_FEATURES, f->features);
    sp_put_be32(buf + F_VERSION, f->version);
    sp_put_be64(buf + F_DATA_OFFSET, f->data_offset);
    sp_put_be32(buf + F_TIMESTAMP, f->timestamp);
    memcpy(buf + F_CREATOR_APP, f->creator_app, 4);
    sp_put_be32(buf + F_CREATOR_VERSION, f->creator_version);
    sp_put_be32(buf + F_CREATOR_OS, f->creator_os);
    sp_put_be64(buf + F_ORIGINAL_SIZE, f->original_size);
    sp_put_be64(buf + F_CURRENT_SIZE, f->current_size);
    sp_put_be16(buf + F_GEOMETRY, f->cylinders);
    buf[F_GEOMETRY + 2] = f->heads;
    buf[F_GEOMETRY + 3] = f->sectors_per_track;
    sp_put_be32(buf + F_DISK_TYPE, f->disk_type);
    memcpy(buf + F_UUID, f->uuid, SP_UUID_LEN);
    buf[F_SAVED_STATE] = f->saved_state;
    buf[F_HIDDEN] = f->hidden;
    f->checksum = sp_vhd_checksum(buf, SP_VHD_FOOTER_SIZE, F_CHECKSUM);
    sp_put_be32(buf + F_CHECKSUM, f->checksum);
}

void sp_vhd_geometry(uint64_t size, uint16_t *cyl, uint8_t *heads, uint8_t *spt)
{
    uint64_t secs = size / SP_VHD_SECTOR;
    uint64_t max = 65535ull * 16 * 255;
    uint64_t s, h, cth;
    if (secs > max)
        secs = max;
    if (secs >= 65535ull * 16 * 63) {
        s = 255;
        h = 16;
        cth = secs / s;
    } else {
        s = 17;
        cth = secs / s;
        h = (cth + 1023) / 1024;
        if (h < 4)
            h = 4;
        if (cth >= h * 1024 || h > 16) {
            s = 31;
            h = 16;
            cth = secs / s;
        }
        if (cth >= h * 1024) {
            s = 63;
            h = 16;
            cth = secs / s;
        }
    }
    *cyl = (uint16_t)(cth / h);
    *heads = (uint8_t)h;
    *spt = (uint8_t)s;
}

uint32_t sp_vhd_time(int64_t unix_time)
{
    int64_t t = unix_time - VHD_UNIX_EPOCH_2000;
    if (t < 0)
        return 0;
    if (t > UINT32_MAX)
        return UINT32_MAX;
    return (uint32_t)t;
}

int sp_vhd_footer_init(struct sp_vhd_footer *f, enum sp_vhd_type type, uint64_t size, struct sp_error *err)
{
    memset(f, 0, sizeof *f);
    f->features = VHD_FEATURES_RESERVED;
    f->version = VHD_FILE_VERSION;
    f->data_offset = type == SP_VHD_FIXED ? UINT64_MAX : SP_VHD_FOOTER_SIZE;
    f->timestamp = sp_vhd_time((int64_t)time(NULL));
    memcpy(f->creator_app, "tap\0", 5);
    f->creator_version = VHD_CREATOR_VERSION_TAP;
    f->creator_os = 0; /* blktap writes 0 */
    f->original_size = size;
    f->current_size = size;
    sp_vhd_geometry(size, &f->cylinders, &f->heads, &f->sectors_per_track);
    f->disk_type = (uint32_t)type;
    return sp_uuid_generate(f->uuid, err);
}

const char *sp_vhd_type_name(uint32_t type)
{
    switch (type) {
    case SP_VHD_FIXED: return "vhd-fixed";
    case SP_VHD_DYNAMIC: return "vhd-dynamic";
    case SP_VHD_DIFF: return "vhd-differencing";
    default: return "vhd-unknown";
    }
}
