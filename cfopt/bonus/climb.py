"""Coordinate hill climbing for noisy, one-trial-at-a-time feedback: ``propose()``, ``tell(score)``.

The engine of ``cfopt.bonus.autotune``, with nothing about caches in it. Each ``Knob`` has a range
and a first step, a factor on a log scale (capacities, TTLs, waits) or an amount on a linear one.
The climber moves one knob at a time (the order shuffled by the seed), keeps a move that scores
lower by more than ``min_gain`` (accept) and goes back otherwise (revert); when both directions
of a knob fail, its step shrinks (a factor ``f`` becomes ``sqrt(f)``, an amount halves); once
every step is under its ``min_step`` it holds. ``tell`` takes the incumbent's score on the same
trial when the caller can measure it (a paired comparison), else compares with the incumbent's
last score. ``tune(fn, space, start)`` runs the loop offline on any function.

>>> space = (Knob("x", 1, 1000, step=4.0, min_step=1.05), Knob("y", 1, 1000, step=4.0, min_step=1.05))
>>> r = tune(lambda k: (k["x"] - 300) ** 2 + (k["y"] - 40) ** 2, space, {"x": 2, "y": 900}, seed=1)
>>> abs(r.final["x"] - 300) < 10, abs(r.final["y"] - 40) < 2, r.converged_at is not None
(True, True, True)
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from ..errors import ConfigError

__all__ = ["Knob", "HillClimber", "Window", "TuneResult", "tune"]


@dataclass(frozen=True, slots=True)
class Knob:
    """One knob's range and steps. ``log``: steps multiply by ``step`` (> 1), else add it."""

    name: str
    lo: float
    hi: float
    step: float                 # the first step: a factor (log) or an amount (linear)
    min_step: float             # settled once the step shrinks under this
    log: bool = True
    integer: bool = False

    def __post_init__(self) -> None:
        where = f"Knob {self.name!r}"
        if not self.lo < self.hi:
            raise ConfigError(f"{where}: lo must be below hi, got lo={self.lo!r}, hi={self.hi!r}")
        if self.log and not self.lo > 0:
            raise ConfigError(f"{where}: lo must be positive on a log scale, got {self.lo!r}")
        if self.log and not 1 < self.min_step < self.step:
            raise ConfigError(f"{where}: step and min_step are factors on a log scale: need "
                              f"1 < min_step < step, got step={self.step!r}, min_step={self.min_step!r}")
        if not self.log and not 0 < self.min_step < self.step:
            raise ConfigError(f"{where}: need 0 < min_step < step, got step={self.step!r}, "
                              f"min_step={self.min_step!r}")

    def clip(self, x: float) -> float:
        x = min(max(x, self.lo), self.hi)
        return int(round(x)) if self.integer else x

    def move(self, x: float, direction: int, step: float) -> float:
        """The value one ``step`` from ``x`` in ``direction`` (+1 or -1), within bounds."""
        y = self.clip(x * step ** direction if self.log else x + direction * step)
        if self.integer and y == x:   # a small factor rounds back to x: an integer moves by 1
            y = self.clip(x + direction)
        return y

    def shrink(self, step: float) -> float:
        return math.sqrt(step) if self.log else step / 2


class HillClimber:
    """Coordinate hill climbing, one trial per window: ``propose()``, then ``tell(score)``."""

    def __init__(self, space: Sequence[Knob], start: Mapping[str, float], *, seed: int = 0,
                 min_gain: float = 0.0) -> None:
        names = [k.name for k in space]
        if not space or len(set(names)) != len(names):
            raise ConfigError(f"space: need one or more knobs with distinct names, got {names}")
        if set(start) != set(names):
            raise ConfigError(f"start: give a value for each knob {names}, got {sorted(start)}")
        if not 0 <= min_gain < 1:
            raise ConfigError(f"min_gain must lie in [0, 1), got {min_gain!r}")
        for k in space:
            if not k.lo <= start[k.name] <= k.hi:
                raise ConfigError(f"start: {k.name}={start[k.name]!r} lies outside [{k.lo}, {k.hi}]")
        self.space = {k.name: k for k in space}
        self.x = {k.name: k.clip(start[k.name]) for k in space}
        self.fx: float | None = None
        self.steps = {k.name: k.step for k in space}
        self.min_gain = min_gain
        self._rng = random.Random(seed)
        self._queue: list[str] = []
        self._coord: str | None = None
        self._dir = 1
        self._failed_other = False   # the opposite direction is known to be worse
        self._trial: dict[str, float] | None = None

    def __repr__(self) -> str:
        return f"HillClimber(x={self.x}, fx={self.fx}, converged={self.converged})"

    @property
    def trying(self) -> str | None:
        """The knob of the trial last proposed (None: the start or the incumbent)."""
        return self._coord if self._trial is not None else None

    @property
    def trial(self) -> dict[str, float] | None:
        """The knobs of the trial last proposed and not yet told (None: none pending)."""
        return dict(self._trial) if self._trial is not None else None

    def neighbours(self, names: Sequence[str]) -> dict[str, dict[str, float]]:
        """The trials one step either way of the incumbent along each of ``names``, by
        ``"<knob>+"`` / ``"<knob>-"``, where the move changes something (a shadow per trial)."""
        out = {}
        for name in names:
            k = self.space.get(name)
            if k is None or self.steps[name] < k.min_step:
                continue
            for d, sign in ((1, "+"), (-1, "-")):
                value = k.move(self.x[name], d, self.steps[name])
                if value != self.x[name]:
                    out[f"{name}{sign}"] = {**self.x, name: value}
        return out

    def trial_name(self) -> str | None:
        """The ``neighbours`` name of the trial last proposed."""
        if self._trial is None or self._coord is None:
            return None
        return f"{self._coord}{'+' if self._dir > 0 else '-'}"

    @property
    def converged(self) -> bool:
        return all(self.steps[n] < self.space[n].min_step for n in self.space)

    def propose(self) -> dict[str, float]:
        """The knobs for the next window: the start, a trial, or the incumbent once converged."""
        if self.fx is None:
            return dict(self.x)
        while not self.converged:
            if self._coord is None:
                self._next_coord()
                continue
            k = self.space[self._coord]
            value = k.move(self.x[k.name], self._dir, self.steps[k.name])
            if value != self.x[k.name]:
                self._trial = {**self.x, k.name: value}
                return dict(self._trial)
            self._fail()   # a bound or rounding: that direction goes nowhere, no window spent
        self._trial = None
        return dict(self.x)

    def tell(self, score: float, incumbent: float | None = None) -> str:
        """Score the knobs last proposed; return what happened: start, accept, revert or hold.

        ``incumbent``: the incumbent's score on the same window (a paired comparison), if known;
        else the trial is compared with the incumbent's last score.
        """
        for name, v in (("score", score), ("incumbent", incumbent)):
            if v is not None and not math.isfinite(v):
                raise ConfigError(f"{name} must be a finite number, got {v!r}")
        if self.fx is None:
            self.fx = score
            return "start"
        if self._trial is None:
            self.fx = score   # the incumbent, measured again
            return "hold"
        trial, self._trial = self._trial, None
        ref = self.fx if incumbent is None else incumbent
        if score < ref - self.min_gain * abs(ref):
            self.x, self.fx = trial, score
            self._failed_other = True   # keep going this way; back is where we came from
            return "accept"
        if incumbent is not None:
            self.fx = incumbent
        self._fail()
        return "revert"

    def _next_coord(self) -> None:
        if not self._queue:
            self._queue = [n for n in self.space if self.steps[n] >= self.space[n].min_step]
            self._rng.shuffle(self._queue)
        self._coord = self._queue.pop()
        self._dir, self._failed_other = self._rng.choice((1, -1)), False

    def _fail(self) -> None:
        assert self._coord is not None
        if not self._failed_other:
            self._dir, self._failed_other = -self._dir, True
            return
        self.steps[self._coord] = self.space[self._coord].shrink(self.steps[self._coord])
        self._coord = None


@dataclass(frozen=True, slots=True)
class Window:
    """One window of a run: the knobs it ran with, its score, what the tuner did after."""

    index: int
    t_end: float
    knobs: dict[str, float]
    action: str                   # start | accept | revert | hold | wait (no verdict yet) | fixed
    objective: float
    metrics: Any = None           # autotune: a WindowMetrics
    terms: dict[str, float] = field(default_factory=dict)
    trial: dict[str, float] | None = None   # cache knobs judged by a shadow cache meanwhile
    trial_objective: float | None = None    # the trial's score on this window, from its shadow


@dataclass
class TuneResult:
    """A run's trajectory, window by window, and the knobs it ended with."""

    windows: list[Window]
    start: dict[str, float]
    final: dict[str, float]
    converged_at: int | None      # the window after which the knobs held, None if they never did
    space: tuple[Knob, ...] = ()

    @property
    def objectives(self) -> list[float]:
        return [w.objective for w in self.windows]

    def mean_objective(self, first: int = 0) -> float:
        """The mean score of the windows from ``first`` on (negative: the last ``-first``)."""
        xs = self.objectives[first:]
        return sum(xs) / len(xs) if xs else float("nan")

    def __repr__(self) -> str:
        ws = self.windows
        head = (f"TuneResult({len(ws)} windows, objective {ws[0].objective:.6f} -> "
                f"{ws[-1].objective:.6f}" if ws else "TuneResult(0 windows")
        conv = f"converged after window {self.converged_at}" if self.converged_at is not None \
            else "not converged"
        return f"{head}, {conv}; start {_fmt(self.start)}; final {_fmt(self.final)})"


def _fmt(knobs: Mapping[str, float]) -> str:
    return "{" + ", ".join(f"{k}={v:g}" for k, v in knobs.items()) + "}"


def tune(fn: Callable[[dict[str, float]], float], space: Sequence[Knob], start: Mapping[str, float],
         *, rounds: int = 200, seed: int = 0, min_gain: float = 0.0) -> TuneResult:
    """Climb ``fn`` (knobs -> score, lower is better) for ``rounds`` evaluations, offline."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ConfigError(f"rounds must be a positive integer, got {rounds!r}")
    climber = HillClimber(space, start, seed=seed, min_gain=min_gain)
    windows: list[Window] = []
    converged_at = None
    for i in range(rounds):
        knobs = climber.propose()
        score = fn(knobs)
        action = climber.tell(score)
        windows.append(Window(i, float(i), knobs, action, score))
        if climber.converged and converged_at is None:
            converged_at = i
            break
    return TuneResult(windows, dict(start), dict(climber.x), converged_at, tuple(space))
