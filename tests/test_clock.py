"""The clocks: virtual time that moves only when told, asyncio on virtual time, and real time."""
from __future__ import annotations

import asyncio

import pytest

from cfopt.clock import Clock, RealClock, VirtualClock
from cfopt.errors import ConfigError


def test_virtual_clock_moves_only_when_told():
    clock = VirtualClock(start=10.0)
    assert clock.now() == 10.0 and clock() == 10.0
    clock.advance(2.5)
    clock.sleep(1.5)
    assert clock.now() == 14.0
    clock.sleep(-3)            # a negative sleep is no sleep
    assert clock.now() == 14.0
    clock.advance_to(12.0)     # already past: left alone
    assert clock.now() == 14.0
    clock.advance_to(20.0)
    assert clock.now() == 20.0
    assert repr(clock) == "VirtualClock(now=20.000)"


def test_virtual_clock_refuses_to_go_backwards():
    with pytest.raises(ConfigError, match="backwards"):
        VirtualClock().advance(-1)


def test_both_clocks_satisfy_the_protocol():
    assert isinstance(VirtualClock(), Clock) and isinstance(RealClock(), Clock)


def test_run_overlaps_concurrent_waits():
    clock = VirtualClock()

    async def main():
        await asyncio.gather(*(clock.asleep(s) for s in (5, 30, 12)))
        return clock.now()
    assert clock.run(main()) == pytest.approx(30.0)


def test_run_adds_up_sequential_waits():
    clock = VirtualClock()

    async def main():
        for s in (5, 30, 12):
            await asyncio.sleep(s)  # plain asyncio.sleep runs on virtual time too
        return clock.now()
    assert clock.run(main()) == pytest.approx(47.0)


def test_an_hour_of_virtual_time_costs_no_real_time():
    import time
    clock = VirtualClock()
    t0 = time.perf_counter()
    clock.run(asyncio.sleep(3600))
    assert clock.now() == pytest.approx(3600.0)
    assert time.perf_counter() - t0 < 1.0  # generous: it is a jump, not a wait


def test_wait_for_times_out_in_virtual_time():
    clock = VirtualClock()

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(clock.asleep(100), timeout=5)
        return clock.now()
    assert clock.run(main()) == pytest.approx(5.0)


def test_wait_for_passes_when_the_work_is_quicker():
    clock = VirtualClock()

    async def work():
        await clock.asleep(3)
        return "done"

    async def main():
        return await asyncio.wait_for(work(), timeout=5), clock.now()
    assert clock.run(main()) == ("done", pytest.approx(3.0))


def test_asleep_outside_run_is_sequential():
    clock = VirtualClock()

    async def main():
        await asyncio.gather(clock.asleep(10), clock.asleep(20))
    asyncio.run(main())  # a normal loop: virtual time jumps per wait, no overlap
    assert clock.now() == pytest.approx(30.0)


def test_run_works_inside_a_running_loop_like_a_notebook():
    clock = VirtualClock()

    async def inner():
        await asyncio.gather(clock.asleep(4), clock.asleep(9))
        return clock.now()

    async def notebook_cell():
        return clock.run(inner())  # a notebook already runs a loop in this thread
    assert asyncio.run(notebook_cell()) == pytest.approx(9.0)


def test_one_run_at_a_time_per_clock():
    clock = VirtualClock()

    async def nested():
        coro = asyncio.sleep(1)
        try:
            return clock._run_here(coro)
        finally:
            coro.close()  # never started: close it so no "never awaited" warning
    with pytest.raises(ConfigError, match="one run at a time"):
        clock.run(nested())


@pytest.mark.parametrize("scale", [0, -1, -0.5])
def test_real_clock_rejects_a_non_positive_time_scale(scale):
    with pytest.raises(ConfigError, match="time_scale"):
        RealClock(time_scale=scale)


def test_real_clock_scales_time():
    clock = RealClock(time_scale=1000)
    assert repr(clock) == "RealClock(time_scale=1000)"
    before = clock.now()
    clock.sleep(2.0)              # two simulated seconds: about 2 ms of wall time
    assert clock.now() - before >= 2.0 - 1e-6

    async def main():
        t = clock.now()
        await clock.asleep(1.0)
        return clock.now() - t
    assert asyncio.run(main()) >= 1.0 - 1e-6
