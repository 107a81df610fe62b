"""Choosing the device (digits_torch.runtime.devices): auto is CUDA where torch has it, else the
CPU; cuda:N names a GPU this machine has; a one-process torchrun job is a process on its own; and
each refusal is one UserError line, said before CUDA is asked where the name itself is wrong. The
GPUs are torch's answers, replaced: this machine has none."""

from __future__ import annotations

import pytest
import torch

from digits_torch import UserError
from digits_torch.runtime.devices import resolve_device
from digits_torch.runtime.distributed import ENVIRONMENT


@pytest.fixture
def gpus(monkeypatch):
    """gpus(n): torch says this machine has ``n`` CUDA devices (0: no CUDA at all). Outside
    torchrun unless a test sets its environment."""
    for key in ENVIRONMENT:
        monkeypatch.delenv(key, raising=False)

    def machine(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)

    return machine


def _refused(spec: str) -> str:
    """What resolve_device(spec) says, checked to be one line."""
    with pytest.raises(UserError) as caught:
        resolve_device(spec)
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message, message
    return message


@pytest.mark.parametrize("count", [0, 1, 2])
def test_auto_is_cuda_where_torch_has_it_else_the_cpu(gpus, count):
    gpus(count)
    expected = torch.device("cuda") if count else torch.device("cpu")
    assert resolve_device("auto") == expected
    assert resolve_device("auto").index is None  # torch's current GPU, not a pinned cuda:0
    assert resolve_device("cpu") == torch.device("cpu")


def test_cuda_n_names_one_of_this_machines_gpus(gpus):
    count = 3
    gpus(count)
    assert resolve_device("cuda") == torch.device("cuda")
    for index in range(count):
        assert resolve_device(f"cuda:{index}") == torch.device("cuda", index)
    for index in (count, count + 5):
        assert _refused(f"cuda:{index}") == (
            f"device cuda:{index}: this machine has {count} CUDA device(s)"
        )


@pytest.mark.parametrize("spec", ["cuda:0", "cuda:7"])
def test_a_numbered_gpu_without_cuda_is_refused(gpus, spec):
    gpus(0)
    assert _refused(spec) == f"device {spec}: CUDA is not available on this machine"


@pytest.mark.parametrize("spec", ["gpu", "CUDA", "cuda:", "cuda:-1", "cpu:0", " cpu", "", "cuda\n"])
def test_an_unknown_name_is_refused_before_cuda_is_asked(monkeypatch, gpus, spec):
    gpus(0)

    def asked():
        raise AssertionError("torch.cuda was asked about a device name that is refused anyway")

    monkeypatch.setattr(torch.cuda, "is_available", asked)
    assert _refused(spec) == f"unknown device {spec!r} (use auto, cpu, cuda or cuda:N)"


def _torchrun(monkeypatch, rank: int, world: int, local: int) -> None:
    for key, value in zip(ENVIRONMENT, (rank, world, local)):
        monkeypatch.setenv(key, str(value))


def test_a_one_process_torchrun_job_chooses_as_a_process_on_its_own(monkeypatch, gpus):
    gpus(2)
    _torchrun(monkeypatch, rank=0, world=1, local=0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)  # refused in a job of several
    assert resolve_device("cuda") == resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda").index is None  # not pinned to LOCAL_RANK's cuda:0


def test_a_torchrun_job_without_cuda_runs_on_the_cpu(monkeypatch, gpus):
    gpus(0)
    _torchrun(monkeypatch, rank=3, world=4, local=3)  # a LOCAL_RANK no GPU count is asked about
    assert resolve_device("auto") == resolve_device("cpu") == torch.device("cpu")
    assert _refused("cuda") == "device cuda: CUDA is not available on this machine"


def test_an_index_torch_cannot_read_is_read_here(gpus):
    # torch.device refuses cuda:01 and an index past C's long with a RuntimeError (a traceback,
    # on a machine with CUDA); the index is read as an int: 01 is GPU 1, a huge one too many
    gpus(2)
    assert resolve_device("cuda:01") == torch.device("cuda", 1)
    spec = "cuda:99999999999999999999"
    assert _refused(spec) == f"device {spec}: this machine has 2 CUDA device(s)"
