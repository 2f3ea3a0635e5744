/* The forward-only streamOptimized VMDK reader (what an OVA import runs on
 * a tar member), fed from memory in uneven pieces. */
#include <string.h>

#include "disk/vmdk.h"
#include "tests/fuzz/fuzz.h"

struct mem_in {
    const uint8_t *p;
    size_t left, step;
};

static int mem_read(void *ctx, void *buf, size_t len, size_t *got, struct sp_error *err)
{
    (void)err;
    struct mem_in *m = ctx;
    size_t n = len < m->left ? len : m->left;
    if (n > m->step)
        n = m->step; /* short reads, as a pipe gives them */
    memcpy(buf, m->p, n);
    m->p += n;
    m->left -= n;
    *got = n;
    return SP_OK;
}

static int sink(void *ctx, uint64_t off, const void *data, size_t len)
{
    (void)ctx;
    (void)off;
    (void)data;
    (void)len;
    return SP_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mem_in m = {data, size, size > 0 ? 1 + data[0] * 97u : 1};
    struct sp_error err;
    uint64_t cap = 0;
    sp_vmdk_read_stream(mem_read, &m, sink, NULL, &cap, &err);
    return 0;
}
