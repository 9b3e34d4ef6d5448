"""Data-parallel training, the MPI way: every rank holds a shard, gradients are summed
with one ``Allreduce`` per step, and the result does not depend on the rank count.

How a minibatch is defined so that the rank count cannot matter: the rows of the
global data set are numbered ``0 .. n-1`` in rank order (rank r's shard is the
contiguous block after the shards of ranks ``< r``). Every epoch draws one
permutation of ``0 .. n-1`` from ``seed`` (the same on every rank); minibatch ``b`` is
``perm[b*B:(b+1)*B]``, a set of *global* indices. Each rank sums the loss gradient over
the rows of that set it holds (zero when it holds none), the sums are added with
``Allreduce`` and divided by the global batch size. That is exactly the single-process
minibatch step; only the order of the floating-point additions differs (about 1e-16
relative). ``batch_size=None`` is full-batch gradient descent.

The adapter interface (:class:`GradientModel`) is what the built-in models implement:
``get_params``, ``set_params`` and ``loss_grad_sum(X, y) -> (loss_sum, grad_sums)``.

Failures cannot deadlock: the reduced buffer ends with ``[loss, failed]``. A rank whose
gradient computation raises (a label out of range in its shard, a model bug) sends
zeros with ``failed = 1`` through the same ``Allreduce`` as everyone else, so every
rank learns of it in that step and raises the same :class:`InputError` (the failing
rank's exception is chained on that rank). Before the first step the ranks check
together that their shards have the same row shape and that they start from the same
parameters (a SHA-256 of the parameter bytes, allgathered: a mismatch is an error, not
silently overwritten by a broadcast, because it means the caller built different
models on different ranks).
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

import numpy as np

from hpcdist.runtime.errors import InputError, agree, collective

__all__ = ["GradientModel", "train_data_parallel", "train_local", "shard"]


class GradientModel(Protocol):
    """What :func:`train_data_parallel` needs from a model (numpy gradients)."""

    def get_params(self) -> dict[str, np.ndarray]: ...

    def set_params(self, params: dict[str, np.ndarray]) -> None: ...

    def loss_grad_sum(self, X: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """Loss and gradient *summed* (not averaged) over the rows of ``X``."""
        ...


def shard(X: Any, comm: Any) -> Any:
    """This rank's contiguous block of ``X`` (rows), as :func:`train_data_parallel` numbers them.

    Pure arithmetic on ``len(X)``, the communicator's size and rank; no communication.
    """
    from hpcdist.runtime.ranges import owned_range

    lo, hi = owned_range(len(X), comm.Get_size(), comm.Get_rank())
    return X[lo:hi]


def _check(model: Any, X: Any, y: Any, epochs: int, batch_size: int | None, lr: float) -> None:
    for attr in ("get_params", "set_params", "loss_grad_sum"):
        if not callable(getattr(model, attr, None)):
            raise InputError(f"train_data_parallel needs a model with {attr}() (see hpcdist.models.GradientModel); "
                             f"{type(model).__name__} has none")
    if len(X) != len(y):
        raise InputError(f"X has {len(X)} rows but y has {len(y)}")
    if int(epochs) < 0:
        raise InputError(f"epochs must be >= 0, got {epochs}")
    if batch_size is not None and int(batch_size) < 1:
        raise InputError(f"batch_size must be >= 1 or None, got {batch_size}")
    if not np.isfinite(lr) or lr <= 0:
        raise InputError(f"lr must be a positive number, got {lr}")


def _ensure_initialized(model: Any, n_features: int) -> None:
    ensure = getattr(model, "ensure_initialized", None)
    if callable(ensure):
        ensure(n_features)


def _run(model: Any, X: np.ndarray, y: np.ndarray, lo: int, n_total: int, epochs: int, batch_size: int | None,
         lr: float, seed: int, allreduce: Any, fail: Any) -> list[float]:
    """The training loop shared by the SPMD and the local trainer.

    ``X``/``y`` are this rank's rows ``lo .. lo+len(X)`` of ``n_total``; ``allreduce`` sums a
    float64 buffer in place across ranks (identity in one process). When the reduced
    failure count is nonzero, ``fail(error_or_None, n_failed, epoch, step)`` is called on
    every rank and must raise.
    """
    params = model.get_params()
    names = sorted(params)
    shapes = [np.shape(params[k]) for k in names]
    sizes = [int(np.prod(s)) for s in shapes]
    buf = np.empty(sum(sizes) + 2)  # the gradients, then [loss, failed]
    hi = lo + len(X)
    B = n_total if batch_size is None else min(int(batch_size), n_total)
    rng = np.random.default_rng(seed)
    history = []
    for epoch in range(int(epochs)):
        if batch_size is None:
            batches = [None]
        else:
            perm = rng.permutation(n_total)
            batches = [perm[s:s + B] for s in range(0, n_total, B)]
        epoch_loss = 0.0
        for step, idx in enumerate(batches):
            if idx is None:
                Xb, yb, n_b = X, y, n_total
            else:
                mine = idx[(idx >= lo) & (idx < hi)] - lo
                Xb, yb, n_b = X[mine], y[mine], len(idx)
            buf[:] = 0.0
            error: BaseException | None = None
            if len(Xb):
                try:
                    loss, grads = model.loss_grad_sum(Xb, yb)
                    off = 0
                    for k, size in zip(names, sizes):
                        buf[off:off + size] = np.asarray(grads[k], dtype=np.float64).ravel()
                        off += size
                    buf[-2] = loss
                except Exception as exc:  # noqa: BLE001 - reported to every rank below, never swallowed
                    # The other ranks are about to enter the Allreduce: join it, flagged.
                    buf[:] = 0.0
                    buf[-1] = 1.0
                    error = exc
            allreduce(buf)
            if buf[-1]:
                fail(error, int(round(buf[-1])), epoch, step)
            params = model.get_params()
            off = 0
            new = {}
            for k, shape, size in zip(names, shapes, sizes):
                new[k] = params[k] - (lr / n_b) * buf[off:off + size].reshape(shape)
                off += size
            model.set_params(new)
            epoch_loss += buf[-2]
        history.append(epoch_loss / n_total)
    return history


def train_local(model: Any, X: Any, y: Any, epochs: int = 10, batch_size: int | None = None, lr: float = 0.1,
                seed: int = 0) -> Any:
    """Single-process training with exactly the steps of :func:`train_data_parallel` (no MPI).

    Returns the model (trained in place); ``model.history_`` holds the mean loss per epoch.
    """
    _check(model, X, y, epochs, batch_size, lr)
    X = _as_float64(X)
    y = np.asarray(y)
    _ensure_initialized(model, _n_features(X))

    def fail(error: BaseException | None, n_failed: int, epoch: int, step: int) -> None:
        raise InputError(_failure_message(error, None, n_failed, epoch, step)) from error

    history = _run(model, X, y, 0, len(X), epochs, batch_size, lr, seed, lambda buf: None, fail)
    _set_history(model, history)
    return model


def _as_float64(X: Any) -> np.ndarray:
    try:
        return np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"X cannot be read as a float64 array ({exc})") from exc


def _failure_message(error: BaseException | None, rank: int | None, n_failed: int, epoch: int, step: int) -> str:
    where = "" if rank is None else f" on rank {rank}"
    if rank is not None and n_failed > 1:
        where += f" (and {n_failed - 1} other rank{'s' if n_failed > 2 else ''})"
    what = f"{type(error).__name__}: {error}" if error is not None else "unknown error"
    return f"training failed{where} computing the gradient of epoch {epoch}, step {step}: {what}"


def _params_digest(model: Any) -> bytes:
    """SHA-256 of the parameters' names, dtypes, shapes and bytes (32 bytes to allgather)."""
    h = hashlib.sha256()
    params = model.get_params()
    for k in sorted(params):
        a = np.ascontiguousarray(params[k])
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.digest()


def _ranks_differing(values: list[Any]) -> list[int]:
    return [r for r, v in enumerate(values) if v != values[0]]


def _n_features(X: np.ndarray) -> int:
    return int(np.prod(X.shape[1:])) if X.ndim > 1 else (1 if len(X) else 0)


def _set_history(model: Any, history: list[float]) -> None:
    try:
        model.history_ = history
    except AttributeError:  # a model with __slots__: the history is optional
        pass


def train_data_parallel(model: Any, X: Any, y: Any, epochs: int = 10, batch_size: int | None = None,
                        lr: float = 0.1, comm: Any = None, *, seed: int = 0, full_data: bool = False) -> Any:
    """Train ``model`` on the union of every rank's shard; equal to single-process training.

    Collective over ``comm``.

    Parameters
    ----------
    model : GradientModel
        A built-in model (:class:`LinearRegression`, :class:`LogisticRegression`,
        :class:`MLP`) or any object with ``get_params``, ``set_params`` and
        ``loss_grad_sum``. Every rank must start from the same parameters (build it
        with the same seed everywhere).
    X, y : array_like
        This rank's shard: rows of the global data set, the shards in rank order
        (:func:`shard` cuts a full array that way). Shards may be uneven or empty.
    epochs : int
    batch_size : int, optional
        Global minibatch size (the same index sets whatever the rank count); None is
        full-batch gradient descent.
    lr : float
        Step size; each step is ``params -= lr * sum_of_gradients / global_batch_size``.
    comm : mpi4py.MPI.Intracomm, optional
        ``COMM_WORLD`` when None (duplicated for the call).
    seed : int
        Seed of the per-epoch permutations (the same on every rank).
    full_data : bool
        Every rank passes the *whole* data set and keeps its own block (:func:`shard`)
        instead of passing its shard.

    Returns
    -------
    model
        The same object, trained in place, identical on every rank; ``model.history_``
        holds the mean loss per epoch (global).

    Raises
    ------
    InputError
        On every rank, together: bad arguments on any rank; shards whose rows differ in
        shape between ranks; ranks that start from different parameters; or a gradient
        computation that raised on some rank (its exception is chained there; the
        parameters are left at the last completed step).

    Notes
    -----
    One ``Allreduce`` of all gradients, the loss and a failure count (one float64
    buffer) per step. Each rank draws the global permutation itself: O(n) integers per
    rank per epoch, no data moves between ranks. Before the first step, two small
    ``allgather`` calls: the row shapes of every shard, and a SHA-256 of every rank's
    initial parameters.
    """
    from hpcdist.runtime.comm import MPI, as_comm

    own = comm is None
    comm = as_comm(comm) if own else comm
    try:
        with collective(comm):
            _check(model, X, y, epochs, batch_size, lr)
            X = _as_float64(X)
            y = np.asarray(y)
            if full_data:
                X, y = shard(X, comm), shard(y, comm)
        # Row shapes of the non-empty shards (an empty one may not know them). Every rank
        # judges the same gathered list, so all raise together without another round.
        shapes = comm.allgather((X.shape[1:], y.shape[1:]) if len(X) else None)
        known = {r: s for r, s in enumerate(shapes) if s is not None}
        if len(set(known.values())) > 1:
            desc = "; ".join(f"rank {r}: X rows {s[0]}, y rows {s[1]}" for r, s in known.items())
            raise InputError(f"train_data_parallel: the shards' rows differ in shape between ranks ({desc})")
        n_local = len(X)
        lo = comm.exscan(n_local) if comm.Get_size() > 1 else 0
        lo = lo or 0  # exscan leaves rank 0 undefined (None)
        n_total = comm.allreduce(n_local)
        with collective(comm):
            if n_total == 0:
                raise InputError("train_data_parallel: no rows on any rank")

        def allreduce(buf: np.ndarray) -> None:
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)

        n_features = comm.allreduce(_n_features(X), op=MPI.MAX)  # an empty shard may not know it
        with collective(comm):
            _ensure_initialized(model, n_features)
        digests = comm.allgather(_params_digest(model))
        differ = _ranks_differing(digests)
        if differ:
            raise InputError(f"train_data_parallel: ranks {differ} start from parameters different from rank 0's; "
                             "build the model with the same arguments and seed on every rank")

        def fail(error: BaseException | None, n_failed: int, epoch: int, step: int) -> None:
            # Every rank is here (the failure count came through the Allreduce); agree()
            # sends the lowest failing rank's message to all, and the failing rank keeps
            # its own exception as the cause.
            mine = InputError(_failure_message(error, comm.Get_rank(), n_failed, epoch, step)) if error is not None else None
            try:
                agree(comm, mine)
            except InputError as agreed:
                raise agreed from error
            raise InputError(_failure_message(None, None, n_failed, epoch, step))  # unreachable: agree raised

        history = _run(model, X, y, lo, n_total, epochs, batch_size, lr, seed, allreduce, fail)
        _set_history(model, history)
        return model
    finally:
        if own:
            comm.Free()
