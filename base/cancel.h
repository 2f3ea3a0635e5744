/* Cancellation. A signal handler only notes the signal (sp_cancel_note);
 * the work notices at its next block (every whole read and write of
 * base/util.c, the input stream, the lock wait) and unwinds through its
 * normal error path, which removes what it made. Cleanup that must run to
 * the end whatever arrives (an export merging back its temporary snapshot)
 * runs between sp_cancel_defer and sp_cancel_resume. */
#ifndef SP_CANCEL_H
#define SP_CANCEL_H

#include <pthread.h>
#include <stdbool.h>

#include "base/error.h"

/* For a signal handler: async-signal-safe, keeps the first signal. */
void sp_cancel_note(int sig);
/* The signal that asked to stop, 0 when none did. */
int sp_cancel_signal(void);
/* True when a stop was asked and no cleanup defers it. */
bool sp_cancel_pending(void);
/* SP_OK, or SP_ECANCELED with "interrupted by SIGxxx" in err. */
int sp_cancel_check(struct sp_error *err);
/* Nestable: between the two, sp_cancel_pending is false. */
void sp_cancel_defer(void);
void sp_cancel_resume(void);
/* pthread_create with the stop signals blocked in the new thread, so that
 * they reach the main thread and interrupt its blocking call (a read of a
 * pipe) rather than a worker's. Returns pthread_create's status. */
int sp_thread_start(pthread_t *tid, void *(*fn)(void *), void *arg);
/* fn(arg) with the stop signals blocked, for a library that starts its own
 * threads inside a call (libzstd's workers): they inherit the mask. */
int sp_cancel_run_blocked(int (*fn)(void *), void *arg);
/* "SIGINT", "SIGTERM", "SIGHUP" or "signal N". */
const char *sp_cancel_name(int sig);

#endif
