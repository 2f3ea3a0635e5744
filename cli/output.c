#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "base/cancel.h"
#include "base/util.h"

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("snapport: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see 'snapport help')\n", stderr);
    return EXIT_USAGE;
}

int cli_fail(const struct sp_error *err)
{
    /* Stopped by a signal: whatever failed on the way out is its echo.
     * The shell's status for a death by that signal, 128 + its number. */
    int sig = sp_cancel_signal();
    if (sig) {
        fprintf(stderr, "snapport: interrupted by %s\n", sp_cancel_name(sig));
        return 128 + sig;
    }
    /* One line, whatever the message holds. */
    char line[SP_ERROR_MAX];
    snprintf(line, sizeof line, "%s", err->msg[0] ? err->msg : "unknown error");
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fprintf(stderr, "snapport: %s\n", line);
    return EXIT_FAIL;
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

void cli_print_notes(const struct cli *c, const char *label, struct sp_notes *notes)
{
    for (int i = 0; !c->quiet && i < notes->n; i++)
        fprintf(stderr, "snapport: %s: %s\n", label, notes->items[i]);
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
        printf("%s\n", msg);
}

void cli_problems_begin(const struct cli *c, const char *path)
{
    if (!c->json)
        return;
    json_begin_object();
    if (path)
        json_key_string("path", path);
    json_begin_array("problems");
}

void cli_problems_end(const struct cli *c, bool ok)
{
    if (!c->json)
        return;
    json_end_array();
    json_key_bool("ok", ok);
    json_end_object();
    json_finish();
}

void cli_report_uuid(struct cli *c, const char *uuid, const char *fmt, ...)
{
    if (c->json) {
        json_begin_object();
        json_key_string("uuid", uuid);
        json_end_object();
        json_finish();
        return;
    }
    if (c->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

/* ---- JSON ---------------------------------------------------------------- */

static int depth;
static bool need_comma[64];

static void sep(void)
{
    if (need_comma[depth])
        putchar(',');
    need_comma[depth] = true;
}

static void put_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void key(const char *k)
{
    sep();
    if (k) {
        put_string(k);
        putchar(':');
    }
}

void json_begin_object(void)
{
    if (depth > 0)
        sep();
    putchar('{');
    need_comma[++depth] = false;
}

void json_end_object(void)
{
    putchar('}');
    depth--;
}

void json_begin_array(const char *k)
{
    key(k);
    putchar('[');
    need_comma[++depth] = false;
}

void json_end_array(void)
{
    putchar(']');
    depth--;
}

void json_key_string(const char *k, const char *v)
{
    key(k);
    if (v)
        put_string(v);
    else
        fputs("null", stdout);
}

void json_key_uint(const char *k, uint64_t v)
{
    key(k);
    printf("%llu", (unsigned long long)v);
}

void json_key_bool(const char *k, bool v)
{
    key(k);
    fputs(v ? "true" : "false", stdout);
}

void json_key_null(const char *k)
{
    key(k);
    fputs("null", stdout);
}

void json_string_item(const char *v)
{
    sep();
    put_string(v);
}

void json_finish(void)
{
    putchar('\n');
    fflush(stdout);
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
