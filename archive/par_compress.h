/* Whole-stream compression on every core, for a stream written in order
 * (the XVA's tar): bytes go in through sp_pcomp_write, compressed bytes come
 * out in order through the caller's output function, on the caller's
 * thread.
 *
 * gzip: the stream is cut into SP_PCOMP_GZIP_BLOCK blocks and each block
 * becomes one independent gzip member (RFC 1952 allows a file of several
 * members; gzip -d, zlib's inflate with gzip decoding reset per member, and
 * libarchive's gzip reader read them as one stream), compressed by worker
 * threads with libdeflate (a block whose samples do not shrink is stored,
 * not searched: par_compress.c). The headers carry no time and no name, so the
 * output depends only on the input, the block size and the level, never on
 * the thread count. An empty input gives one empty member.
 *
 * zstd: one frame, compressed by libzstd's own worker threads
 * (ZSTD_c_nbWorkers >= 1 always, also on one core, so that the bytes are
 * the same whatever the number of workers), with the content checksum the
 * zstd tool writes.
 *
 * Memory is bounded whatever the stream's length: gzip holds at most
 * SP_PCOMP_SLOTS_PER_THREAD blocks per thread in flight (input and output),
 * zstd what libzstd's workers hold for the level. */
#ifndef SP_PAR_COMPRESS_H
#define SP_PAR_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

enum sp_pcomp_kind {
    SP_PCOMP_GZIP,
    SP_PCOMP_ZSTD,
};

/* The default levels. gzip 6 (libdeflate): within 2 % of `gzip -6`'s size
 * on the bench data, where level 5 was +2.8 % and level 4 +3.0 %
 * (BENCHMARKS.md). zstd 3: the zstd tool's default. */
#define SP_PCOMP_GZIP_LEVEL 6
#define SP_PCOMP_GZIP_LEVEL_MAX 12  /* libdeflate's slowest; still plain deflate */
#define SP_PCOMP_ZSTD_LEVEL 3
#define SP_PCOMP_ZSTD_LEVEL_MAX 19  /* above, the zstd tool wants --ultra */
/* 1 MiB: a block past 32 KiB loses little to the missing dictionary (4 MiB
 * blocks were 0.02 % smaller on the bench data), and 1 MiB keeps the
 * memory in flight small. */
#define SP_PCOMP_GZIP_BLOCK (1u << 20)
#define SP_PCOMP_THREADS_MAX 16
#define SP_PCOMP_SLOTS_PER_THREAD 2

struct sp_pcomp_opts {
    enum sp_pcomp_kind kind;
    int level;          /* 0: the kind's default */
    int threads;        /* 0: one per online core; capped at SP_PCOMP_THREADS_MAX */
    size_t block;       /* gzip block size; 0: SP_PCOMP_GZIP_BLOCK (tests use small ones) */
};

/* Receives the compressed stream, in order, on the thread that calls
 * sp_pcomp_write and sp_pcomp_finish. Returns SP_OK or an error in err. */
typedef int (*sp_pcomp_out)(void *ctx, const void *buf, size_t len, struct sp_error *err);

struct sp_pcomp;

/* The level range of a kind, for option checks. */
int sp_pcomp_level_max(enum sp_pcomp_kind kind);
int sp_pcomp_open(const struct sp_pcomp_opts *o, sp_pcomp_out out, void *ctx, struct sp_pcomp **pc,
                  struct sp_error *err);
int sp_pcomp_write(struct sp_pcomp *pc, const void *buf, size_t len, struct sp_error *err);
/* Compresses what is left and writes the end of the stream. */
int sp_pcomp_finish(struct sp_pcomp *pc, struct sp_error *err);
/* Accepts NULL. Stops and joins every worker; without a finish, what was
 * not written yet is dropped (a cut stream stays cut). */
void sp_pcomp_free(struct sp_pcomp *pc);

#endif
