/* The .mf parser, and the .cert reader over the same bytes (PEM and the
 * signature line are parsed before any signature is checked). */
#include <string.h>

#include "archive/manifest.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sp_manifest m;
    memset(&m, 0, sizeof m);
    struct sp_error err;
    if (sp_manifest_parse((const char *)data, size, &m, &err) == SP_OK)
        sp_manifest_free(&m);
    static const char mf[] = "SHA256(vm.ovf)= 0000000000000000000000000000000000000000000000000000000000000000\n";
    struct sp_cert_info info;
    sp_cert_verify((const char *)data, size, "vm.mf", mf, sizeof mf - 1, &info, &err);
    return 0;
}
