"""The import graph of hdys_rt runs only downward: no module imports one from a higher layer
(issue 11). Layers, lowest first; a module belongs to the longest prefix listed."""

from __future__ import annotations

import ast
from pathlib import Path

import hdys_rt

LAYERS: tuple[tuple[str, ...], ...] = (
    ("hdys_rt", "hdys_rt.errors", "hdys_rt.representations", "hdys_rt.devices", "hdys_rt.wire",
     "hdys_rt.security"),                                   # vocabulary, limits, keys
    ("hdys_rt.subject", "hdys_rt.data"),                    # files, corpus, data building
    ("hdys_rt.model",),                                     # the model and its step
    ("hdys_rt.backends",),                                  # engines running the step
    ("hdys_rt.model.streaming", "hdys_rt.training", "hdys_rt.evaluation"),
    ("hdys_rt.streams",),                                   # live sources and sinks
    ("hdys_rt.runtime", "hdys_rt.client"),                  # serving, and its clients
    ("hdys_rt.bridges",),                                   # adapters to the outside world
    ("hdys_rt.commands", "hdys_rt.cli"),                    # the command line
)
ROOT = Path(hdys_rt.__file__).parent


def layer_of(module: str) -> int:
    best, level = "", None
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > len(best):
                best, level = p, i
    assert level is not None, f"{module} is in no layer: add it to LAYERS"
    return level


def modules():
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "hdys_rt":
                for a in node.names:
                    yield f"hdys_rt.{a.name}", node.lineno
            elif node.module.startswith("hdys_rt."):
                yield node.module, node.lineno
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("hdys_rt."):
                    yield a.name, node.lineno


def test_imports_only_run_downward():
    upward = []
    for name, path in modules():
        mine = layer_of(name)
        for target, line in imports(path):
            if target.startswith("hdys_rt.__") or target == "hdys_rt.__version__":
                continue
            if layer_of(target) > mine:
                upward.append(f"{path.relative_to(ROOT.parent)}:{line}: {name} (layer {mine}) "
                              f"imports {target} (layer {layer_of(target)})")
    assert not upward, "\n".join(upward)
