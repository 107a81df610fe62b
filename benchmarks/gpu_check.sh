#!/usr/bin/env bash
# Issue 6's GPU checks in one go, on a CUDA machine whose python3 has torch and the test
# dependencies (no install step: it runs from this checkout):
#
#     OUT=gpu-check bash benchmarks/gpu_check.sh      # about 3 minutes on an H100 before the
#                                                     # benchmarks timed whole train.py runs too
#
# Writes into $OUT: nvidia-smi.txt, pytest-cuda.txt (the CUDA tests: CUDA against CPU, and
# --cuda-graph against eager CUDA), bench-cuda.json/.txt and bench-cpu.json/.txt.
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
python3 -m pytest -q -p no:cacheprovider -k cuda tests/test_training.py 2>&1 |
    tee "$out/pytest-cuda.txt" || status=1
python3 benchmarks/bench_train.py --device cuda --epochs 100 --repeats 3 \
    --json "$out/bench-cuda.json" 2>&1 | tee "$out/bench-cuda.txt" || status=1
python3 benchmarks/bench_train.py --device cpu --epochs 50 --repeats 3 \
    --json "$out/bench-cpu.json" 2>&1 | tee "$out/bench-cpu.txt" || status=1
exit $status
