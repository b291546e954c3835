"""Real lab domain: gait recordings from the opensim-models pipelines, processed with OpenSim.

Two subjects (see :data:`SUBJECTS`):

* ``rajagopal_s1`` (Pipelines/Rajagopal, 100 Hz, split "train"): Scale (manual scale set of the
  pipeline + marker placement on the static trial) -> IK -> ID, static optimisation for muscle
  activations (full plan, cached), real processed sEMG envelopes (scripts/emg_walk.mat, right leg).
* ``gait2354_s01`` (Pipelines/Gait2354_Simbody, 60 Hz, split "test"): the pipeline's own scaled
  model and IK/ID setups; never augmented.

Every sequence carries markers (real, m), joint_angles (rad | m), torques_rajagopal (N·m/kg),
grf (N/BW | m, CoP relative to the pelvis), keypoints (joint centres of the IK'd model) and, where
available, semg and activations. All arrays are sampled at the marker frames that lie inside the
subject's ID window (frames where every foot contact is measured by a force plate).

Augmentations of ``rajagopal_s1`` stay physically consistent: the *inputs* (real markers and real
GRF) are transformed, and IK + ID are re-run on them, so torques always follow from the motion and
the forces through the model:

* time warp (speed factor s): marker and GRF time axes stretched by 1/s;
* mirror: z -> -z, left/right marker names and force plates swapped (sEMG moves to the left leg);
* re-scaled subject (factor k): model scaled uniformly by k with mass k^3 (Froude similarity:
  markers and CoP x k, time x sqrt(k), forces x k^3, free moments x k^4).

The OpenSim tools write intermediate files: each job works in its own temporary directory.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hdys_rt import representations as reps
from hdys_rt.data.corpus import Sequence, Subject
from hdys_rt.data.opensim_tools import (coordinates, load_opensim, quiet_stdout, read_markers,
                                          read_table, run_id, run_ik, scale_model,
                                          write_markers, write_table)
from hdys_rt.data.shared import shared_data_dir as _shared_dir
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)

DOMAIN = "lab_real"
KIND = "real"
DESCRIPTION = (
    "Real lab gait (opensim-models pipelines: Rajagopal subject, Gait2354 subject01) processed "
    "with OpenSim Scale/IK/ID/StaticOptimization; physically consistent augmentations (time "
    "warp, mirror, re-scaled subject) of the training subject; gait2354_s01 is the held-out test "
    "subject."
)

from hdys_rt.data.shared import ENV_VAR as ENV_DATA  # noqa: F401 (re-export)
ENV_CACHE = "HDYS_CACHE_DIR"  # overrides the cache folder (static optimisation results)

LOWPASS_HZ = 6.0  # ID low-pass on coordinates, as in the pipelines' setups
COP_MIN_FZ_N = 20.0  # CoP is NaN below this vertical force
N_AUGMENT = 64  # augmented copies of rajagopal_s1 in the full plan
SO_VERSION = 1  # bump to invalidate cached static optimisation results

#: sEMG channel of emg_walk.mat -> Rajagopal muscle (the recorded leg is the right one: soleus
#: peaks in late right stance). One muscle per electrode; MH is taken as semitendinosus and the
#: gluteal electrodes as the middle compartments.
EMG_TO_MUSCLE = {
    "SOL": "soleus", "GAS": "gasmed", "TA": "tibant", "MH": "semiten", "BF": "bflh",
    "VL": "vaslat", "VM": "vasmed", "RF": "recfem", "GMAX": "glmax2", "GMED": "glmed2",
}
EMG_SIDE = "r"


@dataclass(frozen=True)
class SubjectSpec:
    """Where one subject's recording lies in the shared data and how to process it.

    Paths are relative to ``opensim-models/``. ``window`` is the ID window (s, source time):
    the frames where every foot contact is on a force plate.
    """

    id: str
    split: str
    mass_kg: float
    mass_note: str
    height_m: float
    height_note: str
    pipeline: str
    trc: str
    grf: str
    loads_xml: str
    ik_setup: str
    window: tuple[float, float]
    window_note: str
    scaled_model: str | None = None  # use this model as is (else run the Scale step below)
    generic_model: str | None = None
    scale_setup: str | None = None
    scale_markerset: str | None = None
    scale_set: str | None = None
    static_trc: str | None = None
    emg_mat: str | None = None
    reference_id: str | None = None
    #: coordinates whose sign convention is opposite to Rajagopal's (angle and moment negated)
    flip_sign: tuple[str, ...] = ()


SUBJECTS: dict[str, SubjectSpec] = {
    "rajagopal_s1": SubjectSpec(
        id="rajagopal_s1",
        split="train",
        # The force plates weigh this subject: mean vertical GRF over the full stride between
        # right heel strikes (0.2675..1.4115 s) / g = 77.3 kg. The 72.6 kg quoted for this
        # pipeline is gait2354 subject01's mass; with it ID leaves a -0.18 BW vertical pelvis
        # residual (0.11 BW with 77.3 kg) and every N·m/kg and N/BW value 6% too high.
        mass_kg=77.3,
        mass_note="mean vertical GRF over one full stride (right heel strike to right heel "
                  "strike, 0.2675..1.4115 s) / g; the pipeline's scale setup gives no mass",
        height_m=1.91,
        height_note="not recorded: estimated as the shoulder markers' height in the static "
                    "trial (1.567 m) / 0.818 (Drillis & Contini segment proportions)",
        pipeline="Pipelines/Rajagopal",
        trc="Pipelines/Rajagopal/ExpData/motion_capture_walk.trc",
        grf="Pipelines/Rajagopal/ExpData/grf_walk.mot",
        loads_xml="Pipelines/Rajagopal/ID/grf_walk.xml",
        ik_setup="Pipelines/Rajagopal/IK/ik_setup_walk.xml",
        window=(0.40, 2.00),
        window_note="both feet on force plates (outside it the pelvis residual is ~1 BW)",
        generic_model="Models/Rajagopal/Rajagopal2016.osim",
        scale_setup="Pipelines/Rajagopal/Scale/scale_setup_walk.xml",
        scale_markerset="Pipelines/Rajagopal/Scale/markerset_walk_preScale.xml",
        scale_set="Pipelines/Rajagopal/Scale/scaleSet_applied_walk.xml",
        static_trc="Pipelines/Rajagopal/ExpData/static_walk_2.trc",
        emg_mat="Pipelines/Rajagopal/scripts/emg_walk.mat",
    ),
    "gait2354_s01": SubjectSpec(
        id="gait2354_s01",
        split="test",
        mass_kg=72.6,
        mass_note="subject01_Setup_Scale.xml <mass>",
        height_m=1.8034,  # subject01_Setup_Scale.xml <height> 1803.4 mm
        height_note="subject01_Setup_Scale.xml",
        pipeline="Pipelines/Gait2354_Simbody",
        trc="Pipelines/Gait2354_Simbody/subject01_walk1.trc",
        grf="Pipelines/Gait2354_Simbody/subject01_walk1_grf.mot",
        loads_xml="Pipelines/Gait2354_Simbody/subject01_walk1_grf.xml",
        ik_setup="Pipelines/Gait2354_Simbody/subject01_Setup_IK.xml",
        window=(0.05, 2.45),
        window_note="whole trial (both feet on force plates throughout) less the filter edges",
        scaled_model="Pipelines/Gait2354_Simbody/OutputReference/subject01_simbody.osim",
        reference_id="Pipelines/Gait2354_Simbody/OutputReference/ResultsInverseDynamics/"
        "inverse_dynamics.sto",
        flip_sign=("knee_angle_r", "knee_angle_l"),  # gait2354: flexion < 0; Rajagopal: > 0
    ),
}

#: Keypoint (layout "opensim") -> the coordinate whose joint's child frame is that joint centre;
#: "pelvis" is the pelvis body origin.
KEYPOINT_COORDINATE = {
    "hip_r": "hip_flexion_r", "knee_r": "knee_angle_r", "ankle_r": "ankle_angle_r",
    "subtalar_r": "subtalar_angle_r", "mtp_r": "mtp_angle_r",
    "hip_l": "hip_flexion_l", "knee_l": "knee_angle_l", "ankle_l": "ankle_angle_l",
    "subtalar_l": "subtalar_angle_l", "mtp_l": "mtp_angle_l", "lumbar": "lumbar_extension",
}


# --- locating inputs ---------------------------------------------------------------------------


def shared_data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The shared data folder holding ``opensim-models/`` (a job's ``data_root`` first; see
    :mod:`hdys_rt.data.shared`)."""
    return _shared_dir("opensim-models/Pipelines", explicit)


def check_inputs() -> None:
    """Raise :class:`HdysError` (saying where the data comes from) when it is not there."""
    shared_data_root()


def cache_root(explicit: str | os.PathLike | None = None) -> Path:
    """Cache folder for slow results: ``explicit``, ``$HDYS_CACHE_DIR``, else ``<repo>/.cache``."""
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE])
    return Path(__file__).resolve().parents[3] / ".cache"


# --- plan ----------------------------------------------------------------------------------------


def plan(seed: int, quick: bool) -> list[dict]:
    """Jobs of this domain: the two real trials, and in the full plan augmented copies.

    Quick: both trials without static optimisation. Full: rajagopal_s1 with static optimisation,
    gait2354_s01, and ``N_AUGMENT`` augmentations of rajagopal_s1 (speed 0.8..1.2 for two thirds of
    them, scale 0.9..1.1, mirrored every other one), drawn from ``seed``.
    """
    jobs = [
        _job("rajagopal_s1", "rajagopal_s1_walk", seed, static_optimization=not quick),
        _job("gait2354_s01", "gait2354_s01_walk1", seed),
    ]
    if quick:
        return jobs
    rng = np.random.default_rng([seed, 1302])
    for i in range(N_AUGMENT):
        speed = 1.0 if i % 3 == 2 else float(np.round(rng.uniform(0.8, 1.2), 3))
        scale = float(np.round(rng.uniform(0.9, 1.1), 3))
        jobs.append(_job("rajagopal_s1", f"rajagopal_s1_walk_aug{i:03d}", seed + 1 + i,
                         speed=speed, scale=scale, mirror=bool(i % 2)))
    return jobs


def _job(subject, name, seed, speed=1.0, scale=1.0, mirror=False, static_optimization=False):
    return {"domain": DOMAIN, "subject": subject, "name": name, "seed": int(seed),
            "speed": float(speed), "scale": float(scale), "mirror": bool(mirror),
            "static_optimization": bool(static_optimization), "data_root": None,
            "cache_dir": None}


# --- sequences -----------------------------------------------------------------------------------------


def sequences(job: dict) -> Iterator[Sequence]:
    """The job's one sequence."""
    spec = SUBJECTS.get(job.get("subject"))
    if spec is None:
        raise HdysError(f"lab_real job: unknown subject {job.get('subject')!r}; "
                        f"expected one of {sorted(SUBJECTS)}")
    speed, k = float(job.get("speed", 1.0)), float(job.get("scale", 1.0))
    mirror = bool(job.get("mirror", False))
    if not (0.5 <= speed <= 2.0) or not (0.5 <= k <= 1.5):
        raise HdysError(f"lab_real job {job.get('name')!r}: speed={speed} must be in 0.5..2 and "
                        f"scale={k} in 0.5..1.5")
    if spec.split == "test" and (speed != 1.0 or k != 1.0 or mirror):
        raise HdysError(f"lab_real: {spec.id} is held-out test data and must not be augmented")
    root = shared_data_root(job.get("data_root")) / "opensim-models"
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hdys_lab_real_") as tmp:
        seq = _process(spec, root, Path(tmp), job, speed, k, mirror)
    seq.meta["build_seconds"] = round(time.perf_counter() - t_start, 2)
    yield seq


def _process(spec: SubjectSpec, root: Path, tmp: Path, job: dict, speed: float, k: float,
             mirror: bool) -> Sequence:
    osim = load_opensim()
    tfac = math.sqrt(k) / speed  # new time = source time x tfac
    mass = spec.mass_kg * k**3

    # 1. model
    model_path = _subject_model(osim, spec, root, tmp, mirror)
    if k != 1.0:
        model_path = scale_model(osim, model_path, k, mass, tmp / f"scaled_x{k:g}.osim")

    # 2. markers and GRF, transformed like the motion
    times, names, xyz, rate = read_markers(root / spec.trc)
    times, xyz = _resample_markers(times, xyz, rate, tfac)
    xyz = xyz * k
    if mirror:
        xyz, names = _mirror_points(xyz, names)
    trc_path = tmp / "markers.trc"
    write_markers(trc_path, times, names, xyz, rate)

    grf_t, grf_labels, grf = read_table(root / spec.grf)
    forces = _external_forces(osim, root / spec.loads_xml)
    grf = _transform_grf(grf, grf_labels, forces, k, mirror)
    grf_t = grf_t * tfac
    grf_path = tmp / "grf.mot"
    write_table(grf_path, grf_t, grf_labels, grf)
    loads_path = _write_loads(osim, root / spec.loads_xml, grf_path, tmp)

    # 3. IK over the window plus a margin, then ID
    w0, w1 = spec.window[0] * tfac, spec.window[1] * tfac
    margin = 0.1 * tfac
    t_ik0 = max(times[0], grf_t[0], w0 - margin)
    t_ik1 = min(times[-1], grf_t[-1], w1 + margin)
    ik_path = run_ik(osim, model_path, trc_path, (t_ik0, t_ik1), tmp, setup=root / spec.ik_setup,
                     report_errors=True, what="lab_real: ")
    id_t, id_labels, id_gen = run_id(osim, model_path, ik_path, loads_path, LOWPASS_HZ, tmp,
                                     (t_ik0, t_ik1), ("Muscles", "Actuators"), "lab_real: ")
    rms_t, rms = _ik_errors(tmp)

    # 4. frames: marker frames inside the window that have ID results
    model = osim.Model(str(model_path))
    state = model.initSystem()
    q_t, q_labels, q = coordinates(osim, model, ik_path, LOWPASS_HZ)
    keep = (id_t >= w0 - 0.25 / rate) & (id_t <= w1 + 0.25 / rate)
    ft = id_t[keep]
    if ft.size < 10:
        raise HdysError(f"lab_real {job['name']}: only {ft.size} frames with ID results in "
                        f"{w0:.2f}..{w1:.2f} s; check the TRC/GRF time ranges")
    marker_idx = _match_times(times, ft, 0.25 / rate)
    q_idx = _match_times(q_t, ft, 0.25 / rate)
    ft = times[marker_idx]  # the exact marker frame times (IK may round them slightly)
    q = q[q_idx]
    id_gen = id_gen[keep]

    data, chan = {}, {}
    data["markers"], chan["markers"] = xyz[marker_idx], tuple(names)

    coord_names = [c for c in reps.RAJAGOPAL_COORDINATES if c in q_labels]
    data["joint_angles"] = q[:, [q_labels.index(c) for c in coord_names]]
    chan["joint_angles"] = tuple(coord_names)

    tq_names = [j for j in reps.RAJAGOPAL_TORQUE_JOINTS if f"{j}_moment" in id_labels]
    data["torques_rajagopal"] = id_gen[:, [id_labels.index(f"{j}_moment") for j in tq_names]] / mass
    chan["torques_rajagopal"] = tuple(tq_names)
    for c in spec.flip_sign:  # to Rajagopal's sign conventions
        if c in coord_names:
            data["joint_angles"][:, coord_names.index(c)] *= -1.0
        if c in tq_names:
            data["torques_rajagopal"][:, tq_names.index(c)] *= -1.0

    pelvis_xz = np.stack([q[:, q_labels.index("pelvis_tx")], q[:, q_labels.index("pelvis_tz")]], 1)
    data["grf"], chan["grf"] = _grf_channels(grf_t, grf_labels, grf, forces, ft, mass, pelvis_xz)

    data["keypoints"] = _keypoints(model, state, q_labels, q)
    chan["keypoints"] = reps.KEYPOINT_LAYOUTS["opensim"]

    meta = {
        "split": spec.split,
        "keypoint_layout": "opensim",
        "t0_s": float(ft[0]),
        "source_t0_s": float(ft[0] / tfac),
        "augmentation": {"speed": speed, "scale": k, "mirror": mirror, "time_factor": tfac},
        "markers_source": _markers_note(speed, k, mirror),
        "processing": _processing_note(spec, k),
        "window_s": [float(w0), float(w1)],
        "window_note": spec.window_note,
        "mass_note": spec.mass_note + (f"; x {k}^3 (re-scaled subject)" if k != 1.0 else ""),
        "height_note": spec.height_note,
        "joint_angles_note": f"IK coordinates low-pass filtered at {LOWPASS_HZ} Hz (the ID input)"
                             + (f"; sign flipped to Rajagopal's convention: {list(spec.flip_sign)}"
                                if spec.flip_sign else ""),
        "grf_note": "force plates mapped to feet as the ID ExternalLoads apply them "
                    "(calcn_r / calcn_l); CoP minus (pelvis_tx, pelvis_tz); NaN below "
                    f"{COP_MIN_FZ_N} N",
    }
    meta.update(_quality(rms_t, rms, id_labels, id_gen, mass, grf_t, grf_labels, grf, forces, ft))

    if spec.emg_mat and speed == 1.0:
        semg = _semg(root / spec.emg_mat, ft / tfac, mirror)
        if semg is not None:
            data["semg"], chan["semg"] = semg
            meta["semg_note"] = (
                "real processed envelopes of scripts/emg_walk.mat (right leg"
                + (", moved to the left leg by the mirror" if mirror else "")
                + "), clipped at 0, normalised to each channel's peak over the trial, sampled "
                  "at the marker frames; electrode -> muscle: "
                + ", ".join(f"{e}->{m}" for e, m in EMG_TO_MUSCLE.items())
            )
    if job.get("static_optimization"):
        act_names, act = _static_optimization(osim, model_path, ik_path, loads_path, (w0, w1),
                                              ft, tmp, cache_root(job.get("cache_dir")))
        data["activations"], chan["activations"] = act, act_names
        meta["activations_note"] = (
            "OpenSim StaticOptimization (AnalyzeTool, activation exponent 2, coordinate "
            "reserves: optimal force 1 N·m, pelvis 1000), on the same filtered IK and GRF"
        )

    return Sequence(
        name=job["name"], domain=DOMAIN, rate=float(rate),
        subject=Subject(spec.id, round(mass, 3), round(spec.height_m * k, 4)),
        source=f"opensim-models {spec.pipeline} (public opensim-models repository, OpenSim "
               f"Apache-2.0); OpenSim {getattr(osim, '__version__', '4.x')} Scale/IK/ID",
        data=data, names=chan, meta=meta,
    )


def _markers_note(speed, k, mirror) -> str:
    if speed == 1.0 and k == 1.0 and not mirror:
        return "real markers from the TRC (mm -> m), NaN where missing"
    parts = ["real markers from the TRC (mm -> m)"]
    if speed != 1.0 or k != 1.0:
        parts.append("time-resampled (linear) to the warped time axis")
    if k != 1.0:
        parts.append(f"scaled by {k} about the lab origin")
    if mirror:
        parts.append("mirrored (z -> -z) with left/right names swapped (the subject model is "
                     "rebuilt from the mirrored static trial)")
    return ", ".join(parts) + "; IK re-run on them"


def _processing_note(spec: SubjectSpec, k: float) -> str:
    if spec.scaled_model:
        model = f"pipeline's scaled model {Path(spec.scaled_model).name}"
    else:
        model = (f"ScaleTool({Path(spec.scale_setup).name}) on {Path(spec.generic_model).name} "
                 f"with manual scale set {Path(spec.scale_set).name}, marker set "
                 f"{Path(spec.scale_markerset).name}, markers placed on "
                 f"{Path(spec.static_trc).name}")
    if k != 1.0:
        model += f", then scaled uniformly by {k} (mass x {k}^3)"
    return (f"{model}; InverseKinematicsTool({Path(spec.ik_setup).name}); InverseDynamicsTool "
            f"(muscles excluded, coordinates low-pass {LOWPASS_HZ} Hz, ExternalLoads "
            f"{Path(spec.loads_xml).name})")


# --- files ---------------------------------------------------------------------------------------


def _match_times(times: np.ndarray, want: np.ndarray, tol: float) -> np.ndarray:
    """Indices of ``want`` in ``times`` (nearest; they must agree to ``tol`` s)."""
    idx = np.clip(np.searchsorted(times, want), 1, len(times) - 1)
    idx = np.where(np.abs(times[idx - 1] - want) <= np.abs(times[idx] - want), idx - 1, idx)
    if np.max(np.abs(times[idx] - want)) > tol:
        raise HdysError("lab_real: IK/ID frame times do not match the marker frames")
    return idx


# --- transforms ----------------------------------------------------------------------------------


def _resample_markers(times, xyz, rate, tfac):
    """Markers on the warped time axis ``t' = t * tfac`` at the original rate (linear; NaN stays
    NaN across a gap)."""
    if tfac == 1.0:
        return times, xyz
    t_new = np.arange(times[0] * tfac, times[-1] * tfac + 1e-9, 1.0 / rate)
    src = t_new / tfac
    j = np.clip(np.searchsorted(times, src, side="right") - 1, 0, len(times) - 2)
    w = ((src - times[j]) / (times[j + 1] - times[j]))[:, None, None]
    return t_new, (1.0 - w) * xyz[j] + w * xyz[j + 1]


def _swap_side(name: str) -> str:
    for a, b in (("R.", "L."), ("L.", "R."), ("R_", "L_"), ("L_", "R_")):
        if name.startswith(a):
            return b + name[len(a):]
    for a, b in (("_r", "_l"), ("_l", "_r")):
        if name.endswith(a):
            return name[: -len(a)] + b
    return name


def _mirror_points(xyz: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Reflect z -> -z; each point takes its mirror name (R.X <-> L.X, x_r <-> x_l)."""
    out = xyz.copy()
    out[..., 2] *= -1.0
    return out, [_swap_side(n) for n in names]


@dataclass(frozen=True)
class _Force:
    body: str
    force: str  # identifier prefix, e.g. "ground_force_r_v"
    point: str
    torque: str

    def columns(self, labels, which):
        prefix = {"force": self.force, "point": self.point, "torque": self.torque}[which]
        cols = [labels.index(prefix + a) if prefix + a in labels else -1 for a in "xyz"]
        return cols


def _external_forces(osim, loads_xml: Path) -> dict[str, _Force]:
    """The ExternalLoads file's forces, keyed by side ("r"/"l") from the body they apply to."""
    loads = osim.ExternalLoads(str(loads_xml), True)
    out = {}
    for i in range(loads.getSize()):
        f = loads.get(i)
        body = f.get_applied_to_body().strip()
        side = {"calcn_r": "r", "calcn_l": "l"}.get(body)
        if side is None:
            raise HdysError(f"{loads_xml}: force {f.getName()!r} applies to {body!r}; expected "
                            "calcn_r or calcn_l")
        out[side] = _Force(body, f.get_force_identifier().strip(),
                           f.get_point_identifier().strip(), f.get_torque_identifier().strip())
    if set(out) != {"r", "l"}:
        raise HdysError(f"{loads_xml}: expected one force on calcn_r and one on calcn_l")
    return out


def _transform_grf(grf, labels, forces, k, mirror):
    """Scale (forces k^3, points k, torques k^4) and optionally mirror the GRF table."""
    grf = grf.copy()
    blocks = {}
    for side, f in forces.items():
        for which, factor in (("force", k**3), ("point", k), ("torque", k**4)):
            cols = f.columns(labels, which)
            for c in cols:
                if c >= 0:
                    grf[:, c] *= factor
            blocks[(side, which)] = cols
    if mirror:
        src = grf.copy()
        for which in ("force", "point", "torque"):
            for side, other in (("r", "l"), ("l", "r")):
                dst_cols, src_cols = blocks[(side, which)], blocks[(other, which)]
                for axis in range(3):
                    d, s = dst_cols[axis], src_cols[axis]
                    if d < 0 or s < 0:
                        continue
                    # vectors: z flips; moments are pseudovectors: x and y flip
                    sign = (-1.0 if axis == 2 else 1.0) if which != "torque" else (
                        1.0 if axis == 2 else -1.0)
                    grf[:, d] = sign * src[:, s]
    return grf


def _write_loads(osim, loads_xml: Path, grf_path: Path, tmp: Path) -> Path:
    loads = osim.ExternalLoads(str(loads_xml), True)
    loads.setDataFileName(str(grf_path))
    out = tmp / "loads.xml"
    loads.printToXML(str(out))
    return out


# --- OpenSim steps -------------------------------------------------------------------------------


def _subject_model(osim, spec: SubjectSpec, root: Path, tmp: Path, mirror: bool) -> Path:
    """The subject's scaled model with markers placed on the static trial.

    For a mirrored sequence the static trial is mirrored too, so the marker placer builds the
    mirror image of the subject (the scale set is left/right symmetric), on which the mirrored
    motion's real markers fit as well as the original ones do on the original model.
    """
    if spec.scaled_model:
        if mirror:
            raise HdysError(f"lab_real {spec.id}: mirroring needs a Scale step (static trial)")
        return root / spec.scaled_model
    static = root / spec.static_trc
    if mirror:
        st_t, st_names, st_xyz, st_rate = read_markers(static)
        st_xyz, st_names = _mirror_points(st_xyz, st_names)
        static = tmp / "static_mirrored.trc"
        write_markers(static, st_t, st_names, st_xyz, st_rate)
    tool = osim.ScaleTool(str(root / spec.scale_setup))
    tool.setPathToSubject("")  # else relative-to-setup prefixes break absolute paths
    tool.setSubjectMass(spec.mass_kg)
    maker = tool.getGenericModelMaker()
    maker.setModelFileName(str(root / spec.generic_model))
    maker.setMarkerSetFileName(str(root / spec.scale_markerset))
    scaler = tool.getModelScaler()
    scaler.setScaleSetFile(str(root / spec.scale_set))
    order = osim.ArrayStr()
    order.append("manualScale")
    scaler.setScalingOrder(order)
    scaler.setMarkerFileName(str(static))
    scaler.setOutputModelFileName("")
    scaler.setOutputScaleFileName("")
    placer = tool.getMarkerPlacer()
    placer.setMarkerFileName(str(static))
    out = tmp / "scaled.osim"
    placer.setOutputModelFileName(str(out))
    placer.setOutputMotionFileName(str(tmp / "static.mot"))
    placer.setOutputMarkerFileName("")
    with quiet_stdout():
        ok = tool.run()
    if not ok or not out.exists():
        raise HdysError(f"lab_real {spec.id}: OpenSim ScaleTool failed; check {spec.scale_setup}")
    return out


def _ik_errors(tmp: Path):
    files = sorted(tmp.glob("*_ik_marker_errors.sto"))
    if not files:
        return np.zeros(0), np.zeros(0)
    t, labels, v = read_table(files[0])
    return t, v[:, labels.index("marker_error_RMS")]


def _keypoints(model, state, q_labels: list[str], q: np.ndarray) -> np.ndarray:
    """Joint centres (T, 12, 3) in ground for the "opensim" layout from coordinates ``q``."""
    coords = model.getCoordinateSet()
    setters = [(coords.get(n), j) for j, n in enumerate(q_labels) if coords.contains(n)]
    frames = []
    for kp in reps.KEYPOINT_LAYOUTS["opensim"]:
        if kp == "pelvis":
            frames.append(model.getBodySet().get("pelvis"))
        elif coords.contains(KEYPOINT_COORDINATE[kp]):
            frames.append(coords.get(KEYPOINT_COORDINATE[kp]).getJoint().getChildFrame())
        else:
            frames.append(None)
    out = np.full((q.shape[0], len(frames), 3), np.nan)
    for i in range(q.shape[0]):
        for coord, j in setters:
            coord.setValue(state, float(q[i, j]), False)
        model.realizePosition(state)
        for p, frame in enumerate(frames):
            if frame is not None:
                out[i, p] = frame.getPositionInGround(state).to_numpy()
    return out


def _grf_channels(grf_t, labels, grf, forces, ft, mass, pelvis_xz):
    """GRF representation at frame times ``ft``: (T, 10) and the channel names."""
    bw = mass * reps.G
    cols, names = [], []
    for side in ("r", "l"):
        f = forces[side]
        fc, pc = f.columns(labels, "force"), f.columns(labels, "point")
        fxyz = np.stack([np.interp(ft, grf_t, grf[:, c]) for c in fc], 1)
        pxyz = np.stack([np.interp(ft, grf_t, grf[:, c]) for c in pc], 1)
        cop = pxyz[:, [0, 2]] - pelvis_xz
        cop[fxyz[:, 1] < COP_MIN_FZ_N] = np.nan
        cols += [fxyz[:, 0] / bw, fxyz[:, 1] / bw, fxyz[:, 2] / bw, cop[:, 0], cop[:, 1]]
        names += [f"{side}_fx", f"{side}_fy", f"{side}_fz", f"{side}_copx", f"{side}_copz"]
    return np.stack(cols, 1), tuple(names)


def _quality(rms_t, rms, id_labels, id_gen, mass, grf_t, grf_labels, grf, forces, ft) -> dict:
    q = {}
    if rms.size:
        sel = (rms_t >= ft[0] - 1e-6) & (rms_t <= ft[-1] + 1e-6)
        q["ik_marker_rms_m"] = {"mean": round(float(np.mean(rms[sel])), 4),
                                "max": round(float(np.max(rms[sel])), 4)}
    bw = mass * reps.G
    res = {}
    for c in ("pelvis_tx_force", "pelvis_ty_force", "pelvis_tz_force"):
        if c in id_labels:
            res[c.replace("_force", "_rms_bw")] = round(
                float(np.sqrt(np.mean((id_gen[:, id_labels.index(c)] / bw) ** 2))), 4)
    for c in ("pelvis_tilt_moment", "pelvis_list_moment", "pelvis_rotation_moment"):
        if c in id_labels:
            res[c.replace("_moment", "_rms_nm_per_kg")] = round(
                float(np.sqrt(np.mean((id_gen[:, id_labels.index(c)] / mass) ** 2))), 4)
    q["id_pelvis_residuals"] = res
    # mean vertical GRF / g over the window (not a whole number of strides: a rough check only)
    sel = (grf_t >= ft[0]) & (grf_t <= ft[-1])
    fy = sum(grf[sel, forces[s].columns(grf_labels, "force")[1]] for s in ("r", "l"))
    q["grf_mean_over_window_kg"] = round(float(np.mean(fy) / reps.G), 2)
    return q


# --- sEMG ----------------------------------------------------------------------------------------


def read_emg_mat(path: Path) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Read the processed sEMG of ``emg_walk.mat`` (a MATLAB ``dataset`` object).

    scipy cannot open MATLAB objects directly; their data sits in the file's
    ``__function_workspace__``, itself a MAT-file stream. Returns times (T,), channel names and
    envelopes (T, C) (the ``time`` column removed).
    """
    import scipy.io
    from scipy.io.matlab._mio5 import MatFile5Reader

    try:
        raw = scipy.io.loadmat(str(path))["__function_workspace__"].tobytes()
        header = b"MATLAB 5.0 MAT-file".ljust(116, b" ") + b"\x00" * 8 + raw[:4]
        stream = io.BytesIO(header + raw[8:])
        reader = MatFile5Reader(stream, struct_as_record=False, squeeze_me=True,
                                chars_as_strings=True)
        reader.initialize_read()
        stream.seek(128)
        var, _ = reader.read_var_header()
        cells = list(reader.read_var_array(var, process=True).MCOS[0][3])
    except Exception as exc:  # noqa: BLE001 - any decoding failure means the same to the user
        raise HdysError(f"{path}: cannot decode the MATLAB dataset object ({exc})") from None

    def is_names(c):
        return (isinstance(c, np.ndarray) and c.dtype == object and c.size > 1
                and all(isinstance(x, str) for x in c) and "time" in list(c))

    names = next((list(c) for c in cells if is_names(c)), None)
    cols = next((c for c in cells if isinstance(c, np.ndarray) and c.dtype == object
                 and names is not None and c.size == len(names)
                 and all(isinstance(x, np.ndarray) for x in c)), None)
    if names is None or cols is None:
        raise HdysError(f"{path}: no (time, channels...) table found in the dataset object")
    values = np.stack([np.asarray(c, dtype=float) for c in cols], 1)
    it = names.index("time")
    keep = [j for j in range(len(names)) if j != it]
    return values[:, it], [names[j] for j in keep], values[:, keep]


def _semg(path: Path, src_times: np.ndarray, mirror: bool):
    """sEMG envelopes at source times ``src_times``, mapped to muscle channels, peak-normalised."""
    t, names, env = read_emg_mat(path)
    side = ("l" if EMG_SIDE == "r" else "r") if mirror else EMG_SIDE
    cols, chans = [], []
    for j, n in enumerate(names):
        muscle = EMG_TO_MUSCLE.get(n)
        if muscle is None:
            continue
        x = np.clip(env[:, j], 0.0, None)
        peak = float(np.max(x))
        if peak <= 0:
            continue
        cols.append(np.interp(src_times, t, x / peak))
        chans.append(f"{muscle}_{side}")
    if not cols:
        return None
    unknown = set(chans) - set(reps.MUSCLES)
    if unknown:
        raise HdysError(f"lab_real: EMG_TO_MUSCLE maps to unknown muscles {sorted(unknown)}")
    return np.stack(cols, 1), tuple(chans)


# --- static optimisation -------------------------------------------------------------------------


def _file_digest(*paths: Path, extra: str = "") -> str:
    h = hashlib.sha1(extra.encode())
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()[:16]


def _static_optimization(osim, model_path, ik_path, loads_path, window, ft, tmp, cache_dir):
    """Muscle activations (T, M) at frame times ``ft`` by OpenSim static optimisation, cached.

    The cache key hashes the model, the IK motion, the GRF data and the settings, so a rebuild
    with identical inputs loads ``<cache>/lab_real/so_<key>.npz`` instead of solving again.
    """
    grf_path = tmp / "grf.mot"
    key = _file_digest(model_path, ik_path, grf_path,
                       extra=f"v{SO_VERSION}|{window[0]:.4f}|{window[1]:.4f}|{LOWPASS_HZ}")
    cache = Path(cache_dir) / DOMAIN / f"so_{key}.npz"
    if cache.exists():
        with np.load(cache) as z:
            names, t, act = [str(n) for n in z["names"]], z["times"], z["act"]
        log.info("lab_real: static optimisation loaded from %s", cache)
    else:
        t0 = time.perf_counter()
        names, t, act = _run_static_optimization(osim, model_path, ik_path, loads_path, window,
                                                 tmp)
        cache.parent.mkdir(parents=True, exist_ok=True)
        part = cache.with_suffix(".part.npz")
        np.savez(part, names=np.array(names), times=t, act=act)
        os.replace(part, cache)
        log.info("lab_real: static optimisation of %d frames in %.1f s (cached in %s)",
                 len(t), time.perf_counter() - t0, cache)
    muscles = [m for m in reps.MUSCLES if m in names]
    if not muscles:
        raise HdysError("lab_real: static optimisation returned no known muscle")
    cols = [names.index(m) for m in muscles]
    out = np.stack([np.interp(ft, t, act[:, c]) for c in cols], 1)
    return tuple(muscles), out


def _run_static_optimization(osim, model_path, ik_path, loads_path, window, tmp):
    model = osim.Model(str(model_path))
    model.initSystem()
    coords = model.getCoordinateSet()
    for i in range(coords.getSize()):
        c = coords.get(i)
        reserve = osim.CoordinateActuator(c.getName())
        reserve.setName(f"{c.getName()}_reserve")
        reserve.setOptimalForce(1000.0 if c.getName().startswith("pelvis") else 1.0)
        reserve.setMinControl(-math.inf)
        reserve.setMaxControl(math.inf)
        model.addForce(reserve)
    # the filtered coordinates (radians), as ID used them
    q_t, q_labels, q = coordinates(osim, model, ik_path, LOWPASS_HZ)
    q_mot = tmp / "ik_filtered.mot"
    write_table(q_mot, q_t, q_labels, q)

    so = osim.StaticOptimization()
    so.setName("so")
    so.setStartTime(float(window[0]))
    so.setEndTime(float(window[1]))
    so.setUseModelForceSet(True)
    so.setActivationExponent(2.0)
    so.setUseMusclePhysiology(True)
    so.setConvergenceCriterion(1e-4)
    so.setMaxIterations(100)
    model.addAnalysis(so)

    tool = osim.AnalyzeTool(model)
    tool.setName("so")
    tool.setModel(model)
    tool.setInitialTime(float(window[0]))
    tool.setFinalTime(float(window[1]))
    tool.setExternalLoadsFileName(str(loads_path))
    tool.setResultsDir(str(tmp / "so"))
    state = model.initSystem()
    tool.setStatesFromMotion(state, osim.Storage(str(q_mot)), False)
    with quiet_stdout():
        ok = tool.run()
    files = sorted((tmp / "so").glob("*_activation.sto"))
    if not ok or not files:
        raise HdysError(f"lab_real: OpenSim static optimisation failed on {ik_path.name}")
    t, labels, act = read_table(files[0])
    return labels, t, act
