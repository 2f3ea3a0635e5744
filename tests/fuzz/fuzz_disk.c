/* Every disk driver through the registry: the bytes as a file, probed,
 * opened (headers, tables, chains, descriptors), described, checked, and
 * walked extent by extent with bounded reads. */
#include <string.h>
#include <unistd.h>

#include "disk/registry.h"
#include "tests/fuzz/fuzz.h"

/* Bounds per input, so that a hostile virtual size cannot make one input
 * run for minutes: the walk stops after this many extents or bytes read. */
#define FUZZ_MAX_EXTENTS 4096
#define FUZZ_MAX_READ (4u << 20)
#define FUZZ_READ_CHUNK (256u << 10)
#define FUZZ_LAYERS 8

static void ignore_problem(void *ctx, const char *msg)
{
    (void)ctx;
    (void)msg;
}

static void walk(struct sp_disk *d)
{
    static uint8_t buf[FUZZ_READ_CHUNK];
    struct sp_error err;
    uint64_t off = 0, read = 0;
    for (int i = 0; i < FUZZ_MAX_EXTENTS && off < d->size; i++) {
        struct sp_extent e;
        if (sp_disk_next_extent(d, off, &e, &err) != SP_OK || e.len == 0)
            return;
        if (e.kind == SP_EXTENT_DATA && read < FUZZ_MAX_READ) {
            size_t n = (size_t)(e.len < FUZZ_READ_CHUNK ? e.len : FUZZ_READ_CHUNK);
            if (sp_disk_read(d, off, buf, n, &err) != SP_OK)
                return;
            read += n;
        }
        off += e.len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_memfile(data, size, path, sizeof path);
    if (fd < 0)
        return 0;
    struct sp_error err;
    struct sp_disk *d = NULL;
    if (sp_disk_open(path, false, &d, &err) == SP_OK) {
        struct sp_disk_layer l[FUZZ_LAYERS];
        int n = 0;
        sp_disk_layers(d, l, FUZZ_LAYERS, &n, &err);
        walk(d);
        sp_disk_close(d);
    }
    int count = 0;
    sp_disk_check(path, ignore_problem, NULL, &count, &err);
    close(fd);
    return 0;
}
