/* A command's arguments, split by its entry in the command table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

bool cli_is_help(const char *a) { return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0; }

static int take_option(const struct cli_cmd *cmd, int argc, char **argv, int *i, struct cli_args *a)
{
    const char *arg = argv[*i];
    const char *eq = strchr(arg, '=');
    size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
    const struct cli_opt_def *o = cli_option_find(cmd->opts, arg, nlen);
    if (!o)
        return cli_usage_error("%s: unknown option '%s'", cmd->name, arg);
    const char **val = &a->val[o - cmd->opts];
    if (!o->arg) {
        if (eq)
            return cli_usage_error("%s: option %s takes no value", cmd->name, o->name);
        *val = "";
    } else if (eq) {
        *val = eq + 1;
    } else if (*i + 1 < argc) {
        *val = argv[++*i];
    } else {
        return cli_usage_error("%s: option %s needs a value (%s)", cmd->name, o->name, o->arg);
    }
    return EXIT_OK_;
}

int cli_parse(const struct cli_cmd *cmd, int argc, char **argv, struct cli_args *a, bool *help)
{
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    *help = false;
    /* --help wins over anything else on the line, even a mistake */
    for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (cli_is_help(argv[i]))
            *help = true;
    if (*help)
        return EXIT_OK_;
    bool only_pos = false;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (!only_pos && strcmp(arg, "--") == 0) {
            only_pos = true; /* what follows is positional, a VM named "-x" too */
            continue;
        }
        if (!only_pos && arg[0] == '-' && arg[1] != '\0') {
            int rc = take_option(cmd, argc, argv, &i, a);
            if (rc != EXIT_OK_)
                return rc;
            continue;
        }
        if (a->npos >= cmd->max_pos)
            return cli_usage_error("%s: unexpected argument '%s'", cmd->name, arg);
        a->pos[a->npos++] = arg;
    }
    return EXIT_OK_;
}

const char *cli_opt(const struct cli_args *a, const char *name)
{
    for (int i = 0; a->cmd->opts[i].name; i++)
        if (strcmp(a->cmd->opts[i].name, name) == 0)
            return a->val[i];
    fprintf(stderr, "snapport: bug: %s has no option %s in the command table\n", a->cmd->name, name);
    abort();
}
