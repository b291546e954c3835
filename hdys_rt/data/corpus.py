"""The corpus on-disk format: a folder per domain, a pair of files per sequence.

Layout::

    CORPUS/
      corpus.json                 # {"format": "hdys-corpus", "version": 1, "seed": .., "domains": [..]}
      DOMAIN/
        domain.json               # {"name", "kind": "real|sim|semg|kinematics", "description"}
        SEQ.f32                   # little-endian float32, C order, shape (frames, columns)
        SEQ.json                  # sidecar, see below

Sidecar (``SEQ.json``)::

    {"format": "hdys-seq", "version": 1, "name": "walk_0003", "domain": "myolegs",
     "rate": 100.0, "frames": 512, "columns": 321,
     "subject": {"id": "s01", "mass_kg": 72.6, "height_m": 1.8},
     "source": "MuJoCo 3.x mj_inverse on MyoLegs, retargeted real gait ...",
     "representations": {
        "markers": {"names": ["R.ASIS", ...], "start": 0, "stop": 123, "unit": "m"},
        "torques_rajagopal": {"names": ["hip_flexion_r", ...], "start": 123, "stop": 140,
                              "unit": "N·m/kg"},
        ...},
     "meta": {...free, e.g. keypoint layout, quality figures...}}

Point sets (markers, keypoints) store three columns per point: ``NAME_x, NAME_y, NAME_z``
(``names`` lists the points). Vector representations store one column per channel, ``names``
lists the channels (any subset/order of the canonical channels). NaN marks a missing value.
All coordinates are Y up, metres (see :mod:`hdys_rt.representations`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hdys_rt import representations as reps
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MAX_COLUMNS = 100_000  # hard limit on a sidecar's column count (bad files fail fast)


@dataclass(frozen=True)
class Subject:
    id: str
    mass_kg: float
    height_m: float

    def __post_init__(self):
        if not (20.0 <= self.mass_kg <= 250.0):
            raise HdysError(f"subject {self.id!r}: mass_kg={self.mass_kg} is outside 20..250 kg")
        if not (0.5 <= self.height_m <= 2.5):
            raise HdysError(f"subject {self.id!r}: height_m={self.height_m} is outside 0.5..2.5 m")


@dataclass
class Sequence:
    """One recorded or simulated sequence at a uniform rate.

    ``data[key]`` is ``(T, P, 3)`` float32 for point sets and ``(T, C)`` float32 for vectors;
    ``names[key]`` names its points or channels. NaN marks missing values.
    """

    name: str
    domain: str
    rate: float
    subject: Subject
    source: str
    data: dict[str, np.ndarray]
    names: dict[str, tuple[str, ...]]
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.rate <= 0:
            raise HdysError(f"sequence {self.name!r}: rate must be > 0 Hz, got {self.rate}")
        frames = None
        for key, arr in self.data.items():
            rep = reps.get(key)
            arr = np.asarray(arr, dtype=np.float32)
            self.data[key] = arr
            want = 3 if rep.point_set else 2
            if arr.ndim != want or (rep.point_set and arr.shape[2] != 3):
                raise HdysError(
                    f"sequence {self.name!r}: {key} must be "
                    f"{'(T, P, 3)' if rep.point_set else '(T, C)'}, got shape {arr.shape}"
                )
            if len(self.names.get(key, ())) != arr.shape[1]:
                raise HdysError(
                    f"sequence {self.name!r}: {key} has {arr.shape[1]} "
                    f"{'points' if rep.point_set else 'channels'} but "
                    f"{len(self.names.get(key, ()))} names"
                )
            if not rep.point_set:
                unknown = set(self.names[key]) - set(rep.channels)
                if unknown:
                    raise HdysError(
                        f"sequence {self.name!r}: {key} has unknown channels {sorted(unknown)[:5]}"
                    )
            if frames is None:
                frames = arr.shape[0]
            elif arr.shape[0] != frames:
                raise HdysError(
                    f"sequence {self.name!r}: {key} has {arr.shape[0]} frames, others {frames}"
                )

    @property
    def frames(self) -> int:
        return next(iter(self.data.values())).shape[0] if self.data else 0

    def canonical(self, key: str) -> np.ndarray:
        """Vector representation ``key`` as ``(T, C_canonical)``, NaN where a channel is absent."""
        rep = reps.get(key)
        if rep.point_set:
            raise HdysError(f"{key} is a point set; it has no canonical channel order")
        out = np.full((self.frames, rep.size), np.nan, dtype=np.float32)
        if key in self.data:
            idx = [rep.channels.index(n) for n in self.names[key]]
            out[:, idx] = self.data[key]
        return out


def write_sequence(directory: str | os.PathLike, seq: Sequence) -> Path:
    """Write ``seq`` as ``directory/NAME.f32`` + ``NAME.json``; returns the sidecar path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cols, spec, start = [], {}, 0
    for key in sorted(seq.data):
        arr = seq.data[key]
        flat = arr.reshape(arr.shape[0], -1)
        cols.append(flat)
        spec[key] = {
            "names": list(seq.names[key]),
            "start": start,
            "stop": start + flat.shape[1],
            "unit": reps.get(key).unit,
        }
        start += flat.shape[1]
    table = np.ascontiguousarray(np.concatenate(cols, axis=1), dtype="<f4")
    (directory / f"{seq.name}.f32").write_bytes(table.tobytes())
    sidecar = {
        "format": "hdys-seq",
        "version": FORMAT_VERSION,
        "name": seq.name,
        "domain": seq.domain,
        "rate": float(seq.rate),
        "frames": int(table.shape[0]),
        "columns": int(table.shape[1]),
        "subject": {"id": seq.subject.id, "mass_kg": seq.subject.mass_kg,
                    "height_m": seq.subject.height_m},
        "source": seq.source,
        "representations": spec,
        "meta": seq.meta,
    }
    path = directory / f"{seq.name}.json"
    path.write_text(json.dumps(sidecar, indent=1))
    return path


def read_sequence(sidecar: str | os.PathLike, mmap: bool = False) -> Sequence:
    """Read a sequence from its JSON sidecar path. Fails with :class:`HdysError` on a bad file."""
    sidecar = Path(sidecar)
    try:
        head = json.loads(sidecar.read_text())
    except (OSError, ValueError) as exc:
        raise HdysError(f"{sidecar}: not a readable JSON sidecar ({exc})") from None
    if head.get("format") != "hdys-seq" or head.get("version") != FORMAT_VERSION:
        raise HdysError(
            f"{sidecar}: not an hdys-seq v{FORMAT_VERSION} sidecar "
            f"(format={head.get('format')!r}, version={head.get('version')!r})"
        )
    frames, columns = int(head["frames"]), int(head["columns"])
    if not (0 < columns <= MAX_COLUMNS):
        raise HdysError(f"{sidecar}: columns={columns} outside 1..{MAX_COLUMNS}")
    raw = sidecar.with_suffix(".f32")
    expect = frames * columns * 4
    size = raw.stat().st_size if raw.exists() else -1
    if size != expect:
        raise HdysError(
            f"{raw}: expected {expect} bytes ({frames} frames x {columns} float32 columns), "
            f"found {size if size >= 0 else 'no file'}; rebuild the corpus"
        )
    if mmap:
        table = np.memmap(raw, dtype="<f4", mode="r", shape=(frames, columns))
    else:
        table = np.fromfile(raw, dtype="<f4").reshape(frames, columns)
    data, names = {}, {}
    for key, s in head["representations"].items():
        rep = reps.get(key)
        block = np.asarray(table[:, s["start"]:s["stop"]], dtype=np.float32)
        data[key] = block.reshape(frames, -1, 3) if rep.point_set else block
        names[key] = tuple(s["names"])
    sub = head["subject"]
    return Sequence(
        name=head["name"], domain=head["domain"], rate=float(head["rate"]),
        subject=Subject(str(sub["id"]), float(sub["mass_kg"]), float(sub["height_m"])),
        source=head.get("source", ""), data=data, names=names, meta=head.get("meta", {}),
    )


def write_domain_info(directory: str | os.PathLike, name: str, kind: str, description: str):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "domain.json").write_text(
        json.dumps({"name": name, "kind": kind, "description": description}, indent=1)
    )


def list_sequences(corpus: str | os.PathLike, domain: str) -> list[Path]:
    """Sidecar paths of one domain, sorted by name."""
    d = Path(corpus) / domain
    if not d.is_dir():
        raise HdysError(f"{corpus}: no domain folder {domain!r}")
    return sorted(p for p in d.glob("*.json") if p.name != "domain.json")


def list_domains(corpus: str | os.PathLike) -> list[str]:
    """Domain names of a corpus (folders holding a domain.json), sorted."""
    root = Path(corpus)
    if not root.is_dir():
        raise HdysError(f"corpus {str(root)!r} does not exist; build one with `hdys-rt data build`")
    doms = sorted(p.parent.name for p in root.glob("*/domain.json"))
    if not doms:
        raise HdysError(f"{root}: no domains found (no */domain.json); is this a corpus folder?")
    return doms
