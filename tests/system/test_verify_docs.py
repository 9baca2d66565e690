"""docs/verification.md works as written: its Python blocks run and print what their
comments say; its TOML block is a valid [verify] section."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

import pets

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "verification.md"


def test_verification_guide_runs_and_prints_what_it_says(capsys: pytest.CaptureFixture[str]) -> None:
    text = DOC.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    try:
        import private_set_intersection.python  # noqa: F401
    except ImportError:  # the PSI example needs pets[psi]
        blocks = [b for b in blocks if "pets[psi]" not in b]
    ns: dict[str, object] = {}
    exec(compile("\n".join(blocks), str(DOC), "exec"), ns)
    printed = capsys.readouterr().out.splitlines()
    shown = [line.split("# ", 1)[1].strip() for b in blocks for line in b.splitlines()
             if line.startswith("print(") and "# " in line]
    assert printed == shown


def test_the_toml_section_is_the_python_one() -> None:
    text = DOC.read_text()
    toml = re.findall(r"```toml\n(.*?)```", text, flags=re.S)[0]
    pol = pets.Policy.load(pets.example_policy("adult")).to_dict()
    pol["columns"]["person_id"] = {"role": "identifier", "grade": 2}
    pol["verify"] = tomllib.loads(toml)["verify"]
    p = pets.Policy.from_dict(pol)
    assert p.verify.bits_per_subject(p)["bound"] == 3.0
    assert p.verify.bits_per_subject(p)["columns"]["age"] == pytest.approx(4.0875, abs=1e-4)
