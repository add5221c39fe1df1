"""The step program (codegen/step.py) arranged as the CuPy kernels print it: stage by stage.

A stage's kernels compute its Rates; the values the next stage starts from (its Combines) and,
after the last stage, the update, the Commits and the Records follow in the same kernel (the
element-wise strategies) or in the same loop body (fused, persistent). Nothing here knows a
tableau: stage times, starting values, rates and the update are the program's statements (which
already leaves out what nothing reads). Checks, spike trains, resets and noise draws are kept by
kind for the kernels that print them (kernel.KernelWriter).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import UnsupportedFeatureError
from ..step import Check, Combine, Commit, Emit, Evaluate, Noise, Product, Rate, Record, Reset, Stage, StepProgram, Value

NO_WORK = (Stage, Commit, Record)   # in grad()'s recomputed step: times are computed, states kept per step


def refuse_statement(s) -> None:
    """A statement kind this backend does not translate (a delay; in grad() an event or a noise
    draw): a clear error, never a step that silently leaves it out."""
    kind = type(s).__name__
    feature = _FEATURES.get(kind, "a feature of this model")
    raise UnsupportedFeatureError(f"the CuPy backend cannot translate the step program's '{kind}' statements "
                                  f"({feature}) yet", None, "run this model with backend='numpy' (device='cpu')")


_FEATURES = {"Check": "events (spikes)", "Emit": "events (spikes)", "Reset": "events (resets)",
             "Noise": "noise", "Remember": "delays (histories)", "Recall": "delays (histories)"}


@dataclass
class StageSection:
    stage: Stage
    starts: dict[str, Combine] = field(default_factory=dict)   # state -> the value the stage starts from
    rates: list[Rate] = field(default_factory=list)


class StepSections:
    """The statements of one step by stage, less the values nothing reads; evaluations and
    products are the stage program's (program.py), computed where the kernels' levels say."""

    def __init__(self, program: StepProgram):
        self.stages: list[StageSection] = []
        self.update: dict[str, Combine] = {}      # x_new = x + dt * sum(b_j k_j); none when dt is folded in
        self.commits: list[Commit] = []
        self.records: list[Record] = []
        self.checks: list[Check] = []             # at the step's start, on the states it starts from
        self.emits: dict[str, str] = {}           # emitted input -> its event (fired / dt for the whole step)
        self.resets: list[Reset] = []             # after the update, before the commits
        self.noise: dict[Value, Noise] = {}       # g * dW of a noisy state in a stage
        for s in program.statements:
            self._add(s)

    def _add(self, s) -> None:
        if isinstance(s, Stage):
            self.stages.append(StageSection(s))
        elif isinstance(s, Combine):
            (self.update if s.target.role == "new" else self.stages[-1].starts)[s.target.name] = s
        elif isinstance(s, Rate):
            self.stages[-1].rates.append(s)
        elif isinstance(s, Commit):
            self.commits.append(s)
        elif isinstance(s, Record):
            self.records.append(s)
        elif isinstance(s, Check):
            self.checks.append(s)
        elif isinstance(s, Emit):
            self.emits[s.input] = s.event
        elif isinstance(s, Reset):
            self.resets.append(s)
        elif isinstance(s, Noise):
            self.noise[s.target] = s
        elif not isinstance(s, (Evaluate, Product)):
            refuse_statement(s)

    def noise_of(self, s: int) -> list[Noise]:
        """The noise draws of stage s (g*dW; a g for the whole chunk is stage 0's)."""
        return [n for n in self.noise.values() if n.stage == s]

    def noise_read_later(self) -> set[Value]:
        """g*dW values read after the kernel of their own stage (stage by stage, one kernel each)."""
        return {v for s in range(len(self.stages)) for c in self.after(s) for _, v in c.noise if v.stage != s}

    @property
    def last(self) -> int:
        return len(self.stages) - 1

    def resolve(self, v: Value) -> Value:
        """The value v is: a stage that starts from the step's own states (a row of zeros) reads them."""
        if v.role == "state" and v.stage > 0 and not self.stages[v.stage].starts[v.name].terms:
            return self.stages[v.stage].starts[v.name].base
        return v

    def after(self, s: int) -> list[Combine]:
        """The Combines that follow stage s's rates: the next stage's starting values, or the update."""
        return list((self.update if s == self.last else self.stages[s + 1].starts).values())

    def next_state(self, s: int, name: str) -> Value:
        """The value of a state where the next stage (after the last one: the next step) starts."""
        return self.resolve(Value(name, "new") if s == self.last else Value(name, "state", s + 1))

    def rates_read_later(self) -> set[Value]:
        """Rates read after the kernel of their own stage (stage by stage, one kernel each)."""
        return {v for s in range(len(self.stages)) for c in self.after(s) for _, v in c.terms if v.stage != s}
