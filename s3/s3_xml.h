/* The XML of S3's answers (error bodies, InitiateMultipartUpload, ListParts,
 * ListMultipartUploads, CompleteMultipartUpload), parsed from a
 * NUL-terminated buffer, apart from the requests (s3_client.c) so that it
 * can be tested on canned pages and fuzzed. The answers are flat and small
 * (the client caps them at 1 MiB): a tag's text is found by name, no tree
 * is built. */
#ifndef SP_S3_XML_H
#define SP_S3_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "s3/s3.h"

/* A marker S3 hands back to ask for the next page (a key, an upload id or
 * a part number): at most a key's length. */
#define SP_S3_MARKER_MAX (SP_S3_KEY_MAX + 1)

/* The text of the first <tag>...</tag> in xml, the five XML entities
 * decoded, into out; "" if there is none or it does not fit. */
void sp_s3_xml_text(const char *xml, const char *tag, char *out, size_t outsz);

/* One page of a listing: whether more follow, and the markers that ask for
 * the next one ("" when the answer gives none). */
struct sp_s3_page {
    bool truncated;
    char next[SP_S3_MARKER_MAX];     /* NextPartNumberMarker, NextKeyMarker */
    char next_id[SP_S3_MARKER_MAX];  /* NextUploadIdMarker */
};

/* A ListParts page: for every <Part> numbered 1..SP_S3_PARTS_MAX,
 * etags[n-1] its ETag's hex digits without quotes and sizes[n-1] its size;
 * other parts, and a part whose number, ETag or size is not usable, are
 * left alone (a resumed upload sends such a part again). */
void sp_s3_xml_parts(const char *xml, char (*etags)[SP_S3_ETAG_MAX], uint64_t *sizes, struct sp_s3_page *pg);

/* A ListMultipartUploads page: adds its <Upload>s to *count. */
void sp_s3_xml_uploads(const char *xml, unsigned *count, struct sp_s3_page *pg);

#endif
