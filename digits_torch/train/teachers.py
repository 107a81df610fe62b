"""The teacher a run distils from, checked before anything is written (:func:`load_teacher`):

* a model trained with softmax that takes the digits' pixels to ten digits;
* a run's own model: its best.pt is the network its config.json builds (a best.pt replaced by,
  or linked to, another network is refused), and the run has stopped training (its lock is
  free: a teacher still being trained is not one yet);
* trained on the student's own split: a run on the same data file (by the SHA-256 its split.json
  records) whose training rows hold none of the student's validation digits, else the student's
  validation metrics would score digits its teacher learned. A model file, or a run of another
  split, teaches only where the config says it need not (``teacher_any_split``). A student
  without validation digits may learn from any teacher.

With a ``teacher_preset``, a ``teacher`` that preset trained for another student's split (a run's
config.json names the teacher its preset found: ``--config RUN/config.json --seed 3``) gives way
to this split's, which the preset finds or trains (:func:`trained_for_another_split`); teachers
are found by their data file's SHA-256 (:func:`same_digits`), not its path alone.

A resumed run distils from its own copy, teacher.pt (:func:`kept_teacher`): the file whose
SHA-256 its split.json records, not a link, and not one replaced since.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config.config import TrainConfig, fields_with, make_config
from ..core.data import default_data_path, file_sha256
from ..core.model import shape_text
from ..errors import UserError
from ..inference.loading import Trained, load_trained
from ..store.run_contents import BEST, LATEST, SPLIT, TEACHER, is_run
from ..store.runs import (
    METRICS,
    RESUME_MAY_CHANGE,
    find_run,
    read_config,
    read_split_record,
    writer_of,
)

__all__ = [
    "NO_TEACHER",
    "ROUGH_SECONDS",
    "TEACHERS",
    "checked_teacher",
    "kept_teacher",
    "load_teacher",
    "same_digits",
    "teacher_config",
    "teacher_plan",
    "teacher_run",
    "trained_for_another_split",
]


def load_teacher(
    path: str | Path,
    any_split: bool,
    logdir: str,
    pixels: int,
    data_sha256: str,
    val_rows: np.ndarray,
) -> Trained:
    """The teacher a run names, read from ``path`` (a run or a model file, a run's name looked
    up in ``logdir``), checked (see the module docstring) against the student's digits:
    ``pixels`` an image, the data file's ``data_sha256``, and the student's validation rows
    ``val_rows`` (unless ``any_split``: the run's --teacher-any-split).

    Raises:
        UserError: naming the teacher, for each check above it fails.
    """
    trained = checked_teacher(path, logdir, pixels)
    run = _run_of(path, trained)
    if run is not None:
        _check_run(run, trained, path)
    if not any_split and len(val_rows):
        _check_split(run, path, data_sha256, val_rows)
    return trained


def checked_teacher(path: str | Path, logdir: str, pixels: int) -> Trained:
    """The model at ``path`` read, and checked to be a teacher for digits of ``pixels`` pixels
    (the checks that need no split: a sweep makes them before it makes its directory).

    Raises:
        UserError: naming the teacher: no model there, or one that is no softmax over ten
            digits of these pixels.
    """
    trained = load_trained(path, logdir=logdir)
    _check_model(trained, path, pixels)
    return trained


def kept_teacher(run_dir: Path, pixels: int) -> Trained:
    """A resumed run's own copy of its teacher, teacher.pt, as split.json recorded it.

    Raises:
        UserError: naming teacher.pt, a link or a file other than the one recorded.
    """
    path = run_dir / TEACHER
    if path.is_symlink():
        raise UserError(f"a link, not the run's own copy of its teacher; {_PUT_BACK}", path)
    record = read_split_record(run_dir)
    recorded = None if record is None else record["teacher_sha256"]
    if recorded is not None and file_sha256(path) != recorded:
        problem = f"not the teacher the run started with ({SPLIT} records another SHA-256)"
        raise UserError(f"{problem}; {_PUT_BACK}", path)
    trained = load_trained(path)
    _check_model(trained, path, pixels)
    return trained


_PUT_BACK = "a resume distils from the teacher it started with: put that file back"


def _check_model(trained: Trained, path: str | Path, pixels: int) -> None:
    """A teacher's outputs must be a softmax's over ten digits, from these digits' pixels."""
    shape = trained.model.architecture()
    if trained.loss != "softmax":
        raise UserError("a teacher must be trained with --loss softmax", path)
    if (shape["input_size"], shape["num_classes"]) != (pixels, 10):
        problem = (
            f"the teacher takes {shape['input_size']} pixels to {shape['num_classes']} classes; "
            f"the digits have {pixels} pixels and 10 classes"
        )
        raise UserError(problem, path)


def _run_of(path: str | Path, trained: Trained) -> Path | None:
    """The run directory the teacher is the model of: the one named, or the one whose best.pt
    or checkpoint.pt was named; None for a model file of no run."""
    if trained.run_dir is not None:
        return trained.run_dir
    file = Path(path)
    return file.parent if file.name in (BEST, LATEST) and is_run(file.parent) else None


def _check_run(run: Path, trained: Trained, path: str | Path) -> None:
    """A run's teacher is that run's model, trained to its end (or stopped: not still going)."""
    writer = writer_of(run)
    if writer is not None:
        raise UserError(
            f"still training ({writer}); a teacher must have stopped training first: wait for it "
            "to end",
            run,
        )
    config = TrainConfig.from_dict(read_config(run)).to_dict()
    file = run / BEST if trained.run_dir is not None else Path(path)
    shape = trained.model.architecture()
    found = [shape["hidden_sizes"], shape["activation"], trained.loss]
    if found != [list(config["hidden"]), config["activation"], config["loss"]]:
        raise UserError(
            f"holds a {_described(shape)} network ({trained.loss}), but the run's config.json "
            f"builds a {_described({**shape, 'hidden_sizes': config['hidden']}, config)} one "
            f"({config['loss']}): not the run's own model",
            file,
        )
    saved = trained.config
    differ = [
        k for k in config if k not in RESUME_MAY_CHANGE and k in saved and saved[k] != config[k]
    ]
    if differ:
        raise UserError(
            f"its config is not the run's config.json ({', '.join(differ)} differ): not the "
            "run's own model",
            file,
        )


def _described(shape: dict, config: dict | None = None) -> str:
    layers = (shape["input_size"], *shape["hidden_sizes"], shape["num_classes"])
    activation = shape["activation"] if config is None else config["activation"]
    return f"{'-'.join(map(str, layers))} {activation}"


def _check_split(run: Path | None, path: str | Path, data_sha256: str, val_rows) -> None:
    """The teacher never trained on a validation digit of the student's (see the docstring)."""
    record = read_split_record(run) if run is not None else None
    if run is None:
        problem = "a model file, not a run: which digits it trained on is unknown"
    elif record is None or record["data_sha256"] is None:
        problem = (
            f"its run recorded no {SPLIT} with its data file's SHA-256 (made before runs kept "
            "one): which digits it trained on is unknown"
        )
    elif record["data_sha256"] != data_sha256:
        problem = "it trained on another data file than this run's (by their SHA-256)"
    else:
        seen = np.intersect1d(np.asarray(record["train"], dtype=np.int64), val_rows)
        if not len(seen):
            return
        problem = (
            f"it trained on {len(seen)} of this run's {len(val_rows)} validation digits (its "
            "split is another seed's or val fraction's): they would score what it taught"
        )
    raise UserError(
        f"{problem}; distil from a teacher trained on this run's split (--teacher-preset trains "
        "one), or give --teacher-any-split to distil from it anyway",
        path,
    )


def same_digits(run_dir: Path, data_sha256: str) -> bool:
    """Whether the run at ``run_dir`` recorded (in its split.json) that it trained on the data
    file whose SHA-256 is ``data_sha256``."""
    try:
        record = read_split_record(run_dir)
    except UserError:  # not a split.json this package can read: not a run to reuse
        return False
    return record is not None and record["data_sha256"] == data_sha256


def trained_for_another_split(config: TrainConfig) -> bool:
    """Whether ``config.teacher`` is a run of ``config.teacher_preset`` trained for another
    student's split: another seed, val fraction or data file (by its SHA-256)."""
    try:
        run = find_run(config.teacher, config.logdir)
        if not is_run(run):
            return False
        saved = TrainConfig.from_dict(read_config(run))
    except (UserError, OSError):  # not a run: load_teacher says what it is
        return False
    if saved.preset != config.teacher_preset:
        return False
    data = _data_sha256(config)
    ours = (saved.seed, saved.val_fraction) == (config.seed, config.val_fraction)
    return not (ours and same_digits(run, data))


def _data_sha256(config: TrainConfig) -> str:
    """The SHA-256 of the data file ``config`` trains on (its ``data``, else the shipped one):
    what tells one run's digits from another's."""
    return file_sha256(config.data or default_data_path(), "a MAT file")


# ---------------------------------------------------------------- a teacher trained first

TEACHERS = "teachers"  # where in the logdir the teachers trained first (teacher_preset) go
# What a teacher trained first (teacher_preset) takes from its student: the digits and split
# (data, seed, val fraction), the arithmetic's dtype and threads, and how runs are kept and shown.
_TEACHER_SHARES = (
    *("data", "seed", "val_fraction", "dtype", "threads", "device", "quiet"),
    *("checkpoint_every", "rank_timeout", "image_every", "figures"),
)


# What skips a teacher trained first: the same network and recipe, alone (say so in the plan).
NO_TEACHER = "--preset tuned"
# Rough seconds of these presets' runs on the shipped digits, pictures included, on one CPU
# thread of a 2-core AMD EPYC VM (each run's own "the whole command", 2026-12-07: teacher 12.9
# to 15.0, distilled with its teacher found 17.6, tuned 5.9 and 6.2): what the plan says.
ROUGH_SECONDS = {"teacher": 15, "distilled": 20, "tuned": 6}


def teacher_plan(config: TrainConfig, teacher: TrainConfig, found: Path | None) -> str:
    """What a new run of ``config`` trains, in order, and roughly how long, where it trains a
    teacher first: lines for stderr, given the teacher's config and the run of it found in the
    logdir (None: the teacher is trained first)."""
    shape = shape_text(teacher.hidden)
    if found is None:
        first = (
            f"train a teacher, {shape} ({teacher.preset} preset, {teacher.epochs} epochs"
            f"{_rough(teacher.preset, ' on one CPU core')}),\n         into {teacher.logdir}/"
        )
    elif (found / METRICS).exists():
        first = f"use the teacher that finished in {found}"
    else:
        first = f"finish the stopped teacher in {found}"
    student = shape_text(config.hidden)
    return (
        f"plan: 1. {first}\n"
        f"      2. train {student} from the teacher's outputs ({config.preset} preset, "
        f"{config.epochs} epochs{_rough(config.preset)})\n"
        f"      {NO_TEACHER} trains {student} alone, without a teacher"
        f"{_rough(NO_TEACHER.split()[-1])}"
    )


def _rough(preset: str, where: str = "") -> str:
    seconds = ROUGH_SECONDS.get(preset)
    return "" if seconds is None else f", about {seconds} s{where}"


def teacher_config(config: TrainConfig) -> TrainConfig:
    """The config of the teacher ``config``'s ``teacher_preset`` trains: that preset on the
    student's digits and split, trained and watched as the student is, in the logdir's
    :data:`TEACHERS` directory."""
    shared = {k: getattr(config, k) for k in _TEACHER_SHARES}
    logdir = str(Path(config.logdir) / TEACHERS)
    preset = config.teacher_preset
    try:
        teacher = make_config(preset, **shared, logdir=logdir)
    except UserError as err:  # the student's flags are fine; its teacher's preset cannot take them
        raise UserError(
            f"the teacher this run trains first (--teacher-preset {preset}): {err}"
        ) from None
    if teacher.loss != "softmax":  # known before it trains: load_teacher would refuse it after
        raise UserError(
            f"--teacher-preset {preset} trains with --loss {teacher.loss}; a teacher must be "
            "trained with --loss softmax (its outputs are softened into the student's targets)"
        )
    return teacher


def teacher_run(config: TrainConfig) -> Path | None:
    """The newest run under ``config.logdir`` of ``config`` (bar the device) on the same data
    file (by its SHA-256) that finished or can resume, or None."""
    same = set(fields_with("hparam")) - {"device"}  # a run trained on another device is it
    wanted = {k: v for k, v in config.to_dict().items() if k in same}
    data = _data_sha256(config)  # the same digits, not just path
    logdir = Path(config.logdir)
    for run_dir in sorted(logdir.glob(f"*-{config.preset}*"), reverse=True):
        if not (run_dir / METRICS).exists() and not (run_dir / LATEST).exists():
            continue
        try:
            saved = TrainConfig.from_dict(read_config(run_dir)).to_dict()
        except (UserError, TypeError, ValueError):
            continue  # not a run of this package's, or one it can no longer read
        if {k: saved.get(k) for k in wanted} == wanted and same_digits(run_dir, data):
            return run_dir
    return None
