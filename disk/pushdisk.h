/* A disk fed by pushes: the bridge between a reader that pushes (offset,
 * bytes) to a sink (the XVA and VMDK readers) and a writer that pulls
 * through struct sp_disk (the XVA and VMDK writers), for one disk streamed
 * from one archive into another (convert) with no copy of it anywhere.
 *
 * Two threads: the producer pushes at ascending offsets and finishes; the
 * consumer reads the disk forward only. Between them a queue holds at most
 * SP_PUSHDISK_QUEUE bytes of data (one push more when it is larger than
 * that): a producer ahead of the consumer waits. Either side may give up:
 * the producer with sp_pushdisk_finish(false), the consumer with
 * sp_pushdisk_abort; the other side's next call fails instead of waiting.
 *
 * The consumer's view (sp_pushdisk_disk):
 *   next_extent(off): waits until it knows what is at off: DATA up to the
 *     end of a pushed chunk holding off, else ZERO up to the next chunk
 *     (or, after a finish, to the end of the disk).
 *   read(off, len): at or after the end of the previous read; bytes that
 *     were not pushed read as zeros. Reading moves the disk on: what lies
 *     before off is dropped, and asking for it later is an error.
 * All-zero pushes are not queued: they read as zeros all the same. */
#ifndef SP_PUSHDISK_H
#define SP_PUSHDISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "disk/disk.h"
#include "base/error.h"

/* What the queue holds at most: eight 1 MiB XVA blocks or 128 VMDK grains
 * ahead of the writer, enough to keep both sides busy. */
#define SP_PUSHDISK_QUEUE (8u << 20)

struct sp_pushdisk;

/* A disk of size bytes; label names it in messages (copied). */
int sp_pushdisk_new(uint64_t size, const char *label, struct sp_pushdisk **out, struct sp_error *err);
/* Accepts NULL. Neither side may still be using it. */
void sp_pushdisk_free(struct sp_pushdisk *p);

/* ---- the producer ---------------------------------------------------------- */

/* len bytes at off (copied): off at or after the end of the previous push,
 * off + len within the size. Waits while the queue is full. Fails (and
 * queues nothing) once the consumer has given up. */
int sp_pushdisk_push(struct sp_pushdisk *p, uint64_t off, const void *data, size_t len, struct sp_error *err);
/* The producer is done: ok, the rest of the disk is zeros; !ok, the input
 * failed: the consumer gets what was queued already, then its next call
 * fails instead of waiting. */
void sp_pushdisk_finish(struct sp_pushdisk *p, bool ok);
/* The producer's side as a disk whose write is sp_pushdisk_push (for code
 * that writes into a struct sp_disk: ascending offsets only). Owned by p;
 * its close does nothing. */
struct sp_disk *sp_pushdisk_input(struct sp_pushdisk *p);
/* Bytes of the non-zero pushes so far. */
uint64_t sp_pushdisk_data_bytes(struct sp_pushdisk *p);

/* ---- the consumer ---------------------------------------------------------- */

/* The consumer's side (see above). Owned by p; its close does nothing. */
struct sp_disk *sp_pushdisk_disk(struct sp_pushdisk *p);
/* The consumer gives up: the producer's pushes fail from now on. */
void sp_pushdisk_abort(struct sp_pushdisk *p);

/* True when the consumer gave up before the producer failed: the
 * consumer's error is the one to report (the producer's only follows). */
bool sp_pushdisk_consumer_failed_first(struct sp_pushdisk *p);

#endif
