"""The model shipped in the package: what its card says holds for the file, predict uses it
without a MODEL, and every safetensors and ONNX export carries a model card.

The card's recipe is checked against scripts/build_shipped_model.py's configs, not retrained here
(about 70 s on one core): ``python scripts/build_shipped_model.py --check`` retrains it and
compares the weights bit for bit.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw
import pytest
import safetensors
import torch

from digits_torch import load_model
from digits_torch.core.data import default_data_path, to_image
from digits_torch.inference.export import export_model
from digits_torch.inference.loading import load_trained
from digits_torch.inference.model_card import CARD_KEY, model_card, read_card, sha256, shipped_model
from digits_torch.inference.predict import main as predict_main

ROOT = Path(__file__).resolve().parents[2]


def _build_script():
    spec = importlib.util.spec_from_file_location("build", ROOT / "scripts/build_shipped_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def card() -> dict:
    return read_card(shipped_model())


def test_the_shipped_model_is_a_400_25_10_of_about_41_kb_in_the_package():
    path = shipped_model()
    assert path.parent == ROOT / "digits_torch" / "assets"
    assert 35_000 < path.stat().st_size < 50_000  # 10,285 float32 weights and the card
    model = load_model(path)
    assert (model.input_size, model.hidden_sizes, model.num_classes) == (400, (25,), 10)


def test_its_card_says_what_the_file_is(card, digits):
    X, y = digits
    trained = load_trained(shipped_model())
    with torch.no_grad():
        predicted = trained.probabilities(torch.from_numpy(X)).argmax(dim=1).numpy()
    assert card["architecture"] == trained.model.architecture()
    assert card["loss"] == trained.loss == "softmax"
    assert card["accuracies"]["train_accuracy"] == float(np.mean(predicted == y))
    assert card["accuracies"]["train_examples"] == len(y) == 5000
    assert card["data"]["sha256"] == sha256(default_data_path())
    assert "column-major" in card["input"] and "output k is the digit k" in card["labels"]
    assert set(card["versions"]) == {"digits_torch", "torch"}  # those that made it
    assert all(re.fullmatch(r"\d+\.\d+\.\d+\S*", v) for v in card["versions"].values())


def test_its_recipe_is_the_build_scripts(card, tmp_path):
    build = _build_script()
    teacher, student = build.configs(str(tmp_path))
    assert card["recipe"] == json.loads(json.dumps(build.recipe(teacher, student)))
    assert card["recipe"]["student"]["preset"] == "distilled"  # the default recipe
    assert card["recipe"]["student"]["val_fraction"] == 0.0  # on all 5,000 digits
    assert card["recipe"]["student"]["hidden"] == [25]


def test_predict_without_a_model_uses_the_shipped_one(tmp_path, digits, capsys):
    seven = PIL.Image.new("L", (140, 140), 255)
    PIL.ImageDraw.Draw(seven).line([(30, 25), (110, 25), (60, 120)], fill=0, width=12)
    seven.save(tmp_path / "seven.png")
    X, y = digits
    k = int(np.flatnonzero(y == 3)[0])  # a shipped digit, drawn dark on light paper
    ink = np.clip(to_image(X[k]), 0, 1)
    PIL.Image.fromarray(np.uint8(255 * (1 - ink))).resize((80, 80)).save(tmp_path / "three.png")
    named = predict_main([str(shipped_model()), str(tmp_path / "seven.png")])
    (alone,) = predict_main([str(tmp_path / "seven.png")])
    assert alone == named[0] and alone.digit == 7
    (three,) = predict_main([str(tmp_path / "three.png")])
    assert three.digit == 3
    assert "seven.png: 7" in capsys.readouterr().out


def test_predict_refuses_a_model_without_images(capsys):
    with pytest.raises(SystemExit) as stop:
        predict_main([str(shipped_model())])
    assert stop.value.code == 2
    assert "is a model: give the images to read after it" in capsys.readouterr().err


def test_a_safetensors_export_carries_the_card_on(card, tmp_path):
    out = export_model(shipped_model(), None, tmp_path / "again.safetensors")
    assert read_card(out) == card
    with safetensors.safe_open(str(out), framework="pt") as f:
        assert json.loads(f.metadata()[CARD_KEY]) == card


def test_a_run_exported_gets_a_card_made_from_its_run(trained_run, tmp_path):
    out = export_model(trained_run, None, tmp_path / "run.safetensors")
    made = read_card(out)
    saved = json.loads((Path(trained_run) / "config.json").read_text())
    assert made["recipe"] == saved
    metrics = json.loads((Path(trained_run) / "metrics.json").read_text())
    assert made["accuracies"]["val_accuracy"] == metrics["val_accuracy"]
    assert made == model_card(trained_run)


def test_an_onnx_export_carries_the_card(card, tmp_path):
    onnx = pytest.importorskip("onnx", reason="ONNX export needs the onnx extra")
    out = export_model(shipped_model(), None, tmp_path / "shipped.onnx")
    properties = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(properties[f"digits_torch.{CARD_KEY}"]) == card
