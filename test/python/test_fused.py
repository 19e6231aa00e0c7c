"""The backward fused with the optimizer (docs/semantics.md §6.4):
FusedEmbeddingBag / FusedEmbedding trained for 100 steps against
torch.nn.EmbeddingBag / Embedding(sparse=True) and the matching torch
optimizer (SGD, Adagrad, SparseAdam; row-wise Adagrad against its formula),
state_dict, lr schedules, no .grad, and errors that write nothing."""

import numpy as np
import pytest
import torch

import emb_mlir
import emb_mlir.torch as ET

V, D, B = 60, 8, 12


def batch(step, two_d=False, pad=None):
    """Random bags (some empty) with hot rows, and a target."""
    g = torch.Generator().manual_seed(1000 + step)
    if two_d:
        ids = torch.randint(0, V, (B, 3), generator=g)
        offsets = None
    else:
        lengths = torch.randint(0, 5, (B,), generator=g)
        ids = torch.randint(0, V, (int(lengths.sum()),), generator=g)
        ids[::4] = ids[::4] % 5  # hot rows: repeated within and across bags
        offsets = torch.cat([torch.zeros(1, dtype=torch.int64),
                             lengths.cumsum(0)[:-1]])
    if pad is not None and ids.numel():
        ids.view(-1)[::7] = pad
    return ids, offsets, torch.randn(B, D, generator=g)


def train(module, step_fn, steps, two_d=False, pad=None):
    for step in range(steps):
        ids, offsets, target = batch(step, two_d, pad)
        out = module(ids, offsets)
        ((out - target) ** 2).sum().backward()
        step_fn(step)


def torch_pair(mode, pad, optimizer, lr, weight, **kw):
    ref = torch.nn.EmbeddingBag(V, D, mode=mode, sparse=True, padding_idx=pad,
                                _weight=weight.clone())
    opt = {"sgd": lambda p: torch.optim.SGD(p, lr=lr),
           "adagrad": lambda p: torch.optim.Adagrad(
               p, lr=lr, eps=kw.get("eps", 1e-10),
               initial_accumulator_value=kw.get("init", 0.0)),
           "adam": lambda p: torch.optim.SparseAdam(
               p, lr=lr, betas=kw.get("betas", (0.9, 0.999)),
               eps=kw.get("eps", 1e-8))}[optimizer](ref.parameters())
    return ref, opt


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "adam"])
@pytest.mark.parametrize("mode,pad,two_d", [("sum", None, False),
                                             ("mean", 3, False),
                                             ("sum", None, True)])
def test_100_steps_like_torch_sparse_training(optimizer, mode, pad, two_d):
    torch.manual_seed(0)
    weight = torch.randn(V, D)
    lr = {"sgd": 0.05, "adagrad": 0.1, "adam": 0.01}[optimizer]
    ref, opt = torch_pair(mode, pad, optimizer, lr, weight, init=0.1,
                          betas=(0.8, 0.99))
    fused = ET.FusedEmbeddingBag.from_pretrained(
        weight, mode=mode, padding_idx=pad, optimizer=optimizer, lr=lr,
        initial_accumulator_value=0.1, betas=(0.8, 0.99))

    def torch_step(_):
        opt.step()
        opt.zero_grad()

    train(ref, torch_step, 100, two_d, pad)
    train(fused, lambda _: None, 100, two_d, pad)
    assert fused.weight.grad is None
    torch.testing.assert_close(fused.weight, ref.weight.detach(), rtol=1e-4,
                               atol=1e-4)
    state = opt.state[ref.weight]
    if optimizer == "adagrad":
        torch.testing.assert_close(fused.state_sum, state["sum"], rtol=1e-4,
                                   atol=1e-4)
    if optimizer == "adam":
        torch.testing.assert_close(fused.state_exp_avg, state["exp_avg"],
                                   rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(fused.state_exp_avg_sq,
                                   state["exp_avg_sq"], rtol=1e-4, atol=1e-6)
        assert int(fused.state_step) == 100


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "adam"])
def test_embedding_100_steps_like_torch(optimizer):
    torch.manual_seed(1)
    weight = torch.randn(V, D)
    lr = 0.05
    ref = torch.nn.Embedding(V, D, sparse=True, padding_idx=0,
                             _weight=weight.clone())
    opt = {"sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad,
           "adam": torch.optim.SparseAdam}[optimizer](ref.parameters(), lr=lr)
    fused = ET.FusedEmbedding.from_pretrained(weight, padding_idx=0,
                                              optimizer=optimizer, lr=lr)
    for step in range(100):
        ids, _, _ = batch(step, two_d=True, pad=0)
        target = torch.randn(B, 3, D, generator=torch.Generator().manual_seed(step))
        for m in (ref, fused):
            ((m(ids) - target) ** 2).sum().backward()
        opt.step()
        opt.zero_grad()
    torch.testing.assert_close(fused.weight, ref.weight.detach(), rtol=1e-4,
                               atol=1e-4)


def test_rowwise_adagrad_against_its_formula():
    """h[r] += mean_d((g_r + wd W[r])^2); W[r] -= lr g / (sqrt(h[r]) + eps),
    on the touched rows only; g from torch's dense gradient."""
    torch.manual_seed(2)
    weight = torch.randn(V, D, dtype=torch.float64)
    ref = torch.nn.EmbeddingBag(V, D, mode="mean", padding_idx=1,
                                _weight=weight.clone(), dtype=torch.float64)
    h = torch.zeros(V, dtype=torch.float64)
    lr, eps, wd = 0.1, 1e-8, 0.01
    fused = ET.FusedEmbeddingBag.from_pretrained(
        weight, mode="mean", padding_idx=1, optimizer="rowwise_adagrad",
        lr=lr, eps=eps, weight_decay=wd)
    for step in range(30):
        ids, offsets, target = batch(step, pad=1)
        target = target.double()
        ((ref(ids, offsets) - target) ** 2).sum().backward()
        with torch.no_grad():
            touched = torch.zeros(V, dtype=torch.bool)
            touched[ids[ids != 1]] = True
            w = ref.weight
            g = ref.weight.grad + wd * w
            h[touched] += (g[touched] ** 2).mean(1)
            w[touched] -= lr * g[touched] / (h[touched].sqrt() + eps)[:, None]
            ref.weight.grad = None
        ((fused(ids, offsets) - target) ** 2).sum().backward()
    torch.testing.assert_close(fused.weight, ref.weight.detach(), rtol=1e-10,
                               atol=1e-10)
    torch.testing.assert_close(fused.state_sum, h, rtol=1e-10, atol=1e-10)


def test_max_mode_follows_the_argmax():
    """Mode max: the rows the forward chose get the gradient (torch has no
    sparse max bag: its dense gradient and SGD, which leaves the others)."""
    torch.manual_seed(3)
    weight = torch.randn(V, D)
    ref = torch.nn.EmbeddingBag(V, D, mode="max", _weight=weight.clone())
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    fused = ET.FusedEmbeddingBag.from_pretrained(weight, mode="max",
                                                 optimizer="sgd", lr=0.1)

    def torch_step(_):
        opt.step()
        opt.zero_grad()

    train(ref, torch_step, 20)
    train(fused, lambda _: None, 20)
    torch.testing.assert_close(fused.weight, ref.weight.detach(), rtol=1e-5,
                               atol=1e-5)


def test_state_dict_resumes_training_exactly():
    a = ET.FusedEmbeddingBag(V, D, mode="sum", optimizer="adam", lr=0.01)
    train(a, lambda _: None, 5)
    b = ET.FusedEmbeddingBag(V, D, mode="sum", optimizer="adam", lr=0.01)
    b.load_state_dict(a.state_dict())
    assert int(b.state_step) == 5
    for m in (a, b):
        for step in range(5, 10):
            ids, offsets, target = batch(step)
            ((m(ids, offsets) - target) ** 2).sum().backward()
    assert torch.equal(a.weight, b.weight)
    assert torch.equal(a.state_exp_avg_sq, b.state_exp_avg_sq)


def test_lr_changes_between_steps_like_a_torch_schedule():
    torch.manual_seed(4)
    weight = torch.randn(V, D)
    ref, opt = torch_pair("sum", None, "adagrad", 0.1, weight)
    fused = ET.FusedEmbeddingBag.from_pretrained(weight, mode="sum",
                                                 optimizer="adagrad", lr=0.1)

    def torch_step(step):
        opt.step()
        opt.zero_grad()
        opt.param_groups[0]["lr"] = 0.1 / (step + 2)

    def fused_step(step):
        fused.lr = 0.1 / (step + 2)

    train(ref, torch_step, 10)
    train(fused, fused_step, 10)
    torch.testing.assert_close(fused.weight, ref.weight.detach(), rtol=1e-5,
                               atol=1e-5)


def test_no_grad_and_nothing_for_torch_optimizers():
    m = ET.FusedEmbeddingBag(V, D, mode="sum")
    assert not m.weight.requires_grad
    assert [n for n, _ in m.named_parameters()] == ["weight"]
    w0 = m.weight.clone()
    with torch.no_grad():
        m(torch.tensor([1, 2]), torch.tensor([0]))
    assert torch.equal(m.weight, w0)
    out = m(torch.tensor([1, 2]), torch.tensor([0]))
    out.sum().backward()
    assert m.weight.grad is None and not torch.equal(m.weight, w0)
    assert torch.equal(m.weight[3:], w0[3:])


def test_per_sample_weights_get_their_gradient_before_the_step():
    torch.manual_seed(5)
    weight = torch.randn(V, D)
    ids = torch.tensor([1, 2, 2, 7])
    offsets = torch.tensor([0, 2])
    psw = torch.rand(4, requires_grad=True)
    psw_ref = psw.detach().clone().requires_grad_()
    m = ET.FusedEmbeddingBag.from_pretrained(weight, mode="sum",
                                             optimizer="sgd", lr=0.1)
    m(ids, offsets, psw).sum().backward()
    torch.nn.functional.embedding_bag(
        ids, weight.clone().requires_grad_(), offsets, mode="sum",
        per_sample_weights=psw_ref).sum().backward()
    torch.testing.assert_close(psw.grad, psw_ref.grad)


def test_bad_hyper_parameters_are_errors_that_write_nothing():
    with pytest.raises(ValueError, match="optimizer must be"):
        ET.FusedEmbeddingBag(V, D, optimizer="lamb")
    with pytest.raises(ValueError, match="'lr' must be a finite"):
        ET.FusedEmbeddingBag(V, D, optimizer="adagrad", lr=-1.0)
    m = ET.FusedEmbeddingBag(V, D, mode="sum", optimizer="adagrad")
    m.lr = -1.0
    w0 = m.weight.clone()
    out = m(torch.tensor([1, 2]), torch.tensor([0]))
    with pytest.raises(ValueError, match="'lr' must be a finite non-negative"):
        out.sum().backward()
    assert torch.equal(m.weight, w0)
    assert torch.equal(m.state_sum, torch.zeros(V, D))


def test_numpy_functional_step_and_state_errors():
    w = np.ones((10, 4), np.float32)
    states = emb_mlir.init_states(w, "rowwise_adagrad")
    assert states[0].shape == (10,) and states[0].dtype == np.float32
    emb_mlir.embedding_bag_update(np.ones((2, 4), np.float32),
                                  np.array([1, 2, 2, 3]), np.array([0, 2]), w,
                                  states, "rowwise_adagrad", lr=0.1,
                                  mode="sum")
    np.testing.assert_allclose(states[0][:4], [0, 1, 4, 1])
    np.testing.assert_allclose(w[2], 0.9, rtol=1e-6)
    before = w.copy()
    with pytest.raises(emb_mlir.EmbValueError, match="'sum' must be"):
        emb_mlir.embedding_update(np.ones((1, 4), np.float32), np.array([1]),
                                  w, [np.zeros((10, 4), np.float32)],
                                  "rowwise_adagrad")
    with pytest.raises(emb_mlir.EmbValueError, match="keeps 2 state"):
        emb_mlir.embedding_update(np.ones((1, 4), np.float32), np.array([1]),
                                  w, [], "adam")
    np.testing.assert_array_equal(w, before)


@pytest.mark.parametrize("optimizer", ["sgd", "rowwise_adagrad", "adam"])
@pytest.mark.parametrize("second", ["max", "sqrtn"])
def test_collection_steps_like_one_fused_bag_per_table(optimizer, second):
    """FusedEmbeddingBagCollection (one forward call for every table; the
    step of every table in one call, or with a max table table by table)
    against one FusedEmbeddingBag per table: the same bits."""
    tables = [(40, 8, "sum", None), (30, 4, second, None), (20, 6, "mean", 2)]
    bags = [torch.nn.EmbeddingBag(v, d, mode=m, padding_idx=p)
            for v, d, m, p in tables]
    coll = ET.FusedEmbeddingBagCollection.from_modules(
        bags, optimizer=optimizer, lr=0.05)
    singles = [ET.FusedEmbeddingBag.from_pretrained(
        b.weight, mode=b.mode, padding_idx=b.padding_idx,
        include_last_offset=True, optimizer=optimizer, lr=0.05)
        for b in bags]
    g = torch.Generator().manual_seed(9)
    for step in range(5):
        values, offsets = [], [0]
        for v, *_ in tables:
            for _ in range(B):
                n = int(torch.randint(0, 4, (1,), generator=g))
                values.append(torch.randint(0, v, (n,), generator=g))
                offsets.append(offsets[-1] + n)
        values, offsets = torch.cat(values), torch.tensor(offsets)
        target = torch.randn(B, 18, generator=g)
        ((coll(values, offsets) - target) ** 2).sum().backward()
        column = 0
        for t, (single, (v, d, *_)) in enumerate(zip(singles, tables)):
            lo, hi = int(offsets[t * B]), int(offsets[(t + 1) * B])
            off = offsets[t * B:(t + 1) * B + 1] - lo
            out = single(values[lo:hi], off)
            ((out - target[:, column:column + d]) ** 2).sum().backward()
            column += d
    for view, single in zip(coll.table_weights(), singles):
        assert torch.equal(view, single.weight)
    assert coll.weight.grad is None
    keys = set(coll.state_dict())
    assert "weight" in keys and all(
        k.startswith("state_") for k in keys - {"weight"})


@pytest.mark.parametrize("optimizer", ["sgd", "rowwise_adagrad", "adam"])
def test_collection_steps_a_sequence_table_like_a_fused_embedding(optimizer):
    """A sequence table (mode none, L = 3, §6.3) in one fused step with a
    pooled table, against a FusedEmbedding over its [B, L] indices (its
    padding row stays zero, so the padding entries' zeros agree)."""
    L = 3
    coll = ET.FusedEmbeddingBagCollection(
        [(40, 8, "sum", None), (30, 4, "none", 0, L)], optimizer=optimizer,
        lr=0.05)
    first, second = coll.table_weights()
    bag = ET.FusedEmbeddingBag.from_pretrained(
        first, mode="sum", include_last_offset=True, optimizer=optimizer,
        lr=0.05)
    seq = ET.FusedEmbedding.from_pretrained(second, padding_idx=0,
                                            optimizer=optimizer, lr=0.05)
    g = torch.Generator().manual_seed(4)
    for step in range(4):
        lengths = torch.randint(0, 4, (B,), generator=g)
        pooled = torch.randint(0, 40, (int(lengths.sum()),), generator=g)
        sequence = torch.randint(0, 30, (B * L,), generator=g)
        values = torch.cat([pooled, sequence])
        offsets = torch.cat([torch.zeros(1, dtype=torch.int64),
                             lengths.cumsum(0),
                             lengths.sum() + L * torch.arange(1, B + 1)])
        target = torch.randn(B, 8 + L * 4, generator=g)
        out = coll(values, offsets)
        assert out.shape == (B, 8 + L * 4)
        ((out - target) ** 2).sum().backward()
        ((bag(pooled, offsets[:B + 1]) - target[:, :8]) ** 2).sum().backward()
        ((seq(sequence.view(B, L)).reshape(B, -1) - target[:, 8:]) ** 2
         ).sum().backward()
    first, second = coll.table_weights()
    torch.testing.assert_close(first, bag.weight, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(second, seq.weight, rtol=1e-6, atol=1e-6)
    assert not second[0].any()


def test_a_failed_adam_step_moves_nothing_not_even_the_counter():
    with pytest.raises(ValueError, match="'betas' must be two numbers"):
        ET.FusedEmbeddingBag(V, D, optimizer="adam", betas=(0.9, 1.0))
    m = ET.FusedEmbeddingBag(V, D, mode="sum", optimizer="adam")
    m.betas = (0.9, 1.0)  # as a schedule could set it
    w0 = m.weight.clone()
    out = m(torch.tensor([1, 2]), torch.tensor([0]))
    with pytest.raises(ValueError, match="'beta2' must be in"):
        out.sum().backward()
    assert int(m.state_step) == 0 and torch.equal(m.weight, w0)
    m.betas = (0.9, 0.999)
    m(torch.tensor([1, 2]), torch.tensor([0])).sum().backward()
    assert int(m.state_step) == 1


def test_half_module_keeps_f32_states_and_steps():
    m = ET.FusedEmbeddingBag(V, D, mode="sum", optimizer="adagrad").half()
    assert m.weight.dtype == torch.float16
    assert m.state_sum.dtype == torch.float32
    w0 = m.weight.clone()
    m(torch.tensor([1, 2]), torch.tensor([0])).float().sum().backward()
    assert not torch.equal(m.weight, w0)
    assert m.state_sum[1].sum() > 0


def test_the_step_is_an_in_place_write_autograd_sees():
    """The weight's version moves: a graph that saved the weight (weight
    tying) raises instead of using the updated table."""
    m = ET.FusedEmbeddingBag(V, D, mode="sum", optimizer="sgd")
    version = m.weight._version
    m(torch.tensor([1, 2]), torch.tensor([0])).sum().backward()
    assert m.weight._version > version


@pytest.mark.skipif(not hasattr(torch, "compile") or
                    not hasattr(torch.library, "register_fake"),
                    reason="torch.compile needs torch >= 2.4 here")
def test_torch_compile_runs_the_step_eagerly(recwarn):
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bag = ET.FusedEmbeddingBag(V, D, mode="sum", optimizer="adam",
                                            lr=0.1)
            self.head = torch.nn.Linear(D, 1)

        def forward(self, ids, offsets):
            return self.head(self.bag(ids, offsets)).sum()

    model = Model()
    compiled = torch.compile(model)
    w0 = model.bag.weight.clone()
    for _ in range(3):
        compiled(torch.tensor([1, 2, 3]), torch.tensor([0, 1])).backward()
    assert int(model.bag.state_step) == 3
    assert not torch.equal(model.bag.weight, w0)
    assert model.head.weight.grad is not None
    assert not [w for w in recwarn if "does not know how to trace"
                in str(w.message)]
