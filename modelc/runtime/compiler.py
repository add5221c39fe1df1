"""compile_model: template -> loaded generated module, through the cache; compile_source: the
same module's source text, never imported.

A cache hit reads the YAML files (to hash them) but neither parses equations nor imports
SymPy, lark or Jinja: the IR and the code generator are imported only on a miss. Generating
never needs the target backend's runtime: only loading a CuPy module imports CuPy.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterable

from ..codegen.options import check_backend, check_dtype, get_scheme
from ..errors import WiringError, did_you_mean
from ..resources import resource_dir
from ..spec import Library, Template, load
from ..version import __version__
from .cache import load_module, sha256, store, verified_source, with_checksum, writable_cache_dir
from .imports import imports_undone_on_failure

_loaded: dict[str, ModuleType] = {}
_PACKAGE_DIR = Path(__file__).resolve().parent.parent

BuildSource = Callable[[str], str]  # cache key -> generated source text


@dataclasses.dataclass(frozen=True)
class Coupling:
    """How a node becomes a recurrent population: target_var = W @ source_var (RectiPy's meaning)."""

    source_var: str | None = None
    target_var: str | None = None
    input_var: str | None = None
    output_var: str | None = None


def _code_version() -> str:
    """Hash of modelc's own source and templates: a change in the compiler invalidates the cache."""
    files = sorted(_PACKAGE_DIR.rglob("*.py")) + sorted(_PACKAGE_DIR.glob("*.lark")) + \
        sorted(resource_dir("templates").rglob("*.j2"))
    return sha256(__version__, *(f.read_bytes().decode("utf-8", "replace") for f in files))


_CODE_VERSION: str | None = None


def cache_key(description: str, backend: str, method: str, dtype: str) -> str:
    """The cache entry's name; checks the choices first, so a typo fails before any work."""
    global _CODE_VERSION
    check_backend(backend)
    check_dtype(dtype)
    get_scheme(method)
    if _CODE_VERSION is None:
        _CODE_VERSION = _code_version()
    return sha256(_CODE_VERSION, backend, method, dtype, description)


def cached_source(key: str, build_source: BuildSource) -> tuple[Path, str]:
    """The cache entry for key and its text (checksum line included), built by build_source(key)
    when it is missing, truncated or corrupted."""
    path = writable_cache_dir() / f"{key}.py"
    source = verified_source(path)
    if source is None:
        source = build_source(key)
        path = store(path, with_checksum(source))
    return path, with_checksum(source)


def cached_module(key: str, build_source: BuildSource) -> ModuleType:
    """The module for key: from memory, from the cache folder, or built by build_source(key)."""
    if key not in _loaded:
        path, text = cached_source(key, build_source)
        _loaded[key] = load_module(path, text, key)
    return _loaded[key]


def compile_model(template: "str | Template", method: str = "euler", backend: str = "numpy",
                  dtype: str = "float64", coupling: "Coupling | dict | None" = None,
                  vector_params: Iterable[str] = (), library: Library | None = None,
                  trainable: Iterable[str] = ()) -> ModuleType:
    """The generated module of a template (a path or a loaded template), compiled once and cached.

    With `coupling`, the node becomes a population with recurrent weights: the parameter
    "weights" (n, n) couples source_var into target_var as target = weights @ source. With
    `trainable` parameters, the module has grad() beside run() (the generated backward pass).
    """
    return cached_module(*_model_build(template, method, backend, dtype, coupling, vector_params, library,
                                       trainable))


def compile_source(template: "str | Template", method: str = "euler", backend: str = "numpy",
                   dtype: str = "float64", coupling: "Coupling | dict | None" = None,
                   vector_params: Iterable[str] = (), library: Library | None = None,
                   trainable: Iterable[str] = ()) -> str:
    """The source text of compile_model's module, without importing it (so backend="cupy" needs
    no CuPy here). It is the cache entry as stored: its last line is a checksum of the rest."""
    return cached_source(*_model_build(template, method, backend, dtype, coupling, vector_params, library,
                                       trainable))[1]


def _model_build(template, method, backend, dtype, coupling, vector_params, library,
                 trainable) -> tuple[str, BuildSource]:
    """The cache key of one template's module and the function that generates it."""
    template = load(template, library)
    coupling = _as_coupling(coupling)
    vector_params = tuple(sorted(vector_params))
    trainable = tuple(sorted(trainable))
    key = cache_key(repr((template, coupling, vector_params, trainable)), backend, method, dtype)

    def build(key: str) -> str:
        # Late: a cache hit must not import SymPy, lark or Jinja (see the module docstring).
        with imports_undone_on_failure():
            from ..codegen.generate import generate
            from ..ir import Connection, build_system
        connections = []
        if coupling is not None and (coupling.source_var or coupling.target_var):
            if not (coupling.source_var and coupling.target_var):
                raise WiringError("a coupling needs both source_var and target_var")
            connections.append(Connection(coupling.source_var, coupling.target_var, "weights"))
        system = build_system(template, connections, vector_params=vector_params)
        if coupling is not None:
            _check_interface(system, coupling)
        return generate(system, method, backend, dtype, key, __version__, trainable)

    return key, build


def _as_coupling(coupling: "Coupling | dict | None") -> Coupling | None:
    if not isinstance(coupling, dict):
        return coupling
    unknown = set(coupling) - {f.name for f in dataclasses.fields(Coupling)}
    if unknown:
        raise WiringError(f"unknown coupling key '{sorted(unknown)[0]}'", None,
                          "a coupling takes source_var, target_var, input_var and output_var")
    return Coupling(**coupling)


def _check_interface(system, coupling: Coupling) -> None:
    if coupling.input_var and coupling.input_var not in system.inputs:
        raise WiringError(f"input_var '{coupling.input_var}' is not a free input of {system.name}", None,
                          did_you_mean(coupling.input_var, system.inputs) or
                          f"free inputs: {', '.join(system.inputs) or 'none'}")
    if coupling.output_var and coupling.output_var not in system.outputs:
        raise WiringError(f"output_var '{coupling.output_var}' is not a variable of {system.name}", None,
                          did_you_mean(coupling.output_var, system.outputs))


def compile_network(populations: "dict[str, Template]", connections: Iterable[tuple[str, str, "float | str"]] = (),
                    method: str = "euler", backend: str = "numpy", dtype: str = "float64",
                    vector_params: Iterable[str] = (), name: str = "network", description: str = "",
                    trainable: Iterable[str] = ()) -> ModuleType:
    """The one generated module of a whole network, compiled once and cached.

    populations: {label: node or operator template} (labels prefix every name: "label/op/var");
    connections: (source, target, weight) triples, weight a number (elementwise) or the name of
    a matrix parameter W (n_target, n_source): target += W @ source.
    The cache key covers the structure only (templates, labels, connections, which parameters
    are vectors, which are trainable, method, backend, dtype): never weight values or population
    sizes, so the compile time does not depend on N and a network with other weights reuses the
    module. With trainable parameters the module has grad() beside run().
    """
    populations = dict(populations)
    connections = [tuple(c) for c in connections]
    vector_params = tuple(sorted(vector_params))
    trainable = tuple(sorted(trainable))
    structure = repr((name, description, list(populations.items()), connections, vector_params, trainable))
    key = cache_key("network\0" + structure, backend, method, dtype)

    def build(key: str) -> str:
        # Late: a cache hit must not import SymPy, lark or Jinja (see the module docstring).
        with imports_undone_on_failure():
            from ..codegen.generate import generate
            from ..ir import Connection, build_network
        system = build_network(populations, [Connection(*c[:3], delays=c[3] if len(c) > 3 else None)
                                             for c in connections], name=name,
                               description=description, vector_params=vector_params)
        return generate(system, method, backend, dtype, key, __version__, trainable)

    return cached_module(key, build)
