/* S3's answers as XML (s3_xml.h). Every search is bounded by the element
 * it is in, so a part without a <Size> never takes the next part's. */
#include "s3/s3_xml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG_MAX 64  /* the longest tag name asked for, with its brackets */

struct span {
    const char *p, *end;  /* [p, end) */
};

/* The contents of the first <tag>...</tag> in in; false if there is none. */
static bool element(struct span in, const char *tag, struct span *out)
{
    char open[TAG_MAX], close[TAG_MAX];
    int no = snprintf(open, sizeof open, "<%s>", tag), nc = snprintf(close, sizeof close, "</%s>", tag);
    if (no < 0 || nc < 0 || (size_t)nc >= sizeof close || in.end < in.p)
        return false;
    const char *a = memmem(in.p, (size_t)(in.end - in.p), open, (size_t)no);
    if (!a)
        return false;
    a += no;
    const char *b = memmem(a, (size_t)(in.end - a), close, (size_t)nc);
    if (!b)
        return false;
    *out = (struct span){a, b};
    return true;
}

static const struct {
    const char *name;
    char ch;
} ENTITIES[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};

/* The text of s, entities decoded, into out; "" if it does not fit. */
static void decode(struct span s, char *out, size_t outsz)
{
    size_t n = 0;
    for (const char *p = s.p; p < s.end; p++) {
        char ch = *p;
        for (size_t i = 0; ch == '&' && i < sizeof ENTITIES / sizeof ENTITIES[0]; i++) {
            size_t len = strlen(ENTITIES[i].name);
            if ((size_t)(s.end - p) >= len && memcmp(p, ENTITIES[i].name, len) == 0) {
                ch = ENTITIES[i].ch;
                p += len - 1;
                break;
            }
        }
        if (n + 1 >= outsz) {
            n = 0;
            break;
        }
        out[n++] = ch;
    }
    if (outsz)
        out[n] = '\0';
}

static void span_text(struct span in, const char *tag, char *out, size_t outsz)
{
    struct span e;
    if (outsz)
        out[0] = '\0';
    if (element(in, tag, &e))
        decode(e, out, outsz);
}

static struct span whole(const char *xml)
{
    return xml ? (struct span){xml, xml + strlen(xml)} : (struct span){"", ""};
}

void sp_s3_xml_text(const char *xml, const char *tag, char *out, size_t outsz)
{
    span_text(whole(xml), tag, out, outsz);
}

/* IsTruncated and the markers of a page. */
static void page(struct span in, const char *next, const char *next_id, struct sp_s3_page *pg)
{
    char more[8];
    span_text(in, "IsTruncated", more, sizeof more);
    pg->truncated = strcmp(more, "true") == 0;
    span_text(in, next, pg->next, sizeof pg->next);
    pg->next_id[0] = '\0';
    if (next_id)
        span_text(in, next_id, pg->next_id, sizeof pg->next_id);
}

/* Whether text is a decimal number in [lo, hi], into *v. */
static bool number(const char *text, unsigned long long lo, unsigned long long hi, unsigned long long *v)
{
    char *end;
    if (text[0] < '0' || text[0] > '9')
        return false;
    *v = strtoull(text, &end, 10);
    return !*end && *v >= lo && *v <= hi;
}

/* One part's number, ETag and size into the arrays; an unusable part is
 * skipped (a resumed upload sends it again). */
static void one_part(struct span part, char (*etags)[SP_S3_ETAG_MAX], uint64_t *sizes)
{
    char num[16], etag[SP_S3_ETAG_MAX], size[24];
    unsigned long long n, len;
    span_text(part, "PartNumber", num, sizeof num);
    span_text(part, "ETag", etag, sizeof etag);
    span_text(part, "Size", size, sizeof size);
    if (!number(num, 1, SP_S3_PARTS_MAX, &n) || !number(size, 0, SP_S3_PART_MAX, &len) || !etag[0])
        return;
    size_t k = 0;
    for (const char *p = etag; *p; p++)
        if (*p != '"')
            etags[n - 1][k++] = *p;
    etags[n - 1][k] = '\0';
    sizes[n - 1] = len;
}

void sp_s3_xml_parts(const char *xml, char (*etags)[SP_S3_ETAG_MAX], uint64_t *sizes, struct sp_s3_page *pg)
{
    struct span in = whole(xml), part;
    page(in, "NextPartNumberMarker", NULL, pg);
    while (element(in, "Part", &part)) {
        one_part(part, etags, sizes);
        in.p = part.end;
    }
}

void sp_s3_xml_uploads(const char *xml, unsigned *count, struct sp_s3_page *pg)
{
    struct span in = whole(xml), up;
    page(in, "NextKeyMarker", "NextUploadIdMarker", pg);
    while (element(in, "Upload", &up)) {
        (*count)++;
        in.p = up.end;
    }
}
