"""Embedding tables on transparent huge pages (emb::allocateTable).

Random-row gathers from a large table miss the TLB on almost every row on
4 KiB pages; on 2 MiB pages one TLB entry covers 512 times as much. Linux
gives anonymous memory huge pages only where the range is 2 MiB aligned
and (with transparent_hugepage/enabled = madvise) advised MADV_HUGEPAGE
before its first touch: the tables here are allocated so.
"""

import operator

import numpy as np

from . import _emb_mlir
from ._errors import EmbTypeError, EmbValueError

# From this many bytes a table is put on huge pages (smaller ones would
# waste most of a 2 MiB page).
HUGE_PAGE_BYTES = 2 << 20

_NUMPY_TABLE_DTYPES = {
    np.dtype(np.float32): "f32",
    np.dtype(np.float64): "f64",
    np.dtype(np.float16): "f16",
}


def _table_size(n, name):
    try:
        n = operator.index(n)
    except TypeError:
        raise EmbValueError(f"'{name}' must be an integer, got "
                            f"{type(n).__name__}") from None
    if not 0 <= n < 2**63:
        raise EmbValueError(f"'{name}' must be non-negative and fit in 64 "
                            f"bits, got {n}")
    return n


def _numpy_table_dtype(dtype):
    if isinstance(dtype, str) and dtype in ("f32", "f64", "f16"):
        return dtype
    if isinstance(dtype, str) and dtype == "bf16":
        raise EmbTypeError("numpy has no bf16: use emb_mlir.torch.empty_table"
                           "(..., dtype=torch.bfloat16)")
    try:
        name = _NUMPY_TABLE_DTYPES.get(np.dtype(dtype))
    except TypeError:
        name = None
    if name is None:
        raise EmbTypeError(f"a table's dtype must be f32, f64 or f16, got "
                           f"{dtype!r}")
    return name


def empty_table(num_embeddings, embedding_dim, dtype="f32", huge_pages=True):
    """A zero-filled, writable, C-contiguous [num_embeddings, embedding_dim]
    numpy array for an embedding table. With `huge_pages`, one of 2 MiB or
    more is 2 MiB aligned and advised MADV_HUGEPAGE before its first touch,
    so that Linux backs it with transparent huge pages (fewer TLB misses in
    random-row gathers); smaller ones (or huge_pages=False) are plain
    64-byte aligned memory. The pages come from the kernel already zero:
    allocating touches none of them. The memory is freed when the array and
    every view of it are gone.

    dtype: "f32", "f64", "f16" or the numpy dtype (numpy has no bf16:
    emb_mlir.torch.empty_table makes bf16 tables)."""
    rows = _table_size(num_embeddings, "num_embeddings")
    cols = _table_size(embedding_dim, "embedding_dim")
    return _emb_mlir.empty_table(rows, cols, _numpy_table_dtype(dtype),
                                 bool(huge_pages))
