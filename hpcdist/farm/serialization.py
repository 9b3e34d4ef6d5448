"""How tasks, results and errors travel: pickle protocol 5 with out-of-band buffers.

A message is ``(ids, meta, blob, buffers)``: the ids and small metadata in the clear,
the objects (functions, arguments, results) pickled once per batch with their large
buffers (numpy arrays) kept out of band. On the wire (:class:`Channel`, built on
``mpi4py.util.pkl5``) the blob and every buffer go as separate MPI messages straight
from and into their memory: an array is not copied into a pickle stream, and payloads
over 2 GiB travel (pkl5 uses MPI-4 large counts, or a contiguous datatype).

The inner blob is unpickled separately from the envelope, so that a task whose
function cannot be imported on the worker fails with a clear error naming its ids,
instead of breaking the worker's receive loop.
"""

from __future__ import annotations

import pickle
import socket
import traceback
from typing import Any, Sequence

from hpcdist.farm.tasks import RemoteError

__all__ = ["dumps", "loads", "pack", "unpack", "Channel", "pack_exception", "unpack_exception"]

PROTOCOL = 5


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
    return (ids, meta, pickle.PickleBuffer(data), buffers)


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


class Channel:
    """Point-to-point messages of Python objects over a communicator, via pkl5.

    Thread-safe for concurrent sends (pkl5 serialises the parts of one message).
    """

    def __init__(self, comm: Any) -> None:
        from mpi4py.util import pkl5

        self.comm = comm
        self._pkl5 = pkl5.Intracomm(comm)

    def send(self, obj: Any, dest: int, tag: int) -> None:
        self._pkl5.send(obj, dest, tag)

    def isend(self, obj: Any, dest: int, tag: int) -> Any:
        return self._pkl5.isend(obj, dest, tag)

    def poll(self, source: int, tag: int) -> Any | None:
        """A message waiting from ``source`` with ``tag`` as ``(source, tag, obj)``, or None. Never blocks."""
        from hpcdist.runtime.comm import MPI

        status = MPI.Status()
        msg = self._pkl5.improbe(source, tag, status)
        if msg is None:
            return None
        return status.Get_source(), status.Get_tag(), msg.recv()

    def recv(self, source: int, tag: int) -> Any:
        return self._pkl5.recv(None, source, tag)
