/* Jobs: every operation records the files it will create before touching
 * any, switches the catalog in one transaction, removes old files last; an
 * open finishes or undoes what a dead process left (recovery). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/outfile.h"
#include "base/util.h"
#include "store/internal.h"

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

/* Removes each listed file that no VDI row names (a row means it is live);
 * dead_writer: also what the killed writer of each left (its temporary). */
static int remove_unreferenced(struct sp_store *s, const char *list, bool dead_writer, struct sp_error *err)
{
    char rel[256], path[4096];
    for (const char *p = list; filelist_next(&p, rel, sizeof rel);) {
        int64_t refs = 0;
        int rc = db_int(s, err, &refs, NULL, "SELECT count(*) FROM vdis WHERE file = ?", "t", rel);
        if (rc != SP_OK)
            return rc;
        store_path(s, rel, path, sizeof path);
        if (dead_writer)
            sp_outfile_sweep(path);
        if (refs == 0 && unlink(path) != 0 && errno != ENOENT)
            return sp_error_errno(err, errno, "store %s: removing", path);
        sp_crashpoint("job.file-removed");
    }
    return SP_OK;
}

int job_finish(struct sp_store *s, int64_t id, struct sp_error *err)
{
    char old[65536] = "";
    int rc = db_text(s, err, old, sizeof old, NULL, "SELECT old_files FROM jobs WHERE id = ?", "i", id);
    if (rc == SP_OK)
        rc = remove_unreferenced(s, old, false, err);
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
        && remove_unreferenced(s, files, false, &ignored) == SP_OK)
        db_run(s, &ignored, "DELETE FROM jobs WHERE id = ?", "i", id);
}

/* The next job before `before` (newest first) that a dead process left: a
 * job without an owner runs under the write lock, so one seen by an opener
 * is a dead writer's; a job with an owner (an export) is dead when its
 * owner is. Newest first: a job started inside another (the merge at an
 * export's end) is finished before the one around it. */
static int next_dead_job(struct sp_store *s, int64_t before, int64_t *id, bool *found, struct sp_error *err)
{
    sqlite3_stmt *st;
    *found = false;
    int rc = db_query(s, err, &st, "SELECT id, owner_pid, owner_start FROM jobs WHERE id < ? ORDER BY id DESC", "i",
                      before);
    if (rc != SP_OK)
        return rc;
    while (!*found && sqlite3_step(st) == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        int64_t pid = sqlite3_column_int64(st, 1);
        *found = pid == 0 || !job_owner_alive(pid, sqlite3_column_int64(st, 2));
    }
    sqlite3_finalize(st);
    return SP_OK;
}

static int recover_one(struct sp_store *s, int64_t id, struct sp_error *err)
{
    sqlite3_stmt *st;
    int rc = db_query(s, err, &st, "SELECT kind, state, node, child, new_files, old_files FROM jobs WHERE id = ?",
                      "i", id);
    if (rc != SP_OK)
        return rc;
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return SP_OK;
    }
    char kind[32], state[32], node[SP_UUID_STR], child[SP_UUID_STR];
    snprintf(kind, sizeof kind, "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(state, sizeof state, "%s", (const char *)sqlite3_column_text(st, 1));
    snprintf(node, sizeof node, "%s", sqlite3_column_text(st, 2) ? (const char *)sqlite3_column_text(st, 2) : "");
    snprintf(child, sizeof child, "%s", sqlite3_column_text(st, 3) ? (const char *)sqlite3_column_text(st, 3) : "");
    char *files = strdup((const char *)sqlite3_column_text(st, strcmp(state, "prepare") == 0 ? 4 : 5));
    sqlite3_finalize(st);
    if (!files)
        return sp_error_set(err, SP_ENOMEM, "out of memory");
    if (strcmp(kind, "coalesce") == 0)
        rc = coalesce_recover(s, id, state, node, child, err);
    else if (strcmp(kind, "export") == 0)
        rc = hold_recover(s, id, state, node, err);
    else
        rc = remove_unreferenced(s, files, true, err);
    free(files);
    if (rc == SP_OK)
        rc = db_run(s, err, "DELETE FROM jobs WHERE id = ?", "i", id);
    if (rc != SP_OK)
        return sp_error_prefix(err, "recovering an interrupted %s", kind);
    return SP_OK;
}

int jobs_recover(struct sp_store *s, struct sp_error *err)
{
    int64_t before = INT64_MAX;
    for (;;) {
        int64_t id = 0;
        bool found = false;
        int rc = next_dead_job(s, before, &id, &found, err);
        if (rc != SP_OK || !found)
            return rc;
        rc = recover_one(s, id, err);
        if (rc != SP_OK)
            return rc;
        before = id;
    }
}

int jobs_pending(struct sp_store *s, int *n, struct sp_error *err)
{
    *n = 0;
    int64_t id = 0;
    bool found = false;
    int rc = next_dead_job(s, INT64_MAX, &id, &found, err);
    *n = found;
    return rc;
}
