/* The store lock: one file, flock()ed. Writers hold it exclusively, readers
 * shared, so a reader never sees files change under it. A second writer
 * waits up to the timeout, then fails with a message naming the holder. */
#ifndef SP_LOCK_H
#define SP_LOCK_H

#include <stdbool.h>

#include "base/error.h"

/* Seconds a command waits for the lock ($SNAPPORT_LOCK_TIMEOUT overrides). */
#define SP_LOCK_TIMEOUT_DEFAULT 60

int sp_lock_take(const char *store_dir, bool exclusive, const char *command, int *fd_out, struct sp_error *err);
/* Exclusive to shared (after recovery) or back; waits like sp_lock_take. */
int sp_lock_change(int fd, const char *store_dir, bool exclusive, struct sp_error *err);
/* Writes "pid N: command" into the lock file for whoever waits (exclusive holders). */
void sp_lock_sign(int fd, const char *command);
/* exclusive: the holder's signature is cleared first. */
void sp_lock_release(int fd, bool exclusive);

#endif
