/* The containers a file can be wrapped in, told from its first bytes: a tar
 * header (any flavour, V7 included) and a gzip or zstd stream. Both the
 * disk registry (to refuse them as disks) and the archive table (to bid on
 * them) ask; this is the one place that decodes them. */
#ifndef SP_SNIFF_H
#define SP_SNIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A tar header block (V7, as XAPI writes them, ustar, GNU): a name and a
 * checksum field that agrees with the block. */
bool sp_sniff_tar(const uint8_t *head, size_t len);
/* The name of the first real member of the tar head begins, whatever
 * dialect carries it (V7, ustar with its prefix field, GNU long names,
 * PAX 'x'/'g' headers such as ././@PaxHeader or GNU's ./PaxHeaders/NAME),
 * read by libarchive from these bytes alone. false: not within len bytes
 * (a longer head may tell) or not a tar; name is "" then. */
bool sp_sniff_tar_first_name(const uint8_t *head, size_t len, char *name, size_t cap);
/* A gzip member (RFC 1952) or a zstd frame (RFC 8878). */
bool sp_sniff_compressed(const uint8_t *head, size_t len);

#endif
