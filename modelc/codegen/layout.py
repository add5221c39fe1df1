"""What every backend's module says alike: its header text and the layout of the model."""
from __future__ import annotations

from ..ir import MatVec, System
from .step import spike_readers


def population_of(system: System) -> dict[str, str]:
    """{variable: its population's label}."""
    return {name: label for label, names in system.populations.items() for name in names}


def layout(system: System) -> dict:
    """The layout constants of a generated module (STATES, PARAMS, ...)."""
    s = system
    return {
        "states": {n: st.init for n, st in s.states.items()},
        "params": {n: p.default for n, p in s.params.items()},
        "param_shapes": {n: p.shape for n, p in s.params.items()},
        "inputs": {n: i.default for n, i in s.inputs.items()},
        "outputs": s.outputs,
        "populations": {label: [n for n in names if n in s.states or n in s.inputs or
                                n in dict(s.algebraics)] for label, names in s.populations.items()},
        "matrix_populations": matrix_populations(system),
        "spike_readers": spike_readers(system),  # computed variables no record can observe
    }


def matrix_populations(system: System) -> dict[str, tuple[str, str]]:
    """{matrix parameter: (target population, source population)}, for the shape check of run()."""
    owner = population_of(system)
    found = {}
    for name, expr in system.algebraics:
        for matvec in expr.atoms(MatVec):
            weights, source = matvec.args
            sources = [owner[x.name] for x in source.free_symbols if x.name in owner]
            if name in owner and sources:
                found[weights.name] = (owner[name], sources[0])
    return found


def doc(text: str) -> str:
    """Model text (a description, a name) made safe inside the module's docstring: no quote can
    end the string, no backslash can start an escape, no control character reaches the source."""
    return "".join(ch if ch == "\n" or (ch.isprintable() and ch not in '"\\') else
                   "\\" + ch if ch in '"\\' else ch.encode("unicode_escape").decode("ascii")
                   for ch in str(text))


def common_context(system: System, scheme, ident, key: str, version: str, dtype: str) -> dict:
    """The template variables every backend's module shares: header, layout, names."""
    return {
        "system": system,
        "scheme": scheme,
        "key": key,
        "version": version,
        "dtype": dtype,
        "doc": doc,
        "layout": layout(system),
        "states": [(n, ident(n)) for n in system.states],
        "params": [(n, ident(n), p.shape) for n, p in system.params.items()],
        "inputs": [(n, ident(n)) for n in system.inputs],
        "algebraic_outputs": [(n, ident(n)) for n, _ in system.algebraics],
        "population_of": population_of(system),
    }
