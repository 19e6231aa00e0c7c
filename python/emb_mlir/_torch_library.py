"""Fake (meta) kernels of the emb_mlir torch operators.

The operators, their CPU kernels and their autograd are defined in C++
(python/TorchOps.cpp, TORCH_LIBRARY(emb_mlir)). torch.compile and
torch.export run them on FakeTensors first: these functions give the shapes
and dtypes of the outputs without touching data (torch >= 2.4, which has
torch.library.register_fake; older torches run the operators eagerly only).
"""

import torch

_FLOATS = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _float_dtype(weight):
    return weight.dtype if weight.dtype in _FLOATS else torch.float32


def _dim(weight):
    return weight.shape[1] if weight.dim() == 2 else 0


def _num_bags(input, offsets, include_last_offset):
    if input.dim() == 2:
        return input.shape[0]
    if offsets is None:
        return 0
    return offsets.shape[0] - (1 if include_last_offset else 0)


def _sparse_outputs(grad, input, dim, padding_idx, coalesced):
    """(rows, values) of a sparse gradient: one row per entry of `input`
    when nothing is dropped or merged; otherwise how many depends on the
    data (padding entries are dropped, `coalesced` merges rows), a size
    inductor cannot build a sparse tensor from (aot_eager can)."""
    if padding_idx is None and not coalesced:
        count = input.numel()
    else:
        count = torch.library.get_ctx().new_dynamic_size()
    return (grad.new_empty((count,), dtype=torch.int64),
            grad.new_empty((count, dim)))


_registered = False


def register_fake_kernels():
    global _registered
    register = getattr(torch.library, "register_fake", None)
    if register is None or _registered:
        return
    _registered = True

    @register("emb_mlir::embedding")
    def _embedding(input, weight, padding_idx=None, scale_grad_by_freq=False,
                   sparse=False, profile="torch"):
        return weight.new_empty((*input.shape, _dim(weight)),
                                dtype=_float_dtype(weight))

    @register("emb_mlir::embedding_bag")
    def _embedding_bag(input, weight, offsets, mode, per_sample_weights=None,
                       include_last_offset=False, padding_idx=None,
                       scale_grad_by_freq=False, sparse=False,
                       profile="torch", max_indices=False):
        shape = (_num_bags(input, offsets, include_last_offset), _dim(weight))
        out = weight.new_empty(shape, dtype=_float_dtype(weight))
        argmax = weight.new_empty(
            shape if (max_indices and mode == "max") else (0, 0),
            dtype=torch.int64)
        return out, argmax

    @register("emb_mlir::embedding_bag_quantized")
    def _embedding_bag_quantized(input, packed, offsets, mode, bits,
                                 embedding_dim, per_sample_weights=None,
                                 include_last_offset=False, padding_idx=None,
                                 output_dtype=torch.float32):
        return packed.new_empty(
            (_num_bags(input, offsets, include_last_offset), embedding_dim),
            dtype=output_dtype)

    @register("emb_mlir::embedding_renorm_")
    def _embedding_renorm_(weight, input, max_norm, norm_type=2.0):
        return None

    @register("emb_mlir::embedding_backward")
    def _embedding_backward(grad, input, num_weights, padding_idx=None,
                            scale_grad_by_freq=False, profile="torch"):
        return grad.new_empty((num_weights, grad.shape[-1]))

    @register("emb_mlir::embedding_sparse_backward")
    def _embedding_sparse_backward(grad, input, num_weights, padding_idx=None,
                                   scale_grad_by_freq=False, profile="torch",
                                   coalesced=False):
        return _sparse_outputs(grad, input, grad.shape[-1], padding_idx,
                               coalesced)

    @register("emb_mlir::embedding_bag_backward")
    def _embedding_bag_backward(grad, input, offsets, num_weights, mode,
                                per_sample_weights=None,
                                include_last_offset=False, padding_idx=None,
                                scale_grad_by_freq=False, max_indices=None,
                                profile="torch"):
        return grad.new_empty((num_weights, grad.shape[-1]))

    @register("emb_mlir::embedding_bag_sparse_backward")
    def _embedding_bag_sparse_backward(grad, input, offsets, num_weights,
                                       mode, per_sample_weights=None,
                                       include_last_offset=False,
                                       padding_idx=None,
                                       scale_grad_by_freq=False,
                                       profile="torch", coalesced=False):
        return _sparse_outputs(grad, input, grad.shape[-1], padding_idx,
                               coalesced)

    @register("emb_mlir::embedding_bag_per_sample_weights_backward")
    def _embedding_bag_per_sample_weights_backward(grad, weight, input,
                                                   offsets, mode,
                                                   include_last_offset=False,
                                                   padding_idx=None,
                                                   profile="torch"):
        return weight.new_empty(input.shape, dtype=_float_dtype(weight))
