/* A Xen host, when snapport runs on one: a VM of the store that is running
 * there as a domain (same UUID) is paused while its disks are snapshotted.
 * Elsewhere libxl cannot open a context and these calls say so clearly. */
#ifndef SP_XEN_H
#define SP_XEN_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "base/uuid.h"

struct sp_xen;

/* SP_EUNSUPPORTED with "no Xen hypervisor reachable (...)" off a Xen host. */
int sp_xen_open(struct sp_xen **out, struct sp_error *err);
void sp_xen_close(struct sp_xen *x);

/* The domain running with this UUID: *found false when none is. */
int sp_xen_find(struct sp_xen *x, const uint8_t uuid[SP_UUID_LEN], uint32_t *domid, bool *found, struct sp_error *err);
int sp_xen_pause(struct sp_xen *x, uint32_t domid, struct sp_error *err);
int sp_xen_unpause(struct sp_xen *x, uint32_t domid, struct sp_error *err);

#endif
