"""The bag combiners beyond PyTorch (docs/semantics.md §6.1): sqrtn and the
weighted mean, forward and backward, on every path (functional, autograd,
modules, numpy). torch has neither, so the oracle is their definition
composed from torch ops in f64, whose autograd gives the weight gradient
(the divisors depend on the weights only, constants of the table)."""

import math

import numpy as np
import pytest
import torch

import emb_mlir
import emb_mlir.torch as ET
from conftest import FLOATS, assert_close, random_bags

V, D = 30, 12
FORMS = ["offsets", "offsets_last", "2d"]


def bags_of(x, offsets, last):
    """[start, end) of every bag, as the semantics defines them."""
    if offsets is None:
        n, length = x.shape
        return [(b * length, (b + 1) * length) for b in range(n)]
    offs = [int(o) for o in offsets]
    total = x.numel()
    if last:
        return list(zip(offs[:-1], offs[1:]))
    return list(zip(offs, offs[1:] + [total]))


def oracle(x, w, offsets, mode, psw=None, last=False, padding_idx=None):
    """The bag of §3 / §6.1 in f64, differentiable in `w`."""
    flat = x.reshape(-1)
    weights = None if psw is None else psw.reshape(-1).double()
    rows = []
    for start, end in bags_of(x, offsets, last):
        acc = torch.zeros(w.shape[1], dtype=torch.float64)
        den = 0.0
        for j in range(start, end):
            r = int(flat[j])
            if padding_idx is not None and r == padding_idx % w.shape[0]:
                continue
            wj = 1.0 if weights is None else float(weights[j])
            acc = acc + wj * w[r].double()
            den += wj * wj if mode == "sqrtn" else wj
        if mode == "sqrtn":
            den = math.sqrt(den)
        # A zero divisor gives a zero row, and no gradient.
        rows.append(acc * 0.0 if den == 0 else acc / den)
    if not rows:
        return torch.zeros(0, w.shape[1], dtype=torch.float64)
    return torch.stack(rows)


def case(rng, form, n=21, num_bags=6):
    if form == "2d":
        return torch.from_numpy(rng.integers(0, V, size=(5, 4))), None
    x = torch.from_numpy(rng.integers(0, V, size=n))
    offsets = torch.from_numpy(random_bags(rng, n, num_bags))
    if form == "offsets_last":
        offsets = torch.cat([offsets, torch.tensor([n])])
    return x, offsets


def positive_weights(shape, dtype, seed=5):
    """Weights of a weighted mean: positive, so that no divisor cancels."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=torch.float64) + 0.25).to(dtype)


@pytest.mark.parametrize("dtype", FLOATS.values(), ids=FLOATS.keys())
@pytest.mark.parametrize("mode,weighted", [("sqrtn", False), ("sqrtn", True),
                                           ("mean", True)])
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("padding_idx", [None, 2])
def test_forward_matches_the_definition(dtype, mode, weighted, form,
                                        padding_idx, rng):
    w = torch.randn(V, D, dtype=torch.float64).to(dtype)
    x, offsets = case(rng, form)
    x.view(-1)[::3] = 2  # padding entries, and all-padding bags
    last = form == "offsets_last"
    psw = None
    if weighted:
        psw = positive_weights(x.shape, dtype) if mode == "mean" else \
            torch.randn(x.shape, dtype=torch.float64).to(dtype)
    ours = emb_mlir.embedding_bag(x, w, offsets, mode=mode,
                                  per_sample_weights=psw,
                                  include_last_offset=last,
                                  padding_idx=padding_idx)
    assert ours.dtype == dtype
    assert_close(ours, oracle(x, w, offsets, mode, psw, last, padding_idx),
                 dtype)
    # The autograd path (C++ operators, or the pure-Python Function) gives
    # the same numbers.
    ours_autograd = ET.embedding_bag(x, w.clone().requires_grad_(), offsets,
                                     mode=mode, per_sample_weights=psw,
                                     include_last_offset=last,
                                     padding_idx=padding_idx)
    assert torch.equal(ours_autograd.detach(), ours)


def test_sqrtn_without_weights_is_the_sum_over_sqrt_n():
    w = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    x = torch.tensor([1, 2, 3, 4, 5, 0])
    offsets = torch.tensor([0, 4, 4])  # a bag of 4, an empty one, one of 2
    out = emb_mlir.embedding_bag(x, w, offsets, mode="sqrtn", padding_idx=0)
    s = w[1] + w[2] + w[3] + w[4]
    assert torch.allclose(out[0], s / 2)
    assert torch.equal(out[1], torch.zeros(2))
    assert torch.allclose(out[2], w[5])  # padding skipped: n = 1


def test_zero_divisors_give_zero_rows():
    w = torch.randn(5, 3)
    x = torch.tensor([1, 2, 3, 4, 1, 2])
    offsets = torch.tensor([0, 2, 4])
    # Bag 0: weights cancel (mean divisor 0); bag 1: all zero (both
    # divisors 0); bag 2: an ordinary bag.
    psw = torch.tensor([1.0, -1.0, 0.0, 0.0, 0.5, 2.0])
    mean = emb_mlir.embedding_bag(x, w, offsets, mode="mean",
                                  per_sample_weights=psw)
    assert torch.equal(mean[0], torch.zeros(3))
    assert torch.equal(mean[1], torch.zeros(3))
    assert torch.allclose(mean[2], (0.5 * w[1] + 2.0 * w[2]) / 2.5)
    sqrtn = emb_mlir.embedding_bag(x, w, offsets, mode="sqrtn",
                                   per_sample_weights=psw)
    assert torch.allclose(sqrtn[0], (w[1] - w[2]) / math.sqrt(2))
    assert torch.equal(sqrtn[1], torch.zeros(3))
    assert torch.allclose(sqrtn[2],
                          (0.5 * w[1] + 2.0 * w[2]) / math.sqrt(4.25))
    assert torch.isfinite(mean).all() and torch.isfinite(sqrtn).all()


def test_weighted_mean_with_unit_weights_is_the_mean(rng):
    w = torch.randn(V, D)
    x, offsets = case(rng, "offsets")
    ones = torch.ones(x.shape)
    torch.testing.assert_close(
        emb_mlir.embedding_bag(x, w, offsets, mode="mean",
                               per_sample_weights=ones, padding_idx=4),
        emb_mlir.embedding_bag(x, w, offsets, mode="mean", padding_idx=4))


@pytest.mark.parametrize("dtype", FLOATS.values(), ids=FLOATS.keys())
@pytest.mark.parametrize("mode,weighted", [("sqrtn", False), ("sqrtn", True),
                                           ("mean", True)])
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("sparse", [False, True])
def test_weight_gradient_matches_the_definition(dtype, mode, weighted, form,
                                                sparse, rng):
    x, offsets = case(rng, form)
    x.view(-1)[::4] = 2
    last = form == "offsets_last"
    psw = None
    if weighted:
        psw = positive_weights(x.shape, dtype) if mode == "mean" else \
            torch.randn(x.shape, dtype=torch.float64).to(dtype)
        psw.view(-1)[:2] = 0  # a zero divisor when the first bag is short
    w0 = torch.randn(V, D, dtype=torch.float64)
    w = w0.to(dtype).requires_grad_()
    out = ET.embedding_bag(x, w, offsets, mode=mode, sparse=sparse,
                           per_sample_weights=psw, include_last_offset=last,
                           padding_idx=2)
    g = torch.randn(out.shape, dtype=torch.float64)
    out.backward(g.to(dtype))
    assert w.grad.is_sparse == sparse and w.grad.dtype == dtype
    ref_w = w0.to(dtype).double().requires_grad_()
    oracle(x, ref_w, offsets, mode, psw, last, 2).backward(g)
    grad = w.grad.double().to_dense() if sparse else w.grad
    assert_close(grad, ref_w.grad, dtype)


@pytest.mark.parametrize("mode", ["mean", "sqrtn"])
def test_per_sample_weights_gradient_is_an_error(mode):
    """§6.1: the psw gradient of the weighted mean and sqrtn is not defined
    (the divisor depends on the weights); it is refused, not wrong."""
    w = torch.randn(V, D, requires_grad=True)
    x = torch.tensor([1, 2, 3, 4])
    psw = torch.rand(4, requires_grad=True)
    out = ET.embedding_bag(x, w, torch.tensor([0, 2]), mode=mode,
                           per_sample_weights=psw)
    with pytest.raises((ValueError, RuntimeError),
                       match=f"needs mode 'sum', got '{mode}'"):
        out.sum().backward()
    with pytest.raises(ValueError, match=f"needs mode 'sum', got '{mode}'"):
        emb_mlir.embedding_bag_per_sample_weights_backward(
            torch.ones(2, D), w.detach(), x, torch.tensor([0, 2]), mode=mode)


@pytest.mark.skipif(ET._ops is None, reason="the C++ operators' forward AD")
def test_forward_mode_tangent_of_weights_is_refused():
    import torch.autograd.forward_ad as fwAD
    w = torch.randn(V, D)
    x = torch.tensor([1, 2, 3])
    psw = torch.rand(3)
    with fwAD.dual_level():
        dual = fwAD.make_dual(psw, torch.ones(3))
        with pytest.raises(ValueError, match="needs mode 'sum', got 'sqrtn'"):
            ET.embedding_bag(x, w, torch.tensor([0]), mode="sqrtn",
                             per_sample_weights=dual)
        # The weight's tangent is fine: the bag is linear in the table.
        wd = fwAD.make_dual(w, torch.ones(V, D))
        out = ET.embedding_bag(x, wd, torch.tensor([0]), mode="sqrtn",
                               per_sample_weights=psw)
        tangent = fwAD.unpack_dual(out).tangent
    expected = psw.sum() / psw.square().sum().sqrt()
    torch.testing.assert_close(tangent, expected.expand(1, D))


def test_module_with_sqrtn_trains_like_the_definition():
    torch.manual_seed(1)
    bag = ET.EmbeddingBag(V, D, mode="sqrtn", padding_idx=0)
    ref_w = bag.weight.detach().double().clone().requires_grad_()
    x = torch.randint(0, V, (40,))
    offsets = torch.tensor([0, 7, 7, 19, 33])
    psw = torch.rand(40)
    opt = torch.optim.SGD(bag.parameters(), lr=0.1)
    ref_opt = torch.optim.SGD([ref_w], lr=0.1)
    for _ in range(5):
        opt.zero_grad()
        ref_opt.zero_grad()
        bag(x, offsets, per_sample_weights=psw).square().sum().backward()
        oracle(x, ref_w, offsets, "sqrtn", psw, False, 0).square().sum() \
            .backward()
        opt.step()
        ref_opt.step()
    torch.testing.assert_close(bag.weight.detach().double(), ref_w.detach(),
                               rtol=1e-5, atol=1e-5)


def test_numpy_in_numpy_out_and_functional_backward(rng):
    w = rng.standard_normal((V, D)).astype(np.float32)
    x = rng.integers(0, V, size=(4, 5)).astype(np.int32)
    psw = rng.random((4, 5)).astype(np.float32) + 0.25
    out = emb_mlir.embedding_bag(x, w, mode="mean", per_sample_weights=psw)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    want = oracle(torch.from_numpy(x), torch.from_numpy(w), None, "mean",
                  torch.from_numpy(psw))
    assert_close(out, want, torch.float32)
    g = rng.standard_normal((4, D)).astype(np.float32)
    gw = emb_mlir.embedding_bag_backward(g, x, None, V, mode="sqrtn",
                                         per_sample_weights=psw)
    ref_w = torch.from_numpy(w).double().requires_grad_()
    oracle(torch.from_numpy(x), ref_w, None, "sqrtn",
           torch.from_numpy(psw)).backward(torch.from_numpy(g).double())
    assert_close(gw, ref_w.grad, torch.float32)
