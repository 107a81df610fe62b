"""The package's layout: layered modules, no import cycle, no import hidden in a function, and
each module importable on its own."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "digits_torch"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, source: str | None = None) -> list[tuple[str, ast.AST, bool]]:
    """(digits_torch module imported, the import node, at the top level?) for each import in
    the file at ``path`` (or in ``source``, read as if it were that file)."""
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    package = _module_name(path.parent / "__init__.py").split(".")
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            origin = ".".join(base + ([node.module] if node.module else []))
            # `from .x import y` imports x, and y too where y is a module
            names = [origin] + [f"{origin}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(name, node, node in tree.body) for name in names if name in MODULES]
    return found


def _graph() -> dict[str, set[str]]:
    """Module -> the digits_torch modules it imports (bar its own packages, which any import of
    a submodule imports first)."""
    return {
        name: {t for t, _, _ in _imports(path) if not (name == t or name.startswith(t + "."))}
        for name, path in MODULES.items()
    }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as a list of modules, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_has_no_cycle():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()))


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_imports_another_inside_a_function():
    hidden = [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports {target}"
        for path in MODULES.values()
        for target, node, at_top in _imports(path)
        if not at_top
    ]
    assert hidden == []


def test_the_checks_see_a_function_level_import():
    path = PACKAGE / "model.py"  # a real module, read with an import added inside a function
    source = path.read_text() + "\n\ndef late():\n    from .data import load_digits\n"
    found = [(name, top) for name, _, top in _imports(path, source) if name.endswith(".data")]
    assert found == [("digits_torch.data", False)]


# Run in a fresh interpreter: import the heavy third-party packages once, then import each module
# in a forked child of its own, before which no digits_torch module has been imported.
_IMPORT_EACH = """
import importlib, os, sys
import matplotlib.figure, numpy, scipy.io, torch, torch.utils.tensorboard
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException as err:
            print(f"{name}: {err!r}", flush=True)
            os._exit(1)
        os._exit(0)
    os.waitpid(pid, 0)
"""


def test_each_module_imports_alone_in_a_fresh_interpreter():
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH, *MODULES, "digits_torch.no_such_module"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    # the one module that does not exist is the one failure: the check can fail
    assert result.stdout.splitlines() == [
        'digits_torch.no_such_module: ModuleNotFoundError("No module named '
        "'digits_torch.no_such_module'\")"
    ], result.stdout + result.stderr


def _code_map() -> list[list[str]]:
    """The README's code map: the modules of each row, top to bottom (``plots/`` as its
    package and ``__main__``)."""
    readme = (PACKAGE.parent / "README.md").read_text()
    table = readme.split("## Code map", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in table.splitlines():
        cell = line.split("|")[1] if line.startswith("| `") else ""
        names = []
        for entry in re.findall(r"`([\w/]+(?:\.py)?)`", cell):
            if entry == "core/loop.py":  # the core's package comes with its loop
                names.append("digits_torch.core")
            if entry.endswith("/"):
                names += [f"digits_torch.{entry[:-1]}", f"digits_torch.{entry[:-1]}.__main__"]
            else:
                names.append("digits_torch." + entry.removesuffix(".py").replace("/", "."))
        if names:
            rows.append(names)
    return rows


def test_the_readme_code_map_lists_every_module_in_import_order():
    rows = _code_map()
    listed = [name for row in rows for name in row]
    assert sorted(set(listed)) == sorted(set(MODULES) - {"digits_torch"}), "modules differ"
    graph = _graph()
    for i, row in enumerate(rows):
        above = {name for earlier in rows[:i] for name in earlier}
        for j, name in enumerate(row):  # a row's modules come in its order, too
            later = graph[name] - above - set(row[:j]) - {"digits_torch"}
            assert not later, f"{name} imports {sorted(later)}, listed below it in the README"
