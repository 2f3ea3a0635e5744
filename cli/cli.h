/* The command line: the only part of snapport that talks to the user. */
#ifndef SP_CLI_H
#define SP_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cli/commands.h"

#include "archive/archive.h"
#include "disk/copy.h"
#include "base/error.h"
#include "base/notes.h"

/* Exit statuses (CLI.md). */
enum {
    EXIT_OK_ = 0,
    EXIT_DIFF = 1,   /* a check found a difference or damage */
    EXIT_USAGE = 2,
    EXIT_FAIL = 3,
};

struct cli {
    const char *store;
    bool json;
    bool quiet;
    bool progress;
};

/* A command line split by the command table (cli/commands.h): each of
 * the command's options, in the table's order, and the positionals. */
struct cli_args {
    const struct cli_cmd *cmd;
    const char *val[CLI_OPTS_MAX]; /* the value, "" for a given flag, NULL when absent */
    const char *pos[CLI_POS_MAX];
    int npos;
};

/* Splits argv (after the command's name) into a. Returns EXIT_OK_, or
 * EXIT_USAGE after printing what is wrong; *help is set by --help/-h. */
int cli_parse(const struct cli_cmd *cmd, int argc, char **argv, struct cli_args *a, bool *help);
/* --help or -h. */
bool cli_is_help(const char *arg);
/* The value of the command's option name (its long name), NULL when not
 * given; "" for a given flag. A name the command's table entry lacks is
 * a bug in snapport, and aborts. */
const char *cli_opt(const struct cli_args *a, const char *name);
static inline bool cli_flag(const struct cli_args *a, const char *name) { return cli_opt(a, name) != NULL; }

/* help [COMMAND...]: the overview, a group's commands or one command;
 * with --json as the document's "text". */
int cli_help(struct cli *c, int argc, const char *const *argv);

/* Text a command prints on stdout (help, a config): stdout itself, or
 * with --json a buffer that cli_text_end puts in the document under key. */
struct cli_text {
    FILE *f;
    char *buf;
    size_t len;
};
FILE *cli_text_begin(const struct cli *c, struct cli_text *t);
void cli_text_end(const struct cli *c, struct cli_text *t, const char *key);
void cli_help_overview(FILE *f);
void cli_help_command(FILE *f, const struct cli_cmd *cmd);
void cli_help_group(FILE *f, const struct cli_group *g);
/* "snapport NAME ARGS [--opt ARG]...": the synopsis, into buf. */
const char *cli_synopsis(const struct cli_cmd *cmd, char *buf, size_t len);

int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "snapport: MESSAGE" on stderr, kept as the --json document's error. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "snapport: <err->msg>" and returns the exit status for err. */
int cli_fail(const struct sp_error *err);
/* The text cli_fail says for err: after a signal "interrupted by SIGx",
 * unless err is the stop's own message (it may say more). */
void cli_failure_text(const struct sp_error *err, char *out, size_t sz);
/* Info lines on stdout unless -q or --json. */
void cli_say(const struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* What a command changed on the way ("snapport: LABEL: note" on stderr,
 * not with -q), then frees the notes. */
void cli_print_notes(const struct cli *c, const char *label, struct sp_notes *notes);

int cli_parse_size(const char *what, const char *s, uint64_t *out);

/* s as text output shows it: control bytes as \n, \r, \t or \xNN. Names
 * and paths come from other people's archives and disks, and a newline
 * would break a listing's lines, an ESC drive the terminal. The result
 * lives until CLI_SHOWN_SLOTS more calls (enough for one printf). */
#define CLI_SHOWN_SLOTS 8
const char *cli_shown(const char *s);

/* Progress bar on stderr (bytes done, rate, ETA); NULL when not wanted. */
struct cli_progress;
struct cli_progress *cli_progress_start(const struct cli *c, const char *label);
void cli_progress_finish(struct cli_progress *p);
const struct sp_progress *cli_progress_hook(struct cli_progress *p);

/* Check findings: each printed on stdout (a line, or a JSON string item);
 * the first kept for the one-line error on stderr. */
struct cli_problems {
    struct cli *c;
    char first[SP_ERROR_MAX + 256];
};
void cli_problem(void *ctx, const char *msg);
/* --json around a check's findings: "path": ..., "problems": [...]
 * (path omitted when NULL). */
void cli_problems_begin(const struct cli *c, const char *path);
void cli_problems_end(const struct cli *c);

/* An output's format name: --format (given), else the one OUT's extension
 * names (ext_fmt; NULL when no format of the command's has it). Both, and
 * not the same: a usage error (an x.xva that holds an OVA misleads whoever
 * reads it next). *name NULL when neither tells: the caller decides. */
int cli_output_format(const char *cmd, const char *out, const char *given, const char *ext_fmt, const char **name);
/* export's and convert's OUT: --format, else its extension (.xva, .ova, any
 * case); "-", no extension or another one need --format. */
int cli_archive_format(const char *cmd, const char *out, const char *given, enum sp_archive_format *f);

/* The folder of a file path ("." for a bare name), into buf. */
const char *cli_dir_of(const char *path, char *buf, size_t len);

/* --json (docs/json.md): one document per run, opened by the dispatcher,
 * filled by the command with json_key_* (key NULL in a list), and closed
 * by cli_json_end with command, ok, exit, error and notes (command NULL
 * when the line named none). Returns rc, or a failure when stdout could
 * not take the document. */
void cli_json_begin(void);
int cli_json_end(const char *command, int rc);
void json_begin_object(const char *key);
void json_end_object(void);
void json_begin_array(const char *key);
void json_end_array(void);
void json_key_string(const char *key, const char *v); /* v NULL -> null */
void json_key_uint(const char *key, uint64_t v);
void json_key_bool(const char *key, bool v);
void json_key_null(const char *key);
void json_string_item(const char *v);

/* The commands (cli/commands.c has what each takes). */
int cmd_disk_info(struct cli *c, const struct cli_args *a);
int cmd_disk_check(struct cli *c, const struct cli_args *a);
int cmd_disk_create(struct cli *c, const struct cli_args *a);
int cmd_disk_write(struct cli *c, const struct cli_args *a);
int cmd_disk_flatten(struct cli *c, const struct cli_args *a);
int cmd_disk_compare(struct cli *c, const struct cli_args *a);
int cmd_vm_create(struct cli *c, const struct cli_args *a);
int cmd_vm_list(struct cli *c, const struct cli_args *a);
int cmd_vm_show(struct cli *c, const struct cli_args *a);
int cmd_vm_config(struct cli *c, const struct cli_args *a);
int cmd_vm_destroy(struct cli *c, const struct cli_args *a);
int cmd_vm_suspend(struct cli *c, const struct cli_args *a);
int cmd_vm_halt(struct cli *c, const struct cli_args *a);
int cmd_snapshot_create(struct cli *c, const struct cli_args *a);
int cmd_snapshot_list(struct cli *c, const struct cli_args *a);
int cmd_snapshot_revert(struct cli *c, const struct cli_args *a);
int cmd_snapshot_delete(struct cli *c, const struct cli_args *a);
int cmd_clone(struct cli *c, const struct cli_args *a);
int cmd_gc(struct cli *c, const struct cli_args *a);
int cmd_store_check(struct cli *c, const struct cli_args *a);
int cmd_export(struct cli *c, const struct cli_args *a);
int cmd_import(struct cli *c, const struct cli_args *a);
int cmd_verify(struct cli *c, const struct cli_args *a);
int cmd_info(struct cli *c, const struct cli_args *a);
int cmd_convert(struct cli *c, const struct cli_args *a);

struct sp_store;
/* Opens the store of --store for reading or writing; prints the error. */
int cli_store_open(struct cli *c, unsigned mode, const char *command, struct sp_store **s);

#endif
