/* snapport: global options, signals, and the command the table names. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "base/cancel.h"

/* Only a note: the command stops at its next block and unwinds through its
 * error path, which removes what it made (base/cancel.h). A second signal
 * of the same kind is the user insisting: the default action, and what a
 * kill leaves is for the next command's recovery. */
static void on_signal(int sig)
{
    if (sp_cancel_signal() == sig) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    sp_cancel_note(sig);
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* no SA_RESTART: a read blocked on a pipe returns EINTR and sees the note */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a closed pipe is an EPIPE write error, reported as such */
}

/* Takes the global options out of argv wherever they stand. */
static int take_globals(struct cli *c, int *argc, char **argv)
{
    int out = 0;
    for (int i = 0; i < *argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            while (i < *argc) /* the rest is the command's, a "-q" VM too */
                argv[out++] = argv[i++];
            break;
        }
        if (strcmp(a, "--json") == 0) {
            c->json = true;
        } else if (strcmp(a, "-q") == 0) {
            c->quiet = true;
        } else if (strcmp(a, "-p") == 0) {
            c->progress = true;
        } else if (strcmp(a, "--store") == 0) {
            if (i + 1 >= *argc)
                return cli_usage_error("--store needs a directory");
            c->store = argv[++i];
        } else if (strncmp(a, "--store=", 8) == 0) {
            c->store = a + 8;
        } else {
            argv[out++] = argv[i];
        }
    }
    *argc = out;
    return EXIT_OK_;
}

/* A group's name without a known subcommand: its list, or what is wrong. */
static int group_only(struct cli *c, const struct cli_group *g, int argc, char **argv)
{
    if (argc >= 2 && cli_is_help(argv[1]))
        return cli_help(c, 1, (const char *const *)argv);
    if (argc < 2) {
        if (!c->json)
            cli_help_group(stderr, g);
        cli_error("%s: needs a subcommand (see 'snapport %s --help')", g->name, g->name);
        return EXIT_USAGE;
    }
    return cli_usage_error("%s: unknown subcommand '%s'", g->name, argv[1]);
}

/* Runs the command argv names; *name is its name (NULL when none). */
static int run_command(struct cli *c, int argc, char **argv, const char **name)
{
    int used = 0;
    const struct cli_cmd *cmd = cli_command_find(argc, argv, &used);
    if (!cmd) {
        const struct cli_group *g = cli_group_find(argv[0]);
        return g ? group_only(c, g, argc, argv) : cli_usage_error("unknown command '%s'", argv[0]);
    }
    *name = cmd->name;
    struct cli_args a;
    bool help;
    int rc = cli_parse(cmd, argc - used, argv + used, &a, &help);
    if (rc != EXIT_OK_)
        return rc;
    if (help) {
        *name = "help";
        return cli_help(c, used, (const char *const *)argv);
    }
    rc = cmd->run(c, &a);
    /* a failure on the way out of an interrupt: the shell's status for it */
    return rc != EXIT_OK_ && sp_cancel_signal() ? 128 + sp_cancel_signal() : rc;
}

/* What the line asks for, once the global options are taken out. */
static int dispatch(struct cli *c, int argc, char **argv, const char **name)
{
    if (argc == 0) {
        if (!c->json)
            cli_help_overview(stderr);
        cli_error("no command (see 'snapport --help')");
        return EXIT_USAGE;
    }
    if (cli_is_help(argv[0])) {
        *name = "help";
        return cli_help(c, 0, NULL);
    }
    if (strcmp(argv[0], "--version") == 0) {
        *name = "version";
        if (c->json)
            json_key_string("version", SNAPPORT_VERSION);
        else
            printf("snapport %s\n", SNAPPORT_VERSION);
        return EXIT_OK_;
    }
    return run_command(c, argc, argv, name);
}

int main(int argc, char **argv)
{
    install_signals(); /* first: a signal before this kills with nothing made yet */
    struct cli c = {0};
    c.store = getenv("SNAPPORT_STORE");
    if (!c.store || !*c.store)
        c.store = "./snapport-store";
    c.progress = isatty(STDERR_FILENO);
    argc--;
    argv++;
    const char *name = NULL;
    int rc = take_globals(&c, &argc, argv);
    if (c.json)
        cli_json_begin();
    if (rc == EXIT_OK_)
        rc = dispatch(&c, argc, argv, &name);
    return c.json ? cli_json_end(name, rc) : rc;
}
