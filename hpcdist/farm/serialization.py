"""How tasks, results and errors travel: pickle protocol 5 with out-of-band buffers.

A message is ``(ids, meta, blob, buffers)``: the ids and small metadata in the clear,
the objects (functions, arguments, results) pickled once per batch with their large
buffers (numpy arrays) kept out of band. On the wire (:class:`Channel`) a small
message is one MPI message; a large one sends the blob and every buffer as separate
MPI messages straight from and into their memory: an array is not copied into a
pickle stream, and payloads over 2 GiB travel (MPI-4 large counts, or a contiguous
datatype).

The inner blob is unpickled separately from the envelope, so that a task whose
function cannot be imported on the worker fails with a clear error naming its ids,
instead of breaking the worker's receive loop.
"""

from __future__ import annotations

import pickle
import socket
import struct
import threading
import traceback
from typing import Any, Sequence

from hpcdist.farm.tasks import RemoteError

__all__ = ["dumps", "loads", "pack", "unpack", "envelope_nbytes", "Channel", "pack_exception", "unpack_exception"]

PROTOCOL = 5
#: Messages whose pickle, buffers included, is at most this size travel as one MPI
#: message with the buffers in band: one copy of a few KiB costs less than the extra
#: MPI messages (and Python calls) of out-of-band parts.
INBAND_MAX = 64 * 1024


def dumps(obj: Any) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """Pickle ``obj`` (protocol 5); large contiguous buffers come back out of band."""
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(obj, protocol=PROTOCOL, buffer_callback=buffers.append)
    return data, buffers


def loads(data: Any, buffers: Sequence[Any] = ()) -> Any:
    """Undo :func:`dumps`."""
    return pickle.loads(data, buffers=buffers)


def pack(ids: list[int], meta: Any, objs: Any) -> tuple:
    """An envelope: ``ids`` and ``meta`` in the clear, ``objs`` pickled with out-of-band buffers.

    Raises whatever pickling ``objs`` raises (the caller decides what to do).
    """
    data, buffers = dumps(objs)
    if buffers and len(data) + sum(memoryview(b).nbytes for b in buffers) <= INBAND_MAX:
        data, buffers = pickle.dumps(objs, protocol=PROTOCOL), []  # small arrays: one message beats parts
    if not buffers and len(data) <= INBAND_MAX:
        return (ids, meta, data, buffers)  # goes in band with the envelope
    return (ids, meta, pickle.PickleBuffer(data), buffers)


def envelope_nbytes(envelope: tuple) -> int:
    """Bytes an envelope's objects take on the wire (pickle and out-of-band buffers)."""
    data, buffers = envelope[2], envelope[3]
    if not buffers:  # every small message: no generator to run
        return len(data) if type(data) is bytes else memoryview(data).nbytes
    return memoryview(data).nbytes + sum(memoryview(b).nbytes for b in buffers)


def unpack(envelope: tuple) -> tuple[list[int], Any, Any]:
    """Open an envelope; the third item is the objects, or the exception unpickling raised."""
    ids, meta, data, buffers = envelope
    try:
        objs = loads(data, buffers)
    except Exception as exc:  # noqa: BLE001 - reported against the ids, never fatal
        return ids, meta, exc
    return ids, meta, objs


def pack_exception(exc: BaseException, rank: int, host: str | None = None) -> tuple[BaseException | None, str, int, str]:
    """An exception and its traceback text, headed with the rank and host it came from.

    The exception itself is dropped (None) when it does not pickle; the text always travels.
    """
    host = host or socket.gethostname()
    body = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    text = f"Remote traceback (rank {rank} on {host}):\n{body.rstrip()}"
    try:
        pickle.loads(pickle.dumps(exc, protocol=PROTOCOL))
        portable: BaseException | None = exc
    except Exception:  # noqa: BLE001 - any failure means "send the text only"
        portable = None
    return (portable, text, rank, host)


def unpack_exception(packed: Any) -> BaseException:
    """The exception to raise on the coordinator: the remote one with a :class:`RemoteError`
    as its ``__cause__`` (carrying the remote traceback), or the RemoteError itself."""
    if isinstance(packed, BaseException):
        return packed
    exc, text, rank, host = packed
    remote = RemoteError(text, rank=rank, host=host)
    if exc is None:
        return remote
    exc.__cause__ = remote
    return exc


#: First byte of a multi-part message's header (a pickle starts with 0x80).
_MULTIPART = 0


def _wire(obj: Any) -> tuple[Any, list[Any]]:
    """``obj`` as the bytes of its first message and its out-of-band parts (maybe none)."""
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(obj, protocol=PROTOCOL, buffer_callback=buffers.append)
    if not buffers:
        return data, []
    views = [b.raw() for b in buffers]
    if len(data) + sum(v.nbytes for v in views) <= INBAND_MAX:
        return pickle.dumps(obj, protocol=PROTOCOL), []
    parts = [data, *views]
    header = struct.pack(f"<B{len(parts)}q", _MULTIPART, *(memoryview(p).nbytes for p in parts))
    return header, parts


def _big(buf: Any) -> tuple[Any, int, Any]:
    """A buffer spec for any size: MPI-4 large counts, else one contiguous datatype."""
    from hpcdist.runtime.comm import MPI

    view = memoryview(buf)
    count = view.nbytes
    if count < 2**31 or MPI.Get_version() >= (4, 0):
        return (view, count, MPI.BYTE)
    dtype = MPI.BYTE.Create_contiguous(count).Commit()
    return (view, 1, dtype)


def _free_type(spec: tuple[Any, int, Any]) -> None:
    """Free the datatype :func:`_big` made (MPI lets a pending operation finish with it)."""
    from hpcdist.runtime.comm import MPI

    if spec[2] != MPI.BYTE:
        spec[2].Free()


class _Sent:
    """The requests of one message; ``test()`` as pkl5's: ``(done, None)``."""

    __slots__ = ("reqs", "keep")

    def __init__(self, reqs: list[Any], keep: Any) -> None:
        self.reqs = reqs
        self.keep = keep  # the buffers, alive until sent

    def test(self) -> tuple[bool, None]:
        if len(self.reqs) == 1:
            return self.reqs[0].Test(), None
        from hpcdist.runtime.comm import MPI

        return MPI.Request.Testall(self.reqs), None


class Channel:
    """Point-to-point messages of Python objects over a communicator, pickle protocol 5.

    A small message (see :data:`INBAND_MAX`) is one MPI message holding its pickle. A
    larger one is a header (the sizes of its parts), the pickle, then each out-of-band
    buffer sent from its own memory (a numpy array is not copied), with MPI-4 large
    counts above 2 GiB. The parts of one message follow each other on the same tag, so
    sends are serialised by a lock (several threads of a worker send); a receiver
    matches the header with a matched probe and then the parts in order (MPI does not
    let messages of one sender and tag overtake each other).
    """

    def __init__(self, comm: Any) -> None:
        from hpcdist.runtime.comm import MPI

        self.comm = comm
        self._send_lock = threading.Lock()
        self._byte = MPI.BYTE
        # Kept here: a function-level import costs about half a microsecond, and poll()
        # runs on every turn of the coordinator's and the workers' loops.
        self._mpi = MPI

    def isend(self, obj: Any, dest: int, tag: int) -> _Sent:
        """Start sending ``obj``; returns a handle whose ``test()`` says when it is sent."""
        first, parts = _wire(obj)
        comm = self.comm
        with self._send_lock:
            reqs = [comm.Isend((first, len(first), self._byte), dest, tag)]
            for part in parts:
                spec = _big(part)
                reqs.append(comm.Isend(spec, dest, tag))
                _free_type(spec)
        return _Sent(reqs, (first, parts))

    def ssend(self, obj: Any, dest: int, tag: int) -> None:
        """Send a small ``obj`` (one message, no out-of-band parts) synchronously: returns once it was matched."""
        first, parts = _wire(obj)
        if parts:
            raise ValueError("ssend() takes small objects only")
        with self._send_lock:
            self.comm.Ssend((first, len(first), self._byte), dest, tag)

    def send(self, obj: Any, dest: int, tag: int) -> None:
        """Send ``obj`` and wait until its buffers may be reused."""
        from hpcdist.runtime.comm import MPI

        MPI.Request.Waitall(self.isend(obj, dest, tag).reqs)

    def poll(self, source: int, tag: int, recheck: bool = False) -> Any | None:
        """A message waiting from ``source`` with ``tag`` as ``(source, tag, obj)``, or None. Never blocks.

        ``recheck``: look a second time when the first finds nothing. MPICH's Improbe
        looks for a match, then makes progress, and does not look again: a message
        that arrived meanwhile is found by the next call only, so a caller that polls
        once per nap would see every message one nap late. (Callers that poll in a
        tight loop need not pay for it.) Not for two threads at once on the same
        ``source`` and ``tag``.
        """
        status = self._mpi.Status()
        msg = self.comm.Improbe(source, tag, status)
        if msg is None:
            if not recheck:
                return None
            msg = self.comm.Improbe(source, tag, status)
            if msg is None:
                return None
        return self._receive(msg, status)

    def _receive(self, msg: Any, status: Any) -> tuple[int, int, Any]:
        source, tag, parts = self._receive_parts(msg, status)
        if len(parts) == 1:
            return source, tag, pickle.loads(parts[0])
        return source, tag, pickle.loads(parts[1], buffers=parts[2:])

    def _receive_parts(self, msg: Any, status: Any) -> tuple[int, int, list[Any]]:
        """The matched message's bytes: ``[pickle]``, or ``[header, pickle, buffers...]``."""
        source, tag = status.Get_source(), status.Get_tag()
        first = bytearray(status.Get_count(self._byte))
        msg.Recv((first, len(first), self._byte))
        if not first or first[0] != _MULTIPART:
            return source, tag, [first]
        MPI = self._mpi
        n = (len(first) - 1) // 8
        parts = [first]
        for size in struct.unpack(f"<{n}q", first[1:]):
            part = MPI.buffer.allocate(size) if size > INBAND_MAX else bytearray(size)
            spec = _big(part)
            MPI.Comm.Mprobe(self.comm, source, tag).Recv(spec)
            _free_type(spec)
            parts.append(part)
        return source, tag, parts

    def discard(self, source: int, tag: int) -> tuple[int, int] | None:
        """Receive one waiting message (all its parts) and drop it, never unpickled; its ``(source, tag)``, or None.

        For the end of a conversation: a message left unreceived on a communicator that
        is then freed is matched, by MPICH, on the next communicator that reuses its
        context id.
        """
        status = self._mpi.Status()
        msg = self.comm.Improbe(source, tag, status)
        if msg is None:
            return None
        source, tag, _ = self._receive_parts(msg, status)
        return source, tag

    def drain(self, source: int, tag: int | None = None) -> int:
        """Discard every message waiting from ``source`` (any tag unless ``tag``); how many there were."""
        tag = self._mpi.ANY_TAG if tag is None else tag
        n = misses = 0
        while misses < 2:  # a second look after MPI's progress (see poll)
            if self.discard(source, tag) is None:
                misses += 1
            else:
                n, misses = n + 1, 0
        return n

    def recv(self, source: int, tag: int) -> Any:
        """Wait for a message from ``source`` with ``tag``; return its object."""
        from hpcdist.runtime.comm import MPI

        status = MPI.Status()
        msg = self.comm.Mprobe(source, tag, status)
        return self._receive(msg, status)[2]
