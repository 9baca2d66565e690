"""docs/models.md works as written: its Python blocks run, in order, as pasted."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import pets

ROOT = Path(__file__).resolve().parents[2]


def test_models_doc_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "models.md").read_text(), flags=re.S)
    assert len(blocks) >= 5
    ns: dict[str, object] = {}
    exec(compile("\n".join(blocks), "docs/models.md", "exec"), ns)
    assert isinstance(ns["m"], pets.models.LogisticRegression) and (tmp_path / "model.json").exists()
    assert len(ns["y"].df) == 5000  # type: ignore[attr-defined]
    assert ns["holder"].audit().verify() is True  # type: ignore[attr-defined]
