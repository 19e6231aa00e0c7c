"""torch.compile and torch.export see emb_mlir's operators (torch >= 2.4,
where torch.library has fake kernels): no graph break, the values and
gradients of eager, dynamic batch sizes without recompiling, an exported
program that runs after save / load. Skipped on older torches (Debian's
1.13) and without the C++ operators."""

import io

import pytest
import torch

import emb_mlir
import emb_mlir.torch as ET

pytestmark = [
    pytest.mark.skipif(not hasattr(torch.library, "register_fake"),
                       reason="torch.compile support needs torch >= 2.4"),
    pytest.mark.skipif(ET._ops is None, reason="needs the C++ operators"),
]

V, D = 50, 8


class Model(torch.nn.Module):
    def __init__(self, max_norm=None):
        super().__init__()
        self.tokens = ET.Embedding(V, D, padding_idx=0, max_norm=max_norm)
        self.bags = ET.EmbeddingBag(V, D, mode="sum")
        self.maxes = ET.EmbeddingBag(V, D, mode="max")
        self.roots = ET.EmbeddingBag(V, D, mode="sqrtn")  # semantics §6.1
        self.linear = torch.nn.Linear(D, 1)

    def forward(self, tokens, ids, offsets, psw):
        x = self.tokens(tokens).mean(1)
        x = x + self.bags(ids, offsets, per_sample_weights=psw)
        x = x + self.maxes(ids, offsets)
        x = x + self.roots(ids, offsets, per_sample_weights=psw)
        return self.linear(x).squeeze(1)


def inputs(batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 4, (batch,), generator=g)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64),
                         lengths.cumsum(0)[:-1]])
    n = int(lengths.sum())
    return (torch.randint(0, V, (batch, 5), generator=g),
            torch.randint(0, V, (n,), generator=g), offsets,
            torch.rand(n, generator=g))


def step(model, args):
    model.zero_grad()
    out = model(*args)
    out.square().sum().backward()
    return out.detach(), [p.grad.clone() for p in model.parameters()]


def twins(**kw):
    torch.manual_seed(0)
    eager = Model(**kw)
    compiled = Model(**kw)
    compiled.load_state_dict(eager.state_dict())
    return eager, compiled


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compile_fullgraph_matches_eager(backend):
    torch._dynamo.reset()
    eager, model = twins()
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    for seed in range(2):
        args = inputs(6, seed)
        out, grads = step(eager, args)
        cout, cgrads = step(compiled, args)
        torch.testing.assert_close(cout, out)
        for a, b in zip(cgrads, grads):
            torch.testing.assert_close(a, b)


def test_dynamic_batch_sizes_compile_once():
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    eager, model = twins()
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(model, fullgraph=True, backend=counter,
                             dynamic=True)
    for batch in (3, 5, 11, 17):
        args = inputs(batch, batch)
        out, grads = step(eager, args)
        cout, cgrads = step(compiled, args)
        torch.testing.assert_close(cout, out)
        for a, b in zip(cgrads, grads):
            torch.testing.assert_close(a, b)
    assert counter.frame_count == 1


def test_max_norm_renormalises_the_parameter_under_compile():
    torch._dynamo.reset()
    eager, model = twins(max_norm=0.5)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    args = inputs(4)
    out, _ = step(eager, args)
    cout, _ = step(compiled, args)
    torch.testing.assert_close(cout, out)
    torch.testing.assert_close(model.tokens.weight, eager.tokens.weight)
    assert eager.tokens.weight.norm(dim=1).max() > 0.5  # rows not referenced


def test_export_runs_after_save_and_load():
    torch.manual_seed(0)
    model = Model().eval()
    args = inputs(4)
    batch, n = torch.export.Dim("batch"), torch.export.Dim("n")
    program = torch.export.export(
        model, args,
        dynamic_shapes=({0: batch}, {0: n}, {0: batch}, {0: n}))
    text = str(program.graph_module.code)
    assert "emb_mlir.embedding_bag" in text and "emb_mlir.embedding" in text
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    buffer.seek(0)
    loaded = torch.export.load(buffer)
    for batch_size, seed in ((4, 1), (9, 2)):
        new_args = inputs(batch_size, seed)
        with torch.no_grad():
            torch.testing.assert_close(loaded.module()(*new_args),
                                       model(*new_args))


def _samples():
    w = torch.randn(V, D, requires_grad=True)
    x = torch.randint(0, V, (4, 3))
    ids, offsets = torch.randint(0, V, (7,)), torch.tensor([0, 2, 2, 5])
    psw = torch.rand(7, requires_grad=True)
    g = torch.randn(4, D)
    ops = torch.ops.emb_mlir
    return [
        (ops.embedding.default, (x, w, 0, False, False, "torch")),
        (ops.embedding_bag.default,
         (ids, w, offsets, "sum", psw, False, None, False, False, "torch",
          False)),
        (ops.embedding_bag.default,
         (ids, w, offsets, "max", None, False, None, False, False, "torch",
          True)),
        (ops.embedding_backward.default,
         (torch.randn(4, 3, D), x, V, None, False, "torch")),
        (ops.embedding_bag_backward.default,
         (g, ids, offsets, V, "mean", None, False, None, False, None,
          "torch")),
        (ops.embedding_bag_per_sample_weights_backward.default,
         (g, w.detach(), ids, offsets, "sum", False, None, "torch")),
    ]


@pytest.mark.parametrize("index", range(6))
def test_opcheck(index):
    op, args = _samples()[index]
    torch.library.opcheck(op, args)


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_sparse_gradients_under_compile(backend):
    torch._dynamo.reset()
    padding_idx = None
    x = torch.tensor([[1, 2, 3], [4, 4, 0]])
    for ours_cls, torch_cls, kw in (
            (ET.Embedding, torch.nn.Embedding, {}),
            (ET.EmbeddingBag, torch.nn.EmbeddingBag, {"mode": "sum"})):
        torch.manual_seed(0)
        ours = ours_cls(10, 4, sparse=True, padding_idx=padding_idx, **kw)
        ref = torch_cls(10, 4, sparse=True, padding_idx=padding_idx, **kw)
        ref.load_state_dict(ours.state_dict())
        compiled = torch.compile(ours, fullgraph=True, backend=backend)
        compiled(x).square().sum().backward()
        ref(x).square().sum().backward()
        assert ours.weight.grad.is_sparse
        torch.testing.assert_close(ours.weight.grad.to_dense(),
                                   ref.weight.grad.to_dense())


def test_sparse_gradients_with_padding_under_compile_are_a_clear_error():
    # Padding entries are dropped: a size that depends on the data, which
    # torch.compile cannot give a sparse tensor. Inference still compiles.
    torch._dynamo.reset()
    module = ET.EmbeddingBag(10, 4, sparse=True, padding_idx=0, mode="sum")
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    x = torch.tensor([[1, 2, 0]])
    with pytest.raises(Exception, match="sparse=True with padding_idx is not "
                                        "supported under torch.compile"):
        compiled(x)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), module(x))


def test_vmap_uses_the_per_example_fallback():
    x = torch.tensor([1, 2, 3])
    weights = torch.randn(3, 10, 4)
    out = torch.vmap(lambda w: ET.embedding(x, w))(weights)
    torch.testing.assert_close(out, weights[:, x])


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_quantized_bag_compiles_fullgraph(backend):
    """QuantizedEmbeddingBag's forward is a torch operator with a fake
    kernel: no graph break, eager's values, dynamic bag counts."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    q = ET.QuantizedEmbeddingBag.from_float(
        torch.nn.EmbeddingBag(V, D, mode="sqrtn", padding_idx=0), bits=4)
    compiled = torch.compile(q, fullgraph=True, backend=backend, dynamic=True)
    for batch in (3, 5):
        ids, offsets = inputs(batch)[1:3]
        torch.testing.assert_close(compiled(ids, offsets), q(ids, offsets))


def test_opcheck_quantized_bag():
    packed = emb_mlir.quantize_rows(torch.randn(V, D), 8)
    ids, offsets = torch.tensor([1, 2, 3, 4]), torch.tensor([0, 1, 1])
    torch.library.opcheck(
        torch.ops.emb_mlir.embedding_bag_quantized.default,
        (ids, packed, offsets, "sum", 8, D, torch.rand(4), False, None,
         torch.float32))
