"""The hdys-rt wire format, version 1: the one place it is defined and documented.

Every message is a msgpack map (never a pickle). Arrays travel as raw little-endian float32
bytes (msgpack ``bin``), row-major. Times are seconds on the sender's monotonic clock, which on
one machine is LSL's ``local_clock()`` (both are CLOCK_MONOTONIC on Linux). Over ZeroMQ a message
is a two-part frame ``[topic, payload]``; a bare one-part payload is accepted as input too.

Topics::

    b"hdys.markers"   input frames, sender -> ``hdys-rt serve``        (see MARKERS below)
    b"hdys.meta"      metadata, serve -> subscribers                   (see META below)
    b"hdys.est"       one estimate per input frame, serve -> subscribers (see ESTIMATE below)

MARKERS (input frame, one per mocap sample)::

    {"v": 1, "type": "markers",
     "seq": int 0..2**63-1,      # the sender's frame counter
     "t": float,                 # sample time, s, sender's monotonic clock
     "names": [str, ...],        # P unique marker names, 1..MAX_NAME_LEN chars, P <= MAX_MARKERS
     "xyz": bin,                 # P*3 float32: (P, 3) metres, Y up; a NaN row = missing marker
     "rate": float,              # optional: nominal sample rate, Hz
     "src": str}                 # optional: stream name (<= MAX_NAME_LEN chars)

META (sent when a subscriber joins, when it changes, and every ``META_PERIOD_S``)::

    {"v": 1, "type": "meta", "stream": str, "meta": int,   # id, changes with the layout
     "input": {"kind": "markers" | "keypoints", "names": [str, ...], "rate": float},
     "outputs": {name: {"names": [channel, ...], "unit": str}, ...},
     "model": {"rate": float, "window": int, "phases": int,
               "novelty_threshold": float},            # ESTIMATE q.novelty above it: flag
     #                                                   novel (NaN: model not calibrated)
     "flags": {"missing": 1, "too_few": 2, ...}}          # the bits of ESTIMATE q.flags

ESTIMATE (one per processed input frame)::

    {"v": 1, "type": "est", "stream": str, "meta": int,
     "seq": int,                 # the input frame's seq
     "t_src": float,             # the input sample's time (source clock: LSL local_clock / sender)
     "t_recv": float,            # when serve received it (serve's monotonic clock)
     "t_pub": float,             # when serve published this estimate (same clock)
     "t_est": float,             # the time the outputs describe (source clock): the latest
     #                             point of the model-rate grid at or before t_src (equal to
     #                             t_src when the frame lands on it; hdys_rt.model.resample)
     "outputs": {name: bin},     # float32 (C,), channels named in META outputs[name].names
     "q": {"flags": int,         # FLAGS bits
           "n_valid": int,       # markers used this frame
           "missing": [int],     # indices (into META input.names) of missing/invalid markers
           "dropped": int,       # frames lost so far on this stream (ring overwrite, layout
           #                       change, a backlog skipped while overloaded; cumulative):
           #                       they never entered the model
           "stale": int,         # estimates left unpublished so far as too old (cumulative);
           #                       their frames did enter the model's temporal context
           "ooo": int,           # out-of-order / duplicate samples dropped so far (cumulative)
           "novelty": float},    # how far this frame's motion is from the training data:
           #                       the squared Mahalanobis distance of the model's latent per
           #                       dimension (about 1 in training; hdys_rt.model.novelty);
           #                       above the model's threshold, flag ``novel``; NaN when the
           #                       model is not calibrated or the frame was not estimated
     "lat": {"receive": s, "window": s, "inference": s}}   # this frame's stage times

Hard limits (decoding rejects anything beyond them with :class:`WireError`): message size
``MAX_MESSAGE_BYTES`` for input frames, ``MAX_MARKERS`` markers, ``MAX_NAME_LEN`` characters per
name; msgpack itself is bounded through its ``max_*_len`` arguments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgpack
import numpy as np

from hdys_rt.errors import HdysError

__all__ = [
    "VERSION", "TOPIC_MARKERS", "TOPIC_META", "TOPIC_EST", "MAX_MESSAGE_BYTES",
    "MAX_OUTPUT_MESSAGE_BYTES", "MAX_MARKERS", "MAX_NAME_LEN", "MAX_SEQ", "META_PERIOD_S",
    "FLAGS",
    "WireError", "MarkerFrame", "encode_markers", "decode_markers", "encode_estimate",
    "encode_meta", "decode_output", "flag_names", "check_names",
]

VERSION = 1
TOPIC_MARKERS = b"hdys.markers"
TOPIC_META = b"hdys.meta"
TOPIC_EST = b"hdys.est"

MAX_MESSAGE_BYTES = 64 * 1024         # one input frame (512 markers with names fit in ~40 KiB)
MAX_OUTPUT_MESSAGE_BYTES = 1 << 20    # estimates and metadata, on the client side
MAX_MARKERS = 512
MAX_NAME_LEN = 64
MAX_SEQ = (1 << 63) - 1               # frame counters are int64 on the server
META_PERIOD_S = 2.0

#: Quality bits of an estimate (``q.flags``).
FLAGS: dict[str, int] = {
    "missing": 1,    # some markers were missing (NaN) in this frame
    "too_few": 2,    # fewer valid markers than the minimum: outputs are NaN, model not stepped
    "gap": 4,        # time since the previous frame exceeds 1.5 sample periods
    "dropped": 8,    # frames were lost just before this one (ring overwrite, layout change,
    #                  a backlog skipped while overloaded)
    "reset": 16,     # the model state was reset before this frame (new stream, long gap, ...)
    "invalid": 32,   # non-finite or absurd coordinates were treated as missing
    "error": 64,     # inference failed on this frame: outputs are NaN
    "stale": 128,    # estimates of earlier frames were too old to publish (not sent)
    "novel": 256,    # the motion is far from the training data (q.novelty above the model's
    #                  threshold): the outputs are an extrapolation
    "coarse": 512,   # serve could not keep up: this frame's own grid point was not run (or its
    #                  grid is still rebuilding its context), the outputs are those of an
    #                  earlier grid point (t_est says which), one grid spacing or so older;
    #                  or the outputs are not averaged with the mirror image's as the model
    #                  asks (its state skipped frames or is rebuilding its context)
}


class WireError(HdysError):
    """A message that does not follow the wire format; ``oversized`` tells size violations apart."""

    def __init__(self, message: str, oversized: bool = False):
        super().__init__(message)
        self.oversized = oversized


def flag_names(flags: int) -> list[str]:
    """The names of the bits set in ``flags``."""
    return [name for name, bit in FLAGS.items() if flags & bit]


def check_names(names, what: str = "names") -> tuple[str, ...]:
    """Validate a list of marker/stream names against the limits; return them as a tuple."""
    if not isinstance(names, (list, tuple)):
        raise WireError(f"{what} must be a list of strings, got {type(names).__name__}")
    if len(names) > MAX_MARKERS:
        raise WireError(f"{what}: {len(names)} markers exceed the limit of {MAX_MARKERS}",
                        oversized=True)
    for n in names:
        if not isinstance(n, str) or not (1 <= len(n) <= MAX_NAME_LEN):
            raise WireError(f"{what}: every name must be a string of 1..{MAX_NAME_LEN} "
                            f"characters, got {str(n)[:80]!r}")
    out = tuple(names)
    if len(set(out)) != len(out):
        dup = sorted({n for n in out if out.count(n) > 1})
        raise WireError(f"{what}: duplicate names {dup[:5]}")
    return out


@dataclass
class MarkerFrame:
    """One decoded input frame: ``xyz`` is (P, 3) float32 metres, Y up, NaN rows missing."""

    seq: int
    t: float
    names: tuple[str, ...]
    xyz: np.ndarray
    rate: float | None = None
    src: str | None = None


def _unpack(data: bytes, limit: int):
    if len(data) > limit:
        raise WireError(f"message of {len(data)} bytes exceeds the limit of {limit}",
                        oversized=True)
    try:
        return msgpack.unpackb(
            data, raw=False, strict_map_key=True, max_str_len=limit, max_bin_len=limit,
            max_array_len=max(MAX_MARKERS * 3, 4096), max_map_len=64, max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.exceptions.ExtraData,
            msgpack.exceptions.UnpackException) as exc:
        raise WireError(f"not a valid msgpack message ({type(exc).__name__}: {exc})"[:200]) \
            from None


def encode_markers(xyz: np.ndarray, names, t: float, seq: int, rate: float | None = None,
                   src: str | None = None) -> bytes:
    """Pack one input frame; ``xyz`` is (P, 3) metres, Y up (NaN rows = missing markers)."""
    xyz = np.ascontiguousarray(xyz, dtype="<f4")
    msg = {"v": VERSION, "type": "markers", "seq": int(seq), "t": float(t),
           "names": list(names), "xyz": xyz.tobytes()}
    if rate is not None:
        msg["rate"] = float(rate)
    if src is not None:
        msg["src"] = str(src)
    return msgpack.packb(msg, use_bin_type=True)


def decode_markers(data: bytes, known_names: tuple[str, ...] | None = None) -> MarkerFrame:
    """Decode and validate one input frame; raise :class:`WireError` on anything malformed.

    ``known_names``: the previous frame's names; when equal, their validation is skipped.
    """
    msg = _unpack(data, MAX_MESSAGE_BYTES)
    if not isinstance(msg, dict):
        raise WireError(f"an input frame must be a msgpack map, got {type(msg).__name__}")
    if msg.get("v") != VERSION:
        raise WireError(f"unsupported wire version {msg.get('v')!r} (this is version {VERSION})")
    if msg.get("type") != "markers":
        raise WireError(f"expected type 'markers', got {msg.get('type')!r}")
    seq, t, names, raw = msg.get("seq"), msg.get("t"), msg.get("names"), msg.get("xyz")
    if not isinstance(seq, int) or isinstance(seq, bool) or not (0 <= seq <= MAX_SEQ):
        raise WireError(f"seq must be an integer >= 0 and < 2**63, got {seq!r}"[:120])
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t):
        raise WireError(f"t must be a finite number of seconds, got {t!r}"[:120])
    if known_names is not None and isinstance(names, list) and len(names) == len(known_names) \
            and tuple(names) == known_names:
        names = known_names
    else:
        names = check_names(names)
    if not isinstance(raw, bytes):
        raise WireError(f"xyz must be msgpack bin (float32 bytes), got {type(raw).__name__}")
    if len(raw) != 12 * len(names):
        raise WireError(f"xyz has {len(raw)} bytes; {len(names)} markers need {12 * len(names)}")
    rate = msg.get("rate")
    if rate is not None and (not isinstance(rate, (int, float)) or isinstance(rate, bool)
                             or not (0.0 < rate <= 10_000.0)):
        raise WireError(f"rate must be a number in (0, 10000] Hz, got {rate!r}"[:120])
    src = msg.get("src")
    if src is not None and (not isinstance(src, str) or not (1 <= len(src) <= MAX_NAME_LEN)):
        raise WireError(f"src must be a string of 1..{MAX_NAME_LEN} characters")
    xyz = np.frombuffer(raw, dtype="<f4").reshape(len(names), 3)  # (points, xyz)
    return MarkerFrame(seq, float(t), names, xyz, None if rate is None else float(rate), src)


def encode_meta(stream: str, meta_id: int, input_names, input_rate: float,
                outputs: dict[str, tuple[str, ...]], units: dict[str, str],
                model: dict, input_kind: str = "markers") -> bytes:
    """Pack the metadata message describing one stream's estimates (see the module doc)."""
    return msgpack.packb({
        "v": VERSION, "type": "meta", "stream": stream, "meta": int(meta_id),
        "input": {"kind": input_kind, "names": list(input_names), "rate": float(input_rate)},
        "outputs": {k: {"names": list(v), "unit": units.get(k, "")} for k, v in outputs.items()},
        "model": model, "flags": dict(FLAGS),
    }, use_bin_type=True)


def encode_estimate(stream: str, meta_id: int, seq: int, t_src: float, t_recv: float,
                    t_pub: float, outputs: dict[str, np.ndarray], flags: int, n_valid: int,
                    missing: list[int], dropped: int, ooo: int, lat: dict[str, float],
                    stale: int = 0, t_est: float | None = None,
                    novelty: float = math.nan) -> bytes:
    """Pack one estimate; each output is sent as its float32 bytes."""
    return msgpack.packb({
        "v": VERSION, "type": "est", "stream": stream, "meta": meta_id, "seq": seq,
        "t_src": t_src, "t_recv": t_recv, "t_pub": t_pub,
        "t_est": t_src if t_est is None else t_est,
        "outputs": {k: np.asarray(v, dtype="<f4").tobytes() for k, v in outputs.items()},
        "q": {"flags": flags, "n_valid": n_valid, "missing": missing, "dropped": dropped,
              "ooo": ooo, "stale": stale, "novelty": float(novelty)},
        "lat": lat,
    }, use_bin_type=True)


def decode_output(data: bytes) -> dict:
    """Decode a META or ESTIMATE message (client side); outputs become float32 arrays."""
    msg = _unpack(data, MAX_OUTPUT_MESSAGE_BYTES)
    if not isinstance(msg, dict) or msg.get("v") != VERSION:
        raise WireError("not an hdys-rt version-1 message")
    if msg.get("type") == "est":
        outs = msg.get("outputs")
        if not isinstance(outs, dict):
            raise WireError("estimate without an outputs map")
        msg["outputs"] = {k: np.frombuffer(v, dtype="<f4") for k, v in outs.items()}
    elif msg.get("type") != "meta":
        raise WireError(f"unknown message type {msg.get('type')!r}")
    return msg
