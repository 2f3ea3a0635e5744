/* cli/export_name.c: a batch export's output names. Expected names are
 * written out by hand here. */
#include <string.h>

#include "cli/export_name.h"
#include "tests/unit/testlib.h"

static void safe_is(const char *name, const char *want)
{
    char buf[CLI_EXPORT_NAME_MAX + 1];
    cli_export_safe_name(name, buf, sizeof buf);
    if (strcmp(buf, want) != 0) {
        fprintf(stderr, "safe name of '%s': '%s', expected '%s'\n", name, buf, want);
        exit(1);
    }
}

static void safe_name(void)
{
    safe_is("web", "web");
    safe_is("../x", "_._x");
    safe_is("a/b", "a_b");
    safe_is(".hidden", "_hidden");
    safe_is("..", "_.");
    safe_is(".", "_");
    safe_is("", "_");
    safe_is("a\nb\x7f", "a_b_");
    safe_is("caf\xc3\xa9 1.2", "caf\xc3\xa9 1.2"); /* UTF-8, spaces and inner dots stay */
    char small[4];
    cli_export_safe_name("abcdef", small, sizeof small);
    CHECK(strcmp(small, "abc") == 0);
}

static void template_check(void)
{
    char why[256];
    CHECK_OK(cli_export_template_check("{name}-{uuid}.{ext}", why, sizeof why));
    CHECK_OK(cli_export_template_check("backup-{date}-{name}.xva", why, sizeof why));
    CHECK_OK(cli_export_template_check("plain.ova", why, sizeof why));
    CHECK(cli_export_template_check("sub/{name}.xva", why, sizeof why) != 0 && strstr(why, "'/'"));
    CHECK(cli_export_template_check("{nme}.xva", why, sizeof why) != 0 && strstr(why, "unknown field"));
    CHECK(cli_export_template_check("{name", why, sizeof why) != 0);
    CHECK(cli_export_template_check("{}", why, sizeof why) != 0);
}

static int expand(const char *tmpl, const char *name, char *buf, size_t len)
{
    char why[256];
    struct cli_export_fields f = {name, "0bc4a495-4b25-4394-a0f6-d6df0211f55a", "20261206", "xva"};
    return cli_export_name(tmpl, &f, buf, len, why, sizeof why);
}

static void name_fields(void)
{
    char buf[CLI_EXPORT_NAME_MAX + 1];
    CHECK_OK(expand(CLI_EXPORT_TEMPLATE_DEFAULT, "web", buf, sizeof buf));
    CHECK(strcmp(buf, "web-0bc4a495-4b25-4394-a0f6-d6df0211f55a.xva") == 0);
    CHECK_OK(expand("{date}_{name}_{name}.{ext}", "../x", buf, sizeof buf));
    CHECK(strcmp(buf, "20261206__._x__._x.xva") == 0);
    CHECK_OK(expand("static}.ova", "web", buf, sizeof buf));
    CHECK(strcmp(buf, "static}.ova") == 0);
}

static void name_refused(void)
{
    char buf[CLI_EXPORT_NAME_MAX + 1], big[300];
    CHECK(expand("{name}", "..", buf, sizeof buf) == 0 && strcmp(buf, "_.") == 0);
    CHECK(expand("..", "web", buf, sizeof buf) != 0);
    CHECK(expand(".", "web", buf, sizeof buf) != 0);
    memset(big, 'v', 250);
    big[250] = '\0';
    CHECK_OK(expand("{name}.xva", big, buf, sizeof buf)); /* 254 bytes */
    CHECK(expand("{name}.{ext}.", big, buf, sizeof buf) == 0); /* 255: the limit itself */
    CHECK(expand("{name}-{date}", big, buf, sizeof buf) != 0 && buf[0] == '\0');
    CHECK(expand("{name}", "web", buf, 3) != 0); /* the caller's buffer is the tighter limit */
}

TEST_MAIN({"safe_name", safe_name}, {"template_check", template_check}, {"name_fields", name_fields},
          {"name_refused", name_refused})
