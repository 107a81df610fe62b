"""How the weights move: the optimizers, the learning-rate schedules, fmincg and the stopping
rules."""
