"""The subject's MuJoCo model: MJCF text written from a :class:`Skeleton` (capsules, boxes, a
sphere; free root, ball joints, foot contact sites) and the compiled model with its index maps."""

from __future__ import annotations

import numpy as np

from hdys_rt import representations as reps
from hdys_rt.data.domains.humanoid.skeleton import (
    ANKLE_H, BALL_Z, C_ZY, DT, HEEL_Z, JI, PARENTS, Skeleton, _MASS, _key, vertex_table,
)
from hdys_rt.errors import HdysError
from hdys_rt.representations import G


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



def mjcf(sk: Skeleton) -> str:
    """MJCF text of the subject's model (MuJoCo Z up; joints named as the SMPL joints)."""
    children = {j: [c for c in range(24) if PARENTS[c] == j] for j in range(24)}
    sites: dict[int, list[str]] = {}
    for vname, _, body, p in vertex_table(sk):
        sites.setdefault(body, []).append(f'<site name="{vname}" pos="{_fmt(_z(p))}" size="0.005"/>')
    lines = [
        '<mujoco model="hdys_humanoid">',
        '  <compiler angle="radian" inertiafromgeom="true"/>',
        f'  <option timestep="{DT:g}" gravity="0 0 {-G:g}"/>',
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
