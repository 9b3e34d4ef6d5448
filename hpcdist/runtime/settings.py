"""The one place that reads ``HPCDIST_*`` settings and config files.

Precedence, highest first:

1. explicit arguments (a keyword passed to ``Farm(...)``, a CLI option),
2. ``HPCDIST_<NAME>`` environment variables (``HPCDIST_LOG_LEVEL=debug``),
3. the config file named by ``HPCDIST_CONFIG`` (JSON or TOML; a flat table, or
   the keys under ``[hpcdist]``),
4. the defaults in :data:`DEFAULTS`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from hpcdist.runtime.errors import InputError

__all__ = ["Settings", "load_settings", "DEFAULTS", "ENV_PREFIX"]

ENV_PREFIX = "HPCDIST_"


def _optional_float(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.lower() in ("", "none", "null")):
        return None
    return float(value)


@dataclass(frozen=True)
class Settings:
    """Resolved settings. See the module docstring for where each value comes from."""

    log_level: str = "WARNING"
    backend: str = "auto"
    # Task farm defaults.
    strategy: str = "least_loaded"
    timeout: float | None = None
    retries: int = 0
    backoff: float = 1.5
    heartbeat_interval: float = 1.0
    heartbeat_timeout: float = 10.0
    # Task farm outputs: Farm(metrics=..., status_dir=...) when not given explicitly.
    metrics: str | None = None
    status_dir: str | None = None
    # Graph inputs: memory a rank may use (e.g. "4G"); None means MemAvailable / ranks on the node.
    memory_limit: str | None = None
    sources: dict[str, str] = field(default_factory=dict, compare=False)


def _optional_str(v: Any) -> str | None:
    return None if v is None or str(v).lower() in ("", "none") else str(v)


_CONVERTERS = {
    "log_level": lambda v: str(v).upper(),
    "backend": lambda v: str(v).lower(),
    "strategy": str,
    "timeout": _optional_float,
    "retries": int,
    "backoff": float,
    "heartbeat_interval": float,
    "heartbeat_timeout": float,
    "memory_limit": _optional_str,
    "metrics": _optional_str,
    "status_dir": _optional_str,
}
DEFAULTS = Settings()


def _read_config(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise InputError(f"cannot read config file ({exc.strerror})", path=path) from None
    try:
        if path.endswith(".toml"):
            import tomllib

            data = tomllib.loads(raw.decode())
        else:
            data = json.loads(raw)
    except Exception as exc:  # noqa: BLE001 - any parse error is the user's file
        line = getattr(exc, "lineno", None)
        raise InputError(f"not valid {'TOML' if path.endswith('.toml') else 'JSON'}: {exc}", path=path, line=line) from None
    if not isinstance(data, dict):
        raise InputError("config must be a table of settings", path=path)
    return dict(data.get("hpcdist", data))


def load_settings(environ: Mapping[str, str] | None = None, **explicit: Any) -> Settings:
    """Resolve settings from arguments, environment, config file and defaults.

    Parameters
    ----------
    environ : mapping, optional
        The environment (``os.environ`` when None).
    **explicit
        Values given by the caller; ``None`` means "not given".

    Returns
    -------
    Settings
        With ``sources`` naming where each non-default value came from.

    Raises
    ------
    InputError
        An unreadable config file, an unknown key in it, or a value of the wrong type.
    """
    env = os.environ if environ is None else environ
    names = [f.name for f in fields(Settings) if f.name != "sources"]
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    config_path = env.get(ENV_PREFIX + "CONFIG")
    if config_path:
        for key, value in _read_config(config_path).items():
            if key not in names:
                raise InputError(f"unknown setting {key!r}; known: {', '.join(names)}", path=config_path)
            values[key], sources[key] = value, config_path
    for key in names:
        env_value = env.get(ENV_PREFIX + key.upper())
        if env_value is not None:
            values[key], sources[key] = env_value, ENV_PREFIX + key.upper()
    for key, value in explicit.items():
        if key not in names:
            raise TypeError(f"unknown setting {key!r}")
        if value is not None:
            values[key], sources[key] = value, "argument"
    converted = {}
    for key, value in values.items():
        try:
            converted[key] = _CONVERTERS[key](value)
        except (TypeError, ValueError):
            raise InputError(f"setting {key}={value!r} (from {sources[key]}) has the wrong type") from None
    return Settings(**converted, sources=sources)
