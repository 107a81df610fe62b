"""Where a run executes: torchrun ranks, signals, CPU threads and the device."""
