/* Importing an archive as a new VM of the store: every checksum verified
 * while the archive streams, the VM registered only after all of it
 * verified, new UUIDs. Also verify and info (no store needed). */
#ifndef SP_IMPORT_H
#define SP_IMPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "formats/copy.h"
#include "formats/xva_stream.h"
#include "store/store.h"

struct sp_import_opts {
    const char *name;                /* NULL: the archive's VM name */
    const struct sp_progress *prog;
};

/* fd: the archive (a file or stdin); label names it in messages. */
int sp_import_xva(struct sp_store *s, int fd, const char *label, const struct sp_import_opts *o,
                  char uuid[SP_UUID_STR], struct sp_error *err);

struct sp_archive_info {
    char vm_name[256];
    bool hvm;
    uint64_t memory_bytes;
    uint64_t vcpus;
    int ndisks;
    struct {
        char id[32];
        char name[256];
        char type[16];
        uint64_t virtual_size;
        uint64_t stored;             /* bytes of blocks present in the archive */
    } disks[64];
    enum sp_xva_digest digest;
    enum sp_xva_compress compress;
};

/* Reads the whole archive, checking every checksum and the structure.
 * info (may be NULL) is filled as far as the archive was read. */
int sp_verify_xva(int fd, const char *label, struct sp_archive_info *info, const struct sp_progress *prog,
                  struct sp_error *err);

#endif
