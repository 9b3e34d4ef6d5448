"""What :meth:`Farm.map <hpcdist.farm.executor.Farm.map>` returns: a lazy iterator over a
bounded window of chunk tasks, with automatic chunk sizes and per-item journal keys."""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import math
import sys
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Iterator

from hpcdist.farm.runner import ChunkCall
from hpcdist.farm.tasks import function_name

if TYPE_CHECKING:
    from hpcdist.farm.executor import Farm, TaskFuture

__all__ = ["MapIterator"]


class _Chunk:
    """One window entry of a map: ``n`` items, some answered by the journal, the rest by ``fut``.

    ``known`` holds the journaled values by position; ``fut`` (None when every item was in
    the journal) computes the others, in order.
    """

    __slots__ = ("fut", "n", "known")

    def __init__(self, fut: "TaskFuture | None", n: int, known: "dict[int, Any] | None" = None) -> None:
        self.fut = fut
        self.n = n
        self.known = known or {}

    def values(self, timeout: float | None) -> list[Any]:
        computed = iter(self.fut.result(timeout=timeout)) if self.fut is not None else iter(())
        if not self.known:
            return list(computed)
        return [self.known[i] if i in self.known else next(computed) for i in range(self.n)]


class MapIterator:
    """Feeds :meth:`Farm.map`: a bounded window of chunk tasks, refilled as results are taken.

    Automatic chunking (``chunksize=None``) first sends a *probe*: one single-item chunk
    per worker, and nothing else, so that tiny tasks are not all shipped one by one
    before any timing is known (no probe when an earlier map of the same function on
    this farm timed it). From the first timings on, a chunk holds about
    ``TARGET_CHUNK_S`` of work (by a decayed, item-weighted average of the time per
    item), at most ``MAX_CHUNK`` items, and, when the input's length is known, at most
    one worker's share of what is left, so that a short input is still spread over
    every worker. The window then holds at most ``2 * AUTO_DEPTH`` chunks per worker
    (bounded memory on any input).

    With a journal, every item has its own key (``task_key(fn, item)``, as ``submit(fn,
    item)`` would have): items already journaled are answered without running, and each
    computed item is recorded under its own key, so a rerun skips exactly the items done,
    whatever the chunk sizes of either run.
    """

    TARGET_CHUNK_S = 0.01
    MAX_CHUNK = 8192
    #: Chunks of one item sent per worker before the first timing arrives.
    PROBE_PER_WORKER = 1
    #: Automatic chunks in flight per worker (twice this many in the window).
    AUTO_DEPTH = 4

    def __init__(self, farm: "Farm", fn: Callable[..., Any], items: Iterator[Any], star: bool, chunksize: int | None,
                 ordered: bool, timeout: float | None, show: bool | None, total: int | None, priority: int,
                 submit_kw: dict[str, Any]) -> None:
        self.farm = farm
        self.fn = fn
        self.star = star
        self.call = ChunkCall(fn, star)
        self.fn_name = function_name(fn)
        self.items = items
        self.fixed = chunksize
        self.chunk = chunksize or 1
        self.ordered = ordered
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.priority = priority
        self.submit_kw = submit_kw
        self.window: deque[_Chunk] = deque()
        self._refill_at: int | None = None
        self.done_q: deque[_Chunk] = deque()
        self.exhausted = False
        self.ready: deque[Any] = deque()
        self.per_item: float | None = None
        self._seconds_sum = 0.0
        self._items_sum = 0.0
        self.total = total
        self.taken = 0  # items read from the input so far
        self.bar = _progress_bar(show, total)
        #: Observability: chunks submitted, items in them, and how many chunks of each size.
        self.n_chunks = 0
        self.n_items = 0
        self.chunk_sizes: dict[int, int] = {}
        self.skipped = 0  # items answered by the journal
        known = farm._item_seconds.get(self.fn_name) if chunksize is None else None
        if known is not None:  # an earlier map of this function on this farm timed it: no probe
            self._set_per_item(known)
        self._fill()

    def _live_workers(self) -> list[Any]:
        return [w for w in self.farm.scheduler.workers.values() if not w.lost]

    def _max_chunks(self) -> int:
        live = self._live_workers()
        if self.fixed is None:
            if self.per_item is None:
                return self.PROBE_PER_WORKER * max(1, len(live))  # the probe: no timing yet
            # Chunks of ~10 ms: a few per worker keep it busy. The worker's own depth was
            # learnt from the probe's single items and would queue far more than that.
            return 2 * sum(min(w.capacity, self.AUTO_DEPTH) for w in live) + 2
        # Enough to fill every worker's queue twice over: workers never wait for the next chunk.
        return 2 * sum(w.capacity for w in live) + 4

    def _chunk_size(self) -> int:
        if self.fixed is not None or self.per_item is None:
            return self.chunk
        size = self.chunk
        if self.total is not None:  # each worker's share of what is left when this fill began
            left = max(0, self.total - self.taken)
            size = min(size, max(1, math.ceil(left / max(1, len(self._live_workers())))))
        return size

    def _fill(self) -> None:
        if self.exhausted:
            return
        if self._refill_at is not None and len(self.window) > self._refill_at:
            return  # refill in bursts: fewer window computations, and bigger batches per message
        limit = self._max_chunks()
        self._refill_at = limit - max(1, limit // 8)
        size = self._chunk_size()
        while not self.exhausted and len(self.window) < limit:
            chunk = list(itertools.islice(self.items, size))
            if not chunk:
                self.exhausted = True
                break
            self.taken += len(chunk)
            self.window.append(self._submit_chunk(chunk))

    def _submit_chunk(self, chunk: list[Any]) -> _Chunk:
        journal = self.farm.journal
        known: dict[int, Any] = {}
        keys: list[str] | None = None
        todo = chunk
        if journal is not None:
            from hpcdist.farm.journal import task_key

            keys, todo = [], []
            for i, item in enumerate(chunk):
                key = task_key(self.fn, tuple(item) if self.star else (item,), {})
                if key in journal:
                    known[i] = journal.get(key)
                else:
                    keys.append(key)
                    todo.append(item)
            self.skipped += len(known)
            self.farm.skipped += len(known)
        fut = None
        if todo:
            fut = self.farm._submit_payload((self.call, (todo,), {}), self.fn_name, priority=self.priority,
                                            item_keys=keys, **self.submit_kw)
            self.n_chunks += 1
            self.n_items += len(todo)
            self.chunk_sizes[len(todo)] = self.chunk_sizes.get(len(todo), 0) + 1
        entry = _Chunk(fut, len(chunk), known)
        if not self.ordered:
            if fut is None:
                self.done_q.append(entry)
            else:
                fut.add_done_callback(lambda _f, e=entry: self.done_q.append(e))
        return entry

    def _learn(self, entry: _Chunk) -> None:
        fut = entry.fut
        if fut is None or fut.elapsed is None:
            return
        n = entry.n - len(entry.known)
        if n <= 0:
            return
        # Decayed sums weighted by items: one big chunk outweighs the probe's single items,
        # whose time is mostly the fixed cost of a call (10 us for a no-op's 0.2 us).
        self._seconds_sum = 0.7 * self._seconds_sum + fut.elapsed
        self._items_sum = 0.7 * self._items_sum + n
        self._set_per_item(self._seconds_sum / self._items_sum)
        self.farm._item_seconds[self.fn_name] = self.per_item  # type: ignore[assignment]

    def _set_per_item(self, per_item: float) -> None:
        self.per_item = per_item
        if self.fixed is None:
            self.chunk = max(1, min(self.MAX_CHUNK, int(self.TARGET_CHUNK_S / max(per_item, 1e-8))))

    def __iter__(self) -> "MapIterator":
        return self

    def _timeout_left(self) -> float | None:
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise cf.TimeoutError("map: results did not come in time")
        return left

    def __next__(self) -> Any:
        if self.ready:
            return self.ready.popleft()
        if not self.window:
            self._close_bar()
            raise StopIteration
        try:
            if self.ordered:
                entry = self.window.popleft()
                values = entry.values(self._timeout_left())
            else:
                if not self.done_q:
                    left = self._timeout_left()
                    if not self.farm.engine.wait_until(lambda: bool(self.done_q), left):  # type: ignore[union-attr]
                        raise cf.TimeoutError("map: results did not come in time")
                entry = self.done_q.popleft()
                self.window.remove(entry)
                values = entry.values(None)
        except BaseException:
            self.close()
            raise
        self._learn(entry)
        if self.bar is not None:
            self.bar.update(entry.n)
        self._fill()
        self.ready.extend(values)
        return self.ready.popleft() if self.ready else self.__next__()

    def close(self) -> None:
        for entry in self.window:
            if entry.fut is not None:
                entry.fut.cancel()
        self.window.clear()
        self._close_bar()

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - best effort at garbage collection
            pass


def _progress_bar(show: bool | None, total: int | None) -> Any:
    if show is None:
        show = sys.stderr.isatty()
    if not show:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="item", dynamic_ncols=True)
