/* store check: every row has its file, every file its row, every chain link
 * is what the catalog says, nothing is half-done. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "disk/chain.h"
#include "disk/vhd.h"
#include "store/internal.h"

struct checker {
    struct sp_store *s;
    void (*problem)(void *ctx, const char *msg);
    void *ctx;
    int count;
};

static void say(struct checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct checker *c, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->problem(c->ctx, msg);
    c->count++;
}

static int check_jobs(struct checker *c, struct sp_error *err)
{
    sqlite3_stmt *st;
    int rc = db_query(c->s, err, &st, "SELECT id, kind, state, owner_pid, owner_start FROM jobs ORDER BY id", NULL);
    if (rc != SP_OK)
        return rc;
    while (sqlite3_step(st) == SQLITE_ROW)
        if (!job_owner_alive(sqlite3_column_int64(st, 3), sqlite3_column_int64(st, 4))) /* a running export's is fine */
            say(c, "job %lld (%s, %s) is unfinished; 'snapport gc' finishes it", (long long)sqlite3_column_int64(st, 0),
            (const char *)sqlite3_column_text(st, 1), (const char *)sqlite3_column_text(st, 2));
    sqlite3_finalize(st);
    return SP_OK;
}

/* The VHD's own parent, as the chain reader finds it, is the catalog's. */
static void check_link(struct checker *c, const struct sp_vdi *v, const char *path)
{
    struct sp_chain *ch = NULL;
    struct sp_error e;
    if (sp_chain_open(path, false, &ch, &e) != SP_OK) {
        say(c, "VDI %s: %s", v->uuid, e.msg);
        return;
    }
    int depth = sp_chain_depth(ch);
    if (depth > SP_MAX_CHAIN)
        say(c, "VDI %s: chain of %d files, more than %d", v->uuid, depth, SP_MAX_CHAIN);
    if (!v->parent[0] && depth > 1)
        say(c, "VDI %s: the catalog has no parent, the VHD has %s", v->uuid, sp_chain_layer(ch, 1)->path);
    if (v->parent[0]) {
        char want[4096], a[PATH_MAX], b[PATH_MAX];
        struct sp_error ignored;
        if (depth < 2) {
            say(c, "VDI %s: the catalog's parent is %s, the VHD has none", v->uuid, v->parent);
        } else if (sp_store_vdi_path(c->s, v->parent, want, sizeof want, &ignored) == SP_OK
                   && (!realpath(want, a) || !realpath(sp_chain_layer(ch, 1)->path, b) || strcmp(a, b) != 0)) {
            say(c, "VDI %s: the VHD's parent is %s, the catalog's %s", v->uuid, sp_chain_layer(ch, 1)->path, want);
        }
    }
    sp_disk_close(sp_chain_disk(ch));
}

static void check_vdi(struct checker *c, const struct sp_vdi *v)
{
    char path[4096], id[SP_UUID_STR];
    struct stat st;
    store_path(c->s, v->file, path, sizeof path);
    if (stat(path, &st) != 0) {
        say(c, "VDI %s: its file %s is missing", v->uuid, v->file);
        return;
    }
    if (strcmp(v->kind, "memory") == 0) { /* raw bytes: only the size can be checked */
        if ((uint64_t)st.st_size != v->virtual_size)
            say(c, "VDI %s: memory image of %llu bytes, the catalog says %llu", v->uuid,
                (unsigned long long)st.st_size, (unsigned long long)v->virtual_size);
        return;
    }
    struct sp_vhd *vhd = NULL;
    struct sp_error e;
    if (sp_vhd_open(path, false, &vhd, &e) != SP_OK) {
        say(c, "VDI %s: %s", v->uuid, e.msg);
        return;
    }
    sp_uuid_format(vhd->footer.uuid, id);
    if (strcmp(id, v->uuid) != 0)
        say(c, "VDI %s: its VHD %s has UUID %s", v->uuid, v->file, id);
    if (vhd->footer.current_size != v->virtual_size)
        say(c, "VDI %s: virtual size %llu in the catalog, %llu in the VHD", v->uuid,
            (unsigned long long)v->virtual_size, (unsigned long long)vhd->footer.current_size);
    sp_vhd_close(vhd);
    check_link(c, v, path);
}

static int check_vdis(struct checker *c, struct sp_error *err)
{
    sqlite3_stmt *st;
    int rc = db_query(c->s, err, &st, "SELECT uuid, parent, file, virtual_size, kind FROM vdis ORDER BY uuid", NULL);
    if (rc != SP_OK)
        return rc;
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct sp_vdi v;
        snprintf(v.uuid, sizeof v.uuid, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(v.parent, sizeof v.parent, "%s",
                 sqlite3_column_text(st, 1) ? (const char *)sqlite3_column_text(st, 1) : "");
        snprintf(v.file, sizeof v.file, "%s", (const char *)sqlite3_column_text(st, 2));
        v.virtual_size = (uint64_t)sqlite3_column_int64(st, 3);
        snprintf(v.kind, sizeof v.kind, "%s", (const char *)sqlite3_column_text(st, 4));
        check_vdi(c, &v);
    }
    sqlite3_finalize(st);
    return SP_OK;
}

static int check_files(struct checker *c, struct sp_error *err)
{
    char dir[4096];
    store_path(c->s, "vdis", dir, sizeof dir);
    DIR *d = opendir(dir);
    if (!d)
        return sp_error_errno(err, errno, "store %s", dir);
    struct dirent *e;
    int rc = SP_OK;
    while (rc == SP_OK && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char rel[512];
        int64_t n = 0;
        snprintf(rel, sizeof rel, "vdis/%s", e->d_name);
        rc = db_int(c->s, err, &n, NULL, "SELECT count(*) FROM vdis WHERE file = ?", "t", rel);
        if (rc == SP_OK && n == 0)
            say(c, "%s: file without a catalog row ('snapport gc' removes it)", rel);
    }
    closedir(d);
    return rc;
}

static void staging_found(void *ctx, const char *rel, uint64_t bytes)
{
    char size[32];
    say(ctx, "%s: leftover of an interrupted import, %s ('snapport gc' removes it)", rel,
        sp_format_size(bytes, size, sizeof size));
}

/* Rows that point at nothing, and what no row should be. */
static int check_records(struct checker *c, struct sp_error *err)
{
    static const char *const queries[] = {
        "SELECT 'VBD ' || vm || '/' || position || ': its VDI ' || vdi || ' is not in the catalog' FROM vbds "
        "WHERE vdi IS NOT NULL AND vdi NOT IN (SELECT uuid FROM vdis)",
        "SELECT 'VM ' || name || ': suspended without a memory image' FROM vms "
        "WHERE power_state = 'suspended' AND suspend_vdi IS NULL",
        "SELECT 'VM ' || name || ': ' || (SELECT count(*) FROM vms s WHERE s.snapshot_of = v.uuid) || "
        "' snapshots, more than 30' FROM vms v WHERE (SELECT count(*) FROM vms s WHERE s.snapshot_of = v.uuid) > 30",
        "SELECT 'snapshot ' || name || ': its VM ' || snapshot_of || ' is not in the catalog' FROM vms "
        "WHERE snapshot_of IS NOT NULL AND snapshot_of NOT IN (SELECT uuid FROM vms)",
        "SELECT 'VDI ' || uuid || ': a memory image with a parent' FROM vdis WHERE kind = 'memory' AND parent IS NOT NULL",
    };
    for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) {
        sqlite3_stmt *st;
        int rc = db_query(c->s, err, &st, queries[i], NULL);
        if (rc != SP_OK)
            return rc;
        while (sqlite3_step(st) == SQLITE_ROW)
            say(c, "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
    }
    return SP_OK;
}

int sp_store_check(struct sp_store *s, void (*problem)(void *ctx, const char *msg), void *ctx, int *count,
                   struct sp_error *err)
{
    struct checker c = {s, problem, ctx, 0};
    int rc = check_jobs(&c, err);
    if (rc == SP_OK)
        rc = check_records(&c, err);
    if (rc == SP_OK)
        rc = check_vdis(&c, err);
    if (rc == SP_OK)
        rc = check_files(&c, err);
    if (rc == SP_OK)
        staging_sweep(s, false, staging_found, &c);
    *count = c.count;
    return rc;
}
