/* convert: an archive into the other archive format, with no store: the
 * input's reader and the output's writer of the archive table
 * (archive/archive.h), each disk streaming from one to the other. */
#ifndef SP_CONVERT_H
#define SP_CONVERT_H

#include <stdbool.h>

#include "archive/archive.h"

struct sp_convert_opts {
    enum sp_archive_format to;       /* the output's format; the input's is told from its bytes */
    const char *spool_dir;           /* to OVA: where compressed VMDKs wait; NULL: $TMPDIR */
    const struct sp_progress *prog;
    /* A disk image in (not an archive): the minimal HVM VM it is wrapped in */
    const char *name;                /* NULL: the file's name without its extension */
    uint64_t memory_mb;              /* 0: SP_CONVERT_MEMORY_MB */
    uint64_t vcpus;                  /* 0: 1 */
};

/* A wrapped disk image's VM memory when none is given: 1 GiB. */
#define SP_CONVERT_MEMORY_MB 1024

struct sp_convert_result {
    struct sp_notes notes;           /* what the reader changed on the way and what the output leaves
                                        out (to OVA: a memory image, a NIC model); the caller frees them */
};

/* Converts the archive at path (or, when its bytes are no archive's but a
 * disk image's of any format the disk registry knows, that image wrapped
 * in a VM of one disk, xvda on hda, no NIC) (opened as import does: a file, "-", an
 * unpacked OVF folder or .ovf) into fd, every checksum of the input checked
 * on the way (the manifest and signature at the end); the disks stream from
 * reader to writer through a bounded queue, the writer on a thread of its
 * own, memory bounded (to OVA, the compressed VMDKs wait in spool files as
 * an export's do). On failure fd holds a partial archive: the caller drops
 * it. A raw image must be whole 512-byte sectors: anything else that is
 * neither an archive nor a disk image is refused. res may be NULL. */
int sp_convert(const char *path, const struct sp_convert_opts *o, int fd, struct sp_convert_result *res,
               struct sp_error *err);

#endif
