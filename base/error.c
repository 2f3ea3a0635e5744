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

/* How many of ctx's last ": "-separated parts msg begins with: a layer
 * that names what a lower one named already (the file, the member) adds
 * only the parts before them, so that each thing is named once. */
static size_t named_already(const char *ctx, const char *msg)
{
    size_t clen = strlen(ctx);
    for (const char *part = ctx; part; part = strstr(part, ": ")) {
        if (part != ctx)
            part += 2;
        size_t tail = clen - (size_t)(part - ctx);
        if (tail > 0 && strncmp(part, msg, tail) == 0 && msg[tail] == ':' && msg[tail + 1] == ' ')
            return (size_t)(part - ctx);
    }
    return clen;
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
    size_t keep = named_already(ctx, err->msg);
    if (keep == 0)
        return err->code;
    if (keep < strlen(ctx))
        ctx[keep - 2] = '\0'; /* the ": " before the parts named already */
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", ctx, old);
    return err->code;
}
