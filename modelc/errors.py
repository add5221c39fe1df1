"""Every error modelc raises: a stable code, a message, and where in a model file it points.

The first stage of the pipeline; everything else imports it. An error formats as

    path/model.yaml:12:25: error: unknown function 'tanhh' [MC102]
        r = tanhh(v)
            ^^^^^
      hint: did you mean 'tanh'?
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable, Sequence


@dataclass(frozen=True)
class Location:
    """A place in a source file (1-based line and column) and the text of its line."""

    file: str | None
    line: int
    column: int
    source_line: str | None = None
    length: int = 1

    def __str__(self) -> str:
        return f"{self.file or '<string>'}:{self.line}:{self.column}"


class TextOrigin:
    """Where each character of a piece of text (an equation) sits in its file.

    The YAML loader knows the line and column of every character of a scalar; the
    equation parser only knows offsets into the string. This maps one to the other.
    """

    def __init__(self, file: str | None, positions: Sequence[tuple[int, int]],
                 file_lines: Sequence[str] | None = None):
        self.file = file
        self.positions = list(positions)
        self.file_lines = file_lines

    @classmethod
    def for_string(cls, text: str, file: str | None = None, line: int = 1, column: int = 1,
                   file_lines: Sequence[str] | None = None) -> "TextOrigin":
        """Text that sits on one line of a file (or stands alone) starting at line:column."""
        lines = file_lines if file_lines is not None else [text]
        return cls(file, [(line, column + i) for i in range(len(text))], lines)

    def at(self, offset: int, length: int = 1) -> Location:
        if not self.positions:
            line, column = 1, 1
        elif offset < len(self.positions):
            line, column = self.positions[max(offset, 0)]
        else:  # one past the end: the column after the last character
            line, column = self.positions[-1]
            column += offset - len(self.positions) + 1
        source = None
        if self.file_lines is not None and 0 < line <= len(self.file_lines):
            source = self.file_lines[line - 1]
        return Location(self.file, line, column, source, max(length, 1))


class ModelcError(Exception):
    """Base of every error modelc raises on purpose."""

    code = "MC000"
    title = "modelc error"

    def __init__(self, message: str, location: Location | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    def format(self) -> str:
        """The error as the command line prints it. Text from a model file reaches a terminal
        only printable: a control character in it could be an escape sequence."""
        where = f"{self.location}: " if self.location else ""
        lines = [f"{where}error: {_printable(self.message)} [{self.code}]"]
        loc = self.location
        if loc is not None and loc.source_line is not None:
            source = loc.source_line.rstrip("\n").expandtabs(1)
            lines.append("    " + "".join(c if c.isprintable() else "\ufffd" for c in source))  # the caret still fits
            width = max(1, min(loc.length, len(source) - loc.column + 1))
            lines.append("    " + " " * (loc.column - 1) + "^" * width)
        if self.hint:
            lines.append(f"  hint: {_printable(self.hint)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


class ErrorGroup(ModelcError):
    """Several independent errors found in one pass (``modelc check`` reports them all)."""

    code = "MC001"
    title = "several errors"

    def __init__(self, errors: Iterable[ModelcError]):
        self.errors = list(errors)
        super().__init__(f"{len(self.errors)} errors", None, None)

    def format(self) -> str:
        return "\n".join([e.format() for e in self.errors] + [f"error: {self.message} [{self.code}]"])


# --- model files: YAML and template structure (MC1xx) --------------------------------

class YamlSyntaxError(ModelcError):
    code, title = "MC100", "YAML syntax error"


class TemplateFormatError(ModelcError):
    code, title = "MC110", "malformed template"


class UnknownTemplateError(ModelcError):
    code, title = "MC108", "unknown template"


class InvalidNameError(ModelcError):
    code, title = "MC111", "invalid name"


class InheritanceCycleError(ModelcError):
    code, title = "MC112", "inheritance cycle"


class ModelFileError(ModelcError):
    code, title = "MC114", "unreadable model file"


class WiringError(ModelcError):
    code, title = "MC113", "bad wiring"


class EditTargetError(ModelcError):
    code, title = "MC115", "edit finds nothing to change"


# --- equations (MC10x) -----------------------------------------------------------------

class EquationSyntaxError(ModelcError):
    code, title = "MC101", "equation syntax error"


class UnknownFunctionError(ModelcError):
    code, title = "MC102", "unknown function"


class UndefinedSymbolError(ModelcError):
    code, title = "MC103", "undefined symbol"


class DuplicateDefinitionError(ModelcError):
    code, title = "MC104", "duplicate definition"


class AlgebraicCycleError(ModelcError):
    code, title = "MC105", "algebraic cycle"


class NotAStateError(ModelcError):
    code, title = "MC106", "derivative of a non-state"


class HigherOrderDerivativeError(ModelcError):
    code, title = "MC107", "higher-order derivative"


class ArityError(ModelcError):
    code, title = "MC109", "wrong number of arguments"


# --- events: threshold, reset, emitted spikes (MC13x) ----------------------------------

class EventFormatError(ModelcError):
    code, title = "MC130", "malformed event"


class EventError(ModelcError):
    code, title = "MC131", "bad event"


# --- white noise: xi in differential equations (MC14x) --------------------------------

class NoiseTermError(ModelcError):
    code, title = "MC140", "noise not linear in xi"


class NoisePlacementError(ModelcError):
    code, title = "MC141", "noise outside a differential equation"


class NoiseMethodError(ModelcError):
    code, title = "MC142", "method cannot integrate noise"


# --- delays: past(x, tau), x(t - tau), edge delay and spread (MC145-MC149) --------------

class DelayError(ModelcError):
    code, title = "MC145", "bad delay"

# --- code generation (MC3xx) -----------------------------------------------------------

class UnsupportedFeatureError(ModelcError):
    code, title = "MC301", "not supported by this backend"


class UnknownMethodError(ModelcError):
    code, title = "MC302", "unknown integration method"


# --- runtime and API (MC2xx) -----------------------------------------------------------

class ShapeError(ModelcError, ValueError):
    code, title = "MC201", "wrong shape"


class InvalidValueError(ModelcError, ValueError):
    code, title = "MC202", "invalid value"


class NonFiniteError(ModelcError, FloatingPointError):
    code, title = "MC203", "non-finite value during a run"


class BackendUnavailableError(ModelcError, RuntimeError):
    code, title = "MC204", "backend unavailable"


class UnknownVariableError(ModelcError, KeyError):
    code, title = "MC205", "unknown variable"

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return self.format()


class CacheError(ModelcError, OSError):
    code, title = "MC206", "cache problem"


class OutputFileError(ModelcError, OSError):
    code, title = "MC207", "cannot write the output file"


class NetworkBusyError(ModelcError, RuntimeError):
    code, title = "MC208", "network busy"


class SweepFileError(ModelcError):
    code, title = "MC209", "invalid sweep file"


class SweepStoreError(ModelcError, OSError):
    code, title = "MC210", "sweep store does not fit"


class ExtraUnavailableError(ModelcError, ImportError):
    code, title = "MC211", "optional extra not installed"


class SpikeOptionError(ModelcError, ValueError):
    code, title = "MC220", "bad spiking option"


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A 'did you mean ...?' hint naming the closest candidates, or None."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=3, cutoff=0.6)
    if not close:
        return None
    return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
