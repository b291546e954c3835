"""C3D files as labs hold them, and as they arrive damaged: the parameter section is checked in
Python before ezc3d sees it (ezc3d crashes the process on a corrupt record), the frame count
comes from ``POINT:FRAMES``, the subject's mass and height from ``PROCESSING``."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import numpy as np
import pytest

from hdys_rt.data import formats
from hdys_rt.data.c3d_params import read_layout
from hdys_rt.errors import HdysError

pytest.importorskip("ezc3d")
REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
C3D = REAL / "c3d"
pytestmark = pytest.mark.skipif(not C3D.is_dir(), reason=f"{C3D} not found (shared data)")


def _section(raw: bytes) -> tuple[int, int]:
    """(first byte, end byte) of the parameter section."""
    start = (raw[0] - 1) * 512
    return start, start + raw[start + 2] * 512


def _record(raw: bytes, group: str, name: str) -> int:
    """Byte offset of parameter GROUP:NAME's record (its name-length byte)."""
    start, end = _section(raw)
    pos, groups, found = start + 4, {}, {}
    while pos < end:
        nlen, gid = struct.unpack_from("bb", raw, pos)
        if nlen == 0:
            break
        k = abs(nlen)
        nm = raw[pos + 2:pos + 2 + k].decode("latin-1").upper()
        if gid < 0:
            groups[-gid] = nm
        else:
            found[(gid, nm)] = pos
        (off,) = struct.unpack_from("<h", raw, pos + 2 + k)
        if off == 0:
            break
        pos += 2 + k + off
    gid = next(g for g, n in groups.items() if n == group)
    return found[(gid, name)]


def _read_or_hdys_error(path: Path) -> str:
    """'ok', or the one-line error; anything else (a crash) fails the test process."""
    try:
        formats.read_c3d(path)
        return "ok"
    except HdysError as exc:
        msg = str(exc)
        assert "\n" not in msg and str(path) in msg, msg
        return msg


@pytest.mark.parametrize("name", ["btk_Eb015pr.c3d", "btk_Gait.c3d",
                                  "nimble_Return11_c3dfile1.c3d"])
def test_fuzzed_parameter_sections_never_crash(tmp_path, name):
    """4 and 12 random bytes changed in the parameter section, at fixed seeds: each file reads
    or is a one-line error. (Seed 35 of btk_Eb015pr renames ANALOG:OFFSET, which crashed
    ezc3d with a segfault before.)"""
    raw = (C3D / name).read_bytes()
    start, end = _section(raw)
    outcomes = []
    for nbytes, seeds in ((4, range(0, 40)), (12, range(100, 115))):
        for seed in seeds:
            rnd = random.Random(seed)
            b = bytearray(raw)
            for _ in range(nbytes):
                b[rnd.randrange(start, min(end, start + 3000))] = rnd.randrange(256)
            p = tmp_path / f"{seed}.c3d"
            p.write_bytes(b)
            outcomes.append(_read_or_hdys_error(p))
    assert any(o == "ok" for o in outcomes)  # harmless changes (descriptions) still read
    assert any("corrupt C3D parameter section" in o for o in outcomes)


def test_each_kind_of_broken_record_is_named(tmp_path):
    raw = (C3D / "btk_Eb015pr.c3d").read_bytes()
    p = tmp_path / "bad.c3d"

    def damaged(pos, value, fmt="b"):
        b = bytearray(raw)
        struct.pack_into("<" + fmt, b, pos, value)
        p.write_bytes(b)
        with pytest.raises(HdysError) as ei:
            formats.read_c3d(p)
        return str(ei.value)

    rec = _record(raw, "POINT", "LABELS")
    k = abs(raw[rec])
    assert "holds control characters" in damaged(rec, -127)  # signed name length: 127 chars
    assert "offset to the next record" in damaged(rec + 2 + k, -40, "h")
    assert "offset to the next record" in damaged(rec + 2 + k, 32000, "h")
    assert "dimensions" in damaged(rec + 4 + k + 1, 99)  # 99 dimensions
    assert "runs past the section" in damaged(rec + 4 + k + 2, 255, "B")  # 255 x 26 labels
    assert "type 7" in damaged(rec + 4 + k, 7)
    assert "group id 9" in damaged(rec + 1, 9)
    off = _record(raw, "ANALOG", "OFFSET")
    assert "ANALOG:OFFSET is missing" in damaged(off + 2, ord("X"))  # ezc3d segfaulted here


def test_header_frame_count_disagreeing_with_point_frames(tmp_path):
    """The header's last frame rewritten (as Optotrak writes it): POINT:FRAMES is trusted."""
    src = C3D / "btk_Eb015pr.c3d"
    raw = bytearray(src.read_bytes())
    first, last = struct.unpack_from("<2H", raw, 6)
    assert (first, last) == (1, 450)
    struct.pack_into("<H", raw, 8, 9000)  # header: 9000 frames, more than the file holds
    p = tmp_path / "stale_header.c3d"
    p.write_bytes(bytes(raw))
    assert read_layout(p, len(raw)).frames == 450
    m, ref = formats.read_c3d(p), formats.read_c3d(src)
    assert m.xyz.shape == ref.xyz.shape == (450, 26, 3)
    np.testing.assert_array_equal(m.xyz, ref.xyz)


def test_subject_mass_and_height_from_processing():
    """Vicon Nexus writes PROCESSING:Bodymass (kg) and Height (mm): they reach the Recording
    that replay / bridge publish as subject metadata; files without them have no subject."""
    from hdys_rt.data.loader import load_file

    rec = load_file(C3D / "btk_FunctionalWalk.c3d")
    assert (rec.subject.mass_kg, rec.subject.height_m) == (60.0, 1.68)
    m = formats.read_c3d(C3D / "btk_PiG_Motion3_FF.c3d")
    assert (m.subject.mass_kg, m.subject.height_m) == (74.0, 1.76)
    assert formats.read_c3d(C3D / "btk_Eb015pr.c3d").subject is None
