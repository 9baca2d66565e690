"""k-anonymity under pytest-benchmark: pets' optimal full-domain search vs ANJANA on the
Adult benchmark setting, and pets' Mondrian on 1M generated rows and on Adult.

    pytest benchmarks/bench_anon.py --benchmark-only

Not collected by the default test run (see conftest.py: ``bench_*.py`` names and the
``benchmark`` marker). The calls, data and checks are those of ``compare_anon.py``
(imported from there):

* ``test_optimal[k-s]`` — ``pets.anon.anonymize(adult, all nine QIs, hierarchies, k=k,
  max_suppression=s)``, k ∈ {2, 5, 10, 50}, s ∈ {0, 5%}; 15 rounds (``--bench-rounds N``)
  after a warm-up round; checks the result with pyCANON and, where ARX's optimum is
  published (notes), that the Loss is that optimum.
* ``test_anjana[k-s]`` — ``anjana.anonymity.k_anonymity(adult, [], qis, k, 100·s,
  hierarchies)``; 3 rounds (env ``PETS_BENCH_ANJANA_ROUNDS``; 0 skips), no warm-up
  round (the fixture has imported and run ANJANA once); pyCANON check, and its Loss
  measured with ``pets.anon.metrics.loss`` from the levels recovered from its output.
* ``test_mondrian_synth[k]`` — ``anonymize(..., algorithm="mondrian")`` on
  ``compare_anon.synthetic()`` (1M rows × 6 ordered QIs; env ``PETS_BENCH_ANON_ROWS``),
  k = 5, 10.
* ``test_mondrian_adult[k]`` — Mondrian on Adult, k = 5, 10.

Before each round (untimed) the run waits, up to 3 s, until other processes use less
than a tenth of a core (``--bench-no-wait`` to skip). These runs are sequential per
benchmark; ``compare_anon.py`` interleaves the settings and repeats disturbed calls, so
its figures are the ones to quote. The terminal summary lists the medians side by side.
"""

from __future__ import annotations

import os
from typing import Any

import compare_anon as ca
import pytest

pytestmark = pytest.mark.benchmark

SETTINGS = [(k, s) for k in ca.KS for s in ca.SUPPS]
IDS = [f"k{k}-supp{round(s * 100)}" for k, s in SETTINGS]
ANJANA_ROUNDS = int(os.environ.get("PETS_BENCH_ANJANA_ROUNDS", "3"))
SYNTH_ROWS = int(os.environ.get("PETS_BENCH_ANON_ROWS", str(ca.SYNTH_ROWS)).replace("_", ""))


class _Summary:
    """Collects medians and results; prints them side by side at the end of the run."""

    def __init__(self) -> None:
        self.med: dict[str, float] = {}
        self.info: dict[str, dict[str, Any]] = {}

    def record(self, key: str, benchmark: Any, **info: Any) -> None:
        inner = getattr(getattr(benchmark, "stats", None), "stats", None)
        if inner is not None and getattr(inner, "data", None):
            self.med[key] = inner.median
        self.info[key] = info

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.med:
            return
        tr = terminalreporter
        tr.section("pets k-anonymity vs ANJANA (medians; Loss = ARX's Loss metric)")
        tr.write_line(f"{'k':>3} {'supp':>5} {'pets':>9} {'target':>8} {'pets Loss':>9} "
                      f"{'ANJANA':>9} {'ANJ Loss':>9} {'ratio':>7}  pets transformation")
        for (k, s), i in zip(SETTINGS, IDS):
            p, a = self.med.get(f"pets {i}"), self.med.get(f"anjana {i}")
            pi, ai = self.info.get(f"pets {i}", {}), self.info.get(f"anjana {i}", {})
            if p is None and a is None:
                continue
            tgt = ca.TARGET_S[s]
            tr.write_line(
                f"{k:>3} {s:>5.0%} "
                + (f"{ca.fmt_s(p):>9} {f'<= {tgt:g}s ' + ('ok' if p <= tgt else 'NO'):>8} "
                   f"{pi.get('loss', float('nan')):>9.4f} " if p is not None else f"{'-':>9} {'':>8} {'':>9} ")
                + (f"{ca.fmt_s(a):>9} {ai.get('loss', float('nan')):>9.4f} "
                   f"{(a / p if p else float('nan')):>6.0f}x" if a is not None else f"{'-':>9} {'-':>9} {'-':>7}")
                + f"  {pi.get('levels', '')}")
        mrows = [r for r in ("mondrian-synth k5", "mondrian-synth k10", "mondrian-adult k5",
                            "mondrian-adult k10") if r in self.med]
        if mrows:
            tr.write_line("")
            for r in mrows:
                m = self.info[r]
                tr.write_line(f"{r:<20} {ca.fmt_s(self.med[r]):>9}  rows {m['rows']:,}  classes "
                              f"{m['classes']:,}  NCP {m['ncp']:.4f}  pyCANON k {m['pycanon_k']}")
        tr.write_line(f"targets (issue): optimal run <= {ca.TARGET_S[0.0]:g} s without suppression, "
                      f"<= {ca.TARGET_S[0.05]:g} s with 5%; Mondrian on 1M x 6 QIs <= "
                      f"{ca.MONDRIAN_TARGET_S:g} s")


@pytest.fixture(scope="session")
def summary(request: pytest.FixtureRequest) -> _Summary:
    pm = request.config.pluginmanager
    plugin = pm.get_plugin("pets-anon-summary")
    if plugin is None:
        plugin = _Summary()
        pm.register(plugin, "pets-anon-summary")
    return plugin  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def adult() -> ca.Adult:
    return ca.load_adult()


@pytest.fixture(scope="session")
def anjana_warm(adult: ca.Adult) -> None:
    ca.run_anjana(adult, 2, 0.0)  # imports and first calls outside the timings


@pytest.fixture(scope="session")
def synth() -> tuple[Any, list[str]]:
    df = ca.synthetic(SYNTH_ROWS)
    return df, list(df.columns)


@pytest.mark.parametrize(("k", "s"), SETTINGS, ids=IDS)
def test_optimal(benchmark: Any, adult: ca.Adult, k: int, s: float, bench_rounds: Any,
                 wait_quiet: Any, summary: _Summary) -> None:
    benchmark.group = "optimal full-domain, Adult 30,162 rows x 9 QIs"
    benchmark.extra_info.update(k=k, max_suppression=s)
    r = benchmark.pedantic(ca.run_pets, args=(adult, k, s), setup=wait_quiet,
                           rounds=bench_rounds(len(adult.df)), iterations=1, warmup_rounds=1)
    assert isinstance(r.transformation, dict)
    levels = tuple(int(r.transformation[c]) for c in adult.qis)
    assert ca.pycanon_k(r.df, adult.qis) >= k
    assert r.suppressed <= int(s * len(adult.df) + 1e-9)
    ref = ca.REFERENCE.get((k, s))
    if ref is not None:
        assert round(r.metrics["loss"], 4) == ref[3]
    benchmark.extra_info.update(loss=r.metrics["loss"], transformation=list(levels),
                                suppressed=r.suppressed, classes=r.classes)
    summary.record(f"pets k{k}-supp{round(s * 100)}", benchmark, loss=r.metrics["loss"],
                   levels=list(levels))


def _have_anjana() -> bool:
    import importlib.util

    return importlib.util.find_spec("anjana") is not None


@pytest.mark.skipif(ANJANA_ROUNDS <= 0, reason="PETS_BENCH_ANJANA_ROUNDS=0")
@pytest.mark.skipif(not _have_anjana(), reason='ANJANA not installed: pip install -e ".[bench,bench-peers]" '
                    "in a separate venv (it pins pandas 2.3.3)")
@pytest.mark.parametrize(("k", "s"), SETTINGS, ids=IDS)
def test_anjana(benchmark: Any, adult: ca.Adult, anjana_warm: None, k: int, s: float,
                wait_quiet: Any, summary: _Summary) -> None:
    benchmark.group = "ANJANA k-anonymity, Adult 30,162 rows x 9 QIs"
    benchmark.extra_info.update(k=k, max_suppression=s)
    out = benchmark.pedantic(ca.run_anjana, args=(adult, k, s), setup=wait_quiet,
                             rounds=ANJANA_ROUNDS, iterations=1, warmup_rounds=0)
    o = ca.recover(adult, out)
    assert o.pycanon_k >= k
    benchmark.extra_info.update(loss=o.loss, transformation=list(o.levels or ()),
                                suppressed=o.suppressed, classes=o.classes)
    summary.record(f"anjana k{k}-supp{round(s * 100)}", benchmark, loss=o.loss,
                   levels=list(o.levels or ()))


@pytest.mark.parametrize("k", ca.MONDRIAN_KS, ids=[f"k{k}" for k in ca.MONDRIAN_KS])
def test_mondrian_synth(benchmark: Any, synth: tuple[Any, list[str]], k: int, bench_rounds: Any,
                        wait_quiet: Any, summary: _Summary) -> None:
    df, qis = synth
    benchmark.group = f"Mondrian, generated {len(df):,} rows x {len(qis)} QIs"
    r = benchmark.pedantic(ca.run_mondrian, args=(df, qis, k), setup=wait_quiet,
                           rounds=bench_rounds(len(df)), iterations=1, warmup_rounds=1)
    pk = ca.pycanon_k(r.df, qis)
    assert pk >= k
    benchmark.extra_info.update(k=k, classes=r.classes, ncp=r.metrics["ncp"])
    summary.record(f"mondrian-synth k{k}", benchmark, rows=len(df), classes=r.classes,
                   ncp=r.metrics["ncp"], pycanon_k=pk)


@pytest.mark.parametrize("k", ca.MONDRIAN_KS, ids=[f"k{k}" for k in ca.MONDRIAN_KS])
def test_mondrian_adult(benchmark: Any, adult: ca.Adult, k: int, bench_rounds: Any,
                        wait_quiet: Any, summary: _Summary) -> None:
    benchmark.group = "Mondrian, Adult 30,162 rows x 9 QIs"
    r = benchmark.pedantic(ca.run_mondrian, args=(adult.df, adult.qis, k, adult.H), setup=wait_quiet,
                           rounds=bench_rounds(len(adult.df)), iterations=1, warmup_rounds=1)
    pk = ca.pycanon_k(r.df, adult.qis)
    assert pk >= k
    benchmark.extra_info.update(k=k, classes=r.classes, ncp=r.metrics["ncp"])
    summary.record(f"mondrian-adult k{k}", benchmark, rows=len(adult.df), classes=r.classes,
                   ncp=r.metrics["ncp"], pycanon_k=pk)
