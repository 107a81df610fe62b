"""The README and docs/ stay true: their Python examples run as written, and every command of
this package in them is accepted by the command's own parser."""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from torch.distributed.run import get_args_parser

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Programs that are not ours: their commands are the user's tools (or set-up), not checked here.
OTHERS = {"pip", "tensorboard", "cd", "export", "git", "bash", "OUT=gpu-check", "make"}
# The package's commands, by how a page starts them.
MODULES = {
    "train.py": "digits_torch.cli.train",
    "digits-train": "digits_torch.cli.train",
    "digits-evaluate": "digits_torch.inference.evaluate",
    "digits-plots": "digits_torch.cli.plots",
    "digits-compare": "digits_torch.cli.compare",
    "digits-predict": "digits_torch.inference.predict",
    "digits-export": "digits_torch.inference.export",
    "digits-sweep": "digits_torch.sweep.sweep",
}


def _blocks(language: str) -> list[tuple[str, str]]:
    return [
        (f"{page.relative_to(ROOT)}#{i}", code)
        for page in PAGES
        for i, code in enumerate(re.findall(rf"```{language}\n(.*?)```", page.read_text(), re.S))
    ]


def _commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of each command line in the pages' bash blocks, comments removed."""
    found = []
    for where, code in _blocks("bash"):
        for line in code.splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] not in OTHERS and words[:3] != ["python", "-m", "pytest"]:
                found.append((f"{where}: {line.split('#')[0].strip()}", words))
    return found


def _module_and_args(words: list[str]) -> tuple[str, list[str]]:
    """The module a command line runs and the arguments its parser sees."""
    while words and "=" in words[0] and not words[0].startswith("-"):  # VAR=value command
        words = words[1:]
    if words[0] == "torchrun":  # its options checked by its own parser, then the script's
        launch = get_args_parser().parse_args(words[1:])
        script, args = launch.training_script, launch.training_script_args
        if launch.no_python:
            words = [script, *args]
        else:
            words = ["python", *(["-m"] if launch.module else []), script, *args]
    if words[0] == "python":
        words = words[1:]
        if words[0] == "-m":
            module = words[1]
            is_package = hasattr(importlib.import_module(module), "__path__")
            return (module + ".__main__" if is_package else module), words[2:]
        if words[0].startswith(("benchmarks/", "scripts/", "examples/")):
            return words[0], words[1:]
    return MODULES[words[0]], words[1:]


class _Parsed(Exception):
    pass


@pytest.mark.parametrize("where, code", _blocks("python"), ids=[w for w, _ in _blocks("python")])
def test_python_example_runs(where, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples write runs/ under the working directory
    exec(compile(code, where, "exec"), {})


@pytest.mark.parametrize(
    "where, words", _commands(), ids=[w.split(": ", 1)[1] for w, _ in _commands()]
)
def test_command_is_accepted_by_its_parser(where, words, trained_run, monkeypatch, capsys):
    """Placeholders (``runs/<run>``) become a real run; the command stops once parsed."""
    module, args = _module_and_args(words)
    args = [a.replace("runs/<run>", str(trained_run)) for a in args]
    if module.startswith(("benchmarks/", "scripts/", "examples/")):
        assert (ROOT / module).is_file(), f"{where}: no such script"
        return
    parse_args = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, argv=None, namespace=None):
        parse_args(self, argv, namespace)  # exits 2, printing the problem, on a bad flag
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    main = importlib.import_module(module).main
    with pytest.raises((_Parsed, SystemExit)) as stopped:
        main(args)
    if stopped.type is SystemExit:  # --help exits 0; a bad flag exits 2 with a message
        assert stopped.value.code == 0 and "--help" in args, capsys.readouterr().err


def test_the_checker_refuses_a_bad_flag(trained_run, monkeypatch, capsys):
    with pytest.raises(AssertionError):
        test_command_is_accepted_by_its_parser(
            "a made-up page",
            ["python", "train.py", "--no-such-flag"],
            trained_run,
            monkeypatch,
            capsys,
        )


def _make_dry_run(target: str, path: str, tmp_path: Path) -> list[str]:
    """The commands ``make TARGET`` would run from a fresh checkout, with ``path`` as PATH."""
    env = {"PATH": path, "HOME": str(tmp_path)}
    venv = f"VENV={tmp_path / 'venv'}"
    ran = subprocess.run(["make", "-n", venv, *([target] if target else [])], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    return [
        line.replace(str(tmp_path / "venv"), ".venv").strip() for line in ran.stdout.splitlines()
    ]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_set_up_is_the_readmes_two_commands_and_ci_runs_them(tmp_path):
    """README's set-up is `make` (set up, train) and `make test`; on a machine without a GPU
    torch 2.13.0 comes from PyTorch's CPU index, on one with nvidia-smi from PyPI; CI runs the
    README's test command."""
    (first, *_) = _blocks("bash")
    lines = [line.split("#")[0].strip() for line in first[1].splitlines()]
    assert lines == ["make", "make test"]
    system = "/usr/bin:/bin"
    setup = [
        "python3 -m venv .venv",
        "pip install --no-deps torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu",
        'pip install -e ".[dev]"',
    ]
    train = _make_dry_run("", system, tmp_path)
    assert [line.removeprefix(".venv/bin/") for line in train[:3]] == setup
    assert train[-1] == ".venv/bin/python train.py"
    assert _make_dry_run("test", system, tmp_path)[-1] == ".venv/bin/python -m pytest"
    gpu = tmp_path / "bin"
    gpu.mkdir()
    (gpu / "nvidia-smi").write_text("#!/bin/sh\n")
    (gpu / "nvidia-smi").chmod(0o755)
    with_gpu = _make_dry_run("", f"{gpu}:{system}", tmp_path)
    assert with_gpu[1] == ".venv/bin/pip install --no-deps torch==2.13.0"  # PyPI's, CUDA
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line[:1] not in "#"]
    assert [line for line in ci if line.strip()][-1] == "make test"


def test_the_articles_page_maps_its_steps_with_data_and_its_pictures_exist():
    """docs/from-the-article.md: load, 100 digits, train, hidden units, mistakes; its training
    and drawing commands name --data; every picture it (or any page) shows is there."""
    page = (ROOT / "docs" / "from-the-article.md").read_text()
    for step in ("loadmat", "100 random digits", "MLPClassifier(", "hidden units", "misclassified"):
        assert step in page, step
    (commands,) = [code for where, code in _blocks("bash") if "from-the-article" in where]
    for line in commands.splitlines():
        if " --split " not in line:  # evaluate of a run scores the run's own digits
            assert "--data ex4data1.mat" in line, line
    assert "docs/from-the-article.md" in (ROOT / "README.md").read_text()
    for path in PAGES:
        for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", path.read_text()):
            assert (path.parent / image).is_file(), (path.name, image)
    assert len(re.findall(r"!\[", page)) == 3
