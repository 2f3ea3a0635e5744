#include "vm/vmconfig.h"
#include "tests/unit/testlib.h"

#include <unistd.h>

/* Each case writes its configs into a fresh folder of its own. */
static char tmpdir[] = "/tmp/sp-vmconfig-XXXXXX";
static bool made; /* not "the name still ends in X": a random name can end in X too */
static char path[512];

static const char *write_cfg(const char *name, const char *text)
{
    if (!made)
        CHECK(mkdtemp(tmpdir) != NULL);
    made = true;
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    CHECK(fputs(text, f) >= 0);
    CHECK(fclose(f) == 0);
    return path;
}

static void cleanup(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (made)
        CHECK(system(cmd) == 0);
    made = false;
    strcpy(tmpdir + sizeof tmpdir - 7, "XXXXXX"); /* the next case makes a new one */
}

static int parse(const char *name, const char *text, struct sp_vm_config *c, struct sp_error *err)
{
    sp_error_clear(err);
    return sp_vmconfig_parse_file(write_cfg(name, text), c, err);
}

#define CHECK_STR(a, b)                                                                       \
    do {                                                                                      \
        const char *a_ = (a), *b_ = (b);                                                      \
        if (!a_ || strcmp(a_, b_) != 0) {                                                     \
            fprintf(stderr, "%s:%d: %s: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a, a_ ? a_ : "(null)", b_); \
            exit(1);                                                                          \
        }                                                                                     \
    } while (0)

static const char *hvm_cfg =
    "# a realistic HVM guest\n"
    "name = \"web02\"\n"
    "uuid = '6b1f3c2e-4d5a-4e8b-9c7d-0a1b2c3d4e5f'\n"
    "type = \"hvm\"\n"
    "memory = 2048\n"
    "maxmem = 4096\n"
    "vcpus = 2; maxvcpus = 4\n"
    "boot = \"dc\"\n"
    "disk = [ 'format=vhd, vdev=xvda, access=rw, target=/srv/vm/web, 02.vhd',\n"
    "         '/srv/vm/data.img,raw,xvdb,rw',   # positional\n"
    "         'format=raw, vdev=hdc, access=ro, devtype=cdrom, target=/iso/debian.iso',\n"
    "         ',,hdd:cdrom,r',\n"
    "         'format=qcow2, vdev=xvde, backendtype=qdisk, direct-io-safe, target=/srv/q.qcow2',\n"
    "         'phy:/dev/vg0/logs,xvdf,r',\n"
    "       ]\n"
    "vif = [ 'mac=00:16:3E:5A:01:0C, bridge=xenbr0, model=e1000, rate=10Mb/s, script=vif-bridge',\n"
    "        'bridge=xenbr1,ip=10.0.0.2 10.0.0.3',\n"
    "        '' ]\n"
    "serial = 'pty'\n"
    "viridian = 1\n";

static void parse_hvm(void)
{
    struct sp_vm_config c;
    struct sp_error err;
    if (parse("web02.cfg", hvm_cfg, &c, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    CHECK_STR(c.name, "web02");
    CHECK(c.has_uuid && c.uuid[0] == 0x6b && c.uuid[15] == 0x5f);
    CHECK(c.type == SP_VM_HVM);
    CHECK_EQ_U64(c.memory_mb, 2048);
    CHECK_EQ_U64(c.maxmem_mb, 4096);
    CHECK_EQ_U64(c.vcpus, 2);
    CHECK_EQ_U64(c.maxvcpus, 4);
    CHECK_STR(c.boot, "dc");

    CHECK_EQ_U64(c.ndisks, 6);
    struct sp_vm_disk *d = c.disks;
    CHECK_STR(d[0].target, "/srv/vm/web, 02.vhd"); /* target= keeps commas */
    CHECK_STR(d[0].vdev, "xvda");
    CHECK_STR(d[0].format, "vhd");
    CHECK(d[0].readwrite && !d[0].cdrom && d[0].extra == NULL);
    CHECK_STR(d[1].target, "/srv/vm/data.img");
    CHECK_STR(d[1].vdev, "xvdb");
    CHECK_STR(d[1].format, "raw");
    CHECK(d[1].readwrite && !d[1].cdrom);
    CHECK_STR(d[2].target, "/iso/debian.iso");
    CHECK_STR(d[2].vdev, "hdc");
    CHECK(!d[2].readwrite && d[2].cdrom);
    CHECK_STR(d[3].target, "");
    CHECK_STR(d[3].vdev, "hdd");
    CHECK_STR(d[3].format, "empty");
    CHECK(!d[3].readwrite && d[3].cdrom);
    CHECK_STR(d[4].format, "qcow2");
    CHECK_STR(d[4].extra, "backendtype=qdisk,direct-io-safe");
    CHECK_STR(d[5].target, "/dev/vg0/logs"); /* phy: prefix dropped, as libxl does */
    CHECK(!d[5].readwrite);

    CHECK_EQ_U64(c.nvifs, 3);
    CHECK_STR(c.vifs[0].mac, "00:16:3e:5a:01:0c");
    CHECK_STR(c.vifs[0].bridge, "xenbr0");
    CHECK_STR(c.vifs[0].model, "e1000");
    CHECK_STR(c.vifs[0].extra, "rate=10Mb/s,script=vif-bridge");
    CHECK_STR(c.vifs[1].mac, "");
    CHECK_STR(c.vifs[1].bridge, "xenbr1");
    CHECK_STR(c.vifs[1].ip, "10.0.0.2 10.0.0.3");
    CHECK(c.vifs[1].extra == NULL);
    CHECK(c.vifs[2].bridge[0] == '\0' && c.vifs[2].extra == NULL);

    CHECK_STR(c.extra, "serial = 'pty'\nviridian = 1\n");
    sp_vmconfig_free(&c);
    cleanup();
}

static void parse_pv_builder(void)
{
    struct sp_vm_config c;
    struct sp_error err;
    CHECK_OK(parse("pv.cfg", "name='pv1'\nbuilder='generic'\nmemory=512\nkernel='/boot/vmlinuz'\n", &c, &err));
    CHECK(c.type == SP_VM_PV);
    CHECK_EQ_U64(c.vcpus, 1);
    CHECK_EQ_U64(c.maxmem_mb, 0);
    CHECK(!c.has_uuid && c.ndisks == 0 && c.nvifs == 0);
    CHECK_STR(c.extra, "kernel='/boot/vmlinuz'\n");
    sp_vmconfig_free(&c);

    CHECK_OK(parse("old.cfg", "name='h'\nbuilder='hvm'\nmemory=512\n", &c, &err));
    CHECK(c.type == SP_VM_HVM);
    CHECK_STR(c.extra, "");
    sp_vmconfig_free(&c);

    CHECK_OK(parse("none.cfg", "name='n'\nmemory=0x200\n", &c, &err)); /* xl's default, and strtol base 0 */
    CHECK(c.type == SP_VM_PV);
    CHECK_EQ_U64(c.memory_mb, 512);
    sp_vmconfig_free(&c);

    CHECK_OK(parse("pvh.cfg", "name='p'\ntype='pvh'\nmemory=256\n", &c, &err));
    CHECK(c.type == SP_VM_PVH);
    sp_vmconfig_free(&c);

    CHECK(parse("both.cfg", "name='b'\ntype='hvm'\nbuilder='hvm'\nmemory=256\n", &c, &err) == SP_EFORMAT);
    CHECK(parse("bad.cfg", "name='b'\ntype='hvmx'\nmemory=256\n", &c, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "bad.cfg:2: type: `hvmx'") != NULL);
    cleanup();
}

static void check_same(const struct sp_vm_config *a, const struct sp_vm_config *b)
{
    CHECK_STR(a->name, b->name);
    CHECK(a->has_uuid == b->has_uuid && memcmp(a->uuid, b->uuid, sizeof a->uuid) == 0);
    CHECK(a->type == b->type);
    CHECK(a->memory_mb == b->memory_mb && a->maxmem_mb == b->maxmem_mb);
    CHECK(a->vcpus == b->vcpus && a->maxvcpus == b->maxvcpus);
    CHECK_STR(a->boot, b->boot);
    CHECK_EQ_U64(a->ndisks, b->ndisks);
    for (int i = 0; i < a->ndisks; i++) {
        const struct sp_vm_disk *x = &a->disks[i], *y = &b->disks[i];
        CHECK_STR(x->target, y->target);
        CHECK_STR(x->vdev, y->vdev);
        CHECK_STR(x->format, y->format);
        CHECK(x->readwrite == y->readwrite && x->cdrom == y->cdrom);
        CHECK((x->extra == NULL) == (y->extra == NULL));
        if (x->extra)
            CHECK_STR(x->extra, y->extra);
    }
    CHECK_EQ_U64(a->nvifs, b->nvifs);
    for (int i = 0; i < a->nvifs; i++) {
        const struct sp_vm_vif *x = &a->vifs[i], *y = &b->vifs[i];
        CHECK_STR(x->mac, y->mac);
        CHECK_STR(x->bridge, y->bridge);
        CHECK_STR(x->model, y->model);
        CHECK_STR(x->ip, y->ip);
        CHECK((x->extra == NULL) == (y->extra == NULL));
        if (x->extra)
            CHECK_STR(x->extra, y->extra);
    }
    CHECK_STR(a->extra, b->extra);
}

/* parse -> format -> parse gives the same config; format is then stable. */
static void round_trip_one(const char *name, const char *text)
{
    struct sp_vm_config a, b;
    struct sp_error err;
    char *t1 = NULL, *t2 = NULL;
    if (parse(name, text, &a, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    CHECK_OK(sp_vmconfig_format(&a, &t1, &err));
    if (sp_vmconfig_parse_text("formatted", t1, strlen(t1), &b, &err) != 0) {
        fprintf(stderr, "%s\n---\n%s", err.msg, t1);
        exit(1);
    }
    check_same(&a, &b);
    CHECK_OK(sp_vmconfig_format(&b, &t2, &err));
    CHECK_STR(t2, t1);
    free(t1);
    free(t2);
    sp_vmconfig_free(&a);
    sp_vmconfig_free(&b);
}

static void round_trip(void)
{
    round_trip_one("hvm.cfg", hvm_cfg);
    round_trip_one("extras.cfg",
                   "name = 'it\\'s \"quoted\" \\\\ here'   # comment\n"
                   "memory = 010\n" /* octal to strtol: 8 */
                   "builder = 'hvm'\n"
                   "pci = [ '01:00.0',   # the NIC\n"
                   "        '02:00.0,permissive=1'\n"
                   "      ]\n"
                   "extra = \"console=hvc0 root=/dev/xvda1; quiet # not a comment\"\n"
                   "on_crash = \"restart\"; usb = 1\n"
                   "usbdevice = [ \"tablet\" ]\n"
                   "cpus = \"0-3\"\n"
                   "cpus += \",5\"\n"
                   "device_model_args = []\n"
                   "vif = [ 'mac=00:16:3e:00:00:01,type=vif,vifname=web-eth0' ]\n"
                   "disk = [ 'vdev=xvda, target=/a,b,' ]\n"
                   "# trailing comment\n");
    struct sp_vm_config c;
    struct sp_error err;
    CHECK_OK(parse("x.cfg", "name='x'\nmemory=1\nusbdevice = [ \"tablet\", # t\n\n 'mouse' ]\n", &c, &err));
    CHECK_STR(c.extra, "usbdevice = [ \"tablet\",\n 'mouse' ]\n");
    sp_vmconfig_free(&c);
    cleanup();
}

static void syntax_error_line(void)
{
    struct sp_vm_config c;
    struct sp_error err;
    char want[600];
    const char *p = write_cfg("syn.cfg", "name = 'a'\nmemory = 1\n\nvcpus = 2 3\n");
    CHECK(sp_vmconfig_parse_file(p, &c, &err) == SP_EFORMAT);
    snprintf(want, sizeof want, "%s:4: config parsing error near `3': syntax error, unexpected NUMBER, expecting $end",
             p);
    CHECK_STR(err.msg, want);
    /* libxlutil says line 2 here; the error is on line 3 */
    p = write_cfg("nl.cfg", "name = 'a'\nmemory = 1\nvcpus =\nboot = 'c'\n");
    CHECK(sp_vmconfig_parse_file(p, &c, &err) == SP_EFORMAT);
    snprintf(want, sizeof want, "%s:3: ", p);
    CHECK(strncmp(err.msg, want, strlen(want)) == 0);
    CHECK(strchr(err.msg, '\n') == NULL);
    /* a lexical error followed by libxlutil's "looks like Python" lines */
    CHECK(parse("py.cfg", "name = 'a'\nmemory = -1\n", &c, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "py.cfg:2: config parsing error near `-1': lexical error") != NULL);
    CHECK(strchr(err.msg, '\n') == NULL);
    /* xl's lexer takes no '\r': the message stays printable and says why */
    CHECK(parse("dos.cfg", "name = 'a'\r\nmemory = 1\r\n", &c, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "dos.cfg:1: config parsing error near `?': lexical error (DOS line ends?") != NULL);
    CHECK(sp_vmconfig_parse_text("nul.cfg", "name='a'\0", 9, &c, &err) == SP_EFORMAT);
    cleanup();
}

static void bad_disk(void)
{
    struct sp_vm_config c;
    struct sp_error err;
    const char *p = write_cfg("d.cfg", "name='a'\nmemory=1\ndisk=['/a.img,raw,xvda,w', 'format=bogus, vdev=xvdb, target=/b']\n");
    CHECK(sp_vmconfig_parse_file(p, &c, &err) == SP_EFORMAT);
    char want[600];
    snprintf(want, sizeof want, "%s: disk 2: unknown value for format: near `bogus' in `format=bogus, vdev=xvdb, target=/b'", p);
    CHECK_STR(err.msg, want);
    CHECK(c.ndisks == 0 && c.disks == NULL);
    CHECK(parse("d2.cfg", "name='a'\nmemory=1\ndisk=['vdev=xvda']\n", &c, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "d2.cfg: disk 1: no target specified") != NULL);
    CHECK(parse("d3.cfg", "name='a'\nmemory=1\ndisk='/a.img,raw,xvda,w'\n", &c, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "d3.cfg:3: disk: a single value") != NULL);
    cleanup();
}

static void missing_keys(void)
{
    struct sp_vm_config c;
    struct sp_error err;
    CHECK(parse("m.cfg", "name='a'\nvcpus=2\n", &c, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "m.cfg: memory is missing") != NULL);
    CHECK(parse("n.cfg", "memory=512\n", &c, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "n.cfg: name is missing") != NULL);
    CHECK(parse("z.cfg", "name='a'\nmemory=0\n", &c, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "z.cfg:2: memory: 0 is out of range") != NULL);
    CHECK(parse("s.cfg", "name='a'\nmemory='lots'\n", &c, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "s.cfg:2: memory: not a number: `lots'") != NULL);
    cleanup();
}

static void bad_mac(void)
{
    struct sp_vm_config c;
    struct sp_error err;
    CHECK(parse("v.cfg", "name='a'\nmemory=1\nvif=['bridge=xenbr0', 'mac=00:16:3e:zz:00:01,bridge=x']\n", &c, &err)
          == SP_EFORMAT);
    CHECK(strstr(err.msg, "v.cfg: vif 2: bad mac `00:16:3e:zz:00:01'") != NULL);
    CHECK(parse("v2.cfg", "name='a'\nmemory=1\nvif=['mac=00:16:3e:00:01']\n", &c, &err) == SP_EFORMAT);
    cleanup();
}

static void bad_uuid(void)
{
    struct sp_vm_config c;
    struct sp_error err;
    CHECK(parse("u.cfg", "name='a'\nmemory=1\nuuid='6b1f3c2e-4d5a-4e8b-9c7d-0a1b2c3d4e5'\n", &c, &err) == SP_EFORMAT);
    CHECK(strstr(err.msg, "u.cfg:3: uuid: not a valid uuid") != NULL);
    cleanup();
}

/* Values that xl.cfg cannot carry are refused, not written wrong. */
static void format_refuses(void)
{
    struct sp_vm_config c;
    struct sp_error err;
    char *t = NULL;
    CHECK_OK(parse("f.cfg", "name='a'\nmemory=1\nvif=['bridge=xenbr0']\ndisk=['/a,raw,xvda,w']\n", &c, &err));
    strcpy(c.name, "a\001b");
    CHECK(sp_vmconfig_format(&c, &t, &err) == SP_EUNSUPPORTED && t == NULL);
    strcpy(c.name, "tab\there\nnewline");
    CHECK_OK(sp_vmconfig_format(&c, &t, &err));
    struct sp_vm_config b;
    CHECK_OK(sp_vmconfig_parse_text("t", t, strlen(t), &b, &err));
    CHECK_STR(b.name, "tab\there\nnewline");
    sp_vmconfig_free(&b);
    free(t);
    strcpy(c.vifs[0].bridge, "br,0");
    CHECK(sp_vmconfig_format(&c, &t, &err) == SP_EUNSUPPORTED);
    strcpy(c.vifs[0].bridge, "br0");
    free(c.disks[0].target);
    c.disks[0].target = strdup("/ends/with,");
    CHECK(sp_vmconfig_format(&c, &t, &err) == SP_EUNSUPPORTED);
    sp_vmconfig_free(&c);
    cleanup();
}

static void copy_free(void)
{
    struct sp_vm_config a, b, zero;
    struct sp_error err;
    CHECK_OK(parse("c.cfg", hvm_cfg, &a, &err));
    CHECK_OK(sp_vmconfig_copy(&b, &a, &err));
    CHECK(b.disks != a.disks && b.disks[0].target != a.disks[0].target && b.extra != a.extra);
    sp_vmconfig_free(&a);
    CHECK_STR(b.disks[0].target, "/srv/vm/web, 02.vhd");
    CHECK_STR(b.vifs[0].extra, "rate=10Mb/s,script=vif-bridge");
    sp_vmconfig_free(&b);
    memset(&zero, 0, sizeof zero);
    sp_vmconfig_free(&zero);
    sp_vmconfig_free(NULL);
    CHECK_STR(sp_vm_type_name(SP_VM_PVH), "pvh");
    cleanup();
}

/* The sample a colleague wrote must parse: tests/unit/ -> repository root. */
static void sample_web01(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s", __FILE__);
    char *cut = strstr(p, "tests/unit/test_vmconfig.c");
    CHECK(cut != NULL);
    strcpy(cut, "samples/web01.cfg");
    struct sp_vm_config c;
    struct sp_error err;
    if (sp_vmconfig_parse_file(p, &c, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    CHECK_STR(c.name, "web01");
    CHECK(c.type == SP_VM_HVM && c.memory_mb == 1024 && c.vcpus == 2);
    CHECK_EQ_U64(c.ndisks, 1);
    CHECK_STR(c.disks[0].target, "./web01-disk0.vhd");
    CHECK_STR(c.disks[0].format, "vhd");
    CHECK_STR(c.vifs[0].extra, "type=vif");
    CHECK(strstr(c.extra, "usbdevice = [ \"tablet\" ]\n") != NULL);
    CHECK(strstr(c.extra, "on_crash = \"restart\"\n") != NULL);
    CHECK(strchr(c.extra, '#') == NULL);
    sp_vmconfig_free(&c);
}

TEST_MAIN({"parse_hvm", parse_hvm}, {"parse_pv_builder", parse_pv_builder}, {"round_trip", round_trip},
          {"syntax_error_line", syntax_error_line}, {"bad_disk", bad_disk}, {"missing_keys", missing_keys},
          {"bad_mac", bad_mac}, {"bad_uuid", bad_uuid}, {"format_refuses", format_refuses},
          {"copy_free", copy_free}, {"sample_web01", sample_web01})
