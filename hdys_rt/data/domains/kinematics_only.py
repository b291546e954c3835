"""Kinematics-only domain (the paper's AMASS role): keypoints and SMPL pose, no dynamics.

Reuses :mod:`hdys_rt.data.domains.humanoid`'s subjects and motion generators (own seeds, own
motion mixture, more locomotion) and writes only kinematic representations:

* ``keypoints`` in the ``coco17`` or ``h36m17`` layout (picked per sequence, recorded in
  ``meta["keypoint_layout"]``), derived from the 24 SMPL joint centres; face points (nose, eyes,
  ears) and H36M's neck/nose and head-top points are fixed offsets on the head segment, rotated
  with it; H36M "spine" is SMPL's spine2 and "thorax" SMPL's neck joint.
* ``smpl_pose``: pelvis position + 24 axis-angles (root orientation in the Y-up world).

Y up, metres, 100 Hz. No torques, GRF, muscles or sEMG.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from hdys_rt import representations as reps
from hdys_rt.data.corpus import Sequence, Subject
from hdys_rt.data.domains import humanoid as hum
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)

DOMAIN = "kinematics_only"
KIND = "kinematics"
DESCRIPTION = (
    "kinematics only (AMASS-like): COCO-17 / H36M-17 keypoints and SMPL pose from the humanoid "
    "domain's procedural motions (own seeds and mixture), no dynamics"
)

LAYOUTS = ("coco17", "h36m17")

# head-segment points in the head joint's frame (T pose axes: x left, y up, z forward),
# fractions of stature
_HEAD_POINTS = {
    "nose": (0.0, -0.002, 0.055),
    "left_eye": (0.018, 0.012, 0.048), "right_eye": (-0.018, 0.012, 0.048),
    "left_ear": (0.042, 0.006, 0.0), "right_ear": (-0.042, 0.006, 0.0),
    "head_top": (0.0, hum.HEAD_TOP, 0.01),
}
# layout point -> SMPL joint (or a head point)
_MAP = {
    "coco17": {"nose": "@nose", "left_eye": "@left_eye", "right_eye": "@right_eye",
               "left_ear": "@left_ear", "right_ear": "@right_ear"},
    "h36m17": {"spine": "spine2", "thorax": "neck", "neck": "@nose", "head": "@head_top"},
}

# motion mixture (more locomotion than the dynamics domain, like AMASS)
_MIX = (("walk", 6), ("turn", 4), ("run", 4), ("side_step", 2), ("squat", 2), ("jump", 2),
        ("reach", 3), ("perturbation", 2), ("sit_stand", 2), ("stand", 1))


def keypoints(mo: hum.Motion, sk: hum.Skeleton, layout: str) -> np.ndarray:
    """(T, 17, 3) keypoints of ``layout`` (coco17 | h36m17) from a humanoid motion."""
    if layout not in LAYOUTS:
        raise HdysError(f"kinematics_only: layout {layout!r} unsupported; use one of {LAYOUTS}")
    names = reps.KEYPOINT_LAYOUTS[layout]
    head = hum.JI["head"]
    out = np.empty((mo.joints.shape[0], len(names), 3))
    for i, n in enumerate(names):
        src = _MAP[layout].get(n, n)
        if src.startswith("@"):
            q = np.array(_HEAD_POINTS[src[1:]]) * sk.unit * sk.scales["trunk"]
            out[:, i] = mo.joints[:, head] + mo.world[:, head] @ q
        else:
            out[:, i] = mo.joints[:, hum.JI[src]]
    return out.astype(np.float32)


def plan(seed: int, quick: bool) -> list[dict]:
    """Jobs of up to 4 sequences (one subject each); quick: one job of two short sequences."""
    rng = np.random.default_rng([seed, 0x4B49])
    if quick:
        return [{"index": 0, "seed": int(rng.integers(2**31)),
                 "sequences": [{"kind": "walk", "duration": 2.0, "layout": "coco17"},
                               {"kind": "reach", "duration": 2.0, "layout": "h36m17"}]}]
    kinds = [k for k, n in _MIX for _ in range(n)]  # 28 sequences x ~9.5 s ~ 27k frames
    kinds += ["walk", "run", "turn", "reach"]  # -> 32 sequences, ~30k frames
    rng.shuffle(kinds)
    jobs = []
    for i in range(0, len(kinds), 4):
        jobs.append({"index": i // 4, "seed": int(rng.integers(2**31)),
                     "sequences": [{"kind": k, "duration": round(float(rng.uniform(8.0, 11.0)), 2),
                                    "layout": LAYOUTS[int(rng.integers(0, 2))]}
                                   for k in kinds[i:i + 4]]})
    return jobs


def sequences(job: dict) -> Iterator[Sequence]:
    """One job's sequences (one random subject), built one at a time."""
    try:
        index, seed, seqs = int(job["index"]), int(job["seed"]), list(job["sequences"])
    except (KeyError, TypeError, ValueError) as exc:
        raise HdysError(f"kinematics_only job {job!r} is malformed ({exc}); rebuild the plan") from None
    rng = np.random.default_rng([seed, index, 0x4B49])
    sk = hum.make_skeleton(rng, job.get("height_m"), job.get("mass_kg"))
    model = hum._Model(sk)
    sid = f"kin{index:03d}"
    for k, s in enumerate(seqs):
        layout = s.get("layout", "coco17")
        name = f"{sid}_{k}_{s['kind']}"
        mo = hum.make_motion(s["kind"], int(rng.integers(2**31)), float(s["duration"]), sk, model)
        cr = slice(mo.pad[0], len(mo.root) - mo.pad[1])
        kp = keypoints(mo, sk, layout)[cr]
        seq = Sequence(
            name=name, domain=DOMAIN, rate=hum.RATE,
            subject=Subject(sid, round(sk.mass, 3), round(sk.height, 4)),
            source=f"procedural {s['kind']} on the hdys SMPL-like humanoid (kinematics only)",
            data={"keypoints": kp, "smpl_pose": hum.smpl_pose(mo)[cr]},
            names={"keypoints": reps.KEYPOINT_LAYOUTS[layout], "smpl_pose": reps.SMPL_POSE_CHANNELS},
            meta={"keypoint_layout": layout, "motion": s["kind"], "motion_params": mo.params,
                  "smpl_transl": "pelvis joint position (Y up, m)",
                  "head_points": "nose/eyes/ears/head top: fixed offsets on the head segment"},
        )
        yield seq
