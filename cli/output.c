#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "base/cancel.h"
#include "base/util.h"

/* One byte as shown: itself, or its escape (at most 4 bytes, no NUL). */
static size_t shown_byte(unsigned char ch, char *out)
{
    static const char hex[] = "0123456789abcdef";
    const char *named = ch == '\n' ? "\\n" : ch == '\r' ? "\\r" : ch == '\t' ? "\\t" : NULL;
    if (named) {
        memcpy(out, named, 2);
        return 2;
    }
    if (ch >= 0x20 && ch != 0x7f) {
        out[0] = (char)ch;
        return 1;
    }
    out[0] = '\\';
    out[1] = 'x';
    out[2] = hex[ch >> 4];
    out[3] = hex[ch & 15];
    return 4;
}

/* s escaped into out (always terminated; cut at a whole escape). */
static void shown_into(const char *s, char *out, size_t sz)
{
    size_t n = 0;
    char one[4];
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        size_t k = shown_byte(*p, one);
        if (n + k >= sz)
            break;
        memcpy(out + n, one, k);
        n += k;
    }
    out[n] = '\0';
}

const char *cli_shown(const char *s)
{
    static char slots[CLI_SHOWN_SLOTS][4 * 4096 + 1];
    static unsigned next;
    char *out = slots[next++ % CLI_SHOWN_SLOTS];
    shown_into(s ? s : "", out, sizeof slots[0]);
    return out;
}

/* The failure's one line, kept for the --json document's "error" (JSON
 * escapes for itself: the line as it was); stderr gets it shown. */
static char last_error[SP_ERROR_MAX + 256];

static void error_line(const char *line)
{
    snprintf(last_error, sizeof last_error, "%s", line);
    char safe[4 * sizeof last_error];
    shown_into(last_error, safe, sizeof safe);
    fprintf(stderr, "snapport: %s\n", safe);
}

void cli_error(const char *fmt, ...)
{
    char line[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    error_line(line);
}

int cli_usage_error(const char *fmt, ...)
{
    char line[sizeof last_error - 32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    cli_error("%s (see 'snapport help')", line);
    return EXIT_USAGE;
}

void cli_failure_text(const struct sp_error *err, char *out, size_t sz)
{
    /* Stopped by a signal: whatever failed on the way out is its echo,
     * unless the stop itself says more (what it left on a server). */
    int sig = sp_cancel_signal();
    if (sig && !(err->code == SP_ECANCELED && strncmp(err->msg, "interrupted by ", 15) == 0))
        snprintf(out, sz, "interrupted by %s", sp_cancel_name(sig));
    else
        snprintf(out, sz, "%s", err->msg[0] ? err->msg : "unknown error");
}

int cli_fail(const struct sp_error *err)
{
    /* One line, whatever the message holds (error_line escapes); after a
     * signal the shell's status for a death by it, 128 + its number. */
    char line[SP_ERROR_MAX];
    cli_failure_text(err, line, sizeof line);
    error_line(line);
    int sig = sp_cancel_signal();
    return sig ? 128 + sig : EXIT_FAIL;
}

void cli_say(const struct cli *c, const char *fmt, ...)
{
    if (c->quiet || c->json)
        return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

/* Every note printed, for the --json document's "notes". */
static struct sp_notes json_notes;

void cli_print_notes(const struct cli *c, const char *label, struct sp_notes *notes)
{
    for (int i = 0; i < notes->n; i++) {
        if (!c->quiet)
            fprintf(stderr, "snapport: %s: %s\n", cli_shown(label), cli_shown(notes->items[i]));
        if (c->json)
            sp_note(&json_notes, "%s: %s", label, notes->items[i]);
    }
    if (!c->quiet && notes->dropped)
        fprintf(stderr, "snapport: %s: %d more note(s) not shown\n", label, notes->dropped);
    sp_notes_free(notes);
}

int cli_parse_size(const char *what, const char *s, uint64_t *out)
{
    if (sp_parse_size(s, out) != SP_OK)
        return cli_usage_error("%s: '%s' is not a size (a number with an optional K, M, G or T)", what, s);
    return EXIT_OK_;
}

void cli_problem(void *ctx, const char *msg)
{
    struct cli_problems *p = ctx;
    if (!p->first[0])
        snprintf(p->first, sizeof p->first, "%s", msg);
    if (p->c->json)
        json_string_item(msg);
    else
        printf("%s\n", cli_shown(msg));
}

void cli_problems_begin(const struct cli *c, const char *path)
{
    if (!c->json)
        return;
    if (path)
        json_key_string("path", path);
    json_begin_array("problems");
}

void cli_problems_end(const struct cli *c)
{
    if (c->json)
        json_end_array();
}

/* ---- JSON ---------------------------------------------------------------- */

/* With --json the command writes its fields into a buffer, inside the
 * document the dispatcher opened; cli_json_end closes it with the
 * outcome, or, when the command failed half way through a structure,
 * drops what it wrote (nothing on stdout is not JSON). */
static FILE *jout;
static char *jbuf;
static size_t jlen;
static int depth;
static bool need_comma[64];

static FILE *out(void) { return jout ? jout : stdout; }

static void sep(void)
{
    if (need_comma[depth])
        fputc(',', out());
    need_comma[depth] = true;
}

static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void key(const char *k)
{
    sep();
    if (k) {
        put_string(out(), k);
        fputc(':', out());
    }
}

void json_begin_object(const char *k)
{
    key(k);
    fputc('{', out());
    need_comma[++depth] = false;
}

void json_end_object(void)
{
    fputc('}', out());
    depth--;
}

void json_begin_array(const char *k)
{
    key(k);
    fputc('[', out());
    need_comma[++depth] = false;
}

void json_end_array(void)
{
    fputc(']', out());
    depth--;
}

void json_key_string(const char *k, const char *v)
{
    key(k);
    if (v)
        put_string(out(), v);
    else
        fputs("null", out());
}

void json_key_uint(const char *k, uint64_t v)
{
    key(k);
    fprintf(out(), "%llu", (unsigned long long)v);
}

void json_key_bool(const char *k, bool v)
{
    key(k);
    fputs(v ? "true" : "false", out());
}

void json_key_null(const char *k)
{
    key(k);
    fputs("null", out());
}

void json_string_item(const char *v)
{
    sep();
    put_string(out(), v);
}

void cli_json_begin(void)
{
    jout = open_memstream(&jbuf, &jlen); /* NULL: straight to stdout */
    depth = 0;
    need_comma[0] = false;
    json_begin_object(NULL);
}

/* The envelope: command, ok, exit, error, notes (docs/json.md). */
static void json_outcome(const char *command, int rc)
{
    json_key_string("command", command);
    json_key_bool("ok", rc == EXIT_OK_);
    json_key_uint("exit", (uint64_t)rc);
    json_key_string("error", rc == EXIT_OK_ ? NULL : last_error[0] ? last_error : "failed");
    json_begin_array("notes");
    for (int i = 0; i < json_notes.n; i++)
        json_string_item(json_notes.items[i]);
    json_end_array();
}

int cli_json_end(const char *command, int rc)
{
    /* the command's fields, whole: all it opened it closed */
    bool whole = jout && fclose(jout) == 0 && depth == 1;
    jout = NULL;
    if (!whole && rc == EXIT_OK_)
        rc = EXIT_FAIL; /* cannot be: a success closes what it opens */
    depth = 0;
    need_comma[0] = false;
    json_begin_object(NULL); /* now on stdout: the envelope first, for the reader */
    json_outcome(command, rc);
    if (whole && jlen > 1) { /* the buffer begins with its own '{' */
        fputc(',', stdout);
        fwrite(jbuf + 1, 1, jlen - 1, stdout);
    }
    json_end_object();
    fputc('\n', stdout);
    free(jbuf);
    jbuf = NULL;
    sp_notes_free(&json_notes);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "snapport: stdout: write failed\n");
        return rc == EXIT_OK_ ? EXIT_FAIL : rc;
    }
    return rc;
}

FILE *cli_text_begin(const struct cli *c, struct cli_text *t)
{
    memset(t, 0, sizeof *t);
    t->f = c->json ? open_memstream(&t->buf, &t->len) : NULL;
    return t->f ? t->f : stdout;
}

void cli_text_end(const struct cli *c, struct cli_text *t, const char *k)
{
    if (!c->json)
        return;
    if (t->f && fclose(t->f) == 0)
        json_key_string(k, t->buf);
    else
        json_key_null(k); /* no memory for it: said as nothing, not as a wrong text */
    free(t->buf);
    memset(t, 0, sizeof *t);
}

const char *cli_dir_of(const char *path, char *buf, size_t len)
{
    snprintf(buf, len, "%s", path);
    char *slash = strrchr(buf, '/');
    if (!slash)
        snprintf(buf, len, ".");
    else
        *(slash == buf ? slash + 1 : slash) = '\0';
    return buf;
}

int cli_output_format(const char *cmd, const char *out, const char *given, const char *ext_fmt, const char **name)
{
    *name = given ? given : ext_fmt;
    if (given && ext_fmt && strcasecmp(given, ext_fmt) != 0)
        return cli_usage_error("%s: %s: --format %s does not match the extension .%s", cmd, out, given,
                               sp_path_extension(out));
    return EXIT_OK_;
}

int cli_archive_format(const char *cmd, const char *out, const char *given, enum sp_archive_format *f)
{
    if (given && !sp_archive_writer_find(given))
        return cli_usage_error("%s: unknown --format '%s' (xva or ova)", cmd, given);
    const struct sp_archive_write_format *by_ext = sp_archive_writer_for_name(out);
    const char *name;
    int rc = cli_output_format(cmd, out, given, by_ext ? by_ext->name : NULL, &name);
    if (rc != EXIT_OK_)
        return rc;
    const char *ext = sp_path_extension(out);
    if (!name && ext)
        return cli_usage_error("%s: %s: no archive format has the extension .%s (say --format xva|ova)", cmd, out,
                               ext);
    if (!name)
        return cli_usage_error("%s: %s: say --format xva|ova (no extension to tell)", cmd, out);
    *f = strcasecmp(name, "ova") == 0 ? SP_ARCHIVE_OVA : SP_ARCHIVE_XVA;
    return EXIT_OK_;
}
