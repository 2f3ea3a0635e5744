/* snapport vm ...: VMs in the store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "base/outfile.h"
#include "base/util.h"
#include "store/store.h"
#include "store/xen.h"

int cli_store_open(struct cli *c, unsigned mode, const char *command, struct sp_store **s)
{
    struct sp_error err;
    if (sp_store_open(c->store, mode, command, s, &err) != SP_OK)
        return cli_fail(&err);
    return EXIT_OK_;
}

int cmd_vm_create(struct cli *c, const struct cli_args *a)
{
    const char *cfg = cli_opt(a, "--config");
    int rc;
    if (!cfg)
        return cli_usage_error("vm create: needs --config FILE.cfg");
    struct sp_store *s;
    if ((rc = cli_store_open(c, SP_STORE_WRITE | SP_STORE_CREATE, "vm create", &s)) != EXIT_OK_)
        return rc;
    struct sp_error err;
    char uuid[SP_UUID_STR];
    struct cli_progress *bar = cli_progress_start(c, "copy");
    rc = sp_vm_create(s, cfg, cli_progress_hook(bar), uuid, &err);
    cli_progress_finish(bar);
    sp_store_close(s);
    if (rc != SP_OK)
        return cli_fail(&err);
    if (c->json)
        json_key_string("uuid", uuid);
    cli_say(c, "%s: created VM %s\n", cfg, uuid);
    return EXIT_OK_;
}

static void vm_json(struct sp_store *s, const char *key, const struct sp_vm *vm)
{
    char path[4096];
    struct sp_error err;
    json_begin_object(key);
    json_key_string("uuid", vm->uuid);
    json_key_string("name", vm->cfg.name);
    json_key_string("type", sp_vm_type_name(vm->cfg.type));
    json_key_string("power_state", vm->suspended ? "suspended" : "halted");
    json_key_uint("memory", (uint64_t)vm->cfg.memory_mb << 20);
    json_key_uint("vcpus", (uint64_t)vm->cfg.vcpus);
    json_begin_array("disks");
    for (int i = 0; i < vm->cfg.ndisks; i++) {
        json_begin_object(NULL);
        json_key_string("vdev", vm->cfg.disks[i].vdev);
        json_key_string("vdi", vm->vbd_vdi[i][0] ? vm->vbd_vdi[i] : NULL);
        json_key_bool("cdrom", vm->cfg.disks[i].cdrom);
        if (vm->vbd_vdi[i][0] && sp_store_vdi_path(s, vm->vbd_vdi[i], path, sizeof path, &err) == SP_OK)
            json_key_string("file", path);
        else
            json_key_string("file", vm->cfg.disks[i].target);
        json_end_object();
    }
    json_end_array();
    json_begin_array("vifs");
    for (int i = 0; i < vm->cfg.nvifs; i++)
        json_string_item(vm->cfg.vifs[i].mac);
    json_end_array();
    json_key_string("suspend_vdi", vm->suspend_vdi[0] ? vm->suspend_vdi : NULL);
    if (vm->suspend_vdi[0] && sp_store_vdi_path(s, vm->suspend_vdi, path, sizeof path, &err) == SP_OK)
        json_key_string("suspend_file", path); /* the memory image, raw bytes */
    else
        json_key_null("suspend_file");
    json_key_string("snapshot_of", vm->snapshot_of[0] ? vm->snapshot_of : NULL);
    json_key_string("parent_snapshot", vm->parent_snapshot[0] ? vm->parent_snapshot : NULL);
    json_end_object();
}

int cmd_vm_list(struct cli *c, const struct cli_args *a)
{
    bool names = cli_flag(a, "--names");
    int rc;
    struct sp_store *s;
    if ((rc = cli_store_open(c, SP_STORE_READ, "vm list", &s)) != EXIT_OK_)
        return rc;
    struct sp_error err;
    char (*uuids)[SP_UUID_STR] = NULL;
    int n = 0;
    rc = sp_store_list_vms(s, &uuids, &n, &err);
    if (rc == SP_OK && c->json)
        json_begin_array("vms");
    else if (rc == SP_OK && !c->quiet && !names)
        printf("%-36s  %-20s  %-9s  %5s  %8s  %5s  %9s\n", "UUID", "NAME", "STATE", "VCPUS", "MEMORY", "DISKS",
               "SNAPSHOTS");
    for (int i = 0; rc == SP_OK && i < n; i++) {
        struct sp_vm vm;
        char (*snaps)[SP_UUID_STR] = NULL;
        int ns = 0;
        rc = sp_store_load_vm(s, uuids[i], &vm, &err);
        if (rc != SP_OK)
            break;
        rc = sp_store_list_snapshots(s, vm.uuid, &snaps, &ns, &err);
        free(snaps);
        if (c->json)
            vm_json(s, NULL, &vm);
        else if (names)
            printf("%s\n", cli_shown(vm.cfg.name));
        else if (!c->quiet)
            printf("%-36s  %-20s  %-9s  %5ld  %6ldMi  %5d  %9d\n", vm.uuid, cli_shown(vm.cfg.name),
                   vm.suspended ? "suspended" : "halted", vm.cfg.vcpus, vm.cfg.memory_mb, vm.cfg.ndisks, ns);
        sp_vm_free(&vm);
    }
    if (rc == SP_OK && c->json)
        json_end_array();
    free(uuids);
    sp_store_close(s);
    return rc == SP_OK ? EXIT_OK_ : cli_fail(&err);
}

static void show_text(struct sp_store *s, const struct sp_vm *vm, int nsnaps)
{
    char sz[32], path[4096];
    struct sp_error err;
    printf("name:        %s\nuuid:        %s\ntype:        %s\nstate:       %s\n", cli_shown(vm->cfg.name), vm->uuid,
           sp_vm_type_name(vm->cfg.type), vm->suspended ? "suspended" : "halted");
    printf("memory:      %ld MiB\nvcpus:       %ld\nsnapshots:   %d\n", vm->cfg.memory_mb, vm->cfg.vcpus, nsnaps);
    for (int i = 0; i < vm->cfg.ndisks; i++) {
        const struct sp_vm_disk *d = &vm->cfg.disks[i];
        int depth = 0;
        if (vm->vbd_vdi[i][0] && sp_store_vdi_path(s, vm->vbd_vdi[i], path, sizeof path, &err) == SP_OK) {
            sp_store_chain_depth(s, vm->vbd_vdi[i], &depth, &err);
            printf("disk %-6s  %s  chain of %d  %s\n", cli_shown(d->vdev), vm->vbd_vdi[i], depth, cli_shown(path));
        } else {
            printf("disk %-6s  %s %s\n", cli_shown(d->vdev), d->cdrom ? "cdrom" : "outside the store:",
                   cli_shown(d->target));
        }
    }
    for (int i = 0; i < vm->cfg.nvifs; i++)
        printf("vif %-7d  mac %s  bridge %s\n", i, cli_shown(vm->cfg.vifs[i].mac), cli_shown(vm->cfg.vifs[i].bridge));
    if (vm->suspend_vdi[0])
        printf("memory image: %s\n", vm->suspend_vdi);
    (void)sz;
}

int cmd_vm_show(struct cli *c, const struct cli_args *a)
{
    const char *const *pos = a->pos;
    int rc;
    if (a->npos != 1)
        return cli_usage_error("vm show: needs VM");
    struct sp_store *s;
    if ((rc = cli_store_open(c, SP_STORE_READ, "vm show", &s)) != EXIT_OK_)
        return rc;
    struct sp_error err;
    char uuid[SP_UUID_STR];
    struct sp_vm vm;
    memset(&vm, 0, sizeof vm);
    char (*snaps)[SP_UUID_STR] = NULL;
    int ns = 0;
    /* a VM, or else a snapshot (its disks, memory, config) */
    rc = sp_store_find(s, pos[0], false, NULL, uuid, &err);
    if (rc == SP_ENOTFOUND)
        rc = sp_store_find(s, pos[0], true, NULL, uuid, &err);
    if (rc == SP_ENOTFOUND)
        sp_error_set(&err, SP_ENOTFOUND, "%s: no VM or snapshot of that name or UUID in store %s", pos[0], c->store);
    if (rc == SP_OK)
        rc = sp_store_load_vm(s, uuid, &vm, &err);
    if (rc == SP_OK)
        rc = sp_store_list_snapshots(s, uuid, &snaps, &ns, &err);
    if (rc == SP_OK && c->json) {
        vm_json(s, "vm", &vm);
        json_key_uint("snapshots", (uint64_t)ns);
    } else if (rc == SP_OK && !c->quiet) {
        show_text(s, &vm, ns);
    }
    free(snaps);
    sp_vm_free(&vm);
    sp_store_close(s);
    return rc == SP_OK ? EXIT_OK_ : cli_fail(&err);
}

/* A command that changes one VM and says so. */
static int vm_simple(struct cli *c, const struct cli_args *a, const char *done)
{
    const char *cmd = a->cmd->name;
    bool suspend = strcmp(cmd, "vm suspend") == 0;
    const char *image = suspend ? cli_opt(a, "--image") : NULL;
    const char *const *pos = a->pos;
    int rc;
    if (a->npos != 1)
        return cli_usage_error("%s: needs VM", cmd);
    struct sp_error err;
    if (suspend && !image) {
        /* Saving a running domain's memory needs a Xen host, and is not done yet there either. */
        struct sp_xen *x = NULL;
        if (sp_xen_open(&x, &err) == SP_OK)
            sp_error_set(&err, SP_EUNSUPPORTED, "saving a running domain is not supported yet");
        sp_xen_close(x);
        sp_error_prefix(&err, "VM %s: give --image FILE (a memory image saved with 'xl save')", pos[0]);
        return cli_fail(&err);
    }
    struct sp_store *s;
    if ((rc = cli_store_open(c, SP_STORE_WRITE, cmd, &s)) != EXIT_OK_)
        return rc;
    if (strcmp(cmd, "vm destroy") == 0)
        rc = sp_vm_destroy(s, pos[0], &err);
    else if (suspend)
        rc = sp_vm_suspend_with_image(s, pos[0], image, &err);
    else
        rc = sp_vm_halt(s, pos[0], &err);
    sp_store_close(s);
    if (rc != SP_OK)
        return cli_fail(&err);
    if (c->json)
        json_key_string("vm", pos[0]);
    cli_say(c, "%s: %s\n", pos[0], done);
    return EXIT_OK_;
}

int cmd_vm_config(struct cli *c, const struct cli_args *a)
{
    const char *out_s = cli_opt(a, "--output");
    bool force = cli_flag(a, "--force");
    const char *const *pos = a->pos;
    int rc;
    if (a->npos != 1)
        return cli_usage_error("vm config: needs VM");
    struct sp_store *s;
    if ((rc = cli_store_open(c, SP_STORE_READ, "vm config", &s)) != EXIT_OK_)
        return rc;
    struct sp_error err;
    char *text = NULL;
    rc = sp_vm_config_text(s, pos[0], &text, &err);
    sp_store_close(s);
    if (rc == SP_OK && !out_s) {
        struct cli_text t;
        fputs(text, cli_text_begin(c, &t));
        cli_text_end(c, &t, "config");
    } else if (rc == SP_OK) {
        struct sp_outfile o;
        rc = sp_outfile_open(&o, out_s, force, &err);
        if (rc == SP_OK)
            rc = sp_pwrite_full(o.fd, text, strlen(text), 0, out_s, &err);
        if (rc == SP_OK)
            rc = sp_outfile_commit(&o, &err);
        else
            sp_outfile_abort(&o);
    }
    free(text);
    if (rc != SP_OK)
        return cli_fail(&err);
    if (c->json)
        json_key_string("output", out_s);
    return EXIT_OK_;
}

int cmd_vm_destroy(struct cli *c, const struct cli_args *a)
{
    return vm_simple(c, a, "destroyed, with its snapshots");
}

int cmd_vm_suspend(struct cli *c, const struct cli_args *a)
{
    return vm_simple(c, a, "suspended with the given memory image");
}

int cmd_vm_halt(struct cli *c, const struct cli_args *a) { return vm_simple(c, a, "halted (memory image dropped)"); }
