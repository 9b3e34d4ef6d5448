"""Array kernels, one module per backend, with one signature on raw arrays for all.

``numpy_ref`` is the reference; ``numba_cpu`` the compiled CPU version, bit-identical
to it. Pick one with :func:`kernels_for` from a resolved backend name.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["kernels_for", "KERNEL_MODULES"]

#: Backend name -> kernel module.
KERNEL_MODULES = {"numpy": "hpcdist.kernels.numpy_ref", "numba": "hpcdist.kernels.numba_cpu"}


def kernels_for(backend: str) -> ModuleType:
    """The kernel module of a resolved backend name (``numpy`` or ``numba``).

    ``cupy`` has no graph kernels yet; asking for it raises ``BackendError``.
    """
    from hpcdist.runtime.errors import BackendError

    try:
        return importlib.import_module(KERNEL_MODULES[backend])
    except KeyError:
        raise BackendError(f"no graph kernels for backend {backend!r}; use numpy or numba") from None
