"""The package as a user installs it: a wheel built from the checkout, in a fresh venv, its
commands run from a directory outside the checkout.

The venv sees this interpreter's packages (torch and the rest) through a ``.pth`` line naming
their site-packages, so nothing is downloaded or reinstalled. A ``.pth`` file's paths are added
to ``sys.path`` but the ``.pth`` files inside them are not processed, so the editable install of
the checkout that lives there does not leak in: ``digits_torch`` can only come from the wheel.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import PIL.Image
import PIL.ImageDraw
import pytest

from digits_torch.__main__ import COMMANDS, available

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> Path:
    """The bin/ folder of a fresh venv with the checkout's wheel installed (once per session)."""
    base = tmp_path_factory.mktemp("package")
    source = base / "source"  # built from a copy: pip leaves build/ and *.egg-info behind
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "digits_torch", source / "digits_torch", ignore=shutil.ignore_patterns("__pycache__")
    )
    wheels = base / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", str(wheels), str(source)])  # fmt: skip
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=False)  # no system site packages
    python = env_dir / "bin" / "python"
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    Path(site.strip(), "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (wheel,) = wheels.glob("*.whl")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
          "--no-index", "-q", str(wheel)])  # fmt: skip
    return env_dir / "bin"


def _run(argv: list[str], cwd: Path | None = None) -> str:
    """Run argv with a clean environment (no PYTHONPATH into the checkout); its stdout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    out = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)
    assert out.returncode == 0, f"{argv}\n{out.stdout}\n{out.stderr}"
    return out.stdout


# Installed scripts run one after another in one interpreter, each as it runs alone (its file as
# __main__, its argv), since a process each would import torch each time. Its argument: a JSON
# list of argvs. Each script's output follows a SEPARATOR line; one that exits non-zero ends it.
SEPARATOR = "-- the next script --"
_IN_TURN = f"""
import json, runpy, sys
for argv in json.loads(sys.argv[1]):
    print({SEPARATOR!r}, flush=True)
    sys.argv = list(argv)
    try:
        runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as stop:
        if stop.code not in (None, 0):
            sys.exit(f"{{argv[0]}} exited {{stop.code}}")
"""


def _in_turn(python: Path, cwd: Path, *argvs: list[str]) -> list[str]:
    """The stdout of each argv ([script path, *args]), run in turn by :data:`_IN_TURN`."""
    out = _run([str(python), "-c", _IN_TURN, json.dumps(argvs)], cwd)
    first, *outputs = out.split(SEPARATOR + "\n")
    assert first == "" and len(outputs) == len(argvs), out
    return outputs


def test_the_commands_run_from_the_installed_wheel(installed, tmp_path, small_digits):
    assert not tmp_path.resolve().is_relative_to(ROOT)
    # digits-train as a process of its own (the script's interpreter line), the rest in one
    train = [str(installed / "digits-train"), "--preset", "tuned", "--epochs", "5"]
    out = _run(
        [*train, "--data", str(small_digits), "--device", "cpu", "--no-figures"], cwd=tmp_path
    )
    run = tmp_path / out.strip().splitlines()[-1].removeprefix("run: ")
    assert run.parent == tmp_path / "runs"  # ./runs of the working directory
    assert len((run / "history.jsonl").read_text().splitlines()) == 5
    # the closing table names the installed commands; a finished cosine run has nothing to resume
    assert "digits-evaluate" in out and "--resume" not in out

    (tmp_path / "listing.py").write_text(  # where the package comes from; python -m digits_torch
        "import digits_torch, runpy\nprint(digits_torch.__file__)\n"
        "runpy.run_module('digits_torch', run_name='__main__')\n"
    )
    seven = PIL.Image.new("L", (120, 120), 255)  # a drawn 7, dark ink on white
    PIL.ImageDraw.Draw(seven).line([(30, 25), (90, 25), (55, 100)], fill=0, width=9)
    seven.save(tmp_path / "seven.png")
    sweep = ["--epochs", "2", "--seeds", "0-1", "--data", str(small_digits), "--no-figures"]
    listing, scored, drawn, _, _, exported, swept = _in_turn(
        installed / "python",
        tmp_path,
        [str(tmp_path / "listing.py")],
        [str(installed / "digits-evaluate"), str(run), "--json", "e.json"],
        [str(installed / "digits-plots"), str(run)],
        [str(installed / "digits-predict"), str(run), "seven.png", "--json", "p.json"],
        [str(installed / "digits-export"), str(run), "--format", "safetensors", "m.st"],
        [str(installed / "digits-evaluate"), "m.st", "--json", "x.json"],
        [str(installed / "digits-sweep"), *sweep, "--device", "cpu"],
    )
    where, *listed = listing.splitlines()
    assert Path(where).is_relative_to(installed.parent)  # the wheel's copy, not the checkout's
    assert (Path(where).parent / "py.typed").is_file()
    for name, _, _ in COMMANDS:  # every command, each landed by now
        assert any(line.split()[:1] == [name] for line in listed), name

    split = json.loads((run / "split.json").read_text())
    assert json.loads((tmp_path / "e.json").read_text())["n"] == len(split["val"])
    assert "validation digits" in scored
    assert {Path(line).name for line in drawn.split()} >= {"hidden_units.png", "confusion.png"}
    assert all(Path(line).is_file() for line in drawn.split())
    (prediction,) = json.loads((tmp_path / "p.json").read_text())["predictions"]
    assert prediction["digit"] in range(10)  # 5 epochs on 40 digits: any digit, but one
    assert "accuracy" in exported and json.loads((tmp_path / "x.json").read_text())["n"] > 0
    sweep_dir = tmp_path / swept.strip().splitlines()[-1].removeprefix("sweep: ")
    assert sweep_dir.parent == tmp_path / "runs" and (sweep_dir / "sweep.json").is_file()


def test_the_scripts_table_is_the_command_list():
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    listed = {name: f"{module}:main" for name, module, _ in available()}
    assert scripts == listed
    assert {name for name, _, _ in COMMANDS} >= set(scripts)


def test_the_draw_page_and_the_shipped_model_work_from_the_installed_wheel(installed, tmp_path):
    """digits-draw serves its page from the wheel's own files, with the shipped model, and
    digits-predict IMAGE reads an image with that model: nothing but the wheel is needed."""
    seven = PIL.Image.new("L", (140, 140), 255)
    PIL.ImageDraw.Draw(seven).line([(32, 28), (108, 28), (58, 120)], fill=0, width=11)
    seven.save(tmp_path / "seven.png")
    assert _run([str(installed / "digits-predict"), "seven.png"], cwd=tmp_path).startswith(
        "seven.png: 7  (7 "
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    draw = subprocess.Popen(
        [str(installed / "digits-draw"), "--no-browser"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    try:
        url = draw.stdout.readline().split(" at ")[1].split()[0]
        host, port = url.removeprefix("http://").rstrip("/").split(":")
        answers = {}
        for method, path, body in [
            ("GET", "/", None),
            ("GET", "/draw.js", None),
            ("GET", "/draw.css", None),
            ("POST", "/predict", (tmp_path / "seven.png").read_bytes()),
        ]:
            connection = http.client.HTTPConnection(host, int(port), timeout=60)
            connection.request(method, path, body=body)
            response = connection.getresponse()
            answers[path] = (response.status, response.read())
            connection.close()
        draw.send_signal(signal.SIGINT)
        out, err = draw.communicate(timeout=60)
    finally:
        draw.kill()
    assert {status for status, _ in answers.values()} == {200}
    assert answers["/draw.js"][1] == (ROOT / "digits_torch/draw/static/draw.js").read_bytes()
    assert json.loads(answers["/predict"][1])["digit"] == 7
    assert (draw.returncode, out, err) == (0, "stopped\n", "")
