"""Marker-set handling: lab marker names mapped to the names the model was trained on, a report
of what is unknown or missing, and unit / vertical-axis / orientation detection
(:func:`check_upright`: an upside-down or lying skeleton, and the ``--up`` that fixes it).

The model's point encoder is order- and count-agnostic, so names do not change the numbers it
sees; they matter for *which* points go in. The model saw the markers of the Rajagopal lab
recordings (``motion_capture_walk.trc``: ``R.ASIS``, ``R.TH1``, ``R.Knee``, ``R.SH1``,
``R.Ankle``, ``R.Heel``, ``R.MT5``, ``R.Toe``, upper-body ``R.Shoulder``...) and the MyoLegs
virtual markers named after them (``R.MKnee``, ``R.MAnkle``). A lab's own names are mapped to
those:

* Plug-in Gait: ``RASI LASI RPSI LPSI SACR RTHI RKNE RTIB RANK RHEE RTOE RSHO RELB RWRA ...``
* Rajagopal / OpenSim lab sets: ``RASI RPSI RTH1-3 RLFC RMFC RTB1-3 RLMAL RMMAL RCAL RTOE RMT5``
* CAST / cluster sets: ``RTH1-4`` (thigh cluster), ``RSK1-4 RSH1-4 RSHK1-4`` (shank cluster),
  ``RLE RME RLM RMM RCA RVM(H) R5MH``...

Matching ignores case, separators (``. _ - space``) and a Vicon ``Subject:`` prefix, and takes the
side from an ``R``/``L`` prefix or an ``_r``/``_l`` suffix. A mapping is *exact* (same
landmark) or *approx* (a nearby landmark, e.g. Plug-in Gait's thigh wand ``RTHI`` for the thigh
cluster's ``R.TH2``). Markers that match nothing are *unknown* (dropped unless kept); trained
core markers that no input marker maps to are *missing*.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from hdys_rt import representations as reps
from hdys_rt.errors import HdysError
from hdys_rt.wire import MAX_NAME_LEN, WireError, check_names

log = logging.getLogger(__name__)

__all__ = ["TRAINED_MARKERS", "CORE_MARKERS", "MarkerMap", "map_markers", "is_marker",
           "detect_units", "detect_vertical", "Upright", "check_upright", "first_second", "UprightWatch"]

_SIDED = ("ASIS", "PSIS", "TH1", "TH2", "TH3", "TH4", "Knee", "MKnee", "SH1", "SH2", "SH3",
          "SH4", "Ankle", "MAnkle", "Heel", "Toe", "MT5", "Shoulder", "Clavicle", "Biceps",
          "Elbow", "Forearm", "Wrist")

#: Marker names the bundled model was trained on (lab_real + myolegs domains).
TRAINED_MARKERS: tuple[str, ...] = tuple(f"{s}.{m}" for s in "RL" for m in _SIDED) + ("S2",)

#: Markers the lower-body dynamics depend on most; each missing one is reported.
CORE_MARKERS: tuple[str, ...] = tuple(f"{s}.{m}" for s in "RL" for m in
                                      ("ASIS", "PSIS", "Knee", "Ankle", "Heel", "Toe"))

# token (upper case, separators removed, side removed) -> (trained suffix, exact?)
_TOKENS: dict[str, tuple[str, bool]] = {}


def _add(suffix: str, exact: bool, *tokens: str) -> None:
    for t in tokens:
        _TOKENS[t] = (suffix, exact)


_add("ASIS", True, "ASIS", "ASI", "ASIS1")
_add("PSIS", True, "PSIS", "PSI")
for _i in "1234":
    _add(f"TH{_i}", True, f"TH{_i}", f"THI{_i}", f"THIGH{_i}", f"T{_i}")
    _add(f"SH{_i}", True, f"SH{_i}", f"SK{_i}", f"SHK{_i}", f"TB{_i}", f"TIB{_i}", f"SHANK{_i}")
_add("TH2", False, "THI", "THIGH", "TH")
_add("SH2", False, "TIB", "SHANK", "SHN", "SK")
_add("Knee", True, "KNEE", "KNE", "LFC", "LE", "LEP", "LKNE", "LATKNEE", "KNEELAT", "FLE")
_add("MKnee", True, "MKNEE", "MKNE", "MFC", "ME", "MEP", "KNM", "KNEEMED", "MEDKNEE", "FME")
_add("Ankle", True, "ANKLE", "ANK", "LMAL", "LM", "LMA", "LANK", "ANKLELAT", "LATANKLE", "FAL")
_add("MAnkle", True, "MANKLE", "MANK", "MMAL", "MM", "MMA", "MED", "ANKLEMED", "MEDANKLE",
     "TAM")
_add("Heel", True, "HEEL", "HEE", "CAL", "CA", "HL", "FCC")
_add("Toe", True, "TOE", "HAL", "TOETIP")
_add("MT5", True, "MT5", "5MT", "MT5H", "VMH", "VM", "5MH", "MH5", "FM5")
_add("Toe", False, "MT1", "1MT", "FMH", "FM", "1MH", "MH1", "FM1", "MT2", "2MT", "SMH")
_add("Shoulder", True, "SHOULDER", "SHO", "ACR", "SHLD", "SAE")
_add("Clavicle", True, "CLAVICLE", "CLAV", "CLA")
_add("Biceps", True, "BICEPS", "BIC", "UA2", "UPA")
_add("Elbow", True, "ELBOW", "ELB", "LEL", "EL", "HLE")
_add("Forearm", True, "FOREARM", "FOR", "FRM", "FA")
_add("Wrist", True, "WRIST", "WRI", "WRA", "WRB", "WRS", "RSP", "USP", "WR")
# ISB / Qualisys sports and gait sets (IOR: L_IAS L_IPS L_FTC L_FLE L_FME L_TTC L_FAL L_TAM
# L_FCC L_FM1 L_FM2 L_FM5 L_SAE L_HLE L_RSP L_USP), OpenCap (r_calc r_5meta r_toe r_knee
# r_mknee r_ankle r_mankle r.ASIS r_thigh1-3 r_sh1-3 r_lelbow r_lwrist), knee RLEK/RMEK,
# trochanter RGTRO, OptiTrack/Motive (LKneeOut LKneeIn LAnkleOut LToeTip WaistLFront...),
# Motion Analysis / Cortex (R.Knee.Medial R.Ankle.Medial R.Thigh.Upper R.Heel.Bottom...),
# CAST (RGT RTT RLE RME RLM RMM RCA RVM), Rizzoli / IOR spellings of the same landmarks
_add("ASIS", True, "IAS", "ASIS", "WAISTFRONT", "ILIACASIS")
_add("PSIS", True, "IPS", "WAISTBACK")
_add("TH1", False, "GTRO", "GTR", "GT", "FTC", "TROC", "TROCH", "TROCHANTER", "GREATERTROCHANTER",
     "THIGHUPPER", "THIGHTOPLATERAL", "THIGHSUPERIOR")
_add("TH2", False, "THIGHFRONT", "THIGHTOPMEDIAL", "THIGHANTERIOR")
_add("TH3", False, "THIGHREAR", "THIGHBOTTOMLATERAL", "THIGHPOSTERIOR")
_add("SH1", False, "TTC", "TT", "TIBTUBERCLE", "SHANKUPPER", "SHANKANTSUP", "SHANKTOPLATERAL")
_add("SH2", False, "SHANKFRONT", "SHIN", "SHANKTOPMEDIAL", "MIDSHANK")
_add("SH3", False, "SHANKREAR", "SHANKBOTTOMLATERAL", "DISTALSHANK")
_add("Knee", True, "LEK", "KNEL", "KNEEL", "KNEEOUT", "KNEELATERAL", "LATEPI", "LEPI", "LFE",
     "KNEELAT")
_add("MKnee", True, "MEK", "KNEM", "KNEEM", "KNEEIN", "KNEIN", "KNEEMEDIAL", "MEPI", "MFE")
_add("Ankle", True, "MALL", "ANKL", "ANKLEOUT", "ANKLELATERAL", "LATMAL")
_add("MAnkle", True, "MALM", "ANKM", "ANKLEIN", "ANKIN", "ANKLEMEDIAL", "MEDMAL")
_add("Heel", True, "CALC", "HEELBOTTOM", "HEELBACK", "HEELPOSTERIOR")
_add("Heel", False, "POSTERIORFOOT")
_add("MT5", True, "5META", "META5", "5THMETA", "M5", "P5MT", "TOEOUT", "TOELAT", "TOELATERAL")
_add("MT5", False, "LATERALFOOT")
_add("Toe", True, "TOETIP", "TOES", "BIGTOE")
_add("Toe", False, "1META", "META1", "M1", "P1MT", "TOEIN", "TOEMED", "TOEMEDIAL", "FM2", "MT2")
_add("Shoulder", True, "SHOULDERTOP", "ACROMION", "ACROMIUM")
_add("Biceps", True, "BICEP")
_add("MT5", False, "MIDFOOTLAT")
_add("Elbow", True, "LELBOW", "ELBOWOUT", "ELBOWLAT", "ELBOWLATERAL")
_add("Wrist", True, "LWRIST", "MWRIST", "WRISTOUT", "WRISTIN", "WRR", "WRU", "WRISTRADIUS",
     "WRISTULNA", "WRISTMED", "WRISTLAT")
_SACRAL = {"S2": True, "SACR": True, "SACRUM": True, "SAC": True, "MPSIS": False,
           "VSACRAL": True, "SACRAL": True, "VSAC": True}

# Motive names with the side in the middle: WaistLFront, WaistRBack
_MID_SIDE = re.compile(r"^(WAIST)([LR])(FRONT|BACK)$")

# Points that are not markers, skipped quietly (not reported as unknown): Vicon model outputs
# (LKneeMoment, LHipAngles, LAnklePower, *Force, NormalisedGRF, CentreOfMass...), Plug-in Gait
# segment axes (PELO, LFEA, RTOP, HEDO...), computed joint centres (LHJC, RightHipCenter...)
# and unlabelled points (*115, C_123, Unlabeled 2001, x52)
_NOT_MARKERS = re.compile(
    r"""(?ix)
    ( (angles?v?|moments?|forces?|powers?|grf|gamage|score|nm)$            # model outputs
    | ^(centre|center)of(mass|gravity)                                      # CentreOfMass...
    | ^com(floor)?$
    | ^(pel|[lr](fe|ti|fo|to|cl|hn|hu|ra)|hed|trx)[oapl]$                  # PiG segment axes
    | ^[lr]?[hka]jc | ^(left|right)?(hip|knee|ankle)(joint)?cent(er|re)$    # joint centres
    | ^[*\#]\d*$ | ^c_\d+$ | ^unlabel(l)?ed\s*\d+$ | ^x\d+$ )           # unlabelled
    """)

_SEP = re.compile(r"[\s._\-]+")


def _parse(name: str) -> tuple[str | None, str]:
    """(side 'R'/'L'/None, token) of a marker name, case and separators removed."""
    base = name.rsplit(":", 1)[-1]  # Vicon Nexus labels markers "Subject:RASI"
    parts = [p for p in _SEP.split(base) if p]
    if len(parts) > 1 and parts[-1].lower() == "study":  # OpenCap: r_knee_study, r.ASIS_study
        parts = parts[:-1]
    if not parts:
        return None, ""
    low = [p.lower() for p in parts]
    if len(parts) > 1 and low[-1] in ("r", "l", "right", "left"):  # asis_r, ASIS.Left
        return low[-1][0].upper(), "".join(parts[:-1]).upper()
    if len(parts) > 1 and low[0] in ("r", "l", "right", "left"):   # R.ASIS, r_knee, Left-ASIS
        return low[0][0].upper(), "".join(parts[1:]).upper()
    word = parts[0] if len(parts) == 1 else "".join(parts)
    up = word.upper()
    mid = _MID_SIDE.match(up)
    if mid:
        return mid.group(2), mid.group(1) + mid.group(3)
    for prefix, side in (("RIGHT", "R"), ("LEFT", "L")):
        if up.startswith(prefix) and len(up) > len(prefix):
            return side, up[len(prefix):]
    if up[:1] in ("R", "L") and len(up) > 1 and up[1:] in _TOKENS:  # RASI, LKNE
        return up[0], up[1:]
    return None, up


def is_marker(name: str) -> bool:
    """False for points that are not markers (model outputs, segment axes, joint centres,
    unlabelled points): they are skipped quietly."""
    base = name.rsplit(":", 1)[-1].strip()
    return not _NOT_MARKERS.search(base) and not _NOT_MARKERS.search(_SEP.sub("", base))


def _lookup(name: str) -> tuple[str | None, bool]:
    """(trained name or None, exact?) for one input marker name."""
    if name in TRAINED_MARKERS:
        return name, True
    side, tok = _parse(name)
    if side is None:
        if tok in _SACRAL:
            return "S2", _SACRAL[tok]
        return None, False
    hit = _TOKENS.get(tok)
    if hit is None:
        return None, False
    return f"{side}.{hit[0]}", hit[1]


@dataclass
class MarkerMap:
    """How input markers map to trained names.

    Attributes:
        source: input names, in input order.
        target: the name each input marker is sent as (its trained name; unknown ones keep
            their own name), aligned with ``source``.
        keep: indices into ``source`` that are sent (mapped ones, plus unknown ones when kept;
            a second marker mapping onto an already used trained name is dropped).
        exact / approx: ``{source: trained}`` of exact and approximate renames.
        trained: input names that already are trained names (sent as they are).
        unknown: input names matching no trained marker.
        duplicates: input names dropped because another marker already took their trained name.
        missing: core trained markers (:data:`CORE_MARKERS`) that nothing maps to.
        skipped: input points that are not markers (model outputs such as ``LKneeMoment``,
            segment axes, joint centres, unlabelled ``*115``): never sent, not reported as
            unknown.
    """

    source: tuple[str, ...]
    target: tuple[str, ...]
    keep: tuple[int, ...]
    exact: dict[str, str] = field(default_factory=dict)
    approx: dict[str, str] = field(default_factory=dict)
    unknown: tuple[str, ...] = ()
    duplicates: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    trained: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """The names sent downstream, ``len(keep)`` of them."""
        return tuple(self.target[i] for i in self.keep)

    def apply(self, xyz: np.ndarray) -> np.ndarray:
        """``(..., P_in, 3)`` -> ``(..., len(keep), 3)`` (a copy, same dtype)."""
        return np.ascontiguousarray(np.asarray(xyz)[..., list(self.keep), :])

    def as_dict(self) -> dict:
        return {"markers_in": len(self.source), "markers_out": len(self.keep),
                "trained": list(self.trained), "exact": self.exact, "approx": self.approx, "unknown": list(self.unknown),
                "duplicates": list(self.duplicates), "missing_core": list(self.missing),
                "skipped": len(self.skipped)}

    def report(self) -> str:
        """A few lines for humans: counts, approximations, unknown and missing markers."""
        lines = [f"markers: {len(self.source)} in, {len(self.keep)} sent "
                 f"({len(self.trained)} trained names, {len(self.exact)} exact and "
                 f"{len(self.approx)} approximate renames, {len(self.unknown)} unknown, "
                 f"{len(self.skipped)} non-marker points skipped)"]
        if self.exact:
            lines.append("  renamed: " + ", ".join(f"{k}->{v}" for k, v in self.exact.items()))
        if self.approx:
            lines.append("  approximate: " + ", ".join(f"{k}->{v}" for k, v in self.approx.items()))
        if self.unknown:
            lines.append("  unknown (not trained on): " + ", ".join(self.unknown))
        if self.duplicates:
            lines.append("  dropped duplicates: " + ", ".join(self.duplicates))
        if self.missing:
            lines.append("  missing core markers: " + ", ".join(self.missing))
        return "\n".join(lines)


def map_markers(names, keep_unknown: bool = False, enabled: bool = True) -> MarkerMap:
    """Map input marker names to trained names (see the module doc).

    ``enabled=False`` sends every marker under its own name (the report still says which
    ones the model knows). Raises :class:`HdysError` when nothing at all would be sent.
    """
    names = tuple(str(n) for n in names)
    hits = [_lookup(n) for n in names]
    winner: dict[str, int] = {}  # trained name -> the input taking it: exact before approximate
    for i, (t, is_exact) in enumerate(hits):
        if t is not None and (t not in winner or (is_exact and not hits[winner[t]][1])):
            winner[t] = i
    target, keep, exact, approx, unknown, dups, same, skipped = [], [], {}, {}, [], [], [], []
    used: set[str] = set()
    for i, n in enumerate(names):
        t, is_exact = hits[i]
        if t is None:
            target.append(n)
            if not enabled:
                keep.append(i)
            if not is_marker(n):
                skipped.append(n)
                continue
            unknown.append(n)
            if keep_unknown and enabled:
                keep.append(i)
            continue
        if not enabled:
            target.append(n)
            keep.append(i)
            if t == n:
                same.append(n)
            else:
                (exact if is_exact else approx)[n] = t
            used.add(t)
            continue
        if winner[t] != i:
            dups.append(n)
            target.append(n)
            continue
        used.add(t)
        target.append(t)
        keep.append(i)
        if t != n:
            (exact if is_exact else approx)[n] = t
        else:
            same.append(n)
    if keep_unknown or not enabled:  # an unknown name equal to a trained one taken by another
        sent = [target[i] for i in keep]
        if len(set(sent)) != len(sent):
            raise HdysError(f"marker names collide after mapping: {sorted(set(sent))[:5]}...; "
                            "rename them or pass --no-markerset")
    missing = tuple(m for m in CORE_MARKERS if m not in used)
    if not keep:
        raise HdysError(f"none of the {len(names)} markers is known to the model "
                        f"(e.g. {list(names[:5])}); expected names like R.ASIS / RASI / RKNE; "
                        "pass --keep-unknown to send them anyway")
    mm = MarkerMap(names, tuple(target), tuple(keep), exact, approx, tuple(unknown),
                   tuple(dups), missing, tuple(same), tuple(skipped))
    if unknown:
        log.warning("%d unknown marker(s) %s: %s", len(unknown),
                    "kept" if keep_unknown or not enabled else "dropped",
                    ", ".join(unknown[:12]) + (" ..." if len(unknown) > 12 else ""))
    if missing:
        log.warning("missing core markers: %s", ", ".join(missing))
    return mm


def _extent(xyz: np.ndarray) -> np.ndarray:
    """Median over frames of each axis' spread of the point cloud: (3,) in the data's unit."""
    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.ndim == 2:
        xyz = xyz[None]
    with warnings.catch_warnings():  # all-NaN frames are expected (occlusions)
        warnings.simplefilter("ignore", RuntimeWarning)
        span = np.nanmax(xyz, axis=1) - np.nanmin(xyz, axis=1)  # (frames, 3)
    span = span[np.isfinite(span).all(1)]
    if span.size == 0:
        return np.full(3, np.nan)
    return np.median(span, axis=0)


def detect_units(xyz: np.ndarray, declared: str | None = None, what: str = "markers") -> str:
    """Guess the length unit of ``xyz`` (``(T, P, 3)`` or ``(P, 3)``) from the body's size.

    A human's point cloud spans ~0.3..3 m: a largest median spread below 10 means metres,
    10..300 centimetres, above 300 millimetres. Returns ``"m"``, ``"cm"`` or ``"mm"`` (the
    declared unit when the data is too small or odd to tell) and logs a warning when the guess
    contradicts ``declared``.
    """
    e = float(np.nanmax(_extent(xyz))) if np.isfinite(_extent(xyz)).any() else float("nan")
    if not np.isfinite(e) or e <= 0:
        return declared or "m"
    guess = "m" if e < 10 else "cm" if e < 300 else "mm"
    if declared is not None and declared != guess:
        log.warning("%s span %.3g %s, which looks like %s, not the declared %s: "
                    "treating them as %s", what, e, declared, guess, declared, guess)
    return guess


def detect_vertical(xyz: np.ndarray) -> str | None:
    """The axis (``"x"``, ``"y"`` or ``"z"``) along which a body's points spread most per frame
    (the vertical for a standing or walking person), or None when it cannot be told."""
    e = _extent(xyz)
    if not np.isfinite(e).all():
        return None
    order = np.argsort(e)[::-1]
    if e[order[0]] < 1.3 * e[order[1]]:
        return None  # no clear long axis (lying down, a crouch, too few markers)
    return "xyz"[order[0]]


# --- orientation: is the skeleton upright? ---------------------------------------------------
# Name tokens (upper case, side and separators removed) of points high on the body (pelvis and
# above) and of foot points; trained names first (via _lookup), then keypoint / lab words.
_UPPER_TRAINED = {"ASIS", "PSIS", "S2", "Shoulder", "Clavicle"}
_FOOT_TRAINED = {"Ankle", "MAnkle", "Heel", "Toe", "MT5"}
_UPPER_WORDS = {"NOSE", "EYE", "EAR", "HEAD", "TOPHEAD", "HEADTOP", "NECK", "THORAX", "SPINE1",
                "SPINE2", "SPINE3", "SHOULDER", "COLLAR", "CLAVICLE", "CLAV", "C7", "STRN",
                "STERNUM", "FHD", "BHD", "GLAB", "TEMPLE", "PELVIS", "HIP", "LUMBAR", "TORSO",
                "TRUNK", "SACR", "SACRUM", "T10", "IJ", "PX"}
_FOOT_WORDS = {"ANKLE", "HEEL", "TOE", "BIGTOE", "SMALLTOE", "FOOT", "FOOTINDEX", "MTP",
               "SUBTALAR", "CALC", "CALCN", "MALLEOLUS"}

#: the signed raw axis each axis of the Y-up data came from, per ``--up`` applied to it
_RAW_AXIS = {"y": {"x": "+x", "y": "+y", "z": "+z"},
             "ydown": {"x": "+x", "y": "-y", "z": "-z"},    # 180 deg about X
             "z": {"x": "+x", "y": "+z", "z": "-y"}}        # frames.zup_to_yup
#: the ``--up`` that reads a raw signed up axis as Y up
_FLAG = {"+y": "y", "-y": "ydown", "+z": "z"}


def _body_part(name: str) -> str | None:
    """``"upper"`` (pelvis and above), ``"foot"`` or None for one point name."""
    hit, _ = _lookup(name)
    if hit is not None:
        part = hit.split(".")[-1]
        return "upper" if part in _UPPER_TRAINED else "foot" if part in _FOOT_TRAINED else None
    _, tok = _parse(name)
    words = {w.upper() for w in _SEP.split(name.rsplit(":", 1)[-1]) if w} | {tok}
    words |= {w[1:] for w in words if w[:1] in ("R", "L")}  # Plug-in Gait RFHD, LBHD
    if words & _FOOT_WORDS:
        return "foot"
    if words & _UPPER_WORDS:
        return "upper"
    return None


@dataclass(frozen=True)
class Upright:
    """How a skeleton stands in Y-up data (:func:`check_upright`).

    Attributes:
        orientation: ``"upright"``, ``"upside_down"``, ``"lying"`` or ``"unknown"``.
        up: the signed axis of the checked data that looks like up (``"+y"``, ``"-y"``,
            ``"+z"``...), or None.
        flag: the ``--up`` value (one of the check's ``choices``) that would read the input as
            Y up, or None when none does (or nothing looked wrong).
        method: ``"names"`` (pelvis/head points vs foot points by name) or ``"geometry"``
            (the body's long axis and where the floor sits).
        message: one line for the user (empty when upright).
    """

    orientation: str
    up: str | None
    flag: str | None
    method: str
    message: str

    @property
    def suspicious(self) -> bool:
        """True when the skeleton looks upside down or lying: the user should hear of it."""
        return self.orientation in ("upside_down", "lying")

    def short(self) -> str:
        """A few words for a summary line: ``looks upside down (pass --up ydown)``."""
        return (f"looks {self.orientation.replace('_', ' ')}"
                + (f" (pass --up {self.flag})" if self.flag else ""))

    def as_dict(self) -> dict:
        return {"orientation": self.orientation, "up": self.up, "flag": self.flag,
                "method": self.method, "message": self.message}


def first_second(xyz: np.ndarray, rate: float, min_valid: int = 3) -> np.ndarray:
    """The frames of ``xyz`` ``(T, P, 3)`` within 1 s from the first frame with at least
    ``min_valid`` valid points (what :func:`check_upright` looks at)."""
    ok = np.isfinite(xyz).all(-1).sum(-1) >= min_valid
    start = int(np.argmax(ok)) if ok.any() else 0
    return xyz[start:start + max(1, int(round(rate)))]


def _names_up(xyz: np.ndarray, names) -> np.ndarray | None:
    """Median over frames of (mean of the upper points - mean of the foot points), (3,) m; None
    when the names do not identify both groups (or no frame has both)."""
    parts = [_body_part(n) if is_marker(n) else None for n in names]
    upper = [i for i, p in enumerate(parts) if p == "upper"]
    foot = [i for i, p in enumerate(parts) if p == "foot"]
    if not upper or not foot:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        d = np.nanmean(xyz[:, upper], axis=1) - np.nanmean(xyz[:, foot], axis=1)  # (T, 3)
    d = d[np.isfinite(d).all(1)]
    return np.median(d, axis=0) if len(d) else None


def _floor_up(v: np.ndarray) -> int:
    """+1 / -1 when the points along one axis ``v`` (T, P) sit on one side of 0 as a body
    standing on a floor at 0 does (lab data), else 0 (no vote: camera- or hip-centred data)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanmedian(np.nanmin(v, 1)), np.nanmedian(np.nanmax(v, 1))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return 0
    if lo > -0.2 and hi > 0.5:
        return 1
    if hi < 0.2 and lo < -0.5:
        return -1
    return 0


def check_upright(xyz: np.ndarray, names=None, up: str = "y",
                  choices: tuple[str, ...] = ("y", "ydown", "z")) -> Upright:
    """Whether a skeleton in Y-up data (``xyz`` ``(T, P, 3)`` m, about its first second, NaN
    allowed; ``up``: the ``--up`` already applied to the input; ``choices``: the ``--up``
    values the user's command takes) stands upright.

    With ``names`` that identify pelvis/head and foot points (marker sets, keypoint layouts),
    the direction from the feet to the upper points must be within 35 deg of an axis; else by
    geometry: a human-sized long axis (:func:`detect_vertical`, 0.6..2.1 m) and, for its sign,
    a floor at 0 (lab data) at one end of it. Conservative: ``"unknown"`` rather than a false alarm.
    """
    if up not in _RAW_AXIS:
        raise HdysError(f"up must be one of {sorted(_RAW_AXIS)}, got {up!r}")
    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.ndim != 3 or xyz.shape[2] != 3:
        raise HdysError(f"points must be (frames, points, 3), got shape {xyz.shape}")
    if names is not None and len(names) != xyz.shape[1]:
        raise HdysError(f"{len(names)} names for {xyz.shape[1]} points")
    signed, method = None, "names"
    d = _names_up(xyz, names) if names is not None else None
    if d is not None and np.linalg.norm(d) > 0.25:
        a = int(np.argmax(np.abs(d)))
        if abs(d[a]) >= np.cos(np.radians(35)) * np.linalg.norm(d):
            signed = ("+" if d[a] > 0 else "-") + "xyz"[a]
    if signed is None:
        method = "geometry"
        if names is not None:  # model outputs, joint centres... are not on the body's surface
            xyz = xyz[:, [i for i, n in enumerate(names) if is_marker(n)]]
        vert = detect_vertical(xyz)
        if vert is None or not 0.6 <= _extent(xyz)["xyz".index(vert)] <= 2.1:
            return Upright("unknown", None, None, method, "")  # no human-sized long axis
        sign = _floor_up(xyz[..., "xyz".index(vert)])
        if sign == 0:  # no floor at 0 (hip- or camera-centred data): no sign, no verdict
            return Upright("unknown", None, None, method, "")
        signed = ("-" if sign < 0 else "+") + vert
    if signed == "+y":
        return Upright("upright", signed, None, method, "")
    raw = _RAW_AXIS[up][signed[1]]
    if signed[0] == "-":
        raw = ("+" if raw[0] == "-" else "-") + raw[1]
    flag = _FLAG.get(raw) if _FLAG.get(raw) in choices else None
    how = "by its point names" if method == "names" else "by its long axis and the floor"
    if signed == "-y":
        orientation, what = "upside_down", f"upside down (head below the feet, {how})"
    else:
        orientation, what = "lying", f"lying (feet to head along {signed.upper()}, {how})"
    looks = {"+y": "Y up", "-y": "Y down", "+z": "Z up"}.get(raw, f"{raw.upper()} up")
    fix = (f"; pass --up {flag}" if flag is not None else
           f", which --up {'/'.join(choices)} cannot express: rotate it to Y up")
    return Upright(orientation, signed, flag, method,
                   f"the skeleton looks {what}: the input looks {looks}{fix}")


class UprightWatch:
    """Keeps a live stream's first second of frames (by their time) and runs
    :func:`check_upright` on them once; nothing is kept after that.

    ``add(xyz (P, 3), t)`` returns the :class:`Upright` when that second is in (once), else
    None; ``finish()`` checks what was kept when the stream ends sooner. ``result`` holds it.
    """

    def __init__(self, names, up: str = "y", choices: tuple[str, ...] = ("y", "ydown", "z"),
                 seconds: float = 1.0, max_frames: int = 4096):
        self.names, self.up, self.choices = tuple(names), up, tuple(choices)
        self.seconds, self.max_frames = seconds, max_frames
        self.result: Upright | None = None
        self._frames: list[np.ndarray] | None = []  # (P, 3) copies; None once checked
        self._t0: float | None = None

    @property
    def done(self) -> bool:
        return self._frames is None

    def add(self, xyz: np.ndarray, t: float) -> Upright | None:
        if self._frames is None:
            return None
        if self._t0 is None:
            self._t0 = t
        self._frames.append(np.array(xyz, dtype=np.float32))
        if t - self._t0 >= self.seconds or len(self._frames) >= self.max_frames:
            return self.finish()
        return None

    def finish(self) -> Upright | None:
        frames, self._frames = self._frames, None
        if frames:
            self.result = check_upright(np.stack(frames), self.names, self.up, self.choices)
            return self.result
        return None


# --- LSL-style channel labels -----------------------------------------------------------------
_AXIS = re.compile(r"^(.+?)[\s_.:\-/]?([xyzXYZ])$")


def parse_marker_channels(labels: list[str], units: list[str], n_channels: int,
                          stream: str = "") -> tuple[tuple[str, ...], float]:
    """Marker names and the scale to metres from channel labels ``NAME_X, NAME_Y, NAME_Z`` and
    their units (an LSL stream's or an XDF file's channel description)."""
    if n_channels % 3:
        raise HdysError(f"LSL stream {stream!r} has {n_channels} channels; a marker stream needs "
                        "3 per marker (x, y, z)")
    if not any(labels):
        names = tuple(f"M{i + 1:03d}" for i in range(n_channels // 3))
        log.warning("LSL stream %r has no channel labels; markers named M001..M%03d",
                    stream, len(names))
    else:
        if len(labels) != n_channels:
            raise HdysError(f"LSL stream {stream!r}: {len(labels)} channel labels for "
                            f"{n_channels} channels")
        names = []
        for i in range(0, n_channels, 3):
            parts = [_AXIS.match(lab or "") for lab in labels[i:i + 3]]
            if not all(parts) or [p.group(2).lower() for p in parts] != ["x", "y", "z"] \
                    or len({p.group(1) for p in parts}) != 1:
                raise HdysError(
                    f"LSL stream {stream!r}: channels {i}..{i + 2} are labelled "
                    f"{labels[i:i + 3]}; expected NAME_X, NAME_Y, NAME_Z")
            names.append(parts[0].group(1)[:MAX_NAME_LEN])
        names = tuple(names)
    try:
        check_names(names, f"LSL stream {stream!r} marker names")
    except WireError as exc:
        raise HdysError(str(exc)) from None
    unit_set = {(u or "").strip().lower() for u in units} or {""}
    if len(unit_set) > 1:
        raise HdysError(f"LSL stream {stream!r} mixes channel units {sorted(unit_set)}")
    unit = unit_set.pop()
    if reps.length_unit(unit) is None:
        raise HdysError(f"LSL stream {stream!r}: unknown channel unit {unit!r}; "
                        f"expected one of m, cm, mm")
    return names, reps.LENGTH_UNITS[reps.length_unit(unit)]
