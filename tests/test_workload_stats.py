"""Workload statistics: the arithmetic on a hand-made file, and the CLI that prints it."""
from __future__ import annotations

import json

import pytest

from cfopt.cli import main
from cfopt.workload import Request, load, workload_stats, write_jsonl


@pytest.fixture
def hand_made(tmp_path):
    """Ten requests, worked out by hand: 7 distinct prompts, 5 distinct intents."""
    rows = [
        # t, type, prompt, intent, quality, priority, user, task
        (0.0, "text", "Write a poem", "poem", "standard", "high", "u1", "poem"),
        (10.0, "text", "Write a poem", "poem", "standard", "medium", "u1", "poem"),
        (20.0, "text", "please write a poem", "poem", "standard", "medium", "u2", "poem"),
        (59.999, "text", "Write a poem about dogs", "poem-dogs", "low", "low", "u2", "poem"),
        (60.0, "image", "A red barn", "barn", "standard", "medium", "u3", "hero_image"),
        (61.0, "image", "a red barn", "barn", "standard", "medium", "u3", "hero_image"),
        (62.0, "image", "A red barn", "barn", "standard", "medium", "u1", "hero_image"),
        (63.0, "analysis", "Rate: great!", "rate", "critical", "high", "u4", None),
        (130.0, "photo", "red barn", "photo-barn", "standard", "low", None, "stock_photo"),
        (180.0, "photo", "red barn", "photo-barn", "standard", "low", None, "stock_photo"),
    ]
    reqs = [Request(t=t, type=ty, prompt=p, intent=i, quality=q, priority=pr, user=u, task=k)
            for t, ty, p, i, q, pr, u, k in rows]
    path = tmp_path / "hand.jsonl"
    write_jsonl(reqs, path)
    return path


def test_stats_arithmetic_on_a_hand_made_file(hand_made):
    s = workload_stats(load(hand_made))
    assert s.requests == 10
    assert s.distinct_prompts == 7           # "a red barn" and "please write a poem" are their own
    assert s.distinct_intents == 5
    assert s.exact_repeat_ceiling == pytest.approx(1 - 7 / 10)
    assert s.hit_rate_ceiling == pytest.approx(1 - 5 / 10)
    assert s.by_type == {"analysis": 1, "image": 3, "photo": 2, "text": 4}
    assert s.by_quality == {"critical": 1, "low": 1, "standard": 8}
    assert s.by_priority == {"high": 2, "low": 3, "medium": 5}
    assert s.by_task == {"(none)": 1, "hero_image": 3, "poem": 4, "stock_photo": 2}
    assert s.users == 4
    assert s.duration_s == 180.0
    assert s.mean_per_min == pytest.approx(10 * 60 / 180, abs=0.01)
    assert s.peak_minute_requests == 4       # minute [0, 60): t = 0, 10, 20, 59.999; [60, 120): 4


def test_without_intent_labels_the_ceiling_is_unknown():
    reqs = [Request(t=float(i), type="text", prompt=p) for i, p in enumerate("aab")]
    s = workload_stats(reqs)
    assert s.distinct_intents is None and s.hit_rate_ceiling is None
    assert s.exact_repeat_ceiling == pytest.approx(1 / 3, abs=1e-4) and s.users is None
    assert "n/a (no intent labels)" in s.format()


def test_unlabelled_requests_in_a_labelled_file_count_as_their_own_intent():
    reqs = [Request(t=0, type="text", prompt="a", intent="x"), Request(t=1, type="text", prompt="a"),
            Request(t=2, type="text", prompt="b", intent="x")]
    assert workload_stats(reqs).distinct_intents == 2


def test_empty_workload():
    s = workload_stats([])
    assert (s.requests, s.distinct_prompts, s.peak_minute_requests, s.mean_per_min) == (0, 0, 0, None)


def test_as_dict_is_json_ready_and_format_is_a_table(hand_made):
    s = workload_stats(load(hand_made))
    d = json.loads(json.dumps(s.as_dict()))
    assert d["hit_rate_ceiling"] == 0.5 and d["by_type"]["image"] == 3
    text = s.format()
    assert "hit-rate ceiling      50.0%" in text and "exact-repeat ceiling  30.0%" in text
    assert "  image                       3   30.0%" in text.splitlines()


def test_cli_prints_the_ceilings(hand_made, capsys):
    assert main(["workload", "stats", str(hand_made)]) == 0
    out = capsys.readouterr().out
    assert "hit-rate ceiling" in out and "50.0%" in out and "30.0%" in out
    assert main(["workload", "stats", str(hand_made), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["distinct_intents"] == 5


def test_cli_names_a_bad_line_and_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"t": 0, "type": "text", "prompt": "ok"}\n{"t": 1, "type": "text"}\n')
    assert main(["workload", "stats", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2: missing required field 'prompt'" in err and "(field 'prompt')" in err
