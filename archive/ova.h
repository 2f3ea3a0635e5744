/* The OVA package (reference/ova.md section 1): a tar of the .ovf first,
 * then the .mf and .cert, then the files in References order. GNU headers
 * through libarchive: sizes of 8 GiB and more in base-256, never PAX (which
 * VirtualBox and vSphere refuse). Member names are flat: no directories. */
#ifndef SP_OVA_H
#define SP_OVA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define SP_OVA_NAME_MAX 255

/* True when name may be a member (or a file beside an .ovf): not empty, no
 * '/' or '\\', not "." or "..", no control bytes. */
bool sp_ova_name_ok(const char *name);

/* True when name ends in ext (".ovf", ".mf" ...; any case) after at least
 * one more character. */
bool sp_ova_has_ext(const char *name, const char *ext);

/* ---- writing ------------------------------------------------------------ */

struct sp_ova_writer;

/* A writer to fd (a file or a pipe; not closed). mtime: every member's. */
int sp_ova_writer_open(int fd, int64_t mtime, struct sp_ova_writer **out, struct sp_error *err);
/* A member of size bytes; then exactly size bytes through sp_ova_write. */
int sp_ova_begin(struct sp_ova_writer *w, const char *name, uint64_t size, struct sp_error *err);
int sp_ova_write(struct sp_ova_writer *w, const void *buf, size_t len, struct sp_error *err);
/* A whole small member at once. */
int sp_ova_write_member(struct sp_ova_writer *w, const char *name, const void *data, size_t len,
                        struct sp_error *err);
/* The end of the archive; fails if a member is short. */
int sp_ova_writer_close(struct sp_ova_writer *w, struct sp_error *err);
/* Accepts NULL; after a failure, frees without writing the end. */
void sp_ova_writer_free(struct sp_ova_writer *w);

/* ---- reading ------------------------------------------------------------ */

struct sp_instream;
struct sp_ova_reader;

/* Reads a tar from in (one forward pass). label names it in messages. */
int sp_ova_reader_open(struct sp_instream *in, const char *label, struct sp_ova_reader **out,
                       struct sp_error *err);
/* The next member: *eof at the end. A name that is not flat ("..", an
 * absolute path, a directory), or a member that is not a regular file, is an
 * error (a leading "./" is dropped, as tar writes it). */
int sp_ova_next(struct sp_ova_reader *r, char name[SP_OVA_NAME_MAX + 1], uint64_t *size, bool *eof,
                struct sp_error *err);
/* Up to len bytes of the current member; *got 0 at its end. A member
 * shorter than its header says is "truncated". */
int sp_ova_read(struct sp_ova_reader *r, void *buf, size_t len, size_t *got, struct sp_error *err);
void sp_ova_reader_free(struct sp_ova_reader *r);

#endif
