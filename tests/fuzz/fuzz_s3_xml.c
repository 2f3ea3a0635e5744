/* The XML of S3's answers (s3/s3_xml.c): error codes, upload ids, ListParts
 * and ListMultipartUploads pages. */
#include <stdlib.h>
#include <string.h>

#include "s3/s3_xml.h"
#include "tests/fuzz/fuzz.h"

/* the parser reads NUL-terminated text, as the client keeps its answers */
#define INPUT_MAX (1u << 20)

static char etags[SP_S3_PARTS_MAX][SP_S3_ETAG_MAX];
static uint64_t sizes[SP_S3_PARTS_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > INPUT_MAX)
        return 0;
    char *xml = malloc(size + 1);
    if (!xml)
        return 0;
    memcpy(xml, data, size);
    xml[size] = '\0';
    char text[SP_S3_UPLOAD_ID_MAX];
    sp_s3_xml_text(xml, "Code", text, sizeof text);
    sp_s3_xml_text(xml, "UploadId", text, sizeof text);
    struct sp_s3_page pg;
    sp_s3_xml_parts(xml, etags, sizes, &pg);
    unsigned count = 0;
    sp_s3_xml_uploads(xml, &count, &pg);
    free(xml);
    return 0;
}
