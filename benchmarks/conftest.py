"""pytest-benchmark setup for ``benchmarks/`` — never part of the default test run.

Run explicitly from the repository root::

    pytest benchmarks/ --benchmark-only                       # 1M and 10M rows
    pytest benchmarks/ --benchmark-only --bench-rows 1000000  # 1M only
    pytest benchmarks/ --benchmark-only --quick               # minutes: small sizes, 3 rounds

The default run does not reach these files: ``testpaths = ["tests"]``, their names
(``bench_*.py``) do not match ``test_*.py``, and they carry the ``benchmark`` marker,
which the repository's ``addopts`` deselect (``-m 'not slow and not benchmark'``).
When every path on the command line is inside ``benchmarks/``, this conftest collects
``bench_*.py`` and lifts that default deselection, so the command above needs no
``-m benchmark`` (which works too). ``pytest .`` or ``pytest tests benchmarks`` still
leave the benchmarks out.

Data, workloads and the DuckDB / pandas baselines are shared with
``compare_dp.py`` (imported from there), so both measure exactly the same calls.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
for _p in (str(HERE.parent), str(HERE)):  # `import pets`, `import compare_dp`
    if _p not in sys.path:
        sys.path.insert(0, _p)

_DEFAULT_DESELECT = "not slow and not benchmark"  # pyproject's addopts
_MEDIANS = pytest.StashKey[dict]()
_REGISTER = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("pets benchmarks")
    g.addoption(
        "--bench-rows",
        default=os.environ.get("PETS_BENCH_ROWS", "1000000,10000000"),
        help="comma-separated data sizes in rows (default 1000000,10000000; env PETS_BENCH_ROWS)",
    )
    g.addoption(
        "--bench-rounds",
        type=int,
        default=int(os.environ.get("PETS_BENCH_ROUNDS", "0")) or None,
        help="timed rounds per benchmark (default: 15 up to 1M rows, 7 above)",
    )
    g.addoption(
        "--quick",
        action="store_true",
        default=os.environ.get("PETS_BENCH_QUICK", "") not in ("", "0"),
        help="a quick run that finishes in minutes (env PETS_BENCH_QUICK=1): 100,000 rows, "
             "3 rounds, no waiting for quiet, 2048-bit HE only, 100,000 synthetic rows for "
             "Mondrian, one ANJANA round; sizes given explicitly still win",
    )
    g.addoption(
        "--bench-no-wait",
        action="store_true",
        help="do not wait for other processes to go quiet before each round",
    )


def _inside_benchmarks(arg: str) -> bool:
    path = Path(arg.split("::", 1)[0]).resolve()
    return path == HERE or HERE in path.parents


#: What --quick sets, unless the option or environment variable is given explicitly.
QUICK_ENV = {"PETS_BENCH_HE_BITS": "2048", "PETS_BENCH_ANON_ROWS": "100000",
             "PETS_BENCH_ANJANA_ROUNDS": "1"}


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--quick", default=False):
        # before the bench_*.py modules are imported: they read these at import time
        for k, v in QUICK_ENV.items():
            os.environ.setdefault(k, v)
        if "PETS_BENCH_ROWS" not in os.environ and config.option.bench_rows == "1000000,10000000":
            config.option.bench_rows = "100000"
        config.option.bench_rounds = config.option.bench_rounds or 3
        config.option.bench_no_wait = True
    config.stash[_MEDIANS] = {}
    config.stash[_REGISTER] = {}
    args = [a for a in config.args if not a.startswith("-")]
    if config.option.markexpr == _DEFAULT_DESELECT and args and all(map(_inside_benchmarks, args)):
        config.option.markexpr = "benchmark"


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Any:
    # bench_*.py are not test_*.py; collect them here (a file named on the command line
    # is collected by pytest itself)
    if (
        file_path.suffix == ".py"
        and file_path.name.startswith("bench_")
        and file_path.parent == HERE
        and not parent.session.isinitpath(file_path)
    ):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def _rows(config: pytest.Config) -> list[int]:
    return [int(x.replace("_", "")) for x in str(config.getoption("--bench-rows")).split(",") if x.strip()]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "rows" in metafunc.fixturenames:
        rows = _rows(metafunc.config)
        metafunc.parametrize(
            "rows", rows, ids=[f"{r // 1_000_000}M" if r % 1_000_000 == 0 else str(r) for r in rows],
            scope="session",
        )


@pytest.fixture(scope="session")
def workloads(rows: int, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Any:
    """Data written once (cached in benchmarks/.data/), the DataFrame in memory, and a
    Holder (sharing its DuckDB database with the plain baselines) with the file
    registered twice: with ``copy=True`` (stored copy) and as a path (read in place).
    The registration times go to the terminal summary."""
    import compare_dp

    w = compare_dp.Workloads(rows, compare_dp.dataset_path(rows), tmp_path_factory.mktemp(f"home{rows}"))
    request.config.stash[_REGISTER][rows] = dict(w.register_s)
    _ = w.df  # load the in-memory frame before any timing
    w.check()  # the workloads answer the same question
    yield w
    w.close()
    w._df = None


@pytest.fixture
def bench_rounds(request: pytest.FixtureRequest) -> Any:
    given = request.config.getoption("--bench-rounds")

    def rounds(rows: int) -> int:
        return given or (15 if rows <= 1_000_000 else 7)

    return rounds


@pytest.fixture
def wait_quiet(request: pytest.FixtureRequest) -> Any:
    """Untimed, before each round: wait (<= 3 s) until other processes use < 0.1 core,
    so that a neighbour's burst on this 2-core machine does not land in a round."""
    import compare_dp

    if request.config.getoption("--bench-no-wait"):
        return None
    return lambda: compare_dp._wait_quiet(3.0)


@pytest.fixture
def record_median(request: pytest.FixtureRequest) -> Any:
    """Keep a benchmark's median for the ratio summary at the end."""

    def record(rows: int, workload: str, benchmark: Any) -> None:
        stats = getattr(benchmark, "stats", None)
        inner = getattr(stats, "stats", None)
        if inner is not None and getattr(inner, "data", None):
            request.config.stash[_MEDIANS].setdefault(rows, {})[workload] = inner.median

    return record


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    import compare_dp

    med: dict[int, dict[str, float]] = config.stash.get(_MEDIANS, {})
    if not med:
        return
    tr = terminalreporter
    tr.section("pets DP release vs plain group-by (medians)")
    names = [n for n in compare_dp.LABELS]
    tr.write_line(f"{'rows':>12}  " + "  ".join(f"{n:>12}" for n in names))
    for rows in sorted(med):
        m = med[rows]
        tr.write_line(f"{rows:>12,}  " + "  ".join(
            f"{m[n] * 1e3:10.1f}ms" if n in m else f"{'-':>12}" for n in names))
    tr.write_line("")
    tr.write_line(f"{'rows':>12}  {'mode':<13} {'same file (headline)':>21}  {'/ duckdb':>9}"
                  f"  {'/ duckdb-copy':>13}  {'/ pandas':>9}  {'/ pd+read':>9}")
    for rows in sorted(med):
        m = med[rows]

        def ratio(mode: str, k: str, m: dict[str, float] = m) -> str:
            return f"{m[mode] / m[k]:.2f}x" if mode in m and k in m else "-"

        for mode, same in compare_dp.MODES.items():
            tr.write_line(
                f"{rows:>12,}  {mode:<13} {ratio(mode, same):>21}  {ratio(mode, 'duckdb'):>9}"
                f"  {ratio(mode, 'duckdb-copy'):>13}  {ratio(mode, 'pandas'):>9}"
                f"  {ratio(mode, 'pandas+read'):>9}"
            )
    reg: dict[int, dict[str, float | None]] = config.stash.get(_REGISTER, {})
    for rows in sorted(reg):
        r = reg[rows]
        parts = [f"{k} {v * 1e3:.0f} ms" if v is not None else f"{k} (reused)" for k, v in r.items()]
        tr.write_line(f"registration at {rows:,} rows (once, untimed above): " + ", ".join(parts))
    tr.write_line(f"target (issue): DP release <= {compare_dp.TARGET}x plain DuckDB group-by at 10M rows")
