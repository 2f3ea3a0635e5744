/* A tiny unit test frame: each test file lists its cases in TESTS; the
 * program runs the case named on its command line (one CTest entry each),
 * or all of them without an argument. */
#ifndef SP_TESTLIB_H
#define SP_TESTLIB_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct test_case {
    const char *name;
    void (*fn)(void);
};

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

#define CHECK_EQ_U64(a, b)                                                                     \
    do {                                                                                       \
        unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b);         \
        if (a_ != b_) {                                                                        \
            fprintf(stderr, "%s:%d: %s == %s failed: %llu != %llu\n", __FILE__, __LINE__, #a, #b, a_, b_); \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

#define CHECK_OK(expr)                                                                          \
    do {                                                                                        \
        int rc_ = (expr);                                                                       \
        if (rc_ != 0) {                                                                         \
            fprintf(stderr, "%s:%d: %s returned %d\n", __FILE__, __LINE__, #expr, rc_);         \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

static inline int test_main(const struct test_case *cases, size_t n, int argc, char **argv)
{
    for (size_t i = 0; i < n; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
            continue;
        cases[i].fn();
        printf("ok %s\n", cases[i].name);
        if (argc > 1)
            return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "no test case named %s\n", argv[1]);
        return 2;
    }
    return 0;
}

#define TEST_MAIN(...)                                                             \
    int main(int argc, char **argv)                                                \
    {                                                                              \
        static const struct test_case cases[] = {__VA_ARGS__};                     \
        return test_main(cases, sizeof cases / sizeof cases[0], argc, argv);       \
    }


/* A scratch folder for a test program, under $TMPDIR: test_tmp_setup(tag)
 * makes it once, test_tmp_path(name) names a file in it (a ring of 32
 * buffers, so several can be in use at once), test_tmp_teardown removes it. */
static char test_tmpdir[256];

static inline void test_tmp_setup(const char *tag)
{
    if (test_tmpdir[0])
        return;
    const char *base = getenv("TMPDIR");
    snprintf(test_tmpdir, sizeof test_tmpdir, "%s/sp-%s-XXXXXX", base ? base : "/tmp", tag);
    CHECK(mkdtemp(test_tmpdir) != NULL);
}

static inline void test_tmp_teardown(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", test_tmpdir);
    CHECK(system(cmd) == 0);
    test_tmpdir[0] = '\0';
}

static inline const char *test_tmp_path(const char *name)
{
    static char buf[32][512];
    static int i;
    i = (i + 1) % 32;
    snprintf(buf[i], sizeof buf[i], "%s/%s", test_tmpdir, name);
    return buf[i];
}

#endif
