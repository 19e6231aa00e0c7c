"""The functional API over the C++ engine: numpy arrays or torch CPU tensors.

Each call turns its arguments into (address, dtype, shape) views, allocates
the outputs in the kind of the weight (numpy array or torch tensor) and lets
the engine validate everything and run the kernel generated for this
shape-and-option combination. Validation lives in the engine, in one place:
this module only shapes the outputs.
"""

import importlib
import sys

import numpy as np

from . import _emb_mlir
from ._errors import EmbValueError

_NUMPY_DTYPES = {
    np.dtype(np.float32): "f32",
    np.dtype(np.float64): "f64",
    np.dtype(np.float16): "f16",
    np.dtype(np.int32): "i32",
    np.dtype(np.int64): "i64",
    np.dtype(np.uint8): "u8",
}
_NUMPY_OF = {name: dtype for dtype, name in _NUMPY_DTYPES.items()}
_TORCH_DTYPES = None  # filled at the first torch tensor
_TORCH_OF = None


def _torch_tables(torch):
    global _TORCH_DTYPES, _TORCH_OF
    _TORCH_DTYPES = {
        torch.float32: "f32",
        torch.float64: "f64",
        torch.float16: "f16",
        torch.bfloat16: "bf16",
        torch.int32: "i32",
        torch.int64: "i64",
        torch.uint8: "u8",  # the bytes of a quantised table
    }
    _TORCH_OF = {name: dtype for dtype, name in _TORCH_DTYPES.items()}


def _is_torch(x):
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _view(x, name):
    """(object kept alive, what the engine reads) for `x`: a contiguous
    numpy array is passed as is; a torch tensor as (address, dtype name,
    shape); anything else is copied into a contiguous array first."""
    if type(x) is np.ndarray and x.flags.c_contiguous:
        return x, x
    if _is_torch(x):
        if _TORCH_DTYPES is None:
            _torch_tables(sys.modules["torch"])
        if not x.is_cpu:
            raise EmbValueError(
                f"'{name}' is on {x.device}: emb_mlir runs on the CPU "
                "(move the tensor with .cpu())")
        # A tensor with the negative (or conjugate) bit is a lazy view: its
        # memory holds the unresolved values.
        if x.is_neg() or x.is_conj():
            x = x.resolve_conj().resolve_neg()
        if not x.is_contiguous():
            x = x.contiguous()
        return x, (x.data_ptr(), _TORCH_DTYPES.get(x.dtype, str(x.dtype)),
                   x.shape)
    x = np.asarray(x)  # lists, scalars (0-D stays 0-D), subclasses
    if type(x) is not np.ndarray:
        x = x.view(np.ndarray)
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    return x, x


def _opt_view(x, name):
    if x is None:
        return None, None
    return _view(x, name)


# Float outputs from this size (a [V, D] gradient, sparse values, lookup
# rows) go on transparent huge pages: malloc maps blocks this large afresh
# on every call, and their first touch then costs a fault per 4 KiB page
# (see the torch operators' kHugePageOutputBytes).
_HUGE_OUTPUT_BYTES = 32 << 20
_ITEM_BYTES = {"f32": 4, "f64": 8, "f16": 2, "bf16": 2}


def _huge_output(shape, dtype, torch):
    """A zero-filled 2-D output on huge pages, or None (small, 1-D, a dtype
    the allocator does not take, or no torch extension for torch)."""
    if len(shape) != 2 or dtype not in _ITEM_BYTES or \
            shape[0] * shape[1] * _ITEM_BYTES[dtype] < _HUGE_OUTPUT_BYTES:
        return None
    if torch is None:
        return None if dtype == "bf16" else \
            _emb_mlir.empty_table(shape[0], shape[1], dtype, True)
    # The torch extension, loaded with emb_mlir.torch (torch is imported
    # already: the caller passed a tensor).
    ops = getattr(importlib.import_module(__package__ + ".torch"), "_ops", None)
    return None if ops is None else ops.empty_table(shape[0], shape[1],
                                                    dtype, True)


class _Outputs:
    """Allocates outputs of the same kind (numpy or torch) as `like`."""

    __slots__ = ("torch",)

    def __init__(self, like):
        self.torch = None if type(like) is np.ndarray or not _is_torch(like) \
            else sys.modules["torch"]

    def empty(self, shape, dtype):
        if self.torch is not None:
            if _TORCH_OF is None:
                _torch_tables(self.torch)
            t = _huge_output(shape, dtype, self.torch)
            if t is None:
                t = self.torch.empty(shape, dtype=_TORCH_OF[dtype])
            return t, (t.data_ptr(), dtype, shape)
        a = _huge_output(shape, dtype, None)
        if a is None:
            a = np.empty(shape, dtype=_NUMPY_OF[dtype])
        return a, a


def _dtype_name(view):
    if type(view) is tuple:
        return view[1]
    return _NUMPY_DTYPES.get(view.dtype, "")


def _shape(view):
    return view[2] if type(view) is tuple else view.shape


def _float_dtype(view):
    """The dtype name of a float tensor view, f32 for anything else (the
    engine rejects that tensor with its own message)."""
    name = _dtype_name(view)
    return name if name in ("f32", "f64", "f16", "bf16") else "f32"


def _writable(weight, name="weight", why="max_norm renormalises it"):
    """`weight` is updated in place (by max_norm's renorm, or `why`): it
    must be an array or a tensor we can write (checked before anything
    runs)."""
    if isinstance(weight, np.ndarray):
        if not weight.flags.writeable:
            raise EmbValueError(f"'{name}' is read-only, and {why} in place")
    elif not _is_torch(weight):
        raise EmbValueError(f"'{name}' must be a numpy array or a torch "
                            f"tensor ({why} in place), got "
                            f"{type(weight).__name__}")


def _write_back(original, used):
    """After an in-place update of `used` (the original or its contiguous
    copy), update the original; for torch, bump its version counter as
    torch's in-place renorm does, so that autograd sees the write."""
    if used is original:
        if _is_torch(original):
            torch = sys.modules["torch"]
            with torch.no_grad():
                original.view(-1)[:0].zero_()  # writes nothing, bumps
        return
    if _is_torch(original):
        torch = sys.modules["torch"]
        with torch.no_grad():
            original.copy_(used)
    else:
        original[...] = used


def _mode(mode):
    if mode not in ("sum", "mean", "max", "sqrtn"):
        raise EmbValueError(
            f"mode must be 'sum', 'mean', 'max' or 'sqrtn', got {mode!r}")
    return mode


def _num_bags(x, off, include_last_offset):
    """B from the views, or 0 where the form is wrong (the engine then
    raises with its message before it looks at the output)."""
    shape = _shape(x)
    if len(shape) == 2:
        return shape[0]
    if len(shape) == 1 and off is not None and len(_shape(off)) == 1:
        return max(_shape(off)[0] - (1 if include_last_offset else 0), 0)
    return 0


def _dim(view):
    shape = _shape(view)
    return shape[1] if len(shape) == 2 else 0


def _num_weights(n):
    n = int(n)
    if n < 0:
        raise EmbValueError(f"'num_embeddings' must be non-negative, got {n}")
    if n >= 2**63:
        raise EmbValueError(f"'num_embeddings' {n} does not fit in a 64-bit "
                         "size")
    return n


def _padding_idx(p):
    """padding_idx as the extension takes it: None or a 64-bit integer (a
    larger one is out of range of any table; said so, not as pybind11's
    signature dump)."""
    if p is None:
        return None
    p = int(p)
    if not -2**63 <= p < 2**63:
        raise EmbValueError(f"'padding_idx' {p} is out of range of any table "
                         "(it does not fit in 64 bits)")
    return p


def configure(threads=None, cache_dir=None, disk_cache=None, max_kernels=None,
              compile_in_child=None, compile_timeout=None):
    """Sets the engine's worker threads (0: all hardware threads; the
    EMB_MLIR_THREADS variable sets the default), the kernel cache directory,
    whether compiled kernels are kept on disk, the most kernels kept loaded
    in memory (default 1024; 0: no bound; the least recently used are
    unloaded past it), and whether kernels are compiled in a child process
    (a compiler crash is then an exception, not the end of the process;
    default: the EMB_MLIR_COMPILE_IN_CHILD variable, else no) with a time
    limit in seconds (default 300; 0: none). Kernels compiled so far are
    dropped from memory (the disk cache keeps them). Arguments left None
    keep their setting."""
    _emb_mlir.configure(threads, cache_dir, disk_cache, max_kernels,
                        compile_in_child, compile_timeout)


def info():
    """The engine's threads, cache directory and kernel cache counters."""
    return _emb_mlir.info()


def renorm_(weight, input, max_norm, norm_type=2.0):
    """Renormalises in place every distinct row of `weight` referenced by
    `input` whose p-norm exceeds `max_norm` (torch.embedding_renorm_)."""
    _writable(weight)
    w, wv = _view(weight, "weight")
    x, xv = _view(input, "indices")
    _emb_mlir.renorm(wv, xv, float(max_norm), float(norm_type))
    _write_back(weight, w)
    return weight


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False, *, profile="torch"):
    """weight[input], shape input.shape + [D] (torch.nn.functional.embedding).

    `max_norm` renormalises the referenced rows of `weight` in place first.
    `scale_grad_by_freq` and `sparse` only matter to the backward; they are
    checked here. profile: "torch", "zero-padding" (padding rows read as
    zeros) or "unit-scaling" (see docs/semantics.md)."""
    padding_idx = _padding_idx(padding_idx)
    if max_norm is not None:
        _writable(weight)
    w, wv = _view(weight, "weight")
    x, xv = _view(input, "indices")
    out, ov = _Outputs(weight).empty(tuple(_shape(xv)) + (_dim(wv),),
                                     _float_dtype(wv))
    _emb_mlir.embedding(xv, wv, ov, padding_idx,
                        None if max_norm is None else float(max_norm),
                        float(norm_type), scale_grad_by_freq, sparse, profile)
    if max_norm is not None:
        _write_back(weight, w)
    return out


def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2,
                  scale_grad_by_freq=False, mode="mean", sparse=False,
                  per_sample_weights=None, include_last_offset=False,
                  padding_idx=None, *, profile="torch",
                  return_max_indices=False):
    """The pooled rows of each bag, shape [B, D]
    (torch.nn.functional.embedding_bag).

    1-D `input` with `offsets` or 2-D `input` (every row a bag). `mode` is
    "sum", "mean", "max" or "sqrtn" (TensorFlow's combiner: the weighted
    sum over sqrt(sum of squared weights), sum / sqrt(n) without weights);
    with "mean", `per_sample_weights` give the weighted mean (sum of w * row
    over sum of w). A bag whose divisor is 0 is a zero row
    (docs/semantics.md §6.1). With `return_max_indices` (mode "max"),
    returns (out, max_indices): the row each output element came from, -1
    for empty bags; the backward of mode max needs it."""
    padding_idx = _padding_idx(padding_idx)
    _mode(mode)
    if max_norm is not None:
        _writable(weight)
    w, wv = _view(weight, "weight")
    x, xv = _view(input, "indices")
    off, offv = _opt_view(offsets, "offsets")
    psw, pswv = _opt_view(per_sample_weights, "per_sample_weights")
    shape = (_num_bags(xv, offv, include_last_offset), _dim(wv))
    outputs = _Outputs(weight)
    out, ov = outputs.empty(shape, _float_dtype(wv))
    argmax, argmaxv = None, None
    if return_max_indices:
        if mode != "max":
            raise EmbValueError("return_max_indices needs mode 'max', got "
                             f"{mode!r}")
        argmax, argmaxv = outputs.empty(shape, "i64")
    _emb_mlir.embedding_bag(xv, wv, offv, ov, mode, padding_idx,
                            None if max_norm is None else float(max_norm),
                            float(norm_type), scale_grad_by_freq, sparse,
                            include_last_offset, pswv, argmaxv, profile)
    if max_norm is not None:
        _write_back(weight, w)
    return (out, argmax) if return_max_indices else out


def embedding_backward(grad, input, num_weights, padding_idx=None,
                       scale_grad_by_freq=False, sparse=False, *,
                       profile="torch", coalesced=False):
    """The weight gradient of embedding for the output gradient `grad`
    (shape input.shape + [D]).

    Dense: a [num_weights, D] array. `sparse`: a pair (rows [M] int64,
    values [M, D]), one row per non-padding position in input order
    (PyTorch's uncoalesced COO form), or with `coalesced` the distinct rows
    in ascending order with their contributions summed."""
    padding_idx = _padding_idx(padding_idx)
    g, gv = _view(grad, "grad")
    x, xv = _view(input, "indices")
    outputs = _Outputs(grad)
    dtype = _float_dtype(gv)
    dim = _shape(gv)[-1] if len(_shape(gv)) else 0
    if sparse:
        n = 1
        for s in _shape(xv):
            n *= s
        rows, rv = outputs.empty((n,), "i64")
        values, vv = outputs.empty((n, dim), dtype)
        count = _emb_mlir.embedding_sparse_backward(
            gv, xv, _num_weights(num_weights), rv, vv, padding_idx, scale_grad_by_freq,
            profile, coalesced)
        return rows[:count], values[:count]
    gw, gwv = outputs.empty((_num_weights(num_weights), dim), dtype)
    _emb_mlir.embedding_backward(gv, xv, gwv, padding_idx, scale_grad_by_freq,
                                 profile)
    return gw


def embedding_bag_backward(grad, input, offsets, num_weights, mode="mean",
                           per_sample_weights=None, include_last_offset=False,
                           padding_idx=None, scale_grad_by_freq=False,
                           sparse=False, max_indices=None, *,
                           profile="torch", coalesced=False):
    """The weight gradient of embedding_bag for the output gradient `grad`
    ([B, D]), with the bag structure and options of the forward call. Mode
    "max" needs the forward's `max_indices`; mean and sqrtn scale each
    entry by psw / its bag's divisor (the divisor a constant of the
    weights). Dense: [num_weights, D]; `sparse` (not max): (rows, values) as
    in embedding_backward, one row per non-padding entry."""
    padding_idx = _padding_idx(padding_idx)
    _mode(mode)
    g, gv = _view(grad, "grad")
    x, xv = _view(input, "indices")
    off, offv = _opt_view(offsets, "offsets")
    psw, pswv = _opt_view(per_sample_weights, "per_sample_weights")
    outputs = _Outputs(grad)
    dtype = _float_dtype(gv)
    dim = _dim(gv)
    if sparse:
        n = 1
        for s in _shape(xv):
            n *= s
        rows, rv = outputs.empty((n,), "i64")
        values, vv = outputs.empty((n, dim), dtype)
        count = _emb_mlir.embedding_bag_sparse_backward(
            gv, xv, offv, _num_weights(num_weights), rv, vv, mode, padding_idx,
            scale_grad_by_freq, include_last_offset, pswv, profile, coalesced)
        return rows[:count], values[:count]
    argmax, argmaxv = _opt_view(max_indices, "max_indices")
    gw, gwv = outputs.empty((_num_weights(num_weights), dim), dtype)
    _emb_mlir.embedding_bag_backward(gv, xv, offv, gwv, mode, padding_idx,
                                     scale_grad_by_freq, include_last_offset,
                                     pswv, argmaxv, profile)
    return gw


def embedding_bag_per_sample_weights_backward(grad, weight, input,
                                              offsets=None, mode="sum",
                                              include_last_offset=False,
                                              padding_idx=None, *,
                                              profile="torch"):
    """The gradient of per_sample_weights (mode "sum" only: for the
    weighted mean and sqrtn it is not defined), shape of `input`:
    dot(grad[bag of j], weight[input[j]]) for every entry j, 0 for padding
    entries."""
    padding_idx = _padding_idx(padding_idx)
    _mode(mode)
    g, gv = _view(grad, "grad")
    w, wv = _view(weight, "weight")
    x, xv = _view(input, "indices")
    off, offv = _opt_view(offsets, "offsets")
    out, ov = _Outputs(weight).empty(tuple(_shape(xv)), _float_dtype(wv))
    _emb_mlir.embedding_bag_per_sample_weights_backward(
        gv, wv, xv, offv, ov, mode, padding_idx, include_last_offset, profile)
    return out
