/* snapport snapshot ...: create, list, revert, delete. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "store/store.h"

int cmd_snapshot_create(struct cli *c, const struct cli_args *a)
{
    const char *name = cli_opt(a, "--name");
    bool memory = cli_flag(a, "--memory");
    const char *const *pos = a->pos;
    int rc;
    if (a->npos != 1)
        return cli_usage_error("snapshot create: needs VM");
    struct sp_store *s;
    if ((rc = cli_store_open(c, SP_STORE_WRITE, "snapshot create", &s)) != EXIT_OK_)
        return rc;
    struct sp_error err;
    char uuid[SP_UUID_STR];
    rc = sp_snapshot_create(s, pos[0], name, memory, false, uuid, &err);
    sp_store_close(s);
    if (rc != SP_OK)
        return cli_fail(&err);
    if (c->json) {
        json_key_string("vm", pos[0]);
        json_key_string("uuid", uuid);
    }
    cli_say(c, "%s: snapshot %s\n", pos[0], uuid);
    return EXIT_OK_;
}

static void list_one(struct cli *c, const struct sp_vm *snap, const char *current, bool names)
{
    char when[32];
    time_t t = (time_t)snap->snapshot_time;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (c->json) {
        json_begin_object(NULL);
        json_key_string("uuid", snap->uuid);
        json_key_string("name", snap->cfg.name);
        json_key_string("time", when);
        json_key_bool("memory", snap->suspended);
        json_key_bool("system", snap->is_system);
        json_key_string("parent", snap->parent_snapshot[0] ? snap->parent_snapshot : NULL);
        json_key_bool("current", strcmp(current, snap->uuid) == 0);
        json_end_object();
    } else if (names) {
        printf("%s\n", cli_shown(snap->cfg.name));
    } else if (!c->quiet) {
        printf("%s %-36s  %-20s  %s  %-6s  %s\n", strcmp(current, snap->uuid) == 0 ? "*" : " ", snap->uuid,
               cli_shown(snap->cfg.name), when, snap->suspended ? "memory" : "disk", snap->is_system ? "system" : "");
    }
}

int cmd_snapshot_list(struct cli *c, const struct cli_args *a)
{
    const char *const *pos = a->pos;
    int rc;
    if (a->npos != 1)
        return cli_usage_error("snapshot list: needs VM");
    struct sp_store *s;
    if ((rc = cli_store_open(c, SP_STORE_READ, "snapshot list", &s)) != EXIT_OK_)
        return rc;
    struct sp_error err;
    char vm[SP_UUID_STR];
    char (*snaps)[SP_UUID_STR] = NULL;
    int n = 0;
    struct sp_vm v;
    memset(&v, 0, sizeof v);
    rc = sp_store_find(s, pos[0], false, NULL, vm, &err);
    if (rc == SP_OK)
        rc = sp_store_load_vm(s, vm, &v, &err);
    if (rc == SP_OK)
        rc = sp_store_list_snapshots(s, vm, &snaps, &n, &err);
    if (rc == SP_OK && c->json) {
        json_key_string("vm", vm);
        json_begin_array("snapshots");
    }
    for (int i = 0; rc == SP_OK && i < n; i++) {
        struct sp_vm snap;
        rc = sp_store_load_vm(s, snaps[i], &snap, &err);
        if (rc == SP_OK)
            list_one(c, &snap, v.parent_snapshot, cli_flag(a, "--names"));
        sp_vm_free(&snap);
    }
    if (rc == SP_OK && c->json)
        json_end_array();
    free(snaps);
    sp_vm_free(&v);
    sp_store_close(s);
    return rc == SP_OK ? EXIT_OK_ : cli_fail(&err);
}

static int snap_change(struct cli *c, const struct cli_args *a, bool revert)
{
    const char *cmd = a->cmd->name;
    const char *const *pos = a->pos;
    int rc;
    if (a->npos != 2)
        return cli_usage_error("%s: needs VM and SNAPSHOT", cmd);
    struct sp_store *s;
    if ((rc = cli_store_open(c, SP_STORE_WRITE, cmd, &s)) != EXIT_OK_)
        return rc;
    struct sp_error err;
    char vm[SP_UUID_STR], snap[SP_UUID_STR];
    rc = sp_store_find(s, pos[0], false, NULL, vm, &err);
    if (rc == SP_OK)
        rc = sp_store_find(s, pos[1], true, vm, snap, &err);
    if (rc == SP_OK)
        rc = revert ? sp_snapshot_revert(s, vm, snap, &err) : sp_snapshot_delete(s, snap, &err);
    sp_store_close(s);
    if (rc != SP_OK)
        return cli_fail(&err);
    if (c->json) {
        json_key_string("vm", vm);
        json_key_string("snapshot", snap);
    }
    cli_say(c, revert ? "%s: reverted to %s\n" : "%s: snapshot %s deleted (run 'snapport gc' to coalesce)\n", pos[0],
            pos[1]);
    return EXIT_OK_;
}

int cmd_snapshot_revert(struct cli *c, const struct cli_args *a) { return snap_change(c, a, true); }
int cmd_snapshot_delete(struct cli *c, const struct cli_args *a) { return snap_change(c, a, false); }
