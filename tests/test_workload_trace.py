"""Calibration: the generator's constants against the Azure trace, and generated data against them.

The trace lives outside the project (``../shared/data/azure-llm-trace-2023``, or the folder in
``CFOPT_AZURE_TRACE``); where it is absent the first tests skip. The others check that generated
workloads reproduce the constants, and run everywhere.
"""
from __future__ import annotations

import math
import os
import random
import statistics
from pathlib import Path

import pytest

from cfopt.workload import _arrivals as arrivals
from cfopt.workload import generate
from cfopt.workload._calibration import CODE, CONV, measure

TRACE = Path(os.environ.get("CFOPT_AZURE_TRACE", Path(__file__).resolve().parents[2]
                            / "shared" / "data" / "azure-llm-trace-2023"))
needs_trace = pytest.mark.skipif(not (TRACE / "AzureLLMInferenceTrace_conv.csv").exists(),
                                 reason=f"Azure LLM trace not available here ({TRACE})")


@needs_trace
@pytest.mark.parametrize("service,constants", [("conv", CONV), ("code", CODE)])
def test_constants_match_the_trace(service, constants):
    measured = measure(TRACE, service)
    for key, value in constants.items():
        assert measured[key] == pytest.approx(value, rel=0.01, abs=0.006), key


def _quantile(xs, q):
    xs = sorted(xs)
    return xs[round((len(xs) - 1) * q)]


def test_free_length_answers_follow_the_trace_output_lengths():
    """Generated requests that ask for no length get answers shaped like conv's.

    The generator's ``max_tokens`` are caps, not calibrated lengths (see test_workload_caps):
    the simulated Claude sizes the answers. Tasks that ask for no length (press releases,
    legal and health copy) draw from the conv trace's output quantiles; measured over the 175
    distinct such prompts of seeds 1-3 (sonnet): median 120, p95 451 (trace: 129, 451). The
    other tasks ask for a length (captions, subject lines, labels, "300-word"), so ContentFlow's
    answers are shorter than a chat service's overall: text median 58-96 by seed.
    """
    from cfopt.providers.lengths import output_length, requested_length
    prompts = {r.prompt for seed in (1, 2, 3) for r in generate(5000, seed=seed)
               if r.type == "text" and requested_length(r.prompt)[0] == "free"}
    assert len(prompts) > 100
    answers = [output_length(0, "claude-sonnet-5-5", None, p) for p in prompts]
    assert statistics.median(answers) == pytest.approx(CONV["output_median"], rel=0.2)
    assert _quantile(answers, 0.95) == pytest.approx(CONV["output_p95"], rel=0.15)


def test_minute_rates_reproduce_the_conv_variation():
    rates = arrivals.minute_rates(random.Random(1), 20_000)
    mean = statistics.fmean(rates)
    assert mean == pytest.approx(1.0, abs=0.02)
    assert statistics.pstdev(rates) / mean == pytest.approx(CONV["rate_cv"], rel=0.08)
    m = [r - mean for r in rates]
    lag1 = sum(a * b for a, b in zip(m, m[1:])) / sum(a * a for a in m)
    assert lag1 == pytest.approx(CONV["minute_autocorr"], abs=0.03)


def test_bursts_have_the_code_trace_shape():
    rng = random.Random(2)
    sizes = arrivals.burst_sizes(rng, 50_000)
    assert sum(sizes) == 50_000 and min(sizes) >= 2 and max(sizes) <= arrivals.BURST_MAX
    assert statistics.median(sizes) == pytest.approx(CODE["burst_median"], abs=1)
    assert _quantile(sizes, 0.9) == pytest.approx(CODE["burst_p90"], rel=0.15)
    bursts = arrivals.burst_times(rng, sizes[:2000], [1.0] * 600, 36_000.0)
    gaps = [b - a for times in bursts for a, b in zip(times, times[1:])]
    assert statistics.fmean(gaps) == pytest.approx(CODE["burst_gap_mean_s"], rel=0.08)


def test_a_generated_hour_is_bursty_like_the_trace():
    for seed in (1, 2):
        t = [r.t for r in generate(5000, seed=seed)]
        gaps = [b - a for a, b in zip(t, t[1:])]
        assert statistics.pstdev(gaps) / statistics.fmean(gaps) > CONV["interarrival_cv"]
        minutes = [0] * 60
        seconds = [0] * 3600
        for x in t:
            minutes[int(x // 60)] += 1
            seconds[int(x)] += 1
        mean = statistics.fmean(minutes)
        # conv's rate variation plus Poisson noise at this rate, plus the bulk bursts
        expected_cv = math.sqrt(CONV["rate_cv"] ** 2 + 1 / mean)
        assert expected_cv * 0.8 < statistics.pstdev(minutes) / mean < expected_cv * 1.6
        assert CONV["peak_to_mean_minute"] * 0.9 < max(minutes) / mean < 2.5
        assert max(seconds) >= 10 * 5000 / 3600  # bursts: a peak second far above the mean


def test_generating_reads_no_file(monkeypatch):
    """The user's clone has no trace: generation must not open any file."""
    import builtins
    import io

    def refuse(*args, **kwargs):
        raise AssertionError(f"generate() opened a file: {args[:1]}")
    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(io, "open", refuse)
    monkeypatch.setattr(Path, "open", refuse)
    assert len(generate(300, seed=9)) == 300


PROMPTS = TRACE.parent / "prompts"


@pytest.mark.skipif(not (PROMPTS / "PartiPrompts.tsv").exists(),
                    reason="reference prompt sets not available here")
def test_no_prompt_text_is_copied_from_the_reference_prompt_sets():
    """No run of five words in generated prompts appears in the public prompt sets."""
    import csv
    import re

    def shingles(text: str, k: int = 5) -> set[str]:
        words = re.findall(r"[a-z0-9']+", text.lower())
        return {" ".join(words[i:i + k]) for i in range(len(words) - k + 1)}

    reference: set[str] = set()
    with open(PROMPTS / "PartiPrompts.tsv", encoding="utf-8", newline="") as f:
        for row in csv.reader(f, delimiter="\t"):
            reference |= shingles(row[0])
    for path in PROMPTS.glob("awesome_chatgpt_prompts_*.csv"):
        with open(path, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                reference |= shingles(row["prompt"])
    assert len(reference) > 10_000
    generated: set[str] = set()
    for r in generate(5000, seed=1):
        generated |= shingles(r.prompt)
    assert not reference & generated, sorted(reference & generated)[:10]
