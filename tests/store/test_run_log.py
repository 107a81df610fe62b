"""A run's records (digits_torch.store.run_log) written by hand, without training: each epoch's
history line and scalars, read back by TensorBoard's own EventAccumulator; a resume that drops
the epochs after its checkpoint from both; the HParams metrics, the split and the metrics files;
and image_summary's PNG, pixel for pixel. Whole runs over TensorBoard's HTTP API, the Custom
Scalars layout and the trial names are tests/store/test_tensorboard.py's."""

from __future__ import annotations

import io
import json

import numpy as np
import PIL.Image
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from digits_torch.store.run_log import SCALAR_TAGS, RunLog, image_summary
from digits_torch.store.runs import read_history


def _record(epoch):
    """An epoch's record with a value of its own per key; no validation digits (None)."""
    return {"epoch": epoch, "train_loss": 1.0 / epoch, "train_accuracy": 0.5 + epoch / 100,
            "val_loss": None, "val_accuracy": None, "lr": 0.1 * epoch,
            "seconds": 2.0 * epoch}  # fmt: skip


def _scalars(run_dir):
    """{tag: [(step, value), ...]} as TensorBoard reads the run directory."""
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def _write(run_dir, config, epochs, resume_epoch=None):
    log = RunLog(run_dir, config, resume_epoch)
    for epoch in epochs:
        log.log_epoch(_record(epoch))
    log.close()


def test_each_epoch_is_a_history_line_and_its_scalars(tmp_path):
    config = {"lr": 0.1, "name": ""}
    _write(tmp_path, config, [1, 2, 3])
    assert json.loads((tmp_path / "config.json").read_text()) == config
    records = [_record(e) for e in (1, 2, 3)]
    assert read_history(tmp_path) == records
    scalars = _scalars(tmp_path)
    present = {k: t for k, t in SCALAR_TAGS.items() if records[0][k] is not None}
    assert set(scalars) == set(present.values())  # a None (no validation) writes no scalar
    for key, tag in present.items():
        assert [s for s, _ in scalars[tag]] == [1, 2, 3]
        assert [v for _, v in scalars[tag]] == pytest.approx([r[key] for r in records])


def test_a_new_run_shows_its_config_as_text(tmp_path):
    _write(tmp_path, {"lr": 0.25}, [1])
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    (shown,) = events.Tensors("config/text_summary")  # what the Text tab reads
    assert shown.step == 0
    shown = shown.tensor_proto.string_val[0].decode()
    assert shown == "```\n" + json.dumps({"lr": 0.25}, indent=2) + "\n```"


def test_a_resume_drops_the_epochs_after_its_checkpoint_everywhere(tmp_path):
    _write(tmp_path, {"lr": 0.1}, [1, 2, 3, 4])
    (tmp_path / "config.json").write_text('{"kept": true}')
    _write(tmp_path, {"lr": 9.0}, [3, 4, 5], resume_epoch=2)
    assert json.loads((tmp_path / "config.json").read_text()) == {"kept": True}  # not rewritten
    assert read_history(tmp_path) == [_record(e) for e in (1, 2, 3, 4, 5)]
    for _, tag in [("train_loss", "loss/train"), ("lr", "lr")]:
        assert [s for s, _ in _scalars(tmp_path)[tag]] == [1, 2, 3, 4, 5]  # each step once


def test_a_resume_that_logs_nothing_still_drops_the_later_epochs(tmp_path):
    _write(tmp_path, {}, [1, 2, 3])
    RunLog(tmp_path, {}, resume_epoch=1).close()
    assert read_history(tmp_path) == [_record(1)]
    assert [s for s, _ in _scalars(tmp_path)["loss/train"]] == [1]


def test_hparams_metrics_are_scalars_at_their_step_and_none_is_left_out(tmp_path):
    log = RunLog(tmp_path, {})
    log.start_hparams({"lr": 0.1, "hidden": (25,)})
    log.log_hparams({"val_accuracy": None, "train_accuracy": 0.75, "train_loss": 0.5}, step=7)
    log.close()
    scalars = _scalars(tmp_path)
    assert scalars["metrics/train_accuracy"] == [(7, 0.75)]
    assert scalars["metrics/train_loss"] == [(7, 0.5)]
    assert "metrics/val_accuracy" not in scalars


def test_split_and_metrics_are_written_as_json(tmp_path):
    log = RunLog(tmp_path, {})
    log.write_split((np.array([3, 0, 2]), np.array([1])), "ab" * 32, teacher_sha256="cd")
    log.write_metrics({"train_accuracy": 0.5})
    log.close()
    split = json.loads((tmp_path / "split.json").read_text())
    assert split == {
        "train": [3, 0, 2],
        "val": [1],
        "data_sha256": "ab" * 32,
        "teacher_sha256": "cd",
    }
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"train_accuracy": 0.5}


def _png_pixels(summary):
    (value,) = summary.value
    image = value.image
    pixels = np.asarray(PIL.Image.open(io.BytesIO(image.encoded_image_string)))
    return value.tag, (image.height, image.width, image.colorspace), pixels


def test_image_summary_stores_uint8_pixels_exactly_in_their_own_channels():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, size=(5, 3), dtype=np.uint8)
    rgb = rng.integers(0, 256, size=(4, 6, 3), dtype=np.uint8)
    assert _png_pixels(image_summary("a", grey))[:2] == ("a", (5, 3, 1))
    assert np.array_equal(_png_pixels(image_summary("a", grey))[2], grey)
    tag, shape, pixels = _png_pixels(image_summary("b/c", rgb))
    assert (tag, shape) == ("b/c", (4, 6, 3)) and np.array_equal(pixels, rgb)


def test_image_summary_rounds_floats_and_clips_them_to_0_1():
    floats = np.array([[-0.5, 0.0, 0.5], [0.999, 1.0, 7.0], [0.1, 0.2, 0.3]])
    expected = (np.clip(floats, 0, 1) * 255).round().astype(np.uint8)
    assert np.array_equal(_png_pixels(image_summary("f", floats))[2], expected)
    assert expected[0, 2] == round(0.5 * 255)  # rounded, not truncated: 128, not 127


def test_logged_images_are_one_per_step(tmp_path):
    log = RunLog(tmp_path, {})
    for step in (1, 3):
        log.log_image("hidden", np.full((2, 2), step / 4), step)
    log.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    images = events.Images("hidden")
    assert [i.step for i in images] == [1, 3]
    pixels = [np.asarray(PIL.Image.open(io.BytesIO(i.encoded_image_string))) for i in images]
    assert [int(p[0, 0]) for p in pixels] == [round(255 / 4), round(255 * 3 / 4)]
