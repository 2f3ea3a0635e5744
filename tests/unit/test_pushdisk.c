/* The pushed disk: a producer thread pushes (offset, bytes) at ascending
 * offsets, a consumer pulls through struct sp_disk. Expected bytes come from
 * a model buffer built here, not from the module. Every case that could wait
 * forever is guarded by alarm(): a bug fails the case instead of hanging. */
#include "disk/pushdisk.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/testlib.h"

#define KIB 1024ull
#define MIB (1024ull * 1024ull)
#define GUARD 20 /* seconds before SIGALRM kills a hung case */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return x;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static uint8_t *xmalloc(size_t n)
{
    uint8_t *b = malloc(n ? n : 1);
    CHECK(b != NULL);
    return b;
}

static void check_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        CHECK(b[i] == 0);
}

/* ---- ordered_round_trip ------------------------------------------------------ */

struct span {
    uint64_t off, len;
};

struct plan {
    struct span *chunks;       /* the non-zero pushes, ascending */
    size_t n;
    struct span *zeros;        /* all-zero pushes inside gaps */
    size_t nz;
    uint64_t size, data, maxlen;
    const uint8_t *model;
};

struct producer {
    struct sp_pushdisk *p;
    const struct plan *pl;
    int rc;
    struct sp_error err;
    atomic_bool done;
};

static void *produce_plan(void *arg)
{
    struct producer *pr = arg;
    const struct plan *pl = pr->pl;
    struct sp_disk *in = sp_pushdisk_input(pr->p);
    size_t z = 0;
    pr->rc = SP_OK;
    for (size_t i = 0; i < pl->n && pr->rc == SP_OK; i++) {
        /* the all-zero pushes that lie before this chunk */
        while (z < pl->nz && pl->zeros[z].off < pl->chunks[i].off && pr->rc == SP_OK) {
            pr->rc = sp_pushdisk_push(pr->p, pl->zeros[z].off, pl->model + pl->zeros[z].off,
                                      (size_t)pl->zeros[z].len, &pr->err);
            z++;
        }
        if (pr->rc != SP_OK)
            break;
        const struct span *c = &pl->chunks[i];
        if (i % 2)
            pr->rc = sp_disk_write(in, c->off, pl->model + c->off, (size_t)c->len, &pr->err);
        else
            pr->rc = sp_pushdisk_push(pr->p, c->off, pl->model + c->off, (size_t)c->len, &pr->err);
    }
    sp_pushdisk_finish(pr->p, pr->rc == SP_OK);
    atomic_store(&pr->done, true);
    return NULL;
}

static void add_chunk(struct plan *pl, size_t *cap, uint64_t off, uint64_t len)
{
    if (pl->n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        pl->chunks = realloc(pl->chunks, *cap * sizeof *pl->chunks);
        CHECK(pl->chunks != NULL);
    }
    pl->chunks[pl->n++] = (struct span){off, len};
    pl->data += len;
    if (len > pl->maxlen)
        pl->maxlen = len;
}

/* Chunks with gaps (some gaps empty: adjacent chunks), one chunk larger
 * than the queue, some short odd lengths, and a last chunk that ends at the
 * end of a disk whose size is not a multiple of 4 KiB. */
static void make_plan(struct plan *pl)
{
    memset(pl, 0, sizeof *pl);
    size_t cap = 0;
    uint64_t off = 12345; /* a gap at the start */
    while (pl->data < 64 * MIB) {
        uint64_t len;
        switch (pl->n % 7) {
        case 0: len = 1 * MIB; break;
        case 1: len = 17; break;
        case 2: len = 4096; break;
        case 3: len = 1 + rng() % (2 * MIB); break;
        case 4: len = pl->n == 11 ? SP_PUSHDISK_QUEUE + MIB + 3 : 64 * KIB; break;
        case 5: len = 3 * MIB + 511; break;
        default: len = 1 + rng() % (512 * KIB); break;
        }
        add_chunk(pl, &cap, off, len);
        off += len;
        uint64_t r = rng() % 4;
        off += r == 0 ? 0 : r == 1 ? 4096 : 1 + rng() % (256 * KIB);
    }
    off += 777 * KIB;
    uint64_t last = 3001;
    if ((off + last) % 4096 == 0)
        last++;
    add_chunk(pl, &cap, off, last);
    pl->size = off + last;
    CHECK(pl->size % 4096 != 0);

    uint8_t *m = calloc(1, (size_t)pl->size);
    CHECK(m != NULL);
    for (size_t i = 0; i < pl->n; i++) {
        uint8_t *c = m + pl->chunks[i].off;
        uint64_t len = pl->chunks[i].len;
        for (uint64_t j = 0; j < len; j += 8) {
            uint64_t v = rng() | 1; /* never all zero */
            memcpy(c + j, &v, (size_t)(len - j < 8 ? len - j : 8));
        }
        if (len > 64 * KIB) /* zeros inside a chunk: still data */
            memset(c + len / 3, 0, (size_t)(len / 3));
    }
    /* all-zero pushes in some gaps (model bytes there are zero) */
    pl->zeros = calloc(pl->n + 1, sizeof *pl->zeros);
    CHECK(pl->zeros != NULL);
    uint64_t prev_end = 0;
    for (size_t i = 0; i < pl->n; i++) {
        uint64_t gap = pl->chunks[i].off - prev_end;
        if (gap >= 2 && i % 3 == 0)
            pl->zeros[pl->nz++] = (struct span){prev_end + gap / 2, gap - gap / 2};
        prev_end = pl->chunks[i].off + pl->chunks[i].len;
    }
    pl->model = m;
}

/* The chunk holding byte off, or the first after it (n when none). */
static size_t chunk_at(const struct plan *pl, uint64_t off)
{
    size_t lo = 0, hi = pl->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pl->chunks[mid].off + pl->chunks[mid].len <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Bytes of the chunks that end at or before off: what the consumer has
 * passed, so what the disk has dropped. */
static uint64_t passed(const struct plan *pl, uint64_t off)
{
    uint64_t n = 0;
    for (size_t i = 0; i < pl->n && pl->chunks[i].off + pl->chunks[i].len <= off; i++)
        n += pl->chunks[i].len;
    return n;
}

static void check_bounded(struct sp_pushdisk *p, const struct plan *pl, uint64_t pos)
{
    uint64_t bound = pl->maxlen > SP_PUSHDISK_QUEUE ? pl->maxlen : SP_PUSHDISK_QUEUE;
    uint64_t queued = sp_pushdisk_data_bytes(p) - passed(pl, pos);
    if (queued > bound) {
        fprintf(stderr, "queued %llu bytes at %llu, bound %llu\n", (unsigned long long)queued,
                (unsigned long long)pos, (unsigned long long)bound);
        CHECK(queued <= bound);
    }
}

static void ordered_round_trip(void)
{
    alarm(GUARD);
    struct plan pl;
    make_plan(&pl);
    CHECK(pl.data >= 64 * MIB);
    CHECK(pl.maxlen > SP_PUSHDISK_QUEUE);

    struct sp_pushdisk *p;
    struct sp_error err;
    CHECK_OK(sp_pushdisk_new(pl.size, "round-trip", &p, &err));
    struct sp_disk *d = sp_pushdisk_disk(p);
    CHECK_EQ_U64(d->size, pl.size);

    struct producer pr = {.p = p, .pl = &pl};
    atomic_init(&pr.done, false);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, produce_plan, &pr) == 0);

    /* Nobody reads yet: the producer must stop at the queue bound. */
    sleep_ms(200);
    CHECK(!atomic_load(&pr.done));
    check_bounded(p, &pl, 0);
    CHECK(sp_pushdisk_data_bytes(p) > 0);

    size_t bufsz = 3 * MIB;
    uint8_t *buf = xmalloc(bufsz);
    uint64_t off = 0, data_seen = 0, zero_seen = 0, reads = 0;
    while (off < pl.size) {
        struct sp_extent e;
        CHECK_OK(sp_disk_next_extent(d, off, &e, &err));
        CHECK_EQ_U64(e.start, off);
        CHECK(e.len > 0 && e.len <= pl.size - off);
        uint64_t end = off + e.len;
        size_t ci = chunk_at(&pl, off);
        if (e.kind == SP_EXTENT_DATA) {
            /* DATA exactly to the end of the pushed chunk holding off */
            CHECK(ci < pl.n && pl.chunks[ci].off <= off);
            CHECK_EQ_U64(end, pl.chunks[ci].off + pl.chunks[ci].len);
            data_seen += e.len;
        } else {
            CHECK(e.kind == SP_EXTENT_ZERO);
            /* ZERO exactly to the next pushed chunk, or to the end */
            CHECK(ci == pl.n || pl.chunks[ci].off > off);
            CHECK_EQ_U64(end, ci < pl.n ? pl.chunks[ci].off : pl.size);
            zero_seen += e.len;
        }
        /* read the run in pieces of varying size (ZERO runs too) */
        while (off < end) {
            size_t n = (size_t)(1 + rng() % bufsz);
            if (n > end - off)
                n = (size_t)(end - off);
            CHECK_OK(sp_disk_read(d, off, buf, n, &err));
            if (memcmp(buf, pl.model + off, n) != 0) {
                fprintf(stderr, "bytes differ in [%llu, +%zu)\n", (unsigned long long)off, n);
                CHECK(0);
            }
            off += n;
            if (++reads % 16 == 0)
                check_bounded(p, &pl, off);
        }
        check_bounded(p, &pl, off);
    }
    CHECK(pthread_join(t, NULL) == 0);
    if (pr.rc != SP_OK)
        fprintf(stderr, "producer: %s\n", pr.err.msg);
    CHECK_OK(pr.rc);
    CHECK_EQ_U64(data_seen, pl.data);
    CHECK_EQ_U64(data_seen + zero_seen, pl.size);
    CHECK_EQ_U64(sp_pushdisk_data_bytes(p), pl.data);
    CHECK(!sp_pushdisk_consumer_failed_first(p));

    /* past the end: refused by the disk layer, not a wait */
    CHECK(sp_disk_next_extent(d, pl.size, &(struct sp_extent){0}, &err) != SP_OK);
    sp_disk_close(d);
    sp_disk_close(sp_pushdisk_input(p));
    sp_pushdisk_free(p);
    free(buf);
    free((void *)pl.model);
    free(pl.chunks);
    free(pl.zeros);
    alarm(0);
}

/* ---- zero_pushes_not_data ---------------------------------------------------- */

static void zero_pushes_not_data(void)
{
    alarm(GUARD);
    const uint64_t size = 256 * KIB + 100;
    struct sp_pushdisk *p;
    struct sp_error err;
    CHECK_OK(sp_pushdisk_new(size, NULL, &p, &err));
    struct sp_disk *d = sp_pushdisk_disk(p);
    uint8_t zero[64 * KIB], one[4096];
    memset(zero, 0, sizeof zero);
    memset(one, 0, sizeof one);
    one[4095] = 0x5a; /* one non-zero byte: the whole push is data */
    CHECK_OK(sp_pushdisk_push(p, 0, zero, sizeof zero, &err));
    CHECK_OK(sp_pushdisk_push(p, 64 * KIB, one, sizeof one, &err));
    CHECK_OK(sp_pushdisk_push(p, 68 * KIB, zero, sizeof zero, &err));
    CHECK_OK(sp_pushdisk_push(p, size - 100, zero, 100, &err)); /* the very end */
    CHECK_EQ_U64(sp_pushdisk_data_bytes(p), sizeof one);
    sp_pushdisk_finish(p, true);

    struct sp_extent e;
    CHECK_OK(sp_disk_next_extent(d, 0, &e, &err));
    CHECK(e.kind == SP_EXTENT_ZERO && e.start == 0 && e.len == 64 * KIB);
    CHECK_OK(sp_disk_next_extent(d, 64 * KIB, &e, &err));
    CHECK(e.kind == SP_EXTENT_DATA && e.start == 64 * KIB && e.len == sizeof one);
    uint8_t got[4096];
    CHECK_OK(sp_disk_read(d, 64 * KIB, got, sizeof got, &err));
    CHECK(memcmp(got, one, sizeof one) == 0);
    CHECK_OK(sp_disk_next_extent(d, 68 * KIB, &e, &err));
    CHECK(e.kind == SP_EXTENT_ZERO && e.start == 68 * KIB && e.len == size - 68 * KIB);
    CHECK_OK(sp_disk_read(d, size - sizeof got, got, sizeof got, &err));
    check_zero(got, sizeof got);
    sp_pushdisk_free(p);
    alarm(0);
}

/* ---- read_behind_is_error ---------------------------------------------------- */

static void read_behind_is_error(void)
{
    alarm(GUARD);
    const uint64_t size = 64 * KIB;
    struct sp_pushdisk *p;
    struct sp_error err;
    CHECK_OK(sp_pushdisk_new(size, "behind", &p, &err));
    struct sp_disk *d = sp_pushdisk_disk(p);
    uint8_t a[4096], b[4096], got[4096];
    memset(a, 0xa1, sizeof a);
    memset(b, 0xb2, sizeof b);
    CHECK_OK(sp_pushdisk_push(p, 0, a, sizeof a, &err));
    CHECK_OK(sp_pushdisk_push(p, 8192, b, sizeof b, &err));
    /* the producer is not finished: a wrong wait here would hang */
    CHECK_OK(sp_disk_read(d, 8192, got, 2048, &err));
    CHECK(memcmp(got, b, 2048) == 0);
    CHECK(sp_disk_read(d, 0, got, 16, &err) == SP_EINVAL);           /* dropped data */
    CHECK(err.code == SP_EINVAL && strstr(err.msg, "behind") != NULL);
    CHECK(sp_disk_read(d, 8192 + 2047, got, 16, &err) == SP_EINVAL); /* inside the previous read */
    struct sp_extent e;
    CHECK(sp_disk_next_extent(d, 4096, &e, &err) == SP_EINVAL);
    /* a failed call does not move the disk: right at the end still reads */
    CHECK_OK(sp_disk_read(d, 8192 + 2048, got, 2048, &err));
    CHECK(memcmp(got, b + 2048, 2048) == 0);
    sp_pushdisk_finish(p, true);
    CHECK_OK(sp_disk_next_extent(d, 12 * KIB, &e, &err));
    CHECK(e.kind == SP_EXTENT_ZERO && e.start == 12 * KIB && e.len == size - 12 * KIB);
    CHECK(sp_disk_read(d, 8192, got, 16, &err) == SP_EINVAL);
    sp_pushdisk_free(p);
    alarm(0);
}

/* ---- producer_failure_wakes_consumer ----------------------------------------- */

struct consumer {
    struct sp_pushdisk *p;
    uint64_t off;
    size_t len;                /* 0: next_extent, else read */
    int rc;
    struct sp_error err;
    atomic_bool done;
};

static void *consume_one(void *arg)
{
    struct consumer *c = arg;
    struct sp_disk *d = sp_pushdisk_disk(c->p);
    if (c->len == 0) {
        struct sp_extent e;
        c->rc = sp_disk_next_extent(d, c->off, &e, &c->err);
    } else {
        uint8_t *buf = xmalloc(c->len);
        c->rc = sp_disk_read(d, c->off, buf, c->len, &c->err);
        free(buf);
    }
    atomic_store(&c->done, true);
    return NULL;
}

/* Starts a consumer call that must wait, checks that it does wait, lets
 * the producer fail, and returns the consumer's result. */
static void failure_wakes(struct sp_pushdisk *p, uint64_t off, size_t len)
{
    struct consumer c = {.p = p, .off = off, .len = len, .rc = 1};
    atomic_init(&c.done, false);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, consume_one, &c) == 0);
    sleep_ms(150);
    CHECK(!atomic_load(&c.done)); /* nothing there yet: it waits */
    sp_pushdisk_finish(p, false);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(atomic_load(&c.done));
    CHECK(c.rc != SP_OK);
    CHECK(c.err.code == c.rc);
    CHECK(!sp_pushdisk_consumer_failed_first(p));
}

static void producer_failure_wakes_consumer(void)
{
    alarm(GUARD);
    struct sp_error err;
    struct sp_pushdisk *p;

    /* next_extent waiting on an empty disk */
    CHECK_OK(sp_pushdisk_new(1 * MIB, "fail-next", &p, &err));
    failure_wakes(p, 0, 0);
    sp_pushdisk_free(p);

    /* read waiting past the data pushed so far */
    CHECK_OK(sp_pushdisk_new(1 * MIB, "fail-read", &p, &err));
    uint8_t a[4096];
    memset(a, 0x33, sizeof a);
    CHECK_OK(sp_pushdisk_push(p, 0, a, sizeof a, &err));
    failure_wakes(p, 0, 8192);
    /* and the next call fails too, without waiting */
    struct sp_extent e;
    CHECK(sp_disk_next_extent(sp_pushdisk_disk(p), 8192, &e, &err) != SP_OK);
    sp_pushdisk_free(p);

    /* next_extent in a gap the producer has not passed yet */
    CHECK_OK(sp_pushdisk_new(1 * MIB, "fail-gap", &p, &err));
    CHECK_OK(sp_pushdisk_push(p, 0, a, sizeof a, &err));
    uint8_t got[4096];
    CHECK_OK(sp_disk_read(sp_pushdisk_disk(p), 0, got, sizeof got, &err));
    CHECK(memcmp(got, a, sizeof a) == 0);
    failure_wakes(p, 64 * KIB, 0);
    sp_pushdisk_free(p);
    alarm(0);
}

/* ---- consumer_abort_wakes_producer ------------------------------------------- */

struct pusher {
    struct sp_pushdisk *p;
    size_t chunk;
    uint64_t ok_pushes;
    int rc;
    struct sp_error err;
    atomic_bool done;
};

static void *push_until_refused(void *arg)
{
    struct pusher *pu = arg;
    uint8_t *buf = xmalloc(pu->chunk);
    memset(buf, 0x77, pu->chunk);
    uint64_t off = 0;
    for (;;) {
        pu->rc = sp_pushdisk_push(pu->p, off, buf, pu->chunk, &pu->err);
        if (pu->rc != SP_OK)
            break;
        pu->ok_pushes++;
        off += pu->chunk;
    }
    sp_pushdisk_finish(pu->p, false);
    free(buf);
    atomic_store(&pu->done, true);
    return NULL;
}

static void consumer_abort_wakes_producer(void)
{
    alarm(GUARD);
    struct sp_error err;
    struct sp_pushdisk *p;
    CHECK_OK(sp_pushdisk_new(64 * MIB, "abort", &p, &err));
    struct pusher pu = {.p = p, .chunk = 1 * MIB};
    atomic_init(&pu.done, false);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, push_until_refused, &pu) == 0);
    /* wait (bounded) for the queue to fill, then check the producer is held */
    for (int i = 0; i < 500 && sp_pushdisk_data_bytes(p) < SP_PUSHDISK_QUEUE; i++)
        sleep_ms(10);
    CHECK_EQ_U64(sp_pushdisk_data_bytes(p), SP_PUSHDISK_QUEUE);
    sleep_ms(100);
    CHECK(!atomic_load(&pu.done));
    CHECK_EQ_U64(sp_pushdisk_data_bytes(p), SP_PUSHDISK_QUEUE);

    sp_pushdisk_abort(p);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(pu.rc != SP_OK);
    CHECK(pu.err.code == pu.rc);
    CHECK_EQ_U64(pu.ok_pushes, SP_PUSHDISK_QUEUE / MIB);
    CHECK_EQ_U64(sp_pushdisk_data_bytes(p), SP_PUSHDISK_QUEUE); /* the refused push queued nothing */
    CHECK(sp_pushdisk_consumer_failed_first(p));                 /* even after finish(false) */

    /* later pushes fail at once, all-zero ones too */
    uint8_t z[512] = {0}, x[512];
    memset(x, 1, sizeof x);
    CHECK(sp_pushdisk_push(p, 32 * MIB, x, sizeof x, &err) != SP_OK);
    CHECK(sp_pushdisk_push(p, 33 * MIB, z, sizeof z, &err) != SP_OK);
    sp_pushdisk_free(p);

    /* abort with nothing queued: the producer's next push fails too */
    CHECK_OK(sp_pushdisk_new(1 * MIB, "abort-early", &p, &err));
    sp_pushdisk_abort(p);
    CHECK(sp_pushdisk_push(p, 0, x, sizeof x, &err) != SP_OK);
    CHECK(sp_pushdisk_consumer_failed_first(p));
    sp_pushdisk_finish(p, false);
    CHECK(sp_pushdisk_consumer_failed_first(p));
    sp_pushdisk_free(p);
    alarm(0);
}

/* ---- push_must_ascend -------------------------------------------------------- */

static void push_must_ascend(void)
{
    alarm(GUARD);
    const uint64_t size = 32 * KIB;
    struct sp_pushdisk *p;
    struct sp_error err;
    CHECK_OK(sp_pushdisk_new(size, "ascend", &p, &err));
    uint8_t a[4096], b[4096], c[4096];
    memset(a, 0xaa, sizeof a);
    memset(b, 0xbb, sizeof b);
    memset(c, 0xcc, sizeof c);
    CHECK_OK(sp_pushdisk_push(p, 8192, a, sizeof a, &err));
    CHECK(sp_pushdisk_push(p, 4096, c, sizeof c, &err) == SP_EINVAL);      /* lower */
    CHECK(err.code == SP_EINVAL && strstr(err.msg, "ascend") != NULL);
    CHECK(sp_pushdisk_push(p, 8192, c, sizeof c, &err) == SP_EINVAL);      /* same offset */
    CHECK(sp_pushdisk_push(p, 8192 + 4095, c, 1, &err) == SP_EINVAL);      /* inside the previous push */
    CHECK(sp_disk_write(sp_pushdisk_input(p), 0, c, sizeof c, &err) == SP_EINVAL); /* through the input view */
    CHECK(sp_pushdisk_push(p, size - 100, c, 101, &err) == SP_EINVAL);     /* past the size */
    CHECK_OK(sp_pushdisk_push(p, 12288, b, sizeof b, &err));               /* adjacent: fine */
    CHECK_EQ_U64(sp_pushdisk_data_bytes(p), 8192);                         /* refused pushes queued nothing */
    sp_pushdisk_finish(p, true);

    /* the consumer sees only the accepted pushes */
    struct sp_disk *d = sp_pushdisk_disk(p);
    struct sp_extent e;
    uint8_t got[8192];
    CHECK_OK(sp_disk_next_extent(d, 0, &e, &err));
    CHECK(e.kind == SP_EXTENT_ZERO && e.len == 8192);
    CHECK_OK(sp_disk_read(d, 0, got, sizeof got, &err));
    check_zero(got, sizeof got);
    CHECK_OK(sp_disk_next_extent(d, 8192, &e, &err));
    CHECK(e.kind == SP_EXTENT_DATA && e.len == 4096);
    CHECK_OK(sp_disk_read(d, 8192, got, 8192, &err));
    CHECK(memcmp(got, a, 4096) == 0 && memcmp(got + 4096, b, 4096) == 0);
    CHECK_OK(sp_disk_next_extent(d, 16384, &e, &err));
    CHECK(e.kind == SP_EXTENT_ZERO && e.len == size - 16384);
    sp_pushdisk_free(p);
    alarm(0);
}

TEST_MAIN({"ordered_round_trip", ordered_round_trip}, {"zero_pushes_not_data", zero_pushes_not_data},
          {"read_behind_is_error", read_behind_is_error},
          {"producer_failure_wakes_consumer", producer_failure_wakes_consumer},
          {"consumer_abort_wakes_producer", consumer_abort_wakes_producer},
          {"push_must_ascend", push_must_ascend})
