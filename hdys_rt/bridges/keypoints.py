"""Keypoint bridge: per-frame keypoints from a pose estimator in, a keypoint stream out.

Input, one frame per JSON line (a file, or ``-`` for stdin) or per ZeroMQ message (msgpack map,
or JSON text; an optional leading topic part is ignored)::

    {"layout": "coco17",                 # coco17 | h36m17 | mediapipe33 (or --layout)
     "keypoints": [[x, y, z], ...],      # P points in the layout's order; or [x, y, z, score];
                                         # or {"nose": [x, y, z], ...}; null = missing point
     "scores": [s, ...],                 # optional confidences; below --min-score = missing
     "t": 12.345}                        # optional sample time, s (files: sets the rate)

msgpack frames may carry ``"keypoints"`` as raw little-endian float32 bytes (``bin``) with
``"dims": 3``. Coordinates are 3D; ``--up`` tells the input's vertical: ``y``, ``ydown`` (camera and
image conventions, Y down: MediaPipe world landmarks, most 3D lifters) or ``z``; units are
metres, mm or cm (``--units auto`` decides from the body's size on the first frame).

2D keypoints (``[x, y]`` pixels) are refused with an error: the model takes 3D keypoints in
metres and this bridge does not lift 2D to 3D (run a lifter such as MotionBERT or VideoPose3D,
or use MediaPipe's world landmarks, and send its 3D output).

Output: a point stream of the layout's keypoint names, in metres, Y up, to ZeroMQ
(:class:`hdys_rt.client.MarkerSender` frames) or LSL; ``hdys-rt serve --input keypoints`` serves
it. MediaPipe-33 is forwarded as its COCO-17 subset (the model was trained on COCO-17,
H36M-17, SMPL-24 and OpenSim joint-centre layouts; MediaPipe's extra hand/foot/face points are
dropped).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np

from hdys_rt import representations as reps
from hdys_rt.data.markersets import detect_units
from hdys_rt.data.frames import zup_to_yup
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)

__all__ = ["LAYOUTS", "FORWARD_LAYOUT", "KeypointFrame", "parse_frame", "KeypointConverter",
           "read_jsonl", "frames_to_jsonl"]

MEDIAPIPE33: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)

#: Input layouts the bridge reads, by name.
LAYOUTS: dict[str, tuple[str, ...]] = {
    "coco17": reps.KEYPOINT_LAYOUTS["coco17"],
    "h36m17": reps.KEYPOINT_LAYOUTS["h36m17"],
    "mediapipe33": MEDIAPIPE33,
}

#: The layout each input layout is forwarded as (one the model was trained on).
FORWARD_LAYOUT: dict[str, str] = {"coco17": "coco17", "h36m17": "h36m17",
                                  "mediapipe33": "coco17"}

MAX_LINE_BYTES = 1 << 20


@dataclass
class KeypointFrame:
    """One parsed input frame: ``xyz`` (P, 3) float64 in the input's units and axes (NaN =
    missing), in the order of ``LAYOUTS[layout]``; ``t`` the frame's own time (s) if given."""

    layout: str
    xyz: np.ndarray
    t: float | None = None


def _as_points(kp, n: int, layout: str) -> np.ndarray:
    """(n, D) float array from a list of points (None/short rows = missing) -> (n, 3 or 4)."""
    if isinstance(kp, dict):
        names = LAYOUTS[layout]
        unknown = sorted(set(kp) - set(names))
        if unknown:
            raise HdysError(f"keypoints {unknown[:5]} are not {layout} names "
                            f"(e.g. {names[:3]})")
        kp = [kp.get(nm) for nm in names]
    if not isinstance(kp, list):
        raise HdysError(f"keypoints must be a list of points or a name -> point map, got "
                        f"{type(kp).__name__}")
    dims = {len(p) for p in kp if isinstance(p, (list, tuple))}
    if dims and max(dims) == 2:
        raise HdysError("2D keypoints (x, y) received: the model takes 3D keypoints in metres; "
                        "lift them to 3D first (e.g. MotionBERT, VideoPose3D, or MediaPipe's "
                        "world landmarks) and send [x, y, z]")
    if len(kp) != n:
        raise HdysError(f"{len(kp)} keypoints do not fit layout {layout} ({n} points); set "
                        f"--layout or the frame's \"layout\"")
    out = np.full((n, 4), np.nan)
    out[:, 3] = 1.0
    for i, p in enumerate(kp):
        if p is None:
            continue
        if not isinstance(p, (list, tuple)) or len(p) not in (3, 4):
            raise HdysError(f"keypoint {i} must be [x, y, z] or [x, y, z, score], got "
                            f"{str(p)[:40]}")
        try:
            out[i, :len(p)] = [float("nan") if v is None else float(v) for v in p]
        except (TypeError, ValueError):
            raise HdysError(f"keypoint {i} holds a non-number: {str(p)[:40]}") from None
    return out


def parse_frame(msg, layout: str | None = None, min_score: float = 0.0) -> KeypointFrame:
    """Validate one input frame (a decoded JSON / msgpack map); see the module doc."""
    if not isinstance(msg, dict):
        raise HdysError(f"a keypoint frame must be a map, got {type(msg).__name__}")
    lay = msg.get("layout") or layout
    if lay is None:
        raise HdysError("the frame states no layout: pass --layout coco17|h36m17|mediapipe33")
    if lay not in LAYOUTS:
        raise HdysError(f"unknown keypoint layout {lay!r}; expected one of {sorted(LAYOUTS)}")
    n = len(LAYOUTS[lay])
    kp = msg.get("keypoints")
    if kp is None:
        raise HdysError("the frame has no \"keypoints\"")
    if isinstance(kp, (bytes, bytearray)):
        dims = msg.get("dims", 3)
        if dims == 2:
            return parse_frame({**msg, "keypoints": [[0, 0]]}, layout)  # the 2D error
        if dims != 3 or len(kp) != 12 * n:
            raise HdysError(f"binary keypoints: {len(kp)} bytes for {n} x {dims} float32")
        pts = np.full((n, 4), 1.0)
        pts[:, :3] = np.frombuffer(kp, "<f4").reshape(n, 3)
    else:
        pts = _as_points(kp, n, lay)
    scores = msg.get("scores")
    if scores is not None:
        if not isinstance(scores, list) or len(scores) != n:
            raise HdysError(f"scores must be a list of {n} numbers")
        pts[:, 3] = [np.nan if s is None else float(s) for s in scores]
    xyz = pts[:, :3].copy()
    low = ~(pts[:, 3] >= min_score)
    xyz[low] = np.nan
    t = msg.get("t")
    if t is not None and (not isinstance(t, (int, float)) or not math.isfinite(t)):
        raise HdysError(f"t must be a number of seconds, got {str(t)[:40]}")
    return KeypointFrame(lay, xyz, None if t is None else float(t))


@dataclass
class KeypointConverter:
    """Input frames -> forwarded points ``(P_out, 3)`` float32 metres, Y up.

    ``up``: the input's vertical (``y``, ``ydown``, ``z``); ``units``: ``auto``, ``m``, ``cm``,
    ``mm`` (auto: decided on the first frame with enough points, then kept).
    """

    layout: str | None = None
    up: str = "y"
    units: str = "auto"
    min_score: float = 0.0
    out_layout: str | None = field(default=None, init=False)
    names: tuple[str, ...] = field(default=(), init=False)
    scale: float | None = field(default=None, init=False)

    def __post_init__(self):
        if self.up not in ("y", "ydown", "z"):
            raise HdysError(f"up must be y, ydown or z, got {self.up!r}")
        if self.units not in ("auto", *reps.LENGTH_UNITS):
            raise HdysError(f"units must be auto, m, cm or mm, got {self.units!r}")
        if self.layout is not None and self.layout not in LAYOUTS:
            raise HdysError(f"unknown keypoint layout {self.layout!r}; expected one of "
                            f"{sorted(LAYOUTS)}")
        if self.units != "auto":
            self.scale = reps.LENGTH_UNITS[self.units]

    def convert(self, frame: KeypointFrame) -> np.ndarray:
        if self.out_layout is None:
            self.out_layout = FORWARD_LAYOUT[frame.layout]
            self.names = reps.KEYPOINT_LAYOUTS[self.out_layout]
            self._index = [LAYOUTS[frame.layout].index(n) for n in self.names]
            self._in_layout = frame.layout
        elif frame.layout != self._in_layout:
            raise HdysError(f"layout changed from {self._in_layout} to {frame.layout} "
                            "mid-stream; restart the bridge")
        xyz = frame.xyz[self._index]  # (P_out, 3)
        if self.scale is None:
            if np.isfinite(xyz).all(1).sum() < 6:
                return np.full(xyz.shape, np.nan, np.float32)  # too few to judge the units
            unit = detect_units(xyz, what="keypoints")
            if unit != "m":
                log.warning("keypoints span looks like %s: converting to metres "
                            "(pass --units to set it)", unit)
            self.scale = reps.LENGTH_UNITS[unit]
        xyz = xyz * self.scale
        if self.up == "ydown":
            xyz = xyz * np.array([1.0, -1.0, -1.0])  # 180 deg about X: Y down -> Y up
        elif self.up == "z":
            xyz = zup_to_yup(xyz)
        return np.asarray(xyz, np.float32)


def read_jsonl(lines, layout: str | None = None, min_score: float = 0.0):
    """Yield :class:`KeypointFrame` from JSON lines (blank lines skipped); errors name the line."""
    for i, line in enumerate(lines, 1):
        if isinstance(line, bytes):
            line = line.decode("utf-8", "replace")
        if len(line) > MAX_LINE_BYTES:
            raise HdysError(f"line {i}: longer than {MAX_LINE_BYTES} bytes")
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
        except ValueError as exc:
            raise HdysError(f"line {i}: not JSON ({exc})") from None
        try:
            yield parse_frame(msg, layout, min_score)
        except HdysError as exc:
            raise HdysError(f"line {i}: {exc}") from None


def frames_to_jsonl(path, xyz: np.ndarray, layout: str, rate: float | None = None) -> None:
    """Write ``xyz`` (T, P, 3) (NaN = missing) as keypoint JSON lines (``t`` from ``rate``)."""
    with open(path, "w") as f:
        for i, fr in enumerate(np.asarray(xyz, np.float64)):
            msg = {"layout": layout,
                   "keypoints": [None if not np.isfinite(p).all() else
                                 [round(float(v), 5) for v in p] for p in fr]}
            if rate:
                msg["t"] = round(i / rate, 6)
            f.write(json.dumps(msg) + "\n")


def rate_from_times(times: list[float | None], default: float) -> float:
    """The median rate of the frames' own times, else ``default``."""
    ts = np.array([t for t in times if t is not None], np.float64)
    if ts.size < 2:
        return default
    dt = np.diff(ts)
    dt = dt[dt > 0]
    return round(float(1.0 / np.median(dt)), 3) if dt.size else default  # 99.99999 -> 100


def zmq_frames(endpoint: str, bind: bool, stop, layout: str | None = None,
               min_score: float = 0.0, on_error=None):
    """Yield ``(KeypointFrame, t_arrival)`` from a ZeroMQ SUB socket (msgpack or JSON maps),
    or ``None`` every ~0.1 s while idle so the caller can stop. Malformed messages go to
    ``on_error(exc)`` (default: raise)."""
    import msgpack
    import zmq

    from hdys_rt.streams.zmq import check_endpoint

    check_endpoint(endpoint, "keypoint endpoint")
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.MAXMSGSIZE, MAX_LINE_BYTES)
    s.setsockopt(zmq.SUBSCRIBE, b"")
    try:
        s.bind(endpoint) if bind else s.connect(endpoint)
    except zmq.ZMQError as exc:
        s.close(0)
        raise HdysError(f"cannot {'bind' if bind else 'connect'} {endpoint}: {exc}") from None
    try:
        while not stop.is_set():
            if not s.poll(100):
                yield None
                continue
            parts = s.recv_multipart()
            t = time.monotonic()
            data = parts[-1]
            try:
                if data[:1] in (b"{", b"["):
                    msg = json.loads(data)
                else:
                    msg = msgpack.unpackb(data, raw=False, max_bin_len=MAX_LINE_BYTES,
                                          max_str_len=MAX_LINE_BYTES, max_ext_len=0)
                yield parse_frame(msg, layout, min_score), t
            except (ValueError, msgpack.exceptions.UnpackException, HdysError) as exc:
                if on_error is None or (isinstance(exc, HdysError) and "2D" in str(exc)):
                    raise HdysError(f"keypoint message: {exc}") from None
                on_error(exc)
    finally:
        s.close(0)
