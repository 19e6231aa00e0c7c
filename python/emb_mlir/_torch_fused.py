"""emb_mlir.torch's modules whose backward is fused with the optimizer
(docs/semantics.md §6.4), like FBGEMM's split-table batched embeddings:
`loss.backward()` updates the weight and the optimizer state in place and
leaves no `.grad`; no [V, D] gradient is ever made.

    bag = FusedEmbeddingBag(1_000_000, 128, mode="sum",
                            optimizer="rowwise_adagrad", lr=0.01)
    loss = model(bag(ids, offsets)).sum(); loss.backward()  # the step is done
    bag.lr = 0.005                                           # a schedule

The weight is a Parameter that does not require grad (torch optimizers and
clip_grad see nothing to do); the states are buffers (`state_sum`, or
`state_exp_avg`, `state_exp_avg_sq` and `state_step` for Adam), so
`state_dict` checkpoints the whole training state.
"""

import torch
from torch.autograd.function import once_differentiable

from . import _fused
from . import _functional as F
from ._errors import EmbValueError

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


class _FusedBase(torch.nn.Module):
    def _init_fused(self, num_embeddings, embedding_dim, padding_idx,
                    max_norm, norm_type, scale_grad_by_freq, _weight, dtype,
                    optimizer, lr, eps, weight_decay, betas,
                    initial_accumulator_value, profile, huge_pages):
        _fused._optimizer(optimizer)
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
        """The step's hyper-parameters; Adam's counter moves first."""
        step = 1
        if self.optimizer == "adam":
            self.state_step += 1
            step = int(self.state_step)
        return dict(lr=self.lr, eps=self.eps, weight_decay=self.weight_decay,
                    betas=self.betas, step=step, profile=self.profile)

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self._placeholder = torch.zeros((), requires_grad=True)
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
        return cls(rows, cols, _weight=embeddings.detach().clone(), **kwargs)

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
        _fused.embedding_bag_update(
            grad, input, offsets, self.weight.data, self._states(),
            self.optimizer, mode=self.mode, per_sample_weights=psw,
            include_last_offset=self.include_last_offset,
            padding_idx=self.padding_idx,
            scale_grad_by_freq=self.scale_grad_by_freq,
            max_indices=max_indices, **self._hyper())

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
        return cls(rows, cols, _weight=embeddings.detach().clone(), **kwargs)

    def forward(self, input):
        return self._run(input, None, None)

    def _pool(self, input, offsets, per_sample_weights):
        return F.embedding(input, self.weight, self.padding_idx,
                           self.max_norm, self.norm_type,
                           self.scale_grad_by_freq, False,
                           profile=self.profile), None

    def _step(self, grad, input, offsets, psw, max_indices):
        _fused.embedding_update(
            grad, input, self.weight.data, self._states(), self.optimizer,
            padding_idx=self.padding_idx,
            scale_grad_by_freq=self.scale_grad_by_freq, **self._hyper())
