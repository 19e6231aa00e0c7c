"""One thread pool in a torch process (issue 19): the torch operators run
their parallel work on torch's intra-op pool (at::parallel_for), numpy
calls on the engine's own; the bits do not depend on either."""

import numpy as np
import pytest
import torch

import emb_mlir
import emb_mlir.torch as ET

CPP = ET._ops is not None


def _exports_parallel_for():
    """torch >= 2.10 exports torch_parallel_for (its stable C shim)."""
    import ctypes
    import os
    lib = os.path.join(os.path.dirname(torch.__file__), "lib",
                       "libtorch_cpu.so")
    try:
        return hasattr(ctypes.CDLL(lib), "torch_parallel_for")
    except OSError:
        return False


@pytest.mark.skipif(not CPP, reason="needs the C++ operators")
def test_torch_calls_run_on_torchs_pool():
    info = emb_mlir.info()
    expected = "at::parallel_for" if _exports_parallel_for() else \
        "the engine's own pool"
    assert info["torch_executor"].startswith(expected), info
    assert info["threads"] >= 1  # numpy calls: the engine's own pool


def _bag_and_grad(x, offsets, weight, g):
    w = weight.clone().requires_grad_()
    out = ET.embedding_bag(x, w, offsets, mode="sum")
    out.backward(g)
    plain = emb_mlir.embedding_bag(x, weight, offsets, mode="sum")
    return out.detach(), w.grad, plain


def test_bits_do_not_depend_on_torchs_thread_count():
    gen = torch.Generator().manual_seed(0)
    V, D, B = 20000, 32, 60000
    weight = torch.randn(V, D, generator=gen)
    x = torch.randint(0, V, (B,), generator=gen)
    x[::2] = x[::2] % 5  # hot rows: long runs in the gradient
    offsets = torch.arange(B)
    g = torch.randn(B, D, generator=gen)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _bag_and_grad(x, offsets, weight, g)
        torch.set_num_threads(max(threads, 2))
        many = _bag_and_grad(x, offsets, weight, g)
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(one, many):
        assert torch.equal(a, b)
    np_out = emb_mlir.embedding_bag(x.numpy(), weight.numpy(), offsets.numpy(),
                                    mode="sum")
    assert np.array_equal(np_out, one[0].numpy())
