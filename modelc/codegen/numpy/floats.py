"""The step program printed for one unit held in Python floats: `math` instead of NumPy.

Used when every population has one unit and there is no batch axis and no weight matrix:
there NumPy's per-call overhead is the whole cost of a step. No buffers: each value is a float.
"""
from __future__ import annotations

from ..printers import SCALAR_HELPERS, ScalarPrinter
from ..step import Check, Combine, Commit, Emit, Evaluate, Noise, Rate, Record, Reset, Value
from .arrays import NumPyModule


class FloatModule(NumPyModule):
    printer_class = ScalarPrinter
    helper_texts = SCALAR_HELPERS
    full_invariants = False
    step_time = "t0 + (start + i) * dt"  # a Python float (math's errors hand the run over to NumPy)
    counts_units = False  # one unit

    def __init__(self, program):
        super().__init__(program)
        # A state's rest is printed inside its rate (one float expression, no extra variable).
        self.rests = {s.target: s.expr for s in program.statements if isinstance(s, Evaluate) and s.target.role == "rest"}

    def value(self, v: Value) -> str:
        """With several stages the update reads only the state itself and the rates: x_new is
        computed into x. A folded (Euler) update reads every state (the rests are inline)."""
        if v.role == "new":
            return self.derived("*_next", v.name) if self.plan.fold_dt else self.ident(v.name)
        return super().value(v)

    def drive_lines(self) -> list[str]:
        """The drive terms of a chunk computed with NumPy once, then read step by step as floats."""
        lines = [f"{self.derived('drive_*', name)} = _float_drive({code}, stop - start)" for name, code in self._drives()]
        reads = self.program.reads()
        return lines + [f"{self.derived('*_w', n)} = {self.derived('*_w', n)}.ravel().tolist()"
                        for n in self.system.inputs if n in reads]

    def noise_lines(self) -> list[str]:
        """The chunk's increments (and g*dW) computed with NumPy, then read step by step as floats."""
        increments = [self.derived("dW_*", s.name) for s in self.plan.noise]
        return super().noise_lines() + [f"{dw} = {dw}.ravel().tolist()" for dw in increments]

    def noise_shape(self, name: str) -> str:
        return "(1,)"

    def noise_with_drive(self) -> list[str]:
        return []  # (adding floats costs nothing to save)

    def noise(self, s: Noise) -> list[str]:
        if s.coefficient is None:
            return []
        g = self.code(s.coefficient, self.stage_names(s.stage))
        return [f"{self.value(s.target)} = ({g})*{self.derived('dW_*', s.target.name)}[i]"]

    def history_shape(self, source: str) -> str:
        return "(1,)"

    def history_lines(self) -> list[str]:
        """The histories as lists of floats (a read is a float)."""
        return super().history_lines() + [f"{b} = {b}.ravel().tolist()" for b in self.history_buffers()]

    def history_result(self, step: str = "h0 + steps", buffers: list[str] | None = None) -> str:
        """As NumPy's run() keeps them: arrays (length, 1)."""
        return super().history_result(step, [f"np.reshape({b}, (-1, 1))" for b in buffers or self.history_buffers()])

    def history_snapshot(self) -> list[str]:
        """Copies of the histories at a chunk's start: a chunk handed over to NumPy restarts from them."""
        return [self.derived("*_kept", b) for b in self.history_buffers()]

    def history_kept(self) -> list[tuple[str, str]]:
        return list(zip(self.history_snapshot(), self.history_buffers()))

    def new_value_buffers(self) -> list[str]:
        return []

    def evaluate(self, s: Evaluate) -> list[str]:
        return [] if s.target.role == "rest" else super().evaluate(s)

    def combine(self, s: Combine) -> list[str]:
        terms = [f"{float(a)!r}*dt*{self.value(v)}" for a, v in s.terms] + self.noise_terms(s.noise)
        return [f"{self.value(s.target)} = " + " + ".join([self.value(s.base)] + terms)]

    def rate(self, s: Rate) -> list[str]:
        names = self.stage_names(s.stage)
        terms = [] if s.linear == 0 else [self.value(s.state) if s.linear == 1 else
                                          f"{self.code(s.linear, names)}*{self.value(s.state)}"]
        terms += [self.value(p) for p in s.products] + ([f"({self.code(self.rests[s.rest], names)})"] if s.rest else [])
        terms += ([f"{self.derived('drive_*', s.state.name)}[i]"] if s.drive else []) + self.noise_terms(s.noise)
        return [f"{self.value(s.target)} = " + (" + ".join(terms) or "0.0")]

    def commit(self, s: Commit) -> list[str]:
        new = self.value(s.value)
        return [] if new == self.ident(s.state) else [f"{self.ident(s.state)} = {new}"]

    def check(self, s: Check) -> list[str]:
        fired, held = self.value(Value(s.event, "fired")), self.value(Value(s.event, "held"))
        condition = self.code(s.condition, self.stage_names(0))
        lines = [f"{fired} = {condition}"]
        if s.refractory:
            lines = [f"{held} = {self.ident(s.refractory)} > 0.5 * dt", f"{fired} = {condition} and not {held}"]
        rec = self.derived("rec_*", s.event)
        return lines + [f"if {fired} and {rec} is not None and row < len({rec}):", f"    {rec}[row] += 1"]

    def emit(self, s: Emit) -> list[str]:
        return [f"{self.ident(s.input)} = {self.value(Value(s.event, 'fired'))} / dt"]

    def reset(self, s: Reset) -> list[str]:
        """Python's tuple assignment computes every reset value before it assigns any."""
        fired = self.value(Value(s.event, "fired"))
        names = self.reset_names()
        lines = []
        if s.assignments:
            targets = ", ".join(self.value(Value(state, "new")) for state, _ in s.assignments)
            values = ", ".join(self.code(value, names) for _, value in s.assignments)
            held = f" or {self.value(Value(s.event, 'held'))}" if s.held else ""
            lines += [f"if {fired}{held}:", f"    {targets} = {values}"]
        if s.clock:
            lines += [f"if {fired}:", f"    {self.value(Value(s.clock, 'new'))} = {self.code(s.duration, names)}"]
        return lines

    def record(self, s: Record) -> list[str]:
        rec = self.derived("rec_*", s.state)
        return [f"if {rec} is not None:", f"    {rec}[row] = {self.value(s.value)}"]
