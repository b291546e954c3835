"""Dynamics from the simulator: ``mj_inverse`` on the motion gives the generalised forces; the
root wrench is split over the foot (and seat) contact vertices by NNLS over friction pyramids;
joint torques (N·m/kg) and GRF (N/BW, CoP m) follow."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hdys_rt.data.domains.humanoid.curves import _ss
from hdys_rt.data.domains.humanoid.kinematics import Motion
from hdys_rt.data.domains.humanoid.mjcf import _Model
from hdys_rt.data.domains.humanoid.motions import _fwd, _left
from hdys_rt.data.domains.humanoid.skeleton import (
    C_ZY, DT, JI, LEFT, RIGHT, Skeleton, vertex_table,
)
from hdys_rt.representations import G

MU = 0.8  # friction coefficient of the contact pyramids


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
