"""OpenSim and OpenSim-file helpers shared by the real-lab domains (lab_real, real_labs):
the lazy ``opensim`` import, silencing its C++ stdout, TRC / .mot tables through
:mod:`hdys_rt.data.formats` (float64, no unit or degree conversion), and the one IK run, ID
run and coordinate read-out both domains use."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

import numpy as np

from hdys_rt.data import formats
from hdys_rt.errors import HdysError


def load_opensim():
    """Import opensim lazily (heavy) with its logging silenced."""
    try:
        import opensim
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise HdysError("building real-lab data needs the `opensim` package (pip install "
                        f"'hdys-rt[data]'): {exc}")
    opensim.Logger.setLevelString("critical")  # tool failures raise; the rest is noise
    return opensim


@contextlib.contextmanager
def quiet_stdout():
    """Silence C++ writes to stdout (OpenSim prints model summaries with std::cout)."""
    sys.stdout.flush()
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        yield
        return
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def read_markers(path: Path) -> tuple[np.ndarray, list[str], np.ndarray, float]:
    """Read a TRC file (:func:`hdys_rt.data.formats.read_trc`): times (T,) on the exact uniform
    grid, marker names, positions (T, P, 3) float64 in metres, rate (Hz)."""
    names, rate, times, xyz, _ = formats.read_trc_values(path)
    uniform = times[0] + np.arange(times.size) / rate
    if np.max(np.abs(times - uniform)) > 0.25 / rate:
        raise HdysError(f"{path}: frame times are not uniform at DataRate {rate} Hz")
    # some TRC files round times to the ms (1/60 s -> 0.017): use the exact uniform grid
    return uniform, list(names), xyz, rate


def write_markers(path: Path, times: np.ndarray, names: list[str], xyz: np.ndarray, rate: float):
    """Write a TRC file in metres (6 decimals); NaN positions are written as empty fields."""
    formats.write_trc_values(path, names, rate, times, xyz, units="m", precision=6)


def read_table(path: Path) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Read a .mot/.sto table as written (no degree conversion): times (T,), labels, (T, C)."""
    table = formats.read_storage(path, angle_columns=())
    return table.time, list(table.names), table.values


def write_table(path: Path, times: np.ndarray, labels: list[str], values: np.ndarray):
    """Write a .mot table (``inDegrees=no``: values as given)."""
    formats.write_storage(path, formats.Table(tuple(labels), times, values))


# --- the OpenSim tools -------------------------------------------------------------------------


def run_ik(osim, model_path: Path, trc: Path, t_range, tmp: Path, setup: Path | None = None,
           report_errors: bool = False, what: str = "") -> Path:
    """Inverse kinematics of ``trc`` over ``t_range`` -> ``tmp/ik.mot``. With ``setup`` (an
    IK setup XML) its tasks and weights; else every model marker the TRC has, weight 1.
    ``report_errors`` also writes the per-frame marker errors (``*_ik_marker_errors.sto``)."""
    if setup is not None:
        tool = osim.InverseKinematicsTool(str(setup))
        tool.setCoordinateFileName("")
    else:
        model = osim.Model(str(model_path))
        tool = osim.InverseKinematicsTool()
        tool.setName("ik")
        tasks = tool.getIKTaskSet()
        ms = model.getMarkerSet()
        for i in range(ms.getSize()):
            task = osim.IKMarkerTask()
            task.setName(ms.get(i).getName())
            task.setApply(True)
            task.setWeight(1.0)
            tasks.cloneAndAppend(task)
    tool.set_model_file(str(model_path))
    tool.setMarkerDataFileName(str(trc))
    tool.setStartTime(float(t_range[0]))
    tool.setEndTime(float(t_range[1]))
    out = tmp / "ik.mot"
    tool.setOutputMotionFileName(str(out))
    tool.setResultsDir(str(tmp))
    tool.set_report_errors(bool(report_errors))
    tool.set_report_marker_locations(False)
    with quiet_stdout():
        ok = tool.run()
    if not ok or not out.exists():
        raise HdysError(f"{what}OpenSim IK failed on {trc}" + (f"; check {setup}" if setup else ""))
    return out


def run_id(osim, model_path: Path, ik_path: Path, loads_xml: Path, cutoff_hz: float, tmp: Path,
           t_range=None, excluded=("Muscles",), what: str = ""):
    """Inverse dynamics of the IK motion with ``loads_xml`` as external loads, coordinates
    low-pass filtered at ``cutoff_hz``, over ``t_range`` (default: the whole motion), forces
    of the ``excluded`` groups left out -> (times, labels, generalised forces)."""
    tool = osim.InverseDynamicsTool()
    tool.setName("id")
    tool.setModelFileName(str(model_path))
    tool.setCoordinatesFileName(str(ik_path))
    tool.setLowpassCutoffFrequency(float(cutoff_hz))
    tool.setExternalLoadsFileName(str(loads_xml))
    if t_range is None:
        sto = osim.Storage(str(ik_path))
        t_range = (sto.getFirstTime(), sto.getLastTime())
    tool.setStartTime(float(t_range[0]))
    tool.setEndTime(float(t_range[1]))
    names = osim.ArrayStr()
    for group in excluded:
        names.append(group)
    tool.setExcludedForces(names)
    tool.setResultsDir(str(tmp))
    tool.setOutputGenForceFileName("id.sto")
    with quiet_stdout():
        ok = tool.run()
    out = tmp / "id.sto"
    if not ok or not out.exists():
        raise HdysError(f"{what}OpenSim ID failed on {ik_path.name}")
    return read_table(out)


def coordinates(osim, model, ik_path: Path, cutoff_hz: float | None):
    """IK coordinates in radians/metres; padded and low-pass filtered (IIR) as ID does when
    ``cutoff_hz``. ``model`` is an initialised ``opensim.Model`` (it tells rotational from
    translational) -> (times, labels, (T, C))."""
    sto = osim.Storage(str(ik_path))
    if sto.isInDegrees():
        model.getSimbodyEngine().convertDegreesToRadians(sto)
    if cutoff_hz:
        n = sto.getSize()
        sto.pad(n // 2)
        sto.lowpassIIR(float(cutoff_hz))
    labels = [sto.getColumnLabels().get(i) for i in range(sto.getColumnLabels().getSize())][1:]
    t = np.empty(sto.getSize())
    values = np.empty((sto.getSize(), len(labels)))
    for i in range(sto.getSize()):
        row = sto.getStateVector(i)
        t[i] = row.getTime()
        d = row.getData()
        values[i] = [d.get(j) for j in range(len(labels))]
    return t, labels, values


def scale_model(osim, model_path: Path, k: float, mass_kg: float, out: Path) -> Path:
    """Scale every body of ``model_path`` (and so joints, markers, inertias) by ``k``, total
    mass ``mass_kg`` (distribution kept) -> ``out`` (an .osim file)."""
    model = osim.Model(str(model_path))
    state = model.initSystem()
    scale_set = osim.ScaleSet()
    for i in range(model.getBodySet().getSize()):
        sc = osim.Scale()
        sc.setSegmentName(model.getBodySet().get(i).getName())
        sc.setScaleFactors(osim.Vec3(k, k, k))
        sc.setApply(True)
        scale_set.cloneAndAppend(sc)
    if not model.scale(state, scale_set, True, mass_kg):
        raise HdysError(f"scaling {model_path.name} by {k:.3f} failed")
    model.printToXML(str(out))
    return out
