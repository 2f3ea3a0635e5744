/* XVA in the archive table: the reader (ova.xml -> the VM, then each VDI's
 * blocks, checksums checked) and the writer (the VM -> ova.xml, then each
 * disk's blocks). The tar and block details are xva_stream.c's, the VM
 * mapping vm/xva_map.c's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive.h"
#include "base/sniff.h"
#include "archive/xva_xml.h"
#include "base/util.h"
#include "disk/pushdisk.h"
#include "vm/xva_map.h"

/* VDI ids up to this many disks are two digits wide, then three. */
#define TWO_DIGIT_IDS 100

/* ==== reader ================================================================ */

struct xva_in {
    struct sp_xva_reader *x;
    struct sp_xva_meta meta;
    int next;                        /* the VDI the stream gives next (next_disk's answer) */
    int nread;                       /* VDIs read so far */
    bool *done;                      /* per VDI: read (or being read) */
    uint64_t *stored;                /* per VDI: bytes of blocks present */
};

static int bid(const struct sp_archive_bid *b)
{
    /* an unpacked OVF is not ours; anything else, the stream reader tells */
    if (b->unpacked)
        return SP_ARCHIVE_BID_NO;
    if (sp_sniff_tar(b->head, b->head_len) || sp_sniff_compressed(b->head, b->head_len))
        return SP_ARCHIVE_BID_LIKELY;
    return SP_ARCHIVE_BID_FALLBACK;
}

static int read_meta(struct sp_archive_reader *r, struct xva_in *x, struct sp_error *err)
{
    int rc = sp_xva_reader_open_in(r->in, r->label, &x->x, err);
    size_t len = 0;
    const char *xml = rc == SP_OK ? sp_xva_reader_xml(x->x, &len) : NULL;
    if (rc == SP_OK && (rc = sp_xva_xml_parse(xml, len, &x->meta, err)) != SP_OK)
        sp_error_prefix(err, "%s", r->label);
    return rc;
}

/* The VM, its disks named by new uuids. */
static int map_vm(struct sp_archive_reader *r, struct xva_in *x, struct sp_error *err)
{
    const struct sp_xva_meta *m = &x->meta;
    int rc = sp_archive_disks_new(m->nvdis, &r->disks, err);
    char (*uuids)[SP_UUID_STR] = rc == SP_OK ? sp_zalloc(sizeof *uuids * (size_t)(m->nvdis + 1), err) : NULL;
    if (rc == SP_OK && !uuids)
        rc = SP_ENOMEM;
    for (int k = 0; rc == SP_OK && k < m->nvdis; k++) {
        struct sp_archive_disk *d = &r->disks[k];
        snprintf(d->id, sizeof d->id, "%s", m->vdis[k].id);
        d->size = m->vdis[k].virtual_size;
        d->memory = strcmp(m->vdis[k].type, "suspend") == 0;
        snprintf(uuids[k], SP_UUID_STR, "%s", d->uuid);
    }
    r->ndisks = m->nvdis;
    if (rc == SP_OK)
        rc = sp_vm_from_xva_meta(m, NULL, (const char(*)[SP_UUID_STR])uuids, &r->vm, &r->notes, err);
    free(uuids);
    return rc;
}

static int xva_open(struct sp_archive_reader *r, struct sp_error *err)
{
    struct xva_in *x = sp_zalloc(sizeof *x, err);
    if (!x)
        return SP_ENOMEM;
    r->priv = x;
    int rc = read_meta(r, x, err);
    size_t n = (size_t)x->meta.nvdis + 1;
    if (rc == SP_OK && (!(x->stored = sp_zalloc(sizeof *x->stored * n, err)) ||
                        !(x->done = sp_zalloc(sizeof *x->done * n, err))))
        rc = SP_ENOMEM;
    if (rc == SP_OK)
        rc = map_vm(r, x, err);
    return rc;
}

/* The VDI the stream gives next: the unread one the next member's folder
 * names (an XVA's VDIs may come in any order, each one's blocks together;
 * XAPI sorts them by id, image builders need not). Anything else (the end,
 * a member of no unread VDI): the first unread VDI, whose read then says
 * what is wrong; -1 when all were read. */
static int xva_next_disk(struct sp_archive_reader *r, int *k, struct sp_error *err)
{
    struct xva_in *x = r->priv;
    *k = -1;
    if (x->nread >= x->meta.nvdis)
        return SP_OK;
    char id[SP_XVA_ID_MAX];
    int rc = sp_xva_reader_next_id(x->x, id, err);
    if (rc != SP_OK)
        return rc;
    for (int v = 0; v < x->meta.nvdis; v++)
        if (!x->done[v] && (*k < 0 || strcmp(x->meta.vdis[v].id, id) == 0))
            *k = v;
    x->next = *k;
    return SP_OK;
}

struct block_sink {
    struct sp_disk *disk;
    struct sp_error *err;
};

/* Blocks of zeros are not written: the target reads zeros already. */
static int write_block(void *ctx, uint64_t off, const void *data, size_t len)
{
    struct block_sink *k = ctx;
    if (sp_is_zero(data, len))
        return SP_OK;
    return sp_disk_write(k->disk, off, data, len, k->err);
}

static int xva_read_disk(struct sp_archive_reader *r, struct sp_disk *target, struct sp_error *err)
{
    struct xva_in *x = r->priv;
    int n = x->next;
    if (n < 0 || n >= x->meta.nvdis || x->done[n])
        return sp_error_set(err, SP_EINVAL, "%s: no more disks", r->label);
    const struct sp_xva_vdi *v = &x->meta.vdis[n];
    struct block_sink k = {target, err};
    x->done[n] = true;
    x->nread++;
    x->next = -1;
    return sp_xva_read_disk(x->x, v->id, v->virtual_size, target ? write_block : NULL, &k, &x->stored[n], r->prog,
                            err);
}

static int xva_finish(struct sp_archive_reader *r, struct sp_error *err)
{
    for (;;) {
        int k = -1;
        int rc = xva_next_disk(r, &k, err);
        if (rc == SP_OK && k >= 0)
            rc = xva_read_disk(r, NULL, err);
        if (rc != SP_OK)
            return rc;
        if (k < 0)
            return sp_xva_reader_finish(((struct xva_in *)r->priv)->x, err);
    }
}

static void xva_info(const struct sp_archive_reader *r, struct sp_archive_info *info)
{
    const struct xva_in *x = r->priv;
    const struct sp_xva_meta *m = &x->meta;
    snprintf(info->vm_name, sizeof info->vm_name, "%s", m->vm.name);
    info->hvm = m->vm.hvm;
    info->memory_bytes = m->vm.memory_dynamic_max;
    info->vcpus = m->vm.vcpus_at_startup;
    info->compress = sp_xva_reader_compress(x->x);
    info->digests = sp_xva_reader_digests(x->x);
    /* the VDIs read (whatever order they came in), in ova.xml's order */
    for (int k = 0; k < m->nvdis && info->ndisks < SP_ARCHIVE_INFO_DISKS; k++) {
        if (!x->done[k])
            continue;
        int i = info->ndisks++;
        snprintf(info->disks[i].id, sizeof info->disks[i].id, "%s", m->vdis[k].id);
        snprintf(info->disks[i].name, sizeof info->disks[i].name, "%s", m->vdis[k].name);
        snprintf(info->disks[i].type, sizeof info->disks[i].type, "%s", m->vdis[k].type);
        info->disks[i].virtual_size = m->vdis[k].virtual_size;
        info->disks[i].stored = x->stored[k];
    }
}

static void xva_in_free(struct sp_archive_reader *r)
{
    struct xva_in *x = r->priv;
    sp_xva_reader_free(x->x);
    sp_xva_meta_free(&x->meta);
    free(x->stored);
    free(x->done);
    free(x);
    r->priv = NULL;
}

const struct sp_archive_read_format sp_archive_xva_reader = {
    .name = "xva",
    .bid = bid,
    .open = xva_open,
    .next_disk = xva_next_disk,
    .read_disk = xva_read_disk,
    .finish = xva_finish,
    .info = xva_info,
    .free = xva_in_free,
};

/* ==== writer ================================================================ */

struct xva_out {
    struct sp_xva_writer *w;
    struct sp_xva_meta meta;
    int *vdi_of;                     /* per disk: its VDI in meta (the stream's order), -1: none */
    int ndisks;
    int written;                     /* VDIs written so far */
    const struct sp_progress *prog;  /* NULL: disks read forward once */
};

static int vdi_by_id(const struct sp_xva_meta *m, const char *id)
{
    for (int v = 0; v < m->nvdis; v++)
        if (strcmp(m->vdis[v].id, id) == 0)
            return v;
    return -1;
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const struct sp_xva_vdi *)a)->id, ((const struct sp_xva_vdi *)b)->id);
}

static void disk_id(int k, int n, char id[SP_XVA_ID_MAX])
{
    snprintf(id, SP_XVA_ID_MAX, n > TWO_DIGIT_IDS ? "Ref:%03d" : "Ref:%02d", k);
}

/* Each VDI's id from its disk's place (fixed width: the ids' strcmp order,
 * the stream's, is the order add_disk gets them), its size the disk's. */
static int renumber(struct xva_out *o, const struct sp_archive_disk *disks, int n, struct sp_error *err)
{
    struct sp_xva_meta *m = &o->meta;
    int *vbd_vdi = sp_zalloc(sizeof *vbd_vdi * (size_t)(m->nvbds + 1), err);
    if (!vbd_vdi)
        return SP_ENOMEM;
    for (int b = 0; b < m->nvbds; b++)
        vbd_vdi[b] = vdi_by_id(m, m->vbds[b].vdi_id);
    int suspend = m->vm.suspended ? vdi_by_id(m, m->vm.suspend_vdi_id) : -1;
    int rc = SP_OK;
    for (int v = 0; rc == SP_OK && v < m->nvdis; v++) {
        int k = sp_archive_disk_find(disks, n, m->vdis[v].uuid);
        if (k < 0)
            rc = sp_error_set(err, SP_EINVAL, "xva: VDI %s is not among the disks", m->vdis[v].uuid);
        else
            disk_id(k, n, m->vdis[v].id);
        m->vdis[v].virtual_size = k >= 0 ? disks[k].size : 0;
    }
    for (int b = 0; rc == SP_OK && b < m->nvbds; b++)
        if (vbd_vdi[b] >= 0)
            snprintf(m->vbds[b].vdi_id, sizeof m->vbds[b].vdi_id, "%s", m->vdis[vbd_vdi[b]].id);
    if (rc == SP_OK && suspend >= 0)
        snprintf(m->vm.suspend_vdi_id, sizeof m->vm.suspend_vdi_id, "%s", m->vdis[suspend].id);
    free(vbd_vdi);
    if (rc != SP_OK)
        return rc;
    if (m->nvdis > 1)
        qsort(m->vdis, (size_t)m->nvdis, sizeof *m->vdis, by_id);
    for (int k = 0; k < n; k++) {
        char id[SP_XVA_ID_MAX];
        disk_id(k, n, id);
        o->vdi_of[k] = vdi_by_id(m, id);
    }
    return SP_OK;
}

static int xva_begin(struct sp_archive_writer *w, const struct sp_vm *vm, const char *vm_name,
                     const struct sp_archive_disk *disks, int n, const struct sp_archive_write_opts *o, int fd,
                     struct sp_error *err)
{
    struct xva_out *x = sp_zalloc(sizeof *x, err);
    if (!x)
        return SP_ENOMEM;
    w->priv = x;
    x->ndisks = n;
    x->prog = o->forward_only ? NULL : o->prog;
    char *xml = NULL;
    size_t len = 0;
    int rc = (x->vdi_of = sp_zalloc(sizeof *x->vdi_of * (size_t)(n + 1), err)) ? SP_OK : SP_ENOMEM;
    if (rc == SP_OK)
        rc = sp_vm_to_xva_meta(vm, vm_name, &x->meta, err);
    if (rc == SP_OK)
        rc = renumber(x, disks, n, err);
    if (rc == SP_OK)
        rc = sp_xva_xml_write(&x->meta, &xml, &len, err);
    if (rc == SP_OK)
        rc = sp_xva_writer_open(fd, o->compress, o->level, o->digest, o->mtime, &x->w, err);
    if (rc == SP_OK)
        rc = sp_xva_write_xml(x->w, xml, len, err);
    free(xml);
    return rc;
}

static bool xva_carries(const struct sp_archive_writer *w, int k)
{
    const struct xva_out *x = w->priv;
    return k >= 0 && k < x->ndisks && x->vdi_of[k] >= 0;
}

static int xva_add_disk(struct sp_archive_writer *w, int k, struct sp_disk *disk, struct sp_error *err)
{
    struct xva_out *x = w->priv;
    if (!xva_carries(w, k))
        return sp_error_set(err, SP_EINVAL, "xva: disk %d is not the VM's", k);
    const struct sp_xva_vdi *v = &x->meta.vdis[x->vdi_of[k]];
    if (x->vdi_of[k] != x->written)
        return sp_error_set(err, SP_EUNSUPPORTED, "disk %s: comes out of order (an XVA is written in one pass)",
                            v->name);
    x->written++;
    return sp_xva_write_disk(x->w, v->id, disk, x->prog, err);
}

/* The VDIs whose bytes never came: zeros. */
static int write_rest(struct xva_out *x, struct sp_error *err)
{
    int rc = SP_OK;
    for (; rc == SP_OK && x->written < x->meta.nvdis; x->written++) {
        const struct sp_xva_vdi *v = &x->meta.vdis[x->written];
        struct sp_pushdisk *pd = NULL;
        rc = sp_pushdisk_new(v->virtual_size, v->name, &pd, err);
        if (rc == SP_OK) {
            sp_pushdisk_finish(pd, true);
            rc = sp_xva_write_disk(x->w, v->id, sp_pushdisk_disk(pd), NULL, err);
        }
        sp_pushdisk_free(pd);
    }
    return rc;
}

static int xva_finish_out(struct sp_archive_writer *w, struct sp_error *err)
{
    struct xva_out *x = w->priv;
    int rc = write_rest(x, err);
    return rc == SP_OK ? sp_xva_writer_close(x->w, err) : rc;
}

static void xva_out_free(struct sp_archive_writer *w)
{
    struct xva_out *x = w->priv;
    sp_xva_writer_free(x->w);
    sp_xva_meta_free(&x->meta);
    free(x->vdi_of);
    free(x);
    w->priv = NULL;
}

static const char *const XVA_EXTENSIONS[] = {"xva", NULL};

const struct sp_archive_write_format sp_archive_xva_writer = {
    .name = "xva",
    .extensions = XVA_EXTENSIONS,
    .begin = xva_begin,
    .carries = xva_carries,
    .add_disk = xva_add_disk,
    .finish = xva_finish_out,
    .free = xva_out_free,
};
