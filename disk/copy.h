/* Whole-disk operations over the extent interface: copy (flatten) and
 * compare. ZERO extents cost nothing; DATA is read in bounded chunks. */
#ifndef SP_COPY_H
#define SP_COPY_H

#include <stdbool.h>
#include <stdint.h>

#include "base/progress.h"
#include "disk/disk.h"

/* Chunk read at a time: memory stays this size whatever the disk. */
#define SP_COPY_CHUNK (4u << 20)

/* Bytes in DATA extents of d. */
int sp_disk_data_bytes(struct sp_disk *d, uint64_t *out, struct sp_error *err);

/* Copies src into dst, which must read as zeros (a new image): only the
 * non-zero 4 KiB pages of src are written, so dst stays sparse. */
int sp_copy_disk(struct sp_disk *src, struct sp_disk *dst, const struct sp_progress *prog, struct sp_error *err);

/* Content comparison. *identical false with *first_diff the first differing
 * byte, or the smaller size when only the sizes differ. */
int sp_compare_disks(struct sp_disk *a, struct sp_disk *b, bool *identical, uint64_t *first_diff,
                     const struct sp_progress *prog, struct sp_error *err);
/* The same, but images of different virtual sizes compare as identical
 * when the larger one's bytes past the smaller's end are all zeros (as
 * qemu-img compare without -s); *first_diff is then the first non-zero
 * byte there. Those bytes cost what the larger image's data there costs:
 * its ZERO extents are not read. */
int sp_compare_disks_lenient(struct sp_disk *a, struct sp_disk *b, bool *identical, uint64_t *first_diff,
                             const struct sp_progress *prog, struct sp_error *err);

#endif
