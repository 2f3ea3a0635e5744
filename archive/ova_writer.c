/* OVA in the archive table: the writer. A VM -> the .ovf, the .mf (and
 * .cert), then one streamOptimized VMDK per disk, and the CD drive's image
 * as an ISO file (its raw bytes, as VirtualBox packs one).
 *
 * The .ovf carries each VMDK's size and the .mf its digest, and both come
 * before the disks in the tar. So each disk is compressed once into a
 * spool file (unlinked, beside the output: the compressed VMDK only, never
 * an uncompressed disk), sized and digested on the way, and copied into the
 * archive after the descriptor and manifest. Compressing twice instead (as
 * Xen Orchestra does) needs no space but measured 2.25x qemu-img's speed
 * against the 3x wanted (BENCHMARKS.md). A pipe gets the same bytes as a
 * file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive/archive.h"
#include "archive/ova.h"
#include "base/util.h"
#include "disk/vmdk.h"
#include "vm/ovf_map.h"

#define SPOOL_CHUNK (1u << 20)

struct ova_disk {
    int k;                             /* its index in begin's disks */
    bool added;
    uint64_t capacity;
    char member[SP_OVA_NAME_MAX + 1];
    uint64_t data_bytes;
    uint64_t size;                     /* of the VMDK (the ISO) */
    bool iso;                          /* the CD drive's image: raw bytes */
    int spool;                         /* the compressed VMDK; -1 before */
    char hex[SP_DIGEST_HEX_MAX];
};

struct ova_job {
    const struct sp_vm *vm;
    const char *vm_name;
    struct sp_archive_write_opts o;
    int fd;
    char base[200];                    /* member names: <base>.ovf, <base>-disk1.vmdk ... */
    struct ova_disk *disks;            /* the carried ones, in the VM's disk order */
    int ndisks;
    int *of;                           /* per begin's disk: its index in disks, -1: not carried */
    int nin;
    bool ide;                          /* the disks on IDE, else SCSI (sp_vm_ovf_ide) */
    uint64_t grand;                    /* data bytes of all disks */
    uint64_t done;
};

/* A member-name stem from the VM name: letters, digits, '.', '_', '-'. */
static void member_base(const char *name, char *out, size_t len)
{
    size_t k = 0;
    for (size_t i = 0; name[i] && k + 1 < len && k < 64; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '-' || (c == '.' && k > 0);
        out[k++] = ok ? c : '_';
    }
    out[k] = '\0';
    if (k == 0)
        snprintf(out, len, "vm");
}

static int plan_disk(struct ova_job *j, const struct sp_archive_disk *in, int nin, int i, bool iso,
                     struct sp_error *err)
{
    const struct sp_vm *vm = j->vm;
    int k = sp_archive_disk_find(in, nin, vm->vbd_vdi[i]);
    if (k < 0 || j->of[k] >= 0)
        return sp_error_set(err, SP_EINVAL, "ova: disk %s: its VDI is not among the disks", vm->cfg.disks[i].vdev);
    struct ova_disk *od = &j->disks[j->ndisks];
    od->k = k;
    od->spool = -1;
    od->iso = iso;
    od->capacity = in[k].size;
    od->data_bytes = in[k].data_bytes;
    if (iso)
        snprintf(od->member, sizeof od->member, "%s-cd.iso", j->base);
    else
        snprintf(od->member, sizeof od->member, "%s-disk%d.vmdk", j->base, j->ndisks + 1);
    j->grand += od->data_bytes;
    j->of[k] = j->ndisks++;
    return SP_OK;
}

/* The disks the OVA carries, in the VM's order; of[] maps begin's disks. */
static int plan_disks(struct ova_job *j, const struct sp_archive_disk *in, int nin, struct sp_error *err)
{
    const struct sp_vm *vm = j->vm;
    j->disks = sp_zalloc(sizeof *j->disks * (size_t)(vm->cfg.ndisks + 1), err);
    j->of = sp_zalloc(sizeof *j->of * (size_t)(nin + 1), err);
    if (!j->disks || !j->of)
        return SP_ENOMEM;
    j->nin = nin;
    for (int k = 0; k < nin; k++)
        j->of[k] = -1;
    j->ide = sp_vm_ovf_ide(vm);
    /* the hard disks, then the CD's image (sp_vm_to_ovf takes them so);
     * an empty CD drive is a hardware item, outside disks are not the VM's */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < vm->cfg.ndisks; i++) {
            bool iso = pass == 1;
            if (iso ? !sp_vm_ovf_cd_image(vm, i) : !sp_vm_ovf_carries(vm, i))
                continue;
            int rc = plan_disk(j, in, nin, i, iso, err);
            if (rc != SP_OK)
                return rc;
            if (iso)
                break; /* one CD drive (ovf_map.c) */
        }
    return SP_OK;
}

/* ---- a disk read forward once, its data counted ---------------------------- */

struct counted {
    struct sp_disk d;                  /* first: the disk is the struct */
    struct sp_disk *inner;
    uint64_t data;
};

static int counted_next(struct sp_disk *d, uint64_t off, struct sp_extent *ext, struct sp_error *err)
{
    return sp_disk_next_extent(((struct counted *)d)->inner, off, ext, err);
}

static int counted_read(struct sp_disk *d, uint64_t off, void *buf, size_t len, struct sp_error *err)
{
    struct counted *c = (struct counted *)d;
    c->data += len;
    return sp_disk_read(c->inner, off, buf, len, err);
}

static void counted_close(struct sp_disk *d) { (void)d; }

static const struct sp_disk_ops COUNTED_OPS = {
    .next_extent = counted_next,
    .read = counted_read,
    .close = counted_close,
};

/* ---- the VMDKs ----------------------------------------------------------- */

struct vmdk_sink {
    struct sp_digest *dg;
    int spool;
    uint64_t n;
    struct sp_writeback wb;            /* off: the spool is never synced */
};

static int vmdk_out(void *ctx, const void *buf, size_t len, struct sp_error *err)
{
    struct vmdk_sink *k = ctx;
    int rc = sp_digest_update(k->dg, buf, len, err);
    for (const uint8_t *p = buf; rc == SP_OK && len > 0;) {
        ssize_t n = sp_write_out(k->spool, p, len, &k->wb, &k->n);
        if (n < 0)
            return sp_error_errno(err, errno, "spool file");
        p += n;
        len -= (size_t)n;
    }
    return rc;
}

/* An unlinked file in dir (O_TMPFILE, else a named one removed at once). */
static int open_spool(const char *dir, int *fd, struct sp_error *err)
{
    *fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (*fd >= 0)
        return SP_OK;
    char path[4096];
    snprintf(path, sizeof path, "%s/.snapport-spool-XXXXXX", dir);
    *fd = mkstemp(path);
    if (*fd < 0)
        return sp_error_errno(err, errno, "spool file in %s", dir);
    unlink(path);
    return SP_OK;
}

static void pass_update(void *ctx, uint64_t done, uint64_t total)
{
    (void)total;
    struct ova_job *j = ctx;
    const struct sp_progress *up = j->o.prog;
    if (up && up->update)
        up->update(up->ctx, j->done + done, j->grand);
}

/* A disk's spool (beside the output, else in TMPDIR), k writing into it. */
static int disk_spool(struct ova_job *j, struct ova_disk *d, struct vmdk_sink *k, struct sp_error *err)
{
    const char *tmp = getenv("TMPDIR");
    const char *dir = j->o.spool_dir ? j->o.spool_dir : tmp && *tmp ? tmp : "/tmp";
    int rc = open_spool(dir, &d->spool, err);
    k->spool = d->spool;
    return rc;
}

/* One pass over one disk: its VMDK into its spool, digested. A disk read
 * forward once (forward_only) gets no progress hook (which walks the disk
 * first for its total); its data is counted as it is read. */
static int vmdk_pass(struct ova_job *j, struct ova_disk *d, struct sp_disk *disk, struct sp_error *err)
{
    struct vmdk_sink k = {NULL, -1, 0, {-1, 0, 0}};
    int rc = disk_spool(j, d, &k, err);
    if (rc != SP_OK)
        return rc;
    bool once = j->o.forward_only;
    struct counted c = {{&COUNTED_OPS, disk->size, disk->path, NULL}, disk, 0};
    rc = sp_digest_new(1u << j->o.mf_digest, &k.dg, err);
    struct sp_vmdk_write_opts vo = {
        .threads = 0,
        .level = j->o.level ? j->o.level : SP_VMDK_EXPORT_LEVEL,
        .adapter = j->ide ? "ide" : "lsilogic",
        .name = d->member,
        .data_bytes = once ? NULL : &d->data_bytes, /* counted when the disk was opened */
    };
    struct sp_progress prog = {pass_update, j};
    uint64_t total = 0;
    if (rc == SP_OK)
        rc = sp_vmdk_write_stream(once ? &c.d : disk, &vo, vmdk_out, &k, once ? NULL : &prog, &total, err);
    if (rc == SP_OK)
        rc = sp_digest_final(k.dg, j->o.mf_digest, d->hex, err);
    sp_digest_free(k.dg);
    if (once)
        d->data_bytes = c.data;
    j->done += d->data_bytes;
    d->size = k.n;
    return rc != SP_OK ? sp_error_prefix(err, "%s", d->member) : SP_OK;
}

/* The CD's image: its bytes as they are (the VDI's virtual size), into its
 * spool, digested. */
static int iso_pass(struct ova_job *j, struct ova_disk *d, struct sp_disk *disk, struct sp_error *err)
{
    struct vmdk_sink k = {NULL, -1, 0, {-1, 0, 0}};
    int rc = disk_spool(j, d, &k, err);
    if (rc != SP_OK)
        return rc;
    uint8_t *buf = sp_alloc(SPOOL_CHUNK, err);
    rc = buf ? sp_digest_new(1u << j->o.mf_digest, &k.dg, err) : SP_ENOMEM;
    for (uint64_t off = 0; rc == SP_OK && off < disk->size;) {
        size_t n = (size_t)sp_min_u64(SPOOL_CHUNK, disk->size - off);
        rc = sp_disk_read(disk, off, buf, n, err);
        if (rc == SP_OK)
            rc = vmdk_out(&k, buf, n, err);
        off += n;
    }
    if (rc == SP_OK)
        rc = sp_digest_final(k.dg, j->o.mf_digest, d->hex, err);
    sp_digest_free(k.dg);
    free(buf);
    j->done += d->data_bytes;
    d->size = k.n;
    return rc != SP_OK ? sp_error_prefix(err, "%s", d->member) : SP_OK;
}

/* ---- the descriptor, manifest and certificate ---------------------------- */

/* The descriptor's model: the VM's, with the spooled VMDKs as its files. */
static int build_system(struct ova_job *j, struct sp_ovf_system *sys, struct sp_error *err)
{
    struct sp_ovf_map_file *files = sp_zalloc(sizeof *files * (size_t)(j->ndisks + 1), err);
    if (!files)
        return SP_ENOMEM;
    for (int i = 0; i < j->ndisks; i++)
        files[i] = (struct sp_ovf_map_file){j->disks[i].member, j->disks[i].size, j->disks[i].capacity,
                                            j->disks[i].data_bytes};
    int rc = sp_vm_to_ovf(j->vm, j->vm_name, j->o.ovf_version, files, j->ndisks, sys, err);
    free(files);
    return rc;
}

static int digest_of(enum sp_digest_kind k, const void *buf, size_t len, char hex[SP_DIGEST_HEX_MAX],
                     struct sp_error *err)
{
    struct sp_digest *d = NULL;
    int rc = sp_digest_new(1u << k, &d, err);
    if (rc == SP_OK)
        rc = sp_digest_update(d, buf, len, err);
    if (rc == SP_OK)
        rc = sp_digest_final(d, k, hex, err);
    sp_digest_free(d);
    return rc;
}

static int build_manifest(struct ova_job *j, const char *ovf_name, const char *ovf, size_t ovf_len, char **mf,
                          size_t *mf_len, struct sp_error *err)
{
    struct sp_manifest m = {sp_zalloc(sizeof *m.e * (size_t)(j->ndisks + 1), err), 0};
    if (!m.e)
        return SP_ENOMEM;
    struct sp_manifest_entry *e = &m.e[m.n++];
    e->kind = j->o.mf_digest;
    snprintf(e->name, sizeof e->name, "%s", ovf_name);
    int rc = digest_of(e->kind, ovf, ovf_len, e->hex, err);
    for (int i = 0; rc == SP_OK && i < j->ndisks; i++) {
        e = &m.e[m.n++];
        e->kind = j->o.mf_digest;
        snprintf(e->name, sizeof e->name, "%s", j->disks[i].member);
        snprintf(e->hex, sizeof e->hex, "%s", j->disks[i].hex);
    }
    if (rc == SP_OK)
        rc = sp_manifest_format(&m, mf, mf_len, err);
    free(m.e);
    return rc;
}

/* ---- the archive --------------------------------------------------------- */

/* The spooled VMDKs into their members. */
static int write_disks(struct ova_job *j, struct sp_ova_writer *w, struct sp_error *err)
{
    uint8_t *buf = sp_alloc(SPOOL_CHUNK, err);
    if (!buf)
        return SP_ENOMEM;
    int rc = SP_OK;
    for (int i = 0; rc == SP_OK && i < j->ndisks; i++) {
        struct ova_disk *d = &j->disks[i];
        rc = sp_ova_begin(w, d->member, d->size, err);
        for (uint64_t off = 0; rc == SP_OK && off < d->size;) {
            size_t n = (size_t)sp_min_u64(SPOOL_CHUNK, d->size - off);
            rc = sp_pread_full(d->spool, buf, n, off, "spool file", err);
            if (rc == SP_OK)
                rc = sp_ova_write(w, buf, n, err);
            off += n;
        }
        if (rc == SP_OK)
            posix_fadvise(d->spool, 0, 0, POSIX_FADV_DONTNEED);
    }
    free(buf);
    return rc;
}

static int write_package(struct ova_job *j, struct sp_error *err)
{
    struct sp_ovf_system sys;
    char *ovf = NULL, *mf = NULL, *cert = NULL;
    size_t ovf_len = 0, mf_len = 0, cert_len = 0;
    char ovf_name[SP_OVA_NAME_MAX + 1], mf_name[SP_OVA_NAME_MAX + 1], cert_name[SP_OVA_NAME_MAX + 1];
    snprintf(ovf_name, sizeof ovf_name, "%s.ovf", j->base);
    snprintf(mf_name, sizeof mf_name, "%s.mf", j->base);
    snprintf(cert_name, sizeof cert_name, "%s.cert", j->base);
    struct sp_ova_writer *w = NULL;
    int rc = build_system(j, &sys, err);
    if (rc == SP_OK)
        rc = sp_ovf_write(&sys, &ovf, &ovf_len, err);
    if (rc == SP_OK)
        rc = build_manifest(j, ovf_name, ovf, ovf_len, &mf, &mf_len, err);
    if (rc == SP_OK && j->o.sign_key)
        rc = sp_cert_sign(j->o.sign_key, j->o.sign_cert, j->o.mf_digest, mf_name, mf, mf_len, &cert, &cert_len,
                          err);
    if (rc == SP_OK)
        rc = sp_ova_writer_open(j->fd, j->o.mtime, &w, err);
    if (rc == SP_OK)
        rc = sp_ova_write_member(w, ovf_name, ovf, ovf_len, err);
    if (rc == SP_OK)
        rc = sp_ova_write_member(w, mf_name, mf, mf_len, err);
    if (rc == SP_OK && cert)
        rc = sp_ova_write_member(w, cert_name, cert, cert_len, err);
    if (rc == SP_OK)
        rc = write_disks(j, w, err);
    if (rc == SP_OK)
        rc = sp_ova_writer_close(w, err);
    sp_ova_writer_free(w);
    free(cert);
    free(mf);
    free(ovf);
    sp_ovf_free(&sys);
    return rc;
}

/* ---- the writer ---------------------------------------------------------------- */

/* What begin's disks and the VM have that the OVA does not carry. */
static void note_left_out(const struct ova_job *j, const struct sp_archive_disk *in, struct sp_notes *notes)
{
    for (int k = 0; k < j->nin; k++) {
        if (j->of[k] >= 0)
            continue;
        if (in[k].memory)
            sp_note(notes, "an OVA does not carry the memory image: the VM imports halted, not suspended");
        else
            sp_note(notes, "VDI %s is no disk's and not the CD's image: the OVA leaves it out", in[k].id);
    }
    sp_vm_ovf_notes(j->vm, notes);
}

static int ova_begin(struct sp_archive_writer *w, const struct sp_vm *vm, const char *vm_name,
                     const struct sp_archive_disk *disks, int n, const struct sp_archive_write_opts *o, int fd,
                     struct sp_error *err)
{
    struct ova_job *j = sp_zalloc(sizeof *j, err);
    if (!j)
        return SP_ENOMEM;
    w->priv = j;
    j->vm = vm;
    j->vm_name = vm_name;
    j->o = *o;
    j->fd = fd;
    member_base(vm_name, j->base, sizeof j->base);
    int rc = plan_disks(j, disks, n, err);
    if (rc == SP_OK)
        note_left_out(j, disks, o->notes);
    return rc;
}

static bool ova_carries(const struct sp_archive_writer *w, int k)
{
    const struct ova_job *j = w->priv;
    return k >= 0 && k < j->nin && j->of[k] >= 0;
}

/* Any order: each disk waits in its spool. */
static int ova_add_disk(struct sp_archive_writer *w, int k, struct sp_disk *disk, struct sp_error *err)
{
    struct ova_job *j = w->priv;
    if (!ova_carries(w, k))
        return sp_error_set(err, SP_EINVAL, "ova: disk %d is not carried", k);
    struct ova_disk *d = &j->disks[j->of[k]];
    if (d->added)
        return sp_error_set(err, SP_EINVAL, "%s: given twice", d->member);
    d->added = true;
    return d->iso ? iso_pass(j, d, disk, err) : vmdk_pass(j, d, disk, err);
}

static int ova_finish(struct sp_archive_writer *w, struct sp_error *err)
{
    struct ova_job *j = w->priv;
    for (int i = 0; i < j->ndisks; i++)
        if (!j->disks[i].added)
            return sp_error_set(err, SP_EINVAL, "%s: its disk never came", j->disks[i].member);
    return write_package(j, err);
}

static void ova_free(struct sp_archive_writer *w)
{
    struct ova_job *j = w->priv;
    for (int i = 0; i < j->ndisks; i++)
        if (j->disks[i].spool >= 0)
            close(j->disks[i].spool);
    free(j->disks);
    free(j->of);
    free(j);
    w->priv = NULL;
}

static const char *const OVA_EXTENSIONS[] = {"ova", NULL};

const struct sp_archive_write_format sp_archive_ova_writer = {
    .name = "ova",
    .extensions = OVA_EXTENSIONS,
    .data_bytes_first = true,
    .begin = ova_begin,
    .carries = ova_carries,
    .add_disk = ova_add_disk,
    .finish = ova_finish,
    .free = ova_free,
};
