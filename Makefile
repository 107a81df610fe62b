# The two commands of README.md: `make` sets up .venv and trains the default model; `make test`
# sets it up too if needed, then runs the test suite. Each step is a plain command: without make,
# run them by hand.
#
# torch 2.13.0 comes from PyPI (its CUDA build) where nvidia-smi finds a GPU, else from PyTorch's
# CPU index: PyPI's torch would pull gigabytes of CUDA libraries onto a machine that cannot use
# them. TORCH_INDEX=URL overrides the choice; PYTHON=python3.12 picks the interpreter (>= 3.10).
# torch alone comes from that index (--no-deps): the next line installs its dependencies from
# PyPI with the package's own, so only one package is looked up where PyTorch's index is slow or
# out of reach.

PYTHON ?= python3
VENV ?= .venv
CPU_INDEX := https://download.pytorch.org/whl/cpu
TORCH_INDEX ?= $(if $(shell command -v nvidia-smi 2>/dev/null),,$(CPU_INDEX))

.PHONY: train test

train: $(VENV)/installed
	$(VENV)/bin/python train.py

test: $(VENV)/installed
	$(VENV)/bin/python -m pytest

$(VENV)/installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --no-deps torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(VENV)/bin/pip install -e ".[dev]"
	touch $@
