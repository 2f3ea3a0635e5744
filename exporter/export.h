/* Exporting a VM or a snapshot of the store as an archive. Without a named
 * snapshot a temporary system snapshot is taken, exported and deleted, as
 * XAPI does. The archive streams: no temporary copy of a disk. */
#ifndef SP_EXPORT_H
#define SP_EXPORT_H

#include "formats/copy.h"
#include "formats/xva_stream.h"
#include "store/store.h"

struct sp_export_opts {
    const char *vm;                  /* name or uuid */
    const char *snapshot;            /* NULL: a temporary system snapshot */
    enum sp_xva_digest digest;
    enum sp_xva_compress compress;
    const struct sp_progress *prog;
};

/* Writes the XVA to fd (a file or a pipe). */
int sp_export_xva(struct sp_store *s, const struct sp_export_opts *o, int fd, struct sp_error *err);

#endif
