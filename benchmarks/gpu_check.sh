#!/usr/bin/env bash
# The GPU checks in one go, on a CUDA machine whose python3 has torch and the test
# dependencies (no install step: it runs from this checkout):
#
#     OUT=gpu-check bash benchmarks/gpu_check.sh      # about 3 minutes on an H100 before the
#                                                     # benchmarks timed whole train.py runs too
#
# Writes into $OUT: nvidia-smi.txt, pytest-cuda.txt (the CUDA tests: CUDA against CPU, and
# --cuda-graph against eager CUDA), torchrun.txt (train.py and a sweep under torchrun on cuda,
# one rank per GPU, and a two-rank CPU job on the GPU machine, whose process group then holds
# NCCL beside gloo), bench-cuda.json/.txt and bench-cpu.json/.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the benchmarks import this checkout's package
status=0

nvidia-smi >"$out/nvidia-smi.txt" 2>&1
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" |
    tee -a "$out/nvidia-smi.txt"
python3 -m pytest -o addopts="" -q -p no:cacheprovider -k cuda tests/test_training.py \
    tests/test_torchrun.py tests/test_sweep.py 2>&1 |
    tee "$out/pytest-cuda.txt" || status=1
gpus=$(python3 -c "import torch; print(torch.cuda.device_count())")
logdir=$(mktemp -d)
{
    torchrun --standalone --nproc-per-node "$gpus" train.py --preset seed --device cuda \
        --logdir "$logdir" --no-figures
    torchrun --standalone --nproc-per-node "$gpus" -m digits_torch sweep --preset seed \
        --device cuda --logdir "$logdir" --grid l2=0,0.01,0.1,1 --seeds 0-1 --no-figures
    torchrun --standalone --nproc-per-node 2 train.py --preset seed --device cpu --epochs 50 \
        --logdir "$logdir" --no-figures
} >"$out/torchrun.txt" 2>&1 || status=1
python3 benchmarks/bench_train.py --device cuda --epochs 100 --repeats 3 \
    --json "$out/bench-cuda.json" 2>&1 | tee "$out/bench-cuda.txt" || status=1
python3 benchmarks/bench_train.py --device cpu --epochs 50 --repeats 3 \
    --json "$out/bench-cpu.json" 2>&1 | tee "$out/bench-cpu.txt" || status=1
exit $status
