/* The command line: the only part of snapport that talks to the user. */
#ifndef SP_CLI_H
#define SP_CLI_H

#include <stdbool.h>
#include <stdint.h>

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

/* A command's options: --name VALUE, --name=VALUE, or a flag. */
struct cli_opt {
    const char *name;       /* "--offset" or "-o" */
    bool takes_value;
    const char **value;     /* set to the value, or to "" for a flag */
};

/* Splits argv into options and positionals (at most max_pos). Returns
 * EXIT_OK_ or EXIT_USAGE after printing what is wrong. */
int cli_parse(const char *cmd, int argc, char **argv, const struct cli_opt *opts, const char **pos, int max_pos,
              int *npos);

int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "snapport: <err->msg>" and returns the exit status for err. */
int cli_fail(const struct sp_error *err);
/* Info lines on stdout unless -q or --json. */
void cli_say(const struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* What a command changed on the way ("snapport: LABEL: note" on stderr,
 * not with -q), then frees the notes. */
void cli_print_notes(const struct cli *c, const char *label, struct sp_notes *notes);

int cli_parse_size(const char *what, const char *s, uint64_t *out);

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
/* --json around a check's findings: {"path": ..., "problems": [...], "ok": ...}
 * (path omitted when NULL). */
void cli_problems_begin(const struct cli *c, const char *path);
void cli_problems_end(const struct cli *c, bool ok);

/* The result of a command that made something: {"uuid": ...} with --json,
 * else the line fmt (which prints the uuid itself). */
/* The folder of a file path ("." for a bare name), into buf. */
const char *cli_dir_of(const char *path, char *buf, size_t len);
void cli_report_uuid(struct cli *c, const char *uuid, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A minimal JSON writer for --json output on stdout. */
void json_begin_object(void);
void json_end_object(void);
void json_begin_array(const char *key);
void json_end_array(void);
void json_key_string(const char *key, const char *v); /* v NULL -> null */
void json_key_uint(const char *key, uint64_t v);
void json_key_bool(const char *key, bool v);
void json_key_null(const char *key);
void json_string_item(const char *v);
void json_finish(void);

int cmd_disk(struct cli *c, int argc, char **argv);
int cmd_vm(struct cli *c, int argc, char **argv);
int cmd_snapshot(struct cli *c, int argc, char **argv);
int cmd_clone(struct cli *c, int argc, char **argv);
int cmd_gc(struct cli *c, int argc, char **argv);
int cmd_store(struct cli *c, int argc, char **argv);
int cmd_export(struct cli *c, int argc, char **argv);
int cmd_import(struct cli *c, int argc, char **argv);
int cmd_verify(struct cli *c, int argc, char **argv);
int cmd_info(struct cli *c, int argc, char **argv);
int cmd_convert(struct cli *c, int argc, char **argv);

struct sp_store;
/* Opens the store of --store for reading or writing; prints the error. */
int cli_store_open(struct cli *c, unsigned mode, const char *command, struct sp_store **s);

#endif
