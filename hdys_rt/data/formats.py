"""Readers and writers for the motion files people hold: OpenSim TRC / MOT / STO, C3D, AMASS npz.

Everything returned follows the project's convention (see :mod:`hdys_rt.representations`):
right-handed, **Y up**, metres, seconds, radians. Missing samples are NaN.

Every reader treats its file as untrusted: sizes are checked against :class:`Limits` before
anything large is allocated, numbers are parsed strictly, and a malformed file raises
:class:`~hdys_rt.errors.HdysError` whose message names the file and what is wrong. Nothing is ever
unpickled (``np.load(..., allow_pickle=False)``).

Optional dependencies (the ``data`` extra) are imported only where needed: ``ezc3d`` for C3D and
``scipy`` for the AMASS root-orientation conversion.

Entry points:

* :func:`read_trc` / :func:`write_trc`: OpenSim marker files -> :class:`MarkerData`.
* :func:`read_storage` / :func:`write_storage`: OpenSim ``.mot`` / ``.sto`` -> :class:`Table`.
* :func:`read_c3d` / :func:`write_c3d`: C3D markers (POINT group) -> :class:`MarkerData`.
* :func:`read_amass` / :func:`write_amass`: AMASS-style SMPL(-H) ``.npz`` -> :class:`SmplMotion`.
* :func:`load_markers`: ``.trc`` / ``.c3d`` by extension.
* :func:`load_sequence_file`: any of the above, or a corpus sidecar ``.json``, as a
  :class:`hdys_rt.data.corpus.Sequence`.
"""

from __future__ import annotations

import logging
import math
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hdys_rt import representations as reps
from hdys_rt.data import corpus, frames
from hdys_rt.data.c3d_params import C3DLayout, read_layout
from hdys_rt.data.recording import Recording
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)

__all__ = [
    "Limits",
    "DEFAULT_LIMITS",
    "MarkerData",
    "Table",
    "SmplMotion",
    "read_trc",
    "read_trc_values",
    "write_trc",
    "write_trc_values",
    "read_storage",
    "write_storage",
    "read_c3d",
    "write_c3d",
    "read_amass",
    "write_amass",
    "is_angle_column",
    "load_markers",
    "load_sequence_file",
    "MARKER_EXTENSIONS",
    "SEQUENCE_EXTENSIONS",
    "ZUP_TO_YUP",
]

#: Rotation matrix taking Z-up coordinates to Y-up: (x, y, z) -> (x, z, -y), i.e. -90 deg about X.
#: Same convention as :func:`hdys_rt.data.frames.zup_to_yup`.
ZUP_TO_YUP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

MARKER_EXTENSIONS: tuple[str, ...] = (".trc", ".c3d")
SEQUENCE_EXTENSIONS: tuple[str, ...] = (".trc", ".c3d", ".mot", ".sto", ".npz", ".json")

#: Storage columns that are never angles, whatever ``inDegrees`` says (translations, forces,
#: points, moments, muscle quantities...).
_NOT_ANGLE = re.compile(
    r"(^time$|_t[xyz]$|force|torque|moment|_p[xyz]$|_v[xyz]$|activation|excitation|fiber|"
    r"length|power|tendon|emg|cop)",
    re.IGNORECASE,
)


# --- limits ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """Hard limits applied to every file read (untrusted input fails fast, before allocation).

    Attributes:
        max_bytes: largest file accepted, bytes (for ``.npz``: the uncompressed members too).
        max_frames: most frames (rows) a file may hold.
        max_markers: most markers (points) a marker file may hold.
        max_columns: most data columns a ``.mot`` / ``.sto`` may hold.
    """

    max_bytes: int = 1 << 30  # 1 GiB
    max_frames: int = 2_000_000  # ~5.5 h at 100 Hz
    max_markers: int = 2_000
    max_columns: int = 20_000

    def __post_init__(self):
        for name in ("max_bytes", "max_frames", "max_markers", "max_columns"):
            if int(getattr(self, name)) <= 0:
                raise HdysError(f"Limits.{name} must be > 0, got {getattr(self, name)}")


DEFAULT_LIMITS = Limits()


def _check_file(path: Path, limits: Limits) -> int:
    """Check ``path`` is a readable regular file no larger than ``limits.max_bytes``; its size."""
    try:
        st = path.stat()
    except OSError as exc:
        raise HdysError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if not path.is_file():
        raise HdysError(f"{path}: not a regular file")
    if st.st_size > limits.max_bytes:
        raise HdysError(
            f"{path}: file is {st.st_size} bytes, over the limit of {limits.max_bytes} bytes "
            "(raise Limits.max_bytes if this file is trusted)"
        )
    if st.st_size == 0:
        raise HdysError(f"{path}: file is empty")
    return st.st_size


def _check_count(path: Path, what: str, n: int, limit: int, limit_name: str) -> None:
    if n > limit:
        raise HdysError(
            f"{path}: {n} {what}, over the limit of {limit} (raise Limits.{limit_name} "
            "if this file is trusted)"
        )


def _read_text(path: Path, limits: Limits) -> str:
    _check_file(path, limits)
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise HdysError(f"{path}: cannot read file ({exc.strerror or exc})") from None


def _to_yup(xyz: np.ndarray, vertical: str, path: Path) -> np.ndarray:
    """Points ``(..., 3)`` whose up axis is ``vertical`` ("y" or "z") -> Y up, float32."""
    if vertical == "y":
        return np.asarray(xyz, dtype=np.float32)
    if vertical == "z":
        return frames.zup_to_yup(xyz)
    raise HdysError(f"{path}: vertical axis must be 'y' or 'z', got {vertical!r}")


def _from_yup(xyz: np.ndarray, vertical: str, path: Path) -> np.ndarray:
    if vertical == "y":
        return np.asarray(xyz, dtype=np.float32)
    if vertical == "z":
        return frames.yup_to_zup(xyz)
    raise HdysError(f"{path}: vertical axis must be 'y' or 'z', got {vertical!r}")


def _units_factor(path: Path, units: str) -> float:
    try:
        return reps.LENGTH_UNITS[units.strip().lower()]
    except KeyError:
        raise HdysError(
            f"{path}: unknown length units {units!r}; expected one of {sorted(reps.LENGTH_UNITS)}"
        ) from None


def _parse_cells(path: Path, rows: list[list[str]], first_line: int) -> np.ndarray:
    """Parse equal-length rows of text cells to float64; blank cells -> NaN.

    ``first_line`` is the 1-based line number of ``rows[0]`` (for messages).
    """
    cells = np.array(rows, dtype=object)
    if cells.size:
        blank = np.vectorize(lambda s: not s.strip(), otypes=[bool])(cells)
        cells[blank] = "nan"
    try:
        return cells.astype(np.float64)
    except ValueError:
        pass
    for i, row in enumerate(rows):  # slow path: only to name the bad cell
        for j, c in enumerate(row):
            try:
                float(c) if c.strip() else None
            except ValueError:
                raise HdysError(
                    f"{path}: line {first_line + i}, column {j + 1}: {c.strip()[:40]!r} is not a "
                    "number"
                ) from None
    raise HdysError(f"{path}: could not parse the numeric data")  # pragma: no cover


# --- markers ---------------------------------------------------------------------------------


#: Named 3D markers at a uniform rate, Y up, metres: the one recording container,
#: :class:`hdys_rt.data.recording.Recording` (``MarkerData(names, rate, time, xyz,
#: units_in_file, source)``).
MarkerData = Recording


def read_trc(
    path: str | os.PathLike, vertical: str = "y", limits: Limits = DEFAULT_LIMITS
) -> MarkerData:
    """Read an OpenSim ``.trc`` marker file.

    Header: ``PathFileType`` line, then the ``DataRate ... Units ...`` keys and their values, the
    ``Frame# Time NAME...`` line and the ``X1 Y1 Z1 ...`` line. Blank cells are missing markers
    (NaN). Units ``mm`` / ``cm`` / ``m`` are converted to metres.

    Args:
        path: the ``.trc`` file.
        vertical: the file's up axis, ``"y"`` (OpenSim's convention, default) or ``"z"``.
        limits: size limits for untrusted files.

    Returns:
        :class:`MarkerData` with ``xyz`` ``(T, P, 3)`` float32 metres, Y up.
    """
    path = Path(path)
    names, rate, time, xyz, units = read_trc_values(path, limits)
    return MarkerData(names, rate, time, _to_yup(xyz, vertical, path), units, str(path))


def read_trc_values(
    path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS
) -> tuple[tuple[str, ...], float, np.ndarray, np.ndarray, str]:
    """The values of :func:`read_trc` in float64 and the file's own axes, for processing that
    writes the markers again (OpenSim IK input) without rounding them to float32.

    Returns:
        ``(names, rate, time, xyz, units)``: marker names, Hz, ``(T,)`` seconds as in the file,
        ``(T, P, 3)`` float64 metres (NaN where missing), the declared length unit.
    """
    path = Path(path)
    lines = _read_text(path, limits).splitlines()
    if len(lines) < 5 or not lines[0].startswith("PathFileType"):
        raise HdysError(
            f"{path}: not a TRC file (expected a 'PathFileType' line then 4 header lines)"
        )
    keys, values = lines[1].split(), lines[2].split()
    if len(values) < len(keys) or "DataRate" not in keys:
        raise HdysError(
            f"{path}: line 2-3: malformed TRC header (keys {keys[:8]}, values {values[:8]})"
        )
    head = dict(zip(keys, values))
    for k in ("DataRate", "NumFrames", "NumMarkers", "Units"):
        if k not in head:
            raise HdysError(f"{path}: TRC header lacks {k}")
    try:
        rate = float(head["DataRate"])
        n_frames, n_markers = int(head["NumFrames"]), int(head["NumMarkers"])
    except ValueError:
        raise HdysError(
            f"{path}: line 3: DataRate/NumFrames/NumMarkers are not numbers "
            f"({head['DataRate']!r}, {head['NumFrames']!r}, {head['NumMarkers']!r})"
        ) from None
    if not (math.isfinite(rate) and rate > 0):
        raise HdysError(f"{path}: DataRate must be > 0 Hz, got {head['DataRate']}")
    if n_frames < 1 or n_markers < 1:
        raise HdysError(f"{path}: NumFrames={n_frames}, NumMarkers={n_markers}; both must be >= 1")
    _check_count(path, "frames", n_frames, limits.max_frames, "max_frames")
    _check_count(path, "markers", n_markers, limits.max_markers, "max_markers")
    scale = _units_factor(path, head["Units"])

    label_cells = lines[3].rstrip("\r\n").split("\t")
    if len(label_cells) < 2 or label_cells[0].strip() != "Frame#":
        raise HdysError(f"{path}: line 4 must start with 'Frame#<TAB>Time', got {lines[3][:40]!r}")
    names = tuple(c.strip() for c in label_cells[2:] if c.strip())
    if len(names) != n_markers:
        raise HdysError(
            f"{path}: header says NumMarkers={n_markers} but line 4 names {len(names)} markers"
        )
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise HdysError(f"{path}: duplicate marker names {dup[:5]}")

    width = 2 + 3 * n_markers
    rows, first = [], None
    for i in range(5, len(lines)):
        line = lines[i].rstrip("\r\n")
        if not line.strip():
            continue
        if first is None:
            first = i + 1
        cells = line.split("\t")
        if len(cells) > width and not any(c.strip() for c in cells[width:]):
            cells = cells[:width]  # trailing tabs (OpenSim writes one)
        if len(cells) != width:
            raise HdysError(
                f"{path}: line {i + 1}: {len(cells)} columns, expected {width} "
                f"(Frame#, Time and 3 x {n_markers} markers); is the file truncated?"
            )
        if len(rows) >= n_frames:
            raise HdysError(
                f"{path}: line {i + 1}: more data rows than NumFrames={n_frames} declares"
            )
        rows.append(cells)
    if len(rows) != n_frames:
        raise HdysError(
            f"{path}: header says NumFrames={n_frames} but found {len(rows)} data rows; "
            "is the file truncated?"
        )
    table = _parse_cells(path, rows, first or 6)
    time = table[:, 1]
    if np.isnan(time).any():
        raise HdysError(f"{path}: the Time column has blank cells")
    xyz = table[:, 2:].reshape(n_frames, n_markers, 3) * scale  # (frames, markers, xyz)
    log.debug("read %s: %d frames x %d markers at %g Hz (%s)", path, n_frames, n_markers, rate,
              head["Units"])
    return names, rate, time, xyz, head["Units"]


def _fmt(x: float, spec: str) -> str:
    return "" if not np.isfinite(x) else format(x, spec)


def write_trc(
    path: str | os.PathLike, markers: MarkerData, units: str = "mm", vertical: str = "y",
    precision: int = 5,
) -> Path:
    """Write ``markers`` as an OpenSim ``.trc`` file (NaN -> blank cells).

    Args:
        path: destination file.
        markers: the data (metres, Y up).
        units: the file's length unit (``"mm"``, ``"cm"`` or ``"m"``).
        vertical: the file's up axis, ``"y"`` (OpenSim) or ``"z"``.
        precision: decimals written for coordinates (in ``units``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    return write_trc_values(path, markers.names, markers.rate, markers.time,
                            _from_yup(markers.xyz, vertical, path), units, precision)


def write_trc_values(
    path: str | os.PathLike, names, rate: float, time: np.ndarray, xyz: np.ndarray,
    units: str = "mm", precision: int = 5,
) -> Path:
    """:func:`write_trc` from float64 values in the file's own axes (the inverse of
    :func:`read_trc_values`): ``names`` (P), ``rate`` Hz, ``time`` ``(T,)`` s, ``xyz``
    ``(T, P, 3)`` metres (NaN -> blank cells), written in ``units`` with ``precision`` decimals."""
    path = Path(path)
    scale = 1.0 / _units_factor(path, units)
    xyz = np.asarray(xyz, dtype=np.float64) * scale
    T, P = xyz.shape[:2]
    rate = f"{rate:g}"
    out = [
        f"PathFileType\t4\t(X/Y/Z)\t{path.name}",
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\t"
        "OrigDataStartFrame\tOrigNumFrames",
        f"{rate}\t{rate}\t{T}\t{P}\t{units}\t{rate}\t1\t{T}",
        "Frame#\tTime\t" + "\t".join(f"{n}\t\t" for n in names),
        "\t\t" + "\t".join(f"X{i}\tY{i}\tZ{i}" for i in range(1, P + 1)),
        "",
    ]
    spec = f".{int(precision)}f"
    for t in range(T):
        cells = [str(t + 1), f"{time[t]:.6f}"]
        cells += [_fmt(v, spec) for v in xyz[t].ravel()]
        out.append("\t".join(cells))
    path.write_text("\n".join(out) + "\n")
    return path


# --- OpenSim storage (.mot / .sto) -----------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """An OpenSim storage table (``.mot`` / ``.sto``), angles in radians.

    Attributes:
        names: column labels, ``C`` of them, without ``time``.
        time: ``(T,)`` float64 seconds.
        values: ``(T, C)`` float64; columns named in ``angular`` are radians (converted from
            degrees when the file said ``inDegrees=yes``), all others as in the file (SI).
        in_degrees_file: whether the file declared ``inDegrees=yes``.
        header: ``key=value`` header entries as strings, plus ``name`` (first line) and
            ``description`` (any free-text lines).
        angular: the columns treated as angles (converted on read when the file is in degrees,
            and back on a degrees write); empty for a file in radians unless given.
        source: the file read, or ``""``.
    """

    names: tuple[str, ...]
    time: np.ndarray
    values: np.ndarray
    in_degrees_file: bool = False
    header: dict = field(default_factory=dict)
    angular: tuple[str, ...] = ()
    source: str = ""

    def __post_init__(self):
        where = self.source or "Table"
        values = np.asarray(self.values)
        if values.ndim != 2 or values.shape[1] != len(self.names):
            raise HdysError(
                f"{where}: values must be (T, {len(self.names)}), got shape {values.shape}"
            )
        if np.shape(self.time) != (values.shape[0],):
            raise HdysError(
                f"{where}: time must be ({values.shape[0]},), got {np.shape(self.time)}"
            )
        unknown = set(self.angular) - set(self.names)
        if unknown:
            raise HdysError(f"{where}: angular columns {sorted(unknown)[:5]} are not columns")

    def column(self, name: str) -> np.ndarray:
        """The ``(T,)`` column called ``name``."""
        try:
            return self.values[:, self.names.index(name)]
        except ValueError:
            raise HdysError(
                f"{self.source or 'Table'}: no column {name!r}; columns are {list(self.names)[:10]}"
                f"{'...' if len(self.names) > 10 else ''}"
            ) from None


def _coordinate_name(label: str) -> str:
    """``/jointset/hip_r/hip_flexion_r/value`` -> ``hip_flexion_r``; plain labels unchanged."""
    parts = [p for p in label.split("/") if p]
    if len(parts) >= 2 and parts[-1] in ("value", "speed", "acceleration"):
        return parts[-2]
    return parts[-1] if parts else label


def is_angle_column(label: str) -> bool:
    """Heuristic: is a storage column a rotational coordinate (degrees when ``inDegrees=yes``)?

    Translations (``*_tx``), forces, moments, points, muscle quantities, ``time`` are not.
    """
    return not _NOT_ANGLE.search(_coordinate_name(label))


def read_storage(
    path: str | os.PathLike, angle_columns=None, limits: Limits = DEFAULT_LIMITS
) -> Table:
    """Read an OpenSim ``.mot`` / ``.sto`` storage file.

    The header runs until ``endheader``; the next line holds the column labels, the first of which
    must be ``time``. With ``inDegrees=yes``, rotational columns are converted to radians;
    translations (``pelvis_tx``), forces, moments etc. are kept as they are.

    Args:
        path: the file.
        angle_columns: the columns that are angles; ``None`` (default) picks them with
            :func:`is_angle_column` when the file says ``inDegrees=yes`` (none otherwise).
            Angles are converted only when the file says ``inDegrees=yes``.
        limits: size limits for untrusted files.

    Returns:
        :class:`Table` with ``values`` ``(T, C)`` float64.
    """
    path = Path(path)
    lines = _read_text(path, limits).splitlines()
    end = next((i for i, l in enumerate(lines[:10_000]) if l.strip().lower() == "endheader"), None)
    if end is None:
        raise HdysError(f"{path}: no 'endheader' line; not an OpenSim .mot/.sto file")
    header: dict[str, str] = {}
    free = []
    for i, line in enumerate(lines[:end]):
        text = line.strip()
        if "=" in text:
            k, v = text.split("=", 1)
            header[k.strip()] = v.strip()
        elif i == 0:
            header["name"] = text
        elif text:
            free.append(text)
    if free:
        header["description"] = "\n".join(free)
    in_deg_text = header.get("inDegrees", "no").strip().lower()
    if in_deg_text not in ("yes", "no"):
        raise HdysError(f"{path}: inDegrees must be yes or no, got {header.get('inDegrees')!r}")
    in_degrees = in_deg_text == "yes"

    lab = end + 1
    while lab < len(lines) and not lines[lab].strip():
        lab += 1
    if lab >= len(lines):
        raise HdysError(f"{path}: no column labels after 'endheader'")
    labels_line = lines[lab].strip()
    labels = [s.strip() for s in labels_line.split("\t")] if "\t" in labels_line \
        else labels_line.split()
    if not labels or labels[0].lower() != "time":
        raise HdysError(
            f"{path}: line {lab + 1}: the first column label must be 'time', got "
            f"{(labels or [''])[0][:40]!r}"
        )
    names = tuple(labels[1:])
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise HdysError(f"{path}: duplicate column labels {dup[:5]}")
    _check_count(path, "columns", len(labels), limits.max_columns, "max_columns")
    if "nColumns" in header and header["nColumns"].strip() != str(len(labels)):
        raise HdysError(
            f"{path}: header says nColumns={header['nColumns']} but line {lab + 1} has "
            f"{len(labels)} labels"
        )

    rows, first = [], lab + 2
    for i in range(lab + 1, len(lines)):
        cells = lines[i].split()
        if not cells:
            continue
        if len(cells) != len(labels):
            raise HdysError(
                f"{path}: line {i + 1}: {len(cells)} values, expected {len(labels)} (one per "
                "column label); is the file truncated?"
            )
        rows.append(cells)
        if len(rows) > limits.max_frames:
            _check_count(path, "rows", len(rows), limits.max_frames, "max_frames")
    if not rows:
        raise HdysError(f"{path}: no data rows after the column labels")
    if "nRows" in header and header["nRows"].strip() != str(len(rows)):
        raise HdysError(
            f"{path}: header says nRows={header['nRows']} but found {len(rows)} data rows; "
            "is the file truncated?"
        )
    table = _parse_cells(path, rows, first)
    time, values = table[:, 0], table[:, 1:]
    if np.isnan(time).any():
        raise HdysError(f"{path}: the time column has missing values")

    if angle_columns is None:
        angular = tuple(n for n in names if is_angle_column(n)) if in_degrees else ()
    else:
        angular = tuple(angle_columns)
        missing = set(angular) - set(names)
        if missing:
            raise HdysError(f"{path}: angle_columns {sorted(missing)[:5]} are not columns")
    if in_degrees and angular:
        idx = [names.index(n) for n in angular]
        values[:, idx] = np.deg2rad(values[:, idx])
    log.debug("read %s: %d rows x %d columns, inDegrees=%s, %d angular", path, len(rows),
              len(names), in_degrees, len(angular))
    return Table(names, time, values, in_degrees, header, angular, str(path))


def write_storage(
    path: str | os.PathLike, table: Table, in_degrees: bool | None = None, name: str | None = None
) -> Path:
    """Write ``table`` as an OpenSim ``.mot`` / ``.sto`` file.

    Args:
        path: destination file.
        table: the data (angles in radians).
        in_degrees: write ``table.angular`` columns in degrees (``inDegrees=yes``); ``None`` keeps
            ``table.in_degrees_file``.
        name: the first header line; defaults to ``table.header["name"]`` or the file stem.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    deg = table.in_degrees_file if in_degrees is None else bool(in_degrees)
    values = np.array(table.values, dtype=np.float64)
    if deg and table.angular:
        idx = [table.names.index(n) for n in table.angular]
        values[:, idx] = np.rad2deg(values[:, idx])
    T, C = values.shape
    title = name or table.header.get("name") or path.stem
    out = [title, "version=1", f"nRows={T}", f"nColumns={C + 1}",
           f"inDegrees={'yes' if deg else 'no'}"]
    skip = {"name", "description", "version", "nRows", "nColumns", "inDegrees"}
    out += [f"{k}={v}" for k, v in table.header.items() if k not in skip]
    out += ["endheader", "\t".join(("time",) + tuple(table.names))]
    data = np.concatenate([np.asarray(table.time, np.float64)[:, None], values], axis=1)
    out += ["\t".join("nan" if not np.isfinite(v) else f"{v:.12g}" for v in row) for row in data]
    path.write_text("\n".join(out) + "\n")
    return path


# --- C3D -------------------------------------------------------------------------------------


def _import_ezc3d(path: Path):
    try:
        import ezc3d
    except ImportError:
        raise HdysError(
            f"{path}: reading/writing C3D needs the 'ezc3d' package; "
            "install it with `pip install 'hdys-rt[data]'`"
        ) from None
    return ezc3d


def _c3d_preflight(path: Path, size: int, limits: Limits) -> C3DLayout:
    """Check a C3D file's header, every parameter record and its size before ezc3d parses it.

    ezc3d crashes the process on a corrupt parameter record and can loop forever on a truncated
    file, so the records are walked in Python (:func:`~hdys_rt.data.c3d_params.read_layout`)
    and the declared data (frames from ``POINT:FRAMES``, trusted over the header's frame
    range) is checked against the file size here first. Returns the layout.
    """
    lay = read_layout(path, size)
    h = lay.header
    n_points = max(h["points"], int(lay.number("POINT:USED", 0)))
    n_analog = h["analog"]
    _check_count(path, "markers", n_points, limits.max_markers, "max_markers")
    n_frames = lay.frames
    _check_count(path, "frames", n_frames, limits.max_frames, "max_frames")
    word = 4 if h["scale"] < 0 else 2
    data_block = h["data_block"]
    need = (data_block - 1) * 512 + n_frames * (4 * n_points + n_analog) * word
    if data_block < 2 or need > size:
        raise HdysError(
            f"{path}: truncated C3D file: {n_frames} frames of {n_points} points and "
            f"{n_analog} analog samples need {need} bytes, file has {size}"
        )
    return lay


def _c3d_param(c3d, group: str, name: str, default=None):
    try:
        return c3d["parameters"][group][name]["value"]
    except (KeyError, TypeError):
        return default


def read_c3d(
    path: str | os.PathLike, vertical: str = "z", limits: Limits = DEFAULT_LIMITS
) -> MarkerData:
    """Read the markers (POINT group) of a ``.c3d`` file with ``ezc3d``.

    Occluded samples (residual < 0, all three coordinates exactly 0, or NaN) become NaN. Units come
    from ``POINT:UNITS`` (``mm`` if absent); the lab frame is turned Y up.

    Args:
        path: the file.
        vertical: the lab's up axis, ``"z"`` (most labs, default) or ``"y"``.
        limits: size limits for untrusted files.

    Returns:
        :class:`MarkerData` with ``xyz`` ``(T, P, 3)`` float32 metres, Y up; ``time`` starts at
        the file's first frame / rate.
    """
    path = Path(path)
    size = _check_file(path, limits)
    layout = _c3d_preflight(path, size, limits)
    ezc3d = _import_ezc3d(path)
    try:
        c3d = ezc3d.c3d(str(path))
    except Exception as exc:  # ezc3d raises OSError/RuntimeError/IndexError on bad files
        raise HdysError(f"{path}: cannot parse C3D file ({exc})") from None
    pts = np.asarray(c3d["data"]["points"], dtype=np.float64)  # (4, points, frames)
    if pts.ndim != 3 or pts.shape[0] < 3:
        raise HdysError(f"{path}: C3D point data has unexpected shape {pts.shape}")
    n_points, n_frames = pts.shape[1], pts.shape[2]
    if n_points == 0 or n_frames == 0:
        raise HdysError(
            f"{path}: C3D file has no marker data ({n_points} points, {n_frames} frames)"
        )
    _check_count(path, "markers", n_points, limits.max_markers, "max_markers")
    _check_count(path, "frames", n_frames, limits.max_frames, "max_frames")

    labels = list(_c3d_param(c3d, "POINT", "LABELS", []) or [])
    k = 2
    while len(labels) < n_points and _c3d_param(c3d, "POINT", f"LABELS{k}") is not None:
        labels += list(_c3d_param(c3d, "POINT", f"LABELS{k}"))
        k += 1
    labels = [str(s).strip() for s in labels[:n_points]]
    if len(labels) < n_points:
        log.warning("%s: %d points but %d labels; naming the rest point_N", path, n_points,
                    len(labels))
        labels += [f"point_{i}" for i in range(len(labels), n_points)]

    rate_v = _c3d_param(c3d, "POINT", "RATE")
    rate = float(np.ravel(rate_v)[0]) if rate_v is not None and np.size(rate_v) else \
        float(c3d["header"]["points"]["frame_rate"])
    if not (math.isfinite(rate) and rate > 0):
        raise HdysError(f"{path}: POINT:RATE must be > 0 Hz, got {rate}")
    units_v = _c3d_param(c3d, "POINT", "UNITS")
    if units_v is None or not len(units_v) or not str(units_v[0]).strip():
        log.warning("%s: no POINT:UNITS; assuming mm", path)
        units = "mm"
    else:
        units = str(units_v[0]).strip()
    scale = _units_factor(path, units)

    xyz = pts[:3].transpose(2, 1, 0) * scale  # (frames, points, xyz)
    missing = np.isnan(xyz).any(-1) | (xyz == 0).all(-1)
    res = c3d["data"].get("meta_points", {}).get("residuals")
    if res is not None and np.shape(res)[1:] == (n_points, n_frames):
        missing |= np.asarray(res)[0].T < 0
    xyz[missing] = np.nan
    first = int(c3d["header"]["points"].get("first_frame", 0))
    time = (first + np.arange(n_frames)) / rate
    log.debug("read %s: %d frames x %d markers at %g Hz (%s), %d occluded samples", path,
              n_frames, n_points, rate, units, int(missing.sum()))
    return MarkerData(tuple(labels), rate, time, _to_yup(xyz, vertical, path), units, str(path),
                      subject=_c3d_subject(path, layout))


def _c3d_subject(path: Path, layout: C3DLayout) -> corpus.Subject | None:
    """The subject from ``PROCESSING:Bodymass`` (kg) and ``PROCESSING:Height`` (mm, cm or m:
    told apart by size; 1.70 m when absent), as Vicon Nexus writes them; None without a mass
    (or with values outside the plausible range, logged)."""
    mass = layout.number("PROCESSING:BODYMASS")
    if mass is None or mass <= 0:
        return None
    h = layout.number("PROCESSING:HEIGHT") or 0.0
    height = h / 1000 if h > 300 else h / 100 if h > 3 else h if h > 0 else 1.70
    try:
        return corpus.Subject(path.stem, float(mass), float(height))
    except HdysError as exc:
        log.warning("%s: PROCESSING:Bodymass/Height ignored (%s)", path, exc)
        return None


def write_c3d(
    path: str | os.PathLike, markers: MarkerData, units: str = "mm", vertical: str = "z"
) -> Path:
    """Write ``markers`` as a float ``.c3d`` file with ``ezc3d`` (POINT group only).

    Args:
        path: destination file.
        markers: the data (metres, Y up); NaN samples are written as missing.
        units: ``POINT:UNITS`` of the file (``"mm"``, ``"cm"``, ``"m"``).
        vertical: the file's up axis, ``"z"`` (default, like most labs) or ``"y"``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`. The first frame is ``round(time[0] * rate)``.
    """
    path = Path(path)
    ezc3d = _import_ezc3d(path)
    scale = 1.0 / _units_factor(path, units)
    xyz = _from_yup(markers.xyz, vertical, path).astype(np.float64) * scale  # (T, P, 3)
    T, P = xyz.shape[:2]
    pts = np.ones((4, P, T))
    pts[:3] = xyz.transpose(2, 1, 0)  # (xyz, points, frames)
    c3d = ezc3d.c3d()
    c3d["parameters"]["POINT"]["RATE"]["value"] = [float(markers.rate)]
    c3d["parameters"]["POINT"]["LABELS"]["value"] = tuple(markers.names)
    c3d["parameters"]["POINT"]["UNITS"]["value"] = [units]
    c3d["data"]["points"] = pts
    if markers.frames:
        c3d["header"]["points"]["first_frame"] = max(0, int(round(markers.time[0] * markers.rate)))
    try:
        c3d.write(str(path))
    except Exception as exc:
        raise HdysError(f"{path}: cannot write C3D file ({exc})") from None
    return path


# --- AMASS npz -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmplMotion:
    """SMPL body motion, Y up, per :data:`hdys_rt.representations.SMPL_POSE_CHANNELS`.

    Attributes:
        rate: frame rate, Hz.
        time: ``(T,)`` float64 seconds from 0.
        pose: ``(T, 75)`` float32: root translation (m, Y up) then 24 axis-angle rotations (rad)
            in SMPL joint order; the root rotation is expressed in the Y-up world.
        betas: ``(B,)`` float32 shape coefficients (as in the file).
        gender: ``"male"``, ``"female"``, ``"neutral"`` or as the file says.
        source: the file read, or ``""``.
    """

    rate: float
    time: np.ndarray
    pose: np.ndarray
    betas: np.ndarray
    gender: str = "neutral"
    source: str = ""

    def __post_init__(self):
        where = self.source or "SmplMotion"
        pose = np.asarray(self.pose, dtype=np.float32)
        object.__setattr__(self, "pose", pose)
        object.__setattr__(self, "betas", np.asarray(self.betas, dtype=np.float32).ravel())
        if pose.ndim != 2 or pose.shape[1] != len(reps.SMPL_POSE_CHANNELS):
            raise HdysError(
                f"{where}: pose must be (T, {len(reps.SMPL_POSE_CHANNELS)}), got {pose.shape}"
            )
        if np.shape(self.time) != (pose.shape[0],):
            raise HdysError(f"{where}: time must be ({pose.shape[0]},), got {np.shape(self.time)}")
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise HdysError(f"{where}: rate must be a finite number > 0 Hz, got {self.rate}")

    @property
    def transl(self) -> np.ndarray:
        """``(T, 3)`` root translation, metres, Y up."""
        return self.pose[:, :3]

    @property
    def rotations(self) -> np.ndarray:
        """``(T, 24, 3)`` axis-angle per SMPL joint, radians (joint 0 in the Y-up world)."""
        return self.pose[:, 3:].reshape(-1, 24, 3)


def _rotate_root(aa: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Axis-angle ``(T, 3)`` of ``R @ rot(aa)``, radians."""
    try:
        from scipy.spatial.transform import Rotation
    except ImportError:
        raise HdysError(
            "converting AMASS root orientations needs 'scipy'; "
            "install it with `pip install 'hdys-rt[data]'`"
        ) from None
    return (Rotation.from_matrix(R) * Rotation.from_rotvec(aa)).as_rotvec()


def _npz_array(npz, key: str, path: Path) -> np.ndarray:
    try:
        return npz[key]
    except ValueError as exc:  # object arrays with allow_pickle=False
        raise HdysError(
            f"{path}: member {key!r} is an object (pickled) array, which is refused for safety "
            f"({exc})"
        ) from None
    except Exception as exc:
        raise HdysError(f"{path}: cannot read member {key!r} ({exc})") from None


def read_amass(
    path: str | os.PathLike, zup: bool = True, root_offset=None, limits: Limits = DEFAULT_LIMITS
) -> SmplMotion:
    """Read an AMASS-style SMPL / SMPL-H ``.npz`` (never unpickles).

    Keys: ``poses`` ``(T, 72)`` (SMPL) or ``(T, 156)`` (SMPL-H: the first 72 values are the 24
    SMPL body joints; hand joints are dropped), ``trans`` ``(T, 3)`` metres,
    ``mocap_framerate`` or ``mocap_frame_rate`` (Hz), optional ``betas`` and ``gender``.

    AMASS is Z up: with ``zup=True`` the translation is rotated to Y up and the root orientation
    is pre-multiplied by the same rotation (:data:`ZUP_TO_YUP`). SMPL rotates the body about its
    pelvis joint ``J0`` (which depends on the shape), so rotating the world moves ``trans`` by
    ``(R - I) J0``; pass ``root_offset`` = ``J0`` ``(3,)`` metres (in the body's rest frame) to
    apply that correction, else ``trans`` is simply rotated (the pose then differs by a constant
    offset of a few cm).

    Args:
        path: the file.
        zup: whether the file is Z up (AMASS is).
        root_offset: optional pelvis joint ``J0`` ``(3,)`` metres, see above.
        limits: size limits for untrusted files.

    Returns:
        :class:`SmplMotion` with ``pose`` ``(T, 75)`` float32.
    """
    path = Path(path)
    _check_file(path, limits)
    try:
        npz = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise HdysError(f"{path}: not a readable .npz file ({exc})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise HdysError(f"{path}: a .npy array, not an .npz archive of named arrays")
    with npz:
        total = sum(i.file_size for i in npz.zip.infolist())
        if total > limits.max_bytes:
            raise HdysError(
                f"{path}: members unpack to {total} bytes, over the limit of {limits.max_bytes}"
            )
        keys = set(npz.files)
        for k in ("poses", "trans"):
            if k not in keys:
                raise HdysError(f"{path}: no {k!r} array; keys are {sorted(keys)}")
        rate_key = next((k for k in ("mocap_framerate", "mocap_frame_rate") if k in keys), None)
        if rate_key is None:
            raise HdysError(
                f"{path}: no frame rate ('mocap_framerate' or 'mocap_frame_rate'); "
                f"keys are {sorted(keys)}"
            )
        poses = _npz_array(npz, "poses", path)
        trans = _npz_array(npz, "trans", path)
        rate_a = _npz_array(npz, rate_key, path)
        betas = _npz_array(npz, "betas", path) if "betas" in keys else np.zeros(0, np.float32)
        gender_a = _npz_array(npz, "gender", path) if "gender" in keys else None

    for k, a in (("poses", poses), ("trans", trans), (rate_key, rate_a), ("betas", betas)):
        if not np.issubdtype(a.dtype, np.number):
            raise HdysError(f"{path}: {k!r} must be numeric, got dtype {a.dtype}")
    if poses.ndim != 2 or poses.shape[1] not in (72, 156):
        raise HdysError(f"{path}: 'poses' must be (T, 72) or (T, 156), got {poses.shape}")
    T = poses.shape[0]
    _check_count(path, "frames", T, limits.max_frames, "max_frames")
    if T == 0:
        raise HdysError(f"{path}: 'poses' has no frames")
    if trans.shape != (T, 3):
        raise HdysError(f"{path}: 'trans' must be ({T}, 3) like 'poses', got {trans.shape}")
    if rate_a.size != 1:
        raise HdysError(f"{path}: {rate_key!r} must be one number, got shape {rate_a.shape}")
    rate = float(rate_a.ravel()[0])
    if not (math.isfinite(rate) and rate > 0):
        raise HdysError(f"{path}: {rate_key} must be > 0 Hz, got {rate}")
    gender = "neutral"
    if gender_a is not None:
        g = gender_a.ravel()[0] if gender_a.size == 1 else None
        if isinstance(g, bytes):
            g = g.decode("utf-8", "replace")
        if not isinstance(g, str):
            raise HdysError(f"{path}: 'gender' must be one string, got {gender_a!r:.60}")
        gender = g.strip()

    body = np.asarray(poses[:, :72], dtype=np.float64).copy()  # (T, 24 * 3)
    tr = np.asarray(trans, dtype=np.float64)
    if zup:
        R = ZUP_TO_YUP
        body[:, :3] = _rotate_root(body[:, :3], R)
        if root_offset is None:
            tr = tr @ R.T
        else:
            j0 = np.asarray(root_offset, dtype=np.float64).reshape(3)
            tr = (tr + j0) @ R.T - j0
    pose = np.concatenate([tr, body], axis=1)  # (T, 3 + 72)
    log.debug("read %s: %d frames at %g Hz, gender=%s, %d betas", path, T, rate, gender,
              betas.size)
    return SmplMotion(rate, np.arange(T) / rate, pose, betas.ravel(), gender, str(path))


def write_amass(
    path: str | os.PathLike, motion: SmplMotion, zup: bool = True, root_offset=None
) -> Path:
    """Write ``motion`` as an AMASS-style ``.npz`` (``poses`` (T, 72), ``trans``,
    ``mocap_framerate``, ``betas``, ``gender``); the inverse of :func:`read_amass`."""
    path = Path(path)
    body = np.asarray(motion.pose[:, 3:], dtype=np.float64).copy()
    tr = np.asarray(motion.pose[:, :3], dtype=np.float64)
    if zup:
        R = ZUP_TO_YUP.T
        body[:, :3] = _rotate_root(body[:, :3], R)
        if root_offset is None:
            tr = tr @ R.T
        else:
            j0 = np.asarray(root_offset, dtype=np.float64).reshape(3)
            tr = (tr + j0) @ R.T - j0
    with open(path, "wb") as fh:
        np.savez(fh, poses=body, trans=tr, mocap_framerate=np.float64(motion.rate),
                 betas=np.asarray(motion.betas, np.float64), gender=np.array(motion.gender))
    return path


# --- dispatch --------------------------------------------------------------------------------


def _suffix(path: Path, supported: tuple[str, ...]) -> str:
    ext = path.suffix.lower()
    if ext not in supported:
        raise HdysError(
            f"{path}: unsupported file type {ext or '(no extension)'!r}; supported: "
            f"{', '.join(supported)}"
        )
    return ext


#: the usual up axis of each marker format (what :func:`load_markers` reads by default)
DEFAULT_VERTICAL = {".trc": "y", ".c3d": "z"}


def load_markers(
    path: str | os.PathLike, vertical: str | None = None, limits: Limits = DEFAULT_LIMITS
) -> MarkerData:
    """Read a marker file by extension (``.trc`` or ``.c3d``), Y up, metres.

    ``vertical`` is the file's up axis; ``None`` means the format's usual one
    (:data:`DEFAULT_VERTICAL`: TRC ``"y"``, C3D ``"z"``).
    """
    path = Path(path)
    ext = _suffix(path, MARKER_EXTENSIONS)
    read = read_trc if ext == ".trc" else read_c3d
    return read(path, vertical=vertical or DEFAULT_VERTICAL[ext], limits=limits)


#: Placeholder subject for files that carry no subject information (``meta["subject_known"]``
#: is False on such sequences).
UNKNOWN_SUBJECT = corpus.Subject("unknown", 70.0, 1.70)


def _uniform_rate(path: Path, time: np.ndarray, tol: float = 0.02) -> float:
    """Rate (Hz) of a timestamp column; :class:`HdysError` if it is not uniform within ``tol``."""
    if time.size < 2:
        raise HdysError(f"{path}: needs at least 2 rows to know the sampling rate")
    dt = np.diff(time)
    step = float(np.median(dt))
    if not step > 0 or np.abs(dt - step).max() > tol * step:
        raise HdysError(
            f"{path}: time is not uniformly sampled (steps {dt.min():.6g}..{dt.max():.6g} s); "
            "resample it first"
        )
    return 1.0 / step


def load_sequence_file(
    path: str | os.PathLike,
    subject: corpus.Subject | None = None,
    domain: str = "file",
    vertical: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> corpus.Sequence:
    """Read any supported file as a corpus :class:`~hdys_rt.data.corpus.Sequence`.

    * ``.json``: a corpus sidecar (:func:`hdys_rt.data.corpus.read_sequence`).
    * ``.trc`` / ``.c3d``: ``markers`` ``(T, P, 3)`` metres, Y up.
    * ``.mot`` / ``.sto``: ``joint_angles`` from the columns that are Rajagopal coordinates
      (rad / m); other columns are dropped. Time must be uniform.
    * ``.npz``: AMASS-style SMPL -> ``smpl_pose`` ``(T, 75)``.

    Args:
        path: the file.
        subject: the subject, when known; files other than sidecars carry none, and a placeholder
            (70 kg, 1.70 m) is used with ``meta["subject_known"] = False``.
        domain: domain name given to the sequence.
        vertical: up axis of a marker file (see :func:`load_markers`).
        limits: size limits for untrusted files.
    """
    path = Path(path)
    ext = _suffix(path, SEQUENCE_EXTENSIONS)
    if ext == ".json":
        return corpus.read_sequence(path)
    meta = {"source_file": str(path), "format": ext.lstrip("."),
            "subject_known": subject is not None}
    subj = subject or UNKNOWN_SUBJECT
    if ext in MARKER_EXTENSIONS:
        m = load_markers(path, vertical=vertical, limits=limits)
        meta.update(units_in_file=m.units_in_file, t0=float(m.time[0]))
        data, names, rate = {"markers": m.xyz}, {"markers": m.names}, m.rate
    elif ext in (".mot", ".sto"):
        t = read_storage(path, limits=limits)
        cols = [n for n in t.names if n in reps.RAJAGOPAL_COORDINATES]
        if not cols:
            raise HdysError(
                f"{path}: no joint-angle columns (Rajagopal coordinates such as "
                f"{reps.RAJAGOPAL_COORDINATES[6]!r}); columns are {list(t.names)[:8]}"
            )
        dropped = [n for n in t.names if n not in cols]
        if dropped:
            log.info("%s: keeping %d coordinate columns, dropping %d others (%s...)", path,
                     len(cols), len(dropped), ", ".join(dropped[:3]))
        rate = _uniform_rate(path, t.time)
        vals = t.values[:, [t.names.index(n) for n in cols]]
        meta.update(t0=float(t.time[0]), dropped_columns=dropped)
        data, names = {"joint_angles": vals}, {"joint_angles": tuple(cols)}
    else:
        s = read_amass(path, limits=limits)
        meta.update(gender=s.gender, betas=[float(b) for b in s.betas])
        data, names, rate = {"smpl_pose": s.pose}, {"smpl_pose": reps.SMPL_POSE_CHANNELS}, s.rate
    return corpus.Sequence(
        name=path.stem, domain=domain, rate=float(rate), subject=subj,
        source=f"{ext.lstrip('.')} file {path.name}", data=data, names=names, meta=meta,
    )
