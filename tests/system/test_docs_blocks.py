"""Every code block of README.md and docs/*.md runs as pasted, from a temporary folder.

Python blocks (```python / ```py) of one file run in order in one interpreter (a
reader pastes them one after another into one session); shell blocks (```bash / ```sh /
```console, ``$ `` prompts stripped) run one by one with ``bash -e``, with this
checkout's ``pets`` first on PATH. A block whose previous line is an HTML comment
``<!-- no-run: reason -->`` is skipped — the reason is visible in the Markdown source
(blocks that install packages, start servers or run benchmarks for minutes; a block
that installs packages and is not marked fails instead of running); a file whose python
blocks take long is listed in ``SLOW``, and the shell blocks, run under ``-m slow``
(``pytest -m slow tests/system/test_docs_blocks.py``, as .ci/run does). Output
blocks (no language, ``text``, ``toml``, ``sql``) are not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHON = ("python", "py")
SHELL = ("bash", "sh", "console", "shell")
FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<lang>[A-Za-z0-9_+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ ]*$",
                   re.M | re.S)
NO_RUN = re.compile(r"<!--\s*no-run\b[^>]*-->\s*$")
#: Files whose python blocks take more than a few seconds run under ``-m slow`` (CI runs
#: them: .ci/run); tests/system/test_cli_and_docs.py also runs their python blocks, in
#: process, in the default run. Shell blocks are all slow (one process per command).
SLOW = {"README.md", "docs/anonymisation.md", "docs/dp.md", "docs/dummy.md",
        "docs/governance.md", "docs/homomorphic.md"}


def blocks(md: Path) -> list[tuple[str, str, bool, int]]:
    """(language, code, skipped, line) of each fenced block."""
    text = md.read_text()
    out = []
    for m in FENCE.finditer(text):
        before = text[:m.start()].rstrip("\n").splitlines()
        skipped = bool(before) and bool(NO_RUN.search(before[-1]))
        line = text.count("\n", 0, m.start()) + 1
        out.append((m.group("lang").lower(), textwrap.dedent(m.group("body")), skipped, line))
    return out


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}".rstrip(os.pathsep)
    env.pop("PETS_HOME", None)
    return env


INSTALLS = re.compile(r"pip install|-m venv|\bvirtualenv\b|\buv (pip|venv)\b")


def _guard(md: Path, code: str) -> None:
    """Never let a doc block install packages into the test's environment."""
    assert not INSTALLS.search(code), (
        f"{_rel(md)}: a block that installs packages must be marked <!-- no-run: reason -->")


def _rel(md: Path) -> str:
    return str(md.relative_to(ROOT))


def _python_params() -> list:
    out = []
    for md in DOCS:
        if any(lang in PYTHON and not skipped for lang, _, skipped, _ in blocks(md)):
            marks = [pytest.mark.slow] if _rel(md) in SLOW else []
            out.append(pytest.param(md, id=_rel(md), marks=marks))
    return out


def _shell_params() -> list:
    """One case per file: its shell blocks run in order in one bash, as a reader pasting
    them one after another would (a block may use what an earlier one exported)."""
    out = []
    for md in DOCS:
        codes = [code for lang, code, skipped, _ in blocks(md) if lang in SHELL and not skipped]
        if codes:
            out.append(pytest.param(md, "\n".join(codes), id=_rel(md)))
    return out


def _head_tolerant(line: str) -> str:
    """``cmd | head`` ends ``cmd`` with SIGPIPE (exit 141), as any Unix tool: under
    pipefail that is not a failure of the block."""
    if re.search(r"\|\s*head\b", line) and not line.rstrip().endswith("\\"):
        return f"{line} || [ $? -eq 141 ]"
    return line


@pytest.mark.parametrize("md", _python_params())
def test_python_blocks_run_as_pasted(md: Path, tmp_path: Path) -> None:
    code = "\n\n".join(c for lang, c, skipped, _ in blocks(md) if lang in PYTHON and not skipped)
    _guard(md, code)
    p = subprocess.run([sys.executable, "-"], input=code, capture_output=True, text=True,
                       cwd=tmp_path, env=_env(), timeout=600)
    assert p.returncode == 0, f"{_rel(md)}: {p.stderr[-4000:]}"


@pytest.mark.slow
@pytest.mark.parametrize(("md", "code"), _shell_params())
def test_shell_blocks_run_as_pasted(md: Path, code: str, tmp_path: Path) -> None:
    _guard(md, code)
    lines = [_head_tolerant(ln[2:] if ln.startswith("$ ") else ln) for ln in code.splitlines()]
    p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", "\n".join(lines)], capture_output=True,
                       text=True, cwd=tmp_path, env=_env(), timeout=900)
    assert p.returncode == 0, f"{_rel(md)} (exit {p.returncode}): {p.stdout[-2000:]}\n{p.stderr[-4000:]}"


def test_every_block_is_run_or_visibly_skipped() -> None:
    """A runnable-looking block is either run above or carries a no-run reason."""
    for md in DOCS:
        for lang, _, skipped, line in blocks(md):
            if skipped:
                text = md.read_text().splitlines()
                assert re.search(r"no-run:\s*\S", "\n".join(text[max(0, line - 3):line])), \
                    f"{_rel(md)}:{line}: say why the block does not run (<!-- no-run: reason -->)"
