/* `export VM... -o DIR/` and `export --all -o s3://BUCKET/PREFIX/`: one
 * archive per VM, --parallel N at a time.
 *
 * Each VM is exported by a child process of its own (fork), exactly as
 * `export VM -o OUT` would: it opens the store, takes its temporary
 * snapshot, writes the archive and cleans up. The parent has no threads
 * and no open store while it forks; a child that crashes takes no other
 * VM with it. A child prints nothing: it sends its outcome (exit status,
 * error line, size, notes) through a pipe, and the parent prints the
 * summary. On SIGINT/SIGTERM/SIGHUP the parent passes the signal on once
 * to each running child (they are in a process group of their own, so a
 * terminal's ^C reaches only the parent) and starts no more; each child
 * then unwinds as a single export does. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/cancel.h"
#include "base/util.h"
#include "cli/export.h"
#include "cli/export_name.h"

#define PARALLEL_MAX 64     /* VMs at once: each is a process with its own S3 requests */
#define RECORD_MAX 8192     /* a child's outcome: within a pipe's buffer, so it never waits on the parent */
#define POLL_NS 20000000L   /* how often the parent looks for finished children */
#define OUT_MAX 4096

struct batch_vm {
    char uuid[SP_UUID_STR];
    char name[256];
    char out[OUT_MAX];
    pid_t pid;               /* 0: not started */
    int fd;                  /* the pipe's read end while it runs */
    struct timespec t0;
    bool done, ok;
    int exit;
    uint64_t bytes;          /* 0: not known (S3) */
    double seconds;
    char error[SP_ERROR_MAX];
    struct sp_notes notes;
};

struct batch {
    struct cli *c;
    const struct cli_args *a;
    struct cli_export x;
    const char *target;      /* DIR, DIR/, s3://BUCKET, s3://BUCKET/PREFIX/ */
    const char *snapshot;
    int parallel;
    struct batch_vm *vm;
    int n;
};

/* ---- what the line asks for ----------------------------------------- */

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* s3://BUCKET, s3://BUCKET/, s3://BUCKET/PREFIX/: a place for many objects. */
static bool s3_prefix(const char *url)
{
    const char *key = strchr(url + strlen("s3://"), '/');
    return !key || !key[1] || url[strlen(url) - 1] == '/';
}

bool cli_export_is_batch(const struct cli_args *a)
{
    const char *out = cli_opt(a, "--output");
    if (a->npos > 1 || cli_flag(a, "--all"))
        return true;
    if (!out || strcmp(out, "-") == 0)
        return false;
    if (sp_s3_is_url(out))
        return s3_prefix(out);
    return (*out && out[strlen(out) - 1] == '/') || is_dir(out);
}

static int parse_parallel(const char *s, int *n)
{
    *n = 1;
    if (!s)
        return EXIT_OK_;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || end == s || v < 1 || v > PARALLEL_MAX)
        return cli_usage_error("--parallel: '%s' is not a number 1..%d", s, PARALLEL_MAX);
    *n = (int)v;
    return EXIT_OK_;
}

/* The archives' format: a template's extension, else --format, else XVA. */
static int batch_format(const struct cli_args *a, const char *tmpl, enum sp_archive_format *f)
{
    const char *fmt = cli_opt(a, "--format");
    if (!strstr(tmpl, "{ext}"))
        return cli_archive_format("export", tmpl, fmt, f);
    return cli_archive_format("export", "{ext}", fmt ? fmt : "xva", f);
}

static int batch_usage(const struct cli_args *a, struct batch *b, const char **tmpl)
{
    const char *out = cli_opt(a, "--output");
    bool all = cli_flag(a, "--all");
    char why[512];
    int rc;
    if (!out || (a->npos == 0) == !all)
        return cli_usage_error("export: needs VM... or --all (not both), and -o DIR/ or -o s3://BUCKET/PREFIX/");
    if (strcmp(out, "-") == 0)
        return cli_usage_error("export: -o - is one archive; several VMs need -o DIR/ or s3://BUCKET/PREFIX/");
    if (sp_s3_is_url(out) && !s3_prefix(out))
        return cli_usage_error("export: %s: several VMs need a prefix ending in '/' (s3://BUCKET/PREFIX/)", out);
    if (cli_opt(a, "--resume-file"))
        return cli_usage_error("export: --resume-file is for one upload, not a batch");
    if (b->snapshot && (all || a->npos > 1))
        return cli_usage_error("export: --snapshot names one VM's snapshot, not several VMs'");
    *tmpl = cli_opt(a, "--name-template");
    if (!*tmpl)
        *tmpl = CLI_EXPORT_TEMPLATE_DEFAULT;
    if (cli_export_template_check(*tmpl, why, sizeof why) != 0)
        return cli_usage_error("--name-template: %s", why);
    if ((rc = parse_parallel(cli_opt(a, "--parallel"), &b->parallel)) != EXIT_OK_ ||
        (rc = batch_format(a, *tmpl, &b->x.o.format)) != EXIT_OK_)
        return rc;
    return cli_export_parse(a, out, &b->x);
}

/* ---- the VMs and their outputs ---------------------------------------- */

/* The VM of uuid unless the list has it already (a VM named twice, by
 * name and UUID say, is exported once). */
static int add_vm(struct sp_store *s, struct batch *b, const char *uuid, struct sp_error *err)
{
    for (int i = 0; i < b->n; i++)
        if (strcmp(b->vm[i].uuid, uuid) == 0)
            return SP_OK;
    struct sp_vm vm;
    int rc = sp_store_load_vm(s, uuid, &vm, err);
    if (rc != SP_OK)
        return rc;
    struct batch_vm *v = &b->vm[b->n++];
    snprintf(v->uuid, sizeof v->uuid, "%s", uuid);
    snprintf(v->name, sizeof v->name, "%s", vm.cfg.name);
    v->fd = -1;
    sp_vm_free(&vm);
    return SP_OK;
}

static int find_vms(struct sp_store *s, struct batch *b, struct sp_error *err)
{
    char (*uuids)[SP_UUID_STR] = NULL;
    int n = b->a->npos, rc = SP_OK;
    if (cli_flag(b->a, "--all") && (rc = sp_store_list_vms(s, &uuids, &n, err)) != SP_OK)
        return rc;
    b->vm = calloc((size_t)n + 1, sizeof *b->vm);
    if (!b->vm) {
        free(uuids);
        return sp_error_set(err, SP_ENOMEM, "out of memory");
    }
    for (int i = 0; rc == SP_OK && i < n; i++) {
        char uuid[SP_UUID_STR];
        if (!uuids)
            rc = sp_store_find(s, b->a->pos[i], false, NULL, uuid, err);
        if (rc == SP_OK)
            rc = add_vm(s, b, uuids ? uuids[i] : uuid, err);
    }
    free(uuids);
    return rc;
}

static int load_vms(struct batch *b)
{
    struct sp_store *s;
    struct sp_error err;
    int rc = sp_store_open(b->c->store, SP_STORE_READ, "export", &s, &err);
    if (rc == SP_OK) {
        rc = find_vms(s, b, &err);
        sp_store_close(s); /* before any fork: a child opens its own */
    }
    return rc == SP_OK ? EXIT_OK_ : cli_fail(&err);
}

/* Each VM's output; two the same is a usage error before anything starts. */
static int name_outputs(struct batch *b, const char *tmpl)
{
    char date[16], name[CLI_EXPORT_NAME_MAX + 1], why[512];
    time_t now = time(NULL);
    struct tm tm;
    strftime(date, sizeof date, "%Y%m%d", gmtime_r(&now, &tm));
    size_t tl = strlen(b->target);
    const char *sep = tl && b->target[tl - 1] == '/' ? "" : "/";
    for (int i = 0; i < b->n; i++) {
        struct batch_vm *v = &b->vm[i];
        struct cli_export_fields f = {v->name, v->uuid, date, b->x.o.format == SP_ARCHIVE_OVA ? "ova" : "xva"};
        if (cli_export_name(tmpl, &f, name, sizeof name, why, sizeof why) != 0)
            return cli_usage_error("--name-template: %s", why);
        if ((size_t)snprintf(v->out, sizeof v->out, "%s%s%s", b->target, sep, name) >= sizeof v->out)
            return cli_usage_error("export: %s: the output path is too long", b->target);
        for (int j = 0; j < i; j++)
            if (strcmp(b->vm[j].out, v->out) == 0)
                return cli_usage_error("export: VMs '%s' and '%s' would both be written to %s (use "
                                       "--name-template with {uuid})",
                                       b->vm[j].name, v->name, v->out);
    }
    return EXIT_OK_;
}

static int check_target(const struct batch *b)
{
    struct sp_error err;
    if (sp_s3_is_url(b->target) || is_dir(b->target))
        return EXIT_OK_;
    sp_error_set(&err, SP_ENOTFOUND, "%s: no such folder (a batch writes into an existing one)", b->target);
    return cli_fail(&err);
}

/* ---- the children ---------------------------------------------------- */

/* "KEY MSG\n" onto rec: a line break in MSG (a VM's name may hold one)
 * must not start a line of its own. */
static void record_line(char *rec, size_t *n, size_t cap, const char *key, const char *msg)
{
    if (*n >= cap - 1)
        return;
    int w = snprintf(rec + *n, cap - *n, "%s %s", key, msg);
    size_t end = sp_min_u64(*n + (size_t)w, cap - 2);
    for (size_t i = *n; i < end; i++)
        if (rec[i] == '\n' || rec[i] == '\r')
            rec[i] = ' ';
    rec[end] = '\n';
    rec[end + 1] = '\0';
    *n = end + 1;
}

/* The outcome as lines "exit N", "bytes N", "error MSG", "note MSG". */
static void child_report(int fd, int st, uint64_t bytes, const struct sp_error *err, const struct sp_notes *notes)
{
    char rec[RECORD_MAX];
    int w = snprintf(rec, sizeof rec, "exit %d\nbytes %llu\n", st, (unsigned long long)bytes);
    size_t n = (size_t)w;
    if (st != EXIT_OK_) {
        char line[SP_ERROR_MAX];
        cli_failure_text(err, line, sizeof line); /* as a single export would say it */
        record_line(rec, &n, sizeof rec, "error", line);
    }
    for (int i = 0; i < notes->n; i++)
        record_line(rec, &n, sizeof rec, "note", notes->items[i]);
    for (size_t off = 0; off < n;) { /* the pipe has room: only a signal cuts it short */
        ssize_t k = write(fd, rec + off, n - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        off += (size_t)k;
    }
}

static void child_run(struct batch *b, struct batch_vm *v, int fd, pid_t parent)
{
    setpgid(0, 0);                       /* ^C is the parent's to pass on, once */
    prctl(PR_SET_PDEATHSIG, SIGTERM);    /* a parent killed outright: stop cleanly */
    if (getppid() != parent)
        raise(SIGTERM);
    struct cli quiet = *b->c;
    quiet.quiet = true;
    quiet.progress = false;
    quiet.json = false;
    struct cli_export x = b->x;
    struct sp_notes notes = {0};
    x.o.vm = v->uuid;
    x.o.snapshot = b->snapshot;
    x.o.notes = &notes;
    uint64_t bytes = 0;
    struct sp_error err = {0};
    int rc = cli_export_one(&quiet, b->a, &x, v->out, NULL, &bytes, &err);
    int sig = sp_cancel_signal();
    int st = rc == SP_OK ? EXIT_OK_ : sig ? 128 + sig : EXIT_FAIL;
    child_report(fd, st, bytes, &err, &notes);
    sp_notes_free(&notes);
    close(fd);
    _exit(st);
}

/* ---- the parent ------------------------------------------------------ */

static double seconds_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static void fail_vm(struct batch_vm *v, int st, const char *fmt, const char *what)
{
    v->done = true;
    v->ok = false;
    v->exit = st;
    snprintf(v->error, sizeof v->error, fmt, what);
}

/* Forks v's child; a VM that cannot start has failed, the others go on. */
static bool start_vm(struct batch *b, struct batch_vm *v)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        fail_vm(v, EXIT_FAIL, "pipe: %s", strerror(errno));
        return false;
    }
    clock_gettime(CLOCK_MONOTONIC, &v->t0);
    fflush(NULL); /* nothing buffered twice */
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) {
        close(p[0]);
        for (int i = 0; i < b->n; i++) /* the other children's pipes are not this one's */
            if (b->vm[i].fd >= 0)
                close(b->vm[i].fd);
        child_run(b, v, p[1], parent);
    }
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        fail_vm(v, EXIT_FAIL, "fork: %s", strerror(errno));
        return false;
    }
    v->pid = pid;
    v->fd = p[0];
    return true;
}

/* One line of a child's record into v. */
static void take_line(struct batch_vm *v, char *line)
{
    if (strncmp(line, "exit ", 5) == 0)
        v->exit = atoi(line + 5);
    else if (strncmp(line, "bytes ", 6) == 0)
        v->bytes = strtoull(line + 6, NULL, 10);
    else if (strncmp(line, "error ", 6) == 0)
        snprintf(v->error, sizeof v->error, "%s", line + 6);
    else if (strncmp(line, "note ", 5) == 0)
        sp_note(&v->notes, "%s", line + 5);
}

static void read_record(struct batch_vm *v)
{
    char rec[RECORD_MAX + 1];
    size_t n = 0;
    for (ssize_t k; n < RECORD_MAX; n += (size_t)k) {
        k = read(v->fd, rec + n, RECORD_MAX - n);
        if (k < 0 && errno == EINTR)
            k = 0;
        else if (k <= 0)
            break;
    }
    rec[n] = '\0';
    close(v->fd);
    v->fd = -1;
    for (char *line = rec, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = '\0';
        take_line(v, line);
    }
}

/* v's child ended with wait status st. */
static void collect(struct batch_vm *v, int st)
{
    v->seconds = seconds_since(&v->t0);
    v->exit = -1;
    read_record(v);
    v->done = true;
    if (WIFSIGNALED(st))
        fail_vm(v, 128 + WTERMSIG(st), "killed by signal %s", strsignal(WTERMSIG(st)));
    else if (v->exit != WEXITSTATUS(st)) /* died before it could say: a crash */
        fail_vm(v, WEXITSTATUS(st) ? WEXITSTATUS(st) : EXIT_FAIL, "%s", "exited without a result");
    v->ok = v->exit == EXIT_OK_;
    if (!v->ok && !v->error[0])
        snprintf(v->error, sizeof v->error, "failed (exit %d)", v->exit);
}

static struct batch_vm *by_pid(struct batch *b, pid_t pid)
{
    for (int i = 0; i < b->n; i++)
        if (b->vm[i].pid == pid && !b->vm[i].done)
            return &b->vm[i];
    return NULL;
}

static void pass_signal(struct batch *b, int sig)
{
    for (int i = 0; i < b->n; i++)
        if (b->vm[i].pid > 0 && !b->vm[i].done)
            kill(b->vm[i].pid, sig);
}

/* --parallel children at a time until every VM is done or a signal stops
 * the batch (the running ones then finish their cleanup). */
static void run_all(struct batch *b)
{
    int next = 0, running = 0, sig = 0;
    const struct timespec tick = {0, POLL_NS};
    while (running > 0 || (!sig && next < b->n)) {
        if (!sig && (sig = sp_cancel_signal()) != 0)
            pass_signal(b, sig);
        for (; !sig && running < b->parallel && next < b->n; next++)
            running += start_vm(b, &b->vm[next]);
        int st;
        pid_t pid = running ? waitpid(-1, &st, WNOHANG) : 0;
        struct batch_vm *v = pid > 0 ? by_pid(b, pid) : NULL;
        if (v) {
            collect(v, st);
            running--;
        } else if (pid == 0 && running) {
            nanosleep(&tick, NULL); /* a signal cuts it short */
        } else if (pid < 0 && errno != EINTR) {
            break; /* no children left to wait for: none is running */
        }
    }
    for (; sig && next < b->n; next++)
        fail_vm(&b->vm[next], 128 + sig, "not started (interrupted by %s)", sp_cancel_name(sig));
}

/* ---- the summary ----------------------------------------------------- */

static int width(const struct batch *b, bool out, int least)
{
    size_t w = (size_t)least;
    for (int i = 0; i < b->n; i++) {
        size_t l = strlen(cli_shown(out ? b->vm[i].out : b->vm[i].name));
        w = l > w ? l : w;
    }
    return (int)sp_min_u64(w, 80); /* a longer one pushes its own line only */
}

static void summary_text(const struct batch *b)
{
    if (b->c->quiet || b->c->json)
        return;
    int wn = width(b, false, 2), wo = width(b, true, 6);
    printf("%-*s  %-*s  %10s  %8s  %s\n", wn, "VM", wo, "OUTPUT", "SIZE", "TIME", "STATUS");
    for (int i = 0; i < b->n; i++) {
        const struct batch_vm *v = &b->vm[i];
        char size[32] = "-", t[32];
        if (v->ok && v->bytes)
            sp_format_size(v->bytes, size, sizeof size);
        snprintf(t, sizeof t, "%.1fs", v->seconds);
        printf("%-*s  %-*s  %10s  %8s  %s%s\n", wn, cli_shown(v->name), wo, cli_shown(v->out), size, t,
               v->ok ? "ok" : "failed: ", v->ok ? "" : cli_shown(v->error));
    }
}

static void summary_json(const struct batch *b, int failed)
{
    if (!b->c->json)
        return;
    json_key_string("output", b->target);
    json_key_string("format", b->x.o.format == SP_ARCHIVE_OVA ? "ova" : "xva");
    json_begin_array("exports");
    for (int i = 0; i < b->n; i++) {
        const struct batch_vm *v = &b->vm[i];
        json_begin_object(NULL);
        json_key_string("vm", v->name);
        json_key_string("uuid", v->uuid);
        json_key_string("output", v->out);
        json_key_bool("ok", v->ok);
        json_key_uint("exit", (uint64_t)v->exit);
        json_key_string("error", v->ok ? NULL : v->error);
        if (v->ok && v->bytes)
            json_key_uint("bytes", v->bytes);
        else
            json_key_null("bytes");
        json_key_uint("milliseconds", (uint64_t)(v->seconds * 1000.0 + 0.5));
        json_end_object();
    }
    json_end_array();
    json_key_uint("failed", (uint64_t)failed);
}

static int finish(struct batch *b)
{
    int failed = 0;
    for (int i = 0; i < b->n; i++) {
        failed += !b->vm[i].ok;
        cli_print_notes(b->c, b->vm[i].name, &b->vm[i].notes);
    }
    summary_text(b);
    summary_json(b, failed);
    struct sp_error err;
    if (!failed)
        return EXIT_OK_;
    char names[SP_ERROR_MAX / 2] = "";
    for (int i = 0, n = 0; i < b->n; i++)
        if (!b->vm[i].ok && n >= 0 && (size_t)n < sizeof names)
            n += snprintf(names + n, sizeof names - (size_t)n, "%s%s", n ? ", " : "", b->vm[i].name);
    sp_error_set(&err, SP_EIO, "export: %d of %d VMs failed: %s", failed, b->n, names);
    int rc = cli_fail(&err); /* interrupted: 128 + the signal */
    return rc == EXIT_FAIL ? EXIT_DIFF : rc;
}

int cli_export_batch(struct cli *c, const struct cli_args *a)
{
    struct batch b = {.c = c, .a = a, .target = cli_opt(a, "--output"), .snapshot = cli_opt(a, "--snapshot")};
    const char *tmpl = NULL;
    int rc = batch_usage(a, &b, &tmpl);
    if (rc == EXIT_OK_)
        rc = load_vms(&b);
    if (rc == EXIT_OK_)
        rc = name_outputs(&b, tmpl);
    if (rc == EXIT_OK_)
        rc = check_target(&b);
    if (rc == EXIT_OK_) {
        run_all(&b);
        rc = finish(&b);
    }
    for (int i = 0; b.vm && i < b.n; i++)
        sp_notes_free(&b.vm[i].notes);
    free(b.vm);
    return rc;
}
