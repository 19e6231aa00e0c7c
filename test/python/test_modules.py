"""The nn.Module drop-ins: same parameters, state_dict and from_pretrained
as torch's, and the same loss curve in a small training loop."""

import pytest
import torch

import emb_mlir.torch as ET


def train(model_cls, seed, steps=25, **kwargs):
    """A bag model trained with SGD (dense or sparse gradients); returns
    the loss of every step."""
    torch.manual_seed(seed)
    emb = model_cls(200, 16, **kwargs)
    head = torch.nn.Linear(16, 1)
    params = list(emb.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.05)
    gen = torch.Generator().manual_seed(seed + 1)
    losses = []
    for _ in range(steps):
        ids = torch.randint(0, 200, (32, 6), generator=gen)
        target = (ids.float().mean(1, keepdim=True) / 200)
        if issubclass(model_cls, torch.nn.EmbeddingBag):
            feats = emb(ids)
        else:
            feats = emb(ids).mean(1)
        loss = torch.nn.functional.mse_loss(head(feats), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("kwargs", [
    dict(mode="sum"), dict(mode="mean", sparse=True), dict(mode="max"),
    dict(mode="mean", padding_idx=0, max_norm=1.0),
])
def test_embedding_bag_training_matches_torch(kwargs):
    ours = train(ET.EmbeddingBag, 5, **kwargs)
    expected = train(torch.nn.EmbeddingBag, 5, **kwargs)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kwargs", [
    dict(), dict(sparse=True), dict(padding_idx=3, scale_grad_by_freq=True),
    dict(max_norm=0.5),
])
def test_embedding_training_matches_torch(kwargs):
    ours = train(ET.Embedding, 9, **kwargs)
    expected = train(torch.nn.Embedding, 9, **kwargs)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-6)


def test_modules_are_torch_modules_with_torch_state():
    torch.manual_seed(0)
    ours = ET.Embedding(30, 8, padding_idx=2)
    torch.manual_seed(0)
    theirs = torch.nn.Embedding(30, 8, padding_idx=2)
    assert isinstance(ours, torch.nn.Embedding)
    assert torch.equal(ours.weight, theirs.weight)  # same init, zero pad row
    theirs.load_state_dict(ours.state_dict())
    assert "profile='torch'" in repr(ours)
    bag = ET.EmbeddingBag(30, 8, mode="sum", include_last_offset=True)
    assert isinstance(bag, torch.nn.EmbeddingBag)
    x, offsets = torch.tensor([1, 2, 3]), torch.tensor([0, 1, 3])
    torch.testing.assert_close(
        bag(x, offsets),
        torch.nn.functional.embedding_bag(x, bag.weight, offsets, mode="sum",
                                          include_last_offset=True))


def test_from_pretrained():
    table = torch.randn(12, 5)
    emb = ET.Embedding.from_pretrained(table, padding_idx=1,
                                       profile="zero-padding")
    assert isinstance(emb, ET.Embedding) and not emb.weight.requires_grad
    out = emb(torch.tensor([0, 1]))
    torch.testing.assert_close(out[0], table[0])
    assert (out[1] == 0).all()  # the zero-padding profile
    bag = ET.EmbeddingBag.from_pretrained(table, freeze=False, mode="max")
    assert isinstance(bag, ET.EmbeddingBag) and bag.weight.requires_grad
    x = torch.tensor([[0, 3], [4, 4]])
    torch.testing.assert_close(bag(x), table[x].max(1).values)
    with pytest.raises(ValueError, match="2-dimensional"):
        ET.Embedding.from_pretrained(torch.randn(3))


def test_per_sample_weights_through_the_module():
    bag = ET.EmbeddingBag(20, 4, mode="sum")
    ref = torch.nn.EmbeddingBag(20, 4, mode="sum")
    ref.load_state_dict(bag.state_dict())
    x, offsets = torch.tensor([1, 5, 5, 7]), torch.tensor([0, 3])
    psw = torch.rand(4, requires_grad=True)
    psw_ref = psw.detach().clone().requires_grad_()
    bag(x, offsets, psw).pow(2).sum().backward()
    ref(x, offsets, psw_ref).pow(2).sum().backward()
    torch.testing.assert_close(psw.grad, psw_ref.grad)
    torch.testing.assert_close(bag.weight.grad, ref.weight.grad)


def test_the_cpp_autograd_ops_are_used_when_built():
    import os
    if os.environ.get("EMB_MLIR_PURE_PYTHON"):
        assert ET._ops is None
    elif os.environ.get("EMB_MLIR_EXPECT_TORCH_OPS"):
        assert ET._ops is not None, "emb_mlir._emb_torch did not load"
    w = torch.randn(10, 4, requires_grad=True)
    out = ET.embedding(torch.tensor([1, 2]), w)
    expected = "EmbeddingMlirBackward" if ET._ops else "_EmbeddingBackward"
    assert expected in out.grad_fn.name()
