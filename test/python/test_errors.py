"""Errors: torch's exception classes, clear messages, nothing written."""

import numpy as np
import pytest
import torch

import emb_mlir
import emb_mlir.torch as ET

V, D = 10, 4


@pytest.fixture
def weight():
    return torch.randn(V, D) * 5  # norms over max_norm


def untouched(weight, before):
    assert torch.equal(weight, before), "the weight was written"


def test_index_out_of_range_before_max_norm(weight):
    before = weight.clone()
    x = torch.tensor([1, 2, 12, 3])
    with pytest.raises(IndexError, match=r"index 12 at position 2 is out of "
                                         r"range \[0, 10\)"):
        emb_mlir.embedding(x, weight, max_norm=1.0)
    with pytest.raises(IndexError, match="index 12 at position 2"):
        ET.embedding(x, weight, max_norm=1.0)
    with pytest.raises(IndexError, match="index -1 at position 0"):
        emb_mlir.embedding_bag(torch.tensor([-1, 2]), weight,
                               torch.tensor([0]), max_norm=1.0)
    untouched(weight, before)


def test_dtypes_raise_type_error(weight):
    with pytest.raises(TypeError, match="'indices' must be a tensor of i32 "
                                        "or i64, got \\[2\\] f32"):
        emb_mlir.embedding(torch.tensor([1.0, 2.0]), weight)
    with pytest.raises(TypeError, match="'weight' must be a 2-D tensor of "
                                        "f32, f64, f16 or bf16"):
        emb_mlir.embedding(torch.tensor([1]), torch.ones(V, D, dtype=torch.int32))
    with pytest.raises(TypeError, match="'per_sample_weights' must be \\[2\\] "
                                        "f32, got \\[2\\] f64"):
        emb_mlir.embedding_bag(torch.tensor([1, 2]), weight, torch.tensor([0]),
                               mode="sum",
                               per_sample_weights=torch.ones(2, dtype=torch.float64))
    with pytest.raises(TypeError, match="'indices' must be a tensor of i32 "
                                        "or i64, got \\[1\\] u8"):
        emb_mlir.embedding(torch.tensor([1], dtype=torch.uint8), weight)
    with pytest.raises(TypeError, match="unsupported dtype 'torch.int16'"):
        emb_mlir.embedding(torch.tensor([1], dtype=torch.int16), weight)
    with pytest.raises(TypeError, match="unsupported dtype 'complex128'"):
        emb_mlir.embedding(np.array([1]), np.ones((V, D), np.complex128))


def test_bad_arguments_raise_value_error(weight):
    x = torch.tensor([1, 2, 3])
    cases = [
        (dict(offsets=torch.tensor([1, 2])), "offsets\\[0\\] must be 0, got 1"),
        (dict(offsets=torch.tensor([0, 2, 1])),
         "offsets must be non-decreasing: offsets\\[2\\] = 1 < offsets\\[1\\] = 2"),
        (dict(offsets=torch.tensor([0, 5])),
         "offsets\\[1\\] = 5 exceeds the number of indices 3"),
        (dict(offsets=torch.tensor([0, 2]), include_last_offset=True),
         "with include_last_offset the last offset must equal the number of "
         "indices 3, got 2"),
        (dict(offsets=None), "1-D 'indices' need 'offsets'"),
        (dict(offsets=torch.tensor([0]), mode="max",
              per_sample_weights=torch.ones(3)),
         "'per_sample_weights' is not allowed with mode 'max'"),
        (dict(offsets=torch.tensor([0]), mode="max", sparse=True),
         "'sparse' is not supported with mode 'max'"),
        (dict(offsets=torch.tensor([0]), mode="max", scale_grad_by_freq=True),
         "'scale_grad_by_freq' is not supported with mode 'max'"),
        (dict(offsets=torch.tensor([0]), padding_idx=10),
         "'padding_idx' 10 is out of range \\[-10, 10\\)"),
        (dict(offsets=torch.tensor([0]), mode="median"),
         "mode must be 'sum', 'mean', 'max' or 'sqrtn', got 'median'"),
        (dict(offsets=torch.tensor([0]), max_norm=float("nan")),
         "'max_norm' must not be NaN"),
        (dict(offsets=torch.tensor([0]), profile="tf"), "unknown profile 'tf'"),
    ]
    for kwargs, message in cases:
        # max_norm would write the weight if anything ran before validation.
        kwargs.setdefault("max_norm", 1.0)
        for fn in (emb_mlir.embedding_bag, ET.embedding_bag):
            for w in (weight, weight.clone().requires_grad_()):
                before = w.detach().clone()
                with pytest.raises(ValueError, match=message):
                    fn(x, w, **kwargs)
                untouched(w.detach(), before)
    with pytest.raises(ValueError, match="'offsets' must be absent when "
                                         "'indices' is 2-D"):
        emb_mlir.embedding_bag(x.view(1, 3), weight, torch.tensor([0]))
    with pytest.raises(ValueError, match="'indices' of embedding_bag must be "
                                         "1-D \\(with 'offsets'\\) or 2-D"):
        emb_mlir.embedding_bag(x.view(1, 1, 3), weight)


def test_embedding_arguments_are_checked_before_max_norm(weight):
    x = torch.tensor([1, 2, 3])
    cases = [
        (dict(padding_idx=10), "'padding_idx' 10 is out of range"),
        (dict(profile="unit-scaling", sparse=True),
         "'sparse' is not supported by the unit-scaling profile"),
        (dict(norm_type=float("nan")), "'norm_type' must not be NaN"),
    ]
    for kwargs, message in cases:
        for fn in (emb_mlir.embedding, ET.embedding):
            for w in (weight, weight.clone().requires_grad_()):
                before = w.detach().clone()
                with pytest.raises(ValueError, match=message):
                    fn(x, w, max_norm=1.0, **kwargs)
                untouched(w.detach(), before)
    with pytest.raises(ValueError, match="'sparse' is not supported with "
                                         "mode 'max'"):
        ET.embedding_bag(x, weight.requires_grad_(), torch.tensor([0]),
                         mode="max", sparse=True, max_norm=1.0)


def test_max_norm_needs_an_array_or_tensor_weight():
    with pytest.raises(ValueError, match="must be a numpy array or a torch "
                                         "tensor"):
        emb_mlir.embedding([1], [[1.0, 2.0], [3.0, 4.0]], max_norm=1.0)
    with pytest.raises(ValueError, match="'num_embeddings' must be "
                                         "non-negative, got -3"):
        emb_mlir.embedding_backward(np.ones((1, D)), np.array([0]), -3)


def test_gradient_option_combinations():
    w = torch.randn(V, D, requires_grad=True)
    x = torch.tensor([[1, 2]])
    with pytest.raises(ValueError, match="'scale_grad_by_freq' is not "
                                         "supported with sparse gradients"):
        emb_mlir.embedding_backward(torch.ones(1, 2, D), x, V,
                                    scale_grad_by_freq=True, sparse=True)
    for kw in (dict(scale_grad_by_freq=True), dict(sparse=True)):
        with pytest.raises(ValueError, match="not supported by the "
                                             "unit-scaling profile"):
            ET.embedding(x, w, profile="unit-scaling", **kw)
        with pytest.raises(ValueError, match="not supported by the "
                                             "unit-scaling profile"):
            ET.Embedding(V, D, profile="unit-scaling", **kw)
    with pytest.raises(ValueError, match="needs 'max_indices'"):
        emb_mlir.embedding_bag_backward(torch.ones(1, D), x, None, V,
                                        mode="max")
    with pytest.raises(IndexError, match="max_indices value 10"):
        emb_mlir.embedding_bag_backward(
            torch.ones(1, D), x, None, V, mode="max",
            max_indices=torch.full((1, D), 10))
    with pytest.raises(ValueError, match="needs mode 'sum', got 'mean'"):
        emb_mlir.embedding_bag_per_sample_weights_backward(
            torch.ones(1, D), w.detach(), x, mode="mean")


def test_cuda_and_read_only_inputs():
    w = np.ones((V, D), np.float32)
    w.flags.writeable = False
    with pytest.raises(ValueError, match="'weight' is read-only"):
        emb_mlir.embedding(np.array([1]), w, max_norm=0.5)
    # Without max_norm a read-only weight is fine.
    assert emb_mlir.embedding(np.array([1]), w).shape == (1, D)
    meta = torch.empty(V, D, device="meta")
    with pytest.raises(ValueError, match="'weight' is on meta: emb_mlir runs "
                                         "on the CPU"):
        emb_mlir.embedding(torch.tensor([1]), meta)


def test_big_endian_arrays_are_named_not_misread():
    w = np.ones((V, D), np.dtype(">f4"))
    with pytest.raises(TypeError, match="unsupported dtype '>f4'"):
        emb_mlir.embedding(np.array([1]), w)


def test_buffers_the_call_writes_must_not_share_memory():
    # Views of one buffer: max_norm rewrote the indices after their check,
    # and the kernel then read rows out of range (SIGSEGV). Now an error,
    # before anything is written.
    buf = np.zeros(32, np.int32)
    w = buf.view(np.float32).reshape(8, 4)
    idx = buf[4:8]
    idx[:] = 1
    before = buf.copy()
    with pytest.raises(ValueError, match="'indices' shares memory with "
                                         "'weight', which the call writes"):
        emb_mlir.embedding(idx, w, max_norm=-1.0)
    offsets = buf[28:30]
    offsets[:] = [0, 2]
    before = buf.copy()
    with pytest.raises(ValueError, match="'offsets' shares memory with "
                                         "'weight'"):
        emb_mlir.embedding_bag(np.array([1, 2, 3]), w, offsets, max_norm=1.0)
    assert (buf == before).all()
    # An output over the indices it is computed from.
    buf = np.zeros(64, np.float32)
    x = buf[:4].view(np.int32)
    x[:] = [0, 1, 2, 3]
    g = np.ones((4, 2), np.float32)
    with pytest.raises(ValueError, match="shares memory with 'grad_weight'"):
        emb_mlir._emb_mlir.embedding_backward(
            g, x, buf[:16].reshape(8, 2), None, False, "torch")
    # Separate buffers, and reading the same buffer twice, are fine.
    table = np.ones((8, 2), np.float32)
    assert emb_mlir.embedding(np.array([1, 1]), table, max_norm=1.0).shape == (2, 2)
    assert emb_mlir.embedding_bag(np.array([1, 1]), table, np.array([0]),
                                  per_sample_weights=np.ones(2, np.float32),
                                  mode="sum").shape == (1, 2)


def test_integers_past_64_bits_are_clear_errors():
    # pybind11 answered padding_idx=2**64 with its signature dump.
    w = np.ones((10, 4), np.float32)
    with pytest.raises(ValueError, match=r"'padding_idx' 18446744073709551616 "
                                         r"is out of range of any table"):
        emb_mlir.embedding(np.array([1]), w, padding_idx=2**64)
    with pytest.raises(ValueError, match="'padding_idx' -9223372036854775809"):
        emb_mlir.embedding_bag(np.array([1]), w, np.array([0]),
                               padding_idx=-2**63 - 1)
    with pytest.raises(ValueError, match="'num_embeddings' 18446744073709551616"
                                         " does not fit"):
        emb_mlir.embedding_backward(np.ones((1, 4), np.float32),
                                    np.array([1]), 2**64, sparse=True)
    # In range of int64 but not of the table: the Engine's message.
    with pytest.raises(ValueError, match=r"'padding_idx' 10 is out of range "
                                         r"\[-10, 10\)"):
        emb_mlir.embedding(np.array([1]), w, padding_idx=10)
