"""The control plane's loop probes (knet.api.looplag): the lag probe keeps
samples and percentiles; the step timer names the task whose step held the loop."""

from __future__ import annotations

import time

import trio

from knet.api.looplag import LagProbe, StepTimer


def test_the_step_timer_names_the_task_that_held_the_loop_and_the_probe_saw_it():
    timer = StepTimer()
    probe = LagProbe(period=0.001)

    async def hog():
        await trio.sleep(0.01)
        end = time.perf_counter() + 0.05
        while time.perf_counter() < end:  # one step that keeps the loop
            pass

    async def main():
        trio.lowlevel.add_instrument(timer)
        async with trio.open_nursery() as n:
            n.start_soon(probe.run)
            n.start_soon(hog, name="the hog")
            await trio.sleep(0.1)
            n.cancel_scope.cancel()

    trio.run(main)
    steps = timer.stats()
    assert "the hog" in steps
    lag = probe.stats()
    assert lag["samples"] > 0 and lag["max_ms"] >= lag["p50_ms"]
    assert lag["max_ms"] >= steps["the hog"]["longest_ms"][0] / 2  # the probe waited behind the hog
