"""digits-torch: Coursera ML exercise 4's 400-25-10 digit classifier in PyTorch.

The public API::

    from digits_torch import load_digits, DigitsDataset, MLP
    X, y = load_digits()                  # (5000, 400) float32, digits 0..9
    model = MLP(activation="sigmoid")     # logits for digits 0..9
"""

from .data import DigitsDataset, load_digits
from .errors import UserError
from .model import MLP

__all__ = ["MLP", "DigitsDataset", "UserError", "load_digits"]
__version__ = "0.1.0"
