"""Where the build-time shared data lives (never used at run time by the installed product).

``$HDYS_SHARED_DATA`` if set, else ``../shared/data`` beside the repository. The folder holds
public data sets laid out under fixed names (:data:`SOURCES`: where each comes from); building
the corpus needs them, serving never does (the bundled model and demo clip ship in the package).
"""

from __future__ import annotations

import os
from pathlib import Path

from hdys_rt.errors import HdysError

ENV_VAR = "HDYS_SHARED_DATA"

#: folder name under the shared data folder -> the public source to put there
SOURCES = {
    "opensim-models": "git clone https://github.com/opensim-org/opensim-models",
    "myo_sim": "git clone https://github.com/MyoHub/myo_sim",
    "real": "the real-lab pack assembled from keenon/nimblephysics (data/grf/Subject4, "
            "OpenCapUnfiltered, CarmagoTest; data/osim/HamnerMultipleTrials, HamnerSubject04, "
            "JA1GaitResults; data/c3d), opensim-org/opensim-models (Pipelines/Hamner) and "
            "Biomechanical-ToolKit/BTKData, laid out as the README's 'Training data' table says",
    "addbiomechanics": "the AddBiomechanics data set's .b3d files (addbiomechanics.org), any "
                       "sub-folders; or pass --b3d DIR",
}


def where_to_get(first_part: str) -> str:
    """One sentence saying where the folder ``first_part`` of the shared data comes from."""
    src = SOURCES.get(first_part)
    return (f"{first_part}/ comes from `{src}`" if src else
            f"{first_part}/ is listed in the README's 'Training data' section")


def use_raw_dir(raw: str | os.PathLike) -> Path:
    """Make ``raw`` the shared data folder of this process and its workers (``--raw DIR``)."""
    root = Path(raw).expanduser().resolve()
    if not root.is_dir():
        raise HdysError(f"--raw {raw}: no such folder (it should hold opensim-models/, myo_sim/ "
                        f"and real/; see the README, 'Training data')")
    os.environ[ENV_VAR] = str(root)
    return root


def default_shared_dir() -> Path:
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def shared_data_dir(required: str | os.PathLike, explicit: str | os.PathLike | None = None) -> Path:
    """``explicit``, else ``$HDYS_SHARED_DATA``, else ``../shared/data``, checked to hold
    ``required`` (a relative path); raises :class:`HdysError` naming the variable when none does."""
    if explicit:  # an explicit choice is never silently replaced by another folder
        candidates = [("given", Path(explicit))]
    elif os.environ.get(ENV_VAR):
        candidates = [(f"${ENV_VAR}", Path(os.environ[ENV_VAR]))]
    else:
        candidates = [("default", default_shared_dir())]
    for _, root in candidates:
        if (root / required).exists():
            return root
    tried = ", ".join(f"{src}={p}" for src, p in candidates)
    first = Path(required).parts[0]
    raise HdysError(f"shared data with {required} not found (tried {tried}); building the corpus "
                    f"needs public data sets: {where_to_get(first)}; put it in a folder and set "
                    f"{ENV_VAR} to that folder (see the README, 'Training data')")
