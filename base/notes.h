/* Notes: what a library call did that the user should hear of although it
 * succeeded (a NIC model another hypervisor's guest had that xl cannot run,
 * a template imported as a VM). Library code adds them; only cli/ prints
 * them. A note that cannot be added for want of memory is dropped: notes
 * never make a call fail. */
#ifndef SP_NOTES_H
#define SP_NOTES_H

/* More notes than this on one call are not read by anyone. */
#define SP_NOTES_MAX 64

struct sp_notes {
    char **items;
    int n;
    int dropped;   /* notes past SP_NOTES_MAX or lost to memory */
};

/* Adds a note; notes may be NULL (the caller does not listen). An exact
 * repeat of a note already there is not added again. */
void sp_note(struct sp_notes *notes, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void sp_notes_free(struct sp_notes *notes); /* accepts NULL; leaves it empty */

#endif
