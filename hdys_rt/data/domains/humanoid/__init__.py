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

Where each part lives: :mod:`.skeleton` (subject, joint tree, contact vertices), :mod:`.mjcf`
(model), :mod:`.curves` (rotations, smooth curves), :mod:`.motions` (the generators),
:mod:`.kinematics` (feet, IK, ZMP: :func:`make_motion`), :mod:`.simulate` (dynamics); this module
plans the jobs and yields the sequences.

Outputs (Y up, metres, 100 Hz): ``keypoints`` (smpl24 joint centres), ``smpl_pose`` (pelvis
position as ``transl``, root orientation in the Y-up world, 23 local axis-angles in SMPL's
rest frames, which are world-aligned in the T pose), ``torques_smpl`` (3 components per ball
joint in the joint's local SMPL axes x left, y up, z forward; N·m/kg), ``grf`` (per foot force
/ body weight, CoP x, z relative to the pelvis, NaN off the ground), ``markers`` (40 virtual
skin markers) and, for :data:`~.markers.RAJAGOPAL_KINDS`, ``torques_rajagopal`` (sagittal
channels; :mod:`.markers`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import numpy as np

from hdys_rt import representations as reps
from hdys_rt.data.corpus import Sequence, Subject
from hdys_rt.data.domains.humanoid.kinematics import Motion, fk, make_motion
from hdys_rt.data.domains.humanoid.markers import (
    RAJAGOPAL_KINDS, marker_names, rajagopal_torques, virtual_markers,
)
from hdys_rt.data.domains.humanoid.mjcf import _Model, mjcf
from hdys_rt.data.domains.humanoid.motions import MOTIONS
from hdys_rt.data.domains.humanoid.simulate import SimResult, simulate, to_qpos
from hdys_rt.data.domains.humanoid.skeleton import (
    C_ZY, HEAD_TOP, JI, RATE, Skeleton, make_skeleton, vertex_table,
)
from hdys_rt.errors import HdysError
from hdys_rt.representations import G

__all__ = [  # the domain protocol, and the parts kinematics_only and the tests use
    "DOMAIN", "KIND", "DESCRIPTION", "plan", "sequences", "build_sequence", "smpl_pose",
    "MOTIONS", "RATE", "G", "JI", "HEAD_TOP", "C_ZY", "Skeleton", "make_skeleton",
    "vertex_table", "mjcf", "Motion", "fk", "make_motion", "SimResult", "simulate", "to_qpos",
]

log = logging.getLogger(__name__)

DOMAIN = "humanoid"
KIND = "sim"
DESCRIPTION = (
    "SMPL-like 24-joint MuJoCo humanoid (own MJCF, de Leva proportions, randomised subjects) "
    "driven by procedural walk / run / turn / side-step / squat / sit-stand / jump / reach / "
    "perturbation motions; torques from mj_inverse, GRF by NNLS split of the root wrench over "
    "foot contact vertices"
)


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
    markers = virtual_markers(sk, mo, np.random.default_rng([seed, 0x4D4B]))[cr]
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
    data = {"keypoints": kp, "markers": markers, "smpl_pose": pose,
            "torques_smpl": sim.torques.astype(np.float32), "grf": grf}
    if kind in RAJAGOPAL_KINDS:
        data["torques_rajagopal"] = rajagopal_torques(sim.torques)
    names = {"keypoints": reps.SMPL_JOINTS, "markers": marker_names(),
             "smpl_pose": reps.SMPL_POSE_CHANNELS, "torques_smpl": reps.SMPL_TORQUE_CHANNELS,
             "torques_rajagopal": reps.RAJAGOPAL_TORQUE_JOINTS, "grf": reps.GRF_CHANNELS}
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
        "markers": "40 virtual skin markers (humanoid.markers.MARKERS), placement jittered 1 cm",
        "torques_rajagopal": "sagittal channels from torques_smpl (humanoid.markers.SAGITTAL), "
                             "motions of humanoid.markers.RAJAGOPAL_KINDS only; frontal / "
                             "transverse NaN",
        "smpl_transl": "pelvis joint position (Y up, m)",
        "grf": "contact split of the free root's generalised force over foot vertices (NNLS, "
               "friction pyramids mu=0.8); CoP relative to the pelvis; NaN CoP off the ground",
        "quality": quality,
    }
    seq = Sequence(
        name=name, domain=DOMAIN, rate=RATE,
        subject=Subject(subject_id, round(sk.mass, 3), round(sk.height, 4)),
        source=f"MuJoCo mj_inverse on hdys SMPL-like humanoid, procedural {kind}",
        data=data, names={k: names[k] for k in data},
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


def sequences(job: dict) -> Iterator[Sequence]:
    """One job's sequences (one random subject), built one at a time."""
    try:
        index, seed, seqs = int(job["index"]), int(job["seed"]), list(job["sequences"])
    except (KeyError, TypeError, ValueError) as exc:
        raise HdysError(f"humanoid job {job!r} is malformed ({exc}); rebuild the plan") from None
    rng = np.random.default_rng([seed, index])
    sk = make_skeleton(rng, job.get("height_m"), job.get("mass_kg"))
    sid = f"hum{index:03d}"
    for k, s in enumerate(seqs):
        name = f"{sid}_{k}_{s['kind']}"
        yield build_sequence(s["kind"], int(rng.integers(2**31)), float(s["duration"]), sk,
                             name, sid)
