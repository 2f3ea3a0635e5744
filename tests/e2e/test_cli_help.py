"""Help, man page and bash completion against the command table.

The commands and options are read from the table's source (cli/commands.c)
with a regular expression, not from snapport, so the test sees what the
table says and checks that each place shows it:

  help        for every command, `snapport CMD --help`, `-h` and
              `snapport help CMD` print the same text, exit 0, with a
              usage line, every option (and its alias) and an example;
              `snapport --help` lists every command; `snapport GROUP
              --help` lists the group's subcommands.
  man         the built man page renders with `MANWIDTH=80 man --warnings
              -l` with nothing on stderr, has the sections the issue asks
              for (NAME, SYNOPSIS, COMMANDS, EXIT STATUS, ENVIRONMENT,
              FILES, EXAMPLES) and, under each command's own heading,
              every option of that command.
  completion  the built completion, loaded under bash with bash-completion,
              offers every command, each command's options after `--`,
              an option's values (--format of export: xva ova), VM names
              and a VM's snapshot names from the store the line names, and
              archive files by extension (case-insensitive), not others.
  parser      each option of the table is taken by the parser: with a value
              that is wrong on purpose, the error is never "unknown option".
"""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402

EXE = TMP = None
BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"


def table():
    """{command: [(name, alias, takes_value)]} from cli/commands.c."""
    src = open(os.path.join(os.environ["SP_TESTS"], "..", "cli", "commands.c")).read()
    force = re.search(r'#define FORCE_OPT (\{"--force".*\})', src).group(1)
    src = src.replace("FORCE_OPT", force)
    body = src[src.index("const struct cli_cmd CLI_COMMANDS[] = {"):]
    body = body[:body.index("\n};\n")]
    cmds = {}
    # an entry begins with {"NAME", cmd_...,
    starts = [(m.start(), m.group(1)) for m in re.finditer(r'\{"([a-z][a-z ]*)", (?:cmd_\w+)', body)]
    for i, (pos, name) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(body)
        entry = body[pos:end]
        opts = re.findall(r'\{"(--?[a-z-]+)", (NULL|"-[a-z]"), (NULL|"[^"]*")', entry)
        cmds[name] = [(n, None if a == "NULL" else a.strip('"'), v != "NULL") for n, a, v in opts]
    return cmds


def help_cases(cmds):
    top = T.sp(EXE, "--help")
    T.check(top.rc == 0, "--help: " + top.describe())
    for name, opts in cmds.items():
        T.check(re.search(r"^  %s\b" % re.escape(name), top.out, re.M),
                "snapport --help does not list %s" % name)
        outs = [T.sp(EXE, *name.split(), "--help"), T.sp(EXE, *name.split(), "-h"), T.sp(EXE, "help", *name.split())]
        for r in outs:
            T.check(r.rc == 0 and r.err == "", "%s: help exit/stderr: %s" % (name, r.describe()))
        T.check(outs[0].out == outs[1].out == outs[2].out, "%s: --help, -h and help differ" % name)
        text = outs[0].out
        T.check(text.startswith("usage: snapport %s" % name), "%s: no usage line: %r" % (name, text[:80]))
        T.check("Examples:\n  snapport " in text, "%s: no example" % name)
        for opt, alias, _ in opts:
            T.check(re.search(r"(^|[\s\[,])%s\b" % re.escape(opt), text), "%s --help does not show %s" % (name, opt))
            if alias:
                T.check(re.search(r"(^|[\s\[,])%s\b" % re.escape(alias), text),
                        "%s --help does not show %s" % (name, alias))
    for group in sorted({n.split()[0] for n in cmds if " " in n}):
        r = T.sp(EXE, group, "--help")
        subs = [n for n in cmds if n.startswith(group + " ")]
        T.check(r.rc == 0 and all(("  " + s) in r.out for s in subs), "%s --help: %s" % (group, r.describe()))
        r = T.sp(EXE, group)
        T.check(r.rc == 2, "%s alone: expected exit 2: %s" % (group, r.describe()))


def man_cases(cmds):
    page = os.path.join(os.path.dirname(EXE), "doc", "snapport.1")
    if not T.check(os.path.exists(page), "no man page at %s" % page):
        return
    env = dict(os.environ, MANWIDTH="80", LANG="C.UTF-8")
    p = subprocess.run(["man", "--warnings", "-l", page], capture_output=True, env=env, timeout=60)
    out, err = p.stdout.decode(), p.stderr.decode()
    T.check(p.returncode == 0 and err == "", "man --warnings -l: rc %d, stderr %r" % (p.returncode, err[:400]))
    for sec in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES"):
        T.check(re.search(r"^%s$" % sec, out, re.M), "man page: no %s section" % sec)
    T.check(max(len(l) for l in out.splitlines()) <= 80, "man page: a line wider than MANWIDTH")
    # each command's part: from its heading (3 spaces in) to the next heading
    heads = [(m.start(), m.group(1)) for m in re.finditer(r"^   (\S.*)$", out, re.M)]
    parts = {}
    for i, (pos, title) in enumerate(heads):
        end = heads[i + 1][0] if i + 1 < len(heads) else len(out)
        parts[title.strip()] = out[pos:end]
    for name, opts in cmds.items():
        part = parts.get(name)
        if not T.check(part is not None, "man page: no section for %s" % name):
            continue
        T.check("snapport %s" % name in part, "man page: %s has no synopsis" % name)
        for opt, alias, _ in opts:
            for o in (opt, alias):
                if o:
                    T.check(re.search(r"(^|[\s\[,])%s\b" % re.escape(o), part), "man page: %s lacks %s" % (name, o))


def complete(words, cwd=None):
    """COMPREPLY for the line `words` (the last one being completed)."""
    comp = os.path.join(os.path.dirname(EXE), "doc", "snapport.bash")
    line = " ".join(words)
    script = ("source %s\nsource %s\nCOMP_WORDS=(%s)\nCOMP_CWORD=%d\nCOMP_LINE=%s\nCOMP_POINT=%d\n"
              "_snapport\nprintf '%%s\\n' \"${COMPREPLY[@]}\"\n") % (
        BASH_COMPLETION, comp, " ".join(shq(w) for w in words), len(words) - 1, shq(line), len(line))
    p = subprocess.run(["bash", "-c", script], capture_output=True, timeout=60, cwd=cwd)
    T.check(p.returncode == 0 and p.stderr == b"", "completion of %r: rc %d, stderr %r" % (
        line, p.returncode, p.stderr[:300]))
    return sorted(w for w in p.stdout.decode().splitlines() if w)


def shq(s):
    return "'" + s.replace("'", "'\\''") + "'"


def completion_cases(cmds):
    if not os.path.exists(BASH_COMPLETION):
        T.check(os.environ.get("CI") != "true", "bash-completion is not installed")
        print("bash-completion is not installed: completion not checked", file=sys.stderr)
        return
    got = complete([EXE, ""])
    for first in sorted({n.split()[0] for n in cmds}):
        T.check(first in got, "completion of the first word lacks %s: %r" % (first, got))
    T.check(complete([EXE, "disk", ""]) == sorted(
        [n.split()[1] for n in cmds if n.startswith("disk ")] + ["--help"]), "completion of disk subcommands")
    for name, opts in cmds.items():
        got = complete([EXE] + name.split() + ["--"])
        for opt, alias, _ in opts:
            T.check(opt in got, "completion of %s -- lacks %s: %r" % (name, opt, got))
        if any(a for _, a, _ in opts):
            got = complete([EXE] + name.split() + ["-"])
            for _, alias, _ in opts:
                T.check(not alias or alias in got, "completion of %s - lacks %s" % (name, alias))
    T.check(complete([EXE, "export", "web", "--format", ""]) == ["ova", "xva"], "completion of --format")
    # names from the store the line names
    st = os.path.join(TMP, "store")
    disk = os.path.join(TMP, "d.raw")
    with open(disk, "wb") as f:
        f.write(b"\1" * 65536)
    cfg = os.path.join(TMP, "w.cfg")
    with open(cfg, "w") as f:
        f.write('name = "web"\nmemory = 128\nvcpus = 1\ndisk = [ "format=raw, vdev=xvda, target=%s" ]\n' % disk)
    T.sp_ok(EXE, "--store", st, "vm", "create", "--config", cfg)
    T.sp_ok(EXE, "--store", st, "clone", "web", "--name", "wiki")
    T.sp_ok(EXE, "--store", st, "snapshot", "create", "web", "--name", "nightly")
    T.check(complete([EXE, "--store", st, "export", "w"]) == ["web", "wiki"], "completion of VM names")
    T.check(complete([EXE, "--store=" + st, "vm", "show", "wi"]) == ["wiki"], "completion of VM names (--store=)")
    T.check(complete([EXE, "--store", st, "snapshot", "revert", "web", ""]) == ["nightly"],
            "completion of snapshot names")
    T.check(complete([EXE, "--store", st, "export", "web", "--snapshot", ""]) == ["nightly"],
            "completion of --snapshot")
    # archives by extension, any case; folders too (an unpacked OVF)
    d = os.path.join(TMP, "files")
    os.makedirs(os.path.join(d, "unpacked"))
    for n in ("a.xva", "b.OVA", "c.ovf", "d.txt", "e.vhd"):
        open(os.path.join(d, n), "w").close()
    T.check(complete([EXE, "import", ""], cwd=d) == ["a.xva", "b.OVA", "c.ovf", "unpacked"],
            "completion of import's ARCHIVE: %r" % complete([EXE, "import", ""], cwd=d))
    T.check(complete([EXE, "disk", "info", ""], cwd=d) == ["e.vhd", "unpacked"], "completion of an IMAGE")


def parser_cases(cmds):
    """Each option of the table is known to the parser (the error, if any, is another)."""
    work = os.path.join(TMP, "parse")
    os.makedirs(work)
    for name, opts in cmds.items():
        if name == "help":
            continue
        for opt, alias, takes in opts:
            for o in (opt, alias):
                if not o:
                    continue
                args = [o, "/nonexistent/x.bad"] if takes else [o]
                r = T.run([EXE, "--store", os.path.join(work, "nostore")] + name.split() + args, cwd=work)
                T.check("unknown option" not in r.err and not r.crashed(),
                        "%s %s: the parser does not take it: %s" % (name, o, r.describe()))
        r = T.run([EXE] + name.split() + ["--no-such-option"], cwd=work)
        T.check(r.rc == 2 and "unknown option" in r.err, "%s --no-such-option: %s" % (name, r.describe()))


def main():
    global EXE, TMP
    EXE, TMP = T.setup()
    cmds = table()
    T.check(len(cmds) >= 25 and "disk flatten" in cmds and "export" in cmds, "command table read: %r" % list(cmds))
    T.check(("--output", "-o", True) in cmds["export"], "export's -o/--output not read from the table")
    help_cases(cmds)
    man_cases(cmds)
    completion_cases(cmds)
    parser_cases(cmds)
    T.finish("cli_help")


if __name__ == "__main__":
    main()
