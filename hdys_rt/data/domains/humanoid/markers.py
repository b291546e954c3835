"""What a lab would record on the simulated humanoid: skin markers, and Rajagopal joint moments.

The real-lab domains carry markers and OpenSim (Rajagopal) joint moments for walking and running
only; squats, sit-to-stand and jumps exist in the simulator alone. So that the marker encoder and
the Rajagopal torque head see those motions too, every humanoid sequence also gets:

* ``markers``: a Plug-in-Gait-like skin marker set (pelvis ASIS/PSIS, thigh, lateral and medial
  knee, shank, both malleoli, heel, toe, 5th metatarsal, trunk, head, arms; 40 markers). Each
  marker sits at a fixed point of its body (stature fractions in the body's T-pose frame: x left,
  y up, z forward; right side mirrored), moved per sequence by up to ``jitter_m`` as a real
  placement would be.
* ``torques_rajagopal``: the sagittal channels mapped from the simulator's ball-joint moments.
  ``torques_smpl`` is the generalised force of each ball joint about the child body's axes
  (x left). A positive moment about +x swings the thigh back (hip extension), the shank back
  (knee flexion), the toes down (plantarflexion), the toes of the toe body down and the trunk
  forward (lumbar flexion). Rajagopal's signs (:mod:`hdys_rt.representations`) are + for hip
  flexion, knee flexion, dorsiflexion, toe extension and lumbar extension, hence the signs of
  :data:`SAGITTAL`. The frontal and transverse channels stay NaN: the ball joint's axes and
  Rajagopal's Euler axes part ways once the hip is flexed, so a mapping would be wrong exactly
  in the deep squats this is for.

  Only motions of :data:`RAJAGOPAL_KINDS` carry them. Walking, running, turning and side steps
  have real recordings with OpenSim moments, and their procedural swing phases give hip moments
  about twice the real ones (p5 -1.7 N·m/kg against about -0.9 in real walking), which would
  teach the Rajagopal head the simulator's gait instead of people's.
"""

from __future__ import annotations

import numpy as np

from hdys_rt import representations as reps
from hdys_rt.data.domains.humanoid.kinematics import Motion
from hdys_rt.data.domains.humanoid.skeleton import JI, Skeleton

__all__ = ["MARKERS", "SAGITTAL", "RAJAGOPAL_KINDS", "marker_names", "virtual_markers", "rajagopal_torques"]

#: Left-side / midline markers: (name, body (SMPL joint whose body carries it), point in stature
#: fractions in that body's T-pose frame; 0.01 is 1.75 cm on a 1.75 m person). Names starting
#: with "L" get an "R" twin, x mirrored.
MARKERS: tuple[tuple[str, str, tuple[float, float, float]], ...] = (
    ("LASI", "pelvis", (0.068, 0.030, 0.058)), ("LPSI", "pelvis", (0.028, 0.040, -0.058)),
    ("LTHI", "left_hip", (0.050, -0.130, 0.010)), ("LKNE", "left_hip", (0.029, -0.240, 0.0)),
    ("LKNM", "left_hip", (-0.026, -0.240, 0.0)), ("LTIB", "left_knee", (0.032, -0.120, 0.012)),
    ("LANK", "left_knee", (0.021, -0.246, -0.004)), ("LMED", "left_knee", (-0.019, -0.243, 0.0)),
    ("LHEE", "left_ankle", (0.0, -0.020, -0.035)), ("LTOE", "left_ankle", (0.008, -0.020, 0.080)),
    ("L5MT", "left_ankle", (0.028, -0.025, 0.060)),
    ("LSHO", "left_shoulder", (0.005, 0.028, 0.0)), ("LELB", "left_shoulder", (0.160, 0.012, -0.010)),
    ("LWRA", "left_elbow", (0.155, 0.0, 0.017)), ("LWRB", "left_elbow", (0.155, 0.0, -0.017)),
    ("LFIN", "left_wrist", (0.045, -0.008, 0.0)),
    ("LFHD", "head", (0.030, 0.050, 0.050)), ("LBHD", "head", (0.030, 0.050, -0.055)),
    ("C7", "neck", (0.0, -0.005, -0.035)), ("T10", "spine2", (0.0, 0.0, -0.058)),
    ("CLAV", "spine3", (0.0, 0.055, 0.050)), ("STRN", "spine3", (0.0, 0.0, 0.060)),
)

#: Rajagopal channel <- (SMPL torque channel, sign); the other channels of the 17 stay NaN.
SAGITTAL: dict[str, tuple[str, float]] = {
    **{f"hip_flexion_{s}": (f"{side}_hip_x", -1.0) for s, side in (("r", "right"), ("l", "left"))},
    **{f"knee_angle_{s}": (f"{side}_knee_x", 1.0) for s, side in (("r", "right"), ("l", "left"))},
    **{f"ankle_angle_{s}": (f"{side}_ankle_x", -1.0) for s, side in (("r", "right"), ("l", "left"))},
    **{f"mtp_angle_{s}": (f"{side}_foot_x", -1.0) for s, side in (("r", "right"), ("l", "left"))},
    "lumbar_extension": ("spine1_x", -1.0),
}


#: Motions whose mapped moments are physiological (quasi-static, or jumps: knee extensor peaks
#: of 2.5-3.5 N·m/kg as in real drop jumps) and which real data lack.
RAJAGOPAL_KINDS = ("squat", "sit_stand", "jump", "reach", "stand")


def _table() -> list[tuple[str, int, np.ndarray]]:
    out = []
    for name, body, p in MARKERS:
        out.append((name, JI[body], np.array(p, dtype=float)))
        if name.startswith("L"):
            q = np.array(p, dtype=float) * (-1.0, 1.0, 1.0)
            out.append(("R" + name[1:], JI[body.replace("left_", "right_")], q))
    return out


def marker_names() -> tuple[str, ...]:
    """The 40 marker names, in the order of :func:`virtual_markers`' points."""
    return tuple(n for n, _, _ in _table())


def virtual_markers(sk: Skeleton, mo: Motion, rng: np.random.Generator,
                    jitter_m: float = 0.01) -> np.ndarray:
    """(T, 40, 3) marker positions (m, Y up) of a motion; each marker's place on its body is
    moved by a uniform random offset of at most ``jitter_m`` per axis (one per sequence)."""
    table = _table()
    bodies = np.array([b for _, b, _ in table])
    scale = np.array([sk.scale_of(reps.SMPL_JOINTS[b]) for b in bodies])  # length jitter
    local = np.stack([p for _, _, p in table]) * (sk.unit * scale)[:, None]
    local = local + rng.uniform(-jitter_m, jitter_m, size=local.shape)
    # p_world = joint position of the body + body rotation @ local point
    pts = mo.joints[:, bodies] + np.einsum("tpij,pj->tpi", mo.world[:, bodies], local)
    return pts.astype(np.float32)


def rajagopal_torques(torques_smpl: np.ndarray) -> np.ndarray:
    """(T, 17) Rajagopal moments (N·m/kg, OpenSim signs) from (T, 69) SMPL ball-joint moments;
    channels outside :data:`SAGITTAL` are NaN."""
    src = {c: i for i, c in enumerate(reps.SMPL_TORQUE_CHANNELS)}
    out = np.full((len(torques_smpl), len(reps.RAJAGOPAL_TORQUE_JOINTS)), np.nan, np.float32)
    for j, ch in enumerate(reps.RAJAGOPAL_TORQUE_JOINTS):
        if ch in SAGITTAL:
            name, sign = SAGITTAL[ch]
            out[:, j] = sign * torques_smpl[:, src[name]]
    return out
