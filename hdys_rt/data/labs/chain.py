"""The OpenSim chain of one real-lab trial: (scale) -> (IK) -> ID with per-foot plate loads.

:func:`process` turns a :class:`~hdys_rt.data.labs.catalog.Trial` into a corpus
:class:`~hdys_rt.data.corpus.Sequence` (or ``None`` when a quality gate drops it) plus a report:

1. model: the trial's scaled model, or the generic one scaled per segment to the person from
   the dynamic trials (:func:`scale_from_markers`, as no static trial exists);
2. kinematics: the given IK, else OpenSim IK on every model marker present in the TRC (weight 1);
3. loads: plates assigned to feet by proximity (:mod:`.plates`), force and moment low-pass
   filtered at the trial's cut-off, which ID also applies to the coordinates;
4. ID (muscles excluded); the pelvis generalised forces are the residuals. Frames where the
   a foot stays still while no plate loads it, or where a large residual force is sustained, are
   contacts no plate measured (floor beside the plates, a box, a chair); the longest run of
   frames without them is kept;
5. quality, as AddBiomechanics reports it: marker RMSE (m, model markers vs TRC at the IK pose),
   residual force (RMS of |F|, %BW) and residual moment (RMS of |M|, %BW·height) over the kept
   frames; trials above :data:`MAX_MARKER_RMSE_M`, :data:`MAX_RESIDUAL_FORCE_PCT_BW`,
   :data:`MAX_RESIDUAL_MOMENT_PCT_BWH` are dropped.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from hdys_rt import representations as reps
from hdys_rt.data.corpus import Sequence, Subject
from hdys_rt.data.opensim_tools import (coordinates, load_opensim, read_markers, read_table,
                                          run_id, run_ik, write_markers, write_table)
from hdys_rt.data.labs import plates as pl
from hdys_rt.data.labs.catalog import Trial
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)

COP_MIN_FZ_N = 20.0  # CoP is NaN below this vertical force (as lab_real)

# --- quality gates ---------------------------------------------------------------------------
# AddBiomechanics' own reports on these folders give marker RMSE 1-2 cm; Hicks et al. 2015
# ("Is my model good enough?") advise bony-landmark errors under 2 cm and at most ~4 cm.
MAX_MARKER_RMSE_M = 0.04
# Residuals. Hicks et al. 2015: peak residual force under 5 % of the peak external force, RMS
# residual moment under 1 % of (centre-of-mass height x peak external force): both scale with
# the peak load, which is ~1.2 BW in walking, sit-to-stand and squats and 2.5-4 BW in running
# and landing, so the gates are per task. They are looser than AddBiomechanics' own results
# because this chain does not adjust the kinematics for dynamic consistency (AddBiomechanics'
# dynamics pass); what they reject are unmeasured or mis-assigned contacts, wrong masses and
# kinematic glitches, which leave RMS residuals of 30-300 %BW.
MAX_RESIDUAL_FORCE_PCT_BW = {"walk": 10.0, "sit_to_stand": 10.0, "squat": 10.0, "other": 10.0,
                             "run": 25.0, "jump": 25.0}  # RMS of |F| over kept frames, %BW
MAX_RESIDUAL_MOMENT_PCT_BWH = {"walk": 3.0, "sit_to_stand": 3.0, "squat": 3.0, "other": 3.0,
                               "run": 6.0, "jump": 6.0}  # RMS of |M|, %BW·height
# Unmeasured contact, cut before the gates (the longest run of frames without it is kept):
# a foot that stays slower than STILL_FOOT_MPS (slower of its heel and toe origins) for at least
# STILL_FOOT_S while no plate loads it stands on something unmeasured (floor beside the plates,
# a box); a pelvis residual force above SUPPORT_RESIDUAL_BW for at least SUPPORT_RESIDUAL_S is
# support no plate measured (a chair). Shorter events are turning points of a swinging foot and
# impact transients, which stay in.
STILL_FOOT_MPS = 0.35
STILL_FOOT_S = 0.05
SUPPORT_RESIDUAL_BW = 0.5
SUPPORT_RESIDUAL_S = 0.10
MIN_KEPT_S = 0.5  # fewer kept seconds than this: the trial is dropped
# Synchronisation of plates and markers (see plate_delay): hamner_subject01's plates lag its
# markers by 7.5-12.5 ms (the vertical residual of run300 falls from 23 to 9 %BW RMS once shifted);
# a delay is searched within +-MAX_PLATE_DELAY_S and applied only when it lowers the vertical
# residual by MIN_DELAY_GAIN (walking trials, which pin the timing weakly, stay at 0).
MAX_PLATE_DELAY_S = 0.030
MIN_DELAY_GAIN = 0.20
# Only trials with flight (both feet off the plates: vertical force under MIN_DELAY_FLIGHT_BW on
# at least MIN_DELAY_FLIGHT_FRACTION of the frames; a 2 m/s jog flies on ~7 %) pin the timing;
# in walking the fit drifts to the bound (OpenCap walks gave 27.5 ms where the same session's drop jumps give 0) and is not run.
MIN_DELAY_FLIGHT_BW = 0.03
MIN_DELAY_FLIGHT_FRACTION = 0.05

FOOT_POINTS = {"r": ("calcn_r", "toes_r"), "l": ("calcn_l", "toes_l")}

#: Keypoint (layout "opensim") -> coordinate whose joint's child frame is that joint centre.
KEYPOINT_COORDINATE = {
    "hip_r": "hip_flexion_r", "knee_r": "knee_angle_r", "ankle_r": "ankle_angle_r",
    "subtalar_r": "subtalar_angle_r", "mtp_r": "mtp_angle_r",
    "hip_l": "hip_flexion_l", "knee_l": "knee_angle_l", "ankle_l": "ankle_angle_l",
    "subtalar_l": "subtalar_angle_l", "mtp_l": "mtp_angle_l", "lumbar": "lumbar_extension",
}


class Dropped(Exception):
    """A trial failed a quality gate; ``reason`` says which and by how much."""

    def __init__(self, reason: str, report: dict):
        super().__init__(reason)
        self.reason, self.report = reason, report


# --- model -----------------------------------------------------------------------------------


def model_mass(osim, path: Path) -> float:
    m = osim.Model(str(path))
    return float(sum(m.getBodySet().get(i).getMass() for i in range(m.getBodySet().getSize())))


def estimate_height(osim, path: Path) -> tuple[float, str]:
    """Height (m) from the model in its default pose: the highest shoulder (acromion) marker
    over the lowest foot point, / 0.818 (Drillis & Contini segment proportions); C7 / 0.85 when
    no shoulder marker exists."""
    model = osim.Model(str(path))
    state = model.initSystem()
    floor = min(model.getBodySet().get(b).getPositionInGround(state)[1]
                for b in ("calcn_r", "toes_r") if model.getBodySet().contains(b))
    ms = model.getMarkerSet()
    best = {}
    for i in range(ms.getSize()):
        mk = ms.get(i)
        n = mk.getName().upper()
        y = mk.getLocationInGround(state)[1]
        if "ACR" in n or "SHOULDER" in n:
            best["acromion"] = max(best.get("acromion", -9), y)
        elif n == "C7":
            best["c7"] = y
    if "acromion" in best:
        return (best["acromion"] - floor) / 0.818, "estimated: shoulder marker height / 0.818"
    if "c7" in best:
        return (best["c7"] - floor) / 0.85, "estimated: C7 marker height / 0.85"
    raise HdysError(f"{path.name}: no height given and no shoulder or C7 marker to estimate it")


#: Per-segment scaling from the markers' own distances (pose-independent pairs: both markers on
#: the scaled segments, so any dynamic frame measures them): segments -> marker pairs. Segments
#: not listed (or whose markers are missing) take the height ratio. Foot length uses heel-toe
#: only (the generic MT5 sits 30 % too close to the heel on Hamner's model).
MEASUREMENTS = (
    (("pelvis",), (("RASI", "LASI"), ("RPSI", "LPSI"), ("RASI", "RPSI"), ("LASI", "LPSI"))),
    (("talus_r", "calcn_r", "toes_r"), (("RCAL", "RTOE"),)),
    (("talus_l", "calcn_l", "toes_l"), (("LCAL", "LTOE"),)),
    (("torso",), (("RACR", "LACR"), ("C7", "CLAV"))),
)
NEUTRAL_COORDINATES = ("hip_flexion_r", "hip_flexion_l", "knee_angle_r", "knee_angle_l",
                       "ankle_angle_r", "ankle_angle_l")
PLACEMENT_STEP = 5  # marker placement searches every 5th frame for the most neutral pose


def scale_from_markers(osim, generic: Path, names: list[str], xyz: np.ndarray,
                       height_m: float, mass_kg: float, tmp: Path) -> tuple[Path, str]:
    """Scale ``generic`` from a dynamic trial, as AddBiomechanics does where no static trial
    exists: (1) per-segment factors from marker distances that do not depend on the pose
    (:data:`MEASUREMENTS`; mean over frames / the generic model's), the height ratio for the
    rest, total mass ``mass_kg`` (mass distribution kept); (2) IK on every
    :data:`PLACEMENT_STEP`-th frame and, at the most neutral pose (hip, knee, ankle nearest 0),
    every model marker moved onto its measured position (what OpenSim's MarkerPlacer does with a
    static trial): the cluster markers of the generic model are placeholders. ``xyz`` ``(T, P,
    3)`` m. Returns the model path and a note with the factors."""
    k = height_m / estimate_height(osim, generic)[0]
    model = osim.Model(str(generic))
    state = model.initSystem()
    ms = model.getMarkerSet()
    col = {n: j for j, n in enumerate(names)}
    factors = {}
    for bodies, pairs in MEASUREMENTS:
        ratios = []
        for a, b in pairs:
            if a in col and b in col and ms.contains(a) and ms.contains(b):
                d_exp = np.nanmean(np.linalg.norm(xyz[:, col[a]] - xyz[:, col[b]], axis=1))
                d_mod = np.linalg.norm(ms.get(a).getLocationInGround(state).to_numpy()
                                       - ms.get(b).getLocationInGround(state).to_numpy())
                if np.isfinite(d_exp) and d_mod > 0:
                    ratios.append(d_exp / d_mod)
        if ratios:
            for body in bodies:
                factors[body] = float(np.mean(ratios))
    scale_set = osim.ScaleSet()
    for i in range(model.getBodySet().getSize()):
        body = model.getBodySet().get(i).getName()
        f = factors.get(body, k)
        sc = osim.Scale()
        sc.setSegmentName(body)
        sc.setScaleFactors(osim.Vec3(f, f, f))
        sc.setApply(True)
        scale_set.cloneAndAppend(sc)
    if not model.scale(state, scale_set, True, mass_kg):
        raise HdysError(f"scaling {generic.name} failed")
    scaled = tmp / "scaled_segments.osim"
    model.printToXML(str(scaled))

    # marker placement at the most neutral pose of a decimated IK
    m_t = np.arange(xyz.shape[0])  # frame index as time: only the pose matters here
    sub = slice(None, None, PLACEMENT_STEP)
    sub_trc = tmp / "placement.trc"
    write_markers(sub_trc, m_t[sub].astype(float), names, xyz[sub], 1.0)
    (tmp / "placement").mkdir(exist_ok=True)
    ik = run_ik(osim, scaled, sub_trc, (0.0, float(m_t[sub][-1])), tmp / "placement")
    model = osim.Model(str(scaled))
    state = model.initSystem()
    qt, ql, q = coordinates(osim, model, ik, None)
    neutral = sum(q[:, ql.index(c)] ** 2 for c in NEUTRAL_COORDINATES if c in ql)
    i = int(np.argmin(neutral))
    cs = model.getCoordinateSet()
    for j, c in enumerate(ql):
        if cs.contains(c):
            cs.get(c).setValue(state, float(q[i, j]), False)
    model.realizePosition(state)
    frame = int(round(qt[i]))
    ground = model.getGround()
    ms = model.getMarkerSet()
    moved = 0
    for n, j in col.items():
        p = xyz[frame, j]
        if ms.contains(n) and np.all(np.isfinite(p)):
            mk = ms.get(n)
            loc = ground.findStationLocationInAnotherFrame(state, osim.Vec3(*map(float, p)),
                                                           mk.getParentFrame())
            mk.set_location(loc)
            moved += 1
    out = tmp / "scaled.osim"
    model.printToXML(str(out))
    note = (f"{generic.name} scaled per segment from the dynamic trial (no static trial): "
            + ", ".join(f"{b} {f:.3f}" for b, f in sorted(factors.items()))
            + f", others {k:.3f} (height {height_m} m); mass {mass_kg} kg; {moved} markers "
              f"placed at the most neutral frame ({frame}, hip/knee/ankle RMS "
              f"{math.degrees(math.sqrt(neutral[i] / len(NEUTRAL_COORDINATES))):.0f} deg)")
    return out, note


# --- OpenSim tools ---------------------------------------------------------------------------


def write_loads(osim, loads_mot: Path, out: Path) -> Path:
    """ExternalLoads: each foot's total force at the ground origin plus its moment about it."""
    el = osim.ExternalLoads()
    el.setName("feet")
    for side in ("r", "l"):
        ef = osim.ExternalForce()
        ef.setName(f"foot_{side}")
        ef.set_applied_to_body(f"calcn_{side}")
        ef.set_force_expressed_in_body("ground")
        ef.set_point_expressed_in_body("ground")
        ef.set_force_identifier(f"{side}_force_v")
        ef.set_point_identifier(f"{side}_force_p")
        ef.set_torque_identifier(f"{side}_torque_")
        el.cloneAndAppend(ef)
    el.setDataFileName(str(loads_mot))
    el.printToXML(str(out))
    return out


def radians_unwrapped(osim, model, ik_path: Path, out: Path) -> Path:
    """Rewrite an IK motion in radians with every rotational coordinate unwrapped (a turn
    past +-180 deg in the file is a 2 pi jump that ID would turn into a huge spike)."""
    t, labels, q = coordinates(osim, model, ik_path, None)
    cs = model.getCoordinateSet()
    for j, n in enumerate(labels):
        if cs.contains(n) and cs.get(n).getMotionType() == 1:  # rotational
            q[:, j] = np.unwrap(q[:, j])
    write_table(out, t, labels, q)
    return out


def pose_points(model, state, q_labels, q, marker_names, with_keypoints: bool):
    """Per frame: model markers ``(T, M, 3)`` (NaN for names the model lacks), foot points
    ``{side: (T, 2, 3)}`` (calcaneus and toes origins) and, if asked, keypoints ``(T, 12, 3)``."""
    coords = model.getCoordinateSet()
    setters = [(coords.get(n), j) for j, n in enumerate(q_labels) if coords.contains(n)]
    ms = model.getMarkerSet()
    markers = [ms.get(n) if ms.contains(n) else None for n in marker_names]
    bodies = model.getBodySet()
    feet = {s: [bodies.get(b) for b in names] for s, names in FOOT_POINTS.items()}
    kp_frames = []
    if with_keypoints:
        for kp in reps.KEYPOINT_LAYOUTS["opensim"]:
            if kp == "pelvis":
                kp_frames.append(bodies.get("pelvis"))
            elif coords.contains(KEYPOINT_COORDINATE[kp]):
                kp_frames.append(coords.get(KEYPOINT_COORDINATE[kp]).getJoint().getChildFrame())
            else:
                kp_frames.append(None)
    T = q.shape[0]
    mk = np.full((T, len(markers), 3), np.nan)
    ft = {s: np.empty((T, 2, 3)) for s in feet}
    kp = np.full((T, len(kp_frames), 3), np.nan)
    for i in range(T):
        for c, j in setters:
            c.setValue(state, float(q[i, j]), False)
        model.realizePosition(state)
        for p, m in enumerate(markers):
            if m is not None:
                mk[i, p] = m.getLocationInGround(state).to_numpy()
        for s, bs in feet.items():
            for p, b in enumerate(bs):
                ft[s][i, p] = b.getPositionInGround(state).to_numpy()
        for p, f in enumerate(kp_frames):
            if f is not None:
                kp[i, p] = f.getPositionInGround(state).to_numpy()
    return mk, ft, kp


def write_foot_loads(path: Path, t: np.ndarray, loads_f: np.ndarray) -> Path:
    """A ``.mot`` of the feet's loads ``(T, 2, 6)`` (force and moment about the ground origin)
    with the column names :func:`write_loads` refers to; the point columns are zero."""
    cols, labels = [], []
    for s, side in enumerate(("r", "l")):
        for c, a in enumerate("xyz"):
            cols.append(loads_f[:, s, c])
            labels.append(f"{side}_force_v{a}")
        for a in "xyz":
            cols.append(np.zeros(len(t)))
            labels.append(f"{side}_force_p{a}")
        for c, a in enumerate("xyz"):
            cols.append(loads_f[:, s, 3 + c])
            labels.append(f"{side}_torque_{a}")
    write_table(path, t, labels, np.stack(cols, 1))
    return path


def plate_delay(t: np.ndarray, fy: np.ndarray, residual_y: np.ndarray,
                use: np.ndarray) -> tuple[float, float, float]:
    """The plates' clock against the kinematics' (s): the delay ``d`` within
    +-:data:`MAX_PLATE_DELAY_S` (quarter-frame steps) that makes the vertical plate force
    ``fy(t + d)`` best match what the kinematics need, ``m (a_y + g) = fy(t) + residual_y(t)``
    (N, ``(T,)`` each, over the frames ``use``). Returns ``(d, rms before, rms after)`` in N; ``d``
    is 0 unless it lowers that RMS by :data:`MIN_DELAY_GAIN` (a delay fitted to noise is not
    applied), nor where the trial has no flight. In flight ``m (a_y + g)`` must be 0 and at impact it peaks: both pin the timing to
    a few ms where the motion is vigorous (running, landing)."""
    need = fy + residual_y
    dt = float(np.median(np.diff(t)))
    sel = np.flatnonzero(use)
    sel = sel[(sel > 2) & (sel < len(t) - 3)]
    if sel.size < 20:
        return 0.0, float("nan"), float("nan")
    weight = np.median(need[sel])  # ~ body weight (N)
    if np.mean(fy[sel] < MIN_DELAY_FLIGHT_BW * weight) < MIN_DELAY_FLIGHT_FRACTION:
        return 0.0, float("nan"), float("nan")  # no flight: the timing is not pinned

    def rms(d):
        return float(np.sqrt(np.mean((need[sel] - np.interp(t[sel] + d, t, fy)) ** 2)))

    before = rms(0.0)
    steps = int(MAX_PLATE_DELAY_S / (0.25 * dt))
    best = min((rms(k * 0.25 * dt), k * 0.25 * dt) for k in range(-steps, steps + 1))
    if best[0] <= (1.0 - MIN_DELAY_GAIN) * before:
        return round(best[1], 5), before, best[0]
    return 0.0, before, before


def missing_as_nan(xyz: np.ndarray) -> np.ndarray:
    """Markers ``(T, P, 3)`` with exact ``(0, 0, 0)`` samples set to NaN: older TRC writers code
    a missing marker as zeros (hamner_subject02's L.Bicep is all zeros; read as a position it
    alone put the marker RMSE at 25 cm)."""
    xyz = xyz.copy()
    xyz[np.all(xyz == 0.0, axis=-1)] = np.nan
    return xyz


def knee_flexion_negative(model) -> bool:
    """True for gait2392-family knees (flexion < 0: range about -2.1..0.17 rad)."""
    c = model.getCoordinateSet()
    if not c.contains("knee_angle_r"):
        return False
    k = c.get("knee_angle_r")
    return k.getRangeMax() < 0.5 and k.getRangeMin() < -1.0


def nearest(times: np.ndarray, want: np.ndarray, tol: float, what: str) -> np.ndarray:
    """Indices of the samples of sorted ``times`` nearest to ``want``; they must agree to ``tol``."""
    idx = np.clip(np.searchsorted(times, want), 1, len(times) - 1)
    idx = np.where(np.abs(times[idx - 1] - want) <= np.abs(times[idx] - want), idx - 1, idx)
    if np.max(np.abs(times[idx] - want)) > tol:
        raise HdysError(f"{what}: frame times do not match (off by "
                        f"{np.max(np.abs(times[idx] - want)):.4f} s)")
    return idx


def sustained(flag: np.ndarray, n: int) -> np.ndarray:
    """``flag`` where it holds for at least ``n`` consecutive samples, else False."""
    out = np.zeros_like(flag)
    i = 0
    while i < len(flag):
        if flag[i]:
            j = i
            while j < len(flag) and flag[j]:
                j += 1
            if j - i >= n:
                out[i:j] = True
            i = j
        else:
            i += 1
    return out


def unmeasured_contact(t, feet: dict[str, np.ndarray], loaded: np.ndarray,
                       residual_bw: np.ndarray, rate: float) -> np.ndarray:
    """Frames ``(T,)`` with contact no plate measured (see :data:`STILL_FOOT_MPS`,
    :data:`SUPPORT_RESIDUAL_BW`). ``feet[side]`` ``(T, 2, 3)`` heel/toe origins; ``loaded``
    ``(T, 2)`` bool (right, left); ``residual_bw`` ``(T,)`` pelvis residual force in BW."""
    bad = sustained(residual_bw > SUPPORT_RESIDUAL_BW, max(1, round(SUPPORT_RESIDUAL_S * rate)))
    for s, side in enumerate(("r", "l")):
        v = np.linalg.norm(np.gradient(feet[side], t, axis=0), axis=2).min(axis=1)
        bad |= sustained((v < STILL_FOOT_MPS) & ~loaded[:, s], max(1, round(STILL_FOOT_S * rate)))
    return bad


def longest_run(ok: np.ndarray) -> tuple[int, int]:
    """``[start, stop)`` of the longest run of True (``(0, 0)`` when none)."""
    best, start = (0, 0), None
    for i, v in enumerate(np.append(ok, False)):
        if v and start is None:
            start = i
        elif not v and start is not None:
            if i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    return best


# --- one trial -------------------------------------------------------------------------------


def process(trial: Trial, real: Path, tmp: Path, domain: str) -> tuple[Sequence, dict]:
    """Run the chain on ``trial`` (paths under ``real``); returns the sequence and its report.

    Raises :class:`Dropped` when a quality gate fails, :class:`HdysError` on unusable inputs."""
    osim = load_opensim()
    report: dict = {"trial": trial.name, "folder": trial.folder, "task": trial.task}
    model_path = real / trial.model
    notes = {}
    if trial.scale:
        if not (trial.mass_kg and trial.height_m):
            raise HdysError(f"{trial.name}: scaling needs mass_kg and height_m")
        _, s_names, s_xyz, _ = read_markers(real / trial.trc)
        model_path, notes["model"] = scale_from_markers(
            osim, model_path, s_names, missing_as_nan(s_xyz), trial.height_m,
            trial.mass_kg, tmp)
    else:
        notes["model"] = f"given scaled model {Path(trial.model).name}"
    mass = model_mass(osim, model_path)
    if trial.mass_kg and abs(mass - trial.mass_kg) > 0.02 * trial.mass_kg:
        log.info("%s: model mass %.1f kg differs from the recorded %.1f kg; ID uses the model's",
                 trial.name, mass, trial.mass_kg)
    if trial.height_m:
        height, notes["height"] = trial.height_m, trial.height_note
    else:
        height, notes["height"] = estimate_height(osim, real / trial.model)

    # markers (TRC, OpenSim ground: Y up) and kinematics
    m_t, m_names, m_xyz, rate = read_markers(real / trial.trc)
    m_xyz = missing_as_nan(m_xyz)
    if trial.ik:
        ik_path = real / trial.ik
        notes["kinematics"] = f"given IK {Path(trial.ik).name}"
    else:
        trc = tmp / "markers.trc"
        write_markers(trc, m_t, m_names, m_xyz, rate)
        ik_path = run_ik(osim, model_path, trc, (m_t[0], m_t[-1]), tmp)
        notes["kinematics"] = "OpenSim IK here (all model markers found in the TRC, weight 1)"
    model = osim.Model(str(model_path))
    state = model.initSystem()
    ik_path = radians_unwrapped(osim, model, ik_path, tmp / "ik_rad.mot")
    raw_t, q_labels, q_raw = coordinates(osim, model, ik_path, None)
    f_t, f_labels, q_f = coordinates(osim, model, ik_path, trial.cutoff_hz)
    q_f = q_f[nearest(f_t, raw_t, 1e-4, f"{trial.name} filtered IK")]
    marker_pos, feet, _ = pose_points(model, state, q_labels, q_raw, m_names, False)
    _, _, keypoints = pose_points(model, state, q_labels, q_f, [], True)

    # markers at the kinematic frames
    markers = m_xyz[nearest(m_t, raw_t, 0.6 / rate, f"{trial.name} TRC vs IK")]

    # plates -> feet -> filtered loads at the kinematic frames, then ID; the plates' clock is
    # checked against the kinematics' (see plate_delay) and ID rerun when a delay is found
    g_t0, g_labels, g_val = read_table(real / trial.grf)
    plates = pl.find_plates(g_labels)
    g_t0, g_val, g_rate = pl.uniform(g_t0, g_val)
    F, P, Tq = pl.plate_signals(g_val, plates)
    floor_y = pl.floor_height(P, F)

    def loads_and_id(delay_s: float):
        g_t = g_t0 - delay_s
        mask, assigned = pl.assign_feet(g_t, F, P, plates, raw_t, feet)
        loads = pl.foot_loads(F, P, Tq, mask)
        loads = pl.lowpass(loads.reshape(len(g_t), -1), trial.cutoff_hz,
                           g_rate).reshape(loads.shape)
        inside = (raw_t >= g_t[0] - 1e-9) & (raw_t <= g_t[-1] + 1e-9)
        if inside.sum() < 10:
            raise HdysError(f"{trial.name}: the plate table does not cover the kinematics")
        loads_f = np.stack([np.interp(raw_t, g_t, loads[:, s, c], left=0.0, right=0.0)
                            for s in range(2) for c in range(6)], 1).reshape(len(raw_t), 2, 6)
        loads_xml = write_loads(osim, write_foot_loads(tmp / "feet.mot", raw_t, loads_f),
                                tmp / "feet.xml")
        id_t, id_labels, gen = run_id(osim, model_path, ik_path, loads_xml, trial.cutoff_hz, tmp)
        gen = gen[nearest(id_t, raw_t, 0.6 / rate, f"{trial.name} ID vs IK")]
        loaded = np.stack([np.interp(raw_t, g_t, (mask[:, :, s].any(0)).astype(float)) > 0
                           for s in range(2)], 1)
        return assigned, inside, loads_f, id_labels, gen, loaded

    assigned, inside, loads_f, id_labels, gen, loaded = loads_and_id(0.0)
    fy_total = loads_f[:, :, 1].sum(1)
    delay, before, after = plate_delay(raw_t, fy_total,
                                       gen[:, id_labels.index("pelvis_ty_force")], inside)
    if delay:
        assigned, inside, loads_f, id_labels, gen, loaded = loads_and_id(delay)
    report["plate_delay_s"] = delay
    report["vertical_residual_n"] = {"before": round(before, 1), "after": round(after, 1)}

    bw = mass * reps.G
    res_f = np.stack([gen[:, id_labels.index(f"pelvis_t{a}_force")] for a in "xyz"], 1)
    res_m = np.stack([gen[:, id_labels.index(f"pelvis_{a}_moment")]
                      for a in ("tilt", "list", "rotation")], 1)
    res_f_bw = np.linalg.norm(res_f, axis=1) / bw
    ok = ~unmeasured_contact(raw_t, feet, loaded, res_f_bw, rate) & inside
    a, b = longest_run(ok)
    report.update({
        "frames": int(len(raw_t)), "kept_frames": int(b - a),
        "plates": len(plates), "stances": len(assigned),
        "stances_far_from_feet": sum(1 for s in assigned if s.dist_m > pl.MAX_ASSIGN_DIST_M),
    })
    if (b - a) / rate < MIN_KEPT_S:
        raise Dropped(f"only {(b - a) / rate:.2f} s without unmeasured contact (a still foot "
                      f"no plate loads, or sustained residual support), need {MIN_KEPT_S} s",
                      report)
    sl = slice(a, b)

    # quality, as AddBiomechanics reports it
    err = np.linalg.norm(marker_pos[sl] - markers[sl], axis=2)  # (T, M), NaN where missing
    rmse = float(np.sqrt(np.nanmean(err**2)))
    rf = float(np.sqrt(np.mean(res_f_bw[sl] ** 2)) * 100)
    rm = float(np.sqrt(np.mean(np.sum(res_m[sl] ** 2, 1))) / (bw * height) * 100)
    report.update({"marker_rmse_m": round(rmse, 4), "residual_force_pct_bw": round(rf, 2),
                   "residual_moment_pct_bwh": round(rm, 3)})
    max_f, max_m = MAX_RESIDUAL_FORCE_PCT_BW[trial.task], MAX_RESIDUAL_MOMENT_PCT_BWH[trial.task]
    fails = []
    if not rmse <= MAX_MARKER_RMSE_M:
        fails.append(f"marker RMSE {rmse * 100:.1f} cm > {MAX_MARKER_RMSE_M * 100:.0f} cm")
    if not rf <= max_f:
        fails.append(f"residual force {rf:.1f} %BW > {max_f} %BW")
    if not rm <= max_m:
        fails.append(f"residual moment {rm:.2f} %BW·h > {max_m} %BW·h")
    if fails:
        raise Dropped("; ".join(fails), report)

    # channels
    flip = knee_flexion_negative(model)
    cset = model.getCoordinateSet()

    def usable(c: str) -> bool:
        return (cset.contains(c) and not cset.get(c).getDefaultLocked()
                and not cset.get(c).isConstrained(state) and c in q_labels)

    data, chan = {"markers": markers[sl]}, {"markers": tuple(m_names)}
    ang = np.full((b - a, len(reps.RAJAGOPAL_COORDINATES)), np.nan)
    for j, c in enumerate(reps.RAJAGOPAL_COORDINATES):
        if usable(c):
            ang[:, j] = q_f[sl, q_labels.index(c)]
            if flip and c.startswith("knee_angle"):
                ang[:, j] *= -1.0
    data["joint_angles"], chan["joint_angles"] = ang, reps.RAJAGOPAL_COORDINATES
    tq = np.full((b - a, len(reps.RAJAGOPAL_TORQUE_JOINTS)), np.nan)
    for j, c in enumerate(reps.RAJAGOPAL_TORQUE_JOINTS):
        if usable(c) and f"{c}_moment" in id_labels:
            tq[:, j] = gen[sl, id_labels.index(f"{c}_moment")] / mass
            if flip and c.startswith("knee_angle"):
                tq[:, j] *= -1.0
    data["torques_rajagopal"], chan["torques_rajagopal"] = tq, reps.RAJAGOPAL_TORQUE_JOINTS

    cop = pl.centre_of_pressure(loads_f[sl], floor_y, COP_MIN_FZ_N)
    pelvis_xz = np.stack([q_f[sl, q_labels.index("pelvis_tx")],
                          q_f[sl, q_labels.index("pelvis_tz")]], 1)
    grf_cols = []
    for s in range(2):
        grf_cols += [loads_f[sl, s, 0] / bw, loads_f[sl, s, 1] / bw, loads_f[sl, s, 2] / bw,
                     cop[:, s, 0] - pelvis_xz[:, 0], cop[:, s, 2] - pelvis_xz[:, 1]]
    data["grf"], chan["grf"] = np.stack(grf_cols, 1), reps.GRF_CHANNELS
    data["keypoints"], chan["keypoints"] = keypoints[sl], reps.KEYPOINT_LAYOUTS["opensim"]

    masked = [c for j, c in enumerate(reps.RAJAGOPAL_TORQUE_JOINTS) if np.isnan(tq[0, j])]
    meta = {
        "task": trial.task, "person": trial.person, "lab": trial.lab, "folder": trial.folder,
        "trial": trial.trial, "keypoint_layout": "opensim",
        "t0_s": float(raw_t[a]), "cutoff_hz": trial.cutoff_hz,
        "quality": {
            "marker_rmse_m": report["marker_rmse_m"],
            "residual_force_pct_bw": report["residual_force_pct_bw"],
            "residual_moment_pct_bwh": report["residual_moment_pct_bwh"],
            "kept_fraction": round((b - a) / len(raw_t), 3),
            "plate_delay_s": report["plate_delay_s"],
            "gates": {"marker_rmse_m": MAX_MARKER_RMSE_M,
                      "residual_force_pct_bw": max_f, "residual_moment_pct_bwh": max_m},
        },
        "mass_note": "total body mass of the model ID used"
                     + (f" (recorded: {trial.mass_kg} kg)" if trial.mass_kg else ""),
        "height_note": notes["height"],
        "processing": (f"{notes['model']}; {notes['kinematics']}; plates assigned to the nearer "
                       f"foot (calcaneus/toes origin) per stance; feet's force and moment about "
                       f"the ground origin and the coordinates low-pass {trial.cutoff_hz} Hz; "
                       f"OpenSim ID (muscles excluded); kept the longest run of frames without unmeasured "
                       f"contact (a foot still for {STILL_FOOT_S} s that no plate loads, or a "
                       f"residual over {SUPPORT_RESIDUAL_BW} BW for {SUPPORT_RESIDUAL_S} s)"),
        "plate_assignment": [vars(s) for s in assigned],
        "torques_masked": masked,
        "knee_sign_flipped": flip,
        "grf_note": f"per-foot plate totals in body weights (model mass x g); CoP on the floor "
                    f"plane minus (pelvis_tx, pelvis_tz); NaN below {COP_MIN_FZ_N} N",
    }
    seq = Sequence(
        name=trial.name, domain=domain, rate=float(rate),
        subject=Subject(trial.person, round(mass, 3), round(height, 4)),
        source=f"{trial.source}; OpenSim {getattr(osim, '__version__', '4.x')} ID here",
        data=data, names=chan, meta=meta,
    )
    return seq, report
