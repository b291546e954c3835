"""The humanoid's world and body: rate, gravity, SMPL joint tree, de Leva anthropometry,
random subjects (:func:`make_skeleton`) and the foot contact vertices (Y up, metres, kg)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hdys_rt import representations as reps
from hdys_rt.errors import HdysError


RATE = 100.0  # Hz
DT = 1.0 / RATE

# --- joint tree (SMPL order) --------------------------------------------------------------------
PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17,
                            18, 19, 20, 21)
JI = {n: i for i, n in enumerate(reps.SMPL_JOINTS)}
LEFT, RIGHT = 0, 1  # foot indices; they follow SMPL's left_* / right_* joints
_SIDE = ("left", "right")

# Y-up transform between frames: v_yup = C @ v_zup (MuJoCo is Z up).
C_ZY = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

# --- anthropometry (fractions of stature; Y up, x left, z forward; left side, right mirrors x) ---
_OFF = {
    "left_hip": (0.050, -0.046, 0.0), "spine1": (0.0, 0.060, -0.010),
    "left_knee": (0.0, -0.2425, 0.0), "spine2": (0.0, 0.080, 0.005),
    "left_ankle": (0.0, -0.246, 0.0), "spine3": (0.0, 0.032, 0.0),
    "left_foot": (0.0, -0.027, 0.084), "neck": (0.0, 0.126, -0.010),
    "left_collar": (0.020, 0.050, -0.005), "head": (0.0, 0.050, 0.010),
    "left_shoulder": (0.075, 0.020, -0.010), "left_elbow": (0.162, 0.0, 0.0),
    "left_wrist": (0.155, 0.0, 0.0), "left_hand": (0.046, 0.0, 0.0),
}
_GROUP = {"hip": "leg", "knee": "leg", "ankle": "leg", "foot": "leg", "spine1": "trunk",
          "spine2": "trunk", "spine3": "trunk", "neck": "trunk", "head": "trunk",
          "collar": "trunk", "shoulder": "arm", "elbow": "arm", "wrist": "arm", "hand": "arm"}
ANKLE_H = 0.039  # ankle centre above the floor, fraction of stature
HEEL_Z, BALL_Z = -0.030, 0.084  # heel / ball (MTP) along the foot from the ankle
HEAD_TOP = 0.0785  # head top above the head joint
# de Leva (1996) male mass fractions, trunk split over the SMPL trunk bodies (sum = 1).
_MASS = {
    "pelvis": 0.1117, "hip": 0.1416, "knee": 0.0433, "ankle": 0.0110, "foot": 0.0027,
    "spine1": 0.0800, "spine2": 0.0833, "spine3": 0.1000, "neck": 0.0200, "head": 0.0494,
    "collar": 0.0298, "shoulder": 0.0271, "elbow": 0.0162, "wrist": 0.0045, "hand": 0.0016,
}
# contact vertices: (name, joint/body, local point in fractions of stature, x sign mirrored)
_VERTS = (
    ("heel_out", "ankle", (0.018, -ANKLE_H, HEEL_Z)), ("heel_in", "ankle", (-0.018, -ANKLE_H, HEEL_Z)),
    ("ball_out", "ankle", (0.029, -ANKLE_H, BALL_Z)), ("ball_in", "ankle", (-0.029, -ANKLE_H, BALL_Z)),
    ("toe_out", "foot", (0.014, -0.012, 0.036)), ("toe_in", "foot", (-0.014, -0.012, 0.036)),
)


def _key(joint: str) -> str:
    return joint.split("_", 1)[1] if joint.startswith(("left_", "right_")) else joint


@dataclass
class Skeleton:
    """One subject's skeleton. Lengths in metres (Y up), masses in kg."""

    height: float
    mass: float
    offsets: np.ndarray  # (24, 3) joint offsets from the parent joint in the T pose
    scales: dict  # segment-group length jitter
    unit: float  # metres per stature fraction (= height / nominal stature sum)

    @property
    def leg_length(self) -> float:
        return float(-self.offsets[JI["left_knee"], 1] - self.offsets[JI["left_ankle"], 1])

    def scale_of(self, joint: str) -> float:
        """The length jitter of the segment group of SMPL body ``joint`` (1 for the pelvis)."""
        return self.scales.get(_GROUP.get(_key(joint), ""), 1.0)

    def u(self, frac):
        """Stature fractions -> metres (legs' foot dimensions follow the leg scale)."""
        return np.asarray(frac, dtype=float) * self.unit


def make_skeleton(rng: np.random.Generator, height: float | None = None,
                  mass: float | None = None) -> Skeleton:
    """A random subject: stature 1.50-1.95 m, mass 50-100 kg (BMI 18-31), segment jitter."""
    h = float(rng.uniform(1.50, 1.95)) if height is None else float(height)
    if mass is None:
        lo, hi = max(50.0, 18.0 * h * h), min(100.0, 31.0 * h * h)
        mass = float(rng.uniform(lo, hi))
    if not (1.0 <= h <= 2.3 and 25.0 <= mass <= 200.0):
        raise HdysError(f"humanoid subject: height {h} m / mass {mass} kg outside 1.0-2.3 m, 25-200 kg")
    sc = {g: float(np.clip(1.0 + 0.02 * rng.standard_normal(), 0.95, 1.05))
          for g in ("leg", "trunk", "arm")}
    off = np.zeros((24, 3))
    for j, name in enumerate(reps.SMPL_JOINTS[1:], start=1):
        key = name.replace("right_", "left_")
        o = np.array(_OFF[key], dtype=float) * sc[_GROUP[_key(name)]]
        if name.startswith("right_"):
            o[0] = -o[0]
        off[j] = o
    stature = (ANKLE_H * sc["leg"] - off[JI["left_ankle"], 1] - off[JI["left_knee"], 1]
               - off[JI["left_hip"], 1] + sum(off[JI[n], 1] for n in
                                                ("spine1", "spine2", "spine3", "neck", "head"))
               + HEAD_TOP * sc["trunk"])
    unit = h / stature
    return Skeleton(height=h, mass=float(mass), offsets=off * unit, scales=sc, unit=unit)


def vertex_table(sk: Skeleton) -> list[tuple[str, int, int, np.ndarray]]:
    """Contact vertices: (name, foot index, SMPL joint index of the body, local point (m, Y up))."""
    out = []
    for f, side in enumerate(_SIDE):
        s = 1.0 if f == LEFT else -1.0
        for vname, body, p in _VERTS:
            q = np.array(p, dtype=float) * sk.unit * sk.scales["leg"]
            q[0] *= s
            out.append((f"{side}_{vname}", f, JI[f"{side}_{body}"], q))
    return out
