"""Pages answer in under 200 ms (median) with 10^5 audit records (slow: about a minute;
``pytest -m slow tests/console``). The figures: benchmarks/console_pages.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("jinja2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


@pytest.mark.slow
def test_pages_answer_in_under_200_ms_with_100k_audit_records() -> None:
    from console_pages import measure

    got = measure(100_000, repeat=15)
    slow = {name: med for name, (med, _) in got.items() if med >= 200}
    assert not slow, got
