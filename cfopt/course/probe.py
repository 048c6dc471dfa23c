"""Probes: how the grader watches a learner's code, and what it sends out of the sandbox.

A check cell gives the learner instant feedback, but it runs in the learner's kernel and any
code there can patch it. The grade comes from a **probe** instead: a function, written by the
notebook's author in a probe cell of the solution, that calls the learner's function or class on
inputs and records plain JSON observations::

    from cfopt.course import kit

    @kit.probe("my_effective_rank ages tasks one level per aging_s",
               reference="cfopt.batching.priority.effective_rank")
    def _(probe):
        for _ in range(40):                                   # hidden cases: drawn at grading time
            p = probe.rng.choice(["high", "medium", "low"])
            waited, aging = round(probe.rng.uniform(0, 300), 2), probe.rng.choice([None, 7.5, 30.0])
            probe.observe(f"my_effective_rank({p!r}, {waited}, {aging})",
                          lambda: my_effective_rank(p, waited, aging))

``cfopt grade`` runs the probe after the learner's cells finished, with ``probe.rng`` seeded by
the instructor's ``--seed``, in the learner's sandbox and again in the solution's; a verdict
outside both compares the two lists of observations (``cfopt.course.verdicts``). While the
learner's call runs, every function named in ``reference`` answers with a tripwire
(``Poison``), so an answer that only calls the library's own implementation gets no credit.

Outside grading (the solution notebook in Jupyter or under nbval) ``kit.probe`` tries the probe
at once on seed 0 and says how many cases it observed, so a broken probe fails in CI.

>>> to_json({"a": (1, 2.5, float("nan")), "b": {3}})
{'a': [1, 2.5, {'float': 'nan'}], 'b': {'set': [3]}}
"""
from __future__ import annotations

import importlib
import inspect
import math
import os
import random
import types
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..errors import ConfigError

__all__ = ["MIME_TYPE", "TRIPWIRE_EVENT", "TRIPWIRE_MARK", "ProbeSpec", "Probe", "ProbeError",
           "Poison", "probe", "to_json", "resolve", "functions_of", "run_probe"]

MIME_TYPE = "application/vnd.cfopt.probe+json"
TRIPWIRE_EVENT = "cfopt.tripwire"      # a sys.audit event the grader's guard listens for
TRIPWIRE_MARK = "cfopt grading: this exercise must not call "
MAX_CASES = 2_000
_MAX_DEPTH = 12
_MAX_TEXT = 2_000

_collector: list["ProbeSpec"] | None = None   # set by the grader's guard while it reads probe cells


class ProbeError(ConfigError):
    """A probe cell is wrong (the author's mistake, not the learner's)."""


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """One probe: the check it grades, the function, what it poisons and how it is judged."""

    check: str
    fn: Callable[["Probe"], Any]
    references: tuple[str, ...] = ()
    verdict: str = "close"
    params: Mapping[str, Any] = field(default_factory=dict)


class Probe:
    """What a probe function receives: ``rng`` for hidden cases and ``observe`` to record calls."""

    def __init__(self, check: str, seed: int, *, poison: "Poison | None" = None) -> None:
        self.check, self.seed = check, seed
        # a string seed is hashed with SHA-512: the same cases in every process, whatever PYTHONHASHSEED
        self.rng = random.Random(f"{seed}\x1f{check}")
        self.cases: list[dict[str, Any]] = []
        self._poison = poison or Poison([])

    def observe(self, case: Any, call: Callable[[], Any]) -> Any:
        """Record ``case`` (JSON: say what is called) and what ``call()`` returns or raises.

        The references are poisoned only while ``call`` runs, so a probe may build its inputs
        with any part of cfopt. Returns the value (None when the call raised).
        """
        if len(self.cases) >= MAX_CASES:
            raise ProbeError(f"probe for {self.check!r} observed more than {MAX_CASES} cases")
        entry: dict[str, Any] = {"case": to_json(case)}   # before the call: the call may mutate it
        value = None
        try:
            with self._poison:
                value = call()
        except (Exception, SystemExit) as e:   # noqa: BLE001 - the learner's error is the observation
            entry["error"] = type(e).__name__
            entry["message"] = _clip(str(e))
        else:
            entry["value"] = to_json(value)
        self.cases.append(entry)
        return value


def probe(check: str, *, reference: str | Sequence[str] = (), verdict: str = "close",
          **params: Any) -> Callable[[Callable[[Probe], Any]], Callable[[Probe], Any]]:
    """Declare the probe of check ``check``; ``reference`` names what the learner must not call.

    ``verdict`` names a verdict of ``cfopt.course.verdicts`` ("close" compares every observation
    with the reference's, numbers within ``rel``/``abs``); ``params`` go to it.
    """
    if not isinstance(check, str) or not check.strip():
        raise ProbeError("kit.probe needs the name of its check")
    refs = (reference,) if isinstance(reference, str) else tuple(reference)

    def register(fn: Callable[[Probe], Any]) -> Callable[[Probe], Any]:
        spec = ProbeSpec(check, fn, refs, verdict, dict(params))
        if _collector is not None:
            _collector.append(spec)
        elif not os.environ.get("CFOPT_GRADING"):   # a probe cell in a graded notebook stays inert
            _self_test(spec)
        return fn

    return register


def run_probe(spec: ProbeSpec, seed: int, poison: "Poison") -> list[dict[str, Any]]:
    """Run ``spec`` on ``seed`` with ``poison`` armed around each learner call; return the cases."""
    p = Probe(spec.check, seed, poison=poison)
    spec.fn(p)
    return p.cases


def _self_test(spec: ProbeSpec) -> None:
    """Outside grading: run the probe once on seed 0 and report, so a broken probe shows in CI."""
    poison = Poison.of(spec.references)
    cases = run_probe(spec, 0, poison)
    tripped = [c for c in cases if str(c.get("message", "")).startswith(TRIPWIRE_MARK)]
    if tripped:
        raise ProbeError(f"probe {spec.check!r}: the code it probes calls a reference it poisons "
                         f"({tripped[0]['message'][len(TRIPWIRE_MARK):]}); a solution must not")
    if not cases:
        raise ProbeError(f"probe {spec.check!r} observed nothing: call probe.observe(...)")
    errors = sum("error" in c for c in cases)
    print(f"🔒 hidden check for {spec.check!r}: {len(cases)} cases observed at seed 0"
          + (f" ({errors} raised)" if errors else "") + "; `cfopt grade --seed S` draws its own")


# --- plain JSON out ------------------------------------------------------------------------------

def to_json(value: Any, _depth: int = 0) -> Any:
    """Return ``value`` as plain JSON data (lists, dicts with str keys, str, int, float, bool, None).

    Tuples become lists, sets ``{"set": [...]}`` (sorted), NaN and infinities ``{"float": "nan"}``,
    dataclasses ``{"type": name, "fields": {...}}``, NumPy scalars and arrays their Python values,
    anything else ``{"type": name, "repr": ...}``.
    """
    if _depth > _MAX_DEPTH:
        return {"type": type(value).__name__, "repr": "(nested too deep)"}
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else {"float": repr(float(value))}
    if isinstance(value, str):
        return _clip(str.__str__(value), 20 * _MAX_TEXT)
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return to_json(value.tolist(), _depth + 1)
    if isinstance(value, (list, tuple)):
        return [to_json(v, _depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [to_json(v, _depth + 1) for v in value]
        return {"set": sorted(items, key=repr)}
    if isinstance(value, Mapping):
        return {str(k) if isinstance(k, str) else repr(k): to_json(v, _depth + 1) for k, v in value.items()}
    if is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__,
                "fields": {f.name: to_json(getattr(value, f.name), _depth + 1) for f in fields(value)}}
    return {"type": type(value).__name__, "repr": _clip(repr(value))}


def _clip(text: str, limit: int = _MAX_TEXT) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"


# --- references and their tripwires -------------------------------------------------------------

def resolve(dotted: str) -> Any:
    """Import ``a.b.c.Name.attr``: the longest importable module, then attributes.

    >>> resolve("cfopt.batching.priority.effective_rank").__name__
    'effective_rank'
    """
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            try:
                obj = inspect.getattr_static(obj, name)
            except AttributeError:
                raise ConfigError(f"reference {dotted!r}: {type(obj).__name__} {obj!r} has no "
                                  f"attribute {name!r}") from None
            if isinstance(obj, (staticmethod, classmethod)):
                obj = obj.__func__
        return obj
    raise ConfigError(f"reference {dotted!r}: no module of that name can be imported")


def functions_of(obj: Any, dotted: str = "") -> list[types.FunctionType]:
    """The Python functions to poison for a reference: itself, or every method of a class."""
    if isinstance(obj, types.FunctionType):
        return [obj]
    if isinstance(obj, type):
        out = []
        for v in vars(obj).values():
            v = v.__func__ if isinstance(v, (staticmethod, classmethod)) else v
            if isinstance(v, property):
                out += [f for f in (v.fget, v.fset, v.fdel) if isinstance(f, types.FunctionType)]
            elif isinstance(v, types.FunctionType):
                out.append(v)
        return out
    raise ConfigError(f"reference {dotted or obj!r} is a {type(obj).__name__}, not a Python function "
                      f"or class; only those can be poisoned during a probe")


def _tripwire_code(fn: types.FunctionType, dotted: str) -> types.CodeType:
    """A code object for ``fn``'s place: it raises an audit event and a RuntimeError.

    ``fn.__code__`` can only be swapped for code with as many free variables as ``fn`` has
    closure cells, so the tripwire is compiled inside a function that defines the same names.
    """
    free = fn.__code__.co_freevars
    message = f"{TRIPWIRE_MARK}{dotted} (the library's own answer); write it yourself"
    outer = "".join(f"    {name} = None\n" for name in free)
    touch = f"        if 0: print({', '.join(free)})\n" if free else ""
    src = (f"def _outer():\n{outer}"
           f"    def tripwire(*args, **kwargs):\n{touch}"
           f"        __import__('sys').audit({TRIPWIRE_EVENT!r}, {dotted!r})\n"
           f"        raise RuntimeError({message!r})\n"
           f"    return tripwire\n")
    namespace: dict[str, Any] = {}
    exec(compile(src, f"<cfopt tripwire for {dotted}>", "exec"), namespace)
    code = namespace["_outer"]().__code__
    return code.replace(co_name=fn.__code__.co_name, co_qualname=fn.__code__.co_qualname)


class Poison:
    """While entered, every reference function runs a tripwire instead of its own code.

    Swapping ``__code__`` changes the function object in place, so every alias of it (an
    import under another name, a ``functools.partial``, a bound method) is poisoned too.
    """

    def __init__(self, targets: Iterable[tuple[str, types.FunctionType, types.CodeType]]) -> None:
        self._targets = [(dotted, fn, code, _tripwire_code(fn, dotted)) for dotted, fn, code in targets]
        self._depth = 0

    @classmethod
    def of(cls, references: Iterable[str]) -> "Poison":
        """Poison the functions the dotted names resolve to now."""
        return cls((dotted, fn, fn.__code__) for dotted in references
                   for fn in functions_of(resolve(dotted), dotted))

    def __enter__(self) -> "Poison":
        self._depth += 1
        if self._depth == 1:
            for _, fn, _, trip in self._targets:
                fn.__code__ = trip
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            for _, fn, code, _ in self._targets:
                fn.__code__ = code
