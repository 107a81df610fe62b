"""digits-torch: Coursera ML exercise 4's 400-25-10 digit classifier in PyTorch.

The public API::

    from digits_torch import load_digits, DigitsDataset, MLP
    X, y = load_digits()                  # (5000, 400) float32, digits 0..9
    model = MLP(activation="sigmoid")     # logits for digits 0..9

    from digits_torch import MLPClassifier  # scikit-learn's, on PyTorch (needs scikit-learn)
"""

import importlib

from .config.config import TrainConfig, make_config
from .core.data import load_digits
from .core.dataset import DigitsDataset
from .core.model import MLP
from .errors import UserError
from .inference.loading import load_model
from .train.training import FitResult, fit, resume

__all__ = [
    "MLP",
    "MLPClassifier",
    "DigitsDataset",
    "FitResult",
    "TrainConfig",
    "UserError",
    "fit",
    "load_digits",
    "load_model",
    "make_config",
    "resume",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    """``digits_torch.MLPClassifier``, loaded when first asked for (PEP 562): it needs
    scikit-learn, an optional package that ``import digits_torch`` alone does not load."""
    if name == "MLPClassifier":
        return importlib.import_module(".estimator", __name__).MLPClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
