/* Output files that appear whole or not at all: written under a temporary
 * name in the target's directory, then linked to the final name (which
 * fails if it exists, so nothing is overwritten) or renamed over it when the
 * caller forces. A failed or interrupted command leaves no output behind;
 * what a killed one leaves (.NAME.snapport-PID-XXXXXX) the next open of the
 * same output removes. */
#ifndef SP_OUTFILE_H
#define SP_OUTFILE_H

#include <stdbool.h>

#include "base/error.h"

struct sp_outfile {
    int fd;
    char final_path[4096];
    char tmp_path[4096];
    bool force;
    bool no_sync;      /* skip the fsync before the rename: faster, not crash-durable */
};

/* Fails with SP_EEXIST when path exists and !force. */
int sp_outfile_open(struct sp_outfile *o, const char *path, bool force, struct sp_error *err);
/* fsyncs (unless no_sync), closes and moves the file to its final name. */
int sp_outfile_commit(struct sp_outfile *o, struct sp_error *err);
/* Closes and removes the temporary file. Safe to call after commit. */
void sp_outfile_abort(struct sp_outfile *o);
/* Removes what killed writers of path left (their lock free, their pid
 * gone); sp_outfile_open does this for its own path. */
void sp_outfile_sweep(const char *path);

#endif
