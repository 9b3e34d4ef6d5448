"""``ModelRegistry``: versioned models on a shared file system, safe for many concurrent readers.

Layout::

    ROOT/
      .registry-key                 # this registry's secret (0600), signs what it writes
      NAME/
        1/  manifest.json  model.h5 # one directory per version, never changed once there
        2/  manifest.json  model.pkl
        .tmp-<uuid>/                # a version being written (invisible to readers)

Writing a version (the writers' rule): every file is written and ``fsync``\\ ed inside
a private ``.tmp-*`` directory, then the directory is renamed to its version number
(``rename(2)`` is atomic, and fails when the target already exists with content, so two
writers never both get version 3: the loser takes the next number, or fails for an
explicit ``version=``). A reader therefore sees a version completely or not at all, and
a committed version is immutable: no locks are needed on the read side, which is what
hundreds of ranks loading one model at once want. Deleting renames the directory to a
``.deleted-*`` name first (atomic), then removes it; a reader that loses that race gets
:class:`ModelNotFound`.

Integrity: ``manifest.json`` holds the CRC-32 (:mod:`hpcdist.checkpoint.atomic`) of the
model file and of its own body, and an HMAC-SHA256 of the registry's resolved path and
the body under the registry's key. A bad checksum is :class:`CorruptedModel`. A CRC can
be recomputed by anyone, so everything that would run code from the entry needs the
HMAC: pickled models (``trusted=True`` only), skops types beyond skops' safe set, and
array models whose class is not built in (the class path is imported). The key counts
only when the key file is a regular file owned by the current user with no group or
other permissions (a registry someone else made carries a key that proves nothing), and
the path in the HMAC makes an entry copied from another registry fail to verify.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import stat
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from hpcdist.checkpoint.atomic import checksum, fsync_dir, write_atomic
from hpcdist.models.errors import CorruptedModel, ModelExists, ModelNotFound, ModelTooLarge, UntrustedModel
from hpcdist.models.serializers import BUILTIN_CLASS_PATHS, MODEL_FILE, dump_model, load_model
from hpcdist.runtime.errors import InputError

__all__ = ["ModelRegistry", "ModelInfo", "model_label"]

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
MANIFEST = "manifest.json"
KEY_FILE = ".registry-key"
FORMAT_VERSION = 1


def model_label(name: str, version: int) -> str:
    """The routing label of a model version: ``"model:NAME:VERSION"``."""
    return f"model:{name}:{version}"


@dataclass(frozen=True)
class ModelInfo:
    """One registered version, as :meth:`ModelRegistry.list` and :meth:`search` return it."""

    name: str
    version: int
    format: str
    class_path: str
    nbytes: int
    created: float
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    requires: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return model_label(self.name, self.version)


class ModelRegistry:
    """Versioned models in a directory: register, load, update, list, search, delete.

    Parameters
    ----------
    path : str or Path
        The registry's root directory (created when missing); on a shared file system
        every rank can open the same registry.

    Notes
    -----
    Versions are integers from 1; :meth:`load` without a version takes the highest.
    The object holds only its path (and key), so it pickles cheaply to the workers of
    a farm, which open the same directory.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).absolute()
        self.path.mkdir(parents=True, exist_ok=True)
        # Signed together with each manifest: an entry copied into another directory
        # (another registry, or a copy of this one with its key) does not verify there.
        self._real_path = os.path.realpath(self.path)
        self._key: bytes | None = None
        self._key_problem: str | None = None

    def __reduce__(self):
        return (ModelRegistry, (str(self.path),))

    def __repr__(self) -> str:
        return f"ModelRegistry({str(self.path)!r})"

    # ------------------------------------------------------------------ key
    @property
    def key(self) -> bytes:
        """The registry's secret, created once (atomically: the first writer wins)."""
        if self._key is None:
            key_path = self.path / KEY_FILE
            if not key_path.exists():
                tmp = self.path / f".key-{uuid.uuid4().hex}"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    os.write(fd, secrets.token_hex(32).encode())
                    os.fsync(fd)
                finally:
                    os.close(fd)
                try:
                    os.link(tmp, key_path)  # fails if another process created it first: theirs stands
                except FileExistsError:
                    pass
                finally:
                    os.unlink(tmp)
            self._key, self._key_problem = _read_key(key_path)
        return self._key

    @property
    def key_trusted(self) -> bool:
        """Whether signatures under this registry's key prove anything to the current user.

        True only when ``.registry-key`` is a regular file (not a link) owned by the
        current user (``st_uid == os.getuid()``) with no group or other permission bits
        (``mode & 0o077 == 0``). Otherwise anyone who could write the directory could
        have planted the key, and entries that need a signature (pickles, non-built-in
        classes, extra skops types) are refused with :class:`UntrustedModel`.
        """
        _ = self.key  # reads the key file and judges it
        return self._key_problem is None

    def _untrusted_key_reason(self) -> str:
        key_path = self.path / KEY_FILE
        if self.key_trusted:
            return f"its signature does not match this registry's key {key_path} at {self._real_path}"
        return f"the registry's key {key_path} cannot be trusted: {self._key_problem}"

    def _sign(self, body: bytes) -> str:
        return hmac.new(self.key, self._real_path.encode() + b"\0" + body, hashlib.sha256).hexdigest()

    # ------------------------------------------------------------ versions
    def _check_name(self, name: str) -> str:
        if not isinstance(name, str) or not _NAME.match(name):
            raise InputError(f"model name {name!r} must be 1-128 letters, digits, '_', '.', '-' (not starting with '.' or '-')")
        return name

    def versions(self, name: str) -> list[int]:
        """The committed versions of ``name``, ascending (empty when unknown)."""
        d = self.path / self._check_name(name)
        try:
            entries = os.listdir(d)
        except FileNotFoundError:
            return []
        return sorted(int(e) for e in entries if e.isdigit() and not e.startswith("0"))

    def names(self) -> list[str]:
        """Names with at least one version, sorted."""
        out = []
        for e in sorted(os.listdir(self.path)):
            if not e.startswith(".") and _NAME.match(e) and (self.path / e).is_dir() and self.versions(e):
                out.append(e)
        return out

    def resolve(self, name: str, version: int | None = None) -> int:
        """The version :meth:`load` would read: ``version`` checked, or the highest.

        Raises
        ------
        ModelNotFound
            Unknown name, or no such version (the message lists the ones there are).
        """
        versions = self.versions(name)
        if not versions:
            known = ", ".join(self.names()) or "none"
            raise ModelNotFound(f"no model named {name!r} in {self.path} (models: {known})")
        if version is None:
            return versions[-1]
        if isinstance(version, bool) or not isinstance(version, (int,)) and not str(version).isdigit():
            raise InputError(f"a model version is an integer >= 1, got {version!r}")
        if int(version) not in versions:
            raise ModelNotFound(f"model {name!r} has no version {version} (versions: {', '.join(map(str, versions))})")
        return int(version)

    # ------------------------------------------------------------- writing
    def register(self, name: str, model: Any, version: int | None = None, metadata: dict[str, Any] | None = None,
                 tags: Iterable[str] = (), *, trusted: bool = False, requires: Any = None) -> int:
        """Store ``model`` as a new version of ``name``; return the version number.

        Parameters
        ----------
        name : str
        model : object
            An array model (``get_params``/``get_config``/``from_params``, the built-in
            ones included), a scikit-learn estimator (with skops installed), or, with
            ``trusted=True``, anything picklable.
        version : int, optional
            Explicit version (must not exist); default the highest plus one (1 first).
        metadata : dict, optional
            JSON-able values, searchable with :meth:`search`.
        tags : iterable of str
        trusted : bool
            Allow pickle for a model no safe serializer handles.
        requires : Requirements or dict, optional
            What a worker needs to run it (``memory``, ``cpus``, ``gpu``), checked by
            ``farm.predict_batch`` before any work is sent.

        Raises
        ------
        UntrustedModel
            The model needs pickle and ``trusted`` is False.
        ModelExists
            ``version`` exists already.
        """
        self._check_name(name)
        if version is not None and (isinstance(version, bool) or int(version) < 1):
            raise InputError(f"a model version is an integer >= 1, got {version!r}")
        metadata = dict(metadata or {})
        tags = tuple(sorted({tags} if isinstance(tags, str) else set(tags)))
        try:
            json.dumps(metadata)
        except (TypeError, ValueError) as exc:
            raise InputError(f"model metadata must be JSON ({exc})") from None
        fmt, data, config, cls_path, nbytes, extra = dump_model(model, trusted)
        if _needs_signature(fmt, cls_path, extra) and not self.key_trusted:
            raise UntrustedModel(f"cannot store {name!r} ({fmt}, {cls_path}) so that it can be loaded again: "
                                 f"{self._untrusted_key_reason()}; use a registry directory of your own")
        req = _requires_dict(requires)
        fname = MODEL_FILE[fmt]
        base = self.path / name
        tmp = base / f".tmp-{uuid.uuid4().hex}"
        for _ in range(100):
            try:
                # parents=True: a concurrent delete() may remove an empty NAME/ in between
                tmp.mkdir(parents=True)
                break
            except FileNotFoundError:
                continue
        else:
            tmp.mkdir(parents=True)
        try:
            write_atomic(tmp / fname, data)
            while True:
                v = int(version) if version is not None else (self.versions(name) or [0])[-1] + 1
                body = {
                    "format_version": FORMAT_VERSION, "name": name, "version": v, "format": fmt, "class": cls_path,
                    "config": config, "metadata": metadata, "tags": list(tags), "nbytes": nbytes, "requires": req,
                    "created": time.time(), "file": fname, "file_bytes": len(data), "file_crc32": checksum(data),
                    "trusted": bool(trusted), **extra,
                }
                write_atomic(tmp / MANIFEST, self._manifest_bytes(body))
                try:
                    os.rename(tmp, base / str(v))
                except OSError:
                    if not (base / str(v)).exists():
                        raise
                    if version is not None:
                        raise ModelExists(f"model {name!r} version {v} exists already; use update() for a new version") from None
                    continue  # another writer took v: try the next number
                fsync_dir(base)
                return v
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def update(self, name: str, model: Any, metadata: dict[str, Any] | None = None, tags: Iterable[str] | None = None,
               *, trusted: bool = False, requires: Any = None) -> int:
        """A new version of an existing model (old versions are kept); return its number.

        ``metadata`` is merged over the latest version's, ``tags`` default to its tags,
        ``requires`` to its requirements.
        """
        latest = self.info(name)
        merged = {**latest.metadata, **(metadata or {})}
        return self.register(name, model, None, merged, latest.tags if tags is None else tags, trusted=trusted,
                             requires=latest.requires if requires is None else requires)

    def delete(self, name: str, version: int | None = None) -> None:
        """Remove one version, or every version of ``name`` (``version=None``)."""
        base = self.path / self._check_name(name)
        targets = [self.resolve(name, version)] if version is not None else self.versions(name)
        if not targets:
            self.resolve(name)  # raises ModelNotFound
        for v in targets:
            gone = base / f".deleted-{uuid.uuid4().hex}"
            try:
                os.rename(base / str(v), gone)  # atomic: readers see the version or nothing
            except FileNotFoundError:
                continue
            shutil.rmtree(gone, ignore_errors=True)
        fsync_dir(base)
        if version is None or not self.versions(name):
            # Only an empty directory: a concurrent register() may have committed a new
            # version (or be writing its .tmp-*) since the versions were renamed away.
            try:
                os.rmdir(base)
            except OSError:
                pass

    def _manifest_bytes(self, body: dict[str, Any]) -> bytes:
        text = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        return json.dumps({"body": body, "crc32": checksum(text), "hmac": self._sign(text)}, sort_keys=True,
                          indent=1).encode()

    # ------------------------------------------------------------- reading
    def _manifest(self, name: str, version: int) -> tuple[dict[str, Any], bool]:
        """The manifest body of a version, verified; and whether this registry signed it."""
        path = self.path / name / str(version) / MANIFEST
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ModelNotFound(f"model {name!r} version {version} is gone (deleted while being read?)") from None
        try:
            doc = json.loads(raw)
            body = doc["body"]
            text = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
            ok = checksum(text) == int(doc["crc32"])
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise CorruptedModel(f"model {name!r} version {version}: {path} is damaged (bad JSON or checksum)")
        if not isinstance(body, dict) or body.get("name") != name or body.get("version") != version:
            raise CorruptedModel(f"model {name!r} version {version}: {path} describes another entry "
                                 f"({body.get('name')!r} version {body.get('version')!r}) or is damaged")
        signed = self.key_trusted and hmac.compare_digest(str(doc.get("hmac", "")), self._sign(text))
        return body, signed

    def info(self, name: str, version: int | None = None) -> ModelInfo:
        """What is known about a version without loading it (latest when ``version`` is None)."""
        v = self.resolve(name, version)
        body, _ = self._manifest(name, v)
        return _info(body)

    def load(self, name: str, version: int | None = None, *, max_bytes: int | str | None = None) -> Any:
        """The model ``name`` at ``version`` (the highest when None), rebuilt and verified.

        Parameters
        ----------
        max_bytes : int or str, optional
            Refuse (``ModelTooLarge``) a model larger than this in memory (e.g. ``"2G"``).

        Raises
        ------
        ModelNotFound, CorruptedModel, UntrustedModel, ModelTooLarge
        """
        model, _ = self.load_with_info(name, version, max_bytes=max_bytes)
        return model

    def load_with_info(self, name: str, version: int | None = None, *,
                       max_bytes: int | str | None = None) -> tuple[Any, ModelInfo]:
        """:meth:`load` and the version's :class:`ModelInfo`."""
        from hpcdist.farm.requirements import format_bytes, parse_memory

        v = self.resolve(name, version)
        body, signed = self._manifest(name, v)
        info = _info(body)
        limit = parse_memory(max_bytes)
        if limit is not None and info.nbytes > limit:
            raise ModelTooLarge(f"model {name!r} version {v} needs {format_bytes(info.nbytes)}, "
                                f"more than the {format_bytes(limit)} allowed")
        fmt = body.get("format")
        if fmt not in MODEL_FILE or body.get("file") != MODEL_FILE[fmt]:
            # never a path from the manifest: an absolute or '../' name would read any file
            raise CorruptedModel(f"model {name!r} version {v}: the manifest names file {body.get('file')!r} for "
                                 f"format {fmt!r} (expected {MODEL_FILE.get(fmt, 'a known format')!r})")
        path = self.path / name / str(v) / MODEL_FILE[fmt]
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ModelNotFound(f"model {name!r} version {v} is gone (deleted while being read?)") from None
        if len(data) != body["file_bytes"] or checksum(data) != body["file_crc32"]:
            raise CorruptedModel(f"model {name!r} version {v}: {path} does not match its checksum "
                                 f"({len(data)} bytes, expected {body['file_bytes']})")
        if fmt == "pickle" and not (signed and body.get("trusted")):
            raise UntrustedModel(f"model {name!r} version {v} is a pickle that this registry did not write "
                                 f"({self._untrusted_key_reason()}); refusing to unpickle it")
        extra = {k: body[k] for k in ("skops_types",) if k in body}
        if extra.get("skops_types") and not signed:
            raise UntrustedModel(f"model {name!r} version {v}: skops types {extra['skops_types']} were not recorded "
                                 f"by this registry ({self._untrusted_key_reason()}); refusing to trust them")
        if _needs_signature(fmt, body.get("class"), extra) and not signed:
            raise UntrustedModel(f"model {name!r} version {v} names the class {body.get('class')!r}, which is not "
                                 f"built in, and this registry did not sign it ({self._untrusted_key_reason()}); "
                                 "refusing to import it")
        return load_model(fmt, data, body["config"], body["class"], extra), info

    def list(self, name: str | None = None) -> list[ModelInfo]:
        """Every version (of ``name``, or of every model), sorted by name and version.

        A damaged entry is skipped here (with a warning) so one bad file does not hide
        the rest; :meth:`load` of it raises :class:`CorruptedModel`.
        """
        from hpcdist.runtime.logs import get_logger

        out = []
        for n in ([self._check_name(name)] if name is not None else self.names()):
            for v in self.versions(n):
                try:
                    body, _ = self._manifest(n, v)
                except CorruptedModel as exc:
                    get_logger(__name__).warning("%s", exc)
                    continue
                except ModelNotFound:
                    continue
                out.append(_info(body))
        return out

    def search(self, tags: Iterable[str] | str = (), *, latest: bool = False, **metadata: Any) -> list[ModelInfo]:
        """Versions carrying every tag in ``tags`` and whose metadata equal ``metadata``.

        ``latest=True`` keeps only the highest matching version of each name.
        """
        want = {tags} if isinstance(tags, str) else set(tags)
        hits = [i for i in self.list() if want <= set(i.tags)
                and all(k in i.metadata and i.metadata[k] == v for k, v in metadata.items())]
        if latest:
            best: dict[str, ModelInfo] = {}
            for i in hits:
                best[i.name] = i
            hits = list(best.values())
        return hits

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(_NAME.match(name)) and bool(self.versions(name))


def _needs_signature(fmt: str, cls_path: Any, extra: dict[str, Any]) -> bool:
    """Whether loading an entry would run code named by its manifest (so the HMAC must vouch)."""
    if fmt == "arrays":
        return cls_path not in BUILTIN_CLASS_PATHS
    if fmt == "skops":
        return bool(extra.get("skops_types"))
    return True


def _read_key(key_path: Path) -> tuple[bytes, str | None]:
    """The key's bytes, and why it cannot be trusted (None when it can).

    Opened without following a link and judged on the open file (``fstat``), so the
    file judged is the file read.
    """
    try:
        fd = os.open(key_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except PermissionError:
        # Another user's registry, read-only to us: readable entries (built-in array
        # models) still load; nothing that needs a signature does.
        return b"", "you cannot read it (another user's registry?)"
    except OSError:
        if not key_path.is_symlink():
            raise
        return key_path.read_bytes().strip(), "it is a symbolic link"
    try:
        st = os.fstat(fd)
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    key = b"".join(chunks).strip()
    uid = os.getuid()
    if not stat.S_ISREG(st.st_mode):
        return key, "it is not a regular file"
    if st.st_uid != uid:
        return key, f"it is owned by uid {st.st_uid}, not by you (uid {uid})"
    if st.st_mode & 0o077:
        return key, f"its mode {stat.S_IMODE(st.st_mode):04o} gives group or others access (it must be 0600)"
    if not key:
        return key, "it is empty"
    return key, None


def _info(body: dict[str, Any]) -> ModelInfo:
    return ModelInfo(name=body["name"], version=int(body["version"]), format=body["format"], class_path=body["class"],
                     nbytes=int(body["nbytes"]), created=float(body["created"]), tags=tuple(body.get("tags", ())),
                     metadata=dict(body.get("metadata", {})), config=dict(body.get("config", {})),
                     requires=dict(body.get("requires", {})))


def _requires_dict(requires: Any) -> dict[str, Any]:
    if requires is None:
        return {}
    from hpcdist.farm.requirements import Requirements

    if isinstance(requires, dict):
        requires = Requirements(**requires)
    if not isinstance(requires, Requirements):
        raise InputError(f"requires must be a Requirements or a dict, got {type(requires).__name__}")
    out: dict[str, Any] = {"cpus": int(requires.cpus), "gpu": int(requires.gpu)}
    if requires.memory_bytes is not None:
        out["memory"] = int(requires.memory_bytes)
    return out
