"""Shared fixtures of the Python tests: torch 1.13 is the oracle."""

import numpy as np
import pytest
import torch

import emb_mlir

FLOATS = {
    "f32": torch.float32,
    "f64": torch.float64,
    "f16": torch.float16,
    "bf16": torch.bfloat16,
}
INDEX = {"i32": torch.int32, "i64": torch.int64}

# Tolerances against an oracle computed in f64 (f16/bf16 round once).
TOL = {
    torch.float32: dict(rtol=1e-5, atol=1e-5),
    torch.float64: dict(rtol=1e-12, atol=1e-12),
    torch.float16: dict(rtol=1e-3, atol=1e-3),
    torch.bfloat16: dict(rtol=8e-3, atol=8e-3),
}


def assert_close(ours, expected, dtype=None):
    if isinstance(ours, np.ndarray):
        ours = torch.from_numpy(ours)
    dtype = dtype or ours.dtype
    if isinstance(expected, np.ndarray):
        expected = torch.from_numpy(expected)
    assert ours.shape == expected.shape, (ours.shape, expected.shape)
    torch.testing.assert_close(ours.double(), expected.double(), **TOL[dtype])


def oracle_dtype(dtype):
    """torch computes in this dtype: f16/bf16 go through f64 (our kernels
    accumulate in f32 and round once; torch 1.13 has no CPU bf16 bag)."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float64


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def random_bags(rng, n, num_bags):
    """Offsets of `num_bags` bags over n indices, some of them empty."""
    cuts = np.sort(rng.integers(0, n + 1, size=num_bags - 1))
    return np.concatenate([[0], cuts]).astype(np.int64)
