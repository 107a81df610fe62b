"""scikit-learn's ``MLPClassifier`` on PyTorch: :class:`MLPClassifier` (needs scikit-learn,
the package's ``sklearn`` extra)."""

import importlib.util

if importlib.util.find_spec("sklearn") is None:  # say what to install, not which import failed
    raise ImportError(
        "digits_torch.MLPClassifier needs scikit-learn: pip install digits-torch[sklearn]"
    )

from .classifier import MLPClassifier  # noqa: E402

__all__ = ["MLPClassifier"]
