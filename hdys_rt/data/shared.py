"""Where the build-time shared data lives (never used at run time by the installed product).

``$HDYS_SHARED_DATA`` if set, else ``../shared/data`` beside the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

from hdys_rt.errors import HdysError

ENV_VAR = "HDYS_SHARED_DATA"


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
    raise HdysError(f"shared data with {required} not found (tried {tried}); set {ENV_VAR} to "
                    f"the folder that holds {Path(required).parts[0]}/")
