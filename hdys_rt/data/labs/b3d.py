"""AddBiomechanics ``.b3d`` files (the AddBiomechanics data set's format) -> corpus sequences.

A ``.b3d`` file holds one subject (mass, height, an OpenSim skeleton) and its trials; each frame
carries the raw observations (markers, force plates, EMG; OpenSim ground frame: Y up, metres,
newtons) and one result per *processing pass* (``KINEMATICS``, ``DYNAMICS``, ``LOW_PASS_FILTER``):
coordinates ``pos`` (rad | m), generalised forces ``tau`` (N·m | N), per-contact-body ground
reaction force and centre of pressure, residuals and marker RMS. Read through
``nimblephysics.biomechanics.SubjectOnDisk`` (the optional ``b3d`` extra).

What a sequence takes from a trial (:func:`read_trial`, :func:`to_sequence`):

* joint_angles: the :data:`~hdys_rt.representations.RAJAGOPAL_COORDINATES` found among the
  skeleton's DOF names, from the last DYNAMICS pass, else the last pass. Masked (NaN) when the
  kinematics fail the gate: the pelvis' drift from its markers (:func:`pelvis_drift`,
  :data:`MAX_PELVIS_DRIFT_M`) where ASIS/PSIS markers exist, else the file's own marker RMS
  against the real-lab gate (:data:`hdys_rt.data.labs.chain.MAX_MARKER_RMSE_M`). The file's
  figure is recorded but not trusted first: on the fixture it grows linearly with the distance
  walked (0.1 -> 1.5 m over a 1.3 m walk) while the pelvis stays within 2.5 mm of its markers,
  i.e. it was computed against a stale pose. Markers and plate GRF do not depend on the
  kinematics and stay either way.
* torques_rajagopal: ``tau / mass`` (N·m/kg) from a DYNAMICS pass only. A KINEMATICS pass also
  stores ``tau``, but computed without ground reaction forces (its pelvis residual is the whole
  body's weight and inertia, 60-80 N·m on the fixture): those are NOT joint torques, so without a
  DYNAMICS pass every torque channel is NaN.
* grf: per foot (right, left), force / body weight and CoP minus the pelvis' horizontal position
  (m). From the DYNAMICS pass' per-body contact forces (bodies named ``*_r`` / ``*_l``) when
  present; else from the raw plates, each stance assigned to the nearer foot
  (:func:`hdys_rt.data.labs.plates.assign_feet`, on the foot markers) and low-pass filtered at the
  task's cut-off (:data:`hdys_rt.data.labs.catalog.CUTOFF_HZ`).
* markers: the observed markers, renamed by the project's marker-set mapping
  (:func:`hdys_rt.data.markersets.map_markers`; unknown names dropped), NaN where unobserved.
* meta: task (keywords of the trial name, :func:`task_of`), person, lab, trial, passes, and
  ``quality``: marker RMS (m, AddBiomechanics' own per-frame figure), residual force (%BW) and
  moment (%BW·height) of the pass the torques come from (none without a DYNAMICS pass).

Not read: EMG (``emgSignals``; none in the fixture), IMUs, joint centres (need the skeleton's
forward kinematics, which segfaults in nimblephysics 0.10.52 under numpy 2 as soon as a vector
is passed in: only nimblephysics' outputs are used here).
"""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path

import numpy as np

from hdys_rt import representations as reps
from hdys_rt.data.corpus import Sequence, Subject
from hdys_rt.data.labs import plates as pl
from hdys_rt.data.labs.catalog import CUTOFF_HZ
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)

EXTRA = "pip install 'hdys-rt[b3d]'"
COP_MIN_FZ_N = 20.0  # CoP is NaN below this vertical force (N), as in the other real domains
#: Kinematics gate where the pelvis markers are present (:func:`pelvis_drift`): a fit within
#: the real-lab marker gate (4 cm RMS over all markers) keeps the pelvis markers' centroid within
#: ~1-2 cm of a fixed offset from the pelvis origin; the fixture's walks give 2.0-2.5 mm.
MAX_PELVIS_DRIFT_M = 0.02
#: Foot markers (after the marker-set mapping) that locate a foot for the plate assignment.
FOOT_MARKERS = ("Heel", "Toe", "Ankle", "MT5")

#: Task keywords of a trial name (lower case, first match wins); anything else is "other".
TASK_KEYWORDS = (
    ("sit_to_stand", ("sit", "sts", "chair")),
    ("squat", ("squat",)),
    ("jump", ("jump", "hop", "dj", "land", "cmj")),
    ("run", ("run", "jog", "sprint")),
    ("walk", ("walk", "gait", "stair", "incline", "decline", "treadmill", "ramp")),
)


class Skipped(Exception):
    """A trial cannot give a sequence; the message says why."""


def import_nimble():
    """``nimblephysics``, or :class:`HdysError` in one line naming the extra."""
    try:
        import nimblephysics
    except ImportError:
        raise HdysError(f".b3d files need nimblephysics: {EXTRA}") from None
    return nimblephysics


def nimble_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("nimblephysics") is not None


def task_of(name: str) -> str:
    """The task of a trial from its name: ``walking2_segment_0`` -> ``walk``; see
    :data:`TASK_KEYWORDS` (tokens split at non-letters; ``dj`` / ``sts`` match whole tokens)."""
    low = name.lower()
    tokens = set(re.split(r"[^a-z]+", low))
    for task, words in TASK_KEYWORDS:
        for w in words:
            if (w in tokens) if len(w) <= 3 else (w in low):
                return task
    return "other"


@contextlib.contextmanager
def _quiet():
    """Silence nimblephysics' C++ writes to stdout (skeleton warnings)."""
    from hdys_rt.data.opensim_tools import quiet_stdout

    with quiet_stdout():
        yield


def open_subject(path: Path):
    """``(SubjectOnDisk, dof names, knee flexion negative?)`` of a ``.b3d`` file."""
    nimble = import_nimble()
    if not Path(path).is_file():
        raise HdysError(f"{path}: no such .b3d file")
    try:
        subject = nimble.biomechanics.SubjectOnDisk(str(path))
        with _quiet():
            skel = subject.readSkel(0, "", True)  # ignoreGeometry: meshes are not shipped
    except Exception as exc:  # noqa: BLE001 - nimblephysics raises RuntimeError/ValueError
        raise HdysError(f"{path}: not a readable .b3d file ({exc})") from None
    dofs = [skel.getDofByIndex(i).getName() for i in range(skel.getNumDofs())]
    knee_negative = False
    if "knee_angle_r" in dofs:  # gait2392-family knees: flexion negative (range ~ -2.1..0.17)
        d = skel.getDofByIndex(dofs.index("knee_angle_r"))
        knee_negative = d.getPositionUpperLimit() < 0.5 and d.getPositionLowerLimit() < -1.0
    return subject, dofs, knee_negative


def read_trial(subject, trial: int, dofs: list[str], knee_negative: bool) -> dict:
    """One trial's arrays, in the corpus conventions (see the module doc).

    Returns ``{"name", "rate" (Hz), "passes" [str], "source_pass" (str), "dynamics" (bool),
    "joint_angles" (T, 23) rad | m, "torques" (T, 17) N·m (not per kg; NaN without a DYNAMICS
    pass), "contact_grf" (T, 2, 3) N | None and "contact_cop" (T, 2, 3) m | None (per foot from
    the DYNAMICS pass), "plates" (F (n, T, 3) N, CoP (n, T, 3) m, torque (n, T, 3) N·m) | None,
    "marker_names" [str], "markers" (T, M, 3) m, "marker_rms" (T,) m, "linear_residual" (T,) N,
    "angular_residual" (T,) N·m}``."""
    n = subject.getTrialLength(trial)
    frames = subject.readFrames(trial, 0, n)
    if len(frames) != n or n < 2:
        raise Skipped(f"trial {trial}: {len(frames)} of {n} frames readable")
    types = [str(p.type).rsplit(".", 1)[-1] for p in frames[0].processingPasses]
    if not types:
        raise Skipped("no processing pass")
    dyn = [k for k, t in enumerate(types) if t == "DYNAMICS"]
    k = dyn[-1] if dyn else len(types) - 1
    passes = [f.processingPasses[k] for f in frames]
    pos = np.array([p.pos for p in passes], float)  # (T, D)
    tau = np.array([p.tau for p in passes], float)
    col = {d: j for j, d in enumerate(dofs)}
    ang = np.full((n, len(reps.RAJAGOPAL_COORDINATES)), np.nan)
    for j, c in enumerate(reps.RAJAGOPAL_COORDINATES):
        if c in col:
            ang[:, j] = pos[:, col[c]]
    tq = np.full((n, len(reps.RAJAGOPAL_TORQUE_JOINTS)), np.nan)
    if dyn:
        for j, c in enumerate(reps.RAJAGOPAL_TORQUE_JOINTS):
            if c in col:
                tq[:, j] = tau[:, col[c]]
    if knee_negative:
        for c in ("knee_angle_r", "knee_angle_l"):
            ang[:, reps.RAJAGOPAL_COORDINATES.index(c)] *= -1.0
            tq[:, reps.RAJAGOPAL_TORQUE_JOINTS.index(c)] *= -1.0

    contact_grf = contact_cop = None
    if dyn:
        bodies = list(subject.getGroundForceBodies())
        side = {b: 0 if b.endswith("_r") else 1 for b in bodies if b[-2:] in ("_r", "_l")}
        if side:
            g = np.array([p.groundContactForce for p in passes], float).reshape(n, -1, 3)
            c = np.array([p.groundContactCenterOfPressure for p in passes],
                         float).reshape(n, -1, 3)
            contact_grf, contact_cop = np.zeros((n, 2, 3)), np.full((n, 2, 3), np.nan)
            for b, s in side.items():
                i = bodies.index(b)
                contact_grf[:, s] += g[:, i]
                on = np.abs(g[:, i, 1]) > 0
                contact_cop[on, s] = c[on, i]

    plates = None
    if frames[0].rawForcePlateForces:
        plates = tuple(np.array([getattr(f, a) for f in frames], float).transpose(1, 0, 2)
                       for a in ("rawForcePlateForces", "rawForcePlateCenterOfPressures",
                                 "rawForcePlateTorques"))  # each (n_plates, T, 3)

    names: list[str] = []
    for f in frames:
        for m, _ in f.markerObservations:
            if m not in names:
                names.append(m)
    idx = {m: i for i, m in enumerate(names)}
    markers = np.full((n, len(names), 3), np.nan)
    for t, f in enumerate(frames):
        for m, xyz in f.markerObservations:
            markers[t, idx[m]] = xyz
    return {
        "name": subject.getTrialName(trial), "rate": 1.0 / subject.getTrialTimestep(trial),
        "passes": types, "source_pass": types[k], "dynamics": bool(dyn),
        "joint_angles": ang, "torques": tq, "contact_grf": contact_grf,
        "contact_cop": contact_cop, "plates": plates, "marker_names": names,
        "markers": markers,
        "marker_rms": np.array([p.markerRMS for p in passes], float),
        "linear_residual": np.array([p.linearResidual for p in passes], float),
        "angular_residual": np.array([p.angularResidual for p in passes], float),
    }


def pelvis_drift(ang: np.ndarray, names: tuple[str, ...], markers: np.ndarray) -> float | None:
    """How far the fitted pelvis strays from its markers (m): the standard deviation over
    frames of the distance between the pelvis origin (``pelvis_tx/ty/tz``) and the centroid of
    the ASIS/PSIS markers, a constant for a rigid segment that the fit follows. None when fewer
    than 3 of the 4 markers are mapped."""
    cols = [names.index(m) for m in ("R.ASIS", "L.ASIS", "R.PSIS", "L.PSIS") if m in names]
    if len(cols) < 3:
        return None
    root = ang[:, [reps.RAJAGOPAL_COORDINATES.index(c)
                   for c in ("pelvis_tx", "pelvis_ty", "pelvis_tz")]]
    pts = markers[:, cols]
    ok = np.all(np.isfinite(pts), axis=(1, 2)) & np.all(np.isfinite(root), axis=1)
    if ok.sum() < 2:
        return None
    return float(np.std(np.linalg.norm(pts[ok].mean(1) - root[ok], axis=1)))


def _plate_grf(raw: dict, names: tuple[str, ...], markers: np.ndarray, cutoff_hz: float):
    """Per-foot loads ``(T, 2, 6)`` (force N, moment about the ground origin N·m) from the raw
    plates, stances assigned to the nearer foot (mapped foot markers), low-pass ``cutoff_hz``;
    and the floor height (m) and the assignments."""
    F, P, Tq = raw["plates"]
    t = np.arange(F.shape[1]) / raw["rate"]
    feet = {}
    for s, prefix in (("r", "R."), ("l", "L.")):
        cols = [names.index(prefix + m) for m in FOOT_MARKERS if prefix + m in names]
        if not cols:
            raise Skipped(f"no {prefix[0]} foot marker ({'/'.join(FOOT_MARKERS)}) after the "
                          "marker-set mapping: the plates cannot be assigned to feet")
        pts = markers[:, cols].copy()
        for j in range(pts.shape[1]):  # fill gaps so the assignment sees the foot everywhere
            for c in range(3):
                v = pts[:, j, c]
                ok = np.isfinite(v)
                if ok.sum() < 2:
                    raise Skipped(f"foot marker {prefix}{FOOT_MARKERS[j]} missing throughout")
                pts[:, j, c] = np.interp(t, t[ok], v[ok])
        feet[s] = pts
    plates = [pl.Plate(f"plate{k + 1}", (0, 1, 2), (0, 1, 2), (0, 1, 2))
              for k in range(F.shape[0])]
    mask, assigned = pl.assign_feet(t, F, P, plates, t, feet)
    loads = pl.foot_loads(F, P, Tq, mask)
    loads = pl.lowpass(loads.reshape(len(t), -1), cutoff_hz, raw["rate"]).reshape(loads.shape)
    return loads, pl.floor_height(P, F), assigned


def to_sequence(raw: dict, name: str, person: str, lab: str, mass: float, height: float,
                source: str, domain: str) -> Sequence:
    """A :class:`Sequence` from :func:`read_trial`'s arrays (see the module doc)."""
    from hdys_rt.data.markersets import map_markers
    from hdys_rt.data.labs.chain import MAX_MARKER_RMSE_M

    task = task_of(raw["name"])
    cutoff = CUTOFF_HZ[task]
    bw = mass * reps.G
    try:
        mm = map_markers(raw["marker_names"])
    except HdysError as exc:
        raise Skipped(str(exc)) from None
    names, markers = mm.names, mm.apply(raw["markers"])

    rmse = float(np.sqrt(np.nanmean(raw["marker_rms"] ** 2)))
    drift = pelvis_drift(raw["joint_angles"], names, markers)
    kin_ok = (drift <= MAX_PELVIS_DRIFT_M) if drift is not None else rmse <= MAX_MARKER_RMSE_M
    ang = raw["joint_angles"].copy()
    if not kin_ok:
        ang[:] = np.nan
    quality = {"marker_rmse_m": round(rmse, 4),
               "pelvis_marker_drift_m": None if drift is None else round(drift, 4),
               "gates": {"marker_rmse_m": MAX_MARKER_RMSE_M,
                         "pelvis_marker_drift_m": MAX_PELVIS_DRIFT_M},
               "kinematics_pass_gate": bool(kin_ok)}
    if drift is not None and kin_ok and rmse > MAX_MARKER_RMSE_M:
        quality["note"] = ("the file's own marker RMS is not consistent with its kinematics "
                           "(the pelvis follows its markers); gated on the pelvis drift")
    if raw["dynamics"]:
        quality["residual_force_pct_bw"] = round(
            float(np.sqrt(np.mean(raw["linear_residual"] ** 2)) / bw * 100), 2)
        quality["residual_moment_pct_bwh"] = round(
            float(np.sqrt(np.mean(raw["angular_residual"] ** 2)) / (bw * height) * 100), 3)

    pelvis_xz = np.stack([raw["joint_angles"][:, reps.RAJAGOPAL_COORDINATES.index(c)]
                          for c in ("pelvis_tx", "pelvis_tz")], 1)
    assigned = []
    if raw["contact_grf"] is not None:
        force, cop = raw["contact_grf"], raw["contact_cop"].copy()
        cop[force[..., 1] < COP_MIN_FZ_N] = np.nan
        grf_note = (f"the {raw['source_pass']} pass' per-body contact forces (AddBiomechanics), "
                    f"CoP NaN below {COP_MIN_FZ_N} N")
    elif raw["plates"] is not None:
        loads, floor_y, assigned = _plate_grf(raw, names, markers, cutoff)
        force, cop = loads[..., :3], pl.centre_of_pressure(loads, floor_y, COP_MIN_FZ_N)
        grf_note = (f"raw force plates, each stance assigned to the nearer foot (mapped "
                    f"{'/'.join(FOOT_MARKERS)} markers), force and moment low-pass {cutoff} Hz")
    else:
        raise Skipped("no DYNAMICS pass and no force plates: no GRF")
    cols = []
    for s in range(2):
        cols += [force[:, s, 0] / bw, force[:, s, 1] / bw, force[:, s, 2] / bw,
                 cop[:, s, 0] - pelvis_xz[:, 0], cop[:, s, 2] - pelvis_xz[:, 1]]
    tq = raw["torques"] / mass
    meta = {
        "task": task, "person": person, "lab": lab, "folder": lab, "trial": raw["name"],
        "passes": raw["passes"], "source_pass": raw["source_pass"], "cutoff_hz": cutoff,
        "quality": quality,
        "torques_masked": [c for j, c in enumerate(reps.RAJAGOPAL_TORQUE_JOINTS)
                           if np.isnan(tq[0, j])],
        "torques_note": ("tau of the DYNAMICS pass / mass" if raw["dynamics"] else
                         "no DYNAMICS pass: the KINEMATICS pass' tau ignores the ground "
                         "reaction forces, so torques are NaN"),
        "joint_angles_note": (f"{raw['source_pass']} pass coordinates" if kin_ok else
                              "masked: the kinematics fail the quality gate"),
        "grf_note": grf_note + "; forces in body weights, CoP minus (pelvis_tx, pelvis_tz)",
        "plate_assignment": [vars(a) for a in assigned],
        "markerset": mm.as_dict(),
    }
    return Sequence(
        name=name, domain=domain, rate=float(raw["rate"]),
        subject=Subject(person, round(mass, 3), round(height, 4)), source=source,
        data={"markers": markers, "joint_angles": ang, "torques_rajagopal": tq,
              "grf": np.stack(cols, 1)},
        names={"markers": tuple(names), "joint_angles": reps.RAJAGOPAL_COORDINATES,
               "torques_rajagopal": reps.RAJAGOPAL_TORQUE_JOINTS, "grf": reps.GRF_CHANNELS},
        meta=meta,
    )


def sequences(path: Path, person: str, lab: str, source: str, domain: str):
    """Every trial of the ``.b3d`` file ``path`` as a :class:`Sequence` (skipped trials are
    logged with their reason)."""
    subject, dofs, knee_negative = open_subject(path)
    mass, height = float(subject.getMassKg()), float(subject.getHeightM())
    for t in range(subject.getNumTrials()):
        name = f"{person}__{re.sub(r'[^A-Za-z0-9_.-]+', '_', subject.getTrialName(t))}"
        try:
            raw = read_trial(subject, t, dofs, knee_negative)
            yield to_sequence(raw, name, person, lab, mass, height, source, domain)
        except Skipped as exc:
            log.warning("%s trial %s skipped: %s", path.name, subject.getTrialName(t), exc)
