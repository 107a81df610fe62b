"""Training recipes around the plain loop: augmentation, distillation and dead-unit revival."""
