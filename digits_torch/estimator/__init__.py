"""scikit-learn's ``MLPClassifier`` on PyTorch: :class:`MLPClassifier` (needs scikit-learn)."""

from .classifier import MLPClassifier

__all__ = ["MLPClassifier"]
