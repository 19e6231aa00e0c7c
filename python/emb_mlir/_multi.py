"""Many tables in one call (docs/semantics.md §6.3): FBGEMM's table-batched
embedding_bag with TorchRec's KJT layout, over tables that lie one after
another in one flat buffer."""

from collections import namedtuple

from . import _emb_mlir
from ._errors import EmbValueError
from ._functional import (_Outputs, _float_dtype, _mode, _opt_view,
                          _padding_idx, _shape, _view)

Table = namedtuple(
    "Table", "num_embeddings embedding_dim mode padding_idx sequence_length")
Table.__new__.__defaults__ = ("sum", None, None)
Table.__doc__ = """One table of embedding_bag_tables: its [V, D] shape, its
mode ("sum", "mean", "max", "sqrtn", or "none": a sequence table, whose
bags all have one length L and whose L rows lie side by side in L * D
columns), its padding_idx (or None) and, for a "none" table, L (or None:
the first bag's length, 0 without bags)."""


def tables_of(tables):
    """`tables` as Table tuples: each a Table, a (num_embeddings,
    embedding_dim[, mode[, padding_idx[, sequence_length]]]) tuple or a
    dict of those keys."""
    out = []
    for t in tables:
        if isinstance(t, dict):
            t = Table(**t)
        elif not isinstance(t, Table):
            t = Table(*t)
        if t.mode != "none":
            _mode(t.mode)
        length = t.sequence_length
        if length is not None:
            if t.mode != "none":
                raise EmbValueError(
                    "a sequence_length is only for mode 'none', got mode "
                    f"{t.mode!r}")
            length = int(length)
        out.append(Table(int(t.num_embeddings), int(t.embedding_dim), t.mode,
                         _padding_idx(t.padding_idx), length))
    if not out:
        raise EmbValueError("a many-table bag needs at least one table")
    return out


def num_bags(tables, offsets):
    """B of a many-table call with `offsets` (T * B + 1 entries)."""
    shape = _shape(offsets)
    count = shape[0] if len(shape) == 1 else 0
    return max(count - 1, 0) // len(tables)


def columns(tables, offsets):
    """Each table's output columns: D, or L * D for a sequence table (L its
    sequence_length, or its first bag's length in `offsets`, a numpy array
    or a torch tensor; the engine checks every bag)."""
    b = num_bags(tables, offsets)
    out = []
    for t, table in enumerate(tables):
        if table.mode != "none":
            out.append(table.embedding_dim)
            continue
        length = table.sequence_length
        if length is None:
            length = int(offsets[t * b + 1]) - int(offsets[t * b]) if b else 0
        out.append(max(length, 0) * table.embedding_dim)
    return out


def embedding_bag_tables(input, offsets, weights, tables,
                         per_sample_weights=None):
    """The pooled rows of T tables in one call, [B, sum of the C_t].

    `weights` is 1-D: every table of `tables` (see tables_of), flat and
    one after another (table t's [V_t, D_t] rows, row-major); `input` (1-D)
    the indices of every table, concatenated; `offsets` (T * B + 1 entries,
    table-major) the bags: bag b of table t is input[offsets[t*B + b] :
    offsets[t*B + b + 1]]. Table t's rows land in columns [sum_{s<t} C_s,
    sum_{s<=t} C_s), C_t = D_t; a sequence table (mode "none", every bag of
    length L_t) puts its L_t rows side by side in C_t = L_t * D_t columns (a
    padding entry gives zeros). `per_sample_weights` (input's shape) weigh
    every table's entries (then no table may be "max"). One kernel runs
    every table; errors name the table."""
    tables = tables_of(tables)
    w, wv = _view(weights, "weights")
    x, xv = _view(input, "indices")
    off, offv = _view(offsets, "offsets")
    psw, pswv = _opt_view(per_sample_weights, "per_sample_weights")
    out, ov = _Outputs(weights).empty(
        (num_bags(tables, off), sum(columns(tables, off))), _float_dtype(wv))
    _emb_mlir.embedding_bag_tables(xv, wv, [tuple(t) for t in tables], offv,
                                   ov, pswv)
    return out
