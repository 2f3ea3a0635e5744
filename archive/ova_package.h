/* Where an OVA import reads its files from: a tar (a file or a pipe, one
 * forward pass) or a folder holding an unpacked .ovf and its files. The
 * importer sees the same member sequence either way: the .ovf first, then
 * whatever follows. */
#ifndef SP_OVA_PACKAGE_H
#define SP_OVA_PACKAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "archive/ova.h"
#include "archive/ovf.h"

struct sp_instream;
struct ova_package;

/* A tar from in. */
int ova_package_tar(struct sp_instream *in, const char *label, struct ova_package **out, struct sp_error *err);
/* path: a folder with exactly one .ovf, or the .ovf itself. Files are read
 * beside it only, never through a symbolic link. */
int ova_package_dir(const char *path, struct ova_package **out, struct sp_error *err);
/* Tells a folder package which files to give after the .ovf: its .mf and
 * .cert when present, then the References in order (a missing one is
 * simply not given; the importer reports it). No-op for a tar. */
int ova_package_plan(struct ova_package *p, const char *ovf_name, const struct sp_ovf_system *sys,
                     struct sp_error *err);
int ova_package_next(struct ova_package *p, char name[SP_OVA_NAME_MAX + 1], uint64_t *size, bool *eof,
                     struct sp_error *err);
int ova_package_read(struct ova_package *p, void *buf, size_t len, size_t *got, struct sp_error *err);
const char *ova_package_label(const struct ova_package *p);
void ova_package_free(struct ova_package *p);

#endif
