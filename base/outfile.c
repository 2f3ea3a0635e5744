#include "base/outfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cancel.h"

/* A writer holds an flock on its temporary file for as long as it lives;
 * the file's name carries its pid. One whose lock is free and whose pid is
 * gone is a killed writer's: removed by the next run to the same output.
 * (The pid covers the moment between creating the file and locking it.) */
static bool stale_temporary(const char *dir, const char *name, const char *prefix)
{
    char *end;
    long pid = strtol(name + strlen(prefix), &end, 10);
    if (pid <= 0 || *end != '-' || (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
        return false;
    char path[4096 + 256];
    snprintf(path, sizeof path, "%s%s", dir[0] ? dir : "./", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return false;
    bool stale = flock(fd, LOCK_EX | LOCK_NB) == 0;
    close(fd);
    return stale;
}

static void remove_stale_temporaries(const char *dir, const char *base)
{
    if (!base[0])
        return;
    char prefix[512];
    if (snprintf(prefix, sizeof prefix, ".%s.snapport-", base) >= (int)sizeof prefix)
        return;
    DIR *d = opendir(dir[0] ? dir : ".");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0 || !stale_temporary(dir, e->d_name, prefix))
            continue;
        char path[4096 + 256];
        snprintf(path, sizeof path, "%s%s", dir[0] ? dir : "./", e->d_name);
        unlink(path);
    }
    closedir(d);
}

/* path's folder with its trailing slash ("" for a bare name) into dir;
 * returns its last component. */
static const char *split_path(const char *path, char dir[4096])
{
    snprintf(dir, 4096, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[1] = '\0';
    else
        dir[0] = '\0';
    return strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
}

void sp_outfile_sweep(const char *path)
{
    char dir[4096];
    const char *base = split_path(path, dir);
    remove_stale_temporaries(dir, base);
}

int sp_outfile_open(struct sp_outfile *o, const char *path, bool force, struct sp_error *err)
{
    memset(o, 0, sizeof *o);
    o->fd = -1;
    o->force = force;
    struct stat st;
    if (!force && lstat(path, &st) == 0)
        return sp_error_set(err, SP_EEXIST, "%s: exists already (use --force to replace it)", path);
    if (force && lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return sp_error_set(err, SP_EEXIST, "%s: exists and is not a regular file", path);
    if (snprintf(o->final_path, sizeof o->final_path, "%s", path) >= (int)sizeof o->final_path)
        return sp_error_set(err, SP_EINVAL, "%s: path too long", path);
    char dir[4096];
    const char *base = split_path(path, dir);
    if (snprintf(o->tmp_path, sizeof o->tmp_path, "%s.%s.snapport-%ld-XXXXXX", dir, base, (long)getpid())
        >= (int)sizeof o->tmp_path)
        return sp_error_set(err, SP_EINVAL, "%s: path too long", path);
    remove_stale_temporaries(dir, base);
    o->fd = mkostemp(o->tmp_path, O_CLOEXEC);
    if (o->fd < 0)
        return sp_error_errno(err, errno, "%s", path);
    if (flock(o->fd, LOCK_EX | LOCK_NB) != 0) {
        /* only a flock-less file system: stale ones then stay for the user */
    }
    fchmod(o->fd, 0644);
    return SP_OK;
}

int sp_outfile_commit(struct sp_outfile *o, struct sp_error *err)
{
    if (!o->no_sync && fsync(o->fd) != 0) {
        int rc = sp_error_errno(err, errno, "%s", o->final_path);
        sp_outfile_abort(o);
        return rc;
    }
    /* interrupted while it was being made: not made (the fsync may be long) */
    if (sp_cancel_pending()) {
        int rc = sp_cancel_check(err);
        sp_outfile_abort(o);
        return rc;
    }
    close(o->fd);
    o->fd = -1;
    int rc;
    if (o->force)
        rc = rename(o->tmp_path, o->final_path);
    else
        rc = link(o->tmp_path, o->final_path);
    if (rc != 0) {
        int e = errno;
        sp_outfile_abort(o);
        return e == EEXIST ? sp_error_set(err, SP_EEXIST, "%s: exists already (use --force to replace it)",
                                          o->final_path)
                           : sp_error_errno(err, e, "%s", o->final_path);
    }
    if (!o->force)
        unlink(o->tmp_path);
    o->tmp_path[0] = '\0';
    return SP_OK;
}

void sp_outfile_abort(struct sp_outfile *o)
{
    if (o->fd >= 0)
        close(o->fd);
    o->fd = -1;
    if (o->tmp_path[0])
        unlink(o->tmp_path);
    o->tmp_path[0] = '\0';
}
