#include "store/xen.h"

#include <libxl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

struct sp_xen {
    libxl_ctx *ctx;
    xentoollog_logger_stdiostream *logger;
    FILE *log;       /* libxl's messages, kept for our errors instead of printed */
    char *log_buf;
    size_t log_len;
};

/* The first line libxl logged, for an error message. */
static const char *first_log_line(struct sp_xen *x, char *out, size_t len)
{
    fflush(x->log);
    snprintf(out, len, "%s", x->log_buf && x->log_buf[0] ? x->log_buf : "no reason given");
    char *nl = strchr(out, '\n');
    if (nl)
        *nl = '\0';
    return out;
}

void sp_xen_close(struct sp_xen *x)
{
    if (!x)
        return;
    if (x->ctx)
        libxl_ctx_free(x->ctx);
    if (x->logger)
        xtl_logger_destroy((xentoollog_logger *)x->logger);
    if (x->log)
        fclose(x->log);
    free(x->log_buf);
    free(x);
}

int sp_xen_open(struct sp_xen **out, struct sp_error *err)
{
    *out = NULL;
    struct sp_xen *x = sp_zalloc(sizeof *x, err);
    if (!x)
        return SP_ENOMEM;
    x->log = open_memstream(&x->log_buf, &x->log_len);
    if (x->log)
        x->logger = xtl_createlogger_stdiostream(x->log, XTL_ERROR, 0);
    if (!x->logger) {
        sp_xen_close(x);
        return sp_error_set(err, SP_ENOMEM, "libxl: cannot create a logger");
    }
    if (libxl_ctx_alloc(&x->ctx, LIBXL_VERSION, 0, (xentoollog_logger *)x->logger) != 0) {
        char why[256];
        first_log_line(x, why, sizeof why);
        x->ctx = NULL;
        sp_xen_close(x);
        return sp_error_set(err, SP_EUNSUPPORTED, "no Xen hypervisor reachable (libxl: %s)", why);
    }
    *out = x;
    return SP_OK;
}

int sp_xen_find(struct sp_xen *x, const uint8_t uuid[SP_UUID_LEN], uint32_t *domid, bool *found, struct sp_error *err)
{
    int n = 0;
    libxl_dominfo *list = libxl_list_domain(x->ctx, &n);
    if (!list) {
        char why[256];
        return sp_error_set(err, SP_EIO, "libxl: listing domains: %s", first_log_line(x, why, sizeof why));
    }
    *found = false;
    for (int i = 0; i < n && !*found; i++) {
        if (memcmp(libxl_uuid_bytearray(&list[i].uuid), uuid, SP_UUID_LEN) == 0 && !list[i].shutdown
            && !list[i].dying) {
            *domid = list[i].domid;
            *found = true;
        }
    }
    libxl_dominfo_list_free(list, n);
    return SP_OK;
}

int sp_xen_pause(struct sp_xen *x, uint32_t domid, struct sp_error *err)
{
    if (libxl_domain_pause(x->ctx, domid, NULL) != 0) {
        char why[256];
        return sp_error_set(err, SP_EIO, "libxl: pausing domain %u: %s", domid, first_log_line(x, why, sizeof why));
    }
    return SP_OK;
}

int sp_xen_unpause(struct sp_xen *x, uint32_t domid, struct sp_error *err)
{
    if (libxl_domain_unpause(x->ctx, domid, NULL) != 0) {
        char why[256];
        return sp_error_set(err, SP_EIO, "libxl: unpausing domain %u: %s", domid, first_log_line(x, why, sizeof why));
    }
    return SP_OK;
}
