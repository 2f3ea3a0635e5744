#include "archive/ovf.h"
#include "tests/unit/testlib.h"

#include <unistd.h>

/* ---- helpers ------------------------------------------------------------ */

/* A Xen HVM VM: disk1 on IDE 0:0, disk2 on SCSI 0:1, 2 NICs, a CD. */
static void make_sys(struct sp_ovf_system *s, enum sp_ovf_version v)
{
    memset(s, 0, sizeof *s);
    s->version = v;
    snprintf(s->id, sizeof s->id, "web01");
    snprintf(s->name, sizeof s->name, "web01 <prod> & \"db\" \xc3\xa9t\xc3\xa9");
    snprintf(s->description, sizeof s->description, "line1\nline2 'q'");
    snprintf(s->os_type, sizeof s->os_type, "otherLinux64Guest");
    s->os_id = 101;
    s->memory_mb = 4096;
    s->vcpus = 2;
    s->cdrom = true;
    s->nfiles = 2;
    s->files = calloc(2, sizeof *s->files);
    s->ndisks = 2;
    s->disks = calloc(2, sizeof *s->disks);
    for (int i = 0; i < 2; i++) {
        snprintf(s->files[i].id, sizeof s->files[i].id, "file%d", i + 1);
        snprintf(s->files[i].href, sizeof s->files[i].href, "web01-disk%d.vmdk", i + 1);
        s->files[i].size = 1000u + (unsigned)i;
        struct sp_ovf_disk *d = &s->disks[i];
        snprintf(d->disk_id, sizeof d->disk_id, "vmdisk%d", i + 1);
        snprintf(d->file_id, sizeof d->file_id, "file%d", i + 1);
        d->capacity = (uint64_t)(i + 1) << 30;
        d->populated_size = (uint64_t)(i + 1) << 20;
        snprintf(d->format, sizeof d->format, "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized");
        d->controller = i == 0 ? SP_OVF_IDE : SP_OVF_SCSI;
        d->controller_index = 0;
        d->address = i;
    }
    s->nnics = 2;
    s->nics = calloc(2, sizeof *s->nics);
    snprintf(s->nics[0].network, sizeof s->nics[0].network, "VM Network");
    snprintf(s->nics[0].mac, sizeof s->nics[0].mac, "00:16:3e:aa:bb:cc");
    snprintf(s->nics[0].model, sizeof s->nics[0].model, "E1000");
    snprintf(s->nics[1].network, sizeof s->nics[1].network, "backend");
    snprintf(s->nics[1].model, sizeof s->nics[1].model, "VmxNet3");
    snprintf(s->xen_type, sizeof s->xen_type, "hvm");
    snprintf(s->xen_boot, sizeof s->xen_boot, "dc");
    s->xen_extra = strdup("viridian = 1\nvga = \"stdvga\"\n");
}

static void check_equal(const struct sp_ovf_system *a, const struct sp_ovf_system *b)
{
    CHECK(a->version == b->version);
    CHECK(strcmp(a->id, b->id) == 0);
    CHECK(strcmp(a->name, b->name) == 0);
    CHECK(strcmp(a->description, b->description) == 0);
    CHECK(strcmp(a->os_type, b->os_type) == 0);
    CHECK_EQ_U64(a->os_id, b->os_id);
    CHECK_EQ_U64(a->memory_mb, b->memory_mb);
    CHECK_EQ_U64(a->vcpus, b->vcpus);
    CHECK(a->cdrom == b->cdrom);
    CHECK_EQ_U64(a->nfiles, b->nfiles);
    for (int i = 0; i < a->nfiles; i++) {
        CHECK(strcmp(a->files[i].id, b->files[i].id) == 0);
        CHECK(strcmp(a->files[i].href, b->files[i].href) == 0);
        CHECK_EQ_U64(a->files[i].size, b->files[i].size);
        CHECK(strcmp(a->files[i].compression, b->files[i].compression) == 0);
    }
    CHECK_EQ_U64(a->ndisks, b->ndisks);
    for (int i = 0; i < a->ndisks; i++) {
        const struct sp_ovf_disk *x = &a->disks[i], *y = &b->disks[i];
        CHECK(strcmp(x->disk_id, y->disk_id) == 0);
        CHECK(strcmp(x->file_id, y->file_id) == 0);
        CHECK_EQ_U64(x->capacity, y->capacity);
        CHECK_EQ_U64(x->populated_size, y->populated_size);
        CHECK(strcmp(x->format, y->format) == 0);
        CHECK(x->controller == y->controller);
        CHECK_EQ_U64(x->controller_index, y->controller_index);
        CHECK_EQ_U64(x->address, y->address);
    }
    CHECK_EQ_U64(a->nnics, b->nnics);
    for (int i = 0; i < a->nnics; i++) {
        CHECK(strcmp(a->nics[i].network, b->nics[i].network) == 0);
        CHECK(strcmp(a->nics[i].mac, b->nics[i].mac) == 0);
        CHECK(strcmp(a->nics[i].model, b->nics[i].model) == 0);
    }
    CHECK(strcmp(a->xen_type, b->xen_type) == 0);
    CHECK(strcmp(a->xen_boot, b->xen_boot) == 0);
    CHECK(strcmp(a->xen_extra ? a->xen_extra : "", b->xen_extra ? b->xen_extra : "") == 0);
}

static void round_trip_version(enum sp_ovf_version v)
{
    struct sp_ovf_system a, b;
    struct sp_error err;
    char *text;
    size_t len;
    make_sys(&a, v);
    CHECK_OK(sp_ovf_write(&a, &text, &len, &err));
    CHECK(strstr(text, v == SP_OVF_2 ? "ovf:version=\"2.0\"" : "ovf:version=\"1.0\""));
    CHECK(strstr(text, "<rasd:HostResource>ovf:/disk/vmdisk2</rasd:HostResource>"));
    CHECK(strstr(text, "ovf:required=\"false\""));
    if (sp_ovf_parse(text, len, &b, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        CHECK(0);
    }
    check_equal(&a, &b);
    sp_ovf_free(&a);
    sp_ovf_free(&b);
    free(text);
}

static void round_trip_1(void) { round_trip_version(SP_OVF_1); }
static void round_trip_2(void) { round_trip_version(SP_OVF_2); }

static void deterministic(void)
{
    struct sp_ovf_system a;
    struct sp_error err;
    char *t1, *t2;
    size_t l1, l2;
    make_sys(&a, SP_OVF_1);
    CHECK_OK(sp_ovf_write(&a, &t1, &l1, &err));
    CHECK_OK(sp_ovf_write(&a, &t2, &l2, &err));
    CHECK(l1 == l2 && memcmp(t1, t2, l1) == 0);
    sp_ovf_free(&a);
    free(t1);
    free(t2);
}

static void writer_xmllint(void)
{
    CHECK(system("command -v xmllint >/dev/null 2>&1") == 0);
    for (int v = 0; v < 2; v++) {
        struct sp_ovf_system a;
        struct sp_error err;
        char *text;
        size_t len;
        make_sys(&a, v ? SP_OVF_2 : SP_OVF_1);
        CHECK_OK(sp_ovf_write(&a, &text, &len, &err));
        char path[] = "/tmp/test_ovf_XXXXXX";
        int fd = mkstemp(path);
        CHECK(fd >= 0);
        CHECK(write(fd, text, len) == (ssize_t)len);
        close(fd);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "xmllint --noout --nonet '%s'", path);
        int rc = system(cmd);
        unlink(path);
        CHECK(rc == 0);
        sp_ovf_free(&a);
        free(text);
    }
}

static int parse_str(const char *s, struct sp_ovf_system *sys, struct sp_error *err)
{
    return sp_ovf_parse(s, strlen(s), sys, err);
}

static void parse_ok(const char *s, struct sp_ovf_system *sys)
{
    struct sp_error err;
    if (parse_str(s, sys, &err) != 0) {
        fprintf(stderr, "parse: %s\n", err.msg);
        CHECK(0);
    }
}

/* ---- realistic descriptors ------------------------------------------------ */

/* as ovftool 4 writes it (trimmed) */
static const char vmware_ovf[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<!--Generated by VMware ovftool 4.4.0 (build-16360108), UTC time: 2021-02-01T10:00:00.000Z-->\n"
    "<Envelope vmw:buildId=\"build-16360108\" xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\" "
    "xmlns:cim=\"http://schemas.dmtf.org/wbem/wscim/1/common\" xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\" "
    "xmlns:rasd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData\" "
    "xmlns:vmw=\"http://www.vmware.com/schema/ovf\" "
    "xmlns:vssd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData\" "
    "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n"
    "  <References>\n"
    "    <File ovf:href=\"photon-disk1.vmdk\" ovf:id=\"file1\" ovf:size=\"287523840\"/>\n"
    "    <File ovf:href=\"photon-disk2.vmdk\" ovf:id=\"file2\" ovf:size=\"68608\"/>\n"
    "  </References>\n"
    "  <DiskSection>\n"
    "    <Info>Virtual disk information</Info>\n"
    "    <Disk ovf:capacity=\"16\" ovf:capacityAllocationUnits=\"byte * 2^30\" ovf:diskId=\"vmdisk1\" "
    "ovf:fileRef=\"file1\" ovf:format=\"http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized\" "
    "ovf:populatedSize=\"1000000000\"/>\n"
    "    <Disk ovf:capacity=\"512\" ovf:capacityAllocationUnits=\"byte * 2^20\" ovf:diskId=\"vmdisk2\" "
    "ovf:fileRef=\"file2\" ovf:format=\"http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized\"/>\n"
    "  </DiskSection>\n"
    "  <NetworkSection>\n"
    "    <Info>The list of logical networks</Info>\n"
    "    <Network ovf:name=\"VM Network\"><Description>The VM Network network</Description></Network>\n"
    "  </NetworkSection>\n"
    "  <VirtualSystem ovf:id=\"photon\">\n"
    "    <Info>A virtual machine</Info>\n"
    "    <Name>photon</Name>\n"
    "    <OperatingSystemSection ovf:id=\"36\" vmw:osType=\"vmwarePhoton64Guest\">\n"
    "      <Info>The kind of installed guest operating system</Info>\n"
    "    </OperatingSystemSection>\n"
    "    <VirtualHardwareSection>\n"
    "      <Info>Virtual hardware requirements</Info>\n"
    "      <System>\n"
    "        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>\n"
    "        <vssd:InstanceID>0</vssd:InstanceID>\n"
    "        <vssd:VirtualSystemIdentifier>photon</vssd:VirtualSystemIdentifier>\n"
    "        <vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType>\n"
    "      </System>\n"
    "      <Item>\n"
    "        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>\n"
    "        <rasd:Description>Number of Virtual CPUs</rasd:Description>\n"
    "        <rasd:ElementName>2 virtual CPU(s)</rasd:ElementName>\n"
    "        <rasd:InstanceID>1</rasd:InstanceID>\n"
    "        <rasd:ResourceType>3</rasd:ResourceType>\n"
    "        <rasd:VirtualQuantity>2</rasd:VirtualQuantity>\n"
    "        <vmw:CoresPerSocket ovf:required=\"false\">1</vmw:CoresPerSocket>\n"
    "      </Item>\n"
    "      <Item>\n"
    "        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>\n"
    "        <rasd:Description>Memory Size</rasd:Description>\n"
    "        <rasd:ElementName>2048MB of memory</rasd:ElementName>\n"
    "        <rasd:InstanceID>2</rasd:InstanceID>\n"
    "        <rasd:ResourceType>4</rasd:ResourceType>\n"
    "        <rasd:VirtualQuantity>2048</rasd:VirtualQuantity>\n"
    "      </Item>\n"
    "      <Item>\n"
    "        <rasd:Address>0</rasd:Address>\n"
    "        <rasd:Description>SCSI Controller</rasd:Description>\n"
    "        <rasd:ElementName>SCSI Controller 0</rasd:ElementName>\n"
    "        <rasd:InstanceID>3</rasd:InstanceID>\n"
    "        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>\n"
    "        <rasd:ResourceType>6</rasd:ResourceType>\n"
    "      </Item>\n"
    "      <Item ovf:required=\"false\">\n"
    "        <rasd:AutomaticAllocation>false</rasd:AutomaticAllocation>\n"
    "        <rasd:ElementName>Video card</rasd:ElementName>\n"
    "        <rasd:InstanceID>4</rasd:InstanceID>\n"
    "        <rasd:ResourceType>24</rasd:ResourceType>\n"
    "      </Item>\n"
    "      <Item>\n"
    "        <rasd:AddressOnParent>1</rasd:AddressOnParent>\n"
    "        <rasd:ElementName>Hard Disk 2</rasd:ElementName>\n"
    "        <rasd:HostResource>ovf:/disk/vmdisk2</rasd:HostResource>\n"
    "        <rasd:InstanceID>6</rasd:InstanceID>\n"
    "        <rasd:Parent>3</rasd:Parent>\n"
    "        <rasd:ResourceType>17</rasd:ResourceType>\n"
    "      </Item>\n"
    "      <Item>\n"
    "        <rasd:AddressOnParent>0</rasd:AddressOnParent>\n"
    "        <rasd:ElementName>Hard Disk 1</rasd:ElementName>\n"
    "        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>\n"
    "        <rasd:InstanceID>5</rasd:InstanceID>\n"
    "        <rasd:Parent>3</rasd:Parent>\n"
    "        <rasd:ResourceType>17</rasd:ResourceType>\n"
    "        <vmw:Config ovf:required=\"false\" vmw:key=\"backing.writeThrough\" vmw:value=\"false\"/>\n"
    "      </Item>\n"
    "      <Item>\n"
    "        <rasd:AddressOnParent>7</rasd:AddressOnParent>\n"
    "        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>\n"
    "        <rasd:Connection>VM Network</rasd:Connection>\n"
    "        <rasd:Description>VmxNet3 ethernet adapter on &quot;VM Network&quot;</rasd:Description>\n"
    "        <rasd:ElementName>Network adapter 1</rasd:ElementName>\n"
    "        <rasd:InstanceID>7</rasd:InstanceID>\n"
    "        <rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType>\n"
    "        <rasd:ResourceType>10</rasd:ResourceType>\n"
    "        <vmw:Config ovf:required=\"false\" vmw:key=\"wakeOnLanEnabled\" vmw:value=\"false\"/>\n"
    "      </Item>\n"
    "      <vmw:Config ovf:required=\"false\" vmw:key=\"firmware\" vmw:value=\"efi\"/>\n"
    "    </VirtualHardwareSection>\n"
    "    <ProductSection>\n"
    "      <Info>Information about the installed software</Info>\n"
    "      <Product>Photon OS</Product>\n"
    "    </ProductSection>\n"
    "  </VirtualSystem>\n"
    "</Envelope>\n";

static void parse_vmware(void)
{
    struct sp_ovf_system s;
    parse_ok(vmware_ovf, &s);
    CHECK(s.version == SP_OVF_1);
    CHECK(strcmp(s.name, "photon") == 0);
    CHECK(strcmp(s.id, "photon") == 0);
    CHECK(strcmp(s.os_type, "vmwarePhoton64Guest") == 0);
    CHECK_EQ_U64(s.os_id, 36);
    CHECK_EQ_U64(s.memory_mb, 2048);
    CHECK_EQ_U64(s.vcpus, 2);
    CHECK(!s.cdrom);
    CHECK_EQ_U64(s.nfiles, 2);
    CHECK_EQ_U64(s.ndisks, 2);
    /* ordered by AddressOnParent, not document order */
    CHECK(strcmp(s.disks[0].disk_id, "vmdisk1") == 0);
    CHECK_EQ_U64(s.disks[0].capacity, 16ull << 30);
    CHECK_EQ_U64(s.disks[0].populated_size, 1000000000);
    CHECK(s.disks[0].controller == SP_OVF_SCSI);
    CHECK_EQ_U64(s.disks[0].address, 0);
    CHECK(strcmp(s.disks[1].disk_id, "vmdisk2") == 0);
    CHECK_EQ_U64(s.disks[1].capacity, 512ull << 20);
    CHECK_EQ_U64(s.disks[1].address, 1);
    CHECK(strcmp(sp_ovf_find_file(&s, s.disks[1].file_id)->href, "photon-disk2.vmdk") == 0);
    CHECK_EQ_U64(s.nnics, 1);
    CHECK(strcmp(s.nics[0].network, "VM Network") == 0);
    CHECK(strcmp(s.nics[0].model, "VmxNet3") == 0);
    CHECK(s.nics[0].mac[0] == '\0');
    sp_ovf_free(&s);
}

/* as VirtualBox 6 writes OVF 1.0 (trimmed; vbox:Machine abbreviated) */
static const char vbox_ovf[] =
    "<?xml version=\"1.0\"?>\n"
    "<Envelope ovf:version=\"1.0\" xml:lang=\"en-US\" xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\" "
    "xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\" "
    "xmlns:rasd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData\" "
    "xmlns:vssd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData\" "
    "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:vbox=\"http://www.virtualbox.org/ovf/machine\">\n"
    "  <References>\n"
    "    <File ovf:id=\"file1\" ovf:href=\"debian-disk001.vmdk\"/>\n"
    "    <File ovf:id=\"file2\" ovf:href=\"debian-disk002.vmdk\"/>\n"
    "  </References>\n"
    "  <DiskSection>\n"
    "    <Info>List of the virtual disks used in the package</Info>\n"
    "    <Disk ovf:capacity=\"21474836480\" ovf:diskId=\"vmdisk1\" ovf:fileRef=\"file1\" "
    "ovf:format=\"http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized\" "
    "vbox:uuid=\"0b7a0a3b-3b7e-4d3b-a1c1-0f3e1d2c3b4a\"/>\n"
    "    <Disk ovf:capacity=\"1073741824\" ovf:diskId=\"vmdisk2\" ovf:fileRef=\"file2\" "
    "ovf:format=\"http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized\"/>\n"
    "  </DiskSection>\n"
    "  <NetworkSection>\n"
    "    <Info>Logical networks used in the package</Info>\n"
    "    <Network ovf:name=\"NAT\"><Description>Logical network used by this appliance.</Description></Network>\n"
    "  </NetworkSection>\n"
    "  <VirtualSystem ovf:id=\"debian\">\n"
    "    <Info>A virtual machine</Info>\n"
    "    <OperatingSystemSection ovf:id=\"96\">\n"
    "      <Info>The kind of installed guest operating system</Info>\n"
    "      <Description>Debian_64</Description>\n"
    "      <vbox:OSType ovf:required=\"false\">Debian_64</vbox:OSType>\n"
    "    </OperatingSystemSection>\n"
    "    <VirtualHardwareSection>\n"
    "      <Info>Virtual hardware requirements for a virtual machine</Info>\n"
    "      <System>\n"
    "        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>\n"
    "        <vssd:InstanceID>0</vssd:InstanceID>\n"
    "        <vssd:VirtualSystemIdentifier>debian</vssd:VirtualSystemIdentifier>\n"
    "        <vssd:VirtualSystemType>virtualbox-2.2</vssd:VirtualSystemType>\n"
    "      </System>\n"
    "      <Item>\n"
    "        <rasd:Caption>1 virtual CPU</rasd:Caption>\n"
    "        <rasd:Description>Number of virtual CPUs</rasd:Description>\n"
    "        <rasd:ElementName>1 virtual CPU</rasd:ElementName>\n"
    "        <rasd:InstanceID>1</rasd:InstanceID>\n"
    "        <rasd:ResourceType>3</rasd:ResourceType>\n"
    "        <rasd:VirtualQuantity>1</rasd:VirtualQuantity>\n"
    "      </Item>\n"
    "      <Item>\n"
    "        <rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits>\n"
    "        <rasd:Caption>1024 MB of memory</rasd:Caption>\n"
    "        <rasd:InstanceID>2</rasd:InstanceID>\n"
    "        <rasd:ResourceType>4</rasd:ResourceType>\n"
    "        <rasd:VirtualQuantity>1024</rasd:VirtualQuantity>\n"
    "      </Item>\n"
    "      <Item>\n"
    "        <rasd:Address>0</rasd:Address>\n"
    "        <rasd:Caption>ideController0</rasd:Caption>\n"
    "        <rasd:InstanceID>3</rasd:InstanceID>\n"
    "        <rasd:ResourceSubType>PIIX4</rasd:ResourceSubType>\n"
    "        <rasd:ResourceType>5</rasd:ResourceType>\n"
    "      </Item>\n"
    "      <Item>\n"
    "        <rasd:Address>1</rasd:Address>\n"
    "        <rasd:InstanceID>4</rasd:InstanceID>\n"
    "        <rasd:ResourceSubType>PIIX4</rasd:ResourceSubType>\n"
    "        <rasd:ResourceType>5</rasd:ResourceType>\n"
    "      </Item>\n"
    "      <Item>\n"
    "        <rasd:Address>0</rasd:Address>\n"
    "        <rasd:Caption>sataController0</rasd:Caption>\n"
    "        <rasd:InstanceID>5</rasd:InstanceID>\n"
    "        <rasd:ResourceSubType>AHCI</rasd:ResourceSubType>\n"
    "        <rasd:ResourceType>20</rasd:ResourceType>\n"
    "      </Item>\n"
    "      <Item>\n"
    "        <rasd:AddressOnParent>0</rasd:AddressOnParent>\n"
    "        <rasd:Caption>disk1</rasd:Caption>\n"
    "        <rasd:HostResource>/disk/vmdisk1</rasd:HostResource>\n"
    "        <rasd:InstanceID>6</rasd:InstanceID>\n"
    "        <rasd:Parent>5</rasd:Parent>\n"
    "        <rasd:ResourceType>17</rasd:ResourceType>\n"
    "      </Item>\n"
    "      <Item>\n"
    "        <rasd:AddressOnParent>1</rasd:AddressOnParent>\n"
    "        <rasd:Caption>disk2</rasd:Caption>\n"
    "        <rasd:HostResource>/disk/vmdisk2</rasd:HostResource>\n"
    "        <rasd:InstanceID>7</rasd:InstanceID>\n"
    "        <rasd:Parent>4</rasd:Parent>\n"
    "        <rasd:ResourceType>17</rasd:ResourceType>\n"
    "      </Item>\n"
    "      <Item>\n"
    "        <rasd:AddressOnParent>0</rasd:AddressOnParent>\n"
    "        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>\n"
    "        <rasd:Caption>cdrom1</rasd:Caption>\n"
    "        <rasd:InstanceID>8</rasd:InstanceID>\n"
    "        <rasd:Parent>3</rasd:Parent>\n"
    "        <rasd:ResourceType>15</rasd:ResourceType>\n"
    "      </Item>\n"
    "      <Item>\n"
    "        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>\n"
    "        <rasd:Caption>Ethernet adapter on 'NAT'</rasd:Caption>\n"
    "        <rasd:Connection>NAT</rasd:Connection>\n"
    "        <rasd:InstanceID>9</rasd:InstanceID>\n"
    "        <rasd:ResourceSubType>E1000</rasd:ResourceSubType>\n"
    "        <rasd:ResourceType>10</rasd:ResourceType>\n"
    "      </Item>\n"
    "    </VirtualHardwareSection>\n"
    "    <vbox:Machine ovf:required=\"false\" version=\"1.16-linux\" uuid=\"{8e3f}\" name=\"debian\">\n"
    "      <ovf:Info>Complete VirtualBox machine configuration in VirtualBox format</ovf:Info>\n"
    "      <Hardware><CPU count=\"1\"/><Memory RAMSize=\"1024\"/></Hardware>\n"
    "    </vbox:Machine>\n"
    "  </VirtualSystem>\n"
    "</Envelope>\n";

static void parse_vbox(void)
{
    struct sp_ovf_system s;
    parse_ok(vbox_ovf, &s);
    CHECK(strcmp(s.name, "debian") == 0); /* no Name: VirtualSystemIdentifier */
    CHECK_EQ_U64(s.os_id, 96);
    CHECK_EQ_U64(s.memory_mb, 1024);
    CHECK_EQ_U64(s.vcpus, 1);
    CHECK(s.cdrom);
    CHECK_EQ_U64(s.ndisks, 2);
    /* IDE before SATA */
    CHECK(strcmp(s.disks[0].disk_id, "vmdisk2") == 0);
    CHECK(s.disks[0].controller == SP_OVF_IDE);
    CHECK_EQ_U64(s.disks[0].controller_index, 1);
    CHECK_EQ_U64(s.disks[0].address, 1);
    CHECK(strcmp(s.disks[1].disk_id, "vmdisk1") == 0);
    CHECK(s.disks[1].controller == SP_OVF_SATA);
    CHECK_EQ_U64(s.disks[1].capacity, 21474836480ull);
    CHECK_EQ_U64(s.files[0].size, 0);
    CHECK_EQ_U64(s.nnics, 1);
    CHECK(strcmp(s.nics[0].model, "E1000") == 0);
    CHECK(strcmp(s.nics[0].network, "NAT") == 0);
    sp_ovf_free(&s);
}

/* oVirt / XenServer-flavoured: xsi:type Sections and Content, trailing-slash
 * namespace, InstanceId spelling, GigaBytes memory, dashed upper-case MAC,
 * StorageItem/EthernetPortItem, an optional Citrix section. */
static const char xen_ovf[] =
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    "<ovf:Envelope xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1/\" "
    "xmlns:rasd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData\" "
    "xmlns:vssd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData\" "
    "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xenovf=\"http://schemas.citrix.com/ovf/envelope/1\" "
    "ovf:version=\"0.9\">\r\n"
    "  <References><File ovf:href=\"a1b2c3\" ovf:id=\"a1b2c3\" ovf:size=\"5368709120\"/></References>\r\n"
    "  <Section xsi:type=\"ovf:DiskSection_Type\">\r\n"
    "    <Info>List of Virtual Disks</Info>\r\n"
    "    <Disk ovf:diskId=\"d-1\" ovf:fileRef=\"a1b2c3\" ovf:capacity=\"5\" ovf:capacityAllocationUnits=\"byte * 2^30\" "
    "ovf:format=\"http://www.vmware.com/specifications/vmdk.html#sparse\"/>\r\n"
    "  </Section>\r\n"
    "  <Section xsi:type=\"ovf:NetworkSection_Type\"><Info>Networks</Info><Network ovf:name=\"ovirtmgmt\"/></Section>\r\n"
    "  <Content ovf:id=\"out\" xsi:type=\"ovf:VirtualSystem_Type\">\r\n"
    "    <Name>db02</Name>\r\n"
    "    <xenovf:VirtualSystemOtherConfigurationData ovf:required=\"false\" Name=\"HVM_boot_params\">"
    "order=dc</xenovf:VirtualSystemOtherConfigurationData>\r\n"
    "    <Section xsi:type=\"ovf:OperatingSystemSection_Type\" ovf:id=\"80\" ovf:required=\"false\">"
    "<Info>Guest OS</Info><Description>RHEL 8</Description></Section>\r\n"
    "    <Section xsi:type=\"ovf:VirtualHardwareSection_Type\">\r\n"
    "      <Info>4 CPU, 2 GB</Info>\r\n"
    "      <Item><rasd:InstanceId>c1</rasd:InstanceId><rasd:ResourceType>3</rasd:ResourceType>"
    "<rasd:VirtualQuantity>4</rasd:VirtualQuantity></Item>\r\n"
    "      <Item><rasd:AllocationUnits>GigaBytes</rasd:AllocationUnits><rasd:InstanceId>m1</rasd:InstanceId>"
    "<rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>\r\n"
    "      <Item><rasd:Address>0</rasd:Address><rasd:InstanceId>ide0</rasd:InstanceId>"
    "<rasd:ResourceType>5</rasd:ResourceType></Item>\r\n"
    "      <StorageItem><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:HostResource>grp-9/d-1</rasd:HostResource>"
    "<rasd:InstanceId>d-1</rasd:InstanceId><rasd:Parent>ide0</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType>"
    "</StorageItem>\r\n"
    "      <EthernetPortItem><rasd:Address>52-54-00-AB-CD-EF</rasd:Address><rasd:Connection>ovirtmgmt</rasd:Connection>"
    "<rasd:InstanceId>n1</rasd:InstanceId><rasd:ResourceSubType>VirtioNet</rasd:ResourceSubType>"
    "<rasd:ResourceType>10</rasd:ResourceType></EthernetPortItem>\r\n"
    "      <Item><rasd:InstanceId>cd</rasd:InstanceId><rasd:Parent>ide0</rasd:Parent>"
    "<rasd:ResourceType>16</rasd:ResourceType></Item>\r\n"
    "    </Section>\r\n"
    "  </Content>\r\n"
    "</ovf:Envelope>\r\n";

static void parse_xen_ovirt(void)
{
    struct sp_ovf_system s;
    parse_ok(xen_ovf, &s);
    CHECK(s.version == SP_OVF_1);
    CHECK(strcmp(s.name, "db02") == 0);
    CHECK_EQ_U64(s.os_id, 80);
    CHECK_EQ_U64(s.vcpus, 4);
    CHECK_EQ_U64(s.memory_mb, 2048);
    CHECK(s.cdrom);
    CHECK_EQ_U64(s.ndisks, 1);
    CHECK_EQ_U64(s.disks[0].capacity, 5ull << 30);
    CHECK(s.disks[0].controller == SP_OVF_IDE);
    CHECK_EQ_U64(s.nnics, 1);
    CHECK(strcmp(s.nics[0].mac, "52:54:00:ab:cd:ef") == 0);
    CHECK(strcmp(s.nics[0].model, "VirtioNet") == 0);
    sp_ovf_free(&s);
}

/* Xen Orchestra's minimal template (OVF 1.0, everything on one IDE) */
static const char xo_ovf[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\" xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\" "
    "xmlns:rasd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData\" "
    "xmlns:vssd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData\">\n"
    "<References><File ovf:href=\"disk0.vmdk\" ovf:id=\"file0\"/></References>\n"
    "<DiskSection><Info>Virtual disk information</Info>"
    "<Disk ovf:capacity=\"10737418240\" ovf:capacityAllocationUnits=\"byte\" ovf:diskId=\"vmdisk0\" "
    "ovf:fileRef=\"file0\" ovf:format=\"http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized\"/>"
    "</DiskSection>\n"
    "<VirtualSystem ovf:id=\"xo\"><Info>A virtual machine</Info><Name>xo vm</Name>"
    "<OperatingSystemSection ovf:id=\"1\"><Info>The kind of installed guest operating system</Info>"
    "</OperatingSystemSection>"
    "<VirtualHardwareSection><Info>Virtual hardware requirements</Info>"
    "<Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType>"
    "<rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>"
    "<Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID>"
    "<rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>512</rasd:VirtualQuantity></Item>"
    "<Item><rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceType>5</rasd:ResourceType></Item>"
    "<Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/vmdisk0</rasd:HostResource>"
    "<rasd:InstanceID>6</rasd:InstanceID><rasd:Parent>5</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>"
    "</VirtualHardwareSection></VirtualSystem></Envelope>\n";

static void parse_xo(void)
{
    struct sp_ovf_system s;
    parse_ok(xo_ovf, &s);
    CHECK(strcmp(s.name, "xo vm") == 0);
    CHECK_EQ_U64(s.memory_mb, 512);
    CHECK_EQ_U64(s.vcpus, 1);
    CHECK_EQ_U64(s.ndisks, 1);
    CHECK_EQ_U64(s.disks[0].capacity, 10737418240ull);
    CHECK(s.disks[0].controller == SP_OVF_IDE);
    CHECK_EQ_U64(s.nnics, 0);
    CHECK(s.xen_extra == NULL && s.xen_type[0] == '\0');
    sp_ovf_free(&s);
}

/* ---- errors ----------------------------------------------------------------- */

static void expect_err(const char *text, const char *needle)
{
    struct sp_ovf_system s;
    struct sp_error err;
    CHECK(parse_str(text, &s, &err) < 0);
    CHECK(strncmp(err.msg, "ovf: ", 5) == 0);
    if (!strstr(err.msg, needle)) {
        fprintf(stderr, "message: %s\n", err.msg);
        CHECK(0);
    }
    CHECK(s.files == NULL && s.disks == NULL && s.nics == NULL);
}

/* xo_ovf with the first occurrence of from replaced by to */
static char *patched(const char *from, const char *to)
{
    const char *at = strstr(xo_ovf, from);
    CHECK(at);
    size_t n = strlen(xo_ovf) + strlen(to) + 1;
    char *s = malloc(n);
    CHECK(s);
    snprintf(s, n, "%.*s%s%s", (int)(at - xo_ovf), xo_ovf, to, at + strlen(from));
    return s;
}

static void rejects_not_well_formed(void)
{
    expect_err("<Envelope><References></Envelope>", "not well-formed");
    expect_err("", "not well-formed");
    char *s = patched("</VirtualSystem>", "</VirtualSystm>");
    expect_err(s, "not well-formed");
    free(s);
}

static void rejects_doctype(void)
{
    expect_err("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 "
               "\"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]>\n<Envelope>&lol2;</Envelope>",
               "DOCTYPE");
    expect_err("<?xml version=\"1.0\"?>\n<!DOCTYPE Envelope [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n"
               "<Envelope><Name>&xxe;</Name></Envelope>",
               "DOCTYPE");
    expect_err("<!DOCTYPE Envelope SYSTEM \"http://example.com/x.dtd\"><Envelope/>", "DOCTYPE");
}

static void rejects_required_section(void)
{
    char *s = patched("<VirtualHardwareSection>",
                      "<x:FancySection xmlns:x=\"urn:x\" ovf:required=\"true\"><Info>i</Info></x:FancySection>"
                      "<VirtualHardwareSection>");
    expect_err(s, "required section FancySection is not understood");
    free(s);
    /* the same, optional, is ignored */
    struct sp_ovf_system sys;
    s = patched("<VirtualHardwareSection>",
                "<x:FancySection xmlns:x=\"urn:x\" ovf:required=\"false\"><Info>i</Info></x:FancySection>"
                "<VirtualHardwareSection>");
    parse_ok(s, &sys);
    sp_ovf_free(&sys);
    free(s);
    /* at envelope level too */
    s = patched("<DiskSection>", "<Section xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
                                 "xsi:type=\"ovf:Odd_Type\" ovf:required=\"true\"/><DiskSection>");
    expect_err(s, "required section Odd is not understood");
    free(s);
}

static void rejects_bad_href(void)
{
    static const char *const bad[] = {"../disk0.vmdk", "sub/disk0.vmdk", "/etc/passwd", "..", "a\\b",
                                      "http://example.com/disk0.vmdk"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char attr[300];
        snprintf(attr, sizeof attr, "ovf:href=\"%s\"", bad[i]);
        char *s = patched("ovf:href=\"disk0.vmdk\"", attr);
        expect_err(s, "not a plain member name");
        free(s);
    }
    char long_name[300];
    char as[257];
    memset(as, 'a', 256);
    as[256] = '\0';
    snprintf(long_name, sizeof long_name, "ovf:href=\"%s\"", as);
    char *s = patched("ovf:href=\"disk0.vmdk\"", long_name);
    expect_err(s, "not a plain member name");
    free(s);
    /* the writer refuses the same */
    struct sp_ovf_system sys;
    struct sp_error err;
    char *text;
    size_t len;
    make_sys(&sys, SP_OVF_1);
    snprintf(sys.files[0].href, sizeof sys.files[0].href, "../x.vmdk");
    CHECK(sp_ovf_write(&sys, &text, &len, &err) == SP_EINVAL);
    sp_ovf_free(&sys);
}

static void rejects_missing_file(void)
{
    char *s = patched("ovf:fileRef=\"file0\"", "ovf:fileRef=\"file9\"");
    expect_err(s, "disk vmdisk0 refers to missing file file9");
    free(s);
    s = patched("ovf:/disk/vmdisk0", "ovf:/disk/vmdisk7");
    expect_err(s, "names no Disk");
    free(s);
    s = patched("<rasd:Parent>5</rasd:Parent>", "<rasd:Parent>2</rasd:Parent>");
    expect_err(s, "is not a disk controller");
    free(s);
}

/* VMware's ovf:chunkSize: how many chunk members, their names and sizes. */
static void parse_chunks(void)
{
    struct sp_ovf_system s;
    char *t = patched("ovf:id=\"file0\"/>", "ovf:id=\"file0\" ovf:size=\"1000\" ovf:chunkSize=\"300\"/>");
    parse_ok(t, &s);
    free(t);
    const struct sp_ovf_file *f = &s.files[0];
    CHECK_EQ_U64(f->chunk_size, 300);
    CHECK_EQ_U64(f->nchunks, 4);
    CHECK_EQ_U64(sp_ovf_chunk_bytes(f, 0), 300);
    CHECK_EQ_U64(sp_ovf_chunk_bytes(f, 3), 100);
    CHECK_EQ_U64(sp_ovf_chunk_bytes(f, 4), 0);
    char name[300];
    sp_ovf_chunk_name(f, 1, name, sizeof name);
    CHECK(strcmp(name, "disk0.vmdk.000000001") == 0);
    int k = -1;
    CHECK(sp_ovf_chunk_of(f, "disk0.vmdk.000000003", &k) && k == 3);
    CHECK(sp_ovf_chunk_of(f, "disk0.vmdk.000000009", &k) && k == 9); /* the reader says it is beyond */
    CHECK(!sp_ovf_chunk_of(f, "disk0.vmdk.3", &k));
    CHECK(!sp_ovf_chunk_of(f, "disk0.vmdk.00000000x", &k));
    CHECK(!sp_ovf_chunk_of(f, "disk0.vmdk", &k));
    sp_ovf_free(&s);
    /* a file without chunkSize has no chunk members */
    parse_ok(xo_ovf, &s);
    CHECK(s.files[0].nchunks == 0 && !sp_ovf_chunk_of(&s.files[0], "disk0.vmdk.000000000", &k));
    sp_ovf_free(&s);
}

static void rejects_bad_chunks(void)
{
    static const struct {
        const char *attrs, *msg;
    } bad[] = {{"ovf:chunkSize=\"300\"", "without ovf:size"},
               {"ovf:size=\"1000\" ovf:chunkSize=\"0\"", "bad ovf:chunkSize"},
               {"ovf:size=\"1000\" ovf:chunkSize=\"-1\"", "bad ovf:chunkSize"},
               {"ovf:size=\"1000000000000\" ovf:chunkSize=\"1\"", "chunks"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char to[200];
        snprintf(to, sizeof to, "ovf:id=\"file0\" %s/>", bad[i].attrs);
        char *t = patched("ovf:id=\"file0\"/>", to);
        expect_err(t, bad[i].msg);
        free(t);
    }
}

/* A CD item whose HostResource names a Disk: that disk is the CD's image
 * (VirtualBox's ISO), not a hard disk. */
static void parse_cd_image(void)
{
    struct sp_ovf_system s;
    char *t = patched("<rasd:ResourceType>17</rasd:ResourceType></Item>", "<rasd:ResourceType>15</rasd:ResourceType></Item>");
    parse_ok(t, &s);
    free(t);
    CHECK(s.cdrom);
    CHECK_EQ_U64(s.ndisks, 1);
    CHECK(s.disks[0].cd);
    sp_ovf_free(&s);
    parse_ok(xo_ovf, &s); /* the same as a hard disk */
    CHECK(!s.cdrom && s.ndisks == 1 && !s.disks[0].cd);
    sp_ovf_free(&s);
    /* a CD item naming a disk a hard disk item has */
    t = patched("</VirtualHardwareSection>", "<Item><rasd:HostResource>ovf:/disk/vmdisk0</rasd:HostResource>"
                                            "<rasd:InstanceID>9</rasd:InstanceID><rasd:ResourceType>15</rasd:ResourceType>"
                                            "</Item></VirtualHardwareSection>");
    expect_err(t, "attached twice");
    free(t);
}

/* XenCenter: encoding="utf-16" declared over UTF-8 bytes without a byte
 * order mark is read as UTF-8; not UTF-8 either: refused, saying so. */
static void parse_utf16_label(void)
{
    struct sp_ovf_system s;
    char *t = patched("encoding=\"UTF-8\"", "encoding=\"utf-16\"");
    parse_ok(t, &s);
    CHECK_EQ_U64(s.ndisks, 1);
    sp_ovf_free(&s);
    free(t);
    t = patched("encoding=\"UTF-8\"?>", "encoding=\"UTF-16\"?><!-- caf\xe9 -->");
    expect_err(t, "not UTF-8");
    free(t);
    t = patched("encoding=\"UTF-8\"?>", "encoding=\"utf-16\"?><!DOCTYPE x [<!ENTITY e \"e\">]>");
    expect_err(t, "document type declaration");
    free(t);
}

TEST_MAIN({"round_trip_1", round_trip_1}, {"round_trip_2", round_trip_2}, {"deterministic", deterministic},
          {"writer_xmllint", writer_xmllint}, {"parse_vmware", parse_vmware}, {"parse_vbox", parse_vbox},
          {"parse_xen_ovirt", parse_xen_ovirt}, {"parse_xo", parse_xo},
          {"rejects_not_well_formed", rejects_not_well_formed}, {"rejects_doctype", rejects_doctype},
          {"rejects_required_section", rejects_required_section}, {"rejects_bad_href", rejects_bad_href},
          {"rejects_missing_file", rejects_missing_file}, {"parse_chunks", parse_chunks},
          {"rejects_bad_chunks", rejects_bad_chunks}, {"parse_cd_image", parse_cd_image},
          {"parse_utf16_label", parse_utf16_label})
