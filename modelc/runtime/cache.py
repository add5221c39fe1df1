"""The content-addressed cache of generated modules, and loading them.

An entry is named by a SHA-256 over everything that changes the generated code; its last
line is a checksum of the rest, so a truncated or corrupted entry is detected and rebuilt.
Entries are written atomically (a temporary file, then a rename), so concurrent compiles of
the same model both succeed and leave one valid file. Never in the working directory and
never on sys.path.

What runs is what was verified: a module is compiled from the very text whose checksum held
(no bytecode cache is read or written), from a folder that belongs to this user and that no
one else may write, in a file this user owns. The checksum finds damage, not forgery: anyone
who can write the folder could write a valid checksum, hence the owner and mode checks.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.abc
import importlib.util
import os
import stat
import sys
import tempfile
import warnings
from pathlib import Path
from types import CodeType, ModuleType
from typing import BinaryIO, Iterator

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
    """The cache folder, or a private temporary one (with one warning) when it cannot be written
    or is not private: code is loaded from it, so it must be ours and writable by no one else."""
    folder = default_cache_dir()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        problem = not_private(folder.stat())
        if problem is None:
            tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-", delete=True).close()
            return folder
    except OSError as exc:
        problem = f"is not writable ({exc.strerror or exc})"
    fallback = private_temp_dir()
    _warn_fallback(folder, problem, fallback)
    return fallback


def not_private(info: os.stat_result) -> str | None:
    """Why a file or folder with these stats could hold someone else's code, or None when it is
    ours and no one else may write it (what ssh and pip ask of their folders)."""
    if not hasattr(os, "getuid"):  # Windows: access is ruled by ACLs, not by these bits
        return None
    if info.st_uid != os.getuid():
        return f"belongs to another user (uid {info.st_uid}); code loaded from it could be theirs"
    if info.st_mode & 0o022:
        return (f"is writable by other users (mode {stat.S_IMODE(info.st_mode):o}); code loaded from it "
                f"could be theirs (chmod go-w it to use it)")
    return None


def store(path: Path, text: str) -> Path:
    """Write a cache entry atomically and say where it went: `path`, or, when that folder fails
    (full disk, permissions changed), the same name in the private temporary folder (one warning)."""
    try:
        write_atomic(path, text)
        return path
    except OSError as exc:
        fallback = private_temp_dir()
        _warn_fallback(path.parent, f"is not writable ({exc.strerror or exc})", fallback)
        write_atomic(fallback / path.name, text)
        return fallback / path.name


def _warn_fallback(folder: Path, problem: str, fallback: Path) -> None:
    global _warned_fallback
    if not _warned_fallback:
        warnings.warn(f"modelc cache folder {folder} {problem}; using {fallback} instead", RuntimeWarning,
                      stacklevel=4)
        _warned_fallback = True


def private_temp_dir() -> Path:
    """A temporary cache folder only this user can write (code is loaded from it): the shared
    per-user one when it is ours and not writable by others, else a fresh one."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    folder = Path(tempfile.gettempdir()) / f"modelc-cache-{uid if uid is not None else 'user'}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()  # lstat: a symbolic link planted there is not followed
        if stat.S_ISDIR(info.st_mode) and not_private(info) is None:
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
    """The entry's source if its checksum holds and this user owns the file, else None (an entry
    planted while the folder was open to others is rebuilt, not run)."""
    try:
        with open(path, "rb") as handle:
            if not_private(os.fstat(handle.fileno())) is not None:
                return None
            text = handle.read().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    body, sep, last = text.rstrip("\n").rpartition("\n")
    if not sep or not last.startswith(CHECKSUM_PREFIX):
        return None
    body += "\n"
    return body if last[len(CHECKSUM_PREFIX):] == sha256(body) else None


def write_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Write a text file (UTF-8) so that readers see either the old content or the whole new one.

    The file is private (0o600, like every temporary file) unless `mode` says otherwise."""
    with atomic_file(path, mode) as handle:
        handle.write(text.encode("utf-8"))


def ordinary_file_mode() -> int:
    """The mode open() gives a new file (0o666 less the umask), for files written for the user."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_file(path: Path, mode: int | None = None) -> Iterator[BinaryIO]:
    """A binary file to write that replaces `path` whole when the block ends, and leaves `path`
    as it was (no temporary file behind) when the block fails or is interrupted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
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


class _VerifiedSourceLoader(importlib.abc.InspectLoader):
    """Loads a module from source text already verified, compiled as it is: the file is not read
    again and no bytecode cache is read or written (a .pyc next to it would run unchecked)."""

    def __init__(self, path: Path, source: str):
        self.path, self.source = path, source

    def get_source(self, fullname: str) -> str:
        return self.source

    def get_code(self, fullname: str) -> CodeType:
        return self.source_to_code(self.source, str(self.path))  # the path: tracebacks name the file

    def is_package(self, fullname: str) -> bool:
        return False


def load_module(path: Path, source: str, key: str) -> ModuleType:
    """The module of a generated file's verified source text, not registered in sys.modules;
    its __file__ is the file.

    A generated module imports only its backend's array library, so an ImportError means that
    library (CuPy) is missing here; the module's own message says what to install."""
    loader = _VerifiedSourceLoader(path, source)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(f"modelc_generated_{key[:16]}", loader))
    module.__file__ = str(path)
    try:
        loader.exec_module(module)
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
