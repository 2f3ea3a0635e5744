/* The VHD footer and dynamic header parsers on their own (the byte layouts
 * every VHD open starts with). */
#include "disk/vhd_footer.h"
#include "disk/vhd_header.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sp_error err;
    if (size >= SP_VHD_FOOTER_SIZE) {
        struct sp_vhd_footer f;
        sp_vhd_footer_parse(data, &f, &err);
    }
    if (size >= SP_VHD_HEADER_SIZE) {
        struct sp_vhd_header h;
        sp_vhd_header_parse(data, &h, &err);
    }
    return 0;
}
