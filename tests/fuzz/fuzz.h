/* Fuzz targets: each file defines LLVMFuzzerTestOneInput for one parser of
 * outside bytes. Built two ways (tests/fuzz/CMakeLists.txt): with clang's
 * libFuzzer for long runs by hand (run.sh), and with replay.c as a plain
 * program that CTest runs over the target's seed corpus and every file
 * under tests/data/bad/ (zstd's regression driver does the same). A target
 * must never crash, hang or leak, whatever the bytes; errors are expected. */
#ifndef SP_FUZZ_H
#define SP_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input as a file (a memfd) for parsers that open paths: its
 * /proc/self/fd path in path (at least 64 bytes). Returns the fd, -1 on
 * failure; the caller closes it. */
int fuzz_memfile(const uint8_t *data, size_t size, char *path, size_t len);

#endif
