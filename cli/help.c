/* --help, `snapport help`: made from the command table. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

#define WIDTH 79
#define OPT_COLUMN 28
#define CMD_COLUMN 34

/* text, wrapped at WIDTH, its lines indented by indent; col is where
 * the cursor stands on the first line. */
static void wrap(FILE *f, const char *text, int indent, int col)
{
    bool has_word = false;
    if (col < indent) {
        fprintf(f, "%*s", indent - col, "");
        col = indent;
    }
    for (const char *p = text; *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        /* a bracketed option of a synopsis stays on one line */
        int n = *p == '[' ? (int)strcspn(p, "]") + 1 : (int)strcspn(p, " ");
        if (p[n - 1] != ']' && *p == '[')
            n = (int)strlen(p);
        if (has_word && col + 1 + n > WIDTH) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
            has_word = false;
        }
        if (has_word) {
            fputc(' ', f);
            col++;
        }
        fwrite(p, 1, (size_t)n, f);
        col += n;
        has_word = true;
        p += n;
    }
    fputc('\n', f);
}

static bool word_in(const char *words, const char *w)
{
    size_t n = strlen(w);
    for (const char *p = words; (p = strstr(p, w)) != NULL; p += n)
        if ((p == words || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
            return true;
    return false;
}

/* Whether the synopsis' own words already show the option. */
static bool in_args(const struct cli_cmd *cmd, const struct cli_opt_def *o)
{
    return word_in(cmd->args, o->name) || (o->alias && word_in(cmd->args, o->alias));
}

const char *cli_synopsis(const struct cli_cmd *cmd, char *buf, size_t len)
{
    size_t used = (size_t)snprintf(buf, len, "snapport %s%s%s", cmd->name, cmd->args[0] ? " " : "", cmd->args);
    for (const struct cli_opt_def *o = cmd->opts; o->name && used < len; o++) {
        if (in_args(cmd, o))
            continue;
        used += (size_t)snprintf(buf + used, len - used, " [%s%s%s]", o->alias ? o->alias : o->name,
                                 o->arg ? " " : "", o->arg ? o->arg : "");
    }
    return buf;
}

/* A table's summary as a sentence: capital first, full stop. */
static void sentence(FILE *f, const char *s)
{
    fprintf(f, "%c%s.\n", s[0] >= 'a' && s[0] <= 'z' ? s[0] - 'a' + 'A' : s[0], s + 1);
}

/* "  HEAD   TEXT": TEXT from column col, wrapped; on a line of its own
 * when HEAD reaches into that column. */
static void two_columns(FILE *f, const char *head, int col, const char *text)
{
    int n = (int)strlen(head);
    fputs(head, f);
    if (n + 2 > col) {
        fputc('\n', f);
        n = 0;
    }
    fprintf(f, "%*s", col - n, "");
    wrap(f, text, col, col);
}

static void option_line(FILE *f, const struct cli_opt_def *o)
{
    char head[128];
    snprintf(head, sizeof head, "  %s%s%s%s%s", o->alias ? o->alias : "", o->alias ? ", " : "", o->name,
             o->arg ? " " : "", o->arg ? o->arg : "");
    two_columns(f, head, OPT_COLUMN, o->help);
}

void cli_help_command(FILE *f, const struct cli_cmd *cmd)
{
    char syn[1024];
    fputs("usage: ", f);
    wrap(f, cli_synopsis(cmd, syn, sizeof syn), 7, 7);
    fputc('\n', f);
    sentence(f, cmd->summary);
    fputc('\n', f);
    wrap(f, cmd->description, 0, 0);
    if (cmd->opts[0].name) {
        fputs("\nOptions:\n", f);
        for (const struct cli_opt_def *o = cmd->opts; o->name; o++)
            option_line(f, o);
    }
    fputs("\nGlobal options: --store DIR, --json, -q, -p (see snapport --help).\n", f);
    fputs("\nExamples:\n", f);
    for (const char *p = cmd->example; *p;) {
        size_t n = strcspn(p, "\n");
        fprintf(f, "  %.*s\n", (int)n, p);
        p += n + (p[n] == '\n');
    }
}

static void command_line(FILE *f, const struct cli_cmd *cmd)
{
    char head[256];
    snprintf(head, sizeof head, "  %s%s%s", cmd->name, cmd->args[0] ? " " : "", cmd->args);
    two_columns(f, head, CMD_COLUMN, cmd->summary);
}

void cli_help_group(FILE *f, const struct cli_group *g)
{
    fprintf(f, "usage: snapport %s SUBCOMMAND ...\n\n", g->name);
    sentence(f, g->summary);
    fputc('\n', f);
    for (size_t i = 0; i < CLI_NCOMMANDS; i++)
        if (cli_command_in_group(&CLI_COMMANDS[i], g))
            command_line(f, &CLI_COMMANDS[i]);
    fprintf(f, "\n'snapport %s SUBCOMMAND --help' shows a subcommand's options.\n", g->name);
}

void cli_help_overview(FILE *f)
{
    fputs("usage: snapport [--store DIR] [--json] [-q] [-p] COMMAND [ARGS]\n\n", f);
    wrap(f, CLI_ABOUT, 0, 0);
    fputs("\nCommands:\n", f);
    for (size_t i = 0; i < CLI_NCOMMANDS; i++)
        command_line(f, &CLI_COMMANDS[i]);
    fputs("\nGlobal options (anywhere on the line):\n", f);
    for (const struct cli_opt_def *o = CLI_GLOBAL_OPTS; o->name; o++)
        option_line(f, o);
    fputs("\nSizes take K, M, G, T (powers of 1024).\n\nExit status:\n", f);
    for (const struct cli_text_item *e = CLI_EXIT_STATUS; e->term; e++) {
        fprintf(f, "  %-6s", e->term);
        wrap(f, e->text, 8, 8);
    }
    fputs("\n'snapport COMMAND --help' shows a command's options and examples;\n'man snapport' all of it.\n", f);
}

int cli_help(struct cli *c, int argc, const char *const *argv)
{
    struct cli_text t;
    int used = 0;
    const struct cli_cmd *cmd = argc ? cli_command_find(argc, (char **)argv, &used) : NULL;
    const struct cli_group *g = argc == 1 && !cmd ? cli_group_find(argv[0]) : NULL;
    if (argc && !g && (!cmd || used != argc))
        return cli_usage_error("help: no command '%s%s%s'", argv[0], argc > 1 ? " " : "", argc > 1 ? argv[1] : "");
    FILE *f = cli_text_begin(c, &t);
    if (cmd)
        cli_help_command(f, cmd);
    else if (g)
        cli_help_group(f, g);
    else
        cli_help_overview(f);
    cli_text_end(c, &t, "text");
    return EXIT_OK_;
}
