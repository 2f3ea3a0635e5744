/* An input stream (a file or a pipe) whose first bytes can be looked at
 * before a reader takes it: `import -` tells an OVA from an XVA by its
 * first tar member's name, and a pipe cannot seek back. That name may sit
 * behind extension headers (PAX, GNU long names), so the head can be
 * read further, up to SP_INSTREAM_PEEK_MAX. */
#ifndef SP_INSTREAM_H
#define SP_INSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define SP_INSTREAM_HEAD 512u          /* read at init: one tar header */
/* How far a bid may look: a PAX header of a few records (GNU tar's
 * ./PaxHeaders/NAME with mtime, atime, ctime; a long path) or a GNU long
 * name takes a few KiB; one that needs more is not an archive's opening we
 * want to guess from. */
#define SP_INSTREAM_PEEK_MAX (64u << 10)

struct archive;

struct sp_instream {
    int fd;
    uint8_t head[SP_INSTREAM_PEEK_MAX];
    size_t head_len;     /* bytes read ahead */
    bool head_eof;       /* the input ended within them */
    size_t head_pos;     /* how many of them a reader took */
    uint8_t *buf;        /* libarchive's read buffer */
};

/* Reads the head. name is for messages. */
int sp_instream_init(struct sp_instream *in, int fd, const char *name, struct sp_error *err);
/* Reads ahead until the head holds want bytes (at most SP_INSTREAM_PEEK_MAX)
 * or the input ends; only before a reader took any. name is for messages. */
int sp_instream_peek(struct sp_instream *in, size_t want, const char *name, struct sp_error *err);
/* Reads up to len bytes: the head first, then the descriptor. *got 0 at the end. */
int sp_instream_read(struct sp_instream *in, void *buf, size_t len, size_t *got, struct sp_error *err);
/* Opens a libarchive reader on the stream (archive_read_open's status). */
int sp_instream_archive_open(struct archive *a, struct sp_instream *in);
void sp_instream_free(struct sp_instream *in);

#endif
