#include "disk/vhd_header.h"

#include <stdio.h>
#include <string.h>

#include "base/util.h"
#include "disk/vhd_footer.h"

static const char HEADER_COOKIE[8] = {'c', 'x', 's', 'p', 'a', 'r', 's', 'e'};
#define VHD_HEADER_VERSION 0x00010000u

enum {
    H_COOKIE = 0, H_DATA_OFFSET = 8, H_TABLE_OFFSET = 16, H_VERSION = 24, H_MAX_ENTRIES = 28,
    H_BLOCK_SIZE = 32, H_CHECKSUM = 36, H_PARENT_UUID = 40, H_PARENT_TIMESTAMP = 56,
    H_PARENT_NAME = 64, H_LOCATORS = 576, H_LOCATOR_SIZE = 24,
};

int sp_utf16_to_utf8(const uint8_t *in, size_t inlen, int big_endian, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i + 1 < inlen; i += 2) {
        uint32_t c = big_endian ? (uint32_t)(in[i] << 8 | in[i + 1]) : (uint32_t)(in[i + 1] << 8 | in[i]);
        if (c == 0)
            break;
        if (c >= 0xD800 && c < 0xDC00) {
            if (i + 3 >= inlen)
                return SP_EFORMAT;
            uint32_t lo = big_endian ? (uint32_t)(in[i + 2] << 8 | in[i + 3])
                                     : (uint32_t)(in[i + 3] << 8 | in[i + 2]);
            if (lo < 0xDC00 || lo >= 0xE000)
                return SP_EFORMAT;
            c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
            i += 2;
        } else if (c >= 0xDC00 && c < 0xE000) {
            return SP_EFORMAT;
        }
        uint8_t enc[4];
        size_t n;
        if (c < 0x80) {
            enc[0] = (uint8_t)c;
            n = 1;
        } else if (c < 0x800) {
            enc[0] = (uint8_t)(0xC0 | c >> 6);
            enc[1] = (uint8_t)(0x80 | (c & 0x3F));
            n = 2;
        } else if (c < 0x10000) {
            enc[0] = (uint8_t)(0xE0 | c >> 12);
            enc[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
            enc[2] = (uint8_t)(0x80 | (c & 0x3F));
            n = 3;
        } else {
            enc[0] = (uint8_t)(0xF0 | c >> 18);
            enc[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
            enc[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
            enc[3] = (uint8_t)(0x80 | (c & 0x3F));
            n = 4;
        }
        if (o + n + 1 > outlen)
            return SP_ELIMIT;
        memcpy(out + o, enc, n);
        o += n;
    }
    out[o] = '\0';
    return SP_OK;
}

static int utf8_next(const unsigned char **p, uint32_t *cp)
{
    const unsigned char *s = *p;
    uint32_t c = s[0];
    int n;
    if (c < 0x80) {
        n = 0;
    } else if ((c & 0xE0) == 0xC0) {
        c &= 0x1F;
        n = 1;
    } else if ((c & 0xF0) == 0xE0) {
        c &= 0x0F;
        n = 2;
    } else if ((c & 0xF8) == 0xF0) {
        c &= 0x07;
        n = 3;
    } else {
        return SP_EFORMAT;
    }
    for (int i = 1; i <= n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return SP_EFORMAT;
        c = c << 6 | (s[i] & 0x3F);
    }
    if (c > 0x10FFFF || (c >= 0xD800 && c < 0xE000))
        return SP_EFORMAT;
    *cp = c;
    *p = s + n + 1;
    return SP_OK;
}

static void put16(uint8_t *p, uint16_t v, int big_endian)
{
    if (big_endian) {
        p[0] = (uint8_t)(v >> 8);
        p[1] = (uint8_t)v;
    } else {
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
    }
}

int sp_utf8_to_utf16(const char *in, int big_endian, uint8_t *out, size_t outcap, size_t *outlen)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t o = 0;
    while (*p) {
        uint32_t c;
        if (utf8_next(&p, &c) != SP_OK)
            return SP_EFORMAT;
        if (c >= 0x10000) {
            if (o + 4 > outcap)
                return SP_ELIMIT;
            c -= 0x10000;
            put16(out + o, (uint16_t)(0xD800 | (c >> 10)), big_endian);
            put16(out + o + 2, (uint16_t)(0xDC00 | (c & 0x3FF)), big_endian);
            o += 4;
        } else {
            if (o + 2 > outcap)
                return SP_ELIMIT;
            put16(out + o, (uint16_t)c, big_endian);
            o += 2;
        }
    }
    *outlen = o;
    return SP_OK;
}

int sp_vhd_header_parse(const uint8_t buf[SP_VHD_HEADER_SIZE], struct sp_vhd_header *h, struct sp_error *err)
{
    if (memcmp(buf + H_COOKIE, HEADER_COOKIE, sizeof HEADER_COOKIE) != 0)
        return sp_error_set(err, SP_EFORMAT, "dynamic header: no 'cxsparse' cookie");
    memset(h, 0, sizeof *h);
    h->checksum = sp_be32(buf + H_CHECKSUM);
    uint32_t computed = sp_vhd_checksum(buf, SP_VHD_HEADER_SIZE, H_CHECKSUM);
    if (computed != h->checksum)
        return sp_error_set(err, SP_EFORMAT, "dynamic header: checksum mismatch (stored 0x%08x, computed 0x%08x)",
                            h->checksum, computed);
    h->version = sp_be32(buf + H_VERSION);
    if (h->version != VHD_HEADER_VERSION)
        return sp_error_set(err, SP_EFORMAT, "dynamic header: unknown version 0x%08x", h->version);
    h->data_offset = sp_be64(buf + H_DATA_OFFSET);
    h->table_offset = sp_be64(buf + H_TABLE_OFFSET);
    h->max_table_entries = sp_be32(buf + H_MAX_ENTRIES);
    h->block_size = sp_be32(buf + H_BLOCK_SIZE);
    memcpy(h->parent_uuid, buf + H_PARENT_UUID, SP_UUID_LEN);
    h->parent_timestamp = sp_be32(buf + H_PARENT_TIMESTAMP);
    if (sp_utf16_to_utf8(buf + H_PARENT_NAME, SP_VHD_PARENT_NAME_BYTES, 1, h->parent_name,
                         sizeof h->parent_name) != SP_OK)
        h->parent_name[0] = '\0'; /* only a hint for finding the parent; locators come first */
    for (int i = 0; i < SP_VHD_LOCATORS; i++) {
        const uint8_t *l = buf + H_LOCATORS + i * H_LOCATOR_SIZE;
        h->loc[i].code = sp_be32(l);
        h->loc[i].data_space = sp_be32(l + 4);
        h->loc[i].data_length = sp_be32(l + 8);
        h->loc[i].data_offset = sp_be64(l + 16);
    }
    return SP_OK;
}

int sp_vhd_header_build(struct sp_vhd_header *h, uint8_t buf[SP_VHD_HEADER_SIZE], struct sp_error *err)
{
    memset(buf, 0, SP_VHD_HEADER_SIZE);
    memcpy(buf + H_COOKIE, HEADER_COOKIE, sizeof HEADER_COOKIE);
    sp_put_be64(buf + H_DATA_OFFSET, h->data_offset);
    sp_put_be64(buf + H_TABLE_OFFSET, h->table_offset);
    sp_put_be32(buf + H_VERSION, VHD_HEADER_VERSION);
    sp_put_be32(buf + H_MAX_ENTRIES, h->max_table_entries);
    sp_put_be32(buf + H_BLOCK_SIZE, h->block_size);
    memcpy(buf + H_PARENT_UUID, h->parent_uuid, SP_UUID_LEN);
    sp_put_be32(buf + H_PARENT_TIMESTAMP, h->parent_timestamp);
    size_t n;
    /* The field holds at most 255 UTF-16 units and a terminating NUL. */
    if (sp_utf8_to_utf16(h->parent_name, 1, buf + H_PARENT_NAME, SP_VHD_PARENT_NAME_BYTES - 2, &n) != SP_OK)
        return sp_error_set(err, SP_EINVAL, "parent name '%s' is not valid UTF-8 or longer than 255 characters",
                            h->parent_name);
    for (int i = 0; i < SP_VHD_LOCATORS; i++) {
        uint8_t *l = buf + H_LOCATORS + i * H_LOCATOR_SIZE;
        sp_put_be32(l, h->loc[i].code);
        sp_put_be32(l + 4, h->loc[i].data_space);
        sp_put_be32(l + 8, h->loc[i].data_length);
        sp_put_be64(l + 16, h->loc[i].data_offset);
    }
    h->version = VHD_HEADER_VERSION;
    h->checksum = sp_vhd_checksum(buf, SP_VHD_HEADER_SIZE, H_CHECKSUM);
    sp_put_be32(buf + H_CHECKSUM, h->checksum);
    return SP_OK;
}

uint64_t sp_vhd_locator_space(const struct sp_vhd_locator *l)
{
    if (l->data_space < 512)
        return (uint64_t)l->data_space * 512;
    return l->data_space;
}

static int hexdigit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* file://./a%20b.vhd -> ./a b.vhd ; file:///x/y.vhd -> /x/y.vhd */
static int decode_file_url(const char *url, char *out, size_t outlen)
{
    const char *p = url;
    if (strncmp(p, "file://", 7) == 0) {
        p += 7;
        if (strncmp(p, "localhost/", 10) == 0)
            p += 9;
    }
    size_t o = 0;
    for (; *p; p++) {
        char c = *p;
        if (c == '%' && hexdigit(p[1]) >= 0 && hexdigit(p[2]) >= 0) {
            c = (char)(hexdigit(p[1]) << 4 | hexdigit(p[2]));
            p += 2;
        }
        if (c == '\0')
            return SP_EFORMAT;
        if (o + 2 > outlen)
            return SP_ELIMIT;
        out[o++] = c;
    }
    out[o] = '\0';
    return SP_OK;
}

/* .\a\b.vhd -> ./a/b.vhd ; C:\x\y.vhd stays with its drive (cannot resolve
 * here, but its last component still can be tried by the caller). */
static void windows_to_posix(char *s)
{
    for (; *s; s++)
        if (*s == '\\')
            *s = '/';
}

int sp_vhd_locator_decode(uint32_t code, const uint8_t *data, size_t len, char *out, size_t outlen,
                          struct sp_error *err)
{
    switch (code) {
    case SP_VHD_PLAT_W2KU:
    case SP_VHD_PLAT_W2RU:
        if (sp_utf16_to_utf8(data, len, 0, out, outlen) != SP_OK)
            return sp_error_set(err, SP_EFORMAT, "parent locator: invalid UTF-16 path");
        windows_to_posix(out);
        return SP_OK;
    case SP_VHD_PLAT_WI2K:
    case SP_VHD_PLAT_WI2R:
        if (len + 1 > outlen)
            return sp_error_set(err, SP_EFORMAT, "parent locator: path too long");
        memcpy(out, data, len);
        out[len] = '\0';
        windows_to_posix(out);
        return SP_OK;
    case SP_VHD_PLAT_MACX: {
        char url[4096];
        if (len + 1 > sizeof url)
            return sp_error_set(err, SP_EFORMAT, "parent locator: URL too long");
        memcpy(url, data, len);
        url[len] = '\0';
        if (decode_file_url(url, out, outlen) != SP_OK)
            return sp_error_set(err, SP_EFORMAT, "parent locator: invalid file URL");
        return SP_OK;
    }
    default:
        return sp_error_set(err, SP_EUNSUPPORTED, "parent locator: platform code 0x%08x not supported", code);
    }
}

int sp_vhd_locator_encode(uint32_t code, const char *path, uint8_t *out, size_t outcap, size_t *len,
                          struct sp_error *err)
{
    char tmp[4096];
    switch (code) {
    case SP_VHD_PLAT_MACX: {
        /* blktap writes "file://./name"; keep '/', escape what a URL cannot carry. */
        size_t o = (size_t)snprintf((char *)out, outcap, "file://");
        for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
            int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
                     || strchr("/._-~", *p);
            if (o + 4 > outcap)
                return sp_error_set(err, SP_ELIMIT, "parent path too long for a locator");
            if (plain)
                out[o++] = *p;
            else
                o += (size_t)snprintf((char *)out + o, outcap - o, "%%%02X", *p);
        }
        *len = o;
        return SP_OK;
    }
    case SP_VHD_PLAT_W2RU:
    case SP_VHD_PLAT_W2KU:
        if (strlen(path) + 1 > sizeof tmp)
            return sp_error_set(err, SP_ELIMIT, "parent path too long for a locator");
        strcpy(tmp, path);
        for (char *p = tmp; *p; p++)
            if (*p == '/')
                *p = '\\';
        if (sp_utf8_to_utf16(tmp, 0, out, outcap, len) != SP_OK)
            return sp_error_set(err, SP_EINVAL, "parent path is not valid UTF-8 or too long");
        return SP_OK;
    default:
        return sp_error_set(err, SP_EUNSUPPORTED, "locator code 0x%08x cannot be written", code);
    }
}
