"""The vocabulary of hdys-rt: every kinematic and dynamic representation, with units and shapes.

Conventions (all data in the corpus, the model and the wire format follow them):

* Frame of reference: right-handed, **Y up** (OpenSim's ground frame), metres. Sources in another
  convention (MuJoCo is Z up, C3D is usually Z up in millimetres) are converted when loaded.
* Time: seconds; every sequence has one uniform rate (Hz).
* Missing values are NaN in storage. Downstream code turns them into boolean masks: a sample
  carries only the subset of representations (and of channels) that its data set has.

Torque signs (``torques_rajagopal``; the one place they are written down, referenced by the
``.sto`` files of ``hdys-rt estimate``): the OpenSim coordinate convention of the Rajagopal
(2016) model, as OpenSim inverse dynamics reports it: a channel's torque is the generalized
force along its coordinate, positive when it acts to INCREASE the coordinate. Ground axes X
forward, Y up, Z right. Per coordinate (both sides alike), positive means:

* ``hip_flexion``: flexion (thigh forward): + = hip flexor moment;
* ``hip_adduction``: adduction (thigh toward the midline); ``hip_rotation``: internal rotation;
* ``knee_angle``: flexion (0 = straight, up to 120 deg): + = knee flexor moment, so the knee
  extensor moment of stance is negative (data in gait2354's opposite sign are flipped when built);
* ``ankle_angle``: dorsiflexion: + = dorsiflexor moment, push-off (plantarflexor) is negative;
* ``subtalar_angle``: inversion; ``mtp_angle``: toe extension (toes up);
* ``lumbar_extension``: trunk extension (leaning back); ``lumbar_bending``: bending to the
  right (about +X); ``lumbar_rotation``: the trunk turning to the left (about +Y).

Each representation is a :class:`Representation`: a key, its kind (kinematic / dynamic), whether
it is a *point set* (``(T, P, 3)``, any number and order of named points) or a *vector*
(``(T, C)``, a fixed canonical channel list), the canonical channel names and the unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = [
    "Kind",
    "Representation",
    "REPRESENTATIONS",
    "KINEMATIC",
    "DYNAMIC",
    "POINT_SETS",
    "RAJAGOPAL_COORDINATES",
    "RAJAGOPAL_TORQUE_JOINTS",
    "SMPL_JOINTS",
    "SMPL_TORQUE_CHANNELS",
    "SMPL_POSE_CHANNELS",
    "MUSCLES",
    "GRF_CHANNELS",
    "KEYPOINT_LAYOUTS",
    "G",
    "LENGTH_UNITS",
    "length_unit",
    "is_point_set",
    "is_torque",
    "is_force",
    "get",
]


class Kind(str, Enum):
    KINEMATIC = "kinematic"
    DYNAMIC = "dynamic"


@dataclass(frozen=True)
class Representation:
    """One representation of motion or of its dynamics.

    Attributes:
        key: short identifier used in files, model heads and the wire format.
        kind: kinematic (model input) or dynamic (model output).
        point_set: True for ``(T, P, 3)`` named point clouds (markers, keypoints), whose names are
            free; False for ``(T, C)`` vectors over the fixed ``channels``.
        channels: canonical channel names (empty for free point sets).
        unit: physical unit of every value.
        description: one line for humans.
    """

    key: str
    kind: Kind
    point_set: bool
    channels: tuple[str, ...]
    unit: str
    description: str

    @property
    def size(self) -> int:
        """Number of channels of a vector representation (0 for point sets)."""
        return len(self.channels)


# --- physical facts --------------------------------------------------------------------------

#: Standard gravity, m/s². One body weight (BW) is mass x G newtons: the corpus divides forces by
#: it and every conversion back to newtons (or to %BW·Ht) multiplies by it.
G: float = 9.80665

#: Length units a marker file or stream may declare, and their factor to metres.
LENGTH_UNITS: dict[str, float] = {"m": 1.0, "cm": 0.01, "mm": 0.001}

# Other spellings met in files and stream metadata (case-insensitive), and the unit they mean.
_LENGTH_SPELLINGS: dict[str, str] = {
    "": "m", "meter": "m", "meters": "m", "metre": "m", "metres": "m",
    "centimeter": "cm", "centimeters": "cm", "centimetre": "cm", "centimetres": "cm",
    "millimeter": "mm", "millimeters": "mm", "millimetre": "mm", "millimetres": "mm",
}


def length_unit(spelling: str | None) -> str | None:
    """The unit of :data:`LENGTH_UNITS` that ``spelling`` names (``"Millimetres"`` -> ``"mm"``,
    blank -> ``"m"``), or None when it names none."""
    s = (spelling or "").strip().lower()
    return s if s in LENGTH_UNITS else _LENGTH_SPELLINGS.get(s)


def is_torque(key: str) -> bool:
    """True for a torque representation (``torques_*``, N·m/kg) or an output derived from one
    (``torques_*_Nm``, ``torques_*_pct_bwht``)."""
    return key.startswith("torques")


def is_force(channel: str) -> bool:
    """True for a force channel of :data:`GRF_CHANNELS` (``r_fx`` .. ``l_fz``, N/BW); False for
    the centre-of-pressure channels (``*_copx``, ``*_copz``, m)."""
    return channel.rsplit("_", 1)[-1] in ("fx", "fy", "fz")


# --- skeletons -------------------------------------------------------------------------------

#: The Rajagopal (2016) lower-body + lumbar coordinate set used by HDyS (23 DoF), radians for
#: rotations and metres for the pelvis translations.
RAJAGOPAL_COORDINATES: tuple[str, ...] = (
    "pelvis_tilt", "pelvis_list", "pelvis_rotation", "pelvis_tx", "pelvis_ty", "pelvis_tz",
    "hip_flexion_r", "hip_adduction_r", "hip_rotation_r", "knee_angle_r", "ankle_angle_r",
    "subtalar_angle_r", "mtp_angle_r",
    "hip_flexion_l", "hip_adduction_l", "hip_rotation_l", "knee_angle_l", "ankle_angle_l",
    "subtalar_angle_l", "mtp_angle_l",
    "lumbar_extension", "lumbar_bending", "lumbar_rotation",
)

#: Joints whose torques are estimated (the 17 actuated, non-root coordinates), N·m/kg.
RAJAGOPAL_TORQUE_JOINTS: tuple[str, ...] = RAJAGOPAL_COORDINATES[6:]

#: SMPL's 24 joints in SMPL order (index 0 is the root).
SMPL_JOINTS: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)

#: SMPL-style pose: root translation (m) then 24 x axis-angle (rad) in SMPL joint order.
SMPL_POSE_CHANNELS: tuple[str, ...] = ("transl_x", "transl_y", "transl_z") + tuple(
    f"{j}_{a}" for j in SMPL_JOINTS for a in ("rx", "ry", "rz")
)

#: SMPL torques: 3 components (joint-local axes x, y, z) for the 23 non-root joints, N·m/kg.
SMPL_TORQUE_CHANNELS: tuple[str, ...] = tuple(
    f"{j}_{a}" for j in SMPL_JOINTS[1:] for a in ("x", "y", "z")
)

#: The 80 lower-limb muscles of the Rajagopal model (identical names in MuJoCo MyoLegs).
MUSCLES: tuple[str, ...] = tuple(
    f"{m}_{side}"
    for side in ("r", "l")
    for m in (
        "addbrev", "addlong", "addmagDist", "addmagIsch", "addmagMid", "addmagProx", "bflh",
        "bfsh", "edl", "ehl", "fdl", "fhl", "gaslat", "gasmed", "glmax1", "glmax2", "glmax3",
        "glmed1", "glmed2", "glmed3", "glmin1", "glmin2", "glmin3", "grac", "iliacus", "perbrev",
        "perlong", "piri", "psoas", "recfem", "sart", "semimem", "semiten", "soleus", "tfl",
        "tibant", "tibpost", "vasint", "vaslat", "vasmed",
    )
)

#: Ground reaction force per foot: force in body weights (N/BW) and centre of pressure (m,
#: horizontal, relative to the pelvis' horizontal position). CoP is NaN when the foot is off the
#: ground.
GRF_CHANNELS: tuple[str, ...] = tuple(
    f"{side}_{q}" for side in ("r", "l") for q in ("fx", "fy", "fz", "copx", "copz")
)

#: Named keypoint layouts a point-set encoder may see (names are informative only: the point-set
#: encoder is order- and count-agnostic).
KEYPOINT_LAYOUTS: dict[str, tuple[str, ...]] = {
    "opensim": (
        "pelvis", "hip_r", "knee_r", "ankle_r", "subtalar_r", "mtp_r", "hip_l", "knee_l",
        "ankle_l", "subtalar_l", "mtp_l", "lumbar",
    ),
    "coco17": (
        "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
        "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
        "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    "h36m17": (
        "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
        "left_ankle", "spine", "thorax", "neck", "head", "left_shoulder", "left_elbow",
        "left_wrist", "right_shoulder", "right_elbow", "right_wrist",
    ),
    "smpl24": SMPL_JOINTS,
}


def _rep(key, kind, point_set, channels, unit, description) -> Representation:
    return Representation(key, kind, point_set, tuple(channels), unit, description)


K, D = Kind.KINEMATIC, Kind.DYNAMIC

#: Every representation, by key.
REPRESENTATIONS: dict[str, Representation] = {
    r.key: r
    for r in (
        _rep("markers", K, True, (), "m", "optical markers: any number of named 3D points"),
        _rep("keypoints", K, True, (), "m",
             "skeletal keypoints (joint centres) of any layout in KEYPOINT_LAYOUTS"),
        _rep("joint_angles", K, False, RAJAGOPAL_COORDINATES, "rad | m",
             "Rajagopal coordinates (rotations rad, pelvis translations m)"),
        _rep("smpl_pose", K, False, SMPL_POSE_CHANNELS, "m | rad",
             "SMPL-style pose: root translation + 24 axis-angle rotations"),
        _rep("torques_rajagopal", D, False, RAJAGOPAL_TORQUE_JOINTS, "N·m/kg",
             "net joint torques of the Rajagopal coordinates, per kg body mass"),
        _rep("torques_smpl", D, False, SMPL_TORQUE_CHANNELS, "N·m/kg",
             "net joint torques of the SMPL skeleton's 23 joints, per kg body mass"),
        _rep("activations", D, False, MUSCLES, "1", "muscle activations in 0..1"),
        _rep("semg", D, False, MUSCLES, "1",
             "sEMG linear envelope per muscle channel, normalised to its peak (0..~1)"),
        _rep("grf", D, False, GRF_CHANNELS, "N/BW | m",
             "ground reaction force per foot (body weights) and centre of pressure (m)"),
    )
}

KINEMATIC: tuple[str, ...] = tuple(k for k, r in REPRESENTATIONS.items() if r.kind is K)
DYNAMIC: tuple[str, ...] = tuple(k for k, r in REPRESENTATIONS.items() if r.kind is D)
POINT_SETS: tuple[str, ...] = tuple(k for k, r in REPRESENTATIONS.items() if r.point_set)


def is_point_set(key: str) -> bool:
    """True for the point-set representations (:data:`POINT_SETS`: markers, keypoints)."""
    return key in POINT_SETS


def get(key: str) -> Representation:
    """Return the representation called ``key``; raise ``ValueError`` naming the valid keys."""
    try:
        return REPRESENTATIONS[key]
    except KeyError:
        raise ValueError(
            f"unknown representation {key!r}; expected one of {sorted(REPRESENTATIONS)}"
        ) from None
