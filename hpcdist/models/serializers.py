"""How a model becomes files: arrays (HDF5, no pickle), skops (scikit-learn), trusted pickle.

A serializer turns a model into ``(format, files, config, class_path, nbytes)`` and back.
The registry chooses the first that applies, in this order:

1. ``arrays``: the array-model protocol, ``get_params() -> dict of arrays`` plus
   ``get_config() -> JSON-able dict``, rebuilt by the classmethod
   ``cls.from_params(params, config)``. Stored as one HDF5 file (group ``params``),
   never pickled. The class is found again by its import path, so it must be
   importable (defined in a module, not ``__main__`` when other processes load it).
   The path comes from the manifest, so the registry imports it only from a manifest
   it signed, or when it names a built-in model (:data:`BUILTIN_CLASS_PATHS`); the
   class must have ``from_params`` and ``get_params``; the loader never calls
   ``cls(**config)`` itself, only the class's own ``from_params``.
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

__all__ = ["is_array_model", "is_sklearn_model", "dump_model", "load_model", "class_path", "BUILTIN_CLASS_PATHS"]

MODEL_FILE = {"arrays": "model.h5", "skops": "model.skops", "pickle": "model.pkl"}

#: Import paths of the built-in array models: safe to rebuild from any manifest (their
#: constructors take only numbers and strings), so an unsigned registry may hold them.
BUILTIN_CLASS_PATHS = frozenset(f"hpcdist.models.builtin:{n}" for n in ("LinearRegression", "LogisticRegression", "MLP"))


def class_path(cls: type) -> str:
    """The import path of a class as the registry records it.

    Parameters
    ----------
    cls : type

    Returns
    -------
    str
        ``"module:QualifiedName"``, e.g. ``"hpcdist.models.builtin:MLP"``.
    """
    return f"{cls.__module__}:{cls.__qualname__}"


def _import_class(path: str) -> type:
    """The array-model class at ``path``; only a class with ``from_params`` and ``get_params``.

    The caller decides whether ``path`` may be imported at all (a signed manifest or a
    built-in model): importing runs the module's top-level code.
    """
    if not isinstance(path, str) or ":" not in path:
        raise CorruptedModel(f"model class {path!r} is not a 'module:Class' path")
    module, _, qual = path.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise CorruptedModel(f"cannot import the model class {path!r} ({exc}); it must be importable where the model is loaded") from None
    if not isinstance(obj, type):
        raise CorruptedModel(f"{path!r} is not a class")
    # Only the array-model protocol is ever called with data from the file: a class
    # without it (subprocess.Popen, os._wrap_close, ...) is refused before any call.
    if not (callable(getattr(obj, "from_params", None)) and callable(getattr(obj, "get_params", None))):
        raise CorruptedModel(f"{path!r} is not an array model (it needs a from_params classmethod and get_params)")
    return obj


def is_array_model(model: Any) -> bool:
    """Whether ``model`` follows the array-model protocol (stored as HDF5 arrays, no pickle).

    Parameters
    ----------
    model : object

    Returns
    -------
    bool
        True when it has ``get_params()``, ``get_config()`` and a ``from_params``
        classmethod on its type (what :func:`load_model` calls to rebuild it).
    """
    return (callable(getattr(model, "get_params", None)) and callable(getattr(model, "get_config", None))
            and callable(getattr(type(model), "from_params", None)))


def is_sklearn_model(model: Any) -> bool:
    """Whether ``model`` is a scikit-learn estimator (any class of its MRO defined in ``sklearn``).

    Parameters
    ----------
    model : object

    Returns
    -------
    bool
    """
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
    """Rebuild a model from the bytes of its file (already verified by the registry).

    The registry decides beforehand whether the entry may be trusted (a signed manifest,
    or a built-in array model); this function only rebuilds.

    Parameters
    ----------
    fmt : {"arrays", "skops", "pickle"}
    data : bytes
        The model file's content.
    config : dict
        The recorded ``get_config()`` (arrays format).
    cls_path : str
        The recorded class path (arrays format), see :func:`class_path`.
    extra : dict
        Other manifest fields (``skops_types``).

    Returns
    -------
    object
        The model.

    Raises
    ------
    CorruptedModel
        Unknown format, unreadable arrays, or a class that is not an array model.
    UnsupportedModel
        A skops entry without skops installed.
    """
    if fmt == "arrays":
        import h5py

        if not isinstance(config, dict):
            raise CorruptedModel(f"model config must be a JSON object, got {type(config).__name__}")
        try:
            with h5py.File(io.BytesIO(data), "r") as f:
                params = {k: f["params"][k][()] for k in f["params"]}
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise CorruptedModel(f"the arrays of the model cannot be read ({exc})") from None
        cls = _import_class(cls_path)
        try:
            return cls.from_params(params, config)  # type: ignore[attr-defined]
        except (TypeError, ValueError, KeyError) as exc:
            raise CorruptedModel(f"{cls_path}.from_params refused the stored arrays and config ({exc})") from exc
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
