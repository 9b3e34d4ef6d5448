"""How a model becomes files: arrays (HDF5, no pickle), skops (scikit-learn), trusted pickle.

A serializer turns a model into ``(format, files, config, class_path, nbytes)`` and back.
The registry chooses the first that applies, in this order:

1. ``arrays``: the array-model protocol, ``get_params() -> dict of arrays`` plus
   ``get_config() -> JSON-able dict``, rebuilt by ``cls.from_params(params, config)``
   (or ``cls(**config)`` then ``set_params``). Stored as one HDF5 file (group
   ``params``), never pickled. The class is found again by its import path, so it must
   be importable (defined in a module, not ``__main__`` when other processes load it).
2. ``skops``: a scikit-learn estimator, when the optional ``skops`` package is
   installed. Loading accepts only the types skops considers safe plus those listed
   at registration (``skops.io.get_untrusted_types`` is consulted and recorded).
3. ``pickle``: anything else, only with ``trusted=True``; loaded back only from an
   entry this registry wrote (HMAC with the registry's key) whose checksum matches.
"""

from __future__ import annotations

import importlib
import io
import json
from typing import Any

import numpy as np

from hpcdist.models.errors import CorruptedModel, UnsupportedModel, UntrustedModel

__all__ = ["is_array_model", "is_sklearn_model", "dump_model", "load_model", "class_path"]

MODEL_FILE = {"arrays": "model.h5", "skops": "model.skops", "pickle": "model.pkl"}


def class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _import_class(path: str) -> type:
    module, _, qual = path.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise CorruptedModel(f"cannot import the model class {path!r} ({exc}); it must be importable where the model is loaded") from None
    if not isinstance(obj, type):
        raise CorruptedModel(f"{path!r} is not a class")
    return obj


def is_array_model(model: Any) -> bool:
    return callable(getattr(model, "get_params", None)) and callable(getattr(model, "get_config", None)) and (
        callable(getattr(type(model), "from_params", None)) or callable(getattr(model, "set_params", None)))


def is_sklearn_model(model: Any) -> bool:
    return any(c.__module__.startswith("sklearn.") for c in type(model).__mro__)


def _array_params(model: Any) -> dict[str, np.ndarray]:
    params = model.get_params()
    if not isinstance(params, dict):
        return {}
    out = {}
    for k, v in params.items():
        arr = np.asarray(v)
        if not isinstance(k, str) or "/" in k or arr.dtype == object:
            return {}
        out[k] = np.ascontiguousarray(arr)
    return out


def dump_model(model: Any, trusted: bool) -> tuple[str, bytes, dict[str, Any], str, int, dict[str, Any]]:
    """``(format, file bytes, config, class path, in-memory bytes, extra manifest fields)``."""
    if is_array_model(model) and not is_sklearn_model(model):
        params = _array_params(model)
        config = model.get_config()
        try:
            json.dumps(config)
        except (TypeError, ValueError) as exc:
            raise UnsupportedModel(f"{type(model).__name__}.get_config() is not JSON ({exc})") from None
        if params or not model.get_params():
            import h5py

            bio = io.BytesIO()
            with h5py.File(bio, "w") as f:
                g = f.create_group("params")
                for k, v in params.items():
                    g.create_dataset(k, data=v)
            nbytes = int(sum(v.nbytes for v in params.values()))
            return "arrays", bio.getvalue(), config, class_path(type(model)), nbytes, {}
    if is_sklearn_model(model):
        try:
            import skops.io as sio
        except ImportError:
            sio = None
        if sio is not None:
            data = sio.dumps(model)
            untrusted = list(sio.get_untrusted_types(data=data))
            return "skops", data, {}, class_path(type(model)), len(data), {"skops_types": untrusted}
    if not trusted:
        hint = " (install skops to store scikit-learn models without pickle)" if is_sklearn_model(model) else ""
        raise UntrustedModel(
            f"{type(model).__name__} is not an array model (get_params() -> dict of arrays, get_config() -> JSON, "
            f"from_params()) and would need pickle{hint}; pass trusted=True to store it with pickle, "
            "only for models whose code you trust")
    import pickle

    data = pickle.dumps(model, protocol=5)
    return "pickle", data, {}, class_path(type(model)), len(data), {}


def load_model(fmt: str, data: bytes, config: dict[str, Any], cls_path: str, extra: dict[str, Any]) -> Any:
    """Rebuild a model from the bytes of its file (already verified by the registry)."""
    if fmt == "arrays":
        import h5py

        with h5py.File(io.BytesIO(data), "r") as f:
            params = {k: f["params"][k][()] for k in f["params"]}
        cls = _import_class(cls_path)
        if callable(getattr(cls, "from_params", None)):
            return cls.from_params(params, config)
        model = cls(**config)
        model.set_params(params)
        return model
    if fmt == "skops":
        try:
            import skops.io as sio
        except ImportError:
            raise UnsupportedModel("this model was stored with skops, which is not installed here") from None
        return sio.loads(data, trusted=list(extra.get("skops_types", [])))
    if fmt == "pickle":
        import pickle

        return pickle.loads(data)
    raise CorruptedModel(f"unknown model format {fmt!r}")
