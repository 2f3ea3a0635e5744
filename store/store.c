/* The store's entry point: opening it (directories, lock, catalog schema,
 * recovery of dead jobs, stale staging), sharing and dropping the lock,
 * closing. Jobs are in jobs.c, the file helpers in files.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
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

/* Schema 2: jobs that outlive the lock (an export) name their process and
 * the nodes to merge back when they end; pins are the files such a job
 * reads, which gc must not rewrite. */
static const char SCHEMA_2[] =
    "ALTER TABLE jobs ADD COLUMN owner_pid INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN owner_start INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN merge TEXT NOT NULL DEFAULT '';"
    "CREATE TABLE pins ("
    "  job INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  vdi TEXT NOT NULL, PRIMARY KEY (job, vdi));"
    "CREATE INDEX pins_vdi ON pins(vdi);"
    "UPDATE meta SET value = '2' WHERE key = 'schema';";

/* Schema 3: the firmware (xl's bios=) and the VIFs' network names. Before,
 * bios= was one of the statements kept verbatim in extra: a UEFI guest's
 * is taken from there (the statement stays; xl reads the same value). */
static const char SCHEMA_3[] =
    "ALTER TABLE vms ADD COLUMN bios TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE vifs ADD COLUMN network TEXT NOT NULL DEFAULT '';"
    "UPDATE vms SET bios = 'ovmf' WHERE type = 'hvm' AND (extra LIKE '%bios = ''ovmf''%' OR "
    "  extra LIKE '%bios=''ovmf''%' OR extra LIKE '%bios = \"ovmf\"%' OR extra LIKE '%bios=\"ovmf\"%');"
    "UPDATE meta SET value = '3' WHERE key = 'schema';";

/* What takes schema N to N+1, from 1. */
static const char *const UPGRADES[] = {SCHEMA_2, SCHEMA_3};

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
    if (rc == SP_OK && tables == 0)
        rc = db_run(s, err, "INSERT INTO meta (key, value) VALUES ('schema', '1'), ('created_by', 'snapport 0.1')",
                    NULL);
    for (size_t i = 0; i < sizeof UPGRADES / sizeof UPGRADES[0]; i++)
        if (rc == SP_OK && tables == 0 && sqlite3_exec(s->db, UPGRADES[i], NULL, NULL, NULL) != SQLITE_OK)
            rc = db_error(s, err, "create schema");
    if (rc == SP_OK)
        return db_commit(s, err);
    db_rollback(s);
    return rc;
}

/* An older store is upgraded in place, under the write lock (taken for
 * this moment by a reader), in one transaction: schema 1 gains the job
 * owners and the pins, 2 the firmware and network names. */
static int migrate(struct sp_store *s, struct sp_error *err)
{
    int rc = s->writer ? SP_OK : sp_lock_change(s->lock_fd, s->dir, true, err);
    char v[32] = "";
    if (rc == SP_OK)
        rc = db_begin(s, err);
    if (rc == SP_OK)
        rc = db_text(s, err, v, sizeof v, NULL, "SELECT value FROM meta WHERE key = 'schema'", NULL);
    /* another process may have migrated it while we waited */
    for (long from = strtol(v, NULL, 10); rc == SP_OK && from >= 1 && from < SP_STORE_SCHEMA; from++)
        if (sqlite3_exec(s->db, UPGRADES[from - 1], NULL, NULL, NULL) != SQLITE_OK)
            rc = db_error(s, err, "upgrade the schema");
    if (rc == SP_OK)
        rc = db_commit(s, err);
    else
        db_rollback(s);
    if (!s->writer) {
        int lrc = sp_lock_change(s->lock_fd, s->dir, false, err);
        if (rc == SP_OK)
            rc = lrc;
    }
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
    if (version >= 1 && version < SP_STORE_SCHEMA)
        return migrate(s, err);
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

/* A store is a folder with a catalog in it. */
static int require_store(const char *dir, struct sp_error *err)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/catalog.db", dir);
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
        return SP_OK;
    return sp_error_set(err, SP_ENOTFOUND, "no store at %s (create one with vm create or import)", dir);
}

int sp_store_open(const char *dir, unsigned mode, const char *command, struct sp_store **out,
                  struct sp_error *err)
{
    *out = NULL;
    if (!(mode & SP_STORE_CREATE)) {
        int rc = require_store(dir, err);
        if (rc != SP_OK)
            return rc;
    }
    struct sp_store *s = sp_zalloc(sizeof *s, err);
    if (!s)
        return SP_ENOMEM;
    s->lock_fd = -1;
    s->writer = (mode & SP_STORE_WRITE) != 0;
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
        staging_sweep(s, true, NULL, NULL);
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
        staging_sweep(s, true, NULL, NULL);
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
