"""The content-addressed cache of generated modules, and loading them.

An entry is named by a SHA-256 over everything that changes the generated code; its last
line is a checksum of the rest, so a truncated or corrupted entry is detected and rebuilt.
Entries are written atomically (a temporary file, then a rename), so concurrent compiles of
the same model both succeed and leave one valid file. Never in the working directory and
never on sys.path.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import stat
import sys
import tempfile
import warnings
from pathlib import Path
from types import ModuleType

from ..errors import (BackendUnavailableError, InvalidValueError, ModelcError, NonFiniteError, ShapeError,
                      UnknownVariableError)

CHECKSUM_PREFIX = "# modelc-checksum: "
_warned_fallback = False


def default_cache_dir() -> Path:
    if os.environ.get("MODELC_CACHE_DIR"):
        return Path(os.environ["MODELC_CACHE_DIR"])
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "modelc"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", Path.home())) / "modelc" / "Cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modelc"


def writable_cache_dir() -> Path:
    """The cache folder, or a temporary one (with one warning) when it cannot be written."""
    folder = default_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-", delete=True)
        probe.close()
        return folder
    except OSError as exc:
        fallback = private_temp_dir()
        _warn_fallback(folder, exc, fallback)
        return fallback


def store(path: Path, text: str) -> Path:
    """Write a cache entry atomically and say where it went: `path`, or, when that folder fails
    (full disk, permissions changed), the same name in the private temporary folder (one warning)."""
    try:
        write_atomic(path, text)
        return path
    except OSError as exc:
        fallback = private_temp_dir()
        _warn_fallback(path.parent, exc, fallback)
        write_atomic(fallback / path.name, text)
        return fallback / path.name


def _warn_fallback(folder: Path, exc: OSError, fallback: Path) -> None:
    global _warned_fallback
    if not _warned_fallback:
        warnings.warn(f"modelc cache folder {folder} is not writable ({exc.strerror or exc}); "
                      f"using {fallback} instead", RuntimeWarning, stacklevel=4)
        _warned_fallback = True


def private_temp_dir() -> Path:
    """A temporary cache folder only this user can write (code is loaded from it): the shared
    per-user one when it is ours and not writable by others, else a fresh one."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    folder = Path(tempfile.gettempdir()) / f"modelc-cache-{uid if uid is not None else 'user'}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()  # lstat: a symbolic link planted there is not followed
        if stat.S_ISDIR(info.st_mode) and (uid is None or (info.st_uid == uid and not info.st_mode & 0o022)):
            tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-", delete=True).close()
            return folder
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix="modelc-cache-"))


def sha256(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def with_checksum(source: str) -> str:
    """The source with a last line that checks it (over the text as stored, final newline included)."""
    body = source if source.endswith("\n") else source + "\n"
    return body + CHECKSUM_PREFIX + sha256(body) + "\n"


def verified_source(path: Path) -> str | None:
    """The entry's source if its checksum holds, else None."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    body, sep, last = text.rstrip("\n").rpartition("\n")
    if not sep or not last.startswith(CHECKSUM_PREFIX):
        return None
    body += "\n"
    return body if last[len(CHECKSUM_PREFIX):] == sha256(body) else None


def write_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Write a file so that readers see either the old content or the whole new one.

    The file is private (0o600, like every temporary file) unless `mode` says otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load_module(path: Path, key: str) -> ModuleType:
    """Import a generated file as a module that is not registered in sys.modules.

    A generated module imports only its backend's array library, so an ImportError means that
    library (CuPy) is missing here; the module's own message says what to install."""
    spec = importlib.util.spec_from_file_location(f"modelc_generated_{key[:16]}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:
        raise BackendUnavailableError(str(exc), None, "to only write the module's source, use compile_source() "
                                      "or `modelc compile -o FILE`: generating needs no CuPy") from exc
    use_modelc_errors(module)
    return module


# The error classes a generated module defines for itself (it imports nothing but NumPy).
_ERROR_CLASSES = {"ModelError": ModelcError, "ShapeError": ShapeError, "InvalidValueError": InvalidValueError,
                  "NonFiniteError": NonFiniteError, "UnknownVariableError": UnknownVariableError}


def use_modelc_errors(module: ModuleType) -> None:
    """Make a loaded generated module raise modelc's own error classes (same codes, same bases)."""
    for own, theirs in _ERROR_CLASSES.items():
        if isinstance(getattr(module, own, None), type):
            setattr(module, own, theirs)
