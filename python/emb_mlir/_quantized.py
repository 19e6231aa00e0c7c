"""Row-wise quantised tables (docs/semantics.md §6.2): packing a float
table as torch's `embedding_bag_byte_prepack` / `embedding_bag_4bit_prepack`
do (FBGEMM's fused formats), and bags over such tables.

Packing is a one-off conversion, written in numpy f32 arithmetic so that
every byte equals torch's; the bags run the kernels the engine generates.
"""

import sys

import numpy as np

from . import _emb_mlir
from ._errors import EmbTypeError, EmbValueError
from ._functional import (_Outputs, _is_torch, _mode, _num_bags, _opt_view,
                          _padding_idx, _shape, _view)

_FORMATS = {8: "int8", 4: "int4", "int8": "int8", "int4": "int4"}


def _format(bits):
    fmt = _FORMATS.get(bits)
    if fmt is None:
        raise EmbValueError(f"bits must be 8 or 4 (or 'int8' / 'int4'), got "
                            f"{bits!r}")
    return fmt


def row_bytes(embedding_dim, bits=8):
    """The bytes of one packed row of `embedding_dim` elements: D + 8 for
    int8, ceil(D / 2) + 4 for int4."""
    d = int(embedding_dim)
    return d + 8 if _format(bits) == "int8" else (d + 1) // 2 + 4


def _as_f32(weight):
    """The rows as a C-contiguous f32 numpy array, and the torch module
    when `weight` is a tensor (the result is then a tensor too)."""
    if _is_torch(weight):
        torch = sys.modules["torch"]
        return np.ascontiguousarray(
            weight.detach().cpu().to(torch.float32).numpy()), torch
    return np.ascontiguousarray(np.asarray(weight, dtype=np.float32)), None


def quantize_rows(weight, bits=8):
    """Packs a 2-D float table [V, D] row by row, as torch's
    `embedding_bag_byte_prepack` (bits=8: each row's D bytes, then its scale
    and bias as f32) or `embedding_bag_4bit_prepack` (bits=4: two elements
    a byte, low nibble first, then scale and bias as f16) do, byte for byte;
    any D for 4 bits (torch needs an even one). Returns uint8 [V, row_bytes]
    of the kind of `weight` (numpy array or torch tensor)."""
    fmt = _format(bits)
    w, torch = _as_f32(weight)
    if w.ndim != 2:
        raise EmbValueError(f"'weight' must be 2-D, got shape {w.shape}")
    v, d = w.shape
    f32 = np.float32
    lo = w.min(axis=1) if d else np.zeros(v, f32)
    hi = w.max(axis=1) if d else np.zeros(v, f32)
    out = np.zeros((v, row_bytes(d, fmt)), np.uint8)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if fmt == "int8":
            # FBGEMM's FloatOrHalfToFused8BitRowwiseQuantizedSBFloat, in f32.
            span = hi - lo
            inverse = f32(255) / (span + f32(1e-8))
            q = np.rint((w - lo[:, None]) * inverse[:, None])
            out[:, :d] = q.astype(np.uint8)
            out[:, d:d + 4] = (span / f32(255)).astype(f32).view(np.uint8) \
                .reshape(v, 4)
            out[:, d + 4:] = lo.astype(f32).view(np.uint8).reshape(v, 4)
        else:
            # FusedNBitRowwise, 4 bits: the minimum rounded to f16 first, the
            # scale to f16 (1 for a constant row, or where it rounds to 0 or
            # its inverse overflows).
            lo = lo.astype(np.float16).astype(f32)
            span = hi - lo
            scale = np.where(span == 0, f32(1), span / f32(15))
            scale = scale.astype(np.float16).astype(f32)
            scale[scale == 0] = 1
            inverse = f32(1) / scale
            bad = np.isinf(inverse)
            scale[bad] = 1
            inverse[bad] = 1
            q = np.clip(np.rint((w - lo[:, None]) * inverse[:, None]), 0, 15)
            q = q.astype(np.uint8)
            if d % 2:
                q = np.concatenate([q, np.zeros((v, 1), np.uint8)], axis=1)
            half = (d + 1) // 2
            out[:, :half] = q[:, 0::2] | (q[:, 1::2] << 4)
            out[:, half:half + 2] = scale.astype(np.float16).view(np.uint8) \
                .reshape(v, 2)
            out[:, half + 2:] = lo.astype(np.float16).view(np.uint8) \
                .reshape(v, 2)
    return torch.from_numpy(out) if torch is not None else out


def dequantize_rows(packed, bits=8, embedding_dim=None):
    """The f32 values `q * scale + bias` of a packed table, [V, D] (D from
    the row bytes, or `embedding_dim` for an odd int4 D)."""
    fmt = _format(bits)
    is_torch = _is_torch(packed)
    p = np.ascontiguousarray(packed.cpu().numpy() if is_torch else
                             np.asarray(packed))
    if p.ndim != 2 or p.dtype != np.uint8:
        raise EmbValueError("'packed' must be a 2-D uint8 table, got "
                            f"{p.dtype} {p.shape}")
    d = _embedding_dim(p.shape[1], fmt, embedding_dim)
    v = p.shape[0]
    if fmt == "int8":
        q = p[:, :d].astype(np.float32)
        sb = p[:, d:d + 8].copy().view(np.float32)
    else:
        half = (d + 1) // 2
        nibbles = np.stack([p[:, :half] & 15, p[:, :half] >> 4], axis=2)
        q = nibbles.reshape(v, 2 * half)[:, :d].astype(np.float32)
        sb = p[:, half:half + 4].copy().view(np.float16).astype(np.float32)
    out = q * sb[:, :1] + sb[:, 1:2]
    if is_torch:
        return sys.modules["torch"].from_numpy(out)
    return out


def _embedding_dim(row, fmt, embedding_dim):
    if embedding_dim is None:
        d = row - 8 if fmt == "int8" else 2 * (row - 4)
        if d < 0:
            raise EmbValueError(f"rows of {row} bytes hold no {fmt} row")
        return d
    d = int(embedding_dim)
    if row_bytes(d, fmt) != row:
        raise EmbValueError(
            f"'packed' rows are {row} bytes, but {fmt} rows of "
            f"embedding_dim {d} are {row_bytes(d, fmt)}")
    return d


def _output_dtype(dtype):
    if dtype is None:
        return "f32"
    names = {"float32": "f32", "f32": "f32", "float16": "f16", "f16": "f16",
             "half": "f16", "float": "f32"}
    key = str(dtype).replace("torch.", "")
    if isinstance(dtype, type) and issubclass(dtype, np.generic):
        key = np.dtype(dtype).name
    elif isinstance(dtype, np.dtype):
        key = dtype.name
    if key not in names:
        raise EmbTypeError(
            f"output_dtype must be float32 or float16, got {dtype!r}")
    return names[key]


def embedding_bag_quantized(input, packed, offsets=None, mode="sum", bits=8,
                            per_sample_weights=None, padding_idx=None,
                            include_last_offset=False, output_dtype=None,
                            embedding_dim=None):
    """embedding_bag over a row-wise quantised table `packed` (uint8
    [V, row_bytes], as quantize_rows or torch's prepack ops make it, read
    as is): [B, D] of `output_dtype` (float32, the default, or float16).
    Every mode ("sum", "mean", "max", "sqrtn"), the bag forms of
    embedding_bag, per_sample_weights (of the output dtype) and padding_idx
    work as for a float table. D comes from the row bytes (int4: an even D;
    pass `embedding_dim` for an odd one). torch's
    `embedding_bag_byte_rowwise_offsets` / `_4bit_rowwise_offsets`
    compute the same."""
    fmt = _format(bits)
    _mode(mode)
    padding_idx = _padding_idx(padding_idx)
    t, tv = _view(packed, "packed")
    x, xv = _view(input, "indices")
    off, offv = _opt_view(offsets, "offsets")
    psw, pswv = _opt_view(per_sample_weights, "per_sample_weights")
    shape = _shape(tv)
    if len(shape) != 2:
        raise EmbValueError(f"'packed' must be 2-D, got shape {tuple(shape)}")
    d = _embedding_dim(shape[1], fmt, embedding_dim)
    out, ov = _Outputs(packed).empty(
        (_num_bags(xv, offv, include_last_offset), d),
        _output_dtype(output_dtype))
    _emb_mlir.embedding_bag_quantized(xv, tv, fmt, offv, ov, mode,
                                      padding_idx, include_last_offset, pswv)
    return out
