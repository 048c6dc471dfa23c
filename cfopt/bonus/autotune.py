"""Bonus 2: tune cache TTL, capacity, batch size and max-wait online, from the monitor's windows.

``autotune(requests)`` replays a workload once (``cfopt.bonus.tunable.TunableReplay``) with a
``PerformanceMonitor`` on its bus. Every ``window_s`` virtual seconds it reads the last window
from the monitor, scores it with an ``Objective`` (lower is better), and a ``HillClimber``
decides the knobs of the next window, set on the running replay: the cache keeps its entries,
calls in flight finish, later windows run with the new knobs (what carries over: see
``cfopt.bonus.tunable``). A request that arrived under the old knobs and finishes in the new
window counts in the new one.

**Objective** (``cfopt.bonus.objective``, which spells out each term and its weights): USD per
request, the sum of the window's mix-adjusted spend, rent for the cache's memory, a price on stale
answers, on a slow p95, on a hit rate under a floor and on errors. Every weight is an assumption
to change, not a measurement.

**Why a hill climber, not a bandit.** The knobs are ordered and the objective changes smoothly
along each (more entries: more hits, more rent), so a neighbour tells which way is better; four
knobs of eight values each would be 4,096 bandit arms, far more than the 30 to 60 windows of an
hour. ``cfopt.bonus.climb`` moves one knob at a time, accepts a trial that scores lower and
reverts one that does not, shrinks a knob's step when both ways fail, and holds once every step
is small. It never restarts: a workload that drifts after convergence would need that.

**Paired trials** (``paired=True``, the default). Two windows of the same knobs score far
apart (heavy-tailed costs: whether this window's two videos were cached), while two settings on
the *same* window differ little and steadily (``benchmarks/results/autotune.txt`` measures
both): comparing a trial window with the incumbent's last window is mostly noise. So a trial is
judged on the same requests as the incumbent:

- a cache trial (capacity or TTL) runs in a *shadow cache*: one per neighbour of the incumbent,
  fed every request, calling no provider, while users keep the incumbent's cache; it is scored
  with its own hits, ages and misses and the window's measured latency and errors;
- a batch trial (size or max-wait) runs on half of the requests (a stable hash of the prompt)
  while the other half keep the incumbent's: the two halves' p95 response times are compared
  (the rest of the score is the same for both: merging changes the spend by under 1% here).

With ``paired=False`` every trial runs on all traffic and is compared with the incumbent's last
window, as a tuner without shadows or splits would have to. Neither pairing is free in
production: a shadow cache costs memory for its keys, a split exposes half the users to a trial.

>>> from cfopt.workload import generate
>>> r = autotune(generate(400, seed=2, duration_s=600), start=Knobs(memory_entries=20_000,
...              memory_ttl_s=1.0), window_s=60)
>>> len(r.windows), r.windows[0].action, r.final["memory_entries"] < 20_000
(10, 'start', True)
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable, Mapping, Sequence

from ..errors import ConfigError
from ..events import EventBus
from ..monitoring.monitor import MonitorConfig, PerformanceMonitor
from ..workload import Request
from .climb import HillClimber, Knob, TuneResult, Window, tune
from .objective import Objective, WindowMetrics, reference_usd
from .tunable import Knobs, TunableReplay
from ..pricing import DEFAULT_PROFILE

__all__ = ["Knob", "DEFAULT_SPACE", "Objective", "WindowMetrics", "HillClimber", "Window",
           "TuneResult", "GridResult", "tune", "autotune", "fixed_run", "grid_search",
           "plot_trajectory", "Knobs"]

KNOB_NAMES = tuple(f.name for f in fields(Knobs))
CACHE_KNOBS = ("memory_entries", "memory_ttl_s")   # the knobs a shadow cache can judge

# Ranges of the four knobs: capacity and TTL as wide as the pipeline allows sensibly; batches up
# to 32 text calls, waits from 10 ms to 2 s (a human notices a few hundred ms).
DEFAULT_SPACE = (
    Knob("memory_entries", 10, 20_000, step=8.0, min_step=1.2, integer=True),
    Knob("memory_ttl_s", 1.0, 3_600.0, step=8.0, min_step=1.2),
    Knob("max_batch_size", 1, 32, step=4.0, min_step=1.2, integer=True),
    Knob("max_wait_s", 0.01, 2.0, step=4.0, min_step=1.2),
)


class _Session:
    """One replay scored window by window; ``step`` (may) set the next window's knobs."""

    def __init__(self, requests: Sequence[Request], knobs: Knobs, objective: Objective,
                 window_s: float, seed: int, profile: str) -> None:
        if isinstance(window_s, bool) or not isinstance(window_s, (int, float)) or not window_s > 0:
            raise ConfigError(f"window_s must be positive seconds, got {window_s!r}")
        if not requests:
            raise ConfigError("requests: need at least one request")
        if objective.reference_usd is None:
            objective = replace(objective, reference_usd=reference_usd(requests))
        self.objective, self.window_s = objective, float(window_s)
        span = max(r.t for r in requests) - min(r.t for r in requests)
        self.n_windows = max(1, math.ceil(span / window_s))
        bus = EventBus()
        self.replay = TunableReplay(requests, knobs, seed=seed, profile=profile, bus=bus)
        self.monitor = PerformanceMonitor(clock=self.replay.clock, bus=bus,
                                          config=MonitorConfig(retention_s=max(3600.0, 2 * window_s)))
        self.windows: list[Window] = []

    def run(self, step: Callable[..., tuple[str, Any, float | None, dict[str, float] | None]]
            ) -> list[Window]:
        """Replay; after each window ``step(knobs, score, metrics)`` gives
        (action, trial judged by a shadow, its score, the next window's knobs)."""
        def on_tick(k: int) -> None:
            if k > self.n_windows:
                return
            m = WindowMetrics.from_monitor(self.monitor, self.window_s)
            if m.requests == 0:
                return
            knobs = asdict(self.replay.knobs)
            terms = self.objective.terms(m, knobs)
            score = sum(terms.values())
            action, trial, trial_score, nxt = step(knobs, score, m)
            self.windows.append(Window(len(self.windows), self.replay.clock.now(), knobs, action,
                                       score, m, terms, trial, trial_score))
            if nxt is not None and nxt != knobs:
                self.replay.set_knobs(Knobs(**nxt))
        self.replay.run(self.window_s, on_tick)
        self.monitor.close()
        return self.windows


def _knobs_from(values: Mapping[str, float]) -> Knobs:
    unknown = sorted(set(values) - set(KNOB_NAMES))
    if unknown:
        raise ConfigError(f"unknown knob {', '.join(unknown)}; known: {', '.join(KNOB_NAMES)}")
    ints = {"memory_entries", "max_batch_size"}
    return Knobs(**{k: int(round(v)) if k in ints else float(v) for k, v in values.items()})


def autotune(requests: Sequence[Request], *, start: Knobs | None = None,
             space: Sequence[Knob] = DEFAULT_SPACE, objective: Objective | None = None,
             window_s: float = 120.0, seed: int = 0, min_gain: float = 0.0, paired: bool = True,
             profile: str = DEFAULT_PROFILE) -> TuneResult:
    """Replay ``requests`` once, moving the knobs of ``space`` after every window (online).

    ``paired``: judge each trial on the same requests as the incumbent (a cache trial in a
    shadow cache, a batch trial on half of the requests); else run it on all traffic and compare
    its window with the incumbent's last one.
    """
    start = start if start is not None else Knobs()
    unknown = sorted({k.name for k in space} - set(KNOB_NAMES))
    if unknown:
        raise ConfigError(f"space: unknown knob {', '.join(unknown)}; known: {', '.join(KNOB_NAMES)}")
    first = asdict(start)
    climber = HillClimber(space, {k.name: first[k.name] for k in space}, seed=seed,
                          min_gain=min_gain)
    s = _Session(requests, _knobs_from({**first, **climber.propose()}), objective or Objective(),
                 window_s, seed, profile)
    state: dict[str, Any] = {"converged_at": None}
    cache_knobs = [n for n in CACHE_KNOBS if n in climber.space] if paired else []

    def plan() -> tuple[dict[str, float], str | None]:
        """The real system's knobs for the next window, and how the trial will be judged."""
        proposal = climber.propose()
        s.replay.set_shadows({n: _knobs_from({**first, **k})
                              for n, k in climber.neighbours(cache_knobs).items()})
        s.replay.set_split(None)
        if not paired or climber.trying is None:
            return {**first, **proposal}, None
        if climber.trying in cache_knobs:   # judged in its shadow cache; users keep the incumbent
            return {**first, **climber.x}, climber.trial_name()
        s.replay.set_split(_knobs_from({**first, **proposal}))   # half the requests try it
        return {**first, **climber.x}, "split"

    state["next"] = plan()

    def step(knobs: dict[str, float], score: float, m: WindowMetrics):
        judged_by = state["next"][1]
        trial, trial_score, incumbent = None, None, score
        if judged_by == "split":
            trial = climber.trial
            a = s.monitor.get_stats("split_response_time.a", s.window_s)
            b = s.monitor.get_stats("split_response_time.b", s.window_s)
            if a.count and b.count:   # the same window, two halves: only the latency differs
                rest = score - s.objective.slow(m.p95_s)
                incumbent, trial_score = rest + s.objective.slow(a.p95), rest + s.objective.slow(b.p95)
        elif judged_by is not None:
            trial = climber.neighbours(cache_knobs)[judged_by]
            shadow = WindowMetrics.shadow_from_monitor(s.monitor, s.window_s, judged_by)
            if shadow is not None:
                trial_score = s.objective.score(shadow, trial)
        if judged_by is not None and trial_score is None:
            action = "wait"   # nothing to compare this window: judge the trial on the next one
        elif judged_by is not None:
            action = climber.tell(trial_score, incumbent)   # paired: the same window both ways
        else:
            action = climber.tell(score)
        if climber.converged and state["converged_at"] is None:
            state["converged_at"] = len(s.windows)
        if action != "wait":
            state["next"] = plan()
        return action, trial, trial_score, asdict(_knobs_from(state["next"][0]))
    windows = s.run(step)
    final = asdict(_knobs_from({**first, **climber.x}))
    return TuneResult(windows, first, final, state["converged_at"], tuple(space))


def fixed_run(requests: Sequence[Request], knobs: Knobs, *, objective: Objective | None = None,
              window_s: float = 120.0, seed: int = 0, profile: str = DEFAULT_PROFILE) -> TuneResult:
    """Replay ``requests`` with ``knobs`` held, scored window by window as ``autotune`` scores."""
    s = _Session(requests, knobs, objective or Objective(), window_s, seed, profile)
    windows = s.run(lambda knobs, score, m: ("fixed", None, None, None))
    return TuneResult(windows, asdict(knobs), asdict(knobs), 0)


@dataclass
class GridResult:
    """Every fixed setting of a grid and its mean window score; ``best`` scores lowest."""

    runs: list[tuple[Knobs, float]]

    @property
    def best(self) -> tuple[Knobs, float]:
        return min(self.runs, key=lambda kv: kv[1])

    def __repr__(self) -> str:
        knobs, score = self.best
        return f"GridResult({len(self.runs)} settings, best {knobs!r} at {score:.6f})"


def grid_search(requests: Sequence[Request], grid: Mapping[str, Sequence[float]], *,
                base: Knobs | None = None, objective: Objective | None = None,
                window_s: float = 120.0, seed: int = 0, profile: str = DEFAULT_PROFILE,
                map_fn: Callable = map) -> GridResult:
    """Score every combination of ``grid`` (knob -> values) held fixed over a whole replay.

    ``map_fn`` runs the replays (``multiprocessing.Pool().map`` runs them in parallel).
    """
    base = base if base is not None else Knobs()
    if not grid or any(len(v) == 0 for v in grid.values()):
        raise ConfigError("grid: give one or more values for each knob")
    settings = [_knobs_from({**asdict(base), **dict(zip(grid, combo))})
                for combo in itertools.product(*grid.values())]
    obj = objective or Objective()
    if obj.reference_usd is None:   # once, not once per replay
        obj = replace(obj, reference_usd=reference_usd(requests))
    jobs = [(list(requests), k, obj, window_s, seed, profile) for k in settings]
    scores = list(map_fn(_score_fixed, jobs))
    return GridResult(list(zip(settings, scores)))


def _score_fixed(job: tuple) -> float:
    requests, knobs, obj, window_s, seed, profile = job
    return fixed_run(requests, knobs, objective=obj, window_s=window_s, seed=seed,
                     profile=profile).mean_objective()


def plot_trajectory(result: TuneResult, *, baseline: TuneResult | None = None,
                    label: str = "grid best (fixed)") -> Any:
    """Plot the objective and each knob per window (matplotlib); return the figure."""
    import matplotlib.pyplot as plt
    names = [k.name for k in result.space] or list(result.final)
    fig, axes = plt.subplots(1 + len(names), 1, figsize=(8, 1.8 * (1 + len(names))), sharex=True)
    x = [w.index for w in result.windows]
    axes[0].plot(x, result.objectives, marker="o", ms=3, label="online tuner")
    if baseline is not None:
        axes[0].plot([w.index for w in baseline.windows], baseline.objectives, ls="--",
                     label=label)
    axes[0].set_ylabel("objective\n$/request")
    axes[0].legend(fontsize=8)
    for ax, name in zip(axes[1:], names):
        ax.step(x, [w.knobs[name] for w in result.windows], where="post")
        ax.set_ylabel(name, fontsize=8)
        if next((k.log for k in result.space if k.name == name), False):
            ax.set_yscale("log")
    axes[-1].set_xlabel("window")
    fig.tight_layout()
    return fig
