"""Where a drop-in must behave as torch does beyond the numbers: memory the
gradients own, lazy negative / conjugate views, undefined incoming
gradients, exception classes, when an option combination fails, forward
mode AD, torch.jit.trace and torch.fx. Each test failed before its fix
(issue 14, items 1-6); they run on both autograd paths (the C++ operators
and, with EMB_MLIR_PURE_PYTHON=1, the pure-Python fallback)."""

import numpy as np
import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as TF

import emb_mlir
import emb_mlir.torch as ET

V, D = 10, 4
CPP = ET._ops is not None


def leaf():
    return torch.randn(V, D, dtype=torch.float64).requires_grad_()


# 1. The sparse gradient owns its indices -------------------------------------

@pytest.mark.parametrize("fn", ["embedding", "embedding_bag"])
def test_sparse_gradient_does_not_share_the_input_buffer(fn):
    x = torch.tensor([1, 2, 3, 2], dtype=torch.int64)
    w = leaf()
    if fn == "embedding":
        ET.embedding(x, w, sparse=True).sum().backward()
    else:
        ET.embedding_bag(x, w, torch.tensor([0, 2]), mode="sum",
                         sparse=True).sum().backward()
    before = w.grad.coalesce().to_dense().clone()
    x.fill_(7)  # the caller refills its buffer for the next step
    assert torch.equal(w.grad.coalesce().to_dense(), before)


# 2. Negative and conjugate bits are resolved ---------------------------------

def test_negative_views_are_read_as_their_values():
    x = torch.tensor([[1, 2], [3, 1]])
    w = torch.randn(V, D)
    neg = torch._neg_view(w)
    assert neg.is_neg()
    torch.testing.assert_close(ET.embedding(x, neg), -w[x])
    torch.testing.assert_close(emb_mlir.embedding(x, neg), -w[x])
    psw = torch.rand(4)
    flat = x.reshape(-1)
    offsets = torch.tensor([0, 2])
    expected = TF.embedding_bag(flat, w, offsets, mode="sum",
                                per_sample_weights=-psw)
    torch.testing.assert_close(
        ET.embedding_bag(flat, w, offsets, mode="sum",
                         per_sample_weights=torch._neg_view(psw)), expected)
    # An incoming gradient with the bit.
    wg = w.clone().requires_grad_()
    g = torch.randn(2, 2, D)
    ET.embedding(x, wg).backward(torch._neg_view(g))
    ref = w.clone().requires_grad_()
    TF.embedding(x, ref).backward(-g)
    torch.testing.assert_close(wg.grad, ref.grad)


# 3. An undefined incoming gradient is zero ------------------------------------

class _DropGradient(torch.autograd.Function):
    """A downstream op whose backward returns None (gradcheck does this)."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return None


@pytest.mark.parametrize("fn", ["embedding", "embedding_bag"])
def test_an_undefined_incoming_gradient_gives_no_weight_gradient(fn):
    x = torch.tensor([[1, 2], [3, 4]])
    w = leaf()
    out = ET.embedding(x, w) if fn == "embedding" else \
        ET.embedding_bag(x, w, mode="sum")
    (_DropGradient.apply(out).sum() + w.sum()).backward()
    torch.testing.assert_close(w.grad, torch.ones(V, D, dtype=w.dtype))


# 4. Exceptions are torch's class (RuntimeError) and the precise one -----------

def test_errors_are_runtime_errors_of_their_kind():
    w = torch.randn(V, D)
    calls = [
        (IndexError, lambda: ET.embedding(torch.tensor([V]), w)),
        (IndexError, lambda: emb_mlir.embedding(np.array([V]), w.numpy())),
        (ValueError, lambda: ET.embedding_bag(torch.tensor([1]), w,
                                              torch.tensor([1]))),
        (ValueError, lambda: ET.embedding_bag(torch.tensor([1]), w,
                                              torch.tensor([0]), mode="x")),
        (TypeError, lambda: ET.embedding(torch.tensor([1.0]), w)),
        (TypeError, lambda: emb_mlir.embedding(np.array([1]),
                                               np.ones((V, D), np.int8))),
    ]
    for kind, call in calls:
        with pytest.raises(RuntimeError) as info:
            call()
        assert isinstance(info.value, kind), info.value
        assert isinstance(info.value, emb_mlir.EmbError), info.value


# 5. scale_grad_by_freq with sparse fails in the backward, as torch ------------

@pytest.mark.parametrize("fn", ["embedding", "embedding_bag"])
def test_scale_grad_by_freq_with_sparse_fails_in_the_backward_only(fn):
    x = torch.tensor([1, 2, 2])
    w = leaf()
    call = (lambda: ET.embedding(x, w, scale_grad_by_freq=True, sparse=True)) \
        if fn == "embedding" else \
        (lambda: ET.embedding_bag(x, w, torch.tensor([0, 1]), mode="sum",
                                  scale_grad_by_freq=True, sparse=True))
    with torch.no_grad():
        call()  # an eval forward of such a module runs
    out = call()
    with pytest.raises(RuntimeError, match="'scale_grad_by_freq' is not "
                                           "supported with sparse gradients"):
        out.sum().backward()
    module = ET.Embedding(V, D, scale_grad_by_freq=True, sparse=True).eval()
    with torch.no_grad():
        assert module(x).shape == (3, D)


# 6. Forward-mode AD, torch.jit.trace, torch.fx --------------------------------

@pytest.mark.skipif(not CPP, reason="the pure-Python path has no jvp")
@pytest.mark.parametrize("mode", ["embedding", "sum", "mean", "max", "psw"])
def test_forward_mode_ad_carries_the_tangent(mode):
    x = torch.tensor([1, 2, 2, 5, 0, 9])
    offsets = torch.tensor([0, 2, 2, 4])
    w = torch.randn(V, D, dtype=torch.float64)
    tw = torch.randn(V, D, dtype=torch.float64)
    psw = torch.rand(6, dtype=torch.float64)
    tpsw = torch.randn(6, dtype=torch.float64)

    def run(wd, pd):
        if mode == "embedding":
            return ET.embedding(x, wd, padding_idx=2)
        if mode == "psw":
            return ET.embedding_bag(x, wd, offsets, mode="sum",
                                    per_sample_weights=pd)
        return ET.embedding_bag(x, wd, offsets, mode=mode, padding_idx=2)

    with fwAD.dual_level():
        out = run(fwAD.make_dual(w, tw), fwAD.make_dual(psw, tpsw))
        tangent = fwAD.unpack_dual(out).tangent
    assert tangent is not None
    # Every mode is (piecewise) linear: a central difference is the
    # directional derivative (torch 1.13 has no forward AD for bags).
    eps = 1e-6
    expected = (run(w + eps * tw, psw + eps * tpsw) -
                run(w - eps * tw, psw - eps * tpsw)) / (2 * eps)
    torch.testing.assert_close(tangent, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(CPP, reason="the C++ operators carry tangents")
def test_forward_mode_ad_without_the_operators_is_a_clear_error():
    with fwAD.dual_level():
        dual = fwAD.make_dual(torch.randn(V, D), torch.randn(V, D))
        with pytest.raises(RuntimeError, match="jvp"):
            ET.embedding(torch.tensor([1]), dual)


class _Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.tokens = ET.Embedding(V, D, padding_idx=0)
        self.bags = ET.EmbeddingBag(V, D, mode="sum")
        self.linear = torch.nn.Linear(D, 1)

    def forward(self, x, ids, offsets):
        return self.linear(self.tokens(x).mean(1) + self.bags(ids, offsets))


def _inputs(seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, V, (3, 5), generator=g),
            torch.randint(0, V, (7,), generator=g), torch.tensor([0, 2, 2]))


@pytest.mark.skipif(not CPP, reason="tracing records the C++ operators")
def test_jit_trace_records_the_operators():
    model = _Model()
    with torch.no_grad():
        traced = torch.jit.trace(model, _inputs(0))
    graph = str(traced.inlined_graph)
    assert "emb_mlir::embedding_bag" in graph and "emb_mlir::embedding" in graph
    for seed in (1, 2):
        args = _inputs(seed)
        torch.testing.assert_close(traced(*args), model(*args))


def test_fx_symbolic_trace_keeps_the_calls():
    model = _Model()
    graph_module = torch.fx.symbolic_trace(model)
    targets = {getattr(n.target, "__name__", str(n.target))
               for n in graph_module.graph.nodes if n.op == "call_function"}
    assert {"embedding", "embedding_bag"} <= targets
    args = _inputs(3)
    torch.testing.assert_close(graph_module(*args), model(*args))
