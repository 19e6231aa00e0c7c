"""Row-wise quantised tables (docs/semantics.md §6.2): quantize_rows byte for
byte against torch's prepack ops, bags of packed tables against the f64
bag of the dequantised table and against torch's quantised bag operators,
the QuantizedEmbeddingBag module, and bad input."""

import numpy as np
import pytest
import torch

import emb_mlir
import emb_mlir.torch as ET
from conftest import random_bags

PREPACK = {8: torch.ops.quantized.embedding_bag_byte_prepack,
           4: torch.ops.quantized.embedding_bag_4bit_prepack}
TORCH_BAG = {8: torch.ops.quantized.embedding_bag_byte_rowwise_offsets,
             4: torch.ops.quantized.embedding_bag_4bit_rowwise_offsets}
TORCH_MODE = {"sum": 0, "mean": 1}


def tables():
    """Random rows, constant rows, huge and tiny ranges, zeros."""
    g = torch.Generator().manual_seed(11)
    w = torch.randn(40, 24, generator=g) * 3
    w[3] = 1.25  # constant row
    w[4] = 0
    w[5] *= 1e-6  # tiny range
    w[6] *= 1e3  # large values (int4 keeps its bias in f16)
    w[7, ::2] = -w[7, 1::2]
    return w


@pytest.mark.parametrize("bits", [8, 4])
def test_quantize_rows_is_torchs_prepack_byte_for_byte(bits):
    w = tables()
    ours = emb_mlir.quantize_rows(w, bits)
    theirs = PREPACK[bits](w)
    assert ours.dtype == torch.uint8 and ours.shape == theirs.shape
    assert torch.equal(ours, theirs)
    # numpy in, numpy out, the same bytes.
    packed = emb_mlir.quantize_rows(w.numpy(), bits)
    assert isinstance(packed, np.ndarray)
    assert np.array_equal(packed, theirs.numpy())
    # f16 rows are packed from their f32 values, as torch does.
    h = w.half()
    assert torch.equal(emb_mlir.quantize_rows(h, bits), PREPACK[bits](h.float()))


def test_int4_rows_of_odd_dim():
    """torch's 4-bit prepack needs an even D; ours takes any: the last high
    nibble of a row is 0, the tail after ceil(D / 2) bytes."""
    w = tables()[:, :7]
    packed = emb_mlir.quantize_rows(w, 4)
    assert packed.shape == (40, 4 + 4)
    assert (packed[:, 3] >> 4).eq(0).all()
    even = emb_mlir.quantize_rows(torch.cat([w, w[:, -1:]], 1), 4)
    values = emb_mlir.dequantize_rows(packed, 4, embedding_dim=7)
    assert values.shape == (40, 7)
    assert torch.allclose(values, w, atol=(w.amax(1) - w.amin(1)).max() / 15)
    assert torch.equal(packed[:, :3], even[:, :3])


def oracle(values, x, offsets, mode, psw, last, padding_idx):
    """The bag of §3 / §6.1 over the dequantised table, in f64."""
    v = values.double()
    flat = x.reshape(-1)
    w = None if psw is None else psw.reshape(-1).double()
    if offsets is None:
        n, length = x.shape
        bounds = [(b * length, (b + 1) * length) for b in range(n)]
    else:
        offs = offsets.tolist() + ([] if last else [flat.numel()])
        bounds = list(zip(offs[:-1], offs[1:]))
    rows = []
    for start, end in bounds:
        live = [j for j in range(start, end)
                if padding_idx is None or int(flat[j]) != padding_idx]
        if not live:
            rows.append(torch.zeros(v.shape[1], dtype=torch.float64))
            continue
        ws = torch.tensor([1.0 if w is None else float(w[j]) for j in live],
                          dtype=torch.float64)
        r = v[flat[live]]
        if mode == "max":
            rows.append(r.max(0).values)
            continue
        s = (ws[:, None] * r).sum(0)
        den = {"sum": 1.0, "mean": float(ws.sum()),
               "sqrtn": float(ws.square().sum().sqrt())}[mode]
        rows.append(s * 0 if den == 0 else s / den)
    return torch.stack(rows) if rows else torch.zeros(0, v.shape[1])


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("mode", ["sum", "mean", "max", "sqrtn"])
@pytest.mark.parametrize("form", ["offsets", "offsets_last", "2d"])
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.float16])
def test_bag_matches_the_dequantised_definition(bits, mode, form, out_dtype,
                                               rng):
    w = tables()
    packed = emb_mlir.quantize_rows(w, bits)
    if form == "2d":
        x, offsets = torch.from_numpy(rng.integers(0, 40, size=(6, 4))), None
    else:
        x = torch.from_numpy(rng.integers(0, 40, size=25))
        offsets = torch.from_numpy(random_bags(rng, 25, 7))
        if form == "offsets_last":
            offsets = torch.cat([offsets, torch.tensor([25])])
    x.view(-1)[::5] = 2
    last = form == "offsets_last"
    psw = None
    if mode != "max":
        psw = (torch.rand(x.shape, generator=torch.Generator().manual_seed(2))
               + 0.25).to(out_dtype)
    out = emb_mlir.embedding_bag_quantized(
        x, packed, offsets, mode=mode, bits=bits, per_sample_weights=psw,
        padding_idx=2, include_last_offset=last, output_dtype=out_dtype)
    assert out.dtype == out_dtype
    want = oracle(emb_mlir.dequantize_rows(packed, bits), x, offsets, mode,
                  psw, last, 2)
    tol = 1e-5 if out_dtype == torch.float32 else 2e-3
    torch.testing.assert_close(out.double(), want, rtol=tol, atol=tol * 10)


# Sum only: torch's quantised bag operators (1.13 and 2.15) return the sum
# for mode=1 (mean) too; our mean is §3's (and is checked above).
@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("mode", ["sum"])
@pytest.mark.parametrize("weighted", [False, True])
def test_bag_matches_torchs_quantised_operators(bits, mode, weighted, rng):
    w = tables()
    packed = PREPACK[bits](w)  # a table packed by torch, read as is
    x = torch.from_numpy(rng.integers(0, 40, size=30))
    offsets = torch.tensor([0, 4, 4, 19, 30])
    psw = torch.rand(30) if weighted else None
    ours = emb_mlir.embedding_bag_quantized(
        x, packed, offsets, mode=mode, bits=bits, per_sample_weights=psw,
        include_last_offset=True)
    theirs = TORCH_BAG[bits](packed, x, offsets, mode=TORCH_MODE[mode],
                             per_sample_weights=psw, include_last_offset=True)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-4)


def test_numpy_in_numpy_out(rng):
    w = rng.standard_normal((20, 8)).astype(np.float32)
    packed = emb_mlir.quantize_rows(w, 8)
    x = rng.integers(0, 20, size=(3, 4)).astype(np.int32)
    out = emb_mlir.embedding_bag_quantized(x, packed, mode="max",
                                           output_dtype=np.float16)
    assert isinstance(out, np.ndarray) and out.dtype == np.float16
    want = emb_mlir.dequantize_rows(packed)[x].max(1)
    np.testing.assert_allclose(out, want, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("bits", [8, 4])
def test_module_from_float_and_state_dict(bits):
    torch.manual_seed(4)
    float_bag = torch.nn.EmbeddingBag(60, 32, mode="sum", padding_idx=0)
    q = ET.QuantizedEmbeddingBag.from_float(float_bag, bits=bits)
    x = torch.randint(0, 60, (50,))
    offsets = torch.tensor([0, 10, 10, 33])
    out = q(x, offsets)
    # Within the quantisation error of the float module.
    w = float_bag.weight.detach()
    err = (w.amax(1) - w.amin(1)).max() / (255 if bits == 8 else 15)
    torch.testing.assert_close(out, float_bag(x, offsets).detach(),
                               rtol=0, atol=float(err) * 20)
    twin = ET.QuantizedEmbeddingBag(60, 32, mode="sum", bits=bits,
                                    padding_idx=0)
    twin.load_state_dict(q.state_dict())
    assert torch.equal(twin(x, offsets), out)
    packed = ET.QuantizedEmbeddingBag.from_packed(
        PREPACK[bits](float_bag.weight.detach()), bits=bits, mode="sum",
        padding_idx=0)
    assert torch.equal(packed(x, offsets), out)
    assert "bits=%d" % bits in repr(q)


def test_bad_input_is_a_clear_error():
    packed = emb_mlir.quantize_rows(torch.randn(10, 8), 8)
    x, off = torch.tensor([1, 2]), torch.tensor([0])
    with pytest.raises(ValueError, match="bits must be 8 or 4"):
        emb_mlir.embedding_bag_quantized(x, packed, off, bits=2)
    with pytest.raises(ValueError, match="rows are 16 bytes, but int8 rows "
                                         "of embedding_dim 6 are 14"):
        emb_mlir.embedding_bag_quantized(x, packed, off, embedding_dim=6)
    with pytest.raises(TypeError, match="output_dtype must be float32 or "
                                        "float16"):
        emb_mlir.embedding_bag_quantized(x, packed, off,
                                         output_dtype=torch.bfloat16)
    with pytest.raises(TypeError):  # weights of another dtype than the output
        emb_mlir.embedding_bag_quantized(x, packed, off,
                                         per_sample_weights=torch.ones(2).half())
    with pytest.raises(ValueError, match="not allowed with mode 'max'"):
        emb_mlir.embedding_bag_quantized(x, packed, off, mode="max",
                                         per_sample_weights=torch.ones(2))
    with pytest.raises(IndexError, match="index 10 at position 1"):
        emb_mlir.embedding_bag_quantized(torch.tensor([1, 10]), packed, off)
    with pytest.raises(TypeError, match="must be a 2-D tensor of u8"):
        emb_mlir.embedding_bag_quantized(x, packed.float(), off)
    with pytest.raises(ValueError, match="max_norm is not supported"):
        ET.QuantizedEmbeddingBag.from_float(
            torch.nn.EmbeddingBag(10, 8, max_norm=1.0))
