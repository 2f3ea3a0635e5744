/* VMDK (reference/ova.md): the streamOptimized writer an OVA carries, and
 * the readers an import needs: streamOptimized in every layout real tools
 * write (directory at the end or grain tables at the front, markers or
 * none, unknown marker types skipped) and hosted monolithicSparse.
 * Descriptor files and their extents (monolithicFlat, twoGbMaxExtent*,
 * vmfs) are read through the registry's vmdk driver (vmdk_driver.c). */
#ifndef SP_VMDK_H
#define SP_VMDK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "disk/copy.h"
#include "disk/disk.h"
#include "base/error.h"

#define SP_VMDK_GRAIN (64u << 10)   /* 128 sectors: what every writer uses */
/* The deflate level exports use. On the 2 GiB / 768 MiB mixed bench disk
 * (BENCHMARKS.md): level 1 is +5.1 % of qemu-img's size, 4 is +2.4 % at
 * nearly the same speed (about 4x qemu-img's), 6 is +1.3 % and 1.5x slower. */
#define SP_VMDK_EXPORT_LEVEL 4

/* Where the writer's bytes go, in order (a tar member, a file, a hash). */
typedef int (*sp_vmdk_out)(void *ctx, const void *buf, size_t len, struct sp_error *err);

struct sp_vmdk_write_opts {
    int threads;             /* grain compressors; 0: one per core */
    int level;               /* deflate level; 0: the default (6) */
    const char *adapter;     /* ddb.adapterType; NULL: "lsilogic" */
    const char *name;        /* file name on the descriptor's extent line; NULL: "disk.vmdk" */
    const uint64_t *data_bytes; /* src's DATA bytes when the caller knows them (the
                                 * progress total); NULL: counted here if needed */
};

/* Writes src as a streamOptimized VMDK (version 3 sparse header, embedded
 * descriptor with room to grow, zlib-wrapped deflate grains in ascending
 * order with grain markers, one grain table per 512 grains with its marker,
 * the grain directory, footer and end-of-stream marker). All-zero grains
 * are never written; ZERO extents of src are never read. Grains compress in
 * parallel in a bounded pipeline. *total is the bytes written. */
int sp_vmdk_write_stream(struct sp_disk *src, const struct sp_vmdk_write_opts *o, sp_vmdk_out out, void *ctx,
                         const struct sp_progress *prog, uint64_t *total, struct sp_error *err);

/* Where a forward-only reader gets bytes from (a tar member): fills up to
 * len, *got 0 at the end. */
typedef int (*sp_vmdk_in)(void *ctx, void *buf, size_t len, size_t *got, struct sp_error *err);

/* Reads a streamOptimized VMDK front to back, passing each grain's bytes
 * to sink (offset in the disk); grains absent read as zeros. *capacity is
 * the virtual size from the header. */
int sp_vmdk_read_stream(sp_vmdk_in in, void *in_ctx,
                        int (*sink)(void *ctx, uint64_t off, const void *data, size_t len), void *sink_ctx,
                        uint64_t *capacity, struct sp_error *err);

/* Opens a VMDK file (streamOptimized or monolithicSparse) as a disk. */
int sp_vmdk_open(const char *path, struct sp_disk **out, struct sp_error *err);

/* True when the bytes start like a sparse VMDK ("KDMV"). */
bool sp_vmdk_probe(const void *head, size_t len);

#endif
