/* Archive to archive, XVA <-> OVA, without a store and without a raw copy
 * of a disk anywhere: each disk streams from the input's reader (which pushes
 * blocks or grains) into the output's writer (which pulls extents) through
 * a bounded queue (disk/pushdisk.h), the two sides in two threads.
 *
 * OVA -> XVA: one pass. The .ovf gives the VM (sp_vm_from_ovf) and so
 * ova.xml (sp_export_xva_meta, VDI sizes the OVF capacities); then, as each
 * disk's member goes by, the XVA writer runs in a thread on what the VMDK
 * (or raw, gzip ...) decoder pushes. The manifest and certificate are
 * checked at the end as import does: a failure there fails the whole
 * conversion, and the caller drops the output.
 *
 * XVA -> OVA: the OVA writer (exporter/ova_export.c) takes the disks in
 * the VM's disk order, each once (into its spool of compressed VMDK, as an
 * export does); for each, the XVA reader runs in a thread on the disk's
 * blocks while the VMDK writer pulls them. The XVA is read once when its
 * VDIs stream in that order (a pipe will do); a VM whose disk order is not
 * the stream's makes the reader start again from the top, which needs a
 * file. The VDIs the OVA does not carry (a suspended VM's memory image, a
 * CD's) are still read and checked. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "exporter/export.h"
#include "base/instream.h"
#include "disk/pushdisk.h"
#include "base/util.h"
#include "base/uuid.h"
#include "archive/xva_xml.h"
#include "importer/import.h"
#include "vm/ovf_map.h"
#include "vm/xva_map.h"

/* The status of one disk streamed between two threads: the side that gave
 * up first tells why (the other side's error only follows from it). prc
 * and perr: the producer's (the reader), crc and cerr: the consumer's. */
static int pair_status(struct sp_pushdisk *pd, int prc, const struct sp_error *perr, int crc,
                       const struct sp_error *cerr, struct sp_error *err)
{
    const struct sp_error *why = NULL;
    int rc = SP_OK;
    if (crc != SP_OK && (prc == SP_OK || sp_pushdisk_consumer_failed_first(pd))) {
        why = cerr;
        rc = crc;
    } else if (prc != SP_OK) {
        why = perr;
        rc = prc;
    }
    if (why && why != err)
        *err = *why;
    return rc;
}

/* The time the output's members carry: the input file's, else now. */
static int64_t input_mtime(int fd)
{
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        return (int64_t)st.st_mtime;
    return (int64_t)time(NULL);
}

/* ==== OVA -> XVA ============================================================= */

struct to_xva {
    const struct sp_ovf_system *sys;
    struct sp_xva_meta meta;
    int *vdi_of;                      /* per OVF disk: its index in meta.vdis (= the write order) */
    int next;                         /* the next VDI to write */
    struct sp_xva_writer *w;
    /* the disk being written: the XVA writer in a thread */
    struct sp_pushdisk *pd;
    pthread_t tid;
    int wrc;
    struct sp_error werr;
};

static void *xva_disk_main(void *p)
{
    struct to_xva *x = p;
    const struct sp_xva_vdi *v = &x->meta.vdis[x->next];
    x->wrc = sp_xva_write_disk(x->w, v->id, sp_pushdisk_disk(x->pd), NULL, &x->werr);
    if (x->wrc != SP_OK)
        sp_pushdisk_abort(x->pd);
    return NULL;
}

static int xva_disk_begin(void *ctx, int disk, struct sp_disk **target, struct sp_error *err)
{
    struct to_xva *x = ctx;
    int k = x->vdi_of[disk];
    if (k != x->next)
        return sp_error_set(err, SP_EUNSUPPORTED,
                            "disk %s: its file comes out of References order (an XVA is written in one pass)",
                            x->sys->disks[disk].disk_id);
    int rc = sp_pushdisk_new(x->meta.vdis[k].virtual_size, x->sys->disks[disk].disk_id, &x->pd, err);
    if (rc != SP_OK)
        return rc;
    x->wrc = SP_OK;
    int e = pthread_create(&x->tid, NULL, xva_disk_main, x);
    if (e != 0) {
        sp_pushdisk_free(x->pd);
        x->pd = NULL;
        return sp_error_errno(err, e, "cannot start a writer thread");
    }
    *target = sp_pushdisk_input(x->pd);
    return SP_OK;
}

static int xva_disk_end(void *ctx, int disk, int rc, struct sp_error *err)
{
    struct to_xva *x = ctx;
    (void)disk;
    sp_pushdisk_finish(x->pd, rc == SP_OK);
    pthread_join(x->tid, NULL);
    rc = pair_status(x->pd, rc, err, x->wrc, &x->werr, err);
    sp_pushdisk_free(x->pd);
    x->pd = NULL;
    x->next++;
    return rc;
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const struct sp_xva_vdi *)a)->id, ((const struct sp_xva_vdi *)b)->id);
}

/* The order the disks come in: their files' order in References, disks
 * without a file last. */
static int file_rank(const struct sp_ovf_system *sys, int disk)
{
    const struct sp_ovf_file *f = sys->disks[disk].file_id[0] ? sp_ovf_find_file(sys, sys->disks[disk].file_id) : NULL;
    return f ? (int)(f - sys->files) : sys->nfiles + disk;
}

/* ova.xml for the OVF: the VM as import would make it, then the VDI ids
 * renumbered so that their order (the stream's) is the files' order. */
static int xva_meta(struct to_xva *x, struct sp_error *err)
{
    const struct sp_ovf_system *sys = x->sys;
    int n = sys->ndisks;
    char (*nv)[SP_UUID_STR] = sp_zalloc(sizeof *nv * (size_t)(n + 1), err);
    int *rank = sp_zalloc(sizeof *rank * (size_t)(n + 1), err);
    char (*ids)[SP_XVA_ID_MAX] = sp_zalloc(sizeof *ids * (size_t)(n + 1), err);
    x->vdi_of = sp_zalloc(sizeof *x->vdi_of * (size_t)(n + 1), err);
    struct sp_vm vm;
    memset(&vm, 0, sizeof vm);
    int rc = nv && rank && ids && x->vdi_of ? SP_OK : SP_ENOMEM;
    for (int i = 0; rc == SP_OK && i < n; i++)
        rc = sp_uuid_generate_str(nv[i], err);
    if (rc == SP_OK)
        rc = sp_vm_from_ovf(sys, NULL, (const char(*)[SP_UUID_STR])nv, &vm, err);
    if (rc == SP_OK)
        rc = sp_uuid_generate_str(vm.uuid, err);
    vm.created = (int64_t)time(NULL);
    if (rc == SP_OK)
        rc = sp_vm_to_xva_meta(&vm, vm.cfg.name, &x->meta, err);
    struct sp_xva_meta *m = &x->meta;
    if (rc == SP_OK && m->nvdis != n)
        rc = sp_error_set(err, SP_EINVAL, "ovf: %d disks became %d VDIs", n, m->nvdis);
    /* rank[i]: how many disks come before disk i */
    for (int i = 0; rc == SP_OK && i < n; i++)
        for (int k = 0; k < n; k++)
            rank[i] += file_rank(sys, k) < file_rank(sys, i);
    int *vbd_vdi = rc == SP_OK ? sp_zalloc(sizeof *vbd_vdi * (size_t)(m->nvbds + 1), err) : NULL;
    if (rc == SP_OK && !vbd_vdi)
        rc = SP_ENOMEM;
    for (int b = 0; rc == SP_OK && b < m->nvbds; b++) {
        vbd_vdi[b] = -1;
        for (int k = 0; k < m->nvdis; k++)
            if (strcmp(m->vbds[b].vdi_id, m->vdis[k].id) == 0)
                vbd_vdi[b] = k;
    }
    for (int k = 0; rc == SP_OK && k < m->nvdis; k++) {
        int i = 0;
        while (i < n && strcmp(nv[i], m->vdis[k].uuid) != 0)
            i++;
        if (i == n) {
            rc = sp_error_set(err, SP_EINVAL, "ovf: VDI %s has no disk", m->vdis[k].uuid);
            break;
        }
        m->vdis[k].virtual_size = sys->disks[i].capacity;
        /* fixed width: strcmp order is the write order */
        snprintf(ids[k], sizeof ids[k], n > 100 ? "Ref:%03d" : "Ref:%02d", rank[i]);
    }
    for (int b = 0; rc == SP_OK && b < m->nvbds; b++)
        if (vbd_vdi[b] >= 0)
            snprintf(m->vbds[b].vdi_id, sizeof m->vbds[b].vdi_id, "%s", ids[vbd_vdi[b]]);
    for (int k = 0; rc == SP_OK && k < m->nvdis; k++)
        snprintf(m->vdis[k].id, sizeof m->vdis[k].id, "%s", ids[k]);
    free(vbd_vdi);
    if (rc == SP_OK)
        qsort(m->vdis, (size_t)m->nvdis, sizeof *m->vdis, by_id);
    for (int i = 0; rc == SP_OK && i < n; i++)
        for (int k = 0; k < m->nvdis; k++)
            if (strcmp(m->vdis[k].uuid, nv[i]) == 0)
                x->vdi_of[i] = k;
    sp_vm_free(&vm);
    free(ids);
    free(rank);
    free(nv);
    return rc;
}

/* The disks whose bytes did not come from a member: zeros. */
static int xva_rest(struct to_xva *x, struct sp_error *err)
{
    int rc = SP_OK;
    for (; rc == SP_OK && x->next < x->meta.nvdis; x->next++) {
        struct sp_pushdisk *pd = NULL;
        rc = sp_pushdisk_new(x->meta.vdis[x->next].virtual_size, x->meta.vdis[x->next].name, &pd, err);
        if (rc == SP_OK) {
            sp_pushdisk_finish(pd, true);
            rc = sp_xva_write_disk(x->w, x->meta.vdis[x->next].id, sp_pushdisk_disk(pd), NULL, err);
        }
        sp_pushdisk_free(pd);
    }
    return rc;
}

static int ova_to_xva(struct sp_instream *in, const char *path, const char *label, bool dir,
                      const struct sp_convert_opts *o, int fd, struct sp_error *err)
{
    struct to_xva x;
    memset(&x, 0, sizeof x);
    struct sp_ova_source *src = NULL;
    char *xml = NULL;
    size_t len = 0;
    int rc = sp_ova_source_open(dir ? NULL : in, path, label, o->prog, &src, err);
    if (rc == SP_OK) {
        x.sys = sp_ova_source_system(src);
        rc = xva_meta(&x, err);
        if (rc != SP_OK)
            sp_error_prefix(err, "%s", label);
    }
    if (rc == SP_OK)
        rc = sp_xva_xml_write(&x.meta, &xml, &len, err);
    if (rc == SP_OK)
        rc = sp_xva_writer_open(fd, SP_XVA_PLAIN, SP_XVA_XXHASH, input_mtime(dir ? -1 : in->fd), &x.w, err);
    if (rc == SP_OK)
        rc = sp_xva_write_xml(x.w, xml, len, err);
    struct sp_ova_disk_hooks hooks = {xva_disk_begin, xva_disk_end, &x};
    if (rc == SP_OK)
        rc = sp_ova_source_read(src, &hooks, err);
    if (rc == SP_OK)
        rc = xva_rest(&x, err);
    if (rc == SP_OK)
        rc = sp_xva_writer_close(x.w, err);
    sp_xva_writer_free(x.w);
    free(xml);
    free(x.vdi_of);
    sp_xva_meta_free(&x.meta);
    sp_ova_source_free(src);
    return rc;
}

/* ==== XVA -> OVA ============================================================= */

struct to_ova {
    int fd;                           /* the input */
    const char *label;
    struct sp_xva_meta meta;
    char *xml;                        /* ova.xml of the first reading: later ones must match */
    size_t xml_len;
    /* the reader and the VDI it gives next; own: its stream when it read again */
    struct sp_xva_reader *r;
    int next;
    struct sp_instream own;
    bool own_open;
    /* the disk being read: the XVA reader in a thread */
    struct sp_pushdisk *pd;
    pthread_t tid;
    int k;
    int prc;
    struct sp_error perr;
    /* progress: the carried disks' virtual sizes */
    const struct sp_progress *up;
    struct sp_progress prog;
    uint64_t base, total;
};

static void ova_update(void *ctx, uint64_t done, uint64_t total)
{
    (void)total;
    struct to_ova *x = ctx;
    if (x->up && x->up->update)
        x->up->update(x->up->ctx, x->base + done, x->total);
}

static void reader_close(struct to_ova *x)
{
    sp_xva_reader_free(x->r);
    x->r = NULL;
    if (x->own_open)
        sp_instream_free(&x->own);
    x->own_open = false;
}

/* A new reading from the top of the input (a file). */
static int reader_again(struct to_ova *x, struct sp_error *err)
{
    reader_close(x);
    if (lseek(x->fd, 0, SEEK_SET) != 0)
        return sp_error_set(err, SP_EINVAL, "%s: convert to OVA needs a file to read again (the VM's disks are not "
                            "in the archive's order)", x->label);
    memset(&x->own, 0, sizeof x->own);
    int rc = sp_instream_init(&x->own, x->fd, x->label, err);
    x->own_open = rc == SP_OK;
    if (rc == SP_OK)
        rc = sp_xva_reader_open_in(&x->own, x->label, &x->r, err);
    size_t len = 0;
    const char *xml = rc == SP_OK ? sp_xva_reader_xml(x->r, &len) : NULL;
    if (rc == SP_OK && (len != x->xml_len || memcmp(xml, x->xml, len) != 0))
        rc = sp_error_set(err, SP_EIO, "%s: the file changed while it was converted (ova.xml differs)", x->label);
    x->next = 0;
    return rc;
}

/* Makes the reader's next VDI k: reads (and checks) the VDIs before it,
 * starting again from the top when k went by. */
static int reader_seek(struct to_ova *x, int k, struct sp_error *err)
{
    int rc = SP_OK;
    if (!x->r || x->next > k)
        rc = reader_again(x, err);
    for (; rc == SP_OK && x->next < k; x->next++) {
        const struct sp_xva_vdi *v = &x->meta.vdis[x->next];
        rc = sp_xva_read_disk(x->r, v->id, v->virtual_size, NULL, NULL, NULL, NULL, err);
    }
    return rc;
}

static int vdi_index(const struct to_ova *x, const char *vdi, struct sp_error *err)
{
    char *end;
    long k = strtol(vdi, &end, 10);
    if (*end || k < 0 || k >= x->meta.nvdis)
        return sp_error_set(err, SP_EINVAL, "convert: no VDI '%s'", vdi);
    return (int)k;
}

static int ova_capacity(void *ctx, const char *vdi, uint64_t *size, struct sp_error *err)
{
    struct to_ova *x = ctx;
    int k = vdi_index(x, vdi, err);
    if (k < 0)
        return k;
    *size = x->meta.vdis[k].virtual_size;
    x->total += *size;
    return SP_OK;
}

static int push_block(void *ctx, uint64_t off, const void *data, size_t len)
{
    struct to_ova *x = ctx;
    return sp_pushdisk_push(x->pd, off, data, len, &x->perr);
}

static void *xva_read_main(void *p)
{
    struct to_ova *x = p;
    const struct sp_xva_vdi *v = &x->meta.vdis[x->k];
    x->prc = sp_xva_read_disk(x->r, v->id, v->virtual_size, push_block, x, NULL, &x->prog, &x->perr);
    sp_pushdisk_finish(x->pd, x->prc == SP_OK);
    return NULL;
}

static int ova_open(void *ctx, const char *vdi, struct sp_disk **disk, struct sp_error *err)
{
    struct to_ova *x = ctx;
    int k = vdi_index(x, vdi, err);
    if (k < 0)
        return k;
    int rc = reader_seek(x, k, err);
    if (rc == SP_OK)
        rc = sp_pushdisk_new(x->meta.vdis[k].virtual_size, x->meta.vdis[k].id, &x->pd, err);
    if (rc != SP_OK)
        return rc;
    x->k = k;
    x->prc = SP_OK;
    x->next = k + 1;
    int e = pthread_create(&x->tid, NULL, xva_read_main, x);
    if (e != 0) {
        sp_pushdisk_free(x->pd);
        x->pd = NULL;
        reader_close(x); /* its position is lost */
        return sp_error_errno(err, e, "cannot start a reader thread");
    }
    *disk = sp_pushdisk_disk(x->pd);
    return SP_OK;
}

static int ova_close(void *ctx, const char *vdi, int rc, uint64_t *data_bytes, struct sp_error *err)
{
    struct to_ova *x = ctx;
    (void)vdi;
    if (rc != SP_OK)
        sp_pushdisk_abort(x->pd);
    pthread_join(x->tid, NULL);
    *data_bytes = sp_pushdisk_data_bytes(x->pd);
    rc = pair_status(x->pd, x->prc, &x->perr, rc, err, err);
    sp_pushdisk_free(x->pd);
    x->pd = NULL;
    x->base += x->meta.vdis[x->k].virtual_size;
    if (rc != SP_OK)
        reader_close(x); /* its position is lost */
    return rc;
}

static int xva_to_ova(struct sp_instream *in, const char *label, const struct sp_convert_opts *o, int fd,
                      struct sp_convert_result *res, struct sp_error *err)
{
    struct to_ova x;
    memset(&x, 0, sizeof x);
    x.fd = in->fd;
    x.label = label;
    x.up = o->prog;
    x.prog = (struct sp_progress){ova_update, &x};
    struct sp_vm vm;
    memset(&vm, 0, sizeof vm);
    char (*nv)[SP_UUID_STR] = NULL;
    int rc = sp_xva_reader_open_in(in, label, &x.r, err);
    if (rc == SP_OK) {
        size_t len = 0;
        const char *xml = sp_xva_reader_xml(x.r, &len);
        x.xml = sp_alloc(len + 1, err);
        if (!x.xml)
            rc = SP_ENOMEM;
        else
            memcpy(x.xml, xml, len);
        x.xml_len = len;
        if (rc == SP_OK && (rc = sp_xva_xml_parse(xml, len, &x.meta, err)) != SP_OK)
            sp_error_prefix(err, "%s", label);
    }
    if (rc == SP_OK && !(nv = sp_zalloc(sizeof *nv * (size_t)(x.meta.nvdis + 1), err)))
        rc = SP_ENOMEM;
    for (int k = 0; rc == SP_OK && k < x.meta.nvdis; k++)
        snprintf(nv[k], sizeof nv[k], "%d", k); /* the feed's key of the VDI */
    if (rc == SP_OK)
        rc = sp_vm_from_xva_meta(&x.meta, NULL, (const char(*)[SP_UUID_STR])nv, &vm, err);
    if (rc == SP_OK) {
        vm.snapshot_time = input_mtime(in->fd);
        res->memory_dropped = x.meta.vm.suspended;
        for (int k = 0; k < x.meta.nvdis; k++) {
            bool carried = false;
            for (int i = 0; i < vm.cfg.ndisks; i++)
                carried |= !vm.cfg.disks[i].cdrom && strcmp(vm.vbd_vdi[i], nv[k]) == 0;
            res->vdis_dropped += !carried;
        }
        struct sp_export_opts eo = {
            .format = SP_ARCHIVE_OVA,
            .mf_digest = SP_DIGEST_SHA256,
            .ovf_version = SP_OVF_1,
            .spool_dir = o->spool_dir,
        };
        struct sp_export_src src = {NULL, &vm, x.meta.vm.name};
        struct sp_ova_feed feed = {ova_capacity, ova_open, ova_close, &x};
        rc = sp_export_ova_write_feed(&src, &eo, &feed, fd, err);
    }
    /* the rest of the input read and checked: the VDIs the OVA does not
     * carry, the end */
    if (rc == SP_OK)
        rc = reader_seek(&x, x.meta.nvdis, err);
    if (rc == SP_OK)
        rc = sp_xva_reader_finish(x.r, err);
    reader_close(&x);
    sp_vm_free(&vm);
    free(nv);
    free(x.xml);
    sp_xva_meta_free(&x.meta);
    return rc;
}

/* ==== either ================================================================= */

int sp_convert(const char *path, const struct sp_convert_opts *o, int fd, struct sp_convert_result *res,
               struct sp_error *err)
{
    struct sp_convert_result scratch;
    if (!res)
        res = &scratch;
    memset(res, 0, sizeof *res);
    struct sp_instream in;
    memset(&in, 0, sizeof in);
    in.fd = -1;
    bool ova = false, dir = false;
    const char *label = path;
    int rc = sp_archive_input_open(path, NULL, &in, &ova, &dir, &label, err);
    if (rc != SP_OK)
        return rc;
    if (ova == (o->to == SP_ARCHIVE_OVA))
        rc = sp_error_set(err, SP_EINVAL, "%s: already an %s: nothing to convert", label, ova ? "OVA" : "XVA");
    else if (ova)
        rc = ova_to_xva(&in, path, label, dir, o, fd, err);
    else
        rc = xva_to_ova(&in, label, o, fd, res, err);
    sp_archive_input_close(&in, path, dir);
    return rc;
}
