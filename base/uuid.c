#include "base/uuid.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

int sp_uuid_generate(uint8_t out[SP_UUID_LEN], struct sp_error *err)
{
    size_t got = 0;
    while (got < SP_UUID_LEN) {
        ssize_t n = getrandom(out + got, SP_UUID_LEN - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return sp_error_errno(err, errno, "getrandom");
        }
        got += (size_t)n;
    }
    out[6] = (uint8_t)((out[6] & 0x0f) | 0x40); /* version 4 */
    out[8] = (uint8_t)((out[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    return SP_OK;
}

void sp_uuid_format(const uint8_t u[SP_UUID_LEN], char out[SP_UUID_STR])
{
    snprintf(out, SP_UUID_STR,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7],
             u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int sp_uuid_parse(const char *s, uint8_t out[SP_UUID_LEN])
{
    if (strlen(s) != SP_UUID_STR - 1)
        return SP_EINVAL;
    int j = 0;
    for (int i = 0; i < SP_UUID_STR - 1;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return SP_EINVAL;
            i++;
            continue;
        }
        int hi = hexval(s[i]), lo = hexval(s[i + 1]);
        if (hi < 0 || lo < 0)
            return SP_EINVAL;
        out[j++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    return SP_OK;
}

bool sp_uuid_is_null(const uint8_t u[SP_UUID_LEN])
{
    for (int i = 0; i < SP_UUID_LEN; i++)
        if (u[i])
            return false;
    return true;
}

int sp_uuid_generate_str(char out[SP_UUID_STR], struct sp_error *err)
{
    uint8_t u[SP_UUID_LEN];
    int rc = sp_uuid_generate(u, err);
    if (rc == SP_OK)
        sp_uuid_format(u, out);
    return rc;
}
