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
static int group_only(const struct cli_group *g, int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        cli_help_group(stdout, g);
        return EXIT_OK_;
    }
    if (argc < 2) {
        cli_help_group(stderr, g);
        return EXIT_USAGE;
    }
    return cli_usage_error("%s: unknown subcommand '%s'", g->name, argv[1]);
}

static int run_command(struct cli *c, int argc, char **argv)
{
    int used = 0;
    const struct cli_cmd *cmd = cli_command_find(argc, argv, &used);
    if (!cmd) {
        const struct cli_group *g = cli_group_find(argv[0]);
        return g ? group_only(g, argc, argv) : cli_usage_error("unknown command '%s'", argv[0]);
    }
    struct cli_args a;
    bool help;
    int rc = cli_parse(cmd, argc - used, argv + used, &a, &help);
    if (rc != EXIT_OK_)
        return rc;
    if (help) {
        cli_help_command(stdout, cmd);
        return EXIT_OK_;
    }
    rc = cmd->run(c, &a);
    /* a failure on the way out of an interrupt: the shell's status for it */
    return rc != EXIT_OK_ && sp_cancel_signal() ? 128 + sp_cancel_signal() : rc;
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
    int rc = take_globals(&c, &argc, argv);
    if (rc != EXIT_OK_)
        return rc;
    if (argc == 0 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
        cli_help_overview(argc == 0 ? stderr : stdout);
        return argc == 0 ? EXIT_USAGE : EXIT_OK_;
    }
    if (strcmp(argv[0], "--version") == 0) {
        printf("snapport %s\n", SNAPPORT_VERSION);
        return EXIT_OK_;
    }
    return run_command(&c, argc, argv);
}
