"""The data package's layering: no import cycles, no imports hidden in functions, no oversized modules."""

import ast
from pathlib import Path

import blockcopy_core.data

PACKAGE = Path(blockcopy_core.data.__file__).parent
MAX_LINES = 400


def _modules() -> dict[str, ast.Module]:
    trees = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        trees[name] = ast.parse(path.read_text(), str(path))
    return trees


def test_imports_within_the_data_package_form_no_cycle():
    trees = _modules()
    graph = {
        name: {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module in trees}
        for name, tree in trees.items()
    }
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        assert name not in path, f"import cycle: {' -> '.join([*path, name])}"
        if name not in done:
            for dep in graph[name]:
                visit(dep, [*path, name])
            done.add(name)

    for name in graph:
        visit(name, [])


def test_imports_are_at_module_level():
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.If):
                inner = [sub for sub in ast.walk(node) if isinstance(sub, ast.Import | ast.ImportFrom)]
                assert not inner, f"{name}: import inside {type(node).__name__} at line {node.lineno}"


def test_modules_are_small():
    for path in PACKAGE.rglob("*.py"):
        assert len(path.read_text().splitlines()) <= MAX_LINES, f"{path} has more than {MAX_LINES} lines"
