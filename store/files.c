/* The store's files: where each lives, the VDI files every operation
 * creates (a new child, a disk or memory image copied in, a shared memory
 * image), the VMs' .cfg files, and small helpers the operations share. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/chain.h"
#include "base/outfile.h"
#include "disk/raw.h"
#include "base/util.h"
#include "disk/vhd.h"
#include "store/internal.h"

void store_path(const struct sp_store *s, const char *rel, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", s->dir, rel);
}

void vdi_rel_path(const char *uuid, char *out, size_t len)
{
    snprintf(out, len, "vdis/%s.vhd", uuid);
}

void mem_rel_path(const char *uuid, char *out, size_t len)
{
    snprintf(out, len, "vdis/%s.mem", uuid);
}

/* ---- files -------------------------------------------------------------- */

/* Removes a staging folder: its files, then the folder (no deeper levels). */
void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char p[4096 + 256];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

int store_sync_dir(struct sp_store *s, struct sp_error *err)
{
    char path[4096];
    store_path(s, "vdis", path, sizeof path);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return sp_error_errno(err, errno, "store %s", path);
    int rc = fsync(fd) == 0 ? SP_OK : sp_error_errno(err, errno, "store %s: fsync", path);
    close(fd);
    return rc;
}

int store_create_child(struct sp_store *s, const char *parent_vdi, const char *uuid, struct sp_error *err)
{
    char rel[128], path[4096], ppath[4096];
    uint8_t u[SP_UUID_LEN];
    if (sp_uuid_parse(uuid, u) != SP_OK)
        return sp_error_set(err, SP_EINVAL, "bad uuid %s", uuid);
    int rc = sp_store_vdi_path(s, parent_vdi, ppath, sizeof ppath, err);
    if (rc != SP_OK)
        return rc;
    struct sp_vhd *parent = NULL;
    rc = sp_vhd_open_header(ppath, &parent, err);
    if (rc != SP_OK)
        return rc;
    vdi_rel_path(uuid, rel, sizeof rel);
    store_path(s, rel, path, sizeof path);
    struct sp_vhd_create_opts o = {.type = SP_VHD_DIFF, .parent = parent, .uuid = u, .block_size = parent->block_size};
    if (parent->footer.disk_type == SP_VHD_FIXED)
        o.block_size = 0;
    struct sp_outfile out;
    rc = sp_outfile_open(&out, path, false, err);
    if (rc == SP_OK)
        rc = sp_vhd_create_fd(out.fd, path, &o, err);
    if (rc == SP_OK)
        rc = sp_outfile_commit(&out, err);
    else
        sp_outfile_abort(&out);
    sp_vhd_close(parent);
    return rc;
}

int store_import_disk(struct sp_store *s, struct sp_disk *src, const char *uuid, const struct sp_progress *prog,
                      struct sp_error *err)
{
    char rel[128], path[4096];
    uint8_t u[SP_UUID_LEN];
    if (sp_uuid_parse(uuid, u) != SP_OK)
        return sp_error_set(err, SP_EINVAL, "bad uuid %s", uuid);
    vdi_rel_path(uuid, rel, sizeof rel);
    store_path(s, rel, path, sizeof path);
    uint64_t size = sp_round_up_u64(src->size, SP_VHD_SECTOR);
    struct sp_vhd_create_opts o = {.size = size, .type = SP_VHD_DYNAMIC, .uuid = u};
    struct sp_outfile out;
    struct sp_chain *dst = NULL;
    int rc = sp_outfile_open(&out, path, false, err);
    if (rc == SP_OK)
        rc = sp_vhd_create_fd(out.fd, path, &o, err);
    if (rc == SP_OK)
        rc = sp_chain_open(out.tmp_path, true, &dst, err);
    if (rc == SP_OK)
        rc = sp_copy_disk(src, sp_chain_disk(dst), prog, err);
    if (dst)
        sp_disk_close(sp_chain_disk(dst));
    if (rc == SP_OK)
        rc = sp_outfile_commit(&out, err);
    else
        sp_outfile_abort(&out);
    return rc;
}

int store_import_memory(struct sp_store *s, struct sp_disk *src, const char *uuid, struct sp_error *err)
{
    char rel[128], path[4096];
    mem_rel_path(uuid, rel, sizeof rel);
    store_path(s, rel, path, sizeof path);
    struct sp_outfile out;
    struct sp_disk *dst = NULL;
    int rc = sp_outfile_open(&out, path, false, err);
    if (rc == SP_OK)
        rc = sp_raw_create_fd(out.fd, path, src->size, true, &dst, err);
    if (rc == SP_OK)
        rc = sp_copy_disk(src, dst, NULL, err);
    sp_disk_close(dst);
    if (rc == SP_OK)
        rc = sp_outfile_commit(&out, err);
    else
        sp_outfile_abort(&out);
    return rc;
}

int store_share_memory(struct sp_store *s, const char *from_vdi, const char *uuid, struct sp_error *err)
{
    char from[4096], rel[128], to[4096];
    int rc = sp_store_vdi_path(s, from_vdi, from, sizeof from, err);
    if (rc != SP_OK)
        return rc;
    mem_rel_path(uuid, rel, sizeof rel);
    store_path(s, rel, to, sizeof to);
    if (link(from, to) != 0)
        return sp_error_errno(err, errno, "store %s: sharing %s", s->dir, from);
    return SP_OK;
}

int sp_store_vdi_path(struct sp_store *s, const char *vdi, char *out, size_t len, struct sp_error *err)
{
    struct sp_vdi v;
    int rc = vdi_load(s, vdi, &v, err);
    if (rc == SP_OK)
        store_path(s, v.file, out, len);
    return rc;
}

int sp_store_chain_depth(struct sp_store *s, const char *vdi, int *depth, struct sp_error *err)
{
    int64_t d = 0;
    int rc = db_int(s, err, &d, NULL,
                    "WITH RECURSIVE up(u, n) AS (SELECT ?, 1 UNION ALL "
                    "SELECT v.parent, up.n + 1 FROM vdis v JOIN up ON v.uuid = up.u WHERE v.parent IS NOT NULL AND up.n < 1000) "
                    "SELECT max(n) FROM up", "t", vdi);
    *depth = (int)d;
    return rc;
}

int new_mac(char out[18], struct sp_error *err)
{
    uint8_t r[3];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return sp_error_errno(err, errno, "getrandom");
    snprintf(out, 18, "00:16:3e:%02x:%02x:%02x", r[0] & 0x7f, r[1], r[2]);
    return SP_OK;
}

int filelist_add(char **list, const char *path, struct sp_error *err)
{
    size_t old = *list ? strlen(*list) : 0, add = strlen(path) + 1;
    char *p = realloc(*list, old + add + 1);
    if (!p)
        return sp_error_set(err, SP_ENOMEM, "out of memory");
    memcpy(p + old, path, add - 1);
    p[old + add - 1] = '\n';
    p[old + add] = '\0';
    *list = p;
    return SP_OK;
}

bool filelist_next(const char **p, char *out, size_t len)
{
    if (!*p || !**p)
        return false;
    const char *nl = strchr(*p, '\n');
    size_t n = nl ? (size_t)(nl - *p) : strlen(*p);
    snprintf(out, len, "%.*s", (int)(n < len ? n : len - 1), *p);
    *p = nl ? nl + 1 : NULL;
    return true;
}

/* ---- cfg files ---------------------------------------------------------- */

void store_write_cfg(struct sp_store *s, const char *vm)
{
    struct sp_error err;
    char *text = NULL;
    if (sp_vm_config_text(s, vm, &text, &err) != SP_OK)
        return;
    char rel[128], path[4096];
    snprintf(rel, sizeof rel, "vms/%s.cfg", vm);
    store_path(s, rel, path, sizeof path);
    struct sp_outfile out;
    if (sp_outfile_open(&out, path, true, &err) == SP_OK) {
        size_t n = strlen(text);
        if (sp_pwrite_full(out.fd, text, n, 0, "cfg", &err) == SP_OK)
            sp_outfile_commit(&out, &err);
        else
            sp_outfile_abort(&out);
    }
    free(text);
}
