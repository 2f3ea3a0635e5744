#include "base/outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One pending file at a time is all the CLI writes; kept for signal cleanup. */
static volatile const char *pending_tmp;

const char *sp_outfile_pending(void)
{
    return (const char *)pending_tmp;
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
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    if (slash)
        slash[1] = '\0';
    else
        dir[0] = '\0';
    if (snprintf(o->tmp_path, sizeof o->tmp_path, "%s.%s.snapport-XXXXXX", dir, base) >= (int)sizeof o->tmp_path)
        return sp_error_set(err, SP_EINVAL, "%s: path too long", path);
    o->fd = mkostemp(o->tmp_path, O_CLOEXEC);
    if (o->fd < 0)
        return sp_error_errno(err, errno, "%s", path);
    fchmod(o->fd, 0644);
    pending_tmp = o->tmp_path;
    return SP_OK;
}

int sp_outfile_commit(struct sp_outfile *o, struct sp_error *err)
{
    if (!o->no_sync && fsync(o->fd) != 0) {
        int rc = sp_error_errno(err, errno, "%s", o->final_path);
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
    pending_tmp = NULL;
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
    pending_tmp = NULL;
}
