/* The XVA tar stream (reference/xva.md section 1), over libarchive.
 *
 * Writer: v7tar headers (what XAPI's ocaml-tar writes and reads), every
 * member a regular file, mode 0400, uid/gid 0, one mtime. The stream is not
 * blocked (archive_write_set_bytes_per_block 0): after the last member
 * libarchive's v7tar writer emits exactly two 512-byte zero blocks and no
 * padding to a 10240-byte record, as XAPI and xva-img do (checked by the
 * unit test "end_of_archive": file size = the sum of the members + 1024).
 * Compression is not libarchive's filter layer (one core) but ours on
 * every core (archive/par_compress.h): gzip members without a timestamp in
 * their headers, so that the same snapshot gives the same bytes; zstd.
 *
 * Reader: one forward pass (a pipe is fine), filters recognised from the
 * bytes. A one-member lookahead lets a VDI stop at its virtual size without
 * eating the next VDI's first member. */
#include "archive/xva_stream.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/instream.h"
#include "archive/tar_out.h"
#include "base/util.h"

/* ova.xml is metadata (a few KiB to a few hundred KiB for a VM with many
 * snapshots' worth of records): anything larger is not an XVA we want to
 * hold in memory. */
#define XVA_XML_MAX (16u << 20)
/* The block size comes from the first data member (XAPI does the same);
 * XAPI writes 1 MiB, and we hold one block in memory, so cap it. */
#define XVA_BLOCK_MAX (16u << 20)
/* The writer's counters: 8 decimal digits, as XAPI writes them. */
#define XVA_COUNTER_DIGITS 8
#define XVA_COUNTER_MAX 99999999u
/* The reader takes wider counters (some tools write 20 digits): XAPI
 * parses the counter as a number and only needs it to increase. 20 digits
 * hold any 64-bit value; the value must also fit (checked). */
#define XVA_COUNTER_DIGITS_MAX 20
/* V7 tar: the name field is 100 bytes, NUL-terminated when shorter. */
#define XVA_NAME_MAX 99
/* The longest checksum member content (SHA-1 hex) with some slack for a
 * trailing newline another tool might add; anything longer is wrong. */
#define XVA_SUM_MAX 64
#define XVA_XXH_HEX 16
#define XVA_SHA1_HEX 40
/* Longest member name quoted in a message. */
#define XVA_QUOTE_MAX 120

/* ---- shared ------------------------------------------------------------- */

static const char *digest_ext(enum sp_xva_digest d)
{
    return d == SP_XVA_SHA1 ? "checksum" : "xxhash";
}

/* hex must hold 41 bytes. */
static int digest_hex(EVP_MD *sha1, enum sp_xva_digest d, const void *buf, size_t len, char *hex, size_t hexlen)
{
    if (d == SP_XVA_XXHASH) {
        snprintf(hex, hexlen, "%016llX", (unsigned long long)XXH64(buf, len, 0));
        return 0;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!sha1 || !EVP_Digest(buf, len, md, &mdlen, sha1, NULL) || mdlen * 2 + 1 > hexlen)
        return -1;
    for (unsigned int i = 0; i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* A member name fit for a one-line message: non-printable bytes become '?'. */
static const char *quote(const char *s, char *out, size_t outlen)
{
    if (!s)
        s = "(unnamed)";
    size_t i = 0;
    for (; s[i] && i + 1 < outlen; i++)
        out[i] = (s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    out[i] = '\0';
    return out;
}

bool sp_xva_id_valid(const char *id)
{
    size_t n = strnlen(id, SP_XVA_ID_MAX);
    if (n == 0 || n >= SP_XVA_ID_MAX || strcmp(id, ".") == 0 || strstr(id, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c <= ' ' || c >= 0x7f || c == '/' || c == '\\')
            return false;
    }
    return true;
}

/* The longest member name the reader accepts fits a V7 header. */
_Static_assert(SP_XVA_ID_MAX - 1 + 1 + XVA_COUNTER_DIGITS_MAX + sizeof ".checksum" - 1 <= XVA_NAME_MAX,
               "an XVA member name must fit a V7 tar header");

/* ---- writing ------------------------------------------------------------ */

struct sp_xva_writer {
    struct sp_tar_out *t;
    enum sp_xva_digest digest;
    int64_t mtime;
    EVP_MD *sha1;
    uint8_t *buf;          /* one block */
    bool wrote_xml, closed, failed;
    char last_id[XVA_NAME_MAX + 1];
};

static int write_member(struct sp_xva_writer *w, const char *name, const void *data, size_t len, struct sp_error *err)
{
    int rc = sp_tar_out_begin(w->t, name, len, w->mtime, 0400, err);
    if (rc == SP_OK)
        rc = sp_tar_out_data(w->t, data, len, err);
    if (rc != SP_OK)
        w->failed = true;
    return rc;
}

int sp_xva_writer_open(int fd, enum sp_xva_compress compress, int level, enum sp_xva_digest digest, int64_t mtime,
                       struct sp_xva_writer **out, struct sp_error *err)
{
    *out = NULL;
    if (mtime < 0 || mtime > 077777777777LL) /* 11 octal digits in a V7 header */
        return sp_error_set(err, SP_EINVAL, "mtime %lld does not fit a tar header", (long long)mtime);
    struct sp_xva_writer *w = sp_zalloc(sizeof *w, err);
    if (!w)
        return SP_ENOMEM;
    w->digest = digest;
    w->mtime = mtime;
    int rc = SP_ENOMEM;
    w->buf = sp_alloc(SP_XVA_BLOCK, err);
    if (!w->buf)
        goto fail;
    if (digest == SP_XVA_SHA1 && !(w->sha1 = EVP_MD_fetch(NULL, "SHA1", NULL))) {
        rc = sp_error_set(err, SP_EUNSUPPORTED, "SHA-1 is not available from OpenSSL");
        goto fail;
    }
    /* V7 headers as XAPI writes them */
    enum sp_tar_filter f = compress == SP_XVA_GZIP ? SP_TAR_GZIP : compress == SP_XVA_ZSTD ? SP_TAR_ZSTD : SP_TAR_PLAIN;
    rc = sp_tar_out_open(fd, SP_TAR_V7, f, level, "xva writer", &w->t, err);
    if (rc != SP_OK)
        goto fail;
    *out = w;
    return SP_OK;
fail:
    w->failed = true;
    sp_xva_writer_free(w);
    return rc;
}

int sp_xva_write_xml(struct sp_xva_writer *w, const char *xml, size_t len, struct sp_error *err)
{
    if (w->failed || w->closed || w->wrote_xml)
        return sp_error_set(err, SP_EINVAL, "ova.xml: must be the first member, written once");
    if (len > XVA_XML_MAX)
        return sp_error_set(err, SP_ELIMIT, "ova.xml: %zu bytes is more than %u", len, XVA_XML_MAX);
    int rc = write_member(w, "ova.xml", xml, len, err);
    if (rc == SP_OK)
        w->wrote_xml = true;
    return rc;
}

static void report(const struct sp_progress *prog, uint64_t done, uint64_t total)
{
    if (prog && prog->update)
        prog->update(prog->ctx, done, total);
}

/* One data member and its checksum member. */
static int write_block(struct sp_xva_writer *w, const char *id, uint64_t counter, size_t len, struct sp_error *err)
{
    char name[XVA_NAME_MAX + 1 + 16];
    char hex[XVA_SHA1_HEX + 1];
    snprintf(name, sizeof name, "%s/%08llu", id, (unsigned long long)counter);
    int rc = write_member(w, name, w->buf, len, err);
    if (rc != SP_OK)
        return rc;
    if (digest_hex(w->sha1, w->digest, w->buf, len, hex, sizeof hex) != 0) {
        w->failed = true;
        return sp_error_set(err, SP_EIO, "%s: SHA-1 failed", name);
    }
    size_t n = strlen(name);
    snprintf(name + n, sizeof name - n, ".%s", digest_ext(w->digest));
    return write_member(w, name, hex, strlen(hex), err);
}

int sp_xva_write_disk(struct sp_xva_writer *w, const char *id, struct sp_disk *disk, const struct sp_progress *prog,
                      struct sp_error *err)
{
    if (w->failed || w->closed || !w->wrote_xml)
        return sp_error_set(err, SP_EINVAL, "%s: blocks must follow ova.xml", id);
    if (!sp_xva_id_valid(id))
        return sp_error_set(err, SP_EINVAL, "%s: not a VDI id usable as a tar folder name", id);
    if (w->last_id[0] && strcmp(id, w->last_id) <= 0)
        return sp_error_set(err, SP_EINVAL, "%s: VDIs must be written in the order of their ids (after %s)", id,
                            w->last_id);
    uint64_t size = disk->size;
    uint64_t nblocks = sp_div_round_up(size, SP_XVA_BLOCK);
    if (nblocks > (uint64_t)XVA_COUNTER_MAX + 1)
        return sp_error_set(err, SP_ELIMIT, "%s: %llu bytes need more than %u blocks (8-digit counters)", id,
                            (unsigned long long)size, XVA_COUNTER_MAX + 1);
    snprintf(w->last_id, sizeof w->last_id, "%s", id);

    /* The total is for progress only: without a progress hook the disk is
     * not walked twice (a disk that reads forward only cannot be). */
    uint64_t total = 0, done = 0;
    int rc = prog && prog->update ? sp_disk_data_bytes(disk, &total, err) : SP_OK;
    if (rc != SP_OK)
        return sp_error_prefix(err, "%s", id);
    report(prog, 0, total);

    struct sp_extent ext = {0, 0, SP_EXTENT_ZERO}; /* the extent last asked for */
    uint64_t b = 0;
    while (b < nblocks) {
        uint64_t off = b * SP_XVA_BLOCK;
        size_t blen = (size_t)sp_min_u64(SP_XVA_BLOCK, size - off);
        bool data = false;
        uint64_t pos = off, zero_end = 0;
        while (pos < off + blen) {
            if (pos >= ext.start + ext.len) {
                rc = sp_disk_next_extent(disk, pos, &ext, err);
                if (rc != SP_OK)
                    return sp_error_prefix(err, "%s", id);
                if (ext.len == 0 || ext.start != pos)
                    return sp_error_set(err, SP_EIO, "%s: %s: bad extent at %llu", id, disk->path,
                                        (unsigned long long)pos);
            }
            uint64_t end = sp_min_u64(ext.start + ext.len, off + blen);
            size_t n = (size_t)(end - pos);
            if (ext.kind == SP_EXTENT_DATA) {
                rc = sp_disk_read(disk, pos, w->buf + (pos - off), n, err);
                if (rc != SP_OK)
                    return sp_error_prefix(err, "%s", id);
                data = true;
                done += n;
            } else {
                memset(w->buf + (pos - off), 0, n);
                zero_end = ext.start + ext.len;
            }
            pos = end;
        }
        bool keep = b == 0 || b == nblocks - 1 || (data && !sp_is_zero(w->buf, blen));
        if (keep) {
            rc = write_block(w, id, b, blen, err);
            if (rc != SP_OK)
                return rc;
        }
        if (data)
            report(prog, done, total);
        b++;
        /* A block with no data that ends in a ZERO extent: the blocks wholly
         * inside that extent are zeros; jump to the one holding its end
         * (never past the last block, which is always written). */
        if (!data && zero_end > off + blen && zero_end / SP_XVA_BLOCK > b)
            b = sp_min_u64(zero_end / SP_XVA_BLOCK, nblocks - 1);
    }
    report(prog, done, total);
    return SP_OK;
}

int sp_xva_writer_close(struct sp_xva_writer *w, struct sp_error *err)
{
    if (w->failed || w->closed)
        return sp_error_set(err, SP_EINVAL, "xva writer: already closed or failed");
    if (!w->wrote_xml)
        return sp_error_set(err, SP_EINVAL, "xva writer: no ova.xml written");
    w->closed = true;
    int rc = sp_tar_out_close(w->t, err);
    if (rc != SP_OK)
        w->failed = true;
    return rc;
}

void sp_xva_writer_free(struct sp_xva_writer *w)
{
    if (!w)
        return;
    sp_tar_out_free(w->t); /* without a close, the end blocks never reach the output */
    EVP_MD_free(w->sha1);
    free(w->buf);
    free(w);
}

/* ---- reading ------------------------------------------------------------ */

struct member {
    bool valid;            /* a header is held, its data not yet read */
    bool eof;              /* the archive has no more members */
    char name[XVA_QUOTE_MAX + 1]; /* quoted for messages and comparisons */
    bool name_ok;          /* the raw name fit and had no odd bytes */
    int64_t size;
    bool regular;
};

struct sp_xva_reader {
    struct archive *a;
    char *name;            /* the archive, for messages */
    char *xml;
    size_t xml_len;
    unsigned digests;      /* 1 << kind of every checksum member seen */
    enum sp_xva_compress compress;
    uint64_t block_size;   /* 0 until a data member defines it */
    EVP_MD *sha1;
    uint8_t *buf;
    size_t buf_cap;
    struct member cur;     /* the lookahead */
    char last[XVA_QUOTE_MAX + 1]; /* the member taken last, "" before any */
    bool failed;
    struct sp_instream *own_in; /* opened from a descriptor: ours to free */
};

static int rerr_archive(struct sp_xva_reader *r, struct sp_error *err, const char *member)
{
    const char *m = archive_error_string(r->a);
    r->failed = true;
    if (member)
        return sp_error_set(err, SP_EFORMAT, "%s: %s: %s", r->name, member, m ? m : "read error");
    return sp_error_set(err, SP_EFORMAT, "%s: %s", r->name, m ? m : "read error");
}

/* Makes r->cur the next member (without reading its data). */
static int peek(struct sp_xva_reader *r, const char *after, struct sp_error *err)
{
    if (r->cur.valid || r->cur.eof)
        return SP_OK;
    struct archive_entry *e;
    int st = archive_read_next_header(r->a, &e);
    if (st == ARCHIVE_EOF) {
        r->cur.eof = true;
        return SP_OK;
    }
    if (st < ARCHIVE_WARN) {
        /* a header that cannot be read (a size past 2^63 ...) is the one
         * after the member taken last */
        char q[XVA_QUOTE_MAX + 8];
        if (!after && r->last[0])
            after = r->last;
        if (after) {
            snprintf(q, sizeof q, "after %s", after);
            return rerr_archive(r, err, q);
        }
        return rerr_archive(r, err, NULL);
    }
    const char *raw = archive_entry_pathname(e);
    quote(raw, r->cur.name, sizeof r->cur.name);
    r->cur.name_ok = raw && strlen(raw) <= XVA_NAME_MAX && strcmp(raw, r->cur.name) == 0;
    r->cur.size = archive_entry_size(e);
    r->cur.regular = archive_entry_filetype(e) == AE_IFREG;
    r->cur.valid = true;
    return SP_OK;
}

/* Reads exactly len bytes of the current member's data into buf, then
 * drops the lookahead. */
static int take(struct sp_xva_reader *r, void *buf, size_t len, struct sp_error *err)
{
    char member[sizeof r->cur.name];
    memcpy(member, r->cur.name, sizeof member);
    memcpy(r->last, r->cur.name, sizeof r->last);
    r->cur.valid = false;
    uint8_t *p = buf;
    size_t got = 0;
    while (got < len) {
        la_ssize_t n = archive_read_data(r->a, p + got, len - got);
        if (n < 0)
            return rerr_archive(r, err, member);
        if (n == 0) {
            r->failed = true;
            return sp_error_set(err, SP_EFORMAT, "%s: %s: truncated (%zu of %zu bytes)", r->name, member, got, len);
        }
        got += (size_t)n;
    }
    return SP_OK;
}

/* The filters XAPI writes, and only those, each run in this process:
 * libarchive's filter_all would also take lrzip, lzop, grzip and others by
 * running those programs from PATH on the archive's bytes (fuzzing found
 * an input that made the reader exec "lrzip -d"). ARCHIVE_WARN is such a
 * program standing in for a missing library: refused too. */
static int support_filters(struct archive *a)
{
    if (archive_read_support_filter_gzip(a) != ARCHIVE_OK || archive_read_support_filter_zstd(a) != ARCHIVE_OK)
        return ARCHIVE_FATAL;
    return ARCHIVE_OK;
}

int sp_xva_reader_open(int fd, const char *name, struct sp_xva_reader **out, struct sp_error *err)
{
    *out = NULL;
    struct sp_instream *in = sp_zalloc(sizeof *in, err);
    if (!in)
        return SP_ENOMEM;
    int rc = sp_instream_init(in, fd, name ? name : "xva", err);
    if (rc == SP_OK)
        rc = sp_xva_reader_open_in(in, name, out, err);
    if (rc == SP_OK) {
        (*out)->own_in = in;
        return SP_OK;
    }
    sp_instream_free(in);
    free(in);
    return rc;
}

int sp_xva_reader_open_in(struct sp_instream *in, const char *name, struct sp_xva_reader **out, struct sp_error *err)
{
    *out = NULL;
    struct sp_xva_reader *r = sp_zalloc(sizeof *r, err);
    if (!r)
        return SP_ENOMEM;
    int rc = SP_ENOMEM;
    r->name = strdup(name ? name : "xva");
    r->a = archive_read_new();
    r->buf_cap = SP_XVA_BLOCK;
    r->buf = malloc(r->buf_cap);
    r->sha1 = EVP_MD_fetch(NULL, "SHA1", NULL); /* NULL: .checksum members fail */
    if (!r->name || !r->a || !r->buf) {
        sp_error_set(err, SP_ENOMEM, "out of memory");
        goto fail;
    }
    rc = SP_EFORMAT;
    if (support_filters(r->a) != ARCHIVE_OK || archive_read_support_format_tar(r->a) != ARCHIVE_OK) {
        rc = rerr_archive(r, err, NULL);
        goto fail;
    }
    if (sp_instream_archive_open(r->a, in) != ARCHIVE_OK) {
        rc = rerr_archive(r, err, NULL);
        goto fail;
    }
    if ((rc = peek(r, NULL, err)) != SP_OK)
        goto fail;
    /* The filter stack is known once the first header is read. */
    switch (archive_filter_code(r->a, 0)) {
    case ARCHIVE_FILTER_NONE:
        r->compress = SP_XVA_PLAIN;
        break;
    case ARCHIVE_FILTER_GZIP:
        r->compress = SP_XVA_GZIP;
        break;
    case ARCHIVE_FILTER_ZSTD:
        r->compress = SP_XVA_ZSTD;
        break;
    default:
        rc = sp_error_set(err, SP_EUNSUPPORTED, "%s: compressed with %s, which XAPI does not import", r->name,
                          archive_filter_name(r->a, 0));
        goto fail;
    }
    if (r->cur.eof) {
        rc = sp_error_set(err, SP_EFORMAT, "%s: empty archive, no ova.xml", r->name);
        goto fail;
    }
    if (strcmp(r->cur.name, "ova.xml") != 0 || !r->cur.name_ok) {
        rc = sp_error_set(err, SP_EFORMAT, "%s: first member is %s, not ova.xml", r->name, r->cur.name);
        goto fail;
    }
    if (!r->cur.regular || r->cur.size < 0 || (uint64_t)r->cur.size > XVA_XML_MAX) {
        rc = sp_error_set(err, SP_EFORMAT, "%s: ova.xml: %s", r->name,
                          !r->cur.regular ? "not a regular file" : "larger than 16 MiB");
        goto fail;
    }
    r->xml_len = (size_t)r->cur.size;
    r->xml = malloc(r->xml_len + 1);
    if (!r->xml) {
        rc = sp_error_set(err, SP_ENOMEM, "out of memory (ova.xml, %zu bytes)", r->xml_len);
        goto fail;
    }
    if ((rc = take(r, r->xml, r->xml_len, err)) != SP_OK)
        goto fail;
    r->xml[r->xml_len] = '\0';
    *out = r;
    return SP_OK;
fail:
    sp_xva_reader_free(r);
    return rc;
}

const char *sp_xva_reader_xml(const struct sp_xva_reader *r, size_t *len)
{
    if (len)
        *len = r->xml_len;
    return r->xml;
}

unsigned sp_xva_reader_digests(const struct sp_xva_reader *r) { return r->digests; }

enum sp_xva_compress sp_xva_reader_compress(const struct sp_xva_reader *r) { return r->compress; }

/* A member name taken apart: "<id>/<counter>" or "<id>/<counter>.xxhash"
 * (or ".checksum"). */
struct member_name {
    char id[SP_XVA_ID_MAX];
    uint64_t counter;
    bool is_sum;
    enum sp_xva_digest kind;   /* of a checksum member */
};

/* 1 to XVA_COUNTER_DIGITS_MAX decimal digits whose value fits 64 bits:
 * the end of them, or NULL. */
static const char *parse_counter(const char *d, uint64_t *out)
{
    uint64_t c = 0;
    size_t i = 0;
    for (; d[i] >= '0' && d[i] <= '9'; i++) {
        uint64_t digit = (uint64_t)(d[i] - '0');
        if (i >= XVA_COUNTER_DIGITS_MAX || c > (UINT64_MAX - digit) / 10)
            return NULL;
        c = c * 10 + digit;
    }
    *out = c;
    return i > 0 ? d + i : NULL;
}

/* Takes m's name apart; false: not the name of an XVA block or checksum. */
static bool split_member(const struct member *m, struct member_name *out)
{
    const char *slash = m->name_ok ? strchr(m->name, '/') : NULL;
    if (!slash || (size_t)(slash - m->name) >= sizeof out->id)
        return false;
    memcpy(out->id, m->name, (size_t)(slash - m->name));
    out->id[slash - m->name] = '\0';
    const char *rest = parse_counter(slash + 1, &out->counter);
    if (!sp_xva_id_valid(out->id) || !rest)
        return false;
    out->is_sum = *rest != '\0';
    out->kind = SP_XVA_XXHASH;
    if (strcmp(rest, ".checksum") == 0)
        out->kind = SP_XVA_SHA1;
    else if (*rest && strcmp(rest, ".xxhash") != 0)
        return false;
    return true;
}

/* Parses r->cur.name into *mn. 1: a member of id; 0: a member of another
 * VDI; -1: not an XVA member name at all. */
static int parse_member(const struct sp_xva_reader *r, const char *id, struct member_name *mn)
{
    if (!split_member(&r->cur, mn))
        return -1;
    return strcmp(mn->id, id) == 0 ? 1 : 0;
}

int sp_xva_reader_next_id(struct sp_xva_reader *r, char id[SP_XVA_ID_MAX], struct sp_error *err)
{
    id[0] = '\0';
    if (r->failed)
        return sp_error_set(err, SP_EINVAL, "%s: the reader failed before", r->name);
    int rc = peek(r, NULL, err);
    struct member_name mn;
    if (rc == SP_OK && !r->cur.eof && split_member(&r->cur, &mn))
        memcpy(id, mn.id, SP_XVA_ID_MAX);
    return rc;
}

/* The checksum member that must follow the block member (counter, len
 * bytes in r->buf), read and compared. */
static int check_sum(struct sp_xva_reader *r, const char *id, const char *member, uint64_t counter, size_t len,
                     struct sp_error *err)
{
    int rc = peek(r, member, err);
    if (rc != SP_OK)
        return rc;
    if (r->cur.eof) {
        r->failed = true;
        return sp_error_set(err, SP_EFORMAT, "%s: %s: the archive ends before its checksum member", r->name,
                            member);
    }
    struct member_name sum;
    int ms = parse_member(r, id, &sum);
    if (ms == 1 && sum.is_sum)
        r->digests |= 1u << sum.kind; /* what the archive uses, even if this one is wrong */
    if (ms != 1 || !sum.is_sum || sum.counter != counter)
        return sp_error_set(err, SP_EFORMAT, "%s: %s: expected its checksum member, found %s", r->name, member,
                            r->cur.name);
    char sum_member[XVA_QUOTE_MAX + 1];
    memcpy(sum_member, r->cur.name, sizeof sum_member);
    if (!r->cur.regular || r->cur.size < 0 || r->cur.size > XVA_SUM_MAX)
        return sp_error_set(err, SP_EFORMAT, "%s: %s: not a checksum (%lld bytes)", r->name, sum_member,
                            (long long)r->cur.size);
    char stored_hex[XVA_SUM_MAX + 1];
    size_t slen = (size_t)r->cur.size;
    if ((rc = take(r, stored_hex, slen, err)) != SP_OK)
        return rc;
    stored_hex[slen] = '\0';
    quote(stored_hex, stored_hex, sizeof stored_hex);
    char hex[XVA_SHA1_HEX + 1];
    enum sp_xva_digest kind = sum.kind;
    if (digest_hex(r->sha1, kind, r->buf, len, hex, sizeof hex) != 0)
        return sp_error_set(err, SP_EUNSUPPORTED, "%s: %s: SHA-1 is not available", r->name, sum_member);
    /* XAPI compares exact strings; other tools write xxhash in lowercase. */
    bool match = kind == SP_XVA_XXHASH ? strcasecmp(stored_hex, hex) == 0 : strcmp(stored_hex, hex) == 0;
    if (!match) {
        r->failed = true;
        return sp_error_set(err, SP_EFORMAT, "%s: %s: %s mismatch (stored %s, computed %s)", r->name, member,
                            kind == SP_XVA_XXHASH ? "xxhash" : "sha1", stored_hex, hex);
    }
    return SP_OK;
}

static int read_disk(struct sp_xva_reader *r, const char *id, uint64_t virtual_size,
                     int (*sink)(void *ctx, uint64_t off, const void *data, size_t len), void *ctx, uint64_t *stored,
                     const struct sp_progress *prog, struct sp_error *err)
{
    if (!sp_xva_id_valid(id))
        return sp_error_set(err, SP_EINVAL, "%s: %s: not a VDI id usable as a tar folder name", r->name, id);
    uint64_t off = 0, have = 0;
    uint64_t prev = 0;
    bool have_prev = false;   /* prev is the counter of the block taken last */
    int rc;
    char member[XVA_QUOTE_MAX + 1];
    report(prog, 0, virtual_size);
    while (off < virtual_size) {
        if ((rc = peek(r, NULL, err)) != SP_OK)
            return rc;
        if (r->cur.eof)
            return sp_error_set(err, SP_EFORMAT, "%s: VDI %s: the last block is missing (the archive ends at %llu of %llu bytes)",
                                r->name, id, (unsigned long long)off, (unsigned long long)virtual_size);
        struct member_name mn;
        int m = parse_member(r, id, &mn);
        if (m < 0)
            return sp_error_set(err, SP_EFORMAT, "%s: %s: unexpected member (in VDI %s)", r->name, r->cur.name, id);
        if (m == 0)
            return sp_error_set(err, SP_EFORMAT, "%s: VDI %s: the last block is missing (%llu of %llu bytes, next member is %s)",
                                r->name, id, (unsigned long long)off, (unsigned long long)virtual_size, r->cur.name);
        memcpy(member, r->cur.name, sizeof member);
        uint64_t counter = mn.counter;
        if (mn.is_sum)
            return sp_error_set(err, SP_EFORMAT, "%s: %s: checksum member without its block", r->name, member);
        if (!r->cur.regular)
            return sp_error_set(err, SP_EFORMAT, "%s: %s: not a regular file", r->name, member);
        if (have_prev && counter <= prev)
            return sp_error_set(err, SP_EFORMAT, "%s: %s: block counter does not increase (after %08llu)", r->name,
                                member, (unsigned long long)prev);
        if (r->cur.size < 0 || (uint64_t)r->cur.size > XVA_BLOCK_MAX)
            return sp_error_set(err, SP_ELIMIT, "%s: %s: block of %lld bytes (more than 16 MiB)", r->name, member,
                                (long long)r->cur.size);
        size_t len = (size_t)r->cur.size;
        if (r->block_size && len > r->block_size)
            return sp_error_set(err, SP_EFORMAT, "%s: %s: block of %zu bytes is larger than the block size %llu",
                                r->name, member, len, (unsigned long long)r->block_size);
        /* Absent blocks before this one: gap x block size (XAPI's rule;
         * 1 MiB until the archive has shown a full block). */
        uint64_t gap = have_prev ? counter - prev - 1 : counter;
        uint64_t bs = r->block_size ? r->block_size : SP_XVA_BLOCK;
        if (gap > (virtual_size - off) / bs || len > virtual_size - off - gap * bs)
            return sp_error_set(err, SP_EFORMAT, "%s: %s: block runs past the virtual size of %s (%llu bytes)",
                                r->name, member, id, (unsigned long long)virtual_size);
        off += gap * bs;
        if (len > r->buf_cap) {
            uint8_t *nb = realloc(r->buf, len);
            if (!nb)
                return sp_error_set(err, SP_ENOMEM, "%s: %s: out of memory (%zu bytes)", r->name, member, len);
            r->buf = nb;
            r->buf_cap = len;
        }
        if ((rc = take(r, r->buf, len, err)) != SP_OK)
            return rc;
        /* The block size is the length of the first block that does not
         * end its VDI (a last block may be short). */
        if (!r->block_size && len > 0 && off + len < virtual_size)
            r->block_size = len;

        if ((rc = check_sum(r, id, member, counter, len, err)) != SP_OK)
            return rc;
        if (sink && len > 0 && (rc = sink(ctx, off, r->buf, len)) != SP_OK)
            return rc;
        off += len;
        have += len;
        prev = counter;
        have_prev = true;
        if (stored)
            *stored = have;
        report(prog, off, virtual_size);
    }
    return SP_OK;
}

int sp_xva_read_disk(struct sp_xva_reader *r, const char *id, uint64_t virtual_size,
                     int (*sink)(void *ctx, uint64_t off, const void *data, size_t len), void *ctx, uint64_t *stored,
                     const struct sp_progress *prog, struct sp_error *err)
{
    if (stored)
        *stored = 0;
    if (r->failed)
        return sp_error_set(err, SP_EINVAL, "%s: the reader failed before", r->name);
    int rc = read_disk(r, id, virtual_size, sink, ctx, stored, prog, err);
    if (rc != SP_OK) /* the stream position is lost: no further reads */
        r->failed = true;
    return rc;
}

int sp_xva_reader_finish(struct sp_xva_reader *r, struct sp_error *err)
{
    if (r->failed)
        return sp_error_set(err, SP_EINVAL, "%s: the reader failed before", r->name);
    int rc = peek(r, NULL, err);
    if (rc != SP_OK)
        return rc;
    if (!r->cur.eof)
        return sp_error_set(err, SP_EFORMAT, "%s: %s: unexpected member after the last VDI", r->name, r->cur.name);
    return SP_OK;
}

void sp_xva_reader_free(struct sp_xva_reader *r)
{
    if (!r)
        return;
    if (r->a)
        archive_read_free(r->a);
    EVP_MD_free(r->sha1);
    free(r->buf);
    free(r->xml);
    free(r->name);
    if (r->own_in) {
        sp_instream_free(r->own_in);
        free(r->own_in);
    }
    free(r);
}
