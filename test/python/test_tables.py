"""Many tables in one call (docs/semantics.md §6.3): embedding_bag_tables and
EmbeddingBagCollection against one torch.nn.functional.embedding_bag per
table (values and gradients), the modules' conversions, and bad input."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import emb_mlir
import emb_mlir.torch as ET

TABLES = [(100, 8, "sum", None), (50, 4, "max", 0), (30, 3, "mean", None),
          (7, 5, "sum", 2)]


def kjt(tables, batch, seed=0):
    """Random KJT-like values and table-major offsets (empty bags too)."""
    g = torch.Generator().manual_seed(seed)
    values, offsets = [], [0]
    for rows, dim, mode, *rest in tables:
        for _ in range(batch):
            n = int(torch.randint(0, 5, (1,), generator=g))
            if mode == "none":  # a sequence table: bags of one length
                n = rest[1] if len(rest) > 1 and rest[1] is not None else 3
            values.append(torch.randint(0, rows, (n,), generator=g))
            offsets.append(offsets[-1] + n)
    return torch.cat(values), torch.tensor(offsets)


def per_table(values, offsets, weights, tables, psw=None):
    """The oracle: one torch embedding_bag per table, concatenated."""
    batch = (offsets.numel() - 1) // len(tables)
    outs = []
    for t, (w, (rows, dim, mode, pad, *_)) in enumerate(zip(weights, tables)):
        lo, hi = int(offsets[t * batch]), int(offsets[(t + 1) * batch])
        off = offsets[t * batch:(t + 1) * batch + 1] - lo
        p = None if psw is None else psw[lo:hi]
        if mode == "none":  # a sequence table: its rows side by side
            rows = TF.embedding_bag(values[lo:hi].view(-1, 1), w, mode="sum",
                                    padding_idx=pad,
                                    per_sample_weights=None if p is None
                                    else p.view(-1, 1))
            outs.append(rows.reshape(batch, -1))
            continue
        outs.append(TF.embedding_bag(values[lo:hi], w, off, mode=mode,
                                     include_last_offset=True, padding_idx=pad,
                                     per_sample_weights=p))
    return torch.cat(outs, 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_and_gradient_match_one_bag_per_table(dtype):
    torch.manual_seed(0)
    module = ET.EmbeddingBagCollection(TABLES, dtype=dtype)
    values, offsets = kjt(TABLES, batch=6)
    out = module(values, offsets)
    assert out.shape == (6, 8 + 4 + 3 + 5) and out.dtype == dtype
    refs = [w.detach().clone().requires_grad_()
            for w in module.table_weights()]
    want = per_table(values, offsets, refs, TABLES)
    torch.testing.assert_close(out, want)
    g = torch.randn(out.shape, dtype=dtype)
    out.backward(g)
    want.backward(g)
    at = 0
    for r in refs:
        n = r.numel()
        torch.testing.assert_close(module.weight.grad[at:at + n].view_as(r),
                                   r.grad)
        at += n


def test_per_sample_weights_and_their_gradient():
    tables = [(20, 4, "sum", None), (10, 6, "sum", 1)]
    torch.manual_seed(1)
    module = ET.EmbeddingBagCollection(tables)
    values, offsets = kjt(tables, batch=5, seed=3)
    psw = torch.rand(values.shape, requires_grad=True)
    out = module(values, offsets, per_sample_weights=psw)
    refs = [w.detach().clone().requires_grad_()
            for w in module.table_weights()]
    ref_psw = psw.detach().clone().requires_grad_()
    want = per_table(values, offsets, refs, tables, ref_psw)
    torch.testing.assert_close(out, want)
    g = torch.randn(out.shape)
    out.backward(g)
    want.backward(g)
    torch.testing.assert_close(psw.grad, ref_psw.grad)


def test_functional_numpy_and_from_modules(rng):
    bags = [torch.nn.EmbeddingBag(40, 6, mode="sum"),
            torch.nn.EmbeddingBag(9, 2, mode="max", padding_idx=3)]
    module = ET.EmbeddingBagCollection.from_modules(bags)
    assert [tuple(t) for t in module.tables] == [(40, 6, "sum", None, None),
                                                 (9, 2, "max", 3, None)]
    values, offsets = kjt(module.tables, batch=4, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(
            module(values, offsets),
            per_table(values, offsets, [b.weight for b in bags],
                      module.tables))
    # numpy in, numpy out, the tables flat in one array.
    flat = module.weight.detach().numpy().copy()
    out = emb_mlir.embedding_bag_tables(values.numpy(), offsets.numpy(), flat,
                                        [emb_mlir.Table(40, 6, "sum"),
                                         dict(num_embeddings=9,
                                              embedding_dim=2, mode="max",
                                              padding_idx=3)])
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, module(values, offsets).detach().numpy(),
                               rtol=1e-6)


def test_bad_input_names_the_table():
    module = ET.EmbeddingBagCollection([(5, 2), (3, 2)])
    values, offsets = torch.tensor([1, 4, 0, 3]), torch.tensor([0, 2, 4])
    with pytest.raises(IndexError, match="table 1: index 3 at position 1 "
                                         "is out of range"):
        module(values, offsets)
    with pytest.raises(ValueError, match="T \\* B \\+ 1 entries for T = 2"):
        module(values, torch.tensor([0, 2, 3, 4]))
    with pytest.raises(ValueError, match="the tables need 16"):
        emb_mlir.embedding_bag_tables(values, offsets, torch.ones(10),
                                      [(5, 2), (3, 2)])
    with pytest.raises(ValueError, match="mode must be"):
        ET.EmbeddingBagCollection([(5, 2, "median")])


SEQUENCES = [(30, 4, "sum", None), (20, 3, "none", 0, 4), (9, 5, "none", None),
             (12, 2, "mean", 1)]


@pytest.mark.parametrize("weighted", [False, True])
def test_sequence_tables_match_their_rows_side_by_side(weighted):
    """Mode none (§6.3): a sequence table's L rows side by side in L * D
    columns, a padding entry zeros, psw scaling the rows; the gradients
    of the weights and psw as torch's composition gives them."""
    tables = [t for t in SEQUENCES if not weighted or t[2] != "mean"]
    torch.manual_seed(2)
    module = ET.EmbeddingBagCollection(tables)
    values, offsets = kjt(tables, batch=5, seed=7)
    values[values.numel() // 2] = 0  # a padding entry of a sequence table
    psw = torch.rand(values.shape, requires_grad=True) if weighted else None
    out = module(values, offsets, per_sample_weights=psw)
    columns = sum(d * (t[4] if len(t) > 4 and t[4] else 3)
                  if t[2] == "none" else d for t in tables for d in [t[1]])
    assert out.shape == (5, columns)
    refs = [w.detach().clone().requires_grad_()
            for w in module.table_weights()]
    ref_psw = psw.detach().clone().requires_grad_() if weighted else None
    want = per_table(values, offsets, refs, tables, ref_psw)
    torch.testing.assert_close(out, want)
    g = torch.randn(out.shape)
    out.backward(g)
    want.backward(g)
    at = 0
    for r in refs:
        torch.testing.assert_close(
            module.weight.grad[at:at + r.numel()].view_as(r), r.grad)
        at += r.numel()
    if weighted:
        torch.testing.assert_close(psw.grad, ref_psw.grad)


def test_sequence_tables_numpy_without_bags_and_bad_lengths():
    tables = [emb_mlir.Table(6, 2, "sum"), emb_mlir.Table(5, 3, "none")]
    flat = np.arange(6 * 2 + 5 * 3, dtype=np.float32)
    values = np.array([1, 4, 2, 0, 3, 3], np.int64)
    offsets = np.array([0, 1, 2, 4, 6], np.int64)  # B = 2, L = 2
    out = emb_mlir.embedding_bag_tables(values, offsets, flat, tables)
    assert out.shape == (2, 2 + 2 * 3)
    table0, table1 = flat[:12].reshape(6, 2), flat[12:].reshape(5, 3)
    np.testing.assert_array_equal(out[:, :2], table0[[1, 4]])
    np.testing.assert_array_equal(out[0, 2:], table1[[2, 0]].reshape(-1))
    np.testing.assert_array_equal(out[1, 2:], table1[[3, 3]].reshape(-1))
    # Without bags the length is the one given (0 when none is).
    no_bags = np.zeros(1, np.int64)
    assert emb_mlir.embedding_bag_tables(
        values[:0], no_bags, flat, tables).shape == (0, 2)
    assert emb_mlir.embedding_bag_tables(
        values[:0], no_bags, flat,
        [tables[0], tables[1]._replace(sequence_length=4)]).shape == (0, 14)
    with pytest.raises(ValueError, match="table 1 is 'none' \\(a sequence "
                                         "table, bags of length 2\\): bag 1 "
                                         "has 3 entries"):
        emb_mlir.embedding_bag_tables(np.append(values, 1),
                                      np.array([0, 1, 2, 4, 7]), flat, tables)
    with pytest.raises(ValueError, match="only for mode 'none'"):
        emb_mlir.embedding_bag_tables(values, offsets, flat,
                                      [(6, 2, "sum", None, 2), tables[1]])
    with pytest.raises(ValueError, match="mode must be"):
        emb_mlir.embedding_bag(values, table0, offsets, mode="none")
