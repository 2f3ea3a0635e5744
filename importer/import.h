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

struct sp_instream;

/* in: the archive (a file or stdin); label names it in messages. */
int sp_import_xva(struct sp_store *s, struct sp_instream *in, const char *label, const struct sp_import_opts *o,
                  char uuid[SP_UUID_STR], struct sp_error *err);

struct sp_archive_info {
    char format[8];                  /* "xva" or "ova" */
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
    /* OVA: disks[].type is the file's format, name its member */
    int nnics;
    char manifest[16];               /* "SHA256", ... or "" without a manifest */
    bool is_signed, trusted;
    char signer[512];
    char trust_problem[256];
};

/* Reads the whole archive, checking every checksum and the structure.
 * info (may be NULL) is filled as far as the archive was read. */
int sp_verify_xva(struct sp_instream *in, const char *label, struct sp_archive_info *info, const struct sp_progress *prog,
                  struct sp_error *err);

/* ---- OVA ----------------------------------------------------------------- */

/* An OVA from in (a tar: a file or a pipe), or, when in is NULL, an
 * unpacked .ovf with its files (path: the folder or the .ovf). The
 * manifest and certificate are checked where present, every disk decoded;
 * the VM is registered only after all of it verified. */
int sp_import_ova(struct sp_store *s, struct sp_instream *in, const char *path, const char *label,
                  const struct sp_import_opts *o, char uuid[SP_UUID_STR], struct sp_error *err);
int sp_verify_ova(struct sp_instream *in, const char *path, const char *label, struct sp_archive_info *info,
                  const struct sp_progress *prog, struct sp_error *err);

/* ---- either ---------------------------------------------------------------- */

/* path: a file, "-" (stdin), a folder or an .ovf; format "xva", "ova" or
 * NULL (told from the first tar header: an .ovf first is an OVA). */
int sp_import_archive(struct sp_store *s, const char *path, const char *format, const struct sp_import_opts *o,
                      char uuid[SP_UUID_STR], struct sp_error *err);
int sp_verify_archive(const char *path, const char *format, struct sp_archive_info *info,
                      const struct sp_progress *prog, struct sp_error *err);

#endif
