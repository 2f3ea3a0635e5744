/* snapport disk ...: images without a store. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli/cli.h"
#include "disk/chain.h"
#include "disk/copy.h"
#include "disk/registry.h"
#include "base/outfile.h"
#include "base/util.h"
#include "disk/vhd.h"

/* --- info ---------------------------------------------------------------- */

/* Files listed by info: every file of any disk we open. */
#define INFO_LAYERS_MAX SP_DISK_MAX_LAYERS

static void print_layer_text(int i, const struct sp_disk_layer *l)
{
    char sz[32];
    printf("  %-2d %-17s %-36s  allocated %-10s %s\n", i, l->variant, l->uuid[0] ? cli_shown(l->uuid) : "-",
           sp_format_size(l->allocated, sz, sizeof sz), cli_shown(l->path));
}

static void print_layer_json(const struct sp_disk_layer *l)
{
    json_begin_object(NULL);
    json_key_string("path", l->path);
    json_key_string("format", l->variant);
    json_key_string("uuid", l->uuid[0] ? l->uuid : NULL);
    json_key_string("parent_uuid", l->parent_uuid[0] ? l->parent_uuid : NULL);
    json_key_uint("virtual_size", l->virtual_size);
    json_key_uint("allocated", l->allocated);
    json_key_string("creator", l->creator[0] ? l->creator : NULL);
    json_key_bool("hidden", l->hidden);
    json_end_object();
}

static int print_info(struct cli *c, struct sp_disk *d, const struct sp_disk_layer *l, int n, uint64_t alloc)
{
    if (c->json) {
        json_key_string("path", d->path);
        json_key_string("driver", d->driver->name);
        json_key_string("format", l[0].variant);
        json_key_uint("virtual_size", d->size);
        json_key_uint("allocated", alloc);
        json_key_uint("block_size", l[0].block_size);
        json_key_uint("depth", (uint64_t)n);
        json_begin_array("chain");
        for (int i = 0; i < n; i++)
            print_layer_json(&l[i]);
        json_end_array();
        return EXIT_OK_;
    }
    char a[32], b[32], e[32];
    printf("image:        %s\nformat:       %s (%s)\nvirtual size: %s (%llu bytes)\n", d->path, d->driver->name,
           l[0].variant, sp_format_size(d->size, a, sizeof a), (unsigned long long)d->size);
    printf("allocated:    %s (%llu bytes)\n", sp_format_size(alloc, b, sizeof b), (unsigned long long)alloc);
    if (l[0].block_size)
        printf("block size:   %s\n", sp_format_size(l[0].block_size, e, sizeof e));
    bool extents = d->driver->layers_are_extents;
    printf(extents ? "extents:      %d\n" : "depth:        %d\n", n);
    if (n > 1 || l[0].uuid[0]) {
        printf(extents ? "extent files (in disk order):\n" : "chain (leaf first):\n");
        for (int i = 0; i < n; i++)
            print_layer_text(i, &l[i]);
    }
    return EXIT_OK_;
}

int cmd_disk_info(struct cli *c, const struct cli_args *a)
{
    const char *const *pos = a->pos;
    if (a->npos != 1)
        return cli_usage_error("disk info: needs IMAGE");
    int rc;
    struct sp_error err;
    struct sp_disk *d;
    if (sp_disk_open(pos[0], false, &d, &err) != SP_OK)
        return cli_fail(&err);
    struct sp_disk_layer *l = calloc(INFO_LAYERS_MAX, sizeof *l);
    int n = 0;
    uint64_t alloc = 0;
    rc = l ? sp_disk_layers(d, l, INFO_LAYERS_MAX, &n, &err) : sp_error_set(&err, SP_ENOMEM, "out of memory");
    if (rc == SP_OK)
        rc = sp_disk_data_bytes(d, &alloc, &err);
    rc = rc == SP_OK ? print_info(c, d, l, n, alloc) : cli_fail(&err);
    free(l);
    sp_disk_close(d);
    return rc;
}

/* --- check -------------------------------------------------------------- */

int cmd_disk_check(struct cli *c, const struct cli_args *a)
{
    const char *const *pos = a->pos;
    int rc;
    if (a->npos != 1)
        return cli_usage_error("disk check: needs IMAGE");
    struct sp_error err;
    struct cli_problems out = {c, ""};
    int count = 0;
    cli_problems_begin(c, pos[0]);
    rc = sp_disk_check(pos[0], cli_problem, &out, &count, &err);
    cli_problems_end(c);
    if (rc != SP_OK)
        return cli_fail(&err);
    if (count) {
        /* the finding names its file (this one or one below it) */
        sp_error_set(&err, SP_EFORMAT, "%s", out.first);
        sp_error_prefix(&err, "%s", pos[0]);
        cli_error("%s%s", err.msg, count > 1 ? " (and more, listed on stdout)" : "");
        return EXIT_DIFF;
    }
    cli_say(c, "%s: ok\n", pos[0]);
    return EXIT_OK_;
}

/* --- create ------------------------------------------------------------- */

int cmd_disk_create(struct cli *c, const struct cli_args *a)
{
    const char *size_s = cli_opt(a, "--size"), *parent = cli_opt(a, "--parent"), *bs_s = cli_opt(a, "--block-size");
    bool force = cli_flag(a, "--force");
    const char *const *pos = a->pos;
    int rc;
    if (a->npos != 1)
        return cli_usage_error("disk create: needs OUT.vhd");
    if (!size_s && !parent)
        return cli_usage_error("disk create: needs --size (or --parent)");
    struct sp_vhd_create_opts o = {.type = parent ? SP_VHD_DIFF : SP_VHD_DYNAMIC};
    uint64_t bs = 0;
    if (size_s && (rc = cli_parse_size("--size", size_s, &o.size)) != EXIT_OK_)
        return rc;
    if (bs_s && (rc = cli_parse_size("--block-size", bs_s, &bs)) != EXIT_OK_)
        return rc;
    if (bs > UINT32_MAX)
        return cli_usage_error("--block-size: too large");
    o.block_size = (uint32_t)bs;
    struct sp_error err;
    struct sp_chain *pchain = NULL;
    if (parent) {
        /* The whole parent chain must be sound before we build on it. */
        if (sp_chain_open(parent, false, &pchain, &err) != SP_OK)
            return cli_fail(&err);
        o.parent = sp_chain_layer(pchain, 0);
        if (!bs_s && o.parent->footer.disk_type != SP_VHD_FIXED)
            o.block_size = o.parent->block_size;
    }
    struct sp_outfile out;
    rc = sp_outfile_open(&out, pos[0], force, &err);
    if (rc == SP_OK)
        rc = sp_vhd_create_fd(out.fd, pos[0], &o, &err);
    if (rc == SP_OK)
        rc = sp_outfile_commit(&out, &err);
    else
        sp_outfile_abort(&out);
    uint64_t size = o.parent ? o.parent->footer.current_size : o.size;
    if (pchain)
        sp_disk_close(sp_chain_disk(pchain));
    if (rc != SP_OK)
        return cli_fail(&err);
    if (c->json) {
        json_key_string("output", pos[0]);
        json_key_string("format", "vhd");
        json_key_uint("virtual_size", size);
        json_key_string("parent", parent);
    }
    cli_say(c, "%s: created\n", pos[0]);
    return EXIT_OK_;
}

/* --- write -------------------------------------------------------------- */

static int parse_byte(const char *s, uint8_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 0);
    if (errno || end == s || *end || v > 255)
        return cli_usage_error("--pattern: '%s' is not a byte (0-255 or 0xNN)", s);
    *out = (uint8_t)v;
    return EXIT_OK_;
}

static int write_pattern(struct sp_disk *d, uint64_t off, uint64_t len, uint8_t byte, struct sp_error *err)
{
    size_t chunk = (size_t)sp_min_u64(len, SP_COPY_CHUNK);
    uint8_t *buf = sp_alloc(chunk, err);
    if (!buf)
        return SP_ENOMEM;
    memset(buf, byte, chunk);
    int rc = SP_OK;
    while (rc == SP_OK && len > 0) {
        size_t n = (size_t)sp_min_u64(len, chunk);
        rc = sp_disk_write(d, off, buf, n, err);
        off += n;
        len -= n;
    }
    free(buf);
    return rc;
}

static int write_file(struct sp_disk *d, uint64_t off, int fd, const char *from, uint64_t len, struct sp_error *err)
{
    uint8_t *buf = sp_alloc(SP_COPY_CHUNK, err);
    if (!buf)
        return SP_ENOMEM;
    int rc = SP_OK;
    uint64_t pos = 0;
    while (rc == SP_OK && pos < len) {
        size_t n = (size_t)sp_min_u64(len - pos, SP_COPY_CHUNK);
        rc = sp_pread_full(fd, buf, n, pos, "data", err);
        if (rc != SP_OK) {
            sp_error_prefix(err, "%s", from);
            break;
        }
        rc = sp_disk_write(d, off + pos, buf, n, err);
        pos += n;
    }
    free(buf);
    return rc;
}

int cmd_disk_write(struct cli *c, const struct cli_args *a)
{
    const char *off_s = cli_opt(a, "--offset"), *from = cli_opt(a, "--from"), *pat_s = cli_opt(a, "--pattern");
    const char *len_s = cli_opt(a, "--length");
    const char *const *pos = a->pos;
    int rc;
    if (a->npos != 1 || !off_s || (!from == !pat_s) || (pat_s && !len_s))
        return cli_usage_error("disk write: needs IMAGE --offset N and --from FILE or --pattern BYTE --length N");
    uint64_t off, len = 0;
    uint8_t byte = 0;
    if ((rc = cli_parse_size("--offset", off_s, &off)) != EXIT_OK_)
        return rc;
    if (len_s && (rc = cli_parse_size("--length", len_s, &len)) != EXIT_OK_)
        return rc;
    if (pat_s && (rc = parse_byte(pat_s, &byte)) != EXIT_OK_)
        return rc;
    struct sp_error err;
    int fd = -1;
    if (from) {
        fd = open(from, O_RDONLY | O_CLOEXEC);
        off_t end = fd >= 0 ? lseek(fd, 0, SEEK_END) : -1;
        if (fd < 0 || end < 0) {
            sp_error_errno(&err, errno, "%s", from);
            if (fd >= 0)
                close(fd);
            return cli_fail(&err);
        }
        if (!len_s || (uint64_t)end < len)
            len = (uint64_t)end;
    }
    struct sp_disk *d = NULL;
    rc = sp_disk_open(pos[0], true, &d, &err);
    if (rc == SP_OK && (off > d->size || len > d->size - off))
        rc = sp_error_set(&err, SP_EINVAL, "%s: %llu bytes at offset %llu do not fit in the virtual size %llu",
                          pos[0], (unsigned long long)len, (unsigned long long)off, (unsigned long long)d->size);
    if (rc == SP_OK)
        rc = from ? write_file(d, off, fd, from, len, &err) : write_pattern(d, off, len, byte, &err);
    if (rc == SP_OK && d)
        rc = sp_disk_flush(d, &err);
    if (fd >= 0)
        close(fd);
    if (d)
        sp_disk_close(d);
    if (rc != SP_OK)
        return cli_fail(&err);
    if (c->json) {
        json_key_string("path", pos[0]);
        json_key_uint("offset", off);
        json_key_uint("length", len);
    }
    cli_say(c, "%s: wrote %llu bytes at offset %llu\n", pos[0], (unsigned long long)len, (unsigned long long)off);
    return EXIT_OK_;
}

/* --- flatten ------------------------------------------------------------ */

/* The output's format: --format, else the output's extension; no
 * extension (or .raw, .img) is raw. An extension no format has is refused
 * rather than taken for raw: x.qcow3 or x.vhdd is a typo, not a wish for
 * raw bytes. An .img says "a disk image", not which format (libvirt's
 * qcow2 files are .img): --format vhd -o x.img contradicts nothing. */
static int pick_format(const char *out, const char *given, const struct sp_disk_driver **f)
{
    if (given && !sp_disk_driver_find(given))
        return cli_usage_error("disk flatten: unknown --format '%s' (raw, vhd or vmdk)", given);
    const char *ext = sp_path_extension(out);
    bool generic = ext && strcasecmp(ext, "img") == 0;
    const struct sp_disk_driver *by_ext = generic && given ? NULL : sp_disk_driver_for_name(out);
    const char *name;
    int rc = cli_output_format("disk flatten", out, given, by_ext ? by_ext->name : NULL, &name);
    if (rc != EXIT_OK_)
        return rc;
    if (!name && ext)
        return cli_usage_error("disk flatten: %s: no disk format has the extension .%s (say --format raw|vhd|vmdk; "
                               ".raw, .img or none is raw)", out, ext);
    *f = sp_disk_driver_find(name ? name : "raw");
    if (!(*f)->create_copy)
        return cli_usage_error("disk flatten: %s: snapport does not write %s images (raw, vhd or vmdk)", out,
                               (*f)->name);
    return EXIT_OK_;
}

int cmd_disk_flatten(struct cli *c, const struct cli_args *a)
{
    const char *out_s = cli_opt(a, "--output"), *fmt_s = cli_opt(a, "--format");
    bool force = cli_flag(a, "--force"), no_sync = cli_flag(a, "--no-sync");
    const char *const *pos = a->pos;
    if (a->npos != 1 || !out_s)
        return cli_usage_error("disk flatten: needs IMAGE -o OUT");
    const struct sp_disk_driver *f = NULL;
    int rc = pick_format(out_s, fmt_s, &f);
    if (rc != EXIT_OK_)
        return rc;
    struct sp_error err;
    struct sp_disk *src = NULL;
    struct sp_outfile out = {.fd = -1};
    bool reads = false;
    rc = sp_disk_open(pos[0], false, &src, &err);
    if (rc == SP_OK)
        rc = sp_disk_reads_file(src, out_s, &reads, &err);
    /* replaced at the end, it would take away what the rest of the chain stands on */
    if (rc == SP_OK && reads)
        rc = sp_error_set(&err, SP_EINVAL, "%s: is %s or a file of its chain; flatten into another file", out_s,
                          pos[0]);
    if (rc == SP_OK)
        rc = sp_outfile_open(&out, out_s, force, &err);
    out.no_sync = no_sync;
    struct cli_progress *bar = rc == SP_OK ? cli_progress_start(c, "flatten") : NULL;
    if (rc == SP_OK) {
        struct sp_disk_create_opts co = {.path = out.final_path, .tmp_path = out.tmp_path, .durable = !out.no_sync};
        rc = f->create_copy(out.fd, src, &co, cli_progress_hook(bar), &err);
    }
    cli_progress_finish(bar);
    if (rc == SP_OK)
        rc = sp_outfile_commit(&out, &err);
    else
        sp_outfile_abort(&out);
    sp_disk_close(src);
    if (rc != SP_OK)
        return cli_fail(&err);
    if (c->json) {
        json_key_string("input", pos[0]);
        json_key_string("output", out_s);
        json_key_string("format", f->name);
    }
    cli_say(c, "%s: flattened to %s (%s)\n", pos[0], out_s,
            strcmp(f->name, "vmdk") == 0 ? "vmdk, streamOptimized" : f->name);
    return EXIT_OK_;
}

/* --- compare ------------------------------------------------------------ */

int cmd_disk_compare(struct cli *c, const struct cli_args *a)
{
    const char *const *pos = a->pos;
    if (a->npos != 2)
        return cli_usage_error("disk compare: needs A and B");
    bool lenient = cli_flag(a, "--lenient");
    int rc;
    struct sp_error err;
    struct sp_disk *da = NULL, *db = NULL;
    bool same = false;
    uint64_t at = 0;
    rc = sp_disk_open(pos[0], false, &da, &err);
    if (rc == SP_OK)
        rc = sp_disk_open(pos[1], false, &db, &err);
    struct cli_progress *bar = rc == SP_OK ? cli_progress_start(c, "compare") : NULL;
    if (rc == SP_OK)
        rc = lenient ? sp_compare_disks_lenient(da, db, &same, &at, cli_progress_hook(bar), &err)
                     : sp_compare_disks(da, db, &same, &at, cli_progress_hook(bar), &err);
    cli_progress_finish(bar);
    uint64_t sa = da ? da->size : 0, sb = db ? db->size : 0;
    sp_disk_close(da);
    sp_disk_close(db);
    if (rc != SP_OK)
        return cli_fail(&err);
    if (c->json) {
        json_key_string("a", pos[0]);
        json_key_string("b", pos[1]);
        json_key_bool("identical", same);
        if (same)
            json_key_null("first_difference");
        else
            json_key_uint("first_difference", at);
        json_key_uint("size_a", sa);
        json_key_uint("size_b", sb);
        /* a non-zero exit has its line on stderr; here stdout is the document */
        if (!same && sa != sb && !lenient)
            cli_error("%s, %s: sizes differ: %llu vs %llu", pos[0], pos[1], (unsigned long long)sa,
                      (unsigned long long)sb);
        else if (!same)
            cli_error("%s, %s: differ at offset %llu", pos[0], pos[1], (unsigned long long)at);
    } else if (same && sa != sb) {
        cli_say(c, "identical (sizes differ: %llu vs %llu; the larger one's extra bytes are zeros)\n",
                (unsigned long long)sa, (unsigned long long)sb);
    } else if (same) {
        cli_say(c, "identical\n");
    } else if (sa != sb && !lenient) {
        cli_say(c, "sizes differ: %llu vs %llu\n", (unsigned long long)sa, (unsigned long long)sb);
    } else {
        cli_say(c, "differ at offset %llu\n", (unsigned long long)at);
    }
    return same ? EXIT_OK_ : EXIT_DIFF;
}
