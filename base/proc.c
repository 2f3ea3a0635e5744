#include "base/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Field 22 of /proc/PID/stat; the command name (field 2) may hold spaces
 * and parentheses, so counting starts after its last ')'. A zombie (state
 * Z or X, field 3) has finished: -2. -1 when there is no such file. */
static int64_t start_time(int64_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    p++;
    if (p[0] == ' ' && (p[1] == 'Z' || p[1] == 'X'))
        return -2;
    for (int field = 3; field < 22 && p; field++) {
        p = strchr(p + 1, ' ');
    }
    return p ? strtoll(p + 1, NULL, 10) : 0;
}

void sp_proc_self(struct sp_proc *p)
{
    p->pid = (int64_t)getpid();
    int64_t t = start_time(p->pid);
    p->start = t > 0 ? t : 0;
}

bool sp_proc_alive(const struct sp_proc *p)
{
    if (p->pid <= 0)
        return false;
    if (kill((pid_t)p->pid, 0) != 0 && errno == ESRCH)
        return false;
    int64_t t = start_time(p->pid);
    if (t == -2)
        return false;
    if (t < 0)
        return true; /* no /proc: trust kill */
    return p->start == 0 || t == 0 || t == p->start;
}
