"""The package's layout: folders in layers, each importing only the folders below it; no import
cycle, no import hidden in a function; each module importable on its own; folders, modules and
functions of a size a reader takes in at once."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "digits_torch"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}

# The package's folders, bottom to top: a module imports only from its own folder, the folders
# below it, and errors.py (below them all). The package's face (__init__.py) and its command list
# (__main__.py) stand above them all. core/ is what a reader reads first.
FOLDERS = [
    "core",  # the network, the digits and their Dataset, the losses
    "optim",  # optimizers, schedules, fmincg, stopping rules
    "recipes",  # augmentation, distillation, dead units
    "config",  # TrainConfig, its bounds, the presets, config files, the flags made from it
    "store",  # atomic files, checkpoints, run directories, the run log, TensorBoard events
    "runtime",  # torchrun ranks, signals, threads, the device
    "fast",  # explicit backprop, data parallelism, CUDA graphs
    "reference",  # scikit-learn's MLPClassifier step by step, Coursera ex4 (checks backprop)
    "images",  # image files in, 20 x 20 digits out
    "plots",  # the pictures
    "inference",  # a trained model: loading it, its card, predict, evaluate, export
    "train",  # a run: set-up, the loop and its handlers, its files, teachers, fit and resume
    "estimator",  # scikit-learn's MLPClassifier on the core loop (needs scikit-learn)
    "sweep",  # many networks at once, stacked
    "draw",  # the page to draw a digit on
    "cli",  # the commands' flags and mains
]
BELOW_ALL = {"digits_torch.errors"}
ABOVE_ALL = {"digits_torch", "digits_torch.__main__"}
MAX_MODULES_PER_FOLDER = 12
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80
# Functions over MAX_FUNCTION_LINES, each with why it stays so (for now).
LONG_FUNCTIONS: dict[str, str] = {}


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
    path = PACKAGE / "core" / "model.py"  # a real module, read with an import in a function
    source = path.read_text() + "\n\ndef late():\n    from .data import load_digits\n"
    found = [(name, top) for name, _, top in _imports(path, source) if name.endswith(".data")]
    assert found == [("digits_torch.core.data", False)]


# Run in a fresh interpreter: import the heavy third-party packages once (scikit-learn's parts that
# the estimator's modules import: a second a child otherwise), then import each module in a forked
# child of its own, before which no digits_torch module has been imported.
_IMPORT_EACH = """
import importlib, os, sys
import matplotlib.figure, numpy, scipy.io, torch, torch.utils.tensorboard
import sklearn.base, sklearn.metrics, sklearn.model_selection, sklearn.preprocessing
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


def _layer(module: str) -> int:
    """Where ``module`` stands: 0 for errors.py, 1 + its folder's index, or above every folder."""
    if module in BELOW_ALL:
        return 0
    if module in ABOVE_ALL:
        return len(FOLDERS) + 1
    return 1 + FOLDERS.index(module.split(".")[1])


def _upward(graph: dict[str, set[str]]) -> list[str]:
    """Each import of a module in a higher layer than the importing module's, as a line."""
    return [
        f"{name} imports {target}"
        for name, targets in sorted(graph.items())
        for target in sorted(targets)
        if _layer(target) > _layer(name)
    ]


def test_every_module_is_in_a_declared_folder():
    loose = [
        m for m in MODULES if m not in BELOW_ALL | ABOVE_ALL and m.split(".")[1] not in FOLDERS
    ]
    assert loose == []
    assert len(FOLDERS) == len(set(FOLDERS))
    assert sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()) == sorted(
        FOLDERS
    )


def test_no_module_imports_a_folder_above_its_own():
    assert _upward(_graph()) == []


def test_the_folder_rule_sees_an_import_from_above():
    path = PACKAGE / "core" / "model.py"  # a real module, read with an import from train/ added
    source = path.read_text() + "\nfrom ..train.training import fit\n"
    graph = _graph()
    graph["digits_torch.core.model"] = {t for t, _, _ in _imports(path, source)}
    assert _upward(graph) == ["digits_torch.core.model imports digits_torch.train.training"]
    # and errors.py, below all, imports nothing of the package; the face may import anything
    assert _upward({"digits_torch.errors": {"digits_torch.core.model"}}) != []
    assert _upward({"digits_torch": {"digits_torch.cli.train"}}) == []


def test_no_folder_holds_more_than_its_share_of_modules():
    counts = {f: len(list((PACKAGE / f).glob("*.py"))) for f in FOLDERS}
    assert {f: n for f, n in counts.items() if n > MAX_MODULES_PER_FOLDER} == {}


def test_no_module_runs_past_the_line_limit():
    lines = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert {name: n for name, n in lines.items() if n > MAX_MODULE_LINES} == {}


def _long_functions(path: Path, source: str | None = None) -> dict[str, int]:
    """``module:function`` -> its lines, for each function in the file at ``path`` (or in
    ``source``) over :data:`MAX_FUNCTION_LINES`."""
    tree = ast.parse(path.read_text() if source is None else source)
    module = _module_name(path)
    return {
        f"{module}:{node.name}": node.end_lineno - node.lineno + 1
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    }


def test_no_function_runs_past_the_line_limit_bar_the_listed_ones():
    long = {k: v for path in MODULES.values() for k, v in _long_functions(path).items()}
    assert sorted(long) == sorted(LONG_FUNCTIONS), long


def test_the_function_limit_sees_a_long_function():
    path = PACKAGE / "core" / "model.py"
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    source = path.read_text() + f"\n\ndef long():\n{body}"
    assert _long_functions(path, source) == {"digits_torch.core.model:long": MAX_FUNCTION_LINES + 1}


def _code_map() -> list[str]:
    """The README's code map: the folder (or root file) of each row, top to bottom."""
    readme = (PACKAGE.parent / "README.md").read_text()
    table = readme.split("## Code map", 1)[1].split("\n## ", 1)[0]
    return [
        re.findall(r"`([\w/.]+)`", line.split("|")[1])[0].rstrip("/")
        for line in table.splitlines()
        if line.startswith("| `")
    ]


def test_the_readme_code_map_has_a_row_per_folder_core_first():
    rows = _code_map()
    assert [row for row in rows if row in FOLDERS] == FOLDERS  # bottom (core, read first) up
    assert rows[0] == "core"
    listed = set(rows) - set(FOLDERS)
    assert listed <= {"__init__.py", "__main__.py", "errors.py"}, listed


# The tests mirror the package's folders (tests/core/ tests digits_torch/core/, ...); beside them,
# two tiers of their own: whole commands against hostile inputs, faults and torchrun jobs, and
# the project's own checks (layout, lint, docs, benchmarks). The rest of tests/ is helpers.
TEST_TIERS = {"end_to_end", "project"}
TEST_HELPERS = {"exit_watch", "__pycache__"}


def test_the_tests_mirror_the_folders():
    tests = PACKAGE.parent / "tests"
    folders = {p.name for p in tests.iterdir() if p.is_dir()} - TEST_HELPERS
    assert folders <= set(FOLDERS) | TEST_TIERS, folders - set(FOLDERS) - TEST_TIERS
    assert TEST_TIERS <= folders and "core" in folders
    assert not list(tests.glob("test_*.py")), "a test file outside the folders"


def test_no_two_test_files_share_a_name():
    # pytest imports each test file by its base name (the tests folders hold no __init__.py): a
    # second tests/<folder>/test_plan.py is an import error when the suite collects both
    names = [p.name for p in (PACKAGE.parent / "tests").rglob("test_*.py")]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})


def test_one_conftest_for_the_tests_to_import():
    # tests import their helpers with `from conftest import ...`: a second conftest.py in a
    # folder takes that name for the files collected after it (an ImportError at collection)
    tests = PACKAGE.parent / "tests"
    assert [p.relative_to(tests) for p in tests.rglob("conftest.py")] == [Path("conftest.py")]
