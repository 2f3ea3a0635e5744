/* A process named so that it cannot be mistaken for a later one: its pid
 * and the time it started (after a reboot or a wrap of pids, the same pid
 * is another process with another start time). For rows and files that say
 * who owns them, so that what a dead owner left can be told and undone. */
#ifndef SP_PROC_H
#define SP_PROC_H

#include <stdbool.h>
#include <stdint.h>

struct sp_proc {
    int64_t pid;
    int64_t start;   /* clock ticks after boot (/proc/PID/stat field 22), 0 if unknown */
};

void sp_proc_self(struct sp_proc *p);
/* False only when that process is certainly gone. */
bool sp_proc_alive(const struct sp_proc *p);

#endif
