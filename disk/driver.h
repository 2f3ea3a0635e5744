/* One disk format = one driver (in the spirit of QEMU's BlockDriver): a
 * name, a probe that scores the first and last bytes of a file, an open
 * that gives the format's extent-stream reader (disk.h), and, where the
 * format supports it, a writer. Every driver is listed once in registry.c;
 * nothing outside a driver's own files decodes its magic bytes.
 *
 * Adding a format: one file that fills one struct sp_disk_driver, one line
 * in registry.c, its tests. */
#ifndef SP_DRIVER_H
#define SP_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/progress.h"
#include "base/uuid.h"
#include "disk/disk.h"

/* What a probe sees: the first SP_PROBE_HEAD and the last SP_PROBE_TAIL
 * bytes of the file (fewer when the file is shorter; tail_len 0 when the
 * end is not known, as in a stream). */
#define SP_PROBE_HEAD 4096u
#define SP_PROBE_TAIL 512u

struct sp_probe {
    const uint8_t *head;
    size_t head_len;
    const uint8_t *tail;
    size_t tail_len;
    uint64_t file_size;       /* 0 when unknown (a stream) */
};

/* Probe scores: the best one wins; raw answers SP_PROBE_FALLBACK to all. */
#define SP_PROBE_NO 0
#define SP_PROBE_FALLBACK 1
#define SP_PROBE_WEAK 50          /* a magic that other data may hold by chance */
#define SP_PROBE_SURE 100         /* a magic plus fields that agree */

/* Chains (VHD parents, qcow2 backing files, VMDK extents) open further
 * files through the registry; depth counts the files above, so that a loop
 * or a hostile chain stops at SP_DISK_MAX_DEPTH. */
#define SP_DISK_MAX_DEPTH 64
/* Files one disk may list in layers(): a chain of SP_DISK_MAX_DEPTH, or
 * the extent files of a VMDK (up to 4096, vmdk_internal.h). */
#define SP_DISK_MAX_LAYERS 4096

struct sp_disk_open_opts {
    bool writable;            /* writes go to the top layer (raw, VHD only) */
    int depth;                /* files already open above this one */
    bool standalone;          /* this file alone (a spooled archive member): an
                               * image that needs another file is refused,
                               * SP_EUNSUPPORTED, before any other is opened */
};

/* One file of an image (a chain layer, a VMDK extent), for `disk info`. */
struct sp_disk_layer {
    const char *path;
    char variant[48];         /* "dynamic", "streamOptimized", "qcow2 v3" ... */
    char uuid[SP_UUID_STR];   /* "" when the format has none */
    char parent_uuid[SP_UUID_STR];
    uint64_t virtual_size;
    uint64_t allocated;       /* bytes of data this file stores */
    uint32_t block_size;      /* VHD block, qcow2 cluster, VMDK grain; 0: none */
    char creator[8];          /* VHD creator application, else "" */
    bool hidden;
};

/* Where a flatten writes: fd is the empty temporary output file. */
struct sp_disk_create_opts {
    const char *path;         /* final name, for messages and the VMDK's extent line */
    const char *tmp_path;     /* the temporary file behind fd, for drivers that reopen it */
    uint32_t block_size;      /* 0: the format's default */
    bool durable;             /* the output will be fsynced: start writeback early */
    int level;                /* compression level where the format compresses; 0: default */
};

/* A forward-only source of an image's bytes (a tar member, a pipe): fills
 * up to len, *got 0 at the end. */
typedef int (*sp_stream_in)(void *ctx, void *buf, size_t len, size_t *got, struct sp_error *err);
/* Where a stream decoder puts the disk's data: ascending offsets, zeros
 * may be left out. Returns an SP_ status; the sink keeps its own message. */
typedef int (*sp_stream_sink)(void *ctx, uint64_t off, const void *data, size_t len);

struct sp_disk_driver {
    const char *name;                     /* "raw", "vhd", "vmdk", "qcow2" */
    const char *const *extensions;        /* for outputs; NULL-terminated, may be NULL */
    int (*probe)(const struct sp_probe *p);
    /* Opens path; an unwritable format given writable is SP_EUNSUPPORTED.
     * NULL for formats we recognise only to refuse them (VHDX): refuse
     * then says why. */
    int (*open)(const char *path, const struct sp_disk_open_opts *o, struct sp_disk **out, struct sp_error *err);
    const char *refuse;                   /* with open NULL: the message */
    /* Optional: the layers of an open disk (leaf first); *n at most max. */
    bool layers_are_extents;              /* they sit side by side in disk order (VMDK), not stacked */
    int (*layers)(struct sp_disk *d, struct sp_disk_layer *l, int max, int *n, struct sp_error *err);
    /* Optional: checks beyond open's; problem() once per finding. NULL:
     * open plus a walk over every extent (all metadata) is the check. */
    int (*check)(struct sp_disk *d, void (*problem)(void *ctx, const char *msg), void *ctx, struct sp_error *err);
    /* Optional: decodes the image front to back from in (no seeking), for
     * the variants streamable() accepts from the head alone; *size is the
     * virtual size. */
    bool (*streamable)(const struct sp_probe *p);
    int (*read_stream)(sp_stream_in in, void *in_ctx, sp_stream_sink sink, void *sink_ctx, uint64_t *size,
                       struct sp_error *err);
    /* Optional: writes src whole into fd as a new image of this format. */
    int (*create_copy)(int fd, struct sp_disk *src, const struct sp_disk_create_opts *o,
                       const struct sp_progress *prog, struct sp_error *err);
};

#endif
