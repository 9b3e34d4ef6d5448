"""Frontier bitmaps over the halo plan, published from the vertices that joined the frontier.

A traversal's frontier (BFS's level) is replaced every superstep and every vertex joins it
once. The plain exchange sends a flag per ghost every superstep, and the generic optimizer
(:mod:`hpcdist.graph.sparse_exchange`) gathers and packs those flags over the whole send
list: both cost O(ghosts) per superstep. Here the owner publishes the frontier as the
list of owned vertices in it (the queue the traversal fills anyway): each sets its bits
in the neighbours' bitmaps through a map built once (owned vertex -> its bit positions),
so a whole search costs O(ghost copies) in all, whatever its number of levels. A
neighbour's bitmap arrives in its ghost order, which is the receiver's ghost order
(ghosts are grouped by owner and sorted by global id, as the owner's send list is), so it
is shifted word by word into the receiver's frontier bitmap (one bit per local column)
at that owner's ghost offset. The sizes are fixed: one persistent neighbourhood
collective of uint64 words, no header round, one eighth of the plain exchange's bytes.

Where every rank is every other rank's neighbour both ways (two ranks with any edge between
them; a few ranks of a power-law graph), each message also carries :data:`CARRY_WORDS`
int64 words after its bitmap: the sender's counts of the level (``start(..., carry=)``),
which every rank then sums itself (``FrontierExchange.finish(..., carry)``). The engine sends the
next level's frontier together with this level's counts, so a level costs one collective
instead of the exchange and an allreduce (:func:`hpcdist.graph.bsp.run_bsp`).
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from hpcdist.graph.halo import HaloPlan

__all__ = ["FrontierExchange", "pack_masks", "CARRY_WORDS"]

#: int64 words after each bitmap for the sender's counts, where the channel :attr:`carries`.
CARRY_WORDS = 8


def pack_masks(send_index: np.ndarray, send_first: np.ndarray,
               send_count: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each neighbour's send list as masks over the words of an owned bitmap.

    Neighbour ``k`` is sent the owned vertices ``send_index[send_first[k]:][:send_count[k]]``,
    strictly increasing. Returns ``ptr`` (int64, one more than neighbours), ``word``
    (int64) and ``mask`` (uint64): for ``t`` in ``ptr[k]:ptr[k + 1]``, the bits of
    ``mask[t]`` mark the listed vertices in owned word ``word[t]``, words increasing. Packing
    each word's bits under its mask, in order, gives the neighbour's bitmap in its send
    list's order (``kernels.frontier_gather``: one BMI2 ``pext`` per word, not one step
    per vertex).

    Raises
    ------
    ValueError
        When a neighbour's list is not strictly increasing (the halo layout guarantees it).
    """
    ptr = np.zeros(send_count.shape[0] + 1, dtype=np.int64)
    words, masks = [], []
    for k in range(send_count.shape[0]):
        idx = np.asarray(send_index[int(send_first[k]):int(send_first[k]) + int(send_count[k])], dtype=np.int64)
        if idx.shape[0] > 1 and np.any(np.diff(idx) <= 0):
            raise ValueError("pack_masks: a neighbour's send list is not strictly increasing")
        w = idx >> 6
        starts = np.flatnonzero(np.diff(w, prepend=-1)) if idx.shape[0] else np.zeros(0, dtype=np.int64)
        bit = np.left_shift(np.uint64(1), (idx & 63).astype(np.uint64))
        masks.append(np.bitwise_or.reduceat(bit, starts) if starts.shape[0] else bit)
        words.append(w[starts])
        ptr[k + 1] = ptr[k] + starts.shape[0]
    word = np.concatenate(words) if words else np.zeros(0, dtype=np.int64)
    mask = np.concatenate(masks).astype(np.uint64) if masks else np.zeros(0, dtype=np.uint64)
    return ptr, word.astype(np.int64), mask


#: Queued vertices per packed word above which the gather costs less than the publish:
#: measured (one thread, warm caches, 2048 packed words) 1.6 ns a word gathered against
#: 2.8 ns a vertex published, plus 0.45 ns to set its owned bit first where a top-down
#: level left none: break-even at 0.57 (bits there) and 0.68 (bits set first) vertices a word.
GATHER_MIN_PER_WORD = 0.6


class FrontierExchange:
    """Frontier bitmaps over one halo plan (built once per plan; see the module notes).

    Collective over the plan's ranks to build and to :meth:`close`; :meth:`start` and
    :meth:`finish` are collective over the neighbourhood.

    Parameters
    ----------
    plan : HaloPlan

    Attributes
    ----------
    bytes_sent : int
        Bytes this rank sends per exchange (the bitmaps, padded to whole words per neighbour).
    dense_bytes : int
        Bytes the plain exchange of one flag byte per ghost copy sends.
    gather_min : int
        The smallest queue that :meth:`start` gathers from owned bits, when it has them.
    carries : bool
        Whether every rank is every other's neighbour both ways (agreed over the plan's
        ranks): each message then carries :data:`CARRY_WORDS` counts, summed by :meth:`finish`.
    """

    def __init__(self, plan: "HaloPlan") -> None:
        from hpcdist.graph.halo import HaloLayout
        from hpcdist.runtime.comm import MPI

        lay = plan.layout
        self.plan = plan
        self.n_owned = lay.n_owned
        comm = plan.neighbour_comm
        size = comm.Get_size()  # the graph's ranks, all of them
        # every other rank a neighbour both ways, on every rank: then the counts that the
        # neighbours carry add up to the global ones
        complete = np.array([int(lay.send_counts.shape[0] == size - 1 and lay.recv_counts.shape[0] == size - 1
                                 and size > 1)], dtype=np.int64)
        comm.Allreduce(MPI.IN_PLACE, complete, op=MPI.MIN)
        self.carries = bool(complete[0])
        extra = CARRY_WORDS if self.carries else 0
        bitmap_words = (lay.send_counts + 63) // 64
        send_words = bitmap_words + extra
        recv_words = (lay.recv_counts + 63) // 64 + extra
        send_word_at = np.concatenate([[0], np.cumsum(send_words)]).astype(np.int64)
        self.recv_word = HaloLayout.displacements(recv_words)
        # each message's count words, after its bitmap (the unpack reads the bitmap alone);
        # the kernels write and add them, which costs a level no Python
        self._send_carry_at = (send_word_at[:-1] + bitmap_words)[: len(bitmap_words) if extra else 0]
        self._recv_carry_at = (self.recv_word + recv_words - extra)[: len(recv_words) if extra else 0]
        self.recv_count = np.asarray(lay.recv_counts, dtype=np.int64)
        # The bit of each send-list entry: its neighbour's first word, then its place there.
        n_send = int(lay.send_counts.sum())
        seg = np.repeat(np.arange(lay.send_counts.shape[0]), lay.send_counts)
        first = HaloLayout.displacements(lay.send_counts)
        pos = 64 * send_word_at[seg] + (np.arange(n_send, dtype=np.int64) - first[seg])
        order = np.argsort(lay.send_index, kind="stable")
        # int32 where the positions fit: publishing from an unordered queue costs a cache
        # miss per vertex in these maps, and half the bytes keep more of them in cache
        index = np.int32 if pos.shape[0] == 0 or int(pos.max()) < 2**31 - 1 else np.int64
        # one spare item: the compiled publish reads a vertex's first place even when it has none
        self.map_pos = np.append(pos[order], 0).astype(index)
        self.map_ptr = np.zeros(self.n_owned + 1, dtype=index)
        np.cumsum(np.bincount(lay.send_index, minlength=self.n_owned), out=self.map_ptr[1:])
        self._send_word = send_word_at[:-1]
        self._pack = pack_masks(lay.send_index, first, np.asarray(lay.send_counts, dtype=np.int64))
        #: the smallest queue that the gather from owned bits sends (one pass over the
        #: packed words) rather than the publish from the queue (a map lookup per vertex)
        self.gather_min = max(1, int(GATHER_MIN_PER_WORD * self._pack[1].shape[0]))
        self.send = np.zeros(int(send_word_at[-1]), dtype=np.uint64)
        self.recv = np.zeros(int(recv_words.sum()), dtype=np.uint64)
        spec = ([self.send, (send_words, send_word_at[:-1]), MPI.UINT64_T],
                [self.recv, (recv_words, self.recv_word), MPI.UINT64_T])
        self._request: Any = comm.Neighbor_alltoallv_init(*spec) if hasattr(comm, "Neighbor_alltoallv_init") else None
        self._spec = spec
        self._comm = comm
        self.bytes_sent = int(self.send.nbytes)
        self.dense_bytes = n_send  # one flag byte per ghost copy

    def start(self, queue: np.ndarray, n_queue: int, kernels: ModuleType, bits: np.ndarray | None = None,
              carry: np.ndarray | None = None) -> None:
        """Publish the owned frontier ``queue[:n_queue]`` (local ids) and start sending.

        The send bitmaps are rebuilt from the queue alone: a vertex that left the
        frontier has its bit cleared without being named. ``bits``, when given, holds the
        same frontier as owned bits: a queue of at least :attr:`gather_min` vertices is
        then gathered from them, word by word (:func:`pack_masks`), instead. ``carry``
        (int64, at most :data:`CARRY_WORDS`, only where the channel :attr:`carries`) goes
        to every neighbour with the bitmap; pass it to :meth:`finish` too.
        """
        if carry is not None and carry.shape[0] > CARRY_WORDS * self.carries:
            raise ValueError(f"FrontierExchange.start: {carry.shape[0]} words to carry, room for "
                             f"{CARRY_WORDS * self.carries}")
        if bits is not None and n_queue >= self.gather_min:
            kernels.frontier_gather(self.send, self._send_word, *self._pack, bits, self._send_carry_at, carry)
        else:
            kernels.frontier_publish(self.send, self.map_ptr, self.map_pos, queue, n_queue, self._send_carry_at, carry)
        if self._request is not None:
            self._request.Start()

    def finish(self, bits: np.ndarray, kernels: ModuleType, carry: np.ndarray | None = None) -> None:
        """Wait for the neighbours' bitmaps and write them into the ghost bits of ``bits``
        (one bit per local column, uint64 words); the owned bits are left as they are.

        ``carry``, the array given to :meth:`start`, gets every neighbour's added: it then
        holds the sum over all ranks (exact, and the same on every rank: integers, and
        every rank's words reached every other rank)."""
        if self._request is not None:
            self._request.Wait()
        else:
            self._comm.Neighbor_alltoallv(*self._spec)
        kernels.frontier_unpack(self.recv, self.recv_word, self.recv_count, bits, self.n_owned,
                                self._recv_carry_at if carry is not None else None, carry)

    def warm_up(self, queue: np.ndarray, bits: np.ndarray, kernels: ModuleType) -> None:
        """Call the kernels with no work, so that numba compiles (or loads) them for these
        array types in the caller's set-up, not in its first exchange. Local."""
        ptr, word, mask = self._pack
        kernels.frontier_publish(self.send[:0], self.map_ptr, self.map_pos, queue, 0)
        kernels.frontier_gather(self.send[:0], self._send_word[:0], ptr[:1], word, mask, bits)
        kernels.frontier_unpack(self.recv[:0], self.recv_word[:0], self.recv_count[:0], bits[:0], 0)

    def close(self) -> None:
        """Free the persistent request. Idempotent."""
        from hpcdist.runtime.comm import MPI

        if self._request is not None and not MPI.Is_finalized():
            self._request.Free()
        self._request = None
