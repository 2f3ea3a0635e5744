/* Importing an archive as a new VM of the store: the archive's reader
 * (archive/archive.h) gives the VM and each disk's bytes, which go into new
 * VDIs in a staging folder; the VM is registered only after every checksum
 * of the archive verified, with new UUIDs. Also verify and info (no store
 * needed). */
#ifndef SP_IMPORT_H
#define SP_IMPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "archive/archive.h"
#include "store/store.h"

struct sp_import_opts {
    const char *name;                /* NULL: the archive's VM name */
    const struct sp_progress *prog;
    struct sp_notes *notes;          /* filled on success with what changed on the way; may be NULL */
};

/* path: a file, "-" (stdin), a folder or an .ovf; format "xva", "ova" or
 * NULL (told from the input's bytes: a tar whose first member is an .ovf
 * is an OVA). */
int sp_import_archive(struct sp_store *s, const char *path, const char *format, const struct sp_import_opts *o,
                      char uuid[SP_UUID_STR], struct sp_error *err);

/* Reads the whole archive, checking every checksum and the structure.
 * info (may be NULL) is filled as far as the archive was read. */
int sp_verify_archive(const char *path, const char *format, struct sp_archive_info *info,
                      const struct sp_progress *prog, struct sp_error *err);

#endif
