"""Fixtures of the bridge tests: a tiny real model, unique ports / LSL names, the project's own
data as files (the bundled gait clip, generated keypoints), and a PNG reader (stdlib only).

Tests assert on counts and values with generous timeouts, never on timing figures."""

from __future__ import annotations

import struct
import uuid
import zlib

import numpy as np
import pytest
from loopback import free_endpoint




@pytest.fixture(scope="session")
def coco_walk(tmp_path_factory):
    """A generated COCO-17 walk (kinematics_only domain): a corpus Sequence, 100 Hz."""
    pytest.importorskip("mujoco")
    pytest.importorskip("scipy")
    from hdys_rt.data.build import write_job
    from hdys_rt.data.corpus import read_sequence
    from hdys_rt.data.domains import kinematics_only as kin

    out = tmp_path_factory.mktemp("kin")
    job = kin.plan(0, quick=True)[0]
    for name in write_job(kin, job, out):
        seq = read_sequence(out / f"{name}.json")
        if seq.meta["keypoint_layout"] == "coco17":
            return seq
    pytest.skip("no coco17 sequence in the quick kinematics_only plan")


@pytest.fixture
def make_endpoint():
    return free_endpoint


@pytest.fixture
def lsl_name():
    return f"hdys-test-{uuid.uuid4().hex[:10]}"


def read_png(path) -> np.ndarray:
    """(H, W, C) uint8 of an 8-bit, non-interlaced PNG (RGB, RGBA, grey): Pillow when it is
    installed (matplotlib brings it), else a plain zlib decoder (slower)."""
    try:
        from PIL import Image

        return np.asarray(Image.open(path).convert("RGB"))
    except ImportError:
        pass
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, head = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = head
    assert depth == 8 and interlace == 0, (depth, interlace)
    c = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    raw = zlib.decompress(b"".join(idat))
    stride = w * c
    out = np.zeros((h, stride), np.uint8)
    prev = np.zeros(stride, np.int32)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int32)
        cur = np.zeros(stride, np.int32)
        if f in (0, 2):
            cur = (line + (prev if f == 2 else 0)) & 255
        else:
            for i in range(stride):
                a = cur[i - c] if i >= c else 0
                b = prev[i]
                if f == 1:
                    p = a
                elif f == 3:
                    p = (a + b) >> 1
                else:
                    cc = prev[i - c] if i >= c else 0
                    pa, pb, pc = abs(b - cc), abs(a - cc), abs(a + b - 2 * cc)
                    p = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
                cur[i] = (line[i] + p) & 255
        out[y] = cur
        prev = cur
    return out.reshape(h, w, c)


@pytest.fixture
def png():
    """:func:`read_png` (tests import nothing from conftest)."""
    return read_png
