"""Model configuration: one frozen dataclass, validated on construction."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from hdys_rt import representations as reps
from hdys_rt.errors import HdysError


#: values of fields added after models were first shipped, for configs that lack them
LEGACY: dict = {"bounded_heads": False, "motion": False}


@dataclass(frozen=True)
class ModelConfig:
    latent: int = 128          # size of the homogeneous dynamics space (per-frame latent)
    point_dim: int = 64        # width of the point-set Transformer
    point_layers: int = 3      # point-set Transformer layers (paper: 3)
    point_heads: int = 4
    max_points: int = 128      # hard bound on points per frame (markers / keypoints)
    vec_hidden: int = 256      # hidden width of the MLP encoders, heads and composer
    dec_layers: int = 3        # temporal Transformer decoder layers
    dec_heads: int = 4
    dec_ff: int = 256
    window: int = 32           # frames of temporal context (at the model rate)
    causal: bool = True        # causal decoder (streaming); False = bidirectional (offline)
    fdae: bool = True          # forward-dynamics autoencoder branch (training only)
    bounded_heads: bool = True  # activations/sEMG through a sigmoid, vertical GRF through a
    #                             softplus (trained so); False (models saved before it): clamp
    motion: bool = True        # point encoders also see whole-body motion features (hdys.py:
    #                            motion_features) from the current and 4 previous frames
    rate: float = 100.0        # model rate, Hz: the finite differences of the motion features
    kin_inputs: tuple[str, ...] = ("markers", "keypoints", "joint_angles", "smpl_pose")
    dyn_outputs: tuple[str, ...] = (
        "torques_rajagopal", "torques_smpl", "activations", "semg", "grf")

    def __post_init__(self):
        for f in ("latent", "point_dim", "point_layers", "point_heads", "max_points",
                  "vec_hidden", "dec_layers", "dec_heads", "dec_ff", "window"):
            v = getattr(self, f)
            if not isinstance(v, int) or v <= 0:
                raise HdysError(f"model config: {f} must be a positive integer, got {v!r}")
        if not (isinstance(self.rate, (int, float)) and self.rate > 0):
            raise HdysError(f"model config: rate must be > 0 Hz, got {self.rate!r}")
        if self.point_dim % self.point_heads or self.latent % self.dec_heads:
            raise HdysError("model config: point_dim / latent must be divisible by their heads")
        object.__setattr__(self, "kin_inputs", tuple(self.kin_inputs))
        object.__setattr__(self, "dyn_outputs", tuple(self.dyn_outputs))
        for k in self.kin_inputs:
            if reps.get(k).kind is not reps.Kind.KINEMATIC:
                raise HdysError(f"model config: {k} is not a kinematic representation")
        for k in self.dyn_outputs:
            if reps.get(k).kind is not reps.Kind.DYNAMIC:
                raise HdysError(f"model config: {k} is not a dynamic representation")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kin_inputs"], d["dyn_outputs"] = list(self.kin_inputs), list(self.dyn_outputs)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        d = {**LEGACY, **d}  # fields a model saved before they existed was trained without
        unknown = set(d) - known
        if unknown:
            raise HdysError(f"model config: unknown fields {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
