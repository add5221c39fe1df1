"""The error catalogue (tests/error_cases.py): every bad input gets its code, its exact message,
its hint and, where it points into a file or an equation, the right line and column.

Also: every error code modelc defines has a case (or a reason in UNCOVERED), codes are unique,
and docs/errors.md is what docs/make_errors.py renders from the cases today.
"""
from __future__ import annotations

import importlib.util
import inspect
import os
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from modelc import ModelcError, compile_model, errors
from modelc.cli import main
from modelc.equations import parse_equation

from error_cases import CASES, COUPLING, SEED, UNCOVERED, Case, Special

ROOT = Path(__file__).resolve().parent.parent


def _codes() -> dict[str, type]:
    """Every error class of modelc.errors by its code."""
    found = {}
    for cls in vars(errors).values():
        if inspect.isclass(cls) and issubclass(cls, ModelcError):
            assert cls.code not in found, f"{cls.__name__} and {found[cls.code].__name__} share {cls.code}"
            found[cls.code] = cls
    return found


@pytest.fixture(scope="module")
def seed_module():
    return compile_model(SEED, coupling=COUPLING)


def _raised(case: Case, folder: Path, seed_module) -> ModelcError:
    if case.kind == "equation":
        with pytest.raises(ModelcError) as info:
            parse_equation(case.source)
    elif case.kind == "file":
        path = folder / "model.yaml"
        path.write_text(case.source, encoding="utf-8")
        _write_beside(folder, case.beside)
        with pytest.raises(ModelcError) as info:
            compile_model(f"{path}:{case.template}")
    elif case.kind == "api":
        with pytest.raises(ModelcError) as info:
            case.call(seed_module, np, compile_model)
    else:
        raise AssertionError(f"unknown kind {case.kind}")
    return info.value


def _write_beside(folder: Path, files) -> None:
    for name, content in files:
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content == Special("named pipe"):
            os.mkfifo(path)
        elif content == Special("folder"):
            path.mkdir()
        else:
            path.symlink_to(content.target)


def _hint_matches(expected: str | None, actual: str | None) -> bool:
    """The exact hint, where '…' stands for any text (a search path, say); None: no hint at all."""
    if expected is None or actual is None:
        return expected is actual
    return re.fullmatch(".*".join(map(re.escape, expected.split("…"))), actual, re.S) is not None


def _expected(text: str | None, folder: Path) -> str | None:
    return None if text is None else text.replace("{dir}", str(folder))


@pytest.mark.parametrize("case", [c for c in CASES if c.kind != "cli"], ids=lambda c: f"{c.code}-{c.name}")
def test_error_case(case: Case, tmp_path, seed_module):
    folder = tmp_path.resolve()
    error = _raised(case, folder, seed_module)
    assert isinstance(error, _codes()[case.code]), f"{type(error).__name__} is not {case.code}"
    assert error.code == case.code
    assert error.message == _expected(case.message, folder)
    assert _hint_matches(_expected(case.hint, folder), error.hint), error.hint
    text = error.format()
    assert f"error: {error.message} [{case.code}]" in text
    assert "Traceback" not in text
    location = error.location
    if case.line is None:
        assert location is None, f"{case.name} was expected without a location, got {location}"
        return
    assert location is not None, f"{case.name} has no location"
    assert (location.line, location.column) == (case.line, case.column)
    if case.kind == "file":
        assert Path(location.file).name == "model.yaml"
        assert location.source_line == case.source.split("\n")[case.line - 1]
    else:
        assert location.file is None and location.source_line == case.source
    # the caret sits under the column in the formatted error
    lines = text.splitlines()
    assert lines[0].startswith(f"{location}: error: ")
    caret = lines[2]
    assert caret.startswith(" " * (4 + case.column - 1) + "^"), text


@pytest.mark.parametrize("case", [c for c in CASES if c.kind == "cli"], ids=lambda c: f"{c.code}-{c.name}")
def test_cli_error_case(case: Case, tmp_path, capsys):
    folder = tmp_path.resolve()
    model = folder / "model.yaml"
    if isinstance(case.file_source, bytes):
        model.write_bytes(case.file_source)
    elif case.file_source is not None:
        model.write_text(case.file_source, encoding="utf-8")
    argv = shlex.split(case.source.format(model=model, dir=folder))
    assert main(argv) == 2
    err = capsys.readouterr().err
    where = f"{model}:{case.line}:{case.column}: " if case.line is not None else ""
    assert f"{where}error: {_expected(case.message, folder)} [{case.code}]" in err, err
    if case.hint:
        hints = [line.strip()[len("hint: "):] for line in err.splitlines() if line.strip().startswith("hint: ")]
        assert any(_hint_matches(_expected(case.hint, folder), hint) for hint in hints), err
    assert "Traceback" not in err
    assert not list(folder.glob("**/.*.tmp")), "a temporary file was left behind"
    assert not (folder / "out.py").exists()


def test_catalogue_is_big_and_names_are_unique():
    names = [c.name for c in CASES]
    assert len(set(names)) == len(names)
    assert len(CASES) >= 40
    inputs = {(c.kind, c.source, c.template, c.file_source, c.beside) for c in CASES}
    assert len(inputs) == len(CASES), "two cases share one input"


def test_every_error_code_has_a_case_or_a_reason():
    codes = _codes()
    covered = {c.code for c in CASES}
    assert covered <= set(codes), f"cases name unknown codes: {covered - set(codes)}"
    missing = set(codes) - covered - set(UNCOVERED)
    assert not missing, f"error codes without a case in tests/error_cases.py: {sorted(missing)}"
    assert not covered & set(UNCOVERED), "a code in UNCOVERED has a case now: remove it from UNCOVERED"


def test_check_reports_every_error_of_a_file_at_once(tmp_path, capsys):
    model = tmp_path / "model.yaml"
    model.write_text("a:\n  base: OperatorTemplate\n  equations: [\"x' = tanhh(x)\", \"y = x +\"]\n"
                     "  variables: {x: output(0.0), y: output(0.0)}\n"
                     "b:\n  base: OperatorTemplate\n  equations: \"z' = -z/tua\"\n"
                     "  variables: {z: output(0.0), tau: 1.0}\n")
    assert main(["check", str(model)]) == 2
    err = capsys.readouterr().err
    assert f"{model}:3:21: error: unknown function 'tanhh' [MC102]" in err
    assert f"{model}:3:40: error: equation ends too early [MC101]" in err
    assert f"{model}:7:23: error: undefined symbol 'tua' in operator 'b' [MC103]" in err
    assert err.rstrip().endswith("3 errors")


def _make_errors():
    spec = importlib.util.spec_from_file_location("make_errors", ROOT / "docs" / "make_errors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_errors_md_is_up_to_date():
    page = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    assert page == _make_errors().render(), "docs/errors.md is stale: run python docs/make_errors.py"


def test_docs_list_every_code():
    page = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    for code, cls in _codes().items():
        assert f"## {code}" in page, f"{code} ({cls.__name__}) is missing from docs/errors.md"


# --- runtime guards beyond the catalogue ------------------------------------------------------

def _blow_up(seed_module, **kwargs):
    y0 = {"li_op/v": np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1e300, 0.0]])}  # a batch of 2
    with np.errstate(over="ignore", invalid="ignore"):
        return seed_module.run(y0, {"weights": np.zeros((4, 4)), "li_op/tau": -1.0}, {}, dt=999.0, steps=10, **kwargs)


@pytest.mark.parametrize("kwargs, where", [
    ({}, "in step 2 (t = 2997)"),
    ({"sampling_steps": 2}, "during steps 2..3"),
    ({"record": []}, "during steps 0..9"),
    ({"chunk_steps": 1, "record": []}, "in step 2 (t = 2997)"),
])
def test_a_blow_up_names_variable_unit_batch_and_step(seed_module, kwargs, where):
    with pytest.raises(errors.NonFiniteError) as info:
        _blow_up(seed_module, **kwargs)
    assert info.value.message == f"state 'li_op/v' became inf at unit 2 (batch index (1,)) {where}"
    assert isinstance(info.value, FloatingPointError)


def test_on_nan_warn_and_ignore(seed_module):
    with pytest.warns(RuntimeWarning, match=r"state 'li_op/v' became inf at unit 2 \(batch index \(1,\)\) in step 2"):
        result = _blow_up(seed_module, on_nan="warn")
    assert not np.isfinite(result["final"]["li_op/v"][1, 2])
    result = _blow_up(seed_module, on_nan="ignore")
    assert not np.isfinite(result["final"]["li_op/v"][1, 2])


def test_on_nan_warn_warns_once_per_run(seed_module):
    with pytest.warns(RuntimeWarning) as caught:
        _blow_up(seed_module, on_nan="warn", chunk_steps=1)  # non-finite from step 2 in 8 more chunks
    assert len(caught) == 1 and "in step 2" in str(caught[0].message)


def test_ignore_also_lets_non_finite_inputs_through(seed_module):
    drive = np.ones((10, 4))
    drive[3, 0] = np.nan
    with np.errstate(invalid="ignore"):
        result = seed_module.run(seed_module.initial_state(4), {"weights": np.zeros((4, 4))}, {"li_op/I_ext": drive},
                                 dt=1e-3, steps=10, on_nan="ignore")
    assert np.isfinite(result["li_op/v"][:3]).all() and np.isnan(result["li_op/v"][3:, 0]).all()


STANDALONE = """
import importlib.util, sys
for blocked in ("modelc", "sympy", "lark"):
    sys.modules[blocked] = None  # importing them now fails
spec = importlib.util.spec_from_file_location("tanh_net", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
try:
    module.run({}, {"weights": [[0.0]]}, {}, dt=0, steps=10)
except ValueError as error:
    print(type(error).__name__, error.code, error.message, isinstance(error, module.ModelError))
try:
    module.run({}, {"weights": [[0.0]], "tua": 1.0}, {}, dt=1e-3, steps=10)
except KeyError as error:
    print(type(error).__name__, error.code, error.hint)
"""


def test_a_written_module_raises_look_alike_errors_without_modelc(tmp_path):
    import subprocess
    import sys
    target = tmp_path / "tanh_net.py"
    assert main(["compile", SEED, "-o", str(target), "--source-var", "tanh_op/r", "--target-var", "li_op/r_in"]) == 0
    done = subprocess.run([sys.executable, "-c", STANDALONE, str(target)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["InvalidValueError MC202 dt must be a positive number, got 0 True",
                                        "UnknownVariableError MC205 did you mean 'li_op/tau' or 'li_op/eta'?"]
