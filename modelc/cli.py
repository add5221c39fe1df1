"""The `modelc` command: a thin shell over spec, ir, codegen and the runtime.

Errors in a model print as `file:line:col: error: message`, the source line and a caret,
without a traceback, and the command exits with status 2.
"""
from __future__ import annotations

import argparse
import os
import stat
import sys
from pathlib import Path

from .codegen.options import BACKENDS, DTYPES, METHODS
from .errors import ErrorGroup, ModelcError, OutputFileError
from .runtime.imports import imports_undone_on_failure
from .version import __version__

EXIT_MODEL_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelc", description="Compile YAML models of dynamical systems "
                                     "into fast NumPy/CuPy modules.")
    parser.add_argument("--version", action="version", version=f"modelc {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    compile_ = commands.add_parser("compile", help="write the generated module of a template to a file")
    compile_.add_argument("template", help="dotted path (pkg.file.template) or path/to/file.yaml:template")
    compile_.add_argument("-o", "--output", required=True, type=Path, help="the .py file to write")
    # The choices are checked by the compiler, which names the error and suggests a spelling.
    compile_.add_argument("--backend", default="numpy", help=f"one of {', '.join(BACKENDS)} (default: numpy); "
                          "writing a module needs no CuPy or numba, only running it does")
    compile_.add_argument("--method", default="euler", help=f"integration scheme: {', '.join(METHODS)} "
                          "(default: euler)")
    compile_.add_argument("--dtype", default="float64", help=f"one of {', '.join(DTYPES)} (default: float64)")
    for flag, meaning in (("source-var", "variable coupled out through the weights (op/var)"),
                          ("target-var", "input that receives weights @ source (op/var)"),
                          ("input-var", "input driven from outside (op/var)"),
                          ("output-var", "variable read out (op/var)")):
        compile_.add_argument(f"--{flag}", help=meaning)
    compile_.add_argument("--vector-param", action="append", default=[], metavar="NAME",
                          help="a parameter that may take one value per unit or batch member (repeatable)")

    show = commands.add_parser("show", help="print a template's equations as parsed")
    show.add_argument("template")
    show.add_argument("--latex", action="store_true", help="print LaTeX instead of plain text")

    commands.add_parser("list", help="list the shipped templates with one-line descriptions")

    check = commands.add_parser("check", help="report every error in a model file")
    check.add_argument("file", type=Path)

    sweep = commands.add_parser("sweep", help="run the parameter sweep a sweep file describes into a Zarr store")
    sweep.add_argument("file", type=Path, help="sweep file: model, grid, inputs, outputs, T, dt, method, store "
                       "(see modelc/runtime/distributed/sweep_file.py)")
    sweep.add_argument("--scheduler", help="'processes' (local worker processes) or a Dask scheduler address "
                       "(default: the file's scheduler, else this process)")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")

    docs = commands.add_parser("docs", help="write the model reference page (docs/models.md)")
    docs.add_argument("-o", "--output", type=Path, default=Path("docs/models.md"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args) or 0
    except ModelcError as exc:
        _print(exc.format(), sys.stderr)
        return EXIT_MODEL_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `modelc list | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug in modelc, not in the model: say so, briefly
        if os.environ.get("MODELC_DEBUG"):
            raise
        print(f"modelc: internal error: {type(exc).__name__}: {exc}\n"
              "  (set MODELC_DEBUG=1 for a traceback, and please report it)", file=sys.stderr)
        return 1


def _compile(args) -> None:
    # Late, as the other commands' imports: `modelc --version` loads no YAML, NumPy or SymPy.
    from .runtime.compiler import compile_source
    coupling = {k: getattr(args, k) for k in ("source_var", "target_var", "input_var", "output_var")}
    source = compile_source(args.template, method=args.method, backend=args.backend, dtype=args.dtype,
                            coupling=coupling if any(coupling.values()) else None,
                            vector_params=args.vector_param)
    _write(args.output, source)
    print(f"wrote {args.output} ({args.method}, {args.backend}, {args.dtype})")


def _write(path: Path, text: str) -> None:
    """Write a whole file or nothing (a temporary file renamed into place); errors are clean.

    Only a regular file is ever replaced: a device (/dev/null), a FIFO, a folder or a symbolic
    link at `path` is refused, never replaced nor written through."""
    from .runtime.cache import ordinary_file_mode, write_atomic  # (late: see _compile)
    _check_replaceable(path)
    try:
        write_atomic(path, text, ordinary_file_mode())  # not a private temporary file's mode
    except OSError as exc:
        folder = next((p for p in path.parents if p.exists()), None)
        reason = f"{folder} is not a folder" if folder is not None and not folder.is_dir() else exc.strerror or exc
        raise OutputFileError(f"cannot write {path}: {reason}", None,
                              "nothing was written; check the folder exists, is writable and has space") from None


def _check_replaceable(path: Path) -> None:
    """Nothing, or something that -o may replace: a regular file (not a link to one)."""
    try:
        info = path.lstat()
    except OSError:  # nothing there yet, or a folder on the way is missing: the write itself says
        return
    if stat.S_ISREG(info.st_mode):
        return
    if stat.S_ISLNK(info.st_mode):
        raise OutputFileError(f"cannot write {path}: it is a symbolic link (to {os.readlink(path)})", None,
                              "nothing was written; name the file itself, or remove the link")
    kind = next((name for is_kind, name in _NOT_REGULAR if is_kind(info.st_mode)), "something else")
    raise OutputFileError(f"cannot write {path}: it is {kind}, not a regular file", None,
                          "nothing was written; -o writes a regular file: give the path of a new or existing file")


_NOT_REGULAR = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"),
                (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))


def _show(args) -> None:
    from .spec import load  # (late: see _compile)
    # Late, here and below: only the commands that parse equations load SymPy and lark.
    with imports_undone_on_failure():
        import sympy
        from .ir import build_system
    system = build_system(load(args.template))
    _print(f"# {system.name}")
    for prefix, eq in system.equations:
        lhs = sympy.Symbol(eq.target)
        if args.latex:
            left = rf"\frac{{d {sympy.latex(lhs)}}}{{dt}}" if eq.kind == "ode" else sympy.latex(lhs)
            _print(f"{prefix}: {left} = {sympy.latex(eq.rhs)}")
        else:
            left = f"d/dt {eq.target}" if eq.kind == "ode" else eq.target
            _print(f"{prefix}: {left} = {eq.rhs}")


def _list(args) -> None:
    """Every template in MODELC_PATH and the shipped models; a file or template that cannot be
    read is noted on stderr (the rest is still listed)."""
    from .spec import Library, summary  # (late: see _compile)
    found = Library().scan()
    for dotted, template in found.templates:
        _print(f"{dotted:60s} {summary(template)}")
    for error in found.skipped:
        _print(f"note: skipped: {error.format()}", sys.stderr)


def _check(args) -> int:
    from .spec import CircuitTemplate, Library, NodeTemplate, OperatorTemplate  # (late: see _compile)
    with imports_undone_on_failure():
        from .ir import build_system
    library = Library()
    errors: list[ModelcError] = []
    data = library.load_file(args.file)  # a YAML error stops here: nothing else can be read
    for name in data:
        try:
            template = library.get(f"{args.file.resolve()}:{name}")
            if isinstance(template, (NodeTemplate, OperatorTemplate, CircuitTemplate)):
                build_system(template)
        except ErrorGroup as group:
            errors += group.errors
        except ModelcError as exc:
            errors.append(exc)
    unique = list({e.format(): e for e in errors}.values())
    for error in unique:
        _print(error.format(), sys.stderr)
    if unique:
        print(f"{args.file}: {len(unique)} error{'s' if len(unique) > 1 else ''}", file=sys.stderr)
        return EXIT_MODEL_ERROR
    print(f"{args.file}: ok ({len(data)} templates)")
    return 0


def _sweep(args) -> None:
    """Run a sweep file's grid into its store; an interrupted sweep resumes when run again."""
    from .runtime.distributed.sweep_file import located, read_sweep_file  # (late: see _compile)
    from .runtime.simulate import simulate
    options, places = read_sweep_file(args.file)
    if args.scheduler:
        options["scheduler"] = args.scheduler
    try:
        dataset = simulate(**options, verbose=not args.quiet)
    except ModelcError as exc:  # an unknown path, say: shown where the sweep file names it
        raise located(exc, places) from None
    sizes = ", ".join(f"{dim}: {size}" for dim, size in dataset.sizes.items())
    print(f"wrote {options['store']} ({sizes})")


def _docs(args) -> None:
    from .resources import resource_dir  # (late: see _compile)
    from .spec import Library
    with imports_undone_on_failure():
        from .docs import models_page
    found = Library([resource_dir("models")]).scan()  # the shipped models only, whatever MODELC_PATH says
    if found.skipped:
        raise found.skipped[0]
    _write(args.output, models_page(found.templates))
    print(f"wrote {args.output}")


def _print(text: str, stream=None) -> None:
    """Print text that may come from a model file so that a terminal shows it and does nothing
    else: unprintable characters (an escape sequence, a bell, a lone surrogate) as escapes like
    \\x1b, characters the stream cannot encode as '?'. Line breaks are kept."""
    stream = stream or sys.stdout
    encoding = getattr(stream, "encoding", None) or "utf-8"
    shown = "\n".join("".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in line)
                       for line in text.split("\n"))
    print(shown.encode(encoding, "replace").decode(encoding), file=stream)


COMMANDS = {"compile": _compile, "show": _show, "list": _list, "check": _check, "sweep": _sweep, "docs": _docs}

if __name__ == "__main__":
    sys.exit(main())
