/* Importing an archive as a new VM of the store: every checksum verified
 * while the archive streams, the VM registered only after all of it
 * verified, new UUIDs. Also verify and info (no store needed). */
#ifndef SP_IMPORT_H
#define SP_IMPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "disk/copy.h"
#include "archive/xva_stream.h"
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

/* An OVA (or unpacked OVF) read for its disks without a store (convert):
 * open reads up to the .ovf; read takes the rest, giving each disk's bytes
 * to the disk begin() names (sp_disk_write at ascending offsets; zeros may
 * be left out), then checks References, manifest and certificate as import
 * does. Non-streaming disk formats are spooled in $TMPDIR, as verify does. */
struct sp_ova_disk_hooks {
    /* The file of sys->disks[disk] starts. */
    int (*begin)(void *ctx, int disk, struct sp_disk **target, struct sp_error *err);
    /* It ended with rc; returns the status to go on with. */
    int (*end)(void *ctx, int disk, int rc, struct sp_error *err);
    void *ctx;
};

struct sp_ova_source;
int sp_ova_source_open(struct sp_instream *in, const char *path, const char *label, const struct sp_progress *prog,
                       struct sp_ova_source **out, struct sp_error *err);
const struct sp_ovf_system *sp_ova_source_system(const struct sp_ova_source *src);
int sp_ova_source_read(struct sp_ova_source *src, const struct sp_ova_disk_hooks *h, struct sp_error *err);
void sp_ova_source_free(struct sp_ova_source *src); /* accepts NULL */

/* ---- either ---------------------------------------------------------------- */

/* Opens an archive as import does: path a file, "-" (stdin), a folder or an
 * .ovf; format "xva", "ova" or NULL (told from the first tar header). *ova
 * for an OVA or unpacked OVF, *dir for the latter (in is then unused);
 * *label names the input in messages. in must be zeroed with fd -1. */
int sp_archive_input_open(const char *path, const char *format, struct sp_instream *in, bool *ova, bool *dir,
                          const char **label, struct sp_error *err);
void sp_archive_input_close(struct sp_instream *in, const char *path, bool dir);

/* path: a file, "-" (stdin), a folder or an .ovf; format "xva", "ova" or
 * NULL (told from the first tar header: an .ovf first is an OVA). */
int sp_import_archive(struct sp_store *s, const char *path, const char *format, const struct sp_import_opts *o,
                      char uuid[SP_UUID_STR], struct sp_error *err);
int sp_verify_archive(const char *path, const char *format, struct sp_archive_info *info,
                      const struct sp_progress *prog, struct sp_error *err);

#endif
