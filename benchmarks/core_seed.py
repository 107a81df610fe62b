"""The article's recipe (the ``seed`` preset) through the plain loop, in memory.

    python benchmarks/core_seed.py [--epochs 1000]

Trains 400-25-10 on the shipped 5,000 digits with :func:`digits_torch.core.loop.train`
(autograd, ``torch.optim.SGD``, scikit-learn's stopping rule as a callback; nothing written) and
prints its training accuracy beside the preset's own run (``python train.py --preset seed``:
0.9654), and the seconds it took on one thread.
"""

from __future__ import annotations

import argparse
import time

import torch

from digits_torch import MLP, load_digits, make_config
from digits_torch.core.loop import Objective, train
from digits_torch.optim.stopping import EarlyStopping
from digits_torch.runtime.threads import cpu_threads

PRESET_ACCURACY = 0.9654  # python train.py --preset seed: its training accuracy


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=make_config("seed").epochs)
    args = parser.parse_args(argv)
    config = make_config("seed", epochs=args.epochs)
    X, y = (torch.from_numpy(a) for a in load_digits())
    generator = torch.Generator().manual_seed(config.seed)
    model = MLP(activation=config.activation, init=config.init, generator=generator)
    sgd = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, nesterov=True)
    started = time.perf_counter()
    with cpu_threads(1):
        history = train(
            model,
            sgd,
            X,
            y,
            epochs=config.epochs,
            batch_size=config.batch_size,
            gradients=Objective(l2=config.l2),
            generator=torch.Generator().manual_seed(config.seed),
            callbacks=[EarlyStopping(config.stop_on, config.tol, config.patience)],
        )
    seconds = time.perf_counter() - started
    accuracy = (model.predict(X) == y).double().mean().item()
    print(
        f"core loop, seed recipe: {len(history)} epochs ({history[-1]['stopped']}), training "
        f"accuracy {accuracy:.4f} (the preset's {PRESET_ACCURACY}), {seconds:.1f} s, 1 thread"
    )
    return {"epochs": len(history), "accuracy": accuracy, "seconds": seconds}


if __name__ == "__main__":
    main()
