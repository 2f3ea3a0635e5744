/* Opening the store: directories, lock, catalog schema, recovery; jobs and
 * the file operations every store operation shares. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/chain.h"
#include "base/outfile.h"
#include "disk/raw.h"
#include "base/util.h"
#include "disk/vhd.h"
#include "store/internal.h"
#include "store/lock.h"

static const char SCHEMA[] =
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE vdis ("
    "  uuid TEXT PRIMARY KEY,"
    "  parent TEXT REFERENCES vdis(uuid),"
    "  file TEXT NOT NULL UNIQUE,"
    "  virtual_size INTEGER NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('disk', 'memory')),"
    "  created INTEGER NOT NULL);"
    "CREATE TABLE vms ("
    "  uuid TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  type TEXT NOT NULL CHECK (type IN ('hvm', 'pv', 'pvh')),"
    "  memory_mb INTEGER NOT NULL, maxmem_mb INTEGER NOT NULL,"
    "  vcpus INTEGER NOT NULL, maxvcpus INTEGER NOT NULL,"
    "  boot TEXT NOT NULL, extra TEXT NOT NULL,"
    "  power_state TEXT NOT NULL CHECK (power_state IN ('halted', 'suspended')),"
    "  suspend_vdi TEXT REFERENCES vdis(uuid),"
    "  snapshot_of TEXT REFERENCES vms(uuid),"
    "  snapshot_time INTEGER NOT NULL DEFAULT 0,"
    "  is_system INTEGER NOT NULL DEFAULT 0,"
    "  parent_snapshot TEXT REFERENCES vms(uuid),"
    "  created INTEGER NOT NULL);"
    "CREATE TABLE vbds ("
    "  vm TEXT NOT NULL REFERENCES vms(uuid), position INTEGER NOT NULL,"
    "  vdi TEXT REFERENCES vdis(uuid), vdev TEXT NOT NULL, readwrite INTEGER NOT NULL,"
    "  cdrom INTEGER NOT NULL, format TEXT NOT NULL, target TEXT,"
    "  PRIMARY KEY (vm, position));"
    "CREATE TABLE vifs ("
    "  vm TEXT NOT NULL REFERENCES vms(uuid), position INTEGER NOT NULL,"
    "  mac TEXT NOT NULL, bridge TEXT NOT NULL, model TEXT NOT NULL, ip TEXT NOT NULL, extra TEXT,"
    "  PRIMARY KEY (vm, position));"
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY, kind TEXT NOT NULL, state TEXT NOT NULL,"
    "  node TEXT, child TEXT,"
    "  new_files TEXT NOT NULL DEFAULT '', old_files TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX vdis_parent ON vdis(parent);"
    "CREATE INDEX vbds_vdi ON vbds(vdi);";

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

static int make_dir(const char *path, struct sp_error *err)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return sp_error_errno(err, errno, "store %s", path);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return sp_error_set(err, SP_EINVAL, "store %s: not a directory", path);
    return SP_OK;
}

static int make_dirs(const char *dir, struct sp_error *err)
{
    char sub[4096];
    int rc = make_dir(dir, err);
    snprintf(sub, sizeof sub, "%s/vdis", dir);
    if (rc == SP_OK)
        rc = make_dir(sub, err);
    snprintf(sub, sizeof sub, "%s/vms", dir);
    if (rc == SP_OK)
        rc = make_dir(sub, err);
    snprintf(sub, sizeof sub, "%s/staging", dir);
    if (rc == SP_OK)
        rc = make_dir(sub, err);
    return rc;
}

/* Creates the tables unless another process did while we waited. */
static int create_schema(struct sp_store *s, struct sp_error *err)
{
    int rc = db_begin(s, err);
    int64_t tables = 0;
    if (rc == SP_OK)
        rc = db_int(s, err, &tables, NULL, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                    NULL);
    if (rc == SP_OK && tables == 0 && sqlite3_exec(s->db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK)
        rc = db_error(s, err, "create schema");
    char v[16];
    snprintf(v, sizeof v, "%d", SP_STORE_SCHEMA);
    if (rc == SP_OK && tables == 0)
        rc = db_run(s, err, "INSERT INTO meta (key, value) VALUES ('schema', ?), ('created_by', 'snapport 0.1')", "t",
                    v);
    if (rc == SP_OK)
        return db_commit(s, err);
    db_rollback(s);
    return rc;
}

/* A new catalog gets the schema; an existing one must be of our version:
 * a newer store is refused rather than misread. */
static int check_schema(struct sp_store *s, struct sp_error *err)
{
    int64_t tables = 0;
    int rc = db_int(s, err, &tables, NULL, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                    NULL);
    if (rc != SP_OK)
        return rc;
    if (tables == 0) {
        /* the first use creates the store, reader or not: under the write lock */
        if (!s->writer) {
            rc = sp_lock_change(s->lock_fd, s->dir, true, err);
            if (rc == SP_OK)
                rc = create_schema(s, err);
            if (rc == SP_OK)
                rc = sp_lock_change(s->lock_fd, s->dir, false, err);
            return rc;
        }
        return create_schema(s, err);
    }
    char v[32] = "";
    bool found;
    rc = db_text(s, err, v, sizeof v, &found, "SELECT value FROM meta WHERE key = 'schema'", NULL);
    if (rc != SP_OK)
        return rc;
    long version = found ? strtol(v, NULL, 10) : 0;
    if (version != SP_STORE_SCHEMA)
        return sp_error_set(err, SP_EUNSUPPORTED,
                            "store %s: catalog schema version %s, this snapport reads version %d only%s", s->dir,
                            found ? v : "(none)", SP_STORE_SCHEMA,
                            version > SP_STORE_SCHEMA ? " (made by a newer snapport)" : "");
    return SP_OK;
}

static int open_catalog(struct sp_store *s, struct sp_error *err)
{
    char path[4096];
    store_path(s, "catalog.db", path, sizeof path);
    int flags = s->writer ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK)
        return sp_error_set(err, SP_EIO, "store %s: catalog: %s", s->dir, s->db ? sqlite3_errmsg(s->db) : "cannot open");
    sqlite3_busy_timeout(s->db, 10000);
    /* WAL: readers never block the writer; FULL sync: a commit survives a crash. */
    if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;", NULL, NULL,
                     NULL) != SQLITE_OK)
        return db_error(s, err, "configure");
    return check_schema(s, err);
}

int jobs_pending(struct sp_store *s, int *n, struct sp_error *err)
{
    int64_t count = 0;
    bool has_table = false;
    int64_t t = 0;
    int rc = db_int(s, err, &t, &has_table, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'", NULL);
    if (rc == SP_OK && has_table)
        rc = db_int(s, err, &count, NULL, "SELECT count(*) FROM jobs", NULL);
    *n = (int)count;
    return rc;
}

/* Staging folders of imports that died: their lock is free. */
static void sweep_staging(struct sp_store *s)
{
    char dir[4096];
    store_path(s, "staging", dir, sizeof dir);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char sub[4096 + 256], lock[4096 + 300];
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        snprintf(lock, sizeof lock, "%s/lock", sub);
        int fd = open(lock, O_RDWR | O_CLOEXEC);
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
            close(fd); /* a live import */
            continue;
        }
        remove_tree(sub);
        if (fd >= 0)
            close(fd);
    }
    closedir(d);
}

int sp_store_open(const char *dir, enum sp_store_mode mode, const char *command, struct sp_store **out,
                  struct sp_error *err)
{
    *out = NULL;
    struct sp_store *s = sp_zalloc(sizeof *s, err);
    if (!s)
        return SP_ENOMEM;
    s->lock_fd = -1;
    s->writer = mode == SP_STORE_WRITE;
    int rc = make_dirs(dir, err);
    /* absolute: the VMs' xl.cfg name the store's files, wherever xl runs */
    char abs[PATH_MAX];
    if (rc == SP_OK && !realpath(dir, abs))
        rc = sp_error_errno(err, errno, "store %s", dir);
    if (rc == SP_OK && !(s->dir = strdup(abs)))
        rc = sp_error_set(err, SP_ENOMEM, "out of memory");
    if (rc == SP_OK)
        rc = sp_lock_take(dir, s->writer, command, &s->lock_fd, err);
    if (rc == SP_OK)
        rc = open_catalog(s, err);
    int pending = 0;
    if (rc == SP_OK)
        rc = jobs_pending(s, &pending, err);
    if (rc == SP_OK && pending && !s->writer) {
        /* a crash left work half-done: finish it before reading */
        rc = sp_lock_change(s->lock_fd, dir, true, err);
        if (rc == SP_OK)
            rc = jobs_recover(s, err);
        if (rc == SP_OK)
            rc = sp_lock_change(s->lock_fd, dir, false, err);
    } else if (rc == SP_OK && pending) {
        rc = jobs_recover(s, err);
    }
    if (rc == SP_OK && s->writer)
        sweep_staging(s);
    if (rc != SP_OK) {
        sp_store_close(s);
        return rc;
    }
    *out = s;
    return SP_OK;
}

int sp_store_share(struct sp_store *s, struct sp_error *err)
{
    if (!s->writer && !s->unlocked)
        return SP_OK;
    if (s->writer && ftruncate(s->lock_fd, 0) != 0) {
        /* only the signature */
    }
    int rc = sp_lock_change(s->lock_fd, s->dir, false, err);
    if (rc == SP_OK) {
        s->writer = false;
        s->unlocked = false;
    }
    return rc;
}

int sp_store_unlock(struct sp_store *s)
{
    if (s->writer && ftruncate(s->lock_fd, 0) != 0) {
        /* only the signature */
    }
    flock(s->lock_fd, LOCK_UN);
    s->writer = false;
    s->unlocked = true;
    return SP_OK;
}

int sp_store_exclusive(struct sp_store *s, const char *command, struct sp_error *err)
{
    if (s->writer)
        return SP_OK;
    int rc = sp_lock_change(s->lock_fd, s->dir, true, err);
    if (rc != SP_OK)
        return rc;
    s->writer = true;
    s->unlocked = false;
    sp_lock_sign(s->lock_fd, command);
    int pending = 0;
    rc = jobs_pending(s, &pending, err);
    if (rc == SP_OK && pending)
        rc = jobs_recover(s, err);
    if (rc == SP_OK)
        sweep_staging(s);
    return rc;
}

void sp_store_close(struct sp_store *s)
{
    if (!s)
        return;
    if (s->db)
        sqlite3_close(s->db);
    sp_lock_release(s->lock_fd, s->writer);
    free(s->dir);
    free(s);
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

/* ---- jobs --------------------------------------------------------------- */

int job_begin(struct sp_store *s, const char *kind, const char *new_files, int64_t *id, struct sp_error *err)
{
    int rc = db_begin(s, err);
    if (rc == SP_OK)
        rc = db_run(s, err, "INSERT INTO jobs (kind, state, new_files) VALUES (?, 'prepare', ?)", "tt", kind,
                    new_files ? new_files : "");
    if (rc == SP_OK) {
        *id = sqlite3_last_insert_rowid(s->db);
        rc = db_commit(s, err);
    } else {
        db_rollback(s);
    }
    if (rc == SP_OK)
        sp_crashpoint("job.begun");
    return rc;
}

int job_switch(struct sp_store *s, int64_t id, const char *old_files, struct sp_error *err)
{
    return db_run(s, err, "UPDATE jobs SET state = 'cleanup', old_files = ? WHERE id = ?", "ti",
                  old_files ? old_files : "", id);
}

/* Removes each listed file that no VDI row names (a row means it is live). */
static int remove_unreferenced(struct sp_store *s, const char *list, struct sp_error *err)
{
    const char *p = list;
    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char rel[256], path[4096];
        snprintf(rel, sizeof rel, "%.*s", (int)(n < sizeof rel ? n : sizeof rel - 1), p);
        int64_t refs = 0;
        int rc = db_int(s, err, &refs, NULL, "SELECT count(*) FROM vdis WHERE file = ?", "t", rel);
        if (rc != SP_OK)
            return rc;
        store_path(s, rel, path, sizeof path);
        if (refs == 0 && unlink(path) != 0 && errno != ENOENT)
            return sp_error_errno(err, errno, "store %s: removing", path);
        sp_crashpoint("job.file-removed");
        p = nl ? nl + 1 : NULL;
    }
    return SP_OK;
}

int job_finish(struct sp_store *s, int64_t id, struct sp_error *err)
{
    char old[65536] = "";
    int rc = db_text(s, err, old, sizeof old, NULL, "SELECT old_files FROM jobs WHERE id = ?", "i", id);
    if (rc == SP_OK)
        rc = remove_unreferenced(s, old, err);
    if (rc == SP_OK)
        rc = store_sync_dir(s, err);
    if (rc == SP_OK)
        rc = db_run(s, err, "DELETE FROM jobs WHERE id = ?", "i", id);
    return rc;
}

void job_abort(struct sp_store *s, int64_t id)
{
    struct sp_error ignored;
    char files[65536] = "";
    db_rollback(s);
    if (db_text(s, &ignored, files, sizeof files, NULL, "SELECT new_files FROM jobs WHERE id = ?", "i", id) == SP_OK
        && remove_unreferenced(s, files, &ignored) == SP_OK)
        db_run(s, &ignored, "DELETE FROM jobs WHERE id = ?", "i", id);
}

int jobs_recover(struct sp_store *s, struct sp_error *err)
{
    for (;;) {
        sqlite3_stmt *st;
        int rc = db_query(s, err, &st, "SELECT id, kind, state, node, child, new_files, old_files FROM jobs "
                                       "ORDER BY id LIMIT 1", NULL);
        if (rc != SP_OK)
            return rc;
        if (sqlite3_step(st) != SQLITE_ROW) {
            sqlite3_finalize(st);
            return SP_OK;
        }
        int64_t id = sqlite3_column_int64(st, 0);
        char kind[32], state[32], node[SP_UUID_STR], child[SP_UUID_STR];
        snprintf(kind, sizeof kind, "%s", (const char *)sqlite3_column_text(st, 1));
        snprintf(state, sizeof state, "%s", (const char *)sqlite3_column_text(st, 2));
        snprintf(node, sizeof node, "%s", sqlite3_column_text(st, 3) ? (const char *)sqlite3_column_text(st, 3) : "");
        snprintf(child, sizeof child, "%s",
                 sqlite3_column_text(st, 4) ? (const char *)sqlite3_column_text(st, 4) : "");
        char *files = strdup((const char *)sqlite3_column_text(st, strcmp(state, "prepare") == 0 ? 5 : 6));
        sqlite3_finalize(st);
        if (!files)
            return sp_error_set(err, SP_ENOMEM, "out of memory");
        if (strcmp(kind, "coalesce") == 0)
            rc = coalesce_recover(s, id, state, node, child, err);
        else
            rc = remove_unreferenced(s, files, err);
        free(files);
        if (rc == SP_OK)
            rc = db_run(s, err, "DELETE FROM jobs WHERE id = ?", "i", id);
        if (rc != SP_OK)
            return sp_error_prefix(err, "recovering an interrupted %s", kind);
    }
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
