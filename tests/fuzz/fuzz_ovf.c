/* The OVF descriptor parser (libxml2 underneath, DTDs and entities off). */
#include "archive/ovf.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sp_ovf_system sys;
    struct sp_error err;
    if (sp_ovf_parse((const char *)data, size, &sys, &err) == SP_OK)
        sp_ovf_free(&sys);
    return 0;
}
