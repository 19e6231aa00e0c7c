"""emb-mlir from Python: embedding kernels generated for your shape.

    import numpy as np, emb_mlir
    weight = np.random.rand(1000, 64).astype(np.float32)
    out = emb_mlir.embedding_bag(np.array([1, 2, 4, 5, 4, 3]), weight,
                                 np.array([0, 3]), mode="sum")

The functions here take numpy arrays (and return numpy arrays) or torch CPU
tensors (and return torch tensors, without autograd: `emb_mlir.torch` has
the autograd functions and the nn modules). Inputs are used in place when
they are contiguous, copied otherwise. Every argument is checked before
anything is written; errors are EmbIndexError (an index out of range),
EmbTypeError (a dtype) or EmbValueError (anything else): IndexError,
TypeError and ValueError that are also RuntimeErrors, like torch's.

`empty_table` allocates a numpy table on transparent huge pages (faster
random-row gathers from large tables). `quantize_rows` packs a float table
into int8 / int4 rows as torch's prepack ops do, and
`embedding_bag_quantized` pools bags of such a table (docs/semantics.md
§6.2); `embedding_bag_tables` pools many tables in one call (§6.3);
`embedding_bag_update` / `embedding_update` apply the backward fused with an
optimizer step (SGD, Adagrad, row-wise Adagrad, Adam) to a table and its
`init_states` in place (§6.4).
"""

from ._errors import EmbError, EmbIndexError, EmbTypeError, EmbValueError

from ._functional import (
    configure,
    embedding,
    embedding_backward,
    embedding_bag,
    embedding_bag_backward,
    embedding_bag_per_sample_weights_backward,
    info,
    renorm_,
)
from ._fused import (embedding_bag_tables_update, embedding_bag_update,
                     embedding_update, init_states)
from ._multi import Table, embedding_bag_tables
from ._quantized import (dequantize_rows, embedding_bag_quantized,
                         quantize_rows, row_bytes)
from ._tables import empty_table

__all__ = [
    "EmbError",
    "EmbIndexError",
    "EmbTypeError",
    "EmbValueError",
    "Table",
    "configure",
    "dequantize_rows",
    "embedding",
    "embedding_backward",
    "embedding_bag",
    "embedding_bag_backward",
    "embedding_bag_per_sample_weights_backward",
    "embedding_bag_quantized",
    "embedding_bag_tables",
    "embedding_bag_tables_update",
    "embedding_bag_update",
    "embedding_update",
    "empty_table",
    "info",
    "init_states",
    "quantize_rows",
    "renorm_",
    "row_bytes",
]
