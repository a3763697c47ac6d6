"""The folder tree is the architecture: imports flow one way, contract → safety → model →
services → web/CLI, and only the web layer touches streamlit.  These tests read the source
(every import, including those inside functions) and fail on any import against the flow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "recommender"

# What each layer may import of the package (besides itself).
ALLOWED: dict[str, set[str]] = {
    "settings": set(),
    "threads": set(),
    "__init__": set(),
    "contract": {"settings"},
    "safety": {"contract", "settings"},
    "model": {"contract", "safety", "settings", "__init__"},
    "storage": {"contract", "settings"},
    "outputs": {"contract", "safety", "settings"},
    "services": {"contract", "safety", "model", "storage", "outputs", "settings"},
    "web": {"contract", "safety", "model", "outputs", "services", "settings", "threads"},
    "cli": {"contract", "safety", "model", "storage", "outputs", "services", "settings", "devtools",
            "__init__", "threads"},
    "devtools": {"contract", "safety", "model", "storage", "services", "settings"},
}
STREAMLIT_LAYERS = {"web"}


def _layer(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise AssertionError(f"{path}:{node.lineno}: relative import; use the absolute name")
            out.append((node.lineno, node.module or ""))
            if node.module == "recommender":  # `from recommender import gate`-style
                out += [(node.lineno, f"recommender.{a.name}") for a in node.names
                        if (PACKAGE / a.name).is_dir() or (PACKAGE / f"{a.name}.py").is_file()]
    return out


def _target_layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "recommender":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def violations(path: Path, layer: str) -> list[str]:
    bad = []
    for line, module in _imports(path):
        target = _target_layer(module)
        if target is not None and target != layer and target not in ALLOWED[layer]:
            bad.append(f"line {line}: {layer} imports {module}")
        if module.split(".")[0] == "streamlit" and layer not in STREAMLIT_LAYERS:
            bad.append(f"line {line}: only the web layer may import streamlit ({layer} does)")
    return bad


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_flow_one_way(path):
    layer = _layer(path)
    assert layer in ALLOWED, f"{path}: new top-level module or layer {layer!r}: add it to ALLOWED"
    bad = violations(path, layer)
    assert not bad, f"{path.relative_to(ROOT)}: " + "; ".join(bad)


def test_the_entry_point_and_pages_stay_above_storage():
    """app.py and the page scripts reach data only through the services."""
    scripts = [ROOT / "app.py", *sorted((PACKAGE / "web" / "pages").glob("*.py"))]
    assert len(scripts) > 5
    for path in scripts:
        for line, module in _imports(path):
            assert _target_layer(module) != "storage", f"{path}:{line} imports {module}"


def test_the_checker_catches_imports_against_the_flow(tmp_path):
    """The rule fails when it should: lazy imports inside functions count too."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from recommender.storage.schema import User\n"
                     "    import streamlit\n    from recommender.devtools import simulator\n")
    found = violations(probe, "model")
    assert len(found) == 3, found
    assert violations(probe, "cli") == ["line 3: only the web layer may import streamlit (cli does)"]
