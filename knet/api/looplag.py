"""How long the API server's event loop goes without a turn: a probe, and
(opt-in) the task steps that held it.

Everything in the control plane shares one trio thread: a `get` waits for
whatever step is running when it arrives (a controller's slice of keys, a
big watch send, a request handler). Two ways to see those waits:

- `LagProbe`: a task that asks to wake every `period` seconds and records how
  late it woke: the lag any request saw at that moment. Cheap enough to run
  always; its percentiles are in /knet/v1/progress's stats.
- `StepTimer` (set KNET_LOOP_STEPS=1 in the control plane's environment): a
  trio Instrument timing every task step, keeping the longest ones per task
  name: which code held the loop, which the probe cannot say.
"""

from __future__ import annotations

import collections
import time

import trio

PERIOD = 0.01
KEEP = 4000  # the newest lag samples kept (40 s at the period)


class LagProbe:
    def __init__(self, period: float = PERIOD) -> None:
        self.period = period
        self.samples: collections.deque[float] = collections.deque(maxlen=KEEP)
        self.worst = 0.0

    async def run(self) -> None:
        while True:
            start = time.perf_counter()
            await trio.sleep(self.period)
            lag = time.perf_counter() - start - self.period
            self.samples.append(lag)
            if lag > self.worst:
                self.worst = lag

    def stats(self) -> dict:
        xs = sorted(self.samples)
        if not xs:
            return {}

        def pct(q: float) -> float:
            return round(1000 * xs[min(len(xs) - 1, int(q * len(xs)))], 2)
        return {"samples": len(xs), "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": pct(1.0),
                "worst_ms": round(1000 * self.worst, 2)}


class StepTimer(trio.abc.Instrument):
    """The longest task steps, by task name, and their total."""

    def __init__(self, keep: int = 5) -> None:
        self.keep = keep
        self._start = time.perf_counter()
        self._cpu = time.thread_time()
        self.longest: dict[str, list[float]] = {}
        # The same by the thread's CPU time: on a loaded machine a step's wall time includes
        # the time the kernel gave other processes; its CPU time is what it holds on a quiet one.
        self.longest_cpu: dict[str, list[float]] = {}
        self.total: collections.Counter = collections.Counter()

    def before_task_step(self, task) -> None:
        self._start = time.perf_counter()
        self._cpu = time.thread_time()

    def after_task_step(self, task) -> None:
        took = time.perf_counter() - self._start
        cpu = time.thread_time() - self._cpu
        name = task.name
        self.total[name] += took
        for longest, t in ((self.longest, took), (self.longest_cpu, cpu)):
            top = longest.setdefault(name, [])
            if len(top) < self.keep or t > top[-1]:
                top.append(t)
                top.sort(reverse=True)
                del top[self.keep:]

    def stats(self) -> dict:
        worst = sorted(self.longest_cpu.items(), key=lambda kv: kv[1][0], reverse=True)[:15]
        return {name: {"longest_cpu_ms": [round(1000 * t, 1) for t in top],
                       "longest_ms": [round(1000 * t, 1) for t in self.longest[name]],
                       "total_s": round(self.total[name], 3)}
                for name, top in worst}
