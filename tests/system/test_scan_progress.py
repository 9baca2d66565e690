"""Progress of the engine's scans: DuckDB's own estimate, polled from a thread, sent to
the active sink as fractions in [0, 1] and nothing else; a bar on a terminal with
``progress=True`` (register and release), nothing on a pipe, never DuckDB's own bar."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import pets
from pets.engines import duckdb as duck
from pets.progress import current_sink, reporting

ROOT = Path(__file__).resolve().parents[2]
SECRET = "Zebra-7731"  # a data value that must never show in any progress output


def _generate(path: Path, rows: int) -> None:
    duckdb.connect().execute(f"""
        COPY (SELECT (hash(i, 1) % {rows // 5})::BIGINT AS person_id,
                     CASE WHEN i = 17 THEN '{SECRET}' ELSE 'r' || (hash(i, 2) % 20)::VARCHAR END AS region,
                     (hash(i, 3) % 1000)::INTEGER AS income
              FROM range({rows}) t(i)) TO '{path}' (FORMAT parquet)""")


POLICY = {
    "dataset": {"privacy_unit": "person_id", "max_groups": 3, "max_rows_per_group": 2},
    "columns": {"region": {"role": "attribute", "grade": 1, "keys": [f"r{i}" for i in range(20)]},
                "income": {"role": "attribute", "grade": 1, "bounds": [0, 1000]},
                "person_id": {"role": "identifier", "grade": 1}},
    "grades": {"1": {"allow": ["dp"]}},
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("progress") / "t.parquet"
    _generate(path, 1_000_000)
    return path


def test_a_long_scan_reports_fractions_and_nothing_else(data: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(duck, "_PROGRESS_POLL_S", 0.001)  # poll often: no assumption on speed
    h = pets.Holder(tmp_path / "home")
    seen: list[object] = []
    with reporting(seen.append), pytest.warns(pets.RegistrationWarning):
        h.register("t", data, POLICY)  # the ordinals: window functions over every row
    assert current_sink() is None  # the block's sink is gone after it
    assert seen, "no progress was reported for the scans of a registration"
    assert all(type(f) is float and 0.0 <= f <= 1.0 for f in seen)
    # the fractions of one query only grow: at most one drop per query started
    drops = sum(1 for a, b in zip(seen, seen[1:]) if b < a)  # type: ignore[operator]
    assert drops < 10
    # the window-function fallback of a release (the sidecar removed) reports too
    Path(h._store.get_dataset("t")["source"]["sidecar"]).unlink()
    h._cache.clear()
    h.grant("ann", dataset="t", purpose="p", epsilon=10)
    s = h.session("ann", purpose="p")
    seen.clear()
    with reporting(seen.append):
        s.release(s.table("t").group_by("region").agg(n=pets.count()), pets.DP(epsilon=1))
    assert seen and all(type(f) is float and 0.0 <= f <= 1.0 for f in seen)


def test_without_a_sink_nothing_polls_and_nothing_is_printed(data: Path, tmp_path: Path) -> None:
    """In a child process on pipes: a release with and without progress=True prints
    nothing at all (DuckDB's own bar is off), and gives its result."""
    code = ("import pets, warnings\n"
            "warnings.simplefilter('ignore')\n"
            f"h = pets.Holder({str(tmp_path / 'h')!r})\n"
            f"h.register('t', {str(data)!r}, {POLICY!r}, progress=True)\n"
            "h.grant('ann', dataset='t', purpose='p', epsilon=10)\n"
            "s = h.session('ann', purpose='p')\n"
            "q = s.table('t').group_by('region').agg(n=pets.count())\n"
            "a = s.release(q, pets.DP(epsilon=1), progress=True)\n"
            "b = s.release(s.table('t').agg(n=pets.count()), pets.DP(epsilon=1))\n"
            "assert len(a.df) == 20 and len(b.df) == 1\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "" and p.stderr == ""


def test_a_terminal_shows_a_bar_with_the_label_and_never_a_data_value(data: Path, tmp_path: Path) -> None:
    code = ("import pets, warnings\n"
            "import pets.engines.duckdb as d\n"
            "d._PROGRESS_POLL_S = 0.001\n"
            "warnings.simplefilter('ignore')\n"
            f"h = pets.Holder({str(tmp_path / 'h')!r})\n"
            f"h.register('t', {str(data)!r}, {POLICY!r}, progress=True)\n"
            "h.grant('ann', dataset='t', purpose='p', epsilon=10)\n"
            "s = h.session('ann', purpose='p')\n"
            "r = s.release(s.table('t').group_by('region').agg(n=pets.count()), pets.DP(epsilon=1), progress=True)\n"
            "print('RELEASED', len(r.df))\n")
    leader, follower = pty.openpty()
    p = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=follower, stdout=follower,
                         stderr=follower, env={**os.environ, "TERM": "xterm", "COLUMNS": "120"})
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    p.wait(timeout=300)
    os.close(leader)
    text = b"".join(chunks).decode(errors="replace")
    assert p.returncode == 0, text
    assert "registering 't'" in text and "RELEASED 20" in text
    assert "%" in text  # the bar's percentage, fed by the engine
    assert SECRET not in text and "person_id" not in text


def test_a_bad_progress_value_or_sink_is_refused_and_spends_nothing(data: Path, tmp_path: Path) -> None:
    h = pets.Holder(tmp_path / "home")
    with pytest.warns(pets.RegistrationWarning):
        h.register("t", data, POLICY)
    h.grant("ann", dataset="t", purpose="p", epsilon=10)
    s = h.session("ann", purpose="p")
    q = s.table("t").agg(n=pets.count())
    with pytest.raises(pets.QueryError, match="progress must be True or False, not 'yes'"):
        s.release(q, pets.DP(epsilon=1), progress="yes")  # type: ignore[arg-type]
    assert s.remaining("t").epsilon == pytest.approx(10)
    with pytest.raises(pets.QueryError, match="a progress sink must be callable, not int"):
        with reporting(3):  # type: ignore[arg-type]
            pass
