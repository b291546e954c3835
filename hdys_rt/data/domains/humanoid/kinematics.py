"""The kinematics solver: foot trajectories, analytic leg IK and the cart-table (ZMP)
boundary-value problem for the pelvis path turn a motion specification into a
:class:`Motion` (joint centres, rotations, centre of mass; Y up, metres)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from hdys_rt.data.domains.humanoid.curves import _gauss, _keys, _ss, rx, ry, rz
from hdys_rt.data.domains.humanoid.mjcf import _Model
from hdys_rt.data.domains.humanoid.motions import MOTIONS, PAD_S, _GENERATORS, _Spec
from hdys_rt.data.domains.humanoid.skeleton import (
    ANKLE_H, BALL_Z, DT, HEEL_Z, JI, LEFT, PARENTS, RATE, RIGHT, Skeleton, _SIDE, vertex_table,
)
from hdys_rt.errors import HdysError
from hdys_rt.representations import G

log = logging.getLogger(__name__)


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
