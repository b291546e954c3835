"""The one file loader: every replay path (``hdys-rt replay``, ``hdys-rt bridge file``,
``serve --source replay``, ``demo``) reads files through :func:`load_file`, into the one
container :class:`~hdys_rt.data.recording.Recording`.

* ``.c3d`` (ezc3d, the ``data`` extra), ``.trc``: markers, converted to metres, Y up.
* corpus sidecar ``.json``: markers, else keypoints (with the sequence's keypoint layout),
  else joint angles; the subject's mass and height come along.
* ``.mot`` / ``.sto``: a table (joint angles, forces...) replayed as a generic LSL stream
  (one channel per column). ``serve`` takes point sets only, so a table cannot feed it: it is
  for LabRecorder and other LSL consumers.
* ``.xdf`` (LabRecorder; pyxdf, the ``xdf`` extra): a marker stream (type ``MoCap`` or
  channels labelled ``NAME_X/_Y/_Z``; ``--stream NAME`` picks one), with its units and, when
  its ``desc`` carries them, ``up`` and ``subject/mass_kg``, ``subject/height_m``.

Every point recording passes the unit check (a body spans ~0.3..3 m; a file whose values
look like millimetres while it says metres is rescaled, with a warning) and the vertical-axis
check (:func:`~hdys_rt.data.markersets.check_upright` over the first second: a warning naming
the ``--up`` to pass when the skeleton looks upside down or lying). Markers are then mapped to
the names the model was trained on (:func:`~hdys_rt.data.markersets.map_markers`: a
Plug-in Gait file's 239 labels become its ~30 body markers), unless ``markerset=False``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from hdys_rt import representations as reps
from hdys_rt.data.markersets import (check_upright, detect_units, first_second, map_markers,
                                     parse_marker_channels)
from hdys_rt.data.corpus import Subject
from hdys_rt.data.frames import zup_to_yup
from hdys_rt.data.recording import Recording
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)

__all__ = ["load_file", "FILE_TYPES"]

FILE_TYPES = (".c3d", ".trc", ".json", ".mot", ".sto", ".xdf")


def _check_points(rec: Recording, up: str) -> Recording:
    """Unit and orientation checks of a point recording (rescales mm/cm read as m); ``up``:
    the vertical axis the file was read with."""
    notes = list(rec.notes)
    unit = detect_units(rec.data, declared="m", what=f"{Path(rec.source).name} {rec.kind}")
    if unit != "m":
        rec = rec.replace(data=rec.data * np.float32(reps.LENGTH_UNITS[unit]), units_in_file=unit)
        notes.append(f"values looked like {unit} although read as metres: rescaled")
    upright = check_upright(first_second(rec.data, rec.rate), rec.names, up, ("y", "z"))
    if upright.suspicious:
        log.warning("%s: %s", rec.source, upright.message)
        notes.append(upright.message)
    return rec.replace(notes=tuple(notes), upright=upright)


def _map_markers(rec: Recording, markerset: bool, keep_unknown: bool) -> Recording:
    """Markers renamed to trained names, unknown ones dropped unless kept (see the module doc)."""
    if rec.kind != "markers":
        return rec
    mm = map_markers(rec.names, keep_unknown=keep_unknown, enabled=markerset)
    if mm.names == rec.names:
        return rec.replace(markerset=mm)
    return rec.replace(names=mm.names, data=mm.apply(rec.data), markerset=mm)


def load_file(path: str | os.PathLike, up: str | None = None, stream: str | None = None,
              markerset: bool = True, keep_unknown: bool = False) -> Recording:
    """Read ``path`` (see the module doc) into a :class:`Recording`.

    Args:
        up: the file's vertical axis (``"y"`` / ``"z"``; None = the format's usual one).
        stream: the XDF stream name to take.
        markerset: map marker names to the trained ones (False: every marker under its own
            name; the mapping report is in ``markerset`` either way).
        keep_unknown: also keep markers the model was not trained on.
    """
    p = Path(path)
    if not p.exists():
        raise HdysError(f"{p} does not exist")
    ext = p.suffix.lower()
    if up is not None and up not in ("y", "z"):
        raise HdysError(f"up must be 'y' or 'z', got {up!r}")
    if stream is not None and ext != ".xdf":
        raise HdysError(f"--stream is for .xdf files, got {p.name}")
    if ext in (".trc", ".c3d"):
        from hdys_rt.data.formats import DEFAULT_VERTICAL, load_markers

        rec = _check_points(load_markers(p, vertical=up), up or DEFAULT_VERTICAL[ext])
    elif ext == ".json":
        rec = _load_corpus(p, up)
    elif ext in (".mot", ".sto"):
        rec = _load_table(p)
    elif ext == ".xdf":
        rec = _load_xdf(p, up, stream)
    else:
        raise HdysError(f"{p}: unsupported file type {ext or '(none)'!r}; expected one of "
                        f"{', '.join(FILE_TYPES)}")
    return _map_markers(rec, markerset, keep_unknown)


def _load_corpus(p: Path, up: str | None) -> Recording:
    from hdys_rt.data.corpus import read_sequence

    seq = read_sequence(p)
    for kind in reps.POINT_SETS:
        if kind in seq.data:
            xyz = np.asarray(seq.data[kind], np.float32)
            if up == "z":
                xyz = zup_to_yup(xyz)
            rec = Recording(tuple(seq.names[kind]), float(seq.rate), None, xyz, kind=kind,
                            subject=seq.subject, source=str(p),
                            layout=seq.meta.get("keypoint_layout") if kind == "keypoints"
                            else None)
            return _check_points(rec, up or "y")
    if "joint_angles" in seq.data:
        names = tuple(seq.names["joint_angles"])
        units = ["m" if n.endswith(("_tx", "_ty", "_tz")) else "rad" for n in names]
        return Recording(names, float(seq.rate), None, seq.data["joint_angles"], kind="table",
                         units=units, subject=seq.subject, source=str(p))
    raise HdysError(f"{p}: the sequence has neither markers, keypoints nor joint angles "
                    f"(it has {sorted(seq.data)})")


def _load_table(p: Path) -> Recording:
    from hdys_rt.data.formats import _uniform_rate, is_angle_column, read_storage

    t = read_storage(p)
    rate = _uniform_rate(p, t.time)
    units = ["rad" if n in t.angular or is_angle_column(n) else
             "m" if n.endswith(("_tx", "_ty", "_tz")) else "" for n in t.names]
    return Recording(tuple(t.names), float(rate), t.time, t.values, kind="table", units=units,
                     source=str(p))


def _xdf_text(d, *path, default=None):
    """A value from pyxdf's nested-list XML dicts: ``_xdf_text(info, "desc", "up")``."""
    cur = d
    for key in path:
        if not isinstance(cur, dict) or not cur.get(key):
            return default
        cur = cur[key][0]
    return cur if cur not in (None, "") else default


def _xdf_channels(info) -> tuple[list[str], list[str]]:
    chans = _xdf_text(info, "desc", "channels")
    if not isinstance(chans, dict) or not chans.get("channel"):
        return [], []
    labels = [(c.get("label") or [""])[0] or "" for c in chans["channel"]]
    units = [(c.get("unit") or [""])[0] or "" for c in chans["channel"]]
    return labels, units


def _load_xdf(p: Path, up: str | None, stream: str | None) -> Recording:
    try:
        import pyxdf
    except ImportError:
        raise HdysError("reading .xdf needs pyxdf: pip install 'hdys-rt[xdf]'") from None

    try:
        streams, _ = pyxdf.load_xdf(str(p))
    except Exception as exc:  # pyxdf raises assorted errors on a damaged file
        raise HdysError(f"{p}: not a readable XDF file ({type(exc).__name__}: {exc})") from None
    found = []
    for s in streams:
        info = s["info"]
        name = _xdf_text(info, "name", default="")
        stype = _xdf_text(info, "type", default="")
        found.append(f"{name} ({stype})")
        if stream is not None and name != stream:
            continue
        if stream is None and stype.lower() not in ("mocap", *reps.POINT_SETS):
            continue
        break
    else:
        raise HdysError(f"{p}: no {'stream named ' + repr(stream) if stream else 'MoCap stream'}"
                        f"; streams: {', '.join(found) or 'none'}")
    n = int(_xdf_text(info, "channel_count", default="0"))
    labels, units = _xdf_channels(info)
    names, scale = parse_marker_channels(labels, units, n, name)
    ts = np.asarray(s["time_stamps"], np.float64)
    vals = np.asarray(s["time_series"], np.float64)
    if vals.ndim != 2 or vals.shape[0] < 2:
        raise HdysError(f"{p}: stream {name!r} holds {vals.shape[0] if vals.ndim else 0} "
                        "samples; at least 2 are needed")
    rate = float(_xdf_text(info, "nominal_srate", default="0") or 0)
    if not rate > 0:
        rate = 1.0 / float(np.median(np.diff(ts)))
    xyz = (vals.reshape(len(vals), len(names), 3) * scale).astype(np.float32)  # (T, P, xyz)
    file_up = up or str(_xdf_text(info, "desc", "up", default="y")).lower()
    if file_up == "z":
        xyz = zup_to_yup(xyz)
    subject = None
    mass = _xdf_text(info, "desc", "subject", "mass_kg")
    if mass is not None:
        height = _xdf_text(info, "desc", "subject", "height_m", default="1.70")
        sid = _xdf_text(info, "desc", "subject", "id", default=name)
        try:
            subject = Subject(str(sid), float(mass), float(height))
        except ValueError:
            log.warning("%s: unreadable subject mass/height %r/%r ignored", p, mass, height)
    unit = {f: u for u, f in reps.LENGTH_UNITS.items()}.get(scale, "m")
    kind = "keypoints" if str(_xdf_text(info, "type", default="")).lower() == "keypoints" \
        else "markers"
    rec = Recording(names, rate, None, xyz, units_in_file=unit, kind=kind, subject=subject,
                    source=str(p), layout=_xdf_text(info, "desc", "layout"))
    return _check_points(rec, "z" if file_up == "z" else "y")
