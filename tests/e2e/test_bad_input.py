"""Damaged and hostile VHD input: clean one-line errors, right exit codes,
never a crash or a hang, and no output file left behind.

For every "strict" case (fixtures from tests/tools/vhdgen.py, then mutated):
  - `disk info` and `disk flatten` (raw and vhd output) exit 3 with exactly
    one stderr line `snapport: <file>: <problem>` naming a file of the case;
  - flatten leaves no output file;
  - `disk check` exits 1, prints at least one `FILE: problem` line on stdout
    and one error line on stderr.
A crash (signal, exit >= 128) or a hang (20 s timeout) fails any case.
Also: `disk create` / `disk flatten` refuse to overwrite existing files.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
import vhdgen as G  # noqa: E402

K, M = 1024, 1024 * 1024
EXE = TMP = None


def case_dir(name):
    d = os.path.join(TMP, name)
    os.makedirs(d)
    return d


def good_dynamic(d, name="disk.vhd", size=1 * M, blocks=(0, 3, 7)):
    """A sound dynamic VHD with some data (64 KiB blocks)."""
    img = G.DynamicVhd(size, block_size=64 * K)
    for b in blocks:
        img.write_sectors(b * 128 + 1, bytes([b + 1]) * 4096)
    img.save(os.path.join(d, name))
    return img, os.path.join(d, name)


def good_child(parent_path, name="child.vhd"):
    img = G.DynamicVhd.child_of(parent_path, block_size=64 * K)
    img.write_sectors(5, b"\xc5" * 1024)
    path = os.path.join(os.path.dirname(parent_path), name)
    img.save(path)
    return img, path


def one_error_line(r, names, what):
    """stderr is exactly one line `snapport: ...` mentioning one of names."""
    lines = r.err.splitlines()
    ok = (len(lines) == 1 and lines[0].startswith("snapport: ")
          and any(n in lines[0] for n in names))
    return T.check(ok, "%s: expected one stderr line 'snapport: <one of %s>: ...', got %r"
                   % (what, names, r.err)) and T.named_once(lines[0], what)


def no_crash(r, what):
    return T.check(not r.crashed(), "%s: crashed or hung: %s" % (what, r.describe()))


def expect_fail(name, image, names):
    """info/flatten exit 3 with one error line and no output; check exit 1."""
    names = [os.path.basename(n) for n in names]
    r = T.sp(EXE, "disk", "info", image)
    if no_crash(r, name + ": disk info"):
        T.check(r.rc == 3, "%s: disk info: expected exit 3, got %s" % (name, r.describe()))
        one_error_line(r, names, name + ": disk info")
    for ext in ("raw", "vhd"):
        out = os.path.join(TMP, "%s.out.%s" % (name, ext))
        r = T.sp(EXE, "disk", "flatten", image, "-o", out)
        if no_crash(r, "%s: disk flatten to %s" % (name, ext)):
            T.check(r.rc == 3, "%s: disk flatten to %s: expected exit 3, got %s" % (name, ext, r.describe()))
            one_error_line(r, names, "%s: disk flatten to %s" % (name, ext))
        T.check(not os.path.exists(out), "%s: failed flatten left %s behind" % (name, out))
        if os.path.exists(out):
            os.unlink(out)
    r = T.sp(EXE, "disk", "check", image)
    if no_crash(r, name + ": disk check"):
        T.check(r.rc == 1, "%s: disk check: expected exit 1, got %s" % (name, r.describe()))
        T.check(any(": " in l for l in r.out.splitlines()),
                "%s: disk check printed no 'FILE: problem' line: %s" % (name, r.describe()))
        one_error_line(r, names, name + ": disk check")


def expect_no_crash(name, image, model=None):
    """Tolerant cases: exit 0 (and exact content if model) or a clean exit 3."""
    for args in (["disk", "info", image], ["disk", "check", image],
                 ["disk", "flatten", image, "-o", os.path.join(TMP, name + ".out.raw")]):
        r = T.sp(EXE, *args)
        if not no_crash(r, "%s: %s" % (name, " ".join(args[:2]))):
            continue
        T.check(r.rc in (0, 1, 3), "%s: %s: exit %s" % (name, args[1], r.describe()))
        if r.rc == 3:
            one_error_line(r, [os.path.basename(image)], "%s: %s" % (name, args[1]))
        if args[1] == "flatten":
            out = args[-1]
            if r.rc == 0 and model is not None:
                T.same_bytes(T.read_file(out), model, name + ": flatten content")
            if r.rc != 0:
                T.check(not os.path.exists(out), "%s: failed flatten left %s" % (name, out))
            if os.path.exists(out):
                os.unlink(out)


def expect_reads(name, image, model, check_rc):
    """Damage snapport must read past: info exit 0, flatten exit 0 with the
    exact content, check exit check_rc (1: it reports the damage)."""
    r = T.sp(EXE, "disk", "info", image)
    T.check(r.rc == 0, "%s: disk info: expected exit 0, got %s" % (name, r.describe()))
    out = os.path.join(TMP, name + ".strict.raw")
    r = T.sp(EXE, "disk", "flatten", image, "-o", out)
    T.check(r.rc == 0, "%s: disk flatten: expected exit 0, got %s" % (name, r.describe()))
    if r.rc == 0:
        T.same_bytes(T.read_file(out), model, name + ": flatten content")
        os.unlink(out)
    r = T.sp(EXE, "disk", "check", image)
    T.check(r.rc == check_rc, "%s: disk check: expected exit %d, got %s" % (name, check_rc, r.describe()))


# ---------------------------------------------------------------- cases

# Case: header cookie is not "cxsparse" (checksum kept valid).
def case_header_cookie():
    _, p = good_dynamic(case_dir("hdr_cookie"))
    G.set_header_field(p, "cookie", b"cxsparsX")
    expect_fail("header_cookie", p, [p])


# Case: both footer copies of the parent have a wrong cookie: the parent is
# no longer a VHD, so the child's parent UUID cannot match.
def case_parent_footer_cookie():
    d = case_dir("par_cookie")
    _, base = good_dynamic(d, "base.vhd")
    _, child = good_child(base)
    G.set_footer_field(base, "cookie", b"conectiX")
    expect_fail("parent_footer_cookie", child, [child, base])


# Case: footer checksum wrong in both copies.
def case_footer_checksum():
    _, p = good_dynamic(case_dir("ftr_sum"))
    G.set_footer_field(p, "checksum", 0x12345678, fix_checksum=False)
    expect_fail("footer_checksum", p, [p])


# Case: end footer checksum wrong on a fixed VHD (no backup copy).
def case_fixed_footer_checksum():
    d = case_dir("fixed_sum")
    img = G.FixedVhd(1 * M)
    p = img.save(os.path.join(d, "fixed.vhd"))
    G.set_footer_field(p, "checksum", 1, fix_checksum=False)
    expect_fail("fixed_footer_checksum", p, [p])


# Case: dynamic header checksum wrong.
def case_header_checksum():
    _, p = good_dynamic(case_dir("hdr_sum"))
    G.corrupt_bytes(p, 512 + 36, b"\xde\xad\xbe\xef")   # clobber the stored checksum
    T.check(not G.parse(p)["header_ok"], "fixture: header checksum still valid")
    expect_fail("header_checksum", p, [p])


# Case: a BAT entry points past the end of the file.
def case_bat_past_eof():
    _, p = good_dynamic(case_dir("bat_eof"))
    G.set_bat_entry(p, 1, (os.path.getsize(p) // 512) + 1000)
    expect_fail("bat_past_eof", p, [p])


# Case: a BAT entry points into the last block so the block runs over EOF.
def case_bat_partly_past_eof():
    img, p = good_dynamic(case_dir("bat_eof2"))
    G.set_bat_entry(p, 1, (os.path.getsize(p) - 512 - 4096) // 512)
    expect_fail("bat_partly_past_eof", p, [p])


# Case: two BAT entries overlap (same block, and half-overlapping).
def case_bat_overlap():
    img, p = good_dynamic(case_dir("bat_overlap"))
    G.set_bat_entry(p, 5, img.layout[3] // 512)
    expect_fail("bat_same_block", p, [p])
    img, p = good_dynamic(case_dir("bat_overlap2"))
    G.set_bat_entry(p, 5, img.layout[3] // 512 + 16)
    expect_fail("bat_half_overlap", p, [p])


# Case: a BAT entry pointing into the headers/BAT area.
def case_bat_into_headers():
    _, p = good_dynamic(case_dir("bat_hdr"))
    G.set_bat_entry(p, 2, 1)
    expect_fail("bat_into_headers", p, [p])


# Case: block size not a power of two (and zero), checksum recomputed.
def case_block_size():
    _, p = good_dynamic(case_dir("bs3"))
    G.set_header_field(p, "block_size", 3 * 64 * K)
    expect_fail("block_size_not_pow2", p, [p])
    _, p = good_dynamic(case_dir("bs0"))
    G.set_header_field(p, "block_size", 0)
    expect_fail("block_size_zero", p, [p])


# Case: absurd sizes: current size 2^60; max table entries huge; both with
# valid checksums.
def case_absurd_sizes():
    _, p = good_dynamic(case_dir("huge_size"))
    G.set_footer_field(p, "current_size", 1 << 60)
    expect_fail("current_size_2^60", p, [p])
    _, p = good_dynamic(case_dir("huge_bat"))
    G.set_header_field(p, "max_table_entries", 0xFFFFFFF0)
    expect_fail("max_table_entries_huge", p, [p])
    _, p = good_dynamic(case_dir("small_bat"))
    G.set_header_field(p, "max_table_entries", 2)   # too few for the size
    expect_fail("max_table_entries_too_small", p, [p])
    _, p = good_dynamic(case_dir("odd_size"))
    G.set_footer_field(p, "current_size", 1 * M + 100)  # not a multiple of 512
    expect_fail("current_size_not_sector_multiple", p, [p])


# Case: header/table offsets pointing past EOF.
def case_offsets_past_eof():
    _, p = good_dynamic(case_dir("table_off"))
    G.set_header_field(p, "table_offset", 1 << 40)
    expect_fail("table_offset_past_eof", p, [p])
    _, p = good_dynamic(case_dir("data_off"))
    G.set_footer_field(p, "data_offset", 1 << 40)
    expect_fail("header_offset_past_eof", p, [p])


# Case: unsupported disk type (deprecated 5, and 0 = none).
def case_types():
    _, p = good_dynamic(case_dir("type5"))
    G.set_footer_field(p, "disk_type", 5)
    expect_fail("disk_type_5", p, [p])
    _, p = good_dynamic(case_dir("type0"))
    G.set_footer_field(p, "disk_type", 0)
    expect_fail("disk_type_0", p, [p])


# Case: the parent file is missing.
def case_missing_parent():
    d = case_dir("missing")
    _, base = good_dynamic(d, "base.vhd")
    _, child = good_child(base)
    os.unlink(base)
    expect_fail("missing_parent", child, [child, base])


# Case: the parent's UUID is not the one the child records.
def case_uuid_mismatch():
    d = case_dir("uuid")
    _, base = good_dynamic(d, "base.vhd")
    _, child = good_child(base)
    G.set_footer_field(base, "uuid", b"\x42" * 16)
    expect_fail("parent_uuid_mismatch", child, [child, base])


# Case: A's parent is B and B's parent is A; and a file that is its own parent.
def case_loops():
    d = case_dir("loop")
    ua, ub = b"\xaa" * 16, b"\xbb" * 16
    a = G.DynamicVhd(1 * M, block_size=64 * K, uid=ua, parent_uuid=ub, parent_name="b.vhd",
                     locators=G.blktap_locators("b.vhd"))
    b = G.DynamicVhd(1 * M, block_size=64 * K, uid=ub, parent_uuid=ua, parent_name="a.vhd",
                     locators=G.blktap_locators("a.vhd"))
    a.write_sectors(0, b"\x01" * 512)
    pa = a.save(os.path.join(d, "a.vhd"))
    pb = b.save(os.path.join(d, "b.vhd"))
    expect_fail("loop_a_b", pa, [pa, pb])
    us = b"\x5e" * 16
    s = G.DynamicVhd(1 * M, block_size=64 * K, uid=us, parent_uuid=us, parent_name="self.vhd",
                     locators=G.blktap_locators("self.vhd"))
    ps = s.save(os.path.join(d, "self.vhd"))
    expect_fail("self_loop", ps, [ps])


# Case: a file cut in the middle of a block (end footer gone).
def case_truncated():
    img, p = good_dynamic(case_dir("trunc"))
    G.truncate(p, img.layout[7] + 512 + 20000)
    expect_fail("truncated_mid_block", p, [p])


# Case: the parent of a chain is damaged (overlapping BAT): the leaf fails.
def case_damaged_parent():
    d = case_dir("dmg_parent")
    img, base = good_dynamic(d, "base.vhd")
    _, child = good_child(base)
    G.set_bat_entry(base, 0, img.layout[3] // 512)
    expect_fail("damaged_parent", child, [child, base])


# Case: tolerant inputs: never a crash; exit 0 (with the right content) or a
# clean exit 3.  Zero-length file (raw of size 0), 1000 bytes of garbage, a
# dynamic disk whose end footer is bad but whose copy at offset 0 is good.
def case_tolerant():
    d = case_dir("tolerant")
    p = os.path.join(d, "empty.img")
    open(p, "wb").close()
    expect_no_crash("zero_length", p, b"")
    p = os.path.join(d, "garbage.img")
    with open(p, "wb") as f:
        f.write(bytes((i * 37) & 0xFF for i in range(1000)))
    expect_no_crash("garbage_1000", p)
    img, p = good_dynamic(d, "endfooter.vhd")
    G.set_footer_field(p, "cookie", b"XXXXXXXX", fix_checksum=False, copies=("end",))
    model = img.apply_to(bytearray(img.size))
    expect_no_crash("end_footer_bad_backup_good", p, bytes(model))
    # 512 bytes of just a footer claiming a dynamic disk
    p = os.path.join(d, "footer_only.vhd")
    with open(p, "wb") as f:
        f.write(G.pack_footer(1 * M, G.TYPE_DYNAMIC, b"\x01" * 16, 512))
    expect_no_crash("footer_only", p)
    # unknown dynamic header version (tapdisk refuses; the contract is silent)
    img, p = good_dynamic(d, "hver.vhd")
    G.set_header_field(p, "version", 0x00020000)
    expect_no_crash("header_version_2", p, bytes(img.apply_to(bytearray(img.size))))


# Case: hostile parent locators and names (tolerant: exact content via a
# working locator/name, or a clean error; never a crash).
def case_hostile_locators():
    d = case_dir("hostile_loc")
    pimg, base = good_dynamic(d, "base.vhd")
    model = pimg.apply_to(bytearray(pimg.size))

    def child(name, locators, parent_name="base.vhd"):
        c = G.DynamicVhd(pimg.size, block_size=64 * K, parent_uuid=pimg.uuid,
                         parent_name=parent_name, locators=locators)
        c.write_sectors(8, b"\x99" * 512)
        p = c.save(os.path.join(d, name))
        m = bytearray(model)
        m[4096:4608] = b"\x99" * 512
        return p, bytes(m)
    # first locator's data offset past EOF, then a good W2ru
    p, m = child("loc_off_eof.vhd", [G.loc_w2ru(".\\base.vhd"), G.loc_w2ru(".\\base.vhd")])
    info = G.parse(p)
    G.corrupt_bytes(p, 512 + G.LOCATOR_TABLE + 16, (1 << 50).to_bytes(8, "big"))
    G.set_header_field(p, "table_offset", info["header"]["table_offset"])  # re-checksum
    expect_no_crash("locator_offset_past_eof", p, m)
    # the bad locator is skipped (the next one finds the parent); check reports it
    expect_reads("locator_offset_past_eof", p, m, 1)
    # locator data length 0xFFFFFFFF
    p, m = child("loc_len_huge.vhd", [G.loc_macx("file://./base.vhd")])
    G.corrupt_bytes(p, 512 + G.LOCATOR_TABLE + 8, b"\xff\xff\xff\xff")
    G.set_header_field(p, "table_offset", 1536)
    expect_no_crash("locator_length_huge", p, m)
    # found by the header's parent name instead; check reports the locator
    expect_reads("locator_length_huge", p, m, 1)
    # parent unicode name filling all 512 bytes, no NUL, no locator
    p, m = child("name_full.vhd", [], parent_name="x" * 256)
    expect_no_crash("parent_name_no_nul", p, m)
    # locators pointing at the child itself and at a directory
    p, m = child("loc_self.vhd", [G.loc_w2ru(".\\loc_self.vhd"), G.loc_macx("file://./"),
                                  G.loc_w2ku(".\\base.vhd")])
    expect_no_crash("locator_self_and_dir", p, m)
    # the self and directory candidates do not fit; the W2ku one does
    out = os.path.join(TMP, "loc_self.strict.raw")
    r = T.sp(EXE, "disk", "flatten", p, "-o", out)
    T.check(r.rc == 0, "locator_self_and_dir: flatten: expected exit 0, got " + r.describe())
    if r.rc == 0:
        T.same_bytes(T.read_file(out), m, "locator_self_and_dir: flatten content")


# Case: odd but well-formed geometry: more BAT entries than the size needs,
# and a 2 GiB block size with nothing allocated (tolerant).
def case_odd_geometry():
    d = case_dir("odd_geom")
    img = G.DynamicVhd(1 * M, block_size=64 * K)
    img.max_entries = 20                         # 16 needed, BAT still fits its sector
    img.write_sectors(3, b"\x42" * 512)
    p = img.save(os.path.join(d, "extra_entries.vhd"))
    expect_no_crash("bat_extra_entries", p, bytes(img.apply_to(bytearray(img.size))))
    big = G.DynamicVhd(1 * M, block_size=1 << 31)
    p = big.save(os.path.join(d, "block_2g.vhd"))
    expect_no_crash("block_size_2GiB_empty", p, bytes(1 * M))


# Case: a BAT entry pointing at sector 0 (the footer copy).
def case_bat_sector0():
    _, p = good_dynamic(case_dir("bat0"))
    G.set_bat_entry(p, 4, 0)
    expect_fail("bat_entry_sector_0", p, [p])


# Case: disk create refuses to overwrite; flatten refuses an existing output
# without --force and replaces it with --force.
def case_no_overwrite():
    d = case_dir("overwrite")
    existing = os.path.join(d, "exists.vhd")
    with open(existing, "wb") as f:
        f.write(b"precious")
    r = T.sp(EXE, "disk", "create", existing, "--size", "1M")
    T.check(r.rc == 3, "create over existing file: expected exit 3, got " + r.describe())
    one_error_line(r, ["exists.vhd"], "create over existing file")
    T.check(T.read_file(existing) == b"precious", "create over existing file changed it")

    img, src = good_dynamic(d, "src.vhd")
    model = bytes(img.apply_to(bytearray(img.size)))
    out = os.path.join(d, "out.raw")
    with open(out, "wb") as f:
        f.write(b"precious")
    r = T.sp(EXE, "disk", "flatten", src, "-o", out)
    T.check(r.rc == 3, "flatten onto existing output: expected exit 3, got " + r.describe())
    one_error_line(r, ["out.raw"], "flatten onto existing output")
    T.check(T.read_file(out) == b"precious", "flatten without --force changed the existing output")
    r = T.sp(EXE, "disk", "flatten", src, "-o", out, "--force")
    T.check(r.rc == 0, "flatten --force onto existing output: " + r.describe())
    T.same_bytes(T.read_file(out), model, "flatten --force output")


# Case: create argument errors leave no file: bad sizes and block sizes.
def case_create_args():
    d = case_dir("create_args")
    for args, what in ((["--size", "1000"], "size not a multiple of 512"),
                       (["--size", "2041G"], "size above 2040 GiB"),
                       (["--size", "1M", "--block-size", "3K"], "block size not a power of two")):
        out = os.path.join(d, "x.vhd")
        r = T.sp(EXE, "disk", "create", out, *args)
        if no_crash(r, "create " + what):
            T.check(r.rc in (2, 3), "create with %s: expected exit 2 or 3, got %s" % (what, r.describe()))
            T.check(len(r.err.splitlines()) == 1 and r.err.startswith("snapport: "),
                    "create with %s: stderr %r" % (what, r.err))
        T.check(not os.path.exists(out), "create with %s left %s" % (what, out))
        if os.path.exists(out):
            os.unlink(out)
    r = T.sp(EXE, "disk", "create", os.path.join(d, "y.vhd"))
    T.check(r.rc == 2, "create without --size: expected usage exit 2, got " + r.describe())
    r = T.sp(EXE, "disk", "frobnicate")
    T.check(r.rc == 2, "unknown command: expected exit 2, got " + r.describe())
    r = T.sp(EXE, "disk", "check", os.path.join(d, "nope.vhd"))
    T.check(r.rc == 3, "check of a missing file: expected exit 3, got " + r.describe())
    one_error_line(r, ["nope.vhd"], "check of a missing file")


def main():
    global EXE, TMP
    EXE, TMP = T.setup()
    for case in (case_header_cookie, case_parent_footer_cookie, case_footer_checksum,
                 case_fixed_footer_checksum, case_header_checksum, case_bat_past_eof,
                 case_bat_partly_past_eof, case_bat_overlap, case_bat_into_headers,
                 case_block_size, case_absurd_sizes, case_offsets_past_eof, case_types,
                 case_missing_parent, case_uuid_mismatch, case_loops, case_truncated,
                 case_damaged_parent, case_tolerant, case_hostile_locators,
                 case_odd_geometry, case_bat_sector0, case_no_overwrite, case_create_args):
        print("case", case.__name__)
        case()
    T.finish("e2e.test_bad_input")


if __name__ == "__main__":
    main()
