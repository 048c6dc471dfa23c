"""Replays that cannot hang: the virtual clock jumps over idle time; scratch folders never stay.

Issue 17: a workload line with ``t`` = 1e10 passed ``workload stats`` and ``cfopt report`` then
ran until killed (the loader now refuses it: tests/test_workload_format.py); and a killed run
left its ``/dev/shm/cfopt-replay-*`` folder behind.
"""
from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from hypothesis import given, settings, strategies as st

from cfopt import clock as clock_module
from cfopt.clock import VirtualClock
from cfopt.pipeline import Pipeline, PipelineConfig
from cfopt.scratch import scratch_dir, sweep_orphans
from cfopt.workload import MAX_T_S, load


class _Steps:
    """Counts how often the virtual loop went idle and moved the clock."""

    def __init__(self, monkeypatch):
        self.n = 0
        real = clock_module._VirtualSelector.select

        def counted(selector, timeout=None):
            if timeout is not None and timeout > 0:
                self.n += 1
            return real(selector, timeout)
        monkeypatch.setattr(clock_module._VirtualSelector, "select", counted)


@settings(max_examples=60, deadline=None)
@given(far=st.floats(min_value=1.0, max_value=1e307, allow_nan=False, allow_infinity=False))
def test_a_far_timer_is_one_step_however_far(far):
    clock = VirtualClock()

    async def main():
        await asyncio.gather(asyncio.sleep(far), asyncio.sleep(far / 3), clock.asleep(1.0))
        return clock.now()
    ended = clock.run(main())
    # asyncio runs a timer once now is within its clock resolution of it (1 ns here, or two
    # float steps far from zero), and adding the delay to the start may round by a float step:
    # the end lands within that of the timer. (How many jumps it took: the test below.)
    assert abs(ended - far) <= max(1e-9, 2 * math.ulp(far))


def test_idle_time_costs_no_work_per_simulated_second(monkeypatch):
    """The same 200 requests over 10 minutes and over a year: the same number of clock jumps."""
    steps = _Steps(monkeypatch)
    requests = load("datasets/tiny.jsonl")
    scale = MAX_T_S / requests[-1].t
    counts, times = [], []
    for factor in (1.0, scale):
        steps.n = 0
        stretched = [replace(r, t=min(MAX_T_S, r.t * factor)) for r in requests]
        t0 = time.perf_counter()
        Pipeline(PipelineConfig(), seed=1).run(stretched)
        times.append(time.perf_counter() - t0)
        counts.append(steps.n)
    print(f"\n200 requests over {requests[-1].t:.0f} s: {counts[0]} clock jumps, "
          f"{times[0] * 1000:.0f} ms; over {MAX_T_S:,.0f} s: {counts[1]} jumps, {times[1] * 1000:.0f} ms")
    # A year holds 53,000 times the ten minutes; the steps may differ only by what expires.
    assert counts[1] <= 2 * counts[0]


def test_a_timer_due_exactly_now_fires_far_from_zero():
    """Past ~1e7 s a nanosecond is below a float's step; a due timer must still run."""
    for start in (1e7, 3e7, MAX_T_S, 1e12):   # (far beyond, 1 ms is below a float step)
        clock = VirtualClock(start)
        fired = []

        async def main():
            loop = asyncio.get_running_loop()
            loop.call_at(loop.time(), fired.append, 1)
            loop.call_later(0.001, fired.append, 2)
            await asyncio.sleep(0.002)
        clock.run(asyncio.wait_for(main(), timeout=10))
        assert fired == [1, 2], start


# -- scratch folders --------------------------------------------------------------------------
_REPLAY = r"""
import sys
from cfopt.pipeline import Pipeline, PipelineConfig
from cfopt.workload import generate
started = []
def progress(done, total):
    if not started:
        started.append(1)
        print("started", flush=True)
        import time; time.sleep(60)      # hold the replay open: the test signals it now
Pipeline(PipelineConfig(), cache_dir=sys.argv[1]).run(generate(50, seed=1), progress)
"""


def _replay_until_started(where):
    proc = subprocess.Popen([sys.executable, "-c", _REPLAY, str(where)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout.readline().strip() == "started"
    folders = [p for p in os.listdir(where) if p.startswith(f"cfopt-replay-{proc.pid}-")]
    assert len(folders) == 1 and os.listdir(where / folders[0])   # the disk cache is in it
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_replay_ended_by_a_signal_removes_its_folder(tmp_path, sig):
    proc = _replay_until_started(tmp_path)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert os.listdir(tmp_path) == []
    if sig != signal.SIGINT:   # the process still ends by its signal (exit status unchanged)
        assert proc.returncode == -sig


def test_a_killed_replays_folder_goes_at_the_next_run(tmp_path):
    proc = _replay_until_started(tmp_path)
    proc.kill()                        # SIGKILL: nothing runs in the process
    proc.wait(timeout=30)
    left = os.listdir(tmp_path)
    assert len(left) == 1
    run = Pipeline(PipelineConfig(), cache_dir=str(tmp_path)).run(load("datasets/tiny.jsonl")[:5])
    assert len(run.outcomes) == 5 and os.listdir(tmp_path) == []


def test_scratch_folders_of_live_processes_and_other_prefixes_stay(tmp_path):
    mine = tmp_path / f"cfopt-replay-{os.getppid()}-abc"     # the parent process is alive
    other = tmp_path / "cfopt-other-1-abc"
    mine.mkdir()
    other.mkdir()
    with scratch_dir("cfopt-replay-", dir=tmp_path) as path:
        assert os.path.isdir(path)
    assert sweep_orphans("cfopt-replay-", tmp_path) == []
    assert sorted(os.listdir(tmp_path)) == sorted([mine.name, other.name])
    with pytest.raises(RuntimeError):
        with scratch_dir("cfopt-replay-", dir=tmp_path) as path:
            raise RuntimeError("boom")
    assert not os.path.exists(path)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL   # handlers put back
