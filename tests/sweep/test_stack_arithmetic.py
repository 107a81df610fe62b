"""A stack's arithmetic is one network's in other shapes: its SGD step is torch's SGD per network
(bit for bit where the stack's networks agree on Nesterov), and each loss's one table entry gives
a stack of K networks what it gives each network alone."""

from __future__ import annotations

import pytest
import torch

from digits_torch.core.losses import LOSSES, data_loss, smoothed_targets
from digits_torch.recipes.distillation import Soft, objective
from digits_torch.sweep.arithmetic import predicted, sgd_step

LRS, MOMENTA = [0.3, 0.05, 1.7], [0.9, 0.3, 0.5]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("fused", [False, True])
def test_the_stacked_sgd_step_is_torch_sgd_for_each_network_bit_for_bit(dtype, nesterov, fused):
    g = torch.Generator().manual_seed(0)
    params, grads, buffers = (torch.randn(3, 25, 40, generator=g, dtype=dtype) for _ in range(3))
    stacked, stacked_buffers = params.clone(), buffers.clone()
    momentum, minus_lr = torch.tensor(MOMENTA, dtype=dtype), -torch.tensor(LRS, dtype=dtype)
    sgd_step([stacked], [grads.clone()], [stacked_buffers], momentum, nesterov, minus_lr)
    for k in range(3):
        p = params[k].clone().requires_grad_()
        p.grad = grads[k].clone()
        sgd = torch.optim.SGD([p], lr=LRS[k], momentum=MOMENTA[k], nesterov=nesterov, fused=fused)
        sgd.state[p]["momentum_buffer"] = buffers[k].clone()
        sgd.step()
        assert torch.equal(stacked[k], p.detach()), k
        assert torch.equal(stacked_buffers[k], sgd.state[p]["momentum_buffer"]), k


@pytest.mark.parametrize("loss", LOSSES)
def test_each_loss_entry_gives_a_stack_what_it_gives_each_network(loss):
    g = torch.Generator().manual_seed(1)
    K, classes, b = 3, 10, 17
    z = torch.randn(K, classes, b, generator=g, dtype=torch.float64) * 3  # a stack's logits
    y = torch.randint(0, classes, (K, b), generator=g)
    smoothing = torch.tensor([0.0, 0.1, 0.25], dtype=torch.float64)
    targets = smoothed_targets(y, classes, smoothing, torch.float64)  # (K, classes, b)
    fit, delta = LOSSES[loss].output_error(z.clone(), targets, b)
    assert fit.shape == (K,) and delta.shape == (K, classes, b)
    validation = data_loss(z, y, loss)  # a stack's mean per network, unsmoothed
    for k in range(K):
        alone = z[k].T.contiguous()  # (b, classes)
        mine = smoothed_targets(y[k], classes, float(smoothing[k]), torch.float64)
        assert torch.equal(targets[k].T, mine)
        fit_k, delta_k = LOSSES[loss].output_error(alone.clone(), mine, b)
        assert torch.allclose(fit[k], fit_k, rtol=0, atol=1e-12)
        assert torch.allclose(delta[k].T, delta_k, rtol=0, atol=1e-12)
        assert torch.allclose(fit_k, data_loss(alone, y[k], loss, float(smoothing[k])), atol=1e-12)
        assert torch.allclose(validation[k], data_loss(alone, y[k], loss), rtol=0, atol=1e-12)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("smooths", [False, True])
def test_one_batch_groups_shared_labels_give_each_network_what_its_own_copy_gives(loss, smooths):
    # A stack whose networks all see one batch keeps its labels as one (1, b) row: its targets
    # broadcast against every network's logits, and must give the copy per network's bits.
    g = torch.Generator().manual_seed(3)
    K, classes, b = 3, 10, 17
    z = torch.randn(K, classes, b, generator=g) * 3
    y = torch.randint(0, classes, (1, b), generator=g)
    smoothing = torch.tensor([0.0, 0.1, 0.25]) if smooths else None
    shared = smoothed_targets(y, classes, smoothing, torch.float32)
    copies = smoothed_targets(y.expand(K, b), classes, smoothing, torch.float32)
    assert shared.shape == ((K, classes, b) if smooths else (1, classes, b))
    for got, want in zip(
        LOSSES[loss].output_error(z.clone(), shared, b),
        LOSSES[loss].output_error(z.clone(), copies, b),
    ):
        assert torch.equal(got, want)
    soft = Soft(torch.softmax(torch.randn(1, classes, b, generator=g), 1), 2.0, 0.5)
    for got, want in zip(objective(z, soft, shared), objective(z, soft, copies)):
        assert torch.equal(got, want)


def test_a_mixed_nesterov_stack_steps_each_network_as_torch_sgd_to_an_ulp():
    g = torch.Generator().manual_seed(2)
    params, grads, buffers = (
        torch.randn(3, 25, 40, generator=g, dtype=torch.float64) for _ in range(3)
    )
    flags = torch.tensor([True, False, True])
    stacked = params.clone()
    momentum, minus_lr = (
        torch.tensor(MOMENTA, dtype=torch.float64),
        -torch.tensor(LRS, dtype=torch.float64),
    )
    sgd_step([stacked], [grads.clone()], [buffers.clone()], momentum, flags, minus_lr)
    for k in range(3):
        p = params[k].clone().requires_grad_()
        p.grad = grads[k].clone()
        sgd = torch.optim.SGD([p], lr=LRS[k], momentum=MOMENTA[k], nesterov=bool(flags[k]))
        sgd.state[p]["momentum_buffer"] = buffers[k].clone()
        sgd.step()
        assert torch.allclose(stacked[k], p.detach(), rtol=0, atol=1e-14), k


def test_a_stacks_predicted_class_is_argmax_ties_nans_and_infinities_included():
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        z = torch.randint(0, 3, (8, 10, 50), generator=g).to(dtype)  # many ties
        z[torch.rand(z.shape, generator=g) < 0.02] = float("nan")
        z[torch.rand(z.shape, generator=g) < 0.02] = float("inf")
        assert torch.equal(predicted(z), z.mT.contiguous().argmax(dim=2))
