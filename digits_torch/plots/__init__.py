"""Pictures of the digits and of a trained network, as matplotlib Figures and PNG files
(:mod:`.figures`, drawn with :mod:`.drawing` and inked with :mod:`.frame`).

    from digits_torch import plots
    plots.digits_grid(X, y).savefig("digits.png")     # 100 random digits, upright
    plots.hidden_units(model)                        # first-layer weights, one grey scale
    plots.mistakes(model, X, y), plots.confusion(model, X, y)
    plots.learning_curves("runs/<run>")              # from the run's history.jsonl
"""

from .figures import (
    TENSORBOARD_FIGURES,
    confusion,
    dead_units,
    digits_grid,
    hidden_units,
    hidden_units_image,
    learning_curves,
    mistakes,
    render,
    run_figures,
    save_png,
    shown_digits,
    write_run_figures,
)

__all__ = [
    "TENSORBOARD_FIGURES",
    "confusion",
    "dead_units",
    "digits_grid",
    "hidden_units",
    "hidden_units_image",
    "learning_curves",
    "mistakes",
    "render",
    "run_figures",
    "save_png",
    "shown_digits",
    "write_run_figures",
]
