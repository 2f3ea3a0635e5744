/* The VHD driver: the registry's entry for fixed, dynamic and differencing
 * VHDs. A VHD opens as its chain (chain.c); flatten writes a dynamic VHD. */
#include <stdio.h>
#include <string.h>

#include "disk/chain.h"
#include "disk/copy.h"
#include "disk/driver.h"
#include "disk/vhd.h"

#define VHD_COOKIE "conectix"
#define VHD_DYN_COOKIE "cxsparse"
#define VHD_COOKIE_LEN 8u

static bool has_at(const uint8_t *buf, size_t len, size_t at, const char *magic)
{
    return len >= at + VHD_COOKIE_LEN && memcmp(buf + at, magic, VHD_COOKIE_LEN) == 0;
}

/* The footer at the end; for dynamic disks its copy at 0; with both
 * damaged, a dynamic header where VHDs keep it: still a VHD (a damaged
 * one), not a raw disk to be read as garbage. */
static int vhd_probe(const struct sp_probe *p)
{
    if (p->tail_len == SP_VHD_FOOTER_SIZE && has_at(p->tail, p->tail_len, 0, VHD_COOKIE))
        return SP_PROBE_SURE;
    if (has_at(p->head, p->head_len, 0, VHD_COOKIE))
        return SP_PROBE_SURE;
    if (has_at(p->head, p->head_len, SP_VHD_FOOTER_SIZE, VHD_DYN_COOKIE))
        return SP_PROBE_WEAK;
    return SP_PROBE_NO;
}

static int vhd_open(const char *path, const struct sp_disk_open_opts *o, struct sp_disk **out, struct sp_error *err)
{
    if (o->standalone) {
        struct sp_vhd *v = NULL;
        int rc = sp_vhd_open_header(path, &v, err);
        if (rc == SP_OK && v->footer.disk_type == SP_VHD_DIFF)
            rc = sp_error_set(err, SP_EUNSUPPORTED, "a differencing VHD without its parent");
        sp_vhd_close(v);
        if (rc != SP_OK)
            return rc;
    }
    struct sp_chain *c;
    int rc = sp_chain_open(path, o->writable, &c, err);
    if (rc == SP_OK)
        *out = sp_chain_disk(c);
    return rc;
}

static void layer_of(struct sp_vhd *v, struct sp_disk_layer *l)
{
    memset(l, 0, sizeof *l);
    l->path = v->path;
    snprintf(l->variant, sizeof l->variant, "%s", sp_vhd_type_name(v->footer.disk_type));
    sp_uuid_format(v->footer.uuid, l->uuid);
    if (v->footer.disk_type == SP_VHD_DIFF)
        sp_uuid_format(v->header.parent_uuid, l->parent_uuid);
    l->virtual_size = v->footer.current_size;
    l->allocated = sp_vhd_allocated_bytes(v);
    snprintf(l->creator, sizeof l->creator, "%s", v->footer.creator_app);
    l->hidden = v->footer.hidden != 0;
    l->block_size = v->footer.disk_type == SP_VHD_FIXED ? 0 : v->block_size;
}

static int vhd_layers(struct sp_disk *d, struct sp_disk_layer *l, int max, int *n, struct sp_error *err)
{
    (void)err;
    struct sp_chain *c = sp_chain_from_disk(d);
    *n = 0;
    for (int i = 0; c && i < sp_chain_depth(c) && i < max; i++)
        layer_of(sp_chain_layer(c, i), &l[(*n)++]);
    return SP_OK;
}

struct layer_check {
    void (*problem)(void *ctx, const char *msg);
    void *ctx;
    const char *file;
};

static void layer_problem(void *p, const char *msg)
{
    struct layer_check *lc = p;
    char line[SP_ERROR_MAX + 256];
    snprintf(line, sizeof line, "%s: %s", lc->file, msg);
    lc->problem(lc->ctx, line);
}

/* Every layer's own checks (open has checked the links). */
static int vhd_check(struct sp_disk *d, void (*problem)(void *ctx, const char *msg), void *ctx,
                     struct sp_error *err)
{
    (void)err;
    struct sp_chain *c = sp_chain_from_disk(d);
    struct layer_check lc = {problem, ctx, NULL};
    for (int i = 0; i < sp_chain_depth(c); i++) {
        struct sp_vhd *v = sp_chain_layer(c, i);
        lc.file = v->path;
        struct sp_error e;
        sp_error_clear(&e);
        if (sp_vhd_check(v, layer_problem, &lc, &e) != SP_OK)
            problem(ctx, e.msg);
    }
    return SP_OK;
}

/* A dynamic VHD of src's content: src's block size when it is a dynamic
 * VHD chain, the virtual size rounded up to whole sectors. */
static int vhd_create_copy(int fd, struct sp_disk *src, const struct sp_disk_create_opts *o,
                           const struct sp_progress *prog, struct sp_error *err)
{
    struct sp_chain *sc = sp_chain_from_disk(src);
    struct sp_vhd_create_opts vo = {.size = sp_round_up_u64(src->size, SP_VHD_SECTOR), .type = SP_VHD_DYNAMIC,
                                    .block_size = o->block_size};
    if (!vo.block_size && sc && sp_chain_layer(sc, 0)->footer.disk_type != SP_VHD_FIXED)
        vo.block_size = sp_chain_layer(sc, 0)->block_size;
    int rc = sp_vhd_create_fd(fd, o->path, &vo, err);
    struct sp_chain *ch = NULL;
    if (rc == SP_OK)
        rc = sp_chain_open(o->tmp_path, true, &ch, err);
    if (rc != SP_OK)
        return rc;
    if (!o->durable)
        sp_writeback_init(&sp_chain_layer(ch, 0)->wb, -1);
    rc = sp_copy_disk(src, sp_chain_disk(ch), prog, err);
    sp_disk_close(sp_chain_disk(ch));
    return rc;
}

static const char *const VHD_EXTENSIONS[] = {"vhd", "vpc", NULL};

const struct sp_disk_driver sp_disk_driver_vhd = {
    .name = "vhd",
    .extensions = VHD_EXTENSIONS,
    .probe = vhd_probe,
    .open = vhd_open,
    .layers = vhd_layers,
    .check = vhd_check,
    .create_copy = vhd_create_copy,
};
