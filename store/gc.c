/* gc: removes what nothing references and coalesces, in place and under a
 * journal, each node that one child alone reads (XenServer's garbage
 * collector). The copy of the child's sectors into the node is idempotent:
 * the node has no other reader and the child does not change, so a restart
 * simply does it again. Then the node takes the child's identity (UUID and
 * file name): the child's own children keep their links untouched. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "base/util.h"
#include "disk/vhd.h"
#include "store/internal.h"
#include "store/xen.h"

/* Room kept free besides what a coalesce needs: the catalog and the footer
 * rewrites must still fit. */
#define GC_SPACE_MARGIN (4u << 20)

static void report(const struct sp_gc_report *rep, const char *what, uint64_t frees, uint64_t needs)
{
    if (rep && rep->action)
        rep->action(rep->ctx, what, frees, needs);
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

/* ---- leftovers ---------------------------------------------------------- */

struct staging_tally {
    const struct sp_gc_report *rep;
    uint64_t *freed;
};

/* gc --dry-run: what the write open of a real run would remove. */
static void staging_gone(void *ctx, const char *rel, uint64_t bytes)
{
    struct staging_tally *t = ctx;
    char what[512];
    snprintf(what, sizeof what, "remove %s, left by an interrupted import", rel);
    report(t->rep, what, bytes, 0);
    *t->freed += bytes;
}

static bool is_temp_name(const char *name)
{
    return name[0] == '.' && strstr(name, ".snapport-") != NULL;
}

/* Files in vdis/ that no row names: temporary files of an interrupted
 * write, or files of an operation whose job is gone. */
static int sweep_files(struct sp_store *s, bool dry_run, const struct sp_gc_report *rep, uint64_t *freed,
                       struct sp_error *err)
{
    char dir[4096];
    store_path(s, "vdis", dir, sizeof dir);
    DIR *d = opendir(dir);
    if (!d)
        return sp_error_errno(err, errno, "store %s", dir);
    int rc = SP_OK;
    struct dirent *e;
    while (rc == SP_OK && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char rel[512], path[4096], what[4200];
        snprintf(rel, sizeof rel, "vdis/%s", e->d_name);
        int64_t refs = 0;
        rc = db_int(s, err, &refs, NULL, "SELECT count(*) FROM vdis WHERE file = ?", "t", rel);
        if (rc != SP_OK || refs)
            continue;
        store_path(s, rel, path, sizeof path);
        uint64_t size = file_size(path);
        snprintf(what, sizeof what, "remove %s %s", is_temp_name(e->d_name) ? "leftover temporary file" : "unreferenced file",
                 rel);
        report(rep, what, size, 0);
        *freed += size;
        if (!dry_run && unlink(path) != 0 && errno != ENOENT)
            rc = sp_error_errno(err, errno, "store %s: removing", path);
    }
    closedir(d);
    return rc;
}

static int prune_fn(struct sp_store *s, void *ctx, char **old, struct sp_error *err)
{
    return prune_vdi(s, ctx, old, err);
}

/* VDIs that nothing owns and no child reads (normally removed at once; a
 * store from an older run may hold some). */
static int sweep_rows(struct sp_store *s, bool dry_run, const struct sp_gc_report *rep, uint64_t *freed,
                      struct sp_error *err)
{
    char uuid[SP_UUID_STR];
    for (;;) {
        bool found = false;
        int rc = db_text(s, err, uuid, sizeof uuid, &found,
                         "SELECT uuid FROM vdis v WHERE NOT EXISTS (SELECT 1 FROM vdis c WHERE c.parent = v.uuid) "
                         "AND NOT EXISTS (SELECT 1 FROM vbds b WHERE b.vdi = v.uuid) "
                         "AND NOT EXISTS (SELECT 1 FROM vms m WHERE m.suspend_vdi = v.uuid) LIMIT 1", NULL);
        if (rc != SP_OK || !found)
            return rc;
        char path[4096], what[256];
        rc = sp_store_vdi_path(s, uuid, path, sizeof path, err);
        if (rc != SP_OK)
            return rc;
        snprintf(what, sizeof what, "remove unused VDI %s", uuid);
        report(rep, what, file_size(path), 0);
        *freed += file_size(path);
        if (dry_run)
            return SP_OK; /* one level is what we can tell without changing anything */
        rc = run_switch_job(s, "gc remove", prune_fn, uuid, err);
        if (rc != SP_OK)
            return rc;
    }
}

/* ---- coalesce ----------------------------------------------------------- */

struct pair {
    struct sp_vdi node, child;
    char node_path[4096], child_path[4096];
};

/* Blocks of the child the node lacks: the node grows by that much. */
static int space_needed(struct sp_vhd *node, struct sp_vhd *child, uint64_t *needs)
{
    uint64_t blocks = 0;
    uint32_t last = UINT32_MAX;
    for (uint32_t b = 0; b < child->nblocks; b++) {
        if (!sp_vhd_block_allocated(child, b))
            continue;
        uint64_t first = (uint64_t)b * child->block_size, end = first + child->block_size;
        for (uint64_t o = first; o < end && o < node->footer.current_size; o += node->block_size) {
            uint32_t nb = (uint32_t)(o / node->block_size);
            if (nb != last && !sp_vhd_block_allocated(node, nb))
                blocks++;
            last = nb;
        }
    }
    *needs = blocks * ((uint64_t)node->block_size + node->bitmap_size + 4096);
    return SP_OK;
}

static int check_space(struct sp_store *s, const struct pair *p, uint64_t needs, struct sp_error *err)
{
    struct statvfs sv;
    if (statvfs(p->node_path, &sv) != 0)
        return sp_error_errno(err, errno, "store %s: statvfs", s->dir);
    uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
    if (avail < needs) {
        char a[32], b[32];
        return sp_error_set(err, SP_ELIMIT, "store %s: coalescing %s into %s needs %s free, %s available", s->dir,
                            p->child.uuid, p->node.uuid, sp_format_size(needs, a, sizeof a),
                            sp_format_size(avail, b, sizeof b));
    }
    return SP_OK;
}

/* Copies the sectors the child holds into the node, run by run of set bits. */
static int copy_sectors(struct sp_vhd *node, struct sp_vhd *child, struct sp_error *err)
{
    uint8_t *bm = sp_alloc(child->bitmap_size, err);
    uint8_t *buf = sp_alloc(child->block_size, err);
    int rc = bm && buf ? SP_OK : SP_ENOMEM;
    for (uint32_t b = 0; rc == SP_OK && b < child->nblocks; b++) {
        if (!sp_vhd_block_allocated(child, b))
            continue;
        rc = sp_vhd_read_bitmap(child, b, bm, err);
        uint32_t s = 0;
        while (rc == SP_OK && s < child->sectors_per_block) {
            if (!(bm[s / 8] & (0x80u >> (s % 8)))) {
                s++;
                continue;
            }
            uint32_t e = s + 1;
            while (e < child->sectors_per_block && (bm[e / 8] & (0x80u >> (e % 8))))
                e++;
            rc = sp_vhd_read_stored(child, b, s, e - s, buf, err);
            if (rc == SP_OK)
                rc = sp_vhd_write_sectors(node, (uint64_t)b * child->sectors_per_block + s, e - s, buf, err);
            s = e;
        }
        if (rc == SP_OK)
            sp_crashpoint("coalesce.block-copied");
    }
    free(bm);
    free(buf);
    return rc;
}

static int load_pair(struct sp_store *s, const char *node, const char *child, struct pair *p, struct sp_error *err)
{
    int rc = vdi_load(s, node, &p->node, err);
    if (rc == SP_OK)
        rc = vdi_load(s, child, &p->child, err);
    store_path(s, p->node.file, p->node_path, sizeof p->node_path);
    store_path(s, p->child.file, p->child_path, sizeof p->child_path);
    return rc;
}

/* The switch: node file gets the child's UUID, then the child's name; the
 * catalog forgets the node. Each step can be done again after a crash. */
static int finish_switch(struct sp_store *s, int64_t job, struct pair *p, struct sp_error *err)
{
    if (access(p->node_path, F_OK) == 0) {
        struct sp_vhd *n = NULL;
        uint8_t u[SP_UUID_LEN];
        int rc = sp_uuid_parse(p->child.uuid, u) == SP_OK ? SP_OK : sp_error_set(err, SP_EFORMAT, "bad uuid");
        if (rc == SP_OK)
            rc = sp_vhd_open(p->node_path, true, &n, err);
        if (rc == SP_OK)
            rc = sp_vhd_set_uuid(n, u, err);
        sp_vhd_close(n);
        if (rc != SP_OK)
            return rc;
        sp_crashpoint("coalesce.uuid-set");
        if (rename(p->node_path, p->child_path) != 0)
            return sp_error_errno(err, errno, "store %s: renaming %s", s->dir, p->node_path);
        rc = store_sync_dir(s, err);
        if (rc != SP_OK)
            return rc;
        sp_crashpoint("coalesce.renamed");
    }
    int rc = db_begin(s, err);
    int64_t exists = 0;
    bool found = false;
    if (rc == SP_OK)
        rc = db_int(s, err, &exists, &found, "SELECT 1 FROM vdis WHERE uuid = ?", "t", p->node.uuid);
    if (rc == SP_OK && found)
        rc = db_run(s, err, "UPDATE vdis SET parent = ? WHERE uuid = ?", "tt",
                    p->node.parent[0] ? p->node.parent : NULL, p->child.uuid);
    if (rc == SP_OK && found)
        rc = db_run(s, err, "DELETE FROM vdis WHERE uuid = ?", "t", p->node.uuid);
    if (rc == SP_OK)
        rc = db_run(s, err, "DELETE FROM jobs WHERE id = ?", "i", job);
    if (rc == SP_OK)
        rc = db_commit(s, err);
    else
        db_rollback(s);
    if (rc == SP_OK)
        sp_crashpoint("coalesce.switched");
    return rc;
}

int coalesce_recover(struct sp_store *s, int64_t id, const char *state, const char *node, const char *child,
                     struct sp_error *err)
{
    if (strcmp(state, "switch") != 0)
        return SP_OK; /* interrupted copy: harmless, the next gc copies again */
    struct pair p;
    struct sp_vdi probe;
    struct sp_error ignored;
    if (vdi_load(s, node, &probe, &ignored) != SP_OK)
        return SP_OK; /* switched already */
    int rc = load_pair(s, node, child, &p, err);
    return rc == SP_OK ? finish_switch(s, id, &p, err) : rc;
}

static int set_job_state(struct sp_store *s, int64_t job, const char *state, struct sp_error *err)
{
    int rc = db_begin(s, err);
    if (rc == SP_OK)
        rc = db_run(s, err, "UPDATE jobs SET state = ? WHERE id = ?", "ti", state, job);
    if (rc == SP_OK)
        return db_commit(s, err);
    db_rollback(s);
    return rc;
}

static int coalesce(struct sp_store *s, struct pair *p, struct sp_vhd *node, struct sp_vhd *child,
                    struct sp_error *err)
{
    int64_t job = 0;
    int rc = db_begin(s, err);
    if (rc == SP_OK)
        rc = db_run(s, err, "INSERT INTO jobs (kind, state, node, child) VALUES ('coalesce', 'copy', ?, ?)", "tt",
                    p->node.uuid, p->child.uuid);
    if (rc == SP_OK) {
        job = sqlite3_last_insert_rowid(s->db);
        rc = db_commit(s, err);
    } else {
        db_rollback(s);
    }
    if (rc != SP_OK) {
        sp_vhd_close(node);
        sp_vhd_close(child);
        return rc;
    }
    sp_crashpoint("coalesce.journal");
    rc = copy_sectors(node, child, err);
    if (rc == SP_OK)
        rc = sp_vhd_sync(node, err);
    if (rc == SP_OK)
        sp_crashpoint("coalesce.copied");
    if (rc == SP_OK)
        rc = set_job_state(s, job, "switch", err);
    if (rc != SP_OK) {
        /* the node may have grown; it stays valid, and so does everything else */
        struct sp_error ignored;
        db_run(s, &ignored, "DELETE FROM jobs WHERE id = ?", "i", job);
        sp_vhd_close(node); /* the caller leaves them to us */
        sp_vhd_close(child);
        return rc;
    }
    sp_crashpoint("coalesce.switching");
    sp_vhd_close(node);
    sp_vhd_close(child);
    return finish_switch(s, job, p, err);
}

/* One node with one child and no owner, or none left. */
static int next_candidate(struct sp_store *s, char node[SP_UUID_STR], char child[SP_UUID_STR], int skip,
                          bool *found, struct sp_error *err)
{
    int rc = db_text(s, err, node, SP_UUID_STR, found,
                     "SELECT v.uuid FROM vdis v WHERE v.kind = 'disk' "
                     "AND (SELECT count(*) FROM vdis c WHERE c.parent = v.uuid) = 1 "
                     "AND NOT EXISTS (SELECT 1 FROM vbds b WHERE b.vdi = v.uuid) "
                     "ORDER BY v.created, v.uuid LIMIT 1 OFFSET ?", "i", (int64_t)skip);
    if (rc == SP_OK && *found)
        rc = db_text(s, err, child, SP_UUID_STR, NULL, "SELECT uuid FROM vdis WHERE parent = ?", "t", node);
    return rc;
}

/* On a Xen host, a leaf that a running domain has open must not change
 * under it (its file is renamed at the switch): such a coalesce waits. */
static bool leaf_in_use(struct sp_store *s, const char *child)
{
    char vm[SP_UUID_STR];
    bool found = false;
    struct sp_error ignored;
    if (db_text(s, &ignored, vm, sizeof vm, &found, "SELECT vm FROM vbds WHERE vdi = ? LIMIT 1", "t", child) != SP_OK
        || !found)
        return false;
    struct sp_xen *x = NULL;
    if (sp_xen_open(&x, &ignored) != SP_OK)
        return false; /* no hypervisor: nothing runs */
    uint8_t u[SP_UUID_LEN];
    uint32_t domid;
    bool running = false;
    if (sp_uuid_parse(vm, u) == SP_OK)
        sp_xen_find(x, u, &domid, &running, &ignored);
    sp_xen_close(x);
    return running;
}

/* An export that reads node or child (a pin of a live job): the node must
 * not be rewritten under it. The pid of that export in *pid. */
static bool pinned(struct sp_store *s, const struct pair *p, int64_t *pid)
{
    bool found = false;
    struct sp_error ignored;
    if (db_int(s, &ignored, pid, &found,
               "SELECT j.owner_pid FROM pins p JOIN jobs j ON p.job = j.id WHERE p.vdi IN (?, ?) LIMIT 1", "tt",
               p->node.uuid, p->child.uuid) != SP_OK)
        return true; /* cannot tell: do not touch it */
    return found;
}

static int coalesce_one(struct sp_store *s, const char *nodeu, const char *childu, bool dry_run,
                        const struct sp_gc_report *rep, uint64_t *freed, uint64_t *needed, bool *skipped,
                        struct sp_error *err)
{
    struct pair p;
    struct sp_vhd *node = NULL, *child = NULL;
    *skipped = false;
    int rc = load_pair(s, nodeu, childu, &p, err);
    if (rc == SP_OK)
        rc = sp_vhd_open(p.node_path, !dry_run, &node, err);
    if (rc == SP_OK)
        rc = sp_vhd_open(p.child_path, false, &child, err);
    if (rc != SP_OK)
        goto out;
    char what[256];
    if (child->footer.current_size > node->footer.current_size) {
        snprintf(what, sizeof what, "skip %s: its child %s is larger (resized); not coalesced", p.node.uuid,
                 p.child.uuid);
        report(rep, what, 0, 0);
        *skipped = true;
        goto out;
    }
    int64_t reader = 0;
    if (pinned(s, &p, &reader)) {
        snprintf(what, sizeof what, "skip %s: an export (pid %lld) reads it or its child %s", p.node.uuid,
                 (long long)reader, p.child.uuid);
        report(rep, what, 0, 0);
        *skipped = true;
        goto out;
    }
    if (leaf_in_use(s, p.child.uuid)) {
        snprintf(what, sizeof what, "skip %s: its child %s is the disk of a running domain", p.node.uuid,
                 p.child.uuid);
        report(rep, what, 0, 0);
        *skipped = true;
        goto out;
    }
    uint64_t needs = 0, frees = file_size(p.child_path);
    space_needed(node, child, &needs);
    needs += GC_SPACE_MARGIN; /* what check_space asks for, so dry-run and the real run agree */
    snprintf(what, sizeof what, "coalesce %s into %s", p.child.uuid, p.node.uuid);
    report(rep, what, frees, needs);
    *freed += frees > needs - GC_SPACE_MARGIN ? frees - (needs - GC_SPACE_MARGIN) : 0;
    *needed += needs;
    if (dry_run)
        goto out;
    rc = check_space(s, &p, needs, err);
    if (rc == SP_OK) {
        rc = coalesce(s, &p, node, child, err);
        node = child = NULL; /* closed by coalesce */
    }
out:
    sp_vhd_close(node);
    sp_vhd_close(child);
    return rc;
}

int sp_gc(struct sp_store *s, bool dry_run, const struct sp_gc_report *rep, uint64_t *freed, uint64_t *needed,
          struct sp_error *err)
{
    *freed = *needed = 0;
    if (s->swept_staging) {
        /* removed when gc opened the store (any writer does it) */
        char what[128];
        snprintf(what, sizeof what, "removed %d leftover staging folder%s of interrupted imports", s->swept_staging,
                 s->swept_staging == 1 ? "" : "s");
        report(rep, what, s->swept_bytes, 0);
        *freed += s->swept_bytes;
    }
    struct staging_tally t = {rep, freed};
    if (dry_run)
        staging_sweep(s, false, staging_gone, &t);
    int rc = sweep_files(s, dry_run, rep, freed, err);
    if (rc == SP_OK)
        rc = sweep_rows(s, dry_run, rep, freed, err);
    int skip = 0;
    while (rc == SP_OK) {
        char node[SP_UUID_STR], child[SP_UUID_STR];
        bool found = false, skipped = false;
        rc = next_candidate(s, node, child, skip, &found, err);
        if (rc != SP_OK || !found)
            break;
        rc = coalesce_one(s, node, child, dry_run, rep, freed, needed, &skipped, err);
        if (dry_run || skipped)
            skip++; /* nothing changes: look at the next one */
    }
    return rc;
}

int sp_gc_coalesce_node(struct sp_store *s, const char *node, struct sp_error *err)
{
    char child[SP_UUID_STR];
    int owners = 0, children = 0;
    struct sp_vdi v;
    int rc = vdi_load(s, node, &v, err);
    if (rc == SP_OK)
        rc = vdi_owners(s, node, &owners, err);
    if (rc == SP_OK)
        rc = vdi_children(s, node, &children, child, err);
    if (rc != SP_OK || owners || children != 1 || strcmp(v.kind, "disk") != 0)
        return rc; /* not (or no longer) a node that one child alone reads */
    uint64_t freed = 0, needed = 0;
    bool skipped = false;
    return coalesce_one(s, node, child, false, NULL, &freed, &needed, &skipped, err);
}
