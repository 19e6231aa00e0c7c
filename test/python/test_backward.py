"""Backward differential tests: the autograd drop-ins of emb_mlir.torch
against torch 1.13's autograd, and the functional backward API. Where
torch 1.13 disagrees with docs/semantics.md the semantics is the oracle."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import emb_mlir
import emb_mlir.torch as ET
from conftest import FLOATS, assert_close, oracle_dtype, random_bags

V, D = 40, 20


def leaf(dtype, shape=(V, D)):
    return torch.randn(shape, dtype=torch.float64).to(dtype).requires_grad_()


def grads(fn, weight, x, *args, **kw):
    """(output, weight gradient) of fn with a random output gradient."""
    w = weight.detach().clone().requires_grad_()
    out = fn(x, w, *args, **kw)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(7),
                    dtype=torch.float64).to(out.dtype)
    out.backward(g)
    return out, w.grad, g


def dense(g):
    """Dense, summed in f64 (a bf16 sparse gradient coalesced in bf16 would
    round differently from the oracle)."""
    return g.double().to_dense() if g.is_sparse else g


@pytest.mark.parametrize("dtype", FLOATS.values(), ids=FLOATS.keys())
@pytest.mark.parametrize("padding_idx", [None, 3])
@pytest.mark.parametrize("scale_grad_by_freq", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
def test_embedding_grad(dtype, padding_idx, scale_grad_by_freq, sparse):
    if sparse and scale_grad_by_freq:
        pytest.skip("rejected at the forward: see test_errors")
    w = leaf(dtype)
    x = torch.randint(0, V, (5, 6))
    x[1, :3] = 3
    x[2, :4] = 11  # repeated rows
    _, ours, _ = grads(ET.embedding, w, x, padding_idx, None, 2.0,
                       scale_grad_by_freq, sparse)
    od = oracle_dtype(dtype)
    _, expected, _ = grads(TF.embedding, w.to(od), x, padding_idx, None, 2.0,
                           scale_grad_by_freq, sparse)
    assert ours.is_sparse == sparse
    assert ours.dtype == dtype
    assert_close(dense(ours), dense(expected), dtype)


def test_sparse_embedding_grad_is_torchs_uncoalesced_form():
    w = leaf(torch.float32)
    x = torch.tensor([[4, 1], [4, 9]])
    _, ours, g = grads(ET.embedding, w, x, None, None, 2.0, False, True)
    _, expected, _ = grads(TF.embedding, w, x, None, None, 2.0, False, True)
    assert not ours.is_coalesced()
    assert torch.equal(ours._indices(), expected._indices())
    assert torch.equal(ours._values(), expected._values())


@pytest.mark.parametrize("dtype", FLOATS.values(), ids=FLOATS.keys())
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("form", ["offsets", "offsets_last", "2d"])
@pytest.mark.parametrize("padding_idx", [None, 2])
@pytest.mark.parametrize("sparse", [False, True])
def test_embedding_bag_grad(dtype, mode, form, padding_idx, sparse, rng):
    if sparse and mode == "max":
        pytest.skip("rejected: see test_errors")
    if form == "2d":
        x = torch.from_numpy(rng.integers(0, V, size=(6, 4)))
        offsets = None
    else:
        x = torch.from_numpy(rng.integers(0, V, size=24))
        offsets = torch.from_numpy(random_bags(rng, 24, 7))
        if form == "offsets_last":
            offsets = torch.cat([offsets, torch.tensor([24])])
    x.view(-1)[::4] = 2
    last = form == "offsets_last"
    w = leaf(dtype)
    kw = dict(mode=mode, sparse=sparse, include_last_offset=last,
              padding_idx=padding_idx)
    _, ours, _ = grads(ET.embedding_bag, w, x, offsets, **kw)
    _, expected, _ = grads(TF.embedding_bag, w.to(oracle_dtype(dtype)), x,
                           offsets, **kw)
    assert ours.is_sparse == sparse and ours.dtype == dtype
    assert_close(dense(ours), dense(expected), dtype)


@pytest.mark.parametrize("dtype", FLOATS.values(), ids=FLOATS.keys())
@pytest.mark.parametrize("sparse", [False, True])
def test_per_sample_weights_grads(dtype, sparse, rng):
    x = torch.from_numpy(rng.integers(0, V, size=18))
    x[::5] = 0
    offsets = torch.from_numpy(random_bags(rng, 18, 5))
    torch.manual_seed(3)
    w0 = torch.randn(V, D, dtype=torch.float64).to(dtype)
    psw0 = torch.randn(18, dtype=torch.float64).to(dtype)
    g0 = torch.randn(len(offsets), D, dtype=torch.float64).to(dtype)
    results = []
    for fn, dt in ((ET.embedding_bag, dtype),
                   (TF.embedding_bag, oracle_dtype(dtype))):
        w = w0.to(dt).clone().requires_grad_()
        psw = psw0.to(dt).clone().requires_grad_()
        out = fn(x, w, offsets, mode="sum", sparse=sparse,
                 per_sample_weights=psw, padding_idx=0)
        out.backward(g0.to(dt))
        results.append((out, dense(w.grad), psw.grad))
    for ours, expected in zip(*results):
        assert_close(ours, expected, dtype)


def test_scale_grad_by_freq_in_bag_backward_follows_the_semantics():
    # Semantics §4: s_j = 1 / count(x_j) over the whole input (PyTorch CPU
    # divided by a different count, issue #190063), m_j = 1 / n_bag.
    w = leaf(torch.float64)
    x = torch.tensor([1, 1, 4, 1, 4, 7])
    offsets = torch.tensor([0, 2, 5])
    out, ours, g = grads(ET.embedding_bag, w, x, offsets, mode="mean",
                         scale_grad_by_freq=True)
    expected = torch.zeros(V, D, dtype=torch.float64)
    counts = {1: 3, 4: 2, 7: 1}
    bag_of = [0, 0, 1, 1, 1, 2]
    sizes = [2, 3, 1]
    for j, row in enumerate(x.tolist()):
        b = bag_of[j]
        expected[row] += g[b] / sizes[b] / counts[row]
    assert_close(ours, expected)


def test_unit_scaling_profile_scales_the_weight_gradient():
    w = leaf(torch.float32)
    x = torch.randint(0, V, (8, 5))
    _, ours, _ = grads(ET.embedding, w, x, profile="unit-scaling")
    _, expected, _ = grads(TF.embedding, w, x)
    assert_close(ours, expected * math.sqrt(V / x.numel()))
    offsets = torch.tensor([0, 10, 30])
    _, ours, _ = grads(ET.embedding_bag, w, x.view(-1), offsets, mode="sum",
                       profile="unit-scaling")
    _, expected, _ = grads(TF.embedding_bag, w, x.view(-1), offsets,
                           mode="sum")
    assert_close(ours, expected * math.sqrt(V / x.numel()))


def test_zero_padding_profile_gradient_skips_padding():
    w = leaf(torch.float32)
    x = torch.tensor([[0, 5, 5], [2, 5, 1]])
    out, ours, _ = grads(ET.embedding, w, x, 5, profile="zero-padding")
    assert (out[x == 5] == 0).all()
    _, expected, _ = grads(TF.embedding, w, x, 5)
    assert_close(ours, expected)


def test_functional_backward_numpy(rng):
    x = rng.integers(0, V, size=(3, 4))
    g = rng.standard_normal((3, 4, D))
    gw = emb_mlir.embedding_backward(g, x, V)
    expected = np.zeros((V, D))
    np.add.at(expected, x.reshape(-1), g.reshape(-1, D))
    np.testing.assert_allclose(gw, expected, rtol=1e-12)
    rows, values = emb_mlir.embedding_backward(g, x, V, sparse=True,
                                               coalesced=True)
    assert list(rows) == sorted(set(x.reshape(-1).tolist()))
    np.testing.assert_allclose(values, expected[rows], rtol=1e-12)
    rows, values = emb_mlir.embedding_backward(g, x, V, padding_idx=int(x[0, 0]),
                                               sparse=True)
    keep = x.reshape(-1) != x[0, 0]
    np.testing.assert_array_equal(rows, x.reshape(-1)[keep])
    np.testing.assert_array_equal(values, g.reshape(-1, D)[keep])


def test_functional_bag_backward_max_and_psw(rng):
    w = rng.standard_normal((V, D)).astype(np.float32)
    x = rng.integers(0, V, size=10)
    offsets = np.array([0, 3, 3, 8])
    out, argmax = emb_mlir.embedding_bag(x, w, offsets, mode="max",
                                         return_max_indices=True)
    g = rng.standard_normal(out.shape).astype(np.float32)
    gw = emb_mlir.embedding_bag_backward(g, x, offsets, V, mode="max",
                                         max_indices=argmax)
    expected = np.zeros((V, D), np.float32)
    for b in range(4):
        for d in range(D):
            if argmax[b, d] >= 0:
                expected[argmax[b, d], d] += g[b, d]
    np.testing.assert_allclose(gw, expected, rtol=1e-6)
    gpsw = emb_mlir.embedding_bag_per_sample_weights_backward(g, w, x, offsets)
    bag = np.searchsorted(offsets, np.arange(10), side="right") - 1
    np.testing.assert_allclose(gpsw, (g[bag] * w[x]).sum(1), rtol=1e-5)


def test_backward_bits_do_not_depend_on_threads():
    # V spans several row windows (kMinGradRowsPerChunk = 4096 rows each).
    V = 5 * 4096
    x = torch.randint(0, V, (60000,))
    g = torch.randn(60000, 16)
    results = []
    for threads in (1, 3):
        emb_mlir.configure(threads=threads)
        results.append(emb_mlir.embedding_backward(g, x, V))
        results.append(emb_mlir.embedding_bag_backward(
            g[:600], x, torch.arange(0, 60000, 100), V, mode="mean"))
    emb_mlir.configure(threads=0)
    assert emb_mlir.info()["threads"] >= 1
    assert torch.equal(results[0], results[2])
    assert torch.equal(results[1], results[3])


@pytest.mark.parametrize("bag", [False, True])
def test_max_norm_bumps_the_weight_version_like_torch(bag):
    # A graph that saved the weight before an in-place renorm must refuse
    # to run its backward, as with torch's own max_norm.
    for fn in ((ET.embedding_bag, TF.embedding_bag) if bag else
               (ET.embedding, TF.embedding)):
        w = (torch.randn(V, D) * 3).requires_grad_()
        z = (w * w).sum()
        x = torch.tensor([1, 2, 2])
        if bag:
            fn(x, w, torch.tensor([0]), max_norm=0.5)
        else:
            fn(x, w, max_norm=0.5)
        with pytest.raises(RuntimeError, match="modified by an inplace "
                                               "operation"):
            z.backward()


def test_double_backward_is_refused():
    w = torch.randn(V, D, requires_grad=True)
    out = ET.embedding(torch.tensor([1, 2]), w)
    g = torch.ones_like(out, requires_grad=True)
    # The C++ node refuses at create_graph, the Python one (through
    # once_differentiable) when the second backward reaches it.
    with pytest.raises(RuntimeError, match="double backward|"
                                           "once_differentiable"):
        (gw,) = torch.autograd.grad(out, w, g, create_graph=True)
        gw.sum().backward()


def test_backward_twice_needs_retain_graph():
    w = torch.randn(V, D, requires_grad=True)
    out = ET.embedding(torch.tensor([1, 2, 2]), w)
    out.sum().backward(retain_graph=True)
    out.sum().backward()
    assert torch.equal(w.grad[2], torch.full((D,), 4.0))
    out = ET.embedding(torch.tensor([1]), w)
    out.sum().backward()
    with pytest.raises(RuntimeError, match="second time|retain_graph"):
        out.sum().backward()


def test_sparse_grads_with_num_weights_past_2_to_56():
    # The radix sort's pass loop never ended for num_weights >= 2^56 (a
    # shift of 64); the coalesced forms sort, the others must agree.
    grad = np.ones((3, 4), np.float32)
    x = np.array([3, 1, 3])
    for coalesced in (False, True):
        rows, values = emb_mlir.embedding_backward(
            grad, x, 2**56, sparse=True, coalesced=coalesced)
        assert rows.tolist() == ([1, 3] if coalesced else [3, 1, 3])
        assert values.sum() == 12
        rows, values = emb_mlir.embedding_bag_backward(
            grad[:2], x, np.array([0, 1]), 2**62, mode="sum", sparse=True,
            coalesced=coalesced)
        assert rows.tolist() == ([1, 3] if coalesced else [3, 1, 3])
        assert values.sum() == 12
