/* xl.cfg <-> struct sp_vm_config.
 *
 * libxlutil (the parser `xl` uses) decides whether a file is valid and gives
 * the values of the keys we interpret. It cannot list the keys of a parsed
 * file, so a small statement scanner over the original text keeps every other
 * statement verbatim. libxlutil writes its messages to a FILE; we give it an
 * in-memory one and turn what it wrote into a struct sp_error. */
#include "vm/vmconfig.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxlutil.h>

#include "base/util.h"

/* Bounds that only catch garbage: far above what Xen runs (4.17 allows 128
 * vcpus for an HVM guest; hosts have a few TiB), far below overflow of the
 * KiB arithmetic xl does on memory (a long of KiB). */
#define SP_VM_MAX_MEMORY_MB (1L << 30)
#define SP_VM_MAX_VCPUS 8192L

/* The per-VIF network names (struct sp_vm_vif network): a key xl ignores. */
#define NETWORKS_KEY "snapport_networks"

/* The keys this module interprets; every other statement goes to extra. */
static const char *const interpreted_keys[] = {
    "name", "uuid", "type", "builder", "memory", "maxmem", "vcpus", "maxvcpus", "boot", "bios", "disk", "vif",
    NETWORKS_KEY,
};

/* libxlutil's wording of a disk spec error, before the part worth showing. */
#define DISK_ERR_LEAD "config parsing error in disk specification: "

/* ---- libxlutil's report stream ----------------------------------------- */

struct report {
    FILE *f;
    char *buf;
    size_t len;
    size_t mark; /* start of what the current call wrote */
};

static int report_open(struct report *r, struct sp_error *err)
{
    memset(r, 0, sizeof *r);
    r->f = open_memstream(&r->buf, &r->len);
    if (!r->f)
        return sp_error_errno(err, errno, "opening a memory stream");
    return SP_OK;
}

static void report_close(struct report *r)
{
    if (r->f)
        fclose(r->f);
    free(r->buf);
    memset(r, 0, sizeof *r);
}

static void report_mark(struct report *r)
{
    fflush(r->f);
    r->mark = r->len;
}

/* The first line libxlutil wrote since the mark, without its newline ("" if
 * none). Later lines are follow-ups (a second lexical error, the "looks like
 * Python" warning) that add nothing to the first. */
static void report_first_line(struct report *r, char *out, size_t size)
{
    fflush(r->f);
    const char *s = r->buf ? r->buf + r->mark : "";
    size_t n = strcspn(s, "\n");
    if (n >= size)
        n = size - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

/* ---- statement scanner -------------------------------------------------- */

/* One top-level statement: `key = value` or `key += value`, where the value
 * may be a [ list ] over several lines. The scanner trusts that libxlutil
 * has accepted the text already; it only finds where statements are. */
struct stmt {
    const char *key;
    size_t key_len;
    const char *start, *end; /* raw text, comments included */
    int line;                /* line of the key, from 1 */
};

struct scanner {
    const char *p, *end;
    int line;
};

static bool is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
}

/* Leaves p on the newline that ends a '#' comment (or at the end). */
static const char *skip_comment(const char *p, const char *end)
{
    while (p < end && *p != '\n')
        p++;
    return p;
}

/* p is on an opening quote; returns the byte after the closing one. A
 * backslash escapes the next byte, as in libxlutil's lexer; strings never
 * span lines. */
static const char *skip_string(const char *p, const char *end)
{
    char q = *p++;
    while (p < end && *p != q && *p != '\n') {
        if (*p == '\\' && p + 1 < end && p[1] != '\n')
            p++;
        p++;
    }
    return p < end && *p == q ? p + 1 : p;
}

/* Skips what lies between statements: blanks, newlines, ';', comments. */
static void skip_gap(struct scanner *s)
{
    while (s->p < s->end) {
        char c = *s->p;
        if (c == '\n') {
            s->line++;
            s->p++;
        } else if (c == ' ' || c == '\t' || c == ';') {
            s->p++;
        } else if (c == '#') {
            s->p = skip_comment(s->p, s->end);
        } else {
            break;
        }
    }
}

static bool next_stmt(struct scanner *s, struct stmt *st)
{
    skip_gap(s);
    if (s->p >= s->end)
        return false;
    st->line = s->line;
    st->start = st->key = s->p;
    while (s->p < s->end && is_key_char(*s->p))
        s->p++;
    st->key_len = (size_t)(s->p - st->key);
    int depth = 0;
    while (s->p < s->end) {
        char c = *s->p;
        if (c == '\'' || c == '"') {
            s->p = skip_string(s->p, s->end);
            continue;
        }
        if (c == '#') {
            s->p = skip_comment(s->p, s->end);
            continue;
        }
        if (c == '[')
            depth++;
        else if (c == ']' && depth > 0)
            depth--;
        else if (depth == 0 && (c == '\n' || c == ';'))
            break;
        if (c == '\n')
            s->line++;
        s->p++;
    }
    st->end = s->p;
    return true;
}

static bool stmt_key_is(const struct stmt *st, const char *key)
{
    return strlen(key) == st->key_len && memcmp(st->key, key, st->key_len) == 0;
}

static bool is_interpreted(const struct stmt *st)
{
    for (size_t i = 0; i < sizeof interpreted_keys / sizeof interpreted_keys[0]; i++)
        if (stmt_key_is(st, interpreted_keys[i]))
            return true;
    return false;
}

/* Line of the statement that sets key (the last one: libxlutil lets a later
 * statement win), 0 if none. Used for messages only. */
static int key_line(const char *text, size_t len, const char *key)
{
    struct scanner s = {text, text + len, 1};
    struct stmt st;
    int line = 0;
    while (next_stmt(&s, &st))
        if (stmt_key_is(&st, key))
            line = st.line;
    return line;
}

/* Writes the statement without its comments, blanks at line ends or lines
 * left empty, then a newline. */
static void put_stmt(FILE *out, const struct stmt *st)
{
    const char *p = st->start;
    while (p < st->end) {
        /* one line of the statement: [p, eol) with its comment cut off */
        const char *eol = p, *cut = NULL;
        while (eol < st->end && *eol != '\n') {
            if (*eol == '\'' || *eol == '"') {
                eol = skip_string(eol, st->end);
                continue;
            }
            if (*eol == '#' && !cut)
                cut = eol;
            eol++;
        }
        const char *e = cut ? cut : eol;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > p) {
            if (p != st->start)
                fputc('\n', out);
            fwrite(p, 1, (size_t)(e - p), out);
        }
        p = eol < st->end ? eol + 1 : eol;
    }
    fputc('\n', out);
}

/* Every statement whose key is not interpreted, verbatim; "" when none. */
static int collect_extra(const char *text, size_t len, char **out, struct sp_error *err)
{
    char *buf = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&buf, &blen);
    if (!f)
        return sp_error_errno(err, errno, "opening a memory stream");
    struct scanner s = {text, text + len, 1};
    struct stmt st;
    while (next_stmt(&s, &st))
        if (!is_interpreted(&st))
            put_stmt(f, &st);
    if (fclose(f) != 0) {
        free(buf);
        return sp_error_set(err, SP_ENOMEM, "out of memory collecting other settings");
    }
    *out = buf;
    return SP_OK;
}

/* ---- parsing ------------------------------------------------------------ */

struct parse_ctx {
    const char *name;
    const char *text;
    size_t len;
    XLU_Config *cfg;
    struct report rep;
    struct sp_error *err;
};

/* Copies s into a fixed field or says which key is too long. */
static int set_field(struct parse_ctx *x, char *dst, size_t size, const char *key, const char *s)
{
    size_t n = strlen(s);
    if (n >= size)
        return sp_error_set(x->err, SP_ELIMIT, "%s:%d: %s: longer than %zu bytes", x->name,
                            key_line(x->text, x->len, key), key, size - 1);
    memcpy(dst, s, n + 1);
    return SP_OK;
}

/* libxlutil's syntax error as "NAME:LINE: message". Its line numbers are one
 * too low for an error found at a newline token ("unexpected NEWLINE"): the
 * lexer stores yylineno-1 for that token and the error printer subtracts one
 * again. We add it back so that the line named is the one to fix. */
static int syntax_error(struct parse_ctx *x, int e)
{
    char line[SP_ERROR_MAX];
    report_first_line(&x->rep, line, sizeof line);
    size_t nlen = strlen(x->name);
    const char *rest = line;
    char *end = NULL;
    long lineno = -1;
    if (strncmp(line, x->name, nlen) == 0 && line[nlen] == ':' && isdigit((unsigned char)line[nlen + 1])) {
        lineno = strtol(line + nlen + 1, &end, 10);
        if (end[0] == ':' && end[1] == ' ')
            rest = end + 2;
        else
            lineno = -1;
    }
    /* The token libxlutil quotes may be a control byte (a DOS line end):
     * keep the message on one printable line. */
    for (char *p = line; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    const char *hint = memchr(x->text, '\r', x->len) ? " (DOS line ends? xl reads only \\n)" : "";
    if (lineno >= 0) {
        if (strstr(rest, "unexpected NEWLINE"))
            lineno++;
        return sp_error_set(x->err, SP_EFORMAT, "%s:%ld: %s%s", x->name, lineno, rest, hint);
    }
    if (line[0])
        return sp_error_set(x->err, SP_EFORMAT, "%s: %s", x->name, line);
    return sp_error_set(x->err, e == ENOMEM ? SP_ENOMEM : SP_EFORMAT, "%s: not a valid xl.cfg (libxlutil: %s)",
                        x->name, strerror(e));
}

/* A number-valued key. Absent: *out = def, or an error when required. */
static int get_long(struct parse_ctx *x, const char *key, long min, long max, bool required, long def, long *out)
{
    long v = 0;
    int e = xlu_cfg_get_long(x->cfg, key, &v, 1);
    if (e == ESRCH) {
        if (required)
            return sp_error_set(x->err, SP_EFORMAT, "%s: %s is missing", x->name, key);
        *out = def;
        return SP_OK;
    }
    int line = key_line(x->text, x->len, key);
    const char *s = NULL;
    if (e) {
        if (xlu_cfg_get_string(x->cfg, key, &s, 1) != 0)
            return sp_error_set(x->err, SP_EFORMAT, "%s:%d: %s: a list where a number is expected", x->name,
                                line, key);
        char *end = NULL;
        (void)strtol(s, &end, 0);
        if (*s && !*end) /* a number after all: libxlutil refuses += with numbers */
            return sp_error_set(x->err, SP_EFORMAT, "%s:%d: %s: += cannot be used with a number", x->name, line, key);
        return sp_error_set(x->err, SP_EFORMAT, "%s:%d: %s: not a number: `%s'", x->name, line, key, s);
    }
    if (v < min || v > max)
        return sp_error_set(x->err, SP_EFORMAT, "%s:%d: %s: %ld is out of range (%ld to %ld)", x->name, line, key,
                            v, min, max);
    *out = v;
    return SP_OK;
}

/* A string-valued key; *out = NULL when absent. */
static int get_string(struct parse_ctx *x, const char *key, const char **out)
{
    *out = NULL;
    int e = xlu_cfg_get_string(x->cfg, key, out, 1);
    if (e == ESRCH)
        return SP_OK;
    if (e)
        return sp_error_set(x->err, SP_EFORMAT, "%s:%d: %s: a list where a single value is expected", x->name,
                            key_line(x->text, x->len, key), key);
    return SP_OK;
}

static int parse_name_uuid(struct parse_ctx *x, struct sp_vm_config *c)
{
    const char *s;
    int rc = get_string(x, "name", &s);
    if (rc)
        return rc;
    if (!s)
        return sp_error_set(x->err, SP_EFORMAT, "%s: name is missing", x->name);
    if (!*s)
        return sp_error_set(x->err, SP_EFORMAT, "%s:%d: name is empty", x->name, key_line(x->text, x->len, "name"));
    if ((rc = set_field(x, c->name, sizeof c->name, "name", s)))
        return rc;
    if ((rc = get_string(x, "uuid", &s)))
        return rc;
    if (!s)
        return SP_OK;
    if (sp_uuid_parse(s, c->uuid) != SP_OK)
        return sp_error_set(x->err, SP_EFORMAT, "%s:%d: uuid: not a valid uuid: `%s'", x->name,
                            key_line(x->text, x->len, "uuid"), s);
    c->has_uuid = true;
    return SP_OK;
}

/* type= (hvm, pv, pvh) or the older builder= (hvm, generic); xl refuses
 * both at once and builds a PV guest on x86 when neither is given. Unlike
 * xl, which accepts any prefix ("h" for hvm), we want the whole word. */
static int parse_type(struct parse_ctx *x, struct sp_vm_config *c)
{
    const char *type, *builder;
    int rc = get_string(x, "type", &type);
    if (!rc)
        rc = get_string(x, "builder", &builder);
    if (rc)
        return rc;
    if (type && builder)
        return sp_error_set(x->err, SP_EFORMAT, "%s: type and builder are both given (xl refuses that)", x->name);
    c->type = SP_VM_PV;
    if (type) {
        if (!strcmp(type, "hvm"))
            c->type = SP_VM_HVM;
        else if (!strcmp(type, "pvh"))
            c->type = SP_VM_PVH;
        else if (strcmp(type, "pv") != 0)
            return sp_error_set(x->err, SP_EFORMAT, "%s:%d: type: `%s' is not hvm, pv or pvh", x->name,
                                key_line(x->text, x->len, "type"), type);
    } else if (builder) {
        if (!strcmp(builder, "hvm"))
            c->type = SP_VM_HVM;
        else if (strcmp(builder, "generic") != 0)
            return sp_error_set(x->err, SP_EFORMAT, "%s:%d: builder: `%s' is not hvm or generic", x->name,
                                key_line(x->text, x->len, "builder"), builder);
    }
    return SP_OK;
}

static int parse_sizes(struct parse_ctx *x, struct sp_vm_config *c)
{
    int rc = get_long(x, "memory", 1, SP_VM_MAX_MEMORY_MB, true, 0, &c->memory_mb);
    if (!rc)
        rc = get_long(x, "maxmem", 1, SP_VM_MAX_MEMORY_MB, false, 0, &c->maxmem_mb);
    if (!rc)
        rc = get_long(x, "vcpus", 1, SP_VM_MAX_VCPUS, false, 1, &c->vcpus);
    if (!rc)
        rc = get_long(x, "maxvcpus", 1, SP_VM_MAX_VCPUS, false, 0, &c->maxvcpus);
    if (rc)
        return rc;
    const char *boot;
    if ((rc = get_string(x, "boot", &boot)))
        return rc;
    return boot ? set_field(x, c->boot, sizeof c->boot, "boot", boot) : SP_OK;
}

/* bios= as xl takes it (libxl_bios_type_from_string): one of three words. */
static int parse_bios(struct parse_ctx *x, struct sp_vm_config *c)
{
    const char *bios;
    int rc = get_string(x, "bios", &bios);
    if (rc || !bios)
        return rc;
    if (strcmp(bios, "rombios") != 0 && strcmp(bios, "seabios") != 0 && strcmp(bios, "ovmf") != 0)
        return sp_error_set(x->err, SP_EFORMAT, "%s:%d: bios: `%s' is not rombios, seabios or ovmf", x->name,
                            key_line(x->text, x->len, "bios"), bios);
    return set_field(x, c->bios, sizeof c->bios, "bios", bios);
}

/* A list-valued key: *list = NULL, *n = 0 when absent. */
static int get_list(struct parse_ctx *x, const char *key, XLU_ConfigList **list, int *n)
{
    *list = NULL;
    *n = 0;
    int e = xlu_cfg_get_list(x->cfg, key, list, n, 1);
    if (e == ESRCH)
        return SP_OK;
    if (e)
        return sp_error_set(x->err, SP_EFORMAT, "%s:%d: %s: a single value where a [ list ] is expected", x->name,
                            key_line(x->text, x->len, key), key);
    return SP_OK;
}

/* Appends item to a comma-joined list held in *acc (NULL when empty). */
static int join_item(char **acc, const char *item, struct sp_error *err)
{
    size_t old = *acc ? strlen(*acc) : 0, n = strlen(item);
    char *p = realloc(*acc, old + (old ? 1 : 0) + n + 1);
    if (!p)
        return sp_error_set(err, SP_ENOMEM, "out of memory");
    if (old)
        p[old++] = ',';
    memcpy(p + old, item, n + 1);
    *acc = p;
    return SP_OK;
}

/* join_item of "key=val". */
static int join_kv(char **acc, const char *key, const char *val, struct sp_error *err)
{
    char *item = NULL;
    if (asprintf(&item, "%s=%s", key, val) < 0)
        return sp_error_set(err, SP_ENOMEM, "out of memory");
    int rc = join_item(acc, item, err);
    free(item);
    return rc;
}

/* The settings of a parsed disk that we do not interpret, in the spelling
 * the disk parser reads back. (`trusted` is not in the 4.17 disk parser.) */
static int disk_extra(const libxl_device_disk *d, char **out, struct sp_error *err)
{
    int rc = SP_OK;
    char port[16];
    if (d->backend_domname)
        rc = join_kv(out, "backend", d->backend_domname, err);
    if (!rc && d->backend != LIBXL_DISK_BACKEND_UNKNOWN)
        rc = join_kv(out, "backendtype", libxl_disk_backend_to_string(d->backend), err);
    if (!rc && d->specification != LIBXL_DISK_SPECIFICATION_UNKNOWN)
        rc = join_kv(out, "specification", libxl_disk_specification_to_string(d->specification), err);
    if (!rc && d->script)
        rc = join_kv(out, "script", d->script, err);
    if (!rc && d->direct_io_safe)
        rc = join_item(out, "direct-io-safe", err);
    if (!rc && !libxl_defbool_is_default(d->discard_enable))
        rc = join_item(out, libxl_defbool_val(d->discard_enable) ? "discard" : "no-discard", err);
    if (!rc && !libxl_defbool_is_default(d->colo_enable))
        rc = join_item(out, libxl_defbool_val(d->colo_enable) ? "colo" : "no-colo", err);
    if (!rc && d->colo_host)
        rc = join_kv(out, "colo-host", d->colo_host, err);
    if (!rc && d->colo_port) {
        snprintf(port, sizeof port, "%d", d->colo_port);
        rc = join_kv(out, "colo-port", port, err);
    }
    if (!rc && d->colo_export)
        rc = join_kv(out, "colo-export", d->colo_export, err);
    if (!rc && d->active_disk)
        rc = join_kv(out, "active-disk", d->active_disk, err);
    if (!rc && d->hidden_disk)
        rc = join_kv(out, "hidden-disk", d->hidden_disk, err);
    return rc;
}

static int disk_from_libxl(struct parse_ctx *x, int idx, const libxl_device_disk *d, struct sp_vm_disk *out)
{
    const char *vdev = d->vdev ? d->vdev : "";
    const char *fmt = libxl_disk_format_to_string(d->format);
    if (strlen(vdev) >= sizeof out->vdev || !fmt || strlen(fmt) >= sizeof out->format)
        return sp_error_set(x->err, SP_ELIMIT, "%s: disk %d: vdev `%s' is too long", x->name, idx, vdev);
    strcpy(out->vdev, vdev);
    strcpy(out->format, fmt);
    out->readwrite = d->readwrite != 0;
    out->cdrom = d->is_cdrom != 0;
    out->target = strdup(d->pdev_path ? d->pdev_path : "");
    if (!out->target)
        return sp_error_set(x->err, SP_ENOMEM, "out of memory");
    int rc = disk_extra(d, &out->extra, x->err);
    return rc ? sp_error_prefix(x->err, "%s: disk %d", x->name, idx) : SP_OK;
}

/* One disk spec through xlu_disk_parse, which takes every spelling xl does. */
static int parse_disk(struct parse_ctx *x, int idx, const char *spec, struct sp_vm_disk *out)
{
    if (!spec)
        return sp_error_set(x->err, SP_EFORMAT, "%s: disk %d: a list where a spec string is expected", x->name, idx);
    libxl_device_disk d;
    libxl_device_disk_init(&d);
    report_mark(&x->rep);
    int e = xlu_disk_parse(x->cfg, 1, &spec, &d);
    int rc = SP_OK;
    if (e) {
        char line[SP_ERROR_MAX];
        report_first_line(&x->rep, line, sizeof line);
        const char *what = line;
        size_t nlen = strlen(x->name);
        if (strncmp(what, x->name, nlen) == 0 && what[nlen] == ':' && what[nlen + 1] == ' ')
            what += nlen + 2;
        if (strncmp(what, DISK_ERR_LEAD, strlen(DISK_ERR_LEAD)) == 0)
            what += strlen(DISK_ERR_LEAD);
        if (!*what)
            what = strerror(e);
        rc = sp_error_set(x->err, e == ENOMEM ? SP_ENOMEM : SP_EFORMAT, "%s: disk %d: %s", x->name, idx, what);
    } else {
        rc = disk_from_libxl(x, idx, &d, out);
    }
    libxl_device_disk_dispose(&d);
    return rc;
}

static int parse_disks(struct parse_ctx *x, struct sp_vm_config *c)
{
    XLU_ConfigList *list;
    int n;
    int rc = get_list(x, "disk", &list, &n);
    if (rc || n == 0)
        return rc;
    c->disks = sp_zalloc((size_t)n * sizeof *c->disks, x->err);
    if (!c->disks)
        return SP_ENOMEM;
    c->ndisks = n; /* zeroed entries are safe to free */
    for (int i = 0; i < n && !rc; i++)
        rc = parse_disk(x, i + 1, xlu_cfg_get_listitem(list, i), &c->disks[i]);
    return rc;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* "00:16:3e:5a:01:0c" (or with '-') into lowercase colon form in out[18]. */
static bool parse_mac(const char *s, char out[18])
{
    if (strlen(s) != 17)
        return false;
    for (int i = 0; i < 6; i++) {
        const char *p = s + 3 * i;
        if (hexval(p[0]) < 0 || hexval(p[1]) < 0 || (i < 5 && p[2] != ':' && p[2] != '-'))
            return false;
        out[3 * i] = (char)tolower((unsigned char)p[0]);
        out[3 * i + 1] = (char)tolower((unsigned char)p[1]);
        out[3 * i + 2] = i < 5 ? ':' : '\0';
    }
    return true;
}

/* Copies value into a vif field, checking its size. */
static int vif_field(struct parse_ctx *x, int idx, char *dst, size_t size, const char *key, const char *value)
{
    if (strlen(value) >= size)
        return sp_error_set(x->err, SP_ELIMIT, "%s: vif %d: %s longer than %zu bytes", x->name, idx, key, size - 1);
    strcpy(dst, value);
    return SP_OK;
}

/* One item of a vif spec, already trimmed. xl matches "key=" exactly, so
 * "mac = ..." is not a mac for xl either and stays in extra. */
static int vif_item(struct parse_ctx *x, int idx, const char *item, struct sp_vm_vif *v)
{
    if (!strncmp(item, "mac=", 4)) {
        if (!parse_mac(item + 4, v->mac))
            return sp_error_set(x->err, SP_EFORMAT, "%s: vif %d: bad mac `%s' (want 6 hex pairs like 00:16:3e:01:02:03)",
                                x->name, idx, item + 4);
        return SP_OK;
    }
    if (!strncmp(item, "bridge=", 7))
        return vif_field(x, idx, v->bridge, sizeof v->bridge, "bridge", item + 7);
    if (!strncmp(item, "model=", 6))
        return vif_field(x, idx, v->model, sizeof v->model, "model", item + 6);
    if (!strncmp(item, "ip=", 3))
        return vif_field(x, idx, v->ip, sizeof v->ip, "ip", item + 3);
    return join_item(&v->extra, item, x->err);
}

/* A vif spec is split as xl does: on every comma, each item trimmed of
 * white space; empty items are dropped. */
static int parse_vif(struct parse_ctx *x, int idx, const char *spec, struct sp_vm_vif *v)
{
    if (!spec)
        return sp_error_set(x->err, SP_EFORMAT, "%s: vif %d: a list where a spec string is expected", x->name, idx);
    char *copy = strdup(spec);
    if (!copy)
        return sp_error_set(x->err, SP_ENOMEM, "out of memory");
    int rc = SP_OK;
    char *p = copy;
    while (!rc && p) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        while (isspace((unsigned char)*p))
            p++;
        char *e = p + strlen(p);
        while (e > p && isspace((unsigned char)e[-1]))
            *--e = '\0';
        if (*p)
            rc = vif_item(x, idx, p, v);
        p = comma ? comma + 1 : NULL;
    }
    free(copy);
    return rc;
}

static int parse_vifs(struct parse_ctx *x, struct sp_vm_config *c)
{
    XLU_ConfigList *list;
    int n;
    int rc = get_list(x, "vif", &list, &n);
    if (rc || n == 0)
        return rc;
    c->vifs = sp_zalloc((size_t)n * sizeof *c->vifs, x->err);
    if (!c->vifs)
        return SP_ENOMEM;
    c->nvifs = n; /* zeroed entries are safe to free */
    for (int i = 0; i < n && !rc; i++)
        rc = parse_vif(x, i + 1, xlu_cfg_get_listitem(list, i), &c->vifs[i]);
    return rc;
}

/* snapport_networks = [ 'name', ... ]: the VIFs' network names in VIF
 * order; names past the last VIF are ignored (a VIF removed by hand). */
static int parse_networks(struct parse_ctx *x, struct sp_vm_config *c)
{
    XLU_ConfigList *list;
    int n;
    int rc = get_list(x, NETWORKS_KEY, &list, &n);
    for (int i = 0; !rc && i < n && i < c->nvifs; i++) {
        const char *name = xlu_cfg_get_listitem(list, i);
        if (!name)
            return sp_error_set(x->err, SP_EFORMAT, "%s:%d: %s: item %d is not a string", x->name,
                                key_line(x->text, x->len, NETWORKS_KEY), NETWORKS_KEY, i + 1);
        rc = set_field(x, c->vifs[i].network, sizeof c->vifs[i].network, NETWORKS_KEY, name);
    }
    return rc;
}

static int parse_cfg(struct parse_ctx *x, struct sp_vm_config *c)
{
    report_mark(&x->rep);
    int e = xlu_cfg_readdata(x->cfg, x->text, (int)x->len);
    if (e)
        return syntax_error(x, e);
    int rc = parse_name_uuid(x, c);
    if (!rc)
        rc = parse_type(x, c);
    if (!rc)
        rc = parse_sizes(x, c);
    if (!rc)
        rc = parse_disks(x, c);
    if (!rc)
        rc = parse_bios(x, c);
    if (!rc)
        rc = parse_vifs(x, c);
    if (!rc)
        rc = parse_networks(x, c);
    if (!rc)
        rc = collect_extra(x->text, x->len, &c->extra, x->err);
    return rc;
}

int sp_vmconfig_parse_text(const char *name, const char *text, size_t len, struct sp_vm_config *out,
                           struct sp_error *err)
{
    memset(out, 0, sizeof *out);
    if (len > SP_VMCONFIG_MAX_SIZE)
        return sp_error_set(err, SP_ELIMIT, "%s: larger than %u bytes, not an xl.cfg", name,
                            SP_VMCONFIG_MAX_SIZE);
    /* libxlutil would take a NUL inside a string and then cut the string
     * there without a word; refuse it first. */
    const char *nul = len ? memchr(text, '\0', len) : NULL;
    if (nul)
        return sp_error_set(err, SP_EFORMAT, "%s: NUL byte at offset %zu, not a text file", name,
                            (size_t)(nul - text));
    struct parse_ctx x = {name, text, len, NULL, {0}, err};
    int rc = report_open(&x.rep, err);
    if (rc)
        return rc;
    x.cfg = xlu_cfg_init(x.rep.f, name);
    struct sp_vm_config c = {0};
    if (!x.cfg)
        rc = sp_error_set(err, SP_ENOMEM, "out of memory");
    else
        rc = parse_cfg(&x, &c);
    xlu_cfg_destroy(x.cfg);
    report_close(&x.rep);
    if (rc) {
        sp_vmconfig_free(&c);
        return rc;
    }
    *out = c;
    return SP_OK;
}

static int read_small_file(const char *path, char **text, size_t *len, struct sp_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sp_error_errno(err, errno, "%s", path);
    struct stat st;
    int rc = SP_OK;
    char *buf = NULL;
    if (fstat(fd, &st) != 0) {
        rc = sp_error_errno(err, errno, "%s", path);
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)SP_VMCONFIG_MAX_SIZE) {
        rc = sp_error_set(err, SP_ELIMIT, "%s: not a regular file of at most %u bytes", path, SP_VMCONFIG_MAX_SIZE);
        goto out;
    }
    buf = sp_alloc((size_t)st.st_size + 1, err);
    if (!buf) {
        rc = SP_ENOMEM;
        goto out;
    }
    if ((rc = sp_pread_full(fd, buf, (size_t)st.st_size, 0, path, err)))
        goto out;
    buf[st.st_size] = '\0';
    *text = buf;
    *len = (size_t)st.st_size;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}

int sp_vmconfig_parse_file(const char *path, struct sp_vm_config *out, struct sp_error *err)
{
    /* Read the text ourselves: the scanner needs it, and xlu_cfg_readfile
     * reports an open failure as "Success" (it prints the wrong errno). */
    char *text = NULL;
    size_t len = 0;
    memset(out, 0, sizeof *out);
    int rc = read_small_file(path, &text, &len, err);
    if (!rc)
        rc = sp_vmconfig_parse_text(path, text, len, out, err);
    free(text);
    return rc;
}

/* ---- formatting --------------------------------------------------------- */

/* The escapes libxlutil's string reader understands. Its \x and octal
 * escapes are broken in 4.17 (hex always fails, octal drops the byte), so a
 * control byte without a named escape cannot be written at all. */
static const char *named_escape(char c)
{
    switch (c) {
    case '\\': return "\\\\";
    case '\'': return "\\'";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    case '\a': return "\\a";
    case '\b': return "\\b";
    case '\f': return "\\f";
    case '\v': return "\\v";
    default: return NULL;
    }
}

static int check_quotable(const char *what, const char *s, struct sp_error *err)
{
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c < 0x20 || c == 0x7f) && !named_escape(*p))
            return sp_error_set(err, SP_EUNSUPPORTED, "%s: byte 0x%02x cannot be written in an xl.cfg string",
                                what, c);
    }
    return SP_OK;
}

/* s in single quotes, escaped for libxlutil; check_quotable first. */
static void put_quoted(FILE *f, const char *s)
{
    fputc('\'', f);
    for (const char *p = s; *p; p++) {
        const char *esc = named_escape(*p);
        if (esc)
            fputs(esc, f);
        else
            fputc(*p, f);
    }
    fputc('\'', f);
}

static int put_key_string(FILE *f, const char *key, const char *s, struct sp_error *err)
{
    int rc = check_quotable(key, s, err);
    if (rc)
        return rc;
    fprintf(f, "%s = ", key);
    put_quoted(f, s);
    fputc('\n', f);
    return SP_OK;
}

static bool known_format(const char *f)
{
    static const char *const names[] = {"raw", "qcow", "qcow2", "vhd", "qed", "empty"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(f, names[i]))
            return true;
    return false;
}

/* What the disk parser cannot read back: every item but target ends at the
 * first comma; target runs to the end but loses one trailing comma; no item
 * may hold a newline. */
static int check_disk(int idx, const struct sp_vm_disk *d, struct sp_error *err)
{
    const char *fmt = d->format[0] ? d->format : "raw";
    const char *target = d->target ? d->target : "";
    size_t tlen = strlen(target);
    if (!known_format(fmt))
        return sp_error_set(err, SP_EINVAL, "disk %d: unknown format `%s'", idx, fmt);
    if (!d->vdev[0] || strpbrk(d->vdev, ",\n") || d->vdev[0] == ' ')
        return sp_error_set(err, SP_EUNSUPPORTED, "disk %d: vdev `%s' cannot be written", idx, d->vdev);
    if (strchr(target, '\n') || (tlen && target[tlen - 1] == ','))
        return sp_error_set(err, SP_EUNSUPPORTED, "disk %d: target `%s' cannot be written (newline or final comma)",
                            idx, target);
    if (!tlen && !d->cdrom)
        return sp_error_set(err, SP_EINVAL, "disk %d: no target (only a cdrom may be empty)", idx);
    if (d->extra && strchr(d->extra, '\n'))
        return sp_error_set(err, SP_EUNSUPPORTED, "disk %d: a newline in its other settings", idx);
    return SP_OK;
}

/* Writes a comma-joined item list with ", " between items. */
static void put_items(FILE *f, const char *items)
{
    for (const char *p = items; *p; p++) {
        if (*p == ',')
            fputs(", ", f);
        else
            fputc(*p, f);
    }
}

/* Key=value form, target last since it may hold commas. A cdrom is always
 * read-only to libxlutil, whatever access says. */
static int disk_spec(const struct sp_vm_disk *d, char **spec, struct sp_error *err)
{
    size_t len = 0;
    FILE *f = open_memstream(spec, &len);
    if (!f)
        return sp_error_errno(err, errno, "opening a memory stream");
    fprintf(f, "format=%s, vdev=%s, access=%s", d->format[0] ? d->format : "raw", d->vdev,
            d->readwrite && !d->cdrom ? "rw" : "ro");
    if (d->cdrom)
        fputs(", devtype=cdrom", f);
    if (d->extra && *d->extra) {
        fputs(", ", f);
        put_items(f, d->extra);
    }
    fprintf(f, ", target=%s", d->target ? d->target : "");
    if (fclose(f) != 0)
        return sp_error_set(err, SP_ENOMEM, "out of memory");
    return SP_OK;
}

/* A list key (disk, vif) with one quoted spec per line. */
static int put_spec_list(FILE *f, const char *key, const struct sp_vm_config *c, int n,
                         int (*make)(const struct sp_vm_config *c, int i, char **spec, struct sp_error *err),
                         struct sp_error *err)
{
    if (n == 0)
        return SP_OK;
    fprintf(f, "%s = [\n", key);
    for (int i = 0; i < n; i++) {
        char *spec = NULL;
        int rc = make(c, i, &spec, err);
        if (!rc)
            rc = check_quotable(key, spec, err);
        if (rc) {
            free(spec);
            return rc;
        }
        fputs("    ", f);
        put_quoted(f, spec);
        fputs(",\n", f);
        free(spec);
    }
    fputs("]\n", f);
    return SP_OK;
}

static int disk_list_item(const struct sp_vm_config *c, int i, char **spec, struct sp_error *err)
{
    int rc = check_disk(i + 1, &c->disks[i], err);
    return rc ? rc : disk_spec(&c->disks[i], spec, err);
}

static int put_disks(FILE *f, const struct sp_vm_config *c, struct sp_error *err)
{
    return put_spec_list(f, "disk", c, c->ndisks, disk_list_item, err);
}

/* xl splits a vif spec on every comma and trims each item: a value may not
 * hold a comma nor start or end with white space. */
static int check_vif_value(int idx, const char *key, const char *v, struct sp_error *err)
{
    size_t n = strlen(v);
    if (strchr(v, ',') || (n && (isspace((unsigned char)v[0]) || isspace((unsigned char)v[n - 1]))))
        return sp_error_set(err, SP_EUNSUPPORTED, "vif %d: %s `%s' cannot be written (comma or outer blank)", idx,
                            key, v);
    return SP_OK;
}

static int check_vif(int idx, const struct sp_vm_vif *v, struct sp_error *err)
{
    char mac[18];
    if (v->mac[0] && !parse_mac(v->mac, mac))
        return sp_error_set(err, SP_EINVAL, "vif %d: bad mac `%s'", idx, v->mac);
    int rc = check_vif_value(idx, "bridge", v->bridge, err);
    if (!rc)
        rc = check_vif_value(idx, "model", v->model, err);
    if (!rc)
        rc = check_vif_value(idx, "ip", v->ip, err);
    return rc;
}

static int vif_spec(const struct sp_vm_vif *v, char **spec, struct sp_error *err)
{
    size_t len = 0;
    FILE *f = open_memstream(spec, &len);
    if (!f)
        return sp_error_errno(err, errno, "opening a memory stream");
    const char *sep = "";
    const char *keys[] = {"mac", "bridge", "model", "ip"};
    const char *vals[] = {v->mac, v->bridge, v->model, v->ip};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (!vals[i][0])
            continue;
        fprintf(f, "%s%s=%s", sep, keys[i], vals[i]);
        sep = ", ";
    }
    if (v->extra && *v->extra) {
        fputs(sep, f);
        put_items(f, v->extra);
    }
    if (fclose(f) != 0)
        return sp_error_set(err, SP_ENOMEM, "out of memory");
    return SP_OK;
}

static int vif_list_item(const struct sp_vm_config *c, int i, char **spec, struct sp_error *err)
{
    int rc = check_vif(i + 1, &c->vifs[i], err);
    return rc ? rc : vif_spec(&c->vifs[i], spec, err);
}

static int put_vifs(FILE *f, const struct sp_vm_config *c, struct sp_error *err)
{
    return put_spec_list(f, "vif", c, c->nvifs, vif_list_item, err);
}

static int put_scalars(FILE *f, const struct sp_vm_config *c, struct sp_error *err)
{
    if (!c->name[0])
        return sp_error_set(err, SP_EINVAL, "the VM has no name");
    if (c->memory_mb <= 0)
        return sp_error_set(err, SP_EINVAL, "the VM has no memory size");
    int rc = put_key_string(f, "name", c->name, err);
    if (rc)
        return rc;
    if (c->has_uuid) {
        char u[SP_UUID_STR];
        sp_uuid_format(c->uuid, u);
        fprintf(f, "uuid = '%s'\n", u);
    }
    fprintf(f, "type = '%s'\n", sp_vm_type_name(c->type));
    fprintf(f, "memory = %ld\n", c->memory_mb);
    if (c->maxmem_mb > 0)
        fprintf(f, "maxmem = %ld\n", c->maxmem_mb);
    fprintf(f, "vcpus = %ld\n", c->vcpus > 0 ? c->vcpus : 1);
    if (c->maxvcpus > 0)
        fprintf(f, "maxvcpus = %ld\n", c->maxvcpus);
    /* xl reads boot only for HVM guests and ignores it otherwise; writing it
     * whenever it is set keeps a round trip exact. */
    if (c->boot[0])
        rc = put_key_string(f, "boot", c->boot, err);
    if (!rc && c->bios[0])
        rc = put_key_string(f, "bios", c->bios, err);
    return rc;
}

/* The VIFs' network names, when any VIF has one. */
static int put_networks(FILE *f, const struct sp_vm_config *c, struct sp_error *err)
{
    bool any = false;
    for (int i = 0; i < c->nvifs; i++)
        any = any || c->vifs[i].network[0];
    if (!any)
        return SP_OK;
    fprintf(f, "%s = [ ", NETWORKS_KEY);
    for (int i = 0; i < c->nvifs; i++) {
        int rc = check_quotable(NETWORKS_KEY, c->vifs[i].network, err);
        if (rc)
            return rc;
        put_quoted(f, c->vifs[i].network);
        fputs(i + 1 < c->nvifs ? ", " : " ]\n", f);
    }
    return SP_OK;
}

int sp_vmconfig_format(const struct sp_vm_config *c, char **out, struct sp_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    *out = NULL;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return sp_error_errno(err, errno, "opening a memory stream");
    int rc = put_scalars(f, c, err);
    if (!rc)
        rc = put_disks(f, c, err);
    if (!rc)
        rc = put_vifs(f, c, err);
    if (!rc)
        rc = put_networks(f, c, err);
    if (!rc && c->extra && *c->extra) {
        fputc('\n', f);
        fputs(c->extra, f);
        if (c->extra[strlen(c->extra) - 1] != '\n')
            fputc('\n', f);
    }
    if (fclose(f) != 0 && !rc)
        rc = sp_error_set(err, SP_ENOMEM, "out of memory formatting the VM config");
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    return SP_OK;
}

/* ---- copy, free, names -------------------------------------------------- */

/* strdup that keeps NULL as NULL; false on allocation failure. */
static bool dup_opt(char **dst, const char *src)
{
    *dst = NULL;
    if (!src)
        return true;
    *dst = strdup(src);
    return *dst != NULL;
}

static bool copy_devices(struct sp_vm_config *dst, const struct sp_vm_config *src)
{
    if (src->ndisks > 0) {
        dst->disks = calloc((size_t)src->ndisks, sizeof *dst->disks);
        if (!dst->disks)
            return false;
        dst->ndisks = src->ndisks;
        for (int i = 0; i < src->ndisks; i++) {
            dst->disks[i] = src->disks[i];
            dst->disks[i].target = dst->disks[i].extra = NULL; /* not shared if a copy fails */
            if (!dup_opt(&dst->disks[i].target, src->disks[i].target)
                || !dup_opt(&dst->disks[i].extra, src->disks[i].extra))
                return false;
        }
    }
    if (src->nvifs > 0) {
        dst->vifs = calloc((size_t)src->nvifs, sizeof *dst->vifs);
        if (!dst->vifs)
            return false;
        dst->nvifs = src->nvifs;
        for (int i = 0; i < src->nvifs; i++) {
            dst->vifs[i] = src->vifs[i];
            dst->vifs[i].extra = NULL;
            if (!dup_opt(&dst->vifs[i].extra, src->vifs[i].extra))
                return false;
        }
    }
    return true;
}

int sp_vmconfig_copy(struct sp_vm_config *dst, const struct sp_vm_config *src, struct sp_error *err)
{
    *dst = *src;
    dst->disks = NULL;
    dst->ndisks = 0;
    dst->vifs = NULL;
    dst->nvifs = 0;
    dst->extra = NULL;
    if (!dup_opt(&dst->extra, src->extra) || !copy_devices(dst, src)) {
        sp_vmconfig_free(dst);
        return sp_error_set(err, SP_ENOMEM, "out of memory copying the VM config");
    }
    return SP_OK;
}

void sp_vmconfig_free(struct sp_vm_config *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->ndisks; i++) {
        free(c->disks[i].target);
        free(c->disks[i].extra);
    }
    for (int i = 0; i < c->nvifs; i++)
        free(c->vifs[i].extra);
    free(c->disks);
    free(c->vifs);
    free(c->extra);
    memset(c, 0, sizeof *c);
}

const char *sp_vm_type_name(enum sp_vm_type t)
{
    switch (t) {
    case SP_VM_HVM: return "hvm";
    case SP_VM_PV: return "pv";
    case SP_VM_PVH: return "pvh";
    }
    return "unknown";
}

bool sp_vm_uefi(const struct sp_vm_config *c)
{
    return c->type == SP_VM_HVM && strcmp(c->bios, "ovmf") == 0;
}

bool sp_vm_mac_unset(const char *mac)
{
    for (const char *p = mac; *p; p++)
        if (*p != '0' && *p != ':' && *p != '-')
            return false;
    return true;
}

int sp_vm_mac_new(char out[18], struct sp_error *err)
{
    uint8_t b[3];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n < 0 && errno != EINTR)
            return sp_error_errno(err, errno, "getrandom");
        got += n > 0 ? (size_t)n : 0;
    }
    snprintf(out, 18, "00:16:3e:%02x:%02x:%02x", b[0], b[1], b[2]);
    return SP_OK;
}

void sp_vm_free(struct sp_vm *vm)
{
    if (!vm)
        return;
    sp_vmconfig_free(&vm->cfg);
    free(vm->vbd_vdi);
    vm->vbd_vdi = NULL;
}
