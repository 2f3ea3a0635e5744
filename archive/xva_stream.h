/* The XVA tar stream (reference/xva.md section 1): ova.xml first, then per
 * VDI 1 MiB blocks "<id>/%08d", each followed by its checksum member
 * (".xxhash": XXH64 as 16 uppercase hex digits, XAPI 8.1+; ".checksum":
 * SHA-1, 40 lowercase hex digits). Written with old-style tar headers
 * through libarchive (v7tar: names under 100 bytes, no directory entries,
 * no PAX); read in any tar dialect libarchive knows (ustar, GNU, PAX), the
 * names still under 100 bytes. All-zero blocks are left out, except the
 * first and the last of each VDI. */
#ifndef SP_XVA_STREAM_H
#define SP_XVA_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "disk/copy.h"
#include "disk/disk.h"
#include "base/error.h"

#define SP_XVA_BLOCK (1u << 20)

/* A VDI's id is only the tar folder of its blocks ("<id>/00000000.checksum"):
 * XAPI writes "Ref:<n>", Xen Orchestra "Ref:000", image builders names such
 * as "Ref:VDI-1-root". Any id that is safe as one folder name is taken:
 * printable ASCII without blanks, '/' or '\\', not "." and no "..", not empty, shorter
 * than SP_XVA_ID_MAX (so that "<id>/<20-digit counter>.checksum" stays
 * within a V7 header's 99-byte name). */
#define SP_XVA_ID_MAX 64
bool sp_xva_id_valid(const char *id);

enum sp_xva_digest {
    SP_XVA_XXHASH,
    SP_XVA_SHA1,
};

enum sp_xva_compress {
    SP_XVA_PLAIN,
    SP_XVA_GZIP,
    SP_XVA_ZSTD,
};

/* ---- writing ------------------------------------------------------------ */

struct sp_xva_writer;

/* A writer to fd (a file or a pipe; not closed). mtime: the time every
 * member carries (the snapshot's, so that the same snapshot gives the same
 * bytes). level: of gzip (1..12) or zstd (1..19), 0: the default. */
int sp_xva_writer_open(int fd, enum sp_xva_compress compress, int level, enum sp_xva_digest digest, int64_t mtime,
                       struct sp_xva_writer **out, struct sp_error *err);
/* The ova.xml member; must come first. */
int sp_xva_write_xml(struct sp_xva_writer *w, const char *xml, size_t len, struct sp_error *err);
/* One VDI's blocks, from disk's extents: ZERO extents are never read. Call
 * in the order of the ids (strcmp). With a progress hook the extents are
 * walked once first for the total; without one the disk is read in a
 * single forward pass (a disk fed by pushes, disk/pushdisk.h). */
int sp_xva_write_disk(struct sp_xva_writer *w, const char *id, struct sp_disk *disk, const struct sp_progress *prog,
                      struct sp_error *err);
/* The end of the archive; flushes. */
int sp_xva_writer_close(struct sp_xva_writer *w, struct sp_error *err);
/* Accepts NULL; after a failure, frees without writing the end. */
void sp_xva_writer_free(struct sp_xva_writer *w);

/* ---- reading ------------------------------------------------------------ */

struct sp_xva_reader;

/* Reads from fd (a file or a pipe: one forward pass); gzip or zstd are
 * recognised from the bytes. name is for messages. The first member must
 * be ova.xml; it is read here. */
int sp_xva_reader_open(int fd, const char *name, struct sp_xva_reader **out, struct sp_error *err);
/* The same from a stream whose head may have been looked at (not freed). */
struct sp_instream;
int sp_xva_reader_open_in(struct sp_instream *in, const char *name, struct sp_xva_reader **out,
                          struct sp_error *err);
const char *sp_xva_reader_xml(const struct sp_xva_reader *r, size_t *len);
/* The digest kinds of the checksum members seen so far (for info): bit
 * 1 << SP_XVA_XXHASH, 1 << SP_XVA_SHA1; 0 before any was seen. */
unsigned sp_xva_reader_digests(const struct sp_xva_reader *r);
enum sp_xva_compress sp_xva_reader_compress(const struct sp_xva_reader *r);

/* The VDI id whose blocks come next (the folder of the next member), or ""
 * when the archive ends or the next member is not a block of a valid id.
 * id holds SP_XVA_ID_MAX bytes. */
int sp_xva_reader_next_id(struct sp_xva_reader *r, char id[SP_XVA_ID_MAX], struct sp_error *err);
/* Reads the blocks of the VDI id (the next one in the archive), of
 * virtual_size bytes, checking every checksum as it streams. sink gets each
 * block present (offset, bytes); absent blocks are zeros and are not
 * passed. sink may be NULL (verify). *stored: the bytes of blocks present.
 * Errors name the member ("Ref:3/00000007: xxhash mismatch"). */
int sp_xva_read_disk(struct sp_xva_reader *r, const char *id, uint64_t virtual_size,
                     int (*sink)(void *ctx, uint64_t off, const void *data, size_t len), void *ctx, uint64_t *stored,
                     const struct sp_progress *prog, struct sp_error *err);
/* Expects the end of the archive (nothing after the last VDI). */
int sp_xva_reader_finish(struct sp_xva_reader *r, struct sp_error *err);
void sp_xva_reader_free(struct sp_xva_reader *r);

#endif
