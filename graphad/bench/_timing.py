"""The one timing discipline of the suite.

Every point of every workload is measured by `measure(cases)`:

1. each case is called once (warm-up: first touches of memory, jit compilation), then
   calibrated: the number of calls that makes one batch last about `budget / rounds` seconds;
2. `rounds` rounds follow; in each round every case times one batch, the cases in a rotated
   order (so that none always runs first after a burst of load on this shared machine);
3. a case's time is the median of its per-call times over the rounds, its spread the 25th and
   75th percentiles;
4. a ratio a / b is computed round by round (both batches of one round saw the same machine) and
   reported as the median and spread of those per-round ratios.

`pinned(threads)` is the context in which a whole run happens: BLAS pools limited through
threadpoolctl, PyTorch told the same thread count, and the process restricted to `threads` CPUs
so that a framework's own pool (XLA's) cannot spread beyond them.
"""
import contextlib
import os
import time

import numpy as np

__all__ = ["Timing", "measure", "ratio", "pinned", "fmt_time", "fmt_ratio", "once"]


class Timing:
    """Per-call seconds of one case, one value per round."""

    __slots__ = ("samples", "number")

    def __init__(self, samples, number):
        self.samples = np.asarray(samples, dtype=float)
        self.number = number

    @property
    def median(self):
        return float(np.median(self.samples))

    @property
    def spread(self):
        lo, hi = np.percentile(self.samples, [25, 75])
        return float(lo), float(hi)

    def to_json(self):
        lo, hi = self.spread
        return {"median": self.median, "p25": lo, "p75": hi, "min": float(self.samples.min()),
                "max": float(self.samples.max()), "rounds": len(self.samples),
                "calls_per_round": self.number}


def _calibrate(fn, target):
    """Calls per batch so that one batch lasts about `target` seconds (at least one call)."""
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        dt = time.perf_counter() - t0
        if dt >= target or number >= 1 << 16:
            return number
        number = min(1 << 16, max(2 * number, int(1.2 * number * target / max(dt, 1e-9))))


def measure(cases, budget=0.1, rounds=5, warmup=1):
    """Time every callable in `cases` (name -> fn) in interleaved rounds; name -> Timing.

    `budget` is roughly the seconds each case spends in its timed rounds."""
    names = list(cases)
    for name in names:
        for _ in range(warmup):
            cases[name]()
    target = budget / rounds
    numbers = {name: _calibrate(cases[name], target) for name in names}
    samples = {name: [] for name in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            fn, number = cases[name], numbers[name]
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            samples[name].append((time.perf_counter() - t0) / number)
    return {name: Timing(samples[name], numbers[name]) for name in names}


def once(fn):
    """Seconds of one call (for first calls: compilation)."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def ratio(a, b):
    """Median and (p25, p75) of the per-round ratios a / b of two Timings of one measure()."""
    r = a.samples / b.samples
    lo, hi = np.percentile(r, [25, 75])
    return float(np.median(r)), (float(lo), float(hi))


@contextlib.contextmanager
def pinned(threads=1):
    """BLAS, PyTorch and the process itself limited to `threads` threads / CPUs."""
    from threadpoolctl import threadpool_limits
    saved_aff = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    torch = _loaded("torch")
    saved_torch = torch.get_num_threads() if torch is not None else None
    try:
        if saved_aff and threads < len(saved_aff):
            os.sched_setaffinity(0, set(sorted(saved_aff)[-threads:]))
        if torch is not None:
            torch.set_num_threads(threads)
        with threadpool_limits(threads):
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(saved_torch)
        if saved_aff:
            os.sched_setaffinity(0, saved_aff)


def _loaded(name):
    import sys
    return sys.modules.get(name)


def fmt_time(t):
    """A time in s, ms or us with three significant digits; 'n/a' for None."""
    if t is None:
        return "n/a"
    a = abs(t)
    if a < 1e-3:
        return f"{t * 1e6:.3g} us"
    if a < 1:
        return f"{t * 1e3:.3g} ms"
    return f"{t:.3g} s"


def fmt_ratio(r):
    """'1.23 (1.10-1.31)' from ratio()'s (median, (p25, p75)); 'n/a' for None."""
    if r is None:
        return "n/a"
    med, (lo, hi) = r
    return f"{med:.2f} ({lo:.2f}-{hi:.2f})"
