"""Writing one HDF5 file from slices held by every rank, without gathering them.

The PyPI h5py wheel has no MPI-IO, so ranks take turns: rank 0 creates the file with
datasets of the global size under a temporary name, then each rank in rank order
opens it, writes its own slice at its offset and passes a token on; rank 0 finally
fsyncs and renames the file into place, so a crash never leaves a half-written file
under the final name. Memory per rank stays that of its own slice.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

if TYPE_CHECKING:
    from mpi4py import MPI

__all__ = ["write_distributed", "read_slice"]

_TOKEN_TAG = 7301


def write_distributed(
    comm: "MPI.Intracomm",
    path: str,
    datasets: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any] | None = None,
    *,
    replicated: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Write 1-D per-rank slices into one HDF5 file, concatenated in rank order.

    Collective over ``comm``. Every rank passes the same dataset names and dtypes.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
    path : str
        Final file name; written as ``path + ".tmp"`` and renamed when complete.
    datasets : mapping of str to numpy.ndarray
        This rank's slice of each dataset (1-D). Slices of one dataset may differ in
        length between ranks; each dataset is ordered rank 0's slice first.
    attrs : mapping, optional
        File attributes (JSON-able scalars or strings), from rank 0.
    replicated : mapping of str to numpy.ndarray, optional
        Small arrays written once, from rank 0 (e.g. a CSR ``indptr`` built elsewhere).
    """
    import h5py

    from hpcdist.runtime.comm import MPI
    from hpcdist.runtime.errors import InputError, collective

    rank, size = comm.Get_rank(), comm.Get_size()
    names = sorted(datasets)
    lengths = np.array([datasets[k].shape[0] for k in names], dtype=np.int64)
    offsets = np.zeros_like(lengths)
    comm.Exscan(lengths, offsets, op=MPI.SUM)
    if rank == 0:
        offsets[:] = 0
    totals = np.empty_like(lengths)
    comm.Allreduce(lengths, totals, op=MPI.SUM)
    tmp = path + ".tmp"
    with collective(comm):  # an unwritable path stops every rank with one message
        if rank == 0:
            try:
                f = h5py.File(tmp, "w")
            except OSError as exc:
                raise InputError(f"cannot write the output file ({exc.strerror or exc})", path=path) from None
            with f:
                for name, total in zip(names, totals):
                    f.create_dataset(name, shape=(int(total),), dtype=datasets[name].dtype)
                for name, value in (replicated or {}).items():
                    f.create_dataset(name, data=value)
                for key, value in (attrs or {}).items():
                    f.attrs[key] = value
    if rank > 0:
        comm.recv(source=rank - 1, tag=_TOKEN_TAG)
    with h5py.File(tmp, "r+") as f:
        for name, off in zip(names, offsets):
            data = datasets[name]
            if data.shape[0]:
                f[name][int(off) : int(off) + data.shape[0]] = data
    if rank < size - 1:
        comm.send(None, dest=rank + 1, tag=_TOKEN_TAG)
    comm.Barrier()  # every slice is on disk before the file gets its final name
    with collective(comm):  # e.g. the path became a directory meanwhile: one message, no .tmp left behind
        if rank == 0:
            try:
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, path)
            except OSError as exc:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise InputError(f"cannot write the output file ({exc.strerror or exc})", path=path) from None
            dir_fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


def read_slice(path: str, name: str, start: int, stop: int) -> np.ndarray:
    """Read items ``start:stop`` of a 1-D dataset (each rank reads its own slice)."""
    import h5py

    with h5py.File(path, "r") as f:
        return f[name][start:stop]
