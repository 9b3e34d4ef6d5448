"""Result validators for model outputs: shape, dtype, finiteness, or any callable.

A validator returns True (accept) or False (reject). ``farm.predict_batch(validate=...)``
runs it on the worker right after the prediction; a rejection makes that attempt a
``ResultRejected`` error, retried on another worker as far as ``retries`` allow.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from hpcdist.runtime.errors import InputError

__all__ = ["ResultValidator", "as_validator", "finite", "has_shape", "has_dtype"]


class ResultValidator:
    """Accept an array result only if it has this shape, dtype, finiteness and passes ``check``.

    Parameters
    ----------
    shape : tuple, optional
        Expected shape; ``None`` entries match any length (``(None, 3)``: any rows,
        three columns).
    dtype : dtype-like or str, optional
        Exact dtype (``"float64"``), or a kind: ``"floating"``, ``"integer"``, ``"bool"``.
    finite : bool
        Reject NaN and infinities.
    check : callable, optional
        ``check(value)`` must be truthy.
    """

    def __init__(self, shape: Sequence[int | None] | None = None, dtype: Any = None, finite: bool = False,
                 check: Callable[[Any], Any] | None = None) -> None:
        self.shape = None if shape is None else tuple(None if s is None else int(s) for s in shape)
        self.dtype = dtype
        self.finite = bool(finite)
        self.check = check
        if check is not None and not callable(check):
            raise InputError(f"check must be callable, got {type(check).__name__}")
        if dtype is not None and dtype not in _KINDS:
            np.dtype(dtype)  # raises TypeError on nonsense early, on the coordinator

    def __call__(self, value: Any) -> bool:
        if self.shape is not None or self.dtype is not None or self.finite:
            arr = np.asarray(value)
            if self.shape is not None:
                if arr.ndim != len(self.shape) or any(s is not None and s != a for s, a in zip(self.shape, arr.shape)):
                    return False
            if self.dtype is not None:
                if self.dtype in _KINDS:
                    if not np.issubdtype(arr.dtype, _KINDS[self.dtype]):
                        return False
                elif arr.dtype != np.dtype(self.dtype):
                    return False
            if self.finite and np.issubdtype(arr.dtype, np.inexact) and not np.isfinite(arr).all():
                return False
        return bool(self.check(value)) if self.check is not None else True

    def __repr__(self) -> str:
        return f"ResultValidator(shape={self.shape}, dtype={self.dtype!r}, finite={self.finite}, check={self.check!r})"


_KINDS = {"floating": np.floating, "integer": np.integer, "bool": np.bool_, "number": np.number}


def finite(value: Any) -> bool:
    """True when every element is finite (non-float arrays always are)."""
    return ResultValidator(finite=True)(value)


def has_shape(*shape: int | None) -> ResultValidator:
    """A validator accepting arrays of this shape.

    Parameters
    ----------
    *shape : int or None
        The expected length of each axis; ``None`` matches any (``has_shape(None, 3)``:
        any number of rows, three columns).

    Returns
    -------
    ResultValidator
    """
    return ResultValidator(shape=shape)


def has_dtype(dtype: Any) -> ResultValidator:
    """A validator accepting arrays of this dtype.

    Parameters
    ----------
    dtype : dtype-like or str
        An exact dtype (``"float64"``) or a kind: ``"floating"``, ``"integer"``,
        ``"bool"``, ``"number"``.

    Returns
    -------
    ResultValidator
    """
    return ResultValidator(dtype=dtype)


class _All:
    def __init__(self, validators: Sequence[Callable[[Any], Any]]) -> None:
        self.validators = list(validators)

    def __call__(self, value: Any) -> bool:
        return all(v(value) for v in self.validators)

    def __repr__(self) -> str:
        return " and ".join(map(repr, self.validators))


def as_validator(validate: Any) -> Callable[[Any], Any] | None:
    """A validator from ``None``, a callable, a dict of :class:`ResultValidator` arguments,
    the string ``"finite"``, or a list of any of these (all must accept)."""
    if validate is None:
        return None
    if isinstance(validate, str):
        if validate == "finite":
            return ResultValidator(finite=True)
        raise InputError(f"unknown validator {validate!r}; use 'finite', a dict (shape=, dtype=, finite=, check=) or a callable")
    if isinstance(validate, dict):
        return ResultValidator(**validate)
    if isinstance(validate, (list, tuple)):
        return _All([as_validator(v) for v in validate])
    if callable(validate):
        return validate
    raise InputError(f"validate must be a callable, a dict, 'finite' or a list of them, got {type(validate).__name__}")
