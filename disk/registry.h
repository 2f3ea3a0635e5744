/* The disk driver registry: every format snapport knows, in one table
 * (registry.c). Opening "any disk" probes the file's first and last bytes
 * with every driver and opens it with the best; the file's name is never
 * consulted. */
#ifndef SP_REGISTRY_H
#define SP_REGISTRY_H

#include <stdbool.h>

#include "disk/driver.h"

/* The drivers, NULL-terminated, in the order ties are broken. */
extern const struct sp_disk_driver *const sp_disk_drivers[];

/* By name ("vhd"), or NULL. */
const struct sp_disk_driver *sp_disk_driver_find(const char *name);
/* By the extension of an output's name (".vmdk"), or NULL. */
const struct sp_disk_driver *sp_disk_driver_for_name(const char *path);

/* The best driver for these bytes (raw when nothing else bids). */
const struct sp_disk_driver *sp_disk_probe(const struct sp_probe *p);
/* Reads path's head and tail and probes them. */
int sp_disk_probe_file(const char *path, const struct sp_disk_driver **drv, struct sp_error *err);

/* Opens path with the best driver; d->driver is set. A format we know only
 * to refuse, or a writable open of a read-only format, is SP_EUNSUPPORTED. */
int sp_disk_open_any(const char *path, const struct sp_disk_open_opts *o, struct sp_disk **out,
                     struct sp_error *err);
/* Opens path as the format name says (a declared format, as xl.cfg's
 * format=): a file whose bytes are another format is SP_EFORMAT. */
int sp_disk_open_as(const char *path, const char *name, const struct sp_disk_open_opts *o, struct sp_disk **out,
                    struct sp_error *err);
/* Opens path with drv (a format named by the image above it, not probed):
 * the same depth limit and refusals; d->driver is set. */
int sp_disk_open_with(const struct sp_disk_driver *drv, const char *path, const struct sp_disk_open_opts *o,
                      struct sp_disk **out, struct sp_error *err);
/* The same, top file read-only or writable, depth 0. */
int sp_disk_open(const char *path, bool writable, struct sp_disk **out, struct sp_error *err);

/* Structure check of path and every file it stands on. problem() gets one
 * line per finding, naming the file. SP_OK when the check ran (findings or
 * not; *count of them); an error when path cannot be read or is of a
 * format we cannot read (SP_EUNSUPPORTED: "unsupported", not "damaged"). */
int sp_disk_check(const char *path, void (*problem)(void *ctx, const char *msg), void *ctx, int *count,
                  struct sp_error *err);

/* The files behind d, leaf first (one for single-file formats). */
int sp_disk_layers(struct sp_disk *d, struct sp_disk_layer *l, int max, int *n, struct sp_error *err);
/* Whether the file at path is one the open disk reads (any layer or
 * extent: the same device and inode). A path that does not exist is not. */
int sp_disk_reads_file(struct sp_disk *d, const char *path, bool *reads, struct sp_error *err);

#endif
