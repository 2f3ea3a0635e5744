/* snapport disk ...: images without a store. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "formats/chain.h"
#include "formats/copy.h"
#include "formats/image.h"
#include "formats/outfile.h"
#include "formats/raw.h"
#include "formats/util.h"
#include "formats/vhd.h"
#include "formats/vmdk.h"

/* --- info --------------------------------------------------------------- */

static void print_layer_text(int i, struct sp_vhd *v)
{
    char uuid[SP_UUID_STR], sz[32];
    sp_uuid_format(v->footer.uuid, uuid);
    printf("  %-2d %-17s %s  allocated %-10s %s\n", i, sp_vhd_type_name(v->footer.disk_type), uuid,
           sp_format_size(sp_vhd_allocated_bytes(v), sz, sizeof sz), v->path);
}

static void print_layer_json(struct sp_vhd *v)
{
    char uuid[SP_UUID_STR], puuid[SP_UUID_STR];
    sp_uuid_format(v->footer.uuid, uuid);
    sp_uuid_format(v->header.parent_uuid, puuid);
    json_begin_object();
    json_key_string("path", v->path);
    json_key_string("format", sp_vhd_type_name(v->footer.disk_type));
    json_key_string("uuid", uuid);
    json_key_string("parent_uuid", v->footer.disk_type == SP_VHD_DIFF ? puuid : NULL);
    json_key_uint("virtual_size", v->footer.current_size);
    json_key_uint("allocated", sp_vhd_allocated_bytes(v));
    json_key_string("creator", v->footer.creator_app);
    json_key_bool("hidden", v->footer.hidden != 0);
    json_end_object();
}

static int info_chain(struct cli *c, struct sp_chain *ch)
{
    struct sp_disk *d = sp_chain_disk(ch);
    struct sp_vhd *leaf = sp_chain_layer(ch, 0);
    const char *fmt = sp_vhd_type_name(leaf->footer.disk_type);
    uint64_t alloc = sp_chain_allocated_bytes(ch);
    uint32_t bs = leaf->footer.disk_type == SP_VHD_FIXED ? 0 : leaf->block_size;
    if (c->json) {
        json_begin_object();
        json_key_string("path", d->path);
        json_key_string("format", fmt);
        json_key_uint("virtual_size", d->size);
        json_key_uint("allocated", alloc);
        json_key_uint("block_size", bs);
        json_key_uint("depth", (uint64_t)sp_chain_depth(ch));
        json_begin_array("chain");
        for (int i = 0; i < sp_chain_depth(ch); i++)
            print_layer_json(sp_chain_layer(ch, i));
        json_end_array();
        json_end_object();
        json_finish();
        return EXIT_OK_;
    }
    char a[32], b[32], e[32];
    printf("image:        %s\nformat:       %s\nvirtual size: %s (%llu bytes)\n", d->path, fmt,
           sp_format_size(d->size, a, sizeof a), (unsigned long long)d->size);
    printf("allocated:    %s (%llu bytes)\n", sp_format_size(alloc, b, sizeof b), (unsigned long long)alloc);
    if (bs)
        printf("block size:   %s\n", sp_format_size(bs, e, sizeof e));
    printf("depth:        %d\nchain (leaf first):\n", sp_chain_depth(ch));
    for (int i = 0; i < sp_chain_depth(ch); i++)
        print_layer_text(i, sp_chain_layer(ch, i));
    return EXIT_OK_;
}

static int info_raw(struct cli *c, struct sp_disk *d)
{
    struct sp_error err;
    uint64_t alloc;
    if (sp_disk_data_bytes(d, &alloc, &err) != SP_OK)
        return cli_fail(&err);
    if (c->json) {
        json_begin_object();
        json_key_string("path", d->path);
        json_key_string("format", "raw");
        json_key_uint("virtual_size", d->size);
        json_key_uint("allocated", alloc);
        json_key_uint("block_size", 0);
        json_key_uint("depth", 1);
        json_begin_array("chain");
        json_begin_object();
        json_key_string("path", d->path);
        json_key_string("format", "raw");
        json_key_null("uuid");
        json_key_null("parent_uuid");
        json_key_uint("virtual_size", d->size);
        json_key_uint("allocated", alloc);
        json_key_null("creator");
        json_end_object();
        json_end_array();
        json_end_object();
        json_finish();
        return EXIT_OK_;
    }
    char a[32], b[32];
    printf("image:        %s\nformat:       raw\nvirtual size: %s (%llu bytes)\n", d->path,
           sp_format_size(d->size, a, sizeof a), (unsigned long long)d->size);
    printf("allocated:    %s (%llu bytes)\ndepth:        1\n", sp_format_size(alloc, b, sizeof b),
           (unsigned long long)alloc);
    return EXIT_OK_;
}

static int disk_info(struct cli *c, int argc, char **argv)
{
    const char *pos[1];
    int npos;
    int rc = cli_parse("disk info", argc, argv, NULL, pos, 1, &npos);
    if (rc != EXIT_OK_)
        return rc;
    if (npos != 1)
        return cli_usage_error("disk info: needs IMAGE");
    struct sp_error err;
    struct sp_disk *d;
    if (sp_image_open(pos[0], false, &d, &err) != SP_OK)
        return cli_fail(&err);
    struct sp_chain *ch = sp_chain_from_disk(d);
    rc = ch ? info_chain(c, ch) : info_raw(c, d);
    sp_disk_close(d);
    return rc;
}

/* --- check -------------------------------------------------------------- */

static int disk_check(struct cli *c, int argc, char **argv)
{
    const char *pos[1];
    int npos;
    int rc = cli_parse("disk check", argc, argv, NULL, pos, 1, &npos);
    if (rc != EXIT_OK_)
        return rc;
    if (npos != 1)
        return cli_usage_error("disk check: needs IMAGE");
    struct sp_error err;
    struct cli_problems out = {c, ""};
    int count = 0;
    cli_problems_begin(c, pos[0]);
    rc = sp_image_check(pos[0], cli_problem, &out, &count, &err);
    cli_problems_end(c, rc == SP_OK && count == 0);
    if (rc != SP_OK)
        return cli_fail(&err);
    if (count) {
        fprintf(stderr, "snapport: %s: damaged: %s%s\n", pos[0], out.first,
                count > 1 ? " (and more, listed on stdout)" : "");
        return EXIT_DIFF;
    }
    cli_say(c, "%s: ok\n", pos[0]);
    return EXIT_OK_;
}

/* --- create ------------------------------------------------------------- */

static int disk_create(struct cli *c, int argc, char **argv)
{
    const char *size_s = NULL, *parent = NULL, *bs_s = NULL, *force = NULL;
    const struct cli_opt opts[] = {
        {"--size", true, &size_s}, {"--parent", true, &parent}, {"--block-size", true, &bs_s},
        {"--force", false, &force}, {NULL, false, NULL},
    };
    const char *pos[1];
    int npos;
    int rc = cli_parse("disk create", argc, argv, opts, pos, 1, &npos);
    if (rc != EXIT_OK_)
        return rc;
    if (npos != 1)
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
    rc = sp_outfile_open(&out, pos[0], force != NULL, &err);
    if (rc == SP_OK)
        rc = sp_vhd_create_fd(out.fd, pos[0], &o, &err);
    if (rc == SP_OK)
        rc = sp_outfile_commit(&out, &err);
    else
        sp_outfile_abort(&out);
    if (pchain)
        sp_disk_close(sp_chain_disk(pchain));
    if (rc != SP_OK)
        return cli_fail(&err);
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

static int disk_write(struct cli *c, int argc, char **argv)
{
    const char *off_s = NULL, *from = NULL, *pat_s = NULL, *len_s = NULL;
    const struct cli_opt opts[] = {
        {"--offset", true, &off_s}, {"--from", true, &from}, {"--pattern", true, &pat_s},
        {"--length", true, &len_s}, {NULL, false, NULL},
    };
    const char *pos[1];
    int npos;
    int rc = cli_parse("disk write", argc, argv, opts, pos, 1, &npos);
    if (rc != EXIT_OK_)
        return rc;
    if (npos != 1 || !off_s || (!from == !pat_s) || (pat_s && !len_s))
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
    struct sp_disk *d;
    rc = sp_image_open(pos[0], true, &d, &err);
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
    cli_say(c, "%s: wrote %llu bytes at offset %llu\n", pos[0], (unsigned long long)len, (unsigned long long)off);
    return EXIT_OK_;
}

/* --- flatten ------------------------------------------------------------ */

enum out_format { OUT_RAW, OUT_VHD, OUT_VMDK };

static int pick_format(const char *out, const char *given, enum out_format *f)
{
    const char *name = given;
    if (!name) {
        const char *dot = strrchr(out, '.');
        name = dot && strcmp(dot, ".vhd") == 0 ? "vhd" : dot && strcmp(dot, ".vmdk") == 0 ? "vmdk" : "raw";
    }
    if (strcmp(name, "raw") == 0)
        *f = OUT_RAW;
    else if (strcmp(name, "vhd") == 0)
        *f = OUT_VHD;
    else if (strcmp(name, "vmdk") == 0)
        *f = OUT_VMDK;
    else
        return cli_usage_error("disk flatten: unknown --format '%s' (raw, vhd or vmdk)", name);
    return EXIT_OK_;
}

/* Opens the destination disk over the temporary output file. */
static int open_target(enum out_format f, struct sp_outfile *out, struct sp_disk *src, struct sp_disk **dst,
                       struct sp_error *err)
{
    if (f == OUT_RAW)
        return sp_raw_create_fd(out->fd, out->final_path, src->size, !out->no_sync, dst, err);
    struct sp_chain *sc = sp_chain_from_disk(src);
    struct sp_vhd_create_opts o = {.size = src->size, .type = SP_VHD_DYNAMIC};
    if (sc && sp_chain_layer(sc, 0)->footer.disk_type != SP_VHD_FIXED)
        o.block_size = sp_chain_layer(sc, 0)->block_size;
    if (src->size % SP_VHD_SECTOR)
        o.size = (src->size + SP_VHD_SECTOR - 1) / SP_VHD_SECTOR * SP_VHD_SECTOR;
    int rc = sp_vhd_create_fd(out->fd, out->final_path, &o, err);
    struct sp_chain *ch = NULL;
    if (rc == SP_OK)
        rc = sp_chain_open(out->tmp_path, true, &ch, err);
    if (rc == SP_OK && out->no_sync)
        sp_writeback_init(&sp_chain_layer(ch, 0)->wb, -1);
    if (rc == SP_OK)
        *dst = sp_chain_disk(ch);
    return rc;
}

struct vmdk_file {
    int fd;
    uint64_t written;
    struct sp_writeback wb;
};

static int vmdk_file_out(void *ctx, const void *buf, size_t len, struct sp_error *err)
{
    struct vmdk_file *v = ctx;
    while (len > 0) {
        ssize_t n = sp_write_out(v->fd, buf, len, &v->wb, &v->written);
        if (n < 0)
            return sp_error_errno(err, errno, "write");
        buf = (const uint8_t *)buf + n;
        len -= (size_t)n;
    }
    return SP_OK;
}

/* A streamOptimized VMDK, as an OVA carries it. */
static int write_vmdk(struct sp_disk *src, struct sp_outfile *out, const struct sp_progress *prog,
                      struct sp_error *err)
{
    struct vmdk_file v = {out->fd, 0, {0, 0, 0}};
    sp_writeback_init(&v.wb, out->no_sync ? -1 : out->fd);
    const char *base = strrchr(out->final_path, '/');
    struct sp_vmdk_write_opts o = {.level = SP_VMDK_EXPORT_LEVEL, .name = base ? base + 1 : out->final_path};
    return sp_vmdk_write_stream(src, &o, vmdk_file_out, &v, prog, NULL, err);
}

static int disk_flatten(struct cli *c, int argc, char **argv)
{
    const char *out_s = NULL, *fmt_s = NULL, *force = NULL, *no_sync = NULL;
    const struct cli_opt opts[] = {
        {"-o", true, &out_s}, {"--output", true, &out_s}, {"--format", true, &fmt_s},
        {"--force", false, &force}, {"--no-sync", false, &no_sync}, {NULL, false, NULL},
    };
    const char *pos[1];
    int npos;
    int rc = cli_parse("disk flatten", argc, argv, opts, pos, 1, &npos);
    if (rc != EXIT_OK_)
        return rc;
    if (npos != 1 || !out_s)
        return cli_usage_error("disk flatten: needs IMAGE -o OUT");
    enum out_format f = OUT_RAW;
    struct sp_error err;
    rc = pick_format(out_s, fmt_s, &f);
    if (rc != EXIT_OK_)
        return rc;
    struct sp_disk *src = NULL, *dst = NULL;
    struct sp_outfile out = {.fd = -1};
    rc = sp_image_open(pos[0], false, &src, &err);
    if (rc == SP_OK)
        rc = sp_outfile_open(&out, out_s, force != NULL, &err);
    out.no_sync = no_sync != NULL;
    if (rc == SP_OK && f != OUT_VMDK)
        rc = open_target(f, &out, src, &dst, &err);
    struct cli_progress *bar = rc == SP_OK ? cli_progress_start(c, "flatten") : NULL;
    if (rc == SP_OK && f == OUT_VMDK)
        rc = write_vmdk(src, &out, cli_progress_hook(bar), &err);
    else if (rc == SP_OK)
        rc = sp_copy_disk(src, dst, cli_progress_hook(bar), &err);
    cli_progress_finish(bar);
    sp_disk_close(dst);
    if (rc == SP_OK)
        rc = sp_outfile_commit(&out, &err);
    else
        sp_outfile_abort(&out);
    sp_disk_close(src);
    if (rc != SP_OK)
        return cli_fail(&err);
    cli_say(c, "%s: flattened to %s (%s)\n", pos[0], out_s,
            f == OUT_VHD ? "vhd" : f == OUT_VMDK ? "vmdk, streamOptimized" : "raw");
    return EXIT_OK_;
}

/* --- compare ------------------------------------------------------------ */

static int disk_compare(struct cli *c, int argc, char **argv)
{
    const char *pos[2];
    int npos;
    int rc = cli_parse("disk compare", argc, argv, NULL, pos, 2, &npos);
    if (rc != EXIT_OK_)
        return rc;
    if (npos != 2)
        return cli_usage_error("disk compare: needs A and B");
    struct sp_error err;
    struct sp_disk *a = NULL, *b = NULL;
    bool same = false;
    uint64_t at = 0;
    rc = sp_image_open(pos[0], false, &a, &err);
    if (rc == SP_OK)
        rc = sp_image_open(pos[1], false, &b, &err);
    struct cli_progress *bar = rc == SP_OK ? cli_progress_start(c, "compare") : NULL;
    if (rc == SP_OK)
        rc = sp_compare_disks(a, b, &same, &at, cli_progress_hook(bar), &err);
    cli_progress_finish(bar);
    uint64_t sa = a ? a->size : 0, sb = b ? b->size : 0;
    sp_disk_close(a);
    sp_disk_close(b);
    if (rc != SP_OK)
        return cli_fail(&err);
    if (c->json) {
        json_begin_object();
        json_key_bool("identical", same);
        if (same)
            json_key_null("first_difference");
        else
            json_key_uint("first_difference", at);
        json_key_uint("size_a", sa);
        json_key_uint("size_b", sb);
        json_end_object();
        json_finish();
    } else if (same) {
        cli_say(c, "identical\n");
    } else if (sa != sb) {
        cli_say(c, "sizes differ: %llu vs %llu\n", (unsigned long long)sa, (unsigned long long)sb);
    } else {
        cli_say(c, "differ at offset %llu\n", (unsigned long long)at);
    }
    return same ? EXIT_OK_ : EXIT_DIFF;
}

/* --- table -------------------------------------------------------------- */

static const struct {
    const char *name;
    int (*run)(struct cli *c, int argc, char **argv);
} DISK_COMMANDS[] = {
    {"info", disk_info}, {"check", disk_check}, {"create", disk_create},
    {"write", disk_write}, {"flatten", disk_flatten}, {"compare", disk_compare},
};

int cmd_disk(struct cli *c, int argc, char **argv)
{
    if (argc < 1)
        return cli_usage_error("disk: needs a subcommand (info, check, create, write, flatten, compare)");
    for (size_t i = 0; i < sizeof DISK_COMMANDS / sizeof DISK_COMMANDS[0]; i++)
        if (strcmp(argv[0], DISK_COMMANDS[i].name) == 0)
            return DISK_COMMANDS[i].run(c, argc - 1, argv + 1);
    return cli_usage_error("disk: unknown subcommand '%s'", argv[0]);
}
