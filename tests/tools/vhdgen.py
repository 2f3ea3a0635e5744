"""vhdgen: a small, test-only VHD writer, reader and mutator.

Independent of snapport: every structure is packed field by field, big-endian,
from the VHD spec (see shared reference vhd.md sections 1 and 4).  Used by the
e2e and interop tests to build fixtures (fixed, dynamic, differencing, odd
locator conventions, damaged files) and to compute expected content.

Layout written for dynamic/differencing images:
    0      footer copy (512)
    512    dynamic header (1024)
    1536   BAT (max_table_entries * 4, padded to 512)
    ...    parent locator payloads (each padded to its data space)
    ...    blocks: sector bitmap (padded to 512) + block data; with align4k
           the block data starts on a 4 KiB boundary (blktap layout)
    EOF-512 footer
"""

import os
import struct
import time
import uuid as uuidlib

SECTOR = 512
COOKIE_FOOTER = b"conectix"
COOKIE_HEADER = b"cxsparse"
TYPE_FIXED, TYPE_DYNAMIC, TYPE_DIFF = 2, 3, 4
VHD_EPOCH = 946684800  # 2000-01-01 00:00:00 UTC
BAT_UNUSED = 0xFFFFFFFF
NO_OFFSET = 0xFFFFFFFFFFFFFFFF

PLAT_NONE = 0
PLAT_W2KU = 0x57326B75  # 'W2ku' absolute windows path, UTF-16LE
PLAT_W2RU = 0x57327275  # 'W2ru' relative windows path, UTF-16LE
PLAT_MACX = 0x4D616358  # 'MacX' file URL, UTF-8

# name -> (offset, struct format) for the 512-byte footer
FOOTER_FIELDS = {
    "cookie": (0, "8s"),
    "features": (8, ">I"),
    "version": (12, ">I"),
    "data_offset": (16, ">Q"),
    "timestamp": (24, ">I"),
    "creator_app": (28, "4s"),
    "creator_version": (32, ">I"),
    "creator_os": (36, ">I"),
    "original_size": (40, ">Q"),
    "current_size": (48, ">Q"),
    "cylinders": (56, ">H"),
    "heads": (58, "B"),
    "spt": (59, "B"),
    "disk_type": (60, ">I"),
    "checksum": (64, ">I"),
    "uuid": (68, "16s"),
    "saved_state": (84, "B"),
    "hidden": (85, "B"),
}

# name -> (offset, struct format) for the 1024-byte dynamic header
HEADER_FIELDS = {
    "cookie": (0, "8s"),
    "data_offset": (8, ">Q"),
    "table_offset": (16, ">Q"),
    "version": (24, ">I"),
    "max_table_entries": (28, ">I"),
    "block_size": (32, ">I"),
    "checksum": (36, ">I"),
    "parent_uuid": (40, "16s"),
    "parent_timestamp": (56, ">I"),
    "parent_name": (64, "512s"),
}
LOCATOR_TABLE = 576
LOCATOR_SIZE = 24


def checksum(buf, field_off):
    """One's complement of the byte sum with the checksum field zeroed."""
    b = bytearray(buf)
    b[field_off:field_off + 4] = b"\0\0\0\0"
    return (~sum(b)) & 0xFFFFFFFF


def chs(size):
    """Spec appendix CHS calculation: (cylinders, heads, sectors/track)."""
    secs = min(size // SECTOR, 65535 * 16 * 255)
    if secs >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = secs // spt
    else:
        spt = 17
        cth = secs // spt
        heads = max(4, (cth + 1023) // 1024)
        if cth >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cth = secs // spt
        if cth >= heads * 1024:
            spt, heads = 63, 16
            cth = secs // spt
    return cth // heads, heads, spt


def vhd_time(unix=None):
    t = int(time.time() if unix is None else unix)
    return max(0, t - VHD_EPOCH) & 0xFFFFFFFF


def pad(n, unit=SECTOR):
    return (n + unit - 1) // unit * unit


def set_bit(bitmap, i, v=1):
    """Sector bitmap bit i: MSB of byte 0 is sector 0."""
    if v:
        bitmap[i >> 3] |= 0x80 >> (i & 7)
    else:
        bitmap[i >> 3] &= ~(0x80 >> (i & 7)) & 0xFF


def get_bit(bitmap, i):
    return (bitmap[i >> 3] >> (7 - (i & 7))) & 1


# --------------------------------------------------------------------------
# footer / header packing

def pack_footer(size, disk_type, uid, data_offset, creator_app=b"tap\0",
                creator_version=0x00010003, creator_os=0, timestamp=None,
                hidden=0, geometry=None, original_size=None, features=2,
                fix_checksum=True, **extra):
    """512-byte footer.  extra: any FOOTER_FIELDS name to force a value."""
    f = bytearray(512)
    c, h, s = geometry if geometry is not None else chs(size)
    vals = dict(cookie=COOKIE_FOOTER, features=features, version=0x00010000,
                data_offset=data_offset,
                timestamp=vhd_time() if timestamp is None else timestamp,
                creator_app=creator_app, creator_version=creator_version,
                creator_os=creator_os,
                original_size=size if original_size is None else original_size,
                current_size=size, cylinders=c, heads=h, spt=s,
                disk_type=disk_type, checksum=0, uuid=uid, saved_state=0,
                hidden=hidden)
    vals.update(extra)
    for name, v in vals.items():
        off, fmt = FOOTER_FIELDS[name]
        struct.pack_into(fmt, f, off, v)
    if fix_checksum and "checksum" not in extra:
        struct.pack_into(">I", f, 64, checksum(f, 64))
    return bytes(f)


def pack_header(max_entries, block_size, table_offset=1536, parent_uuid=b"\0" * 16,
                parent_timestamp=0, parent_name="", locators=(),
                fix_checksum=True, **extra):
    """1024-byte dynamic header.  locators: list of (code, space, length, offset)."""
    h = bytearray(1024)
    vals = dict(cookie=COOKIE_HEADER, data_offset=NO_OFFSET,
                table_offset=table_offset, version=0x00010000,
                max_table_entries=max_entries, block_size=block_size,
                checksum=0, parent_uuid=parent_uuid,
                parent_timestamp=parent_timestamp,
                parent_name=parent_name.encode("utf-16-be")[:512])
    vals.update(extra)
    for name, v in vals.items():
        off, fmt = HEADER_FIELDS[name]
        struct.pack_into(fmt, h, off, v)
    for i, (code, space, length, off) in enumerate(locators[:8]):
        struct.pack_into(">IIIIQ", h, LOCATOR_TABLE + i * LOCATOR_SIZE,
                         code, space, length, 0, off)
    if fix_checksum and "checksum" not in extra:
        struct.pack_into(">I", h, 36, checksum(h, 36))
    return bytes(h)


# --------------------------------------------------------------------------
# parent locators

class Locator:
    """One parent locator: code, payload bytes, data space unit."""

    def __init__(self, code, payload, space_in="bytes", space=None):
        self.code = code
        self.payload = payload
        self.space_in = space_in  # 'bytes' (blktap, Hyper-V) or 'sectors' (spec)
        self.space = space        # bytes reserved; default payload padded to 512

    def reserved_bytes(self):
        return self.space if self.space is not None else max(SECTOR, pad(len(self.payload)))

    def space_field(self):
        n = self.reserved_bytes()
        return n if self.space_in == "bytes" else n // SECTOR


def loc_macx(url, **kw):
    return Locator(PLAT_MACX, url.encode("utf-8"), **kw)


def loc_w2ku(path, **kw):
    return Locator(PLAT_W2KU, path.encode("utf-16-le"), **kw)


def loc_w2ru(path, **kw):
    return Locator(PLAT_W2RU, path.encode("utf-16-le"), **kw)


def blktap_locators(parent_name):
    """What blktap writes: MacX file://./p, W2ku and W2ru .\\p, space in bytes."""
    return [loc_macx("file://./" + parent_name), loc_w2ku(".\\" + parent_name),
            loc_w2ru(".\\" + parent_name)]


def xo_locators(parent_name):
    """Xen Orchestra vhd-lib: a single W2KU locator with the relative name."""
    return [loc_w2ku(parent_name, space_in="sectors")]


def hyperv_locators(abs_windows_path, parent_name):
    """Hyper-V style: W2ku absolute Windows path + W2ru relative path."""
    return [loc_w2ku(abs_windows_path), loc_w2ru(".\\" + parent_name)]


# --------------------------------------------------------------------------
# images

class FixedVhd:
    """A fixed VHD: raw data followed by a footer."""

    def __init__(self, size, uid=None, creator_app=b"tap\0", **footer_kw):
        assert size % SECTOR == 0
        self.size = size
        self.uuid = uid or uuidlib.uuid4().bytes
        self.data = bytearray(size)
        self.creator_app = creator_app
        self.footer_kw = footer_kw

    def write(self, offset, data):
        self.data[offset:offset + len(data)] = data

    def footer(self):
        return pack_footer(self.size, TYPE_FIXED, self.uuid, NO_OFFSET,
                           creator_app=self.creator_app, **self.footer_kw)

    def save(self, path):
        with open(path, "wb") as f:
            f.write(self.data)
            f.write(self.footer())
        return path


class DynamicVhd:
    """A dynamic (parent=None) or differencing VHD built in memory.

    blocks: {block index: [bitmap bytearray, data bytearray]}.  Sectors are
    the unit: write_sectors() stores data and sets bits; set_bits() changes
    only the bitmap (so a diff sector with bit set and zero data shadows the
    parent with zeros).  The bitmap can be anything the caller wants.
    """

    def __init__(self, size, block_size=2 * 1024 * 1024, parent_uuid=None,
                 parent_name="", locators=(), uid=None, creator_app=b"tap\0",
                 align4k=True, hidden=0, parent_timestamp=0, block_order=None,
                 footer_kw=None, header_kw=None):
        assert size % SECTOR == 0
        self.size = size
        self.block_size = block_size
        self.spb = block_size // SECTOR
        self.bitmap_bytes = pad((self.spb + 7) // 8)
        self.max_entries = (size + block_size - 1) // block_size
        self.parent_uuid = parent_uuid
        self.parent_name = parent_name
        self.parent_timestamp = parent_timestamp
        self.locators = list(locators)
        self.uuid = uid or uuidlib.uuid4().bytes
        self.creator_app = creator_app
        self.align4k = align4k
        self.hidden = hidden
        self.block_order = block_order  # optional list: order blocks are laid out
        self.footer_kw = dict(footer_kw or {})
        self.header_kw = dict(header_kw or {})
        self.blocks = {}
        self.layout = {}  # filled by save(): block index -> file offset of bitmap

    @classmethod
    def child_of(cls, parent_path, parent_obj=None, name=None, conv="blktap", **kw):
        """Differencing child of an existing file (reads its uuid/size)."""
        info = parse(parent_path)
        pname = name or os.path.basename(parent_path)
        if conv == "blktap":
            locs = blktap_locators(pname)
        elif conv == "xo":
            locs = xo_locators(pname)
        elif conv == "none":
            locs = []
        else:
            locs = conv
        kw.setdefault("size", info["footer"]["current_size"])
        kw.setdefault("parent_timestamp", vhd_time(os.stat(parent_path).st_mtime))
        return cls(parent_uuid=info["footer"]["uuid"], parent_name=pname,
                   locators=locs, **kw)

    @property
    def disk_type(self):
        return TYPE_DIFF if self.parent_uuid is not None else TYPE_DYNAMIC

    def _block(self, b):
        if b not in self.blocks:
            self.blocks[b] = [bytearray(self.bitmap_bytes), bytearray(self.block_size)]
        return self.blocks[b]

    def allocate(self, b):
        """Allocate block b with an empty bitmap."""
        self._block(b)

    def write_sectors(self, sector, data):
        """Store data (multiple of 512) at sector and set the bits."""
        assert len(data) % SECTOR == 0
        assert (sector * SECTOR + len(data)) <= self.size, "write past the end"
        for i in range(len(data) // SECTOR):
            s = sector + i
            bm, bd = self._block(s // self.spb)
            k = s % self.spb
            bd[k * SECTOR:(k + 1) * SECTOR] = data[i * SECTOR:(i + 1) * SECTOR]
            set_bit(bm, k)

    def write(self, offset, data):
        """Byte-address write; must be sector aligned."""
        assert offset % SECTOR == 0
        self.write_sectors(offset // SECTOR, data)

    def set_bits(self, sector, count, value=1):
        for s in range(sector, sector + count):
            bm, _ = self._block(s // self.spb)
            set_bit(bm, s % self.spb, value)

    def poke_data(self, sector, data):
        """Change stored data without touching the bitmap (data where bit is 0)."""
        for i in range(len(data) // SECTOR):
            s = sector + i
            _, bd = self._block(s // self.spb)
            k = s % self.spb
            bd[k * SECTOR:(k + 1) * SECTOR] = data[i * SECTOR:(i + 1) * SECTOR]

    def apply_to(self, model):
        """Overlay this layer on a bytearray model of its parent (in place)."""
        for b, (bm, bd) in self.blocks.items():
            for k in range(self.spb):
                off = (b * self.spb + k) * SECTOR
                if off >= self.size:
                    break
                if get_bit(bm, k):
                    model[off:off + SECTOR] = bd[k * SECTOR:(k + 1) * SECTOR]
                elif self.parent_uuid is None:
                    model[off:off + SECTOR] = bytes(SECTOR)
        return model

    def footer(self):
        kw = dict(self.footer_kw)
        return pack_footer(self.size, self.disk_type, self.uuid, 512,
                           creator_app=self.creator_app, hidden=self.hidden, **kw)

    def save(self, path):
        bat_off = 1536
        bat_bytes = pad(self.max_entries * 4)
        pos = bat_off + bat_bytes
        loc_entries = []
        loc_blobs = []
        for loc in self.locators:
            loc_entries.append((loc.code, loc.space_field(), len(loc.payload), pos))
            loc_blobs.append((pos, loc.payload))
            pos += loc.reserved_bytes()
        bat = [BAT_UNUSED] * self.max_entries
        order = self.block_order or sorted(self.blocks)
        for b in order:
            if self.align4k:
                # block data (bitmap end) on a 4 KiB boundary
                while (pos + self.bitmap_bytes) % 4096:
                    pos += SECTOR
            self.layout[b] = pos
            bat[b] = pos // SECTOR
            pos += self.bitmap_bytes + self.block_size
        header = pack_header(self.max_entries, self.block_size, bat_off,
                             parent_uuid=self.parent_uuid or b"\0" * 16,
                             parent_timestamp=self.parent_timestamp,
                             parent_name=self.parent_name,
                             locators=loc_entries, **self.header_kw)
        footer = self.footer()
        buf = bytearray(pos + 512)
        buf[0:512] = footer
        buf[512:1536] = header
        buf[bat_off:bat_off + self.max_entries * 4] = struct.pack(
            ">%dI" % self.max_entries, *bat)
        for b in range(self.max_entries * 4, bat_bytes):
            buf[bat_off + b] = 0xFF  # BAT padding like blktap/qemu
        for off, payload in loc_blobs:
            buf[off:off + len(payload)] = payload
        for b in order:
            bm, bd = self.blocks[b]
            o = self.layout[b]
            buf[o:o + len(bm)] = bm
            buf[o + len(bm):o + len(bm) + len(bd)] = bd
        buf[pos:pos + 512] = footer
        with open(path, "wb") as f:
            f.write(buf)
        return path


# --------------------------------------------------------------------------
# reader (used to self-check vhdgen output and by the tests' models)

def unpack_fields(buf, fields):
    return {n: struct.unpack_from(fmt, buf, off)[0] for n, (off, fmt) in fields.items()}


def parse(path):
    """Footer, header, BAT, locators of a VHD file (no validation beyond cookies)."""
    with open(path, "rb") as f:
        data = f.read()
    footer = unpack_fields(data[-512:], FOOTER_FIELDS)
    out = {"footer": footer, "footer_ok": checksum(data[-512:], 64) == footer["checksum"],
           "size": len(data)}
    if footer["disk_type"] in (TYPE_DYNAMIC, TYPE_DIFF):
        ho = footer["data_offset"]
        hb = data[ho:ho + 1024]
        header = unpack_fields(hb, HEADER_FIELDS)
        header["parent_name"] = header["parent_name"].decode("utf-16-be").rstrip("\0")
        out["header"] = header
        out["header_ok"] = checksum(hb, 36) == header["checksum"]
        n = header["max_table_entries"]
        to = header["table_offset"]
        out["bat"] = list(struct.unpack_from(">%dI" % n, data, to))
        locs = []
        for i in range(8):
            code, space, length, _, off = struct.unpack_from(
                ">IIIIQ", hb, LOCATOR_TABLE + i * LOCATOR_SIZE)
            if code:
                locs.append((code, space, length, off, data[off:off + length]))
        out["locators"] = locs
    return out


def read_content(path, parent_content=None):
    """Content of one VHD layer over parent_content (bytes) -> bytearray."""
    info = parse(path)
    ft = info["footer"]
    size = ft["current_size"]
    with open(path, "rb") as f:
        data = f.read()
    if ft["disk_type"] == TYPE_FIXED:
        return bytearray(data[:size])
    h = info["header"]
    bs = h["block_size"]
    spb = bs // SECTOR
    bmb = pad((spb + 7) // 8)
    out = bytearray(parent_content) if parent_content is not None else bytearray(size)
    for b, e in enumerate(info["bat"]):
        if e == BAT_UNUSED:
            continue
        o = e * SECTOR
        bm = data[o:o + bmb]
        for k in range(spb):
            off = (b * spb + k) * SECTOR
            if off >= size:
                break
            if get_bit(bm, k):
                d = o + bmb + k * SECTOR
                out[off:off + SECTOR] = data[d:d + SECTOR]
    return out


# --------------------------------------------------------------------------
# mutators (for damaged-input tests)

def _patch(path, base, fields, csum_off, name, value, fix_checksum):
    with open(path, "r+b") as f:
        f.seek(base)
        blk = bytearray(f.read(1024 if csum_off == 36 else 512))
        off, fmt = fields[name]
        struct.pack_into(fmt, blk, off, value)
        if fix_checksum:
            struct.pack_into(">I", blk, csum_off, checksum(blk, csum_off))
        f.seek(base)
        f.write(blk)


def set_footer_field(path, name, value, fix_checksum=True, copies=("end", "start")):
    """Set a footer field in the end footer and (dynamic) the copy at 0."""
    size = os.path.getsize(path)
    info = parse(path)
    dynamic = info["footer"]["disk_type"] in (TYPE_DYNAMIC, TYPE_DIFF)
    if "end" in copies:
        _patch(path, size - 512, FOOTER_FIELDS, 64, name, value, fix_checksum)
    if "start" in copies and dynamic:
        _patch(path, 0, FOOTER_FIELDS, 64, name, value, fix_checksum)


def set_header_field(path, name, value, fix_checksum=True):
    if name == "parent_name" and isinstance(value, str):
        value = value.encode("utf-16-be")
    ho = parse(path)["footer"]["data_offset"]
    _patch(path, ho, HEADER_FIELDS, 36, name, value, fix_checksum)


def set_bat_entry(path, index, value):
    to = parse(path)["header"]["table_offset"]
    with open(path, "r+b") as f:
        f.seek(to + 4 * index)
        f.write(struct.pack(">I", value))


def corrupt_bytes(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def truncate(path, length):
    with open(path, "r+b") as f:
        f.truncate(length)


def load_dynamic(path):
    """Load a dynamic/differencing VHD file back into a DynamicVhd (for edits)."""
    info = parse(path)
    ft, h = info["footer"], info["header"]
    img = DynamicVhd(ft["current_size"], block_size=h["block_size"],
                     parent_uuid=h["parent_uuid"] if ft["disk_type"] == TYPE_DIFF else None,
                     parent_name=h["parent_name"], uid=ft["uuid"],
                     creator_app=ft["creator_app"], hidden=ft["hidden"],
                     parent_timestamp=h["parent_timestamp"])
    for code, space, length, off, payload in info["locators"]:
        img.locators.append(Locator(code, payload, space_in="bytes" if space >= SECTOR else "sectors",
                                    space=space if space >= SECTOR else space * SECTOR))
    with open(path, "rb") as f:
        data = f.read()
    for b, e in enumerate(info["bat"]):
        if e != BAT_UNUSED:
            o = e * SECTOR
            img.blocks[b] = [bytearray(data[o:o + img.bitmap_bytes]),
                             bytearray(data[o + img.bitmap_bytes:o + img.bitmap_bytes + img.block_size])]
    return img
