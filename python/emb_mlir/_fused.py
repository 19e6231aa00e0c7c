"""The weight gradient fused with an optimizer step (docs/semantics.md
§6.4): FBGEMM's split-table update. The rows of the table that the
gradient touches, and their optimizer state, are updated in place; no
[V, D] gradient is made. Numpy arrays or torch CPU tensors."""

import sys

import numpy as np

from . import _emb_mlir
from ._errors import EmbValueError
from ._functional import (_is_torch, _mode, _opt_view, _padding_idx,
                          _view, _writable, _write_back)

OPTIMIZERS = ("sgd", "adagrad", "rowwise_adagrad", "adam")
# The states each optimizer keeps, by torch's names.
STATE_NAMES = {"sgd": (), "adagrad": ("sum",), "rowwise_adagrad": ("sum",),
               "adam": ("exp_avg", "exp_avg_sq")}


def _optimizer(optimizer):
    if optimizer not in OPTIMIZERS:
        raise EmbValueError(
            "optimizer must be 'sgd', 'adagrad', 'rowwise_adagrad' or "
            f"'adam', got {optimizer!r}")
    return optimizer


def init_states(weight, optimizer, initial_accumulator_value=0.0):
    """The states `optimizer` keeps for `weight` ([V, D]), as the step
    expects them: adagrad's sum of squares [V, D] and rowwise_adagrad's [V]
    (filled with `initial_accumulator_value`), adam's exp_avg and exp_avg_sq
    [V, D] (zeros); f32, f64 for an f64 table; numpy arrays or torch tensors
    like `weight`."""
    _optimizer(optimizer)
    num_embeddings, dim = weight.shape
    shape = (num_embeddings,) if optimizer == "rowwise_adagrad" else (
        num_embeddings, dim)
    fill = initial_accumulator_value if optimizer != "adam" else 0.0
    if _is_torch(weight):
        torch = sys.modules["torch"]
        dtype = torch.float64 if weight.dtype == torch.float64 else torch.float32
        return [torch.full(shape, float(fill), dtype=dtype)
                for _ in STATE_NAMES[optimizer]]
    dtype = np.float64 if weight.dtype == np.float64 else np.float32
    return [np.full(shape, fill, dtype=dtype) for _ in STATE_NAMES[optimizer]]


def _step(grad, input, offsets, weight, states, optimizer, lr, eps,
          weight_decay, betas, step, mode, per_sample_weights,
          include_last_offset, padding_idx, scale_grad_by_freq, max_indices,
          profile, lookup):
    _optimizer(optimizer)
    why = "the optimizer step updates it"
    _writable(weight, "weight", why)
    states = list(states)
    for k, s in enumerate(states):
        _writable(s, f"state {k}", why)
    if len(betas) != 2:
        raise EmbValueError(f"'betas' must be two numbers, got {betas!r}")
    g, gv = _view(grad, "grad")
    x, xv = _view(input, "indices")
    off, offv = _opt_view(offsets, "offsets")
    psw, pswv = _opt_view(per_sample_weights, "per_sample_weights")
    argmax, argmaxv = _opt_view(max_indices, "max_indices")
    w, wv = _view(weight, "weight")
    used = [_view(s, f"state {k}") for k, s in enumerate(states)]
    _emb_mlir.embedding_bag_update(
        gv, xv, offv, wv, [v for _, v in used], optimizer, float(lr),
        float(eps), float(weight_decay), float(betas[0]), float(betas[1]),
        int(step), mode, _padding_idx(padding_idx), bool(scale_grad_by_freq),
        bool(include_last_offset), pswv, argmaxv, profile, lookup)
    _write_back(weight, w)
    for s, (u, _) in zip(states, used):
        _write_back(s, u)


def embedding_bag_update(grad, input, offsets, weight, states,
                         optimizer="sgd", lr=0.01, *, mode="mean",
                         per_sample_weights=None, include_last_offset=False,
                         padding_idx=None, scale_grad_by_freq=False,
                         max_indices=None, eps=1e-8, weight_decay=0.0,
                         betas=(0.9, 0.999), step=1, profile="torch"):
    """One optimizer step on the rows of `weight` that the embedding_bag
    gradient `grad` ([B, D]) touches, in place, with `states` (see
    init_states) updated in place too. The bag structure and options are
    the forward call's; mode "max" needs the forward's `max_indices`.
    `optimizer`: "sgd" (W -= lr g), "adagrad" and "rowwise_adagrad" (W -=
    lr g / (sqrt(state) + eps)), "adam" (lazy, like torch's SparseAdam;
    `step` is t >= 1); `weight_decay` adds weight_decay * W to g."""
    _step(grad, input, offsets, weight, states, optimizer, lr, eps,
          weight_decay, betas, step, _mode(mode), per_sample_weights,
          include_last_offset, padding_idx, scale_grad_by_freq, max_indices,
          profile, False)


def embedding_update(grad, input, weight, states, optimizer="sgd", lr=0.01, *,
                     padding_idx=None, scale_grad_by_freq=False, eps=1e-8,
                     weight_decay=0.0, betas=(0.9, 0.999), step=1,
                     profile="torch"):
    """embedding_bag_update for embedding: `grad` is [*input.shape, D]."""
    _step(grad, input, None, weight, states, optimizer, lr, eps, weight_decay,
          betas, step, "sum", None, False, padding_idx, scale_grad_by_freq,
          None, profile, True)


def embedding_bag_tables_update(grad, input, offsets, weights, tables, states,
                                optimizer="sgd", lr=0.01, *,
                                per_sample_weights=None, eps=1e-8,
                                weight_decay=0.0, betas=(0.9, 0.999), step=1):
    """embedding_bag_tables' gradient fused with the optimizer step, every
    table in one call: `grad` ([B, sum C_t]; C_t = D_t, or L_t * D_t for a
    sequence table) is the gradient of its output,
    `weights` (1-D, every table flat) and `states` (each flat like
    `weights`: sum V_t * D_t elements, sum V_t for rowwise_adagrad) are
    updated in place. No table may be "max" (its step needs the forward's
    max_indices: use embedding_bag_update on its part)."""
    from ._multi import tables_of
    _optimizer(optimizer)
    tables = tables_of(tables)
    why = "the optimizer step updates it"
    _writable(weights, "weights", why)
    states = list(states)
    for k, s in enumerate(states):
        _writable(s, f"state {k}", why)
    if len(betas) != 2:
        raise EmbValueError(f"'betas' must be two numbers, got {betas!r}")
    g, gv = _view(grad, "grad")
    x, xv = _view(input, "indices")
    off, offv = _view(offsets, "offsets")
    psw, pswv = _opt_view(per_sample_weights, "per_sample_weights")
    w, wv = _view(weights, "weights")
    used = [_view(s, f"state {k}") for k, s in enumerate(states)]
    _emb_mlir.embedding_bag_tables_update(
        gv, xv, wv, [tuple(t) for t in tables], offv, [v for _, v in used],
        optimizer, float(lr), float(eps), float(weight_decay),
        float(betas[0]), float(betas[1]), int(step), pswv)
    _write_back(weights, w)
    for s, (u, _) in zip(states, used):
        _write_back(s, u)
