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


def _code_files():
    for name, path in modules():
        yield name, path, ast.parse(path.read_text())


def test_one_of_each():
    """Issue 11's grep proof, kept: one G, one TRC/storage reader and writer, one list of
    engine names, one definition of "is a torque channel"."""
    from hdys_rt.backends.registry import ENGINES

    where: dict[str, list[str]] = {}
    for name, path, tree in _code_files():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in (9.80665, 9.81):
                where.setdefault("G literal", []).append(name)
            if isinstance(node, ast.FunctionDef) and node.name in (
                    "read_trc", "write_trc", "read_storage", "write_storage"):
                where.setdefault(f"def {node.name}", []).append(name)
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                names = {e.value for e in node.elts if isinstance(e, ast.Constant)} & set(ENGINES)
                if len(names) >= 2:
                    where.setdefault("engine-name list", []).append(name)
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "startswith" \
                    and node.args and isinstance(node.args[0], ast.Constant) \
                    and node.args[0].value == "torques":
                where.setdefault('startswith("torques")', []).append(name)
    assert where.get("G literal") == ["hdys_rt.representations"], where.get("G literal")
    for f in ("read_trc", "write_trc", "read_storage"):
        assert where.get(f"def {f}") == ["hdys_rt.data.formats"], where.get(f"def {f}")
    assert set(where.get("engine-name list", [])) <= {"hdys_rt.backends.registry"}, \
        where["engine-name list"]
    assert where.get('startswith("torques")') == ["hdys_rt.representations"]
