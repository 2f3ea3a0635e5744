/* snapport snapshot ...: create, list, revert, delete. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "store/store.h"

static int snap_create(struct cli *c, int argc, char **argv)
{
    const char *name = NULL, *memory = NULL;
    const struct cli_opt opts[] = {{"--name", true, &name}, {"--memory", false, &memory}, {NULL, false, NULL}};
    const char *pos[1];
    int npos;
    int rc = cli_parse("snapshot create", argc, argv, opts, pos, 1, &npos);
    if (rc != EXIT_OK_)
        return rc;
    if (npos != 1)
        return cli_usage_error("snapshot create: needs VM");
    struct sp_store *s;
    if ((rc = cli_store_open(c, SP_STORE_WRITE, "snapshot create", &s)) != EXIT_OK_)
        return rc;
    struct sp_error err;
    char uuid[SP_UUID_STR];
    rc = sp_snapshot_create(s, pos[0], name, memory != NULL, false, uuid, &err);
    sp_store_close(s);
    if (rc != SP_OK)
        return cli_fail(&err);
    cli_report_uuid(c, uuid, "%s: snapshot %s\n", pos[0], uuid);
    return EXIT_OK_;
}

static void list_one(struct cli *c, const struct sp_vm *snap, const char *current)
{
    char when[32];
    time_t t = (time_t)snap->snapshot_time;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (c->json) {
        json_begin_object();
        json_key_string("uuid", snap->uuid);
        json_key_string("name", snap->cfg.name);
        json_key_string("time", when);
        json_key_bool("memory", snap->suspended);
        json_key_bool("system", snap->is_system);
        json_key_string("parent", snap->parent_snapshot[0] ? snap->parent_snapshot : NULL);
        json_key_bool("current", strcmp(current, snap->uuid) == 0);
        json_end_object();
    } else if (!c->quiet) {
        printf("%s %-36s  %-20s  %s  %-6s  %s\n", strcmp(current, snap->uuid) == 0 ? "*" : " ", snap->uuid,
               snap->cfg.name, when, snap->suspended ? "memory" : "disk", snap->is_system ? "system" : "");
    }
}

static int snap_list(struct cli *c, int argc, char **argv)
{
    const char *pos[1];
    int npos;
    int rc = cli_parse("snapshot list", argc, argv, NULL, pos, 1, &npos);
    if (rc != EXIT_OK_)
        return rc;
    if (npos != 1)
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
    if (rc == SP_OK && c->json)
        json_begin_array(NULL);
    for (int i = 0; rc == SP_OK && i < n; i++) {
        struct sp_vm snap;
        rc = sp_store_load_vm(s, snaps[i], &snap, &err);
        if (rc == SP_OK)
            list_one(c, &snap, v.parent_snapshot);
        sp_vm_free(&snap);
    }
    if (rc == SP_OK && c->json) {
        json_end_array();
        json_finish();
    }
    free(snaps);
    sp_vm_free(&v);
    sp_store_close(s);
    return rc == SP_OK ? EXIT_OK_ : cli_fail(&err);
}

static int snap_change(struct cli *c, int argc, char **argv, bool revert)
{
    const char *cmd = revert ? "snapshot revert" : "snapshot delete";
    const char *pos[2];
    int npos;
    int rc = cli_parse(cmd, argc, argv, NULL, pos, 2, &npos);
    if (rc != EXIT_OK_)
        return rc;
    if (npos != 2)
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
    cli_say(c, revert ? "%s: reverted to %s\n" : "%s: snapshot %s deleted (run 'snapport gc' to coalesce)\n", pos[0],
            pos[1]);
    return EXIT_OK_;
}

int cmd_snapshot(struct cli *c, int argc, char **argv)
{
    if (argc < 1)
        return cli_usage_error("snapshot: needs a subcommand (create, list, revert, delete)");
    if (strcmp(argv[0], "create") == 0)
        return snap_create(c, argc - 1, argv + 1);
    if (strcmp(argv[0], "list") == 0)
        return snap_list(c, argc - 1, argv + 1);
    if (strcmp(argv[0], "revert") == 0)
        return snap_change(c, argc - 1, argv + 1, true);
    if (strcmp(argv[0], "delete") == 0)
        return snap_change(c, argc - 1, argv + 1, false);
    return cli_usage_error("snapshot: unknown subcommand '%s'", argv[0]);
}
