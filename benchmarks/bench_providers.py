"""How fast the simulated providers decide calls: calls per second of ``simulate()``, per provider.

    .venv/bin/python benchmarks/bench_providers.py [--calls 5000] [--seed 0]

Text calls replay ``datasets/contentflow_1h.jsonl`` when it is there (its text requests, in
order, cycled up to ``--calls``), else generated prompts; the clock advances between calls as
in an hour of traffic, so rate limits do not interfere. Goal: 5,000 text calls well under 2 s
(a replay of the hour must not wait on the simulator). Numbers vary on a shared machine; this
script reports, it does not assert.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cfopt.clock import VirtualClock
from cfopt.errors import ProviderError
from cfopt.providers import Call, Providers

_TOPICS = ("sustainable coffee farming", "remote work", "electric bikes", "home composting",
           "password managers", "sourdough baking", "solar panels", "trail running", "budget travel",
           "indoor plants", "podcast editing", "small business taxes")
_TASKS = ("Write a blog post about {t}.", "Write a tagline for a brand about {t}.",
          "Summarize the main benefits of {t} in 3 sentences.", "Give me five tips on {t}.",
          "Write a product description for {t} in 120 words.", "Draft a tweet about {t}.",
          "Explain {t} to a beginner in a detailed guide.")


def text_calls(n: int, seed: int) -> list[Call]:
    """``n`` text calls: the dataset's text requests when present, else generated ones."""
    path = Path(__file__).resolve().parent.parent / "datasets" / "contentflow_1h.jsonl"
    calls: list[Call] = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            if r.get("type") in ("text", "analysis"):
                model = {"low": "haiku", "critical": "opus"}.get(r.get("quality"), "sonnet")
                calls.append(Call(model, r["prompt"], max_tokens=r.get("max_tokens")))
    if not calls:
        calls = [Call(("haiku", "sonnet", "opus")[i % 3],
                      _TASKS[i % len(_TASKS)].format(t=_TOPICS[(i * 7 + seed) % len(_TOPICS)]) + f" #{i}")
                 for i in range(n)]
    return [calls[i % len(calls)] for i in range(n)]


def bench(providers: Providers, calls: list[Call], gap_s: float) -> tuple[float, float, int]:
    """(wall s, CPU s, errors) of ``simulate()`` over ``calls``, ``gap_s`` apart on the clock.

    CPU time is reported too: on a shared machine it moves much less than wall time.
    """
    errors = 0
    start, cpu = time.perf_counter(), time.process_time()
    for call in calls:
        try:
            providers.for_model(call.model).simulate(call)
        except ProviderError:
            errors += 1
        providers.clock.advance(gap_s)
    return time.perf_counter() - start, time.process_time() - cpu, errors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    n = args.calls
    gap = 3600.0 / n
    texts = text_calls(n, args.seed)
    cases = {
        "claude (text, cold)": texts,
        "claude (text, same calls again)": texts,
        "fal (images)": [Call(("flux_schnell", "flux_dev")[i % 2], f"a photo of {_TOPICS[i % 12]} #{i}",
                              width=1024 + 64 * (i % 8), height=768) for i in range(n)],
        "fal (video, audio)": [Call("video_5s" if i % 2 else "audio_minute", f"clip {i}") for i in range(n)],
        "unsplash (search)": [Call("unsplash-search", f"{_TOPICS[i % 12]} {i % 97}") for i in range(n)],
    }
    providers = Providers(seed=args.seed, clock=VirtualClock())
    print(f"{n} calls per case, simulate() only, seed {args.seed}")
    for name, calls in cases.items():
        wall, cpu, errors = bench(providers, calls, gap)
        print(f"  {name:34s} {n / wall:8,.0f} calls/s  {wall:6.2f} s wall  {cpu:6.2f} s CPU"
              + (f"   ({errors} errors)" if errors else ""))


if __name__ == "__main__":
    main()
