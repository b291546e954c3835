"""Mirror images of the body (x -> -x), and estimates averaged with their mirror image.

The dynamics of a mirrored motion are the mirrored dynamics: the left leg's torques of the
image are the right leg's torques of the motion, trunk rotations and lateral forces change
sign. Training shows the model the image of half its windows (:class:`hdys_rt.training.data.
Augment`), which teaches that symmetry only approximately. A model whose metadata says
``"mirror_average": true`` (every model ``hdys-rt train`` writes) is run on each frame AND on its
image, and the two estimates are averaged (:class:`OutputMirror`): the symmetry then holds
exactly, for one more row per frame in the same batched call.

Ground reaction forces are not averaged: on the held-out persons of the README the average
kept the GRF error about the same and raised the force estimated in flight (running: 65 -> 60
% of flight frames under 0.1 BW; jumping: 55 -> 43 %), while the torques gained (mean MAE of
the big joints: running 0.232 -> 0.206, sit-to-stand 0.271 -> 0.235, squat 0.269 -> 0.245,
jump 0.550 -> 0.527 N·m/kg; walking unchanged). Outputs with no mirror image (SMPL torques)
are the frame's own estimate.
"""

from __future__ import annotations

import numpy as np

from hdys_rt import representations as reps

#: vector channels that change sign under a mirror image (x -> -x after the yaw): rotations
#: about the forward and vertical axes of the trunk, lateral translation; bilateral channels
#: swap sides instead (OpenSim mirrors the left side's axes, so they keep their sign)
_MIRROR_NEGATE = {
    "joint_angles": ("pelvis_list", "pelvis_rotation", "pelvis_tz", "lumbar_bending",
                     "lumbar_rotation"),
    "torques_rajagopal": ("lumbar_bending", "lumbar_rotation"),
    "grf": ("r_fx", "r_copx", "l_fx", "l_copx"),  # world x is the mirrored axis
}

#: outputs that stay the frame's own estimate even when they have an image (see module doc)
NOT_AVERAGED = ("grf",)


def _side_swap(name: str) -> str:
    for a, b in (("_r", "_l"), ("_l", "_r")):
        if name.endswith(a):
            return name[:-2] + b
    for a, b in (("r_", "l_"), ("l_", "r_")):
        if name.startswith(a):
            return b + name[2:]
    return name


def mirror_plan(key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """How a vector representation follows the mirror image x -> -x of the body: (source
    channel of every channel (C,), sign (C,)); None when it cannot be mirrored (SMPL)."""
    rep = reps.get(key)
    if key.startswith("smpl") or key == "torques_smpl":
        return None
    chans = list(rep.channels)
    src = np.array([chans.index(_side_swap(c)) if _side_swap(c) in chans else i
                    for i, c in enumerate(chans)])
    sign = np.array([-1.0 if c in _MIRROR_NEGATE.get(key, ()) else 1.0 for c in chans],
                    np.float32)
    return src, sign


def mirrorable(keys) -> bool:
    return all(reps.get(k).point_set or mirror_plan(k) is not None for k in keys)


def mirror_points(x: np.ndarray) -> np.ndarray:
    """The image x -> -x of points (..., 3) (a new array)."""
    out = np.array(x, dtype=np.float32, copy=True)
    out[..., 0] *= -1.0
    return out


def mirror_input(key: str, x: np.ndarray) -> np.ndarray | None:
    """The mirror image of an input sequence: points (..., P, 3) or a canonical vector
    (..., C); None when the representation has no image (SMPL)."""
    if reps.get(key).point_set:
        return mirror_points(x)
    plan = mirror_plan(key)
    if plan is None:
        return None
    src, sign = plan
    return (x[..., src] * sign).astype(np.float32)


def averages(meta: dict, asked: bool | None = None) -> bool:
    """Whether a model's estimates are averaged with their mirror image: as ``asked`` (a
    caller's flag), else as its metadata says."""
    return bool(meta.get("mirror_average", False)) if asked is None else bool(asked)


class OutputMirror:
    """Averages estimates with the estimates of the mirror image, for outputs ``names`` in
    order (their channels concatenated in that order for :meth:`flat`)."""

    def __init__(self, names):
        self.plans = {}
        src, sign, avg, base = [], [], [], 0
        for name in names:
            C = reps.get(name).size
            plan = mirror_plan(name) if name not in NOT_AVERAGED else None
            if plan is not None:
                self.plans[name] = plan
            s, g = plan if plan is not None else (np.arange(C), np.ones(C, np.float32))
            src.append(base + s)
            sign.append(g)
            avg.append(np.full(C, plan is not None))
            base += C
        self._src, self._sign, self._avg = (np.concatenate(src), np.concatenate(sign),
                                            np.concatenate(avg))

    def flat(self, own: np.ndarray, image: np.ndarray) -> np.ndarray:
        """(..., C) own estimates and the image's -> the averaged (..., C), in place in own."""
        mixed = 0.5 * (own + image[..., self._src] * self._sign)
        own[..., self._avg] = mixed[..., self._avg]
        return own

    def named(self, own: dict, image: dict) -> dict:
        """name -> (..., C) estimates and the image's -> the averaged estimates (new dict)."""
        out = dict(own)
        for name, (src, sign) in self.plans.items():
            if name in own:
                out[name] = 0.5 * (own[name] + image[name][..., src] * sign)
        return out
