"""emb_mlir.torch's modules whose backward is fused with the optimizer
(docs/semantics.md §6.4), like FBGEMM's split-table batched embeddings:
`loss.backward()` updates the weight and the optimizer state in place and
leaves no `.grad`; no [V, D] gradient is ever made.

    bag = FusedEmbeddingBag(1_000_000, 128, mode="sum",
                            optimizer="rowwise_adagrad", lr=0.01)
    loss = model(bag(ids, offsets)).sum(); loss.backward()  # the step is done
    bag.lr = 0.005                                           # a schedule

Each forward call is one step: a module called twice in one graph (a table
shared by two features, gradient accumulation over calls) takes two steps in
the backward, each from its own call's gradient, not one step of their sum
(as FBGEMM's modules do). The weight is a Parameter that does not require
grad (torch optimizers and clip_grad see nothing to do); the states are
buffers (`state_sum`, or
`state_exp_avg`, `state_exp_avg_sq` and `state_step` for Adam), so
`state_dict` checkpoints the whole training state.
"""

import torch
from torch.autograd.function import once_differentiable

from . import _fused
from . import _functional as F
from ._errors import EmbValueError

# torch.compile runs the step eagerly: a clean graph break at the module
# (Dynamo would otherwise trace into the forward, warn about the extension
# and break there). torch < 2.1 has no torch.compiler.
_eager = getattr(getattr(torch, "compiler", None), "disable", None) or (
    lambda fn: fn)

# torch's defaults: Adagrad's eps; FBGEMM's row-wise Adagrad and Adam 1e-8.
_DEFAULT_EPS = {"sgd": 1e-8, "adagrad": 1e-10, "rowwise_adagrad": 1e-8,
                "adam": 1e-8}


class _FusedStep(torch.autograd.Function):
    """The forward of a fused module; its backward is the module's step.
    `placeholder` requires grad so that autograd runs the backward even
    though the weight does not."""

    @staticmethod
    def forward(ctx, placeholder, per_sample_weights, module, input, offsets):
        out, max_indices = module._pool(input, offsets, per_sample_weights)
        ctx.module = module
        ctx.save_for_backward(input, offsets, per_sample_weights, max_indices)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        input, offsets, psw, max_indices = ctx.saved_tensors
        gpsw = None
        if ctx.needs_input_grad[1]:  # from the weight before the step
            gpsw = ctx.module._psw_grad(grad.contiguous(), input, offsets)
        ctx.module._step(grad.contiguous(), input, offsets, psw, max_indices)
        return None, gpsw, None, None, None


def _check_hyper(optimizer, lr, eps, weight_decay, betas):
    """torch's constructor checks (the Engine checks again at each step:
    `lr` may change between steps)."""
    _fused._optimizer(optimizer)
    for name, value in (("lr", lr), ("eps", eps),
                        ("weight_decay", weight_decay)):
        if value is not None and not 0.0 <= value < float("inf"):
            raise EmbValueError(f"'{name}' must be a finite non-negative "
                                f"number, got {value}")
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise EmbValueError(f"'betas' must be two numbers in [0, 1), got "
                            f"{betas!r}")


class _FusedBase(torch.nn.Module):
    def _init_fused(self, num_embeddings, embedding_dim, padding_idx,
                    max_norm, norm_type, scale_grad_by_freq, _weight, dtype,
                    optimizer, lr, eps, weight_decay, betas,
                    initial_accumulator_value, profile, huge_pages):
        _check_hyper(optimizer, lr, eps, weight_decay, betas)
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise EmbValueError("padding_idx must be within "
                                    "num_embeddings")
            padding_idx = padding_idx % num_embeddings
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        self.optimizer = optimizer
        self.lr = lr
        self.eps = _DEFAULT_EPS[optimizer] if eps is None else eps
        self.weight_decay = weight_decay
        self.betas = tuple(betas)
        self.profile = profile
        if _weight is None:
            from .torch import empty_table
            dtype = dtype or torch.get_default_dtype()
            weight = empty_table(num_embeddings, embedding_dim, dtype,
                                 huge_pages=huge_pages)
            with torch.no_grad():
                weight.normal_()
                if padding_idx is not None:
                    weight[padding_idx].fill_(0)
        else:
            if list(_weight.shape) != [num_embeddings, embedding_dim]:
                raise EmbValueError("Shape of weight does not match "
                                    "num_embeddings and embedding_dim")
            weight = _weight.detach()
        self.weight = torch.nn.Parameter(weight, requires_grad=False)
        for name, state in zip(
                _fused.STATE_NAMES[optimizer],
                _fused.init_states(weight, optimizer,
                                   initial_accumulator_value)):
            self.register_buffer("state_" + name, state)
        if optimizer == "adam":
            self.register_buffer("state_step",
                                 torch.zeros((), dtype=torch.int64))
        self._placeholder = torch.zeros((), requires_grad=True)

    def _states(self):
        return [getattr(self, "state_" + name)
                for name in _fused.STATE_NAMES[self.optimizer]]

    def _hyper(self):
        """The step's hyper-parameters: Adam's next step t (its counter is
        moved by _stepped, once the step is done)."""
        step = 1
        if self.optimizer == "adam":
            step = int(self.state_step) + 1
        return dict(lr=self.lr, eps=self.eps, weight_decay=self.weight_decay,
                    betas=self.betas, step=step, profile=self.profile)

    def _stepped(self, hyper):
        if self.optimizer == "adam":
            self.state_step.fill_(hyper["step"])

    def _apply(self, fn, *args, **kwargs):
        # .half() and the like cast the float buffers too: the states stay
        # f32 (f64 for an f64 table), as the step needs them.
        out = super()._apply(fn, *args, **kwargs)
        dtype = torch.float64 if self.weight.dtype == torch.float64 else \
            torch.float32
        for name in _fused.STATE_NAMES[self.optimizer]:
            state = getattr(self, "state_" + name)
            if state.dtype != dtype:
                setattr(self, "state_" + name, state.to(dtype))
        return out

    def extra_repr(self):
        s = (f"{self.num_embeddings}, {self.embedding_dim}, "
             f"optimizer={self.optimizer!r}, lr={self.lr}, eps={self.eps}")
        if self.weight_decay:
            s += f", weight_decay={self.weight_decay}"
        if self.optimizer == "adam":
            s += f", betas={self.betas}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        return s

    @_eager
    def _run(self, input, offsets, per_sample_weights):
        if torch.is_grad_enabled():
            return _FusedStep.apply(self._placeholder, per_sample_weights,
                                    self, input, offsets)
        return self._pool(input, offsets, per_sample_weights)[0]


class FusedEmbeddingBag(_FusedBase):
    """torch.nn.EmbeddingBag's arguments (no `sparse`: the step needs no
    gradient) plus the optimizer: "sgd", "adagrad", "rowwise_adagrad"
    (default) or "adam", its `lr` (a plain attribute: change it between
    steps), `eps` (default: torch's Adagrad 1e-10, else 1e-8),
    `weight_decay` (L2, every optimizer), `betas` (Adam) and
    `initial_accumulator_value` (Adagrad's). The backward of the output
    updates `weight` and the state buffers in place (per_sample_weights
    still get their gradient, from the weight before the step).
    huge_pages: the weight on transparent huge pages, as EmbeddingBag's."""

    def __init__(self, num_embeddings, embedding_dim, max_norm=None,
                 norm_type=2.0, scale_grad_by_freq=False, mode="mean",
                 include_last_offset=False, padding_idx=None, _weight=None,
                 dtype=None, *, optimizer="rowwise_adagrad", lr=0.01,
                 eps=None, weight_decay=0.0, betas=(0.9, 0.999),
                 initial_accumulator_value=0.0, profile="torch",
                 huge_pages=True):
        super().__init__()
        F._mode(mode)
        self.mode = mode
        self.include_last_offset = include_last_offset
        self._init_fused(num_embeddings, embedding_dim, padding_idx, max_norm,
                         norm_type, scale_grad_by_freq, _weight, dtype,
                         optimizer, lr, eps, weight_decay, betas,
                         initial_accumulator_value, profile, huge_pages)

    @classmethod
    def from_pretrained(cls, embeddings, **kwargs):
        """A module over a copy of `embeddings` ([V, D])."""
        rows, cols = embeddings.shape
        return cls(rows, cols, _weight=embeddings.detach().clone(
            memory_format=torch.contiguous_format), **kwargs)

    def forward(self, input, offsets=None, per_sample_weights=None):
        return self._run(input, offsets, per_sample_weights)

    def _pool(self, input, offsets, per_sample_weights):
        result = F.embedding_bag(
            input, self.weight, offsets, self.max_norm, self.norm_type,
            self.scale_grad_by_freq, self.mode, False, per_sample_weights,
            self.include_last_offset, self.padding_idx, profile=self.profile,
            return_max_indices=self.mode == "max")
        return result if self.mode == "max" else (result, None)

    def _psw_grad(self, grad, input, offsets):
        return F.embedding_bag_per_sample_weights_backward(
            grad, self.weight, input, offsets, self.mode,
            self.include_last_offset, self.padding_idx, profile=self.profile)

    def _step(self, grad, input, offsets, psw, max_indices):
        # (detach(): the Parameter's version counter sees the write.)
        hyper = self._hyper()
        _fused.embedding_bag_update(
            grad, input, offsets, self.weight.detach(), self._states(),
            self.optimizer, mode=self.mode, per_sample_weights=psw,
            include_last_offset=self.include_last_offset,
            padding_idx=self.padding_idx,
            scale_grad_by_freq=self.scale_grad_by_freq,
            max_indices=max_indices, **hyper)
        self._stepped(hyper)

    def extra_repr(self):
        return super().extra_repr() + f", mode={self.mode!r}"


class FusedEmbedding(_FusedBase):
    """torch.nn.Embedding's arguments (no `sparse`) plus the optimizer, as
    FusedEmbeddingBag's."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None,
                 max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
                 _weight=None, dtype=None, *, optimizer="rowwise_adagrad",
                 lr=0.01, eps=None, weight_decay=0.0, betas=(0.9, 0.999),
                 initial_accumulator_value=0.0, profile="torch",
                 huge_pages=True):
        super().__init__()
        self._init_fused(num_embeddings, embedding_dim, padding_idx, max_norm,
                         norm_type, scale_grad_by_freq, _weight, dtype,
                         optimizer, lr, eps, weight_decay, betas,
                         initial_accumulator_value, profile, huge_pages)

    @classmethod
    def from_pretrained(cls, embeddings, **kwargs):
        """A module over a copy of `embeddings` ([V, D])."""
        rows, cols = embeddings.shape
        return cls(rows, cols, _weight=embeddings.detach().clone(
            memory_format=torch.contiguous_format), **kwargs)

    def forward(self, input):
        return self._run(input, None, None)

    def _pool(self, input, offsets, per_sample_weights):
        return F.embedding(input, self.weight, self.padding_idx,
                           self.max_norm, self.norm_type,
                           self.scale_grad_by_freq, False,
                           profile=self.profile), None

    def _step(self, grad, input, offsets, psw, max_indices):
        hyper = self._hyper()
        _fused.embedding_update(
            grad, input, self.weight.detach(), self._states(), self.optimizer,
            padding_idx=self.padding_idx,
            scale_grad_by_freq=self.scale_grad_by_freq, **hyper)
        self._stepped(hyper)


def table_slices(tables, grad, input, offsets, psw):
    """Per table of a many-table call (torch tensors), what a single-table
    backward of it takes: (t, table, its gradient rows, indices, offsets
    with include_last_offset, psw, lo, hi), [lo, hi) its entries. A
    sequence table (mode "none", length L) comes as a "sum" table of
    one-entry bags: its L * D columns as [B * L, D] rows, offsets 0..n."""
    num_bags = (offsets.numel() - 1) // len(tables)
    column = 0
    for t, table in enumerate(tables):
        lo = int(offsets[t * num_bags])
        hi = int(offsets[(t + 1) * num_bags])
        dim = table.embedding_dim
        if table.mode == "none":
            width = (hi - lo) // num_bags * dim if num_bags else 0
            g = grad[:, column:column + width].reshape(-1, dim).contiguous() \
                if width else grad.new_zeros((0, dim))
            off = torch.arange(hi - lo + 1, dtype=offsets.dtype)
            table = table._replace(mode="sum", sequence_length=None)
        else:
            width = dim
            g = grad[:, column:column + dim].contiguous()
            off = offsets[t * num_bags:(t + 1) * num_bags + 1] - lo
        yield (t, table, g, input[lo:hi], off,
               None if psw is None else psw[lo:hi], lo, hi)
        column += width


class FusedEmbeddingBagCollection(_FusedBase):
    """emb_mlir.torch.EmbeddingBagCollection (the same `tables`, flat
    `weight`, `table_weights()`, KJT-like values and table-major offsets;
    the forward pools every table in one call) whose backward is fused with
    the optimizer, as FusedEmbeddingBag's: each table's rows and state are
    updated in place, every table in one call (one kernel; with a max
    table, whose step needs its forward's argmax, table by table), and no
    gradient is made. The states are flat buffers like `weight` (`state_sum`
    of sum V_t * D_t elements, or sum V_t for rowwise_adagrad; Adam's two
    and `state_step`)."""

    def __init__(self, tables, dtype=torch.float32, *,
                 optimizer="rowwise_adagrad", lr=0.01, eps=None,
                 weight_decay=0.0, betas=(0.9, 0.999),
                 initial_accumulator_value=0.0):
        super().__init__()
        from ._multi import tables_of
        _check_hyper(optimizer, lr, eps, weight_decay, betas)
        self.tables = tables_of(tables)
        self.optimizer = optimizer
        self.lr = lr
        self.eps = _DEFAULT_EPS[optimizer] if eps is None else eps
        self.weight_decay = weight_decay
        self.betas = tuple(betas)
        self.profile = "torch"
        total = sum(t.num_embeddings * t.embedding_dim for t in self.tables)
        weight = torch.empty(total, dtype=dtype)
        with torch.no_grad():
            weight.normal_()
        self.weight = torch.nn.Parameter(weight, requires_grad=False)
        for t, view in zip(self.tables, self.table_weights()):
            if t.padding_idx is not None:
                with torch.no_grad():
                    view[t.padding_idx].zero_()
        rows = sum(t.num_embeddings for t in self.tables)
        state_dtype = torch.float64 if dtype == torch.float64 else \
            torch.float32
        size = rows if optimizer == "rowwise_adagrad" else total
        fill = initial_accumulator_value if optimizer != "adam" else 0.0
        for name in _fused.STATE_NAMES[optimizer]:
            self.register_buffer("state_" + name,
                                 torch.full((size,), float(fill),
                                            dtype=state_dtype))
        if optimizer == "adam":
            self.register_buffer("state_step",
                                 torch.zeros((), dtype=torch.int64))
        self._placeholder = torch.zeros((), requires_grad=True)

    @classmethod
    def from_modules(cls, bags, **kwargs):
        """One collection of the tables of torch.nn.EmbeddingBag modules
        (copies of their weights, modes and padding_idx)."""
        from ._multi import Table
        for b in bags:
            if getattr(b, "max_norm", None) is not None or getattr(
                    b, "scale_grad_by_freq", False):
                raise EmbValueError("max_norm and scale_grad_by_freq are not "
                                    "supported by FusedEmbeddingBagCollection")
        tables = [Table(b.num_embeddings, b.embedding_dim, b.mode,
                        b.padding_idx) for b in bags]
        dtypes = {b.weight.dtype for b in bags}
        if len(dtypes) != 1:
            raise EmbValueError("the tables must share one dtype, got "
                                f"{sorted(map(str, dtypes))}")
        module = cls(tables, dtype=dtypes.pop(), **kwargs)
        with torch.no_grad():
            for view, bag in zip(module.table_weights(), bags):
                view.copy_(bag.weight)
        return module

    def _parts(self, flat, per_row):
        """The [V_t, D_t] (or [V_t] with per_row) views of a flat buffer."""
        views, at = [], 0
        for t in self.tables:
            n = t.num_embeddings * (1 if per_row else t.embedding_dim)
            view = flat[at:at + n]
            views.append(view if per_row else
                         view.view(t.num_embeddings, t.embedding_dim))
            at += n
        return views

    def table_weights(self):
        """The [V_t, D_t] view of each table in `weight`."""
        return self._parts(self.weight, False)

    def forward(self, values, offsets, per_sample_weights=None):
        return self._run(values, offsets, per_sample_weights)

    def _pool(self, input, offsets, per_sample_weights):
        from ._multi import embedding_bag_tables
        return embedding_bag_tables(input, offsets, self.weight, self.tables,
                                    per_sample_weights), None

    def _slices(self, grad, input, offsets, psw):
        return table_slices(self.tables, grad, input, offsets, psw)

    def _psw_grad(self, grad, input, offsets):
        gpsw = torch.zeros(input.shape, dtype=grad.dtype)
        weights = self.table_weights()
        for t, table, g, x, off, _, lo, hi in self._slices(grad, input,
                                                          offsets, None):
            if hi > lo:
                gpsw[lo:hi] = F.embedding_bag_per_sample_weights_backward(
                    g, weights[t], x, off, mode=table.mode,
                    include_last_offset=True, padding_idx=table.padding_idx)
        return gpsw

    def _step(self, grad, input, offsets, psw, max_indices):
        hyper = self._hyper()  # one step (Adam's t) for every table
        if all(t.mode != "max" for t in self.tables):
            # Every table in one call (one kernel).
            hyper.pop("profile")
            _fused.embedding_bag_tables_update(
                grad, input, offsets, self.weight.detach(), self.tables,
                self._states(), self.optimizer, per_sample_weights=psw,
                **hyper)
            self._stepped(hyper)
            return
        # A max table's step needs its forward's argmax: table by table.
        rowwise = self.optimizer == "rowwise_adagrad"
        weights = self.table_weights()
        states = [self._parts(s, rowwise) for s in self._states()]
        for t, table, g, x, off, p, lo, hi in self._slices(grad, input,
                                                          offsets, psw):
            if table.num_embeddings * table.embedding_dim == 0:
                continue
            argmax = None
            if table.mode == "max":
                _, argmax = F.embedding_bag(
                    x, weights[t], off, mode="max", include_last_offset=True,
                    padding_idx=table.padding_idx, return_max_indices=True)
            _fused.embedding_bag_update(
                g, x, off, weights[t], [s[t] for s in states], self.optimizer,
                mode=table.mode, per_sample_weights=p,
                include_last_offset=True, padding_idx=table.padding_idx,
                max_indices=argmax, **hyper)
        self._stepped(hyper)

    def extra_repr(self):
        s = ", ".join(f"({t.num_embeddings}, {t.embedding_dim}, {t.mode!r})"
                      for t in self.tables)
        return (f"[{s}], optimizer={self.optimizer!r}, lr={self.lr}, "
                f"eps={self.eps}")
