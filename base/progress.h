/* Progress of a long operation, reported by the library to whoever shows it
 * (only cli/ prints). */
#ifndef SP_PROGRESS_H
#define SP_PROGRESS_H

#include <stdint.h>

struct sp_progress {
    /* done and total in bytes of data (ZERO extents do not count). */
    void (*update)(void *ctx, uint64_t done, uint64_t total);
    void *ctx;
};

#endif
