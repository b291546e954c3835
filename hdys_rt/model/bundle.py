"""Ship a trained model as the package's default: copy it into ``hdys_rt/assets/model`` with its
eval figures added to the metadata.

    python -m hdys_rt.model.bundle runs/default/model runs/default/eval.json
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from hdys_rt.model.io import _stem, bundled_model_path, read_metadata, sha256


def bundle(model: str, eval_json: str | None = None, dest: Path | None = None) -> Path:
    src = _stem(model)
    meta = read_metadata(src)
    dest = dest or bundled_model_path()
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src.with_suffix(".safetensors"), dest.with_suffix(".safetensors"))
    if eval_json:
        meta["eval"] = json.loads(Path(eval_json).read_text())
    meta["weights_sha256"] = sha256(dest.with_suffix(".safetensors"))
    dest.with_suffix(".json").write_text(json.dumps(meta, indent=1, ensure_ascii=False))
    return dest


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python -m hdys_rt.model.bundle MODEL [EVAL_JSON]")
    print(bundle(*sys.argv[1:]))
