/* archive/par_compress: gzip members and zstd frames made on worker
 * threads, read back by decoders that share no code with the compressor:
 * zlib's inflate (gzip), libarchive's gzip reader (what our importer
 * uses), libzstd's decompressor. */
#include <archive.h>
#include <stdbool.h>
#include <stdint.h>
#include <zlib.h>
#include <zstd.h>

#include "archive/par_compress.h"
#include "tests/unit/testlib.h"

#define SMALL_BLOCK (64u << 10)

struct buf {
    uint8_t *p;
    size_t len, cap;
    int fail_after;   /* > 0: the output fails at that call (a full disk) */
    int calls;
};

static void buf_add(struct buf *b, const void *p, size_t len)
{
    if (b->len + len > b->cap) {
        b->cap = (b->len + len) * 2 + 1;
        b->p = realloc(b->p, b->cap);
        CHECK(b->p != NULL);
    }
    if (len)
        memcpy(b->p + b->len, p, len);
    b->len += len;
}

static int out_fn(void *ctx, const void *p, size_t len, struct sp_error *err)
{
    struct buf *b = ctx;
    if (b->fail_after && ++b->calls >= b->fail_after)
        return sp_error_set(err, SP_EIO, "write: No space left on device");
    buf_add(b, p, len);
    return SP_OK;
}

/* n bytes: 0 random, 1 text-like (compresses), 2 both in turns of 100 KiB */
static uint8_t *make_data(size_t n, int kind)
{
    static const char *words[] = {"GET ", "/index.html ", "200 ", "xen ", "snapport ", "\n", "disk ", "error "};
    uint8_t *d = malloc(n ? n : 1);
    CHECK(d != NULL);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n;) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bool text = kind == 1 || (kind == 2 && (i / 100000) % 2);
        if (!text) {
            d[i++] = (uint8_t)(x >> 24);
            continue;
        }
        const char *w = words[x % 8];
        for (size_t k = 0; w[k] && i < n; k++)
            d[i++] = (uint8_t)w[k];
    }
    return d;
}

/* Compresses data in uneven pieces (so that writes straddle blocks). */
static struct buf pcompress(const struct sp_pcomp_opts *o, const uint8_t *data, size_t n)
{
    struct buf b = {0};
    struct sp_pcomp *pc;
    struct sp_error err;
    CHECK_OK(sp_pcomp_open(o, out_fn, &b, &pc, &err));
    size_t off = 0, piece = 1;
    while (off < n) {
        size_t k = piece < n - off ? piece : n - off;
        CHECK_OK(sp_pcomp_write(pc, data + off, k, &err));
        off += k;
        piece = piece * 3 + 7;
        if (piece > 300000)
            piece = 5;
    }
    CHECK_OK(sp_pcomp_finish(pc, &err));
    sp_pcomp_free(pc);
    return b;
}

/* zlib's inflate over every member; returns the number of members. */
static unsigned zlib_gunzip(const struct buf *gz, struct buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    CHECK(inflateInit2(&z, 16 + MAX_WBITS) == Z_OK);
    z.next_in = gz->p;
    z.avail_in = (uInt)gz->len;
    unsigned members = 0;
    uint8_t chunk[65536];
    while (z.avail_in > 0) {
        z.next_out = chunk;
        z.avail_out = sizeof chunk;
        int st = inflate(&z, Z_NO_FLUSH);
        CHECK(st == Z_OK || st == Z_STREAM_END);
        buf_add(out, chunk, sizeof chunk - z.avail_out);
        if (st == Z_STREAM_END) {
            members++;
            CHECK(inflateReset(&z) == Z_OK);
        }
    }
    CHECK(z.total_in == 0); /* the stream ended with a whole member */
    inflateEnd(&z);
    return members;
}

/* Every member's header: gzip magic, deflate, no flags (no name), no time. */
static void check_headers(const struct buf *gz, unsigned members)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    CHECK(inflateInit2(&z, 16 + MAX_WBITS) == Z_OK);
    size_t pos = 0;
    uint8_t sink[65536];
    for (unsigned m = 0; m < members; m++) {
        const uint8_t *h = gz->p + pos;
        CHECK(h[0] == 0x1f && h[1] == 0x8b && h[2] == 8 && h[3] == 0);
        CHECK(h[4] == 0 && h[5] == 0 && h[6] == 0 && h[7] == 0);
        z.next_in = gz->p + pos;
        z.avail_in = (uInt)(gz->len - pos);
        int st;
        do {
            z.next_out = sink;
            z.avail_out = sizeof sink;
            st = inflate(&z, Z_NO_FLUSH);
        } while (st == Z_OK);
        CHECK(st == Z_STREAM_END);
        pos = gz->len - z.avail_in;
        CHECK(inflateReset(&z) == Z_OK);
    }
    CHECK(pos == gz->len);
    inflateEnd(&z);
}

static void gzip_case(size_t n, int kind, size_t block, unsigned want_members)
{
    uint8_t *data = make_data(n, kind);
    struct sp_pcomp_opts o = {.kind = SP_PCOMP_GZIP, .threads = 3, .block = block};
    struct buf gz = pcompress(&o, data, n);
    struct buf back = {0};
    CHECK_EQ_U64(zlib_gunzip(&gz, &back), want_members);
    CHECK_EQ_U64(back.len, n);
    CHECK(n == 0 || memcmp(back.p, data, n) == 0);
    check_headers(&gz, want_members);
    free(gz.p);
    free(back.p);
    free(data);
}

static void gzip_empty(void)
{
    gzip_case(0, 0, SMALL_BLOCK, 1); /* one empty member: gzip -t takes it, an empty file it does not */
}

static void gzip_one_block(void)
{
    gzip_case(SMALL_BLOCK, 1, SMALL_BLOCK, 1);
    gzip_case(SMALL_BLOCK, 0, SMALL_BLOCK, 1);
    gzip_case(1, 0, SMALL_BLOCK, 1);
}

static void gzip_many_blocks(void)
{
    gzip_case(40 * SMALL_BLOCK + 12345, 2, SMALL_BLOCK, 41);
    gzip_case(40 * SMALL_BLOCK, 0, SMALL_BLOCK, 40);
    gzip_case(3 * SP_PCOMP_GZIP_BLOCK + 1, 1, 0, 4); /* the default block size */
}

/* The same bytes whatever the thread count (S3 resume relies on it). */
static void gzip_deterministic(void)
{
    size_t n = 20 * SMALL_BLOCK + 999;
    uint8_t *data = make_data(n, 2);
    struct sp_pcomp_opts o = {.kind = SP_PCOMP_GZIP, .threads = 1, .block = SMALL_BLOCK};
    struct buf a = pcompress(&o, data, n);
    for (int t = 2; t <= 5; t += 3) {
        o.threads = t;
        struct buf b = pcompress(&o, data, n);
        CHECK(a.len == b.len && memcmp(a.p, b.p, a.len) == 0);
        free(b.p);
    }
    o.level = 1; /* and the level matters */
    struct buf c = pcompress(&o, data, n);
    CHECK(c.len != a.len || memcmp(a.p, c.p, a.len) != 0);
    free(a.p);
    free(c.p);
    free(data);
}

/* A block whose samples do not shrink is stored (about its own size); one
 * with a compressible quarter is compressed. */
static void gzip_incompressible(void)
{
    uint8_t *rnd = make_data(2 * SMALL_BLOCK, 0), *txt = make_data(SMALL_BLOCK, 1);
    memcpy(rnd + SMALL_BLOCK + SMALL_BLOCK * 3 / 4, txt, SMALL_BLOCK / 4);
    struct sp_pcomp_opts o = {.kind = SP_PCOMP_GZIP, .threads = 2, .block = SMALL_BLOCK};
    struct buf one = pcompress(&o, rnd, SMALL_BLOCK);
    CHECK(one.len > SMALL_BLOCK && one.len < SMALL_BLOCK + 64);
    struct buf two = pcompress(&o, rnd, 2 * SMALL_BLOCK);
    CHECK(two.len - one.len < SMALL_BLOCK * 3 / 4 + SMALL_BLOCK / 16);
    struct buf back = {0};
    CHECK_EQ_U64(zlib_gunzip(&two, &back), 2);
    CHECK(back.len == 2 * SMALL_BLOCK && memcmp(back.p, rnd, back.len) == 0);
    free(back.p);
    free(one.p);
    free(two.p);
    free(rnd);
    free(txt);
}

/* libarchive's gzip reader (the importer's) reads every member. */
static void gzip_libarchive_reads_members(void)
{
    size_t n = 10 * SMALL_BLOCK + 7;
    uint8_t *data = make_data(n, 2);
    struct sp_pcomp_opts o = {.kind = SP_PCOMP_GZIP, .threads = 2, .block = SMALL_BLOCK};
    struct buf gz = pcompress(&o, data, n);
    struct archive *a = archive_read_new();
    CHECK(a != NULL);
    archive_read_support_filter_gzip(a);
    archive_read_support_format_raw(a);
    CHECK(archive_read_open_memory(a, gz.p, gz.len) == ARCHIVE_OK);
    struct archive_entry *e;
    CHECK(archive_read_next_header(a, &e) == ARCHIVE_OK);
    CHECK(archive_filter_code(a, 0) == ARCHIVE_FILTER_GZIP);
    struct buf back = {0};
    uint8_t chunk[8192];
    la_ssize_t k;
    while ((k = archive_read_data(a, chunk, sizeof chunk)) > 0)
        buf_add(&back, chunk, (size_t)k);
    CHECK(k == 0);
    CHECK_EQ_U64(back.len, n);
    CHECK(memcmp(back.p, data, n) == 0);
    archive_read_free(a);
    free(back.p);
    free(gz.p);
    free(data);
}

static struct buf zstd_back(const struct buf *zs)
{
    struct buf out = {0};
    ZSTD_DCtx *d = ZSTD_createDCtx();
    CHECK(d != NULL);
    ZSTD_inBuffer in = {zs->p, zs->len, 0};
    uint8_t chunk[65536];
    size_t r = 1;
    while (in.pos < in.size) {
        ZSTD_outBuffer ob = {chunk, sizeof chunk, 0};
        r = ZSTD_decompressStream(d, &ob, &in);
        CHECK(!ZSTD_isError(r));
        buf_add(&out, chunk, ob.pos);
    }
    CHECK(r == 0); /* a whole frame, its checksum checked */
    ZSTD_freeDCtx(d);
    return out;
}

static void zstd_round_trip(void)
{
    size_t sizes[] = {0, 1, 5u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t *data = make_data(sizes[i], 2);
        struct sp_pcomp_opts o = {.kind = SP_PCOMP_ZSTD, .threads = 2};
        struct buf zs = pcompress(&o, data, sizes[i]);
        struct buf back = zstd_back(&zs);
        CHECK_EQ_U64(back.len, sizes[i]);
        CHECK(sizes[i] == 0 || memcmp(back.p, data, sizes[i]) == 0);
        free(back.p);
        free(zs.p);
        free(data);
    }
}

/* zstd with workers: the same bytes for 1, 2 or 4 of them. */
static void zstd_deterministic(void)
{
    size_t n = 9u << 20;
    uint8_t *data = make_data(n, 2);
    struct sp_pcomp_opts o = {.kind = SP_PCOMP_ZSTD, .threads = 1};
    struct buf a = pcompress(&o, data, n);
    for (int t = 2; t <= 4; t += 2) {
        o.threads = t;
        struct buf b = pcompress(&o, data, n);
        CHECK(a.len == b.len && memcmp(a.p, b.p, a.len) == 0);
        free(b.p);
    }
    free(a.p);
    free(data);
}

/* An output that fails (a full disk) fails the write or the finish; the
 * workers stop and are joined (a hang or a leak here fails the test under
 * the sanitizers). */
static void output_fails(void)
{
    size_t n = 30 * SMALL_BLOCK;
    uint8_t *data = make_data(n, 0);
    for (int kind = 0; kind < 2; kind++) {
        struct buf b = {.fail_after = 3};
        struct sp_pcomp_opts o = {.kind = kind ? SP_PCOMP_ZSTD : SP_PCOMP_GZIP, .threads = 2, .block = SMALL_BLOCK};
        struct sp_pcomp *pc;
        struct sp_error err;
        CHECK_OK(sp_pcomp_open(&o, out_fn, &b, &pc, &err));
        int rc = sp_pcomp_write(pc, data, n, &err);
        if (rc == SP_OK)
            rc = sp_pcomp_finish(pc, &err);
        CHECK(rc == SP_EIO);
        CHECK(strstr(err.msg, "No space") != NULL);
        CHECK(sp_pcomp_write(pc, data, 1, &err) != SP_OK); /* and stays failed */
        sp_pcomp_free(pc);
        free(b.p);
    }
    free(data);
}

/* Freed without a finish (an export that failed elsewhere): the workers
 * are joined, nothing more is written. */
static void abandoned(void)
{
    size_t n = 30 * SMALL_BLOCK + 5;
    uint8_t *data = make_data(n, 1);
    for (int kind = 0; kind < 2; kind++) {
        struct buf b = {0};
        struct sp_pcomp_opts o = {.kind = kind ? SP_PCOMP_ZSTD : SP_PCOMP_GZIP, .threads = 4, .block = SMALL_BLOCK};
        struct sp_pcomp *pc;
        struct sp_error err;
        CHECK_OK(sp_pcomp_open(&o, out_fn, &b, &pc, &err));
        CHECK_OK(sp_pcomp_write(pc, data, n, &err));
        size_t before = b.len;
        sp_pcomp_free(pc);
        CHECK_EQ_U64(b.len, before);
        free(b.p);
    }
    sp_pcomp_free(NULL);
    free(data);
}

static void levels(void)
{
    struct buf b = {0};
    struct sp_pcomp *pc;
    struct sp_error err;
    struct sp_pcomp_opts o = {.kind = SP_PCOMP_GZIP, .level = 13};
    CHECK(sp_pcomp_open(&o, out_fn, &b, &pc, &err) == SP_EINVAL && pc == NULL);
    o.level = 12;
    CHECK_OK(sp_pcomp_open(&o, out_fn, &b, &pc, &err));
    sp_pcomp_free(pc);
    o = (struct sp_pcomp_opts){.kind = SP_PCOMP_ZSTD, .level = 20};
    CHECK(sp_pcomp_open(&o, out_fn, &b, &pc, &err) == SP_EINVAL);
    o.level = 19;
    CHECK_OK(sp_pcomp_open(&o, out_fn, &b, &pc, &err));
    sp_pcomp_free(pc);
    o.level = -1;
    CHECK(sp_pcomp_open(&o, out_fn, &b, &pc, &err) == SP_EINVAL);
    free(b.p);
}

TEST_MAIN({"gzip_empty", gzip_empty}, {"gzip_one_block", gzip_one_block}, {"gzip_many_blocks", gzip_many_blocks},
          {"gzip_deterministic", gzip_deterministic}, {"gzip_incompressible", gzip_incompressible}, {"gzip_libarchive_reads_members", gzip_libarchive_reads_members},
          {"zstd_round_trip", zstd_round_trip}, {"zstd_deterministic", zstd_deterministic},
          {"output_fails", output_fails}, {"abandoned", abandoned}, {"levels", levels})
