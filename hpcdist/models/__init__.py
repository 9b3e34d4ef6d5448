"""Models: a versioned registry, models on the farm, and data-parallel training.

* :class:`ModelRegistry` stores models on a shared file system (HDF5 arrays + JSON,
  atomic, checksummed, safe for concurrent readers; pickle only when trusted).
* ``farm.predict_batch`` / ``farm.train_ensemble`` (:class:`ModelFarmMixin`, part of
  :class:`hpcdist.Farm`) run registered models on the workers, which cache them
  (:mod:`hpcdist.models.cache`); the ``affinity`` strategy routes to the holders.
* :func:`train_data_parallel` trains the built-in :class:`LinearRegression`,
  :class:`LogisticRegression`, :class:`MLP` (or any :class:`GradientModel`) SPMD with
  one ``Allreduce`` per step, equal to single-process training at any rank count.

See ``docs/models.md``.
"""

from hpcdist.models.builtin import MLP, ArrayModel, LinearRegression, LogisticRegression
from hpcdist.models.cache import CacheStats, ModelCache, worker_cache
from hpcdist.models.errors import (
    CorruptedModel,
    ModelError,
    ModelExists,
    ModelNotFound,
    ModelTooLarge,
    UnsupportedModel,
    UntrustedModel,
)
from hpcdist.models.farm_mixin import ModelFarmMixin, ModelOutput, ModelRef, PredictReport, majority_rows
from hpcdist.models.registry import ModelInfo, ModelRegistry, model_label
from hpcdist.models.training import GradientModel, shard, train_data_parallel, train_local
from hpcdist.models.validators import ResultValidator, as_validator, finite

__all__ = [
    "ModelRegistry",
    "ModelInfo",
    "model_label",
    "ModelCache",
    "CacheStats",
    "worker_cache",
    "ModelFarmMixin",
    "ModelOutput",
    "ModelRef",
    "PredictReport",
    "majority_rows",
    "ArrayModel",
    "LinearRegression",
    "LogisticRegression",
    "MLP",
    "GradientModel",
    "train_data_parallel",
    "train_local",
    "shard",
    "ResultValidator",
    "as_validator",
    "finite",
    "ModelError",
    "ModelNotFound",
    "ModelExists",
    "CorruptedModel",
    "UntrustedModel",
    "UnsupportedModel",
    "ModelTooLarge",
]
