/* Errors: a return code plus a message that each layer adds context to.
 *
 * Library functions return 0 on success or a negative SP_E* code, and fill
 * the struct sp_error passed last. Only cli/ prints the message, once. */
#ifndef SP_ERROR_H
#define SP_ERROR_H

#include <stddef.h>

enum sp_status {
    SP_OK = 0,
    SP_EIO = -1,       /* the operating system refused (read, write, open) */
    SP_EFORMAT = -2,   /* the bytes of an input are not what they must be */
    SP_ENOMEM = -3,
    SP_EINVAL = -4,    /* the caller asked for something impossible */
    SP_ENOTFOUND = -5, /* a file or object does not exist */
    SP_ELIMIT = -6,    /* a limit is reached (size, depth, count) */
    SP_EEXIST = -7,    /* the output exists already */
    SP_EUNSUPPORTED = -8,
    SP_ECANCELED = -9,  /* a signal asked to stop (base/cancel.h) */
};

#define SP_ERROR_MAX 1024

struct sp_error {
    int code;
    char msg[SP_ERROR_MAX];
};

void sp_error_clear(struct sp_error *err);

/* Sets the code and message; returns code so callers can `return sp_error_set(...)`. */
int sp_error_set(struct sp_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* As sp_error_set, with ": strerror(errnum)" appended. */
int sp_error_errno(struct sp_error *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Puts "context: " before the current message; returns the current code.
 * The parts at the end of context ("a.ova: disk1.vmdk") that the message
 * begins with already are not repeated: each file and member is named once,
 * whichever layer named it first. */
int sp_error_prefix(struct sp_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
