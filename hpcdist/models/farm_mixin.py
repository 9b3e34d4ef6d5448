"""Models on the farm: ``predict_batch`` in four modes and ``train_ensemble``, as a mixin of :class:`Farm`.

The coordinator resolves the model version once (so a concurrent ``update`` cannot mix
versions within one call), cuts the input into batches and keeps a bounded window of
them in flight; workers load the model lazily through their process-wide
:func:`~hpcdist.models.cache.worker_cache` and keep it. Under the ``affinity``
strategy each task carries the label ``model:NAME:VERSION`` so that it goes to a
worker that already holds the model (the strategy learns holders as it routes).

Nothing here imports the farm at module level: :mod:`hpcdist.farm.executor` imports
this module to build ``Farm``.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from hpcdist.models.cache import worker_cache
from hpcdist.models.errors import ModelError, ModelTooLarge
from hpcdist.models.registry import ModelInfo, ModelRegistry, model_label
from hpcdist.models.validators import as_validator
from hpcdist.runtime.errors import InputError

__all__ = ["ModelFarmMixin", "ModelRef", "ModelOutput", "PredictReport", "run_model", "MODES", "batch_bounds",
           "auto_batch_size"]

MODES = ("single", "parallel", "batch", "pipeline")
#: Rows per batch when ``batch_size`` is None: enough batches per worker that, with the
#: last ones cut in half (:func:`batch_bounds`), the workers end within about half a
#: batch of each other; each task costs about a millisecond on the coordinator and the
#: worker, so 16 batches of a long prediction lose far less to that than to a long tail ...
BATCHES_PER_WORKER = 16
#: ... within these bounds on a batch's input bytes: large enough that a batch's data
#: outweighs its messages, small enough that the window of batches stays small.
MIN_BATCH_BYTES = 64 << 10
TARGET_BATCH_BYTES = 4 << 20


@dataclass(frozen=True)
class ModelRef:
    """What a worker needs to find a model: the registry's path, name, resolved version."""

    root: str
    name: str
    version: int
    nbytes: int
    cache_bytes: int | None = None

    @property
    def label(self) -> str:
        return model_label(self.name, self.version)


class ModelOutput:
    """A task's result: the model's output and whether the worker had the model cached."""

    __slots__ = ("value", "hit")

    def __init__(self, value: Any, hit: bool) -> None:
        self.value = value
        self.hit = hit

    def __reduce__(self):
        return (ModelOutput, (self.value, self.hit))

    def __repr__(self) -> str:
        shape = getattr(self.value, "shape", None)
        return f"ModelOutput({'shape=' + str(shape) if shape is not None else repr(self.value)[:80]}, hit={self.hit})"


_registries: dict[str, ModelRegistry] = {}


def _load(ref: ModelRef) -> tuple[Any, bool]:
    cache = worker_cache()
    if ref.cache_bytes is not None and cache.budget != ref.cache_bytes:
        cache.resize(ref.cache_bytes)
    reg = _registries.get(ref.root)
    if reg is None:
        reg = _registries[ref.root] = ModelRegistry(ref.root)
    return cache.get((ref.root, ref.name, ref.version), lambda: (reg.load(ref.name, ref.version), ref.nbytes))


def run_model(ref: ModelRef, X: Any, method: str = "predict") -> ModelOutput:
    """The task a worker runs: ``getattr(model, method)(X)`` with the model from the cache."""
    if isinstance(X, ModelOutput):
        X = X.value
    model, hit = _load(ref)
    return ModelOutput(getattr(model, method)(X), hit)


def run_model_after(previous: ModelOutput, ref: ModelRef, method: str = "predict") -> ModelOutput:
    """A pipeline stage: the previous stage's output (a dependency's result) comes first."""
    return run_model(ref, previous, method)


class _OnValue:
    """A user's validator applied to the prediction inside a :class:`ModelOutput`."""

    __slots__ = ("validator",)

    def __init__(self, validator: Callable[[Any], Any]) -> None:
        self.validator = validator

    def __call__(self, out: ModelOutput) -> Any:
        return self.validator(out.value)

    def __reduce__(self):
        return (_OnValue, (self.validator,))

    def __repr__(self) -> str:
        return repr(self.validator)


@dataclass
class PredictReport:
    """What the last ``predict_batch`` did (``farm.last_predict``).

    ``workers[i]`` lists the ranks that produced batch ``i`` (one per model task of the
    batch, in submission order) and ``hits[i]`` whether each had its model cached.
    """

    mode: str
    n_batches: int = 0
    n_rows: int = 0
    seconds: float = 0.0
    batch_rows: list[int] = field(default_factory=list)
    workers: list[list[int | None]] = field(default_factory=list)
    hits: list[list[bool]] = field(default_factory=list)
    models: list[str] = field(default_factory=list)

    @property
    def n_hits(self) -> int:
        return sum(sum(h) for h in self.hits)

    @property
    def n_loads(self) -> int:
        return sum(len(h) - sum(h) for h in self.hits)

    @property
    def hit_rate(self) -> float:
        total = self.n_hits + self.n_loads
        return self.n_hits / total if total else 0.0


# ----------------------------------------------------------------------------- inputs
def _n_rows(X: Any) -> int | None:
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape):
        return int(shape[0])
    return None


def batch_bounds(n: int, batch_size: int, tail_workers: int = 0) -> list[tuple[int, int]]:
    """Row ranges ``[(start, stop), ...]`` of ``n`` rows cut into batches of ``batch_size``.

    With ``tail_workers`` >= 2, the last ``tail_workers * batch_size`` rows (or fewer) go
    in batches of half the size: a worker that takes the last batch then keeps the
    others waiting about half as long. Every batch has at most ``batch_size`` rows.

    >>> batch_bounds(10, 4)
    [(0, 4), (4, 8), (8, 10)]
    >>> batch_bounds(10, 4, tail_workers=2)
    [(0, 4), (4, 6), (6, 8), (8, 10)]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    bounds = []
    start = 0
    tail = tail_workers * batch_size if tail_workers >= 2 else 0
    while n - start > tail:
        bounds.append((start, min(n, start + batch_size)))
        start = bounds[-1][1]
    half = max(1, -(-batch_size // 2))
    while start < n:
        bounds.append((start, min(n, start + half)))
        start = bounds[-1][1]
    return bounds


def auto_batch_size(n: int | None, row_bytes: int, n_workers: int) -> int:
    """Rows per batch when ``predict_batch`` gets no ``batch_size``.

    ``BATCHES_PER_WORKER`` batches per worker, each of ``MIN_BATCH_BYTES`` to
    ``TARGET_BATCH_BYTES`` of input (``TARGET_BATCH_BYTES`` for an input of unknown
    length).
    """
    by_bytes = max(1, TARGET_BATCH_BYTES // max(1, row_bytes))
    if n is None:
        return by_bytes
    floor = max(1, MIN_BATCH_BYTES // max(1, row_bytes))
    return max(1, min(by_bytes, max(floor, -(-n // (BATCHES_PER_WORKER * max(1, n_workers))))))


def _batches(X: Any, batch_size: int, tail_workers: int = 0) -> Iterator[np.ndarray]:
    """Batches of rows: slices of an array or an HDF5 dataset (read lazily; see
    :func:`batch_bounds` for ``tail_workers``), or the arrays of an iterator cut to
    ``batch_size``."""
    n = _n_rows(X)
    if n is not None and hasattr(X, "__getitem__"):
        for start, stop in batch_bounds(n, batch_size, tail_workers):
            # C order: a batch then travels out of band, straight from its memory (a no-op
            # for the rows of a C-ordered array); otherwise pickle would copy it in band.
            yield np.ascontiguousarray(X[start:stop])
        return
    for part in X:
        part = np.asarray(part)
        if part.ndim == 0:
            raise InputError("predict_batch: an iterator input must yield arrays of rows, got a scalar")
        for s in range(0, len(part), batch_size):
            yield np.ascontiguousarray(part[s:s + batch_size])


def _row_bytes(X: Any) -> int:
    shape = getattr(X, "shape", None)
    dtype = getattr(X, "dtype", None)
    if shape is None or dtype is None:
        return 8
    return max(1, int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(dtype).itemsize)


# --------------------------------------------------------------------------- combining
def majority_rows(values: Sequence[np.ndarray]) -> np.ndarray:
    """Per-row majority vote over the models' predictions; a tie goes to the earliest model's value.

    The same answer as :func:`hpcdist.farm.aggregation.majority` applied row by row.
    """
    stacked = np.stack([np.asarray(v) for v in values])  # (k, n, ...)
    k = stacked.shape[0]
    flat = stacked.reshape(k, stacked.shape[1], -1)
    counts = np.zeros((k, flat.shape[1]), dtype=np.int64)
    for j in range(k):
        counts[j] = sum((flat[m] == flat[j]).all(axis=-1) for m in range(k))
    best = np.argmax(counts, axis=0)  # first maximum: the earliest model among the tied values
    return stacked[best, np.arange(stacked.shape[1])]


def _aggregate(values: list[Any], aggregate: Any, weights: Sequence[float] | None) -> Any:
    from hpcdist.farm.aggregation import weighted_mean

    if aggregate == "all":
        return values
    if aggregate == "majority":
        return majority_rows(values)
    if aggregate == "weighted_mean":
        return weighted_mean([np.asarray(v, dtype=np.float64) for v in values], weights)
    return aggregate(values)


# ------------------------------------------------------------------------------ mixin
class _Entry:
    """One batch in the window: its futures and how to turn them into the batch's output."""

    __slots__ = ("futures", "rows", "kind")

    def __init__(self, futures: list, rows: int, kind: str) -> None:
        self.futures = futures
        self.rows = rows
        self.kind = kind


class ModelFarmMixin:
    """``predict_batch`` and ``train_ensemble`` for :class:`hpcdist.Farm` (coordinator side).

    Uses only the farm's public surface: ``submit`` (with ``requires``, ``after``,
    ``validate``, ``retries``), ``task``, ``workers``, ``strategy``, ``progress``.
    """

    #: The report of the last :meth:`predict_batch` on this farm.
    last_predict: PredictReport | None = None

    # ------------------------------------------------------------------ helpers
    def _model_refs(self, name: Any, registry: ModelRegistry | None, version: int | None,
                    cache_bytes: Any) -> list[tuple[ModelRef, ModelInfo]]:
        from hpcdist.farm.requirements import parse_memory

        if registry is None:
            raise InputError("predict_batch needs registry= (a hpcdist.ModelRegistry)")
        if not isinstance(registry, ModelRegistry):
            registry = ModelRegistry(registry)
        items = name if isinstance(name, (list, tuple)) and not _is_name_version(name) else [name]
        if not items:
            raise InputError("predict_batch: no model given")
        budget = parse_memory(cache_bytes)
        out = []
        for item in items:
            if isinstance(item, ModelInfo):
                n, v = item.name, item.version
            elif _is_name_version(item):
                n, v = item
            else:
                n, v = item, version
            info = registry.info(n, v)
            out.append((ModelRef(str(registry.path), info.name, info.version, info.nbytes, budget), info))
        return out

    def _requirements(self, ref: ModelRef, info: ModelInfo, override: Any = None) -> Any:
        """The task's requirements: the model's own, plus its label under a label-preferring strategy.

        Checked at once against every worker (a clear :class:`ModelTooLarge` or
        :class:`ModelError` instead of work that can never run).
        """
        from hpcdist.farm.requirements import Requirements, format_bytes

        req = info.requires or {}
        if override is not None:
            from hpcdist.models.registry import _requires_dict

            req = {**req, **_requires_dict(override)}
        learn = not getattr(self.strategy, "labels_required", True)  # type: ignore[attr-defined]
        requires = Requirements(cpus=req.get("cpus", 1), memory=req.get("memory"), gpu=req.get("gpu", 0),
                                labels={ref.label} if learn else ())
        workers = [w for w in self.workers() if w.status.value != "offline"]  # type: ignore[attr-defined]
        if not workers:
            return requires
        fits = [w for w in workers if requires.satisfied_by(w.caps, labels=False)]
        if not fits:
            lines = "; ".join(f"{w.caps.describe()} (lacks {', '.join(requires.unmet(w.caps, labels=False))})"
                              for w in workers)
            cls = ModelTooLarge if requires.memory_bytes is not None and all(
                "memory" in " ".join(requires.unmet(w.caps, labels=False)) for w in workers) else ModelError
            raise cls(f"model {ref.name!r} version {ref.version} needs {requires.describe()}, which no worker "
                      f"meets: {lines}")
        known = [w.caps.memory for w in workers if w.caps.memory is not None]
        if known and info.nbytes > max(known):
            raise ModelTooLarge(f"model {ref.name!r} version {ref.version} takes {format_bytes(info.nbytes)}, "
                                f"more than any worker's memory (largest {format_bytes(max(known))})")
        return requires

    def _submit_model(self, ref: ModelRef, requires: Any, X: Any, method: str, validator: Any, retries: int | None,
                      timeout: Any, priority: int, after: list | None = None) -> Any:
        kw: dict[str, Any] = dict(requires=requires, priority=priority, validate=validator, retries=retries)
        if timeout is not None:
            kw["timeout"] = timeout
        if after:
            return self.submit(run_model_after, ref, method, after=after, **kw)  # type: ignore[attr-defined]
        return self.submit(run_model, ref, X, method, **kw)  # type: ignore[attr-defined]

    # -------------------------------------------------------------- predict_batch
    def predict_batch(self, name: Any, X: Any, registry: ModelRegistry | str | None = None,
                      batch_size: int | None = None, *, version: int | None = None, mode: str = "batch",
                      method: str = "predict", replicas: int | None = None, aggregate: Any = "all",
                      weights: Sequence[float] | None = None, validate: Any = None, retries: int | None = None,
                      timeout: float | None = None, out: Any = None, max_in_flight: int | None = None,
                      progress: bool | None = None, cache_bytes: int | str | None = None,
                      requires: Any = None, priority: int = 0, validator: Any = None) -> Any:
        """Run a registered model over the rows of ``X`` on the workers; the output in input order.

        Equal to ``registry.load(name).predict(X)`` in one process (for models whose
        rows are predicted independently).

        Parameters
        ----------
        name : str, (str, int), ModelInfo, or a list of them
            The model (``mode`` ``"batch"``/``"single"``), the ensemble members
            (``"parallel"``) or the stages in order (``"pipeline"``).
        X : array, list of rows, h5py.Dataset or iterable of arrays
            Rows to predict. A list or tuple whose first element is a row (a scalar or
            1-D) is the rows themselves (``np.asarray(X)``); any other iterable yields
            arrays of rows. A dataset is read batch by batch and an iterator consumed
            lazily, so inputs larger than memory stream through a bounded window.
        registry : ModelRegistry or path
        batch_size : int, optional
            Rows per task, exactly (the last batch may be shorter). Default: about 16
            batches per worker, each of 64 KiB to 4 MiB of input, the last
            ``n_workers`` batches' worth of rows in half-size batches (with two or more
            workers) so that the workers end together
            (:func:`batch_bounds`, :func:`auto_batch_size`).
        version : int, optional
            For names given without one; default the highest (resolved once, here).
        mode : {"batch", "single", "parallel", "pipeline"}
            ``single``: the whole input as one task on one worker. ``batch``: batches
            over the workers. ``parallel``: every batch to ``replicas`` copies of one
            model or to each model of a list, combined by ``aggregate``. ``pipeline``:
            each batch through the stages in order, the stages of different batches
            overlapping (a stage starts as soon as its batch left the previous one).
        method : str
            The model's method to call (``"predict"``, ``"predict_proba"``, ...).
        replicas : int, optional
            ``parallel`` with one model: how many copies run each batch.
        aggregate : {"all", "first", "majority", "weighted_mean"} or callable
            ``parallel`` only: ``all`` gives one output per member; ``first`` the first
            member to finish each batch (the rest cancelled); ``majority`` a per-row vote
            (ties to the earliest member); ``weighted_mean`` with ``weights``; a callable
            gets the list of the members' outputs of each batch and returns that batch's.
        validate : callable, dict, "finite" or list
            Checks each task's output on the worker (see
            :class:`~hpcdist.models.validators.ResultValidator`); a rejection is an
            error retried on another worker. In a pipeline it checks the last stage.
        validator : callable, dict, "finite" or list
            Another name for ``validate`` (give one or the other).
        retries : int, optional
            Default: the farm's, but at least 1 when ``validate`` is given.
        out : array or h5py.Dataset, optional
            Write the output there (rows in input order) instead of returning a new
            array: for outputs larger than memory. Returned as given.
        max_in_flight : int, optional
            Batches submitted and not yet collected (default twice the workers, plus 2).
        progress : bool, optional
            A tqdm bar over rows (default: the farm's ``progress``).
        cache_bytes : int or str, optional
            Each worker's model-cache budget (default 2 GiB).
        requires : Requirements or dict, optional
            What a worker needs to run the model(s) (``memory``, ``cpus``, ``gpu``),
            over the requirements recorded at ``register``. Checked against every
            worker before any task is sent.

        Returns
        -------
        numpy.ndarray, or a list of arrays (``aggregate="all"`` in ``parallel`` mode)
            ``farm.last_predict`` (:class:`PredictReport`) tells which worker ran each
            batch and whether it had the model cached.

        Raises
        ------
        ModelNotFound, ModelTooLarge, ModelError, InputError
            Before any work is sent.
        """
        self._check_open()  # type: ignore[attr-defined]
        if validator is not None:
            if validate is not None:
                raise InputError("predict_batch: give validate= or validator= (the same thing), not both")
            validate = validator
        if isinstance(X, (list, tuple)) and len(X) and np.ndim(X[0]) < 2:
            X = np.asarray(X)  # rows, not an iterable of chunks of rows
        if mode not in MODES:
            raise InputError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        if batch_size is not None and int(batch_size) < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        from hpcdist.farm.aggregation import AGGREGATES

        if mode == "parallel" and not (callable(aggregate) or aggregate in AGGREGATES):
            raise InputError(f"unknown aggregate {aggregate!r}; choose one of {', '.join(AGGREGATES)} or pass a callable")
        refs = self._model_refs(name, registry, version, cache_bytes)
        if mode in ("batch", "single") and len(refs) != 1:
            raise InputError(f"mode={mode!r} runs one model; got {len(refs)} (use mode='parallel' or 'pipeline')")
        if mode == "parallel":
            if replicas is not None:
                if len(refs) != 1 or int(replicas) < 1:
                    raise InputError("replicas= takes one model and a count >= 1")
                refs = refs * int(replicas)
            if aggregate == "weighted_mean" and weights is not None and len(weights) != len(refs):
                raise InputError(f"weighted_mean: {len(weights)} weights for {len(refs)} models")
        task_requires = [self._requirements(ref, info, requires) for ref, info in refs]
        validator = as_validator(validate)
        wrapped = _OnValue(validator) if validator is not None else None
        if retries is None:
            retries = self.settings.retries  # type: ignore[attr-defined]
            if validator is not None:
                retries = max(1, retries)
        n = _n_rows(X)
        n_workers = max(1, self.n_workers)  # type: ignore[attr-defined]
        if mode == "single":
            bs = max(1, n) if n is not None else None
        elif batch_size is not None:
            bs = int(batch_size)
        else:
            bs = auto_batch_size(n, _row_bytes(X), n_workers)
        # Our own choice of batches also evens out the end; a batch_size given is kept exactly.
        tail_workers = n_workers if batch_size is None and mode != "single" else 0
        if bs is None:  # single mode over an iterator: one task over everything
            parts = [np.asarray(p) for p in X]
            X = np.concatenate(parts) if parts else np.empty((0,))
            n = bs = max(1, len(X))
        window = max(1, int(max_in_flight)) if max_in_flight is not None else 2 * n_workers + 2
        report = PredictReport(mode=mode, models=[r.label for r, _ in refs])
        self.last_predict = report
        show = self.progress if progress is None else progress  # type: ignore[attr-defined]
        from hpcdist.farm.mapping import _progress_bar

        bar = _progress_bar(show, n)
        kind = "parallel-" + (aggregate if isinstance(aggregate, str) else "callable") if mode == "parallel" else mode
        sink = _Sink(out, kind, len(refs))
        pending: deque[_Entry] = deque()
        t0 = time.perf_counter()

        def collect(entry: _Entry) -> None:
            value = self._entry_value(entry, aggregate, weights, report)
            sink.add(value, entry.rows)
            report.n_batches += 1
            report.n_rows += entry.rows
            report.batch_rows.append(entry.rows)
            if bar is not None:
                bar.update(entry.rows)

        try:
            for batch in _batches(X, bs, tail_workers):
                if len(batch) == 0:
                    continue
                if mode == "pipeline":
                    futs = []
                    for i, (ref, req) in enumerate(zip((r for r, _ in refs), task_requires)):
                        last = i == len(refs) - 1
                        futs.append(self._submit_model(ref, req, batch, method, wrapped if last else None, retries,
                                                       timeout, priority, after=futs[-1:] if futs else None))
                else:
                    futs = [self._submit_model(ref, req, batch, method, wrapped, retries, timeout, priority)
                            for (ref, _), req in zip(refs, task_requires)]
                pending.append(_Entry(futs, len(batch), kind))
                while len(pending) >= window:
                    collect(pending.popleft())
            while pending:
                collect(pending.popleft())
        except BaseException:
            for entry in pending:
                for f in entry.futures:
                    f.cancel()
            raise
        finally:
            if bar is not None:
                bar.close()
            report.seconds = time.perf_counter() - t0
        return sink.result()

    def _entry_value(self, entry: _Entry, aggregate: Any, weights: Any, report: PredictReport) -> Any:
        futs = entry.futures
        if entry.kind == "parallel-first":
            value, used = self._first_of(futs)
        elif entry.kind.startswith("parallel-") and aggregate == "majority":
            for f in futs:
                f.exception()
            good = [f for f in futs if not f.cancelled() and f.exception() is None]
            if not good:
                raise next(f.exception() for f in futs if not f.cancelled())
            used = good
            value = _aggregate([f.result().value for f in good], aggregate, weights)
        elif entry.kind.startswith("parallel-"):
            used = futs
            value = _aggregate([f.result().value for f in futs], aggregate, weights)
        else:
            used = futs
            value = futs[-1].result().value
        report.workers.append([self._worker_of(f) for f in used])
        report.hits.append([bool(f.result().hit) for f in used])
        return value

    def _first_of(self, futs: list) -> tuple[Any, list]:
        pending = set(futs)
        while pending:
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED, timeout=0.0)
            if not done:
                self.engine.wait_until(lambda: any(f.done() for f in pending), None)  # type: ignore[attr-defined]
                continue
            for f in [f for f in futs if f in done]:
                pending.discard(f)
                if not f.cancelled() and f.exception() is None:
                    for other in pending:
                        other.cancel()
                    return f.result().value, [f]
        raise next((f.exception() for f in futs if not f.cancelled() and f.exception() is not None),
                   cf.CancelledError("every member was cancelled"))

    def _worker_of(self, fut: Any) -> int | None:
        info = self.task(fut.id)  # type: ignore[attr-defined]
        return None if info is None else info.worker

    # ------------------------------------------------------------- train_ensemble
    def train_ensemble(self, name: str, model: Any, X: Any, y: Any, n_members: int = 5,
                       registry: ModelRegistry | str | None = None, *, epochs: int = 10,
                       batch_size: int | None = None, lr: float = 0.1, seed: int = 0, sample_fraction: float = 1.0,
                       tags: Iterable[str] = (), metadata: dict[str, Any] | None = None) -> list[ModelInfo]:
        """Bagging on the farm: each member trained on a bootstrap sample by a worker, then registered.

        Member ``i`` starts from a copy of ``model``, draws ``round(sample_fraction * n)``
        rows with replacement from ``numpy.random.default_rng([seed, i])`` and trains with
        :func:`~hpcdist.models.training.train_local` (``seed=seed + i``): the same member
        whichever worker trains it, and as in a single process. Members are registered by
        the coordinator as ``NAME-m<i>`` (one writer; tags ``ensemble:NAME`` and ``tags``,
        metadata ``ensemble``, ``member``, ``seed`` and ``metadata``).

        Returns
        -------
        list of ModelInfo
            The members in order; pass them to ``predict_batch(..., mode="parallel")``.
        """
        self._check_open()  # type: ignore[attr-defined]
        if registry is None:
            raise InputError("train_ensemble needs registry= (a hpcdist.ModelRegistry)")
        if not isinstance(registry, ModelRegistry):
            registry = ModelRegistry(registry)
        if int(n_members) < 1:
            raise InputError(f"n_members must be >= 1, got {n_members}")
        if not 0 < sample_fraction:
            raise InputError(f"sample_fraction must be > 0, got {sample_fraction}")
        registry._check_name(name)
        X = np.asarray(X)
        y = np.asarray(y)
        if len(X) != len(y):
            raise InputError(f"X has {len(X)} rows but y has {len(y)}")
        futs = [self.submit(train_member, model, X, y, i, seed, sample_fraction, epochs, batch_size, lr)  # type: ignore[attr-defined]
                for i in range(int(n_members))]
        members = []
        for i, f in enumerate(futs):
            trained = f.result()
            meta = {**(metadata or {}), "ensemble": name, "member": i, "seed": seed}
            member = f"{name}-m{i}"
            v = registry.register(member, trained, metadata=meta, tags=(f"ensemble:{name}", *tags))
            members.append(registry.info(member, v))
        return members


def train_member(model: Any, X: np.ndarray, y: np.ndarray, i: int, seed: int, sample_fraction: float, epochs: int,
                 batch_size: int | None, lr: float) -> Any:
    """One bagging member (a farm task; no MPI): bootstrap sample, then local training."""
    import copy

    from hpcdist.models.training import train_local

    rng = np.random.default_rng([int(seed), int(i)])
    idx = rng.integers(0, len(X), size=max(1, int(round(sample_fraction * len(X)))))
    member = copy.deepcopy(model)
    return train_local(member, X[idx], y[idx], epochs=epochs, batch_size=batch_size, lr=lr, seed=int(seed) + int(i))


def _is_name_version(item: Any) -> bool:
    return (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
            and isinstance(item[1], (int, np.integer)) and not isinstance(item[1], bool))


class _Sink:
    """Where batch outputs go: a list to concatenate, or rows of ``out``."""

    def __init__(self, out: Any, kind: str, n_models: int) -> None:
        self.out = out
        self.all = kind == "parallel-all"
        self.n_models = n_models
        self.parts: list[Any] = [] if not self.all else [[] for _ in range(n_models)]
        self.pos = 0

    def add(self, value: Any, rows: int) -> None:
        if self.out is not None:
            if self.all:
                for j, v in enumerate(value):
                    self.out[j][self.pos:self.pos + rows] = v
            else:
                self.out[self.pos:self.pos + rows] = value
        elif self.all:
            for j, v in enumerate(value):
                self.parts[j].append(np.asarray(v))
        else:
            self.parts.append(np.asarray(value))
        self.pos += rows

    def result(self) -> Any:
        if self.out is not None:
            return self.out
        if self.all:
            return [np.concatenate(p) if p else np.empty((0,)) for p in self.parts]
        return np.concatenate(self.parts) if self.parts else np.empty((0,))
