"""Procedural motions: each generator writes a motion specification (:class:`_Spec`: foot
stances, pelvis orientation, upper-body joint curves, vertical programme) for the kinematics
solver (:mod:`.kinematics`). Times in s, lengths in m, angles in rad, Y up."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hdys_rt.data.domains.humanoid.curves import (
    _bump, _gauss, _keys, _noise, _quintic, _ss, rx, ry, rz,
)
from hdys_rt.data.domains.humanoid.skeleton import DT, JI, LEFT, RATE, RIGHT, _SIDE
from hdys_rt.errors import HdysError
from hdys_rt.representations import G

PAD_S = 1.2  # s generated before and after every sequence, then cropped (BVP boundary effects)
RUN_RHO = 0.97  # stance-leg reach used in running
RUN_MARGIN = 0.0  # s: running stance force starts after touchdown, ends before toe-off
ZMP_GAIN = 0.6  # damping of the multibody-ZMP feedback into the CoP reference

MOTIONS: tuple[str, ...] = (
    "walk", "run", "turn", "side_step", "squat", "sit_stand", "jump", "reach", "perturbation",
    "stand",
)


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
