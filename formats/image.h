/* Opening a disk image of any supported format, chosen by its bytes (a bid),
 * never by its name: a VHD (and its chain) or a raw file. */
#ifndef SP_IMAGE_H
#define SP_IMAGE_H

#include <stdbool.h>

#include "formats/disk.h"

enum sp_image_format {
    SP_IMAGE_RAW,
    SP_IMAGE_VHD,
};

/* Opens path read-only (or writable: the leaf of a chain, or the raw file). */
int sp_image_open(const char *path, bool writable, struct sp_disk **out, struct sp_error *err);

/* What the bytes of path say it is; formats we recognise but cannot read
 * (qcow2, VMDK, VHDX) are an SP_EUNSUPPORTED error naming them. */
int sp_image_detect(const char *path, enum sp_image_format *fmt, struct sp_error *err);

/* Structure check of path and, for a VHD, of every layer of its chain and
 * every link. problem() gets one line per finding, naming the file. Returns
 * SP_OK when the check ran (findings or not); an error only when path itself
 * cannot be read at all. *count is the number of findings. */
int sp_image_check(const char *path, void (*problem)(void *ctx, const char *msg), void *ctx, int *count,
                   struct sp_error *err);

#endif
