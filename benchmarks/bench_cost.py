"""Part 1 on the one-hour workload: what routing, compression and the batch discount each save.

    .venv/bin/python benchmarks/bench_cost.py [--workload datasets/contentflow_1h.jsonl]
                                              [--prices exercise|list-2026] [--seed 0]

Every request is answered by the simulated providers (``simulate()`` at the request's time, on a
virtual clock), and every cost is the catalog's price of the usage they bill. Scenarios:

- baseline:     every text/analysis request on the premium model (opus), images on flux_dev;
- routing:      CostOptimizer.select_optimal_model picks each model;
- compression:  opus, with the safe compressor's prompts (input tokens counted with cl100k);
- batch:        opus, low-priority text through the Message Batches API (half price, late);
- all three together.

Output tokens come from the simulated Claude (lengths calibrated to the Azure LLM trace). For
the compression scenario the answer's length is held at the baseline's: the simulator draws a
length from a hash of the prompt, so a reworded prompt would get a different random length,
which is noise, not an effect of compression. Video, audio and photo requests have one model
each and cost the same in every scenario. Quality kept is the routing's score against the
premium model (catalog ``[quality]``); compression and batching do not change the model.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cfopt.cost import CostOptimizer  # noqa: E402
from cfopt.errors import ProviderError  # noqa: E402
from cfopt.providers import Call, Providers  # noqa: E402
from cfopt.workload import load  # noqa: E402

TEXT = ("text", "analysis")


@dataclass
class Tally:
    name: str
    text_usd: float = 0.0
    media_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    batched: int = 0
    errors: int = 0
    quality: float = 1.0
    models: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return self.text_usd + self.media_usd


def _call(r, model: str, prompt: str | None = None, batch: bool = False) -> Call:
    return Call(model, prompt or r.prompt, max_tokens=r.max_tokens if r.type in TEXT else None,
                batch=batch)


def run(workload: Path, prices: str, seed: int) -> dict[str, Tally]:
    requests = load(workload)
    prov = Providers(seed=seed, profile=prices)
    cat, clock = prov.catalog, prov.clock
    opt = CostOptimizer(cat)
    routed = [opt.select_optimal_model(r).model for r in requests]
    premium = [opt.quality.premium if r.type in TEXT else "flux_dev" if r.type == "image" else m
               for r, m in zip(requests, routed)]
    compressed = [opt.optimize_prompt(r.prompt) if r.type in TEXT else None for r in requests]
    t = {k: Tally(k) for k in ("baseline", "routing", "compression", "batch", "all three")}
    for r, mp, mr, c in zip(requests, premium, routed, compressed):
        clock.advance_to(r.t)
        low = r.type in TEXT and r.priority == "low"
        try:
            base = prov.for_model(mp).simulate(_call(r, mp))
            route = prov.for_model(mr).simulate(_call(r, mr)) if mr != mp else base
        except ProviderError:  # an injected fault or a rate limit: count it, skip the request
            for tally in t.values():
                tally.errors += 1
            continue
        saved = c.saved_tokens if c else 0
        for tally, res, model, cut, batch in (
                (t["baseline"], base, mp, 0, False), (t["routing"], route, mr, 0, False),
                (t["compression"], base, mp, saved, False), (t["batch"], base, mp, 0, low),
                (t["all three"], route, mr, saved, low)):
            usage = res.usage
            if r.type in TEXT:
                usage = replace(usage, input_tokens=usage.input_tokens - cut,
                                service_tier="batch" if batch else usage.service_tier)
                tally.text_usd += cat.cost(model, usage)
                tally.input_tokens += usage.input_tokens
                tally.output_tokens += usage.output_tokens
                tally.batched += batch
            else:
                tally.media_usd += cat.cost(model, usage)
            tally.models.append(model)
    text_requests = [r for r in requests if r.type in TEXT]
    kept = opt.quality_kept(requests, routed)
    for tally in t.values():
        tally.quality = kept if tally.name in ("routing", "all three") else 1.0
    t["_meta"] = {"requests": len(requests), "text": len(text_requests),
                  "compressed_saved": sum(c.saved_tokens for c in compressed if c),
                  "compressed_before": sum(c.tokens_before for c in compressed if c)}
    return t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default=str(ROOT / "datasets" / "contentflow_1h.jsonl"))
    ap.add_argument("--prices", default="exercise", choices=("exercise", "list-2026"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    t = run(Path(args.workload), args.prices, args.seed)
    meta = t.pop("_meta")
    base = t["baseline"]
    print(f"workload {args.workload}: {meta['requests']} requests, {meta['text']} text/analysis; "
          f"prices: {args.prices}; seed {args.seed}")
    print("output tokens: from the simulated Claude's simulate() (Azure-trace lengths); "
          "compression keeps the baseline's output length")
    print(f"compressor: {meta['compressed_saved']:,} of {meta['compressed_before']:,} prompt tokens "
          f"saved ({meta['compressed_saved'] / max(1, meta['compressed_before']):.1%})\n")
    head = (f"{'scenario':<12} {'text $':>9} {'media $':>9} {'total $':>9} {'text x':>7} "
            f"{'text saved':>10} {'total saved':>11} {'quality kept':>12} {'batched':>8}")
    print(head)
    print("-" * len(head))
    for tally in t.values():
        print(f"{tally.name:<12} {tally.text_usd:>9.4f} {tally.media_usd:>9.4f} {tally.total:>9.4f} "
              f"{tally.text_usd / base.text_usd:>7.3f} {1 - tally.text_usd / base.text_usd:>10.1%} "
              f"{1 - tally.total / base.total:>11.1%} {tally.quality:>12.1%} {tally.batched:>8}")
    if base.errors:
        print(f"\n{base.errors} requests failed in simulation (rate limits) and were left out")
    print(f"\n(text x: text cost as a multiple of the baseline's; media costs move only by routing "
          f"images flux_dev -> flux_schnell; quality kept scores text and images)\nran in "
          f"{time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
