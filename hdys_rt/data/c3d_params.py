"""The C3D header and parameter section, read and checked in Python before ezc3d sees the file.

ezc3d trusts the parameter records: a few changed bytes there (a name length, an offset to the
next record, a dimension) make it read past its buffers and crash the process. Every record is
walked here first and must stay inside the section; a bad file is an :class:`HdysError` naming
the byte that is wrong. The values the reader needs (``POINT:FRAMES``, ``POINT:USED``,
``PROCESSING:Bodymass``...) come from here too.

C3D layout (https://www.c3d.org/HTML/default.htm): 512-byte blocks. Block 1 is the header
(byte 0: first parameter block, byte 1: 0x50; 16-bit words: 2 points, 3 analog samples per
frame, 4/5 first/last frame, 7-8 scale (float), 9 data start block). The parameter section
starts with 4 bytes (2: number of blocks, 3: processor 84 Intel, 85 DEC, 86 MIPS big-endian),
then records::

    int8  name length (negative: locked; 0: end)   int8 id (< 0: group, > 0: its group's id)
    name  int16 offset to the next record (from this field; 0: last)
    group: uint8 description length, description
    param: int8 type (-1 char, 1 byte, 2 int16, 4 float), int8 dims, uint8 dim[dims], data,
           uint8 description length, description
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hdys_rt.errors import HdysError

BLOCK = 512
PROCESSORS = {84: "Intel", 85: "DEC", 86: "MIPS"}
TYPES = {-1: 1, 1: 1, 2: 2, 4: 4}  # parameter type -> bytes per element
MAX_DIMS = 7


@dataclass(frozen=True)
class C3DLayout:
    """What the header and parameter section say about a C3D file.

    Attributes:
        param_block, n_param_blocks, processor: where the section is and its number format.
        header: header words ``points``, ``analog`` (samples per frame), ``first``, ``last``,
            ``data_block`` and ``scale``.
        params: ``{"GROUP:NAME": value}``, names upper-case; numbers as 1-D float arrays
            (int16 read unsigned, as C3D counts are), characters as a list of strings.
    """

    param_block: int
    n_param_blocks: int
    processor: int
    header: dict
    params: dict = field(default_factory=dict)

    def number(self, key: str, default=None):
        """The first element of a numeric parameter, or ``default``."""
        v = self.params.get(key)
        if isinstance(v, np.ndarray) and v.size and np.isfinite(v.flat[0]):
            return float(v.flat[0])
        return default

    @property
    def frames(self) -> int:
        """Frames of point data: ``POINT:FRAMES`` (the parameter section is trusted over the
        header's first/last frame, which some writers leave stale), else the header's."""
        n = self.number("POINT:FRAMES")
        if n is not None and n >= 0:
            return int(n)
        h = self.header
        return h["last"] - h["first"] + 1 if h["last"] >= h["first"] else 0


def _dec_float(b: bytes) -> float:
    """A DEC (VAX F) float's 4 bytes as IEEE: swap the 16-bit words, divide by 4."""
    return struct.unpack("<f", b[2:] + b[:2])[0] / 4.0


def read_layout(path: Path, size: int) -> C3DLayout:
    """Read and check the header and every parameter record of the C3D at ``path``.

    Raises:
        HdysError: not a C3D file, truncated, or a parameter record that does not fit.
    """
    with open(path, "rb") as fh:
        head = fh.read(BLOCK)
        if len(head) < BLOCK or head[1] != 0x50:
            raise HdysError(f"{path}: not a C3D file (bad header block)")
        pb = head[0]
        if pb < 2:
            raise HdysError(f"{path}: C3D header points to parameter block {pb} (< 2)")
        fh.seek((pb - 1) * BLOCK)
        phead = fh.read(4)
        if len(phead) < 4:
            raise HdysError(f"{path}: truncated C3D file (no parameter section)")
        nb, processor = phead[2], phead[3]
        if processor not in PROCESSORS:
            raise HdysError(f"{path}: unknown C3D processor type {processor} (expected 84, 85 "
                            "or 86)")
        if nb < 1:
            raise HdysError(f"{path}: C3D parameter section has 0 blocks")
        end = (pb - 1 + nb) * BLOCK
        if end > size:
            raise HdysError(f"{path}: truncated C3D file: parameter section ends at byte "
                            f"{end}, file has {size}")
        fh.seek((pb - 1) * BLOCK)
        sec = fh.read(nb * BLOCK)
    e = ">" if processor == 86 else "<"
    words = struct.unpack(e + "256H", head)
    raw_scale = head[12:16]
    scale = _dec_float(raw_scale) if processor == 85 else struct.unpack(e + "f", raw_scale)[0]
    header = {"points": words[1], "analog": words[2], "first": words[3], "last": words[4],
              "data_block": words[8], "scale": scale}
    lay = C3DLayout(pb, nb, processor, header, _records(path, sec, (pb - 1) * BLOCK, e,
                                                          processor == 85))
    _check_analog(path, lay)
    return lay


def _check_analog(path: Path, lay: C3DLayout) -> None:
    """ezc3d indexes ``ANALOG:SCALE`` and ``ANALOG:OFFSET`` by channel without checking that
    they exist (a missing one crashes it): each must hold a value per used channel."""
    used = lay.number("ANALOG:USED", 1.0 if lay.header["analog"] else 0.0)
    if used <= 0:
        return
    for key in ("ANALOG:SCALE", "ANALOG:OFFSET"):
        v = lay.params.get(key)
        if not isinstance(v, np.ndarray) or v.size < used:
            have = "missing" if v is None else f"{np.size(v)} values"
            raise HdysError(f"{path}: corrupt C3D parameter section: {key} is {have}, "
                            f"ANALOG:USED is {int(used)}")


def _records(path: Path, sec: bytes, base: int, e: str, dec: bool) -> dict:
    """Walk the parameter records of section ``sec`` (which starts at file byte ``base``)."""
    def bad(pos: int, what: str):
        return HdysError(f"{path}: corrupt C3D parameter section at byte {base + pos}: {what}")

    n = len(sec)
    groups: dict[int, str] = {}
    raw: list[tuple[int, str, int, tuple, bytes, int]] = []  # gid, name, type, dims, data, pos
    pos = 4
    while pos + 2 <= n:
        nlen, gid = struct.unpack_from("bb", sec, pos)
        if nlen == 0:
            break
        k = abs(nlen)
        p = pos + 2
        if gid == 0:
            raise bad(pos, "record with group id 0")
        if p + k + 2 > n:
            raise bad(pos, f"name of {k} characters runs past the section")
        name_b = sec[p:p + k]
        if any(c < 32 or c == 127 for c in name_b):
            raise bad(pos, f"name {name_b[:16]!r} holds control characters")
        name = name_b.decode("latin-1").strip().upper()
        p += k
        (off,) = struct.unpack_from(e + "h", sec, p)
        nxt = p + off
        p += 2
        if gid < 0:  # group: description only
            if p + 1 > n or p + 1 + sec[p] > n:
                raise bad(pos, f"group {name} description runs past the section")
            p += 1 + sec[p]
            if -gid in groups:
                raise bad(pos, f"group id {-gid} used twice ({groups[-gid]}, {name})")
            groups[-gid] = name
        else:
            if p + 2 > n:
                raise bad(pos, f"parameter {name} runs past the section")
            typ, nd = struct.unpack_from("bb", sec, p)
            if typ not in TYPES:
                raise bad(pos, f"parameter {name} has type {typ} (expected -1, 1, 2 or 4)")
            if not 0 <= nd <= MAX_DIMS:
                raise bad(pos, f"parameter {name} has {nd} dimensions (expected 0..{MAX_DIMS})")
            p += 2
            if p + nd > n:
                raise bad(pos, f"parameter {name} dimensions run past the section")
            dims = tuple(sec[p:p + nd])
            p += nd
            nbytes = TYPES[typ] * math.prod(dims)
            if p + nbytes + 1 > n or p + nbytes + 1 + sec[p + nbytes] > n:
                raise bad(pos, f"parameter {name} ({'x'.join(map(str, dims)) or 'scalar'} of "
                               f"{TYPES[typ]} bytes) runs past the section")
            raw.append((gid, name, typ, dims, sec[p:p + nbytes], pos))
            p += nbytes + 1 + sec[p + nbytes]
        if off == 0:
            break
        if off < 0 or nxt < p or nxt > n:
            raise bad(pos, f"offset to the next record {off} leaves the record or the section")
        pos = nxt
    params = {}
    for gid, name, typ, dims, data, pos in raw:
        if gid not in groups:
            raise bad(pos, f"parameter {name} belongs to group id {gid}, which does not exist")
        params[f"{groups[gid]}:{name}"] = _value(typ, dims, data, e, dec)
    return params


def _text(b: bytes) -> str:
    return b.decode("latin-1").replace("\0", " ").strip()


def _value(typ: int, dims: tuple, data: bytes, e: str, dec: bool):
    """A parameter's value: numbers as a flat float64 array, characters as strings (the first
    dimension is the string length)."""
    if typ == -1:
        if not data:
            return []
        if len(dims) < 2:
            return [_text(data)]
        w = dims[0]
        return [_text(data[i:i + w]) for i in range(0, len(data), w)]
    if typ == 1:
        return np.frombuffer(data, np.uint8).astype(np.float64)
    if typ == 2:
        return np.frombuffer(data, e + "u2").astype(np.float64)
    if dec:
        return np.array([_dec_float(data[i:i + 4]) for i in range(0, len(data), 4)])
    return np.frombuffer(data, e + "f4").astype(np.float64)
