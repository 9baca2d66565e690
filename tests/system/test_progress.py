"""``progress=True`` in Python: a spinner on a terminal (a real pseudo-terminal here),
nothing on a pipe, the same result either way; a bad value changes nothing."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import pets

ROOT = Path(__file__).resolve().parents[2]
POLICY = {"columns": {"k": {"role": "attribute", "grade": 1, "keys": ["a", "b"]}},
          "grades": {"1": {"allow": ["dp"]}}}


def test_progress_on_a_pipe_prints_nothing_and_registers(tmp_path: Path,
                                                         capfd: pytest.CaptureFixture[str]) -> None:
    h = pets.Holder(tmp_path / "h")
    h.register("d", pd.DataFrame({"k": ["a", "b"] * 10}), POLICY, progress=True)
    assert h.datasets() == ["d"]
    assert capfd.readouterr().err == ""


def test_a_bad_progress_value_is_refused_and_registers_nothing(tmp_path: Path) -> None:
    h = pets.Holder(tmp_path / "h")
    with pytest.raises(pets.QueryError, match="progress must be True or False, not 'yes'"):
        h.register("d", pd.DataFrame({"k": ["a", "b"]}), POLICY, progress="yes")  # type: ignore[arg-type]
    assert h.datasets() == []


def test_progress_on_a_terminal_shows_a_spinner(tmp_path: Path) -> None:
    code = ("import pets, pandas as pd\n"
            f"h = pets.Holder({str(tmp_path / 'h')!r})\n"
            f"h.register('d', pd.DataFrame({{'k': ['a', 'b'] * 10}}), {POLICY!r}, progress=True)\n"
            "print('REGISTERED', h.datasets())\n")
    leader, follower = pty.openpty()
    p = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=follower,
                         stdout=follower, stderr=follower, env={**os.environ, "TERM": "xterm"})
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    p.wait(timeout=60)
    os.close(leader)
    text = b"".join(chunks).decode(errors="replace")
    assert p.returncode == 0, text
    assert "registering 'd'" in text and "REGISTERED ['d']" in text
