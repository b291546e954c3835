"""Per-stage timing of the live pipeline, in preallocated rings (no growth over hours)."""

from __future__ import annotations

import numpy as np

#: The stages of one frame, in order: source -> receive (transport), window (ring, quality,
#: rate adaptation), inference (model step), encode (msgpack), publish (ZeroMQ/LSL send), and
#: total (receive .. publish on the server).
STAGES: tuple[str, ...] = ("receive", "window", "inference", "encode", "publish", "total")


class StageTimes:
    """The last ``capacity`` durations (seconds) of every stage."""

    def __init__(self, capacity: int = 1 << 16, stages: tuple[str, ...] = STAGES):
        self.capacity = int(capacity)
        self.stages = stages
        self._buf = np.zeros((len(stages), self.capacity), dtype=np.float64)  # (stage, sample)
        self._index = {s: i for i, s in enumerate(stages)}
        self.count = 0

    def record(self, *durations: float) -> None:
        """Record one frame's durations, in the order of ``stages``."""
        j = self.count % self.capacity
        self._buf[: len(durations), j] = durations
        self.count += 1

    def values(self, stage: str, since: int = 0) -> np.ndarray:
        """The retained durations of ``stage`` recorded from sample number ``since`` on (a
        past :attr:`count`; 0 = all retained), oldest first."""
        first = max(since, self.count - self.capacity, 0)
        n, a = self.count - first, first % self.capacity
        row = self._buf[self._index[stage]]
        if a + n <= self.capacity:
            return row[a:a + n]
        return np.concatenate([row[a:], row[:a + n - self.capacity]])

    def summary(self) -> dict[str, dict[str, float]]:
        """``{stage: {"p50", "p99", "max", "mean"}}`` in milliseconds over the retained frames."""
        return {s: percentiles_ms(self.values(s)) for s in self.stages}


def percentiles_ms(seconds) -> dict[str, float]:
    """p50 / p99 / max / mean of durations given in seconds, in milliseconds (NaN if empty)."""
    x = np.asarray(seconds, dtype=np.float64)
    if x.size == 0:
        return {"n": 0, "p50": float("nan"), "p99": float("nan"), "max": float("nan"),
                "mean": float("nan")}
    p50, p99 = np.percentile(x, [50, 99])
    return {"n": int(x.size), "p50": 1e3 * float(p50), "p99": 1e3 * float(p99),
            "max": 1e3 * float(x.max()), "mean": 1e3 * float(x.mean())}
