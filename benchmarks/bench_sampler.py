"""Noise sampler throughput: pets.dp.fast (vectorised, os.urandom) vs OpenDP's exact
per-cell sampler, single-threaded, same process.

    pytest benchmarks/bench_sampler.py --benchmark-only
    python benchmarks/bench_sampler.py          # plain table, no pytest-benchmark

Not collected by the default test run (see conftest.py). Workloads:

* ``fast-laplace`` at scales 1, 10, 1e3, 1e6: ``discrete_laplace(scale, 10**7)``;
* ``fast-gaussian`` at σ 1, 30, 1e3: ``discrete_gaussian(sigma, 10**7)``;
* ``opendp-laplace`` / ``opendp-gaussian`` at the same scales: OpenDP ``make_laplace`` /
  ``make_gaussian`` on an i64 vector of 10**5 zeros, one call (the input list is built
  outside the timing).

The terminal summary prints draws per second and, per scale, the ratio to OpenDP's
per-cell rate at the same scale.
Target (issue 5): ≥ 10 million discrete-Laplace draws/s per core, ≥ 300× OpenDP.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pets.dp import fast

pytestmark = pytest.mark.benchmark

FAST_N = 10_000_000
OPENDP_N = 100_000
LAPLACE_SCALES = (1.0, 10.0, 1e3, 1e6)
GAUSS_SIGMAS = (1.0, 30.0, 1e3)

_rates: dict[tuple[str, str, float], float] = {}


def _opendp(kind: str, scale: float) -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    dom = dp.vector_domain(dp.atom_domain(T="i64"))
    if kind == "laplace":
        return dp.m.make_laplace(dom, dp.l1_distance(T="i64"), scale)
    return dp.m.make_gaussian(dom, dp.l2_distance(T="i64"), scale)


def _median(benchmark: Any) -> float | None:
    inner = getattr(getattr(benchmark, "stats", None), "stats", None)
    return inner.median if inner is not None and getattr(inner, "data", None) else None


@pytest.mark.parametrize("scale", LAPLACE_SCALES, ids=lambda s: f"scale={s:g}")
def test_fast_laplace(benchmark: Any, scale: float) -> None:
    fast.discrete_laplace(scale, 10)  # build the tables outside the timing
    benchmark.group = "discrete Laplace"
    out = benchmark.pedantic(fast.discrete_laplace, args=(scale, FAST_N), rounds=5, warmup_rounds=1)
    assert out.size == FAST_N
    if (m := _median(benchmark)) is not None:
        _rates[("fast", "laplace", scale)] = FAST_N / m


@pytest.mark.parametrize("sigma", GAUSS_SIGMAS, ids=lambda s: f"sigma={s:g}")
def test_fast_gaussian(benchmark: Any, sigma: float) -> None:
    fast.discrete_gaussian(sigma, 10)
    benchmark.group = "discrete Gaussian"
    out = benchmark.pedantic(fast.discrete_gaussian, args=(sigma, FAST_N), rounds=3, warmup_rounds=1)
    assert out.size == FAST_N
    if (m := _median(benchmark)) is not None:
        _rates[("fast", "gaussian", sigma)] = FAST_N / m


OPENDP_CASES = [("laplace", s) for s in LAPLACE_SCALES] + [("gaussian", s) for s in GAUSS_SIGMAS]


@pytest.mark.parametrize("kind,scale", OPENDP_CASES, ids=[f"{k}-{s:g}" for k, s in OPENDP_CASES])
def test_opendp(benchmark: Any, kind: str, scale: float) -> None:
    meas = _opendp(kind, scale)
    zeros = [0] * OPENDP_N
    benchmark.group = f"discrete {kind.capitalize()}"
    out = benchmark.pedantic(meas, args=(zeros,), rounds=3, warmup_rounds=0)
    assert len(out) == OPENDP_N
    if (m := _median(benchmark)) is not None:
        _rates[("opendp", kind, scale)] = OPENDP_N / m


def pytest_terminal_summary_lines() -> list[str]:
    lines = [f"{'':<10} {'scale/sigma':>11} {'pets.dp.fast':>16} {'OpenDP':>14} {'ratio':>8}"]
    for kind, sc in OPENDP_CASES:
        ours, theirs = _rates.get(("fast", kind, sc)), _rates.get(("opendp", kind, sc))
        f = f"{ours / 1e6:8.2f} M/s" if ours else "-"
        o = f"{1e9 / theirs:8.0f} ns/cell" if theirs else "-"
        r = f"{ours / theirs:7.0f}x" if ours and theirs else "-"
        lines.append(f"{kind:<10} {sc:>11g} {f:>16} {o:>14} {r:>8}")
    return lines


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> Any:
    yield
    if not _rates:
        return
    capman = request.config.pluginmanager.get_plugin("capturemanager")
    lines = ["", "noise sampler throughput (medians, single thread):"]
    lines += ["  " + line for line in pytest_terminal_summary_lines()]
    if capman is not None:
        with capman.global_and_fixture_disabled():
            print("\n".join(lines))
    else:
        print("\n".join(lines))


def main() -> None:
    """Plain run: best of 5 per workload (fast: rate of the fastest round), interleaved."""
    best: dict[tuple, float] = {}
    work: dict[tuple, tuple[Any, int]] = {}
    for s in LAPLACE_SCALES:
        fast.discrete_laplace(s, 10)
        work[("fast", "laplace", s)] = ((lambda s=s: fast.discrete_laplace(s, FAST_N)), FAST_N)
    for s in GAUSS_SIGMAS:
        fast.discrete_gaussian(s, 10)
        work[("fast", "gaussian", s)] = ((lambda s=s: fast.discrete_gaussian(s, FAST_N)), FAST_N)
    zeros = [0] * OPENDP_N
    for kind, sc in OPENDP_CASES:
        meas = _opendp(kind, sc)
        work[("opendp", kind, sc)] = ((lambda m=meas: m(zeros)), OPENDP_N)
    for _ in range(5):
        for name, (fn, n) in work.items():
            t0 = time.perf_counter()
            fn()
            best[name] = max(best.get(name, 0.0), n / (time.perf_counter() - t0))
    _rates.clear()
    _rates.update(best)
    print(f"noise sampler throughput, best of 5, single thread (fast: {FAST_N:,} draws; "
          f"OpenDP: {OPENDP_N:,} cells, one call)")
    for line in pytest_terminal_summary_lines():
        print("  " + line)


if __name__ == "__main__":
    main()
