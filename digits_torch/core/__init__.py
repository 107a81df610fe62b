"""The core a reader reads first: the 400-25-10 network, the digits (ex4's .mat file, a torch
Dataset, the split), the losses and one plain training loop (:mod:`digits_torch.core.loop`),
training in memory and writing nothing. Nothing here knows run directories, ranks, presets or
the config."""
