/* A VHD chain read as one disk: open the leaf, find and open its parents
 * (UUIDs checked, loops refused), merge their block maps once (per block:
 * the topmost layer that has it), then read every byte from exactly one
 * layer. A sector present in a child shadows its parent even when it holds
 * zeros. Writes go to the leaf; sectors written partly are completed from
 * the chain first. */
#ifndef SP_CHAIN_H
#define SP_CHAIN_H

#include <stdbool.h>

#include "disk/disk.h"
#include "disk/vhd.h"

/* Files in one chain we agree to open. Deeper chains than XenServer's 30
 * exist elsewhere (Hyper-V checkpoints); past 64 it is a loop or an attack. */
#define SP_CHAIN_MAX_DEPTH 64

struct sp_chain;

/* Opens path (a VHD) and its ancestors; writable opens only the leaf so. */
int sp_chain_open(const char *path, bool writable, struct sp_chain **out, struct sp_error *err);

/* The chain as a disk; closing the disk closes the chain. */
struct sp_disk *sp_chain_disk(struct sp_chain *c);
/* The chain behind a disk, or NULL when d is not a chain. */
struct sp_chain *sp_chain_from_disk(struct sp_disk *d);

int sp_chain_depth(const struct sp_chain *c);
/* Layer i: 0 is the leaf, depth-1 the base. */
struct sp_vhd *sp_chain_layer(struct sp_chain *c, int i);
uint32_t sp_chain_block_size(const struct sp_chain *c);
/* Bytes in blocks that some layer has (what a flatten reads). */
uint64_t sp_chain_allocated_bytes(const struct sp_chain *c);

#endif
