#include "store/crash.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static long crash_after = -1; /* -1: not read yet, 0: off */
static long reached;

void sp_crashpoint(const char *name)
{
    if (crash_after < 0) {
        const char *s = getenv("SNAPPORT_CRASH_AFTER");
        crash_after = s ? strtol(s, NULL, 10) : 0;
    }
    reached++;
    const char *log = getenv("SNAPPORT_CRASH_LOG");
    if (log) {
        FILE *f = fopen(log, "a");
        if (f) {
            fprintf(f, "%ld %s\n", reached, name);
            fclose(f);
        }
    }
    if (crash_after > 0 && reached == crash_after)
        kill(getpid(), SIGKILL);
}
