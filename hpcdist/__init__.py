"""hpcdist: MPI-native distributed processing for Python.

The package is one SPMD program: rank 0 coordinates, the other ranks work, and MPI
collectives synchronise the phases. See ``docs/architecture.md`` for the layers.

Importing hpcdist installs the no-hang guard (:mod:`hpcdist.runtime.abort`): an
uncaught exception on any rank of a multi-rank job aborts the whole job instead of
leaving the other ranks blocked forever.
"""

__version__ = "0.1.0"

from hpcdist.runtime.abort import install_excepthook as _install_excepthook
from hpcdist.runtime.context import Context
from hpcdist.runtime.errors import (
    CollectiveError,
    HpcdistError,
    InputError,
    agree,
    collective,
)
from hpcdist.farm import Farm, Requirements, distributed_apply
from hpcdist.models import ModelRegistry

_install_excepthook()

__all__ = [
    "__version__",
    "Context",
    "HpcdistError",
    "InputError",
    "CollectiveError",
    "agree",
    "collective",
    "Farm",
    "Requirements",
    "distributed_apply",
    "models",
    "ModelRegistry",
]
