/* OVA (or unpacked OVF) in the archive table: the reader.
 *
 * One forward pass over the members: the .ovf first (it says what the disks
 * are, and so the VM, vm/ovf_map.c), the .mf and .cert where present, then
 * the files. Every member is digested as it passes; a disk's file decodes
 * straight into the target read_disk is given (streamOptimized VMDK, raw,
 * gzip of either); formats that need random access (monolithicSparse VMDK,
 * VHD) are spooled first. The manifest, the signature and the References
 * are settled at the end (finish). */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <zlib.h>

#include "disk/registry.h"
#include "base/instream.h"
#include "archive/manifest.h"
#include "archive/ovf.h"
#include "base/readahead.h"
#include "base/util.h"
#include "disk/vhd.h"
#include "disk/vmdk.h"
#include "archive/archive.h"
#include "vm/ovf_map.h"
#include "archive/ova_package.h"

#define SMALL_MAX (1u << 20)          /* .mf and .cert */
#define CHUNK (1u << 20)
#define SPOOL_SLACK (64ull << 20)     /* spooled(): tables and headers beyond 3 x capacity */
#define ALL_DIGESTS ((1u << SP_DIGEST_SHA1) | (1u << SP_DIGEST_SHA256) | (1u << SP_DIGEST_SHA512))
#define VHD_URI_KEY "bb676673"        /* Microsoft's VHD specification page, as XenServer names it */

struct seen_file {                    /* per References/File */
    bool seen;
    uint64_t stored;
    char hex[3][SP_DIGEST_HEX_MAX];   /* by kind, "" when not computed */
    char format[24];
};

struct ova_in {
    struct ova_package *pkg;
    const char *label;
    struct sp_ovf_system sys;
    bool have_sys;
    char ovf_name[SP_OVA_NAME_MAX + 1];
    char ovf_hex[3][SP_DIGEST_HEX_MAX];
    struct sp_manifest mf;
    bool have_mf;
    char mf_name[SP_OVA_NAME_MAX + 1];
    char *mf_text, *cert_text;
    size_t mf_len, cert_len;
    struct seen_file *files;
    struct sp_archive_reader *r;       /* spool_dir and prog are its */
    bool pause_after_ovf;              /* open: the reading stops once the disks are known */
    bool pause_at_disk;                /* next_disk: it stops before a disk's file */
    int pending_fi;                    /* the file (and its disk) read_disk reads next; -1: none */
    int pending_di;
    char pending_name[SP_OVA_NAME_MAX + 1];
    bool eof;
    int *order;                        /* per archive disk (r->disks): its OVF disk */
    const struct sp_progress *prog;
    uint64_t done, total;
    bool is_signed;
    struct sp_cert_info cert;
};

static int ierr(struct ova_in *st, int code, struct sp_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int ierr(struct ova_in *st, int code, struct sp_error *err, const char *fmt, ...)
{
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sp_error_set(err, code, "%s: %s", st->label, msg);
}

/* ---- one member's bytes, digested as they pass --------------------------- */

struct member_in {
    struct ova_in *st;
    struct sp_digest *dg;
    uint64_t n;
};

static int member_read(void *ctx, void *buf, size_t len, size_t *got, struct sp_error *err)
{
    struct member_in *m = ctx;
    int rc = ova_package_read(m->st->pkg, buf, len, got, err);
    if (rc == SP_OK && *got)
        rc = sp_digest_update(m->dg, buf, *got, err);
    m->n += *got;
    return rc;
}

/* The rest of a member, digested and dropped. */
static int member_drain(sp_read_fn in, void *ctx, struct sp_error *err)
{
    uint8_t *buf = sp_alloc(CHUNK, err);
    if (!buf)
        return SP_ENOMEM;
    size_t got = 1;
    int rc = SP_OK;
    while (rc == SP_OK && got)
        rc = in(ctx, buf, CHUNK, &got, err);
    free(buf);
    return rc;
}

static int member_final(struct member_in *m, unsigned mask, char hex[3][SP_DIGEST_HEX_MAX], struct sp_error *err)
{
    for (int k = SP_DIGEST_SHA1; k <= SP_DIGEST_SHA512; k++) {
        hex[k][0] = '\0';
        if (mask & (1u << k)) {
            int rc = sp_digest_final(m->dg, (enum sp_digest_kind)k, hex[k], err);
            if (rc != SP_OK)
                return rc;
        }
    }
    return SP_OK;
}

/* Which digests a member needs: the manifest's kind for it, or all three
 * while the manifest has not come (it may follow the disks). */
static unsigned digest_mask(const struct ova_in *st, const char *name)
{
    if (!st->have_mf)
        return ALL_DIGESTS;
    const struct sp_manifest_entry *e = sp_manifest_find(&st->mf, name);
    return e ? 1u << e->kind : 1u << SP_DIGEST_SHA256;
}

/* ---- gzip ---------------------------------------------------------------- */

struct gunzip_in {
    sp_vmdk_in up;
    void *up_ctx;
    z_stream z;
    uint8_t *in;
    bool up_eof, done;
    int members;                       /* gzip members ended so far */
};

static int gunzip_read(void *ctx, void *buf, size_t len, size_t *got, struct sp_error *err)
{
    struct gunzip_in *g = ctx;
    *got = 0;
    g->z.next_out = buf;
    g->z.avail_out = (uInt)(len > UINT32_MAX ? UINT32_MAX : len);
    while (g->z.avail_out && !g->done) {
        if (g->z.avail_in == 0 && !g->up_eof) {
            size_t n = 0;
            int rc = g->up(g->up_ctx, g->in, CHUNK, &n, err);
            if (rc != SP_OK)
                return rc;
            g->up_eof = n == 0;
            g->z.next_in = g->in;
            g->z.avail_in = (uInt)n;
        }
        int zr = inflate(&g->z, Z_NO_FLUSH);
        if (zr == Z_STREAM_END) {
            /* concatenated gzip members go on; the end of input ends */
            g->members++;
            if (g->z.avail_in == 0 && g->up_eof)
                g->done = true;
            else if (inflateReset(&g->z) != Z_OK) /* total_in back to 0 */
                return sp_error_set(err, SP_EFORMAT, "gzip: cannot restart");
            continue;
        }
        if (zr == Z_BUF_ERROR && g->up_eof && g->z.avail_in == 0) {
            /* the input ended: between members (nothing of a next one
             * read; often the last member ends where a read ended), or
             * inside one */
            if (g->members > 0 && g->z.total_in == 0)
                g->done = true;
            else
                return sp_error_set(err, SP_EFORMAT, "gzip data truncated");
        } else if (zr != Z_OK && zr != Z_BUF_ERROR) {
            return sp_error_set(err, SP_EFORMAT, "gzip data corrupt (%s)", g->z.msg ? g->z.msg : "inflate failed");
        }
    }
    *got = len - g->z.avail_out;
    return SP_OK;
}

/* ---- a look at the first sector -------------------------------------------- */

struct peek_in {
    sp_vmdk_in up;
    void *up_ctx;
    uint8_t head[SP_PROBE_HEAD];
    size_t hlen, hpos;
};

static int peek_fill(struct peek_in *p, struct sp_error *err)
{
    while (p->hlen < sizeof p->head) {
        size_t n = 0;
        int rc = p->up(p->up_ctx, p->head + p->hlen, sizeof p->head - p->hlen, &n, err);
        if (rc != SP_OK)
            return rc;
        if (n == 0)
            break;
        p->hlen += n;
    }
    return SP_OK;
}

static int peek_read(void *ctx, void *buf, size_t len, size_t *got, struct sp_error *err)
{
    struct peek_in *p = ctx;
    if (p->hpos < p->hlen) {
        *got = (size_t)sp_min_u64(len, p->hlen - p->hpos);
        memcpy(buf, p->head + p->hpos, *got);
        p->hpos += *got;
        return SP_OK;
    }
    return p->up(p->up_ctx, buf, len, got, err);
}

/* ---- disks ------------------------------------------------------------------ */

struct disk_sink {
    struct ova_in *st;
    struct sp_disk *dst;               /* NULL: verify */
    uint64_t capacity;
    const char *member;
    struct sp_error *err;
    int failed;
    /* Adjacent grains are gathered into one write of up to CHUNK bytes:
     * 64 KiB writes cost as many system calls as they are grains. */
    uint8_t *run;
    uint64_t run_off;
    size_t run_len;
};

static int sink_flush(struct disk_sink *k)
{
    if (!k->run_len)
        return SP_OK;
    int rc = sp_disk_write(k->dst, k->run_off, k->run, k->run_len, k->err);
    k->run_len = 0;
    if (rc != SP_OK)
        k->failed = rc;
    return rc;
}

static int sink_write(void *ctx, uint64_t off, const void *data, size_t len)
{
    struct disk_sink *k = ctx;
    if (off > k->capacity || len > k->capacity - off) {
        k->failed = ierr(k->st, SP_EFORMAT, k->err, "%s: data at byte %llu is past the disk's capacity (%llu)",
                         k->member, (unsigned long long)off, (unsigned long long)k->capacity);
        return k->failed;
    }
    struct ova_in *st = k->st;
    st->done += len;
    const struct sp_progress *prog = st->r->prog;
    if (prog && prog->update)
        prog->update(prog->ctx, st->done, st->total);
    if (!k->dst || sp_is_zero(data, len))
        return SP_OK;
    if (!k->run || len > CHUNK) {
        int rc = sp_disk_write(k->dst, off, data, len, k->err);
        if (rc != SP_OK)
            k->failed = rc;
        return rc;
    }
    if (k->run_len && (off != k->run_off + k->run_len || k->run_len + len > CHUNK)) {
        int rc = sink_flush(k);
        if (rc != SP_OK)
            return rc;
    }
    if (!k->run_len)
        k->run_off = off;
    memcpy(k->run + k->run_len, data, len);
    k->run_len += len;
    return SP_OK;
}

/* A format that needs random access: spooled into a file of its own,
 * opened from there by its driver (never following a reference outside
 * it: an image that stands on another file is refused), copied into the
 * sink. */
static const char *spool_dir(const struct ova_in *st)
{
    const char *tmp = getenv("TMPDIR");
    return st->r->spool_dir ? st->r->spool_dir : tmp && *tmp ? tmp : "/tmp";
}

static int spooled(struct ova_in *st, sp_vmdk_in in, void *ctx, const struct sp_disk_driver *drv,
                   struct disk_sink *k, struct sp_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/spool-XXXXXX", spool_dir(st));
    int fd = mkstemp(path);
    if (fd < 0)
        return sp_error_errno(err, errno, "%s: spool file in %s", k->member, spool_dir(st));
    /* unlinked at once (nothing left behind whatever happens), opened again
     * by the readers through its descriptor */
    unlink(path);
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    /* A file of a format we read holds at most about twice its capacity
     * (a dynamic VHD of 512-byte blocks: a bitmap sector per data sector)
     * plus its tables: past SPOOL_MAX(capacity) it is no such image but a
     * gzip bomb or padding, refused before it fills the spool's file
     * system. Zeros are not written (holes): a bomb of zeros under a
     * capacity claimed in petabytes still takes no space. */
    uint64_t max = k->capacity > (UINT64_MAX - SPOOL_SLACK) / 3 ? UINT64_MAX : 3 * k->capacity + SPOOL_SLACK;
    uint64_t total = 0;
    uint8_t *buf = sp_alloc(CHUNK, err);
    int rc = buf ? SP_OK : SP_ENOMEM;
    for (size_t got = 1; rc == SP_OK && got;) {
        rc = in(ctx, buf, CHUNK, &got, err);
        if (rc != SP_OK || !got)
            break;
        if (got > max - total) {
            rc = sp_error_set(err, SP_EFORMAT, "more than %llu bytes for a %s image of %llu bytes: not such an image",
                              (unsigned long long)max, drv->name, (unsigned long long)k->capacity);
            break;
        }
        total += got;
        if (sp_is_zero(buf, got)) {
            if (lseek(fd, (off_t)got, SEEK_CUR) < 0)
                rc = sp_error_errno(err, errno, "%s: spool file", k->member);
            continue;
        }
        ssize_t w = write(fd, buf, got);
        if (w != (ssize_t)got)
            rc = sp_error_errno(err, w < 0 ? errno : ENOSPC, "%s: spool file", k->member);
    }
    if (rc == SP_OK && ftruncate(fd, (off_t)total) != 0) /* a hole at the end */
        rc = sp_error_errno(err, errno, "%s: spool file", k->member);
    free(buf);
    struct sp_disk *src = NULL;
    struct sp_disk_open_opts oo = {.standalone = true};
    if (rc == SP_OK)
        rc = drv->open(path, &oo, &src, err);
    if (rc == SP_OK && src->size > k->capacity)
        rc = sp_error_set(err, SP_EFORMAT, "holds %llu bytes, more than the disk's capacity (%llu)",
                          (unsigned long long)src->size, (unsigned long long)k->capacity);
    if (rc == SP_OK && k->dst)
        rc = sp_copy_disk(src, k->dst, NULL, err);
    else if (rc == SP_OK) {
        bool same = false;
        uint64_t first = 0;
        rc = sp_compare_disks(src, src, &same, &first, NULL, err); /* reads every block (twice: both sides) */
    }
    sp_disk_close(src);
    close(fd);
    /* the drivers name the file they opened: the spool's /proc path means
     * nothing to a reader of the message, which names the member instead */
    size_t n = strlen(path);
    if (rc != SP_OK && strncmp(err->msg, path, n) == 0 && strncmp(err->msg + n, ": ", 2) == 0)
        memmove(err->msg, err->msg + n + 2, strlen(err->msg + n + 2) + 1);
    return rc;
}

/* Decodes a disk file's bytes (in, after any gzip) into k: the registry
 * names the format from its first bytes; formats that read front to back
 * stream, the others are spooled. */
static int decode_disk(struct ova_in *st, const struct sp_ovf_disk *d, sp_vmdk_in in, void *ctx,
                       struct disk_sink *k, struct seen_file *sf, struct sp_error *err)
{
    struct peek_in p = {.up = in, .up_ctx = ctx};
    int rc = peek_fill(&p, err);
    if (rc != SP_OK)
        return rc;
    struct sp_probe pr = {.head = p.head, .head_len = p.hlen};
    const struct sp_disk_driver *drv = sp_disk_probe(&pr);
    bool raw = drv == sp_disk_driver_find("raw"); /* nothing else bid */
    if (raw && strstr(d->format, VHD_URI_KEY)) {
        raw = false;
        drv = sp_disk_driver_find("vhd"); /* a fixed VHD: its footer is at the end */
    }
    if (!drv->open)
        return sp_error_set(err, SP_EUNSUPPORTED, "unsupported format: %s", drv->refuse);
    if (drv->streamable && drv->streamable(&pr)) {
        snprintf(sf->format, sizeof sf->format, raw ? "%s" : "%s-stream", drv->name);
        uint64_t size = 0;
        rc = drv->read_stream(peek_read, &p, sink_write, k, &size, err);
        if (rc != SP_OK && k->failed)
            return k->failed;
        if (rc == SP_OK && !raw && size > k->capacity)
            rc = sp_error_set(err, SP_EFORMAT, "%s capacity %llu bytes is more than the OVF says (%llu)",
                              drv->name, (unsigned long long)size, (unsigned long long)k->capacity);
        return rc;
    }
    snprintf(sf->format, sizeof sf->format, "%s", drv->name);
    return spooled(st, peek_read, &p, drv, k, err);
}

static int disk_of_file(const struct ova_in *st, const char *file_id)
{
    for (int i = 0; i < st->sys.ndisks; i++)
        if (strcmp(st->sys.disks[i].file_id, file_id) == 0)
            return i;
    return -1;
}

/* A member named in References: digested, and decoded when a disk uses it. */
static int read_file_member(struct ova_in *st, int fi, const char *name, struct sp_disk *dst, struct sp_error *err)
{
    const struct sp_ovf_file *f = &st->sys.files[fi];
    struct seen_file *sf = &st->files[fi];
    if (sf->seen)
        return ierr(st, SP_EFORMAT, err, "%s: appears twice", name);
    sf->seen = true;
    unsigned mask = digest_mask(st, name);
    struct member_in m = {st, NULL, 0};
    int rc = sp_digest_new(mask, &m.dg, err);
    int di = disk_of_file(st, f->id);
    /* The member is read and digested on a thread of its own while the
     * disk decodes and writes: the digest costs as much as the inflate. */
    struct sp_readahead *ra = NULL;
    if (rc == SP_OK)
        rc = sp_readahead_start(member_read, &m, &ra, err);
    if (rc == SP_OK && di >= 0) {
        const struct sp_ovf_disk *d = &st->sys.disks[di];
        /* The sink's own message (driver.h: "the sink keeps its own
         * message"): a decoder that reports the sink's failure writes its
         * own into err, and a full disk would read "sink failed". */
        struct sp_error kerr;
        sp_error_clear(&kerr);
        struct disk_sink k = {st, dst, d->capacity, name, &kerr, SP_OK, NULL, 0, 0};
        k.run = dst ? malloc(CHUNK) : NULL; /* without it, grain by grain */
        struct gunzip_in g;
        memset(&g, 0, sizeof g);
        bool gz = strcasecmp(f->compression, "gzip") == 0;
        if (gz) {
            g.up = sp_readahead_read;
            g.up_ctx = ra;
            g.in = sp_alloc(CHUNK, err);
            if (!g.in || inflateInit2(&g.z, 16 + MAX_WBITS) != Z_OK)
                rc = g.in ? sp_error_set(err, SP_ENOMEM, "out of memory (zlib)") : SP_ENOMEM;
        }
        if (rc == SP_OK)
            rc = gz ? decode_disk(st, d, gunzip_read, &g, &k, sf, err) : decode_disk(st, d, sp_readahead_read, ra, &k, sf, err);
        if (rc == SP_OK && dst)
            rc = sink_flush(&k);
        if (k.failed)
            *err = kerr;
        free(k.run);
        if (gz) {
            inflateEnd(&g.z);
            free(g.in);
        }
        /* (the tar reader's messages name the archive and member already) */
        if (rc != SP_OK && !k.failed && strncmp(err->msg, st->label, strlen(st->label)) != 0)
            sp_error_prefix(err, "%s: %s", st->label, name);
    } else if (rc == SP_OK && f->compression[0] && strcasecmp(f->compression, "gzip") != 0) {
        rc = ierr(st, SP_EUNSUPPORTED, err, "%s: compression \"%s\" (only gzip)", name, f->compression);
    }
    if (rc == SP_OK)
        rc = member_drain(sp_readahead_read, ra, err);
    sp_readahead_free(ra); /* the reading thread is done with m from here */
    if (rc == SP_OK)
        rc = member_final(&m, mask, sf->hex, err);
    sf->stored = m.n;
    sp_digest_free(m.dg);
    if (rc == SP_OK && f->size && f->size != m.n)
        rc = ierr(st, SP_EFORMAT, err, "%s: %llu bytes, the OVF says %llu", name, (unsigned long long)m.n,
                  (unsigned long long)f->size);
    return rc;
}

/* ---- the descriptor, manifest, certificate --------------------------------- */

static int read_small(struct ova_in *st, const char *name, uint64_t size, uint64_t max, unsigned mask, char **out,
                      size_t *len, char hex[3][SP_DIGEST_HEX_MAX], struct sp_error *err)
{
    if (size > max)
        return ierr(st, SP_ELIMIT, err, "%s: %llu bytes, more than %llu", name, (unsigned long long)size,
                    (unsigned long long)max);
    char *buf = sp_alloc((size_t)size + 1, err);
    if (!buf)
        return SP_ENOMEM;
    struct member_in m = {st, NULL, 0};
    int rc = sp_digest_new(mask ? mask : 1u << SP_DIGEST_SHA256, &m.dg, err);
    for (size_t got = 1; rc == SP_OK && m.n < size && got;)
        rc = member_read(&m, buf + m.n, (size_t)(size - m.n), &got, err);
    if (rc == SP_OK && m.n != size)
        rc = ierr(st, SP_EFORMAT, err, "%s: truncated", name);
    if (rc == SP_OK && hex)
        rc = member_final(&m, mask, hex, err);
    sp_digest_free(m.dg);
    if (rc != SP_OK) {
        free(buf);
        return rc;
    }
    buf[size] = '\0';
    *out = buf;
    *len = (size_t)size;
    return SP_OK;
}

static int read_ovf(struct ova_in *st, const char *name, uint64_t size, struct sp_error *err)
{
    if (!sp_ova_has_ext(name, ".ovf"))
        return ierr(st, SP_EFORMAT, err, "first member is %s, not an .ovf descriptor", name);
    char *text = NULL;
    size_t len = 0;
    int rc = read_small(st, name, size, SP_OVF_MAX, ALL_DIGESTS, &text, &len, st->ovf_hex, err);
    if (rc != SP_OK)
        return rc;
    rc = sp_ovf_parse(text, len, &st->sys, err);
    free(text);
    if (rc != SP_OK)
        return sp_error_prefix(err, "%s: %s", st->label, name);
    st->have_sys = true;
    snprintf(st->ovf_name, sizeof st->ovf_name, "%s", name);
    st->files = sp_zalloc(sizeof *st->files * (size_t)(st->sys.nfiles + 1), err);
    if (!st->files)
        return SP_ENOMEM;
    for (int i = 0; i < st->sys.ndisks; i++) {
        for (int k = 0; k < i; k++)
            if (st->sys.disks[i].file_id[0] && strcmp(st->sys.disks[i].file_id, st->sys.disks[k].file_id) == 0)
                return ierr(st, SP_EUNSUPPORTED, err, "%s: disks %s and %s share one file", name,
                            st->sys.disks[k].disk_id, st->sys.disks[i].disk_id);
        st->total += st->sys.disks[i].populated_size ? st->sys.disks[i].populated_size : st->sys.disks[i].capacity;
    }
    return ova_package_plan(st->pkg, name, &st->sys, err);
}

static int read_mf(struct ova_in *st, const char *name, uint64_t size, struct sp_error *err)
{
    if (st->have_mf)
        return ierr(st, SP_EFORMAT, err, "%s: a second manifest", name);
    int rc = read_small(st, name, size, SMALL_MAX, 0, &st->mf_text, &st->mf_len, NULL, err);
    if (rc == SP_OK && (rc = sp_manifest_parse(st->mf_text, st->mf_len, &st->mf, err)) != SP_OK)
        sp_error_prefix(err, "%s: %s", st->label, name);
    st->have_mf = rc == SP_OK;
    snprintf(st->mf_name, sizeof st->mf_name, "%s", name);
    return rc;
}

static int find_file(const struct ova_in *st, const char *href)
{
    for (int i = 0; i < st->sys.nfiles; i++)
        if (strcmp(st->sys.files[i].href, href) == 0)
            return i;
    return -1;
}

static int read_member(struct ova_in *st, const char *name, uint64_t size, struct sp_error *err)
{
    if (!st->have_sys)
        return read_ovf(st, name, size, err);
    if (sp_ova_has_ext(name, ".mf"))
        return read_mf(st, name, size, err);
    if (sp_ova_has_ext(name, ".cert")) {
        if (st->cert_text)
            return ierr(st, SP_EFORMAT, err, "%s: a second certificate", name);
        return read_small(st, name, size, SMALL_MAX, 0, &st->cert_text, &st->cert_len, NULL, err);
    }
    if (sp_ova_has_ext(name, ".ovf"))
        return ierr(st, SP_EFORMAT, err, "%s: a second .ovf (one virtual system per package)", name);
    int fi = find_file(st, name);
    if (fi < 0)
        return ierr(st, SP_EFORMAT, err, "%s: a member the OVF does not name in References", name);
    int di = disk_of_file(st, st->sys.files[fi].id);
    if (di >= 0 && st->pause_at_disk) {
        st->pending_fi = fi;
        st->pending_di = di;
        snprintf(st->pending_name, sizeof st->pending_name, "%s", name);
        return SP_OK;
    }
    return read_file_member(st, fi, name, NULL, err);
}

/* ---- the end: References, manifest, certificate ---------------------------- */

static int check_digest(struct ova_in *st, const char *name, const char hex[3][SP_DIGEST_HEX_MAX],
                        struct sp_error *err)
{
    const struct sp_manifest_entry *e = sp_manifest_find(&st->mf, name);
    if (!e)
        return ierr(st, SP_EFORMAT, err, "%s: not in the manifest %s", name, st->mf_name);
    if (strcmp(e->hex, hex[e->kind]) != 0)
        return ierr(st, SP_EFORMAT, err, "%s: %s digest does not match the manifest", name, sp_digest_name(e->kind));
    return SP_OK;
}

static int settle(struct ova_in *st, struct sp_error *err)
{
    if (!st->have_sys)
        return ierr(st, SP_EFORMAT, err, "empty archive, no .ovf");
    /* every file of References is part of the package (an ISO too) */
    for (int i = 0; i < st->sys.nfiles; i++)
        if (!st->files[i].seen)
            return ierr(st, SP_EFORMAT, err, "%s: named in References but missing", st->sys.files[i].href);
    if (st->have_mf) {
        int rc = check_digest(st, st->ovf_name, st->ovf_hex, err);
        for (int i = 0; rc == SP_OK && i < st->sys.nfiles; i++)
            if (st->files[i].seen)
                rc = check_digest(st, st->sys.files[i].href, st->files[i].hex, err);
        for (int i = 0; rc == SP_OK && i < st->mf.n; i++) {
            const char *n = st->mf.e[i].name;
            int fi = find_file(st, n);
            if (strcmp(n, st->ovf_name) != 0 && (fi < 0 || !st->files[fi].seen))
                rc = ierr(st, SP_EFORMAT, err, "%s: in the manifest but not in the archive", n);
        }
        if (rc != SP_OK)
            return rc;
    }
    if (st->cert_text) {
        if (!st->have_mf)
            return ierr(st, SP_EFORMAT, err, "a certificate without a manifest");
        memset(&st->cert, 0, sizeof st->cert);
        int rc = sp_cert_verify(st->cert_text, st->cert_len, st->mf_name, st->mf_text, st->mf_len, &st->cert, err);
        if (rc != SP_OK)
            return sp_error_prefix(err, "%s: certificate", st->label);
        st->is_signed = true;
    }
    return SP_OK;
}

static void fill_info(const struct ova_in *st, struct sp_archive_info *in)
{
    if (!st->have_sys)
        return;
    in->is_signed = st->is_signed;
    in->trusted = st->cert.trusted;
    snprintf(in->signer, sizeof in->signer, "%s", st->cert.subject);
    snprintf(in->trust_problem, sizeof in->trust_problem, "%s", st->cert.trust_problem);
    snprintf(in->vm_name, sizeof in->vm_name, "%s", st->sys.name[0] ? st->sys.name : st->sys.id);
    in->hvm = strcmp(st->sys.xen_type, "pv") != 0 && strcmp(st->sys.xen_type, "pvh") != 0;
    in->memory_bytes = st->sys.memory_mb << 20;
    in->vcpus = st->sys.vcpus;
    in->nnics = st->sys.nnics;
    if (st->have_mf && st->mf.n)
        snprintf(in->manifest, sizeof in->manifest, "%s", sp_digest_name(st->mf.e[0].kind));
    in->ndisks = 0;
    for (int i = 0; i < st->sys.ndisks && i < SP_ARCHIVE_INFO_DISKS; i++) {
        const struct sp_ovf_disk *d = &st->sys.disks[i];
        const struct sp_ovf_file *f = d->file_id[0] ? sp_ovf_find_file(&st->sys, d->file_id) : NULL;
        int fi = f ? (int)(f - st->sys.files) : -1;
        snprintf(in->disks[i].id, sizeof in->disks[i].id, "%s", d->disk_id);
        snprintf(in->disks[i].name, sizeof in->disks[i].name, "%s", f ? f->href : "(empty)");
        snprintf(in->disks[i].type, sizeof in->disks[i].type, "%s",
                 fi >= 0 && st->files[fi].format[0] ? st->files[fi].format : "-");
        in->disks[i].virtual_size = d->capacity;
        in->disks[i].stored = fi >= 0 ? st->files[fi].stored : 0;
        in->ndisks = i + 1;
    }
}

/* Every member, then the checks of the end; stops after the .ovf
 * (pause_after_ovf) or before a disk's file (pause_at_disk). */
static int read_package(struct ova_in *st, struct sp_error *err)
{
    while (!st->eof) {
        char name[SP_OVA_NAME_MAX + 1];
        uint64_t size = 0;
        bool eof = false;
        int rc = ova_package_next(st->pkg, name, &size, &eof, err);
        if (rc != SP_OK)
            return rc;
        st->eof = eof;
        if (eof)
            return settle(st, err);
        rc = read_member(st, name, size, err);
        if (rc != SP_OK || st->pending_fi >= 0)
            return rc;
        if (st->pause_after_ovf && st->have_sys) {
            st->pause_after_ovf = false;
            return SP_OK;
        }
    }
    return SP_OK;
}

/* ---- the reader ---------------------------------------------------------------- */

static int bid(const struct sp_archive_bid *b)
{
    if (b->unpacked || sp_ova_has_ext(b->first_member, ".ovf"))
        return SP_ARCHIVE_BID_SURE;
    return SP_ARCHIVE_BID_NO;
}

/* The order the disks come in: their files' order in References, disks
 * without a file last. */
static int file_rank(const struct sp_ovf_system *sys, int disk)
{
    const struct sp_ovf_file *f = sys->disks[disk].file_id[0] ? sp_ovf_find_file(sys, sys->disks[disk].file_id) : NULL;
    return f ? (int)(f - sys->files) : sys->nfiles + disk;
}

/* The archive's disks in the order they come, each named by a new uuid,
 * and the VM on them. */
static int map_vm(struct sp_archive_reader *r, struct ova_in *st, struct sp_error *err)
{
    const struct sp_ovf_system *sys = &st->sys;
    int n = sys->ndisks;
    int rc = sp_archive_disks_new(n, &r->disks, err);
    char (*uuids)[SP_UUID_STR] = rc == SP_OK ? sp_zalloc(sizeof *uuids * (size_t)(n + 1), err) : NULL;
    st->order = uuids ? sp_zalloc(sizeof *st->order * (size_t)(n + 1), err) : NULL;
    if (rc == SP_OK && (!uuids || !st->order))
        rc = SP_ENOMEM;
    for (int i = 0; rc == SP_OK && i < n; i++) {
        int k = 0; /* how many disks come before disk i */
        for (int j = 0; j < n; j++)
            k += file_rank(sys, j) < file_rank(sys, i);
        st->order[k] = i;
        snprintf(r->disks[k].id, sizeof r->disks[k].id, "%s", sys->disks[i].disk_id);
        r->disks[k].size = sys->disks[i].capacity;
        r->disks[k].data_bytes = sys->disks[i].populated_size;
        snprintf(uuids[i], SP_UUID_STR, "%s", r->disks[k].uuid);
    }
    r->ndisks = n;
    if (rc == SP_OK)
        rc = sp_vm_from_ovf(sys, NULL, (const char(*)[SP_UUID_STR])uuids, &r->vm, &r->notes, err);
    free(uuids);
    return rc;
}

static int ova_open(struct sp_archive_reader *r, struct sp_error *err)
{
    struct ova_in *st = sp_zalloc(sizeof *st, err);
    if (!st)
        return SP_ENOMEM;
    r->priv = st;
    st->r = r;
    st->label = r->label;
    st->pending_fi = -1;
    st->pending_di = -1;
    int rc = r->in ? ova_package_tar(r->in, r->label, &st->pkg, err) : ova_package_dir(r->path, &st->pkg, err);
    st->pause_after_ovf = true;
    if (rc == SP_OK)
        rc = read_package(st, err); /* stops after the .ovf */
    if (rc == SP_OK && !st->have_sys)
        rc = ierr(st, SP_EFORMAT, err, "empty archive, no .ovf");
    if (rc == SP_OK)
        rc = map_vm(r, st, err);
    return rc;
}

static int archive_index(const struct ova_in *st, int di)
{
    int k = 0;
    while (k < st->sys.ndisks && st->order[k] != di)
        k++;
    return k;
}

static int ova_next_disk(struct sp_archive_reader *r, int *k, struct sp_error *err)
{
    struct ova_in *st = r->priv;
    *k = -1;
    int rc = SP_OK;
    if (st->pending_fi < 0) {
        st->pause_at_disk = true;
        rc = read_package(st, err);
        st->pause_at_disk = false;
    }
    if (rc == SP_OK && st->pending_fi >= 0)
        *k = archive_index(st, st->pending_di);
    return rc;
}

static int ova_read_disk(struct sp_archive_reader *r, struct sp_disk *target, struct sp_error *err)
{
    struct ova_in *st = r->priv;
    if (st->pending_fi < 0)
        return sp_error_set(err, SP_EINVAL, "%s: no disk to read", r->label);
    int fi = st->pending_fi;
    st->pending_fi = -1;
    st->pending_di = -1;
    return read_file_member(st, fi, st->pending_name, target, err);
}

static int ova_finish(struct sp_archive_reader *r, struct sp_error *err)
{
    struct ova_in *st = r->priv;
    int rc = st->pending_fi >= 0 ? ova_read_disk(r, NULL, err) : SP_OK;
    return rc == SP_OK ? read_package(st, err) : rc;
}

static void ova_info(const struct sp_archive_reader *r, struct sp_archive_info *info)
{
    fill_info(r->priv, info);
}

static void ova_in_free(struct sp_archive_reader *r)
{
    struct ova_in *st = r->priv;
    sp_ovf_free(&st->sys);
    sp_manifest_free(&st->mf);
    free(st->mf_text);
    free(st->cert_text);
    free(st->files);
    ova_package_free(st->pkg);
    free(st->order);
    free(st);
    r->priv = NULL;
}

const struct sp_archive_read_format sp_archive_ova_reader = {
    .name = "ova",
    .bid = bid,
    .open = ova_open,
    .next_disk = ova_next_disk,
    .read_disk = ova_read_disk,
    .finish = ova_finish,
    .info = ova_info,
    .free = ova_in_free,
};
