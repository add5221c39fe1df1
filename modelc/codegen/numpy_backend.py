"""NumPy backend: a Plan -> the lines of a readable generated module (templates/numpy/)."""
from __future__ import annotations

import builtins
import collections
import functools
import json
import keyword
import re

import numpy as np
import sympy

from ..equations import TIME, Exprel
from ..ir import MatVec, System
from .plan import DT, Plan
from ..resources import resource_dir
from .printers import NUMPY_HELPERS, SCALAR_HELPERS, NumPyPrinter, ScalarPrinter

# Names the generated module uses itself; user variables never take them.
_RESERVED = {
    "np", "dt", "steps", "params", "inputs", "y0", "y", "record", "sampling_steps", "t0", "t", "i",
    "start", "stop", "row", "countdown", "rows", "chunk_steps", "on_chunk", "on_nan", "shapes", "rec",
    "final", "computed", "recorded_algebraics", "name", "value", "DTYPE", "SCHEME", "KEY", "run", "rhs",
    "algebraics", "initial_state", "default_params", "STATES", "PARAMS", "PARAM_SHAPES", "INPUTS",
    "OUTPUTS", "POPULATIONS",
}


_MAX_STAGES = 16


def _derived(ident: str) -> set[str]:
    """The names the templates build from an identifier: stage values, derivatives, buffers."""
    names = {f"drive_{ident}", f"inc_{ident}", f"rec_{ident}", f"{ident}_w", f"w_{ident}", f"s_{ident}",
             f"{ident}_source", f"{ident}_buf", f"{ident}_out", f"{ident}_next", f"product_{ident}"}
    for k in range(1, _MAX_STAGES + 1):
        names.update((f"d{ident}_{k}", f"{ident}_{k}"))
    return names


_STRINGS_AND_COMMENTS = re.compile(r"""(?:[rRbBfFuU]{1,2}(?=["']))?(?:(\"\"\"|\'\'\').*?\1|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')|#[^\n]*""",
                                   re.S)
_IDENTIFIER = re.compile(r"(?<![\w.])[A-Za-z_][A-Za-z0-9_]*")  # not attributes, not the e of 1e-6
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)


@functools.lru_cache(maxsize=1)
def template_names() -> frozenset[str]:
    """Names a model variable's identifier must not take: the generated module's globals and every
    name used inside a function that also holds model variables (one whose template text has Jinja
    in it: run, rhs, algebraics, ...). Helpers without Jinja keep their locals to themselves."""
    texts = [p.read_text(encoding="utf-8") for p in sorted(resource_dir("templates").rglob("*.py.j2"))]
    texts += list(NUMPY_HELPERS.values()) + list(SCALAR_HELPERS.values())  # (Python only: kernels have their own)
    names: set[str] = set()
    for text in texts:
        text = _JINJA.sub(" \x01 ", text)  # \x01 marks where model identifiers may appear
        text = _STRINGS_AND_COMMENTS.sub(lambda m: re.sub(r"[^\n\x01]", " ", m.group(0)), text)
        chunks: list[list[str]] = [[]]  # top-level statements with the indented lines after them
        for line in text.split("\n"):
            if line[:1].strip():
                chunks.append([])
            chunks[-1].append(line)
        for chunk in filter(None, chunks):
            defined = re.match(r"(?:def|class)\s+(\w+)", chunk[0])
            if defined and not any("\x01" in line and line.replace("\x01", "").strip() for line in chunk):
                names.add(defined.group(1))  # a helper: only its name is global
            else:
                names.update(n for line in chunk for n in _IDENTIFIER.findall(line))
    return frozenset(names)


class Namer:
    """Readable, unique Python identifiers for model variables and generated temporaries.

    No identifier equals a name the templates use themselves, a keyword or builtin, or a name
    the templates derive from another identifier (x_2, dx_1, drive_x, ...): a clash gets '_'s.
    """

    def __init__(self, qualified_names):
        self.taken = set(_RESERVED) | template_names() | _derived("t")
        self.names: dict[str, str] = {}
        qualified = list(qualified_names)

        @functools.cache
        def tails(k: int) -> collections.Counter:  # how many names end in each k-part tail
            return collections.Counter("_".join(n.split("/")[-k:]) for n in qualified)
        for name in qualified:
            self.names[name] = self.fresh(self._readable(name, tails))

    @staticmethod
    def _readable(name: str, tails) -> str:
        """The shortest tail of the path (var, op_var, node_op_var) that no other name ends in."""
        parts = name.split("/")
        for k in range(1, len(parts) + 1):
            candidate = "_".join(parts[-k:])
            if tails(k)[candidate] == 1:
                return candidate
        return "_".join(parts)

    def fresh(self, base: str) -> str:
        base = base if base.isidentifier() else "v_" + "".join(ch if ch.isalnum() else "_" for ch in base)
        candidate = base
        while (candidate in self.taken or keyword.iskeyword(candidate) or hasattr(builtins, candidate)
               or not self.taken.isdisjoint(_derived(candidate))):
            candidate += "_"
        self.taken.add(candidate)
        self.taken.update(_derived(candidate))
        return candidate


class NumPyModule:
    """Everything the module template needs, computed from a Plan."""

    printer_class = NumPyPrinter
    helper_texts = NUMPY_HELPERS
    full_invariants = True  # array invariants expanded to their population's shape (arrays, not floats)

    def __init__(self, plan: Plan):
        self.plan = plan
        system = plan.system
        self.system = system
        extra = [n for n, _ in plan.hoisted] + [c.name for c in plan.couplings] + \
            [n for n, _ in plan.algebraics if n not in system.outputs]
        # Generated names first: the templates use some of them as they are (acc_0, w_acc_0).
        self.namer = Namer(extra + list(system.states) + list(system.params) + list(system.inputs) +
                           [n for n, _ in system.algebraics])
        self.names = dict(self.namer.names)
        self.names[TIME.name] = "t"
        self.names[DT.name] = "dt"
        self.printer = self.printer_class(self.names)
        self.population_of = {name: label for label, names in system.populations.items() for name in names}
        self.out_buffers: set[str] = set()  # filled while the step is rendered; None before the loop

    # -- helpers ------------------------------------------------------------------------

    def code(self, expr: sympy.Expr, names: dict[str, str] | None = None) -> str:
        if names is None:
            return self.printer.doprint(expr)
        return self.printer_class({**self.names, **names}).doprint(expr)

    def ident(self, name: str) -> str:
        return self.names[name]

    @staticmethod
    def doc(text: str) -> str:
        """Model text (a description, a name) made safe inside the module's docstring: no quote can
        end the string, no backslash can start an escape, no control character reaches the source."""
        return "".join(ch if ch == "\n" or (ch.isprintable() and ch not in '"\\') else
                       "\\" + ch if ch in '"\\' else ch.encode("unicode_escape").decode("ascii")
                       for ch in str(text))

    def helpers(self) -> list[str]:
        used = set()
        exprs = [e for _, e in self.system.algebraics] + list(self.system.derivatives.values())
        for expr in exprs:
            used |= {type(f) for f in expr.atoms(sympy.Function)}
        return [text for func, text in self.helper_texts.items() if func in used]

    # -- layout -------------------------------------------------------------------------

    def layout(self) -> dict:
        s = self.system
        return {
            "states": {n: st.init for n, st in s.states.items()},
            "params": {n: p.default for n, p in s.params.items()},
            "param_shapes": {n: p.shape for n, p in s.params.items()},
            "inputs": {n: i.default for n, i in s.inputs.items()},
            "outputs": s.outputs,
            "populations": {label: [n for n in names if n in s.states or n in s.inputs or
                                    n in dict(s.algebraics)] for label, names in s.populations.items()},
            "matrix_populations": self.matrix_populations(),
        }

    def matrix_populations(self) -> dict[str, tuple[str, str]]:
        """{matrix parameter: (target population, source population)}, for the shape check of run()."""
        found = {}
        for name, expr in self.system.algebraics:
            for matvec in expr.atoms(MatVec):
                weights, source = matvec.args
                sources = [self.population_of[x.name] for x in source.free_symbols if x.name in self.population_of]
                if name in self.population_of and sources:
                    found[weights.name] = (self.population_of[name], sources[0])
        return found

    # -- rhs and algebraics (plain, unoptimised: for solvers and records) --------------

    def algebraic_lines(self) -> list[str]:
        return [f"{self.ident(n)} = {self.code(e)}" for n, e in self.system.algebraics]

    def derivative_lines(self) -> list[tuple[str, str]]:
        return [(n, self.code(e)) for n, e in self.system.derivatives.items()]

    # -- run: once, per chunk, per step -------------------------------------------------

    def hoisted_lines(self) -> list[str]:
        """Loop invariants; one made of a single population's parameters is given that
        population's whole shape (_full), so the steps never broadcast it."""
        lines = []
        for name, expr in self.plan.hoisted:
            code = self.code(expr)
            populations = {self.population_of[s.name] for s in expr.free_symbols if s.name in self.population_of}
            if self.full_invariants and len(populations) == 1:
                code = f"_full({code}, shapes[{json.dumps(populations.pop())}])"
            lines.append(f"{self.ident(name)} = {code}")
        return lines

    def weight_lines(self) -> list[str]:
        return [f"product_{c.name} = _product(weights={self.names[c.matrix]}, scale={self.code(c.scale)}, "
                f"unbatched=unbatched)  # x -> ({self.code(c.scale)}) * {self.names[c.matrix]} @ x"
                for c in self.plan.couplings]

    def drive_lines(self) -> list[str]:
        """State-independent terms for all steps of a chunk, as one array expression each."""
        return [f"drive_{x} = _per_step({code}, stop - start, {x}.ndim)" for x, code in self._drives()]

    def _drives(self) -> list[tuple[str, str]]:
        """(state identifier, NumPy expression over the chunk's input windows) for each drive term."""
        window_names = {**self.names, **{n: self.ident(n) + "_w" for n in self.system.inputs}, TIME.name: "t_w"}
        return [(self.ident(s.name), NumPyPrinter(window_names).doprint(s.drive))
                for s in self.plan.states if s.drive != 0]

    def stage_lines(self) -> list[str]:
        """One integration step: stages of the tableau, then the update of every state."""
        scheme, plan = self.plan.scheme, self.plan
        lines: list[str] = []
        step_symbols = plan.step_symbols()
        lines += [f"{self.ident(n)} = {self.ident(n)}_w[i]" for n in self.system.inputs if n in step_symbols]
        if TIME.name in step_symbols or plan.drive_uses_time:
            lines.append("t = t0 + (start + i) * dt")
        for k in range(scheme.stages):
            stage_names = self._stage_names(k)
            if k > 0:
                lines.append(f"# stage {k + 1}")
                lines += self._stage_state_lines(k)
                if TIME.name in step_symbols and scheme.c[k] != 0:
                    stage_names[TIME.name] = f"t_{k + 1}"
                    lines.append(f"t_{k + 1} = t + {float(scheme.c[k])!r} * dt")
            lines += self._evaluation_lines(k, stage_names)
        lines += self._update_lines()
        return lines

    def _assignment(self, target: str, expr: sympy.Expr, names: dict[str, str]) -> str:
        """`target = expr`; a single ufunc call reuses target's memory from the step before (out=)."""
        code = self.code(expr, names)
        if isinstance(expr, sympy.Function) and len(expr.args) == 1 and code.startswith("np.") and \
                isinstance(getattr(np, code[3:code.index("(")], None), np.ufunc):
            self.out_buffers.add(target)
            return f"{target} = {code[:-1]}, out={target})"
        return f"{target} = {code}"

    def _stage_names(self, k: int) -> dict[str, str]:
        if k == 0:
            return {}
        names = {n: f"{self.ident(n)}_{k + 1}" for n in self.system.states}
        names.update({n: f"{self.ident(n)}_{k + 1}" for n, _ in self.plan.algebraics})
        return names

    def _stage_state_lines(self, k: int) -> list[str]:
        """x_k = x + dt * sum_j a_kj dx_j, in place into a buffer kept from the step before."""
        lines = []
        for s in self.plan.states:
            x = self.ident(s.name)
            pairs = [(f"d{x}_{j + 1}", f"{float(a)!r} * dt") for j, a in enumerate(self.plan.scheme.a[k]) if a != 0]
            lines += self._sum_into(f"{x}_{k + 1}", pairs[0], [f"{c} * {d}" for d, c in pairs[1:]] + [x])
        return lines

    def _evaluation_lines(self, k: int, names: dict[str, str]) -> list[str]:
        lines = [self._assignment(names.get(n, self.ident(n)), e, names) for n, e in self.plan.algebraics]
        for c in self.plan.couplings:
            source = self.code(c.source, names)
            lines.append(f"{c.name} = product_{c.name}({source}, out={c.name})")
        if not self.plan.fold_dt:
            for s in self.plan.states:
                lines += self._derivative_lines(s, k, names)
        return lines

    def _derivative_lines(self, s, k: int, names: dict[str, str]) -> list[str]:
        """dx_k = linear*x_k + couplings + rest + drive, in place into a buffer kept from the step before."""
        x, xs = self.ident(s.name), names.get(s.name, self.ident(s.name))
        terms = list(s.couplings) + ([f"({self.code(s.rest, names)})"] if s.rest != 0 else []) + \
            ([f"drive_{x}[i]"] if s.drive != 0 else [])
        # Start from the state itself (times 0 when it has no linear term) unless a coupling does:
        # either has the full (batch..., n) shape, which the stage values built from dx need.
        scaled = (xs, self.code(s.linear, names)) if s.linear != 0 or not s.couplings else None
        return self._sum_into(f"d{x}_{k + 1}", scaled, terms)

    def _update_lines(self) -> list[str]:
        """x_new written into x_out: the record row when this step is recorded (no copy), else x's own buffer."""
        lines = [f"{x}_out = {x}_buf if countdown or rec_{x} is None else rec_{x}[row]"
                 for x in (self.ident(s.name) for s in self.plan.states)]
        if self.plan.fold_dt:
            # x_new = a*x + (dt*c*W) @ y + dt*rest + dt*drive
            for s in self.plan.states:
                if s.rest != 0:
                    lines.append(f"inc_{self.ident(s.name)} = {self.code(s.rest)}")
            for s in self.plan.states:
                x = self.ident(s.name)
                terms = list(s.couplings) + ([f"inc_{x}"] if s.rest != 0 else []) + \
                    ([f"drive_{x}[i]"] if s.drive != 0 else [])
                scaled = (x, self.code(s.linear)) if s.linear != 1 else None
                lines += self._sum_into(f"{x}_out", scaled, ([] if scaled else [x]) + terms) + [f"{x} = {x}_out"]
            return lines
        # x_new = x + sum_j (b_j dt) dx_j: each dx_j scaled in place once no stage needs it any more
        for s in self.plan.states:
            x = self.ident(s.name)
            used = [(f"d{x}_{j + 1}", b) for j, b in enumerate(self.plan.scheme.b) if b != 0]
            lines += [f"{d} *= {float(b)!r} * dt" for d, b in used]
            lines += self._sum_into(f"{x}_out", None, [x] + [d for d, _ in used]) + [f"{x} = {x}_out"]
        return lines

    def _sum_into(self, target: str, scaled: tuple[str, str] | None, terms: list[str]) -> list[str]:
        """target = array*factor + sum(terms), one in-place ufunc per term and no temporary array.

        The target's memory comes from the step before (None on the first step: the ufunc
        allocates it then), or is a record row or state buffer already.
        """
        terms = list(terms)
        if scaled is not None:
            first = f"np.multiply({scaled[0]}, {scaled[1]}, out={target})"
        elif len(terms) >= 2:
            first = f"np.add({terms.pop(0)}, {terms.pop(0)}, out={target})"
        else:
            first = f"np.positive({terms.pop(0)}, out={target})"  # a copy
        if not target.endswith("_out"):
            self.out_buffers.add(target)
        return [f"{target} = {first}"] + [f"{target} += {term}" for term in terms]


class SingleUnitModule(NumPyModule):
    """The same plan for one unit held in Python floats: `math` instead of NumPy, no buffers.

    Used when every population has one unit and there is no batch axis and no weight matrix:
    there NumPy's per-call overhead is the whole cost of a step.
    """

    printer_class = ScalarPrinter
    helper_texts = SCALAR_HELPERS
    full_invariants = False

    @staticmethod
    def applies(system: System) -> bool:
        return not any(p.shape == "matrix" for p in system.params.values())

    def drive_lines(self) -> list[str]:
        """The drive terms of a chunk computed with NumPy once, then read step by step as floats."""
        lines = [f"drive_{x} = np.broadcast_to({code}, (stop - start, 1)).ravel().tolist()"
                 for x, code in self._drives()]
        step_symbols = self.plan.step_symbols()
        return lines + [f"{self.ident(n)}_w = {self.ident(n)}_w.ravel().tolist()"
                        for n in self.system.inputs if n in step_symbols]

    def _sum_into(self, target: str, scaled: tuple[str, str] | None, terms: list[str]) -> list[str]:
        """target = array*factor + sum(terms) as one float expression."""
        return [f"{target} = " + " + ".join(([f"{scaled[1]}*{scaled[0]}"] if scaled else []) + terms)]

    def _update_lines(self) -> list[str]:
        lines = []
        if self.plan.fold_dt:
            for s in self.plan.states:
                x = self.ident(s.name)
                terms = ([] if s.linear == 0 else [f"{self.code(s.linear)}*{x}" if s.linear != 1 else x])
                terms += [f"({self.code(s.rest)})"] if s.rest != 0 else []
                terms += [f"drive_{x}[i]"] if s.drive != 0 else []
                lines.append(f"{x}_next = " + (" + ".join(terms) or "0.0"))
            return lines + [f"{x} = {x}_next" for x in (self.ident(s.name) for s in self.plan.states)]
        for s in self.plan.states:
            x = self.ident(s.name)
            terms = [f"{float(b)!r}*dt*d{x}_{j + 1}" for j, b in enumerate(self.plan.scheme.b) if b != 0]
            lines.append(f"{x} = {x} + " + " + ".join(terms))
        return lines


def common_context(m: NumPyModule, key: str, version: str, dtype: str) -> dict:
    """The template variables every backend's module shares: header, layout, names."""
    system = m.system
    return {
        "m": m,
        "system": system,
        "scheme": m.plan.scheme,
        "key": key,
        "version": version,
        "dtype": dtype,
        "layout": m.layout(),
        "states": [(n, m.ident(n)) for n in system.states],
        "params": [(n, m.ident(n), p.shape) for n, p in system.params.items()],
        "inputs": [(n, m.ident(n)) for n in system.inputs],
        "algebraic_outputs": [(n, m.ident(n)) for n, _ in system.algebraics],
        "population_of": m.population_of,
    }


def module_context(system: System, plan: Plan, key: str, version: str, dtype: str) -> dict:
    """The variables of templates/numpy/module.py.j2."""
    single = SingleUnitModule(plan) if SingleUnitModule.applies(system) else None
    return {**common_context(NumPyModule(plan), key, version, dtype), "single": single}
