"""Causal resampling of a live stream onto the model's rate: any input rate (15..500 Hz, with
jitter) gets the temporal context the model was trained at.

The model was trained on frames ``1 / model_rate`` apart (10 ms at 100 Hz). A stream at
``stream_rate`` is served on ``phases = max(1, round(stream_rate / model_rate))`` interleaved
grids at the model's rate, phase ``p`` at times ``t0 + (n + p / phases) / model_rate`` (``t0``:
the first frame's time). Each grid keeps its own decoder state (the estimator's state ``p``),
so its temporal context is exactly the model's. When a frame arrives at ``t``, every grid point
in ``(t_prev, t]`` is committed to its state, its points interpolated linearly between the
previous frame and this one (no future frame is used); a frame within ``SNAP`` of a grid
spacing from a grid point IS that point (no interpolation, so 100 and 200 Hz streams are served
exactly as before, and LSL jitter does not smear them).

The frame's estimate is the output of the latest grid point committed at or before it
(``t_est``, at most one grid spacing ``1 / (phases * model_rate)`` before ``t``, equal to ``t``
when the frame lands on the grid): one estimate per input frame, stamped with that frame's
``seq`` / ``t_src``. Why resample rather than train a bias over time differences: it serves any
rate with the model as trained (no retraining, and the model's features are being changed
concurrently), its cost is the grid's rate (100 steps/s per phase) whatever the input rate,
and it reduces to the exact interleaved service at integer multiples of the model rate.
"""

from __future__ import annotations

import math

import numpy as np

#: a frame this close to a grid point (as a fraction of the grid spacing) is that grid point
SNAP = 0.1


class GridResampler:
    """Causal resampler of one stream onto ``phases`` grids at ``model_rate`` (see module doc).

    ``push(t, xyz)`` -> the grid points to commit: a list of ``(phase, t_grid, points)``, in
    time order, ``points`` (P, 3) float32 metres (NaN rows: missing in either neighbour).
    """

    def __init__(self, model_rate: float, stream_rate: float):
        if not (model_rate > 0 and stream_rate > 0):
            raise ValueError(f"rates must be > 0 Hz, got {model_rate}, {stream_rate}")
        self.dt = 1.0 / float(model_rate)                      # grid period, s
        self.phases = phases_for(stream_rate, model_rate)
        self.spacing = self.dt / self.phases                    # between consecutive grid points
        self.reset()

    def reset(self) -> None:
        """Forget the stream (the next frame starts the grids)."""
        self.t0: float | None = None
        self._next = 0          # next grid point to commit, counted over all phases
        self._prev_t = -math.inf
        self._prev: np.ndarray | None = None

    def push(self, t: float, xyz: np.ndarray) -> list[tuple[int, float, np.ndarray]]:
        if self.t0 is None:
            self.t0 = float(t)
        out = []
        eps = SNAP * self.spacing
        while True:
            k = self._next
            g = self.t0 + k * self.spacing  # grid point k: phase k % phases
            if g > t + eps:
                break
            if abs(g - t) <= eps or self._prev is None or g <= self._prev_t:
                pts = np.array(xyz, dtype=np.float32)
            else:  # strictly between the previous frame and this one
                w = np.float32((g - self._prev_t) / (t - self._prev_t))
                pts = (np.float32(1.0) - w) * self._prev + w * np.asarray(xyz, np.float32)
            out.append((k % self.phases, g, pts))
            self._next = k + 1
        self._prev_t = float(t)
        self._prev = np.array(xyz, dtype=np.float32)
        return out


def phases_for(stream_rate: float, model_rate: float) -> int:
    """Interleaved grids serving a ``stream_rate`` stream with a ``model_rate`` model."""
    return max(1, int(round(stream_rate / model_rate)))


def offline_estimates(estimator, xyz: np.ndarray, t: np.ndarray, stream_rate: float,
                      min_valid: int = 1) -> list[dict[str, np.ndarray] | None]:
    """The estimate of every frame of a recorded stream, as the live runtime computes it
    (same resampling, same model states), without transport: the reference live estimates
    must equal. ``xyz`` (T, P, 3) metres, ``t`` (T,) s; returns one ``name -> (C,)`` per frame
    (None before the first grid point; frames with fewer than ``min_valid`` markers are
    skipped, as live)."""
    estimator.set_stream_rate(stream_rate)
    rs = GridResampler(estimator.rate, stream_rate)
    out, last = [], None
    for f, tf in zip(xyz, t):
        if np.isfinite(f).all(1).sum() >= min_valid:
            for phase, _, pts in rs.push(float(tf), f):
                last = estimator.step(pts, phase)
        out.append(last)
    return out
