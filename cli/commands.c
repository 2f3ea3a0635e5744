/* The command table (cli/commands.h): what each command takes and says. */
#include <string.h>

#include "cli/commands.h"
#include "cli/cli.h"

#define FORCE_OPT {"--force", NULL, NULL, "replace OUT if it exists (else an existing OUT is an error)"}
/* s3://BUCKET/KEY where an archive goes or comes from (cli/cli_s3.c) */
#define S3_OPTS                                                                                              \
    {"--endpoint", NULL, "URL", "S3: the server (default $AWS_ENDPOINT_URL, else AWS); addressed path-style"}, \
        {"--ca-bundle", NULL, "FILE", "S3: trust these CA certificates (TLS is always verified)"},          \
        {"--jobs", NULL, "N", "S3: requests in flight per archive (default 4; -j is export's --parallel)"}

const struct cli_group CLI_GROUPS[] = {
    {"disk", "disk images (VHD chains, VMDK, qcow2, raw) without a store"},
    {"vm", "VMs in the store"},
    {"snapshot", "snapshots of a VM in the store"},
    {"store", "the store itself"},
};
const size_t CLI_NGROUPS = sizeof CLI_GROUPS / sizeof CLI_GROUPS[0];

const struct cli_opt_def CLI_GLOBAL_OPTS[] = {
    {"--store", NULL, "DIR", "the store (default: $SNAPPORT_STORE, else ./snapport-store)"},
    {"--json", NULL, NULL, "one JSON document on stdout, success or failure (docs/json.md)"},
    {"-q", NULL, NULL, "errors only: no info lines, no notes, no progress"},
    {"-p", NULL, NULL, "progress on stderr (the default when stderr is a terminal)"},
    {"--help", "-h", NULL, "this help, or a command's (snapport COMMAND --help)"},
    {"--version", NULL, NULL, "the version"},
    {NULL, NULL, NULL, NULL},
};

const char CLI_ABOUT[] =
    "snapport snapshots Xen VMs, flattens their VHD chains and moves them as XVA (XenServer, XCP-ng) or OVA "
    "(OVF 1.0/2.0 with streamOptimized VMDK disks) archives; it imports both back as new VMs, and keeps "
    "VMs, snapshots and their differencing disks in a store (a folder with a SQLite catalog).";

const struct cli_text_item CLI_EXIT_STATUS[] = {
    {"0", "success; a check or comparison found nothing"},
    {"1", "a check found damage, or a comparison a difference"},
    {"2", "usage: an unknown command or option, a missing argument, a bad value"},
    {"3", "failure: a file that cannot be read or written, a full disk, a lock held, a refusal"},
    {"128+N", "stopped by signal N (INT, TERM, HUP); what the command made is removed"},
    {NULL, NULL},
};

const struct cli_text_item CLI_ENVIRONMENT[] = {
    {"SNAPPORT_STORE", "the store when --store is not given (else ./snapport-store)"},
    {"SNAPPORT_LOCK_TIMEOUT", "seconds to wait for the store's lock (default 60; 0 fails at once)"},
    {"TMPDIR", "where an OVA read from a pipe and an OVA written to stdout or S3 keep their disks meanwhile"},
    {"AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN", "S3 keys (else AWS_PROFILE's in "
                                                                    "~/.aws/credentials)"},
    {"AWS_REGION, AWS_ENDPOINT_URL, AWS_CA_BUNDLE", "S3 region (else ~/.aws/config's), server, trusted CAs"},
    {NULL, NULL},
};

const struct cli_text_item CLI_FILES[] = {
    {"STORE/catalog.db", "the store's SQLite catalog: VMs, snapshots, VDIs, pending work"},
    {"STORE/vdis/", "the VDIs: VHD files, one per disk layer, and memory images"},
    {"STORE/staging/", "an import's disks until it registers the VM"},
    {"STORE/lock", "held while a command changes the store; readers share it"},
    {NULL, NULL},
};

const char CLI_EXAMPLES[] = "snapport vm create --config web.cfg\n"
                            "snapport snapshot create web --name before-upgrade\n"
                            "snapport export web -o web.xva --compress zstd\n"
                            "snapport export web --snapshot before-upgrade -o web.ova\n"
                            "snapport verify web.ova\n"
                            "snapport import appliance.ova --name web2\n"
                            "snapport convert web.xva web.ova\n";

static int cmd_help_run(struct cli *c, const struct cli_args *a);

const struct cli_cmd CLI_COMMANDS[] = {
    {"disk info", cmd_disk_info, "IMAGE", 1, "format, sizes and the chain of a disk image",
     "Prints the image's format, its virtual size, how many bytes of data it holds, and the files it is made of: "
     "for a VHD the chain from the leaf to its base, for a VMDK its extent files.",
     "snapport disk info leaf.vhd\nsnapport --json disk info disk.vmdk",
     {{NULL, NULL, NULL, NULL}}},
    {"disk check", cmd_disk_check, "IMAGE", 1, "the structure of a disk image and its chain",
     "Reads every structure of the image and of each file of its chain (footers, headers, block tables, "
     "bitmaps, grain tables) and lists every problem on stdout. Exit 1 when it finds damage.",
     "snapport disk check leaf.vhd",
     {{NULL, NULL, NULL, NULL}}},
    {"disk create", cmd_disk_create, "OUT.vhd --size SIZE", 1, "a new dynamic or differencing VHD",
     "Creates an empty dynamic VHD of --size, or with --parent a differencing VHD over P.vhd (the size and "
     "block size are the parent's).",
     "snapport disk create base.vhd --size 20G\nsnapport disk create leaf.vhd --parent base.vhd",
     {{"--size", NULL, "SIZE", "the virtual size (K, M, G, T: powers of 1024)"},
      {"--parent", NULL, "P.vhd", "make a differencing disk over this VHD"},
      {"--block-size", NULL, "SIZE", "the VHD block size (default 2M, or the parent's)"},
      FORCE_OPT,
      {NULL, NULL, NULL, NULL}}},
    {"disk write", cmd_disk_write, "IMAGE --offset N", 1, "write bytes into a disk image",
     "Writes a file's bytes (--from) or --length bytes of one value (--pattern) at --offset of the image's "
     "virtual disk. The image must be writable by snapport (a VHD).",
     "snapport disk write leaf.vhd --offset 1M --pattern 0xAB --length 64K",
     {{"--offset", NULL, "N", "where to write, in bytes of the virtual disk (K, M, G, T)"},
      {"--from", NULL, "FILE", "the bytes to write"},
      {"--pattern", NULL, "BYTE", "write this byte value (0-255 or 0xNN)"},
      {"--length", NULL, "N", "how many bytes (with --pattern; with --from at most that many)"},
      {NULL, NULL, NULL, NULL}}},
    {"disk flatten", cmd_disk_flatten, "IMAGE -o OUT", 1, "one image with the whole chain's content",
     "Reads the image through its whole chain and writes one image with the same content. The format is "
     "--format, else OUT's extension (any case); no extension is raw, an unknown one or one that --format "
     "contradicts is refused. Only data is read and written: the cost follows the data, not "
     "the virtual size. OUT appears only when complete, synced to disk unless --no-sync.",
     "snapport disk flatten leaf.vhd -o disk.vmdk\nsnapport disk flatten leaf.vhd -o disk.img --format raw",
     {{"--output", "-o", "OUT", "the new image"},
      {"--format", NULL, "raw|vhd|vmdk", "the output's format (else from OUT's extension; none, .raw or .img: "
                                         "raw)"},
      FORCE_OPT,
      {"--no-sync", NULL, NULL, "do not fsync OUT (faster; not durable across a power cut)"},
      {NULL, NULL, NULL, NULL}}},
    {"disk compare", cmd_disk_compare, "A B", 2, "whether two images hold the same content",
     "Compares the virtual content of two images of any formats. Exit 0 when identical, 1 when they differ "
     "(the first differing offset is printed). Images of different sizes differ, unless --lenient.",
     "snapport disk compare leaf.vhd disk.raw",
     {{"--lenient", NULL, NULL, "a larger image whose extra bytes are all zero is identical (qemu-img compare's "
                                "default)"},
      {NULL, NULL, NULL, NULL}}},

    {"vm create", cmd_vm_create, "--config FILE.cfg", 0, "a VM in the store from an xl.cfg",
     "Reads an xl.cfg (as `xl create` takes it) and copies its disks into the store as VHDs. The VM is halted.",
     "snapport vm create --config /etc/xen/web.cfg",
     {{"--config", NULL, "FILE.cfg", "the VM's xl.cfg"}, {NULL, NULL, NULL, NULL}}},
    {"vm list", cmd_vm_list, "", 0, "the VMs in the store",
     "One line per VM: its UUID, name, state, vCPUs, memory, disks and snapshots.", "snapport vm list",
     {{"--names", NULL, NULL, "only the names, one per line (for scripts and completion)"},
      {NULL, NULL, NULL, NULL}}},
    {"vm show", cmd_vm_show, "VM", 1, "one VM or snapshot: its disks, NICs, memory image",
     "VM is a name or UUID; a snapshot's name or UUID shows the snapshot.", "snapport vm show web",
     {{NULL, NULL, NULL, NULL}}},
    {"vm config", cmd_vm_config, "VM", 1, "the VM's xl.cfg",
     "Prints an xl.cfg that `xl create` accepts, its disks pointing into the store; or writes it to -o.",
     "snapport vm config web -o web.cfg",
     {{"--output", "-o", "FILE.cfg", "write the config here instead of stdout"}, FORCE_OPT,
      {NULL, NULL, NULL, NULL}}},
    {"vm destroy", cmd_vm_destroy, "VM", 1, "remove a VM and its snapshots from the store",
     "Removes the VM, its snapshots and every disk nothing else needs.", "snapport vm destroy web",
     {{NULL, NULL, NULL, NULL}}},
    {"vm suspend", cmd_vm_suspend, "VM --image FILE", 1, "attach a saved memory image",
     "Attaches a memory image saved with `xl save`; the VM becomes suspended and its snapshots and exports "
     "carry the memory.",
     "snapport vm suspend web --image web.save",
     {{"--image", NULL, "FILE", "the memory image (from `xl save`)"}, {NULL, NULL, NULL, NULL}}},
    {"vm halt", cmd_vm_halt, "VM", 1, "drop a suspended VM's memory image",
     "The VM becomes halted; its next start boots.", "snapport vm halt web", {{NULL, NULL, NULL, NULL}}},

    {"snapshot create", cmd_snapshot_create, "VM", 1, "a snapshot of a VM",
     "Freezes the VM's disks (their leaves become read-only, new leaves take the writes) and its config. At "
     "most 30 snapshots per VM.",
     "snapport snapshot create web --name before-upgrade",
     {{"--name", NULL, "NAME", "the snapshot's name (default: the VM's name and the time)"},
      {"--memory", NULL, NULL, "also keep the VM's memory image (a suspended VM's)"},
      {NULL, NULL, NULL, NULL}}},
    {"snapshot list", cmd_snapshot_list, "VM", 1, "a VM's snapshots",
     "The snapshot tree, oldest first; * marks the one the VM stands on.", "snapport snapshot list web",
     {{"--names", NULL, NULL, "only the names, one per line (for scripts and completion)"},
      {NULL, NULL, NULL, NULL}}},
    {"snapshot revert", cmd_snapshot_revert, "VM SNAPSHOT", 2, "bring a VM back to a snapshot",
     "The VM's disks, config and memory become the snapshot's; what the VM wrote since is dropped.",
     "snapport snapshot revert web before-upgrade", {{NULL, NULL, NULL, NULL}}},
    {"snapshot delete", cmd_snapshot_delete, "VM SNAPSHOT", 2, "remove a snapshot",
     "The snapshot goes at once; merging its differencing disks into their neighbours is left to `snapport "
     "gc`, which does it safely (an interrupted merge is finished or undone).",
     "snapport snapshot delete web before-upgrade", {{NULL, NULL, NULL, NULL}}},

    {"clone", cmd_clone, "VM|SNAPSHOT --name NEW", 1, "a new VM from a VM or a snapshot",
     "A fast clone shares the source's disks (new differencing leaves); --full copies them.",
     "snapport clone web --name web-test\nsnapport clone before-upgrade --name web-old --full",
     {{"--name", NULL, "NEW", "the new VM's name"},
      {"--full", NULL, NULL, "copy the disks into independent ones"},
      {NULL, NULL, NULL, NULL}}},
    {"gc", cmd_gc, "", 0, "coalesce and remove what nothing needs",
     "Runs the merges deleted snapshots left pending and removes files nothing refers to. --dry-run says what "
     "it would do, how much it frees and how much free space it needs meanwhile.",
     "snapport gc --dry-run",
     {{"--dry-run", NULL, NULL, "only say what would be done"}, {NULL, NULL, NULL, NULL}}},
    {"store check", cmd_store_check, "", 0, "the catalog and the files agree",
     "Checks every VDI file against the catalog and every chain's links; lists every problem. Exit 1 when "
     "it finds one.",
     "snapport --store /srv/snapport store check", {{NULL, NULL, NULL, NULL}}},

    {"export", cmd_export, "VM... -o OUT", CLI_POS_MAX, "VMs or a snapshot as XVA or OVA archives",
     "Writes the VM (or --snapshot) as an archive: an XVA (XenServer, XCP-ng) or an OVA (OVF and "
     "streamOptimized VMDKs). A VM is exported from a temporary snapshot, so it may change meanwhile. The "
     "format is --format, else OUT's extension (any case; --format must agree with it); -o - writes to stdout. "
     "OUT appears only when complete. What an OVA leaves out (a memory image, a NIC model) is said on stderr. "
     "Several VMs, --all, or an OUT that is a folder (DIR/) or an S3 prefix (s3://BUCKET/PREFIX/) make a "
     "batch: one archive per VM named by --name-template (default {name}-{uuid}.{ext}; {name} with '/', "
     "control characters and a leading '.' as '_'; {date} is the run's UTC YYYYMMDD; format --format, "
     "default xva), --parallel VMs at once, each exported as alone; a VM named twice is exported once. A "
     "failed VM does not stop the others; a summary follows; exit 1 when any failed.",
     "snapport export web -o web.xva --compress zstd\nsnapport export web --snapshot nightly -o - | ssh backup "
     "'cat > web.xva'\nsnapport export --all -o s3://backups/nightly/ -j 2\nsnapport export web db -o backup/ "
     "--name-template '{name}-{date}.{ext}'",
     {{"--output", "-o", "OUT", "the archive (.xva or .ova), - for stdout; a batch's DIR/ or "
                                "s3://BUCKET/PREFIX/"},
      {"--snapshot", NULL, "SNAPSHOT", "export this snapshot of VM"},
      {"--format", NULL, "xva|ova", "the archive's format (else from OUT's extension)"},
      {"--compress", NULL, "none|gzip|zstd", "XVA: compress the whole stream"},
      {"--digest", NULL, "xxhash|sha1|sha256|sha512", "XVA: block checksums (xxhash, sha1); OVA: the "
                                                      "manifest's (sha256, sha1, sha512)"},
      {"--ovf-version", NULL, "1.0|2.0", "OVA: the OVF version (default 1.0)"},
      {"--sign", NULL, "KEY.pem", "OVA: sign the manifest with this private key"},
      {"--cert", NULL, "CERT.pem", "OVA: the certificate that goes with --sign"},
      {"--level", NULL, "N", "OVA: the VMDK grains' deflate level 1..12 (default 4); XVA: of --compress, "
                             "gzip 1..12 (default 6), zstd 1..19 (default 3)"},
      {"--part-size", NULL, "SIZE", "S3: a fixed part size, 5M..5G (default 16M, doubling every 1000 parts)"},
      {"--resume-file", NULL, "FILE", "S3: note the upload here; a run killed before it could abort is "
                                      "resumed by the next with this FILE (not in a batch)"},
      S3_OPTS,
      FORCE_OPT,
      {"--all", NULL, NULL, "batch: every VM of the store"},
      {"--parallel", "-j", "N", "batch: VMs exported at once (default 1; --jobs is each upload's requests)"},
      {"--name-template", NULL, "TEMPLATE", "batch: the archives' names, from {name} {uuid} {date} {ext}"},
      {NULL, NULL, NULL, NULL}}},
    {"import", cmd_import, "ARCHIVE", 1, "an XVA, OVA or OVF as a new VM",
     "Reads an .xva, an .ova, an .ovf (or its folder) or - (stdin), checks every checksum while it reads, and "
     "registers a new VM with new UUIDs only when everything was read and verified.",
     "snapport import web.xva --name web-restored\nsnapport import appliance.ova",
     {{"--name", NULL, "NEW", "the new VM's name (default: the archive's)"},
      {"--format", NULL, "xva|ova", "the archive's format (else guessed from its content)"},
      S3_OPTS,
      {NULL, NULL, NULL, NULL}}},
    {"verify", cmd_verify, "ARCHIVE", 1, "every checksum and the structure of an XVA or OVA",
     "Reads the whole archive as an import would, without a store: every checksum, manifest line, signature "
     "and disk structure. Exit 1 when the archive is damaged.",
     "snapport verify web.ova",
     {{"--format", NULL, "xva|ova", "the archive's format (else guessed from its content)"},
      S3_OPTS,
      {NULL, NULL, NULL, NULL}}},
    {"info", cmd_info, "ARCHIVE", 1, "what an XVA or OVA holds",
     "The VM (name, boot, memory, vCPUs), its disks with their virtual and stored sizes, and the checksum "
     "kind. Reads the whole archive (a stream has no index).",
     "snapport info web.xva",
     {{"--format", NULL, "xva|ova", "the archive's format (else guessed from its content)"},
      S3_OPTS,
      {NULL, NULL, NULL, NULL}}},
    {"convert", cmd_convert, "IN OUT", 2, "an XVA as an OVA, an OVA as an XVA, or a disk image as either",
     "Converts between XVA and OVA without a store, or wraps a disk image (VHD, VMDK, qcow2, raw) in a VM of "
     "one disk. The format is --format, else OUT's extension (any case; --format must agree with it). IN and "
     "OUT are each a file, - (stdin, stdout) or s3://BUCKET/KEY: an S3 OUT is uploaded as it is written and "
     "appears only when complete, as export's. A disk image must be a file: from - or S3 it is refused (its "
     "format is read by seeking).",
     "snapport convert web.xva web.ova\nsnapport convert disk.qcow2 disk.xva --name web --memory 2G --vcpus 2\n"
     "snapport convert s3://backups/web.xva s3://backups/web.ova",
     {{"--format", NULL, "xva|ova", "OUT's format (else from its extension)"},
      {"--force", NULL, NULL, "replace OUT (a file or an S3 object) if it exists (else it is an error)"},
      {"--name", NULL, "NAME", "a disk image's VM: its name (default: the file's)"},
      {"--memory", NULL, "SIZE", "a disk image's VM: its memory (default 1G)"},
      {"--vcpus", NULL, "N", "a disk image's VM: its vCPUs (default 1)"},
      {"--part-size", NULL, "SIZE", "S3 OUT: a fixed part size, 5M..5G (default 16M, doubling every 1000 parts)"},
      {"--resume-file", NULL, "FILE", "S3 OUT: note the upload here; a run killed before it could abort is "
                                      "resumed by the next with this FILE"},
      S3_OPTS,
      {NULL, NULL, NULL, NULL}}},
    {"help", cmd_help_run, "[COMMAND]", 2, "the commands, or one command's help",
     "Without a COMMAND, the list of commands; with one, its synopsis, options and examples.",
     "snapport help export\nsnapport help disk flatten", {{NULL, NULL, NULL, NULL}}},
};
const size_t CLI_NCOMMANDS = sizeof CLI_COMMANDS / sizeof CLI_COMMANDS[0];

static int cmd_help_run(struct cli *c, const struct cli_args *a) { return cli_help(c, a->npos, a->pos); }

const struct cli_cmd *cli_command_find(int argc, char **argv, int *used)
{
    char two[128];
    if (argc >= 2) {
        snprintf(two, sizeof two, "%s %s", argv[0], argv[1]);
        for (size_t i = 0; i < CLI_NCOMMANDS; i++)
            if (strcmp(CLI_COMMANDS[i].name, two) == 0) {
                *used = 2;
                return &CLI_COMMANDS[i];
            }
    }
    for (size_t i = 0; argc >= 1 && i < CLI_NCOMMANDS; i++)
        if (strcmp(CLI_COMMANDS[i].name, argv[0]) == 0) {
            *used = 1;
            return &CLI_COMMANDS[i];
        }
    return NULL;
}

const struct cli_group *cli_group_find(const char *name)
{
    for (size_t i = 0; i < CLI_NGROUPS; i++)
        if (strcmp(CLI_GROUPS[i].name, name) == 0)
            return &CLI_GROUPS[i];
    return NULL;
}

bool cli_command_in_group(const struct cli_cmd *cmd, const struct cli_group *g)
{
    size_t n = strlen(g->name);
    return strncmp(cmd->name, g->name, n) == 0 && cmd->name[n] == ' ';
}

const struct cli_opt_def *cli_option_find(const struct cli_opt_def *opts, const char *name, size_t len)
{
    for (const struct cli_opt_def *o = opts; o->name; o++) {
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
        if (o->alias && strlen(o->alias) == len && strncmp(o->alias, name, len) == 0)
            return o;
    }
    return NULL;
}
