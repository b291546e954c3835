"""Training data: a corpus in memory, resampled to the model rate, split by subject, and
balanced window batches with masks for whatever each domain lacks.

A batch is a dict ``key -> (values, mask, present)``:

* point sets: values (B, W, P, 3) metres, mask (B, W, P) bool (finite points);
* vectors: values (B, W, C) physical units (NaN replaced by 0), mask (B, W, C) bool;
* ``present`` (B,) bool: the window's sequence carries that representation at all.

Plus ``"domain"``: list of B domain names, and ``"com_load"`` (values (B, W, 1) body weights,
mask, present) when a point set and GRF are asked for: :func:`com_load` of the window.

GRF frames that no force plate saw are unknown, not zero (:func:`mask_unseen_support`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hdys_rt import representations as reps
from hdys_rt.data.corpus import list_domains, list_sequences, read_sequence
from hdys_rt.errors import HdysError
from hdys_rt.model.mirror import mirror_input, mirrorable

log = logging.getLogger(__name__)

TEST_FRACTION_BUCKETS = 5  # persons whose hash % 5 == 0 are held out (when no explicit split)


# --- splits: the one place that decides which sequences train and which test ------------------

def person_of(seq_meta: dict, subject_id: str) -> str:
    """The split group of a sequence: ``meta["person"]`` when present (folders that hold one
    person share it), else the sequence's subject id."""
    return str(seq_meta.get("person") or subject_id)


def lab_of(seq_meta: dict, domain: str) -> str:
    """The lab of a sequence: ``meta["lab"]`` when present, else its domain's name."""
    return str(seq_meta.get("lab") or domain)


def hash_split(person: str) -> str:
    """'train' or 'test' from a stable hash of the person id (about one person in five is held
    out)."""
    h = int(hashlib.sha256(person.encode()).hexdigest(), 16)
    return "test" if h % TEST_FRACTION_BUCKETS == 0 else "train"


@dataclass(frozen=True)
class SeqInfo:
    """What the split needs to know of one sequence (read from its sidecar alone)."""

    path: Path
    domain: str
    name: str
    person: str
    lab: str
    task: str | None
    explicit: str | None  # meta["split"] when it names one


def scan(corpus: str | Path, domains: list[str] | None = None) -> list[SeqInfo]:
    """The sidecars of ``domains`` (None: every domain) without reading their arrays."""
    avail = list_domains(corpus)
    domains = avail if domains is None else list(domains)
    for d in domains:
        if d not in avail:
            raise HdysError(f"domain {d!r} not in corpus {corpus} (has {avail})")
    out = []
    for d in domains:
        for path in list_sequences(corpus, d):
            try:
                head = json.loads(path.read_text())
                meta, sub = head.get("meta") or {}, head["subject"]["id"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise HdysError(f"{path}: not a readable sequence sidecar ({exc})") from None
            explicit = meta.get("split") if meta.get("split") in ("train", "test") else None
            out.append(SeqInfo(path, d, str(head.get("name", path.stem)), person_of(meta, sub),
                               lab_of(meta, d), meta.get("task"), explicit))
    return out


def assign_splits(infos: list[SeqInfo], holdout_lab: str | list[str] | None = None,
                  holdout_persons: list[str] | None = None) -> dict[Path, str]:
    """Sidecar path -> 'train' | 'test', decided per PERSON so that no person is on both sides.

    * neither held out: a person whose sequences name an explicit ``meta["split"]`` takes it
      (they must agree), else :func:`hash_split` of the person id.
    * ``holdout_lab`` LAB (leave-one-lab-out; or several labs, a list) and/or
      ``holdout_persons`` (person ids, :func:`person_of`): the persons of those labs and the
      persons named test, everyone else trains; explicit splits are ignored.

    Raises :class:`HdysError` when a person's explicit splits disagree, when a person appears
    in the held-out lab and another one, or when ``holdout_lab`` / ``holdout_persons`` names no
    lab / person of ``infos``.
    """
    by_person: dict[str, list[SeqInfo]] = {}
    for i in infos:
        by_person.setdefault(i.person, []).append(i)
    held = set() if holdout_lab is None else \
        {holdout_lab} if isinstance(holdout_lab, str) else set(holdout_lab)
    held_persons = set(holdout_persons or ())
    for lab in sorted(held):
        if lab not in {i.lab for i in infos}:
            raise HdysError(f"--holdout-lab {lab!r} is no lab of these sequences; labs: "
                            f"{sorted({i.lab for i in infos})}")
    for person in sorted(held_persons - set(by_person)):
        raise HdysError(f"--holdout-person {person!r} is no person of these sequences; "
                        f"persons: {sorted(by_person)[:12]}"
                        f"{' ...' if len(by_person) > 12 else ''}")
    out = {}
    for person, items in by_person.items():
        if held or held_persons:
            labs = {i.lab for i in items}
            if labs & held and labs - held and person not in held_persons:
                raise HdysError(f"person {person!r} has sequences in labs {sorted(labs)}: "
                                f"holding out {sorted(labs & held)} would put them on both "
                                "sides")
            side = "test" if labs & held or person in held_persons else "train"
        else:
            explicit = {i.explicit for i in items if i.explicit}
            if len(explicit) > 1:
                names = [f"{i.domain}/{i.name}={i.explicit}" for i in items if i.explicit]
                raise HdysError(f"person {person!r}: sequences name different splits "
                                f"({', '.join(names[:4])}); make meta.split agree")
            side = explicit.pop() if explicit else hash_split(person)
        for i in items:
            out[i.path] = side
    return out


def resample(x: np.ndarray, rate_in: float, rate_out: float) -> np.ndarray:
    """Linear resampling along axis 0 (NaN-propagating); returns float32."""
    if abs(rate_in - rate_out) < 1e-6:
        return np.asarray(x, dtype=np.float32)
    T = x.shape[0]
    t_in = np.arange(T) / rate_in
    n_out = int(np.floor(t_in[-1] * rate_out)) + 1
    t_out = np.arange(n_out) / rate_out
    pos = t_out * rate_in
    i0 = np.clip(np.floor(pos).astype(int), 0, T - 1)
    i1 = np.clip(i0 + 1, 0, T - 1)
    w = (pos - i0).reshape((-1,) + (1,) * (x.ndim - 1))
    return ((1 - w) * x[i0] + w * x[i1]).astype(np.float32)


@dataclass
class SeqArrays:
    name: str
    domain: str
    subject: str
    mass_kg: float
    data: dict[str, np.ndarray]  # key -> (T, P, 3) or canonical (T, C); NaN = missing
    frames: int
    person: str = ""  # the split group (:func:`person_of`)
    lab: str = ""  # :func:`lab_of`
    task: str | None = None  # meta["task"] (walk, run, jump, sit_to_stand, squat) when known
    rate: float = 100.0  # Hz of ``data`` (the model rate it was resampled to)


class CorpusData:
    """The sequences of a corpus (some domains, one split), in memory at ``rate`` Hz.

    The split is decided per person by :func:`assign_splits` (training and evaluation both
    load through here, so they never disagree): ``split`` 'train' | 'test' | None (all);
    ``holdout_lab`` (leave-one-lab-out) and ``holdout_persons`` (these persons test): instead
    of the person hash."""

    def __init__(self, corpus: str | Path, rate: float = 100.0, split: str | None = "train",
                 domains: list[str] | None = None, keys: tuple[str, ...] | None = None,
                 min_frames: int = 8, max_points: int = 128,
                 fraction: dict[str, float] | None = None, fraction_seed: int = 0,
                 holdout_lab: str | list[str] | None = None,
                 holdout_persons: list[str] | None = None):
        """``fraction``: keep only this fraction (0..1] of a domain's frames (whole sequences,
        drawn with ``fraction_seed``), per domain name; domains not named are kept whole."""
        if split not in ("train", "test", None):
            raise HdysError(f"split must be 'train', 'test' or None (all), got {split!r}")
        self.rate = rate
        infos = scan(corpus, domains)
        sides = assign_splits(infos, holdout_lab, holdout_persons)
        self.seqs: dict[str, list[SeqArrays]] = {}
        for d in dict.fromkeys(i.domain for i in infos):
            items = []
            for info in (i for i in infos if i.domain == d):
                path = info.path
                if split is not None and sides[path] != split:
                    continue
                seq = read_sequence(path)
                data = {}
                for k in seq.data:
                    if keys is not None and k not in keys:
                        continue
                    rep = reps.get(k)
                    arr = seq.data[k] if rep.point_set else seq.canonical(k)
                    if rep.point_set and arr.shape[1] > max_points:
                        raise HdysError(f"{path}: {arr.shape[1]} points exceed max_points "
                                        f"{max_points}")
                    data[k] = resample(arr, seq.rate, rate)
                if not data:
                    continue
                pk = next((k for k in ("markers", "keypoints") if k in seq.data), None)
                if "grf" in data and pk is not None:  # (points resampled once: here or above)
                    pts = data[pk] if pk in data else resample(seq.data[pk], seq.rate, rate)
                    data["grf"] = mask_unseen_support(data["grf"], pts, rate)
                T = next(iter(data.values())).shape[0]
                if T >= min_frames:
                    items.append(SeqArrays(seq.name, d, seq.subject.id, seq.subject.mass_kg,
                                           data, T, info.person, info.lab, info.task, rate))
            f = (fraction or {}).get(d, 1.0)
            if f < 1.0 and items:
                rng = np.random.default_rng(fraction_seed)
                keep = max(1, int(round(f * sum(s.frames for s in items))))
                order = rng.permutation(len(items))
                chosen, total = [], 0
                for i in order:
                    if total >= keep:
                        break
                    chosen.append(items[i])
                    total += items[i].frames
                items = sorted(chosen, key=lambda s: s.name)
            if items:
                self.seqs[d] = items
        if not self.seqs:
            raise HdysError(f"corpus {corpus}: no sequences for split={split!r}"
                            f"{f' holding out lab {holdout_lab!r}' if holdout_lab else ''}"
                            f"{f' holding out {holdout_persons!r}' if holdout_persons else ''} "
                            f"in domains {domains or sorted({i.domain for i in infos})}")

    @property
    def domains(self) -> list[str]:
        return list(self.seqs)

    def frames(self, domain: str | None = None) -> int:
        ds = [domain] if domain else self.domains
        return sum(s.frames for d in ds for s in self.seqs[d])

    def keys(self) -> set[str]:
        return {k for items in self.seqs.values() for s in items for k in s.data}

    def normalisation(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per-channel mean/std of every vector representation over the loaded frames."""
        out = {}
        for k in self.keys():
            rep = reps.get(k)
            if rep.point_set:
                continue
            stack = np.concatenate([s.data[k] for items in self.seqs.values() for s in items
                                    if k in s.data])
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nan_to_num(np.nanmean(stack, 0))
                std = np.nan_to_num(np.nanstd(stack, 0), nan=1.0)
            std[std < 1e-3] = 1.0
            out[k] = (mean.astype(np.float32), std.astype(np.float32))
        return out


def com_load(points: np.ndarray, rate: float, lag: int = 3, smooth: int = 7) -> np.ndarray:
    """Total vertical load the motion implies, F / (m g) = 1 + a_y / g, from the marker
    centroid as a centre-of-mass proxy.

    points (T, P, 3) metres Y up, NaN = missing -> (T,) body weights, NaN where it cannot be
    computed. a_y: mean over the points valid at t - lag, t, t + lag of their central second
    difference (so dropouts do not move the "centroid"), then a ``smooth``-frame moving
    average (the filter: at 100 Hz lag 3 + 7 frames cut at about 10 Hz)."""
    T = points.shape[0]
    y = points[..., 1].astype(np.float64)  # (T, P)
    out = np.full(T, np.nan)
    if T <= 2 * lag:
        return out.astype(np.float32)
    d2 = (y[2 * lag:] - 2 * y[lag:-lag] + y[:-2 * lag]) * (rate / lag) ** 2  # (T - 2 lag, P)
    ok = np.isfinite(d2)
    with np.errstate(invalid="ignore"):
        a = np.where(ok.sum(1) >= 3, np.where(ok, d2, 0).sum(1) / np.maximum(ok.sum(1), 1),
                     np.nan)
    if smooth > 1 and len(a) >= smooth:
        k = np.ones(smooth) / smooth
        valid = np.isfinite(a)
        num = np.convolve(np.where(valid, a, 0), k, "same")
        den = np.convolve(valid.astype(float), k, "same")
        a = np.where(den > 0.99, num / np.maximum(den, 1e-9), np.nan)
    out[lag:T - lag] = 1.0 + a / reps.G
    return out.astype(np.float32)


#: a frame is unseen support when the plates carry under UNSEEN_PLATES body weights in all
#: while the motion says the body is carried (com_load over UNSEEN_LOAD): no flight
UNSEEN_PLATES, UNSEEN_LOAD = 0.1, 0.6


def mask_unseen_support(grf: np.ndarray, points: np.ndarray, rate: float) -> np.ndarray:
    """GRF (T, 10) canonical with the frames no force plate saw set to NaN (unknown).

    A walkway holds a few plates: while a foot is off them its force is recorded as 0. Such a
    frame is told from a flight by the body's motion: the plates carry < 0.1 BW in total while
    :func:`com_load` of ``points`` (T, P, 3) says the body is carried (> 0.6 BW). In a flight
    the motion says about 0. Measured on the corpus: about half the frames of the clinical
    Plug-in Gait walks are such frames, none of the held-out persons'; in simulation, a
    quarter of myolegs' running frames (its GRF's flights do not match its motion's) and a few
    of the humanoid's (seated on a chair that carries all)."""
    ch = reps.get("grf").channels
    total = grf[:, ch.index("r_fy")] + grf[:, ch.index("l_fy")]
    load = com_load(points, rate)[:len(total)]
    with np.errstate(invalid="ignore"):
        unseen = (total < UNSEEN_PLATES) & (load > UNSEEN_LOAD)
    if not unseen.any():
        return grf
    out = grf.copy()
    out[unseen] = np.nan
    return out


def _yaw_matrix(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float32)  # about +Y


def _rotate_grf(g: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Rotate each foot's horizontal force and CoP (GRF_CHANNELS layout) by yaw matrix R."""
    g = g.copy()
    for base in (0, 5):
        f = g[:, base:base + 3] @ R.T
        g[:, base:base + 3] = f
        cop = np.stack([g[:, base + 3], np.zeros(len(g)), g[:, base + 4]], -1) @ R.T
        g[:, base + 3], g[:, base + 4] = cop[:, 0], cop[:, 2]
    return g


def _rotate_smpl_root(pose: np.ndarray, R: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    pose = pose.copy()
    pose[:, 0:3] = pose[:, 0:3] @ R.T
    root = pose[:, 3:6]
    ok = np.isfinite(root).all(1)
    if ok.any():
        r = Rotation.from_matrix(R.astype(np.float64)) * Rotation.from_rotvec(root[ok])
        pose[ok, 3:6] = r.as_rotvec()
    return pose


@dataclass(frozen=True)
class Augment:
    """Training augmentation, so that unseen labs look familiar (probabilities per window)."""

    yaw: bool = True              # random heading about the vertical
    mirror: float = 0.5           # mirror image (x -> -x), left/right outputs swapped
    point_dropout: float = 0.3    # in half the windows drop up to this fraction of the points
    occlusion: float = 0.02       # per point and frame
    sparse: float = 0.2           # keep only 6..10 random points (sparse marker sets)
    noise_m: float = 0.003        # marker noise: Gaussian, std drawn in 0..noise_m per window
    jitter_m: float = 0.02        # marker placement: a constant offset per point, std 0..jitter_m
    low_rate: float = 0.2         # resample the points through a lower source rate (30-90 Hz)


NO_AUGMENT = Augment(yaw=False, mirror=0.0, point_dropout=0.0, occlusion=0.0, sparse=0.0,
                     noise_m=0.0, jitter_m=0.0, low_rate=0.0)


class WindowSampler:
    """Balanced window batches: each window picks a domain uniformly, then a sequence with
    probability proportional to its usable windows, then a start; augmented (:class:`Augment`)."""

    def __init__(self, data: CorpusData, window: int, seed: int, yaw: bool = True,
                 rank: int = 0, point_dropout: float = 0.3, occlusion: float = 0.02,
                 augment: Augment | None = None):
        self.data, self.W = data, window
        self.aug = augment or Augment(yaw=yaw, point_dropout=point_dropout, occlusion=occlusion)
        self.yaw = self.aug.yaw
        self.point_dropout, self.occlusion = self.aug.point_dropout, self.aug.occlusion
        self.rng = np.random.default_rng([seed, rank])
        self._weights = {}
        for d, items in data.seqs.items():
            w = np.array([max(s.frames - window + 1, 1) for s in items], dtype=np.float64)
            self._weights[d] = w / w.sum()

    def sample_windows(self, n: int) -> list[tuple[SeqArrays, int, float, bool]]:
        out = []
        doms = self.data.domains
        for _ in range(n):
            d = doms[self.rng.integers(len(doms))]
            items = self.data.seqs[d]
            s = items[self.rng.choice(len(items), p=self._weights[d])]
            start = int(self.rng.integers(max(s.frames - self.W + 1, 1)))
            yaw = float(self.rng.uniform(-np.pi, np.pi)) if self.yaw else 0.0
            mirror = bool(self.rng.random() < self.aug.mirror) and mirrorable(s.data)
            out.append((s, start, yaw, mirror))
        return out

    def batch(self, n: int, keys: tuple[str, ...]) -> dict:
        out = collate(self.sample_windows(n), self.W, keys)
        for k in keys:
            if k in out and reps.get(k).point_set:
                self._perturb_points(out[k][0], out[k][1])
                self._drop_points(out[k][1])
        return out

    def _perturb_points(self, vals: torch.Tensor, mask: torch.Tensor) -> None:
        """Marker noise, placement jitter and lower source rates, in place on (B, W, P, 3)."""
        a, rng = self.aug, self.rng
        v, m = vals.numpy(), mask.numpy()
        B, W, P, _ = v.shape
        for i in range(B):
            if a.jitter_m > 0:
                v[i] += rng.normal(0, rng.uniform(0, a.jitter_m), (1, P, 3)).astype(np.float32)
            if a.noise_m > 0:
                v[i] += rng.normal(0, rng.uniform(0, a.noise_m), (W, P, 3)).astype(np.float32)
            if rng.random() < a.low_rate:  # sampled at r Hz, linearly interpolated to the model
                step = 100.0 / rng.uniform(30.0, 90.0)  # model frames per source frame
                t_src = np.arange(0.0, W - 1 + 1e-9, step)
                t_src = np.append(t_src, t_src[-1] + step) if t_src[-1] < W - 1 else t_src
                full = m[i].all(0)  # points valid in the whole window
                if not full.any():
                    continue
                src = np.stack([np.interp(t_src, np.arange(W), v[i, :, p, c])
                                for p in np.flatnonzero(full) for c in range(3)], -1)
                back = np.stack([np.interp(np.arange(W), t_src, src[:, j])
                                 for j in range(src.shape[1])], -1)
                v[i][:, full] = back.reshape(W, -1, 3)
            v[i][~m[i]] = 0.0

    def _drop_points(self, mask: torch.Tensor) -> None:
        """Marker-set variation and occlusion: in half of the windows drop a random 0-30% of
        the points for the whole window; in ``sparse`` of them keep only 6-10 points; then hide
        each point in each frame with a small probability. Edits the (B, W, P) mask in place;
        never hides every point of a frame."""
        B, W, P = mask.shape
        keep = np.ones((B, W, P), bool)
        m = mask.numpy()
        for i in range(B):
            present = np.flatnonzero(m[i].any(0))
            if len(present) > 10 and self.rng.random() < self.aug.sparse:
                chosen = self.rng.choice(present, int(self.rng.integers(6, 11)), replace=False)
                keep[i] = False
                keep[i, :, chosen] = True
            elif self.rng.random() < 0.5:
                keep[i, :, self.rng.random(P) < self.rng.uniform(0, self.point_dropout)] = False
        keep &= self.rng.random((B, W, P)) >= self.occlusion
        new = m & keep
        empty = ~new.any(-1) & m.any(-1)  # frames that would lose every point: keep them whole
        new[empty] = m[empty]
        mask.copy_(torch.from_numpy(new))


def collate(windows: list[tuple], W: int, keys: tuple[str, ...]) -> dict:
    """Assemble windows (sequence, start, yaw[, mirror]) of W frames into padded tensors and
    masks. ``mirror``: the image x -> -x after the yaw, with left/right channels swapped
    (:func:`~hdys_rt.model.mirror.mirror_input`), so that the RIGHT outputs follow the side that
    now looks right."""
    windows = [w if len(w) == 4 else (*w, False) for w in windows]
    B = len(windows)
    out: dict = {"domain": [w[0].domain for w in windows]}
    for k in keys:
        rep = reps.get(k)
        have = [k in w[0].data for w in windows]
        if not any(have):
            continue
        if rep.point_set:
            P = max(w[0].data[k].shape[1] for w, h in zip(windows, have) if h)
            vals = np.zeros((B, W, P, 3), np.float32)
        else:
            vals = np.zeros((B, W, rep.size), np.float32)
        mask = np.zeros(vals.shape[:-1] if rep.point_set else vals.shape, bool)
        for i, ((s, start, yaw, mirror), h) in enumerate(zip(windows, have)):
            if not h:
                continue
            seg = s.data[k][start:start + W]
            n = seg.shape[0]
            R = _yaw_matrix(yaw)
            if rep.point_set:
                seg = seg @ R.T
                if mirror:
                    seg = mirror_input(k, seg)
                ok = np.isfinite(seg).all(-1)
                vals[i, :n, :seg.shape[1]] = np.where(ok[..., None], seg, 0.0)
                mask[i, :n, :seg.shape[1]] = ok
            else:
                if k == "grf":
                    seg = _rotate_grf(seg, R)
                elif k == "smpl_pose":
                    seg = _rotate_smpl_root(seg, R)
                if mirror:
                    seg = mirror_input(k, seg)
                ok = np.isfinite(seg)
                vals[i, :n] = np.where(ok, seg, 0.0)
                mask[i, :n] = ok
        out[k] = (torch.from_numpy(vals), torch.from_numpy(mask), torch.tensor(have))
    # the vertical load the motion implies (1 + a_y/g of the marker centroid), for the
    # physical-consistency loss; from the first point set present, before any augmentation
    point_keys = [k for k in keys if reps.get(k).point_set]
    if point_keys and "grf" in keys:
        load = np.zeros((B, W, 1), np.float32)
        lmask = np.zeros((B, W, 1), bool)
        for i, (s, start, _, _) in enumerate(windows):
            k = next((k for k in point_keys if k in s.data), None)
            if k is None:
                continue
            lo = max(start - 8, 0)  # context so the window's own edges have a value
            seg = com_load(s.data[k][lo:start + W + 8], s.rate)
            seg = seg[start - lo:start - lo + W]
            ok = np.isfinite(seg)
            load[i, :len(seg), 0] = np.where(ok, seg, 0.0)
            lmask[i, :len(seg), 0] = ok
        out["com_load"] = (torch.from_numpy(load), torch.from_numpy(lmask),
                           torch.from_numpy(lmask.any((1, 2))))
    return out
