"""The one container of a recording: named points (markers, keypoints) or a table at a uniform
rate, as the file readers (:mod:`hdys_rt.data.formats`), the file loader
(:func:`hdys_rt.data.loader.load_file`) and the replay player (:mod:`hdys_rt.streams.replay`)
all hand it on. ``formats.MarkerData`` is this class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from hdys_rt import representations as reps
from hdys_rt.data.corpus import Subject
from hdys_rt.errors import HdysError

__all__ = ["Recording", "POINT_KINDS"]

#: Kinds whose ``data`` is ``(T, P, 3)`` positions.
POINT_KINDS = reps.POINT_SETS


@dataclass(frozen=True)
class Recording:
    """Named points (or table columns) at a uniform rate.

    Attributes:
        names: point (or column) names, ``P`` (``C``) of them, in file order.
        rate: sampling rate, Hz.
        time: ``(T,)`` float64 timestamps, s (from the file; ``None`` at construction means
            ``arange(T) / rate``).
        data: points ``(T, P, 3)`` float32 metres, Y up, NaN where missing; a table
            ``(T, C)`` float32 in ``units``.
        units_in_file: the length unit the file used (after unit detection), e.g. ``"mm"``.
        source: the file read, or ``""``.
        kind: ``"markers"``, ``"keypoints"`` or ``"table"``.
        units: per-column units of a table; ``("m",)`` for points.
        subject: mass / height when the file carries them, else None.
        layout: keypoint layout name (``coco17``...), or None.
        notes: warnings met while reading (also logged).
        markerset: the :class:`~hdys_rt.data.markersets.MarkerMap` that renamed the markers
            to trained names (:func:`~hdys_rt.data.loader.load_file`), or None.
        upright: the :class:`~hdys_rt.data.markersets.Upright` check of its first second
            (:func:`~hdys_rt.data.loader.load_file`), or None.
    """

    names: tuple[str, ...]
    rate: float
    time: np.ndarray | None
    data: np.ndarray
    units_in_file: str = "m"
    source: str = ""
    kind: str = "markers"
    units: tuple[str, ...] = ("m",)
    subject: Subject | None = None
    layout: str | None = None
    notes: tuple[str, ...] = ()
    markerset: object | None = field(default=None, repr=False)
    upright: object | None = field(default=None, repr=False)

    def __post_init__(self):
        data = np.asarray(self.data, dtype=np.float32)
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        object.__setattr__(self, "units", tuple(self.units))
        object.__setattr__(self, "notes", tuple(self.notes))
        where = self.source or "recording"
        if self.kind in POINT_KINDS:
            if data.ndim != 3 or data.shape[2] != 3:
                raise HdysError(f"{where}: xyz must be (T, P, 3), got shape {data.shape}")
            if len(self.names) != data.shape[1]:
                raise HdysError(f"{where}: {data.shape[1]} markers but {len(self.names)} names")
        elif self.kind == "table":
            if data.ndim != 2 or data.shape[1] != len(self.names):
                raise HdysError(f"{where}: a table must be (T, {len(self.names)}), got shape "
                                f"{data.shape}")
        else:
            raise HdysError(f"{where}: kind must be one of {POINT_KINDS + ('table',)}, got "
                            f"{self.kind!r}")
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise HdysError(f"{where}: rate must be a finite number > 0 Hz, got {self.rate}")
        if self.time is None:
            time = np.arange(data.shape[0], dtype=np.float64) / float(self.rate)
        else:
            time = np.asarray(self.time, dtype=np.float64)
        if time.shape != (data.shape[0],):
            raise HdysError(f"{where}: time must be ({data.shape[0]},), got shape {time.shape}")
        object.__setattr__(self, "time", time)

    @property
    def xyz(self) -> np.ndarray:
        """The points, ``(T, P, 3)`` metres, Y up (``data`` of a point recording)."""
        return self.data

    @property
    def points(self) -> bool:
        return self.kind in POINT_KINDS

    @property
    def frames(self) -> int:
        return int(self.data.shape[0])

    @property
    def duration(self) -> float:
        """Seconds the recording lasts (``frames / rate``)."""
        return self.frames / self.rate

    def replace(self, **changes) -> "Recording":
        """A copy with ``changes`` (a new ``data`` length resets ``time`` unless given)."""
        if "data" in changes and "time" not in changes \
                and np.shape(changes["data"])[0] != self.frames:
            changes["time"] = None
        return replace(self, **changes)

    def resampled(self, rate: float) -> "Recording":
        """Linear interpolation to ``rate`` Hz (a value missing at either neighbour stays NaN)."""
        if not rate > 0:
            raise HdysError(f"rate must be > 0 Hz, got {rate}")
        if rate == self.rate:
            return self
        T = self.frames
        duration = (T - 1) / self.rate
        n = int(np.floor(duration * rate + 1e-9)) + 1
        pos = np.arange(n) * (self.rate / rate)  # fractional source frame of each output frame
        i0 = np.minimum(np.floor(pos).astype(int), T - 1)
        i1 = np.minimum(i0 + 1, T - 1)
        w = (pos - i0).astype(np.float32).reshape((n,) + (1,) * (self.data.ndim - 1))
        data = (1.0 - w) * self.data[i0] + w * self.data[i1]  # (frames, ...)
        return replace(self, rate=float(rate), data=data.astype(np.float32),
                       time=self.time[0] + np.arange(n) / float(rate))
