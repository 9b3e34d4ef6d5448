"""The worker-side model cache: models loaded lazily, kept LRU within a memory budget.

One cache per process (:func:`worker_cache`): a farm worker keeps the models it has
loaded between tasks, so a request routed to a holder (the ``affinity`` strategy)
costs no load. Sizes are the registry's in-memory estimate of each model
(``ModelInfo.nbytes``). A model larger than the whole budget is loaded and used but
not kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Hashable

from hpcdist.farm.requirements import parse_memory

__all__ = ["ModelCache", "CacheStats", "worker_cache", "DEFAULT_CACHE_BYTES"]

#: Budget of a worker's cache unless told otherwise (``predict_batch(cache_bytes=...)``).
DEFAULT_CACHE_BYTES = 2 << 30


@dataclass(frozen=True)
class CacheStats:
    """A snapshot of a :class:`ModelCache`'s counters.

    Attributes
    ----------
    hits, misses : int
        Lookups that found the model, and those that had to load it.
    evictions : int
        Models dropped to make room (least recently used first).
    n_models : int
        Models held now.
    nbytes : int
        Bytes they take (the registry's estimates).
    budget : int
        The cache's byte budget.
    """

    hits: int
    misses: int
    evictions: int
    n_models: int
    nbytes: int
    budget: int

    @property
    def hit_rate(self) -> float:
        """``hits / (hits + misses)``, 0.0 before any lookup."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class ModelCache:
    """An LRU cache of models bounded by bytes.

    Parameters
    ----------
    budget : int or str
        Bytes the cached models may hold together (``"512M"`` works).

    Thread-safe: a farm on one rank runs tasks in a thread next to the caller. Two
    threads missing the same key both load it (no lock is held while loading); the
    second insert wins, which is harmless for immutable registry versions.
    """

    def __init__(self, budget: int | str = DEFAULT_CACHE_BYTES) -> None:
        self.budget = int(parse_memory(budget) or 0)
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    @property
    def nbytes(self) -> int:
        return sum(n for _, n in self._items.values())

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[Hashable]:
        """Cached keys, least recently used first."""
        with self._lock:
            return list(self._items)

    def resize(self, budget: int | str) -> None:
        """Change the budget, evicting the least recently used models that no longer fit."""
        with self._lock:
            self.budget = int(parse_memory(budget) or 0)
            self._evict(0)

    def get(self, key: Hashable, loader: Callable[[], tuple[Any, int]]) -> tuple[Any, bool]:
        """The model under ``key`` and whether it was cached; ``loader() -> (model, nbytes)`` on a miss."""
        with self._lock:
            entry = self._items.get(key)
            if entry is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return entry[0], True
            self.misses += 1
        model, nbytes = loader()
        self.put(key, model, nbytes)
        return model, False

    def put(self, key: Hashable, model: Any, nbytes: int) -> bool:
        """Keep ``model`` (evicting LRU entries to make room); False when it alone exceeds the budget."""
        nbytes = int(nbytes)
        with self._lock:
            self._items.pop(key, None)
            if nbytes > self.budget:
                return False
            self._evict(nbytes)
            self._items[key] = (model, nbytes)
            return True

    def _evict(self, room: int) -> None:
        total = self.nbytes
        while self._items and total + room > self.budget:
            _, (_, n) = self._items.popitem(last=False)
            total -= n
            self.evictions += 1

    def clear(self) -> None:
        """Drop every cached model (the hit, miss and eviction counters are kept)."""
        with self._lock:
            self._items.clear()

    def stats(self) -> CacheStats:
        """The counters and the current contents' size.

        Returns
        -------
        CacheStats
            A consistent snapshot (taken under the cache's lock).
        """
        with self._lock:
            return CacheStats(self.hits, self.misses, self.evictions, len(self._items), self.nbytes, self.budget)


_worker_cache: ModelCache | None = None
_worker_lock = threading.Lock()


def worker_cache() -> ModelCache:
    """This process's model cache (created on first use with :data:`DEFAULT_CACHE_BYTES`)."""
    global _worker_cache
    if _worker_cache is None:
        with _worker_lock:
            if _worker_cache is None:
                _worker_cache = ModelCache(DEFAULT_CACHE_BYTES)
    return _worker_cache
