/* Exporting a VM or a snapshot of the store as an archive (XVA or OVA).
 * Without a named snapshot a temporary system snapshot is taken, exported
 * and deleted, as XAPI does. The archive streams: no temporary copy of a
 * disk. */
#ifndef SP_EXPORT_H
#define SP_EXPORT_H

#include "disk/copy.h"
#include "archive/manifest.h"
#include "archive/ovf.h"
#include "archive/xva_stream.h"
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
    int level;                       /* deflate level of the VMDK grains; 0: SP_VMDK_EXPORT_LEVEL */
    const char *spool_dir;           /* where compressed VMDKs wait for their turn; NULL: $TMPDIR */
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

/* An OVA whose disks are not the store's (convert): the VM record is
 * src->snap (src->s may be NULL), and each disk that has a VDI (CD drives
 * and empty drives are left out) comes from the feed by its vbd_vdi
 * string, once, in the VM's disk order (into its spool, as an export's). */
struct sp_ova_feed {
    /* The disk's virtual size. */
    int (*capacity)(void *ctx, const char *vdi, uint64_t *size, struct sp_error *err);
    /* The disk, read forward once (no progress hook is used). */
    int (*open)(void *ctx, const char *vdi, struct sp_disk **disk, struct sp_error *err);
    /* The reading ended with rc (the writer's status); returns the disk's
     * status. *data_bytes: the bytes of data the disk gave. */
    int (*close)(void *ctx, const char *vdi, int rc, uint64_t *data_bytes, struct sp_error *err);
    void *ctx;
};

int sp_export_ova_write_feed(const struct sp_export_src *src, const struct sp_export_opts *o,
                             const struct sp_ova_feed *feed, int fd, struct sp_error *err);

/* ---- convert: archive to archive, no store ------------------------------- */

struct sp_convert_opts {
    enum sp_archive_format to;       /* the output's format; the input's is told from its bytes */
    const char *spool_dir;           /* to OVA: where compressed VMDKs wait (sp_export_opts); NULL: $TMPDIR */
    const struct sp_progress *prog;
};

struct sp_convert_result {
    bool memory_dropped;             /* XVA -> OVA: a suspended VM's memory image is not carried */
    int vdis_dropped;                /* XVA -> OVA: VDIs not carried (the memory image, a CD's) */
};

/* Converts the archive at path (opened as import does: a file, "-", an
 * unpacked OVF folder or .ovf) into fd, XVA to OVA or OVA to XVA, every
 * checksum of the input checked on the way; the disks stream from one to
 * the other with memory bounded (to OVA, the compressed VMDKs wait in
 * spool files as an export's do). An XVA whose VM disk order is not its
 * stream order is read again from the top: it must be a file then. On
 * failure fd holds a partial archive: the caller drops it. res may be
 * NULL. */
int sp_convert(const char *path, const struct sp_convert_opts *o, int fd, struct sp_convert_result *res,
               struct sp_error *err);

#endif
