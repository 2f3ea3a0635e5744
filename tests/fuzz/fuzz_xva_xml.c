/* The XVA ova.xml parser. */
#include "archive/xva_xml.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sp_xva_meta meta;
    struct sp_error err;
    if (sp_xva_xml_parse((const char *)data, size, &meta, &err) == SP_OK)
        sp_xva_meta_free(&meta);
    return 0;
}
