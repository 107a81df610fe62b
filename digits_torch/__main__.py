"""``python -m digits_torch``: the package's commands, and ``python -m digits_torch CMD ...``.

Each command is installed as a console script (pyproject.toml's ``[project.scripts]``) and runs
the same code as its ``python -m`` form. :data:`COMMANDS` is the one list of them; a command
whose module is not in this installation (one still to land) is not shown.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

__all__ = ["COMMANDS", "available", "main"]

# (installed name, module whose main() it runs, what it does)
COMMANDS: list[tuple[str, str, str]] = [
    (
        "digits-train",
        "digits_torch.cli.train",
        "train a model; each run gets a directory under ./runs",
    ),
    ("digits-evaluate", "digits_torch.inference.evaluate", "accuracy and loss of a trained model"),
    ("digits-plots", "digits_torch.cli.plots", "pictures of a run, checkpoint or weights"),
    ("digits-compare", "digits_torch.cli.compare", "scikit-learn's MLPClassifier beside ours"),
    ("digits-predict", "digits_torch.inference.predict", "the digit in each image of a file"),
    (
        "digits-export",
        "digits_torch.inference.export",
        "a trained model as a file other tools load",
    ),
    ("digits-sweep", "digits_torch.sweep.sweep", "train a grid of configs and rank them"),
    ("digits-draw", "digits_torch.cli.draw", "a page to draw a digit and watch it read"),
]


def available() -> list[tuple[str, str, str]]:
    """The commands whose module this installation has."""
    return [c for c in COMMANDS if importlib.util.find_spec(c[1]) is not None]


def main(argv: list[str] | None = None) -> int:
    """No argument: list the commands. ``train ...`` or ``digits-train ...``: run that one."""
    argv = sys.argv[1:] if argv is None else argv
    commands = {name: module for name, module, _ in available()}
    if argv and argv[0] not in ("-h", "--help"):
        module = commands.get(argv[0]) or commands.get(f"digits-{argv[0]}")
        if module is None:
            print(
                f"error: no command {argv[0]!r}; `python -m digits_torch` lists them",
                file=sys.stderr,
            )
            return 2
        importlib.import_module(module).main(argv[1:])
        return 0
    width = max(len(name) for name in commands)
    lines = ["digits-torch commands (each also runs as `python -m digits_torch NAME ...`):"]
    lines += [f"  {name:<{width}}  {what}" for name, _, what in available()]
    lines.append("Each takes --help. Runs go to ./runs of the current directory.")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
