/* snapport: command table, global options, signals. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "base/cancel.h"

struct command {
    const char *name;
    int (*run)(struct cli *c, int argc, char **argv);
    const char *summary;
};

static int cmd_help(struct cli *c, int argc, char **argv);

static const struct command COMMANDS[] = {
    {"disk", cmd_disk, "disk images: info, check, create, write, flatten, compare"},
    {"vm", cmd_vm, "VMs in the store"},
    {"snapshot", cmd_snapshot, "snapshots of a VM"},
    {"clone", cmd_clone, "a new VM from a VM or snapshot"},
    {"gc", cmd_gc, "coalesce and remove what nothing needs"},
    {"store", cmd_store, "store check"},
    {"export", cmd_export, "a VM or snapshot as an XVA or an OVA"},
    {"import", cmd_import, "an XVA, OVA or unpacked OVF as a new VM"},
    {"verify", cmd_verify, "every checksum and the structure of an XVA or OVA"},
    {"info", cmd_info, "what an XVA or OVA holds"},
    {"convert", cmd_convert, "an XVA as an OVA, or an OVA as an XVA"},
    {"help", cmd_help, "this text"},
};

static const char USAGE[] =
    "usage: snapport [--store DIR] [--json] [-q] [-p] COMMAND ...\n"
    "\n"
    "  disk info IMAGE                 format, sizes, the chain from leaf to base\n"
    "  disk check IMAGE                structure check; exit 1 when damaged\n"
    "  disk create OUT.vhd --size N [--parent P.vhd] [--block-size N]\n"
    "  disk write IMAGE --offset N (--from FILE | --pattern BYTE --length N)\n"
    "  disk flatten IMAGE -o OUT [--format raw|vhd|vmdk] [--force] [--no-sync]\n"
    "  disk compare A B                exit 0 same content, 1 different\n"
    "\n"
    "  vm create --config FILE.cfg     an xl.cfg; its disks are copied into the store\n"
    "  vm list | vm show VM | vm destroy VM\n"
    "  vm config VM [-o FILE.cfg]      an xl.cfg that `xl create` accepts\n"
    "  vm suspend VM --image FILE      attach a saved memory image (VM becomes suspended)\n"
    "  vm halt VM                      drop a suspended VM's memory image\n"
    "  snapshot create VM [--name N] [--memory]\n"
    "  snapshot list VM                the snapshot tree, oldest first (* = current)\n"
    "  snapshot revert VM SNAP\n"
    "  snapshot delete VM SNAP         coalesce is deferred to gc\n"
    "  clone VM|SNAP --name NEW [--full]\n"
    "  gc [--dry-run]                  run pending coalesces\n"
    "  store check                     catalog and files agree; exit 1 if not\n"
    "\n"
    "  export VM [--snapshot SNAP] -o OUT.xva|OUT.ova|- [--format xva|ova] [--force]\n"
    "         XVA: [--compress none|gzip|zstd] [--digest xxhash|sha1]\n"
    "         OVA: [--digest sha256|sha1|sha512] [--sign KEY.pem --cert CERT.pem]\n"
    "              [--ovf-version 1.0|2.0] [--level 1..12]\n"
    "  import ARCHIVE|DIR|X.ovf|- [--name NEW] [--format xva|ova]\n"
    "                                  a new VM with new UUIDs\n"
    "  verify ARCHIVE|-                every checksum and the structure; exit 1 on damage\n"
    "  info ARCHIVE|-                  the VM, its disks, sizes, checksum kind\n"
    "  convert IN OUT.xva|OUT.ova|- [--format xva|ova] [--force]\n"
    "                                  XVA to OVA or OVA to XVA, no store (to OVA: IN a file)\n"
    "\n"
    "  --store DIR   the store (default: $SNAPPORT_STORE, else ./snapport-store)\n"
    "  --json        machine-readable output on stdout\n"
    "  -q            errors only\n"
    "  -p            progress on stderr (default when stderr is a terminal)\n"
    "\n"
    "Sizes take K, M, G, T (powers of 1024). Exit: 0 ok, 1 difference or damage,\n"
    "2 usage, 3 failure.\n";

static int cmd_help(struct cli *c, int argc, char **argv)
{
    (void)c;
    (void)argc;
    (void)argv;
    fputs(USAGE, stdout);
    return EXIT_OK_;
}

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
        fputs(USAGE, argc == 0 ? stderr : stdout);
        return argc == 0 ? EXIT_USAGE : EXIT_OK_;
    }
    if (strcmp(argv[0], "--version") == 0) {
        puts("snapport 0.1.0");
        return EXIT_OK_;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) {
        if (strcmp(argv[0], COMMANDS[i].name) != 0)
            continue;
        rc = COMMANDS[i].run(&c, argc - 1, argv + 1);
        /* a failure on the way out of an interrupt: the shell's status for it */
        return rc != EXIT_OK_ && sp_cancel_signal() ? 128 + sp_cancel_signal() : rc;
    }
    return cli_usage_error("unknown command '%s'", argv[0]);
}
