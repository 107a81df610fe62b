"""The core a reader reads first: the model, the digits, the losses and one plain training loop
(:mod:`digits_torch.core.loop`), training in memory and writing nothing."""
