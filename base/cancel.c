#include "base/cancel.h"

#include <signal.h>
#include <stdio.h>

static volatile sig_atomic_t stop_signal;
/* Only the main thread cleans up; workers only read the count. */
static volatile int defer_depth;

void sp_cancel_note(int sig)
{
    if (!stop_signal)
        stop_signal = sig;
}

int sp_cancel_signal(void)
{
    return stop_signal;
}

bool sp_cancel_pending(void)
{
    return stop_signal && defer_depth == 0;
}

const char *sp_cancel_name(int sig)
{
    static char other[32];
    switch (sig) {
    case SIGINT:
        return "SIGINT";
    case SIGTERM:
        return "SIGTERM";
    case SIGHUP:
        return "SIGHUP";
    default:
        snprintf(other, sizeof other, "signal %d", sig);
        return other;
    }
}

int sp_cancel_check(struct sp_error *err)
{
    if (!sp_cancel_pending())
        return SP_OK;
    return sp_error_set(err, SP_ECANCELED, "interrupted by %s", sp_cancel_name(stop_signal));
}

void sp_cancel_defer(void)
{
    defer_depth++;
}

void sp_cancel_resume(void)
{
    if (defer_depth > 0)
        defer_depth--;
}

static void block_stop(sigset_t *old)
{
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop, old);
}

int sp_thread_start(pthread_t *tid, void *(*fn)(void *), void *arg)
{
    sigset_t old;
    block_stop(&old);
    int rc = pthread_create(tid, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int sp_cancel_run_blocked(int (*fn)(void *), void *arg)
{
    sigset_t old;
    block_stop(&old);
    int rc = fn(arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}
