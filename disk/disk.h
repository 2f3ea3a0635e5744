/* The one interface every disk is read through (DESIGN.md "disks are extent
 * streams"): a virtual size, the run of data or zeros at an offset, and reads.
 * A ZERO run reads as zeros without I/O; writers never see it. */
#ifndef SP_DISK_H
#define SP_DISK_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

enum sp_extent_kind {
    SP_EXTENT_ZERO = 0,
    SP_EXTENT_DATA = 1,
};

struct sp_extent {
    uint64_t start;
    uint64_t len;
    enum sp_extent_kind kind;
};

struct sp_disk;
struct sp_disk_driver;

struct sp_disk_ops {
    /* The run that starts at off (off < size): start = off, len > 0. */
    int (*next_extent)(struct sp_disk *d, uint64_t off, struct sp_extent *ext, struct sp_error *err);
    /* len bytes at off; off + len <= size. */
    int (*read)(struct sp_disk *d, uint64_t off, void *buf, size_t len, struct sp_error *err);
    /* Optional: len bytes at off into the top layer; NULL when read-only. */
    int (*write)(struct sp_disk *d, uint64_t off, const void *buf, size_t len, struct sp_error *err);
    /* Optional: make written data durable (footer, bitmaps, fsync). */
    int (*flush)(struct sp_disk *d, struct sp_error *err);
    void (*close)(struct sp_disk *d);
};

struct sp_disk {
    const struct sp_disk_ops *ops;
    uint64_t size;      /* virtual size in bytes */
    const char *path;   /* for messages; owned by the implementation */
    const struct sp_disk_driver *driver; /* set by the registry's open; NULL otherwise */
};

int sp_disk_next_extent(struct sp_disk *d, uint64_t off, struct sp_extent *ext, struct sp_error *err);
int sp_disk_read(struct sp_disk *d, uint64_t off, void *buf, size_t len, struct sp_error *err);
int sp_disk_write(struct sp_disk *d, uint64_t off, const void *buf, size_t len, struct sp_error *err);
int sp_disk_flush(struct sp_disk *d, struct sp_error *err);
/* Accepts NULL. */
void sp_disk_close(struct sp_disk *d);

#endif
