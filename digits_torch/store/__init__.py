"""What a run keeps on disk: atomic files, checkpoints, run directories, the run log and its
TensorBoard events."""
