"""Sweep files for `modelc sweep`: a YAML mapping that names a model, a grid of its parameters,
the run and the store; read with marks, so every mistake is located (SweepFileError, MC209).

    model: model_templates.neural_mass_models.qif.qif   # as simulate() takes it
    grid:                                # path: [values] or {start, stop, num} (evenly spaced)
      qif_op/eta: {start: -6, stop: -3, num: 31}
      qif_op/J: [10, 15, 20]
    inputs: {qif_op/I_ext: 0.5}          # constant inputs (optional)
    outputs: {r: qif_op/r}               # name: path, or a list of paths (optional: every state)
    T: 50.0
    dt: 1.0e-3
    method: euler                        # optional
    sampling_step_size: 0.1              # optional
    store: sweep.zarr                    # relative to the sweep file's folder
    reduce: mean                         # optional: mean, max, final, peak_frequency
    chunk_size: 256                      # optional
    scheduler: processes                 # optional: processes or a scheduler address
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import Location, ModelcError, SweepFileError, TemplateFormatError, did_you_mean
from ...spec.library import read_model_file
from ...spec.marked_yaml import MarkedDict, excerpt, load_yaml
from ...spec.validation import parse_value
from .reductions import NAMED

REQUIRED = ("model", "grid", "T", "dt", "store")
OPTIONAL = ("inputs", "outputs", "method", "sampling_step_size", "reduce", "chunk_size", "scheduler")
MAX_GRID = 10 ** 9  # sets in one sweep file


def read_sweep_file(path: Path) -> tuple[dict[str, Any], dict[str, Location]]:
    """The keyword arguments of simulate(**...) for the sweep a file describes (store resolved
    against the file's folder), and where each name it gives stands in the file (see located)."""
    try:
        data = load_yaml(read_model_file(path), str(path))
    except TemplateFormatError as exc:  # not a mapping
        raise SweepFileError("a sweep file must be a mapping of keys (model, grid, T, dt, store, ...)",
                             exc.location) from None
    except ModelcError as exc:  # YAML syntax, not UTF-8, not a regular file: located already
        raise SweepFileError(exc.message, exc.location, exc.hint) from None
    for key in data:
        if key not in REQUIRED + OPTIONAL:
            raise SweepFileError(f"unknown key '{key}' in a sweep file", data.where(key),
                                 did_you_mean(str(key), REQUIRED + OPTIONAL) or
                                 f"keys: {', '.join(REQUIRED + OPTIONAL)}")
    for key in REQUIRED:
        if key not in data:
            raise SweepFileError(f"a sweep file needs '{key}'", data.location, f"required keys: {', '.join(REQUIRED)}")
    options = {"template": _text(data, "model"), "grid": _grid(data), "T": _positive(data, "T"),
               "dt": _positive(data, "dt"), "store": Path(path).parent / _text(data, "store")}
    if "inputs" in data:
        inputs = _mapping(data, "inputs")
        options["inputs"] = {str(name): _number(inputs[name], inputs.where_value(name), f"input '{name}'")
                             for name in inputs}
    if "outputs" in data:
        options["outputs"] = _outputs(data)
    for key in ("method", "scheduler"):
        if key in data:
            options[key] = _text(data, key)
    if "sampling_step_size" in data:
        options["sampling_step_size"] = _positive(data, "sampling_step_size")
    if "reduce" in data:
        options["reduce"] = _choice(data, "reduce", tuple(NAMED))
    if "chunk_size" in data:
        options["chunk_size"] = _whole(data, "chunk_size")
    return options, _places(data)


def _places(data: MarkedDict) -> dict[str, Location]:
    """{text: where it stands} of the model, the grid's and inputs' paths and the outputs' paths."""
    model = str(data["model"])  # the dotted path, and its template (what a lookup error quotes)
    places = {model: data.where_value("model"), re.split(r"[.:]", model)[-1]: data.where_value("model")}
    for key in ("grid", "inputs"):
        if isinstance(data.get(key), MarkedDict):
            places.update({str(path): data[key].where(path) for path in data[key]})
    outputs = data.get("outputs")
    if isinstance(outputs, MarkedDict):
        places.update({str(path): outputs.where_value(name) for name, path in outputs.items()})
    elif isinstance(outputs, list):
        places.update({str(path): where for path, where in zip(outputs, outputs.item_locations)})
    return places


def located(error: ModelcError, places: dict[str, Location]) -> ModelcError:
    """An error found while running the sweep (an unknown path, say), pointed at the place in
    the sweep file whose text it quotes when it has no place of its own."""
    if error.location is None:
        error.location = next((where for text, where in places.items() if f"'{text}'" in error.message), None)
    return error


def _text(data: MarkedDict, key: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value.strip():
        raise SweepFileError(f"'{key}' must be text, got {excerpt(value)}", data.where_value(key))
    return str(value)


def _mapping(data: MarkedDict, key: str) -> MarkedDict:
    value = data[key]
    if not isinstance(value, MarkedDict) or not value:
        raise SweepFileError(f"'{key}' must be a mapping of variable paths, got {excerpt(value)}",
                             data.where_value(key), f"{key}: {{qif_op/eta: ...}}")
    return value


def _number(value: Any, location: Location, what: str) -> float:
    """A finite number (YAML's, or text such as 1e-3 that YAML leaves as text)."""
    try:
        kind, number = parse_value(value, location, what)
    except ModelcError:
        kind = None
    if kind != "parameter":
        raise SweepFileError(f"{what} must be a finite number, got {excerpt(value)}", location)
    return number


def _positive(data: MarkedDict, key: str) -> float:
    number = _number(data[key], data.where_value(key), f"'{key}'")
    if number <= 0:
        raise SweepFileError(f"'{key}' must be positive, got {excerpt(data[key])}", data.where_value(key))
    return number


def _whole(data: MarkedDict, key: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SweepFileError(f"'{key}' must be a whole number >= 1, got {excerpt(value)}", data.where_value(key))
    return value


def _choice(data: MarkedDict, key: str, choices: tuple[str, ...]) -> str:
    value = _text(data, key)
    if value not in choices:
        raise SweepFileError(f"unknown {key} '{value}'", data.where_value(key),
                             did_you_mean(value, choices) or f"one of {', '.join(choices)}")
    return value


def _grid(data: MarkedDict) -> dict[str, list[float]]:
    grid = _mapping(data, "grid")
    values = {str(path): _axis(grid, path) for path in grid}
    size = int(np.prod([len(v) for v in values.values()], dtype=object))
    if size > MAX_GRID:
        raise SweepFileError(f"the grid has {size} parameter sets, more than {MAX_GRID}", data.where("grid"))
    return values


def _axis(grid: MarkedDict, path) -> list[float]:
    """One path's values: a list of numbers, or {start, stop, num} evenly spaced (ends included)."""
    value, where = grid[path], grid.where_value(path)
    if isinstance(value, MarkedDict):
        for key in value:
            if key not in ("start", "stop", "num"):
                raise SweepFileError(f"unknown key '{key}' in the range of '{path}'", value.where(key),
                                     "a range is {start: a, stop: b, num: n}")
        if set(value) != {"start", "stop", "num"}:
            raise SweepFileError(f"the range of '{path}' needs start, stop and num", where,
                                 "a range is {start: a, stop: b, num: n}")
        start = _number(value["start"], value.where_value("start"), "start")
        stop = _number(value["stop"], value.where_value("stop"), "stop")
        return list(np.linspace(start, stop, _whole(value, "num")))
    if not isinstance(value, list) or not value:
        raise SweepFileError(f"the values of '{path}' must be a list of numbers or {{start, stop, num}}, "
                             f"got {excerpt(value)}", where)
    return [_number(item, location, f"a value of '{path}'") for item, location in zip(value, value.item_locations)]


def _outputs(data: MarkedDict) -> dict[str, str]:
    value = data["outputs"]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return {str(item): str(item) for item in value}
    if isinstance(value, MarkedDict) and value and all(isinstance(item, str) for item in value.values()):
        return {str(name): str(path) for name, path in value.items()}
    raise SweepFileError(f"'outputs' must map names to variable paths, got {excerpt(value)}",
                         data.where_value("outputs"), "outputs: {r: qif_op/r}, or a list of paths")
