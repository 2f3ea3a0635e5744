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
};

struct sp_convert_result {
    bool memory_dropped;             /* XVA -> OVA: a suspended VM's memory image is not carried */
    int vdis_dropped;                /* VDIs the output does not carry (the memory image, a CD's) */
};

/* Converts the archive at path (opened as import does: a file, "-", an
 * unpacked OVF folder or .ovf) into fd, every checksum of the input checked
 * on the way (the manifest and signature at the end); the disks stream from
 * reader to writer through a bounded queue, the writer on a thread of its
 * own, memory bounded (to OVA, the compressed VMDKs wait in spool files as
 * an export's do). On failure fd holds a partial archive: the caller drops
 * it. res may be NULL. */
int sp_convert(const char *path, const struct sp_convert_opts *o, int fd, struct sp_convert_result *res,
               struct sp_error *err);

#endif
