"""The library: finding model files and templates by path, loading each once.

A template is named by a dotted path `pkg.sub.file.template` (the last part the template,
the one before it the YAML file), searched in the folders of MODELC_PATH and then in the
shipped models/ folder; `path/to/file.yaml:template` names a file directly, and inside a
file a bare name is a template of that file.

Only regular files of at most MAX_FILE_BYTES of UTF-8 are read. A template's chain of bases is
built from its root up, so a chain of any length needs no deep recursion.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import NamedTuple

from ..errors import (InheritanceCycleError, Location, ModelcError, ModelFileError, UnknownTemplateError,
                      did_you_mean)
from ..resources import resource_dir
from .inheritance import build_template
from .marked_yaml import MarkedDict, excerpt, load_yaml
from .templates import KINDS, CircuitTemplate, EdgeTemplate, NodeTemplate, OperatorTemplate, Template
from .validation import IDENTIFIER

_YAML_SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 4 * 2**20  # thousands of templates; a larger "model file" is something else


def default_search_path() -> list[Path]:
    """The folders of MODELC_PATH, then the shipped models/."""
    extra = [Path(p) for p in os.environ.get("MODELC_PATH", "").split(os.pathsep) if p]
    return extra + [resource_dir("models")]


_PARSED: dict[tuple[Path, str], MarkedDict] = {}
ALIASES = "aliases"  # a top-level list of YAML anchors (&name long.path), as PyRates files have: no template


def _parsed(path: Path, text: str) -> MarkedDict:
    """A file's templates from its parsed YAML, shared across libraries while its text is unchanged
    (the YAML composer is pure Python: a network of 100 populations must not parse one file 100 times)."""
    key = (path, text)
    if key not in _PARSED:
        if len(_PARSED) > 256:
            _PARSED.clear()
        data = load_yaml(text, str(path))
        data.pop(ALIASES, None)  # its anchors are resolved by the YAML loader where they are used
        _PARSED[key] = data
    return _PARSED[key]


class Scan(NamedTuple):
    """What `Library.scan` found: every template it could build, and why it skipped the rest."""

    templates: list[tuple[str, Template]]  # (dotted path, template) in path order
    skipped: list[ModelcError]  # one per unreadable file or template that could not be built


class Library:
    """Finds and loads templates by path, caching each file and each template once."""

    def __init__(self, search_path: list[Path] | None = None):
        self.search_path = [Path(p) for p in (default_search_path() if search_path is None else search_path)]
        self._files: dict[Path, MarkedDict] = {}
        self._templates: dict[tuple[Path, str], Template] = {}
        self._resolving: list[tuple[Path, str]] = []  # templates being built, to name a cycle of bases

    # -- files ---------------------------------------------------------------------

    def load_file(self, path: Path) -> MarkedDict:
        if path in self._files:  # resolved already: each template of a long chain asks again
            return self._files[path]
        path = path.resolve()
        if path not in self._files:
            self._files[path] = _parsed(path, read_model_file(path))
        return self._files[path]

    def templates_in(self, path: Path) -> list[Template]:
        """Every template of a file, in file order."""
        path = path.resolve()
        return [self._template(path, name) for name in self.load_file(path)]

    def scan(self) -> Scan:
        """Every template of every model file in the search path (what `modelc list` shows). A file
        that cannot be read, or a template that cannot be built, is skipped with its error kept."""
        templates, skipped = [], []
        for root in self.search_path:
            for file in sorted(Path(root).rglob("*.y*ml")):
                if file.suffix not in _YAML_SUFFIXES:
                    continue
                prefix = ".".join(file.relative_to(root).with_suffix("").parts)
                try:
                    names = list(self.load_file(file))
                except ModelcError as exc:
                    skipped.append(exc)
                    continue
                resolved = file.resolve()
                for name in names:
                    try:
                        templates.append((f"{prefix}.{name}", self._template(resolved, name)))
                    except ModelcError as exc:
                        skipped.append(exc)
        return Scan(templates, skipped)

    def dotted_name(self, path: Path) -> str:
        """The dotted name of a file under a search root (pkg.sub.file), else its stem."""
        for root in self.search_path:
            try:
                return ".".join(path.relative_to(root.resolve()).with_suffix("").parts)
            except ValueError:
                continue
        return path.stem

    # -- paths ---------------------------------------------------------------------

    def get(self, reference: str, here: Path | None = None, location: Location | None = None) -> Template:
        """Resolve `file.yaml:template`, a dotted path, or (with `here`) a bare name of that file."""
        return self._template(*self._locate(reference, here, location), location)

    def _locate(self, reference: str, here: Path | None, location: Location | None) -> tuple[Path, str]:
        """The file and the name of the template a reference names."""
        if not isinstance(reference, str) or not reference.strip():
            raise UnknownTemplateError(f"a template path must be a non-empty string, got {excerpt(reference)}",
                                       location)
        reference = reference.strip()
        if ":" in reference and reference.split(":")[0].endswith(_YAML_SUFFIXES):
            file_part, _, name = reference.rpartition(":")
            file = Path(file_part)
            if not file.is_absolute() and here is not None:
                file = here.parent / file
            return file.resolve(), name
        if here is not None and "." not in reference:
            return here, reference
        return self._dotted(reference, location)

    def _dotted(self, reference: str, location: Location | None) -> tuple[Path, str]:
        parts = reference.split(".")
        if len(parts) < 2 or not all(IDENTIFIER.match(p) for p in parts):  # no '..', '/', '~': stay in the roots
            raise UnknownTemplateError(
                f"'{reference}' is not a template path", location,
                "write package.file.template (dotted names only) or path/to/file.yaml:template")
        *folders, file_name, name = parts
        for root in self.search_path:
            for suffix in _YAML_SUFFIXES:
                candidate = root.joinpath(*folders, file_name + suffix)
                if candidate.is_file():
                    return candidate.resolve(), name
        raise UnknownTemplateError(f"no model file for template path '{reference}'", location,
                                   self._path_hint(folders, file_name))

    def _path_hint(self, folders: list[str], file_name: str) -> str:
        known = []
        for root in self.search_path:
            folder = root.joinpath(*folders)
            if folder.is_dir():
                known += [p.stem for p in folder.iterdir() if p.suffix in _YAML_SUFFIXES or p.is_dir()]
        close = did_you_mean(file_name, known)
        searched = ", ".join(str(r) for r in self.search_path)
        return (close + " " if close else "") + f"searched: {searched} (set MODELC_PATH to add folders)"

    # -- templates -----------------------------------------------------------------

    def _template(self, path: Path, name: str, location: Location | None = None) -> Template:
        for base_path, base_name, where in self._unbuilt_bases(path, name):
            self._build(base_path, base_name, where)  # the root first: each finds its own base built
        return self._build(path, name, location)

    def _unbuilt_bases(self, path: Path, name: str) -> list[tuple[Path, str, Location]]:
        """The templates below this one in its chain of `base:` not built yet, the root first.
        Built in that order, a chain of any length recurses no deeper than one template: building
        one builds its base first."""
        chain: list[tuple[Path, str, Location | None]] = [(path, name, None)]
        seen = {(path, name)}
        while (base := self._base_of(path, name)) is not None:
            path, name, _ = base
            if (path, name) in seen:
                names = [n for p, n, _ in chain[[key[:2] for key in chain].index((path, name)):]] + [name]
                raise InheritanceCycleError(f"templates inherit from each other in a cycle: {_chain(names)}",
                                            self.load_file(path).where(name))
            if (path, name) in self._templates:
                break
            chain.append(base)
            seen.add((path, name))
        return chain[:0:-1]

    def _base_of(self, path: Path, name: str) -> tuple[Path, str, Location] | None:
        """The template that a template's `base:` names, where it exists (a kind is no template)."""
        try:
            body = self.load_file(path).get(name)
            base = body.get("base") if isinstance(body, MarkedDict) else None
            if not isinstance(base, str) or base in KINDS:
                return None
            where = body.where_value("base")
            base_path, base_name = self._locate(base, path, where)
            return (base_path, base_name, where) if base_name in self.load_file(base_path) else None
        except ModelcError:
            return None  # building the template reports it, located

    def _build(self, path: Path, name: str, location: Location | None) -> Template:
        key = (path, name)
        if key in self._templates:
            return self._templates[key]
        data = self._file_named_at(path, location)
        if name not in data:
            raise UnknownTemplateError(f"template '{name}' is not in {path.name}", location,
                                       did_you_mean(name, data.keys()) or f"it holds: {', '.join(data)}")
        if key in self._resolving:
            names = [n for _, n in self._resolving[self._resolving.index(key):]] + [name]
            raise InheritanceCycleError(f"templates inherit from or contain each other in a cycle: {_chain(names)}",
                                        data.where(name))
        self._resolving.append(key)
        try:
            template = build_template(self, path, name, data[name], data.where(name))
        finally:
            self._resolving.pop()
        self._templates[key] = template
        return template

    def _file_named_at(self, path: Path, location: Location | None) -> MarkedDict:
        """A file that a reference at `location` names: a missing or unreadable one is reported there."""
        try:
            return self.load_file(path)
        except (UnknownTemplateError, ModelFileError) as exc:
            if exc.location is None and location is not None:
                exc.location = location
            raise


def _chain(names: list[str]) -> str:
    """a -> b -> c, with the middle of a long chain left out."""
    shown = names if len(names) <= 8 else names[:3] + ["…"] + names[-3:]
    return " -> ".join(shown)


def read_model_file(path: Path) -> str:
    """The text of a model file. Only a regular file is read (a named pipe would block forever,
    /dev/zero never end), of at most MAX_FILE_BYTES, and it must be UTF-8."""
    try:
        _check_regular(path, os.stat(path).st_mode)
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # in case it became a pipe since
        with os.fdopen(descriptor, "rb") as handle:
            _check_regular(path, os.fstat(handle.fileno()).st_mode)
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise UnknownTemplateError(f"model file '{path}' does not exist") from None
    except OSError as exc:
        raise ModelFileError(f"cannot read model file '{path}': {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ModelFileError(f"model file '{path}' is larger than {MAX_FILE_BYTES // 2**20} MiB", None,
                             "split it into several model files")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, data, exc.start) from None


_NOT_REGULAR = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a device"),
                (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))


def _check_regular(path: Path, mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _NOT_REGULAR if test(mode)), "not a regular file")
        raise ModelFileError(f"model file '{path}' is {kind}, not a regular file", None,
                             "a model file is an ordinary file of YAML text")


def _not_utf8(path: Path, data: bytes, start: int) -> ModelFileError:
    """The error for the first byte of a file that is not UTF-8, located at its line and column."""
    line_start = data.rfind(b"\n", 0, start) + 1
    line_end = data.find(b"\n", start)
    source = data[line_start:len(data) if line_end < 0 else line_end].decode("utf-8", "replace")
    column = len(data[line_start:start].decode("utf-8")) + 1  # the bytes before the first bad one are UTF-8
    where = Location(str(path), data.count(b"\n", 0, start) + 1, column, source)
    hint = "model files are UTF-8 text; is it a binary file?"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        hint = "it starts like UTF-16 text (a byte order mark); save it as UTF-8"
    return ModelFileError(f"model file is not UTF-8 text (byte 0x{data[start]:02x})", where, hint)


def load(reference: "str | Template", library: Library | None = None) -> Template:
    """A template from a path (or a template object, returned as is)."""
    if isinstance(reference, (OperatorTemplate, NodeTemplate, EdgeTemplate, CircuitTemplate)):
        return reference
    return (library or Library()).get(reference)
