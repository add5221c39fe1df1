"""The library: finding model files and templates by path, loading each once.

A template is named by a dotted path `pkg.sub.file.template` (the last part the template,
the one before it the YAML file), searched in the folders of MODELC_PATH and then in the
shipped models/ folder; `path/to/file.yaml:template` names a file directly, and inside a
file a bare name is a template of that file.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import (InheritanceCycleError, Location, ModelcError, TemplateFormatError, UnknownTemplateError,
                      did_you_mean)
from ..resources import resource_dir
from .inheritance import build_template
from .marked_yaml import MarkedDict, load_yaml
from .templates import CircuitTemplate, NodeTemplate, OperatorTemplate, Template
from .validation import IDENTIFIER

_YAML_SUFFIXES = (".yaml", ".yml")


def default_search_path() -> list[Path]:
    """The folders of MODELC_PATH, then the shipped models/."""
    extra = [Path(p) for p in os.environ.get("MODELC_PATH", "").split(os.pathsep) if p]
    return extra + [resource_dir("models")]


_PARSED: dict[tuple[Path, str], MarkedDict] = {}


def _parsed(path: Path, text: str) -> MarkedDict:
    """A file's parsed YAML, shared across libraries while its text is unchanged (the YAML
    composer is pure Python: a network of 100 populations must not parse one file 100 times)."""
    key = (path, text)
    if key not in _PARSED:
        if len(_PARSED) > 256:
            _PARSED.clear()
        _PARSED[key] = load_yaml(text, str(path))
    return _PARSED[key]


class Library:
    """Finds and loads templates by path, caching each file and each template once."""

    def __init__(self, search_path: list[Path] | None = None):
        self.search_path = [Path(p) for p in (default_search_path() if search_path is None else search_path)]
        self._files: dict[Path, MarkedDict] = {}
        self._templates: dict[tuple[Path, str], Template] = {}
        self._resolving: list[tuple[Path, str]] = []  # templates being built, to name a cycle of bases

    # -- files ---------------------------------------------------------------------

    def load_file(self, path: Path) -> MarkedDict:
        path = path.resolve()
        if path not in self._files:
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                raise UnknownTemplateError(f"model file '{path}' does not exist") from None
            except (OSError, UnicodeDecodeError) as exc:
                raise TemplateFormatError(f"cannot read model file '{path}': {exc}") from None
            self._files[path] = _parsed(path, text)
        return self._files[path]

    def templates_in(self, path: Path) -> list[Template]:
        """Every template of a file, in file order."""
        path = path.resolve()
        return [self._template(path, name) for name in self.load_file(path)]

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
        if not isinstance(reference, str) or not reference.strip():
            raise UnknownTemplateError(f"a template path must be a non-empty string, got {reference!r}", location)
        reference = reference.strip()
        if ":" in reference and reference.split(":")[0].endswith(_YAML_SUFFIXES):
            file_part, _, name = reference.rpartition(":")
            file = Path(file_part)
            if not file.is_absolute() and here is not None:
                file = here.parent / file
            return self._template(file.resolve(), name, location)
        if here is not None and "." not in reference:
            return self._template(here, reference, location)
        return self._dotted(reference, location)

    def _dotted(self, reference: str, location: Location | None) -> Template:
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
                    return self._template(candidate.resolve(), name, location)
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
        key = (path, name)
        if key in self._templates:
            return self._templates[key]
        data = self._file_named_at(path, location)
        if name not in data:
            raise UnknownTemplateError(f"template '{name}' is not in {path.name}", location,
                                       did_you_mean(name, data.keys()) or f"it holds: {', '.join(data)}")
        if key in self._resolving:
            chain = " -> ".join(n for _, n in self._resolving[self._resolving.index(key):]) + f" -> {name}"
            raise InheritanceCycleError(f"templates inherit from each other in a cycle: {chain}", data.where(name))
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
        except (UnknownTemplateError, TemplateFormatError) as exc:
            if exc.location is None and location is not None:
                exc.location = location
            raise


def load(reference: "str | Template", library: Library | None = None) -> Template:
    """A template from a path (or a template object, returned as is)."""
    if isinstance(reference, (OperatorTemplate, NodeTemplate, CircuitTemplate)):
        return reference
    try:
        return (library or Library()).get(reference)
    except RecursionError:
        raise ModelcError("templates nest too deeply") from None
