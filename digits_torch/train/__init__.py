"""A run: its set-up, the loop with its handlers, its files, teachers, fit and resume."""
