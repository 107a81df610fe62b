"""The core a reader reads first: the 400-25-10 network, the digits (ex4's .mat file, a torch
Dataset, the split) and the losses. Nothing here knows run directories, ranks, presets or the
config."""
