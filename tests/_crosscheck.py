"""pyCANON, the independent checker of k, l and t, when it is installed.

pyCANON pins numpy 2.0.2 / pandas 2.3.3 / scipy 1.15.3, so it is not in the ``test``
extra (which must install into a pandas-3 environment without downgrading it) but in
``crosscheck``. ``.ci/run`` runs the tests that use it in a second virtualenv
(``pip install -e ".[test,crosscheck]"``); anywhere else a test skips, visibly, at its
first use of ``anonymity`` when pyCANON is missing — its own assertions before that
point have run.
"""

from __future__ import annotations

from typing import Any

import pytest

try:
    from pycanon import anonymity as _anonymity
except ImportError:  # pragma: no cover - depends on the environment
    _anonymity = None

HAVE_PYCANON = _anonymity is not None


class _Missing:
    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # pytest's collection probes attributes; only a use skips
            raise AttributeError(name)
        pytest.skip('pyCANON not installed: pip install -e ".[crosscheck]" (a separate venv; it pins pandas 2.3.3)')


anonymity: Any = _anonymity if _anonymity is not None else _Missing()
