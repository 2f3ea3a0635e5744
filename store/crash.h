/* Crash points: named places in multi-step store operations where the
 * tests kill the process (SIGKILL) to prove that every step is recoverable.
 * SNAPPORT_CRASH_AFTER=N kills at the N-th point reached; without it a
 * point costs one branch. SNAPPORT_CRASH_LOG=FILE appends each point's name. */
#ifndef SP_CRASH_H
#define SP_CRASH_H

void sp_crashpoint(const char *name);

#endif
