"""Errors of the model registry and of model execution: all :class:`InputError` subclasses,
so that the CLI and the collective checks report them as one clear message."""

from __future__ import annotations

from hpcdist.runtime.errors import InputError

__all__ = [
    "ModelError",
    "ModelNotFound",
    "ModelExists",
    "CorruptedModel",
    "UntrustedModel",
    "UnsupportedModel",
    "ModelTooLarge",
]


class ModelError(InputError):
    """Base class of the model registry's errors."""


class ModelNotFound(ModelError, KeyError):
    """No model of that name, or no such version of it."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class ModelExists(ModelError):
    """``register(..., version=v)`` for a version that already exists."""


class CorruptedModel(ModelError):
    """An entry whose manifest does not parse or whose files do not match their checksums."""


class UntrustedModel(ModelError):
    """A model that would need pickle without ``trusted=True``, or a pickle this registry did not write."""


class UnsupportedModel(ModelError):
    """A model no serializer can store (neither arrays, nor scikit-learn with skops, nor trusted pickle)."""


class ModelTooLarge(ModelError):
    """A model larger than a memory budget or than every worker's memory."""
