/* xl.cfg through libxlutil and snapport's model of it. */
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "vm/vmconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sp_vm_config c;
    memset(&c, 0, sizeof c);
    struct sp_error err;
    if (sp_vmconfig_parse_text("fuzz.cfg", (const char *)data, size, &c, &err) == SP_OK)
        sp_vmconfig_free(&c);
    return 0;
}
