"""digits_torch.inference.export: each format read back gives the original model's outputs, on the
shipped digits; safetensors through load_model, ONNX through onnxruntime, Theta .mat through
load_weights."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys

import numpy as np
import pytest
import safetensors.torch
import torch

from digits_torch import MLP, UserError, fit, load_model, make_config
from digits_torch.inference.export import export_model, main
from digits_torch.inference.loading import load_trained
from digits_torch.reference.coursera import load_weights
from digits_torch.store.checkpoints import load_checkpoint


@pytest.fixture(scope="module")
def coursera_run(tmp_path_factory, small_digits):
    """ex4's recipe (sigmoid units, ex4's cost) for 3 L-BFGS iterations on 40 digits."""
    logdir = tmp_path_factory.mktemp("runs")
    config = make_config(
        "coursera",
        data=str(small_digits),
        epochs=3,
        device="cpu",
        quiet=True,
        figures=False,
        logdir=str(logdir),
    )
    return fit(config).run_dir


@pytest.fixture(scope="module")
def pixels(digits) -> torch.Tensor:
    return torch.from_numpy(digits[0])


def logits(model: MLP, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x.to(model.layers[0].weight.dtype))


@pytest.mark.parametrize("run", ["trained_run", "coursera_run"])
def test_safetensors_round_trip_is_exact(run, request, pixels, tmp_path, run_entry):
    run_dir = request.getfixturevalue(run)
    out = tmp_path / "model.safetensors"
    ran = run_entry(lambda: main([str(run_dir), "--format", "safetensors", str(out)]))
    assert ran.code == 0 and ran.stderr == "", ran.stderr
    original, exported = load_model(run_dir), load_model(out)
    assert exported.architecture() == original.architecture()
    state, back = original.state_dict(), exported.state_dict()
    assert state.keys() == back.keys() and all(torch.equal(state[k], back[k]) for k in state)
    assert torch.equal(logits(exported, pixels), logits(original, pixels))
    loss = load_checkpoint(run_dir)["config"]["loss"]
    assert load_trained(out).loss == loss == ("coursera" if run == "coursera_run" else "softmax")
    with safetensors.safe_open(str(out), framework="pt") as f:
        assert json.loads(f.metadata()["architecture"]) == original.architecture()


def test_safetensors_keeps_float64(pixels, tmp_path):
    torch.manual_seed(0)
    model = MLP(hidden_sizes=(7, 5), activation="tanh").double()
    export_model(model, "safetensors", tmp_path / "m.safetensors", loss="coursera")
    back = load_trained(tmp_path / "m.safetensors")
    assert back.loss == "coursera" and back.model.layers[0].weight.dtype == torch.float64
    assert torch.equal(logits(back.model, pixels), logits(model, pixels))


def test_onnx_round_trip_with_any_batch_size(trained_run, pixels, tmp_path, run_entry):
    onnxruntime = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    out = tmp_path / "model.onnx"
    ran = run_entry(lambda: main([str(trained_run), "--format", "onnx", str(out)]))
    assert ran.code == 0 and ran.stderr == "", ran.stderr
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (given,) = session.get_inputs()
    assert given.name == "pixels" and given.shape[1] == 400 and isinstance(given.shape[0], str)
    expected = logits(load_model(trained_run), pixels).numpy()
    for rows in (slice(0, 1), slice(0, 7), slice(None)):  # 1, 7 and all 5,000 digits at once
        (got,) = session.run(["logits"], {"pixels": pixels[rows].numpy()})
        np.testing.assert_allclose(got, expected[rows], rtol=1e-5, atol=1e-5)
    properties = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert (
        json.loads(properties["digits_torch.architecture"])
        == load_model(trained_run).architecture()
    )
    assert properties["digits_torch.loss"] == "softmax"


def test_onnx_without_the_extra_names_it(trained_run, tmp_path, monkeypatch, run_entry):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxscript" else real(name, *a),
    )
    out = tmp_path / "model.onnx"
    ran = run_entry(lambda: main([str(trained_run), "--format", "onnx", str(out)]))
    assert ran.code == 2
    assert (
        ran.stderr
        == f'error: {out}: ONNX export needs onnxscript: pip install "digits-torch[onnx]"\n'
    )
    assert not out.exists()


def test_coursera_round_trip(coursera_run, pixels, tmp_path, run_entry):
    out = tmp_path / "theta.mat"
    ran = run_entry(lambda: main([str(coursera_run), "--format", "coursera", str(out)]))
    assert ran.code == 0 and ran.stderr == "", ran.stderr
    original, back = load_model(coursera_run), load_weights(out)
    assert torch.equal(logits(back, pixels), logits(original, pixels))
    assert load_trained(out).loss == "coursera"


def test_ex4_weights_travel_to_safetensors_and_back(ex4_weights, pixels, tmp_path):
    export_model(ex4_weights, "safetensors", tmp_path / "ex4.safetensors")
    back = load_trained(tmp_path / "ex4.safetensors")
    assert back.loss == "coursera"  # a Theta .mat is ex4's network
    assert torch.equal(logits(back.model, pixels), logits(load_weights(ex4_weights), pixels))


def test_coursera_refuses_other_networks(trained_run, tmp_path, run_entry):
    out = tmp_path / "theta.mat"
    ran = run_entry(lambda: main([str(trained_run), "--format", "coursera", str(out)]))
    assert ran.code == 2
    assert ran.stderr == (
        f"error: {out}: ex4's Theta1/Theta2 hold a sigmoid network with one hidden layer and 10 "
        "outputs; this one is 400-25-10 relu\n"
    )
    assert not out.exists()
    deep = MLP(hidden_sizes=(25, 25), activation="sigmoid")
    with pytest.raises(ValueError, match="this one is 400-25-25-10 sigmoid"):
        export_model(deep, "coursera", out)


def test_unknown_format(trained_run, tmp_path, run_entry):
    ran = run_entry(lambda: main([str(trained_run), "--format", "pickle", str(tmp_path / "m")]))
    assert ran.code == 2 and "invalid choice: 'pickle'" in ran.stderr
    with pytest.raises(ValueError, match=r"unknown format 'pickle' \(known: safetensors, onnx"):
        export_model(trained_run, "pickle", tmp_path / "m")


@pytest.mark.parametrize(
    "name, given, written",
    [
        ("m.safetensors", None, "safetensors"),
        ("m.MAT", None, "coursera"),
        ("t.mat", "mat", "coursera"),  # mat: what the file is, for the format's name
        ("m.st", "safetensors", "safetensors"),  # an extension no format has: --format says
    ],
)
def test_the_format_comes_from_the_extension(
    name, given, written, coursera_run, pixels, tmp_path, capsys
):
    flags = [] if given is None else ["--format", given]
    out = main([str(coursera_run), str(tmp_path / name), *flags])
    assert capsys.readouterr().out.startswith(f"wrote {out} ({written}: 400-25-10 sigmoid")
    back = load_weights(out) if written == "coursera" else load_model(out)
    assert torch.equal(logits(back, pixels), logits(load_model(coursera_run), pixels))


@pytest.mark.parametrize(
    "name, given, problem",
    [
        ("m.safetensors", "onnx", "{out}: its extension says safetensors, not onnx: name it "
         ".onnx, or drop --format"),
        ("theta.mat", "safetensors", "{out}: its extension says coursera, not safetensors: name "
         "it .safetensors, or drop --format"),
        ("m.bin", None, "{out}: extension .bin names no format; name it .safetensors "
         "(safetensors), .onnx (onnx), .mat (coursera), or give --format"),
        ("model", None, "{out}: no extension names no format; name it .safetensors "
         "(safetensors), .onnx (onnx), .mat (coursera), or give --format"),
    ],
)  # fmt: skip
def test_a_format_the_name_contradicts_or_cannot_tell(
    name, given, problem, trained_run, tmp_path, run_entry
):
    out = tmp_path / name
    flags = [] if given is None else ["--format", given]
    ran = run_entry(lambda: main([str(trained_run), str(out), *flags]))
    assert ran.code == 2 and ran.stderr == f"error: {problem.format(out=out)}\n"
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="its extension says|names no format"):
        export_model(trained_run, given, out)


def test_bad_safetensors_files(trained_run, tmp_path, run_entry):
    """A safetensors file that is not ours, a damaged one, one whose metadata lies."""
    model = load_model(trained_run)
    foreign, damaged, lying = (
        tmp_path / f"{n}.safetensors" for n in ("foreign", "damaged", "lying")
    )
    safetensors.torch.save_file(model.state_dict(), foreign)
    export_model(model, "safetensors", damaged)
    damaged.write_bytes(damaged.read_bytes()[:-100])
    metadata = {
        "format": "digits-torch",
        "architecture": json.dumps(MLP(400, (30,)).architecture()),
        "loss": "softmax",
    }
    safetensors.torch.save_file(model.state_dict(), lying, metadata=metadata)
    for path, problem in (
        (foreign, "a safetensors file without digits-torch's metadata"),
        (damaged, "not a readable safetensors file"),
        (lying, "weights do not fit the file's 400-30-10 architecture"),
    ):
        ran = run_entry(lambda: load_model(path))  # noqa: B023 (called at once)
        assert ran.code == 2 and ran.stderr.startswith(f"error: {path}: {problem}"), ran.stderr


def test_safetensors_metadata_and_weights_are_all_there(trained_run, tmp_path, run_entry):
    """No field of the architecture, nor the loss, is filled in with a default (a relu model
    read as a sigmoid one predicts nonsense), and the weights must be floats."""
    model = load_model(trained_run)
    weights, architecture = model.state_dict(), model.architecture()
    assert architecture["activation"] != "sigmoid"  # MLP's default: it would be read as one
    metadata = {"format": "digits-torch", "architecture": json.dumps(architecture)}
    without_activation = {k: v for k, v in architecture.items() if k != "activation"}
    cases = {
        "no activation": (
            {**metadata, "loss": "softmax", "architecture": json.dumps(without_activation)},
            weights,
            r"its architecture lacks activation",
        ),
        "no loss": (metadata, weights, r"its metadata lacks the loss the model was trained with"),
        "int64 weights": (
            {**metadata, "loss": "softmax"},
            {k: v.round().long() for k, v in weights.items()},
            r"weights must be floating point \(layers\.0\.(weight|bias) is int64\)",
        ),
    }
    out = tmp_path / "out.safetensors"
    for name, (meta, tensors, problem) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        safetensors.torch.save_file(tensors, path, metadata=meta)
        export = [str(path), "--format", "safetensors", str(out)]
        for call in (lambda: load_model(path), lambda: main(export)):  # noqa: B023 (called at once)
            ran = run_entry(call)
            (line,) = ran.stderr.splitlines()
            assert ran.code == 2 and re.fullmatch(f"error: {re.escape(str(path))}: {problem}", line)
    assert not out.exists()


def test_without_safetensors_installed(trained_run, tmp_path, monkeypatch, run_entry):
    out = tmp_path / "m.safetensors"
    export_model(trained_run, "safetensors", out)
    for name in [m for m in sys.modules if m == "safetensors" or m.startswith("safetensors.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "safetensors", None)  # import safetensors now fails
    for call in (lambda: load_model(out), lambda: export_model(trained_run, "safetensors", out)):
        ran = run_entry(call)
        assert (
            ran.stderr == f"error: {out}: safetensors is not installed (pip install safetensors)\n"
        )


@pytest.mark.parametrize(
    "model, out, problem",
    [
        ("run", "run/checkpoint.pt", r"is a file of the run .*run, which it needs; refusing"),
        ("run", "run/best.pt", r"is the model being exported; refusing to write over it"),
        ("run/checkpoint.pt", "run/best.pt", r"is a file of the run .*run, which it needs"),
        ("run", "run/config.json", r"is a file of the run .*run, which it needs"),
        ("run", "run/figures/digits.png", r"is a file of the run .*run, which it needs"),
        ("m.safetensors", "m.safetensors", r"is the model being exported; refusing"),
        ("m.safetensors", "link", r"is the model being exported; refusing"),
    ],
)
def test_export_never_writes_over_its_model_or_a_run(
    model, out, problem, trained_run, tmp_path, run_entry
):
    """A run whose checkpoint, best.pt or config.json an export replaced could not resume."""
    shutil.copytree(trained_run, tmp_path / "run")
    (tmp_path / "run" / "figures").mkdir(exist_ok=True)
    export_model(trained_run, "safetensors", tmp_path / "m.safetensors")
    (tmp_path / "link").symlink_to(tmp_path / "m.safetensors")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    model, out = tmp_path / model, tmp_path / out
    ran = run_entry(lambda: main([str(model), "--format", "safetensors", str(out)]))
    (line,) = ran.stderr.splitlines()
    assert ran.code == 2 and line.startswith("error: ") and re.search(problem, line), line
    with pytest.raises(UserError, match=problem):
        export_model(model, "safetensors", out)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_export_refuses_to_replace_a_file_without_force(trained_run, tmp_path, run_entry):
    """An existing OUT (an earlier export, anything else) is kept unless --force says replace."""
    out = tmp_path / "model.safetensors"
    out.write_bytes(b"someone's file")
    ran = run_entry(lambda: main([str(trained_run), str(out)]))
    (line,) = ran.stderr.splitlines()
    assert ran.code == 2 and line == f"error: {out}: exists; pass --force to replace it", line
    assert out.read_bytes() == b"someone's file"
    ran = run_entry(lambda: main([str(trained_run), str(out), "--force"]))
    assert ran.code == 0 and out.read_bytes() != b"someone's file"
