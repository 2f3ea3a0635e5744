/* An input stream (a file or a pipe) whose first bytes can be looked at
 * before a reader takes it: `import -` tells an OVA from an XVA by its
 * first tar header, and a pipe cannot seek back. */
#ifndef SP_INSTREAM_H
#define SP_INSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define SP_INSTREAM_HEAD 512u

struct archive;

struct sp_instream {
    int fd;
    uint8_t head[SP_INSTREAM_HEAD];
    size_t head_len;     /* bytes read ahead: less than the head only at the end */
    size_t head_pos;     /* how many of them a reader took */
    uint8_t *buf;        /* libarchive's read buffer */
};

/* Reads the head. name is for messages. */
int sp_instream_init(struct sp_instream *in, int fd, const char *name, struct sp_error *err);
/* Reads up to len bytes: the head first, then the descriptor. *got 0 at the end. */
int sp_instream_read(struct sp_instream *in, void *buf, size_t len, size_t *got, struct sp_error *err);
/* Opens a libarchive reader on the stream (archive_read_open's status). */
int sp_instream_archive_open(struct archive *a, struct sp_instream *in);
void sp_instream_free(struct sp_instream *in);

#endif
