"""Simulated domain: parametric motions replayed on the MuJoCo MyoLegs model (80 muscles).

What a sequence is made of, step by step (all per sequence, seeded, deterministic):

1. **Motion** (:func:`make_motion`): joint-angle trajectories from smooth parametric templates.
   Gait (walk, run, turn) uses periodic Fourier series (6 harmonics) fitted to normative sagittal
   hip / knee / ankle curves (Winter / Perry-like control points) with random amplitude, offset,
   phase, cadence drift and low-frequency noise; the left leg is the right one shifted by half a
   cycle. Feet-planted motions (squat, sit-to-stand, split-squat lunge, calf raise, standing sway
   with perturbation pulses) are built from segment angles with the foot kept flat
   (``ankle = knee - hip - pelvis_tilt``) and the body rotated about the ankles so the centre of
   mass stays over the feet ("ankle strategy" balance correction). High stepping marches in place
   with high knees. Each motion also gives a per-foot contact schedule.
2. **Root placement**: with the pelvis at the origin, forward kinematics gives each foot's sole
   points; the pelvis height puts the (soft-min) lowest sole point of the feet in contact on the
   floor, the horizontal progression cancels the contact points' velocity (no slip), flight
   phases (running) follow a ballistic arc; the root path is low-passed at 8 Hz.
3. **Dynamics from the simulator**: ``mj_inverse`` (constraints and joint damping off, no
   armature) gives the generalised forces; the forces on the knee's coupled coordinates
   (MuJoCo joint equalities: tibia translations, patella) are mapped onto ``knee_angle`` by the
   principle of virtual work (``tau = G^T qfrc``, ``G = dq/dq_independent``), as OpenSim's
   coupler constraints do. Torques are written per kg of (scaled) body mass.
4. **GRF**: the root's 6-D generalised force is the external wrench. It is split over the feet
   in contact (schedule x height gate; in double support by the lever rule of the global centre
   of pressure between the feet), each foot's centre of pressure is kept inside its sole; what
   cannot be expressed this way (CoP clipping, free moment, pulling forces, flight) is the
   **root residual**, reported per sequence in ``meta["quality"]`` (N and N·m).
5. **Muscles**: per frame static optimisation, ``min sum a^2 + sum (r_j / 1 N·m)^2`` over
   ``0 <= a <= 1`` with ``sum_m R_jm (g_m a_m + b_m) + r_j = tau_j``, where ``R`` are the
   (coupling-projected) moment arms, ``g`` the active force at the current length and velocity
   (``actuator_force`` at activation 1 minus at 0) and ``b`` the passive force; ``r`` is a
   reserve torque (reported). Solved per leg with ``scipy.optimize.lsq_linear`` (BVLS).
6. **Kinematics**: markers (Rajagopal-lab names, per-sequence placement jitter ~1.2 cm and
   random drop-outs), keypoints (``opensim`` layout) and Rajagopal joint angles (pelvis from the
   free joint as OpenSim's Z-X-Y body-fixed tilt / list / rotation; MyoLegs has no lumbar joint,
   so the lumbar channels are absent). Everything Y up, metres, 100 Hz.

Subjects: a pool of virtual subjects, each a uniform mass scale (0.8-1.25) of MyoLegs' 75.7 kg
(body masses and inertias scaled, muscle strength by ``scale^(2/3)``); segment lengths are
MyoLegs' own (the generic Rajagopal geometry, nominal height 1.70 m).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hdys_rt import representations as reps
from hdys_rt.data.corpus import Sequence, Subject
from hdys_rt.data.frames import zup_to_yup
from hdys_rt.data.shared import shared_data_dir as _shared_dir
from hdys_rt.errors import HdysError
from hdys_rt.representations import G

log = logging.getLogger(__name__)

DOMAIN = "myolegs"
KIND = "sim"
DESCRIPTION = (
    "MuJoCo MyoLegs (80 muscles): parametric walking, running, turning, squats, sit-to-stand, "
    "lunges, calf raises, high stepping and perturbed standing; torques from mj_inverse, GRF "
    "from the root wrench split over the feet, activations by static optimisation."
)

RATE = 100.0  # Hz
MODEL_REL = Path("myo_sim") / "leg" / "myolegs.xml"
NOMINAL_HEIGHT_M = 1.70

MOTIONS: tuple[str, ...] = (
    "walk", "run", "turn", "squat", "sit_to_stand", "lunge", "calf_raise", "high_step", "sway",
)

SIDES = ("r", "l")
HINGES_SIDE = ("hip_flexion", "hip_adduction", "hip_rotation", "knee_angle", "ankle_angle",
               "subtalar_angle", "mtp_angle")
HINGES = tuple(f"{j}_{s}" for s in SIDES for j in HINGES_SIDE)

# Markers: (name, MyoLegs site or None, body, local offset when no site). Names as in the
# Rajagopal lab data (motion_capture_walk.trc).
_MARKER_SITES = (
    ("R.ASIS", "RASI"), ("L.ASIS", "LASI"), ("R.PSIS", "RPSI"), ("L.PSIS", "LPSI"),
    ("R.TH1", "RTH1"), ("R.TH2", "RTH2"), ("R.TH3", "RTH3"), ("R.Knee", "RLFC"),
    ("R.MKnee", "RMFC"), ("R.SH1", "RTB1"), ("R.SH2", "RTB2"), ("R.SH3", "RTB3"),
    ("R.Ankle", "RLMAL"), ("R.MAnkle", "RMMAL"), ("R.Heel", "RCAL"), ("R.Toe", "RTOE"),
    ("R.MT5", "RMT5"),
    ("L.TH1", "LTH1"), ("L.TH2", "LTH2"), ("L.TH3", "LTH3"), ("L.Knee", "LLFC"),
    ("L.MKnee", "LMFC"), ("L.SH1", "LTB1"), ("L.SH2", "LTB2"), ("L.SH3", "LTB3"),
    ("L.Ankle", "LLMAL"), ("L.MAnkle", "LMMAL"), ("L.Heel", "LCAL"), ("L.Toe", "LTOE"),
    ("L.MT5", "LMT5"),
)
MARKER_JITTER_M = 0.012

# Sole contact points per foot, (body, local position) in the body frame (OpenSim axes, Z to the
# right for the right foot; mirrored for the left): heel, first and fifth metatarsal heads, toe.
_SOLE_R = (("calcn", (0.01, -0.02, 0.0)), ("calcn", (0.175, -0.02, -0.03)),
           ("calcn", (0.14, -0.02, 0.03)), ("toes", (0.055, -0.02, 0.0)))
_FOOT_HALF_WIDTH = 0.045  # m, lateral half-width of the sole for CoP clipping
RESERVE_NM = 1.0
COP_TAU_M = 0.006  # soft-min length scale of the contact-geometry CoP over the sole points
XY_CUTOFF_HZ = 4.0  # low-pass of the root's horizontal path (template inconsistencies -> slip)
Z_CUTOFF_HZ = 5.0  # low-pass of the root's height  # N·m: residual torque costs like one fully active muscle per RESERVE_NM


# --- data location ---------------------------------------------------------------------------

def shared_data_dir() -> Path:
    """The shared data folder holding myo_sim/ (see :mod:`hdys_rt.data.shared`)."""
    return _shared_dir(MODEL_REL)


def check_inputs() -> None:
    """Raise :class:`HdysError` (saying where the data comes from) when it is not there."""
    shared_data_dir()


# --- the model, loaded once per process ------------------------------------------------------

class _Myo:
    """MyoLegs with the index tables the pipeline needs. One per process (see :func:`_myo`)."""

    def __init__(self, path: Path):
        import mujoco

        self.mj = mujoco
        m = mujoco.MjModel.from_xml_path(str(path))
        m.dof_armature[:] = 0.0
        m.opt.gravity[:] = (0.0, 0.0, -G)  # standard gravity (MuJoCo's default is -9.81)
        self.m = m
        self.d = mujoco.MjData(m)
        self.base_mass = m.body_mass.copy()
        self.base_inertia = m.body_inertia.copy()
        self.base_gain = m.actuator_gainprm[:, 2].copy()
        self.base_bias = m.actuator_biasprm[:, 2].copy()
        jid = {m.joint(j).name: j for j in range(m.njnt)}
        self.qadr = {n: int(m.jnt_qposadr[j]) for n, j in jid.items()}
        self.vadr = {n: int(m.jnt_dofadr[j]) for n, j in jid.items()}
        self.hinge_q = np.array([self.qadr[h] for h in HINGES])
        self.hinge_v = np.array([self.vadr[h] for h in HINGES])
        # joint equalities: dependent joint = poly(independent joint); qpos0 of hinges is 0
        self.couplings = []
        for e in range(m.neq):
            if m.eq_type[e] != mujoco.mjtEq.mjEQ_JOINT:
                continue
            j1, j2 = int(m.eq_obj1id[e]), int(m.eq_obj2id[e])
            coef = m.eq_data[e, :5].copy()
            self.couplings.append((int(m.jnt_qposadr[j1]), int(m.jnt_dofadr[j1]),
                                   int(m.jnt_qposadr[j2]), int(m.jnt_dofadr[j2]), coef,
                                   float(m.qpos0[m.jnt_qposadr[j1]]),
                                   float(m.qpos0[m.jnt_qposadr[j2]])))
        self.muscles = tuple(m.actuator(i).name for i in range(m.nu))
        missing = set(self.muscles) ^ set(reps.MUSCLES)
        if missing:
            raise HdysError(f"MyoLegs muscles differ from representations.MUSCLES: {sorted(missing)}")
        self.bid = {m.body(b).name: b for b in range(m.nbody)}
        self.sid = {m.site(s).name: s for s in range(m.nsite)}
        # markers in body frames
        self.markers = []
        for name, site in _MARKER_SITES:
            s = self.sid[site]
            self.markers.append((name, int(m.site_bodyid[s]), m.site_pos[s].copy()))
        pel = self.bid["pelvis"]
        s2 = 0.5 * (m.site_pos[self.sid["RPSI"]] + m.site_pos[self.sid["LPSI"]])
        self.markers.insert(4, ("S2", pel, s2))
        # keypoints (opensim layout): body/site points
        self.keypoints = []
        for kp in reps.KEYPOINT_LAYOUTS["opensim"]:
            if kp == "pelvis":
                self.keypoints.append((kp, pel, np.zeros(3)))
            elif kp == "lumbar":  # Rajagopal's lumbar joint centre in the pelvis frame
                self.keypoints.append((kp, pel, np.array([-0.1007, 0.0815, 0.0])))
            else:
                j, side = kp.rsplit("_", 1)
                if j in ("hip", "knee", "ankle"):
                    s = self.sid[f"{side.upper()}{j[0].upper()}JC"]
                    self.keypoints.append((kp, int(m.site_bodyid[s]), m.site_pos[s].copy()))
                else:
                    body = {"subtalar": "calcn", "mtp": "toes"}[j]
                    self.keypoints.append((kp, self.bid[f"{body}_{side}"], np.zeros(3)))
        # sole points
        self.sole = {}
        for side in SIDES:
            mir = np.array([1.0, 1.0, 1.0 if side == "r" else -1.0])
            self.sole[side] = [(self.bid[f"{b}_{side}"], np.array(p) * mir) for b, p in _SOLE_R]
        self.root_q = self.qadr["root"]
        self.nq, self.nv = m.nq, m.nv
        self.total_base_mass = float(self.base_mass.sum())
        # muscles per side and their joints (indices into HINGES)
        self.side_muscles = {s: np.array([i for i, n in enumerate(self.muscles) if n.endswith("_" + s)])
                             for s in SIDES}
        self.side_hinges = {s: np.array([i for i, h in enumerate(HINGES) if h.endswith("_" + s)])
                            for s in SIDES}

    def set_subject(self, mass_scale: float):
        m = self.m
        m.body_mass[:] = self.base_mass * mass_scale
        m.body_inertia[:] = self.base_inertia * mass_scale
        strength = mass_scale ** (2.0 / 3.0)
        m.actuator_gainprm[:, 2] = self.base_gain * strength
        m.actuator_biasprm[:, 2] = self.base_bias * strength

    # qpos assembly ---------------------------------------------------------------------------
    def qpos(self, hinge: np.ndarray, root_pos: np.ndarray, root_quat: np.ndarray) -> np.ndarray:
        """(T, nq) from hinge angles (T, 14), root position (T, 3) and quaternion (T, 4)."""
        T = hinge.shape[0]
        q = np.zeros((T, self.nq))
        q[:, self.root_q:self.root_q + 3] = root_pos
        q[:, self.root_q + 3:self.root_q + 7] = root_quat
        q[:, self.hinge_q] = hinge
        for qa, _, qb, _, c, q0a, q0b in self.couplings:
            x = q[:, qb] - q0b
            q[:, qa] = q0a + c[0] + x * (c[1] + x * (c[2] + x * (c[3] + x * c[4])))
        return q

    def coupling_matrix(self, q: np.ndarray) -> np.ndarray:
        """G (T, nv, nv): dq/dq with the dependent columns folded onto their driver."""
        T = q.shape[0]
        Gm = np.broadcast_to(np.eye(self.nv), (T, self.nv, self.nv)).copy()
        for _, va, qb, vb, c, _, q0b in self.couplings:
            x = q[:, qb] - q0b
            Gm[:, va, va] = 0.0
            Gm[:, va, vb] = c[1] + x * (2 * c[2] + x * (3 * c[3] + x * 4 * c[4]))
        return Gm

    def points(self, q: np.ndarray, items, com: bool = False):
        """World positions (T, P, 3) of body-frame points ``items`` [(body, local)] (+ CoM)."""
        mj, m, d = self.mj, self.m, self.d
        T = q.shape[0]
        bodies = np.array([b for b, _ in items])
        local = np.array([p for _, p in items])
        out = np.empty((T, len(items), 3))
        comv = np.empty((T, 3)) if com else None
        for t in range(T):
            d.qpos[:] = q[t]
            mj.mj_kinematics(m, d)
            xm = d.xmat[bodies].reshape(-1, 3, 3)
            out[t] = d.xpos[bodies] + np.einsum("pij,pj->pi", xm, local)
            if com:
                mj.mj_comPos(m, d)
                comv[t] = d.subtree_com[self.bid["root"]]
        return (out, comv) if com else out


@functools.lru_cache(maxsize=2)
def _myo_at(path: str) -> _Myo:
    return _Myo(Path(path))


def _myo() -> _Myo:
    return _myo_at(str(shared_data_dir() / MODEL_REL))


# --- templates -------------------------------------------------------------------------------

def _fourier_fit(points, harmonics: int = 6):
    """Periodic Fourier coefficients (a0, a[k], b[k]) through (phase %, degrees) points."""
    from scipy.interpolate import CubicSpline

    ph = np.array([p for p, _ in points], float) / 100.0
    v = np.deg2rad(np.array([v for _, v in points], float))
    if ph[-1] < 1.0:
        ph, v = np.r_[ph, 1.0], np.r_[v, v[0]]
    v[-1] = v[0]
    cs = CubicSpline(ph, v, bc_type="periodic")
    x = np.linspace(0, 1, 256, endpoint=False)
    f = np.fft.rfft(cs(x)) / 256
    return f[: harmonics + 1]


def _fourier_eval(coef, phase):
    k = np.arange(len(coef))
    z = np.exp(2j * np.pi * np.outer(phase, k))
    out = coef[0].real + 2 * (z[:, 1:] * coef[1:]).real.sum(axis=1)
    return out


_WALK = {
    "hip_flexion": [(0, 30), (10, 27), (20, 18), (30, 8), (40, -2), (50, -9), (55, -10),
                    (60, -5), (65, 5), (70, 15), (75, 23), (80, 29), (85, 32), (90, 32),
                    (95, 31)],
    "knee_angle": [(0, 4), (5, 10), (12, 17), (18, 16), (25, 11), (35, 6), (42, 5), (50, 10),
                   (55, 18), (60, 33), (65, 48), (70, 58), (73, 61), (78, 58), (85, 40),
                   (90, 22), (95, 7)],
    "ankle_angle": [(0, 0), (5, -5), (8, -6), (15, 0), (25, 5), (35, 8), (45, 10), (50, 7),
                    (55, 0), (60, -12), (63, -17), (68, -14), (75, -5), (85, 0), (95, 1)],
    "hip_adduction": [(0, -1), (15, 5), (30, 4), (50, 0), (60, -5), (75, -5), (90, -3)],
    "hip_rotation": [(0, 3), (20, 0), (50, -4), (70, 2), (90, 4)],
    "subtalar_angle": [(0, 0), (10, 4), (40, 2), (60, -2), (80, 0)],
    "mtp_angle": [(0, 0), (40, -3), (50, -12), (57, -25), (63, -15), (70, 0), (90, 0)],
}
_RUN = {
    "hip_flexion": [(0, 35), (15, 25), (30, 5), (40, -8), (45, -10), (55, 0), (65, 25),
                    (80, 45), (90, 42)],
    "knee_angle": [(0, 15), (10, 35), (20, 40), (30, 30), (40, 18), (50, 40), (60, 80),
                   (70, 100), (80, 92), (90, 50)],
    "ankle_angle": [(0, 5), (10, 15), (20, 20), (30, 10), (38, -10), (45, -20), (55, -10),
                    (70, 5), (85, 10)],
    "hip_adduction": [(0, 0), (15, 6), (35, 2), (50, -4), (75, -4), (90, -2)],
    "hip_rotation": [(0, 2), (25, -2), (50, -4), (75, 2)],
    "subtalar_angle": [(0, 2), (15, 5), (35, 2), (60, -2), (80, 0)],
    "mtp_angle": [(0, 0), (25, -5), (35, -20), (42, -10), (50, 0), (80, 0)],
}
WALK_DUTY, RUN_DUTY = 0.61, 0.38
_COEF = {}


def _coef(table_name: str, joint: str):
    key = (table_name, joint)
    if key not in _COEF:
        table = _WALK if table_name == "walk" else _RUN
        _COEF[key] = _fourier_fit(table[joint])
    return _COEF[key]


def _smooth_noise(rng, t, amp, fmax=1.0, n=3):
    """Sum of ``n`` random sinusoids below ``fmax`` Hz, peak ~``amp``."""
    out = np.zeros_like(t)
    for _ in range(n):
        out += np.sin(2 * np.pi * rng.uniform(0.1, fmax) * t + rng.uniform(0, 2 * np.pi))
    return amp * out / n


def _window(phase, start, stop, ramp=0.02):
    """Smooth 0..1 indicator of ``start <= phase mod 1 < stop``."""
    ph = np.mod(phase - start, 1.0)
    L = stop - start
    up = np.clip(ph / ramp, 0, 1)
    down = np.clip((L - ph) / ramp, 0, 1)
    w = np.minimum(up, down) * (ph < L)
    return w * w * (3 - 2 * w)


def _ease(x):
    x = np.clip(x, 0, 1)
    return x * x * (3 - 2 * x)


def _reps_profile(t, period, hold_frac, rng):
    """0 -> 1 -> 0 smooth repetitions of ``period`` s with a hold at the bottom, jittered."""
    out = np.zeros_like(t)
    start = rng.uniform(0.3, 0.8)
    while start < t[-1]:
        p = period * rng.uniform(0.85, 1.15)
        down = (1 - hold_frac) * p / 2
        x = t - start
        prof = np.where(x < down, _ease(x / down),
                        np.where(x < down + hold_frac * p, 1.0, _ease(1 - (x - down - hold_frac * p) / down)))
        out = np.where((x >= 0) & (x < p), prof, out)
        start += p + rng.uniform(0.2, 1.0)
    return out


@dataclass
class Motion:
    """Joint-angle trajectories of one sequence (radians, seconds)."""

    name: str
    t: np.ndarray                      # (T,) s
    hinge: np.ndarray                  # (T, 14) in HINGES order
    pelvis: np.ndarray                 # (T, 3) tilt, list, rotation (rad) before heading
    heading: np.ndarray                # (T,) rad about the vertical
    contact: np.ndarray                # (T, 2) schedule weights r, l in 0..1
    flight: bool = False               # ballistic phases when no foot is scheduled
    balance: bool = False              # planted: rotate about the ankles to keep CoM over feet
    com_offset: np.ndarray | None = None  # (T,) m, forward CoM target offset (sway)
    pendulum: bool = False             # gait: inverted-pendulum progression (see _place_root)
    params: dict = field(default_factory=dict)


def _h(name):
    return HINGES.index(name)


def _gait(rng, t, kind: str) -> Motion:
    T = len(t)
    run = kind == "run"
    table = "run" if run else "walk"
    if run:
        cad0 = rng.uniform(150, 180)
        cad1 = cad0 * rng.uniform(0.95, 1.05)
    else:
        cad0 = rng.uniform(88, 125)
        cad1 = np.clip(cad0 * rng.uniform(0.85, 1.15), 80, 130)
    ramp = _ease((t - t[0]) / max(t[-1] - t[0], 1e-6))
    cadence = cad0 + (cad1 - cad0) * ramp  # steps/min
    freq = cadence / 120.0  # strides/s
    phase = np.cumsum(freq) / RATE + rng.uniform(0, 1)
    hinge = np.zeros((T, len(HINGES)))
    amp_step = rng.uniform(0.75, 1.2) if not run else rng.uniform(0.85, 1.15)
    for side, shift in (("r", 0.0), ("l", 0.5 + rng.normal(0, 0.01))):
        ph = phase + shift
        for j in HINGES_SIDE:
            base = _fourier_eval(_coef(table, j), ph)
            mean = base.mean()
            amp = rng.uniform(0.85, 1.15) * (amp_step if j == "hip_flexion" else 1.0)
            off = np.deg2rad(rng.normal(0, 2.0 if j in ("hip_flexion", "knee_angle", "ankle_angle") else 1.0))
            v = mean + amp * (base - mean) + off + _smooth_noise(rng, t, np.deg2rad(1.5))
            hinge[:, _h(f"{j}_{side}")] = v
    hinge[:, _h("knee_angle_r")] = np.maximum(hinge[:, _h("knee_angle_r")], 0.02)
    hinge[:, _h("knee_angle_l")] = np.maximum(hinge[:, _h("knee_angle_l")], 0.02)
    pelvis = np.stack([
        np.deg2rad(rng.uniform(-8, -2)) + np.deg2rad(rng.uniform(1, 3)) * np.sin(4 * np.pi * phase + rng.uniform(0, 6.3)),
        np.deg2rad(rng.uniform(2, 5)) * np.sin(2 * np.pi * (phase - 0.1)),
        np.deg2rad(rng.uniform(3, 7)) * np.sin(2 * np.pi * (phase + 0.25)),
    ], axis=1)
    duty = RUN_DUTY if run else WALK_DUTY
    ramp = 0.04 if run else 0.5 * (duty - 0.5) + 0.01  # walk: load transfer over double support
    contact = np.stack([_window(phase, 0.0, duty, ramp), _window(phase + 0.5, 0.0, duty, ramp)], axis=1)
    heading = np.full(T, rng.uniform(-np.pi, np.pi))
    if kind == "turn":
        n_turns = rng.integers(1, 3)
        for _ in range(n_turns):
            tc = rng.uniform(t[0] + 1.0, t[-1] - 1.0)
            dur = rng.uniform(1.0, 2.5)
            ang = rng.choice([-1, 1]) * np.deg2rad(rng.uniform(30, 120))
            heading = heading + ang * _ease((t - tc + dur / 2) / dur)
    return Motion(kind, t, hinge, pelvis, heading, contact, flight=run, pendulum=True,
                  params={"cadence_spm": [float(cad0), float(cad1)], "step_scale": float(amp_step)})


def _flat_ankle(hinge, pelvis_tilt, side, extra=0.0):
    """Ankle angle that keeps the foot flat (sagittal): ankle = knee - hip - tilt (+ extra)."""
    return hinge[:, _h(f"knee_angle_{side}")] - hinge[:, _h(f"hip_flexion_{side}")] - pelvis_tilt + extra


def _planted(rng, t, kind: str) -> Motion:
    T = len(t)
    hinge = np.zeros((T, len(HINGES)))
    tilt = np.full(T, np.deg2rad(rng.uniform(-8, -2)))
    lst = _smooth_noise(rng, t, np.deg2rad(1.0), 0.5)
    rot = _smooth_noise(rng, t, np.deg2rad(2.0), 0.5)
    stance_abd = np.deg2rad(rng.uniform(-6, 2))  # feet apart (abduction negative)
    rise = np.zeros(T)  # heel rise (rad): plantarflex ankle, extend mtp
    com_offset = np.full(T, rng.uniform(0.0, 0.04))
    params = {}
    if kind in ("squat", "sit_to_stand"):
        deep = kind == "sit_to_stand"
        period = rng.uniform(2.0, 4.0) if not deep else rng.uniform(3.0, 5.0)
        s = _reps_profile(t, period, 0.15 if not deep else 0.3, rng)
        thigh = np.deg2rad(rng.uniform(60, 95) if not deep else rng.uniform(85, 100)) * s
        lean = np.deg2rad(rng.uniform(10, 30) if not deep else rng.uniform(30, 45)) * s
        knee = thigh * rng.uniform(1.05, 1.25)
        tilt = tilt - lean
        for side in SIDES:
            hinge[:, _h(f"hip_flexion_{side}")] = thigh - tilt
            hinge[:, _h(f"knee_angle_{side}")] = knee
        stance_abd = np.deg2rad(rng.uniform(-10, -3))
        params = {"period_s": float(period)}
    elif kind == "calf_raise":
        period = rng.uniform(1.5, 3.0)
        s = _reps_profile(t, period, 0.2, rng)
        rise = np.deg2rad(rng.uniform(15, 28)) * s
        knee = np.deg2rad(rng.uniform(0, 10)) + 0 * s
        for side in SIDES:
            hinge[:, _h(f"hip_flexion_{side}")] = -tilt + np.deg2rad(rng.uniform(0, 5))
            hinge[:, _h(f"knee_angle_{side}")] = knee
        com_offset = com_offset + 0.05 * s
        params = {"period_s": float(period)}
    elif kind == "sway":
        knee = np.deg2rad(rng.uniform(0, 8))
        for side in SIDES:
            hinge[:, _h(f"hip_flexion_{side}")] = -tilt + np.deg2rad(rng.uniform(-2, 4)) + \
                _smooth_noise(rng, t, np.deg2rad(3), 0.6)
            hinge[:, _h(f"knee_angle_{side}")] = knee + np.abs(_smooth_noise(rng, t, np.deg2rad(3), 0.5))
        # perturbations: fast forward/backward pulses of the CoM target
        com_offset = com_offset + _smooth_noise(rng, t, 0.03, 0.4)
        n = int(rng.integers(2, 6))
        for _ in range(n):
            tc, dur = rng.uniform(t[0], t[-1]), rng.uniform(0.15, 0.4)
            amp = rng.choice([-1, 1]) * rng.uniform(0.02, 0.05)
            x = (t - tc) / dur
            com_offset = com_offset + amp * np.exp(-0.5 * x * x) * (1 - 0.5 * np.tanh(x))
        params = {"perturbations": n}
    else:
        raise HdysError(f"unknown planted motion {kind!r}")
    for side in SIDES:
        sign = 1.0
        hinge[:, _h(f"hip_adduction_{side}")] = sign * stance_abd
        hinge[:, _h(f"hip_rotation_{side}")] = np.deg2rad(rng.uniform(-5, 5))
        hinge[:, _h(f"mtp_angle_{side}")] = -rise
        hinge[:, _h(f"ankle_angle_{side}")] = _flat_ankle(hinge, tilt, side, -rise)
        hinge[:, _h(f"subtalar_angle_{side}")] = np.deg2rad(rng.uniform(-3, 3))
    pelvis = np.stack([tilt, lst, rot], axis=1)
    heading = np.full(T, rng.uniform(-np.pi, np.pi))
    contact = np.ones((T, 2))
    return Motion(kind, t, hinge, pelvis, heading, contact, balance=True,
                  com_offset=com_offset, params=params)


def _lunge(rng, t) -> Motion:
    """Alternating split squats: feet planted in a split stance, legs from 2-link sagittal IK."""
    T = len(t)
    thigh_l, shank_l = 0.404, 0.40 + 0.045  # femur, tibia + ankle-to-sole, m
    split = rng.uniform(0.55, 0.85)  # m between ankles
    depth = rng.uniform(0.18, 0.35)  # m pelvis drop
    period = rng.uniform(2.0, 3.5)
    s = _reps_profile(t, period, 0.2, rng)
    hip_h = (thigh_l + shank_l) * np.sqrt(1 - (split / 2 / (thigh_l + shank_l)) ** 2) * 0.985 - depth * s
    front = "r" if rng.random() < 0.5 else "l"
    tilt = np.deg2rad(rng.uniform(-6, 0)) - np.deg2rad(rng.uniform(0, 10)) * s
    hinge = np.zeros((T, len(HINGES)))
    for side in SIDES:
        dx = split / 2 * (1 if side == front else -1)  # ankle ahead of the hip (+)
        dist = np.sqrt(dx * dx + hip_h * hip_h)
        dist = np.minimum(dist, (thigh_l + shank_l) * 0.999)
        cos_k = (thigh_l ** 2 + shank_l ** 2 - dist ** 2) / (2 * thigh_l * shank_l)
        knee = np.pi - np.arccos(np.clip(cos_k, -1, 1))
        alpha = np.arctan2(dx, hip_h)  # hip-to-ankle line from vertical, forward +
        cos_a = (thigh_l ** 2 + dist ** 2 - shank_l ** 2) / (2 * thigh_l * dist)
        thigh = alpha + np.arccos(np.clip(cos_a, -1, 1))
        hinge[:, _h(f"hip_flexion_{side}")] = thigh - tilt
        hinge[:, _h(f"knee_angle_{side}")] = knee
        rise = 0.0 if side == front else np.deg2rad(rng.uniform(5, 20)) * s
        hinge[:, _h(f"mtp_angle_{side}")] = -rise
        hinge[:, _h(f"ankle_angle_{side}")] = _flat_ankle(hinge, tilt, side, -rise)
        hinge[:, _h(f"hip_adduction_{side}")] = np.deg2rad(rng.uniform(-5, 0))
    pelvis = np.stack([tilt, _smooth_noise(rng, t, np.deg2rad(1), 0.5),
                       _smooth_noise(rng, t, np.deg2rad(2), 0.5)], axis=1)
    heading = np.full(T, rng.uniform(-np.pi, np.pi))
    return Motion("lunge", t, hinge, pelvis, heading, np.ones((T, 2)),
                  params={"split_m": float(split), "depth_m": float(depth), "front": front})


def _high_step(rng, t) -> Motion:
    """Marching in place with high knees (stair-like stepping), alternating single support."""
    T = len(t)
    cad = rng.uniform(70, 110)  # steps/min
    phase = np.cumsum(np.full(T, cad / 120.0)) / RATE + rng.uniform(0, 1)
    duty = rng.uniform(0.6, 0.7)
    hip_up = np.deg2rad(rng.uniform(45, 85))
    knee_up = np.deg2rad(rng.uniform(60, 100))
    tilt = np.deg2rad(rng.uniform(-8, -2)) + _smooth_noise(rng, t, np.deg2rad(1.5), 0.5)
    hinge = np.zeros((T, len(HINGES)))
    contact = np.zeros((T, 2))
    for k, (side, shift) in enumerate((("r", 0.0), ("l", 0.5))):
        ph = np.mod(phase + shift, 1.0)
        sw = np.clip((ph - duty) / (1 - duty), 0, 1)
        bump = np.sin(np.pi * sw) ** 2
        contact[:, k] = _window(phase + shift, 0.0, duty, 0.03)
        hinge[:, _h(f"hip_flexion_{side}")] = -tilt + np.deg2rad(3) + hip_up * bump
        hinge[:, _h(f"knee_angle_{side}")] = np.deg2rad(4) + knee_up * bump
        flat = _flat_ankle(hinge, tilt, side)
        hinge[:, _h(f"ankle_angle_{side}")] = (1 - bump) * flat + bump * np.deg2rad(rng.uniform(-15, 5))
        hinge[:, _h(f"hip_adduction_{side}")] = np.deg2rad(rng.uniform(-4, 1)) + np.deg2rad(3) * bump
        hinge[:, _h(f"mtp_angle_{side}")] = np.deg2rad(rng.uniform(-5, 0))
    pelvis = np.stack([tilt, np.deg2rad(rng.uniform(2, 5)) * np.sin(2 * np.pi * (phase - 0.1)),
                       _smooth_noise(rng, t, np.deg2rad(2), 0.5)], axis=1)
    heading = np.full(T, rng.uniform(-np.pi, np.pi))
    return Motion("high_step", t, hinge, pelvis, heading, contact,
                  params={"cadence_spm": float(cad), "hip_up_deg": float(np.rad2deg(hip_up))})


def make_motion(kind: str, seed: int, duration_s: float) -> Motion:
    """Build the joint-angle trajectories of motion ``kind`` (see :data:`MOTIONS`)."""
    if kind not in MOTIONS:
        raise HdysError(f"unknown motion {kind!r}; expected one of {MOTIONS}")
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(duration_s * RATE))) / RATE
    if kind in ("walk", "run", "turn"):
        mo = _gait(rng, t, kind)
    elif kind == "lunge":
        mo = _lunge(rng, t)
    elif kind == "high_step":
        mo = _high_step(rng, t)
    else:
        mo = _planted(rng, t, kind)
    lo = np.array([-0.52, -0.87, -0.69, 0.0, -0.69, -0.34, -0.52] * 2) + 0.01
    hi = np.array([2.09, 0.52, 0.69, 2.09, 0.52, 0.34, 0.52] * 2) - 0.01
    mo.hinge = np.clip(mo.hinge, lo, hi)
    return mo


# --- simulation ------------------------------------------------------------------------------

_P = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # Y-up coords -> Z-up coords


def _pelvis_rot(pelvis: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """Pelvis orientation in the Y-up ground (T, 3, 3): Ry(heading) Rz(tilt) Rx(list) Ry(rot)."""
    from scipy.spatial.transform import Rotation

    r = Rotation.from_euler("Y", heading[:, None]) * Rotation.from_euler("ZXY", pelvis)
    return r.as_matrix()


def _root_quat(R_yup: np.ndarray) -> np.ndarray:
    """MuJoCo root quaternions (T, 4, w first) so that the pelvis frame is ``R_yup``."""
    from scipy.spatial.transform import Rotation

    Rz = _P @ R_yup @ _P.T
    xyzw = Rotation.from_matrix(Rz).as_quat()
    q = np.concatenate([xyzw[:, 3:], xyzw[:, :3]], axis=1)
    flip = np.sign(np.einsum("ti,ti->t", q[1:], q[:-1]))
    flip = np.r_[1.0, np.cumprod(np.where(flip == 0, 1, flip))]
    return q * flip[:, None]


def _lowpass(x: np.ndarray, cutoff: float, order: int = 4) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    sos = butter(order, cutoff, fs=RATE, output="sos")
    return sosfiltfilt(sos, x, axis=0)


def _soft_low(z: np.ndarray, tau: float = 0.008) -> tuple[np.ndarray, np.ndarray]:
    """Soft-min weights over the last axis and the weighted height."""
    w = np.exp(-(z - z.min(axis=-1, keepdims=True)) / tau)
    w /= w.sum(axis=-1, keepdims=True)
    return w, (w * z).sum(axis=-1)


def _sole_items(myo: _Myo):
    return myo.sole["r"] + myo.sole["l"]


def _balance(myo: _Myo, mo: Motion, iters: int = 3):
    """Rotate the body about the ankles (ankle +d, tilt -d) to keep the CoM over the feet."""
    T = len(mo.t)
    fwd = np.stack([np.cos(mo.heading), np.sin(mo.heading), np.zeros(T)], axis=1)
    aj = [myo.sid["RAJC"], myo.sid["LAJC"]]
    items = _sole_items(myo) + [(int(myo.m.site_bodyid[s]), myo.m.site_pos[s]) for s in aj]
    for _ in range(iters):
        R = _pelvis_rot(mo.pelvis, mo.heading)
        q = myo.qpos(mo.hinge, np.zeros((T, 3)), _root_quat(R))
        pts, com = myo.points(q, items, com=True)
        centre = pts[:, [0, 1, 2, 4, 5, 6]].mean(axis=1)
        ankle = pts[:, 8:].mean(axis=1)
        e = np.einsum("ti,ti->t", com - centre, fwd) - (mo.com_offset if mo.com_offset is not None else 0.0)
        L = np.maximum(com[:, 2] - ankle[:, 2], 0.3)
        delta = -e / L
        for side in SIDES:
            mo.hinge[:, _h(f"ankle_angle_{side}")] += delta
        mo.pelvis[:, 0] -= delta
    mo.hinge[:, [_h("ankle_angle_r"), _h("ankle_angle_l")]] = np.clip(
        mo.hinge[:, [_h("ankle_angle_r"), _h("ankle_angle_l")]], -0.68, 0.51)


def _fill_flight(x: np.ndarray, ok: np.ndarray, ballistic: bool) -> np.ndarray:
    """Fill samples where ``ok`` is False: parabola with -g (ballistic) or linear."""
    x = x.copy()
    idx = np.flatnonzero(ok)
    if len(idx) == 0:
        return np.zeros_like(x)
    bad = np.flatnonzero(~ok)
    if len(bad) == 0:
        return x
    # contiguous runs
    runs = np.split(bad, np.flatnonzero(np.diff(bad) > 1) + 1)
    for r in runs:
        a, b = r[0] - 1, r[-1] + 1
        if a < 0 or b >= len(x):
            x[r] = x[b] if a < 0 else x[a]
            continue
        s = (r - a) / RATE
        Tf = (b - a) / RATE
        x[r] = x[a] + (x[b] - x[a]) * s / Tf
        if ballistic:
            x[r] += 0.5 * G * s * (Tf - s)
    return x


def _place_root(myo: _Myo, mo: Motion, quat: np.ndarray) -> np.ndarray:
    """Root positions (T, 3) putting the scheduled feet on the floor.

    Height: the soft-min sole point of the scheduled feet on the floor (ballistic in flight).
    Horizontal: feet-planted motions cancel the contact points' velocity (no slip). Gait uses a
    dynamically consistent progression instead: the centre of mass accelerates as an inverted
    pendulum over the contact-geometry CoP, ``a = (g + z'') (com - cop) / (z_com - z_cop)``
    (zero moment about the CoM), with a slow (0.25 Hz) pull towards the no-slip path; stance
    feet then slip a little (reported as ``stance_contact_speed_mps``).
    """
    T = len(mo.t)
    q = myo.qpos(mo.hinge, np.zeros((T, 3)), quat)
    pts, com = myo.points(q, _sole_items(myo), com=True)  # relative to the root
    n = len(myo.sole["r"])
    c = mo.contact
    sc = c.sum(axis=1)
    ok = sc > 0.05
    h, v, geo = [], [], []
    vel = np.gradient(pts, 1 / RATE, axis=0)
    for k in range(2):
        sl = slice(k * n, (k + 1) * n)
        w, hk = _soft_low(pts[:, sl, 2])
        h.append(hk)
        v.append(np.einsum("tp,tpi->ti", w, vel[:, sl, :2]))
        wg, _ = _soft_low(pts[:, sl, 2], COP_TAU_M)
        geo.append(np.einsum("tp,tpi->ti", wg, pts[:, sl, :2]))
    den = np.where(ok, sc, 1.0)
    z = -(c[:, 0] * h[0] + c[:, 1] * h[1]) / den
    vxy = -(c[:, :1] * v[0] + c[:, 1:] * v[1]) / den[:, None]
    z = _fill_flight(z, ok, mo.flight)
    z = z[0] + _lowpass(z - z[0], Z_CUTOFF_HZ)
    vxy = np.stack([_fill_flight(vxy[:, i], ok, False) for i in range(2)], axis=1)
    if mo.pendulum:
        cop = (c[:, :1] * geo[0] + c[:, 1:] * geo[1]) / den[:, None]
        zc = z + com[:, 2]
        dd = np.gradient(np.gradient(zc, 1 / RATE), 1 / RATE)
        omega2 = (G + dd) / np.maximum(zc, 0.3)
        a_com = np.where(ok[:, None], omega2[:, None] * (com[:, :2] - cop), 0.0)
        a_com = _lowpass(a_com, XY_CUTOFF_HZ)
        com_v = np.gradient(com[:, :2], 1 / RATE, axis=0)
        v_com = np.cumsum(a_com, axis=0) / RATE
        vr = v_com - com_v
        vr = vr + (vxy - vr).mean(axis=0)
        for _ in range(2):
            vr = vr + _lowpass(vxy - vr, 0.25, order=2)
        vxy = vr
    xy = np.cumsum(vxy, axis=0) / RATE
    if not mo.pendulum:
        lin = xy[:1] + (xy[-1:] - xy[:1]) * np.arange(T)[:, None] / max(T - 1, 1)
        xy = lin + _lowpass(xy - lin, XY_CUTOFF_HZ)
    return np.concatenate([xy, z[:, None]], axis=1)


@dataclass
class SimResult:
    """Everything one simulated sequence gives (MuJoCo Z-up world unless said otherwise)."""

    q: np.ndarray          # (T, nq)
    hinge: np.ndarray      # (T, 14) rad
    pelvis_rot: np.ndarray  # (T, 3, 3) Y-up pelvis orientation
    root: np.ndarray       # (T, 3) Z-up
    tau: np.ndarray        # (T, 14) N·m (hinges)
    grf: np.ndarray        # (T, 10) GRF_CHANNELS, Y-up, BW and m
    act: np.ndarray        # (T, 80) in the model's muscle order
    markers: np.ndarray    # (T, 31, 3) Z-up, without jitter
    keypoints: np.ndarray  # (T, 12, 3) Z-up
    mass: float
    quality: dict


def simulate(mo: Motion, mass_scale: float, pad_s: float = 0.5) -> SimResult:
    """Replay ``mo`` on MyoLegs with subject mass scale ``mass_scale``; see the module doc.

    ``mo`` should include ``pad_s`` seconds at both ends; they are simulated (filter and
    derivative edges) and cut from the result. The steps: :func:`_root_path` (motion ->
    qpos, qvel, qacc), :func:`_inverse_dynamics` (MuJoCo), :func:`_split_root_wrench` (GRF per
    foot), :func:`_residual_forces` (what the GRF leaves on the root), :func:`_grf_channels`,
    :func:`_static_optimisation` (activations), :func:`_quality`.
    """
    myo = _myo()
    myo.set_subject(mass_scale)
    mass = float(myo.m.body_mass.sum())
    bw = mass * G
    t0 = time.perf_counter()
    R, root, q, qvel, qacc = _root_path(myo, mo)
    sole = _sole_items(myo)
    mk_items = [(b, p) for _, b, p in myo.markers]
    kp_items = [(b, p) for _, b, p in myo.keypoints]
    pts, qfrc, moment, gain, bias = _inverse_dynamics(myo, q, qvel, qacc,
                                                      sole + mk_items + kp_items)
    t_sim = time.perf_counter() - t0

    ns = len(sole)
    split = _split_root_wrench(mo, pts[:, :ns], qfrc[:, 0:3], bw)
    net = qfrc - _residual_forces(myo, q, split)
    Rroot = _root_rotations(q)
    res_F = np.linalg.norm(net[:, 0:3], axis=1)
    res_M = np.linalg.norm(np.einsum("tij,tj->ti", Rroot, net[:, 3:6]), axis=1)
    grf = _grf_channels(root, split, bw)

    # coupling: forces on dependent coordinates act on their driver (virtual work)
    Gm = myo.coupling_matrix(q)
    tau_full = np.einsum("tji,tj->ti", Gm, net)
    tau = tau_full[:, myo.hinge_v]
    arm = np.einsum("tmj,tji->tmi", moment, Gm)[:, :, myo.hinge_v]  # (T, 80, 14)

    t1 = time.perf_counter()
    act, reserve = _static_optimisation(myo, tau, arm, gain, bias)
    t_so = time.perf_counter() - t1

    # cut padding
    T = q.shape[0]
    pad = int(round(pad_s * RATE))
    keep = slice(pad, T - pad)
    quality = _quality(keep, split, grf, res_F, res_M, reserve, bw)
    quality["seconds"] = {"dynamics": round(t_sim, 3), "static_optimisation": round(t_so, 3)}
    nmk = len(mk_items)
    return SimResult(
        q=q[keep], hinge=q[keep][:, myo.hinge_q], pelvis_rot=R[keep], root=root[keep],
        tau=tau[keep], grf=grf[keep], act=act[keep],
        markers=pts[keep, ns:ns + nmk], keypoints=pts[keep, ns + nmk:], mass=mass,
        quality=quality,
    )


def _root_path(myo: _Myo, mo: Motion):
    """The motion as MuJoCo state: Y-up pelvis rotations R (T, 3, 3), root (T, 3) Z up, qpos
    (T, nq), qvel and qacc (T, nv) by central differences (``mj_differentiatePos``)."""
    mj, m = myo.mj, myo.m
    if mo.balance:
        _balance(myo, mo)
    R = _pelvis_rot(mo.pelvis, mo.heading)
    quat = _root_quat(R)
    root = _place_root(myo, mo, quat)
    q = myo.qpos(mo.hinge, root, quat)
    T = q.shape[0]
    dt = 1 / RATE
    qvel = np.zeros((T, m.nv))
    tmp = np.zeros(m.nv)
    for t in range(T):
        a, b = max(t - 1, 0), min(t + 1, T - 1)
        mj.mj_differentiatePos(m, tmp, (b - a) * dt, q[a], q[b])
        qvel[t] = tmp
    qacc = np.gradient(qvel, dt, axis=0)
    return R, root, q, qvel, qacc


def _inverse_dynamics(myo: _Myo, q, qvel, qacc, items):
    """``mj_inverse`` per frame (constraints and joint damping off). Returns the world points
    (T, len(items), 3) of ``items`` ((body, local point) pairs), the generalised forces qfrc
    (T, nv), the dense actuator moment arms (T, nu, nv) and each muscle's force at activation 1
    minus at 0 (gain) and at 0 (bias), (T, nu) N, at the current length and velocity."""
    mj, m, d = myo.mj, myo.m, myo.d
    T = q.shape[0]
    bodies = np.array([b for b, _ in items])
    local = np.array([p for _, p in items])
    pts = np.empty((T, len(items), 3))
    qfrc = np.empty((T, m.nv))
    moment = np.empty((T, m.nu, m.nv))
    gain = np.empty((T, m.nu))
    bias = np.empty((T, m.nu))
    dense = np.zeros((m.nu, m.nv))
    saved_flags = m.opt.disableflags
    m.opt.disableflags = saved_flags | int(mj.mjtDisableBit.mjDSBL_CONSTRAINT) | int(
        mj.mjtDisableBit.mjDSBL_DAMPER)
    try:
        for t in range(T):
            d.qpos[:] = q[t]
            d.qvel[:] = qvel[t]
            d.qacc[:] = qacc[t]
            mj.mj_inverse(m, d)
            qfrc[t] = d.qfrc_inverse
            xm = d.xmat[bodies].reshape(-1, 3, 3)
            pts[t] = d.xpos[bodies] + np.einsum("pij,pj->pi", xm, local)
            mj.mju_sparse2dense(dense, d.actuator_moment, d.moment_rownnz, d.moment_rowadr,
                                d.moment_colind)
            moment[t] = dense
            d.act[:] = 1.0
            mj.mj_fwdActuation(m, d)
            f1 = d.actuator_force.copy()
            d.act[:] = 0.0
            mj.mj_fwdActuation(m, d)
            bias[t] = d.actuator_force
            gain[t] = f1 - bias[t]
    finally:
        m.opt.disableflags = saved_flags
    return pts, qfrc, moment, gain, bias


def _root_rotations(q: np.ndarray) -> np.ndarray:
    """(T, 3, 3) root orientations from the free joint's quaternions (w, x, y, z) in qpos."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_quat(np.concatenate([q[:, 4:7], q[:, 3:4]], axis=1)).as_matrix()


@dataclass
class _Split:
    """The root force split over the feet (Z-up world): per foot the force Ff (T, 3) N, CoP
    cop (T, 3) m on the floor and its fraction along heel -> toe (T,); the contact weights w
    (T,) and the contact speeds (T,) m/s; the root force F (T, 3) N."""

    F: np.ndarray
    Ff: list
    cop: list
    along: list
    w: list
    speed: list


def _split_root_wrench(mo: Motion, sole_p: np.ndarray, F: np.ndarray, bw: float) -> _Split:
    """Split the root force ``F`` (T, 3) over the feet in contact (schedule x height gate, lever
    rule of the contact-geometry CoPs), each foot's CoP clamped inside its sole.
    ``sole_p`` (T, 2n, 3): the sole points of both feet (right then left), Z up."""
    T = sole_p.shape[0]
    dt = 1 / RATE
    n1 = sole_p.shape[1] // 2
    heights, heel, toe, cvel, geo = [], [], [], [], []
    vel = np.gradient(sole_p[:, :, :2], dt, axis=0)
    for k in range(2):
        sl = slice(k * n1, (k + 1) * n1)
        wk, hk = _soft_low(sole_p[:, sl, 2], COP_TAU_M)
        heights.append(hk)
        cvel.append(np.linalg.norm(np.einsum("tp,tpi->ti", wk, vel[:, sl]), axis=1))
        geo.append(np.einsum("tp,tpi->ti", wk, sole_p[:, sl, :2]))  # contact-geometry CoP
        heel.append(sole_p[:, k * n1 + 0, :2])
        toe.append(0.5 * (sole_p[:, k * n1 + 1, :2] + sole_p[:, k * n1 + 3, :2]))
    gate = [np.clip((0.05 - h) / 0.04, 0, 1) for h in heights]
    w = [mo.contact[:, k] * gate[k] for k in range(2)]
    valid = F[:, 2] > 0.02 * bw
    tot = w[0] + w[1]
    frac = np.where((tot > 1e-6)[:, None], np.stack(w, 1) / np.maximum(tot, 1e-6)[:, None], 0.0)
    frac[~valid] = 0.0

    def clamp_foot(x, k):
        ax = toe[k] - heel[k]
        L = np.maximum(np.linalg.norm(ax, axis=1, keepdims=True), 1e-6)
        ax = ax / L
        lat = np.stack([-ax[:, 1], ax[:, 0]], axis=1)
        rel = x - heel[k]
        s = np.clip(np.einsum("ti,ti->t", rel, ax), 0, L[:, 0])
        lt = np.clip(np.einsum("ti,ti->t", rel, lat), -_FOOT_HALF_WIDTH, _FOOT_HALF_WIDTH)
        return heel[k] + s[:, None] * ax + lt[:, None] * lat, s / L[:, 0]

    cops = [clamp_foot(geo[k], k) for k in range(2)]
    cop = [np.concatenate([c, np.zeros((T, 1))], axis=1) for c, _ in cops]
    Ff = [frac[:, k:k + 1] * F for k in range(2)]
    for k in range(2):
        Ff[k][:, 2] = np.maximum(Ff[k][:, 2], 0.0)
    return _Split(F=F, Ff=Ff, cop=cop, along=[a for _, a in cops], w=w, speed=cvel)


def _residual_forces(myo: _Myo, q: np.ndarray, split: _Split) -> np.ndarray:
    """(T, nv) generalised forces of the feet's GRF applied at their CoPs (``mj_applyFT``);
    ``qfrc`` minus these is what the root still needs (the residual)."""
    mj, m, d = myo.mj, myo.m, myo.d
    T = q.shape[0]
    Ff, cop = split.Ff, split.cop
    qext = np.zeros((T, m.nv))
    buf = np.zeros(m.nv)
    zero3 = np.zeros(3)
    foot_body = [(myo.bid[f"calcn_{s}"], myo.bid[f"toes_{s}"]) for s in SIDES]
    toe_frac = 0.82  # CoP beyond this fraction of heel->toe length acts on the toes segment
    for t in range(T):
        if not (Ff[0][t, 2] > 0 or Ff[1][t, 2] > 0):
            continue
        d.qpos[:] = q[t]
        mj.mj_kinematics(m, d)
        mj.mj_comPos(m, d)
        for k in range(2):
            if Ff[k][t, 2] > 0:
                body = foot_body[k][1] if split.along[k][t] > toe_frac else foot_body[k][0]
                buf[:] = 0.0
                mj.mj_applyFT(m, d, Ff[k][t], zero3, cop[k][t], body, buf)
                qext[t] += buf
    return qext


def _grf_channels(root: np.ndarray, split: _Split, bw: float) -> np.ndarray:
    """(T, 10) :data:`~hdys_rt.representations.GRF_CHANNELS`: Y-up force per foot in body
    weights, CoP x, z relative to the pelvis (m), NaN where the foot carries no load."""
    T = root.shape[0]
    grf = np.full((T, 10), np.nan)
    pel_yup = zup_to_yup(root).astype(np.float64)
    for k in range(2):
        fy = zup_to_yup(split.Ff[k]).astype(np.float64) / bw
        cy = zup_to_yup(split.cop[k]).astype(np.float64)
        on = fy[:, 1] > 1e-3
        grf[:, 5 * k:5 * k + 3] = fy
        grf[:, 5 * k + 3] = np.where(on, cy[:, 0] - pel_yup[:, 0], np.nan)
        grf[:, 5 * k + 4] = np.where(on, cy[:, 2] - pel_yup[:, 2], np.nan)
    return grf


def _static_optimisation(myo: _Myo, tau, arm, gain, bias) -> tuple[np.ndarray, np.ndarray]:
    """Per frame and leg ``min sum a^2 + sum (r / RESERVE_NM)^2``, ``0 <= a <= 1`` (BVLS) with
    ``arm (gain a + bias) + r = tau``. Returns activations (T, 80) in the model's muscle order
    and the reserve torques r (T, 14) N·m."""
    from scipy.optimize import lsq_linear

    T = tau.shape[0]
    act = np.zeros((T, myo.m.nu))
    reserve = np.zeros((T, len(HINGES)))
    for side in SIDES:
        mi, hi = myo.side_muscles[side], myo.side_hinges[side]
        nm = len(mi)
        reg = np.eye(nm)
        zeros = np.zeros(nm)
        for t in range(T):
            A = arm[t][np.ix_(mi, hi)].T * gain[t, mi]  # (7, 40)
            b = tau[t, hi] - arm[t][np.ix_(mi, hi)].T @ bias[t, mi]
            sol = lsq_linear(np.vstack([A / RESERVE_NM, reg]), np.r_[b / RESERVE_NM, zeros],
                             bounds=(0.0, 1.0), method="bvls")
            act[t, mi] = np.clip(sol.x, 0.0, 1.0)
            reserve[t, hi] = b - A @ sol.x
    return act, reserve


def _quality(keep: slice, split: _Split, grf, res_F, res_M, reserve, bw: float) -> dict:
    """The per-sequence quality numbers of ``meta["quality"]`` over the frames ``keep``."""
    w, F = split.w, split.F
    stance = np.concatenate([w[0][keep] > 0.9, w[1][keep] > 0.9])
    slip = np.concatenate([split.speed[0][keep], split.speed[1][keep]])
    vy = grf[keep][:, [1, 6]].sum(axis=1)
    return {
        "root_residual_force_N": {"mean": float(res_F[keep].mean()), "max": float(res_F[keep].max())},
        "root_residual_moment_Nm": {"mean": float(res_M[keep].mean()), "max": float(res_M[keep].max())},
        "root_force_rms_BW": float(np.sqrt((F[keep] ** 2).sum(1).mean()) / bw),
        "grf_vertical_BW": {"min": float(vy.min()), "max": float(vy.max())},
        "reserve_torque_Nm": {"rms": float(np.sqrt((reserve[keep] ** 2).mean())),
                              "max": float(np.abs(reserve[keep]).max())},
        "stance_contact_speed_mps": float(np.median(slip[stance])) if stance.any() else 0.0,
    }


# --- sequences and plan -----------------------------------------------------------------

SUBJECT_POOL = 12
_FULL_MIX = (  # (motion, sequences, duration range s)
    ("walk", 14, (8, 14)), ("run", 6, (6, 10)), ("turn", 6, (8, 12)), ("squat", 5, (8, 12)),
    ("sit_to_stand", 4, (8, 12)), ("lunge", 4, (8, 12)), ("calf_raise", 4, (6, 10)),
    ("high_step", 5, (6, 10)), ("sway", 5, (8, 12)),
)
_QUICK_MIX = (("walk", 1, (2.0, 2.0)), ("squat", 1, (2.0, 2.0)))


def subject(seed: int, k: int) -> dict:
    """Virtual subject ``k`` of the pool drawn with ``seed``: id and mass scale."""
    rng = np.random.default_rng([seed, 7919, k])
    return {"id": f"myo{k:02d}", "mass_scale": float(rng.uniform(0.8, 1.25))}


def plan_specs(seed: int, quick: bool, mix=None, prefix: str = "") -> list[dict]:
    """Deterministic sequence specs (name, motion, seed, duration, subject)."""
    rng = np.random.default_rng([seed, 101])
    mix = mix or (_QUICK_MIX if quick else _FULL_MIX)
    specs = []
    for motion, n, (lo, hi) in mix:
        for i in range(n):
            specs.append({
                "name": f"{prefix}{motion}_{i:03d}",
                "motion": motion,
                "seed": int(rng.integers(2**31)),
                "duration_s": float(round(rng.uniform(lo, hi), 2)),
                "subject": subject(seed, int(rng.integers(SUBJECT_POOL))),
            })
    return specs


def plan(seed: int, quick: bool) -> list[dict]:
    """Jobs of about 20 s of motion each (quick: one 2 s sequence per job)."""
    specs = plan_specs(seed, quick)
    jobs, cur, dur = [], [], 0.0
    for s in specs:
        cur.append(s)
        dur += s["duration_s"]
        if quick or dur >= 20.0:
            jobs.append({"domain": DOMAIN, "sequences": cur})
            cur, dur = [], 0.0
    if cur:
        jobs.append({"domain": DOMAIN, "sequences": cur})
    return jobs


def simulate_spec(spec: dict, pad_s: float = 0.5) -> tuple[Motion, SimResult]:
    mo = make_motion(spec["motion"], spec["seed"], spec["duration_s"] + 2 * pad_s)
    return mo, simulate(mo, spec["subject"]["mass_scale"], pad_s=pad_s)


def joint_angles(res: SimResult) -> tuple[np.ndarray, tuple[str, ...]]:
    """Rajagopal coordinates (T, 20) without the lumbar ones (MyoLegs has no lumbar joint)."""
    from scipy.spatial.transform import Rotation

    eul = Rotation.from_matrix(res.pelvis_rot).as_euler("ZXY")  # tilt, list, rotation
    trans = zup_to_yup(res.root).astype(np.float64)
    names = reps.RAJAGOPAL_COORDINATES[:6] + HINGES_ORDERED
    hinge = res.hinge[:, [HINGES.index(h) for h in HINGES_ORDERED]]
    return np.concatenate([eul, trans, hinge], axis=1), names


HINGES_ORDERED = tuple(c for c in reps.RAJAGOPAL_COORDINATES[6:] if c in HINGES)


def keypoints_yup(res: SimResult) -> tuple[np.ndarray, tuple[str, ...]]:
    return zup_to_yup(res.keypoints), tuple(n for n, _, _ in _myo().keypoints)


def markers_yup(res: SimResult, seed: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """Markers with per-sequence placement jitter (rigid in the body frame) and drop-outs."""
    myo = _myo()
    rng = np.random.default_rng([seed, 31])
    names = [n for n, _, _ in myo.markers]
    items = [(b, p + rng.normal(0, MARKER_JITTER_M, 3)) for _, b, p in myo.markers]
    pts = myo.points(res.q, items)
    keep = np.ones(len(names), bool)
    if rng.random() < 0.5:
        drop = rng.choice(len(names), size=int(rng.integers(1, 6)), replace=False)
        keep[drop] = False
    return zup_to_yup(pts[:, keep]), tuple(n for n, k in zip(names, keep) if k)


def activations(res: SimResult) -> np.ndarray:
    """Activations (T, 80) in representations.MUSCLES order."""
    order = [_myo().muscles.index(mu) for mu in reps.MUSCLES]
    return res.act[:, order]


def _subject(spec: dict, res: SimResult) -> Subject:
    return Subject(spec["subject"]["id"], round(res.mass, 2), NOMINAL_HEIGHT_M)


def build_sequence(spec: dict) -> Sequence:
    """Simulate one spec into a corpus :class:`Sequence` (all representations)."""
    mo, res = simulate_spec(spec)
    ja, ja_names = joint_angles(res)
    kp, kp_names = keypoints_yup(res)
    mk, mk_names = markers_yup(res, spec["seed"])
    tau = res.tau[:, [HINGES.index(h) for h in HINGES_ORDERED]] / res.mass
    return Sequence(
        name=spec["name"], domain=DOMAIN, rate=RATE, subject=_subject(spec, res),
        source=("MuJoCo MyoLegs (myo_sim, Apache-2.0): parametric motion, mj_inverse torques, "
                "root-wrench GRF split, static-optimisation activations"),
        data={"markers": mk, "keypoints": kp, "joint_angles": ja, "torques_rajagopal": tau,
              "grf": res.grf, "activations": activations(res)},
        names={"markers": mk_names, "keypoints": kp_names, "joint_angles": ja_names,
               "torques_rajagopal": HINGES_ORDERED, "grf": reps.GRF_CHANNELS,
               "activations": reps.MUSCLES},
        meta={"keypoint_layout": "opensim", "motion": spec["motion"], "seed": spec["seed"],
              "motion_params": mo.params, "mass_scale": spec["subject"]["mass_scale"],
              "quality": res.quality},
    )


def sequences(job: dict) -> Iterator[Sequence]:
    """The job's sequences (one per spec), built one at a time."""
    for spec in job["sequences"]:
        seq = build_sequence(spec)
        log.info("%s: root residual %.0f N·m mean", seq.name,
                 seq.meta["quality"]["root_residual_moment_Nm"]["mean"])
        yield seq
