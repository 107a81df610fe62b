"""The commands: each one's flags and main (python -m digits_torch NAME)."""
