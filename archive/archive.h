/* The archive table (in the spirit of libarchive's format descriptors):
 * every archive format snapport reads or writes fills one reader and one
 * writer struct, listed once in archive/registry.c. A reader is chosen by
 * bid (the input's first bytes and first real tar member's name, behind any
 * PAX or GNU long-name headers; never its file name), a writer by name. Readers give a VM (vm/vmconfig.h, through the
 * vm/ maps) and its disks' bytes; writers take a VM and struct sp_disk
 * readers. Neither knows the store: importer/, exporter/ and convert/ are
 * loops over this table.
 *
 * Disks are named by uuid: the VM's vbd_vdi[i] and suspend_vdi name
 * disks[k].uuid (a reader makes new uuids for the archive's disks). */
#ifndef SP_ARCHIVE_H
#define SP_ARCHIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "archive/manifest.h"
#include "archive/ovf.h"
#include "archive/xva_stream.h"
#include "base/error.h"
#include "base/instream.h"
#include "base/notes.h"
#include "base/progress.h"
#include "disk/disk.h"
#include "vm/vmconfig.h"

/* What `archive info` shows of the disks at most. */
#define SP_ARCHIVE_INFO_DISKS 64

/* What verify and info report. */
struct sp_archive_info {
    char format[8];                  /* "xva" or "ova" */
    char vm_name[256];
    bool hvm;
    uint64_t memory_bytes;
    uint64_t vcpus;
    int ndisks;
    struct {
        char id[SP_XVA_ID_MAX];
        char name[256];
        char type[16];
        uint64_t virtual_size;
        uint64_t stored;             /* bytes of blocks present in the archive */
    } disks[SP_ARCHIVE_INFO_DISKS];
    bool have_vm;                    /* the archive was read up to its VM: the fields above hold */
    unsigned digests;                /* XVA: 1 << sp_xva_digest of the checksum members seen; 0: none seen */
    enum sp_xva_compress compress;
    /* OVA: disks[].type is the file's format, name its member */
    int nnics;
    char manifest[16];               /* "SHA256", ... or "" without a manifest */
    bool is_signed, trusted;
    char signer[512];
    char trust_problem[256];
};

/* One disk of an archive (or of an archive to be). */
struct sp_archive_disk {
    char uuid[SP_UUID_STR];          /* what the VM names it by */
    char id[64];                     /* the archive's name of it, for messages */
    uint64_t size;                   /* virtual size in bytes */
    uint64_t data_bytes;             /* bytes of data; 0 when unknown (a writer's progress total) */
    bool memory;                     /* a suspended VM's memory image (raw bytes) */
};

/* ---- readers --------------------------------------------------------------- */

/* What a bid sees. */
struct sp_archive_bid {
    const uint8_t *head;             /* the first bytes of the input (none for a folder) */
    size_t head_len;
    const char *first_member;        /* the first real tar member's name (PAX path, GNU long
                                        name applied), "" when not a tar */
    bool unpacked;                   /* a folder or an .ovf file: an unpacked OVF */
};

struct sp_archive_read_format;

/* An open archive. The format fills vm and disks at open; the registry
 * owns the input. */
struct sp_archive_reader {
    const struct sp_archive_read_format *format;
    const char *label;               /* the input in messages ("stdin", the path) */
    const char *path;                /* the unpacked OVF's folder or .ovf, else the file */
    struct sp_instream *in;          /* the archive's bytes; NULL for an unpacked OVF */
    /* Set by the caller before reading disks: */
    const char *spool_dir;           /* where disk formats that need random access wait; NULL: $TMPDIR */
    const struct sp_progress *prog;
    /* Filled by open: */
    struct sp_vm vm;                 /* the archive's VM; vbd_vdi and suspend_vdi name disks[].uuid */
    struct sp_archive_disk *disks;   /* in the order the archive streams them */
    int ndisks;
    void *priv;                      /* the format's */
    struct sp_notes notes;           /* what open changed on the way (a NIC model ...) */
    /* the registry's */
    struct sp_instream own_in;
    bool own_fd;
};

struct sp_archive_read_format {
    const char *name;                /* "xva", "ova" */
    int (*bid)(const struct sp_archive_bid *b);      /* 0: not mine; the best wins */
    int (*open)(struct sp_archive_reader *r, struct sp_error *err);
    /* The disk whose bytes come next: *k its index in disks, -1 when no
     * more disks come (those not given read as zeros). */
    int (*next_disk)(struct sp_archive_reader *r, int *k, struct sp_error *err);
    /* That disk's bytes into target (sp_disk_write at ascending offsets;
     * zeros may be left out), every checksum checked; NULL: verify only. */
    int (*read_disk)(struct sp_archive_reader *r, struct sp_disk *target, struct sp_error *err);
    /* The checks of the end (manifest, signature, References, trailing
     * members), after the rest of the input is read. */
    int (*finish)(struct sp_archive_reader *r, struct sp_error *err);
    /* What was read so far. */
    void (*info)(const struct sp_archive_reader *r, struct sp_archive_info *info);
    void (*free)(struct sp_archive_reader *r);
};

/* Bid scores. */
#define SP_ARCHIVE_BID_NO 0
#define SP_ARCHIVE_BID_FALLBACK 1        /* anything else may be mine (XVA: its reader tells) */
#define SP_ARCHIVE_BID_LIKELY 50         /* a container of mine (XVA: a tar, gzip or zstd stream) */
#define SP_ARCHIVE_BID_SURE 100

extern const struct sp_archive_read_format sp_archive_xva_reader;
extern const struct sp_archive_read_format sp_archive_ova_reader;

/* Opens path (a file, "-" for stdin, a folder or an .ovf) with the reader
 * format names ("xva", "ova") or, when NULL, the best bid, and reads it up
 * to its VM. */
int sp_archive_reader_open(const char *path, const char *format, struct sp_archive_reader **out,
                           struct sp_error *err);
/* Whether path is an unpacked OVF (a folder or an .ovf). */
bool sp_archive_path_unpacked(const char *path);
/* The best reader's score for the file at path (its first bytes). */
int sp_archive_bid_file(const char *path, int *score, struct sp_error *err);
/* The best reader for these bytes, or NULL when none bids. */
const struct sp_archive_read_format *sp_archive_bid_best(const struct sp_archive_bid *b);
int sp_archive_next_disk(struct sp_archive_reader *r, int *k, struct sp_error *err);
int sp_archive_read_disk(struct sp_archive_reader *r, struct sp_disk *target, struct sp_error *err);
int sp_archive_finish(struct sp_archive_reader *r, struct sp_error *err);
/* info is zeroed first; its format is the reader's, have_vm set. */
void sp_archive_info(const struct sp_archive_reader *r, struct sp_archive_info *info);
void sp_archive_reader_free(struct sp_archive_reader *r); /* accepts NULL */

/* ---- writers --------------------------------------------------------------- */

/* The writers the command line names. */
enum sp_archive_format {
    SP_ARCHIVE_XVA,
    SP_ARCHIVE_OVA,
};

/* The writer's name of f ("xva", "ova"). */
const char *sp_archive_format_name(enum sp_archive_format f);

struct sp_archive_write_opts {
    /* XVA */
    enum sp_xva_digest digest;
    enum sp_xva_compress compress;
    /* OVA */
    enum sp_digest_kind mf_digest;   /* the manifest's */
    const char *sign_key;            /* PEM private key and certificate: a .cert; NULL: none */
    const char *sign_cert;
    enum sp_ovf_version ovf_version;
    const char *spool_dir;           /* where compressed VMDKs wait for their turn; NULL: $TMPDIR */
    /* either */
    int level;                       /* OVA: the VMDK grains' deflate level; XVA: of --compress; 0: the default */
    int64_t mtime;                   /* the time every member carries */
    bool forward_only;               /* disks read forward once (pushed): no walk first for progress */
    const struct sp_progress *prog;
    struct sp_notes *notes;          /* what the archive leaves out of the VM (a memory image, a NIC
                                        model), said by begin; NULL: not wanted */
};

struct sp_archive_write_format;

struct sp_archive_writer {
    const struct sp_archive_write_format *format;
    void *priv;
};

struct sp_archive_write_format {
    const char *name;                /* "xva", "ova" */
    const char *const *extensions;   /* of an output's name, without the dot; NULL-terminated */
    bool data_bytes_first;           /* begin wants disks[].data_bytes (its progress total) */
    /* The archive of vm (vm_name: the VM's name) into fd (not closed);
     * disks[0..n) in the order add_disk will get them. vm, vm_name and
     * disks stay the caller's and must live until finish. */
    int (*begin)(struct sp_archive_writer *w, const struct sp_vm *vm, const char *vm_name,
                 const struct sp_archive_disk *disks, int n, const struct sp_archive_write_opts *o, int fd,
                 struct sp_error *err);
    /* Whether disks[k] goes into the archive (OVA: not a memory image). */
    bool (*carries)(const struct sp_archive_writer *w, int k);
    /* disks[k]'s bytes, read forward; only carried disks, in order. */
    int (*add_disk)(struct sp_archive_writer *w, int k, struct sp_disk *disk, struct sp_error *err);
    int (*finish)(struct sp_archive_writer *w, struct sp_error *err);
    /* Also the abort: after a failure, fd holds a partial archive. */
    void (*free)(struct sp_archive_writer *w);
};

extern const struct sp_archive_write_format sp_archive_xva_writer;
extern const struct sp_archive_write_format sp_archive_ova_writer;

/* By name, or NULL; case does not matter. */
const struct sp_archive_write_format *sp_archive_writer_find(const char *name);
/* By the extension of an output's name (".ova", ".XVA"), or NULL. */
const struct sp_archive_write_format *sp_archive_writer_for_name(const char *path);
int sp_archive_writer_begin(const struct sp_archive_write_format *f, const struct sp_vm *vm, const char *vm_name,
                            const struct sp_archive_disk *disks, int n, const struct sp_archive_write_opts *o,
                            int fd, struct sp_archive_writer **out, struct sp_error *err);
bool sp_archive_carries(const struct sp_archive_writer *w, int k);
int sp_archive_add_disk(struct sp_archive_writer *w, int k, struct sp_disk *disk, struct sp_error *err);
int sp_archive_writer_finish(struct sp_archive_writer *w, struct sp_error *err);
void sp_archive_writer_free(struct sp_archive_writer *w); /* accepts NULL */

/* Fresh uuids for disks[0..n) (readers name an archive's disks anew). */
int sp_archive_disks_new(int n, struct sp_archive_disk **out, struct sp_error *err);
/* The index of the disk uuid names, or -1. */
int sp_archive_disk_find(const struct sp_archive_disk *disks, int n, const char *uuid);

#endif
