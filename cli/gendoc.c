/* snapport-gendoc man|bash: the man page and the bash completion, made at
 * build time from the command table (cli/commands.c), so neither can
 * drift from what the parser takes. Not installed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* --- man page -------------------------------------------------------------- */

/* s as roff text. The dashes of a word that starts with one (an option)
 * are \-, a real minus that survives copy and paste and where no line
 * breaks; code (all_dashes) has every dash so. A line may not begin with
 * a control character. */
static void roff(FILE *f, const char *s, bool all_dashes)
{
    bool line_start = true, option_word = false;
    for (const char *p = s; *p; p++) {
        if (line_start && (*p == '.' || *p == '\''))
            fputs("\\&", f);
        line_start = *p == '\n';
        if (*p == '-' && (p == s || strchr(" [(|,/=\n", p[-1])))
            option_word = true;
        else if (*p == ' ' || *p == '\n')
            option_word = false;
        if (*p == '\\')
            fputs("\\e", f);
        else if (*p == '-' && (all_dashes || option_word))
            fputs("\\-", f);
        else
            fputc(*p, f);
    }
}

static void man_option(FILE *f, const struct cli_opt_def *o)
{
    fputs(".TP\n", f);
    if (o->alias) {
        fputs("\\fB", f);
        roff(f, o->alias, true);
        fputs("\\fR, ", f);
    }
    fputs("\\fB", f);
    roff(f, o->name, true);
    fputs("\\fR", f);
    if (o->arg) {
        fputs(" \\fI", f);
        roff(f, o->arg, true);
        fputs("\\fR", f);
    }
    fputc('\n', f);
    roff(f, o->help, false);
    fputc('\n', f);
}

static void man_example(FILE *f, const char *lines)
{
    /* not indented further: an example line stays within 80 columns */
    fputs(".PP\n.nf\n", f);
    roff(f, lines, true);
    if (lines[0] && lines[strlen(lines) - 1] != '\n')
        fputc('\n', f);
    fputs(".fi\n", f);
}

static void man_command(FILE *f, const struct cli_cmd *cmd)
{
    char syn[1024];
    fprintf(f, ".SS \"%s\"\n", cmd->name);
    fputs(".PP\n", f);
    roff(f, cli_synopsis(cmd, syn, sizeof syn), true);
    fputs("\n.PP\n", f);
    roff(f, cmd->description, false);
    fputc('\n', f);
    for (const struct cli_opt_def *o = cmd->opts; o->name; o++)
        man_option(f, o);
    man_example(f, cmd->example);
}

static void man_items(FILE *f, const char *section, const struct cli_text_item *it)
{
    fprintf(f, ".SH %s\n", section);
    for (; it->term; it++) {
        fputs(".TP\n", f);
        roff(f, it->term, true);
        fputc('\n', f);
        roff(f, it->text, false);
        fputc('\n', f);
    }
}

static void man_page(FILE *f)
{
    fprintf(f, ".\\\" Made by snapport-gendoc from cli/commands.c; edit that, not this.\n");
    fprintf(f, ".TH SNAPPORT 1 \"%s\" \"snapport %s\" \"User Commands\"\n", SNAPPORT_DOC_DATE, SNAPPORT_VERSION);
    fputs(".SH NAME\nsnapport \\- snapshot Xen VMs and move them as XVA and OVA archives\n", f);
    fputs(".SH SYNOPSIS\n.B snapport\n[\\fB\\-\\-store\\fR \\fIDIR\\fR] [\\fB\\-\\-json\\fR] [\\fB\\-q\\fR] "
          "[\\fB\\-p\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]\n",
          f);
    fputs(".SH DESCRIPTION\n", f);
    roff(f, CLI_ABOUT, false);
    fputs("\n.PP\nSizes take K, M, G, T (powers of 1024). Errors are one line on stderr that names the file and "
          "the problem; a failed command leaves no partial output and no change in the store.\n",
          f);
    fputs(".SH GLOBAL OPTIONS\nThey may stand anywhere on the command line.\n", f);
    for (const struct cli_opt_def *o = CLI_GLOBAL_OPTS; o->name; o++)
        man_option(f, o);
    fputs(".SH COMMANDS\n", f);
    for (size_t i = 0; i < CLI_NCOMMANDS; i++)
        man_command(f, &CLI_COMMANDS[i]);
    man_items(f, "EXIT STATUS", CLI_EXIT_STATUS);
    man_items(f, "ENVIRONMENT", CLI_ENVIRONMENT);
    man_items(f, "FILES", CLI_FILES);
    fputs(".SH EXAMPLES\n", f);
    man_example(f, CLI_EXAMPLES);
    fputs(".SH SEE ALSO\n.BR xl (1),\n.BR xl.cfg (5),\n.BR qemu\\-img (1),\n.BR xe (1)\n", f);
}

/* --- bash completion ------------------------------------------------------- */

/* The positional words of cmd's synopsis (not its options, not their
 * values), space-separated, brackets dropped. */
static void positionals(const struct cli_cmd *cmd, char *out, size_t len)
{
    char args[256];
    snprintf(args, sizeof args, "%s", cmd->args);
    out[0] = '\0';
    bool value_next = false;
    for (char *save = NULL, *w = strtok_r(args, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        if (value_next) {
            value_next = false;
            continue;
        }
        if (w[0] == '-') {
            const struct cli_opt_def *o = cli_option_find(cmd->opts, w, strlen(w));
            value_next = o && o->arg;
            continue;
        }
        w += strspn(w, "[");
        w[strcspn(w, "]")] = '\0';
        size_t used = strlen(out);
        snprintf(out + used, len - used, "%s%s", used ? " " : "", w);
    }
}

static void bash_case_options(FILE *f)
{
    fputs("_snapport_options() {\n    case \"$1\" in\n", f);
    for (size_t i = 0; i < CLI_NCOMMANDS; i++) {
        fprintf(f, "    \"%s\") echo \"", CLI_COMMANDS[i].name);
        for (const struct cli_opt_def *o = CLI_COMMANDS[i].opts; o->name; o++)
            fprintf(f, "%s%s%s%s", o == CLI_COMMANDS[i].opts ? "" : " ", o->name, o->alias ? " " : "",
                    o->alias ? o->alias : "");
        fputs(" --help\" ;;\n", f);
    }
    fputs("    esac\n}\n\n", f);
}

/* What an option's value is, by its placeholder; "" for a flag. */
static void bash_case_values(FILE *f)
{
    fputs("_snapport_option_arg() {\n    case \"$1 $2\" in\n", f);
    for (size_t i = 0; i < CLI_NCOMMANDS; i++)
        for (const struct cli_opt_def *o = CLI_COMMANDS[i].opts; o->name; o++) {
            if (!o->arg)
                continue;
            fprintf(f, "    \"%s %s\"", CLI_COMMANDS[i].name, o->name);
            if (o->alias)
                fprintf(f, " | \"%s %s\"", CLI_COMMANDS[i].name, o->alias);
            fprintf(f, ") echo '%s' ;;\n", o->arg);
        }
    fputs("    *) return 1 ;;\n    esac\n}\n\n", f);
}

static void bash_case_positionals(FILE *f)
{
    char pos[256];
    fputs("_snapport_positionals() {\n    case \"$1\" in\n", f);
    for (size_t i = 0; i < CLI_NCOMMANDS; i++) {
        positionals(&CLI_COMMANDS[i], pos, sizeof pos);
        fprintf(f, "    \"%s\") echo '%s' ;;\n", CLI_COMMANDS[i].name, pos);
    }
    fputs("    esac\n}\n\n", f);
}

static void bash_lists(FILE *f)
{
    fputs("_snapport_commands='", f);
    for (size_t i = 0; i < CLI_NCOMMANDS; i++) {
        const char *sp = strchr(CLI_COMMANDS[i].name, ' ');
        int n = sp ? (int)(sp - CLI_COMMANDS[i].name) : (int)strlen(CLI_COMMANDS[i].name);
        /* a group's name once */
        bool seen = false;
        for (size_t j = 0; j < i; j++)
            seen |= strncmp(CLI_COMMANDS[j].name, CLI_COMMANDS[i].name, (size_t)n) == 0 &&
                    (CLI_COMMANDS[j].name[n] == ' ' || CLI_COMMANDS[j].name[n] == '\0');
        if (!seen)
            fprintf(f, "%s%.*s", i ? " " : "", n, CLI_COMMANDS[i].name);
    }
    fputs("'\n_snapport_globals='", f);
    for (const struct cli_opt_def *o = CLI_GLOBAL_OPTS; o->name; o++)
        fprintf(f, "%s%s%s%s", o == CLI_GLOBAL_OPTS ? "" : " ", o->name, o->alias ? " " : "", o->alias ? o->alias : "");
    fputs("'\n\n", f);
}

/* A group's subcommands, for the word after the group's name. */
static void bash_case_groups(FILE *f)
{
    fputs("_snapport_subcommands() {\n    case \"$1\" in\n", f);
    for (size_t g = 0; g < CLI_NGROUPS; g++) {
        fprintf(f, "    %s) echo '", CLI_GROUPS[g].name);
        bool first = true;
        for (size_t i = 0; i < CLI_NCOMMANDS; i++)
            if (cli_command_in_group(&CLI_COMMANDS[i], &CLI_GROUPS[g])) {
                fprintf(f, "%s%s", first ? "" : " ", CLI_COMMANDS[i].name + strlen(CLI_GROUPS[g].name) + 1);
                first = false;
            }
        fputs("' ;;\n", f);
    }
    fputs("    esac\n}\n\n", f);
}

/* The tables, then the fixed part (cli/completion.bash: how a command
 * line is walked and what each kind of word is completed with). */
static int bash_completion(FILE *f, const char *logic_path)
{
    fputs("# bash completion for snapport. Made by snapport-gendoc from cli/commands.c; edit that, not this.\n\n",
          f);
    bash_lists(f);
    bash_case_options(f);
    bash_case_values(f);
    bash_case_positionals(f);
    bash_case_groups(f);
    FILE *in = fopen(logic_path, "r");
    if (!in) {
        perror(logic_path);
        return 1;
    }
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        fwrite(buf, 1, n, f);
    int bad = ferror(in);
    fclose(in);
    return bad;
}

int main(int argc, char **argv)
{
    bool man = argc == 3 && strcmp(argv[1], "man") == 0;
    if (!man && !(argc == 4 && strcmp(argv[1], "bash") == 0)) {
        fprintf(stderr, "usage: snapport-gendoc man OUT | bash OUT cli/completion.bash\n");
        return 2;
    }
    FILE *f = fopen(argv[2], "w");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    int rc = 0;
    if (man)
        man_page(f);
    else
        rc = bash_completion(f, argv[3]);
    if (fclose(f) != 0 || rc) {
        if (!rc)
            perror(argv[2]);
        remove(argv[2]);
        return 1;
    }
    return 0;
}
