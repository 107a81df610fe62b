"""The fast path: explicit backprop, the fused SGD step, data parallelism and CUDA graphs."""
