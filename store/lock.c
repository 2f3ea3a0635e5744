#include "store/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "base/cancel.h"

static int timeout_seconds(void)
{
    const char *s = getenv("SNAPPORT_LOCK_TIMEOUT");
    if (s && *s) {
        long v = strtol(s, NULL, 10);
        if (v >= 0 && v < 86400)
            return (int)v;
    }
    return SP_LOCK_TIMEOUT_DEFAULT;
}

/* Who holds it, as the holding writer wrote it: "pid 123: snapshot create".
 * Readers do not sign, and a writer clears its line when it lets go; a
 * line whose process is gone is stale (a killed writer's). */
static void holder(int fd, char *buf, size_t len)
{
    ssize_t n = pread(fd, buf, len - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    char *nl = strchr(buf, '\n');
    if (nl)
        *nl = '\0';
    long pid = strncmp(buf, "pid ", 4) == 0 ? strtol(buf + 4, NULL, 10) : 0;
    if (!buf[0] || pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno == ESRCH))
        snprintf(buf, len, "another snapport (a reader, or a writer that did not sign)");
}

static int wait_flock(int fd, int op, const char *store_dir, struct sp_error *err)
{
    int limit = timeout_seconds();
    struct timespec start, now, nap = {0, 50 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (flock(fd, op | LOCK_NB) == 0)
            return SP_OK;
        if (sp_cancel_pending())
            return sp_cancel_check(err);
        if (errno != EWOULDBLOCK && errno != EINTR)
            return sp_error_errno(err, errno, "store %s: lock", store_dir);
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long waited_ms = (now.tv_sec - start.tv_sec) * 1000ll + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (waited_ms >= limit * 1000ll) {
            char who[256];
            holder(fd, who, sizeof who);
            return sp_error_set(err, SP_ELIMIT, "store %s: busy: %s holds the lock (waited %d s; "
                                "SNAPPORT_LOCK_TIMEOUT sets the wait)", store_dir, who, limit);
        }
        nanosleep(&nap, NULL);
    }
}

int sp_lock_take(const char *store_dir, bool exclusive, const char *command, int *fd_out, struct sp_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/lock", store_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return sp_error_errno(err, errno, "store %s: lock file", store_dir);
    int rc = wait_flock(fd, exclusive ? LOCK_EX : LOCK_SH, store_dir, err);
    if (rc != SP_OK) {
        close(fd);
        return rc;
    }
    if (exclusive)
        sp_lock_sign(fd, command);
    *fd_out = fd;
    return SP_OK;
}

void sp_lock_sign(int fd, const char *command)
{
    char line[512];
    int n = snprintf(line, sizeof line, "pid %ld: %s\n", (long)getpid(), command ? command : "snapport");
    if (ftruncate(fd, 0) == 0 && pwrite(fd, line, (size_t)n, 0) < 0) {
        /* only informative */
    }
}

int sp_lock_change(int fd, const char *store_dir, bool exclusive, struct sp_error *err)
{
    return wait_flock(fd, exclusive ? LOCK_EX : LOCK_SH, store_dir, err);
}

void sp_lock_release(int fd, bool exclusive)
{
    if (fd < 0)
        return;
    if (exclusive && ftruncate(fd, 0) != 0) {
        /* only the signature for whoever waits; the lock goes anyway */
    }
    close(fd); /* closing drops the flock */
}
