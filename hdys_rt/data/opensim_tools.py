"""OpenSim and OpenSim-file helpers shared by the real-lab domains (lab_real, real_labs):
the lazy ``opensim`` import, silencing its C++ stdout, and TRC / .mot tables through
:mod:`hdys_rt.data.formats` (float64, no unit or degree conversion)."""

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
