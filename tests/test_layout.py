"""The package layout the developer guide promises, read from the source with ``ast``.

- the product (``awaknow``) never imports the development tools (``devtools``);
- no import cycle among ``awaknow`` modules (imports inside functions and under
  ``TYPE_CHECKING`` count: a cycle there is still two modules that each need the other);
- no module in ``awaknow`` over ``MAX_MODULE_LINES`` lines.

A package's ``__init__`` re-exporting its submodules is not a cycle: only the imports written
in a module are edges, not the parent packages Python loads on the way.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = "awaknow"
TOOLS = "devtools"
MAX_MODULE_LINES = 600


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``package`` under ``root``."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_names(path: Path, module: str) -> set[str]:
    """Every dotted name ``module`` imports: ``import x.y`` gives ``x.y``; ``from x import y``
    gives ``x.y`` when that is a module of the project, else ``x`` (``y`` is an attribute)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                names.add(submodule if _is_module(path, module, submodule) else base)
    return names


def _is_module(path: Path, module: str, name: str) -> bool:
    """Whether dotted ``name`` is a file or package next to ``module``'s tree."""
    root = path.parents[module.count(".") + (1 if path.name == "__init__.py" else 0)]
    target = root.joinpath(*name.split("."))
    return target.with_suffix(".py").is_file() or (target / "__init__.py").is_file()


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports."""
    modules = module_files(root, package)
    return {
        module: {name for name in imported_names(path, module) if name in modules} - {module}
        for module, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None when the graph has none."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(module: str) -> list[str] | None:
        path.append(module)
        on_path.add(module)
        for target in sorted(graph.get(module, ())):
            if target in on_path:
                return [*path[path.index(target) :], target]
            if target not in done:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        on_path.discard(module)
        done.add(module)
        return None

    for module in sorted(graph):
        if module not in done:
            cycle = visit(module)
            if cycle:
                return cycle
    return None


def test_the_product_never_imports_the_development_tools() -> None:
    offenders = {
        module: sorted(
            name
            for name in imported_names(path, module)
            if name == TOOLS or name.startswith(f"{TOOLS}.")
        )
        for module, path in module_files(ROOT, PRODUCT).items()
    }
    assert {module: names for module, names in offenders.items() if names} == {}


def test_no_import_cycle_in_the_product() -> None:
    graph = import_graph(ROOT, PRODUCT)
    assert len(graph) > 10 and any(graph.values()), "the walk found the package's modules"
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_product_modules_stay_readable_in_one_sitting() -> None:
    too_long = {
        module: lines
        for module, path in module_files(ROOT, PRODUCT).items()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert too_long == {}, f"split these (over {MAX_MODULE_LINES} lines): {too_long}"


@pytest.mark.parametrize(
    ("files", "cycle"),
    [
        (
            {
                "pkg/__init__.py": "from pkg.a import thing\n",
                "pkg/a.py": "from pkg import b\nthing = 1\n",
                "pkg/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                "    from pkg.a import thing\n",
            },
            ["pkg.a", "pkg.b", "pkg.a"],
        ),
        (
            {
                "pkg/__init__.py": "",
                "pkg/sub/__init__.py": "from .x import y\n",
                "pkg/sub/x.py": "def f():\n    from .. import c\ny = 1\n",
                "pkg/c.py": "import pkg.sub.x\n",
            },
            ["pkg.c", "pkg.sub.x", "pkg.c"],
        ),
        (
            {
                "pkg/__init__.py": "from pkg.a import thing\n",
                "pkg/a.py": "import json\nfrom pkg.b import other\nthing = 1\n",
                "pkg/b.py": "other = 2\n",
            },
            None,
        ),
    ],
)
def test_the_cycle_check_sees_cycles_however_they_are_written(
    tmp_path: Path, files: dict[str, str], cycle: list[str] | None
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert find_cycle(import_graph(tmp_path, "pkg")) == cycle
