/* Whole archives as import reads them: the bytes as a file, told XVA or
 * OVA by bid, and read to the end the way `snapport verify` does (tar
 * members, plain or through gzip or zstd; ova.xml or the OVF, manifest and
 * certificate; every disk decoded and its checksums checked; the end's
 * checks), then described as `snapport info` does. No store: read_disk is
 * given no target, which decodes every block all the same. */
#include <unistd.h>

#include "importer/import.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_memfile(data, size, path, sizeof path);
    if (fd < 0)
        return 0;
    static struct sp_archive_info info; /* 40 KiB: not on the stack */
    struct sp_error err;
    sp_verify_archive(path, NULL, &info, NULL, &err);
    close(fd);
    return 0;
}
