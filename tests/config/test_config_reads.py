"""The config is read once, into a plan: outside the config folder, few modules read
:class:`TrainConfig`'s fields (the run's plan is built from them in one place, and below it the
run machinery takes the plan's resolved values).

What counts as a read (an AST walk, simple on purpose): ``<x>.<attribute>`` where the attribute
is a TrainConfig field or property and ``<x>`` is
* a name annotated ``TrainConfig`` in the function's parameters or assignments,
* a name called ``config`` or ``teacher_config`` (the package's names for one),
* a name assigned from one of those, from ``TrainConfig(...)``, ``TrainConfig.from_dict(...)``,
  ``make_config(...)`` or ``dataclasses.replace(...)`` of one,
* an attribute ``.config`` or ``.teacher_config`` of anything (``setup.config``, ``net.config``),
* the class itself (``TrainConfig.logdir``: a field's default).
It misses a config reached by other names (``getattr(config, name)``, a config inside a tuple or
a dict, a name bound in a loop or comprehension from a list of configs), and counts reads of a
plan or another object that happens to be named ``config``.
"""

from __future__ import annotations

import ast
import dataclasses
from collections import Counter
from pathlib import Path

from digits_torch.config.config import TrainConfig

PACKAGE = Path(__file__).resolve().parents[2] / "digits_torch"
ATTRIBUTES = {f.name for f in dataclasses.fields(TrainConfig)} | {
    name for name, value in vars(TrainConfig).items() if isinstance(value, property)
}
CONFIG_NAMES = {"config", "teacher_config"}
MAKERS = {"TrainConfig", "from_dict", "make_config", "replace", "with_teacher", "teacher_config"}
# The modules outside config/ that may read the config: the one that builds the plan, fit and
# resume (which decide teachers and directories), the CLI, a sweep's grid, the store's config
# file reading.
MOST_MODULES = 6


def _is_config(node: ast.AST, bound: set[str]) -> bool:
    if isinstance(node, ast.Name):
        return node.id in bound or node.id in CONFIG_NAMES or node.id == "TrainConfig"
    return isinstance(node, ast.Attribute) and node.attr in CONFIG_NAMES


def _annotated_config(annotation: ast.AST | None) -> bool:
    return annotation is not None and "TrainConfig" in ast.unparse(annotation)


def _made_config(value: ast.AST | None, bound: set[str]) -> bool:
    if value is None:
        return False
    if isinstance(value, ast.Call):
        func = value.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        return name in MAKERS
    return _is_config(value, bound)


def _bound_names(tree: ast.AST) -> set[str]:
    """Names bound to a TrainConfig anywhere in the module (by annotation or assignment)."""
    bound: set[str] = set()
    for _ in range(2):  # an alias of an alias
        for node in ast.walk(tree):
            if isinstance(node, ast.arg) and _annotated_config(node.annotation):
                bound.add(node.arg)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                if _annotated_config(node.annotation) or _made_config(node.value, bound):
                    bound.add(node.target.id)
            elif isinstance(node, ast.Assign) and _made_config(node.value, bound):
                bound |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return bound


def config_reads(source: str) -> int:
    """How many TrainConfig field (or property) reads ``source`` holds (see the module's text)."""
    tree = ast.parse(source)
    bound = _bound_names(tree)
    return sum(
        isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Load)
        and node.attr in ATTRIBUTES
        and _is_config(node.value, bound)
        for node in ast.walk(tree)
    )


def reads_by_module() -> Counter:
    """Module path (relative to the package) -> its config reads, for modules outside config/."""
    return Counter(
        {
            str(path.relative_to(PACKAGE)): count
            for path in sorted(PACKAGE.rglob("*.py"))
            if path.relative_to(PACKAGE).parts[0] != "config"
            and (count := config_reads(path.read_text()))
        }
    )


def test_the_counter_counts_what_it_says():
    source = (
        "def f(config, c: TrainConfig, setup, p):\n"
        "    a = config.lr + c.l2 + setup.config.epochs + TrainConfig.logdir + p.lr\n"
        "    d = make_config('seed')\n"
        "    e = d\n"
        "    return a, d.batch_size, e.full_batch, config.to_dict(), p.batch_size\n"
    )
    # config.lr, c.l2, setup.config.epochs, TrainConfig.logdir, d.batch_size, e.full_batch
    assert config_reads(source) == 6


def test_few_modules_outside_the_config_folder_read_the_config():
    reads = reads_by_module()
    table = "\n".join(f"{count:4d} {module}" for module, count in reads.most_common())
    assert len(reads) <= MOST_MODULES, f"{len(reads)} modules read TrainConfig:\n{table}"
