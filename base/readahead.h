/* Reading ahead on a thread of its own: the source (a tar member being
 * digested) runs while the consumer (a VMDK decoder writing a disk) works,
 * through a ring of a few MiB. The source is called from that thread only. */
#ifndef SP_READAHEAD_H
#define SP_READAHEAD_H

#include <stddef.h>

#include "base/error.h"

/* Fills up to len bytes; *got 0 at the end. */
typedef int (*sp_read_fn)(void *ctx, void *buf, size_t len, size_t *got, struct sp_error *err);

struct sp_readahead;

int sp_readahead_start(sp_read_fn src, void *src_ctx, struct sp_readahead **out, struct sp_error *err);
/* An sp_read_fn over the ring: the source's bytes in order; the source's
 * error when it failed. */
int sp_readahead_read(void *ra, void *buf, size_t len, size_t *got, struct sp_error *err);
/* Stops the source (if the consumer gave up early) and waits for it.
 * Accepts NULL. */
void sp_readahead_free(struct sp_readahead *ra);

#endif
