"""The exceptions of emb_mlir.

Each keeps the precise class (IndexError for an index out of range,
TypeError for a dtype, ValueError for any other bad argument) and is also a
RuntimeError, the class torch raises for all of them: code written for
torch (`except RuntimeError`) catches ours, and code that wants the kind
catches that. EmbError alone: an error the engine did not classify (e.g. a
kernel that failed to compile).
"""


class EmbError(RuntimeError):
    """Any error of an emb_mlir call."""


class EmbIndexError(IndexError, EmbError):
    """An index (or offset) out of range."""


class EmbTypeError(TypeError, EmbError):
    """A tensor of a dtype the call does not take."""


class EmbValueError(ValueError, EmbError):
    """Any other bad argument: a shape, an option, a combination."""
