"""Forward differential tests: emb_mlir against torch 1.13, every option."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import emb_mlir
from conftest import FLOATS, INDEX, assert_close, oracle_dtype, random_bags

V, D = 50, 24


def table(dtype, v=V, d=D):
    return torch.randn(v, d, dtype=torch.float64).to(dtype)


@pytest.mark.parametrize("dtype", FLOATS.values(), ids=FLOATS.keys())
@pytest.mark.parametrize("itype", INDEX.values(), ids=INDEX.keys())
@pytest.mark.parametrize("padding_idx", [None, 3, -2])
def test_embedding(dtype, itype, padding_idx):
    w = table(dtype)
    x = torch.randint(0, V, (4, 5), dtype=itype)
    x[0, 0] = (padding_idx or 0) % V
    ours = emb_mlir.embedding(x, w, padding_idx)
    expected = TF.embedding(x.long(), w.to(oracle_dtype(dtype)), padding_idx)
    assert ours.dtype == dtype
    assert_close(ours, expected, dtype)


@pytest.mark.parametrize("shape", [(), (7,), (2, 3, 4)])
def test_embedding_any_rank_numpy(shape, rng):
    w = rng.standard_normal((V, D)).astype(np.float32)
    x = rng.integers(0, V, size=shape)
    ours = emb_mlir.embedding(x, w)
    assert isinstance(ours, np.ndarray) and ours.shape == shape + (D,)
    np.testing.assert_array_equal(ours, w[x])


def test_numpy_scalar_index_gives_one_row(rng):
    w = rng.standard_normal((V, D)).astype(np.float32)
    for scalar in (np.int64(3), 3, np.array(3)):
        out = emb_mlir.embedding(scalar, w)
        assert out.shape == (D,)
        np.testing.assert_array_equal(out, w[3])


def test_embedding_zero_padding_profile():
    w = table(torch.float32)
    x = torch.tensor([[1, 4, 4], [0, 2, 4]])
    ours = emb_mlir.embedding(x, w, padding_idx=4, profile="zero-padding")
    expected = TF.embedding(x, w)
    expected[x == 4] = 0
    assert_close(ours, expected)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.5, float("inf")])
@pytest.mark.parametrize("numpy", [False, True])
def test_embedding_max_norm_renormalises_in_place(norm_type, numpy):
    w = table(torch.float32) * 3
    x = torch.tensor([[1, 7, 7], [3, 1, 9]])
    w_ref = w.clone()
    expected = TF.embedding(x, w_ref, max_norm=1.5, norm_type=norm_type)
    if numpy:
        w_np = w.numpy()
        ours = emb_mlir.embedding(x.numpy(), w_np, max_norm=1.5,
                                  norm_type=norm_type)
        assert isinstance(ours, np.ndarray)
    else:
        ours = emb_mlir.embedding(x, w, max_norm=1.5, norm_type=norm_type)
    assert_close(ours, expected)
    assert_close(w, w_ref)  # the weight itself was renormalised


def test_max_norm_on_a_non_contiguous_weight_writes_back():
    base = table(torch.float32) * 3
    w = base.t().contiguous().t()  # column-major: not contiguous
    assert not w.is_contiguous()
    x = torch.tensor([2, 5])
    ref = base.clone()
    expected = TF.embedding(x, ref, max_norm=1.0)
    ours = emb_mlir.embedding(x, w, max_norm=1.0)
    assert_close(ours, expected)
    assert_close(w, ref)


def test_non_contiguous_inputs_are_copied(rng):
    w = rng.standard_normal((V, 2 * D)).astype(np.float32)[:, ::2]
    x = rng.integers(0, V, size=(6, 4))[:, ::2]
    np.testing.assert_array_equal(emb_mlir.embedding(x, w), w[x])


BAG_FORMS = ["offsets", "offsets_last", "2d"]


@pytest.mark.parametrize("dtype", FLOATS.values(), ids=FLOATS.keys())
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("form", BAG_FORMS)
@pytest.mark.parametrize("padding_idx", [None, 2])
def test_embedding_bag(dtype, mode, form, padding_idx, rng):
    w = table(dtype)
    if form == "2d":
        x = torch.from_numpy(rng.integers(0, V, size=(6, 4)))
        offsets = None
    else:
        x = torch.from_numpy(rng.integers(0, V, size=20))
        offsets = torch.from_numpy(random_bags(rng, 20, 7))
        if form == "offsets_last":
            offsets = torch.cat([offsets, torch.tensor([20])])
    x.view(-1)[::3] = 2  # padding entries, and all-padding bags
    last = form == "offsets_last"
    ours = emb_mlir.embedding_bag(x, w, offsets, mode=mode,
                                  include_last_offset=last,
                                  padding_idx=padding_idx)
    expected = TF.embedding_bag(x, w.to(oracle_dtype(dtype)), offsets,
                                mode=mode, include_last_offset=last,
                                padding_idx=padding_idx)
    assert ours.dtype == dtype
    assert_close(ours, expected, dtype)


@pytest.mark.parametrize("dtype", FLOATS.values(), ids=FLOATS.keys())
@pytest.mark.parametrize("form", BAG_FORMS)
def test_embedding_bag_per_sample_weights(dtype, form, rng):
    w = table(dtype)
    if form == "2d":
        x, offsets = torch.from_numpy(rng.integers(0, V, size=(5, 3))), None
    else:
        x = torch.from_numpy(rng.integers(0, V, size=15))
        offsets = torch.from_numpy(random_bags(rng, 15, 4))
        if form == "offsets_last":
            offsets = torch.cat([offsets, torch.tensor([15])])
    psw = torch.randn(x.shape, dtype=torch.float64).to(dtype)
    last = form == "offsets_last"
    ours = emb_mlir.embedding_bag(x, w, offsets, mode="sum",
                                  per_sample_weights=psw,
                                  include_last_offset=last, padding_idx=0)
    od = oracle_dtype(dtype)
    expected = TF.embedding_bag(x, w.to(od), offsets, mode="sum",
                                per_sample_weights=psw.to(od),
                                include_last_offset=last, padding_idx=0)
    assert_close(ours, expected, dtype)


@pytest.mark.parametrize("itype", INDEX.values(), ids=INDEX.keys())
@pytest.mark.parametrize("otype", INDEX.values(), ids=INDEX.keys())
def test_embedding_bag_index_and_offset_types(itype, otype, rng):
    w = table(torch.float32)
    x = torch.from_numpy(rng.integers(0, V, size=12)).to(itype)
    offsets = torch.tensor([0, 4, 4, 9], dtype=otype)
    ours = emb_mlir.embedding_bag(x, w, offsets, mode="mean")
    expected = TF.embedding_bag(x.long(), w, offsets.long(), mode="mean")
    assert_close(ours, expected)


def test_embedding_bag_max_norm(rng):
    w = table(torch.float32) * 4
    x = torch.from_numpy(rng.integers(0, V, size=10))
    offsets = torch.tensor([0, 5])
    ref = w.clone()
    expected = TF.embedding_bag(x, ref, offsets, max_norm=2.0, mode="sum")
    ours = emb_mlir.embedding_bag(x, w, offsets, max_norm=2.0, mode="sum")
    assert_close(ours, expected)
    assert_close(w, ref)


def test_max_indices_of_empty_bags_are_minus_one():
    # Semantics §3 (PyTorch 1.13 differs): empty and all-padding bags give
    # zero rows and max_indices -1.
    w = table(torch.float32)
    x = torch.tensor([3, 5, 5, 1])
    offsets = torch.tensor([0, 0, 2, 3])
    out, argmax = emb_mlir.embedding_bag(x, w, offsets, mode="max",
                                         padding_idx=5,
                                         return_max_indices=True)
    assert (out[0] == 0).all() and (argmax[0] == -1).all()  # empty
    assert (out[2] == 0).all() and (argmax[2] == -1).all()  # all padding
    assert_close(out[1], w[3])
    assert (argmax[1] == 3).all()
    assert_close(out[3], w[1])


def test_embedding_bag_numpy_in_numpy_out(rng):
    w = rng.standard_normal((V, D))
    x = rng.integers(0, V, size=9).astype(np.int32)
    offsets = np.array([0, 2, 7])
    ours = emb_mlir.embedding_bag(x, w, offsets, mode="sum")
    assert isinstance(ours, np.ndarray) and ours.dtype == np.float64
    expected = np.stack([w[x[0:2]].sum(0), w[x[2:7]].sum(0), w[x[7:]].sum(0)])
    np.testing.assert_allclose(ours, expected, rtol=1e-12)


def test_kernels_are_cached_per_shape():
    w = table(torch.float32)
    x = torch.tensor([[1, 2], [3, 4]])
    emb_mlir.embedding_bag(x, w, mode="sum")
    before = emb_mlir.info()
    for _ in range(5):
        emb_mlir.embedding_bag(x, w, mode="sum")
    after = emb_mlir.info()
    assert after["compiles"] == before["compiles"]
    assert after["disk_hits"] == before["disk_hits"]
    assert after["memory_hits"] >= before["memory_hits"] + 5


def test_kernels_past_the_bound_are_unloaded_and_reloaded():
    x = torch.tensor([[1, 2], [3, 4]])
    tables = {d: table(torch.float32, d=d) for d in (3, 5, 7)}
    emb_mlir.configure(max_kernels=2, disk_cache=False)
    try:
        for d, w in tables.items():  # three kernels: the first is unloaded
            emb_mlir.embedding_bag(x, w, mode="sum")
        info = emb_mlir.info()
        assert info["loaded_kernels"] == 2
        assert info["evictions"] == 1
        ours = emb_mlir.embedding_bag(x, tables[3], mode="sum")  # compiled again
        assert emb_mlir.info()["compiles"] == info["compiles"] + 1
        assert_close(ours, TF.embedding_bag(x, tables[3], mode="sum"),
                     torch.float32)
        with pytest.raises(ValueError, match="max_kernels must be >= 0"):
            emb_mlir.configure(max_kernels=-1)
    finally:
        emb_mlir.configure(max_kernels=1024, disk_cache=True)


def test_kernels_compiled_in_a_child_process():
    w = table(torch.float32, d=11)
    x = torch.tensor([[1, 2], [3, 4]])
    emb_mlir.configure(compile_in_child=True, compile_timeout=120,
                       disk_cache=False)
    try:
        ours = emb_mlir.embedding_bag(x, w, mode="max")
        assert emb_mlir.info()["compiles"] == 1
        assert_close(ours, TF.embedding_bag(x, w, mode="max"), torch.float32)
        with pytest.raises(ValueError, match="compile_timeout must be >= 0"):
            emb_mlir.configure(compile_timeout=-1.0)
    finally:
        emb_mlir.configure(compile_in_child=False, disk_cache=True)
