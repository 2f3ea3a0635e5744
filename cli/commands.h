/* The command table: every command, its arguments, options and help text.
 * The one source the parser, `--help`, the man page and the bash
 * completion are made from (cli/help.c, cli/gendoc.c), so they cannot
 * tell different stories. */
#ifndef SP_CLI_COMMANDS_H
#define SP_CLI_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>

struct cli;
struct cli_args;

#define CLI_OPTS_MAX 24
#define CLI_POS_MAX 64 /* export VM... takes many; more: --all */

/* An option. arg is NULL for a flag; else the value's placeholder, which
 * also tells the completion what to offer: "a|b|c" offers those words,
 * FILE, PATH or NAME.ext a file, DIR a folder, anything else nothing. */
struct cli_opt_def {
    const char *name;  /* "--format" */
    const char *alias; /* "-o" for "--output", or NULL */
    const char *arg;
    const char *help;
};

struct cli_cmd {
    const char *name; /* "disk flatten" */
    int (*run)(struct cli *c, const struct cli_args *a);
    /* The synopsis after the name: positionals and the options a run
     * needs ("IMAGE -o OUT"); the others are added as [--opt ARG]. Its
     * upper-case words name what each positional is (VM, SNAPSHOT,
     * IMAGE, ARCHIVE, ...), which the completion goes by. */
    const char *args;
    int max_pos;
    const char *summary;     /* one line, lower case, no full stop */
    const char *description; /* one paragraph, wrapped where it is shown */
    const char *example;     /* command lines, one per line */
    struct cli_opt_def opts[CLI_OPTS_MAX];
};

/* A word before the command's own name ("disk", "vm"). */
struct cli_group {
    const char *name;
    const char *summary;
};

extern const struct cli_cmd CLI_COMMANDS[];
extern const size_t CLI_NCOMMANDS;
extern const struct cli_group CLI_GROUPS[];
extern const size_t CLI_NGROUPS;
extern const struct cli_opt_def CLI_GLOBAL_OPTS[];

/* The texts of `snapport --help` and the man page's own sections. */
extern const char CLI_ABOUT[];
struct cli_text_item {
    const char *term;
    const char *text;
};
extern const struct cli_text_item CLI_EXIT_STATUS[];
extern const struct cli_text_item CLI_ENVIRONMENT[];
extern const struct cli_text_item CLI_FILES[];
extern const char CLI_EXAMPLES[];

/* The command named by argv's first one or two words; *used is how many. */
const struct cli_cmd *cli_command_find(int argc, char **argv, int *used);
const struct cli_group *cli_group_find(const char *name);
/* Whether cmd belongs to group (its name begins with "GROUP "). */
bool cli_command_in_group(const struct cli_cmd *cmd, const struct cli_group *g);
/* The option of cmd (or of the global ones) whose name or alias is
 * name[0..len); NULL when none. */
const struct cli_opt_def *cli_option_find(const struct cli_opt_def *opts, const char *name, size_t len);

#endif
