"""The code's layering (docs/architecture.md): no import cycles, imports at module level, small modules, a few
public top-level modules, thin entry points, and a library that never imports the jobs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400
MAX_TOP_LEVEL_MODULES = 8
MAX_ENTRY_POINT_LINES = 40
# Imports deliberately made where they are needed: optional dependencies and Ray (whose import reads the
# loopback setting, and which inline runs never load).
LATE_IMPORTS = {
    ("blockcopy_core.pipeline.executor", "blockcopy_core.pipeline.ray_executor"),
    ("blockcopy_core.reporting.plots", "matplotlib.figure"),
    ("blockcopy_core.reporting.plots", "matplotlib.backends.backend_agg"),
    ("blockcopy_core.engine.kernels", "torch.utils.cpp_extension"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def parse_all() -> dict[str, tuple[Path, ast.Module]]:
    paths = [*sorted((ROOT / "blockcopy_core").rglob("*.py")), *sorted((ROOT / "jobs").glob("*.py"))]
    return {module_name(p): (p, ast.parse(p.read_text(), str(p))) for p in paths}


MODULES = parse_all()


def imported(name: str, path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Absolute names of what ``node`` imports (a ``from`` import may name modules or attributes)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        anchor = package[: len(package) - node.level + 1]
        base = ".".join([*anchor, *([node.module] if node.module else [])])
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def package_edges() -> dict[str, set[str]]:
    """Module -> project modules it makes Python import while it loads (with the packages around them, whose
    __init__ runs first, except those the importer is already inside); a late import comes after loading."""
    edges = {}
    for name, (path, tree) in MODULES.items():
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in imported(name, path, node):
                    parts = target.split(".")
                    targets |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} - own
        edges[name] = {t for t in targets if t in MODULES and t != name and (name, t) not in LATE_IMPORTS}
    return edges


def test_no_import_cycles():
    edges, done = package_edges(), set()

    def visit(name: str, path: list[str]) -> None:
        assert name not in path, f"import cycle: {' -> '.join([*path, name])}"
        if name not in done:
            for target in sorted(edges[name]):
                visit(target, [*path, name])
            done.add(name)

    for name in sorted(edges):
        visit(name, [])


def test_imports_are_at_module_level():
    for name, (path, tree) in MODULES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Import | ast.ImportFrom):
                        late = {(name, target) for target in imported(name, path, inner)}
                        assert late & LATE_IMPORTS, f"{name}:{inner.lineno}: import inside {node.name}()"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_are_small(name):
    path, _ = MODULES[name]
    assert len(path.read_text().splitlines()) <= MAX_LINES, f"{path} has more than {MAX_LINES} lines"


def test_few_public_top_level_modules():
    flat = sorted(p.name for p in (ROOT / "blockcopy_core").glob("*.py"))
    assert len(flat) <= MAX_TOP_LEVEL_MODULES, flat


def test_jobs_are_thin_entry_points():
    for name, (path, _) in MODULES.items():
        if name.startswith("jobs."):
            assert len(path.read_text().splitlines()) <= MAX_ENTRY_POINT_LINES, f"{path}: logic belongs in the library"


# The layers of docs/architecture.md, top first: a module imports only from its own layer and those above it.
LAYERS = [
    ("blockcopy_core.constants", "blockcopy_core.labels", "blockcopy_core.metrics", "blockcopy_core.macs",
     "blockcopy_core.allocator"),
    ("blockcopy_core.settings",),
    ("blockcopy_core.engine",),
    ("blockcopy_core.models",),
    ("blockcopy_core.data",),
    ("blockcopy_core.policies",),
    ("blockcopy_core.blockcopy", "blockcopy_core"),
    ("blockcopy_core.reporting",),
    ("blockcopy_core.pipeline",),
    ("blockcopy_core.training", "blockcopy_core.benchmarks"),
    ("jobs",),
]


def layer_of(name: str) -> int:
    """Index in LAYERS of the longest prefix naming ``name`` or a package around it."""
    matches = [(len(prefix), index) for index, prefixes in enumerate(LAYERS) for prefix in prefixes
               if name == prefix or name.startswith(prefix + ".")]
    assert matches, f"{name} belongs to no layer: add it to LAYERS and docs/architecture.md"
    return max(matches)[1]


def test_layers_import_only_the_layers_above():
    for name, targets in package_edges().items():
        below = sorted(t for t in targets if layer_of(t) > layer_of(name))
        assert not below, f"{name} (layer {layer_of(name)}) imports a later layer: {below}"
