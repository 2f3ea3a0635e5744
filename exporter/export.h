/* Exporting a VM or a snapshot of the store as an archive (XVA or OVA).
 * Without a named snapshot a temporary system snapshot is taken, exported
 * and deleted, as XAPI does. The archive streams: no temporary copy of a
 * disk. */
#ifndef SP_EXPORT_H
#define SP_EXPORT_H

#include "formats/copy.h"
#include "formats/manifest.h"
#include "formats/ovf.h"
#include "formats/xva_stream.h"
#include "store/store.h"

enum sp_archive_format {
    SP_ARCHIVE_XVA,
    SP_ARCHIVE_OVA,
};

struct sp_export_opts {
    const char *vm;                  /* name or uuid */
    const char *snapshot;            /* NULL: a temporary system snapshot */
    enum sp_archive_format format;
    /* XVA */
    enum sp_xva_digest digest;
    enum sp_xva_compress compress;
    /* OVA */
    enum sp_digest_kind mf_digest;   /* the manifest's (SHA256 by default) */
    const char *sign_key;            /* PEM private key and certificate: a .cert; NULL: none */
    const char *sign_cert;
    enum sp_ovf_version ovf_version;
    int level;                       /* deflate level of the VMDK grains; 0: 1 (fastest) */
    const struct sp_progress *prog;
};

/* Writes the archive to fd (a file or a pipe). */
int sp_export(struct sp_store *s, const struct sp_export_opts *o, int fd, struct sp_error *err);

/* ---- the format writers, for sp_export -------------------------------- */

/* What one export reads: the snapshot (temporary or named) and the name of
 * its VM; the store lock is held shared. */
struct sp_export_src {
    struct sp_store *s;
    const struct sp_vm *snap;
    const char *vm_name;
};

int sp_export_xva_write(const struct sp_export_src *src, const struct sp_export_opts *o, int fd,
                        struct sp_error *err);
int sp_export_ova_write(const struct sp_export_src *src, const struct sp_export_opts *o, int fd,
                        struct sp_error *err);

/* Opens a VDI of the store as a disk: a chain, or a memory image as raw. */
int sp_export_open_vdi(struct sp_store *s, const char *vdi, bool memory, struct sp_disk **out,
                       struct sp_error *err);

#endif
