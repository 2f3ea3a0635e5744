/* 16-byte UUIDs as VHD stores them (big-endian field order, as text). */
#ifndef SP_UUID_H
#define SP_UUID_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"

#define SP_UUID_LEN 16
#define SP_UUID_STR 37

int sp_uuid_generate(uint8_t out[SP_UUID_LEN], struct sp_error *err);
/* A new random UUID as text. */
int sp_uuid_generate_str(char out[SP_UUID_STR], struct sp_error *err);
void sp_uuid_format(const uint8_t u[SP_UUID_LEN], char out[SP_UUID_STR]);
int sp_uuid_parse(const char *s, uint8_t out[SP_UUID_LEN]);
bool sp_uuid_is_null(const uint8_t u[SP_UUID_LEN]);

#endif
