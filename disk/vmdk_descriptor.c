/* The VMDK text descriptor: the one our streamOptimized writer embeds, and
 * (for reading) the descriptor files qemu-img and VMware write next to
 * their extent files. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "disk/vmdk_internal.h"

bool sp_vmdk_plain_token(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (const char *p = s; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

/* The embedded descriptor, NUL-padded to VMDK_DESC_SECTORS. The CID is derived
 * from the capacity so that the same disk gives the same bytes. */
int sp_vmdk_descriptor_build(uint8_t *d, uint64_t capacity, const char *adapter, const char *name,
                             struct sp_error *err)
{
    uint32_t cid = 2166136261u; /* FNV-1a over the capacity */
    for (int i = 0; i < 8; i++) {
        cid ^= (uint8_t)(capacity >> (8 * i));
        cid *= 16777619u;
    }
    if (cid >= 0xfffffffeu) /* ffffffff and fffffffe mean "no parent" / "invalid" */
        cid = 0x12345678u;
    bool ide = strcmp(adapter, "ide") == 0;
    uint64_t heads = ide ? 16 : 255, secs = 63, cyl_max = ide ? 16383 : 65535;
    uint64_t cyl = sp_min_u64(cyl_max, sp_div_round_up(capacity, heads * secs));
    size_t size = VMDK_DESC_SECTORS * VMDK_SECTOR;
    memset(d, 0, size);
    int n = snprintf((char *)d, size,
                     "# Disk DescriptorFile\n"
                     "version=1\n"
                     "encoding=\"UTF-8\"\n"
                     "CID=%08" PRIx32 "\n"
                     "parentCID=ffffffff\n"
                     "createType=\"streamOptimized\"\n"
                     "\n"
                     "# Extent description\n"
                     "RW %" PRIu64 " SPARSE \"%s\"\n"
                     "\n"
                     "# The Disk Data Base\n"
                     "#DDB\n"
                     "\n"
                     "ddb.virtualHWVersion = \"4\"\n"
                     "ddb.geometry.cylinders = \"%" PRIu64 "\"\n"
                     "ddb.geometry.heads = \"%" PRIu64 "\"\n"
                     "ddb.geometry.sectors = \"%" PRIu64 "\"\n"
                     "ddb.adapterType = \"%s\"\n"
                     "ddb.toolsVersion = \"2147483647\"\n",
                     cid, capacity, name, cyl, heads, secs, adapter);
    if (n < 0 || (size_t)n >= size)
        return sp_error_set(err, SP_EINVAL, "vmdk descriptor too long");
    return SP_OK;
}

/* ------------------------------------------------------------------ */
/* Parsing */

#define NO_PARENT_CID "ffffffff"     /* parentCID of a disk without a parent */

struct parse {
    struct vmdk_descriptor *d;
    bool strict;
    size_t cap;                       /* of d->ext */
    bool seen_type;
};

/* The rest of a line, its blanks skipped. */
struct cursor {
    const char *p, *end;
};

static bool blank(char c) { return c == ' ' || c == '\t'; }

static void skip_blanks(struct cursor *c)
{
    while (c->p < c->end && blank(*c->p))
        c->p++;
}

/* The next run of non-blank bytes: its length (0 at the end). */
static size_t next_word(struct cursor *c, const char **w)
{
    skip_blanks(c);
    *w = c->p;
    while (c->p < c->end && !blank(*c->p))
        c->p++;
    return (size_t)(c->p - *w);
}

static bool word_is(const char *w, size_t n, const char *s)
{
    return strlen(s) == n && memcmp(w, s, n) == 0;
}

/* A decimal number of n digits (no sign), without overflow. */
static bool decimal(const char *w, size_t n, uint64_t *v)
{
    *v = 0;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (w[i] < '0' || w[i] > '9' || *v > (UINT64_MAX - (uint64_t)(w[i] - '0')) / 10)
            return false;
        *v = *v * 10 + (uint64_t)(w[i] - '0');
    }
    return true;
}

static int bad_line(struct parse *ps, int code, int no, const char *what, struct sp_error *err)
{
    if (!ps->strict)
        return SP_OK; /* an embedded descriptor: the line is ignored */
    return sp_error_set(err, code, "line %d: %s", no, what);
}

static bool extent_type(const char *w, size_t n, enum vmdk_extent_type *t)
{
    static const struct {
        const char *name;
        enum vmdk_extent_type type;
    } TYPES[] = {{"SPARSE", VMDK_EXT_SPARSE}, {"FLAT", VMDK_EXT_FLAT}, {"ZERO", VMDK_EXT_ZERO},
                 {"VMFS", VMDK_EXT_VMFS}};
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
        if (word_is(w, n, TYPES[i].name)) {
            *t = TYPES[i].type;
            return true;
        }
    return false;
}

/* `"name"` at the cursor, if any: *name points into the line. */
static bool quoted_name(struct cursor *c, const char **name, size_t *len)
{
    skip_blanks(c);
    *name = NULL;
    *len = 0;
    if (c->p == c->end || *c->p != '"')
        return true;
    const char *close = memchr(c->p + 1, '"', (size_t)(c->end - c->p - 1));
    if (!close)
        return false;
    *name = c->p + 1;
    *len = (size_t)(close - *name);
    c->p = close + 1;
    return true;
}

static int add_extent(struct parse *ps, const struct vmdk_extent_line *e, const char *name, size_t len,
                      struct sp_error *err)
{
    struct vmdk_descriptor *d = ps->d;
    if (d->n == VMDK_EXTENTS_MAX)
        return sp_error_set(err, SP_ELIMIT, "line %d: more than %u extents", e->line, VMDK_EXTENTS_MAX);
    if (e->sectors > UINT64_MAX / VMDK_SECTOR - d->sectors)
        return sp_error_set(err, SP_EFORMAT, "line %d: the extents add up to more than 2^64 bytes", e->line);
    if (d->n == ps->cap) {
        size_t cap = ps->cap ? 2 * ps->cap : 8;
        struct vmdk_extent_line *p = realloc(d->ext, cap * sizeof *p);
        if (!p)
            return sp_error_set(err, SP_ENOMEM, "out of memory");
        d->ext = p;
        ps->cap = cap;
    }
    struct vmdk_extent_line *x = &d->ext[d->n];
    *x = *e;
    x->file = NULL;
    if (name) {
        x->file = strndup(name, len);
        if (!x->file)
            return sp_error_set(err, SP_ENOMEM, "out of memory");
    }
    d->n++;
    d->sectors += e->sectors;
    return SP_OK;
}

/* What each type takes: ZERO no file, SPARSE a file and no offset, FLAT
 * and VMFS a file and an optional first sector (0 when absent). */
static const char *extent_shape_error(const struct vmdk_extent_line *e, bool named, bool has_offset)
{
    if (e->type == VMDK_EXT_ZERO)
        return named || has_offset ? "a ZERO extent names no file" : NULL;
    if (!named)
        return "extent without a file name";
    if (e->type == VMDK_EXT_SPARSE && has_offset)
        return "a SPARSE extent takes no offset";
    return NULL;
}

/* `RW|RDONLY|NOACCESS <sectors> SPARSE|FLAT|ZERO|VMFS ["file" [offset]]` */
static int extent_line(struct parse *ps, struct cursor *c, int no, struct sp_error *err)
{
    struct vmdk_extent_line e = {.line = no};
    const char *w, *name;
    size_t n = next_word(c, &w), len;
    e.noaccess = word_is(w, n, "NOACCESS");
    n = next_word(c, &w);
    if (!decimal(w, n, &e.sectors) || e.sectors == 0)
        return bad_line(ps, SP_EFORMAT, no, "extent size is not a number of sectors above 0", err);
    n = next_word(c, &w);
    if (!extent_type(w, n, &e.type))
        return bad_line(ps, SP_EUNSUPPORTED, no, "extent type not supported (SPARSE, FLAT, ZERO, VMFS)", err);
    if (!quoted_name(c, &name, &len))
        return bad_line(ps, SP_EFORMAT, no, "file name without its closing quote", err);
    n = next_word(c, &w);
    bool has_offset = n > 0;
    if (has_offset && !decimal(w, n, &e.offset))
        return bad_line(ps, SP_EFORMAT, no, "extent offset is not a number of sectors", err);
    if (next_word(c, &w) > 0)
        return bad_line(ps, SP_EFORMAT, no, "extent line goes on after its offset", err);
    const char *shape = extent_shape_error(&e, name != NULL, has_offset);
    if (shape)
        return bad_line(ps, SP_EFORMAT, no, shape, err);
    if (name && (len == 0 || len > VMDK_EXTENT_NAME_MAX))
        return bad_line(ps, SP_EFORMAT, no, "extent file name empty or longer than 255 bytes", err);
    return add_extent(ps, &e, name, len, err);
}

static bool is_access(const char *p, const char *end)
{
    struct cursor c = {p, end};
    const char *w;
    size_t n = next_word(&c, &w);
    return word_is(w, n, "RW") || word_is(w, n, "RDONLY") || word_is(w, n, "NOACCESS");
}

/* A key: letters, digits, '.', '_' (ddb.geometry.heads). */
static bool key_ok(const char *p, const char *end)
{
    if (p == end)
        return false;
    for (; p < end; p++)
        if (!(*p == '.' || *p == '_' || (*p >= '0' && *p <= '9') || ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z')))
            return false;
    return true;
}

/* `key = value` or `key="value"`; only the keys that decide how the disk
 * is read are kept. */
static int key_line(struct parse *ps, const char *p, const char *eq, const char *end, int no, struct sp_error *err)
{
    const char *kend = eq;
    while (kend > p && blank(kend[-1]))
        kend--;
    if (!key_ok(p, kend))
        return bad_line(ps, SP_EFORMAT, no, "not a comment, a key or an extent line", err);
    struct cursor v = {eq + 1, end};
    skip_blanks(&v);
    if (v.end - v.p >= 2 && *v.p == '"' && v.end[-1] == '"') {
        v.p++;
        v.end--;
    }
    int vlen = (int)(v.end - v.p);
    struct vmdk_descriptor *d = ps->d;
    size_t klen = (size_t)(kend - p);
    if (word_is(p, klen, "createType")) {
        if (ps->seen_type)
            return bad_line(ps, SP_EFORMAT, no, "second createType", err);
        ps->seen_type = true;
        snprintf(d->create_type, sizeof d->create_type, "%.*s", vlen, v.p);
    } else if (word_is(p, klen, "parentFileNameHint") && vlen > 0) {
        snprintf(d->parent, sizeof d->parent, "parentFileNameHint \"%.*s\"", vlen, v.p);
    } else if (word_is(p, klen, "parentCID") && !d->parent[0] &&
               !(vlen == (int)strlen(NO_PARENT_CID) && strncasecmp(v.p, NO_PARENT_CID, (size_t)vlen) == 0)) {
        snprintf(d->parent, sizeof d->parent, "parentCID %.*s", vlen, v.p);
    }
    return SP_OK;
}

static bool has_control(const char *p, const char *end)
{
    for (; p < end; p++)
        if ((unsigned char)*p < 0x20 && *p != '\t')
            return true;
    return false;
}

/* One line, its line break left out. */
static int parse_line(struct parse *ps, const char *p, const char *end, int no, struct sp_error *err)
{
    while (p < end && blank(*p))
        p++;
    while (end > p && (blank(end[-1]) || end[-1] == '\r'))
        end--;
    if (p == end || *p == '#')
        return SP_OK;
    if (has_control(p, end))
        return bad_line(ps, SP_EFORMAT, no, "control character in the text", err);
    if (is_access(p, end)) {
        struct cursor c = {p, end};
        return extent_line(ps, &c, no, err);
    }
    const char *eq = memchr(p, '=', (size_t)(end - p));
    if (!eq)
        return bad_line(ps, SP_EFORMAT, no, "not a comment, a key or an extent line", err);
    return key_line(ps, p, eq, end, no, err);
}

int sp_vmdk_descriptor_parse(const char *text, size_t len, bool strict, struct vmdk_descriptor **out,
                             struct sp_error *err)
{
    struct parse ps = {.strict = strict};
    ps.d = sp_zalloc(sizeof *ps.d, err);
    if (!ps.d)
        return SP_ENOMEM;
    const char *nul = memchr(text, '\0', len);
    const char *p = text, *end = nul ? nul : text + len;
    int rc = SP_OK;
    for (int no = 1; rc == SP_OK && p < end; no++) {
        if (no > (int)VMDK_DESC_LINES_MAX) {
            rc = sp_error_set(err, SP_ELIMIT, "more than %u lines", VMDK_DESC_LINES_MAX);
            break;
        }
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        rc = parse_line(&ps, p, eol, no, err);
        p = nl ? nl + 1 : end;
    }
    if (rc != SP_OK) {
        sp_vmdk_descriptor_free(ps.d);
        return rc;
    }
    *out = ps.d;
    return SP_OK;
}

void sp_vmdk_descriptor_free(struct vmdk_descriptor *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->ext[i].file);
    free(d->ext);
    free(d);
}
