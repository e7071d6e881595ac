"""The library's layers, checked over the import graph (every import statement, also the
ones inside functions): dependencies point down, never up: data -> codebook /
evaluation / training -> models / shadow / serving -> config -> stages."""

from __future__ import annotations

import ast
from pathlib import Path

from quantrec.data.spec import repo_root

# lower number = lower layer; a module may import its own layer or below, never above
LAYERS = {
    "quantrec.data": 0, "quantrec.dataclass_io": 0, "quantrec.redact": 0, "quantrec.reports": 0,
    "quantrec.registry": 0, "quantrec.storage": 0,
    "quantrec.codebook": 1, "quantrec.evaluation": 1, "quantrec.training": 1,
    "quantrec.models": 2, "quantrec.shadow": 2, "quantrec.serving": 2,
    "quantrec.config": 3,
    "quantrec.stages": 4,
}


def _layer(module: str) -> int | None:
    best = None
    for prefix, layer in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, layer)
    return None if best is None else best[1]


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the module's package
                base = module.rsplit(".", node.level)[0]
                out.add(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                out.add(node.module)
                out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _graph() -> dict[str, set[str]]:
    root = repo_root()
    graph = {}
    for path in (root / "quantrec").rglob("*.py"):
        rel = path.relative_to(root).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        graph[module] = {m for m in _imports(path, module) if m.startswith("quantrec")}
    return graph


def test_every_library_module_has_a_layer():
    assert [m for m in _graph() if _layer(m) is None and m != "quantrec"] == []


def test_dependencies_point_down():
    bad = []
    for module, imported in _graph().items():
        own = _layer(module)
        for target in imported:
            other = _layer(target)
            if own is not None and other is not None and other > own:
                bad.append(f"{module} (layer {own}) imports {target} (layer {other})")
    assert bad == []


def test_training_knows_no_model():
    offenders = {m: sorted(t for t in imp if t.startswith("quantrec.models"))
                 for m, imp in _graph().items() if m.startswith("quantrec.training")}
    assert {m: t for m, t in offenders.items() if t} == {}


def test_the_check_can_fail(tmp_path):
    """A module that imports upwards is reported (the check is not vacuous)."""
    fake = tmp_path / "mod.py"
    fake.write_text("def f():\n    from quantrec.models import MODELS\n")
    assert "quantrec.models" in _imports(fake, "quantrec.training.fake")
    assert _layer("quantrec.models.rqreg") > _layer("quantrec.training.trainer")
