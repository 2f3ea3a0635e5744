/* s3/: what can be checked without a server (addresses, the AWS files,
 * credentials from the environment, error words). The requests themselves
 * are tested against a real radosgw by tests/e2e/test_s3_*.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "s3/s3.h"
#include "s3/s3_stream.h"
#include "s3/s3_xml.h"
#include "testlib.h"

static void url_parse(void)
{
    struct sp_s3_url u;
    struct sp_error err = {0};
    CHECK(sp_s3_is_url("s3://b/k") && !sp_s3_is_url("/tmp/s3://x") && !sp_s3_is_url(NULL));
    CHECK_OK(sp_s3_url_parse("s3://my-bucket.1/dir/vm 1.xva", &u, &err));
    CHECK(strcmp(u.bucket, "my-bucket.1") == 0 && strcmp(u.key, "dir/vm 1.xva") == 0);
    CHECK(sp_s3_url_parse("s3://ab/k", &u, &err) == SP_EINVAL);          /* too short */
    CHECK(strstr(err.msg, "s3://ab/k") != NULL);
    CHECK(sp_s3_url_parse("s3://Upper/k", &u, &err) == SP_EINVAL);
    CHECK(sp_s3_url_parse("s3://bucket", &u, &err) == SP_EINVAL);        /* no key */
    CHECK(sp_s3_url_parse("s3://bucket/", &u, &err) == SP_EINVAL);
    CHECK(sp_s3_url_parse("http://bucket/k", &u, &err) == SP_EINVAL);
    char longb[128] = "s3://";
    memset(longb + 5, 'a', 64);
    strcpy(longb + 69, "/k");
    CHECK(sp_s3_url_parse(longb, &u, &err) == SP_EINVAL);
    char *longk = malloc(SP_S3_KEY_MAX + 32);
    strcpy(longk, "s3://bucket/");
    memset(longk + 12, 'k', SP_S3_KEY_MAX + 1);
    longk[12 + SP_S3_KEY_MAX + 1] = '\0';
    CHECK(sp_s3_url_parse(longk, &u, &err) == SP_ELIMIT);
    longk[12 + SP_S3_KEY_MAX] = '\0';
    CHECK_OK(sp_s3_url_parse(longk, &u, &err));
    free(longk);
}

static const char INI[] =
    "# comment\n"
    "[default]\n"
    "aws_access_key_id = AKDEFAULT\n"
    "aws_secret_access_key=secret=with=equals \r\n"
    "\n"
    "  [ other ]  \n"
    "; another comment\n"
    "\taws_access_key_id\t=  AKOTHER\n"
    "aws_access_key_id = SECOND\n"
    "[profile x]\n"
    "region = eu-west-3";

static void ini_get(void)
{
    char v[64];
    CHECK(sp_s3_ini_get(INI, strlen(INI), "default", "aws_access_key_id", v, sizeof v) == 1);
    CHECK(strcmp(v, "AKDEFAULT") == 0);
    CHECK(sp_s3_ini_get(INI, strlen(INI), "default", "aws_secret_access_key", v, sizeof v) == 1);
    CHECK(strcmp(v, "secret=with=equals") == 0);
    CHECK(sp_s3_ini_get(INI, strlen(INI), "other", "aws_access_key_id", v, sizeof v) == 1);
    CHECK(strcmp(v, "AKOTHER") == 0); /* the first one counts */
    CHECK(sp_s3_ini_get(INI, strlen(INI), "other", "aws_secret_access_key", v, sizeof v) == 0);
    CHECK(sp_s3_ini_get(INI, strlen(INI), "profile x", "region", v, sizeof v) == 1); /* no final newline */
    CHECK(strcmp(v, "eu-west-3") == 0);
    CHECK(sp_s3_ini_get(INI, strlen(INI), "missing", "region", v, sizeof v) == 0);
    CHECK(sp_s3_ini_get(INI, strlen(INI), "default", "aws_access_key_id", v, 5) == SP_ELIMIT);
    const char broken[] = "[unclosed\nkey = v\n=\n[default\n";
    CHECK(sp_s3_ini_get(broken, strlen(broken), "unclosed", "key", v, sizeof v) == 0);
    CHECK(sp_s3_ini_get("", 0, "default", "key", v, sizeof v) == 0);
}

static void clear_env(void)
{
    const char *names[] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                           "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_CA_BUNDLE",
                           "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "SNAPPORT_S3_TIMEOUT",
                           "SNAPPORT_S3_ATTEMPTS"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        unsetenv(names[i]);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs(text, f);
    fclose(f);
}

static void config_env(void)
{
    struct sp_s3_config c;
    struct sp_error err = {0};
    clear_env();
    setenv("HOME", "/nonexistent-home", 1);
    CHECK(sp_s3_config_load(&c, NULL, NULL, &err) == SP_EINVAL);
    CHECK(strstr(err.msg, "AWS_ACCESS_KEY_ID") && strstr(err.msg, "/nonexistent-home/.aws/credentials"));
    setenv("AWS_ACCESS_KEY_ID", "AK", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "SK", 1);
    setenv("AWS_SESSION_TOKEN", "TOK", 1);
    setenv("AWS_DEFAULT_REGION", "eu-central-1", 1);
    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:7480/", 1);
    CHECK_OK(sp_s3_config_load(&c, NULL, NULL, &err));
    CHECK(strcmp(c.access_key, "AK") == 0 && strcmp(c.secret_key, "SK") == 0 && strcmp(c.session_token, "TOK") == 0);
    CHECK(strcmp(c.region, "eu-central-1") == 0);
    CHECK(strcmp(c.endpoint, "http://127.0.0.1:7480") == 0); /* the slash goes */
    setenv("AWS_REGION", "us-west-2", 1);                   /* wins over AWS_DEFAULT_REGION */
    CHECK_OK(sp_s3_config_load(&c, "https://minio.example:9000", "/ca.pem", &err));
    CHECK(strcmp(c.region, "us-west-2") == 0);
    CHECK(strcmp(c.endpoint, "https://minio.example:9000") == 0 && strcmp(c.ca_bundle, "/ca.pem") == 0);
    CHECK(sp_s3_config_load(&c, "ftp://x", NULL, &err) == SP_EINVAL);
    setenv("AWS_REGION", "bad region", 1);
    CHECK(sp_s3_config_load(&c, NULL, NULL, &err) == SP_EINVAL);
    clear_env();
}

static void config_retry_env(void)
{
    struct sp_s3_config c;
    struct sp_error err = {0};
    clear_env();
    setenv("AWS_ACCESS_KEY_ID", "AK", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "SK", 1);
    CHECK_OK(sp_s3_config_load(&c, NULL, NULL, &err));
    CHECK(c.timeout_s == 60 && c.attempts == 8);
    setenv("SNAPPORT_S3_TIMEOUT", "2", 1);
    setenv("SNAPPORT_S3_ATTEMPTS", "1", 1);
    CHECK_OK(sp_s3_config_load(&c, NULL, NULL, &err));
    CHECK(c.timeout_s == 2 && c.attempts == 1);
    const char *bad[] = {"0", "-1", "2s", " 2", "3601", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("SNAPPORT_S3_TIMEOUT", bad[i], 1);
        CHECK(sp_s3_config_load(&c, NULL, NULL, &err) == SP_EINVAL);
        CHECK(strstr(err.msg, "SNAPPORT_S3_TIMEOUT") != NULL);
    }
    setenv("SNAPPORT_S3_TIMEOUT", "3600", 1);
    setenv("SNAPPORT_S3_ATTEMPTS", "101", 1);
    CHECK(sp_s3_config_load(&c, NULL, NULL, &err) == SP_EINVAL);
    CHECK(strstr(err.msg, "SNAPPORT_S3_ATTEMPTS=101") != NULL);
    clear_env();
}

/* Pages as radosgw 16.2 wrote them (tests/fuzz/corpus/s3_xml/, made by
 * tests/fuzz/make_s3_seeds.py), cut to what matters. */
static const char PARTS_PAGE[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListPartsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Bucket>seeds</Bucket><Key>a&amp;b&lt;c&gt;.xva</Key><UploadId>2~aP4iVh7z8UPqvZzJl4sedVJvKFntbLC</UploadId>"
    "<PartNumberMarker>0</PartNumberMarker><NextPartNumberMarker>2</NextPartNumberMarker><MaxParts>2</MaxParts>"
    "<IsTruncated>true</IsTruncated><Owner><ID></ID><DisplayName></DisplayName></Owner>"
    "<Part><LastModified>2026-12-06T05:03:06.257Z</LastModified><PartNumber>1</PartNumber>"
    "<ETag>&quot;3535737966a02727799cb38a35deeda6&quot;</ETag><Size>5242880</Size></Part>"
    "<Part><LastModified>2026-12-06T05:03:06.660Z</LastModified><PartNumber>2</PartNumber>"
    "<ETag>&quot;9dd4e461268c8034f5c8564e155c67a6&quot;</ETag><Size>1</Size></Part></ListPartsResult>";

static const char UPLOADS_PAGE[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListMultipartUploadsResult "
    "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>seeds</Bucket>"
    "<NextKeyMarker>a&amp;b&lt;c&gt;.xva</NextKeyMarker><NextUploadIdMarker>2~aP4iVh7z8UPqvZzJl4sedVJvKFntbLC"
    "</NextUploadIdMarker><MaxUploads>1</MaxUploads><IsTruncated>true</IsTruncated><Upload>"
    "<Key>a&amp;b&lt;c&gt;.xva</Key><UploadId>2~aP4iVh7z8UPqvZzJl4sedVJvKFntbLC</UploadId><Initiator><ID>test</ID>"
    "</Initiator><StorageClass>STANDARD</StorageClass><Initiated>2026-12-06T05:03:05.828Z</Initiated></Upload>"
    "</ListMultipartUploadsResult>";

static void xml_pages(void)
{
    static char etags[SP_S3_PARTS_MAX][SP_S3_ETAG_MAX];
    static uint64_t sizes[SP_S3_PARTS_MAX];
    struct sp_s3_page pg;
    sp_s3_xml_parts(PARTS_PAGE, etags, sizes, &pg);
    CHECK(pg.truncated && strcmp(pg.next, "2") == 0);
    CHECK(strcmp(etags[0], "3535737966a02727799cb38a35deeda6") == 0 && sizes[0] == 5242880);
    CHECK(strcmp(etags[1], "9dd4e461268c8034f5c8564e155c67a6") == 0 && sizes[1] == 1);
    CHECK(etags[2][0] == '\0' && sizes[2] == 0);
    unsigned count = 3;
    sp_s3_xml_uploads(UPLOADS_PAGE, &count, &pg);
    CHECK(count == 4 && pg.truncated);
    CHECK(strcmp(pg.next, "a&b<c>.xva") == 0 && strcmp(pg.next_id, "2~aP4iVh7z8UPqvZzJl4sedVJvKFntbLC") == 0);
    /* the last page: IsTruncated false, no markers */
    count = 0;
    sp_s3_xml_uploads("<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>",
                      &count, &pg);
    CHECK(count == 0 && !pg.truncated && pg.next[0] == '\0' && pg.next_id[0] == '\0');
}

/* A part missing a field takes nothing from its neighbour; numbers out of
 * range, unclosed tags and a text too long for its buffer give nothing. */
static void xml_hostile(void)
{
    static char etags[SP_S3_PARTS_MAX][SP_S3_ETAG_MAX];
    static uint64_t sizes[SP_S3_PARTS_MAX];
    struct sp_s3_page pg;
    sp_s3_xml_parts("<Part><PartNumber>1</PartNumber><ETag>\"a\"</ETag></Part>"
                    "<Part><PartNumber>2</PartNumber><ETag>\"b\"</ETag><Size>7</Size></Part>"
                    "<Part><PartNumber>0</PartNumber><ETag>x</ETag><Size>1</Size></Part>"
                    "<Part><PartNumber>10001</PartNumber><ETag>x</ETag><Size>1</Size></Part>"
                    "<Part><PartNumber>3</PartNumber><ETag>x</ETag><Size>-1</Size></Part>"
                    "<Part><PartNumber>4</PartNumber><ETag>x</ETag><Size>5368709121</Size></Part>"
                    "<Part><PartNumber>5</PartNumber><ETag>x</ETag><Size>1",
                    etags, sizes, &pg);
    CHECK(etags[0][0] == '\0' && strcmp(etags[1], "b") == 0 && sizes[1] == 7);
    CHECK(etags[2][0] == '\0' && etags[3][0] == '\0' && etags[4][0] == '\0' && !pg.truncated);
    char out[8];
    sp_s3_xml_text("<Code>1234567890</Code>", "Code", out, sizeof out);
    CHECK(out[0] == '\0');
    sp_s3_xml_text("<Code>&amp;&lt;&gt;&apos;&bogus;</Code>", "Code", out, sizeof out);
    CHECK(out[0] == '\0'); /* 11 bytes do not fit 8: nothing, not a cut text */
    char big[32];
    sp_s3_xml_text("<Code>&amp;&lt;&gt;&apos;&bogus;</Code>", "Code", big, sizeof big);
    CHECK(strcmp(big, "&<>'&bogus;") == 0);
    sp_s3_xml_text("<Code>open", "Code", big, sizeof big);
    CHECK(big[0] == '\0');
    sp_s3_xml_text(NULL, "Code", big, sizeof big);
    CHECK(big[0] == '\0');
}

static void config_files(void)
{
    struct sp_s3_config c;
    struct sp_error err = {0};
    char dir[] = "/tmp/sp-s3-unit-XXXXXX", creds[128], conf[128];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(creds, sizeof creds, "%s/credentials", dir);
    snprintf(conf, sizeof conf, "%s/config", dir);
    write_file(creds, "[default]\naws_access_key_id=AKD\naws_secret_access_key=SKD\n"
                      "[work]\naws_access_key_id = AKW\naws_secret_access_key = SKW\naws_session_token = TW\n"
                      "[half]\naws_access_key_id = AKH\n");
    write_file(conf, "[default]\nregion = ap-south-1\n[profile work]\nregion = sa-east-1\n");
    clear_env();
    setenv("AWS_SHARED_CREDENTIALS_FILE", creds, 1);
    setenv("AWS_CONFIG_FILE", conf, 1);
    CHECK_OK(sp_s3_config_load(&c, NULL, NULL, &err));
    CHECK(strcmp(c.access_key, "AKD") == 0 && strcmp(c.secret_key, "SKD") == 0 && !c.session_token[0]);
    CHECK(strcmp(c.region, "ap-south-1") == 0 && !c.endpoint[0]);
    setenv("AWS_PROFILE", "work", 1);
    CHECK_OK(sp_s3_config_load(&c, NULL, NULL, &err));
    CHECK(strcmp(c.access_key, "AKW") == 0 && strcmp(c.session_token, "TW") == 0);
    CHECK(strcmp(c.region, "sa-east-1") == 0);
    setenv("AWS_PROFILE", "half", 1); /* a key without its secret */
    CHECK(sp_s3_config_load(&c, NULL, NULL, &err) == SP_EINVAL && strstr(err.msg, "[half]"));
    setenv("AWS_PROFILE", "none", 1);
    CHECK(sp_s3_config_load(&c, NULL, NULL, &err) == SP_EINVAL);
    CHECK(strstr(err.msg, "SKW") == NULL && strstr(err.msg, "SKD") == NULL); /* never a secret */
    setenv("AWS_PROFILE", "default", 1);
    setenv("AWS_ACCESS_KEY_ID", "AKE", 1); /* the environment's pair wins */
    setenv("AWS_SECRET_ACCESS_KEY", "SKE", 1);
    CHECK_OK(sp_s3_config_load(&c, NULL, NULL, &err));
    CHECK(strcmp(c.access_key, "AKE") == 0 && strcmp(c.secret_key, "SKE") == 0);
    clear_env();
    unlink(creds);
    unlink(conf);
    rmdir(dir);
}

static void error_words(void)
{
    char w[256];
    sp_s3_error_words(403, "SignatureDoesNotMatch", w, sizeof w);
    CHECK(strcmp(w, "signature does not match (wrong secret key?) (403 SignatureDoesNotMatch)") == 0);
    sp_s3_error_words(404, "NoSuchBucket", w, sizeof w);
    CHECK(strcmp(w, "no such bucket (404 NoSuchBucket)") == 0);
    sp_s3_error_words(403, "AccessDenied", w, sizeof w);
    CHECK(strcmp(w, "access denied (403 AccessDenied)") == 0);
    sp_s3_error_words(404, "", w, sizeof w); /* a HEAD has no body */
    CHECK(strcmp(w, "not found (HTTP 404)") == 0);
    sp_s3_error_words(403, NULL, w, sizeof w);
    CHECK(strcmp(w, "access denied (HTTP 403)") == 0);
    sp_s3_error_words(418, "Teapot", w, sizeof w);
    CHECK(strcmp(w, "refused (418 Teapot)") == 0);
    CHECK(sp_s3_status_code(404) == SP_ENOTFOUND && sp_s3_status_code(403) == SP_EINVAL);
    CHECK(sp_s3_status_code(503) == SP_EIO);
}

static void part_sizes(void)
{
    struct sp_s3_upload_opts grow = {0}, fixed = {.part_size = 64ull << 20};
    uint64_t total = 0, max = 0;
    unsigned n5t = 0;
    for (unsigned n = 1; n <= SP_S3_PARTS_MAX; n++) {
        uint64_t size = sp_s3_part_size(&grow, n);
        CHECK(size >= SP_S3_PART_MIN && size <= SP_S3_PART_MAX);
        total += size;
        max = size > max ? size : max;
        if (!n5t && total >= SP_S3_OBJECT_MAX)
            n5t = n;
    }
    CHECK_EQ_U64(sp_s3_part_size(&grow, 1), SP_S3_PART_FIRST);
    CHECK_EQ_U64(sp_s3_part_size(&grow, 1001), 2 * SP_S3_PART_FIRST);
    CHECK_EQ_U64(max, SP_S3_PART_TOP);
    CHECK(n5t > 0 && n5t < SP_S3_PARTS_MAX); /* 5 TiB fits */
    CHECK_EQ_U64(sp_s3_part_size(&fixed, 9999), 64ull << 20);
}

static void resume_file(void)
{
    struct sp_s3_url u;
    struct sp_error err = {0};
    char id[SP_S3_UPLOAD_ID_MAX], path[] = "/tmp/sp-s3-resume-XXXXXX";
    uint64_t ps = 1;
    CHECK_OK(sp_s3_url_parse("s3://bucket/dir/vm.xva", &u, &err));
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    unlink(path);
    CHECK(sp_s3_resume_read(path, &u, &ps, id, sizeof id, &err) == 0); /* none */
    CHECK_OK(sp_s3_resume_write(path, &u, 0, "2~abc-DEF_1", &err));
    CHECK(sp_s3_resume_read(path, &u, &ps, id, sizeof id, &err) == 1);
    CHECK(ps == 0 && strcmp(id, "2~abc-DEF_1") == 0);
    CHECK_OK(sp_s3_resume_write(path, &u, 8ull << 20, "other", &err)); /* replaced */
    CHECK(sp_s3_resume_read(path, &u, &ps, id, sizeof id, &err) == 1 && ps == 8ull << 20);
    struct sp_s3_url v;
    CHECK_OK(sp_s3_url_parse("s3://bucket/other.xva", &v, &err));
    CHECK(sp_s3_resume_read(path, &v, &ps, id, sizeof id, &err) == SP_EINVAL);
    CHECK(strstr(err.msg, path) && strstr(err.msg, "s3://bucket/dir/vm.xva"));
    unlink(path);
    const char *bad[] = {
        "", "snapport-s3-resume 2\nurl s3://bucket/dir/vm.xva\npart-size 0\nupload-id x\n",
        "snapport-s3-resume 1\nurl s3://bucket/dir/vm.xva\npart-size 0\n",
        "snapport-s3-resume 1\nurl s3://bucket/dir/vm.xva\npart-size 4096\nupload-id x\n",
        "snapport-s3-resume 1\nurl s3://bucket/dir/vm.xva\npart-size 0\nupload-id \n",
        "snapport-s3-resume 1\nurl s3://bucket/dir/vm.xva\npart-size 0\nupload-id a\tb\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(sp_s3_resume_parse(bad[i], &u, &ps, id, sizeof id, &err) < 0);
    CHECK(sp_s3_resume_parse("snapport-s3-resume 1\nurl s3://bucket/dir/vm.xva\npart-size 0\nupload-id x\n", &u,
                             &ps, id, 1, &err) < 0); /* an id too long for the buffer */
}

TEST_MAIN({"part_sizes", part_sizes}, {"resume_file", resume_file}, {"url_parse", url_parse}, {"ini_get", ini_get}, {"config_env", config_env},
          {"config_files", config_files}, {"error_words", error_words},
          {"config_retry_env", config_retry_env}, {"xml_pages", xml_pages}, {"xml_hostile", xml_hostile})
