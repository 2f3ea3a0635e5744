/* snapport clone, gc, store check. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "base/util.h"
#include "store/store.h"

int cmd_clone(struct cli *c, const struct cli_args *a)
{
    const char *name = cli_opt(a, "--name");
    bool full = cli_flag(a, "--full");
    const char *const *pos = a->pos;
    int rc;
    if (a->npos != 1 || !name)
        return cli_usage_error("clone: needs VM or SNAPSHOT and --name NEW");
    struct sp_store *s;
    if ((rc = cli_store_open(c, SP_STORE_WRITE, "clone", &s)) != EXIT_OK_)
        return rc;
    struct sp_error err;
    char uuid[SP_UUID_STR];
    struct cli_progress *bar = full ? cli_progress_start(c, "copy") : NULL;
    rc = sp_clone(s, pos[0], name, full, cli_progress_hook(bar), uuid, &err);
    cli_progress_finish(bar);
    sp_store_close(s);
    if (rc != SP_OK)
        return cli_fail(&err);
    if (c->json) {
        json_key_string("uuid", uuid);
        json_key_string("name", name);
    }
    cli_say(c, "%s: cloned as %s (%s)\n", pos[0], name, uuid);
    return EXIT_OK_;
}

static void gc_action(void *ctx, const char *what, uint64_t frees, uint64_t needs)
{
    struct cli *c = ctx;
    char a[32], b[32];
    if (c->json) {
        json_begin_object(NULL);
        json_key_string("action", what);
        json_key_uint("frees", frees);
        json_key_uint("needs", needs);
        json_end_object();
    } else if (!c->quiet) {
        printf("%s (frees %s, needs %s)\n", what, sp_format_size(frees, a, sizeof a), sp_format_size(needs, b, sizeof b));
    }
}

int cmd_gc(struct cli *c, const struct cli_args *a)
{
    bool dry = cli_flag(a, "--dry-run");
    int rc;
    struct sp_store *s;
    if ((rc = cli_store_open(c, dry ? SP_STORE_READ : SP_STORE_WRITE, "gc", &s)) != EXIT_OK_)
        return rc;
    struct sp_error err;
    struct sp_gc_report rep = {gc_action, c};
    uint64_t freed = 0, needed = 0;
    if (c->json)
        json_begin_array("actions");
    rc = sp_gc(s, dry, &rep, &freed, &needed, &err);
    sp_store_close(s);
    if (c->json) {
        json_end_array();
        json_key_bool("dry_run", dry);
        json_key_uint("frees", freed);
        json_key_uint("needs", needed);
    }
    if (rc != SP_OK)
        return cli_fail(&err);
    char fs[32], ns[32];
    if (dry)
        cli_say(c, "gc --dry-run: would free about %s; needs at most %s free while it runs\n",
                sp_format_size(freed, fs, sizeof fs), sp_format_size(needed, ns, sizeof ns));
    else
        cli_say(c, "gc: freed about %s\n", sp_format_size(freed, fs, sizeof fs));
    return EXIT_OK_;
}

int cmd_store_check(struct cli *c, const struct cli_args *a)
{
    (void)a;
    int rc;
    struct sp_store *s;
    if ((rc = cli_store_open(c, SP_STORE_READ, "store check", &s)) != EXIT_OK_)
        return rc;
    struct sp_error err;
    struct cli_problems p = {c, ""};
    int count = 0;
    if (c->json)
        json_key_string("store", c->store);
    cli_problems_begin(c, NULL);
    rc = sp_store_check(s, cli_problem, &p, &count, &err);
    sp_store_close(s);
    cli_problems_end(c);
    if (rc != SP_OK)
        return cli_fail(&err);
    if (count) {
        cli_error("store %s: %d problem%s: %s", c->store, count, count > 1 ? "s" : "", p.first);
        return EXIT_DIFF;
    }
    cli_say(c, "store %s: ok\n", c->store);
    return EXIT_OK_;
}
