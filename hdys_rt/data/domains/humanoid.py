"""Simulated domain: a full-body SMPL-like humanoid (24 joints) in MuJoCo, procedural motions.

What a sequence is made of (all per sequence, seeded, deterministic):

1. **Subject and model** (:func:`make_skeleton`, :func:`mjcf`): stature 1.50-1.95 m, mass
   50-100 kg (BMI kept in 18-31); SMPL's 24 joints with segment lengths as fractions of stature
   (de Leva 1996 / Winter proportions, +-2 % jitter per segment group) and segment masses from
   de Leva's mass fractions (trunk split over pelvis / spine1-3 / collars). The MJCF is written
   by this module: capsules, boxes and a sphere with explicit masses (inertia from the
   geometry), a free root on the pelvis, ball joints on the 23 other joints, foot and toe boxes
   that collide with a floor plane, and contact-vertex sites on heels, balls and toes.
2. **Kinematics** (:func:`make_motion`): a motion generator writes foot placements (stance
   intervals, min-jerk swings, heel-strike / heel-rise foot pitch about heel or ball), the
   pelvis orientation, the upper body as smooth parametric joint curves and a vertical
   programme; the pelvis horizontal path then comes from the cart-table (ZMP) boundary-value
   problem ``(g + y'') (x - p) - y x'' = 0`` so the centre of pressure ``p`` follows a
   reference on the feet (flight frames give ``x'' = 0``); pelvis height follows the stance
   leg's reach (walking, standing) or a designed centre-of-mass programme (running: half-sine
   stance forces; jumps: quintic countermovement + ballistic flight). Legs by analytic IK;
   6 fixed-point passes correct the pelvis by the whole-body centre of mass and feed the
   multibody (segment point-mass) ZMP error back into the CoP reference, so swinging legs and
   arms are balanced too (not in running, where the short stances make it diverge).
3. **Dynamics from the simulator** (:func:`simulate`): ``mj_inverse`` (contacts off) on
   qpos and central finite differences (``mj_differentiatePos``) gives the generalised forces.
   The free root's 6-D force is the external wrench: it is distributed over the contact
   vertices in contact (height < 8-28 mm and speed < 0.5-2 m/s, smooth weights; chair-seat
   vertices in sit-to-stand) by non-negative least squares over friction pyramids (mu 0.8)
   with a small minimum-norm term, so every foot's CoP lies in its sole. The vertex forces are
   applied with ``mj_applyFT``; joint torques = ``qfrc_inverse - J^T f`` on the ball joints.
   What no feasible contact force explains is the root residual (``meta["quality"]``). There
   is no root support force. Typical residuals (full plan): walking / turning / side-stepping
   / squats / reaching / sit-stand < 0.5 % BW on average; jumps ~2 % BW; running ~9 % BW and
   ~120 N·m (prescribed swing-leg motion does not conserve angular momentum in flight).

Outputs (Y up, metres, 100 Hz): ``keypoints`` (smpl24 joint centres), ``smpl_pose`` (pelvis
position as ``transl``, root orientation in the Y-up world, 23 local axis-angles in SMPL's
rest frames, which are world-aligned in the T pose), ``torques_smpl`` (3 components per ball
joint in the joint's local SMPL axes x left, y up, z forward; N·m/kg), ``grf`` (per foot force
/ body weight, CoP x, z relative to the pelvis, NaN off the ground).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hdys_rt import representations as reps
from hdys_rt.data.corpus import Sequence, Subject, write_sequence
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)

DOMAIN = "humanoid"
KIND = "sim"
DESCRIPTION = (
    "SMPL-like 24-joint MuJoCo humanoid (own MJCF, de Leva proportions, randomised subjects) "
    "driven by procedural walk / run / turn / side-step / squat / sit-stand / jump / reach / "
    "perturbation motions; torques from mj_inverse, GRF by NNLS split of the root wrench over "
    "foot contact vertices"
)

RATE = 100.0  # Hz
DT = 1.0 / RATE
G = 9.81  # m/s^2
PAD_S = 1.2  # s generated before and after every sequence, then cropped (BVP boundary effects)
MU = 0.8  # friction coefficient of the contact pyramids
RUN_RHO = 0.97  # stance-leg reach used in running
RUN_MARGIN = 0.0  # s: running stance force starts after touchdown, ends before toe-off
ZMP_GAIN = 0.6  # damping of the multibody-ZMP feedback into the CoP reference

MOTIONS: tuple[str, ...] = (
    "walk", "run", "turn", "side_step", "squat", "sit_stand", "jump", "reach", "perturbation",
    "stand",
)

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


# --- MJCF ---------------------------------------------------------------------------------------

def _z(v) -> np.ndarray:
    """Y-up vector(s) -> MuJoCo Z-up."""
    v = np.asarray(v, dtype=float)
    return np.stack([v[..., 0], -v[..., 2], v[..., 1]], axis=-1)


def _fmt(v) -> str:
    return " ".join(f"{x:.6g}" for x in np.ravel(v))


def _geoms(sk: Skeleton, name: str) -> list[str]:
    """Geoms of the body ``name`` (body frame at its joint), as MJCF lines."""
    key, s = _key(name), (-1.0 if name.startswith("right_") else 1.0)
    m = _MASS[key] * sk.mass
    u = sk.unit
    sc = sk.scales

    def child(cname):
        return sk.offsets[JI[cname]]

    def cap(a, b, r, mass=m, extra=""):
        return (f'<geom type="capsule" fromto="{_fmt(_z(a))} {_fmt(_z(b))}" size="{r:.5g}" '
                f'mass="{mass:.6g}"{extra}/>')

    def box(c, half, mass=m, extra=""):
        hx, hy, hz = half
        return (f'<geom type="box" pos="{_fmt(_z(c))}" size="{hx:.5g} {hz:.5g} {hy:.5g}" '
                f'mass="{mass:.6g}"{extra}/>')

    foot_col = ' contype="1" conaffinity="1" friction="0.8 0.02 0.001"'
    side = name.split("_", 1)[0] if s != 0 else ""
    if key == "pelvis":
        return [cap((-0.045 * u, -0.01 * u, 0), (0.045 * u, -0.01 * u, 0), 0.045 * u)]
    if key == "hip":
        return [cap((0, -0.02 * u, 0), child(f"{side}_knee") * 0.96, 0.034 * u * sc["leg"])]
    if key == "knee":
        return [cap((0, -0.01 * u, 0), child(f"{side}_ankle") * 0.94, 0.022 * u * sc["leg"])]
    if key == "ankle":
        L = sc["leg"] * u
        return [box((0, -0.024 * L, 0.5 * (HEEL_Z + BALL_Z) * L),
                    (0.024 * L, 0.015 * L, 0.5 * (BALL_Z - HEEL_Z) * L), extra=foot_col)]
    if key == "foot":
        L = sc["leg"] * u
        return [box((0, -0.006 * L, 0.018 * L), (0.02 * L, 0.006 * L, 0.018 * L), extra=foot_col)]
    if key in ("spine1", "spine2"):
        top = child("spine2" if key == "spine1" else "spine3")
        r = (0.050 if key == "spine1" else 0.055) * u * sc["trunk"]
        return [cap((-0.042 * u, 0.5 * top[1], 0), (0.042 * u, 0.5 * top[1], 0), r)]
    if key == "spine3":
        return [cap((-0.05 * u, 0.06 * u, -0.01 * u), (0.05 * u, 0.06 * u, -0.01 * u),
                    0.055 * u * sc["trunk"])]
    if key == "neck":
        return [cap((0, 0, 0), child("head"), 0.025 * u)]
    if key == "head":
        return [f'<geom type="sphere" pos="{_fmt(_z((0, 0.035 * u, 0.015 * u)))}" '
                f'size="{0.052 * u * sc["trunk"]:.5g}" mass="{m:.6g}"/>']
    if key == "collar":
        return [cap((0, 0, 0), child(f"{side}_shoulder"), 0.025 * u)]
    if key == "shoulder":
        e = child(f"{side}_elbow")
        return [cap(e * 0.06, e * 0.94, 0.022 * u * sc["arm"])]
    if key == "elbow":
        w = child(f"{side}_wrist")
        return [cap(w * 0.03, w * 0.97, 0.018 * u * sc["arm"])]
    if key == "wrist":
        return [box((s * 0.024 * u, 0, 0), (0.024 * u, 0.008 * u, 0.025 * u))]
    if key == "hand":
        return [box((s * 0.03 * u, 0, 0), (0.03 * u, 0.006 * u, 0.022 * u))]
    raise HdysError(f"humanoid MJCF: no geometry for body {name!r}")


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


def mjcf(sk: Skeleton) -> str:
    """MJCF text of the subject's model (MuJoCo Z up; joints named as the SMPL joints)."""
    children = {j: [c for c in range(24) if PARENTS[c] == j] for j in range(24)}
    sites: dict[int, list[str]] = {}
    for vname, _, body, p in vertex_table(sk):
        sites.setdefault(body, []).append(f'<site name="{vname}" pos="{_fmt(_z(p))}" size="0.005"/>')
    lines = [
        '<mujoco model="hdys_humanoid">',
        '  <compiler angle="radian" inertiafromgeom="true"/>',
        '  <option timestep="0.01" gravity="0 0 -9.81"/>',
        '  <default><geom contype="0" conaffinity="0" rgba="0.7 0.6 0.5 1"/></default>',
        '  <worldbody>',
        '    <geom name="floor" type="plane" size="20 20 0.1" contype="1" conaffinity="1"/>',
    ]
    stand_h = sk.u(ANKLE_H * sk.scales["leg"]) + sk.leg_length - sk.offsets[JI["left_hip"], 1]

    def body(j: int, ind: str):
        name = reps.SMPL_JOINTS[j]
        pos = (0.0, 0.0, stand_h) if j == 0 else _z(sk.offsets[j])
        lines.append(f'{ind}<body name="{name}" pos="{_fmt(pos)}">')
        if j == 0:
            lines.append(f'{ind}  <freejoint name="root"/>')
        else:
            lines.append(f'{ind}  <joint name="{name}" type="ball"/>')
        lines.extend(f"{ind}  {g}" for g in _geoms(sk, name))
        lines.extend(f"{ind}  {s}" for s in sites.get(j, []))
        for c in children[j]:
            body(c, ind + "  ")
        lines.append(f"{ind}</body>")

    body(0, "    ")
    lines += ["  </worldbody>", "</mujoco>"]
    return "\n".join(lines) + "\n"


class _Model:
    """Compiled model plus the index maps the pipeline needs."""

    def __init__(self, sk: Skeleton):
        import mujoco

        self.mj = mujoco
        self.m = mujoco.MjModel.from_xml_string(mjcf(sk))
        m = self.m
        self.body = np.array([m.body(n).id for n in reps.SMPL_JOINTS])
        self.dof = np.array([m.jnt_dofadr[m.joint(n).id] for n in reps.SMPL_JOINTS[1:]])
        self.qpos = np.array([m.jnt_qposadr[m.joint(n).id] for n in reps.SMPL_JOINTS[1:]])
        self.mass = float(m.body_mass[1:].sum())
        # body centres of mass in the body frames, Y up
        self.com_local = (C_ZY @ m.body_ipos[self.body].T).T
        self.body_mass = m.body_mass[self.body].copy()


# --- rotations and curves ----------------------------------------------------------------------

def _rot(axis: int, a) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(a.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    R[..., axis, axis] = 1.0
    R[..., i, i] = c
    R[..., j, j] = c
    R[..., i, j] = -s
    R[..., j, i] = s
    return R


def rx(a):
    return _rot(0, a)


def ry(a):
    return _rot(1, a)


def rz(a):
    return _rot(2, a)


def _ss(x):
    """Quintic smoothstep (minimum jerk) on [0, 1], clipped outside."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * x * (x * (x * 6.0 - 15.0) + 10.0)


def _bump(t, t0, rise, hold, fall):
    """0 -> 1 over ``rise`` from ``t0``, hold, 1 -> 0 over ``fall`` (min-jerk edges)."""
    return _ss((t - t0) / max(rise, 1e-3)) * (1.0 - _ss((t - t0 - rise - hold) / max(fall, 1e-3)))


def _noise(rng, t, amp, fmax=0.6, n=3):
    """Smooth random curve: sum of ``n`` sinusoids below ``fmax`` Hz, peak ~amp."""
    out = np.zeros_like(t)
    for _ in range(n):
        f = rng.uniform(0.05, fmax)
        out += np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) * rng.uniform(0.3, 1.0)
    return amp * out / n


def _keys(t, kt, kv):
    """Shape-preserving (PCHIP) interpolation through keyframes, held outside."""
    from scipy.interpolate import PchipInterpolator

    kt, kv = np.asarray(kt, float), np.asarray(kv, float)
    order = np.argsort(kt, kind="stable")
    kt, kv = kt[order], kv[order]
    keep = np.concatenate([[True], np.diff(kt) > 1e-4])
    kt, kv = kt[keep], kv[keep]
    if len(kt) == 1:
        return np.full_like(t, kv[0])
    return PchipInterpolator(kt, kv)(np.clip(t, kt[0], kt[-1]))


def _quintic(t, t0, t1, a, b):
    """Quintic from (pos, vel, acc) ``a`` at t0 to ``b`` at t1, evaluated on t in [t0, t1]."""
    D = t1 - t0
    p0, v0, a0 = a
    p1, v1, a1 = b
    c0, c1, c2 = p0, v0 * D, 0.5 * a0 * D * D
    m = np.array([[1, 1, 1], [3, 4, 5], [6, 12, 20]], dtype=float)
    rhs = np.array([p1 - c0 - c1 - c2, v1 * D - c1 - 2 * c2, a1 * D * D - 2 * c2])
    c3, c4, c5 = np.linalg.solve(m, rhs)
    s = (t - t0) / D
    return c0 + s * (c1 + s * (c2 + s * (c3 + s * (c4 + s * c5))))


def _gauss(x, sigma):
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(x, sigma, axis=0, mode="nearest") if sigma > 0 else x


# --- motion specification ----------------------------------------------------------------------

@dataclass
class _Stance:
    on: float
    off: float
    x: float
    z: float
    yaw: float
    b_on: float = 0.0  # foot pitch at landing (rad, + toes up: heel strike; - toes first)
    b_off: float = 0.0  # foot pitch at lift-off (rad, - heel up)
    hr: float = 0.0  # heel-rise duration before lift-off (s); 0 = gait default
    cop: tuple = (0.1, 0.95)  # CoP reference travels heel -> toe over the stance (fractions)


@dataclass
class _Spec:
    t: np.ndarray  # (T,) s, includes the padding
    stances: list  # [left, right] lists of _Stance
    upper: np.ndarray  # (T, 24, 3, 3) local rotations (legs are overwritten by IK)
    yaw: np.ndarray
    tilt: np.ndarray
    roll: np.ndarray
    vmode: str = "reach"  # "walk" | "reach" | "com" | "seat"
    drop: np.ndarray | None = None  # reach: pelvis lowered below the reach height (m)
    com: np.ndarray | None = None  # com: designed vertical centre of mass (m, relative)
    seat_s: np.ndarray | None = None  # seat: 0 seated .. 1 standing
    rho: float = 0.985  # stance leg reach used (fraction of full leg length)
    tau_ff: float = 0.10  # s from landing to foot flat
    tau_hr: float = 0.45  # heel rise as a fraction of the stance
    clearance: float = 0.0  # swing foot lift (m)
    p_shift: np.ndarray | None = None  # (T, 2) CoP reference offset (m), e.g. weight shifts
    anchor: np.ndarray | None = None  # (T, 2) pelvis x, z anchor (seat)
    anchor_w: np.ndarray | None = None  # (T,) 0..1 weight of the anchor
    seat: dict | None = None
    bc_path: np.ndarray | None = None  # (T, 2) COM boundary values (running)
    body_path: np.ndarray | None = None  # (T, 2) locomotion path: swings blend body-relative
    lift_skew: float = 1.0  # swing lift peaks at r = 0.5 ** (1 / lift_skew) of the swing
    zmp_gain: float = ZMP_GAIN  # multibody-ZMP feedback (0 for running: short stances diverge)
    params: dict = field(default_factory=dict)


def _time(duration: float) -> np.ndarray:
    n = int(round((duration + 2 * PAD_S) * RATE))
    return np.arange(n) * DT - PAD_S


def _left(yaw):
    """Left direction (x, z) of a heading ``yaw`` (rotation about +y; yaw 0 faces +z)."""
    return np.stack([np.cos(yaw), -np.sin(yaw)], axis=-1)


def _fwd(yaw):
    return np.stack([np.sin(yaw), np.cos(yaw)], axis=-1)


def _upper_base(rng, T, sk) -> tuple[np.ndarray, dict]:
    up = np.tile(np.eye(3), (T, 24, 1, 1))
    par = {"abd": rng.uniform(0.05, 0.2), "elbow": rng.uniform(0.1, 0.4)}
    return up, par


def _set_arm(up, side: int, flex, abd, elbow):
    """Shoulder: lower the T-pose arm by (90 deg - abd), then flex forward; elbow hinge."""
    s = 1.0 if side == LEFT else -1.0
    T = up.shape[0]
    flex, abd, elbow = (np.broadcast_to(np.asarray(a, float), (T,)) for a in (flex, abd, elbow))
    up[:, JI[f"{_SIDE[side]}_shoulder"]] = rx(-flex) @ rz(-s * (np.pi / 2 - abd))
    up[:, JI[f"{_SIDE[side]}_elbow"]] = ry(-s * elbow)


def _set_spine(up, flex, lat=0.0, rot=0.0, gaze=0.7):
    """Trunk flexion / lateral bend / axial rotation over spine1-3; neck + head keep the gaze."""
    T = up.shape[0]
    flex, lat, rot = (np.broadcast_to(np.asarray(a, float), (T,)) for a in (flex, lat, rot))
    for name, w in (("spine1", 0.35), ("spine2", 0.35), ("spine3", 0.30)):
        up[:, JI[name]] = ry(w * rot) @ rx(w * flex) @ rz(w * lat)
    for name in ("neck", "head"):
        up[:, JI[name]] = ry(-0.3 * rot) @ rx(-0.5 * gaze * flex) @ rz(-0.4 * lat)


def _stand_stances(x, z, yaw, width, toe_out, b_off=0.0):
    out = []
    for f in (LEFT, RIGHT):
        s = 1.0 if f == LEFT else -1.0
        lx, lz = _left(yaw) * s * width / 2
        out.append([_Stance(-np.inf, np.inf, x + lx, z + lz, yaw + s * toe_out, b_off=b_off,
                            cop=(0.45, 0.45))])
    return out


def _step_event(st: list, t_off, t_on, x, z, yaw, back_after=None, b_on=0.0, b_off=-0.1):
    """Insert a step (and optionally a step back home) into a foot's stance list."""
    home = st[-1]
    new = [_Stance(home.on, t_off, home.x, home.z, home.yaw, home.b_on, b_off, cop=home.cop),
           _Stance(t_on, np.inf, x, z, yaw, b_on=b_on, b_off=b_off, cop=(0.3, 0.6))]
    if back_after is not None:
        t2 = t_on + back_after
        new[1].off = t2
        new.append(_Stance(t2 + (t_on - t_off), np.inf, home.x, home.z, home.yaw, b_on, b_off,
                           cop=home.cop))
    st[-1:] = new


# --- motion generators -------------------------------------------------------------------------

def _locomotion(rng, sk, dur, style):
    t = _time(dur)
    T = len(t)
    k = math.sqrt(sk.leg_length / 0.88)  # dynamic similarity
    backward = style == "walk" and rng.random() < 0.15
    if style == "run":
        v = rng.uniform(2.0, 3.0) * k
        ts = rng.uniform(0.31, 0.38) * k
        stance = ts * rng.uniform(0.7, 0.85)
        width = rng.uniform(0.02, 0.09) * sk.height / 1.75
    elif style == "side_step":
        v = rng.uniform(0.3, 0.7) * k
        ts = rng.uniform(0.45, 0.6) * k
        stance = ts * rng.uniform(1.2, 1.35)
        width = rng.uniform(0.16, 0.24) * sk.height / 1.75
    else:
        slow = style == "turn" and rng.random() < 0.3
        v = (rng.uniform(0.4, 0.7) if slow else rng.uniform(0.8, 1.45)) * k
        if backward:
            v = rng.uniform(0.5, 0.9) * k
        ts = rng.uniform(0.48, 0.6) * k
        stance = ts * rng.uniform(1.14, 1.26)
        width = rng.uniform(0.08, 0.15) * sk.height / 1.75
    toe_out = rng.uniform(0.0, 0.18)
    travel = {"side_step": rng.choice([-1, 1]) * np.pi / 2}.get(style, np.pi if backward else 0.0)
    # speed profile: running is steady (the padding absorbs the start), walks start and stop
    if style == "run":
        t_go, t_stop = t[0] - 1.0, t[-1] + 1.0
        vt = np.full(T, v)
    else:
        t_go = rng.uniform(-0.4, 0.3)
        t_stop = dur - rng.uniform(0.3, 0.9)
        vt = v * _ss((t - t_go) / 0.9) * (1 - _ss((t - t_stop + 0.9) / 0.9))
    yaw0 = rng.uniform(-np.pi, np.pi)
    psi = yaw0 + _noise(rng, t, 0.12, 0.15) * (style != "side_step")
    if style == "turn":
        tc = rng.uniform(0.5, 1.5)
        while tc < dur - 1.5:
            d = rng.uniform(1.0, 2.5)
            psi = psi + rng.choice([-1, 1]) * rng.uniform(np.pi / 4, np.pi) * _ss((t - tc) / d)
            tc += d + rng.uniform(0.3, 1.5)
    chi = psi + travel
    path = np.cumsum(vt[:, None] * _fwd(chi), axis=0) * DT
    path -= path[np.searchsorted(t, 0.0)]
    # steps: alternating feet at a constant cadence while moving
    swing = 2 * ts - stance
    first = int(rng.integers(0, 2))
    stances = []
    for f in (LEFT, RIGHT):
        s = 1.0 if f == LEFT else -1.0
        p0 = path[0] + _left(psi[0]) * s * width / 2
        stances.append([_Stance(-np.inf, np.inf, p0[0], p0[1], psi[0] + s * toe_out)])
    if style == "run":
        b_on, b_off = np.deg2rad(rng.uniform(-6, 12)), -np.deg2rad(rng.uniform(30, 45))
        clearance = rng.uniform(0.15, 0.3) * sk.height / 1.75
        cop = (0.45, 0.95) if b_on < 0.05 else (0.15, 0.95)
    elif style == "side_step":
        b_on, b_off, clearance, cop = 0.0, -np.deg2rad(rng.uniform(4, 12)), 0.05, (0.35, 0.6)
        clearance *= sk.height / 1.75
    elif backward:
        b_on, b_off, clearance, cop = -np.deg2rad(8), np.deg2rad(4), 0.04, (0.8, 0.2)
    else:
        b_on, b_off = np.deg2rad(rng.uniform(10, 22)), -np.deg2rad(rng.uniform(25, 40))
        clearance = rng.uniform(0.03, 0.06) * sk.height / 1.75
        cop = (0.08, 0.97)
    tk, kk = t_go + 0.05, 0
    while tk < t_stop and tk < t[-1]:
        f = (first + kk) % 2
        s = 1.0 if f == LEFT else -1.0
        t_on = tk + swing
        tm = min(t_on + stance / 2, t[-1])
        i = int(np.clip(np.searchsorted(t, tm), 0, T - 1))
        p = path[i] + _left(psi[i]) * s * width / 2
        st = stances[f]
        st[-1].off = tk
        st[-1].b_off = b_off
        st.append(_Stance(t_on, np.inf, p[0], p[1], psi[i] + s * toe_out, b_on, b_off, cop=cop))
        tk += ts
        kk += 1
    for f in (LEFT, RIGHT):  # feet standing still at the ends: CoP reference at mid-foot
        stances[f][0].cop = (0.45, 0.45)
        if not np.isfinite(stances[f][-1].off) and len(stances[f]) > 1:
            stances[f][-1].cop = (cop[0], 0.45)
    # upper body
    up, par = _upper_base(rng, T, sk)
    ons = [s.on for s in stances[LEFT] if np.isfinite(s.on)]
    phase = np.interp(t, ons, 2 * np.pi * np.arange(len(ons))) if len(ons) > 1 else 0 * t
    env = vt / max(v, 1e-6)
    c = np.cos(phase) * env
    if style == "run":
        arm_a, elbow = rng.uniform(0.5, 0.9), rng.uniform(1.3, 1.7)
        lean = rng.uniform(0.08, 0.25)
        pel_a, trunk_a = rng.uniform(0.1, 0.2), rng.uniform(0.1, 0.25)
    elif style == "side_step":
        arm_a, elbow, lean, pel_a, trunk_a = 0.05, par["elbow"], rng.uniform(0, 0.1), 0.0, 0.0
    else:
        arm_a = rng.uniform(0.2, 0.5) * min(v / 1.3, 1.3) * (0.4 if backward else 1.0)
        elbow = par["elbow"] + rng.uniform(0.0, 0.2)
        lean = rng.uniform(-0.02, 0.1)
        pel_a, trunk_a = rng.uniform(0.05, 0.12), rng.uniform(0.05, 0.12)
    _set_arm(up, LEFT, -arm_a * c, par["abd"], elbow - 0.3 * arm_a * c)
    _set_arm(up, RIGHT, arm_a * c, par["abd"], elbow + 0.3 * arm_a * c)
    _set_spine(up, lean * env + _noise(rng, t, 0.03), _noise(rng, t, 0.03), trunk_a * c)
    yaw = psi - pel_a * c
    tilt = rng.uniform(0.05, 0.2) + 0.5 * lean * env + 0 * t
    roll = rng.uniform(0.02, 0.06) * np.sin(phase) * env
    spec = _Spec(t, stances, up, yaw, tilt, roll, clearance=clearance,
                 params={"speed_mps": round(float(v), 3), "step_time_s": round(float(ts), 3),
                         "stance_s": round(float(stance), 3), "backward": bool(backward),
                         "step_width_m": round(float(width), 3)})
    # vertical centre of mass from a designed vertical force (mean 1 BW): half sines when
    # running; walking: per foot a smooth ramp over the double support to a peak P, a valley V
    # at mid-stance and back (the feet's ramps sum to P in double support)
    F = np.zeros(T)
    dsf = max(stance - ts, 0.0) / stance  # double-support fraction of a stance
    if style == "run":
        P = V = 0.5 * np.pi * ts / stance
    else:
        V = rng.uniform(0.6, 0.85) if style != "side_step" else rng.uniform(0.8, 0.92)
        V = 1.0 - (1.0 - V) * min(v / (1.3 * k), 1.2)
        P = (1 - 0.5 * V * (2 * ts - stance) / ts) / ((stance - ts) / ts + 0.5 * (2 * ts - stance) / ts)
    for st in stances:
        for s_ in st:
            if np.isfinite(s_.on) and np.isfinite(s_.off):
                m = (t >= s_.on) & (t <= s_.off)
                u = (t[m] - s_.on) / (s_.off - s_.on)
                if style == "run":  # force window a little inside the kinematic contact
                    ui = np.clip((t[m] - s_.on - RUN_MARGIN) / (s_.off - s_.on - 2 * RUN_MARGIN), 0, 1)
                    F[m] += P * (s_.off - s_.on) / (s_.off - s_.on - 2 * RUN_MARGIN) * np.sin(np.pi * ui)
                else:
                    mid = np.clip((u - dsf) / max(1 - 2 * dsf, 1e-3), 0, 1)
                    F[m] += _ss(u / dsf) * _ss((1 - u) / dsf) * (P - (P - V) * np.sin(np.pi * mid) ** 2)
    if style != "run":  # whole strides only: both feet's stances complete
        ta = max(min(s_.on for s_ in st if np.isfinite(s_.on)) for st in stances if len(st) > 1) \
            if all(len(st) > 1 for st in stances) else np.inf
        tb = min(max(s_.off for s_ in st if np.isfinite(s_.off)) for st in stances) \
            if all(len(st) > 1 for st in stances) else -np.inf
        F = np.where((t >= ta) & (t <= tb), F, 1.0)
    y = np.cumsum(np.cumsum(G * (F - 1.0)) * DT) * DT
    for _ in range(2):  # high-pass: the design's mean force is 1 BW only over whole strides
        y -= _gauss(y, 0.8 * RATE)
    if style != "run":  # fade the oscillation in/out over the first and last whole stances
        if tb > ta:
            fade = min(0.6, max(tb - ta, 0.1) / 2)
            y *= _ss((t - ta) / fade) * (1 - _ss((t - tb + fade) / fade))
        else:
            y[:] = 0.0
    spec.vmode = "com"
    spec.com = y
    spec.rho = 0.985
    spec.params["designed_vertical_force_bw"] = [round(float(F.min()), 3), round(float(F.max()), 3)]
    spec.body_path = path
    if style == "run":
        spec.lift_skew = 0.7
        spec.zmp_gain = 0.0
        spec.tau_ff, spec.tau_hr = 0.05, 0.5
        spec.bc_path = path
        spec.rho = RUN_RHO
    return spec


def _standing_base(rng, sk, dur, width=None, toe_out=None):
    t = _time(dur)
    width = rng.uniform(0.14, 0.26) * sk.height / 1.75 if width is None else width
    toe_out = rng.uniform(0.0, 0.25) if toe_out is None else toe_out
    yaw = rng.uniform(-np.pi, np.pi)
    st = _stand_stances(0.0, 0.0, yaw, width, toe_out)
    up, par = _upper_base(rng, len(t), sk)
    _set_arm(up, LEFT, _noise(rng, t, 0.05), par["abd"], par["elbow"])
    _set_arm(up, RIGHT, _noise(rng, t, 0.05), par["abd"], par["elbow"])
    _set_spine(up, _noise(rng, t, 0.03), _noise(rng, t, 0.02), _noise(rng, t, 0.03))
    spec = _Spec(t, st, up, yaw + 0 * t, rng.uniform(0.05, 0.2) + 0 * t, 0 * t)
    spec.drop = np.full(len(t), rng.uniform(0.0, 0.01) * sk.height)
    spec.params = {"stance_width_m": round(float(width), 3), "toe_out_rad": round(float(toe_out), 3)}
    return spec, par


def _stand(rng, sk, dur):
    spec, _ = _standing_base(rng, sk, dur)
    t = spec.t
    w = spec.params["stance_width_m"]
    side = _left(spec.yaw[0])
    shift = np.zeros(len(t))
    tc = rng.uniform(0.5, 2.0)
    while tc < dur - 1.0 and rng.random() < 0.7:  # occasional weight shifts
        shift += rng.uniform(-0.35, 0.35) * w * _bump(t, tc, rng.uniform(0.5, 1.0), rng.uniform(0.5, 2),
                                                       rng.uniform(0.5, 1.0))
        tc += rng.uniform(2.5, 5.0)
    sway = _noise(rng, t, 0.01, 0.4)
    spec.p_shift = shift[:, None] * side[None] + sway[:, None] * _fwd(spec.yaw[0])[None]
    return spec


def _squat(rng, sk, dur):
    spec, par = _standing_base(rng, sk, dur, width=rng.uniform(0.22, 0.40) * sk.height / 1.75,
                               toe_out=rng.uniform(0.1, 0.45))
    t = spec.t
    drop = np.zeros(len(t))
    tc, depth_max = rng.uniform(0.2, 0.8), 0.0
    while True:
        down, hold, upd = rng.uniform(0.8, 1.6), rng.uniform(0.0, 0.6), rng.uniform(0.8, 1.5)
        if tc + down + hold + upd > dur - 0.2:
            break
        depth = rng.uniform(0.10, 0.25) * sk.height
        drop += depth * _bump(t, tc, down, hold, upd)
        depth_max = max(depth_max, depth)
        tc += down + hold + upd + rng.uniform(0.3, 1.2)
    rel = drop / (0.25 * sk.height)
    flex = rng.uniform(0.4, 0.9) * rel
    _set_spine(spec.upper, flex + _noise(rng, t, 0.02), 0.0, _noise(rng, t, 0.03))
    if rng.random() < 0.5:  # arms forward for balance
        for f in (LEFT, RIGHT):
            _set_arm(spec.upper, f, rng.uniform(1.0, 1.5) * np.minimum(rel * 1.5, 1.0),
                     par["abd"], par["elbow"])
    spec.drop = spec.drop + drop
    spec.tilt = spec.tilt + 0.3 * flex
    spec.params["max_depth_m"] = round(float(depth_max), 3)
    return spec


def _sit_stand(rng, sk, dur):
    spec, par = _standing_base(rng, sk, dur, width=rng.uniform(0.16, 0.30) * sk.height / 1.75,
                               toe_out=rng.uniform(0.0, 0.25))
    t = spec.t
    yaw = spec.yaw[0]
    seat_h = rng.uniform(0.24, 0.28) * sk.height
    back = rng.uniform(0.95, 1.1) * (-sk.offsets[JI["left_knee"], 1])  # ~ thigh length behind feet
    seat_xz = -_fwd(yaw) * back
    s = np.zeros(len(t))
    lean = np.zeros(len(t))
    tc = rng.uniform(0.3, 1.2)
    while True:
        rise, stand, down, sit = (rng.uniform(1.0, 1.8), rng.uniform(0.8, 2.0),
                                  rng.uniform(1.2, 2.0), rng.uniform(0.6, 1.4))
        if tc + rise + stand + down > dur + PAD_S - 0.2:
            break
        s += _bump(t, tc, rise, stand, down)
        amp = rng.uniform(0.45, 0.8)
        lean += amp * (_bump(t, tc - 0.35, 0.5 + 0.15 * rise, 0.0, 0.6 * rise)
                       + _bump(t, tc + rise + stand + 0.2 * down, 0.5 * down, 0.0, 0.6 * down))
        tc += rise + stand + down + sit
    _set_spine(spec.upper, lean + _noise(rng, t, 0.02), 0.0, _noise(rng, t, 0.03))
    for f in (LEFT, RIGHT):
        _set_arm(spec.upper, f, 0.3 * (1 - s) + 0.4 * lean, par["abd"], par["elbow"] + 0.5 * (1 - s))
    spec.tilt = spec.tilt + 0.3 * lean - 0.25 * (1 - s)
    spec.vmode = "seat"
    spec.seat_s = s
    spec.anchor = np.tile(seat_xz, (len(t), 1))
    spec.anchor_w = 1.0 - _ss(s / 0.35)
    hip_above = 0.05 * sk.height
    spec.seat = {"height": seat_h, "xz": seat_xz, "yaw": yaw,
                 "pelvis_y": seat_h + hip_above - sk.offsets[JI["left_hip"], 1]}
    spec.params.update({"seat_height_m": round(float(seat_h), 3)})
    return spec


def _jump(rng, sk, dur):
    spec, par = _standing_base(rng, sk, dur, width=rng.uniform(0.16, 0.30) * sk.height / 1.75,
                               toe_out=rng.uniform(0.0, 0.25))
    t = spec.t
    T = len(t)
    yaw = spec.yaw[0]
    com = np.zeros(T)
    flex = np.zeros(T)
    arm = np.zeros(T)
    st = spec.stances
    tc = rng.uniform(0.3, 1.0)
    n_jumps, dist_tot = 0, 0.0
    lift_c = 0.0
    while True:
        dcm, dprop = rng.uniform(0.35, 0.6), rng.uniform(0.22, 0.35)
        flight = rng.uniform(0.25, 0.5)
        dland, drec = rng.uniform(0.18, 0.3), rng.uniform(0.5, 0.9)
        t1, t2 = tc + dcm, tc + dcm + dprop
        t3 = t2 + flight
        t4, t5 = t3 + dland, t3 + dland + drec
        if t5 > dur - 0.1:
            break
        depth = rng.uniform(0.05, 0.12) * sk.height
        ldepth = rng.uniform(0.03, 0.10) * sk.height
        rise = rng.uniform(0.02, 0.04) * sk.height
        v0 = 0.5 * G * flight
        a_b, a_l = rng.uniform(0.6, 1.2) * G, rng.uniform(1.0, 2.0) * G
        dist = rng.uniform(0.2, 0.7) * sk.height / 1.75 if rng.random() < 0.5 else 0.0
        for (ta, tb, a, b) in ((tc, t1, (0, 0, 0), (-depth, 0, a_b)),
                               (t1, t2, (-depth, 0, a_b), (rise, v0, -G)),
                               (t3, t4, (rise, -v0, -G), (-ldepth, 0, a_l)),
                               (t4, t5, (-ldepth, 0, a_l), (0, 0, 0))):
            m = (t >= ta) & (t < tb)
            com[m] = _quintic(t[m], ta, tb, a, b)
        m = (t >= t2) & (t < t3)
        tau = t[m] - t2
        com[m] = rise + v0 * tau - 0.5 * G * tau * tau
        fwd = _fwd(yaw) * dist
        for f in (LEFT, RIGHT):
            home = st[f][-1]
            home.off, home.b_off, home.hr = t2, -np.deg2rad(rng.uniform(28, 42)), 0.7 * dprop
            st[f].append(_Stance(t3, np.inf, home.x + fwd[0], home.z + fwd[1], home.yaw,
                                 b_on=-np.deg2rad(rng.uniform(8, 22)), cop=(0.45, 0.45)))
        flex += rng.uniform(0.2, 0.5) * (_keys(t, [tc, t1, t2 + 0.05, t3, t4, t5],
                                               [0, 1, 0.1, 0.1, 0.6, 0]))
        arm += _keys(t, [tc, t1, t2, t3, t4 + 0.1, t5],
                     [0, -rng.uniform(0.5, 0.9), rng.uniform(1.5, 2.6), 1.2, 0.4, 0])
        lift_c = max(lift_c, rng.uniform(0.3, 0.6) * 0.125 * G * flight * flight)
        n_jumps += 1
        dist_tot += dist
        tc = t5 + rng.uniform(0.3, 1.2)
    if n_jumps == 0:
        raise HdysError(f"jump: duration {dur} s is too short for one jump; use >= 2.5 s")
    _set_spine(spec.upper, flex, 0.0, _noise(rng, t, 0.03))
    for f in (LEFT, RIGHT):
        _set_arm(spec.upper, f, arm, par["abd"], par["elbow"] + 0.2 * np.abs(arm))
    spec.tilt = spec.tilt + 0.3 * flex
    spec.vmode = "com"
    spec.com = com
    spec.rho = 0.99
    spec.clearance = lift_c
    spec.tau_ff = 0.12
    spec.params.update({"jumps": n_jumps, "forward_distance_m": round(float(dist_tot), 3)})
    return spec


def _reach(rng, sk, dur):
    spec, par = _standing_base(rng, sk, dur)
    t = spec.t
    T = len(t)
    flex, lat, rot, drop = (np.zeros(T) for _ in range(4))
    arms = {f: [np.zeros(T), np.zeros(T), np.zeros(T)] for f in (LEFT, RIGHT)}
    tc = rng.uniform(0.2, 0.8)
    while True:
        go, hold, back = rng.uniform(0.5, 1.0), rng.uniform(0.2, 1.0), rng.uniform(0.5, 1.0)
        if tc + go + hold + back > dur - 0.1:
            break
        b = _bump(t, tc, go, hold, back)
        elev = rng.uniform(-1.1, 1.1)  # target elevation (rad): low ... high
        azim = rng.uniform(-1.4, 1.4)  # target azimuth, + to the left
        low = max(0.0, -elev)
        flex += b * (0.9 * low + rng.uniform(0.0, 0.2))
        drop += b * rng.uniform(0.0, 0.08) * low * sk.height
        rot += b * 0.35 * azim
        lat += b * 0.15 * azim * (rng.random() < 0.5)
        which = rng.choice(["left", "right", "both"], p=[0.4, 0.4, 0.2])
        for f in (LEFT, RIGHT):
            if which != "both" and which != _SIDE[f]:
                continue
            side_az = azim if f == LEFT else -azim
            arms[f][0] += b * (np.pi / 2 + elev - low * 0.9) * np.cos(min(abs(side_az), 1.4) * (side_az > 0))
            arms[f][1] += b * max(side_az, 0.0) * 0.9
            arms[f][2] -= b * par["elbow"] * 0.8
        tc += go + hold + back + rng.uniform(0.2, 0.8)
    _set_spine(spec.upper, flex, lat, rot)
    for f in (LEFT, RIGHT):
        _set_arm(spec.upper, f, arms[f][0], par["abd"] + arms[f][1], par["elbow"] + arms[f][2])
    spec.drop = spec.drop + drop
    spec.tilt = spec.tilt + 0.35 * flex
    return spec


def _perturbation(rng, sk, dur):
    spec, par = _standing_base(rng, sk, dur)
    t = spec.t
    T = len(t)
    flex, lat, rot, drop = (np.zeros(T) for _ in range(4))
    arm_f = {f: np.zeros(T) for f in (LEFT, RIGHT)}
    arm_a = {f: np.zeros(T) for f in (LEFT, RIGHT)}
    kinds = []
    tc = rng.uniform(0.3, 1.0)
    while tc < dur - 1.2:
        kind = rng.choice(["trunk", "arms", "dip", "step"], p=[0.35, 0.25, 0.15, 0.25])
        rise, hold, fall = rng.uniform(0.15, 0.3), rng.uniform(0.0, 0.3), rng.uniform(0.5, 1.0)
        b = _bump(t, tc, rise, hold, fall)
        if kind == "trunk":
            axis = rng.integers(0, 3)
            amp = rng.uniform(0.2, 0.5) * rng.choice([-1, 1])
            (flex, lat, rot)[axis][:] += b * (amp if axis else abs(amp) * rng.choice([-0.5, 1]))
        elif kind == "arms":
            for f in (LEFT, RIGHT):
                if rng.random() < 0.7:
                    arm_a[f] += b * rng.uniform(0.8, 1.8)
                    arm_f[f] += b * rng.uniform(-0.5, 1.2)
        elif kind == "dip":
            drop += b * rng.uniform(0.03, 0.07) * sk.height
        elif kind == "step" and tc < dur - 2.5:
            f = int(rng.integers(0, 2))
            ang = spec.yaw[0] + rng.uniform(-np.pi, np.pi)
            d = rng.uniform(0.15, 0.35) * sk.height / 1.75
            home = spec.stances[f][-1]
            sw = rng.uniform(0.3, 0.45)
            x, z = np.array([home.x, home.z]) + _fwd(ang) * d
            _step_event(spec.stances[f], tc + 0.1, tc + 0.1 + sw, x, z, home.yaw,
                        back_after=rng.uniform(0.6, 1.2))
            flex += b * 0.3 * np.cos(ang - spec.yaw[0])
            lat += b * 0.15 * np.sin(ang - spec.yaw[0])
            fall = max(fall, 2.0)
        kinds.append(str(kind))
        tc += rise + hold + fall + rng.uniform(0.3, 1.0)
    _set_spine(spec.upper, flex, lat, rot)
    for f in (LEFT, RIGHT):
        _set_arm(spec.upper, f, arm_f[f] + _noise(rng, t, 0.05), par["abd"] + arm_a[f], par["elbow"])
    spec.drop = spec.drop + drop
    spec.tilt = spec.tilt + 0.3 * np.maximum(flex, 0)
    spec.tau_ff, spec.clearance = 0.08, 0.04 * sk.height / 1.75
    spec.params["events"] = kinds
    return spec


_GENERATORS = {
    "walk": lambda r, s, d: _locomotion(r, s, d, "walk"),
    "run": lambda r, s, d: _locomotion(r, s, d, "run"),
    "turn": lambda r, s, d: _locomotion(r, s, d, "turn"),
    "side_step": lambda r, s, d: _locomotion(r, s, d, "side_step"),
    "squat": _squat, "sit_stand": _sit_stand, "jump": _jump, "reach": _reach,
    "perturbation": _perturbation, "stand": _stand,
}


# --- kinematics solver -------------------------------------------------------------------------

@dataclass
class Motion:
    """Kinematics of one sequence (cropped, Y up).

    ``local[:, 0]`` is the root's world rotation, ``local[:, j]`` joint j's rotation relative to
    its parent; ``joints`` are the 24 joint centres (m) and ``world`` their world rotations.
    """

    kind: str
    t: np.ndarray  # (T,) s
    root: np.ndarray  # (T, 3) pelvis position (m)
    local: np.ndarray  # (T, 24, 3, 3)
    joints: np.ndarray  # (T, 24, 3)
    world: np.ndarray  # (T, 24, 3, 3)
    com: np.ndarray  # (T, 3)
    verts: np.ndarray  # (T, V, 3) contact vertex positions
    seat: dict | None
    params: dict
    pad: tuple = (0, 0)  # frames of padding still attached (dynamics needs 2 each side)


def fk(sk: Skeleton, root: np.ndarray, local: np.ndarray):
    """Forward kinematics. root (T, 3), local (T, 24, 3, 3) -> joints (T, 24, 3), world rots."""
    T = root.shape[0]
    W = np.empty((T, 24, 3, 3))
    P = np.empty((T, 24, 3))
    W[:, 0], P[:, 0] = local[:, 0], root
    for j in range(1, 24):
        p = PARENTS[j]
        W[:, j] = W[:, p] @ local[:, j]
        P[:, j] = P[:, p] + W[:, p] @ sk.offsets[j]
    return P, W


def _feet(spec: _Spec, sk: Skeleton):
    """Per foot: ankle target (T,3), foot rotation (T,3,3), toe angle, stance, load ramp, CoP ref."""
    t = spec.t
    T = len(t)
    L = sk.unit * sk.scales["leg"]
    heel = np.array([0.0, -ANKLE_H * L, HEEL_Z * L])
    ball = np.array([0.0, -ANKLE_H * L, BALL_Z * L])
    toe = np.array([0.0, -ANKLE_H * L, (BALL_Z + 0.03) * L])
    out = []
    for f in (LEFT, RIGHT):
        st = spec.stances[f]
        other = spec.stances[1 - f]
        o_offs = [s.off for s in other if np.isfinite(s.off)]
        o_ons = [s.on for s in other if np.isfinite(s.on)]
        x, z, yaw = np.zeros(T), np.zeros(T), np.zeros(T)
        lift, g, u = np.zeros(T), np.zeros(T), np.full(T, 0.5)
        stance = np.zeros(T, bool)
        cop_a, cop_b = np.zeros(T), np.zeros(T)
        kt, kv = [t[0]], [0.0]
        for k, s in enumerate(st):
            m = (t >= s.on) & (t < s.off)
            x[m], z[m], yaw[m] = s.x, s.z, s.yaw
            stance[m] = True
            dur = s.off - s.on
            if np.isfinite(dur):
                u[m] = (t[m] - s.on) / dur
            elif np.isfinite(s.on):
                u[m] = np.clip((t[m] - s.on) / 0.6, 0, 1)
            cop_a[m], cop_b[m] = s.cop
            tau_on = min([o - s.on for o in o_offs if s.on < o < s.off] or [0.03])
            tau_off = min([s.off - o for o in o_ons if s.on < o < s.off] or [0.03])
            g[m] = (_ss((t[m] - s.on) / max(tau_on, 0.03)) if np.isfinite(s.on) else 1.0) * \
                   (_ss((s.off - t[m]) / max(tau_off, 0.03)) if np.isfinite(s.off) else 1.0)
            if np.isfinite(s.on):
                kt += [s.on, s.on + min(spec.tau_ff, 0.4 * dur)]
                kv += [s.b_on, 0.0]
            if np.isfinite(s.off):
                hr = s.hr if s.hr > 0 else spec.tau_hr * (dur if np.isfinite(dur) else 0.5)
                kt += [s.off - min(hr, 0.6 * dur), s.off]
                kv += [0.0, s.b_off]
            if k + 1 < len(st):
                n = st[k + 1]
                m = (t >= s.off) & (t < n.on)
                r = (t[m] - s.off) / (n.on - s.off)
                e = _ss(r)
                x[m] = s.x + e * (n.x - s.x)
                z[m] = s.z + e * (n.z - s.z)
                if spec.body_path is not None:  # blend towards a body-relative swing
                    bp = spec.body_path
                    i_off = int(np.clip(np.searchsorted(t, s.off), 0, T - 1))
                    i_on = int(np.clip(np.searchsorted(t, n.on), 0, T - 1))
                    rel0 = np.array([s.x, s.z]) - bp[i_off]
                    rel1 = np.array([n.x, n.z]) - bp[i_on]
                    rel = bp[m] + rel0 + e[:, None] * (rel1 - rel0)
                    beta = np.sin(np.pi * r) ** 2
                    x[m] += beta * (rel[:, 0] - x[m])
                    z[m] += beta * (rel[:, 1] - z[m])
                yaw[m] = s.yaw + e * (n.yaw - s.yaw)
                lift[m] = np.sin(np.pi * r ** spec.lift_skew) ** 2 * (
                    spec.clearance if n.on - s.off > 0.2 else 0.3 * spec.clearance)
                sw = n.on - s.off
                kt += [s.off + 0.45 * sw]
                kv += [0.2 * s.b_off + 0.3 * n.b_on]
                if n.b_on > 0:
                    kt += [n.on - 0.15 * sw]
                    kv += [n.b_on]
        pitch = _keys(t, kt, kv)
        Ry, Rf = ry(yaw), ry(yaw) @ rx(-pitch)
        d = np.deg2rad(3.0)
        sp = _ss((pitch + d) / (2 * d))[:, None]  # 1: pivot on heel, 0: pivot on ball
        ploc = sp * heel + (1 - sp) * ball
        flat = np.stack([x, ANKLE_H * L + lift, z], axis=1)
        ankle = flat + np.einsum("tij,tj->ti", Ry, ploc) - np.einsum("tij,tj->ti", Rf, ploc)
        toe_ang = pitch * (1 - sp[:, 0])
        cu = cop_a + (cop_b - cop_a) * u
        cloc = heel + (toe - heel) * cu[:, None]
        cloc[:, 1] = 0.0
        cop = np.stack([x, 0 * x, z], axis=1) + np.einsum("tij,tj->ti", Ry, cloc)
        out.append({"ankle": ankle, "R": Rf, "toe": toe_ang, "stance": stance, "g": g * stance,
                    "cop": cop, "pitch": pitch})
    return out


def _leg_ik(sk, root, Rp, foot, side):
    """Analytic leg IK (hip ball, knee hinge about x, ankle ball) -> local rots of hip/knee/ankle."""
    name = _SIDE[side]
    o = sk.offsets[JI[f"{name}_hip"]]
    l1, l2 = -sk.offsets[JI[f"{name}_knee"], 1], -sk.offsets[JI[f"{name}_ankle"], 1]
    hip = root + Rp @ o
    d = foot["ankle"] - hip
    L = np.linalg.norm(d, axis=1)
    # soft saturation near full extension: the knee angle stays a smooth function of time
    L0, L1 = 0.98 * (l1 + l2), 0.9998 * (l1 + l2)
    Lc = np.where(L > L0, L0 + (L1 - L0) * np.tanh((L - L0) / (L1 - L0)), L)
    Lc = np.maximum(Lc, 0.25 * (l1 + l2))
    ck = np.clip((l1 * l1 + l2 * l2 - Lc * Lc) / (2 * l1 * l2), -1, 1)
    th = np.pi - np.arccos(ck)
    vloc = np.stack([0 * th, -l1 - l2 * np.cos(th), -l2 * np.sin(th)], axis=1)
    uloc = vloc / np.linalg.norm(vloc, axis=1, keepdims=True)
    xloc = np.tile([1.0, 0.0, 0.0], (len(th), 1))
    uw = d / np.maximum(L, 1e-9)[:, None]
    hint = 0.6 * foot["R"][:, :, 0] + 0.4 * Rp[:, :, 0]
    hint[:, 1] = 0.0
    xw = hint - np.sum(hint * uw, axis=1, keepdims=True) * uw
    xw /= np.linalg.norm(xw, axis=1, keepdims=True)
    Bw = np.stack([uw, xw, np.cross(uw, xw)], axis=2)
    Bl = np.stack([uloc, xloc, np.cross(uloc, xloc)], axis=2)
    Rthigh = Bw @ np.swapaxes(Bl, 1, 2)
    Rshank = Rthigh @ rx(th)
    hip_l = np.swapaxes(Rp, 1, 2) @ Rthigh
    ankle_l = np.swapaxes(Rshank, 1, 2) @ foot["R"]
    return hip_l, rx(th), ankle_l, rx(foot["toe"])


def _reach_height(sk, root_xz, Rp, foot, side, rho):
    """Pelvis height that puts this foot's ankle at ``rho`` x leg length from the hip."""
    o = Rp @ sk.offsets[JI[f"{_SIDE[side]}_hip"]]
    hx, hz = root_xz[:, 0] + o[:, 0], root_xz[:, 1] + o[:, 2]
    a = foot["ankle"]
    dxz2 = (hx - a[:, 0]) ** 2 + (hz - a[:, 2]) ** 2
    Lr = rho * sk.leg_length
    return a[:, 1] + np.sqrt(np.maximum(Lr * Lr - dxz2, (0.3 * Lr) ** 2)) - o[:, 1]


def _zmp_bvp(p, h, ydd, c0, c1, anchor=None, aw=None):
    """Solve (g + y'') (c - p) - h c'' = 0 (tridiagonal), c fixed at both ends."""
    from scipy.linalg import solve_banded

    T = len(p)
    k = h / DT ** 2
    gy = np.maximum(G + ydd, 0.0)
    diag = gy + 2 * k
    off = -k
    rhs = gy * p
    if anchor is not None:
        diag = (1 - aw) * diag + aw * G
        off = (1 - aw) * off
        rhs = (1 - aw) * rhs + aw * G * anchor
    lo, upp = off.copy(), off.copy()
    diag = diag.copy()
    diag[[0, -1]] = 1.0
    lo[[0, -1]] = 0.0
    upp[[0, -1]] = 0.0
    rhs = rhs.copy()
    rhs[0], rhs[-1] = c0, c1
    ab = np.zeros((3, T))
    ab[0, 1:] = upp[:-1]
    ab[1] = diag
    ab[2, :-1] = lo[1:]
    return solve_banded((1, 1), ab, rhs)


def _assemble(sk, model, spec, root, Rp, feet):
    local = spec.upper.copy()
    local[:, 0] = Rp
    for f in (LEFT, RIGHT):
        h, k, a, toe = _leg_ik(sk, root, Rp, feet[f], f)
        n = _SIDE[f]
        local[:, JI[f"{n}_hip"]], local[:, JI[f"{n}_knee"]] = h, k
        local[:, JI[f"{n}_ankle"]], local[:, JI[f"{n}_foot"]] = a, toe
    P, W = fk(sk, root, local)
    com = np.einsum("j,tjk->tk", model.body_mass,
                    P + np.einsum("tjab,jb->tja", W, model.com_local)) / model.mass
    return local, P, W, com


def make_motion(kind: str, seed: int, duration: float, sk: Skeleton, model: _Model | None = None,
                iters: int = 6) -> Motion:
    """Generate the kinematics of one ``kind`` motion (see :data:`MOTIONS`), seeded."""
    if kind not in _GENERATORS:
        raise HdysError(f"humanoid: unknown motion {kind!r}; expected one of {list(MOTIONS)}")
    if duration < 1.0:
        raise HdysError(f"humanoid: duration {duration} s is too short; use >= 1 s")
    rng = np.random.default_rng(seed)
    model = model or _Model(sk)
    spec = _GENERATORS[kind](rng, sk, float(duration))
    t = spec.t
    T = len(t)
    feet = _feet(spec, sk)
    Rp = ry(spec.yaw) @ rx(spec.tilt) @ rz(spec.roll)
    wsum = feet[0]["g"] + feet[1]["g"]
    ok = wsum > 1e-6
    p = (feet[0]["cop"] * feet[0]["g"][:, None] + feet[1]["cop"] * feet[1]["g"][:, None])
    p = p[:, [0, 2]] / np.where(ok, wsum, 1.0)[:, None]
    for c in range(2):
        p[:, c] = np.interp(t, t[ok], p[ok, c]) if ok.any() else 0.0
    if spec.p_shift is not None:
        p = p + spec.p_shift
    stance_any = feet[0]["stance"] | feet[1]["stance"]
    root = np.zeros((T, 3))
    root[:, [0, 2]] = _gauss(p, 10)
    off = np.zeros((T, 3))
    off[:, 1] = 0.05 * sk.height
    p_cmd = p.copy()
    for it in range(iters):
        xz = root[:, [0, 2]]
        reach = [np.where(feet[f]["stance"], _reach_height(sk, xz, Rp, feet[f], f, spec.rho), np.inf)
                 for f in (LEFT, RIGHT)]
        yr = np.minimum(*reach)
        fin = np.isfinite(yr)
        if not fin.any():
            raise HdysError(f"humanoid {kind}: no foot is ever on the ground")
        yr_f = np.interp(t, t[fin], yr[fin])
        if spec.vmode == "walk":
            cap = np.minimum(*[np.where(feet[f]["stance"],
                                        _reach_height(sk, xz, Rp, feet[f], f, 0.99), np.inf)
                               for f in (LEFT, RIGHT)])
            cap = np.interp(t, t[np.isfinite(cap)], cap[np.isfinite(cap)])
            y = _gauss(np.minimum(_gauss(yr_f, 5), cap), 2) - spec.drop
        elif spec.vmode == "reach":
            y = _gauss(yr_f, 2) - spec.drop
        elif spec.vmode == "seat":
            ys = spec.seat["pelvis_y"]
            y = ys + spec.seat_s * (_gauss(yr_f, 2) - spec.drop - ys)
        else:  # "com": designed centre-of-mass programme, shifted to respect the stance reach
            base = spec.com - off[:, 1]
            # slowly varying shift below the stance reach margin: running minimum over +-1 s,
            # Gaussian-smoothed (sigma 0.3 s < window/3 keeps it below the margin)
            from scipy.ndimage import minimum_filter1d

            inner = (t >= -0.1) & (t <= t[-1] - PAD_S + 0.1)  # the padding may overreach
            marg = np.where(fin & stance_any & inner, yr - base, np.inf)
            env_ = minimum_filter1d(marg, size=int(2 * RATE) + 1, mode="nearest")
            okm = np.isfinite(env_)
            env_ = np.interp(t, t[okm], env_[okm])
            shift = _gauss(env_, 0.3 * RATE)
            y = base + shift
        root[:, 1] = y
        comy = y + off[:, 1]
        ydd = np.gradient(np.gradient(comy, DT), DT)
        if spec.vmode == "com":  # the design is exact: avoid differentiating the shifted copy
            ydd = np.gradient(np.gradient(spec.com, DT), DT)
        c = np.zeros((T, 2))
        for a in range(2):
            if spec.bc_path is not None:
                c0, c1 = spec.bc_path[0, a], spec.bc_path[-1, a]
            else:
                c0, c1 = p[0, a], p[-1, a]
            anc = None if spec.anchor is None else spec.anchor[:, a] + off[:, [0, 2][a]]
            c[:, a] = _zmp_bvp(p_cmd[:, a], comy, ydd, c0, c1, anc, spec.anchor_w)
        root[:, [0, 2]] = c - off[:, [0, 2]]
        local, P, W, com = _assemble(sk, model, spec, root, Rp, feet)
        off = com - root
        # multibody ZMP (segment point masses): feed its error back into the BVP's CoP input,
        # so swinging legs and arms are balanced too
        seg = P + np.einsum("tjab,jb->tja", W, model.com_local)
        acc = np.gradient(np.gradient(seg, DT, axis=0), DT, axis=0)
        mw = model.body_mass[None, :]
        den = np.sum(mw * (acc[..., 1] + G), axis=1)
        ok_z = stance_any & (den > 0.3 * model.mass * G)
        for a, ax in ((0, 0), (1, 2)):
            num = np.sum(mw * ((acc[..., 1] + G) * seg[..., ax] - seg[..., 1] * acc[..., ax]), axis=1)
            err = np.where(ok_z, num / np.where(ok_z, den, 1.0) - p[:, a], 0.0)
            p_cmd[:, a] -= spec.zmp_gain * _gauss(np.clip(err, -0.2, 0.2), 1.0)
            log.debug("iter %d axis %d zmp err rms %.4f max %.4f", it, a, np.sqrt(np.mean(err[ok_z] ** 2)), np.abs(err).max())
    # contact vertices
    vt = vertex_table(sk)
    verts = np.stack([P[:, j] + W[:, j] @ q for _, _, j, q in vt], axis=1)
    i0 = int(round(PAD_S * RATE)) - 2
    i1 = T - int(round(PAD_S * RATE)) + 2
    crop = slice(i0, i1)
    seat = None
    if spec.seat is not None:
        seat = dict(spec.seat)
        seat["pelvis_height"] = root[crop, 1].copy()
    params = dict(spec.params)
    params["flat_foot_pitch_range_rad"] = [round(float(min(f["pitch"].min() for f in feet)), 3),
                                           round(float(max(f["pitch"].max() for f in feet)), 3)]
    return Motion(kind, t[crop] - t[i0 + 2], root[crop], local[crop], P[crop], W[crop], com[crop],
                  verts[crop], seat, params, pad=(2, 2))


# --- dynamics ----------------------------------------------------------------------------------

def _quat(R: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> MuJoCo quaternions (w, x, y, z), sign-continuous in time."""
    from scipy.spatial.transform import Rotation

    q = Rotation.from_matrix(R.reshape(-1, 3, 3)).as_quat()[:, [3, 0, 1, 2]].reshape(R.shape[:-2] + (4,))
    flip = np.cumsum(np.sum(q[1:] * q[:-1], axis=-1) < 0, axis=0) % 2  # time is axis 0
    q[1:][flip.astype(bool)] *= -1
    return q


def to_qpos(model: _Model, mo: Motion) -> np.ndarray:
    """MuJoCo qpos (T, nq) of a motion (Y up -> Z up)."""
    T = len(mo.root)
    q = np.zeros((T, model.m.nq))
    Rz = C_ZY.T @ mo.local @ C_ZY  # same rotations expressed in the Z-up frames
    q[:, 0:3] = (C_ZY.T @ mo.root.T).T
    q[:, 3:7] = _quat(Rz[:, 0])
    quats = _quat(Rz[:, 1:])  # (T, 23, 4)
    for j in range(23):
        q[:, model.qpos[j]:model.qpos[j] + 4] = quats[:, j]
    return q


def _contact_weights(mo: Motion, vt) -> np.ndarray:
    """(T, V) contact confidence 0..1 of each foot vertex from its height and speed."""
    h = mo.verts[..., 1]
    v = np.linalg.norm(np.gradient(mo.verts, DT, axis=0), axis=-1)
    return (1 - _ss((h - 0.008) / 0.02)) * (1 - _ss((v - 0.5) / 1.5))


@dataclass
class SimResult:
    torques: np.ndarray  # (T, 69) N·m/kg, SMPL_TORQUE_CHANNELS order
    grf: np.ndarray  # (T, 10) GRF_CHANNELS order
    residual_force: np.ndarray  # (T,) N
    residual_moment: np.ndarray  # (T,) N·m
    seat_force: np.ndarray  # (T,) N (vertical, chair)
    frames: slice


def simulate(model: _Model, sk: Skeleton, mo: Motion) -> SimResult:
    """mj_inverse + contact distribution over the (padded) motion; returns the cropped result."""
    from scipy.optimize import nnls

    mj, m = model.mj, model.m
    m.opt.disableflags |= int(mj.mjtDisableBit.mjDSBL_CONTACT)
    d = mj.MjData(m)
    qpos = to_qpos(model, mo)
    T = len(qpos)
    nv = m.nv
    dq = np.zeros((T - 1, nv))
    for i in range(T - 1):
        mj.mj_differentiatePos(m, dq[i], DT, qpos[i], qpos[i + 1])
    qvel = np.zeros((T, nv))
    qacc = np.zeros((T, nv))
    qvel[1:-1] = 0.5 * (dq[1:] + dq[:-1])
    qacc[1:-1] = (dq[1:] - dq[:-1]) / DT
    vt = vertex_table(sk)
    wts = _contact_weights(mo, vt)
    V = len(vt)
    vbody = [model.body[j] for _, _, j, _ in vt]
    vfoot = np.array([f for _, f, _, _ in vt])
    vpos = np.einsum("ij,tvj->tvi", C_ZY.T, mo.verts)  # Z up
    # chair seat: two rear vertices on the pelvis, two front ones on the thighs
    seat_pts, seat_w, seat_body = None, None, []
    if mo.seat is not None:
        s = mo.seat
        fw, lf = _fwd(s["yaw"]), _left(s["yaw"])
        pts = []
        for along, body in ((-0.02, "pelvis"), (0.09, "hip")):
            for side in (1.0, -1.0):
                xz = s["xz"] + fw * along * sk.height + lf * side * 0.06 * sk.height
                pts.append((xz[0], s["height"], xz[1]))
                seat_body.append(model.body[JI[body if body == "pelvis" else
                                               f"{'left' if side > 0 else 'right'}_hip"]])
        seat_pts = (C_ZY.T @ np.array(pts).T).T
        dy = s["pelvis_height"] - s["pelvis_y"]
        seat_w = 1 - _ss((dy - 0.005) / 0.015)
    basis = np.array([[MU, 0, 1], [-MU, 0, 1], [0, MU, 1], [0, -MU, 1]], dtype=float)  # Z up
    eps = 1e-2
    out_tau = np.zeros((T, 69))
    grf = np.full((T, 10), np.nan)
    rF, rM, seatF = np.zeros(T), np.zeros(T), np.zeros(T)
    qf = np.zeros(nv)
    zero3 = np.zeros(3)
    bw = model.mass * G
    lo, hi = mo.pad[0], T - mo.pad[1]
    for i in range(lo, hi):
        d.qpos[:], d.qvel[:], d.qacc[:] = qpos[i], qvel[i], qacc[i]
        mj.mj_inverse(m, d)
        Q = d.qfrc_inverse.copy()
        x = d.xpos[model.body[0]].copy()
        Rr = d.xmat[model.body[0]].reshape(3, 3)
        b = np.concatenate([Q[:3], Rr @ Q[3:6]])
        act = [v for v in range(V) if wts[i, v] > 1e-3]
        pts = [vpos[i, v] for v in act]
        bods = [vbody[v] for v in act]
        w = [wts[i, v] for v in act]
        if seat_pts is not None and seat_w[i] > 1e-3:
            pts += list(seat_pts)
            bods += seat_body
            w += [seat_w[i]] * 4
        qf[:] = 0.0
        forces = []
        if pts:
            n = len(pts)
            A = np.zeros((6 + 4 * n, 4 * n))
            for c, pt in enumerate(pts):
                r = pt - x
                A[0:3, 4 * c:4 * c + 4] = basis.T
                A[3:6, 4 * c:4 * c + 4] = np.cross(r, basis).T
                A[6 + 4 * c:10 + 4 * c, 4 * c:4 * c + 4] = np.eye(4) * (eps / w[c])
            lam, _ = nnls(A, np.concatenate([b, np.zeros(4 * n)]), maxiter=2000)
            for c, pt in enumerate(pts):
                fvec = basis.T @ lam[4 * c:4 * c + 4]
                forces.append(fvec)
                mj.mj_applyFT(m, d, fvec, zero3, pt, int(bods[c]), qf)
        res = Q - qf
        rF[i] = np.linalg.norm(res[:3])
        rM[i] = np.linalg.norm(res[3:6])
        out_tau[i] = (C_ZY @ res[model.dof[:, None] + np.arange(3)].T).T.reshape(-1) / model.mass
        # per foot totals and centre of pressure (Y up)
        pel = C_ZY @ x
        for f, key in ((RIGHT, "r"), (LEFT, "l")):
            col = 0 if key == "r" else 5
            Fz = np.zeros(3)
            cop_num = np.zeros(3)
            for c, v in enumerate(act):
                if vfoot[v] == f:
                    Fz += forces[c]
                    cop_num += forces[c][2] * pts[c]
            F = C_ZY @ Fz / bw
            grf[i, col:col + 3] = F
            if Fz[2] > 1e-3 * bw:
                cop = C_ZY @ (cop_num / Fz[2])
                grf[i, col + 3] = cop[0] - pel[0]
                grf[i, col + 4] = cop[2] - pel[2]
        if seat_pts is not None:
            seatF[i] = sum(f_[2] for f_ in forces[len(act):])
    crop = slice(lo, hi)
    return SimResult(out_tau[crop], grf[crop], rF[crop], rM[crop], seatF[crop], crop)


# --- corpus jobs -------------------------------------------------------------------------------

def _stats(x: np.ndarray) -> dict:
    return {"mean": round(float(np.mean(x)), 3), "p95": round(float(np.percentile(x, 95)), 3),
            "max": round(float(np.max(x)), 3)}


def smpl_pose(mo: Motion) -> np.ndarray:
    """(T, 75) SMPL pose: pelvis position (m) + 24 axis-angles (root in the Y-up world)."""
    from scipy.spatial.transform import Rotation

    T = len(mo.root)
    rv = Rotation.from_matrix(mo.local.reshape(-1, 3, 3)).as_rotvec().reshape(T, 72)
    return np.concatenate([mo.root, rv], axis=1).astype(np.float32)


def build_sequence(kind: str, seed: int, duration: float, sk: Skeleton, name: str,
                   subject_id: str) -> Sequence:
    """Kinematics + dynamics of one sequence as a corpus :class:`Sequence`."""
    t0 = time.perf_counter()
    model = _Model(sk)
    mo = make_motion(kind, seed, duration, sk, model)
    sim = simulate(model, sk, mo)
    cr = sim.frames
    kp = mo.joints[cr].astype(np.float32)
    pose = smpl_pose(mo)[cr]
    bw = model.mass * G
    grf = sim.grf.astype(np.float32)
    quality = {
        "root_residual_force_N": _stats(sim.residual_force),
        "root_residual_moment_Nm": _stats(sim.residual_moment),
        "root_residual_force_bw": round(float(np.mean(sim.residual_force) / bw), 4),
        "root_support": "none (no force on the root; residual reported instead)",
        "torque_abs_max_Nm_per_kg": round(float(np.max(np.abs(sim.torques))), 3),
        "vertical_grf_bw": {"min": round(float(np.min(grf[:, 1] + grf[:, 6])), 3),
                            "max": round(float(np.max(grf[:, 1] + grf[:, 6])), 3)},
    }
    if mo.seat is not None:
        quality["seat_force_bw"] = {"mean": round(float(np.mean(sim.seat_force) / bw), 3),
                                    "max": round(float(np.max(sim.seat_force) / bw), 3)}
    meta = {
        "keypoint_layout": "smpl24",
        "motion": kind,
        "motion_params": mo.params,
        "generator_seed": int(seed),
        "model": {"joints": "SMPL 24 (free root + 23 ball joints)", "mass_kg": round(model.mass, 3),
                  "segment_scales": {k: round(v, 4) for k, v in sk.scales.items()},
                  "proportions": "de Leva 1996 segment masses, stature-fraction lengths"},
        "torque_frame": "joint-local SMPL axes (x left, y up, z forward in the T pose)",
        "smpl_transl": "pelvis joint position (Y up, m)",
        "grf": "contact split of the free root's generalised force over foot vertices (NNLS, "
               "friction pyramids mu=0.8); CoP relative to the pelvis; NaN CoP off the ground",
        "quality": quality,
    }
    seq = Sequence(
        name=name, domain=DOMAIN, rate=RATE,
        subject=Subject(subject_id, round(sk.mass, 3), round(sk.height, 4)),
        source=f"MuJoCo mj_inverse on hdys SMPL-like humanoid, procedural {kind}",
        data={"keypoints": kp, "smpl_pose": pose, "torques_smpl": sim.torques.astype(np.float32),
              "grf": grf},
        names={"keypoints": reps.SMPL_JOINTS, "smpl_pose": reps.SMPL_POSE_CHANNELS,
               "torques_smpl": reps.SMPL_TORQUE_CHANNELS, "grf": reps.GRF_CHANNELS},
        meta=meta,
    )
    log.debug("humanoid %s: %d frames in %.2f s, residual mean %.1f N / %.1f N·m", name,
              seq.frames, time.perf_counter() - t0, np.mean(sim.residual_force),
              np.mean(sim.residual_moment))
    return seq


_FULL_MIX = MOTIONS[:-1] * 6 + ("walk", "run", "stand")  # 57 sequences


def plan(seed: int, quick: bool) -> list[dict]:
    """Jobs of 3 sequences (one subject each); quick: one job with a short walk and squat."""
    rng = np.random.default_rng([seed, 0x4855])
    if quick:
        return [{"index": 0, "seed": int(rng.integers(2**31)),
                 "sequences": [{"kind": "walk", "duration": 2.0}, {"kind": "squat", "duration": 2.0}]}]
    kinds = list(_FULL_MIX)
    rng.shuffle(kinds)
    jobs = []
    for i in range(0, len(kinds), 3):
        jobs.append({"index": i // 3, "seed": int(rng.integers(2**31)),
                     "sequences": [{"kind": k, "duration": round(float(rng.uniform(7.0, 11.0)), 2)}
                                   for k in kinds[i:i + 3]]})
    return jobs


def run(job: dict, out_dir: Path) -> list[str]:
    """Build one job's sequences (one random subject) into ``out_dir``; returns their names."""
    try:
        index, seed, seqs = int(job["index"]), int(job["seed"]), list(job["sequences"])
    except (KeyError, TypeError, ValueError) as exc:
        raise HdysError(f"humanoid job {job!r} is malformed ({exc}); rebuild the plan") from None
    rng = np.random.default_rng([seed, index])
    sk = make_skeleton(rng, job.get("height_m"), job.get("mass_kg"))
    sid = f"hum{index:03d}"
    names = []
    for k, s in enumerate(seqs):
        name = f"{sid}_{k}_{s['kind']}"
        seq = build_sequence(s["kind"], int(rng.integers(2**31)), float(s["duration"]), sk,
                             name, sid)
        write_sequence(out_dir, seq)
        names.append(name)
    return names
