"""Many tables in one call (docs/semantics.md §6.3): FBGEMM's table-batched
embedding_bag with TorchRec's KJT layout, over tables that lie one after
another in one flat buffer."""

from collections import namedtuple

from . import _emb_mlir
from ._errors import EmbValueError
from ._functional import (_Outputs, _float_dtype, _mode, _opt_view,
                          _padding_idx, _shape, _view)

Table = namedtuple("Table", "num_embeddings embedding_dim mode padding_idx")
Table.__new__.__defaults__ = ("sum", None)
Table.__doc__ = """One table of embedding_bag_tables: its [V, D] shape, its
mode ("sum", "mean", "max" or "sqrtn") and its padding_idx (or None)."""


def tables_of(tables):
    """`tables` as Table tuples: each a Table, a (num_embeddings,
    embedding_dim[, mode[, padding_idx]]) tuple or a dict of those keys."""
    out = []
    for t in tables:
        if isinstance(t, dict):
            t = Table(**t)
        elif not isinstance(t, Table):
            t = Table(*t)
        _mode(t.mode)
        out.append(Table(int(t.num_embeddings), int(t.embedding_dim), t.mode,
                         _padding_idx(t.padding_idx)))
    if not out:
        raise EmbValueError("a many-table bag needs at least one table")
    return out


def embedding_bag_tables(input, offsets, weights, tables,
                         per_sample_weights=None):
    """The pooled rows of T tables in one call, [B, sum of the D_t].

    `weights` is 1-D: every table of `tables` (see tables_of), flat and
    one after another (table t's [V_t, D_t] rows, row-major); `input` (1-D)
    the indices of every table, concatenated; `offsets` (T * B + 1 entries,
    table-major) the bags: bag b of table t is input[offsets[t*B + b] :
    offsets[t*B + b + 1]]. Table t's rows land in columns [sum_{s<t} D_s,
    sum_{s<=t} D_s). `per_sample_weights` (input's shape) weigh every
    table's entries (then no table may be "max"). One kernel runs every
    table; errors name the table."""
    tables = tables_of(tables)
    w, wv = _view(weights, "weights")
    x, xv = _view(input, "indices")
    off, offv = _view(offsets, "offsets")
    psw, pswv = _opt_view(per_sample_weights, "per_sample_weights")
    shape = _shape(offv)
    count = shape[0] if len(shape) == 1 else 0
    num_bags = max(count - 1, 0) // len(tables)
    out, ov = _Outputs(weights).empty(
        (num_bags, sum(t.embedding_dim for t in tables)), _float_dtype(wv))
    _emb_mlir.embedding_bag_tables(xv, wv, [tuple(t) for t in tables], offv,
                                   ov, pswv)
    return out
