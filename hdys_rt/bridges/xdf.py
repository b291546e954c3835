"""A minimal XDF writer (the LabRecorder format, https://github.com/sccn/xdf/wiki/Specifications):
one file header, one stream header per stream, its samples in one chunk, and a stream footer.
Used by the tests to write real XDF files that :mod:`pyxdf` (and so :mod:`.files`) reads.

Chunk layout: ``NumLengthBytes`` (1, 4 or 8) | ``Length`` (of tag + content, little-endian) |
``Tag`` (uint16: 1 FileHeader, 2 StreamHeader, 3 Samples, 4 ClockOffset, 6 StreamFooter) | content. Samples:
``StreamID`` (uint32), a variable-length sample count, then per sample ``TimestampBytes`` (8) +
float64 timestamp + the values (float32 here).
"""

from __future__ import annotations

import os
import struct
from xml.sax.saxutils import escape

import numpy as np

__all__ = ["write_xdf"]


def _chunk(tag: int, content: bytes) -> bytes:
    n = len(content) + 2
    return struct.pack("<BQ", 8, n) + struct.pack("<H", tag) + content


def _varlen(n: int) -> bytes:
    return struct.pack("<BQ", 8, n)


def write_xdf(path: str | os.PathLike, streams: list[dict]) -> None:
    """Write ``streams`` to ``path``. Each stream is a dict: ``name``, ``type``, ``rate`` (Hz),
    ``data`` (T, C) float32, ``timestamps`` (T,) s, and optional ``labels`` / ``units``
    (C channel labels and units) and ``desc_xml`` (extra XML inside ``<desc>``)."""
    out = [b"XDF:", _chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')]
    for sid, s in enumerate(streams, 1):
        data = np.ascontiguousarray(s["data"], dtype="<f4")  # (samples, channels)
        ts = np.asarray(s["timestamps"], dtype="<f8")
        T, C = data.shape
        chans = ""
        if s.get("labels"):
            units = s.get("units") or [""] * C
            chans = "<channels>" + "".join(
                f"<channel><label>{escape(lab)}</label><unit>{escape(u)}</unit></channel>"
                for lab, u in zip(s["labels"], units)) + "</channels>"
        header = (f'<?xml version="1.0"?><info><name>{escape(s["name"])}</name>'
                  f'<type>{escape(s["type"])}</type><channel_count>{C}</channel_count>'
                  f'<nominal_srate>{float(s["rate"])}</nominal_srate>'
                  f'<channel_format>float32</channel_format>'
                  f'<source_id>hdys-test-{sid}</source_id><created_at>0</created_at>'
                  f'<desc>{chans}{s.get("desc_xml", "")}</desc></info>')
        out.append(_chunk(2, struct.pack("<I", sid) + header.encode()))
        body = [struct.pack("<I", sid), _varlen(T)]
        for i in range(T):
            body.append(struct.pack("<Bd", 8, float(ts[i])))
            body.append(data[i].tobytes())
        out.append(_chunk(3, b"".join(body)))
        for t in (ts[0], ts[-1]):  # clock offsets (0: recorded on this machine's clock)
            out.append(_chunk(4, struct.pack("<Idd", sid, float(t), 0.0)))
        footer = (f'<?xml version="1.0"?><info><first_timestamp>{ts[0]}</first_timestamp>'
                  f'<last_timestamp>{ts[-1]}</last_timestamp><sample_count>{T}</sample_count>'
                  f'<clock_offsets></clock_offsets></info>')
        out.append(_chunk(6, struct.pack("<I", sid) + footer.encode()))
    with open(path, "wb") as f:
        f.write(b"".join(out))
