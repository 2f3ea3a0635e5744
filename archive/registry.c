/* The archive table: every reader and writer, the input's opening, and the
 * choice of a reader by bid. An input is a file, stdin ("-"), or an
 * unpacked OVF (a folder or an .ovf); which archive it is, the readers tell
 * from its first bytes and its first real tar member's name (behind any
 * PAX or GNU long-name headers: COT, Python's tarfile and GNU tar
 * --format=posix put one before every member). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/archive.h"
#include "archive/ova.h"
#include "base/sniff.h"
#include "base/util.h"
#include "disk/registry.h"

/* A tar header: the member's name is its first 100 bytes. */
#define TAR_HEADER 512u
#define TAR_NAME 100u
/* The longest first member name a bid sees (PAX and GNU names may exceed
 * the header's 100 bytes); a longer one is cut, which only a bid on its
 * extension could notice. */
#define BID_NAME_MAX 1024u

static const struct sp_archive_read_format *const READERS[] = {&sp_archive_ova_reader, &sp_archive_xva_reader, NULL};
static const struct sp_archive_write_format *const WRITERS[] = {&sp_archive_xva_writer, &sp_archive_ova_writer, NULL};

/* ---- readers --------------------------------------------------------------- */

const struct sp_archive_read_format *sp_archive_bid_best(const struct sp_archive_bid *b)
{
    const struct sp_archive_read_format *best = NULL;
    int score = SP_ARCHIVE_BID_NO;
    for (int i = 0; READERS[i]; i++) {
        int s = READERS[i]->bid(b);
        if (s > score) {
            score = s;
            best = READERS[i];
        }
    }
    return best;
}

static const struct sp_archive_read_format *reader_find(const char *name)
{
    for (int i = 0; READERS[i]; i++)
        if (strcasecmp(READERS[i]->name, name) == 0)
            return READERS[i];
    return NULL;
}

bool sp_archive_path_unpacked(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return true;
    return sp_ova_has_ext(path, ".ovf");
}

static int open_stream(struct sp_archive_reader *r, const char *path, struct sp_error *err)
{
    bool dash = strcmp(path, "-") == 0;
    int fd = dash ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sp_error_errno(err, errno, "%s", path);
    r->own_fd = !dash;
    int rc = sp_instream_init(&r->own_in, fd, r->label, err);
    if (rc != SP_OK) {
        if (r->own_fd)
            close(fd);
        r->own_fd = false;
        r->own_in.fd = -1;
        return rc;
    }
    r->in = &r->own_in;
    return SP_OK;
}

/* The first member's name from the head: the real one when libarchive can
 * tell it from these bytes, else the first header's name field (a V7
 * header libarchive does not take, a head cut short). */
static void first_name(const uint8_t *head, size_t len, char name[BID_NAME_MAX])
{
    if (sp_sniff_tar_first_name(head, len, name, BID_NAME_MAX) || len < TAR_HEADER)
        return;
    memcpy(name, head, TAR_NAME);
    name[TAR_NAME] = '\0';
}

/* What a bid sees of head (len bytes, complete: the input's whole head). */
static void bid_of(const uint8_t *head, size_t len, char name[BID_NAME_MAX], struct sp_archive_bid *b)
{
    memset(b, 0, sizeof *b);
    b->head = head;
    b->head_len = len;
    first_name(head, len, name);
    b->first_member = name;
}

/* Reads the stream's head further while extension headers hide the first
 * member's name (and the input and the peek limit allow). */
static int peek_first_member(struct sp_instream *in, const char *label, struct sp_error *err)
{
    char name[BID_NAME_MAX];
    while (!sp_sniff_tar_first_name(in->head, in->head_len, name, sizeof name) && !in->head_eof &&
           in->head_len < SP_INSTREAM_PEEK_MAX && sp_sniff_tar(in->head, in->head_len)) {
        int rc = sp_instream_peek(in, 4 * in->head_len, label, err);
        if (rc != SP_OK)
            return rc;
    }
    return SP_OK;
}

int sp_archive_bid_file(const char *path, int *score, struct sp_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sp_error_errno(err, errno, "%s", path);
    uint8_t *head = sp_alloc(SP_INSTREAM_PEEK_MAX, err);
    ssize_t n = head ? pread(fd, head, SP_INSTREAM_PEEK_MAX, 0) : 0;
    int rc = !head ? SP_ENOMEM : n < 0 ? sp_error_errno(err, errno, "%s", path) : SP_OK;
    close(fd);
    if (rc == SP_OK) {
        char name[BID_NAME_MAX];
        struct sp_archive_bid b;
        bid_of(head, (size_t)n, name, &b);
        const struct sp_archive_read_format *f = sp_archive_bid_best(&b);
        *score = f ? f->bid(&b) : SP_ARCHIVE_BID_NO;
    }
    free(head);
    return rc;
}

/* The bytes of a disk image where only the XVA reader's "anything else"
 * bid: libarchive would say no more than "Unrecognized archive format".
 * Say what they are; from a stream (a pipe, S3) convert cannot take one
 * either, as every format but raw is read by seeking (a VHD's footer and
 * BAT, qcow2's tables). A raw image looks like anything: left to the
 * reader. */
static int refuse_disk_image(const struct sp_archive_reader *r, struct sp_error *err)
{
    struct sp_probe p = {.head = r->in->head, .head_len = r->in->head_len};
    const struct sp_disk_driver *drv = sp_disk_probe(&p);
    if (strcmp(drv->name, "raw") == 0)
        return SP_OK;
    struct stat st;
    if (fstat(r->in->fd, &st) == 0 && S_ISREG(st.st_mode))
        return sp_error_set(err, SP_EUNSUPPORTED, "%s: a %s disk image, not an archive (`snapport convert` "
                            "wraps one in an XVA or OVA)", r->label, drv->name);
    return sp_error_set(err, SP_EUNSUPPORTED, "%s: a %s disk image, not an archive; convert takes a disk image "
                        "from a file only, not from a pipe or S3 (%s is read by seeking: download it first)",
                        r->label, drv->name, drv->name);
}

/* The format given (checked against the input), else the best bid. */
static int choose(struct sp_archive_reader *r, const char *format, struct sp_error *err)
{
    struct sp_archive_bid b;
    char name[BID_NAME_MAX];
    int rc = r->in ? peek_first_member(r->in, r->label, err) : SP_OK;
    if (rc != SP_OK)
        return rc;
    bid_of(r->in ? r->in->head : NULL, r->in ? r->in->head_len : 0, name, &b);
    b.unpacked = r->in == NULL;
    if (!format) {
        r->format = sp_archive_bid_best(&b);
        if (!r->format)
            return sp_error_set(err, SP_EFORMAT, "%s: not an archive snapport reads (xva or ova)", r->label);
        return r->in && r->format->bid(&b) <= SP_ARCHIVE_BID_FALLBACK ? refuse_disk_image(r, err) : SP_OK;
    }
    r->format = reader_find(format);
    if (!r->format)
        return sp_error_set(err, SP_EINVAL, "%s: unknown archive format '%s' (xva or ova)", r->label, format);
    if (b.unpacked && r->format->bid(&b) == SP_ARCHIVE_BID_NO)
        return sp_error_set(err, SP_EINVAL, "%s: a folder or .ovf is not an XVA", r->path);
    return SP_OK;
}

int sp_archive_reader_open(const char *path, const char *format, struct sp_archive_reader **out,
                           struct sp_error *err)
{
    *out = NULL;
    struct sp_archive_reader *r = sp_zalloc(sizeof *r, err);
    if (!r)
        return SP_ENOMEM;
    r->own_in.fd = -1;
    r->path = path;
    r->label = strcmp(path, "-") == 0 ? "stdin" : path;
    int rc = SP_OK;
    if (strcmp(path, "-") == 0 || !sp_archive_path_unpacked(path))
        rc = open_stream(r, path, err);
    if (rc == SP_OK)
        rc = choose(r, format, err);
    if (rc == SP_OK)
        rc = r->format->open(r, err);
    if (rc != SP_OK) {
        sp_archive_reader_free(r);
        return rc;
    }
    *out = r;
    return SP_OK;
}

int sp_archive_next_disk(struct sp_archive_reader *r, int *k, struct sp_error *err)
{
    return r->format->next_disk(r, k, err);
}

int sp_archive_read_disk(struct sp_archive_reader *r, struct sp_disk *target, struct sp_error *err)
{
    return r->format->read_disk(r, target, err);
}

int sp_archive_finish(struct sp_archive_reader *r, struct sp_error *err)
{
    return r->format->finish(r, err);
}

void sp_archive_info(const struct sp_archive_reader *r, struct sp_archive_info *info)
{
    memset(info, 0, sizeof *info);
    snprintf(info->format, sizeof info->format, "%s", r->format->name);
    info->have_vm = true; /* a reader exists only once open read the VM */
    r->format->info(r, info);
}

void sp_archive_reader_free(struct sp_archive_reader *r)
{
    if (!r)
        return;
    if (r->format && r->priv)
        r->format->free(r);
    sp_vm_free(&r->vm);
    sp_notes_free(&r->notes);
    free(r->disks);
    if (r->own_fd && r->own_in.fd >= 0)
        close(r->own_in.fd);
    if (r->in)
        sp_instream_free(&r->own_in);
    free(r);
}

/* ---- writers --------------------------------------------------------------- */

const char *sp_archive_format_name(enum sp_archive_format f)
{
    return f == SP_ARCHIVE_OVA ? "ova" : "xva";
}

const struct sp_archive_write_format *sp_archive_writer_find(const char *name)
{
    for (int i = 0; WRITERS[i]; i++)
        if (strcasecmp(WRITERS[i]->name, name) == 0)
            return WRITERS[i];
    return NULL;
}

const struct sp_archive_write_format *sp_archive_writer_for_name(const char *path)
{
    const char *ext = sp_path_extension(path);
    for (int i = 0; ext && WRITERS[i]; i++)
        for (const char *const *e = WRITERS[i]->extensions; e && *e; e++)
            if (strcasecmp(ext, *e) == 0)
                return WRITERS[i];
    return NULL;
}

int sp_archive_writer_begin(const struct sp_archive_write_format *f, const struct sp_vm *vm, const char *vm_name,
                            const struct sp_archive_disk *disks, int n, const struct sp_archive_write_opts *o,
                            int fd, struct sp_archive_writer **out, struct sp_error *err)
{
    *out = NULL;
    struct sp_archive_writer *w = sp_zalloc(sizeof *w, err);
    if (!w)
        return SP_ENOMEM;
    w->format = f;
    int rc = f->begin(w, vm, vm_name, disks, n, o, fd, err);
    if (rc != SP_OK) {
        sp_archive_writer_free(w);
        return rc;
    }
    *out = w;
    return SP_OK;
}

bool sp_archive_carries(const struct sp_archive_writer *w, int k)
{
    return w->format->carries(w, k);
}

int sp_archive_add_disk(struct sp_archive_writer *w, int k, struct sp_disk *disk, struct sp_error *err)
{
    return w->format->add_disk(w, k, disk, err);
}

int sp_archive_writer_finish(struct sp_archive_writer *w, struct sp_error *err)
{
    return w->format->finish(w, err);
}

void sp_archive_writer_free(struct sp_archive_writer *w)
{
    if (!w)
        return;
    if (w->priv)
        w->format->free(w);
    free(w);
}

/* ---- disks ----------------------------------------------------------------- */

int sp_archive_disks_new(int n, struct sp_archive_disk **out, struct sp_error *err)
{
    *out = sp_zalloc(sizeof **out * (size_t)(n + 1), err);
    if (!*out)
        return SP_ENOMEM;
    for (int i = 0; i < n; i++) {
        int rc = sp_uuid_generate_str((*out)[i].uuid, err);
        if (rc != SP_OK)
            return rc;
    }
    return SP_OK;
}

int sp_archive_disk_find(const struct sp_archive_disk *disks, int n, const char *uuid)
{
    for (int k = 0; uuid[0] && k < n; k++)
        if (strcmp(disks[k].uuid, uuid) == 0)
            return k;
    return -1;
}
