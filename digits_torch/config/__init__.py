"""A run's settings: the TrainConfig dataclass, its bounds, the presets, config files and the
flags generated from it."""
