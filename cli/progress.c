#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "base/util.h"

/* Redraw at most this often: a terminal is slower than a disk. */
#define REDRAW_NS 200000000ll

struct cli_progress {
    struct sp_progress hook;
    const char *label;
    struct timespec start;
    long long last_ns;
    uint64_t done, total;
    bool drawn;
};

static long long since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t0->tv_sec) * 1000000000ll + (now.tv_nsec - t0->tv_nsec);
}

static void draw(struct cli_progress *p, long long ns)
{
    char d[32], t[32], r[32];
    double secs = (double)ns / 1e9;
    double rate = secs > 0 ? (double)p->done / secs : 0;
    unsigned pct = p->total ? (unsigned)(p->done * 100 / p->total) : 100;
    char eta[32] = "--:--";
    if (rate > 0 && p->total >= p->done) {
        unsigned long left = (unsigned long)((double)(p->total - p->done) / rate);
        snprintf(eta, sizeof eta, "%lu:%02lu", left / 60, left % 60);
    }
    fprintf(stderr, "\r%s %3u%% %s / %s  %s/s  ETA %s   ", p->label, pct, sp_format_size(p->done, d, sizeof d),
            sp_format_size(p->total, t, sizeof t), sp_format_size((uint64_t)rate, r, sizeof r), eta);
    p->drawn = true;
}

static void update(void *ctx, uint64_t done, uint64_t total)
{
    struct cli_progress *p = ctx;
    p->done = done;
    p->total = total;
    long long ns = since(&p->start);
    if (ns - p->last_ns >= REDRAW_NS) {
        p->last_ns = ns;
        draw(p, ns);
    }
}

struct cli_progress *cli_progress_start(const struct cli *c, const char *label)
{
    if (!c->progress || c->quiet)
        return NULL;
    struct cli_progress *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->hook.update = update;
    p->hook.ctx = p;
    p->label = label;
    clock_gettime(CLOCK_MONOTONIC, &p->start);
    return p;
}

const struct sp_progress *cli_progress_hook(struct cli_progress *p)
{
    return p ? &p->hook : NULL;
}

void cli_progress_finish(struct cli_progress *p)
{
    if (!p)
        return;
    if (p->drawn || p->total) {
        draw(p, since(&p->start));
        fputc('\n', stderr);
    }
    free(p);
}
