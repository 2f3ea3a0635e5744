/* One VHD file (fixed, dynamic or differencing): open with every size checked,
 * block map (BAT), sector bitmaps, reads and writes of whole sectors in this
 * layer only. Stacking layers is chain.c's job; finding the parent file is
 * the caller's (sp_vhd_parent_candidates lists where to look). */
#ifndef SP_VHD_H
#define SP_VHD_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "base/util.h"
#include "disk/vhd_footer.h"
#include "disk/vhd_header.h"

#define SP_VHD_BAT_UNUSED 0xFFFFFFFFu
#define SP_VHD_DEFAULT_BLOCK_SIZE (2u << 20)
/* Block sizes accepted: 512 B (one bitmap bit per block) to 256 MiB (the
 * largest any producer documents; larger ones only serve to exhaust memory). */
#define SP_VHD_MIN_BLOCK_SIZE 512u
#define SP_VHD_MAX_BLOCK_SIZE (256u << 20)
/* At most 4 Mi blocks: the in-memory BAT stays at or under 16 MiB (2040 GiB
 * in 2 MiB blocks is 1,044,480). */
#define SP_VHD_MAX_BLOCKS (4u << 20)
/* Parent locator payloads longer than this are not paths. */
#define SP_VHD_MAX_LOCATOR_BYTES 65536u

struct sp_vhd {
    int fd;
    char *path;
    bool writable;
    uint64_t file_size;
    struct sp_vhd_footer footer;
    struct sp_vhd_header header;     /* dynamic and differencing only */
    bool footer_from_copy;           /* the footer at EOF was unusable: using the copy at 0 */
    char footer_problem[256];        /* why, when footer_from_copy */
    uint8_t bad_locators;            /* bit i: locator i points outside the file */
    char locator_problem[160];       /* the first such, for check */
    uint32_t block_size;             /* fixed disks: the chain's block size (for its map) */
    uint32_t bitmap_size;            /* bytes, a multiple of 512 */
    uint32_t sectors_per_block;
    uint32_t nblocks;                /* blocks covering the virtual size */
    uint32_t *bat;                   /* nblocks sector offsets; NULL for fixed and header-only opens */
    uint64_t data_end;               /* first byte after metadata and blocks: the footer goes here */
    /* write state: one block's bitmap cached while it is being written */
    uint8_t *bm_cache;
    uint32_t bm_block;
    bool bm_dirty;
    struct sp_writeback wb;
};

struct sp_vhd_create_opts {
    uint64_t size;                   /* virtual size; 0 with a parent: the parent's */
    uint32_t block_size;             /* 0: 2 MiB */
    enum sp_vhd_type type;           /* SP_VHD_DYNAMIC or SP_VHD_DIFF */
    const struct sp_vhd *parent;     /* SP_VHD_DIFF: the opened parent */
    const uint8_t *uuid;             /* the new disk's UUID; NULL: a random one */
};

/* Opens and validates path. Every error message starts with the path. */
int sp_vhd_open(const char *path, bool writable, struct sp_vhd **out, struct sp_error *err);
/* Footer and header only, checked as sp_vhd_open checks them; the BAT is not
 * read (no block access): what a new child needs of its parent, at a cost
 * that does not grow with the disk. */
int sp_vhd_open_header(const char *path, struct sp_vhd **out, struct sp_error *err);
/* Writes what is pending (bitmap, footer) before closing when writable. Accepts NULL. */
void sp_vhd_close(struct sp_vhd *v);
int sp_vhd_flush(struct sp_vhd *v, struct sp_error *err);

/* True when the file starts or ends with a VHD footer cookie (a cheap bid). */
bool sp_vhd_probe(int fd, uint64_t file_size);

/* Creates a new VHD at fd (an empty file opened for writing). */
int sp_vhd_create_fd(int fd, const char *path, const struct sp_vhd_create_opts *o, struct sp_error *err);

/* Gives the disk another identity: both footers (the copy at 0 first, then
 * the one at the end) rewritten with uuid, and synced. */
int sp_vhd_set_uuid(struct sp_vhd *v, const uint8_t uuid[SP_UUID_LEN], struct sp_error *err);

/* Writes what is pending and fsyncs the file. */
int sp_vhd_sync(struct sp_vhd *v, struct sp_error *err);

/* Fixed disks have no blocks of their own: give them the chain's block size. */
int sp_vhd_set_fixed_block_size(struct sp_vhd *v, uint32_t block_size, struct sp_error *err);

bool sp_vhd_block_allocated(const struct sp_vhd *v, uint32_t blk);
/* Byte offset of the block's first data sector (after its bitmap). */
uint64_t sp_vhd_block_data_offset(const struct sp_vhd *v, uint32_t blk);
/* The block's sector bitmap (bitmap_size bytes): all ones for fixed disks,
 * zeros for unallocated blocks; bits past the virtual size are cleared. */
int sp_vhd_read_bitmap(struct sp_vhd *v, uint32_t blk, uint8_t *bm, struct sp_error *err);
/* Stored bytes of nsect sectors from sector first of block blk (allocated). */
int sp_vhd_read_stored(struct sp_vhd *v, uint32_t blk, uint32_t first, uint32_t nsect, void *buf,
                       struct sp_error *err);
/* Writes whole sectors into this layer, allocating blocks and setting bitmap
 * bits. Dynamic and differencing disks keep unwritten sectors zero on disk. */
int sp_vhd_write_sectors(struct sp_vhd *v, uint64_t sector, uint64_t nsect, const void *buf,
                         struct sp_error *err);

/* Bytes of data this layer stores (allocated blocks x block size, clipped). */
uint64_t sp_vhd_allocated_bytes(const struct sp_vhd *v);

/* Where the parent may be, in the order to try: the locators (MacX, W2ru,
 * W2ku), then the header's parent name, each made absolute against the
 * child's directory. Returns the count in *n (at most max). */
#define SP_VHD_MAX_CANDIDATES 12
int sp_vhd_parent_candidates(struct sp_vhd *v, char cands[][4096], int max, int *n, struct sp_error *err);

/* Checks that go beyond what open validates (open's own failures are
 * problems too): the footer at EOF and its copy at 0 agree, clear bitmap
 * bits hold zero sectors, file size. Calls problem() once per finding. */
int sp_vhd_check(struct sp_vhd *v, void (*problem)(void *ctx, const char *msg), void *ctx,
                 struct sp_error *err);

#endif
