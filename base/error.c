#include "base/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void sp_error_clear(struct sp_error *err)
{
    if (!err)
        return;
    err->code = SP_OK;
    err->msg[0] = '\0';
}

int sp_error_set(struct sp_error *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->code = code;
    return code;
}

int sp_error_errno(struct sp_error *err, int errnum, const char *fmt, ...)
{
    int code = errnum == ENOENT ? SP_ENOTFOUND : errnum == ENOMEM ? SP_ENOMEM
             : errnum == EEXIST ? SP_EEXIST : SP_EIO;
    if (!err)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    size_t n = strlen(err->msg);
    snprintf(err->msg + n, sizeof err->msg - n, ": %s", strerror(errnum));
    err->code = code;
    return code;
}

int sp_error_prefix(struct sp_error *err, const char *fmt, ...)
{
    if (!err)
        return SP_EINVAL;
    char ctx[SP_ERROR_MAX];
    char old[SP_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", ctx, old);
    return err->code;
}
