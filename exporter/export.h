/* Exporting a VM or a snapshot of the store as an archive (XVA or OVA):
 * the store's VDIs into an archive writer (archive/archive.h). Without a
 * named snapshot a temporary system snapshot is taken, exported and
 * deleted, as XAPI does. The archive streams: no temporary copy of a
 * disk. */
#ifndef SP_EXPORT_H
#define SP_EXPORT_H

#include "archive/archive.h"
#include "store/store.h"

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
    int level;                       /* deflate level of the VMDK grains (0: SP_VMDK_EXPORT_LEVEL), or
                                        the XVA's --compress level (0: archive/par_compress.h's default) */
    const char *spool_dir;           /* where compressed VMDKs wait for their turn; NULL: $TMPDIR */
    const struct sp_progress *prog;
    struct sp_notes *notes;          /* what the archive leaves out (OVA: a memory image, a NIC model);
                                        NULL: not wanted; the caller frees them */
};

/* Writes the archive to fd (a file or a pipe). */
int sp_export(struct sp_store *s, const struct sp_export_opts *o, int fd, struct sp_error *err);

#endif
