"""What a run trains with: its data on the device, its split, model, optimizer, schedule,
stopping rule, random draws and epoch function, all built from its config (:func:`set_up`)
before anything is written, so a run that cannot start leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import sklearn_exact
from .config import DTYPES, TrainConfig, resolve_device
from .data import default_data_path, load_digits, stratified_split
from .distributed import SOLO, Ranks
from .epochs import Epoch, make_epoch
from .errors import UserError
from .model import MLP
from .optimizers import make_optimizer
from .schedule import make_scheduler
from .stopping import EarlyStopping

__all__ = ["Setup", "set_up", "split_rows"]


@dataclass
class Setup:
    """Everything a run trains with, built before its run directory is touched."""

    device: torch.device
    data_path: Path
    rows: tuple[np.ndarray, np.ndarray]  # training and validation rows of the data file
    train: tuple[torch.Tensor, torch.Tensor]  # (m, n) images, (m,) digits, on the device
    val: tuple[torch.Tensor, torch.Tensor] | None  # likewise, or None without a split
    model: MLP
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    stopping: EarlyStopping
    rng: torch.Generator | sklearn_exact.RandomStream  # what a checkpoint saves to resume draws
    epoch: Epoch


def set_up(config: TrainConfig, ranks: Ranks = SOLO) -> Setup:
    """The run of ``config``; with ``ranks`` of a torchrun job, this rank's part of it (every
    rank sets up the same run: the same data, split, model and random draws)."""
    device = resolve_device(config.device)
    if ranks.parallel:
        _check_parallel(config, device)
    data_path = default_data_path() if config.data is None else Path(config.data)
    X, labels = load_digits(data_path, dtype=config.dtype, stored_labels=True)
    y = labels % 10  # digits: Coursera's label 10 is the digit 0

    # Initialisation, augmentation and shuffling draw from one CPU generator: the same numbers
    # on every device.
    generator = torch.Generator().manual_seed(config.seed)
    model = MLP(X.shape[1], config.hidden, 10, config.activation, config.init, generator)
    model.to(device, DTYPES[config.dtype])
    stream, train_idx, val_idx = split_rows(config, labels, model)
    if len(train_idx) == 0:
        problem = f"val fraction {config.val_fraction} holds out every example; lower it"
        raise UserError(problem, data_path)

    def on_device(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(X[rows]).to(device), torch.from_numpy(y[rows]).to(device)

    train = on_device(train_idx)
    optimizer = make_optimizer(config, model)
    return Setup(
        device=device,
        data_path=data_path,
        rows=(train_idx, val_idx),
        train=train,
        val=on_device(val_idx) if len(val_idx) else None,
        model=model,
        optimizer=optimizer,
        scheduler=make_scheduler(
            config.schedule, optimizer, config.epochs, len(train_idx), config.power_t
        ),
        stopping=EarlyStopping(config.stop_on, config.tol, config.patience),
        rng=generator if stream is None else stream,
        epoch=make_epoch(config, model, optimizer, *train, generator, stream, ranks),
    )


def _check_parallel(config: TrainConfig, device: torch.device) -> None:
    """What data parallelism cannot do: repeat scikit-learn's one process, or replay one
    process's epoch as a CUDA graph."""
    if config.sklearn_exact:
        raise UserError(
            "sklearn-exact mode repeats scikit-learn's one-process SGD; "
            "run it without torchrun (or with --nproc-per-node 1)"
        )
    if config.cuda_graph and device.type == "cuda":
        raise UserError("--cuda-graph replays one process's epoch; under torchrun drop it")


def split_rows(
    config: TrainConfig, labels: np.ndarray, model: MLP
) -> tuple[sklearn_exact.RandomStream | None, np.ndarray, np.ndarray]:
    """The training and validation rows of a run with ``config`` on data labelled ``labels``
    (as the file stores them).

    Returns ``(stream, training rows, validation rows)``. ``stream`` is None, except in
    sklearn-exact mode: there scikit-learn's random stream first draws ``model``'s initial
    weights and then the split, and the epochs go on shuffling from it.
    """
    if not config.sklearn_exact:
        return None, *stratified_split(labels % 10, config.val_fraction, config.seed)
    if len(np.unique(labels)) != 10:
        # MLPClassifier sizes its output layer by the classes present; ours always has ten.
        raise UserError("sklearn-exact mode needs every digit 0..9 in the data", config.data)
    stream = sklearn_exact.RandomStream(config.seed)
    stream.init_(model, sklearn_exact.unit_digits(labels))
    if config.val_fraction == 0:
        return stream, np.arange(len(labels)), np.arange(0)
    train_idx, val_idx = stream.split(len(labels), config.val_fraction)
    return stream, train_idx, val_idx
