/* Small helpers shared by the format modules: big-endian fields, whole
 * reads and writes, size arithmetic. */
#ifndef SP_UTIL_H
#define SP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"

static inline uint16_t sp_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t sp_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t sp_be64(const uint8_t *p)
{
    return (uint64_t)sp_be32(p) << 32 | sp_be32(p + 4);
}
static inline void sp_put_be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void sp_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void sp_put_be64(uint8_t *p, uint64_t v)
{
    sp_put_be32(p, (uint32_t)(v >> 32));
    sp_put_be32(p + 4, (uint32_t)v);
}

static inline uint64_t sp_min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }
static inline uint64_t sp_div_round_up(uint64_t a, uint64_t b) { return (a + b - 1) / b; }
/* v rounded up to a multiple of unit (a disk size to whole sectors). */
static inline uint64_t sp_round_up_u64(uint64_t v, uint64_t unit) { return sp_div_round_up(v, unit) * unit; }
static inline bool sp_is_pow2(uint64_t v) { return v && !(v & (v - 1)); }

/* pread/pwrite the whole range or fail; a short read past EOF is SP_EFORMAT
 * ("truncated") because it means the file is shorter than its metadata says. */
int sp_pread_full(int fd, void *buf, size_t len, uint64_t off, const char *what, struct sp_error *err);
int sp_pwrite_full(int fd, const void *buf, size_t len, uint64_t off, const char *what, struct sp_error *err);

/* True when len bytes at p are all zero. */
bool sp_is_zero(const void *p, size_t len);

/* Parses "123", "4K", "2M", "1G", "1T" (powers of 1024), or 0x-hex. */
int sp_parse_size(const char *s, uint64_t *out);

/* The extension of path's last component, after its last '.' ("xva" of
 * "a/b.XVA"), or NULL: none, "-", a name that only starts with a dot. */
const char *sp_path_extension(const char *path);

/* Human size "1.5 GiB" into buf. */
const char *sp_format_size(uint64_t v, char *buf, size_t len);
/* n bytes as 2n lower-case hex digits and a NUL, into out (2n + 1 bytes). */
void sp_hex_encode(const unsigned char *b, size_t n, char *out);

/* malloc that never returns NULL silently: returns NULL and sets err. */
void *sp_alloc(size_t len, struct sp_error *err);
void *sp_zalloc(size_t len, struct sp_error *err);



/* Starts the kernel's writeback of what an output has written so far, every
 * SP_WRITEBACK_KICK bytes, so that the fsync which makes the output durable
 * finds little left to do: the disk writes while we keep reading. */
#define SP_WRITEBACK_KICK (32u << 20)
struct sp_writeback {
    int fd;
    uint64_t lo, hi;
};
/* fd < 0 turns the kicks off (an output that will not be fsynced). */
void sp_writeback_init(struct sp_writeback *wb, int fd);
void sp_writeback_note(struct sp_writeback *wb, uint64_t off, uint64_t len);
/* One write(2) to an output (a file or a pipe) at *written, retried on
 * EINTR, noted for writeback; *written advances. -1 with errno on failure. */
ssize_t sp_write_out(int fd, const void *buf, size_t len, struct sp_writeback *wb, uint64_t *written);

#endif
