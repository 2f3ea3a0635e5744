/* The OVA tar over libarchive: GNU format writer, any-tar reader. */
#include "archive/ova.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/instream.h"
#include "archive/tar_out.h"
#include "base/util.h"

bool sp_ova_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > SP_OVA_NAME_MAX || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '/' || c == '\\' || c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

bool sp_ova_has_ext(const char *name, const char *ext)
{
    size_t n = strlen(name), k = strlen(ext);
    return n > k && strcasecmp(name + n - k, ext) == 0;
}

/* ---- writing ------------------------------------------------------------ */

struct sp_ova_writer {
    struct sp_tar_out *t;
    int64_t mtime;
    bool failed, closed;
    char member[SP_OVA_NAME_MAX + 1];
    uint64_t left;         /* bytes the current member still needs */
};

int sp_ova_writer_open(int fd, int64_t mtime, struct sp_ova_writer **out, struct sp_error *err)
{
    *out = NULL;
    if (mtime < 0)
        return sp_error_set(err, SP_EINVAL, "mtime %lld does not fit a tar header", (long long)mtime);
    struct sp_ova_writer *w = sp_zalloc(sizeof *w, err);
    if (!w)
        return SP_ENOMEM;
    w->mtime = mtime;
    int rc = sp_tar_out_open(fd, SP_TAR_GNU, SP_TAR_PLAIN, 0, "ova writer", &w->t, err);
    if (rc != SP_OK) {
        free(w);
        return rc;
    }
    *out = w;
    return SP_OK;
}

int sp_ova_begin(struct sp_ova_writer *w, const char *name, uint64_t size, struct sp_error *err)
{
    if (w->failed || w->closed)
        return sp_error_set(err, SP_EINVAL, "%s: the archive writer has stopped", name);
    if (w->left)
        return sp_error_set(err, SP_EINVAL, "%s: %s is %llu bytes short", name, w->member,
                            (unsigned long long)w->left);
    if (!sp_ova_name_ok(name))
        return sp_error_set(err, SP_EINVAL, "%s: not a member name for an OVA", name);
    snprintf(w->member, sizeof w->member, "%s", name);
    int rc = sp_tar_out_begin(w->t, name, size, w->mtime, 0644, err);
    if (rc != SP_OK) {
        w->failed = true;
        return rc;
    }
    w->left = size;
    return SP_OK;
}

int sp_ova_write(struct sp_ova_writer *w, const void *buf, size_t len, struct sp_error *err)
{
    if (w->failed)
        return sp_error_set(err, SP_EINVAL, "%s: the archive writer has stopped", w->member);
    if (len > w->left) {
        w->failed = true;
        return sp_error_set(err, SP_EINVAL, "%s: more bytes than its header says", w->member);
    }
    int rc = sp_tar_out_data(w->t, buf, len, err);
    if (rc != SP_OK) {
        w->failed = true;
        return rc;
    }
    w->left -= len;
    return SP_OK;
}

int sp_ova_write_member(struct sp_ova_writer *w, const char *name, const void *data, size_t len,
                        struct sp_error *err)
{
    int rc = sp_ova_begin(w, name, len, err);
    return rc == SP_OK ? sp_ova_write(w, data, len, err) : rc;
}

int sp_ova_writer_close(struct sp_ova_writer *w, struct sp_error *err)
{
    if (w->failed || w->closed)
        return sp_error_set(err, SP_EINVAL, "ova: the archive writer has stopped");
    if (w->left)
        return sp_error_set(err, SP_EINVAL, "%s: %llu bytes short", w->member, (unsigned long long)w->left);
    w->closed = true;
    int rc = sp_tar_out_close(w->t, err);
    if (rc != SP_OK)
        w->failed = true;
    return rc;
}

void sp_ova_writer_free(struct sp_ova_writer *w)
{
    if (!w)
        return;
    sp_tar_out_free(w->t);
    free(w);
}

/* ---- reading ------------------------------------------------------------ */

struct sp_ova_reader {
    struct archive *a;
    char *label;
    char member[SP_OVA_NAME_MAX + 1];
    uint64_t size, got;
    bool in_member;
};

static int rerr(struct sp_ova_reader *r, const char *member, struct sp_error *err)
{
    const char *m = archive_error_string(r->a);
    if (member)
        return sp_error_set(err, SP_EFORMAT, "%s: %s: %s", r->label, member, m ? m : "read error");
    return sp_error_set(err, SP_EFORMAT, "%s: %s", r->label, m ? m : "read error");
}

int sp_ova_reader_open(struct sp_instream *in, const char *label, struct sp_ova_reader **out, struct sp_error *err)
{
    *out = NULL;
    struct sp_ova_reader *r = sp_zalloc(sizeof *r, err);
    if (!r)
        return SP_ENOMEM;
    r->label = strdup(label ? label : "ova");
    r->a = archive_read_new();
    if (!r->label || !r->a) {
        sp_ova_reader_free(r);
        return sp_error_set(err, SP_ENOMEM, "out of memory");
    }
    /* Every tar flavour (ustar, GNU base-256, PAX); a gzip'd OVA too, as
     * virt-v2v takes it. */
    if (archive_read_support_format_tar(r->a) != ARCHIVE_OK || archive_read_support_filter_gzip(r->a) < ARCHIVE_WARN ||
        sp_instream_archive_open(r->a, in) != ARCHIVE_OK) {
        int rc = rerr(r, NULL, err);
        sp_ova_reader_free(r);
        return rc;
    }
    *out = r;
    return SP_OK;
}

/* A printable copy of a name for a message. */
static void quote_name(const char *s, char *out, size_t len)
{
    size_t i = 0;
    for (; s && s[i] && i + 1 < len; i++)
        out[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    out[i] = '\0';
}

int sp_ova_next(struct sp_ova_reader *r, char name[SP_OVA_NAME_MAX + 1], uint64_t *size, bool *eof,
                struct sp_error *err)
{
    *eof = false;
    r->in_member = false;
    struct archive_entry *e;
    int st = archive_read_next_header(r->a, &e);
    if (st == ARCHIVE_EOF) {
        *eof = true;
        return SP_OK;
    }
    if (st < ARCHIVE_WARN) {
        /* the header that failed is the one after the last member read */
        char after[SP_OVA_NAME_MAX + 8];
        snprintf(after, sizeof after, "after %s", r->member);
        return rerr(r, r->member[0] ? after : NULL, err);
    }
    const char *raw = archive_entry_pathname(e);
    char q[SP_OVA_NAME_MAX + 1];
    quote_name(raw ? raw : "(unnamed)", q, sizeof q);
    const char *flat = raw ? raw : "";
    while (strncmp(flat, "./", 2) == 0)
        flat += 2;
    if (!sp_ova_name_ok(flat))
        return sp_error_set(err, SP_EFORMAT, "%s: member '%s': not a plain file name (a path, '..' or empty)",
                            r->label, q);
    if (archive_entry_filetype(e) != AE_IFREG)
        return sp_error_set(err, SP_EFORMAT, "%s: member '%s': not a regular file", r->label, q);
    la_int64_t sz = archive_entry_size(e);
    if (sz < 0)
        return sp_error_set(err, SP_EFORMAT, "%s: member '%s': bad size", r->label, q);
    snprintf(r->member, sizeof r->member, "%s", flat);
    snprintf(name, SP_OVA_NAME_MAX + 1, "%s", flat);
    r->size = (uint64_t)sz;
    r->got = 0;
    r->in_member = true;
    *size = r->size;
    return SP_OK;
}

int sp_ova_read(struct sp_ova_reader *r, void *buf, size_t len, size_t *got, struct sp_error *err)
{
    *got = 0;
    if (!r->in_member || r->got == r->size || len == 0)
        return SP_OK;
    la_ssize_t n = archive_read_data(r->a, buf, (size_t)sp_min_u64(len, r->size - r->got));
    if (n < 0)
        return rerr(r, r->member, err);
    if (n == 0)
        return sp_error_set(err, SP_EFORMAT, "%s: %s: truncated (%llu of %llu bytes)", r->label, r->member,
                            (unsigned long long)r->got, (unsigned long long)r->size);
    r->got += (uint64_t)n;
    *got = (size_t)n;
    return SP_OK;
}

void sp_ova_reader_free(struct sp_ova_reader *r)
{
    if (!r)
        return;
    if (r->a)
        archive_read_free(r->a);
    free(r->label);
    free(r);
}
