"""The progress bar of Network.run(verbose=True) (once per chunk of steps), of sweeps and of
fit_bptt (once per update, with the loss)."""
from __future__ import annotations

import sys


class ProgressBar:
    """tqdm when installed, else a one-line bar on stderr."""

    def __init__(self, total: int, unit: str = "step"):
        self.total, self.done, self.unit, self.note = total, 0, unit, ""
        try:
            from tqdm.auto import tqdm  # late: an optional dependency
            self._tqdm = tqdm(total=total, unit=unit, leave=True)
        except ImportError:
            self._tqdm = None
            self._draw()

    def update(self, steps_done: int, states=None) -> None:
        """The generated run()'s on_chunk callback (it also passes the states, unused here)."""
        if self._tqdm is not None:
            self._tqdm.update(steps_done - self.done)
        self.done = steps_done
        if self._tqdm is None:
            self._draw()

    def show(self, **values: float) -> None:
        """Numbers shown beside the count from the next update on (fit_bptt's loss)."""
        self.note = ", ".join(f"{name}={value:.4g}" for name, value in values.items())
        if self._tqdm is not None:
            self._tqdm.set_postfix_str(self.note, refresh=False)

    def _draw(self) -> None:
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        note = f"  {self.note:<16}" if self.note else ""  # (padded: a shorter one overwrites a longer)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {self.unit}s{note}")
        sys.stderr.flush()

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
        else:
            sys.stderr.write("\n")
            sys.stderr.flush()
